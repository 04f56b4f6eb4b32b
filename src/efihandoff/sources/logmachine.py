"""A Machine from what one boot's kernel (or Xen) log printed.

A log gives addresses, maybe a memory map, no bytes. What it does not say stays unknown: a table
whose memory type only an E820 kind hints at gets every candidate type the evidence allows
(``variants``), and the explain step judges each.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace
from functools import reduce
from itertools import repeat

from efihandoff.e820 import E820Type
from efihandoff.machine import RAM_ATTRIBUTES, Fill, Machine, PhysicalMemory, free_gap
from efihandoff.rules import tables as known_tables
from efihandoff.rules.e820 import linux_stub_sources, xen_sources
from efihandoff.rules.linux import ESRT_TYPES_61, ESRT_TYPES_63, XEN_USABLE_TYPES
from efihandoff.rules.version import parse_version, version_text
from efihandoff.sources import Role
from efihandoff.sources.kernellog import BootLog, E820Entry, LoggedDescriptor
from efihandoff.uefi.esrt import ESRT_ENTRY_SIZE, ESRT_GUID, ESRT_HEADER_SIZE, EsrtHeader
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.layout import from_columns
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
_E820_CODE = {kind: int(t) for kind, t in _E820_TYPE.items()}  # the same, as plain ints
_RESERVED_CODE = int(MemoryType.EfiReservedMemoryType)
# the fields of a printed descriptor or an E820 entry, a column at a time
_TYPE, _PHYS, _PAGES, _ATTRIBUTE = map(
    operator.attrgetter, ("type", "phys_addr", "num_pages", "attribute")
)
_START, _END, _KIND = map(operator.attrgetter, ("start", "end", "kind"))
_MAX_VARIANTS = 8
# One type of each behaviour class, for a table whose type the log does not show at all.
_REPRESENTATIVE = (
    MemoryType.EfiBootServicesData,
    MemoryType.EfiRuntimeServicesData,
    MemoryType.EfiACPIReclaimMemory,
    MemoryType.EfiReservedMemoryType,
    MemoryType.EfiLoaderData,
    MemoryType.EfiConventionalMemory,
)
# Linux esrt.c efi_esrt_init's type check by kernel version (6.3 01de145dc7fb added the ACPI
# types); RT code stands for the types that always carry EFI_MEMORY_RUNTIME. BS code passes in
# neither (only with a RUNTIME attribute, which no inferred map shows).
_ESRT_ACCEPTED = {
    (6, 1): ESRT_TYPES_61 | {MemoryType.EfiRuntimeServicesCode},
    (6, 3): ESRT_TYPES_63 | {MemoryType.EfiRuntimeServicesCode},
}
# Header fields each esrt: message gives (the rest of the header bytes it implies are stand-ins
# that pass or fail the same checks): efi_esrt_init checks the version before the count.
ESRT_HEADER_FIELDS = ("fw_resource_count", "fw_resource_count_max", "fw_resource_version")
_GIVES = {
    "reserving": ("fw_resource_count", "fw_resource_version"),
    "unsupported-version": ("fw_resource_version",),
    "only-header": ("fw_resource_version",),
    "count-too-large": ("fw_resource_count", "fw_resource_version"),
    "does-not-fit": ("fw_resource_version",),
}


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
    role: Role = Role.UNKNOWN
    xen_text: str | None = None  # the version as printed, e.g. "4.17.7"
    lists_tables: bool = False  # the log prints the efi: configuration-table line


@dataclass
class LogEvidence:
    """One boot of a log as a Machine, with the alternatives the log cannot rule out."""

    boot: BootLog
    machine: Machine
    observed: Observed
    memory_map_evidence: str
    # Per ambiguous table: (the candidate types one machine stands for, that machine).
    variants: dict[Guid, list[tuple[tuple[int, ...], Machine]]] = field(default_factory=dict)
    # (label, address) of tables the efi: line names that no registry entry knows: not judged.
    unknown_labels: tuple[tuple[str, int], ...] = ()


def from_boot(boot: BootLog, name: str = "log") -> LogEvidence:
    """Build the Machine one boot describes."""
    tables: list[ConfigurationTable] = []
    labels: dict[int, str] = {}
    unknown: list[tuple[str, int]] = []
    for t in boot.config_tables:
        kt = known_tables.by_any_linux_label(t.label)  # MPS: printed up to 4.x
        if kt is None:
            unknown.append((t.label, t.address))
            continue
        tables.append(ConfigurationTable(kt.guid, t.address))
        labels[t.address] = t.label
    esrt_addr = boot.esrt_address
    if esrt_addr is not None and not any(t.guid == ESRT_GUID for t in tables):
        tables.append(ConfigurationTable(ESRT_GUID, esrt_addr))  # "Reserving ESRT space" alone
    memory = PhysicalMemory(background=Fill.UNKNOWN)
    observed = _observed(boot)
    clues = esrt_clues(boot)
    if clues.header is not None and esrt_addr is not None:
        memory.write(esrt_addr, clues.header)
    allowlist = _allowlist_marks(boot)
    mm, mm_evidence, type_evidence, ambiguous = _memory_map(
        boot, tables, clues, allowlist, observed.linux
    )
    machine = Machine(
        # No efi: table line: the log says nothing about which tables exist (xl dmesg never
        # prints them), which is not "none".
        config_tables=tuple(tables) if (boot.config_tables or tables) else None,
        memory_map=mm,
        memory=memory,
        firmware_vendor=boot.efi_vendor,
        name=name,
        description=_describe(boot),
        memory_type_evidence=type_evidence,
        memory_type_candidates={a: tuple(c) for a, c in ambiguous.items()},
        esrt_stand_ins=frozenset(ESRT_HEADER_FIELDS) - clues.given
        if clues.header is not None
        else frozenset(),
    )
    if observed.role is Role.XEN_DOM0:
        machine.notes.append("tables as a Xen dom0 sees them: addresses after any Xen relocation")
    evidence = LogEvidence(boot, machine, observed, mm_evidence, unknown_labels=tuple(unknown))
    if mm is not None:
        for addr, candidates in ambiguous.items():
            table = next(t for t in tables if t.table == addr)
            end = addr + clues.room if table.guid == ESRT_GUID and clues.room is not None else None
            evidence.variants[table.guid] = [
                (group, candidate_machine(machine, mm, table, group[0], end))
                for group in _behaviour_groups(candidates)[:_MAX_VARIANTS]
            ]
    return evidence


# Types no modelled step tells apart (firmware allocation, Xen efi_arch_process_memory_map and
# the relocate-known proposal, Linux's lookups, allowlist, ESRT check and freeing): one of each
# group is simulated for all of them.
_SAME_BEHAVIOUR = (
    frozenset({MemoryType.EfiLoaderCode, MemoryType.EfiLoaderData}),
    frozenset(
        {
            MemoryType.EfiMemoryMappedIO,
            MemoryType.EfiMemoryMappedIOPortSpace,
            MemoryType.EfiPalCode,
        }
    ),
)


def _behaviour_groups(candidates: list[int]) -> list[tuple[int, ...]]:
    """The candidates grouped by :data:`_SAME_BEHAVIOUR`, in first-seen order."""
    groups: dict[object, list[int]] = {}
    for c in candidates:
        key = next((g for g in _SAME_BEHAVIOUR if c in g), c)
        groups.setdefault(key, []).append(c)
    return [tuple(g) for g in groups.values()]


def candidate_machine(
    machine: Machine, mm: MemoryMap, table: ConfigurationTable, mtype: int, end: int | None
) -> Machine:
    """The machine as one candidate type of ``table`` would make it, reduced to what decides
    that table's verdict: its own page(s) (already a descriptor of their own in a map inferred
    from the log), free memory for firmware-side copies, and the table alone in the array."""
    split = _split(mm, table.table, mtype, end)  # the retyped pages, without the new map
    if split is None:  # no descriptor held the table: one is added
        own, at = retype_at(mm, table.table, mtype, end)
        if at is None:  # e.g. a page at the top of the address space: none Linux would use
            return machine.with_(memory_map=own)
        d = own[at]
    else:
        i, parts, k = split
        d = mm[i] if parts is None else parts[k]
    free = free_gap([(table.table, table.table + 1)])
    if free.phys_addr < d.end and d.phys_addr < free.end:
        # a table region reaching the gap: keep it all
        return machine.with_(memory_map=retype_at(mm, table.table, mtype, end)[0])
    descs = tuple(sorted((d, free), key=lambda x: x.phys_addr))
    return machine.with_(memory_map=MemoryMap(descs), config_tables=(table,))


@dataclass(frozen=True)
class EsrtClues:
    """What the ``esrt:`` lines imply about bytes the log does not show: header bytes whose
    outcome in every check equals the real ones, the room to the descriptor end, and whether
    the memory type passed efi_esrt_init's type check."""

    header: bytes | None = None
    room: int | None = None
    type_accepted: bool | None = None
    given: frozenset[str] = frozenset()  # header fields the messages really give


def esrt_clues(boot: BootLog) -> EsrtClues:
    """Read Linux esrt.c efi_esrt_init's messages backwards (facts section 3.2): each one is
    printed only after the checks before it passed."""
    header = room = accepted = None
    for m in boot.esrt_messages:
        v = m.values
        if m.kind == "reserving" and boot.esrt_reserved is not None:
            size = boot.esrt_reserved[1]
            count, rest = divmod(size - ESRT_HEADER_SIZE, ESRT_ENTRY_SIZE)
            # efi_esrt_init reserves at most 128 entries: a larger span is no real message.
            if 0 <= count <= 128 and rest == 0:
                # fw_resource_count_max is not printed; Linux and Xen never read it.
                header = EsrtHeader(count, count, 1).pack()
            accepted = True
        elif m.kind == "not-in-memmap":
            accepted = False
        elif m.kind == "header-does-not-fit" and len(v) == 2:
            room, accepted = v[1], True
        elif m.kind == "unsupported-version" and len(v) == 1:
            # count >= 1 stands for any count: no later check runs.
            header, accepted = EsrtHeader(1, 1, v[0] & 0xFFFFFFFFFFFFFFFF).pack(), True
        elif m.kind == "only-header" and len(v) == 2:
            room, accepted = v[0] + ESRT_HEADER_SIZE, True
            header = EsrtHeader(1, 1, 1).pack()  # any count >= 1 fails here
        elif m.kind == "count-too-large" and len(v) == 1:
            header, accepted = EsrtHeader(v[0] & 0xFFFFFFFF, v[0] & 0xFFFFFFFF, 1).pack(), True
        elif m.kind == "does-not-fit" and len(v) == 2:
            room, accepted = v[1], True
            smallest = (room - ESRT_HEADER_SIZE) // ESRT_ENTRY_SIZE + 1  # the least that fails
            if 0 < smallest <= 0xFFFFFFFF:
                header = EsrtHeader(smallest, smallest, 1).pack()
    given = next(
        (frozenset(_GIVES.get(m.kind, ())) for m in boot.esrt_messages if m.kind in _GIVES),
        frozenset(),
    )
    return EsrtClues(header, room, accepted, given if header is not None else frozenset())


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


def role_of(boot: BootLog) -> Role:
    """Who printed one boot's lines. Only a Xen initial domain sees EFI tables through Xen and
    prints ``(NAME=0x... unusable)`` marks (Linux 6.3 match_config_table) or its memory map as
    ``Xen: [mem ...]`` (arch/x86/xen/setup.c xen_memory_setup); Linux lines on Xen's own
    console come from dom0. A printed EFI memory map (efi=debug: EFI_MEMMAP, never set in a PV
    dom0) or a ``BIOS-e820`` table means no Xen between the firmware and Linux."""
    linux = bool(
        boot.config_tables
        or boot.esrt_messages
        or boot.memory_map
        or boot.e820
        or boot.kernel_version
    )
    xen_console = boot.xen is not None and boot.xen.lines > 0
    if boot.is_xen_dom0 or boot.dom0_unusable or (xen_console and linux):
        return Role.XEN_DOM0
    if boot.e820_source == "Xen" and (boot.config_tables or boot.esrt_messages):
        return Role.XEN_DOM0
    if xen_console:
        return Role.XEN_HYPERVISOR
    if boot.memory_map or boot.e820_source == "BIOS-e820":
        return Role.BARE_METAL
    return Role.UNKNOWN


def _observed(boot: BootLog) -> Observed:
    tokens = tuple(
        f"({t.label}={t.address:#x} unusable)" if t.unusable else f"{t.label}={t.address:#x}"
        for t in boot.config_tables
    )
    loader = boot.xen.boot_loader if boot.xen else None
    role = role_of(boot)
    xen_text = boot.xen.version if boot.xen else None
    return Observed(
        linux=parse_version(boot.kernel_version, 2),
        xen=parse_version(xen_text, 3),
        dom0=role is Role.XEN_DOM0,
        multiboot2=None if loader is None else "EFI" not in loader,
        efi_line=tokens,
        unusable=boot.dom0_unusable,
        esrt_kinds=boot.esrt_kinds(),
        esrt_reserved=boot.esrt_reserved,
        role=role,
        xen_text=version_text(xen_text),
        lists_tables=bool(boot.config_tables),
    )


def _descriptors(logged: tuple[LoggedDescriptor, ...]) -> list[MemoryDescriptor]:
    """The printed descriptors as MemoryDescriptors (an attribute not printed: RAM's), built
    a column at a time."""
    attributes = [RAM_ATTRIBUTES if a is None else a for a in map(_ATTRIBUTE, logged)]
    return from_columns(
        MemoryDescriptor,
        list(map(_TYPE, logged)),
        list(map(_PHYS, logged)),
        list(map(_PAGES, logged)),
        attributes,
    )


def _e820_descriptors(e820: tuple[E820Entry, ...]) -> list[MemoryDescriptor]:
    """A descriptor per E820 entry that is not empty and starts on a page (its kind's type,
    RAM's attributes), built a column at a time when every entry is such."""
    starts = list(map(_START, e820))
    ends = list(map(_END, e820))
    if (
        not starts
        or reduce(operator.or_, starts) % PAGE_SIZE
        or not all(map(operator.lt, starts, ends))
    ):
        kept = [e for e in e820 if e.end > e.start and e.start % PAGE_SIZE == 0]
        starts, ends = list(map(_START, kept)), list(map(_END, kept))
        e820 = tuple(kept)
    return from_columns(
        MemoryDescriptor,
        list(map(_E820_CODE.get, map(_KIND, e820), repeat(_RESERVED_CODE))),
        starts,
        list(map(operator.floordiv, map(operator.sub, ends, starts), repeat(PAGE_SIZE))),
        [RAM_ATTRIBUTES] * len(starts),
    )


def _allowlist_marks(boot: BootLog) -> dict[int, bool]:
    """For a Linux 6.3+ dom0 log: table address -> whether the allowlist accepted it (printed
    plainly) or refused it (printed ``(NAME=0x... unusable)``). A mark proves a 6.3+ dom0
    even where the log lacks the version line."""
    version = parse_version(boot.kernel_version, 2)
    if boot.dom0_unusable and version is None:
        version = (6, 3)
    if role_of(boot) is not Role.XEN_DOM0 or version is None or version < (6, 3):
        return {}
    return {t.address: not t.unusable for t in boot.config_tables}


def host_e820_boot(boot: BootLog) -> BootLog:
    """The boot with its E820 as the host's: a PV dom0's own table (``Xen: [mem ...]``) is its
    pseudo-physical view, where ``unusable`` is host RAM withheld by dom0_mem (Linux
    arch/x86/xen/setup.c xen_memory_setup), so Xen's console E820 is preferred, and without it
    the dom0's ``unusable`` ranges count as RAM of unknown type, never as EfiUnusableMemory."""
    if boot.e820_source != "Xen":
        return boot
    if boot.xen is not None and boot.xen.e820:
        return replace(boot, e820=())
    return replace(
        boot,
        e820=tuple(
            E820Entry(e.start, e.end, "usable", None, e.line) if e.kind == "unusable" else e
            for e in boot.e820
        ),
    )


def _memory_map(
    boot: BootLog,
    tables: list[ConfigurationTable],
    clues: EsrtClues,
    allowlist: dict[int, bool],
    linux: tuple[int, ...] | None,
) -> tuple[MemoryMap | None, str, dict[int, str], dict[int, list[int]]]:
    """The best map the log has: Linux's efi=debug map, Xen's EFI map, else one inferred from
    E820 (or, with no map at all, one page per table) with each table's page typed as the
    evidence allows; ``ambiguous`` lists the candidate types the evidence leaves open."""
    type_evidence: dict[int, str] = {}
    ambiguous: dict[int, list[int]] = {}
    for printed, what in (
        (boot.memory_map, "EFI memory map (efi=debug)"),
        (boot.xen.efi_memory_map if boot.xen else (), "Xen's EFI memory map"),
    ):
        if printed:
            for t in tables:
                type_evidence[t.table] = what
            return MemoryMap(tuple(_descriptors(printed))), what, type_evidence, ambiguous
    boot = host_e820_boot(boot)
    e820 = boot.e820 or (boot.xen.e820 if boot.xen else ())
    descs = _e820_descriptors(e820)
    have_e820 = bool(descs)
    evidence = "inferred from E820" if have_e820 else "one page per table (the log prints no map)"
    if not have_e820:
        # Free memory for firmware-side allocations (Xen's ESRT copy) to come from: a gap
        # below 4 GiB that holds no table. It stands for memory the log does not describe.
        descs = [free_gap((t.table, t.table + 1) for t in tables)]
    mm = MemoryMap(tuple(descs))
    for t in tables:
        candidates, why = [], "no memory map in the log"
        if have_e820:
            inf = infer_memory_type(boot, t.table)
            candidates, why = list(inf.candidates), inf.evidence
        if not candidates:  # no map, or one that does not reach the table
            candidates = list(_REPRESENTATIVE)
        end = None
        if t.table in allowlist:
            # drivers/xen/efi.c xen_efi_config_table_is_usable (6.3): a plain entry's type is
            # one a dom0 may trust, an "unusable" one's is not.
            kept = [c for c in candidates if (c in XEN_USABLE_TYPES) == allowlist[t.table]]
            if kept:
                candidates = kept
                why += ", narrowed by the dom0's allowlist mark"
        if t.guid == ESRT_GUID:
            candidates = _narrow(candidates, clues.type_accepted, linux)
            if clues.room is not None:
                end = t.table + clues.room
            if clues.type_accepted is not None:
                why += ", narrowed by the esrt: lines"
        type_evidence[t.table] = why
        if not candidates:
            continue
        mm = retype(mm, t.table, candidates[0], end)
        if len(candidates) > 1:
            ambiguous[t.table] = candidates
    return mm, evidence, type_evidence, ambiguous


def _narrow(
    candidates: list[int], accepted: bool | None, linux: tuple[int, ...] | None
) -> list[int]:
    """Keep the types efi_esrt_init's type check of the printing kernel agrees with (esrt.c,
    6.1 or 6.3+); with the version unknown, a type either kernel agrees with."""
    if accepted is None:
        return candidates
    rules = list(_ESRT_ACCEPTED.values())
    if linux is not None:
        rules = [_ESRT_ACCEPTED[(6, 3) if linux >= (6, 3) else (6, 1)]]
    ok = [c for c in candidates if any((c in r) == accepted for r in rules)]
    return ok or candidates


def retype(mm: MemoryMap, addr: int, mtype: int, end: int | None = None) -> MemoryMap:
    """The map with the pages holding ``addr`` (up to ``end`` when known, else one page) given
    type ``mtype``: split out of the descriptor covering them, or added where none does."""
    return retype_at(mm, addr, mtype, end)[0]


def retype_at(
    mm: MemoryMap, addr: int, mtype: int, end: int | None = None
) -> tuple[MemoryMap, int | None]:
    """:func:`retype`, and the index its map's ``lookup_index(addr)`` gives, without a fresh
    O(n) index of the new map: the descriptors before the one ``mm`` found are unchanged (none
    held ``addr``), the part before ``addr`` does not hold it, and the retyped part does and is
    valid (the descriptor it is cut from is, so it starts and ends on pages)."""
    split = _split(mm, addr, mtype, end)
    if split is None:
        page, stop = _pages(addr, end)
        new = MemoryDescriptor(mtype, page, (stop - page) // PAGE_SIZE, _attribute(mtype))
        descs = sorted((*mm.descriptors, new), key=lambda d: d.phys_addr)
        own = MemoryMap(tuple(descs), mm.desc_size, mm.desc_version)
        return own, own.lookup_index(addr)
    i, parts, k = split
    if parts is None:
        return mm, i
    return mm.replace_descriptor(i, *parts), i + k


def _pages(addr: int, end: int | None) -> tuple[int, int]:
    """The pages :func:`retype` gives the new type: from the one holding ``addr`` to the one
    holding ``end - 1`` (one page without ``end``)."""
    page = addr & ~(PAGE_SIZE - 1)
    if end is None:
        return page, page + PAGE_SIZE
    return page, max(page + PAGE_SIZE, (end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))


def _attribute(mtype: int) -> int:
    """RAM's attributes, with EFI_MEMORY_RUNTIME for the runtime services types."""
    runtime = (MemoryType.EfiRuntimeServicesCode, MemoryType.EfiRuntimeServicesData)
    return int(RAM_ATTRIBUTES | (MemoryAttribute.RUNTIME if mtype in runtime else 0))


def _split(
    mm: MemoryMap, addr: int, mtype: int, end: int | None
) -> tuple[int, list[MemoryDescriptor] | None, int] | None:
    """What :func:`retype_at` does to the descriptor ``mm.lookup_index(addr)`` finds: its
    index, the parts it becomes (None: it stays as it is) and which part holds ``addr``; None
    when no descriptor holds ``addr``. The new map is built only by whoever needs it."""
    i = mm.lookup_index(addr)
    if i is None:
        return None
    d = mm[i]
    if d.type == mtype and end is None:
        return i, None, 0
    page, stop = _pages(addr, end)
    stop = min(stop, d.end)
    parts = []
    if page > d.phys_addr:
        parts.append(d.replace(num_pages=(page - d.phys_addr) // PAGE_SIZE))
    attr = int(d.attribute | _attribute(mtype))
    parts.append(MemoryDescriptor(mtype, page, (stop - page) // PAGE_SIZE, attr))
    if stop < d.end:
        parts.append(d.replace(phys_addr=stop, num_pages=(d.end - stop) // PAGE_SIZE))
    return i, parts, int(page > d.phys_addr)


# --------------------------------------------------------------------------------------------
# Memory type of an address, from what one boot printed (model logic: the reader only
# records what was printed)
# --------------------------------------------------------------------------------------------

_T = MemoryType
_RAM_TYPES = linux_stub_sources(E820Type.RAM)
# Linux drivers/firmware/efi/libstub/x86-stub.c setup_e820(): the EFI types behind each E820 kind
# (GRUB's EFI loader maps the same way), read backwards from rules.e820.
_LINUX_E820_TO_EFI: dict[str, tuple[int, ...]] = {
    "usable": _RAM_TYPES,
    "soft reserved": _RAM_TYPES,  # RAM types with EFI_MEMORY_SP
    "reserved": linux_stub_sources(E820Type.RESERVED),
    "ACPI data": linux_stub_sources(E820Type.ACPI),
    "ACPI NVS": linux_stub_sources(E820Type.NVS),
    "unusable": linux_stub_sources(E820Type.UNUSABLE),
    "persistent": linux_stub_sources(E820Type.PMEM),
}
# Xen xen/arch/x86/efi/efi-boot.h efi_arch_process_memory_map(), read backwards from rules.e820:
# RAM types turn reserved with EFI_MEMORY_RUNTIME (4.16.3+/4.17+) or -mapbs (boot services),
# unusable without WB; every other type is reserved. Kinds Xen never prints keep Linux's reading.
_XEN_E820_TO_EFI: dict[str, tuple[int, ...]] = {
    **_LINUX_E820_TO_EFI,
    "usable": xen_sources(E820Type.RAM),
    "reserved": xen_sources(E820Type.RESERVED),
    "ACPI data": xen_sources(E820Type.ACPI),
    "ACPI NVS": xen_sources(E820Type.NVS),
    "unusable": xen_sources(E820Type.UNUSABLE),
}


@dataclass(frozen=True, slots=True)
class TypeInference:
    """The EFI memory type behind an address as far as one boot's log tells: ``memory_type``
    when a single type remains, every type the evidence allows in ``candidates``, and
    ``evidence`` naming the lines used (``inferred`` when no EFI memory map was printed)."""

    memory_type: int | None
    candidates: tuple[int, ...]
    evidence: str

    @property
    def exact(self) -> bool:
        """A printed EFI memory map gave the type."""
        return self.memory_type is not None and "inferred" not in self.evidence


def infer_memory_type(boot: BootLog, address: int) -> TypeInference:
    """The memory type at ``address``: from the printed EFI memory map (Linux efi=debug, then
    Xen's), else inferred from the E820 table and the ``esrt:`` / ``e820: update`` lines."""
    for d in boot.memory_map:
        if d.contains(address):
            return TypeInference(d.type, (d.type,), f"EFI memory map (efi=debug), line {d.line}")
    if boot.xen is not None:
        for d in boot.xen.efi_memory_map:
            if d.contains(address):
                return TypeInference(d.type, (d.type,), f"Xen's EFI memory map, line {d.line}")
    entry = next((e for e in boot.e820 if e.contains(address)), None)
    source = "Xen's E820 for dom0" if boot.e820_source == "Xen" else "E820"
    if entry is None and boot.xen is not None:
        entry = next((e for e in boot.xen.e820 if e.contains(address)), None)
        source = "Xen's E820"
    if entry is None:
        return TypeInference(None, (), f"no memory map in the log covers {address:#x}")
    table = _XEN_E820_TO_EFI if source.startswith("Xen") else _LINUX_E820_TO_EFI
    candidates = tuple(int(t) for t in table.get(entry.kind, ()))
    evidence = f"{source} '{entry.kind}' (line {entry.line})"
    bs_data = int(_T.EfiBootServicesData)
    if entry.kind == "usable" and address == boot.esrt_address:
        reserving = next((m for m in boot.esrt_messages if m.kind == "reserving"), None)
        refused = next((m for m in boot.esrt_messages if m.kind == "not-in-memmap"), None)
        update = next(
            (
                u
                for u in boot.e820_updates
                if u.op == "update"
                and u.old_kind == "usable"
                and u.new_kind == "reserved"
                and u.covers(address)
            ),
            None,
        )
        if reserving is not None and update is not None:
            # Linux 6.3 esrt.c efi_esrt_init calls efi_mem_reserve() only for Boot Services
            # Data, and x86 efi_arch_mem_reserve() turns that page reserved in E820.
            return TypeInference(
                bs_data,
                (bs_data,),
                f"{evidence}, 'esrt: Reserving' (line {reserving.line}) and "
                f"'e820: update ... usable ==> reserved' (line {update.line}) (inferred)",
            )
        if refused is not None:
            # efi_esrt_init refuses a usable-RAM type other than Boot Services Data.
            candidates = tuple(t for t in candidates if t != bs_data)
            evidence += f", 'esrt: ESRT header is not in the memory map.' (line {refused.line})"
        elif reserving is not None:
            evidence += f", 'esrt: Reserving' (line {reserving.line}) without an e820 update"
    only = candidates[0] if len(candidates) == 1 else None
    return TypeInference(only, candidates, evidence + " (inferred)")
