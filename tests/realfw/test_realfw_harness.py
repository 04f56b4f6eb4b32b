"""The bench's pure-Python parts: inject.bin codec, initramfs archive, serial-log parsing,
comparison. No QEMU needed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import harness
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.uefi.guid import Guid

DATA = Path(__file__).parent / "data"


def test_inject_bin_golden():
    rec = harness.Record(Guid.parse("b122a263-3661-4f68-9929-78f8b0d62180"), 4, b"abc")
    expected = bytes.fromhex(
        "4548494e4a303031"  # "EHINJ001"
        "01000000"  # one record
        "63a222b1" "6136" "684f" "992978f8b0d62180"  # GUID, EFI byte order
        "04000000"  # EfiBootServicesData
        "01000000"  # flags: install as a configuration table
        "0300000000000000"  # length 3
        "616263"
    )
    assert harness.encode_inject([rec]) == expected
    assert harness.decode_inject(expected) == [rec]


def test_inject_bin_not_a_config_table_flag():
    rec = harness.Record(Guid(0), 9, b"", config_table=False)
    data = harness.encode_inject([rec])
    assert data[12 + 20 : 12 + 24] == b"\0\0\0\0"
    assert harness.decode_inject(data) == [rec]


_records = st.lists(
    st.builds(
        harness.Record,
        st.integers(0, 2**128 - 1).map(Guid),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=64),
        st.booleans(),
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(_records)
def test_inject_bin_round_trip(records):
    assert harness.decode_inject(harness.encode_inject(records)) == records


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decode_inject_hostile(data):
    try:
        records = harness.decode_inject(b"EHINJ001" + data)
    except ValueError:
        return  # the only error it may raise
    assert sum(32 + len(r.data) for r in records) <= len(data) - 4


@pytest.mark.parametrize("bad", [b"", b"EHINJ00", b"XXXXXXXX\0\0\0\0",
                                 b"EHINJ001\x01\0\0\0", b"EHINJ001\x01\0\0\0" + b"\0" * 24
                                 + b"\xff" + b"\0" * 7])
def test_decode_inject_rejects(bad):
    with pytest.raises(ValueError):
        harness.decode_inject(bad)


def test_esrt_contents_sizes_and_headers():
    # UEFI 2.10 23.4: 16-byte header (count u32, max u32, version u64), 40 bytes per entry.
    v2 = harness.esrt_bytes("valid2")
    assert len(v2) == 16 + 2 * 40
    assert v2[:16] == bytes.fromhex("02000000" "02000000" "0100000000000000")
    assert harness.esrt_bytes("valid5")[:16] == bytes.fromhex("05000000080000000100000000000000")
    assert len(harness.esrt_bytes("valid5")) == 16 + 5 * 40
    assert harness.esrt_bytes("version2")[:16] == bytes.fromhex(
        "02000000020000000200000000000000")
    c0 = harness.esrt_bytes("count0")
    assert c0[:16] == bytes.fromhex("00000000020000000100000000000000")
    assert len(c0) == 16 + 2 * 40  # capacity for two entries after a zero count
    # entry0 = fwupd's fixture entry0: fw_class ddc0ee61-e7f0-4e7d-acc5-c070a398838e, type 1,
    # version 65586, lowest 65582, flags 0xfe, last attempt 18472960 / 1
    assert v2[16:56] == bytes.fromhex(
        "61eec0ddf0e77d4eacc5c070a398838e"
        "01000000" "32000100" "2e000100" "fe000000" "00e01901" "01000000"
    )
    with pytest.raises(ValueError):
        harness.esrt_bytes("nope")


def test_cases_and_smoke_cover_every_stack():
    full = harness.matrix()
    # 4 stacks, then multiboot2, -mapbs and fixed on both kernels; the live stacks take 3 cases
    assert len(full) == 5 * 4 * 10 + 2 * 3
    assert len({c.id for c in full}) == len(full)
    sm = harness.smoke()
    assert len(sm) >= 8
    assert {c.stack for c in sm} == set(harness.STACKS)
    c = harness.Case.make("bsdata", "valid2", "xen-4.17+linux-6.12")
    assert (c.id, c.memory_type, c.xen, c.kernel) == (
        "bsdata-valid2-xen-4.17+linux-6.12", 4, True, "linux-6.12")
    assert harness.Case.make("bscode", "count0", "linux-6.1").memory_type == 3
    with pytest.raises(ValueError):
        harness.Case.make("bsdata", "valid2", "linux-5.10")
    assert [x.id for x in harness.select(full, "*-count0-linux-6.1")] == [
        f"{p}-count0-linux-6.1" for p in harness.MATRIX_PLACEMENTS]


def test_cpio_newc_golden():
    data = harness._cpio_newc([("a", 0o100644, b"x", 0, 0)])
    head = "070701" + "".join(f"{v:08x}" for v in
                              (1, 0o100644, 0, 0, 1, 0, 1, 0, 0, 0, 0, 2, 0))
    trailer = "070701" + "".join(f"{v:08x}" for v in
                                 (2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0))
    expected = (head.encode() + b"a\0" + b"x\0\0\0"  # 110 + 2 bytes, data padded to 4
                + trailer.encode() + b"TRAILER!!!\0" + b"\0\0\0")  # 121 padded to 124
    assert data == expected


def test_initrd_has_console_init_and_busybox(tmp_path, monkeypatch):
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF-not-really")
    monkeypatch.setattr(harness, "BUSYBOX", fake)
    out = harness.build_initrd(tmp_path / "i.cpio.gz")
    raw = gzip.decompress(out.read_bytes())
    assert b"dev/console\0" in raw
    assert b"init\0" in raw and b"poweroff -f" in raw
    assert b"\x7fELF-not-really" in raw
    # dev/console: a character device 5:1 (rdevmajor, rdevminor fields)
    i = raw.index(b"dev/console\0")
    header = raw[i - 110 : i]
    fields = [int(header[6 + 8 * k : 14 + 8 * k], 16) for k in range(13)]
    assert fields[1] == 0o020600 and (fields[9], fields[10]) == (5, 1)


NATIVE_LOG = (
    "\x1b[2J\x1b[01;01HBdsDxe: starting Boot0002\r\n"
    "efihandoff-inject: start\r\n"
    "efihandoff-inject: b122a263-3661-4f68-9929-78f8b0d62180 type=4 at 0x3E5E3A98 len=96\r\n"
    "efihandoff-inject: 00000000-0000-0000-0000-000000000001 type=7 len=96 "
    "status=0x8000000000000002\r\n"
    "[    0.000000] efi: EFI v2.70 by EDK II\r\n"
    "EHMARK begin\r\n"
    "EHLS config_table efivars esrt fw_platform_size systab \r\n"
    "EHESRT present\r\n"
    "EHSYSX fw_resource_count 320a\r\n"
    "EHSYSX entries/entry10/fw_type 320a\r\n"
    "EHSYSX entries/entry2/capsule_flags 3078666e0a\r\n"
    "EHSYSX entries/entry2/empty \r\n"
    "EHDMESG [    0.000000] efi: EFI v2.70 by EDK II\r\n"
    "EHDMESG [    0.000000] efi: ACPI=0x3f77d000 (MEMATTR=0x3e5e2018 unusable) "
    "(ESRT=0x3deb3018 unusable) \r\n"
    "EHDMESG [    0.035683] esrt: Reserving ESRT space from 0x000000003e5e3a98 to "
    "0x000000003e5e3af8.\r\n"
    "EHMARK end\r\n"
)


def test_parse_serial_hand_written_log():
    o = harness.parse_serial(NATIVE_LOG)
    assert o["booted"] is True
    assert o["sysfs_present"] is True
    assert list(o["sysfs"]) == ["fw_resource_count", "entries/entry2/capsule_flags",
                                "entries/entry2/empty", "entries/entry10/fw_type"]
    assert o["sysfs"]["fw_resource_count"] == "2\n"
    assert o["sysfs"]["entries/entry2/capsule_flags"] == "0xfn\n"
    assert o["sysfs"]["entries/entry2/empty"] == ""
    # the console copy of "EFI v2.70" is not counted twice: the dmesg dump wins
    assert o["efi_lines"] == ["EFI v2.70 by EDK II",
                              "ACPI=0x3f77d000 (MEMATTR=0x3e5e2018 unusable) "
                              "(ESRT=0x3deb3018 unusable) "]
    assert o["esrt_lines"] == [
        "Reserving ESRT space from 0x000000003e5e3a98 to 0x000000003e5e3af8."]
    assert o["unusable"] == ["MEMATTR", "ESRT"]
    assert o["injected"] == [
        {"guid": "b122a263-3661-4f68-9929-78f8b0d62180", "type": 4, "address": 0x3E5E3A98,
         "length": 96},
        {"guid": "00000000-0000-0000-0000-000000000001", "type": 7, "address": None,
         "length": 96, "status": 0x8000000000000002},
    ]
    assert o["efi_dir"] == ["config_table", "efivars", "esrt", "fw_platform_size", "systab"]


def test_parse_serial_without_init_uses_console_lines():
    log = "[    0.1] esrt: ESRT header is not in the memory map.\nKernel panic\n"
    o = harness.parse_serial(log)
    assert o["booted"] is False and o["sysfs_present"] is False
    assert o["esrt_lines"] == ["ESRT header is not in the memory map."]


def test_parse_serial_real_xen_excerpt():
    # Lines of a real boot: OVMF 2022.11, Xen 4.17.7, Linux 6.12.117 dom0, ESRT valid2 in
    # EfiBootServicesData. Xen relocated it; the last 16 bytes of the copy are pool garbage.
    o = harness.parse_serial((DATA / "bsdata-valid2-xen-4.17+linux-6.12.serial.txt").read_text())
    assert o["sysfs_present"]
    assert o["sysfs"]["entries/entry1/fw_version"] == "3090287969\n"
    assert o["sysfs"]["entries/entry1/capsule_flags"] == "0xafafafaf\n"
    assert o["unusable"] == ["MEMATTR"]
    assert o["xen_lines"][1] == "(XEN) Bootloader: EFI"
    assert o["injected"][0]["address"] == 0x3E673B18


def test_normalise_addresses():
    line = "Reserving ESRT space from 0x000000003f773018 to 0x000000003f773078."
    assert harness.normalise_addresses(line) == "Reserving ESRT space from A to A+0x60."
    assert harness.normalise_addresses("x 0x20000000 y 0x10000000") == "x A y A-0x10000000"
    assert harness.normalise_addresses("count 0x10") == "count 0x10"


def _real():
    return {"case": "c", "booted": True, "sysfs_present": True,
            "sysfs": {"fw_resource_count": "2\n", "entries/entry1/capsule_flags": "0xafafafaf\n"},
            "esrt_lines": ["Reserving ESRT space from 0x000000003f773018 to "
                           "0x000000003f773078."],
            "unusable": ["MEMATTR"]}


def test_compare_agrees_across_addresses_and_unknown_values():
    pred = {"sysfs_present": True,
            "sysfs": {"fw_resource_count": "2\n", "entries/entry1/capsule_flags": None},
            "esrt_lines": ["Reserving ESRT space from 0x0000000011110000 to "
                           "0x0000000011110060."],
            "unusable": ["MEMATTR"]}
    assert harness.compare(_real(), pred) == []
    assert harness.compare(_real(), pred, exact_addresses=True) != []


def test_compare_reports_each_difference():
    pred = {"sysfs_present": False,
            "sysfs": {"fw_resource_count": "3\n", "entries/entry0/fw_type": "1\n"},
            "esrt_lines": ["Reserving ESRT space from 0x0000000011110000 to "
                           "0x0000000011110070."],
            "unusable": ["ESRT", "MEMATTR"]}
    diffs = harness.compare(_real(), pred)
    assert diffs[0].startswith("sysfs_present:")
    assert any(d.startswith("sysfs fw_resource_count:") for d in diffs)
    assert any("entries/entry0/fw_type: missing in real" in d for d in diffs)
    assert any("entries/entry1/capsule_flags" in d and "not predicted" in d for d in diffs)
    assert any(d.startswith("esrt lines:") for d in diffs)
    assert any(d.startswith("unusable:") for d in diffs)
    assert len(diffs) == 6


def test_explain_needs_every_difference_covered(monkeypatch):
    monkeypatch.setattr(harness, "EXPLAINED", (("*-xen-*", r"capsule_flags", "test_x"),))
    assert harness.explain("bsdata-valid2-xen-4.17+linux-6.12",
                           ["sysfs entries/entry1/capsule_flags: ..."]) == ["test_x"]
    assert harness.explain("bsdata-valid2-xen-4.17+linux-6.12",
                           ["sysfs entries/entry1/capsule_flags: ...", "unusable: ..."]) is None
    assert harness.explain("bsdata-valid2-linux-6.1",
                           ["sysfs entries/entry1/capsule_flags: ..."]) is None


def test_report_final_line(tmp_path):
    real = _real()
    rows = [harness.Row(real), harness.Row({**real, "case": "d"}, {"sysfs_present": True}, ["x"]),
            harness.Row({**real, "case": "e"}, dict(real), [])]
    final = harness.write_report(rows, tmp_path / "r.md", {"qemu": "7.2"})
    assert final == "realfw: 3 cases, 1 agree, 1 disagree"
    text = (tmp_path / "r.md").read_text()
    assert "| case | real | predicted | agree |" in text
    assert text.rstrip().endswith(final)
    assert "no prediction" in text


def test_config_tokens_hand_written():
    # Linux drivers/firmware/efi/efi.c efi_config_parse_tables: "NAME=0x%lx " per table; a Xen
    # dom0 from 6.3 prints "(NAME=0x%lx unusable) " for a table in memory it may not trust.
    lines = ["EFI v2.7 by EDK II",
             "SMBIOS=0x3f520000 ACPI 2.0=0x3f77d014 (MEMATTR=0x3e5e2018 unusable) ESRT=0x3f773018 ",
             "Remove mem126: MMIO range=[0xffc00000-0xffffffff] (4MB) from e820 map"]
    assert harness.config_tokens(lines) == [("SMBIOS", 0x3F520000, False),
                                            ("ACPI 2.0", 0x3F77D014, False),
                                            ("MEMATTR", 0x3E5E2018, True),
                                            ("ESRT", 0x3F773018, False)]
    assert harness.config_tokens(["mem00: [Conventional] range=[0x0-0x9ffff] (0MB)"]) == []


def _efi(header, tables, esrt_at, injected_at):
    return {"sysfs_present": False, "sysfs": {}, "esrt_lines": [], "unusable": [],
            "efi_lines": [header, " ".join(tables).replace("ESRT", f"ESRT={esrt_at:#x}") + " "],
            "injected": [{"guid": str(harness.ESRT_GUID), "address": injected_at}]}


def test_compare_efi_header_tables_and_esrt_move():
    real = _efi("EFI v2.70 by EDK II", ["ACPI=0x1000", "ESRT"], 0x3F773018, 0x3E673B18)
    same = _efi("EFI v2.70 by EDK II", ["ACPI=0x2000", "ESRT"], 0x7000, 0x5000)
    assert harness.compare(real, same) == []  # addresses differ, the shape does not
    other = _efi("EFI v2.7 by EDK II", ["(ACPI=0x2000 unusable)", "ESRT"], 0x5000, 0x5000)
    diffs = harness.compare(real, other)
    assert [d.split(":")[0] for d in diffs] == ["efi header", "efi tables", "esrt moved"]
    # a side without efi_lines (older outcomes, hand-made predictions) is not compared
    assert harness.compare(real, {k: v for k, v in other.items() if k != "efi_lines"}) == []


def test_parse_serial_runtime_map():
    # drivers/firmware/efi/runtime-map.c: type "0x%x", the rest "0x%llx"; /init prints them in
    # dump mode as EHRTMAP type phys virt pages attribute.
    log = ("EHRTMAP 0xb 0xffc00000 0xfffffffeffc00000 0x400 0x8000000000000001\n"
           "EHRTMAP junk\nEHMARK end\n")
    o = harness.parse_serial(log)
    assert o["runtime_map"] == [{"type": 11, "phys_addr": 0xFFC00000,
                                 "virt_addr": 0xFFFFFFFEFFC00000, "num_pages": 0x400,
                                 "attribute": 0x8000000000000001}]
    assert harness.parse_serial("EHMARK end\n")["runtime_map"] is None


def test_cached_outcome_takes_equivalent_earlier_boots(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "CACHE", tmp_path)
    monkeypatch.setattr(harness, "_VERSIONS", {"ovmf": "x"})
    case = harness.Case.make("bsdata", "valid2", "linux-6.1")
    assert harness.cached_outcome(case) is None
    init, args = harness.EQUIVALENT_BOOTS[-1]
    old = tmp_path / "results" / f"{case.id}.{harness.case_key(case, False, init, args)}.json"
    old.parent.mkdir()
    old.write_text(json.dumps({"case": case.id, "booted": True}))
    assert harness.cached_outcome(case)["booted"] is True
    # a dump result counts only while its dump file is there
    dumped = tmp_path / "results" / f"{case.id}.{harness.case_key(case, True)}.json"
    dumped.write_text(json.dumps({"case": "x", "dump": str(tmp_path / "gone.elf")}))
    assert harness.cached_outcome(case, dump=True) is None
    (tmp_path / "gone.elf").write_bytes(b"")
    assert harness.cached_outcome(case, dump=True)["case"] == "x"
    # the current key wins over an equivalent one
    now = tmp_path / "results" / f"{case.id}.{harness.case_key(case)}.json"
    now.write_text('{"case": "now"}')
    assert harness.cached_outcome(case)["case"] == "now"


def test_equivalent_boots_differ_only_where_documented():
    (v3, a3), (v2, a2), (v1, a1) = harness.EQUIVALENT_BOOTS
    assert (a1, a2, a3) == ("efi=debug panic=-1 loglevel=7", harness.LINUX_ARGS,
                            harness.LINUX_ARGS)
    assert v1.replace('while IFS= read -r l; do echo "EHDMESG $l"; done',
                      'sed "s/^/EHDMESG /"') == v2
    assert v3.split('echo "EHMARK end"')[0] == v2.split('echo "EHMARK end"')[0]
    assert "EHRTMAP" in v3 and "EHRTMAP" not in v2
    # the current script only adds the EHFILEX lines before the dmesg dump
    now = harness.INIT_SCRIPT
    assert "EHFILEX" in now and "EHFILEX" not in v3
    start, end = now.index("for f in /sys/firmware/efi/systab"), now.index("dmesg | sed")
    assert now[:start] + now[end:] == v3


def test_parse_serial_ehfilex_lines():
    log = ("EHFILEX firmware/efi/systab 414350493d3078310a534d42494f533d3078320a\n"
           "EHFILEX hypervisor/type 78656e0a\n"
           "EHFILEX firmware/efi/runtime zz\n"  # not hex: left out
           "EHMARK end\n")
    o = harness.parse_serial(log)
    assert o["files"] == {"firmware/efi/systab": "ACPI=0x1\nSMBIOS=0x2\n",
                          "hypervisor/type": "xen\n"}
    assert harness.parse_serial("EHMARK end\n")["files"] == {}


def test_fwupd_diff_no_devices_and_unknown_values():
    assert harness.fwupd_diff(None, []) == []
    assert harness.fwupd_diff([], None) == []
    dev = {"guid": "g", "kind": "system-firmware", "version": 1, "lowest": 0, "flags": 5,
           "update_state": "success", "entry": "entry0"}
    assert harness.fwupd_diff([dev], None) != []
    assert harness.fwupd_diff([dev], [{**dev, "flags": None}]) == []
    assert harness.fwupd_diff([dev], [{**dev, "flags": 6}]) == [
        "fwupd entry0 flags: real 5 model 6"]


def test_write_sysfs_tree(tmp_path):
    root = harness.write_sysfs_tree({"fw_resource_count": "2\n",
                                     "entries/entry0/fw_type": "1\n"}, tmp_path / "fw")
    assert (root / "efi" / "efivars").is_dir()
    assert (root / "efi/esrt/entries/entry0/fw_type").read_text() == "1\n"
    with pytest.raises(ValueError):
        harness.write_sysfs_tree({"../x": ""}, tmp_path / "fw2")
