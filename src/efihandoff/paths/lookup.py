"""First-match descriptor lookup with C's u64 arithmetic, in O(log n) per query.

Xen's ``XEN_FW_EFI_MEM_INFO`` (xen/common/efi/runtime.c ``efi_get_info``, 4.16 and later) and
Linux before 6.3 (drivers/firmware/efi/efi.c ``efi_mem_desc_lookup``) both walk the map in order
and take the first descriptor with ``start <= addr < start + (pages << 12)``, every sum wrapping
at 2^64 and no entry skipped as bogus: an unaligned descriptor matches, one with zero pages or one
whose end wraps past 2^64 never does. With ``skip_bogus`` it answers as Linux 6.3+
``__efi_mem_desc_lookup`` does (ab03e91e60ce: unaligned, empty and wrapping entries skipped),
which is :meth:`efihandoff.uefi.memmap.MemoryMap.lookup`.
"""

from __future__ import annotations

import bisect
import heapq
import operator
from collections.abc import Sequence
from itertools import pairwise

from efihandoff.uefi.memmap import PAGE_SHIFT, PAGE_SIZE, U64_MAX, MemoryDescriptor

_PAGE_MASK = PAGE_SIZE - 1


def u64_span(d: MemoryDescriptor) -> tuple[int, int]:
    """``(start, end)`` as C computes them; ``end <= start`` means the entry never matches."""
    return d.phys_addr, (d.phys_addr + ((d.num_pages << PAGE_SHIFT) & U64_MAX)) & U64_MAX


class FirstMatch:
    """Which descriptor a first-match walk over ``descs`` returns for an address."""

    __slots__ = ("_descs", "_ends", "_owners", "_skip_bogus", "_starts")

    def __init__(self, descs: Sequence[MemoryDescriptor], *, skip_bogus: bool = False) -> None:
        self._descs = descs
        self._skip_bogus = skip_bogus
        if skip_bogus:
            spans = [
                (d.phys_addr, d.phys_addr + (d.num_pages << PAGE_SHIFT), i)
                for i, d in enumerate(descs)
                if not d.phys_addr & _PAGE_MASK
                and 0 < d.num_pages <= (U64_MAX - d.phys_addr) >> PAGE_SHIFT
            ]
        else:
            spans = [
                (d.phys_addr, (d.phys_addr + ((d.num_pages << PAGE_SHIFT) & U64_MAX)) & U64_MAX, i)
                for i, d in enumerate(descs)
            ]
            spans = [x for x in spans if x[0] < x[1]]
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._owners: list[int] = []
        starts = [s for s, _, _ in spans]
        ends = [e for _, e, _ in spans]
        if all(map(operator.le, ends[:-1], starts[1:])):  # sorted and disjoint: the usual map
            self._starts, self._ends = starts, ends
            self._owners = [i for _, _, i in spans]
            return
        spans.sort()
        bounds = sorted({b for s, e, _ in spans for b in (s, e)})
        active: list[tuple[int, int]] = []  # heap of (map index, end) of spans begun so far
        k = 0
        for lo, hi in pairwise(bounds):  # no span starts or ends strictly inside [lo, hi)
            while k < len(spans) and spans[k][0] <= lo:
                heapq.heappush(active, (spans[k][2], spans[k][1]))
                k += 1
            while active and active[0][1] <= lo:
                heapq.heappop(active)
            if not active:
                continue
            owner = active[0][0]
            if self._owners and self._owners[-1] == owner and self._ends[-1] == lo:
                self._ends[-1] = hi
            else:
                self._starts.append(lo)
                self._ends.append(hi)
                self._owners.append(owner)

    def find(self, addr: int) -> int | None:
        """Index of the first descriptor holding ``addr``, or None."""
        k = bisect.bisect_right(self._starts, addr) - 1
        if k >= 0 and addr < self._ends[k]:
            return self._owners[k]
        return None


def first_match_scan(
    descs: Sequence[MemoryDescriptor], addr: int, *, skip_bogus: bool = False
) -> int | None:
    """The same answer as :class:`FirstMatch`, by a linear walk (the reference, and the naive
    baseline of the benchmark)."""
    for i, d in enumerate(descs):
        if skip_bogus:
            if d.is_bogus:
                continue
            s, e = d.phys_addr, d.phys_addr + (d.num_pages << PAGE_SHIFT)
        else:
            s, e = u64_span(d)
        if s <= addr < e:
            return i
    return None
