"""The EFI memory map: memory types, attribute bits, EFI_MEMORY_DESCRIPTOR and the map itself.

Sources: UEFI 2.10 section 7.2 (GetMemoryMap); Linux include/linux/efi.h (``efi_memory_desc_t``,
``EFI_*`` types and attributes), drivers/firmware/efi/efi.c (``memory_type_name[]``,
``__efi_mem_desc_lookup``), arch/x86/platform/efi/memmap.c (``efi_memmap_split_count``,
``efi_memmap_insert``, Linux 6.2+; drivers/firmware/efi/memmap.c before, same logic in 6.1).
"""

from __future__ import annotations

import bisect
import heapq
import operator
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from functools import cached_property, reduce
from itertools import pairwise, repeat
from typing import Annotated

from efihandoff.errors import ParseError
from efihandoff.findings import Finding, error, info, warning
from efihandoff.uefi.layout import U32, U64, Layout

PAGE_SHIFT = 12  # EFI_PAGE_SHIFT: always 4 KiB, whatever the CPU's page size
PAGE_SIZE = 1 << PAGE_SHIFT
U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1
DESCRIPTOR_VERSION = 1  # EFI_MEMORY_DESCRIPTOR_VERSION
# DESCRIPTOR_SIZE_MIN, sizeof(EFI_MEMORY_DESCRIPTOR) (40), comes from its declaration below.
EDK2_DESCRIPTOR_SIZE = 48  # edk2 DxeMain.c: sizeof + 8 so callers never assume sizeof
MAX_DESCRIPTOR_SIZE = 4096  # our bound on a claimed stride; real firmware reports 40..56

FINDING_CODES = (
    "memmap.desc-size",
    "memmap.desc-version",
    "memmap.unaligned",
    "memmap.zero-pages",
    "memmap.wrap",
    "memmap.unknown-type",
    "memmap.unsorted",
    "memmap.overlap",
)


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


# Linux drivers/firmware/efi/efi.c memory_type_name[] ("Unaccepted" came with unaccepted memory).
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
_KNOWN_TYPES = frozenset(int(t) for t in MemoryType)

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
    if not 0 <= value <= U32_MAX:
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
_KNOWN_ATTRIBUTES = sum(int(a) for a in MemoryAttribute)

# Linux drivers/firmware/efi/efi.c efi_md_typeattr_format(), in its print order: these bits print
# as mnemonics; any other bit set makes it print attr=0x%016llx instead (HP is recent mainline;
# older kernels print attr= for it).
LINUX_ATTR_MNEMONICS: dict[str, int] = {
    "RUN": MemoryAttribute.RUNTIME,
    "HP": MemoryAttribute.HOT_PLUGGABLE,
    "MR": MemoryAttribute.MORE_RELIABLE,
    "CC": MemoryAttribute.CPU_CRYPTO,
    "SP": MemoryAttribute.SP,
    "NV": MemoryAttribute.NV,
    "XP": MemoryAttribute.XP,
    "RP": MemoryAttribute.RP,
    "WP": MemoryAttribute.WP,
    "RO": MemoryAttribute.RO,
    "UCE": MemoryAttribute.UCE,
    "WB": MemoryAttribute.WB,
    "WT": MemoryAttribute.WT,
    "WC": MemoryAttribute.WC,
    "UC": MemoryAttribute.UC,
}


def attribute_names(attribute: int) -> list[str]:
    """Names of the set attribute bits (low bit first), then ``ISA=0x..`` for the ISA field and
    one hex mask for any other bits."""
    names = [str(a.name) for a in MemoryAttribute if attribute & a]
    if attribute & ISA_MASK:
        names.append(f"ISA={(attribute & ISA_MASK) >> 44:#x}")
    rest = attribute & ~_KNOWN_ATTRIBUTES & ~ISA_MASK
    if rest:
        names.append(f"{rest:#x}")
    return names


def _u64(value: int) -> int:
    """``value`` as C's u64 arithmetic leaves it (wrapped modulo 2^64)."""
    return value & U64_MAX


@dataclass(frozen=True, slots=True)
class MemoryDescriptor:
    """EFI_MEMORY_DESCRIPTOR (Linux ``efi_memory_desc_t``); ``type`` may be a value outside
    :class:`MemoryType`. The pad word and any bytes past 40 are not kept."""

    type: Annotated[int, U32]
    phys_addr: Annotated[int, U64]
    num_pages: Annotated[int, U64]
    attribute: Annotated[int, U64] = 0
    virt_addr: Annotated[int, U64] = 0

    @property
    def size(self) -> int:
        """Bytes covered (may exceed 2^64 for a bogus descriptor)."""
        return self.num_pages << PAGE_SHIFT

    @property
    def end(self) -> int:
        """Exclusive end, ``phys_addr + size``; equals Linux ``efi_mem_desc_end()`` unless
        :attr:`is_bogus` (Linux wraps it modulo 2^64, this does not)."""
        return self.phys_addr + self.size

    @property
    def type_name(self) -> str:
        """UEFI name of the type."""
        return type_name(self.type)

    @property
    def is_bogus(self) -> bool:
        """True when Linux 6.3+ ``__efi_mem_desc_lookup`` skips the entry (ab03e91e60ce):
        start not 4 KiB aligned, zero pages, or a range reaching 2^64 or beyond."""
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
        try:
            raw = DESCRIPTOR_LAYOUT.pack(self)
        except struct.error as exc:
            raise ValueError(f"descriptor field out of range: {self!r}") from exc
        return raw + bytes(desc_size - DESCRIPTOR_SIZE_MIN)

    @classmethod
    def unpack(cls, data: bytes | memoryview, offset: int = 0) -> MemoryDescriptor:
        """Read one descriptor at ``offset``."""
        if offset < 0 or len(data) - offset < DESCRIPTOR_SIZE_MIN:
            raise ParseError(
                "truncated memory descriptor", offset=offset, what="EFI_MEMORY_DESCRIPTOR"
            )
        return DESCRIPTOR_LAYOUT.unpack_from(data, offset)

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


# C order: UINT32 Type, (4 bytes of padding), PhysicalStart, VirtualStart, NumberOfPages,
# Attribute (UEFI 2.10 section 7.2); the constructor takes the type and range first.
DESCRIPTOR_LAYOUT = Layout(
    MemoryDescriptor, order=("type", "phys_addr", "virt_addr", "num_pages", "attribute")
)
DESCRIPTOR_SIZE_MIN = DESCRIPTOR_LAYOUT.size


@dataclass(frozen=True)
class MemoryMap:
    """What GetMemoryMap returns: descriptors (in firmware order), their stride and version."""

    descriptors: tuple[MemoryDescriptor, ...]
    desc_size: int = EDK2_DESCRIPTOR_SIZE
    desc_version: int = DESCRIPTOR_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.descriptors, tuple):
            object.__setattr__(self, "descriptors", tuple(self.descriptors))

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
        if not DESCRIPTOR_SIZE_MIN <= desc_size <= MAX_DESCRIPTOR_SIZE:
            raise ParseError(
                f"descriptor size {desc_size} outside {DESCRIPTOR_SIZE_MIN}..{MAX_DESCRIPTOR_SIZE}",
                offset=base_offset,
                what="memory map",
            )
        view = memoryview(data).cast("B")
        whole = len(view) - len(view) % desc_size
        if whole != len(view):
            raise ParseError(
                f"map size {len(view)} is not a multiple of descriptor size {desc_size}",
                offset=base_offset + whole,
                what="memory map",
            )
        descs = tuple(DESCRIPTOR_LAYOUT.iter_unpack(view, 0, whole // desc_size, desc_size))
        return cls(descs, desc_size, desc_version)

    def build(self) -> bytes:
        """The map buffer as GetMemoryMap would fill it (pad and tail bytes zero)."""
        if self.desc_size >= DESCRIPTOR_SIZE_MIN:
            try:
                return DESCRIPTOR_LAYOUT.pack_many(self.descriptors, self.desc_size)
            except struct.error:
                pass  # MemoryDescriptor.pack names the descriptor at fault
        return b"".join(d.pack(self.desc_size) for d in self.descriptors)

    # -- queries ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.descriptors)

    def __iter__(self) -> Iterator[MemoryDescriptor]:
        return iter(self.descriptors)

    def __getitem__(self, i: int) -> MemoryDescriptor:
        return self.descriptors[i]

    @cached_property
    def _lookup_index(self) -> FirstMatch:
        return FirstMatch(self.descriptors, skip_bogus=True)

    def lookup(self, addr: int) -> MemoryDescriptor | None:
        """The descriptor covering ``addr`` as Linux 6.3+ ``__efi_mem_desc_lookup`` finds it:
        the first in map order, bogus entries skipped. O(log n) after an O(n log n) index."""
        i = self.lookup_index(addr)
        return None if i is None else self.descriptors[i]

    def lookup_index(self, addr: int) -> int | None:
        """Index of the descriptor :meth:`lookup` returns."""
        return self._lookup_index.find(addr)

    @cached_property
    def _first_match(self) -> FirstMatch:
        return FirstMatch(self.descriptors)

    def first_match(self, addr: int) -> int | None:
        """Index of the first descriptor in map order whose range, computed in u64 as C does,
        holds ``addr``; bogus entries not skipped (a wrapping entry never matches). O(log n).
        Which consumer looks up this way is in ``efihandoff.rules``."""
        return self._first_match.find(addr)

    def total_bytes(self, types: Iterable[int] | None = None, attribute: int = 0) -> int:
        """Bytes covered by descriptors of the given types (all when None) having every bit of
        ``attribute`` (overlaps counted twice)."""
        wanted = None if types is None else set(types)
        return sum(
            d.size
            for d in self.descriptors
            if (wanted is None or d.type in wanted) and d.attribute & attribute == attribute
        )

    # -- carving (Linux efi_memmap_split_count + efi_memmap_insert) -------------------------

    def insert(self, start: int, end: int, attribute: int) -> MemoryMap:
        """Carve ``[start, end]`` (inclusive end, page aligned) into every descriptor, ORing
        ``attribute`` into the covered parts, as Linux ``efi_memmap_insert`` does (see
        :func:`carve`). A range that is not page aligned is refused with ``ValueError`` (Linux
        WARNs and writes nothing)."""
        _check_range(start, end, attribute)
        out: list[MemoryDescriptor] = []
        for md in self.descriptors:
            out.extend(carve(md, start, end, attribute))
        return MemoryMap(tuple(out), self.desc_size, self.desc_version)

    def split_count(self, start: int, end: int) -> int:
        """Descriptors :meth:`insert` adds: :func:`split_count` summed over the whole map.

        Linux's caller (x86 ``efi_arch_mem_reserve``) counts only the descriptor its lookup
        found, yet ``efi_memmap_insert`` splits every descriptor the range touches: when this
        sum exceeds that one count, Linux's buffer is too small."""
        return sum(split_count(md, start, end) for md in self.descriptors)

    def replace_descriptor(self, index: int, *new: MemoryDescriptor) -> MemoryMap:
        """A map with descriptor ``index`` replaced by ``new`` (zero or more)."""
        descs = self.descriptors[:index] + tuple(new) + self.descriptors[index + 1 :]
        out = MemoryMap(descs, self.desc_size, self.desc_version)
        built = self.__dict__.get("_lookup_index")  # the parent's index, if it was built
        if built is not None:
            index_of = built.spliced(descs, index, new)
            if index_of is not None:  # the cached_property's own slot: built already
                out.__dict__["_lookup_index"] = index_of
        return out

    # -- validation -------------------------------------------------------------------------

    def validate(self) -> list[Finding]:
        """Problems a kernel would trip over: stride, version, alignment, zero pages, wrap,
        unknown types, then order and overlap among the entries Linux 6.3+ lookup uses
        (worked out once per map)."""
        return list(self._findings)

    @cached_property
    def _findings(self) -> tuple[Finding, ...]:
        found: list[Finding] = []
        if self.desc_size < DESCRIPTOR_SIZE_MIN:
            found.append(error("memmap.desc-size", f"descriptor size {self.desc_size} < 40"))
        if self.desc_version != DESCRIPTOR_VERSION:
            # Linux x86 efi_memblock_x86_reserve_range(): "Unexpected EFI_MEMORY_DESCRIPTOR version"
            found.append(
                warning("memmap.desc-version", f"descriptor version {self.desc_version}, not 1")
            )
        descs = self.descriptors
        starts, pages, ends = columns(descs)
        if none_bogus(starts, pages, ends):
            # whole columns at once: every descriptor aligned, non-empty, below 2^64; sorted
            # and disjoint (the usual map) leaves only the types to look at
            if not set(map(_TYPE, descs)) <= _KNOWN_TYPES:
                for i, d in enumerate(descs):
                    found.extend(_descriptor_findings(i, d))
            if all(map(operator.le, ends[:-1], starts[1:])):
                return tuple(found)
            valid = list(zip(starts, ends, range(len(descs)), strict=True))
        else:
            for i, d in enumerate(descs):
                found.extend(_descriptor_findings(i, d))
            valid = [(d.phys_addr, d.end, i) for i, d in enumerate(descs) if not d.is_bogus]
        for (s0, _, i0), (s1, _, i1) in pairwise(valid):
            if s1 < s0:
                found.append(
                    warning(
                        "memmap.unsorted",
                        f"descriptor {i1} ({s1:#x}) starts below "
                        f"descriptor {i0} ({s0:#x}) before it",
                    )
                )
        reach, reach_i = -1, -1
        for s, e, i in sorted(valid):
            if s < reach:
                found.append(
                    error(
                        "memmap.overlap",
                        f"descriptor {i} ({s:#x}) overlaps descriptor "
                        f"{reach_i} (ending {reach:#x})",
                    )
                )
            if e > reach:
                reach, reach_i = e, i
        return tuple(found)

    def sorted(self) -> MemoryMap:
        """The same descriptors in address order (stable)."""
        descs = tuple(sorted(self.descriptors, key=lambda d: d.phys_addr))
        return MemoryMap(descs, self.desc_size, self.desc_version)


def _descriptor_findings(i: int, d: MemoryDescriptor) -> list[Finding]:
    where = f"descriptor {i} ({d.phys_addr:#x})"
    found: list[Finding] = []
    if d.phys_addr & (PAGE_SIZE - 1):
        found.append(error("memmap.unaligned", f"{where} does not start on a 4 KiB page"))
    if d.num_pages == 0:
        found.append(warning("memmap.zero-pages", f"{where} has zero pages"))
    elif d.num_pages > (U64_MAX - d.phys_addr) >> PAGE_SHIFT:
        found.append(error("memmap.wrap", f"{where} reaches the top of the address space"))
    # int(): range.__contains__ walks the range for int subclasses such as IntEnum.
    if int(d.type) in OEM_TYPE_RANGE or int(d.type) in OS_TYPE_RANGE:
        found.append(info("memmap.unknown-type", f"{where} has OEM/OS-loader type {d.type:#x}"))
    elif d.type not in _KNOWN_TYPES:
        found.append(warning("memmap.unknown-type", f"{where} has unknown type {d.type:#x}"))
    return found


def _check_range(m_start: int, m_end: int, attribute: int = 0) -> None:
    if not (0 <= m_start <= U64_MAX and 0 <= m_end <= U64_MAX and 0 <= attribute <= U64_MAX):
        raise ValueError(f"range {m_start:#x}-{m_end:#x} or attribute {attribute:#x} not u64")
    # Linux efi_memmap_insert: IS_ALIGNED(m_start) and IS_ALIGNED(m_end + 1), in u64.
    if m_start & (PAGE_SIZE - 1) or _u64(m_end + 1) & (PAGE_SIZE - 1):
        raise ValueError(f"range {m_start:#x}-{m_end:#x} is not page aligned")


def _inclusive_end(md: MemoryDescriptor) -> int:
    # Linux computes end = phys_addr + (num_pages << EFI_PAGE_SHIFT) - 1 in u64.
    return _u64(md.phys_addr + (md.num_pages << PAGE_SHIFT) - 1)


def split_count(md: MemoryDescriptor, m_start: int, m_end: int) -> int:
    """Extra descriptors needed to carve ``[m_start, m_end]`` (inclusive) out of ``md``:
    Linux 6.3 arch/x86/platform/efi/memmap.c ``efi_memmap_split_count`` (6.1:
    drivers/firmware/efi/memmap.c), u64 arithmetic included."""
    start, end = md.phys_addr, _inclusive_end(md)
    count = 0
    if m_start <= start and start < m_end < end:
        count += 1  # head: two parts
    if start < m_start < end:
        count += 2 if m_end < end else 1  # middle: three parts; tail: two parts
    return count


def carve(md: MemoryDescriptor, m_start: int, m_end: int, attribute: int) -> list[MemoryDescriptor]:
    """The descriptors ``md`` becomes when Linux ``efi_memmap_insert`` carves ``[m_start, m_end]``
    (inclusive) out of it, ORing ``attribute`` into the covered part.

    Linux 6.3 arch/x86/platform/efi/memmap.c ``efi_memmap_insert`` (6.1:
    drivers/firmware/efi/memmap.c; the same in both): every part is a copy of the whole old
    descriptor with only ``phys_addr``, ``num_pages`` and ``attribute`` rewritten, so type and
    ``virt_addr`` are kept as they are (virt_addr is not offset); the four cases below are
    Linux's exact conditions, in u64 arithmetic, and no other overlap changes the descriptor.
    Aligned descriptors always fall in a case; bogus ones may not (see the tests). A range
    that is not page aligned raises ``ValueError``.
    """
    _check_range(m_start, m_end, attribute)
    start, end = md.phys_addr, _inclusive_end(md)
    attr = md.attribute | attribute
    if m_start <= start and end <= m_end:  # covered: attribute only
        return [md.replace(attribute=attr)]
    if m_start <= start and start < m_end < end:  # head: [start, m_end] / [m_end + 1, end]
        return [
            md.replace(num_pages=_u64(m_end - start + 1) >> PAGE_SHIFT, attribute=attr),
            md.replace(phys_addr=_u64(m_end + 1), num_pages=_u64(end - m_end) >> PAGE_SHIFT),
        ]
    if start < m_start < end and m_end < end:  # middle: before / range / after
        return [
            md.replace(num_pages=(m_start - start) >> PAGE_SHIFT),
            md.replace(
                phys_addr=m_start,
                num_pages=_u64(m_end - m_start + 1) >> PAGE_SHIFT,
                attribute=attr,
            ),
            md.replace(phys_addr=_u64(m_end + 1), num_pages=_u64(end - m_end) >> PAGE_SHIFT),
        ]
    if start < m_start < end and end <= m_end:  # tail: [start, m_start - 1] / [m_start, end]
        return [
            md.replace(num_pages=(m_start - start) >> PAGE_SHIFT),
            md.replace(
                phys_addr=m_start, num_pages=_u64(end - m_start + 1) >> PAGE_SHIFT, attribute=attr
            ),
        ]
    return [md]


# First-match descriptor lookup with C's u64 arithmetic, in O(log n) per query.
#
# Xen's ``XEN_FW_EFI_MEM_INFO`` (xen/common/efi/runtime.c ``efi_get_info``, 4.16 and later) and
# Linux before 6.3 (drivers/firmware/efi/efi.c ``efi_mem_desc_lookup``) both walk the map in order
# and take the first descriptor with ``start <= addr < start + (pages << 12)``, every sum wrapping
# at 2^64 and no entry skipped as bogus: an unaligned descriptor matches, one with zero pages or one
# whose end wraps past 2^64 never does. With ``skip_bogus`` it answers as Linux 6.3+
# ``__efi_mem_desc_lookup`` does (ab03e91e60ce: unaligned, empty and wrapping entries skipped),
# which is :meth:`MemoryMap.lookup`.

_TYPE = operator.attrgetter("type")
_START = operator.attrgetter("phys_addr")
_PAGES = operator.attrgetter("num_pages")


def columns(descs: Sequence[MemoryDescriptor]) -> tuple[list[int], list[int], list[int]]:
    """The starts, page counts and exclusive ends (not wrapped) of ``descs``, in map order,
    each list built in one pass."""
    starts = list(map(_START, descs))
    pages = list(map(_PAGES, descs))
    ends = list(map(operator.add, starts, map(operator.lshift, pages, repeat(PAGE_SHIFT))))
    return starts, pages, ends


def none_bogus(starts: list[int], pages: list[int], ends: list[int]) -> bool:
    """No descriptor of these :func:`columns` is :attr:`MemoryDescriptor.is_bogus`: every
    start aligned (their OR is), no zero page count, every end at most 2^64 - 1 (with the
    start aligned, ``num_pages > (U64_MAX - phys_addr) >> PAGE_SHIFT`` is ``end > U64_MAX``)."""
    if not starts:
        return True
    return (
        not reduce(operator.or_, starts) & (PAGE_SIZE - 1)
        and 0 not in pages
        and max(ends) <= U64_MAX
    )


def u64_span(d: MemoryDescriptor) -> tuple[int, int]:
    """``(start, end)`` as C computes them; ``end <= start`` means the entry never matches."""
    return d.phys_addr, (d.phys_addr + ((d.num_pages << PAGE_SHIFT) & U64_MAX)) & U64_MAX


class FirstMatch:
    """Which descriptor a first-match walk over ``descs`` returns for an address."""

    __slots__ = ("_descs", "_ends", "_every", "_owners", "_skip_bogus", "_starts")

    def __init__(self, descs: Sequence[MemoryDescriptor], *, skip_bogus: bool = False) -> None:
        self._descs = descs
        self._skip_bogus = skip_bogus
        self._every = False  # owners are 0..n-1: every descriptor, sorted and disjoint
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._owners: Sequence[int] = ()  # a range when it is every descriptor in order
        starts, pages, ends = columns(descs)
        if (
            none_bogus(starts, pages, ends)
            if skip_bogus  # else: C's u64 sums are the plain ones, none empty
            else not starts or (min(starts) >= 0 and min(pages) > 0 and max(ends) <= U64_MAX)
        ) and all(map(operator.le, ends[:-1], starts[1:])):
            self._starts, self._ends = starts, ends
            self._owners = range(len(starts))
            self._every = True
            return
        if skip_bogus:
            spans = [(d.phys_addr, d.end, i) for i, d in enumerate(descs) if not d.is_bogus]
        else:
            spans = [
                (d.phys_addr, (d.phys_addr + ((d.num_pages << PAGE_SHIFT) & U64_MAX)) & U64_MAX, i)
                for i, d in enumerate(descs)
            ]
            spans = [x for x in spans if x[0] < x[1]]
        starts = [s for s, _, _ in spans]
        ends = [e for _, e, _ in spans]
        if all(map(operator.le, ends[:-1], starts[1:])):  # sorted and disjoint: the usual map
            self._starts, self._ends = starts, ends
            self._owners = [i for _, _, i in spans]
            return
        spans.sort()
        bounds = sorted({b for s, e, _ in spans for b in (s, e)})
        active: list[tuple[int, int]] = []  # heap of (map index, end) of spans begun so far
        k = 0
        owners: list[int] = []
        for lo, hi in pairwise(bounds):  # no span starts or ends strictly inside [lo, hi)
            while k < len(spans) and spans[k][0] <= lo:
                heapq.heappush(active, (spans[k][2], spans[k][1]))
                k += 1
            while active and active[0][1] <= lo:
                heapq.heappop(active)
            if not active:
                continue
            owner = active[0][0]
            if owners and owners[-1] == owner and self._ends[-1] == lo:
                self._ends[-1] = hi
            else:
                self._starts.append(lo)
                self._ends.append(hi)
                owners.append(owner)
        self._owners = owners

    def spliced(
        self, descs: Sequence[MemoryDescriptor], index: int, new: Sequence[MemoryDescriptor]
    ) -> FirstMatch | None:
        """The index of ``descs``, this one's descriptors with the one at ``index`` replaced
        by ``new``, by splicing this one's lists (no pass over every descriptor), when this one
        holds every descriptor sorted and disjoint and ``new`` keeps them so; else None."""
        if not self._every:
            return None
        starts, ends = self._starts, self._ends
        lo = ends[index - 1] if index > 0 else 0
        add_starts, add_ends = [], []
        for d in new:
            s, p = d.phys_addr, d.num_pages
            e = s + (p << PAGE_SHIFT)
            if s < lo or p <= 0 or e > U64_MAX or (self._skip_bogus and s & (PAGE_SIZE - 1)):
                return None
            add_starts.append(s)
            add_ends.append(e)
            lo = e
        if index + 1 < len(starts) and lo > starts[index + 1]:
            return None
        out = FirstMatch.__new__(FirstMatch)
        out._descs = descs
        out._skip_bogus = self._skip_bogus
        out._every = True
        out._starts = starts[:index] + add_starts + starts[index + 1 :]
        out._ends = ends[:index] + add_ends + ends[index + 1 :]
        out._owners = range(len(out._starts))
        return out

    def find(self, addr: int) -> int | None:
        """Index of the first descriptor holding ``addr``, or None."""
        k = bisect.bisect_right(self._starts, addr) - 1
        if k >= 0 and addr < self._ends[k]:
            return self._owners[k]
        return None


def first_match_scan(
    descs: Sequence[MemoryDescriptor], addr: int, *, skip_bogus: bool = False
) -> int | None:
    """The same answer as :class:`FirstMatch`, by a linear walk (the reference, and the naive
    baseline of the benchmark)."""
    for i, d in enumerate(descs):
        if skip_bogus:
            if d.is_bogus:
                continue
            s, e = d.phys_addr, d.phys_addr + (d.num_pages << PAGE_SHIFT)
        else:
            s, e = u64_span(d)
        if s <= addr < e:
            return i
    return None
