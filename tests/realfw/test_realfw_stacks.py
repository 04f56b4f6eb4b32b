"""The bench's added stacks (issue 13 point 5): Xen 4.17.7 from GRUB 2 with multiboot2 and
xen.efi with -mapbs. Case ids, model paths, the ESP and GRUB cfg builders, cache keys, and the
parse of a boot whose dom0 died. No QEMU needed (building GRUB's image needs grub-mkstandalone:
skipped without it)."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import harness
import pytest

from efihandoff.paths.presets import parse_path


@pytest.fixture
def fake_builds(tmp_path, monkeypatch):
    """The builders that need real tools, replaced by files whose names say what they are."""
    made = {}
    for name, attr in (("inject.efi", "build_injector"), ("grubx64.efi", "build_grub"),
                       ("initrd.gz", "build_initrd")):
        f = tmp_path / name
        f.write_bytes(name.encode())
        made[name] = f
        monkeypatch.setattr(harness, attr, lambda f=f: f)
    kernels = tmp_path / "kernels"
    for slot in ("linux-6.1", "linux-6.12"):
        (kernels / slot).mkdir(parents=True)
        (kernels / slot / "vmlinuz").write_bytes(slot.encode())
    monkeypatch.setattr(harness, "KERNELS", kernels)
    return made


def test_added_stacks_ids_and_properties():
    mb = harness.Case.make("bsdata", "valid2", "xen-4.17-multiboot2+linux-6.12")
    assert mb.id == "bsdata-valid2-xen-4.17-multiboot2+linux-6.12"
    assert (mb.xen, mb.boot, mb.mapbs, mb.kernel) == (True, "multiboot2", False, "linux-6.12")
    mp = harness.Case.make("rtdata", "valid5", "xen-4.17-mapbs+linux-6.1")
    assert mp.id == "rtdata-valid5-xen-4.17-mapbs+linux-6.1"
    assert (mp.xen, mp.boot, mp.mapbs, mp.kernel) == (True, "efi", True, "linux-6.1")
    efi = harness.Case.make("bsdata", "valid2", "xen-4.17+linux-6.12")
    assert (efi.boot, efi.mapbs) == ("efi", False)
    native = harness.Case.make("bsdata", "valid2", "linux-6.12")
    assert (native.boot, native.mapbs) == (None, False)
    with pytest.raises(ValueError):
        harness.Case.make("bsdata", "valid2", "xen-4.17-multiboot+linux-6.12")
    # every id splits back into its parts the way the tests and --cases read them
    for c in harness.matrix():
        placement, content, stack = c.id.split("-", 2)
        assert harness.Case.make(placement, content, stack) == c


def test_model_paths_of_the_added_stacks():
    for stack in harness.MULTIBOOT2_STACKS:
        spec = parse_path(harness.PATH_FOR_STACK[stack])
        assert str(spec.boot).lower().endswith("multiboot2") and not spec.mapbs
        assert spec.xen == (4, 17, 7)
    for stack in harness.MAPBS_STACKS:
        spec = parse_path(harness.PATH_FOR_STACK[stack])
        assert str(spec.boot).lower().endswith("efi") and spec.mapbs
    assert set(harness.PATH_FOR_STACK) == set(harness.STACKS)
    assert set(harness.FALLBACK_PRESET) == set(harness.STACKS)


def test_matrix_smoke_and_list_cover_every_stack(capsys):
    full = harness.matrix()
    assert {c.stack for c in full} == set(harness.STACKS)
    assert len(harness.matrix(stacks=harness.MULTIBOOT2_STACKS)) == 5 * 4 * 2
    sm = harness.smoke()
    assert {c.stack for c in sm} == set(harness.STACKS)
    for stack in (*harness.MULTIBOOT2_STACKS, *harness.MAPBS_STACKS):
        assert f"bsdata-valid2-{stack}" in {c.id for c in sm}  # the most telling placement
    assert harness.main(["--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == [c.id for c in full]
    assert "bsdata-valid2-xen-4.17-multiboot2+linux-6.12" in listed
    assert "acpireclaim-count0-xen-4.17-mapbs+linux-6.1" in listed
    assert harness.main(["--list", "--smoke", "--cases", "*multiboot2*"]) == 0
    assert capsys.readouterr().out.split() == [
        "bsdata-valid2-xen-4.17-multiboot2+linux-6.12",
        "bsdata-valid2-xen-4.17-multiboot2+linux-6.1"]


def _cfg_paths(cfg: str) -> list[str]:
    """The ESP files a grub.cfg loads (multiboot2 / module2 arguments)."""
    out = []
    for line in cfg.splitlines():
        words = [w for w in line.split() if not w.startswith("--")]
        if words and words[0] in ("multiboot2", "module2"):
            out.append(words[1])
    return out


def test_multiboot2_esp_and_grub_cfg(fake_builds):
    case = harness.Case.make("bsdata", "valid2", "xen-4.17-multiboot2+linux-6.12")
    files = harness.esp_inputs(case)
    assert files["efihandoff/next.txt"] == b"\\EFI\\xen\\grubx64.efi\n\n"
    assert files["EFI/xen/grubx64.efi"] == fake_builds["grubx64.efi"]
    assert files["EFI/xen/xen.gz"] == harness.XEN_GZ
    assert files["EFI/xen/vmlinuz"].read_bytes() == b"linux-6.12"
    assert files["EFI/xen/initrd.gz"] == fake_builds["initrd.gz"]
    assert "EFI/xen/xen.efi" not in files and "EFI/xen/xen.cfg" not in files
    cfg = files["efihandoff/grub.cfg"].decode()
    assert cfg == harness.grub_cfg(case)
    # Xen through multiboot2 with the bench's options, the dom0 and its initrd as module2 (the
    # initrd passed compressed, as Debian's 20_linux_xen does), every file on this ESP
    assert f"\nmultiboot2 /EFI/xen/xen.gz {harness.XEN_OPTIONS}\n" in cfg
    assert (f"\nmodule2 /EFI/xen/vmlinuz console=hvc0 earlyprintk=xen {harness.LINUX_ARGS}\n"
            in cfg)
    assert "\nmodule2 --nounzip /EFI/xen/initrd.gz\n" in cfg
    assert cfg.rstrip().endswith("boot")
    assert _cfg_paths(cfg) == ["/EFI/xen/xen.gz", "/EFI/xen/vmlinuz", "/EFI/xen/initrd.gz"]
    assert all(p.lstrip("/") in files for p in _cfg_paths(cfg))
    assert "ehdump" not in cfg and " ehdump\n" in harness.grub_cfg(case, dump=True)
    assert harness.esp_inputs(case, dump=True)["efihandoff/grub.cfg"].decode().count(
        "ehdump") == 1
    # the embedded cfg finds the ESP by the file this ESP has, and runs it
    assert "--file /efihandoff/grub.cfg" in harness.GRUB_EMBEDDED_CFG
    assert "configfile /efihandoff/grub.cfg" in harness.GRUB_EMBEDDED_CFG
    assert "efihandoff/grub.cfg" in files
    six_one = harness.esp_inputs(harness.Case.make("rtdata", "valid2",
                                                   "xen-4.17-multiboot2+linux-6.1"))
    assert six_one["EFI/xen/vmlinuz"].read_bytes() == b"linux-6.1"


def test_multiboot2_esp_has_the_xen_efi_layout(fake_builds):
    """Same directories, same number of files in each: the firmware's file-system work before
    the injector runs is the same, so the injector's ESRT lands where it does for xen.efi."""

    def shape(case_id: str) -> dict[str, int]:
        placement, content, stack = case_id.split("-", 2)
        out: dict[str, int] = {}
        for rel in harness.esp_inputs(harness.Case.make(placement, content, stack)):
            parent = str(Path(rel).parent)
            out[parent] = out.get(parent, 0) + 1
        return out

    efi = shape("bsdata-valid2-xen-4.17+linux-6.12")
    mb = shape("bsdata-valid2-xen-4.17-multiboot2+linux-6.12")
    assert efi["EFI/xen"] == mb["EFI/xen"] == 4
    assert set(efi) == set(mb)
    assert mb["efihandoff"] == efi["efihandoff"] + 1  # grub.cfg beside inject.bin, next.txt


def test_mapbs_and_efi_load_options(fake_builds):
    mapbs = harness.esp_inputs(harness.Case.make("bsdata", "valid2",
                                                 "xen-4.17-mapbs+linux-6.12"))
    efi = harness.esp_inputs(harness.Case.make("bsdata", "valid2", "xen-4.17+linux-6.12"))
    # next.txt line 2 becomes xen.efi's UCS-2 LoadOptions: efi_start reads the first word as
    # the image's name and the rest as its options
    path, options, rest = mapbs["efihandoff/next.txt"].decode().split("\n")
    assert (path, options, rest) == ("\\EFI\\xen\\xen.efi", "xen.efi -mapbs", "")
    assert options.split()[1:] == ["-mapbs"]
    assert efi["efihandoff/next.txt"] == b"\\EFI\\xen\\xen.efi\n\n"  # as before: no options
    # everything else is the xen.efi stack's ESP
    assert {k: v for k, v in mapbs.items() if k not in ("efihandoff/next.txt",
                                                         "efihandoff/inject.bin")} == {
        k: v for k, v in efi.items() if k not in ("efihandoff/next.txt",
                                                  "efihandoff/inject.bin")}


def test_cache_keys(monkeypatch):
    """The first four stacks' keys ignore GRUB (their boots stay cached); the added stacks'
    keys change with what they boot with."""
    versions = {"ovmf": "1", "xen-hypervisor-4.17-amd64": "2", "grub-efi-amd64-bin": "3"}
    monkeypatch.setattr(harness, "_VERSIONS", dict(versions))
    efi = harness.Case.make("bsdata", "valid2", "xen-4.17+linux-6.12")
    mb = harness.Case.make("bsdata", "valid2", "xen-4.17-multiboot2+linux-6.12")
    mp = harness.Case.make("bsdata", "valid2", "xen-4.17-mapbs+linux-6.12")
    before = {c: harness.case_key(c) for c in (efi, mb, mp)}
    assert len(set(before.values())) == 3
    monkeypatch.setattr(harness, "_VERSIONS", {k: v for k, v in versions.items()
                                               if k != "grub-efi-amd64-bin"})
    assert harness.case_key(efi) == before[efi]
    assert harness.case_key(mp) == before[mp]
    monkeypatch.setattr(harness, "_VERSIONS", {**versions, "grub-efi-amd64-bin": "4"})
    assert harness.case_key(mb) != before[mb]
    assert harness.case_key(efi) == before[efi]
    monkeypatch.setattr(harness, "MAPBS_LOAD_OPTIONS", "xen.efi -mapbs -basevideo")
    monkeypatch.setattr(harness, "_VERSIONS", dict(versions))
    assert harness.case_key(mp) != before[mp] and harness.case_key(efi) == before[efi]
    assert harness.case_key(mb, dump=True) != before[mb]


# A dom0 that dies before /init, as the real -mapbs boots end (serial log, shortened).
DIED_LOG = (
    "efihandoff-inject: start\r\n"
    "efihandoff-inject: b122a263-3661-4f68-9929-78f8b0d62180 type=4 at 0x3E673B18 len=96\r\n"
    "efihandoff-inject: starting \\EFI\\xen\\xen.efi\r\n"
    "(XEN) Bootloader: EFI\r\n"
    "(XEN) EFI memory map: (mapping BootServices)\r\n"
    "(XEN) *** Building a PV Dom0 ***\r\n"
    "(XEN) Freed 2048kB init memory\r\n"
    "mapping kernel into physical memory\r\n"
    "about to get started...\r\n"
    "Xen hypervisor allocated kernel memory conflicts with E820 map\r\n"
    "(XEN) Hardware Dom0 halted: halting machine\r\n"
)


def test_dom0_died_is_parsed_and_compared():
    real = harness.parse_serial(DIED_LOG)
    assert real["booted"]  # the boot ran to its end: the dom0's death
    assert not real["sysfs_present"] and real["efi_lines"] == []
    assert real["dom0_died"] == "Xen hypervisor allocated kernel memory conflicts with E820 map"
    assert real["injected"][0]["address"] == 0x3E673B18
    predicted = {"sysfs_present": True, "sysfs": {"fw_resource_count": "2\n"},
                 "verdict": "corrupt: short copy", "efi_lines": [], "esrt_lines": []}
    (diff,) = harness.compare(real, predicted)
    assert diff.startswith("dom0 died before /init (Xen hypervisor allocated kernel memory")
    assert diff.endswith("the model's dom0 runs (ESRT corrupt)")
    # the model's booted/halt rule predicts the death: nothing explains a model that misses it
    assert harness.explain("bsdata-valid2-xen-4.17-mapbs+linux-6.12", [diff]) is None
    halted = {**predicted, "booted": False, "sysfs_present": False, "sysfs": {},
              "halt": "Xen hypervisor allocated kernel memory conflicts with E820 map"}
    assert harness.compare(real, halted) == []
    other = {**halted, "halt": "Xen hypervisor allocated page table memory conflicts with E820 map"}
    (d2,) = harness.compare(real, other)
    assert d2.startswith("model: dom0 halts (Xen hypervisor allocated page table")
    cut = DIED_LOG.split("Xen hypervisor allocated kernel")[0]
    ran = harness.parse_serial(cut
                               + "EHMARK begin\r\nEHMARK end\r\n")
    (d3,) = harness.compare(ran, halted)
    assert d3.endswith("real: dom0 ran")
    assert harness.Row(real, predicted, [diff], None).verdict == "**no**"
    assert harness.Row(real, halted, [], None).verdict == "yes"
    assert harness.Row({**real, "dom0_died": None, "booted": False}).verdict == "did not boot"
    # a log that just stops (a hang, a timeout) is no death
    cut = harness.parse_serial(DIED_LOG.split("Xen hypervisor")[0])
    assert not cut["booted"] and cut["dom0_died"] is None
    assert harness.summarize_real(real).startswith("dom0 died: `Xen hypervisor allocated")
    # a boot that reached /init never counts as died, whatever its log holds
    ok = harness.parse_serial(DIED_LOG + "EHMARK begin\r\nEHMARK end\r\n")
    assert ok["booted"] and ok["dom0_died"] is None


def test_machine_mismatch_checks_the_boot_mode():
    mb = harness.Case.make("bsdata", "valid2", "xen-4.17-multiboot2+linux-6.12")
    efi = harness.Case.make("bsdata", "valid2", "xen-4.17+linux-6.12")
    right_mb = {"role": "xen-dom0", "xen_version": "4.17.7", "xen_boot": "multiboot2",
                "linux_version": "6.12.118",
                "label": "Xen 4.17.7 (multiboot2), Linux 6.12.118 dom0"}
    assert harness.machine_mismatch(mb, "xl+d", right_mb) is None
    assert harness.machine_mismatch(efi, "xl+d", right_mb) == "boot:multiboot2"
    assert harness.machine_mismatch(mb, "d", {**right_mb, "xen_boot": None}) is None
    assert harness.machine_mismatch(mb, "d", {**right_mb, "xen_boot": None, "label":
                                              "Xen 4.17.7 (efi), Linux 6.12.118 dom0"}) == (
        "label:efi")
    assert harness.machine_mismatch(mb, "d", {**right_mb, "xen_boot": "efi"}) == "boot:efi"
    # a label that leaves the mode open claims nothing
    assert harness.machine_mismatch(mb, "d", {**right_mb, "xen_boot": None, "label":
                                              "Xen 4.17.7 (boot mode ?), Linux 6.12.118 "
                                              "dom0"}) is None
    mp = harness.Case.make("bsdata", "valid2", "xen-4.17-mapbs+linux-6.12")
    assert harness.machine_mismatch(mp, "d", {**right_mb, "xen_boot": "efi", "label":
                                              "Xen 4.17.7 (efi), Linux 6.3+ dom0"}) is None


def test_known_explain_wrong_glob_matches_added_stacks(monkeypatch):
    monkeypatch.setattr(harness, "KNOWN_EXPLAIN_WRONG", (
        ("bsdata-*-xen-4.17-fixed+linux-6.12", "t+d", "intact", "why"),))
    assert harness._known_wrong("bsdata-valid2-xen-4.17-fixed+linux-6.12", "t+d", "intact")
    assert not harness._known_wrong("bsdata-valid2-xen-4.17+linux-6.12", "t+d", "intact")
    assert not harness._known_wrong("rtdata-valid2-xen-4.17-fixed+linux-6.12", "t+d", "intact")
    assert not harness._known_wrong("bsdata-valid2-xen-4.17-fixed+linux-6.12", "tgz", "intact")


def test_observed_esrt_reads_the_boot_mode_and_label():
    doc = {"machine": {"role": "xen-dom0", "xen_version": "4.17.7", "xen_boot": "multiboot2",
                       "linux_version": "6.12.118"},
           "paths": {"observed": {"label": "Xen 4.17.7 (multiboot2), Linux 6.12.118 dom0",
                                  "tables": {str(harness.ESRT_GUID): {"verdict": "corrupt",
                                                                       "reason": "r"}}}}}
    obs = harness.observed_esrt(doc, "xen-4.17-multiboot2+linux-6.12")
    assert (obs["xen_boot"], obs["label"], obs["verdict"]) == (
        "multiboot2", "Xen 4.17.7 (multiboot2), Linux 6.12.118 dom0", "corrupt")
    del doc["paths"]["observed"]
    doc["paths"]["xen-4.17"] = {"label": "preset", "tables": {}}
    obs = harness.observed_esrt(doc, "xen-4.17-multiboot2+linux-6.12")
    assert obs["from"] == "preset xen-4.17" and obs["label"] is None


@pytest.mark.skipif(shutil.which(harness.GRUB_MKSTANDALONE) is None
                    or not harness.GRUB_MODULES_DIR.is_dir(),
                    reason="grub-mkstandalone not installed (bench/realfw/install-deps)")
def test_build_grub_embeds_the_cfg(tmp_path):
    efi = harness.build_grub(tmp_path / "grub")
    data = efi.read_bytes()
    assert data[:2] == b"MZ"  # a PE image OVMF can start
    pe = int.from_bytes(data[0x3C:0x40], "little")
    assert data[pe:pe + 4] == b"PE\0\0"
    assert int.from_bytes(data[pe + 4:pe + 6], "little") == 0x8664  # x86-64
    # the memdisk (an uncompressed tar in the image) holds the embedded grub.cfg
    assert harness.GRUB_EMBEDDED_CFG.encode() in data
    with contextlib.redirect_stdout(io.StringIO()):
        assert harness.build_grub(tmp_path / "grub") == efi  # cached: not rebuilt


def test_stacks_option_narrows_the_matrix(capsys):
    assert harness.main(["--list", "--stacks", "xen-4.17-mapbs+linux-6.12",
                         "--placements", "bsdata,rtdata"]) == 0
    assert capsys.readouterr().out.split() == [
        f"{p}-{c}-xen-4.17-mapbs+linux-6.12" for p in ("bsdata", "rtdata")
        for c in harness.CONTENTS]
    with pytest.raises(SystemExit):
        harness.main(["--list", "--stacks", "xen-4.18+linux-6.12"])


# -- the fixed Xen ---------------------------------------------------------------------------

# Only the lines the patch's hunk names (its context, lines 622-626 of boot.c), blank above.
BOOT_C = "\n" * 621 + """\
    if ( esrt_ptr->FwResourceCount > available_len / sizeof(esrt_ptr->Entries[0]) )
        return 0;

    return esrt_ptr->FwResourceCount * sizeof(esrt_ptr->Entries[0]);
}
"""


@pytest.mark.skipif(shutil.which("patch") is None, reason="patch not installed")
def test_esrt_size_patch_counts_the_header(tmp_path):
    import subprocess

    f = tmp_path / "xen" / "common" / "efi" / "boot.c"
    f.parent.mkdir(parents=True)
    f.write_text(BOOT_C)
    assert BOOT_C.splitlines()[624].startswith("    return esrt_ptr->FwResourceCount")  # l.625
    proc = subprocess.run(["patch", "-p1", "--forward"], input=harness.XEN_ESRT_SIZE_PATCH,
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    body = f.read_text()
    assert "return esrt_ptr->FwResourceCount * sizeof" not in body
    ret = body[body.index("    return offsetof"):body.index(";", body.index("    return offsetof"))]
    # header (16 bytes: the offset of Entries) + 40 x count, as UEFI 2.10 23.4 lays it out
    assert "offsetof(EFI_SYSTEM_RESOURCE_TABLE, Entries)" in ret
    assert "esrt_ptr->FwResourceCount * sizeof(esrt_ptr->Entries[0])" in ret
    # applying it twice is refused, not doubled
    again = subprocess.run(["patch", "-p1", "--forward", "--dry-run"],
                           input=harness.XEN_ESRT_SIZE_PATCH, cwd=tmp_path,
                           capture_output=True, text=True, check=False)
    assert again.returncode != 0


def test_fixed_stack_case_esp_and_key(fake_builds, tmp_path, monkeypatch):
    fixed_efi = tmp_path / "fixed-xen.efi"
    fixed_efi.write_bytes(b"fixed")
    monkeypatch.setattr(harness, "build_fixed_xen", lambda: fixed_efi)
    case = harness.Case.make("bsdata", "valid2", "xen-4.17-fixed+linux-6.12")
    assert (case.xen, case.boot, case.mapbs, case.fixed) == (True, "efi", False, True)
    assert not harness.Case.make("bsdata", "valid2", "xen-4.17+linux-6.12").fixed
    files = harness.esp_inputs(case)
    assert files["EFI/xen/xen.efi"] == fixed_efi
    assert files["efihandoff/next.txt"] == b"\\EFI\\xen\\xen.efi\n\n"
    spec = parse_path(harness.PATH_FOR_STACK[case.stack])
    assert spec.xen_esrt_size_fixed and spec.linux == (6, 12)
    assert harness.FALLBACK_PRESET[case.stack] == "xen-fixed"
    key = harness.case_key(case)
    monkeypatch.setattr(harness, "XEN_ESRT_SIZE_PATCH", harness.XEN_ESRT_SIZE_PATCH + " ")
    assert harness.case_key(case) != key  # a new patch is a new boot


def test_fixed_xen_version_and_missing_source(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "XEN_SRC", tmp_path / "xen-src")
    assert harness.xen_source_version() is None and harness.fixed_xen_version() is None
    with pytest.raises(RuntimeError, match="install-deps"):
        harness.build_fixed_xen(tmp_path / "out")
    (tmp_path / "xen-src").mkdir()
    (tmp_path / "xen-src" / "VERSION").write_text("4.17.5+72-g01140da4e8-1\n")
    assert harness.fixed_xen_version() == "4.17.5"
    (tmp_path / "xen-src" / "VERSION").write_text("1:4.17.7+13-g2445b30a44-0+deb12u1\n")
    assert harness.fixed_xen_version() == "4.17.7"
    case = harness.Case.make("bsdata", "valid2", "xen-4.17-fixed+linux-6.12")
    obs = {"role": "xen-dom0", "xen_version": "4.17.7", "linux_version": "6.12.118"}
    assert harness.machine_mismatch(case, "d", obs) is None
    assert harness.machine_mismatch(case, "d", {**obs, "xen_version": "4.17.5"}) == "xen:4.17.5"


def test_cached_only_lists_booted_cases(capsys, monkeypatch):
    booted = {"rtdata-valid2-xen-4.17-fixed+linux-6.12", "bsdata-valid2-linux-6.1"}
    monkeypatch.setattr(harness, "cached_outcome",
                        lambda case, dump=False: {"booted": True} if case.id in booted else None)
    assert harness.main(["--list", "--cached-only"]) == 0
    assert capsys.readouterr().out.split() == [
        "bsdata-valid2-linux-6.1", "rtdata-valid2-xen-4.17-fixed+linux-6.12"]
    assert harness.main(["--cached-only", "--stacks", "xen-4.17-mapbs+linux-6.1",
                         "--no-install"]) == 2  # nothing booted: no case matches


def test_dom0_died_has_no_explain_sets_and_no_fwupd_difference():
    case = harness.Case.make("bsdata", "valid2", "xen-4.17-mapbs+linux-6.12")
    result = harness.explain_checks(case, DIED_LOG)
    assert result == {"truth": "dom0 died", "why": "Xen hypervisor allocated kernel memory "
                      "conflicts with E820 map", "short_copy": False, "sets": []}
    assert harness.explain_cell(result) == " = dom0 died"
    real = harness.parse_serial(DIED_LOG)
    assert harness.fwupd_both_ways(case, real, {"fwupd": [{"guid": "x"}]}) == []


def test_report_counts_every_stack(tmp_path):
    rows = [
        harness.Row({"case": "bsdata-valid2-xen-4.17-multiboot2+linux-6.12", "booted": True},
                    {"sysfs": {}}, [], None),
        harness.Row({"case": "rtdata-valid2-xen-4.17-multiboot2+linux-6.12", "booted": True},
                    {"sysfs": {}}, ["x"], None),
        harness.Row({**harness.parse_serial(DIED_LOG),
                     "case": "bsdata-valid2-xen-4.17-mapbs+linux-6.12"},
                    {"sysfs": {}}, ["dom0 died"], ["why"]),
        harness.Row({"case": "bsdata-valid2-linux-6.1", "booted": False}),
    ]
    lines = harness.stack_table(rows)
    assert lines[1] == "## By stack"
    body = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[5:]}
    assert list(body) == ["linux-6.1", "xen-4.17-multiboot2+linux-6.12",
                          "xen-4.17-mapbs+linux-6.12"]  # in STACKS order
    assert body["xen-4.17-multiboot2+linux-6.12"][:6] == [
        "`xen=4.17.7,boot=multiboot2,linux=6.12`", "2", "1", "0", "1", "0"]
    assert body["xen-4.17-mapbs+linux-6.12"][1:6] == ["1", "0", "1", "0", "0"]
    assert body["linux-6.1"][1:6] == ["1", "0", "0", "0", "1"]
    harness.write_report(rows, tmp_path / "r.md", {"v": "1"})
    assert "## By stack" in (tmp_path / "r.md").read_text()


def test_a_dom0_that_printed_its_log_is_never_judged_halted(tmp_path):
    # regression: explain's candidate machines (reduced to one table's region) have no RAM
    # described at 16 MiB; the halt rule took that gap for a conflict and every dom0 log of an
    # RT-data ESRT read "the dom0 never starts" (unk?) instead of intact
    data = Path(__file__).parent / "data" / "rtdata-valid2-xen-4.17+linux-6.12.serial.log"
    files = harness.write_evidence(data.read_text(), tmp_path)
    for names in (("dmesg.txt",), ("tree", "dmesg.txt")):
        doc = harness.run_explain([files[n] for n in names])
        assert all(p.get("booted") is not False for p in doc["paths"].values())
        esrt = doc["paths"]["observed"]["tables"][str(harness.ESRT_GUID)]
        assert "never starts" not in esrt["reason"]
        assert esrt["verdict"] == "intact", esrt
