"""The Linux kernel's side: config-table parsing, the ESRT, reservations and sysfs.

Sources (torvalds/linux): drivers/firmware/efi/efi.c ``efi_config_parse_tables``,
``match_config_table``, ``efi_mem_reserve``, ``__efi_mem_desc_lookup``; drivers/firmware/efi/esrt.c
``efi_esrt_init``, ``esrt_sysfs_init``, ``esre_*_show``; arch/x86/platform/efi/quirks.c
``efi_arch_mem_reserve``, ``efi_reserve_boot_services``, ``efi_free_boot_services``;
drivers/xen/efi.c ``xen_efi_mem_desc_lookup`` (6.3, aca1d27ac38a) and
``xen_efi_config_table_is_usable`` (6.3, c0fecaa44dc3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from efihandoff.e820 import E820Range, E820Type, update
from efihandoff.machine import PhysicalMemory
from efihandoff.paths.presets import PathSpec, Policy
from efihandoff.paths.xen import BS_TYPES, XenBoot
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import (
    ESRT_ENTRY_SIZE,
    ESRT_GUID,
    ESRT_HEADER_SIZE,
    LINUX_MAX_ENTRIES,
    EsrtEntry,
    EsrtHeader,
)
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
from efihandoff.uefi.systab import ConfigurationTable, TableHeader, linux_report_header

# drivers/xen/efi.c xen_efi_config_table_is_usable (6.3): the types a dom0 accepts.
XEN_USABLE_TYPES = frozenset(
    {
        MemoryType.EfiRuntimeServicesCode,
        MemoryType.EfiRuntimeServicesData,
        MemoryType.EfiACPIReclaimMemory,
        MemoryType.EfiACPIMemoryNVS,
        MemoryType.EfiReservedMemoryType,
    }
)
# efi_esrt_init: types accepted without EFI_MEMORY_RUNTIME; 6.3 01de145dc7fb added ACPI ones.
ESRT_TYPES_63 = frozenset(
    {
        MemoryType.EfiBootServicesData,
        MemoryType.EfiRuntimeServicesData,
        MemoryType.EfiACPIReclaimMemory,
        MemoryType.EfiACPIMemoryNVS,
    }
)
ESRT_TYPES_61 = frozenset({MemoryType.EfiBootServicesData, MemoryType.EfiRuntimeServicesData})
# Parsers that memblock_reserve their table at boot (efi_tpm_eventlog_init, efi_memattr_init,
# the MEMRESERVE walk in efi_config_parse_tables) or efi_mem_reserve it (efi_mokvar_table_init).
_RESERVING = frozenset({"TPMEventLog", "TPMFinalLog", "MEMATTR", "MEMRESERVE", "MOKvar", "CCFinalLog"})
# Consumed while parsing and not needed afterwards (the RNG seed is wiped after use).
EARLY_CONSUMED = frozenset({"RNG", "INITRD"})


@dataclass
class TableUse:
    """What Linux did with one configuration-table entry."""

    guid: Guid
    address: int
    known: known_tables.KnownTable | None
    recorded: bool = False  # efi.<table> set
    refused: str | None = None  # why Linux does not use it
    parse_bytes: bytes | None = None  # what the parser saw (early consumers)


@dataclass
class LinuxBoot:
    """What the kernel did and exposes."""

    spec: PathSpec
    log: list[str] = field(default_factory=list)
    uses: list[TableUse] = field(default_factory=list)
    esrt_data: int | None = None
    esrt_data_size: int = 0
    esrt_refused: str | None = None
    memmap: MemoryMap | None = None  # native: after efi_arch_mem_reserve
    e820: list[E820Range] | None = None
    reserved: list[tuple[int, int]] = field(default_factory=list)  # memblock / efi_mem_reserve
    kept_bs: list[tuple[int, int]] = field(default_factory=list)  # BS ranges never freed
    freed: list[tuple[int, int]] = field(default_factory=list)  # efi_free_boot_services
    sysfs: dict[str, str | None] | None = None  # relative to /sys/firmware; None marks a dir
    esrt_bytes: bytes | None = None  # what esrt_sysfs_init mapped


class _Lookup:
    """efi_mem_desc_lookup as the kernel of this path has it."""

    def __init__(self, spec: PathSpec, memmap: MemoryMap | None, xen: XenBoot | None) -> None:
        self.spec = spec
        self.memmap = memmap
        self.xen = xen

    def __call__(self, addr: int, log: list[str]) -> tuple[int, MemoryDescriptor | None]:
        if self.xen is not None and self.memmap is None:
            if not self.spec.linux_xen_esrt:
                return -22, None  # pr_err_once "EFI_MEMMAP is not enabled."
            return _xen_lookup(self.xen, addr, log)
        if self.memmap is None:
            return -22, None
        md = self.memmap.lookup(addr) if self.spec.linux_skips_bogus else self.memmap.lookup_pre63(addr)
        return (0, md) if md is not None else (-2, None)


def _xen_lookup(xen: XenBoot, addr: int, log: list[str]) -> tuple[int, MemoryDescriptor]:
    """drivers/xen/efi.c efi_mem_desc_lookup (6.3): MEM_INFO from the page-rounded address; on
    failure a warning, yet 0 returned with the descriptor built from the initialised op."""
    page = addr & ~(PAGE_SIZE - 1)
    rc, info = xen.mem_info(page, U64_MAX - page)
    if rc != 0 or info is None:
        log.append(f"Failed to lookup header {addr:#x} in Xen memory map: error {rc}")
        return 0, MemoryDescriptor(
            MemoryType.EfiReservedMemoryType, page, (U64_MAX - page) >> PAGE_SHIFT, 0
        )
    return 0, MemoryDescriptor(info.type, info.addr, info.size >> PAGE_SHIFT, info.attr)


def boot(
    spec: PathSpec,
    memory: PhysicalMemory,
    config_tables: tuple[ConfigurationTable, ...],
    header: TableHeader | None,
    vendor: str | None,
    *,
    memmap: MemoryMap | None,
    e820: list[E820Range] | None,
    xen: XenBoot | None,
) -> LinuxBoot:
    """Boot the kernel of ``spec`` on what firmware (native: ``memmap``) or Xen left."""
    lb = LinuxBoot(spec=spec, memmap=memmap, e820=e820)
    paravirt = xen is not None
    efi_memmap = memmap if not paravirt else None  # PV dom0 never sets EFI_MEMMAP
    lookup = _Lookup(spec, efi_memmap, xen)
    if header is not None:
        lb.log.append(linux_report_header(header, vendor))
    _parse_tables(lb, spec, memory, config_tables, lookup, paravirt, efi_memmap)
    _esrt_init(lb, spec, memory, lookup, paravirt, efi_memmap)
    if not paravirt and lb.memmap is not None:
        _reserve_and_free_boot_services(lb, memory)
    if spec.policy is Policy.RESERVE_HYPERCALL and xen is not None:
        from efihandoff.paths.xen import release_deferred

        release_deferred(xen, lb.reserved)
    _esrt_sysfs_init(lb, memory)
    return lb


def _parse_tables(
    lb: LinuxBoot,
    spec: PathSpec,
    memory: PhysicalMemory,
    config_tables: tuple[ConfigurationTable, ...],
    lookup: _Lookup,
    paravirt: bool,
    efi_memmap: MemoryMap | None,
) -> None:
    """efi_config_parse_tables + match_config_table: one ``efi:`` line; under Xen (6.3+) the
    allowlist prints ``(NAME=0x... unusable)`` and leaves the table unrecorded."""
    tokens: list[str] = []
    for ct in config_tables:
        kt = known_tables.known(ct.guid)
        use = TableUse(ct.guid, ct.table, kt)
        lb.uses.append(use)
        if kt is None or not kt.linux_parses:
            continue
        label = kt.linux_label or ""
        if paravirt and spec.linux_xen_esrt and not _xen_usable(spec, lookup, ct.table, lb.log):
            if label:
                tokens.append(f"({label}={ct.table:#x} unusable)")
            use.refused = (
                f"Linux {_v(spec.linux)} xen_efi_config_table_is_usable: its memory type is not "
                "one a dom0 may trust"
            )
            continue
        use.recorded = True
        if label:
            tokens.append(f"{label}={ct.table:#x}")
        if kt.needs_efi_memmap and efi_memmap is None:
            use.refused = f"Linux {_v(spec.linux)}: the {kt.name} parser needs EFI_MEMMAP, never set in a Xen PV dom0"
            continue
        if kt.name in EARLY_CONSUMED or kt.name in _RESERVING:
            size = known_tables.table_size(ct.guid, memory.read, ct.table, None).size
            if size is not None and 0 < size <= 1 << 24:
                use.parse_bytes = memory.read(ct.table, size)
                if kt.name in _RESERVING and not paravirt:
                    lb.reserved.append((ct.table, ct.table + size))
    if tokens or config_tables:
        lb.log.append("efi: " + " ".join(tokens))
    # Later entries of a GUID overwrite earlier ones (match_config_table stores each match).
    last: dict[Guid, TableUse] = {}
    for use in lb.uses:
        if use.recorded:
            if use.guid in last:
                last[use.guid].recorded = False
                last[use.guid].refused = "a later entry of the same GUID replaced it"
            last[use.guid] = use


def _xen_usable(spec: PathSpec, lookup: _Lookup, addr: int, log: list[str]) -> bool:
    """drivers/xen/efi.c xen_efi_config_table_is_usable; the reserve-hypercall proposal also
    trusts boot-services data, which Xen then holds until dom0 has reserved what it keeps."""
    rc, md = lookup(addr, log)
    if rc or md is None:
        return False
    if md.type in XEN_USABLE_TYPES:
        return True
    return spec.policy is Policy.RESERVE_HYPERCALL and md.type in BS_TYPES


def _esrt_init(
    lb: LinuxBoot,
    spec: PathSpec,
    memory: PhysicalMemory,
    lookup: _Lookup,
    paravirt: bool,
    efi_memmap: MemoryMap | None,
) -> None:
    """drivers/firmware/efi/esrt.c efi_esrt_init, every check with its message (pr_fmt "esrt: ")."""
    use = next((u for u in reversed(lb.uses) if u.guid == ESRT_GUID and u.recorded), None)
    if spec.linux < (6, 3) and efi_memmap is None:
        lb.esrt_refused = f"Linux {_v(spec.linux)} efi_esrt_init returns without EFI_MEMMAP, never set in a Xen PV dom0"
        return
    if use is None:  # esrt_table_exists() is false
        return
    esrt = use.address
    rc, md = lookup(esrt, lb.log)
    types = ESRT_TYPES_63 if spec.linux >= (6, 3) else ESRT_TYPES_61
    if rc < 0 or md is None or (not md.attribute & MemoryAttribute.RUNTIME and md.type not in types):
        lb.log.append("esrt: ESRT header is not in the memory map.")
        what = "no descriptor covers it" if md is None else f"its type is {md.type_name}"
        lb.esrt_refused = f"efi_esrt_init: ESRT header is not in the memory map ({what})"
        return
    end = md.end
    if spec.linux < (6, 3) and end < esrt:  # removed by ab03e91e60ce
        lb.log.append(f"esrt: EFI memory descriptor is invalid. (esrt: {esrt:#x} max: {end:#x})")
        lb.esrt_refused = "efi_esrt_init: memory descriptor invalid"
        return
    room = end - esrt
    if room < ESRT_HEADER_SIZE:
        lb.log.append(
            f"esrt: ESRT header doesn't fit on single memory map entry. (size: 16 max: {room})"
        )
        lb.esrt_refused = f"efi_esrt_init: only {room} bytes before the descriptor ends"
        return
    raw = memory.read(esrt, ESRT_HEADER_SIZE)
    if raw is None:
        lb.esrt_refused = "the ESRT header bytes are not known"
        return
    hdr = EsrtHeader.unpack(raw)
    if hdr.fw_resource_version != 1:
        lb.log.append(f"esrt: Unsupported ESRT version {_lld(hdr.fw_resource_version)}.")
        lb.esrt_refused = f"efi_esrt_init: fw_resource_version is {hdr.fw_resource_version}, not 1"
        return
    if hdr.fw_resource_count > 0 and room - ESRT_HEADER_SIZE < ESRT_ENTRY_SIZE:
        lb.log.append(
            f"esrt: ESRT memory map entry can only hold the header. (max: {room - 16} size: 40)"
        )
        lb.esrt_refused = "efi_esrt_init: the descriptor holds only the header"
        return
    if hdr.fw_resource_count > LINUX_MAX_ENTRIES:
        lb.log.append(
            f"esrt: ESRT says fw_resource_count has very large value {_d(hdr.fw_resource_count)}."
        )
        lb.esrt_refused = f"efi_esrt_init: fw_resource_count {hdr.fw_resource_count} > 128"
        return
    size = ESRT_HEADER_SIZE + ESRT_ENTRY_SIZE * hdr.fw_resource_count
    if room < size:
        lb.log.append(f"esrt: ESRT does not fit on single memory map entry (size: 16 max: {room})")
        lb.esrt_refused = f"efi_esrt_init: {size} bytes do not fit in the {room} left in the descriptor"
        return
    lb.esrt_data, lb.esrt_data_size = esrt, size
    lb.log.append(f"esrt: Reserving ESRT space from {esrt:#018x} to {esrt + size:#018x}.")
    if md.type == MemoryType.EfiBootServicesData:
        _efi_mem_reserve(lb, spec, esrt, size, paravirt)


def _efi_mem_reserve(lb: LinuxBoot, spec: PathSpec, addr: int, size: int, paravirt: bool) -> None:
    """efi_mem_reserve: WARN under Xen (6.3 fa7bee867db1) unless the reserve-hypercall proposal
    lets dom0 ask Xen; native: memblock_reserve + x86 efi_arch_mem_reserve."""
    if paravirt:
        if spec.policy is Policy.RESERVE_HYPERCALL:
            lb.reserved.append((addr, addr + size))
        elif spec.linux >= (6, 3):
            lb.log.append("WARNING: efi_mem_reserve: does not work under Xen")
        return
    lb.reserved.append((addr, addr + size))
    mm = lb.memmap
    if mm is None:
        return
    md = mm.lookup(addr)
    if md is None or md.type != MemoryType.EfiBootServicesData:
        lb.log.append(f"efi: Failed to lookup EFI memory descriptor for {addr:#018x}")
        return
    if addr + size > md.end:
        lb.log.append(f"efi: Region spans EFI memory descriptors, {addr:#018x}")
        return
    size += addr % PAGE_SIZE
    size = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    start = addr & ~(PAGE_SIZE - 1)
    lb.memmap = mm.insert(start, start + size - 1, int(MemoryAttribute.RUNTIME))
    if lb.e820 is not None:
        lb.e820 = update(lb.e820, start, start + size, E820Type.RAM, E820Type.RESERVED)
        lb.log.append(
            f"e820: update [mem {start:#010x}-{start + size - 1:#010x}] usable ==> reserved"
        )


def _reserve_and_free_boot_services(lb: LinuxBoot, memory: PhysicalMemory) -> None:
    """x86 efi_reserve_boot_services (BS regions holding memblock reservations get RUNTIME and
    stay) then efi_free_boot_services (the rest goes back to the page allocator)."""
    assert lb.memmap is not None
    reserved = sorted(lb.reserved)
    descs = []
    for d in lb.memmap:
        if d.type in BS_TYPES and not d.attribute & MemoryAttribute.RUNTIME and _overlaps(d, reserved):
            d = d.replace(attribute=d.attribute | MemoryAttribute.RUNTIME)
        descs.append(d)
    lb.memmap = MemoryMap(tuple(descs), lb.memmap.desc_size, lb.memmap.desc_version)
    for d in lb.memmap:
        if d.type not in BS_TYPES or d.is_bogus:
            continue
        if d.attribute & MemoryAttribute.RUNTIME:
            lb.kept_bs.append((d.phys_addr, d.end))
        else:
            lb.freed.append((d.phys_addr, d.end))
            memory.scrub(d.phys_addr, d.end, lb.spec.scrub)


def _overlaps(d: MemoryDescriptor, ranges: list[tuple[int, int]]) -> bool:
    return any(s < d.end and d.phys_addr < e for s, e in ranges)


def _esrt_sysfs_init(lb: LinuxBoot, memory: PhysicalMemory) -> None:
    """esrt_sysfs_init (device_initcall, after boot services memory is freed): memremap the
    recorded range and publish /sys/firmware/efi/esrt."""
    if not lb.esrt_data or not lb.esrt_data_size:
        return
    raw = memory.read(lb.esrt_data, lb.esrt_data_size)
    lb.esrt_bytes = raw
    if raw is None:
        return
    lb.sysfs = esrt_tree(raw)


def esrt_tree(raw: bytes) -> dict[str, str | None]:
    """The files Linux creates under /sys/firmware for an ESRT whose mapped bytes are ``raw``:
    ``%u``/``%llu`` decimals, ``0x%x`` capsule flags, ``%pUl`` GUIDs, each with a newline."""
    hdr = EsrtHeader.unpack(raw)
    tree: dict[str, str | None] = {
        "efi/esrt": None,
        "efi/esrt/fw_resource_count": f"{hdr.fw_resource_count}\n",
        "efi/esrt/fw_resource_count_max": f"{hdr.fw_resource_count_max}\n",
        "efi/esrt/fw_resource_version": f"{hdr.fw_resource_version}\n",
        "efi/esrt/entries": None,
    }
    if hdr.fw_resource_version != 1:
        return tree  # register_entries: "Unsupported ESRT version"
    for i in range(hdr.fw_resource_count):
        off = ESRT_HEADER_SIZE + i * ESRT_ENTRY_SIZE
        if off + ESRT_ENTRY_SIZE > len(raw):
            break
        e = EsrtEntry.unpack(raw, off)
        base = f"efi/esrt/entries/entry{i}"
        tree[base] = None
        tree[f"{base}/fw_class"] = f"{e.fw_class}\n"
        tree[f"{base}/fw_type"] = f"{e.fw_type}\n"
        tree[f"{base}/fw_version"] = f"{e.fw_version}\n"
        tree[f"{base}/lowest_supported_fw_version"] = f"{e.lowest_supported_fw_version}\n"
        tree[f"{base}/capsule_flags"] = f"{e.capsule_flags:#x}\n"  # "0x%x": 0 prints as 0x0
        tree[f"{base}/last_attempt_version"] = f"{e.last_attempt_version}\n"
        tree[f"{base}/last_attempt_status"] = f"{e.last_attempt_status}\n"
    return tree


def _v(v: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in v)


def _lld(v: int) -> int:
    """A u64 printed with %lld."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _d(v: int) -> int:
    """A u32 printed with %d."""
    return v - (1 << 32) if v >= 1 << 31 else v
