"""The edk2 DXE core's pool as it lays it out in memory: block header and trailer, the bins,
free blocks, and the state a replay continues from.

Source: tianocore/edk2, edk2-stable202211 (Debian's OVMF 2022.11) to master as read in 2026,
MdeModulePkg/Core/Dxe/Mem/Pool.c. The allocator that writes these is
:class:`efihandoff.edk2.boot_services.BootServices`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from efihandoff.uefi.memmap import PAGE_SIZE

# edk2 MdeModulePkg/Core/Dxe/Mem/Pool.c, X64: POOL_HEAD {UINT32 Signature "phd0"; UINT32 Reserved;
# UINT32 Type; (pad); UINTN Size} before the data, POOL_TAIL {UINT32 Signature "ptal"; UINT32
# Reserved; UINTN Size} after it; Size counts head, data (rounded to 8) and tail. Neither Reserved
# field is written: it keeps whatever the memory held.
POOL_HEAD_SIZE = 0x18
POOL_TAIL_SIZE = 0x10
POOL_HEAD_SIGNATURE = b"phd0"
POOL_TAIL_SIGNATURE = b"ptal"
POOL_ALIGN = 8
POOL_OVERHEAD = POOL_HEAD_SIZE + POOL_TAIL_SIZE
# edk2 Pool.c mPoolSizeTable (edk2-stable202211 .. master): each bin's block size; POOL_FREE
# {UINT32 Signature "pfr0"; UINT32 Index; LIST_ENTRY Link} heads a free block.
POOL_BINS = (128, 256, 384, 640, 1024, 1664, 2688, 4352, 7040, 11392, 18432, 29824)
POOL_FREE_SIGNATURE = b"pfr0"
# MdePkg/Include/X64/ProcessorBind.h DEFAULT_/RUNTIME_PAGE_ALLOCATION_GRANULARITY: 4 KiB for
# every type on X64 (64 KiB runtime granularity is AArch64's).
POOL_GRANULARITY = PAGE_SIZE


def pool_bin(total: int) -> int:
    """Pool.c GetPoolIndexFromSize: the first bin whose blocks hold ``total`` bytes (head, data
    rounded to 8, tail); ``len(POOL_BINS)`` when none does."""
    return bisect.bisect_left(POOL_BINS, total)


PAGE_BIN = pool_bin(POOL_GRANULARITY)  # SIZE_TO_LIST (Granularity): from here, whole pages


@dataclass(frozen=True)
class PoolState:
    """The firmware's pool as boot services hand it to the OS loader, so that a replay (Xen's
    AllocatePool) continues from it: whether the build clears memory (DEBUG), the free blocks
    of each memory type's bins (heads, the one taken next last), and the free pages of each
    type's memory-type-information bin with the bin's extent."""

    debug_clear: bool = False
    free: tuple[tuple[int, int, tuple[int, ...]], ...] = ()  # (type, bin, block heads)
    bins: tuple[tuple[int, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]], ...] = ()


__all__ = [
    "PAGE_BIN",
    "POOL_ALIGN",
    "POOL_BINS",
    "POOL_FREE_SIGNATURE",
    "POOL_GRANULARITY",
    "POOL_HEAD_SIGNATURE",
    "POOL_HEAD_SIZE",
    "POOL_OVERHEAD",
    "POOL_TAIL_SIGNATURE",
    "POOL_TAIL_SIZE",
    "PoolState",
    "pool_bin",
]
