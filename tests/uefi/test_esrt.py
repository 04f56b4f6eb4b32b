"""Tests for efihandoff.uefi.esrt: golden bytes written by hand from UEFI 2.10 section 23.4."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.errors import ParseError
from efihandoff.findings import Severity
from efihandoff.rules.esrt import FINDING_CODES, entry_findings, esrt_findings, header_findings
from efihandoff.rules.linux import LINUX_MAX_ENTRIES
from efihandoff.uefi.esrt import (
    ESRT_ENTRY_SIZE,
    ESRT_FIRMWARE_RESOURCE_VERSION,
    ESRT_GUID,
    ESRT_HEADER_SIZE,
    PARSE_MAX_ENTRIES,
    VENDOR_RANGE_MAX,
    VENDOR_RANGE_MIN,
    CapsuleFlags,
    Esrt,
    EsrtEntry,
    EsrtHeader,
    FwType,
    LastAttemptStatus,
    describe_capsule_flags,
    describe_last_attempt_status,
    esrt_size,
)
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryAttribute, MemoryType

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- golden vectors --------------------------------------------------------------------------

# Entries from the fwupd fixture plugins/uefi-capsule/tests/efi/esrt/entries (facts 6.3).
FWUPD_ESRT = bytes.fromhex(
    # header
    "02000000"  # FwResourceCount 2
    "02000000"  # FwResourceCountMax 2
    "0100000000000000"  # FwResourceVersion 1
    # entry0: ddc0ee61-e7f0-4e7d-acc5-c070a398838e
    "61eec0dd"  # Data1 u32 LE
    "f0e7"  # Data2 u16 LE
    "7d4e"  # Data3 u16 LE
    "acc5c070a398838e"  # Data4 verbatim
    "01000000"  # FwType 1 (system firmware)
    "32000100"  # FwVersion 65586 = 0x00010032
    "2e000100"  # LowestSupportedFwVersion 65582 = 0x0001002e
    "fe000000"  # CapsuleFlags 0xfe
    "00e01901"  # LastAttemptVersion 18472960 = 0x0119e000
    "01000000"  # LastAttemptStatus 1 (error unsuccessful)
    # entry1: 671d19d0-d43c-4852-98d9-1ce16f9967e4
    "d0191d67"  # Data1 u32 LE
    "3cd4"  # Data2 u16 LE
    "5248"  # Data3 u16 LE
    "98d91ce16f9967e4"  # Data4 verbatim
    "02000000"  # FwType 2 (device firmware)
    "610d32b8"  # FwVersion 3090287969 = 0xb8320d61
    "01000000"  # LowestSupportedFwVersion 1
    "10800000"  # CapsuleFlags 0x8010
    "00000000"  # LastAttemptVersion 0
    "00000000"  # LastAttemptStatus 0
)

ENTRY0 = EsrtEntry(
    Guid.parse("ddc0ee61-e7f0-4e7d-acc5-c070a398838e"), 1, 65586, 65582, 0xFE, 18472960, 1
)
ENTRY1 = EsrtEntry(
    Guid.parse("671d19d0-d43c-4852-98d9-1ce16f9967e4"), 2, 3090287969, 1, 0x8010, 0, 0
)
CLEAN = Esrt(2, 2, 1, (ENTRY0, ENTRY1))


def test_constants():
    assert ESRT_GUID.to_bytes() == bytes.fromhex("63 a2 22 b1 61 36 68 4f 99 29 78 f8 b0 d6 21 80")
    assert str(ESRT_GUID) == "b122a263-3661-4f68-9929-78f8b0d62180"
    assert (ESRT_HEADER_SIZE, ESRT_ENTRY_SIZE, ESRT_FIRMWARE_RESOURCE_VERSION) == (16, 40, 1)
    assert LINUX_MAX_ENTRIES == 128
    assert (esrt_size(0), esrt_size(1), esrt_size(2)) == (16, 56, 96)
    assert [int(v) for v in FwType] == [0, 1, 2, 3]
    assert [int(v) for v in LastAttemptStatus] == list(range(9))
    assert LastAttemptStatus(8).name == "ERROR_UNSATISFIED_DEPENDENCIES"
    assert (VENDOR_RANGE_MIN, VENDOR_RANGE_MAX) == (0x1000, 0x4000)
    assert (
        CapsuleFlags.PERSIST_ACROSS_RESET,
        CapsuleFlags.POPULATE_SYSTEM_TABLE,
        CapsuleFlags.INITIATE_RESET,
    ) == (0x10000, 0x20000, 0x40000)


def test_parse_fwupd_golden():
    assert len(FWUPD_ESRT) == 96
    t = Esrt.parse(FWUPD_ESRT)
    assert (t.fw_resource_count, t.fw_resource_count_max, t.fw_resource_version) == (2, 2, 1)
    e0, e1 = t.entries
    assert str(e0.fw_class) == "ddc0ee61-e7f0-4e7d-acc5-c070a398838e"
    assert (e0.fw_type, e0.fw_version, e0.lowest_supported_fw_version) == (1, 65586, 65582)
    assert (e0.capsule_flags, e0.last_attempt_version, e0.last_attempt_status) == (
        0xFE,
        18472960,
        1,
    )
    assert str(e1.fw_class) == "671d19d0-d43c-4852-98d9-1ce16f9967e4"
    assert (e1.fw_type, e1.fw_version, e1.lowest_supported_fw_version) == (2, 3090287969, 1)
    assert (e1.capsule_flags, e1.last_attempt_version, e1.last_attempt_status) == (0x8010, 0, 0)
    assert t == CLEAN
    assert t.build() == FWUPD_ESRT
    assert t.size == 96 and t.header.size == 96
    assert t.header == EsrtHeader(2, 2, 1)
    assert Esrt.parse_header(FWUPD_ESRT) == EsrtHeader(2, 2, 1)
    assert EsrtEntry.unpack(FWUPD_ESRT, 56) == ENTRY1
    assert ENTRY0.pack() == FWUPD_ESRT[16:56]


def test_parse_at_offset_and_limit():
    buf = b"\xee" * 24 + FWUPD_ESRT + b"\xee" * 5
    assert Esrt.parse(buf, 24) == CLEAN
    assert Esrt.parse(buf, 24, limit=96) == CLEAN
    with pytest.raises(ParseError) as exc:
        Esrt.parse(buf, 24, limit=95)
    assert exc.value.offset == 24
    for bad_limit in (-1, 0, 15):
        with pytest.raises(ParseError):
            Esrt.parse(buf, 24, limit=bad_limit)
    for bad_offset in (-1, len(buf) + 1):
        with pytest.raises(ParseError):
            Esrt.parse(buf, bad_offset)


def test_build_writes_fields_as_given():
    # Count 5 but two entries: the header says 5, the bytes hold two.
    t = Esrt(5, 7, 1, (ENTRY0, ENTRY1))
    raw = t.build()
    assert raw[:16] == bytes.fromhex("05000000 07000000 0100000000000000")
    assert len(raw) == 96 and t.size == esrt_size(5)
    with pytest.raises(ParseError):
        Esrt.parse(raw)
    # Count 1 with two entries: parse reads exactly one.
    assert Esrt.parse(Esrt(1, 2, 1, (ENTRY0, ENTRY1)).build()).entries == (ENTRY0,)


def test_of_builds_consistent_table():
    assert Esrt.of([ENTRY0, ENTRY1]) == CLEAN
    assert Esrt.of([ENTRY0], count_max=4) == Esrt(1, 4, 1, (ENTRY0,))


def test_huge_count_is_refused_without_allocating():
    raw = bytes.fromhex("ffffffff ffffffff 0100000000000000") + FWUPD_ESRT[16:56]
    assert len(raw) == 56
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as exc:
            Esrt.parse(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.offset == 0
    assert "4294967295" in str(exc.value)
    assert peak < 1 << 20


def test_count_above_parse_bound_is_refused_even_if_bytes_exist():
    count = PARSE_MAX_ENTRIES + 1
    raw = EsrtHeader(count, count, 1).pack() + ENTRY1.pack() * count
    with pytest.raises(ParseError):
        Esrt.parse(raw)
    assert len(Esrt.parse(raw, max_entries=count).entries) == count


def test_describe_last_attempt_status():
    assert describe_last_attempt_status(0) == "SUCCESS"
    assert describe_last_attempt_status(1) == "ERROR_UNSUCCESSFUL"
    assert describe_last_attempt_status(8) == "ERROR_UNSATISFIED_DEPENDENCIES"
    assert describe_last_attempt_status(9) == "invalid 0x9"
    assert describe_last_attempt_status(0xFFF) == "invalid 0xfff"
    assert describe_last_attempt_status(0x1000) == "vendor error 0x1000"
    assert describe_last_attempt_status(0x1234) == "vendor error 0x1234"
    assert describe_last_attempt_status(0x4000) == "vendor error 0x4000"
    assert describe_last_attempt_status(0x4001) == "invalid 0x4001"


def test_describe_capsule_flags():
    assert describe_capsule_flags(0) == []
    assert describe_capsule_flags(0xFE) == ["GUID-specific 0xfe"]
    assert describe_capsule_flags(0x8010) == ["GUID-specific 0x8010"]
    assert describe_capsule_flags(0x50000) == ["PERSIST_ACROSS_RESET", "INITIATE_RESET"]
    assert describe_capsule_flags(0x3001F) == [
        "GUID-specific 0x1f",
        "PERSIST_ACROSS_RESET",
        "POPULATE_SYSTEM_TABLE",
    ]
    assert describe_capsule_flags(0x80000000) == ["unknown 0x80000000"]


# --- validation ------------------------------------------------------------------------------


def _entry(i: int = 1, **changes) -> EsrtEntry:
    fields = {
        "fw_class": Guid(0x1000 + i),
        "fw_type": 2,
        "fw_version": 5,
        "lowest_supported_fw_version": 1,
        "capsule_flags": 0,
        "last_attempt_version": 0,
        "last_attempt_status": 0,
    }
    fields.update(changes)
    return EsrtEntry(**fields)


def _codes(findings) -> set[str]:
    return {f.code for f in findings}


BS = {"memory_type": MemoryType.EfiBootServicesData}
# (code, table, validate kwargs, severity, other codes the case is allowed to raise)
VALIDATION_CASES = [
    ("esrt.version", Esrt(2, 2, 2, (ENTRY0, ENTRY1)), {}, Severity.ERROR, set()),
    ("esrt.count-zero", Esrt(0, 1, 1, ()), {}, Severity.WARNING, {"esrt.no-entries"}),
    (
        "esrt.count-max-zero",
        Esrt.of([ENTRY0], count_max=0),
        {},
        Severity.WARNING,
        {"esrt.count-exceeds-max"},
    ),
    ("esrt.count-exceeds-max", Esrt(2, 1, 1, (ENTRY0, ENTRY1)), {}, Severity.WARNING, set()),
    (
        "esrt.count-too-large",
        Esrt.of([_entry(i) for i in range(129)]),
        {},
        Severity.ERROR,
        set(),
    ),
    ("esrt.header-does-not-fit", CLEAN, {"room": 15}, Severity.ERROR, set()),
    ("esrt.does-not-fit", CLEAN, {"room": 95}, Severity.ERROR, set()),
    ("esrt.does-not-fit", CLEAN, {"room": 16}, Severity.ERROR, set()),
    (
        "esrt.memory-type",
        CLEAN,
        {"memory_type": MemoryType.EfiConventionalMemory},
        Severity.ERROR,
        {"esrt.not-boot-services-data"},
    ),
    (
        "esrt.not-boot-services-data",
        CLEAN,
        {"memory_type": MemoryType.EfiRuntimeServicesData},
        Severity.INFO,
        set(),
    ),
    (
        "esrt.no-entries",
        Esrt(0, 1, 1, ()),
        {},
        Severity.WARNING,
        {"esrt.count-zero"},
    ),
    (
        "esrt.entry-count-mismatch",
        Esrt(5, 5, 1, (ENTRY0, ENTRY1)),
        {},
        Severity.ERROR,
        set(),
    ),
    ("esrt.entry.fw-type", Esrt.of([ENTRY0, _entry(fw_type=4)]), {}, Severity.WARNING, set()),
    (
        "esrt.entry.version-below-lowest",
        Esrt.of([ENTRY0, _entry(fw_version=3, lowest_supported_fw_version=4)]),
        {},
        Severity.WARNING,
        set(),
    ),
    (
        "esrt.entry.last-attempt-status",
        Esrt.of([ENTRY0, _entry(last_attempt_status=9)]),
        {},
        Severity.WARNING,
        set(),
    ),
    (
        "esrt.entry.last-attempt-status",
        Esrt.of([ENTRY0, _entry(last_attempt_status=0x4001)]),
        {},
        Severity.WARNING,
        set(),
    ),
    (
        "esrt.entry.zero-fw-class",
        Esrt.of([ENTRY0, _entry(fw_class=Guid(0))]),
        {},
        Severity.ERROR,
        set(),
    ),
    (
        "esrt.entry.duplicate-fw-class",
        Esrt.of([ENTRY0, _entry(fw_class=ENTRY0.fw_class)]),
        {},
        Severity.WARNING,
        set(),
    ),
]


@pytest.mark.parametrize(("code", "table", "kwargs", "severity", "allowed"), VALIDATION_CASES)
def test_validation_codes(code, table, kwargs, severity, allowed):
    findings = esrt_findings(table, **kwargs)
    hits = [f for f in findings if f.code == code]
    assert len(hits) == 1, findings
    assert hits[0].severity == severity
    assert _codes(findings) - {code} <= allowed


def test_every_code_is_tested():
    assert {case[0] for case in VALIDATION_CASES} == set(FINDING_CODES)
    assert len(FINDING_CODES) == len(set(FINDING_CODES))


def test_entry_messages_name_index_and_values():
    t = Esrt.of(
        [
            ENTRY0,
            _entry(fw_type=7, fw_version=3, lowest_supported_fw_version=9, last_attempt_status=10),
            _entry(2, fw_class=ENTRY0.fw_class),
        ]
    )
    by_code = {f.code: f.message for f in esrt_findings(t)}
    assert "entry 1" in by_code["esrt.entry.fw-type"] and "7" in by_code["esrt.entry.fw-type"]
    msg = by_code["esrt.entry.version-below-lowest"]
    assert "entry 1" in msg and "3" in msg and "9" in msg
    assert "entry 1" in by_code["esrt.entry.last-attempt-status"]
    assert "0xa" in by_code["esrt.entry.last-attempt-status"]
    dup = by_code["esrt.entry.duplicate-fw-class"]
    assert "entry 2" in dup and "entry 0" in dup and str(ENTRY0.fw_class) in dup
    assert "129" in esrt_findings(Esrt.of([_entry(i) for i in range(129)]))[0].message


def test_clean_tables_have_no_findings():
    assert esrt_findings(CLEAN) == []
    assert esrt_findings(CLEAN, room=96, **BS) == []
    assert esrt_findings(CLEAN, room=4096, **BS) == []
    assert esrt_findings(Esrt.of([_entry(i) for i in range(128)]), **BS) == []
    # Vendor-range statuses and the boundaries of the defined ones are fine.
    for status in (0, 8, VENDOR_RANGE_MIN, 0x2345, VENDOR_RANGE_MAX):
        assert esrt_findings(Esrt.of([_entry(last_attempt_status=status)])) == []
    # fw_version == lowest is fine; capacity above count is fine.
    table = Esrt.of([_entry(fw_version=4, lowest_supported_fw_version=4)], count_max=9)
    assert esrt_findings(table, room=56, **BS) == []


def test_linux_memory_rules():
    # The RUNTIME attribute makes Linux accept any type (Linux 6.3 efi_esrt_init).
    conventional, runtime = MemoryType.EfiConventionalMemory, MemoryAttribute.RUNTIME
    found = esrt_findings(CLEAN, memory_type=conventional, memory_attribute=runtime)
    assert _codes(found) == {"esrt.not-boot-services-data"}
    for accepted in (
        MemoryType.EfiRuntimeServicesData,
        MemoryType.EfiACPIReclaimMemory,
        MemoryType.EfiACPIMemoryNVS,
    ):
        found = esrt_findings(CLEAN, memory_type=accepted)
        assert _codes(found) == {"esrt.not-boot-services-data"}
    # An empty table needs only the header to fit.
    found = esrt_findings(Esrt(0, 1, 1, ()), room=16)
    assert _codes(found) == {"esrt.count-zero", "esrt.no-entries"}
    # Header-only validation works without entries (e.g. when parse refused the count).
    header = EsrtHeader(0xFFFFFFFF, 0xFFFFFFFF, 1)
    found = header_findings(header, room=4096, **BS)
    assert _codes(found) == {"esrt.count-too-large", "esrt.does-not-fit"}


# --- round trips -----------------------------------------------------------------------------

u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
guids = st.builds(Guid, st.integers(0, 2**128 - 1))
entries = st.builds(EsrtEntry, guids, u32, u32, u32, u32, u32, u32)
headers = st.builds(EsrtHeader, u32, u32, u64)


@SETTINGS
@given(entries)
def test_entry_round_trip(e):
    raw = e.pack()
    assert len(raw) == ESRT_ENTRY_SIZE
    assert EsrtEntry.unpack(raw) == e
    assert all(f.code in FINDING_CODES for f in entry_findings(e, 0))


@SETTINGS
@given(headers)
def test_header_round_trip(h):
    assert EsrtHeader.unpack(h.pack()) == h
    assert h.size == 16 + 40 * h.fw_resource_count


@SETTINGS
@given(st.lists(entries, max_size=20), u32, u64)
def test_table_round_trip(items, count_max, version):
    t = Esrt(len(items), count_max, version, tuple(items))
    raw = t.build()
    assert len(raw) == t.size
    assert Esrt.parse(raw) == t
    assert Esrt.parse(raw, limit=len(raw)) == t


@SETTINGS
@given(st.lists(entries, max_size=10), st.data())
def test_parse_reads_exactly_count_entries(items, data):
    count = data.draw(st.integers(0, len(items)))
    t = Esrt(count, count, 1, tuple(items))
    assert Esrt.parse(t.build()).entries == tuple(items[:count])


# --- hostile input ---------------------------------------------------------------------------


@SETTINGS
@given(
    st.binary(max_size=400),
    st.integers(-4, 410),
    st.one_of(st.none(), st.integers(-4, 500)),
)
def test_random_bytes_only_parse_error(data, offset, limit):
    for call in (
        lambda: Esrt.parse(data, offset, limit=limit),
        lambda: Esrt.parse_header(data, offset),
        lambda: EsrtEntry.unpack(data, offset),
    ):
        try:
            result = call()
        except ParseError:
            continue
        if isinstance(result, Esrt):
            assert len(result.entries) == result.fw_resource_count
            assert all(f.code in FINDING_CODES for f in esrt_findings(result, room=len(data)))


def test_truncation_at_every_length():
    for n in range(len(FWUPD_ESRT)):
        with pytest.raises(ParseError):
            Esrt.parse(FWUPD_ESRT[:n])
        with pytest.raises(ParseError):
            Esrt.parse(FWUPD_ESRT, limit=n)
        if n < 16:
            with pytest.raises(ParseError):
                Esrt.parse_header(FWUPD_ESRT[:n])
        if n < 40:
            with pytest.raises(ParseError):
                EsrtEntry.unpack(FWUPD_ESRT[16 : 16 + n])


@SETTINGS
@given(st.integers(0, 95), st.integers(1, 255))
def test_mutated_bytes(pos, xor):
    raw = bytearray(FWUPD_ESRT)
    raw[pos] ^= xor
    try:
        t = Esrt.parse(bytes(raw))
    except ParseError:
        assert pos < 4  # only a changed count can make the table not fit
        return
    assert t.build() == bytes(raw)[: t.size]
    assert all(f.code in FINDING_CODES for f in esrt_findings(t, room=96, **BS))


@SETTINGS
@given(u32, u32, u64, st.binary(max_size=200))
def test_any_header_is_bounded(count, count_max, version, tail):
    raw = EsrtHeader(count, count_max, version).pack() + tail
    try:
        t = Esrt.parse(raw)
    except ParseError as exc:
        assert exc.offset == 0
        assert esrt_size(count) > len(raw) or count > PARSE_MAX_ENTRIES
        return
    assert len(t.entries) == count
