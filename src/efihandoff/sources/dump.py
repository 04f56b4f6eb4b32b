"""Memory dumps: raw images (physical address = file offset) and ELF cores with PT_LOAD segments.

An ELF core (QEMU ``dump-guest-memory`` without paging, ``/proc/vmcore``, kdump) maps physical
addresses to file offsets through its PT_LOAD program headers: ``p_paddr`` is the physical
address, ``p_offset`` the file offset, ``p_filesz`` the bytes present and ``p_memsz`` the bytes
described (the rest reads as zeros, as the ELF specification says). Sources: System V ABI (gABI)
"Program Header" and "Sections" (``PN_XNUM``: the real count in section header 0's ``sh_info``);
QEMU dump/dump.c ``write_elf64_load`` (``p_paddr`` = guest physical, ``p_offset`` after the
notes).

The dump is read on demand and never copied whole, nor mapped (a mapped file that shrinks kills
the reader with SIGBUS; read, it raises ParseError): finding the system table is one pass over
the file's data in blocks (:mod:`efihandoff.sources.dumpscan`), and memory use does not grow
with the dump. Segments and reads through them are :mod:`efihandoff.sources.dumpmemory`,
ELF program headers :mod:`efihandoff.sources.elfcore`.

After a native Linux boot, SetVirtualAddressMap has converted the system table's
``ConfigurationTable``, ``FirmwareVendor`` and ``RuntimeServices`` pointers to virtual addresses
(edk2 MdeModulePkg/Core/RuntimeDxe/Runtime.c ``RuntimeDriverSetVirtualAddressMap``: "UEFI don't
require System Configuration Tables Conversion", so the table pointers *in* the array stay
physical). Such a pointer is translated through a runtime map with virtual addresses (a sysfs
``efi/runtime-map``) when one is given; otherwise the array is looked for by content (a page-offset
match, see :func:`_find_config_array_by_content`) and the result is marked as a heuristic.
Under Xen the pointers stay physical (Xen does not call SetVirtualAddressMap for dom0).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from efihandoff.errors import ParseError, SourceError
from efihandoff.intervals import merge
from efihandoff.machine import Machine, PhysicalMemory
from efihandoff.sources.dumpmemory import DumpFile, DumpMemory, DumpSegment
from efihandoff.sources.dumpscan import (
    SCAN_WORK,
    file_ranges_by_delta,
    find_all,
    places_of,
    scan,
)
from efihandoff.sources.elfcore import ELF_MAGIC, elf_segments, looks_like_elf_core
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID, ESRT_HEADER_SIZE, PARSE_MAX_ENTRIES, Esrt
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import PAGE_SIZE, MemoryDescriptor, MemoryMap
from efihandoff.uefi.systab import (
    NR_TABLES_SANE_MAX,
    ConfigurationTable,
    SystemTable,
    config_table_size,
    parse_config_tables,
    read_ucs2,
)

MAX_CONTENT_HITS = 4096  # GUID hits examined by the content heuristic
VENDOR_MAX_CHARS = 256

# GUIDs nearly every firmware installs; the content heuristic searches their bytes.
_ANCHOR_GUIDS = tuple(
    Guid.parse(g)
    for g in (
        "8868e871-e4f1-11d3-bc22-0080c73c8881",  # ACPI 2.0
        "f2fd1544-9794-4a2c-992e-e5bbcf20e394",  # SMBIOS 3.0
        "eb9d2d31-2d88-11d3-9a16-0090273fc14d",  # SMBIOS
    )
)



# --------------------------------------------------------------------------------------------
# Result model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DumpTable:
    """One configuration-table entry as found in the dump."""

    guid: Guid
    pointer: int  # as stored in the array
    address: int | None  # physical; None when the pointer could not be translated
    translation: str  # "identity", "runtime map", or why not
    size: int | None
    size_reason: str

    @property
    def name(self) -> str | None:
        """The registry's short name for the GUID."""
        kt = known_tables.known(self.guid)
        return kt.name if kt else None


@dataclass(frozen=True, slots=True)
class SystemTableCandidate:
    """A system table whose signature, HeaderSize, revision and CRC32 check out."""

    address: int
    bits: int
    table: SystemTable
    config_address: int | None
    config_translation: str
    config_readable: bool
    known_guids: int

    @property
    def score(self) -> tuple[int, int, int]:
        """Higher is better: config array readable, known GUIDs, 64-bit layout."""
        return (int(self.config_readable), self.known_guids, int(self.bits == 64))


EFI_LOADER_SIGNATURE_64 = b"EL64"  # arch/x86/include/asm/efi.h EFI64_LOADER_SIGNATURE
_EFI_INFO = struct.Struct("<4sIIIIIII")
MAX_BOOT_MEMMAP = 16 << 20


@dataclass(frozen=True)
class DumpEvidence:
    """What a memory dump tells: its segments, the system table, config tables and ESRT."""

    path: str
    format: str  # "raw", "elf64" or "elf32"
    size: int
    segments: tuple[DumpSegment, ...]
    candidates: tuple[SystemTableCandidate, ...]
    system_table_address: int | None
    system_table: SystemTable | None
    config_table_address: int | None
    config_tables: tuple[DumpTable, ...] | None
    esrt_address: int | None
    esrt: Esrt | None
    firmware_vendor: str | None
    problems: tuple[str, ...]
    memory: DumpMemory = field(repr=False, compare=False)

    def close(self) -> None:
        """Close the dump (Machines built from it then read nothing)."""
        self.memory.close()

    def __enter__(self) -> DumpEvidence:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def boot_memory_map(self) -> tuple[MemoryMap, int] | None:
        """The EFI memory map an x86 Linux EFI stub handed its kernel, found through the
        ``efi_info`` of ``struct boot_params`` (arch/x86/include/uapi/asm/bootparam.h: at 0x1c0,
        {efi_loader_signature "EL64", efi_systab, efi_memdesc_size, efi_memdesc_version,
        efi_memmap, efi_memmap_size, efi_systab_hi, efi_memmap_hi}) whose efi_systab names the
        system table found; (map, address of efi_info): the first in file order (in a raw dump
        the lowest address; a file byte several segments map gives its lowest address).

        One more pass over the dump's data, byte by byte (boot_params is ``__packed``: its copy
        in the kernel's .bss, arch/x86/kernel/setup.c, has no alignment C guarantees), each file
        byte once, holes skipped and memory bounded."""
        addr = self.system_table_address
        file = self.memory.file
        if addr is None or file is None:
            return None
        needle = EFI_LOADER_SIGNATURE_64 + (addr & 0xFFFFFFFF).to_bytes(4, "little")
        merged = file_ranges_by_delta(self.memory)
        spans = merge([span for g in merged.values() for span in g], keep_empty=True)
        work = 0
        for a, b in spans:
            for pos in find_all(file, file.fd, needle, a, b):
                places = places_of(merged, pos)
                work += len(merged)
                if work > SCAN_WORK:
                    return None  # segments alias too much
                found = self._efi_info_map(file, pos, addr) if places else None
                if found is not None:
                    return found, min(places)
        return None

    def _efi_info_map(self, file: DumpFile, pos: int, systab: int) -> MemoryMap | None:
        info = file[pos : pos + _EFI_INFO.size]
        if len(info) < _EFI_INFO.size or info[:4] != EFI_LOADER_SIGNATURE_64:
            return None
        _sig, st_lo, desc_size, version, map_lo, map_size, st_hi, map_hi = _EFI_INFO.unpack(info)
        if (st_hi << 32 | st_lo) != systab or not 40 <= desc_size <= 4096 or version != 1:
            return None
        if map_size == 0 or map_size % desc_size or map_size > MAX_BOOT_MEMMAP:
            return None
        raw = self.memory.read(map_hi << 32 | map_lo, map_size)
        if raw is None:
            return None
        try:
            return MemoryMap.parse(raw, desc_size, version)
        except ParseError:
            return None

    def to_machine(self, memory_map: MemoryMap | None = None) -> Machine:
        """A Machine reading its bytes from the dump. A dump holds no memory map: pass one (from
        a log or a sysfs copy of the same boot) or get ``memory_map`` None."""
        notes = [f"{self.format} dump {self.path}"]
        evidence: dict[int, str] = {}
        tables = None
        if self.config_tables is not None:
            tables = []
            for t in self.config_tables:
                if t.address is None:
                    evidence[t.pointer] = f"pointer {t.pointer:#x} not translated: {t.translation}"
                    notes.append(f"table {t.guid}: pointer {t.pointer:#x} {t.translation}")
                tables.append(
                    ConfigurationTable(t.guid, t.address if t.address is not None else t.pointer)
                )
        if self.system_table_address is None:
            notes.append("no EFI system table found in the dump")
        notes.extend(f"problem: {p}" for p in self.problems)
        return Machine(
            memory_map=memory_map,
            system_table_address=self.system_table_address,
            system_table=self.system_table,
            config_table_address=self.config_table_address,
            config_tables=tuple(tables) if tables is not None else None,
            memory=self.memory,
            firmware_vendor=self.firmware_vendor,
            name=Path(self.path).stem or "dump",
            description=f"{self.format} memory dump",
            memory_type_evidence=evidence,
            notes=notes,
        )



# --------------------------------------------------------------------------------------------
# Finding the system table and the config tables
# --------------------------------------------------------------------------------------------


class _Translator:
    """Physical address for a pointer found in firmware tables."""

    def __init__(self, memory: DumpMemory, runtime_map: Sequence[MemoryDescriptor] | None) -> None:
        self.memory = memory
        self.runtime_map = [d for d in runtime_map or () if d.num_pages and d.virt_addr]

    def __call__(self, ptr: int, length: int) -> tuple[int | None, str]:
        if self.memory.contains(ptr, max(length, 1)):
            return ptr, "identity"
        for d in self.runtime_map:
            if d.virt_addr <= ptr < d.virt_addr + d.size:
                phys = d.phys_addr + (ptr - d.virt_addr)
                if self.memory.contains(phys, max(length, 1)):
                    return phys, "runtime map"
                return None, f"runtime map gives {phys:#x}, which the dump does not hold"
        if self.runtime_map:
            return None, "not in the dump nor in the runtime map"
        return None, "not in the dump (a virtual address? no runtime map given)"


def _candidate(
    memory: DumpMemory, translate: _Translator, addr: int, bits: int
) -> SystemTableCandidate | None:
    raw = memory.read(addr, SystemTable.layout_size(bits))
    if raw is None:
        return None
    try:
        st = SystemTable.parse(raw, 0, bits)
    except ParseError:
        return None
    count = min(st.linux_nr_tables, NR_TABLES_SANE_MAX)
    length = count * config_table_size(bits)
    cfg, how = translate(st.tables, length) if st.tables else (None, "NULL pointer")
    readable = False
    known = 0
    if cfg is not None:
        data = memory.read(cfg, length)
        if data is not None:
            readable = True
            for t in parse_config_tables(data, count, bits=bits):
                known += known_tables.known(t.guid) is not None
    return SystemTableCandidate(addr, bits, st, cfg, how, readable, known)


def _find_config_array_by_content(
    memory: DumpMemory, pointer: int, count: int, bits: int
) -> int | None:
    """Where the config array whose (virtual) address is ``pointer`` sits, found by content.

    Linux maps each EFI runtime region page by page (arch/x86/platform/efi/efi_64.c
    ``efi_map_region``), so the virtual and physical addresses share their offset in the page.
    Search the bytes of common GUIDs; an array start at that page offset whose entries hold at
    least two known GUIDs (one if the array has a single entry) is a match. None unless exactly
    one start matches best.
    """
    file = memory.file
    if file is None or count <= 0:
        return None
    size = config_table_size(bits)
    page_off = pointer & (PAGE_SIZE - 1)
    best: dict[int, int] = {}
    hits = 0
    # Each file byte searched once however many segments alias it (see dumpscan.scan).
    merged = file_ranges_by_delta(memory)
    spans = merge([span for g in merged.values() for span in g], keep_empty=True)
    work = 0
    for anchor in _ANCHOR_GUIDS:
        needle = anchor.to_bytes()
        for a, b in spans:
            for hit in find_all(file, file.fd, needle, a, b):
                if hits >= MAX_CONTENT_HITS:
                    break
                places = places_of(merged, hit)
                work += len(merged)
                hits += max(1, len(places))
                if work > SCAN_WORK:
                    hits = MAX_CONTENT_HITS  # segments alias too much: stop looking
                for phys in places:
                    for i in range(count):
                        start = phys - i * size
                        if start < 0 or start & (PAGE_SIZE - 1) != page_off:
                            continue
                        data = memory.read(start, count * size)
                        if data is None:
                            continue
                        entries = parse_config_tables(data, count, bits=bits)
                        known = sum(known_tables.known(t.guid) is not None for t in entries)
                        if known >= min(2, count):
                            best[start] = known
        if best:
            break
    if not best:
        return None
    top = max(best.values())
    winners = [a for a, k in best.items() if k == top]
    return winners[0] if len(winners) == 1 else None


def _vendor(memory: DumpMemory, translate: _Translator, ptr: int) -> str | None:
    if not ptr:
        return None
    for chars in (VENDOR_MAX_CHARS, 64, 16):
        addr, _how = translate(ptr, 2 * chars)
        if addr is None:
            continue
        data = memory.read(addr, 2 * chars)
        if data is None:
            continue
        try:
            return read_ucs2(data, 0, max_chars=chars)
        except ParseError:
            continue
    return None



# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def read_dump(
    path: str | os.PathLike[str],
    *,
    runtime_map: Sequence[MemoryDescriptor] | None = None,
    content_search: bool = True,
) -> DumpEvidence:
    """Read a raw memory image or an ELF core.

    ``runtime_map``: descriptors with virtual addresses (a sysfs ``efi/runtime-map`` of the same
    boot) to translate pointers SetVirtualAddressMap made virtual. ``content_search``: when a
    pointer cannot be translated, look for the config array by content (marked as a heuristic).
    Raises ParseError for a malformed ELF core or an empty file, SourceError when the file
    cannot be opened.
    """
    p = Path(path)
    try:
        f = p.open("rb")
    except OSError as exc:
        raise SourceError(f"{p}: cannot read: {exc.strerror or exc}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise ParseError("empty file", offset=0, what=str(p))
        file = DumpFile(f.fileno(), size, str(p))
        try:
            return _read(file, runtime_map, content_search)
        except BaseException:
            file.close()
            raise


def _read(
    file: DumpFile,
    runtime_map: Sequence[MemoryDescriptor] | None,
    content_search: bool,
) -> DumpEvidence:
    problems: list[str] = []
    size = file.size
    if file[:4] == ELF_MAGIC:
        fmt, segments = elf_segments(file, size, problems)
    else:
        fmt, segments = "raw", [DumpSegment(0, size, 0, size, size)]
    memory = DumpMemory(file, segments)
    translate = _Translator(memory, runtime_map)
    found = scan(file, file.fd, memory, problems)
    candidates = [c for a, b in found if (c := _candidate(memory, translate, a, b)) is not None]
    candidates.sort(key=lambda c: c.score, reverse=True)
    chosen = candidates[0] if candidates else None
    config_address = None
    tables: tuple[DumpTable, ...] | None = None
    esrt_address = None
    esrt = None
    vendor = None
    if chosen is None:
        problems.append("no EFI system table with a valid header and CRC32 in the dump")
    else:
        st = chosen.table
        vendor = _vendor(memory, translate, st.fw_vendor)
        count = st.linux_nr_tables
        if count > NR_TABLES_SANE_MAX:
            problems.append(f"NumberOfTableEntries {count}: reading the first {NR_TABLES_SANE_MAX}")
            count = NR_TABLES_SANE_MAX
        config_address = chosen.config_address
        how = chosen.config_translation
        if config_address is None and content_search and st.tables and count:
            config_address = _find_config_array_by_content(
                memory, st.tables, count, chosen.bits
            )
            if config_address is not None:
                how = "content search (heuristic)"
                problems.append(
                    f"config array pointer {st.tables:#x} is not in the dump; found the array "
                    f"at {config_address:#x} by content (heuristic)"
                )
        data = None
        if count == 0:
            data = b""  # no tables: nothing to read, whatever the pointer
        elif config_address is not None:
            data = memory.read(config_address, count * config_table_size(chosen.bits))
        if data is None:
            problems.append(f"config array at {st.tables:#x} not readable: {how}")
        else:
            entries = parse_config_tables(data, count, bits=chosen.bits)
            tables = tuple(_table(memory, translate, e) for e in entries)
            esrt_address, esrt = _esrt(memory, tables, problems)
    return DumpEvidence(
        path=file.name,
        format=fmt,
        size=size,
        segments=memory.segments,
        candidates=tuple(candidates),
        system_table_address=chosen.address if chosen else None,
        system_table=chosen.table if chosen else None,
        config_table_address=config_address,
        config_tables=tables,
        esrt_address=esrt_address,
        esrt=esrt,
        firmware_vendor=vendor,
        problems=tuple(problems),
        memory=memory,
    )


def _table(memory: DumpMemory, translate: _Translator, entry: ConfigurationTable) -> DumpTable:
    addr, how = translate(entry.table, 1) if entry.table else (None, "NULL pointer")
    if addr is None:
        return DumpTable(entry.guid, entry.table, None, how, None, f"address unknown: {how}")
    result = known_tables.table_size(entry.guid, memory.read, addr)
    return DumpTable(entry.guid, entry.table, addr, how, result.size, result.reason)


def _esrt(
    memory: DumpMemory, tables: tuple[DumpTable, ...], problems: list[str]
) -> tuple[int | None, Esrt | None]:
    for t in tables:  # Linux keeps the first entry of a GUID
        if t.guid != ESRT_GUID:
            continue
        if t.address is None:
            return None, None
        head = memory.read(t.address, ESRT_HEADER_SIZE)
        if head is None:
            problems.append(f"ESRT header at {t.address:#x} is not in the dump")
            return t.address, None
        hdr = Esrt.parse_header(head)
        if hdr.fw_resource_count > PARSE_MAX_ENTRIES:
            problems.append(f"ESRT claims {hdr.fw_resource_count} entries; not parsed")
            return t.address, None
        raw = memory.read(t.address, hdr.size)
        if raw is None:
            problems.append(f"ESRT at {t.address:#x}: {hdr.size} bytes not all in the dump")
            return t.address, None
        try:
            return t.address, Esrt.parse(raw)
        except ParseError as exc:
            problems.append(f"ESRT at {t.address:#x}: {exc}")
            return t.address, None
    return None, None




def write_raw_image(
    memory: PhysicalMemory,
    path: str | os.PathLike[str],
    *,
    size: int,
    boot_params: tuple[int, MemoryMap, int, int] | None = None,
) -> None:
    """Write ``memory``'s materialised pages as a sparse raw image of ``size`` bytes (physical
    address = file offset). ``boot_params`` = (address of efi_info, memory map, address for the
    map, system table address) also lays out what an x86 EFI stub hands its kernel."""
    if boot_params is not None:
        memory = memory.copy()
        info_addr, mmap_, map_addr, systab = boot_params
        raw_map = mmap_.build()
        memory.write(map_addr, raw_map)
        memory.write(
            info_addr,
            _EFI_INFO.pack(
                EFI_LOADER_SIGNATURE_64,
                systab & 0xFFFFFFFF,
                mmap_.desc_size,
                mmap_.desc_version,
                map_addr & 0xFFFFFFFF,
                len(raw_map),
                systab >> 32,
                map_addr >> 32,
            ),
        )
    with open(path, "wb") as f:
        f.truncate(size)
        for addr, data in memory.pages():
            if addr + len(data) <= size:
                f.seek(addr)
                f.write(data)


__all__ = [
    "DumpEvidence",
    "DumpMemory",
    "DumpSegment",
    "DumpTable",
    "SystemTableCandidate",
    "looks_like_elf_core",
    "read_dump",
    "write_raw_image",
]
