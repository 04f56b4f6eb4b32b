"""The firmware the handoff paths boot on: the edk2 boot-services model.

The model itself lives in :mod:`efihandoff.edk2` (below both the readers and the paths, which
both use it); this module keeps the names importable from here for existing callers.
"""

from __future__ import annotations

from efihandoff.edk2 import (
    CONFIG_TABLE_GROWTH,
    DEFAULT_ALLOCATION_LIMIT,
    PAGE_BIN,
    POOL_ALIGN,
    POOL_BINS,
    POOL_FREE_SIGNATURE,
    POOL_GRANULARITY,
    POOL_HEAD_SIGNATURE,
    POOL_HEAD_SIZE,
    POOL_OVERHEAD,
    POOL_TAIL_SIGNATURE,
    POOL_TAIL_SIZE,
    RUNTIME_TYPES,
    BootServices,
    OutOfResources,
    PoolState,
    pool_bin,
)

__all__ = [
    "CONFIG_TABLE_GROWTH",
    "DEFAULT_ALLOCATION_LIMIT",
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
    "RUNTIME_TYPES",
    "BootServices",
    "OutOfResources",
    "PoolState",
    "pool_bin",
]
