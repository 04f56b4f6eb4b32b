"""What a real dom0 printed or exposed against the model for its stack (structured values,
never log text), and the dom0's own stack judged from its /sys/firmware copy alone."""

from __future__ import annotations

from collections.abc import Sequence

from efihandoff import fwupd
from efihandoff.dom0 import ShortCopy
from efihandoff.findings import Finding, info, warning
from efihandoff.paths.linux import EsrtCheck
from efihandoff.paths.presets import PathSpec
from efihandoff.paths.simulate import Cost, PathResult
from efihandoff.paths.verdict import TableVerdict, Verdict
from efihandoff.rules import tables as known_tables
from efihandoff.sources import View
from efihandoff.uefi.esrt import ESRT_GUID

# efi_esrt_init checks that print a message (kernel-log reader kinds of the same names).
PRINTED_CHECKS = frozenset(
    c for c in EsrtCheck if c not in (EsrtCheck.NO_EFI_MEMMAP, EsrtCheck.BYTES_UNKNOWN)
)


def dom0_tree(views: Sequence[View]) -> View | None:
    """The first dom0 view with a /sys/firmware copy of a kernel booted through EFI."""
    return next((v for v in views if v.dom0 and v.sysfs is not None and v.sysfs.efi), None)


def observed_from_tree(spec: PathSpec, view: View, found: ShortCopy | None) -> PathResult:
    """The dom0's own stack from its /sys/firmware copy alone (no map to simulate on): the tree
    is what the kernel exposed and what fwupd reads; a POOL_TAIL in it proves the short copy,
    and without one the tree cannot tell the firmware's bytes from a copy, or a refusal from
    an absent table."""
    assert view.sysfs is not None
    has = view.sysfs.esrt is not None
    tree = view.sysfs.esrt_tree() if has else {}
    candidates: tuple[tuple[str, Verdict], ...] = ()
    if found is not None:
        verdict, reason = (
            Verdict.CORRUPT,
            (
                f"entry{found.entry} ends in edk2's POOL_TAIL: Xen copied the ESRT 16 bytes short; "
                "fwupd reads the tail's signature, Reserved word and pool size as the firmware's "
                "lowest_supported_fw_version, capsule_flags and last_attempt_version"
            ),
        )
    elif has:
        verdict, reason = (
            Verdict.UNKNOWN,
            (
                "this dom0 exposes an ESRT (what fwupd reads), but not whether those are the "
                "firmware's bytes: add the dom0's dmesg and xl dmesg of the same boot"
            ),
        )
        candidates = (
            ("the firmware's own table, in a type a dom0 trusts", Verdict.INTACT),
            ("Xen's whole copy of a boot-services-data table", Verdict.RELOCATED),
        )
    else:
        verdict, reason = (
            Verdict.UNKNOWN,
            (
                "this dom0 exposes no /sys/firmware/efi/esrt, so fwupd finds nothing; whether the "
                "kernel refused the ESRT or the firmware has none, the dom0's dmesg tells"
            ),
        )
        candidates = (
            ("an ESRT the dom0 kernel refused", Verdict.REFUSED),
            ("no ESRT from the firmware", Verdict.ABSENT),
        )
    return PathResult(
        spec=spec,
        tables={ESRT_GUID: TableVerdict(ESRT_GUID, "ESRT", verdict, reason, candidates=candidates)},
        log=[],
        esrt_sysfs=has,
        sysfs=tree if has else None,
        fwupd_devices=fwupd.devices(tree) if has else [],
        cost=Cost(0, 0),
    )


def cross_check(views: Sequence[View], predicted: PathResult, label: str) -> list[Finding]:
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
        real_checks = [k for k in o.esrt_kinds if k in PRINTED_CHECKS]
        pred = predicted.esrt_check
        if real_checks and pred in PRINTED_CHECKS and pred != real_checks[0]:
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
    unknown = fwupd.unknown_files(predicted.sysfs)  # values the model cannot know are not compared
    differ = sorted(
        k
        for k, val in predicted.sysfs.items()
        if val is not None and k not in unknown and real.get(k) not in (None, val)
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
