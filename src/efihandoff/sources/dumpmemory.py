"""Physical memory over a memory-mapped dump: the segments (physical address, file offset,
bytes present and declared) and reads through them; bytes outside every segment are unknown.
ELF ``p_memsz`` beyond ``p_filesz`` reads as zeros (System V gABI "Program Header")."""

from __future__ import annotations

import bisect
import contextlib
import mmap
from collections.abc import Sequence
from dataclasses import dataclass

U64_MAX = (1 << 64) - 1


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
    """The Memory protocol over a memory-mapped dump; bytes outside every segment are unknown."""

    def __init__(self, mm: mmap.mmap | None, segments: Sequence[DumpSegment]) -> None:
        self._mm = mm
        self.segments = tuple(sorted(segments, key=lambda s: (s.phys, -s.size)))
        self._starts = [s.phys for s in self.segments]
        # Running maximum of segment ends, so overlapping segments are found by bisect.
        self._max_end: list[int] = []
        top = -1
        for s in self.segments:
            top = max(top, s.end)
            self._max_end.append(top)

    @property
    def mmap(self) -> mmap.mmap | None:
        """The mapping (None once closed)."""
        return self._mm

    def close(self) -> None:
        """Unmap the dump; later reads return None."""
        if self._mm is not None:
            # BufferError: a view is still exported somewhere; the GC unmaps it later.
            with contextlib.suppress(BufferError):
                self._mm.close()
            self._mm = None

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
        if self._mm is None or addr < 0 or length < 0 or addr + length > U64_MAX + 1:
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
        """Bytes at ``[addr, addr+length)``, or None if any of them is not in the dump."""
        mm = self._mm
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


__all__ = ["U64_MAX", "DumpMemory", "DumpSegment"]
