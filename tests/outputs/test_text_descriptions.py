"""efihandoff.descriptions: ESRT values as fwupd and fwts name them, checked by hand against
edk2 SystemResourceTable.h, Linux efi.h and fwupd fu-uefi.rs as the facts file gives them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from efihandoff import descriptions as d


def test_fw_type():
    assert [d.fw_type_title(i) for i in range(4)] == [
        "Unknown", "System Firmware", "Device Firmware", "UEFI Driver"]
    assert d.fw_type_macro(1) == "ESRT_FW_TYPE_SYSTEMFIRMWARE"
    assert d.fw_type_macro(3) == "ESRT_FW_TYPE_UEFIDRIVER"
    assert d.fw_type_fwupd(1) == "system-firmware" and d.fw_type_fwupd(3) == "uefi-driver"
    # 4 and 5 are fwupd-internal kinds, never an ESRT value; fwts fails anything above 3
    assert d.fw_type_fwupd(4) is None and d.fw_type_title(4) == "invalid (4)"
    assert d.fw_type_macro(9) is None


def test_status():
    assert d.status_title(0) == "Success" and d.status_title(1) == "Unsuccessful"
    assert d.status_title(5) == "Authentication Error"
    assert d.status_title(8) == "Unsatisfied Dependencies"
    assert d.status_macro(7) == "LAST_ATTEMPT_STATUS_ERROR_PWR_EVT_BATT"
    assert d.status_title(0x1000) == "Vendor Error 0x1000"
    assert d.status_title(0x4000) == "Vendor Error 0x4000"
    assert d.status_title(0x4001) == "invalid (0x4001)" and d.status_macro(0x4001) is None
    assert d.status_title(9) == "invalid (0x9)"
    assert d.status_fwupd(1) == "error-unsuccessful" and d.status_fwupd(8) is None
    assert [d.update_state(s) for s in (0, 1, 6, 7, 8)] == [
        "success", "failed", "failed-transient", "failed-transient", "unknown"]


def test_capsule_flags():
    assert d.capsule_flag_names(0) == []
    assert d.capsule_flag_names(0xFE) == ["GUID-specific 0xfe"]
    assert d.capsule_flag_names(0x10000) == ["PersistAcrossReset"]
    assert d.capsule_flag_names(0x70001) == [
        "GUID-specific 0x1", "PersistAcrossReset", "PopulateSystemTable", "InitiateReset"]
    assert d.capsule_flag_names(0x80050000) == [
        "PersistAcrossReset", "InitiateReset", "unknown 0x80000000"]
    assert d.fwupd_capsule_flags(0xFE) == 0x500FE
    assert d.fwupd_capsule_flags(0x10000) == 0x10000


def test_version_forms():
    assert d.version_forms(65586) == {
        "hex": "0x00010032", "triplet": "0.1.50", "quad": "0.1.0.50", "pair": "1.50"}
    assert d.version_forms(0x01020304) == {
        "hex": "0x01020304", "triplet": "1.2.772", "quad": "1.2.3.4", "pair": "258.772"}
    assert d.version_text(0) == "0 = 0x00000000 (triplet 0.0.0, quad 0.0.0.0, pair 0.0)"


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_version_forms_round_trip(v):
    f = d.version_forms(v)
    a, b, c, e = (int(x) for x in f["quad"].split("."))
    assert (a << 24 | b << 16 | c << 8 | e) == v
    a, b, c = (int(x) for x in f["triplet"].split("."))
    assert (a << 24 | b << 16 | c) == v
    hi, lo = (int(x) for x in f["pair"].split("."))
    assert (hi << 16 | lo) == v and int(f["hex"], 16) == v


@given(st.integers(min_value=0, max_value=0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
       st.integers(0, 0xFFFFFFFF))
def test_describe_entry_any_values(t, flags, status):
    e = {"fw_class": "00000000-0000-0000-0000-000000000001", "fw_type": t, "fw_version": t,
         "lowest_supported_fw_version": flags, "capsule_flags": flags,
         "last_attempt_version": status, "last_attempt_status": status}
    words = d.describe_entry(e)
    rows = dict(words.rows())
    assert list(rows) == ["fw_class", "fw_type", "fw_version", "lowest_supported_fw_version",
                          "capsule_flags", "last_attempt_version", "last_attempt_status"]
    assert rows["fw_type"].startswith(f"{t} ")
    assert rows["capsule_flags"].startswith(f"{flags:#x}")
    assert rows["last_attempt_status"].startswith(f"{status} ")
