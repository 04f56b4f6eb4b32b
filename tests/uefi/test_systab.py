"""Tests for efihandoff.uefi.systab: golden bytes written by hand from UEFI 2.10 section 4."""

from __future__ import annotations

import contextlib
import mmap
import tracemalloc
import zlib
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.errors import ParseError
from efihandoff.findings import Severity
from efihandoff.uefi import systab
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.systab import (
    CONFIG_TABLE_SIZE_32,
    CONFIG_TABLE_SIZE_64,
    EFI_BOOT_SERVICES_SIGNATURE,
    EFI_RUNTIME_SERVICES_SIGNATURE,
    EFI_SYSTEM_TABLE_SIGNATURE,
    FINDING_CODES,
    SYSTEM_TABLE_SIZE_32,
    SYSTEM_TABLE_SIZE_64,
    TABLE_HEADER_SIZE,
    ConfigurationTable,
    SystemTable,
    TableHeader,
    build_config_tables,
    find_system_table,
    linux_report_header,
    parse_config_tables,
    read_ucs2,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- golden vectors, composed field by field -------------------------------------------------

# 64-bit EFI_SYSTEM_TABLE, CRC32 field zero (filled in by _with_crc below).
ST64_NO_CRC = bytes.fromhex(
    "4942492053595354"  # Signature "IBI SYST"
    "46000200"  # Revision 0x00020046 (2.70)
    "78000000"  # HeaderSize 120
    "00000000"  # CRC32 (zero while computing)
    "00000000"  # Reserved
    "18106e7f00000000"  # FirmwareVendor 0x7f6e1018
    "00000100"  # FirmwareRevision 0x00010000
    "00000000"  # padding
    "982b1a7e00000000"  # ConsoleInHandle 0x7e1a2b98
    "00301a7e00000000"  # ConIn 0x7e1a3000
    "18411a7e00000000"  # ConsoleOutHandle 0x7e1a4118
    "00501a7e00000000"  # ConOut 0x7e1a5000
    "20621a7e00000000"  # StandardErrorHandle 0x7e1a6220
    "00701a7e00000000"  # StdErr 0x7e1a7000
    "98eba07f00000000"  # RuntimeServices 0x7fa0eb98
    "a0c7b17f00000000"  # BootServices 0x7fb1c7a0
    "0d00000000000000"  # NumberOfTableEntries 13
    "18e09e7f00000000"  # ConfigurationTable 0x7f9ee018
)

# 32-bit EFI_SYSTEM_TABLE (Linux efi_system_table_32_t: every pointer u32).
ST32_NO_CRC = bytes.fromhex(
    "4942492053595354"  # Signature
    "1f000200"  # Revision 0x0002001f (2.31)
    "48000000"  # HeaderSize 72
    "00000000"  # CRC32
    "00000000"  # Reserved
    "18106e3f"  # FirmwareVendor 0x3f6e1018
    "00000100"  # FirmwareRevision 0x00010000
    "982b1a3e"  # ConsoleInHandle
    "00301a3e"  # ConIn
    "18411a3e"  # ConsoleOutHandle
    "00501a3e"  # ConOut
    "20621a3e"  # StandardErrorHandle
    "00701a3e"  # StdErr
    "98eba03f"  # RuntimeServices
    "a0c7b13f"  # BootServices
    "09000000"  # NumberOfTableEntries 9
    "18e09e3f"  # ConfigurationTable 0x3f9ee018
)

ESRT_GUID_BYTES = bytes.fromhex("63 a2 22 b1 61 36 68 4f 99 29 78 f8 b0 d6 21 80")  # facts 1.3
ACPI20_GUID_BYTES = bytes.fromhex("71 e8 68 88 f1 e4 d3 11 bc 22 00 80 c7 3c 88 81")

CT64 = (
    ESRT_GUID_BYTES
    + bytes.fromhex("18503a7f00000000")  # table 0x7f3a5018
    + ACPI20_GUID_BYTES
    + bytes.fromhex("14e0b77f00000000")  # table 0x7fb7e014
)
CT32 = (
    ESRT_GUID_BYTES
    + bytes.fromhex("18503a3f")  # table 0x3f3a5018
    + ACPI20_GUID_BYTES
    + bytes.fromhex("14e0b73f")  # table 0x3fb7e014
)


def _with_crc(raw: bytes) -> bytes:
    """Fill the CRC32 field: zlib.crc32 over the bytes written with the field zero."""
    assert raw[16:20] == b"\0\0\0\0"
    return raw[:16] + zlib.crc32(raw).to_bytes(4, "little") + raw[20:]


ST64 = _with_crc(ST64_NO_CRC)
ST32 = _with_crc(ST32_NO_CRC)


def test_sizes_and_signatures():
    assert (TABLE_HEADER_SIZE, SYSTEM_TABLE_SIZE_64, SYSTEM_TABLE_SIZE_32) == (24, 120, 72)
    assert (CONFIG_TABLE_SIZE_64, CONFIG_TABLE_SIZE_32) == (24, 20)
    assert len(ST64) == 120 and len(ST32) == 72
    assert EFI_SYSTEM_TABLE_SIGNATURE.to_bytes(8, "little") == b"IBI SYST"
    assert EFI_BOOT_SERVICES_SIGNATURE.to_bytes(8, "little") == b"BOOTSERV"
    assert EFI_RUNTIME_SERVICES_SIGNATURE.to_bytes(8, "little") == b"RUNTSERV"


def test_parse_golden_64():
    t = SystemTable.parse(ST64)
    assert t.bits == 64
    crc = zlib.crc32(ST64_NO_CRC)
    assert t.hdr == TableHeader(EFI_SYSTEM_TABLE_SIGNATURE, 0x00020046, 120, crc)
    assert t.fw_vendor == 0x7F6E1018
    assert t.fw_revision == 0x00010000
    assert (t.con_in_handle, t.con_in) == (0x7E1A2B98, 0x7E1A3000)
    assert (t.con_out_handle, t.con_out) == (0x7E1A4118, 0x7E1A5000)
    assert (t.stderr_handle, t.stderr) == (0x7E1A6220, 0x7E1A7000)
    assert (t.runtime, t.boottime) == (0x7FA0EB98, 0x7FB1C7A0)
    assert (t.nr_tables, t.linux_nr_tables, t.tables) == (13, 13, 0x7F9EE018)
    assert t.build() == ST64
    assert SystemTable.crc_ok(ST64)
    assert not SystemTable.crc_ok(ST64_NO_CRC)
    assert t.validate(ST64) == []


def test_parse_golden_32():
    t = SystemTable.parse(ST32, bits=32)
    assert t.hdr.header_size == 72 and t.hdr.revision == 0x0002001F
    assert t.fw_vendor == 0x3F6E1018
    assert (t.con_in_handle, t.con_in, t.con_out_handle, t.con_out) == (
        0x3E1A2B98,
        0x3E1A3000,
        0x3E1A4118,
        0x3E1A5000,
    )
    assert (t.stderr_handle, t.stderr, t.runtime, t.boottime) == (
        0x3E1A6220,
        0x3E1A7000,
        0x3FA0EB98,
        0x3FB1C7A0,
    )
    assert (t.nr_tables, t.tables) == (9, 0x3F9EE018)
    assert t.build() == ST32
    assert t.validate(ST32) == []
    # The 32-bit bytes read as a 64-bit table are the wrong size.
    with pytest.raises(ParseError):
        SystemTable.parse(ST32, bits=64)


def test_parse_at_offset():
    buf = b"\xaa" * 40 + ST64 + b"\xbb" * 3
    assert SystemTable.parse(buf, 40) == SystemTable.parse(ST64)


def test_padding_is_not_kept():
    raw = bytearray(ST64_NO_CRC)
    raw[36:40] = b"\x01\x02\x03\x04"
    t = SystemTable.parse(bytes(raw))
    assert t.build(fix_crc=False) == ST64_NO_CRC


def test_build_crc_covers_header_size_bytes():
    t = SystemTable.parse(ST64)
    short = replace(t, hdr=TableHeader(t.hdr.signature, t.hdr.revision, 64, 0))
    raw = short.build()
    expected = zlib.crc32(raw[:16] + b"\0\0\0\0" + raw[20:64])
    assert int.from_bytes(raw[16:20], "little") == expected
    assert SystemTable.crc_ok(raw)


def _fields(t: SystemTable) -> dict:
    return {name: getattr(t, name) for name in SystemTable.__dataclass_fields__}


def test_revision_text():
    assert TableHeader(0, 0x00020046, 0, 0).revision_text == "2.70"
    assert TableHeader(0, 0x00010002, 0, 0).revision_text == "1.02"
    assert TableHeader(0, 0x00020064, 0, 0).revision_text == "2.100"


@pytest.mark.parametrize(
    ("revision", "text"),
    [
        (0x00020046, "2.7"),  # 2.70
        (0x0002001F, "2.3.1"),  # 2.31
        (0x00020064, "2.10"),  # 2.100
        (0x0001000A, "1.1"),  # 1.10
        (0x00010002, "1.0.2"),  # 1.02
        (0x00020000, "2.0"),
    ],
)
def test_linux_revision_text(revision, text):
    assert TableHeader(0, revision, 0, 0).linux_revision_text == text


def test_linux_report_header():
    hdr = TableHeader(EFI_SYSTEM_TABLE_SIGNATURE, 0x00020046, 120, 0)
    assert linux_report_header(hdr, "EDK II") == "efi: EFI v2.7 by EDK II"
    assert linux_report_header(hdr, None) == "efi: EFI v2.7 by unknown"
    hdr31 = TableHeader(EFI_SYSTEM_TABLE_SIGNATURE, 0x0002001F, 120, 0)
    assert linux_report_header(hdr31, "American Megatrends") == (
        "efi: EFI v2.3.1 by American Megatrends"
    )
    # Linux keeps 99 code units; each becomes its low byte; a zero low byte ends the string.
    assert linux_report_header(hdr, "x" * 150) == "efi: EFI v2.7 by " + "x" * 99
    assert linux_report_header(hdr, "Ab\u0100cd") == "efi: EFI v2.7 by Ab"
    assert linux_report_header(hdr, "\u00e9\u0141") == "efi: EFI v2.7 by \u00e9A"


def test_read_ucs2():
    edk = "EDK II".encode("utf-16-le") + b"\0\0"
    assert read_ucs2(edk, 0) == "EDK II"
    assert read_ucs2(b"\xff" * 5 + edk, 5) == "EDK II"
    assert read_ucs2(b"\0\0", 0) == ""
    # A 00 00 pair straddling two code units is not the terminator.
    assert read_ucs2(bytes.fromhex("4100 0042 0000"), 0) == "A\u4200"
    # Lone surrogate becomes U+FFFD.
    assert read_ucs2(bytes.fromhex("00d8 0000"), 0) == "\ufffd"
    # Bound reached without NUL: cut at the bound.
    assert read_ucs2("ABCDEFGH".encode("utf-16-le"), 0, max_chars=4) == "ABCD"
    with pytest.raises(ParseError):
        read_ucs2("ABC".encode("utf-16-le"), 0)  # runs off the end
    with pytest.raises(ParseError):
        read_ucs2(b"A\0B", 0)  # odd tail
    with pytest.raises(ParseError) as exc:
        read_ucs2(edk, 100)
    assert exc.value.offset == 100
    with pytest.raises(ParseError):
        read_ucs2(edk, -1)


# --- configuration tables ---------------------------------------------------------------------

ESRT_GUID = Guid.parse("b122a263-3661-4f68-9929-78f8b0d62180")
ACPI20_GUID = Guid.parse("8868e871-e4f1-11d3-bc22-0080c73c8881")


def test_config_tables_golden():
    expected64 = (
        ConfigurationTable(ESRT_GUID, 0x7F3A5018),
        ConfigurationTable(ACPI20_GUID, 0x7FB7E014),
    )
    assert parse_config_tables(CT64, 2) == expected64
    assert build_config_tables(expected64) == CT64
    expected32 = (
        ConfigurationTable(ESRT_GUID, 0x3F3A5018),
        ConfigurationTable(ACPI20_GUID, 0x3FB7E014),
    )
    assert parse_config_tables(CT32, 2, bits=32) == expected32
    assert build_config_tables(expected32, bits=32) == CT32
    assert parse_config_tables(b"\0" * 7 + CT64, 1, offset=7) == expected64[:1]
    assert ConfigurationTable.unpack(CT64, 24) == expected64[1]
    assert ConfigurationTable.unpack(CT32, 20, bits=32) == expected32[1]
    assert parse_config_tables(b"", 0) == ()


def test_config_tables_refuse_before_looping():
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as exc:
            parse_config_tables(CT64, 0xFFFFFFFF, offset=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.offset == 0
    assert peak < 1 << 20
    with pytest.raises(ParseError):
        parse_config_tables(CT64, 3)
    with pytest.raises(ParseError):
        parse_config_tables(CT64, -1)
    with pytest.raises(ParseError):
        parse_config_tables(CT64, 1, offset=len(CT64) + 1)


def test_config_table_32_pointer_range():
    with pytest.raises(ValueError):
        ConfigurationTable(ESRT_GUID, 1 << 32).pack(bits=32)
    with pytest.raises(ValueError):
        parse_config_tables(CT64, 1, bits=16)


# --- validation ------------------------------------------------------------------------------


def _st(**changes) -> SystemTable:
    base = SystemTable.parse(ST64)
    fields = _fields(base)
    hdr_changes = {k[4:]: changes.pop(k) for k in list(changes) if k.startswith("hdr_")}
    if hdr_changes:
        h = base.hdr
        fields["hdr"] = TableHeader(
            hdr_changes.get("signature", h.signature),
            hdr_changes.get("revision", h.revision),
            hdr_changes.get("header_size", h.header_size),
            h.crc32,
            hdr_changes.get("reserved", h.reserved),
        )
    fields.update(changes)
    return SystemTable(**fields)


def _codes(findings) -> set[str]:
    return {f.code for f in findings}


CORRUPT_ST64 = ST64[:50] + bytes([ST64[50] ^ 0x01]) + ST64[51:]

VALIDATION_CASES = [
    ("systab.signature", _st(hdr_signature=0x1122334455667788), None, Severity.ERROR),
    ("systab.header-size", _st(hdr_header_size=100), None, Severity.ERROR),
    ("systab.header-size", _st(hdr_header_size=128), None, Severity.WARNING),
    ("systab.crc", SystemTable.parse(CORRUPT_ST64), CORRUPT_ST64, Severity.ERROR),
    ("systab.reserved", _st(hdr_reserved=7), None, Severity.WARNING),
    ("systab.revision", _st(hdr_revision=0x00030000), None, Severity.ERROR),
    ("systab.revision", _st(hdr_revision=0x00000063), None, Severity.ERROR),
    ("systab.nr-tables-large", _st(nr_tables=1025), None, Severity.WARNING),
    ("systab.nr-tables-truncated", _st(nr_tables=(1 << 32) | 5), None, Severity.WARNING),
    ("systab.tables-null", _st(tables=0), None, Severity.ERROR),
]


@pytest.mark.parametrize(("code", "table", "raw", "severity"), VALIDATION_CASES)
def test_validation_codes(code, table, raw, severity):
    findings = table.validate(raw)
    hits = [f for f in findings if f.code == code]
    assert hits, findings
    assert hits[0].severity == severity
    # Each case triggers only its own code (nr-tables-truncated also exceeds 1024).
    extra = _codes(findings) - {code, "systab.nr-tables-large"}
    assert not extra


def test_every_code_is_tested():
    assert {case[0] for case in VALIDATION_CASES} == set(FINDING_CODES)


def test_clean_tables_have_no_findings():
    assert SystemTable.parse(ST64).validate(ST64) == []
    assert SystemTable.parse(ST32, bits=32).validate(ST32) == []
    assert _st(nr_tables=1024).validate() == []
    assert _st(nr_tables=0, tables=0).validate() == []
    assert _st(hdr_revision=0x0001000A).validate() == []


def test_linux_nr_tables_low_bits():
    assert _st(nr_tables=(1 << 32) | 5).linux_nr_tables == 5


# --- find_system_table ----------------------------------------------------------------------


def _haystack() -> bytearray:
    buf = bytearray(b"\x5a" * 8192)
    buf[0x105 : 0x105 + 120] = ST64  # unaligned: skipped
    buf[0x400 : 0x400 + 120] = CORRUPT_ST64  # bad CRC: skipped
    buf[0x600:0x608] = b"IBI SYST"  # signature alone: skipped
    buf[0x808 : 0x808 + 120] = ST64  # the real one
    buf[0x1000 : 0x1000 + 72] = ST32  # 32-bit, not a 64-bit table
    buf[8192 - 16 : 8192 - 8] = b"IBI SYST"  # too close to the end
    return buf


def test_find_system_table_bytes():
    buf = bytes(_haystack())
    assert list(find_system_table(buf)) == [0x808]
    assert list(find_system_table(buf, start=0x809)) == []
    assert list(find_system_table(buf, start=0x808)) == [0x808]
    assert list(find_system_table(buf, bits=32)) == [0x1000]


def test_find_system_table_mmap(tmp_path):
    path = tmp_path / "dump.bin"
    path.write_bytes(bytes(_haystack()))
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert list(find_system_table(mm)) == [0x808]
        # No exported buffer is left behind: the map can close.


def test_find_system_table_memoryview_across_windows():
    chunk = systab._SCAN_CHUNK
    buf = bytearray(3 * chunk)
    buf[chunk - 8 : chunk + 112] = ST64
    buf[2 * chunk : 2 * chunk + 120] = ST64
    view = memoryview(buf)
    assert list(find_system_table(view)) == [chunk - 8, 2 * chunk]
    # A signature straddling a window edge is still found by the windowed scan.
    buf2 = bytearray(2 * chunk)
    buf2[chunk - 3 : chunk + 5] = b"IBI SYST"
    assert systab._find_sig(memoryview(buf2), 0) == chunk - 3


# --- round trips -----------------------------------------------------------------------------

u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
headers = st.builds(TableHeader, u64, u32, u32, u32, u32)


@SETTINGS
@given(headers)
def test_header_round_trip(h):
    assert TableHeader.unpack(h.pack()) == h


@st.composite
def system_tables(draw, bits=None):
    bits = draw(st.sampled_from([32, 64])) if bits is None else bits
    ptr = u64 if bits == 64 else u32
    return SystemTable(
        draw(headers),
        draw(ptr),
        draw(u32),
        *[draw(ptr) for _ in range(10)],
        bits=bits,
    )


@SETTINGS
@given(system_tables())
def test_system_table_round_trip(t):
    raw = t.build(fix_crc=False)
    assert len(raw) == t.size
    assert SystemTable.parse(raw, bits=t.bits) == t


@SETTINGS
@given(system_tables(), st.data())
def test_build_fix_crc_is_checked_by_crc_ok(t, data):
    size = data.draw(st.integers(TABLE_HEADER_SIZE, t.size))
    h = t.hdr
    t2 = SystemTable(**{**_fields(t), "hdr": TableHeader(h.signature, h.revision, size, 0, 0)})
    raw = t2.build()
    assert SystemTable.crc_ok(raw)
    assert SystemTable.parse(raw, bits=t.bits).hdr.crc32 == int.from_bytes(raw[16:20], "little")


@SETTINGS
@given(st.lists(st.builds(ConfigurationTable, st.builds(Guid, st.integers(0, 2**128 - 1)), u64)))
def test_config_tables_round_trip_64(entries):
    raw = build_config_tables(entries)
    assert len(raw) == 24 * len(entries)
    assert parse_config_tables(raw, len(entries)) == tuple(entries)


@SETTINGS
@given(st.lists(st.builds(ConfigurationTable, st.builds(Guid, st.integers(0, 2**128 - 1)), u32)))
def test_config_tables_round_trip_32(entries):
    raw = build_config_tables(entries, bits=32)
    assert parse_config_tables(raw, len(entries), bits=32) == tuple(entries)


@SETTINGS
@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=80))
def test_read_ucs2_round_trip(text):
    raw = text.encode("utf-16-le") + b"\0\0"
    assert read_ucs2(raw, 0) == text


# --- hostile input ---------------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=300), st.integers(-8, 310), st.sampled_from([32, 64]))
def test_random_bytes_only_parse_error(data, offset, bits):
    for call in (
        lambda: SystemTable.parse(data, offset, bits=bits).validate(data[max(offset, 0) :]),
        lambda: TableHeader.unpack(data, offset),
        lambda: ConfigurationTable.unpack(data, offset, bits=bits),
        lambda: read_ucs2(data, offset, 64),
    ):
        with contextlib.suppress(ParseError):
            call()
    assert SystemTable.crc_ok(data) in (True, False)


@SETTINGS
@given(st.binary(max_size=300), st.integers(0, 1 << 40), st.sampled_from([32, 64]))
def test_random_counts_only_parse_error(data, count, bits):
    try:
        out = parse_config_tables(data, count, bits=bits)
    except ParseError:
        return
    assert len(out) == count


@pytest.mark.parametrize(("raw", "bits"), [(ST64, 64), (ST32, 32)])
def test_truncation_at_every_length(raw, bits):
    for n in range(len(raw)):
        with pytest.raises(ParseError):
            SystemTable.parse(raw[:n], bits=bits)
        assert not SystemTable.crc_ok(raw[:n])
    for n in range(len(CT64)):
        with pytest.raises(ParseError):
            parse_config_tables(CT64[:n], 2)


@SETTINGS
@given(st.integers(0, 119), st.integers(1, 255))
def test_any_single_byte_change_breaks_the_crc(pos, xor):
    raw = bytearray(ST64)
    raw[pos] ^= xor
    mutated = bytes(raw)
    assert not SystemTable.crc_ok(mutated)
    assert list(find_system_table(mutated)) == []
    t = SystemTable.parse(mutated)
    assert all(f.code in FINDING_CODES for f in t.validate(mutated))


@SETTINGS
@given(st.binary(min_size=0, max_size=2048), st.lists(st.integers(0, 255), max_size=8))
def test_find_on_random_bytes(noise, where):
    buf = bytearray(noise)
    for w in where:  # sprinkle signatures so the verification path runs
        pos = (w * 8) % max(len(buf), 1)
        buf[pos : pos + 8] = b"IBI SYST"
    for off in find_system_table(bytes(buf)):
        assert off % 8 == 0
        assert SystemTable.crc_ok(bytes(buf[off:]))
