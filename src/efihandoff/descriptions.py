"""Names for ESRT field values, as fwupd and fwts show them (like pyelftools' descriptions.py).

One place for the words; outputs call these, parsers never do. Sources (facts file
``docs/efi-xen-facts.md`` sections 1.7, 6.1 and 7):

- FwType and LastAttemptStatus values: edk2 MdePkg/Include/Guid/SystemResourceTable.h
  (``ESRT_FW_TYPE_*``, ``LAST_ATTEMPT_STATUS_*``); 8 and the vendor range 0x1000..0x4000 from
  UEFI 2.10 section 23.4 as fwts src/uefi/esrt/esrt.c checks them.
- Capsule flags: Linux include/linux/efi.h ``EFI_CAPSULE_PERSIST_ACROSS_RESET``,
  ``EFI_CAPSULE_POPULATE_SYSTEM_TABLE``, ``EFI_CAPSULE_INITIATE_RESET``; bits 0..15 are
  GUID-specific (edk2 comment). fwupd fu-uefi-capsule-device.c
  ``fu_uefi_capsule_device_set_capsule_flags`` adds PersistAcrossReset and InitiateReset on x86_64
  when neither is set.
- fwupd's words: plugins/uefi-capsule/fu-uefi.rs ``FuUefiCapsuleDeviceKind`` (kind strings such as
  ``system-firmware``) and ``FuUefiCapsuleDeviceStatus`` (the same order as LastAttemptStatus
  0..7), and the update state fu_uefi_capsule_device_set_status derives (``efihandoff.fwupd``).
- Dotted version forms: fwupd's ``FwupdVersionFormat`` (triplet AA.BB.CCDD, quad AA.BB.CC.DD,
  pair AABB.CCDD), which a uefi-capsule device uses only when a quirk names one (the ESRT itself
  says nothing about the format: fwupd's default is the plain number).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from efihandoff import fwupd
from efihandoff.uefi.esrt import (
    CAPSULE_FLAGS_GUID_SPECIFIC_MASK,
    VENDOR_RANGE_MAX,
    VENDOR_RANGE_MIN,
    CapsuleFlags,
    FwType,
    LastAttemptStatus,
)

# edk2 SystemResourceTable.h ESRT_FW_TYPE_*: the title fwupdmgr-style tools show.
FW_TYPE_TITLES: dict[int, str] = {
    FwType.UNKNOWN: "Unknown",
    FwType.SYSTEM_FIRMWARE: "System Firmware",
    FwType.DEVICE_FIRMWARE: "Device Firmware",
    FwType.UEFI_DRIVER: "UEFI Driver",
}
# edk2 SystemResourceTable.h macro names (fwts uses the same words).
FW_TYPE_MACROS: dict[int, str] = {
    FwType.UNKNOWN: "ESRT_FW_TYPE_UNKNOWN",
    FwType.SYSTEM_FIRMWARE: "ESRT_FW_TYPE_SYSTEMFIRMWARE",
    FwType.DEVICE_FIRMWARE: "ESRT_FW_TYPE_DEVICEFIRMWARE",
    FwType.UEFI_DRIVER: "ESRT_FW_TYPE_UEFIDRIVER",
}

# edk2 SystemResourceTable.h LAST_ATTEMPT_STATUS_*; 8 from UEFI 2.10 / fwts.
STATUS_TITLES: dict[int, str] = {
    LastAttemptStatus.SUCCESS: "Success",
    LastAttemptStatus.ERROR_UNSUCCESSFUL: "Unsuccessful",
    LastAttemptStatus.ERROR_INSUFFICIENT_RESOURCES: "Insufficient Resources",
    LastAttemptStatus.ERROR_INCORRECT_VERSION: "Incorrect Version",
    LastAttemptStatus.ERROR_INVALID_FORMAT: "Invalid Format",
    LastAttemptStatus.ERROR_AUTH_ERROR: "Authentication Error",
    LastAttemptStatus.ERROR_PWR_EVT_AC: "Power Event: AC not connected",
    LastAttemptStatus.ERROR_PWR_EVT_BATT: "Power Event: Insufficient Battery",
    LastAttemptStatus.ERROR_UNSATISFIED_DEPENDENCIES: "Unsatisfied Dependencies",
}

# Linux include/linux/efi.h EFI_CAPSULE_*; the CamelCase words are fwupd's (its debug line
# "adding PersistAcrossReset and InitiateReset as missing in ESRT").
CAPSULE_FLAG_NAMES: dict[int, str] = {
    CapsuleFlags.PERSIST_ACROSS_RESET: "PersistAcrossReset",
    CapsuleFlags.POPULATE_SYSTEM_TABLE: "PopulateSystemTable",
    CapsuleFlags.INITIATE_RESET: "InitiateReset",
}


def fw_type_title(value: int) -> str:
    """``System Firmware``; a value outside edk2's four is ``invalid`` (fwts: must be <= 3)."""
    return FW_TYPE_TITLES.get(value, f"invalid ({value})")


def fw_type_macro(value: int) -> str | None:
    return FW_TYPE_MACROS.get(value)


def fw_type_fwupd(value: int) -> str | None:
    """fwupd's kind string (``system-firmware``); None when fwupd refuses the value."""
    if 0 <= value <= FwType.UEFI_DRIVER:
        return fwupd.DeviceKind(value).name.lower().replace("_", "-")
    return None


def status_macro(value: int) -> str | None:
    """``LAST_ATTEMPT_STATUS_ERROR_UNSUCCESSFUL``; None outside the named values."""
    try:
        return f"LAST_ATTEMPT_STATUS_{LastAttemptStatus(value).name}"
    except ValueError:
        return None


def status_title(value: int) -> str:
    """``Unsuccessful``, ``Vendor Error 0x1234`` or ``invalid (0x9)``."""
    if value in STATUS_TITLES:
        return STATUS_TITLES[value]
    if VENDOR_RANGE_MIN <= value <= VENDOR_RANGE_MAX:
        return f"Vendor Error {value:#x}"
    return f"invalid ({value:#x})"


def status_fwupd(value: int) -> str | None:
    """fwupd's FuUefiCapsuleDeviceStatus string (``error-unsuccessful``); None above 7, which
    fwupd's property range refuses."""
    if 0 <= value <= LastAttemptStatus.ERROR_PWR_EVT_BATT:
        return LastAttemptStatus(value).name.lower().replace("_", "-")
    return None


def update_state(value: int) -> str:
    """What fwupdmgr shows as ``Update State`` for this status (``success``, ``failed``,
    ``failed-transient``, ``unknown``)."""
    return fwupd.update_state(value)


def capsule_flag_names(value: int) -> list[str]:
    """``['GUID-specific 0xfe', 'PersistAcrossReset']``: bits 0..15 as one number, the named
    bits by name, any other bit as ``unknown 0x...``."""
    out = []
    low = value & CAPSULE_FLAGS_GUID_SPECIFIC_MASK
    if low:
        out.append(f"GUID-specific {low:#x}")
    known = CAPSULE_FLAGS_GUID_SPECIFIC_MASK
    for bit, name in CAPSULE_FLAG_NAMES.items():
        if value & int(bit):
            out.append(name)
        known |= int(bit)  # plain ints: ~ of an IntFlag keeps only the flag's own bits
    rest = value & ~known & 0xFFFFFFFF
    if rest:
        out.append(f"unknown {rest:#x}")
    return out


def fwupd_capsule_flags(value: int) -> int:
    """The flags fwupd uses on x86_64 (both reset flags added when neither is set)."""
    return fwupd.capsule_flags(value)


def version_forms(value: int) -> dict[str, str]:
    """The 32-bit version in fwupd's usual dotted forms, and as hex."""
    v = value & 0xFFFFFFFF
    return {
        "hex": f"{v:#010x}",
        "triplet": f"{v >> 24}.{(v >> 16) & 0xFF}.{v & 0xFFFF}",
        "quad": f"{v >> 24}.{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}",
        "pair": f"{v >> 16}.{v & 0xFFFF}",
    }


def version_text(value: int) -> str:
    """``65586 = 0x00010032 (triplet 0.1.50, quad 0.1.0.50, pair 1.50)``: the number first
    (what the ESRT says), then the forms a vendor may mean."""
    f = version_forms(value)
    return (
        f"{value} = {f['hex']} (triplet {f['triplet']}, quad {f['quad']}, pair {f['pair']})"
    )


@dataclass(frozen=True)
class EntryText:
    """One ESRT entry's fields as words, in the order of the entry (and of Linux's sysfs)."""

    fw_class: str
    fw_type: str
    fw_version: str
    lowest_supported_fw_version: str
    capsule_flags: str
    last_attempt_version: str
    last_attempt_status: str

    def rows(self) -> list[tuple[str, str]]:
        return [(k, getattr(self, k)) for k in self.__dataclass_fields__]


_UNKNOWN = "? (not in the evidence)"
# The names entry_names derives from each field.
_NAMES_OF = {
    "fw_type": ("fw_type", "fw_type_macro", "fwupd_kind"),
    "fw_version": ("fw_version",),
    "lowest_supported_fw_version": ("lowest_supported_fw_version",),
    "capsule_flags": ("capsule_flags", "fwupd_capsule_flags"),
    "last_attempt_version": ("last_attempt_version",),
    "last_attempt_status": (
        "last_attempt_status",
        "last_attempt_status_macro",
        "fwupd_status",
        "fwupd_update_state",
    ),
}


def _known(e: Mapping[str, int | str | None]) -> tuple[dict[str, int | str], list[str]]:
    """The entry with unknown (None) fields set to 0, and their names."""
    unknown = [k for k, v in e.items() if v is None]
    return {k: (0 if v is None else v) for k, v in e.items()}, unknown


def describe_entry(e: Mapping[str, int | str | None]) -> EntryText:
    """An ``explain``/``esrt`` JSON entry as words, each raw number kept first; a field the
    evidence does not give (None) reads ``?``."""
    filled, unknown = _known(e)
    if unknown:
        return replace(
            _describe(filled), **{k: _UNKNOWN for k in unknown if k in EntryText.__annotations__}
        )
    return _describe(filled)


def _describe(e: Mapping[str, int | str]) -> EntryText:
    fw_type = int(e["fw_type"])
    kind = fw_type_fwupd(fw_type)
    flags = int(e["capsule_flags"])
    status = int(e["last_attempt_status"])
    names = capsule_flag_names(flags)
    fixed = fwupd_capsule_flags(flags)
    flag_text = f"{flags:#x}" + (f": {', '.join(names)}" if names else "")
    if fixed != flags:
        added = [n for n in capsule_flag_names(fixed) if n not in names]
        flag_text += f" (fwupd adds {' and '.join(added)})"
    macro = status_macro(status)
    fw_status = status_fwupd(status)
    status_text = f"{status} {status_title(status)}"
    extra = [m for m in (macro, f"fwupd: {fw_status}" if fw_status else None) if m]
    extra.append(f"update state {update_state(status)}")
    status_text += f" ({'; '.join(extra)})"
    lowest = int(e["lowest_supported_fw_version"])
    last = int(e["last_attempt_version"])
    return EntryText(
        fw_class=str(e["fw_class"]),
        fw_type=f"{fw_type} {fw_type_title(fw_type)}"
        + (f" (fwupd: {kind})" if kind else " (fwupd refuses it)"),
        fw_version=version_text(int(e["fw_version"])),
        lowest_supported_fw_version=version_text(lowest)
        if lowest
        else "0 (none: fwupd sets no lowest version)",
        capsule_flags=flag_text,
        last_attempt_version=version_text(last) if last else "0",
        last_attempt_status=status_text,
    )


def entry_names(e: Mapping[str, int | str | None]) -> dict[str, object]:
    """The words for one JSON entry, to sit beside its raw numbers (``names`` in ``esrt --json``):
    None where a value has no name or is not in the evidence."""
    filled, unknown = _known(e)
    names = _names(filled)
    for k in unknown:
        names.update(dict.fromkeys(_NAMES_OF.get(k, ())))
    return names


def _names(e: Mapping[str, int | str]) -> dict[str, object]:
    fw_type = int(e["fw_type"])
    status = int(e["last_attempt_status"])
    flags = int(e["capsule_flags"])
    return {
        "fw_type": fw_type_title(fw_type) if fw_type in FW_TYPE_TITLES else None,
        "fw_type_macro": fw_type_macro(fw_type),
        "fwupd_kind": fw_type_fwupd(fw_type),
        "fw_version": version_forms(int(e["fw_version"])),
        "lowest_supported_fw_version": version_forms(int(e["lowest_supported_fw_version"])),
        "capsule_flags": capsule_flag_names(flags),
        "fwupd_capsule_flags": fwupd_capsule_flags(flags),
        "last_attempt_version": version_forms(int(e["last_attempt_version"])),
        "last_attempt_status": status_title(status)
        if status in STATUS_TITLES or VENDOR_RANGE_MIN <= status <= VENDOR_RANGE_MAX
        else None,
        "last_attempt_status_macro": status_macro(status),
        "fwupd_status": status_fwupd(status),
        "fwupd_update_state": update_state(status),
    }
