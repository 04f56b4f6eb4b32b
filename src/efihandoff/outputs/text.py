"""Human-readable output (rich); the model never prints, this module does.

Every section fits the console's width without cutting anything: a boxed table where it fits
whole (ids, verdicts, addresses and labels never shortened; only prose columns wrap, at spaces),
else a borderless one, else one record per row (the narrow layout: at 80 columns the paths come
as rows with one verdict per line). Log lines are printed as they are, never wrapped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Mapping, Sequence
from typing import IO, Any

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from efihandoff.descriptions import describe_entry
from efihandoff.outputs.textlines import (
    STREAM_ROWS,
    Styler,
    column_needs,
    fits_boxed,
    fits_compact,
    folded,
    hang_lines,
    print_lines,
    stream_table,
    verdict_lines,
    wrapped,
)
from efihandoff.uefi.memmap import attribute_names

ESRT_GUID = "b122a263-3661-4f68-9929-78f8b0d62180"

VERDICT_STYLE = {
    "intact": "green",
    "relocated": "green",
    "corrupt": "bold red",
    "refused": "yellow",
    "clobbered": "red",
    "absent": "dim",
    "unknown": "magenta",
}
_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


class _Trimmed:
    """A text stream that drops the spaces rich pads lines with before each newline (a table's
    title or a grid's last column), so piped output and pasted reports carry none."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._pending = ""

    def write(self, s: str) -> int:
        self._pending += s
        if "\n" in self._pending:
            *lines, self._pending = self._pending.split("\n")
            self._out.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(s)

    def flush(self) -> None:
        if self._pending:
            self._out.write(self._pending)
            self._pending = ""
        self._out.flush()

    def isatty(self) -> bool:
        return self._out.isatty()

    def fileno(self) -> int:
        return self._out.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._out, "encoding", None) or "utf-8"


class _FittingConsole(Console):
    """A console on which no boxed table is ever cut, whatever renderer built it (e.g. the
    survey's): widths are given so that every word shows whole, or, when this width cannot
    show them all, the table is printed as records instead."""

    # rich's Console.print names each keyword; this override forwards them all unchanged.
    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if len(objects) == 1 and not kwargs and isinstance(objects[0], Table):
            t = objects[0]
            if t.box is not None and not _fit_table(self, t):
                _table_records(self, t)
                return
        super().print(*objects, **kwargs)


def _plain(console: Console, cell: Any) -> Text | None:
    if isinstance(cell, Text):
        return cell
    if isinstance(cell, str):
        return console.render_str(cell, highlight=False)
    return None  # another renderable: rich lays it out


def _fit_table(console: Console, t: Table) -> bool:
    """False when the table cannot show every cell whole at this width (a wrapping column as
    wide as its longest word, a no-wrap column as its longest line). Else True, with column
    widths fixed when rich's own shrinking could cut a cell."""
    needs, maxes = [], []
    for col in t.columns:
        if col.width is not None:
            needs.append(col.width)
            maxes.append(col.width)
            continue
        cells = [_plain(console, col.header), *(_plain(console, c) for c in col._cells)]
        if any(c is None for c in cells):
            return True
        texts = [c.plain for c in cells if c is not None]
        longest_line = max((cell_len(ln) for x in texts for ln in x.splitlines()), default=0)
        longest_word = max((cell_len(w) for x in texts for w in x.split()), default=0)
        need = longest_line if col.no_wrap else longest_word
        needs.append(max(need, col.min_width or 0))
        maxes.append(max(longest_line, needs[-1]))
    pad = t.padding[1] + t.padding[3] if len(t.padding) == 4 else 2
    n = len(t.columns)
    overhead = n * pad + (n + 1 if t.show_edge else n - 1)
    room = console.width - overhead
    if sum(maxes) <= room:
        return True
    if sum(needs) > room:
        return False
    widths = list(needs)
    spare = room - sum(widths)
    while spare > 0:
        grew = False
        for i in range(n):
            if spare and widths[i] < maxes[i]:
                widths[i] += 1
                spare -= 1
                grew = True
        if not grew:
            break
    for col, w in zip(t.columns, widths, strict=True):
        col.width = w
    return True


def _table_records(console: Console, t: Table) -> None:
    """The narrow layout of any table: its title, then per row the first cell as a heading and
    each other cell on a line of its own under its column's name."""
    if t.title:
        title = _plain(console, t.title) or Text(str(t.title))
        console.print(Text(title.plain, style="bold"), overflow="fold")
    cols = t.columns
    names = [(_plain(console, c.header) or Text("")).plain.replace("\n", " ") for c in cols]
    label_w = max((cell_len(n) for n in names[1:]), default=0)

    def flat(cell: Any) -> Text:
        x = _plain(console, cell) or Text(str(cell))
        return Text(" ").join(x.split("\n"))

    for i in range(t.row_count):
        head = flat(cols[0]._cells[i]) if cols else Text("")
        console.print(head, overflow="fold")
        g = Table.grid(padding=(0, 2))
        g.add_column(no_wrap=True, min_width=label_w)
        g.add_column(overflow="fold")
        for name, col in zip(names[1:], cols[1:], strict=True):
            g.add_row(name, flat(col._cells[i]))
        console.print(Padding(g, (0, 0, 0, 4), expand=False))


def make_console(*, stderr: bool = False) -> Console:
    """A console of the right width: ``COLUMNS`` when set, else the terminal's (of stdout, or of
    stdin/stderr when piped), else 80; colour only on a terminal, never with ``NO_COLOR`` or
    ``TERM=dumb`` (rich's rules, plus COLUMNS honoured for a dumb terminal too)."""
    env = os.environ
    cols = env.get("COLUMNS", "")
    width = int(cols) if cols.isdigit() and int(cols) > 0 else None
    dumb = env.get("TERM", "") in ("dumb", "unknown")
    return _FittingConsole(
        # _Trimmed implements the write/flush/isatty/encoding rich uses, not all of IO[str].
        file=_Trimmed(sys.stderr if stderr else sys.stdout),  # type: ignore[arg-type]
        stderr=stderr,
        width=width,
        highlight=False,
        emoji=False,
        no_color=True if env.get("NO_COLOR") or dumb else None,
        color_system=None if dumb else "auto",
    )


# --- fitting ------------------------------------------------------------------------------


def _table(
    title: str | None,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    wrap: Collection[int] = (),
    right: Collection[int] = (),
    styles: Mapping[int, Styler] | None = None,
    compact: bool = False,
) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold")
    if compact:
        t = Table(
            title=title, title_justify="left", title_style="bold", box=None, pad_edge=False,
            padding=(0, 1), header_style="bold underline",
        )
    for i, h in enumerate(headers):
        t.add_column(
            h,
            justify="right" if i in right else "left",
            no_wrap=i not in wrap,
            overflow="fold",
        )
    styles = styles or {}
    for r in rows:
        t.add_row(*(Text(c, style=styles[i](c) if i in styles else "") for i, c in enumerate(r)))
    return t


def _show(
    console: Console,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    wrap: Collection[int] = (),
    right: Collection[int] = (),
    styles: Mapping[int, Styler] | None = None,
    key_cols: int = 1,
    drop_when_narrow: Collection[int] = (),
    drop_note: str = "",
) -> None:
    """A boxed table if it fits whole, else borderless, else without ``drop_when_narrow``,
    else one record per row. Above ``STREAM_ROWS`` rows the same layouts are streamed as plain
    rows (rich's table layout is far from linear: 15,000 map lines took 15-60 s, issue 15)."""
    need = column_needs(headers, rows, wrap)
    if len(rows) > STREAM_ROWS:
        stream_table(
            console, title, headers, rows, need, wrap=wrap, right=right, styles=styles,
            key_cols=key_cols, drop_when_narrow=drop_when_narrow, drop_note=drop_note,
        )
        return
    kw: dict[str, Any] = {"wrap": wrap, "right": right, "styles": styles}
    if fits_boxed(need, console.width):
        console.print(_table(title, headers, rows, **kw))
        return
    if fits_compact(need, console.width):
        console.print(_table(title, headers, rows, compact=True, **kw))
        return
    if drop_when_narrow:
        keep = [i for i in range(len(headers)) if i not in drop_when_narrow]
        sub_need = [need[i] for i in keep]
        if fits_compact(sub_need, console.width):
            remap = {old: new for new, old in enumerate(keep)}
            console.print(
                _table(
                    f"{title} {drop_note}".strip(),
                    [headers[i] for i in keep],
                    [[r[i] for i in keep] for r in rows],
                    compact=True,
                    wrap=[remap[i] for i in wrap if i in remap],
                    right=[remap[i] for i in right if i in remap],
                    styles={remap[i]: s for i, s in (styles or {}).items() if i in remap},
                )
            )
            return
    _records(console, title, headers, rows, key_cols=key_cols, styles=styles)


def _records(
    console: Console,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    key_cols: int = 1,
    styles: Mapping[int, Styler] | None = None,
) -> None:
    """The narrow layout: per row a heading (its key columns), then one field per line."""
    styles = styles or {}
    console.print(Text(title, style="bold"))
    fields = range(key_cols, len(headers))
    label_w = max((cell_len(headers[i]) for i in fields), default=0)
    for r in rows:
        head = Text()
        for i in range(key_cols):
            if i:
                head.append("  ")
            head.append(r[i], style=styles[i](r[i]) if i in styles else "")
        console.print(head, overflow="fold")
        shown = [i for i in fields if r[i] != ""]
        if len(fields) == 1 and shown:  # a lone field needs no label
            i = shown[0]
            console.print(Padding(Text(r[i], overflow="fold"), (0, 0, 0, 4), expand=False))
            continue
        g = Table.grid(padding=(0, 2))
        g.add_column(no_wrap=True, min_width=label_w)
        g.add_column(overflow="fold")
        for i in shown:
            g.add_row(headers[i], Text(r[i], style=styles[i](r[i]) if i in styles else ""))
        console.print(Padding(g, (0, 0, 0, 4), expand=False))


def _hang(prefix: Text, body: Text, width: int) -> RenderableType:
    """``prefix`` then ``body`` wrapped in a column beside it; when the prefix leaves too little
    room, ``body`` goes on the next lines, indented."""
    room = width - cell_len(prefix.plain) - 1
    longest = max((cell_len(w) for w in body.plain.split()), default=0)
    if room >= max(longest, 40):
        g = Table.grid(padding=(0, 1, 0, 0))
        g.add_column(no_wrap=True)
        g.add_column(overflow="fold")
        g.add_row(prefix, body)
        return g
    g = Table.grid()
    g.add_column(overflow="fold")
    g.add_row(prefix)
    g.add_row(Padding(body, (0, 0, 0, 4), expand=False))
    return g


# --- explain ------------------------------------------------------------------------------


def render_explain(
    doc: Mapping[str, Any], console: Console, *, full_map: bool = False, verbose: bool = False
) -> None:
    """Print an ``explain`` document: sources, who printed them, memory map, tables, ESRT,
    paths, findings, advice. ``verbose``: the whole map and every table's reason."""
    srcs = ", ".join(f"{s['path']} ({s['kind']})" for s in doc["sources"])
    head = Text("efihandoff explain", style="bold")
    head.append(f" — {srcs}", style="")
    console.print(head, overflow="fold")
    m = doc.get("machine") or {}
    if m.get("description"):
        console.print(Text(m["description"]))
    if m.get("role"):
        console.print(Text(f"Printed by: {_who(m)}"), overflow="fold")
    observed = (doc.get("paths") or {}).get("observed")
    if observed is not None:
        console.print(Text(f"Observed stack: {observed['label']}"), overflow="fold")
    for note in m.get("notes") or ():
        console.print(Padding(Text(note, style="dim"), (0, 0, 0, 2), expand=False))
    if doc["memory_map"] is not None:
        render_memory_map(doc["memory_map"], console, limit=None if full_map or verbose else 40)
    render_tables(doc["tables"], console)
    if doc["esrt"] is not None:
        render_esrt(doc["esrt"], console)
    if doc["paths"]:
        render_paths(doc["paths"], console, verbose=verbose)
    if doc["findings"]:
        render_findings(doc["findings"], console)
    for line in doc.get("advice", []):
        console.print(_hang(Text("→"), Text(line), console.width))


def _who(m: Mapping[str, Any]) -> str:
    parts = []
    if m.get("xen_version") or m["role"].startswith("xen"):
        boot = f" ({m['xen_boot']})" if m.get("xen_boot") else ""
        parts.append(f"Xen {m.get('xen_version') or '?'}{boot}")
    if m.get("linux_version"):
        parts.append(f"Linux {m['linux_version']}")
    return m["role"] + (f" — {', '.join(parts)}" if parts else "")


def render_findings(findings: Sequence[Mapping[str, Any]], console: Console) -> None:
    rows = [[f["severity"], f["code"], f["message"]] for f in findings]
    _show(
        console, "Findings", ["severity", "code", "message"], rows, wrap=[2], key_cols=2,
        styles={0: lambda s: _SEVERITY_STYLE.get(s, "")},
    )


def render_memory_map(
    rows: Sequence[Mapping[str, Any]], console: Console, *, limit: int | None = 40
) -> None:
    shown = rows if limit is None or len(rows) <= limit else rows[:limit]
    cells = []
    for i, d in enumerate(shown):
        end = d["start"] + (d["pages"] << 12) - 1
        attr = d["attribute"]
        cells.append(
            [
                str(i),
                d["type"],
                f"{d['start']:#014x}",
                f"{end:#014x}",
                str(d["pages"]),
                "?" if attr is None else "|".join(attribute_names(attr)) or "0",
            ]
        )
    _show(
        console,
        f"Memory map ({len(rows)} descriptors)",
        ["#", "type", "start", "end", "pages", "attribute"],
        cells,
        right=[0, 4],
        key_cols=2,
        drop_when_narrow=[3],
        drop_note="(end = start + pages × 4 KiB − 1)",
    )
    if len(shown) < len(rows):
        console.print(f"  … {len(rows) - len(shown)} more (--full-map shows all)")


def render_tables(rows: Sequence[Mapping[str, Any]], console: Console) -> None:
    cells = []
    for r in rows:
        mt = r["memory_type"]
        if mt is None:
            cands = r.get("memory_type_candidates")
            mt = "? (" + " / ".join(cands) + ")" if cands else "?"
        cells.append(
            [
                r["name"] if r.get("known", True) else "(unknown to Linux)",
                r["guid"],
                f"{r['address']:#x}",
                "?" if r["size"] is None else str(r["size"]),
                mt,
                r["memory_type_evidence"] or "",
            ]
        )
    headers = ["name", "guid", "address", "size", "memory type", "evidence"]
    need = column_needs(headers, cells, [5])
    if len(cells) > STREAM_ROWS and fits_compact(need, console.width):
        stream_table(console, "Configuration tables", headers, cells, need, wrap=[5])
    elif len(cells) > STREAM_ROWS:  # the narrow layout below, as plain lines
        width = console.width
        lines = [Text("Configuration tables", style="bold")]
        for name, guid, addr, size, mt, ev in cells:
            where = f"at {addr}, " + ("size ?" if size == "?" else f"{size} bytes")
            where += f", {mt}" + (f" (evidence: {ev})" if ev else "")
            lines += [Text(p) for p in folded(f"{name}  {guid}", width)]
            lines += [Text("    " + p) for p in wrapped(where, max(width - 4, 1))]
        print_lines(console, lines)
    elif fits_boxed(need, console.width):
        console.print(_table("Configuration tables", headers, cells, wrap=[5]))
    elif fits_compact(need, console.width):
        console.print(_table("Configuration tables", headers, cells, wrap=[5], compact=True))
    else:  # narrow: the name and GUID, then where it is on one line
        console.print(Text("Configuration tables", style="bold"))
        for name, guid, addr, size, mt, ev in cells:
            console.print(Text(f"{name}  {guid}"), overflow="fold")
            where = f"at {addr}, " + ("size ?" if size == "?" else f"{size} bytes")
            where += f", {mt}" + (f" (evidence: {ev})" if ev else "")
            console.print(Padding(Text(where), (0, 0, 0, 4), expand=False))


def render_esrt(esrt: Mapping[str, Any], console: Console) -> None:
    """The header, then each entry field by field: the raw number first, then its name as fwupd
    and fwts say it (and versions in the usual dotted forms)."""
    head = (
        f"ESRT at {_addr(esrt['address'], esrt.get('from'))}: "
        f"count={_q(esrt['fw_resource_count'])} "
        f"max={_q(esrt['fw_resource_count_max'])} version={_q(esrt['fw_resource_version'])}"
    )
    console.print(Text(head, style="bold"), overflow="fold")
    if not esrt["entries"]:
        if esrt["entries"] is None:
            console.print("  entries: ? (the evidence does not give them)")
        return
    for i, e in enumerate(esrt["entries"]):
        d = describe_entry(e)
        console.print(Text(f"  entry {i}  {d.fw_class}"), overflow="fold")
        g = Table.grid(padding=(0, 2))
        g.add_column(no_wrap=True)
        g.add_column(overflow="fold")
        for name, value in d.rows()[1:]:
            g.add_row(name, value)
        console.print(Padding(g, (0, 0, 0, 4), expand=False))


def render_paths(
    paths: Mapping[str, Mapping[str, Any]], console: Console, *, verbose: bool = False
) -> None:
    """A path-by-table verdict matrix when it fits whole, else one block per path with one
    verdict per line; then the reason for each ESRT verdict (every table's with ``verbose``)."""
    others: dict[str, str] = {}
    for p in paths.values():
        for g, v in p["tables"].items():
            if g != ESRT_GUID:
                others.setdefault(g, v.get("name") or g)
    headers = ["path", "stack", "ESRT", "sysfs", "fwupd", "reserved", "held at boot",
               *others.values()]
    rows = []
    for pid, p in paths.items():
        cost = p.get("cost") or {}
        rows.append(
            [
                pid,
                p.get("label") or "",
                _esrt_verdict(p),
                _sysfs(p),
                _devices(p),
                size_text(cost.get("reserved_bytes")),
                size_text(cost.get("held_during_boot_bytes")),
                *(p["tables"].get(g, {}).get("verdict") or "-" for g in others),
            ]
        )
    verdict_cols = [2, *range(7, len(headers))]
    styles = {i: _verdict_style for i in verdict_cols}
    need = column_needs(headers, rows, wrap=())
    # without the stack column (then listed below the table), when only that keeps it too wide
    no_stack = [h for i, h in enumerate(headers) if i != 1]
    rows_ns = [[c for i, c in enumerate(r) if i != 1] for r in rows]
    styles_ns = {i - 1: _verdict_style for i in verdict_cols}
    need_ns = column_needs(no_stack, rows_ns, wrap=())
    if fits_boxed(need, console.width):
        console.print(_table("Paths", headers, rows, right=[5, 6], styles=styles))
    elif fits_compact(need, console.width):
        console.print(_table("Paths", headers, rows, right=[5, 6], styles=styles, compact=True))
    elif fits_boxed(need_ns, console.width) or fits_compact(need_ns, console.width):
        compact = not fits_boxed(need_ns, console.width)
        console.print(
            _table("Paths", no_stack, rows_ns, right=[4, 5], styles=styles_ns, compact=compact)
        )
        g = Table.grid(padding=(0, 2))
        g.add_column(no_wrap=True)
        g.add_column(overflow="fold")
        for r in rows:
            g.add_row(r[0], r[1])
        console.print(Padding(g, (0, 0, 0, 2), expand=False))
    else:
        _paths_narrow(paths, others, console)
    _reasons(paths, console, verbose=verbose)


def _paths_narrow(
    paths: Mapping[str, Mapping[str, Any]], others: Mapping[str, str], console: Console
) -> None:
    console.print(Text("Paths", style="bold"))
    names = ["ESRT", "held at boot", *others.values()]
    name_w = max(cell_len(n) for n in names)
    for pid, p in paths.items():
        head = Text(pid, style="bold")
        label = p.get("label") or ""
        if label and cell_len(pid) + 2 + cell_len(label) <= console.width:
            head.append(f"  {label}", style="")
            label = ""
        console.print(head, overflow="fold")
        if label:  # too long beside the id: on its own line
            console.print(Padding(Text(label), (0, 0, 0, 2), expand=False))
        word = _esrt_verdict(p)
        rows: list[tuple[str, Text, str]] = [
            ("ESRT", Text(word, style=_verdict_style(word)),
             f"sysfs {_sysfs(p)}, fwupd {_devices(p)}")
        ]
        for guid, name in others.items():
            w = p["tables"].get(guid, {}).get("verdict") or "-"
            rows.append((name, Text(w, style=_verdict_style(w)), ""))
        cost = p.get("cost") or {}
        for key, what in (
            ("reserved_bytes", "reserved"),
            ("held_during_boot_bytes", "held at boot"),
        ):
            if cost.get(key) is not None:
                rows.append((what, Text(size_text(cost[key])), ""))
        if len(rows) > STREAM_ROWS:  # a grid of 1,000 rows per path took seconds
            print_lines(console, verdict_lines(rows, name_w, console.width))
            continue
        g = Table.grid(padding=(0, 2))
        g.add_column(no_wrap=True, min_width=name_w)
        g.add_column(no_wrap=True, min_width=9)
        g.add_column(overflow="fold")
        for name, verdict, extra in rows:
            g.add_row(name, verdict, extra)
        console.print(Padding(g, (0, 0, 0, 2), expand=False))


def _reasons(
    paths: Mapping[str, Mapping[str, Any]], console: Console, *, verbose: bool
) -> None:
    console.print(Text("Why, for every table" if verbose else "Why, for the ESRT", style="bold"))
    pid_w = max(cell_len(pid) for pid in paths)
    hangs: list[tuple[Text, str]] = []
    for pid, p in paths.items():
        if p.get("halt"):  # the stack never brings the OS up
            body = f"{p['halt']['message']} ({p['halt']['source']})"
            hangs.append((Text(f"  {pid:<{pid_w}} never boots: "), body))
        items = [
            (v.get("name") or g, v)
            for g, v in p["tables"].items()
            if verbose or g == ESRT_GUID
        ]
        for name, v in items:
            prefix = Text(f"  {pid:<{pid_w}} ")
            if verbose:
                prefix.append(f"{name}: ")
            prefix.append(v["verdict"], style=_verdict_style(v["verdict"]))
            prefix.append(":")
            hangs.append((prefix, v.get("reason") or ""))
    if len(hangs) > STREAM_ROWS:  # a grid per reason is slow: 9 paths x 1,000 tables took 6 s
        width = console.width
        print_lines(console, [ln for pr, body in hangs for ln in hang_lines(pr, body, width)])
        return
    for prefix, body in hangs:
        console.print(_hang(prefix, Text(body), console.width))


def _esrt_verdict(p: Mapping[str, Any]) -> str:
    return str(p["tables"].get(ESRT_GUID, {"verdict": "absent"})["verdict"])


def _sysfs(p: Mapping[str, Any]) -> str:
    return {True: "yes", False: "no", None: "?"}[p.get("esrt_sysfs")]


def _devices(p: Mapping[str, Any]) -> str:
    devs = p.get("fwupd_devices")
    if devs is None:
        return "-"
    return f"{len(devs)} device{'s' if len(devs) != 1 else ''}"


def _verdict_style(word: str) -> str:
    return VERDICT_STYLE.get(word, "")


def _verdict(word: str | None) -> str:
    """Console markup for a verdict (kept for renderers that print markup)."""
    if word is None:
        return "-"
    return f"[{VERDICT_STYLE.get(word, '')}]{word}[/]"


# --- boot ---------------------------------------------------------------------------------


def write_log(lines: Sequence[str], out: IO[str]) -> None:
    """The log lines exactly, one per line: no wrapping, no styling, nothing else."""
    for line in lines:
        out.write(line + "\n")
    out.flush()


def render_boot(
    result: Mapping[str, Any], pid: str, console: Console, *, log: bool = True
) -> None:
    """The title, the boot log of one path (``log``), then the verdicts and fwupd's devices."""
    title = Text(pid, style="bold")
    title.append(f": {result['label']}", style="")
    console.print(title, overflow="fold")
    if log:
        for line in result["log"]:
            console.print(Text(line), soft_wrap=True)
        console.print()
    tables = list(result["tables"].values())
    name_w = max((cell_len(v["name"]) for v in tables), default=0)
    for v in tables:
        prefix = Text(f"  {v['name']:<{name_w}} ")
        prefix.append(f"{v['verdict']:<9}", style=_verdict_style(v["verdict"]))
        console.print(_hang(prefix, Text(v["reason"]), console.width))
    devs = result["fwupd_devices"]
    if devs:
        console.print("  fwupd would list:")
        for d in devs:
            console.print(
                _hang(
                    Text(f"    {d['guid']}"),
                    Text(
                        f"{_q(d['kind'])} version {_q(d['version'])} lowest {_q(d['lowest'])} "
                        f"flags {_q(d['flags'], '{:#x}')} {_q(d['update_state'])}"
                    ),
                    console.width,
                )
            )


def _addr(address: int | None, source: str | None) -> str:
    if address is not None:
        return f"{address:#x}"
    return f"an unknown address (as {source} shows it)" if source else "an unknown address"


def _q(v: Any, fmt: str = "{}") -> str:
    """A value, or ``?`` where the evidence or the model does not give it."""
    return "?" if v is None else fmt.format(v)


def size_text(n: int | None) -> str:
    """A byte count as GiB, MiB, KiB or B with one decimal; "-" when not known."""
    if n is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
