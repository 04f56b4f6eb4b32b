"""The fixed headers of configuration tables whose size rules (:mod:`efihandoff.uefi.tables`)
read them: one declaration each, from which the ``struct`` layout and the C ``sizeof`` come.

Sources are named at each structure: the UEFI, PI, TCG and devicetree specifications, edk2
MdePkg/MdeModulePkg headers, and Linux include/linux/efi.h for the tables Linux defines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from efihandoff.uefi.layout import BE32, S32, U8, U16, U32, U64, Layout, chars


@dataclass(frozen=True, slots=True)
class Rsdp:
    """ACPI 6.5 5.2.5.3 Root System Description Pointer (packed): the ACPI 1.0 part (20 bytes,
    to RsdtAddress), then Length and the rest (36 bytes from revision 2)."""

    signature: Annotated[bytes, chars(8)]
    checksum: Annotated[int, U8]
    oem_id: Annotated[bytes, chars(6)]
    revision: Annotated[int, U8]
    rsdt_address: Annotated[int, U32]
    length: Annotated[int, U32]
    xsdt_address: Annotated[int, U64]
    extended_checksum: Annotated[int, U8]
    reserved: Annotated[bytes, chars(3)]


@dataclass(frozen=True, slots=True)
class Rci2Header:
    """Linux drivers/firmware/efi/rci2-table.c struct rci2_table_global_hdr (packed)."""

    type: Annotated[int, U16]
    resvd0: Annotated[int, U16]
    hdr_len: Annotated[int, U16]
    rci2_sig: Annotated[bytes, chars(4)]
    resvd1: Annotated[int, U16]
    resvd2: Annotated[int, U32]
    resvd3: Annotated[int, U32]
    major_rev: Annotated[int, U8]
    minor_rev: Annotated[int, U8]
    num_of_structs: Annotated[int, U16]
    rci2_len: Annotated[int, U32]
    rci2_chksum: Annotated[int, U16]


@dataclass(frozen=True, slots=True)
class UvSystab:
    """Linux arch/x86/include/asm/uv/bios.h struct uv_systab, before its entries."""

    signature: Annotated[bytes, chars(4)]
    revision: Annotated[int, U32]
    function: Annotated[int, U64]
    size: Annotated[int, U32]
    unused: Annotated[int, U32]


@dataclass(frozen=True, slots=True)
class DescriptorArrayHeader:
    """EFI_MEMORY_ATTRIBUTES_TABLE (UEFI 2.10 4.6.4) and edk2
    EDKII_PI_SMM_COMMUNICATION_REGION_TABLE: a header before NumberOfEntries descriptors."""

    version: Annotated[int, U32]
    number_of_entries: Annotated[int, U32]
    descriptor_size: Annotated[int, U32]
    flags: Annotated[int, U32]  # Reserved in the SMM table


@dataclass(frozen=True, slots=True)
class RandomSeed:
    """Linux include/linux/efi.h struct linux_efi_random_seed: {u32 size; u8 bits[]}."""

    size: Annotated[int, U32]


@dataclass(frozen=True, slots=True)
class TpmEventLog:
    """Linux include/linux/efi.h struct linux_efi_tpm_eventlog (not packed: log[] starts at 9,
    sizeof is 12)."""

    size: Annotated[int, U32]
    final_events_preboot_size: Annotated[int, U32]
    version: Annotated[int, U8]


@dataclass(frozen=True, slots=True)
class FinalEventsHeader:
    """EFI_TCG2_FINAL_EVENTS_TABLE (TCG PC Client PFP): {u64 Version; u64 NumberOfEvents}."""

    version: Annotated[int, U64]
    number_of_events: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class PcrEvent2Head:
    """TCG_PCR_EVENT2 up to its digests: PCRIndex, EventType, TPML_DIGEST_VALUES.count."""

    pcr_index: Annotated[int, U32]
    event_type: Annotated[int, U32]
    digest_count: Annotated[int, U32]


@dataclass(frozen=True, slots=True)
class UnacceptedMemory:
    """Linux include/linux/efi.h struct efi_unaccepted_memory, before its bitmap."""

    version: Annotated[int, U32]
    unit_size: Annotated[int, U32]
    phys_base: Annotated[int, U64]
    size: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class RtPropertiesTable:
    """EFI_RT_PROPERTIES_TABLE (UEFI 2.10 4.6.2; Linux efi_rt_properties_table_t)."""

    version: Annotated[int, U16]
    length: Annotated[int, U16]
    runtime_services_supported: Annotated[int, U32]


@dataclass(frozen=True, slots=True)
class PropertiesTable:
    """EFI_PROPERTIES_TABLE (edk2 MdePkg/Include/Guid/PropertiesTable.h)."""

    version: Annotated[int, U32]
    length: Annotated[int, U32]
    memory_protection_attribute: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class OvmfDebugLogHeader:
    """OVMF's debug log header as Linux drivers/firmware/efi/ovmf-debug-log.c reads it first:
    two magics, then the header and log sizes."""

    magic1: Annotated[bytes, chars(8)]
    magic2: Annotated[bytes, chars(8)]
    hdr_size: Annotated[int, U64]
    log_size: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class BootMemmap:
    """Linux include/linux/efi.h struct efi_boot_memmap, before its buffer."""

    map_size: Annotated[int, U64]
    desc_size: Annotated[int, U64]
    desc_ver: Annotated[int, U32]
    map_key: Annotated[int, U64]
    buff_size: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class ConformanceProfilesHeader:
    """EFI_CONFORMANCE_PROFILES_TABLE (UEFI 2.10 4.6.5), before its GUIDs."""

    version: Annotated[int, U16]
    number_of_profiles: Annotated[int, U16]


@dataclass(frozen=True, slots=True)
class HobHeader:
    """EFI_HOB_GENERIC_HEADER (PI 1.8 vol 3 5.2)."""

    hob_type: Annotated[int, U16]
    hob_length: Annotated[int, U16]
    reserved: Annotated[int, U32]


@dataclass(frozen=True, slots=True)
class MemoryTypeInformation:
    """edk2 EFI_MEMORY_TYPE_INFORMATION (MdeModulePkg/Include/Guid/MemoryTypeInformation.h)."""

    type: Annotated[int, U32]
    number_of_pages: Annotated[int, U32]


@dataclass(frozen=True, slots=True)
class ImageExecutionInfoHead:
    """EFI_IMAGE_EXECUTION_INFO (UEFI 2.10 32.5.3.1) up to InfoSize."""

    action: Annotated[int, U32]
    info_size: Annotated[int, U32]


@dataclass(frozen=True, slots=True)
class MemreserveNode:
    """Linux include/linux/efi.h struct linux_efi_memreserve, before its entries
    ({phys_addr_t base; phys_addr_t size}, 16 bytes each)."""

    size: Annotated[int, S32]
    count: Annotated[int, S32]  # atomic_t
    next: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class MokVariableHead:
    """Linux drivers/firmware/efi/mokvar-table.c struct efi_mokvar_table_entry before data."""

    name: Annotated[bytes, chars(256)]
    data_size: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class FdtHeadStart:
    """The first two fields of struct fdt_header (Devicetree Specification v0.4 5.2),
    big-endian."""

    magic: Annotated[int, BE32]
    totalsize: Annotated[int, BE32]


RSDP = Layout(Rsdp, packed=True)
RCI2_HEADER = Layout(Rci2Header, packed=True)
UV_SYSTAB = Layout(UvSystab)
DESCRIPTOR_ARRAY_HEADER = Layout(DescriptorArrayHeader)
RANDOM_SEED = Layout(RandomSeed)
TPM_EVENT_LOG = Layout(TpmEventLog)
FINAL_EVENTS_HEADER = Layout(FinalEventsHeader)
PCR_EVENT2_HEAD = Layout(PcrEvent2Head)
UNACCEPTED_MEMORY = Layout(UnacceptedMemory)
RT_PROPERTIES_TABLE = Layout(RtPropertiesTable)
PROPERTIES_TABLE = Layout(PropertiesTable)
OVMF_DEBUG_LOG_HEADER = Layout(OvmfDebugLogHeader)
BOOT_MEMMAP = Layout(BootMemmap)
CONFORMANCE_PROFILES_HEADER = Layout(ConformanceProfilesHeader)
HOB_HEADER = Layout(HobHeader)
MEMORY_TYPE_INFORMATION = Layout(MemoryTypeInformation)
IMAGE_EXECUTION_INFO_HEAD = Layout(ImageExecutionInfoHead)
MEMRESERVE_NODE = Layout(MemreserveNode)
MOK_VARIABLE_HEAD = Layout(MokVariableHead)
FDT_HEAD_START = Layout(FdtHeadStart, endian=">")
