"""explain on what a Xen dom0 user has: dom0 dmesg, xl dmesg, an excerpt, a /sys/firmware copy.

The lines below are in the shapes the bench's real Xen 4.17.7 + Linux 6.12 boots print (see
tests/realfw/data); every expectation is worked out by hand from the facts file (section
numbers in the comments): a dom0 sees the ESRT after Xen's relocation (5.4), so an ESRT in
EfiACPIReclaimMemory is either the firmware's or Xen's copy of a boot-services-data original,
and only the copy's POOL_TAIL (5.3: 16 bytes short before 3ea44aa78c) tells them apart.
"""

from __future__ import annotations

import struct
from pathlib import Path

from efihandoff.explain import explain
from efihandoff.outputs.json import explain_document
from efihandoff.sources import Role, read_source
from efihandoff.uefi.esrt import ESRT_GUID

ESRT = str(ESRT_GUID)

LINUX = (
    "[    0.000000] Linux version 6.12.118+deb12-amd64 (debian-kernel@example.org) "
    "(x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP Debian 6.12.118-1\n"
)
DOM0_E820 = """\
[    0.000000] Xen: [mem 0x0000000000000000-0x000000000007ffff] usable
[    0.000000] Xen: [mem 0x0000000000100000-0x0000000020171fff] usable
[    0.000000] Xen: [mem 0x0000000020172000-0x000000003eaa0fff] unusable
[    0.000000] Xen: [mem 0x000000003f76c000-0x000000003f77dfff] ACPI data
[    0.000000] Xen: [mem 0x000000003f77e000-0x000000003f7fdfff] ACPI NVS
"""
EFI = (  # match_config_table ends every entry with a space, the last one too
    "[    0.000000] efi: EFI v2.7 by EDK II\n"
    "[    0.000000] efi: SMBIOS=0x3f520000 ACPI=0x3f77d000 ACPI 2.0=0x3f77d014 "
    "(MEMATTR=0x3e5e2018 unusable) ESRT=0x3f773018 \n"
)
RESERVING = (
    "[    0.082369] esrt: Reserving ESRT space from 0x000000003f773018 to 0x000000003f773078.\n"
)
XL_DMESG = """\
(XEN) Xen version 4.17.7 (Debian 4.17.7+13-g2445b30a44-0+deb12u1) (pkg-xen-devel@example.org) \
(x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0) debug=n Wed Nov  4 16:52:28 UTC 2026
(XEN) Bootloader: EFI
(XEN) EFI memory map:
(XEN)  0000000000000-000000009dfff type=7 attr=000000000000000f
(XEN)  0000000100000-000003e5e1fff type=7 attr=000000000000000f
(XEN)  000003e5e2000-000003e5e2fff type=4 attr=000000000000000f
(XEN)  000003e5e3000-000003f51ffff type=7 attr=000000000000000f
(XEN)  000003f520000-000003f520fff type=6 attr=800000000000000f
(XEN)  000003f76c000-000003f77dfff type=9 attr=000000000000000f
(XEN)  000003f77e000-000003f7fdfff type=10 attr=000000000000000f
"""
FW_CLASS = ("ddc0ee61-e7f0-4e7d-acc5-c070a398838e", "671d19d0-d43c-4852-98d9-1ce16f9967e4")
PTAL = struct.unpack("<I", b"ptal")[0]  # edk2 POOL_TAIL signature as a u32: 1818326128


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def _tree(tmp: Path, *, short: bool) -> Path:
    """A dom0's /sys/firmware copy as collect archives it: a PV dom0's efi/ has config_table,
    esrt, fw_platform_size, systab (no runtime-map, no fw_vendor); /sys/hypervisor says Xen."""
    root = tmp / "tree"
    efi = root / "sys" / "firmware" / "efi"
    (efi / "esrt" / "entries").mkdir(parents=True)
    (efi / "systab").write_text("SMBIOS=0x3f520000\nACPI20=0x3f77d014\nACPI=0x3f77d000\n")
    (efi / "config_table").write_text("0x3f7a7018\n")
    (efi / "fw_platform_size").write_text("64\n")
    for name, value in (("fw_resource_count", 2), ("fw_resource_count_max", 2)):
        (efi / "esrt" / name).write_text(f"{value}\n")
    (efi / "esrt" / "fw_resource_version").write_text("1\n")
    # fwupd's fixture entries 0 and 1 (facts 6.3); after Xen 4.17's copy of 80 of 96 bytes the
    # last 16 bytes are the pool tail: "ptal", the unwritten Reserved (0xafafafaf under OVMF's
    # DEBUG_CLEAR_MEMORY), Size = 80 + 24 + 16 = 120 (edk2 Pool.c, facts 5.4).
    entries = [
        (FW_CLASS[0], 1, 65586, 65582, 0xFE, 18472960, 1),
        (FW_CLASS[1], 2, 3090287969, PTAL, 0xAFAFAFAF, 120, 0)
        if short
        else (FW_CLASS[1], 2, 3090287969, 1, 0x8010, 0, 0),
    ]
    for i, (guid, kind, ver, lowest, flags, lav, las) in enumerate(entries):
        e = efi / "esrt" / "entries" / f"entry{i}"
        e.mkdir()
        for fname, val in (
            ("fw_class", guid),
            ("fw_type", kind),
            ("fw_version", ver),
            ("lowest_supported_fw_version", lowest),
            ("capsule_flags", f"{flags:#x}"),
            ("last_attempt_version", lav),
            ("last_attempt_status", las),
        ):
            (e / fname).write_text(f"{val}\n")
    hv = root / "sys" / "hypervisor"
    (hv / "version").mkdir(parents=True)
    (hv / "type").write_text("xen\n")
    for name, value in (("major", "4"), ("minor", "17"), ("extra", ".7")):
        (hv / "version" / name).write_text(value + "\n")
    return root


def _explain(*paths: Path):
    return explain([v for p in paths for v in read_source(p)])


def _esrt(ex, pid: str):
    return ex.results[pid].tables[ESRT_GUID]


def test_roles_from_what_each_view_shows(tmp_path: Path) -> None:
    excerpt = _write(tmp_path, "excerpt.txt", EFI + RESERVING)  # marks: only a dom0 prints them
    xl = _write(tmp_path, "xl.txt", XL_DMESG)
    bare = _write(tmp_path, "bare.txt", "[    0.000000] efi: ACPI=0x3f77d000 ESRT=0x3f773018 \n")
    plain = EFI.replace("(MEMATTR=0x3e5e2018 unusable) ", "")
    serial = _write(tmp_path, "serial.txt", XL_DMESG + plain)
    assert [v.role for v in read_source(excerpt)] == [Role.XEN_DOM0]
    assert [v.role for v in read_source(xl)] == [Role.XEN_HYPERVISOR]
    assert [v.role for v in read_source(bare)] == [Role.UNKNOWN]
    # Linux lines on Xen's console are the dom0's
    assert [v.role for v in read_source(serial)] == [Role.XEN_DOM0]
    assert read_source(_tree(tmp_path, short=False))[0].role is Role.XEN_DOM0


def test_xl_dmesg_alone_is_never_absent(tmp_path: Path) -> None:
    ex = _explain(_write(tmp_path, "xl.txt", XL_DMESG))
    doc = explain_document(ex)
    assert doc["machine"]["role"] == "xen-hypervisor"
    assert doc["machine"]["xen_version"] == "4.17.7"
    verdicts = {p["tables"][ESRT]["verdict"] for p in doc["paths"].values()}
    assert verdicts == {"unknown"}
    assert "lists the configuration tables" in doc["paths"]["native"]["tables"][ESRT]["reason"]
    assert not any("no ESRT" in a for a in ex.advice)


def test_dom0_dmesg_sees_a_copy_or_the_original(tmp_path: Path) -> None:
    # The ESRT in the dom0's "ACPI data" (E820 of a PV dom0: the host's ACPI ranges) passed the
    # allowlist and efi_esrt_init: the firmware's own ACPI-reclaim table, or Xen 4.17.7's copy
    # of a BS-data original. Intact in one case, corrupt in the other: unknown, both named.
    ex = _explain(_write(tmp_path, "dmesg.txt", LINUX + DOM0_E820 + EFI + RESERVING))
    doc = explain_document(ex)
    assert doc["machine"]["role"] == "xen-dom0"
    assert doc["machine"]["linux_version"] == "6.12.118"
    obs = doc["paths"]["observed"]["tables"][ESRT]
    assert obs["verdict"] == "unknown"
    assert {c["verdict"] for c in obs["candidates"]} >= {"intact", "corrupt"}
    assert _esrt(ex, "xen-4.16").verdict.value == "unknown"  # refused if it was BS data
    assert _esrt(ex, "native").verdict.value == "intact"  # every placement survives natively
    assert not any("fwupd sees the ESRT unchanged" in a for a in ex.advice)


def test_xl_dmesg_joins_the_dom0_log(tmp_path: Path) -> None:
    dmesg = _write(tmp_path, "dmesg.txt", LINUX + DOM0_E820 + EFI + RESERVING)
    xl = _write(tmp_path, "xl.txt", XL_DMESG)
    ex = _explain(dmesg, xl)
    doc = explain_document(ex)
    assert doc["machine"]["role"] == "xen-dom0"
    assert doc["paths"]["observed"]["label"] == "Xen 4.17.7 (efi), Linux 6.12.118 dom0"
    # Xen's EFI map (type=9 over the ESRT) is the host's map; the copy question stays open.
    assert ex.memory_map_evidence == "Xen's EFI memory map"
    assert _esrt(ex, "observed").verdict.value == "unknown"
    assert all(p["tables"][ESRT]["verdict"] != "absent" for p in doc["paths"].values())


def test_the_dom0_tree_proves_the_short_copy(tmp_path: Path) -> None:
    dmesg = _write(tmp_path, "dmesg.txt", LINUX + DOM0_E820 + EFI + RESERVING)
    ex = _explain(dmesg, _tree(tmp_path, short=True))
    codes = [f.code for f in ex.findings]
    assert "esrt.xen-short-copy" in codes
    finding = next(f for f in ex.findings if f.code == "esrt.xen-short-copy")
    assert "entry1" in finding.message and "1818326128" in finding.message
    assert _esrt(ex, "observed").verdict.value == "corrupt"
    # The other paths start from the original, in boot-services data (facts 5.6, 5.7, 3.2):
    assert _esrt(ex, "native").verdict.value == "intact"
    assert _esrt(ex, "xen-4.16").verdict.value == "refused"
    assert _esrt(ex, "xen-fixed").verdict.value == "relocated"
    assert any("4.22" in a for a in ex.advice)


def test_the_tree_alone_gives_the_same_finding(tmp_path: Path) -> None:
    ex = _explain(_tree(tmp_path, short=True))
    assert "esrt.xen-short-copy" in [f.code for f in ex.findings]
    assert _esrt(ex, "observed").verdict.value == "corrupt"
    doc = explain_document(ex)
    assert doc["machine"]["xen_version"] == "4.17.7"
    assert doc["paths"]["observed"]["fwupd_devices"][1]["lowest"] == PTAL


def test_a_whole_tree_does_not_claim_a_short_copy(tmp_path: Path) -> None:
    ex = _explain(_tree(tmp_path, short=False))
    assert "esrt.xen-short-copy" not in [f.code for f in ex.findings]
    assert _esrt(ex, "observed").verdict.value == "unknown"


def test_stand_ins_are_null(tmp_path: Path) -> None:
    # "Unsupported ESRT version 2." gives the version only; "Reserving" gives count, not max.
    bare = "[    0.000000] efi: ESRT=0x3f773018 \n"
    v2 = _write(tmp_path, "v2.txt", LINUX + bare + "[    0.1] esrt: Unsupported ESRT version 2.\n")
    esrt = explain_document(_explain(v2))["esrt"]
    assert (esrt["fw_resource_count"], esrt["fw_resource_count_max"]) == (None, None)
    assert esrt["fw_resource_version"] == 2
    res = _write(tmp_path, "res.txt", LINUX + bare + RESERVING)
    doc = explain_document(_explain(res))
    assert doc["esrt"]["fw_resource_count"] == 2 and doc["esrt"]["fw_resource_count_max"] is None
    table = next(t for t in doc["tables"] if t["guid"] == ESRT)
    assert table["memory_type"] is None and len(table["memory_type_candidates"]) > 1


def test_a_guessed_type_is_may_be_in(tmp_path: Path) -> None:
    ex = _explain(_write(tmp_path, "excerpt.txt", EFI + RESERVING))
    reclaim = [f.message for f in ex.findings if f.code == "table.reclaimable"]
    assert reclaim and all("may be in" in m for m in reclaim)


def test_esrt_messages_narrow_by_the_printing_kernel(tmp_path: Path) -> None:
    # Linux 6.1 refuses an ACPI-reclaim ESRT ("not in the memory map", facts 3.2 step 3); 6.3+
    # takes it. A 6.1 log's refusal with E820 "ACPI data" keeps ACPI reclaim as its type.
    log = (
        "[    0.000000] Linux version 6.1.0-27-amd64 (debian-kernel@example.org) #1\n"
        "[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000003f76bfff] usable\n"
        "[    0.000000] BIOS-e820: [mem 0x000000003f76c000-0x000000003f77dfff] ACPI data\n"
        "[    0.000000] efi: ACPI=0x3f77d000 ESRT=0x3f773018 \n"
        "[    0.1] esrt: ESRT header is not in the memory map.\n"
    )
    ex = _explain(_write(tmp_path, "b61.txt", log))
    assert ex.who.role is Role.BARE_METAL
    assert _esrt(ex, "observed").verdict.value == "refused"
    # 6.3 accepts the type; what then happens depends on header bytes the log never gave.
    native = _esrt(ex, "native")
    assert native.verdict.value == "unknown" and "bytes" in native.reason
    assert ex.machine.lookup(0x3F773018).type_name == "EfiACPIReclaimMemory"


def test_dom0_unusable_ranges_are_not_host_types(tmp_path: Path) -> None:
    # An ESRT inside the dom0's "unusable" range (memory dom0_mem withheld) is host RAM of an
    # unknown RAM type, never EfiUnusableMemory.
    log = LINUX + DOM0_E820 + "[    0.000000] efi: ESRT=0x30000018 \n"
    ex = _explain(_write(tmp_path, "d.txt", log))
    cands = ex.machine.memory_type_candidates.get(0x30000018, ())
    md = ex.machine.lookup(0x30000018)
    assert 8 not in cands and (md is None or md.type != 8)


def test_advice_is_never_repeated(tmp_path: Path) -> None:
    dmesg = _write(tmp_path, "dmesg.txt", LINUX + DOM0_E820 + EFI + RESERVING)
    ex = _explain(dmesg, _tree(tmp_path, short=True))
    assert len(ex.advice) == len(set(ex.advice))


def test_html_names_who_printed_it(tmp_path: Path) -> None:
    from efihandoff.outputs.html import explain_html

    dmesg = _write(tmp_path, "dmesg.txt", LINUX + DOM0_E820 + EFI + RESERVING)
    page = explain_html(explain_document(_explain(dmesg, _write(tmp_path, "xl.txt", XL_DMESG))))
    assert "printed by <b>xen-dom0</b> (Xen 4.17.7, boot efi, Linux 6.12.118)" in page
    assert "observed stack <b>Xen 4.17.7 (efi), Linux 6.12.118 dom0</b>" in page


def test_no_pool_tail_rules_out_the_short_copy(tmp_path: Path) -> None:
    # Xen 4.17.7 copies short, and EDK II's AllocatePool always writes a POOL_TAIL after the
    # block: a dom0 ESRT in ACPI reclaim whose last entry holds real values was not copied
    # short. Either the firmware put it there, or a build carrying 3ea44aa78c copied it whole:
    # both give fwupd the firmware's bytes, and nothing the dom0 holds tells them apart.
    dmesg = _write(tmp_path, "dmesg.txt", LINUX + DOM0_E820 + EFI + RESERVING)
    ex = _explain(dmesg, _tree(tmp_path, short=False))
    obs = _esrt(ex, "observed")
    assert obs.verdict.value == "unknown"
    assert {v.value for _, v in obs.candidates} == {"intact", "relocated"}
    assert "POOL_TAIL" in ex.machine.memory_type_evidence[0x3F773018]
    # Another vendor's pool allocator is not known: the copy stays a candidate.
    other = _write(tmp_path, "other.txt", (LINUX + DOM0_E820 + EFI + RESERVING).replace(
        "EDK II", "American Megatrends"))
    assert _esrt(_explain(other, tmp_path / "tree"), "observed").verdict.value == "unknown"


def test_explain_json_names_the_esrt_fields(tmp_path: Path) -> None:
    # fwupd's fixture entry 0 (facts 6.3): fw_type 1 is system firmware, status 1 unsuccessful.
    dmesg = _write(tmp_path, "dmesg.txt", LINUX + DOM0_E820 + EFI + RESERVING)
    doc = explain_document(_explain(dmesg, _tree(tmp_path, short=False)))
    names = doc["esrt"]["names"][0]
    assert names["fwupd_kind"] is not None and "ystem" in str(names["fw_type"])
    assert doc["esrt"]["entries"][0]["fw_type"] == 1  # raw numbers stay beside


def test_model_checks_are_the_readers_message_kinds() -> None:
    from efihandoff.crosscheck import PRINTED_CHECKS
    from efihandoff.sources.kernellog import ESRT_KINDS

    assert {str(c) for c in PRINTED_CHECKS} <= set(ESRT_KINDS)


def test_cross_check_compares_the_stopping_check(tmp_path: Path) -> None:
    # The dom0 printed "ESRT header is not in the memory map." (a Reserved-type ESRT, facts 3.2
    # step 3); a model that stopped at another check is reported, by value, not by log text.
    from dataclasses import replace

    from efihandoff.explain import compare_dom0
    from efihandoff.paths.linux import EsrtCheck

    log = (
        LINUX
        + DOM0_E820
        + "[    0.000000] Xen: [mem 0x000000003f4ec000-0x000000003f76bfff] reserved\n"
        + EFI.replace("ESRT=0x3f773018", "ESRT=0x3f700018")
        + "[    0.08] esrt: ESRT header is not in the memory map.\n"
    )
    ex = _explain(_write(tmp_path, "d.txt", log))
    view = next(v for v in ex.views if v.log is not None)
    result = ex.results["observed"]
    assert result.esrt_check is EsrtCheck.NOT_IN_MEMMAP
    assert [f.code for f in compare_dom0(view, result)] == ["model.agrees"]
    wrong = replace(result, esrt_check=EsrtCheck.ONLY_HEADER)
    (finding,) = compare_dom0(view, wrong)
    assert finding.code == "model.disagrees" and "only-header" in finding.message


def test_the_firmware_values_behind_the_short_copy_are_null(tmp_path: Path) -> None:
    # Xen copied 80 of 96 bytes: the original's last entry lost its last four fields (facts
    # 5.4 step 5); the firmware's values there are not in the evidence, the rest is.
    dmesg = _write(tmp_path, "dmesg.txt", LINUX + DOM0_E820 + EFI + RESERVING)
    esrt = explain_document(_explain(dmesg, _tree(tmp_path, short=True)))["esrt"]
    first, last = esrt["entries"]
    assert first["lowest_supported_fw_version"] == 65582 and first["last_attempt_status"] == 1
    assert (last["fw_class"], last["fw_version"]) == (FW_CLASS[1], 3090287969)
    tail = ("lowest_supported_fw_version", "capsule_flags", "last_attempt_version")
    assert all(last[k] is None for k in (*tail, "last_attempt_status"))
    assert esrt["names"][1]["fwupd_update_state"] is None


def test_a_dom0_that_printed_its_tables_did_not_halt() -> None:
    # The dom0 printed its efi: table line, so it ran past xen_memory_setup: a stack the
    # evidence allows whose dom0 kernel range lies on E820-reserved memory (it would BUG()
    # there) is ruled out, not kept as the observed stack. The range is the log's own
    # reserved region 0x40000000-0x403fffff (the memory map's descriptor 6).
    from dataclasses import replace

    from efihandoff.candidates import judged
    from efihandoff.paths.simulate import simulate

    log = Path(__file__).parent / "fixtures" / "logs" / "serial-xen-dom0.log"
    ex = explain(read_source(log))
    printed = [v.log.observed for v in ex.views if v.dom0 and v.log is not None]
    assert printed and all(o.lists_tables for o in printed)
    running = ex.results["observed"].spec
    halting = replace(running, dom0_kernel=(0x40000000, 0x40400000))
    assert simulate(ex.machine, halting).booted is False
    result = judged(ex.machine, [halting, running], {}, printed)
    assert result.booted is True and result.spec.dom0_kernel == running.dom0_kernel
