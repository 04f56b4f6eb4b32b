"""What fwupd's uefi-capsule plugin lists from a /sys/firmware tree.

Checked against fwupd/fwupd 2.0.20 (the Debian 12 package, run as ``fwupdtool``) and HEAD 2.1.x:
plugins/uefi-capsule/fu-uefi-capsule-backend-linux.c ``fu_uefi_capsule_backend_linux_coldplug``
and ``..._device_new``, fu-uefi-capsule-device.c ``fu_uefi_capsule_device_probe``,
``..._set_capsule_flags``, ``..._set_status`` and ``..._class_init`` (property ranges),
fu-uefi-common.c ``fu_uefi_read_file_as_uint64``, libfwupdplugin/fu-string.c ``fu_strtoull``,
libfwupd/fwupd-common.c ``fwupd_guid_is_valid``, libfwupdplugin/fu-backend.c
``fu_backend_get_devices`` and src/fu-device-list.c ``fu_device_list_add``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import IntEnum

from efihandoff.uefi.esrt import CapsuleFlags, LastAttemptStatus

G_MAXUINT64 = (1 << 64) - 1
G_MAXUINT32 = (1 << 32) - 1
ENTRIES = "efi/esrt/entries"
# efihandoff's own marker at the tree's root (paths.linux.esrt_tree): the files, one path a
# line, whose values the model cannot know. fwupd never reads it.
UNKNOWN_LIST = ".unknown"

# fwupd fu-uefi-capsule-backend-linux.c ..._device_new: the attribute files it reads.
_FIELDS = (
    "capsule_flags",
    "fw_type",
    "fw_version",
    "last_attempt_status",
    "last_attempt_version",
    "lowest_supported_fw_version",
)
_ZERO_GUID = "00000000-0000-0000-0000-000000000000"
# fwupd libfwupd/fwupd-common.c fwupd_guid_is_valid: g_ascii_isxdigit (either case) and dashes
# at 8/13/18/23, exactly 36 characters, and not the all-zero string.
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# glibc strtoull (what GLib g_ascii_strtoull calls): C-locale space, a sign, for base 16 an
# optional 0x/0X when a hex digit follows, then digits.
_STRTOULL = {
    10: re.compile(r"[ \t\n\v\f\r]*([+-]?)()([0-9]+)"),
    16: re.compile(r"[ \t\n\v\f\r]*([+-]?)(0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]+)"),
}
_MAX_DIGITS = {10: 20, 16: 16}  # more significant digits than this always overflow a u64


class DeviceKind(IntEnum):
    """FuUefiCapsuleDeviceKind (fwupd plugins/uefi-capsule/fu-uefi.rs)."""

    UNKNOWN = 0
    SYSTEM_FIRMWARE = 1
    DEVICE_FIRMWARE = 2
    UEFI_DRIVER = 3
    FMP = 4
    DELL_TPM_FIRMWARE = 5


# FuUefiCapsuleDeviceStatus (fwupd plugins/uefi-capsule/fu-uefi.rs) is ESRT LastAttemptStatus
# 0..7 in the same order; fwupd knows no value above ERROR_PWR_EVT_BATT.
DeviceStatus = LastAttemptStatus


@dataclass(frozen=True)
class Device:
    """One device fwupd's uefi-capsule plugin would list.

    Values are what fwupd holds: each file's number cut to 32 bits; ``kind`` 0 when the file's
    value is out of range; ``lowest`` 0 means fwupd sets no lowest version; ``flags`` after the
    x86_64 fix-up. ``last_attempt_status`` is the file's value (cut to 32 bits); ``update_state``
    is what fwupd derives from it. A value derived from a file the tree lists as unknown is
    None: the real fwupd holds a number there, which one nobody can say.
    """

    guid: str | None
    kind: int | None
    version: int | None
    lowest: int | None
    flags: int | None
    last_attempt_version: int | None
    last_attempt_status: int | None
    update_state: str | None
    entry: str

    @property
    def kind_name(self) -> str | None:
        if self.kind is None:
            return None
        return DeviceKind(self.kind).name.lower().replace("_", "-")

    def to_json(self) -> dict[str, object]:
        return {
            "guid": self.guid,
            "kind": self.kind_name,
            "version": self.version,
            "lowest": self.lowest,
            "flags": self.flags,
            "last_attempt_version": self.last_attempt_version,
            "last_attempt_status": self.last_attempt_status,
            "update_state": self.update_state,
            "entry": self.entry,
        }


def read_uint64(text: str | None) -> int:
    """fu_uefi_read_file_as_uint64: a missing file is 0; ``0x`` (lower-case x) selects hex,
    anything else is decimal; a number may end the string or stop at a newline; garbage and
    overflow are G_MAXUINT64."""
    if text is None:
        return 0  # g_file_get_contents failed
    s = text.split("\0", 1)[0]  # C string
    base = 10
    # fwupd 2.0.20 libfwupdplugin/fu-string.c fu_strtoull, FU_INTEGER_BASE_AUTO
    if s.startswith("0x"):
        s, base = s[2:], 16
    m = _STRTOULL[base].match(s)
    if m is None:
        end, value = 0, 0  # no digits: strtoull returns 0 with endptr at the start
    else:
        end = m.end()
        digits = m.group(3).lstrip("0")
        if len(digits) > _MAX_DIGITS[base] or int(digits or "0", base) > G_MAXUINT64:
            value = G_MAXUINT64  # ERANGE
        else:
            value = int(digits or "0", base)
            if m.group(1) == "-":
                value = -value & G_MAXUINT64
    if end != len(s) and s[end] != "\n":
        return G_MAXUINT64  # "cannot parse datastream"
    return value  # G_MAXUINT64 itself is the overflow error, which returns G_MAXUINT64 too


def fw_class_of(text: str | None) -> str | None:
    """The fw_class string fwupd keeps: the file up to its first newline (g_strdelimit), no
    other stripping; None when the file cannot be read."""
    if text is None:
        return None
    return text.split("\0", 1)[0].split("\n", 1)[0]


def guid_is_valid(guid: str) -> bool:
    """fwupd_guid_is_valid."""
    return _GUID.fullmatch(guid) is not None and guid != _ZERO_GUID


def update_state(status: int) -> str:
    """fu_uefi_capsule_device_set_status; a status outside the property's range 0..7 is never
    set (GObject refuses it), so fwupd has no update state."""
    if status > DeviceStatus.ERROR_PWR_EVT_BATT:
        return "unknown"
    if status == DeviceStatus.SUCCESS:
        return "success"
    if status in (DeviceStatus.ERROR_PWR_EVT_AC, DeviceStatus.ERROR_PWR_EVT_BATT):
        return "failed-transient"
    return "failed"


def capsule_flags(value: int, *, x86_64: bool = True) -> int:
    """fu_uefi_capsule_device_set_capsule_flags: on x86_64, flags with neither
    PersistAcrossReset nor InitiateReset get both."""
    both = CapsuleFlags.PERSIST_ACROSS_RESET | CapsuleFlags.INITIATE_RESET
    if x86_64 and not value & both:
        return value | int(both)
    return value


def entries_exist(tree: Mapping[str, str | None] | None) -> bool:
    """Whether ``efi/esrt/entries`` is a directory in ``tree`` (explicitly, or as the parent of
    another path)."""
    if tree is None:
        return False
    if ENTRIES in tree:
        return tree[ENTRIES] is None
    prefix = ENTRIES + "/"
    return any(k.startswith(prefix) for k in tree)


def unknown_files(tree: Mapping[str, str | None] | None) -> frozenset[str]:
    """The paths the tree's ``.unknown`` list names (at most one per line, as written)."""
    text = (tree or {}).get(UNKNOWN_LIST)
    if not isinstance(text, str):
        return frozenset()
    return frozenset(line for line in text[: 1 << 20].split("\n") if line)


def devices(tree: Mapping[str, str | None] | None, *, x86_64: bool = True) -> list[Device] | None:
    """The devices fwupd lists from ``tree`` (paths relative to /sys/firmware, such as
    ``efi/esrt/entries/entry0/fw_class``; None marks a directory). None when
    ``efi/esrt/entries`` is not a directory: fwupd's coldplug fails and it lists nothing.
    A field derived from a file the tree's ``.unknown`` list names is None; a device whose
    fw_class is unknown is listed with guid None (whether fwupd would skip it is unknown)."""
    if tree is None or not entries_exist(tree):
        return None  # fu_uefi_capsule_backend_linux_coldplug: g_dir_open fails
    unknown = unknown_files(tree)
    prefix = ENTRIES + "/"
    # Every directory entry (any name) is a device; fu_backend_get_devices sorts them by
    # backend id (the entry path) with g_strcmp0, i.e. byte order, not natural order.
    names = sorted({k[len(prefix) :].split("/", 1)[0] for k in tree if k.startswith(prefix)} - {""})
    by_id: dict[str, Device] = {}
    for name in names:
        base = prefix + name + "/"
        guid_unknown = base + "fw_class" in unknown
        guid = fw_class_of(tree.get(base + "fw_class"))
        # fu_uefi_capsule_device_probe: "failed to read fw_class" / "ESRT GUID '%s' was not
        # valid"; the plugin skips the device.
        if not guid_unknown and (guid is None or not guid_is_valid(guid)):
            continue
        # fu_uefi_capsule_backend_linux_read returns guint: each value is cut to 32 bits.
        v: dict[str, int | None] = {
            f: None if base + f in unknown else read_uint64(tree.get(base + f)) & G_MAXUINT32
            for f in _FIELDS
        }
        fw_type, flags, status = v["fw_type"], v["capsule_flags"], v["last_attempt_status"]
        # "kind" is a uint property of range 0..FU_UEFI_CAPSULE_DEVICE_KIND_LAST-1: GObject
        # refuses an out-of-range construct value ("invalid or out of range for property")
        # and the device keeps kind 0; it is still listed.
        kind = fw_type
        if fw_type is not None and fw_type > DeviceKind.DELL_TPM_FIRMWARE:
            kind = 0
        dev = Device(
            guid=None if guid_unknown else guid,  # fwupd keeps the case it read
            kind=kind,
            version=v["fw_version"],
            lowest=v["lowest_supported_fw_version"],
            flags=None if flags is None else capsule_flags(flags, x86_64=x86_64),
            last_attempt_version=v["last_attempt_version"],
            last_attempt_status=status,
            update_state=None if status is None else update_state(status),
            entry=name,
        )
        # The device id hashes physical id (the esrt dir) and logical id (fw_class), so entries
        # with the same fw_class are one device: fu_device_list_add replaces the earlier one
        # in place ("found existing device, reusing item"), and fu_device_list_replace keeps
        # the earlier update state when the new one has none. An unknown fw_class is its own.
        key = name if dev.guid is None else dev.guid
        old = by_id.get(key)
        if old is not None and dev.update_state == "unknown":
            dev = replace(dev, update_state=old.update_state)
        by_id[key] = dev
    return list(by_id.values())
