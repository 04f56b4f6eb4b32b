"""Findings about an ESRT: the spec's rules (UEFI 2.10 section 23.4), Linux's ``efi_esrt_init``
checks (:mod:`efihandoff.rules.linux`), fwts's ``esrt`` test (:mod:`efihandoff.rules.fwts`) and
fwupd's zero-GUID rule (:mod:`efihandoff.rules.fwupd`), each check written once in its
consumer's module and reported here in one order."""

from __future__ import annotations

from efihandoff.findings import Finding, error, info, warning
from efihandoff.rules import fwts, fwupd
from efihandoff.rules import linux as lx
from efihandoff.uefi.esrt import (
    ESRT_FIRMWARE_RESOURCE_VERSION,
    ESRT_HEADER_SIZE,
    VENDOR_RANGE_MAX,
    VENDOR_RANGE_MIN,
    Esrt,
    EsrtEntry,
    EsrtHeader,
    esrt_size,
)
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryType, type_name

FINDING_CODES = (
    "esrt.version",
    "esrt.count-zero",
    "esrt.count-max-zero",
    "esrt.count-exceeds-max",
    "esrt.count-too-large",
    "esrt.header-does-not-fit",
    "esrt.does-not-fit",
    "esrt.memory-type",
    "esrt.not-boot-services-data",
    "esrt.no-entries",
    "esrt.entry-count-mismatch",
    "esrt.entry.fw-type",
    "esrt.entry.version-below-lowest",
    "esrt.entry.last-attempt-status",
    "esrt.entry.zero-fw-class",
    "esrt.entry.duplicate-fw-class",
)


def header_findings(
    header: EsrtHeader,
    *,
    room: int | None = None,
    memory_type: int | None = None,
    memory_attribute: int | None = None,
) -> list[Finding]:
    """Findings decidable from the header alone (see :func:`esrt_findings`)."""
    out: list[Finding] = []
    count = header.fw_resource_count
    count_max = header.fw_resource_count_max
    version = header.fw_resource_version
    if memory_type is not None:
        if not lx.esrt_type_accepted(memory_type, memory_attribute or 0):
            # Linux 6.3 esrt.c efi_esrt_init: "ESRT header is not in the memory map."
            out.append(
                error(
                    "esrt.memory-type",
                    f"ESRT is in {type_name(memory_type)} without the RUNTIME attribute; "
                    "Linux >= 6.3 accepts only EfiBootServicesData, EfiRuntimeServicesData, "
                    "EfiACPIReclaimMemory or EfiACPIMemoryNVS",
                )
            )
        if memory_type != MemoryType.EfiBootServicesData:
            # UEFI 2.10 section 23.4: "ESRT shall be stored in EfiBootServicesData".
            out.append(
                info(
                    "esrt.not-boot-services-data",
                    f"ESRT is in {type_name(memory_type)}; the UEFI spec asks for "
                    "EfiBootServicesData",
                )
            )
    if room is not None:
        # Linux 6.3 esrt.c efi_esrt_init: room = end of the memory descriptor - table start.
        if not lx.esrt_header_fits(room):
            out.append(
                error(
                    "esrt.header-does-not-fit",
                    f"ESRT header ({ESRT_HEADER_SIZE} bytes) does not fit in the "
                    f"{room} bytes left in its memory descriptor",
                )
            )
        elif lx.esrt_only_header(room, count):
            out.append(
                error(
                    "esrt.does-not-fit",
                    f"ESRT memory descriptor can only hold the header: {room} bytes left, "
                    f"fw_resource_count {count} needs {esrt_size(count)}",
                )
            )
        elif not lx.esrt_fits(room, count):
            out.append(
                error(
                    "esrt.does-not-fit",
                    f"ESRT with fw_resource_count {count} needs {esrt_size(count)} bytes, "
                    f"its memory descriptor has {room} left",
                )
            )
    if not lx.esrt_version_supported(version):
        # Linux esrt.c efi_esrt_init "Unsupported ESRT version"; fwts esrt_test1.
        out.append(
            error(
                "esrt.version",
                f"ESRT fw_resource_version is {version}, only "
                f"{ESRT_FIRMWARE_RESOURCE_VERSION} is defined",
            )
        )
    if lx.esrt_count_too_large(count):
        # Linux esrt.c efi_esrt_init: "fw_resource_count has very large value".
        out.append(
            error(
                "esrt.count-too-large",
                f"ESRT fw_resource_count {count} exceeds Linux's limit of {lx.LINUX_MAX_ENTRIES}",
            )
        )
    if not fwts.count_nonzero(count):
        # UEFI 2.10 section 23.4 "must not be zero"; fwts esrt_test1.
        out.append(warning("esrt.count-zero", "ESRT fw_resource_count is 0"))
    if not fwts.count_max_nonzero(count_max):
        out.append(warning("esrt.count-max-zero", "ESRT fw_resource_count_max is 0"))
    if not fwts.count_within_max(count, count_max):
        out.append(
            warning(
                "esrt.count-exceeds-max",
                f"ESRT fw_resource_count {count} exceeds fw_resource_count_max {count_max}",
            )
        )
    return out


def entry_findings(entry: EsrtEntry, index: int) -> list[Finding]:
    """Findings about one entry alone; ``index`` names it in the messages."""
    out: list[Finding] = []
    where = f"ESRT entry {index}"
    if not fwupd.fw_class_accepted(entry.fw_class):
        out.append(
            error(
                "esrt.entry.zero-fw-class",
                f"{where}: fw_class is {entry.fw_class}; fwupd rejects the entry",
            )
        )
    if not fwts.fw_type_defined(entry.fw_type):
        out.append(
            warning(
                "esrt.entry.fw-type",
                f"{where}: fw_type {entry.fw_type} is not defined by UEFI (0..3)",
            )
        )
    if not fwts.version_not_below_lowest(entry.fw_version, entry.lowest_supported_fw_version):
        out.append(
            warning(
                "esrt.entry.version-below-lowest",
                f"{where}: fw_version {entry.fw_version} is below "
                f"lowest_supported_fw_version {entry.lowest_supported_fw_version}",
            )
        )
    las = entry.last_attempt_status
    if not fwts.last_attempt_status_valid(las):
        out.append(
            warning(
                "esrt.entry.last-attempt-status",
                f"{where}: last_attempt_status {las:#x} is neither defined (0..8) nor in "
                f"the vendor range {VENDOR_RANGE_MIN:#x}..{VENDOR_RANGE_MAX:#x}",
            )
        )
    return out


def esrt_findings(
    esrt: Esrt,
    *,
    room: int | None = None,
    memory_type: int | None = None,
    memory_attribute: int | None = None,
) -> list[Finding]:
    """Every check of Linux 6.3 ``efi_esrt_init``, of the fwts ``esrt`` test, and fwupd's
    zero-GUID rule, plus duplicate fw_class.

    ``room``: bytes from the table start to the end of its memory descriptor.
    ``memory_type``/``memory_attribute``: of that descriptor; the RUNTIME attribute makes
    Linux accept any type.
    """
    out = header_findings(
        esrt.header, room=room, memory_type=memory_type, memory_attribute=memory_attribute
    )
    if not fwts.has_entries(len(esrt.entries)):
        out.append(warning("esrt.no-entries", "ESRT has no entries"))
    if len(esrt.entries) != esrt.fw_resource_count:
        out.append(
            error(
                "esrt.entry-count-mismatch",
                f"ESRT fw_resource_count is {esrt.fw_resource_count} but "
                f"{len(esrt.entries)} entries are given",
            )
        )
    seen: dict[Guid, int] = {}
    for index, entry in enumerate(esrt.entries):
        out.extend(entry_findings(entry, index))
        first = seen.setdefault(entry.fw_class, index)
        if first != index and not entry.fw_class.is_zero:
            # UEFI 2.10 section 23.4: FwClass "must be unique within all entries".
            out.append(
                warning(
                    "esrt.entry.duplicate-fw-class",
                    f"ESRT entry {index}: fw_class {entry.fw_class} repeats entry {first}",
                )
            )
    return out

