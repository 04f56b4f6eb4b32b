"""Copies of ``/sys/firmware`` (a directory or a ``.tar``/``.tar.gz``): ESRT, systab, runtime map.

Files and formats, as Linux writes them (project, file, function):

- ``efi/esrt/fw_resource_count`` ``%u``, ``fw_resource_count_max`` ``%u``,
  ``fw_resource_version`` ``%llu``; ``efi/esrt/entries/entryN/`` with ``fw_class`` (``%pUl``),
  ``fw_type``, ``fw_version``, ``lowest_supported_fw_version``, ``last_attempt_version``,
  ``last_attempt_status`` (``%u``) and ``capsule_flags`` (``0x%x``). Linux 6.3
  drivers/firmware/efi/esrt.c ``esrt_sysfs_init``, ``esre_attr_show`` (entry files need
  CAP_SYS_ADMIN, so a copy made without root lacks them).
- ``efi/systab``: one ``LABEL=0x%lx`` line per table Linux recorded (``ACPI20``, ``ACPI``,
  ``SMBIOS3``, ``SMBIOS``; x86 adds ``UGA``; kernels before 5.7 also ``MPS``, ``HCDP``,
  ``BOOTINFO``). Linux drivers/firmware/efi/efi.c ``systab_show``, arch/x86/platform/efi/efi.c
  ``efi_systab_show_arch``. The ESRT is never listed there.
- ``efi/fw_platform_size`` ``%d`` (64 or 32): efi.c ``fw_platform_size_show``.
- x86 only: ``efi/config_table``, ``efi/fw_vendor``, ``efi/runtime`` as ``0x%lx``, each hidden
  when unknown, ``fw_vendor`` also under EFI_PARAVIRT (a Xen dom0). arch/x86/platform/efi/efi.c
  ``EFI_ATTR_SHOW``, ``efi_attr_is_visible``.
- ``efi/runtime-map/N/{type,phys_addr,virt_addr,num_pages,attribute}``: ``type`` as ``0x%x``,
  the others ``0x%llx``; x86 with kexec, absent in a Xen PV dom0 (no EFI memory map).
  drivers/firmware/efi/runtime-map.c ``type_show``, ``EFI_RUNTIME_U64_ATTR_SHOW``.
- ``memmap/N/{start,end,type}``: ``0x%llx`` with an inclusive end, and the type string of
  arch/x86/kernel/e820.c ``e820_type_to_string`` ("System RAM", "Reserved", ...).
  drivers/firmware/memmap.c ``start_show``, ``end_show``, ``type_show``.

A copy made by GNU tar of live sysfs files is padded with NUL bytes to the 4096-byte size sysfs
reports: trailing NULs are ignored. Reading never writes or extracts anything; an archive with an
absolute or ``..`` member, a device file, or a link pointing outside it is refused whole.
"""

from __future__ import annotations

import os
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from lzma import LZMAError
from pathlib import Path
from typing import Generic, TypeVar

from efihandoff.e820 import E820Range, E820Type
from efihandoff.errors import ParseError
from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.rules import tables as known_tables
from efihandoff.sources import Role
from efihandoff.sources.sysfs_tree import (
    MAX_ARCHIVE_BYTES,
    MAX_DIR_ENTRIES,
    MAX_KEPT_BYTES,
    MAX_LINK_HOPS,
    MAX_LOG_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_VALUE_BYTES,
    DirTree,
    TarTree,
    Tree,
    Unreadable,
    rel_join,
)
from efihandoff.uefi.esrt import ENTRY_FIELDS, ESRT_GUID, Esrt, EsrtEntry
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryDescriptor, MemoryMap
from efihandoff.uefi.systab import ConfigurationTable

T = TypeVar("T")

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

ESRT_ENTRY_FILES = ENTRY_FIELDS  # Linux esrt.c names each file after its field
RUNTIME_MAP_FILES = ("type", "phys_addr", "virt_addr", "num_pages", "attribute")
# efi/ files copied and read (efivars contents never).
EFI_TOP_FILES = ("systab", "config_table", "fw_platform_size", "fw_vendor", "runtime")
# Linux arch/x86/kernel/e820.c e820_type_to_string (RESERVED_KERN shows as "System RAM").
E820_TYPE_STRINGS: dict[str, int] = {
    "System RAM": E820Type.RAM,
    "Reserved": E820Type.RESERVED,
    "ACPI Tables": E820Type.ACPI,
    "ACPI Non-volatile Storage": E820Type.NVS,
    "Unusable memory": E820Type.UNUSABLE,
    "Persistent Memory (legacy)": E820Type.PRAM,
    "Persistent Memory": E820Type.PMEM,
    "Soft Reserved": E820Type.SOFT_RESERVED,
}
# systab labels -> registry: Linux efi.c systab_show / x86 efi_systab_show_arch print these;
# MPS (removed in Linux 5.7) has no Linux config-table label in the registry, so by name.
_SYSTAB_LABELS: dict[str, str] = {
    "ACPI20": "ACPI 2.0",
    "ACPI": "ACPI",
    "SMBIOS3": "SMBIOS 3.0",
    "SMBIOS": "SMBIOS",
    "UGA": "UGA",
}
_SYSTAB_BY_NAME = {"MPS": "MPS"}
RUNTIME_MAP_EVIDENCE = "runtime-map (RUNTIME regions only)"

_ENTRY_NAME = re.compile(r"entry(\d{1,9})\Z")
_INDEX_NAME = re.compile(r"\d{1,9}\Z")
_SYSTAB_LINE = re.compile(r"([A-Za-z0-9_]{1,32})=(0[xX][0-9a-fA-F]{1,16}|\d{1,20})\Z")


# --------------------------------------------------------------------------------------------
# Result model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SysfsValue(Generic[T]):
    """One value and the file it came from (``file`` relative to the firmware directory).

    ``text`` is the file's content as read (None: missing or unreadable); ``value`` is None when
    the file is missing, unreadable or does not parse, and ``problem`` then says why (None for a
    plainly missing file).
    """

    file: str
    value: T | None
    text: str | None = None
    problem: str | None = None

    @property
    def present(self) -> bool:
        """Whether the file was there and readable."""
        return self.text is not None


@dataclass(frozen=True, slots=True)
class SysfsEsrtEntry:
    """One ``efi/esrt/entries/<name>/`` directory."""

    name: str
    fw_class: SysfsValue[Guid]
    fw_type: SysfsValue[int]
    fw_version: SysfsValue[int]
    lowest_supported_fw_version: SysfsValue[int]
    capsule_flags: SysfsValue[int]
    last_attempt_version: SysfsValue[int]
    last_attempt_status: SysfsValue[int]

    def values(self) -> tuple[SysfsValue[object], ...]:
        """The seven values in ``ESRT_ENTRY_FILES`` order."""
        return tuple(getattr(self, name) for name in ESRT_ENTRY_FILES)

    @property
    def complete(self) -> bool:
        """Whether every value is known."""
        return all(v.value is not None for v in self.values())

    def to_entry(self) -> EsrtEntry | None:
        """The entry, or None when any value is unknown."""
        nums = [getattr(self, f).value for f in ESRT_ENTRY_FILES[1:]]
        known = [n for n in nums if n is not None]
        if self.fw_class.value is None or len(known) != len(nums):
            return None
        return EsrtEntry(self.fw_class.value, *known)


@dataclass(frozen=True, slots=True)
class SysfsEsrt:
    """``efi/esrt``: the header files and the entries (None when there is no ``entries/``)."""

    fw_resource_count: SysfsValue[int]
    fw_resource_count_max: SysfsValue[int]
    fw_resource_version: SysfsValue[int]
    entries: tuple[SysfsEsrtEntry, ...] | None

    def to_esrt(self) -> Esrt | None:
        """The table as Linux exposed it, or None unless the header and every entry are known.

        The count is the header file's, even when it differs from the number of entries.
        """
        count = self.fw_resource_count.value
        count_max = self.fw_resource_count_max.value
        version = self.fw_resource_version.value
        if count is None or count_max is None or version is None or self.entries is None:
            return None
        entries = [e.to_entry() for e in self.entries]
        known = [e for e in entries if e is not None]
        if len(known) != len(entries):
            return None
        return Esrt(count, count_max, version, tuple(known))


@dataclass(frozen=True, slots=True)
class FirmwareMemmapEntry:
    """``memmap/N``: the firmware's E820 range with Linux's type string; ``end`` is inclusive."""

    index: int
    start: int
    end: int
    type: str

    @property
    def e820_type(self) -> int | None:
        """The E820 type number behind the string, or None for an unknown string."""
        return E820_TYPE_STRINGS.get(self.type)

    def to_e820(self) -> E820Range | None:
        """As an exclusive-end :class:`E820Range`, or None for an unknown type string."""
        kind = self.e820_type
        return None if kind is None else E820Range(self.start, self.end + 1, kind)


@dataclass(frozen=True)
class SysfsEvidence:
    """What a copy of ``/sys/firmware`` tells (and, beside it, ``/sys/hypervisor``,
    ``/proc/xen``, a ``dmesg.txt`` and an ``xl-dmesg.txt`` when the copy holds them)."""

    path: str
    layout: str  # "directory" or "tar"
    efi: bool  # efi/ present: the kernel booted through EFI
    efi_files: tuple[str, ...]  # names directly under efi/
    esrt: SysfsEsrt | None
    systab: dict[str, int]
    config_table: SysfsValue[int]
    fw_vendor: SysfsValue[int]
    runtime: SysfsValue[int]
    fw_platform_size: SysfsValue[int]
    runtime_map: tuple[MemoryDescriptor, ...] | None
    firmware_memmap: tuple[FirmwareMemmapEntry, ...] | None
    hypervisor_type: str | None = None
    hypervisor_version: str | None = None
    xen_capabilities: str | None = None
    kernel_log: bytes | None = field(default=None, repr=False)
    xen_log: bytes | None = field(default=None, repr=False)  # xl-dmesg.txt: Xen's console ring
    manifest: str | None = None
    problems: tuple[str, ...] = ()
    _esrt_files: tuple[tuple[str, str | None], ...] = field(default=(), repr=False)

    # -- Xen ---------------------------------------------------------------------------------

    @property
    def xen_dom0_evidence(self) -> tuple[bool, str]:
        """(is a Xen dom0, why), from the strongest signal present."""
        caps = self.xen_capabilities
        if caps is not None:
            # Linux drivers/xen/xenfs/super.c capabilities_show: "control_d" in the initial domain.
            if "control_d" in caps:
                return True, "proc/xen/capabilities contains control_d"
            return False, "proc/xen/capabilities lacks control_d (a domU)"
        if self.hypervisor_type is not None and self.hypervisor_type != "xen":
            return False, f"sys/hypervisor/type is {self.hypervisor_type!r}"
        on_xen = self.hypervisor_type == "xen"
        xen_note = "sys/hypervisor/type is xen; " if on_xen else ""
        if not self.efi:
            return False, "no efi/ directory"
        if self.runtime_map is not None:
            # A PV dom0 never has EFI_MEMMAP (x86 efi_memblock_x86_reserve_range returns early
            # under EFI_PARAVIRT), so Linux has no runtime map to export.
            return False, xen_note + "efi/runtime-map present: the kernel owns an EFI memory map"
        if self.fw_vendor.present:
            # arch/x86/platform/efi/efi.c efi_attr_is_visible hides fw_vendor under EFI_PARAVIRT.
            return False, xen_note + "efi/fw_vendor present: not EFI_PARAVIRT"
        if self.config_table.present:
            return True, (
                xen_note + "efi/ has config_table but neither runtime-map nor fw_vendor "
                "(the Xen PV dom0 pattern; heuristic)"
            )
        return on_xen, xen_note + "not enough files in efi/ to tell"

    @property
    def is_xen_dom0(self) -> bool:
        """Whether this looks like a Xen dom0 (see :attr:`xen_dom0_evidence` for why)."""
        return self.xen_dom0_evidence[0]

    @property
    def role(self) -> Role:
        """Who exposed this copy: a Xen dom0, a kernel that owns an EFI memory map (bare metal
        as far as Xen goes), or unknown."""
        if self.is_xen_dom0:
            return Role.XEN_DOM0
        if self.efi and (self.runtime_map is not None or self.fw_vendor.present):
            return Role.BARE_METAL
        return Role.UNKNOWN

    # -- views -------------------------------------------------------------------------------

    def esrt_tree(self) -> dict[str, str | None]:
        """The ``efi/esrt`` files as read: ``{relative path: content, directory: None}``, the
        shape :func:`efihandoff.paths.linux.esrt_tree` produces (missing files are left out)."""
        return dict(self._esrt_files)

    def config_tables(self) -> tuple[ConfigurationTable, ...]:
        """Tables ``efi/systab`` names whose GUID the registry knows (a subset of the firmware's:
        systab lists ACPI, SMBIOS and, on x86, UGA only)."""
        out = []
        for label, addr in self.systab.items():
            kt = _systab_table(label)
            if kt is not None:
                out.append(ConfigurationTable(kt.guid, addr))
        return tuple(out)

    def to_machine(self, esrt_address: int | None = None) -> Machine:
        """A Machine with what the copy knows.

        - ``memory_map``: the runtime map when present (RUNTIME regions only, so boot-services
          memory is missing from it; see ``notes``), else None.
        - ``config_tables``: those of ``efi/systab``; the ESRT is added only when
          ``esrt_address`` is given, since nothing under ``/sys/firmware`` says where it is
          (take it from a kernel log's ``efi:`` or ``esrt: Reserving`` line).
        - ``memory``: with ``esrt_address`` and a complete ESRT, a PhysicalMemory of unknown
          background holding the ESRT bytes as Linux exposed them (what the consumer read, which
          under Xen may differ from what firmware wrote); else None.
        """
        notes = [f"sysfs copy {self.path}"]
        memory_map = None
        if self.runtime_map is not None:
            # Linux x86 efi_map_regions walks the map top-down (efi_map_next_entry_reverse) to
            # hand out virtual addresses, so runtime-map/N is in that order, not the firmware's:
            # sorted, it says nothing about how the firmware ordered its map.
            memory_map = MemoryMap(tuple(sorted(self.runtime_map, key=lambda d: d.phys_addr)))
            notes.append(f"memory map: {RUNTIME_MAP_EVIDENCE}")
        tables = list(self.config_tables())
        if self.systab:
            notes.append("config tables: efi/systab (ACPI/SMBIOS/UGA only; ESRT not listed)")
        memory = None
        esrt = self.esrt.to_esrt() if self.esrt is not None else None
        if esrt is not None:
            notes.append(
                f"ESRT from efi/esrt: {esrt.fw_resource_count} entries "
                f"(values as the kernel exposed them)"
            )
        if esrt_address is not None:
            tables.append(ConfigurationTable(ESRT_GUID, esrt_address))
            if esrt is not None:
                memory = PhysicalMemory(background=Fill.UNKNOWN)
                memory.write(esrt_address, esrt.build())
            else:
                notes.append("ESRT bytes unknown: efi/esrt incomplete or absent")
        elif esrt is not None:
            notes.append(
                "ESRT address unknown from sysfs alone: add the kernel log of the same boot"
            )
        for p in self.problems:
            notes.append(f"problem: {p}")
        return Machine(
            memory_map=memory_map,
            memory_map_complete=False,
            config_table_address=self.config_table.value,
            config_tables=tuple(tables) if (tables or self.efi) else None,
            memory=memory,
            name=Path(self.path).name or "sysfs",
            description="copy of /sys/firmware",
            notes=notes,
        )


def _systab_table(label: str) -> known_tables.KnownTable | None:
    if label in _SYSTAB_LABELS:
        return known_tables.by_linux_label(_SYSTAB_LABELS[label])
    if label in _SYSTAB_BY_NAME:
        return known_tables.by_name(_SYSTAB_BY_NAME[label])
    return None


# --------------------------------------------------------------------------------------------
# Layout: where firmware/, sys/ and the copy's root are
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    fw: str  # the directory standing for /sys/firmware
    sys: str | None  # standing for /sys
    root: str | None  # standing for / (proc/, dmesg.txt)


def _layout_in(tree: Tree, prefix: str) -> _Layout | None:
    if tree.is_dir(rel_join(prefix, "sys/firmware")):
        return _Layout(rel_join(prefix, "sys/firmware"), rel_join(prefix, "sys"), prefix)
    if tree.is_dir(rel_join(prefix, "firmware")):
        return _Layout(rel_join(prefix, "firmware"), prefix, None)
    if tree.is_dir(rel_join(prefix, "efi")) or tree.is_dir(rel_join(prefix, "memmap")):
        return _Layout(prefix, None, None)
    return None


def _find_layout(tree: Tree, what: str) -> _Layout:
    layout = _layout_in(tree, "")
    if layout is None:
        top = tree.listdir("") or []
        if len(top) == 1:  # one wrapping directory, as `tar czf x.tgz copy/` makes
            layout = _layout_in(tree, top[0])
    if layout is None:
        raise ParseError(
            "no copy of /sys/firmware here (looked for sys/firmware/, firmware/, efi/, memmap/)",
            what=what,
        )
    return layout


def _dir_layout(path: Path) -> tuple[Path, _Layout]:
    """The base directory and layout for a directory argument."""
    tree = DirTree(path)
    layout = _layout_in(tree, "")
    if layout is not None and layout.fw == "":
        # path itself is the firmware directory: climb to the copy's root when named so.
        if path.name == "firmware" and path.parent.name == "sys":
            return path.parent.parent, _Layout("sys/firmware", "sys", "")
        if path.name == "firmware":
            return path.parent, _Layout("firmware", "", None)
    if layout is None:
        layout = _find_layout(tree, str(path))
    return path, layout


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _text(data: bytes) -> str:
    """A sysfs file's text: trailing NUL padding (GNU tar of live sysfs) dropped."""
    return data.rstrip(b"\0").decode("utf-8", "replace")


def _uint(text: str, bits: int) -> int:
    """Decimal or ``0x`` hex, as Linux prints them; ValueError otherwise or out of range."""
    s = text.strip()
    if re.fullmatch(r"0[xX][0-9a-fA-F]{1,32}", s):
        value = int(s, 16)
    elif re.fullmatch(r"\d{1,40}", s):
        value = int(s, 10)
    else:
        raise ValueError(f"not a number: {s[:40]!r}")
    if value >= 1 << bits:
        raise ValueError(f"{s[:40]} does not fit in {bits} bits")
    return value


class _Reader:
    def __init__(self, tree: Tree, layout: _Layout) -> None:
        self.tree = tree
        self.layout = layout
        self.problems: list[str] = []

    def raw(self, rel: str, cap: int = MAX_VALUE_BYTES, *, base: str | None = None) -> str | None:
        """Text of ``rel`` under the firmware dir (or ``base``); None if missing/unreadable."""
        prefix = self.layout.fw if base is None else base
        try:
            data = self.tree.read(rel_join(prefix, rel), cap)
        except Unreadable as exc:
            self.problems.append(f"{rel_join(prefix, rel)}: {exc}")
            return None
        return None if data is None else _text(data)

    def value(self, rel: str, bits: int = 64) -> SysfsValue[int]:
        prefix = self.layout.fw
        try:
            data = self.tree.read(rel_join(prefix, rel), MAX_VALUE_BYTES)
        except Unreadable as exc:
            self.problems.append(f"{rel}: {exc}")
            return SysfsValue(rel, None, None, str(exc))
        if data is None:
            return SysfsValue(rel, None)
        text = _text(data)
        try:
            return SysfsValue(rel, _uint(text, bits), text)
        except ValueError as exc:
            self.problems.append(f"{rel}: {exc}")
            return SysfsValue(rel, None, text, str(exc))

    def guid(self, rel: str) -> SysfsValue[Guid]:
        try:
            data = self.tree.read(rel_join(self.layout.fw, rel), MAX_VALUE_BYTES)
        except Unreadable as exc:
            self.problems.append(f"{rel}: {exc}")
            return SysfsValue(rel, None, None, str(exc))
        if data is None:
            return SysfsValue(rel, None)
        text = _text(data)
        try:
            return SysfsValue(rel, Guid.parse(text.strip()), text)
        except (ValueError, ParseError) as exc:
            problem = f"not a GUID: {text.strip()[:40]!r} ({exc})"
            self.problems.append(f"{rel}: {problem}")
            return SysfsValue(rel, None, text, problem)

    def indexed(self, rel: str, pattern: re.Pattern[str]) -> list[str] | None:
        """Sub-directory names of ``rel`` matching ``pattern`` (then the rest), numerically."""
        names = self.tree.listdir(rel_join(self.layout.fw, rel))
        if names is None:
            return None

        def key(name: str) -> tuple[int, int, str]:
            m = pattern.match(name)
            return (0, int(m.group(1) if m.groups() else m.group(0)), name) if m else (1, 0, name)

        return sorted(names, key=key)


def _read_esrt(r: _Reader) -> tuple[SysfsEsrt | None, tuple[tuple[str, str | None], ...]]:
    if not r.tree.is_dir(rel_join(r.layout.fw, "efi/esrt")):
        return None, ()
    tree: list[tuple[str, str | None]] = [("efi/esrt", None)]
    head = []
    for name in ("fw_resource_count", "fw_resource_count_max", "fw_resource_version"):
        bits = 64 if name == "fw_resource_version" else 32
        v = r.value(f"efi/esrt/{name}", bits)
        head.append(v)
        if v.text is not None:
            tree.append((v.file, v.text))
    names = r.indexed("efi/esrt/entries", _ENTRY_NAME)
    entries: list[SysfsEsrtEntry] | None = None
    if names is not None:
        tree.append(("efi/esrt/entries", None))
        entries = []
        for name in names:
            base = f"efi/esrt/entries/{name}"
            if not r.tree.is_dir(rel_join(r.layout.fw, base)):
                continue
            tree.append((base, None))
            fw_class = r.guid(f"{base}/fw_class")
            nums = [r.value(f"{base}/{f}", 32) for f in ESRT_ENTRY_FILES[1:]]
            shown: list[SysfsValue[Guid] | SysfsValue[int]] = [fw_class, *nums]
            for sv in shown:
                if sv.text is not None:
                    tree.append((sv.file, sv.text))
            entries.append(SysfsEsrtEntry(name, fw_class, *nums))
    esrt = SysfsEsrt(head[0], head[1], head[2], None if entries is None else tuple(entries))
    return esrt, tuple(tree)


def _read_systab(r: _Reader) -> dict[str, int]:
    text = r.raw("efi/systab")
    out: dict[str, int] = {}
    if text is None:
        return out
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        m = _SYSTAB_LINE.match(line)
        if m is None:
            r.problems.append(f"efi/systab line {n}: not LABEL=0x...: {line[:60]!r}")
            continue
        label, value = m.groups()
        addr = int(value, 0) if not value.isdigit() else int(value, 10)
        if addr > U64_MAX:
            r.problems.append(f"efi/systab line {n}: address out of range")
            continue
        out.setdefault(label, addr)
        if _systab_table(label) is None:
            r.problems.append(f"efi/systab: {label} is not a table the registry knows")
    return out


def _read_runtime_map(r: _Reader) -> tuple[MemoryDescriptor, ...] | None:
    names = r.indexed("efi/runtime-map", re.compile(r"(\d{1,9})\Z"))
    if names is None:
        return None
    out = []
    for name in names:
        base = f"efi/runtime-map/{name}"
        if not _INDEX_NAME.match(name) or not r.tree.is_dir(rel_join(r.layout.fw, base)):
            continue
        vals = {f: r.value(f"{base}/{f}", 32 if f == "type" else 64) for f in RUNTIME_MAP_FILES}
        known = {f: v.value for f, v in vals.items() if v.value is not None}
        if len(known) != len(vals):
            missing = [f for f in vals if f not in known]
            r.problems.append(f"{base}: skipped, no usable {', '.join(missing)}")
            continue
        out.append(
            MemoryDescriptor(
                type=known["type"],
                phys_addr=known["phys_addr"],
                num_pages=known["num_pages"],
                attribute=known["attribute"],
                virt_addr=known["virt_addr"],
            )
        )
    return tuple(out)


def _read_memmap(r: _Reader) -> tuple[FirmwareMemmapEntry, ...] | None:
    names = r.indexed("memmap", re.compile(r"(\d{1,9})\Z"))
    if names is None:
        return None
    out = []
    for name in names:
        base = f"memmap/{name}"
        if not _INDEX_NAME.match(name) or not r.tree.is_dir(rel_join(r.layout.fw, base)):
            continue
        start = r.value(f"{base}/start")
        end = r.value(f"{base}/end")
        kind = r.raw(f"{base}/type")
        if start.value is None or end.value is None or kind is None:
            r.problems.append(f"{base}: skipped, start/end/type missing or unreadable")
            continue
        if end.value < start.value:
            r.problems.append(f"{base}: skipped, end {end.value:#x} below start {start.value:#x}")
            continue
        kind = kind.strip()
        if kind not in E820_TYPE_STRINGS:
            r.problems.append(f"{base}/type: unknown type string {kind[:60]!r}")
        out.append(FirmwareMemmapEntry(int(name), start.value, end.value, kind))
    return tuple(out)


def _read_hypervisor(r: _Reader) -> tuple[str | None, str | None, str | None]:
    htype = hversion = caps = None
    if r.layout.sys is not None:
        # Linux drivers/xen/sys-hypervisor.c: type "%s\n"; version/{major,minor} "%d\n",
        # version/extra "%s\n".
        text = r.raw("hypervisor/type", base=r.layout.sys)
        htype = text.strip() if text is not None else None
        major = r.raw("hypervisor/version/major", base=r.layout.sys)
        minor = r.raw("hypervisor/version/minor", base=r.layout.sys)
        extra = r.raw("hypervisor/version/extra", base=r.layout.sys)
        if major is not None and minor is not None:
            hversion = f"{major.strip()}.{minor.strip()}{(extra or '').strip()}"
    if r.layout.root is not None:
        text = r.raw("proc/xen/capabilities", base=r.layout.root)
        caps = text.strip() if text is not None else None
    return htype, hversion, caps


def _read(tree: Tree, layout: _Layout, path: str, kind: str, extras: bool = True) -> SysfsEvidence:
    r = _Reader(tree, layout)
    r.problems.extend(tree.notes)
    efi_names = tree.listdir(rel_join(layout.fw, "efi"))
    esrt, esrt_files = _read_esrt(r)
    htype, hversion, caps = _read_hypervisor(r)
    base = layout.root if layout.root is not None else (layout.sys or "")
    logs: dict[str, bytes | None] = {}
    manifest = None
    if extras:
        for name in ("dmesg.txt", "xl-dmesg.txt"):
            try:
                logs[name] = tree.read(rel_join(base, name), MAX_LOG_BYTES)
            except Unreadable as exc:
                r.problems.append(f"{rel_join(base, name)}: {exc}")
        manifest = r.raw("MANIFEST.txt", base=base)
    return SysfsEvidence(
        path=path,
        layout=kind,
        efi=efi_names is not None,
        efi_files=tuple(sorted(efi_names or ())),
        esrt=esrt,
        systab=_read_systab(r),
        config_table=r.value("efi/config_table"),
        fw_vendor=r.value("efi/fw_vendor"),
        runtime=r.value("efi/runtime"),
        fw_platform_size=r.value("efi/fw_platform_size", 32),
        runtime_map=_read_runtime_map(r),
        firmware_memmap=_read_memmap(r),
        hypervisor_type=htype,
        hypervisor_version=hversion,
        xen_capabilities=caps,
        kernel_log=logs.get("dmesg.txt"),
        xen_log=logs.get("xl-dmesg.txt"),
        manifest=manifest,
        problems=tuple(dict.fromkeys(r.problems)),
        _esrt_files=esrt_files,
    )


def read_sysfs(path: str | os.PathLike[str], *, extras: bool = True) -> SysfsEvidence:
    """Read a copy of ``/sys/firmware``: a directory standing for it (or holding ``firmware/``
    or ``sys/firmware/``), or a ``.tar``/``.tar.gz`` of one. Raises ParseError when ``path`` is
    not such a copy, or is a hostile archive; SourceError when it cannot be opened at all.

    ``extras``: also read the ``dmesg.txt``, ``xl-dmesg.txt`` and ``MANIFEST.txt`` that
    ``collect`` puts beside the tree (off for the live machine, where no such files belong).
    """
    p = Path(path)
    if p.is_dir():
        base, layout = _dir_layout(p)
        return _read(DirTree(base), layout, str(p), "directory", extras)
    tree = TarTree(p)
    layout = _find_layout(tree, str(p))
    return _read(tree, layout, str(p), "tar", extras)


def looks_like_sysfs(path: str | os.PathLike[str]) -> bool:
    """Cheap test for source sniffing: a directory with the layout, or a tar archive."""
    p = Path(path)
    try:
        if p.is_dir():
            _dir_layout(p)
            return True
        return tarfile.is_tarfile(p)
    except (ParseError, OSError, tarfile.TarError, EOFError, zlib.error, ValueError, LZMAError):
        return False


__all__ = [  # the bounds and trees live in sysfs_tree; their names stay importable from here
    "E820_TYPE_STRINGS",
    "EFI_TOP_FILES",
    "ESRT_ENTRY_FILES",
    "MAX_ARCHIVE_BYTES",
    "MAX_DIR_ENTRIES",
    "MAX_KEPT_BYTES",
    "MAX_LINK_HOPS",
    "MAX_LOG_BYTES",
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "MAX_VALUE_BYTES",
    "RUNTIME_MAP_EVIDENCE",
    "RUNTIME_MAP_FILES",
    "U32_MAX",
    "U64_MAX",
    "FirmwareMemmapEntry",
    "SysfsEsrt",
    "SysfsEsrtEntry",
    "SysfsEvidence",
    "SysfsValue",
    "looks_like_sysfs",
    "read_sysfs",
]
