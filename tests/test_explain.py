"""explain on kernel logs: memory types and verdicts as a reader of the facts file gives them.

Each expectation below was worked out by hand from the log lines and the facts file (section
numbers in the comments), not from the program's output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from efihandoff.explain import explain
from efihandoff.sources import read_source

LOGS = Path(__file__).parent / "fixtures" / "logs"
PAIR = Path(__file__).parent / "fixtures" / "pair"
ESRT = "b122a263-3661-4f68-9929-78f8b0d62180"


def _explain(*paths: Path):
    return explain([v for p in paths for v in read_source(p)])


def _esrt(ex, path_id: str) -> str:
    tables = ex.results[path_id].tables
    return tables[next(g for g in tables if str(g) == ESRT)].verdict.value


def _type(ex) -> tuple[str, str]:
    t = next(t for t in ex.machine.config_tables if str(t.guid) == ESRT)
    md = ex.machine.lookup(t.table)
    return md.type_name, ex.machine.memory_type_evidence[t.table]


# A boot-services-data ESRT that Linux reserved natively (facts 1.8, 3.2 step 12):
# bare metal keeps it (efi_mem_reserve); Xen 4.16 + 6.3 refuses it (allowlist, 5.7);
# Xen 4.17 copies it 16 bytes short (5.3, 5.4); the fixed Xen copies it whole; a 6.1 dom0 never
# parses it (3.2 step 1); -mapbs keeps the bytes but the type is still BS data (5.6, 5.7);
# the reserve-hypercall proposal lets dom0 keep it in place.
BS_DATA_EXPECTED = {
    "native": "intact",
    "xen-4.16": "refused",
    "xen-4.17": "corrupt",
    "xen-4.17-linux-6.1": "refused",
    "xen-fixed": "relocated",
    "keep-boot-services": "refused",
    "relocate-known": "relocated",
    "reserve-hypercall": "intact",
}


@pytest.mark.parametrize(
    ("log", "evidence_word"),
    [
        # efi=debug map line mem05 "Boot Data" covers 0x4105a018.
        ("x86-laptop-efi-debug.log", "efi=debug"),
        # E820 "usable" + "esrt: Reserving" + "e820: update ... usable ==> reserved": only
        # efi_arch_mem_reserve of a BS-data ESRT turns that page reserved (facts 4.3 step 7).
        ("x86-e820-only-linux7.log", "inferred"),
    ],
)
def test_boot_services_data_esrt_from_a_bare_metal_log(log: str, evidence_word: str) -> None:
    ex = _explain(LOGS / log)
    mtype, evidence = _type(ex)
    assert mtype == "EfiBootServicesData"
    assert evidence_word in evidence
    assert {pid: _esrt(ex, pid) for pid in BS_DATA_EXPECTED} == BS_DATA_EXPECTED
    assert ex.results["native"].esrt_sysfs is True
    assert ex.results["xen-4.16"].esrt_sysfs is False
    assert ex.results["xen-4.17-linux-6.1"].esrt_sysfs is False


def test_xen_416_prints_the_esrt_unusable() -> None:
    ex = _explain(LOGS / "x86-laptop-efi-debug.log")
    efi_line = next(line for line in ex.results["xen-4.16"].log if line.startswith("efi: ACPI"))
    assert "(ESRT=0x4105a018 unusable)" in efi_line  # facts 2: "(%s=0x%lx unusable) "
    assert not any(line.startswith("esrt: Reserving") for line in ex.results["xen-4.16"].log)


def test_esrt_linux_refuses_in_usable_ram_is_refused_everywhere() -> None:
    # "esrt: ESRT header is not in the memory map." with the ESRT in E820 usable RAM: a RAM type
    # other than BS data (facts 3.2 step 3); no Xen path makes a RAM type usable (5.7).
    ex = _explain(LOGS / "journal-iso.log")
    mtype, evidence = _type(ex)
    assert mtype != "EfiBootServicesData"
    assert "not in the memory map" in evidence
    assert {_esrt(ex, pid) for pid in BS_DATA_EXPECTED} == {"refused"}
    assert any("firmware bug" in a for a in ex.advice)


def test_only_header_fits_is_refused_on_every_path() -> None:
    # "ESRT memory map entry can only hold the header. (max: 24 size: 40)": the type check passed
    # (E820 reserved -> runtime data or code), 40 bytes to the descriptor end (facts 3.2 step 7).
    ex = _explain(LOGS / "syslog-kern.log")
    mtype, _ = _type(ex)
    assert mtype in ("EfiRuntimeServicesData", "EfiRuntimeServicesCode")
    t = next(t for t in ex.machine.config_tables if str(t.guid) == ESRT)
    assert ex.machine.lookup(t.table).end - t.table == 40
    assert {_esrt(ex, pid) for pid in BS_DATA_EXPECTED} == {"refused"}
    assert "only the header" in ex.results["native"].tables[t.guid].reason


def test_a_pre_42_table_line_without_esrt_proves_nothing() -> None:
    # Linux 3.13 prints no ESRT label (common_tables names it since 4.2): silence is unknown.
    ex = _explain(LOGS / "old-memmap-linux313.log")
    assert {_esrt(ex, pid) for pid in BS_DATA_EXPECTED} == {"unknown"}
    assert "4.2" in ex.results["native"].tables[ex.results["native"].esrt.guid].reason
    assert not any("no ESRT" in a for a in ex.advice)


def test_dom0_61_log_advice_follows_the_table() -> None:
    # Xen 4.19.5 + Linux 6.1: the ESRT sits where E820 says usable RAM (a type the 6.3
    # allowlist refuses, facts 5.7), so upgrading the dom0 kernel would not help: the advice
    # must not recommend it.
    ex = _explain(LOGS / "serial-xen-dom0.log")
    assert _esrt(ex, "observed") == "refused"
    assert _esrt(ex, "xen-fixed") == "refused"
    assert not any("6.3+ does" in a or "on this machine;" in a for a in ex.advice)
    assert not any("gives fwupd the firmware" in a for a in ex.advice)
    assert any("no Xen or Linux upgrade changes that" in a for a in ex.advice)
    assert len(ex.advice) == len(set(ex.advice))


def test_dom0_log_with_unusable_esrt_agrees_with_the_model() -> None:
    # Xen 4.17.4 + Linux 6.6 dom0 printing (ESRT=... unusable) (MEMATTR=... unusable): the ESRT
    # sits in what Xen's E820 calls usable RAM, a type the 6.3+ allowlist refuses (facts 5.7).
    ex = _explain(LOGS / "xen-dom0-linux66.log")
    codes = [f.code for f in ex.findings]
    assert "model.agrees" in codes and "model.disagrees" not in codes
    # The allowlist refused it: no Xen (fixed or not) would hand this type to a dom0.
    assert not any("16 bytes short" in a or "gives fwupd the firmware" in a for a in ex.advice)


def test_bare_metal_and_dom0_logs_of_one_machine() -> None:
    # The dom0 sees the ESRT at a new address in ACPI data (Xen 4.17.3 relocated it, facts 5.4)
    # and printed "esrt: Reserving" for 0xb0 = 16 + 40 * 4 bytes.
    ex = _explain(PAIR / "baremetal.log", PAIR / "dom0.log")
    codes = [f.code for f in ex.findings]
    assert "sources.esrt-relocated" in codes
    assert "sources.disagree" not in codes
    assert "model.disagrees" not in codes
    mtype, evidence = _type(ex)  # from the bare-metal view, the primary one
    assert (mtype, "efi=debug" in evidence) == ("EfiBootServicesData", True)
    # 4.17.3 copies 160 of 176 bytes, unless the build carries 3ea44aa78c as a backport (its
    # version would not show it): the dom0's log cannot tell, so both remain.
    obs = ex.results["observed"].tables[next(g for g in ex.results["observed"].tables
                                             if str(g) == ESRT)]
    assert obs.verdict.value == "unknown"
    assert {v.value for _, v in obs.candidates} == {"corrupt", "relocated"}
    assert _esrt(ex, "xen-4.17") == "corrupt" and _esrt(ex, "xen-fixed") == "relocated"
    assert any("carries the size fix" in a for a in ex.advice)


def test_two_boots_are_two_views() -> None:
    views = read_source(LOGS / "two-boots.log")
    assert [v.source.path.rsplit("#", 1)[1] for v in views] == ["boot1", "boot2"]


def test_other_tables_of_a_bare_metal_log() -> None:
    # x86-laptop-efi-debug.log: MEMATTR and TPMEventLog in Boot Data, RNG in Loader Data.
    # Bare metal: efi_memattr_init and efi_tpm_eventlog_init memblock_reserve their table, so
    # efi_reserve_boot_services keeps the region (facts 4.3 step 8) even though the log has no
    # bytes; the RNG seed is used while parsing, before loader memory is reused. Under Xen 4.16
    # + 6.3 all three sit in types the allowlist refuses (facts 5.7).
    ex = _explain(LOGS / "x86-laptop-efi-debug.log")
    native = {tv.name: tv.verdict.value for tv in ex.results["native"].tables.values()}
    xen = {tv.name: tv.verdict.value for tv in ex.results["xen-4.16"].tables.values()}
    assert native["MEMATTR"] == native["TPMEventLog"] == native["RNG"] == "intact"
    assert xen["MEMATTR"] == xen["TPMEventLog"] == xen["RNG"] == "refused"
    assert "assuming a valid table" in ex.results["native"].tables[
        next(g for g, tv in ex.results["native"].tables.items() if tv.name == "MEMATTR")
    ].reason


SYSFS = Path(__file__).parent / "fixtures" / "sysfs"


def test_dom0_collect_archive_uses_the_allowlist_marks_and_the_hypervisor_version() -> None:
    # The collect-style copy of a Qubes dom0: its dmesg.txt prints (ESRT=... unusable)
    # (MEMATTR=... unusable) and no map reaching the tables; /sys/hypervisor/version says 4.17.3.
    # An "unusable" mark means a type outside the 6.3 allowlist (facts 5.7), plain ones inside
    # it, so the model must reproduce exactly the dom0's marks on the dom0's own stack.
    ex = _explain(SYSFS / "xen-dom0")
    assert "observed" in ex.results
    assert ex.observed_label == "Xen 4.17.3 (boot mode ?), Linux 6.6.30 dom0"
    codes = [f.code for f in ex.findings]
    assert "model.agrees" in codes and "model.disagrees" not in codes
    t = next(t for t in ex.machine.config_tables if str(t.guid) == ESRT)
    assert "allowlist" in ex.machine.memory_type_evidence[t.table]


def test_dom0_sysfs_presence_is_compared_with_the_model() -> None:
    # The same dom0 copy has no efi/esrt; a model that predicted one would be reported.
    from dataclasses import replace

    from efihandoff.explain import compare_dom0_sysfs

    ex = _explain(SYSFS / "xen-dom0")
    view = next(v for v in ex.views if v.sysfs is not None)
    result = ex.results["observed"]
    assert compare_dom0_sysfs(view, result) == []  # no tree, none predicted
    wrong = replace(result, esrt_sysfs=True)
    (finding,) = compare_dom0_sysfs(view, wrong)
    assert finding.code == "model.disagrees" and "has no /sys/firmware/efi/esrt" in finding.message


def test_unparsed_lines_are_findings_and_leave_the_esrt_unknown(tmp_path: Path) -> None:
    # A config-table line whose ESRT address is not hex: what it named is unknown, so the ESRT
    # is neither found nor absent; the line is reported with its number.
    log = tmp_path / "broken.txt"
    log.write_text(
        "[    0.000000] Linux version 6.12.1 (x@example.org) #1\n"
        "[    0.000000] efi: ACPI=0x3f77d000 ESRT=0x3f7g73018 SMBIOS=0x3f52\n"
    )
    ex = _explain(log)
    unparsed = [f for f in ex.findings if f.code == "log.unparsed-line"]
    assert unparsed and "broken.txt:2:" in unparsed[0].message
    assert {_esrt(ex, pid) for pid in ex.results} == {"unknown"}


def test_an_archive_log_map_beats_the_copy_runtime_map(tmp_path: Path) -> None:
    # A collect archive: /sys/firmware with a runtime-map (RUNTIME regions only) and the boot's
    # dmesg.txt with its efi=debug map. The ESRT sits in Boot Data, which the runtime map lacks;
    # the log's map must decide (Linux reserved it natively, facts 3.2 step 12), not "no
    # descriptor covers it".
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(SYSFS / "native-laptop", root / "sys" / "firmware")
    shutil.copy(LOGS / "x86-laptop-efi-debug.log", root / "dmesg.txt")
    ex = _explain(root)
    assert "efi=debug" in ex.memory_map_evidence
    assert _esrt(ex, "native") == "intact"


def test_tables_of_older_kernels_are_judged_and_unknown_labels_reported(tmp_path: Path) -> None:
    # Linux 3.13 names MPS (common_tables before 4.x); an ia64-only label like HCDP has no GUID in
    # the registry: reported, never silently dropped.
    ex = _explain(LOGS / "old-memmap-linux313.log")
    assert "MPS" in [tv.name for tv in ex.results["native"].tables.values()]
    log = tmp_path / "hcdp.txt"
    log.write_text(
        "[    0.000000] Linux version 6.12.1 (x@example.org) #1\n"
        "[    0.000000] efi: ACPI=0x3f77d000 HCDP=0x3f000000 ESRT=0x3f773018 \n"
    )
    (finding,) = [f for f in _explain(log).findings if f.code == "log.unknown-table"]
    assert "HCDP=0x3f000000" in finding.message


def test_a_table_claiming_past_its_descriptor_still_straddles() -> None:
    # examples/esrt-straddle.toml: the ESRT's header claims more entries than its descriptor
    # holds. table_size caps its answer at the descriptor (what may be read), but the finding
    # is about the claim (regression: capped sizes hid table.straddles).
    ex = explain(read_source(Path(__file__).parent.parent / "examples" / "esrt-straddle.toml"))
    assert "table.straddles" in {f.code for f in ex.findings}


def test_dom0_sysfs_values_the_model_cannot_know_are_not_compared() -> None:
    # Regression (realfw live stack): a dom0 copy beside its dmesg gave model.disagrees on
    # capsule_flags, a word the model lists in the tree's .unknown file (POOL_TAIL's unwritten
    # reserved word after Xen 4.17's short copy). A known file that differs is still reported.
    from dataclasses import replace

    from efihandoff.explain import compare_dom0_sysfs

    ex = _explain(SYSFS / "native-laptop")
    view = next(v for v in ex.views if v.sysfs is not None)
    assert view.sysfs is not None
    real = view.sysfs.esrt_tree()
    result = replace(ex.results["native"], sysfs=real, esrt_sysfs=True)  # the copy, predicted
    assert [f.code for f in compare_dom0_sysfs(view, result)] == ["model.agrees"]
    flags = "efi/esrt/entries/entry0/capsule_flags"
    assert real[flags] not in (None, "0xafafafaf\n")
    other = {**real, flags: "0xafafafaf\n"}
    (finding,) = compare_dom0_sysfs(view, replace(result, sysfs=other))
    assert finding.code == "model.disagrees" and "1 ESRT files differ" in finding.message
    marked = {**other, ".unknown": f"{flags}\n"}
    assert [f.code for f in compare_dom0_sysfs(view, replace(result, sysfs=marked))] == [
        "model.agrees"
    ]


@pytest.mark.parametrize("log", sorted(p.name for p in LOGS.iterdir() if p.is_file()))
def test_without_advice_everything_else_is_the_same(log: str) -> None:
    """survey asks for no advice: the verdicts, findings and costs stay those of explain."""
    from efihandoff.outputs.json import explain_document

    views = read_source(str(LOGS / log))
    full = explain_document(explain(views))
    bare = explain_document(explain(read_source(str(LOGS / log)), advice=False))
    assert bare["advice"] == []
    assert {k: v for k, v in bare.items() if k != "advice"} == {
        k: v for k, v in full.items() if k != "advice"
    }
