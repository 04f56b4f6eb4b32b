"""Where everything of the memory-map picture goes (geometry only; :mod:`.svg` draws it).

One slot per memory descriptor in address order, log-scaled: ``BAND_UNIT * (log2(pages) + 1)``
pixels, so a 4 KiB page stays visible beside a 12 GiB region; holes between descriptors are
slots of their own (not to scale). A table is a marker at its offset within its slot, its label
in a lane below the row. The pages that hold tables get an inset: each page drawn wide, its
markers in address order at least ``INSET_SEP`` apart, numbered, the labels in a key below.

Work is O(n log n) in descriptors and tables: slots by one sort, markers found by bisection,
labels stacked in at most ``MAX_LANES`` lanes each searched in O(log n), the inset capped at
``INSET_MAX`` markers (issue 15: label placement was cubic, 32 s for 1,200 tables).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from efihandoff.intervals import Span, merge
from efihandoff.outputs.mapstyle import MARK_H, table_name, verdict_style
from efihandoff.outputs.svgtext import human_size, text_width, wrap

WIDTH = 1200
MARGIN = 16
BAND_UNIT = 10.0  # band width = BAND_UNIT * (log2(pages) + 1)
BAND_H = 34
ADDR_H = 16  # address labels above the bands
LANE_H = 14  # one line of table labels below the bands
ROW_GAP = 14
GAP_MIN_W = 18
LABEL_SIZE = 11  # px, table labels
MAX_LANES = 48  # label lanes tried per row; more labels at one place are not drawn

PAGE = 0x1000
INSET_MAX = 64  # markers zoomed in the inset; more are counted in a note
INSET_PAGE_W = 150.0  # a page's width in the inset before its markers push it wider
INSET_SEP = 22.0  # least distance between two markers' centres in the inset
INSET_PAD = 12.0  # from a page's edge to the nearest marker
INSET_GAP = 18.0  # between two pages in the inset
NUM_H = 13  # the row of marker numbers above the inset's markers
KEY_GLYPH_W = 16.0  # a key entry's marker glyph
KEY_GAP = 24.0  # between key columns


def band_width(pages: int) -> float:
    """Width of a band of ``pages`` 4 KiB pages (zero pages draw as one)."""
    return BAND_UNIT * (math.log2(max(pages, 1)) + 1)


@dataclass
class Item:
    """One horizontal slot: a descriptor's band, a hole, or addresses outside the map."""

    kind: str  # "band", "gap", "outside", "nomap"
    start: int
    end: int
    w: float
    index: int = -1  # position in the document's memory_map
    row: Mapping[str, Any] = field(default_factory=dict)
    x: float = 0.0
    line: int = 0  # which picture row

    def offset(self, addr: int) -> float:
        """Distance of ``addr`` from the slot's left edge, linear in the offset."""
        span = self.end - self.start
        frac = 0.5 if span <= 0 else min(max((addr - self.start) / span, 0.0), 1.0)
        return self.w * frac

    def pos(self, addr: int) -> float:
        """x of ``addr`` within this slot."""
        return self.x + self.offset(addr)


@dataclass
class Marker:
    """A table (or the copy a path makes of it) and where its marker and label go."""

    item: Item | None
    addr: int
    name: str
    label: str
    colour: str
    title: str
    guid: str
    shape: str = "triangle"
    copy: bool = False
    x: float = 0.0
    line: int = 0
    lane: int = 0
    lx: float = 0.0  # label extent
    rx: float = 0.0
    anchor_end: bool = False
    hidden: bool = False  # no lane left for its label: marker only (the inset keys it)

    @property
    def width(self) -> float:
        return text_width(self.label, LABEL_SIZE)


@dataclass
class InsetMark:
    marker: Marker
    number: int  # 1.. in address order; keys the marker to its entry in the key
    x: float = 0.0


@dataclass
class InsetPage:
    page: int  # the page's first address
    item: Item | None  # the slot holding it
    marks: list[InsetMark]
    x: float = 0.0
    w: float = INSET_PAGE_W
    line: int = 0


@dataclass(frozen=True)
class KeyEntry:
    mark: InsetMark
    x: float
    dy: float  # from the key's top to the entry's first line
    lines: tuple[str, ...]  # the number and label, wrapped to the column


@dataclass
class Inset:
    pages: list[InsetPage]
    lines: int
    key: list[KeyEntry]
    key_h: float
    left_out: int  # markers beyond INSET_MAX, not zoomed


class Spans:
    """Open intervals ``(a, b)`` of one lane, kept by start (descending, so the right-to-left
    placement appends); ``hits`` is exact when no two intervals nest (a lane's labels never
    overlap; its leaders all have the same width)."""

    __slots__ = ("ends", "neg_starts")

    def __init__(self) -> None:
        self.neg_starts: list[float] = []
        self.ends: list[float] = []

    def add(self, a: float, b: float) -> None:
        k = bisect.bisect_right(self.neg_starts, -a)
        self.neg_starts.insert(k, -a)
        self.ends.insert(k, b)

    def hits(self, lo: float, hi: float) -> bool:
        """Whether an interval ``(a, b)`` has ``a < hi`` and ``lo < b``: the one with the
        largest start below ``hi`` has the largest end of those."""
        k = bisect.bisect_right(self.neg_starts, -hi)
        return k < len(self.ends) and self.ends[k] > lo


class MapLayout:
    """The geometry of one picture: slots, markers, label lanes, hatched spans and the inset.

    ``path``: the chosen path's document entry (its verdicts colour the markers), or None;
    ``reclaimed``: what that path hands back as RAM (the model's ``reclaimed``); ``notes``
    collects what the picture must say it left out."""

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]] | None,
        tables: Sequence[Mapping[str, Any]],
        *,
        path: Mapping[str, Any] | None = None,
        path_id: str | None = None,
        reclaimed: Sequence[Span] = (),
        notes: list[str] | None = None,
    ) -> None:
        self.rows = rows
        self.tables = tables
        self.path = path
        self.path_id = path_id
        self.notes = notes if notes is not None else []
        self.items: list[Item] = []
        self.bands: list[Item] = []
        self._starts: list[int] = []
        self._others: list[Item] = []
        self._other_starts: list[int] = []
        self.markers: list[Marker] = []
        self._slots()
        self._build_markers()
        self._layout()
        self.hatch_spans = self._hatch_spans(merge(reclaimed))
        self.lanes = self.place_labels()
        self.inset = self._inset()

    @property
    def lines(self) -> int:
        return max((it.line for it in self.items), default=-1) + 1

    # -- slots ---------------------------------------------------------------------------------

    def _slots(self) -> None:
        rows = self.rows
        if rows is None:
            self.notes.append(
                "the evidence has no memory map: tables are shown in address order, not to scale"
            )
            self.items.append(Item("nomap", 0, 0, WIDTH - 2 * MARGIN))
            return
        order = sorted(range(len(rows)), key=lambda i: (int(rows[i]["start"]), i))
        addrs = [int(t["address"]) for t in self.tables if t.get("address") is not None]
        first = int(rows[order[0]]["start"]) if order else None
        if addrs and (first is None or min(addrs) < first):
            self.items.append(Item("outside", min(addrs), first or min(addrs) + 1, 0))
        prev_end: int | None = None
        for i in order:
            row = rows[i]
            start, pages = int(row["start"]), int(row["pages"])
            if prev_end is not None and start > prev_end:
                self.items.append(Item("gap", prev_end, start, 0))
            end = start + (pages << 12)
            self.items.append(Item("band", start, end, band_width(pages), i, row))
            prev_end = end if prev_end is None else max(prev_end, end)
        if addrs and prev_end is not None and max(addrs) >= prev_end:
            self.items.append(Item("outside", prev_end, max(addrs) + 1, 0))
        for it in self.items:
            if it.kind == "gap":
                it.w = max(GAP_MIN_W, text_width(human_size(it.end - it.start), 9) + 8)
            elif it.kind == "outside":
                it.w = text_width("outside the map", 9) + 8
        self.bands = [it for it in self.items if it.kind == "band"]
        self._starts = [it.start for it in self.bands]
        # Gaps and outside slots are disjoint and in address order: found by bisect too.
        self._others = [it for it in self.items if it.kind in ("gap", "outside")]
        self._other_starts = [it.start for it in self._others]

    def slot_for(self, addr: int) -> Item | None:
        """The first band (in address order) holding ``addr``, else the hole or the outside
        slot it falls in."""
        bands = self.bands
        k = bisect.bisect_right(self._starts, addr)
        # overlapping descriptors are rare: look back a little only
        hit = None
        for j in range(k - 1, max(k - 65, -1), -1):
            if bands[j].start <= addr < bands[j].end:
                hit = bands[j]
        if hit is not None:
            return hit
        k = bisect.bisect_right(self._other_starts, addr) - 1
        if k >= 0 and self._others[k].start <= addr < self._others[k].end:
            return self._others[k]
        return next((it for it in self._others if it.kind == "outside"), None)

    # -- markers -------------------------------------------------------------------------------

    def _build_markers(self) -> None:
        verdicts = (self.path or {}).get("tables") or {}
        seen: set[str] = set()
        nomap = self.items[0] if self.items and self.items[0].kind == "nomap" else None
        order = sorted(
            range(len(self.tables)), key=lambda i: (self.tables[i].get("address") or 0, i)
        )
        for i in order:
            t = self.tables[i]
            if t.get("address") is None:
                continue
            addr = int(t["address"])
            guid = str(t.get("guid", ""))
            name = table_name(t)
            tv = verdicts.get(guid) if guid not in seen else None
            seen.add(guid)
            verdict = tv.get("verdict") if tv else None
            label = f"{name} {addr:#x}"
            colour, shape = verdict_style(None)
            title = f"{name} ({guid}) at {addr:#x}"
            if t.get("memory_type"):
                title += f" in {t['memory_type']}"
            if self.path is not None and tv is not None and verdict is not None:
                colour, shape = verdict_style(str(verdict))
                label += f" {verdict}"
                title += f": {verdict} on {self.path_id}: {tv.get('reason', '')}"
            elif self.path is not None and guid in verdicts:
                label += " (duplicate GUID: not judged)"
            slot = nomap if nomap is not None else self.slot_for(addr)
            final = tv.get("final_address") if tv else None
            copy = None
            if verdict in ("relocated", "corrupt") and final is not None and int(final) != addr:
                cslot = self.slot_for(int(final)) if nomap is None else None
                if cslot is not None:
                    label += f" → {int(final):#x}"
                    copy = Marker(
                        cslot,
                        int(final),
                        name,
                        f"{name} copy {int(final):#x}",
                        colour,
                        f"{name}: the copy {self.path_id} makes at {int(final):#x}",
                        guid,
                        shape=shape,
                        copy=True,
                    )
            self.markers.append(Marker(slot, addr, name, label, colour, title, guid, shape))
            if copy is not None:
                self.markers.append(copy)

    # -- rows ----------------------------------------------------------------------------------

    def _layout(self) -> None:
        """Rows left to right; a slot whose table labels would run past the right edge starts a
        new row, so every label can sit right of its marker."""
        right = WIDTH - MARGIN
        need: dict[int, float] = {}
        for m in self.markers:
            if m.item is not None:
                key = id(m.item)
                need[key] = max(need.get(key, 0.0), m.item.offset(m.addr) + 3 + m.width)
        x, line = float(MARGIN), 0
        for it in self.items:
            if it.kind == "nomap":
                it.x, it.line = x, line
                continue
            span = max(it.w, need.get(id(it), 0.0))
            if x + span > right and x > MARGIN:
                x, line = float(MARGIN), line + 1
            it.x, it.line = x, line
            x += it.w
        nomap = [m for m in self.markers if m.item is not None and m.item.kind == "nomap"]
        widest = max((m.width for m in nomap), default=0.0)
        for n, m in enumerate(nomap):
            room = max(WIDTH - 2 * MARGIN - widest - 10, 10)
            m.x, m.line = MARGIN + room * (n + 0.5) / len(nomap), 0
        for m in self.markers:
            if m.item is not None and m.item.kind != "nomap":
                m.x, m.line = m.item.pos(m.addr), m.item.line

    def _hatch_spans(self, reclaimed: list[Span]) -> dict[int, list[Span]]:
        """Per band, the parts of it the path reclaims (free memory is not hatched: reclaiming
        it changes nothing worth drawing). ``reclaimed`` is merged, so each band looks at the
        spans meeting it only."""
        out: dict[int, list[Span]] = {}
        ends = [e for _, e in reclaimed]
        for it in self.bands:
            if it.row.get("type") == "EfiConventionalMemory":
                continue
            k = bisect.bisect_right(ends, it.start)  # the first span ending after the start
            spans = []
            while k < len(reclaimed) and reclaimed[k][0] < it.end:
                s, e = reclaimed[k]
                spans.append((max(s, it.start), min(e, it.end)))
                k += 1
            if spans:
                out[it.index] = spans
        return out

    # -- labels --------------------------------------------------------------------------------

    def place_labels(self) -> dict[int, int]:
        """Stack labels in lanes below each row so none overlaps another or a leader line;
        returns the lanes used per row.

        Bounded: at most MAX_LANES lanes are tried per label, each in O(log n) (a lane's labels
        never overlap, and leaders all have one width, so the nearest neighbour by start
        decides); labels that find no lane are not drawn and a note says how many."""
        right = WIDTH - MARGIN
        lanes_used: dict[int, int] = {}
        by_line: dict[int, list[Marker]] = {}
        for m in self.markers:
            by_line.setdefault(m.line, []).append(m)
        hidden = 0
        for line, ms in by_line.items():
            labels: list[Spans] = []  # per lane: label extents
            leaders: list[Spans] = []  # per lane: leaders passing through
            for m in ms:
                if m.x + 3 + m.width <= right or m.x - 3 - m.width < MARGIN:
                    m.lx, m.rx = m.x + 3, m.x + 3 + m.width
                else:  # only when one slot is wider than the row
                    m.lx, m.rx, m.anchor_end = m.x - 3 - m.width, m.x - 3, True
            # Right to left: a label starts right of its marker, so the leaders it could cover
            # belong to markers already placed. Leaders may overlap each other.
            for m in sorted(ms, key=lambda m: (-m.x, m.lx)):
                lane = 0
                crossed = False
                while True:
                    while len(labels) <= lane:
                        labels.append(Spans())
                        leaders.append(Spans())
                    if lane:
                        crossed = crossed or labels[lane - 1].hits(m.x - 1, m.x + 1)
                    clash = labels[lane].hits(m.lx - 6, m.rx + 6) or leaders[lane].hits(
                        m.lx - 6, m.rx + 6
                    )
                    if (not clash and not crossed) or lane > len(ms) or lane == MAX_LANES - 1:
                        break
                    lane += 1
                if lane == MAX_LANES - 1 and (clash or crossed) and lane <= len(ms):
                    m.lane, m.hidden = MAX_LANES - 1, True
                    hidden += 1
                    continue
                m.lane = lane
                labels[lane].add(m.lx, m.rx)
                for lo in leaders[:lane]:
                    lo.add(m.x - 1, m.x + 1)
            lanes_used[line] = max(m.lane for m in ms) + 1
        if hidden:
            self.notes.append(
                f"{hidden} table labels not drawn (more than {MAX_LANES} lanes at one place); "
                "hover a marker for its table"
            )
        return lanes_used

    # -- the inset -----------------------------------------------------------------------------

    def _inset(self) -> Inset | None:
        """The pages holding tables, zoomed: pages in address order, wrapped into rows; within
        a page each marker at its linear offset unless that is closer than INSET_SEP to its left
        neighbour, then pushed right (the page widens to hold them). O(n log n)."""
        ms = [m for m in self.markers if m.item is not None and m.item.kind != "nomap"]
        if not ms:
            return None
        ms.sort(key=lambda m: (m.addr, m.copy))
        left_out = max(len(ms) - INSET_MAX, 0)
        ms = ms[:INSET_MAX]
        pages: list[InsetPage] = []
        for n, m in enumerate(ms, 1):
            base = m.addr & ~(PAGE - 1)
            if not pages or pages[-1].page != base:
                pages.append(InsetPage(base, self.slot_for(base) or m.item, []))
            pages[-1].marks.append(InsetMark(m, n))
        right = WIDTH - MARGIN
        x, line = float(MARGIN), 0
        for p in pages:
            p.w = max(INSET_PAGE_W, text_width(f"{p.page:#x}", 9) + 8)
            inner = p.w - 2 * INSET_PAD
            last = -math.inf
            for im in p.marks:
                im.x = max(INSET_PAD + inner * ((im.marker.addr - p.page) / PAGE), last + INSET_SEP)
                last = im.x
            p.w = max(p.w, last + INSET_PAD)
            if x + p.w > right and x > MARGIN:
                x, line = float(MARGIN), line + 1
            p.x, p.line = x, line
            for im in p.marks:
                im.x += x
            x += p.w + INSET_GAP
        key, key_h = self._key([im for p in pages for im in p.marks])
        if left_out:
            self.notes.append(
                f"the inset zooms on the first {INSET_MAX} tables by address; "
                f"{left_out} more are marked in the map only"
            )
        return Inset(pages, line + 1, key, key_h, left_out)

    @staticmethod
    def _key(marks: Sequence[InsetMark]) -> tuple[list[KeyEntry], float]:
        """The inset's key: ``n label`` per marker, in columns as wide as the widest entry (one
        column when that is wider than the picture; a long label wraps in its column)."""
        if not marks:
            return [], 0.0
        room = WIDTH - 2 * MARGIN
        texts = [f"{im.number} {im.marker.label}" for im in marks]
        widest = max(text_width(t, LABEL_SIZE) for t in texts) + KEY_GLYPH_W
        cols = max(1, int((room + KEY_GAP) // (widest + KEY_GAP)))
        col_w = room if cols == 1 else widest
        out: list[KeyEntry] = []
        dy = 0.0
        for start in range(0, len(marks), cols):
            row_h = 0.0
            for c in range(min(cols, len(marks) - start)):
                k = start + c
                lines = tuple(wrap(texts[k], col_w - KEY_GLYPH_W, LABEL_SIZE))
                out.append(KeyEntry(marks[k], MARGIN + c * (widest + KEY_GAP), dy, lines))
                row_h = max(row_h, len(lines) * LANE_H)
            dy += row_h + 4
        return out, dy


__all__ = [
    "ADDR_H",
    "BAND_H",
    "BAND_UNIT",
    "INSET_GAP",
    "INSET_MAX",
    "INSET_PAD",
    "INSET_PAGE_W",
    "INSET_SEP",
    "KEY_GLYPH_W",
    "LABEL_SIZE",
    "LANE_H",
    "MARGIN",
    "MARK_H",
    "MAX_LANES",
    "NUM_H",
    "PAGE",
    "ROW_GAP",
    "WIDTH",
    "Inset",
    "InsetMark",
    "InsetPage",
    "Item",
    "KeyEntry",
    "MapLayout",
    "Marker",
    "Spans",
    "band_width",
]
