"""Machine: what firmware hands over at ExitBootServices, and sparse physical memory.

Evidence may be partial: a kernel log gives addresses but no bytes (``memory`` is None), a dump
gives bytes, a scenario gives everything. Unknown stays unknown.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Protocol

from efihandoff.errors import ParseError
from efihandoff.intervals import merge
from efihandoff.uefi.esrt import (
    ESRT_GUID,
    ESRT_HEADER_SIZE,
    PARSE_MAX_ENTRIES,
    Esrt,
    EsrtHeader,
    esrt_size,
)
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import (
    PAGE_SHIFT,
    PAGE_SIZE,
    MemoryAttribute,
    MemoryDescriptor,
    MemoryMap,
    MemoryType,
)
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
    # edk2 MdePkg DebugLib DEBUG_CLEAR_MEMORY: a DEBUG build fills memory it frees with
    # PcdDebugClearMemoryValue (MdePkg.dec default 0xAF)
    DEBUG_CLEAR = "debug-clear"


DEBUG_CLEAR_VALUE = 0xAF


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
    return hashlib.shake_256(struct.pack("<QQ", page, seed)).digest(PAGE_SIZE)


class PhysicalMemory:
    """Sparse physical memory: a page exists only once written. A 1 TiB machine costs nothing
    until touched. ``background`` says what never-written bytes read as.

    Scrubbed ranges (memory a hypervisor or kernel reused) are kept as sorted, disjoint page
    runs, the latest scrub winning, so reading an unwritten page costs O(log runs).
    """

    def __init__(self, background: Fill = Fill.RANDOM, seed: int = 0) -> None:
        self.background = background
        self.seed = seed
        self._pages: dict[int, bytearray] = {}
        # Pages written over unknown bytes: which of their bytes are known (1) or not (0).
        self._known: dict[int, bytearray] = {}
        # Pages written over random fill: which of their bytes were written (1) or are noise (0).
        self._noise: dict[int, bytearray] = {}
        # Disjoint page runs [first, last], sorted: what fills each.
        self._run_first: list[int] = []
        self._run_last: list[int] = []
        self._run_fill: list[tuple[Fill, int]] = []

    def copy(self) -> PhysicalMemory:
        """An independent copy (pages copied, so writes to either do not show in the other)."""
        other = PhysicalMemory(self.background, self.seed)
        other._pages = {k: bytearray(v) for k, v in self._pages.items()}
        other._known = {k: bytearray(v) for k, v in self._known.items()}
        other._noise = {k: bytearray(v) for k, v in self._noise.items()}
        other._run_first = list(self._run_first)
        other._run_last = list(self._run_last)
        other._run_fill = list(self._run_fill)
        return other

    def pages(self) -> Iterator[tuple[int, bytes]]:
        """(address, bytes) of every materialised page, in address order."""
        for page in sorted(self._pages):
            yield page << PAGE_SHIFT, bytes(self._pages[page])

    @property
    def pages_materialised(self) -> int:
        """How many 4 KiB pages hold written bytes."""
        return len(self._pages)

    def page_addresses(self) -> list[int]:
        """The address of every materialised page, in address order."""
        return [page << PAGE_SHIFT for page in sorted(self._pages)]

    def moved(self, lo: int, hi: int, delta: int) -> PhysicalMemory:
        """The materialised pages of ``[lo, hi)`` (page-aligned) ``delta`` bytes (whole pages)
        away, with what is known of them, in a memory of this background and seed and no
        scrubbed runs."""
        if (lo | hi | delta) & _PAGE_MASK:
            raise ValueError("moved: page-aligned bounds and distance only")
        other = PhysicalMemory(self.background, self.seed)
        shift, first, stop = delta >> PAGE_SHIFT, lo >> PAGE_SHIFT, hi >> PAGE_SHIFT
        for page in sorted(p for p in self._pages if first <= p < stop):
            other._pages[page + shift] = bytearray(self._pages[page])
            for mine, theirs in ((self._known, other._known), (self._noise, other._noise)):
                mask = mine.get(page)
                if mask is not None:
                    theirs[page + shift] = bytearray(mask)
        return other

    def moved_state(self, lo: int, hi: int, delta: int) -> tuple[object, ...]:
        """What ``moved(lo, hi, delta)`` would hold, as plain values (equal exactly when the
        two memories read the same everywhere), without copying a page."""
        if (lo | hi | delta) & _PAGE_MASK:
            raise ValueError("moved_state: page-aligned bounds and distance only")
        shift, first, stop = delta >> PAGE_SHIFT, lo >> PAGE_SHIFT, hi >> PAGE_SHIFT
        pages = []
        for page in sorted(p for p in self._pages if first <= p < stop):
            known, noise = self._known.get(page), self._noise.get(page)
            pages.append((
                page + shift,
                bytes(self._pages[page]),
                None if known is None else bytes(known),
                None if noise is None else bytes(noise),
            ))  # fmt: skip
        return (self.background, self.seed, tuple(pages))

    def scrubbed(self) -> list[tuple[int, int, Fill]]:
        """The scrubbed ranges as ``(start, end, fill)``, sorted and disjoint."""
        return [
            (f << PAGE_SHIFT, (last + 1) << PAGE_SHIFT, w[0])
            for f, last, w in zip(self._run_first, self._run_last, self._run_fill, strict=True)
        ]

    def _fill_of(self, page: int) -> tuple[Fill, int]:
        k = bisect.bisect_right(self._run_first, page) - 1
        if k >= 0 and page <= self._run_last[k]:
            return self._run_fill[k]
        return self.background, self.seed

    def _unwritten(self, page: int) -> bytes | None:
        fill, seed = self._fill_of(page)
        return _fill_bytes(fill, page << PAGE_SHIFT, PAGE_SIZE, seed)

    def known(self, addr: int, length: int) -> bool:
        """Whether every byte of ``[addr, addr+length)`` holds what the model can state: written,
        or a fill that says what it holds (zeros, the debug clear value); False where a byte is
        random fill (a stand-in for bytes nobody wrote) or unknown."""
        if length <= 0:
            return length == 0 and addr >= 0
        pos, end = addr, addr + length
        while pos < end:
            page = pos >> PAGE_SHIFT
            lo = pos & _PAGE_MASK
            hi = min(PAGE_SIZE, lo + (end - pos))
            if page in self._pages:
                for masks in (self._known, self._noise):
                    mask = masks.get(page)
                    if mask is not None and mask.find(0, lo, hi) != -1:
                        return False
            elif self._fill_of(page)[0] in (Fill.RANDOM, Fill.UNKNOWN):
                return False
            pos += hi - lo
        return True

    def read(self, addr: int, length: int) -> bytes | None:
        """Bytes at ``[addr, addr+length)``, or None if any of them is unknown."""
        if length < 0 or addr < 0:
            return None
        lo = addr & _PAGE_MASK
        if 0 < length <= PAGE_SIZE - lo:  # within one written page: most reads
            written = self._pages.get(addr >> PAGE_SHIFT)
            if written is not None:
                known = self._known.get(addr >> PAGE_SHIFT)
                if known is not None and known.find(0, lo, lo + length) != -1:
                    return None
                return bytes(written[lo : lo + length])
        out = bytearray()
        pos = addr
        end = addr + length
        while pos < end:
            page = pos >> PAGE_SHIFT
            lo = pos & _PAGE_MASK
            hi = min(PAGE_SIZE, lo + (end - pos))
            data: bytes | bytearray | None = self._pages.get(page)
            mask = self._known.get(page)
            if mask is not None and mask.find(0, lo, hi) != -1:
                return None
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
                if initial is None:
                    self._known[page] = bytearray(PAGE_SIZE)
                elif self._fill_of(page)[0] is Fill.RANDOM:
                    self._noise[page] = bytearray(PAGE_SIZE)
                buf = bytearray(initial) if initial is not None else bytearray(PAGE_SIZE)
                self._pages[page] = buf
            buf[lo : lo + n] = view[:n]
            for masks in (self._known, self._noise):
                mask = masks.get(page)
                if mask is not None:
                    mask[lo : lo + n] = b"\x01" * n
                    if mask.find(0) == -1:
                        del masks[page]
            view = view[n:]
            pos += n

    def scrub(self, start: int, end: int, fill: Fill, seed: int = 0) -> None:
        """Overwrite the pages of ``[start, end)`` as a hypervisor or kernel reusing them would;
        ``Fill.INTACT`` leaves the bytes as they were. Cost: O(log runs) plus the pages already
        materialised there, never the size of the range."""
        if fill is Fill.INTACT or end <= start:
            return
        first, last = start >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT
        if last - first < len(self._pages):
            doomed = [p for p in range(first, last + 1) if p in self._pages]
        else:
            doomed = [p for p in self._pages if first <= p <= last]
        for p in doomed:
            del self._pages[p]
            self._known.pop(p, None)
            self._noise.pop(p, None)
        self._add_run(first, last, (fill, seed))

    def scrub_many(self, spans: list[tuple[int, int]], fill: Fill, seed: int = 0) -> None:
        """:meth:`scrub` for many ranges at once, as when a kernel frees or a hypervisor takes
        a whole map's worth of regions: O((ranges + runs) log) rather than one splice each."""
        if fill is Fill.INTACT:
            return
        # page runs [first, last]: the pages each span touches, touching runs joined
        pages = merge((s >> PAGE_SHIFT, ((e - 1) >> PAGE_SHIFT) + 1) for s, e in spans if s < e)
        runs = [[first, end - 1] for first, end in pages]
        if not runs:
            return
        firsts = [r[0] for r in runs]
        for p in [p for p in self._pages if _in_runs(firsts, runs, p)]:
            del self._pages[p]
            self._known.pop(p, None)
            self._noise.pop(p, None)
        old = [[f, la] for f, la in zip(self._run_first, self._run_last, strict=True)]
        overlap = any(_in_runs(firsts, runs, f) for f, _ in old) or any(
            _in_runs(self._run_first, old, f) for f in firsts
        )
        if overlap:
            for f, la in runs:  # earlier runs overlap: one splice each, the latest winning
                self._add_run(f, la, (fill, seed))
            return
        # Disjoint from every earlier run: merge the two sorted lists, joining neighbours.
        what = (fill, seed)
        merged = sorted(
            [
                *zip(self._run_first, self._run_last, self._run_fill, strict=True),
                *((f, la, what) for f, la in runs),
            ],
            key=lambda r: r[0],
        )
        out_f: list[int] = []
        out_l: list[int] = []
        out_w: list[tuple[Fill, int]] = []
        for f, la, w in merged:
            if out_f and out_w[-1] == w and out_l[-1] + 1 == f:
                out_l[-1] = la
            else:
                out_f.append(f)
                out_l.append(la)
                out_w.append(w)
        self._run_first, self._run_last, self._run_fill = out_f, out_l, out_w

    def _add_run(self, first: int, last: int, what: tuple[Fill, int]) -> None:
        firsts, lasts, fills = self._run_first, self._run_last, self._run_fill
        k0 = bisect.bisect_left(lasts, first - 1)  # runs k0..k1-1 overlap or touch the new one
        k1 = bisect.bisect_right(firsts, last + 1)
        head: list[tuple[int, int, tuple[Fill, int]]] = []
        tail: list[tuple[int, int, tuple[Fill, int]]] = []
        for k in range(k0, k1):
            f, la, w = firsts[k], lasts[k], fills[k]
            if f < first:  # its part before the new run survives (or joins it)
                if w == what:
                    first = f
                else:
                    head.append((f, min(la, first - 1), w))
            if la > last:  # its part after the new run survives (or joins it)
                if w == what:
                    last = la
                else:
                    tail.append((max(f, last + 1), la, w))
        runs = [*head, (first, last, what), *tail]
        firsts[k0:k1] = [r[0] for r in runs]
        lasts[k0:k1] = [r[1] for r in runs]
        fills[k0:k1] = [r[2] for r in runs]


def _in_runs(firsts: list[int], runs: list[list[int]], page: int) -> bool:
    """Whether ``page`` lies in one of the sorted ``[first, last]`` runs."""
    k = bisect.bisect_right(firsts, page) - 1
    return k >= 0 and page <= runs[k][1]


def _fill_bytes(fill: Fill, addr: int, length: int, seed: int) -> bytes | None:
    if fill is Fill.ZEROS:
        return bytes(length)
    if fill is Fill.RANDOM:
        return noise(addr, length, seed)
    if fill is Fill.DEBUG_CLEAR:
        return bytes([DEBUG_CLEAR_VALUE]) * length
    return None




@dataclass(frozen=True)
class EsrtBytes:
    """What a Machine's memory says of its ESRT (:meth:`Machine.read_esrt`): the header when
    its 16 bytes are known, the whole table when every claimed entry is known and parses."""

    address: int
    header: EsrtHeader | None
    table: Esrt | None


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
    # Table address -> every memory type the evidence leaves open, when more than one (the map
    # holds the first as a stand-in).
    memory_type_candidates: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # ESRT header fields whose bytes are stand-ins the evidence does not give (e.g. max from an
    # "esrt: Reserving" line): they pass or fail the same checks, but are not facts.
    esrt_stand_ins: frozenset[str] = frozenset()
    # False when the map holds only some regions (a /sys/firmware copy's runtime-map: RUNTIME
    # regions only), so a table outside it says nothing about the firmware.
    memory_map_complete: bool = True
    notes: list[str] = field(default_factory=list)
    # The firmware model's pool as boot services leave it (efihandoff.edk2.PoolState),
    # so a replay of the OS loader's allocations continues from it; None when not known.
    firmware_state: object | None = None

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

    def read_esrt(self, max_entries: int = PARSE_MAX_ENTRIES) -> EsrtBytes | None:
        """The ESRT the configuration array points at, as far as the memory holds it; None
        when the array has no ESRT. Entries are read up to ``max_entries`` (a table claiming
        more is not parsed)."""
        ct = self.table(ESRT_GUID)
        if ct is None:
            return None
        head = self.read(ct.table, ESRT_HEADER_SIZE)
        if head is None:
            return EsrtBytes(ct.table, None, None)
        header = Esrt.parse_header(head)
        raw = self.read(ct.table, min(header.size, esrt_size(max_entries)))
        try:
            table = Esrt.parse(raw, max_entries=max_entries) if raw is not None else None
        except ParseError:  # claims more than the bytes or the cap hold: no table, a header
            table = None
        return EsrtBytes(ct.table, header, table)

    def with_(self, **changes: Any) -> Machine:
        """A shallow copy with fields changed, as ``dataclasses.replace`` makes it (every field
        is an init field without ``__post_init__``), without its per-call field walk: explain
        and survey make thousands of reduced machines."""
        unknown = changes.keys() - _MACHINE_FIELDS
        if unknown:
            raise TypeError(f"Machine has no field {sorted(unknown)[0]!r}")
        out = object.__new__(Machine)
        out.__dict__.update(self.__dict__)
        out.__dict__.update(changes)
        return out


_MACHINE_FIELDS = frozenset(f.name for f in fields(Machine))


# What firmware gives RAM: every cacheability attribute (a descriptor the evidence shows as RAM
# without printing its attributes gets these).
RAM_ATTRIBUTES = int(
    MemoryAttribute.UC | MemoryAttribute.WC | MemoryAttribute.WT | MemoryAttribute.WB
)
# A machine reduced to some of its tables gets free memory here for firmware-side copies (Xen's
# ESRT copy, the relocate-known proposal): 16 MiB below 4 GiB, where EDK II allocates from.
FREE_GAP_BASE = 0xF000_0000
FREE_GAP_SIZE = 16 << 20


def free_gap(avoid: Iterable[tuple[int, int]]) -> MemoryDescriptor:
    """The reduced machine's free memory: 16 MiB at :data:`FREE_GAP_BASE`, or the first 16 MiB
    block below it clear of every ``[start, end)`` in ``avoid`` (no lower than 16 MiB)."""
    spans = list(avoid)
    base = FREE_GAP_BASE
    while base > FREE_GAP_SIZE and any(
        s < base + FREE_GAP_SIZE and base < e for s, e in spans
    ):
        base -= FREE_GAP_SIZE
    return MemoryDescriptor(
        MemoryType.EfiConventionalMemory, base, FREE_GAP_SIZE // PAGE_SIZE, RAM_ATTRIBUTES
    )
