"""Half-open integer intervals ``[start, end)``: union, difference and an indexed union.

One home for what the model (memblock reservations, E820 RAM, reclaimed ranges), the readers
(dump segments) and the outputs (hatched spans) each need of a set of address ranges.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

Span = tuple[int, int]
"""``(start, end)``, end exclusive."""


def merge(spans: Iterable[Span], *, keep_empty: bool = False) -> list[Span]:
    """The union of ``spans`` as sorted, disjoint spans; touching spans join (``(0, 4)`` and
    ``(4, 8)`` give ``(0, 8)``). Empty spans (``start >= end``) are left out unless
    ``keep_empty``, when one that touches no other stays as it is."""
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        elif s < e or keep_empty:
            out.append((s, e))
    return out


def subtract(span: Span, holes: Iterable[Span]) -> list[Span]:
    """The parts of ``span`` outside every one of ``holes`` (sorted by start), in order."""
    start, end = span
    out: list[Span] = []
    for hs, he in holes:
        if hs >= end:
            break
        if he <= start:
            continue
        if start < hs:
            out.append((start, hs))
        start = max(start, he)
    if start < end:
        out.append((start, end))
    return out


class SpanSet:
    """The union of ``spans`` (see :func:`merge`), with O(log n) look-ups."""

    __slots__ = ("_ends", "_starts", "spans")

    def __init__(self, spans: Iterable[Span], *, keep_empty: bool = False) -> None:
        self.spans: list[Span] = merge(spans, keep_empty=keep_empty)
        self._starts = [s for s, _ in self.spans]
        self._ends = [e for _, e in self.spans]

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __contains__(self, addr: object) -> bool:
        """Whether the integer ``addr`` lies in a span."""
        if not isinstance(addr, int):
            return False
        return self.find(addr) is not None

    def find(self, addr: int) -> Span | None:
        """The span holding ``addr``, or None."""
        k = bisect.bisect_right(self._starts, addr) - 1
        if k >= 0 and addr < self._ends[k]:
            return self.spans[k]
        return None

    def overlaps(self, start: int, end: int) -> bool:
        """Whether any span meets ``[start, end)``; an empty ``[x, x)`` meets a span it lies
        strictly inside (Linux 6.3 mm/memblock.c memblock_addrs_overlap with size 0)."""
        k = bisect.bisect_right(self._ends, start)  # the first span ending after start
        return k < len(self._starts) and self._starts[k] < end

    def covers(self, start: int, end: int) -> bool:
        """Whether one span holds all of ``[start, end)`` (``end <= start`` asks about the
        point ``start`` with its end included)."""
        k = bisect.bisect_right(self._starts, start) - 1
        return k >= 0 and end <= self._ends[k]

    def minus(self, span: Span) -> list[Span]:
        """``span`` less this set (:func:`subtract`)."""
        k = bisect.bisect_right(self._ends, span[0])  # the first span ending after start
        return subtract(span, self.spans[k:])


__all__ = ["Span", "SpanSet", "merge", "subtract"]
