"""The x86 E820 map as Xen builds it from the EFI map and Linux keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class E820Type(IntEnum):
    """E820 range types (ACPI 6.5 table 15.1; Linux arch/x86/include/asm/e820/types.h)."""

    RAM = 1
    RESERVED = 2
    ACPI = 3
    NVS = 4
    UNUSABLE = 5
    PMEM = 7
    PRAM = 12
    SOFT_RESERVED = 0xEFFFFFFF
    RESERVED_KERN = 128

    @property
    def linux_name(self) -> str:
        """Name as Linux e820_print_type prints it (before 7.0)."""
        return _NAMES.get(self, f"type {int(self)}")


_NAMES = {
    E820Type.RAM: "usable",
    E820Type.RESERVED: "reserved",
    E820Type.ACPI: "ACPI data",
    E820Type.NVS: "ACPI NVS",
    E820Type.UNUSABLE: "unusable",
    E820Type.PMEM: "persistent (type 7)",
    E820Type.PRAM: "persistent (type 12)",
    E820Type.SOFT_RESERVED: "soft reserved",
}


@dataclass(frozen=True, slots=True)
class E820Range:
    """``[start, end)`` of one type."""

    start: int
    end: int
    type: int

    @property
    def size(self) -> int:
        return self.end - self.start


def merge(ranges: list[E820Range]) -> list[E820Range]:
    """Sort and merge adjacent ranges of the same type."""
    out: list[E820Range] = []
    for r in sorted(ranges, key=lambda r: (r.start, r.end)):
        if out and out[-1].type == r.type and out[-1].end == r.start:
            out[-1] = E820Range(out[-1].start, r.end, r.type)
        else:
            out.append(r)
    return out


def update(ranges: list[E820Range], start: int, end: int, old: int, new: int) -> list[E820Range]:
    """Linux e820__range_update: retype the ``old``-typed parts of ``[start, end)`` to ``new``."""
    out: list[E820Range] = []
    for r in ranges:
        if r.type != old or r.end <= start or end <= r.start:
            out.append(r)
            continue
        if r.start < start:
            out.append(E820Range(r.start, start, r.type))
        out.append(E820Range(max(r.start, start), min(r.end, end), new))
        if end < r.end:
            out.append(E820Range(end, r.end, r.type))
    return merge(out)
