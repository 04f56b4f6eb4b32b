"""Known EFI configuration tables: what each GUID is and how long it is.

A configuration table is only a ``<GUID, address>`` pair; its byte length is type-specific. Each
:class:`TableSpec` carries a size rule (:mod:`efihandoff.uefi.sizerules`) that reads only the
bytes it needs through a :data:`Reader` and returns a :class:`SizeResult` (a size, or ``None``
with the reason). :func:`table_size` never returns more than the bytes the table's memory
descriptor holds (``limit``): a larger claim is kept in ``SizeResult.claimed`` and the reason
says by how much it exceeds the descriptor. What Linux and Xen do with each table is in
``efihandoff.rules.tables``.

Sources: Linux include/linux/efi.h (GUIDs), drivers/firmware/efi/efi.c (``common_tables[]``),
arch/x86/platform/efi/efi.c (``arch_tables``); edk2 MdePkg and MdeModulePkg headers; the UEFI,
ACPI, SMBIOS, devicetree and TCG specifications.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from efihandoff.uefi import sizerules as sr
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.sizerules import BYTES_NOT_AVAILABLE, Reader, SizeResult, SizeRule

__all__ = [
    "BYTES_NOT_AVAILABLE",
    "REGISTRY",
    "Reader",
    "SizeResult",
    "SizeRule",
    "TableSpec",
    "by_name",
    "known",
    "table_size",
]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One configuration-table GUID as its specification defines it: our short ``name``, the
    ``macro`` that names the GUID, and the size rule. What Linux and Xen do with it is in
    ``efihandoff.rules.tables``."""

    guid: Guid
    name: str
    macro: str
    size_rule: SizeRule | None
    description: str


# --------------------------------------------------------------------------------------------
# the registry


def _t(
    guid: str, name: str, macro: str, description: str, *, rule: SizeRule | None = None
) -> TableSpec:
    return TableSpec(Guid.parse(guid), name, macro, rule, description)


_TABLES: tuple[TableSpec, ...] = (
    # In Linux's order: common_tables[] (drivers/firmware/efi/efi.c), then x86 arch_tables
    # (rules.linux says what Linux does with each; rules.xen what Xen does).
    _t("8868e871-e4f1-11d3-bc22-0080c73c8881", "ACPI 2.0", "ACPI_20_TABLE_GUID",
       "ACPI 2.0+ RSDP.", rule=sr.rsdp_rule),
    _t("eb9d2d30-2d88-11d3-9a16-0090273fc14d", "ACPI", "ACPI_TABLE_GUID",
       "ACPI 1.0 RSDP.", rule=sr.rsdp_v1_rule),
    _t("eb9d2d31-2d88-11d3-9a16-0090273fc14d", "SMBIOS", "SMBIOS_TABLE_GUID",
       "SMBIOS 2.x (32-bit) entry point.", rule=sr.smbios_rule),
    _t("f2fd1544-9794-4a2c-992e-e5bbcf20e394", "SMBIOS 3.0", "SMBIOS3_TABLE_GUID",
       "SMBIOS 3.x (64-bit) entry point.", rule=sr.smbios3_rule),
    _t("b122a263-3661-4f68-9929-78f8b0d62180", "ESRT", "EFI_SYSTEM_RESOURCE_TABLE_GUID",
       "EFI System Resource Table (fwupd's source of devices). efi_esrt_init needs "
       "CONFIG_EFI_ESRT; before Linux 6.3 it also returned early without EFI_MEMMAP, so a Xen "
       "PV dom0 never parsed it. Xen records and relocates it since 4.17.", rule=sr.esrt_rule),
    _t("dcfa911d-26eb-469f-a220-38b7dc461220", "MEMATTR", "EFI_MEMORY_ATTRIBUTES_TABLE_GUID",
       "Memory attributes of runtime regions; efi_memattr_init runs only with EFI_MEMMAP.",
       rule=sr.memattr_rule),
    _t("1ce1e5bc-7ceb-42f2-81e5-8aadf180f57b", "RNG", "LINUX_EFI_RANDOM_SEED_TABLE_GUID",
       "Random seed left by the Linux EFI stub or a boot loader.", rule=sr.rng_rule),
    _t("b7799cb0-eca2-4943-9667-1fae07b747fa", "TPMEventLog", "LINUX_EFI_TPM_EVENT_LOG_GUID",
       "TPM event log copied by the Linux EFI stub.", rule=sr.tpm_log_rule),
    _t("1e2ed096-30e2-4254-bd89-863bbef82325", "TPMFinalLog",
       "EFI_TCG2_FINAL_EVENTS_TABLE_GUID",
       "TCG2 final events (older Linux name LINUX_EFI_TPM_FINAL_LOG_GUID). Linux sizes it only "
       "when the TPMEventLog table is present with log format 2.", rule=sr.final_events_rule),
    _t("dd4a4648-2de7-4665-964d-21d9ef5fb446", "CCFinalLog", "EFI_CC_FINAL_EVENTS_TABLE_GUID",
       "Confidential-computing final events (same layout as TCG2's); recent kernels only, "
       "sharing efi.tpm_final_log.", rule=sr.final_events_rule),
    _t("888eb0c6-8ede-4ff5-a8f0-9aee5cb977c2", "MEMRESERVE", "LINUX_EFI_MEMRESERVE_TABLE_GUID",
       "Linux persistent reservations (linked list, mainly arm64 GICv3 LPI tables across kexec).",
       rule=sr.memreserve_rule),
    _t("5568e427-68fc-4f3d-ac74-ca555231cc68", "INITRD", "LINUX_EFI_INITRD_MEDIA_GUID",
       "initrd base and size passed by the Linux EFI stub.",
       rule=sr.fixed(16, "struct linux_efi_initrd {base; size}")),
    _t("eb66918a-7eef-402a-842e-931d21c38ae9", "RTPROP", "EFI_RT_PROPERTIES_TABLE_GUID",
       "Which runtime services remain supported after ExitBootServices.",
       rule=sr.rt_properties_rule),
    _t("95305139-b20f-4723-8425-627c888ff121", "OvmfDebugLog", "OVMF_MEMORY_LOG_TABLE_GUID",
       "OVMF firmware debug log buffer (edk2-stable202508 and later); Linux exposes it as "
       "/sys/firmware/efi/ovmf_debug_log (driver posted July 2025).", rule=sr.ovmf_log_rule),
    _t("2d9f28a2-a886-456a-97a8-f11ef24ff455", "RCI2", "DELLEMC_EFI_RCI2_TABLE_GUID",
       "Dell EMC Runtime Configuration Interface v2; recorded without a printed name.",
       rule=sr.rci2_rule),
    _t("c451ed2b-9694-45d3-baba-ed9f8988a389", "MOKvar", "LINUX_EFI_MOK_VARIABLE_TABLE_GUID",
       "Machine Owner Key variables passed by shim; efi_mokvar_table_init needs EFI_MEMMAP.",
       rule=sr.mokvar_rule),
    _t("adf956ad-e98c-484c-ae11-b51c7d336447", "CocoSecret", "LINUX_EFI_COCO_SECRET_AREA_GUID",
       "Confidential-computing secret area locator; the area itself is base_pa/size.",
       rule=sr.fixed(16, "struct linux_efi_coco_secret_area {u64 base_pa; u64 size}")),
    _t("d5d1de3c-105c-44f9-9ea9-bcef98120031", "Unaccepted", "LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID",
       "Bitmap of memory not yet accepted by a TDX/SNP guest (added to Linux in 2023; the "
       "release, 6.5, is not verified here).",
       rule=sr.unaccepted_rule),
    _t("e03fc20a-85dc-406e-b90e-4ab502371d95", "screen_info", "LINUX_EFI_SCREEN_INFO_TABLE_GUID",
       "struct screen_info handed from the generic EFI stub to the kernel; recorded unnamed.",
       rule=sr.fixed(64, "sizeof(struct screen_info), packed, include/uapi/linux/screen_info.h")),
    _t("3b13a7d4-633e-11dd-93ec-da2556d89593", "UVsystab", "UV_SYSTEM_TABLE_GUID",
       "SGI/HPE UV BIOS system table (x86 arch_tables).", rule=sr.uv_rule),
    _t("880aaca3-4adc-4a04-9079-b747340825e5", "PROP", "EFI_PROPERTIES_TABLE_GUID",
       "UEFI 2.5 properties table, superseded by MEMATTR. x86 arch_tables printed PROP= until "
       "the 'x86/efi: Drop support for the EFI_PROPERTIES_TABLE' patch (posted Nov 2024).",
       rule=sr.properties_rule),
    _t("61a4d49e-6f68-4f1b-b922-a86eed0b07a2", "UGA", "UGA_IO_PROTOCOL_GUID",
       "UGA I/O protocol pointer some (Apple) firmware installs as a table; x86 arch_tables "
       "printed UGA= in the kernels of the 6.x range; the newest mainline list has only "
       "UVsystab. Only its address is recorded."),
    # Known GUIDs that Linux's config-table parser does not record.
    _t("eb9d2d2f-2d88-11d3-9a16-0090273fc14d", "MPS", "MPS_TABLE_GUID",
       "MultiProcessor Specification floating pointer; Xen records it, current Linux does not."),
    _t("b1b621d5-f19c-41a5-830b-d9152c69aae0", "DeviceTree", "DEVICE_TREE_GUID",
       "Flattened devicetree; read by the Linux EFI stub on Arm/RISC-V, not by "
       "efi_config_parse_tables.", rule=sr.fdt_rule),
    _t("800f683f-d08b-423a-a293-965c3c6fe2b4", "BootMemmap", "LINUX_EFI_BOOT_MEMMAP_GUID",
       "Memory map the Linux EFI stub installs for itself.", rule=sr.boot_memmap_rule),
    _t("067b1f5f-cf26-44c5-8554-93d777912d42", "CCBlob", "EFI_CC_BLOB_GUID",
       "AMD SEV-SNP secrets/CPUID page locator from OVMF; read by the x86 boot code, not by "
       "efi_config_parse_tables.",
       rule=sr.fixed(40, "packed struct cc_blob_sev_info, arch/x86/include/asm/sev.h")),
    # edk2 / UEFI tables a real OVMF (or other edk2 firmware) installs.
    _t("05ad34ba-6f02-4214-952e-4da0398e2bb9", "DxeServices", "EFI_DXE_SERVICES_TABLE_GUID",
       "PI DXE services table (edk2 DxeMain).", rule=sr.dxe_services_rule),
    _t("7739f24c-93d7-11d4-9a3a-0090273fc14d", "HobList", "EFI_HOB_LIST_GUID",
       "PI hand-off block list (edk2 DxeMain).", rule=sr.hob_list_rule),
    _t("4c19049f-4137-4dd3-9c10-8b97a83ffdfa", "MemoryTypeInfo",
       "EFI_MEMORY_TYPE_INFORMATION_GUID",
       "edk2 per-type page budget for stable memory maps across boots.",
       rule=sr.memory_type_info_rule),
    _t("49152e77-1ada-4764-b7a2-7afefed95e8b", "DebugImageInfo",
       "EFI_DEBUG_IMAGE_INFO_TABLE_GUID",
       "Debugger support: header {UpdateStatus; TableSize; pointer}; the image array is "
       "allocated separately.",
       rule=sr.fixed(16, "EFI_DEBUG_IMAGE_INFO_TABLE_HEADER; the entry array lives elsewhere")),
    _t("d719b2cb-3d3a-4596-a3bc-dad00e67656f", "ImageExecInfo",
       "EFI_IMAGE_SECURITY_DATABASE_GUID",
       "Image execution information table (secure boot verdicts of loaded images).",
       rule=sr.image_exec_info_rule),
    _t("4e28ca50-d582-44ac-a11f-e3d56526db34", "SmmCommRegion",
       "EDKII_PI_SMM_COMMUNICATION_REGION_TABLE_GUID",
       "Memory regions usable as SMM communication buffers.", rule=sr.smm_comm_rule),
    _t("36122546-f7e7-4c8f-bd9b-eb8525b50c0b", "ConformanceProfiles",
       "EFI_CONFORMANCE_PROFILES_TABLE_GUID",
       "UEFI 2.10 conformance profile GUIDs.", rule=sr.conformance_rule),
    _t("ee4e5898-3914-4259-9d6e-dc7bd79403cf", "LzmaDecompress", "LZMA_CUSTOM_DECOMPRESS_GUID",
       "edk2 LZMA GUIDed-section extraction data seen in firmware config-table listings; its "
       "layout is private to edk2, so no size rule."),
    _t("dba6a7e3-bb57-4be7-8af8-d578db7e5687", "TscFrequency", "EFI_TSC_FREQUENCY_GUID",
       "TSC frequency published by some edk2 platforms; layout not verified, so no size rule."),
    _t("996ec11c-5397-4e73-b58f-827e52906def", "VectorHandoff", "EFI_VECTOR_HANDOF_TABLE_GUID",
       "PI vector hand-off information; layout not verified, so no size rule."),
)


def _build() -> Mapping[Guid, TableSpec]:
    registry: dict[Guid, TableSpec] = {}
    for table in _TABLES:
        if table.guid in registry:
            raise AssertionError(f"duplicate GUID {table.guid}")
        registry[table.guid] = table
    return MappingProxyType(registry)


REGISTRY: Mapping[Guid, TableSpec] = _build()
_BY_NAME: Mapping[str, TableSpec] = MappingProxyType({t.name: t for t in _TABLES})


def known(guid: Guid) -> TableSpec | None:
    """The registry entry for ``guid``, or None."""
    return REGISTRY.get(guid)


def by_name(name: str) -> TableSpec | None:
    """The table with our short ``name``."""
    return _BY_NAME.get(name)


def table_size(guid: Guid, read: Reader, addr: int, limit: int | None = None) -> SizeResult:
    """Byte length of the table ``guid`` at ``addr``; ``limit`` is the number of bytes from
    ``addr`` to the end of its memory descriptor, when known. Never raises on bad bytes."""
    table = REGISTRY.get(guid)
    if table is None:
        return SizeResult(None, "unknown GUID: no size rule")
    if table.size_rule is None:
        return SizeResult(None, f"no size rule for {table.name}")
    if limit is not None and limit < 0:
        limit = 0
    try:
        result = table.size_rule(read, addr, limit)
    except (struct.error, ValueError, OverflowError, IndexError) as exc:  # defence in depth
        return SizeResult(None, f"malformed {table.name}: {exc}")
    if result.size is not None and limit is not None and result.size > limit:
        over = result.size - limit
        return SizeResult(
            limit,
            f"{result.reason}; exceeds its memory descriptor by {over} bytes (only the {limit} "
            "it holds are counted)",
            claimed=result.size,
        )
    return result
