"""Headless Chromium for render tests, and a small PNG decoder (zlib + struct, no Pillow).

Debian's ``chromium`` package provides ``/usr/bin/chromium``; tests skip without it.
"""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
)
# Chromium logs every console message of the page as "...:INFO:CONSOLE:1] "text", source: ..."
# (older builds: "CONSOLE(1)").
_CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")


def available() -> bool:
    return CHROMIUM.is_file()


@dataclass(frozen=True)
class Run:
    output: bytes  # stdout: the DOM with --dump-dom
    console: list[str]  # console messages the page produced
    stderr: str


def run(url: str, profile: Path, *extra: str, timeout: float = 180) -> Run:
    """One headless Chromium run over ``url`` with a fresh profile directory."""
    proc = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *extra, url],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    console = [m.group(1) for m in map(_CONSOLE.search, stderr.splitlines()) if m]
    return Run(proc.stdout, console, stderr)


def screenshot(html: Path, png: Path, profile: Path, size: tuple[int, int] = (1400, 2000)) -> Run:
    """Render ``html`` to ``png`` at a window of ``size``."""
    return run(
        html.resolve().as_uri(),
        profile,
        f"--screenshot={png}",
        f"--window-size={size[0]},{size[1]}",
    )


def dump_dom(html: Path, profile: Path) -> Run:
    """The DOM after parsing (and running any scripts), as Chromium serialises it."""
    return run(html.resolve().as_uri(), profile, "--dump-dom")


# -- PNG ---------------------------------------------------------------------------------------

_SIG = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # grey, RGB, grey+alpha, RGBA (no palettes needed here)


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]  # unfiltered scanlines, ``channels`` bytes per pixel

    def pixels(self) -> list[tuple[int, ...]]:
        """Every pixel as an RGB tuple (grey expanded, alpha dropped)."""
        out = []
        c = self.channels
        for row in self.rows:
            for i in range(0, len(row), c):
                px = row[i : i + c]
                out.append((px[0], px[0], px[0]) if c <= 2 else tuple(px[:3]))
        return out


def decode_png(data: bytes) -> Image:
    """An 8-bit greyscale/RGB(A) non-interlaced PNG (what Chromium writes)."""
    if not data.startswith(_SIG):
        raise ValueError("not a PNG")
    pos = len(_SIG)
    idat = bytearray()
    header = None
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(kind + body) != crc:
            raise ValueError(f"bad CRC in {kind!r}")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("no IHDR")
    width, height, depth, colour, _comp, _filt, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(
            f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}"
        )
    bpp = _CHANNELS[colour]
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        off = y * (stride + 1)
        ftype = raw[off]
        line = bytearray(raw[off + 1 : off + 1 + stride])
        _unfilter(ftype, line, prev, bpp)
        rows.append(bytes(line))
        prev = line
    return Image(width, height, bpp, rows)


def _unfilter(ftype: int, line: bytearray, prev: bytearray, bpp: int) -> None:
    """PNG spec section 9 filter types 0-4, in place."""
    n = len(line)
    if ftype == 0:
        return
    if ftype == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif ftype == 2:
        for i in range(n):
            line[i] = (line[i] + prev[i]) & 0xFF
    elif ftype == 3:
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif ftype == 4:
        for i in range(n):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + pred) & 0xFF
    else:
        raise ValueError(f"bad filter type {ftype}")


def colour_stats(img: Image) -> tuple[int, int]:
    """(distinct colours, pixels that are not white)."""
    pixels = img.pixels()
    return len(set(pixels)), sum(1 for p in pixels if p != (255, 255, 255))
