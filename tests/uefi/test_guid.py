"""Tests for efihandoff.uefi.guid (EFI_GUID byte order and text form, facts 1.3)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.errors import ParseError
from efihandoff.uefi.guid import GUID_SIZE, ZERO_GUID, Guid

HYPO = settings(max_examples=200, deadline=None)

ESRT_TEXT = "b122a263-3661-4f68-9929-78f8b0d62180"
# Facts 1.3: Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 verbatim.
ESRT_BYTES = bytes.fromhex(
    "63a222b1"  # Data1 0xb122a263
    "6136"  # Data2 0x3661
    "684f"  # Data3 0x4f68
    "9929"  # Data4[0..1]
    "78f8b0d62180"  # Data4[2..7]
)


def test_esrt_guid_bytes() -> None:
    # The facts' example, byte by byte: 63 a2 22 b1 61 36 68 4f 99 29 78 f8 b0 d6 21 80.
    facts = [0x63, 0xA2, 0x22, 0xB1, 0x61, 0x36, 0x68, 0x4F, 0x99, 0x29, 0x78, 0xF8, 0xB0, 0xD6]
    assert bytes([*facts, 0x21, 0x80]) == ESRT_BYTES
    g = Guid.parse(ESRT_TEXT)
    assert g.to_bytes() == ESRT_BYTES
    assert Guid.from_bytes(ESRT_BYTES) == g
    assert str(g) == ESRT_TEXT
    assert repr(g) == f"Guid('{ESRT_TEXT}')"
    assert g.value == 0xB122A26336614F68992978F8B0D62180


def test_from_bytes_at_offset() -> None:
    buf = b"\xee" * 5 + ESRT_BYTES + b"\xee" * 3
    assert str(Guid.from_bytes(buf, 5)) == ESRT_TEXT
    assert str(Guid.from_bytes(memoryview(buf), 5)) == ESRT_TEXT


@pytest.mark.parametrize(
    "text",
    [
        ESRT_TEXT.upper(),
        "B122a263-3661-4F68-9929-78f8B0D62180",
        "{" + ESRT_TEXT + "}",
        "{" + ESRT_TEXT.upper() + "}",
        "  " + ESRT_TEXT + "\n",
    ],
)
def test_parse_accepts(text: str) -> None:
    g = Guid.parse(text)
    assert str(g) == ESRT_TEXT  # always printed lower-case, as Linux %pUl
    assert g.to_bytes() == ESRT_BYTES


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{}",
        ESRT_TEXT[:-1],  # one digit short
        ESRT_TEXT + "0",  # one digit long
        ESRT_TEXT.replace("-", ""),  # no dashes
        "b122a2633-661-4f68-9929-78f8b0d62180",  # dash misplaced
        "g122a263-3661-4f68-9929-78f8b0d62180",  # not hex
        "{" + ESRT_TEXT,  # unbalanced brace
        ESRT_TEXT + "}",
        "{{" + ESRT_TEXT + "}}",
        "{ " + ESRT_TEXT + " }",
        "b122a263-3661-4f68-9929-78f8b0d62180\nb122a263",
        "+122a263-3661-4f68-9929-78f8b0d62180",
        "b122a263-3661-4f68-9929-78f8b0d621\u0660\u0660",  # Arabic-Indic digits
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        Guid.parse(text)


@pytest.mark.parametrize(("size", "offset"), [(0, 0), (15, 0), (20, 5), (16, 1), (16, -1)])
def test_from_bytes_truncated(size: int, offset: int) -> None:
    with pytest.raises(ParseError) as e:
        Guid.from_bytes(bytes(size), offset)
    assert e.value.offset == offset


def test_zero_guid() -> None:
    assert ZERO_GUID.is_zero
    assert str(ZERO_GUID) == "00000000-0000-0000-0000-000000000000"
    assert ZERO_GUID.to_bytes() == bytes(GUID_SIZE)
    assert not Guid.parse(ESRT_TEXT).is_zero


def test_value_range() -> None:
    with pytest.raises(ValueError):
        Guid(-1)
    with pytest.raises(ValueError):
        Guid(1 << 128)
    assert str(Guid((1 << 128) - 1)) == "ffffffff-ffff-ffff-ffff-ffffffffffff"


def test_ordering_and_hash() -> None:
    a, b = Guid(1), Guid(2)
    assert a < b
    assert len({Guid.parse(ESRT_TEXT), Guid.parse(ESRT_TEXT.upper())}) == 1


@HYPO
@given(st.integers(0, (1 << 128) - 1))
def test_roundtrip_value(value: int) -> None:
    g = Guid(value)
    assert Guid.parse(str(g)) == g
    assert Guid.parse(str(g).upper()) == g
    assert Guid.from_bytes(g.to_bytes()) == g
    # Independent reference: RFC 4122 bytes_le is the EFI in-memory order.
    assert g.to_bytes() == uuid.UUID(int=value).bytes_le
    assert str(g) == str(uuid.UUID(int=value))


@HYPO
@given(st.binary(min_size=16, max_size=16))
def test_roundtrip_bytes(raw: bytes) -> None:
    assert Guid.from_bytes(raw).to_bytes() == raw


@HYPO
@given(st.text(max_size=60))
def test_parse_hostile_text(text: str) -> None:
    try:
        g = Guid.parse(text)
    except ParseError:
        return
    assert Guid.parse(str(g)) == g


@HYPO
@given(st.binary(max_size=40), st.integers(-4, 40))
def test_from_bytes_hostile(data: bytes, offset: int) -> None:
    try:
        g = Guid.from_bytes(data, offset)
    except ParseError as e:
        assert e.offset == offset
        return
    assert g.to_bytes() == data[offset : offset + 16]
