"""Benchmark: every preset on machines of 1,000 / 10,000 / 100,000 descriptors.

Baseline in the same run: the same simulation with every descriptor lookup done by a linear
walk (Linux 6.3's lookup as a scan in place of ``MemoryMap.lookup``, Xen's MEM_INFO and the
pre-6.3 lookup as a scan in place of ``uefi.memmap.FirstMatch``).

    .venv/bin/python bench/bench_simulate.py [--sizes 1000,10000,100000] [--repeat 3]

Prints, per size: each preset's time, all presets together, the naive variant and the ratio,
then the growth from one size to the next next to n log n, and the core count. Times are the
best of ``--repeat`` runs (the machine may be busy); nothing here asserts a duration.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import time
from collections.abc import Iterator

from efihandoff.edk2 import BootServices
from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.paths.presets import PRESETS
from efihandoff.paths.simulate import simulate
from efihandoff.uefi import memmap as lookup_mod
from efihandoff.uefi.esrt import ESRT_GUID, Esrt, EsrtEntry
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryAttribute, MemoryDescriptor, MemoryMap, MemoryType

T = MemoryType
WB = int(MemoryAttribute.UC | MemoryAttribute.WC | MemoryAttribute.WT | MemoryAttribute.WB)
RT = int(MemoryAttribute.RUNTIME)
# A firmware-like mix: many small boot-services allocations between free memory.
PATTERN = (
    (T.EfiConventionalMemory, WB),
    (T.EfiBootServicesData, WB),
    (T.EfiBootServicesCode, WB),
    (T.EfiConventionalMemory, WB),
    (T.EfiBootServicesData, WB),
    (T.EfiLoaderData, WB),
    (T.EfiRuntimeServicesData, WB | RT),
    (T.EfiACPIReclaimMemory, WB),
)


def build(n: int) -> Machine:
    """A machine of ``n`` firmware descriptors with an ESRT, MEMATTR and a vendor table in
    boot-services data, SMBIOS in runtime data; built through the firmware model directly."""
    descs = []
    addr = 0x100000
    for i in range(n - 1):
        mtype, attr = PATTERN[i % len(PATTERN)]
        pages = 1 + i % 3
        descs.append(MemoryDescriptor(int(mtype), addr, pages, attr))
        addr += pages << 12
    # Free memory at the top for the firmware's and Xen's pools.
    descs.append(MemoryDescriptor(int(T.EfiConventionalMemory), addr, 4096, WB))
    bs = BootServices(descs, PhysicalMemory(Fill.ZEROS))
    bs.allocation_limit = 1 << 48
    bs.create_system_table()
    bs_data = [d for d in descs if d.type == T.EfiBootServicesData]
    rt_data = [d for d in descs if d.type == T.EfiRuntimeServicesData]
    entry = EsrtEntry(Guid.parse("ddc0ee61-e7f0-4e7d-acc5-c070a398838e"), 1, 2, 1, 0, 0, 0)
    esrt = Esrt.of([entry] * 3).build()
    middle = bs_data[len(bs_data) // 2].phys_addr
    bs.memory.write(middle + 0x18, esrt)
    bs.install_configuration_table(ESRT_GUID, middle + 0x18)
    memattr = bs_data[-1].phys_addr + 0x18
    bs.memory.write(memattr, (2).to_bytes(4, "little") + bytes(4) + (48).to_bytes(4, "little"))
    bs.install_configuration_table(Guid.parse("dcfa911d-26eb-469f-a220-38b7dc461220"), memattr)
    vendor = bs_data[0].phys_addr + 0x18
    bs.memory.write(vendor, b"\xa5" * 64)
    bs.install_configuration_table(Guid.parse("3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9"), vendor)
    smbios = rt_data[0].phys_addr
    bs.memory.write(smbios, b"_SM3_" + bytes([0, 0x18]) + bytes(17))
    bs.install_configuration_table(Guid.parse("f2fd1544-9794-4a2c-992e-e5bbcf20e394"), smbios)
    m = bs.machine(Machine(name=f"bench-{n}", firmware_vendor="EDK II"))
    assert m.memory_map is not None and len(m.memory_map) >= n
    return m


@contextlib.contextmanager
def naive() -> Iterator[None]:
    """Every lookup a linear walk over the descriptors, no index built."""
    fm = lookup_mod.FirstMatch
    saved = (MemoryMap.lookup, fm.__init__, fm.find)

    def scan_lookup(self: MemoryMap, addr: int) -> MemoryDescriptor | None:
        i = lookup_mod.first_match_scan(self.descriptors, addr, skip_bogus=True)
        return None if i is None else self.descriptors[i]

    def keep(self: lookup_mod.FirstMatch, descs: list, *, skip_bogus: bool = False) -> None:  # type: ignore[type-arg]
        self._descs, self._skip_bogus = descs, skip_bogus

    def scan_find(self: lookup_mod.FirstMatch, addr: int) -> int | None:
        return lookup_mod.first_match_scan(self._descs, addr, skip_bogus=self._skip_bogus)

    MemoryMap.lookup = scan_lookup  # type: ignore[method-assign]
    fm.__init__ = keep  # type: ignore[method-assign]
    fm.find = scan_find  # type: ignore[method-assign]
    try:
        yield
    finally:
        MemoryMap.lookup, fm.__init__, fm.find = saved  # type: ignore[method-assign]


def run_all(m: Machine) -> tuple[dict[str, float], list[str]]:
    times: dict[str, float] = {}
    verdicts = []
    for pid, spec in PRESETS.items():
        t0 = time.perf_counter()
        r = simulate(m, spec)
        times[pid] = time.perf_counter() - t0
        verdicts.append(f"{pid}={r.esrt.verdict.value}")
    return times, verdicts


def best(m: Machine, repeat: int) -> tuple[dict[str, float], list[str]]:
    runs = [run_all(m) for _ in range(repeat)]
    per = {pid: min(r[0][pid] for r in runs) for pid in PRESETS}
    return per, runs[0][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"cores: {os.cpu_count()}  (single-threaded simulation)")
    totals: dict[int, float] = {}
    for n in sizes:
        t0 = time.perf_counter()
        m = build(n)
        built = time.perf_counter() - t0
        per, verdicts = best(m, args.repeat)
        total = sum(per.values())
        with naive():
            nper, nverdicts = best(m, 1 if n >= 100_000 else args.repeat)
        assert nverdicts == verdicts, "the naive lookups changed a verdict"
        ntotal = sum(nper.values())
        totals[n] = total
        print(f"\n{n} descriptors (machine built in {built:.3f} s); ESRT: {' '.join(verdicts)}")
        for pid in PRESETS:
            print(f"  {pid:<20} {per[pid] * 1000:8.1f} ms   naive {nper[pid] * 1000:9.1f} ms")
        print(f"  {'all presets':<20} {total:8.3f} s    naive {ntotal:9.3f} s   "
              f"naive/indexed {ntotal / total:.1f}x")
    ordered = sorted(totals)
    for a, b in itertools.pairwise(ordered):
        nlogn = (b * math.log2(b)) / (a * math.log2(a))
        print(f"growth {a} -> {b}: {totals[b] / totals[a]:.1f}x  (n: {b / a:.0f}x, "
              f"n log n: {nlogn:.1f}x)")


if __name__ == "__main__":
    main()
