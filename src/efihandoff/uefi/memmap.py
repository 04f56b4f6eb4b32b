"""The EFI memory map: memory types, attribute bits, EFI_MEMORY_DESCRIPTOR and the map itself.

Sources: UEFI 2.10 section 7.2 (GetMemoryMap); Linux include/linux/efi.h (``efi_memory_desc_t``,
``EFI_*`` types and attributes), drivers/firmware/efi/efi.c (``memory_type_name[]``,
``__efi_mem_desc_lookup``), arch/x86/platform/efi/memmap.c (``efi_memmap_split_count``,
``efi_memmap_insert``, Linux 6.2+; drivers/firmware/efi/memmap.c before).
"""

from __future__ import annotations

import bisect
import heapq
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from functools import cached_property

from efihandoff.errors import ParseError
from efihandoff.findings import Finding, error, warning

PAGE_SHIFT = 12  # EFI_PAGE_SHIFT: always 4 KiB, whatever the CPU's page size
PAGE_SIZE = 1 << PAGE_SHIFT
U64_MAX = (1 << 64) - 1
DESCRIPTOR_VERSION = 1  # EFI_MEMORY_DESCRIPTOR_VERSION
DESCRIPTOR_SIZE_MIN = 40  # sizeof(EFI_MEMORY_DESCRIPTOR)
EDK2_DESCRIPTOR_SIZE = 48  # edk2 DxeMain.c: sizeof + 8 so callers never assume sizeof
MAX_DESCRIPTOR_SIZE = 4096  # our bound on a claimed stride; real firmware reports 40..56

_DESC = struct.Struct("<IIQQQQ")  # type, pad, phys_addr, virt_addr, num_pages, attribute


class MemoryType(IntEnum):
    """EFI_MEMORY_TYPE, named as the UEFI spec names them."""

    EfiReservedMemoryType = 0
    EfiLoaderCode = 1
    EfiLoaderData = 2
    EfiBootServicesCode = 3
    EfiBootServicesData = 4
    EfiRuntimeServicesCode = 5
    EfiRuntimeServicesData = 6
    EfiConventionalMemory = 7
    EfiUnusableMemory = 8
    EfiACPIReclaimMemory = 9
    EfiACPIMemoryNVS = 10
    EfiMemoryMappedIO = 11
    EfiMemoryMappedIOPortSpace = 12
    EfiPalCode = 13
    EfiPersistentMemory = 14
    EfiUnacceptedMemoryType = 15

    @property
    def linux_name(self) -> str:
        """The name Linux prints (drivers/firmware/efi/efi.c ``memory_type_name[]``)."""
        return LINUX_TYPE_NAMES[self]

    @classmethod
    def from_linux_name(cls, name: str) -> MemoryType | None:
        """The type whose Linux print name is ``name`` (padding ignored), or None."""
        return _BY_LINUX_NAME.get(name.strip())


LINUX_TYPE_NAMES: dict[MemoryType, str] = {
    MemoryType.EfiReservedMemoryType: "Reserved",
    MemoryType.EfiLoaderCode: "Loader Code",
    MemoryType.EfiLoaderData: "Loader Data",
    MemoryType.EfiBootServicesCode: "Boot Code",
    MemoryType.EfiBootServicesData: "Boot Data",
    MemoryType.EfiRuntimeServicesCode: "Runtime Code",
    MemoryType.EfiRuntimeServicesData: "Runtime Data",
    MemoryType.EfiConventionalMemory: "Conventional",
    MemoryType.EfiUnusableMemory: "Unusable",
    MemoryType.EfiACPIReclaimMemory: "ACPI Reclaim",
    MemoryType.EfiACPIMemoryNVS: "ACPI Mem NVS",
    MemoryType.EfiMemoryMappedIO: "MMIO",
    MemoryType.EfiMemoryMappedIOPortSpace: "MMIO Port",
    MemoryType.EfiPalCode: "PAL Code",
    MemoryType.EfiPersistentMemory: "Persistent",
    MemoryType.EfiUnacceptedMemoryType: "Unaccepted",
}
_BY_LINUX_NAME = {v: k for k, v in LINUX_TYPE_NAMES.items()}

# UEFI 2.10 Table 7-5: 0x70000000..0x7fffffff OEM, 0x80000000..0xffffffff OS loaders.
OEM_TYPE_RANGE = range(0x70000000, 0x80000000)
OS_TYPE_RANGE = range(0x80000000, 0x100000000)


def type_name(value: int) -> str:
    """UEFI name of a memory type value; unknown values as ``Type0x...``."""
    try:
        return MemoryType(value).name
    except ValueError:
        return f"Type{value:#x}"


def parse_type_name(name: str) -> int:
    """Accept a UEFI name (``EfiBootServicesData``), a Linux print name or a number."""
    text = name.strip()
    if text in MemoryType.__members__:
        return MemoryType[text]
    linux = MemoryType.from_linux_name(text)
    if linux is not None:
        return linux
    try:
        value = int(text, 0)
    except ValueError:
        raise ParseError(f"unknown memory type {name!r}", what="memory type") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise ParseError(f"memory type {name!r} out of range", what="memory type")
    return value


class MemoryAttribute(IntFlag):
    """EFI_MEMORY_* attribute bits (Linux include/linux/efi.h names, prefix dropped)."""

    UC = 0x1
    WC = 0x2
    WT = 0x4
    WB = 0x8
    UCE = 0x10
    WP = 0x1000
    RP = 0x2000
    XP = 0x4000
    NV = 0x8000
    MORE_RELIABLE = 0x10000
    RO = 0x20000
    SP = 0x40000
    CPU_CRYPTO = 0x80000
    HOT_PLUGGABLE = 0x100000
    ISA_VALID = 0x4000000000000000
    RUNTIME = 0x8000000000000000


ISA_MASK = 0x0FFFF00000000000  # EFI_MEMORY_ISA_MASK, bits 44-59

# Linux efi_md_typeattr_format(): these bits print as mnemonics, any other bit as attr=0x%016llx.
_LINUX_ATTR_PRINT = (
    (MemoryAttribute.RUNTIME, "RUN"),
    (MemoryAttribute.HOT_PLUGGABLE, "HP"),
    (MemoryAttribute.MORE_RELIABLE, "MR"),
    (MemoryAttribute.CPU_CRYPTO, "CC"),
    (MemoryAttribute.SP, "SP"),
    (MemoryAttribute.NV, "NV"),
    (MemoryAttribute.XP, "XP"),
    (MemoryAttribute.RP, "RP"),
    (MemoryAttribute.WP, "WP"),
    (MemoryAttribute.RO, "RO"),
    (MemoryAttribute.UCE, "UCE"),
    (MemoryAttribute.WB, "WB"),
    (MemoryAttribute.WT, "WT"),
    (MemoryAttribute.WC, "WC"),
    (MemoryAttribute.UC, "UC"),
)
LINUX_ATTR_MNEMONICS = {name: int(bit) for bit, name in _LINUX_ATTR_PRINT}
_LINUX_ATTR_KNOWN = 0
for _bit, _ in _LINUX_ATTR_PRINT:
    _LINUX_ATTR_KNOWN |= int(_bit)


def attribute_names(attribute: int) -> list[str]:
    """Names of the set attribute bits; unknown bits as one hex mask."""
    names = [a.name for a in MemoryAttribute if attribute & a and a.name]
    rest = attribute & ~sum(int(a) for a in MemoryAttribute) & ~ISA_MASK
    if attribute & ISA_MASK:
        names.append(f"ISA={(attribute & ISA_MASK) >> 44:#x}")
    if rest:
        names.append(f"{rest:#x}")
    return names


@dataclass(frozen=True, slots=True)
class MemoryDescriptor:
    """EFI_MEMORY_DESCRIPTOR (Linux ``efi_memory_desc_t``); ``type`` may be a value outside
    :class:`MemoryType`."""

    type: int
    phys_addr: int
    num_pages: int
    attribute: int = 0
    virt_addr: int = 0

    @property
    def size(self) -> int:
        """Bytes covered (may exceed 2^64 for a bogus descriptor)."""
        return self.num_pages << PAGE_SHIFT

    @property
    def end(self) -> int:
        """Exclusive end, as Linux ``efi_mem_desc_end()``."""
        return self.phys_addr + self.size

    @property
    def type_name(self) -> str:
        """UEFI name of the type."""
        return type_name(self.type)

    @property
    def is_bogus(self) -> bool:
        """Linux 6.3 ``__efi_mem_desc_lookup`` (ab03e91e60ce) skips such an entry: unaligned
        start, zero pages, or a range that wraps past 2^64."""
        return (
            self.phys_addr & (PAGE_SIZE - 1) != 0
            or self.num_pages == 0
            or self.num_pages > (U64_MAX - self.phys_addr) >> PAGE_SHIFT
        )

    def contains(self, addr: int) -> bool:
        """Half-open containment, ``phys_addr <= addr < end``."""
        return self.phys_addr <= addr < self.end

    def pack(self, desc_size: int = EDK2_DESCRIPTOR_SIZE) -> bytes:
        """The descriptor's bytes, zero-padded to ``desc_size``."""
        if desc_size < DESCRIPTOR_SIZE_MIN:
            raise ValueError(f"descriptor size {desc_size} < {DESCRIPTOR_SIZE_MIN}")
        raw = _DESC.pack(
            self.type & 0xFFFFFFFF,
            0,
            self.phys_addr & U64_MAX,
            self.virt_addr & U64_MAX,
            self.num_pages & U64_MAX,
            self.attribute & U64_MAX,
        )
        return raw + bytes(desc_size - DESCRIPTOR_SIZE_MIN)

    @classmethod
    def unpack(cls, data: bytes | memoryview, offset: int = 0) -> MemoryDescriptor:
        """Read one descriptor at ``offset``."""
        if offset < 0 or len(data) - offset < DESCRIPTOR_SIZE_MIN:
            raise ParseError("truncated memory descriptor", offset=offset, what="EFI_MEMORY_DESCRIPTOR")
        mtype, _pad, phys, virt, pages, attr = _DESC.unpack_from(data, offset)
        return cls(type=mtype, phys_addr=phys, num_pages=pages, attribute=attr, virt_addr=virt)

    def replace(self, **changes: int) -> MemoryDescriptor:
        """A copy with some fields changed."""
        values = {
            "type": self.type,
            "phys_addr": self.phys_addr,
            "num_pages": self.num_pages,
            "attribute": self.attribute,
            "virt_addr": self.virt_addr,
        }
        values.update(changes)
        return MemoryDescriptor(**values)

    def __str__(self) -> str:
        return (
            f"[{self.type_name:<26}] [{self.phys_addr:#018x}-{self.end - 1:#018x}] "
            f"({self.num_pages} pages) attr={self.attribute:#x}"
        )


@dataclass(frozen=True)
class MemoryMap:
    """What GetMemoryMap returns: descriptors (in firmware order), their stride and version."""

    descriptors: tuple[MemoryDescriptor, ...]
    desc_size: int = EDK2_DESCRIPTOR_SIZE
    desc_version: int = DESCRIPTOR_VERSION
    _index: _LookupIndex = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.descriptors, tuple):
            object.__setattr__(self, "descriptors", tuple(self.descriptors))
        object.__setattr__(self, "_index", _LookupIndex(self.descriptors))

    # -- codec ------------------------------------------------------------------------------

    @classmethod
    def parse(
        cls,
        data: bytes | memoryview,
        desc_size: int = EDK2_DESCRIPTOR_SIZE,
        desc_version: int = DESCRIPTOR_VERSION,
        *,
        base_offset: int = 0,
    ) -> MemoryMap:
        """Parse a map buffer, walking by the firmware's ``desc_size`` (never by sizeof).

        A trailing partial descriptor is an error: GetMemoryMap returns whole descriptors.
        """
        if desc_size < DESCRIPTOR_SIZE_MIN or desc_size > MAX_DESCRIPTOR_SIZE:
            raise ParseError(
                f"descriptor size {desc_size} outside {DESCRIPTOR_SIZE_MIN}..{MAX_DESCRIPTOR_SIZE}",
                offset=base_offset,
                what="memory map",
            )
        view = memoryview(data)
        if len(view) % desc_size:
            raise ParseError(
                f"map size {len(view)} is not a multiple of descriptor size {desc_size}",
                offset=base_offset + len(view) - len(view) % desc_size,
                what="memory map",
            )
        descs = tuple(
            MemoryDescriptor.unpack(view, off) for off in range(0, len(view), desc_size)
        )
        return cls(descs, desc_size, desc_version)

    def build(self) -> bytes:
        """The map buffer as GetMemoryMap would fill it."""
        return b"".join(d.pack(self.desc_size) for d in self.descriptors)

    # -- queries ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.descriptors)

    def __iter__(self) -> Iterator[MemoryDescriptor]:
        return iter(self.descriptors)

    def __getitem__(self, i: int) -> MemoryDescriptor:
        return self.descriptors[i]

    def lookup(self, addr: int) -> MemoryDescriptor | None:
        """The descriptor covering ``addr`` as Linux 6.3 ``__efi_mem_desc_lookup`` finds it:
        the first in map order, bogus entries skipped. O(log n)."""
        i = self._index.find(addr)
        return None if i is None else self.descriptors[i]

    def lookup_index(self, addr: int) -> int | None:
        """Index of the descriptor :meth:`lookup` returns."""
        return self._index.find(addr)

    def lookup_pre63(self, addr: int) -> MemoryDescriptor | None:
        """Linux < 6.3 lookup: first match in map order, bogus entries not skipped. O(n)."""
        for d in self.descriptors:
            if d.phys_addr <= addr < d.end:
                return d
        return None

    def total_bytes(self, types: Iterable[int] | None = None, attribute: int = 0) -> int:
        """Bytes covered by descriptors of the given types (all when None) having every bit of
        ``attribute``."""
        wanted = None if types is None else set(types)
        return sum(
            d.size
            for d in self.descriptors
            if (wanted is None or d.type in wanted) and d.attribute & attribute == attribute
        )

    # -- carving (Linux efi_memmap_split_count + efi_memmap_insert) -------------------------

    def insert(self, start: int, end: int, attribute: int) -> MemoryMap:
        """Carve ``[start, end]`` (inclusive end, page aligned) into the map, ORing ``attribute``
        into the part of every descriptor it covers; types never change.

        Linux 6.3 arch/x86/platform/efi/memmap.c ``efi_memmap_insert``: a range that is not
        page aligned is refused (WARN, map unchanged), which we report as ``ValueError``.
        """
        if start & (PAGE_SIZE - 1) or (end + 1) & (PAGE_SIZE - 1):
            raise ValueError(f"range {start:#x}-{end:#x} is not page aligned")
        out: list[MemoryDescriptor] = []
        for md in self.descriptors:
            out.extend(carve(md, start, end, attribute))
        return MemoryMap(tuple(out), self.desc_size, self.desc_version)

    def split_count(self, start: int, end: int) -> int:
        """Extra descriptors :meth:`insert` adds, summed as Linux ``efi_memmap_split_count``
        counts for the one descriptor it is called with, over the whole map."""
        return sum(split_count(md, start, end) for md in self.descriptors)

    def replace_descriptor(self, index: int, *new: MemoryDescriptor) -> MemoryMap:
        """A map with descriptor ``index`` replaced by ``new`` (zero or more)."""
        descs = self.descriptors[:index] + tuple(new) + self.descriptors[index + 1 :]
        return MemoryMap(descs, self.desc_size, self.desc_version)

    # -- validation -------------------------------------------------------------------------

    def validate(self) -> list[Finding]:
        """Problems a kernel would trip over: stride, version, alignment, zero pages, wrap,
        unknown types, order and overlap."""
        found: list[Finding] = []
        if self.desc_size < DESCRIPTOR_SIZE_MIN:
            found.append(error("memmap.desc-size", f"descriptor size {self.desc_size} < 40"))
        if self.desc_version != DESCRIPTOR_VERSION:
            # Linux x86 efi_memblock_x86_reserve_range(): "Unexpected EFI_MEMORY_DESCRIPTOR version"
            found.append(
                warning("memmap.desc-version", f"descriptor version {self.desc_version}, expected 1")
            )
        prev_end = None
        prev_start = None
        for i, d in enumerate(self.descriptors):
            where = f"descriptor {i} ({d.phys_addr:#x})"
            if d.phys_addr & (PAGE_SIZE - 1):
                found.append(error("memmap.unaligned", f"{where} does not start on a 4 KiB page"))
            if d.num_pages == 0:
                found.append(warning("memmap.zero-pages", f"{where} has zero pages"))
            elif d.num_pages > (U64_MAX - d.phys_addr) >> PAGE_SHIFT:
                found.append(error("memmap.wrap", f"{where} wraps past the top of memory"))
            if d.type not in _KNOWN_TYPES and d.type not in OEM_TYPE_RANGE and d.type not in OS_TYPE_RANGE:
                found.append(warning("memmap.unknown-type", f"{where} has unknown type {d.type:#x}"))
            elif d.type not in _KNOWN_TYPES:
                found.append(
                    warning("memmap.unknown-type", f"{where} has OEM/OS-loader type {d.type:#x}")
                )
            if d.num_pages == 0 or d.is_bogus and d.phys_addr & (PAGE_SIZE - 1) == 0:
                continue
            if prev_start is not None and d.phys_addr < prev_start:
                found.append(warning("memmap.unsorted", f"{where} is below the one before it"))
            if prev_end is not None and prev_start is not None and prev_start <= d.phys_addr < prev_end:
                found.append(error("memmap.overlap", f"{where} overlaps the one before it"))
            prev_start, prev_end = d.phys_addr, d.end
        found.extend(self._index.overlap_findings(self.descriptors, already=found))
        return found

    def sorted(self) -> MemoryMap:
        """The same descriptors in address order."""
        return MemoryMap(
            tuple(sorted(self.descriptors, key=lambda d: d.phys_addr)), self.desc_size, self.desc_version
        )


_KNOWN_TYPES = frozenset(int(t) for t in MemoryType)


def split_count(md: MemoryDescriptor, m_start: int, m_end: int) -> int:
    """Linux ``efi_memmap_split_count``: extra descriptors needed to carve ``[m_start, m_end]``
    (inclusive) out of ``md``."""
    start = md.phys_addr
    end = start + (md.num_pages << PAGE_SHIFT) - 1
    count = 0
    if m_start <= start and start < m_end < end:
        count += 1  # head split
    if start < m_start < end:
        count += 2 if m_end < end else 1  # middle split : tail split
    return count


def carve(md: MemoryDescriptor, m_start: int, m_end: int, attribute: int) -> list[MemoryDescriptor]:
    """Linux ``efi_memmap_insert`` for one descriptor: the 1, 2 or 3 descriptors it becomes."""
    start = md.phys_addr
    end = start + (md.num_pages << PAGE_SHIFT) - 1
    attr = md.attribute | attribute
    if m_start <= start and end <= m_end:
        return [md.replace(attribute=attr)]  # fully covered
    if m_start <= start and start < m_end < end:  # head: [start, m_end] gets attr
        head = (m_end - start + 1) >> PAGE_SHIFT
        return [
            md.replace(num_pages=head, attribute=attr),
            md.replace(phys_addr=m_end + 1, num_pages=md.num_pages - head, virt_addr=_virt(md, m_end + 1)),
        ]
    if start < m_start < end and m_end < end:  # middle: before / range / after
        before = (m_start - start) >> PAGE_SHIFT
        mid = (m_end - m_start + 1) >> PAGE_SHIFT
        return [
            md.replace(num_pages=before),
            md.replace(phys_addr=m_start, num_pages=mid, attribute=attr, virt_addr=_virt(md, m_start)),
            md.replace(
                phys_addr=m_end + 1,
                num_pages=md.num_pages - before - mid,
                virt_addr=_virt(md, m_end + 1),
            ),
        ]
    if start < m_start < end and end <= m_end:  # tail: [m_start, end] gets attr
        before = (m_start - start) >> PAGE_SHIFT
        return [
            md.replace(num_pages=before),
            md.replace(
                phys_addr=m_start,
                num_pages=md.num_pages - before,
                attribute=attr,
                virt_addr=_virt(md, m_start),
            ),
        ]
    return [md]


def _virt(md: MemoryDescriptor, phys: int) -> int:
    # efi_memmap_insert keeps virt_addr in step with phys_addr when it splits.
    return (md.virt_addr + (phys - md.phys_addr)) & U64_MAX if md.virt_addr else 0


class _LookupIndex:
    """Disjoint segments of the non-bogus descriptors, each owned by the first descriptor (in map
    order) covering it: bisect gives Linux's first-match answer in O(log n)."""

    __slots__ = ("_ends", "_owners", "_starts")

    def __init__(self, descs: Sequence[MemoryDescriptor]) -> None:
        valid = [(d.phys_addr, d.end, i) for i, d in enumerate(descs) if not d.is_bogus]
        valid.sort()
        starts: list[int] = []
        ends: list[int] = []
        owners: list[int] = []
        if all(valid[k][1] <= valid[k + 1][0] for k in range(len(valid) - 1)):
            for s, e, i in valid:
                starts.append(s)
                ends.append(e)
                owners.append(i)
        else:
            self._sweep(valid, starts, ends, owners)
        self._starts = starts
        self._ends = ends
        self._owners = owners

    @staticmethod
    def _sweep(
        valid: list[tuple[int, int, int]], starts: list[int], ends: list[int], owners: list[int]
    ) -> None:
        bounds = sorted({b for s, e, _ in valid for b in (s, e)})
        heap: list[tuple[int, int]] = []  # (map index, end)
        k = 0
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            while k < len(valid) and valid[k][0] <= lo:
                heapq.heappush(heap, (valid[k][2], valid[k][1]))
                k += 1
            while heap and heap[0][1] <= lo:
                heapq.heappop(heap)
            # Entries whose end passed but are not on top stay until they surface.
            while heap and heap[0][1] <= lo:
                heapq.heappop(heap)
            if not heap:
                continue
            owner = _first_covering(heap, lo)
            if owner is None:
                continue
            if owners and owners[-1] == owner and ends[-1] == lo:
                ends[-1] = hi
            else:
                starts.append(lo)
                ends.append(hi)
                owners.append(owner)

    def find(self, addr: int) -> int | None:
        k = bisect.bisect_right(self._starts, addr) - 1
        if k >= 0 and addr < self._ends[k]:
            return self._owners[k]
        return None

    def overlap_findings(
        self, descs: Sequence[MemoryDescriptor], already: list[Finding]
    ) -> list[Finding]:
        """Overlaps between non-adjacent descriptors, which the neighbour check misses."""
        if any(f.code == "memmap.overlap" for f in already):
            return []
        valid = sorted((d.phys_addr, d.end, i) for i, d in enumerate(descs) if not d.is_bogus)
        reach = -1
        reach_i = -1
        for s, e, i in valid:
            if s < reach:
                return [error("memmap.overlap", f"descriptor {i} ({s:#x}) overlaps descriptor {reach_i}")]
            if e > reach:
                reach, reach_i = e, i
        return []


def _first_covering(heap: list[tuple[int, int]], lo: int) -> int | None:
    # The heap is ordered by map index; drop expired entries lazily from the top only, so look
    # past expired ones without removing them.
    while heap and heap[0][1] <= lo:
        heapq.heappop(heap)
    return heap[0][0] if heap else None
