"""Big outputs as lines laid out here, not by rich: a table of thousands of rows, or thousands
of hanging reasons, streamed as plain padded rows in chunks, linear in the cells (rich's table
layout took 15-60 s for 15,000 map lines, issue 15). The layouts match the small ones of
:mod:`.text` (borderless table, narrow records, a body hanging beside its prefix)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

Styler = Callable[[str], str]


def column_needs(
    headers: Sequence[str], rows: Sequence[Sequence[str]], wrap: Collection[int]
) -> list[int]:
    """Per column, the narrowest width that shows every cell whole (prose wraps at spaces)."""
    out = []
    for i, h in enumerate(headers):
        cells = [r[i] for r in rows]
        if i in wrap:
            words = [w for c in cells for w in c.split()] + h.split()
            out.append(max((cell_len(w) for w in words), default=0))
        else:
            out.append(max([cell_len(h), *(cell_len(c) for c in cells)]))
    return out


def fits_boxed(need: Sequence[int], width: int) -> bool:
    """Whether a boxed table of columns ``need`` wide fits ``width`` (3 cells of rule each)."""
    return sum(need) + 3 * len(need) + 1 <= width


def fits_compact(need: Sequence[int], width: int) -> bool:
    """Whether a borderless table (two spaces between columns) fits ``width``."""
    return sum(need) + 2 * (len(need) - 1) <= width


STREAM_ROWS = 200  # above this many rows a table is streamed as plain rows
_CHUNK = 256  # streamed lines per console.print


def stream_table(
    console: Console,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    need: Sequence[int],
    *,
    wrap: Collection[int] = (),
    right: Collection[int] = (),
    styles: Mapping[int, Styler] | None = None,
    key_cols: int = 1,
    drop_when_narrow: Collection[int] = (),
    drop_note: str = "",
) -> None:
    """The borderless layout (or, narrower, the one without ``drop_when_narrow``, or records),
    written as plain padded rows in chunks: linear in the cells, nothing cut (a prose column
    that is last wraps at spaces under itself, any other cell longer than the width folds)."""
    cols = list(range(len(headers)))
    if not fits_compact(need, console.width) and drop_when_narrow:
        keep = [i for i in cols if i not in drop_when_narrow]
        if fits_compact([need[i] for i in keep], console.width):
            cols, title = keep, f"{title} {drop_note}".strip()
    styles = styles or {}
    lines: list[Text] = [Text(title, style="bold")]
    if fits_compact([need[i] for i in cols], console.width):
        last = cols[-1]
        widths = {i: max(cell_len(headers[i]), *(cell_len(r[i]) for r in rows)) for i in cols}
        start = sum(widths[i] + 2 for i in cols[:-1])
        if last in wrap:  # prose: whatever room is left, at least its longest word
            widths[last] = max(need[last], console.width - start)
        if start + widths[last] > console.width and last not in wrap:
            widths[last] = need[last]
        lines.append(_row(headers, cols, widths, right, {}, "bold underline", start, wrap))
        lines += (_row(r, cols, widths, right, styles, "", start, wrap) for r in rows)
    else:
        fields = [i for i in cols if i >= key_cols]
        label_w = max((cell_len(headers[i]) for i in fields), default=0)
        room = max(console.width - 4 - label_w - 2, 1)
        for r in rows:
            head = Text()
            for i in range(key_cols):
                head.append("  " if i else "")
                head.append(r[i], style=styles[i](r[i]) if i in styles else "")
            lines.append(head)
            for i in fields:
                if r[i] == "":
                    continue
                style = styles[i](r[i]) if i in styles else ""
                parts = wrapped(r[i], room) if i in wrap else folded(r[i], room)
                for k, part in enumerate(parts):
                    line = Text(f"    {headers[i] if k == 0 else '':<{label_w}}  ")
                    line.append(part, style=style)
                    lines.append(line)
    print_lines(console, lines)


def print_lines(console: Console, lines: Sequence[Text]) -> None:
    """Lines already laid out, a chunk per console.print (no wrapping by rich)."""
    for k in range(0, len(lines), _CHUNK):
        console.print(Text("\n").join(lines[k : k + _CHUNK]), soft_wrap=True)


def hang_lines(prefix: Text, body: str, width: int) -> list[Text]:
    """A body hanging beside its prefix (text's ``_hang`` layout) as plain lines: wrapped in a
    column beside the prefix, or under it indented by 4 when the prefix leaves too little room."""
    room = width - cell_len(prefix.plain) - 1
    longest = max((cell_len(w) for w in body.split()), default=0)
    if room >= max(longest, 40):
        parts = wrapped(body, room)
        first = prefix.copy()
        first.append(" " + parts[0])
        pad = " " * (cell_len(prefix.plain) + 1)
        return [first, *(Text(pad + p) for p in parts[1:])]
    head = (
        [prefix]
        if cell_len(prefix.plain) <= width
        else [Text(p) for p in wrapped_as_is(prefix.plain, width)]
    )
    return [*head, *(Text("    " + p) for p in wrapped(body, max(width - 4, 1)))]


def _row(
    cells: Sequence[str],
    cols: Sequence[int],
    widths: Mapping[int, int],
    right: Collection[int],
    styles: Mapping[int, Styler],
    style: str,
    start: int,
    wrap: Collection[int],
) -> Text:
    """One streamed row: cells padded to their column, the last one wrapped or folded."""
    line = Text()
    for i in cols[:-1]:
        c = cells[i]
        pad = " " * (widths[i] - cell_len(c))
        line.append(pad if i in right else "")
        line.append(c, style=style or (styles[i](c) if i in styles else ""))
        line.append(("" if i in right else pad) + "  ")
    last = cols[-1]
    c = cells[last]
    parts = wrapped(c, widths[last]) if last in wrap else folded(c, widths[last])
    if last in right and len(parts) == 1:
        line.append(" " * (widths[last] - cell_len(c)))
    cstyle = style or (styles[last](c) if last in styles else "")
    for k, part in enumerate(parts):
        line.append(("\n" + " " * start) if k else "")
        line.append(part, style=cstyle)
    line.rstrip()
    return line


def folded(text: str, width: int) -> list[str]:
    """``text`` in pieces of at most ``width`` cells (an over-long token is never cut off)."""
    if cell_len(text) <= width:
        return [text]
    out, cur = [], ""
    for ch in text:
        if cur and cell_len(cur + ch) > width:
            out.append(cur)
            cur = ""
        cur += ch
    return [*out, cur]


def wrapped(text: str, width: int) -> list[str]:
    """Greedy wrap at spaces to ``width`` cells; a word longer than that is folded."""
    out: list[str] = []
    cur, n = "", 0  # the line so far and its width in cells
    for word in text.split():
        w = cell_len(word)
        if not cur:
            cur, n = word, w
        elif n + 1 + w <= width:
            cur, n = cur + " " + word, n + 1 + w
        else:
            out.append(cur)
            cur, n = word, w
        if n > width:
            *whole, cur = folded(cur, width)
            out += whole
            n = cell_len(cur)
    return [*out, cur] if cur or not out else out


def wrapped_as_is(text: str, width: int) -> list[str]:
    """Wrap keeping the spaces between words on a line (and the first line's indent): a word
    with its trailing spaces starts a new line when the word itself does not fit; a word
    longer than a line is folded (as rich wraps a cell)."""
    out: list[str] = []
    cur, pos = "", 0
    for word in re.findall(r"\s*\S+\s*", text):
        if cur and pos + cell_len(word.rstrip()) > width:
            out.append(cur.rstrip())
            word = word.lstrip()
            cur, pos = "", 0
        cur, pos = cur + word, pos + cell_len(word)
        if cell_len(cur.rstrip()) > width:
            trail = cur[len(cur.rstrip()) :]
            *whole, cur = folded(cur.rstrip(), width)
            out += whole
            cur += trail
            pos = cell_len(cur)
    return [*out, cur.rstrip()] if cur or not out else out


def verdict_lines(rows: Sequence[tuple[str, Text, str]], name_w: int, width: int) -> list[Text]:
    """The narrow layout's rows as plain lines (name, verdict, note), indented by 2: the note
    wraps in its column; a name too long for the line takes a line of its own."""
    out = []
    for name, verdict, extra in rows:
        line = Text(f"  {name:<{name_w}}  ")
        if cell_len(line.plain) + 9 > width:
            out += [Text(p) for p in folded(f"  {name}", width)]
            line = Text("    ")
        line.append_text(verdict)
        if not extra:
            out.append(line)
            continue
        line.append(" " * max(9 - cell_len(verdict.plain), 0) + "  ")
        col = cell_len(line.plain)
        parts = wrapped(extra, max(width - col, 1))
        line.append(parts[0])
        out += [line, *(Text(" " * col + p) for p in parts[1:])]
    return out


__all__ = [
    "STREAM_ROWS",
    "Styler",
    "column_needs",
    "fits_boxed",
    "fits_compact",
    "folded",
    "hang_lines",
    "print_lines",
    "stream_table",
    "verdict_lines",
    "wrapped",
    "wrapped_as_is",
]
