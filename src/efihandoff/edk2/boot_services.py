"""Firmware boot services as edk2 implements them, enough to replay a boot.

Sources (tianocore/edk2, edk2-stable202211 as Debian's OVMF 2022.11 ships it, same in master as
read in 2026): MdeModulePkg/Core/Dxe/Mem/Page.c (``CoreAllocatePages``/``FindFreePages``:
AllocateAnyPages takes the type's memory-type-information bin first, then searches top-down
below the allocation limit; ``CoreAddRange`` coalesces neighbours of equal type and attribute;
``CoreConvertPagesEx`` runs DEBUG_CLEAR_MEMORY over pages it frees; ``CoreAddMemoryDescriptor``
allocates then frees every bin, so a DEBUG build's free bin pages hold the clear value),
Mem/Pool.c (``CoreAllocatePoolI``: a 24-byte POOL_HEAD before the caller's bytes and a 16-byte
POOL_TAIL right after them, the size rounded up to 8; per memory type, free blocks on one LIFO
list per bin size; an empty bin takes a block of the next larger non-empty bin, else a fresh
page, serves the request from its head and carves the rest into free blocks, largest bins first;
requests whose block would not fit a page-sized bin get pages of their own; DEBUG_CLEAR_MEMORY
over the caller's bytes. ``CoreFreePoolI``: DEBUG_CLEAR_MEMORY over the whole block, back on its
bin's list, and the page freed once every block in it is free), Misc/InstallConfigurationTable.c
(``CoreInstallConfigurationTable``: replace in place for a known GUID, append otherwise, the array
grown by 0x10 entries in runtime pool, system-table CRC32 recomputed), MdePkg/Include/Library/
DebugLib.h (``DEBUG_CLEAR_MEMORY``: PcdDebugClearMemoryValue, 0xAF, when the build enables it).

Simplified: the free-list links (pointers into the DXE core's list heads) are not written, only
each free block's signature and bin index; boot services rebuilt from evidence know no pool
(the first allocation of each type takes a fresh page) unless the Machine carries the state a
scenario gave (:class:`PoolState`, from its ``[[pool]]`` declarations).
"""

from __future__ import annotations

import bisect
import functools
import struct
from dataclasses import dataclass, field, replace

from efihandoff.edk2.pool import (
    PAGE_BIN,
    POOL_ALIGN,
    POOL_BINS,
    POOL_FREE_SIGNATURE,
    POOL_GRANULARITY,
    POOL_HEAD_SIGNATURE,
    POOL_HEAD_SIZE,
    POOL_OVERHEAD,
    POOL_TAIL_SIGNATURE,
    POOL_TAIL_SIZE,
    PoolState,
    pool_bin,
)
from efihandoff.errors import EfiHandoffError
from efihandoff.intervals import merge
from efihandoff.machine import DEBUG_CLEAR_VALUE, Fill, Machine, PhysicalMemory
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import (
    EDK2_DESCRIPTOR_SIZE,
    PAGE_SHIFT,
    PAGE_SIZE,
    MemoryAttribute,
    MemoryDescriptor,
    MemoryMap,
    MemoryType,
)
from efihandoff.uefi.systab import (
    CONFIG_TABLE_SIZE_64,
    SYSTEM_TABLE_SIZE_64,
    ConfigurationTable,
    SystemTable,
    build_config_tables,
    parse_config_tables,
)

# edk2 InstallConfigurationTable.c EFI_CONFIGURATION_TABLE_EXPANSION_SIZE
CONFIG_TABLE_GROWTH = 0x10
DEFAULT_ALLOCATION_LIMIT = 1 << 32  # OVMF allocates below 4 GiB unless asked otherwise

RUNTIME_TYPES = frozenset({MemoryType.EfiRuntimeServicesCode, MemoryType.EfiRuntimeServicesData})
_CONVENTIONAL = int(MemoryType.EfiConventionalMemory)
_RUNTIME = int(MemoryAttribute.RUNTIME)
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
# The array's bytes decide its entries (immutable): a simulation reads it several times.
_parsed_tables = functools.lru_cache(maxsize=1024)(parse_config_tables)


def _start(d: MemoryDescriptor) -> int:
    return d.phys_addr


class OutOfResources(EfiHandoffError):
    """EFI_OUT_OF_RESOURCES: no free memory of the size asked."""


@dataclass
class BootServices:
    """The firmware between power-on and ExitBootServices: its memory map, its memory, its
    system table and configuration array."""

    descriptors: list[MemoryDescriptor]
    memory: PhysicalMemory
    allocation_limit: int = DEFAULT_ALLOCATION_LIMIT
    system_table_address: int | None = None
    system_table: SystemTable | None = None
    config_capacity: int = 0
    exited: bool = False
    log: list[str] = field(default_factory=list)
    # A DEBUG build: DEBUG_CLEAR_MEMORY fills what the pool hands out and what the firmware
    # frees with PcdDebugClearMemoryValue (edk2 MdePkg DebugLib.h, Pool.c, Page.c).
    debug_clear: bool = False
    _pool_sizes: dict[int, int] = field(default_factory=dict)
    # Per memory type, per bin below PAGE_BIN: free block heads, the next one taken last.
    _free: dict[int, list[list[int]]] = field(default_factory=dict)
    # Per memory type: the extents [start, end) of its memory-type-information bin and the
    # free pages in them (the map shows them as that type; Page.c CoreGetMemoryMap).
    _bin_extents: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    _bin_free: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    _blocks: dict[int, tuple[int, int]] = field(default_factory=dict)  # data -> (type, Size)
    _declared: list[tuple[int, int]] = field(default_factory=list)  # declare_pool ranges, sorted

    @classmethod
    def from_machine(cls, machine: Machine) -> BootServices:
        """Firmware state just before the OS loader calls ExitBootServices."""
        if machine.memory_map is None:
            raise EfiHandoffError("the machine has no memory map to replay boot services on")
        memory = machine.memory if isinstance(machine.memory, PhysicalMemory) else PhysicalMemory()
        bs = cls(sorted(machine.memory_map.descriptors, key=lambda d: d.phys_addr), memory.copy())
        bs.system_table_address = machine.system_table_address
        bs.system_table = machine.system_table
        if machine.system_table is not None:
            n = machine.system_table.nr_tables
            bs.config_capacity = -(-n // CONFIG_TABLE_GROWTH) * CONFIG_TABLE_GROWTH
        state = machine.firmware_state
        if isinstance(state, PoolState):
            bs.debug_clear = state.debug_clear
            for mtype, index, heads in state.free:
                bs._lists(mtype)[index][:] = heads
            for mtype, extents, free in state.bins:
                bs._bin_extents[mtype] = list(extents)
                bs._bin_free[mtype] = list(free)
        return bs

    def pool_state(self) -> PoolState:
        """The pool as it is now (see :class:`PoolState`)."""
        return PoolState(
            self.debug_clear,
            tuple(
                (t, i, tuple(heads))
                for t, lists in sorted(self._free.items())
                for i, heads in enumerate(lists)
                if heads
            ),
            tuple(
                (t, tuple(self._bin_extents[t]), tuple(self._bin_free.get(t, ())))
                for t in sorted(self._bin_extents)
            ),
        )

    # -- pages ---------------------------------------------------------------------------------

    def allocate_pages(self, mtype: int, pages: int, *, address: int | None = None) -> int:
        """AllocatePages: AllocateAddress when ``address`` is given, else AllocateAnyPages from
        the top of free memory below the allocation limit (edk2 Page.c FindFreePages)."""
        if self.exited:
            raise EfiHandoffError("boot services have exited")
        size = pages << PAGE_SHIFT
        if pages <= 0:
            raise OutOfResources("zero pages")
        if address is None:
            # Page.c FindFreePages: the type's bin first (its free pages keep the type in the map)
            got = self._from_bin(mtype, size)
            if got is not None:
                return got
            address = self._find_free(size)
        self._convert(address, address + size, mtype)
        return address

    def _from_bin(self, mtype: int, size: int) -> int | None:
        free = self._bin_free.get(mtype)
        for i in range(len(free or ()) - 1, -1, -1):
            assert free is not None
            lo, hi = free[i]
            if hi - lo >= size:
                free[i : i + 1] = [(lo, hi - size)] if hi - size > lo else []
                return hi - size
        return None

    def free_pages(self, start: int, pages: int) -> None:
        """FreePages (edk2 Page.c CoreFreePages, CoreConvertPagesEx): back to free memory, filled
        with the clear value in a DEBUG build; pages of a type's bin stay that type in the map."""
        end = start + (pages << PAGE_SHIFT)
        if self.debug_clear:
            self.memory.scrub(start, end, Fill.DEBUG_CLEAR)
        i = bisect.bisect_right(self.descriptors, start, key=_start) - 1
        d = self.descriptors[i] if i >= 0 else None
        if d is None or not (d.phys_addr <= start and end <= d.end) or d.type == _CONVENTIONAL:
            return  # not pages the model allocated: nothing to give back
        if any(lo <= start and end <= hi for lo, hi in self._bin_extents.get(d.type, ())):
            free = self._bin_free.setdefault(d.type, [])
            free[:] = merge([*free, (start, end)], keep_empty=True)  # CoreAddRange coalesces
            return
        attr = d.attribute & ~_RUNTIME
        new = MemoryDescriptor(_CONVENTIONAL, start, pages, attr)
        parts = []
        if start > d.phys_addr:
            parts.append(d.replace(num_pages=(start - d.phys_addr) >> PAGE_SHIFT))
        parts.append(new)
        if end < d.end:
            parts.append(d.replace(phys_addr=end, num_pages=(d.end - end) >> PAGE_SHIFT))
        descs = self.descriptors
        lo, hi = i, i + 1
        k = parts.index(new)
        if k == 0 and i > 0 and _joins(descs[i - 1], new):
            lo -= 1
            parts[0] = new = descs[i - 1].replace(num_pages=descs[i - 1].num_pages + pages)
        if parts[-1] is new and hi < len(descs) and _joins(new, descs[hi]):
            parts[-1] = new.replace(num_pages=new.num_pages + descs[hi].num_pages)
            hi += 1
        descs[lo:hi] = parts

    def declare_pool(self, mtype: int, start: int, end: int) -> None:
        """Free room the firmware's pool of ``mtype`` already holds (a scenario's ``[[pool]]``),
        inside memory the map gives that type: whole pages are free pages of the type's bin
        (Page.c CoreAddMemoryDescriptor allocated and freed them: the clear value in a DEBUG
        build); a smaller range inside one page is carved into free blocks as Pool.c carves a
        page, largest bins first (a declared block was freed: CoreFreePoolI cleared it in a
        DEBUG build). Declared later, taken first (each list is LIFO)."""
        i = bisect.bisect_right(self.descriptors, start, key=_start) - 1
        d = self.descriptors[i] if i >= 0 else None
        if d is None or d.type != mtype or not (d.phys_addr <= start < end <= d.end):
            raise OutOfResources(f"{start:#x}-{end:#x} is not inside one region of that type")
        k = bisect.bisect_right(self._declared, (start, end))
        for lo, hi in self._declared[max(0, k - 1) : k + 1]:
            if lo < end and start < hi:
                raise OutOfResources(f"{start:#x}-{end:#x} overlaps room declared before")
        self._declared.insert(k, (start, end))
        if not (start | end) & (PAGE_SIZE - 1):
            self._bin_extents.setdefault(mtype, []).append((start, end))
            bisect.insort(self._bin_free.setdefault(mtype, []), (start, end))
            if self.debug_clear:
                self.memory.scrub(start, end, Fill.DEBUG_CLEAR)
            return
        if (start | end) % POOL_BINS[0] or start >> PAGE_SHIFT != (end - 1) >> PAGE_SHIFT:
            raise OutOfResources(
                f"{start:#x}-{end:#x}: pool blocks lie inside one page, "
                f"in {POOL_BINS[0]}-byte steps"
            )
        if self.debug_clear:
            self.memory.write(start, bytes([DEBUG_CLEAR_VALUE]) * (end - start))
        self._carve(mtype, start, 0, end - start, PAGE_BIN - 1)

    def _find_free(self, size: int) -> int:
        descs = self.descriptors
        k = bisect.bisect_left(descs, self.allocation_limit, key=_start)
        for i in range(k - 1, -1, -1):
            d = descs[i]
            if d.type != _CONVENTIONAL:
                continue
            top = min(d.end, self.allocation_limit) & ~(PAGE_SIZE - 1)
            if top - d.phys_addr >= size:
                return top - size
        raise OutOfResources(f"no {size:#x} bytes of free memory below {self.allocation_limit:#x}")

    def _convert(self, start: int, end: int, mtype: int) -> None:
        """Turn free pages ``[start, end)`` into ``mtype``: the free descriptor is split and the
        new range joins a neighbour of equal type and attribute (edk2 Page.c CoreConvertPages,
        CoreAddRange)."""
        descs = self.descriptors
        i = bisect.bisect_right(descs, start, key=_start) - 1
        d = descs[i] if i >= 0 else None
        if d is None or not (d.phys_addr <= start and end <= d.end):
            raise OutOfResources(f"{start:#x}-{end:#x} is not inside one free region")
        if d.type != _CONVENTIONAL:
            raise OutOfResources(f"{start:#x} is not free memory ({d.type_name})")
        attr = d.attribute | (_RUNTIME if mtype in RUNTIME_TYPES else 0)
        new = MemoryDescriptor(int(mtype), start, (end - start) >> PAGE_SHIFT, attr)
        parts: list[MemoryDescriptor] = []
        if start > d.phys_addr:
            parts.append(d.replace(num_pages=(start - d.phys_addr) >> PAGE_SHIFT))
        parts.append(new)
        if end < d.end:
            parts.append(d.replace(phys_addr=end, num_pages=(d.end - end) >> PAGE_SHIFT))
        lo, hi = i, i + 1
        if parts[0] is new and i > 0 and _joins(descs[i - 1], new):
            lo -= 1
            parts[0] = new = descs[i - 1].replace(num_pages=descs[i - 1].num_pages + new.num_pages)
        if parts[-1] is new and hi < len(descs) and _joins(new, descs[hi]):
            parts[-1] = new.replace(num_pages=new.num_pages + descs[hi].num_pages)
            hi += 1
        descs[lo:hi] = parts

    # -- pool ----------------------------------------------------------------------------------

    def _clear(self, start: int, end: int) -> None:
        """DEBUG_CLEAR_MEMORY over ``[start, end)``: whole pages as a fill (no bytes stored,
        whatever the size), the parts of pages at either end written."""
        lo, hi = _align(start, PAGE_SIZE), end & ~(PAGE_SIZE - 1)
        if lo >= hi:
            self.memory.write(start, bytes([DEBUG_CLEAR_VALUE]) * (end - start))
            return
        self.memory.scrub(lo, hi, Fill.DEBUG_CLEAR)
        if start < lo:
            self.memory.write(start, bytes([DEBUG_CLEAR_VALUE]) * (lo - start))
        if hi < end:
            self.memory.write(hi, bytes([DEBUG_CLEAR_VALUE]) * (end - hi))

    def _lists(self, mtype: int) -> list[list[int]]:
        lists = self._free.get(mtype)
        if lists is None:
            lists = self._free[mtype] = [[] for _ in range(PAGE_BIN)]
        return lists

    def _push_free(self, mtype: int, index: int, head: int) -> None:
        """InsertHeadList of a POOL_FREE {"pfr0", Index} onto the bin's list."""
        self._lists(mtype)[index].append(head)
        self.memory.write(head, POOL_FREE_SIGNATURE + _U32.pack(index))

    def _carve(self, mtype: int, base: int, offset: int, top: int, index: int) -> None:
        """Pool.c CoreAllocatePoolI "Carve": ``[base+offset, base+top)`` into free blocks,
        from bin ``index`` down, each bin as often as it fits."""
        while offset < top and index >= 0:
            size = POOL_BINS[index]
            while offset + size <= top:
                self._push_free(mtype, index, base + offset)
                offset += size
            index -= 1

    def allocate_pool(self, mtype: int, size: int) -> int:
        """AllocatePool (edk2 Pool.c CoreAllocatePoolI): the caller's bytes follow a POOL_HEAD
        and precede a POOL_TAIL, in a block of the bin that holds them (or pages of their own);
        in a DEBUG build the caller's bytes hold the clear value, else whatever was there."""
        data = _align(size, POOL_ALIGN)
        total = data + POOL_OVERHEAD
        index = pool_bin(total)
        if index >= PAGE_BIN:
            base = self.allocate_pages(mtype, -(-total // POOL_GRANULARITY))
        else:
            lists = self._lists(mtype)
            if lists[index]:
                base = lists[index].pop()
            else:
                bigger = next((k for k in range(index + 1, PAGE_BIN) if lists[k]), None)
                if bigger is None:
                    base, top = self.allocate_pages(mtype, 1), POOL_GRANULARITY
                    bigger = PAGE_BIN
                else:
                    base, top = lists[bigger].pop(), POOL_BINS[bigger]
                self._carve(mtype, base, POOL_BINS[index], top, bigger - 1)
        mem = self.memory
        mem.write(base, POOL_HEAD_SIGNATURE)
        mem.write(base + 8, _U32.pack(mtype & 0xFFFFFFFF))
        mem.write(base + 16, _U64.pack(total))
        tail = base + total - POOL_TAIL_SIZE
        mem.write(tail, POOL_TAIL_SIGNATURE)
        mem.write(tail + 8, _U64.pack(total))
        addr = base + POOL_HEAD_SIZE
        if self.debug_clear:
            self._clear(addr, addr + data)
        self._pool_sizes[addr] = size
        self._blocks[addr] = (mtype, total)
        return addr

    def free_pool(self, addr: int) -> None:
        """FreePool (edk2 Pool.c CoreFreePoolI): in a DEBUG build the whole block takes the
        clear value; it goes back on its bin's list, and its page back to free memory once every
        block in the page is free. Pages of their own go back at once."""
        self._pool_sizes.pop(addr, None)
        block = self._blocks.pop(addr, None)
        if block is None:
            return  # not a block the model allocated
        mtype, total = block
        head = addr - POOL_HEAD_SIZE
        index = pool_bin(total)
        if index >= PAGE_BIN:  # FreePages clears them whole
            self.free_pages(head, -(-total // POOL_GRANULARITY))
            return
        if self.debug_clear:
            self._clear(head, head + total)
        self._push_free(mtype, index, head)
        page = head & ~(POOL_GRANULARITY - 1)
        blocks: list[tuple[int, int]] = []
        offset = 0
        while offset < POOL_GRANULARITY:  # at most 32 blocks of the smallest bin
            raw = self.memory.read(page + offset, 8)
            if raw is None or raw[:4] != POOL_FREE_SIGNATURE:
                return
            k = _U32.unpack_from(raw, 4)[0]
            if k >= PAGE_BIN:
                return
            blocks.append((k, page + offset))
            offset += POOL_BINS[k]
        lists = self._lists(mtype)
        for k, b in blocks:
            if b in lists[k]:
                lists[k].remove(b)
        self.free_pages(page, 1)

    # -- tables --------------------------------------------------------------------------------

    def config_tables(self) -> tuple[ConfigurationTable, ...]:
        """The configuration array as it is now in memory."""
        st = self.system_table
        if st is None:
            return ()
        raw = self.memory.read(st.tables, st.nr_tables * CONFIG_TABLE_SIZE_64)
        if raw is None:
            return ()
        return _parsed_tables(raw, st.nr_tables)

    def install_configuration_table(self, guid: Guid, table: int) -> None:
        """InstallConfigurationTable: an existing GUID's pointer is replaced in place; a new GUID
        is appended, reallocating the array in runtime pool when it is full."""
        if self.system_table is None or self.system_table_address is None:
            raise EfiHandoffError("no system table")
        entries = list(self.config_tables())
        for i, e in enumerate(entries):
            if e.guid == guid:
                entries[i] = ConfigurationTable(guid, table)
                self.memory.write(
                    self.system_table.tables + i * CONFIG_TABLE_SIZE_64,
                    build_config_tables([entries[i]]),
                )
                return
        entries.append(ConfigurationTable(guid, table))
        array = self.system_table.tables
        if len(entries) > self.config_capacity or array == 0:
            self.config_capacity += CONFIG_TABLE_GROWTH
            array = self.allocate_pool(
                MemoryType.EfiRuntimeServicesData, self.config_capacity * CONFIG_TABLE_SIZE_64
            )
        self.memory.write(array, build_config_tables(entries))
        self._write_system_table(nr_tables=len(entries), tables=array)

    def reserve_config_array(self) -> None:
        """Allocate the configuration array now (its first 0x10 entries), as the DXE core has
        long before any driver or loader installs a table of its own."""
        if self.system_table is None or self.system_table.tables:
            return
        self.config_capacity = max(self.config_capacity, CONFIG_TABLE_GROWTH)
        array = self.allocate_pool(
            MemoryType.EfiRuntimeServicesData, self.config_capacity * CONFIG_TABLE_SIZE_64
        )
        self._write_system_table(tables=array)

    def create_system_table(self, vendor: str = "EDK II", revision: int = 0x00020046) -> int:
        """Allocate and write an empty system table and vendor string in runtime pool, as the
        DXE core does (edk2 DxeMain.c, runtime pool for gDxeCoreST)."""
        vendor_raw = (vendor + "\0").encode("utf-16-le")
        vendor_addr = self.allocate_pool(MemoryType.EfiRuntimeServicesData, len(vendor_raw))
        self.memory.write(vendor_addr, vendor_raw)
        self.system_table_address = self.allocate_pool(
            MemoryType.EfiRuntimeServicesData, SYSTEM_TABLE_SIZE_64
        )
        self.system_table = SystemTable.new(revision, fw_vendor=vendor_addr, fw_revision=0x10000)
        self._write_system_table()
        return self.system_table_address

    def _write_system_table(
        self, *, nr_tables: int | None = None, tables: int | None = None
    ) -> None:
        """The system table with the configuration array's count and address changed, its CRC32
        recomputed, written at its address."""
        assert self.system_table is not None and self.system_table_address is not None
        st = self.system_table
        if nr_tables is not None:
            st = replace(st, nr_tables=nr_tables)
        if tables is not None:
            st = replace(st, tables=tables)
        raw = st.build(fix_crc=True)
        self.system_table = SystemTable.parse(raw)
        self.memory.write(self.system_table_address, raw)

    # -- map and exit --------------------------------------------------------------------------

    def get_memory_map(self) -> MemoryMap:
        """GetMemoryMap: the current map, descriptor size 48 as edk2 reports."""
        return MemoryMap(tuple(self.descriptors), EDK2_DESCRIPTOR_SIZE, 1)

    def exit_boot_services(self) -> MemoryMap:
        """ExitBootServices: the final map; boot services are gone afterwards."""
        self.exited = True
        return self.get_memory_map()

    def machine(self, base: Machine | None = None) -> Machine:
        """The handoff as a Machine."""
        base = base or Machine()
        return base.with_(
            memory_map=self.get_memory_map(),
            system_table_address=self.system_table_address,
            system_table=self.system_table,
            config_table_address=None if self.system_table is None else self.system_table.tables,
            config_tables=self.config_tables(),
            memory=self.memory,
            firmware_state=self.pool_state(),
        )


def _align(n: int, a: int) -> int:
    return (n + a - 1) & ~(a - 1)


def _joins(a: MemoryDescriptor, b: MemoryDescriptor) -> bool:
    """edk2 Page.c CoreAddRange: ``b`` directly follows ``a`` with the same type and attribute."""
    return a.type == b.type and a.attribute == b.attribute and a.end == b.phys_addr


__all__ = [
    "CONFIG_TABLE_GROWTH",
    "DEFAULT_ALLOCATION_LIMIT",
    "RUNTIME_TYPES",
    "BootServices",
    "OutOfResources",
]
