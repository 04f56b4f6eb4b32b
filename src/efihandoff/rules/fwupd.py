"""fwupd's rules about what the firmware hands over (fwupd plugins/uefi-capsule
fu-uefi-capsule-device.c ``fu_uefi_capsule_device_probe``; libfwupd/fwupd-common.c
``fwupd_guid_is_valid``). How fwupd reads a sysfs tree is modelled in ``efihandoff.fwupd``."""

from __future__ import annotations

from efihandoff.uefi.guid import Guid


def fw_class_accepted(fw_class: Guid) -> bool:
    """fu_uefi_capsule_device_probe: fwupd_guid_is_valid() rejects the all-zero GUID."""
    return not fw_class.is_zero
