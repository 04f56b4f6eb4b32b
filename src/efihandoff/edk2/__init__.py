"""The edk2 firmware model: boot services (page and pool allocation, configuration tables,
the system table) and the pool's layout in memory.

It sits below both the readers (:mod:`efihandoff.sources`: a scenario is laid out through it)
and the handoff paths (:mod:`efihandoff.paths`: Xen and Linux boot on it); it imports neither.
"""

from __future__ import annotations

from efihandoff.edk2.boot_services import (
    CONFIG_TABLE_GROWTH,
    DEFAULT_ALLOCATION_LIMIT,
    RUNTIME_TYPES,
    BootServices,
    OutOfResources,
)
from efihandoff.edk2.pool import (
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
