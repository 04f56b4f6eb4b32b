"""Write a /sys/firmware tree exactly as Linux exposes it, atomically and never under /sys."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from efihandoff.errors import OutputError

_FORBIDDEN = ("/sys", "/dev", "/proc")


def write_tree(tree: Mapping[str, str | None], out: str | Path, *, force: bool = False) -> Path:
    """Write ``tree`` (relative paths; None marks a directory) under ``out``, which stands for
    /sys/firmware. The tree is built beside ``out`` and renamed into place."""
    target = Path(out).absolute()
    resolved = Path(os.path.realpath(target))
    for bad in _FORBIDDEN:
        if resolved == Path(bad) or Path(bad) in resolved.parents:
            raise OutputError(f"refusing to write under {bad}: {target}")
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"{target} exists and is not a directory")
        if any(target.iterdir()) and not force:
            raise OutputError(f"{target} is not empty (use --force to replace it)")
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
        for rel, content in sorted(tree.items()):
            if rel.startswith("/") or ".." in Path(rel).parts:
                raise OutputError(f"bad path in tree: {rel!r}")
            p = tmp / rel
            if content is None:
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(content, encoding="ascii")
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old)
        else:
            tmp.rename(target)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target
