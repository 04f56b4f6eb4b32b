"""Memory dumps: raw images (physical address = file offset) and ELF cores with PT_LOAD segments.

An ELF core (QEMU ``dump-guest-memory`` without paging, ``/proc/vmcore``, kdump) maps physical
addresses to file offsets through its PT_LOAD program headers: ``p_paddr`` is the physical
address, ``p_offset`` the file offset, ``p_filesz`` the bytes present and ``p_memsz`` the bytes
described (the rest reads as zeros, as the ELF specification says). Sources: System V ABI (gABI)
"Program Header" and "Sections" (``PN_XNUM``: the real count in section header 0's ``sh_info``);
QEMU dump/dump.c ``write_elf64_load`` (``p_paddr`` = guest physical, ``p_offset`` after the
notes).

The dump is memory-mapped and never copied: finding the system table is one pass of
``mmap.find`` over the file, and memory use does not grow with the dump.

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

import bisect
import contextlib
import errno
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from efihandoff.errors import ParseError, SourceError
from efihandoff.machine import Machine, PhysicalMemory
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID, ESRT_HEADER_SIZE, PARSE_MAX_ENTRIES, Esrt
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import PAGE_SIZE, MemoryDescriptor, MemoryMap
from efihandoff.uefi.systab import (
    NR_TABLES_SANE_MAX,
    ConfigurationTable,
    SystemTable,
    config_table_size,
    find_system_table,
    parse_config_tables,
    read_ucs2,
)

ELF_MAGIC = b"\x7fELF"
ET_CORE = 4
PT_LOAD = 1
PN_XNUM = 0xFFFF
MAX_SEGMENTS = 1 << 18  # our bound on PT_LOAD headers kept
MAX_CANDIDATES = 64  # system-table candidates examined
MAX_CONTENT_HITS = 4096  # GUID hits examined by the content heuristic
VENDOR_MAX_CHARS = 256
U64_MAX = (1 << 64) - 1

# (ehdr size, e_phoff fmt/offset, e_shoff, e_phentsize off, e_phnum off, phdr min size, shdr
# sh_info offset, shdr min size) per ELF class: gABI "ELF Header", "Program Header", "Sections".
_ELF64 = {
    "ehdr": 64,
    "phoff": (32, "Q"),
    "shoff": (40, "Q"),
    "phentsize": 54,
    "phnum": 56,
    "shentsize": 58,
    "phdr": 56,
    "sh_info": 44,
    "shdr": 64,
}
_ELF32 = {
    "ehdr": 52,
    "phoff": (28, "I"),
    "shoff": (32, "I"),
    "phentsize": 42,
    "phnum": 44,
    "shentsize": 46,
    "phdr": 32,
    "sh_info": 28,
    "shdr": 40,
}
# Elf64_Phdr: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align.
# Elf32_Phdr: p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align.
_PHDR64 = "IIQQQQQQ"
_PHDR32 = "IIIIIIII"

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
# Memory over the mapped file
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DumpSegment:
    """A run of physical memory in the dump.

    ``[phys, phys + file_bytes)`` is in the file at ``offset``; ``[phys + declared_filesz,
    phys + size)`` reads as zeros (ELF ``p_memsz > p_filesz``); anything between (a segment cut
    short by the end of the file) is unknown.
    """

    phys: int
    size: int
    offset: int
    file_bytes: int
    declared_filesz: int
    header_offset: int | None = None  # file offset of its program header (ELF)

    @property
    def end(self) -> int:
        """Exclusive physical end."""
        return self.phys + self.size


class DumpMemory:
    """The Memory protocol over a memory-mapped dump; bytes outside every segment are unknown."""

    def __init__(self, mm: mmap.mmap | None, segments: Sequence[DumpSegment]) -> None:
        self._mm = mm
        self.segments = tuple(sorted(segments, key=lambda s: (s.phys, -s.size)))
        self._starts = [s.phys for s in self.segments]
        # Running maximum of segment ends, so overlapping segments are found by bisect.
        self._max_end: list[int] = []
        top = -1
        for s in self.segments:
            top = max(top, s.end)
            self._max_end.append(top)

    @property
    def mmap(self) -> mmap.mmap | None:
        """The mapping (None once closed)."""
        return self._mm

    def close(self) -> None:
        """Unmap the dump; later reads return None."""
        if self._mm is not None:
            # BufferError: a view is still exported somewhere; the GC unmaps it later.
            with contextlib.suppress(BufferError):
                self._mm.close()
            self._mm = None

    def _segment(self, addr: int) -> DumpSegment | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        while i >= 0 and self._max_end[i] > addr:
            s = self.segments[i]
            if s.phys <= addr < s.end:
                return s
            i -= 1
        return None

    def contains(self, addr: int, length: int = 1) -> bool:
        """Whether every byte of ``[addr, addr+length)`` is known (without reading them)."""
        if self._mm is None or addr < 0 or length < 0 or addr + length > U64_MAX + 1:
            return False
        pos, end = addr, addr + length
        while pos < end:
            s = self._segment(pos)
            if s is None:
                return False
            rel = pos - s.phys
            if s.file_bytes <= rel < s.declared_filesz:
                return False
            pos = min(end, s.end if rel >= s.declared_filesz else s.phys + s.file_bytes)
        return True

    def read(self, addr: int, length: int) -> bytes | None:
        """Bytes at ``[addr, addr+length)``, or None if any of them is not in the dump."""
        mm = self._mm
        if mm is None or addr < 0 or length < 0 or addr + length > U64_MAX + 1:
            return None
        out = bytearray()
        pos, end = addr, addr + length
        while pos < end:
            s = self._segment(pos)
            if s is None:
                return None
            rel = pos - s.phys
            if rel < s.file_bytes:
                n = min(end - pos, s.file_bytes - rel)
                out += mm[s.offset + rel : s.offset + rel + n]
            elif rel >= s.declared_filesz:
                n = min(end - pos, s.size - rel)
                out += bytes(n)
            else:
                return None
            pos += n
        return bytes(out)


class _Window:
    """A segment's file bytes seen as one buffer with ``find`` (for find_system_table)."""

    def __init__(self, mm: mmap.mmap, start: int, length: int) -> None:
        self._mm = mm
        self._start = start
        self._len = length

    def __len__(self) -> int:
        return self._len

    def find(self, sub: bytes, pos: int = 0) -> int:
        hit = self._mm.find(sub, self._start + pos, self._start + self._len)
        return -1 if hit < 0 else hit - self._start

    def __getitem__(self, s: slice) -> bytes:
        start, stop, _ = s.indices(self._len)
        return self._mm[self._start + start : self._start + stop]


_BLOCK = 1 << 20  # scan granularity: all-zero blocks are skipped after one compare
_TAIL = 128  # bytes past a block a table found at its end may need (120-byte system table)


def _data_extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """``[a, b)`` file ranges holding data (holes of a sparse file skipped, Linux SEEK_DATA)."""
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        yield start, end
        return
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, seek_data)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: only a hole is left
                yield pos, end
            return
        if data >= end:
            return
        try:
            hole = os.lseek(fd, data, seek_hole)
        except OSError:
            hole = end
        yield data, min(max(hole, data + 1), end)
        pos = hole


def _blocks(mm: mmap.mmap, fd: int | None, seg: DumpSegment) -> Iterator[tuple[int, int]]:
    """File ranges ``(pos, n)`` of a segment that hold a non-zero byte, in order; ``pos`` keeps
    the segment's 8-byte alignment."""
    start, end = seg.offset, seg.offset + seg.file_bytes
    extents = _data_extents(fd, start, end) if fd is not None else iter([(start, end)])
    for a, b in extents:
        pos = a - (a - start) % 8
        while pos < b:
            n = min(_BLOCK, b - pos)
            yield pos, n  # holes were skipped by SEEK_DATA; find() is as fast as a zero check
            _release(mm, pos, n)
            pos += n


def _release(mm: mmap.mmap, pos: int, n: int) -> None:
    """Unmap the scanned pages behind us so resident memory stays one block, whatever the size
    of the dump (they come back from the page cache if read again)."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return
    start = pos - pos % mmap.PAGESIZE
    with contextlib.suppress(OSError, ValueError):
        mm.madvise(mmap.MADV_DONTNEED, start, pos + n - start)


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
        """Unmap the dump (Machines built from it then read nothing)."""
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
        system table found; (map, address of efi_info). One more pass over the dump."""
        addr = self.system_table_address
        mm = self.memory.mmap
        if addr is None or mm is None:
            return None
        needle = EFI_LOADER_SIGNATURE_64 + (addr & 0xFFFFFFFF).to_bytes(4, "little")
        for seg in self.memory.segments:
            if seg.file_bytes == 0:
                continue
            start, stop = seg.offset, seg.offset + seg.file_bytes
            pos = mm.find(needle, start, stop)
            while pos != -1:
                found = self._efi_info_map(mm, pos, addr)
                if found is not None:
                    return found, seg.phys + (pos - seg.offset)
                pos = mm.find(needle, pos + 1, stop)
        return None

    def _efi_info_map(self, mm: mmap.mmap, pos: int, systab: int) -> MemoryMap | None:
        if pos + _EFI_INFO.size > len(mm):
            return None
        _sig, st_lo, desc_size, version, map_lo, map_size, st_hi, map_hi = _EFI_INFO.unpack_from(
            mm, pos
        )
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
# Segments
# --------------------------------------------------------------------------------------------


def _elf_segments(mm: mmap.mmap, size: int, problems: list[str]) -> tuple[str, list[DumpSegment]]:
    ident = mm[:16]
    if len(ident) < 16:
        raise ParseError("truncated ELF identification", offset=len(ident), what="ELF header")
    klass, data = ident[4], ident[5]
    if klass not in (1, 2):
        raise ParseError(f"unknown ELF class {klass}", offset=4, what="ELF header")
    if data not in (1, 2):
        raise ParseError(f"unknown ELF data encoding {data}", offset=5, what="ELF header")
    lay = _ELF64 if klass == 2 else _ELF32
    end = "<" if data == 1 else ">"
    if size < lay["ehdr"]:
        raise ParseError(
            f"truncated ELF header: {size} of {lay['ehdr']} bytes", offset=size, what="ELF header"
        )
    head = mm[: lay["ehdr"]]
    (e_type,) = struct.unpack_from(end + "H", head, 16)
    if e_type != ET_CORE:
        raise ParseError(f"ELF type {e_type} is not a core file (4)", offset=16, what="ELF header")
    (phoff,) = struct.unpack_from(end + lay["phoff"][1], head, lay["phoff"][0])
    (shoff,) = struct.unpack_from(end + lay["shoff"][1], head, lay["shoff"][0])
    (phentsize,) = struct.unpack_from(end + "H", head, lay["phentsize"])
    (phnum,) = struct.unpack_from(end + "H", head, lay["phnum"])
    if phnum == PN_XNUM:
        # gABI: with more than 0xfffe headers the count is section header 0's sh_info.
        (shentsize,) = struct.unpack_from(end + "H", head, lay["shentsize"])
        if shoff == 0 or shentsize < lay["shdr"] or shoff + lay["shdr"] > size:
            raise ParseError(
                "e_phnum is PN_XNUM but section header 0 is missing", offset=shoff, what="ELF"
            )
        (phnum,) = struct.unpack_from(end + "I", mm[shoff : shoff + lay["shdr"]], lay["sh_info"])
    if phnum == 0:
        raise ParseError("ELF core without program headers", offset=lay["phnum"], what="ELF")
    if phentsize < lay["phdr"]:
        raise ParseError(
            f"e_phentsize {phentsize} is below {lay['phdr']}", offset=lay["phentsize"], what="ELF"
        )
    if phnum > MAX_SEGMENTS:
        raise ParseError(f"{phnum} program headers, more than {MAX_SEGMENTS}", offset=0, what="ELF")
    table_end = phoff + phnum * phentsize
    if phoff < lay["ehdr"] or table_end > size:
        raise ParseError(
            f"program headers [{phoff:#x}, {table_end:#x}) run past the end of the file "
            f"({size:#x})",
            offset=phoff,
            what="ELF program headers",
        )
    fmt = end + (_PHDR64 if klass == 2 else _PHDR32)
    loads = []
    for i in range(phnum):
        off = phoff + i * phentsize
        fields = struct.unpack_from(fmt, mm[off : off + lay["phdr"]])
        if klass == 2:
            p_type, _fl, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _al = fields
        else:
            p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _fl, _al = fields
        if p_type == PT_LOAD:
            loads.append((off, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz))
    if not loads:
        raise ParseError("ELF core without PT_LOAD segments", offset=phoff, what="ELF")
    use_vaddr = len(loads) > 1 and all(ld[3] == 0 for ld in loads) and any(ld[2] for ld in loads)
    if use_vaddr:
        problems.append("every PT_LOAD has p_paddr 0: p_vaddr taken as the physical address")
    segments = []
    for hoff, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz in loads:
        phys = p_vaddr if use_vaddr else p_paddr
        memsz = max(p_memsz, p_filesz)
        if memsz == 0:
            continue
        if phys + memsz > U64_MAX + 1:
            problems.append(f"PT_LOAD at header {hoff:#x}: range wraps past 2^64, ignored")
            continue
        avail = p_filesz
        if p_filesz and p_offset + p_filesz > size:
            avail = max(0, size - p_offset)
            problems.append(
                f"PT_LOAD at header {hoff:#x} (phys {phys:#x}): {p_filesz:#x} bytes claimed at "
                f"file offset {p_offset:#x}, only {avail:#x} in the file; the rest is unknown"
            )
        segments.append(DumpSegment(phys, memsz, p_offset, avail, p_filesz, hoff))
    return ("elf64" if klass == 2 else "elf32"), segments


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
    memory: DumpMemory, fd: int | None, pointer: int, count: int, bits: int
) -> int | None:
    """Where the config array whose (virtual) address is ``pointer`` sits, found by content.

    Linux maps each EFI runtime region page by page (arch/x86/platform/efi/efi_64.c
    ``efi_map_region``), so the virtual and physical addresses share their offset in the page.
    Search the bytes of common GUIDs; an array start at that page offset whose entries hold at
    least two known GUIDs (one if the array has a single entry) is a match. None unless exactly
    one start matches best.
    """
    mm = memory.mmap
    if mm is None or count <= 0:
        return None
    size = config_table_size(bits)
    page_off = pointer & (PAGE_SIZE - 1)
    best: dict[int, int] = {}
    hits = 0
    # Each file byte searched once however many segments alias it (see _scan).
    merged = _file_ranges_by_delta(memory)
    spans = _merge([span for g in merged.values() for span in g])
    work = 0
    for anchor in _ANCHOR_GUIDS:
        needle = anchor.to_bytes()
        for a, b in spans:
            whole = DumpSegment(0, b - a, a, b - a, b - a)
            for block, n in _blocks(mm, fd, whole):
                pos = block
                stop = min(block + n + len(needle) - 1, b)
                while hits < MAX_CONTENT_HITS:
                    hit = mm.find(needle, pos, stop)
                    if hit < 0:
                        break
                    pos = hit + 1
                    places = []
                    for delta, g in merged.items():
                        work += 1
                        k = bisect.bisect_right(g, (hit, U64_MAX + 1)) - 1
                        if k >= 0 and g[k][0] <= hit < g[k][1]:
                            places.append(hit + delta)
                    hits += max(1, len(places))
                    if work > _SCAN_WORK:
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
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise SourceError(f"{p}: cannot map: {exc}") from None
        try:
            return _read(mm, f.fileno(), size, str(p), runtime_map, content_search)
        except BaseException:
            mm.close()
            raise


def _scan(
    mm: mmap.mmap, fd: int | None, memory: DumpMemory, problems: list[str]
) -> list[tuple[int, int]]:
    """(address, bits) of every plausible system table: one pass over the non-zero blocks for
    the 64-bit layout, a second for the 32-bit layout only when the first found nothing.

    Each file byte is scanned once per alignment class however many segments map it (ELF cores
    whose PT_LOAD headers alias the same bytes cost one scan, not one per header); a hit is then
    mapped to the physical address of every segment holding it, in bounded work."""
    if hasattr(mmap, "MADV_SEQUENTIAL"):
        mm.madvise(mmap.MADV_SEQUENTIAL)
    # Segments grouped by phys - offset, their file ranges merged; and the ranges to scan per
    # class (offset - phys) % 8.
    merged = _file_ranges_by_delta(memory)
    by_class: dict[int, list[int]] = {}
    for delta in merged:
        by_class.setdefault(-delta % 8, []).append(delta)
    found: dict[tuple[int, int], None] = {}
    budget = [_SCAN_WORK]
    try:
        for bits in (64, 32):
            for cls in sorted(by_class):
                deltas = by_class[cls]
                spans = _merge([span for d in deltas for span in merged[d]])
                for a, b in spans:
                    start = a + (cls - a) % 8
                    if start >= b:
                        continue
                    for hit in _scan_range(mm, fd, start, b, bits):
                        if not _place(hit, bits, deltas, merged, found, budget, problems):
                            return sorted(found)
            if found:
                break
    finally:
        if hasattr(mmap, "MADV_NORMAL"):
            mm.madvise(mmap.MADV_NORMAL)
    return sorted(found)


_SCAN_WORK = 1 << 20  # (hit, segment group) pairs examined before the scan gives up



def _file_ranges_by_delta(memory: DumpMemory) -> dict[int, list[tuple[int, int]]]:
    """The segments grouped by ``phys - offset`` (one physical address per file byte within a
    group), each group's file ranges merged: aliasing segments hold each byte once."""
    groups: dict[int, list[tuple[int, int]]] = {}
    for seg in memory.segments:
        if seg.file_bytes:
            groups.setdefault(seg.phys - seg.offset, []).append(
                (seg.offset, seg.offset + seg.file_bytes)
            )
    return {delta: _merge(spans) for delta, spans in groups.items()}

def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _scan_range(mm: mmap.mmap, fd: int | None, start: int, end: int, bits: int) -> Iterator[int]:
    """File offsets of plausible system tables in ``[start, end)`` (8-aligned from start)."""
    seg = DumpSegment(0, end - start, start, end - start, end - start)
    for pos, n in _blocks(mm, fd, seg):
        tail = min(n + _TAIL, end - pos)
        for hit in find_system_table(_Window(mm, pos, tail), bits=bits):
            if hit >= n:
                break  # found again, whole, in the next block
            yield pos + hit


def _place(
    hit: int,
    bits: int,
    deltas: list[int],
    merged: dict[int, list[tuple[int, int]]],
    found: dict[tuple[int, int], None],
    budget: list[int],
    problems: list[str],
) -> bool:
    """Add the physical address of file offset ``hit`` in every segment group holding it;
    False once the candidates or the work budget run out."""
    for delta in deltas:
        budget[0] -= 1
        if budget[0] < 0:
            problems.append("segments alias too much: system-table scan stopped")
            return False
        spans = merged[delta]
        k = bisect.bisect_right(spans, (hit, U64_MAX + 1)) - 1
        if k < 0 or not spans[k][0] <= hit < spans[k][1]:
            continue
        phys = hit + delta
        if phys < 0 or phys > U64_MAX:
            continue
        found[(phys, bits)] = None
        if len(found) >= MAX_CANDIDATES:
            problems.append(f"more than {MAX_CANDIDATES} system-table candidates; rest ignored")
            return False
    return True


def _read(
    mm: mmap.mmap,
    fd: int | None,
    size: int,
    name: str,
    runtime_map: Sequence[MemoryDescriptor] | None,
    content_search: bool,
) -> DumpEvidence:
    problems: list[str] = []
    if mm[:4] == ELF_MAGIC:
        fmt, segments = _elf_segments(mm, size, problems)
    else:
        fmt, segments = "raw", [DumpSegment(0, size, 0, size, size)]
    memory = DumpMemory(mm, segments)
    translate = _Translator(memory, runtime_map)
    found = _scan(mm, fd, memory, problems)
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
                memory, fd, st.tables, count, chosen.bits
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
        path=name,
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


def looks_like_elf_core(head: bytes) -> bool:
    """Whether ``head`` starts an ELF core file (for source sniffing)."""
    return len(head) >= 18 and head[:4] == ELF_MAGIC and head[16:18] in (b"\x04\x00", b"\x00\x04")


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
