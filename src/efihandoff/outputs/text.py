"""Human-readable output (rich tables); the model never prints, this module does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from efihandoff.uefi.memmap import attribute_names

_VERDICT_STYLE = {
    "intact": "green",
    "relocated": "green",
    "corrupt": "bold red",
    "refused": "yellow",
    "clobbered": "red",
    "absent": "dim",
    "unknown": "magenta",
}


def render_explain(doc: Mapping[str, Any], console: Console, *, full_map: bool = False) -> None:
    """Print an ``explain`` document: sources, memory map, tables, ESRT, paths, findings."""
    srcs = ", ".join(f"{s['path']} ({s['kind']})" for s in doc["sources"])
    console.print(f"[bold]efihandoff explain[/bold] — {srcs}")
    m = doc.get("machine") or {}
    if m.get("description"):
        console.print(m["description"])
    if m.get("role"):
        console.print(f"Printed by: {_who(m)}", highlight=False)
    observed = (doc.get("paths") or {}).get("observed")
    if observed is not None:
        console.print(f"Observed stack: {observed['label']}", highlight=False)
    for note in m.get("notes") or ():
        console.print(f"  [dim]{note}[/dim]", highlight=False)
    if doc["memory_map"] is not None:
        render_memory_map(doc["memory_map"], console, limit=None if full_map else 40)
    render_tables(doc["tables"], console)
    if doc["esrt"] is not None:
        render_esrt(doc["esrt"], console)
    if doc["paths"]:
        render_paths(doc["paths"], console)
    if doc["findings"]:
        t = Table(title="Findings", title_justify="left")
        t.add_column("severity")
        t.add_column("code")
        t.add_column("message", overflow="fold")
        for f in doc["findings"]:
            t.add_row(f["severity"], f["code"], f["message"])
        console.print(t)
    for line in doc.get("advice", []):
        console.print(f"→ {line}")


def _who(m: Mapping[str, Any]) -> str:
    parts = []
    if m.get("xen_version") or m["role"].startswith("xen"):
        boot = f" ({m['xen_boot']})" if m.get("xen_boot") else ""
        parts.append(f"Xen {m.get('xen_version') or '?'}{boot}")
    if m.get("linux_version"):
        parts.append(f"Linux {m['linux_version']}")
    return m["role"] + (f" — {', '.join(parts)}" if parts else "")


def render_memory_map(
    rows: Sequence[Mapping[str, Any]], console: Console, *, limit: int | None = 40
) -> None:
    t = Table(title=f"Memory map ({len(rows)} descriptors)", title_justify="left")
    for col in ("#", "type", "start", "end", "pages", "attribute"):
        t.add_column(col, justify="right" if col in ("#", "pages") else "left")
    shown = rows if limit is None or len(rows) <= limit else rows[:limit]
    for i, d in enumerate(shown):
        end = d["start"] + (d["pages"] << 12) - 1
        attr = d["attribute"]
        t.add_row(
            str(i),
            d["type"],
            f"{d['start']:#014x}",
            f"{end:#014x}",
            str(d["pages"]),
            "?" if attr is None else "|".join(attribute_names(attr)) or "0",
        )
    console.print(t)
    if len(shown) < len(rows):
        console.print(f"  … {len(rows) - len(shown)} more (--full-map shows all)")


def render_tables(rows: Sequence[Mapping[str, Any]], console: Console) -> None:
    t = Table(title="Configuration tables", title_justify="left")
    for col in ("name", "guid", "address", "size", "memory type", "evidence"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["name"] if r.get("known", True) else "(unknown to Linux)",
            r["guid"],
            f"{r['address']:#x}",
            "?" if r["size"] is None else str(r["size"]),
            r["memory_type"]
            or ("? (" + " / ".join(r["memory_type_candidates"]) + ")"
                if r.get("memory_type_candidates") else "?"),
            r["memory_type_evidence"] or "",
        )
    console.print(t)


def render_esrt(esrt: Mapping[str, Any], console: Console) -> None:
    head = (
        f"ESRT at {_addr(esrt['address'], esrt.get('from'))}: "
        f"count={_q(esrt['fw_resource_count'])} "
        f"max={_q(esrt['fw_resource_count_max'])} version={_q(esrt['fw_resource_version'])}"
    )
    if not esrt["entries"]:
        console.print(head)
        return
    t = Table(title=head, title_justify="left")
    for col in ("#", "fw_class", "type", "version", "lowest", "flags", "last attempt", "status"):
        t.add_column(col)
    for i, e in enumerate(esrt["entries"]):
        t.add_row(
            str(i),
            e["fw_class"],
            str(e["fw_type"]),
            str(e["fw_version"]),
            str(e["lowest_supported_fw_version"]),
            f"{e['capsule_flags']:#x}",
            str(e["last_attempt_version"]),
            str(e["last_attempt_status"]),
        )
    console.print(t)


def render_paths(paths: Mapping[str, Mapping[str, Any]], console: Console) -> None:
    """A path-by-table verdict matrix, then the reason for each ESRT verdict."""
    esrt_guid = "b122a263-3661-4f68-9929-78f8b0d62180"
    others: dict[str, str] = {}
    for p in paths.values():
        for g, v in p["tables"].items():
            if g != esrt_guid:
                others.setdefault(g, v.get("name") or g[:8])
    t = Table(title="Paths", title_justify="left")
    for col in ("path", "ESRT", "sysfs", "fwupd", "reserved", "held at boot", *others.values()):
        t.add_column(col, justify="right" if col in ("reserved", "held at boot") else "left")
    for pid, p in paths.items():
        esrt = p["tables"].get(esrt_guid, {"verdict": "absent"})
        devs = p["fwupd_devices"]
        cost = p["cost"] or {}
        cells = [_verdict(p["tables"].get(g, {}).get("verdict")) for g in others]
        t.add_row(
            pid,
            _verdict(esrt["verdict"]),
            {True: "yes", False: "no", None: "?"}[p["esrt_sysfs"]],
            "-" if devs is None else f"{len(devs)} device{'s' if len(devs) != 1 else ''}",
            _bytes(cost.get("reserved_bytes")),
            _bytes(cost.get("held_during_boot_bytes")),
            *cells,
        )
    console.print(t)
    console.print("[bold]Why, for the ESRT[/bold]")
    for pid, p in paths.items():
        esrt = p["tables"].get(esrt_guid)
        if esrt is not None:
            console.print(f"  {pid:<20} {_verdict(esrt['verdict'])}: {esrt['reason']}")


def _verdict(word: str | None) -> str:
    if word is None:
        return "-"
    return f"[{_VERDICT_STYLE.get(word, '')}]{word}[/]"


def render_boot(result: Mapping[str, Any], pid: str, console: Console) -> None:
    """The boot log of one path, then the verdicts."""
    console.print(f"[bold]{pid}[/bold]: {result['label']}")
    for line in result["log"]:
        console.print(line, markup=False, highlight=False)
    console.print()
    for v in result["tables"].values():
        console.print(
            f"  {v['name']:<12} [{_VERDICT_STYLE.get(v['verdict'], '')}]{v['verdict']:<9}[/] "
            f"{v['reason']}"
        )
    devs = result["fwupd_devices"]
    if devs:
        console.print("  fwupd would list:")
        for d in devs:
            console.print(
                f"    {d['guid']} {d['kind']} version {d['version']} lowest {d['lowest']} "
                f"flags {d['flags']:#x} {d['update_state']}"
            )


def _addr(address: int | None, source: str | None) -> str:
    if address is not None:
        return f"{address:#x}"
    return f"an unknown address (as {source} shows it)" if source else "an unknown address"


def _q(v: Any) -> str:
    return "?" if v is None else str(v)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
