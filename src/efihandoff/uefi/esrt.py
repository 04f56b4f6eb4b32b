"""The EFI System Resource Table (ESRT): header, version-1 entries and their codec.

Sources: UEFI 2.10 section 23.4 (EFI_SYSTEM_RESOURCE_TABLE, EFI_SYSTEM_RESOURCE_ENTRY); edk2
MdePkg/Include/Guid/SystemResourceTable.h (FwType and LastAttemptStatus values); Linux
drivers/firmware/efi/esrt.c (``struct efi_system_resource_table``). What Linux, fwts and fwupd
check of an ESRT is in ``efihandoff.rules`` (the findings: ``efihandoff.rules.esrt``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Annotated, Any

from efihandoff.errors import ParseError
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.layout import GUID, U32, U64, Layout

ESRT_GUID = Guid.parse("b122a263-3661-4f68-9929-78f8b0d62180")
# ESRT_HEADER_SIZE (16) and ESRT_ENTRY_SIZE (40) come from the declarations below.
ESRT_FIRMWARE_RESOURCE_VERSION = 1  # EFI_SYSTEM_RESOURCE_TABLE_FIRMWARE_RESOURCE_VERSION
# Our own bound for Esrt.parse: far above any real table (and Linux's 128), low enough that a
# hostile count over a large dump cannot make us build millions of objects. (Linux's own limit,
# 128, is efihandoff.rules.linux.LINUX_MAX_ENTRIES.)
PARSE_MAX_ENTRIES = 4096


def esrt_size(count: int) -> int:
    """Bytes of an ESRT with ``count`` entries: 16 + 40 * count."""
    return ESRT_HEADER_SIZE + ESRT_ENTRY_SIZE * count


class FwType(IntEnum):
    """ESRT FwType (edk2 SystemResourceTable.h ESRT_FW_TYPE_*)."""

    UNKNOWN = 0
    SYSTEM_FIRMWARE = 1
    DEVICE_FIRMWARE = 2
    UEFI_DRIVER = 3


class LastAttemptStatus(IntEnum):
    """ESRT LastAttemptStatus (edk2 SystemResourceTable.h LAST_ATTEMPT_STATUS_*)."""

    SUCCESS = 0
    ERROR_UNSUCCESSFUL = 1
    ERROR_INSUFFICIENT_RESOURCES = 2
    ERROR_INCORRECT_VERSION = 3
    ERROR_INVALID_FORMAT = 4
    ERROR_AUTH_ERROR = 5
    ERROR_PWR_EVT_AC = 6
    ERROR_PWR_EVT_BATT = 7
    ERROR_UNSATISFIED_DEPENDENCIES = 8


# UEFI 2.10 section 23.4 and fwts src/lib/include/fwts_uefi.h: 0x1000..0x4000 inclusive is for
# vendors. Current edk2 SystemResourceTable.h defines the maximum as 0x3FFF, anticipating a spec
# erratum; we follow the spec and fwts (the stricter check would flag 0x4000).
VENDOR_RANGE_MIN = 0x1000
VENDOR_RANGE_MAX = 0x4000
EDK2_VENDOR_RANGE_MAX = 0x3FFF


def describe_last_attempt_status(value: int) -> str:
    """``ERROR_UNSUCCESSFUL``, ``vendor error 0x1234`` or ``invalid 0x9``."""
    try:
        return LastAttemptStatus(value).name
    except ValueError:
        pass
    if VENDOR_RANGE_MIN <= value <= VENDOR_RANGE_MAX:
        return f"vendor error {value:#x}"
    return f"invalid {value:#x}"


class CapsuleFlags(IntFlag):
    """EFI_CAPSULE_HEADER.Flags bits 16..18 (Linux include/linux/efi.h EFI_CAPSULE_*)."""

    PERSIST_ACROSS_RESET = 0x10000
    POPULATE_SYSTEM_TABLE = 0x20000
    INITIATE_RESET = 0x40000


CAPSULE_FLAGS_GUID_SPECIFIC_MASK = 0xFFFF  # bits 0..15 belong to the capsule GUID (edk2 comment)


def describe_capsule_flags(value: int) -> list[str]:
    """Names of the set flags: ``GUID-specific 0xfe`` for bits 0..15, then the named bits, then
    ``unknown 0x...`` for any other bit."""
    out = []
    low = value & CAPSULE_FLAGS_GUID_SPECIFIC_MASK
    if low:
        out.append(f"GUID-specific {low:#x}")
    known = 0
    for flag in CapsuleFlags:
        if value & flag:
            out.append(str(flag.name))
        known |= int(flag)
    rest = value & ~(known | CAPSULE_FLAGS_GUID_SPECIFIC_MASK)
    if rest:
        out.append(f"unknown {rest:#x}")
    return out


def _need(data: Any, offset: int, size: int, what: str) -> int:
    """Bytes available at ``offset``; ParseError when fewer than ``size``."""
    if offset < 0 or offset > len(data):
        raise ParseError("offset outside the buffer", offset=offset, what=what)
    have = len(data) - offset
    if have < size:
        raise ParseError(f"truncated: need {size} bytes, have {have}", offset=offset, what=what)
    return have


@dataclass(frozen=True, slots=True)
class EsrtEntry:
    """EFI_SYSTEM_RESOURCE_ENTRY, version 1 (40 bytes), fields named as Linux names them (and
    its /sys/firmware/efi/esrt/entries/entryN files). Fields hold raw u32 values."""

    fw_class: Annotated[Guid, GUID]
    fw_type: Annotated[int, U32]
    fw_version: Annotated[int, U32]
    lowest_supported_fw_version: Annotated[int, U32]
    capsule_flags: Annotated[int, U32]
    last_attempt_version: Annotated[int, U32]
    last_attempt_status: Annotated[int, U32]

    def pack(self) -> bytes:
        """The 40 bytes."""
        try:
            return ENTRY_LAYOUT.pack(self)
        except struct.error as exc:
            raise ValueError(f"ESRT entry field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: Any, offset: int = 0) -> EsrtEntry:
        """Read one entry at ``offset``."""
        _need(data, offset, ESRT_ENTRY_SIZE, "ESRT entry")
        return ENTRY_LAYOUT.unpack_from(data, offset)

@dataclass(frozen=True, slots=True)
class EsrtHeader:
    """The 16-byte ESRT header."""

    fw_resource_count: Annotated[int, U32]
    fw_resource_count_max: Annotated[int, U32]  # capacity only
    fw_resource_version: Annotated[int, U64]

    def pack(self) -> bytes:
        """The 16 bytes."""
        try:
            return HEADER_LAYOUT.pack(self)
        except struct.error as exc:
            raise ValueError(f"ESRT header field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: Any, offset: int = 0) -> EsrtHeader:
        """Read a header at ``offset``."""
        _need(data, offset, ESRT_HEADER_SIZE, "ESRT header")
        return HEADER_LAYOUT.unpack_from(data, offset)

    @property
    def size(self) -> int:
        """Bytes the table claims: 16 + 40 * fw_resource_count (Max is only capacity)."""
        return esrt_size(self.fw_resource_count)


HEADER_LAYOUT = Layout(EsrtHeader)
ENTRY_LAYOUT = Layout(EsrtEntry)
ESRT_HEADER_SIZE = HEADER_LAYOUT.size
ESRT_ENTRY_SIZE = ENTRY_LAYOUT.size
ENTRY_FIELDS = ENTRY_LAYOUT.names  # in table order

@dataclass(frozen=True, slots=True)
class Esrt:
    """A whole ESRT: header fields and the entries.

    ``build`` writes the header fields and the entries exactly as given, so a table whose
    ``fw_resource_count`` differs from ``len(entries)`` can be built for tests; ``parse``
    always returns exactly ``fw_resource_count`` entries.
    """

    fw_resource_count: int
    fw_resource_count_max: int
    fw_resource_version: int
    entries: tuple[EsrtEntry, ...]

    @classmethod
    def of(
        cls,
        entries: tuple[EsrtEntry, ...] | list[EsrtEntry],
        *,
        count_max: int | None = None,
        version: int = ESRT_FIRMWARE_RESOURCE_VERSION,
    ) -> Esrt:
        """A consistent table: count = len(entries), max = ``count_max`` or the count."""
        items = tuple(entries)
        return cls(len(items), len(items) if count_max is None else count_max, version, items)

    @property
    def header(self) -> EsrtHeader:
        """The header fields."""
        return EsrtHeader(
            self.fw_resource_count, self.fw_resource_count_max, self.fw_resource_version
        )

    @property
    def size(self) -> int:
        """Bytes the header claims (16 + 40 * fw_resource_count), what Linux maps and keeps."""
        return esrt_size(self.fw_resource_count)

    def build(self) -> bytes:
        """Header as given, then the entries as given (16 + 40 * len(entries) bytes)."""
        return self.header.pack() + b"".join(entry.pack() for entry in self.entries)

    @staticmethod
    def parse_header(data: Any, offset: int = 0) -> EsrtHeader:
        """Read only the 16-byte header."""
        return EsrtHeader.unpack(data, offset)

    @classmethod
    def parse(
        cls,
        data: Any,
        offset: int = 0,
        *,
        limit: int | None = None,
        max_entries: int = PARSE_MAX_ENTRIES,
    ) -> Esrt:
        """Read the header and exactly fw_resource_count entries.

        ``limit`` bounds the bytes readable from ``offset`` (e.g. to the end of the memory
        descriptor). A count whose entries do not fit, or above ``max_entries``, raises
        ParseError before anything is allocated for it.
        """
        have = _need(data, offset, ESRT_HEADER_SIZE, "ESRT header")
        if limit is not None:
            have = min(have, max(limit, 0))
            if have < ESRT_HEADER_SIZE:
                raise ParseError(
                    f"truncated: limit {limit} is below the {ESRT_HEADER_SIZE}-byte header",
                    offset=offset,
                    what="ESRT header",
                )
        header = HEADER_LAYOUT.unpack_from(data, offset)
        count = header.fw_resource_count
        if header.size > have:
            raise ParseError(
                f"ESRT claims {count} entries ({header.size} bytes) but only {have} bytes "
                "are available",
                offset=offset,
                what="ESRT",
            )
        if count > max_entries:
            raise ParseError(
                f"ESRT claims {count} entries, more than the {max_entries} we parse",
                offset=offset,
                what="ESRT",
            )
        entries = ENTRY_LAYOUT.iter_unpack(data, offset + ESRT_HEADER_SIZE, count)
        return cls(count, header.fw_resource_count_max, header.fw_resource_version, tuple(entries))
