"""Xen's rules, by version: which configuration tables it records, which ESRT fixes a
version carries, and how it turns the EFI map into E820 (see also :mod:`efihandoff.rules.e820`).

Sources (xen-project/xen, at the release tags): xen/common/efi/boot.c ``efi_tables``,
``efi_relocate_esrt``, ``get_esrt_size``; xen/arch/x86/efi/efi-boot.h
``efi_arch_process_memory_map``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from efihandoff.rules.version import Version


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


# Xen features by version (xen-project/xen release tags; facts 5.1). A version is a tuple,
# (4, 17, 1); the checks compare exactly as written here, patch levels included.

# dc7da0874b (4.17.0): efi_tables() records the ESRT and efi_start relocates it.
ESRT_KNOWN_FROM: Version = (4, 17, 0)
# 8d7acf3f7d (4.18.0), backported as 1dcc9b6dfe (4.17.1): efi_multiboot2 relocates it too.
ESRT_RELOCATED_FROM_MULTIBOOT2: Version = (4, 17, 1)
# 3ea44aa78c (2026): get_esrt_size counts the header; every release from 4.22.0, and these
# stable branches from the patch level given.
ESRT_SIZE_FIXED_FROM: Version = (4, 22)
ESRT_SIZE_FIXED_BRANCHES: Mapping[Version, int] = MappingProxyType(
    {(4, 19): 5, (4, 20): 3, (4, 21): 1}
)
# f324300c83 (4.17.0), 54f8ed80c8 (4.16.3): efi_arch_process_memory_map makes RAM-type
# descriptors with EFI_MEMORY_RUNTIME E820_RESERVED instead of RAM.
RUNTIME_RESERVED_FROM: Version = (4, 17, 0)
RUNTIME_RESERVED_BRANCHES: Mapping[Version, int] = MappingProxyType({(4, 16): 3})


def knows_esrt(xen: Version | None) -> bool:
    """Whether Xen ``xen`` records the ESRT (None: no Xen)."""
    return xen is not None and xen >= ESRT_KNOWN_FROM


def relocates_esrt_from_multiboot2(xen: Version) -> bool:
    """Whether efi_multiboot2 (GRUB's entry) relocates the ESRT, as efi_start always does."""
    return xen >= ESRT_RELOCATED_FROM_MULTIBOOT2


def _patch(v: Version) -> int:
    return v[2] if len(v) > 2 else 0


def esrt_size_fixed(xen: Version | None) -> bool:
    """Whether Xen ``xen`` copies the whole ESRT (header included) by its version alone."""
    v = xen or (0,)
    if v[:2] >= ESRT_SIZE_FIXED_FROM:
        return True
    return v[:2] in ESRT_SIZE_FIXED_BRANCHES and _patch(v) >= ESRT_SIZE_FIXED_BRANCHES[v[:2]]


def runtime_attr_reserved(xen: Version | None) -> bool:
    """Whether Xen ``xen`` makes RUNTIME-attributed RAM types E820_RESERVED."""
    v = xen or (0,)
    if v >= RUNTIME_RESERVED_FROM:
        return True
    return v[:2] in RUNTIME_RESERVED_BRANCHES and _patch(v) >= RUNTIME_RESERVED_BRANCHES[v[:2]]
