"""Known EFI configuration tables: what each GUID is and how long it is (who parses it is in
``efihandoff.rules.tables``).

A configuration table is only a ``<GUID, address>`` pair; its byte length is type-specific. Each
:class:`TableSpec` carries a size rule that reads only the bytes it needs through a
:data:`Reader` and returns a :class:`SizeResult` (a size, or ``None`` with the reason).

Size rules never raise on bad bytes and stay bounded whatever a count or length field claims.
Conventions, the same for every rule:

- a rule answers what the table claims for itself; :func:`table_size` never returns more than
  the bytes its memory descriptor holds (``limit``): a larger claim is kept in
  ``SizeResult.claimed`` and the reason says by how much it exceeds the descriptor;
- a reason starting with :data:`BYTES_NOT_AVAILABLE` means the reader had no bytes to answer;
- fixed-size tables need no bytes at all (a kernel log alone is enough to size them);
- checksums (RSDP, SMBIOS, RCI2) are not verified: they do not change the size.

Sources: Linux include/linux/efi.h (GUIDs and structs), drivers/firmware/efi/efi.c
(``common_tables[]``, ``efi_config_parse_tables``), arch/x86/platform/efi/efi.c (``arch_tables``),
the drivers named at each rule; Xen xen/common/efi/boot.c ``efi_tables()``; edk2 MdePkg and
MdeModulePkg headers; the UEFI, ACPI, SMBIOS, devicetree and TCG specifications.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from efihandoff.uefi.guid import Guid

Reader = Callable[[int, int], bytes | None]
"""``read(phys_addr, length)``: exactly ``length`` bytes, or None when they are not known."""

BYTES_NOT_AVAILABLE = "bytes not available"
U64_MAX = (1 << 64) - 1

# Bounds on walks (our choice; the firmware's own tables are far smaller).
MAX_WALK_BYTES = 1 << 20  # 1 MiB for tables sized by walking records
MAX_WALK_RECORDS = 65536
MAX_MEMRESERVE_NODES = 1024
MAX_HEADER_LENGTH = 4096  # RSDP / table-header lengths beyond this are treated as garbage
LINUX_RNG_SEED_CAP = 1024  # Linux 6.x efi_config_parse_tables: min_t(u32, seed->size, SZ_1K)
LINUX_MEMATTR_CAP = 2 << 20  # Linux drivers/firmware/efi/memattr.c efi_memattr_init: SZ_2M
EFI_MEMORY_DESCRIPTOR_SIZE = 40


@dataclass(frozen=True, slots=True)
class SizeResult:
    """A table's byte length, or ``None`` = unknown; ``reason`` says how it was found or why not."""

    size: int | None
    reason: str
    claimed: int | None = None  # the table's own claim, when more than its descriptor holds


SizeRule = Callable[[Reader, int, int | None], SizeResult]
"""``rule(read, addr, limit) -> SizeResult``; ``limit`` bounds walks (None = unknown)."""


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
# reading helpers


def _read(read: Reader, addr: int, offset: int, length: int) -> bytes | None:
    """``length`` bytes at ``addr + offset``, or None (unknown, short, or past 2^64)."""
    start = addr + offset
    if addr < 0 or offset < 0 or length < 0 or start + length - 1 > U64_MAX:
        return None
    data = read(start, length)
    if data is None or len(data) < length:
        return None
    return bytes(data[:length])


def _missing(what: str, offset: int, length: int) -> SizeResult:
    return SizeResult(None, f"{BYTES_NOT_AVAILABLE} ({what}: {length} bytes at +{offset:#x})")


def _fixed(size: int, why: str) -> SizeRule:
    """A rule for a table whose size is its C struct's size."""

    def rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
        return SizeResult(size, why)

    rule.__doc__ = f"Fixed {size} bytes: {why}."
    return rule


_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


# --------------------------------------------------------------------------------------------
# ACPI, SMBIOS, devicetree: signature + length field

_RSDP_SIG = b"RSD PTR "
_RSDP_V1_SIZE = 20  # ACPI 6.5 5.2.5.3: signature..RsdtAddress
_RSDP_V2_MIN = 36  # ... Length, XsdtAddress, ExtendedChecksum, 3 reserved


def _rsdp_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """ACPI 2.0+ RSDP: 20 bytes for revision 0 (and 1), else ``Length`` (u32 at 20)."""
    # ACPI spec 5.2.5.3; ACPICA acpi_tb_parse_root_table uses the XSDT only for revision > 1.
    head = _read(read, addr, 0, 24)
    if head is None:
        head = _read(read, addr, 0, _RSDP_V1_SIZE)
        if head is None:
            return _missing("RSDP", 0, _RSDP_V1_SIZE)
    if head[:8] != _RSDP_SIG:
        return SizeResult(None, f"bad signature {head[:8]!r}, expected 'RSD PTR '")
    revision = head[15]
    if revision < 2:
        return SizeResult(_RSDP_V1_SIZE, f"RSDP revision {revision}: ACPI 1.0 layout, 20 bytes")
    if len(head) < 24:
        return _missing("RSDP Length", 20, 4)
    (length,) = _U32.unpack_from(head, 20)
    if length < _RSDP_V2_MIN or length > MAX_HEADER_LENGTH:
        return SizeResult(None, f"RSDP revision {revision} claims Length {length} (expected 36)")
    return SizeResult(length, f"RSDP revision {revision}: Length field")


def _rsdp_v1_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """ACPI 1.0 GUID: the 20-byte RSDP a 1.0 consumer reads, whatever its revision."""
    head = _read(read, addr, 0, 16)
    if head is None:
        return _missing("RSDP", 0, 16)
    if head[:8] != _RSDP_SIG:
        return SizeResult(None, f"bad signature {head[:8]!r}, expected 'RSD PTR '")
    return SizeResult(_RSDP_V1_SIZE, f"ACPI 1.0 RSDP: 20 bytes (revision field {head[15]})")


def _smbios_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """SMBIOS 2.x entry point: anchor ``_SM_``, length u8 at 5 (0x1F; 0x1E on SMBIOS 2.1)."""
    # DMTF DSP0134 5.2.1 (32-bit entry point structure).
    head = _read(read, addr, 0, 6)
    if head is None:
        return _missing("SMBIOS entry point", 0, 6)
    if head[:4] != b"_SM_":
        return SizeResult(None, f"bad anchor {head[:4]!r}, expected '_SM_'")
    length = head[5]
    if length < 0x1E:
        return SizeResult(None, f"entry point length {length:#x} is below 0x1e")
    return SizeResult(length, f"SMBIOS 2.x entry point length {length:#x}")


def _smbios3_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """SMBIOS 3.x entry point: anchor ``_SM3_``, length u8 at 6 (0x18)."""
    # DMTF DSP0134 5.2.2 (64-bit entry point structure).
    head = _read(read, addr, 0, 7)
    if head is None:
        return _missing("SMBIOS3 entry point", 0, 7)
    if head[:5] != b"_SM3_":
        return SizeResult(None, f"bad anchor {head[:5]!r}, expected '_SM3_'")
    length = head[6]
    if length < 0x18:
        return SizeResult(None, f"entry point length {length:#x} is below 0x18")
    return SizeResult(length, f"SMBIOS 3.x entry point length {length:#x}")


_FDT_MAGIC = 0xD00DFEED
_FDT_HEADER_V17 = 40


def _fdt_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Flattened devicetree: big-endian magic 0xd00dfeed at 0, ``totalsize`` (BE u32) at 4."""
    # Devicetree Specification v0.4 5.2 (struct fdt_header).
    head = _read(read, addr, 0, 8)
    if head is None:
        return _missing("FDT header", 0, 8)
    magic, total = struct.unpack_from(">II", head)
    if magic != _FDT_MAGIC:
        return SizeResult(None, f"bad FDT magic {magic:#010x}, expected 0xd00dfeed")
    if total < _FDT_HEADER_V17:
        return SizeResult(None, f"FDT totalsize {total} is smaller than its 40-byte header")
    return SizeResult(total, "FDT totalsize field")


# --------------------------------------------------------------------------------------------
# header + count x stride


def _esrt_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """ESRT: 16-byte header + 40 x FwResourceCount (u32 at 0)."""
    # UEFI 2.10 23.4; Linux drivers/firmware/efi/esrt.c efi_esrt_init (facts 1.7, 3.2).
    head = _read(read, addr, 0, 16)
    if head is None:
        return _missing("ESRT header", 0, 16)
    count, _count_max, version = struct.unpack_from("<IIQ", head)
    size = 16 + 40 * count
    notes = [f"16 + 40 x FwResourceCount {count}"]
    if version != 1:
        notes.append(f"FwResourceVersion {version} (Linux accepts only 1)")
    if count == 0:
        notes.append("FwResourceCount 0 (the spec requires at least one entry)")
    return SizeResult(size, "; ".join(notes))


def _descriptor_array_rule(
    what: str, *, max_version: int | None, linux_cap: int | None
) -> SizeRule:
    """Header {u32 version, num_entries, desc_size, flags} + num_entries x desc_size."""

    def rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
        head = _read(read, addr, 0, 16)
        if head is None:
            return _missing(f"{what} header", 0, 16)
        version, entries, desc_size, _flags = struct.unpack_from("<IIII", head)
        if max_version is not None and version > max_version:
            return SizeResult(None, f"{what} version {version} (Linux accepts up to {max_version})")
        if desc_size < EFI_MEMORY_DESCRIPTOR_SIZE:
            return SizeResult(
                None, f"{what} descriptor size {desc_size} is below sizeof(EFI_MEMORY_DESCRIPTOR)"
            )
        size = 16 + entries * desc_size
        reason = f"16 + {entries} entries x descriptor size {desc_size} (version {version})"
        if linux_cap is not None and entries * desc_size > linux_cap:
            reason += "; over Linux's 2 MiB sanity limit, so Linux refuses it as corrupt"
        return SizeResult(size, reason)

    rule.__doc__ = f"{what}: 16-byte header + NumberOfEntries x DescriptorSize."
    return rule


# Linux drivers/firmware/efi/memattr.c efi_memattr_init: version <= 2, num_entries * desc_size
# <= SZ_2M, desc_size == the memory map's (not checkable here; we require >= 40).
_memattr_rule = _descriptor_array_rule("MEMATTR", max_version=2, linux_cap=LINUX_MEMATTR_CAP)
# edk2 MdeModulePkg/Include/Guid/PiSmmCommunicationRegionTable.h: same header layout.
_smm_comm_rule = _descriptor_array_rule("SMM comm region", max_version=None, linux_cap=None)


def _rng_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Linux RNG seed: {u32 size; u8 bits[]} = 4 + size."""
    # Linux include/linux/efi.h struct linux_efi_random_seed; efi.c efi_config_parse_tables.
    head = _read(read, addr, 0, 4)
    if head is None:
        return _missing("RNG seed header", 0, 4)
    (size,) = _U32.unpack_from(head)
    reason = f"4 + seed size {size}"
    if size > LINUX_RNG_SEED_CAP:
        reason += f"; Linux reads only the first {LINUX_RNG_SEED_CAP} seed bytes"
    return SizeResult(4 + size, reason)


# struct linux_efi_tpm_eventlog {u32 size; u32 final_events_preboot_size; u8 version; u8 log[];}
# is not packed: log[] starts at 9 but sizeof is 12. Linux drivers/firmware/efi/tpm.c
# efi_tpm_eventlog_init reserves sizeof + size, and the stub (libstub/tpm.c) allocates the same.
_TPM_LOG_SIZEOF = 12


def _tpm_log_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Linux TPM event log: sizeof(struct linux_efi_tpm_eventlog) (12) + size (u32 at 0)."""
    head = _read(read, addr, 0, 9)
    if head is None:
        return _missing("TPM event log header", 0, 9)
    size, _preboot = struct.unpack_from("<II", head)
    version = head[8]
    reason = f"12 (sizeof, log starts at 9) + log size {size}; log format version {version}"
    if version not in (1, 2):
        reason += " (neither 1 = TCG 1.2 nor 2 = TCG 2)"
    return SizeResult(_TPM_LOG_SIZEOF + size, reason)


# TCG algorithm registry: TPM_ALG_ID -> digest size. Linux takes these sizes from the Spec ID
# event at the head of the main log (include/linux/tpm_eventlog.h __calc_tpm2_event_size); a
# fixed table is our approximation when the main log is not at hand.
TPM_DIGEST_SIZES: Mapping[int, int] = MappingProxyType(
    {
        0x0004: 20,  # SHA1
        0x000B: 32,  # SHA256
        0x000C: 48,  # SHA384
        0x000D: 64,  # SHA512
        0x0012: 32,  # SM3_256
        0x0027: 32,  # SHA3_256
        0x0028: 48,  # SHA3_384
        0x0029: 64,  # SHA3_512
    }
)
_MAX_DIGESTS = 16


def _final_events_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """TCG2 / CC final events: {u64 version; u64 nr_events} + nr_events TCG_PCR_EVENT2 records."""
    # Linux drivers/firmware/efi/tpm.c efi_tpm_eventlog_init + tpm2_calc_event_log_size.
    head = _read(read, addr, 0, 16)
    if head is None:
        return _missing("final events header", 0, 16)
    version, nr_events = struct.unpack_from("<QQ", head)
    if nr_events > MAX_WALK_RECORDS:
        return SizeResult(None, f"claims {nr_events} events; our walk stops at {MAX_WALK_RECORDS}")
    bound = MAX_WALK_BYTES if limit is None else min(limit, MAX_WALK_BYTES)
    off = 16
    for index in range(nr_events):
        event = _read(read, addr, off, 12)
        if event is None:
            return _missing(f"event {index} header", off, 12)
        _pcr, event_type, count = struct.unpack_from("<III", event)
        if count == 0 or count > _MAX_DIGESTS:
            return SizeResult(None, f"event {index} has {count} digests")
        pos = off + 12
        for _ in range(count):
            alg = _read(read, addr, pos, 2)
            if alg is None:
                return _missing(f"event {index} digest algorithm", pos, 2)
            (alg_id,) = _U16.unpack_from(alg)
            digest = TPM_DIGEST_SIZES.get(alg_id)
            if digest is None:
                return SizeResult(None, f"event {index}: digest algorithm {alg_id:#06x} unknown")
            pos += 2 + digest
        field = _read(read, addr, pos, 4)
        if field is None:
            return _missing(f"event {index} event size", pos, 4)
        (event_size,) = _U32.unpack_from(field)
        if event_type == 0 and event_size == 0:
            # __calc_tpm2_event_size: such an event is 'not a valid event'; Linux gives up.
            return SizeResult(None, f"event {index} has type 0 and size 0 (Linux rejects it)")
        off = pos + 4 + event_size
        if off > bound:
            where = "its memory descriptor" if limit is not None and off > limit else "1 MiB"
            return SizeResult(None, f"event walk passes {where} at event {index}")
    return SizeResult(
        off,
        f"16 + {nr_events} events walked (version {version}); digest sizes from the TCG "
        "registry, not from the main log's Spec ID event as Linux does",
    )


def _unaccepted_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Unaccepted memory: {u32 version=1; u32 unit_size; u64 phys_base; u64 size} + bitmap."""
    # Linux include/linux/efi.h struct efi_unaccepted_memory; efi.c reserve_unaccepted (Linux
    # reserves the page-aligned range around it, and drops the table unless version == 1).
    head = _read(read, addr, 0, 24)
    if head is None:
        return _missing("unaccepted memory header", 0, 24)
    version, unit_size, _base, size = struct.unpack_from("<IIQQ", head)
    if version != 1:
        return SizeResult(None, f"version {version} (Linux accepts only 1 and ignores the table)")
    return SizeResult(24 + size, f"24 + bitmap size {size} (unit size {unit_size})")


def _rt_properties_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """EFI_RT_PROPERTIES_TABLE: {u16 version=1; u16 length; u32 supported}: ``length``."""
    # UEFI 2.10 4.6.2; Linux include/linux/efi.h efi_rt_properties_table_t (Linux maps sizeof 8).
    head = _read(read, addr, 0, 4)
    if head is None:
        return _missing("RT properties header", 0, 4)
    version, length = struct.unpack_from("<HH", head)
    if version != 1:
        return SizeResult(None, f"version {version}, expected 1")
    if length < 8:
        return SizeResult(None, f"length {length} is below the table's 8 bytes")
    return SizeResult(length, "length field")


def _properties_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """EFI_PROPERTIES_TABLE: {u32 version=0x10000; u32 length; u64 attributes}: ``length``."""
    # edk2 MdePkg/Include/Guid/PropertiesTable.h (EFI_PROPERTIES_TABLE_VERSION 0x00010000).
    head = _read(read, addr, 0, 8)
    if head is None:
        return _missing("properties table header", 0, 8)
    version, length = struct.unpack_from("<II", head)
    if version != 0x10000:
        return SizeResult(None, f"version {version:#x}, expected 0x10000")
    if length < 16 or length > MAX_HEADER_LENGTH:
        return SizeResult(None, f"length {length} (expected 16)")
    return SizeResult(length, "length field")


_OVMF_MAGIC1 = b"ovmfmdg1"  # u64 0x3167646d666d766f, little-endian
_OVMF_MAGIC2 = b"ovmfmdg2"
_OVMF_LINUX_HEADER = 192  # Linux ovmf-debug-log.c struct ovmf_debug_log_header


def _ovmf_log_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """OVMF debug log: magics ``ovmfmdg1``/``ovmfmdg2``, then hdr_size + log_size (u64s)."""
    # Linux drivers/firmware/efi/ovmf-debug-log.c ovmf_log_probe (maps hdr_size + log_size).
    head = _read(read, addr, 0, 32)
    if head is None:
        return _missing("OVMF debug log header", 0, 32)
    if head[:8] != _OVMF_MAGIC1 or head[8:16] != _OVMF_MAGIC2:
        return SizeResult(None, f"bad magic {head[:16]!r}, expected 'ovmfmdg1ovmfmdg2'")
    hdr_size, log_size = struct.unpack_from("<QQ", head, 16)
    reason = f"header size {hdr_size} + log size {log_size}"
    if hdr_size < _OVMF_LINUX_HEADER:
        reason += f" (header below the {_OVMF_LINUX_HEADER} bytes Linux maps first)"
    return SizeResult(hdr_size + log_size, reason)


_RCI2_SIG = b"_RC_"


def _rci2_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Dell RCI2: packed 30-byte header, signature ``_RC_`` at 6, ``rci2_len`` (u32) at 24."""
    # Linux drivers/firmware/efi/rci2-table.c efi_rci2_sysfs_init (then a 16-bit checksum).
    head = _read(read, addr, 0, 28)
    if head is None:
        return _missing("RCI2 header", 0, 28)
    if head[6:10] != _RCI2_SIG:
        return SizeResult(None, f"bad signature {head[6:10]!r}, expected '_RC_'")
    (length,) = _U32.unpack_from(head, 24)
    if length == 0:
        return SizeResult(None, "rci2_len is 0 (Linux rejects it)")
    return SizeResult(length, "rci2_len field (checksum not verified)")


_UV_SIG = b"UVST"
_UV_SIZEOF = 24  # struct uv_systab with its one entry
_UV_VERSION_UV4 = 0x400


def _uv_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """SGI/HPE UV system table: 24 bytes, or ``size`` (u32 at 16) from revision 0x400 (UV4)."""
    # Linux arch/x86/include/asm/uv/bios.h struct uv_systab; arch/x86/platform/uv/bios_uv.c
    # uv_bios_init.
    head = _read(read, addr, 0, 20)
    if head is None:
        return _missing("UV systab header", 0, 20)
    if head[:4] != _UV_SIG:
        return SizeResult(None, f"bad signature {head[:4]!r}, expected 'UVST'")
    (revision,) = _U32.unpack_from(head, 4)
    if revision < _UV_VERSION_UV4:
        return SizeResult(_UV_SIZEOF, f"revision {revision:#x}: fixed struct uv_systab")
    (size,) = _U32.unpack_from(head, 16)
    if size < _UV_SIZEOF:
        return SizeResult(None, f"revision {revision:#x} claims size {size}, below its header")
    return SizeResult(size, f"revision {revision:#x}: size field")


def _boot_memmap_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Linux stub boot memory map: 40-byte struct efi_boot_memmap + buff_size (u64 at 32)."""
    # Linux include/linux/efi.h struct efi_boot_memmap; libstub/mem.c efi_get_memory_map
    # allocates sizeof(*m) + buffer size.
    head = _read(read, addr, 0, 40)
    if head is None:
        return _missing("boot memmap header", 0, 40)
    map_size, desc_size, _ver, _key, buff_size = struct.unpack_from("<QQIxxxxQQ", head)
    reason = f"40 + buff_size {buff_size} (map_size {map_size}, desc_size {desc_size})"
    if map_size > buff_size:
        reason += "; map_size exceeds buff_size"
    return SizeResult(40 + buff_size, reason)


def _conformance_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """EFI_CONFORMANCE_PROFILES_TABLE: {u16 version=1; u16 count} + count GUIDs."""
    # UEFI 2.10 4.6.5.
    head = _read(read, addr, 0, 4)
    if head is None:
        return _missing("conformance profiles header", 0, 4)
    version, count = struct.unpack_from("<HH", head)
    if version != 1:
        return SizeResult(None, f"version {version}, expected 1")
    return SizeResult(4 + 16 * count, f"4 + {count} profile GUIDs")


_DXE_SIG = b"DXE_SERV"


def _dxe_services_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """DXE services table: EFI_TABLE_HEADER signature ``DXE_SERV``, HeaderSize (u32 at 12)."""
    # PI 1.8 vol 2 9.1 (DXE_SERVICES); UEFI 2.10 4.2 (HeaderSize covers the whole table).
    head = _read(read, addr, 0, 16)
    if head is None:
        return _missing("table header", 0, 16)
    if head[:8] != _DXE_SIG:
        return SizeResult(None, f"bad signature {head[:8]!r}, expected 'DXE_SERV'")
    (size,) = _U32.unpack_from(head, 12)
    if size < 24 or size > MAX_HEADER_LENGTH:
        return SizeResult(None, f"HeaderSize {size} is not plausible")
    return SizeResult(size, "EFI_TABLE_HEADER.HeaderSize")


# --------------------------------------------------------------------------------------------
# walks


def _walk_bound(limit: int | None) -> int:
    return MAX_WALK_BYTES if limit is None else min(limit, MAX_WALK_BYTES)


_HOB_HANDOFF = 0x0001
_HOB_END = 0xFFFF


def _hob_list_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """PI HOB list: walk {u16 type; u16 length; u32 reserved} headers to END_OF_HOB_LIST."""
    # PI 1.8 vol 3 5.2-5.3; edk2 MdePkg/Include/Pi/PiHob.h (PHIT first, type 0xFFFF last).
    bound = _walk_bound(limit)
    off = 0
    for index in range(MAX_WALK_RECORDS):
        head = _read(read, addr, off, 4)
        if head is None:
            return _missing(f"HOB {index} header", off, 4)
        hob_type, length = struct.unpack_from("<HH", head)
        if index == 0 and hob_type != _HOB_HANDOFF:
            return SizeResult(None, f"first HOB has type {hob_type:#06x}, not the PHIT (1)")
        if length < 8:
            return SizeResult(None, f"HOB {index} (type {hob_type:#06x}) has length {length}")
        off += length
        if hob_type == _HOB_END:
            return SizeResult(off, f"{index + 1} HOBs walked to END_OF_HOB_LIST")
        if off > bound:
            return SizeResult(None, f"HOB walk passes {_bound_name(limit, off)} at HOB {index}")
    return SizeResult(None, f"no END_OF_HOB_LIST within {MAX_WALK_RECORDS} HOBs")


def _bound_name(limit: int | None, off: int) -> str:
    return "its memory descriptor" if limit is not None and off > limit else "1 MiB"


_MEMTYPE_INFO_MAX = 64


def _memory_type_info_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """edk2 memory type information: {u32 Type; u32 NumberOfPages}[] up to the EfiMaxMemoryType
    terminator (16 in current edk2, 15 before EfiUnacceptedMemoryType was added)."""
    # edk2 MdeModulePkg/Include/Guid/MemoryTypeInformation.h; OvmfPkg PlatformPei ends the
    # array with {EfiMaxMemoryType, 0}. A type-15 entry with pages is read as Unaccepted.
    for index in range(_MEMTYPE_INFO_MAX):
        entry = _read(read, addr, 8 * index, 8)
        if entry is None:
            return _missing(f"entry {index}", 8 * index, 8)
        mem_type, pages = struct.unpack_from("<II", entry)
        if mem_type >= 16 or (mem_type == 15 and pages == 0):
            return SizeResult(8 * (index + 1), f"{index} entries + terminator (type {mem_type})")
    return SizeResult(None, f"no terminator within {_MEMTYPE_INFO_MAX} entries")


def _image_exec_info_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """EFI_IMAGE_EXECUTION_INFO_TABLE: {UINTN count} + count x {u32 action; u32 InfoSize; ...}."""
    # UEFI 2.10 32.5.3.1 (installed under EFI_IMAGE_SECURITY_DATABASE_GUID).
    head = _read(read, addr, 0, 8)
    if head is None:
        return _missing("image execution info header", 0, 8)
    (count,) = _U64.unpack_from(head)
    if count > MAX_WALK_RECORDS:
        return SizeResult(None, f"claims {count} images; our walk stops at {MAX_WALK_RECORDS}")
    bound = _walk_bound(limit)
    off = 8
    for index in range(count):
        entry = _read(read, addr, off, 8)
        if entry is None:
            return _missing(f"image {index} header", off, 8)
        (info_size,) = _U32.unpack_from(entry, 4)
        if info_size < 8:
            return SizeResult(None, f"image {index} InfoSize {info_size} is below 8")
        off += info_size
        if off > bound:
            return SizeResult(None, f"walk passes {_bound_name(limit, off)} at image {index}")
    return SizeResult(off, f"8 + {count} image records walked")


_MEMRESERVE_NODE = struct.Struct("<iiQ")  # int size; atomic_t count; phys_addr_t next


def _memreserve_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Linux MEMRESERVE: the root node, 16 + 16 x size; the reason counts the whole list."""
    # Linux include/linux/efi.h struct linux_efi_memreserve; efi.c efi_config_parse_tables
    # walks node->next from the root and memblock_reserves each node (struct_size) and its
    # count entries. Only the root is the configuration table; later nodes are separate pages.
    head = _read(read, addr, 0, 16)
    if head is None:
        return _missing("MEMRESERVE root node", 0, 16)
    size, count, nxt = _MEMRESERVE_NODE.unpack(head)
    if size < 0:
        return SizeResult(None, f"root node size {size} is negative")
    root = 16 + 16 * size
    notes = [f"root node 16 + 16 x {size}"]
    if count > size:
        notes.append(f"root count {count} exceeds its size {size}")
    nodes, total = 1, root
    seen = {addr}
    while nxt:
        if nxt in seen:
            notes.append(f"list loops back to {nxt:#x}")
            break
        if nodes >= MAX_MEMRESERVE_NODES:
            notes.append(f"walk stopped after {MAX_MEMRESERVE_NODES} nodes")
            break
        seen.add(nxt)
        node = _read(read, nxt, 0, 16)
        if node is None:
            notes.append(f"node at {nxt:#x}: {BYTES_NOT_AVAILABLE}")
            break
        size, _count, next_next = _MEMRESERVE_NODE.unpack(node)
        if size < 0:
            notes.append(f"node at {nxt:#x} has negative size {size}")
            break
        nodes += 1
        total += 16 + 16 * size
        nxt = next_next
    notes.append(f"list: {nodes} node(s), {total} bytes of nodes in all")
    return SizeResult(root, "; ".join(notes))


_MOK_ENTRY_HEADER = 264  # char name[256]; u64 data_size


def _mokvar_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """MOK variable table: entries {char name[256]; u64 data_size; data[]} up to a sentinel with
    name[0] == 0 and data_size == 0; the walk is bounded by the memory descriptor's end."""
    # Linux drivers/firmware/efi/mokvar-table.c efi_mokvar_table_init.
    if limit is None:
        return SizeResult(
            None, "the walk needs the end of its memory descriptor (Linux bounds it there)"
        )
    off = 0
    for _ in range(MAX_WALK_RECORDS):
        if off + _MOK_ENTRY_HEADER > limit:
            return SizeResult(None, "no sentinel entry before the end of its memory descriptor")
        first = _read(read, addr, off, 1)
        field = _read(read, addr, off + 256, 8)
        if first is None or field is None:
            return _missing("MOK entry", off, _MOK_ENTRY_HEADER)
        (data_size,) = _U64.unpack(field)
        if first[0] == 0:
            if data_size != 0:
                return SizeResult(None, f"entry at +{off:#x} has an empty name but data")
            return SizeResult(off + _MOK_ENTRY_HEADER, "entries walked to the sentinel")
        off += _MOK_ENTRY_HEADER + data_size
    return SizeResult(None, f"no sentinel within {MAX_WALK_RECORDS} entries")


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
       "ACPI 2.0+ RSDP.", rule=_rsdp_rule),
    _t("eb9d2d30-2d88-11d3-9a16-0090273fc14d", "ACPI", "ACPI_TABLE_GUID",
       "ACPI 1.0 RSDP.", rule=_rsdp_v1_rule),
    _t("eb9d2d31-2d88-11d3-9a16-0090273fc14d", "SMBIOS", "SMBIOS_TABLE_GUID",
       "SMBIOS 2.x (32-bit) entry point.",
       rule=_smbios_rule),
    _t("f2fd1544-9794-4a2c-992e-e5bbcf20e394", "SMBIOS 3.0", "SMBIOS3_TABLE_GUID",
       "SMBIOS 3.x (64-bit) entry point.",
       rule=_smbios3_rule),
    _t("b122a263-3661-4f68-9929-78f8b0d62180", "ESRT", "EFI_SYSTEM_RESOURCE_TABLE_GUID",
       "EFI System Resource Table (fwupd's source of devices). efi_esrt_init needs "
       "CONFIG_EFI_ESRT; before Linux 6.3 it also returned early without EFI_MEMMAP, so a Xen "
       "PV dom0 never parsed it. Xen records and relocates it since 4.17.", rule=_esrt_rule),
    _t("dcfa911d-26eb-469f-a220-38b7dc461220", "MEMATTR", "EFI_MEMORY_ATTRIBUTES_TABLE_GUID",
       "Memory attributes of runtime regions; efi_memattr_init runs only with EFI_MEMMAP.", rule=_memattr_rule),
    _t("1ce1e5bc-7ceb-42f2-81e5-8aadf180f57b", "RNG", "LINUX_EFI_RANDOM_SEED_TABLE_GUID",
       "Random seed left by the Linux EFI stub or a boot loader.",
       rule=_rng_rule),
    _t("b7799cb0-eca2-4943-9667-1fae07b747fa", "TPMEventLog", "LINUX_EFI_TPM_EVENT_LOG_GUID",
       "TPM event log copied by the Linux EFI stub.",
       rule=_tpm_log_rule),
    _t("1e2ed096-30e2-4254-bd89-863bbef82325", "TPMFinalLog",
       "EFI_TCG2_FINAL_EVENTS_TABLE_GUID",
       "TCG2 final events (older Linux name LINUX_EFI_TPM_FINAL_LOG_GUID). Linux sizes it only "
       "when the TPMEventLog table is present with log format 2.", rule=_final_events_rule),
    _t("dd4a4648-2de7-4665-964d-21d9ef5fb446", "CCFinalLog", "EFI_CC_FINAL_EVENTS_TABLE_GUID",
       "Confidential-computing final events (same layout as TCG2's); recent kernels only, "
       "sharing efi.tpm_final_log.", rule=_final_events_rule),
    _t("888eb0c6-8ede-4ff5-a8f0-9aee5cb977c2", "MEMRESERVE", "LINUX_EFI_MEMRESERVE_TABLE_GUID",
       "Linux persistent reservations (linked list, mainly arm64 GICv3 LPI tables across kexec).", rule=_memreserve_rule),
    _t("5568e427-68fc-4f3d-ac74-ca555231cc68", "INITRD", "LINUX_EFI_INITRD_MEDIA_GUID",
       "initrd base and size passed by the Linux EFI stub.",
       rule=_fixed(16, "struct linux_efi_initrd {base; size}")),
    _t("eb66918a-7eef-402a-842e-931d21c38ae9", "RTPROP", "EFI_RT_PROPERTIES_TABLE_GUID",
       "Which runtime services remain supported after ExitBootServices.", rule=_rt_properties_rule),
    _t("95305139-b20f-4723-8425-627c888ff121", "OvmfDebugLog", "OVMF_MEMORY_LOG_TABLE_GUID",
       "OVMF firmware debug log buffer (edk2-stable202508 and later); Linux exposes it as "
       "/sys/firmware/efi/ovmf_debug_log (driver posted July 2025).", rule=_ovmf_log_rule),
    _t("2d9f28a2-a886-456a-97a8-f11ef24ff455", "RCI2", "DELLEMC_EFI_RCI2_TABLE_GUID",
       "Dell EMC Runtime Configuration Interface v2; recorded without a printed name.", rule=_rci2_rule),
    _t("c451ed2b-9694-45d3-baba-ed9f8988a389", "MOKvar", "LINUX_EFI_MOK_VARIABLE_TABLE_GUID",
       "Machine Owner Key variables passed by shim; efi_mokvar_table_init needs EFI_MEMMAP.",
       rule=_mokvar_rule),
    _t("adf956ad-e98c-484c-ae11-b51c7d336447", "CocoSecret", "LINUX_EFI_COCO_SECRET_AREA_GUID",
       "Confidential-computing secret area locator; the area itself is base_pa/size.",
       rule=_fixed(16, "struct linux_efi_coco_secret_area {u64 base_pa; u64 size}")),
    _t("d5d1de3c-105c-44f9-9ea9-bcef98120031", "Unaccepted", "LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID",
       "Bitmap of memory not yet accepted by a TDX/SNP guest (added to Linux in 2023; the "
       "release, 6.5, is not verified here).",
       rule=_unaccepted_rule),
    _t("e03fc20a-85dc-406e-b90e-4ab502371d95", "screen_info", "LINUX_EFI_SCREEN_INFO_TABLE_GUID",
       "struct screen_info handed from the generic EFI stub to the kernel; recorded unnamed.",
       rule=_fixed(64, "sizeof(struct screen_info), packed, include/uapi/linux/screen_info.h")),
    _t("3b13a7d4-633e-11dd-93ec-da2556d89593", "UVsystab", "UV_SYSTEM_TABLE_GUID",
       "SGI/HPE UV BIOS system table (x86 arch_tables).", rule=_uv_rule),
    _t("880aaca3-4adc-4a04-9079-b747340825e5", "PROP", "EFI_PROPERTIES_TABLE_GUID",
       "UEFI 2.5 properties table, superseded by MEMATTR. x86 arch_tables printed PROP= until "
       "the 'x86/efi: Drop support for the EFI_PROPERTIES_TABLE' patch (posted Nov 2024).", rule=_properties_rule),
    _t("61a4d49e-6f68-4f1b-b922-a86eed0b07a2", "UGA", "UGA_IO_PROTOCOL_GUID",
       "UGA I/O protocol pointer some (Apple) firmware installs as a table; x86 arch_tables "
       "printed UGA= in the kernels of the 6.x range; the newest mainline list has only "
       "UVsystab. Only its address is recorded.",),
    # Known GUIDs that Linux's config-table parser does not record.
    _t("eb9d2d2f-2d88-11d3-9a16-0090273fc14d", "MPS", "MPS_TABLE_GUID",
       "MultiProcessor Specification floating pointer; Xen records it, current Linux does not.",),
    _t("b1b621d5-f19c-41a5-830b-d9152c69aae0", "DeviceTree", "DEVICE_TREE_GUID",
       "Flattened devicetree; read by the Linux EFI stub on Arm/RISC-V, not by "
       "efi_config_parse_tables.", rule=_fdt_rule),
    _t("800f683f-d08b-423a-a293-965c3c6fe2b4", "BootMemmap", "LINUX_EFI_BOOT_MEMMAP_GUID",
       "Memory map the Linux EFI stub installs for itself.", rule=_boot_memmap_rule),
    _t("067b1f5f-cf26-44c5-8554-93d777912d42", "CCBlob", "EFI_CC_BLOB_GUID",
       "AMD SEV-SNP secrets/CPUID page locator from OVMF; read by the x86 boot code, not by "
       "efi_config_parse_tables.",
       rule=_fixed(40, "packed struct cc_blob_sev_info, arch/x86/include/asm/sev.h")),
    # edk2 / UEFI tables a real OVMF (or other edk2 firmware) installs.
    _t("05ad34ba-6f02-4214-952e-4da0398e2bb9", "DxeServices", "EFI_DXE_SERVICES_TABLE_GUID",
       "PI DXE services table (edk2 DxeMain).", rule=_dxe_services_rule),
    _t("7739f24c-93d7-11d4-9a3a-0090273fc14d", "HobList", "EFI_HOB_LIST_GUID",
       "PI hand-off block list (edk2 DxeMain).", rule=_hob_list_rule),
    _t("4c19049f-4137-4dd3-9c10-8b97a83ffdfa", "MemoryTypeInfo",
       "EFI_MEMORY_TYPE_INFORMATION_GUID",
       "edk2 per-type page budget for stable memory maps across boots.",
       rule=_memory_type_info_rule),
    _t("49152e77-1ada-4764-b7a2-7afefed95e8b", "DebugImageInfo",
       "EFI_DEBUG_IMAGE_INFO_TABLE_GUID",
       "Debugger support: header {UpdateStatus; TableSize; pointer}; the image array is "
       "allocated separately.",
       rule=_fixed(16, "EFI_DEBUG_IMAGE_INFO_TABLE_HEADER; the entry array lives elsewhere")),
    _t("d719b2cb-3d3a-4596-a3bc-dad00e67656f", "ImageExecInfo",
       "EFI_IMAGE_SECURITY_DATABASE_GUID",
       "Image execution information table (secure boot verdicts of loaded images).",
       rule=_image_exec_info_rule),
    _t("4e28ca50-d582-44ac-a11f-e3d56526db34", "SmmCommRegion",
       "EDKII_PI_SMM_COMMUNICATION_REGION_TABLE_GUID",
       "Memory regions usable as SMM communication buffers.", rule=_smm_comm_rule),
    _t("36122546-f7e7-4c8f-bd9b-eb8525b50c0b", "ConformanceProfiles",
       "EFI_CONFORMANCE_PROFILES_TABLE_GUID",
       "UEFI 2.10 conformance profile GUIDs.", rule=_conformance_rule),
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
