"""Size rules of configuration tables: how many bytes a table at an address claims, read
through a :data:`Reader` from only the bytes each rule needs.

Size rules never raise on bad bytes and stay bounded whatever a count or length field claims.
Conventions, the same for every rule:

- a rule answers what the table claims for itself (:func:`efihandoff.uefi.tables.table_size`
  caps the answer at the table's memory descriptor);
- a reason starting with :data:`BYTES_NOT_AVAILABLE` means the reader had no bytes to answer;
- fixed-size tables need no bytes at all (a kernel log alone is enough to size them);
- checksums (RSDP, SMBIOS, RCI2) are not verified: they do not change the size.

Each header a rule reads is declared once in :mod:`efihandoff.uefi.tableheaders`. Sources are
named at each rule: Linux include/linux/efi.h and the drivers that parse each table; edk2
MdePkg and MdeModulePkg headers; the UEFI, PI, ACPI, SMBIOS, devicetree and TCG specifications.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from efihandoff.uefi import tableheaders as th
from efihandoff.uefi.esrt import ESRT_ENTRY_SIZE, ESRT_HEADER_SIZE, EsrtHeader
from efihandoff.uefi.memmap import DESCRIPTOR_SIZE_MIN
from efihandoff.uefi.systab import TABLE_HEADER_LAYOUT, TABLE_HEADER_SIZE

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


@dataclass(frozen=True, slots=True)
class SizeResult:
    """A table's byte length, or ``None`` = unknown; ``reason`` says how it was found or why not."""

    size: int | None
    reason: str
    claimed: int | None = None  # the table's own claim, when more than its descriptor holds


SizeRule = Callable[[Reader, int, int | None], SizeResult]
"""``rule(read, addr, limit) -> SizeResult``; ``limit`` bounds walks (None = unknown)."""


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


def fixed(size: int, why: str) -> SizeRule:
    """A rule for a table whose size is its C struct's size."""

    def rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
        return SizeResult(size, why)

    rule.__doc__ = f"Fixed {size} bytes: {why}."
    return rule


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


# --------------------------------------------------------------------------------------------
# ACPI, SMBIOS, devicetree: signature + length field

_RSDP_SIG = b"RSD PTR "
_RSDP_V1_SIZE = th.RSDP.offsets["length"]  # 20: ACPI 1.0's part, signature..RsdtAddress
_RSDP_V2_MIN = th.RSDP.size  # 36: ... Length, XsdtAddress, ExtendedChecksum, 3 reserved
_RSDP_V2_NEED = th.RSDP.end_of("length")  # 24


def rsdp_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """ACPI 2.0+ RSDP: 20 bytes for revision 0 (and 1), else ``Length`` (u32 at 20)."""
    # ACPI spec 5.2.5.3; ACPICA acpi_tb_parse_root_table uses the XSDT only for revision > 1.
    head = _read(read, addr, 0, _RSDP_V2_NEED)
    if head is None:
        head = _read(read, addr, 0, _RSDP_V1_SIZE)
        if head is None:
            return _missing("RSDP", 0, _RSDP_V1_SIZE)
    if head[:8] != _RSDP_SIG:
        return SizeResult(None, f"bad signature {head[:8]!r}, expected 'RSD PTR '")
    (revision,) = th.RSDP.values(head, "revision")
    if revision < 2:
        return SizeResult(_RSDP_V1_SIZE, f"RSDP revision {revision}: ACPI 1.0 layout, 20 bytes")
    if len(head) < _RSDP_V2_NEED:
        return _missing("RSDP Length", _RSDP_V1_SIZE, 4)
    (length,) = th.RSDP.values(head, "length")
    if length < _RSDP_V2_MIN or length > MAX_HEADER_LENGTH:
        return SizeResult(None, f"RSDP revision {revision} claims Length {length} (expected 36)")
    return SizeResult(length, f"RSDP revision {revision}: Length field")


def rsdp_v1_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """ACPI 1.0 GUID: the 20-byte RSDP a 1.0 consumer reads, whatever its revision."""
    head = _read(read, addr, 0, 16)
    if head is None:
        return _missing("RSDP", 0, 16)
    if head[:8] != _RSDP_SIG:
        return SizeResult(None, f"bad signature {head[:8]!r}, expected 'RSD PTR '")
    return SizeResult(_RSDP_V1_SIZE, f"ACPI 1.0 RSDP: 20 bytes (revision field {head[15]})")


def _entry_point(
    read: Reader, addr: int, anchor: bytes, length_at: int, minimum: int, what: str, version: str
) -> SizeResult:
    """An SMBIOS entry point: ``anchor``, then its own length as a u8 at ``length_at``."""
    head = _read(read, addr, 0, length_at + 1)
    if head is None:
        return _missing(what, 0, length_at + 1)
    if head[: len(anchor)] != anchor:
        return SizeResult(
            None, f"bad anchor {head[:len(anchor)]!r}, expected '{anchor.decode()}'"
        )
    length = head[length_at]
    if length < minimum:
        return SizeResult(None, f"entry point length {length:#x} is below {minimum:#x}")
    return SizeResult(length, f"SMBIOS {version} entry point length {length:#x}")


def smbios_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """SMBIOS 2.x entry point: anchor ``_SM_``, length u8 at 5 (0x1F; 0x1E on SMBIOS 2.1)."""
    # DMTF DSP0134 5.2.1 (32-bit entry point structure).
    return _entry_point(read, addr, b"_SM_", 5, 0x1E, "SMBIOS entry point", "2.x")


def smbios3_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """SMBIOS 3.x entry point: anchor ``_SM3_``, length u8 at 6 (0x18)."""
    # DMTF DSP0134 5.2.2 (64-bit entry point structure).
    return _entry_point(read, addr, b"_SM3_", 6, 0x18, "SMBIOS3 entry point", "3.x")


_FDT_MAGIC = 0xD00DFEED
_FDT_HEADER_V17 = 40


def fdt_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Flattened devicetree: big-endian magic 0xd00dfeed at 0, ``totalsize`` (BE u32) at 4."""
    # Devicetree Specification v0.4 5.2 (struct fdt_header).
    head = _read(read, addr, 0, th.FDT_HEAD_START.size)
    if head is None:
        return _missing("FDT header", 0, th.FDT_HEAD_START.size)
    fdt = th.FDT_HEAD_START.unpack_from(head)
    magic, total = fdt.magic, fdt.totalsize
    if magic != _FDT_MAGIC:
        return SizeResult(None, f"bad FDT magic {magic:#010x}, expected 0xd00dfeed")
    if total < _FDT_HEADER_V17:
        return SizeResult(None, f"FDT totalsize {total} is smaller than its 40-byte header")
    return SizeResult(total, "FDT totalsize field")


# --------------------------------------------------------------------------------------------
# header + count x stride


def esrt_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """ESRT: 16-byte header + 40 x FwResourceCount (u32 at 0)."""
    # UEFI 2.10 23.4; Linux drivers/firmware/efi/esrt.c efi_esrt_init (facts 1.7, 3.2).
    head = _read(read, addr, 0, ESRT_HEADER_SIZE)
    if head is None:
        return _missing("ESRT header", 0, ESRT_HEADER_SIZE)
    hdr = EsrtHeader.unpack(head)
    count, version = hdr.fw_resource_count, hdr.fw_resource_version
    size = hdr.size
    notes = [f"{ESRT_HEADER_SIZE} + {ESRT_ENTRY_SIZE} x FwResourceCount {count}"]
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
        head = _read(read, addr, 0, th.DESCRIPTOR_ARRAY_HEADER.size)
        if head is None:
            return _missing(f"{what} header", 0, th.DESCRIPTOR_ARRAY_HEADER.size)
        h = th.DESCRIPTOR_ARRAY_HEADER.unpack_from(head)
        version, entries, desc_size = h.version, h.number_of_entries, h.descriptor_size
        if max_version is not None and version > max_version:
            return SizeResult(None, f"{what} version {version} (Linux accepts up to {max_version})")
        if desc_size < DESCRIPTOR_SIZE_MIN:
            return SizeResult(
                None, f"{what} descriptor size {desc_size} is below sizeof(EFI_MEMORY_DESCRIPTOR)"
            )
        size = th.DESCRIPTOR_ARRAY_HEADER.size + entries * desc_size
        reason = f"16 + {entries} entries x descriptor size {desc_size} (version {version})"
        if linux_cap is not None and entries * desc_size > linux_cap:
            reason += "; over Linux's 2 MiB sanity limit, so Linux refuses it as corrupt"
        return SizeResult(size, reason)

    rule.__doc__ = f"{what}: 16-byte header + NumberOfEntries x DescriptorSize."
    return rule


# Linux drivers/firmware/efi/memattr.c efi_memattr_init: version <= 2, num_entries * desc_size
# <= SZ_2M, desc_size == the memory map's (not checkable here; we require >= 40).
memattr_rule = _descriptor_array_rule("MEMATTR", max_version=2, linux_cap=LINUX_MEMATTR_CAP)
# edk2 MdeModulePkg/Include/Guid/PiSmmCommunicationRegionTable.h: same header layout.
smm_comm_rule = _descriptor_array_rule("SMM comm region", max_version=None, linux_cap=None)


def rng_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Linux RNG seed: {u32 size; u8 bits[]} = 4 + size."""
    # Linux include/linux/efi.h struct linux_efi_random_seed; efi.c efi_config_parse_tables.
    head = _read(read, addr, 0, th.RANDOM_SEED.size)
    if head is None:
        return _missing("RNG seed header", 0, th.RANDOM_SEED.size)
    size = th.RANDOM_SEED.unpack_from(head).size
    reason = f"4 + seed size {size}"
    if size > LINUX_RNG_SEED_CAP:
        reason += f"; Linux reads only the first {LINUX_RNG_SEED_CAP} seed bytes"
    return SizeResult(th.RANDOM_SEED.size + size, reason)


# struct linux_efi_tpm_eventlog is not packed: log[] starts at 9 but sizeof is 12. Linux
# drivers/firmware/efi/tpm.c efi_tpm_eventlog_init reserves sizeof + size, and the stub
# (libstub/tpm.c) allocates the same.


def tpm_log_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Linux TPM event log: sizeof(struct linux_efi_tpm_eventlog) (12) + size (u32 at 0)."""
    layout = th.TPM_EVENT_LOG
    head = _read(read, addr, 0, layout.struct.size)
    if head is None:
        return _missing("TPM event log header", 0, layout.struct.size)
    log = layout.unpack_from(head)
    size, version = log.size, log.version
    reason = f"12 (sizeof, log starts at 9) + log size {size}; log format version {version}"
    if version not in (1, 2):
        reason += " (neither 1 = TCG 1.2 nor 2 = TCG 2)"
    return SizeResult(layout.size + size, reason)


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


def final_events_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """TCG2 / CC final events: {u64 version; u64 nr_events} + nr_events TCG_PCR_EVENT2 records."""
    # Linux drivers/firmware/efi/tpm.c efi_tpm_eventlog_init + tpm2_calc_event_log_size.
    hsize, esize = th.FINAL_EVENTS_HEADER.size, th.PCR_EVENT2_HEAD.size
    head = _read(read, addr, 0, hsize)
    if head is None:
        return _missing("final events header", 0, hsize)
    header = th.FINAL_EVENTS_HEADER.unpack_from(head)
    version, nr_events = header.version, header.number_of_events
    if nr_events > MAX_WALK_RECORDS:
        return SizeResult(None, f"claims {nr_events} events; our walk stops at {MAX_WALK_RECORDS}")
    bound = MAX_WALK_BYTES if limit is None else min(limit, MAX_WALK_BYTES)
    off = hsize
    for index in range(nr_events):
        raw = _read(read, addr, off, esize)
        if raw is None:
            return _missing(f"event {index} header", off, esize)
        event = th.PCR_EVENT2_HEAD.unpack_from(raw)
        event_type, count = event.event_type, event.digest_count
        if count == 0 or count > _MAX_DIGESTS:
            return SizeResult(None, f"event {index} has {count} digests")
        pos = off + esize
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


def unaccepted_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Unaccepted memory: {u32 version=1; u32 unit_size; u64 phys_base; u64 size} + bitmap."""
    # Linux include/linux/efi.h struct efi_unaccepted_memory; efi.c reserve_unaccepted (Linux
    # reserves the page-aligned range around it, and drops the table unless version == 1).
    layout = th.UNACCEPTED_MEMORY
    head = _read(read, addr, 0, layout.size)
    if head is None:
        return _missing("unaccepted memory header", 0, layout.size)
    u = layout.unpack_from(head)
    if u.version != 1:
        return SizeResult(None, f"version {u.version} (Linux accepts only 1 and ignores the table)")
    return SizeResult(layout.size + u.size, f"24 + bitmap size {u.size} (unit size {u.unit_size})")


def rt_properties_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """EFI_RT_PROPERTIES_TABLE: {u16 version=1; u16 length; u32 supported}: ``length``."""
    # UEFI 2.10 4.6.2; Linux include/linux/efi.h efi_rt_properties_table_t (Linux maps sizeof 8).
    layout = th.RT_PROPERTIES_TABLE
    need = layout.end_of("length")
    head = _read(read, addr, 0, need)
    if head is None:
        return _missing("RT properties header", 0, need)
    version, length = layout.values(head, "version", "length")
    if version != 1:
        return SizeResult(None, f"version {version}, expected 1")
    if length < layout.size:
        return SizeResult(None, f"length {length} is below the table's {layout.size} bytes")
    return SizeResult(length, "length field")


def properties_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """EFI_PROPERTIES_TABLE: {u32 version=0x10000; u32 length; u64 attributes}: ``length``."""
    # edk2 MdePkg/Include/Guid/PropertiesTable.h (EFI_PROPERTIES_TABLE_VERSION 0x00010000).
    layout = th.PROPERTIES_TABLE
    need = layout.end_of("length")
    head = _read(read, addr, 0, need)
    if head is None:
        return _missing("properties table header", 0, need)
    version, length = layout.values(head, "version", "length")
    if version != 0x10000:
        return SizeResult(None, f"version {version:#x}, expected 0x10000")
    if length < layout.size or length > MAX_HEADER_LENGTH:
        return SizeResult(None, f"length {length} (expected {layout.size})")
    return SizeResult(length, "length field")


_OVMF_MAGIC1 = b"ovmfmdg1"  # u64 0x3167646d666d766f, little-endian
_OVMF_MAGIC2 = b"ovmfmdg2"
_OVMF_LINUX_HEADER = 192  # Linux ovmf-debug-log.c struct ovmf_debug_log_header


def ovmf_log_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """OVMF debug log: magics ``ovmfmdg1``/``ovmfmdg2``, then hdr_size + log_size (u64s)."""
    # Linux drivers/firmware/efi/ovmf-debug-log.c ovmf_log_probe (maps hdr_size + log_size).
    layout = th.OVMF_DEBUG_LOG_HEADER
    head = _read(read, addr, 0, layout.size)
    if head is None:
        return _missing("OVMF debug log header", 0, layout.size)
    log = layout.unpack_from(head)
    if log.magic1 != _OVMF_MAGIC1 or log.magic2 != _OVMF_MAGIC2:
        return SizeResult(None, f"bad magic {head[:16]!r}, expected 'ovmfmdg1ovmfmdg2'")
    hdr_size, log_size = log.hdr_size, log.log_size
    reason = f"header size {hdr_size} + log size {log_size}"
    if hdr_size < _OVMF_LINUX_HEADER:
        reason += f" (header below the {_OVMF_LINUX_HEADER} bytes Linux maps first)"
    return SizeResult(hdr_size + log_size, reason)


_RCI2_SIG = b"_RC_"


def rci2_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Dell RCI2: packed 30-byte header, signature ``_RC_`` at 6, ``rci2_len`` (u32) at 24."""
    # Linux drivers/firmware/efi/rci2-table.c efi_rci2_sysfs_init (then a 16-bit checksum).
    need = th.RCI2_HEADER.end_of("rci2_len")
    head = _read(read, addr, 0, need)
    if head is None:
        return _missing("RCI2 header", 0, need)
    sig, length = th.RCI2_HEADER.values(head, "rci2_sig", "rci2_len")
    if sig != _RCI2_SIG:
        return SizeResult(None, f"bad signature {sig!r}, expected '_RC_'")
    if length == 0:
        return SizeResult(None, "rci2_len is 0 (Linux rejects it)")
    return SizeResult(length, "rci2_len field (checksum not verified)")


_UV_SIG = b"UVST"
_UV_SIZEOF = th.UV_SYSTAB.size  # 24
_UV_VERSION_UV4 = 0x400


def uv_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """SGI/HPE UV system table: 24 bytes, or ``size`` (u32 at 16) from revision 0x400 (UV4)."""
    # Linux arch/x86/include/asm/uv/bios.h struct uv_systab; arch/x86/platform/uv/bios_uv.c
    # uv_bios_init.
    need = th.UV_SYSTAB.end_of("size")
    head = _read(read, addr, 0, need)
    if head is None:
        return _missing("UV systab header", 0, need)
    sig, revision, size = th.UV_SYSTAB.values(head, "signature", "revision", "size")
    if sig != _UV_SIG:
        return SizeResult(None, f"bad signature {sig!r}, expected 'UVST'")
    if revision < _UV_VERSION_UV4:
        return SizeResult(_UV_SIZEOF, f"revision {revision:#x}: fixed struct uv_systab")
    if size < _UV_SIZEOF:
        return SizeResult(None, f"revision {revision:#x} claims size {size}, below its header")
    return SizeResult(size, f"revision {revision:#x}: size field")


def boot_memmap_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Linux stub boot memory map: 40-byte struct efi_boot_memmap + buff_size (u64 at 32)."""
    # Linux include/linux/efi.h struct efi_boot_memmap; libstub/mem.c efi_get_memory_map
    # allocates sizeof(*m) + buffer size.
    layout = th.BOOT_MEMMAP
    head = _read(read, addr, 0, layout.size)
    if head is None:
        return _missing("boot memmap header", 0, layout.size)
    m = layout.unpack_from(head)
    reason = f"40 + buff_size {m.buff_size} (map_size {m.map_size}, desc_size {m.desc_size})"
    if m.map_size > m.buff_size:
        reason += "; map_size exceeds buff_size"
    return SizeResult(layout.size + m.buff_size, reason)


def conformance_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """EFI_CONFORMANCE_PROFILES_TABLE: {u16 version=1; u16 count} + count GUIDs."""
    # UEFI 2.10 4.6.5.
    layout = th.CONFORMANCE_PROFILES_HEADER
    head = _read(read, addr, 0, layout.size)
    if head is None:
        return _missing("conformance profiles header", 0, layout.size)
    h = layout.unpack_from(head)
    if h.version != 1:
        return SizeResult(None, f"version {h.version}, expected 1")
    count = h.number_of_profiles
    return SizeResult(layout.size + 16 * count, f"4 + {count} profile GUIDs")


_DXE_SIG = b"DXE_SERV"


def dxe_services_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """DXE services table: EFI_TABLE_HEADER signature ``DXE_SERV``, HeaderSize (u32 at 12)."""
    # PI 1.8 vol 2 9.1 (DXE_SERVICES); UEFI 2.10 4.2 (HeaderSize covers the whole table).
    need = TABLE_HEADER_LAYOUT.end_of("header_size")
    head = _read(read, addr, 0, need)
    if head is None:
        return _missing("table header", 0, need)
    if head[:8] != _DXE_SIG:
        return SizeResult(None, f"bad signature {head[:8]!r}, expected 'DXE_SERV'")
    (size,) = TABLE_HEADER_LAYOUT.values(head, "header_size")
    if size < TABLE_HEADER_SIZE or size > MAX_HEADER_LENGTH:
        return SizeResult(None, f"HeaderSize {size} is not plausible")
    return SizeResult(size, "EFI_TABLE_HEADER.HeaderSize")


# --------------------------------------------------------------------------------------------
# walks


def _walk_bound(limit: int | None) -> int:
    return MAX_WALK_BYTES if limit is None else min(limit, MAX_WALK_BYTES)


_HOB_HANDOFF = 0x0001
_HOB_END = 0xFFFF
_HOB_NEED = th.HOB_HEADER.end_of("hob_length")  # the walk reads type and length only


def hob_list_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """PI HOB list: walk {u16 type; u16 length; u32 reserved} headers to END_OF_HOB_LIST."""
    # PI 1.8 vol 3 5.2-5.3; edk2 MdePkg/Include/Pi/PiHob.h (PHIT first, type 0xFFFF last).
    bound = _walk_bound(limit)
    off = 0
    for index in range(MAX_WALK_RECORDS):
        head = _read(read, addr, off, _HOB_NEED)
        if head is None:
            return _missing(f"HOB {index} header", off, _HOB_NEED)
        hob_type, length = th.HOB_HEADER.values(head, "hob_type", "hob_length")
        if index == 0 and hob_type != _HOB_HANDOFF:
            return SizeResult(None, f"first HOB has type {hob_type:#06x}, not the PHIT (1)")
        if length < th.HOB_HEADER.size:
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


def memory_type_info_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """edk2 memory type information: {u32 Type; u32 NumberOfPages}[] up to the EfiMaxMemoryType
    terminator (16 in current edk2, 15 before EfiUnacceptedMemoryType was added)."""
    # edk2 MdeModulePkg/Include/Guid/MemoryTypeInformation.h; OvmfPkg PlatformPei ends the
    # array with {EfiMaxMemoryType, 0}. A type-15 entry with pages is read as Unaccepted.
    step = th.MEMORY_TYPE_INFORMATION.size
    for index in range(_MEMTYPE_INFO_MAX):
        raw = _read(read, addr, step * index, step)
        if raw is None:
            return _missing(f"entry {index}", step * index, step)
        entry = th.MEMORY_TYPE_INFORMATION.unpack_from(raw)
        mem_type, pages = entry.type, entry.number_of_pages
        if mem_type >= 16 or (mem_type == 15 and pages == 0):
            return SizeResult(step * (index + 1), f"{index} entries + terminator (type {mem_type})")
    return SizeResult(None, f"no terminator within {_MEMTYPE_INFO_MAX} entries")


def image_exec_info_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
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
    step = th.IMAGE_EXECUTION_INFO_HEAD.size
    for index in range(count):
        entry = _read(read, addr, off, step)
        if entry is None:
            return _missing(f"image {index} header", off, step)
        info_size = th.IMAGE_EXECUTION_INFO_HEAD.unpack_from(entry).info_size
        if info_size < step:
            return SizeResult(None, f"image {index} InfoSize {info_size} is below 8")
        off += info_size
        if off > bound:
            return SizeResult(None, f"walk passes {_bound_name(limit, off)} at image {index}")
    return SizeResult(off, f"8 + {count} image records walked")


_NODE = th.MEMRESERVE_NODE
_RESERVED_ENTRY = 16  # struct linux_efi_memreserve entry {phys_addr_t base; phys_addr_t size}


def memreserve_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
    """Linux MEMRESERVE: the root node, 16 + 16 x size; the reason counts the whole list."""
    # Linux include/linux/efi.h struct linux_efi_memreserve; efi.c efi_config_parse_tables
    # walks node->next from the root and memblock_reserves each node (struct_size) and its
    # count entries. Only the root is the configuration table; later nodes are separate pages.
    head = _read(read, addr, 0, _NODE.size)
    if head is None:
        return _missing("MEMRESERVE root node", 0, _NODE.size)
    first = _NODE.unpack_from(head)
    size, count, nxt = first.size, first.count, first.next
    if size < 0:
        return SizeResult(None, f"root node size {size} is negative")
    root = _NODE.size + _RESERVED_ENTRY * size
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
        raw = _read(read, nxt, 0, _NODE.size)
        if raw is None:
            notes.append(f"node at {nxt:#x}: {BYTES_NOT_AVAILABLE}")
            break
        node = _NODE.unpack_from(raw)
        if node.size < 0:
            notes.append(f"node at {nxt:#x} has negative size {node.size}")
            break
        nodes += 1
        total += _NODE.size + _RESERVED_ENTRY * node.size
        nxt = node.next
    notes.append(f"list: {nodes} node(s), {total} bytes of nodes in all")
    return SizeResult(root, "; ".join(notes))


_MOK_ENTRY_HEADER = th.MOK_VARIABLE_HEAD.size  # 264: char name[256]; u64 data_size
_MOK_SIZE_AT = th.MOK_VARIABLE_HEAD.offsets["data_size"]


def mokvar_rule(read: Reader, addr: int, limit: int | None) -> SizeResult:
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
        field = _read(read, addr, off + _MOK_SIZE_AT, 8)
        if first is None or field is None:
            return _missing("MOK entry", off, _MOK_ENTRY_HEADER)
        (data_size,) = _U64.unpack(field)
        if first[0] == 0:
            if data_size != 0:
                return SizeResult(None, f"entry at +{off:#x} has an empty name but data")
            return SizeResult(off + _MOK_ENTRY_HEADER, "entries walked to the sentinel")
        off += _MOK_ENTRY_HEADER + data_size
    return SizeResult(None, f"no sentinel within {MAX_WALK_RECORDS} entries")
