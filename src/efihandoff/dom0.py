"""What a Xen dom0's ESRT proves about Xen's copy of it.

A dom0 is pointed at the ESRT after any Xen relocation (Xen 4.17+ efi_relocate_esrt replaces the
configuration-table pointer in place), so a table it sees in EfiACPIReclaimMemory is either the
firmware's own or Xen's copy of a boot-services-data original. Before 3ea44aa78c the copy is 16
bytes short: the last 16 bytes the dom0 reads are the edk2 POOL_TAIL right after the copied data
(facts 5.3-5.4), which is what decides between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from efihandoff.edk2 import (
    POOL_ALIGN,
    POOL_HEAD_SIZE,
    POOL_TAIL_SIGNATURE,
    POOL_TAIL_SIZE,
)
from efihandoff.findings import Finding, error
from efihandoff.paths.presets import BootMode, PathSpec
from efihandoff.uefi.esrt import ESRT_ENTRY_SIZE, Esrt
from efihandoff.uefi.memmap import PAGE_SIZE, MemoryType

_PTAL = int.from_bytes(POOL_TAIL_SIGNATURE, "little")  # 0x6c617470 = 1818326128
# Where a Xen that relocates puts its copy: EfiACPIReclaimMemory (4.17.0 d7669c1014); the 4.17
# pre-release dc7da0874b used EfiRuntimeServicesData, which no released Xen does.
XEN_COPY_TYPE = MemoryType.EfiACPIReclaimMemory


@dataclass(frozen=True)
class ShortCopy:
    """The last entry of a dom0's ESRT read as edk2's POOL_TAIL."""

    entry: int
    pool_size: int
    reserved: int  # POOL_TAIL.Reserved, never written: the pool's earlier contents


def short_copy(esrt: Esrt) -> ShortCopy | None:
    """The POOL_TAIL in the last entry's last 16 bytes, if they hold one: Xen 4.17.0 ... 4.21.0
    get_esrt_size returns count * 40 and AllocatePool(EfiACPIReclaimMemory) puts the tail
    right after that many bytes (edk2 Pool.c CoreAllocatePoolI: size aligned to 8, plus the
    24-byte POOL_HEAD and 16-byte POOL_TAIL; an allocation served by whole pages records the
    page-rounded size)."""
    if not esrt.entries or esrt.fw_resource_count != len(esrt.entries):
        return None
    last = esrt.entries[-1]
    size = last.last_attempt_version | last.last_attempt_status << 32
    data = esrt.fw_resource_count * ESRT_ENTRY_SIZE
    total = -(-data // POOL_ALIGN) * POOL_ALIGN + POOL_HEAD_SIZE + POOL_TAIL_SIZE
    paged = -(-total // PAGE_SIZE) * PAGE_SIZE
    if last.lowest_supported_fw_version != _PTAL or size not in (total, paged):
        return None
    return ShortCopy(len(esrt.entries) - 1, size, last.capsule_flags)


def short_copy_finding(where: str, found: ShortCopy) -> Finding:
    """``esrt.xen-short-copy``: what fwupd reads there and why."""
    return error(
        "esrt.xen-short-copy",
        f"{where}: the ESRT's last entry (entry{found.entry}) ends in edk2's POOL_TAIL: "
        f'lowest_supported_fw_version {_PTAL} is its signature "ptal", last_attempt_version '
        f"{found.pool_size} the pool's size, last_attempt_status 0, capsule_flags "
        f"{found.reserved:#x} its unwritten Reserved word. Xen copied the ESRT 16 bytes short "
        "(get_esrt_size before 3ea44aa78c): fwupd reads these four values, not the firmware's",
    )


def xen_may_have_copied(xen: tuple[int, ...] | None, boot: BootMode | None) -> bool:
    """Whether the Xen that ran may have relocated a boot-services-data ESRT: efi_start since
    4.17.0, efi_multiboot2 since 4.17.1 (facts 5.1); unknown version or mode: it may have."""
    if xen is None:
        return True
    spec = PathSpec(id="x", xen=xen, boot=boot or BootMode.EFI)
    if boot is None:
        return spec.xen_relocates_esrt or PathSpec(id="x", xen=xen).xen_relocates_esrt
    return spec.xen_relocates_esrt


def xen_copy_is_whole(xen: tuple[int, ...] | None) -> bool | None:
    """Whether the running Xen copies header and entries whole (3ea44aa78c); None: unknown."""
    if xen is None:
        return None
    return PathSpec(id="x", xen=xen).xen_esrt_size_fixed
