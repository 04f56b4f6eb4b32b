"""``efihandoff collect``: a ``.tar.gz`` of what this machine shows, for attaching to bug reports.

The archive holds, under the paths they have on the machine (so :func:`read_sysfs` reads it):

- ``sys/firmware/efi/{systab,config_table,fw_platform_size,fw_vendor,runtime}``,
  ``sys/firmware/efi/esrt/**``, ``sys/firmware/efi/runtime-map/**`` (never ``efivars``),
- ``sys/firmware/memmap/**``,
- ``sys/hypervisor/{type,guest_type}``, ``sys/hypervisor/version/{major,minor,extra}``,
  ``sys/hypervisor/properties/*``, ``sys/hypervisor/compilation/{compiler,compile_date}``,
  ``sys/hypervisor/start_flags/**`` (never ``uuid``: a serial-like identifier; nor
  ``compilation/compiled_by``: a person's login), ``proc/xen/capabilities``,
- ``dmesg.txt`` (the kernel log, see :mod:`efihandoff.sources.live`),
- ``xl-dmesg.txt`` (a Xen dom0 only: what ``xl dmesg`` prints, Xen's own console ring) and
  ``MANIFEST.txt`` (what was collected, from where, what was run, and what could not be read
  and why).

Sources are only opened read-only, and ``xl dmesg`` only reads (never ``-c``, which would clear
the ring); it runs without a shell, for at most ``XL_TIMEOUT`` seconds and ``MAX_XL_BYTES`` of
output. The archive is written to a temporary file beside the target and renamed into place;
nothing is ever written under ``/sys``, ``/dev`` or ``/proc`` (nor under ``root``'s, when
``root`` is a fake tree).

Machines without Python 3.11 (a Qubes dom0 is offline, XCP-ng's dom0 runs an old Python) use
``data/efihandoff-collect.sh`` instead (``efihandoff collect --print-script`` prints it): the
same layout with nothing but ``sh``, ``cat`` and ``tar``.
"""

from __future__ import annotations

import contextlib
import io
import os
import selectors
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from efihandoff import __version__
from efihandoff.errors import OutputError
from efihandoff.sources.live import is_real_root, read_live_kernel_log
from efihandoff.sources.sysfs import EFI_TOP_FILES
from efihandoff.sources.sysfs_tree import MAX_DIR_ENTRIES, MAX_VALUE_BYTES, DirTree, Unreadable

FORBIDDEN_ROOTS = ("/sys", "/dev", "/proc")
SUBTREES = (
    "sys/firmware/efi/esrt",
    "sys/firmware/efi/runtime-map",
    "sys/firmware/memmap",
    "sys/hypervisor/start_flags",
)
# Linux drivers/xen/sys-hypervisor.c: type, guest_type; the version, properties and compilation
# groups. Left out: uuid (the domain handle, serial-like), compilation/compiled_by (a login).
HYPERVISOR_FILES = (
    "type",
    "guest_type",
    "version/major",
    "version/minor",
    "version/extra",
    "properties/capabilities",
    "properties/changeset",
    "properties/features",
    "properties/pagesize",
    "properties/virtual_start",
    "properties/buildid",
    "compilation/compiler",
    "compilation/compile_date",
)
SINGLE_FILES = (
    *(f"sys/firmware/efi/{name}" for name in EFI_TOP_FILES),
    *(f"sys/hypervisor/{name}" for name in HYPERVISOR_FILES),
    "proc/xen/capabilities",
)
MAX_FILES = 20_000  # files taken from the subtrees (a real machine has a few hundred)
XL_TIMEOUT = 10  # seconds for `xl dmesg`
MAX_XL_BYTES = 16 << 20  # `xl dmesg` output kept (Xen's console ring is far smaller)
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # where xl lives, searched after PATH
SCRIPT = "efihandoff-collect.sh"  # the sh collector, in efihandoff/data/


@dataclass(frozen=True)
class CollectReport:
    """What ``collect`` wrote."""

    path: str
    files: tuple[str, ...]  # archive paths of the files written (MANIFEST.txt included)
    skipped: tuple[tuple[str, str], ...]  # (path on the machine, why)
    kernel_log_source: str | None
    size: int  # bytes of the archive
    xen_log: XenLogRead | None = None  # `xl dmesg`: what was run and what happened


@dataclass(frozen=True)
class XenLogRead:
    """``xl dmesg`` on a Xen dom0: the command run (None: not run), its output, and one line
    saying what happened."""

    command: str | None
    data: bytes | None
    note: str
    dom0: bool = False  # the machine is a Xen dom0 (so a missing log is worth reporting)


def collector_script() -> bytes:
    """The POSIX ``sh`` collector shipped with the package (see module docstring)."""
    return resources.files("efihandoff").joinpath("data").joinpath(SCRIPT).read_bytes()


def _under(path: str, roots: tuple[str, ...]) -> str | None:
    for r in roots:
        if path == r or path.startswith(r.rstrip("/") + "/"):
            return r
    return None


def _check_target(out: Path, root: Path) -> Path:
    """The absolute target; OutputError when it is somewhere we never write."""
    target = Path(os.path.abspath(out))
    try:
        real_parent = Path(os.path.realpath(target.parent))
    except OSError as exc:
        raise OutputError(f"{out}: cannot resolve its directory: {exc}") from None
    real = real_parent / target.name
    source_roots = tuple(
        os.path.realpath(Path(os.path.abspath(root)) / d) for d in ("sys", "dev", "proc")
    )
    # The name itself may be a symlink (into /sys, say): where it leads counts too, as for
    # the other outputs.
    for candidate in (str(target), str(real), os.path.realpath(real)):
        bad = _under(candidate, FORBIDDEN_ROOTS) or _under(candidate, source_roots)
        if bad is not None:
            raise OutputError(f"{out}: refusing to write under {bad}")
    if real.is_dir():
        raise OutputError(f"{out}: is a directory")
    if not real_parent.is_dir():
        raise OutputError(f"{out}: directory {real_parent} does not exist")
    return real


def _osrelease(tree: DirTree) -> str | None:
    try:
        data = tree.read("proc/sys/kernel/osrelease", 256)
    except Unreadable:
        return None
    return data.decode("utf-8", "replace").strip() if data else None


def _xen_dom0(tree: DirTree) -> tuple[bool, str]:
    """Whether the machine is a Xen dom0: ``proc/xen/capabilities`` decides when readable
    (Linux drivers/xen/xenfs/super.c capabilities_show prints control_d in the initial domain),
    else ``sys/hypervisor/type`` being xen (drivers/xen/sys-hypervisor.c type_show)."""

    def text(rel: str) -> str | None:
        try:
            data = tree.read(rel, MAX_VALUE_BYTES)
        except Unreadable:
            return None
        return None if data is None else data.decode("utf-8", "replace").strip("\0\n ")

    caps = text("proc/xen/capabilities")
    if caps is not None:
        if "control_d" in caps:
            return True, "/proc/xen/capabilities contains control_d"
        return False, "/proc/xen/capabilities lacks control_d (a domU)"
    if text("sys/hypervisor/type") == "xen":
        return True, "/sys/hypervisor/type is xen"
    return False, "not on Xen"


def _run_bounded(argv: list[str], timeout: float, cap: int) -> tuple[bytes, bytes, int, str | None]:
    """Run ``argv`` (no shell, stdin closed): (stdout up to ``cap`` bytes, the end of stderr,
    exit status, problem). The child is killed once it passes ``timeout`` seconds or ``cap``
    bytes; the problem then says which."""
    env = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    err = bytearray()
    problem = None
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            sel.register(proc.stderr, selectors.EVENT_READ)
            while sel.get_map() and problem is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    problem = f"timed out after {timeout:g} s"
                    break
                for key, _ in sel.select(left):
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    elif key.fileobj is proc.stdout:
                        out += chunk
                        if len(out) > cap:
                            problem = f"output cut at {cap} bytes"
                            del out[cap:]
                            break
                    else:
                        err += chunk
                        del err[:-4096]
        if problem is None:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                problem = f"timed out after {timeout:g} s"
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return bytes(out), bytes(err), proc.returncode, problem


def read_xen_log(
    root: str | os.PathLike[str] = "/",
    xl: str | None = None,
    *,
    timeout: float | None = None,
    cap: int | None = None,
) -> XenLogRead:
    """``xl dmesg`` when ``root`` shows a Xen dom0. ``xl`` names the command (a name looked up
    on PATH, or a path); by default ``xl`` on PATH or in the sbin directories (a user's PATH
    may lack them), run only when ``root`` is the real ``/`` (a fake tree is not this machine).
    ``timeout`` and ``cap`` default to ``XL_TIMEOUT`` and ``MAX_XL_BYTES``."""
    timeout = XL_TIMEOUT if timeout is None else timeout
    cap = MAX_XL_BYTES if cap is None else cap
    base = Path(root)
    dom0, why = _xen_dom0(DirTree(base))
    if not dom0:
        return XenLogRead(None, None, f"not run: not a Xen dom0 ({why})")
    if xl is None and not is_real_root(base):
        return XenLogRead(None, None, "not run (root is not /)", True)
    name = xl or "xl"
    search = os.environ.get("PATH", "")
    if xl is None:
        search = os.pathsep.join([search, *SBIN])
    exe = shutil.which(name, path=search)
    if exe is None:
        return XenLogRead(None, None, f"not run: {name} not found on PATH", True)
    command = f"{exe} dmesg"
    try:
        out, err, status, problem = _run_bounded([exe, "dmesg"], timeout, cap)
    except OSError as exc:
        return XenLogRead(command, None, f"could not run: {exc.strerror or exc}", True)
    if problem is not None and not out:
        return XenLogRead(command, None, problem, True)
    if problem is None and status != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        why = f"exit status {status}" + (f": {lines[-1].strip()}" if lines else "")
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            why += " (xl dmesg needs root)"
        return XenLogRead(command, None, why, True)
    if not out.strip():
        return XenLogRead(command, None, "printed nothing", True)
    note = f"read, {len(out)} bytes" + (f" ({problem}: incomplete)" if problem else "")
    return XenLogRead(command, out, note, True)


def collect(
    out_path: str | os.PathLike[str],
    root: str | os.PathLike[str] = "/",
    *,
    xl: str | None = None,
) -> CollectReport:
    """Write the archive to ``out_path`` (see module docstring). Raises OutputError when the
    target is refused or cannot be written; unreadable sources are noted, not fatal. ``xl``:
    the ``xl`` command to run on a dom0 (see :func:`read_xen_log`)."""
    base = Path(root)
    target = _check_target(Path(out_path), base)
    tree = DirTree(base)
    now = int(time.time())
    members: list[tuple[str, bytes | None]] = []  # (archive path, content; None = directory)
    seen_dirs: set[str] = set()
    skipped: list[tuple[str, str]] = []

    def add_dirs(path: str) -> None:
        """``path`` and every directory above it, once each."""
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in seen_dirs:
                seen_dirs.add(d)
                members.append((d, None))

    def add_file(rel: str, *, required: bool = False) -> None:
        try:
            data = tree.read(rel, MAX_VALUE_BYTES)
        except Unreadable as exc:
            skipped.append((f"/{rel}", str(exc)))
            return
        if data is None:
            if required:
                skipped.append((f"/{rel}", "missing"))
            return
        add_dirs(rel.rpartition("/")[0])
        members.append((rel, data))

    files_taken = 0
    for sub in SUBTREES:
        top = base / sub
        if not top.is_dir() or top.is_symlink():
            continue
        add_dirs(sub)
        walk_errors: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(
            top, followlinks=False, onerror=walk_errors.append
        ):
            rel_dir = Path(dirpath).relative_to(base).as_posix()
            dirnames.sort()
            del dirnames[MAX_DIR_ENTRIES:]
            for d in list(dirnames):
                if (Path(dirpath) / d).is_symlink():
                    skipped.append((f"/{rel_dir}/{d}", "symlink to a directory: not followed"))
                    dirnames.remove(d)
            add_dirs(rel_dir)
            for name in sorted(filenames)[:MAX_DIR_ENTRIES]:
                if files_taken >= MAX_FILES:
                    skipped.append((f"/{rel_dir}", f"more than {MAX_FILES} files: rest left out"))
                    break
                files_taken += 1
                add_file(f"{rel_dir}/{name}")
        for exc in walk_errors:
            where = Path(exc.filename).relative_to(base).as_posix() if exc.filename else sub
            skipped.append((f"/{where}", exc.strerror or str(exc)))
    for rel in SINGLE_FILES:
        add_file(rel)
    if not (base / "sys/firmware/efi").is_dir():
        skipped.append(("/sys/firmware/efi", "missing: this kernel was not booted through EFI"))

    log = read_live_kernel_log(base)
    if log.data is not None:
        members.append(("dmesg.txt", log.data))
    xen = read_xen_log(base, xl)
    if xen.data is not None:
        members.append(("xl-dmesg.txt", xen.data))
    elif xen.dom0:
        skipped.append(("xl dmesg", xen.note))
    files = [name for name, data in members if data is not None]
    manifest = _manifest(base, tree, now, files, skipped, log.source, log.notes, xen)
    members.append(("MANIFEST.txt", manifest))
    files.append("MANIFEST.txt")
    size = _write(target, members, now)
    return CollectReport(str(target), tuple(files), tuple(skipped), log.source, size, xen)


def _manifest(
    base: Path,
    tree: DirTree,
    now: int,
    files: list[str],
    skipped: list[tuple[str, str]],
    log_source: str | None,
    log_notes: tuple[str, ...],
    xen: XenLogRead,
) -> bytes:
    lines = [
        f"efihandoff collect {__version__}",
        f"created: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}",
        f"root: {base}",
        f"kernel: {_osrelease(tree) or 'unknown'}",
        f"kernel log: {log_source or 'not readable'}",
    ]
    lines += [f"  {note}" for note in log_notes]
    lines.append(f"xl dmesg: {xen.command + ': ' if xen.command else ''}{xen.note}")
    lines.append(f"files ({len(files)}):")
    lines += [f"  {name}" for name in files]
    lines.append(f"skipped ({len(skipped)}):")
    lines += [f"  {path}: {why}" for path, why in skipped]
    if any("esrt/entries" in path for path, _ in skipped):
        lines.append("note: the ESRT entry files need root (CAP_SYS_ADMIN); run collect as root")
    return ("\n".join(lines) + "\n").encode("utf-8", "replace")


def _write(target: Path, members: list[tuple[str, bytes | None]], now: int) -> int:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"{target}: cannot create a file beside it: {exc.strerror}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as raw:
            # a name ending in .tar gets a plain tar, as its name says; else gzip
            mode: Literal["w", "w:gz"] = "w" if target.name.lower().endswith(".tar") else "w:gz"
            with tarfile.open(fileobj=raw, mode=mode, format=tarfile.PAX_FORMAT) as tf:
                for name, data in members:
                    info = tarfile.TarInfo(name)
                    info.mtime = now
                    info.uname = info.gname = "root"
                    if data is None:
                        info.type = tarfile.DIRTYPE
                        info.mode = 0o755
                        tf.addfile(info)
                    else:
                        info.mode = 0o444
                        info.size = len(data)
                        tf.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
            size = raw.tell()
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"{target}: cannot write: {exc.strerror or exc}") from None
        raise
    return size
