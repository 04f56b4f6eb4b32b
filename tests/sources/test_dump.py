"""Memory dumps: raw images and ELF cores built from a bundled scenario give back the scenario's
system table, config tables and ESRT; malformed headers, truncation, bad CRCs and pointers
outside the dump end in a result or a ParseError, with memory that does not grow with the dump."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.errors import ParseError, SourceError
from efihandoff.sources.dump import DumpMemory, DumpSegment, looks_like_elf_core, read_dump
from efihandoff.sources.scenario import load_scenario
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID, Esrt
from efihandoff.uefi.memmap import MemoryDescriptor
from efihandoff.uefi.systab import EFI_SYSTEM_TABLE_SIGNATURE, SystemTable, TableHeader

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "laptop.toml"
HOSTILE = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# gABI ELF64 header and program header (little-endian).
EHDR64 = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR64 = struct.Struct("<IIQQQQQQ")
IDENT64 = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)


@pytest.fixture(scope="module")
def laptop():
    machine = load_scenario(EXAMPLE)
    pages = {p: bytes(b) for p, b in machine.memory._pages.items()}  # test-only peek
    return machine, pages


def _runs(pages: dict[int, bytes]) -> list[tuple[int, bytes]]:
    """Contiguous runs of materialised pages as (physical address, bytes)."""
    out: list[tuple[int, bytearray]] = []
    for p in sorted(pages):
        if out and out[-1][0] + len(out[-1][1]) == p << 12:
            out[-1][1].extend(pages[p])
        else:
            out.append((p << 12, bytearray(pages[p])))
    return [(a, bytes(b)) for a, b in out]


def _raw(path: Path, pages: dict[int, bytes]) -> Path:
    """A sparse raw image: each page at the file offset equal to its physical address."""
    with path.open("wb") as f:
        for p in sorted(pages):
            f.seek(p << 12)
            f.write(pages[p])
    return path


def _elf(
    path: Path,
    segments: list[tuple[int, bytes]],
    *,
    memsz_extra: int = 0,
    filesz_extra: int = 0,
    paddr_zero: bool = False,
    gap: bytes = b"\xcc" * 13,
) -> Path:
    """An ELF64 core: the header, one PT_LOAD per segment, then the data in reverse order with
    junk between, so file offsets never equal physical addresses."""
    n = len(segments)
    data_start = EHDR64.size + n * PHDR64.size
    offsets = {}
    pos = data_start
    body = bytearray()
    for i in reversed(range(n)):
        body += gap
        pos += len(gap)
        offsets[i] = pos
        body += segments[i][1]
        pos += len(segments[i][1])
    head = EHDR64.pack(
        IDENT64, 4, 62, 1, 0, EHDR64.size, 0, 0, EHDR64.size, PHDR64.size, n, 0, 0, 0
    )
    phdrs = b"".join(
        PHDR64.pack(
            1,  # PT_LOAD
            6,
            offsets[i],
            phys if paddr_zero else 0,  # p_vaddr
            0 if paddr_zero else phys,  # p_paddr
            len(data) + (filesz_extra if i == n - 1 else 0),
            len(data) + (memsz_extra if i == n - 1 else 0) + (filesz_extra if i == n - 1 else 0),
            4096,
        )
        for i, (phys, data) in enumerate(segments)
    )
    path.write_bytes(head + phdrs + bytes(body))
    return path


def _expect(machine, ev):
    """The dump's findings equal the scenario's."""
    assert ev.system_table_address == machine.system_table_address
    assert ev.system_table == machine.system_table
    assert [(t.guid, t.address) for t in ev.config_tables] == [
        (c.guid, c.table) for c in machine.config_tables
    ]
    for t in ev.config_tables:
        want = known_tables.table_size(t.guid, machine.read, t.address)
        assert (t.size, t.translation) == (want.size, "identity")
    esrt_ct = machine.table(ESRT_GUID)
    assert ev.esrt_address == esrt_ct.table
    head = Esrt.parse_header(machine.read(esrt_ct.table, 16))
    assert ev.esrt == Esrt.parse(machine.read(esrt_ct.table, head.size))
    assert ev.firmware_vendor == "EDK II"


# --------------------------------------------------------------------------------------------
# round trips from the scenario


def test_raw_dump_of_scenario(tmp_path, laptop):
    machine, pages = laptop
    path = _raw(tmp_path / "laptop.raw", pages)
    tracemalloc.start()
    try:
        ev = read_dump(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    with ev:
        assert ev.format == "raw" and ev.size == path.stat().st_size
        _expect(machine, ev)
        assert ev.problems == ()
        assert peak < 8 << 20  # the 2 GiB (sparse) image is never copied
        m = ev.to_machine()
        assert [(c.guid, c.table) for c in m.config_tables] == [
            (c.guid, c.table) for c in machine.config_tables
        ]
        esrt = machine.table(ESRT_GUID).table
        assert m.read(esrt, 56) == machine.read(esrt, 56)
        assert m.memory_map is None and m.system_table_address == machine.system_table_address
    assert m.read(esrt, 16) is None  # closed with the evidence


def test_elf_core_of_scenario(tmp_path, laptop):
    machine, pages = laptop
    runs = _runs(pages)
    with read_dump(_elf(tmp_path / "laptop.core", runs)) as ev:
        assert ev.format == "elf64"
        assert [(s.phys, s.size) for s in ev.segments] == [(a, len(b)) for a, b in runs]
        _expect(machine, ev)


def test_elf_core_two_segments_by_hand(tmp_path, laptop):
    machine, pages = laptop
    (base, blob), *_ = _runs(pages)
    assert len(blob) >= 3 * 4096  # system table, config array and tables span three pages
    cut = 4096
    segs = [(base, blob[:cut]), (base + cut, blob[cut:])]
    path = _elf(tmp_path / "two.core", segs, memsz_extra=8192)
    with read_dump(path) as ev:
        assert len(ev.segments) == 2
        _expect(machine, ev)
        mem = ev.memory
        assert mem.read(base + cut - 5, 10) == blob[cut - 5 : cut + 5]  # across the boundary
        assert mem.read(base + len(blob), 8192) == bytes(8192)  # p_memsz > p_filesz: zeros
        assert mem.read(base + len(blob) + 8192, 1) is None
        assert mem.read(base - 1, 2) is None


def test_elf_p_paddr_zero_uses_p_vaddr(tmp_path, laptop):
    machine, pages = laptop
    (base, blob), *_ = _runs(pages)
    segs = [(base, blob[:4096]), (base + 4096, blob[4096:])]
    with read_dump(_elf(tmp_path / "v.core", segs, paddr_zero=True)) as ev:
        assert any("p_vaddr" in p for p in ev.problems)
        _expect(machine, ev)


def test_pn_xnum_count_from_section_header(tmp_path, laptop):
    machine, pages = laptop
    (base, blob), *_ = _runs(pages)
    path = _elf(tmp_path / "x.core", [(base, blob)])
    raw = bytearray(path.read_bytes())
    # e_phnum = PN_XNUM, e_shoff -> a section header 0 appended with sh_info = 1.
    shoff = len(raw)
    raw += struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 1, 0, 0)
    struct.pack_into("<Q", raw, 40, shoff)
    struct.pack_into("<HHH", raw, 58, 64, 1, 0)
    struct.pack_into("<H", raw, 56, 0xFFFF)
    path.write_bytes(raw)
    with read_dump(path) as ev:
        assert len(ev.segments) == 1
        _expect(machine, ev)


# --------------------------------------------------------------------------------------------
# malformed ELF cores


def test_truncated_elf_headers(tmp_path, laptop):
    _, pages = laptop
    (base, blob), *_ = _runs(pages)
    whole = _elf(tmp_path / "w.core", [(base, blob[:4096]), (base + 4096, blob[4096:])])
    raw = whole.read_bytes()
    headers_end = EHDR64.size + 2 * PHDR64.size
    for cut in range(4, headers_end):
        p = tmp_path / "cut.core"
        p.write_bytes(raw[:cut])
        with pytest.raises(ParseError) as exc:
            read_dump(p)
        assert exc.value.offset is not None


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "needle"),
    [
        (4, "<B", 3, "ELF class"),
        (5, "<B", 7, "data encoding"),
        (16, "<H", 2, "not a core file"),
        (54, "<H", 8, "e_phentsize"),
        (56, "<H", 0, "without program headers"),
        (32, "<Q", 1 << 40, "past the end"),
    ],
)
def test_bad_elf_fields(tmp_path, laptop, offset, fmt, value, needle):
    _, pages = laptop
    (base, blob), *_ = _runs(pages)
    raw = bytearray(_elf(tmp_path / "b.core", [(base, blob)]).read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    p = tmp_path / "bad.core"
    p.write_bytes(raw)
    with pytest.raises(ParseError, match=needle):
        read_dump(p)


def test_pt_load_past_eof_is_clipped(tmp_path, laptop):
    machine, pages = laptop
    (base, blob), *_ = _runs(pages)
    path = _elf(tmp_path / "c.core", [(base, blob)], filesz_extra=1 << 30)
    with read_dump(path) as ev:
        (seg,) = ev.segments
        assert seg.file_bytes == len(blob) and seg.declared_filesz == len(blob) + (1 << 30)
        assert any("only" in p and "unknown" in p for p in ev.problems)
        _expect(machine, ev)
        assert ev.memory.read(base + len(blob) - 1, 2) is None


def test_segment_entirely_past_eof(tmp_path, laptop):
    _, pages = laptop
    (base, blob), *_ = _runs(pages)
    raw = bytearray(_elf(tmp_path / "e.core", [(base, blob)]).read_bytes())
    struct.pack_into("<Q", raw, EHDR64.size + 8, 1 << 50)  # p_offset far away
    p = tmp_path / "far.core"
    p.write_bytes(raw)
    with read_dump(p) as ev:
        assert ev.segments[0].file_bytes == 0
        assert ev.system_table_address is None and ev.config_tables is None
        assert ev.memory.read(base, 1) is None


# --------------------------------------------------------------------------------------------
# system table and pointers


def _patched(tmp_path, pages, addr: int, data: bytes) -> Path:
    patched = dict(pages)
    page, off = addr >> 12, addr & 0xFFF
    assert off + len(data) <= 4096
    buf = bytearray(patched[page])
    buf[off : off + len(data)] = data
    patched[page] = bytes(buf)
    return _raw(tmp_path / "patched.raw", patched)


def test_bad_crc_is_skipped(tmp_path, laptop):
    machine, pages = laptop
    st_addr = machine.system_table_address
    raw = bytearray(machine.read(st_addr, 120))
    raw[32] ^= 1  # FirmwareRevision changes, CRC32 does not
    with read_dump(_patched(tmp_path, pages, st_addr, bytes(raw))) as ev:
        assert ev.candidates == () and ev.system_table_address is None
        assert ev.config_tables is None and ev.esrt is None
        assert any("no EFI system table" in p for p in ev.problems)
        assert "no EFI system table found in the dump" in ev.to_machine().notes


def test_best_candidate_is_the_one_whose_tables_resolve(tmp_path, laptop):
    machine, pages = laptop
    st = machine.system_table
    decoy = dataclasses.replace(st, tables=0x7FFF_0000_0000).build(fix_crc=True)
    patched = dict(pages)
    patched[0x10] = decoy + bytes(4096 - len(decoy))  # a valid-looking copy at 0x10000
    with read_dump(_raw(tmp_path / "two.raw", patched), content_search=False) as ev:
        assert sorted(c.address for c in ev.candidates) == [0x10000, machine.system_table_address]
        assert ev.system_table_address == machine.system_table_address
        _expect(machine, ev)


def _virtual_config_pointer(tmp_path, machine, pages, virt: int) -> Path:
    st = dataclasses.replace(machine.system_table, tables=virt).build(fix_crc=True)
    return _patched(tmp_path, pages, machine.system_table_address, st)


def test_virtual_config_pointer(tmp_path, laptop):
    machine, pages = laptop
    phys = machine.system_table.tables
    page = phys & ~0xFFF
    virt = 0xFFFFFFFEFFC00000 + (phys & 0xFFF)
    path = _virtual_config_pointer(tmp_path, machine, pages, virt)
    # No translation and no heuristic: unknown, said so.
    with read_dump(path, content_search=False) as ev:
        assert ev.system_table_address == machine.system_table_address
        assert ev.config_tables is None
        assert any("not in the dump" in p for p in ev.problems)
    # A runtime map with virtual addresses (sysfs efi/runtime-map) translates it.
    rt = [MemoryDescriptor(6, page, 1, 1 << 63, 0xFFFFFFFEFFC00000)]
    with read_dump(path, runtime_map=rt, content_search=False) as ev:
        assert ev.config_table_address == phys
        assert [(t.guid, t.address) for t in ev.config_tables] == [
            (c.guid, c.table) for c in machine.config_tables
        ]
        assert ev.candidates[0].config_translation == "runtime map"
    # The content heuristic finds the array at the same page offset, and says it guessed.
    with read_dump(path) as ev:
        assert ev.config_table_address == phys
        assert any("heuristic" in p for p in ev.problems)
        assert ev.esrt is not None
    # A pointer at another page offset matches nothing.
    with read_dump(_virtual_config_pointer(tmp_path, machine, pages, virt + 8)) as ev:
        assert ev.config_tables is None


def test_table_pointer_outside_the_dump(tmp_path, laptop):
    machine, pages = laptop
    arr = machine.system_table.tables
    index = [c.guid for c in machine.config_tables].index(ESRT_GUID)
    entry = arr + 24 * index + 16
    with read_dump(_patched(tmp_path, pages, entry, struct.pack("<Q", 0x7FFF_0000_0000))) as ev:
        t = ev.config_tables[index]
        assert t.guid == ESRT_GUID and t.pointer == 0x7FFF_0000_0000 and t.address is None
        assert t.size is None and "not in the dump" in t.translation
        assert ev.esrt is None and ev.esrt_address is None
        m = ev.to_machine()
        assert m.table(ESRT_GUID).table == 0x7FFF_0000_0000
        assert "not translated" in m.memory_type_evidence[0x7FFF_0000_0000]


def test_esrt_claiming_huge_count(tmp_path, laptop):
    machine, pages = laptop
    esrt = machine.table(ESRT_GUID).table
    path = _patched(tmp_path, pages, esrt, struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF))
    with read_dump(path) as ev:
        assert ev.esrt is None and ev.esrt_address == esrt
        assert any("4294967295 entries" in p for p in ev.problems)


# --------------------------------------------------------------------------------------------
# bounds and hostile bytes


def test_memory_does_not_grow_with_a_dense_dump(tmp_path, laptop):
    machine, pages = laptop
    (base, blob), *_ = _runs(pages)
    path = tmp_path / "dense.core"
    size = 64 << 20
    with path.open("wb") as f:  # random data, then zeros actually written, then the tables
        f.write(os.urandom(16 << 20))
        zero = bytes(1 << 20)
        for _ in range(47):
            f.write(zero)
        f.write(bytes((1 << 20) - len(blob)))
        f.write(blob)
    # An ELF header whose single PT_LOAD maps the last bytes of the file to the tables.
    head = EHDR64.pack(IDENT64, 4, 62, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    ph = PHDR64.pack(1, 6, 0, 0, base - (size - len(blob)), size, size, 4096)
    with path.open("r+b") as f:
        f.write(head + ph)
    tracemalloc.start()
    try:
        ev = read_dump(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    with ev:
        _expect(machine, ev)
    assert peak < 8 << 20


def test_empty_and_missing(tmp_path):
    (tmp_path / "e").write_bytes(b"")
    with pytest.raises(ParseError, match="empty"):
        read_dump(tmp_path / "e")
    with pytest.raises(SourceError):
        read_dump(tmp_path / "missing")


@HOSTILE
@given(data=st.binary(min_size=1, max_size=8192))
def test_random_raw_bytes(tmp_path, data):
    p = tmp_path / "r.raw"
    p.write_bytes(data)
    with contextlib.suppress(ParseError), read_dump(p) as ev:
        ev.to_machine()


@HOSTILE
@given(tail=st.binary(min_size=0, max_size=600), phnum=st.integers(0, 0xFFFF))
def test_random_elf_headers(tmp_path, tail, phnum):
    head = bytearray(EHDR64.pack(IDENT64, 4, 62, 1, 0, 64, 0, 0, 64, 56, 0, 0, 0, 0))
    struct.pack_into("<H", head, 56, phnum)
    p = tmp_path / "r.core"
    p.write_bytes(bytes(head) + tail)
    with contextlib.suppress(ParseError), read_dump(p) as ev:
        ev.to_machine()


def test_dump_memory_without_file():
    mem = DumpMemory(None, [DumpSegment(0, 4096, 0, 4096, 4096)])
    assert mem.read(0, 1) is None and not mem.contains(0)


def test_elf32_core(tmp_path):
    # A 32-bit core with one segment holding a 32-bit system table (UEFI 2.10 section 4.3,
    # Linux efi_system_table_32_t: every pointer u32) and no config tables.
    table = SystemTable(
        TableHeader(EFI_SYSTEM_TABLE_SIGNATURE, 0x00020046, 72, 0),
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        bits=32,
    ).build(fix_crc=True)
    data = bytes(0x100) + table + bytes(0x100)
    ehdr = struct.pack(
        "<16sHHIIIIIHHHHHH",
        b"\x7fELF" + bytes([1, 1, 1]) + bytes(9),
        4,
        3,
        1,
        0,
        52,
        0,
        0,
        52,
        32,
        1,
        0,
        0,
        0,
    )
    phdr = struct.pack("<IIIIIIII", 1, 84, 0x1000, 0x1000, len(data), len(data), 6, 4096)
    p = tmp_path / "c32.core"
    p.write_bytes(ehdr + phdr + data)
    with read_dump(p) as ev:
        assert ev.format == "elf32"
        assert ev.system_table_address == 0x1100 and ev.system_table.bits == 32
        assert ev.config_tables == ()


def test_sniff():
    assert looks_like_elf_core(IDENT64 + b"\x04\x00")
    assert not looks_like_elf_core(IDENT64 + b"\x02\x00")
    assert not looks_like_elf_core(b"IBI SYST" * 3)


def test_aliasing_pt_loads_are_scanned_once(tmp_path, laptop, monkeypatch):
    # Issue 15: 60,000 PT_LOAD headers over the same bytes cost headers x size before. Each file
    # byte is now scanned once per alignment class, and the table is still found.
    from efihandoff.sources import dumpscan as dump_mod

    machine, pages = laptop
    (base, blob), *_ = _runs(pages)
    n = 60_000
    data_off = EHDR64.size + n * PHDR64.size
    head = EHDR64.pack(
        IDENT64, 4, 62, 1, 0, EHDR64.size, 0, 0, EHDR64.size, PHDR64.size, n, 0, 0, 0
    )
    phdr = PHDR64.pack(1, 6, data_off, 0, base, len(blob), len(blob), 4096)
    path = tmp_path / "alias.core"
    path.write_bytes(head + phdr * n + blob)
    scanned: list[tuple[int, int]] = []
    real = dump_mod._scan_range

    def counting(mm, fd, start, end):  # type: ignore[no-untyped-def]
        scanned.append((start, end))
        return real(mm, fd, start, end)

    monkeypatch.setattr(dump_mod, "_scan_range", counting)
    with read_dump(path) as ev:
        assert len(ev.segments) == n
        assert ev.system_table_address == machine.system_table_address
    assert scanned == [(data_off, data_off + len(blob))]  # once, both layouts checked per hit


def test_aliasing_at_shifted_offsets_stays_bounded(tmp_path, laptop):
    # Segments mapping the same bytes at 8-byte shifts give distinct candidates: capped.
    _, pages = laptop
    (base, blob), *_ = _runs(pages)
    n = 2000
    data_off = EHDR64.size + n * PHDR64.size
    head = EHDR64.pack(
        IDENT64, 4, 62, 1, 0, EHDR64.size, 0, 0, EHDR64.size, PHDR64.size, n, 0, 0, 0
    )
    phdrs = b"".join(
        PHDR64.pack(1, 6, data_off, 0, base + 8 * i, len(blob), len(blob), 4096) for i in range(n)
    )
    path = tmp_path / "shift.core"
    path.write_bytes(head + phdrs + blob)
    with read_dump(path) as ev:
        assert len(ev.candidates) <= 64
        assert any("candidates" in p or "alias" in p for p in ev.problems)


@pytest.mark.parametrize(
    "words,memmem,split",
    [(True, True, False), (False, True, True), (False, True, False), (False, False, False)],
)
def test_find_all_finds_every_needle_once(tmp_path, monkeypatch, words, memmem, split):
    # Needles at the file's ends, across block boundaries (the carried-over bytes), overlapping,
    # and past a hole of a sparse file: the same offsets as a plain search, each once; with
    # wmemchr's word search, memmem's (in one or two threads) or mmap.find.
    import mmap

    from efihandoff.sources import dumpscan

    if not words:
        monkeypatch.setattr(dumpscan, "_WMEMCHR", None)
    if not memmem:
        monkeypatch.setattr(dumpscan, "_MEMMEM", None)
    monkeypatch.setattr(dumpscan, "BLOCK", 4096)
    # halves of a block searched in two threads (overlapping by 7 bytes), or one search
    monkeypatch.setattr(dumpscan, "BLOCK_MIN_SPLIT", 16 if split else 1 << 20)
    spots_mid = [2048 - 4, 4096 + 2048 - 8, 4096 + 2048 + 3]
    needle = b"IBI SYST"
    size = 5 * 4096 + 300
    data = bytearray(b"\x5a" * size)
    spots = [0, 4096 - 3, 4096 - 8, 2 * 4096 - 1, 3 * 4096, 3 * 4096 + 4, size - 8, *spots_mid]
    for at in spots:
        data[at : at + 8] = needle
    data[8192 + 100 : 8192 + 108] = b"IBI SYS" + b"x"  # a near miss
    path = tmp_path / "blocks.raw"
    path.write_bytes(data)
    want = [i for i in range(size - 7) if data[i : i + 8] == needle]
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            got = list(dumpscan.find_all(mm, f.fileno(), needle, 0, size))
            assert got == want and len(want) >= 5
            # a sub-range: only the needles wholly inside it
            sub = list(dumpscan.find_all(mm, f.fileno(), needle, 4090, 3 * 4096 + 8))
            assert sub == [w for w in want if w >= 4090 and w + 8 <= 3 * 4096 + 8]
            assert list(dumpscan.find_all(mm, None, needle, 0, size)) == want
        finally:
            mm.close()
    # sparse: a hole of 64 MiB before the data, skipped unread
    sparse = tmp_path / "sparse.raw"
    with open(sparse, "wb") as f:
        f.truncate(64 << 20)
        f.seek(64 << 20)
        f.write(bytes(data))
    with open(sparse, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            got = list(dumpscan.find_all(mm, f.fileno(), needle, 0, (64 << 20) + size))
            assert got == [(64 << 20) + w for w in want]
        finally:
            mm.close()
