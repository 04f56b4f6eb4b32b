"""The explain report page: structure, self-containment, escaping, and a real render in headless
Chromium (Debian package ``chromium``; skipped without /usr/bin/chromium)."""

from __future__ import annotations

import copy
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from efihandoff.outputs.html import explain_html

from . import chromium
from .test_svg import laptop_doc

needs_chromium = pytest.mark.skipif(
    not chromium.available(), reason="/usr/bin/chromium missing (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return laptop_doc()


class Page(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.details_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def count(self, tag: str, **attrs: str) -> int:
        return sum(
            1 for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
        )

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    p.close()
    return p


def test_self_contained(doc: dict[str, Any]) -> None:
    html = explain_html(doc, path_id="xen-4.17")
    page = parse(html)
    for tag, attrs in page.tags:
        for key in ("src", "href", "xlink:href", "action", "data"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http://", "https://", "//", "file:")), (tag, key, value)
    assert page.count("script") == 0
    assert page.count("link") == 0
    assert page.count("img") == 0
    assert "@import" not in html and "url(http" not in html
    assert page.count("style") == 1
    assert page.count("svg") == 1


def test_contents(doc: dict[str, Any]) -> None:
    page = parse(explain_html(doc, path_id="xen-4.16"))
    text = page.all_text
    # the picture, one band per descriptor
    assert page.count("rect", **{"class": "band"}) == 20
    # memory map table: 20 rows, each with its start address
    for d in doc["memory_map"]:
        assert f"{d['start']:#x}" in text
    # configuration tables and ESRT entries
    for name in ("ACPI 2.0", "SMBIOS 3.0", "MEMATTR", "ESRT"):
        assert name in text
    assert "ddc0ee61-e7f0-4e7d-acc5-c070a398838e" in text
    assert "671d19d0-d43c-4852-98d9-1ce16f9967e4" in text
    # the verdict matrix names every path and carries the reasons
    for pid in doc["paths"]:
        assert pid in text
    assert "xen_efi_config_table_is_usable" in text
    assert "get_esrt_size forgets the 16-byte header" in text
    # one <details> per path, plus the descriptor list
    assert page.count("details") == len(doc["paths"]) + 1
    # logs and fwupd devices per path
    assert "efi: EFI v2.7 by EDK II" in text
    assert "system-firmware" in text
    # findings
    assert "table.reclaimable" in text


def test_matrix_cells(doc: dict[str, Any]) -> None:
    html = explain_html(doc)
    matrix = html[html.index('<table class="matrix">') : html.index("</table></div>")]
    rows = matrix.count("<tr>")
    assert rows == 1 + 5 + 3  # header, five tables, sysfs / fwupd / cost
    # ESRT row across the presets, in DESIGN.md's order of paths
    esrt_row = matrix[matrix.index("<th>ESRT<br>") :].split("</tr>")[0]
    words = [w.split(">")[-1] for w in esrt_row.split("</span>") if 'class="verdict"' in w]
    assert words == [
        "intact",
        "refused",
        "corrupt",
        "refused",
        "relocated",
        "refused",
        "relocated",
        "intact",
    ]


def test_everything_is_escaped(doc: dict[str, Any]) -> None:
    d = copy.deepcopy(doc)
    d["machine"]["name"] = "<script>alert(1)</script>"
    d["paths"]["native"]["log"].append('<img src="https://example.com/x.png">')
    d["findings"].append({"code": "x<y", "severity": "error", "message": "a & b <i>"})
    d["tables"][0]["name"] = '"><script>'
    html = explain_html(d)
    page = parse(html)
    assert page.count("script") == 0 and page.count("img") == 0 and page.count("i") == 0
    assert "<script>alert(1)</script>" in page.all_text
    assert '<img src="https://example.com/x.png">' in page.all_text
    assert "a & b <i>" in page.all_text


def test_deterministic(doc: dict[str, Any]) -> None:
    assert explain_html(doc, path_id="native") == explain_html(copy.deepcopy(doc), path_id="native")


def test_without_memory_map_or_paths(doc: dict[str, Any]) -> None:
    d = copy.deepcopy(doc)
    d["memory_map"] = None
    d["paths"] = {}
    d["esrt"] = None
    page = parse(explain_html(d))
    assert "The evidence has no memory map." in page.all_text
    assert "No path was simulated" in page.all_text
    assert "The firmware lists no ESRT." in page.all_text


# -- the PNG decoder, on bytes composed by hand ------------------------------------------------


def _png(width: int, height: int, colour_type: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_png_decoder_filters() -> None:
    # 2x4 RGB; pixels A=(10,20,30) B=(15,25,35) on row 0, then rows built on them.
    raw = bytes(
        [
            *(1, 10, 20, 30, 5, 5, 5),  # Sub: B = A + (5,5,5)
            *(2, 2, 2, 2, 0, 0, 0),  # Up: (12,22,32) (15,25,35)
            # Average: 6 + 12//2 = 12, 11 + 22//2 = 22, 16 + 32//2 = 32; then
            # 0 + (12+15)//2 = 13, 0 + (22+25)//2 = 23, 0 + (32+35)//2 = 33
            *(3, 6, 11, 16, 0, 0, 0),
            # Paeth: left 0, up (12,22,32), upleft 0 -> up; then left (12,22,32),
            # up (13,23,33), upleft (12,22,32): p = up -> (13,23,33) + 2
            *(4, 0, 0, 0, 2, 2, 2),
        ]
    )
    img = chromium.decode_png(_png(2, 4, 2, raw))
    assert img.pixels() == [
        (10, 20, 30),
        (15, 25, 35),
        (12, 22, 32),
        (15, 25, 35),
        (12, 22, 32),
        (13, 23, 33),
        (12, 22, 32),
        (15, 25, 35),
    ]
    assert chromium.colour_stats(img) == (4, 8)


def test_png_decoder_rejects_damage() -> None:
    good = _png(1, 1, 2, bytes([0, 255, 255, 255]))
    assert chromium.colour_stats(chromium.decode_png(good)) == (1, 0)
    bad = bytearray(good)
    bad[-20] ^= 1  # inside IDAT: its CRC no longer matches
    with pytest.raises(ValueError):
        chromium.decode_png(bytes(bad))


# -- a real render -----------------------------------------------------------------------------


@needs_chromium
def test_renders_in_chromium(doc: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(explain_html(doc, path_id="xen-4.16"), encoding="utf-8")
    png = tmp_path / "report.png"
    shot = chromium.screenshot(page, png, tmp_path / "profile1")
    assert png.is_file(), shot.stderr[-2000:]
    img = chromium.decode_png(png.read_bytes())
    assert (img.width, img.height) == (1400, 2000)
    colours, inked = chromium.colour_stats(img)
    assert colours > 50, "a blank or one-colour page"
    assert inked > 0.05 * img.width * img.height
    assert shot.console == []
    dom = chromium.dump_dom(page, tmp_path / "profile2")
    assert dom.console == []
    parsed = parse(dom.output.decode("utf-8"))
    assert parsed.count("rect", **{"class": "band"}) == 20
    assert parsed.count("svg") == 1
    assert "efihandoff explain: laptop" in parsed.all_text


@needs_chromium
def test_chromium_checks_can_fail(tmp_path: Path) -> None:
    """The console and blank checks above do catch a broken page."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><script>nosuch()</script></body></html>")
    png = tmp_path / "bad.png"
    shot = chromium.screenshot(page, png, tmp_path / "profile", size=(200, 100))
    assert any("nosuch" in line for line in shot.console)
    colours, inked = chromium.colour_stats(chromium.decode_png(png.read_bytes()))
    assert (colours, inked) == (1, 0)


def test_unknown_candidates_fold_into_details(doc):
    # A dom0 report's unknown verdicts carry the placements left open; listed in full in every
    # cell they swamp the table, so each cell shows the short reason and folds the list.
    d = copy.deepcopy(doc)
    esrt = "b122a263-3661-4f68-9929-78f8b0d62180"
    tv = d["paths"]["xen-4.17"]["tables"][esrt]
    tv.update(
        verdict="unknown",
        reason="depends on where the firmware put it (EfiACPIReclaimMemory: intact; "
        "EfiBootServicesData, copied by Xen: corrupt)",
        candidates=[
            {"placement": "EfiACPIReclaimMemory", "verdict": "intact"},
            {"placement": "EfiBootServicesData, copied by Xen", "verdict": "corrupt"},
        ],
    )
    page = explain_html(d)
    assert "<details><summary>2 candidates</summary>" in page
    assert page.count("EfiBootServicesData, copied by Xen") == 1  # in the list, not the reason
