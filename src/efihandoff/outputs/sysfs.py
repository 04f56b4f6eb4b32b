"""Write a /sys/firmware tree exactly as Linux exposes it, atomically and never under /sys."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
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
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        for rel, data in entries:
            p = tmp.joinpath(*rel.parts)
            if data is None:
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                with open(p, "xb") as f:
                    f.write(data)
        os.chmod(tmp, 0o755)  # mkdtemp made it 0700
        _replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _replace(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first and put back
    if the rename fails."""
    if not target.exists():
        new.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        new.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)
