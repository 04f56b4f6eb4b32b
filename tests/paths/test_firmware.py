"""The edk2 boot-services model (facts 1.8; edk2 Page.c, Pool.c, InstallConfigurationTable.c)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.edk2 import BootServices, OutOfResources
from efihandoff.errors import EfiHandoffError
from efihandoff.machine import Fill, PhysicalMemory
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryAttribute, MemoryDescriptor, MemoryType

T = MemoryType
WB = int(MemoryAttribute.WB)
RT = int(MemoryAttribute.RUNTIME)


def _bs() -> BootServices:
    # Free memory [1 MiB, 2 MiB), an RT-code page, free memory [2 MiB + 4 KiB, 3 MiB).
    return BootServices(
        [
            MemoryDescriptor(T.EfiConventionalMemory, 0x100000, 0x100, WB),
            MemoryDescriptor(T.EfiRuntimeServicesCode, 0x200000, 1, WB | RT),
            MemoryDescriptor(T.EfiConventionalMemory, 0x201000, 0xFF, WB),
        ],
        PhysicalMemory(Fill.ZEROS),
    )


def test_allocate_any_pages_top_down_below_the_limit() -> None:
    bs = _bs()
    assert bs.allocate_pages(T.EfiBootServicesData, 2) == 0x2FE000
    bs.allocation_limit = 0x200000
    assert bs.allocate_pages(T.EfiBootServicesData, 1) == 0x1FF000
    assert [(d.type, d.phys_addr, d.num_pages) for d in bs.descriptors] == [
        (T.EfiConventionalMemory, 0x100000, 0xFF),
        (T.EfiBootServicesData, 0x1FF000, 1),
        (T.EfiRuntimeServicesCode, 0x200000, 1),
        (T.EfiConventionalMemory, 0x201000, 0xFD),
        (T.EfiBootServicesData, 0x2FE000, 2),
    ]


def test_allocations_join_a_neighbour_of_the_same_type_and_attribute() -> None:
    bs = _bs()
    bs.allocate_pages(T.EfiBootServicesData, 1)  # 0x2ff000
    bs.allocate_pages(T.EfiBootServicesData, 1)  # 0x2fe000, joins it (CoreAddRange)
    assert bs.descriptors[-1] == MemoryDescriptor(T.EfiBootServicesData, 0x2FE000, 2, WB)
    # Runtime types take EFI_MEMORY_RUNTIME: a different attribute, so no join.
    bs.allocate_pages(T.EfiRuntimeServicesData, 1)
    assert bs.descriptors[-2] == MemoryDescriptor(T.EfiRuntimeServicesData, 0x2FD000, 1, WB | RT)


def test_allocate_address_needs_free_memory() -> None:
    bs = _bs()
    assert bs.allocate_pages(T.EfiLoaderData, 1, address=0x100000) == 0x100000
    with pytest.raises(OutOfResources):
        bs.allocate_pages(T.EfiLoaderData, 1, address=0x200000)  # RT code
    with pytest.raises(OutOfResources):
        bs.allocate_pages(T.EfiLoaderData, 2, address=0x1FF000)  # runs past the region
    with pytest.raises(OutOfResources):
        bs.allocate_pages(T.EfiLoaderData, 0x200)  # nothing that big


def test_pool_head_and_tail_as_edk2_writes_them() -> None:
    bs = _bs()
    addr = bs.allocate_pool(T.EfiACPIReclaimMemory, 80)
    # A fresh page from the top; the data after the 24-byte POOL_HEAD.
    assert addr == 0x2FF018
    # POOL_HEAD {"phd0", Reserved, Type, pad, Size}; Size = 80 + 24 + 16 = 120.
    head = bs.memory.read(0x2FF000, 24)
    assert head is not None
    assert head[:4] == b"phd0"
    assert struct.unpack_from("<I", head, 8)[0] == T.EfiACPIReclaimMemory
    assert struct.unpack_from("<Q", head, 16)[0] == 120
    # POOL_TAIL {"ptal", Reserved (not written), Size} right after the 80 bytes.
    tail = bs.memory.read(addr + 80, 16)
    assert tail == b"ptal" + bytes(4) + struct.pack("<Q", 120)
    # The 120-byte block came from bin 0 (128 bytes): the fresh page was carved after it into
    # free blocks, largest bins first (Pool.c mPoolSizeTable): 2688 at +128, 1024 at +2816,
    # 256 at +3840. A 1-byte request (8 + 40 = 48: bin 0, empty) takes the first non-empty
    # larger bin's block, the 256 at +3840, and carves its other 128 bytes into bin 0.
    assert bs.allocate_pool(T.EfiACPIReclaimMemory, 1) == 0x2FF000 + 3840 + 24
    assert bs.allocate_pool(T.EfiACPIReclaimMemory, 88) == 0x2FF000 + 3840 + 128 + 24  # bin 0
    # 3000 + 40 bytes need a bin above 2688 (4352, not below a page): pages of their own.
    assert bs.allocate_pool(T.EfiACPIReclaimMemory, 3000) == 0x2FE018


def test_install_configuration_table_replaces_in_place_or_appends() -> None:
    bs = _bs()
    bs.create_system_table(vendor="EDK II", revision=0x00020046)
    a, b = Guid.parse("b122a263-3661-4f68-9929-78f8b0d62180"), Guid.parse(
        "eb9d2d30-2d88-11d3-9a16-0090273fc14d"
    )
    bs.install_configuration_table(a, 0x1000)
    assert bs.system_table is not None
    array = bs.system_table.tables
    bs.install_configuration_table(b, 0x2000)
    bs.install_configuration_table(a, 0x3000)  # existing GUID: replaced in place
    assert bs.system_table.tables == array
    assert [(t.guid, t.table) for t in bs.config_tables()] == [(a, 0x3000), (b, 0x2000)]
    assert bs.system_table.nr_tables == 2


def test_config_array_grows_by_16_entries() -> None:
    bs = _bs()
    bs.create_system_table()
    for i in range(17):
        bs.install_configuration_table(Guid.from_bytes(bytes([i + 1] * 16)), 0x1000 * (i + 1))
    assert bs.config_capacity == 32
    assert len(bs.config_tables()) == 17


def test_no_allocation_after_exit() -> None:
    bs = _bs()
    mm = bs.exit_boot_services()
    assert mm.desc_size == 48 and len(mm) == 3
    with pytest.raises(EfiHandoffError):
        bs.allocate_pages(T.EfiLoaderData, 1)


# -- edk2 Pool.c free lists, DEBUG_CLEAR_MEMORY, declared pool room (issue 13) -----------------

AF = 0xAF  # MdePkg.dec PcdDebugClearMemoryValue


def _tail(bs: BootServices, addr: int, data: int) -> tuple[bytes, int, int]:
    raw = bs.memory.read(addr + data, 16)
    assert raw is not None
    sig, reserved, size = struct.unpack("<4sIQ", raw)
    return sig, reserved, size


def test_debug_build_clears_the_callers_bytes_and_what_it_frees() -> None:
    bs = _bs()
    bs.debug_clear = True
    a = bs.allocate_pool(T.EfiBootServicesData, 20)
    assert a == 0x2FF018  # a fresh page from the top
    # CoreAllocatePoolI: DEBUG_CLEAR_MEMORY (Buffer, Size - POOL_OVERHEAD): the 24 bytes (20
    # rounded to 8) hold 0xAF; the tail follows them, its Reserved word the page's old bytes.
    assert bs.memory.read(a, 24) == bytes([AF]) * 24
    assert _tail(bs, a, 24) == (b"ptal", 0, 24 + 40)
    # CoreFreePoolI: the whole block cleared, then it is the page's only used block: the page
    # goes back to free memory (CoreFreePoolPages), cleared again, the map as it was.
    before = [d for d in _bs().descriptors]
    bs.free_pool(a)
    assert bs.descriptors == before
    assert bs.memory.read(0x2FF000, 0x1000) == bytes([AF]) * 0x1000
    # Xen's short copy in miniature: AllocatePool(EfiACPIReclaimMemory, 80) gets that page
    # again; its POOL_TAIL's unwritten Reserved word is what the free left there.
    c = bs.allocate_pool(T.EfiACPIReclaimMemory, 80)
    assert c == 0x2FF018
    assert _tail(bs, c, 80) == (b"ptal", 0xAFAFAFAF, 120)


def test_release_build_writes_only_head_and_tail() -> None:
    bs = _bs()  # debug_clear False: DEBUG_CLEAR_MEMORY does nothing
    a = bs.allocate_pool(T.EfiBootServicesData, 20)
    assert bs.memory.read(a, 24) == bytes(24)  # the zero fill, untouched
    bs.free_pool(a)
    assert bs.memory.read(0x2FF000, 4) == b"pfr0"  # POOL_FREE signature, nothing cleared
    assert bs.descriptors == _bs().descriptors  # the page went back all the same


def test_freed_block_is_reused_first() -> None:
    bs = _bs()
    a = bs.allocate_pool(T.EfiBootServicesData, 8)  # 48: bin 128, page head
    b = bs.allocate_pool(T.EfiBootServicesData, 8)  # bin 128 empty: the 256 at +0xf00, split
    assert (a, b) == (0x2FF018, 0x2FFF18)
    c = bs.allocate_pool(T.EfiBootServicesData, 8)  # the 128 left at +0xf80
    assert c == 0x2FFF98
    bs.free_pool(b)  # InsertHeadList: taken next
    assert bs.allocate_pool(T.EfiBootServicesData, 80) == b
    # Different types never share a page.
    assert bs.allocate_pool(T.EfiLoaderData, 8) == 0x2FE018


def _reclaim_bs() -> BootServices:
    # Free memory [1 MiB, 2 MiB), then 16 pages of ACPI reclaim, then 4 pages of RT data.
    return BootServices(
        [
            MemoryDescriptor(T.EfiConventionalMemory, 0x100000, 0x100, WB),
            MemoryDescriptor(T.EfiACPIReclaimMemory, 0x200000, 0x10, WB),
            MemoryDescriptor(T.EfiRuntimeServicesData, 0x210000, 4, WB | RT),
        ],
        PhysicalMemory(Fill.ZEROS),
        debug_clear=True,
    )


def test_declared_bin_pages_serve_their_type_first() -> None:
    bs = _reclaim_bs()
    # The lower 8 pages of the ACPI-reclaim region are free room of its bin (Page.c
    # FindFreePages tries the type's bin first; CoreAddMemoryDescriptor freed the bins, so a
    # DEBUG build left 0xAF there).
    bs.declare_pool(T.EfiACPIReclaimMemory, 0x200000, 0x208000)
    before = list(bs.descriptors)
    c = bs.allocate_pool(T.EfiACPIReclaimMemory, 80)
    assert c == 0x207018  # the bin's top free page, not free memory's
    assert _tail(bs, c, 80) == (b"ptal", 0xAFAFAFAF, 120)
    assert bs.descriptors == before  # the map already said ACPI reclaim
    assert bs.allocate_pages(T.EfiACPIReclaimMemory, 2) == 0x205000
    # Other types do not use it.
    assert bs.allocate_pool(T.EfiBootServicesData, 80) == 0x1FF018


def test_declared_blocks_are_carved_largest_bin_first() -> None:
    bs = _reclaim_bs()
    # 512 bytes at the end of the RT-data page 0x211000: a 384 block at +0xe00, a 128 at +0xf80.
    bs.declare_pool(T.EfiRuntimeServicesData, 0x211E00, 0x212000)
    assert bs.allocate_pool(T.EfiRuntimeServicesData, 96) == 0x211E18  # 136: bin 256 -> 384
    assert bs.allocate_pool(T.EfiRuntimeServicesData, 8) == 0x211F18  # the 128 carved from it
    assert bs.allocate_pool(T.EfiRuntimeServicesData, 8) == 0x211F98  # the declared 128
    head = bs.memory.read(0x211E00, 8)
    # POOL_HEAD.Reserved is never written: it keeps the free block's POOL_FREE.Index, 2 (384).
    assert head is not None and head[:4] == b"phd0" and head[4:] == struct.pack("<I", 2)


def test_declared_room_must_be_of_its_type_and_shape() -> None:
    bs = _reclaim_bs()
    with pytest.raises(OutOfResources):
        bs.declare_pool(T.EfiBootServicesData, 0x200000, 0x201000)  # ACPI reclaim there
    with pytest.raises(OutOfResources):
        bs.declare_pool(T.EfiRuntimeServicesData, 0x211E10, 0x212000)  # not 128-byte steps
    with pytest.raises(OutOfResources):
        bs.declare_pool(T.EfiRuntimeServicesData, 0x211E00, 0x212080)  # crosses a page


def test_pool_state_survives_the_machine() -> None:
    from efihandoff.machine import Machine

    bs = _reclaim_bs()
    bs.declare_pool(T.EfiACPIReclaimMemory, 0x200000, 0x208000)
    bs.declare_pool(T.EfiRuntimeServicesData, 0x211E00, 0x212000)
    again = BootServices.from_machine(bs.machine(Machine()))
    assert again.debug_clear
    assert again.allocate_pool(T.EfiACPIReclaimMemory, 80) == 0x207018
    assert again.allocate_pool(T.EfiRuntimeServicesData, 96) == 0x211E18


_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("alloc"),
            st.sampled_from([T.EfiBootServicesData, T.EfiACPIReclaimMemory, T.EfiLoaderData]),
            st.integers(0, 9000),
        ),
        st.tuples(st.just("free"), st.integers(0, 50), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(_OPS, st.booleans())
def test_pool_blocks_never_overlap_and_all_pages_come_back(
    ops: list, debug: bool  # type: ignore[type-arg]
) -> None:
    bs = _bs()
    bs.debug_clear = debug
    original = list(bs.descriptors)
    live: list[tuple[int, int, int]] = []  # (data address, type, size asked)
    for op, a, b in ops:
        if op == "alloc":
            live.append((bs.allocate_pool(a, b), a, b))
        elif live:
            addr, _, _ = live.pop(a % len(live))
            bs.free_pool(addr)
        spans = sorted((x - 24, x + ((n + 7) & ~7) + 16, t) for x, t, n in live)
        for (_, e1, _), (s2, _, _) in itertools.pairwise(spans):
            assert e1 <= s2  # Pool.c: no two live blocks share a byte
        for s, e, t in spans:
            d = next(d for d in bs.descriptors if d.phys_addr <= s < d.end)
            assert d.type == t and e <= d.end  # inside pages of the block's own type
            assert bs.memory.read(s, 4) == b"phd0" and bs.memory.read(e - 16, 4) == b"ptal"
    for addr, _, _ in live:
        bs.free_pool(addr)
    assert bs.descriptors == original  # every pool page went back (CoreFreePoolI)
