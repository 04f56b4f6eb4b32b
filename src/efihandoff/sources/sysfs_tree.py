"""Read-only trees a ``/sys/firmware`` copy is read from: a directory (symlinks resolved by hand,
never leaving it) or a ``.tar``/``.tar.gz`` archive (indexed once, nothing extracted).

Paths are relative POSIX paths. An archive with an absolute or ``..`` member, a device file, or
a link pointing outside it is refused whole (ParseError); a path that exists but cannot be read
raises :class:`Unreadable`. Every count and size is bounded before anything is kept.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from efihandoff.errors import ParseError, SourceError

# Bounds (our choice): sysfs attributes hold at most one page; a real /sys/firmware copy has a few
# thousand files (efivars and ACPI tables included).
MAX_VALUE_BYTES = 64 << 10  # one value file
MAX_LOG_BYTES = 64 << 20  # dmesg.txt, xl-dmesg.txt (each)
MAX_MEMBERS = 100_000  # archive members
MAX_MEMBER_BYTES = 256 << 20  # one archive member's claimed size
MAX_ARCHIVE_BYTES = 1 << 30  # sum of claimed member sizes
MAX_KEPT_BYTES = 32 << 20  # small files kept in memory from an archive (plus two logs)
MAX_DIR_ENTRIES = 65_536  # names listed from one directory
MAX_LINK_HOPS = 40  # symlinks followed resolving one path (Linux MAXSYMLINKS)


class Unreadable(Exception):
    """A path exists but cannot be read; the message says why."""


class Tree:
    """Read-only access by relative POSIX path (components never ``..``)."""

    notes: tuple[str, ...] = ()  # problems of the container itself (e.g. a truncated archive)

    def read(self, rel: str, cap: int) -> bytes | None:
        """Up to ``cap`` bytes of a regular file; None if missing; Unreadable otherwise."""
        raise NotImplementedError

    def listdir(self, rel: str) -> list[str] | None:
        """Names in a directory (at most MAX_DIR_ENTRIES), None if not a directory."""
        raise NotImplementedError

    def is_dir(self, rel: str) -> bool:
        return self.listdir(rel) is not None


def rel_join(*parts: str) -> str:
    """Relative POSIX path of the non-empty ``parts``."""
    return "/".join(p for p in parts if p)


class DirTree(Tree):
    """A directory; symlinks resolved by hand with a hop bound, never leaving ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._is_fs_root = base == Path(base.anchor)

    def _resolve(self, rel: str) -> tuple[Path, os.stat_result] | None:
        pending = [c for c in rel.split("/") if c not in ("", ".")]
        pending.reverse()  # a stack: next component last
        done: list[str] = []
        hops = 0
        st: os.stat_result | None = None
        while pending:
            comp = pending.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if not done:
                    raise Unreadable("a symlink on the way points outside the copy")
                done.pop()
                continue
            path = self.base.joinpath(*done, comp)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return None
            except NotADirectoryError:
                return None
            except OSError as exc:
                raise Unreadable(exc.strerror or str(exc)) from None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise Unreadable(f"more than {MAX_LINK_HOPS} symlinks (a loop?)")
                try:
                    target = os.readlink(path)
                except OSError as exc:
                    raise Unreadable(exc.strerror or str(exc)) from None
                if target.startswith("/"):
                    if not self._is_fs_root:
                        raise Unreadable(f"symlink to {target} points outside the copy")
                    done = []
                pending.extend(reversed(target.split("/")))
                continue
            if pending and not stat.S_ISDIR(st.st_mode):
                return None
            done.append(comp)
        if st is None:  # rel named the base itself
            try:
                st = os.stat(self.base)
            except OSError as exc:
                raise Unreadable(exc.strerror or str(exc)) from None
        return self.base.joinpath(*done), st

    def read(self, rel: str, cap: int) -> bytes | None:
        found = self._resolve(rel)
        if found is None:
            return None
        path, st = found
        if stat.S_ISDIR(st.st_mode):
            raise Unreadable("is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise Unreadable("not a regular file")
        try:
            # O_NONBLOCK: a FIFO swapped in after the check must not block us.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise Unreadable(exc.strerror or str(exc)) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Unreadable("not a regular file")
            chunks = []
            left = cap + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        except OSError as exc:
            raise Unreadable(exc.strerror or str(exc)) from None
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if len(data) > cap:
            raise Unreadable(f"larger than {cap} bytes")
        return data

    def listdir(self, rel: str) -> list[str] | None:
        try:
            found = self._resolve(rel)
        except Unreadable:
            return None
        if found is None or not stat.S_ISDIR(found[1].st_mode):
            return None
        names = []
        try:
            with os.scandir(found[0]) as it:
                for entry in it:
                    names.append(entry.name)
                    if len(names) >= MAX_DIR_ENTRIES:
                        break
        except OSError:
            return None
        return names


@dataclass
class _Node:
    kind: str  # "file", "dir", "link"
    data: bytes | None = None  # file content when kept
    size: int = 0
    target: str | None = None  # link: normalised archive path it points to
    note: str | None = None  # why data was not kept


def _norm_member(name: str) -> str:
    """A member name as a relative POSIX path; ParseError for an absolute or ``..`` name."""
    if name.startswith("/") or re.match(r"[A-Za-z]:[\\/]", name):
        raise ParseError(f"archive member {name!r} has an absolute path", what="sysfs archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ParseError(f"archive member {name!r} contains '..'", what="sysfs archive")
    return "/".join(parts)


def _norm_target(link_dir: str, target: str, member: str) -> str:
    if target.startswith("/"):
        raise ParseError(
            f"archive member {member!r} links to absolute path {target!r}", what="sysfs archive"
        )
    out = [p for p in link_dir.split("/") if p]
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not out:
                raise ParseError(
                    f"archive member {member!r} links outside the archive ({target!r})",
                    what="sysfs archive",
                )
            out.pop()
        else:
            out.append(comp)
    return "/".join(out)


def _tar_mode(raw: BinaryIO, path: Path) -> Literal["r:gz", "r:"]:
    """``.tar`` and ``.tar.gz`` only (what README.md and ``collect`` promise): other
    compressions are refused here, so no other decompressor's errors can escape."""
    head = raw.read(6)
    raw.seek(0)
    if head.startswith((b"\xfd7zXZ\x00", b"BZh", b"\x28\xb5\x2f\xfd")):
        raise ParseError(
            "a compressed archive other than gzip: efihandoff reads .tar and .tar.gz",
            offset=0,
            what=str(path),
        )
    return "r:gz" if head.startswith(b"\x1f\x8b") else "r:"


class TarTree(Tree):
    """An archive's members, indexed once; small files kept in memory, nothing extracted."""

    def __init__(self, path: Path) -> None:
        self.nodes: dict[str, _Node] = {"": _Node("dir")}
        self.children: dict[str, set[str]] = {"": set()}
        try:
            raw = path.open("rb")
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            with raw, tarfile.open(fileobj=raw, mode=_tar_mode(raw, path)) as tf:
                self._load(tf, path)
        except ParseError:
            raise
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise ParseError(
                f"not a tar archive: {one_line(exc)}", offset=0, what=str(path)
            ) from None

    def _load(self, tf: tarfile.TarFile, path: Path) -> None:
        kept = 0
        claimed = 0
        count = 0
        offset = 0
        try:
            while True:
                member = tf.next()
                if member is None:
                    break
                offset = member.offset
                count += 1
                if count > MAX_MEMBERS:
                    raise ParseError(
                        f"more than {MAX_MEMBERS} archive members", offset=offset, what=str(path)
                    )
                name = _norm_member(member.name)
                if member.size < 0 or member.size > MAX_MEMBER_BYTES:
                    raise ParseError(
                        f"archive member {member.name!r} claims {member.size} bytes "
                        f"(more than {MAX_MEMBER_BYTES})",
                        offset=offset,
                        what=str(path),
                    )
                claimed += member.size
                if claimed > MAX_ARCHIVE_BYTES:
                    raise ParseError(
                        f"archive members claim more than {MAX_ARCHIVE_BYTES} bytes in all",
                        offset=offset,
                        what=str(path),
                    )
                parent = name.rpartition("/")[0]
                if member.isdir():
                    self._add(name, _Node("dir"))
                elif member.issym():
                    self._add(
                        name,
                        _Node("link", target=_norm_target(parent, member.linkname, member.name)),
                    )
                elif member.islnk():
                    # A hard link names another member by its archive path.
                    self._add(
                        name, _Node("link", target=_norm_target("", member.linkname, member.name))
                    )
                elif member.isreg():
                    node = _Node("file", size=member.size)
                    cap = MAX_LOG_BYTES if name.endswith(".txt") else MAX_VALUE_BYTES
                    if member.size > cap:
                        node.note = f"larger than {cap} bytes"
                    elif kept + member.size > MAX_KEPT_BYTES + 2 * MAX_LOG_BYTES:
                        node.note = "not kept: archive holds too much data"
                    else:
                        f = tf.extractfile(member)
                        node.data = f.read(member.size) if f is not None else b""
                        if len(node.data) != member.size:
                            raise ParseError(
                                f"archive member {member.name!r} is truncated",
                                offset=offset,
                                what=str(path),
                            )
                        kept += member.size
                    self._add(name, node)
                else:
                    raise ParseError(
                        f"archive member {member.name!r} is a device, FIFO or other special file",
                        offset=offset,
                        what=str(path),
                    )
        except ParseError:
            raise
        except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError, UnicodeError) as exc:
            raise ParseError(
                f"corrupt archive: {one_line(exc)}", offset=offset, what=str(path)
            ) from None
        if count == 0:
            raise ParseError("empty archive", offset=0, what=str(path))
        # tarfile stops quietly at a header cut short; an archive ends with two zero blocks
        # (POSIX.1-2001 ustar), so check they are there.
        try:
            tf.fileobj.seek(tf.offset)
            tail = tf.fileobj.read(1024)
        except (OSError, EOFError, zlib.error):
            tail = b""
        if len(tail) < 1024 or tail.count(0) != len(tail):
            self.notes = (
                f"archive ends at offset {tf.offset:#x} without its end-of-archive marker "
                "(truncated?): files after that point are missing",
            )

    def _add(self, name: str, node: _Node) -> None:
        if not name:
            return
        parts = name.split("/")
        for i in range(len(parts)):
            parent = "/".join(parts[:i])
            if parent not in self.nodes:
                self.nodes[parent] = _Node("dir")
            self.children.setdefault(parent, set()).add(parts[i])
        if node.kind == "dir" and name in self.nodes and self.nodes[name].kind == "dir":
            return  # keep what is known; a later duplicate directory entry adds nothing
        self.nodes[name] = node

    def _resolve(self, rel: str) -> tuple[str, _Node] | None:
        pending = [c for c in rel.split("/") if c]
        pending.reverse()
        done: list[str] = []
        hops = 0
        node = self.nodes[""]
        while pending:
            comp = pending.pop()
            if comp == "..":
                if not done:
                    raise Unreadable("a link on the way points outside the archive")
                done.pop()
                continue
            if comp == ".":
                continue
            key = "/".join([*done, comp])
            found = self.nodes.get(key)
            if found is None:
                return None
            if found.kind == "link":
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise Unreadable(f"more than {MAX_LINK_HOPS} links (a loop?)")
                assert found.target is not None
                done = []
                pending.extend(reversed(found.target.split("/")))
                continue
            if pending and found.kind != "dir":
                return None
            done.append(comp)
            node = found
        return "/".join(done), node

    def read(self, rel: str, cap: int) -> bytes | None:
        found = self._resolve(rel)
        if found is None:
            return None
        node = found[1]
        if node.kind == "dir":
            raise Unreadable("is a directory")
        if node.data is None:
            raise Unreadable(node.note or "content not available")
        if len(node.data) > cap:
            raise Unreadable(f"larger than {cap} bytes")
        return node.data

    def listdir(self, rel: str) -> list[str] | None:
        try:
            found = self._resolve(rel)
        except Unreadable:
            return None
        if found is None or found[1].kind != "dir":
            return None
        return sorted(self.children.get(found[0], ()))[:MAX_DIR_ENTRIES]


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


__all__ = [
    "MAX_ARCHIVE_BYTES",
    "MAX_DIR_ENTRIES",
    "MAX_KEPT_BYTES",
    "MAX_LINK_HOPS",
    "MAX_LOG_BYTES",
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "MAX_VALUE_BYTES",
    "DirTree",
    "TarTree",
    "Tree",
    "Unreadable",
    "one_line",
    "rel_join",
]
