"""efihandoff.intervals: union, difference and the indexed union, against hand-worked cases
and a brute-force model over small integer sets."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from efihandoff.intervals import SpanSet, merge, subtract


def test_merge_joins_overlapping_and_touching_spans():
    assert merge([(10, 20), (0, 4), (4, 8), (15, 30)]) == [(0, 8), (10, 30)]


def test_merge_leaves_gaps():
    assert merge([(0, 4), (5, 8)]) == [(0, 4), (5, 8)]


def test_merge_drops_empty_spans_unless_asked():
    assert merge([(3, 3), (7, 5), (10, 12)]) == [(10, 12)]
    assert merge([(3, 3), (10, 12)], keep_empty=True) == [(3, 3), (10, 12)]
    # an empty span inside or touching another adds nothing either way
    assert merge([(0, 8), (8, 8)], keep_empty=True) == [(0, 8)]


def test_subtract():
    assert subtract((0, 100), [(10, 20), (30, 40)]) == [(0, 10), (20, 30), (40, 100)]
    assert subtract((0, 100), [(0, 100)]) == []
    assert subtract((10, 20), [(0, 5), (15, 30)]) == [(10, 15)]
    assert subtract((10, 20), []) == [(10, 20)]
    assert subtract((10, 20), [(20, 30)]) == [(10, 20)]


def test_spanset_lookups():
    s = SpanSet([(0x1000, 0x2000), (0x2000, 0x3000), (0x5000, 0x6000)])
    assert list(s) == [(0x1000, 0x3000), (0x5000, 0x6000)]
    assert 0x1000 in s and 0x2FFF in s and 0x3000 not in s and 0xFFF not in s
    assert "x" not in s
    assert s.find(0x5800) == (0x5000, 0x6000)
    assert s.find(0x4000) is None
    assert s.overlaps(0x2FFF, 0x5001)
    assert not s.overlaps(0x3000, 0x5000)
    assert s.covers(0x1000, 0x3000)
    assert not s.covers(0x1000, 0x5001)
    assert not s.covers(0x3000, 0x4000)
    assert s.minus((0, 0x7000)) == [(0, 0x1000), (0x3000, 0x5000), (0x6000, 0x7000)]
    assert len(s) == 2


_spans = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=8)


def _points(spans: list[tuple[int, int]]) -> set[int]:
    return {x for s, e in spans for x in range(s, e)}


@given(_spans)
def test_merge_is_the_union(spans):
    out = merge(spans)
    assert _points(out) == _points(spans)
    assert all(s < e for s, e in out)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(out))  # disjoint, not touching, sorted


@given(_spans, st.tuples(st.integers(0, 40), st.integers(0, 40)))
def test_subtract_is_the_difference(holes, span):
    out = subtract(span, merge(holes))
    assert _points(out) == _points([span]) - _points(holes)
    assert SpanSet(holes).minus(span) == out


@given(_spans, st.integers(0, 41), st.integers(0, 41))
def test_spanset_agrees_with_the_points(spans, a, b):
    s, pts = SpanSet(spans), _points(spans)
    assert (a in s) == (a in pts)
    if a < b:
        assert s.overlaps(a, b) == bool(pts & set(range(a, b)))
        assert s.covers(a, b) == any(x <= a and b <= y for x, y in merge(spans))
    else:  # an empty range [a, a) meets a span it lies strictly inside (memblock's test)
        assert s.overlaps(a, a) == any(x < a < y for x, y in merge(spans))
