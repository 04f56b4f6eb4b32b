"""logmachine.retype_at: the index it gives for the retyped pages is the one a fresh lookup of
the new map gives (Linux 6.3+ __efi_mem_desc_lookup: first in map order, bogus entries
skipped), on any map: sorted or not, overlapping, with bogus and unaligned descriptors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.machine import Machine, free_gap
from efihandoff.sources.kernellog import BootLog, E820Entry, LoggedDescriptor
from efihandoff.sources.logmachine import (
    candidate_machine,
    from_boot,
    infer_memory_type,
    retype,
    retype_at,
)
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.memmap import MemoryDescriptor, MemoryMap
from efihandoff.uefi.systab import ConfigurationTable

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


def _boot(**fields: object) -> BootLog:
    base: dict[str, object] = dict(
        first_line=1, kernel_version=None, efi_version=None, efi_vendor=None, config_tables=(),
        memory_map=(), runtime_map=(), e820=(), e820_updates=(), esrt_messages=(),
        esrt_reserved=None, xen=None, is_xen_dom0=False, dmi=None, dom0_unusable=(),
    )
    base.update(fields)
    return BootLog(**base)  # type: ignore[arg-type]  # the fields above, each of its type


def test_e820_map_drops_empty_and_unaligned_entries() -> None:
    e820 = (
        E820Entry(0, 0x9F000, "usable", 1, 3),
        E820Entry(0x9F000, 0x9F000, "reserved", 2, 4),  # empty: no descriptor
        E820Entry(0xA0800, 0xA1000, "reserved", 2, 5),  # not on a page: no descriptor
        E820Entry(0x100000, 0x200000, "ACPI NVS", 4, 6),
        E820Entry(0x200000, 0x201000, "type 20", None, 7),  # a kind with no EFI type: reserved
    )
    mm = from_boot(_boot(e820=e820)).machine.memory_map
    assert mm is not None
    assert [(d.type, d.phys_addr, d.num_pages, d.attribute) for d in mm] == [
        (7, 0, 0x9F, 0xF),
        (10, 0x100000, 0x100, 0xF),
        (0, 0x200000, 1, 0xF),
    ]
    clean = from_boot(_boot(e820=e820[:1] + e820[3:])).machine.memory_map
    assert clean == mm  # the whole-column way gives what the filtered one does


def test_printed_map_attribute_not_printed_is_ram() -> None:
    logged = (
        LoggedDescriptor(4, 0x1000, 2, None, 10),  # an unknown mnemonic: attribute unknown
        LoggedDescriptor(6, 0x3000, 1, 0x800000000000000F, 11),
    )
    mm = from_boot(_boot(memory_map=logged)).machine.memory_map
    assert mm is not None
    assert list(mm) == [
        MemoryDescriptor(4, 0x1000, 2, 0xF),
        MemoryDescriptor(6, 0x3000, 1, 0x800000000000000F),
    ]


def test_infer_memory_type_takes_the_first_e820_entry_holding_the_address() -> None:
    e820 = (
        E820Entry(0x100000, 0x200000, "usable", 1, 3),
        E820Entry(0x0, 0x300000, "ACPI NVS", 4, 4),  # overlaps the first: second in order
        E820Entry(0x400000, 0x401000, "ACPI data", 3, 5),
    )
    boot = _boot(e820=e820)
    assert "line 3" in infer_memory_type(boot, 0x100000).evidence
    assert "line 3" in infer_memory_type(boot, 0x1FFFFF).evidence
    assert "line 4" in infer_memory_type(boot, 0x200000).evidence  # the first one's end
    assert "line 4" in infer_memory_type(boot, 0xFFFFF).evidence
    assert infer_memory_type(boot, 0x400FFF).memory_type == 9  # ACPI data: ACPI reclaim
    assert infer_memory_type(boot, 0x401000).candidates == ()  # in no entry
    assert infer_memory_type(_boot(), 0x1000).candidates == ()


def _candidate_by_whole_map(
    machine: Machine, mm: MemoryMap, table: ConfigurationTable, mtype: int, end: int | None
) -> Machine:
    """candidate_machine as it was first written: the whole retyped map first, then the
    descriptor holding the table taken from it (the reference)."""
    own, i = retype_at(mm, table.table, mtype, end)
    if i is None:
        return machine.with_(memory_map=own)
    d = own[i]
    free = free_gap([(table.table, table.table + 1)])
    if free.phys_addr < d.end and d.phys_addr < free.end:
        return machine.with_(memory_map=own)
    descs = tuple(sorted((d, free), key=lambda x: x.phys_addr))
    return machine.with_(memory_map=MemoryMap(descs), config_tables=(table,))


@settings(max_examples=300, deadline=None)
@given(
    descs=st.lists(_descriptor, max_size=8),
    addr=st.one_of(st.integers(0, 70 * PAGE), st.integers(0xEF00_0000, 0xF100_0000)),
    mtype=st.integers(0, 15),
    end=st.one_of(st.none(), st.integers(0, 72 * PAGE), st.integers(0xEF00_0000, 0xF200_0000)),
    near_gap=st.booleans(),
)
def test_candidate_machine_equals_the_whole_map_way(
    descs: list[MemoryDescriptor], addr: int, mtype: int, end: int | None, near_gap: bool
) -> None:
    if near_gap:  # a descriptor reaching the free gap, so the whole map is kept
        descs = [*descs, MemoryDescriptor(7, 0xEF00_0000, 0x2000, 0xF)]
    mm = MemoryMap(tuple(descs))
    table = ConfigurationTable(ESRT_GUID, addr)
    machine = Machine(memory_map=mm, config_tables=(table,))
    got = candidate_machine(machine, mm, table, mtype, end)
    want = _candidate_by_whole_map(machine, mm, table, mtype, end)
    assert got.memory_map == want.memory_map
    assert got.config_tables == want.config_tables
