"""Firmware boot services as edk2 implements them, enough to replay a boot.

Sources (tianocore/edk2 master as read in 2026):
MdeModulePkg/Core/Dxe/Mem/Page.c (``CoreAllocatePages``: AllocateAnyPages searches
top-down below the allocation limit; ``CoreAddRange`` coalesces neighbours of equal type and
attribute), Mem/Pool.c (``CoreAllocatePoolI``: a 24-byte POOL_HEAD before the caller's bytes and a
16-byte POOL_TAIL right after them, the size rounded up to 8; requests above half a page get pages
of their own, smaller ones share pages of their type), Misc/InstallConfigurationTable.c
(``CoreInstallConfigurationTable``: replace in place for a known GUID, append otherwise, the array
grown by 0x10 entries in runtime pool, system-table CRC32 recomputed).

Simplified: small pool requests are carved one after the other from a page of their type (edk2
rounds them to power-of-two bins), freed pool is never reused, and boot services rebuilt from a
Machine know no partly used pool page, so the first allocation of each type takes a fresh page
(real firmware may use a free bin of an existing one).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

from efihandoff.errors import EfiHandoffError
from efihandoff.machine import Machine, PhysicalMemory
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
)

# edk2 MdeModulePkg/Core/Dxe/Mem/Pool.c, X64: POOL_HEAD {UINT32 Signature "phd0"; UINT32 Reserved;
# UINT32 Type; (pad); UINTN Size} before the data, POOL_TAIL {UINT32 Signature "ptal"; UINT32
# Reserved; UINTN Size} after it; Size counts head, data (rounded to 8) and tail. Neither Reserved
# field is written: it keeps whatever the memory held.
POOL_HEAD_SIZE = 0x18
POOL_TAIL_SIZE = 0x10
POOL_HEAD_SIGNATURE = b"phd0"
POOL_TAIL_SIGNATURE = b"ptal"
POOL_ALIGN = 8
# edk2 InstallConfigurationTable.c EFI_CONFIGURATION_TABLE_EXPANSION_SIZE
CONFIG_TABLE_GROWTH = 0x10
DEFAULT_ALLOCATION_LIMIT = 1 << 32  # OVMF allocates below 4 GiB unless asked otherwise

RUNTIME_TYPES = frozenset({MemoryType.EfiRuntimeServicesCode, MemoryType.EfiRuntimeServicesData})
_CONVENTIONAL = int(MemoryType.EfiConventionalMemory)
_RUNTIME = int(MemoryAttribute.RUNTIME)
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def _start(d: MemoryDescriptor) -> int:
    return d.phys_addr


class OutOfResources(EfiHandoffError):
    """EFI_OUT_OF_RESOURCES: no free memory of the size asked."""


@dataclass
class _PoolPage:
    start: int
    end: int
    next: int


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
    _pools: dict[int, _PoolPage] = field(default_factory=dict)
    _pool_sizes: dict[int, int] = field(default_factory=dict)

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
        return bs

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
            address = self._find_free(size)
        self._convert(address, address + size, mtype)
        return address

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

    def allocate_pool(self, mtype: int, size: int) -> int:
        """AllocatePool: the caller's bytes follow a POOL_HEAD and precede a POOL_TAIL; small
        requests share pages of their type, large ones get pages of their own. The caller's
        bytes are whatever the memory held."""
        total = _align(size, POOL_ALIGN) + POOL_HEAD_SIZE + POOL_TAIL_SIZE
        pool = self._pools.get(mtype)
        if total > PAGE_SIZE // 2:
            base = self.allocate_pages(mtype, -(-total // PAGE_SIZE))
        else:
            if pool is None or pool.end - pool.next < total:
                start = self.allocate_pages(mtype, 1)
                pool = _PoolPage(start, start + PAGE_SIZE, start)
                self._pools[mtype] = pool
            base = pool.next
            pool.next += total
        mem = self.memory
        mem.write(base, POOL_HEAD_SIGNATURE)
        mem.write(base + 8, _U32.pack(mtype & 0xFFFFFFFF))
        mem.write(base + 16, _U64.pack(total))
        tail = base + total - POOL_TAIL_SIZE
        mem.write(tail, POOL_TAIL_SIGNATURE)
        mem.write(tail + 8, _U64.pack(total))
        addr = base + POOL_HEAD_SIZE
        self._pool_sizes[addr] = size
        return addr

    def free_pool(self, addr: int) -> None:
        """FreePool: the bytes stay where they are; the model does not reuse freed pool."""
        self._pool_sizes.pop(addr, None)

    # -- tables --------------------------------------------------------------------------------

    def config_tables(self) -> tuple[ConfigurationTable, ...]:
        """The configuration array as it is now in memory."""
        st = self.system_table
        if st is None:
            return ()
        from efihandoff.uefi.systab import parse_config_tables

        raw = self.memory.read(st.tables, st.nr_tables * CONFIG_TABLE_SIZE_64)
        if raw is None:
            return ()
        return parse_config_tables(raw, st.nr_tables)

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

    def _write_system_table(self, **changes: int) -> None:
        assert self.system_table is not None and self.system_table_address is not None
        from dataclasses import replace

        self.system_table = replace(self.system_table, **changes)
        raw = self.system_table.build(fix_crc=True)
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
        )


def _align(n: int, a: int) -> int:
    return (n + a - 1) & ~(a - 1)


def _joins(a: MemoryDescriptor, b: MemoryDescriptor) -> bool:
    """edk2 Page.c CoreAddRange: ``b`` directly follows ``a`` with the same type and attribute."""
    return a.type == b.type and a.attribute == b.attribute and a.end == b.phys_addr
