"""Finding things in a dump without holding it: the file's data extents (holes of a sparse file
skipped), read a block at a time into one reused buffer and searched there, so memory stays a
block whatever the dump's size; the system-table scan over them, once per file byte however
many ELF segments alias it.

The search is the C library's ``memmem`` over the buffer when it has one (through ctypes), else
``mmap.find``; glibc's is about twice as fast on random data.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import mmap
import os
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from efihandoff.intervals import merge
from efihandoff.sources.dumpmemory import U64_MAX, DumpMemory
from efihandoff.uefi.systab import EFI_SYSTEM_TABLE_SIGNATURE, find_system_table

MAX_CANDIDATES = 64  # system-table candidates examined
SCAN_WORK = 1 << 20  # (hit, segment group) pairs examined before the scan gives up
BLOCK = 1 << 20  # bytes read and searched at once
BLOCK_MIN_SPLIT = 64 << 10  # a block searched by two threads holds at least twice this
_TAIL = 128  # bytes past a hit the system-table checks read (120-byte table)
_SIGNATURE = struct.pack("<Q", EFI_SYSTEM_TABLE_SIGNATURE)


class _Window:
    """File bytes ``[start, start+length)`` seen as one buffer with ``find`` (for
    find_system_table)."""

    def __init__(self, mm: mmap.mmap, start: int, length: int) -> None:
        self._mm = mm
        self._start = start
        self._len = length

    def __len__(self) -> int:
        return self._len

    def find(self, sub: bytes, pos: int = 0) -> int:
        hit = self._mm.find(sub, self._start + pos, self._start + self._len)
        return -1 if hit < 0 else hit - self._start

    def __getitem__(self, s: slice) -> bytes:
        start, stop, _ = s.indices(self._len)
        return self._mm[self._start + start : self._start + stop]


def _memmem() -> Any:
    """glibc/musl ``memmem`` through ctypes, or None."""
    try:
        libc = ctypes.CDLL(None)  # the C library this interpreter runs on
        fn = libc.memmem
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    return fn


_MEMMEM = _memmem()


def data_extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """``[a, b)`` file ranges holding data (holes of a sparse file skipped, Linux SEEK_DATA)."""
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        yield start, end
        return
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, seek_data)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: only a hole is left
                yield pos, end
            return
        if data >= end:
            return
        try:
            hole = os.lseek(fd, data, seek_hole)
        except OSError:
            hole = end
        yield data, min(max(hole, data + 1), end)
        pos = hole


def find_all(
    mm: mmap.mmap, fd: int | None, needle: bytes, start: int, end: int
) -> Iterator[int]:
    """File offsets of every ``needle`` in ``[start, end)``, in order. With a file descriptor the
    data extents are read block by block (each block with ``len(needle) - 1`` bytes of the next,
    so a needle across two blocks is found once); without one, the mapping is searched."""
    if fd is None:
        pos = start
        while (hit := mm.find(needle, pos, end)) >= 0:
            yield hit
            pos = hit + 1
        return
    k = len(needle)
    blocks = (
        (pos, min(BLOCK + k - 1, b - pos))
        for a, b in data_extents(fd, start, end)
        for pos in range(a, b, BLOCK)
    )
    # Two page-aligned buffers (anonymous mappings: the kernel copies into them at memcpy speed,
    # several times faster than into a bytearray's unaligned heap block); the next block is
    # read in a thread while this one is searched (both release the GIL).
    bufs = [mmap.mmap(-1, BLOCK + k - 1) for _ in range(2)]
    views = [memoryview(b) for b in bufs]
    bases = [ctypes.addressof(ctypes.c_char.from_buffer(b)) if _MEMMEM else 0 for b in bufs]
    reader = ThreadPoolExecutor(1)
    searcher = ThreadPoolExecutor(1)
    try:
        block = next(blocks, None)
        pending = reader.submit(_pread, fd, views[0], *block) if block else None
        i = 0
        while block is not None and pending is not None:
            pos, want = block
            got = pending.result()
            block = next(blocks, None) if got == want else None
            pending = reader.submit(_pread, fd, views[1 - i], *block) if block else None
            if got > 0:
                yield from (pos + h for h in _search(bufs[i], bases[i], got, needle, searcher))
            i = 1 - i
    finally:
        reader.shutdown(wait=True)
        searcher.shutdown(wait=True)
        for v, b in zip(views, bufs, strict=True):
            v.release()
            b.close()


def _pread(fd: int, into: memoryview, pos: int, want: int) -> int:
    """Read ``want`` bytes at ``pos`` into the start of ``into``; fewer at the end of the file."""
    if hasattr(os, "preadv"):
        with into[:want] as part:
            return os.preadv(fd, [part], pos)
    data = os.pread(fd, want, pos)
    into[: len(data)] = data
    return len(data)


def _search(
    buf: mmap.mmap, base: int, n: int, needle: bytes, searcher: ThreadPoolExecutor
) -> list[int]:
    """Offsets of ``needle`` in ``buf[:n]``, sorted: with memmem, the second half searched in
    ``searcher``'s thread while this one searches the first (the halves overlap by
    ``len(needle) - 1`` bytes, so a needle across the middle is found once)."""
    k = len(needle)
    if _MEMMEM is None or n < 2 * BLOCK_MIN_SPLIT:
        return list(_hits(buf, base, 0, n, needle))
    mid = n // 2
    second = searcher.submit(lambda: list(_hits(buf, base, mid, n, needle)))
    first = list(_hits(buf, base, 0, min(mid + k - 1, n), needle))
    return first + second.result()


def _hits(buf: mmap.mmap, base: int, lo: int, hi: int, needle: bytes) -> Iterator[int]:
    """Offsets of ``needle`` wholly inside ``buf[lo:hi]``."""
    k = len(needle)
    pos = lo
    if _MEMMEM is not None:
        while pos + k <= hi:
            addr = _MEMMEM(base + pos, hi - pos, needle, k)
            if addr is None:
                return
            yield addr - base
            pos = addr - base + 1
        return
    while (hit := buf.find(needle, pos, hi)) >= 0:
        yield hit
        pos = hit + 1


def file_ranges_by_delta(memory: DumpMemory) -> dict[int, list[tuple[int, int]]]:
    """The segments grouped by ``phys - offset`` (one physical address per file byte within a
    group), each group's file ranges merged: aliasing segments hold each byte once."""
    groups: dict[int, list[tuple[int, int]]] = {}
    for seg in memory.segments:
        if seg.file_bytes:
            groups.setdefault(seg.phys - seg.offset, []).append(
                (seg.offset, seg.offset + seg.file_bytes)
            )
    return {delta: merge(spans, keep_empty=True) for delta, spans in groups.items()}


def scan(
    mm: mmap.mmap, fd: int | None, memory: DumpMemory, problems: list[str]
) -> list[tuple[int, int]]:
    """(address, bits) of every plausible system table: one pass over the non-zero blocks for
    the 64-bit layout, a second for the 32-bit layout only when the first found nothing.

    Each file byte is scanned once per alignment class however many segments map it (ELF cores
    whose PT_LOAD headers alias the same bytes cost one scan, not one per header); a hit is then
    mapped to the physical address of every segment holding it, in bounded work."""
    # Segments grouped by phys - offset, their file ranges merged; and the ranges to scan per
    # class (offset - phys) % 8.
    merged = file_ranges_by_delta(memory)
    by_class: dict[int, list[int]] = {}
    for delta in merged:
        by_class.setdefault(-delta % 8, []).append(delta)
    found: dict[tuple[int, int], None] = {}
    budget = [SCAN_WORK]
    for bits in (64, 32):
        for cls in sorted(by_class):
            deltas = by_class[cls]
            spans = merge([span for d in deltas for span in merged[d]], keep_empty=True)
            for a, b in spans:
                start = a + (cls - a) % 8
                if start >= b:
                    continue
                for hit in _scan_range(mm, fd, start, b, bits):
                    if not _place(hit, bits, deltas, merged, found, budget, problems):
                        return sorted(found)
        if found:
            break
    return sorted(found)


def _scan_range(mm: mmap.mmap, fd: int | None, start: int, end: int, bits: int) -> Iterator[int]:
    """File offsets of plausible system tables in ``[start, end)`` (8-aligned from start):
    every signature found, kept when aligned and when find_system_table's checks pass on it."""
    for hit in find_all(mm, fd, _SIGNATURE, start, end):
        if (hit - start) % 8:
            continue
        window = _Window(mm, hit, min(_TAIL, end - hit))
        if next(find_system_table(window, bits=bits), None) == 0:
            yield hit


def _place(
    hit: int,
    bits: int,
    deltas: list[int],
    merged: dict[int, list[tuple[int, int]]],
    found: dict[tuple[int, int], None],
    budget: list[int],
    problems: list[str],
) -> bool:
    """Add the physical address of file offset ``hit`` in every segment group holding it;
    False once the candidates or the work budget run out."""
    for delta in deltas:
        budget[0] -= 1
        if budget[0] < 0:
            problems.append("segments alias too much: system-table scan stopped")
            return False
        spans = merged[delta]
        k = bisect.bisect_right(spans, (hit, U64_MAX + 1)) - 1
        if k < 0 or not spans[k][0] <= hit < spans[k][1]:
            continue
        phys = hit + delta
        if phys < 0 or phys > U64_MAX:
            continue
        found[(phys, bits)] = None
        if len(found) >= MAX_CANDIDATES:
            problems.append(f"more than {MAX_CANDIDATES} system-table candidates; rest ignored")
            return False
    return True


__all__ = [
    "BLOCK",
    "MAX_CANDIDATES",
    "SCAN_WORK",
    "data_extents",
    "file_ranges_by_delta",
    "find_all",
    "scan",
]
