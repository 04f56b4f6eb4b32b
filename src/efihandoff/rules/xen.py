"""Xen's rules, by version: which configuration tables it records.

Sources (xen-project/xen, at the release tags): xen/common/efi/boot.c ``efi_tables`` (4.16.x;
the ESRT since 4.17.0, dc7da0874b).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class XenTable:
    """Whether Xen's ``efi_tables()`` records a GUID (``knows``), and since which version
    (``since``; None: every version this project models)."""

    knows: bool = False
    since: str | None = None


NOT_KNOWN = XenTable()

# By the table's short name in efihandoff.uefi.tables: boot.c efi_tables() matches these GUIDs.
XEN_TABLES: Mapping[str, XenTable] = MappingProxyType(
    {
        "ACPI 2.0": XenTable(True),
        "ACPI": XenTable(True),
        "SMBIOS": XenTable(True),
        "SMBIOS 3.0": XenTable(True),
        "ESRT": XenTable(True, "4.17"),
        "MPS": XenTable(True),
    }
)


def xen_table(name: str) -> XenTable:
    """What Xen does with the table of our short ``name`` (nothing when it is not listed)."""
    return XEN_TABLES.get(name, NOT_KNOWN)
