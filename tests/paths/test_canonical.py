"""paths.canonical: a reduced one-table machine moved to its class's canonical address gives
the same words as the machine where it lies (verdicts, booting, allowlist marks, ESRT
reservation, sysfs files, fwupd devices; not costs: the pages no table reaches are trimmed, and
paths.grouped takes costs as differences, checked in test_grouped) on every stack; survey
output is the same byte for byte with canonical placements and with the cache off."""

from __future__ import annotations

import json
import re
import struct
import sys
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff import survey
from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.paths import canonical, memo
from efihandoff.paths.presets import PRESETS, parse_path
from efihandoff.paths.simulate import PathResult, simulate
from efihandoff.sources.logmachine import candidate_machine
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.memmap import MemoryDescriptor, MemoryMap, MemoryType
from efihandoff.uefi.systab import ConfigurationTable

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import make_corpus  # noqa: E402

PAGE = 4096
GiB = 1 << 30
TYPES = [int(t) for t in MemoryType if int(t) <= 15]
GUIDS = [ESRT_GUID, *(g for g in known_tables.REGISTRY if g != ESRT_GUID)][:8]
ATTRS = [0xF, 0x8000_0000_0000_000F, 0x1, 0x8000_0000_0000_0000, 0x0]
# Page addresses at and near every class edge, and anywhere.
EDGES = [lo for lo, _ in canonical.CLASSES] + [hi for _, hi in canonical.CLASSES]
SPECS = [
    *PRESETS.values(),
    parse_path("xen=4.16.5,linux=6.1"),
    parse_path("xen=4.17.0,linux=6.3,boot=multiboot2"),
    parse_path("xen=4.19.5,linux=6.8,mapbs"),
    parse_path("xen=4.17.1,linux=6.12,scrub=zeros"),
    parse_path("linux=6.1"),
]


def words(r: PathResult) -> tuple[object, ...]:
    """Everything of a result that is not an address or a sentence."""
    return (
        tuple((g, tv.name, tv.verdict, tv.candidates) for g, tv in r.tables.items()),
        r.booted,
        r.halt is None,
        r.unusable,
        r.esrt_reserving,
        r.esrt_sysfs,
        r.sysfs,
        None if r.fwupd_devices is None else len(r.fwupd_devices),
        r.esrt_check,
    )


@st.composite
def placements(draw: st.DrawFn) -> Machine:
    """A reduced machine as explain builds one for a candidate type: one table, its own
    descriptor (one page, or as many as an E820 region gives), the free gap."""
    cls = draw(st.sampled_from(canonical.CLASSES))
    pages = draw(st.sampled_from([1, 1, 2, 16, 256]))
    lo, hi = cls[0] // PAGE, cls[1] // PAGE - pages
    page = draw(
        st.one_of(
            st.integers(lo, min(hi, lo + 4)),
            st.integers(max(lo, hi - 4), hi),
            st.integers(lo, hi),
        )
    )
    start = page * PAGE
    guid = draw(st.sampled_from(GUIDS))
    at = start + draw(st.integers(0, pages * PAGE - 1)) // 8 * 8
    memory = PhysicalMemory(background=Fill.UNKNOWN)
    if guid == ESRT_GUID and draw(st.booleans()):
        count = draw(st.sampled_from([0, 1, 3, 100, 128, 129, 0xFFFF_FFFF]))
        header = struct.pack(
            "<IIQ", count, draw(st.sampled_from([count, (count + 1) & 0xFFFF_FFFF, 0])),
            draw(st.sampled_from([1, 1, 2])),
        )
        memory.write(at, header + draw(st.binary(min_size=0, max_size=80)))
    if draw(st.booleans()):  # another table's bytes elsewhere, as a log machine keeps them
        memory.write(
            draw(st.sampled_from([0x1000, 0x7000_0000_0000, start + pages * PAGE,
                                  start + (pages + 1) * PAGE, start - PAGE])),
            draw(st.binary(min_size=1, max_size=64)),
        )
    mtype = draw(st.sampled_from(TYPES))
    table = ConfigurationTable(guid, at)
    own = MemoryDescriptor(mtype, start, pages, draw(st.sampled_from(ATTRS)))
    whole = Machine(memory_map=MemoryMap((own,)), config_tables=(table,), memory=memory,
                    firmware_vendor=draw(st.sampled_from([None, "EDK II", "Lenovo"])))
    end = at + draw(st.sampled_from([0, 16, 4096]))
    return candidate_machine(whole, whole.memory_map, table, mtype, end if end > at else None)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements(), st.sampled_from(SPECS))
def test_canonical_placement_gives_the_same_words(m: Machine, spec) -> None:  # type: ignore[no-untyped-def]
    placed = canonical.canonical(m)
    if placed is None:
        return
    assert placed.machine.config_tables is not None and m.config_tables is not None
    assert placed.machine.config_tables[0].table - m.config_tables[0].table == placed.delta
    if not canonical.applies(spec):
        return
    assert words(simulate(placed.machine, spec)) == words(simulate(m, spec))


def _shifted(m: Machine, pages: int) -> Machine:
    """``m`` with its table's descriptor, tables and memory ``pages`` pages higher (the free gap
    where it is)."""
    assert m.memory_map is not None and isinstance(m.memory, PhysicalMemory)
    delta = pages * PAGE
    gap = canonical.GAP_BASE
    descs = sorted(
        (
            d if d.phys_addr == gap else d.replace(phys_addr=d.phys_addr + delta)
            for d in m.memory_map.descriptors
        ),
        key=lambda d: d.phys_addr,
    )
    return m.with_(
        memory_map=MemoryMap(tuple(descs)),
        config_tables=tuple(
            ConfigurationTable(t.guid, t.table + delta) for t in m.config_tables or ()
        ),
        memory=m.memory.moved(0, 1 << 60, delta),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements(), placements(), st.sampled_from(["other", "equal", "shifted"]),
       st.integers(1, 64))  # fmt: skip
def test_placement_keys_tell_apart_what_machine_key_does(
    a: Machine, b: Machine, how: str, pages: int
) -> None:
    # The key is made without building the moved machine; two placements share it exactly
    # when the machines built from them pickle alike (memo.machine_key, the in-place key):
    # another machine, an equal one, the same one elsewhere (in its class: the same key).
    if how == "equal":
        b = a.with_()
    elif how == "shifted":
        b = _shifted(a, pages)
    pa, pb = canonical.canonical(a), canonical.canonical(b)
    if pa is None or pb is None:
        return
    assert (pa.key == pb.key) == (memo.machine_key(pa.machine) == memo.machine_key(pb.machine))
    if how == "equal" or (how == "shifted" and pa.span == pb.span):
        assert pa.key == pb.key  # moved within its class: one canonical machine


def _reduced(start: int, mtype: int = MemoryType.EfiBootServicesData) -> Machine:
    table = ConfigurationTable(ESRT_GUID, start + 0x18)
    memory = PhysicalMemory(background=Fill.UNKNOWN)
    memory.write(start + 0x18, struct.pack("<IIQ", 1, 1, 1))
    whole = Machine(
        memory_map=MemoryMap((MemoryDescriptor(mtype, start, 1, 0xF),)),
        config_tables=(table,),
        memory=memory,
    )
    assert whole.memory_map is not None
    return candidate_machine(whole, whole.memory_map, table, mtype, None)


# The class above the dom0 images and below the free gap, by hand from the module text.
ABOVE_IMAGES = 0x500_0000


def test_machines_in_one_class_meet_at_one_address() -> None:
    a = canonical.canonical(_reduced(0x4536_8000))
    b = canonical.canonical(_reduced(0x8ED0_0000))
    assert a is not None and b is not None
    assert a.span == b.span == (ABOVE_IMAGES, ABOVE_IMAGES + PAGE)
    assert a.machine.memory is not None
    assert a.machine.memory.read(ABOVE_IMAGES + 0x18, 16) == struct.pack("<IIQ", 1, 1, 1)
    # inside every default dom0 image (6.1's, 6.12's and 6.3's) and inside 6.1's and 6.12's
    inside = [canonical.canonical(_reduced(a)) for a in (0x100_0000, 0x110_0000)]
    assert [p.span[0] if p else None for p in inside] == [0x100_0000, 0x100_0000]
    deep = [canonical.canonical(_reduced(a)) for a in (0x200_0000, 0x41F_F000)]
    assert [p.span[0] if p else None for p in deep] == [0x120_0000, 0x120_0000]


def test_what_is_not_moved() -> None:
    assert canonical.canonical(_reduced(0x000F_F000)) is None  # below 1 MiB
    assert canonical.canonical(_reduced(0x011F_F000)) is not None  # the page below 18 MiB
    straddling = _reduced(0x011F_F000)
    assert straddling.memory_map is not None
    two = straddling.memory_map.descriptors[0].replace(num_pages=2)  # 18 MiB edge inside
    assert canonical.canonical(
        straddling.with_(memory_map=straddling.memory_map.replace_descriptor(0, two))
    ) is None
    assert canonical.canonical(_reduced(0x1_0000_0000)) is None  # 4-8 GiB: between classes
    scrubbed = _reduced(0x4536_8000)
    assert isinstance(scrubbed.memory, PhysicalMemory)
    scrubbed.memory.scrub(0xF000_0000, 0xF000_1000, Fill.ZEROS)
    assert canonical.canonical(scrubbed) is None
    random_fill = _reduced(0x4536_8000).with_(memory=PhysicalMemory(background=Fill.RANDOM))
    assert canonical.canonical(random_fill) is None
    whole = _reduced(0x4536_8000).with_(firmware_state=object())
    assert canonical.canonical(whole) is None


def test_known_bytes_move_only_while_a_read_could_reach_them() -> None:
    m = _reduced(0x4536_8000)
    assert isinstance(m.memory, PhysicalMemory)
    m.memory.write(0x4536_8000 + PAGE, b"\x02" * 8)  # right behind the descriptor: reachable
    m.memory.write(0x4536_8000 + 3 * PAGE, b"\x03")  # past an unwritten (unknown) page
    placed = canonical.canonical(m)
    assert placed is not None and isinstance(placed.machine.memory, PhysicalMemory)
    base = ABOVE_IMAGES
    assert placed.machine.memory.read(base + PAGE, 8) == b"\x02" * 8
    assert placed.machine.memory.page_addresses() == [base, base + PAGE]


def test_known_sizes_trim_the_room_past_them() -> None:
    """An ESRT whose header says 2 entries (16 + 2 * 40 bytes, UEFI 2.10 23.4) at 0x18 of a
    57-page descriptor: reads stop in its first page, so two pages are kept; one claiming
    more than the descriptor holds keeps the whole room (the size is clipped at its end)."""
    start = 0x4536_8000
    d = MemoryDescriptor(MemoryType.EfiRuntimeServicesData, start, 57, 0xF)
    table = ConfigurationTable(ESRT_GUID, start + 0x18)
    memory = PhysicalMemory(background=Fill.UNKNOWN)
    memory.write(start + 0x18, struct.pack("<IIQ", 2, 2, 1))
    assert canonical.trimmed(memory, d, (table,)).num_pages == 2
    big = PhysicalMemory(background=Fill.UNKNOWN)
    big.write(start + 0x18, struct.pack("<IIQ", 6000, 6000, 1))  # 240,016 bytes: 59 pages
    assert canonical.trimmed(big, d, (table,)).num_pages == 57
    middling = PhysicalMemory(background=Fill.UNKNOWN)
    middling.write(start + 0x18, struct.pack("<IIQ", 300, 300, 1))  # 12,016 bytes from 0x18
    assert canonical.trimmed(middling, d, (table,)).num_pages == 4  # 3 pages reached, 1 more


def test_a_dom0_image_inside_a_class_is_simulated_in_place() -> None:
    placed = canonical.canonical(_reduced(0x4536_8000))
    assert placed is not None
    assert canonical.applies(PRESETS["xen-4.17"])
    assert canonical.applies(PRESETS["xen-4.17-linux-6.1"])
    assert canonical.applies(parse_path("xen=4.17.1,linux=6.12"))
    assert not canonical.applies(parse_path("xen=4.17.1,dom0_kernel=0x40000000-0x42000000"))
    assert not canonical.applies(parse_path("xen=4.17.1,dom0_kernel=0x1000000-0x3000000"))


def test_words_only_shares_placements_across_machines() -> None:
    memo.clear()
    spec = PRESETS["xen-4.17"]
    with memo.words_only():
        memo.simulate(_reduced(0x4536_8000), spec)
        memo.simulate(_reduced(0x8ED0_0000), spec)
    assert memo.stats().hits == 1
    memo.clear()
    memo.simulate(_reduced(0x4536_8000), spec)
    memo.simulate(_reduced(0x8ED0_0000), spec)  # outside words_only: each where it lies
    assert memo.stats().hits == 0


def test_survey_output_is_the_same_with_canonical_placements_and_without_cache(
    tmp_path: Path,
) -> None:
    paths = []
    for i in range(24):
        data, _ = make_corpus.generate_log(11, i, 30_000, descriptors=(20, 80))
        p = tmp_path / f"{i:03d}.log"
        p.write_bytes(data)
        paths.append(str(p))
    memo.clear()
    fast = survey.run(paths, jobs=1)
    assert memo.stats().hits > 0
    with memo.disabled():
        slow = survey.run(paths, jobs=1)
    assert json.dumps(fast.to_json(), sort_keys=True) == json.dumps(slow.to_json(), sort_keys=True)
    assert fast.to_csv() == slow.to_csv()


XEN_VERSIONS = ["4.16.0", "4.16.3", "4.16.5", "4.17.0", "4.17.1", "4.17.3", "4.17.4", "4.18.0",
                "4.18.2", "4.19.0", "4.19.5", "4.20.0", "4.20.3", "4.21.0", "4.21.1", "4.22.0"]
LINUX_VERSIONS = ["5.15", "6.1", "6.2", "6.3", "6.5", "6.6", "6.8", "6.11", "6.12", "6.15"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    placements(),
    st.sampled_from([None, *XEN_VERSIONS]),
    st.sampled_from(XEN_VERSIONS),
    st.sampled_from(LINUX_VERSIONS),
    st.sampled_from(LINUX_VERSIONS),
    st.sampled_from(["efi", "multiboot2"]),
    st.sampled_from(["", ",mapbs", ",policy=reserve-hypercall"]),
)
def test_versions_sharing_a_words_key_give_the_same_words(  # type: ignore[no-untyped-def]
    m, x1, x2, l1, l2, boot, extra
) -> None:
    if x1 is None:
        s1, s2 = parse_path(f"linux={l1}"), parse_path(f"linux={l2}")
    else:
        s1 = parse_path(f"xen={x1},linux={l1},boot={boot}{extra}")
        s2 = parse_path(f"xen={x2},linux={l2},boot={boot}{extra}")
    if memo.words_spec_key(s1) != memo.words_spec_key(s2):
        return
    assert words(simulate(m, s1)) == words(simulate(m, s2))


def test_the_words_key_tells_the_version_rules_apart() -> None:
    key = memo.words_spec_key
    assert key(parse_path("xen=4.17.3,linux=6.1")) == key(parse_path("xen=4.17.4,linux=6.1"))
    assert key(parse_path("xen=4.16.5,linux=6.1")) != key(parse_path("xen=4.17.0,linux=6.1"))
    assert key(parse_path("xen=4.19.0,linux=6.3")) != key(parse_path("xen=4.19.5,linux=6.3"))
    assert key(parse_path("linux=6.2")) != key(parse_path("linux=6.3"))
    assert key(parse_path("xen=4.17.0,linux=6.5")) != key(parse_path("xen=4.17.0,linux=6.6"))


# Every place the model reads a path's versions (a fragment of its line), and what covers it in
# memo.words_spec_key: "rule" (linux.version_rules, or a PathSpec property the key holds) or
# "words" (log lines and reasons, which words_only callers never read).
VERSION_READS = [
    ("linux.py", "DOM0_KERNEL_END.get(spec.linux[:2]", "rule"),
    ("linux.py", "spec.linux >= (6, 3),", "rule"),
    ("linux.py", "spec.linux >= (6, 12) or spec.linux[:2] in _NVS_SWAP_STABLE", "rule"),
    ("linux.py", "DOM0_HALT_SOURCE.format(v=_v(spec.linux)", "words"),
    ("linux.py", "if spec.linux < (6, 2):", "words"),
    ("linux.py", "xen_efi_config_table_is_usable: its memory type", "words"),
    ("linux.py", "parser needs EFI_MEMMAP", "words"),
    ("linux.py", "if spec.linux < (6, 3) and lb.memmap is None:", "rule"),
    ("linux.py", "efi_esrt_init returns without EFI_MEMMAP", "words"),
    ("linux.py", "esrt_type_accepted(md.type, md.attribute, spec.linux)", "rule"),
    ("linux.py", "if spec.linux < (6, 3) and end < esrt:", "rule"),
    ("linux.py", "elif spec.linux >= (6, 3):", "rule"),
    ("simulate.py", "self.xb.spec.xen or ()", "words"),
    ("xen.py", "assert spec.xen is not None", "words"),
    ("xen.py", "(XEN) Xen version", "words"),
]


def test_every_version_read_is_covered_by_the_words_key() -> None:
    """A tripwire: a new place that reads a path's Linux or Xen version must be covered by
    linux.version_rules (or a PathSpec property memo.words_spec_key holds), or only change the
    words of logs and reasons, and then be listed in VERSION_READS."""
    src = Path(canonical.__file__).parent
    uses = Counter()
    for name in ("linux.py", "xen.py", "simulate.py", "grouped.py", "canonical.py"):
        for line in (src / name).read_text().splitlines():
            if line.strip().startswith("#") or not re.search(r"spec\.(?:linux|xen)\b", line):
                continue
            known = [(f, frag) for f, frag, _ in VERSION_READS if f == name and frag in line]
            assert len(known) == 1, f"{name}: an unlisted read of the version: {line.strip()}"
            uses[known[0]] += 1
    assert all(uses[(f, frag)] == 1 for f, frag, _ in VERSION_READS)
