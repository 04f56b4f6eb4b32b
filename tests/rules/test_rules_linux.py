"""Tests for efihandoff.rules.linux: expected values by hand from Linux 6.1/6.3 esrt.c
efi_esrt_init and drivers/xen/efi.c (facts file sections 3 and 4)."""

from __future__ import annotations

import pytest

from efihandoff.rules import linux
from efihandoff.rules.tables import by_name
from efihandoff.uefi.memmap import MemoryAttribute, MemoryDescriptor, MemoryMap, MemoryType

T = MemoryType
RUN = int(MemoryAttribute.RUNTIME)


@pytest.mark.parametrize(
    ("mtype", "attr", "v61", "v63"),
    [
        (T.EfiBootServicesData, 0, True, True),
        (T.EfiRuntimeServicesData, 0, True, True),
        (T.EfiACPIReclaimMemory, 0, False, True),  # 01de145dc7fb
        (T.EfiACPIMemoryNVS, 0, False, True),
        (T.EfiBootServicesCode, 0, False, False),
        (T.EfiConventionalMemory, 0, False, False),
        (T.EfiConventionalMemory, RUN, True, True),  # RUNTIME: any type
        (T.EfiReservedMemoryType, 0, False, False),
    ],
)
def test_esrt_type_accepted(mtype: int, attr: int, v61: bool, v63: bool) -> None:
    assert linux.esrt_type_accepted(mtype, attr, (6, 1)) is v61
    assert linux.esrt_type_accepted(mtype, attr, (6, 3)) is v63
    assert linux.esrt_type_accepted(mtype, attr) is v63  # the default is the newer kernel


def test_esrt_size_checks() -> None:
    # efi_esrt_init: header 16 bytes, entries 40 each, at most 128 entries.
    assert not linux.esrt_header_fits(15) and linux.esrt_header_fits(16)
    assert linux.esrt_only_header(16 + 39, 1) and not linux.esrt_only_header(16 + 40, 1)
    assert not linux.esrt_only_header(16, 0)  # no entries: nothing more to hold
    assert linux.esrt_fits(16 + 80, 2) and not linux.esrt_fits(16 + 79, 2)
    assert not linux.esrt_count_too_large(128) and linux.esrt_count_too_large(129)
    assert linux.esrt_version_supported(1) and not linux.esrt_version_supported(2)


def test_xen_usable_types() -> None:
    # drivers/xen/efi.c xen_efi_config_table_is_usable: RT code/data, ACPI, reserved.
    assert {
        T.EfiRuntimeServicesCode,
        T.EfiRuntimeServicesData,
        T.EfiACPIReclaimMemory,
        T.EfiACPIMemoryNVS,
        T.EfiReservedMemoryType,
    } == linux.XEN_USABLE_TYPES
    assert T.EfiBootServicesData not in linux.XEN_USABLE_TYPES


def test_lookup_pre63_matches_unaligned_entries() -> None:
    # 6.1 efi_mem_desc_lookup takes the first match and does not skip an unaligned entry;
    # 6.3 __efi_mem_desc_lookup skips it.
    bogus = MemoryDescriptor(T.EfiConventionalMemory, 0x1800, 2)
    good = MemoryDescriptor(T.EfiBootServicesData, 0x1000, 4)
    mm = MemoryMap((bogus, good))
    assert linux.lookup_pre63(mm, 0x2000) == bogus
    assert mm.lookup(0x2000) == good
    assert linux.lookup_pre63(mm, -1) is None
    assert linux.lookup_pre63(mm, 1 << 64) is None


def test_versions() -> None:
    assert linux.esrt_types((6, 2)) == linux.ESRT_TYPES_61
    assert linux.esrt_types((6, 12)) == linux.ESRT_TYPES_63
    assert not linux.xen_esrt((6, 2)) and linux.xen_esrt((6, 3))
    assert not linux.skips_bogus((6, 1)) and linux.skips_bogus((6, 3))


def test_table_facts_join_the_spec_registry() -> None:
    esrt = by_name("ESRT")
    assert esrt is not None
    assert (esrt.linux_label, esrt.linux_parses, esrt.xen_knows, esrt.xen_since) == (
        "ESRT",
        True,
        True,
        "4.17",
    )
    mokvar = by_name("MOKvar")
    assert mokvar is not None and mokvar.needs_efi_memmap
    hob = by_name("HobList")
    assert hob is not None and hob.linux == linux.NOT_PARSED and not hob.xen_knows
