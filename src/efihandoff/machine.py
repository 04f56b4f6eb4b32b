"""Machine: what firmware hands over at ExitBootServices, and sparse physical memory.

Evidence may be partial: a kernel log gives addresses but no bytes (``memory`` is None), a dump
gives bytes, a scenario gives everything. Unknown stays unknown.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import PAGE_SHIFT, PAGE_SIZE, MemoryDescriptor, MemoryMap
from efihandoff.uefi.systab import ConfigurationTable, SystemTable

_PAGE_MASK = PAGE_SIZE - 1


class Memory(Protocol):
    """Read access to physical memory; None means those bytes are not known."""

    def read(self, addr: int, length: int) -> bytes | None: ...


class Fill(StrEnum):
    """What bytes nobody wrote (or a hypervisor scrubbed) hold in the model."""

    ZEROS = "zeros"  # a release Xen scrubs reclaimed pages to zero
    RANDOM = "random"  # deterministic noise, a function of the address and a seed
    INTACT = "intact"  # scrubbing leaves the old bytes: shows luck, not safety
    UNKNOWN = "unknown"  # reads return None


def noise(addr: int, length: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes for ``[addr, addr+length)``, page by page."""
    out = bytearray()
    pos = addr
    end = addr + length
    while pos < end:
        page = pos >> PAGE_SHIFT
        block = _noise_page(page, seed)
        lo = pos & _PAGE_MASK
        hi = min(PAGE_SIZE, lo + (end - pos))
        out += block[lo:hi]
        pos += hi - lo
    return bytes(out)


def _noise_page(page: int, seed: int) -> bytes:
    key = struct.pack("<QQ", page, seed)
    return b"".join(
        hashlib.blake2b(key + struct.pack("<I", i), digest_size=64).digest() for i in range(PAGE_SIZE // 64)
    )


@dataclass
class _Scrub:
    start: int
    end: int
    fill: Fill
    seed: int


class PhysicalMemory:
    """Sparse physical memory: a page exists only once written. A 1 TiB machine costs nothing
    until touched. ``background`` says what never-written bytes read as."""

    def __init__(self, background: Fill = Fill.RANDOM, seed: int = 0) -> None:
        self.background = background
        self.seed = seed
        self._pages: dict[int, bytearray] = {}
        self._scrubs: list[_Scrub] = []  # later entries win

    def copy(self) -> PhysicalMemory:
        """An independent copy (pages copied, so writes to either do not show in the other)."""
        other = PhysicalMemory(self.background, self.seed)
        other._pages = {k: bytearray(v) for k, v in self._pages.items()}
        other._scrubs = list(self._scrubs)
        return other

    @property
    def pages_materialised(self) -> int:
        """How many 4 KiB pages hold written bytes."""
        return len(self._pages)

    def _unwritten(self, page: int) -> bytes | None:
        addr = page << PAGE_SHIFT
        for s in reversed(self._scrubs):
            if s.start <= addr < s.end:
                return _fill_bytes(s.fill, addr, PAGE_SIZE, s.seed)
        return _fill_bytes(self.background, addr, PAGE_SIZE, self.seed)

    def read(self, addr: int, length: int) -> bytes | None:
        """Bytes at ``[addr, addr+length)``, or None if any of them is unknown."""
        if length < 0 or addr < 0:
            return None
        out = bytearray()
        pos = addr
        end = addr + length
        while pos < end:
            page = pos >> PAGE_SHIFT
            lo = pos & _PAGE_MASK
            hi = min(PAGE_SIZE, lo + (end - pos))
            data = self._pages.get(page)
            if data is None:
                data = self._unwritten(page)
                if data is None:
                    return None
            out += data[lo:hi]
            pos += hi - lo
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        """Store ``data`` at ``addr``, materialising the pages it touches."""
        pos = addr
        view = memoryview(data)
        while view:
            page = pos >> PAGE_SHIFT
            lo = pos & _PAGE_MASK
            n = min(PAGE_SIZE - lo, len(view))
            buf = self._pages.get(page)
            if buf is None:
                initial = self._unwritten(page)
                buf = bytearray(initial) if initial is not None else bytearray(PAGE_SIZE)
                self._pages[page] = buf
            buf[lo : lo + n] = view[:n]
            view = view[n:]
            pos += n

    def scrub(self, start: int, end: int, fill: Fill, seed: int = 0) -> None:
        """Overwrite ``[start, end)`` (page aligned) as a hypervisor reusing it would. Cost is
        proportional to the pages already materialised there, not to the range."""
        if fill is Fill.INTACT or end <= start:
            return
        first, last = start >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT
        if last - first < len(self._pages):
            doomed = [p for p in range(first, last + 1) if p in self._pages]
        else:
            doomed = [p for p in self._pages if first <= p <= last]
        for p in doomed:
            del self._pages[p]
        self._scrubs.append(_Scrub(start, end, fill, seed))


def _fill_bytes(fill: Fill, addr: int, length: int, seed: int) -> bytes | None:
    if fill is Fill.ZEROS:
        return bytes(length)
    if fill is Fill.RANDOM:
        return noise(addr, length, seed)
    return None


class ByteEvidence(StrEnum):
    """How much of a machine's memory contents a source gave."""

    FULL = "full"  # a scenario: every byte
    DUMP = "dump"  # a memory dump: what the dump holds
    NONE = "none"  # a log or sysfs copy: addresses only


@dataclass(frozen=True)
class TableRef:
    """One configuration table as a Machine knows it (a ``<GUID, address>`` pair plus evidence)."""

    guid: Guid
    address: int
    label: str | None = None  # the name a source used for it (e.g. a log's ``ACPI 2.0``)


@dataclass
class Machine:
    """Firmware's handoff: memory map, system table, configuration tables and memory.

    Fields a source could not give are None. ``notes`` say where each piece came from.
    """

    memory_map: MemoryMap | None = None
    system_table_address: int | None = None
    system_table: SystemTable | None = None
    config_table_address: int | None = None
    config_tables: tuple[ConfigurationTable, ...] | None = None
    memory: Memory | None = None
    firmware_vendor: str | None = None
    name: str = "machine"
    description: str = ""
    memory_type_evidence: dict[int, str] = field(default_factory=dict)  # table address -> evidence
    notes: list[str] = field(default_factory=list)

    def read(self, addr: int, length: int) -> bytes | None:
        """Bytes of physical memory if known."""
        return None if self.memory is None else self.memory.read(addr, length)

    def lookup(self, addr: int) -> MemoryDescriptor | None:
        """The memory-map descriptor covering ``addr`` (Linux 6.3 lookup semantics)."""
        return None if self.memory_map is None else self.memory_map.lookup(addr)

    def table(self, guid: Guid) -> ConfigurationTable | None:
        """The first config-table entry with this GUID (Linux keeps the first match too)."""
        for t in self.config_tables or ():
            if t.guid == guid:
                return t
        return None

    def with_(self, **changes: object) -> Machine:
        """A shallow copy with fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

