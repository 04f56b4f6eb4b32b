"""The physical address space as a picture: an SVG drawn from an ``explain/1`` document.

One band per memory descriptor, in address order, coloured by memory type, with each
configuration table a marker at its offset and a label below (the geometry is
:mod:`.maplayout`'s). The pages holding tables are drawn again in an inset below, zoomed, so
markers a few bytes apart are legible. For a chosen path, what the model says that path
reclaims as RAM (the path's ``reclaimed``) is hatched, and each marker takes the colour and
shape of the table's verdict on the path. Nothing here decides what a path does.

The output is deterministic: the same document gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from efihandoff.intervals import Span
from efihandoff.outputs.maplayout import (
    ADDR_H,
    BAND_H,
    BAND_UNIT,
    INSET_PAGE_W,
    INSET_SEP,
    KEY_GLYPH_W,
    LABEL_SIZE,
    LANE_H,
    MARGIN,
    MARK_H,
    NUM_H,
    PAGE,
    ROW_GAP,
    WIDTH,
    Inset,
    Item,
    MapLayout,
    Marker,
    band_width,
)
from efihandoff.outputs.mapstyle import (
    NO_VERDICT_COLOUR,
    OTHER_TYPE_COLOUR,
    TYPE_COLOURS,
    VERDICT_COLOURS,
    VERDICT_SHAPES,
    marker_path,
    short_type,
    table_name,
    type_colour,
)
from efihandoff.outputs.svgtext import (
    MONO,
    SANS,
    esc,
    human_size,
    ink_on,
    num,
    text_el,
    text_width,
    wrap,
)
from efihandoff.uefi.memmap import attribute_names

HATCH_ID = "efihandoff-reclaimed"
HATCH_MIN_W = 3.0
INSET_TITLE_H = 22


def memmap_svg(doc: Mapping[str, Any], *, path_id: str | None = None) -> str:
    """The memory map of an ``explain/1`` document as a standalone SVG; with ``path_id``, what
    that path reclaims is hatched and table markers show its verdicts."""
    return _Picture(doc, path_id).render()


def reclaimed_ranges(doc: Mapping[str, Any], path_id: str) -> list[Span] | None:
    """``[start, end)`` ranges the path hands back to an allocator as RAM, as the model gave
    them (the path's ``reclaimed``), or None when the document does not say."""
    path = (doc.get("paths") or {}).get(path_id)
    given = None if path is None else path.get("reclaimed")
    if given is None:
        return None
    return sorted((int(s), int(e)) for s, e in given)


class _Picture:
    def __init__(self, doc: Mapping[str, Any], path_id: str | None) -> None:
        self.doc = doc
        self.path_id = path_id
        self.rows: list[Mapping[str, Any]] | None = doc.get("memory_map")
        self.tables: list[Mapping[str, Any]] = list(doc.get("tables") or [])
        self.path: Mapping[str, Any] | None = None
        self.notes: list[str] = []
        if path_id is not None:
            self.path = (doc.get("paths") or {}).get(path_id)
            if self.path is None:
                self.notes.append(f"the document has no path {path_id!r}: nothing hatched")
        self.reclaimed: list[Span] = []
        if self.path is not None and path_id is not None:
            ranges = reclaimed_ranges(doc, path_id)
            if ranges is None:
                self.notes.append("what this path reclaims is not known: nothing hatched")
            else:
                self.reclaimed = ranges

    def render(self) -> str:
        lay = MapLayout(
            self.rows,
            self.tables,
            path=self.path,
            path_id=self.path_id,
            reclaimed=self.reclaimed,
            notes=self.notes,
        )
        header, y = self._header()
        tops: list[float] = []
        for line in range(lay.lines):
            tops.append(y)
            y += ADDR_H + MARK_H + BAND_H + 8 + lay.lanes.get(line, 0) * LANE_H + ROW_GAP
        body: list[str] = []
        for it in lay.items:
            body += _item(it, tops[it.line])
        body += _addresses(lay, tops)
        body += self._hatches(lay, tops)
        for it in lay.items:
            body += _band_text(it, tops[it.line], it.index in lay.hatch_spans)
        for m in lay.markers:
            body += _marker(m, tops[m.line])
        if lay.inset is not None:
            inset, y = self._inset(lay, lay.inset, y)
            body += inset
        footer: list[str] = []
        for note in self.notes:
            y += 4
            footer.append(text_el(MARGIN, y + 11, note, 11, SANS, fill="#444444", style="italic"))
            y += 14
        height = math.ceil(y + MARGIN)
        out = [
            '<svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
            f'role="img" aria-labelledby="efihandoff-title" font-family="{esc(MONO)}">',
            f'<title id="efihandoff-title">{esc(self._title())}</title>',
            f"<desc>{esc(_scale_note())}</desc>",
            "<defs>",
            f'<pattern id="{HATCH_ID}" patternUnits="userSpaceOnUse" width="6" height="6" '
            'patternTransform="rotate(45)">'
            '<rect width="6" height="6" fill="#FFFFFF" fill-opacity="0.35"/>'
            '<line x1="0" y1="0" x2="0" y2="6" stroke="#000000" stroke-width="2.5"/></pattern>',
            "</defs>",
            f'<rect class="background" width="{WIDTH}" height="{height}" fill="#FFFFFF"/>',
            *header,
            *body,
            *footer,
            "</svg>",
        ]
        return "\n".join(out) + "\n"

    def _title(self) -> str:
        m = self.doc.get("machine") or {}
        title = f"Physical memory map of {m.get('name') or 'a machine'}"
        if self.path is not None:
            title += f" on path {self.path_id}"
        return title

    def _header(self) -> tuple[list[str], float]:
        out = [text_el(MARGIN, 26, self._title(), 17, SANS, weight="bold")]
        y = 26.0
        n = len(self.rows) if self.rows is not None else 0
        facts = (
            f"{n} descriptors" if self.rows is not None else "no memory map"
        ) + f", {len(self.tables)} configuration tables"
        m = self.doc.get("machine") or {}
        if m.get("description"):
            facts += f" · {m['description']}"
        lines = [facts]
        if self.path is not None:
            lines.append(
                f"Path {self.path_id}: {self.path.get('label', '')}"
                + (f" ({self.path['description']})" if self.path.get("description") else "")
            )
        lines.append(_scale_note())
        for text in lines:
            for part in wrap(text, WIDTH - 2 * MARGIN, 12):
                y += 17
                out.append(text_el(MARGIN, y, part, 12, SANS, fill="#222222"))
        y += 10
        x = float(MARGIN)
        y += 4
        for kind, colour, label in self._legend_items():
            w = 18 + text_width(label, 11) + 18
            if x + w > WIDTH - MARGIN and x > MARGIN:
                x, y = float(MARGIN), y + 20
            if kind == "type":
                out.append(
                    f'<rect class="swatch" x="{num(x)}" y="{num(y)}" width="14" height="14" '
                    f'fill="{colour}" stroke="#000000" stroke-width="0.5"/>'
                )
            elif kind == "hatch":
                out.append(
                    f'<rect class="swatch" x="{num(x)}" y="{num(y)}" width="14" height="14" '
                    f'fill="#EE8866" stroke="#000000" stroke-width="0.5"/>'
                    f'<rect class="swatch" x="{num(x)}" y="{num(y)}" width="14" height="14" '
                    f'fill="url(#{HATCH_ID})"/>'
                )
            else:
                shape = VERDICT_SHAPES.get(kind[len("verdict:") :], "triangle")
                out.append(
                    f'<path class="swatch" data-shape="{shape}" '
                    f'd="{marker_path(shape, x + 7, y + 12)}" '
                    f'fill="{colour}" stroke="#000000" stroke-width="0.8"/>'
                )
            out.append(text_el(x + 18, y + 11.5, label, 11, MONO))
            x += w
        return out, y + 30

    def _legend_items(self) -> list[tuple[str, str, str]]:
        present = {str(r.get("type")) for r in self.rows or ()}
        known = [t for t in TYPE_COLOURS if t in present]
        other = sorted(present - set(TYPE_COLOURS))
        items = [("type", type_colour(t), f"{t} ({short_type(t)})") for t in known]
        items += [("type", OTHER_TYPE_COLOUR, t) for t in other]
        if self.path is not None and self.reclaimed:
            items.append(("hatch", "", f"reclaimed as RAM on {self.path_id}"))
        if self.path is not None:
            seen = [str(tv.get("verdict")) for tv in (self.path.get("tables") or {}).values()]
            for v in VERDICT_COLOURS:
                if v in seen:
                    items.append((f"verdict:{v}", VERDICT_COLOURS[v], f"table {v}"))
        else:
            items.append(("verdict:", NO_VERDICT_COLOUR, "configuration table"))
        return items

    def _hatches(self, lay: MapLayout, tops: Sequence[float]) -> list[str]:
        out = []
        for it in lay.bands:
            for s, e in lay.hatch_spans.get(it.index, ()):
                x0, x1 = it.pos(s), it.pos(e)
                if x1 - x0 < HATCH_MIN_W:
                    x1 = min(it.x + it.w, x0 + HATCH_MIN_W)
                    x0 = x1 - HATCH_MIN_W
                y = tops[it.line] + ADDR_H + MARK_H
                tip = f"reclaimed as RAM on {self.path_id}: {s:#x}-{e - 1:#x}"
                out.append(
                    f'<rect class="reclaimed" data-desc="{it.index}" x="{num(x0)}" y="{num(y)}" '
                    f'width="{num(x1 - x0)}" height="{BAND_H}" fill="url(#{HATCH_ID})">'
                    f"<title>{esc(tip)}</title></rect>"
                )
        return out

    def _inset(self, lay: MapLayout, inset: Inset, y: float) -> tuple[list[str], float]:
        """The zoomed pages, their numbered markers, then the key; returns the new bottom."""
        n = len(inset.pages)
        title = (
            f"Zoom on the {n} page{'s' if n != 1 else ''} holding tables: each 4 KiB page is "
            f"drawn at least {num(INSET_PAGE_W)} px wide; markers keep address order, pushed "
            f"apart where closer than {num(INSET_SEP)} px, numbered as in the list below"
        )
        out = ['<g class="inset">']
        for part in wrap(title, WIDTH - 2 * MARGIN, 12):
            y += 17
            out.append(text_el(MARGIN, y, part, 12, SANS, fill="#222222", cls="inset-title"))
        y += INSET_TITLE_H - 17
        tops = []
        for _ in range(inset.lines):
            tops.append(y)
            y += ADDR_H + NUM_H + MARK_H + BAND_H + ROW_GAP
        for p in inset.pages:
            top = tops[p.line]
            box_y = top + ADDR_H + NUM_H + MARK_H
            it = p.item
            tname = str(it.row.get("type")) if it is not None and it.kind == "band" else None
            fill = type_colour(tname) if tname is not None else "#FFFFFF"
            where = f"in #{it.index} {tname}" if it is not None and tname else "in no descriptor"
            tip = f"page {p.page:#x}-{p.page + PAGE - 1:#x} {where}"
            dash = "" if tname is not None else ' stroke-dasharray="3 2"'
            out.append(
                f'<rect class="inset-page" x="{num(p.x)}" y="{num(box_y)}" width="{num(p.w)}" '
                f'height="{BAND_H}" fill="{fill}" stroke="#000000" stroke-width="0.6"{dash}>'
                f"<title>{esc(tip)}</title></rect>"
            )
            hatched = it is not None and any(
                s < p.page + PAGE and p.page < e for s, e in lay.hatch_spans.get(it.index, ())
            )
            if hatched:
                out.append(
                    f'<rect class="inset-reclaimed" x="{num(p.x)}" y="{num(box_y)}" '
                    f'width="{num(p.w)}" height="{BAND_H}" fill="url(#{HATCH_ID})"/>'
                )
            out.append(
                text_el(p.x + 2, top + 10, f"{p.page:#x}", 9, MONO, fill="#333333", cls="addr")
            )
            inner = f"{short_type(tname)} 4 KiB" if tname is not None else "no descriptor"
            if text_width(inner, 10) + 6 <= p.w:
                ink = ink_on(fill)
                out.append(
                    text_el(
                        p.x + p.w / 2, box_y + BAND_H / 2 + 3.5, inner, 10, MONO,
                        fill=ink, anchor="middle",
                        halo=("#000000" if ink == "#FFFFFF" else "#FFFFFF") if hatched else None,
                    )
                )
            for im in p.marks:
                m = im.marker
                out.append(
                    f'<g class="inset-marker" data-guid="{esc(m.guid)}" data-n="{im.number}">'
                    f"<title>{esc(m.title)}</title>"
                    + _shape(m, im.x, box_y)
                    + text_el(im.x, box_y - MARK_H - 2, str(im.number), 10, MONO,
                              anchor="middle", cls="inset-number")
                    + "</g>"
                )
        y += 4
        for e in inset.key:
            m = e.mark.marker
            ey = y + e.dy
            parts = [
                f'<g class="inset-key" data-n="{e.mark.number}">',
                _shape(m, e.x + 6, ey + 11),
            ]
            for k, line in enumerate(e.lines):
                parts.append(
                    text_el(e.x + KEY_GLYPH_W, ey + 10 + k * LANE_H, line, LABEL_SIZE, MONO,
                            cls="inset-label")
                )
            out.append("".join(parts) + "</g>")
        out.append("</g>")
        return out, y + inset.key_h


def _scale_note() -> str:
    return (
        f"Band width = {num(BAND_UNIT)} px × (log2(pages) + 1): "
        f"4 KiB → {num(band_width(1))} px, 2 MiB → {num(band_width(512))} px, "
        f"1 GiB → {num(band_width(1 << 18))} px. "
        "Dashed boxes are holes between descriptors (size written, not to scale); "
        "a marker's place within its band is proportional to its offset."
    )


def _item(it: Item, top: float) -> list[str]:
    y = top + ADDR_H + MARK_H
    if it.kind == "band":
        row = it.row
        tname = str(row.get("type"))
        attr = row.get("attribute")
        size = int(row["pages"]) << 12
        tip = (
            f"#{it.index} {tname} {it.start:#x}-{it.end - 1:#x} "
            f"({human_size(size)}, {int(row['pages'])} pages)"
            + ("" if attr is None else f" attr {'|'.join(attribute_names(int(attr))) or '0'}")
        )
        return [
            f'<rect class="band" data-desc="{it.index}" x="{num(it.x)}" y="{num(y)}" '
            f'width="{num(it.w)}" height="{BAND_H}" fill="{type_colour(tname)}" '
            f'stroke="#000000" stroke-width="0.6"><title>{esc(tip)}</title></rect>'
        ]
    if it.kind == "nomap":
        return [
            f'<rect class="nomap" x="{num(it.x)}" y="{num(y)}" width="{num(it.w)}" '
            f'height="{BAND_H}" fill="#F2F2F2" stroke="#999999" stroke-dasharray="4 3"/>',
            text_el(
                it.x + it.w / 2,
                y + BAND_H / 2 + 4,
                "memory map not in the evidence",
                11,
                MONO,
                fill="#555555",
                anchor="middle",
            ),
        ]
    label = human_size(it.end - it.start) if it.kind == "gap" else "outside the map"
    tip = (
        f"hole {it.start:#x}-{it.end - 1:#x} ({human_size(it.end - it.start)}): no descriptor"
        if it.kind == "gap"
        else "addresses outside every descriptor"
    )
    return [
        f'<g class="{it.kind}"><title>{esc(tip)}</title>'
        f'<rect x="{num(it.x + 2)}" y="{num(y + 3)}" width="{num(it.w - 4)}" '
        f'height="{BAND_H - 6}" fill="#FFFFFF" stroke="#888888" stroke-width="0.8" '
        'stroke-dasharray="3 2"/>'
        + text_el(
            it.x + it.w / 2, y + BAND_H / 2 + 3, label, 9, MONO, fill="#444444", anchor="middle"
        )
        + "</g>"
    ]


def _addresses(lay: MapLayout, tops: Sequence[float]) -> list[str]:
    out: list[str] = []
    last_end: dict[int, float] = {}
    right = WIDTH - MARGIN
    for it in lay.bands:
        top = tops[it.line]
        label = f"{it.start:#x}"
        w = text_width(label, 9)
        if it.x >= last_end.get(it.line, -1e9) + 4 and it.x + w <= right:
            out.append(
                f'<line x1="{num(it.x)}" y1="{num(top + 6)}" x2="{num(it.x)}" '
                f'y2="{num(top + ADDR_H + MARK_H)}" stroke="#666666" stroke-width="0.6"/>'
            )
            out.append(text_el(it.x + 2, top + 10, label, 9, MONO, fill="#333333", cls="addr"))
            last_end[it.line] = it.x + 2 + w
    if lay.bands:
        last = max(lay.bands, key=lambda b: (b.end, b.index))
        label = f"{last.end:#x}"
        w = text_width(label, 9)
        x = last.x + last.w
        if x - w - 2 >= last_end.get(last.line, -1e9) + 4:
            out.append(
                text_el(
                    x - 2, tops[last.line] + 10, label, 9, MONO, fill="#333333", anchor="end",
                    cls="addr",
                )
            )
    return out


def _band_text(it: Item, top: float, hatched: bool) -> list[str]:
    if it.kind != "band":
        return []
    y = top + ADDR_H + MARK_H
    tname = str(it.row.get("type"))
    size = int(it.row["pages"]) << 12
    inner = f"{short_type(tname)} {human_size(size)}"
    if text_width(inner, 10) + 6 > it.w:
        inner = human_size(size)
    if text_width(inner, 10) + 6 > it.w:
        return []
    ink = ink_on(type_colour(tname))
    halo = ("#000000" if ink == "#FFFFFF" else "#FFFFFF") if hatched else None
    return [
        text_el(
            it.x + it.w / 2, y + BAND_H / 2 + 3.5, inner, 10, MONO, fill=ink, anchor="middle",
            halo=halo,
        )
    ]


def _shape(m: Marker, x: float, tip_y: float) -> str:
    """A marker's shape in its verdict's colour; a path's copy is drawn hollow."""
    fill = "#FFFFFF" if m.copy else m.colour
    stroke = m.colour if m.copy and m.colour != NO_VERDICT_COLOUR else "#000000"
    return (
        f'<path d="{marker_path(m.shape, x, tip_y)}" fill="{fill}" stroke="{stroke}" '
        f'stroke-width="1" data-shape="{m.shape}"/>'
    )


def _marker(m: Marker, top: float) -> list[str]:
    band_top = top + ADDR_H + MARK_H
    band_bottom = band_top + BAND_H
    lane_y = band_bottom + 8 + m.lane * LANE_H + 10
    cls = "table-copy" if m.copy else "table"
    if m.hidden:  # no lane for its label: the marker alone, its title says what it is
        return [
            f'<g class="{cls}" data-guid="{esc(m.guid)}"><title>{esc(m.title)}</title>'
            + _shape(m, m.x, band_top)
            + "</g>"
        ]
    return [
        f'<g class="{cls}" data-guid="{esc(m.guid)}"><title>{esc(m.title)}</title>'
        f'<line x1="{num(m.x)}" y1="{num(band_top)}" x2="{num(m.x)}" y2="{num(lane_y - 9)}" '
        'stroke="#000000" stroke-width="1"/>'
        + _shape(m, m.x, band_top)
        + text_el(
            m.lx if not m.anchor_end else m.rx,
            lane_y,
            m.label,
            LABEL_SIZE,
            MONO,
            anchor="end" if m.anchor_end else None,
            cls="table-label",
        )
        + "</g>"
    ]


__all__ = [
    "BAND_UNIT",
    "NO_VERDICT_COLOUR",
    "TYPE_COLOURS",
    "VERDICT_COLOURS",
    "VERDICT_SHAPES",
    "band_width",
    "esc",
    "human_size",
    "ink_on",
    "memmap_svg",
    "reclaimed_ranges",
    "short_type",
    "table_name",
    "type_colour",
]
