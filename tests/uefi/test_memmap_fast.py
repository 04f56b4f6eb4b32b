"""The memory map's whole-column shortcuts answer as the per-descriptor walks do.

``validate`` and ``FirstMatch`` test whole columns first (every start aligned, no empty or
wrapping entry, sorted and disjoint) and walk descriptor by descriptor only when that fails;
``replace_descriptor`` splices its parent's lookup index instead of building one. Each is
compared here with the plain walk, written out again in the test from the rules it follows
(Linux 6.3+ ``__efi_mem_desc_lookup``'s bogus entries, facts 4.4).
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.uefi.memmap import (
    PAGE_SIZE,
    FirstMatch,
    MemoryDescriptor,
    MemoryMap,
    columns,
    first_match_scan,
    none_bogus,
)

U64 = (1 << 64) - 1
HYPO = settings(max_examples=300, deadline=None)


def _bogus(d: MemoryDescriptor) -> bool:
    # written out from the rule: unaligned start, no pages, or an end past 2^64 - 1
    end = d.phys_addr + d.num_pages * 4096
    return d.phys_addr % PAGE_SIZE != 0 or d.num_pages == 0 or end > U64


def _codes_by_walk(descs: list[MemoryDescriptor]) -> list[str]:
    """validate()'s codes, one descriptor at a time (the reference)."""
    codes = []
    for d in descs:
        if d.phys_addr % PAGE_SIZE:
            codes.append("memmap.unaligned")
        if d.num_pages == 0:
            codes.append("memmap.zero-pages")
        elif d.phys_addr + d.num_pages * 4096 > U64:
            codes.append("memmap.wrap")
        if not 0 <= d.type <= 15:
            codes.append("memmap.unknown-type")
    valid = [(d.phys_addr, d.phys_addr + d.num_pages * 4096) for d in descs if not _bogus(d)]
    codes += ["memmap.unsorted" for (a, _), (b, _) in pairwise(valid) if b < a]
    reach = -1
    for s, e in sorted(valid):
        if s < reach:
            codes.append("memmap.overlap")
        reach = max(reach, e)
    return codes


# Mostly well-formed maps (the shortcut's case) with now and then a bad entry.
_start = st.one_of(
    st.integers(0, 1 << 20).map(lambda x: x * PAGE_SIZE),
    st.integers(0, U64),
    st.just(U64 - 0xFFF),
)
_desc = st.builds(
    MemoryDescriptor,
    st.one_of(st.integers(0, 15), st.integers(0, 0xFFFFFFFF)),
    _start,
    st.one_of(st.integers(1, 64), st.integers(0, 1 << 53)),
)


@st.composite
def _maps(draw: st.DrawFn) -> list[MemoryDescriptor]:
    """A sorted, disjoint, aligned map (types mostly known), then maybe a few entries of
    ``_desc`` dropped in anywhere."""
    n = draw(st.integers(0, 12))
    at, out = 0, []
    for _ in range(n):
        at += draw(st.integers(0, 4)) * PAGE_SIZE
        pages = draw(st.integers(1, 8))
        out.append(MemoryDescriptor(draw(st.integers(0, 16)), at, pages))
        at += pages * PAGE_SIZE
    for d in draw(st.lists(_desc, max_size=3)):
        out.insert(draw(st.integers(0, len(out))), d)
    return out


@HYPO
@given(_maps())
def test_validate_equals_the_walk(descs: list[MemoryDescriptor]) -> None:
    m = MemoryMap(tuple(descs))
    assert [f.code for f in m.validate()] == _codes_by_walk(descs)
    assert m.validate() == m.validate()  # worked out once, a fresh list each time
    assert m.validate() is not m.validate()


@HYPO
@given(_maps())
def test_none_bogus_is_no_entry_bogus(descs: list[MemoryDescriptor]) -> None:
    starts, pages, ends = columns(descs)
    assert starts == [d.phys_addr for d in descs]
    assert ends == [d.end for d in descs]
    assert none_bogus(starts, pages, ends) == (not any(_bogus(d) for d in descs))
    assert none_bogus(starts, pages, ends) == (not any(d.is_bogus for d in descs))


@HYPO
@given(_maps(), st.lists(st.integers(0, U64), max_size=6))
def test_first_match_equals_scan(descs: list[MemoryDescriptor], addrs: list[int]) -> None:
    probes = addrs + [p for d in descs for p in (d.phys_addr, d.end, max(d.phys_addr - 1, 0))]
    for skip in (False, True):
        fm = FirstMatch(descs, skip_bogus=skip)
        assert [fm.find(a) for a in probes] == [
            first_match_scan(descs, a, skip_bogus=skip) for a in probes
        ]


@HYPO
@given(_maps(), st.data())
def test_replace_descriptor_index_equals_a_fresh_one(
    descs: list[MemoryDescriptor], data: st.DataObject
) -> None:
    m = MemoryMap(tuple(descs))
    if not descs:
        return
    m.lookup(0)  # build the parent's index: the child's is spliced from it when it can be
    i = data.draw(st.integers(0, len(descs) - 1))
    d = descs[i]
    # cut d in up to three parts of a new type, or put anything in its place
    cut = data.draw(st.integers(0, max(d.num_pages - 1, 0)))
    parts = [d.replace(num_pages=cut)] if cut else []
    rest = d.num_pages - cut
    take = data.draw(st.integers(1, max(rest, 1)))
    parts.append(d.replace(type=9, phys_addr=d.phys_addr + cut * PAGE_SIZE, num_pages=take))
    if take < rest:
        parts.append(d.replace(phys_addr=d.phys_addr + (cut + take) * PAGE_SIZE,
                               num_pages=rest - take))
    new = data.draw(st.one_of(st.just(parts), st.lists(_desc, max_size=3)))
    child = m.replace_descriptor(i, *new)
    fresh = MemoryMap(child.descriptors)
    probes = [p for x in child.descriptors for p in (x.phys_addr, x.end - 1, x.end)]
    probes += data.draw(st.lists(st.integers(0, U64), max_size=4))
    assert [child.lookup_index(a) for a in probes] == [fresh.lookup_index(a) for a in probes]
    assert child.validate() == fresh.validate()


def test_replace_descriptor_splices_a_clean_map() -> None:
    # 0x1000.. three pages each, back to back; the middle one cut in three
    m = MemoryMap(tuple(MemoryDescriptor(7, 0x1000 + 0x3000 * i, 3) for i in range(3)))
    assert m.lookup_index(0x4000) == 1
    child = m.replace_descriptor(
        1,
        MemoryDescriptor(7, 0x4000, 1),
        MemoryDescriptor(4, 0x5000, 1),
        MemoryDescriptor(7, 0x6000, 1),
    )
    assert "_lookup_index" in child.__dict__  # spliced, not built on first use
    assert [child.lookup_index(a) for a in (0xFFF, 0x1000, 0x4FFF, 0x5000, 0x6000, 0x7000)] == [
        None, 0, 1, 2, 3, 4,
    ]
    assert child.lookup_index(0xA000) is None
    # a part reaching into the next descriptor: no splice, the index is built afresh
    over = m.replace_descriptor(1, MemoryDescriptor(7, 0x4000, 4))
    assert "_lookup_index" not in over.__dict__
    assert over.lookup_index(0x7000) == 1  # first in map order
