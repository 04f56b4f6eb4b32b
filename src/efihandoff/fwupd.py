"""What fwupd's uefi-capsule plugin lists from a /sys/firmware tree.

Sources (fwupd/fwupd): plugins/uefi-capsule/fu-uefi-capsule-backend-linux.c
``fu_uefi_capsule_backend_linux_coldplug`` (2.1.x; fu-uefi-backend-linux.c before),
fu-uefi-capsule-device.c ``fu_uefi_capsule_device_probe`` and
``fu_uefi_capsule_device_set_capsule_flags``, fu-uefi-common.c ``fu_uefi_read_file_as_uint64``,
libfwupd/fwupd-common.c ``fwupd_guid_is_valid``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from efihandoff.uefi.esrt import CapsuleFlags

G_MAXUINT64 = (1 << 64) - 1
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FIELDS = (
    "capsule_flags",
    "fw_type",
    "fw_version",
    "last_attempt_status",
    "last_attempt_version",
    "lowest_supported_fw_version",
)


class DeviceKind(IntEnum):
    """FuUefiCapsuleDeviceKind (plugins/uefi-capsule/fu-uefi.rs)."""

    UNKNOWN = 0
    SYSTEM_FIRMWARE = 1
    DEVICE_FIRMWARE = 2
    UEFI_DRIVER = 3
    FMP = 4
    DELL_TPM_FIRMWARE = 5


@dataclass(frozen=True)
class Device:
    """One device fwupd's uefi-capsule plugin would list."""

    guid: str
    kind: int
    version: int
    lowest: int
    flags: int  # capsule flags after fwupd's fix-up
    last_attempt_version: int
    last_attempt_status: int
    entry: str

    @property
    def kind_name(self) -> str:
        try:
            return DeviceKind(self.kind).name.lower().replace("_", "-")
        except ValueError:
            return f"invalid-{self.kind}"

    @property
    def update_state(self) -> str:
        """fwupd reports a failed last attempt as a failed update."""
        return "success" if self.last_attempt_status == 0 else "failed"

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
    """fu_uefi_read_file_as_uint64: missing file 0; ``0x`` hex or decimal; garbage G_MAXUINT64."""
    if text is None:
        return 0
    s = text.strip()
    try:
        value = int(s, 16) if s.lower().startswith("0x") else int(s, 10)
    except ValueError:
        return G_MAXUINT64
    return value if 0 <= value <= G_MAXUINT64 else G_MAXUINT64


def devices(tree: Mapping[str, str | None] | None, *, x86_64: bool = True) -> list[Device] | None:
    """The devices fwupd lists from a tree keyed like ``efi/esrt/entries/entry0/fw_class``;
    None when ``efi/esrt/entries`` does not exist (fwupd: no devices, an error)."""
    if tree is None or "efi/esrt/entries" not in tree:
        return None
    prefix = "efi/esrt/entries/"
    names = sorted(
        {k[len(prefix) :].split("/", 1)[0] for k in tree if k.startswith(prefix) and len(k) > len(prefix)},
        key=_natural,
    )
    out = []
    for name in names:
        base = prefix + name + "/"
        fw_class = tree.get(base + "fw_class")
        if fw_class is None:
            continue  # "failed to read fw_class"
        guid = fw_class.strip()
        if not _GUID.match(guid) or set(guid) <= {"0", "-"}:
            continue  # "ESRT GUID '%s' was not valid" (the all-zero GUID too)
        v = {f: read_uint64(tree.get(base + f)) for f in _FIELDS}
        if v["fw_type"] > DeviceKind.DELL_TPM_FIRMWARE:
            continue  # GObject property range rejects the kind
        flags = v["capsule_flags"]
        if x86_64 and not flags & (CapsuleFlags.PERSIST_ACROSS_RESET | CapsuleFlags.INITIATE_RESET):
            # "adding PersistAcrossReset and InitiateReset as missing in ESRT"
            flags |= CapsuleFlags.PERSIST_ACROSS_RESET | CapsuleFlags.INITIATE_RESET
        out.append(
            Device(
                guid=guid.lower(),
                kind=v["fw_type"],
                version=v["fw_version"],
                lowest=v["lowest_supported_fw_version"],
                flags=int(flags),
                last_attempt_version=v["last_attempt_version"],
                last_attempt_status=v["last_attempt_status"],
                entry=name,
            )
        )
    return out


def _natural(name: str) -> tuple[str, int]:
    m = re.match(r"^(.*?)(\d+)$", name)
    return (m.group(1), int(m.group(2))) if m else (name, -1)
