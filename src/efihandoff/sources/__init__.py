"""Readers, one per source kind: kernel logs, sysfs copies, memory dumps, scenarios, the live
machine; and the dispatcher that tells them apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from efihandoff.errors import ParseError, SourceError
from efihandoff.machine import Machine
from efihandoff.uefi.memmap import MemoryDescriptor

if TYPE_CHECKING:
    from efihandoff.sources.kernellog import KernelLog
    from efihandoff.sources.logmachine import LogEvidence
    from efihandoff.sources.sysfs import SysfsEvidence


class SourceKind(StrEnum):
    """The ``kind`` of a source in ``explain --json`` (a contract of docs/design.md)."""

    DMESG = "dmesg"
    SYSFS = "sysfs"
    DUMP = "dump"
    SCENARIO = "scenario"
    LIVE = "live"
    EXAMPLE = "example"


class Role(StrEnum):
    """Who printed or exposed a view's evidence (``machine.role`` in ``explain --json``)."""

    BARE_METAL = "bare-metal"
    XEN_DOM0 = "xen-dom0"
    XEN_HYPERVISOR = "xen-hypervisor"  # (XEN) console lines alone: xl dmesg, a serial capture
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Source:
    """Where a Machine came from."""

    path: str
    kind: SourceKind

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "kind": str(self.kind)}


def example_path() -> Path:
    """The bundled example machine (in the wheel, or beside the source tree)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (
        here / "examples" / "laptop.toml",
        here.parents[1] / "examples" / "laptop.toml",
    ):
        if candidate.is_file():
            return candidate
    raise SourceError("the bundled example examples/laptop.toml is missing from this installation")


@dataclass
class View:
    """One source's view of a machine (a log file may hold several boots: one view each)."""

    source: Source
    machine: Machine
    log: LogEvidence | None = None
    sysfs: SysfsEvidence | None = None

    @property
    def dom0(self) -> bool:
        return self.role is Role.XEN_DOM0

    @property
    def role(self) -> Role:
        """Who printed this view: from the log's own lines, a copy's /sys/hypervisor and
        efi/ files; a scenario describes what firmware hands to bare metal."""
        if self.sysfs is not None:
            return self.sysfs.role
        if self.log is not None:
            return self.log.observed.role
        if self.source.kind in (SourceKind.SCENARIO, SourceKind.EXAMPLE):
            return Role.BARE_METAL
        return Role.UNKNOWN


def read_source(path: str | Path) -> list[View]:
    """Read any source, telling its kind from its content; one view per machine boot in it."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file or directory")
    try:
        if p.suffix == ".toml":
            from efihandoff.sources.scenario import load_scenario

            return [View(Source(str(p), SourceKind.SCENARIO), load_scenario(p))]
        if p.is_dir():
            return _sysfs_views(p)
        with p.open("rb") as f:
            head = f.read(65536)
        from efihandoff.sources import kernellog

        if _is_tar(p, head):
            return _sysfs_views(p)
        if kernellog.looks_like_kernel_log(head):
            return _log_views(p)
        if head.startswith(b"\x7fELF") or _describe(head) == "binary data":
            return _dump_views(p)
    except OSError as exc:
        raise SourceError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    except ParseError as exc:
        raise SourceError(f"{p}: {exc}") from exc
    raise SourceError(f"{p}: not a source efihandoff knows ({_describe(head)})")


def live_views(root: str | Path = "/") -> list[View] | None:
    """The running machine (read-only), or None when it did not boot through EFI."""
    from efihandoff.sources.live import read_live

    ev = read_live(root)
    if not ev.efi_booted:
        return None
    logs = []
    if ev.kernel_log.data:
        logs = log_views(ev.kernel_log.data, f"live:{ev.kernel_log.source}", required=False)
    from efihandoff.sources.collect import read_xen_log

    xen = read_xen_log(root)  # a dom0's hypervisor log (xl dmesg), when this is one
    if xen.data:
        logs += log_views(xen.data, "live:xl dmesg", required=False)
    machine = ev.to_machine(_esrt_address(logs))
    views = [View(Source(str(root), SourceKind.LIVE), machine, sysfs=ev.sysfs)]
    return views + logs


def read_sources(paths: Sequence[str | Path]) -> list[View]:
    """Every source of one machine. A dump is read again with a /sys/firmware copy's runtime
    map when one is given, to translate the virtual pointers SetVirtualAddressMap left in it."""
    views = [v for p in paths for v in read_source(p)]
    runtime_map = next(
        (v.sysfs.runtime_map for v in views if v.sysfs is not None and v.sysfs.runtime_map),
        None,
    )
    if runtime_map is None:
        return views
    return [
        w
        for v in views
        for w in (
            _dump_views(Path(v.source.path), runtime_map)
            if v.source.kind is SourceKind.DUMP
            else [v]
        )
    ]


def read_machine(path: str | Path) -> tuple[Machine, Source]:
    """The first machine a source describes."""
    view = read_source(path)[0]
    return view.machine, view.source


def _is_tar(p: Path, head: bytes) -> bool:
    if head[:2] == b"\x1f\x8b":
        return p.name.endswith((".tar.gz", ".tgz"))
    return len(head) >= 262 and head[257:262] == b"ustar"


def _sysfs_views(p: Path) -> list[View]:
    from efihandoff.sources.sysfs import read_sysfs

    ev = read_sysfs(p)
    logs = log_views(ev.kernel_log, f"{p}:dmesg.txt", required=False) if ev.kernel_log else []
    if ev.xen_log:  # `xl dmesg` of a dom0 (collect): the hypervisor's own boot lines
        logs += log_views(ev.xen_log, f"{p}:xl-dmesg.txt", required=False)
    _xen_version_from_sysfs(logs, ev)
    machine = ev.to_machine(_esrt_address(logs))
    return [View(Source(str(p), SourceKind.SYSFS), machine, sysfs=ev), *logs]


def _esrt_address(logs: list[View]) -> int | None:
    """Where the logs of the same boot say the ESRT is (nothing under /sys/firmware does)."""
    return next((v.log.boot.esrt_address for v in logs if v.log and v.log.boot.esrt_address), None)


def _xen_version_from_sysfs(logs: list[View], ev: SysfsEvidence) -> None:
    """A dom0 log may not print the Xen version; /sys/hypervisor/version beside it does."""
    from dataclasses import replace

    from efihandoff.sources.logmachine import parse_version

    xen = parse_version(ev.hypervisor_version, 3) if ev.hypervisor_type == "xen" else None
    for v in logs:
        if xen is not None and v.log is not None and v.log.observed.xen is None:
            v.log.observed = replace(v.log.observed, xen=xen)


def _dump_views(p: Path, runtime_map: Sequence[MemoryDescriptor] | None = None) -> list[View]:
    from efihandoff.sources.dump import read_dump

    ev = read_dump(p, runtime_map=runtime_map)
    if ev.system_table_address is None:
        raise SourceError(f"{p}: not a source efihandoff knows (no EFI system table in it)")
    found = ev.boot_memory_map()
    machine = ev.to_machine(found[0] if found else None)
    if found:
        machine.notes.append(
            f"memory map: the one an x86 EFI stub left in boot_params at {found[1]:#x}"
        )
        machine.memory_type_evidence.update(
            {
                t.table: "memory map from boot_params (x86 EFI stub)"
                for t in machine.config_tables or ()
            }
        )
    return [View(Source(str(p), SourceKind.DUMP), machine)]


def _log_views(p: Path) -> list[View]:
    from efihandoff.sources.kernellog import read_kernel_log_file

    return _views_of(read_kernel_log_file(p), str(p), p.name)


def log_views(data: bytes, name: str, *, required: bool = True) -> list[View]:
    """A kernel log held in memory (an archive member, a copy's dmesg.txt, the live log); with
    ``required``, SourceError unless it is a kernel log with EFI or memory-map lines."""
    from efihandoff.sources.kernellog import looks_like_kernel_log, read_kernel_log

    if required and not looks_like_kernel_log(data[:65536]):
        raise SourceError(f"{name}: not a kernel log ({_describe(data[:4096])})")
    log = read_kernel_log(data, name=name)
    return _views_of(log, name, name.rsplit("/", 1)[-1], required=required)


def _views_of(log: KernelLog, path: str, label: str, *, required: bool = True) -> list[View]:
    from efihandoff.sources.logmachine import from_boot

    views = []
    for i, boot in enumerate(log.boots):
        if not (
            boot.config_tables
            or boot.memory_map
            or boot.e820
            or boot.xen
            or boot.esrt_messages
            or boot.unparsed  # lines that look relevant but did not parse: a finding, not nothing
        ):
            continue
        name = path if len(log.boots) == 1 else f"{path}#boot{i + 1}"
        ev = from_boot(boot, name=label)
        views.append(View(Source(name, SourceKind.DMESG), ev.machine, ev))
    if not views and required:
        raise SourceError(f"{path}: a kernel log, but it holds no EFI or memory-map lines")
    return views


def _describe(head: bytes) -> str:
    if not head:
        return "empty file"
    if head.startswith(b"\x7fELF"):
        return "an ELF file"
    printable = len(head) - len(head.translate(None, _PRINTABLE))
    return "text" if printable > 0.9 * len(head) else "binary data"


_PRINTABLE = bytes([*range(32, 127), 9, 10, 13])
