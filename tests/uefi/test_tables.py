"""Tests for the known configuration-table registry and its size rules.

Every byte blob here is composed field by field from the layout the rule's comment names (facts
file section 2, Linux structs, UEFI/ACPI/SMBIOS/TCG specs), never from the module's output.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.rules.tables import (
    REGISTRY,
    KnownTable,
    by_linux_label,
    by_name,
    known,
    linux_labels,
)
from efihandoff.uefi import tables
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.tables import BYTES_NOT_AVAILABLE, SizeResult, table_size

BASE = 0x7F00_0000


class Memory:
    """A sparse physical memory: ``{base: bytes}``; reads outside a region answer None."""

    def __init__(self, regions: dict[int, bytes]) -> None:
        self.regions = regions
        self.calls: list[tuple[int, int]] = []

    def __call__(self, addr: int, length: int) -> bytes | None:
        self.calls.append((addr, length))
        for base, data in self.regions.items():
            if base <= addr and addr + length <= base + len(data):
                return data[addr - base : addr - base + length]
        return None


def nothing(addr: int, length: int) -> bytes | None:
    return None


def size_of(name: str, blob: bytes, limit: int | None = None, *, base: int = BASE) -> SizeResult:
    table = by_name(name)
    assert table is not None, name
    return table_size(table.guid, Memory({base: blob}), base, limit)


# --------------------------------------------------------------------------------------------
# registry

# GUIDs typed by hand from efi-xen-facts.md section 2 and the headers named in the module.
EXPECTED = {
    # name: (guid, macro, linux label)
    "ACPI 2.0": ("8868e871-e4f1-11d3-bc22-0080c73c8881", "ACPI_20_TABLE_GUID", "ACPI 2.0"),
    "ACPI": ("eb9d2d30-2d88-11d3-9a16-0090273fc14d", "ACPI_TABLE_GUID", "ACPI"),
    "SMBIOS": ("eb9d2d31-2d88-11d3-9a16-0090273fc14d", "SMBIOS_TABLE_GUID", "SMBIOS"),
    "SMBIOS 3.0": ("f2fd1544-9794-4a2c-992e-e5bbcf20e394", "SMBIOS3_TABLE_GUID", "SMBIOS 3.0"),
    "ESRT": ("b122a263-3661-4f68-9929-78f8b0d62180", "EFI_SYSTEM_RESOURCE_TABLE_GUID", "ESRT"),
    "MEMATTR": ("dcfa911d-26eb-469f-a220-38b7dc461220", "EFI_MEMORY_ATTRIBUTES_TABLE_GUID",
                "MEMATTR"),
    "RNG": ("1ce1e5bc-7ceb-42f2-81e5-8aadf180f57b", "LINUX_EFI_RANDOM_SEED_TABLE_GUID", "RNG"),
    "TPMEventLog": ("b7799cb0-eca2-4943-9667-1fae07b747fa", "LINUX_EFI_TPM_EVENT_LOG_GUID",
                    "TPMEventLog"),
    "TPMFinalLog": ("1e2ed096-30e2-4254-bd89-863bbef82325", "EFI_TCG2_FINAL_EVENTS_TABLE_GUID",
                    "TPMFinalLog"),
    "CCFinalLog": ("dd4a4648-2de7-4665-964d-21d9ef5fb446", "EFI_CC_FINAL_EVENTS_TABLE_GUID",
                   "CCFinalLog"),
    "MEMRESERVE": ("888eb0c6-8ede-4ff5-a8f0-9aee5cb977c2", "LINUX_EFI_MEMRESERVE_TABLE_GUID",
                   "MEMRESERVE"),
    "INITRD": ("5568e427-68fc-4f3d-ac74-ca555231cc68", "LINUX_EFI_INITRD_MEDIA_GUID", "INITRD"),
    "RTPROP": ("eb66918a-7eef-402a-842e-931d21c38ae9", "EFI_RT_PROPERTIES_TABLE_GUID", "RTPROP"),
    "MOKvar": ("c451ed2b-9694-45d3-baba-ed9f8988a389", "LINUX_EFI_MOK_VARIABLE_TABLE_GUID",
               "MOKvar"),
    "CocoSecret": ("adf956ad-e98c-484c-ae11-b51c7d336447", "LINUX_EFI_COCO_SECRET_AREA_GUID",
                   "CocoSecret"),
    "Unaccepted": ("d5d1de3c-105c-44f9-9ea9-bcef98120031", "LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID",
                   "Unaccepted"),
    "OvmfDebugLog": ("95305139-b20f-4723-8425-627c888ff121", "OVMF_MEMORY_LOG_TABLE_GUID",
                     "OvmfDebugLog"),
    "RCI2": ("2d9f28a2-a886-456a-97a8-f11ef24ff455", "DELLEMC_EFI_RCI2_TABLE_GUID", None),
    "screen_info": ("e03fc20a-85dc-406e-b90e-4ab502371d95", "LINUX_EFI_SCREEN_INFO_TABLE_GUID",
                    None),
    "UVsystab": ("3b13a7d4-633e-11dd-93ec-da2556d89593", "UV_SYSTEM_TABLE_GUID", "UVsystab"),
    "MPS": ("eb9d2d2f-2d88-11d3-9a16-0090273fc14d", "MPS_TABLE_GUID", None),
    "PROP": ("880aaca3-4adc-4a04-9079-b747340825e5", "EFI_PROPERTIES_TABLE_GUID", "PROP"),
    "DeviceTree": ("b1b621d5-f19c-41a5-830b-d9152c69aae0", "DEVICE_TREE_GUID", None),
    "BootMemmap": ("800f683f-d08b-423a-a293-965c3c6fe2b4", "LINUX_EFI_BOOT_MEMMAP_GUID", None),
    "DxeServices": ("05ad34ba-6f02-4214-952e-4da0398e2bb9", "EFI_DXE_SERVICES_TABLE_GUID", None),
    "HobList": ("7739f24c-93d7-11d4-9a3a-0090273fc14d", "EFI_HOB_LIST_GUID", None),
    "MemoryTypeInfo": ("4c19049f-4137-4dd3-9c10-8b97a83ffdfa", "EFI_MEMORY_TYPE_INFORMATION_GUID",
                       None),
    "DebugImageInfo": ("49152e77-1ada-4764-b7a2-7afefed95e8b", "EFI_DEBUG_IMAGE_INFO_TABLE_GUID",
                       None),
    "ImageExecInfo": ("d719b2cb-3d3a-4596-a3bc-dad00e67656f", "EFI_IMAGE_SECURITY_DATABASE_GUID",
                      None),
    "SmmCommRegion": ("4e28ca50-d582-44ac-a11f-e3d56526db34",
                      "EDKII_PI_SMM_COMMUNICATION_REGION_TABLE_GUID", None),
    "ConformanceProfiles": ("36122546-f7e7-4c8f-bd9b-eb8525b50c0b",
                            "EFI_CONFORMANCE_PROFILES_TABLE_GUID", None),
    "LzmaDecompress": ("ee4e5898-3914-4259-9d6e-dc7bd79403cf", "LZMA_CUSTOM_DECOMPRESS_GUID",
                       None),
    "CCBlob": ("067b1f5f-cf26-44c5-8554-93d777912d42", "EFI_CC_BLOB_GUID", None),
    "UGA": ("61a4d49e-6f68-4f1b-b922-a86eed0b07a2", "UGA_IO_PROTOCOL_GUID", "UGA"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_entry(name: str) -> None:
    guid_text, macro, label = EXPECTED[name]
    table = known(Guid.parse(guid_text))
    assert table is not None, f"{name} {guid_text} missing"
    assert str(table.guid) == guid_text
    assert table.name == name
    assert table.macro == macro
    assert table.linux_label == label
    assert table.description


def test_registry_has_no_duplicates() -> None:
    entries = list(REGISTRY.values())
    assert len(tables._TABLES) == len(REGISTRY)
    labels = [t.linux_label for t in entries if t.linux_label is not None]
    assert len(labels) == len(set(labels))
    names = [t.name for t in entries]
    assert len(names) == len(set(names))
    assert all(isinstance(t, KnownTable) and REGISTRY[t.guid] is t for t in entries)


def test_linux_labels_longest_first() -> None:
    labels = linux_labels()
    assert sorted(labels) == sorted(t.linux_label for t in REGISTRY.values() if t.linux_label)
    assert [len(x) for x in labels] == sorted((len(x) for x in labels), reverse=True)
    assert labels.index("SMBIOS 3.0") < labels.index("SMBIOS")
    assert labels.index("ACPI 2.0") < labels.index("ACPI")


@pytest.mark.parametrize("label", ["ACPI 2.0", "ACPI", "SMBIOS 3.0", "ESRT", "MEMATTR", "RNG",
                                   "TPMEventLog", "TPMFinalLog", "CCFinalLog", "MEMRESERVE",
                                   "INITRD", "RTPROP", "MOKvar", "CocoSecret", "Unaccepted",
                                   "OvmfDebugLog", "UVsystab"])
def test_by_linux_label(label: str) -> None:
    table = by_linux_label(label)
    assert table is not None and table.linux_label == label and table.linux_parses


def test_by_linux_label_unknown() -> None:
    assert by_linux_label("ESRT ") is None
    assert by_linux_label("esrt") is None
    assert by_linux_label("MPS") is None
    assert known(Guid.parse("00000000-0000-0000-0000-000000000001")) is None


def test_xen_knows_exactly_its_efi_tables() -> None:
    # Xen xen/common/efi/boot.c efi_tables(): ACPI 2.0, ACPI, MPS, SMBIOS, SMBIOS3; ESRT (4.17+).
    xen = {t.name for t in REGISTRY.values() if t.xen_knows}
    assert xen == {"ACPI 2.0", "ACPI", "MPS", "SMBIOS", "SMBIOS 3.0", "ESRT"}
    assert by_name("ESRT").xen_since == "4.17"
    assert by_name("ACPI 2.0").xen_since is None


def test_linux_flags() -> None:
    assert {t.name for t in REGISTRY.values() if t.needs_efi_memmap} == {"MEMATTR", "MOKvar"}
    for name in ("MPS", "DeviceTree", "BootMemmap", "DxeServices", "HobList", "LzmaDecompress"):
        assert not by_name(name).linux_parses, name
    for name in ("RCI2", "screen_info"):
        table = by_name(name)
        assert table.linux_parses and table.linux_label is None
    assert by_name("MOKvar").linux_config == "CONFIG_LOAD_UEFI_KEYS"
    assert by_name("CocoSecret").linux_config == "CONFIG_EFI_COCO_SECRET"
    assert by_name("Unaccepted").linux_config == "CONFIG_UNACCEPTED_MEMORY"
    assert by_name("RCI2").linux_config == "CONFIG_EFI_RCI2_TABLE"
    assert by_name("UVsystab").linux_config == "CONFIG_X86_UV"
    assert by_name("ESRT").linux_config is None


# --------------------------------------------------------------------------------------------
# generic behaviour of table_size


def test_unknown_guid_and_missing_rule() -> None:
    res = table_size(Guid.parse("12345678-1234-1234-1234-123456789abc"), nothing, BASE)
    assert res.size is None and "unknown GUID" in res.reason
    res = table_size(by_name("LzmaDecompress").guid, nothing, BASE)
    assert res.size is None and "no size rule" in res.reason


@pytest.mark.parametrize(
    "name", sorted(t.name for t in REGISTRY.values() if t.size_rule is not None)
)
def test_no_bytes(name: str) -> None:
    res = table_size(by_name(name).guid, nothing, BASE, 1 << 20)
    fixed = {"INITRD": 16, "CocoSecret": 16, "screen_info": 64, "DebugImageInfo": 16,
             "CCBlob": 40}
    if name in fixed:
        assert res.size == fixed[name]
    else:
        assert res.size is None
        assert res.reason.startswith(BYTES_NOT_AVAILABLE), res.reason


def test_short_read_is_not_available() -> None:
    def short(addr: int, length: int) -> bytes:
        return b"\x00" * (length - 1)

    res = table_size(by_name("ESRT").guid, short, BASE)
    assert res.size is None and res.reason.startswith(BYTES_NOT_AVAILABLE)


def test_address_near_top_of_memory() -> None:
    res = table_size(by_name("ESRT").guid, lambda a, n: b"\xff" * n, (1 << 64) - 8)
    assert res.size is None and res.reason.startswith(BYTES_NOT_AVAILABLE)


def test_size_beyond_descriptor_is_bounded_by_it_claim_kept() -> None:
    # Issue 15: a size rule never returns more than the bytes its descriptor holds.
    esrt = struct.pack("<IIQ", 2, 2, 1) + b"\x00" * 80  # 16 + 2 * 40 = 96 bytes
    res = size_of("ESRT", esrt, limit=80)
    assert (res.size, res.claimed) == (80, 96)
    assert "exceeds its memory descriptor by 16 bytes" in res.reason
    within = size_of("ESRT", esrt, limit=96)
    assert (within.size, within.claimed) == (96, None)
    assert size_of("ESRT", esrt).size == 96  # no descriptor known: the claim


def test_tpm_log_claiming_855_mb_is_bounded_by_its_descriptor() -> None:
    log = struct.pack("<IIB", 855_000_000, 0, 2) + b"\x00" * 2  # 11 bytes
    res = size_of("TPMEventLog", log, limit=4096)
    assert res.size == 4096 and res.claimed == 12 + 855_000_000


# --------------------------------------------------------------------------------------------
# ACPI, SMBIOS, devicetree


def rsdp(revision: int, length: int = 36) -> bytes:
    # ACPI 5.2.5.3: Signature[8] Checksum OEMID[6] Revision RsdtAddress | Length XsdtAddress
    # ExtendedChecksum Reserved[3]
    v1 = b"RSD PTR " + b"\x00" + b"BOCHS " + bytes([revision]) + struct.pack("<I", 0x7FFE1000)
    return v1 + struct.pack("<IQB3x", length, 0x7FFE2000, 0)


def test_rsdp_v2_length() -> None:
    assert size_of("ACPI 2.0", rsdp(2)).size == 36
    assert size_of("ACPI 2.0", rsdp(2, length=40) + b"\x00" * 4).size == 40


def test_rsdp_v1() -> None:
    res = size_of("ACPI 2.0", rsdp(0)[:20])  # only the 20-byte v1 structure exists
    assert res.size == 20
    assert size_of("ACPI", rsdp(2)).size == 20


@pytest.mark.parametrize("length", [20, 35, 4097, 0xFFFFFFFF])
def test_rsdp_absurd_length(length: int) -> None:
    res = size_of("ACPI 2.0", rsdp(2, length=length))
    assert res.size is None and str(length) in res.reason


def test_rsdp_bad_signature() -> None:
    blob = b"RSD PTX " + rsdp(2)[8:]
    for name in ("ACPI 2.0", "ACPI"):
        res = size_of(name, blob)
        assert res.size is None and "signature" in res.reason


def test_smbios_entry_points() -> None:
    # DSP0134 32-bit: "_SM_" checksum length major minor ...; 64-bit: "_SM3_" checksum length ...
    sm2 = b"_SM_" + b"\x00" + b"\x1f" + b"\x02\x08" + b"\x00" * 23
    sm3 = b"_SM3_" + b"\x00" + b"\x18" + b"\x03\x06\x00\x01\x00" + b"\x00" * 12
    assert size_of("SMBIOS", sm2).size == 0x1F
    assert size_of("SMBIOS 3.0", sm3).size == 0x18
    assert size_of("SMBIOS", b"_SM_\x00\x1e" + b"\x00" * 24).size == 0x1E


def test_smbios_bad() -> None:
    assert "anchor" in size_of("SMBIOS", b"_DMI_" + b"\x00" * 26).reason
    assert "anchor" in size_of("SMBIOS 3.0", b"_SM_\x00\x18\x00" + b"\x00" * 20).reason
    assert size_of("SMBIOS", b"_SM_\x00\x05" + b"\x00" * 24).size is None
    assert size_of("SMBIOS 3.0", b"_SM3_\x00\x10" + b"\x00" * 20).size is None


def test_device_tree() -> None:
    fdt = struct.pack(">II", 0xD00DFEED, 0x1234) + b"\x00" * 32
    assert size_of("DeviceTree", fdt).size == 0x1234
    little = struct.pack("<II", 0xD00DFEED, 0x1234) + b"\x00" * 32
    assert "magic" in size_of("DeviceTree", little).reason
    tiny = struct.pack(">II", 0xD00DFEED, 8)
    assert size_of("DeviceTree", tiny).size is None


# --------------------------------------------------------------------------------------------
# header + count x stride


def test_esrt() -> None:
    header = struct.pack("<IIQ", 3, 5, 1)  # count, count_max, version
    res = size_of("ESRT", header + b"\xaa" * 120)
    assert res.size == 16 + 3 * 40


def test_esrt_reads_only_its_header() -> None:
    mem = Memory({BASE: struct.pack("<IIQ", 0xFFFFFFFF, 0xFFFFFFFF, 1)})
    res = table_size(by_name("ESRT").guid, mem, BASE)
    assert res.size == 16 + 40 * 0xFFFFFFFF
    assert sum(n for _, n in mem.calls) <= 16


def test_esrt_odd_headers_keep_their_size() -> None:
    res = size_of("ESRT", struct.pack("<IIQ", 0, 0, 1))
    assert res.size == 16 and "0" in res.reason
    res = size_of("ESRT", struct.pack("<IIQ", 1, 1, 2) + b"\x00" * 40)
    assert res.size == 56 and "FwResourceVersion 2" in res.reason


def test_memattr() -> None:
    head = struct.pack("<IIII", 2, 5, 48, 1)
    assert size_of("MEMATTR", head + b"\x00" * 240).size == 16 + 5 * 48
    assert size_of("MEMATTR", struct.pack("<IIII", 1, 0, 40, 0)).size == 16


def test_memattr_refused() -> None:
    assert "version 3" in size_of("MEMATTR", struct.pack("<IIII", 3, 5, 48, 0)).reason
    assert size_of("MEMATTR", struct.pack("<IIII", 1, 5, 39, 0)).size is None
    big = size_of("MEMATTR", struct.pack("<IIII", 1, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    assert big.size == 16 + 0xFFFFFFFF * 0xFFFFFFFF and "2 MiB" in big.reason


def test_smm_comm_region() -> None:
    blob = struct.pack("<IIII", 1, 1, 48, 0) + b"\x00" * 48
    assert size_of("SmmCommRegion", blob).size == 64


def test_rng_seed() -> None:
    assert size_of("RNG", struct.pack("<I", 32) + b"\x55" * 32).size == 36
    res = size_of("RNG", struct.pack("<I", 5000))
    assert res.size == 5004 and "1024" in res.reason


def test_tpm_event_log() -> None:
    # struct linux_efi_tpm_eventlog {u32 size; u32 final_events_preboot_size; u8 version; log[]}
    # sizeof is 12 (4-byte alignment); Linux reserves sizeof + size.
    blob = struct.pack("<IIB", 100, 0, 2) + b"\x00" * 103
    assert size_of("TPMEventLog", blob).size == 112


def pcr_event2(pcr: int, event_type: int, algs: list[tuple[int, int]], data: bytes) -> bytes:
    # TCG PC Client PFP: TCG_PCR_EVENT2 {PCRIndex; EventType; TPML_DIGEST_VALUES; EventSize;
    # Event[]}; TPML_DIGEST_VALUES {count; {hashAlg u16; digest[]}...}
    out = struct.pack("<III", pcr, event_type, len(algs))
    for alg, size in algs:
        out += struct.pack("<H", alg) + b"\x11" * size
    return out + struct.pack("<I", len(data)) + data


def test_final_events_walk() -> None:
    e1 = pcr_event2(0, 1, [(0x0004, 20), (0x000B, 32)], b"hello")  # 12 + 22 + 34 + 4 + 5 = 77
    e2 = pcr_event2(7, 0x80000001, [(0x000B, 32)], b"")  # 12 + 34 + 4 = 50
    assert len(e1) == 77 and len(e2) == 50
    blob = struct.pack("<QQ", 1, 2) + e1 + e2 + b"\xff" * 64
    for name in ("TPMFinalLog", "CCFinalLog"):
        assert size_of(name, blob).size == 16 + 77 + 50
    assert size_of("TPMFinalLog", struct.pack("<QQ", 1, 0)).size == 16


def test_final_events_sha384_sha512_sm3() -> None:
    event = pcr_event2(1, 3, [(0x000C, 48), (0x000D, 64), (0x0012, 32)], b"x" * 7)
    blob = struct.pack("<QQ", 1, 1) + event
    assert size_of("TPMFinalLog", blob).size == 16 + 12 + 50 + 66 + 34 + 4 + 7


def test_final_events_unknown_algorithm() -> None:
    blob = struct.pack("<QQ", 1, 1) + pcr_event2(0, 1, [(0x0099, 20)], b"")
    res = size_of("TPMFinalLog", blob)
    assert res.size is None and "0x0099" in res.reason


def test_final_events_type0_size0_rejected_like_linux() -> None:
    blob = struct.pack("<QQ", 1, 1) + pcr_event2(0, 0, [(0x0004, 20)], b"")
    assert size_of("TPMFinalLog", blob).size is None


def test_final_events_huge_count_is_bounded() -> None:
    res = size_of("TPMFinalLog", struct.pack("<QQ", 1, 1 << 40))
    assert res.size is None and "events" in res.reason
    # A claimed count within the cap, but the memory holds one event: stops at the second.
    one = struct.pack("<QQ", 1, 60000) + pcr_event2(0, 1, [(0x0004, 20)], b"abc")
    res = size_of("TPMFinalLog", one)
    assert res.size is None and res.reason.startswith(BYTES_NOT_AVAILABLE)


def test_final_events_bounded_by_limit() -> None:
    events = b"".join(pcr_event2(0, 1, [(0x0004, 20)], b"") for _ in range(10))  # 12+22+4 = 38 each
    blob = struct.pack("<QQ", 1, 10) + events
    assert size_of("TPMFinalLog", blob, limit=396).size == 16 + 10 * 38
    res = size_of("TPMFinalLog", blob, limit=200)
    assert res.size is None and "descriptor" in res.reason


def test_unaccepted() -> None:
    head = struct.pack("<IIQQ", 1, 2 << 20, 0x100000000, 64)
    assert size_of("Unaccepted", head + b"\xff" * 64).size == 24 + 64
    res = size_of("Unaccepted", struct.pack("<IIQQ", 2, 2 << 20, 0, 64))
    assert res.size is None and "version 2" in res.reason


def test_rt_properties() -> None:
    assert size_of("RTPROP", struct.pack("<HHI", 1, 8, 0x3FFF)).size == 8
    assert size_of("RTPROP", struct.pack("<HHI", 2, 8, 0)).size is None
    assert size_of("RTPROP", struct.pack("<HHI", 1, 4, 0)).size is None


def test_properties_table() -> None:
    assert size_of("PROP", struct.pack("<IIQ", 0x10000, 16, 1)).size == 16
    assert size_of("PROP", struct.pack("<IIQ", 1, 16, 1)).size is None
    assert size_of("PROP", struct.pack("<IIQ", 0x10000, 8, 1)).size is None


def test_ovmf_debug_log() -> None:
    head = b"ovmfmdg1" + b"ovmfmdg2" + struct.pack("<QQQQQQ", 192, 0x10000, 0, 0, 10, 0)
    res = size_of("OvmfDebugLog", head + b"\x00" * 128)
    assert res.size == 192 + 0x10000
    assert "magic" in size_of("OvmfDebugLog", b"ovmfmdg2ovmfmdg1" + b"\x00" * 16).reason


def test_rci2() -> None:
    # packed rci2_table_global_hdr: type u16, resvd0 u16, hdr_len u16, "_RC_", resvd1 u16,
    # resvd2 u32, resvd3 u32, major u8, minor u8, num_of_structs u16, rci2_len u32, chksum u16
    head = struct.pack("<HHH4sHIIBBHIH", 1, 0, 30, b"_RC_", 0, 0, 0, 2, 0, 3, 0x200, 0)
    assert len(head) == 30
    assert size_of("RCI2", head).size == 0x200
    bad = struct.pack("<HHH4sHIIBBHIH", 1, 0, 30, b"_RX_", 0, 0, 0, 2, 0, 3, 0x200, 0)
    assert "signature" in size_of("RCI2", bad).reason
    zero = struct.pack("<HHH4sHIIBBHIH", 1, 0, 30, b"_RC_", 0, 0, 0, 2, 0, 3, 0, 0)
    assert size_of("RCI2", zero).size is None


def test_uv_systab() -> None:
    # struct uv_systab {char signature[4]; u32 revision; u64 function; u32 size; u32 entry[1];}
    assert size_of("UVsystab", b"UVST" + struct.pack("<IQII", 1, 0xFFF0, 0, 0)).size == 24
    assert size_of("UVsystab", b"UVST" + struct.pack("<IQII", 0x403, 0xFFF0, 0x80, 0)).size == 0x80
    assert size_of("UVsystab", b"UVST" + struct.pack("<IQII", 0x401, 0xFFF0, 8, 0)).size is None
    assert "signature" in size_of("UVsystab", b"UVSX" + b"\x00" * 20).reason


def test_boot_memmap() -> None:
    # struct efi_boot_memmap {ulong map_size, desc_size; u32 desc_ver; ulong map_key, buff_size}
    head = struct.pack("<QQI4xQQ", 4800, 48, 1, 0x1234, 4800)
    assert size_of("BootMemmap", head + b"\x00" * 4800).size == 40 + 4800


def test_conformance_profiles() -> None:
    blob = struct.pack("<HH", 1, 2) + b"\x01" * 32
    assert size_of("ConformanceProfiles", blob).size == 36
    assert size_of("ConformanceProfiles", struct.pack("<HH", 2, 2)).size is None


def test_dxe_services() -> None:
    # EFI_TABLE_HEADER {u64 Signature; u32 Revision; u32 HeaderSize; u32 CRC32; u32 Reserved}
    head = b"DXE_SERV" + struct.pack("<IIII", 0x10046, 0x98, 0, 0)
    assert size_of("DxeServices", head + b"\x00" * 128).size == 0x98
    assert "signature" in size_of("DxeServices", b"RUNTSERV" + head[8:]).reason


@pytest.mark.parametrize("name,size", [("INITRD", 16), ("CocoSecret", 16), ("screen_info", 64),
                                       ("DebugImageInfo", 16), ("CCBlob", 40)])
def test_fixed_sizes(name: str, size: int) -> None:
    assert table_size(by_name(name).guid, nothing, BASE).size == size


# --------------------------------------------------------------------------------------------
# walks


def test_hob_list() -> None:
    # EFI_HOB_GENERIC_HEADER {u16 HobType; u16 HobLength; u32 Reserved}
    phit = struct.pack("<HHI", 0x0001, 56, 0) + b"\x00" * 48
    alloc = struct.pack("<HHI", 0x0002, 48, 0) + b"\x00" * 40
    end = struct.pack("<HHI", 0xFFFF, 8, 0)
    assert size_of("HobList", phit + alloc + end + b"\xee" * 16).size == 56 + 48 + 8


def test_hob_list_bad() -> None:
    assert "PHIT" in size_of("HobList", struct.pack("<HHI", 0x0004, 8, 0) * 4).reason
    zero = struct.pack("<HHI", 0x0001, 56, 0) + b"\x00" * 48 + struct.pack("<HHI", 4, 0, 0)
    assert size_of("HobList", zero).size is None
    no_end = struct.pack("<HHI", 0x0001, 8, 0) * 100
    res = size_of("HobList", no_end, limit=64)
    assert res.size is None and "descriptor" in res.reason


def test_memory_type_information() -> None:
    # EFI_MEMORY_TYPE_INFORMATION {u32 Type; u32 NumberOfPages}, ended by {EfiMaxMemoryType, 0}
    entries = struct.pack("<II", 9, 0x80) + struct.pack("<II", 10, 0x100) + struct.pack("<II", 6, 8)
    assert size_of("MemoryTypeInfo", entries + struct.pack("<II", 16, 0)).size == 32
    assert size_of("MemoryTypeInfo", entries + struct.pack("<II", 15, 0)).size == 32  # older edk2
    unaccepted = struct.pack("<II", 15, 0x40)  # EfiUnacceptedMemoryType with pages: an entry
    assert size_of("MemoryTypeInfo", unaccepted + struct.pack("<II", 16, 0)).size == 16
    assert size_of("MemoryTypeInfo", struct.pack("<II", 4, 1) * 100).size is None


def test_image_execution_info() -> None:
    # EFI_IMAGE_EXECUTION_INFO_TABLE {UINTN NumberOfImages; {u32 Action; u32 InfoSize; ...}[]}
    img1 = struct.pack("<II", 1, 40) + b"\x00" * 32
    img2 = struct.pack("<II", 2, 60) + b"\x00" * 52
    assert size_of("ImageExecInfo", struct.pack("<Q", 2) + img1 + img2).size == 108
    assert size_of("ImageExecInfo", struct.pack("<QII", 1, 1, 4)).size is None
    assert size_of("ImageExecInfo", struct.pack("<Q", 1 << 40)).size is None


def memreserve(size: int, count: int, nxt: int) -> bytes:
    # struct linux_efi_memreserve {int size; atomic_t count; phys_addr_t next; {base, size}[]}
    return struct.pack("<iiQ", size, count, nxt) + b"\x00" * (16 * max(size, 0))


def test_memreserve_root_only() -> None:
    res = size_of("MEMRESERVE", memreserve(0, 0, 0))
    assert res.size == 16 and "1 node(s)" in res.reason


def test_memreserve_list() -> None:
    node = 0x8000_0000
    mem = Memory({BASE: memreserve(0, 0, node), node: memreserve(254, 3, 0)})
    res = table_size(by_name("MEMRESERVE").guid, mem, BASE)
    assert res.size == 16
    assert "2 node(s)" in res.reason and f"{16 + 16 + 254 * 16} bytes" in res.reason


def test_memreserve_self_loop_terminates() -> None:
    res = size_of("MEMRESERVE", memreserve(1, 1, BASE))
    assert res.size == 32 and "loops" in res.reason


def test_memreserve_two_node_loop_terminates() -> None:
    other = 0x9000_0000
    mem = Memory({BASE: memreserve(0, 0, other), other: memreserve(2, 0, BASE)})
    res = table_size(by_name("MEMRESERVE").guid, mem, BASE)
    assert res.size == 16 and "loops" in res.reason and "2 node(s)" in res.reason


def test_memreserve_long_chain_is_capped() -> None:
    regions = {
        BASE + 0x1000 * i: memreserve(0, 0, BASE + 0x1000 * (i + 1)) for i in range(2000)
    }
    res = table_size(by_name("MEMRESERVE").guid, Memory(regions), BASE)
    assert res.size == 16 and "stopped after" in res.reason


def test_memreserve_bad() -> None:
    assert size_of("MEMRESERVE", memreserve(-1, 0, 0)).size is None
    res = size_of("MEMRESERVE", memreserve(0, 0, 0x1234_0000))  # next node not in memory
    assert res.size == 16 and BYTES_NOT_AVAILABLE in res.reason


def mok_entry(name: bytes, data: bytes) -> bytes:
    # struct efi_mokvar_table_entry {char name[256]; u64 data_size; u8 data[]}
    return name.ljust(256, b"\x00") + struct.pack("<Q", len(data)) + data


def test_mokvar() -> None:
    blob = mok_entry(b"MokListRT", b"\x30" * 10) + mok_entry(b"SbatLevelRT", b"sbat,1\n")
    blob += mok_entry(b"", b"")
    expected = (264 + 10) + (264 + 7) + 264
    assert size_of("MOKvar", blob, limit=4096).size == expected
    assert size_of("MOKvar", blob, limit=expected).size == expected


def test_mokvar_needs_limit() -> None:
    blob = mok_entry(b"MokListRT", b"x") + mok_entry(b"", b"")
    res = size_of("MOKvar", blob)
    assert res.size is None and "descriptor" in res.reason


def test_mokvar_without_sentinel_bounded_by_limit() -> None:
    blob = mok_entry(b"A", b"1") * 20
    res = size_of("MOKvar", blob, limit=len(blob))
    assert res.size is None and "sentinel" in res.reason
    res = size_of("MOKvar", mok_entry(b"", b"junk"), limit=4096)
    assert res.size is None


# --------------------------------------------------------------------------------------------
# hostile bytes

RULED = sorted((t for t in REGISTRY.values() if t.size_rule is not None), key=lambda t: t.name)
PREFIXES = [
    b"",
    b"RSD PTR ",
    b"_SM_",
    b"_SM3_",
    b"\xd0\x0d\xfe\xed",
    b"ovmfmdg1ovmfmdg2",
    b"DXE_SERV",
    b"UVST",
    b"\x01\x00",
    b"\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00",
    b"\x00" * 6 + b"_RC_",
]


@settings(max_examples=400, deadline=None)
@given(
    table=st.sampled_from(RULED),
    prefix=st.sampled_from(PREFIXES),
    body=st.binary(max_size=600),
    delta=st.integers(min_value=-8, max_value=64),
    limit=st.one_of(st.none(), st.integers(min_value=-5, max_value=1 << 21)),
)
def test_hostile_bytes_never_raise(
    table: KnownTable, prefix: bytes, body: bytes, delta: int, limit: int | None
) -> None:
    blob = prefix + body
    res = table_size(table.guid, Memory({BASE: blob}), BASE + delta, limit)
    assert isinstance(res, SizeResult)
    assert res.size is None or (isinstance(res.size, int) and res.size >= 0)
    assert isinstance(res.reason, str) and res.reason


@settings(max_examples=200, deadline=None)
@given(
    table=st.sampled_from(RULED),
    pattern=st.binary(min_size=1, max_size=16),
    limit=st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 40)),
)
def test_memory_full_of_a_pattern_stays_bounded(
    table: KnownTable, pattern: bytes, limit: int | None
) -> None:
    # Every address answers: walks must end on their own caps, not on missing bytes.
    def everywhere(addr: int, length: int) -> bytes:
        reps = length // len(pattern) + 2
        start = addr % len(pattern)
        return (pattern * reps)[start : start + length]

    res = table_size(table.guid, everywhere, BASE, limit)
    assert res.size is None or res.size >= 0
