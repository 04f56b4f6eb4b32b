"""Scenario files (TOML): a machine described region by region and table by table.

The builder lays out real bytes through the firmware model (:mod:`efihandoff.edk2`):
the system table and its configuration array in EfiRuntimeServicesData as edk2 does, each table in
the memory type the scenario names (allocated from free memory, top-down below 4 GiB, or placed at a
given address), and a memory map consistent with all of it. The format is documented in README.md.
"""

from __future__ import annotations

import difflib
import re
import struct
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from efihandoff.edk2 import BootServices, OutOfResources
from efihandoff.errors import ParseError, SourceError
from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.rules import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID, Esrt, EsrtEntry
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import (
    PAGE_SHIFT,
    PAGE_SIZE,
    MemoryAttribute,
    MemoryDescriptor,
    MemoryMap,
    MemoryType,
    parse_type_name,
)
from efihandoff.uefi.systab import NR_TABLES_SANE_MAX

_RAM_ATTR = MemoryAttribute.UC | MemoryAttribute.WC | MemoryAttribute.WT | MemoryAttribute.WB
_MAX_TABLE_BYTES = 16 << 20
_MAX_REGIONS = 1_000_000
_SIZE_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def load_scenario(path: str | Path) -> Machine:
    """Read a scenario file and build its Machine."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_SCENARIO_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{p}: cannot read scenario: {exc}") from exc
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ParseError(
            f"not a scenario file: more than {MAX_SCENARIO_BYTES >> 20} MiB",
            offset=MAX_SCENARIO_BYTES,
            what=str(p),
        )
    depth, line = _nesting(text)
    if depth > MAX_NESTING:
        raise ParseError(
            f"not a scenario file: nested {depth} deep (at most {MAX_NESTING})",
            line=line,
            what=str(p),
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise ParseError(f"not a scenario file: {exc}", line=line, what=str(p)) from exc
    except RecursionError:  # defence in depth: _nesting bounds what tomllib recurses on
        raise ParseError("not a scenario file: nested too deep", what=str(p)) from None
    machine = build_machine(data, text=text, what=str(p))
    machine.notes.append(f"scenario {p.name}")
    return machine


def build_machine(
    data: Mapping[str, Any], *, text: str | None = None, what: str = "scenario"
) -> Machine:
    """Build a Machine from a parsed scenario mapping, checked against :data:`SCHEMA` first
    (``text``, the file it came from, lets an error name its line). A key the schema does not
    know is an error naming it, with the nearest known key."""
    try:
        checked = validate(data)
    except _Invalid as exc:
        line = _line_of(text, exc.path) if text is not None else None
        message = f"bad scenario: {exc.where()}: {exc.message}"
        raise ParseError(message, line=line, what=what) from None
    try:
        machine = _Builder(checked).build()
    except (KeyError, TypeError, ValueError, OverflowError, struct.error) as exc:
        raise ParseError(f"bad scenario: {exc}", what=what) from exc
    return machine


# -- the schema -----------------------------------------------------------------------------
#
# Every key a scenario may hold, with its type and range, stated once: validate() checks a
# parsed file against it before anything is built, and README.md's key list follows it. A new
# key is one line here (and its use in _Builder).

U8, U16, U32, U64 = (1 << 8) - 1, (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1
MAX_NESTING = 16  # brackets and braces; a scenario needs 3
MAX_SCENARIO_BYTES = 8 << 20  # the file; the largest table (16 MiB) is written with repeat
MAX_TABLES = NR_TABLES_SANE_MAX  # the firmware model installs each table in O(tables)
_MAX_ENTRIES = _MAX_TABLE_BYTES // 40  # ESRT entries (40 bytes each) in the largest table
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
        "entry": Key("tables", 0, _MAX_TABLE_BYTES // 40, keys=_MEMATTR_ENTRY),
    },
    "TPMEventLog": {"log_size": Key("int", 0, _MAX_TABLE_BYTES - 12), "version": _u(8)},
    "RTPROP": {"runtime_services_supported": _u(32)},
    "": {"size": Key("size", 0, _MAX_TABLE_BYTES), "fill": _u(8)},  # any other table
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
    "region": Key("tables", 1, _MAX_REGIONS, keys=_REGION),
    "table": Key("tables", 0, MAX_TABLES, keys=_TABLE_KEYS),
}


class _Invalid(Exception):
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
    as int); ``_Invalid`` names the first key at fault, an unknown key included."""
    if not isinstance(data, Mapping):
        raise _Invalid((), "a scenario is a table of keys")
    out = _check_table(data, SCHEMA, ())
    if "region" not in out:
        raise _Invalid(("region",), "a scenario needs at least one [[region]]")
    for i, r in enumerate(out["region"]):
        _require(r, ("start", "type"), ("region", i))
        if not {"end", "size", "pages"} & r.keys():
            raise _Invalid(("region", i), "needs end, size or pages")
    for i, r in enumerate(out.get("pool", ())):
        _require(r, ("memory_type", "start"), ("pool", i))
        if not {"end", "size", "pages"} & r.keys():
            raise _Invalid(("pool", i), "needs end, size or pages")
    for i, t in enumerate(out.get("table", ())):
        if not {"name", "guid"} & t.keys():
            raise _Invalid(("table", i), "needs a name or a guid")
        for j, e in enumerate(t.get("entry", ())):
            _require(e, ("fw_class",) if "fw_resource_count" in _table_keys(t, ()) else ("start",),
                     ("table", i, "entry", j))
    return out


def _require(row: Mapping[str, Any], names: Sequence[str], path: tuple[str | int, ...]) -> None:
    for name in names:
        if name not in row:
            raise _Invalid(path, f"needs {name}")


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
            raise _Invalid((*path, name), message)
        out[name] = _check(value, key, (*path, name))
    return out


def _unknown_key(name: str, keys: Mapping[str, Key], kind: str | None) -> str:
    """"unknown key", with the nearest key known there, or the table kinds that have it."""
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
                return _TABLE_COMMON | TABLE_KINDS["ESRT"]
        except (ParseError, ValueError):
            raise _Invalid((*path, "guid"), f"not a GUID: {guid[:60]!r}") from None
    name = data.get("name")
    if isinstance(name, str):
        kt = _by_name(name)
        if kt is not None and kt.guid == ESRT_GUID and guid is None:
            return _TABLE_COMMON | TABLE_KINDS["ESRT"]
        if name in TABLE_KINDS and name != "ESRT":
            return _TABLE_COMMON | TABLE_KINDS[name]
    return _TABLE_COMMON | TABLE_KINDS[""]


def _check(value: Any, key: Key, path: tuple[str | int, ...]) -> Any:
    kind = key.kind
    if kind == "tables":
        if isinstance(value, Mapping):
            raise _Invalid(path, f"an array of tables: write [[{path[-1]}]], not [{path[-1]}]")
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise _Invalid(path, "an array of tables ([[...]] sections or [{...}])")
        if not key.lo <= len(value) <= key.hi:
            raise _Invalid(path, f"{len(value)} items, expected {key.lo} to {key.hi}")
        return [_check_table(v, key.keys, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, (list, dict)):
        raise _Invalid(path, f"expected {_KIND_WORDS[kind]}, got an array or a table")
    if kind == "bool":
        if not isinstance(value, bool):
            raise _Invalid(path, "expected true or false")
        return value
    if isinstance(value, bool):
        raise _Invalid(path, f"expected {_KIND_WORDS[kind]}, got a boolean")
    if kind in ("str", "ascii", "hex", "choice", "guid"):
        if not isinstance(value, str):
            raise _Invalid(path, f"expected {_KIND_WORDS[kind]}, got {type(value).__name__}")
        if kind == "hex":
            value = re.sub(r"\s+", "", value)
        if kind in ("str", "ascii", "hex") and not key.lo <= len(value) <= key.hi:
            raise _Invalid(path, f"{len(value)} characters, expected {key.lo} to {key.hi}")
        if kind == "ascii" and not value.isascii():
            raise _Invalid(path, "expected ASCII text")
        if kind == "hex" and (len(value) % 2 or re.search(r"[^0-9a-fA-F]", value)):
            raise _Invalid(path, "expected an even number of hex digits")
        if kind == "choice" and value not in key.choices:
            raise _Invalid(path, f"expected one of {', '.join(key.choices)}, got {value[:60]!r}")
        if kind == "guid":
            try:
                Guid.parse(value)
            except (ParseError, ValueError):
                raise _Invalid(path, f"not a GUID: {value[:60]!r}") from None
        return value
    if kind == "memory_type":
        try:
            parse_type_name(str(value) if isinstance(value, int) else _text(value, path))
        except (ParseError, ValueError):
            raise _Invalid(path, f"unknown memory type {str(value)[:60]!r}") from None
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
        raise _Invalid(path, f"{number} is out of range ({key.lo} to {key.hi:#x})")
    return number


_KIND_WORDS = {
    "int": "an integer", "size": "a size (bytes, or \"64M\")", "str": "a string",
    "ascii": "an ASCII string", "bool": "true or false", "choice": "a string",
    "memory_type": "a memory type name or number", "attribute": "attribute bits or names",
    "guid": "a GUID string", "hex": "a hex string", "revision": '"major.minor" or a number',
    "tables": "an array of tables",
}


def _text(value: Any, path: tuple[str | int, ...]) -> str:
    if not isinstance(value, str):
        raise _Invalid(path, f"expected a number or a string, got {type(value).__name__}")
    if len(value) > 200:
        raise _Invalid(path, f"{len(value)} characters, too long for a number")
    return value


def _int_value(value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, int):
        return value
    text = _text(value, path).strip()
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise _Invalid(path, f"not an integer: {text[:60]!r}") from None


_SIZE_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def _size_value(value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, int):
        return value
    text = _text(value, path).strip()
    m = _SIZE_TEXT.fullmatch(text)
    if m is None:
        return _int_value(text, path)
    return int(Fraction(m[1]) * _SIZE_SUFFIX.get(m[2].upper(), 1))


def _attribute_value(value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, int):
        if not 0 <= value <= U64:
            raise _Invalid(path, f"{value} is out of range (0 to {U64:#x})")
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
            raise _Invalid(path, f"attribute bits {part!r} out of range (0 to {U64:#x})")
        attr |= bits
    return attr


def _revision_value(value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, int):
        if not 0 <= value <= U32:
            raise _Invalid(path, f"{value} is out of range (0 to {U32:#x})")
        return value
    major, _, minor = _text(value, path).partition(".")
    hi, lo = _int_value(major, path), _int_value(minor or "0", path)
    if not (0 <= hi <= U16 and 0 <= lo <= U16):
        raise _Invalid(path, f"revision {value!r} out of range (each part 0 to 65535)")
    return (hi << 16) | lo


def _nesting(text: str) -> tuple[int, int | None]:
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


def _line_of(text: str, path: Sequence[str | int]) -> int | None:
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
            current = [counters.get(".".join(section.split(".")[: i + 1]), 0)
                       for i in range(section.count(".") + 1)]
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


class _Builder:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def build(self) -> Machine:
        d = self.data
        fill = Fill(d.get("memory_fill", "random"))
        memory = PhysicalMemory(background=fill, seed=int(d.get("seed", 0)))
        regions = self._regions(d.get("region", []))
        vendor = str(d.get("firmware_vendor", "EDK II"))
        # edk2 BaseTools/Conf/target.template: TARGET = DEBUG, what edk2 (OVMF among them) builds
        # unless told otherwise; other vendors ship release builds.
        build = d.get("firmware_build", "debug" if vendor == "EDK II" else "release")
        bs = BootServices(regions, memory, debug_clear=build == "debug")
        if "allocation_limit" in d:
            bs.allocation_limit = _int(d["allocation_limit"])
        bs.create_system_table(vendor=vendor, revision=_revision(d.get("uefi_revision", "2.70")))
        pools = d.get("pool", [])
        if pools:
            # The DXE core's own configuration array exists long before; the declared room
            # is what is left when the scenario's tables are allocated.
            bs.reserve_config_array()
        for i in range(len(pools) - 1, -1, -1):  # the first declared is taken first (LIFO)
            self._pool(bs, pools[i], i)
        for i, t in enumerate(d.get("table", [])):
            self._table(bs, t, i)
        mm = bs.get_memory_map()
        desc_size = _int(d.get("desc_size", mm.desc_size))
        machine = bs.machine(
            Machine(
                name=str(d.get("name", "scenario")),
                description=str(d.get("description", "")),
                firmware_vendor=str(d.get("firmware_vendor", "EDK II")),
            )
        )
        machine.memory_map = MemoryMap(
            mm.descriptors, desc_size, _int(d.get("desc_version", 1))
        )
        return machine

    # -- regions ----------------------------------------------------------------------------

    def _regions(self, rows: list[Mapping[str, Any]]) -> list[MemoryDescriptor]:
        if not rows:
            raise ValueError("a scenario needs at least one [[region]]")
        if len(rows) > _MAX_REGIONS:
            raise ValueError(f"more than {_MAX_REGIONS} regions")
        out = []
        for i, r in enumerate(rows):
            start = _int(r["start"])
            if "pages" in r:
                pages = _int(r["pages"])
            elif "size" in r:
                pages = -(-_size(r["size"]) // PAGE_SIZE)
            else:
                pages = (_int(r["end"]) + 1 - start) >> PAGE_SHIFT
            mtype = int(parse_type_name(str(r["type"])))
            attr = _attribute(r.get("attribute"), mtype)
            if start & (PAGE_SIZE - 1):
                raise ValueError(f"region {i} start {start:#x} is not page aligned")
            if pages <= 0 or start + (pages << PAGE_SHIFT) > 1 << 64:
                raise ValueError(f"region {i}: {pages} pages from {start:#x}: no range below 2^64")
            out.append(MemoryDescriptor(mtype, start, pages, attr))
        out.sort(key=lambda m: m.phys_addr)
        return out

    def _pool(self, bs: BootServices, p: Mapping[str, Any], index: int) -> None:
        start = _int(p["start"])
        if "pages" in p:
            end = start + (_int(p["pages"]) << PAGE_SHIFT)
        elif "size" in p:
            end = start + _size(p["size"])
        else:
            end = _int(p["end"]) + 1
        mtype = int(parse_type_name(str(p["memory_type"])))
        if end <= start or end > 1 << 64:
            raise ValueError(f"pool {index}: no range from {start:#x} to {end:#x}")
        try:
            bs.declare_pool(mtype, start, end)
        except OutOfResources as exc:
            raise ValueError(f"pool {index}: {exc}") from None

    # -- tables -----------------------------------------------------------------------------

    def _table(self, bs: BootServices, t: Mapping[str, Any], index: int) -> None:
        name = t.get("name")
        if "guid" in t:
            guid = Guid.parse(str(t["guid"]))
        elif name is not None:
            kt = _by_name(str(name))
            if kt is None:
                raise ValueError(f"table {index}: unknown table name {name!r}; give a guid")
            guid = kt.guid
        else:
            raise ValueError(f"table {index}: needs a name or a guid")
        content = _content(guid, t)
        if len(content) > _MAX_TABLE_BYTES:
            raise ValueError(f"table {index}: more than {_MAX_TABLE_BYTES} bytes")
        mtype = parse_type_name(str(t.get("memory_type", "EfiBootServicesData")))
        if "address" in t:
            addr = _int(t["address"])
            d = next((x for x in bs.descriptors if x.contains(addr)), None)
            if d is None:
                raise ValueError(f"table {index}: address {addr:#x} is in no region")
            if "memory_type" in t and d.type != mtype:
                raise ValueError(
                    f"table {index}: address {addr:#x} is in {d.type_name}, "
                    f"not {MemoryType(mtype).name}"
                )
            if addr + len(content) > 1 << 64:
                raise ValueError(f"table {index}: {len(content)} bytes at {addr:#x} pass 2^64")
        else:
            addr = bs.allocate_pool(mtype, max(len(content), 1))
        bs.memory.write(addr, content)
        if t.get("install", True):
            bs.install_configuration_table(guid, addr)


def _by_name(name: str) -> known_tables.KnownTable | None:
    for kt in known_tables.REGISTRY.values():
        if name in (kt.name, kt.linux_label, kt.macro):
            return kt
    return None


def _content(guid: Guid, t: Mapping[str, Any]) -> bytes:
    if "hex" in t:
        return bytes.fromhex(str(t["hex"]).replace(" ", "").replace("\n", ""))
    if guid == ESRT_GUID:
        return _esrt(t).build()
    kind = str(t.get("name", ""))
    builder = _BUILDERS.get(kind)
    if builder is not None:
        return builder(t)
    size = _size(t.get("size", 64))
    pattern = _int(t.get("fill", 0x5A)) & 0xFF
    return bytes([pattern]) * size


def _esrt(t: Mapping[str, Any]) -> Esrt:
    entries: list[EsrtEntry] = []
    for e in t.get("entry", []):
        entry = EsrtEntry(
            fw_class=Guid.parse(str(e["fw_class"])),
            fw_type=_int(e.get("fw_type", 1)),
            fw_version=_int(e.get("fw_version", 0)),
            lowest_supported_fw_version=_int(e.get("lowest_supported_fw_version", 0)),
            capsule_flags=_int(e.get("capsule_flags", 0)),
            last_attempt_version=_int(e.get("last_attempt_version", 0)),
            last_attempt_status=_int(e.get("last_attempt_status", 0)),
        )
        repeat = _int(e.get("repeat", 1))  # the same entry this many times
        if not 0 <= repeat <= _MAX_TABLE_BYTES // 40 - len(entries):
            raise ValueError(f"entry repeat {repeat} out of range")
        entries += [entry] * repeat
    count = _int(t.get("fw_resource_count", len(entries)))
    entries_t = tuple(entries)
    return Esrt(
        fw_resource_count=count,
        fw_resource_count_max=_int(t.get("fw_resource_count_max", max(count, len(entries)))),
        fw_resource_version=_int(t.get("fw_resource_version", 1)),
        entries=entries_t,
    )


def _rsdp(t: Mapping[str, Any]) -> bytes:
    """ACPI 6.5 section 5.2.5.3: 20-byte v1 part with its checksum, then Length, XsdtAddress,
    extended checksum (36 bytes for revision 2)."""
    oem = str(t.get("oem_id", "EFIHOF")).encode("ascii")[:6].ljust(6, b" ")
    rsdt = _int(t.get("rsdt_address", 0))
    xsdt = _int(t.get("xsdt_address", 0))
    revision = _int(t.get("revision", 2))
    v1 = bytearray(struct.pack("<8sB6sBI", b"RSD PTR ", 0, oem, revision, rsdt))
    v1[8] = (-sum(v1)) & 0xFF
    if revision == 0:
        return bytes(v1)
    ext = bytearray(v1 + struct.pack("<IQB3s", 36, xsdt, 0, b"\0\0\0"))
    ext[32] = (-sum(ext)) & 0xFF
    return bytes(ext)


def _smbios3(t: Mapping[str, Any]) -> bytes:
    """SMBIOS 3.x entry point (DSP0134 section 5.2.2): "_SM3_", checksum, length 0x18."""
    ep = bytearray(
        struct.pack(
            "<5sBBBBBBBIQ",
            b"_SM3_",
            0,
            0x18,
            _int(t.get("major", 3)),
            _int(t.get("minor", 6)),
            0,
            1,
            0,
            _int(t.get("structure_table_max_size", 0x1000)),
            _int(t.get("structure_table_address", 0)),
        )
    )
    ep[5] = (-sum(ep)) & 0xFF
    return bytes(ep)


def _smbios(t: Mapping[str, Any]) -> bytes:
    """SMBIOS 2.x entry point (DSP0134 section 5.2.1): "_SM_", length 0x1f, "_DMI_" part."""
    ep = bytearray(
        struct.pack(
            "<4sBBBBHB5s5sBHIHB",
            b"_SM_",
            0,
            0x1F,
            _int(t.get("major", 2)),
            _int(t.get("minor", 8)),
            0x100,
            0,
            b"\0" * 5,
            b"_DMI_",
            0,
            _int(t.get("structure_table_length", 0x400)),
            _int(t.get("structure_table_address", 0)),
            _int(t.get("structures", 20)),
            0x28,
        )
    )
    ep[0x15] = (-sum(ep[0x10:])) & 0xFF
    ep[4] = (-sum(ep)) & 0xFF
    return bytes(ep)


def _memattr(t: Mapping[str, Any]) -> bytes:
    """EFI_MEMORY_ATTRIBUTES_TABLE (UEFI 2.10 section 4.6.4): {Version, NumberOfEntries,
    DescriptorSize, Flags} then descriptors of runtime code/data with XP/RO."""
    desc_size = _int(t.get("desc_size", 48))
    entries = t.get("entry", [])
    if 16 + len(entries) * desc_size > _MAX_TABLE_BYTES:
        raise ValueError(f"MEMATTR: {len(entries)} entries of {desc_size} bytes pass 16 MiB")
    body = b"".join(
        MemoryDescriptor(
            parse_type_name(str(e.get("type", "EfiRuntimeServicesCode"))),
            _int(e["start"]),
            _int(e.get("pages", 1)),
            _attribute(e.get("attribute", "RUNTIME|RO"), 0),
        ).pack(desc_size)
        for e in entries
    )
    return struct.pack("<IIII", _int(t.get("version", 2)), len(entries), desc_size, 0) + body


def _tpm_event_log(t: Mapping[str, Any]) -> bytes:
    """Linux struct linux_efi_tpm_eventlog {u32 size; u32 final_events_preboot_size; u8 version;
    log[]} as the EFI stub installs it (drivers/firmware/efi/libstub/tpm.c)."""
    size = _int(t.get("log_size", 512))
    return struct.pack("<IIB", size, 0, _int(t.get("version", 2))) + bytes([0x5A]) * size


def _rt_properties(t: Mapping[str, Any]) -> bytes:
    """EFI_RT_PROPERTIES_TABLE (UEFI 2.8): {u16 Version=1, u16 Length=8, u32 supported}."""
    return struct.pack("<HHI", 1, 8, _int(t.get("runtime_services_supported", 0x3FFF)))


_BUILDERS = {
    "ACPI 2.0": _rsdp,
    "ACPI": lambda t: _rsdp({**t, "revision": 0}),
    "SMBIOS": _smbios,
    "SMBIOS 3.0": _smbios3,
    "MEMATTR": _memattr,
    "TPMEventLog": _tpm_event_log,
    "RTPROP": _rt_properties,
}


def _attribute(value: Any, mtype: int) -> int:
    if value is None:
        if mtype in (MemoryType.EfiMemoryMappedIO, MemoryType.EfiMemoryMappedIOPortSpace):
            return int(MemoryAttribute.UC | MemoryAttribute.RUNTIME)
        attr = int(_RAM_ATTR)
        if mtype in (MemoryType.EfiRuntimeServicesCode, MemoryType.EfiRuntimeServicesData):
            attr |= int(MemoryAttribute.RUNTIME)
        return attr
    if isinstance(value, int):
        return value
    attr = 0
    for part in str(value).replace(",", "|").split("|"):
        part = part.strip()
        if not part:
            continue
        if part in MemoryAttribute.__members__:
            attr |= int(MemoryAttribute[part])
        else:
            attr |= int(part, 0)
    return int(attr)


def _revision(value: Any) -> int:
    if isinstance(value, int):
        return value
    major, _, minor = str(value).partition(".")
    return (int(major) << 16) | int(minor or 0)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    return int(str(value).replace("_", ""), 0)


def _size(value: Any) -> int:
    if isinstance(value, int):
        return value
    text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in _SIZE_SUFFIX:
        return int(float(text[:-1]) * _SIZE_SUFFIX[text[-1]])
    return _int(text)
