"""Write a /sys/firmware tree exactly as Linux exposes it, atomically and never under /sys."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath

from efihandoff.errors import OutputError

FORBIDDEN = (Path("/sys"), Path("/dev"), Path("/proc"))
Tree = Mapping[str, str | bytes | None]  # relative path -> contents; None marks a directory


def check_target(out: str | Path) -> Path:
    """``out`` made absolute; OutputError when it, or what its symlinks resolve to, lies under
    /sys, /dev or /proc."""
    target = Path(os.path.abspath(out))
    for p in (target, Path(os.path.realpath(target))):
        for bad in FORBIDDEN:
            if p == bad or bad in p.parents:
                raise OutputError(f"refusing to write under {bad}: {target}")
    return target


def check_tree(tree: Tree) -> list[tuple[PurePosixPath, bytes | None]]:
    """The tree's entries as (relative path, bytes or None for a directory), parents first;
    OutputError for a path that is empty, absolute or climbs out with ``..``."""
    out = []
    for rel, content in tree.items():
        p = PurePosixPath(rel)
        if not rel or "\0" in rel or p.is_absolute() or ".." in p.parts or not p.parts:
            raise OutputError(f"bad path in tree: {rel!r}")
        if content is None or isinstance(content, bytes):
            data = content
        else:
            try:
                data = content.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError as exc:
                raise OutputError(f"cannot encode {rel!r}: {exc.reason}") from exc
        out.append((p, data))
    out.sort(key=lambda item: item[0].parts)
    return out


def write_tree(tree: Tree, out: str | Path, *, force: bool = False) -> Path:
    """Write ``tree`` (relative paths; None marks a directory; text is written byte for byte)
    under ``out``, which stands for /sys/firmware, and return ``out`` made absolute.

    The tree is built in a temporary directory beside ``out`` and renamed into place, so
    ``out`` holds either the whole new tree or what it held before; the temporary directory is
    removed on failure. A non-empty ``out`` is refused unless ``force``."""
    target = check_target(out)
    entries = check_tree(tree)
    if target.is_symlink():
        raise OutputError(f"{target} is a symlink; give the directory itself")
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"{target} exists and is not a directory")
        if not force and any(target.iterdir()):
            raise OutputError(f"{target} is not empty (use --force to replace it)")
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.is_dir():
            raise OutputError(f"{target.parent} is not a directory")
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    with removed_on_signal():
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            _fill(tmp, entries)
            os.chmod(tmp, 0o755)  # mkdtemp made it 0700
            _replace(tmp, target)
            tmp = None
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _fill(tmp: Path, entries: list[tuple[PurePosixPath, bytes | None]]) -> None:
    for rel, data in entries:
        p = tmp.joinpath(*rel.parts)
        if data is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "xb") as f:
                f.write(data)


def _replace(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``. An existing ``target`` is swapped with ``new`` in one step
    (Linux renameat2 RENAME_EXCHANGE: there is no moment without ``target``) and the old tree
    removed after; where the kernel or file system cannot exchange, ``target`` is moved aside,
    ``new`` renamed in and the old one put back if that fails, with SIGINT and SIGTERM held
    off between the two renames."""
    if not target.exists():
        new.rename(target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # new now holds the old tree
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    old.rmdir()
    try:
        with _signals_held():
            target.rename(old)
            try:
                new.rename(target)
            except OSError:
                old.rename(target)
                raise
    finally:
        if old.exists() and target.exists():
            shutil.rmtree(old, ignore_errors=True)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False when the system cannot (then nothing happened)."""
    fn = _renameat2()
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


_RENAMEAT2: list[Callable[..., int] | None] = []


def _renameat2() -> Callable[..., int] | None:
    if not _RENAMEAT2:
        fn = None
        name = ctypes.util.find_library("c")
        if name:
            with contextlib.suppress(OSError, AttributeError):
                libc = ctypes.CDLL(name, use_errno=True)
                fn = libc.renameat2
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_uint]
                fn.restype = ctypes.c_int
        _RENAMEAT2.append(fn)
    return _RENAMEAT2[0]


_HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM delivered only after the block (main thread, POSIX)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Interrupted(BaseException):
    """SIGTERM while an output is being written: unwinds like KeyboardInterrupt so temporary
    files are removed, then the process ends as SIGTERM would have ended it."""


@contextlib.contextmanager
def removed_on_signal() -> Iterator[None]:
    """While the block writes temporary files: SIGTERM unwinds it (``finally`` clauses run, so
    the temporaries are removed) and is then delivered again with its default action; SIGINT
    unwinds as KeyboardInterrupt already does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except Interrupted:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        if signal.getsignal(signal.SIGTERM) is on_term:
            signal.signal(signal.SIGTERM, previous)
