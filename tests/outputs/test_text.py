"""efihandoff.outputs.text: every width shows everything whole (boxed, borderless or narrow),
log lines unwrapped, colour rules; the ESRT in fwupd's and fwts' words."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from efihandoff.outputs import text

ROOT = Path(__file__).resolve().parents[2]
ESRT = "b122a263-3661-4f68-9929-78f8b0d62180"
LONG_ID = "xen=4.17.0,boot=multiboot2,linux=6.3,policy=relocate-known,scrub=intact,mapbs"
LONG_LABEL = "Xen 4.17.0 (multiboot2, -mapbs), Linux 6.3 dom0, relocate-known proposal, intact"


def console(width: int, **kw: object) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=width, highlight=False, emoji=False, **kw), buf


def path_entry(verdict: str, label: str, **tables: str) -> dict[str, object]:
    return {
        "label": label,
        "tables": {
            ESRT: {"name": "ESRT", "verdict": verdict, "reason": "because " * 12},
            **{g: {"name": n.split("=")[0], "verdict": n.split("=")[1], "reason": "r"}
               for g, n in tables.items()},
        },
        "esrt_sysfs": verdict != "refused",
        "fwupd_devices": [] if verdict != "refused" else None,
        "cost": {"reserved_bytes": 4096, "held_during_boot_bytes": 0},
    }


PATHS = {
    "native": path_entry("intact", "bare metal, Linux 6.3",
                         **{"8868e871-e4f1-11d3-bc22-0080c73c8881": "ACPI 2.0=intact",
                            "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9":
                            "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9=clobbered"}),
    LONG_ID: path_entry("unknown", LONG_LABEL),
}


@pytest.mark.parametrize("width", [60, 80, 120, 200, 300])
def test_paths_show_every_id_verdict_and_label_whole(width):
    c, buf = console(width)
    text.render_paths(PATHS, c)
    out = buf.getvalue()
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in out
    for pid, p in PATHS.items():
        if len(pid) < width - 4:
            assert any(pid in line for line in lines), pid  # the id on one line
        else:
            assert pid in "".join(line.strip() for line in lines)  # folded, never cut
        if len(p["label"]) < width - 4:
            assert any(p["label"] in line for line in lines), p["label"]
    # the unknown GUID is a column name or a row name, whole
    assert any("3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9" in line for line in lines)
    for word in ("intact", "unknown", "clobbered"):
        assert word in out


def test_paths_narrow_layout_one_verdict_per_line():
    c, buf = console(80)
    text.render_paths(PATHS, c)
    out = buf.getvalue()
    assert "┃" not in out.split("Why", 1)[0]  # no table: the narrow layout
    native = out.split("\nnative", 1)[1].split(f"\n{LONG_ID}", 1)[0].splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in native[1:] if line.strip()}
    assert rows["ESRT"][0] == "intact"
    assert rows["ACPI"][:2] == ["2.0", "intact"]
    assert rows["3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9"][0] == "clobbered"
    assert rows["reserved"] == ["4.0", "KiB"]


def test_paths_wide_is_a_table_with_the_stack():
    c, buf = console(300)
    text.render_paths(PATHS, c)
    out = buf.getvalue()
    header = next(line for line in out.splitlines() if "┃ path" in line)
    assert [h.strip() for h in header.strip("┃").split("┃")][:3] == ["path", "stack", "ESRT"]
    assert any(LONG_LABEL in line and LONG_ID in line for line in out.splitlines())


def test_reason_wraps_under_itself_never_cut():
    c, buf = console(80)
    text.render_paths({"native": PATHS["native"]}, c)
    why = buf.getvalue().split("Why, for the ESRT\n", 1)[1]
    assert " ".join(why.split()).count("because") == 12
    assert all(len(line) <= 80 for line in why.splitlines())


@pytest.mark.parametrize("width", [40, 80, 200])
def test_findings_and_tables_fit(width):
    c, buf = console(width)
    text.render_findings(
        [{"severity": "warning", "code": "esrt.count-over-max-and-a-long-code",
          "message": "fw_resource_count 5 is above fw_resource_count_max 3 " * 3}], c)
    text.render_tables(
        [{"name": "ESRT", "guid": ESRT, "address": 0xFFFF_FFFF_FFFF_F000, "size": 96,
          "memory_type": None, "memory_type_candidates": ["EfiBootServicesData",
                                                          "EfiACPIReclaimMemory"],
          "memory_type_evidence": "E820 kind only"}], c)
    out = buf.getvalue()
    assert "…" not in out
    flat = "".join(line.strip() for line in out.splitlines())
    for whole in ("esrt.count-over-max-and-a-long-code", ESRT, "0xfffffffffffff000",
                  "EfiBootServicesData", "EfiACPIReclaimMemory"):
        assert whole in flat, whole
    if width >= 80:
        assert any(ESRT in line for line in out.splitlines())
        assert any("0xfffffffffffff000" in line for line in out.splitlines())


def test_memory_map_layouts():
    rows = [{"type": "EfiRuntimeServicesData", "start": 0x1_0000_0000, "pages": 3670016,
             "attribute": 0x800000000000000F}]
    for width, boxed in ((120, True), (80, False), (50, False)):
        c, buf = console(width)
        text.render_memory_map(rows, c)
        out = buf.getvalue()
        assert ("┃" in out) is boxed
        assert "0x000100000000" in out and "EfiRuntimeServicesData" in out
        assert "UC|WC|WT|WB|RUNTIME" in out
        assert max(len(line) for line in out.splitlines()) <= width
    c, buf = console(80)
    text.render_memory_map(rows * 45, c, limit=40)
    assert "5 more (--full-map shows all)" in buf.getvalue()


def test_esrt_in_fwupd_and_fwts_words():
    """The fwupd fixture's entries (facts 6.3), decoded by hand."""
    c, buf = console(100)
    text.render_esrt(
        {"address": 0x79FFD0B0, "fw_resource_count": 2, "fw_resource_count_max": 3,
         "fw_resource_version": 1,
         "entries": [
             {"fw_class": "ddc0ee61-e7f0-4e7d-acc5-c070a398838e", "fw_type": 1,
              "fw_version": 65586, "lowest_supported_fw_version": 65582, "capsule_flags": 0xFE,
              "last_attempt_version": 18472960, "last_attempt_status": 1},
             {"fw_class": "671d19d0-d43c-4852-98d9-1ce16f9967e4", "fw_type": 2,
              "fw_version": 3090287969, "lowest_supported_fw_version": 1,
              "capsule_flags": 0x58010, "last_attempt_version": 0, "last_attempt_status": 6},
         ]}, c)
    out = " ".join(buf.getvalue().split())
    assert "ESRT at 0x79ffd0b0: count=2 max=3 version=1" in out
    assert "fw_type 1 System Firmware (fwupd: system-firmware)" in out
    assert "fw_version 65586 = 0x00010032 (triplet 0.1.50, quad 0.1.0.50, pair 1.50)" in out
    assert "capsule_flags 0xfe: GUID-specific 0xfe (fwupd adds PersistAcrossReset and " \
           "InitiateReset)" in out
    assert "last_attempt_status 1 Unsuccessful (LAST_ATTEMPT_STATUS_ERROR_UNSUCCESSFUL; " \
           "fwupd: error-unsuccessful; update state failed)" in out
    assert "fw_type 2 Device Firmware" in out
    assert "3090287969 = 0xb8320d61 (triplet 184.50.3425, quad 184.50.13.97, " \
           "pair 47154.3425)" in out
    # both reset flags already set: fwupd adds nothing
    assert "capsule_flags 0x58010: GUID-specific 0x8010, PersistAcrossReset, InitiateReset " \
           "last_attempt_version" in out
    assert "last_attempt_version 0 last_attempt_status" in out
    assert "6 Power Event: AC not connected (LAST_ATTEMPT_STATUS_ERROR_PWR_EVT_AC; fwupd: " \
           "error-pwr-evt-ac; update state failed-transient)" in out


def test_esrt_without_entries_says_so():
    c, buf = console(80)
    text.render_esrt({"address": None, "from": "dmesg.txt", "fw_resource_count": None,
                      "fw_resource_count_max": None, "fw_resource_version": None,
                      "entries": None}, c)
    out = buf.getvalue()
    assert "an unknown address (as dmesg.txt shows it): count=? max=? version=?" in out
    assert "entries: ?" in out


def test_boot_log_lines_never_wrapped():
    long_line = "efi: " + " ".join(f"T{i}=0x{i:08x}" for i in range(30)) + " (RNG=0x1 unusable)"
    result = {"label": "Xen 4.17.1 (efi), Linux 6.3 dom0", "log": [long_line, "[x] [mem y]"],
              "tables": {ESRT: {"name": "ESRT", "verdict": "corrupt", "reason": "why " * 40}},
              "fwupd_devices": []}
    c, buf = console(80)
    text.render_boot(result, "xen-4.17", c)
    lines = buf.getvalue().splitlines()
    assert long_line in lines and "[x] [mem y]" in lines  # whole, markup-like text kept
    assert all(len(line) <= 80 for line in lines if line != long_line)
    out = io.StringIO()
    text.write_log(result["log"], out)
    assert out.getvalue() == long_line + "\n[x] [mem y]\n"


def test_markup_in_data_is_printed_as_is():
    doc = {"sources": [{"path": "[bold]x[/bold].log", "kind": "dmesg"}],
           "machine": {"role": "xen-dom0", "xen_version": "4.17.7", "xen_boot": "efi",
                       "linux_version": "6.12.118", "description": "[red]d[/red]",
                       "notes": ["[dim]n"]},
           "memory_map": None, "tables": [], "esrt": None,
           "paths": {"observed": {**PATHS["native"], "label": "Xen 4.17.7 (efi), Linux [6.12]"}},
           "findings": [{"severity": "info", "code": "c", "message": "[mem 0x1-0x2]"}],
           "advice": ["[b]upgrade[/b]"]}
    c, buf = console(100)
    text.render_explain(doc, c)
    out = buf.getvalue()
    for literal in ("[bold]x[/bold].log", "[red]d[/red]", "[dim]n", "[mem 0x1-0x2]",
                    "[b]upgrade[/b]", "Linux [6.12]"):
        assert literal in out, literal
    assert "Printed by: xen-dom0 — Xen 4.17.7 (efi), Linux 6.12.118" in out
    assert "Observed stack: Xen 4.17.7 (efi), Linux [6.12]" in out


def test_verbose_gives_every_tables_reason():
    c, buf = console(120)
    text.render_paths(PATHS, c, verbose=True)
    out = buf.getvalue()
    assert "Why, for every table" in out
    assert "ACPI 2.0: intact: r" in " ".join(out.split())


def test_make_console_width_and_colour(monkeypatch):
    monkeypatch.setenv("COLUMNS", "97")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert text.make_console().width == 97
    monkeypatch.setenv("TERM", "dumb")
    dumb = text.make_console()
    assert dumb.width == 97 and dumb.color_system is None
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("NO_COLOR", "1")
    assert text.make_console().no_color
    monkeypatch.delenv("COLUMNS")
    monkeypatch.delenv("NO_COLOR")
    assert text.make_console(stderr=True).stderr


def test_verdict_colours_on_a_terminal():
    c, buf = console(200, force_terminal=True, color_system="standard")
    text.render_paths({"native": PATHS["native"]}, c)
    out = buf.getvalue()
    assert "\x1b[32mintact" in out  # green
    assert "\x1b[31mclobbered" in out  # red


def test_explain_document_of_the_example_renders_at_every_width():
    from click.testing import CliRunner

    from efihandoff.cli import main

    doc = json.loads(CliRunner().invoke(main, ["explain", str(ROOT / "examples" /
                                                             "laptop.toml"), "--json"]).stdout)
    for width in range(60, 221, 20):
        c, buf = console(width)
        text.render_explain(doc, c)
        out = buf.getvalue()
        assert max(len(line) for line in out.splitlines()) <= width, width
        for pid, p in doc["paths"].items():
            assert any(line.split()[:2] == [pid, p["tables"][ESRT]["verdict"] + ":"]
                       for line in out.splitlines() if line.strip()), (width, pid)


def test_console_output_has_no_trailing_spaces(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    c = text.make_console()
    text.render_paths(PATHS, c)
    text.render_memory_map([{"type": "EfiLoaderData", "start": 0, "pages": 1,
                             "attribute": 0xF}], c)
    out = capsys.readouterr().out
    assert out and not any(line.endswith(" ") for line in out.splitlines())
    assert "Paths\n" in out and "EfiLoaderData" in out


@pytest.mark.parametrize("width", [60, 80, 120, 160])
def test_any_boxed_table_on_the_console_is_never_cut(monkeypatch, capsys, width):
    """A table built elsewhere (e.g. the survey's renderer) printed on make_console(): widths
    given so every word shows, or records when the width cannot hold them."""
    from rich.table import Table

    monkeypatch.setenv("COLUMNS", str(width))
    c = text.make_console()
    t = Table(title="ESRT by path (machines)", title_justify="left")
    t.add_column("path")
    for w in ("intact", "relocated", "corrupt", "refused", "absent", "reserved median"):
        t.add_column(w, justify="right")
    for pid in ("xen-4.17-linux-6.1", "keep-boot-services", "reserve-hypercall"):
        t.add_row(pid, "[green]9[/] (53%)", "-", "5 (29%)", "12 (71%)", "2 (12%)", "64.0 MiB")
    c.print(t)
    out = capsys.readouterr().out
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= width
    for pid in ("xen-4.17-linux-6.1", "keep-boot-services", "reserve-hypercall"):
        assert any(pid in line for line in out.splitlines()), pid
    assert ("┃" in out) is (width >= 100)
    if width < 100:  # records: the row's name, then each column on its own line
        assert "    relocated        -" in out and "    reserved median  64.0 MiB" in out


def test_boot_device_with_unknown_values_reads_question_marks():
    # A device whose capsule flags come from bytes nobody wrote (Xen's POOL_TAIL Reserved word)
    # has flags None: printed "?", never a number (and never a crash).
    dev = {"guid": "671d19d0-d43c-4852-98d9-1ce16f9967e4", "kind": "device-firmware",
           "version": 3090287969, "lowest": 1818326128, "flags": None, "update_state": None}
    result = {"label": "Xen 4.17.1 (efi), Linux 6.3 dom0", "log": [],
              "tables": {ESRT: {"name": "ESRT", "verdict": "corrupt", "reason": "short"}},
              "fwupd_devices": [dev]}
    c, buf = console(120)
    text.render_boot(result, "xen-4.17", c)
    assert "lowest 1818326128 flags ? ?" in buf.getvalue()


# -- big tables stream (issue 15: 15,000 map lines took 15-60 s in rich's table layout) -----


def _map_rows(n: int) -> list[dict[str, object]]:
    types = ["EfiConventionalMemory", "EfiLoaderData", "Type0x70000000"]
    attrs = [15, None, 0x800000000000000F]
    return [{"type": types[i % 3], "start": i << 20, "pages": 1 + i * 37 % 1000,
             "attribute": attrs[i % 3]} for i in range(n)]


@pytest.mark.parametrize("width", [80, 60, 40])
def test_streamed_map_keeps_the_small_tables_layout(monkeypatch, width):
    # Where no box fits, the streamed rows are the borderless table (or the records) rich
    # draws for the same rows, line for line.
    rows = _map_rows(text.STREAM_ROWS + 1)
    outs = []
    for limit in (10**9, text.STREAM_ROWS):
        monkeypatch.setattr(text, "STREAM_ROWS", limit)
        c, buf = console(width)
        text.render_memory_map(rows, c, limit=None)
        outs.append([line.rstrip() for line in buf.getvalue().splitlines()])
    assert outs[0] == outs[1]


@pytest.mark.parametrize("width", [160, 80, 40])
def test_fifteen_thousand_map_lines_stream_whole(width):
    rows = _map_rows(15_000)
    c, buf = console(width)
    text.render_memory_map(rows, c, limit=None)
    out = buf.getvalue()
    assert "┃" not in out
    assert max(len(line) for line in out.splitlines()) <= width
    assert "(end = start + pages × 4 KiB − 1)" in out.splitlines()[0] or width != 80
    starts = [line.split()[2] for line in out.splitlines()[2:]] if width >= 80 else []
    if starts:
        assert starts == [f"{i << 20:#014x}" for i in range(15_000)]
    else:  # records: one heading per descriptor, its start on a line of its own
        assert out.count("\n    start  ") == 15_000
        assert f"    start      {(14_999 << 20):#014x}" in out


def test_streamed_findings_wrap_prose_at_spaces_never_cut():
    msg = "fw_resource_count 5 is above fw_resource_count_max 3 and 0xfffffffffffff000 " * 2
    finds = [{"severity": "warning", "code": f"esrt.c{i}", "message": msg}
             for i in range(text.STREAM_ROWS + 5)]
    for width in (80, 40):
        c, buf = console(width)
        text.render_findings(finds, c)
        lines = buf.getvalue().splitlines()
        assert max(len(line) for line in lines) <= width
        assert lines.count("    message  0xfffffffffffff000") == 0 or width == 40
        words = " ".join(lines).split()
        assert words.count("0xfffffffffffff000") == 2 * len(finds)
        assert words.count("fw_resource_count_max") == 2 * len(finds)
        assert f"esrt.c{len(finds) - 1}" in words


def _many_paths(n: int) -> dict[str, object]:
    tables = {f"{i:08x}-0000-0000-0000-000000000000": f"T{i}=intact" for i in range(n)}
    paths = {pid: path_entry(v, lab, **tables) for pid, (v, lab) in {
        "native": ("intact", "bare metal, Linux 6.3"),
        "xen-4.16": ("refused", "Xen 4.16.5 (efi), Linux 6.3 dom0"),
        LONG_ID: ("unknown", LONG_LABEL),
    }.items()}
    return paths


def _tables(n: int) -> list[dict[str, object]]:
    return [{"name": f"T{i}", "guid": f"{i:08x}-0000-0000-0000-000000000000",
             "address": 0x7000_0000 + i * 0x18, "size": None if i % 2 else 96,
             "memory_type": None if i % 3 else "EfiBootServicesData",
             "memory_type_candidates": ["EfiLoaderData", "EfiACPIReclaimMemory"],
             "memory_type_evidence": "E820 kind only, line 12 of the log" if i % 2 else None}
            for i in range(n)]


@pytest.mark.parametrize("width", [160, 80, 50])
def test_streamed_paths_and_reasons_keep_the_layout(monkeypatch, width):
    # The narrow per-path blocks, the reasons hanging beside their prefixes and the narrow
    # table list, streamed, are what rich draws for them, line for line.
    paths = _many_paths(30)
    for render in (lambda c: text.render_paths(paths, c, verbose=True),
                   lambda c: text.render_tables(_tables(30), c)):
        outs = []
        for limit in (10**9, 5):
            monkeypatch.setattr(text, "STREAM_ROWS", limit)
            c, buf = console(width)
            render(c)
            outs.append([line.rstrip() for line in buf.getvalue().splitlines()])
        if any("┃" in line for line in outs[0]):  # boxed when small: never when streamed
            assert not any("┃" in line for line in outs[1])
            continue
        assert outs[0] == outs[1]


def test_a_thousand_tables_on_every_path_stream_whole():
    paths = _many_paths(1000)
    c, buf = console(80)
    text.render_paths(paths, c, verbose=True)
    text.render_tables(_tables(1000), c)
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    words = buf.getvalue().split()
    assert words.count("T999") == 3 + 1  # a verdict row per path, and the table list
    assert words.count("T999:") == 3  # its reason on each path
    assert words.count(f"{999:08x}-0000-0000-0000-000000000000") == 1
    assert words.count("because") == 3 * 12  # the ESRT's reason on each path, whole
