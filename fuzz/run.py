"""The fuzz driver: a parent that hands case ranges to one worker process at a time, watches
it with a wall-clock deadline per case, and restarts it after a hang or a crash; the worker runs
each case in-process under an address-space limit (``RLIMIT_AS``) and a CPU-time limit per case.

Outcomes per case: ``ok`` (a result or the project's own error), ``escape`` (any other
exception, or an output that fails its check), ``hang`` (CPU limit or wall deadline), ``memory``
(MemoryError, or the worker killed by the kernel). An escape's signature is its exception type
and the innermost efihandoff frame (module and function, not the line, so it survives edits);
one minimal reproducer per distinct signature is saved under ``fuzz/reproducers/<target>/``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPRODUCERS = HERE / "reproducers"
KNOWN = HERE / "known.toml"


class CaseTimeout(BaseException):
    """Raised in the worker when a case uses up its CPU time (BaseException: no ``except
    Exception`` in the code under test swallows it)."""


# --------------------------------------------------------------------------------------------
# worker side


def _signature(target: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    inner = next(
        (f for f in reversed(frames) if "/efihandoff/" in f.filename.replace(os.sep, "/")),
        frames[-1] if frames else None,
    )
    where = "?"
    if inner is not None:
        path = inner.filename.replace(os.sep, "/")
        mod = path.split("/src/", 1)[-1].removesuffix(".py").replace("/", ".")
        where = f"{mod}:{inner.name}"
    return f"{target}|{type(exc).__name__}|{where}"


def classify(
    target: str, data: bytes, work: Path, cpu_seconds: float, rss_slack_mib: int = 150
) -> tuple[str, str, str]:
    """(outcome, signature, message) of one case, run here under a CPU-time limit. A case that
    raises the process's peak RSS by more than twice its input plus ``rss_slack_mib`` is a
    memory blow-up too (the bound issue 15 sets for explain)."""
    fresh = _reset_peak()
    before_rss = _rss()
    before_peak = _peak()
    outcome = _classify(target, data, work, cpu_seconds)
    peak = _peak()
    grew = peak - before_rss
    rose = fresh or peak > before_peak  # without a reset, only a new high-water mark tells
    if outcome[0] == "ok" and rose and grew > 2 * len(data) + (rss_slack_mib << 20):
        return (
            "memory",
            f"{target}|rss",
            f"peak RSS grew {grew >> 20} MiB on a {len(data) >> 10} KiB input",
        )
    return outcome


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return _peak()


def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux: 5 > /proc/self/clear_refs); False if it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak() -> int:
    """Peak RSS since the last reset: VmHWM (ru_maxrss also counts what a forked parent
    had resident before exec, so it is only a fallback)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _classify(target: str, data: bytes, work: Path, cpu_seconds: float) -> tuple[str, str, str]:
    from efihandoff.errors import EfiHandoffError
    from fuzz.targets import TARGETS, Rejected

    t = TARGETS[target]
    # A per-case CPU timer (ITIMER_PROF counts user and system time); disarmed before the
    # handler could fire outside the case.
    _ARMED[0] = True
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        t.run(data, work)
    except Rejected:
        return "ok", "", "rejected by the harness"
    except EfiHandoffError:
        return "ok", "", ""
    except CaseTimeout:
        return "hang", f"{target}|hang", f"more than {cpu_seconds:g} s of CPU"
    except MemoryError as exc:
        return "memory", _signature(target, exc), "MemoryError"
    except RecursionError as exc:
        return "escape", _signature(target, exc), "RecursionError: " + str(exc)[:200]
    except Exception as exc:
        return "escape", _signature(target, exc), f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        _ARMED[0] = False
        signal.setitimer(signal.ITIMER_PROF, 0)
    return "ok", "", ""


_ARMED = [False]


def _on_prof(signum: int, frame: object) -> None:
    if _ARMED[0]:
        _ARMED[0] = False
        raise CaseTimeout()


def minimise(target: str, data: bytes, sig: str, work: Path, cpu: float, budget_s: float) -> bytes:
    """Smaller input with the same signature: drop line runs, then byte runs (ddmin-like), within
    ``budget_s`` seconds."""
    deadline = time.monotonic() + budget_s

    def same(candidate: bytes) -> bool:
        if time.monotonic() > deadline:
            return False
        outcome, s, _ = classify(target, candidate, work, cpu)
        return s == sig and outcome != "ok"

    best = data
    for unit in (b"\n", None):
        pieces = best.split(b"\n") if unit else [best[i : i + 64] for i in range(0, len(best), 64)]
        if unit is None and len(best) > 1 << 20:
            break  # byte-level on large binaries costs more than it saves
        join = (lambda ps: b"\n".join(ps)) if unit else (lambda ps: b"".join(ps))
        chunk = max(1, len(pieces) // 2)
        while chunk >= 1 and time.monotonic() < deadline:
            i, shrunk = 0, False
            while i < len(pieces) and time.monotonic() < deadline:
                trial = pieces[:i] + pieces[i + chunk :]
                if trial and same(join(trial)):
                    pieces, shrunk = trial, True
                else:
                    i += chunk
            if not shrunk:
                chunk //= 2
        best = join(pieces)
    return best


def save_reproducer(target: str, sig: str, data: bytes, outcome: str, message: str) -> Path:
    from fuzz.targets import TARGETS

    digest = hashlib.sha256(sig.encode()).hexdigest()[:12]
    d = REPRODUCERS / target
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{outcome}-{digest}.{TARGETS[target].ext}"
    if len(data) > 256 << 10:  # big inputs are repetitive: kept compressed (read by load())
        p = p.with_name(p.name + ".gz")
        data = gzip.compress(data, mtime=0)
    p.write_bytes(data)
    (d / f"{outcome}-{digest}.txt").write_text(f"{sig}\n{message}\n")
    return p


def load(path: Path) -> bytes:
    """A saved reproducer's input (``.gz`` files are stored compressed)."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def signature_of(path: Path) -> str:
    """The signature saved beside a reproducer (first line of its .txt)."""
    txt = path.parent / (path.name.split(".", 1)[0] + ".txt")
    return txt.read_text().split("\n", 1)[0] if txt.exists() else ""


def worker(args: argparse.Namespace) -> None:
    """Read ``target start end`` lines, print one JSON line per case (and one before it)."""
    from fuzz.targets import TARGETS, make_case

    limit = args.memory_mib << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGPROF, _on_prof)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    work = Path(tempfile.mkdtemp(prefix="efihandoff-fuzz-"))
    seen: set[str] = set(args.seen or ())
    out = sys.stdout
    for line in sys.stdin:
        target, start, end, until = line.split()
        t = TARGETS[target]
        i = int(start)
        for i in range(int(start), int(end)):
            if time.time() > float(until):
                break
            print(json.dumps({"start": i}), file=out, flush=True)
            data = make_case(t, args.seed, i)
            outcome, sig, msg = classify(target, data, work, args.cpu, args.rss_slack_mib)
            rec: dict[str, object] = {"i": i, "outcome": outcome}
            if outcome != "ok":
                rec.update(sig=sig, msg=msg)
                if sig not in seen and args.save:
                    seen.add(sig)
                    small = data
                    if outcome == "escape":
                        small = minimise(target, data, sig, work, args.cpu, args.minimise_s)
                    rec["saved"] = str(save_reproducer(target, sig, small, outcome, msg))
            print(json.dumps(rec), file=out, flush=True)
            if outcome == "memory":
                return  # a fresh worker, so the next case's peak RSS is its own
        else:
            i = int(end)
        print(json.dumps({"batch": "done", "next": i}), file=out, flush=True)


# --------------------------------------------------------------------------------------------
# parent side


@dataclass
class Tally:
    cases: int = 0
    escapes: int = 0
    hangs: int = 0
    memory: int = 0
    signatures: dict[str, dict[str, object]] = field(default_factory=dict)


def known() -> dict[str, str]:
    """Open defects in code this harness does not own: ``exception|module:function`` (the
    signature without its target) -> who owns it. Reported, but they do not fail the run."""
    if not KNOWN.exists():
        return {}
    return {k: str(v) for k, v in tomllib.loads(KNOWN.read_text()).get("known", {}).items()}


def is_known(sig: str, table: dict[str, str] | None = None) -> bool:
    table = known() if table is None else table
    return sig in table or sig.split("|", 1)[-1] in table


def replay(paths: list[str], args: argparse.Namespace) -> int:
    """Run saved reproducers (``fuzz/reproducers/<target>/<file>``) under the limits; exit 1
    when any still escapes, hangs or blows up."""
    limit = args.memory_mib << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGPROF, _on_prof)
    work = Path(tempfile.mkdtemp(prefix="efihandoff-fuzz-"))
    bad = 0
    for name in paths:
        p = Path(name)
        outcome, sig, msg = classify(p.parent.name, load(p), work, args.cpu)
        print(f"{p}: {outcome} {sig} {msg}".rstrip())
        bad += outcome != "ok"
    return 1 if bad else 0


def _saved_signatures() -> list[str]:
    return [p.read_text().split("\n", 1)[0] for p in REPRODUCERS.glob("*/*.txt")]


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        cmd = [
            sys.executable,
            "-m",
            "fuzz",
            "--worker",
            "--seed",
            str(args.seed),
            "--cpu",
            str(args.cpu),
            "--memory-mib",
            str(args.memory_mib),
            "--minimise-s",
            str(args.minimise_s),
            "--rss-slack-mib",
            str(args.rss_slack_mib),
        ]
        if args.save:
            cmd.append("--save")
        for s in _saved_signatures():
            cmd += ["--seen", s]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE.parent,
            bufsize=1,
        )
        self.buf = b""
        self.cpu_at_start = 0.0

    def send(self, target: str, start: int, end: int, until: float) -> None:
        """Run cases [start, end) of target, stopping at wall-clock time ``until``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{target} {start} {end} {until!r}\n")
        self.proc.stdin.flush()

    def readline(self, timeout: float) -> str | None:
        """One line, '' at EOF, None on timeout (raw reads: select() cannot see what a
        buffered reader already holds)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return ""
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode() + "\n"

    def _stat(self) -> tuple[str, float] | None:
        """(state, CPU seconds) of the worker from /proc, or None."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        return fields[0], (int(fields[11]) + int(fields[12])) / tick

    def mark(self) -> None:
        """A case starts: remember the CPU time the worker has used so far."""
        st = self._stat()
        self.cpu_at_start = st[1] if st else 0.0

    def starved(self, cpu_limit: float) -> bool:
        """Still runnable, with less CPU than a case may use since the case started."""
        st = self._stat()
        return st is not None and st[0] == "R" and st[1] - self.cpu_at_start < cpu_limit

    def kill(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        return self.proc.returncode


def _record(tally: dict[str, Tally], target: str, rec: dict[str, object]) -> None:
    t = tally[target]
    t.cases += 1
    outcome = rec["outcome"]
    if outcome == "ok":
        return
    t.escapes += outcome == "escape"
    t.hangs += outcome == "hang"
    t.memory += outcome == "memory"
    sig = str(rec["sig"])
    entry = t.signatures.setdefault(sig, {"outcome": outcome, "count": 0, "msg": rec.get("msg")})
    entry["count"] = int(entry["count"]) + 1  # type: ignore[call-overload]
    if "saved" in rec:
        entry["saved"] = rec["saved"]


def drive(args: argparse.Namespace) -> int:
    from fuzz.targets import TARGETS

    names = args.targets or list(TARGETS)
    per_target = max(1, args.cases // len(names))
    deadline = time.monotonic() + args.seconds if args.seconds else None
    per_target_s = args.seconds / len(names) if args.seconds else None
    tally = {n: Tally() for n in names}
    started = time.monotonic()
    worker = Worker(args)
    for name in names:
        # A fresh worker per target: a long-lived one that imported half of a tree someone was
        # editing mixes old and new modules (false escapes such as a missing keyword argument).
        worker.kill()
        worker = Worker(args)
        t_end = time.monotonic() + per_target_s if per_target_s else None
        i = args.start
        stop = args.start + per_target
        while i < stop:
            if (t_end and time.monotonic() > t_end) or (deadline and time.monotonic() > deadline):
                break
            batch_end = min(stop, i + args.batch)
            ends = [e for e in (t_end, deadline) if e is not None]
            until = time.time() + (min(ends) - time.monotonic() if ends else 1e9)
            worker.send(name, i, batch_end, until)
            current = None
            extensions = 0
            while True:
                line = worker.readline(args.wall)
                if line is None and extensions < 4 and worker.starved(args.cpu):
                    extensions += 1  # runnable but short of CPU (a loaded machine): not a hang
                    continue
                if line is None or line == "":  # hang past the wall deadline, or worker died
                    rc = worker.kill()
                    if current is not None:
                        outcome = "hang" if line is None else "memory"
                        why = (
                            f"no answer in {args.wall:g} s"
                            if line is None
                            else f"worker died (exit {rc}; RLIMIT_AS or the OOM killer)"
                        )
                        rec = {
                            "i": current,
                            "outcome": outcome,
                            "sig": f"{name}|{outcome}",
                            "msg": why,
                        }
                        if args.save:
                            from fuzz.targets import make_case

                            rec["saved"] = str(
                                save_reproducer(
                                    name,
                                    f"{name}|{outcome}|{current}",
                                    make_case(TARGETS[name], args.seed, current),
                                    outcome,
                                    why,
                                )
                            )
                        _record(tally, name, rec)
                        i = current + 1
                    worker = Worker(args)
                    break
                msg = json.loads(line)
                if "start" in msg:
                    current = msg["start"]
                    extensions = 0
                    worker.mark()
                elif "batch" in msg:
                    i = batch_end if msg["next"] >= batch_end else msg["next"]
                    if i < batch_end:
                        stop = i  # the time budget ran out inside the batch
                    break
                else:
                    _record(tally, name, msg)
                    current = None
                    i = int(msg["i"]) + 1
                    if args.verbose and msg["outcome"] != "ok":
                        print(
                            f"  {name} #{msg['i']}: {msg['outcome']} {msg.get('sig')}", flush=True
                        )
        if not args.quiet:
            t = tally[name]
            distinct = sum(e["outcome"] == "escape" for e in t.signatures.values())
            print(
                f"{name:10} {t.cases:7} cases  {t.escapes} escapes ({distinct} distinct)  "
                f"{t.hangs} hangs  {t.memory} memory",
                flush=True,
            )
    worker.kill()
    return report(tally, time.monotonic() - started, args)


def report(tally: dict[str, Tally], elapsed: float, args: argparse.Namespace) -> int:
    table = known()
    new = []
    total = sum(t.cases for t in tally.values())
    for t in tally.values():
        for sig, e in sorted(t.signatures.items()):
            tag = "known" if is_known(sig, table) else "NEW"
            if tag == "NEW":
                new.append(sig)
            print(
                f"  [{tag}] {sig} x{e['count']}: {e['msg']}"
                + (f" -> {e['saved']}" if e.get("saved") else "")
            )
    print(
        f"total: {total} cases in {elapsed:.0f} s, "
        f"{sum(t.escapes for t in tally.values())} escapes, "
        f"{sum(t.hangs for t in tally.values())} hangs, "
        f"{sum(t.memory for t in tally.values())} memory blow-ups; "
        f"{len(new)} new distinct"
    )
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {
                    n: {
                        "cases": t.cases,
                        "escapes": t.escapes,
                        "hangs": t.hangs,
                        "memory": t.memory,
                        "signatures": t.signatures,
                    }
                    for n, t in tally.items()
                },
                indent=2,
            )
        )
    return 1 if new else 0


def main(argv: list[str] | None = None) -> int:
    from fuzz.targets import TARGETS

    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "targets",
        nargs="*",
        choices=[[], *TARGETS],
        metavar="TARGET",
        help=f"targets to run (default: all): {', '.join(TARGETS)}",
    )
    ap.add_argument("--cases", type=int, default=2000, help="case budget, split across targets")
    ap.add_argument("--seconds", type=float, default=0, help="time budget, split across targets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first case index")
    ap.add_argument("--cpu", type=float, default=10.0, help="CPU seconds per case")
    ap.add_argument("--wall", type=float, default=30.0, help="wall seconds per case")
    ap.add_argument("--memory-mib", type=int, default=1024, help="address-space limit")
    ap.add_argument(
        "--rss-slack-mib",
        type=int,
        default=150,
        help="a case may raise peak RSS by twice its input plus this much",
    )
    ap.add_argument("--minimise-s", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--save", action="store_true", help="save a reproducer per new signature")
    ap.add_argument("--json-out", help="write per-target figures here")
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--quiet", "-q", action="store_true")
    ap.add_argument("--replay", nargs="+", metavar="FILE", help="run saved reproducers")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seen", action="append", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.replay:
        return replay(args.replay, args)
    return drive(args)
