"""paths.memo: explain's JSON is the same byte for byte with the cache warm (from earlier,
similar and identical machines) and with it off, over random machines: random maps, memory
types, attributes, tables, ESRT header bytes, Xen and Linux versions; generated kernel logs
(E820-only ones with their reduced candidate machines among them)."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.explain import explain
from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.outputs.json import explain_document
from efihandoff.paths import memo
from efihandoff.paths.presets import PRESETS, parse_path
from efihandoff.sources import Source, SourceKind, View, log_views
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.memmap import MemoryDescriptor, MemoryMap, MemoryType
from efihandoff.uefi.systab import ConfigurationTable

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import make_corpus  # noqa: E402

PAGE = 4096
TYPES = [int(t) for t in MemoryType if int(t) <= 15]
# The tables the registry knows (their GUIDs, ESRT first), so the judge sizes and names them.
GUIDS = [ESRT_GUID, *(g for g in known_tables.REGISTRY if g != ESRT_GUID)][:8]


def _doc(views: list[View], specs: list) -> str:  # type: ignore[type-arg]
    return json.dumps(explain_document(explain(views, specs)), sort_keys=True)


def _both(views_of: object, specs: list) -> tuple[str, str]:  # type: ignore[type-arg]
    """(JSON with the cache as it is, JSON with it off), each on freshly read views."""
    assert callable(views_of)
    cached = _doc(views_of(), specs)
    with memo.disabled():
        fresh = _doc(views_of(), specs)
    return cached, fresh


@st.composite
def machines(draw: st.DrawFn) -> Machine:
    """A machine as a scenario gives it: a sorted map with holes, tables in random descriptors,
    ESRT header and entry bytes (some hostile), memory that reads as zeros, noise or unknown."""
    n = draw(st.integers(2, 12))
    descs = []
    addr = draw(st.integers(0, 64)) * PAGE
    for _ in range(n):
        pages = draw(st.integers(1, 64))
        t = draw(st.sampled_from(TYPES))
        attr = draw(st.sampled_from([0xF, 0x8000_0000_0000_000F, 0x1, 0x8000_0000_0000_0000]))
        descs.append(MemoryDescriptor(t, addr, pages, attr))
        addr += (pages + draw(st.integers(0, 8))) * PAGE
    memory = PhysicalMemory(
        background=draw(st.sampled_from([Fill.ZEROS, Fill.RANDOM, Fill.UNKNOWN])),
        seed=draw(st.integers(0, 3)),
    )
    tables = []
    for guid in draw(st.lists(st.sampled_from(GUIDS), min_size=0, max_size=5, unique=True)):
        d = draw(st.sampled_from(descs))
        at = d.phys_addr + draw(st.integers(0, d.num_pages * PAGE - 1)) // 8 * 8
        tables.append(ConfigurationTable(guid, at))
        if guid == ESRT_GUID:
            count = draw(st.integers(0, 4))
            header = struct.pack(
                "<IIQ", count, draw(st.sampled_from([count, count + 1, 0])),
                draw(st.sampled_from([1, 1, 2])),
            )
            memory.write(at, header + draw(st.binary(min_size=0, max_size=40 * count)))
    return Machine(
        memory_map=MemoryMap(tuple(descs)),
        config_tables=tuple(tables),
        memory=memory,
        firmware_vendor=draw(st.sampled_from([None, "EDK II", "American Megatrends"])),
        name="random",
    )


specs_st = st.lists(
    st.one_of(
        st.sampled_from(sorted(PRESETS)).map(lambda i: PRESETS[i]),
        st.builds(
            lambda x, lx, boot: parse_path(f"xen={x},linux={lx},boot={boot}"),
            st.sampled_from(["4.16.5", "4.17.0", "4.17.1", "4.19.5", "4.22.0"]),
            st.sampled_from(["6.1", "6.3", "6.8"]),
            st.sampled_from(["efi", "multiboot2"]),
        ),
        st.builds(lambda lx: parse_path(f"linux={lx}"), st.sampled_from(["6.1", "6.3"])),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(machines(), min_size=1, max_size=3), specs_st, st.integers(0, 2))
def test_random_machines_same_json_with_and_without_cache(
    ms: list[Machine], specs: list, again: int  # type: ignore[type-arg]
) -> None:
    # the cache stays warm across examples and machines: earlier answers must not leak
    for m in [*ms, *ms[:again]]:
        def views(m: Machine = m) -> list[View]:
            return [View(Source("random.toml", SourceKind.SCENARIO), m)]

        cached, fresh = _both(views, specs)
        assert cached == fresh


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 10_000),
    st.sampled_from(["e820", "efi-debug", "dom0-serial", "dom0", "xl", None]),
    specs_st,
)
def test_generated_logs_same_json_with_and_without_cache(
    index: int, kind: str | None, specs: list  # type: ignore[type-arg]
) -> None:
    mix = {kind: 1} if kind else None
    try:
        data, _ = make_corpus.generate_log(7, index, 20_000, mix=mix, descriptors=(20, 60))
    except KeyError:
        pytest.skip("kind not in this generator's mix")
    if data[:2] == b"\x1f\x8b":
        import gzip
        import zlib

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):  # a cut or corrupt gzip the generator planted
            return
    try:
        log_views(data, "gen.log")
    except Exception:  # garbage the generator planted: nothing to explain
        return
    for boot in range(len(log_views(data, "gen.log"))):
        def views(boot: int = boot) -> list[View]:
            return [log_views(data, "gen.log")[boot]]

        first, fresh = _both(views, specs)
        again, _ = _both(views, specs)  # the second time every simulation is a hit
        assert first == fresh == again


def test_hits_are_counted_and_results_are_the_callers_own() -> None:
    memo.clear()
    m = Machine(
        memory_map=MemoryMap((MemoryDescriptor(int(MemoryType.EfiBootServicesData), 0, 16),)),
        config_tables=(ConfigurationTable(ESRT_GUID, 0x1000),),
        memory=PhysicalMemory(Fill.ZEROS),
    )
    spec = PRESETS["xen-4.17"]
    a = memo.simulate(m, spec)
    a.log.append("changed by the caller")
    a.tables.clear()
    b = memo.simulate(m, parse_path("xen-4.17"))  # same parameters, another label
    assert memo.stats().hits == 1 and memo.stats().misses == 1
    assert "changed by the caller" not in b.log and ESRT_GUID in b.tables
    assert b.spec.id == "xen-4.17"
    with memo.disabled():
        memo.simulate(m, spec)
    assert memo.stats().hits == 1


def test_env_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    memo.clear()
    monkeypatch.setenv(memo.ENV, "0")
    m = Machine(
        memory_map=MemoryMap((MemoryDescriptor(int(MemoryType.EfiConventionalMemory), 0, 4),)),
        config_tables=(),
        memory=PhysicalMemory(Fill.ZEROS),
    )
    memo.simulate(m, PRESETS["native"])
    memo.simulate(m, PRESETS["native"])
    assert memo.stats().hits == 0 and memo.stats().misses == 0


def test_a_changed_byte_is_another_question() -> None:
    """Machines that differ only in the ESRT's bytes do not share a result."""
    memo.clear()

    def machine(version: int) -> Machine:
        mem = PhysicalMemory(Fill.ZEROS)
        mem.write(0x1000, struct.pack("<IIQ", 1, 1, version) + bytes(40))
        return Machine(
            memory_map=MemoryMap(
                (MemoryDescriptor(int(MemoryType.EfiBootServicesData), 0, 16),)
            ),
            config_tables=(ConfigurationTable(ESRT_GUID, 0x1000),),
            memory=mem,
        )

    good = memo.simulate(machine(1), PRESETS["native"])
    bad = memo.simulate(machine(2), PRESETS["native"])
    assert memo.stats().hits == 0
    assert good.esrt.verdict != bad.esrt.verdict


def test_the_key_covers_every_field_a_simulation_reads() -> None:
    """A tripwire: if simulate() starts reading a Machine field the key leaves out, the cache
    could answer from another machine; this fails first."""
    keyed = {
        "memory_map", "system_table_address", "system_table", "config_table_address",
        "config_tables", "memory", "firmware_vendor", "firmware_state",
    }
    methods = {"read", "table", "lookup"}  # their bodies read keyed fields through self

    class Spy(Machine):
        def __getattribute__(self, name: str) -> object:
            if not name.startswith("__") and name != "seen":
                object.__getattribute__(self, "seen").add(name)
            return object.__getattribute__(self, name)

    from efihandoff.paths import simulate as simulate_mod
    from efihandoff.sources import example_path, read_source

    for example in ("laptop.toml", "esrt-bsdata-1.toml", "memattr-tpm-bsdata.toml"):
        (view,) = read_source(example_path().parent / example)
        m = view.machine
        spy = Spy(**{f: getattr(m, f) for f in Machine.__dataclass_fields__})
        object.__setattr__(spy, "seen", set())
        for spec in PRESETS.values():
            simulate_mod.simulate(spy, spec)
        seen = object.__getattribute__(spy, "seen")
        assert seen and seen <= keyed | methods, sorted(seen - keyed - methods)
