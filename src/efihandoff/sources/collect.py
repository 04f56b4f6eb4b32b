"""``efihandoff collect``: a ``.tar.gz`` of what this machine shows, for attaching to bug reports.

The archive holds, under the paths they have on the machine (so :func:`read_sysfs` reads it):

- ``sys/firmware/efi/{systab,config_table,fw_platform_size,fw_vendor,runtime}``,
  ``sys/firmware/efi/esrt/**``, ``sys/firmware/efi/runtime-map/**`` (never ``efivars``),
- ``sys/firmware/memmap/**``,
- ``sys/hypervisor/type``, ``sys/hypervisor/version/{major,minor,extra}``,
  ``proc/xen/capabilities``,
- ``dmesg.txt`` (the kernel log, see :mod:`efihandoff.sources.live`) and ``MANIFEST.txt`` (what
  was collected, from where, and what could not be read and why).

Sources are only opened read-only. The archive is written to a temporary file beside the target
and renamed into place; nothing is ever written under ``/sys``, ``/dev`` or ``/proc`` (nor under
``root``'s, when ``root`` is a fake tree).
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from efihandoff import __version__
from efihandoff.errors import OutputError
from efihandoff.sources.live import read_live_kernel_log
from efihandoff.sources.sysfs import (
    EFI_TOP_FILES,
    MAX_DIR_ENTRIES,
    MAX_VALUE_BYTES,
    _DirTree,
    _Unreadable,
)

FORBIDDEN_ROOTS = ("/sys", "/dev", "/proc")
SUBTREES = ("sys/firmware/efi/esrt", "sys/firmware/efi/runtime-map", "sys/firmware/memmap")
SINGLE_FILES = (
    *(f"sys/firmware/efi/{name}" for name in EFI_TOP_FILES),
    "sys/hypervisor/type",
    "sys/hypervisor/version/major",
    "sys/hypervisor/version/minor",
    "sys/hypervisor/version/extra",
    "proc/xen/capabilities",
)
MAX_FILES = 20_000  # files taken from the subtrees (a real machine has a few hundred)


@dataclass(frozen=True)
class CollectReport:
    """What ``collect`` wrote."""

    path: str
    files: tuple[str, ...]  # archive paths of the files written (MANIFEST.txt included)
    skipped: tuple[tuple[str, str], ...]  # (path on the machine, why)
    kernel_log_source: str | None
    size: int  # bytes of the archive


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
    for candidate in (str(target), str(real)):
        bad = _under(candidate, FORBIDDEN_ROOTS) or _under(candidate, source_roots)
        if bad is not None:
            raise OutputError(f"{out}: refusing to write under {bad}")
    if real.is_dir():
        raise OutputError(f"{out}: is a directory")
    if not real_parent.is_dir():
        raise OutputError(f"{out}: directory {real_parent} does not exist")
    return real


def _osrelease(tree: _DirTree) -> str | None:
    try:
        data = tree.read("proc/sys/kernel/osrelease", 256)
    except _Unreadable:
        return None
    return data.decode("utf-8", "replace").strip() if data else None


def collect(out_path: str | os.PathLike[str], root: str | os.PathLike[str] = "/") -> CollectReport:
    """Write the archive to ``out_path`` (see module docstring). Raises OutputError when the
    target is refused or cannot be written; unreadable sources are noted, not fatal."""
    base = Path(root)
    target = _check_target(Path(out_path), base)
    tree = _DirTree(base)
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
        except _Unreadable as exc:
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
    files = [name for name, data in members if data is not None]
    manifest = _manifest(base, tree, now, files, skipped, log.source, log.notes)
    members.append(("MANIFEST.txt", manifest))
    files.append("MANIFEST.txt")
    size = _write(target, members, now)
    return CollectReport(str(target), tuple(files), tuple(skipped), log.source, size)


def _manifest(
    base: Path,
    tree: _DirTree,
    now: int,
    files: list[str],
    skipped: list[tuple[str, str]],
    log_source: str | None,
    log_notes: tuple[str, ...],
) -> bytes:
    lines = [
        f"efihandoff collect {__version__}",
        f"created: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}",
        f"root: {base}",
        f"kernel: {_osrelease(tree) or 'unknown'}",
        f"kernel log: {log_source or 'not readable'}",
    ]
    lines += [f"  {note}" for note in log_notes]
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
            with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
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
