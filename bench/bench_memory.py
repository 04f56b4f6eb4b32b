"""Benchmark: peak RSS of the kernel-log reader against the log's size, for realistic and
hostile logs of 1, 10, 60 and 200 MiB, with a baseline measured in the same run.

    .venv/bin/python bench/bench_memory.py [--sizes 1,10,60,200] [--cache DIR] [--explain]

Each contender runs in a fresh Python process that prints its own peak RSS (``ru_maxrss``):

- baseline: the same interpreter importing efihandoff and reading the file in 1 MiB blocks
  (what any reader must pay; ``cat`` itself is a few MiB);
- ``read_kernel_log_file`` (the fast path) and, with ``--slow``, the line-by-line reader;
- with ``--explain``: ``efihandoff explain --json`` on the file (the whole pipeline).

Logs (generated once into the cache directory, reused):

- ``realistic``: boots of dmesg chatter, each with an efi=debug map of ~120 descriptors,
  the config-table line, an E820 table and ESRT lines (about one boot per MiB);
- ``hostile-map``: one boot whose EFI memory map never ends (the 78 MB log of issue 10 is
  ~700,000 descriptors): the reader keeps MAX_DESCRIPTORS and says it cut the rest;
- ``hostile-lines``: 1 MiB lines without a newline, config-table lines of thousands of
  tokens, endless ``esrt:`` lines and wrapped continuations.

The bound checked (printed, not asserted): peak RSS <= 2 x file size + 150 MiB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import resource, sys
path, what = sys.argv[1], sys.argv[2]
import efihandoff.sources.kernellog as kl
if what == "baseline":
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass
elif what == "reader":
    log = kl.read_kernel_log_file(path)
    n = sum(len(b.memory_map) for b in log.boots)
    cut = [c for b in log.boots for c in b.cut]
    print("boots", len(log.boots), "descriptors", n, "cut", len(cut), file=sys.stderr)
elif what == "slow":
    kl.read_kernel_log_file(path, fast=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _realistic(out, size: int) -> None:
    written = 0
    boot = 0
    while written < size:
        ts = 0
        lines = [f"[    0.000000] Linux version 6.6.{boot % 50} (b@example.org) #1 SMP"]
        lines.append("[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009efff] usable")
        lines.append("[    0.000000] efi: EFI v2.70 by American Megatrends")
        lines.append(
            "[    0.000000] efi: ACPI=0x9c7e6000 ACPI 2.0=0x9c7e6014 SMBIOS=0x9d0f5000 "
            "ESRT=0x9a26b918 "
        )
        addr = 0
        for i in range(120):
            pages = 1 + (i * 37) % 4096
            lines.append(
                f"[    0.000000] efi: mem{i:02d}: [Conventional|   |  |  |  |  |  |  |  |  |   "
                f"|WB|WT|WC|UC] range=[0x{addr:016x}-0x{addr + (pages << 12) - 1:016x}] "
                f"({pages >> 8}MB)"
            )
            addr += pages << 12
        lines.append("[    0.004000] esrt: Reserving ESRT space from 0x000000009a26b918 to "
                     "0x000000009a26b9a0.")
        chunk = "\n".join(lines) + "\n"
        out.write(chunk.encode())
        written += len(chunk)
        body = []
        for i in range(9000):
            ts += 97
            body.append(f"[{ts // 1000000:5d}.{ts % 1000000:06d}] usb 1-{i % 9}: chatter {i}\n")
        data = "".join(body).encode()
        out.write(data)
        written += len(data)
        boot += 1


def _hostile_map(out, size: int) -> None:
    out.write(b"[    0.000000] Linux version 6.6.1 (b@example.org) #1\n")
    written = 0
    i = 0
    block = []
    while written < size:
        addr = i << 12
        block.append(
            f"[    0.000000] efi: mem{i:02d}: [Boot Data   |   |  |  |  |  |  |  |  |  |   |WB|"
            f"WT|WC|UC] range=[0x{addr:016x}-0x{addr + 0xFFF:016x}] (0MB)\n"
        )
        i += 1
        if len(block) == 10000:
            data = "".join(block).encode()
            out.write(data)
            written += len(data)
            block = []
    out.write("".join(block).encode())


def _hostile_lines(out, size: int) -> None:
    written = 0
    n = 0
    while written < size:
        parts = [
            b"[    0.000000] efi: " + b" ".join(b"T%d=0x%x" % (k, k) for k in range(3000)) + b"\n",
            b"x" * MiB + b"\n",
            b"[    0.000000] esrt: something odd %d\n" % n * 2000,
            b"[    0.000000] efi: mem01: [Conventional|   |  |\n" + b"|WB|WT|\n" * 5,
            b"[    0.000000] Linux version 6.%d\n" % n,
        ]
        for p in parts:
            out.write(p)
            written += len(p)
        n += 1


KINDS = {"realistic": _realistic, "hostile-map": _hostile_map, "hostile-lines": _hostile_lines}


def make(cache: Path, kind: str, mb: int) -> Path:
    path = cache / f"memlog-{kind}-{mb}m.log"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            KINDS[kind](out, mb * MiB)
        tmp.rename(path)
    return path


def peak(path: Path, what: str) -> tuple[int, float, str]:
    """Peak RSS in bytes, seconds, and what the child said on stderr."""
    t = time.perf_counter()
    if what == "explain":
        code = (
            "import resource, subprocess, sys\n"
            "subprocess.run([sys.executable, '-m', 'efihandoff', 'explain', '--json', sys.argv[1]],"
            " stdout=subprocess.DEVNULL)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
        )
        args = [sys.executable, "-c", code, str(path)]
    else:
        args = [sys.executable, "-c", _CHILD, str(path), what]
    res = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT)
    return int(res.stdout.split()[-1]), time.perf_counter() - t, res.stderr.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,10,60,200", help="MiB, comma-separated")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--cache", type=Path, default=Path(
        os.environ.get("EFIHANDOFF_BENCH_CACHE", Path.home() / ".cache" / "efihandoff-bench")))
    ap.add_argument("--slow", action="store_true", help="also the line-by-line reader")
    ap.add_argument("--explain", action="store_true", help="also efihandoff explain --json")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    whats = ["baseline", "reader"] + (["slow"] if args.slow else []) + (
        ["explain"] if args.explain else [])
    print(f"cpus {os.cpu_count()}; bound: peak RSS <= 2 x size + 150 MiB")
    head = f"{'log':<16}{'MiB':>6}  {'contender':<9}{'peak MiB':>10}{'bound':>8}{'secs':>8}"
    print(head + "  ok  note")
    for kind in args.kinds.split(","):
        for mb in (int(x) for x in args.sizes.split(",")):
            path = make(args.cache, kind, mb)
            size = path.stat().st_size
            bound = 2 * size + 150 * MiB
            for what in whats:
                rss, secs, note = peak(path, what)
                ok = "yes" if rss <= bound else "NO"
                print(
                    f"{kind:<16}{size / MiB:6.0f}  {what:<9}{rss / MiB:10.1f}{bound / MiB:8.0f}"
                    f"{secs:8.1f}  {ok:<3} {note}"
                )


if __name__ == "__main__":
    main()
