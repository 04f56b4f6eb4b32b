"""Run one path over a Machine and judge every configuration table on it."""

from __future__ import annotations

from dataclasses import dataclass, field

from efihandoff import fwupd
from efihandoff.e820 import E820Range, E820Type, merge
from efihandoff.errors import EfiHandoffError
from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.paths import linux, xen
from efihandoff.paths.firmware import BootServices
from efihandoff.paths.presets import PathSpec, Policy
from efihandoff.paths.verdict import TableVerdict, Verdict
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID, ESRT_HEADER_SIZE, Esrt, EsrtEntry
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryAttribute, MemoryDescriptor, MemoryMap, MemoryType
from efihandoff.uefi.systab import (
    CONFIG_TABLE_SIZE_64,
    EFI_SYSTEM_TABLE_SIGNATURE,
    SYSTEM_TABLE_SIZE_64,
    SystemTable,
    TableHeader,
    parse_config_tables,
)

_RECLAIMABLE = xen.BS_TYPES | xen.LOADER_TYPES | {MemoryType.EfiConventionalMemory}
_ENTRY_FIELDS = (
    "fw_class",
    "fw_type",
    "fw_version",
    "lowest_supported_fw_version",
    "capsule_flags",
    "last_attempt_version",
    "last_attempt_status",
)
# Where a machine known only from evidence gets a stand-in system table: above any real RAM.
_SYNTHETIC_BASE = 0xFFFF_F000_0000


@dataclass(frozen=True)
class Cost:
    """Memory a design costs: kept out of RAM for good, and held only during boot."""

    reserved_bytes: int
    held_during_boot_bytes: int

    def to_json(self) -> dict[str, int]:
        return {"reserved_bytes": self.reserved_bytes, "held_during_boot_bytes": self.held_during_boot_bytes}


@dataclass
class PathResult:
    """Everything one path does to one machine."""

    spec: PathSpec
    tables: dict[Guid, TableVerdict]
    log: list[str]
    esrt_sysfs: bool | None
    sysfs: dict[str, str | None] | None
    fwupd_devices: list[fwupd.Device] | None
    cost: Cost
    kexec: dict[Guid, TableVerdict] = field(default_factory=dict)
    esrt_differences: list[str] = field(default_factory=list)

    @property
    def esrt(self) -> TableVerdict:
        return self.tables[ESRT_GUID]


def simulate(machine: Machine, spec: PathSpec) -> PathResult:
    """Boot ``machine`` along ``spec`` and judge each table."""
    bs, esrt_known = _firmware(machine)
    original = bs.memory.copy()
    fw_tables = bs.config_tables()
    log: list[str] = []
    xb = None
    if spec.native:
        final = bs.exit_boot_services()
        lb = linux.boot(
            spec,
            bs.memory,
            fw_tables,
            bs.system_table.hdr if bs.system_table else None,
            machine.firmware_vendor,
            memmap=final,
            e820=stub_e820(final),
            xen=None,
        )
    else:
        xb = xen.boot(bs, spec)
        log += xb.log
        raw = bs.memory.read(xb.config_table_address, xb.nr_tables * CONFIG_TABLE_SIZE_64)
        dom0_tables = parse_config_tables(raw, xb.nr_tables) if raw is not None else ()
        hdr = TableHeader(EFI_SYSTEM_TABLE_SIGNATURE, xb.revision, SYSTEM_TABLE_SIZE_64, 0, 0)
        lb = linux.boot(spec, bs.memory, dom0_tables, hdr, xb.vendor or machine.firmware_vendor,
                        memmap=None, e820=None, xen=xb)
    log += lb.log
    judge = _Judge(machine, spec, original, bs, lb, xb, esrt_known)
    verdicts = judge.all(fw_tables)
    devices = fwupd.devices(lb.sysfs)
    return PathResult(
        spec=spec,
        tables=verdicts,
        log=log,
        # esrt_sysfs_init publishes the tree whenever efi_esrt_init recorded the table, even
        # when the evidence lacks the bytes that fill it.
        esrt_sysfs=None
        if verdicts[ESRT_GUID].verdict is Verdict.UNKNOWN
        else lb.esrt_data is not None,
        sysfs=lb.sysfs,
        fwupd_devices=devices,
        cost=_cost(spec, lb, xb, bs),
        kexec=judge.kexec(fw_tables),
        esrt_differences=judge.esrt_differences,
    )


def stub_e820(mm: MemoryMap) -> list[E820Range]:
    """The E820 table the x86 EFI stub builds from the EFI map (Linux
    drivers/firmware/efi/libstub/x86-stub.c setup_e820)."""
    out = []
    for d in mm:
        if d.is_bogus:
            continue
        t = d.type
        if t in _RECLAIMABLE:
            e = E820Type.RAM
        elif t == MemoryType.EfiACPIReclaimMemory:
            e = E820Type.ACPI
        elif t == MemoryType.EfiACPIMemoryNVS:
            e = E820Type.NVS
        elif t == MemoryType.EfiUnusableMemory:
            e = E820Type.UNUSABLE
        elif t == MemoryType.EfiPersistentMemory:
            e = E820Type.PMEM
        else:
            e = E820Type.RESERVED
        if d.attribute & MemoryAttribute.SP and e == E820Type.RAM:
            e = E820Type.SOFT_RESERVED
        out.append(E820Range(d.phys_addr, d.end, e))
    return merge(out)


def _firmware(machine: Machine) -> tuple[BootServices, bool]:
    """Firmware state to replay; for a machine known from evidence only, a stand-in system
    table and configuration array placed outside the memory map."""
    if machine.memory_map is None:
        raise EfiHandoffError("the evidence has no memory map: paths cannot be simulated")
    bs = BootServices.from_machine(machine)
    if not isinstance(machine.memory, PhysicalMemory):
        bs.memory = _known_bytes(machine)
    if machine.system_table is None or bs.memory.read(machine.system_table.tables, 1) is None:
        _synthesize_systab(bs, machine)
    esrt = machine.table(ESRT_GUID)
    known = esrt is None or bs.memory.read(esrt.table, ESRT_HEADER_SIZE) is not None
    return bs, known


def _known_bytes(machine: Machine) -> PhysicalMemory:
    mem = PhysicalMemory(background=Fill.UNKNOWN)
    if machine.memory is not None:
        # A dump: copy just the table bytes the simulation may touch.
        for t in machine.config_tables or ():
            res = known_tables.table_size(t.guid, machine.memory.read, t.table, None)
            n = res.size if res.size is not None and res.size <= 1 << 20 else 4096
            raw = machine.memory.read(t.table, n)
            if raw is not None:
                mem.write(t.table, raw)
    return mem


def _synthesize_systab(bs: BootServices, machine: Machine) -> None:
    tables = machine.config_tables or ()
    from efihandoff.uefi.systab import build_config_tables

    array = _SYNTHETIC_BASE + 0x1000
    bs.memory.write(array, build_config_tables(tables))
    st = machine.system_table
    rev = st.hdr.revision if st is not None else 0x00020046
    bs.system_table_address = _SYNTHETIC_BASE
    bs.system_table = SystemTable(
        hdr=TableHeader(EFI_SYSTEM_TABLE_SIGNATURE, rev, SYSTEM_TABLE_SIZE_64, 0, 0),
        fw_vendor=0, fw_revision=0, con_in_handle=0, con_in=0, con_out_handle=0, con_out=0,
        stderr_handle=0, stderr=0, runtime=0, boottime=0, nr_tables=len(tables), tables=array,
    )
    bs.config_capacity = len(tables) + 16


class _Judge:
    """Verdicts for every firmware table on one finished path."""

    def __init__(self, machine, spec, original, bs, lb, xb, esrt_known) -> None:  # noqa: ANN001
        self.machine: Machine = machine
        self.spec: PathSpec = spec
        self.original: PhysicalMemory = original
        self.bs: BootServices = bs
        self.lb: linux.LinuxBoot = lb
        self.xb: xen.XenBoot | None = xb
        self.esrt_known: bool = esrt_known
        self.esrt_differences: list[str] = []
        self.firmware_map = machine.memory_map
        assert self.firmware_map is not None

    def all(self, fw_tables) -> dict[Guid, TableVerdict]:  # noqa: ANN001
        out: dict[Guid, TableVerdict] = {}
        final_tables = self.bs.config_tables()
        for i, ct in enumerate(fw_tables):
            if ct.guid in out:
                continue
            final = final_tables[i].table if i < len(final_tables) else ct.table
            out[ct.guid] = self.one(i, ct.guid, ct.table, final)
        if ESRT_GUID not in out:
            out[ESRT_GUID] = TableVerdict(ESRT_GUID, "ESRT", Verdict.ABSENT, "the firmware installs no ESRT")
        return out

    def one(self, index: int, guid: Guid, addr: int, final: int) -> TableVerdict:
        kt = known_tables.known(guid)
        name = kt.name if kt else str(guid)
        use = self.lb.uses[index] if index < len(self.lb.uses) else None
        md = self.firmware_map.lookup(addr)
        where = md.type_name if md else "memory outside the map"
        size = self._size(guid, addr, md)

        def v(verdict: Verdict, reason: str) -> TableVerdict:
            return TableVerdict(guid, name, verdict, reason, addr, final)

        if guid == ESRT_GUID:
            return self._esrt(v, use, addr, final, where)
        if use is not None and use.refused:
            return v(Verdict.REFUSED, use.refused)
        consumer = None
        if use is not None and use.recorded and kt is not None:
            consumer = use.parse_bytes if kt.name in linux.EARLY_CONSUMED else self._read_now(final, size)
        firmware = self.original.read(addr, size) if size else None
        if consumer is not None and firmware is not None and consumer != firmware:
            diff = sum(1 for a, b in zip(consumer, firmware, strict=False) if a != b)
            return v(Verdict.CORRUPT, f"Linux reads {diff} of {size} bytes changed: its {where} was reused before it was read")
        kept, why = self._kept(final)
        if not kept:
            return v(Verdict.CLOBBERED, f"in {where}: {why}")
        if final != addr:
            return v(Verdict.RELOCATED, f"Xen copied it to {final:#x} ({self._type_at(final)}), which stays reserved")
        if use is not None and use.recorded:
            return v(Verdict.INTACT, f"in {where}, which stays reserved; Linux uses it in place")
        return v(Verdict.INTACT, f"in {where}, which stays reserved" + ("" if kt and kt.linux_parses else "; Linux does not parse this GUID"))

    def _esrt(self, v, use, addr: int, final: int, where: str) -> TableVerdict:  # noqa: ANN001
        lb = self.lb
        if use is not None and use.refused:
            return v(Verdict.REFUSED, use.refused)
        if lb.esrt_refused:
            if not self.esrt_known and "not in the memory map" not in lb.esrt_refused and "EFI_MEMMAP" not in lb.esrt_refused:
                return v(Verdict.UNKNOWN, "the ESRT's bytes are not in the evidence, and the checks depend on them")
            return v(Verdict.REFUSED, lb.esrt_refused)
        if not self.esrt_known:
            relocated = any(r.guid == ESRT_GUID for r in (self.xb.relocations if self.xb else ()))
            if self.xb is not None and self.spec.xen_relocates_esrt and not relocated:
                return v(Verdict.UNKNOWN, "whether Xen relocates the ESRT depends on bytes the evidence lacks")
        firmware = self._firmware_esrt(addr)
        seen = lb.esrt_bytes
        reloc = next((r for r in (self.xb.relocations if self.xb else ()) if r.guid == ESRT_GUID), None)
        if reloc is not None and reloc.copied < reloc.size and (firmware is None or seen is None):
            # Structural: Xen's copy is short whatever the bytes (get_esrt_size before 3ea44aa78c).
            last = (reloc.size - 16) // 40 - 1
            self.esrt_differences = [
                f"entry{last} lowest_supported_fw_version, capsule_flags, last_attempt_version, "
                "last_attempt_status undefined"
            ]
            return v(
                Verdict.CORRUPT,
                f"Xen copied {reloc.copied} of {reloc.size} bytes (get_esrt_size forgets the 16-byte "
                f"header before 3ea44aa78c): entry{last}'s last four fields are whatever the pool held",
            )
        if firmware is not None and seen is not None and seen != firmware[: len(seen)]:
            self.esrt_differences = _esrt_diff(firmware, seen)
            why = "; ".join(self.esrt_differences[:3])
            if reloc is not None and reloc.copied < reloc.size:
                cause = (f"Xen copied {reloc.copied} of {reloc.size} bytes (get_esrt_size forgets the "
                         "16-byte header before 3ea44aa78c); the rest is whatever the pool held")
            else:
                cause = f"its {where} was reused before Linux mapped it"
            return v(Verdict.CORRUPT, f"{cause}: {why}")
        kept, why = self._kept(final)
        if not kept:
            return v(Verdict.CLOBBERED, f"in {where}: {why}")
        if final != addr:
            return v(Verdict.RELOCATED, f"Xen copied it whole to {final:#x} ({self._type_at(final)})")
        if seen is None and firmware is None:
            return v(Verdict.INTACT, f"in {where}; Linux accepted and reserved it (bytes not in the evidence)")
        return v(Verdict.INTACT, f"in {where}; Linux accepted it" + (" and reserved it with efi_mem_reserve" if where == "EfiBootServicesData" else ""))

    def _firmware_esrt(self, addr: int) -> bytes | None:
        hdr = self.original.read(addr, ESRT_HEADER_SIZE)
        if hdr is None:
            return None
        from efihandoff.uefi.esrt import EsrtHeader

        n = EsrtHeader.unpack(hdr).size
        return self.original.read(addr, min(n, 16 + 40 * 4096))

    def _size(self, guid: Guid, addr: int, md: MemoryDescriptor | None) -> int | None:
        limit = md.end - addr if md else None
        res = known_tables.table_size(guid, self.original.read, addr, limit)
        if res.size is None or res.size <= 0 or res.size > 1 << 24:
            return None
        return res.size

    def _read_now(self, addr: int, size: int | None) -> bytes | None:
        return self.bs.memory.read(addr, size) if size else None

    def _type_at(self, addr: int) -> str:
        if self.xb is not None:
            rc, info = self.xb.mem_info(addr, 1)
            return MemoryType(info.type).name if rc == 0 and info and info.type in MemoryType._value2member_map_ else "?"
        md = self.lb.memmap.lookup(addr) if self.lb.memmap else None
        return md.type_name if md else "?"

    def _kept(self, addr: int) -> tuple[bool, str]:
        """Does the memory at ``addr`` stay out of the allocator for good?"""
        if self.xb is not None:
            for s, e in self.xb.reclaimed:
                if s <= addr < e:
                    return False, f"Xen {'.'.join(map(str, self.xb.spec.xen or ()))} reclaims it as RAM before dom0 starts"
            return True, ""
        for s, e in self.lb.freed:
            if s <= addr < e:
                return False, "efi_free_boot_services frees it; nothing reserved it"
        md = self.lb.memmap.lookup(addr) if self.lb.memmap else None
        if md is not None and md.type in xen.LOADER_TYPES | {MemoryType.EfiConventionalMemory}:
            if not any(s <= addr < e for s, e in self.lb.reserved):
                return False, "Linux treats it as usable RAM"
        return True, ""

    def kexec(self, fw_tables) -> dict[Guid, TableVerdict]:  # noqa: ANN001
        """After a kexec: does the next kernel still find each table's bytes?

        Native Linux hands the next kernel the EFI runtime map (descriptors with
        EFI_MEMORY_RUNTIME), so what efi_mem_reserve tagged survives. A Xen copy in ACPI reclaim
        survives. A reservation made by hypercall lives in Xen's memory only: a kexec'd
        hypervisor sees boot-services data again and reuses it.
        """
        out: dict[Guid, TableVerdict] = {}
        final_tables = self.bs.config_tables()
        for i, ct in enumerate(fw_tables):
            if ct.guid in out:
                continue
            final = final_tables[i].table if i < len(final_tables) else ct.table
            kt = known_tables.known(ct.guid)
            name = kt.name if kt else str(ct.guid)
            kept, why = self._kept(final)
            if kept and self.xb is not None and self.spec.policy is Policy.RESERVE_HYPERCALL:
                rc, info = self.xb.mem_info(final, 1)
                if rc == 0 and info is not None and info.type in xen.BS_TYPES:
                    kept, why = False, "reserved only by hypercall; the reservation does not persist across kexec"
            verdict = (Verdict.RELOCATED if final != ct.table else Verdict.INTACT) if kept else Verdict.CLOBBERED
            out[ct.guid] = TableVerdict(ct.guid, name, verdict, why or "its memory is still reserved", ct.table, final)
        return out


def _esrt_diff(firmware: bytes, seen: bytes) -> list[str]:
    """Which header fields and entry fields differ between two ESRT images."""
    out = []
    if firmware[:16] != seen[:16]:
        out.append("header differs")
    n = min(len(firmware), len(seen))
    for i in range((n - 16) // 40):
        off = 16 + 40 * i
        a, b = EsrtEntry.unpack(firmware, off), EsrtEntry.unpack(seen, off)
        fields = [f for f in _ENTRY_FIELDS if getattr(a, f) != getattr(b, f)]
        if fields:
            out.append(f"entry{i} {', '.join(fields)} differ")
    return out


def _cost(spec: PathSpec, lb: linux.LinuxBoot, xb: xen.XenBoot | None, bs: BootServices) -> Cost:
    if xb is None:
        return Cost(sum(e - s for s, e in lb.kept_bs), 0)
    reloc = sum(r.pool_bytes for r in xb.relocations)
    bs_bytes = sum(d.size for d in xb.efi_memmap if d.type in xen.BS_TYPES and not d.is_bogus)
    if spec.mapbs:
        return Cost(reloc + bs_bytes, 0)  # never returned: reserved for good
    if spec.policy is Policy.RESERVE_HYPERCALL:
        pages = sum(_page_span(s, e) for s, e in lb.reserved)
        return Cost(reloc + pages, bs_bytes)
    return Cost(reloc, 0)


def _page_span(s: int, e: int) -> int:
    return ((e + 4095) & ~4095) - (s & ~4095)


__all__ = ["Cost", "PathResult", "simulate", "stub_e820"]
_ = (Esrt,)
