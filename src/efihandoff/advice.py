"""A short "what to do", from the verdicts in the table and nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from efihandoff.candidates import OBSERVED, Candidate, Who, judged
from efihandoff.machine import Machine
from efihandoff.paths.presets import PathSpec
from efihandoff.paths.simulate import PathResult
from efihandoff.paths.verdict import TableVerdict, Verdict
from efihandoff.sources import Role, View
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryType

_GOOD = (Verdict.INTACT, Verdict.RELOCATED)  # fwupd sees the firmware's bytes
_FIXED_XEN = "Xen 4.19.5 / 4.20.3 / 4.21.1 / 4.22+"


def not_efi(views: Sequence[View]) -> list[str]:
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
        after = judged(machine, [s], cands).tables[ESRT_GUID]
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
