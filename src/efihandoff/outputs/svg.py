"""The physical address space as a picture: an SVG drawn from an ``explain/1`` document.

One band per memory descriptor, in address order, coloured by memory type. Widths are
log-scaled, ``BAND_UNIT * (log2(pages) + 1)`` pixels, so a 4 KiB page stays visible beside a
12 GiB region. Holes between descriptors are dashed boxes with the hole's size written in them
(not to scale). Each configuration table is a marker at its offset within its descriptor's band
(linear within the band) with a label below. For a chosen path, what that path reclaims as RAM is
hatched and each marker takes the colour of the table's verdict on the path.

The output is deterministic: the same document gives the same bytes.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from efihandoff.errors import EfiHandoffError
from efihandoff.uefi.memmap import (
    LINUX_TYPE_NAMES,
    MemoryDescriptor,
    MemoryType,
    attribute_names,
)

# -- geometry (pixels) -------------------------------------------------------------------------

WIDTH = 1200
MARGIN = 16
BAND_UNIT = 10.0  # band width = BAND_UNIT * (log2(pages) + 1)
BAND_H = 34
ADDR_H = 16  # address labels above the bands
MARK_H = 9  # table markers between address labels and bands
LANE_H = 14  # one line of table labels below the bands
ROW_GAP = 14
GAP_MIN_W = 18
HATCH_MIN_W = 3.0
CHAR_W = 0.6  # advance of a monospace glyph, in em (DejaVu Sans Mono: 0.602)
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"

# -- colours -----------------------------------------------------------------------------------

# Paul Tol's colour-blind-safe schemes ("muted", "light" and greys): related types share a hue
# family and differ in lightness; the legend names every type shown.
TYPE_COLOURS: dict[str, str] = {
    "EfiReservedMemoryType": "#777777",
    "EfiLoaderCode": "#999933",
    "EfiLoaderData": "#DDCC77",
    "EfiBootServicesCode": "#CC6677",
    "EfiBootServicesData": "#EE8866",
    "EfiRuntimeServicesCode": "#882255",
    "EfiRuntimeServicesData": "#AA4499",
    "EfiConventionalMemory": "#88CCEE",
    "EfiUnusableMemory": "#222222",
    "EfiACPIReclaimMemory": "#44AA99",
    "EfiACPIMemoryNVS": "#117733",
    "EfiMemoryMappedIO": "#332288",
    "EfiMemoryMappedIOPortSpace": "#77AADD",
    "EfiPalCode": "#BBCC33",
    "EfiPersistentMemory": "#FFAABB",
    "EfiUnacceptedMemoryType": "#DDDDDD",
}
OTHER_TYPE_COLOUR = "#FFFFFF"  # values outside MemoryType (OEM, OS, garbage)

# Paul Tol's "bright" scheme; the verdict word is written in the label too.
VERDICT_COLOURS: dict[str, str] = {
    "intact": "#228833",
    "relocated": "#4477AA",
    "corrupt": "#EE6677",
    "refused": "#CCBB44",
    "clobbered": "#AA3377",
    "absent": "#BBBBBB",
    "unknown": "#66CCEE",
}
NO_VERDICT_COLOUR = "#000000"

HATCH_ID = "efihandoff-reclaimed"

_KEEPING_VERDICTS = frozenset({"intact", "relocated", "corrupt"})
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def memmap_svg(doc: Mapping[str, Any], *, path_id: str | None = None) -> str:
    """The memory map of an ``explain/1`` document as a standalone SVG; with ``path_id``, what
    that path reclaims is hatched and table markers show its verdicts."""
    return _Picture(doc, path_id).render()


def reclaimed_ranges(doc: Mapping[str, Any], path_id: str) -> list[tuple[int, int]] | None:
    """``[start, end)`` ranges the path hands back to an allocator as RAM, or None if unknown.

    Uses the path's ``reclaimed`` key when the document has it; otherwise derives them from the
    path's parameters and the firmware memory map."""
    path = (doc.get("paths") or {}).get(path_id)
    if path is None:
        return None
    given = path.get("reclaimed")
    if given is not None:
        return sorted((int(s), int(e)) for s, e in given)
    rows = doc.get("memory_map")
    if rows is None:
        return None
    from efihandoff.paths.presets import parse_path

    try:
        spec = parse_path(path_id)
    except EfiHandoffError:
        return None
    kept = _kept_spans(doc, path)
    out: list[tuple[int, int]] = []
    for row in rows:
        d = _descriptor(row)
        if d is None or d.is_bogus:
            continue
        whole, splits = _reclaims(spec, d)
        if whole:
            out += _subtract((d.phys_addr, d.end), kept) if splits else [(d.phys_addr, d.end)]
    return sorted(out)


def _reclaims(spec: Any, d: MemoryDescriptor) -> tuple[bool, bool]:
    """Whether the path reclaims ``d``, and whether kept tables are carved out of it first."""
    from efihandoff.e820 import E820Type
    from efihandoff.paths import xen
    from efihandoff.paths.presets import Policy
    from efihandoff.uefi.memmap import MemoryAttribute

    if spec.native:
        # Linux 6.3 arch/x86/platform/efi/quirks.c: efi_arch_mem_reserve carves what it keeps
        # out of its descriptor (efi_memmap_insert); efi_free_boot_services frees the rest of
        # boot-services memory that is not RUNTIME.
        bs = d.type in xen.BS_TYPES and not d.attribute & MemoryAttribute.RUNTIME
        return bs, True
    # Xen 4.16+ xen/arch/x86/efi/efi-boot.h efi_arch_process_memory_map: BS and loader ranges
    # that become E820 RAM are reused (paths.xen.e820_type models the conversion).
    if d.type not in xen.BS_TYPES | xen.LOADER_TYPES or xen.e820_type(d, spec) != E820Type.RAM:
        return False, False
    # reserve-hypercall proposal: Xen subtracts dom0's reservations before reclaiming BS memory.
    return True, spec.policy is Policy.RESERVE_HYPERCALL and d.type in xen.BS_TYPES


def _kept_spans(doc: Mapping[str, Any], path: Mapping[str, Any]) -> list[tuple[int, int]]:
    """Page spans of the tables the path keeps (its consumer reads them at their address)."""
    sizes = {str(t.get("guid")): t.get("size") for t in doc.get("tables") or []}
    out = []
    for guid, tv in (path.get("tables") or {}).items():
        addr = tv.get("final_address")
        if tv.get("verdict") not in _KEEPING_VERDICTS or addr is None:
            continue
        size = sizes.get(guid) if addr == tv.get("address") else None
        size = max(int(size or 1), 1)
        out.append((int(addr) & ~0xFFF, (int(addr) + size + 0xFFF) & ~0xFFF))
    return sorted(out)


def _subtract(span: tuple[int, int], holes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    start, end = span
    for s, e in holes:
        if e <= start or s >= end:
            continue
        if s > start:
            out.append((start, s))
        start = max(start, e)
    if start < end:
        out.append((start, end))
    return out


def _descriptor(row: Mapping[str, Any]) -> MemoryDescriptor | None:
    value = type_value(str(row.get("type", "")))
    if value is None:
        return None
    return MemoryDescriptor(
        type=value,
        phys_addr=int(row["start"]),
        num_pages=int(row["pages"]),
        attribute=int(row.get("attribute") or 0),
    )


def type_value(name: str) -> int | None:
    """The numeric memory type of a document's type name (``EfiBootServicesData``,
    ``Type0x70000000``), or None."""
    if name in MemoryType.__members__:
        return int(MemoryType[name])
    if name.startswith("Type"):
        try:
            return int(name[4:], 0)
        except ValueError:
            return None
    return None


def table_name(t: Mapping[str, Any]) -> str:
    """A table's name, or the first group of its GUID when it has none."""
    guid = str(t.get("guid", ""))
    name = t.get("name")
    return str(name) if name and name != guid else guid[:8] + "…"


def type_colour(name: str) -> str:
    """Fill colour of a memory type's band."""
    return TYPE_COLOURS.get(name, OTHER_TYPE_COLOUR)


def short_type(name: str) -> str:
    """A short name for a memory type (Linux's print name where there is one)."""
    value = type_value(name)
    if value is not None and value in MemoryType._value2member_map_:
        return LINUX_TYPE_NAMES[MemoryType(value)]
    return name


def human_size(n: int) -> str:
    """``4 KiB``, ``1.5 GiB``: at most three significant digits."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
    v = float(n)
    i = 0
    while v >= 1024 and i < len(units) - 1:
        v /= 1024
        i += 1
    if i == 0 or v >= 100:
        text = f"{v:.0f}"
    elif v >= 10:
        text = f"{v:.1f}"
    else:
        text = f"{v:.2f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {units[i]}"


def band_width(pages: int) -> float:
    """Width of a band of ``pages`` 4 KiB pages (zero pages draw as one)."""
    return BAND_UNIT * (math.log2(max(pages, 1)) + 1)


def text_width(text: str, size: float) -> float:
    """Estimated width of ``text`` in the monospace font at ``size`` px."""
    return len(text) * size * CHAR_W


def esc(value: object) -> str:
    """Text safe in XML content and attribute values (characters XML forbids replaced)."""
    text = _INVALID_XML.sub("\ufffd", str(value))
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def num(x: float) -> str:
    """A coordinate rounded to two decimals, without trailing zeros."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _luminance(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ink_on(colour: str) -> str:
    """Black or white, whichever reads better on ``colour``."""
    return "#000000" if _luminance(colour) > 0.45 else "#FFFFFF"


# -- layout ------------------------------------------------------------------------------------


@dataclass
class _Item:
    """One horizontal slot: a descriptor's band, a hole, or addresses outside the map."""

    kind: str  # "band", "gap", "outside", "nomap"
    start: int
    end: int
    w: float
    index: int = -1  # position in the document's memory_map
    row: dict[str, Any] = field(default_factory=dict)
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
class _Marker:
    item: _Item | None
    addr: int
    name: str
    label: str
    colour: str
    title: str
    guid: str
    copy: bool = False
    x: float = 0.0
    line: int = 0
    lane: int = 0
    lx: float = 0.0  # label extent
    rx: float = 0.0
    anchor_end: bool = False

    @property
    def width(self) -> float:
        return text_width(self.label, 11)


MAX_LANES = 48  # label lanes tried per row; more labels at one place are not drawn


class _Spans:
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
        self.reclaimed: list[tuple[int, int]] = []
        if self.path is not None and path_id is not None:
            ranges = reclaimed_ranges(doc, path_id)
            if ranges is None:
                self.notes.append("what this path reclaims is not known: nothing hatched")
            else:
                self.reclaimed = ranges
        self.items: list[_Item] = []
        self._bands: list[_Item] = []
        self._starts: list[int] = []
        self._others: list[_Item] = []
        self._other_starts: list[int] = []
        self.markers: list[_Marker] = []
        self.out: list[str] = []

    # -- building the slots --------------------------------------------------------------------

    def _slots(self) -> None:
        if self.rows is None:
            self.notes.append(
                "the evidence has no memory map: tables are shown in address order, not to scale"
            )
            self.items.append(_Item("nomap", 0, 0, WIDTH - 2 * MARGIN))
            return
        order = sorted(range(len(self.rows)), key=lambda i: (int(self.rows[i]["start"]), i))
        addrs = [int(t["address"]) for t in self.tables if t.get("address") is not None]
        first = int(self.rows[order[0]]["start"]) if order else None
        if addrs and (first is None or min(addrs) < first):
            self.items.append(_Item("outside", min(addrs), first or min(addrs) + 1, 0))
        prev_end: int | None = None
        for i in order:
            row = self.rows[i]
            start, pages = int(row["start"]), int(row["pages"])
            if prev_end is not None and start > prev_end:
                self.items.append(_Item("gap", prev_end, start, 0))
            end = start + (pages << 12)
            self.items.append(_Item("band", start, end, band_width(pages), i, row))
            prev_end = end if prev_end is None else max(prev_end, end)
        if addrs and prev_end is not None and max(addrs) >= prev_end:
            self.items.append(_Item("outside", prev_end, max(addrs) + 1, 0))
        for it in self.items:
            if it.kind == "gap":
                it.w = max(GAP_MIN_W, text_width(human_size(it.end - it.start), 9) + 8)
            elif it.kind == "outside":
                it.w = text_width("outside the map", 9) + 8
        self._bands = [it for it in self.items if it.kind == "band"]
        self._starts = [it.start for it in self._bands]
        # Gaps and outside slots are disjoint and in address order: found by bisect too.
        self._others = [it for it in self.items if it.kind in ("gap", "outside")]
        self._other_starts = [it.start for it in self._others]

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

    def _slot_for(self, addr: int) -> _Item | None:
        bands = self._bands
        k = bisect.bisect_right(self._starts, addr)
        # The first band (in address order) that contains addr; overlaps are rare, so look back
        # a little only.
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
            colour = NO_VERDICT_COLOUR
            title = f"{name} ({guid}) at {addr:#x}"
            if t.get("memory_type"):
                title += f" in {t['memory_type']}"
            if self.path is not None:
                if verdict is None:
                    label += " (duplicate GUID: not judged)" if guid in verdicts else ""
                else:
                    colour = VERDICT_COLOURS.get(str(verdict), NO_VERDICT_COLOUR)
                    label += f" {verdict}"
                    title += f": {verdict} on {self.path_id}: {tv.get('reason', '')}"
            slot = nomap if nomap is not None else self._slot_for(addr)
            final = tv.get("final_address") if tv else None
            copy = None
            if verdict in ("relocated", "corrupt") and final is not None and int(final) != addr:
                cslot = self._slot_for(int(final)) if nomap is None else None
                if cslot is not None:
                    label += f" → {int(final):#x}"
                    copy = _Marker(
                        cslot,
                        int(final),
                        name,
                        f"{name} copy {int(final):#x}",
                        colour,
                        f"{name}: the copy {self.path_id} makes at {int(final):#x}",
                        guid,
                        copy=True,
                    )
            self.markers.append(_Marker(slot, addr, name, label, colour, title, guid))
            if copy is not None:
                self.markers.append(copy)

    def _lanes(self) -> dict[int, int]:
        """Stack labels in lanes below each row so none overlaps another or a leader line.

        Bounded: at most MAX_LANES lanes are tried per label, each in O(log n) (a lane's labels
        never overlap, and leaders all have one width, so the nearest neighbour by start
        decides); labels that find no lane are not drawn and a note says how many."""
        right = WIDTH - MARGIN
        lanes_used: dict[int, int] = {}
        by_line: dict[int, list[_Marker]] = {}
        for m in self.markers:
            by_line.setdefault(m.line, []).append(m)
        hidden = 0
        for line, ms in by_line.items():
            labels: list[_Spans] = []  # per lane: label extents
            leaders: list[_Spans] = []  # per lane: leaders passing through
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
                        labels.append(_Spans())
                        leaders.append(_Spans())
                    if lane:
                        crossed = crossed or labels[lane - 1].hits(m.x - 1, m.x + 1)
                    clash = labels[lane].hits(m.lx - 6, m.rx + 6) or leaders[lane].hits(
                        m.lx - 6, m.rx + 6
                    )
                    if (not clash and not crossed) or lane > len(ms) or lane == MAX_LANES - 1:
                        break
                    lane += 1
                if lane == MAX_LANES - 1 and (clash or crossed) and lane <= len(ms):
                    m.lane, m.label = MAX_LANES - 1, ""
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

    # -- drawing -------------------------------------------------------------------------------

    def render(self) -> str:
        self._slots()
        self._build_markers()
        self._layout()
        self._compute_hatches()
        lanes = self._lanes()
        header, y = self._header()
        nlines = max((it.line for it in self.items), default=-1) + 1
        tops: list[float] = []
        for line in range(nlines):
            tops.append(y)
            y += ADDR_H + MARK_H + BAND_H + 8 + lanes.get(line, 0) * LANE_H + ROW_GAP
        body: list[str] = []
        for it in self.items:
            body += self._item(it, tops[it.line])
        body += self._addresses(tops)
        body += self._hatches(tops)
        for it in self.items:
            body += self._band_text(it, tops[it.line])
        for m in self.markers:
            body += self._marker(m, tops[m.line])
        footer: list[str] = []
        for note in self.notes:
            y += 4
            footer.append(_text(MARGIN, y + 11, note, 11, SANS, fill="#444444", style="italic"))
            y += 14
        height = math.ceil(y + MARGIN)
        title = self._title()
        out = [
            '<svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
            f'role="img" aria-labelledby="efihandoff-title" font-family="{esc(MONO)}">',
            f'<title id="efihandoff-title">{esc(title)}</title>',
            f"<desc>{esc(self._scale_note())}</desc>",
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

    def _scale_note(self) -> str:
        return (
            f"Band width = {num(BAND_UNIT)} px × (log2(pages) + 1): "
            f"4 KiB → {num(band_width(1))} px, 2 MiB → {num(band_width(512))} px, "
            f"1 GiB → {num(band_width(1 << 18))} px. "
            "Dashed boxes are holes between descriptors (size written, not to scale); "
            "a marker's place within its band is proportional to its offset."
        )

    def _header(self) -> tuple[list[str], float]:
        out = [_text(MARGIN, 26, self._title(), 17, SANS, weight="bold")]
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
        lines.append(self._scale_note())
        for text in lines:
            for part in _wrap(text, WIDTH - 2 * MARGIN, 12):
                y += 17
                out.append(_text(MARGIN, y, part, 12, SANS, fill="#222222"))
        y += 10
        legend = self._legend_items()
        x = float(MARGIN)
        y += 4
        for kind, colour, label in legend:
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
                out.append(
                    f'<path class="swatch" d="{_triangle(x + 7, y + 12)}" '
                    f'fill="{colour}" stroke="#000000" stroke-width="0.8"/>'
                )
            out.append(_text(x + 18, y + 11.5, label, 11, MONO))
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
                    items.append(("verdict", VERDICT_COLOURS[v], f"table {v}"))
        else:
            items.append(("verdict", NO_VERDICT_COLOUR, "configuration table"))
        return items

    def _item(self, it: _Item, top: float) -> list[str]:
        y = top + ADDR_H + MARK_H
        if it.kind == "band":
            row = it.row
            tname = str(row.get("type"))
            colour = type_colour(tname)
            attr = row.get("attribute")
            size = int(row["pages"]) << 12
            tip = (
                f"#{it.index} {tname} {it.start:#x}-{it.end - 1:#x} "
                f"({human_size(size)}, {int(row['pages'])} pages)"
                + ("" if attr is None else f" attr {'|'.join(attribute_names(int(attr))) or '0'}")
            )
            out = [
                f'<rect class="band" data-desc="{it.index}" x="{num(it.x)}" y="{num(y)}" '
                f'width="{num(it.w)}" height="{BAND_H}" fill="{colour}" stroke="#000000" '
                f'stroke-width="0.6"><title>{esc(tip)}</title></rect>'
            ]
            return out
        if it.kind == "nomap":
            return [
                f'<rect class="nomap" x="{num(it.x)}" y="{num(y)}" width="{num(it.w)}" '
                f'height="{BAND_H}" fill="#F2F2F2" stroke="#999999" stroke-dasharray="4 3"/>',
                _text(
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
            + _text(
                it.x + it.w / 2, y + BAND_H / 2 + 3, label, 9, MONO, fill="#444444", anchor="middle"
            )
            + "</g>"
        ]

    def _addresses(self, tops: Sequence[float]) -> list[str]:
        out: list[str] = []
        last_end: dict[int, float] = {}
        right = WIDTH - MARGIN
        bands = [it for it in self.items if it.kind == "band"]
        for it in bands:
            top = tops[it.line]
            label = f"{it.start:#x}"
            w = text_width(label, 9)
            if it.x >= last_end.get(it.line, -1e9) + 4 and it.x + w <= right:
                out.append(
                    f'<line x1="{num(it.x)}" y1="{num(top + 6)}" x2="{num(it.x)}" '
                    f'y2="{num(top + ADDR_H + MARK_H)}" stroke="#666666" stroke-width="0.6"/>'
                )
                out.append(_text(it.x + 2, top + 10, label, 9, MONO, fill="#333333", cls="addr"))
                last_end[it.line] = it.x + 2 + w
        if bands:
            last = max(bands, key=lambda b: (b.end, b.index))
            label = f"{last.end:#x}"
            w = text_width(label, 9)
            x = last.x + last.w
            if x - w - 2 >= last_end.get(last.line, -1e9) + 4:
                out.append(
                    _text(
                        x - 2,
                        tops[last.line] + 10,
                        label,
                        9,
                        MONO,
                        fill="#333333",
                        anchor="end",
                        cls="addr",
                    )
                )
        return out

    def _compute_hatches(self) -> None:
        """Per band, the merged parts of it the path reclaims (free memory is not hatched:
        reclaiming it changes nothing worth drawing)."""
        self._hatch_spans: dict[int, list[tuple[int, int]]] = {}
        if not self.reclaimed:
            return
        starts = [s for s, _ in self.reclaimed]
        ends_max = list(_running_max(e for _, e in self.reclaimed))
        for it in self._bands:
            if it.row.get("type") == "EfiConventionalMemory":
                continue
            k = bisect.bisect_left(starts, it.end)
            spans = []
            j = k - 1
            while j >= 0 and ends_max[j] > it.start:
                s, e = self.reclaimed[j]
                if s < it.end and it.start < e:
                    spans.append((max(s, it.start), min(e, it.end)))
                j -= 1
            if spans:
                self._hatch_spans[it.index] = _merge(spans)

    def _hatches(self, tops: Sequence[float]) -> list[str]:
        out = []
        for it in self._bands:
            for s, e in self._hatch_spans.get(it.index, ()):
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

    def _band_text(self, it: _Item, top: float) -> list[str]:
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
        halo = None
        if it.index in self._hatch_spans:
            halo = "#000000" if ink == "#FFFFFF" else "#FFFFFF"
        return [
            _text(
                it.x + it.w / 2,
                y + BAND_H / 2 + 3.5,
                inner,
                10,
                MONO,
                fill=ink,
                anchor="middle",
                halo=halo,
            )
        ]

    def _marker(self, m: _Marker, top: float) -> list[str]:
        band_top = top + ADDR_H + MARK_H
        band_bottom = band_top + BAND_H
        lane_y = band_bottom + 8 + m.lane * LANE_H + 10
        fill = "#FFFFFF" if m.copy else m.colour
        stroke = m.colour if m.copy and m.colour != NO_VERDICT_COLOUR else "#000000"
        cls = "table-copy" if m.copy else "table"
        return [
            f'<g class="{cls}" data-guid="{esc(m.guid)}"><title>{esc(m.title)}</title>'
            f'<line x1="{num(m.x)}" y1="{num(band_top)}" x2="{num(m.x)}" y2="{num(lane_y - 9)}" '
            'stroke="#000000" stroke-width="1"/>'
            f'<path d="{_triangle(m.x, band_top)}" fill="{fill}" stroke="{stroke}" '
            'stroke-width="1"/>'
            + _text(
                m.lx if not m.anchor_end else m.rx,
                lane_y,
                m.label,
                11,
                MONO,
                anchor="end" if m.anchor_end else None,
                cls="table-label",
            )
            + "</g>"
        ]


def _triangle(x: float, tip_y: float) -> str:
    """A downward triangle whose tip is at ``(x, tip_y)``."""
    return (
        f"M{num(x)} {num(tip_y)} L{num(x - 5)} {num(tip_y - MARK_H)} "
        f"L{num(x + 5)} {num(tip_y - MARK_H)} Z"
    )


def _text(
    x: float,
    y: float,
    text: str,
    size: float,
    family: str,
    *,
    fill: str = "#000000",
    anchor: str | None = None,
    weight: str | None = None,
    style: str | None = None,
    cls: str | None = None,
    halo: str | None = None,
) -> str:
    attrs = [f'x="{num(x)}"', f'y="{num(y)}"', f'font-size="{num(size)}"']
    if family != MONO:
        attrs.append(f'font-family="{esc(family)}"')
    if fill != "#000000":
        attrs.append(f'fill="{fill}"')
    if anchor:
        attrs.append(f'text-anchor="{anchor}"')
    if weight:
        attrs.append(f'font-weight="{weight}"')
    if style:
        attrs.append(f'font-style="{style}"')
    if halo:
        attrs.append(f'stroke="{halo}" stroke-width="3" paint-order="stroke"')
    if cls:
        attrs.insert(0, f'class="{cls}"')
    return f"<text {' '.join(attrs)}>{esc(text)}</text>"


def _wrap(text: str, width: float, size: float) -> list[str]:
    """Greedy word wrap by estimated width."""
    limit = max(int(width / (size * CHAR_W)), 10)
    lines: list[str] = []
    cur = ""
    for word in text.split(" "):
        while len(word) > limit:
            if cur:
                lines.append(cur)
                cur = ""
            lines.append(word[:limit])
            word = word[limit:]
        if not cur:
            cur = word
        elif len(cur) + 1 + len(word) <= limit:
            cur += " " + word
        else:
            lines.append(cur)
            cur = word
    if cur or not lines:
        lines.append(cur)
    return lines


def _running_max(values: Iterable[int]) -> Iterable[int]:
    best = -1
    for v in values:
        best = max(best, v)
        yield best


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


__all__ = [
    "BAND_UNIT",
    "TYPE_COLOURS",
    "VERDICT_COLOURS",
    "band_width",
    "esc",
    "human_size",
    "memmap_svg",
    "reclaimed_ranges",
    "short_type",
    "table_name",
    "type_colour",
]
