"""From sources to an answer: who printed each view, merge the views of one boot, run the
paths on every placement the evidence leaves open, compare with what a real dom0 printed, and
say what to do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from efihandoff.audit import machine_findings
from efihandoff.dom0 import (
    XEN_COPY_TYPE,
    ShortCopy,
    short_copy,
    short_copy_finding,
    xen_copy_is_whole,
    xen_may_have_copied,
)
from efihandoff.findings import Finding, info, warning
from efihandoff.fwupd import unknown_files as fwupd_unknown_files
from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.paths.linux import EsrtCheck
from efihandoff.paths.memo import simulate  # one simulation per distinct question
from efihandoff.paths.presets import PRESETS, BootMode, PathSpec
from efihandoff.paths.simulate import PathResult
from efihandoff.paths.verdict import TableVerdict, Verdict
from efihandoff.rules import tables as known_tables
from efihandoff.sources import Role, Source, SourceKind, View
from efihandoff.sources.logmachine import (
    Observed,
    candidate_machine,
    from_boot,
    parse_version,
    retype,
    version_text,
)
from efihandoff.uefi.esrt import ESRT_GUID, Esrt, esrt_size
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryType, type_name

OBSERVED = "observed"  # paths.observed: the stack that printed the evidence
# efi_esrt_init checks that print a message (kernel-log reader kinds of the same names).
_PRINTED_CHECKS = frozenset(
    c for c in EsrtCheck if c not in (EsrtCheck.NO_EFI_MEMMAP, EsrtCheck.BYTES_UNKNOWN)
)
_GOOD = (Verdict.INTACT, Verdict.RELOCATED)
# Linux drivers/firmware/efi/efi.c common_tables names the ESRT since 4.2 (0bb549052d33).
_ESRT_LABEL_SINCE = (4, 2)
_FIXED_XEN = "Xen 4.19.5 / 4.20.3 / 4.21.1 / 4.22+"
_XEN_VERSIONS = ((4, 16, 5), (4, 17, 1), (4, 22, 0))  # one of each ESRT behaviour (facts 5.1)


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


@dataclass
class Explanation:
    """Everything ``explain`` prints."""

    views: list[View]
    machine: Machine
    results: dict[str, PathResult]
    findings: list[Finding]
    advice: list[str]
    memory_map_evidence: str
    who: Who = field(default_factory=lambda: Who(Role.UNKNOWN))
    observed_label: str | None = None

    @property
    def sources(self) -> list[Source]:
        return [v.source for v in self.views]


def explain(views: Sequence[View], specs: Sequence[PathSpec] | None = None) -> Explanation:
    """Judge every path for the machine the views describe."""
    merged = _merge_xen_console(views)
    who = _who(merged)
    primary = _primary(merged)
    machine = _firmware_machine(primary, merged)
    shorts = _short_copies(merged)
    cands = _candidates(primary, machine, who, shorts)
    if ESRT_GUID in cands and len(cands[ESRT_GUID]) == 1:
        machine = cands.pop(ESRT_GUID)[0].machine  # the evidence decides the placement
    # Findings about the firmware's handoff, on the machine the evidence decided (a proven
    # short copy's tail is Xen's, not the firmware's values).
    findings = machine_findings(machine) + _agreement(primary, merged) + _log_findings(merged)
    findings += [short_copy_finding(v.source.path, s) for v, s in shorts]
    specs = list(specs) if specs else list(PRESETS.values())
    results: dict[str, PathResult] = {}
    if machine.memory_map is not None:
        for spec in specs:
            results[spec.id] = _judged(machine, [spec], cands)
    observed_specs = _observed_specs(who, merged, shorts)
    label = _observed_label(who, observed_specs) if observed_specs else None
    from_tree = False
    if observed_specs and machine.memory_map is not None:
        printed = [v.log.observed for v in merged if v.dom0 and v.log is not None]
        trees = [v.sysfs.esrt_tree() for v in merged if v.dom0 and v.sysfs is not None]
        results[OBSERVED] = _judged(machine, observed_specs, cands, printed, trees)
    elif observed_specs and (tree := _dom0_tree(merged)) is not None:
        short = next((s for v, s in shorts if v is tree), None)
        results[OBSERVED] = _observed_from_tree(observed_specs[0], tree, short)
        from_tree = True
    if not machine.memory_map_complete:
        results = {pid: _outside_partial_map(r, machine) for pid, r in results.items()}
    absent_known, why_not = _absence_decidable(merged, machine)
    if machine.table(ESRT_GUID) is None:
        shown = any(v.sysfs and v.sysfs.esrt for v in merged)
        results = {
            pid: r
            if pid == OBSERVED and from_tree
            else _esrt_unknown(r, shown, absent_known, why_not)
            for pid, r in results.items()
        }
    if OBSERVED in results:
        findings += _cross_check(merged, results[OBSERVED], label or "")
    evidence = primary.log.memory_map_evidence if primary.log else primary.source.kind.value
    advice = _not_efi(merged) + advise(machine, results, who, cands, observed_specs, label)
    return Explanation(
        views=list(views),
        machine=machine,
        results=results,
        findings=findings,
        advice=list(dict.fromkeys(advice)),
        memory_map_evidence=evidence,
        who=who,
        observed_label=label,
    )


# -- who printed what -------------------------------------------------------------------------


def _merge_xen_console(views: Sequence[View]) -> list[View]:
    """``xl dmesg`` (Xen's console alone) given with a Linux log is that dom0's hypervisor: its
    version, boot mode and the host's EFI map and E820 join the Linux log's boot."""
    xen = [v for v in views if v.log is not None and v.role is Role.XEN_HYPERVISOR]
    linux = [
        v
        for v in views
        if v.log is not None
        and v.role in (Role.XEN_DOM0, Role.UNKNOWN)
        and (v.log.boot.xen is None or v.log.boot.xen.lines == 0)
    ]
    if not xen or not linux:
        return list(views)
    last = xen[-1].log
    assert last is not None and last.boot.xen is not None
    console = last.boot.xen
    out = []
    for v in views:
        if v in xen:
            continue
        if v in linux:
            assert v.log is not None
            own = v.log.boot.xen
            joined = replace(console, version=console.version or (own.version if own else None))
            ev = from_boot(replace(v.log.boot, xen=joined), name=v.machine.name)
            v = View(v.source, ev.machine, ev)
        out.append(v)
    return out


def _who(views: Sequence[View]) -> Who:
    roles = {v.role for v in views}
    if Role.XEN_DOM0 in roles:
        role = Role.XEN_DOM0
    elif Role.BARE_METAL in roles:
        role = Role.BARE_METAL
    elif roles == {Role.XEN_HYPERVISOR}:
        role = Role.XEN_HYPERVISOR
    else:
        role = Role.UNKNOWN
    logs = [v.log.observed for v in views if v.log is not None]
    xen_text = next((o.xen_text for o in logs if o.xen_text), None)
    if xen_text is None:
        xen_text = next(
            (
                v.sysfs.hypervisor_version
                for v in views
                if v.sysfs is not None and v.sysfs.hypervisor_type == "xen"
                and parse_version(v.sysfs.hypervisor_version, 3)
            ),
            None,
        )
    mb2 = next((o.multiboot2 for o in logs if o.multiboot2 is not None), None)
    mine = [v.log for v in views if v.log is not None and v.role is role]
    linux_text = next(
        (t for ev in mine if (t := version_text(ev.boot.kernel_version))), None
    )
    return Who(
        role=role,
        xen=parse_version(xen_text, 3),
        xen_text=xen_text,
        xen_boot=None if mb2 is None else (BootMode.MULTIBOOT2 if mb2 else BootMode.EFI),
        linux=parse_version(linux_text, 2),
        linux_text=linux_text,
    )


def _primary(views: Sequence[View]) -> View:
    """The view closest to the firmware: a dump or scenario (bytes and a map), then a view that
    lists the configuration tables (one that places the ESRT first, bare metal before a dom0, a
    log before a /sys/firmware copy, with a map first), then the rest; a view that lists no
    tables (xl dmesg) never stands for the firmware's tables."""
    order = {Role.BARE_METAL: 0, Role.UNKNOWN: 1, Role.XEN_DOM0: 2, Role.XEN_HYPERVISOR: 3}

    def rank(v: View) -> tuple[int, int, int, int, int, int]:
        m = v.machine
        has_bytes = v.log is None and v.sysfs is None and m.memory is not None
        return (
            0 if has_bytes and m.memory_map is not None else 1,
            0 if m.config_tables is not None else 1,
            0 if m.table(ESRT_GUID) is not None else 1,  # a sysfs copy never says where
            order[v.role],
            # a copy's runtime-map holds RUNTIME regions only: a log's map covers the rest
            1 if v.sysfs is not None else 0,
            0 if m.memory_map is not None else 1,
        )

    return min(views, key=rank)


def _firmware_machine(primary: View, views: Sequence[View]) -> Machine:
    """The primary view's machine (a copy: the caller's views stay as they are), with ESRT bytes
    a /sys/firmware copy shows where the primary knows the address but not the bytes; a copy
    taken on the same side (bare metal, or a dom0) shows the bytes at that address."""
    machine = primary.machine.with_(
        notes=list(primary.machine.notes),
        memory_type_evidence=dict(primary.machine.memory_type_evidence),
    )
    ct = machine.table(ESRT_GUID)
    if ct is None or not isinstance(machine.memory, PhysicalMemory):
        return machine
    for v in views:
        if v is primary or v.sysfs is None or v.sysfs.esrt is None or v.dom0 != primary.dom0:
            continue
        esrt = v.sysfs.esrt.to_esrt()
        if esrt is None or machine.memory.read(ct.table + 16, esrt.size - 16) is not None:
            continue
        memory = machine.memory.copy()
        memory.write(ct.table, esrt.build())
        side = "a Xen dom0" if v.dom0 else "bare-metal Linux"
        machine = machine.with_(memory=memory, esrt_stand_ins=frozenset())
        machine.notes.append(f"ESRT bytes from {v.source.path} (as {side} exposed them)")
        break
    return machine


def _agreement(primary: View, views: Sequence[View]) -> list[Finding]:
    """Two views of one firmware must name the same tables at the same addresses; a dom0 may
    see the ESRT elsewhere when Xen relocated it."""
    out: list[Finding] = []
    base = {t.guid: t.table for t in primary.machine.config_tables or ()}
    for v in views:
        if v is primary:
            continue
        for t in v.machine.config_tables or ():
            if t.guid not in base or base[t.guid] == t.table:
                continue
            kt = known_tables.known(t.guid)
            name = kt.name if kt else str(t.guid)
            if t.guid == ESRT_GUID and v.dom0:
                out.append(
                    info(
                        "sources.esrt-relocated",
                        f"{v.source.path} (a dom0) sees the ESRT at {t.table:#x}, firmware "
                        f"put it at {base[t.guid]:#x}: Xen relocated it",
                    )
                )
            else:
                out.append(
                    warning(
                        "sources.disagree",
                        f"{name} is at {base[t.guid]:#x} in {primary.source.path} but at "
                        f"{t.table:#x} in {v.source.path}: are these the same machine and "
                        "firmware?",
                    )
                )
    return out


def _log_findings(views: Sequence[View]) -> list[Finding]:
    """Nothing dropped silently: a line that looks relevant but does not parse, and what a
    reader's cap cut, are findings."""
    out: list[Finding] = []
    for v in views:
        if v.log is None:
            continue
        boot = v.log.boot
        for u in boot.unparsed:
            out.append(
                warning(
                    "log.unparsed-line",
                    f"{v.source.path}:{u.line}: looks like {u.what} but does not parse; what "
                    f"it would have said is unknown: {u.text!r}",
                )
            )
        if boot.unparsed_more:
            out.append(
                warning(
                    "log.unparsed-line",
                    f"{v.source.path}: {boot.unparsed_more} more lines like that",
                )
            )
        out += [warning("log.cut", f"{v.source.path}: {why}") for why in boot.cut]
        out += [
            info(
                "log.unknown-table",
                f"{v.source.path}: the efi: line names {label}={addr:#x}, a table efihandoff "
                "does not know (no GUID or size rule): not judged",
            )
            for label, addr in v.log.unknown_labels
        ]
    return out


# -- where the firmware put each table --------------------------------------------------------


def _short_copies(views: Sequence[View]) -> list[tuple[View, ShortCopy]]:
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


def _candidates(
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


# -- judging -----------------------------------------------------------------------------------


def _judged(
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
                    r = simulate(c.machine, spec)
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
    if guid in (None, ESRT_GUID) and result.esrt_sysfs is not None:
        for tree in trees:
            has = any(k.startswith("efi/esrt/") for k in tree)
            if has != result.esrt_sysfs:
                return False
            pred = result.sysfs or {}
            unknowable = fwupd_unknown_files(pred)
            if any(
                v is not None and k not in unknowable and tree.get(k) not in (None, v)
                for k, v in pred.items()
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


def _esrt_unknown(result: PathResult, shown: bool, absent_known: bool, why: str) -> PathResult:
    """No view says where the ESRT is: ``absent`` only when a view that would show it lacks it."""
    if shown:
        reason = (
            "the /sys/firmware copy shows the ESRT's contents but not its address or memory "
            "type; add the kernel log of the same boot"
        )
    elif absent_known:
        return result
    else:
        reason = why
    tables = dict(result.tables)
    tables[ESRT_GUID] = TableVerdict(ESRT_GUID, "ESRT", Verdict.UNKNOWN, reason)
    return replace(result, tables=tables, esrt_sysfs=None, fwupd_devices=None, sysfs=None)


def _outside_partial_map(result: PathResult, machine: Machine) -> PathResult:
    """A table outside a map that holds only some regions (a copy's runtime-map) has a type
    the evidence does not give: its verdict is unknown, whatever the simulation said."""
    tables = dict(result.tables)
    for guid, tv in result.tables.items():
        if tv.address is not None and machine.lookup(tv.address) is None:
            tables[guid] = replace(
                tv,
                verdict=Verdict.UNKNOWN,
                reason="its memory type is not in the evidence: the /sys/firmware copy's "
                "runtime-map holds RUNTIME regions only; add the kernel log of the same boot",
            )
    return replace(result, tables=tables)


def _absence_decidable(views: Sequence[View], machine: Machine) -> tuple[bool, str]:
    """Whether some view would show an ESRT the firmware installed: a system table read from
    bytes, or an efi: table line from a kernel that names the ESRT (Linux 4.2+)."""
    for v in views:
        if v.log is None and v.sysfs is None and v.machine.config_tables is not None:
            return True, ""
        unreadable = v.log is not None and any(
            u.what == "efi config-table line" for u in v.log.boot.unparsed
        )
        if v.log is not None and v.log.observed.lists_tables and not unreadable:
            linux = v.log.observed.linux
            if (linux is not None and linux >= _ESRT_LABEL_SINCE) or v.log.observed.unusable:
                return True, ""
    if machine.config_tables is None:
        return False, (
            "no source lists the configuration tables (xl dmesg and Xen's console never print "
            "them): add the dom0's or bare-metal kernel log, whose efi: line names them"
        )
    return False, (
        "the efi: line lacks an ESRT, but the log does not say its kernel version and Linux "
        "names the ESRT only since 4.2: add the 'Linux version' line"
    )


# -- the observed stack ------------------------------------------------------------------------


def _observed_specs(
    who: Who, views: Sequence[View], shorts: list[tuple[View, ShortCopy]]
) -> list[PathSpec]:
    """The stack that printed the evidence; where it names the stack only in part, every
    version that could have printed it (one of each behaviour)."""
    if who.role is Role.BARE_METAL:
        if who.linux is None:
            return []
        return [PathSpec(OBSERVED, linux=who.linux, description="the stack that printed the log")]
    if who.role is not Role.XEN_DOM0:
        return []
    known_linux = who.linux or _dom0_linux(views)
    linux: list[tuple[int, ...]] = [known_linux] if known_linux else [(6, 1), (6, 3)]
    xens: list[tuple[int, ...]] = [who.xen] if who.xen else list(_XEN_VERSIONS)
    if shorts:  # only an unfixed 4.17+ copies short
        xens = [x for x in xens if xen_may_have_copied(x, who.xen_boot)]
        xens = [x for x in xens if xen_copy_is_whole(x) is False] or xens
    # A version that predates 3ea44aa78c may still carry it as a patch: both are tried unless
    # the dom0's bytes show the short copy.
    fixes: list[bool | None] = [None]
    if (
        who.xen is not None
        and not shorts
        and xen_may_have_copied(who.xen, who.xen_boot)
        and xen_copy_is_whole(who.xen) is False
    ):
        fixes.append(True)
    boots = [who.xen_boot] if who.xen_boot else [BootMode.EFI]
    if who.xen_boot is None and who.xen is not None and who.xen[:3] == (4, 17, 0):
        boots = [BootMode.EFI, BootMode.MULTIBOOT2]  # only 4.17.0's modes differ (facts 5.1)
    return [
        PathSpec(
            OBSERVED,
            linux=lx,
            xen=x,
            boot=b,
            size_fix=fix,
            description="the stack that printed the dom0's evidence",
        )
        for x in xens
        for fix in fixes
        for lx in linux
        for b in boots
    ]


def _dom0_linux(views: Sequence[View]) -> tuple[int, ...] | None:
    """A dom0 kernel that printed allowlist marks or esrt: lines, or exposes an ESRT, is 6.3+:
    6.1/6.2 never parse the ESRT under Xen (facts 3.2 step 1)."""
    for v in views:
        if not v.dom0:
            continue
        if v.log is not None and (v.log.observed.unusable or v.log.observed.esrt_kinds):
            return (6, 3)
        if v.sysfs is not None and v.sysfs.esrt is not None:
            return (6, 3)
    return None


def _observed_label(who: Who, specs: Sequence[PathSpec]) -> str:
    if who.role is Role.BARE_METAL:
        return f"bare metal, Linux {who.linux_text or '?'}"
    xen = who.xen_text or "?"
    boot = str(who.xen_boot) if who.xen_boot else "boot mode ?"  # the dom0's log never says
    linux = who.linux_text or ("6.3+" if all(s.linux >= (6, 3) for s in specs) else "?")
    return f"Xen {xen} ({boot}), Linux {linux} dom0"


def _dom0_tree(views: Sequence[View]) -> View | None:
    return next((v for v in views if v.dom0 and v.sysfs is not None and v.sysfs.efi), None)


def _observed_from_tree(spec: PathSpec, view: View, found: ShortCopy | None) -> PathResult:
    """The dom0's own stack from its /sys/firmware copy alone (no map to simulate on): the tree
    is what the kernel exposed and what fwupd reads; a POOL_TAIL in it proves the short copy,
    and without one the tree cannot tell the firmware's bytes from a copy, or a refusal from
    an absent table."""
    from efihandoff import fwupd
    from efihandoff.paths.simulate import Cost

    assert view.sysfs is not None
    has = view.sysfs.esrt is not None
    tree = view.sysfs.esrt_tree() if has else {}
    candidates: tuple[tuple[str, Verdict], ...] = ()
    if found is not None:
        verdict, reason = Verdict.CORRUPT, (
            f"entry{found.entry} ends in edk2's POOL_TAIL: Xen copied the ESRT 16 bytes short; "
            "fwupd reads the tail's signature, Reserved word and pool size as the firmware's "
            "lowest_supported_fw_version, capsule_flags and last_attempt_version"
        )
    elif has:
        verdict, reason = Verdict.UNKNOWN, (
            "this dom0 exposes an ESRT (what fwupd reads), but not whether those are the "
            "firmware's bytes: add the dom0's dmesg and xl dmesg of the same boot"
        )
        candidates = (
            ("the firmware's own table, in a type a dom0 trusts", Verdict.INTACT),
            ("Xen's whole copy of a boot-services-data table", Verdict.RELOCATED),
        )
    else:
        verdict, reason = Verdict.UNKNOWN, (
            "this dom0 exposes no /sys/firmware/efi/esrt, so fwupd finds nothing; whether the "
            "kernel refused the ESRT or the firmware has none, the dom0's dmesg tells"
        )
        candidates = (
            ("an ESRT the dom0 kernel refused", Verdict.REFUSED),
            ("no ESRT from the firmware", Verdict.ABSENT),
        )
    return PathResult(
        spec=spec,
        tables={
            ESRT_GUID: TableVerdict(ESRT_GUID, "ESRT", verdict, reason, candidates=candidates)
        },
        log=[],
        esrt_sysfs=has,
        sysfs=tree if has else None,
        fwupd_devices=fwupd.devices(tree) if has else [],
        cost=Cost(0, 0),
    )


def _cross_check(views: Sequence[View], predicted: PathResult, label: str) -> list[Finding]:
    out: list[Finding] = []
    for v in views:
        if v.dom0 and v.log is not None and v.log.observed.lists_tables:
            out += compare_dom0(v, predicted, label)
        if v.dom0 and v.sysfs is not None:
            out += compare_dom0_sysfs(v, predicted, label)
    return out


def compare_dom0(view: View, predicted: PathResult, label: str | None = None) -> list[Finding]:
    """What a real dom0 printed against the model for its stack: which tables the allowlist
    marked unusable, and whether efi_esrt_init reserved the ESRT (structured, not log text)."""
    assert view.log is not None
    o = view.log.observed
    label = label or predicted.spec.label()
    out: list[Finding] = []
    pred_unusable = sorted(
        (kt.linux_label or kt.name)
        for g in predicted.unusable
        if (kt := known_tables.known(g)) is not None
    )
    real_unusable = sorted(o.unusable)
    if pred_unusable != real_unusable:
        out.append(
            warning(
                "model.disagrees",
                f"{view.source.path}: the dom0 printed unusable {real_unusable or 'none'}, "
                f"the model predicts {pred_unusable or 'none'} for {label} "
                "(a model gap or a firmware surprise)",
            )
        )
    esrt = predicted.tables.get(ESRT_GUID)
    real_reserving = "reserving" in o.esrt_kinds
    if esrt is not None and esrt.verdict is not Verdict.UNKNOWN:
        if predicted.esrt_reserving != real_reserving:
            out.append(
                warning(
                    "model.disagrees",
                    f"{view.source.path}: the dom0 {'did' if real_reserving else 'did not'} "
                    "reserve the ESRT (efi_esrt_init), the model predicts it "
                    f"{'would' if predicted.esrt_reserving else 'would not'}",
                )
            )
        # The check that stopped it, where the kernel prints one (the reader's message kinds).
        real_checks = [k for k in o.esrt_kinds if k in _PRINTED_CHECKS]
        pred = predicted.esrt_check
        if real_checks and pred in _PRINTED_CHECKS and pred != real_checks[0]:
            out.append(
                warning(
                    "model.disagrees",
                    f"{view.source.path}: the dom0's efi_esrt_init stopped at {real_checks[0]}, "
                    f"the model predicts {pred} for {label}",
                )
            )
    if not out:
        out.append(
            info(
                "model.agrees",
                f"{view.source.path}: the model predicts what this dom0 printed ({label})",
            )
        )
    return out


def compare_dom0_sysfs(
    view: View, predicted: PathResult, label: str | None = None
) -> list[Finding]:
    """A dom0's /sys/firmware copy against the model: is there an ESRT tree, and (when the
    model knows the bytes) does every file hold what the model predicts?"""
    assert view.sysfs is not None
    label = label or predicted.spec.label()
    real = view.sysfs.esrt_tree()
    has = "efi/esrt" in real or any(k.startswith("efi/esrt/") for k in real)
    if predicted.esrt_sysfs is None:
        return []
    if has != predicted.esrt_sysfs:
        return [
            warning(
                "model.disagrees",
                f"{view.source.path}: the dom0 {'has' if has else 'has no'} "
                "/sys/firmware/efi/esrt, the model predicts "
                f"{'one' if predicted.esrt_sysfs else 'none'} for {label}",
            )
        ]
    if not has or predicted.sysfs is None:
        return []
    differ = sorted(
        k
        for k, val in predicted.sysfs.items()
        if val is not None and real.get(k) not in (None, val)
    )
    if differ:
        return [
            warning(
                "model.disagrees",
                f"{view.source.path}: {len(differ)} ESRT files differ from the model's prediction "
                f"for {label}: {', '.join(differ[:4])}",
            )
        ]
    return [
        info("model.agrees", f"{view.source.path}: the dom0's ESRT tree is what the model predicts")
    ]


# -- advice ------------------------------------------------------------------------------------


def _not_efi(views: Sequence[View]) -> list[str]:
    if any(v.sysfs is not None and not v.sysfs.efi for v in views):
        return ["this kernel did not boot through EFI (no /sys/firmware/efi): it has no EFI tables"]
    return []


def advise(
    machine: Machine,
    results: dict[str, PathResult],
    who: Who,
    cands: dict[Guid, list[Candidate]] | None = None,
    observed_specs: Sequence[PathSpec] = (),
    label: str | None = None,
) -> list[str]:
    """A short "what to do", from the verdicts in the table and nothing else: an upgrade is
    recommended only where the table shows it changes this machine's outcome."""
    v = {pid: r.tables[ESRT_GUID] for pid, r in results.items() if ESRT_GUID in r.tables}
    if not v or set(v) == {OBSERVED}:
        if machine.memory_map is None:
            return [
                "no memory map in the evidence, so no path can be simulated: add the kernel log "
                "of the same boot (dmesg; under Xen also xl dmesg), ideally booted with efi=debug"
            ]
        return []
    words = {tv.verdict for tv in v.values()}
    if words == {Verdict.ABSENT}:
        return ["the firmware installs no ESRT: fwupd cannot find UEFI capsule updates on any path"]
    out: list[str] = []
    obs = results.get(OBSERVED)
    if obs is not None and who.role is Role.XEN_DOM0:
        out += _advise_dom0(machine, list(observed_specs), v[OBSERVED], cands or {}, label)
    presets = {pid: tv for pid, tv in v.items() if pid != OBSERVED}
    good = [pid for pid, tv in presets.items() if tv.verdict in _GOOD]
    if good:
        out.append("fwupd sees the firmware's ESRT on: " + ", ".join(good))
    native = presets.get("native")
    if native is not None and native.verdict is Verdict.REFUSED:
        out.append(
            "even bare metal refuses this ESRT — a firmware bug to report to the vendor "
            f"(no Xen or Linux upgrade helps): {native.reason}"
        )
    old, fixed = presets.get("xen-4.17"), presets.get("xen-fixed")
    if (
        old is not None
        and fixed is not None
        and old.verdict is Verdict.CORRUPT
        and fixed.verdict in _GOOD
        and not any(_FIXED_XEN in line for line in out)  # the dom0's own advice said it
    ):
        out.append(
            f"on Xen 4.17.1 … 4.21.0 the last entry arrives corrupt; {_FIXED_XEN} with "
            "Linux 6.3+ give fwupd the whole ESRT"
        )
    xen_paths = [presets[p] for p in ("xen-4.16", "xen-4.17", "xen-fixed") if p in presets]
    if (
        xen_paths
        and (native is None or native.verdict is not Verdict.REFUSED)
        and all(tv.verdict in (Verdict.REFUSED, Verdict.CLOBBERED) for tv in xen_paths)
    ):
        out.append(
            "no released Xen gives a dom0 this ESRT (xen-fixed: "
            f"{xen_paths[-1].verdict}: {xen_paths[-1].reason}); upgrading Xen or Linux does "
            "not help: the firmware would have to keep it in a type Xen copies or a dom0 trusts"
        )
    ct = machine.table(ESRT_GUID)
    md = machine.lookup(ct.table) if ct is not None else None
    if (
        md is not None
        and md.type == MemoryType.EfiRuntimeServicesData
        and ct is not None
        and ct.table not in machine.memory_type_candidates
    ):
        out.append("the firmware keeps the ESRT in runtime memory: no hypervisor can lose it")
    return out


def _advise_dom0(
    machine: Machine,
    specs: list[PathSpec],
    tv: TableVerdict,
    cands: dict[Guid, list[Candidate]],
    label: str | None,
) -> list[str]:
    """For the dom0's own stack: what it shows, and the smallest upgrade that changes it."""
    if not specs:
        return []
    spec = specs[0]
    label = label or spec.label()
    if tv.verdict in _GOOD:
        return [f"this dom0 ({label}) gives fwupd the firmware's ESRT ({tv.verdict})"]
    if tv.verdict is Verdict.ABSENT:
        return []
    if tv.verdict is Verdict.UNKNOWN and len({(s.xen, s.linux, s.boot) for s in specs}) == 1:
        return [
            f"this dom0 ({label}): ESRT {tv.verdict}: it turns on whether this Xen build "
            "carries the size fix 3ea44aa78c (distributions backport it; the version does not "
            "show it): the dom0's /sys/firmware copy decides (efihandoff collect): a last entry "
            "ending in edk2's POOL_TAIL means it does not, and then upgrading to "
            f"{_FIXED_XEN} gives fwupd the whole ESRT"
        ]
    if tv.verdict is Verdict.UNKNOWN and len(specs) > 1:
        return [
            f"this dom0 ({label}): ESRT {tv.verdict}; which upgrade helps depends on the "
            "versions the evidence does not name: add xl dmesg (Xen's version and boot mode) "
            "and the dom0's full dmesg ('Linux version')"
        ]
    if machine.memory_map is None:
        if tv.verdict is Verdict.CORRUPT and spec.xen is not None:
            return [
                f"upgrade Xen to {_FIXED_XEN}: they copy the ESRT whole (3ea44aa78c); "
                "this dom0's copy lost its last 16 bytes"
            ]
        return []
    upgrades = []
    if spec.xen is not None and not spec.xen_esrt_size_fixed:
        upgrades.append((f"to {_FIXED_XEN}", replace(spec, xen=(4, 22, 0))))
    if spec.linux < (6, 3):
        upgrades.append(("the dom0 kernel to Linux 6.3+", replace(spec, linux=(6, 3))))
    if len(upgrades) == 2:
        both = replace(spec, xen=(4, 22, 0), linux=(6, 3))
        upgrades.append((f"to {_FIXED_XEN} and the dom0 kernel to Linux 6.3+", both))
    now = f"this dom0 ({label}): ESRT {tv.verdict}"
    helps, open_ = [], []
    for what, s in upgrades:
        after = _judged(machine, [s], cands).tables[ESRT_GUID]
        if after.verdict in _GOOD:
            helps.append(what)
            break
        if after.verdict is Verdict.UNKNOWN:
            open_.append(what)
    if helps:
        return [f"{now}; upgrading {helps[0]} gives fwupd the firmware's ESRT on this machine"]
    if open_ or tv.verdict is Verdict.UNKNOWN:
        return [
            f"{now}; whether an upgrade helps depends on what the evidence leaves open: add a "
            "/sys/firmware copy of this dom0 (efihandoff collect) or a bare-metal boot log"
        ]
    return [f"{now}; no Xen or Linux upgrade changes that on this machine: {tv.reason}"]
