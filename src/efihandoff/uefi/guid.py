"""EFI_GUID: text form as Linux prints it (``%pUl``) and the in-memory byte order.

In memory (UEFI spec, Appendix A; Linux ``EFI_GUID()``): Data1 u32 LE, Data2 u16 LE, Data3 u16 LE,
Data4[8] verbatim -- the ``bytes_le`` order of RFC 4122 UUIDs.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from efihandoff.errors import ParseError

GUID_SIZE = 16
_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LE = struct.Struct("<IHH8s")


@dataclass(frozen=True, slots=True, order=True)
class Guid:
    """A GUID held as the 128-bit integer of its canonical text (Data1 most significant)."""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value < 1 << 128:
            raise ValueError(f"GUID value {self.value:#x} outside 128 bits")

    @classmethod
    def parse(cls, text: str) -> Guid:
        """Parse ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`` (any case, optional braces, surrounding
        whitespace ignored)."""
        stripped = text.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            stripped = stripped[1:-1]
        if not _TEXT.fullmatch(stripped):
            raise ParseError(f"not a GUID: {text[:60]!r}", what="GUID")
        return cls(int(stripped.replace("-", ""), 16))

    @classmethod
    def from_bytes(cls, data: bytes | memoryview, offset: int = 0) -> Guid:
        """Read 16 bytes in EFI in-memory order at ``offset``."""
        if offset < 0 or len(data) - offset < GUID_SIZE:
            raise ParseError("truncated GUID", offset=offset, what="GUID")
        d1, d2, d3, d4 = _LE.unpack_from(data, offset)
        return cls((d1 << 96) | (d2 << 80) | (d3 << 64) | int.from_bytes(d4, "big"))

    def to_bytes(self) -> bytes:
        """The 16 bytes as EFI stores them."""
        v = self.value
        data4 = (v & ((1 << 64) - 1)).to_bytes(8, "big")
        return _LE.pack(v >> 96, (v >> 80) & 0xFFFF, (v >> 64) & 0xFFFF, data4)

    @property
    def is_zero(self) -> bool:
        """True for 00000000-0000-0000-0000-000000000000 (fwupd rejects it)."""
        return self.value == 0

    def __str__(self) -> str:
        h = f"{self.value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def __repr__(self) -> str:
        return f"Guid('{self}')"


ZERO_GUID = Guid(0)
