"""Tests for efihandoff.uefi.memmap.

Golden bytes are composed by hand, field by field, from the EFI_MEMORY_DESCRIPTOR layout (facts
1.4); carve/lookup expectations are computed by hand from Linux's rules (facts 4.1, 4.4).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.errors import ParseError
from efihandoff.findings import Severity
from efihandoff.rules.linux import lookup_pre63
from efihandoff.uefi.memmap import (
    FINDING_CODES,
    ISA_MASK,
    LINUX_ATTR_MNEMONICS,
    MemoryAttribute,
    MemoryDescriptor,
    MemoryMap,
    MemoryType,
    attribute_names,
    carve,
    parse_type_name,
    split_count,
    type_name,
)

U64_MAX = (1 << 64) - 1
RUN = 0x8000000000000000
HYPO = settings(max_examples=200, deadline=None)

# -- golden bytes ----------------------------------------------------------------------------

# One descriptor, 40 bytes: EfiBootServicesData at 0x79a00000, 0x20 pages, RUNTIME|WB|WT|WC|UC.
GOLDEN_ONE = bytes.fromhex(
    "04000000"  # Type = 4 (EfiBootServicesData)
    "00000000"  # pad
    "0000a07900000000"  # PhysicalStart = 0x79a00000
    "0000000000000000"  # VirtualStart = 0
    "2000000000000000"  # NumberOfPages = 0x20
    "0f00000000000080"  # Attribute = 0x800000000000000f
)

# Three descriptors, each as its 40 bytes of fields.
_D0 = (
    "07000000"  # Type = 7 (EfiConventionalMemory)
    "00000000"  # pad
    "0000000000000000"  # PhysicalStart = 0
    "0000000000000000"  # VirtualStart = 0
    "9f00000000000000"  # NumberOfPages = 0x9f
    "0f00000000000000"  # Attribute = 0xf
)
_D1 = (
    "09000000"  # Type = 9 (EfiACPIReclaimMemory)
    "00000000"  # pad
    "0060452301000000"  # PhysicalStart = 0x123456000
    "0000000000000000"  # VirtualStart = 0
    "0300000000000000"  # NumberOfPages = 3
    "0f40000000000000"  # Attribute = 0x400f (XP|WB|WT|WC|UC)
)
_D2 = (
    "05000000"  # Type = 5 (EfiRuntimeServicesCode)
    "00000000"  # pad
    "0000007e00000000"  # PhysicalStart = 0x7e000000
    "000000f0feffffff"  # VirtualStart = 0xfffffffef0000000
    "1000000000000000"  # NumberOfPages = 0x10
    "0f00000000000080"  # Attribute = 0x800000000000000f
)
GOLDEN_DESCS = (
    MemoryDescriptor(7, 0, 0x9F, 0xF, 0),
    MemoryDescriptor(9, 0x123456000, 3, 0x400F, 0),
    MemoryDescriptor(5, 0x7E000000, 0x10, 0x800000000000000F, 0xFFFFFFFEF0000000),
)


def _golden_map(desc_size: int) -> bytes:
    tail = "00" * (desc_size - 40)  # the stride's extra bytes, zero
    return bytes.fromhex(_D0 + tail + _D1 + tail + _D2 + tail)


def test_golden_single_descriptor() -> None:
    assert len(GOLDEN_ONE) == 40
    d = MemoryDescriptor.unpack(GOLDEN_ONE)
    assert d == MemoryDescriptor(
        MemoryType.EfiBootServicesData, 0x79A00000, 0x20, 0x800000000000000F, 0
    )
    assert d.pack(40) == GOLDEN_ONE
    assert d.pack(48) == GOLDEN_ONE + bytes(8)
    assert d.size == 0x20000 and d.end == 0x79A20000


@pytest.mark.parametrize("desc_size", [40, 48, 56])
def test_golden_map_each_stride(desc_size: int) -> None:
    buf = _golden_map(desc_size)
    assert len(buf) == 3 * desc_size
    m = MemoryMap.parse(buf, desc_size)
    assert m.descriptors == GOLDEN_DESCS
    assert m.desc_size == desc_size
    assert m.build() == buf


def test_parse_ignores_pad_and_tail_bytes() -> None:
    raw = bytearray(_golden_map(48))
    raw[4:8] = b"\xff\xff\xff\xff"  # pad of descriptor 0
    raw[40:48] = b"\xaa" * 8  # tail of descriptor 0
    assert MemoryMap.parse(bytes(raw), 48).descriptors == GOLDEN_DESCS


def test_parse_errors_carry_offset() -> None:
    buf = _golden_map(48)  # 144 bytes
    with pytest.raises(ParseError) as e:
        MemoryMap.parse(buf, 40)  # 144 = 3*40 + 24
    assert e.value.offset == 120
    with pytest.raises(ParseError) as e:
        MemoryMap.parse(buf, 56)  # 144 = 2*56 + 32
    assert e.value.offset == 112
    with pytest.raises(ParseError) as e:
        MemoryMap.parse(buf[:-1], 48)  # 143 = 2*48 + 47
    assert e.value.offset == 96
    with pytest.raises(ParseError) as e:
        MemoryMap.parse(buf, 40, base_offset=0x1000)
    assert e.value.offset == 0x1000 + 120
    for bad in (39, 0, -48, 4097):
        with pytest.raises(ParseError) as e:
            MemoryMap.parse(buf, bad, base_offset=0x20)
        assert e.value.offset == 0x20
    with pytest.raises(ParseError) as e:
        MemoryDescriptor.unpack(GOLDEN_ONE, 1)
    assert e.value.offset == 1


def test_parse_empty_map() -> None:
    assert MemoryMap.parse(b"", 48).descriptors == ()


def test_pack_refuses_small_stride_and_out_of_range_fields() -> None:
    with pytest.raises(ValueError):
        GOLDEN_DESCS[0].pack(39)
    with pytest.raises(ValueError):
        MemoryDescriptor(1 << 32, 0, 1).pack()
    with pytest.raises(ValueError):
        MemoryDescriptor(7, 0, -1).pack()


# -- memory types and attributes (facts 1.5, 1.6) ---------------------------------------------

TYPES = [
    (0, "EfiReservedMemoryType", "Reserved"),
    (1, "EfiLoaderCode", "Loader Code"),
    (2, "EfiLoaderData", "Loader Data"),
    (3, "EfiBootServicesCode", "Boot Code"),
    (4, "EfiBootServicesData", "Boot Data"),
    (5, "EfiRuntimeServicesCode", "Runtime Code"),
    (6, "EfiRuntimeServicesData", "Runtime Data"),
    (7, "EfiConventionalMemory", "Conventional"),
    (8, "EfiUnusableMemory", "Unusable"),
    (9, "EfiACPIReclaimMemory", "ACPI Reclaim"),
    (10, "EfiACPIMemoryNVS", "ACPI Mem NVS"),
    (11, "EfiMemoryMappedIO", "MMIO"),
    (12, "EfiMemoryMappedIOPortSpace", "MMIO Port"),
    (13, "EfiPalCode", "PAL Code"),
    (14, "EfiPersistentMemory", "Persistent"),
    (15, "EfiUnacceptedMemoryType", "Unaccepted"),
]


@pytest.mark.parametrize(("value", "uefi", "linux"), TYPES)
def test_memory_type(value: int, uefi: str, linux: str) -> None:
    t = MemoryType(value)
    assert t.name == uefi
    assert t.linux_name == linux
    assert MemoryType.from_linux_name(linux) is t
    assert MemoryType.from_linux_name(f"{linux:<12}") is t  # Linux pads to 12 columns
    assert type_name(value) == uefi
    assert parse_type_name(uefi) == value
    assert parse_type_name(linux) == value
    assert parse_type_name(str(value)) == value


def test_memory_type_set_is_complete() -> None:
    assert len(MemoryType) == 16  # Linux EFI_MAX_MEMORY_TYPE
    assert [(t.value, t.name, t.linux_name) for t in MemoryType] == TYPES


def test_unknown_memory_types() -> None:
    assert type_name(16) == "Type0x10"
    assert type_name(0x70000000) == "Type0x70000000"
    assert MemoryType.from_linux_name("Boot Services Data") is None
    assert parse_type_name("0x80000000") == 0x80000000
    assert parse_type_name(" EfiBootServicesData ") == 4
    for bad in ("", "Bogus", "0x100000000", "-1", "efibootservicesdata"):
        with pytest.raises(ParseError):
            parse_type_name(bad)


ATTRIBUTES = [
    (0x1, "UC"),
    (0x2, "WC"),
    (0x4, "WT"),
    (0x8, "WB"),
    (0x10, "UCE"),
    (0x1000, "WP"),
    (0x2000, "RP"),
    (0x4000, "XP"),
    (0x8000, "NV"),
    (0x10000, "MORE_RELIABLE"),
    (0x20000, "RO"),
    (0x40000, "SP"),
    (0x80000, "CPU_CRYPTO"),
    (0x100000, "HOT_PLUGGABLE"),
    (0x4000000000000000, "ISA_VALID"),
    (0x8000000000000000, "RUNTIME"),
]


@pytest.mark.parametrize(("value", "name"), ATTRIBUTES)
def test_attribute_bit(value: int, name: str) -> None:
    assert MemoryAttribute[name] == value
    assert attribute_names(value) == [name]


def test_attribute_set_is_complete() -> None:
    assert sorted(int(a) for a in MemoryAttribute) == [v for v, _ in ATTRIBUTES]
    assert ISA_MASK == 0x0FFFF00000000000
    assert sum(1 << b for b in range(44, 60)) == ISA_MASK


def test_linux_attr_mnemonics() -> None:
    assert LINUX_ATTR_MNEMONICS == {
        "RUN": 0x8000000000000000,
        "HP": 0x100000,
        "MR": 0x10000,
        "CC": 0x80000,
        "SP": 0x40000,
        "NV": 0x8000,
        "XP": 0x4000,
        "RP": 0x2000,
        "WP": 0x1000,
        "RO": 0x20000,
        "UCE": 0x10,
        "WB": 0x8,
        "WT": 0x4,
        "WC": 0x2,
        "UC": 0x1,
    }
    assert list(LINUX_ATTR_MNEMONICS)[:3] == ["RUN", "HP", "MR"]  # Linux's print order


def test_attribute_names_with_isa_and_unknown_bits() -> None:
    attr = 0x800000000000000F | (0x3 << 44) | 0x200
    assert attribute_names(attr) == ["UC", "WC", "WT", "WB", "RUNTIME", "ISA=0x3", "0x200"]
    assert attribute_names(0) == []


# -- lookup (facts 4.1) -------------------------------------------------------------------------

BS, CONV, RTD, MMIO = 4, 7, 6, 11
LOOKUP_MAP = MemoryMap(
    (
        MemoryDescriptor(BS, 0x1000, 2),  # 0: [0x1000, 0x3000)
        MemoryDescriptor(CONV, 0x3000, 1),  # 1: [0x3000, 0x4000)
        MemoryDescriptor(RTD, 0x2000, 4),  # 2: [0x2000, 0x6000), overlaps 0 and 1
        MemoryDescriptor(CONV, 0x6800, 1),  # 3: unaligned -> bogus
        MemoryDescriptor(CONV, 0x7000, 0),  # 4: zero pages -> bogus
        MemoryDescriptor(CONV, 0xFFFFFFFFFFFF0000, 0x10),  # 5: reaches 2^64 -> bogus
        MemoryDescriptor(CONV, 0x6000, 1),  # 6: [0x6000, 0x7000)
        MemoryDescriptor(MMIO, 0x7000, 1),  # 7: [0x7000, 0x8000)
        MemoryDescriptor(CONV, 0x9000, (1 << 52) + 1),  # 8: pages << 12 wraps to 0x1000
    )
)


@pytest.mark.parametrize(
    ("addr", "index"),
    [
        (0x0FFF, None),
        (0x1000, 0),
        (0x2000, 0),  # 0 and 2 both cover it: first in map order
        (0x2FFF, 0),
        (0x3000, 1),  # 1 and 2 both cover it: 1 comes first
        (0x3FFF, 1),
        (0x4000, 2),
        (0x5FFF, 2),
        (0x6000, 6),
        (0x6800, 6),  # unaligned 3 skipped
        (0x7000, 7),  # zero-page 4 skipped
        (0x7FFF, 7),
        (0x8000, None),  # half-open end
        (0x9000, None),  # 8 is bogus
        (0xFFFFFFFFFFFF0000, None),  # 5 is bogus
        (U64_MAX, None),
        (-1, None),
        (1 << 64, None),
    ],
)
def test_lookup(addr: int, index: int | None) -> None:
    assert LOOKUP_MAP.lookup_index(addr) == index
    expected = None if index is None else LOOKUP_MAP[index]
    assert LOOKUP_MAP.lookup(addr) == expected


@pytest.mark.parametrize(
    ("addr", "index"),
    [
        (0x2000, 0),
        (0x4000, 2),
        (0x6800, 3),  # unaligned entry not skipped before 6.3
        (0x7000, 3),  # 3 covers [0x6800, 0x7800); zero-page 4 never matches
        (0x7800, 7),
        (0x9000, 8),  # size wraps to 0x1000 in u64: [0x9000, 0xa000)
        (0xA000, None),
        (0xFFFFFFFFFFFF0000, None),  # end wraps to 0, so nothing matches
    ],
)
def test_lookup_pre63(addr: int, index: int | None) -> None:
    expected = None if index is None else LOOKUP_MAP[index]
    assert lookup_pre63(LOOKUP_MAP, addr) == expected


def test_is_bogus_boundaries() -> None:
    assert not MemoryDescriptor(CONV, 0xFFFFFFFFFFFFE000, 1).is_bogus  # ends at 2^64 - 4096
    assert MemoryDescriptor(CONV, 0xFFFFFFFFFFFFF000, 1).is_bogus  # last page: reaches 2^64
    assert MemoryDescriptor(CONV, 0x1001, 1).is_bogus
    assert MemoryDescriptor(CONV, 0x1000, 0).is_bogus
    assert not MemoryDescriptor(CONV, 0, 1).is_bogus


def test_lookup_empty_map() -> None:
    assert MemoryMap(()).lookup(0) is None


# -- validate ---------------------------------------------------------------------------------


def _codes(m: MemoryMap) -> list[str]:
    return [f.code for f in m.validate()]


def test_validate_lookup_map() -> None:
    found = LOOKUP_MAP.validate()
    assert all(f.code in FINDING_CODES for f in found)
    codes = [f.code for f in found]
    assert codes.count("memmap.unaligned") == 1  # 3
    assert codes.count("memmap.zero-pages") == 1  # 4
    assert codes.count("memmap.wrap") == 2  # 5 and 8
    assert codes.count("memmap.unsorted") == 1  # 2 starts below 1
    assert codes.count("memmap.overlap") == 2  # 2 over 0, then 1 inside 2
    assert "memmap.unknown-type" not in codes
    overlaps = [f.message for f in found if f.code == "memmap.overlap"]
    assert "descriptor 2 " in overlaps[0] and "descriptor 0 " in overlaps[0]
    assert "descriptor 1 " in overlaps[1] and "descriptor 2 " in overlaps[1]


def test_validate_clean_and_adjacent() -> None:
    m = MemoryMap(tuple(MemoryDescriptor(CONV, 0x1000 * i, 1) for i in range(4)))
    assert m.validate() == []


def test_validate_non_neighbour_overlap() -> None:
    # 0 and 2 overlap; 1 sits between them in address order and overlaps neither.
    m = MemoryMap(
        (
            MemoryDescriptor(CONV, 0x0000, 16),
            MemoryDescriptor(CONV, 0x10000, 1),
            MemoryDescriptor(CONV, 0x8000, 1),
        )
    )
    assert _codes(m) == ["memmap.unsorted", "memmap.overlap"]


def test_validate_header_and_types() -> None:
    assert _codes(MemoryMap((), desc_size=32)) == ["memmap.desc-size"]
    assert _codes(MemoryMap((), desc_version=2)) == ["memmap.desc-version"]
    m = MemoryMap(
        (
            MemoryDescriptor(15, 0x0000, 1),
            MemoryDescriptor(16, 0x1000, 1),
            MemoryDescriptor(0x70000000, 0x2000, 1),
            MemoryDescriptor(0xFFFFFFFF, 0x3000, 1),
        )
    )
    found = m.validate()
    assert [(f.code, f.severity) for f in found] == [
        ("memmap.unknown-type", Severity.WARNING),
        ("memmap.unknown-type", Severity.INFO),
        ("memmap.unknown-type", Severity.INFO),
    ]


def test_finding_codes() -> None:
    assert FINDING_CODES == (
        "memmap.desc-size",
        "memmap.desc-version",
        "memmap.unaligned",
        "memmap.zero-pages",
        "memmap.wrap",
        "memmap.unknown-type",
        "memmap.unsorted",
        "memmap.overlap",
    )


# -- carving (facts 4.4) ------------------------------------------------------------------------

VIRT = 0xFFFFFFFF00100000
D = MemoryDescriptor(BS, 0x100000, 0x10, 0xF, VIRT)  # [0x100000, 0x10ffff]
A = 0xF | RUN


def _parts(*spec: tuple[int, int, int]) -> list[MemoryDescriptor]:
    return [MemoryDescriptor(BS, p, n, a, VIRT) for p, n, a in spec]


CARVE_CASES = {
    "covered exactly": ((0x100000, 0x10FFFF), _parts((0x100000, 0x10, A))),
    "covered, larger both sides": ((0xF0000, 0x11FFFF), _parts((0x100000, 0x10, A))),
    "head, from start": (
        (0x100000, 0x101FFF),
        _parts((0x100000, 2, A), (0x102000, 14, 0xF)),
    ),
    "head, from below": ((0x0, 0x101FFF), _parts((0x100000, 2, A), (0x102000, 14, 0xF))),
    "middle": (
        (0x104000, 0x105FFF),
        _parts((0x100000, 4, 0xF), (0x104000, 2, A), (0x106000, 10, 0xF)),
    ),
    "middle, one page": (
        (0x101000, 0x101FFF),
        _parts((0x100000, 1, 0xF), (0x101000, 1, A), (0x102000, 14, 0xF)),
    ),
    "tail, to end": ((0x10E000, 0x10FFFF), _parts((0x100000, 14, 0xF), (0x10E000, 2, A))),
    "tail, beyond end": ((0x10E000, 0x1FFFFF), _parts((0x100000, 14, 0xF), (0x10E000, 2, A))),
    "outside, just below": ((0x0, 0xFFFFF), [D]),
    "outside, just above": ((0x110000, 0x110FFF), [D]),
}


@pytest.mark.parametrize("case", list(CARVE_CASES))
def test_carve(case: str) -> None:
    (start, end), expected = CARVE_CASES[case]
    got = carve(D, start, end, RUN)
    assert got == expected
    assert split_count(D, start, end) == len(expected) - 1
    m = MemoryMap((D,)).insert(start, end, RUN)
    assert list(m) == expected
    assert MemoryMap((D,)).split_count(start, end) == len(expected) - 1


def test_carve_keeps_virt_addr_unchanged() -> None:
    # Linux memcpy()s the old descriptor and rewrites only phys_addr/num_pages/attribute.
    assert {d.virt_addr for d in carve(D, 0x104000, 0x105FFF, RUN)} == {VIRT}


def test_insert_range_spanning_two_descriptors() -> None:
    d2 = MemoryDescriptor(CONV, 0x110000, 0x10, 0x8)
    m = MemoryMap((D, d2), desc_size=56)
    out = m.insert(0x10E000, 0x111FFF, RUN)
    assert list(out) == [
        *_parts((0x100000, 14, 0xF), (0x10E000, 2, A)),
        MemoryDescriptor(CONV, 0x110000, 2, 0x8 | RUN),
        MemoryDescriptor(CONV, 0x112000, 14, 0x8),
    ]
    assert m.split_count(0x10E000, 0x111FFF) == 2 == len(out) - len(m)
    assert out.desc_size == 56


@pytest.mark.parametrize(
    ("md", "rng", "expected"),
    [
        # zero pages: Linux's end is start - 1, so a range ending just below gets the attribute
        (
            MemoryDescriptor(CONV, 0x3000, 0, 0xF),
            (0x2000, 0x2FFF),
            [MemoryDescriptor(CONV, 0x3000, 0, A)],
        ),
        # unaligned start = range's last byte: none of Linux's conditions hold, untouched
        (MemoryDescriptor(CONV, 0x1FFF, 1, 0xF), (0x1000, 0x1FFF), None),
        # unaligned, range starts at the descriptor's last byte: untouched
        (MemoryDescriptor(CONV, 0x1001, 1, 0xF), (0x2000, 0x2FFF), None),
        # unaligned head split: page counts come from Linux's arithmetic, not pages - head
        (
            MemoryDescriptor(CONV, 0x1800, 2, 0xF),
            (0x0, 0x1FFF),
            [MemoryDescriptor(CONV, 0x1800, 0, A), MemoryDescriptor(CONV, 0x2000, 1, 0xF)],
        ),
        # pages << 12 wraps to 0: Linux's end is 0xfff, a range below the start "covers" it
        (
            MemoryDescriptor(CONV, 0x1000, 1 << 52, 0xF),
            (0x0, 0xFFF),
            [MemoryDescriptor(CONV, 0x1000, 1 << 52, A)],
        ),
        # zero pages at 0: end wraps to 2^64 - 1, so a head split makes 2^52 pages appear
        (
            MemoryDescriptor(CONV, 0x0, 0, 0xF),
            (0x0, 0x1FFF),
            [
                MemoryDescriptor(CONV, 0x0, 2, A),
                MemoryDescriptor(CONV, 0x2000, 0xFFFFFFFFFFFFE, 0xF),
            ],
        ),
    ],
)
def test_carve_bogus_descriptors_like_linux(
    md: MemoryDescriptor, rng: tuple[int, int], expected: list[MemoryDescriptor] | None
) -> None:
    want = [md] if expected is None else expected
    assert carve(md, rng[0], rng[1], RUN) == want
    assert split_count(md, rng[0], rng[1]) == len(want) - 1


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0x100000, 0x100FFE),  # end + 1 not aligned
        (0x100001, 0x100FFF),  # start not aligned
        (-0x1000, 0xFFF),
        (0x0, 1 << 64),
    ],
)
def test_insert_refuses_bad_range(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        MemoryMap((D,)).insert(start, end, RUN)


def test_insert_range_to_top_of_memory_is_aligned() -> None:
    # m_end + 1 wraps to 0 in u64, which is aligned.
    out = MemoryMap((D,)).insert(0xFFFFFFFFFFFFF000, U64_MAX, RUN)
    assert list(out) == [D]


@pytest.mark.parametrize(
    ("rng", "count"),
    [
        ((0x100000, 0x10FFFF), 0),  # exactly the descriptor
        ((0x0, U64_MAX), 0),  # larger on both sides
        ((0x100000, 0x100FFF), 1),  # starts exactly at start
        ((0x10F000, 0x10FFFF), 1),  # ends exactly at end
        ((0x10F000, 0x200FFF), 1),  # starts inside, ends beyond
        ((0x101000, 0x10EFFF), 2),  # strictly inside
        ((0x200000, 0x200FFF), 0),  # outside above
        ((0x0, 0xFFFFF), 0),  # outside below
    ],
)
def test_split_count_boundaries(rng: tuple[int, int], count: int) -> None:
    assert split_count(D, *rng) == count


def test_map_helpers() -> None:
    m = MemoryMap(GOLDEN_DESCS)
    assert m.total_bytes() == (0x9F + 3 + 0x10) * 4096
    assert m.total_bytes([9]) == 3 * 4096
    assert m.total_bytes(attribute=RUN) == 0x10 * 4096
    assert list(m.sorted()) == [GOLDEN_DESCS[0], GOLDEN_DESCS[2], GOLDEN_DESCS[1]]
    assert list(m.replace_descriptor(1)) == [GOLDEN_DESCS[0], GOLDEN_DESCS[2]]
    assert list(m.replace_descriptor(0, D, D))[:2] == [D, D]
    assert GOLDEN_DESCS[0].replace(num_pages=1).num_pages == 1
    assert GOLDEN_DESCS[0].contains(0) and not GOLDEN_DESCS[0].contains(0x9F000)
    assert MemoryMap(list(GOLDEN_DESCS)) == m  # a list is stored as a tuple


# -- hypothesis -----------------------------------------------------------------------------

u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, U64_MAX)
any_descriptor = st.builds(MemoryDescriptor, u32, u64, u64, u64, u64)


@HYPO
@given(st.lists(any_descriptor, max_size=20), st.sampled_from([40, 48, 56, 64]), u32)
def test_roundtrip_build_parse(descs: list[MemoryDescriptor], desc_size: int, ver: int) -> None:
    m = MemoryMap(tuple(descs), desc_size, ver)
    buf = m.build()
    assert len(buf) == desc_size * len(descs)
    back = MemoryMap.parse(buf, desc_size, ver)
    assert back == m
    assert back.build() == buf


@HYPO
@given(st.binary(max_size=600), st.integers(-64, 5000))
def test_parse_hostile_bytes(data: bytes, desc_size: int) -> None:
    try:
        m = MemoryMap.parse(data, desc_size)
    except ParseError as e:
        assert e.offset is not None
        return
    assert len(m) * desc_size == len(data)
    assert all(f.code in FINDING_CODES for f in m.validate())


# Small address space so descriptors overlap often; some are bogus on purpose.
PAGES = 24
small_descriptor = st.one_of(
    st.builds(
        MemoryDescriptor,
        st.integers(0, 15),
        st.integers(0, PAGES).map(lambda p: p << 12),
        st.integers(0, 8),
    ),
    st.builds(  # unaligned
        MemoryDescriptor, st.just(7), st.integers(0, PAGES << 12), st.integers(0, 8)
    ),
    st.builds(  # wraps past 2^64 or has a size that wraps in u64
        MemoryDescriptor,
        st.just(7),
        st.sampled_from([0, 0x3000, 0xFFFFFFFFFFFFF000, 0xFFFFFFFFFFFF0000]),
        st.sampled_from([1 << 52, (1 << 52) + 2, 0x20, U64_MAX]),
    ),
)


def _naive_lookup(descs: list[MemoryDescriptor], addr: int) -> int | None:
    for i, d in enumerate(descs):
        if d.phys_addr % 4096 or d.num_pages == 0 or d.phys_addr + d.num_pages * 4096 > 2**64 - 1:
            continue
        if d.phys_addr <= addr < d.phys_addr + d.num_pages * 4096:
            return i
    return None


def _naive_pre63(descs: list[MemoryDescriptor], addr: int) -> MemoryDescriptor | None:
    for d in descs:
        if d.phys_addr <= addr < (d.phys_addr + d.num_pages * 4096) % 2**64:
            return d
    return None


@HYPO
@given(st.lists(small_descriptor, max_size=25), st.data())
def test_lookup_matches_linear_reference(
    descs: list[MemoryDescriptor], data: st.DataObject
) -> None:
    m = MemoryMap(tuple(descs))
    edges = {0, U64_MAX}
    for d in descs:
        edges |= {d.phys_addr - 1, d.phys_addr, d.end - 1, d.end}
    probes = sorted(edges) + data.draw(st.lists(st.integers(0, (PAGES + 10) << 12), max_size=30))
    for addr in probes:
        assert m.lookup_index(addr) == _naive_lookup(descs, addr), hex(addr)
        assert lookup_pre63(m, addr) == _naive_pre63(descs, addr), hex(addr)


good_descriptor = st.builds(
    MemoryDescriptor,
    st.sampled_from([BS, CONV, RTD]),
    st.integers(0, 40).map(lambda p: p << 12),
    st.integers(1, 16),
    st.sampled_from([0, 0xF, 0x4008]),
    u64,
)


@HYPO
@given(
    st.lists(good_descriptor, max_size=12),
    st.integers(0, 60),
    st.integers(1, 24),
    st.sampled_from([RUN, 0x1, 0x4000]),
)
def test_insert_matches_page_model(
    descs: list[MemoryDescriptor], first: int, count: int, attr: int
) -> None:
    m = MemoryMap(tuple(descs))
    start, end = first << 12, ((first + count) << 12) - 1
    out = m.insert(start, end, attr)
    assert len(out) == len(m) + m.split_count(start, end)
    assert out.total_bytes() == m.total_bytes()
    for t in (BS, CONV, RTD):
        assert out.total_bytes([t]) == m.total_bytes([t])
    # Reference: each page of each descriptor, attribute ORed iff the page is in the range.
    want = [
        (d.type, d.virt_addr, p, d.attribute | (attr if first <= p < first + count else 0))
        for d in descs
        for p in range(d.phys_addr >> 12, (d.phys_addr >> 12) + d.num_pages)
    ]
    got = [
        (d.type, d.virt_addr, p, d.attribute)
        for d in out
        for p in range(d.phys_addr >> 12, (d.phys_addr >> 12) + d.num_pages)
    ]
    assert got == want
    assert all(d.num_pages > 0 for d in out)


@HYPO
@given(st.lists(small_descriptor, max_size=10), st.integers(0, 40), st.integers(0, 24))
def test_split_count_matches_carve_on_any_descriptor(
    descs: list[MemoryDescriptor], first: int, count: int
) -> None:
    start, end = first << 12, (((first + count) << 12) - 1) % 2**64  # count 0: end < start
    for d in descs:
        assert len(carve(d, start, end, RUN)) == split_count(d, start, end) + 1
