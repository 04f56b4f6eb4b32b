"""Physical memory over a dump file: the file's bytes read on demand (:class:`DumpFile`), the
segments (physical address, file offset, bytes present and declared) and reads through them;
bytes outside every segment are unknown. ELF ``p_memsz`` beyond ``p_filesz`` reads as zeros
(System V gABI "Program Header")."""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, overload

from efihandoff.errors import ParseError, SourceError

U64_MAX = (1 << 64) - 1
FIND_BLOCK = 1 << 20  # bytes read at once by DumpFile.find
SHRANK = "the file shrank while being read"


def pread_exact(
    fd: int, into: memoryview, pos: int, want: int, name: str = "the dump file"
) -> int:
    """Read ``want`` bytes at ``pos`` into the start of ``into``. Every range the dump readers
    ask for lies inside the file as it was opened, so fewer bytes mean it has shrunk since:
    ParseError at the first byte missing; SourceError when the system refuses the read."""
    got = 0
    while got < want:
        try:
            if hasattr(os, "preadv"):
                with into[got:want] as part:
                    n = os.preadv(fd, [part], pos + got)
            else:
                data = os.pread(fd, want - got, pos + got)
                into[got : got + len(data)] = data
                n = len(data)
        except OSError as exc:
            where = f"{name}: cannot read at offset {pos + got:#x}"
            raise SourceError(f"{where}: {exc.strerror or exc}") from None
        if n == 0:
            raise ParseError(SHRANK, offset=pos + got, what=name)
        got += n
    return got


class FileBytes(Protocol):
    """A file's bytes as the dump readers use them: :class:`DumpFile`, or ``bytes``/``mmap``
    in tests."""

    def __len__(self) -> int: ...
    def __getitem__(self, key: slice, /) -> bytes: ...
    def find(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...


class DumpFile:
    """A dump's bytes, read with ``pread`` through a descriptor of its own, never mapped: a
    file that shrinks while it is read (truncated by another program) raises ParseError at the
    first byte missing, where a mapping of it would kill the process with SIGBUS (POSIX mmap:
    "references within the address range starting at pa and continuing for len bytes to whole
    pages following the end of an object shall result in delivery of a SIGBUS signal").

    Sliced like ``bytes`` (``file[a:b]``) within the size it had when opened, and searched with
    ``find``; ``fd`` is for block reads and data extents (``pread`` and ``lseek`` only, so its
    file position is never relied on). A read the system refuses raises SourceError."""

    def __init__(self, fd: int, size: int, name: str) -> None:
        self.fd: int | None = None
        self.size = size
        self.name = name
        try:
            self.fd = os.dup(fd)
        except OSError as exc:
            raise SourceError(f"{name}: cannot read: {exc.strerror or exc}") from None

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, key: int) -> int: ...
    @overload
    def __getitem__(self, key: slice) -> bytes: ...
    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, int):
            if not -self.size <= key < self.size:
                raise IndexError("dump offset out of range")
            return self._read(key % self.size, 1)[0]
        start, stop, step = key.indices(self.size)
        data = self._read(start, max(0, stop - start))
        return data if step == 1 else data[::step]

    def _read(self, pos: int, want: int) -> bytes:
        if self.fd is None:
            raise ParseError("the dump was closed", offset=pos, what=self.name)
        out = bytearray(want)
        with memoryview(out) as view:
            pread_exact(self.fd, view, pos, want, self.name)
        return bytes(out)

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        """The lowest offset of ``sub`` wholly in ``[start, end)``, or -1 (as ``bytes.find``)."""
        start, end, _ = slice(start, end).indices(self.size)
        k = len(sub)
        pos = start
        while pos + k <= end:
            block = self[pos : min(end, pos + FIND_BLOCK + k - 1)]
            hit = block.find(sub)
            if hit >= 0:
                return pos + hit
            pos += FIND_BLOCK
        return -1

    def close(self) -> None:
        """Close the descriptor; later reads raise ParseError."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def __del__(self) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class DumpSegment:
    """A run of physical memory in the dump.

    ``[phys, phys + file_bytes)`` is in the file at ``offset``; ``[phys + declared_filesz,
    phys + size)`` reads as zeros (ELF ``p_memsz > p_filesz``); anything between (a segment cut
    short by the end of the file) is unknown.
    """

    phys: int
    size: int
    offset: int
    file_bytes: int
    declared_filesz: int
    header_offset: int | None = None  # file offset of its program header (ELF)

    @property
    def end(self) -> int:
        """Exclusive physical end."""
        return self.phys + self.size


class DumpMemory:
    """The Memory protocol over a dump file; bytes outside every segment are unknown."""

    def __init__(self, file: DumpFile | None, segments: Sequence[DumpSegment]) -> None:
        self._file = file
        self.segments = tuple(sorted(segments, key=lambda s: (s.phys, -s.size)))
        self._starts = [s.phys for s in self.segments]
        # Running maximum of segment ends, so overlapping segments are found by bisect.
        self._max_end: list[int] = []
        top = -1
        for s in self.segments:
            top = max(top, s.end)
            self._max_end.append(top)

    @property
    def file(self) -> DumpFile | None:
        """The dump's bytes (None once closed)."""
        return self._file

    def close(self) -> None:
        """Close the dump; later reads return None."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _segment(self, addr: int) -> DumpSegment | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        while i >= 0 and self._max_end[i] > addr:
            s = self.segments[i]
            if s.phys <= addr < s.end:
                return s
            i -= 1
        return None

    def contains(self, addr: int, length: int = 1) -> bool:
        """Whether every byte of ``[addr, addr+length)`` is known (without reading them)."""
        if self._file is None or addr < 0 or length < 0 or addr + length > U64_MAX + 1:
            return False
        pos, end = addr, addr + length
        while pos < end:
            s = self._segment(pos)
            if s is None:
                return False
            rel = pos - s.phys
            if s.file_bytes <= rel < s.declared_filesz:
                return False
            pos = min(end, s.end if rel >= s.declared_filesz else s.phys + s.file_bytes)
        return True

    def read(self, addr: int, length: int) -> bytes | None:
        """Bytes at ``[addr, addr+length)``, or None if any of them is not in the dump. Raises
        ParseError when the file has shrunk since it was opened."""
        mm = self._file
        if mm is None or addr < 0 or length < 0 or addr + length > U64_MAX + 1:
            return None
        out = bytearray()
        pos, end = addr, addr + length
        while pos < end:
            s = self._segment(pos)
            if s is None:
                return None
            rel = pos - s.phys
            if rel < s.file_bytes:
                n = min(end - pos, s.file_bytes - rel)
                out += mm[s.offset + rel : s.offset + rel + n]
            elif rel >= s.declared_filesz:
                n = min(end - pos, s.size - rel)
                out += bytes(n)
            else:
                return None
            pos += n
        return bytes(out)


__all__ = [
    "SHRANK",
    "U64_MAX",
    "DumpFile",
    "DumpMemory",
    "DumpSegment",
    "FileBytes",
    "pread_exact",
]
