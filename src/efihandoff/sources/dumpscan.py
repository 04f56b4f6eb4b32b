"""Finding things in a dump without holding it: the file's data extents (holes of a sparse file
skipped), a block at a time, so memory stays one or two blocks whatever the dump's size; the
system-table scan over them, once per file byte however many ELF segments alias it. The file is
read, never mapped: a mapped file that shrinks kills the process with SIGBUS, while a read that
comes back short raises ParseError.

The system-table signature can only sit on an 8-byte grid (UEFI pool allocations), so its scan
reads the file a block at a time into one page-aligned buffer and compares only the grid's
words with the C library's ``wmemchr`` (through ctypes): a vector search at memory speed, the
copy costing about what ``cat``'s reads do. Byte-granular searches (GUIDs, the boot_params
signature) read blocks the same way and search each four times with ``wmemchr``, once per byte
offset modulo 4 (a needle of 7 bytes or more holds a whole grid word wherever it starts).
Without ``wmemchr``: ``memmem`` over the blocks; without a file descriptor, the bytes' own
``find``."""

from __future__ import annotations

import bisect
import ctypes
import errno
import mmap
import os
import struct
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from efihandoff.errors import ParseError
from efihandoff.intervals import merge
from efihandoff.sources.dumpmemory import SHRANK, U64_MAX, DumpMemory, FileBytes
from efihandoff.sources.dumpmemory import pread_exact as _pread
from efihandoff.uefi.systab import EFI_SYSTEM_TABLE_SIGNATURE, find_system_table

MAX_CANDIDATES = 64  # system-table candidates examined
SCAN_WORK = 1 << 20  # (hit, segment group) pairs examined before the scan gives up
BLOCK = 1 << 20  # bytes read and searched at once
BLOCK_MIN_SPLIT = 64 << 10  # a block searched by two threads holds at least twice this
MAX_WORD_MISSES = 256  # word matches without the needle before a block is searched bytewise
WORD_NEEDLE_MIN = 7  # a needle this long holds a whole grid word wherever it starts
_TAIL = 128  # bytes past a hit the system-table checks read (120-byte table)
_SIGNATURE = struct.pack("<Q", EFI_SYSTEM_TABLE_SIGNATURE)


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
            if exc.errno != errno.ENXIO:
                yield pos, end
                return
            data = end  # ENXIO: only a hole is left, or the file ends before it did
        if data >= end:
            _unshrunk(fd, end)
            return
        try:
            hole = os.lseek(fd, data, seek_hole)
        except OSError:
            hole = end
        yield data, min(max(hole, data + 1), end)
        pos = hole


def _unshrunk(fd: int, end: int) -> None:
    """ParseError unless the file still reaches ``end`` (inside the file as it was opened)."""
    size = os.fstat(fd).st_size
    if size < end:
        raise ParseError(SHRANK, offset=size, what="the dump file")


def find_all(mm: FileBytes, fd: int | None, needle: bytes, start: int, end: int) -> Iterator[int]:
    """File offsets of every ``needle`` in ``[start, end)``, in order. With a file descriptor the
    data extents are read block by block (each block with ``len(needle) - 1`` bytes of the next,
    so a needle across two blocks is found once); without one, with the bytes' own ``find``."""
    if fd is None:
        pos = start
        while (hit := mm.find(needle, pos, end)) >= 0:
            yield hit
            pos = hit + 1
        return
    k = len(needle)
    if _WMEMCHR is not None and k >= WORD_NEEDLE_MIN:
        yield from _find_by_words(fd, needle, start, end)
        return
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
            pos = block[0]
            got = pending.result()
            block = next(blocks, None)
            pending = reader.submit(_pread, fd, views[1 - i], *block) if block else None
            yield from (pos + h for h in _search(bufs[i], bases[i], got, needle, searcher))
            i = 1 - i
    finally:
        reader.shutdown(wait=True)
        searcher.shutdown(wait=True)
        for v, b in zip(views, bufs, strict=True):
            v.release()
            b.close()


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


def _find_by_words(fd: int, needle: bytes, start: int, end: int) -> Iterator[int]:
    """find_all with wmemchr: the data extents read a block at a time into one aligned buffer
    (the block stays in the CPU's cache for the four searches of :func:`_rotated_hits`)."""
    blocks = _Blocks(fd, len(needle))
    try:
        for a, b in data_extents(fd, start, end):
            for pos, base, n, stop in blocks.over(a, b, 1):
                found = _rotated_hits(base, n, needle)
                if found is None:
                    found = list(_byte_hits(base, 0, n, stop, needle))
                yield from (pos + q for q in found if q < stop)
    finally:
        blocks.close()


def _rotated_hits(base: int, n: int, needle: bytes) -> list[int] | None:
    """Offsets of ``needle`` in the ``n`` bytes at ``base`` (4-aligned), sorted, by four vector
    searches on the 4-byte grid: a needle at ``q`` with ``q % 4 == r`` has its bytes
    ``[(4 - r) % 4, +4)`` in the grid word at ``q + (4 - r) % 4``, and that word is searched
    with wmemchr for each r. None when the words keep matching without the needle (a block of
    repeated words): the caller searches byte by byte."""
    k = len(needle)
    out: list[int] = []
    misses = 0
    for r in range(4):
        skip = (4 - r) % 4  # needle bytes before the grid word
        word = int.from_bytes(needle[skip : skip + 4], sys.byteorder)
        pos = 0
        while units := (n - pos) // 4:
            addr = _WMEMCHR(base + pos, word, units)
            if addr is None:
                break
            q = addr - base - skip
            if q >= 0 and q + k <= n and ctypes.string_at(base + q, k) == needle:
                out.append(q)
            else:
                misses += 1
                if misses > MAX_WORD_MISSES:
                    return None
            pos = addr - base + 4
    out.sort()
    return out


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


def _wmemchr() -> Any:
    """The C library's ``wmemchr`` through ctypes when ``wchar_t`` is 4 bytes, or None."""
    if ctypes.sizeof(ctypes.c_wchar) != 4:
        return None
    try:
        fn = ctypes.CDLL(None).wmemchr
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_size_t]
    return fn


_WMEMCHR = _wmemchr()


def find_aligned(
    mm: FileBytes, fd: int | None, needle: bytes, start: int, end: int, align: int
) -> Iterator[int]:
    """File offsets ``p`` of every ``needle`` wholly in ``[start, end)`` with ``(p - start) %
    align == 0``, in order; ``align`` a multiple of 4, ``needle`` at least 4 bytes.

    With a file descriptor and the C library's ``wmemchr``, the data extents are read a block at
    a time and only the 4-byte words of the alignment grid are compared with the needle's first
    word, a vector search at memory speed; a block where that word keeps matching without the needle
    (text of repeated words) is searched byte by byte from there. Otherwise :func:`find_all`,
    filtered."""
    if align <= 0 or align % 4 or len(needle) < 4:
        raise ValueError("align must be a positive multiple of 4 and the needle 4 bytes or more")
    if fd is None or _WMEMCHR is None:
        yield from (h for h in find_all(mm, fd, needle, start, end) if (h - start) % align == 0)
        return
    k = len(needle)
    blocks = _Blocks(fd, k)
    try:
        for a, b in data_extents(fd, start, end):
            first = a + (start - a) % align
            for pos, base, n, stop in blocks.over(first, b, align):
                yield from (pos + q for q in _grid_hits(base, n, stop, needle, align))
    finally:
        blocks.close()


class _Blocks:
    """A file's bytes as blocks read into one reused, page-aligned buffer (so 4-aligned, and
    writable for ctypes): memory stays one block whatever the file's size. Never mapped: a
    mapped file that shrinks meanwhile kills the process with SIGBUS, a short read raises
    ParseError."""

    def __init__(self, fd: int, k: int) -> None:
        self._fd = fd
        self._k = k
        self._buf: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._base = 0

    def over(self, first: int, end: int, align: int) -> Iterator[tuple[int, int, int, int]]:
        """(file offset, address, bytes there, hits start before this) for blocks tiling
        ``[first, end)`` from ``first``, each holding ``len(needle) - 1`` bytes of the next so
        a needle across two blocks is seen once. The address is valid until the next step."""
        k = self._k
        size = BLOCK - BLOCK % align  # blocks start on the alignment grid
        for pos in range(first, end, size):
            want = min(size + k - 1, end - pos)
            if want < k:
                return
            n = self._read(pos, want)
            yield pos, self._base, n, min(size, n)

    def _read(self, pos: int, want: int) -> int:
        if self._buf is None:
            self._buf = mmap.mmap(-1, BLOCK + self._k - 1)  # page-aligned, so 4-aligned
            self._view = memoryview(self._buf)
            self._base = ctypes.addressof(ctypes.c_char.from_buffer(self._buf))
        assert self._view is not None
        return _pread(self._fd, self._view, pos, want)

    def close(self) -> None:
        if self._view is not None:
            self._view.release()
        if self._buf is not None:
            self._buf.close()
        self._buf = self._view = None


def _grid_hits(base: int, n: int, stop: int, needle: bytes, align: int) -> list[int]:
    """Offsets ``q < stop`` with ``q % align == 0`` of ``needle`` wholly in the ``n`` bytes at
    ``base`` (4-aligned): ``wmemchr`` finds the needle's first word on the 4-byte grid."""
    k = len(needle)
    word = int.from_bytes(needle[:4], sys.byteorder)  # wmemchr compares native words
    out: list[int] = []
    misses = 0
    pos = 0
    while pos < stop and (units := (n - pos) // 4):
        addr = _WMEMCHR(base + pos, word, units)
        if addr is None:
            break
        q = addr - base
        if q >= stop:
            break
        if q % align == 0 and q + k <= n and ctypes.string_at(addr, k) == needle:
            out.append(q)
        else:
            misses += 1
            if misses > MAX_WORD_MISSES:
                more = _byte_hits(base, q, n, stop, needle)
                out.extend(h for h in more if h % align == 0)
                break
        pos = q + 4
    return out


def _byte_hits(base: int, lo: int, n: int, stop: int, needle: bytes) -> Iterator[int]:
    """Offsets ``lo <= q < stop`` of ``needle`` wholly in the ``n`` bytes at ``base``."""
    k = len(needle)
    if _MEMMEM is None:
        data = ctypes.string_at(base + lo, n - lo)
        pos = 0
        while (hit := data.find(needle, pos)) >= 0 and lo + hit < stop:
            yield lo + hit
            pos = hit + 1
        return
    pos = lo
    while pos < stop and pos + k <= n:
        addr = _MEMMEM(base + pos, n - pos, needle, k)
        if addr is None or addr - base >= stop:
            return
        yield addr - base
        pos = addr - base + 1


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


def places_of(merged: dict[int, list[tuple[int, int]]], pos: int) -> list[int]:
    """The physical address file offset ``pos`` holds in each group of
    :func:`file_ranges_by_delta` that holds it."""
    out = []
    for delta, group in merged.items():
        k = bisect.bisect_right(group, (pos, U64_MAX + 1)) - 1
        if k >= 0 and group[k][0] <= pos < group[k][1]:
            out.append(pos + delta)
    return out


def scan(
    mm: FileBytes, fd: int | None, memory: DumpMemory, problems: list[str]
) -> list[tuple[int, int]]:
    """(address, bits) of every plausible system table: one pass over the non-zero blocks, each
    signature checked for the 64-bit layout and the 32-bit one; the 32-bit tables are kept only
    when no 64-bit one was found (as the two passes this replaces did).

    Each file byte is scanned once per alignment class however many segments map it (ELF cores
    whose PT_LOAD headers alias the same bytes cost one scan, not one per header); a hit is then
    mapped to the physical address of every segment holding it, in bounded work."""
    # Segments grouped by phys - offset, their file ranges merged; and the ranges to scan per
    # class (offset - phys) % 8.
    merged = file_ranges_by_delta(memory)
    by_class: dict[int, list[int]] = {}
    for delta in merged:
        by_class.setdefault(-delta % 8, []).append(delta)
    layouts = {64: _Placed(), 32: _Placed()}
    for cls in sorted(by_class):
        deltas = by_class[cls]
        spans = merge([span for d in deltas for span in merged[d]], keep_empty=True)
        for a, b in spans:
            start = a + (cls - a) % 8
            if start >= b:
                continue
            for hit, bits in _scan_range(mm, fd, start, b):
                placed = layouts[bits]
                if placed.stopped:
                    continue
                placed.stopped = not _place(
                    hit, bits, deltas, merged, placed.found, placed.budget, placed.problems
                )
                if bits == 64 and placed.stopped:  # the 64-bit pass ended here before
                    problems.extend(placed.problems)
                    return sorted(placed.found)
    wide, narrow = layouts[64], layouts[32]
    if wide.found:
        return sorted(wide.found)
    problems.extend(narrow.problems)
    return sorted(narrow.found)


@dataclass
class _Placed:
    """One layout's candidates, work budget and problems during the scan."""

    found: dict[tuple[int, int], None] = field(default_factory=dict)
    budget: list[int] = field(default_factory=lambda: [SCAN_WORK])
    problems: list[str] = field(default_factory=list)
    stopped: bool = False


def _scan_range(mm: FileBytes, fd: int | None, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(file offset, bits) of plausible system tables in ``[start, end)``: the signature at an
    offset 8-aligned from ``start`` (UEFI 2.10 section 7.2 AllocatePool: "All allocations are
    eight-byte aligned"; edk2 DxeMain.c DxeMain allocates the table with
    AllocateRuntimeCopyPool), kept when find_system_table's checks pass on it for a layout."""
    for hit in find_aligned(mm, fd, _SIGNATURE, start, end, 8):
        window = mm[hit : hit + min(_TAIL, end - hit)]
        for bits in (64, 32):  # HeaderSize tells them apart: at most one passes
            if next(find_system_table(window, bits=bits), None) == 0:
                yield hit, bits
                break


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
    "MAX_WORD_MISSES",
    "SCAN_WORK",
    "WORD_NEEDLE_MIN",
    "data_extents",
    "file_ranges_by_delta",
    "find_aligned",
    "find_all",
    "places_of",
    "scan",
]
