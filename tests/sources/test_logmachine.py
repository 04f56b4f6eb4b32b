"""logmachine.retype_at: the index it gives for the retyped pages is the one a fresh lookup of
the new map gives (Linux 6.3+ __efi_mem_desc_lookup: first in map order, bogus entries
skipped), on any map: sorted or not, overlapping, with bogus and unaligned descriptors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.sources.logmachine import retype, retype_at
from efihandoff.uefi.memmap import MemoryDescriptor, MemoryMap

PAGE = 0x1000

_descriptor = st.builds(
    MemoryDescriptor,
    st.integers(0, 15),
    st.one_of(st.integers(0, 64).map(lambda p: p * PAGE), st.integers(0, 64 * PAGE)),
    st.sampled_from([0, 1, 1, 2, 3, 16]),
    st.sampled_from([0xF, 0x8000_0000_0000_000F]),
)


@settings(max_examples=400, deadline=None)
@given(
    descs=st.lists(_descriptor, max_size=8),
    addr=st.integers(0, 70 * PAGE),
    mtype=st.integers(0, 15),
    end=st.one_of(st.none(), st.integers(0, 72 * PAGE)),
)
def test_retype_at_index_is_a_fresh_lookup(
    descs: list[MemoryDescriptor], addr: int, mtype: int, end: int | None
) -> None:
    mm = MemoryMap(tuple(descs))
    own, i = retype_at(mm, addr, mtype, end)
    assert own == retype(mm, addr, mtype, end)
    fresh = MemoryMap(own.descriptors, own.desc_size, own.desc_version)  # no index yet
    assert i == fresh.lookup_index(addr)


def test_retype_at_splits_the_page_out() -> None:
    # One 16-page conventional descriptor; the page at 0x5000 becomes Boot Services Data.
    mm = MemoryMap((MemoryDescriptor(7, 0, 16, 0xF),))
    own, i = retype_at(mm, 0x5018, 4)
    assert [(d.type, d.phys_addr, d.num_pages) for d in own] == [
        (7, 0, 5),
        (4, 0x5000, 1),
        (7, 0x6000, 10),
    ]
    assert i == 1
