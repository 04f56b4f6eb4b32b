"""SVG building blocks shared by the memory-map picture and the HTML report: escaping, numbers,
text elements, estimated text widths and sizes as people read them."""

from __future__ import annotations

import re

CHAR_W = 0.6  # advance of a monospace glyph, in em (DejaVu Sans Mono: 0.602)
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


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


def text_width(text: str, size: float) -> float:
    """Estimated width of ``text`` in the monospace font at ``size`` px."""
    return len(text) * size * CHAR_W


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


def luminance(colour: str) -> float:
    """Relative luminance of ``#RRGGBB`` (WCAG 2.1, linearised sRGB)."""

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _gamma_luminance(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ink_on(colour: str) -> str:
    """Black or white, whichever reads better on ``colour``."""
    return "#000000" if _gamma_luminance(colour) > 0.45 else "#FFFFFF"


def text_el(
    x: float,
    y: float,
    text: str,
    size: float,
    family: str = MONO,
    *,
    fill: str = "#000000",
    anchor: str | None = None,
    weight: str | None = None,
    style: str | None = None,
    cls: str | None = None,
    halo: str | None = None,
) -> str:
    """A ``<text>`` element (the picture's default family, MONO, is not repeated)."""
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


def wrap(text: str, width: float, size: float) -> list[str]:
    """Greedy word wrap by estimated width; a word longer than a line is folded."""
    limit = max(int(width / (size * CHAR_W) + 1e-9), 10)  # a text exactly as wide fits
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


__all__ = [
    "CHAR_W",
    "MONO",
    "SANS",
    "esc",
    "human_size",
    "ink_on",
    "luminance",
    "num",
    "text_el",
    "text_width",
    "wrap",
]
