"""Version numbers of the modelled projects (Linux, Xen) as tuples: parsing and printing, once."""

from __future__ import annotations

import re

Version = tuple[int, ...]

_PREFIX = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None, width: int) -> Version | None:
    """The numeric version a printed one starts with, padded or cut to ``width`` parts:
    ``(6, 1)`` of ``"6.1.112-1.qubes.fc37.x86_64"`` with width 2; None when it starts with no
    ``major.minor``."""
    if not text:
        return None
    m = _PREFIX.match(text)
    if m is None:
        return None
    parts = tuple(int(x) for x in m.groups() if x is not None)
    return (*parts, 0, 0, 0)[:width]


def version_text(text: str | None) -> str | None:
    """The numeric version at the start of a printed one: ``"6.1.112"`` of
    ``"6.1.112-1.qubes.fc37.x86_64"``; None when there is none."""
    m = _PREFIX.match(text or "")
    return m[0] if m else None


def exact_version(text: str, width: int) -> Version:
    """A version given exactly (``"4.17"``, ``"6.3"``), padded with zeros to ``width`` parts;
    ValueError for anything else (a path parameter, not a printed version)."""
    parts = tuple(int(x) for x in text.split("."))
    if not parts or any(p < 0 for p in parts):
        raise ValueError(text)
    return parts + (0,) * (width - len(parts))


def format_version(version: Version) -> str:
    """``"4.17.1"`` of ``(4, 17, 1)``."""
    return ".".join(str(x) for x in version)
