"""The memory-map picture: facts counted by hand from examples/laptop.toml, plus a rendering
golden (the one golden that is the program's own output: regenerate it with
``EFIHANDOFF_REGEN_GOLDEN=1 pytest tests/outputs/test_svg.py`` after a deliberate change)."""

from __future__ import annotations

import copy
import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.explain import explain
from efihandoff.outputs.json import explain_document
from efihandoff.outputs.svg import memmap_svg, reclaimed_ranges
from efihandoff.sources import Source, SourceKind, View
from efihandoff.sources.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
NS = {"s": "http://www.w3.org/2000/svg"}
HATCH = "url(#efihandoff-reclaimed)"

# examples/laptop.toml, read by hand: the regions a path may reclaim, by start address.
BS_CODE_PAGE0 = 0x0  # EfiBootServicesCode, 4K
LOADER_DATA = 0x40000000  # EfiLoaderData, 8M
BS_CODE = 0x70000000  # EfiBootServicesCode, 24M
BS_DATA = 0x71800000  # EfiBootServicesData, 40M
# The firmware allocates MEMATTR, the ESRT and the vendor table (all memory_type =
# "EfiBootServicesData") from one page at the top of the 0x74000000.. conventional region.
TABLE_PAGE = 0x79FFD000


def laptop_doc() -> dict[str, Any]:
    m = load_scenario(ROOT / "examples" / "laptop.toml")
    ex = explain([View(Source("examples/laptop.toml", SourceKind.EXAMPLE), m)])
    return explain_document(ex)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return laptop_doc()


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def bands(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "band"]


def hatched_starts(svg: str, doc: dict[str, Any]) -> set[int]:
    root = parse(svg)
    idx = {
        int(r.get("data-desc"))
        for r in root.iter("{http://www.w3.org/2000/svg}rect")
        if r.get("fill") == HATCH and r.get("class") == "reclaimed"
    }
    return {doc["memory_map"][i]["start"] for i in idx}


# -- rendering golden --------------------------------------------------------------------------


@pytest.mark.parametrize("path_id", [None, "xen-4.16"])
def test_golden(doc: dict[str, Any], path_id: str | None) -> None:
    svg = memmap_svg(doc, path_id=path_id)
    golden = GOLDEN / f"laptop{'-' + path_id if path_id else ''}.svg"
    if os.environ.get("EFIHANDOFF_REGEN_GOLDEN"):
        golden.write_text(svg, encoding="utf-8")
    assert svg == golden.read_text(encoding="utf-8"), (
        f"{golden.name} differs; if the change is deliberate, look at the new picture and "
        "regenerate with EFIHANDOFF_REGEN_GOLDEN=1"
    )


def test_same_input_same_bytes(doc: dict[str, Any]) -> None:
    a = memmap_svg(doc, path_id="xen-4.17")
    b = memmap_svg(copy.deepcopy(doc), path_id="xen-4.17")
    assert a == b
    assert not re.search(r"\d\.\d{3,}", a), "coordinates are rounded to two decimals"


# -- facts counted by hand ---------------------------------------------------------------------


def test_valid_standalone_svg(doc: dict[str, Any]) -> None:
    svg = memmap_svg(doc, path_id="xen-4.16")
    root = parse(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox", "").startswith("0 0 1200 ")
    title = root.find("s:title", NS)
    assert title is not None and "laptop" in title.text and "xen-4.16" in title.text
    assert "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_one_band_per_descriptor(doc: dict[str, Any]) -> None:
    root = parse(memmap_svg(doc))
    bs = bands(root)
    assert len(bs) == len(doc["memory_map"]) == 20
    assert sorted(int(b.get("data-desc")) for b in bs) == list(range(20))


def test_band_colours_by_type(doc: dict[str, Any]) -> None:
    root = parse(memmap_svg(doc))
    fills = {doc["memory_map"][int(b.get("data-desc"))]["type"]: b.get("fill") for b in bands(root)}
    assert fills["EfiConventionalMemory"] == "#88CCEE"
    assert fills["EfiBootServicesData"] == "#EE8866"
    assert fills["EfiACPIReclaimMemory"] == "#44AA99"
    assert len(set(fills.values())) == len(fills), "each type present has its own colour"


def test_log_scale(doc: dict[str, Any]) -> None:
    root = parse(memmap_svg(doc))
    width = {
        doc["memory_map"][int(b.get("data-desc"))]["start"]: float(b.get("width"))
        for b in bands(root)
    }
    assert width[0x9F000] == 10  # one page: 10 px x (log2(1) + 1)
    assert width[0x7A000000] == 100  # 2 MiB = 512 pages: 10 x (9 + 1)
    assert width[0x40000000] == 120  # 8 MiB = 2048 pages: 10 x (11 + 1)
    # 0x100000000-0x47fffffff: 14 GiB = 3670016 pages, log2 = 20 + log2(3.5)
    assert width[0x100000000] == pytest.approx(10 * (21 + math.log2(3.5)), abs=0.01)


def test_holes_are_drawn_with_their_size(doc: dict[str, Any]) -> None:
    root = parse(memmap_svg(doc))
    gaps = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "gap"]
    texts = [g.find("s:text", NS).text for g in gaps]
    # 0xa0000-0xfffff; 0x80000000-0xdfffffff; 0xf0000000-0xfecfffff; 0xfed01000-0xffffffff
    assert texts == ["384 KiB", "1.5 GiB", "237 MiB", "19 MiB"]


def test_every_table_has_a_labelled_marker(doc: dict[str, Any]) -> None:
    root = parse(memmap_svg(doc))
    labels = {
        g.get("data-guid"): g.find("s:text", NS).text
        for g in root.iter("{http://www.w3.org/2000/svg}g")
        if g.get("class") == "table"
    }
    assert len(labels) == 5
    assert labels["8868e871-e4f1-11d3-bc22-0080c73c8881"].startswith("ACPI 2.0 0x79ffe0")
    assert labels["f2fd1544-9794-4a2c-992e-e5bbcf20e394"].startswith("SMBIOS 3.0 0x79fff")
    assert labels["dcfa911d-26eb-469f-a220-38b7dc461220"].startswith("MEMATTR 0x79ffd")
    assert labels["b122a263-3661-4f68-9929-78f8b0d62180"].startswith("ESRT 0x79ffd")
    assert labels["3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9"].startswith("3d0e6f2a… 0x79ffd")


def test_marker_sits_inside_its_descriptor_band(doc: dict[str, Any]) -> None:
    root = parse(memmap_svg(doc))
    by_start = {doc["memory_map"][int(b.get("data-desc"))]["start"]: b for b in bands(root)}
    page = by_start[TABLE_PAGE]
    x0, w = float(page.get("x")), float(page.get("width"))
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        if g.get("class") == "table" and g.find("s:text", NS).text.startswith(("ESRT", "MEMATTR")):
            x = float(g.find("s:line", NS).get("x1"))
            assert x0 <= x <= x0 + w


def test_hatch_xen_416(doc: dict[str, Any]) -> None:
    # Xen 4.16 turns every BS and loader region with WB into RAM; none is RUNTIME here.
    svg = memmap_svg(doc, path_id="xen-4.16")
    assert hatched_starts(svg, doc) == {BS_CODE_PAGE0, LOADER_DATA, BS_CODE, BS_DATA, TABLE_PAGE}
    uses = svg.count(HATCH) - svg.count('class="inset-reclaimed"')
    assert uses == 5 + 1, "five reclaimed descriptors and the legend swatch"
    # the inset zooms on the table page, which xen-4.16 reclaims too
    assert svg.count('class="inset-reclaimed"') == 1


def test_hatch_keep_boot_services(doc: dict[str, Any]) -> None:
    # -mapbs keeps boot-services memory: only the loader data goes back.
    assert hatched_starts(memmap_svg(doc, path_id="keep-boot-services"), doc) == {LOADER_DATA}


def test_hatch_native(doc: dict[str, Any]) -> None:
    # Linux frees boot-services memory except the page efi_mem_reserve kept for the ESRT, and
    # never below 1 MiB (x86 quirks.c efi_free_boot_services), so page 0 stays; loader data is
    # the kernel's own business and not drawn as reclaimed.
    assert hatched_starts(memmap_svg(doc, path_id="native"), doc) == {BS_CODE, BS_DATA}


def test_no_path_no_hatch(doc: dict[str, Any]) -> None:
    svg = memmap_svg(doc)
    assert 'class="reclaimed"' not in svg
    assert svg.count(HATCH) == 0


def test_no_policy_in_the_picture_when_the_document_lacks_reclaimed(doc: dict[str, Any]) -> None:
    # issue 14 point 7: the picture draws what the model computed; without the model's
    # ``reclaimed`` it says so and hatches nothing (it used to re-derive Xen/Linux policy).
    d = copy.deepcopy(doc)
    for p in d["paths"].values():
        p.pop("reclaimed", None)
    assert reclaimed_ranges(d, "xen-4.16") is None
    assert reclaimed_ranges(d, "no-such-path") is None
    svg = memmap_svg(d, path_id="xen-4.16")
    assert hatched_starts(svg, d) == set()
    assert "what this path reclaims is not known: nothing hatched" in svg


def test_model_ranges_per_path(doc: dict[str, Any]) -> None:
    # The model's reclaimed RAM (examples/laptop.toml by hand): Xen hands back every E820 RAM
    # range (conventional, loader and BS memory merged: 0-0x9f000, 0x100000-0x79ffe000 with the
    # table page, 4 GiB-18 GiB); reserve-hypercall keeps the table page; native frees BS
    # memory above 1 MiB only.
    assert reclaimed_ranges(doc, "xen-4.16") == [
        (0x0, 0x9F000), (0x100000, 0x79FFE000), (0x100000000, 0x480000000)]
    assert reclaimed_ranges(doc, "reserve-hypercall") == [
        (0x0, 0x9F000), (0x100000, 0x79FFD000), (0x100000000, 0x480000000)]
    assert reclaimed_ranges(doc, "native") == [(0x70000000, 0x74000000)]


def test_given_ranges_are_used(doc: dict[str, Any]) -> None:
    d = copy.deepcopy(doc)
    d["paths"]["xen-4.16"]["reclaimed"] = [[BS_DATA, BS_DATA + 0x1000]]
    svg = memmap_svg(d, path_id="xen-4.16")
    assert hatched_starts(svg, d) == {BS_DATA}
    rect = next(
        r
        for r in parse(svg).iter("{http://www.w3.org/2000/svg}rect")
        if r.get("class") == "reclaimed"
    )
    assert float(rect.get("width")) == 3  # a 4 KiB slice of 40 MiB is widened to stay visible


def test_markers_coloured_by_verdict(doc: dict[str, Any]) -> None:
    root = parse(memmap_svg(doc, path_id="xen-4.16"))
    fills = {}
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        if g.get("class") == "table":
            fills[g.find("s:text", NS).text.split(" ")[0]] = g.find("s:path", NS).get("fill")
    assert fills["ESRT"] == "#CCBB44"  # refused
    assert fills["ACPI"] == "#228833"  # intact
    assert fills["3d0e6f2a…"] == "#AA3377"  # clobbered


def test_relocated_copy_is_marked(doc: dict[str, Any]) -> None:
    root = parse(memmap_svg(doc, path_id="xen-fixed"))
    copies = [
        g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "table-copy"
    ]
    assert len(copies) == 1
    final = doc["paths"]["xen-fixed"]["tables"]["b122a263-3661-4f68-9929-78f8b0d62180"]
    assert copies[0].find("s:text", NS).text == f"ESRT copy {final['final_address']:#x}"


def test_wraps_into_rows(doc: dict[str, Any]) -> None:
    ys = {b.get("y") for b in bands(parse(memmap_svg(doc)))}
    assert len(ys) >= 2
    for b in bands(parse(memmap_svg(doc))):
        assert float(b.get("x")) + float(b.get("width")) <= 1200 - 16 + 0.01


def test_no_memory_map() -> None:
    d = laptop_doc()
    d["memory_map"] = None
    d["paths"] = {}
    svg = memmap_svg(d)
    root = parse(svg)
    assert bands(root) == []
    assert "no memory map" in svg
    markers = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "table"]
    assert len(markers) == 5


def test_text_is_escaped(doc: dict[str, Any]) -> None:
    d = copy.deepcopy(doc)
    d["machine"]["name"] = 'evil <script>&"\x00'
    d["tables"][0]["name"] = "<b>&amp;"
    svg = memmap_svg(d)
    root = parse(svg)
    assert root.find("s:title", NS).text.startswith('Physical memory map of evil <script>&"\ufffd')
    assert "<script>" not in svg and "<b>" not in svg


def test_table_outside_the_map_is_still_marked(doc: dict[str, Any]) -> None:
    d = copy.deepcopy(doc)
    d["tables"][0]["address"] = 0x900000000  # above every descriptor
    d["tables"][1]["address"] = 0x80001000  # in the 1.5 GiB hole
    root = parse(memmap_svg(d))
    markers = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "table"]
    assert len(markers) == 5
    assert any(g.get("class") == "outside" for g in root.iter("{http://www.w3.org/2000/svg}g"))


# -- hostile and large maps --------------------------------------------------------------------

_TYPES = st.sampled_from(
    [
        "EfiConventionalMemory",
        "EfiBootServicesData",
        "EfiLoaderCode",
        "EfiMemoryMappedIO",
        "EfiReservedMemoryType",
        "Type0x70000000",
        "nonsense",
    ]
)
_ROW = st.fixed_dictionaries(
    {
        "type": _TYPES,
        "start": st.integers(0, 1 << 52),
        "pages": st.integers(0, 1 << 40),
        "attribute": st.one_of(st.none(), st.integers(0, (1 << 64) - 1)),
        "evidence": st.just("test"),
    }
)
_TABLE = st.fixed_dictionaries(
    {
        "guid": st.sampled_from(["b122a263-3661-4f68-9929-78f8b0d62180", "x<&>\"'", ""]),
        "name": st.one_of(st.none(), st.text(max_size=30)),
        "address": st.integers(0, 1 << 53),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.one_of(st.none(), st.lists(_ROW, max_size=40)), tables=st.lists(_TABLE, max_size=12))
def test_any_document_gives_a_valid_picture(rows: list[dict] | None, tables: list[dict]) -> None:
    d = {
        "schema": "efihandoff/explain/1",
        "machine": {"name": "m"},
        "memory_map": rows,
        "tables": tables,
        "paths": {"xen-4.16": {"label": "x", "tables": {}}},
    }
    svg = memmap_svg(d, path_id="xen-4.16")
    root = parse(svg)
    assert len(bands(root)) == len(rows or [])
    assert svg == memmap_svg(d, path_id="xen-4.16")


def test_two_thousand_descriptors() -> None:
    rows = []
    addr = 0
    for i in range(2000):
        pages = 1 + (i * 7919) % 5000
        rows.append(
            {
                "type": ["EfiConventionalMemory", "EfiBootServicesData"][i % 2],
                "start": addr,
                "pages": pages,
                "attribute": 15,
                "evidence": "t",
            }
        )
        addr += (pages << 12) + (0x1000 if i % 10 == 0 else 0)
    d = {"machine": {"name": "big"}, "memory_map": rows, "tables": [], "paths": {}}
    root = parse(memmap_svg(d))
    assert len(bands(root)) == 2000
    assert len({b.get("y") for b in bands(root)}) > 20


# -- label lanes: bounded (issue 15: 1,200 tables took 32 s, cubic) and unchanged below the cap --


def _reference_lanes(ms: list[Any], right: float) -> list[int]:
    """The placement rule as first written (quadratic per label), for comparison."""
    labels: list[list[tuple[float, float]]] = []
    leaders: list[list[tuple[float, float]]] = []
    out = {}
    for m in sorted(ms, key=lambda m: (-m.x, m.lx)):
        lane = 0
        while True:
            while len(labels) <= lane:
                labels.append([])
                leaders.append([])
            clash = any(a < m.rx + 6 and m.lx - 6 < b for a, b in labels[lane] + leaders[lane])
            crossed = any(a < m.x + 1 and m.x - 1 < b for lo in labels[:lane] for a, b in lo)
            if (not clash and not crossed) or lane > len(ms):
                break
            lane += 1
        out[id(m)] = lane
        labels[lane].append((m.lx, m.rx))
        for lo in leaders[:lane]:
            lo.append((m.x - 1, m.x + 1))
    return [out[id(m)] for m in ms]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(20, 1180), st.text("ESRTMEMAT0x123 ", min_size=1, max_size=30)),
        min_size=1,
        max_size=40,
    )
)
def test_lanes_match_the_reference_rule(spec: list[tuple[int, str]]) -> None:
    from efihandoff.outputs import maplayout as lay_mod

    pic = lay_mod.MapLayout(None, [])
    pic.markers = [
        lay_mod.Marker(None, 0, "t", label, "#000000", "", "", x=float(x)) for x, label in spec
    ]
    pic.place_labels()
    ref = [copy.copy(m) for m in pic.markers]
    assert [m.lane for m in pic.markers] == _reference_lanes(ref, lay_mod.WIDTH - lay_mod.MARGIN)


def test_many_tables_at_one_place_are_bounded_and_said() -> None:
    from efihandoff.outputs import maplayout as svg_mod

    pic = svg_mod.MapLayout(None, [])
    pic.markers = [
        svg_mod.Marker(None, 0, "t", f"ESRT {i:#x}", "#000000", "", "", x=100.0)
        for i in range(1200)
    ]
    calls = 0
    real = svg_mod.Spans.hits

    def counting(self, lo, hi):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return real(self, lo, hi)

    svg_mod.Spans.hits = counting  # type: ignore[method-assign]
    try:
        lanes = pic.place_labels()
    finally:
        svg_mod.Spans.hits = real  # type: ignore[method-assign]
    assert lanes == {0: svg_mod.MAX_LANES}
    assert calls <= 1200 * svg_mod.MAX_LANES * 3
    assert sum(m.hidden for m in pic.markers) == 1200 - svg_mod.MAX_LANES
    assert any("not drawn" in n for n in pic.notes)
