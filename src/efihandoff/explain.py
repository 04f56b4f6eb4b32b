"""From sources to an answer: who printed each view, merge the views of one boot, run the
paths on every placement the evidence leaves open, compare with what a real dom0 printed, and
say what to do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from efihandoff.advice import advise, not_efi
from efihandoff.audit import machine_findings
from efihandoff.candidates import (
    OBSERVED,
    Candidate,
    Who,
    judged,
    placement_candidates,
    short_copies,
)
from efihandoff.crosscheck import (
    compare_dom0,
    compare_dom0_sysfs,
    cross_check,
    dom0_tree,
    observed_from_tree,
)
from efihandoff.dom0 import ShortCopy, short_copy_finding, xen_copy_is_whole, xen_may_have_copied
from efihandoff.findings import Finding, info, warning
from efihandoff.machine import Machine, PhysicalMemory
from efihandoff.paths.presets import PRESETS, BootMode, PathSpec
from efihandoff.paths.simulate import PathResult
from efihandoff.paths.verdict import TableVerdict, Verdict
from efihandoff.rules import tables as known_tables
from efihandoff.rules.version import parse_version, version_text
from efihandoff.sources import Role, Source, View
from efihandoff.sources.logmachine import from_boot
from efihandoff.uefi.esrt import ESRT_GUID

# Linux drivers/firmware/efi/efi.c common_tables names the ESRT since 4.2 (0bb549052d33).
_ESRT_LABEL_SINCE = (4, 2)
_XEN_VERSIONS = ((4, 16, 5), (4, 17, 1), (4, 22, 0))  # one of each ESRT behaviour (facts 5.1)


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


def explain(
    views: Sequence[View], specs: Sequence[PathSpec] | None = None, *, advice: bool = True
) -> Explanation:
    """Judge every path for the machine the views describe (``advice=False``: without the
    advice, for callers that count verdicts)."""
    merged = _merge_xen_console(views)
    who = _who(merged)
    primary = _primary(merged)
    machine = _firmware_machine(primary, merged)
    shorts = short_copies(merged)
    cands = placement_candidates(primary, machine, who, shorts)
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
            results[spec.id] = judged(machine, [spec], cands)
    observed_specs = _observed_specs(who, merged, shorts)
    label = _observed_label(who, observed_specs) if observed_specs else None
    from_tree = False
    if observed_specs and machine.memory_map is not None:
        printed = [v.log.observed for v in merged if v.dom0 and v.log is not None]
        trees = [v.sysfs.esrt_tree() for v in merged if v.dom0 and v.sysfs is not None]
        results[OBSERVED] = judged(machine, observed_specs, cands, printed, trees)
    elif observed_specs and (tree := dom0_tree(merged)) is not None:
        short = next((s for v, s in shorts if v is tree), None)
        results[OBSERVED] = observed_from_tree(observed_specs[0], tree, short)
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
        findings += cross_check(merged, results[OBSERVED], label or "")
    evidence = primary.log.memory_map_evidence if primary.log else primary.source.kind.value
    advised = (
        not_efi(merged) + advise(machine, results, who, cands, observed_specs, label)
        if advice
        else []
    )
    return Explanation(
        views=list(views),
        machine=machine,
        results=results,
        findings=findings,
        advice=list(dict.fromkeys(advised)),
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


__all__ = [  # the candidates, the dom0 cross-check and the advice stay importable from here
    "OBSERVED",
    "Candidate",
    "Explanation",
    "Who",
    "advise",
    "compare_dom0",
    "compare_dom0_sysfs",
    "explain",
]
