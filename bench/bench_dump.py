"""Benchmark: finding and reading the EFI tables in a raw memory dump against reading the
file once with ``cat FILE > /dev/null``, measured in the same run, with peak memory.

    .venv/bin/python bench/bench_dump.py [--size-gib 4] [--fill 0.0] [--seed 1] [--repeat 3]
        [--cache DIR] [--before SRC]

The dump (cached, default ``~/.cache/efihandoff-bench``) is a sparse file of ``--size-gib``
GiB (physical address = file offset) with, at seeded random page offsets, an EFI system table
(CRC32 right), its configuration array, the firmware vendor string, an ESRT of a few entries,
an RSDP and a decoy "IBI SYST" signature with a wrong CRC, all built with efihandoff.uefi's
builders. ``--fill F`` also writes pseudo-random data over a fraction F of the file (0 keeps
it sparse, as the issue asks; 1 makes every page data).

Each contender runs in its own child process, reaped with ``os.wait4`` for its own
``ru_maxrss``: ``cat``, and a Python child doing ``read_dump(path)`` + ``to_machine()`` and
checking the ESRT it found against the one planted, then ``boot_memory_map()`` (the second,
byte-granular pass ``explain`` makes over a dump for the memory map an x86 EFI stub left; none
is planted, so it reads the whole dump). Printed: wall time of each child, the time inside the
Python child around the read (interpreter start-up and imports excluded) and around the second
pass, the ratios to cat, peak RSS, and the core count. Best of ``--repeat``; nothing asserts a
time.

The contenders run interleaved, round by round; ``--before SRC`` adds another version of the
package (``git archive COMMIT src | tar -x -C DIR``, then ``--before DIR/src``) to each round.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from efihandoff.uefi.esrt import ESRT_GUID, Esrt, EsrtEntry
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.systab import ConfigurationTable, SystemTable, build_config_tables

GiB = 1 << 30
MiB = 1 << 20
PAGE = 4096
ACPI_20_GUID = Guid.parse("8868e871-e4f1-11d3-bc22-0080c73c8881")
SMBIOS3_GUID = Guid.parse("f2fd1544-9794-4a2c-992e-e5bbcf20e394")
MEMATTR_GUID = Guid.parse("dcfa911d-26eb-469f-a220-38b7dc461220")

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from efihandoff.sources.dump import read_dump
t1 = time.perf_counter()
ev = read_dump(sys.argv[1])
machine = ev.to_machine()
esrt = ev.esrt
t2 = time.perf_counter()
ev.boot_memory_map()
t3 = time.perf_counter()
print(json.dumps({
    "import_s": t1 - t0, "read_s": t2 - t1, "boot_map_s": t3 - t2,
    "system_table": ev.system_table_address,
    "esrt_address": ev.esrt_address,
    "esrt": esrt.build().hex() if esrt is not None else None,
    "tables": len(machine.config_tables or ()),
}))
"""


def plant(path: Path, size: int, fill: float, seed: int) -> dict[str, object]:
    """Write the dump; what was planted where."""
    rng = random.Random(f"efihandoff-bench-dump/{seed}")
    pages = size // PAGE
    spots = rng.sample(range(256, pages - 256), 7)
    systab, array, vendor, esrt_at, rsdp, smbios, decoy = (p * PAGE for p in spots)
    esrt_at += 0x18  # pool allocations sit past a pool header
    esrt = Esrt.of(
        [
            EsrtEntry(Guid.from_bytes(rng.randbytes(16)), 1, 0x10052, 0x10050, 0, 0x10052, 0),
            EsrtEntry(Guid.from_bytes(rng.randbytes(16)), 2, 3090287969, 1, 0x8010, 0, 0),
            EsrtEntry(Guid.from_bytes(rng.randbytes(16)), 2, 7, 1, 0, 7, 0),
        ]
    )
    tables = [
        ConfigurationTable(ACPI_20_GUID, rsdp),
        ConfigurationTable(SMBIOS3_GUID, smbios),
        ConfigurationTable(ESRT_GUID, esrt_at),
        ConfigurationTable(MEMATTR_GUID, 0),  # a NULL pointer, as some firmware leaves
    ]
    st = SystemTable.new(
        0x00020046, fw_vendor=vendor, fw_revision=0x10000, nr_tables=len(tables), tables=array
    )
    rsdp_v2 = b"RSD PTR " + bytes([0]) + b"EDK2  " + bytes([2]) + (0).to_bytes(4, "little")
    rsdp_v2 += (36).to_bytes(4, "little") + (0).to_bytes(8, "little") + bytes(4)
    blobs = {
        systab: st.build(),
        array: build_config_tables(tables),
        vendor: "EDK II".encode("utf-16-le") + b"\0\0",
        esrt_at: esrt.build(),
        rsdp: rsdp_v2,
        smbios: b"_SM3_" + bytes([0, 0x18]) + bytes(17),
        decoy: st.build()[:16] + b"\xde\xad\xbe\xef" + st.build()[20:],  # bad CRC32
    }
    with open(path, "wb") as f:
        f.truncate(size)
        if fill > 0:
            block = random.Random(seed).randbytes(MiB).replace(b"IBI SYST", b"IBI SYSx")
            nblocks = size // MiB
            for i in sorted(random.Random(seed + 1).sample(range(nblocks), int(nblocks * fill))):
                f.seek(i * MiB)
                f.write(block)
        for off, data in blobs.items():
            f.seek(off)
            f.write(data)
    return {"system_table": systab, "esrt_address": esrt_at, "esrt": esrt.build().hex()}


def run_child(
    argv: list[str], *, capture: bool, env: dict[str, str] | None = None
) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes (this child alone) and stdout."""
    t = time.perf_counter()
    p = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    out = p.stdout.read().decode() if capture and p.stdout else ""
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        err = p.stderr.read().decode() if p.stderr else ""
        raise SystemExit(f"{argv[0]} failed ({p.returncode}): {err.strip()[-500:]}")
    return wall, usage.ru_maxrss * 1024, out  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gib", type=float, default=4)
    ap.add_argument("--fill", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache", default=os.environ.get("EFIHANDOFF_BENCH_CACHE"))
    ap.add_argument(
        "--before",
        metavar="SRC",
        help="also run the child on another version's source tree (its src/ directory, e.g. "
        "from git archive), alternately with this one",
    )
    a = ap.parse_args(argv)
    cache = Path(a.cache or Path.home() / ".cache" / "efihandoff-bench")
    cache.mkdir(parents=True, exist_ok=True)
    size = int(a.size_gib * GiB) // MiB * MiB
    path = cache / f"dump-s{a.seed}-{size // MiB}MiB-fill{a.fill:g}.raw"
    truth_path = path.with_suffix(".json")
    if truth_path.exists() and path.exists():
        truth = json.loads(truth_path.read_text())
        made = "reused"
    else:
        t = time.perf_counter()
        truth = plant(path, size, a.fill, a.seed)
        truth_path.write_text(json.dumps(truth))
        made = f"written in {time.perf_counter() - t:.1f} s"
    on_disk = os.stat(path).st_blocks * 512
    print(f"cores: os.cpu_count() = {os.cpu_count()}")
    print(
        f"dump: {path} ({made}); {size / GiB:.2f} GiB, {on_disk / 1024:.0f} KiB allocated "
        f"(fill {a.fill:g})"
    )
    run_child(["cat", str(path)], capture=False)  # page cache warm for all
    cat_cmd = ["sh", "-c", f'cat "{path}" > /dev/null']
    child = [sys.executable, "-c", CHILD, str(path)]
    before_env = None
    if a.before:
        before_env = dict(os.environ, PYTHONPATH=str(Path(a.before).resolve()))
    cats, runs, befores = [], [], []
    for _ in range(a.repeat):  # interleaved, so a change of load hits every contender
        cats.append(run_child(cat_cmd, capture=False))
        runs.append(run_child(child, capture=True))
        if before_env is not None:
            befores.append(run_child(child, capture=True, env=before_env))
    cat_s = min(c[0] for c in cats)
    cat_rss = max(c[1] for c in cats) / MiB
    print(f"cat FILE > /dev/null:               {cat_s:7.3f} s  peak RSS {cat_rss:6.1f} MiB")
    best = min(runs, key=lambda r: r[0])
    info = json.loads(best[2])
    read_s = min(json.loads(r[2])["read_s"] for r in runs)
    boot_s = min(json.loads(r[2])["boot_map_s"] for r in runs)
    rss = max(r[1] for r in runs)
    ok = info["esrt"] == truth["esrt"] and info["system_table"] == truth["system_table"]
    print(
        f"read_dump + to_machine (in child):  {read_s:7.3f} s  ratio to cat {read_s / cat_s:5.2f}x"
    )
    print(
        f"boot_memory_map (explain, 2nd):     {boot_s:7.3f} s  ratio to cat {boot_s / cat_s:5.2f}x"
    )
    extra: dict[str, object] = {}
    if befores:
        b_read = min(json.loads(r[2])["read_s"] for r in befores)
        b_boot = min(json.loads(r[2])["boot_map_s"] for r in befores)
        b_rss = max(r[1] for r in befores) / MiB
        print(
            f"before: read {b_read:.3f} s ({b_read / cat_s:.2f}x cat), boot_memory_map "
            f"{b_boot:.3f} s ({b_boot / cat_s:.2f}x), peak RSS {b_rss:.1f} MiB"
        )
        extra = {"before_read_s": round(b_read, 3), "before_boot_map_s": round(b_boot, 3),
                 "before_peak_rss_mib": round(b_rss, 1)}
    whole = best[0]
    print(
        f"python child, start to exit:        {whole:7.3f} s  ratio to cat {whole / cat_s:5.2f}x"
        f"  (start-up and imports {info['import_s']:.2f} s)"
    )
    print(f"peak RSS of the python child:       {rss / MiB:6.1f} MiB")
    print(
        f"found: system table at {info['system_table']:#x}, ESRT at "
        f"{(info['esrt_address'] or 0):#x}, {info['tables']} config tables; "
        f"{'matches' if ok else 'DOES NOT MATCH'} what was planted"
    )
    print("summary:", json.dumps({
        "cores": os.cpu_count(), "size_gib": size / GiB, "fill": a.fill, "cat_s": round(cat_s, 3),
        "read_s": round(read_s, 3), "ratio": round(read_s / cat_s, 2),
        "boot_map_s": round(boot_s, 3),
        "child_s": round(best[0], 3), "peak_rss_mib": round(rss / MiB, 1), "found": ok, **extra,
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
