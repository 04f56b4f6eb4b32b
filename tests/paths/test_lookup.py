"""First-match lookup: the index answers as the linear walk does, with C's u64 sums."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.uefi.memmap import (
    FirstMatch,
    MemoryDescriptor,
    MemoryMap,
    first_match_scan,
    u64_span,
)

U64 = (1 << 64) - 1


def test_u64_span_wraps() -> None:
    assert u64_span(MemoryDescriptor(7, 0x1000, 2)) == (0x1000, 0x3000)
    # 2^52 pages << 12 is 2^64: truncated to 0, the span is empty.
    assert u64_span(MemoryDescriptor(7, 0x1000, 1 << 52)) == (0x1000, 0x1000)
    s, e = u64_span(MemoryDescriptor(7, U64 - 0xFFF, 2))
    assert e < s  # the end wraps: never matches


def test_first_match_overlaps_and_unaligned() -> None:
    descs = [
        MemoryDescriptor(7, 0x2000, 4),  # [0x2000, 0x6000)
        MemoryDescriptor(4, 0x1000, 8),  # [0x1000, 0x9000): second in order
        MemoryDescriptor(4, 0x9800, 1),  # unaligned
        MemoryDescriptor(4, 0xA000, 0),  # empty
    ]
    fm = FirstMatch(descs)
    probes = (0xFFF, 0x1000, 0x2000, 0x5FFF, 0x6000, 0x9900, 0xA000, 0xA800)
    assert [fm.find(a) for a in probes] == [None, 1, 0, 0, 1, 2, 2, None]
    # Linux 6.3 skips the unaligned and empty entries.
    assert FirstMatch(descs, skip_bogus=True).find(0x9900) is None


_desc = st.builds(
    MemoryDescriptor,
    st.integers(0, 15),
    st.one_of(st.integers(0, 1 << 24).map(lambda x: x * 0x800), st.integers(0, U64)),
    st.one_of(st.integers(0, 64), st.integers(0, 1 << 53)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_desc, max_size=12), st.lists(st.integers(0, U64), max_size=8))
def test_index_equals_scan(descs: list[MemoryDescriptor], addrs: list[int]) -> None:
    # Probe the descriptors' own edges too.
    probes = addrs + [d.phys_addr for d in descs] + [u64_span(d)[1] for d in descs]
    probes += [max(p - 1, 0) for p in probes]
    for skip in (False, True):
        fm = FirstMatch(descs, skip_bogus=skip)
        for a in probes:
            assert fm.find(a) == first_match_scan(descs, a, skip_bogus=skip)
    # With skipping it is Linux 6.3's lookup, which MemoryMap.lookup implements too.
    mm = MemoryMap(tuple(descs))
    fm = FirstMatch(descs, skip_bogus=True)
    for a in probes:
        i = fm.find(a)
        assert (None if i is None else descs[i]) == mm.lookup(a)
