"""The memory-map picture's inset (issue 12 point 6): the pages holding tables, zoomed, each
marker legible and apart, numbered, with a key; verdicts told apart by shape as well as colour.
Facts by hand from examples/laptop.toml (tables listed in its [[table]] entries)."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from itertools import combinations, pairwise
from typing import Any

import pytest

from efihandoff.outputs import maplayout
from efihandoff.outputs.mapstyle import VERDICT_COLOURS, VERDICT_SHAPES, marker_path
from efihandoff.outputs.svg import memmap_svg
from efihandoff.outputs.svgtext import luminance, text_width

from .test_svg import laptop_doc

S = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return laptop_doc()


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{S}g") if g.get("class") == cls]


def marker_x(g: ET.Element) -> float:
    """The centre of a marker from its path (every shape spans x - 5 .. x + 5)."""
    d = g.find(f"{S}path").get("d")
    if " a" in d:  # the circle: "M x-r y a r r ..."
        return float(re.match(r"M(-?[\d.]+)", d).group(1)) + 4.5
    xs = [float(v) for v in re.findall(r"[ML](-?[\d.]+) ", d)]
    return (min(xs) + max(xs)) / 2


def test_laptop_inset_pages_and_numbers(doc: dict[str, Any]) -> None:
    # MEMATTR 0x79ffd018, ESRT 0x79ffdb98 and the vendor table 0x79ffdc98 share the BS-data page
    # 0x79ffd000; ACPI 2.0 0x79ffe018 (and, on xen-fixed, the ESRT copy 0x79ffef18) the ACPI
    # reclaim page; SMBIOS 3.0 0x79fffd98 the runtime-data page.
    root = ET.fromstring(memmap_svg(doc, path_id="xen-fixed"))
    pages = [r for r in root.iter(f"{S}rect") if r.get("class") == "inset-page"]
    assert [p.find(f"{S}title").text.split()[1] for p in pages] == [
        "0x79ffd000-0x79ffdfff", "0x79ffe000-0x79ffefff", "0x79fff000-0x79ffffff"]
    marks = groups(root, "inset-marker")
    assert [m.get("data-n") for m in marks] == ["1", "2", "3", "4", "5", "6"]
    key = {g.get("data-n"): " ".join(t.text for t in g.iter(f"{S}text"))
           for g in groups(root, "inset-key")}
    assert key["1"] == "1 MEMATTR 0x79ffd018 refused"
    assert key["2"] == "2 ESRT 0x79ffdb98 relocated → 0x79ffef18"
    assert key["3"] == "3 3d0e6f2a… 0x79ffdc98 clobbered"
    assert key["4"] == "4 ACPI 2.0 0x79ffe018 intact"
    assert key["5"] == "5 ESRT copy 0x79ffef18"
    assert key["6"] == "6 SMBIOS 3.0 0x79fffd98 intact"


def test_inset_markers_keep_order_and_stand_apart(doc: dict[str, Any]) -> None:
    root = ET.fromstring(memmap_svg(doc, path_id="xen-4.16"))
    xs = [marker_x(g) for g in groups(root, "inset-marker")]
    assert xs == sorted(xs)
    assert all(b - a >= maplayout.INSET_SEP - 0.01 for a, b in pairwise(xs))
    # In the main picture the three tables of page 0x79ffd000 are within 10 px: the reason
    # for the inset.
    main = [marker_x(g) for g in groups(root, "table")][:3]
    assert max(main) - min(main) < 10


def _crowded(n: int, step: int) -> dict[str, Any]:
    return {
        "machine": {"name": "crowded"},
        "memory_map": [{"type": "EfiBootServicesData", "start": 0x100000, "pages": 16,
                        "attribute": 15}],
        "tables": [{"guid": f"{i:08x}-0000-0000-0000-000000000000", "name": f"T{i}",
                    "address": 0x100000 + i * step} for i in range(n)],
        "paths": {},
    }


def test_tables_bytes_apart_are_spread_and_the_page_widens() -> None:
    lay = maplayout.MapLayout(_crowded(12, 8)["memory_map"], _crowded(12, 8)["tables"])
    assert lay.inset is not None
    (page,) = lay.inset.pages
    xs = [im.x for im in page.marks]
    assert [im.marker.addr for im in page.marks] == [0x100000 + 8 * i for i in range(12)]
    assert all(b - a == pytest.approx(maplayout.INSET_SEP) for a, b in pairwise(xs))
    assert page.w == pytest.approx(xs[-1] - page.x + maplayout.INSET_PAD)
    assert page.w > maplayout.INSET_PAGE_W


def test_a_lone_table_sits_at_its_offset() -> None:
    d = _crowded(1, 0)
    d["tables"][0]["address"] = 0x100800  # half way into its page
    lay = maplayout.MapLayout(d["memory_map"], d["tables"])
    (page,) = lay.inset.pages
    inner = maplayout.INSET_PAGE_W - 2 * maplayout.INSET_PAD
    assert page.marks[0].x == pytest.approx(page.x + maplayout.INSET_PAD + inner / 2)


def test_inset_is_capped_and_says_so() -> None:
    d = _crowded(100, 0x100)  # 100 tables over 7 pages
    svg = memmap_svg(d)
    root = ET.fromstring(svg)
    assert len(groups(root, "inset-marker")) == maplayout.INSET_MAX
    assert f"{100 - maplayout.INSET_MAX} more are marked in the map only" in svg


def test_key_entries_never_overlap(doc: dict[str, Any]) -> None:
    for d in (doc, _crowded(64, 0x40)):
        lay = maplayout.MapLayout(d["memory_map"], d["tables"], path=None)
        boxes = []
        for e in lay.inset.key:
            w = maplayout.KEY_GLYPH_W + max(text_width(t, 11) for t in e.lines)
            boxes.append((e.x, e.dy, e.x + w, e.dy + len(e.lines) * maplayout.LANE_H))
            assert e.x + w <= maplayout.WIDTH - maplayout.MARGIN + 0.01
        for a, b in combinations(boxes, 2):
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_no_inset_without_a_map_or_tables(doc: dict[str, Any]) -> None:
    d = copy.deepcopy(doc)
    d["memory_map"] = None
    assert 'class="inset"' not in memmap_svg(d)
    d = copy.deepcopy(doc)
    d["tables"] = []
    assert 'class="inset"' not in memmap_svg(d)


# -- verdicts told apart -----------------------------------------------------------------------


def test_every_verdict_has_its_own_colour_and_shape() -> None:
    assert set(VERDICT_SHAPES) == set(VERDICT_COLOURS)
    assert len(set(VERDICT_SHAPES.values())) == len(VERDICT_SHAPES)
    assert len(set(VERDICT_COLOURS.values())) == len(VERDICT_COLOURS)
    paths = {marker_path(s, 50, 100) for s in VERDICT_SHAPES.values()}
    assert len(paths) == len(VERDICT_SHAPES)


def test_corrupt_and_clobbered_apart_without_hue() -> None:
    # Tol's red and purple are the pair a red-green deficiency brings closest: different
    # shapes, and a lightness difference (WCAG contrast ratio) of at least 1.5.
    assert VERDICT_SHAPES["corrupt"] != VERDICT_SHAPES["clobbered"]
    a, b = luminance(VERDICT_COLOURS["corrupt"]), luminance(VERDICT_COLOURS["clobbered"])
    assert (max(a, b) + 0.05) / (min(a, b) + 0.05) >= 1.5


def test_luminance_by_hand() -> None:
    assert luminance("#FFFFFF") == pytest.approx(1.0)
    assert luminance("#000000") == 0.0
    # #808080: 128/255 = 0.50196, linearised ((0.50196 + 0.055) / 1.055) ** 2.4 = 0.21586
    assert luminance("#808080") == pytest.approx(0.21586, abs=1e-5)


@pytest.mark.parametrize("shape", sorted(set(VERDICT_SHAPES.values()) | {"triangle"}))
def test_shapes_fit_the_marker_box(shape: str) -> None:
    d = marker_path(shape, 50, 100)
    if shape == "circle":
        assert d.startswith("M45.5 95.5 a4.5 4.5")
        return
    pts = [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+) (-?[\d.]+)", d)]
    assert all(45 <= x <= 55 and 91 <= y <= 100 for x, y in pts), pts


def test_markers_and_legend_carry_the_verdict_shape(doc: dict[str, Any]) -> None:
    root = ET.fromstring(memmap_svg(doc, path_id="xen-4.16"))
    shapes = {g.find(f"{S}text").text.split(" ")[0]: g.find(f"{S}path").get("data-shape")
              for g in groups(root, "table")}
    assert shapes["ESRT"] == "square"  # refused
    assert shapes["ACPI"] == "triangle"  # intact
    assert shapes["3d0e6f2a…"] == "circle"  # clobbered
    legend = {p.get("data-shape") for p in root.iter(f"{S}path") if p.get("class") == "swatch"}
    assert legend == {"square", "triangle", "circle"}


def test_the_widest_key_entry_stays_on_one_line(doc: dict[str, Any]) -> None:
    # Its column is exactly as wide as it (a float rounding once wrapped it).
    lay = maplayout.MapLayout(doc["memory_map"], doc["tables"], path=doc["paths"]["xen-4.17"],
                              path_id="xen-4.17")
    assert all(len(e.lines) == 1 for e in lay.inset.key)
    assert any(e.lines == ("2 ESRT 0x79ffdb98 corrupt → 0x79ffef18",) for e in lay.inset.key)
