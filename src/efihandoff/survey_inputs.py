"""Finding a survey's inputs: directories walked in sorted order (symlinks followed once per real
file), tar archives of logs member by member, sysfs copies whole; what is skipped and why, with
every name made safe to echo."""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from efihandoff.errors import SourceError

MAX_MEMBER_BYTES = 256 << 20  # one archive member read into memory (our bound)
MAX_MEMBERS = 1_000_000  # members listed from one archive
# One unit of work: ("path", display path) reads a file or directory with read_source;
# ("log", display path, bytes) is an archive member read as a kernel log.
Unit = tuple[Any, ...]


@dataclass(frozen=True)
class Skipped:
    """An input that gave no machine, and why."""

    path: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def check_roots(paths: Sequence[str]) -> None:
    """Raise :class:`SourceError` (one line) for an input path named by the caller that does
    not exist or cannot be read; what is wrong inside a directory is counted, not raised."""
    for root in paths:
        try:
            st = os.stat(root)
        except FileNotFoundError:
            raise SourceError(f"{echo_safe(root)}: no such file or directory") from None
        except OSError as exc:
            raise SourceError(f"{echo_safe(root)}: {exc.strerror or exc}") from None
        readable = os.access(root, os.R_OK | (os.X_OK if stat.S_ISDIR(st.st_mode) else 0))
        if not readable:
            raise SourceError(f"{echo_safe(root)}: permission denied")


def _is_sysfs_dir(p: Path) -> bool:
    try:
        from efihandoff.sources.sysfs import looks_like_sysfs
    except ImportError:  # pragma: no cover - reader not installed
        return False
    return looks_like_sysfs(p)


def _tar_kind(p: Path) -> str | None:
    """"tar" for a tar archive (plain or gzip), else None; by content, not name."""
    try:
        with p.open("rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:2] == b"\x1f\x8b" and p.name.endswith((".tar.gz", ".tgz")):
        return "tar"
    return None


def walk(roots: Sequence[str], skipped: list[Skipped]) -> Iterator[tuple[str, str]]:
    """(kind, path): "source" for something read_source reads whole, "archive" for a tar of
    logs (or a tar read_source sorts out itself), in sorted order under each root. Symlinks
    are followed, but each real file or directory is visited once, under the first name that
    reaches it (no loops, no machine counted twice)."""
    seen: set[tuple[int, int]] = set()
    for root in roots:
        p = Path(root)
        if not p.exists() and not p.is_symlink():
            skipped.append(Skipped(root, "no such file or directory"))
            continue
        yield from _walk_one(p, root, skipped, seen)


def _walk_one(
    p: Path, display: str, skipped: list[Skipped], seen: set[tuple[int, int]]
) -> Iterator[tuple[str, str]]:
    try:
        st = p.stat()
    except OSError as exc:
        skipped.append(Skipped(display, f"cannot read: {exc.strerror or exc}"))
        return
    if (st.st_dev, st.st_ino) in seen:
        return  # reached again through a symlink (or named twice): read once
    seen.add((st.st_dev, st.st_ino))
    if stat.S_ISDIR(st.st_mode):
        if _is_sysfs_dir(p):
            yield "source", display
            return
        try:
            names = sorted(os.listdir(p))
        except OSError as exc:
            skipped.append(Skipped(display, f"cannot read: {exc.strerror or exc}"))
            return
        for name in names:
            yield from _walk_one(p / name, os.path.join(display, name), skipped, seen)
        return
    if not stat.S_ISREG(st.st_mode):
        skipped.append(Skipped(display, "not a regular file"))
        return
    yield ("archive" if _tar_kind(p) == "tar" else "source"), display


def _member_name_ok(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return not name.startswith("/") and ".." not in parts and not re.match(r"^[A-Za-z]:", name)


def _sysfs_names(names: Iterable[str]) -> bool:
    """Whether archive member names look like a /sys/firmware copy."""
    for name in names:
        parts = [x for x in name.split("/") if x not in ("", ".")]
        named = "firmware" in parts[:3] or any(x in ("efi", "memmap") for x in parts[:2])
        if named and len(parts) >= 2:
            return True
    return False


def archive_units(
    archive: str, skipped: list[Skipped]
) -> tuple[list[Unit] | None, Iterator[Unit]]:
    """A sysfs-copy archive as one ``path`` unit, or the members of an archive of logs (read
    lazily, one at a time)."""
    try:
        with tarfile.open(archive, mode="r:*") as tf:
            names = []
            for i, m in enumerate(tf):
                if i >= MAX_MEMBERS:
                    break
                names.append(m.name)
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        return [("path", archive)], iter(())  # read_source says what is wrong with it
    if _sysfs_names(names):
        return [("path", archive)], iter(())
    return None, _members(archive, skipped)


def _members(archive: str, skipped: list[Skipped]) -> Iterator[Unit]:
    try:
        with tarfile.open(archive, mode="r:*") as tf:
            for i, m in enumerate(tf):
                if i >= MAX_MEMBERS:
                    why = f"more than {MAX_MEMBERS} members: the rest not read"
                    skipped.append(Skipped(archive, why))
                    return
                display = f"{archive}::{m.name}"
                if m.isdir():
                    continue
                if not _member_name_ok(m.name):
                    why = "unsafe member name (absolute or '..'): not read"
                    skipped.append(Skipped(display, why))
                    continue
                if not m.isfile():
                    skipped.append(Skipped(display, "not a regular file in the archive"))
                    continue
                if m.size > MAX_MEMBER_BYTES:
                    why = f"{m.size} bytes, more than the {MAX_MEMBER_BYTES} read from a member"
                    skipped.append(Skipped(display, why))
                    continue
                f = tf.extractfile(m)
                if f is None:
                    skipped.append(Skipped(display, "cannot read the member"))
                    continue
                yield ("log", display, f.read(MAX_MEMBER_BYTES))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        skipped.append(Skipped(archive, f"archive cut short or corrupt: {exc}"))


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def echo_safe(text: str) -> str:
    """``text`` with what a terminal, a CSV row or a JSON encoder would not show as written
    escaped: control characters (newlines included), DEL, C1, line separators and the lone
    surrogates an undecodable file name becomes (``\\n``, ``\\x1b``, ``\\udcff``)."""
    return _UNSAFE.sub(_escape_char, text)


def _escape_char(m: re.Match[str]) -> str:
    c = ord(m.group())
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    if c in named:
        return named[c]
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


__all__ = [
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "Skipped",
    "Unit",
    "archive_units",
    "check_roots",
    "echo_safe",
    "walk",
]
