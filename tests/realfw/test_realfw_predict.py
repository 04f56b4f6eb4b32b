"""The model against the real boots: predict() on the bench's machine (ovmf-q35.toml + the
case's ESRT), hand-worked expectations, and agreement with real serial logs (committed excerpts
under data/, and every cached boot of the matrix when bench/realfw/cache holds it)."""

from __future__ import annotations

import struct
import tomllib
from pathlib import Path

import harness
import pytest

from efihandoff.sources.scenario import build_machine
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryType

DATA = Path(__file__).parent / "data"
EXCERPTS = sorted(DATA.glob("*.serial.txt"))

ENTRY0 = {"fw_class": "ddc0ee61-e7f0-4e7d-acc5-c070a398838e\n", "fw_type": "1\n",
          "fw_version": "65586\n", "lowest_supported_fw_version": "65582\n",
          "capsule_flags": "0xfe\n", "last_attempt_version": "18472960\n",
          "last_attempt_status": "1\n"}
ENTRY1 = {"fw_class": "671d19d0-d43c-4852-98d9-1ce16f9967e4\n", "fw_type": "2\n",
          "fw_version": "3090287969\n", "lowest_supported_fw_version": "1\n",
          "capsule_flags": "0x8010\n", "last_attempt_version": "0\n",
          "last_attempt_status": "0\n"}


def _case(case_id: str) -> harness.Case:
    placement, content, stack = case_id.split("-", 2)
    return harness.Case.make(placement, content, stack)


def _entry(p: dict, i: int) -> dict:
    prefix = f"entries/entry{i}/"
    return {k[len(prefix):]: v for k, v in p["sysfs"].items() if k.startswith(prefix)}


# -- the scenario -------------------------------------------------------------------------------


def test_scenario_layout_mirrors_the_real_machine():
    m = build_machine(harness.scenario_for(_case("bsdata-valid2-linux-6.12")))
    assert [f for f in m.memory_map.validate() if str(f.severity) == "error"] == []
    ram = sum(d.num_pages << 12 for d in m.memory_map.descriptors if d.phys_addr < 1 << 30)
    assert ram == (1 << 30) - 0x60000  # q35 -m 1G, less the legacy hole 0xa0000-0xfffff
    names = {"eb9d2d31-2d88-11d3-9a16-0090273fc14d": "SMBIOS",
             "eb9d2d30-2d88-11d3-9a16-0090273fc14d": "ACPI",
             "8868e871-e4f1-11d3-bc22-0080c73c8881": "ACPI 2.0",
             "dcfa911d-26eb-469f-a220-38b7dc461220": "MEMATTR",
             str(harness.ESRT_GUID): "ESRT",
             "5568e427-68fc-4f3d-ac74-ca555231cc68": "INITRD"}
    got = [(names[str(t.guid)], m.lookup(t.table).type) for t in m.config_tables]
    # the order and memory types the real kernel and the real dump show
    assert got == [("SMBIOS", MemoryType.EfiRuntimeServicesData),
                   ("ACPI", MemoryType.EfiACPIReclaimMemory),
                   ("ACPI 2.0", MemoryType.EfiACPIReclaimMemory),
                   ("MEMATTR", MemoryType.EfiBootServicesData),
                   ("ESRT", MemoryType.EfiBootServicesData),
                   ("INITRD", MemoryType.EfiLoaderData)]
    xen = build_machine(harness.scenario_for(_case("bscode-valid2-xen-4.17+linux-6.12")))
    assert [str(t.guid) for t in xen.config_tables][-1] == str(harness.ESRT_GUID)  # no stub
    assert xen.lookup(xen.config_tables[-1].table).type == MemoryType.EfiBootServicesCode


def test_scenario_toml_is_the_same_scenario():
    for case in (_case("bsdata-valid5-linux-6.1"), _case("reserved-count0-xen-4.17+linux-6.1")):
        assert tomllib.loads(harness.scenario_toml(case)) == harness.scenario_for(case)


def test_memattr_entries_sum_to_the_runtime_regions():
    # edk2 MemoryAttributesTable.c: one entry per runtime image section or runtime data region;
    # together they cover the runtime regions of the map exactly.
    data = tomllib.loads(harness.SCENARIO.read_text())
    memattr = next(t for t in data["table"] if t["name"] == "MEMATTR")
    covered = sum(e["pages"] for e in memattr["entry"]) << 12
    runtime = sum(r["end"] + 1 - r["start"] for r in data["region"]
                  if r["type"] in ("EfiRuntimeServicesCode", "EfiRuntimeServicesData"))
    assert covered == runtime
    assert len(memattr["entry"]) == 22  # the real kernel printed 22 "memattr:" ranges


# -- hand-worked predictions ----------------------------------------------------------------


def test_predict_contract():
    p = harness.predict(_case("bsdata-valid2-linux-6.12"))
    assert {"sysfs_present", "sysfs", "efi_lines", "esrt_lines", "unusable", "injected",
            "fwupd"} <= set(p)


def test_native_keeps_the_bs_data_esrt_exactly():
    for stack, rev in (("linux-6.1", "2.70"), ("linux-6.12", "2.7")):
        p = harness.predict(_case(f"bsdata-valid2-{stack}"))
        # Linux efi_systab_report_header: "%u.%.02u" in 6.1, "%u.%u" with trailing 0 cut later
        assert p["efi_lines"][0] == f"EFI v{rev} by EDK II"
        assert p["sysfs_present"] and _entry(p, 0) == ENTRY0 and _entry(p, 1) == ENTRY1
        assert p["sysfs"]["fw_resource_count"] == "2\n"
        (line,) = p["esrt_lines"]
        assert harness.normalise_addresses(line) == "Reserving ESRT space from A to A+0x60."
        assert [n for n, _, _ in harness.config_tokens(p["efi_lines"])] == [
            "SMBIOS", "ACPI", "ACPI 2.0", "MEMATTR", "ESRT", "INITRD"]
        assert p["unusable"] == []


def test_xen_4_17_short_copy_ends_in_the_pool_tail():
    p = harness.predict(_case("bsdata-valid2-xen-4.17+linux-6.12"))
    assert _entry(p, 0) == ENTRY0
    e1 = _entry(p, 1)
    # Xen 4.17 get_esrt_size: 40 * 2 = 80 bytes, the header forgotten; efi_relocate_esrt
    # copies them into an edk2 pool of 80 bytes, so what Linux maps as entry1's last 16 bytes
    # is the POOL_TAIL: "ptal", Reserved (never written), u64 size 24 (head) + 80 + 16 = 120.
    assert e1["lowest_supported_fw_version"] == f"{struct.unpack('<I', b'ptal')[0]}\n"
    # the tail's Reserved u32, never written: OVMF's DEBUG build freed the ACPI-reclaim bin page
    # at start-up (Page.c CoreAddMemoryDescriptor, CoreConvertPagesEx DEBUG_CLEAR_MEMORY 0xAF)
    assert e1["capsule_flags"] == "0xafafafaf\n"
    assert e1["last_attempt_version"] == "120\n"
    assert e1["last_attempt_status"] == "0\n"  # the size's high half
    assert {k: e1[k] for k in ("fw_class", "fw_type", "fw_version")} == {
        k: ENTRY1[k] for k in ("fw_class", "fw_type", "fw_version")}
    assert p["unusable"] == ["MEMATTR"]  # OVMF's MEMATTR is in BS data
    assert harness._esrt_moved(p) is True  # Xen copied it to ACPI reclaim
    dev1 = p["fwupd"][1]
    # 0xafafafaf has PERSIST_ACROSS_RESET (bit 16): fwupd's x86_64 fix-up adds nothing
    assert dev1["flags"] == 0xAFAFAFAF and dev1["lowest"] == 1818326128
    p5 = harness.predict(_case("bsdata-valid5-xen-4.17+linux-6.12"))
    assert _entry(p5, 4)["last_attempt_version"] == f"{24 + 200 + 16}\n"


def test_refusals_by_version_and_type():
    p = harness.predict(_case("acpireclaim-valid2-linux-6.1"))
    # 6.1 efi_esrt_init takes BS data and RT data only (ACPI reclaim from 6.3, 01de145dc7fb)
    assert not p["sysfs_present"] and p["esrt_lines"] == ["ESRT header is not in the memory map."]
    assert harness.predict(_case("acpireclaim-valid2-linux-6.12"))["sysfs_present"]
    p = harness.predict(_case("bsdata-version2-linux-6.12"))
    assert p["esrt_lines"] == ["Unsupported ESRT version 2."]
    p = harness.predict(_case("bsdata-valid2-xen-4.17+linux-6.1"))
    # 6.1 dom0: no EFI_MEMMAP, efi_esrt_init returns silently; no allowlist, no "unusable"
    assert (p["sysfs_present"], p["esrt_lines"], p["unusable"]) == (False, [], [])
    p = harness.predict(_case("bscode-count0-xen-4.17+linux-6.12"))
    assert p["unusable"] == ["MEMATTR", "ESRT"] and not p["sysfs_present"]
    p = harness.predict(_case("reserved-valid2-xen-4.17+linux-6.12"))
    # reserved memory is on the dom0 allowlist, but not an ESRT type and has no RUNTIME
    assert p["unusable"] == ["MEMATTR"]
    assert p["esrt_lines"] == ["ESRT header is not in the memory map."]
    p = harness.predict(_case("rtdata-count0-linux-6.12"))
    assert p["sysfs_present"] and p["sysfs"]["fw_resource_count"] == "0\n"
    assert not any(k.startswith("entries/") for k in p["sysfs"])


# -- agreement with real boots ---------------------------------------------------------------


@pytest.mark.parametrize("path", EXCERPTS, ids=[p.name.split(".serial")[0] for p in EXCERPTS])
def test_model_agrees_with_committed_real_boot(path):
    real = harness.parse_serial(path.read_text())
    case = _case(path.name.split(".serial")[0])
    assert real["booted"]
    diffs = harness.compare(real, harness.predict(case))
    assert diffs == [] or harness.explain(case.id, diffs) is not None, diffs


@pytest.mark.parametrize("case", harness.matrix(), ids=lambda c: c.id)
def test_model_agrees_with_cached_real_boot(case):
    real = harness.cached_outcome(case)
    if real is None:
        pytest.skip("not booted yet: bench/realfw/run")
    # A dom0 that died before /init (every real -mapbs boot here) is compared too: the
    # difference must be one the harness explains.
    assert real["booted"] or real.get("dom0_died")
    diffs = harness.compare(real, harness.predict(case))
    assert diffs == [] or harness.explain(case.id, diffs) is not None, diffs


def test_compare_catches_a_model_that_is_wrong():
    # the agreement tests can fail: a prediction for the wrong stack disagrees with the boot
    real = harness.parse_serial((DATA / "bsdata-valid2-xen-4.17+linux-6.12.serial.txt")
                                .read_text())
    wrong = harness.predict(_case("bsdata-valid2-linux-6.12"))
    diffs = harness.compare(real, wrong)
    assert any(d.startswith("sysfs entries/entry1/lowest") for d in diffs)
    assert any(d.startswith("unusable") for d in diffs)
    assert any(d.startswith("efi tables") for d in diffs)  # INITRD
    assert harness.explain("bsdata-valid2-xen-4.17+linux-6.12", diffs) is None


# -- what the model cannot know --------------------------------------------------------------


def test_pool_tail_reserved_word_is_the_debug_builds_clear_value():
    """Real: after Xen 4.17's short copy the last entry's capsule_flags is 0xafafafaf on OVMF
    2022.11 (Debian). It is the POOL_TAIL's Reserved u32, which edk2 never writes
    (MdeModulePkg/Core/Dxe/Mem/Pool.c CoreAllocatePoolI sets Signature and Size only), in a
    fresh page of the ACPI-reclaim bin: Page.c CoreAddMemoryDescriptor allocates and frees
    every memory-type bin at start-up, and CoreConvertPagesEx runs DEBUG_CLEAR_MEMORY over what
    it frees (PcdDebugClearMemoryValue 0xAF) in a DEBUG build, which Debian's OVMF is. The
    scenario says so (firmware_build = "debug", the ACPI-reclaim [[pool]] page from the real
    addresses), so the model predicts the word exactly, whatever the random fill's seed."""
    real = harness.parse_serial((DATA / "bsdata-valid2-xen-4.17+linux-6.12.serial.txt")
                                .read_text())
    assert real["sysfs"]["entries/entry1/capsule_flags"] == "0xafafafaf\n"
    case = _case("bsdata-valid2-xen-4.17+linux-6.12")
    p = harness.predict(case)
    assert [k for k, v in p["sysfs"].items() if v is None] == []
    assert p["sysfs"] == real["sysfs"]
    from efihandoff.paths.presets import parse_path
    from efihandoff.paths.simulate import simulate

    spec = parse_path(harness.PATH_FOR_STACK[case.stack])
    runs = [simulate(build_machine(harness.scenario_for(case, seed)), spec) for seed in (0, 1, 2)]
    assert {r.sysfs["efi/esrt/entries/entry1/capsule_flags"] for r in runs} == {"0xafafafaf\n"}
    assert all(".unknown" not in r.sysfs for r in runs)  # nothing left the model cannot know
    res = runs[0]
    assert res.esrt_differences == [
        "entry1 lowest_supported_fw_version, capsule_flags, last_attempt_version differ"]
    assert str(res.esrt.verdict) == "corrupt"
    assert harness.compare(real, p) == []
    p["sysfs"]["entries/entry0/capsule_flags"] = None
    assert harness.compare(real, p) == []  # None accepts any value ...
    del p["sysfs"]["entries/entry0/capsule_flags"]
    assert harness.compare(real, p) != []  # ... but the file must be predicted


def test_a_release_build_leaves_the_word_unknown():
    """The same machine as a RELEASE build: nothing clears the bin page, so the word is bytes
    nobody wrote; the tree still has the file and lists it in .unknown, fwupd's flags are
    None."""
    case = _case("bsdata-valid2-xen-4.17+linux-6.12")
    from efihandoff.paths.presets import parse_path
    from efihandoff.paths.simulate import simulate

    spec = parse_path(harness.PATH_FOR_STACK[case.stack])
    for fill in ("random", "unknown"):
        data = harness.scenario_for(case) | {"firmware_build": "release", "memory_fill": fill}
        res = simulate(build_machine(data), spec)
        assert res.sysfs[".unknown"] == "efi/esrt/entries/entry1/capsule_flags\n"
        assert res.fwupd_devices[1].flags is None and res.fwupd_devices[1].lowest == 1818326128


# Where the model's firmware puts the injector's ESRT and Xen's copy, against every address the
# real boots print (committed excerpts and the cached matrix): the injector's line and the ESRT
# the kernel names. The one address a single scenario cannot hold: a BS-data ESRT under Xen
# (0x3e673b18 real, 0x3e5e3a98 in the model: the bare-metal boots' block, see ovmf-q35.toml).
_XEN_BS_DATA = 0x3E673B18


def _real_boots() -> list[tuple[str, dict]]:
    out = [(p.name.split(".serial")[0], harness.parse_serial(p.read_text()))
           for p in sorted(DATA.glob("*.serial.*"))]
    for case in harness.matrix():
        real = harness.cached_outcome(case)
        if real is not None and real["booted"]:
            out.append((case.id, real))
    return out


def test_model_addresses_match_the_real_boots():
    checked = 0
    for case_id, real in _real_boots():
        (inj,) = [r for r in real["injected"] if r["guid"] == str(harness.ESRT_GUID)]
        p = harness.predict(_case(case_id))
        named = {n: a for n, a, _ in harness.config_tokens(real["efi_lines"])}
        model = {n: a for n, a, _ in harness.config_tokens(p["efi_lines"])}
        if "ESRT" not in named:
            continue  # a stack whose kernel never names the table
        if inj["address"] == _XEN_BS_DATA:
            assert p["injected"][0]["address"] == 0x3E5E3A98
            if named["ESRT"] == _XEN_BS_DATA:
                continue  # the dom0 names the original: the known difference
        else:
            assert p["injected"][0]["address"] == inj["address"], case_id
        assert model["ESRT"] == named["ESRT"], case_id  # Xen's copy too: 0x3f773018
        for name in ("SMBIOS", "ACPI", "ACPI 2.0"):
            assert model[name] == named[name], (case_id, name)
        checked += 1
    assert checked >= 10


def test_pool_tail_in_the_real_dump():
    """The real memory under Xen shows the whole pool block as the model lays it out: POOL_HEAD
    "phd0", type 9 (ACPI reclaim), size 120; the ESRT; POOL_TAIL "ptal", size 120; and both
    Reserved words 0xafafafaf (the freed-block fill, see above)."""
    case = _case("bsdata-valid2-xen-4.17+linux-6.12")
    real = harness.cached_outcome(case, dump=True)
    if real is None:
        pytest.skip("no cached dump: bench/realfw/run --cases "
                    "'bsdata-valid2-xen-4.17+linux-6.12' --dump")
    from efihandoff.sources.dump import read_dump

    esrt = next(a for n, a, _ in harness.config_tokens(real["efi_lines"]) if n == "ESRT")
    with read_dump(real["dump"]) as ev:
        block = ev.memory.read(esrt - 24, 24 + 80 + 16)
    head = struct.unpack_from("<4sIIIQ", block, 0)
    tail = struct.unpack_from("<4sIQ", block, 24 + 80)
    assert head == (b"phd0", 0xAFAFAFAF, 9, 0xAFAFAFAF, 120)
    assert tail == (b"ptal", 0xAFAFAFAF, 120)
    assert block[24:24 + 80] == harness.esrt_bytes("valid2")[:80]
    assert Guid.from_bytes(block, 24 + 16) == Guid.parse("ddc0ee61-e7f0-4e7d-acc5-c070a398838e")
