"""Machine and sparse physical memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.machine import Fill, Machine, PhysicalMemory, noise
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryDescriptor, MemoryMap
from efihandoff.uefi.systab import ConfigurationTable

PAGE = 4096


def test_a_terabyte_costs_nothing_until_touched() -> None:
    m = PhysicalMemory(Fill.ZEROS)
    assert m.read(1 << 40, 16) == bytes(16)
    m.scrub(0, 1 << 40, Fill.RANDOM, 7)
    assert m.pages_materialised == 0
    m.write((1 << 40) - 2, b"abcd")  # across a page boundary: two pages
    assert m.pages_materialised == 2
    assert m.read((1 << 40) - 2, 4) == b"abcd"


def test_backgrounds() -> None:
    assert PhysicalMemory(Fill.ZEROS).read(0x1234, 8) == bytes(8)
    assert PhysicalMemory(Fill.UNKNOWN).read(0x1234, 8) is None
    rnd = PhysicalMemory(Fill.RANDOM, seed=3).read(0x1234, 8)
    assert rnd == noise(0x1234, 8, 3) and rnd != noise(0x1234, 8, 4)
    assert PhysicalMemory().read(-1, 1) is None and PhysicalMemory().read(0, -1) is None


def test_noise_is_deterministic_and_page_based() -> None:
    assert noise(0x1FF0, 32, 1) == noise(0x1FF0, 16, 1) + noise(0x2000, 16, 1)
    assert noise(0, 16, 1) != noise(PAGE, 16, 1)


def test_scrub_latest_wins_and_intact_leaves_bytes() -> None:
    m = PhysicalMemory(Fill.ZEROS)
    m.write(0x1000, b"\x11" * 16)
    m.scrub(0x1000, 0x3000, Fill.INTACT)
    assert m.read(0x1000, 16) == b"\x11" * 16
    m.scrub(0x0, 0x4000, Fill.RANDOM, 5)
    m.scrub(0x2000, 0x3000, Fill.ZEROS)
    assert m.read(0x1000, 16) == noise(0x1000, 16, 5)
    assert m.read(0x2000, 16) == bytes(16)
    assert m.read(0x3000, 16) == noise(0x3000, 16, 5)
    assert [(s, e, f) for s, e, f in m.scrubbed()] == [
        (0x0, 0x2000, Fill.RANDOM),
        (0x2000, 0x3000, Fill.ZEROS),
        (0x3000, 0x4000, Fill.RANDOM),
    ]


def test_adjacent_scrubs_of_one_fill_merge() -> None:
    m = PhysicalMemory()
    for i in range(100):
        m.scrub(i * PAGE, (i + 1) * PAGE, Fill.ZEROS)
    assert m.scrubbed() == [(0, 100 * PAGE, Fill.ZEROS)]


def test_copy_is_independent() -> None:
    a = PhysicalMemory(Fill.ZEROS)
    a.write(0, b"x")
    b = a.copy()
    b.write(0, b"y")
    b.scrub(0x1000, 0x2000, Fill.RANDOM)
    assert a.read(0, 1) == b"x" and a.read(0x1000, 4) == bytes(4)
    assert b.read(0, 1) == b"y"


def test_written_bytes_over_unknown_memory_stay_the_only_known_ones() -> None:
    m = PhysicalMemory(Fill.UNKNOWN)
    m.write(0x1000, b"abcd")
    assert m.read(0x1000, 4) == b"abcd"
    assert m.read(0x1000, 5) is None  # the fifth byte was never known
    m.write(0x1004, b"e")
    assert m.read(0x1000, 5) == b"abcde"
    m.write(0x2000, bytes(PAGE))  # a whole page: all known
    assert m.read(0x2000, PAGE) == bytes(PAGE)


# A reference: one value per byte, the latest operation winning.
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("w"), st.integers(0, 6 * PAGE), st.binary(min_size=1, max_size=300)),
        st.tuples(
            st.just("s"),
            st.integers(0, 6),
            st.integers(1, 3),
            st.sampled_from([Fill.ZEROS, Fill.RANDOM, Fill.INTACT]),
            st.integers(0, 2),
        ),
    ),
    max_size=12,
)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([Fill.ZEROS, Fill.RANDOM, Fill.UNKNOWN]),
    _ops,
    st.lists(st.tuples(st.integers(0, 8 * PAGE), st.integers(0, 2 * PAGE)), max_size=6),
)
def test_matches_a_byte_by_byte_reference(background: Fill, ops: list, reads: list) -> None:  # type: ignore[type-arg]
    m = PhysicalMemory(background, seed=1)
    ref: dict[int, int | None] = {}  # byte -> value; absent: background

    def background_byte(a: int, fill: Fill, seed: int) -> int | None:
        if fill is Fill.ZEROS:
            return 0
        if fill is Fill.RANDOM:
            return noise(a, 1, seed)[0]
        return None

    scrubbed: dict[int, tuple[Fill, int]] = {}  # page -> latest fill
    for op in ops:
        if op[0] == "w":
            _, addr, data = op
            m.write(addr, data)
            for i, b in enumerate(data):
                ref[addr + i] = b
        else:
            _, first, n, fill, seed = op
            m.scrub(first * PAGE, (first + n) * PAGE, fill, seed)
            if fill is Fill.INTACT:
                continue
            for p in range(first, first + n):
                scrubbed[p] = (fill, seed)
                for a in range(p * PAGE, (p + 1) * PAGE):
                    ref.pop(a, None)

    def expect(a: int) -> int | None:
        if a in ref:
            return ref[a]
        fill, seed = scrubbed.get(a // PAGE, (background, 1))
        return background_byte(a, fill, seed)

    for addr, length in reads:
        want = [expect(a) for a in range(addr, addr + length)]
        got = m.read(addr, length)
        if any(b is None for b in want):
            assert got is None
        else:
            assert got == bytes(want)  # type: ignore[arg-type]


def test_machine_helpers() -> None:
    g = Guid.parse("b122a263-3661-4f68-9929-78f8b0d62180")
    mm = MemoryMap((MemoryDescriptor(4, 0x1000, 1), MemoryDescriptor(7, 0x1000, 4)))
    mem = PhysicalMemory(Fill.ZEROS)
    m = Machine(
        memory_map=mm,
        config_tables=(ConfigurationTable(g, 0x1000), ConfigurationTable(g, 0x2000)),
        memory=mem,
    )
    assert m.table(g) == ConfigurationTable(g, 0x1000)  # the first entry
    assert m.lookup(0x1800) == mm[0]  # first match
    assert m.read(0, 2) == bytes(2)
    assert Machine().read(0, 1) is None and Machine().lookup(0) is None
    assert m.with_(name="x").name == "x" and m.name == "machine"


def test_with_is_dataclasses_replace() -> None:
    """Machine.with_ makes what dataclasses.replace makes (a shallow copy: containers shared
    unless changed) and refuses a field Machine does not have."""
    import dataclasses

    import pytest

    m = Machine(name="a", notes=["n"], memory_type_evidence={1: "x"}, firmware_vendor="EDK II")
    for changes in ({}, {"name": "b"}, {"notes": [], "config_tables": ()}, {"memory": None}):
        got, want = m.with_(**changes), dataclasses.replace(m, **changes)
        assert got == want and type(got) is Machine and got is not m
        assert got.notes is want.notes and got.memory_type_evidence is m.memory_type_evidence
    with pytest.raises(TypeError):
        m.with_(nmae="b")


_spans = st.lists(
    st.tuples(st.integers(0, 40), st.integers(1, 6)).map(
        lambda t: (t[0] * PAGE, (t[0] + t[1]) * PAGE)
    ),
    max_size=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            _spans, st.sampled_from([Fill.ZEROS, Fill.RANDOM, Fill.INTACT]), st.integers(0, 1)
        ),
        max_size=4,
    ),
    st.lists(st.integers(0, 48 * PAGE), max_size=6),
)
def test_scrub_many_equals_one_scrub_each(batches: list, writes: list[int]) -> None:  # type: ignore[type-arg]
    a, b = PhysicalMemory(Fill.ZEROS), PhysicalMemory(Fill.ZEROS)
    for w in writes:
        a.write(w, b"\x77" * 64)
        b.write(w, b"\x77" * 64)
    for spans, fill, seed in batches:
        a.scrub_many(spans, fill, seed)
        for s, e in spans:
            b.scrub(s, e, fill, seed)
    assert a.scrubbed() == b.scrubbed()
    assert a.read(0, 48 * PAGE) == b.read(0, 48 * PAGE)


# UEFI 2.10 section 23.4: EFI_SYSTEM_RESOURCE_TABLE_GUID
ESRT = Guid.parse("b122a263-3661-4f68-9929-78f8b0d62180")


def _esrt_bytes(count: int, entries: int, max_: int = 4) -> bytes:
    """Header (count, max, version 1) then ``entries`` 40-byte entries of 0x11 ... (by hand)."""
    head = count.to_bytes(4, "little") + max_.to_bytes(4, "little") + (1).to_bytes(8, "little")
    return head + b"".join(bytes([0x11 * (i + 1)]) * 16 + bytes(24) for i in range(entries))


def _esrt_machine(raw: bytes, addr: int = 0x7000_0000) -> Machine:
    mem = PhysicalMemory(Fill.UNKNOWN)
    mem.write(addr, raw)
    return Machine(config_tables=(ConfigurationTable(ESRT, addr),), memory=mem)


def test_read_esrt_whole_table() -> None:
    got = _esrt_machine(_esrt_bytes(2, 2)).read_esrt()
    assert got is not None and got.address == 0x7000_0000
    assert got.header is not None and got.header.fw_resource_count == 2
    assert got.table is not None and len(got.table.entries) == 2
    assert str(got.table.entries[1].fw_class) == "22222222-2222-2222-2222-222222222222"


def test_read_esrt_header_only_when_entries_are_unknown_or_over_the_cap() -> None:
    short = _esrt_machine(_esrt_bytes(3, 2)).read_esrt()  # the third entry's bytes unknown
    assert short is not None and short.header is not None and short.table is None
    capped = _esrt_machine(_esrt_bytes(3, 3)).read_esrt(max_entries=2)
    assert capped is not None and capped.header is not None and capped.table is None
    whole = _esrt_machine(_esrt_bytes(3, 3)).read_esrt(max_entries=3)
    assert whole is not None and whole.table is not None


def test_read_esrt_unknown_bytes_or_no_table() -> None:
    unknown = _esrt_machine(b"")
    got = unknown.read_esrt()
    assert got is not None and got.header is None and got.table is None
    assert Machine().read_esrt() is None
    assert Machine(config_tables=()).read_esrt() is None
