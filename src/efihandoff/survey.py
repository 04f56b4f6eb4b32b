"""Many machines at once: every kernel log, /sys/firmware copy or dump under the given paths,
each machine judged on every path exactly as ``explain`` judges it, then counted.

A file is one machine (a sysfs copy, a dump, a scenario: all its views together, as ``explain``
merges them). A kernel log holding several boots is one machine per machine it shows: boots
agree on being one machine unless the evidence differs (see :func:`same_machine`); each machine
is judged on its last boot in the file and counted once, with its number of boots. Directories
are walked recursively in sorted order; a directory that is a copy of /sys/firmware is one source. A
``.tar``/``.tar.gz`` of kernel logs is read member by member in memory (sizes bounded, nothing
extracted); one that holds a /sys/firmware copy is that copy.

Work is spread over ``jobs`` processes in chunks; the result is sorted by (path, boot), so it is
the same whatever ``jobs`` is, and ``emit`` sees each input's outcome in input order. A file
inside a directory or archive that cannot be read is counted in ``skipped`` with its reason,
never fatal; an input path named on the command line that does not exist or cannot be read is a
:class:`~efihandoff.errors.SourceError`.
"""

from __future__ import annotations

import csv
import gc
import io
import os
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from typing import Any

from efihandoff.errors import EfiHandoffError
from efihandoff.paths import memo
from efihandoff.paths.presets import PRESETS, PathSpec
from efihandoff.paths.verdict import Verdict
from efihandoff.sources import SourceKind, View
from efihandoff.survey_inputs import (
    Skipped,
    Unit,
    archive_units,
    check_roots,
    echo_safe,
    walk,
)
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.memmap import type_name

SCHEMA = "efihandoff/survey/1"
MAX_CHUNK = 32  # inputs handed to a worker at once
MIN_CHUNK = 8  # fewer costs more in hand-overs than a second worker wins
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
    boots: int = 1  # boots of this machine in the file (``boot`` is the last, the one judged)

    @property
    def key(self) -> tuple[str, int]:
        return (self.path, self.boot)

    def to_json(self) -> dict[str, Any]:
        """One row of ``machines_detail`` (and one ``--jsonl`` line)."""
        return {
            "path": self.path,
            "boot": self.boot,
            "boots": self.boots,
            "kind": self.kind,
            "vendor": self.vendor,
            "dmi": self.dmi,
            "kernel": self.kernel,
            "xen": self.xen,
            "dom0": self.dom0,
            "esrt_address": self.esrt_address,
            "esrt_memory_type": self.esrt_memory_type,
            "evidence": self.evidence,
            "observed": self.observed,
            "paths": {
                p.id: {
                    "esrt": p.esrt,
                    "tables": dict(p.tables),
                    "reserved_bytes": p.reserved_bytes,
                    "held_during_boot_bytes": p.held_during_boot_bytes,
                }
                for p in self.paths
            },
            "findings": list(self.findings),
        }


@dataclass(frozen=True)
class Progress:
    """How far a survey is: inputs done of those known so far (archives add theirs as they
    are opened), machines read, seconds since it started."""

    done: int
    total: int
    machines: int
    elapsed: float

    @property
    def rate(self) -> float:
        """Machines a second so far."""
        return self.machines / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace so far (None before the first input is done)."""
        if not self.done or self.elapsed <= 0:
            return None
        return max(0.0, (self.total - self.done) * self.elapsed / self.done)


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

    def to_json(self, detail: bool = True) -> dict[str, Any]:
        """The ``efihandoff/survey/1`` document; with ``detail``, every machine's row under
        ``machines_detail`` (sorted by path and boot)."""
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
        doc = {
            "schema": SCHEMA,
            "machines": len(self.machines),
            "boots": sum(m.boots for m in self.machines),
            "machines_with_several_boots": sum(1 for m in self.machines if m.boots > 1),
            "skipped": [s.to_json() for s in self.skipped],
            "paths": paths,
            "esrt_memory_types": _types_ordered(types),
            "evidence": dict(sorted(Counter(m.evidence for m in self.machines).items())),
            "findings": dict(sorted(findings.items())),
        }
        if detail:
            doc["machines_detail"] = [m.to_json() for m in self.machines]
        return doc

    def csv_header(self) -> list[str]:
        return [
            "path", "boot", "kind", "vendor", "dmi", "kernel", "xen", "dom0", "esrt_address",
            "esrt_memory_type", "evidence", *self.path_ids, "observed_path", "observed_esrt",
            "boots", "findings", "skipped",
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
                str(m.boots),
                " ".join(m.findings),
                "",
            ]
        blank = len(self.csv_header()) - 2
        for s in self.skipped:  # after the machines: the path, and why in the last column
            yield [s.path, *([""] * blank), s.reason]

    def to_csv(self) -> str:
        """One row per machine; one column per path with the ESRT's verdict there (empty when
        the machine has no memory map to judge), its boots and finding codes; then one row per
        skipped input with the reason in ``skipped``."""
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


@dataclass(frozen=True)
class Identity:
    """What one boot's log says about which machine printed it; None (no tables) where the log
    is silent: the ``DMI:`` line (board and BIOS revision), the firmware's ``EFI vX.Y by
    VENDOR`` and the labels of the ``efi:`` configuration-table line (labels, not addresses:
    Xen moves the ESRT, and a dom0 sees the copy)."""

    dmi: str | None = None
    firmware: str | None = None
    tables: frozenset[str] = frozenset()

    @classmethod
    def of(cls, view: View) -> Identity:
        if view.log is None:
            return cls()
        boot = view.log.boot
        firmware = None
        if boot.efi_vendor or boot.efi_version:
            firmware = f"EFI v{efi_revision(boot.efi_version)} by {boot.efi_vendor or '?'}"
        return cls(boot.dmi, firmware, frozenset(t.label for t in boot.config_tables))

    def merged(self, other: Identity) -> Identity:
        """What both say together (each field from whichever says it)."""
        return Identity(
            self.dmi or other.dmi, self.firmware or other.firmware, self.tables or other.tables
        )


def efi_revision(printed: str | None) -> str:
    """The firmware's UEFI revision as one text whichever kernel printed it: Linux before 6.2
    printed the minor number in two digits ("2.70", "2.31"), later ones digit by digit ("2.7",
    "2.3.1"; drivers/firmware/efi/efi.c efi_systab_report_header)."""
    if not printed:
        return "?"
    major, _, minor = printed.partition(".")
    digits = minor.replace(".", "").rstrip("0")
    return f"{major}.{digits or '0'}"


def same_machine(a: Identity, b: Identity) -> bool:
    """Two boots of one file are one machine unless the evidence says otherwise: every field
    both boots print is equal (a boot that prints no DMI line, no firmware line or no table
    line is silent on it, not different). A firmware update changes the BIOS revision in the
    DMI line, so the boots before and after it count as two machines."""
    return all(
        x == y or not x or not y
        for x, y in ((a.dmi, b.dmi), (a.firmware, b.firmware), (a.tables, b.tables))
    )


def _machines_of(views: Sequence[View]) -> list[tuple[list[View], int]]:
    """(views to judge, boots) per machine. The boots of a kernel log are grouped into machines
    by :func:`same_machine` (a boot joins the first group it agrees with, in file order); each
    machine is judged on its last boot. Anything else (a sysfs copy with its dmesg.txt, a dump,
    a scenario) is one machine seen through all its views."""
    if not all(v.source.kind is SourceKind.DMESG for v in views):
        return [(list(views), 1)]
    groups: list[tuple[Identity, list[View]]] = []
    for v in views:
        ident = Identity.of(v)
        for i, (known, boots) in enumerate(groups):
            if same_machine(known, ident):
                groups[i] = (known.merged(ident), [*boots, v])
                break
        else:
            groups.append((ident, [v]))
    return [([boots[-1]], len(boots)) for _, boots in groups]


def _record(
    path: str, views: Sequence[View], specs: Sequence[PathSpec], boots: int = 1
) -> MachineRecord:
    from efihandoff.explain import OBSERVED, explain

    # Survey keeps verdict words and costs, never reasons: placements are asked at their
    # canonical address and whole machines summed from their table groups (paths.memo
    # words_only), shared across machines.
    with memo.words_only():
        ex = explain(views, specs, advice=False)  # survey counts no advice
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
        boots=boots,
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


_Outcome = list[MachineRecord | Skipped]


def _views_of_unit(unit: Unit) -> list[View]:
    if unit[0] == "path":
        from efihandoff.sources import read_source

        return read_source(unit[1])
    from efihandoff.sources import log_views

    return log_views(unit[2], unit[1])


def survey_unit(unit: Unit, specs: Sequence[PathSpec]) -> _Outcome:
    """Every machine of one input, or why it gave none; never raises."""
    display = unit[1]
    try:
        views = _views_of_unit(unit)
        return [_record(display, group, specs, n) for group, n in _machines_of(views)]
    except Exception as exc:  # a survey counts what it cannot read, never stops
        return [_error(display, exc)]


def _work(chunk: list[Unit], specs: Sequence[PathSpec]) -> list[_Outcome]:
    with _few_collections():
        return [survey_unit(u, specs) for u in chunk]


# CPython's collector runs after 700 net new container objects; a survey keeps thousands of
# cached path results alive (paths.memo) and walked them every few machines (11% of a warm
# worker's time on the bench corpus), and the calling process every record so far. Rarer
# collections free the same cycles later.
SURVEY_GC_THRESHOLD = (10_000, 20, 20)


@contextmanager
def _few_collections() -> Iterator[None]:
    """Run the block with :data:`SURVEY_GC_THRESHOLD`, the process's thresholds restored
    after it."""
    old = gc.get_threshold()
    gc.set_threshold(*SURVEY_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*old)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


_Emit = Callable[[MachineRecord | Skipped], None]


def _chunks(units: Iterable[Unit], size: int) -> Iterator[list[Unit]]:
    chunk: list[Unit] = []
    for u in units:
        chunk.append(u)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def chunk_size(files: int, jobs: int) -> int:
    """Inputs per chunk: about 4 chunks per worker so the last ones finish together, at least
    :data:`MIN_CHUNK` so a worker's start and each hand-over are paid back (with 200 logs and
    2 workers: 25 a chunk), at most :data:`MAX_CHUNK`; one worker takes the most."""
    if jobs == 1:
        return MAX_CHUNK
    if not files:
        return MIN_CHUNK  # archive members: how many is not known before they are read
    return max(MIN_CHUNK, min(MAX_CHUNK, -(-files // (jobs * 4))))


def run(
    paths: Sequence[str],
    *,
    jobs: int | None = None,
    specs: Sequence[PathSpec] | None = None,
    progress: Callable[[Progress], None] | None = None,
    emit: _Emit | None = None,
) -> SurveyResult:
    """Survey every machine under ``paths`` on each of ``specs`` (default: every preset),
    with ``jobs`` worker processes (default: every core). ``progress`` is called in this
    process as inputs finish (``total`` grows as archives are opened); ``emit`` is given every
    machine and every skipped input as soon as the inputs before it are done (input order,
    names escaped), then what the walk skipped. Raises :class:`SourceError` when an input path
    does not exist or cannot be read."""
    specs = list(specs) if specs else list(PRESETS.values())
    jobs = max(1, jobs or os.cpu_count() or 1)
    check_roots(paths)
    start = time.monotonic()
    skipped: list[Skipped] = []
    entries = list(walk(paths, skipped))
    files = [("path", p) for kind, p in entries if kind == "source"]
    archives = [p for kind, p in entries if kind == "archive"]
    state = {"done": 0, "total": len(files), "machines": 0, "next": 0}

    def units() -> Iterator[Unit]:
        yield from files
        for a in archives:
            whole, members = archive_units(a, skipped)
            if whole is not None:
                state["total"] += len(whole)
                yield from whole
                continue
            for u in members:
                state["total"] += 1
                yield u

    outcomes: list[MachineRecord | Skipped] = []
    waiting: dict[int, list[_Outcome]] = {}  # chunks done out of order, for emit

    def finished(index: int, results: list[_Outcome]) -> None:
        for r in results:
            outcomes.extend(r)
            state["done"] += 1
            state["machines"] += sum(1 for o in r if isinstance(o, MachineRecord))
        if emit is not None:
            waiting[index] = results
            while state["next"] in waiting:
                for r in waiting.pop(state["next"]):
                    for o in r:
                        emit(_echo_record(o) if isinstance(o, MachineRecord) else _echo_skip(o))
                state["next"] += 1
        if progress is not None:
            total = max(state["total"], state["done"])
            elapsed = time.monotonic() - start
            progress(Progress(state["done"], total, state["machines"], elapsed))

    chunks = enumerate(_chunks(units(), chunk_size(len(files), jobs)))
    if jobs == 1:
        for i, chunk in chunks:
            finished(i, _work(chunk, specs))
    else:
        with _few_collections():  # this process keeps every record
            _run_pool(chunks, specs, jobs, finished)
    machines = sorted(
        (_echo_record(o) for o in outcomes if isinstance(o, MachineRecord)), key=lambda m: m.key
    )
    walked = [_echo_skip(s) for s in skipped]
    if emit is not None:
        for sk in walked:
            emit(sk)
    every = walked + [_echo_skip(o) for o in outcomes if isinstance(o, Skipped)]
    every.sort(key=lambda s: (s.path, s.reason))
    return SurveyResult(machines, every, [s.id for s in specs])


def _echo_skip(s: Skipped) -> Skipped:
    return Skipped(echo_safe(s.path), echo_safe(s.reason))


def _echo_record(m: MachineRecord) -> MachineRecord:
    """A record's names and the text read from the machine, made safe to echo."""
    safe = {
        name: echo_safe(value)
        for name in ("path", "vendor", "dmi", "kernel", "xen")
        if isinstance(value := getattr(m, name), str)
    }
    changed: dict[str, Any] = {k: v for k, v in safe.items() if v != getattr(m, k)}
    return replace(m, **changed) if changed else m


_Chunk = tuple[int, list[Unit]]  # (index in input order, units)
_Done = Callable[[int, list[_Outcome]], None]


def _run_pool(
    chunks: Iterable[_Chunk], specs: Sequence[PathSpec], jobs: int, finished: _Done
) -> None:
    """At most ``4 * jobs`` chunks in flight, so archives stream through bounded memory. When a
    worker dies, the chunks in flight are retried one input at a time in a worker of their own;
    an input that kills that worker too is skipped with the reason."""
    ctx = _context()
    retry: list[_Chunk] = []
    pending: dict[Future[list[_Outcome]], _Chunk] = {}
    ex = ProcessPoolExecutor(jobs, mp_context=ctx)
    try:
        for chunk in chunks:
            try:
                pending[ex.submit(_work, chunk[1], specs)] = chunk
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
    retry.sort(key=lambda c: c[0])
    try:  # can a worker run at all? (else read here, one input at a time)
        with ProcessPoolExecutor(1, mp_context=ctx) as probe:
            probe.submit(int).result()
    except BrokenProcessPool:
        for index, units in retry:
            finished(index, _work(units, specs))
        return
    for index, units in retry:
        results: list[_Outcome] = []
        for unit in units:
            try:
                with ProcessPoolExecutor(1, mp_context=ctx) as one:
                    results += one.submit(_work, [unit], specs).result()
            except BrokenProcessPool:
                why = "internal error: the worker process died reading it"
                results.append([Skipped(unit[1], why)])
        finished(index, results)


def _context() -> Any:
    """fork where it is the platform's safe default (Linux): workers start at once and a
    calling script needs no ``__main__`` guard; elsewhere the platform's default."""
    return get_context("fork") if sys.platform.startswith("linux") else get_context()


def _fresh_pool(
    ex: ProcessPoolExecutor,
    pending: dict[Future[list[_Outcome]], _Chunk],
    retry: list[_Chunk],
    jobs: int,
    ctx: Any,
) -> ProcessPoolExecutor:
    retry.extend(pending.values())
    pending.clear()
    ex.shutdown(wait=False, cancel_futures=True)
    return ProcessPoolExecutor(jobs, mp_context=ctx)


def _drain(
    pending: dict[Future[list[_Outcome]], _Chunk], finished: _Done, retry: list[_Chunk]
) -> bool:
    """Collect what is done; True when the pool broke."""
    done, _ = wait(pending, return_when=FIRST_COMPLETED)
    broken = False
    for fut in done:
        chunk = pending.pop(fut)
        try:
            finished(chunk[0], fut.result())
        except BrokenProcessPool:
            retry.append(chunk)
            broken = True
    return broken


__all__ = [
    "SCHEMA",
    "SURVEY_GC_THRESHOLD",
    "Identity",
    "MachineRecord",
    "PathRecord",
    "Progress",
    "Skipped",
    "SurveyResult",
    "check_roots",
    "chunk_size",
    "echo_safe",
    "efi_revision",
    "run",
    "same_machine",
    "survey_unit",
]
