"""Tests for efihandoff.rules.e820: the types by hand from Linux libstub/x86-stub.c setup_e820
and Xen efi-boot.h efi_arch_process_memory_map."""

from __future__ import annotations

import pytest

from efihandoff.e820 import E820Type
from efihandoff.rules.e820 import (
    linux_stub_e820_type,
    linux_stub_sources,
    xen_e820_type,
    xen_sources,
)
from efihandoff.uefi.memmap import MemoryAttribute, MemoryType

T = MemoryType
WB, RUN, SP = int(MemoryAttribute.WB), int(MemoryAttribute.RUNTIME), int(MemoryAttribute.SP)


@pytest.mark.parametrize(
    ("mtype", "attr", "e820"),
    [
        (T.EfiBootServicesData, WB, E820Type.RAM),
        (T.EfiConventionalMemory, WB | SP, E820Type.SOFT_RESERVED),
        (T.EfiRuntimeServicesData, WB | RUN, E820Type.RESERVED),
        (T.EfiACPIReclaimMemory, WB, E820Type.ACPI),
        (T.EfiACPIMemoryNVS, WB, E820Type.NVS),
        (T.EfiUnusableMemory, 0, E820Type.UNUSABLE),
        (T.EfiPersistentMemory, WB, E820Type.PMEM),
        (T.EfiUnacceptedMemoryType, WB, E820Type.RAM),
        (0x70000000, WB, None),  # an OEM type: "default: continue"
    ],
)
def test_linux_stub(mtype: int, attr: int, e820: E820Type | None) -> None:
    assert linux_stub_e820_type(mtype, attr) == e820


@pytest.mark.parametrize(
    ("mtype", "attr", "mapbs", "rt_reserved", "e820"),
    [
        (T.EfiBootServicesData, WB, False, True, E820Type.RAM),
        (T.EfiBootServicesData, WB, True, True, E820Type.RESERVED),  # -mapbs
        (T.EfiConventionalMemory, 0, False, True, E820Type.UNUSABLE),  # no WB
        (T.EfiLoaderData, WB | RUN, False, True, E820Type.RESERVED),  # 4.17+: RUNTIME
        (T.EfiLoaderData, WB | RUN, False, False, E820Type.RAM),  # 4.16.2
        (T.EfiACPIReclaimMemory, WB, False, True, E820Type.ACPI),
        (T.EfiACPIMemoryNVS, WB, False, True, E820Type.NVS),
        (T.EfiUnusableMemory, WB, False, True, E820Type.UNUSABLE),
        (T.EfiRuntimeServicesCode, WB | RUN, False, True, E820Type.RESERVED),
    ],
)
def test_xen(mtype: int, attr: int, mapbs: bool, rt_reserved: bool, e820: E820Type) -> None:
    assert xen_e820_type(mtype, attr, mapbs, rt_reserved) == e820


def test_linux_stub_sources_read_the_stub_table_backwards():
    # By hand from x86-stub.c setup_e820: E820_TYPE_RESERVED for reserved, runtime code/data,
    # MMIO, MMIO port space and PAL code; ACPI for reclaim; NVS; UNUSABLE; PMEM; RAM for the
    # loader, boot-services and conventional types (unaccepted memory left out: config-dependent).
    T = MemoryType
    assert linux_stub_sources(E820Type.RESERVED) == (
        T.EfiReservedMemoryType, T.EfiRuntimeServicesCode, T.EfiRuntimeServicesData,
        T.EfiMemoryMappedIO, T.EfiMemoryMappedIOPortSpace, T.EfiPalCode,
    )
    assert linux_stub_sources(E820Type.RAM) == (
        T.EfiLoaderCode, T.EfiLoaderData, T.EfiBootServicesCode, T.EfiBootServicesData,
        T.EfiConventionalMemory,
    )
    assert linux_stub_sources(E820Type.ACPI) == (T.EfiACPIReclaimMemory,)
    assert linux_stub_sources(E820Type.NVS) == (T.EfiACPIMemoryNVS,)
    assert linux_stub_sources(E820Type.UNUSABLE) == (T.EfiUnusableMemory,)
    assert linux_stub_sources(E820Type.PMEM) == (T.EfiPersistentMemory,)
    assert linux_stub_sources(E820Type.SOFT_RESERVED) == ()


def test_xen_sources_read_efi_arch_process_memory_map_backwards():
    # By hand from Xen 4.17 efi-boot.h efi_arch_process_memory_map: loader, boot-services and
    # conventional memory are RAM with WB, unusable without it, reserved with RUNTIME (4.16.3+)
    # and, for boot services, with -mapbs; unusable, ACPI reclaim and NVS keep their E820 type;
    # every other type (reserved, runtime, MMIO, PAL, persistent, unaccepted) is reserved.
    # Regression: the hand-written inverse left boot-services memory without WB out of
    # 'unusable' and unaccepted memory out of 'reserved'.
    T = MemoryType
    ram = (T.EfiLoaderCode, T.EfiLoaderData, T.EfiBootServicesCode, T.EfiBootServicesData,
           T.EfiConventionalMemory)
    assert xen_sources(E820Type.RAM) == ram
    assert xen_sources(E820Type.UNUSABLE) == (*ram, T.EfiUnusableMemory)
    assert xen_sources(E820Type.ACPI) == (T.EfiACPIReclaimMemory,)
    assert xen_sources(E820Type.NVS) == (T.EfiACPIMemoryNVS,)
    assert set(xen_sources(E820Type.RESERVED)) == set(T) - {
        T.EfiUnusableMemory, T.EfiACPIReclaimMemory, T.EfiACPIMemoryNVS,
    }
    assert xen_sources(E820Type.PMEM) == ()
