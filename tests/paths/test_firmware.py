"""The edk2 boot-services model (facts 1.8; edk2 Page.c, Pool.c, InstallConfigurationTable.c)."""

from __future__ import annotations

import struct

import pytest

from efihandoff.errors import EfiHandoffError
from efihandoff.machine import Fill, PhysicalMemory
from efihandoff.paths.firmware import BootServices, OutOfResources
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
    # The next small allocation of that type shares the page; sizes round up to 8.
    assert bs.allocate_pool(T.EfiACPIReclaimMemory, 1) == 0x2FF000 + 120 + 24
    # A request over half a page gets pages of its own.
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
