"""The Xen hypervisor between firmware and dom0, by version and boot mode.

Sources (xen-project/xen, read at the release tags): xen/common/efi/boot.c ``efi_tables``,
``get_esrt_size``, ``efi_relocate_esrt``, ``efi_exit_boot``, ``efi_init_memory`` (4.16.x; 4.17.0
with dc7da0874b and its ACPI-reclaim follow-up 11560248ff; 4.17.1 1dcc9b6dfe for multiboot2;
3ea44aa78c and its backports for the size fix); xen/arch/x86/efi/efi-boot.h
``efi_arch_process_memory_map`` (E820, ``map_bs`` from ``-mapbs``); xen/common/efi/runtime.c
``efi_get_info`` (XEN_FW_EFI_INFO sub-commands).
"""

from __future__ import annotations

import bisect
import operator
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import compress, repeat

from efihandoff.e820 import E820Range, E820Type
from efihandoff.edk2 import BootServices, OutOfResources
from efihandoff.intervals import subtract
from efihandoff.machine import PhysicalMemory
from efihandoff.paths.presets import BootMode, PathSpec, Policy
from efihandoff.rules.e820 import XEN_RAM_TYPES, xen_e820_type
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_ENTRY_SIZE, ESRT_GUID, ESRT_HEADER_SIZE, EsrtHeader
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import (
    PAGE_SHIFT,
    PAGE_SIZE,
    U64_MAX,
    FirstMatch,
    MemoryAttribute,
    MemoryDescriptor,
    MemoryMap,
    MemoryType,
    columns,
    u64_span,
)
from efihandoff.uefi.systab import read_ucs2

ESRCH = 3
ENOSYS = 38
EINVAL = 22
EOPNOTSUPP = 95
E820MAX = 1024  # Xen 4.16+ xen/arch/x86/include/asm/e820.h: e820_raw holds at most this many

BS_TYPES = frozenset({MemoryType.EfiBootServicesCode, MemoryType.EfiBootServicesData})
LOADER_TYPES = frozenset({MemoryType.EfiLoaderCode, MemoryType.EfiLoaderData})
# efi_arch_process_memory_map: the types that become E820_RAM (given WB and no RUNTIME).
_RAM_TYPES = XEN_RAM_TYPES
_BS = frozenset(int(t) for t in BS_TYPES)
_RUNTIME = int(MemoryAttribute.RUNTIME)
_RT_TYPES = (int(MemoryType.EfiRuntimeServicesCode), int(MemoryType.EfiRuntimeServicesData))
_ESRT_DESC_TYPES = frozenset(
    {
        int(MemoryType.EfiBootServicesData),
        int(MemoryType.EfiRuntimeServicesData),
        # 11560248ff (4.17.0): "which will contain the tables after successful kexec"
        int(MemoryType.EfiACPIReclaimMemory),
    }
)


class XenFwEfiInfo(IntEnum):
    """XENPF_firmware_info / XEN_FW_EFI_INFO ``index`` values (xen/include/public/platform.h)."""

    VERSION = 0
    CONFIG_TABLE = 1
    VENDOR = 2
    MEM_INFO = 3
    RT_VERSION = 4
    PCI_ROM = 5
    APPLE_PROPERTIES = 6


@dataclass(frozen=True)
class MemInfo:
    """``union xenpf_efi_info.mem`` as XEN_FW_EFI_MEM_INFO returns it."""

    addr: int
    size: int
    attr: int
    type: int


@dataclass(frozen=True)
class Relocation:
    """One table Xen copied before ExitBootServices."""

    guid: Guid
    old: int
    new: int
    copied: int  # bytes memcpy'd
    size: int  # bytes the table really has (16 + 40 * count for the ESRT)
    memory_type: int
    pool_bytes: int  # what the allocation costs (whole pages of a fresh pool run)


@dataclass
class XenBoot:
    """What Xen leaves behind at dom0 start."""

    spec: PathSpec
    efi_memmap: MemoryMap  # re-read in efi_exit_boot, kept for MEM_INFO
    e820: list[E820Range]
    config_table_address: int
    nr_tables: int
    revision: int
    vendor: str | None
    esrt: int | None  # what efi_tables recorded (4.17+)
    relocations: list[Relocation] = field(default_factory=list)
    reclaimed: list[tuple[int, int]] = field(default_factory=list)  # [start, end) reused as RAM
    deferred: list[tuple[int, int]] = field(default_factory=list)  # BS ranges held for dom0
    log: list[str] = field(default_factory=list)
    memory: PhysicalMemory | None = None
    runtime_services: bool = True
    _index: FirstMatch | None = field(default=None, repr=False)

    # -- XEN_FW_EFI_INFO --------------------------------------------------------------------

    def firmware_info(self, index: int) -> tuple[int, object]:
        """XENPF_firmware_info(XEN_FW_EFI_INFO, index) for the argument-free sub-commands:
        (rc, value); rc is 0 or a negative errno (Xen 4.16+ xen/common/efi/runtime.c
        efi_get_info)."""
        if index == XenFwEfiInfo.VERSION:
            return 0, self.revision
        if index == XenFwEfiInfo.CONFIG_TABLE:
            return 0, (self.config_table_address, self.nr_tables)
        if index == XenFwEfiInfo.VENDOR:
            return (0, self.vendor) if self.vendor is not None else (-EOPNOTSUPP, None)
        if index == XenFwEfiInfo.RT_VERSION:
            return (0, self.revision) if self.runtime_services else (-EOPNOTSUPP, None)
        if index == XenFwEfiInfo.PCI_ROM:
            return -ESRCH, None  # no option ROM copies in the model
        if index == XenFwEfiInfo.APPLE_PROPERTIES:
            return -61, None  # -ENODATA
        if index == XenFwEfiInfo.MEM_INFO:
            return -EINVAL, None  # takes arguments: use mem_info()
        return -EINVAL, None

    def mem_info(self, addr: int, size: int) -> tuple[int, MemInfo | None]:
        """XEN_FW_EFI_MEM_INFO (Xen 4.16+ xen/common/efi/runtime.c efi_get_info): the first
        descriptor of ``efi_memmap`` holding ``addr`` (u64 arithmetic, no bogus-entry skipping);
        ``addr`` comes back unchanged, ``size`` clipped to the descriptor end when
        ``addr + size`` wraps or passes it; -ESRCH, with nothing copied back, when none."""
        if self._index is None:
            self._index = FirstMatch(self.efi_memmap.descriptors)
        i = self._index.find(addr)
        if i is None:
            return -ESRCH, None
        d = self.efi_memmap.descriptors[i]
        _, end = u64_span(d)
        total = addr + size
        if total > U64_MAX or total > end:
            size = end - addr
        return 0, MemInfo(addr, size, d.attribute, d.type)


def get_esrt_size(
    spec: PathSpec, memory: PhysicalMemory, esrt: int | None, d: MemoryDescriptor
) -> int:
    """Xen 4.17+ xen/common/efi/boot.c get_esrt_size: 0 unless the ESRT starts in ``d`` (BS
    data, RT data or ACPI reclaim), more than 16 bytes remain to the descriptor end, the version
    is 1, the count is non-zero and its entries fit. Returns count * 40 before 3ea44aa78c (the
    16-byte header forgotten), 16 + 40 * count after (4.19.5, 4.20.3, 4.21.1, 4.22.0)."""
    if esrt is None:
        return 0
    length = (d.num_pages << PAGE_SHIFT) & U64_MAX  # size_t arithmetic
    start = d.phys_addr
    if start > esrt or esrt - start >= length:
        return 0
    if d.type not in _ESRT_DESC_TYPES:
        return 0
    available = length - (esrt - start)
    if available <= ESRT_HEADER_SIZE:
        return 0
    available -= ESRT_HEADER_SIZE
    raw = memory.read(esrt, ESRT_HEADER_SIZE)
    if raw is None:
        return 0
    hdr = EsrtHeader.unpack(raw)
    if hdr.fw_resource_version != 1 or hdr.fw_resource_count == 0:
        return 0
    if hdr.fw_resource_count > available // ESRT_ENTRY_SIZE:
        return 0
    if spec.xen_esrt_size_fixed:
        return ESRT_HEADER_SIZE + ESRT_ENTRY_SIZE * hdr.fw_resource_count
    return ESRT_ENTRY_SIZE * hdr.fw_resource_count  # the bug 3ea44aa78c fixed


def boot(bs: BootServices, spec: PathSpec) -> XenBoot:
    """Run Xen's EFI boot path on firmware state ``bs`` (mutated) up to dom0 start."""
    assert spec.xen is not None
    log = [f"(XEN) Xen version {'.'.join(map(str, spec.xen))}"]
    log.append("(XEN) Bootloader: EFI" if spec.boot is BootMode.EFI else "(XEN) Bootloader: GRUB 2")
    st = bs.system_table
    if st is None or bs.system_table_address is None:
        raise OutOfResources("no system table: Xen cannot start through EFI")
    # Xen 4.16+ boot.c efi_init: efi_ct / efi_num_ct captured once from the system table.
    ct_addr, ct_n = st.tables, st.nr_tables
    vendor = _vendor(bs.memory, st.fw_vendor)
    # Xen 4.17+ boot.c efi_tables: every entry is looked at, so the last ESRT entry wins.
    esrt = None
    if spec.xen_knows_esrt:
        for t in bs.config_tables():
            if t.guid == ESRT_GUID:
                esrt = t.table
    relocations: list[Relocation] = []
    if spec.policy is Policy.RELOCATE_KNOWN:
        relocations += _relocate_known(bs, log)
    if spec.xen_relocates_esrt:
        r = _relocate_esrt(bs, spec, esrt, log)
        if r is not None:
            relocations.append(r)
    # Xen 4.16+ boot.c efi_exit_boot: the map is re-read after the relocation, so the new
    # pool pages are in it; it stays as efi_memmap for MEM_INFO.
    final = bs.exit_boot_services()
    efi_memmap = MemoryMap(_init_memory(final.descriptors), final.desc_size, final.desc_version)
    types = e820_types(final, spec)
    e820, included = build_e820(final, spec, types)
    result = XenBoot(
        spec=spec,
        efi_memmap=efi_memmap,
        e820=e820,
        config_table_address=ct_addr,
        nr_tables=ct_n,
        revision=st.hdr.revision,
        vendor=vendor,
        esrt=esrt,
        relocations=relocations,
        log=log,
        memory=bs.memory,
    )
    # The E820 RAM ranges become Xen's heap; the ones that held BS code/data are reused (and
    # scrubbed) before dom0 reads anything. The reserve-hypercall proposal holds BS ranges.
    for d, inc, e820_t in zip(final.descriptors, included, types, strict=True):
        if not inc or e820_t != _E820_RAM or d.type not in _RAM_TYPES:
            continue
        span = (d.phys_addr, d.phys_addr + (d.num_pages << PAGE_SHIFT))
        if spec.policy is Policy.RESERVE_HYPERCALL and d.type in _BS:
            result.deferred.append(span)
        else:
            result.reclaimed.append(span)
    bs.memory.scrub_many(result.reclaimed, spec.scrub)
    return result


def release_deferred(xb: XenBoot, reserved: list[tuple[int, int]]) -> None:
    """reserve-hypercall proposal: dom0 says it is done; Xen reclaims the held BS ranges except
    the pages dom0 reserved."""
    assert xb.memory is not None
    holes = sorted(
        (s & ~(PAGE_SIZE - 1), (e + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) for s, e in reserved
    )
    released = [part for span in xb.deferred for part in subtract(span, holes)]
    xb.memory.scrub_many(released, xb.spec.scrub)
    xb.reclaimed = sorted(xb.reclaimed + released)
    xb.deferred = []


def e820_type(d: MemoryDescriptor, spec: PathSpec) -> E820Type:
    """Xen 4.16+ xen/arch/x86/efi/efi-boot.h efi_arch_process_memory_map: one descriptor's
    E820 type. BS code/data fall through to the Conventional case unless ``-mapbs``; RAM types
    need WB; since f324300c83 (4.17.0; 54f8ed80c8 in 4.16.3) RUNTIME makes them reserved."""
    return _E820[_classify(d.type, d.attribute, spec.mapbs, spec.xen_runtime_attr_reserved)]


_classify = xen_e820_type  # the mapping is Xen's rule: efihandoff.rules.e820
_TYPE_OF = operator.attrgetter("type")
_ATTRIBUTE_OF = operator.attrgetter("attribute")
_E820_RAM = int(E820Type.RAM)
_E820 = {int(t): t for t in E820Type}


def e820_types(final: MemoryMap, spec: PathSpec) -> list[int]:
    """:func:`e820_type` of every descriptor, in map order."""
    mapbs, rt = spec.mapbs, spec.xen_runtime_attr_reserved
    return [_classify(d.type, d.attribute, mapbs, rt) for d in final.descriptors]


def build_e820(
    final: MemoryMap, spec: PathSpec, types: list[int] | None = None
) -> tuple[list[E820Range], list[bool]]:
    """Xen 4.16+ efi-boot.h efi_arch_process_memory_map: walk the map in its order; a range
    that starts where the previous entry ends and has its type extends it; a zero-length one
    is dropped, and so is every new entry once ``e820_raw`` holds E820MAX (1024). Returns the
    E820 and, per descriptor, whether it made it in."""
    rows: list[list[int]] = []  # [start, end, type]
    included: list[bool] = []
    if types is None:
        types = e820_types(final, spec)
    for d, t in zip(final.descriptors, types, strict=True):
        length = (d.num_pages << PAGE_SHIFT) & U64_MAX
        if rows and rows[-1][2] == t and d.phys_addr == rows[-1][1]:
            rows[-1][1] += length
            included.append(True)
        elif not length or len(rows) >= E820MAX:
            included.append(False)
        else:
            rows.append([d.phys_addr, d.phys_addr + length, t])
            included.append(True)
    return [E820Range(s, e, _E820[t]) for s, e, t in rows], included


def e820_row_count(final: MemoryMap, spec: PathSpec) -> int:
    """``len(build_e820(final, spec)[0])``, counted a column at a time: an entry of no length
    never makes or extends a row; each other one starts a row unless it follows the previous
    one's end with its type; rows stop at E820MAX."""
    descs = final.descriptors
    mapbs, rt = spec.mapbs, spec.xen_runtime_attr_reserved
    pairs = list(zip(map(_TYPE_OF, descs), map(_ATTRIBUTE_OF, descs), strict=True))
    kind = {p: _classify(p[0], p[1], mapbs, rt) for p in set(pairs)}
    firsts, pages, _ = columns(descs)
    sizes = map(operator.lshift, pages, repeat(PAGE_SHIFT))
    lengths = list(map(operator.and_, sizes, repeat(U64_MAX)))  # size_t arithmetic
    kept = list(map(bool, lengths))
    types = list(compress(map(kind.__getitem__, pairs), kept))
    starts = list(compress(firsts, kept))
    ends = list(map(operator.add, starts, compress(lengths, kept)))
    if not starts:
        return 0
    breaks = map(
        operator.or_, map(operator.ne, types[1:], types), map(operator.ne, starts[1:], ends)
    )
    return min(1 + sum(breaks), E820MAX)


def process_memory_map(final: MemoryMap, spec: PathSpec) -> list[E820Range]:
    """The E820 map Xen builds from the final EFI map (see :func:`build_e820`)."""
    return build_e820(final, spec)[0]


def _init_memory(descs: tuple[MemoryDescriptor, ...]) -> tuple[MemoryDescriptor, ...]:
    # Xen 4.16+ xen/common/efi/boot.c efi_init_memory (runtime services enabled): RT code/data
    # lacking EFI_MEMORY_RUNTIME get it ("Setting RUNTIME attribute for ..."); MEM_INFO then
    # reports the new attribute.
    if all(d.attribute & _RUNTIME or d.type not in _RT_TYPES for d in descs):
        return descs
    return tuple(
        d.replace(attribute=d.attribute | _RUNTIME)
        if d.type in _RT_TYPES and not d.attribute & _RUNTIME
        else d
        for d in descs
    )


def _relocate_esrt(
    bs: BootServices, spec: PathSpec, esrt: int | None, log: list[str]
) -> Relocation | None:
    """Xen 4.17+ xen/common/efi/boot.c efi_relocate_esrt (from efi_start since 4.17.0, from
    efi_multiboot2 since 4.17.1/4.18.0). Its messages go to the EFI console (PrintErr)."""
    # GetMemoryMap with no buffer, then AllocatePool(EfiLoaderData, size + 8 descriptors),
    # then GetMemoryMap into it; the buffer is freed at the end.
    mm = bs.get_memory_map()
    try:
        buf = bs.allocate_pool(MemoryType.EfiLoaderData, (len(mm) + 8) * mm.desc_size)
    except OutOfResources:
        log.append("Cannot allocate memory to relocate ESRT")
        return None
    mm = bs.get_memory_map()
    reloc = None
    # get_esrt_size is 0 for every descriptor not holding the ESRT: walk just those, in order.
    holding = []
    if esrt is not None:
        holding = [d for d in mm.descriptors if 0 <= esrt - d.phys_addr < d.num_pages << PAGE_SHIFT]
    for d in holding:  # the first descriptor get_esrt_size accepts
        size = get_esrt_size(spec, bs.memory, esrt, d)
        if not size:
            continue
        if d.type in (MemoryType.EfiRuntimeServicesData, MemoryType.EfiACPIReclaimMemory):
            break  # "ESRT already safe from reuse"
        assert esrt is not None
        # dc7da0874b (pre-release) copied into RT data; 11560248ff (4.17.0) into ACPI reclaim.
        target = (
            MemoryType.EfiRuntimeServicesData
            if spec.prerelease_rt_data
            else MemoryType.EfiACPIReclaimMemory
        )
        before = _bytes_of(bs, target)
        try:
            new = bs.allocate_pool(target, size)
        except OutOfResources:
            log.append("Cannot allocate memory for ESRT")
            break
        _memcpy(bs.memory, new, esrt, size)
        bs.install_configuration_table(ESRT_GUID, new)
        hdr = bs.memory.read(esrt, ESRT_HEADER_SIZE)
        full = EsrtHeader.unpack(hdr).size if hdr is not None else size
        reloc = Relocation(ESRT_GUID, esrt, new, size, full, target, _bytes_of(bs, target) - before)
        break
    bs.free_pool(buf)
    return reloc


RELOCATE_MAX_BYTES = 1 << 24  # relocate-known copies no table larger than 16 MiB


def _relocate_known(bs: BootServices, log: list[str]) -> list[Relocation]:
    """relocate-known proposal: before ExitBootServices, copy every table in boot-services or
    loader memory whose GUID has a size rule into EfiACPIReclaimMemory and re-install it (the
    ESRT is left to efi_relocate_esrt with the size fix)."""
    out = []
    reclaim = MemoryType.EfiACPIReclaimMemory
    for t in bs.config_tables():
        if t.guid == ESRT_GUID:
            continue
        d = _descriptor_at(bs, t.table)
        if d is None or d.type not in BS_TYPES | LOADER_TYPES:
            continue
        res = known_tables.table_size(t.guid, bs.memory.read, t.table, d.end - t.table)
        if res.size is None or res.size <= 0:
            continue
        if res.claimed is not None or res.size > RELOCATE_MAX_BYTES:
            # Our proposal: a claim beyond the table's own descriptor (or absurdly large) is
            # not trusted; copying it would read other memory and cost what the field says.
            claim = res.claimed if res.claimed is not None else res.size
            log.append(f"Table {t.guid} claims {claim} bytes, more than it can hold: not copied")
            continue
        before = _bytes_of(bs, reclaim)
        try:
            new = bs.allocate_pool(reclaim, res.size)
        except OutOfResources:
            log.append(f"Cannot allocate memory for table {t.guid}")
            continue
        _memcpy(bs.memory, new, t.table, res.size)
        bs.install_configuration_table(t.guid, new)
        cost = _bytes_of(bs, reclaim) - before
        out.append(Relocation(t.guid, t.table, new, res.size, res.size, reclaim, cost))
    return out


def _memcpy(memory: PhysicalMemory, dst: int, src: int, n: int) -> None:
    """memcpy; where the evidence lacks some source bytes, the known ones are still copied (in
    4-byte pieces, the width of the ESRT's fields) and the others stay unknown."""
    data = memory.read(src, n)
    if data is not None:
        memory.write(dst, data)
        return
    for off in range(0, n, 4):
        piece = memory.read(src + off, min(4, n - off))
        if piece is not None:
            memory.write(dst + off, piece)


def _descriptor_at(bs: BootServices, addr: int) -> MemoryDescriptor | None:
    descs = bs.descriptors
    i = bisect.bisect_right(descs, addr, key=lambda d: d.phys_addr) - 1
    if i >= 0 and descs[i].contains(addr):
        return descs[i]
    return None


def _bytes_of(bs: BootServices, mtype: int) -> int:
    return sum(d.num_pages << PAGE_SHIFT for d in bs.descriptors if d.type == mtype)


def _vendor(memory: PhysicalMemory, addr: int) -> str | None:
    if not addr:
        return None
    raw = memory.read(addr, 512)
    if raw is None:
        return None
    return read_ucs2(raw, 0)
