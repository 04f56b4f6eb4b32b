"""The report as a browser lays it out (issue 12 point 6): headless Chromium renders the HTML
report and the SVG at 1400 and 800 px; a small script in the page writes what the browser
computed (boxes of tables, their scrolling containers, cells and their content, every SVG text)
into the DOM, and the checks run here: every table fits or scrolls horizontally (nothing cut,
the page itself never wider than the window), no cell's content spills into its neighbour, no
text overlaps another. Run on a bare-metal example, a dom0 log whose verdicts carry candidates,
and a log with a thousand tables. Skipped without /usr/bin/chromium."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from efihandoff.explain import explain
from efihandoff.outputs.html import explain_html
from efihandoff.outputs.json import explain_document
from efihandoff.outputs.svg import memmap_svg
from efihandoff.paths.presets import PRESETS
from efihandoff.sources import read_source

from . import chromium
from .test_svg import laptop_doc

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not chromium.available(),
    reason="/usr/bin/chromium missing (apt-get install chromium fonts-dejavu-core): "
    "the layout checks need a real browser",
)

PROBE = """
(() => {
  const R = e => {
    const r = e.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  };
  const vis = e => e.getClientRects().length > 0;
  const root = document.documentElement;
  const res = {vw: root.clientWidth, iw: window.innerWidth, page_sw: root.scrollWidth,
               tables: [], spills: [], texts: [], flow: [], svgs: []};
  for (const t of document.querySelectorAll('table')) {
    if (!vis(t)) continue;
    let c = t.parentElement, sc = null;
    while (c && c !== document.body) {
      const ox = getComputedStyle(c).overflowX;
      if (ox === 'auto' || ox === 'scroll') { sc = c; break; }
      c = c.parentElement;
    }
    res.tables.push({cls: t.className, box: R(t), sc: sc ? R(sc) : null,
                     sw: sc ? sc.scrollWidth : null, cw: sc ? sc.clientWidth : null});
  }
  for (const c of document.querySelectorAll('td, th')) {
    if (!vis(c)) continue;
    const rg = document.createRange(); rg.selectNodeContents(c);
    const rr = rg.getBoundingClientRect(); const cb = R(c);
    if (rr.width === 0) continue;
    if (rr.left < cb[0] - 0.5 || rr.right > cb[2] + 0.5)
      res.spills.push({s: c.textContent.slice(0, 80), cell: cb, content: [rr.left, rr.right]});
  }
  for (const s of document.querySelectorAll('svg')) {
    if (vis(s) && !(s.parentElement && s.parentElement.closest('svg'))) res.svgs.push(R(s));
  }
  for (const t of document.querySelectorAll('text')) {
    if (vis(t) && t.textContent) res.texts.push({b: R(t), s: t.textContent.slice(0, 60)});
  }
  const flow = 'h1, h2, h3, p, li, summary, figcaption, footer, table, figure, pre, details';
  for (const e of document.querySelectorAll(flow)) {
    if (!vis(e)) continue;
    let n = e.nextElementSibling;
    while (n && !vis(n)) n = n.nextElementSibling;
    const s = e.tagName + ' ' + (e.textContent || '').slice(0, 40);
    if (n) res.flow.push({a: R(e), b: R(n), s: s});
  }
  const out = document.body ? document.createElement('pre')
      : document.createElementNS('http://www.w3.org/2000/svg', 'desc');
  out.setAttribute('id', 'efihandoff-probe');
  out.textContent = encodeURIComponent(JSON.stringify(res));
  (document.body || root).appendChild(out);
})();
"""
WIDTHS = (1400, 800)
SLACK = 0.5  # px: sub-pixel rounding of the browser's boxes


@dataclass(frozen=True)
class Case:
    name: str
    doc: dict[str, Any]
    path_id: str | None


def _log_doc(path: Path) -> dict[str, Any]:
    return explain_document(explain(read_source(path), list(PRESETS.values())))


def _many_tables_log(tmp: Path) -> Path:
    """A real log (AMI firmware, efi=debug) with 1,200 more `efi: ESRT=` lines, 40 pages of
    tables close together: the hostile case of issue 15 (label placement was cubic)."""
    src = (ROOT / "tests/fixtures/logs/efi-debug-long-labels-no-timestamps.log").read_text()
    out = []
    for line in src.splitlines():
        out.append(line)
        if line.startswith("efi:  ACPI 2.0"):
            out += [
                f"efi: ESRT=0x{0x79993000 + (i % 40) * 0x1000 + (i * 0x18) % 0x1000:x} "
                for i in range(1200)
            ]
    p = tmp / "many-tables.log"
    p.write_text("\n".join(out) + "\n", encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    tmp = tmp_path_factory.mktemp("logs")
    dom0 = _log_doc(ROOT / "tests/fixtures/logs/serial-xen-dom0.log")
    assert any(
        tv.get("candidates") for p in dom0["paths"].values() for tv in p["tables"].values()
    ), "the dom0 case must carry candidate lists"
    many = _log_doc(_many_tables_log(tmp))
    assert len(many["tables"]) > 1000
    return {
        "bare-metal": Case("bare-metal", laptop_doc(), "xen-4.16"),
        "dom0": Case("dom0", dom0, "observed" if "observed" in dom0["paths"] else None),
        "many-tables": Case("many-tables", many, "xen-4.16"),
    }


def _probe(page: Path, width: int, profile: Path) -> dict[str, Any]:
    run = chromium.run(
        page.resolve().as_uri(), profile, "--dump-dom", f"--window-size={width},1200"
    )
    dom = run.output.decode("utf-8", "replace")
    start = dom.find('id="efihandoff-probe">')
    assert start >= 0, f"the probe did not run: {run.console}"
    body = dom[start + len('id="efihandoff-probe">') :]
    body = body[: body.index("<")]
    return json.loads(urllib.parse.unquote(body))


def _overlaps(a: list[float], b: list[float]) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > SLACK and min(a[3], b[3]) - max(a[1], b[1]) > SLACK


def _text_overlaps(texts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of overlapping text boxes: a sweep by left edge, O(n log n + pairs in reach)."""
    order = sorted(texts, key=lambda t: t["b"][0])
    out = []
    for i, t in enumerate(order):
        for u in order[i + 1 :]:
            if u["b"][0] >= t["b"][2] - SLACK:
                break
            if _overlaps(t["b"], u["b"]):
                out.append((t["s"], u["s"]))
    return out


def _check(res: dict[str, Any], width: int) -> None:
    assert res["iw"] == width, "the window is not the width asked for"
    vw = res["vw"]
    assert res["page_sw"] <= vw + SLACK, "the page is wider than the window: something is cut"
    assert res["tables"], "no table laid out"
    for t in res["tables"]:
        if t["box"][2] <= vw + SLACK and (t["sc"] is None or t["box"][2] <= t["sc"][2] + SLACK):
            continue  # fits
        assert t["sc"] is not None, f"table {t['cls']!r} is wider than the window, no scroller"
        assert t["sc"][2] <= vw + SLACK, f"the scroller of table {t['cls']!r} is cut"
        assert t["sw"] > t["cw"], f"table {t['cls']!r} overflows a scroller that cannot scroll"
    assert res["spills"] == [], "cell content runs into the next cell"
    for s in res["svgs"]:
        assert s[2] <= vw + SLACK or res["page_sw"] <= vw + SLACK
    assert _text_overlaps(res["texts"]) == []
    assert [f["s"] for f in res["flow"] if _overlaps(f["a"], f["b"])] == []


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["bare-metal", "dom0", "many-tables"])
def test_report_layout(cases: dict[str, Case], name: str, width: int, tmp_path: Path) -> None:
    case = cases[name]
    page = tmp_path / f"{name}.html"
    html = explain_html(case.doc, path_id=case.path_id)
    # The report forbids scripts (its CSP); this copy lets the probe, and only it, run.
    csp = "default-src 'none';"
    assert html.count(csp) == 1
    html = html.replace(csp, csp + " script-src 'unsafe-inline';")
    page.write_text(html.replace("</body>", f"<script>{PROBE}</script>\n</body>"), "utf-8")
    res = _probe(page, width, tmp_path / "profile")
    _check(res, width)
    assert len(res["texts"]) > 20, "the picture's text was laid out"


@pytest.mark.parametrize("name", ["bare-metal", "dom0", "many-tables"])
def test_svg_layout(cases: dict[str, Case], name: str, tmp_path: Path) -> None:
    case = cases[name]
    page = tmp_path / f"{name}.svg"
    svg = memmap_svg(case.doc, path_id=case.path_id)
    probe = f"<script><![CDATA[{PROBE}]]></script>"  # XML: the script's < and && as they are
    page.write_text(svg.replace("</svg>", f"{probe}\n</svg>"), "utf-8")
    res = _probe(page, 1400, tmp_path / "profile")
    assert _text_overlaps(res["texts"]) == []
    right = max(t["b"][2] for t in res["texts"])
    assert right <= 1200 + SLACK, "text beyond the picture's right edge"


def test_checks_can_fail() -> None:
    """The geometry checks catch a cut table, a spill and overlapping text."""
    ok = {"iw": 800, "vw": 800, "page_sw": 800, "spills": [], "svgs": [], "flow": [],
          "texts": [{"b": [0, 0, 50, 10], "s": "a"}, {"b": [50, 0, 90, 10], "s": "b"}],
          "tables": [{"cls": "t", "box": [0, 0, 1200, 50], "sc": [0, 0, 790, 60],
                      "sw": 1200, "cw": 790}]}
    _check(ok, 800)
    for key, bad in (
        ("tables", [{"cls": "t", "box": [0, 0, 1200, 50], "sc": None, "sw": None, "cw": None}]),
        ("tables", [{"cls": "t", "box": [0, 0, 1200, 50], "sc": [0, 0, 790, 60], "sw": 790,
                     "cw": 790}]),
        ("page_sw", 1200),
        ("spills", [{"s": "x", "cell": [0, 0, 10, 10], "content": [0, 30]}]),
        ("texts", [{"b": [0, 0, 50, 10], "s": "a"}, {"b": [40, 5, 90, 15], "s": "b"}]),
    ):
        with pytest.raises(AssertionError):
            _check({**ok, key: bad}, 800)


def test_probe_catches_a_broken_page(tmp_path: Path) -> None:
    """A page with a cut table, a spilling cell and overlapping SVG text, as Chromium lays it
    out: each defect is seen."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body style='margin:0'>"
        "<table style='width:2000px'><tr><td>wide</td></tr></table>"
        "<table style='table-layout:fixed;width:200px'><tr>"
        "<td style='width:50px'>0xfffffffffffff000fffffff</td><td>next</td></tr></table>"
        "<svg width='300' height='50'><text x='10' y='20'>ESRT 0x79ffd018</text>"
        "<text x='30' y='24'>MEMATTR 0x79ffd000</text></svg>"
        f"<script>{PROBE}</script></body></html>",
        "utf-8",
    )
    res = _probe(page, 800, tmp_path / "profile")
    assert res["page_sw"] > res["vw"]
    assert [s["s"] for s in res["spills"]] == ["0xfffffffffffff000fffffff"]
    assert _text_overlaps(res["texts"]) == [("ESRT 0x79ffd018", "MEMATTR 0x79ffd000")]
