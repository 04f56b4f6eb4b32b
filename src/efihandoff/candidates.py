"""Where the firmware put each table, as far as the evidence says: the placements it leaves
open (each memory type a log allows; for an ESRT a dom0 may see as Xen's copy, the
boot-services-data original), and the verdicts kept only where every placement and every
stack the evidence allows agree. Used by :mod:`efihandoff.explain`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from efihandoff.dom0 import (
    XEN_COPY_TYPE,
    ShortCopy,
    short_copy,
    xen_copy_is_whole,
    xen_may_have_copied,
)
from efihandoff.fwupd import unknown_files as fwupd_unknown_files
from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.paths.memo import simulate  # one simulation per distinct question
from efihandoff.paths.presets import BootMode, PathSpec
from efihandoff.paths.simulate import PathResult
from efihandoff.paths.verdict import TableVerdict, Verdict
from efihandoff.rules import tables as known_tables
from efihandoff.sources import Role, SourceKind, View
from efihandoff.sources.logmachine import Observed, candidate_machine, retype
from efihandoff.uefi.esrt import ESRT_GUID, Esrt, esrt_size
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryType, type_name

OBSERVED = "observed"  # paths.observed: the stack that printed the evidence


@dataclass(frozen=True)
class Who:
    """Who printed the evidence, with what the evidence names of the stack."""

    role: Role
    xen: tuple[int, ...] | None = None
    xen_text: str | None = None
    xen_boot: BootMode | None = None
    linux: tuple[int, ...] | None = None
    linux_text: str | None = None


@dataclass(frozen=True)
class Candidate:
    """One placement of a table the evidence leaves open, and the machine it makes."""

    label: str
    machine: Machine


def short_copies(views: Sequence[View]) -> list[tuple[View, ShortCopy]]:
    """Views whose ESRT bytes (a dom0's /sys/firmware copy, a dump) end in Xen's short copy."""
    out = []
    for v in views:
        if v.role is Role.BARE_METAL:
            continue
        esrt = None
        if v.sysfs is not None and v.sysfs.esrt is not None:
            esrt = v.sysfs.esrt.to_esrt()
        elif v.log is None and v.source.kind is SourceKind.DUMP:
            esrt = _esrt_of(v.machine)
        found = short_copy(esrt) if esrt is not None else None
        if found is not None:
            out.append((v, found))
    return out


def _esrt_of(machine: Machine) -> Esrt | None:
    """The ESRT a view's memory holds whole, up to 128 entries (hostile bytes: none)."""
    read = machine.read_esrt(max_entries=128)
    return read.table if read is not None else None


def placement_candidates(
    primary: View, machine: Machine, who: Who, shorts: list[tuple[View, ShortCopy]]
) -> dict[Guid, list[Candidate]]:
    """Per table, the placements the evidence leaves open: each memory type a log allows, and
    for an ESRT a dom0 may see as Xen's copy, the boot-services-data original it was copied
    from (facts 5.4). One candidate left means the evidence decided."""
    out: dict[Guid, list[Candidate]] = {}
    if primary.log is not None:
        for guid, variants in primary.log.variants.items():
            out[guid] = [
                Candidate("/".join(type_name(t) for t in types), m.with_(memory=machine.memory))
                for types, m in variants
            ]
    ct = machine.table(ESRT_GUID)
    if ct is None or machine.memory_map is None or not _may_be_xen_copy(primary, who, machine):
        return out
    types = machine.memory_type_candidates.get(ct.table)
    if types is None:
        md = machine.lookup(ct.table)
        types = (md.type,) if md is not None else ()
    if XEN_COPY_TYPE not in types:
        return out
    # EDK II bytes without the POOL_TAIL a short copy leaves: not Xen's short copy, but a build
    # carrying 3ea44aa78c (a backport the version does not show) may have copied it whole.
    no_tail = not shorts and _no_tail_refutes_copy(machine, ct.table, who)
    if no_tail:
        machine.memory_type_evidence[ct.table] = (
            f"{machine.memory_type_evidence.get(ct.table, 'memory map')}; its bytes do not end "
            f"in the POOL_TAIL Xen {who.xen_text}'s short copy leaves under EDK II: the "
            "firmware's own table, or a whole copy by a build carrying the size fix"
        )
    original = _xen_original(machine, ct.table, who, shorts, whole=no_tail)
    if shorts:
        return {**out, ESRT_GUID: [Candidate("EfiBootServicesData, copied short by Xen", original)]}
    own = out.get(ESRT_GUID) or [
        Candidate(type_name(t), candidate_machine(machine, machine.memory_map, ct, t, None))
        for t in types
    ]
    assert original.memory_map is not None
    reduced = candidate_machine(
        original, original.memory_map, ct, MemoryType.EfiBootServicesData, None
    )
    label = (
        "EfiBootServicesData, copied whole by a Xen carrying the size fix"
        if no_tail
        else "EfiBootServicesData, copied by Xen"
    )
    out[ESRT_GUID] = [*own, Candidate(label, reduced)]
    return out


def _no_tail_refutes_copy(machine: Machine, addr: int, who: Who) -> bool:
    """Whether the ESRT's own bytes rule out Xen's copy: a Xen known to copy short (before
    3ea44aa78c) leaves edk2's POOL_TAIL in the last 16 bytes, which the reference EDK II core
    always writes after an AllocatePool'd block (Pool.c CoreAllocatePoolI); other vendors'
    allocators are not known here, so only EDK II firmware is judged this way."""
    if xen_copy_is_whole(who.xen) is not False or machine.esrt_stand_ins:
        return False
    if (machine.firmware_vendor or "").strip() != "EDK II":
        return False
    esrt = _esrt_of(machine)
    return esrt is not None and bool(esrt.entries) and short_copy(esrt) is None


def _may_be_xen_copy(primary: View, who: Who, machine: Machine) -> bool:
    if primary.role is Role.BARE_METAL or who.role is Role.BARE_METAL:
        return False
    if primary.source.kind in (SourceKind.SCENARIO, SourceKind.EXAMPLE):
        return False
    return xen_may_have_copied(who.xen, who.xen_boot)


def _xen_original(
    machine: Machine,
    addr: int,
    who: Who,
    shorts: list[tuple[View, ShortCopy]],
    *,
    whole: bool = False,
) -> Machine:
    """The firmware's ESRT as Xen's copy at ``addr`` proves it: in EfiBootServicesData (its own
    address is not in the evidence; nothing a path does depends on it), holding the copied
    bytes, the last 16 unknown unless the running Xen copies whole."""
    assert machine.memory_map is not None
    head = machine.read(addr, 16)
    size = esrt_size(Esrt.parse_header(head).fw_resource_count) if head is not None else 16
    seen = machine.read(addr, size)
    memory = PhysicalMemory(background=Fill.UNKNOWN)
    whole = not shorts and (whole or xen_copy_is_whole(who.xen) is True)
    if seen is not None:
        memory.write(addr, seen if whole else seen[: max(16, size - 16)])
    elif head is not None:
        memory.write(addr, head)
    out = machine.with_(
        memory_map=retype(machine.memory_map, addr, MemoryType.EfiBootServicesData, addr + size),
        memory=memory,
        memory_type_evidence={
            **machine.memory_type_evidence,
            addr: "EfiBootServicesData: the dom0 sees Xen's copy at this address; the firmware's "
            "own address is not in the evidence",
        },
        memory_type_candidates={
            a: c for a, c in machine.memory_type_candidates.items() if a != addr
        },
        notes=list(machine.notes),
    )
    if shorts:
        out.notes.append(
            f"the ESRT at {addr:#x} is Xen's short copy ({shorts[0][0].source.path}): the "
            "firmware put the original in EfiBootServicesData"
        )
    return out


def judged(
    machine: Machine,
    specs: Sequence[PathSpec],
    cands: dict[Guid, list[Candidate]],
    printed: Sequence[Observed] = (),
    trees: Sequence[dict[str, str | None]] = (),
) -> PathResult:
    """Simulate, then keep a verdict only where every candidate placement (and every stack in
    ``specs``, when the evidence names the stack only in part) agrees; else ``unknown``. A
    combination whose kernel would have printed other than what the dom0 logs ``printed``
    (allowlist marks, ESRT reserved or not) or exposed other than its ``trees`` is ruled out."""
    results = [simulate(machine, s) for s in specs]
    fits = [_fits(r, printed, None, trees) for r in results]
    if any(fits) and not all(fits):
        kept = [i for i, ok in enumerate(fits) if ok]
        specs, results = [specs[i] for i in kept], [results[i] for i in kept]
    result = results[0]
    tables = dict(result.tables)
    for guid, current in result.tables.items():
        outcomes: list[tuple[str, TableVerdict]] = []
        ruled_out: list[tuple[str, TableVerdict]] = []
        for spec, whole in zip(specs, results, strict=True):
            stack = f"{_stack_words(spec)}: " if len(specs) > 1 else ""
            if guid in cands:
                for c in cands[guid]:
                    r = simulate(c.machine, spec, shared=True)  # read, never changed
                    tv = r.tables.get(guid)
                    if tv is not None:
                        target = outcomes if _fits(r, printed, guid, trees) else ruled_out
                        target.append((stack + c.label, tv))
            else:
                outcomes.append((stack.rstrip(": "), whole.tables[guid]))
        outcomes = outcomes or ruled_out
        if len(outcomes) > 1:
            tables[guid] = _combine(current, outcomes, guid in cands, len(specs) > 1)
    result = replace(result, tables=tables)
    esrt = tables.get(ESRT_GUID)
    if esrt is not None and esrt.verdict is Verdict.UNKNOWN:
        result = replace(result, esrt_sysfs=None, fwupd_devices=None, sysfs=None)
    return result


def _fits(
    result: PathResult,
    printed: Sequence[Observed],
    guid: Guid | None = None,
    trees: Sequence[dict[str, str | None]] = (),
) -> bool:
    """Whether a simulated boot prints what the real dom0 did and exposes the ESRT tree it
    exposed (every value both know), for ``guid`` alone when given: a reduced candidate
    machine holds only that table."""
    # A dom0 that printed its config-table line or left a /sys/firmware copy ran past
    # xen_memory_setup (Linux x86 setup_arch: e820__memory_setup, which a PV dom0 routes to
    # xen_memory_setup, comes before efi_init prints the tables): a halting boot is not it.
    if result.booted is False and (trees or any(o.lists_tables for o in printed)):
        return False
    if guid in (None, ESRT_GUID) and result.esrt_sysfs is not None:
        for tree in trees:
            has = any(k.startswith("efi/esrt/") for k in tree)
            if has != result.esrt_sysfs:
                return False
            files = result.sysfs or {}
            unknowable = fwupd_unknown_files(files)
            if any(
                v is not None and k not in unknowable and tree.get(k) not in (None, v)
                for k, v in files.items()
            ):
                return False
    for o in printed:
        if not o.lists_tables:
            continue
        pred = {
            kt.linux_label or kt.name
            for g in result.unusable
            if (kt := known_tables.known(g)) is not None and (guid is None or g == guid)
        }
        real = set(o.unusable)
        if guid is not None:
            kt = known_tables.known(guid)
            real &= {kt.linux_label or kt.name} if kt is not None else set()
        if pred != real:
            return False
        if (guid is None or guid == ESRT_GUID) and result.esrt_reserving != (
            "reserving" in o.esrt_kinds
        ):
            return False
    return True


def _combine(
    current: TableVerdict,
    outcomes: list[tuple[str, TableVerdict]],
    placement: bool,
    stack: bool,
) -> TableVerdict:
    what = " and ".join(
        w
        for w, on in (
            ("where the firmware put it, which the evidence leaves open", placement),
            ("the Xen build or the Linux version, which the evidence does not pin down", stack),
        )
        if on
    )
    seen: dict[tuple[str, Verdict], TableVerdict] = {}
    for label, tv in outcomes:
        seen.setdefault((label, tv.verdict), tv)
    words = {v for _, v in seen}
    if len(words) == 1:
        first = next(iter(seen.values()))
        names = ", ".join(label for label, _ in seen)
        base = current if current.verdict is first.verdict else first
        return replace(
            base, reason=f"{base.reason} (depends on {what}; every candidate, {names}, agrees)"
        )
    detail = "; ".join(f"{label}: {v}" for label, v in seen)
    return replace(
        current,
        verdict=Verdict.UNKNOWN,
        reason=f"depends on {what} ({detail})",
        candidates=tuple(seen),
    )


def _stack_words(spec: PathSpec) -> str:
    fix = " with the size fix backported" if spec.size_fix else ""
    xen = "" if spec.xen is None else f"Xen {'.'.join(map(str, spec.xen))}{fix}, "
    return f"{xen}Linux {'.'.join(map(str, spec.linux))}"
