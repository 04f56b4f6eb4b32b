"""Run one path over a Machine and judge every configuration table on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from efihandoff import fwupd
from efihandoff.e820 import E820Range, E820Type
from efihandoff.edk2 import BootServices
from efihandoff.errors import EfiHandoffError
from efihandoff.intervals import SpanSet
from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.paths import linux, xen
from efihandoff.paths.presets import PathSpec, Policy
from efihandoff.paths.verdict import TableVerdict, Verdict
from efihandoff.rules import tables as known_tables
from efihandoff.rules.e820 import linux_stub_e820_type
from efihandoff.uefi.esrt import ENTRY_FIELDS, ESRT_GUID, ESRT_HEADER_SIZE, EsrtEntry, EsrtHeader
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import (
    PAGE_SHIFT,
    MemoryAttribute,
    MemoryDescriptor,
    MemoryMap,
    MemoryType,
    type_name,
)
from efihandoff.uefi.systab import (
    CONFIG_TABLE_SIZE_64,
    EFI_SYSTEM_TABLE_SIGNATURE,
    SYSTEM_TABLE_SIZE_64,
    ConfigurationTable,
    SystemTable,
    TableHeader,
    build_config_tables,
    parse_config_tables,
)

# Where a machine known only from evidence gets a stand-in system table: above any real RAM.
_SYNTHETIC_BASE = 0xFFFF_F000_0000
_LINUX_RAM = frozenset(int(t) for t in xen.LOADER_TYPES | {MemoryType.EfiConventionalMemory})
_BS = frozenset(int(t) for t in xen.BS_TYPES)
_RUNTIME = int(MemoryAttribute.RUNTIME)


@dataclass(frozen=True)
class Cost:
    """Memory a design costs: kept out of RAM for good, and held only during boot."""

    reserved_bytes: int
    held_during_boot_bytes: int

    def to_json(self) -> dict[str, int]:
        return {
            "reserved_bytes": self.reserved_bytes,
            "held_during_boot_bytes": self.held_during_boot_bytes,
        }


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
    # [start, end) ranges reused as RAM on this path: by Xen before dom0 runs, or by Linux's
    # efi_free_boot_services on bare metal.
    reclaimed: list[tuple[int, int]] = field(default_factory=list)
    # The EFI map at the end: Linux's efi.memmap on bare metal (after efi_mem_reserve and
    # efi_free_boot_services), Xen's efi_memmap (what MEM_INFO answers from) under Xen.
    memmap: MemoryMap | None = None
    esrt_bytes: bytes | None = None  # what esrt_sysfs_init mapped, as it was then
    # Structured facts of the dom0/kernel side, for comparing with what a real kernel printed:
    # the tables the Xen allowlist marked unusable, and whether efi_esrt_init reserved the ESRT.
    unusable: tuple[Guid, ...] = ()
    esrt_reserving: bool = False
    esrt_check: linux.EsrtCheck | None = None  # the efi_esrt_init check that stopped the ESRT
    # False when the stack never brings the OS up; ``halt`` says what the real software prints.
    booted: bool = True
    halt: linux.Halt | None = None
    relocations: tuple[xen.Relocation, ...] = ()  # Xen's copies before ExitBootServices

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
        halt = linux.xen_dom0_memory_setup(spec, xb.e820)
        if halt is not None:
            return _halted(spec, xb, fw_tables, log, halt)
        raw = bs.memory.read(xb.config_table_address, xb.nr_tables * CONFIG_TABLE_SIZE_64)
        dom0_tables = parse_config_tables(raw, xb.nr_tables) if raw is not None else ()
        # Linux 6.x arch/x86/xen/efi.c xen_efi_probe: a synthetic system table whose revision
        # comes from XEN_FW_EFI_VERSION and vendor from XEN_FW_EFI_VENDOR.
        hdr = TableHeader(EFI_SYSTEM_TABLE_SIGNATURE, xb.revision, SYSTEM_TABLE_SIZE_64, 0, 0)
        vendor = xb.vendor if xb.vendor is not None else machine.firmware_vendor
        lb = linux.boot(
            spec, bs.memory, dom0_tables, hdr, vendor, memmap=None, e820=None, xen=xb
        )
    log += lb.log
    judge = _Judge(machine, spec, original, bs, lb, xb, esrt_known)
    verdicts = judge.all(fw_tables)
    devices = fwupd.devices(lb.sysfs)
    return PathResult(
        spec=spec,
        tables=verdicts,
        log=log,
        esrt_sysfs=None if verdicts[ESRT_GUID].verdict is Verdict.UNKNOWN else lb.esrt_sysfs,
        sysfs=lb.sysfs,
        fwupd_devices=devices,
        cost=_cost(spec, lb, xb),
        kexec=judge.kexec(fw_tables),
        esrt_differences=judge.esrt_differences,
        reclaimed=judge.reclaimed.spans,
        memmap=lb.memmap if xb is None else xb.efi_memmap,
        esrt_bytes=lb.esrt_bytes,
        unusable=tuple(u.guid for u in lb.uses if u.unusable),
        esrt_reserving=lb.esrt_data is not None,
        esrt_check=lb.esrt_refused.check if lb.esrt_refused else None,
        relocations=tuple(xb.relocations) if xb is not None else (),
    )


def _halted(
    spec: PathSpec,
    xb: xen.XenBoot,
    fw_tables: tuple[ConfigurationTable, ...],
    log: list[str],
    halt: linux.Halt,
) -> PathResult:
    """A dom0 that dies in xen_memory_setup: no table is ever looked at, so every verdict is
    unknown (docs/design.md) and nothing reaches sysfs (esrt_sysfs false) or fwupd."""
    reason = f"the dom0 never starts: {halt.message} ({halt.source})"
    verdicts: dict[Guid, TableVerdict] = {}
    for ct in fw_tables:
        if ct.guid not in verdicts:
            kt = known_tables.known(ct.guid)
            name = kt.name if kt else str(ct.guid)
            verdicts[ct.guid] = TableVerdict(ct.guid, name, Verdict.UNKNOWN, reason, ct.table)
    if ESRT_GUID not in verdicts:
        verdicts[ESRT_GUID] = TableVerdict(ESRT_GUID, "ESRT", Verdict.UNKNOWN, reason)
    lb = linux.LinuxBoot(spec=spec)
    return PathResult(
        spec=spec,
        tables=verdicts,
        log=[*log, halt.message],
        esrt_sysfs=False,  # no OS, no /sys
        sysfs=None,
        fwupd_devices=None,
        cost=_cost(spec, lb, xb),
        reclaimed=list(xb.reclaimed),
        memmap=xb.efi_memmap,
        booted=False,
        halt=halt,
        relocations=tuple(xb.relocations),
    )


def stub_e820(mm: MemoryMap) -> list[E820Range]:
    """The E820 table the x86 EFI stub builds from the EFI map (Linux 6.x
    drivers/firmware/efi/libstub/x86-stub.c setup_e820): types it does not know are left out;
    neighbours of one type merge (e820__update_table)."""
    rows: list[tuple[int, int, int]] = []
    for d in mm.descriptors:
        if d.is_bogus:
            continue
        kind = linux_stub_e820_type(d.type, d.attribute)  # rules.e820: setup_e820's mapping
        if kind is None:
            continue  # "default: continue"
        rows.append((d.phys_addr, d.phys_addr + (d.num_pages << PAGE_SHIFT), kind))
    if any(a[0] > b[0] for a, b in pairwise(rows)):
        rows.sort()
    out: list[E820Range] = []
    cs, ce, ct = -1, -1, -1
    for s, e, t in rows:
        if t == ct and s == ce:
            ce = e
            continue
        if ct >= 0:
            out.append(E820Range(cs, ce, _E820[ct]))
        cs, ce, ct = s, e, t
    if ct >= 0:
        out.append(E820Range(cs, ce, _E820[ct]))
    return out


_E820 = {int(t): t for t in E820Type}


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
    array = _SYNTHETIC_BASE + 0x1000
    bs.memory.write(array, build_config_tables(tables))
    st = machine.system_table
    rev = st.hdr.revision if st is not None else 0x00020046
    bs.system_table_address = _SYNTHETIC_BASE
    bs.system_table = SystemTable.new(rev, nr_tables=len(tables), tables=array)
    bs.config_capacity = len(tables) + 16


class _Judge:
    """Verdicts for every firmware table on one finished path."""

    def __init__(
        self,
        machine: Machine,
        spec: PathSpec,
        original: PhysicalMemory,
        bs: BootServices,
        lb: linux.LinuxBoot,
        xb: xen.XenBoot | None,
        esrt_known: bool,
    ) -> None:
        self.machine = machine
        self.spec = spec
        self.original = original
        self.bs = bs
        self.lb = lb
        self.xb = xb
        self.esrt_known = esrt_known
        self.esrt_differences: list[str] = []
        assert machine.memory_map is not None
        self.firmware_map: MemoryMap = machine.memory_map
        self.reclaimed = SpanSet(xb.reclaimed if xb is not None else lb.freed)
        self.linux_reserved = SpanSet(lb.reserved)

    def all(self, fw_tables: tuple[ConfigurationTable, ...]) -> dict[Guid, TableVerdict]:
        out: dict[Guid, TableVerdict] = {}
        final_tables = self.bs.config_tables()
        for i, ct in enumerate(fw_tables):
            if ct.guid in out:
                continue
            final = final_tables[i].table if i < len(final_tables) else ct.table
            out[ct.guid] = self.one(i, ct.guid, ct.table, final)
        if ESRT_GUID not in out:
            out[ESRT_GUID] = TableVerdict(
                ESRT_GUID, "ESRT", Verdict.ABSENT, "the firmware installs no ESRT"
            )
        return out

    def one(self, index: int, guid: Guid, addr: int, final: int) -> TableVerdict:
        """One table; the first word of docs/design.md's order that fits wins: refused, corrupt,
        clobbered, relocated, intact."""
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
            if kt.name in linux.EARLY_CONSUMED:
                consumer = use.parse_bytes
            elif size:
                consumer = self.bs.memory.read(final, size)
        firmware = self.original.read(addr, size) if size else None
        if consumer is not None and firmware is not None and consumer != firmware:
            diff = sum(1 for a, b in zip(consumer, firmware, strict=False) if a != b)
            return v(
                Verdict.CORRUPT,
                f"Linux reads {diff} of {size} bytes changed: its {where} was reused before it "
                "was read",
            )
        recorded = use is not None and use.recorded and kt is not None
        if recorded and self.xb is None and kt is not None and kt.name in linux.EARLY_CONSUMED:
            # drivers/firmware/efi/efi.c efi_config_parse_tables: the RNG seed and the initrd
            # location are used while parsing, long before efi_free_boot_services.
            return v(
                Verdict.INTACT,
                f"in {where}; Linux consumes it while parsing, before that memory is reused",
            )
        kept, why = self._kept(final)
        if not kept:
            return v(Verdict.CLOBBERED, f"in {where}: {why}")
        if final != addr:
            return v(
                Verdict.RELOCATED,
                f"Xen copied it to {final:#x} ({self._type_at(final)}), which stays reserved",
            )
        if recorded:
            assumed = (
                " (its bytes are not in the evidence: assuming a valid table, which Linux reserves)"
                if guid in self.lb.assumed_valid
                else ""
            )
            return v(
                Verdict.INTACT, f"in {where}, which stays reserved; Linux uses it in place{assumed}"
            )
        parsed = kt is not None and kt.linux_parses
        return v(
            Verdict.INTACT,
            f"in {where}, which stays reserved"
            + ("" if parsed else "; Linux does not parse this GUID"),
        )

    def _esrt(self, v, use, addr: int, final: int, where: str) -> TableVerdict:
        lb = self.lb
        if use is not None and use.refused:
            return v(Verdict.REFUSED, use.refused)
        if lb.esrt_refused:
            decided = lb.esrt_refused.check.decided_without_bytes
            if not self.esrt_known and not decided:
                return v(
                    Verdict.UNKNOWN,
                    "the ESRT's bytes are not in the evidence, and the checks depend on them",
                )
            return v(Verdict.REFUSED, str(lb.esrt_refused))
        relocs = self.xb.relocations if self.xb else []
        reloc = next((r for r in relocs if r.guid == ESRT_GUID), None)
        if (
            not self.esrt_known
            and self.xb is not None
            and self.spec.xen_relocates_esrt
            and reloc is None
        ):
            return v(
                Verdict.UNKNOWN,
                "whether Xen relocates the ESRT depends on bytes the evidence lacks",
            )
        firmware = self._firmware_esrt(addr)
        seen = lb.esrt_bytes
        short = reloc is not None and reloc.copied < reloc.size
        if short and (firmware is None or seen is None):
            assert reloc is not None
            return v(
                Verdict.CORRUPT,
                f"Xen copied {reloc.copied} of {reloc.size} bytes (get_esrt_size forgets the "
                "16-byte header before 3ea44aa78c): the last entry's last four fields are the "
                "pool's POOL_TAIL, not the firmware's values",
            )
        if firmware is not None and seen is not None and seen != firmware[: len(seen)]:
            self.esrt_differences = _esrt_diff(firmware, seen)
            why = "; ".join(self.esrt_differences[:3])
            if reloc is not None and reloc.copied < reloc.size:
                cause = (
                    f"Xen copied {reloc.copied} of {reloc.size} bytes (get_esrt_size forgets "
                    "the 16-byte header before 3ea44aa78c); the rest is whatever the pool held"
                )
            else:
                cause = f"its {where} was reused before Linux mapped it"
            return v(Verdict.CORRUPT, f"{cause}: {why}")
        kept, why = self._kept(final)
        if not kept:
            return v(Verdict.CLOBBERED, f"in {where}: {why}")
        if final != addr:
            return v(
                Verdict.RELOCATED,
                f"Xen copied it whole to {final:#x} ({self._type_at(final)})",
            )
        if seen is None and firmware is None:
            return v(
                Verdict.INTACT,
                f"in {where}; Linux accepted and reserved it (bytes not in the evidence)",
            )
        how = ""
        if any(s == addr for s, _ in lb.mem_reserved):
            how = " and reserved it with efi_mem_reserve"
        elif self.xb is None:
            how = "; its memory stays reserved"
        return v(Verdict.INTACT, f"in {where}; Linux accepted it{how}")

    def _firmware_esrt(self, addr: int) -> bytes | None:
        hdr = self.original.read(addr, ESRT_HEADER_SIZE)
        if hdr is None:
            return None
        n = EsrtHeader.unpack(hdr).size
        return self.original.read(addr, min(n, 16 + 40 * 4096))

    def _size(self, guid: Guid, addr: int, md: MemoryDescriptor | None) -> int | None:
        limit = md.end - addr if md else None
        res = known_tables.table_size(guid, self.original.read, addr, limit)
        if res.size is None or res.size <= 0 or res.size > 1 << 24:
            return None
        return res.size

    def _type_at(self, addr: int) -> str:
        if self.xb is not None:
            rc, info = self.xb.mem_info(addr, 1)
            return type_name(info.type) if rc == 0 and info else "?"
        md = self.lb.memmap.lookup(addr) if self.lb.memmap else None
        return md.type_name if md else "?"

    def _kept(self, addr: int) -> tuple[bool, str]:
        """Does the memory at ``addr`` stay out of the allocator for good?"""
        if self.xb is not None:
            if addr in self.reclaimed:
                v = ".".join(map(str, self.xb.spec.xen or ()))
                return False, f"Xen {v} reclaims it as RAM before dom0 starts"
            return True, ""
        if addr in self.reclaimed:
            return False, "efi_free_boot_services frees it; nothing reserved it"
        md = self.firmware_map.lookup(addr)
        if md is not None and md.type in _LINUX_RAM and addr not in self.linux_reserved:
            return False, "Linux treats it as usable RAM"
        return True, ""

    def kexec(self, fw_tables: tuple[ConfigurationTable, ...]) -> dict[Guid, TableVerdict]:
        """After a kexec: does the next kernel still find each table's bytes?

        Native Linux hands the next kernel its EFI map, in which what efi_mem_reserve tagged
        RUNTIME survives (x86 kexec passes efi.memmap). A Xen copy in ACPI reclaim is in the
        firmware's map for good. A reservation made by hypercall lives in Xen's memory only:
        the next kernel sees boot-services data again and may reuse it.
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
                if rc == 0 and info is not None and info.type in _BS:
                    kept = False
                    why = (
                        "reserved only by hypercall; the reservation does not persist across "
                        "kexec"
                    )
            if kept:
                verdict = Verdict.RELOCATED if final != ct.table else Verdict.INTACT
            else:
                verdict = Verdict.CLOBBERED
            reason = why or "its memory is still reserved"
            out[ct.guid] = TableVerdict(ct.guid, name, verdict, reason, ct.table, final)
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
        fields = [f for f in ENTRY_FIELDS if getattr(a, f) != getattr(b, f)]
        if fields:
            out.append(f"entry{i} {', '.join(fields)} differ")
    return out


def _cost(spec: PathSpec, lb: linux.LinuxBoot, xb: xen.XenBoot | None) -> Cost:
    """Bare metal: the BS bytes Linux keeps (tagged RUNTIME). Xen: the relocated copies, plus
    every BS byte under ``-mapbs``; the reserve-hypercall proposal keeps dom0's reserved pages
    and holds all BS memory until dom0 is done."""
    if xb is None:
        return Cost(sum(e - s for s, e in lb.kept_bs), 0)
    reloc = sum(r.pool_bytes for r in xb.relocations)
    bs_bytes = sum(d.num_pages << PAGE_SHIFT for d in xb.efi_memmap.descriptors if d.type in _BS)
    if spec.mapbs:
        return Cost(reloc + bs_bytes, 0)  # never returned: reserved for good
    if spec.policy is Policy.RESERVE_HYPERCALL:
        pages = sum(_page_span(s, e) for s, e in lb.reserved)
        return Cost(reloc + pages, bs_bytes)
    return Cost(reloc, 0)


def _page_span(s: int, e: int) -> int:
    return ((e + 4095) & ~4095) - (s & ~4095)


__all__ = ["Cost", "PathResult", "simulate", "stub_e820"]
