"""The scenario file's schema: every key a scenario may hold, with its type and range,
stated once, and :func:`validate`, which checks a parsed file against it (numbers parsed)
before :mod:`efihandoff.sources.scenario` builds anything. Also the bounds on the file
itself (size, nesting) and the line a key sits on, for errors."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from efihandoff.errors import ParseError
from efihandoff.rules import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryAttribute, parse_type_name
from efihandoff.uefi.systab import NR_TABLES_SANE_MAX

MAX_TABLE_BYTES = 16 << 20  # one table's contents
MAX_REGIONS = 1_000_000
SIZE_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def table_by_name(name: str) -> known_tables.KnownTable | None:
    """A known table by its name, Linux label or macro."""
    for kt in known_tables.REGISTRY.values():
        if name in (kt.name, kt.linux_label, kt.macro):
            return kt
    return None


# -- the schema -----------------------------------------------------------------------------
#
# Every key a scenario may hold, with its type and range, stated once: validate() checks a
# parsed file against it before anything is built, and README.md's key list follows it. A new
# key is one line here (and its use in _Builder).

U8, U16, U32, U64 = (1 << 8) - 1, (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1
MAX_NESTING = 16  # brackets and braces; a scenario needs 3
MAX_SCENARIO_BYTES = 8 << 20  # the file; the largest table (16 MiB) is written with repeat
MAX_TABLES = NR_TABLES_SANE_MAX  # the firmware model installs each table in O(tables)
_MAX_ENTRIES = MAX_TABLE_BYTES // 40  # ESRT entries (40 bytes each) in the largest table
_MAX_PAGES = 1 << 52  # 2^64 bytes


@dataclass(frozen=True, slots=True)
class Key:
    """One key: ``kind`` is int, size, str, ascii, bool, choice, memory_type, attribute, guid,
    hex, revision or tables (an array of tables, each checked against ``keys``); ``lo``/``hi``
    bound the value (for str, hex and tables: the length)."""

    kind: str
    lo: int = 0
    hi: int = U64
    choices: tuple[str, ...] = ()
    keys: Mapping[str, Key] = field(default_factory=dict)
    doc: str = ""


def _u(bits: int, doc: str = "") -> Key:
    return Key("int", 0, (1 << bits) - 1, doc=doc)


_ESRT_ENTRY = {
    "fw_class": Key("guid", doc="required"),
    "fw_type": _u(32),
    "fw_version": _u(32),
    "lowest_supported_fw_version": _u(32),
    "capsule_flags": _u(32),
    "last_attempt_version": _u(32),
    "last_attempt_status": _u(32),
    "repeat": Key("int", 0, _MAX_ENTRIES, doc="this entry this many times"),
}
_MEMATTR_ENTRY = {
    "type": Key("memory_type"),
    "start": Key("int", 0, U64, doc="required"),
    "pages": Key("int", 0, _MAX_PAGES),
    "attribute": Key("attribute"),
}
_TABLE_COMMON = {
    "name": Key("str", 1, 64, doc="a known table's name or Linux label"),
    "guid": Key("guid"),
    "memory_type": Key("memory_type"),
    "address": Key("int", 0, U64),
    "install": Key("bool"),
    "hex": Key("hex", 0, MAX_SCENARIO_BYTES, doc="raw bytes (whitespace ignored)"),
}
# Keys of a table's contents, by the kind _content() builds (ESRT by GUID, others by name).
TABLE_KINDS: Mapping[str, Mapping[str, Key]] = {
    "ESRT": {
        "fw_resource_count": _u(32),
        "fw_resource_count_max": _u(32),
        "fw_resource_version": _u(64),
        "entry": Key("tables", 0, _MAX_ENTRIES, keys=_ESRT_ENTRY),
    },
    "ACPI 2.0": {
        "oem_id": Key("ascii", 0, 6),
        "xsdt_address": _u(64),
        "rsdt_address": _u(32),
        "revision": _u(8),
    },
    "ACPI": {"oem_id": Key("ascii", 0, 6), "rsdt_address": _u(32)},
    "SMBIOS 3.0": {
        "major": _u(8),
        "minor": _u(8),
        "structure_table_max_size": _u(32),
        "structure_table_address": _u(64),
    },
    "SMBIOS": {
        "major": _u(8),
        "minor": _u(8),
        "structure_table_length": _u(16),
        "structure_table_address": _u(32),
        "structures": _u(16),
    },
    "MEMATTR": {
        "version": _u(32),
        "desc_size": Key("int", 40, 4096),
        "entry": Key("tables", 0, MAX_TABLE_BYTES // 40, keys=_MEMATTR_ENTRY),
    },
    "TPMEventLog": {"log_size": Key("int", 0, MAX_TABLE_BYTES - 12), "version": _u(8)},
    "RTPROP": {"runtime_services_supported": _u(32)},
    "": {"size": Key("size", 0, MAX_TABLE_BYTES), "fill": _u(8)},  # any other table
}
# Free room the firmware's pool already holds when the scenario's tables are allocated (edk2
# Pool.c free lists, Page.c memory-type-information bins): a range of a region of that type.
_POOL = {
    "memory_type": Key("memory_type", doc="required"),
    "start": Key("int", 0, U64, doc="required"),
    "end": Key("int", 0, U64, doc="inclusive"),
    "size": Key("size", 0, 1 << 64),
    "pages": Key("int", 0, _MAX_PAGES),
}
MAX_POOLS = 4096
_REGION = {
    "start": Key("int", 0, U64, doc="required, page aligned"),
    "end": Key("int", 0, U64, doc="inclusive"),
    "size": Key("size", 0, 1 << 64),
    "pages": Key("int", 0, _MAX_PAGES),
    "type": Key("memory_type", doc="required"),
    "attribute": Key("attribute"),
}
_TABLE_KEYS = {k: v for kind in TABLE_KINDS.values() for k, v in kind.items()} | _TABLE_COMMON
SCHEMA: Mapping[str, Key] = {
    "name": Key("str", 0, 256),
    "description": Key("str", 0, 4096),
    "firmware_vendor": Key("str", 0, 256),
    "uefi_revision": Key("revision", doc='"2.70" or a number'),
    "desc_size": Key("int", 40, 4096),
    "desc_version": _u(32),
    "memory_fill": Key("choice", choices=("random", "zeros", "unknown")),
    "firmware_build": Key("choice", choices=("debug", "release")),
    "pool": Key("tables", 0, MAX_POOLS, keys=_POOL),
    "seed": _u(64),
    "allocation_limit": _u(64),
    "region": Key("tables", 1, MAX_REGIONS, keys=_REGION),
    "table": Key("tables", 0, MAX_TABLES, keys=_TABLE_KEYS),
}


class Invalid(Exception):
    """A scenario key at fault: ``path`` names it (table, index, key), ``message`` says why."""

    def __init__(self, path: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.path = tuple(path)
        self.message = message

    def where(self) -> str:
        out = ""
        for part in self.path:
            if isinstance(part, str) and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", part):
                part = repr(part[:64])  # a quoted TOML key may hold anything
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "top level"


def validate(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` checked against :data:`SCHEMA`, numbers parsed (sizes, attributes, revisions
    as int); ``Invalid`` names the first key at fault, an unknown key included."""
    if not isinstance(data, Mapping):
        raise Invalid((), "a scenario is a table of keys")
    out = _check_table(data, SCHEMA, ())
    if "region" not in out:
        raise Invalid(("region",), "a scenario needs at least one [[region]]")
    for i, r in enumerate(out["region"]):
        _require(r, ("start", "type"), ("region", i))
        if not {"end", "size", "pages"} & r.keys():
            raise Invalid(("region", i), "needs end, size or pages")
    for i, r in enumerate(out.get("pool", ())):
        _require(r, ("memory_type", "start"), ("pool", i))
        if not {"end", "size", "pages"} & r.keys():
            raise Invalid(("pool", i), "needs end, size or pages")
    for i, t in enumerate(out.get("table", ())):
        if not {"name", "guid"} & t.keys():
            raise Invalid(("table", i), "needs a name or a guid")
        for j, e in enumerate(t.get("entry", ())):
            _require(
                e,
                ("fw_class",) if "fw_resource_count" in _table_keys(t, ()) else ("start",),
                ("table", i, "entry", j),
            )
    return out


def _require(row: Mapping[str, Any], names: Sequence[str], path: tuple[str | int, ...]) -> None:
    for name in names:
        if name not in row:
            raise Invalid(path, f"needs {name}")


def _check_table(
    data: Mapping[str, Any], keys: Mapping[str, Key], path: tuple[str | int, ...]
) -> dict[str, Any]:
    kind = None
    if keys is _TABLE_KEYS:  # a table's content keys depend on its kind
        keys = _table_keys(data, path)
        kind = next((k for k, v in TABLE_KINDS.items() if v.keys() <= keys.keys()), "")
    out: dict[str, Any] = {}
    for name, value in data.items():
        key = keys.get(name)
        if key is None:
            message = _unknown_key(str(name), keys, kind)
            if path and name in SCHEMA:
                message += ": a top-level key, written after a [[...]] header"
            raise Invalid((*path, name), message)
        out[name] = _check(value, key, (*path, name))
    return out


def _unknown_key(name: str, keys: Mapping[str, Key], kind: str | None) -> str:
    """ "unknown key", with the nearest key known there, or the table kinds that have it."""
    near = difflib.get_close_matches(name[:64], list(keys), n=1, cutoff=0.6)
    if near:
        return f"unknown key (did you mean {near[0]}?)"
    if kind is not None:
        owners = [k or "raw" for k, v in TABLE_KINDS.items() if name in v and k != kind]
        if owners:
            what = f"{kind} tables" if kind else "tables of that kind"
            return f"unknown key: not a field of {what} (a field of {', '.join(owners)})"
    return "unknown key"


def _table_keys(data: Mapping[str, Any], path: tuple[str | int, ...]) -> Mapping[str, Key]:
    if "hex" in data:
        return _TABLE_COMMON
    guid = data.get("guid")
    if isinstance(guid, str):
        try:
            if Guid.parse(guid) == ESRT_GUID:
                return {**_TABLE_COMMON, **TABLE_KINDS["ESRT"]}
        except (ParseError, ValueError):
            raise Invalid((*path, "guid"), f"not a GUID: {guid[:60]!r}") from None
    name = data.get("name")
    if isinstance(name, str):
        kt = table_by_name(name)
        if kt is not None and kt.guid == ESRT_GUID and guid is None:
            return {**_TABLE_COMMON, **TABLE_KINDS["ESRT"]}
        if name in TABLE_KINDS and name != "ESRT":
            return {**_TABLE_COMMON, **TABLE_KINDS[name]}
    return {**_TABLE_COMMON, **TABLE_KINDS[""]}


def _check(value: Any, key: Key, path: tuple[str | int, ...]) -> Any:
    kind = key.kind
    if kind == "tables":
        if isinstance(value, Mapping):
            raise Invalid(path, f"an array of tables: write [[{path[-1]}]], not [{path[-1]}]")
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise Invalid(path, "an array of tables ([[...]] sections or [{...}])")
        if not key.lo <= len(value) <= key.hi:
            raise Invalid(path, f"{len(value)} items, expected {key.lo} to {key.hi}")
        return [_check_table(v, key.keys, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, (list, dict)):
        raise Invalid(path, f"expected {_KIND_WORDS[kind]}, got an array or a table")
    if kind == "bool":
        if not isinstance(value, bool):
            raise Invalid(path, "expected true or false")
        return value
    if isinstance(value, bool):
        raise Invalid(path, f"expected {_KIND_WORDS[kind]}, got a boolean")
    if kind in ("str", "ascii", "hex", "choice", "guid"):
        if not isinstance(value, str):
            raise Invalid(path, f"expected {_KIND_WORDS[kind]}, got {type(value).__name__}")
        if kind == "hex":
            value = re.sub(r"\s+", "", value)
        if kind in ("str", "ascii", "hex") and not key.lo <= len(value) <= key.hi:
            raise Invalid(path, f"{len(value)} characters, expected {key.lo} to {key.hi}")
        if kind == "ascii" and not value.isascii():
            raise Invalid(path, "expected ASCII text")
        if kind == "hex" and (len(value) % 2 or re.search(r"[^0-9a-fA-F]", value)):
            raise Invalid(path, "expected an even number of hex digits")
        if kind == "choice" and value not in key.choices:
            raise Invalid(path, f"expected one of {', '.join(key.choices)}, got {value[:60]!r}")
        if kind == "guid":
            try:
                Guid.parse(value)
            except (ParseError, ValueError):
                raise Invalid(path, f"not a GUID: {value[:60]!r}") from None
        return value
    if kind == "memory_type":
        try:
            parse_type_name(_shown(value) if isinstance(value, int) else _text(value, path))
        except (ParseError, ValueError):
            shown = _shown(value) if isinstance(value, int) else str(value)
            raise Invalid(path, f"unknown memory type {shown[:60]!r}") from None
        return value
    if kind == "attribute":
        number = _attribute_value(value, path)
    elif kind == "revision":
        number = _revision_value(value, path)
    elif kind == "size":
        number = _size_value(value, path)
    else:
        number = _int_value(value, path)
    if not key.lo <= number <= key.hi:
        raise Invalid(path, f"{_shown(number)} is out of range ({key.lo} to {key.hi:#x})")
    return number


_KIND_WORDS = {
    "int": "an integer",
    "size": 'a size (bytes, or "64M")',
    "str": "a string",
    "ascii": "an ASCII string",
    "bool": "true or false",
    "choice": "a string",
    "memory_type": "a memory type name or number",
    "attribute": "attribute bits or names",
    "guid": "a GUID string",
    "hex": "a hex string",
    "revision": '"major.minor" or a number',
    "tables": "an array of tables",
}


def _shown(number: int) -> str:
    """A number for a message: decimal when short, else the head of its hex and its width.

    TOML reads hex of any length, and ``str()`` of an int over 4,300 decimal digits raises
    ValueError (CPython's int_max_str_digits), so a message never converts a big one to decimal.
    """
    if -(10**20) < number < 10**20:
        return str(number)
    return f"{f'{number:#x}'[:20]}... ({number.bit_length()} bits)"


def _text(value: Any, path: tuple[str | int, ...]) -> str:
    if not isinstance(value, str):
        raise Invalid(path, f"expected a number or a string, got {type(value).__name__}")
    if len(value) > 200:
        raise Invalid(path, f"{len(value)} characters, too long for a number")
    return value


def _int_value(value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, int):
        return value
    text = _text(value, path).strip()
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise Invalid(path, f"not an integer: {text[:60]!r}") from None


_SIZE_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def _size_value(value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, int):
        return value
    text = _text(value, path).strip()
    m = _SIZE_TEXT.fullmatch(text)
    if m is None:
        return _int_value(text, path)
    return int(Fraction(m[1]) * SIZE_SUFFIX.get(m[2].upper(), 1))


def _attribute_value(value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, int):
        if not 0 <= value <= U64:
            raise Invalid(path, f"{_shown(value)} is out of range (0 to {U64:#x})")
        return value
    attr = 0
    for part in _text(value, path).replace(",", "|").split("|"):
        part = part.strip()
        if not part:
            continue
        if part in MemoryAttribute.__members__:
            attr |= int(MemoryAttribute[part])
            continue
        bits = _int_value(part, path)
        if not 0 <= bits <= U64:
            raise Invalid(path, f"attribute bits {part!r} out of range (0 to {U64:#x})")
        attr |= bits
    return attr


def _revision_value(value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, int):
        if not 0 <= value <= U32:
            raise Invalid(path, f"{_shown(value)} is out of range (0 to {U32:#x})")
        return value
    major, _, minor = _text(value, path).partition(".")
    hi, lo = _int_value(major, path), _int_value(minor or "0", path)
    if not (0 <= hi <= U16 and 0 <= lo <= U16):
        raise Invalid(path, f"revision {value!r} out of range (each part 0 to 65535)")
    return (hi << 16) | lo


def toml_nesting(text: str) -> tuple[int, int | None]:
    """The deepest nesting of arrays and inline tables in TOML ``text`` (outside strings and
    comments), and its line; linear in the text."""
    depth = deepest = 0
    line = 1
    at: int | None = None
    pos = 0
    quote: str | None = None
    for m in _NEST_TOKENS.finditer(text):
        tok = m.group()
        if m.start() < pos:
            continue
        if tok == "\n":
            line += 1
            if quote in ('"', "'"):
                quote = None  # a single-line string cannot span lines (tomllib reports it)
            continue
        if quote is not None:
            if tok == "\\" and quote in ('"', '"""'):
                pos = m.end() + 1  # skip the escaped character
                if text[m.end() : m.end() + 1] == "\n":
                    line += 1
            elif tok == quote:
                quote = None
            line += tok.count("\n")
            continue
        if tok in ('"""', "'''", '"', "'"):
            quote = tok
        elif tok == "#":
            end = text.find("\n", m.end())
            pos = len(text) if end < 0 else end
        elif tok in "[{":
            depth += 1
            if depth > deepest:
                deepest, at = depth, line
                if deepest > MAX_NESTING:
                    break  # enough to refuse it
        elif tok in "]}":
            depth = max(0, depth - 1)
    return deepest, at


_NEST_TOKENS = re.compile(r'"""|\'\'\'|["\'#\[\]{}\n\\]')


def line_of(text: str, path: Sequence[str | int]) -> int | None:
    """The line of ``text`` where the key at ``path`` (e.g. table, 2, entry, 0, fw_version) is
    written, when it is written as a ``key =`` line under [[...]] headers."""
    arrays = [p for p in path if isinstance(p, str)][:-1]
    indexes = [p for p in path if isinstance(p, int)]
    if len(arrays) != len(indexes):
        arrays = [p for p in path if isinstance(p, str)]
        want_key = None
    else:
        want_key = str(path[-1]) if path and isinstance(path[-1], str) else None
    want_section = ".".join(arrays)
    counters: dict[str, int] = {}
    section = ""
    current: list[int] = []
    for n, raw in enumerate(text.split("\n"), start=1):
        s = raw.strip()
        if s.startswith("[["):
            section = s.strip("[] \t")
            counters[section] = counters.get(section, -1) + 1
            for other in counters:
                if other.startswith(section + "."):
                    counters[other] = -1
            current = [
                counters.get(".".join(section.split(".")[: i + 1]), 0)
                for i in range(section.count(".") + 1)
            ]
            if want_key is None and section == want_section and current == indexes:
                return n
            continue
        if s.startswith("["):
            section, current = s.strip("[] \t"), []
            continue
        if (
            want_key is not None
            and section == want_section
            and current == indexes
            and re.match(rf"{re.escape(want_key)}\s*=", s)
        ):
            return n
    return None
