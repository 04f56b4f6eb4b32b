"""From sources to an answer: merge the views of one machine, run the paths, judge what the
evidence cannot decide, compare with what a real dom0 printed, and say what to do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from efihandoff.audit import machine_findings
from efihandoff.findings import Finding, info, warning
from efihandoff.machine import Machine, PhysicalMemory
from efihandoff.paths.presets import PRESETS, BootMode, PathSpec
from efihandoff.paths.simulate import PathResult, simulate
from efihandoff.paths.verdict import TableVerdict, Verdict
from efihandoff.sources import Source, View
from efihandoff.sources.logmachine import Observed
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.memmap import type_name


@dataclass
class Explanation:
    """Everything ``explain`` prints."""

    views: list[View]
    machine: Machine
    results: dict[str, PathResult]
    findings: list[Finding]
    advice: list[str]
    memory_map_evidence: str
    observed: list[tuple[Source, Observed]] = field(default_factory=list)

    @property
    def sources(self) -> list[Source]:
        return [v.source for v in self.views]


def explain(views: Sequence[View], specs: Sequence[PathSpec] | None = None) -> Explanation:
    """Judge every path for the machine the views describe."""
    primary = _primary(views)
    machine = primary.machine
    _fill_esrt_from_sysfs(primary, views)
    findings = machine_findings(machine) + _agreement(primary, views)
    specs = list(specs) if specs else list(PRESETS.values())
    observed = [(v.source, v.log.observed) for v in views if v.log is not None]
    # The stacks dom0 logs were printed on, judged too, then compared with what they printed.
    dom0 = [
        (v, spec)
        for v in views
        if v.dom0 and v.log is not None and (spec := observed_spec(v.log.observed)) is not None
    ]
    specs += [spec for _, spec in dom0 if all(s.id != spec.id for s in specs)]
    results: dict[str, PathResult] = {}
    if machine.memory_map is not None:
        for spec in specs:
            results[spec.id] = _judged(primary, spec)
    if machine.table(ESRT_GUID) is None and any(v.sysfs and v.sysfs.esrt for v in views):
        results = {pid: _esrt_without_address(r) for pid, r in results.items()}
    for v, spec in dom0:
        if spec.id in results:
            findings += compare_dom0(v, results[spec.id])
            findings += [
                f
                for s in views
                if s.sysfs is not None and s.dom0
                for f in compare_dom0_sysfs(s, results[spec.id])
            ]
    evidence = primary.log.memory_map_evidence if primary.log else primary.source.kind.value
    return Explanation(
        views=list(views),
        machine=machine,
        results=results,
        findings=findings,
        advice=_not_efi(views) + advise(machine, results, observed),
        memory_map_evidence=evidence,
        observed=observed,
    )


def _primary(views: Sequence[View]) -> View:
    """The view closest to the firmware: bytes first, then a bare-metal log with a map, then
    anything with a map, then the rest."""

    def rank(v: View) -> tuple[int, int]:
        m = v.machine
        has_bytes = v.log is None and m.memory is not None
        return (
            0 if has_bytes and m.memory_map is not None else 1,
            (0 if not v.dom0 else 1) + (0 if m.memory_map is not None else 2),
        )

    return min(views, key=rank)


def _fill_esrt_from_sysfs(primary: View, views: Sequence[View]) -> None:
    """A bare-metal /sys/firmware copy shows the ESRT bytes Linux mapped, which on bare metal
    are the firmware's (esrt_sysfs_init maps the table in place): give them to a primary view
    that knows where the ESRT is but not what it holds."""
    ct = primary.machine.table(ESRT_GUID)
    memory = primary.machine.memory
    if ct is None or not isinstance(memory, PhysicalMemory):
        return
    for v in views:
        if v is primary or v.sysfs is None or v.sysfs.esrt is None or v.dom0:
            continue
        esrt = v.sysfs.esrt.to_esrt()
        if esrt is None or memory.read(ct.table, esrt.size) is not None:
            continue
        memory.write(ct.table, esrt.build())
        primary.machine.notes.append(
            f"ESRT bytes from {v.source.path} (as bare-metal Linux exposed them)"
        )
        return


def _esrt_without_address(result: PathResult) -> PathResult:
    """A sysfs copy shows an ESRT but nothing there says where it is."""
    tables = dict(result.tables)
    tables[ESRT_GUID] = TableVerdict(
        ESRT_GUID,
        "ESRT",
        Verdict.UNKNOWN,
        "the /sys/firmware copy shows the ESRT's contents but not its address or memory type; "
        "add the kernel log of the same boot",
    )
    return replace(result, tables=tables, esrt_sysfs=None, fwupd_devices=None, sysfs=None)


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


def _judged(view: View, spec: PathSpec) -> PathResult:
    """Simulate, then replace verdicts the evidence cannot decide by ``unknown``."""
    result = simulate(view.machine, spec)
    if view.log is None or not view.log.variants:
        return result
    tables = dict(result.tables)
    for guid, variants in view.log.variants.items():
        outcomes = []
        for types, m in variants:
            tv = simulate(m, spec).tables.get(guid)
            if tv is not None:
                outcomes.append(("/".join(type_name(t) for t in types), tv))
        words = {tv.verdict for _, tv in outcomes}
        current = tables.get(guid)
        if current is None:
            continue
        if len(words) <= 1:
            names = ", ".join(t for t, _ in outcomes)
            tables[guid] = replace(
                current,
                reason=f"{current.reason} (the log does not show its memory type; every "
                f"candidate, {names}, gives {current.verdict})",
            )
            continue
        detail = "; ".join(f"{t}: {tv.verdict}" for t, tv in outcomes)
        tables[guid] = replace(
            current,
            verdict=Verdict.UNKNOWN,
            reason=f"depends on its memory type, which the log does not show ({detail})",
        )
    result = replace(result, tables=tables)
    if tables.get(ESRT_GUID) and tables[ESRT_GUID].verdict is Verdict.UNKNOWN:
        result = replace(result, esrt_sysfs=None, fwupd_devices=None, sysfs=None)
    return result


def observed_spec(o: Observed) -> PathSpec | None:
    """The path a dom0 log was printed on."""
    if o.linux is None:
        return None
    xen = ".".join(map(str, o.xen)) if o.xen else "?"
    name = f"observed: Xen {xen} + Linux {'.'.join(map(str, o.linux))}"
    if not o.dom0:
        return PathSpec(id=name, linux=o.linux, description="the stack that printed the log")
    boot = BootMode.MULTIBOOT2 if o.multiboot2 else BootMode.EFI
    return PathSpec(
        id=name,
        linux=o.linux,
        xen=o.xen or (4, 17, 1),
        boot=boot,
        description="the stack that printed the dom0 log"
        + ("" if o.xen else " (Xen version not in the log: 4.17.1 assumed)"),
    )


def compare_dom0(view: View, predicted: PathResult) -> list[Finding]:
    """Real dom0 log against the model for the same Xen/Linux pair."""
    assert view.log is not None
    o = view.log.observed
    out: list[Finding] = []
    pred_unusable = sorted(_unusable_labels(predicted.log))
    real_unusable = sorted(o.unusable)
    if pred_unusable != real_unusable:
        out.append(
            warning(
                "model.disagrees",
                f"{view.source.path}: the dom0 printed unusable {real_unusable or 'none'}, "
                f"the model predicts {pred_unusable or 'none'} for {predicted.spec.label()} "
                "(a model gap or a firmware surprise)",
            )
        )
    esrt = predicted.tables.get(ESRT_GUID)
    real_reserving = "reserving" in o.esrt_kinds
    if esrt is not None and esrt.verdict is not Verdict.UNKNOWN:
        pred_reserving = any(line.startswith("esrt: Reserving") for line in predicted.log)
        if pred_reserving != real_reserving:
            out.append(
                warning(
                    "model.disagrees",
                    f"{view.source.path}: the dom0 {'did' if real_reserving else 'did not'} print "
                    "'esrt: Reserving ESRT space', the model predicts it "
                    f"{'would' if pred_reserving else 'would not'}",
                )
            )
    if not out:
        out.append(
            info(
                "model.agrees",
                f"{view.source.path}: the model predicts what this dom0 printed "
                f"({predicted.spec.label()})",
            )
        )
    return out


def compare_dom0_sysfs(view: View, predicted: PathResult) -> list[Finding]:
    """A dom0's /sys/firmware copy against the model: is there an ESRT tree, and (when the
    model knows the bytes) does every file hold what the model predicts?"""
    assert view.sysfs is not None
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
                f"{'one' if predicted.esrt_sysfs else 'none'} for {predicted.spec.label()}",
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
                f"for {predicted.spec.label()}: {', '.join(differ[:4])}",
            )
        ]
    return [
        info("model.agrees", f"{view.source.path}: the dom0's ESRT tree is what the model predicts")
    ]


def _unusable_labels(log: Sequence[str]) -> set[str]:
    out = set()
    for line in log:
        if not line.startswith("efi: "):
            continue
        for part in line.split("("):
            if "unusable)" in part and "=" in part:
                out.add(part.split("=", 1)[0].strip())
    return out


def _not_efi(views: Sequence[View]) -> list[str]:
    if any(v.sysfs is not None and not v.sysfs.efi for v in views):
        return ["this kernel did not boot through EFI (no /sys/firmware/efi): it has no EFI tables"]
    return []


def advise(
    machine: Machine, results: dict[str, PathResult], observed: list[tuple[Source, Observed]]
) -> list[str]:
    """A short "what to do" for a user, from the verdicts."""
    out: list[str] = []
    v = {pid: r.tables[ESRT_GUID] for pid, r in results.items() if ESRT_GUID in r.tables}
    if not v:
        return (
            [
                "no memory map in the evidence: add a log booted with efi=debug, "
                "or a /sys/firmware copy"
            ]
            if machine.memory_map is None
            else []
        )
    if all(tv.verdict is Verdict.ABSENT for tv in v.values()):
        return ["the firmware installs no ESRT: fwupd cannot find UEFI capsule updates on any path"]
    esrt = next(iter(v.values()))
    for src, o in observed:
        if o.dom0 and o.linux is not None and o.linux < (6, 3):
            out.append(
                f"your dom0 kernel {'.'.join(map(str, o.linux))} never parses the ESRT under "
                f"Xen ({src.path}); Linux 6.3+ does"
            )
        if o.dom0 and o.xen is not None and o.xen < (4, 17):
            out.append(
                f"Xen {'.'.join(map(str, o.xen))} does not preserve the ESRT ({src.path}); "
                "Xen 4.17.1+ relocates it"
            )
        if o.dom0 and o.xen is not None and o.xen >= (4, 17) and not _fixed(o.xen):
            out.append(
                f"Xen {'.'.join(map(str, o.xen))} copies the ESRT 16 bytes short: the last entry's "
                "lowest_supported_fw_version, capsule_flags, last_attempt_version and "
                "last_attempt_status are garbage; fixed in 4.19.5, 4.20.3, 4.21.1 and 4.22"
            )
    good = [pid for pid, tv in v.items() if tv.verdict in (Verdict.INTACT, Verdict.RELOCATED)]
    if good:
        out.append("fwupd sees the ESRT unchanged on: " + ", ".join(good))
    bad = {
        pid: tv for pid, tv in v.items() if tv.verdict not in (Verdict.INTACT, Verdict.RELOCATED)
    }
    if "native" in bad and bad["native"].verdict is Verdict.REFUSED:
        out.append(
            "even bare metal refuses this ESRT — a firmware bug to report to the vendor: "
            f"{bad['native'].reason}"
        )
    if "xen-4.17" in bad and bad["xen-4.17"].verdict is Verdict.CORRUPT and "xen-fixed" in good:
        out.append(
            "on Xen 4.17.1 … 4.21.0 the last entry arrives corrupt; Xen 4.19.5 / 4.20.3 / "
            "4.21.1 / 4.22+ with Linux 6.3+ show it intact"
        )
    if esrt.address is not None and machine.memory_map is not None:
        md = machine.memory_map.lookup(esrt.address)
        if md is not None and md.type_name == "EfiRuntimeServicesData":
            out.append("the firmware keeps the ESRT in runtime memory: no hypervisor can lose it")
    return out


def _fixed(v: tuple[int, ...]) -> bool:
    return PathSpec(id="x", xen=v).xen_esrt_size_fixed
