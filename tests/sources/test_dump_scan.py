"""The dump scan's aligned search (dumpscan.find_aligned) and the system-table scan on it: every
signature on the alignment grid is found once, wherever it sits (file ends, window and block
boundaries, past holes), whichever way the bytes are reached (read blocks, no wmemchr, no file
descriptor: DumpFile.find); signatures off the grid, wrong CRCs and words that only start like
the signature are not reported. Tables here are written by hand from the UEFI layout (2.10
section 4.2/4.3: header of Signature, Revision, HeaderSize, CRC32, Reserved; 120 bytes in the
64-bit layout, 72 in the 32-bit one), the CRC32 with zlib over HeaderSize bytes, field zero."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.errors import ParseError, SourceError
from efihandoff.sources import dumpmemory, dumpscan
from efihandoff.sources.dump import read_dump
from efihandoff.sources.dumpmemory import DumpFile

SIG = b"IBI SYST"
WINDOW = 4096  # small windows and blocks so boundaries are many
MODES = ["read", "no-wmemchr", "no-fd"]


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
    monkeypatch.setattr(dumpscan, "BLOCK", WINDOW)
    monkeypatch.setattr(dumpmemory, "FIND_BLOCK", WINDOW)
    if request.param == "no-wmemchr":
        monkeypatch.setattr(dumpscan, "_WMEMCHR", None)
    return request.param


def _want(data: bytes, needle: bytes, start: int, end: int, align: int) -> list[int]:
    k = len(needle)
    return [p for p in range(start, end - k + 1, align) if data[p : p + k] == needle]


def _find(path: Path, mode: str, needle: bytes, start: int, end: int, align: int) -> list[int]:
    with open(path, "rb") as f:
        file = DumpFile(f.fileno(), os.fstat(f.fileno()).st_size, str(path))
        try:
            fd = None if mode == "no-fd" else file.fd
            return list(dumpscan.find_aligned(file, fd, needle, start, end, align))
        finally:
            file.close()


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


def test_bad_arguments_refused(tmp_path):
    path = tmp_path / "x.raw"
    path.write_bytes(bytes(64))
    for needle, align in ((SIG, 6), (SIG, 0), (b"IBI", 8)):
        with pytest.raises(ValueError):
            _find(path, "read", needle, 0, 64, align)


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
        file = DumpFile(f.fileno(), os.fstat(f.fileno()).st_size, str(path))
        try:
            return list(dumpscan.find_all(file, file.fd, needle, start, end))
        finally:
            file.close()


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


def test_one_block_read_at_a_time(tmp_path, monkeypatch):
    # Memory stays one block whatever the dump's size: each read asks for at most BLOCK plus the
    # needle's overlap, into the one buffer, which is closed when the search ends (also when it
    # stops early, as the scan does at its candidate cap).
    monkeypatch.setattr(dumpscan, "BLOCK", WINDOW)
    real = dumpscan._Blocks._read
    reads: list[int] = []
    made = []

    def spy(self, pos, want):  # type: ignore[no-untyped-def]
        assert want <= WINDOW + len(SIG) - 1
        reads.append(pos)
        got = real(self, pos, want)
        if self._buf not in made:
            made.append(self._buf)
        return got

    monkeypatch.setattr(dumpscan._Blocks, "_read", spy)
    data = bytearray(10 * WINDOW)
    for p in range(0, len(data), WINDOW):
        data[p + 64 : p + 72] = SIG
    path = tmp_path / "w.raw"
    path.write_bytes(data)
    with open(path, "rb") as f:
        hits = dumpscan.find_aligned(data, f.fileno(), SIG, 0, len(data), 8)
        assert [next(hits) for _ in range(3)] == [64, WINDOW + 64, 2 * WINDOW + 64]
        hits.close()
        assert reads == [0, WINDOW, 2 * WINDOW]
        assert len(made) == 1 and made[0].closed
        assert len(list(dumpscan.find_aligned(data, f.fileno(), SIG, 0, len(data), 8))) == 10
    assert len(reads) == 13 and len(made) == 2 and all(m.closed for m in made)


# --------------------------------------------------------------------------------------------
# A dump that shrinks while it is read: a result or ParseError, never SIGBUS
# --------------------------------------------------------------------------------------------


def _planted(tmp_path: Path) -> tuple[Path, int]:
    data = bytearray(8 * WINDOW)
    at = 5 * WINDOW + 64
    data[at : at + 120] = _table()
    path = tmp_path / "shrinks.raw"
    path.write_bytes(data)
    return path, at


def test_truncated_after_reading_raises_parse_error(tmp_path):
    # The file cut to one page after read_dump: the dump's later reads (its memory, the second
    # pass for a boot_params map) raise ParseError at the first byte they miss, where a mapping
    # of the file used to kill the process with SIGBUS. Run in a child, so a signal fails the
    # test instead of killing the test run.
    path, at = _planted(tmp_path)
    code = f"""
import os, sys
from efihandoff.errors import ParseError
from efihandoff.sources.dump import read_dump
ev = read_dump({str(path)!r})
assert ev.system_table_address == {at}
os.truncate({str(path)!r}, 4096)
for step, first_missing in ((lambda: ev.memory.read({at}, 120), {at}), (ev.boot_memory_map, 4096)):
    try:
        step()
    except ParseError as exc:
        assert exc.offset == first_missing and "shrank" in str(exc), exc
    else:
        sys.exit("no ParseError")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.strip() == "ok"


def test_truncated_during_the_scan_raises_parse_error(tmp_path, monkeypatch):
    # The file cut while the scan reads it: ParseError at the new end, not a scan that quietly
    # ends there and reports no system table.
    monkeypatch.setattr(dumpscan, "BLOCK", WINDOW)
    path, _ = _planted(tmp_path)
    real = dumpscan._pread

    def cut_then_read(fd, into, pos, want):  # type: ignore[no-untyped-def]
        if pos >= 2 * WINDOW:
            os.truncate(path, 3 * WINDOW)
        return real(fd, into, pos, want)

    monkeypatch.setattr(dumpscan, "_pread", cut_then_read)
    with pytest.raises(ParseError, match="shrank") as caught:
        read_dump(path)
    assert caught.value.offset == 3 * WINDOW


def test_dump_file_reads_and_finds_like_bytes(tmp_path, monkeypatch):
    # DumpFile against the bytes it holds: slices (clipped, stepped, negative), single bytes,
    # find across its blocks; and a closed one refuses to read.
    monkeypatch.setattr(dumpmemory, "FIND_BLOCK", 16)
    data = bytes(range(256)) * 3
    path = tmp_path / "b.raw"
    path.write_bytes(data)
    with open(path, "rb") as f:
        file = DumpFile(f.fileno(), len(data), "b.raw")
    assert len(file) == len(data)
    for key in (slice(0, 4), slice(250, 270), slice(-8, None), slice(700, 900), slice(5, 2),
                slice(1, 40, 3)):
        assert file[key] == data[key], key
    assert file[17] == 17 and file[-1] == 255
    with pytest.raises(IndexError):
        file[len(data)]
    for sub in (bytes([15, 16, 17]), bytes([255, 0]), b"\x00", bytes([1, 3])):
        for start, end in ((0, None), (20, 300), (250, 258), (600, 768)):
            assert file.find(sub, start, end) == data.find(sub, start, end), (sub, start, end)
    file.close()
    with pytest.raises(ParseError, match="closed"):
        file[0:4]


def test_a_refused_read_is_a_source_error(tmp_path, monkeypatch):
    # EIO from the disk (or a descriptor the system will not duplicate): SourceError naming
    # the file and offset, not an OSError escaping.
    path, _ = _planted(tmp_path)

    def eio(*args):  # type: ignore[no-untyped-def]
        raise OSError(errno.EIO, "Input/output error")

    with open(path, "rb") as f:
        file = DumpFile(f.fileno(), os.fstat(f.fileno()).st_size, "d.raw")
    monkeypatch.setattr(os, "pread", eio)
    monkeypatch.setattr(os, "preadv", eio)
    with pytest.raises(SourceError, match=r"d\.raw: cannot read at offset 0x40: Input/output"):
        file[64:72]
    with pytest.raises(SourceError, match="offset 0x0: Input/output"):
        list(dumpscan.find_aligned(b"", file.fd, SIG, 0, 8 * WINDOW, 8))
    file.close()
    monkeypatch.setattr(os, "dup", eio)
    with pytest.raises(SourceError, match="cannot read"), open(path, "rb") as f:
        DumpFile(f.fileno(), 1, "d.raw")
