"""Linux's rules, by kernel version: which memory types its checks accept, the checks of
``efi_esrt_init``, the descriptor lookups, and what it does with each configuration table.

Sources (torvalds/linux): drivers/firmware/efi/esrt.c ``efi_esrt_init`` (6.1; 6.3 with
01de145dc7fb "efi: Actually enable the ESRT under Xen"); drivers/firmware/efi/efi.c
``efi_mem_desc_lookup`` (6.1) and ``__efi_mem_desc_lookup`` (6.3, ab03e91e60ce),
``common_tables[]``; arch/x86/platform/efi/efi.c ``arch_tables``; drivers/xen/efi.c
``xen_efi_config_table_is_usable`` (6.3, c0fecaa44dc3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from efihandoff.rules.version import Version
from efihandoff.uefi.esrt import (
    ESRT_ENTRY_SIZE,
    ESRT_FIRMWARE_RESOURCE_VERSION,
    ESRT_HEADER_SIZE,
    esrt_size,
)
from efihandoff.uefi.memmap import U64_MAX, MemoryAttribute, MemoryDescriptor, MemoryMap, MemoryType

# The kernel versions whose behaviour differs (the model's two Linux lines).
LINUX_6_1: Version = (6, 1)
LINUX_6_3: Version = (6, 3)

# esrt.c efi_esrt_init: the types accepted without EFI_MEMORY_RUNTIME; 6.3 01de145dc7fb added
# EfiACPIReclaimMemory and EfiACPIMemoryNVS (what Xen copies the ESRT into).
ESRT_TYPES_61 = frozenset({MemoryType.EfiBootServicesData, MemoryType.EfiRuntimeServicesData})
ESRT_TYPES_63 = ESRT_TYPES_61 | {MemoryType.EfiACPIReclaimMemory, MemoryType.EfiACPIMemoryNVS}
LINUX_ACCEPTED_TYPES = ESRT_TYPES_63  # the newest kernel's set (the findings judge by it)

# drivers/xen/efi.c xen_efi_config_table_is_usable (6.3): the types a dom0 accepts.
XEN_USABLE_TYPES = frozenset(
    {
        MemoryType.EfiRuntimeServicesCode,
        MemoryType.EfiRuntimeServicesData,
        MemoryType.EfiACPIReclaimMemory,
        MemoryType.EfiACPIMemoryNVS,
        MemoryType.EfiReservedMemoryType,
    }
)

# esrt.c efi_esrt_init: "I'm making up 128 as the max number".
LINUX_MAX_ENTRIES = 128


def esrt_types(linux: Version) -> frozenset[MemoryType]:
    """The types efi_esrt_init of kernel ``linux`` accepts without EFI_MEMORY_RUNTIME."""
    return ESRT_TYPES_63 if linux >= LINUX_6_3 else ESRT_TYPES_61


class EsrtCheck(StrEnum):
    """The check of esrt.c efi_esrt_init that stopped the ESRT (the kernel-log reader's
    ``esrt:`` message kinds where the kernel prints one)."""

    NO_EFI_MEMMAP = "no-efi-memmap"  # 6.1/6.2 in a PV dom0: returns before any message
    NOT_IN_MEMMAP = "not-in-memmap"
    DESCRIPTOR_INVALID = "descriptor-invalid"
    HEADER_DOES_NOT_FIT = "header-does-not-fit"
    BYTES_UNKNOWN = "bytes-unknown"  # the evidence lacks the header: no check could run
    UNSUPPORTED_VERSION = "unsupported-version"
    ONLY_HEADER = "only-header"
    COUNT_TOO_LARGE = "count-too-large"
    DOES_NOT_FIT = "does-not-fit"

    @property
    def decided_without_bytes(self) -> bool:
        """Checks that run before the header is read: their outcome needs no ESRT bytes."""
        return self in (EsrtCheck.NO_EFI_MEMMAP, EsrtCheck.NOT_IN_MEMMAP)


# The checks of esrt.c efi_esrt_init, each once: the Linux model (paths.linux) refuses by them,
# the findings (rules.esrt) report by them. ``room`` is the bytes from the table's start to the
# end of its memory descriptor.


def esrt_type_accepted(memory_type: int, attribute: int, linux: Version = LINUX_6_3) -> bool:
    """"ESRT header is not in the memory map." unless this holds: RUNTIME, or an accepted type."""
    return bool(attribute & MemoryAttribute.RUNTIME) or memory_type in esrt_types(linux)


def esrt_header_fits(room: int) -> bool:
    """"ESRT header doesn't fit on single memory map entry." unless this holds."""
    return room >= ESRT_HEADER_SIZE


def esrt_version_supported(version: int) -> bool:
    """"Unsupported ESRT version" unless this holds."""
    return version == ESRT_FIRMWARE_RESOURCE_VERSION


def esrt_only_header(room: int, count: int) -> bool:
    """"ESRT memory map entry can only hold the header." when this holds."""
    return count > 0 and room - ESRT_HEADER_SIZE < ESRT_ENTRY_SIZE


def esrt_count_too_large(count: int) -> bool:
    """"fw_resource_count has very large value" when this holds."""
    return count > LINUX_MAX_ENTRIES


def esrt_fits(room: int, count: int) -> bool:
    """"ESRT does not fit on single memory map entry" unless this holds."""
    return room >= esrt_size(count)


# Descriptor lookups: which descriptor the kernel finds for an address.


def lookup_pre63(memmap: MemoryMap, addr: int) -> MemoryDescriptor | None:
    """Linux 6.1/6.2 drivers/firmware/efi/efi.c ``efi_mem_desc_lookup``: the first match in map
    order, bogus entries not skipped, end computed in u64 (so a wrapping entry's end wraps).
    6.3+ is :meth:`MemoryMap.lookup`. O(log n)."""
    if not 0 <= addr <= U64_MAX:
        return None
    i = memmap.first_match(addr)
    return None if i is None else memmap.descriptors[i]


def skips_bogus(linux: Version) -> bool:
    """Whether the kernel's lookup skips bogus descriptors (6.3 ab03e91e60ce)."""
    return linux >= LINUX_6_3


@dataclass(frozen=True, slots=True)
class LinuxTable:
    """What Linux (6.1 and later, the range this project models) does with one configuration
    table GUID: ``label`` is printed in its ``efi:`` line; ``parses`` when ``common_tables[]``
    or an architecture's ``arch_tables`` lists it; ``config`` the option its parser needs;
    ``needs_efi_memmap`` when that parser runs only with EFI_MEMMAP (never in a Xen PV dom0)."""

    label: str | None = None
    parses: bool = False
    config: str | None = None
    needs_efi_memmap: bool = False


def _named(label: str, config: str | None = None, *, memmap: bool = False) -> LinuxTable:
    return LinuxTable(label, True, config, memmap)


NOT_PARSED = LinuxTable()

# By the table's short name in efihandoff.uefi.tables. drivers/firmware/efi/efi.c
# common_tables[] in its order, then x86 arch_tables; RCI2 and screen_info are recorded without
# a printed name.
LINUX_TABLES: Mapping[str, LinuxTable] = MappingProxyType(
    {
        "ACPI 2.0": _named("ACPI 2.0"),
        "ACPI": _named("ACPI"),
        "SMBIOS": _named("SMBIOS"),
        "SMBIOS 3.0": _named("SMBIOS 3.0"),
        "ESRT": _named("ESRT"),
        "MEMATTR": _named("MEMATTR", memmap=True),  # efi_memattr_init
        "RNG": _named("RNG"),
        "TPMEventLog": _named("TPMEventLog"),
        "TPMFinalLog": _named("TPMFinalLog"),
        "CCFinalLog": _named("CCFinalLog"),
        "MEMRESERVE": _named("MEMRESERVE"),
        "INITRD": _named("INITRD"),
        "RTPROP": _named("RTPROP"),
        "OvmfDebugLog": _named("OvmfDebugLog", "CONFIG_OVMF_DEBUG_LOG"),
        "RCI2": LinuxTable(None, True, "CONFIG_EFI_RCI2_TABLE"),
        "MOKvar": _named("MOKvar", "CONFIG_LOAD_UEFI_KEYS", memmap=True),  # efi_mokvar_table_init
        "CocoSecret": _named("CocoSecret", "CONFIG_EFI_COCO_SECRET"),
        "Unaccepted": _named("Unaccepted", "CONFIG_UNACCEPTED_MEMORY"),
        "screen_info": LinuxTable(None, True, "CONFIG_EFI_GENERIC_STUB"),
        "UVsystab": _named("UVsystab", "CONFIG_X86_UV"),
        "PROP": _named("PROP", "CONFIG_X86"),
        "UGA": _named("UGA", "CONFIG_X86"),
    }
)

# Labels an older Linux printed in its config-table line for a GUID today's Linux does not list
# (so its LinuxTable has no label): x86 arch/x86/platform/efi/efi.c efi_init (to 3.13), then
# drivers/firmware/efi/efi.c common_tables[], printed " MPS=0x%lx " until the cleanup that
# dropped HCDP and MPS from common_tables[] (5.x; the release is not verified here).
FORMER_LINUX_LABELS: Mapping[str, str] = MappingProxyType({"MPS": "MPS"})


def linux_table(name: str) -> LinuxTable:
    """What Linux does with the table of our short ``name`` (nothing when it is not listed)."""
    return LINUX_TABLES.get(name, NOT_PARSED)


def xen_esrt(linux: Version) -> bool:
    """Linux 6.3 (01de145dc7fb, c0fecaa44dc3, aca1d27ac38a): the ESRT under EFI_PARAVIRT, the
    config-table allowlist, and memory lookup by hypercall."""
    return linux >= LINUX_6_3
