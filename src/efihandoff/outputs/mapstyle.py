"""How the memory-map picture tells things apart: a colour per memory type, and per verdict a
colour and a marker shape (so no verdict is told by colour alone), with the names shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from efihandoff.outputs.svgtext import num
from efihandoff.uefi.memmap import LINUX_TYPE_NAMES, MemoryType

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

# Paul Tol's "bright" scheme: seven colours for seven verdicts. Red (corrupt) and purple
# (clobbered) are the pair a red-green deficiency brings closest, so each verdict has a shape
# of its own too, and the verdict word is written in every label.
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

VERDICT_SHAPES: dict[str, str] = {
    "intact": "triangle",
    "relocated": "diamond",
    "corrupt": "hourglass",
    "refused": "square",
    "clobbered": "circle",
    "absent": "up-triangle",
    "unknown": "plus",
}
NO_VERDICT_SHAPE = "triangle"
MARK_H = 9  # a marker's height; its width is 10


def verdict_style(verdict: str | None) -> tuple[str, str]:
    """The colour and shape of a marker for ``verdict`` (None: no path chosen or not judged)."""
    if verdict is None:
        return NO_VERDICT_COLOUR, NO_VERDICT_SHAPE
    return (
        VERDICT_COLOURS.get(verdict, NO_VERDICT_COLOUR),
        VERDICT_SHAPES.get(verdict, NO_VERDICT_SHAPE),
    )


def marker_path(shape: str, x: float, tip_y: float) -> str:
    """SVG path data of a marker ``shape`` whose bottom centre is ``(x, tip_y)``; every shape
    fits the box ``x ± 5`` by ``MARK_H`` above ``tip_y``."""
    top, mid = tip_y - MARK_H, tip_y - MARK_H / 2
    if shape == "diamond":
        pts = [(x, tip_y), (x - 5, mid), (x, top), (x + 5, mid)]
    elif shape == "hourglass":
        pts = [(x - 5, top), (x + 5, top), (x - 5, tip_y), (x + 5, tip_y)]
    elif shape == "square":
        pts = [(x - 4.5, top), (x + 4.5, top), (x + 4.5, tip_y), (x - 4.5, tip_y)]
    elif shape == "up-triangle":
        pts = [(x, top), (x + 5, tip_y), (x - 5, tip_y)]
    elif shape == "plus":
        a, b = 1.5, 4.5
        pts = [
            (x - a, top), (x + a, top), (x + a, mid - a), (x + b, mid - a), (x + b, mid + a),
            (x + a, mid + a), (x + a, tip_y), (x - a, tip_y), (x - a, mid + a), (x - b, mid + a),
            (x - b, mid - a), (x - a, mid - a),
        ]  # fmt: skip
    elif shape == "circle":
        r = MARK_H / 2
        return (
            f"M{num(x - r)} {num(mid)} a{num(r)} {num(r)} 0 1 0 {num(2 * r)} 0 "
            f"a{num(r)} {num(r)} 0 1 0 {num(-2 * r)} 0 Z"
        )
    else:  # triangle pointing down at the address
        pts = [(x, tip_y), (x - 5, top), (x + 5, top)]
    head, *rest = pts
    return f"M{num(head[0])} {num(head[1])} " + " ".join(
        f"L{num(px)} {num(py)}" for px, py in rest
    ) + " Z"


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


def type_colour(name: str) -> str:
    """Fill colour of a memory type's band."""
    return TYPE_COLOURS.get(name, OTHER_TYPE_COLOUR)


def short_type(name: str) -> str:
    """A short name for a memory type (Linux's print name where there is one)."""
    value = type_value(name)
    if value is not None and value in MemoryType._value2member_map_:
        return LINUX_TYPE_NAMES[MemoryType(value)]
    return name


def table_name(t: Mapping[str, Any]) -> str:
    """A table's name, or the first group of its GUID when it has none."""
    guid = str(t.get("guid", ""))
    name = t.get("name")
    return str(name) if name and name != guid else guid[:8] + "…"


__all__ = [
    "MARK_H",
    "NO_VERDICT_COLOUR",
    "OTHER_TYPE_COLOUR",
    "TYPE_COLOURS",
    "VERDICT_COLOURS",
    "VERDICT_SHAPES",
    "marker_path",
    "short_type",
    "table_name",
    "type_colour",
    "type_value",
    "verdict_style",
]
