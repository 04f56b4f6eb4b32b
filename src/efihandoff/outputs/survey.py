"""A survey as rich tables: the ESRT per path, the other tables, memory types, costs,
findings, evidence and what was skipped. The model never prints; this module does."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from efihandoff.outputs.text import VERDICT_STYLE, size_text
from efihandoff.survey import VERDICT_ORDER, Progress, SurveyResult

_SKIPPED_SHOWN = 10


def render_survey(result: SurveyResult, console: Console) -> None:
    """Print a survey: one table per question a fleet analyst asks."""
    doc = result.to_json(detail=False)
    n = doc["machines"]
    console.print(
        f"[bold]efihandoff survey[/bold] — {n} machine{'s' if n != 1 else ''}, "
        f"{len(doc['skipped'])} input{'s' if len(doc['skipped']) != 1 else ''} skipped"
    )
    several = doc["machines_with_several_boots"]
    if several:
        console.print(
            f"{doc['boots']} boots read; {several} machine{'s' if several != 1 else ''} "
            f"booted more than once in {'their logs' if several != 1 else 'its log'}, "
            "each counted once (judged on its last boot)"
        )
    asked = {pid: p for pid, p in doc["paths"].items() if pid in result.path_ids}
    observed = {pid: p for pid, p in doc["paths"].items() if pid not in result.path_ids}
    if asked:
        _esrt_table("ESRT by path (machines)", asked, console)
        _other_tables(asked, console)
    if observed:
        _esrt_table("ESRT on the stacks the dom0 logs were printed on", observed, console)
    if doc["esrt_memory_types"]:
        _counts("Where firmware put the ESRT", "memory type", doc["esrt_memory_types"], n, console)
    if doc["evidence"]:
        _counts("Memory-map evidence", "evidence", doc["evidence"], n, console)
    if doc["findings"]:
        findings = dict(sorted(doc["findings"].items(), key=lambda kv: (-kv[1], kv[0])))
        _counts("Findings (machines with each code)", "code", findings, n, console)
    if doc["skipped"]:
        _skipped(doc["skipped"], console)


def progress_text(p: Progress) -> str:
    """One line of progress: inputs done of those known, machines a second, time left."""
    eta = "?" if p.eta is None else _clock(p.eta)
    return f"{p.done}/{p.total} files · {p.machines} machines · {p.rate:,.0f}/s · ETA {eta}"


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _cell(word: str, count: int, total: int) -> str:
    if not count:
        return "[dim]-[/]"
    style = VERDICT_STYLE.get(word, "")
    return f"[{style}]{count}[/] ({100 * count / total:.0f}%)" if total else str(count)


def _esrt_table(title: str, paths: dict[str, Any], console: Console) -> None:
    words = [w for w in VERDICT_ORDER if any(p["esrt"].get(w) for p in paths.values())]
    words += sorted({w for p in paths.values() for w in p["esrt"]} - set(words))
    t = Table(title=title, title_justify="left")
    t.add_column("path")
    for w in words:
        t.add_column(w, justify="right")
    for col in ("reserved median", "reserved max", "held median", "held max"):
        t.add_column(col, justify="right")
    for pid, p in paths.items():
        cost = p["cost"]
        t.add_row(
            escape(pid),
            *(_cell(w, p["esrt"].get(w, 0), p["machines"]) for w in words),
            size_text(cost["reserved_bytes"]["median"]),
            size_text(cost["reserved_bytes"]["max"]),
            size_text(cost["held_during_boot_bytes"]["median"]),
            size_text(cost["held_during_boot_bytes"]["max"]),
        )
    console.print(t)


def _other_tables(paths: dict[str, Any], console: Console) -> None:
    names = sorted({name for p in paths.values() for name in p["tables"]})
    if not names:
        return
    t = Table(title="Other configuration tables by path (machines)", title_justify="left")
    t.add_column("table")
    for pid in paths:
        t.add_column(escape(pid), overflow="fold")
    for name in names:
        cells = []
        for p in paths.values():
            counts = p["tables"].get(name, {})
            parts = [
                f"[{VERDICT_STYLE.get(w, '')}]{w}[/] {counts[w]}"
                for w in [*VERDICT_ORDER, *sorted(set(counts) - set(VERDICT_ORDER))]
                if counts.get(w)
            ]
            cells.append("\n".join(parts) or "[dim]-[/]")
        t.add_row(escape(name), *cells)
    console.print(t)


def _counts(title: str, what: str, counts: dict[str, int], total: int, console: Console) -> None:
    t = Table(title=title, title_justify="left")
    t.add_column(what)
    t.add_column("machines", justify="right")
    t.add_column("share", justify="right")
    for key, count in counts.items():
        t.add_row(escape(key), str(count), f"{100 * count / total:.1f}%" if total else "-")
    console.print(t)


def _skipped(skipped: list[dict[str, str]], console: Console) -> None:
    by_reason = Counter(s["reason"] for s in skipped)
    t = Table(title=f"Skipped ({len(skipped)})", title_justify="left")
    t.add_column("inputs", justify="right")
    t.add_column("reason", overflow="fold")
    t.add_column("first", overflow="fold")
    for reason, count in by_reason.most_common(_SKIPPED_SHOWN):
        first = next(s["path"] for s in skipped if s["reason"] == reason)
        t.add_row(str(count), escape(reason), escape(first))  # names are text, not markup
    console.print(t)
    if len(by_reason) > _SKIPPED_SHOWN:
        console.print(f"  … {len(by_reason) - _SKIPPED_SHOWN} more reasons (--json lists all)")


__all__ = ["progress_text", "render_survey"]
