"""Benchmark: the outputs on big documents (issue 15: text tables took 15-60 s for 15,000 map
lines, label placement was cubic in the tables), with baselines measured in the same run.

    .venv/bin/python bench/bench_outputs.py [--tables 1200] [--descriptors 15000] [--repeat 3]

Documents (built in memory from generated logs, explained once, not timed):

- ``many-tables``: a real AMI log (tests/fixtures) with ``--tables`` more ``efi: ESRT=`` lines,
  40 pages of tables close together (the reader keeps 1,024: its cap);
- ``distinct-tables``: the same with every table's GUID distinct, so every path judges each
  (a verdict column per table: the narrow per-path layout and ``-v`` reasons);
- ``big-map``: a log of ``--descriptors`` efi=debug map lines.

Contenders per document: ``explain`` text with ``--full-map -v`` at 160 and 80 columns, the
SVG, the HTML report. Baselines: ``json.dumps`` of the same document (the cheapest output),
and the text output with streaming off (rich lays out every table: the way before), which is
skipped above 20,000 rows as it takes minutes. CPU seconds (``time.process_time``), best of
``--repeat``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from efihandoff.explain import explain
from efihandoff.outputs import text
from efihandoff.outputs.html import explain_html
from efihandoff.outputs.json import explain_document
from efihandoff.outputs.svg import memmap_svg
from efihandoff.paths.presets import PRESETS
from efihandoff.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
AMI = ROOT / "tests" / "fixtures" / "logs" / "efi-debug-long-labels-no-timestamps.log"


def many_tables_log(path: Path, n: int) -> Path:
    out = []
    for line in AMI.read_text().splitlines():
        out.append(line)
        if line.startswith("efi:  ACPI 2.0"):
            out += [
                f"efi: ESRT=0x{0x79993000 + (i % 40) * 0x1000 + (i * 0x18) % 0x1000:x} "
                for i in range(n)
            ]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def big_map_log(path: Path, n: int) -> Path:
    out = ["Linux version 6.3.0 (x@y) #1 SMP", "efi: EFI v2.70 by EDK II",
           "efi: ACPI 2.0=0x1000 ESRT=0x2018 SMBIOS 3.0=0x3000 "]  # fmt: skip
    kinds = ["Conventional Memory", "Boot Data          ", "Loader Data        "]
    for i in range(n):
        start, end = i << 12, (i << 12) + 0xFFF
        out.append(
            f"efi: mem{i:02d}: [{kinds[i % 3]}|   |  |  |  |  |  |  |   |WB|WT|WC|UC] "
            f"range=[0x{start:016x}-0x{end:016x}] (0MB)"
        )
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def distinct(doc: dict[str, Any]) -> dict[str, Any]:
    d = json.loads(json.dumps(doc))
    for i, t in enumerate(d["tables"]):
        t["guid"] = f"{i:08x}-0000-0000-0000-000000000000"
    for p in d["paths"].values():
        base = next(iter(p["tables"].values()))
        p["tables"] = {t["guid"]: {**base, "name": f"T{i}"} for i, t in enumerate(d["tables"])}
    return d


def best(f: Callable[[], object], repeat: int) -> float:
    out = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        f()
        out = min(out, time.process_time() - t)
    return out


def render_text(doc: dict[str, Any], width: int, *, stream: bool) -> None:
    saved = text.STREAM_ROWS
    text.STREAM_ROWS = saved if stream else 10**12
    try:
        c = Console(file=io.StringIO(), width=width, highlight=False)
        text.render_explain(doc, c, full_map=True, verbose=True)
    finally:
        text.STREAM_ROWS = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", type=int, default=1200)
    ap.add_argument("--descriptors", type=int, default=15000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    a = ap.parse_args()
    docs: dict[str, dict[str, Any]] = {}
    for name, make in (
        ("many-tables", lambda p: many_tables_log(p, a.tables)),
        ("big-map", lambda p: big_map_log(p, a.descriptors)),
    ):
        log = make(a.work / f"efihandoff-bench-{name}.log")
        docs[name] = explain_document(explain(read_source(log), list(PRESETS.values())))
        log.unlink()
    docs["distinct-tables"] = distinct(docs["many-tables"])
    print(f"cpu_count {os.cpu_count()}; CPU seconds, best of {a.repeat}")
    print(f"{'document':16} {'rows':>12} {'contender':28} {'seconds':>8} {'x json':>8}")
    for name, doc in docs.items():
        rows = f"{len(doc['memory_map'] or [])}d/{len(doc['tables'])}t"
        base = best(lambda doc=doc: json.dumps(doc), a.repeat)
        contenders: list[tuple[str, Callable[[], object]]] = [
            ("json.dumps (baseline)", lambda doc=doc: json.dumps(doc)),
            ("text 160, streamed", lambda doc=doc: render_text(doc, 160, stream=True)),
            ("text 80, streamed", lambda doc=doc: render_text(doc, 80, stream=True)),
            ("svg", lambda doc=doc: memmap_svg(doc, path_id="xen-4.16")),
            ("html", lambda doc=doc: explain_html(doc, path_id="xen-4.16")),
        ]
        if len(doc["memory_map"] or []) + len(doc["tables"]) * len(doc["paths"]) <= 20000:
            contenders.append(
                ("text 160, rich (before)", lambda doc=doc: render_text(doc, 160, stream=False))
            )
        for what, f in contenders:
            s = base if what.startswith("json") else best(f, a.repeat)
            print(f"{name:16} {rows:>12} {what:28} {s:8.3f} {s / base:8.1f}")


if __name__ == "__main__":
    main()
