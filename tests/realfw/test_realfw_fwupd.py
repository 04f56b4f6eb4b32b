"""The real fwupdtool (Debian's fwupd) over hand-written and real-kernel trees."""

from __future__ import annotations

import shutil
from pathlib import Path

import harness
import pytest

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.skipif(shutil.which(harness.FWUPDTOOL) is None,
                                reason="fwupdtool not installed (bench/realfw/install-deps)")

# fwupd plugins/uefi-capsule/tests/efi/esrt (facts 6.3): entry2 has the zero GUID and symlinks
# every other value file to entry1's.
FIXTURE = {
    "entry0": {"fw_class": "ddc0ee61-e7f0-4e7d-acc5-c070a398838e", "fw_type": "1",
               "fw_version": "65586", "lowest_supported_fw_version": "65582",
               "capsule_flags": "0xfe", "last_attempt_version": "18472960",
               "last_attempt_status": "1"},
    "entry1": {"fw_class": "671d19d0-d43c-4852-98d9-1ce16f9967e4", "fw_type": "2",
               "fw_version": "3090287969", "lowest_supported_fw_version": "1",
               "capsule_flags": "0x8010", "last_attempt_version": "0",
               "last_attempt_status": "0"},
}


def _fixture_tree(root: Path) -> Path:
    entries = root / "efi" / "esrt" / "entries"
    (root / "efi" / "efivars").mkdir(parents=True)
    (root / "efi" / "fw_platform_size").write_text("64\n")
    for name, values in FIXTURE.items():
        (entries / name).mkdir(parents=True)
        for f, v in values.items():
            (entries / name / f).write_text(v + "\n")
    (entries / "entry2").mkdir()
    (entries / "entry2" / "fw_class").write_text("00000000-0000-0000-0000-000000000000\n")
    for f in FIXTURE["entry1"]:
        if f != "fw_class":
            (entries / "entry2" / f).symlink_to(f"../entry1/{f}")
    return root


def _core(devs):
    keys = ("guid", "kind", "version", "lowest", "flags", "update_state", "entry")
    return [{k: d[k] for k in keys} for d in devs]


def test_fwupd_fixture_tree_two_devices(tmp_path):
    devs = harness.fwupd_devices(_fixture_tree(tmp_path / "firmware"))
    # fu-self-test.c: two devices; the zero GUID is dropped. Capsule flags lack both
    # PersistAcrossReset (0x10000) and InitiateReset (0x40000), so x86_64 fwupd adds them.
    assert _core(devs) == [
        {"guid": "ddc0ee61-e7f0-4e7d-acc5-c070a398838e", "kind": "system-firmware",
         "version": 65586, "lowest": 65582, "flags": 0x500FE, "update_state": "failed",
         "entry": "entry0"},
        {"guid": "671d19d0-d43c-4852-98d9-1ce16f9967e4", "kind": "device-firmware",
         "version": 3090287969, "lowest": 1, "flags": 0x58010, "update_state": "success",
         "entry": "entry1"},
    ]
    assert all(d["updatable"] for d in devs)


def test_fwupd_no_entries_is_none(tmp_path):
    root = tmp_path / "firmware"
    (root / "efi" / "efivars").mkdir(parents=True)
    (root / "efi" / "esrt").mkdir()
    assert harness.fwupd_devices(root) is None


def test_fwupd_on_tree_rebuilt_from_real_xen_boot(tmp_path):
    # EHSYS lines of a real boot (Xen 4.17.7, dom0 Linux 6.12.117, valid2 in BS data): the
    # relocated copy lost its last 16 bytes, so entry1's lowest/flags/last attempt are garbage.
    real = harness.parse_serial(
        (DATA / "bsdata-valid2-xen-4.17+linux-6.12.serial.txt").read_text())
    root = harness.write_sysfs_tree(real["sysfs"], tmp_path / "firmware")
    devs = harness.fwupd_devices(root)
    assert _core(devs) == [
        {"guid": "ddc0ee61-e7f0-4e7d-acc5-c070a398838e", "kind": "system-firmware",
         "version": 65586, "lowest": 65582, "flags": 0x500FE, "update_state": "failed",
         "entry": "entry0"},
        # 0xafafafaf already has bits 16 and 18, so no fix-up; lowest 1818326128 > version
        {"guid": "671d19d0-d43c-4852-98d9-1ce16f9967e4", "kind": "device-firmware",
         "version": 3090287969, "lowest": 1818326128, "flags": 0xAFAFAFAF,
         "update_state": "success", "entry": "entry1"},
    ]


def test_fwupd_vendor_status_is_out_of_range(tmp_path):
    # fwupd 2.0.20: last_attempt_status 0x1001 (UEFI vendor range) is out of the GObject
    # property's range ("invalid or out of range for property 'last-attempt-status'"), so the
    # device gets no UpdateState at all (neither success nor failed).
    root = tmp_path / "firmware"
    values = dict(FIXTURE["entry0"], last_attempt_status="4097")
    harness.write_sysfs_tree({f"entries/entry0/{k}": v + "\n" for k, v in values.items()}, root)
    (dev,) = harness.fwupd_devices(root)
    assert dev["update_state"] == "unknown"
    assert dev["version"] == 65586


def test_fwupd_model_matches_real_on_fixture(tmp_path):
    pytest.importorskip("efihandoff.fwupd")
    sysfs = {f"entries/{e}/{k}": v + "\n" for e, vals in FIXTURE.items() for k, v in vals.items()}
    real = harness.fwupd_devices(harness.write_sysfs_tree(sysfs, tmp_path / "firmware"))
    assert harness.fwupd_diff(real, harness.fwupd_model(sysfs, True)) == []


def test_fwupd_needs_efivars(tmp_path):
    # fwupd 2.0.20 fu_uefi_capsule_plugin_startup: without <root>/efi/efivars the plugin is
    # disabled ("kernel efivars support missing") and nothing is listed, however good the ESRT.
    # Every real boot here has efi/efivars (efi_dir), so the tree `efihandoff boot --sysfs-out`
    # writes has it too.
    root = _fixture_tree(tmp_path / "firmware")
    assert len(harness.fwupd_devices(root)) == 2
    (root / "efi" / "efivars").rmdir()
    assert harness.fwupd_devices(root) is None
    real = harness.parse_serial(
        (DATA / "bsdata-valid2-xen-4.17+linux-6.12.serial.txt").read_text())
    assert "efivars" in real["efi_dir"]


def test_model_tree_has_efivars(tmp_path):
    case = harness.Case.make("bsdata", "valid2", "linux-6.12")
    root = harness.model_tree(case, tmp_path / "firmware")
    assert (root / "efi" / "efivars").is_dir()
    assert len(harness.fwupd_devices(root)) == 2


EXCERPTS = sorted(DATA.glob("*.serial.txt"))


@pytest.mark.parametrize("path", EXCERPTS, ids=[p.name.split(".serial")[0] for p in EXCERPTS])
def test_fwupd_both_ways_on_committed_real_boot(path):
    # issue 5 item 4: the real fwupdtool on the real kernel's tree and on the tree
    # `efihandoff boot --sysfs-out` writes, and efihandoff's own fwupd model: all the same.
    placement, content, stack = path.name.split(".serial")[0].split("-", 2)
    case = harness.Case.make(placement, content, stack)
    real = harness.parse_serial(path.read_text())
    assert harness.fwupd_both_ways(case, real, harness.predict(case)) == []


def test_fwupd_both_ways_sees_a_wrong_model(tmp_path):
    # the check can fail: a prediction for another content lists other devices
    path = DATA / "acpireclaim-valid5-linux-6.12.serial.txt"
    real = harness.parse_serial(path.read_text())
    case = harness.Case.make("acpireclaim", "valid5", "linux-6.12")
    wrong = harness.predict(harness.Case.make("acpireclaim", "valid2", "linux-6.12"))
    diffs = harness.fwupd_both_ways(case, real, wrong)
    assert any(d.startswith("fwupdtool, real tree vs predicted: fwupd: 5 real devices, 2")
               for d in diffs)


def test_model_tree_is_what_the_cli_writes(tmp_path):
    case = harness.Case.make("bsdata", "valid2", "xen-4.17+linux-6.12")
    root = harness.model_tree(case, tmp_path / "firmware")
    esrt = root / "efi" / "esrt"
    assert (esrt / "fw_resource_count").read_text() == "2\n"
    assert (esrt / "entries" / "entry1" / "lowest_supported_fw_version").read_text() == (
        "1818326128\n")
    devs = harness.fwupd_devices(root)
    assert [d["lowest"] for d in devs] == [65582, 1818326128]


@pytest.mark.parametrize("case", harness.smoke(), ids=lambda c: c.id)
def test_fwupd_both_ways_on_cached_boot(case):
    real = harness.cached_outcome(case)
    if real is None:
        pytest.skip("not booted yet: bench/realfw/run --smoke")
    assert harness.fwupd_both_ways(case, real, harness.predict(case)) == []
