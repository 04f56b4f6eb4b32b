"""Parsing and packing through uefi.layout against hand-written struct code (the baseline).

    .venv/bin/python bench/bench_layout.py [--descriptors N] [--repeat R]

Baseline: what the modules did before one declaration per structure, in the same run: a
precompiled ``struct.Struct`` per structure and the constructor called with the unpacked
values by hand (``MemoryDescriptor(type=..., ...)``, ``EsrtEntry(Guid.from_bytes(...), ...)``).
Measured: a memory map of N descriptors (stride 48, as edk2 reports it) parsed by
``MemoryMap.parse``, the same map built back (``MemoryMap.build``), and a 128-entry ESRT parsed.
Best of R runs each; prints seconds, the ratio to the baseline and ``os.cpu_count()``.
Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import struct
import time
from collections.abc import Callable

from efihandoff.uefi.esrt import Esrt, EsrtEntry
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryDescriptor, MemoryMap

_DESC = struct.Struct("<IIQQQQ")  # the old hand-written layout (baseline only)
_ENTRY = struct.Struct("<16sIIIIII")


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _baseline_parse(raw: bytes, stride: int) -> tuple[MemoryDescriptor, ...]:
    out = []
    for off in range(0, len(raw), stride):
        mtype, _pad, phys, virt, pages, attr = _DESC.unpack_from(raw, off)
        out.append(
            MemoryDescriptor(
                type=mtype, phys_addr=phys, num_pages=pages, attribute=attr, virt_addr=virt
            )
        )
    return tuple(out)


def _baseline_build(descs: tuple[MemoryDescriptor, ...], stride: int) -> bytes:
    pad = bytes(stride - _DESC.size)
    return b"".join(
        _DESC.pack(d.type, 0, d.phys_addr, d.virt_addr, d.num_pages, d.attribute) + pad
        for d in descs
    )


def _baseline_esrt(raw: bytes) -> list[EsrtEntry]:
    count = struct.unpack_from("<I", raw)[0]
    out = []
    for i in range(count):
        g, *rest = _ENTRY.unpack_from(raw, 16 + 40 * i)
        out.append(EsrtEntry(Guid.from_bytes(g), *rest))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--descriptors", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    stride = 48
    descs = tuple(
        MemoryDescriptor(i % 16, i << 12, 1, 0xF, 0) for i in range(args.descriptors)
    )
    mm = MemoryMap(descs, stride)
    raw = mm.build()
    entries = [EsrtEntry(Guid.from_bytes(i.to_bytes(16, "little")), 1, i, 0, 0, 0, 0)
               for i in range(128)]
    esrt_raw = Esrt.of(entries).build()
    assert MemoryMap.parse(raw, stride).descriptors == _baseline_parse(raw, stride)
    assert _baseline_build(descs, stride) == raw
    assert list(Esrt.parse(esrt_raw).entries) == _baseline_esrt(esrt_raw)
    rows = [
        ("memory map parse", lambda: MemoryMap.parse(raw, stride),
         lambda: _baseline_parse(raw, stride)),
        ("memory map build", mm.build, lambda: _baseline_build(descs, stride)),
        ("ESRT parse x1000", lambda: [Esrt.parse(esrt_raw) for _ in range(1000)],
         lambda: [_baseline_esrt(esrt_raw) for _ in range(1000)]),
    ]
    print(f"cpu_count {os.cpu_count()}; {args.descriptors} descriptors, best of {args.repeat}")
    for name, new, old in rows:
        t_new, t_old = _best(new, args.repeat), _best(old, args.repeat)
        print(f"{name:18} layout {t_new:8.4f} s   baseline {t_old:8.4f} s   "
              f"ratio {t_new / t_old:5.2f}")


if __name__ == "__main__":
    main()
