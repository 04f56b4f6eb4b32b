"""One simulation per kind of placement: a machine reduced to one table (the table, the
descriptor holding it and the free 16 MiB :func:`~efihandoff.sources.logmachine.candidate_machine`
adds for firmware-side copies) moved to a canonical address of its address class.

Where such a table lies inside a class does not change any word a simulation gives of it: its
verdict, whether the stack boots, what the dom0 marks unusable, whether efi_esrt_init reserves,
whether the ESRT reaches sysfs and what the files hold. Every address rule the model follows is
a boundary between classes or relative to the table: Linux never frees boot-services memory below
1 MiB (x86 efi_free_boot_services) and keeps the BIOS regions below it (reserve_bios_regions);
EDK II allocates from the top of free memory below 4 GiB (Page.c FindFreePages), so whether the
table's descriptor lies above or below the free gap and 4 GiB decides where a copy lands; a PV
dom0 halts when its kernel image lies on non-RAM (Linux x86 xen_memory_setup), decided against
the spec's ``dom0_kernel`` range. The classes below keep each of those on one side; what the
simulation reads of the table (bytes, room to the descriptor end, page offset) is moved with it.
The firmware vendor only reaches the log line efi_systab_report_header prints, so it is left
out. ``tests/paths/test_canonical.py`` checks the
words against a simulation in place over random placements, types, attributes, headers and
stacks.

The addresses inside reasons and log lines are the canonical ones, so only callers that read the
words use it: ``survey`` (:func:`efihandoff.paths.memo.words_only`). Anything else (scrubbed or
random-filled memory, a pool state, a real system table, known bytes near but outside the
table's window, a table straddling a class) is simulated where it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.paths.linux import dom0_kernel_range
from efihandoff.paths.presets import PathSpec
from efihandoff.uefi.memmap import MemoryMap, MemoryType
from efihandoff.uefi.systab import ConfigurationTable

PAGE = 4096
# The free gap candidate_machine adds for a table below it: 16 MiB of conventional memory.
GAP_BASE, GAP_PAGES = 0xF000_0000, (16 << 20) // PAGE
# [lo, hi): address classes whose inside the model never tells apart (see the module text);
# the first starts above the default PV dom0 image [16 MiB, 74 MiB) and the BIOS regions and
# ends below the free gap; the second lies above 4 GiB and below the stand-in system table
# simulate places for a machine known from evidence (0xFFFF_F000_0000).
CLASSES = ((0x0500_0000, 0xE000_0000), (0x2_0000_0000, 0x2000_0000_0000))
NEAR = 64 << 20  # known bytes this close to the table's descriptor move with it
MAX_ENTRIES = 4096  # canonical results kept per process


@dataclass(frozen=True)
class Placement:
    """A reduced machine at its canonical address, and how far it was moved."""

    machine: Machine
    delta: int
    span: tuple[int, int]  # the canonical [start, end) of the table's descriptor


def canonical(machine: Machine) -> Placement | None:
    """``machine`` moved to its class's canonical address, or None when it is not a reduced
    one-table machine whose placement can be moved (see the module text)."""
    mm, tables, memory = machine.memory_map, machine.config_tables, machine.memory
    if mm is None or tables is None or len(tables) != 1 or len(mm.descriptors) != 2:
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
    table = tables[0]
    start, end = own.phys_addr, own.end
    if not start <= table.table < end:
        return None
    cls = next((c for c in CLASSES if c[0] <= start and end <= c[1]), None)
    if cls is None:
        return None
    delta = cls[0] - start
    lo, hi = start - NEAR, end + NEAR
    for page in memory.page_addresses():
        if lo <= page < start - PAGE or end + PAGE <= page < hi:
            return None  # known bytes near the table: a read might reach them
    moved = memory.moved(max(0, start - PAGE), end + PAGE, delta)
    descs = sorted((own.replace(phys_addr=start + delta), gap), key=lambda d: d.phys_addr)
    placed = machine.with_(
        memory_map=MemoryMap(tuple(descs), mm.desc_size, mm.desc_version),
        config_tables=(ConfigurationTable(table.guid, table.table + delta),),
        memory=moved,
        firmware_vendor=None,
    )
    return Placement(placed, delta, (start + delta, end + delta))


def applies(placement: Placement, spec: PathSpec) -> bool:
    """Whether ``spec``'s own address rules leave the placement's class alone: its PV dom0
    image lies outside every class (the default does)."""
    if spec.native:
        return True
    lo, hi = dom0_kernel_range(spec)
    return all(hi <= c_lo or c_hi <= lo for c_lo, c_hi in CLASSES)


def _is_gap(mtype: int, base: int, pages: int) -> bool:
    return mtype == MemoryType.EfiConventionalMemory and base == GAP_BASE and pages == GAP_PAGES


__all__ = ["CLASSES", "MAX_ENTRIES", "NEAR", "Placement", "applies", "canonical"]
