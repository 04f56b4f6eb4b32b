"""EFI memory types to E820 types, as each consumer maps them: Linux's x86 EFI stub and Xen.

One table per consumer; what differs by version is data in :mod:`efihandoff.rules.xen`
(``runtime_attr_reserved``) and a parameter here (``-mapbs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from efihandoff.e820 import E820Type
from efihandoff.uefi.memmap import MemoryAttribute, MemoryType

_T = MemoryType
_BS = frozenset(int(t) for t in (_T.EfiBootServicesCode, _T.EfiBootServicesData))
_LOADER = frozenset(int(t) for t in (_T.EfiLoaderCode, _T.EfiLoaderData))
_SP = int(MemoryAttribute.SP)
_RUNTIME = int(MemoryAttribute.RUNTIME)
_WB = int(MemoryAttribute.WB)

# Linux 6.x drivers/firmware/efi/libstub/x86-stub.c setup_e820: the E820 type of each EFI type;
# a type not listed is left out of the table ("default: continue").
LINUX_STUB_E820: Mapping[int, E820Type] = MappingProxyType(
    {
        **{
            int(t): E820Type.RESERVED
            for t in (
                _T.EfiReservedMemoryType,
                _T.EfiRuntimeServicesCode,
                _T.EfiRuntimeServicesData,
                _T.EfiMemoryMappedIO,
                _T.EfiMemoryMappedIOPortSpace,
                _T.EfiPalCode,
            )
        },
        **{
            t: E820Type.RAM
            for t in _BS | _LOADER | {int(_T.EfiConventionalMemory)}
        },
        int(_T.EfiUnacceptedMemoryType): E820Type.RAM,
        int(_T.EfiUnusableMemory): E820Type.UNUSABLE,
        int(_T.EfiACPIReclaimMemory): E820Type.ACPI,
        int(_T.EfiACPIMemoryNVS): E820Type.NVS,
        int(_T.EfiPersistentMemory): E820Type.PMEM,
    }
)


def linux_stub_sources(e820: E820Type) -> tuple[MemoryType, ...]:
    """The EFI types setup_e820 turns into ``e820`` (LINUX_STUB_E820 read backwards), in type
    order. Unaccepted memory is left out: it is RAM only with CONFIG_UNACCEPTED_MEMORY, which a
    reader of the E820 table cannot tell."""
    return tuple(
        _T(t)
        for t in sorted(LINUX_STUB_E820)
        if LINUX_STUB_E820[t] is e820 and t != int(_T.EfiUnacceptedMemoryType)
    )


def linux_stub_e820_type(memory_type: int, attribute: int) -> E820Type | None:
    """setup_e820: the E820 type of one descriptor, None when the stub leaves it out; RAM with
    EFI_MEMORY_SP is soft reserved (CONFIG_EFI_SOFT_RESERVE, the default)."""
    e = LINUX_STUB_E820.get(memory_type)
    if e is E820Type.RAM and attribute & _SP:
        return E820Type.SOFT_RESERVED
    return e


# Xen 4.16+ xen/arch/x86/efi/efi-boot.h efi_arch_process_memory_map: the types that become
# E820_RAM (given WB, and no RUNTIME once rules.xen.runtime_attr_reserved); boot-services
# types fall through to the Conventional case unless -mapbs.
XEN_RAM_TYPES = _BS | _LOADER | {int(_T.EfiConventionalMemory)}
XEN_OTHER_E820: Mapping[int, int] = MappingProxyType(
    {
        int(_T.EfiUnusableMemory): int(E820Type.UNUSABLE),
        int(_T.EfiACPIReclaimMemory): int(E820Type.ACPI),
        int(_T.EfiACPIMemoryNVS): int(E820Type.NVS),
    }
)  # every other type: E820_RESERVED
_RAM, _RESERVED, _UNUSABLE = int(E820Type.RAM), int(E820Type.RESERVED), int(E820Type.UNUSABLE)


def xen_e820_type(memory_type: int, attribute: int, mapbs: bool, runtime_reserved: bool) -> int:
    """efi_arch_process_memory_map: the E820 type (as an int) of one descriptor."""
    if memory_type in XEN_RAM_TYPES and not (mapbs and memory_type in _BS):
        if attribute & _RUNTIME and runtime_reserved:
            return _RESERVED
        return _RAM if attribute & _WB else _UNUSABLE
    return XEN_OTHER_E820.get(memory_type, _RESERVED)


def xen_sources(e820: E820Type) -> tuple[MemoryType, ...]:
    """The EFI types efi_arch_process_memory_map can turn into ``e820`` on some Xen, attribute
    and ``-mapbs`` setting (xen_e820_type read backwards), in type order."""
    attrs = (0, _WB, _RUNTIME, _WB | _RUNTIME)
    return tuple(
        t
        for t in MemoryType
        if any(
            xen_e820_type(int(t), a, mapbs, rr) == int(e820)
            for a in attrs
            for mapbs in (False, True)
            for rr in (False, True)
        )
    )
