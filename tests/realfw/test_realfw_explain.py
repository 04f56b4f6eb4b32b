"""Issue 9 point 10: ``efihandoff explain`` on what real boots left behind, without booting.

The captures under data/ are whole serial logs of the bench's own boots (OVMF 2022.11, Xen
4.17.7, Debian Linux 6.1 / 6.12; mail addresses in log lines point at example.org). From each
the harness rebuilds the evidence a user holds (dmesg, xl dmesg, an excerpt, a /sys/firmware
copy), runs explain on every combination, and judges the observed ESRT verdict against what
really happened, which is worked out here by hand from the injected bytes and the kernel's
sysfs values.
"""

from __future__ import annotations

import fnmatch
import functools
import struct
import tarfile
from pathlib import Path
from typing import Any

import harness
import pytest

from efihandoff.sources.sysfs import read_sysfs

DATA = Path(__file__).parent / "data"
CAPTURES = sorted(DATA.glob("*.serial.log"))
PTAL = struct.unpack("<I", b"ptal")[0]  # edk2 POOL_TAIL signature read as a u32: 1818326128

# What really happened on each capture, by hand: the sysfs values each real kernel exposed
# (from the EHSYSX lines) against the injected valid2 bytes, and the ESRT address its efi: line
# names against the one the injector printed.
TRUTH = {
    # Xen 4.17 copied 80 of 96 bytes into ACPI reclaim: entry1's last 16 bytes are the pool tail
    "bsdata-valid2-xen-4.17+linux-6.12": "corrupt",
    # a 6.1 dom0 never parses the ESRT: no sysfs tree
    "bsdata-valid2-xen-4.17+linux-6.1": "refused",
    # RT data is never moved by Xen; the dom0 reads the firmware's own bytes
    "rtdata-valid2-xen-4.17+linux-6.12": "intact",
    # "ESRT header is not in the memory map.": no sysfs tree
    "reserved-valid2-xen-4.17+linux-6.12": "refused",
    # bare metal keeps a BS-data ESRT in place
    "bsdata-valid2-linux-6.12": "intact",
}


def _case(path: Path) -> harness.Case:
    placement, content, stack = path.name.split(".serial")[0].split("-", 2)
    return harness.Case.make(placement, content, stack)


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


@functools.cache
def _checks(name: str) -> dict[str, Any]:
    path = DATA / name
    result = harness.explain_checks(_case(path), _text(path))
    assert result is not None
    return result


def test_the_captures_are_there():
    assert sorted(p.name.split(".serial")[0] for p in CAPTURES) == sorted(TRUTH)
    for p in CAPTURES:
        text = _text(p)
        assert "EHMARK end" in text and "EHFILEX firmware/efi/systab" in text
        assert "@" not in text.replace("@example.org", "")  # no real mail address left


# -- the truth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name.split(".serial")[0])
def test_truth_on_each_capture(path):
    verdict, why = harness.esrt_truth("valid2", harness.parse_serial(_text(path)))
    assert verdict == TRUTH[path.name.split(".serial")[0]], why


def test_truth_of_the_short_copy_names_the_pool_tail_fields():
    real = harness.parse_serial(_text(DATA / "bsdata-valid2-xen-4.17+linux-6.12.serial.log"))
    assert real["sysfs"]["entries/entry1/lowest_supported_fw_version"] == f"{PTAL}\n"
    assert real["sysfs"]["entries/entry1/last_attempt_version"] == "120\n"  # 24 + 80 + 16
    verdict, why = harness.esrt_truth("valid2", real)
    assert verdict == "corrupt"
    assert why.startswith("3 sysfs value(s) differ")
    for field in ("capsule_flags", "last_attempt_version", "lowest_supported_fw_version"):
        assert f"entries/entry1/{field}" in why
    assert "entry0" not in why  # the first entry survived the copy


def test_truth_intact_needs_the_firmware_address():
    real = harness.parse_serial(_text(DATA / "rtdata-valid2-xen-4.17+linux-6.12.serial.log"))
    (inj,) = real["injected"]
    esrt = [a for n, a, _ in harness.config_tokens(real["efi_lines"]) if n == "ESRT"]
    assert esrt == [inj["address"]]  # RT data: Xen leaves it where the firmware put it
    # the same values read at another address are an exact copy: relocated
    moved = {**real, "efi_lines": [line.replace(f"ESRT={inj['address']:#x}", "ESRT=0x1000")
                                   for line in real["efi_lines"]]}
    assert harness.esrt_truth("valid2", moved)[0] == "relocated"
    # one value off is corrupt, one file missing too
    bad = {**real, "sysfs": {**real["sysfs"], "entries/entry0/fw_type": "2\n"}}
    assert harness.esrt_truth("valid2", bad)[0] == "corrupt"
    gone = dict(real["sysfs"])
    del gone["entries/entry1/fw_class"]
    assert harness.esrt_truth("valid2", {**real, "sysfs": gone})[0] == "corrupt"
    assert harness.esrt_truth("valid2", {**real, "booted": False}) is None
    assert harness.esrt_truth("valid2", {**real, "injected": []})[0] == "absent"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name.split(".serial")[0])
def test_pool_tail_in_tree_only_after_the_short_copy(path):
    real = harness.parse_serial(_text(path))
    short = path.name.startswith("bsdata-valid2-xen-4.17+linux-6.12")
    assert harness.pool_tail_in_tree(real) is short


def test_pool_tail_needs_signature_and_size():
    real = harness.parse_serial(_text(DATA / "bsdata-valid2-xen-4.17+linux-6.12.serial.log"))
    assert harness.POOL_TAIL_SIGNATURE == PTAL
    wrong_size = {**real["sysfs"], "entries/entry1/last_attempt_version": "96\n"}
    assert not harness.pool_tail_in_tree({**real, "sysfs": wrong_size})
    assert not harness.pool_tail_in_tree({**real, "sysfs_present": False})


def test_expected_sysfs_by_hand():
    want = harness.expected_esrt_sysfs(harness.esrt_bytes("valid2"))
    # fwupd's fixture entries (plugins/uefi-capsule/tests/efi/esrt), as Linux prints them
    assert want["fw_resource_count"] == "2\n" and want["fw_resource_version"] == "1\n"
    assert want["entries/entry0/fw_class"] == "ddc0ee61-e7f0-4e7d-acc5-c070a398838e\n"
    assert want["entries/entry0/capsule_flags"] == "0xfe\n"
    assert want["entries/entry0/last_attempt_version"] == "18472960\n"
    assert want["entries/entry1/fw_version"] == "3090287969\n"
    assert want["entries/entry1/capsule_flags"] == "0x8010\n"
    assert len(want) == 3 + 2 * 7
    count0 = harness.expected_esrt_sysfs(harness.esrt_bytes("count0"))
    assert count0 == {"fw_resource_count": "0\n", "fw_resource_count_max": "2\n",
                      "fw_resource_version": "1\n"}
    # the native capture's kernel exposed exactly these files
    native = harness.parse_serial(_text(DATA / "bsdata-valid2-linux-6.12.serial.log"))
    assert native["sysfs"] == want


# -- the evidence ----------------------------------------------------------------------------


def test_evidence_of_a_dom0_boot(tmp_path):
    files = harness.write_evidence(_text(DATA / "bsdata-valid2-xen-4.17+linux-6.12.serial.log"),
                                   tmp_path)
    assert set(files) == {"dmesg.txt", "xl-dmesg.txt", "excerpt.txt", "tree", "collect.tar.gz"}
    dmesg = files["dmesg.txt"].read_text().splitlines()
    assert dmesg[0].startswith("[    0.000000] Linux version 6.12")
    assert all(line.startswith("[") for line in dmesg)
    assert "[    0.000000] efi: EFI v2.7 by EDK II" in dmesg
    xl = files["xl-dmesg.txt"].read_text().splitlines()
    assert xl and all(line.startswith("(XEN)") for line in xl)
    assert any("Xen version 4.17.7" in line for line in xl)
    ex = files["excerpt.txt"].read_text().splitlines()
    assert ex[: len(xl)] == xl
    assert ex[len(xl):] == [line for line in dmesg if "efi:" in line or "esrt:" in line]
    assert any("esrt: Reserving ESRT space" in line for line in ex)
    ev = read_sysfs(files["tree"])
    assert ev.hypervisor_type == "xen" and ev.hypervisor_version == "4.17.7"
    assert ev.esrt is not None and len(ev.esrt.entries) == 2
    assert ev.esrt.entries[1].lowest_supported_fw_version.value == PTAL
    assert ev.systab == {"ACPI20": 0x3F77D014, "ACPI": 0x3F77D000, "SMBIOS": 0x3F520000}
    assert ev.kernel_log is None  # the tree alone: no dmesg.txt inside it
    assert not (files["tree"] / "sys/firmware/efi/efivars").exists()  # collect never copies it
    # the archive: the same tree, with both logs inside as collect puts them in a dom0
    with tarfile.open(files["collect.tar.gz"]) as tf:
        names = tf.getnames()
        assert tf.extractfile("xl-dmesg.txt").read() == files["xl-dmesg.txt"].read_bytes()
    assert {"dmesg.txt", "xl-dmesg.txt", "sys/firmware/efi/esrt/entries/entry1/fw_class",
            "sys/hypervisor/type"} <= set(names)
    assert not any(n.startswith(("/", "tree")) for n in names)
    arc = read_sysfs(files["collect.tar.gz"])
    assert arc.kernel_log == files["dmesg.txt"].read_bytes()
    assert arc.esrt_tree() == ev.esrt_tree() and arc.hypervisor_version == "4.17.7"


def test_evidence_of_a_bare_metal_boot(tmp_path):
    files = harness.write_evidence(_text(DATA / "bsdata-valid2-linux-6.12.serial.log"), tmp_path)
    assert set(files) == {"dmesg.txt", "excerpt.txt", "tree", "collect.tar.gz"}
    ev = read_sysfs(files["tree"])
    assert ev.hypervisor_type is None
    assert ev.runtime_map  # x86 native with kexec: /sys/firmware/efi/runtime-map
    assert ev.fw_platform_size.value == 64


def test_evidence_without_an_esrt_tree(tmp_path):
    files = harness.write_evidence(
        _text(DATA / "reserved-valid2-xen-4.17+linux-6.12.serial.log"), tmp_path)
    efi = files["tree"] / "sys" / "firmware" / "efi"
    assert (efi / "systab").is_file() and not (efi / "esrt").exists()


def test_evidence_refuses_paths_outside_the_tree(tmp_path):
    log = "EHMARK begin\nEHFILEX ../../etc/x 0a\nEHMARK end\n"
    with pytest.raises(ValueError):
        harness.write_evidence(log, tmp_path)


# -- reading and judging explain's JSON -----------------------------------------------------

ESRT = str(harness.ESRT_GUID)


def _doc(entry: dict[str, Any] | None, observed: bool = True) -> dict[str, Any]:
    paths: dict[str, Any] = {"xen-4.17": {"tables": {ESRT: {"verdict": "intact", "reason": "p"}}}}
    if entry is not None:
        paths["observed" if observed else "native"] = {"label": "x", "tables": {ESRT: entry}}
    return {"machine": {"role": "xen-dom0", "xen_version": "4.17.7", "linux_version": "6.12"},
            "paths": paths, "esrt": None}


def test_observed_esrt_prefers_paths_observed():
    obs = harness.observed_esrt(_doc({"verdict": "corrupt", "reason": "r"}),
                                "xen-4.17+linux-6.12")
    assert (obs["verdict"], obs["from"], obs["role"]) == ("corrupt", "observed", "xen-dom0")
    fb = harness.observed_esrt(_doc(None), "xen-4.17+linux-6.12")
    assert (fb["verdict"], fb["from"]) == ("intact", "preset xen-4.17")
    cands = harness.observed_esrt(_doc({"verdict": "unknown", "reason": "r", "candidates": [
        {"placement": "EfiBootServicesData", "verdict": "corrupt"},
        {"placement": "EfiACPIReclaimMemory", "verdict": "intact"}]}), "xen-4.17+linux-6.12")
    assert cands["candidates"] == ["corrupt", "intact"]
    none = harness.observed_esrt({"paths": {"observed": {"tables": {}}}}, "linux-6.12")
    assert none["verdict"] == "absent"
    shown = harness.observed_esrt({"paths": {"observed": {"tables": {}}}, "esrt": {}},
                                  "linux-6.12")
    assert shown["verdict"] is None


def test_judge_observed():
    j = harness.judge_observed
    assert j("corrupt", {"verdict": "corrupt"}) == ("ok", "ok")
    assert j("corrupt", {"verdict": "intact"}) == ("disagree", "intact")
    assert j("refused", {"verdict": "absent"}) == ("disagree", "absent")
    assert j("corrupt", {"verdict": "unknown", "candidates": ["corrupt", "intact"]}) == (
        "unknown", "unk")
    assert j("refused", {"verdict": "unknown", "candidates": ["corrupt", "intact"]}) == (
        "disagree", "unk[corrupt/intact]")
    assert j("intact", {"verdict": "unknown", "candidates": None}) == ("weak", "unk?")
    assert j("intact", {"verdict": None}) == ("weak", "none")


# -- explain on the real captures ----------------------------------------------------------


def _known(case_id: str, label: str) -> str | None:
    return next((f"{wrong}: {why}" for pat, lab, wrong, why in harness.KNOWN_EXPLAIN_WRONG
                 if fnmatch.fnmatchcase(case_id, pat) and lab == label), None)


def _params() -> list[Any]:
    out = []
    for p in CAPTURES:
        case = _case(p)
        for label in harness.EXPLAIN_SETS:
            if label.startswith("xl") and not case.xen:
                continue
            why = _known(case.id, label)
            marks = [pytest.mark.xfail(strict=False, reason=why)] if why else []
            out.append(pytest.param(p.name, label, marks=marks, id=f"{case.id}-{label}"))
    return out


@pytest.mark.parametrize(("name", "label"), _params())
def test_explain_on_real_evidence(name, label):
    result = _checks(name)
    assert result["truth"] == TRUTH[name.split(".serial")[0]]
    (st,) = [s for s in result["sets"] if s["set"] == label]
    assert st["status"] in ("ok", "unknown", "weak"), (
        f"explain says {st['cell']} ({st.get('from')}): {st.get('reason') or st.get('error')}")


@pytest.mark.parametrize("case", harness.smoke(), ids=lambda c: c.id)
def test_explain_on_cached_smoke_boot(case):
    real = harness.cached_outcome(case)
    if real is None or not Path(real["serial_log"]).exists():
        pytest.skip("not booted yet: bench/realfw/run --smoke")
    result = harness.explain_checks(case, _text(Path(real["serial_log"])))
    assert result is not None
    wrong = [s for s in result["sets"] if s["status"] in ("disagree", "error")]
    known = [s for s in wrong if s.get("known")]
    if known and len(known) == len(wrong):
        pytest.xfail("; ".join(f"{s['set']}: {s['known']}" for s in known))
    assert wrong == []


def test_every_evidence_set_is_checked():
    dom0 = _checks("bsdata-valid2-xen-4.17+linux-6.12.serial.log")
    assert [s["set"] for s in dom0["sets"]] == list(harness.EXPLAIN_SETS)
    native = _checks("bsdata-valid2-linux-6.12.serial.log")
    assert [s["set"] for s in native["sets"]] == ["d", "ex", "t", "t+d", "tgz"]


def test_the_judge_catches_a_wrong_explain(monkeypatch):
    # the checks can fail: an explain that says "absent" for everything disagrees everywhere
    monkeypatch.setattr(harness, "KNOWN_EXPLAIN_WRONG", ())
    monkeypatch.setattr(harness, "run_explain", lambda sources: {"paths": {"observed": {
        "label": "x", "tables": {ESRT: {"verdict": "absent", "reason": "none"}}}}})
    path = DATA / "rtdata-valid2-xen-4.17+linux-6.12.serial.log"
    result = harness.explain_checks(_case(path), _text(path))
    assert {s["status"] for s in result["sets"]} == {"disagree"}
    row = harness.Row({"case": "rtdata-valid2-xen-4.17+linux-6.12", "booted": True},
                      explain_result=result)
    assert len(harness.explain_failures([row])) == len(harness.EXPLAIN_SETS)
    monkeypatch.setattr(harness, "run_explain", lambda sources: {"error": "ParseError: x"})
    result = harness.explain_checks(_case(path), _text(path))
    assert {s["cell"] for s in result["sets"]} == {"err"}
    # a known wrong verdict is reported but does not fail the run
    monkeypatch.setattr(harness, "KNOWN_EXPLAIN_WRONG", (("rtdata-*", "xl", "absent", "k"),))
    monkeypatch.setattr(harness, "run_explain", lambda sources: {"paths": {"observed": {
        "label": "x", "tables": {ESRT: {"verdict": "absent", "reason": "none"}}}}})
    result = harness.explain_checks(_case(path), _text(path))
    row = harness.Row({"case": "rtdata-valid2-xen-4.17+linux-6.12", "booted": True},
                      explain_result=result)
    assert [s["known"] for s in result["sets"] if s["set"] == "xl"] == ["k"]
    assert len(harness.explain_failures([row])) == len(harness.EXPLAIN_SETS) - 1


def test_tree_sets_must_carry_the_short_copy_finding(monkeypatch):
    monkeypatch.setattr(harness, "KNOWN_EXPLAIN_WRONG", ())
    right = {"paths": {"observed": {"label": "x", "tables": {ESRT: {
        "verdict": "corrupt", "reason": "short copy"}}}}, "findings": []}
    monkeypatch.setattr(harness, "run_explain", lambda sources: right)
    path = DATA / "bsdata-valid2-xen-4.17+linux-6.12.serial.log"
    result = harness.explain_checks(_case(path), _text(path))
    assert result["short_copy"] is True
    cells = {s["set"]: s["cell"] for s in result["sets"]}
    # the right verdict, but no finding: only the sets holding the tree disagree
    assert cells == {"d": "ok", "xl+d": "ok", "xl": "ok", "ex": "ok", "t": "-short-copy",
                     "t+d": "-short-copy", "tgz": "-short-copy"}
    right["findings"] = [{"code": "esrt.xen-short-copy"}]
    result = harness.explain_checks(_case(path), _text(path))
    assert {s["status"] for s in result["sets"]} == {"ok"}
    # the finding where there is no pool tail is wrong too
    rt = DATA / "rtdata-valid2-xen-4.17+linux-6.12.serial.log"
    right["paths"]["observed"]["tables"][ESRT]["verdict"] = "intact"
    result = harness.explain_checks(_case(rt), _text(rt))
    assert result["short_copy"] is False
    assert {s["set"]: s["cell"] for s in result["sets"]}["t"] == "+short-copy"
    # a right verdict from a JSON that takes the dom0 for bare metal disagrees
    right["findings"] = []
    right["machine"] = {"role": "bare-metal", "xen_version": None, "linux_version": None}
    result = harness.explain_checks(_case(rt), _text(rt))
    assert {s["set"]: s["cell"] for s in result["sets"]}["d"] == "role:bare-metal"


def test_machine_mismatch():
    dom0 = _case(DATA / "bsdata-valid2-xen-4.17+linux-6.12.serial.log")
    native = _case(DATA / "bsdata-valid2-linux-6.12.serial.log")
    m = harness.machine_mismatch
    right = {"role": "xen-dom0", "xen_version": "4.17.7", "linux_version": "6.12.118"}
    assert m(dom0, "d", right) is None
    assert m(dom0, "d", {"role": "unknown", "xen_version": None, "linux_version": None}) is None
    assert m(dom0, "xl", right) == "role:xen-dom0"
    assert m(dom0, "xl", {**right, "role": "xen-hypervisor", "linux_version": None}) is None
    assert m(dom0, "d", {**right, "role": "bare-metal"}) == "role:bare-metal"
    assert m(dom0, "d", {**right, "xen_version": "4.17"}) == "xen:4.17"
    assert m(dom0, "d", {**right, "linux_version": "6.1.0"}) == "linux:6.1.0"
    assert m(native, "d", {"role": "bare-metal", "linux_version": "6.12.118"}) is None
    assert m(native, "d", {"role": "bare-metal", "xen_version": "4.17.7"}) == "xen:4.17.7"
    assert m(native, "t", {"role": "xen-dom0"}) == "role:xen-dom0"
    six_one = harness.Case.make("bsdata", "valid2", "xen-4.17+linux-6.1")
    assert m(six_one, "d", {**right, "linux_version": "6.1.0"}) is None
    assert m(six_one, "d", right) == "linux:6.12.118"


def test_report_has_the_explain_column(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "KNOWN_EXPLAIN_WRONG", (
        ("*-xen-4.17+linux-6.12", "xl", "absent", "xl dmesg shows no table list"),
        ("*-linux-6.1", "d", "intact", "gone"),
    ))
    sets = [{"set": "d", "status": "ok", "cell": "ok", "from": "observed"},
            {"set": "xl", "status": "disagree", "cell": "absent", "from": "observed",
             "reason": "the firmware installs no ESRT",
             "known": harness._known_wrong("a-valid2-xen-4.17+linux-6.12", "xl", "absent")},
            {"set": "t", "status": "disagree", "cell": "intact", "from": "preset xen-4.17",
             "reason": "r"},
            {"set": "ex", "status": "weak", "cell": "unk?", "from": "observed"}]
    real = {"case": "a-valid2-xen-4.17+linux-6.12", "booted": True}
    row = harness.Row(real, explain_result={"truth": "corrupt", "why": "w", "sets": sets})
    final = harness.write_report([row], tmp_path / "r.md", {"qemu": "7.2"})
    assert final.endswith("; explain: 4 checks, 1 ok, 0 unknown, 1 weak, 2 disagree (1 known)")
    text = (tmp_path / "r.md").read_text()
    assert "| case | real | predicted | agree | fwupd | explain |" in text
    assert "d:ok xl:*absent* t:**intact** ex:unk? = corrupt (preset xen-4.17 for t) |" in text
    assert "| a-valid2-xen-4.17+linux-6.12 | t | intact | corrupt | preset xen-4.17 | r |" in text
    assert "| xl | 0 | 0 | 0 | 1 | 0 |" in text and "| ex | 0 | 0 | 1 | 0 | 0 |" in text
    fails = harness.explain_failures([row])
    assert len(fails) == 1 and fails[0].startswith("a-valid2-xen-4.17+linux-6.12 t: intact")
    # the known line for *-linux-6.1 matched no checked case: not reported as gone
    assert harness.known_gone([row]) == []
    sets[1] = {**sets[1], "status": "ok", "cell": "ok", "known": None}
    assert harness.known_gone([row]) == [harness.KNOWN_EXPLAIN_WRONG[0]]
    # without explain results the final line is the old one
    assert harness.final_line([harness.Row(real)]) == "realfw: 1 cases, 0 agree, 0 disagree"
