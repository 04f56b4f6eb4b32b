"""Scenario files (TOML): a machine described region by region and table by table.

The builder lays out real bytes through the firmware model (:mod:`efihandoff.edk2`):
the system table and its configuration array in EfiRuntimeServicesData as edk2 does, each table in
the memory type the scenario names (allocated from free memory, top-down below 4 GiB, or placed at a
given address), and a memory map consistent with all of it. The format is documented in README.md.
"""

from __future__ import annotations

import struct
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from efihandoff.edk2 import BootServices, OutOfResources
from efihandoff.errors import ParseError, SourceError
from efihandoff.machine import RAM_ATTRIBUTES, Fill, Machine, PhysicalMemory
from efihandoff.sources.scenario_schema import (
    MAX_NESTING,
    MAX_POOLS,
    MAX_REGIONS,
    MAX_SCENARIO_BYTES,
    MAX_TABLE_BYTES,
    MAX_TABLES,
    SCHEMA,
    SIZE_SUFFIX,
    TABLE_KINDS,
    U8,
    U16,
    U32,
    U64,
    Invalid,
    Key,
    line_of,
    table_by_name,
    toml_nesting,
    validate,
)
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
    depth, line = toml_nesting(text)
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
    except RecursionError:  # defence in depth: toml_nesting bounds what tomllib recurses on
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
    except Invalid as exc:
        line = line_of(text, exc.path) if text is not None else None
        message = f"bad scenario: {exc.where()}: {exc.message}"
        raise ParseError(message, line=line, what=what) from None
    try:
        machine = _Builder(checked).build()
    except (KeyError, TypeError, ValueError, OverflowError, struct.error) as exc:
        raise ParseError(f"bad scenario: {exc}", what=what) from exc
    return machine


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
        machine.memory_map = MemoryMap(mm.descriptors, desc_size, _int(d.get("desc_version", 1)))
        return machine

    # -- regions ----------------------------------------------------------------------------

    def _regions(self, rows: list[Mapping[str, Any]]) -> list[MemoryDescriptor]:
        if not rows:
            raise ValueError("a scenario needs at least one [[region]]")
        if len(rows) > MAX_REGIONS:
            raise ValueError(f"more than {MAX_REGIONS} regions")
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
            kt = table_by_name(str(name))
            if kt is None:
                raise ValueError(f"table {index}: unknown table name {name!r}; give a guid")
            guid = kt.guid
        else:
            raise ValueError(f"table {index}: needs a name or a guid")
        content = _content(guid, t)
        if len(content) > MAX_TABLE_BYTES:
            raise ValueError(f"table {index}: more than {MAX_TABLE_BYTES} bytes")
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
        if not 0 <= repeat <= MAX_TABLE_BYTES // 40 - len(entries):
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
    if 16 + len(entries) * desc_size > MAX_TABLE_BYTES:
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
        attr = RAM_ATTRIBUTES
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
    if text and text[-1] in SIZE_SUFFIX:
        return int(float(text[:-1]) * SIZE_SUFFIX[text[-1]])
    return _int(text)


__all__ = [  # the schema lives in scenario_schema; its names stay importable from here
    "MAX_NESTING",
    "MAX_POOLS",
    "MAX_SCENARIO_BYTES",
    "MAX_TABLES",
    "SCHEMA",
    "TABLE_KINDS",
    "U8",
    "U16",
    "U32",
    "U64",
    "Key",
    "build_machine",
    "load_scenario",
    "validate",
]
