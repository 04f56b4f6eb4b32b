"""The ``explain --html`` report: one self-contained page (inline CSS and SVG, no scripts, no
fetches) drawn from an ``explain/1`` document."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from efihandoff.outputs.svg import (
    NO_VERDICT_COLOUR,
    VERDICT_COLOURS,
    esc,
    human_size,
    ink_on,
    memmap_svg,
    short_type,
    table_name,
    type_colour,
)
from efihandoff.uefi.memmap import attribute_names

_MAP_OPEN_LIMIT = 64  # longer memory maps start folded

_CSS = """
:root { color-scheme: light; }
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px; color: #1a1a1a;
       background: #ffffff; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 0 0 4px 0; }
h2 { font-size: 1.25em; margin: 28px 0 8px 0; border-bottom: 1px solid #cccccc; }
h3 { font-size: 1.05em; margin: 16px 0 6px 0; }
code, pre, td.mono, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace;
                            font-size: 0.9em; }
table { border-collapse: collapse; margin: 6px 0 12px 0; }
th, td { border: 1px solid #c8c8c8; padding: 3px 7px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
td details { border: none; padding: 0; margin: 2px 0 0 0; font-size: 0.85em; }
td details ul { margin: 2px 0; padding-left: 1.2em; }
th { background: #eeeeee; }
td.num { text-align: right; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border: 1px solid #000000;
          vertical-align: -0.1em; margin-right: 5px; }
.verdict { display: inline-block; padding: 0 6px; border-radius: 3px; font-weight: bold; }
.reason { display: block; font-size: 0.85em; color: #333333; max-width: 30em; }
div.scroll { overflow-x: auto; }
table.matrix { font-size: 0.85em; }
table.matrix .reason { max-width: 13em; }
table.matrix td, table.matrix th { min-width: 7em; }  /* narrower windows scroll, not squeeze */
figure { margin: 8px 0; overflow-x: auto; }
figure svg { border: 1px solid #dddddd; }  /* drawn at its size (legible); the figure scrolls */
figcaption { font-size: 0.9em; color: #444444; }
details { margin: 6px 0; border: 1px solid #dddddd; padding: 4px 10px; }
summary { cursor: pointer; font-weight: bold; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; white-space: pre-wrap; }
.muted { color: #666666; }
.sev-error { color: #b00020; font-weight: bold; }
.sev-warning { color: #8a5a00; font-weight: bold; }
ul.advice li { margin: 2px 0; }
footer { margin-top: 32px; font-size: 0.85em; color: #666666; }
""".strip()


def explain_html(doc: Mapping[str, Any], *, path_id: str | None = None) -> str:
    """A self-contained HTML page for an ``explain/1`` document; the picture hatches what
    ``path_id`` reclaims when given."""
    machine = doc.get("machine") or {}
    title = f"efihandoff explain: {machine.get('name') or 'machine'}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing on this page may load anything: forbid it outright.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{esc(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        *_header(doc, title),
        *_advice(doc),
        *_matrix(doc),
        *_picture(doc, path_id),
        *_memory_map(doc),
        *_tables(doc),
        *_esrt(doc),
        *_paths(doc),
        *_findings(doc),
        f"<footer>Schema {esc(doc.get('schema', '?'))}. Written by efihandoff from the "
        "document above; nothing on this page is fetched from elsewhere.</footer>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# -- sections ----------------------------------------------------------------------------------


def _header(doc: Mapping[str, Any], title: str) -> list[str]:
    m = doc.get("machine") or {}
    out = [f"<h1>{esc(title)}</h1>"]
    if m.get("description"):
        out.append(f"<p>{esc(m['description'])}</p>")
    facts = []
    if m.get("firmware_vendor"):
        facts.append(f"firmware vendor <b>{esc(m['firmware_vendor'])}</b>")
    if m.get("role"):
        stack = ", ".join(
            f"{k} {esc(m[v])}"
            for k, v in (("Xen", "xen_version"), ("boot", "xen_boot"), ("Linux", "linux_version"))
            if m.get(v)
        )
        facts.append(f"printed by <b>{esc(m['role'])}</b>" + (f" ({stack})" if stack else ""))
    observed = (doc.get("paths") or {}).get("observed")
    if observed is not None:
        facts.append(f"observed stack <b>{esc(observed.get('label', '?'))}</b>")
    srcs = doc.get("sources") or []
    if srcs:
        facts.append(
            "read from "
            + ", ".join(
                f"<code>{esc(s.get('path', '?'))}</code> ({esc(s.get('kind', '?'))})" for s in srcs
            )
        )
    if facts:
        out.append(f'<p class="muted">{"; ".join(facts)}</p>')
    notes = m.get("notes") or []
    if notes:
        out.append('<ul class="muted">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    return out


def _advice(doc: Mapping[str, Any]) -> list[str]:
    advice = doc.get("advice") or []
    if not advice:
        return []
    return [
        "<h2>In short</h2>",
        '<ul class="advice">',
        *(f"<li>{esc(a)}</li>" for a in advice),
        "</ul>",
    ]


def _picture(doc: Mapping[str, Any], path_id: str | None) -> list[str]:
    caption = "The physical address space, one band per memory descriptor, coloured by type."
    if path_id is not None:
        caption += (
            f" Hatched: what path {path_id} reclaims as RAM; markers: each table's verdict, by "
            "colour and by shape."
        )
    if doc.get("memory_map") and any(t.get("address") is not None for t in doc.get("tables") or []):
        caption += " Below, the pages holding tables zoomed, each marker numbered in the list."
    return [
        "<h2>Memory map</h2>",
        "<figure>",
        memmap_svg(doc, path_id=path_id).rstrip("\n"),
        f"<figcaption>{esc(caption)}</figcaption>",
        "</figure>",
    ]


def _verdict(word: str | None) -> str:
    if word is None:
        return '<span class="muted">—</span>'
    colour = VERDICT_COLOURS.get(word, NO_VERDICT_COLOUR)
    return (
        f'<span class="verdict" style="background:{colour};color:{ink_on(colour)}">'
        f"{esc(word)}</span>"
    )


def _matrix(doc: Mapping[str, Any]) -> list[str]:
    paths: Mapping[str, Mapping[str, Any]] = doc.get("paths") or {}
    if not paths:
        return [
            "<h2>Verdicts</h2>",
            '<p class="muted">No path was simulated (the evidence has no memory map).</p>',
        ]
    rows: list[tuple[str, str]] = []  # (guid, name)
    seen: set[str] = set()
    for t in doc.get("tables") or []:
        g = str(t.get("guid", ""))
        if g not in seen:
            seen.add(g)
            rows.append((g, table_name(t)))
    for p in paths.values():
        for g, tv in (p.get("tables") or {}).items():
            if g not in seen:
                seen.add(g)
                rows.append((g, str(tv.get("name") or g)))
    head = "".join(
        f'<th><code>{esc(pid)}</code><br><span class="reason">{esc(p.get("label", ""))}</span></th>'
        for pid, p in paths.items()
    )
    out = [
        "<h2>Verdicts</h2>",
        '<p class="muted">What each table\'s consumer gets on each path, with the reason.</p>',
        '<div class="scroll"><table class="matrix">',
        f"<tr><th>table</th>{head}</tr>",
    ]
    for g, name in rows:
        cells = []
        for p in paths.values():
            tv = (p.get("tables") or {}).get(g)
            if tv is None:
                cells.append(f"<td>{_verdict(None)}</td>")
            else:
                cells.append(f"<td>{_verdict(str(tv.get('verdict')))}{_reason(tv)}</td>")
        out.append(
            f'<tr><th>{esc(name)}<br><code class="reason">{esc(g)}</code></th>{"".join(cells)}</tr>'
        )
    sysfs = "".join(f"<td>{_yes_no(p.get('esrt_sysfs'))}</td>" for p in paths.values())
    out.append(f"<tr><th>/sys/firmware/efi/esrt</th>{sysfs}</tr>")
    devices = "".join(
        "<td>"
        + (
            '<span class="muted">none</span>'
            if p.get("fwupd_devices") is None
            else f"{len(p['fwupd_devices'])} device(s)"
        )
        + "</td>"
        for p in paths.values()
    )
    out.append(f"<tr><th>fwupd lists</th>{devices}</tr>")
    costs = "".join(f"<td>{_cost(p.get('cost'))}</td>" for p in paths.values())
    out.append(f"<tr><th>memory cost</th>{costs}</tr>")
    out.append("</table></div>")
    return out


def _reason(tv: Mapping[str, Any]) -> str:
    """A verdict's reason; an ``unknown`` one's candidates folded into a list (they repeat in
    every cell of a dom0 report and would swamp the table)."""
    reason = str(tv.get("reason", ""))
    cands = tv.get("candidates") or []
    if not cands:
        return f'<span class="reason">{esc(reason)}</span>'
    items = "".join(
        f"<li>{esc(str(c.get('placement', '?')))}: {_verdict(str(c.get('verdict')))}</li>"
        for c in cands
    )
    return (
        f'<span class="reason">{esc(reason.split(" (", 1)[0])}</span>'
        f"<details><summary>{len(cands)} candidates</summary><ul>{items}</ul></details>"
    )


def _yes_no(value: object) -> str:
    if value is None:
        return '<span class="muted">unknown</span>'
    return "yes" if value else "no"


def _cost(cost: Mapping[str, Any] | None) -> str:
    if not cost:
        return '<span class="muted">—</span>'
    kept = int(cost.get("reserved_bytes") or 0)
    held = int(cost.get("held_during_boot_bytes") or 0)
    return f"{esc(human_size(kept))} kept reserved" + (
        f"<br>{esc(human_size(held))} held during boot" if held else ""
    )


def _memory_map(doc: Mapping[str, Any]) -> list[str]:
    rows = doc.get("memory_map")
    if rows is None:
        return ["<h3>Descriptors</h3>", '<p class="muted">The evidence has no memory map.</p>']
    body = []
    for i, d in enumerate(rows):
        start, pages = int(d["start"]), int(d["pages"])
        attr = d.get("attribute")
        tname = str(d.get("type"))
        body.append(
            "<tr>"
            f'<td class="num">{i}</td>'
            f'<td><span class="swatch" style="background:{type_colour(tname)}"></span>'
            f'{esc(tname)} <span class="muted">({esc(short_type(tname))})</span></td>'
            f'<td class="mono">{start:#x}</td>'
            f'<td class="mono">{start + (pages << 12) - 1:#x}</td>'
            f'<td class="num">{esc(human_size(pages << 12))}</td>'
            f'<td class="num">{pages}</td>'
            f'<td class="mono">{_attributes(attr)}</td>'
            f"<td>{esc(d.get('evidence', ''))}</td>"
            "</tr>"
        )
    opened = " open" if len(rows) <= _MAP_OPEN_LIMIT else ""
    return [
        f"<details{opened}><summary>Descriptors ({len(rows)})</summary>",
        "<table>",
        "<tr><th>#</th><th>type</th><th>start</th><th>end</th><th>size</th><th>pages</th>"
        "<th>attributes</th><th>evidence</th></tr>",
        *body,
        "</table>",
        "</details>",
    ]


def _attributes(attr: int | None) -> str:
    if attr is None:
        return "?"
    return esc("|".join(attribute_names(int(attr))) or "0")


def _tables(doc: Mapping[str, Any]) -> list[str]:
    tables = doc.get("tables") or []
    out = ["<h2>Configuration tables</h2>"]
    if not tables:
        return [*out, '<p class="muted">None known.</p>']
    out += [
        "<table>",
        "<tr><th>name</th><th>GUID</th><th>address</th><th>size</th><th>memory type</th>"
        "<th>type evidence</th></tr>",
    ]
    for t in tables:
        size = t.get("size")
        reason = t.get("size_reason")
        out.append(
            "<tr>"
            f"<td>{esc(t.get('name') or '(unknown to Linux)')}</td>"
            f'<td class="mono">{esc(t.get("guid", ""))}</td>'
            f'<td class="mono">{_hex(t.get("address"))}</td>'
            f"<td>{'?' if size is None else esc(size)}"
            + (f'<span class="reason">{esc(reason)}</span>' if reason else "")
            + "</td>"
            f"<td>{esc(t.get('memory_type') or '?')}</td>"
            f"<td>{esc(t.get('memory_type_evidence') or '?')}</td>"
            "</tr>"
        )
    out.append("</table>")
    return out


def _hex(value: int | None) -> str:
    return "?" if value is None else esc(f"{int(value):#x}")


def _esrt(doc: Mapping[str, Any]) -> list[str]:
    e = doc.get("esrt")
    out = ["<h2>ESRT</h2>"]
    if e is None:
        return [*out, '<p class="muted">The firmware lists no ESRT.</p>']

    def val(key: str) -> str:
        v = e.get(key)
        return "?" if v is None else esc(v)

    out.append(
        f"<p>At <code>{_hex(e.get('address'))}</code>: FwResourceCount {val('fw_resource_count')}, "
        f"FwResourceCountMax {val('fw_resource_count_max')}, "
        f"FwResourceVersion {val('fw_resource_version')}.</p>"
    )
    entries = e.get("entries")
    if entries is None:
        return [*out, '<p class="muted">The entries are not in the evidence.</p>']
    out += [
        "<table>",
        "<tr><th>#</th><th>fw_class</th><th>fw_type</th><th>fw_version</th>"
        "<th>lowest_supported_fw_version</th><th>capsule_flags</th><th>last_attempt_version</th>"
        "<th>last_attempt_status</th></tr>",
    ]
    for i, en in enumerate(entries):
        out.append(
            "<tr>"
            f'<td class="num">{i}</td>'
            f'<td class="mono">{esc(en.get("fw_class", ""))}</td>'
            + "".join(
                f'<td class="num">{esc(en.get(k, ""))}</td>'
                for k in ("fw_type", "fw_version", "lowest_supported_fw_version")
            )
            + f'<td class="mono">{_hex(en.get("capsule_flags"))}</td>'
            + "".join(
                f'<td class="num">{esc(en.get(k, ""))}</td>'
                for k in ("last_attempt_version", "last_attempt_status")
            )
            + "</tr>"
        )
    out.append("</table>")
    return out


def _paths(doc: Mapping[str, Any]) -> list[str]:
    paths: Mapping[str, Mapping[str, Any]] = doc.get("paths") or {}
    if not paths:
        return []
    out = ["<h2>Paths</h2>"]
    for pid, p in paths.items():
        out.append(
            f"<details><summary><code>{esc(pid)}</code> — {esc(p.get('label', ''))}</summary>"
        )
        if p.get("description"):
            out.append(f"<p>{esc(p['description'])}</p>")
        if p.get("halt"):  # the stack never brings the OS up
            h = p["halt"]
            out.append(f"<p>Never boots: <code>{esc(h['message'])}</code> ({esc(h['source'])})</p>")
        out.append(
            f"<p>/sys/firmware/efi/esrt: {_yes_no(p.get('esrt_sysfs'))}; "
            f"memory cost: {_cost(p.get('cost'))}</p>"
        )
        diffs = p.get("esrt_differences") or []
        if diffs:
            out.append(
                "<p>The ESRT dom0 reads differs from the firmware's: "
                + "; ".join(esc(d) for d in diffs)
                + "</p>"
            )
        kexec = p.get("kexec") or {}
        if kexec:
            out += ["<h3>After a kexec</h3>", "<table>", "<tr><th>table</th><th>verdict</th></tr>"]
            for tv in kexec.values():
                out.append(
                    f"<tr><td>{esc(tv.get('name', ''))}</td><td>{_verdict(tv.get('verdict'))}"
                    f'<span class="reason">{esc(tv.get("reason", ""))}</span></td></tr>'
                )
            out.append("</table>")
        out.append("<h3>fwupd devices</h3>")
        devices = p.get("fwupd_devices")
        if devices is None:
            out.append('<p class="muted">None: there is no ESRT in sysfs for fwupd to read.</p>')
        elif not devices:
            out.append('<p class="muted">The ESRT lists no entries.</p>')
        else:
            out += _records(devices)
        log = p.get("log") or []
        out.append(f"<h3>Log ({len(log)} lines)</h3>")
        out.append("<pre>" + "\n".join(esc(line) for line in log) + "</pre>")
        out.append("</details>")
    return out


def _records(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A table of dicts, columns in order of first appearance."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(k)}</th>" for k in keys) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{_cell(r.get(k))}</td>" for k in keys) + "</tr>")
    out.append("</table>")
    return out


def _cell(value: object) -> str:
    if value is None:
        return '<span class="muted">—</span>'
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        return esc(", ".join(str(v) for v in value))
    return esc(value)


def _findings(doc: Mapping[str, Any]) -> list[str]:
    findings = doc.get("findings") or []
    out = ["<h2>Findings</h2>"]
    if not findings:
        return [*out, '<p class="muted">None.</p>']
    out += ["<table>", "<tr><th>severity</th><th>code</th><th>message</th></tr>"]
    for f in findings:
        sev = str(f.get("severity", ""))
        cls = f' class="sev-{esc(sev)}"' if sev in ("error", "warning") else ""
        out.append(
            f"<tr><td{cls}>{esc(sev)}</td><td><code>{esc(f.get('code', ''))}</code></td>"
            f"<td>{esc(f.get('message', ''))}</td></tr>"
        )
    out.append("</table>")
    return out


__all__ = ["explain_html"]
