"""survey as fleets use it (issue 11 point 3, issue 15 point 3): per-machine rows in --json,
--jsonl streamed in input order, skipped inputs and findings in --csv, exit 3 for a missing
input, no progress off a terminal, chunks that give a second worker work, and the boots of one
machine in a log counted once."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner

from efihandoff import survey
from efihandoff.cli import main
from efihandoff.outputs.survey import progress_text
from efihandoff.sources import read_source

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"
LAPTOP = LOGS / "x86-laptop-efi-debug.log"


def _fleet(tmp_path: Path) -> Path:
    d = tmp_path / "fleet"
    d.mkdir()
    (d / "a.log").write_bytes(LAPTOP.read_bytes())
    (d / "b.log").write_bytes((LOGS / "two-boots.log").read_bytes())
    (d / "c.txt").write_text("not a kernel log\n")
    (d / "sub").mkdir()
    (d / "sub" / "d.log").write_bytes(LAPTOP.read_bytes())
    return d


def _boots(text: str, n: int, dmi: list[str] | None = None) -> bytes:
    """``n`` boots of the log ``text`` one after another, the i-th with DMI line ``dmi[i]``."""
    out = []
    for i in range(n):
        boot = text
        if dmi is not None:
            boot = "\n".join(
                (line.split("DMI:")[0] + f"DMI: {dmi[i]}") if "DMI:" in line else line
                for line in text.splitlines()
            )
        out.append(boot.rstrip("\n"))
    return ("\n".join(out) + "\n").encode()


# -- output forms --------------------------------------------------------------------------------


def test_json_has_a_row_per_machine(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    res = CliRunner().invoke(main, ["survey", "--json", "--jobs", "1", str(fleet)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rows = doc["machines_detail"]
    assert len(rows) == doc["machines"] == 4  # b.log: two firmwares (a BIOS update between)
    assert [(r["path"], r["boot"]) for r in rows] == sorted((r["path"], r["boot"]) for r in rows)
    for pid, totals in doc["paths"].items():
        mine = [r["paths"][pid]["esrt"] for r in rows if pid in r["paths"]]
        assert len(mine) == totals["machines"]
        assert {w: mine.count(w) for w in set(mine)} == totals["esrt"]
    a = next(r for r in rows if r["path"].endswith("a.log"))
    assert a["boots"] == 1 and a["kind"] == "dmesg" and isinstance(a["findings"], list)
    assert set(a["paths"]["native"]) == {"esrt", "tables", "reserved_bytes",
                                         "held_during_boot_bytes"}


def test_jsonl_streams_machines_in_input_order(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    out = CliRunner().invoke(main, ["survey", "--jsonl", "--jobs", "2", str(fleet)])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    doc = json.loads(CliRunner().invoke(main, ["survey", "--json", str(fleet)]).stdout)
    machines = [x for x in lines if "skipped" not in x]
    skipped = [x for x in lines if "skipped" in x]
    # the walk's order (sorted names per directory), each input's machines in boot order
    assert [(m["path"].rsplit("/", 1)[-1], m["boot"]) for m in machines] == [
        ("a.log", 1), ("b.log", 1), ("b.log", 2), ("d.log", 1)
    ]
    assert sorted(machines, key=lambda m: (m["path"], m["boot"])) == doc["machines_detail"]
    assert [(s["path"], s["skipped"]) for s in skipped] == [
        (s["path"], s["reason"]) for s in doc["skipped"]
    ]


def test_emit_order_is_the_same_whatever_jobs(tmp_path: Path) -> None:
    fleet = tmp_path / "many"
    fleet.mkdir()
    for i in range(24):
        src = LAPTOP if i % 3 else LOGS / "two-boots.log"
        (fleet / f"{i:02d}.log").write_bytes(src.read_bytes())
    (fleet / "junk.bin").write_bytes(b"\x00" * 100)
    orders: list[list[tuple[str, int] | str]] = [[], []]

    def keep(seen: list[tuple[str, int] | str], o: survey.MachineRecord | survey.Skipped) -> None:
        seen.append(o.path if isinstance(o, survey.Skipped) else (o.path, o.boot))

    for jobs in (1, 2):
        survey.run([str(fleet)], jobs=jobs, emit=lambda o, j=jobs: keep(orders[j - 1], o))
    assert orders[0] == orders[1]
    assert len(orders[0]) == 24 + 8 + 1  # 8 two-firmware logs give two machines each


def test_csv_lists_skipped_inputs_and_findings(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    res = CliRunner().invoke(main, ["survey", "--csv", str(fleet)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    skipped = [r for r in rows if r["skipped"]]
    assert [r["path"].rsplit("/", 1)[-1] for r in skipped] == ["c.txt"]
    assert "text" in skipped[0]["skipped"] and skipped[0]["boot"] == ""
    machines = [r for r in rows if not r["skipped"]]
    assert len(machines) == 4 and all(r["boots"] == "1" for r in machines)
    assert any(r["findings"] for r in machines)
    for r in machines:
        assert r["findings"] == " ".join(sorted(r["findings"].split()))


def test_missing_or_unreadable_input_exits_3_with_one_line(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    for bad in (tmp_path / "nope", fleet / "a.log" / "below"):
        res = CliRunner().invoke(main, ["survey", str(fleet), str(bad)])
        assert res.exit_code == 3, res.output
        assert res.stderr.count("\n") == 1 and str(bad) in res.stderr


def test_bad_file_inside_a_directory_is_counted_not_fatal(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    (fleet / "dangling.log").symlink_to("gone")
    res = CliRunner().invoke(main, ["survey", "--json", str(fleet)])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert {s["path"].rsplit("/", 1)[-1] for s in doc["skipped"]} == {"c.txt", "dangling.log"}


def test_no_progress_off_a_terminal_or_when_quiet(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    for extra in ([], ["-q"]):
        res = CliRunner().invoke(main, ["survey", *extra, "--json", str(fleet)])
        assert res.exit_code == 0 and res.stderr == ""


def test_progress_line() -> None:
    p = survey.Progress(done=50, total=200, machines=120, elapsed=10.0)
    assert p.rate == 12.0 and p.eta == 30.0
    assert progress_text(p) == "50/200 files · 120 machines · 12/s · ETA 0:30"
    long = survey.Progress(done=1, total=10_000, machines=1, elapsed=2.0)
    assert progress_text(long).endswith("ETA 5:33:18")
    assert survey.Progress(0, 10, 0, 0.0).eta is None
    assert progress_text(survey.Progress(0, 10, 0, 0.0)).endswith("ETA ?")


def test_chunks_give_every_worker_work_and_pay_back_the_hand_over() -> None:
    size = survey.chunk_size(200, 2)
    assert survey.MIN_CHUNK <= size <= survey.MAX_CHUNK
    assert -(-200 // size) >= 2 * 2  # at least two chunks a worker: the last ones finish together
    assert survey.chunk_size(10, 2) == survey.MIN_CHUNK  # never chunks of one or two inputs
    assert survey.chunk_size(100_000, 2) == survey.MAX_CHUNK
    assert survey.chunk_size(200, 1) == survey.MAX_CHUNK


# -- boots of one machine ------------------------------------------------------------------------


def test_many_boots_of_one_machine_are_one_machine(tmp_path: Path) -> None:
    log = tmp_path / "many.log"
    log.write_bytes(_boots(LAPTOP.read_text(), 30))
    assert len(read_source(log)) == 30
    result = survey.run([str(log)], jobs=1)
    assert [(m.boot, m.boots) for m in result.machines] == [(30, 30)]
    doc = result.to_json()
    assert doc["machines"] == 1 and doc["boots"] == 30
    assert doc["machines_with_several_boots"] == 1
    assert doc["machines_detail"][0]["boots"] == 30
    from rich.console import Console

    from efihandoff.outputs.survey import render_survey

    console = Console(record=True, width=200, color_system=None)
    render_survey(result, console)
    text = console.export_text()
    assert "1 machine," in text and "30 boots read" in text and "counted once" in text


def test_boots_with_other_firmware_are_other_machines(tmp_path: Path) -> None:
    log = tmp_path / "two-boards.log"
    dmi = ["Acme Box/1, BIOS 1.0 01/01/2024", "Acme Box/1, BIOS 1.0 01/01/2024",
           "Other Board/2, BIOS 7 02/02/2024", "Acme Box/1, BIOS 1.0 01/01/2024"]
    log.write_bytes(_boots(LAPTOP.read_text(), 4, dmi))
    result = survey.run([str(log)], jobs=1)
    assert [(m.boot, m.boots, m.dmi) for m in result.machines] == [
        (3, 1, dmi[2]), (4, 3, dmi[0])
    ]


def test_same_machine_rule() -> None:
    a = survey.Identity("Acme, BIOS 1.0", "EFI v2.7 by EDK II", frozenset({"ACPI", "ESRT"}))
    assert survey.same_machine(a, a)
    assert survey.same_machine(a, survey.Identity())  # a boot that says nothing
    assert survey.same_machine(a, survey.Identity(tables=frozenset()))
    assert not survey.same_machine(a, survey.Identity("Acme, BIOS 1.1"))  # firmware update
    assert not survey.same_machine(a, survey.Identity(firmware="EFI v2.7 by AMI"))
    assert not survey.same_machine(a, survey.Identity(tables=frozenset({"ACPI"})))
    # Linux before 6.2 and after print one revision two ways
    assert survey.efi_revision("2.70") == survey.efi_revision("2.7") == "2.7"
    assert survey.efi_revision("2.31") == survey.efi_revision("2.3.1") == "2.31"
    assert survey.efi_revision("2.80") != survey.efi_revision("2.70")
    assert survey.efi_revision(None) == "?"


def test_rarer_collections_inside_a_survey_only(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Workers collect garbage less often (survey.SURVEY_GC_THRESHOLD) while they survey; the
    calling process's thresholds are its own again afterwards."""
    import gc

    seen: list[tuple[int, int, int]] = []
    real = survey.survey_unit

    def spy(unit, specs):  # type: ignore[no-untyped-def]
        seen.append(gc.get_threshold())
        return real(unit, specs)

    before = gc.get_threshold()
    monkeypatch.setattr(survey, "survey_unit", spy)
    survey.run([str(_fleet(tmp_path))], jobs=1)
    assert seen and set(seen) == {survey.SURVEY_GC_THRESHOLD}
    assert gc.get_threshold() == before
