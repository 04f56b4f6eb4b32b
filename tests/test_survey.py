"""survey: counts on a seeded corpus against counts worked out here from what the generator
planted and the rules of the facts file; the same output whatever the number of workers; the
same verdicts as explain; archives, bad files, progress, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from efihandoff import survey
from efihandoff.explain import explain
from efihandoff.sources import read_source
from efihandoff.uefi.esrt import ESRT_GUID

BENCH = Path(__file__).resolve().parents[1] / "bench"
LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"
sys.path.insert(0, str(BENCH))
import make_corpus  # noqa: E402

PRESET_IDS = [
    "native",
    "xen-4.16",
    "xen-4.17",
    "xen-4.17-linux-6.1",
    "xen-fixed",
    "keep-boot-services",
    "relocate-known",
    "reserve-hypercall",
]
# Kinds whose memory types the log states (an efi=debug map, or Xen's EFI map on a serial
# console), so every verdict follows from the facts without guessing a type.
TRUTH_MIX = {"efi-debug": 20, "dom0-serial": 8, "xl": 2, "garbage": 3}

BS_DATA = "EfiBootServicesData"
BS_CODE = "EfiBootServicesCode"
RT_CODE = "EfiRuntimeServicesCode"
RT_DATA = "EfiRuntimeServicesData"
ACPI_RECLAIM = "EfiACPIReclaimMemory"
ACPI_NVS = "EfiACPIMemoryNVS"
RESERVED = "EfiReservedMemoryType"
# Linux 6.3 drivers/firmware/efi/esrt.c efi_esrt_init: types taken without EFI_MEMORY_RUNTIME.
ESRT_TYPES = {BS_DATA, RT_DATA, ACPI_RECLAIM, ACPI_NVS}
# Linux 6.3 drivers/xen/efi.c xen_efi_config_table_is_usable.
XEN_ALLOWLIST = {RT_CODE, RT_DATA, ACPI_RECLAIM, ACPI_NVS, RESERVED}


def expected_esrt(boot: make_corpus.PlantedBoot, path: str) -> str:
    """The ESRT's verdict on a preset path, from the facts file (Linux 6.3+ on every preset but
    xen-4.17-linux-6.1), for the machine the log shows: the table where the log says it is
    (after any Xen relocation), its header known only when the log printed 'Reserving'."""
    if boot.kind == "xl":
        return "unknown"  # Xen's console lists no configuration tables: silence proves nothing
    if boot.seen_address is None:
        return "absent"
    seen = _expected_at(boot, boot.seen_type, path)
    if boot.kind.startswith("dom0") and boot.seen_type == ACPI_RECLAIM and _xen_copies(boot):
        # A dom0 may see Xen's copy of a boot-services-data original (facts 5.4): a verdict
        # stands only where both placements give it.
        copied = _expected_at(boot, BS_DATA, path)
        return seen if seen == copied else "unknown"
    return seen


def _xen_copies(boot: make_corpus.PlantedBoot) -> bool:
    """efi_relocate_esrt runs from xen.efi since 4.17.0 and from multiboot2 since 4.17.1."""
    v = tuple(int(x) for x in (boot.xen or "0.0.0").split(".")[:3])
    return v >= (4, 17, 1) or (v >= (4, 17, 0) and boot.bootloader == "EFI")


def _expected_at(boot: make_corpus.PlantedBoot, t: str | None, path: str) -> str:
    """The verdict for the ESRT in type ``t`` (facts 3.2, 5.3-5.7)."""
    runtime = boot.esrt_runtime and not boot.relocated
    known = boot.reserving
    linux_takes = t in ESRT_TYPES or runtime  # efi_esrt_init
    if path == "xen-4.17-linux-6.1":
        return "refused"  # 6.1: efi_esrt_init returns without EFI_MEMMAP in a PV dom0
    if path == "native":
        if not linux_takes:
            return "refused"  # "ESRT header is not in the memory map."
        return "intact" if known else "unknown"  # BS data kept by efi_mem_reserve
    # Xen paths: 4.17.1+ and 4.22 copy a BS-data ESRT (with a readable header) into ACPI
    # reclaim before ExitBootServices; 4.16.5 does not.
    relocates = path in ("xen-4.17", "xen-fixed", "relocate-known")
    if relocates and t == BS_DATA and known:
        # get_esrt_size forgets the 16-byte header before 3ea44aa78c (4.19.5/4.20.3/4.21.1)
        return "corrupt" if path == "xen-4.17" else "relocated"
    allow = XEN_ALLOWLIST | ({BS_DATA, BS_CODE} if path == "reserve-hypercall" else set())
    if t not in allow:
        return "refused"  # "(ESRT=0x... unusable)"
    if not linux_takes:
        return "refused"
    return "intact" if known else "unknown"


@pytest.fixture(scope="module")
def truth_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("corpus")
    planted = make_corpus.make_corpus(
        root, logs=40, seed=7, size_mb=0.6, mix=TRUTH_MIX, descriptors=(50, 70)
    )
    return root, planted


@pytest.fixture(scope="module")
def truth_result(truth_corpus: tuple[Path, list]) -> survey.SurveyResult:
    return survey.run([str(truth_corpus[0])], jobs=1)


def test_counts_match_the_planted_truth(
    truth_corpus: tuple[Path, list], truth_result: survey.SurveyResult
) -> None:
    root, planted = truth_corpus
    # the boots of one log are one machine (the generator boots one firmware), judged on the last
    machines = [(p, len(p.boots), p.boots[-1]) for p in planted if p.boots]
    garbage = [p for p in planted if p.kind == "garbage"]
    assert garbage and machines  # the seed gives both
    doc = truth_result.to_json()
    assert doc["machines"] == len(machines)
    assert doc["boots"] == sum(len(p.boots) for p in planted)
    assert doc["machines_with_several_boots"] == sum(1 for p in planted if len(p.boots) > 1)
    assert sorted(s["path"] for s in doc["skipped"]) == sorted(
        os.path.join(str(root), p.path) for p in garbage
    )
    # every machine, path by path
    table = csv.DictReader(io.StringIO(truth_result.to_csv()))
    rows = {(r["path"], int(r["boot"])): r for r in table if not r["skipped"]}
    for p, i, b in machines:
        row = rows[(os.path.join(str(root), p.path), i)]
        assert row["boots"] == str(len(p.boots))
        for pid in PRESET_IDS:
            assert row[pid] == expected_esrt(b, pid), (p.path, i, pid, b)
    # and the totals
    for pid in PRESET_IDS:
        want = Counter(expected_esrt(b, pid) for _, _, b in machines)
        assert doc["paths"][pid]["esrt"] == dict(want), pid
    types = Counter(
        b.seen_type or ("unknown" if b.kind == "xl" else "absent") for _, _, b in machines
    )
    assert doc["esrt_memory_types"] == dict(types)


def test_truth_corpus_covers_the_interesting_cases(truth_corpus: tuple[Path, list]) -> None:
    """The seeded corpus plants what the rules above distinguish (else the test proves less)."""
    boots = [b for p in truth_corpus[1] for b in p.boots]
    kinds = Counter(b.kind for b in boots)
    assert kinds["efi-debug"] and kinds["dom0-serial"] and kinds["xl"]
    assert any(b.relocated for b in boots)
    assert any(b.seen_type == BS_DATA and b.reserving for b in boots)
    assert any(b.seen_type == RT_DATA for b in boots)
    assert any(b.seen_type not in ESRT_TYPES | {None} for b in boots)
    assert any(p for p in truth_corpus[1] if len(p.boots) == 2)
    verdicts = {expected_esrt(b, pid) for b in boots for pid in PRESET_IDS}
    assert {"intact", "refused", "absent", "corrupt", "relocated", "unknown"} <= verdicts


def test_same_output_whatever_jobs(
    truth_corpus: tuple[Path, list], truth_result: survey.SurveyResult
) -> None:
    two = survey.run([str(truth_corpus[0])], jobs=2)
    assert json.dumps(two.to_json(), sort_keys=True) == json.dumps(
        truth_result.to_json(), sort_keys=True
    )
    assert two.to_csv() == truth_result.to_csv()


def test_verdicts_equal_explain(truth_corpus: tuple[Path, list]) -> None:
    root = truth_corpus[0]
    files = sorted(str(p) for p in root.rglob("*") if p.is_file() and "garbage" not in p.name)[:12]
    files += [str(LOGS / n) for n in ("x86-laptop-efi-debug.log", "two-boots.log")]
    result = survey.run(files, jobs=1)
    by_key = {m.key: m for m in result.machines}
    for f in files:
        views = read_source(f)
        judged = [group[0] for group, _ in survey._machines_of(views)]
        assert len(judged) == sum(1 for m in result.machines if m.path == f)
        for i, view in enumerate(judged, 1):
            ex = explain([view])
            rec = by_key[(f, survey._boot_number(view) if len(views) > 1 else 1)]
            for p in rec.paths:
                r = ex.results["observed" if p.id.startswith("observed: ") else p.id]
                assert p.esrt == str(r.tables[ESRT_GUID].verdict), (f, i, p.id)
                others = [(t.name, str(t.verdict)) for g, t in r.tables.items() if g != ESRT_GUID]
                assert p.tables == tuple(others)
                assert p.reserved_bytes == r.cost.reserved_bytes
            assert set(rec.findings) == {f.code for f in ex.findings}


def test_archive_of_logs_reads_like_the_directory(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    make_corpus.make_corpus(
        corpus, logs=8, seed=3, size_mb=0.1, mix=TRUTH_MIX, descriptors=(50, 55)
    )
    tgz = tmp_path / "logs.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(corpus, arcname="c")
        evil = tarfile.TarInfo("../evil.log")
        data = (LOGS / "two-boots.log").read_bytes()
        evil.size = len(data)
        tf.addfile(evil, io.BytesIO(data))
        absolute = tarfile.TarInfo("/etc/abs.log")
        absolute.size = len(data)
        tf.addfile(absolute, io.BytesIO(data))
    from_dir = survey.run([str(corpus)], jobs=1)
    from_tar = survey.run([str(tgz)], jobs=2)
    assert len(from_tar.machines) == len(from_dir.machines)
    assert [m.path.split("::")[1] for m in from_tar.machines] == [
        "c/" + os.path.relpath(m.path, corpus) for m in from_dir.machines
    ]
    assert [(m.paths, m.esrt_memory_type) for m in from_tar.machines] == [
        (m.paths, m.esrt_memory_type) for m in from_dir.machines
    ]
    unsafe = [s for s in from_tar.skipped if "unsafe member" in s.reason]
    assert sorted(s.path for s in unsafe) == [f"{tgz}::../evil.log", f"{tgz}::/etc/abs.log"]


def test_bad_inputs_are_counted_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    (tmp_path / "noise.bin").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "readme.txt").write_text("just some notes about firmware\n" * 20)
    (tmp_path / "good.log").write_bytes((LOGS / "two-boots.log").read_bytes())
    (tmp_path / "boom.log").write_bytes((LOGS / "two-boots.log").read_bytes())
    real = survey._record

    def record(path: str, views, specs, boots=1):
        if path.endswith("boom.log"):
            raise RuntimeError("kaput")
        return real(path, views, specs, boots)

    monkeypatch.setattr(survey, "_record", record)
    (tmp_path / "dangling.log").symlink_to("nowhere")
    result = survey.run([str(tmp_path)], jobs=1)
    reasons = {os.path.basename(s.path): s.reason for s in result.skipped}
    assert reasons["boom.log"] == "internal error: RuntimeError: kaput"
    assert "empty file" in reasons["empty.log"]
    assert "text" in reasons["readme.txt"]
    assert "cannot read" in reasons["dangling.log"]
    assert set(reasons) == {"boom.log", "dangling.log", "empty.log", "noise.bin", "readme.txt"}
    # two-boots.log: a BIOS update between the boots (DMI 01.15 -> 01.16): two firmwares
    assert [(m.boot, m.boots) for m in result.machines] == [(1, 1), (2, 1)]


def test_a_missing_input_path_is_an_error(tmp_path: Path) -> None:
    from efihandoff.errors import SourceError

    (tmp_path / "a.log").write_bytes((LOGS / "two-boots.log").read_bytes())
    with pytest.raises(SourceError, match="missing: no such file or directory"):
        survey.run([str(tmp_path), str(tmp_path / "missing")], jobs=1)
    with pytest.raises(SourceError, match="Not a directory"):
        survey.run([str(tmp_path / "a.log" / "x")], jobs=1)


def test_progress_reaches_the_total(truth_corpus: tuple[Path, list]) -> None:
    seen: list[survey.Progress] = []
    result = survey.run([str(truth_corpus[0])], jobs=1, progress=seen.append)
    assert seen and seen[-1].done == seen[-1].total == len(truth_corpus[1])
    assert seen[-1].machines == len(result.machines) and seen[-1].eta == 0
    assert [p.done for p in seen] == sorted(p.done for p in seen)


def test_json_and_csv_shape(truth_result: survey.SurveyResult) -> None:
    doc = truth_result.to_json()
    assert doc["schema"] == "efihandoff/survey/1"
    assert list(doc["paths"])[: len(PRESET_IDS)] == PRESET_IDS
    native = doc["paths"]["native"]
    assert sum(native["esrt"].values()) == native["machines"] == doc["machines"]
    assert set(native["cost"]) == {"reserved_bytes", "held_during_boot_bytes"}
    assert set(native["cost"]["reserved_bytes"]) == {"median", "max"}
    assert sum(doc["esrt_memory_types"].values()) == doc["machines"]
    assert all(isinstance(v, int) for v in doc["findings"].values())
    json.dumps(doc)  # serialisable as is
    rows = list(csv.reader(io.StringIO(truth_result.to_csv())))
    assert rows[0][: 2] == ["path", "boot"] and rows[0][11 : 11 + len(PRESET_IDS)] == PRESET_IDS
    assert len(rows) == doc["machines"] + len(doc["skipped"]) + 1
    assert rows[0][-3:] == ["boots", "findings", "skipped"]
    skipped = [r for r in rows[1:] if r[-1]]
    assert [(r[0], r[-1]) for r in skipped] == [(s["path"], s["reason"]) for s in doc["skipped"]]
    assert all(set(r[1:-1]) == {""} for r in skipped)
    found = {r[0]: r[-2] for r in rows[1:] if not r[-1]}
    for m in doc["machines_detail"]:
        assert found[m["path"]] == " ".join(m["findings"])


def test_medians_are_of_the_machines() -> None:
    def rec(path: str, reserved: int) -> survey.MachineRecord:
        p = survey.PathRecord("native", "intact", (), reserved, 0)
        return survey.MachineRecord(
            path, 1, "dmesg", None, None, None, None, False, None, "absent", "x", (p,), ()
        )

    machines = [rec("a", 0), rec("b", 8192), rec("c", 4096), rec("d", 0)]
    result = survey.SurveyResult(machines, [], ["native"])
    cost = result.to_json()["paths"]["native"]["cost"]["reserved_bytes"]
    assert cost == {"median": 0, "max": 8192}  # lower middle of 0, 0, 4096, 8192


def test_render_survey_shows_each_question(truth_result: survey.SurveyResult) -> None:
    from rich.console import Console

    from efihandoff.outputs.survey import render_survey

    console = Console(record=True, width=240, color_system=None)
    render_survey(truth_result, console)
    text = console.export_text()
    doc = truth_result.to_json()
    assert f"{doc['machines']} machines" in text
    for title in ("ESRT by path", "Other configuration tables", "Where firmware put the ESRT",
                  "Memory-map evidence", "Findings", "Skipped"):
        assert title in text
    native = doc["paths"]["native"]["esrt"]
    intact_row = next(line for line in text.splitlines() if line.startswith("│ native"))
    assert f"{native['intact']} (" in intact_row
    assert "observed: Xen" in text  # dom0 logs' own stacks, apart


def test_sysfs_copies_are_one_machine_each(tmp_path: Path) -> None:
    sysfs = LOGS.parent / "sysfs"
    tgz = tmp_path / "dom0.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(sysfs / "xen-dom0", arcname="xen-dom0")
    result = survey.run([str(sysfs / "native-laptop"), str(tgz)], jobs=1)
    assert [m.path for m in result.machines] == sorted([str(sysfs / "native-laptop"), str(tgz)])
    assert not result.skipped
    for m in result.machines:
        ex = explain(read_source(m.path))
        assert {p.id: p.esrt for p in m.paths} == {
            (f"observed: {ex.observed_label}" if pid == "observed" else pid): str(
                r.tables[ESRT_GUID].verdict
            )
            for pid, r in ex.results.items()
        }
    # the copy shows the ESRT's entries but not where it was
    laptop = next(m for m in result.machines if m.path.endswith("native-laptop"))
    assert laptop.kind == "sysfs" and laptop.esrt_memory_type == "unknown"


# -- issue 15: symlinks followed once per real path; names and text echoed escaped --------------


def test_symlink_to_the_directory_counts_each_log_once(tmp_path: Path) -> None:
    shutil_copy = (LOGS / "x86-laptop-efi-debug.log").read_bytes()
    (tmp_path / "dmesg.log").write_bytes(shutil_copy)
    (tmp_path / "l").symlink_to(".")
    (tmp_path / "z-alias.log").symlink_to("dmesg.log")  # sorted after: the first name wins
    once = survey.run([str(tmp_path)], jobs=1)
    assert [m.path for m in once.machines] == [str(tmp_path / "dmesg.log")]
    # Two loops made the walk exponential before: it ends, with the same single machine.
    (tmp_path / "m").symlink_to(".")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..")
    twice = survey.run([str(tmp_path), str(tmp_path / "l")], jobs=1)
    assert [m.path for m in twice.machines] == [str(tmp_path / "dmesg.log")]
    assert twice.skipped == []


def test_echoed_names_and_text_are_escaped(tmp_path: Path) -> None:
    log = (LOGS / "x86-laptop-efi-debug.log").read_bytes()
    archive = tmp_path / "logs.tar"
    with tarfile.open(archive, "w") as tf:
        for name, data in (("evil\nname\x1b[2J.log", log), ("bad\rname.log", b"\x00" * 64)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    result = survey.run([str(archive)], jobs=1)
    names = [m.path for m in result.machines] + [s.path for s in result.skipped]
    assert f"{archive}::evil\\nname\\x1b[2J.log" in names
    assert f"{archive}::bad\\rname.log" in names
    for text in names + [s.reason for s in result.skipped]:
        assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text), text
    out = io.StringIO()
    csv.writer(out).writerows(result.csv_rows())
    assert "\x1b" not in out.getvalue()
    assert survey.echo_safe("a\udcffb\u2028") == "a\\udcffb\\u2028"


def test_rendered_names_are_text_not_markup(tmp_path: Path) -> None:
    # A member named "[/b]x.log" raised rich's MarkupError (internal error, exit 1); "[red]" was
    # swallowed as a style. Names are shown as written.
    from rich.console import Console

    from efihandoff.outputs.survey import render_survey

    archive = tmp_path / "logs.tar"
    with tarfile.open(archive, "w") as tf:
        for name in ("[/b]x.log", "[red]y.log"):
            info = tarfile.TarInfo(name)
            info.size = 5
            tf.addfile(info, io.BytesIO(b"junk\n"))
    result = survey.run([str(archive)], jobs=1)
    console = Console(record=True, width=240, color_system=None)
    render_survey(result, console)
    text = console.export_text()
    assert "::[/b]x.log" in text or "::[red]y.log" in text
