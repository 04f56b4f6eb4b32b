"""The Linux kernel's side: config-table parsing, the ESRT, reservations and sysfs.

Sources (torvalds/linux, 6.1 and 6.3+ as the facts file and the code read say):
drivers/firmware/efi/efi.c ``efi_config_parse_tables``, ``match_config_table``,
``efi_mem_reserve``, ``__efi_mem_desc_lookup``; drivers/firmware/efi/esrt.c ``efi_esrt_init``,
``esrt_sysfs_init``, ``register_entries``, ``esre_*_show``; memattr.c ``efi_memattr_init``;
tpm.c ``efi_tpm_eventlog_init``; mokvar-table.c ``efi_mokvar_table_init``;
arch/x86/platform/efi/quirks.c ``efi_arch_mem_reserve``, ``efi_reserve_boot_services``,
``can_free_region``, ``efi_free_boot_services``; arch/x86/kernel/setup.c
``early_reserve_memory``, ``trim_bios_range``; drivers/xen/efi.c ``efi_mem_desc_lookup``
(6.3, aca1d27ac38a) and ``xen_efi_config_table_is_usable`` (6.3, c0fecaa44dc3).

The log holds the lines of the EFI handoff only, in the order the kernel prints them.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

from efihandoff.e820 import E820Range, E820Type
from efihandoff.intervals import SpanSet
from efihandoff.machine import PhysicalMemory
from efihandoff.paths.presets import PathSpec, Policy
from efihandoff.paths.xen import BS_TYPES, XenBoot, release_deferred
from efihandoff.rules import tables as known_tables
from efihandoff.rules.linux import (
    LINUX_MAX_ENTRIES,
    XEN_USABLE_TYPES,
    EsrtCheck,
    esrt_count_too_large,
    esrt_fits,
    esrt_header_fits,
    esrt_only_header,
    esrt_type_accepted,
    esrt_version_supported,
)
from efihandoff.rules.version import format_version
from efihandoff.uefi.esrt import (
    ESRT_ENTRY_SIZE,
    ESRT_GUID,
    ESRT_HEADER_SIZE,
    EsrtEntry,
    EsrtHeader,
    esrt_size,
)
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
    carve,
)
from efihandoff.uefi.systab import ConfigurationTable, TableHeader, linux_report_header

EINVAL = 22
ENOENT = 2
SZ_1M = 1 << 20
# Linux 6.x arch/x86/kernel/setup.c early_reserve_memory: memblock_reserve(0, SZ_64K); and
# reserve_bios_regions: [BIOS_START_MAX, 1 MiB) when the BDA gives nothing better.
LOW_RESERVED = ((0, 0x10000), (0x9F000, SZ_1M))
# arch/x86/kernel/setup.c trim_bios_range: page 0 reserved, the ISA hole taken out of RAM.
_TRIMMED = ((0, PAGE_SIZE), (0xA0000, SZ_1M))

# The types a dom0 accepts (XEN_USABLE_TYPES), efi_esrt_init's types and checks (EsrtCheck) are
# Linux's rules, in efihandoff.rules.linux.
# Parsers that keep their table out of the allocator on bare metal: memblock_reserve in
# efi_memattr_init (version <= 2, EFI_MEMMAP only), efi_tpm_eventlog_init (the log; the final
# log only next to a TCG2-format log), the MEMRESERVE walk and reserve_unaccepted in
# efi_config_parse_tables; efi_mem_reserve in efi_mokvar_table_init (BS data only, EFI_MEMMAP).
MEMBLOCK_RESERVING = frozenset(
    {"TPMEventLog", "TPMFinalLog", "CCFinalLog", "MEMATTR", "MEMRESERVE", "MOKvar", "Unaccepted"}
)
# Consumed while parsing and not needed afterwards (the RNG seed is wiped after use).
EARLY_CONSUMED = frozenset({"RNG", "INITRD"})
_BS = frozenset(int(t) for t in BS_TYPES)
_BS_DATA = int(MemoryType.EfiBootServicesData)
_RUNTIME = int(MemoryAttribute.RUNTIME)
_TCG2_FORMAT = 2  # EFI_TCG2_EVENT_LOG_FORMAT_TCG_2


@dataclass(frozen=True)
class EsrtRefusal:
    """Why efi_esrt_init did not take the ESRT: the check, and the sentence for a person."""

    check: EsrtCheck
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class TableUse:
    """What Linux did with one configuration-table entry."""

    guid: Guid
    address: int
    known: known_tables.KnownTable | None
    recorded: bool = False  # efi.<table> set
    refused: str | None = None  # why Linux does not use it
    unusable: bool = False  # refused by the Xen allowlist: printed "(NAME=0x... unusable)"
    parse_bytes: bytes | None = None  # what the parser saw (early consumers)


@dataclass
class LinuxBoot:
    """What the kernel did and exposes."""

    spec: PathSpec
    log: list[str] = field(default_factory=list)
    uses: list[TableUse] = field(default_factory=list)
    esrt_data: int | None = None
    esrt_data_size: int = 0
    esrt_refused: EsrtRefusal | None = None
    memmap: MemoryMap | None = None  # native: after efi_mem_reserve and efi_free_boot_services
    e820: list[E820Range] | None = None
    # Native: memblock reservations; under the reserve-hypercall proposal: what dom0 asked Xen
    # to keep.
    reserved: list[tuple[int, int]] = field(default_factory=list)
    kept_bs: list[tuple[int, int]] = field(default_factory=list)  # BS ranges tagged RUNTIME
    freed: list[tuple[int, int]] = field(default_factory=list)  # efi_free_boot_services
    sysfs: dict[str, str | None] | None = None  # relative to /sys/firmware; None marks a dir
    esrt_bytes: bytes | None = None  # what esrt_sysfs_init mapped
    esrt_sysfs: bool = False  # /sys/firmware/efi/esrt exists (its files unknown without bytes)
    assumed_valid: set[Guid] = field(default_factory=set)  # reserved without bytes to check
    mem_reserved: list[tuple[int, int]] = field(default_factory=list)  # efi_mem_reserve calls


class _Lookup:
    """efi_mem_desc_lookup as the kernel of this path has it."""

    def __init__(self, spec: PathSpec, lb: LinuxBoot, xen: XenBoot | None) -> None:
        self.spec = spec
        self.lb = lb
        self.xen = xen
        self._index: tuple[MemoryMap, FirstMatch] | None = None

    def __call__(self, addr: int, log: list[str]) -> tuple[int, MemoryDescriptor | None]:
        if self.xen is not None:
            if not self.spec.linux_xen_esrt:
                return -EINVAL, None  # pr_err_once "EFI_MEMMAP is not enabled."
            return _xen_lookup(self.xen, addr, log)
        mm = self.lb.memmap
        if mm is None:
            return -EINVAL, None
        # 6.3 ab03e91e60ce __efi_mem_desc_lookup: first match, bogus entries skipped; 6.1
        # efi_mem_desc_lookup: first match in u64 arithmetic, nothing skipped.
        if self._index is None or self._index[0] is not mm:
            self._index = (mm, FirstMatch(mm.descriptors, skip_bogus=self.spec.linux_skips_bogus))
        i = self._index[1].find(addr)
        md = None if i is None else mm.descriptors[i]
        return (0, md) if md is not None else (-ENOENT, None)


def _xen_lookup(xen: XenBoot, addr: int, log: list[str]) -> tuple[int, MemoryDescriptor]:
    """drivers/xen/efi.c efi_mem_desc_lookup (6.3): MEM_INFO from the page-rounded address
    with size U64_MAX - addr; on failure a warning, yet 0 is returned with the descriptor built
    from the initialised op (type 0 = EfiReservedMemoryType, attribute 0)."""
    page = addr & ~(PAGE_SIZE - 1)
    rc, info = xen.mem_info(page, U64_MAX - page)
    if rc != 0 or info is None:
        log.append(f"Failed to lookup header {page:#x} in Xen memory map: error {rc}")
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
    """Boot the kernel of ``spec`` on what firmware (native: ``memmap``, ``e820``) or Xen
    left, in setup_arch's order: config tables, ESRT, MOKvar, boot-services memory, sysfs."""
    paravirt = xen is not None
    # A Xen PV dom0 never sets EFI_MEMMAP (efi_memblock_x86_reserve_range returns early).
    lb = LinuxBoot(spec=spec, memmap=None if paravirt else memmap, e820=e820)
    lookup = _Lookup(spec, lb, xen)
    if not paravirt:
        lb.reserved += LOW_RESERVED
        if lb.e820 is not None:
            for s, e in _TRIMMED:
                lb.e820 = e820_update(lb.e820, s, e, E820Type.RAM, E820Type.RESERVED)
    if header is not None:
        lb.log.append(_report_header(spec, header, vendor))
    _parse_tables(lb, spec, memory, config_tables, lookup, paravirt)
    _esrt_init(lb, spec, memory, lookup, paravirt)
    if not paravirt and lb.memmap is not None:
        _mokvar_init(lb, spec, memory, lookup)
        _reserve_boot_services(lb)
        _free_boot_services(lb, memory)
    if spec.policy is Policy.RESERVE_HYPERCALL and xen is not None:
        release_deferred(xen, lb.reserved)
    _esrt_sysfs_init(lb, memory)
    return lb


# Where Xen puts a PV dom0 kernel in the dom0's pseudo-physical space: the ELF image's paddr
# range (Xen prints "Dom0 kernel: ... paddr 0x1000000 -> 0x4a00000"), _text at
# CONFIG_PHYSICAL_START (0x1000000, x86-64's default and Debian's). The end by kernel version
# is what Debian's 6.1.0-57 and 6.12.118 images gave on the real bench; for any other version
# the model knows only the first CONFIG_PHYSICAL_ALIGN (2 MiB) from _text, which every x86-64
# image covers. A path's ``dom0_kernel=START-END`` replaces it.
DOM0_KERNEL_START = 0x1000000
DOM0_KERNEL_END: dict[tuple[int, ...], int] = {(6, 1): 0x4A00000, (6, 12): 0x4200000}
DOM0_KERNEL_KNOWN = 0x200000
# Linux 6.12 be35d91c8880 (xen_e820_resolve_conflicts: an ACPI NVS range over a Xen-placed
# area is swapped with RAM), taken by the 6.1.y, 6.6.y and 6.11.y stable trees.
_NVS_SWAP_STABLE = frozenset({(6, 1), (6, 6), (6, 11)})
DOM0_HALT_SOURCE = (
    "Linux {v} arch/x86/xen/setup.c xen_memory_setup ({fn}), on Xen's console before dom0 "
    "prints anything; then BUG() and Xen: (XEN) Hardware Dom0 halted"
)


@dataclass(frozen=True)
class Halt:
    """Why a stack never brings the OS up: the line the real software prints, and where."""

    message: str
    source: str

    def to_json(self) -> dict[str, str]:
        return {"message": self.message, "source": self.source}


def dom0_kernel_range(spec: PathSpec) -> tuple[int, int]:
    """[_text, _end) of the PV dom0 kernel: the path's ``dom0_kernel`` or the default above."""
    if spec.dom0_kernel is not None:
        return spec.dom0_kernel
    end = DOM0_KERNEL_END.get(spec.linux[:2], DOM0_KERNEL_START + DOM0_KERNEL_KNOWN)
    return DOM0_KERNEL_START, end


def version_rules(spec: PathSpec) -> tuple[object, ...]:
    """What of the Linux version this model's rules read (besides the words of log lines and
    reasons): 6.3's ESRT and lookup changes, the ACPI NVS swap (6.12 and the stable series
    carrying it), the dom0 image's range by version."""
    return (
        spec.linux_xen_esrt,
        spec.linux_skips_bogus,
        spec.linux >= (6, 3),
        _nvs_swap(spec),
        dom0_kernel_range(spec),
    )


def _nvs_swap(spec: PathSpec) -> bool:
    """Linux 6.12 be35d91c8880 and the stable series carrying it: ACPI NVS over the dom0 image
    is swapped for RAM (xen_chk_is_e820_usable)."""
    return spec.linux >= (6, 12) or spec.linux[:2] in _NVS_SWAP_STABLE


def xen_dom0_memory_setup(spec: PathSpec, e820: list[E820Range]) -> Halt | None:
    """arch/x86/xen/setup.c xen_memory_setup, its check that the kernel image lies in RAM of
    the machine E820 Xen hands over (XENMEM_machine_memory_map): xen_is_e820_reserved is
    false only when one RAM entry (after e820__update_table merged neighbours) holds all of
    [_text, _end). Else "Xen hypervisor allocated kernel memory conflicts with E820 map" and
    BUG() (6.1: inline; 6.12: xen_chk_is_e820_usable, which first swaps ACPI NVS ranges over
    the area with RAM higher up: taken as always possible, the model does not know dom0's
    initial page count). Runs before any EFI table is looked at. The model halts only on a
    range the map describes as other than RAM: a gap (memory a scenario or the evidence leaves
    out, or a reduced candidate machine) says nothing, though a real hole would BUG() too."""
    start, end = dom0_kernel_range(spec)
    nvs_swap = _nvs_swap(spec)
    conflict = any(
        r.start < end
        and start < r.end
        and r.type != E820Type.RAM
        and not (nvs_swap and r.type == E820Type.NVS)
        for r in e820
    )
    if not conflict:
        return None
    fn = "xen_chk_is_e820_usable" if nvs_swap else "xen_is_e820_reserved"
    return Halt(
        "Xen hypervisor allocated kernel memory conflicts with E820 map",
        DOM0_HALT_SOURCE.format(v=_v(spec.linux), fn=fn),
    )


def _report_header(spec: PathSpec, header: TableHeader, vendor: str | None) -> str:
    """efi.c efi_systab_report_header: 6.1 prints the revision as ``%u.%.02u`` (2.70), later
    kernels as ``2.7`` (both seen in real boots; the change is taken to be 6.2)."""
    line = linux_report_header(header, vendor)
    if spec.linux < (6, 2):
        new = f"efi: EFI v{header.revision >> 16}.{header.revision & 0xFFFF:02d} by "
        line = new + line.split(" by ", 1)[1]
    return line


def _parse_tables(
    lb: LinuxBoot,
    spec: PathSpec,
    memory: PhysicalMemory,
    config_tables: tuple[ConfigurationTable, ...],
    lookup: _Lookup,
    paravirt: bool,
) -> None:
    """efi_config_parse_tables + match_config_table: ``pr_info("")`` then one ``NAME=0x%lx ``
    per named match (each with its trailing space); under Xen (6.3+) the allowlist prints
    ``(NAME=0x%lx unusable) `` instead and leaves the table unrecorded. A warning printed
    in between breaks the continuation line; the rest continues on a line of its own."""
    lines: list[str] = []
    cur = "efi: "
    for ct in config_tables:
        kt = known_tables.known(ct.guid)
        use = TableUse(ct.guid, ct.table, kt)
        lb.uses.append(use)
        if kt is None or not kt.linux_parses:
            continue
        label = kt.linux_label or ""
        if paravirt and spec.linux_xen_esrt:
            warnings: list[str] = []
            usable = _xen_usable(spec, lookup, ct.table, warnings)
            if warnings:
                lines += [cur, *warnings]
                cur = ""
            if not usable:
                if label:
                    cur += f"({label}={ct.table:#x} unusable) "
                use.unusable = True
                use.refused = (
                    f"Linux {_v(spec.linux)} xen_efi_config_table_is_usable: its memory type "
                    "is not one a dom0 may trust"
                )
                continue
        use.recorded = True
        if label:
            cur += f"{label}={ct.table:#x} "
    if cur:
        lines.append(cur)
    lb.log += lines
    # match_config_table stores every match: a later entry of a GUID replaces an earlier one.
    last: dict[Guid, TableUse] = {}
    for use in lb.uses:
        if use.recorded:
            if use.guid in last:
                last[use.guid].recorded = False
                last[use.guid].refused = "a later entry of the same GUID replaced it"
            last[use.guid] = use
    tpm_version = None
    for use in last.values():
        kt = use.known
        assert kt is not None
        if kt.needs_efi_memmap and lb.memmap is None:
            use.refused = (
                f"Linux {_v(spec.linux)}: the {kt.name} parser needs EFI_MEMMAP, never set in "
                "a Xen PV dom0"
            )
            continue
        if kt.name in EARLY_CONSUMED:
            size = _size(memory, use, None)
            use.parse_bytes = None if size is None else memory.read(use.address, size)
        if kt.name == "TPMEventLog":
            raw = memory.read(use.address + 8, 1)
            tpm_version = None if raw is None else raw[0]
    for use in last.values():
        kt = use.known
        assert kt is not None
        if use.refused or paravirt or kt.name not in MEMBLOCK_RESERVING or kt.name == "MOKvar":
            continue  # a PV dom0's memblock is its own pseudo-physical memory
        if memory.read(use.address, 1) is None:
            # The evidence lacks the table's bytes: a valid table is reserved from its first
            # byte on, which is enough to keep its boot-services region (quirks.c
            # efi_reserve_boot_services keeps any region a reservation intersects).
            lb.reserved.append((use.address, use.address + 1))
            lb.assumed_valid.add(use.guid)
            continue
        if kt.name in ("TPMFinalLog", "CCFinalLog") and tpm_version != _TCG2_FORMAT:
            continue  # tpm.c: "TPM Final Events table not present / invalid"
        if kt.name == "MEMATTR" and not _version_at_most(memory, use.address, 2):
            continue  # memattr.c: "Unexpected EFI Memory Attributes table version"
        if kt.name == "Unaccepted" and not _version_at_most(memory, use.address, 1):
            continue
        size = _size(memory, use, None)
        if size:
            lb.reserved.append((use.address, use.address + size))


def _size(memory: PhysicalMemory, use: TableUse, limit: int | None) -> int | None:
    res = known_tables.table_size(use.guid, memory.read, use.address, limit)
    if res.size is None or not 0 < res.size <= 1 << 24:
        return None
    return res.size


def _version_at_most(memory: PhysicalMemory, addr: int, most: int) -> bool:
    raw = memory.read(addr, 4)
    return raw is not None and struct.unpack("<I", raw)[0] <= most


def _xen_usable(spec: PathSpec, lookup: _Lookup, addr: int, log: list[str]) -> bool:
    """drivers/xen/efi.c xen_efi_config_table_is_usable (6.3); the reserve-hypercall proposal
    also trusts boot-services memory, which Xen holds until dom0 has reserved what it keeps."""
    rc, md = lookup(addr, log)
    if rc or md is None:
        return False
    if md.type in XEN_USABLE_TYPES:
        return True
    return spec.policy is Policy.RESERVE_HYPERCALL and md.type in _BS


def _esrt_init(
    lb: LinuxBoot, spec: PathSpec, memory: PhysicalMemory, lookup: _Lookup, paravirt: bool
) -> None:
    """drivers/firmware/efi/esrt.c efi_esrt_init, every check with its message
    (pr_fmt "esrt: ")."""
    if spec.linux < (6, 3) and lb.memmap is None:
        # 6.1/6.2: "if (!efi_enabled(EFI_MEMMAP)) return;" (6.3 01de145dc7fb adds PARAVIRT).
        lb.esrt_refused = EsrtRefusal(
            EsrtCheck.NO_EFI_MEMMAP,
            f"Linux {_v(spec.linux)} efi_esrt_init returns without EFI_MEMMAP, never set in a "
            "Xen PV dom0",
        )
        return
    use = next((u for u in lb.uses if u.guid == ESRT_GUID and u.recorded), None)
    if use is None:  # esrt_table_exists() is false
        return
    esrt = use.address
    rc, md = lookup(esrt, lb.log)
    if rc < 0 or md is None or not esrt_type_accepted(md.type, md.attribute, spec.linux):
        lb.log.append("esrt: ESRT header is not in the memory map.")
        what = "no descriptor covers it" if md is None else f"its type is {md.type_name}"
        lb.esrt_refused = EsrtRefusal(
            EsrtCheck.NOT_IN_MEMMAP, f"efi_esrt_init: ESRT header is not in the memory map ({what})"
        )
        return
    end = md.phys_addr + (md.num_pages << PAGE_SHIFT)
    if spec.linux < (6, 3) and end < esrt:  # removed by 6.3 ab03e91e60ce
        lb.log.append(f"esrt: EFI memory descriptor is invalid. (esrt: {esrt:#x} max: {end:#x})")
        lb.esrt_refused = EsrtRefusal(
            EsrtCheck.DESCRIPTOR_INVALID, "efi_esrt_init: memory descriptor invalid"
        )
        return
    room = end - esrt
    if not esrt_header_fits(room):
        lb.log.append(
            "esrt: ESRT header doesn't fit on single memory map entry. "
            f"(size: {ESRT_HEADER_SIZE} max: {room})"
        )
        lb.esrt_refused = EsrtRefusal(
            EsrtCheck.HEADER_DOES_NOT_FIT,
            f"efi_esrt_init: only {room} bytes before the descriptor ends",
        )
        return
    raw = memory.read(esrt, ESRT_HEADER_SIZE)
    if raw is None:
        lb.esrt_refused = EsrtRefusal(
            EsrtCheck.BYTES_UNKNOWN, "the ESRT header bytes are not known"
        )
        return
    hdr = EsrtHeader.unpack(raw)
    if not esrt_version_supported(hdr.fw_resource_version):
        lb.log.append(f"esrt: Unsupported ESRT version {_lld(hdr.fw_resource_version)}.")
        lb.esrt_refused = EsrtRefusal(
            EsrtCheck.UNSUPPORTED_VERSION,
            f"efi_esrt_init: fw_resource_version is {hdr.fw_resource_version}, not 1",
        )
        return
    if esrt_only_header(room, hdr.fw_resource_count):
        lb.log.append(
            "esrt: ESRT memory map entry can only hold the header. "
            f"(max: {room - ESRT_HEADER_SIZE} size: {ESRT_ENTRY_SIZE})"
        )
        lb.esrt_refused = EsrtRefusal(
            EsrtCheck.ONLY_HEADER, "efi_esrt_init: the descriptor holds only the header"
        )
        return
    if esrt_count_too_large(hdr.fw_resource_count):
        lb.log.append(
            f"esrt: ESRT says fw_resource_count has very large value {_d(hdr.fw_resource_count)}."
        )
        lb.esrt_refused = EsrtRefusal(
            EsrtCheck.COUNT_TOO_LARGE,
            f"efi_esrt_init: fw_resource_count {hdr.fw_resource_count} > {LINUX_MAX_ENTRIES}",
        )
        return
    size = esrt_size(hdr.fw_resource_count)
    if not esrt_fits(room, hdr.fw_resource_count):
        lb.log.append(
            "esrt: ESRT does not fit on single memory map entry "
            f"(size: {ESRT_HEADER_SIZE} max: {room})"
        )
        lb.esrt_refused = EsrtRefusal(
            EsrtCheck.DOES_NOT_FIT,
            f"efi_esrt_init: {size} bytes do not fit in the {room} left in the descriptor",
        )
        return
    lb.esrt_data, lb.esrt_data_size = esrt, size
    lb.log.append(f"esrt: Reserving ESRT space from {esrt:#018x} to {esrt + size:#018x}.")
    if md.type == _BS_DATA:
        _efi_mem_reserve(lb, spec, lookup, esrt, size, paravirt)


def _efi_mem_reserve(
    lb: LinuxBoot, spec: PathSpec, lookup: _Lookup, addr: int, size: int, paravirt: bool
) -> None:
    """efi.c efi_mem_reserve: WARN and return under Xen (6.3 fa7bee867db1), unless the
    reserve-hypercall proposal lets dom0 ask Xen; native: memblock_reserve unless already
    reserved, then x86 efi_arch_mem_reserve."""
    lb.mem_reserved.append((addr, addr + size))
    if paravirt:
        if spec.policy is Policy.RESERVE_HYPERCALL:
            lb.reserved.append((addr, addr + size))
        elif spec.linux >= (6, 3):
            lb.log.append("WARNING: efi_mem_reserve() under Xen (drivers/firmware/efi/efi.c)")
        return
    if not _overlaps(addr, addr + size, lb.reserved):
        lb.reserved.append((addr, addr + size))
    _arch_mem_reserve(lb, lookup, addr, size)


def _arch_mem_reserve(lb: LinuxBoot, lookup: _Lookup, addr: int, size: int) -> None:
    """x86 arch/x86/platform/efi/quirks.c efi_arch_mem_reserve (pr_fmt "efi: "): the range,
    page aligned, is carved out of its BS-data descriptor with the descriptor's attribute |
    RUNTIME (efi_memmap_insert) and turned from RAM to reserved in the e820 table."""
    rc, md = lookup(addr, lb.log)
    if rc or md is None or md.type != _BS_DATA:
        lb.log.append(f"efi: Failed to lookup EFI memory descriptor for {addr:#018x}")
        return
    if addr + size > md.phys_addr + (md.num_pages << PAGE_SHIFT):
        lb.log.append(f"efi: Region spans EFI memory descriptors, {addr:#018x}")
        return
    size += addr % PAGE_SIZE
    size = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    start = addr & ~(PAGE_SIZE - 1)
    assert lb.memmap is not None
    lb.memmap = memmap_insert(lb.memmap, start, start + size - 1, md.attribute | _RUNTIME)
    if lb.e820 is not None:
        lb.e820 = e820_update(lb.e820, start, start + size, E820Type.RAM, E820Type.RESERVED)
    # arch/x86/kernel/e820.c __e820__range_update prints this whatever it changed.
    lb.log.append(f"e820: update [mem {start:#010x}-{start + size - 1:#010x}] usable ==> reserved")


def _mokvar_init(lb: LinuxBoot, spec: PathSpec, memory: PhysicalMemory, lookup: _Lookup) -> None:
    """mokvar-table.c efi_mokvar_table_init (needs EFI_MEMMAP): the walk is bounded by the end
    of the descriptor holding the table; efi_mem_reserve only when that is BS data."""
    use = next(
        (u for u in lb.uses if u.recorded and u.known and u.known.name == "MOKvar"), None
    )
    if use is None or use.refused:
        return
    rc, md = lookup(use.address, lb.log)
    if rc or md is None:
        use.refused = (
            "efi_mokvar_table_init: EFI MOKvar config table is not within the EFI memory map"
        )
        return
    limit = md.phys_addr + (md.num_pages << PAGE_SHIFT) - use.address
    size = _size(memory, use, limit)
    if size is None:
        use.refused = "efi_mokvar_table_init: EFI MOKvar config table is not valid"
        return
    if md.type == _BS_DATA:
        _efi_mem_reserve(lb, spec, lookup, use.address, size, False)


def _reserve_boot_services(lb: LinuxBoot) -> None:
    """quirks.c efi_reserve_boot_services: a BS region already (partly) memblock-reserved, or
    not entirely E820 RAM (can_free_region), is not Linux's to free: it gets EFI_MEMORY_RUNTIME
    and stays; the others are reserved now and freed later."""
    assert lb.memmap is not None
    # mm/memblock.c memblock_is_region_reserved: does anything reserved meet the region?
    reserved = SpanSet(lb.reserved)
    # arch/x86/kernel/e820.c e820__mapped_all(start, end, E820_TYPE_RAM); no table: all RAM
    ram = (
        SpanSet(((r.start, r.end) for r in lb.e820 if r.type == E820Type.RAM), keep_empty=True)
        if lb.e820 is not None
        else None
    )
    descs = []
    for d in lb.memmap:
        if d.type in _BS and not d.attribute & _RUNTIME:
            end = d.phys_addr + (d.num_pages << PAGE_SHIFT)
            if reserved.overlaps(d.phys_addr, end) or (
                ram is not None and not ram.covers(d.phys_addr, end)
            ):
                d = d.replace(attribute=d.attribute | _RUNTIME)
        descs.append(d)
    lb.memmap = MemoryMap(tuple(descs), lb.memmap.desc_size, lb.memmap.desc_version)


def _free_boot_services(lb: LinuxBoot, memory: PhysicalMemory) -> None:
    """quirks.c efi_free_boot_services: BS regions without RUNTIME go back to the page
    allocator, except their part below 1 MiB; the new map leaves them out."""
    assert lb.memmap is not None
    kept = []
    for d in lb.memmap.descriptors:
        if d.type not in _BS:
            kept.append(d)
            continue
        start, end = d.phys_addr, d.phys_addr + (d.num_pages << PAGE_SHIFT)
        if d.attribute & _RUNTIME:
            lb.kept_bs.append((start, end))
            kept.append(d)
            continue
        if end < SZ_1M:  # "Don't free memory under 1M"
            continue
        start = max(start, SZ_1M)
        lb.freed.append((start, end))
    memory.scrub_many(lb.freed, lb.spec.scrub)
    lb.memmap = MemoryMap(tuple(kept), lb.memmap.desc_size, lb.memmap.desc_version)


def memmap_insert(mm: MemoryMap, start: int, end: int, attribute: int) -> MemoryMap:
    """:meth:`MemoryMap.insert` (Linux 6.3 arch/x86/platform/efi/memmap.c efi_memmap_insert:
    every descriptor the inclusive range touches is carved, the others copied) without calling
    :func:`carve` on descriptors the range cannot touch."""
    out: list[MemoryDescriptor] = []
    descs = mm.descriptors
    for d in descs:
        touched = d.phys_addr <= end and start < d.phys_addr + (d.num_pages << PAGE_SHIFT)
        if touched or d.is_bogus:  # bogus ones: let carve apply Linux's u64 cases
            out.extend(carve(d, start, end, attribute))
        else:
            out.append(d)
    return MemoryMap(tuple(out), mm.desc_size, mm.desc_version)


def e820_update(
    ranges: list[E820Range], start: int, end: int, old: int, new: int
) -> list[E820Range]:
    """arch/x86/kernel/e820.c e820__range_update + e820__update_table on a sorted table: the
    ``old``-typed parts of ``[start, end)`` become ``new``; neighbours of one type merge."""
    starts = [r.start for r in ranges]
    lo = max(bisect.bisect_right(starts, start) - 2, 0)
    hi = min(bisect.bisect_left(starts, end) + 1, len(ranges))
    mid: list[E820Range] = []
    for r in ranges[lo:hi]:
        if r.type != old or r.end <= start or end <= r.start:
            parts = [r]
        else:
            parts = []
            if r.start < start:
                parts.append(E820Range(r.start, start, r.type))
            parts.append(E820Range(max(r.start, start), min(r.end, end), new))
            if end < r.end:
                parts.append(E820Range(end, r.end, r.type))
        for p in parts:
            if mid and mid[-1].type == p.type and mid[-1].end == p.start:
                mid[-1] = E820Range(mid[-1].start, p.end, p.type)
            else:
                mid.append(p)
    return ranges[:lo] + mid + ranges[hi:]


def _overlaps(start: int, end: int, ranges: list[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in ranges)


UNKNOWN_LIST = ".unknown"  # at the tree's root: the files whose values the model cannot know


def _esrt_sysfs_init(lb: LinuxBoot, memory: PhysicalMemory) -> None:
    """esrt.c esrt_sysfs_init (device_initcall, after boot-services memory is freed):
    memremap the recorded range and publish /sys/firmware/efi/esrt from its bytes as they are
    now. Bytes the model cannot state (unknown, or random fill standing in for bytes nobody
    wrote) still give their files, listed as unknown (:func:`esrt_tree`)."""
    if not lb.esrt_data or not lb.esrt_data_size:
        return
    addr, size = lb.esrt_data, lb.esrt_data_size
    raw = memory.read(addr, size)
    lb.esrt_bytes = raw
    if memory.read(addr, ESRT_HEADER_SIZE) is None:
        lb.esrt_sysfs = True  # efi_esrt_init saw version 1; the files' values are unknown
        return
    known = getattr(memory, "known", None)
    pieces = [(off, min(4, size - off)) for off in range(0, size, 4)]  # fields are 4-aligned
    if raw is None:
        buf = bytearray(size)  # an unknown piece reads as zeros, and is listed as unknown
        for off, n in pieces:
            piece = memory.read(addr + off, n)
            if piece is not None:
                buf[off : off + n] = piece
        raw = bytes(buf)
    unknown = frozenset(
        off
        for off, n in pieces
        if memory.read(addr + off, n) is None or (known is not None and not known(addr + off, n))
    )
    lb.sysfs = esrt_tree(raw, unknown)
    lb.esrt_sysfs = lb.sysfs is not None


# Linux esrt.c: the header's and each entry's attribute files, (name, offset, size, format).
_HEADER_FILES = (
    ("fw_resource_count", 0, 4), ("fw_resource_count_max", 4, 4), ("fw_resource_version", 8, 8),
)
_ENTRY_FILES = (
    ("fw_class", 0, 16), ("fw_type", 16, 4), ("fw_version", 20, 4),
    ("lowest_supported_fw_version", 24, 4), ("capsule_flags", 28, 4),
    ("last_attempt_version", 32, 4), ("last_attempt_status", 36, 4),
)


def esrt_tree(raw: bytes, unknown: frozenset[int] = frozenset()) -> dict[str, str | None] | None:
    """The files Linux creates under /sys/firmware for an ESRT whose mapped bytes are ``raw``:
    ``%u``/``%llu`` decimals, ``0x%x`` capsule flags, ``%pUl`` GUIDs, each with a newline. None
    when register_entries fails on a version other than 1 (esrt_sysfs_init then removes the
    whole directory). ``unknown`` holds the offsets of 4-byte pieces of ``raw`` the model
    cannot know: every file showing one is still written (from ``raw``) and named, one path a
    line, in the ``.unknown`` file at the tree's root."""
    hdr = EsrtHeader.unpack(raw)
    if hdr.fw_resource_version != 1 and hdr.fw_resource_count:
        return None
    tree: dict[str, str | None] = {
        "efi/esrt": None,
        "efi/esrt/fw_resource_count": f"{hdr.fw_resource_count}\n",
        "efi/esrt/fw_resource_count_max": f"{hdr.fw_resource_count_max}\n",
        "efi/esrt/fw_resource_version": f"{hdr.fw_resource_version}\n",
        "efi/esrt/entries": None,
    }
    marked = [f"efi/esrt/{n}" for n, off, size in _HEADER_FILES if _touches(unknown, off, size)]
    for i in range(hdr.fw_resource_count):
        off = ESRT_HEADER_SIZE + i * ESRT_ENTRY_SIZE
        if off + ESRT_ENTRY_SIZE > len(raw):
            break  # the kernel would read past its mapping; the model stops
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
        marked += [f"{base}/{n}" for n, o, size in _ENTRY_FILES if _touches(unknown, off + o, size)]
    if marked:
        tree[UNKNOWN_LIST] = "".join(f"{m}\n" for m in marked)
    return tree


def _touches(unknown: frozenset[int], off: int, size: int) -> bool:
    return any(p in unknown for p in range(off & ~3, off + size, 4))


_v = format_version  # "6.3"


def _lld(v: int) -> int:
    """A u64 printed with %lld."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _d(v: int) -> int:
    """A u32 printed with %d."""
    return v - (1 << 32) if v >= 1 << 31 else v
