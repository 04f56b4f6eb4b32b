"""A Machine from what one boot's kernel (or Xen) log printed.

A log gives addresses, maybe a memory map, no bytes. What it does not say stays unknown: a table
whose memory type only an E820 kind hints at gets every candidate type the evidence allows
(``variants``), and the explain step judges each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.sources.kernellog import BootLog, LoggedDescriptor, infer_memory_type
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_ENTRY_SIZE, ESRT_GUID, ESRT_HEADER_SIZE, EsrtHeader
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import (
    PAGE_SIZE,
    MemoryAttribute,
    MemoryDescriptor,
    MemoryMap,
    MemoryType,
)
from efihandoff.uefi.systab import ConfigurationTable

_E820_TYPE = {
    "usable": MemoryType.EfiConventionalMemory,
    "soft reserved": MemoryType.EfiConventionalMemory,
    "reserved": MemoryType.EfiReservedMemoryType,
    "ACPI data": MemoryType.EfiACPIReclaimMemory,
    "ACPI NVS": MemoryType.EfiACPIMemoryNVS,
    "unusable": MemoryType.EfiUnusableMemory,
    "persistent": MemoryType.EfiPersistentMemory,
}
_RAM_ATTR = int(MemoryAttribute.UC | MemoryAttribute.WC | MemoryAttribute.WT | MemoryAttribute.WB)
_MAX_VARIANTS = 8


@dataclass(frozen=True)
class Observed:
    """What the log says about the stack that printed it."""

    linux: tuple[int, ...] | None
    xen: tuple[int, ...] | None
    dom0: bool
    multiboot2: bool | None  # None: the log does not say
    efi_line: tuple[str, ...]  # tokens of the efi: line, e.g. "(ESRT=0x... unusable)"
    unusable: tuple[str, ...]
    esrt_kinds: tuple[str, ...]
    esrt_reserved: tuple[int, int] | None  # (address, size)


@dataclass
class LogEvidence:
    """One boot of a log as a Machine, with the alternatives the log cannot rule out."""

    boot: BootLog
    machine: Machine
    observed: Observed
    memory_map_evidence: str
    variants: dict[Guid, list[tuple[int, Machine]]] = field(default_factory=dict)


def _version(text: str | None, width: int) -> tuple[int, ...] | None:
    if not text:
        return None
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if m is None:
        return None
    parts = tuple(int(x) for x in m.groups() if x is not None)
    return ((*parts, 0, 0, 0))[:width]


def from_boot(boot: BootLog, name: str = "log") -> LogEvidence:
    """Build the Machine one boot describes."""
    tables: list[ConfigurationTable] = []
    labels: dict[int, str] = {}
    for t in boot.config_tables:
        kt = known_tables.by_linux_label(t.label)
        if kt is None:
            continue
        tables.append(ConfigurationTable(kt.guid, t.address))
        labels[t.address] = t.label
    esrt_addr = boot.esrt_address
    if esrt_addr is not None and not any(t.guid == ESRT_GUID for t in tables):
        tables.append(ConfigurationTable(ESRT_GUID, esrt_addr))  # "Reserving ESRT space" alone
    memory = PhysicalMemory(background=Fill.UNKNOWN)
    if boot.esrt_reserved is not None:
        # "esrt: Reserving ESRT space from A to B." passed every efi_esrt_init check:
        # version 1 and B - A = 16 + 40 * count. fw_resource_count_max is not printed.
        start, size = boot.esrt_reserved
        count = (size - ESRT_HEADER_SIZE) // ESRT_ENTRY_SIZE
        if count >= 0 and (size - ESRT_HEADER_SIZE) % ESRT_ENTRY_SIZE == 0:
            memory.write(start, EsrtHeader(count, count, 1).pack())
    mm, mm_evidence, type_evidence, ambiguous = _memory_map(boot, tables)
    machine = Machine(
        memory_map=mm,
        config_tables=tuple(tables),
        memory=memory,
        firmware_vendor=boot.efi_vendor,
        name=name,
        description=_describe(boot),
        memory_type_evidence=type_evidence,
    )
    if boot.is_xen_dom0:
        machine.notes.append("tables as a Xen dom0 sees them: addresses after any Xen relocation")
    evidence = LogEvidence(boot, machine, _observed(boot), mm_evidence)
    if mm is not None:
        for addr, candidates in ambiguous.items():
            guid = next(t.guid for t in tables if t.table == addr)
            evidence.variants[guid] = [
                (c, machine.with_(memory_map=_retype(mm, addr, c)))
                for c in candidates[:_MAX_VARIANTS]
            ]
    return evidence


def _describe(boot: BootLog) -> str:
    parts = []
    if boot.dmi:
        parts.append(boot.dmi)
    if boot.kernel_version:
        parts.append(f"Linux {boot.kernel_version}")
    if boot.is_xen_dom0:
        xen = boot.xen.version if boot.xen and boot.xen.version else "?"
        parts.append(f"Xen dom0 (Xen {xen})")
    return "; ".join(parts)


def _observed(boot: BootLog) -> Observed:
    tokens = tuple(
        f"({t.label}={t.address:#x} unusable)" if t.unusable else f"{t.label}={t.address:#x}"
        for t in boot.config_tables
    )
    loader = boot.xen.boot_loader if boot.xen else None
    return Observed(
        linux=_version(boot.kernel_version, 2),
        xen=_version(boot.xen.version if boot.xen else None, 3),
        dom0=boot.is_xen_dom0,
        multiboot2=None if loader is None else "EFI" not in loader,
        efi_line=tokens,
        unusable=boot.dom0_unusable,
        esrt_kinds=boot.esrt_kinds(),
        esrt_reserved=boot.esrt_reserved,
    )


def _descriptors(logged: tuple[LoggedDescriptor, ...]) -> list[MemoryDescriptor]:
    return [
        MemoryDescriptor(
            d.type, d.phys_addr, d.num_pages, _RAM_ATTR if d.attribute is None else d.attribute
        )
        for d in logged
    ]


def _memory_map(
    boot: BootLog, tables: list[ConfigurationTable]
) -> tuple[MemoryMap | None, str, dict[int, str], dict[int, list[int]]]:
    """The best map the log has: Linux's efi=debug map, Xen's EFI map, else one inferred from
    E820 with each table's page typed as the evidence allows."""
    type_evidence: dict[int, str] = {}
    ambiguous: dict[int, list[int]] = {}
    if boot.memory_map:
        for t in tables:
            type_evidence[t.table] = "EFI memory map (efi=debug)"
        return (
            MemoryMap(tuple(_descriptors(boot.memory_map))),
            "efi=debug memory map",
            type_evidence,
            ambiguous,
        )
    if boot.xen is not None and boot.xen.efi_memory_map:
        for t in tables:
            type_evidence[t.table] = "Xen's EFI memory map"
        return (
            MemoryMap(tuple(_descriptors(boot.xen.efi_memory_map))),
            "Xen's EFI memory map",
            type_evidence,
            ambiguous,
        )
    e820 = boot.e820 or (boot.xen.e820 if boot.xen else ())
    if not e820:
        return None, "none", type_evidence, ambiguous
    descs = [
        MemoryDescriptor(
            int(_E820_TYPE.get(e.kind, MemoryType.EfiReservedMemoryType)),
            e.start,
            (e.end - e.start) // PAGE_SIZE,
            _RAM_ATTR,
        )
        for e in e820
        if e.end > e.start and e.start % PAGE_SIZE == 0
    ]
    mm = MemoryMap(tuple(descs))
    for t in tables:
        inf = infer_memory_type(boot, t.table)
        type_evidence[t.table] = inf.evidence
        if inf.memory_type is not None:
            mm = _retype(mm, t.table, inf.memory_type)
        elif len(inf.candidates) > 1:
            ambiguous[t.table] = list(inf.candidates)
            mm = _retype(mm, t.table, inf.candidates[0])
    return mm, "inferred from E820", type_evidence, ambiguous


def _retype(mm: MemoryMap, addr: int, mtype: int) -> MemoryMap:
    """The map with the page holding ``addr`` given type ``mtype`` (split out of its range)."""
    i = mm.lookup_index(addr)
    if i is None:
        return mm
    d = mm[i]
    if d.type == mtype:
        return mm
    page = addr & ~(PAGE_SIZE - 1)
    attr = d.attribute | (
        MemoryAttribute.RUNTIME
        if mtype in (MemoryType.EfiRuntimeServicesCode, MemoryType.EfiRuntimeServicesData)
        else 0
    )
    parts = []
    if page > d.phys_addr:
        parts.append(d.replace(num_pages=(page - d.phys_addr) // PAGE_SIZE))
    parts.append(MemoryDescriptor(mtype, page, 1, attr))
    if page + PAGE_SIZE < d.end:
        parts.append(
            d.replace(phys_addr=page + PAGE_SIZE, num_pages=(d.end - page - PAGE_SIZE) // PAGE_SIZE)
        )
    return mm.replace_descriptor(i, *parts)
