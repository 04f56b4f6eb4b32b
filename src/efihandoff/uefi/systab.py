"""EFI_TABLE_HEADER, EFI_SYSTEM_TABLE (64- and 32-bit) and EFI_CONFIGURATION_TABLE arrays.

Sources: UEFI 2.10 section 4.2 (EFI_TABLE_HEADER), 4.3 (EFI_SYSTEM_TABLE), 4.6
(EFI_CONFIGURATION_TABLE); Linux include/linux/efi.h (``efi_table_hdr_t``,
``efi_system_table_64_t``, ``efi_system_table_32_t``, ``efi_config_table_64_t``,
``efi_config_table_32_t``, ``EFI_*_SIGNATURE``); Linux drivers/firmware/efi/efi.c
(``efi_systab_report_header``, ``efi_config_parse_tables``).

The CRC32 of a table header is the IEEE 802.3 CRC that ``zlib.crc32`` computes (UEFI 2.10
section 4.2, CalculateCrc32), taken over HeaderSize bytes with the CRC32 field set to zero.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from efihandoff.errors import ParseError
from efihandoff.findings import Finding, error, warning
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.layout import GUID, U32, U64, UINTN, Embed, Layout

# Linux include/linux/efi.h; UEFI 2.10 section 4.3 / 4.4 / 4.5. Little-endian ASCII in memory:
# "IBI SYST", "BOOTSERV", "RUNTSERV".
EFI_SYSTEM_TABLE_SIGNATURE = 0x5453595320494249
EFI_BOOT_SERVICES_SIGNATURE = 0x56524553544F4F42
EFI_RUNTIME_SERVICES_SIGNATURE = 0x56524553544E5552

# TABLE_HEADER_SIZE (24), SYSTEM_TABLE_SIZE_64/32 (120/72) and CONFIG_TABLE_SIZE_64/32 (24/20)
# come from the declarations below.

# Our bound for "absurd" NumberOfTableEntries: edk2 grows the array 0x10 at a time and real
# firmware has a few dozen entries (edk2 MdeModulePkg/Core/Dxe/Misc/InstallConfigurationTable.c).
NR_TABLES_SANE_MAX = 1024
# Linux drivers/firmware/efi/efi.c efi_systab_report_header: ``char vendor[100]``.
LINUX_VENDOR_MAX_CHARS = 99

U32_MAX = 0xFFFFFFFF

_SIG_BYTES = EFI_SYSTEM_TABLE_SIGNATURE.to_bytes(8, "little")
_SCAN_CHUNK = 1 << 20  # window for buffers without .find (memoryview)

FINDING_CODES = (
    "systab.signature",
    "systab.header-size",
    "systab.crc",
    "systab.reserved",
    "systab.revision",
    "systab.nr-tables-large",
    "systab.nr-tables-truncated",
    "systab.tables-null",
)


def _check_bits(bits: int) -> None:
    if bits not in (32, 64):
        raise ValueError(f"bits must be 32 or 64, not {bits!r}")


def _need(data: Any, offset: int, size: int, what: str) -> None:
    """Raise ParseError unless ``size`` bytes are available at ``offset``."""
    if offset < 0 or offset > len(data) or len(data) - offset < size:
        raise ParseError(
            f"truncated: need {size} bytes, have {max(len(data) - max(offset, 0), 0)}",
            offset=offset,
            what=what,
        )


def table_crc32(raw: bytes | bytearray | memoryview, header_size: int) -> int:
    """CRC32 over the first ``header_size`` bytes of ``raw`` with the CRC32 field (bytes 16..19)
    taken as zero."""
    at, after = _CRC_AT, _CRC_AT + 4
    view = memoryview(raw)
    try:
        end = min(header_size, len(view))
        crc = zlib.crc32(view[: min(at, end)])
        if end > at:
            crc = zlib.crc32(b"\0" * (min(after, end) - at), crc)
        if end > after:
            crc = zlib.crc32(view[after:end], crc)
        return crc
    finally:
        view.release()


@dataclass(frozen=True, slots=True)
class TableHeader:
    """EFI_TABLE_HEADER (24 bytes)."""

    signature: Annotated[int, U64]
    revision: Annotated[int, U32]
    header_size: Annotated[int, U32]
    crc32: Annotated[int, U32]
    reserved: Annotated[int, U32] = 0

    @classmethod
    def unpack(cls, data: Any, offset: int = 0) -> TableHeader:
        """Read a header at ``offset``."""
        _need(data, offset, TABLE_HEADER_SIZE, "EFI_TABLE_HEADER")
        return TABLE_HEADER_LAYOUT.unpack_from(data, offset)

    def pack(self) -> bytes:
        """The 24 bytes."""
        try:
            return TABLE_HEADER_LAYOUT.pack(self)
        except struct.error as exc:
            raise ValueError(f"TableHeader field out of range: {exc}") from None

    @property
    def major(self) -> int:
        """Revision bits 31..16."""
        return self.revision >> 16

    @property
    def minor(self) -> int:
        """Revision bits 15..0."""
        return self.revision & 0xFFFF

    @property
    def revision_text(self) -> str:
        """The spec's form: ``2.70`` for 0x00020046, ``1.02`` for 0x00010002."""
        return f"{self.major}.{self.minor:02d}"

    @property
    def linux_revision_text(self) -> str:
        """As Linux prints it: ``2.7`` for 2.70, ``2.3.1`` for 2.31, ``2.10`` for 2.100."""
        # Linux drivers/firmware/efi/efi.c efi_systab_report_header: "%u.%u" of major and
        # minor / 10, then ".%u" of minor % 10 when that is non-zero.
        text = f"{self.major}.{self.minor // 10}"
        if self.minor % 10:
            text += f".{self.minor % 10}"
        return text


TABLE_HEADER_LAYOUT = Layout(TableHeader)
TABLE_HEADER_SIZE = TABLE_HEADER_LAYOUT.size
_CRC_AT = TABLE_HEADER_LAYOUT.offsets["crc32"]  # 16


def linux_report_header(hdr: TableHeader, vendor: str | None) -> str:
    """The line Linux prints for the system table, e.g. ``efi: EFI v2.7 by EDK II``.

    ``vendor`` None means the vendor string could not be mapped (Linux prints ``unknown``).
    Linux keeps at most 99 UTF-16 code units and stores each in a ``char`` (low 8 bits); the
    result here shows those bytes as Latin-1.
    """
    # Linux drivers/firmware/efi/efi.c efi_systab_report_header (pr_fmt "efi: ").
    if vendor is None:
        name = "unknown"
    else:
        encoded = vendor.encode("utf-16-le", "surrogatepass")
        units = struct.unpack(f"<{len(encoded) // 2}H", encoded)
        chars = []
        for unit in units[:LINUX_VENDOR_MAX_CHARS]:
            if unit == 0:
                break
            chars.append(chr(unit & 0xFF))
        # A unit whose low byte is 0 (e.g. U+0100) ends the C string when printed.
        name = "".join(chars).split("\0", 1)[0]
    return f"efi: EFI v{hdr.linux_revision_text} by {name}"


def read_ucs2(data: Any, offset: int, max_chars: int = 256) -> str:
    """Read a NUL-terminated CHAR16 string (e.g. FirmwareVendor) at ``offset``.

    Reads at most ``max_chars`` code units: a string that reaches that bound without a NUL is
    returned cut at the bound (Linux does the same with its 99-character buffer). Ill-formed
    UTF-16 (lone surrogates) becomes U+FFFD. A string that runs off the end of ``data``
    before its NUL or the bound, or an offset outside ``data``, raises ParseError.
    """
    if max_chars < 0:
        raise ValueError("max_chars must be >= 0")
    if offset < 0 or offset > len(data):
        raise ParseError("string offset outside the buffer", offset=offset, what="CHAR16 string")
    chunk = bytes(data[offset : offset + 2 * max_chars])  # bounded copy, at most 2*max_chars
    pos = 0
    end = None
    while True:
        hit = chunk.find(b"\0\0", pos)
        if hit < 0:
            break
        if hit % 2 == 0:
            end = hit
            break
        pos = hit + 1
    if end is None:
        if len(chunk) < 2 * max_chars:
            raise ParseError("unterminated CHAR16 string", offset=offset, what="CHAR16 string")
        end = 2 * max_chars
    return chunk[:end].decode("utf-16-le", errors="replace")


@dataclass(frozen=True, slots=True)
class ConfigurationTable:
    """EFI_CONFIGURATION_TABLE: a vendor GUID and a pointer, with no size."""

    guid: Annotated[Guid, GUID]
    table: Annotated[int, UINTN]

    def pack(self, bits: int = 64) -> bytes:
        """The 24 (64-bit) or 20 (32-bit) bytes."""
        _check_bits(bits)
        try:
            return _config_layout(bits).pack(self)
        except struct.error as exc:
            raise ValueError(f"table pointer {self.table:#x} does not fit: {exc}") from None

    @classmethod
    def unpack(cls, data: Any, offset: int = 0, bits: int = 64) -> ConfigurationTable:
        """Read one entry at ``offset``."""
        _check_bits(bits)
        layout = _config_layout(bits)
        _need(data, offset, layout.size, "EFI_CONFIGURATION_TABLE")
        return layout.unpack_from(data, offset)


CONFIG_TABLE_64 = Layout(ConfigurationTable)
CONFIG_TABLE_32 = Layout(ConfigurationTable, width=32)
CONFIG_TABLE_SIZE_64 = CONFIG_TABLE_64.size
CONFIG_TABLE_SIZE_32 = CONFIG_TABLE_32.size


def _config_layout(bits: int) -> Layout[ConfigurationTable]:
    return CONFIG_TABLE_64 if bits == 64 else CONFIG_TABLE_32


def config_table_size(bits: int = 64) -> int:
    """Size of one EFI_CONFIGURATION_TABLE entry."""
    _check_bits(bits)
    return CONFIG_TABLE_SIZE_64 if bits == 64 else CONFIG_TABLE_SIZE_32


def parse_config_tables(
    data: Any, count: int, *, bits: int = 64, offset: int = 0
) -> tuple[ConfigurationTable, ...]:
    """Read ``count`` contiguous entries at ``offset``; refuse before looping if they don't fit."""
    # Linux drivers/firmware/efi/efi.c efi_config_parse_tables: tbl64[i] / tbl32[i] by EFI_64BIT.
    size = config_table_size(bits)
    if count < 0:
        raise ParseError(f"negative table count {count}", offset=offset, what="config tables")
    _need(data, offset, count * size, f"{count} config tables")
    return tuple(_config_layout(bits).iter_unpack(data, offset, count, size))


def build_config_tables(entries: Iterable[ConfigurationTable], bits: int = 64) -> bytes:
    """The contiguous array of ``entries``."""
    return b"".join(entry.pack(bits) for entry in entries)


@dataclass(frozen=True, slots=True)
class SystemTable:
    """EFI_SYSTEM_TABLE. Pointers are physical addresses; ``bits`` picks the layout.

    Padding (``__pad1`` at offset 36 of the 64-bit layout) is not kept: ``build`` writes zero.
    Linux's efi_system_table_64_t reads ``nr_tables`` as a u32 and padding; it is kept here as
    the full UINTN (:attr:`linux_nr_tables` is Linux's view).
    """

    hdr: Annotated[TableHeader, Embed(TABLE_HEADER_LAYOUT)]
    fw_vendor: Annotated[int, UINTN]  # CHAR16 *
    fw_revision: Annotated[int, U32]
    con_in_handle: Annotated[int, UINTN]
    con_in: Annotated[int, UINTN]
    con_out_handle: Annotated[int, UINTN]
    con_out: Annotated[int, UINTN]
    stderr_handle: Annotated[int, UINTN]
    stderr: Annotated[int, UINTN]
    runtime: Annotated[int, UINTN]
    boottime: Annotated[int, UINTN]
    nr_tables: Annotated[int, UINTN]
    tables: Annotated[int, UINTN]
    bits: int = 64  # which layout: not a field of the table

    @classmethod
    def new(
        cls,
        revision: int,
        *,
        fw_vendor: int = 0,
        fw_revision: int = 0,
        nr_tables: int = 0,
        tables: int = 0,
    ) -> SystemTable:
        """A 64-bit system table with the given fields and every other pointer NULL (CRC32
        filled in by :meth:`build`)."""
        hdr = TableHeader(EFI_SYSTEM_TABLE_SIGNATURE, revision, SYSTEM_TABLE_SIZE_64, 0, 0)
        return cls(
            hdr=hdr,
            fw_vendor=fw_vendor,
            fw_revision=fw_revision,
            con_in_handle=0,
            con_in=0,
            con_out_handle=0,
            con_out=0,
            stderr_handle=0,
            stderr=0,
            runtime=0,
            boottime=0,
            nr_tables=nr_tables,
            tables=tables,
        )

    @classmethod
    def layout_size(cls, bits: int = 64) -> int:
        """Bytes of the table in the given layout (120 or 72)."""
        _check_bits(bits)
        return SYSTEM_TABLE_SIZE_64 if bits == 64 else SYSTEM_TABLE_SIZE_32

    @property
    def size(self) -> int:
        """Bytes of this table's layout."""
        return self.layout_size(self.bits)

    @property
    def linux_nr_tables(self) -> int:
        """The count Linux uses: the low 32 bits (``efi_system_table_64_t.nr_tables`` is u32)."""
        return self.nr_tables & U32_MAX

    @classmethod
    def parse(cls, data: Any, offset: int = 0, bits: int = 64) -> SystemTable:
        """Read a system table at ``offset`` in the given layout (no validation)."""
        size = cls.layout_size(bits)
        _need(data, offset, size, f"EFI_SYSTEM_TABLE ({bits}-bit)")
        return _system_layout(bits).unpack_from(data, offset, bits=bits)

    def _pack(self) -> bytes:
        header = self.hdr.pack()  # a header field out of range is the header's error
        try:
            return header + _system_layout(self.bits).pack(self)[len(header) :]
        except struct.error as exc:
            raise ValueError(f"SystemTable field out of range for {self.bits}-bit: {exc}") from None

    def build(self, fix_crc: bool = True) -> bytes:
        """The table's bytes; with ``fix_crc`` the CRC32 field is computed, else written as given.

        The CRC covers the first HeaderSize bytes of the built table (all of them when HeaderSize
        claims more than the layout holds).
        """
        _check_bits(self.bits)
        raw = bytearray(self._pack())
        if fix_crc:
            struct.pack_into("<I", raw, _CRC_AT, table_crc32(raw, self.hdr.header_size))
        return bytes(raw)

    @staticmethod
    def crc_ok(raw: Any) -> bool:
        """True when ``raw`` starts with a header whose CRC32 matches its first HeaderSize bytes.

        False when ``raw`` is too short for the header or for HeaderSize bytes.
        """
        if len(raw) < TABLE_HEADER_SIZE:
            return False
        hdr = TABLE_HEADER_LAYOUT.unpack_from(raw, 0)
        if hdr.header_size < TABLE_HEADER_SIZE or hdr.header_size > len(raw):
            return False
        return table_crc32(bytes(raw[: hdr.header_size]), hdr.header_size) == hdr.crc32

    def validate(self, raw: Any = None) -> list[Finding]:
        """Findings about this table; ``raw`` (its bytes as found) enables the CRC check."""
        out: list[Finding] = []
        hdr = self.hdr
        if hdr.signature != EFI_SYSTEM_TABLE_SIGNATURE:
            # Linux drivers/firmware/efi/efi.c efi_systab_check_header: refuses the table.
            out.append(
                error(
                    "systab.signature",
                    f"system table signature {hdr.signature:#018x}, expected "
                    f"{EFI_SYSTEM_TABLE_SIGNATURE:#018x} ('IBI SYST')",
                )
            )
        expected = self.size
        if hdr.header_size != expected:
            # UEFI 2.10 section 4.2: HeaderSize is the size of the whole table.
            make = error if hdr.header_size < expected else warning
            out.append(
                make(
                    "systab.header-size",
                    f"system table HeaderSize {hdr.header_size}, the {self.bits}-bit layout "
                    f"is {expected} bytes",
                )
            )
        if raw is not None and not self.crc_ok(raw):
            have = table_crc32(bytes(raw[: hdr.header_size]), hdr.header_size)
            out.append(
                error(
                    "systab.crc",
                    f"system table CRC32 {hdr.crc32:#010x} does not match the bytes "
                    f"(computed {have:#010x} over {min(hdr.header_size, len(raw))} bytes)",
                )
            )
        if hdr.reserved != 0:
            out.append(
                warning(
                    "systab.reserved", f"system table header Reserved is {hdr.reserved:#x}, not 0"
                )
            )
        if hdr.major not in (1, 2):
            out.append(
                error(
                    "systab.revision",
                    f"system table revision {hdr.revision:#010x} ({hdr.revision_text}): "
                    "major version is not 1 or 2",
                )
            )
        if self.nr_tables > NR_TABLES_SANE_MAX:
            out.append(
                warning(
                    "systab.nr-tables-large",
                    f"NumberOfTableEntries is {self.nr_tables}, more than {NR_TABLES_SANE_MAX}",
                )
            )
        if self.nr_tables > U32_MAX:
            # Linux include/linux/efi.h efi_system_table_64_t: nr_tables is u32 + __pad2.
            out.append(
                warning(
                    "systab.nr-tables-truncated",
                    f"NumberOfTableEntries {self.nr_tables:#x} has high bits set; Linux reads "
                    f"only the low 32 bits ({self.linux_nr_tables})",
                )
            )
        if self.tables == 0 and self.nr_tables > 0:
            out.append(
                error(
                    "systab.tables-null",
                    f"ConfigurationTable is NULL but NumberOfTableEntries is {self.nr_tables}",
                )
            )
        return out


SYSTEM_TABLE_64 = Layout(SystemTable)
SYSTEM_TABLE_32 = Layout(SystemTable, width=32)
SYSTEM_TABLE_SIZE_64 = SYSTEM_TABLE_64.size
SYSTEM_TABLE_SIZE_32 = SYSTEM_TABLE_32.size


def _system_layout(bits: int) -> Layout[SystemTable]:
    return SYSTEM_TABLE_64 if bits == 64 else SYSTEM_TABLE_32


def _plausible(buf: Any, off: int, bits: int) -> bool:
    size = SYSTEM_TABLE_SIZE_64 if bits == 64 else SYSTEM_TABLE_SIZE_32
    if len(buf) - off < size:
        return False
    raw = bytes(buf[off : off + size])  # one table's worth, never the buffer
    hdr = TABLE_HEADER_LAYOUT.unpack_from(raw, 0)
    if hdr.header_size != size or hdr.major not in (1, 2):
        return False
    return bool(table_crc32(raw, size) == hdr.crc32)


def _find_sig(buf: Any, pos: int) -> int:
    """Next index of the signature at or after ``pos``, -1 if none; never copies all of ``buf``."""
    find = getattr(buf, "find", None)
    if find is not None:
        return int(find(_SIG_BYTES, pos))
    # memoryview and other buffers without .find: scan overlapping bounded windows.
    n = len(buf)
    while pos < n:
        window = bytes(buf[pos : pos + _SCAN_CHUNK + len(_SIG_BYTES) - 1])
        hit = window.find(_SIG_BYTES)
        if hit >= 0:
            return pos + hit
        pos += _SCAN_CHUNK
    return -1


def find_system_table(buf: Any, *, bits: int = 64, start: int = 0) -> Iterator[int]:
    """Offsets in ``buf`` where a plausible system table starts.

    Plausible: the signature at an 8-byte aligned offset (relative to ``buf[0]``; UEFI pool
    allocations are 8-byte aligned), HeaderSize equal to the layout size, major revision 1 or
    2, and a matching CRC32. ``buf`` may be bytes, bytearray, mmap or memoryview; it is not
    copied.
    """
    _check_bits(bits)
    pos = max(start, 0)
    while True:
        hit = _find_sig(buf, pos)
        if hit < 0:
            return
        if hit % 8 == 0 and _plausible(buf, hit, bits):
            yield hit
        pos = hit + 1
