"""A whole machine's words as the sum of its table groups: what ``survey`` keeps of a path
(each table's verdict, costs, what the dom0 marks and reserves, the ESRT's sysfs files) from
one small simulation per descriptor holding tables, and the rest from the map itself.

A group is one descriptor of the map with the tables inside it and, as
:func:`~efihandoff.sources.logmachine.candidate_machine` does for one table, 16 MiB of free
memory for firmware-side copies. Each group is simulated with its tables (usually answered by
:mod:`efihandoff.paths.canonical` at a canonical address); what it costs less what its descriptor
costs without them (:func:`descriptor_cost`) is what the tables cost. What belongs to the map
and not to any table is counted from the map as the model's steps count it (:func:`base_cost`,
:func:`descriptor_cost`): Linux x86
efi_reserve_boot_services keeping boot-services regions that are RUNTIME, touch memblock's early
reservations or are not all E820 RAM; Xen ``-mapbs`` keeping every boot-services byte and the
reserve-hypercall proposal holding them until dom0 is done (paths.simulate ``_cost``).

Only machines where that sum is the simulation itself take this way (:func:`plan`): a sorted map
of valid, disjoint descriptors (under Xen, of E820 rows short of E820MAX), each table inside a
descriptor that is not free memory (an allocation could land on it), one entry per GUID, no TPM
final log with known bytes (Linux reserves it only next to a TCG2 event log:
efi_tpm_eventlog_init), memory known only from evidence; per path (:func:`combine`), copies
that fit the free region together (the relocate-known proposal's share pool pages: their cost is
replayed on the EDK II pool model in Xen's order), and under Xen a free region below 4 GiB above
the dom0 image that holds every allocation (they land there or higher, as in a group). A dom0
that halts (its image on memory Xen's E820 says is not RAM) is judged from the descriptors under
the image, as the model's xen_memory_setup judges it, except under the reserve-hypercall
proposal.
``tests/paths/test_grouped.py`` compares every word with the whole simulation over random
machines and stacks.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

from efihandoff.e820 import E820Range, E820Type
from efihandoff.edk2 import BootServices
from efihandoff.machine import Fill, Machine, PhysicalMemory, free_gap
from efihandoff.paths import canonical as canonical_mod
from efihandoff.paths import xen
from efihandoff.paths.linux import (
    LOW_RESERVED,
    Halt,
    dom0_kernel_range,
    xen_dom0_memory_setup,
)
from efihandoff.paths.presets import PathSpec, Policy
from efihandoff.paths.simulate import Cost, PathResult
from efihandoff.paths.verdict import TableVerdict, Verdict
from efihandoff.rules.e820 import linux_stub_e820_type
from efihandoff.rules.tables import known as known_table
from efihandoff.uefi.esrt import ESRT_GUID, ESRT_HEADER_SIZE, esrt_size
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import (
    MemoryAttribute,
    MemoryDescriptor,
    MemoryMap,
    MemoryType,
    columns,
    none_bogus,
)
from efihandoff.uefi.systab import ConfigurationTable

PAGE = 4096
# Xen's E820 rows (E820MAX 1024) less what the copies before ExitBootServices can add (each
# allocation splits a free region: at most two rows, a few allocations): no row is dropped.
E820_ROOM = xen.E820MAX - 16
FREE_NEEDED = 16 << 20  # a group's free gap: takes every allocation a group's path makes
ALLOCATION_SLACK = 1 << 20  # pool headers and page rounding of a handful of allocations
FOUR_GIB = 1 << 32
_BS = frozenset(int(t) for t in xen.BS_TYPES)
_RUNTIME = int(MemoryAttribute.RUNTIME)
_FREE = int(MemoryType.EfiConventionalMemory)
_LOW_END = max(e for _, e in LOW_RESERVED)
_LINKED = frozenset({"TPMFinalLog", "CCFinalLog"})  # reserved depending on another table

Simulate = Callable[[Machine, PathSpec], PathResult]


@dataclass(frozen=True)
class Group:
    """One descriptor with its tables (firmware order), simulated as bare metal needs it and as
    Xen's paths do (trimmed further where only bare metal keeps a boot-services region whole);
    the descriptor alone costs what the map's own rules say (:func:`descriptor_cost`)."""

    full: Machine
    xen_full: Machine
    own: MemoryDescriptor  # the group's descriptor in ``full``
    xen_own: MemoryDescriptor  # and in ``xen_full``


@dataclass(frozen=True)
class Plan:
    """What :func:`combine` needs of a machine, made once for every path."""

    machine: Machine
    groups: tuple[Group, ...]
    bare: Machine  # the free gap alone: what a path without an ESRT makes of its absence
    where: dict[Guid, int]  # table -> index of its group
    bs_bytes: int  # every boot-services byte of the map
    native_kept: int  # boot-services bytes Linux keeps with no table reserving anything
    starts: tuple[int, ...]  # descriptor starts, for the dom0 image's neighbours
    free_below_4g: tuple[tuple[int, int], ...]  # [start, end) of free regions below 4 GiB
    # Xen's E820 rows of the map by (-mapbs, RUNTIME reserved), counted when asked
    e820_rows: dict[tuple[bool, bool], int] = field(default_factory=dict, compare=False)


def plan(machine: Machine) -> Plan | None:
    """The machine's groups, or None when a group sum might differ from the simulation."""
    mm, tables, memory = machine.memory_map, machine.config_tables, machine.memory
    # Two descriptors are as small as a group (and every group is two: no recursion).
    if mm is None or len(mm.descriptors) <= 2:
        return None
    tables = tables or ()  # no table line: simulate reads none either
    if machine.firmware_state is not None or machine.system_table_address is not None:
        return None
    if type(memory) is not PhysicalMemory or memory.background is not Fill.UNKNOWN:
        return None
    if memory.scrubbed() or len({t.guid for t in tables}) != len(tables):
        return None
    descs = mm.descriptors
    starts, pages, ends = columns(descs)
    if not none_bogus(starts, pages, ends) or not all(map(operator.le, ends[:-1], starts[1:])):
        return None  # unsorted, overlapping or invalid: lookups differ between maps
    members: dict[int, list[ConfigurationTable]] = {}
    where: dict[Guid, int] = {}
    for t in tables:
        kt = known_table(t.guid)
        if kt is not None and kt.name in _LINKED and memory.read(t.table, 1) is not None:
            return None  # known bytes: reserved or not by the event log's format
        i = bisect.bisect_right(starts, t.table) - 1
        if i < 0 or not t.table < descs[i].end or descs[i].type == _FREE:
            return None
        if t.guid == ESRT_GUID and not _copy_fits(memory, t.table, descs[i].end):
            return None
        members.setdefault(i, []).append(t)
    bs = [d for d in descs if d.type in _BS]
    groups = []
    for k, (i, inside) in enumerate(members.items()):
        d = descs[i]
        for t in inside:
            where[t.guid] = k
        groups.append(_group(machine, d, tuple(inside)))
    return Plan(
        machine=machine,
        groups=tuple(groups),
        bare=machine.with_(
            memory_map=MemoryMap((free_gap(()),)),
            config_tables=(),
            memory=PhysicalMemory(background=Fill.UNKNOWN),
            firmware_vendor=None,
            notes=[],
        ),
        where=where,
        bs_bytes=sum(d.size for d in bs),
        native_kept=sum(d.size for d in bs if _native_keeps(d)),
        starts=tuple(starts),
        free_below_4g=tuple(
            (d.phys_addr, min(d.end, FOUR_GIB))
            for d in descs
            if d.type == _FREE and d.phys_addr < FOUR_GIB
        ),
    )


def _copy_fits(memory: PhysicalMemory, addr: int, end: int) -> bool:
    """Whether every copy Xen makes of the ESRT (at most the room to its descriptor's end,
    boot.c get_esrt_size; at most the size its header gives) fits a group's free gap with the
    memory-map buffer beside it."""
    head = memory.read(addr, ESRT_HEADER_SIZE)
    if head is None:
        return True  # get_esrt_size reads the header: unknown, nothing is copied
    return min(end - addr, esrt_size(int.from_bytes(head[:4], "little"))) <= FREE_NEEDED // 2


def _native_keeps(d: MemoryDescriptor) -> bool:
    """Linux x86 quirks.c efi_reserve_boot_services on a region no table touches: RUNTIME
    already, meeting memblock's early reservations (early_reserve_memory, reserve_bios_regions)
    or not all E820 RAM (can_free_region; setup_e820's type, trim_bios_range inside the
    reservations)."""
    if d.attribute & _RUNTIME:
        return True
    if d.phys_addr < _LOW_END and any(s < d.end and d.phys_addr < e for s, e in LOW_RESERVED):
        return True
    return linux_stub_e820_type(d.type, d.attribute) is not E820Type.RAM


def _group(machine: Machine, d: MemoryDescriptor, inside: tuple[ConfigurationTable, ...]) -> Group:
    assert isinstance(machine.memory, PhysicalMemory)
    bare = canonical_mod.trimmed(machine.memory, d, inside)
    under_xen = canonical_mod.trimmed(machine.memory, d, inside, bare_metal=False)
    full = _with_tables(machine, bare, inside)
    if under_xen == bare:
        return Group(full, full, bare, bare)
    return Group(full, _with_tables(machine, under_xen, inside), bare, under_xen)


def _with_tables(
    machine: Machine, d: MemoryDescriptor, inside: tuple[ConfigurationTable, ...]
) -> Machine:
    """The group's machine: its descriptor, its tables and the free gap."""
    gap = free_gap([(d.phys_addr, d.end)])
    mm = MemoryMap(tuple(sorted((d, gap), key=lambda x: x.phys_addr)))
    return machine.with_(memory_map=mm, config_tables=inside, notes=[])


def _bs_cost(spec: PathSpec, bs_bytes: int, native_kept: int) -> Cost:
    """paths.simulate ``_cost`` of a map holding no table: bare-metal Linux keeps what
    efi_reserve_boot_services keeps on its own (``native_kept``); Xen copies nothing, ``-mapbs``
    keeps every boot-services byte and the reserve-hypercall proposal holds them until dom0 is
    done."""
    if spec.native:
        return Cost(native_kept, 0)
    if spec.mapbs:
        return Cost(bs_bytes, 0)
    if spec.policy is Policy.RESERVE_HYPERCALL:
        return Cost(0, bs_bytes)
    return Cost(0, 0)


def descriptor_cost(d: MemoryDescriptor, spec: PathSpec) -> Cost:
    """What a group's machine without its tables (``d`` beside the free gap) costs on
    ``spec``."""
    bs = d.size if d.type in _BS else 0
    return _bs_cost(spec, bs, bs if bs and _native_keeps(d) else 0)


def base_cost(p: Plan, spec: PathSpec) -> Cost:
    """The path's cost on the machine without tables (paths.simulate ``_cost``)."""
    return _bs_cost(spec, p.bs_bytes, p.native_kept)


def _allocations_fit(
    p: Plan, spec: PathSpec, parts: list[tuple[PathResult, Cost]]
) -> bool:
    """Whether everything Xen allocates before ExitBootServices (efi_relocate_esrt's
    memory-map buffer, every copy the groups made, pool pages rounded up) fits one free region
    below 4 GiB above the dom0 image: EDK II takes the highest free range that fits
    (Page.c FindFreePages), so each allocation lands there or higher, never on the image's
    E820 rows, and none fails where a group's did not."""
    mm = p.machine.memory_map
    assert mm is not None
    need = (len(mm.descriptors) + 8) * mm.desc_size
    need += sum(r.copied for full, _ in parts for r in full.relocations) + ALLOCATION_SLACK
    hi = dom0_kernel_range(spec)[1]
    return any(e - max(s, hi) >= need for s, e in p.free_below_4g if e > hi)


def _e820_rows(p: Plan, spec: PathSpec) -> int:
    """How many rows Xen's efi_arch_process_memory_map makes of the firmware map on ``spec``
    (merged neighbours of one type; xen.build_e820), once per kind of path."""
    kind = (spec.mapbs, spec.xen_runtime_attr_reserved)
    mm = p.machine.memory_map
    assert mm is not None
    if len(mm.descriptors) <= E820_ROOM:
        return len(mm.descriptors)  # never more rows than descriptors
    if kind not in p.e820_rows:
        p.e820_rows[kind] = xen.e820_row_count(mm, spec)
    return p.e820_rows[kind]


def _dom0_halt(p: Plan, spec: PathSpec) -> Halt | None:
    """Linux x86 xen_memory_setup on the descriptors under the dom0 image (types as Xen's
    efi_arch_process_memory_map gives them; with the rows short of E820MAX none is lost and
    every allocation lands above the image)."""
    lo, hi = dom0_kernel_range(spec)
    mm = p.machine.memory_map
    assert mm is not None
    i = max(0, bisect.bisect_right(p.starts, lo) - 1)
    under = []
    while i < len(p.starts) and p.starts[i] < hi:
        d = mm.descriptors[i]
        if d.end > lo and d.size:
            under.append(E820Range(d.phys_addr, d.end, xen.e820_type(d, spec)))
        i += 1
    return xen_dom0_memory_setup(spec, under)


def _halted(p: Plan, spec: PathSpec, halt: Halt, cost: Cost) -> PathResult:
    """paths.simulate on a dom0 that dies in xen_memory_setup: every verdict unknown, no sysfs,
    the cost of what Xen did before (its relocations, ``-mapbs``'s reservation)."""
    reason = f"the dom0 never starts: {halt.message} ({halt.source})"
    tables: dict[Guid, TableVerdict] = {}
    for ct in p.machine.config_tables or ():
        kt = known_table(ct.guid)
        name = kt.name if kt else str(ct.guid)
        tables[ct.guid] = TableVerdict(ct.guid, name, Verdict.UNKNOWN, reason, ct.table)
    if ESRT_GUID not in tables:
        tables[ESRT_GUID] = TableVerdict(ESRT_GUID, "ESRT", Verdict.UNKNOWN, reason)
    return PathResult(
        spec=spec,
        tables=tables,
        log=[halt.message],
        esrt_sysfs=False,
        sysfs=None,
        fwupd_devices=None,
        cost=cost,
        booted=False,
        halt=halt,
    )


def _copies_in_order(
    p: Plan, parts: list[tuple[PathResult, Cost]]
) -> list[xen.Relocation] | None:
    """Every copy the groups made, in the whole machine's order (xen.py _relocate_known walks
    the configuration array, then efi_relocate_esrt copies the ESRT); None when together they
    might not fit the free region the whole machine has."""
    made = {r.guid: r for full, _ in parts for r in full.relocations}
    order = [made[t.guid] for t in p.machine.config_tables or () if t.guid in made]
    order.sort(key=lambda r: r.guid == ESRT_GUID)  # stable: the ESRT last
    if sum(r.copied for r in order) > FREE_NEEDED // 2:
        return None
    return order


def _pool_bytes(p: Plan, copies: list[xen.Relocation]) -> int:
    """What the copies cost together: the edk2 pool model allocating each in turn from fresh
    pools (Pool.c CoreAllocatePoolI) in the free gap alone, the pages each pool type grows by."""
    bs = BootServices.from_machine(p.bare)
    total = 0
    for r in copies:
        before = _bytes_of(bs, r.memory_type)
        bs.allocate_pool(r.memory_type, r.copied)
        total += _bytes_of(bs, r.memory_type) - before
    return total


def _bytes_of(bs: BootServices, mtype: int) -> int:
    return sum(d.size for d in bs.descriptors if d.type == mtype)


def combine(p: Plan, spec: PathSpec, simulate: Simulate) -> PathResult | None:
    """The whole machine's result on ``spec`` in words, from its groups; None where the sum
    might differ (see the module text)."""
    halt = None
    if not spec.native:
        if _e820_rows(p, spec) > E820_ROOM:
            return None  # Xen drops rows past E820MAX: what it drops is not a group's
        halt = _dom0_halt(p, spec)
        if halt is not None and spec.policy is Policy.RESERVE_HYPERCALL:
            return None  # the groups' dom0 reservations never happen
    parts = [
        (simulate(g.full, spec), descriptor_cost(g.own, spec))
        if spec.native
        else (simulate(g.xen_full, spec), descriptor_cost(g.xen_own, spec))
        for g in p.groups
    ]
    if not all(full.booted for full, _ in parts):
        return None
    if not spec.native and not _allocations_fit(p, spec, parts):
        return None
    base = base_cost(p, spec)
    reserved = base.reserved_bytes + sum(
        f.cost.reserved_bytes - e.reserved_bytes for f, e in parts
    )
    held = base.held_during_boot_bytes + sum(
        f.cost.held_during_boot_bytes - e.held_during_boot_bytes for f, e in parts
    )
    if spec.policy is Policy.RELOCATE_KNOWN:
        # Its copies share the ACPI-reclaim pool: what they cost is replayed in Xen's order
        # (relocate_known in firmware order, then efi_relocate_esrt), not summed per group.
        copies = _copies_in_order(p, parts)
        if copies is None:
            return None
        reserved = base_cost(p, spec).reserved_bytes + _pool_bytes(p, copies)
    if halt is not None:
        return _halted(p, spec, halt, Cost(reserved, held))
    tables: dict[Guid, TableVerdict] = {}
    firmware = p.machine.config_tables or ()
    for t in firmware:
        tables[t.guid] = parts[p.where[t.guid]][0].tables[t.guid]
    if ESRT_GUID in p.where:
        esrt = parts[p.where[ESRT_GUID]][0]
    else:
        tables[ESRT_GUID] = TableVerdict(
            ESRT_GUID, "ESRT", Verdict.ABSENT, "the firmware installs no ESRT"
        )
        esrt = simulate(p.bare, spec)  # no table, no sysfs: the map does not matter
    marked = {g for full, _ in parts for g in full.unusable}
    return PathResult(
        spec=spec,
        tables=tables,
        log=[],
        esrt_sysfs=esrt.esrt_sysfs,
        # the group's result may be the cache's own (memo simulate's ``shared``)
        sysfs=None if esrt.sysfs is None else dict(esrt.sysfs),
        fwupd_devices=None if esrt.fwupd_devices is None else list(esrt.fwupd_devices),
        cost=Cost(reserved, held),
        esrt_bytes=esrt.esrt_bytes,
        unusable=tuple(t.guid for t in firmware if t.guid in marked),
        esrt_reserving=esrt.esrt_reserving,
        esrt_check=esrt.esrt_check,
    )


__all__ = [
    "E820_ROOM", "FREE_NEEDED", "Group", "Plan", "base_cost", "combine", "descriptor_cost", "plan"
]
