"""fwts's ``esrt`` test, check by check (fwts src/uefi/esrt/esrt.c ``esrt_test1``,
``check_entries``; values from src/lib/include/fwts_uefi.h). fwts reads the sysfs files Linux
writes; each check here takes the value a file shows."""

from __future__ import annotations

from efihandoff.uefi.esrt import (
    ESRT_FIRMWARE_RESOURCE_VERSION,
    VENDOR_RANGE_MAX,
    VENDOR_RANGE_MIN,
    FwType,
    LastAttemptStatus,
)


def count_nonzero(count: int) -> bool:
    """esrt_test1: fw_resource_count must be non-zero."""
    return count != 0


def count_max_nonzero(count_max: int) -> bool:
    """esrt_test1: fw_resource_count_max must be non-zero."""
    return count_max != 0


def count_within_max(count: int, count_max: int) -> bool:
    """esrt_test1: fw_resource_count <= fw_resource_count_max (Linux never compares them)."""
    return count <= count_max


def version_supported(version: int) -> bool:
    """esrt_test1: fw_resource_version must be 1."""
    return version == ESRT_FIRMWARE_RESOURCE_VERSION


def has_entries(n: int) -> bool:
    """check_entries: "CannotFindEntries" when no entry directory exists."""
    return n > 0


def fw_type_defined(fw_type: int) -> bool:
    """check_entries: FwType <= ESRT_FW_TYPE_UEFIDRIVER."""
    return fw_type <= FwType.UEFI_DRIVER


def version_not_below_lowest(fw_version: int, lowest: int) -> bool:
    """check_entries: FwVersion >= LowestSupportedFwVersion."""
    return fw_version >= lowest


def last_attempt_status_valid(status: int) -> bool:
    """check_entries: <= LAST_ATTEMPT_STATUS_ERROR_UNSATISFIED_DEPENDENCIES or in the vendor
    range (0x1000..0x4000 inclusive, as the spec and fwts have it)."""
    return (
        status <= LastAttemptStatus.ERROR_UNSATISFIED_DEPENDENCIES
        or VENDOR_RANGE_MIN <= status <= VENDOR_RANGE_MAX
    )
