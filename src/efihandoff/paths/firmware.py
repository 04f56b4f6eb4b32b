"""Firmware boot services as edk2 implements them, enough to replay a boot.

Sources: edk2 MdeModulePkg/Core/Dxe/Mem/Page.c (``CoreAllocatePages``: AllocateAnyPages searches
top-down below the allocation limit; ``CoreAddRange`` coalesces neighbours of equal type and
attribute), Mem/Pool.c (``CoreAllocatePool``: a POOL_HEAD before the caller's bytes, small
allocations carved from pages of the pool's own type), Misc/InstallConfigurationTable.c
(``CoreInstallConfigurationTable``: replace in place for a known GUID, append otherwise, the array
grown by 0x10 entries in runtime pool, system-table CRC32 recomputed).
"""

from __future__ import annotations

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
    TableHeader,
    build_config_tables,
    EFI_SYSTEM_TABLE_SIGNATURE,
)

POOL_HEAD_SIZE = 0x18  # edk2 Pool.c POOL_HEAD {Signature, Reserved, Type, Size} on X64
POOL_TAIL_SIZE = 0x8  # edk2 Pool.c POOL_TAIL {Signature, Reserved, Size}... rounded to 8
POOL_ALIGN = 8
CONFIG_TABLE_GROWTH = 0x10  # edk2 InstallConfigurationTable.c EFI_CONFIGURATION_TABLE_EXPANSION_SIZE
DEFAULT_ALLOCATION_LIMIT = 1 << 32  # OVMF allocates below 4 GiB unless asked otherwise

RUNTIME_TYPES = frozenset(
    {MemoryType.EfiRuntimeServicesCode, MemoryType.EfiRuntimeServicesData}
)


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
        for d in reversed(self.descriptors):
            if d.type != MemoryType.EfiConventionalMemory:
                continue
            top = min(d.end, self.allocation_limit)
            if top - d.phys_addr >= size:
                return (top - size) & ~(PAGE_SIZE - 1)
        raise OutOfResources(f"no {size:#x} bytes of free memory below {self.allocation_limit:#x}")

    def _convert(self, start: int, end: int, mtype: int) -> None:
        """Turn free pages ``[start, end)`` into ``mtype``, splitting and re-coalescing."""
        out: list[MemoryDescriptor] = []
        done = False
        for d in self.descriptors:
            if not done and d.phys_addr <= start and end <= d.end:
                if d.type != MemoryType.EfiConventionalMemory:
                    raise OutOfResources(f"{start:#x} is not free memory ({d.type_name})")
                if start > d.phys_addr:
                    out.append(d.replace(num_pages=(start - d.phys_addr) >> PAGE_SHIFT))
                attr = d.attribute | (MemoryAttribute.RUNTIME if mtype in RUNTIME_TYPES else 0)
                out.append(
                    MemoryDescriptor(mtype, start, (end - start) >> PAGE_SHIFT, attr)
                )
                if end < d.end:
                    out.append(d.replace(phys_addr=end, num_pages=(d.end - end) >> PAGE_SHIFT))
                done = True
            else:
                out.append(d)
        if not done:
            raise OutOfResources(f"{start:#x}-{end:#x} is not inside one free region")
        self.descriptors = _coalesce(out)

    # -- pool ----------------------------------------------------------------------------------

    def allocate_pool(self, mtype: int, size: int) -> int:
        """AllocatePool: the caller's bytes follow a POOL_HEAD; small requests share pages of
        their type, large ones get pages of their own. The bytes are whatever memory held."""
        need = _align(POOL_HEAD_SIZE + size + POOL_TAIL_SIZE, POOL_ALIGN)
        pool = self._pools.get(mtype)
        if need > PAGE_SIZE // 2:
            pages = -(-need // PAGE_SIZE)
            base = self.allocate_pages(mtype, pages)
        else:
            if pool is None or pool.end - pool.next < need:
                start = self.allocate_pages(mtype, 1)
                pool = _PoolPage(start, start + PAGE_SIZE, start)
                self._pools[mtype] = pool
            base = pool.next
            pool.next += need
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
        self.system_table = SystemTable(
            hdr=TableHeader(EFI_SYSTEM_TABLE_SIGNATURE, revision, SYSTEM_TABLE_SIZE_64, 0, 0),
            fw_vendor=vendor_addr,
            fw_revision=0x10000,
            con_in_handle=0,
            con_in=0,
            con_out_handle=0,
            con_out=0,
            stderr_handle=0,
            stderr=0,
            runtime=0,
            boottime=0,
            nr_tables=0,
            tables=0,
        )
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


def _coalesce(descs: list[MemoryDescriptor]) -> list[MemoryDescriptor]:
    """Merge neighbours of equal type and attribute (edk2 Page.c CoreAddRange)."""
    out: list[MemoryDescriptor] = []
    for d in descs:
        if out:
            p = out[-1]
            if p.type == d.type and p.attribute == d.attribute and p.end == d.phys_addr:
                out[-1] = p.replace(num_pages=p.num_pages + d.num_pages)
                continue
        out.append(d)
    return out
