"""Benchmark: ``efihandoff survey`` over a generated corpus of kernel logs against
``grep -c 'efi:'`` over the same files, measured in the same run.

    .venv/bin/python bench/bench_survey.py [--logs 10000] [--size-mb 1024] [--seed 1]
        [--jobs 2] [--cache DIR] [--limit N] [--no-survey] [--compare N] [--floor-lines]

The corpus (bench/make_corpus.py) is generated once into the cache directory (default
``~/.cache/efihandoff-bench``) and reused. Before timing, every file is read once so the page
cache is warm for every contender. Baselines: one ``grep -c 'efi:'`` after another over all the
files (``find | xargs -0 grep``: one core) and ``xargs -0 -P JOBS -n 500`` (every core asked
for). Then, with ``JOBS`` worker processes: reading every file with the kernel-log reader alone
(``read_source``, no judging); the pure-Python floor (``floor``: every memory-map line's
numbers found and converted, nothing else a reader does; with ``--floor-lines`` also over those
lines alone, cut out of the logs beforehand); and the whole survey
(``survey.run``). Last, on one core and the first 100 MiB of logs, the line-by-line reader
against the fast path. With ``--compare N``, the first N files surveyed with the path-result
cache (efihandoff.paths.memo) on and off: the output must be the same byte for byte. Each line
prints the time, the throughput and the ratio to the grep baseline on every core. Times are
wall-clock, best of ``--repeat`` for the short ones; the machine may be busy (nothing here
asserts a time).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import mmap
import os
import re
import subprocess
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_corpus

MiB = 1 << 20


def corpus(cache: Path, logs: int, size_mb: float, seed: int) -> tuple[Path, float | None]:
    """The corpus directory (generated now, or reused) and the seconds generating took."""
    root = cache / f"corpus-s{seed}-n{logs}-m{size_mb:g}"
    done = root.with_suffix(".complete")
    if done.exists():
        return root, None
    t = time.perf_counter()
    planted = make_corpus.make_corpus(
        root, logs=logs, seed=seed, size_mb=size_mb, jobs=os.cpu_count() or 1
    )
    with open(root.with_suffix(".truth.jsonl"), "w", encoding="utf-8") as f:
        for p in planted:
            f.write(json.dumps(p.to_json(), sort_keys=True) + "\n")
    done.write_text("ok\n")
    return root, time.perf_counter() - t


def files_of(root: Path, limit: int | None) -> list[str]:
    out = sorted(str(p) for p in root.rglob("*") if p.is_file())
    return out[:limit] if limit else out


def warm(files: list[str]) -> int:
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                total += len(chunk)
    return total


def grep(files: list[str], parallel: int) -> float:
    """Seconds for grep -c 'efi:' over the files, fed by xargs (-P when parallel > 1)."""
    args = ["xargs", "-0"] + (["-P", str(parallel), "-n", "500"] if parallel > 1 else [])
    t = time.perf_counter()
    subprocess.run(
        [*args, "grep", "-c", "efi:"],
        input="\0".join(files).encode(),
        stdout=subprocess.DEVNULL,
        check=False,  # grep exits 1 for a batch without a match
    )
    return time.perf_counter() - t


def _read_one(path: str) -> int:
    from efihandoff.errors import EfiHandoffError
    from efihandoff.sources import read_source

    try:
        return len(read_source(path))
    except EfiHandoffError:
        return 0


def read_only(files: list[str], jobs: int) -> tuple[float, int]:
    # imported before the workers fork: a worker's first import (compiling the reader's
    # patterns, ~0.3 s) is start-up, not reading
    import efihandoff.sources.kernellog
    import efihandoff.sources.logmachine  # noqa: F401

    t = time.perf_counter()
    with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as ex:
        views = sum(ex.map(_read_one, files, chunksize=max(1, len(files) // (jobs * 16))))
    return time.perf_counter() - t, views


# The pure-Python floor: the numbers of every memory-map line the reader must find (Linux
# efi_print_memmap and E820 lines, Xen's EFI map lines), with nothing else of a reader: no
# prefixes, timestamps, boots, repeats or records. Each pattern starts with a literal, so sre
# scans for it in C; Xen's lines are looked for only in a file holding "(XEN)".
_FLOOR_LINUX = re.compile(
    rb"mem(?:[0-9]+: \[([^\]\n]*)\] range=\[| )0x([0-9a-f]+)-0x([0-9a-f]+)\]( [a-zA-Z ]+)?"
)
# Xen's line: "(XEN)  SSSSSSSSSSSSS-EEEEEEEEEEEEE type=T attr=AAAAAAAAAAAAAAAA", 13-digit start
# and end before the literal
_FLOOR_XEN = re.compile(rb" type=([0-9]+) attr=([0-9a-f]{16})")


def _floor_data(path: str) -> bytes | mmap.mmap:
    with open(path, "rb") as f:
        if f.read(2) == b"\x1f\x8b":
            f.seek(0)
            try:
                return gzip.decompress(f.read())
            except (OSError, EOFError, zlib.error):
                return b""  # the corpus's broken gzip
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _floor_one(path: str) -> int:
    data = _floor_data(path)
    rows = [(k or w, int(a, 16), int(b, 16)) for k, a, b, w in _FLOOR_LINUX.findall(data)]
    if data.find(b"(XEN)") >= 0:
        for m in _FLOOR_XEN.finditer(data):
            r = data[max(0, m.start() - 27) : m.start()]
            try:
                rows.append((int(m[1]), int(m[2], 16), int(r[:13], 16), int(r[14:], 16)))
            except ValueError:
                continue  # " type=" in another line
    return len(rows)


def floor(files: list[str], jobs: int) -> tuple[float, int]:
    """Seconds and map lines for the pure-Python floor over ``files`` in ``jobs`` processes."""
    t = time.perf_counter()
    with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as ex:
        n = sum(ex.map(_floor_one, files, chunksize=max(1, len(files) // (jobs * 16))))
    return time.perf_counter() - t, n


def map_lines_only(files: list[str], out: Path) -> list[str]:
    """Each file's lines the floor finds, cut out once into ``out`` (not timed): the floor over
    them is the cost of the map lines alone, with no other byte of the logs to scan."""
    done = out.with_name(out.name + ".complete")
    if not done.exists():
        out.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(files):
            data = _floor_data(path)
            hits = [*_FLOOR_LINUX.finditer(data), *_FLOOR_XEN.finditer(data)]
            starts = sorted({data.rfind(b"\n", 0, m.start()) + 1 for m in hits})
            with open(out / f"{i:05d}", "wb") as f:
                for a in starts:
                    b = data.find(b"\n", a)
                    f.write(data[a : len(data) if b < 0 else b + 1])
        done.write_text("ok\n")
    return files_of(out, None)


def reader_speed(files: list[str], budget: int) -> tuple[int, float, float]:
    """Bytes, seconds line by line, seconds with the fast path (one core, one file at a time)."""
    from efihandoff.errors import EfiHandoffError
    from efihandoff.sources.kernellog import read_kernel_log_file

    chosen, size = [], 0
    for f in files:
        if "garbage" in f:
            continue
        chosen.append(f)
        size += os.path.getsize(f)
        if size >= budget:
            break
    times = []
    for fast in (False, True):
        t = time.perf_counter()
        for f in chosen:
            with contextlib.suppress(EfiHandoffError):
                read_kernel_log_file(f, fast=fast)
        times.append(time.perf_counter() - t)
    return size, times[0], times[1]


def compare_memo(files: list[str], jobs: int) -> tuple[bool, float, float]:
    """Survey ``files`` with efihandoff.paths.memo's cache on, then off (EFIHANDOFF_MEMO=0,
    inherited by the workers): whether JSON and CSV are the same byte for byte, and the two
    times."""
    from efihandoff import survey
    from efihandoff.paths import memo

    out = []
    for value in ("1", "0"):
        old = os.environ.get(memo.ENV)
        os.environ[memo.ENV] = value
        try:
            t = time.perf_counter()
            r = survey.run(files, jobs=jobs)
            out.append((json.dumps(r.to_json()) + r.to_csv(), time.perf_counter() - t))
        finally:
            if old is None:
                del os.environ[memo.ENV]
            else:
                os.environ[memo.ENV] = old
    return out[0][0] == out[1][0], out[0][1], out[1][1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=10_000)
    ap.add_argument("--size-mb", type=float, default=1024)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache", default=os.environ.get("EFIHANDOFF_BENCH_CACHE"))
    ap.add_argument("--limit", type=int, default=None, help="survey only the first N files")
    ap.add_argument("--no-survey", action="store_true", help="skip the (long) survey run")
    ap.add_argument(
        "--floor-lines", action="store_true",
        help="also time the pure-Python floor over the map lines alone (cut out once, cached)",
    )
    ap.add_argument(
        "--compare", type=int, default=0, metavar="N",
        help="also survey the first N files with the path-result cache on and off: same "
        "output? how much faster?",
    )
    a = ap.parse_args(argv)
    cache = Path(a.cache or Path.home() / ".cache" / "efihandoff-bench")
    cache.mkdir(parents=True, exist_ok=True)

    print(f"cores: os.cpu_count() = {os.cpu_count()}; jobs = {a.jobs}")
    root, gen = corpus(cache, a.logs, a.size_mb, a.seed)
    files = files_of(root, a.limit)
    size = warm(files)
    mb = size / MiB
    made = "reused" if gen is None else f"generated in {gen:.0f} s"
    print(f"corpus: {root} ({made}); {len(files)} files, {mb:.0f} MiB; page cache warm")

    g1 = min(grep(files, 1) for _ in range(a.repeat))
    gp = min(grep(files, a.jobs) for _ in range(a.repeat))
    print(f"grep -c 'efi:' (xargs, one process at a time): {g1:8.2f} s  {mb / g1:8.0f} MiB/s")
    print(f"grep -c 'efi:' (xargs -P {a.jobs} -n 500):       {gp:8.2f} s  {mb / gp:8.0f} MiB/s")
    summary: dict[str, object] = {
        "cores": os.cpu_count(), "jobs": a.jobs, "files": len(files), "mib": round(mb, 1),
        "grep_one_s": round(g1, 3), "grep_parallel_s": round(gp, 3),
    }

    rt, views = read_only(files, a.jobs)
    print(
        f"read only (kernel-log reader, {a.jobs} procs): {rt:8.2f} s  {mb / rt:8.0f} MiB/s"
        f"  {views} machines  ratio to grep -P{a.jobs}: {rt / gp:.1f}x"
    )
    summary.update(read_s=round(rt, 2), read_ratio=round(rt / gp, 1))

    ft, rows = floor(files, a.jobs)
    print(
        f"pure-Python floor (map lines' numbers only, {a.jobs} procs): {ft:8.2f} s  "
        f"{mb / ft:8.0f} MiB/s  {rows} map lines  ratio to grep -P{a.jobs}: {ft / gp:.1f}x"
    )
    summary.update(floor_s=round(ft, 2), floor_ratio=round(ft / gp, 1), floor_rows=rows)
    if a.floor_lines:
        lines = map_lines_only(files, root.with_name(root.name + ".maplines"))
        lmb = warm(lines) / MiB
        lt, lrows = min(floor(lines, a.jobs) for _ in range(a.repeat))
        print(
            f"  the floor over the map lines alone ({lmb:.0f} MiB, cut out beforehand): "
            f"{lt:8.2f} s  {lrows} map lines  ratio to grep -P{a.jobs} over the corpus: "
            f"{lt / gp:.1f}x"
        )
        summary.update(floor_lines_s=round(lt, 2), floor_lines_ratio=round(lt / gp, 1))

    if a.compare:
        same, on, off = compare_memo(files[: a.compare], a.jobs)
        print(
            f"survey of the first {a.compare} files, path-result cache on / off: {on:.1f} s / "
            f"{off:.1f} s ({off / on:.2f}x); JSON and CSV {'identical' if same else 'DIFFER'}"
        )
        summary.update(memo_on_s=round(on, 1), memo_off_s=round(off, 1), memo_same=same)

    if not a.no_survey:
        from efihandoff import survey

        t = time.perf_counter()
        result = survey.run(files, jobs=a.jobs)
        st = time.perf_counter() - t
        n = len(result.machines)
        boots = sum(m.boots for m in result.machines)
        print(
            f"survey (jobs={a.jobs}): {st:8.1f} s  {mb / st:8.2f} MiB/s  {n} machines "
            f"({n / st:.1f}/s; {boots} boots, {boots / st:.1f}/s), {len(result.skipped)} skipped"
            f"  ratio to grep -P{a.jobs}: {st / gp:.0f}x"
        )
        doc = result.to_json(detail=False)
        print("  ESRT on native:", json.dumps(doc["paths"]["native"]["esrt"]))
        print("  ESRT on xen-4.17:", json.dumps(doc["paths"]["xen-4.17"]["esrt"]))
        summary.update(
            survey_s=round(st, 1), survey_ratio=round(st / gp), machines=n, boots=boots,
            skipped=len(result.skipped),
        )

    size1, slow, fast = reader_speed(files, 100 * MiB)
    m1 = size1 / MiB
    print(
        f"reader, one core, {m1:.0f} MiB of logs: line by line {slow:.1f} s "
        f"({m1 / slow:.1f} MiB/s), fast path {fast:.1f} s ({m1 / fast:.1f} MiB/s), "
        f"{slow / fast:.1f}x"
    )
    summary.update(reader_slow_mibs=round(m1 / slow, 1), reader_fast_mibs=round(m1 / fast, 1))
    print("summary:", json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
