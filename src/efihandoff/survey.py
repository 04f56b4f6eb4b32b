"""Many machines at once: every kernel log, /sys/firmware copy or dump under the given paths,
each machine judged on every path exactly as ``explain`` judges it, then counted.

A file is one machine per boot it holds (a kernel log), or one machine (a sysfs copy, a dump, a
scenario: all its views together, as ``explain`` merges them). Directories are walked
recursively in sorted order; a directory that is a copy of /sys/firmware is one source. A
``.tar``/``.tar.gz`` of kernel logs is read member by member in memory (sizes bounded, nothing
extracted); one that holds a /sys/firmware copy is that copy.

Work is spread over ``jobs`` processes in chunks; the result is sorted by (path, boot), so it is
the same whatever ``jobs`` is. A file that cannot be read is counted in ``skipped`` with its
reason, never fatal.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import statistics
import sys
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from efihandoff.errors import EfiHandoffError
from efihandoff.paths.presets import PRESETS, PathSpec
from efihandoff.paths.verdict import Verdict
from efihandoff.sources import SourceKind, View
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.memmap import type_name

SCHEMA = "efihandoff/survey/1"
MAX_MEMBER_BYTES = 256 << 20  # one archive member read into memory (our bound)
MAX_MEMBERS = 1_000_000  # members listed from one archive
MAX_CHUNK = 32  # inputs handed to a worker at once
_BOOT_SUFFIX = re.compile(r"#boot(\d+)$")
# Verdict words in the order the outputs list them (docs/design.md "Verdicts").
VERDICT_ORDER = tuple(str(v) for v in (
    Verdict.INTACT,
    Verdict.RELOCATED,
    Verdict.CORRUPT,
    Verdict.REFUSED,
    Verdict.CLOBBERED,
    Verdict.ABSENT,
    Verdict.UNKNOWN,
))
ABSENT = "absent"  # esrt_memory_types: the machine has no ESRT
UNKNOWN = "unknown"  # esrt_memory_types: the evidence does not tell


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathRecord:
    """One machine on one path: the ESRT's verdict, every table's, and the memory cost."""

    id: str
    esrt: str
    tables: tuple[tuple[str, str], ...]  # (table name, verdict) in firmware order
    reserved_bytes: int
    held_during_boot_bytes: int


@dataclass(frozen=True)
class MachineRecord:
    """What the survey keeps of one machine."""

    path: str  # the file (``archive::member`` inside an archive)
    boot: int  # 1-based boot number in a log; 1 for any other source
    kind: str  # source kind of the primary view (dmesg, sysfs, dump, scenario)
    vendor: str | None  # firmware vendor ("EFI v2.70 by ...")
    dmi: str | None
    kernel: str | None
    xen: str | None
    dom0: bool
    esrt_address: int | None
    esrt_memory_type: str  # UEFI type name, "unknown" or "absent"
    evidence: str  # where the memory map came from
    paths: tuple[PathRecord, ...]
    findings: tuple[str, ...]  # distinct finding codes, sorted
    observed: str | None = None  # the path id of the stack a dom0 log was printed on

    @property
    def key(self) -> tuple[str, int]:
        return (self.path, self.boot)


@dataclass(frozen=True)
class Skipped:
    """An input that gave no machine, and why."""

    path: str
    reason: str


@dataclass
class SurveyResult:
    """Every machine read (sorted by path and boot) and every input skipped (sorted by path)."""

    machines: list[MachineRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    path_ids: list[str] = field(default_factory=list)  # the paths asked for, in order

    def all_path_ids(self) -> list[str]:
        """The paths asked for, then the observed stacks of dom0 logs (sorted)."""
        extra = sorted({p.id for m in self.machines for p in m.paths} - set(self.path_ids))
        return [*self.path_ids, *extra]

    def to_json(self) -> dict[str, Any]:
        """The ``efihandoff/survey/1`` document."""
        paths: dict[str, Any] = {}
        for pid in self.all_path_ids():
            recs = [p for m in self.machines for p in m.paths if p.id == pid]
            if not recs:
                continue
            tables: dict[str, Counter[str]] = {}
            for r in recs:
                for name, verdict in r.tables:
                    tables.setdefault(name, Counter())[verdict] += 1
            paths[pid] = {
                "machines": len(recs),
                "esrt": _ordered(Counter(r.esrt for r in recs)),
                "tables": {name: _ordered(tables[name]) for name in sorted(tables)},
                "cost": {
                    "reserved_bytes": _spread([r.reserved_bytes for r in recs]),
                    "held_during_boot_bytes": _spread([r.held_during_boot_bytes for r in recs]),
                },
            }
        types = Counter(m.esrt_memory_type for m in self.machines)
        findings = Counter(code for m in self.machines for code in m.findings)
        return {
            "schema": SCHEMA,
            "machines": len(self.machines),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "paths": paths,
            "esrt_memory_types": _types_ordered(types),
            "evidence": dict(sorted(Counter(m.evidence for m in self.machines).items())),
            "findings": dict(sorted(findings.items())),
        }

    def csv_header(self) -> list[str]:
        return [
            "path", "boot", "kind", "vendor", "dmi", "kernel", "xen", "dom0", "esrt_address",
            "esrt_memory_type", "evidence", *self.path_ids, "observed_path", "observed_esrt",
        ]

    def csv_rows(self) -> Iterator[list[str]]:
        for m in self.machines:
            by_id = {p.id: p.esrt for p in m.paths}
            yield [
                m.path,
                str(m.boot),
                m.kind,
                m.vendor or "",
                m.dmi or "",
                m.kernel or "",
                m.xen or "",
                "yes" if m.dom0 else "no",
                "" if m.esrt_address is None else f"{m.esrt_address:#x}",
                m.esrt_memory_type,
                m.evidence,
                *(by_id.get(pid, "") for pid in self.path_ids),
                m.observed or "",
                by_id.get(m.observed, "") if m.observed else "",
            ]

    def to_csv(self) -> str:
        """One row per machine; one column per path with the ESRT's verdict there (empty when
        the machine has no memory map to judge)."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(self.csv_header())
        w.writerows(self.csv_rows())
        return out.getvalue()


def _ordered(c: Counter[str]) -> dict[str, int]:
    known = [v for v in VERDICT_ORDER if c.get(v)]
    other = sorted(k for k in c if k not in VERDICT_ORDER)
    return {k: c[k] for k in [*known, *other]}


def _types_ordered(c: Counter[str]) -> dict[str, int]:
    named = sorted((k for k in c if k not in (UNKNOWN, ABSENT)), key=_type_rank)
    return {k: c[k] for k in [*named, UNKNOWN, ABSENT] if c.get(k)}


def _type_rank(name: str) -> tuple[int, str]:
    from efihandoff.uefi.memmap import MemoryType

    member = MemoryType.__members__.get(name)
    return (int(member), name) if member is not None else (1 << 33, name)


def _spread(values: list[int]) -> dict[str, int]:
    # median_low: a value some machine really has (the lower middle one for an even count)
    return {"median": statistics.median_low(values), "max": max(values)}


# --------------------------------------------------------------------------------------------
# Judging one source
# --------------------------------------------------------------------------------------------


def _boot_number(view: View) -> int:
    m = _BOOT_SUFFIX.search(view.source.path)
    return int(m[1]) if m else 1


def _machines_of(views: Sequence[View]) -> list[list[View]]:
    """Kernel-log boots are machines of their own; anything else (sysfs copy with its
    dmesg.txt, dump, scenario) is one machine seen through all its views."""
    if all(v.source.kind is SourceKind.DMESG for v in views):
        return [[v] for v in views]
    return [list(views)]


def _record(path: str, views: Sequence[View], specs: Sequence[PathSpec]) -> MachineRecord:
    from efihandoff.explain import OBSERVED, explain

    ex = explain(views, specs)
    primary = next((v for v in views if v.machine is ex.machine), views[0])
    m = ex.machine
    esrt = m.table(ESRT_GUID)
    if esrt is None:
        # absent only where explain found it absent (xl dmesg, say, lists no tables at all)
        verdicts = {r.tables[ESRT_GUID].verdict for r in ex.results.values()}
        mtype = ABSENT if verdicts == {Verdict.ABSENT} else UNKNOWN
    elif esrt.table in m.memory_type_candidates:
        mtype = UNKNOWN  # the log allows several types (explain judges each)
    else:
        md = m.lookup(esrt.table)
        mtype = type_name(md.type) if md is not None else UNKNOWN
    boot = primary.log.boot if primary.log is not None else None
    # Survey counts each observed stack apart: its id names the stack.
    observed = f"observed: {ex.observed_label}" if OBSERVED in ex.results else None
    records = []
    for pid, r in ex.results.items():
        records.append(
            PathRecord(
                id=observed if pid == OBSERVED and observed else pid,
                esrt=str(r.tables[ESRT_GUID].verdict),
                tables=tuple(
                    (tv.name, str(tv.verdict)) for g, tv in r.tables.items() if g != ESRT_GUID
                ),
                reserved_bytes=r.cost.reserved_bytes,
                held_during_boot_bytes=r.cost.held_during_boot_bytes,
            )
        )
    xen = None
    if boot is not None and boot.xen is not None:
        xen = boot.xen.version
    return MachineRecord(
        path=path,
        boot=_boot_number(primary) if len(views) == 1 else 1,
        kind=str(primary.source.kind),
        vendor=m.firmware_vendor,
        dmi=boot.dmi if boot is not None else None,
        kernel=boot.kernel_version if boot is not None else None,
        xen=xen,
        dom0=any(v.dom0 for v in views),
        esrt_address=esrt.table if esrt is not None else None,
        esrt_memory_type=mtype,
        evidence=ex.memory_map_evidence,
        paths=tuple(records),
        findings=tuple(sorted({f.code for f in ex.findings})),
        observed=observed,
    )


def _strip_path(reason: str, path: str) -> str:
    """Reasons from the readers start with the path; the record already has it."""
    for p in (path, path.rsplit("::", 1)[-1]):
        if reason.startswith(p + ": "):
            return reason[len(p) + 2 :]
    return reason


def _error(path: str, exc: BaseException) -> Skipped:
    if isinstance(exc, EfiHandoffError):
        return Skipped(path, _strip_path(str(exc), path))
    text = str(exc).splitlines()[0] if str(exc) else ""
    return Skipped(path, f"internal error: {type(exc).__name__}" + (f": {text}" if text else ""))


# One unit of work: ("path", display path) reads a file or directory with read_source;
# ("log", display path, bytes) is an archive member read as a kernel log.
_Unit = tuple[Any, ...]
_Outcome = list[MachineRecord | Skipped]


def _views_of_unit(unit: _Unit) -> list[View]:
    if unit[0] == "path":
        from efihandoff.sources import read_source

        return read_source(unit[1])
    from efihandoff.sources import log_views

    return log_views(unit[2], unit[1])


def survey_unit(unit: _Unit, specs: Sequence[PathSpec]) -> _Outcome:
    """Every machine of one input, or why it gave none; never raises."""
    display = unit[1]
    try:
        views = _views_of_unit(unit)
        return [_record(display, group, specs) for group in _machines_of(views)]
    except Exception as exc:  # a survey counts what it cannot read, never stops
        return [_error(display, exc)]


def _work(chunk: list[_Unit], specs: Sequence[PathSpec]) -> list[_Outcome]:
    return [survey_unit(u, specs) for u in chunk]


# --------------------------------------------------------------------------------------------
# Finding the inputs
# --------------------------------------------------------------------------------------------


def _is_sysfs_dir(p: Path) -> bool:
    try:
        from efihandoff.sources.sysfs import looks_like_sysfs
    except ImportError:  # pragma: no cover - reader not installed
        return False
    return looks_like_sysfs(p)


def _tar_kind(p: Path) -> str | None:
    """"tar" for a tar archive (plain or gzip), else None; by content, not name."""
    try:
        with p.open("rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:2] == b"\x1f\x8b" and p.name.endswith((".tar.gz", ".tgz")):
        return "tar"
    return None


def _walk(roots: Sequence[str], skipped: list[Skipped]) -> Iterator[tuple[str, str]]:
    """(kind, path): "source" for something read_source reads whole, "archive" for a tar of
    logs (or a tar read_source sorts out itself), in sorted order under each root. Symlinks
    are followed, but each real file or directory is visited once, under the first name that
    reaches it (no loops, no machine counted twice)."""
    seen: set[tuple[int, int]] = set()
    for root in roots:
        p = Path(root)
        if not p.exists() and not p.is_symlink():
            skipped.append(Skipped(root, "no such file or directory"))
            continue
        yield from _walk_one(p, root, skipped, seen)


def _walk_one(
    p: Path, display: str, skipped: list[Skipped], seen: set[tuple[int, int]]
) -> Iterator[tuple[str, str]]:
    try:
        st = p.stat()
    except OSError as exc:
        skipped.append(Skipped(display, f"cannot read: {exc.strerror or exc}"))
        return
    if (st.st_dev, st.st_ino) in seen:
        return  # reached again through a symlink (or named twice): read once
    seen.add((st.st_dev, st.st_ino))
    if stat.S_ISDIR(st.st_mode):
        if _is_sysfs_dir(p):
            yield "source", display
            return
        try:
            names = sorted(os.listdir(p))
        except OSError as exc:
            skipped.append(Skipped(display, f"cannot read: {exc.strerror or exc}"))
            return
        for name in names:
            yield from _walk_one(p / name, os.path.join(display, name), skipped, seen)
        return
    if not stat.S_ISREG(st.st_mode):
        skipped.append(Skipped(display, "not a regular file"))
        return
    yield ("archive" if _tar_kind(p) == "tar" else "source"), display


def _member_name_ok(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return not name.startswith("/") and ".." not in parts and not re.match(r"^[A-Za-z]:", name)


def _sysfs_names(names: Iterable[str]) -> bool:
    """Whether archive member names look like a /sys/firmware copy."""
    for name in names:
        parts = [x for x in name.split("/") if x not in ("", ".")]
        named = "firmware" in parts[:3] or any(x in ("efi", "memmap") for x in parts[:2])
        if named and len(parts) >= 2:
            return True
    return False


def _archive_units(
    archive: str, skipped: list[Skipped]
) -> tuple[list[_Unit] | None, Iterator[_Unit]]:
    """A sysfs-copy archive as one ``path`` unit, or the members of an archive of logs (read
    lazily, one at a time)."""
    try:
        with tarfile.open(archive, mode="r:*") as tf:
            names = []
            for i, m in enumerate(tf):
                if i >= MAX_MEMBERS:
                    break
                names.append(m.name)
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        return [("path", archive)], iter(())  # read_source says what is wrong with it
    if _sysfs_names(names):
        return [("path", archive)], iter(())
    return None, _members(archive, skipped)


def _members(archive: str, skipped: list[Skipped]) -> Iterator[_Unit]:
    try:
        with tarfile.open(archive, mode="r:*") as tf:
            for i, m in enumerate(tf):
                if i >= MAX_MEMBERS:
                    why = f"more than {MAX_MEMBERS} members: the rest not read"
                    skipped.append(Skipped(archive, why))
                    return
                display = f"{archive}::{m.name}"
                if m.isdir():
                    continue
                if not _member_name_ok(m.name):
                    why = "unsafe member name (absolute or '..'): not read"
                    skipped.append(Skipped(display, why))
                    continue
                if not m.isfile():
                    skipped.append(Skipped(display, "not a regular file in the archive"))
                    continue
                if m.size > MAX_MEMBER_BYTES:
                    why = f"{m.size} bytes, more than the {MAX_MEMBER_BYTES} read from a member"
                    skipped.append(Skipped(display, why))
                    continue
                f = tf.extractfile(m)
                if f is None:
                    skipped.append(Skipped(display, "cannot read the member"))
                    continue
                yield ("log", display, f.read(MAX_MEMBER_BYTES))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        skipped.append(Skipped(archive, f"archive cut short or corrupt: {exc}"))


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _chunks(units: Iterable[_Unit], size: int) -> Iterator[list[_Unit]]:
    chunk: list[_Unit] = []
    for u in units:
        chunk.append(u)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run(
    paths: Sequence[str],
    *,
    jobs: int | None = None,
    specs: Sequence[PathSpec] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SurveyResult:
    """Survey every machine under ``paths`` on each of ``specs`` (default: every preset),
    with ``jobs`` worker processes (default: every core). ``progress(done, total)`` is called
    in this process as inputs finish (``total`` grows as archives are opened)."""
    specs = list(specs) if specs else list(PRESETS.values())
    jobs = max(1, jobs or os.cpu_count() or 1)
    skipped: list[Skipped] = []
    entries = list(_walk(paths, skipped))
    files = [("path", p) for kind, p in entries if kind == "source"]
    archives = [p for kind, p in entries if kind == "archive"]
    state = {"done": 0, "total": len(files)}

    def units() -> Iterator[_Unit]:
        yield from files
        for a in archives:
            whole, members = _archive_units(a, skipped)
            if whole is not None:
                state["total"] += len(whole)
                yield from whole
                continue
            for u in members:
                state["total"] += 1
                yield u

    size = max(1, min(MAX_CHUNK, len(files) // (jobs * 8) if files else 8))
    outcomes: list[MachineRecord | Skipped] = []

    def finished(results: list[_Outcome]) -> None:
        for r in results:
            outcomes.extend(r)
            state["done"] += 1
        if progress is not None:
            progress(state["done"], max(state["total"], state["done"]))

    if jobs == 1:
        for chunk in _chunks(units(), size):
            finished(_work(chunk, specs))
    else:
        _run_pool(_chunks(units(), size), specs, jobs, finished)
    machines = sorted(
        (_echo_record(o) for o in outcomes if isinstance(o, MachineRecord)), key=lambda m: m.key
    )
    skipped += [o for o in outcomes if isinstance(o, Skipped)]
    skipped = [Skipped(echo_safe(s.path), echo_safe(s.reason)) for s in skipped]
    skipped.sort(key=lambda s: (s.path, s.reason))
    return SurveyResult(machines, skipped, [s.id for s in specs])


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def echo_safe(text: str) -> str:
    """``text`` with what a terminal, a CSV row or a JSON encoder would not show as written
    escaped: control characters (newlines included), DEL, C1, line separators and the lone
    surrogates an undecodable file name becomes (``\\n``, ``\\x1b``, ``\\udcff``)."""
    return _UNSAFE.sub(_escape_char, text)


def _escape_char(m: re.Match[str]) -> str:
    c = ord(m.group())
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    if c in named:
        return named[c]
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def _echo_record(m: MachineRecord) -> MachineRecord:
    """A record's names and the text read from the machine, made safe to echo."""
    fields = {
        name: echo_safe(value)
        for name in ("path", "vendor", "dmi", "kernel", "xen")
        if isinstance(value := getattr(m, name), str) and _UNSAFE.search(value)
    }
    return replace(m, **fields) if fields else m


def _run_pool(
    chunks: Iterator[list[_Unit]],
    specs: Sequence[PathSpec],
    jobs: int,
    finished: Callable[[list[_Outcome]], None],
) -> None:
    """At most ``4 * jobs`` chunks in flight, so archives stream through bounded memory. When a
    worker dies, the chunks in flight are retried one input at a time in a worker of their own;
    an input that kills that worker too is skipped with the reason."""
    ctx = _context()
    retry: list[list[_Unit]] = []
    pending: dict[Future[list[_Outcome]], list[_Unit]] = {}
    ex = ProcessPoolExecutor(jobs, mp_context=ctx)
    try:
        for chunk in chunks:
            try:
                pending[ex.submit(_work, chunk, specs)] = chunk
            except BrokenProcessPool:
                retry.append(chunk)
                ex = _fresh_pool(ex, pending, retry, jobs, ctx)
            while len(pending) >= 4 * jobs:
                if _drain(pending, finished, retry):
                    ex = _fresh_pool(ex, pending, retry, jobs, ctx)
        while pending:
            if _drain(pending, finished, retry):
                ex = _fresh_pool(ex, pending, retry, jobs, ctx)
    finally:
        ex.shutdown(cancel_futures=True)
    if not retry:
        return
    try:  # can a worker run at all? (else read here, one input at a time)
        with ProcessPoolExecutor(1, mp_context=ctx) as probe:
            probe.submit(int).result()
    except BrokenProcessPool:
        for chunk in retry:
            finished(_work(chunk, specs))
        return
    for chunk in retry:
        for unit in chunk:
            try:
                with ProcessPoolExecutor(1, mp_context=ctx) as one:
                    finished(one.submit(_work, [unit], specs).result())
            except BrokenProcessPool:
                finished([[Skipped(unit[1], "internal error: the worker process died reading it")]])


def _context() -> Any:
    """fork where it is the platform's safe default (Linux): workers start at once and a
    calling script needs no ``__main__`` guard; elsewhere the platform's default."""
    return get_context("fork") if sys.platform.startswith("linux") else get_context()


def _fresh_pool(
    ex: ProcessPoolExecutor,
    pending: dict[Future[list[_Outcome]], list[_Unit]],
    retry: list[list[_Unit]],
    jobs: int,
    ctx: Any,
) -> ProcessPoolExecutor:
    retry.extend(pending.values())
    pending.clear()
    ex.shutdown(wait=False, cancel_futures=True)
    return ProcessPoolExecutor(jobs, mp_context=ctx)


def _drain(
    pending: dict[Future[list[_Outcome]], list[_Unit]],
    finished: Callable[[list[_Outcome]], None],
    retry: list[list[_Unit]],
) -> bool:
    """Collect what is done; True when the pool broke."""
    done, _ = wait(pending, return_when=FIRST_COMPLETED)
    broken = False
    for fut in done:
        chunk = pending.pop(fut)
        try:
            finished(fut.result())
        except BrokenProcessPool:
            retry.append(chunk)
            broken = True
    return broken


__all__ = [
    "SCHEMA",
    "MachineRecord",
    "PathRecord",
    "Skipped",
    "SurveyResult",
    "run",
    "survey_unit",
]
