"""One simulation per kind of placement: a machine reduced to one descriptor and the tables in
it (and the free 16 MiB :func:`~efihandoff.sources.logmachine.candidate_machine` and
:mod:`efihandoff.paths.grouped` add for firmware-side copies) moved to a canonical address of its
address class.

Where such a table lies inside a class does not change any word a simulation gives of it: its
verdict, whether the stack boots, what the dom0 marks unusable, whether efi_esrt_init reserves,
whether the ESRT reaches sysfs and what the files hold. Every address rule the model follows is
a boundary between classes or relative to the table: Linux never frees boot-services memory below
1 MiB (x86 efi_free_boot_services) and keeps the BIOS regions below it (reserve_bios_regions);
EDK II allocates from the top of free memory below 4 GiB (Page.c FindFreePages), so whether the
table's descriptor lies above or below the free gap and 4 GiB decides where a copy lands; a PV
dom0 halts when its kernel image lies on non-RAM (Linux x86 xen_memory_setup), decided against
the spec's ``dom0_kernel`` range. The classes below keep each of those on one side; what the
simulation reads of the table (bytes, room to the descriptor end, page offset) is moved with it,
and the pages no table reaches are left out (:func:`trimmed`), which changes what the machine
costs but no word (:mod:`efihandoff.paths.grouped` takes costs as differences).
The firmware vendor only reaches the log line efi_systab_report_header prints, so it is left
out. ``tests/paths/test_canonical.py`` checks the
words against a simulation in place over random placements, types, attributes, headers and
stacks.

The addresses inside reasons and log lines are the canonical ones, so only callers that read the
words use it: ``survey`` (:func:`efihandoff.paths.memo.words_only`). Anything else (scrubbed or
random-filled memory, a pool state, a real system table, a descriptor straddling a class) is
simulated where it is.
"""

from __future__ import annotations

import operator
import pickle
from dataclasses import dataclass, field
from functools import cached_property

from efihandoff.machine import FREE_GAP_BASE, FREE_GAP_SIZE, Fill, Machine, PhysicalMemory
from efihandoff.paths.linux import MEMBLOCK_RESERVING, dom0_kernel_range
from efihandoff.paths.presets import PathSpec
from efihandoff.paths.xen import BS_TYPES
from efihandoff.rules.tables import known as known_table
from efihandoff.uefi.memmap import MemoryDescriptor, MemoryMap, MemoryType
from efihandoff.uefi.systab import ConfigurationTable
from efihandoff.uefi.tables import table_size

PAGE = 4096
# The free gap candidate_machine adds for a table below it: 16 MiB of conventional memory.
GAP_BASE, GAP_PAGES = FREE_GAP_BASE, FREE_GAP_SIZE // PAGE
# [lo, hi): address classes whose inside the model never tells apart (see the module text):
# between the BIOS regions (below 1 MiB) and the PV dom0 image; inside the image, cut where the
# default images of the Linux versions end (paths.linux dom0_kernel_range: 6.3+ [16 MiB,
# 18 MiB), 6.12 to 66 MiB, 6.1 to 74 MiB), so each of these classes lies wholly inside or wholly
# outside every default image; above the images and below the free gap; above the free gap and
# below 4 GiB (where firmware keeps its flash and SMBIOS); above 4 GiB and below the stand-in
# system table simulate places for a machine known from evidence (0xFFFF_F000_0000). None
# touches the free gap.
CLASSES = (
    (0x10_0000, 0x100_0000),
    (0x100_0000, 0x120_0000),
    (0x120_0000, 0x420_0000),
    (0x420_0000, 0x4A0_0000),
    (0x4A0_0000, 0x500_0000),
    (0x500_0000, 0xE000_0000),
    (0xF200_0000, 0x1_0000_0000),
    (0x2_0000_0000, 0x2000_0000_0000),
)
MAX_ENTRIES = 32768  # canonical results kept per process (words only: about 1 KiB each)
_BS = frozenset(int(t) for t in BS_TYPES)
_START = operator.attrgetter("phys_addr")
_SECOND = operator.itemgetter(1)


@dataclass(frozen=True)
class Placement:
    """A reduced machine's canonical placement: how far it moves, and what a simulation reads
    of it there (``key``: equal keys, equal machines to a simulation); the moved machine itself
    is built when first asked for (a cached question never needs it)."""

    delta: int
    key: tuple[object, ...] = field(repr=False)
    source: Machine = field(repr=False, compare=False)
    own: MemoryDescriptor = field(repr=False, compare=False)  # trimmed, where it was
    gap: MemoryDescriptor = field(repr=False, compare=False)
    top: int = field(repr=False, compare=False)  # the end of the written pages moved with it

    @property
    def span(self) -> tuple[int, int]:
        """The canonical [start, end) of the table's descriptor."""
        return self.own.phys_addr + self.delta, self.own.end + self.delta

    @cached_property
    def machine(self) -> Machine:
        """The reduced machine at its canonical address."""
        m, own, delta = self.source, self.own, self.delta
        assert m.memory_map is not None and isinstance(m.memory, PhysicalMemory)
        descs = sorted((own.replace(phys_addr=own.phys_addr + delta), self.gap), key=_START)
        return m.with_(
            memory_map=MemoryMap(tuple(descs), m.memory_map.desc_size, m.memory_map.desc_version),
            config_tables=tuple(
                ConfigurationTable(t.guid, t.table + delta) for t in m.config_tables or ()
            ),
            memory=m.memory.moved(own.phys_addr, self.top, delta),
            firmware_vendor=None,
        )


def canonical(machine: Machine) -> Placement | None:
    """``machine`` moved to its class's canonical address, or None when it is not a reduced
    machine (one descriptor holding every table, and the free gap) that can be moved (see the
    module text)."""
    mm, tables, memory = machine.memory_map, machine.config_tables, machine.memory
    if mm is None or tables is None or len(mm.descriptors) != 2:
        return None
    if machine.firmware_state is not None or machine.system_table_address is not None:
        return None
    if type(memory) is not PhysicalMemory or memory.background is not Fill.UNKNOWN:
        return None
    if memory.scrubbed():
        return None
    gap = next((d for d in mm.descriptors if _is_gap(d.type, d.phys_addr, d.num_pages)), None)
    if gap is None:
        return None
    own = mm.descriptors[0] if mm.descriptors[1] is gap else mm.descriptors[1]
    if not all(own.phys_addr <= t.table < own.end for t in tables):
        return None
    if tables:
        own = trimmed(memory, own, tables)
    start, end = own.phys_addr, own.end
    cls = next((c for c in CLASSES if c[0] <= start and end <= c[1]), None)
    if cls is None:
        return None
    delta = cls[0] - start
    # Every read starts at a table and goes up; one that leaves the descriptor meets what
    # follows it only through known bytes: the run of written pages from its end is moved
    # with it, and known bytes past an unwritten page (unknown: no fill, no scrub) are out
    # of reach.
    written = set(memory.page_addresses())
    top = end
    while top in written:
        top += PAGE
    if top > cls[1]:
        return None
    # What memo.machine_key reads of the moved machine (its vendor and pool state are None, it
    # has no system table address), as plain values.
    rows = sorted(
        (
            (own.type, start + delta, own.num_pages, own.attribute, own.virt_addr),
            (gap.type, gap.phys_addr, gap.num_pages, gap.attribute, gap.virt_addr),
        ),
        key=_SECOND,
    )
    system_table = machine.system_table
    key = (
        tuple(rows),
        mm.desc_size,
        mm.desc_version,
        None if system_table is None else pickle.dumps(system_table, pickle.HIGHEST_PROTOCOL),
        machine.config_table_address,
        tuple((t.guid.value, t.table + delta) for t in tables),
        memory.moved_state(start, top, delta),
    )
    return Placement(delta, key, machine, own, gap, top)


def trimmed(
    memory: PhysicalMemory,
    d: MemoryDescriptor,
    tables: tuple[ConfigurationTable, ...],
    *,
    bare_metal: bool = True,
) -> MemoryDescriptor:
    """``d`` without the pages no table's verdict depends on: those below the lowest table's
    page (reads go up from a table; room is measured to the end) and those past where reads
    end: when nothing of the descriptor is known (no size can be read, so no room is
    compared), past the page after the highest table's; else a page past the tables' sizes
    (:func:`_reach`) at the least. On bare metal (``bare_metal``), not a boot-services descriptor
    holding a table Linux memblock-reserves: efi_reserve_boot_services then keeps it whole (its
    size is a cost); a PV dom0's memblock is its own pseudo-physical memory."""
    if bare_metal and d.type in _BS and any(
        (kt := known_table(t.guid)) is not None and kt.name in MEMBLOCK_RESERVING for t in tables
    ):
        return d
    first = min(t.table for t in tables) & ~(PAGE - 1)
    end = d.end
    top = (max(t.table for t in tables) & ~(PAGE - 1)) + 2 * PAGE
    if not any(d.phys_addr <= a < d.end for a in memory.page_addresses()):
        end = min(end, top)
    else:
        # Known bytes: every read and room check stops where the tables' sizes end (a size
        # over the room is clipped at the descriptor's end: then the end stays); a page more
        # keeps a reservation from touching the end where it did not.
        reach = max(_reach(memory, t) for t in tables)
        end = min(end, max(top, ((reach + PAGE - 1) & ~(PAGE - 1)) + PAGE))
    return d.replace(phys_addr=first, num_pages=(end - first) // PAGE)


def _reach(memory: PhysicalMemory, t: ConfigurationTable) -> int:
    """Where the model's reads of table ``t`` end: its size by its rule (uefi.tables
    table_size, as paths.simulate, linux and xen read it), or a page (simulate
    ``_known_bytes``'s reach when the size is unknown)."""
    size = table_size(t.guid, memory.read, t.table, None).size
    return t.table + (size if size is not None else PAGE)


def applies(spec: PathSpec) -> bool:
    """Whether ``spec``'s own address rules leave every class alone: each class lies wholly
    outside its PV dom0 image or wholly inside it (every default image does: xen_memory_setup
    then halts on a descriptor's type, wherever in the class it lies)."""
    if spec.native:
        return True
    lo, hi = dom0_kernel_range(spec)
    return all(hi <= c_lo or c_hi <= lo or lo <= c_lo < c_hi <= hi for c_lo, c_hi in CLASSES)


def _is_gap(mtype: int, base: int, pages: int) -> bool:
    return mtype == MemoryType.EfiConventionalMemory and base == GAP_BASE and pages == GAP_PAGES


__all__ = ["CLASSES", "MAX_ENTRIES", "Placement", "applies", "canonical", "trimmed"]
