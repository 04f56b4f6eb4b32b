"""The dump scan's aligned search (dumpscan.find_aligned) and the system-table scan on it: every
signature on the alignment grid is found once, wherever it sits (file ends, window and block
boundaries, past holes), whichever way the bytes are reached (mapped windows, read blocks, no
wmemchr, no file descriptor); signatures off the grid, wrong CRCs and words that only start like
the signature are not reported. Tables here are written by hand from the UEFI layout (2.10
section 4.2/4.3: header of Signature, Revision, HeaderSize, CRC32, Reserved; 120 bytes in the
64-bit layout, 72 in the 32-bit one), the CRC32 with zlib over HeaderSize bytes, field zero."""

from __future__ import annotations

import mmap
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.sources import dumpscan
from efihandoff.sources.dump import read_dump

SIG = b"IBI SYST"
WINDOW = 4096  # small windows and blocks so boundaries are many
MODES = ["mapped", "read", "no-wmemchr", "no-fd"]


def _table(bits: int = 64, *, revision: int = 0x00020046, crc_ok: bool = True) -> bytes:
    """An EFI system table with every pointer NULL, written from the UEFI layout."""
    size = 120 if bits == 64 else 72
    raw = bytearray(size)
    struct.pack_into("<8sIIII", raw, 0, SIG, revision, size, 0, 0)
    crc = zlib.crc32(bytes(raw))
    struct.pack_into("<I", raw, 16, crc if crc_ok else crc ^ 1)
    return bytes(raw)


@pytest.fixture(params=MODES)
def mode(request, monkeypatch):
    """Small windows and blocks; a mode forcing one way of reaching the bytes."""
    monkeypatch.setattr(dumpscan, "MAP_WINDOW", WINDOW)
    monkeypatch.setattr(dumpscan, "BLOCK", WINDOW)
    if request.param == "read":
        monkeypatch.setattr(dumpscan._Windows, "_mapped", lambda self, pos, want: None)
    if request.param == "no-wmemchr":
        monkeypatch.setattr(dumpscan, "_WMEMCHR", None)
    return request.param


def _want(data: bytes, needle: bytes, start: int, end: int, align: int) -> list[int]:
    k = len(needle)
    return [p for p in range(start, end - k + 1, align) if data[p : p + k] == needle]


def _find(path: Path, mode: str, needle: bytes, start: int, end: int, align: int) -> list[int]:
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            fd = None if mode == "no-fd" else f.fileno()
            return list(dumpscan.find_aligned(mm, fd, needle, start, end, align))
        finally:
            mm.close()


@pytest.mark.parametrize("align", [4, 8])
def test_every_offset_near_window_boundaries(tmp_path, mode, align):
    # The needle at each of 16 offsets around three window boundaries and at both file ends:
    # exactly the ones on the grid are reported, each once; near misses never. On the 4-byte
    # grid a needle can cross a window boundary (the windows overlap by 7 bytes).
    size = 4 * WINDOW + 24
    spots = [0, size - 8] + [b + d for b in (WINDOW, 2 * WINDOW, 3 * WINDOW) for d in range(-8, 8)]
    for spot in spots:
        data = bytearray(b"\x5a" * size)
        data[spot : spot + 8] = SIG
        data[WINDOW + 40 : WINDOW + 48] = b"IBI SYSx"  # the first word right, then wrong
        data[2 * WINDOW + 40 : 2 * WINDOW + 48] = b"xBI SYST"  # the second word right
        path = tmp_path / "one.raw"
        path.write_bytes(data)
        got = _find(path, mode, SIG, 0, size, align)
        assert got == ([spot] if spot % align == 0 else []), spot


@pytest.mark.parametrize("start", [0, 1, 2, 3, 4, 5, 8, 13, WINDOW - 3])
@pytest.mark.parametrize("align", [4, 8])
def test_grid_follows_start(tmp_path, mode, start, align):
    # The grid is counted from ``start`` (an ELF segment's alignment class), not from the file:
    # a start that is not 4-aligned is read into an aligned buffer, never searched off the grid.
    size = 3 * WINDOW + 100
    data = bytearray(size)
    for p in range(0, size - 8, 53):  # every residue modulo 4 and 8 over the file
        data[p : p + 8] = SIG
    path = tmp_path / "grid.raw"
    path.write_bytes(data)
    want = _want(bytes(data), SIG, start, size, align)
    assert want  # the test plants some on each grid
    assert _find(path, mode, SIG, start, size, align) == want
    # a sub-range: only needles wholly inside it
    end = 2 * WINDOW + 5
    assert _find(path, mode, SIG, start, end, align) == _want(bytes(data), SIG, start, end, align)


def test_repeated_first_word_falls_back_bytewise(tmp_path, mode, monkeypatch):
    # Text of repeated "IBI " words matches the first word everywhere: after MAX_WORD_MISSES a
    # window is searched byte by byte from there, with the same result and bounded calls.
    monkeypatch.setattr(dumpscan, "MAX_WORD_MISSES", 3)
    size = 3 * WINDOW
    data = bytearray(b"IBI " * (size // 4))
    for p in (16, 20, WINDOW - 8, WINDOW + 1000, 2 * WINDOW + 4, size - 8):
        data[p : p + 8] = SIG
    path = tmp_path / "words.raw"
    path.write_bytes(data)
    assert _find(path, mode, SIG, 0, size, 8) == _want(bytes(data), SIG, 0, size, 8)


@pytest.mark.parametrize("start", [0, 3, 4])
def test_holes_skipped_and_offsets_kept(tmp_path, mode, start):
    # A sparse file: 64 MiB of hole, then data holding needles; offsets are file offsets, and
    # the grid counted from ``start`` continues past the hole.
    data = bytearray(b"\x11" * (2 * WINDOW))
    for p in (0, 3, 8, 11, 28, WINDOW - 8, WINDOW - 5, WINDOW, 2 * WINDOW - 8, 2 * WINDOW - 13):
        data[p : p + 8] = SIG
    path = tmp_path / "sparse.raw"
    hole = 64 << 20
    with open(path, "wb") as f:
        f.truncate(hole)
        f.seek(hole)
        f.write(data)
    got = _find(path, mode, SIG, start, hole + len(data), 8)
    assert got == [hole + p for p in _want(bytes(data), SIG, start % 8, len(data), 8)]
    assert got


def test_mapping_refused_midway_reads_the_rest(tmp_path, monkeypatch):
    # A file that stops being mappable after the first window (as /proc/vmcore refuses a
    # private writable mapping): the rest is read, nothing lost or repeated.
    monkeypatch.setattr(dumpscan, "MAP_WINDOW", WINDOW)
    monkeypatch.setattr(dumpscan, "BLOCK", WINDOW)
    real = dumpscan._Windows._mapped
    calls = []

    def once(self, pos, want):  # type: ignore[no-untyped-def]
        calls.append(pos)
        return real(self, pos, want) if len(calls) == 1 else None

    monkeypatch.setattr(dumpscan._Windows, "_mapped", once)
    size = 4 * WINDOW
    data = bytearray(size)
    for p in range(0, size - 8, 8 * 37):
        data[p : p + 8] = SIG
    path = tmp_path / "late.raw"
    path.write_bytes(data)
    assert _find(path, "mapped", SIG, 0, size, 8) == _want(bytes(data), SIG, 0, size, 8)
    assert len(calls) == 2


def test_bad_arguments_refused(tmp_path):
    path = tmp_path / "x.raw"
    path.write_bytes(bytes(64))
    for needle, align in ((SIG, 6), (SIG, 0), (b"IBI", 8)):
        with pytest.raises(ValueError):
            _find(path, "mapped", needle, 0, 64, align)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    spots=st.lists(st.integers(0, 3 * WINDOW), max_size=12),
    start=st.integers(0, 64),
    cut=st.integers(0, 64),
    align=st.sampled_from([4, 8, 16]),
    filler=st.sampled_from([b"\x00", b"\xa5", b"IBI ", b"I"]),
)
def test_random_plantings_match_a_plain_search(tmp_path, mode, spots, start, cut, align, filler):
    size = 3 * WINDOW + 8
    data = bytearray((filler * size)[:size])
    for p in spots:
        data[p : p + 8] = SIG
    data = data[:size]
    path = tmp_path / "h.raw"
    path.write_bytes(data)
    end = size - cut
    assert _find(path, mode, SIG, start, end, align) == _want(bytes(data), SIG, start, end, align)


# --------------------------------------------------------------------------------------------
# The system-table scan through read_dump
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", range(16))
def test_table_found_only_on_the_8_byte_grid(tmp_path, mode, shift):
    # UEFI 2.10 section 7.2 AllocatePool: "All allocations are eight-byte aligned", so a table
    # off the grid is not one; a copy with a wrong CRC is a decoy. The table straddles a window
    # boundary for some shifts (its checks read past the window).
    if mode == "no-fd":
        pytest.skip("read_dump always has the file")
    at = 2 * WINDOW - 64 + shift
    data = bytearray(4 * WINDOW)
    data[at : at + 120] = _table()
    data[3 * WINDOW : 3 * WINDOW + 120] = _table(crc_ok=False)
    path = tmp_path / "t.raw"
    path.write_bytes(data)
    with read_dump(path) as ev:
        if shift % 8 == 0:
            assert ev.system_table_address == at and ev.system_table.bits == 64
        else:
            assert ev.system_table_address is None and ev.candidates == ()


@pytest.mark.parametrize("shift", [-8, -4, 0, 4, 8, 12])
def test_32_bit_table_kept_only_without_a_64_bit_one(tmp_path, mode, shift):
    # One pass checks both layouts per signature; the 32-bit candidates are kept only when no
    # 64-bit table was found, as the former two passes did. A 32-bit table is a pool allocation
    # too: 8-aligned, so one at 4 mod 8 is not taken.
    if mode == "no-fd":
        pytest.skip("read_dump always has the file")
    data = bytearray(4 * WINDOW)
    at = WINDOW + shift
    data[at : at + 72] = _table(32)
    path = tmp_path / "32.raw"
    path.write_bytes(data)
    with read_dump(path) as ev:
        if shift % 8:
            assert ev.system_table_address is None
            return
        assert ev.system_table_address == at and ev.system_table.bits == 32
    data[3 * WINDOW - 8 : 3 * WINDOW + 112] = _table(64)
    path.write_bytes(data)
    with read_dump(path) as ev:
        assert ev.system_table_address == 3 * WINDOW - 8 and ev.system_table.bits == 64
        assert {c.bits for c in ev.candidates} == {64}
        assert all(c.address != at for c in ev.candidates)


def test_elf_segment_off_the_file_grid(tmp_path, mode):
    # An ELF core whose segment data starts at an odd file offset: the grid follows the
    # physical address (p_paddr 8-aligned), so the table at file offset 5 mod 8 is found.
    if mode == "no-fd":
        pytest.skip("read_dump always has the file")
    ehdr = struct.Struct("<16sHHIQQQIHHHHHH")
    phdr = struct.Struct("<IIQQQQQQ")
    data_off = ehdr.size + phdr.size + 5
    body = bytearray(3 * WINDOW)
    body[WINDOW + 16 : WINDOW + 136] = _table()
    head = ehdr.pack(
        b"\x7fELF" + bytes([2, 1, 1]) + bytes(9),
        4,
        62,
        1,
        0,
        ehdr.size,
        0,
        0,
        ehdr.size,
        phdr.size,
        1,
        0,
        0,
        0,
    )
    ph = phdr.pack(1, 6, data_off, 0, 0x100000, len(body), len(body), 4096)
    path = tmp_path / "odd.core"
    path.write_bytes(head + ph + bytes(5) + body)
    with read_dump(path) as ev:
        assert ev.system_table_address == 0x100000 + WINDOW + 16


# --------------------------------------------------------------------------------------------
# Byte-granular search (find_all): four word searches, one per byte offset modulo 4
# --------------------------------------------------------------------------------------------

GUID_BYTES = bytes.fromhex("71e868884f1e3d11bc220080c73c8881")  # ACPI 2.0 GUID as stored


@pytest.fixture(params=["words", "memmem"])
def bytewise(request, monkeypatch):
    monkeypatch.setattr(dumpscan, "BLOCK", WINDOW)
    if request.param == "memmem":
        monkeypatch.setattr(dumpscan, "_WMEMCHR", None)
    return request.param


def _find_all(path: Path, needle: bytes, start: int, end: int) -> list[int]:
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            return list(dumpscan.find_all(mm, f.fileno(), needle, start, end))
        finally:
            mm.close()


@pytest.mark.parametrize("needle", [b"EL64\x00\x80\xef", b"EL64\x00\x80\xef\x2d", GUID_BYTES])
def test_bytewise_every_offset_near_block_boundaries(tmp_path, bytewise, needle):
    # Every byte offset around two block boundaries and the file's ends, one needle at a time.
    k = len(needle)
    size = 3 * WINDOW + 11
    spots = [0, 1, 2, 3, size - k] + [b + d for b in (WINDOW, 2 * WINDOW) for d in range(-k, 5)]
    for spot in spots:
        data = bytearray(b"\x5a" * size)
        data[spot : spot + k] = needle
        data[WINDOW + 101 : WINDOW + 101 + k] = needle[:-1] + b"\x00"  # all but the last byte
        data[WINDOW + 301 : WINDOW + 301 + k] = b"\x00" + needle[1:]  # all but the first
        path = tmp_path / "b.raw"
        path.write_bytes(data)
        assert _find_all(path, needle, 0, size) == [spot], spot


def test_bytewise_repeated_words_fall_back(tmp_path, monkeypatch):
    # A block of the needle's own words (and overlapping needles) passes MAX_WORD_MISSES: the
    # block is searched with memmem, with the same result.
    monkeypatch.setattr(dumpscan, "BLOCK", WINDOW)
    monkeypatch.setattr(dumpscan, "MAX_WORD_MISSES", 3)
    needle = b"ABABABAB"
    data = bytearray(b"AB" * (WINDOW + 5) + b"xyz" + b"EL64" * 50 + needle + b"q")
    path = tmp_path / "ab.raw"
    path.write_bytes(data)
    assert _find_all(path, needle, 0, len(data)) == _want(bytes(data), needle, 0, len(data), 1)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    spots=st.lists(st.integers(0, 2 * WINDOW + 50), max_size=10),
    k=st.integers(7, 16),
    start=st.integers(0, 40),
    cut=st.integers(0, 40),
    filler=st.sampled_from([b"\x00", b"\xa5\x5a", GUID_BYTES[:4], GUID_BYTES[1:5]]),
)
def test_bytewise_random_plantings(tmp_path, bytewise, spots, k, start, cut, filler):
    needle = GUID_BYTES[:k]
    size = 2 * WINDOW + 64
    data = bytearray((filler * size)[:size])
    for p in spots:
        data[p : p + k] = needle
    data = data[:size]
    path = tmp_path / "r.raw"
    path.write_bytes(data)
    end = size - cut
    assert _find_all(path, needle, start, end) == _want(bytes(data), needle, start, end, 1)


def test_bytewise_never_reads_past_a_short_block(tmp_path, monkeypatch):
    # The last block is short: the buffer past its bytes still holds the previous block's (and
    # zeros past those). A needle's head at the file's end must not be completed by them.
    monkeypatch.setattr(dumpscan, "BLOCK", WINDOW)
    needle = b"EL64\x01\x02\x00"
    data = bytearray(b"\x5a" * (2 * WINDOW + 4))
    data[WINDOW + 4 : WINDOW + 6] = needle[4:6]  # lands in the buffer past the short block
    data[2 * WINDOW :] = needle[:4]
    path = tmp_path / "short.raw"
    path.write_bytes(data)
    assert _find_all(path, needle, 0, len(data)) == []


def test_one_window_mapped_at_a_time(tmp_path, monkeypatch):
    # Memory stays one window whatever the dump's size: each mapping is at most MAP_WINDOW plus
    # the needle's overlap, and closed before the next is made (also when the search stops
    # early, as the scan does at its candidate cap).
    monkeypatch.setattr(dumpscan, "MAP_WINDOW", WINDOW)
    real = dumpscan._Windows._mapped
    maps = []

    def spy(self, pos, want):  # type: ignore[no-untyped-def]
        assert all(m.closed for m in maps)
        assert want <= WINDOW + len(SIG) - 1
        got = real(self, pos, want)
        maps.append(got[0])
        return got

    monkeypatch.setattr(dumpscan._Windows, "_mapped", spy)
    data = bytearray(10 * WINDOW)
    for p in range(0, len(data), WINDOW):
        data[p + 64 : p + 72] = SIG
    path = tmp_path / "w.raw"
    path.write_bytes(data)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            hits = dumpscan.find_aligned(mm, f.fileno(), SIG, 0, len(data), 8)
            assert [next(hits) for _ in range(3)] == [64, WINDOW + 64, 2 * WINDOW + 64]
            hits.close()
            assert len(maps) == 3 and all(m.closed for m in maps)
            assert len(list(dumpscan.find_aligned(mm, f.fileno(), SIG, 0, len(data), 8))) == 10
        finally:
            mm.close()
    assert len(maps) == 13 and all(m.closed for m in maps)
