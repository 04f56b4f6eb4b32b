"""efihandoff.fwupd against fwupd's own fixture and rules, and against the real fwupdtool."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff import fwupd
from efihandoff.fwupd import G_MAXUINT64, Device, DeviceKind, devices, read_uint64
from efihandoff.outputs.sysfs import write_tree

E = "efi/esrt/entries"
DDC0 = "ddc0ee61-e7f0-4e7d-acc5-c070a398838e"
G671 = "671d19d0-d43c-4852-98d9-1ce16f9967e4"

# fwupd plugins/uefi-capsule/tests/efi/esrt (facts 6.3), written out by hand: no top-level
# fw_resource_* files, every value ends with a newline; entry2 has the zero GUID and (through
# symlinks in fwupd's tree) entry1's values.
ENTRY1 = {
    "fw_type": "2\n",
    "fw_version": "3090287969\n",
    "lowest_supported_fw_version": "1\n",
    "capsule_flags": "0x8010\n",
    "last_attempt_version": "0\n",
    "last_attempt_status": "0\n",
}
FIXTURE: dict[str, str | None] = {
    "efi": None,
    "efi/fw_platform_size": "64\n",
    "efi/esrt": None,
    E: None,
    f"{E}/entry0": None,
    f"{E}/entry0/fw_class": f"{DDC0}\n",
    f"{E}/entry0/fw_type": "1\n",
    f"{E}/entry0/fw_version": "65586\n",
    f"{E}/entry0/lowest_supported_fw_version": "65582\n",
    f"{E}/entry0/capsule_flags": "0xfe\n",
    f"{E}/entry0/last_attempt_version": "18472960\n",
    f"{E}/entry0/last_attempt_status": "1\n",
    f"{E}/entry1": None,
    f"{E}/entry1/fw_class": f"{G671}\n",
    **{f"{E}/entry1/{k}": v for k, v in ENTRY1.items()},
    f"{E}/entry2": None,
    f"{E}/entry2/fw_class": "00000000-0000-0000-0000-000000000000\n",
    **{f"{E}/entry2/{k}": v for k, v in ENTRY1.items()},
}


def entry(name: str = "entry0", **files: str) -> dict[str, str | None]:
    """A tree with one entry directory holding ``files``."""
    tree: dict[str, str | None] = {E: None, f"{E}/{name}": None}
    tree.update({f"{E}/{name}/{k}": v for k, v in files.items()})
    return tree


def one(tree: dict[str, str | None], **kw: bool) -> Device:
    devs = devices(tree, **kw)
    assert devs is not None and len(devs) == 1, devs
    return devs[0]


# --- fwupd's fixture (fu-self-test.c fu_uefi_plugin_func expectations) ----------------------


def test_fixture_lists_exactly_two_devices():
    dev1, dev2 = devices(FIXTURE)  # unpacking fails unless there are exactly two
    assert dev1.guid == DDC0
    assert dev1.kind == DeviceKind.SYSTEM_FIRMWARE
    assert dev1.version == 65586
    assert dev1.lowest == 65582
    assert dev1.last_attempt_version == 18472960  # fu_uefi_capsule_device_get_version_error
    assert dev1.flags & 0xFF == 0xFE
    assert dev1.last_attempt_status == fwupd.DeviceStatus.ERROR_UNSUCCESSFUL
    assert dev1.update_state == "failed"
    assert dev2.guid == G671
    assert dev2.kind == DeviceKind.DEVICE_FIRMWARE
    assert dev2.version == 3090287969
    assert dev2.lowest == 1
    assert dev2.flags & 0xFF == 0x10
    assert dev2.last_attempt_status == fwupd.DeviceStatus.SUCCESS
    assert dev2.update_state == "success"


def test_fixture_full_values_after_x86_64_fixup():
    # neither 0xfe nor 0x8010 has bit 16 or 18, so x86_64 fwupd ORs in 0x50000
    assert [d.to_json() for d in devices(FIXTURE)] == [
        {"guid": DDC0, "kind": "system-firmware", "version": 65586, "lowest": 65582,
         "flags": 0x500FE, "last_attempt_version": 18472960, "last_attempt_status": 1,
         "update_state": "failed", "entry": "entry0"},
        {"guid": G671, "kind": "device-firmware", "version": 3090287969, "lowest": 1,
         "flags": 0x58010, "last_attempt_version": 0, "last_attempt_status": 0,
         "update_state": "success", "entry": "entry1"},
    ]


def test_fixture_not_x86_64_keeps_flags():
    assert [d.flags for d in devices(FIXTURE, x86_64=False)] == [0xFE, 0x8010]


def test_zero_guid_alone_gives_no_device_but_not_none():
    tree = {k: v for k, v in FIXTURE.items() if "entry0" not in k and "entry1" not in k}
    assert devices(tree) == []


# --- the entries directory --------------------------------------------------------------------


@pytest.mark.parametrize(
    "tree",
    [
        None,
        {},
        {"efi": None, "efi/esrt": None},  # esrt without entries/
        {"efi/esrt/fw_resource_count": "1\n"},
        {E: "not a directory\n"},
    ],
)
def test_missing_entries_dir_is_none(tree):
    assert devices(tree) is None


def test_empty_entries_dir_is_empty_list():
    assert devices({E: None}) == []


def test_entries_dir_implied_by_a_file_below_it():
    assert devices({f"{E}/entry0/fw_class": f"{DDC0}\n"}) is not None


# --- fu_uefi_read_file_as_uint64 / fu_strtoull -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (None, 0),  # missing file
        ("", 0),  # nothing to parse, nothing left over
        ("\n", 0),
        ("65586\n", 65586),
        ("65586", 65586),
        ("0xfe\n", 0xFE),
        ("0x8010\n", 0x8010),
        ("0xFE\n", 0xFE),  # hex digits of either case
        ("0x\n", 0),
        ("0X10\n", G_MAXUINT64),  # only a lower-case 0x selects base 16
        ("010\n", 10),  # no octal
        ("abc\n", G_MAXUINT64),
        ("12abc\n", G_MAXUINT64),
        ("5 \n", G_MAXUINT64),  # trailing space is left over
        ("5\r\n", G_MAXUINT64),
        (" 5\n", 5),  # strtoull skips leading space
        ("\n5", 5),
        ("5\ngarbage", 5),  # parsing may stop at a newline
        ("5\0garbage", 5),  # a C string ends at NUL
        ("+7\n", 7),
        ("-2\n", G_MAXUINT64 - 1),  # strtoull negates in u64
        ("0x0x10\n", 0x10),  # strtoull base 16 takes a second 0x
        ("18446744073709551614\n", G_MAXUINT64 - 1),
        ("18446744073709551615\n", G_MAXUINT64),  # equal to the overflow marker
        ("18446744073709551616\n", G_MAXUINT64),  # ERANGE
        ("0x10000000000000000\n", G_MAXUINT64),
        ("0" * 5000 + "7\n", 7),
        ("9" * 5000 + "\n", G_MAXUINT64),
    ],
)
def test_read_uint64(text, value):
    assert read_uint64(text) == value


@settings(max_examples=200, deadline=None)
@given(st.integers(0, G_MAXUINT64 - 1))
def test_read_uint64_decimal_and_hex_round_trip(n):
    # Linux writes %u and 0x%x (facts 3.3)
    assert read_uint64(f"{n}\n") == n
    assert read_uint64(f"{n:#x}\n") == n


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_read_uint64_any_text_is_a_u64(text):
    assert 0 <= read_uint64(text) <= G_MAXUINT64


def test_missing_files_read_as_zero():
    dev = one(entry(fw_class=f"{DDC0}\n"))
    assert (dev.kind, dev.version, dev.lowest, dev.last_attempt_version) == (0, 0, 0, 0)
    assert dev.last_attempt_status == 0 and dev.update_state == "success"
    assert dev.flags == 0x50000  # 0 -> PersistAcrossReset | InitiateReset on x86_64


def test_garbage_values_are_maxuint_cut_to_32_bits():
    # G_MAXUINT64 passes through fu_uefi_capsule_backend_linux_read (guint): 0xffffffff
    dev = one(entry(fw_class=f"{DDC0}\n", fw_version="abc\n", lowest_supported_fw_version="x\n",
                    capsule_flags="zz\n", last_attempt_version="?\n"))
    assert (dev.version, dev.lowest, dev.flags, dev.last_attempt_version) == (0xFFFFFFFF,) * 4


def test_values_above_32_bits_are_truncated():
    dev = one(entry(fw_class=f"{DDC0}\n", fw_version="4294967297\n", fw_type="0x100000002\n"))
    assert dev.version == 1
    assert dev.kind == DeviceKind.DEVICE_FIRMWARE


def test_lowest_zero_stays_zero():
    assert one(entry(fw_class=f"{DDC0}\n", lowest_supported_fw_version="0\n")).lowest == 0


# --- fw_class and fwupd_guid_is_valid ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "guid"),
    [
        (f"{DDC0}\n", DDC0),
        (DDC0, DDC0),
        (f"{DDC0.upper()}\n", DDC0.upper()),  # g_ascii_isxdigit takes either case; kept as read
        (f"{DDC0}\njunk", DDC0),  # g_strdelimit cuts at the first newline
        (f" {DDC0}\n", None),  # nothing else is stripped
        (f"{DDC0} \n", None),
        (f"{DDC0}\r\n", None),
        (f"{DDC0[:-1]}\n", None),  # 35 characters
        (f"{DDC0}0\n", None),  # 37
        ("ddc0ee61e7f04e7dacc5c070a398838e\n", None),  # no dashes
        ("{ddc0ee61-e7f0-4e7d-acc5-c070a39883}\n", None),
        ("gdc0ee61-e7f0-4e7d-acc5-c070a398838e\n", None),
        ("00000000-0000-0000-0000-000000000000\n", None),  # the zero GUID
        ("\n", None),
        ("", None),
    ],
)
def test_fw_class_validity(text, guid):
    devs = devices(entry(fw_class=text, fw_version="1\n"))
    assert [d.guid for d in devs] == ([] if guid is None else [guid])


def test_missing_fw_class_drops_the_entry():
    assert devices(entry(fw_version="1\n", fw_type="1\n")) == []


def test_fw_class_directory_drops_the_entry():
    tree = entry(fw_version="1\n")
    tree[f"{E}/entry0/fw_class"] = None
    assert devices(tree) == []


def test_an_entry_that_is_a_file_is_dropped():
    assert devices({E: None, f"{E}/entry0": f"{DDC0}\n"}) == []


def test_invalid_entry_drops_only_itself():
    tree = {**entry("entry0", fw_class="nope\n"), **entry("entry1", fw_class=f"{G671}\n")}
    assert [d.entry for d in devices(tree)] == ["entry1"]


# --- kind, status, capsule flags --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fw_type", "kind"),
    [("0\n", 0), ("1\n", 1), ("2\n", 2), ("3\n", 3), ("4\n", 4), ("5\n", 5),
     ("6\n", 0), ("9\n", 0), ("garbage\n", 0)],
)
def test_kind_out_of_range_is_unknown_but_listed(fw_type, kind):
    # g_param_spec_uint("kind", 0, KIND_LAST - 1): GObject refuses the value, kind stays 0
    dev = one(entry(fw_class=f"{DDC0}\n", fw_type=fw_type))
    assert dev.kind == kind


def test_kind_names():
    names = {one(entry(fw_class=f"{DDC0}\n", fw_type=f"{k}\n")).to_json()["kind"] for k in range(6)}
    assert names == {"unknown", "system-firmware", "device-firmware", "uefi-driver", "fmp",
                     "dell-tpm-firmware"}


@pytest.mark.parametrize(
    ("status", "state"),
    [("0\n", "success"), ("1\n", "failed"), ("2\n", "failed"), ("3\n", "failed"),
     ("4\n", "failed"), ("5\n", "failed"), ("6\n", "failed-transient"),
     ("7\n", "failed-transient"), ("8\n", "unknown"), ("4097\n", "unknown"),
     ("junk\n", "unknown")],
)
def test_update_state_from_last_attempt_status(status, state):
    # fu_uefi_capsule_device_set_status; a status above 7 is outside the property's range
    dev = one(entry(fw_class=f"{DDC0}\n", last_attempt_status=status))
    assert dev.update_state == state


@pytest.mark.parametrize(
    ("flags", "x86", "want"),
    [
        ("0x0\n", True, 0x50000),
        ("0\n", True, 0x50000),
        ("0x20000\n", True, 0x70000),  # PopulateSystemTable alone does not count
        ("0x10000\n", True, 0x10000),  # PersistAcrossReset already set
        ("0x40000\n", True, 0x40000),  # InitiateReset already set
        ("0x500fe\n", True, 0x500FE),
        ("0x0\n", False, 0),
        ("0xfe\n", False, 0xFE),
    ],
)
def test_capsule_flags_fixup(flags, x86, want):
    assert one(entry(fw_class=f"{DDC0}\n", capsule_flags=flags), x86_64=x86).flags == want


# --- order and duplicates ---------------------------------------------------------------------


def test_entries_in_byte_order_of_their_names():
    # fu_backend_get_devices sorts by backend id with g_strcmp0
    tree: dict[str, str | None] = {}
    for i, name in enumerate(["entry2", "entry10", "entry1", "a", "Z"]):
        tree.update(entry(name, fw_class=f"{i:08x}-0000-0000-0000-000000000001\n"))
    assert [d.entry for d in devices(tree)] == ["Z", "a", "entry1", "entry10", "entry2"]


def test_same_fw_class_is_one_device_last_values_first_place():
    tree = {
        **entry("entry0", fw_class=f"{DDC0}\n", fw_version="3\n", last_attempt_status="1\n"),
        **entry("entry1", fw_class=f"{G671}\n", fw_version="5\n"),
        **entry("entry2", fw_class=f"{DDC0}\n", fw_version="7\n", last_attempt_status="99\n"),
    }
    devs = devices(tree)
    assert [(d.guid, d.version, d.entry) for d in devs] == [
        (DDC0, 7, "entry2"),
        (G671, 5, "entry1"),
    ]
    # entry2 has no update state of its own (99 is out of range): entry0's is kept
    assert devs[0].update_state == "failed"


def test_fw_class_case_makes_different_devices():
    tree = {
        **entry("entry0", fw_class=f"{DDC0}\n"),
        **entry("entry1", fw_class=f"{DDC0.upper()}\n"),
    }
    assert len(devices(tree)) == 2


# --- hostile trees ----------------------------------------------------------------------------

_names = st.sampled_from(["entry0", "entry1", "entry10", "x", "", ".", "entry0/sub"])
_files = st.sampled_from([*fwupd._FIELDS, "fw_class", "other"])
_values = st.one_of(
    st.none(),
    st.text(max_size=50),
    st.sampled_from([f"{DDC0}\n", f"{G671}\n", "0x\n", "0xfe\n", "-1\n", "99999999999999999999\n"]),
    st.integers(0, 2**70).map(lambda n: f"{n}\n"),
    st.integers(0, 2**70).map(lambda n: f"{n:#x}\n"),
)


_paths = st.builds(lambda n, f: f"{E}/{n}/{f}", _names, _files)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_paths, _values, max_size=30), st.booleans(), st.booleans())
def test_random_trees_never_raise(tree, with_dir, x86):
    if with_dir:
        tree[E] = None
    devs = devices(tree, x86_64=x86)
    if devs is None:
        assert not fwupd.entries_exist(tree)
        return
    assert len({d.guid for d in devs}) == len(devs)
    for d in devs:
        assert fwupd.guid_is_valid(d.guid)
        assert 0 <= d.kind <= 5
        for v in (d.version, d.lowest, d.flags, d.last_attempt_version, d.last_attempt_status):
            assert 0 <= v <= 0xFFFFFFFF
        assert d.update_state in {"success", "failed", "failed-transient", "unknown"}
        json.dumps(d.to_json())


# --- the real fwupdtool -----------------------------------------------------------------------

FWUPDTOOL = shutil.which("fwupdtool")
needs_fwupdtool = pytest.mark.skipif(
    FWUPDTOOL is None, reason="fwupdtool not installed (apt-get install fwupd)"
)
# libfwupd/fwupd-enums.h FwupdUpdateState
_STATES = {0: "unknown", 1: "pending", 2: "success", 3: "failed", 4: "needs-reboot",
           5: "failed-transient"}


def real_devices(root: Path, scratch: Path) -> list[dict[str, object]] | None:
    """What ``fwupdtool get-devices --plugins uefi_capsule`` lists from ``root`` (standing for
    /sys/firmware), in the model's terms; None for "No detected devices"."""
    for d in ("esp", "dmi", "state", "lock", "cache"):
        (scratch / d).mkdir()
    for f in ("bios_vendor", "sys_vendor", "product_name", "bios_version"):
        (scratch / "dmi" / f).write_text("efihandoff\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FWUPD_")}
    env.update(
        FWUPD_SYSFSFWDIR=str(root),
        FWUPD_UEFI_TEST="1",  # skip the efivarfs mount-point check
        FWUPD_UEFI_ESP_PATH=str(scratch / "esp"),
        FWUPD_SYSFSDMIDIR=str(scratch / "dmi"),
        FWUPD_LOCALSTATEDIR=str(scratch / "state"),
        # fwupdtool takes a global lock (/run/lock/fwupdtool as root, else the user cache):
        # without these, two runs at once fail with "another instance has locked"
        FWUPD_LOCKDIR=str(scratch / "lock"),
        XDG_CACHE_HOME=str(scratch / "cache"),
        LANG="C.UTF-8",
    )
    proc = subprocess.run(
        [FWUPDTOOL, "get-devices", "--plugins", "uefi_capsule", "--json", "-v", "-v"],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
        check=False,
    )
    doc = json.loads(proc.stdout)
    if "Error" in doc:
        assert doc["Error"].get("Message") == "No detected devices", doc
        return None
    # Kind and CapsuleFlags are only in the verbose device dump on stderr (first dump per id)
    dumps: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n(?=FuUefi\w*Device:\n)", proc.stderr):
        fields = dict(re.findall(r"^  (\w+):\s+(.*)$", block, re.M))
        if block.startswith("FuUefi") and "DeviceId" in fields:
            dumps.setdefault(fields["DeviceId"], fields)
    out = []
    for dev in doc.get("Devices", []):
        if dev.get("Plugin") != "uefi_capsule":
            continue
        dump = dumps[dev["DeviceId"]]
        out.append({
            "guid": dev["Guid"][0],
            "kind": dump.get("Kind", "unknown"),  # kind 0 is not printed
            "version": int(dev.get("VersionRaw", 0)),
            "lowest": int(dev.get("VersionLowestRaw", 0)),  # absent when lowest is 0
            "flags": int(dump["CapsuleFlags"], 16),
            "update_state": _STATES[dev.get("UpdateState", 0)],
        })
    return sorted(out, key=lambda d: d["guid"])


def model_devices(tree: dict[str, str | None]) -> list[dict[str, object]] | None:
    devs = devices(tree)
    if devs is None:
        return None
    keys = ("guid", "kind", "version", "lowest", "flags", "update_state")
    return sorted(({k: d.to_json()[k] for k in keys} for d in devs), key=lambda d: d["guid"])


@needs_fwupdtool
def test_real_fwupdtool_on_fixture_tree(tmp_path):
    root = write_tree({**FIXTURE, "efi/efivars": None}, tmp_path / "firmware")
    real = real_devices(root, tmp_path)
    assert [d["guid"] for d in real] == [G671, DDC0]  # two devices, entry2 dropped
    assert real == model_devices(FIXTURE)


@needs_fwupdtool
def test_real_fwupdtool_on_hostile_tree(tmp_path):
    g = "%08x-1111-2222-3333-444455556666\n"
    tree: dict[str, str | None] = {"efi/efivars": None}
    tree.update(entry("entry0", fw_class=g % 0, fw_type="9\n", fw_version="abc\n"))
    tree.update(entry("entry1", fw_class=g % 1, fw_version="4294967297\n",
                      last_attempt_status="6\n", capsule_flags="0x20000\n"))
    tree.update(entry("entry2", fw_class=g % 2, last_attempt_status="8\n",
                      lowest_supported_fw_version="0\n", fw_version="5\nzz"))
    tree.update(entry("entry3", fw_class=(g % 3).upper(), fw_type="3\n", fw_version="-2\n"))
    tree.update(entry("entry4", fw_class=" " + g % 4, fw_version="1\n"))  # dropped
    tree.update(entry("entry5", fw_class=g % 5))  # every other file missing
    tree.update(entry("entry6", fw_class="00000000-0000-0000-0000-000000000000\n"))
    tree.update(entry("entry7", fw_class=g % 0, fw_type="9\n", fw_version="0x0x10\n",
                      last_attempt_status="4097\n"))  # same device as entry0
    tree.update(entry("entry8", fw_class=g % 8, fw_version=" 7\n", capsule_flags="0X10\n",
                      fw_type="0x4\n", last_attempt_status="1\n"))
    root = write_tree(tree, tmp_path / "firmware")
    model = model_devices(tree)
    assert len(model) == 6
    assert real_devices(root, tmp_path) == model


@needs_fwupdtool
def test_real_fwupdtool_without_entries_dir(tmp_path):
    root = write_tree({"efi/efivars": None, "efi/esrt": None}, tmp_path / "firmware")
    assert real_devices(root, tmp_path) is None
    assert devices({"efi/efivars": None, "efi/esrt": None}) is None


# --- values the model cannot know (issue 13): the tree's .unknown list ------------------------


def test_fields_from_unknown_files_are_none():
    tree = dict(FIXTURE)
    tree[".unknown"] = f"{E}/entry0/capsule_flags\n{E}/entry0/last_attempt_status\n"
    devs = devices(tree)
    assert devs is not None and len(devs) == 2
    d = devs[0]
    # flags comes from capsule_flags only; update_state from last_attempt_status only
    assert (d.guid, d.kind, d.version, d.lowest) == (DDC0, 1, 65586, 65582)
    assert d.flags is None and d.last_attempt_status is None and d.update_state is None
    assert d.last_attempt_version == 18472960
    j = d.to_json()
    assert j["flags"] is None and j["update_state"] is None and j["kind"] == "system-firmware"
    assert devs[1] == devices(FIXTURE)[1]  # the other entry untouched


def test_unknown_fw_class_keeps_the_device_without_a_guid():
    tree = entry(fw_class="00000000-0000-0000-0000-000000000000\n", fw_type="9\n")
    assert devices(tree) == []  # a known zero GUID: fwupd skips it
    tree[".unknown"] = f"{E}/entry0/fw_class\n{E}/entry0/fw_type\n"
    d = one(tree)
    assert d.guid is None and d.kind is None and d.kind_name is None and d.entry == "entry0"


def test_unknown_list_names_only_what_it_lists():
    assert fwupd.unknown_files({".unknown": "a\n\nb\n"}) == {"a", "b"}
    assert fwupd.unknown_files({".unknown": None}) == frozenset()
    assert fwupd.unknown_files(None) == frozenset()
    tree = dict(FIXTURE)
    tree[".unknown"] = "efi/esrt/entries/entry0/capsule_flags/\n"  # not the file's path
    assert devices(tree) == devices(FIXTURE)
