"""Tests for efihandoff.rules.xen: release boundaries by hand from the Xen commits named in
the module (facts file section 5.1)."""

from __future__ import annotations

import pytest

from efihandoff.rules import xen


@pytest.mark.parametrize(
    ("version", "fixed"),
    [
        ((4, 17, 1), False),
        ((4, 18, 9), False),
        ((4, 19, 4), False),
        ((4, 19, 5), True),
        ((4, 20, 2), False),
        ((4, 20, 3), True),
        ((4, 21, 0), False),
        ((4, 21, 1), True),
        ((4, 22, 0), True),
        ((5, 0, 0), True),
        (None, False),
    ],
)
def test_esrt_size_fixed(version: tuple[int, ...] | None, fixed: bool) -> None:
    assert xen.esrt_size_fixed(version) is fixed


@pytest.mark.parametrize(
    ("version", "reserved"),
    [
        ((4, 16, 2), False),
        ((4, 16, 3), True),  # 54f8ed80c8
        ((4, 17, 0), True),  # f324300c83
        ((4, 15, 9), False),
        (None, False),
    ],
)
def test_runtime_attr_reserved(version: tuple[int, ...] | None, reserved: bool) -> None:
    assert xen.runtime_attr_reserved(version) is reserved


def test_esrt_known_and_relocated() -> None:
    assert not xen.knows_esrt((4, 16, 5)) and xen.knows_esrt((4, 17, 0))
    assert not xen.knows_esrt(None)
    assert not xen.relocates_esrt_from_multiboot2((4, 17, 0))
    assert xen.relocates_esrt_from_multiboot2((4, 17, 1))


def test_tables_xen_records() -> None:
    # boot.c efi_tables(): ACPI 2.0, ACPI, MPS, SMBIOS, SMBIOS3; the ESRT from 4.17.
    assert set(xen.XEN_TABLES) == {"ACPI 2.0", "ACPI", "MPS", "SMBIOS", "SMBIOS 3.0", "ESRT"}
    assert xen.xen_table("ESRT").since == "4.17"
    assert xen.xen_table("RNG") == xen.NOT_KNOWN
