"""The running machine, read-only: /sys/firmware, the kernel log, and whether it is a Xen dom0.

Nothing is written and no privilege is asked for: what cannot be read (without root: the ESRT
entry files, ``systab``, ``runtime-map``; often ``/dev/kmsg``) is listed with the reason. The
``root`` argument stands for ``/`` so tests can point it at a fake tree; the ``dmesg`` and
``journalctl`` commands are only run when ``root`` is the real ``/``.

Kernel log sources, in order:

1. ``/dev/kmsg``, read non-blocking record by record (Linux kernel/printk/printk.c
   ``devkmsg_read``: one ``PRIO,SEQ,USEC,FLAGS;message`` record per read, ``EAGAIN`` at the end,
   ``EPIPE`` when records were overwritten; Documentation/ABI/testing/dev-kmsg), written out in
   dmesg's ``[seconds.micros] message`` form. Readable by root or when
   ``kernel.dmesg_restrict`` is 0. When the first record is not sequence 0 the ring buffer has
   wrapped and the early boot lines (the ``efi:`` ones) are gone, so the next sources are tried.
2. ``journalctl -k -b 0`` (the whole current boot when journald keeps it).
3. ``dmesg`` (the same ring buffer as 1, through syslog(2)).
4. ``/var/log/kern.log`` (syslog; several boots, the kernel-log reader splits them).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from efihandoff.errors import ParseError, SourceError
from efihandoff.machine import Machine
from efihandoff.sources.sysfs import MAX_LOG_BYTES, SysfsEvidence, read_sysfs

COMMAND_TIMEOUT = 20  # seconds for dmesg / journalctl
_KMSG_RECORD = re.compile(rb"(\d{1,3}),(\d{1,20}),(\d{1,20}),[^;]{0,32};")
_KMSG_READ = 16384  # one record per read; Linux caps a record well below this


@dataclass(frozen=True)
class KernelLogRead:
    """The kernel log as one source gave it, and what was tried before."""

    source: str | None  # "/dev/kmsg", "journalctl -k -b 0", "dmesg", "/var/log/kern.log"
    data: bytes | None = field(repr=False)
    notes: tuple[str, ...] = ()  # one line per source tried: what happened
    complete: bool = False  # from the start of the boot (not a wrapped ring buffer)


@dataclass(frozen=True)
class LiveEvidence:
    """What the running machine shows without changing anything."""

    root: str
    efi_booted: bool  # /sys/firmware/efi exists
    sysfs: SysfsEvidence | None
    kernel_log: KernelLogRead
    is_xen_dom0: bool
    xen_evidence: str
    unreadable: tuple[tuple[str, str], ...]  # (path, why)

    def to_machine(self, esrt_address: int | None = None) -> Machine:
        """The Machine of the sysfs part (see :meth:`SysfsEvidence.to_machine`)."""
        if self.sysfs is None:
            machine = Machine(name="live", description="the running machine (no /sys/firmware)")
        else:
            machine = self.sysfs.to_machine(esrt_address)
            machine.name = "live"
            machine.description = "the running machine"
        machine.notes.append(f"kernel log: {self.kernel_log.source or 'not readable'}")
        if self.is_xen_dom0:
            machine.notes.append(f"Xen dom0: {self.xen_evidence}")
        for path, why in self.unreadable:
            machine.notes.append(f"unreadable: {path}: {why}")
        return machine


def is_real_root(root: Path) -> bool:
    """Whether ``root`` is this machine's ``/`` (not a copy of one)."""
    try:
        return root.resolve() == Path("/").resolve()
    except OSError:
        return False


def _kmsg_to_dmesg(raw: bytes) -> tuple[bytes, int | None]:
    """``/dev/kmsg`` records as dmesg lines; also the first record's sequence number.

    Lines that are not records (continuation ``KEY=value`` lines start with a space) are dropped.
    """
    out = bytearray()
    first = None
    for line in raw.split(b"\n"):
        m = _KMSG_RECORD.match(line)
        if m is None:
            continue
        if first is None:
            first = int(m.group(2))
        usec = int(m.group(3))
        out += b"[%5d.%06d] " % (usec // 1_000_000, usec % 1_000_000)
        out += line[m.end() :] + b"\n"
    return bytes(out), first


def _read_kmsg(path: Path, cap: int) -> bytes:
    """Records from a ``/dev/kmsg`` (a character device) or a file standing for one."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        chunks: list[bytes] = []
        total = 0
        if stat.S_ISREG(mode):
            while total <= cap:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            return b"".join(chunks)[:cap]
        if not stat.S_ISCHR(mode):
            raise OSError(errno.EINVAL, "not a character device")
        while total < cap:
            try:
                chunk = os.read(fd, _KMSG_READ)
            except BlockingIOError:
                break  # EAGAIN: no more records
            except BrokenPipeError:
                continue  # EPIPE: records overwritten while reading; go on with the next
            if not chunk:
                break
            if not chunk.endswith(b"\n"):
                chunk += b"\n"
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_tail(path: Path, cap: int) -> bytes:
    """A log file, or its last ``cap`` bytes when larger."""
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > cap:
            f.seek(size - cap)
            f.readline()  # drop the cut line
        return f.read(cap)


def _run(argv: list[str], cap: int) -> bytes:
    exe = shutil.which(argv[0])
    if exe is None:
        raise OSError(errno.ENOENT, f"{argv[0]} not found")
    env = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(
        [exe, *argv[1:]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OSError(errno.EPERM, err[-1] if err else f"exit status {done.returncode}")
    return done.stdout[:cap]


def read_live_kernel_log(
    root: str | os.PathLike[str] = "/", cap: int = MAX_LOG_BYTES
) -> KernelLogRead:
    """The current boot's kernel log from the first source that gives it whole (see module
    docstring); a wrapped ``/dev/kmsg`` is kept only when nothing better is readable."""
    base = Path(root)
    real = is_real_root(base)
    notes: list[str] = []
    fallback: KernelLogRead | None = None

    kmsg = base / "dev/kmsg"
    try:
        data, first = _kmsg_to_dmesg(_read_kmsg(kmsg, cap))
        if not data:
            notes.append("/dev/kmsg: no records")
        elif first == 0:
            notes.append("/dev/kmsg: read")
            return KernelLogRead("/dev/kmsg", data, tuple(notes), True)
        else:
            notes.append(
                f"/dev/kmsg: ring buffer wrapped (first record is number {first}): early boot "
                "lines lost"
            )
            fallback = KernelLogRead("/dev/kmsg", data, (), False)
    except FileNotFoundError:
        notes.append("/dev/kmsg: missing")
    except OSError as exc:
        notes.append(f"/dev/kmsg: {exc.strerror or exc} (needs root or kernel.dmesg_restrict=0)")

    commands = (["journalctl", "-k", "-b", "0", "--no-pager", "-q"], ["dmesg"])
    for argv in commands:
        name = " ".join(argv[:4]) if argv[0] == "journalctl" else argv[0]
        if not real:
            notes.append(f"{name}: not run (root is not /)")
            continue
        try:
            data = _run(argv, cap)
        except (OSError, subprocess.SubprocessError) as exc:
            notes.append(f"{name}: {getattr(exc, 'strerror', None) or exc}")
            continue
        if not data.strip():
            notes.append(f"{name}: empty")
            continue
        if argv[0] == "dmesg" and fallback is not None:
            notes.append("dmesg: same ring buffer as /dev/kmsg; not better")
            continue
        notes.append(f"{name}: read")
        return KernelLogRead(name, data, tuple(notes), argv[0] == "journalctl")

    kern = base / "var/log/kern.log"
    try:
        data = _read_tail(kern, cap)
        if data.strip():
            notes.append("/var/log/kern.log: read")
            return KernelLogRead("/var/log/kern.log", data, tuple(notes), True)
        notes.append("/var/log/kern.log: empty")
    except FileNotFoundError:
        notes.append("/var/log/kern.log: missing")
    except OSError as exc:
        notes.append(f"/var/log/kern.log: {exc.strerror or exc}")

    if fallback is not None:
        return KernelLogRead(fallback.source, fallback.data, tuple(notes), False)
    return KernelLogRead(None, None, tuple(notes), False)


def read_live(root: str | os.PathLike[str] = "/") -> LiveEvidence:
    """Read the running machine (``root`` stands for ``/``). Raises SourceError only when
    ``root`` is not a directory; everything else unreadable is listed in ``unreadable``."""
    base = Path(root)
    if not base.is_dir():
        raise SourceError(f"{base}: not a directory")
    unreadable: list[tuple[str, str]] = []
    sysfs = None
    fw = base / "sys/firmware"
    if fw.is_dir():
        try:
            sysfs = read_sysfs(base, extras=False)
        except ParseError as exc:
            unreadable.append(("/sys/firmware", str(exc)))
        except SourceError as exc:
            unreadable.append(("/sys/firmware", str(exc)))
    else:
        unreadable.append(("/sys/firmware", "missing"))
    if sysfs is not None:
        for problem in sysfs.problems:
            path, _, why = problem.partition(": ")
            unreadable.append((_live_path(path), why or problem))
        if sysfs.esrt is not None and any(
            not v.present and v.problem for e in sysfs.esrt.entries or () for v in e.values()
        ):
            unreadable.append(
                (
                    "/sys/firmware/efi/esrt/entries",
                    "entry files are mode 0400 and need CAP_SYS_ADMIN (Linux esrt.c "
                    "esre_attr_show); run as root",
                )
            )
    log = read_live_kernel_log(base)
    if log.data is None:
        unreadable.append(("kernel log", "; ".join(log.notes)))
    if sysfs is not None:
        dom0, why = sysfs.xen_dom0_evidence
    else:
        dom0, why = _xen_without_sysfs(base)
    return LiveEvidence(
        root=str(base),
        efi_booted=(fw / "efi").is_dir(),
        sysfs=sysfs,
        kernel_log=log,
        is_xen_dom0=dom0,
        xen_evidence=why,
        unreadable=tuple(unreadable),
    )


def _live_path(rel: str) -> str:
    rel = rel.lstrip("/")
    if rel.startswith(("sys/", "proc/")):
        return "/" + rel
    return "/sys/firmware/" + rel


def _xen_without_sysfs(base: Path) -> tuple[bool, str]:
    try:
        caps = (base / "proc/xen/capabilities").read_text("utf-8", "replace")
    except OSError:
        return False, "no /sys/firmware and no /proc/xen/capabilities"
    if "control_d" in caps:
        return True, "proc/xen/capabilities contains control_d"
    return False, "proc/xen/capabilities lacks control_d (a domU)"
