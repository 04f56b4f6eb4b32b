"""Tests for efihandoff.uefi.layout: formats, offsets and sizes written by hand from C's
layout rules and the UEFI spec's structures, never from the module's output."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st

from efihandoff.uefi.esrt import ENTRY_LAYOUT, HEADER_LAYOUT, EsrtEntry, EsrtHeader
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.layout import GUID, U8, U16, U32, U64, UINTN, Embed, Layout, chars
from efihandoff.uefi.memmap import DESCRIPTOR_LAYOUT, MemoryDescriptor
from efihandoff.uefi.systab import (
    CONFIG_TABLE_32,
    CONFIG_TABLE_64,
    SYSTEM_TABLE_32,
    SYSTEM_TABLE_64,
    TABLE_HEADER_LAYOUT,
)


@dataclass(frozen=True, slots=True)
class _Mixed:
    a: Annotated[int, U8]
    b: Annotated[int, U32]
    c: Annotated[int, U16]
    d: Annotated[int, U64]
    note: str = "not in the layout"


@dataclass(frozen=True, slots=True)
class _Inner:
    x: Annotated[int, U32]
    y: Annotated[int, U8]


@dataclass(frozen=True, slots=True)
class _Outer:
    sig: Annotated[bytes, chars(4)]
    inner: Annotated[_Inner, Embed(Layout(_Inner))]
    ptr: Annotated[int, UINTN]


def test_natural_alignment() -> None:
    # C: a at 0, b at 4 (3 pad), c at 8, d at 16 (6 pad); sizeof 24.
    layout = Layout(_Mixed)
    assert layout.format == "<B3xIH6xQ"
    assert layout.offsets == {"a": 0, "b": 4, "c": 8, "d": 16}
    assert layout.size == 24
    assert layout.names == ("a", "b", "c", "d")


def test_packed() -> None:
    layout = Layout(_Mixed, packed=True)
    assert layout.format == "<BIHQ"
    assert layout.size == 1 + 4 + 2 + 8


def test_tail_padding_counts_in_size_not_in_reads() -> None:
    # struct {u32 x; u8 y;}: fields cover 5 bytes, sizeof is 8.
    layout = Layout(_Inner)
    assert layout.struct.size == 5
    assert layout.size == 8
    assert layout.pack(_Inner(1, 2)) == b"\x01\0\0\0\x02\0\0\0"
    assert layout.unpack_from(b"\x01\0\0\0\x02") == _Inner(1, 2)


def test_embed_and_width() -> None:
    # sig 0..4, inner (align 4, sizeof 8) 4..12, ptr at 16 (64-bit) or 12 (32-bit).
    l64, l32 = Layout(_Outer), Layout(_Outer, width=32)
    assert (l64.offsets["ptr"], l64.size) == (16, 24)
    assert (l32.offsets["ptr"], l32.size) == (12, 16)
    value = _Outer(b"ABCD", _Inner(7, 9), 0x1122)
    raw = b"ABCD" + b"\x07\0\0\0\x09\0\0\0" + b"\x22\x11\0\0"
    assert l32.pack(value) == raw
    assert l32.unpack_from(raw) == value
    assert l64.unpack_from(l64.pack(value)) == value


def test_order_differs_from_constructor() -> None:
    layout = Layout(_Inner, order=("y", "x"))
    assert layout.format == "<B3xI"
    assert layout.unpack_from(b"\x05\0\0\0\x09\0\0\0") == _Inner(x=9, y=5)


def test_declaration_errors() -> None:
    @dataclass(frozen=True)
    class Untyped:
        a: Annotated[int, U32]
        b: int

    with pytest.raises(TypeError, match="no C type"):
        Layout(Untyped)
    with pytest.raises(TypeError, match="order"):
        Layout(_Inner, order=("x",))
    with pytest.raises(ValueError, match="width"):
        Layout(_Inner, width=16)
    with pytest.raises(TypeError, match="not a dataclass"):
        Layout(int)


def test_short_data_and_out_of_range() -> None:
    with pytest.raises(struct.error):
        Layout(_Inner).unpack_from(b"\0" * 4)
    with pytest.raises(struct.error):
        Layout(_Inner).pack(_Inner(1 << 32, 0))


# The spec's structures: formats and sizes from UEFI 2.10 and Linux include/linux/efi.h.
@pytest.mark.parametrize(
    ("layout", "fmt", "size"),
    [
        (HEADER_LAYOUT, "<IIQ", 16),  # EFI_SYSTEM_RESOURCE_TABLE header
        (ENTRY_LAYOUT, "<16sIIIIII", 40),  # EFI_SYSTEM_RESOURCE_ENTRY
        (DESCRIPTOR_LAYOUT, "<I4xQQQQ", 40),  # EFI_MEMORY_DESCRIPTOR, 4 bytes after Type
        (TABLE_HEADER_LAYOUT, "<QIIII", 24),  # EFI_TABLE_HEADER
        (CONFIG_TABLE_64, "<16sQ", 24),  # efi_config_table_64_t
        (CONFIG_TABLE_32, "<16sI", 20),  # efi_config_table_32_t
        (SYSTEM_TABLE_64, "<QIIII" + "QI4x" + "Q" * 10, 120),  # efi_system_table_64_t
        (SYSTEM_TABLE_32, "<QIIII" + "II" + "I" * 10, 72),  # efi_system_table_32_t
    ],
)
def test_spec_layouts(layout: Layout[object], fmt: str, size: int) -> None:
    assert layout.format == fmt
    assert layout.size == size


def test_memory_descriptor_field_offsets() -> None:
    # UEFI 2.10 7.2: Type 0, PhysicalStart 8, VirtualStart 16, NumberOfPages 24, Attribute 32.
    assert DESCRIPTOR_LAYOUT.offsets == {
        "type": 0,
        "phys_addr": 8,
        "virt_addr": 16,
        "num_pages": 24,
        "attribute": 32,
    }
    raw = bytes.fromhex(
        "07000000" "00000000" "0010000000000000" "0020000000000000" "0300000000000000"
        "0f00000000000000"
    )
    assert MemoryDescriptor.unpack(raw) == MemoryDescriptor(7, 0x1000, 3, 0xF, 0x2000)


@given(
    st.tuples(*[st.integers(0, 0xFFFFFFFF)] * 6),
    st.binary(min_size=16, max_size=16),
)
def test_esrt_entry_round_trip(values: tuple[int, ...], guid: bytes) -> None:
    entry = EsrtEntry(Guid.from_bytes(guid), *values)
    raw = ENTRY_LAYOUT.pack(entry)
    assert raw == guid + struct.pack("<6I", *values)
    assert ENTRY_LAYOUT.unpack_from(raw) == entry


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, (1 << 64) - 1))
def test_esrt_header_round_trip(count: int, count_max: int, version: int) -> None:
    header = EsrtHeader(count, count_max, version)
    assert HEADER_LAYOUT.pack(header) == struct.pack("<IIQ", count, count_max, version)
    assert HEADER_LAYOUT.unpack_from(HEADER_LAYOUT.pack(header)) == header


def test_iter_unpack_stride() -> None:
    one = MemoryDescriptor(4, 0x2000, 1).pack(48)
    two = MemoryDescriptor(7, 0x3000, 2).pack(48)
    got = DESCRIPTOR_LAYOUT.iter_unpack(one + two, 0, 2, 48)
    assert got == [MemoryDescriptor(4, 0x2000, 1), MemoryDescriptor(7, 0x3000, 2)]


def test_guid_field_value() -> None:
    guid = Guid.parse("b122a263-3661-4f68-9929-78f8b0d62180")

    @dataclass(frozen=True)
    class OnlyGuid:
        g: Annotated[Guid, GUID]

    # EFI_GUID in memory: Data1..3 little-endian, Data4 as bytes.
    raw = bytes.fromhex("63a222b16136684f992978f8b0d62180")
    assert Layout(OnlyGuid).unpack_from(raw) == OnlyGuid(guid)


def test_pack_many_and_build_errors() -> None:
    a, b = MemoryDescriptor(4, 0x2000, 1), MemoryDescriptor(7, 0x3000, 2)
    assert DESCRIPTOR_LAYOUT.pack_many([a, b], 48) == a.pack(48) + b.pack(48)
    # A field out of range still names the descriptor at fault (MemoryDescriptor.pack).
    from efihandoff.uefi.memmap import MemoryMap

    with pytest.raises(ValueError, match="descriptor field out of range"):
        MemoryMap((a, MemoryDescriptor(1 << 32, 0, 1)), 48).build()
    entries = [EsrtEntry(Guid.from_bytes(bytes(range(16))), 1, 2, 3, 4, 5, 6)] * 2
    assert ENTRY_LAYOUT.pack_many(entries) == ENTRY_LAYOUT.pack(entries[0]) * 2
