"""The Xen hypervisor between firmware and dom0, by version and boot mode.

Sources (xen-project/xen): xen/common/efi/boot.c ``efi_tables``, ``get_esrt_size``,
``efi_relocate_esrt``, ``efi_exit_boot`` (4.16.x, 4.17.0 dc7da0874b + d7669c1014, 4.17.1
1dcc9b6dfe, 3ea44aa78c of 2026); xen/arch/x86/efi/efi-boot.h ``efi_arch_process_memory_map``
(E820 conversion, ``map_bs`` from ``-mapbs``); xen/common/efi/runtime.c ``efi_get_info``
(XEN_FW_EFI_INFO sub-commands).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from efihandoff.e820 import E820Range, E820Type, merge
from efihandoff.machine import PhysicalMemory
from efihandoff.paths.firmware import BootServices, OutOfResources
from efihandoff.paths.presets import BootMode, PathSpec, Policy
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_ENTRY_SIZE, ESRT_GUID, ESRT_HEADER_SIZE, EsrtHeader
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import (
    PAGE_SHIFT,
    PAGE_SIZE,
    U64_MAX,
    MemoryAttribute,
    MemoryDescriptor,
    MemoryMap,
    MemoryType,
)
from efihandoff.uefi.systab import read_ucs2

ESRCH = 3
ENOSYS = 38
EINVAL = 22
EOPNOTSUPP = 95

BS_TYPES = frozenset({MemoryType.EfiBootServicesCode, MemoryType.EfiBootServicesData})
LOADER_TYPES = frozenset({MemoryType.EfiLoaderCode, MemoryType.EfiLoaderData})
# Types whose pages Xen hands to its allocator (efi_arch_process_memory_map: E820_RAM).
_RAM_TYPES = BS_TYPES | LOADER_TYPES | {MemoryType.EfiConventionalMemory}


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

    # -- XEN_FW_EFI_INFO --------------------------------------------------------------------

    def firmware_info(self, index: int) -> tuple[int, object]:
        """XENPF_firmware_info(XEN_FW_EFI_INFO, index) for the argument-free sub-commands:
        (rc, value); rc is 0 or a negative errno (xen/common/efi/runtime.c efi_get_info)."""
        if index == XenFwEfiInfo.VERSION:
            return 0, self.revision
        if index == XenFwEfiInfo.CONFIG_TABLE:
            return 0, (self.config_table_address, self.nr_tables)
        if index == XenFwEfiInfo.VENDOR:
            return (0, self.vendor) if self.vendor is not None else (-EOPNOTSUPP, None)
        if index in (XenFwEfiInfo.RT_VERSION, XenFwEfiInfo.PCI_ROM, XenFwEfiInfo.APPLE_PROPERTIES):
            return -EOPNOTSUPP, None
        return -EINVAL, None

    def mem_info(self, addr: int, size: int) -> tuple[int, MemInfo | None]:
        """XEN_FW_EFI_MEM_INFO: the first descriptor of Xen's map holding ``addr``; ``addr``
        comes back unchanged, ``size`` clipped to the descriptor end; -ESRCH when none
        (xen/common/efi/runtime.c efi_get_info; no bogus-entry skipping there)."""
        for d in self.efi_memmap:
            length = (d.num_pages << PAGE_SHIFT) & U64_MAX
            if d.phys_addr <= addr < d.phys_addr + length:
                end = d.phys_addr + length
                if addr + size > U64_MAX or addr + size > end:
                    size = end - addr
                return 0, MemInfo(addr, size, d.attribute, d.type)
        return -ESRCH, None

    @property
    def reclaimed_bytes(self) -> int:
        return sum(e - s for s, e in self.reclaimed)


def get_esrt_size(spec: PathSpec, memory: PhysicalMemory, esrt: int | None, d: MemoryDescriptor) -> int:
    """Xen 4.17+ boot.c get_esrt_size: 0 unless the ESRT starts in ``d`` (BS data, RT data or
    ACPI reclaim), has version 1 and a count whose entries fit before the descriptor end.
    Returns count * 40 before 3ea44aa78c (the header forgotten), 16 + 40 * count after."""
    if esrt is None:
        return 0
    end = d.phys_addr + (d.num_pages << PAGE_SHIFT)
    if not d.phys_addr <= esrt < end:
        return 0
    if d.type not in (
        MemoryType.EfiBootServicesData,
        MemoryType.EfiRuntimeServicesData,
        MemoryType.EfiACPIReclaimMemory,  # d7669c1014: "will contain the tables after kexec"
    ):
        return 0
    available = end - esrt
    if available <= ESRT_HEADER_SIZE:
        return 0
    raw = memory.read(esrt, ESRT_HEADER_SIZE)
    if raw is None:
        return 0
    hdr = EsrtHeader.unpack(raw)
    if hdr.fw_resource_version != 1 or hdr.fw_resource_count == 0:
        return 0
    if hdr.fw_resource_count > (available - ESRT_HEADER_SIZE) // ESRT_ENTRY_SIZE:
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
    # efi_init(): efi_ct / efi_num_ct captured once from the system table.
    ct_addr, ct_n = st.tables, st.nr_tables
    vendor = _vendor(bs.memory, st.fw_vendor)
    # efi_tables(): ACPI, SMBIOS, MPS always; the ESRT since 4.17.0.
    esrt = None
    if spec.xen_knows_esrt:
        esrt = next((t.table for t in bs.config_tables() if t.guid == ESRT_GUID), None)
    relocations: list[Relocation] = []
    if spec.policy is Policy.RELOCATE_KNOWN:
        relocations += _relocate_known(bs, log)
    if spec.xen_relocates_esrt:
        r = _relocate_esrt(bs, spec, esrt, log)
        if r is not None:
            relocations.append(r)
    # efi_exit_boot(): the map re-read after relocation, so the new pool pages are in it.
    final = bs.exit_boot_services()
    efi_memmap = MemoryMap(_init_memory(final.descriptors), final.desc_size, final.desc_version)
    e820 = process_memory_map(final, spec)
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
    for d in final:
        if d.is_bogus or d.type not in BS_TYPES | LOADER_TYPES or e820_type(d, spec) != E820Type.RAM:
            continue
        span = (d.phys_addr, d.end)
        if spec.policy is Policy.RESERVE_HYPERCALL and d.type in BS_TYPES:
            result.deferred.append(span)
        else:
            result.reclaimed.append(span)
            bs.memory.scrub(*span, spec.scrub)
    return result


def release_deferred(xb: XenBoot, reserved: list[tuple[int, int]]) -> None:
    """reserve-hypercall proposal: dom0 says it is done; Xen reclaims the held BS ranges except
    what dom0 reserved."""
    assert xb.memory is not None
    for s, e in xb.deferred:
        for a, b in _subtract((s, e), reserved):
            xb.reclaimed.append((a, b))
            xb.memory.scrub(a, b, xb.spec.scrub)
    xb.deferred = []


def e820_type(d: MemoryDescriptor, spec: PathSpec) -> E820Type:
    """xen/arch/x86/efi/efi-boot.h efi_arch_process_memory_map: the E820 type of one descriptor."""
    t = d.type
    if t in BS_TYPES and spec.mapbs:
        return E820Type.RESERVED
    if t in _RAM_TYPES:
        if d.attribute & MemoryAttribute.RUNTIME and spec.xen_runtime_attr_reserved:
            return E820Type.RESERVED  # f324300c83 (4.17.0) / 54f8ed80c8 (4.16.3)
        if d.attribute & MemoryAttribute.WB:  # BS types fall through to the Conventional case
            return E820Type.RAM
        return E820Type.UNUSABLE
    if t == MemoryType.EfiUnusableMemory:
        return E820Type.UNUSABLE
    if t == MemoryType.EfiACPIReclaimMemory:
        return E820Type.ACPI
    if t == MemoryType.EfiACPIMemoryNVS:
        return E820Type.NVS
    return E820Type.RESERVED


def process_memory_map(final: MemoryMap, spec: PathSpec) -> list[E820Range]:
    """The E820 map Xen builds from the final EFI map, neighbours of one type merged."""
    return merge([E820Range(d.phys_addr, d.end, e820_type(d, spec)) for d in final if not d.is_bogus])


def _init_memory(descs: tuple[MemoryDescriptor, ...]) -> tuple[MemoryDescriptor, ...]:
    # xen/common/efi/boot.c efi_init_memory: RT code/data lacking EFI_MEMORY_RUNTIME get it
    # ("Setting RUNTIME attribute for ..."), which MEM_INFO then reports.
    rt = (MemoryType.EfiRuntimeServicesCode, MemoryType.EfiRuntimeServicesData)
    return tuple(
        d.replace(attribute=d.attribute | MemoryAttribute.RUNTIME) if d.type in rt else d for d in descs
    )


def _relocate_esrt(bs: BootServices, spec: PathSpec, esrt: int | None, log: list[str]) -> Relocation | None:
    """xen/common/efi/boot.c efi_relocate_esrt (4.17.0 efi_start; 4.17.1+ also multiboot2)."""
    mm = bs.get_memory_map()
    # The map buffer: AllocatePool(EfiLoaderData, size + 8 descriptors), freed at the end.
    try:
        buf = bs.allocate_pool(MemoryType.EfiLoaderData, (len(mm) + 8) * mm.desc_size)
    except OutOfResources:
        log.append("(XEN) EFI: Cannot allocate memory to relocate ESRT")
        return None
    mm = bs.get_memory_map()
    reloc = None
    for d in mm:
        size = get_esrt_size(spec, bs.memory, esrt, d)
        if not size:
            continue
        if d.type in (MemoryType.EfiRuntimeServicesData, MemoryType.EfiACPIReclaimMemory):
            break  # already safe; also avoids a leak on repeated kexec
        assert esrt is not None
        target = MemoryType.EfiRuntimeServicesData if spec.prerelease_rt_data else MemoryType.EfiACPIReclaimMemory
        before = _bytes_of(bs, target)
        try:
            new = bs.allocate_pool(target, size)
        except OutOfResources:
            log.append("(XEN) EFI: Cannot allocate memory for ESRT")
            break
        data = bs.memory.read(esrt, size)
        if data is not None:
            bs.memory.write(new, data)
        bs.install_configuration_table(ESRT_GUID, new)
        hdr = bs.memory.read(esrt, ESRT_HEADER_SIZE)
        full = EsrtHeader.unpack(hdr).size if hdr is not None else size
        reloc = Relocation(ESRT_GUID, esrt, new, size, full, target, _bytes_of(bs, target) - before)
        break
    bs.free_pool(buf)
    return reloc


def _relocate_known(bs: BootServices, log: list[str]) -> list[Relocation]:
    """relocate-known proposal: before ExitBootServices, copy every table in reclaimable memory
    whose GUID has a size rule into EfiACPIReclaimMemory and re-install it."""
    out = []
    for t in bs.config_tables():
        if t.guid == ESRT_GUID:
            continue  # efi_relocate_esrt (with the size fix) handles it
        d = next((x for x in bs.descriptors if x.contains(t.table)), None)
        if d is None or d.type not in BS_TYPES | LOADER_TYPES:
            continue
        res = known_tables.table_size(t.guid, bs.memory.read, t.table, d.end - t.table)
        if res.size is None or res.size <= 0:
            continue
        before = _bytes_of(bs, MemoryType.EfiACPIReclaimMemory)
        try:
            new = bs.allocate_pool(MemoryType.EfiACPIReclaimMemory, res.size)
        except OutOfResources:
            log.append(f"(XEN) EFI: Cannot allocate memory for table {t.guid}")
            continue
        data = bs.memory.read(t.table, res.size)
        if data is not None:
            bs.memory.write(new, data)
        bs.install_configuration_table(t.guid, new)
        after = _bytes_of(bs, MemoryType.EfiACPIReclaimMemory)
        out.append(Relocation(t.guid, t.table, new, res.size, res.size, MemoryType.EfiACPIReclaimMemory, after - before))
    return out


def _bytes_of(bs: BootServices, mtype: int) -> int:
    return sum(d.size for d in bs.descriptors if d.type == mtype)


def _vendor(memory: PhysicalMemory, addr: int) -> str | None:
    if not addr:
        return None
    raw = memory.read(addr, 512)
    if raw is None:
        return None
    return read_ucs2(raw, 0)


def _subtract(span: tuple[int, int], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    parts = [span]
    for hs, he in holes:
        hs &= ~(PAGE_SIZE - 1)
        he = (he + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        nxt = []
        for s, e in parts:
            if he <= s or e <= hs:
                nxt.append((s, e))
                continue
            if s < hs:
                nxt.append((s, hs))
            if he < e:
                nxt.append((he, e))
        parts = nxt
    return parts
