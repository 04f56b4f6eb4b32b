"""The command line: outputs, exit codes (0 / 2 usage / 3 bad source) and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from efihandoff import fwupd
from efihandoff.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "laptop.toml")
NO_ESRT_LOG = str(ROOT / "tests" / "fixtures" / "logs" / "xl-dmesg-xen417.log")
DDC0 = "ddc0ee61-e7f0-4e7d-acc5-c070a398838e"
G671 = "671d19d0-d43c-4852-98d9-1ce16f9967e4"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result, code: int | None = None) -> str:
    """A failed run: the expected exit code (any non-zero when None), exactly one line on
    stderr, no traceback anywhere, and the exception was handled (SystemExit)."""
    if code is None:
        assert result.exit_code != 0
    else:
        assert result.exit_code == code, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert lines[0].startswith("efihandoff: ")
    return lines[0]


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    commands = result.stdout.split("Commands:", 1)[1].split()
    for cmd in ("explain", "boot", "esrt", "memmap"):
        assert cmd in commands


@pytest.mark.parametrize("cmd", ["explain", "boot", "esrt", "memmap"])
def test_every_command_takes_json(cmd):
    result = run(cmd, "--help")
    assert result.exit_code == 0 and "--json" in result.stdout


# --- explain ------------------------------------------------------------------------------


def test_explain_text_is_readable():
    result = run("explain", EXAMPLE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "\x1b[" not in out  # no terminal escapes when not on a terminal
    for name in ("ACPI 2.0", "SMBIOS 3.0", "MEMATTR", "ESRT", "EfiBootServicesData"):
        assert name in out, name
    for word in ("intact", "refused", "corrupt", "relocated"):
        assert word in out, word
    for pid in ("native", "xen-4.16", "xen-4.17", "xen-fixed"):
        assert pid in out, pid
    assert result.stderr == ""


def test_explain_without_source_says_it_uses_the_example():
    result = run("explain")
    assert result.exit_code == 0
    assert "example" in result.stdout


def test_explain_missing_file_exit_3():
    line = assert_one_line_error(run("explain", "/nonexistent"), 3)
    assert "/nonexistent" in line
    assert run("explain", "/nonexistent").stdout == ""


@pytest.mark.parametrize(
    "content",
    [bytes(range(256)) * 4, b"hello\nworld\n", b"", b"\x7fELF" + b"\0" * 60, b"[[region]]\nstart=",
     b"\x1f\x8b\x08\x00garbage"],
    ids=["binary", "text", "empty", "elf-stub", "broken-toml", "broken-gzip"],
)
def test_explain_garbage_file_exit_3(tmp_path, content):
    src = tmp_path / "garbage.bin"
    src.write_bytes(content)
    for cmd in ("explain", "esrt", "memmap"):
        assert_one_line_error(run(cmd, str(src)), 3)


@pytest.mark.parametrize(
    "spec", ["bogus", "NATIVE", "", "xen=abc", "foo=1", "xen=4.17,boot=bios", "linux=x",
             "xen-4.16,native"],
)
def test_bad_path_exit_2(spec):
    line = assert_one_line_error(run("explain", EXAMPLE, "--path", spec), 2)
    assert "path" in line


def test_explain_json_path_combination():
    spec = "xen=4.17.0,boot=multiboot2,linux=6.3"
    result = run("explain", EXAMPLE, "--path", spec, "--json")
    assert result.exit_code == 0
    assert list(json.loads(result.stdout)["paths"]) == [spec]


# --- boot ---------------------------------------------------------------------------------


def test_boot_prints_log_and_devices():
    """Piped (as under the test runner): stdout is the log, the verdicts and devices stderr."""
    result = run("boot", EXAMPLE, "--path", "native")
    assert result.exit_code == 0, result.output
    assert "efi: EFI v2.7 by EDK II" in result.stdout
    assert "esrt: Reserving ESRT space" in result.stdout
    assert DDC0 in result.stderr and G671 in result.stderr
    assert DDC0 not in result.stdout


def test_boot_json():
    result = run("boot", EXAMPLE, "--path", "xen-4.16", "--json")
    assert result.exit_code == 0
    d = json.loads(result.stdout)
    assert d["path"] == "xen-4.16"
    assert d["esrt_sysfs"] is False and d["fwupd_devices"] is None
    assert isinstance(d["log"], list)


def test_boot_sysfs_out_writes_the_tree(tmp_path):
    out = tmp_path / "firmware"
    result = run("boot", EXAMPLE, "--path", "native", "--sysfs-out", str(out))
    assert result.exit_code == 0, result.output
    esrt = out / "efi" / "esrt"
    # Linux esrt.c formats (facts 3.3), values of examples/laptop.toml
    assert (esrt / "fw_resource_count").read_bytes() == b"2\n"
    assert (esrt / "fw_resource_version").read_bytes() == b"1\n"
    e0 = esrt / "entries" / "entry0"
    assert (e0 / "fw_class").read_bytes() == f"{DDC0}\n".encode()
    assert (e0 / "fw_type").read_bytes() == b"1\n"
    assert (e0 / "fw_version").read_bytes() == b"65586\n"
    assert (e0 / "capsule_flags").read_bytes() == b"0xfe\n"
    assert (esrt / "entries" / "entry1" / "capsule_flags").read_bytes() == b"0x8010\n"
    assert sorted(p.name for p in (esrt / "entries").iterdir()) == ["entry0", "entry1"]
    # what fwupd would read back from the written tree
    tree: dict[str, str | None] = {}
    for dirpath, dirs, files in os.walk(out):
        rel = os.path.relpath(dirpath, out)
        for d in dirs:
            tree[os.path.normpath(os.path.join(rel, d))] = None
        for f in files:
            tree[os.path.normpath(os.path.join(rel, f))] = Path(dirpath, f).read_text()
    assert [d.guid for d in fwupd.devices(tree)] == [DDC0, G671]


def test_boot_sysfs_out_without_esrt(tmp_path):
    out = tmp_path / "firmware"
    assert run("boot", EXAMPLE, "--path", "xen-4.16", "--sysfs-out", str(out)).exit_code == 0
    assert (out / "efi").is_dir() and not (out / "efi" / "esrt").exists()


def test_boot_refuses_non_empty_dir_without_force(tmp_path):
    out = tmp_path / "firmware"
    out.mkdir()
    (out / "keep").write_text("mine\n")
    line = assert_one_line_error(run("boot", EXAMPLE, "--sysfs-out", str(out)))
    assert "not empty" in line
    assert [p.name for p in out.iterdir()] == ["keep"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["firmware"]  # no temp dir left
    result = run("boot", EXAMPLE, "--sysfs-out", str(out), "--force")
    assert result.exit_code == 0
    assert not (out / "keep").exists() and (out / "efi" / "esrt" / "entries").is_dir()


@pytest.mark.parametrize("target", ["/sys/x", "/sys/firmware", "/proc/x", "/dev/x"])
def test_boot_refuses_sys_dev_proc(target):
    line = assert_one_line_error(run("boot", EXAMPLE, "--sysfs-out", target))
    assert "refusing" in line
    assert not Path(target).exists() or target == "/sys/firmware"


def test_boot_bad_scenario_exit_3():
    assert_one_line_error(run("boot", "/nonexistent.toml"), 3)


def test_boot_bad_path_exit_2(tmp_path):
    assert_one_line_error(run("boot", EXAMPLE, "--path", "bogus", "--sysfs-out",
                              str(tmp_path / "o")), 2)
    assert not (tmp_path / "o").exists()


# --- esrt and memmap ----------------------------------------------------------------------


def test_esrt_text():
    result = run("esrt", EXAMPLE)
    assert result.exit_code == 0
    assert DDC0 in result.stdout and G671 in result.stdout
    assert "65586" in result.stdout and "0x8010" in result.stdout


def test_esrt_json():
    result = run("esrt", EXAMPLE, "--json")
    assert result.exit_code == 0
    e = json.loads(result.stdout)["esrt"]
    assert e["fw_resource_count"] == 2
    assert [x["fw_class"] for x in e["entries"]] == [DDC0, G671]
    assert e["entries"][1]["fw_version"] == 3090287969


def test_esrt_text_and_json_name_the_values():
    """fwupd's and fwts' words in text; in JSON beside the raw numbers, which stay."""
    out = " ".join(run_env("esrt", EXAMPLE, COLUMNS="100").stdout.split())
    assert "fw_type 1 System Firmware (fwupd: system-firmware)" in out
    assert "last_attempt_status 1 Unsuccessful (LAST_ATTEMPT_STATUS_ERROR_UNSUCCESSFUL" in out
    assert "65586 = 0x00010032 (triplet 0.1.50, quad 0.1.0.50, pair 1.50)" in out
    e0, e1 = json.loads(run("esrt", EXAMPLE, "--json").stdout)["esrt"]["entries"]
    assert (e0["fw_type"], e0["last_attempt_status"], e0["capsule_flags"]) == (1, 1, 0xFE)
    assert e0["names"]["fw_type"] == "System Firmware"
    assert e0["names"]["fwupd_kind"] == "system-firmware"
    assert e0["names"]["last_attempt_status"] == "Unsuccessful"
    assert e0["names"]["fwupd_update_state"] == "failed"
    assert e0["names"]["capsule_flags"] == ["GUID-specific 0xfe"]
    assert e0["names"]["fwupd_capsule_flags"] == 0x500FE
    assert e0["names"]["fw_version"]["quad"] == "0.1.0.50"
    assert e1["names"]["fw_type"] == "Device Firmware" and e1["names"]["fwupd_status"] == "success"


def test_esrt_none():
    assert run("esrt", NO_ESRT_LOG).stdout.strip() == "no ESRT"
    assert json.loads(run("esrt", NO_ESRT_LOG, "--json").stdout)["esrt"] is None


def test_memmap_text_and_json():
    text = run("memmap", EXAMPLE)
    assert text.exit_code == 0
    assert "EfiBootServicesData" in text.stdout and "0x000071800000" in text.stdout
    js = run("memmap", EXAMPLE, "--json")
    assert js.exit_code == 0
    rows = json.loads(js.stdout)["memory_map"]
    explained = json.loads(run("explain", EXAMPLE, "--json").stdout)["memory_map"]
    keys = ("type", "start", "pages", "attribute")
    assert [[r[k] for k in keys] for r in rows] == [[r[k] for k in keys] for r in explained]
    assert {"type": "EfiBootServicesData", "start": 0x71800000, "pages": 10240} in [
        {k: r[k] for k in ("type", "start", "pages")} for r in rows
    ]


@pytest.mark.parametrize("cmd", ["esrt", "memmap"])
def test_esrt_memmap_missing_source_exit_3(cmd):
    assert_one_line_error(run(cmd, "/nonexistent"), 3)


# --- python -m efihandoff -----------------------------------------------------------------


def test_python_m_efihandoff():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    bad = subprocess.run([sys.executable, "-m", "efihandoff", "explain", "/nonexistent"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert bad.returncode == 3
    assert bad.stdout == ""
    assert len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "efihandoff", "explain", EXAMPLE, "--path",
                         "xen-4.17", "--json"], capture_output=True, text=True, env=env,
                        timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["paths"]["xen-4.17"]["tables"][
        "b122a263-3661-4f68-9929-78f8b0d62180"]["verdict"] == "corrupt"


# --- issue 12: width, streams, conventions, exit codes ------------------------------------

ESRT = "b122a263-3661-4f68-9929-78f8b0d62180"
VERDICTS = ("intact", "relocated", "corrupt", "refused", "clobbered", "absent", "unknown")


def run_env(*args: str, **env: str | None):
    """A run with these environment variables (None unsets one)."""
    return CliRunner().invoke(main, list(args), env={"COLUMNS": None, "NO_COLOR": None,
                                                     "FORCE_COLOR": None, "TERM": None, **env})


def _rows_of(out: str, name: str) -> list[str]:
    return [line for line in out.splitlines() if name in line]


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_explain_fits_the_width_and_cuts_nothing(columns):
    """COLUMNS=80/120/200: no line wider than the console, no ellipsis, every preset id with its
    ESRT verdict whole on one line, every GUID and address whole."""
    result = run_env("explain", EXAMPLE, COLUMNS=str(columns))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert max(len(line) for line in out.splitlines()) <= columns
    assert "…" not in out.replace("… 4.21.0", "").replace("more (--full-map", "")
    doc = json.loads(run("explain", EXAMPLE, "--json").stdout)
    for pid, p in doc["paths"].items():
        verdict = p["tables"][ESRT]["verdict"]
        # the reasons section: "  <pid> <verdict>:" on one line, whatever the width
        assert any(
            line.split()[:2] == [pid, f"{verdict}:"] for line in out.splitlines() if line.strip()
        ), (pid, verdict)
        assert any(p["label"] in line for line in out.splitlines()), p["label"]  # one line
    for t in doc["tables"]:
        assert t["guid"] in out
        assert f"{t['address']:#x}" in out
    for d in doc["memory_map"]:
        assert f"{d['start']:#014x}" in out


def test_explain_at_80_columns_is_the_narrow_layout():
    """Paths as rows, one verdict per line: each path's block names every table with its
    verdict on a line of its own."""
    out = run_env("explain", EXAMPLE, COLUMNS="80").stdout
    paths_part = out.split("\nPaths\n", 1)[1].split("\nWhy, for the ESRT", 1)[0]
    doc = json.loads(run("explain", EXAMPLE, "--json").stdout)
    blocks = {}
    current = None
    for line in paths_part.splitlines():
        if line and not line.startswith(" "):
            current = line.split()[0]
            blocks[current] = []
        elif current is not None:
            blocks[current].append(line.split())
    assert list(blocks) == list(doc["paths"])
    for pid, p in doc["paths"].items():
        for guid, v in p["tables"].items():
            name = "ESRT" if guid == ESRT else v.get("name") or guid
            words = name.split()
            hits = [r for r in blocks[pid] if r[: len(words)] == words]
            assert len(hits) == 1 and hits[0][len(words)] == v["verdict"], (pid, name, hits)


def test_explain_wide_is_one_table_when_it_fits():
    out = run_env("explain", EXAMPLE, COLUMNS="200").stdout
    row = next(line for line in out.splitlines() if line.startswith("│ xen-4.17 "))
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[:2] == ["xen-4.17", "corrupt"]
    assert cells[-4:] == ["intact", "intact", "refused", "clobbered"]
    # the stacks, too long for the table at 200 columns, are listed whole under it
    assert "  xen-4.17            Xen 4.17.1 (efi), Linux 6.3 dom0" in out


def test_custom_path_label_whole_at_80():
    spec = "xen=4.17.0,boot=multiboot2,linux=6.3,policy=relocate-known,scrub=intact"
    result = run_env("explain", EXAMPLE, "--path", spec, COLUMNS="80")
    assert result.exit_code == 0, result.output
    label = json.loads(run("explain", EXAMPLE, "--path", spec, "--json").stdout)["paths"][spec][
        "label"]
    flat = " ".join(result.stdout.split())
    assert label in flat
    assert spec in result.stdout  # the id itself never broken: it is shorter than the line


def test_piped_output_is_not_forced_to_160_columns():
    """No COLUMNS, not a terminal: rich's 80, not a fixed 160."""
    out = run_env("explain", EXAMPLE).stdout
    assert max(len(line) for line in out.splitlines()) <= 80


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_no_color_and_dumb_terminal(env):
    coloured = run_env("explain", EXAMPLE, FORCE_COLOR="1", COLUMNS="100").stdout
    assert "\x1b[32m" in coloured or "\x1b[1;31m" in coloured  # FORCE_COLOR does colour
    plain = run_env("explain", EXAMPLE, FORCE_COLOR="1", COLUMNS="100", **env).stdout
    assert "\x1b[3" not in plain and "\x1b[9" not in plain  # no foreground colour at all
    if env.get("TERM") == "dumb":
        assert "\x1b[" not in plain
        assert max(len(line) for line in plain.splitlines()) <= 100  # COLUMNS still honoured


def test_boot_stdout_is_exactly_the_log_lines():
    result = run("boot", EXAMPLE, "--path", "xen-4.17")
    assert result.exit_code == 0
    log = json.loads(run("boot", EXAMPLE, "--path", "xen-4.17", "--json").stdout)["log"]
    assert result.stdout == "".join(line + "\n" for line in log)
    assert any(len(line) > 80 for line in log)  # long lines are not wrapped
    assert "corrupt" in result.stderr and "xen-4.17" in result.stderr
    quiet = run("boot", EXAMPLE, "--path", "xen-4.17", "-q")
    assert quiet.stdout == result.stdout and quiet.stderr == ""
    with_log = run("boot", EXAMPLE, "--path", "xen-4.17", "--log")
    assert with_log.stdout == result.stdout


@pytest.mark.parametrize("scenario", ["laptop.toml", "esrt-rtdata.toml"])
@pytest.mark.parametrize("pid", list(__import__("efihandoff.paths.presets").paths.presets.PRESETS))
def test_boot_log_reads_back_as_the_same_machine_and_stack(tmp_path, scenario, pid):
    """explain on what boot piped out: the same Xen, the same tables at the same addresses, and
    the ESRT verdict on the observed stack (or the preset) never a wrong definite word."""
    import re

    src = str(ROOT / "examples" / scenario)
    truth = json.loads(run("boot", src, "--path", pid, "--json").stdout)
    log = tmp_path / "boot.log"
    log.write_text(run("boot", src, "--path", pid).stdout)
    doc = json.loads(run("explain", str(log), "--json").stdout)
    p = doc["paths"].get("observed") or doc["paths"][pid]
    got = p["tables"][ESRT]["verdict"]
    want = truth["tables"][ESRT]["verdict"]
    assert got in (want, "unknown"), (got, want)
    assert got != "absent"
    xen = re.match(r"Xen [\d.]+", truth["label"])
    if xen:
        assert doc["machine"]["role"] == "xen-dom0"
        assert p["label"].startswith(xen.group(0)), (p["label"], truth["label"])
    else:
        assert "observed" not in doc["paths"] and doc["machine"]["role"] != "xen-dom0"
    esrt_line = next(line for line in truth["log"] if "ESRT=" in line)
    addr = int(re.search(r"ESRT=(0x[0-9a-f]+)", esrt_line).group(1), 16)
    assert any(t["name"] == "ESRT" and t["address"] == addr for t in doc["tables"])


def test_every_command_has_verbose_and_quiet():
    for cmd in ("explain", "boot", "esrt", "memmap", "survey", "collect"):
        out = run(cmd, "--help").stdout
        assert "-v, --verbose" in out and "-q, --quiet" in out, cmd


def test_help_lists_the_presets_and_what_each_command_prints():
    from efihandoff.paths.presets import PRESETS

    flat = "".join(run("--help").stdout.split())  # click may wrap after a hyphen
    for pid in PRESETS:
        assert pid in flat
    for cmd in ("explain", "boot", "memmap", "survey"):
        text = "".join(run(cmd, "--help").stdout.split())
        for pid in PRESETS:
            assert pid in text, (cmd, pid)
    for cmd in ("explain", "boot", "esrt", "memmap", "survey", "collect"):
        help_text = run(cmd, "--help").stdout
        assert "--json" in help_text
        opt = help_text.split("Options:", 1)[1].split("--json", 1)[1].split("\n  -", 1)[0]
        assert "schema" in opt, cmd


def test_every_json_has_a_schema(tmp_path, monkeypatch):
    docs = {
        "explain": run("explain", EXAMPLE, "--json"),
        "boot": run("boot", EXAMPLE, "--json"),
        "esrt": run("esrt", EXAMPLE, "--json"),
        "memmap": run("memmap", EXAMPLE, "--json"),
        "survey": run("survey", EXAMPLE, "--json", "--jobs", "1"),
    }
    from efihandoff.sources import collect as collect_mod

    def fake_collect(out):
        return collect_mod.CollectReport(path=str(out), files=("a",), skipped=(),
                                         kernel_log_source=None, size=1)

    monkeypatch.setattr(collect_mod, "collect", fake_collect)
    docs["collect"] = run("collect", str(tmp_path / "x.tar.gz"), "--json")
    for cmd, result in docs.items():
        assert result.exit_code == 0, (cmd, result.output)
        assert json.loads(result.stdout)["schema"] == f"efihandoff/{cmd}/1", cmd


def test_ctrl_c_exits_130_without_traceback(monkeypatch):
    """A real SIGINT while explain works: exit 130, no "Aborted!", no traceback."""
    import signal
    import time

    import efihandoff.cli as cli

    def slow(*_a, **_k):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        raise AssertionError("not interrupted")

    monkeypatch.setattr(cli, "explain_views", slow)
    result = run("explain", EXAMPLE)
    assert result.exit_code == 130
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert result.stdout == ""


def test_ctrl_c_in_a_real_process():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    code = (
        "import os, signal, efihandoff.cli as c\n"
        "c.read_sources = lambda s: os.kill(os.getpid(), signal.SIGINT) or __import__('time')"
        ".sleep(30)\n"
        "c.main(['explain', 'x'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "Aborted" not in proc.stderr


@pytest.mark.parametrize("name", ["out.zip", "out", "out.tar.xz", "out.gz"])
def test_collect_refuses_other_archive_names(tmp_path, name):
    line = assert_one_line_error(run("collect", str(tmp_path / name)), 2)
    assert ".tar.gz" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["adir", "adir.tar.gz"])
def test_collect_onto_a_directory_is_one_line_exit_1(tmp_path, name):
    # issue 15 point 4: click's usage text (exit 2) before; now as --html onto a directory.
    (tmp_path / name).mkdir()
    line = assert_one_line_error(run("collect", str(tmp_path / name)), 1)
    assert "is a directory" in line
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_collect_prints_wrote_on_stderr(tmp_path, monkeypatch):
    from efihandoff.sources import collect as collect_mod

    monkeypatch.setattr(collect_mod, "collect", lambda out: collect_mod.CollectReport(
        path=str(out), files=("a", "b"), skipped=(("/x", "unreadable"),),
        kernel_log_source="dmesg", size=10))
    for name in ("o.tgz", "o.tar", "O.TAR.GZ"):
        result = run("collect", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        assert f"wrote {tmp_path / name}: 2 files, 10 bytes" in result.stderr
        assert "skipped /x: unreadable" in result.stderr
        assert run("collect", str(tmp_path / name), "-q").stderr == ""


def test_fail_on():
    clean = run("explain", EXAMPLE, "--fail-on", "warning")  # only info findings
    assert clean.exit_code == 0
    warn = str(ROOT / "examples" / "esrt-count0.toml")  # a warning, no error
    assert run("explain", warn).exit_code == 0  # off by default
    assert run("explain", warn, "--fail-on", "error").exit_code == 0
    hit = run("explain", warn, "--fail-on", "warning")
    assert hit.exit_code == 4 and "--fail-on warning" in hit.stderr
    assert "esrt.count-zero" in hit.stdout or "count" in hit.stdout  # the report still printed
    err = str(ROOT / "examples" / "esrt-straddle.toml")
    assert run("explain", err, "--fail-on", "error", "--json").exit_code == 4
    bad = run("explain", EXAMPLE, "--fail-on", "info")
    assert bad.exit_code == 2 and "--fail-on" in bad.stderr


def test_wrote_lines_go_to_stderr(tmp_path):
    html = tmp_path / "r.html"
    result = run("explain", EXAMPLE, "--json", "--html", str(html))
    assert result.exit_code == 0
    json.loads(result.stdout)  # stdout is the document alone
    assert f"wrote {html}" in result.stderr
    svg = tmp_path / "m.svg"
    result = run("memmap", EXAMPLE, "--svg", str(svg))
    assert result.exit_code == 0 and result.stdout == ""
    assert f"wrote {svg}" in result.stderr
    assert run("memmap", EXAMPLE, "--svg", str(svg), "-q").stderr == ""


def test_verbose_explain_gives_every_reason():
    out = run_env("explain", EXAMPLE, "-v", COLUMNS="200").stdout
    assert "Why, for every table" in out
    assert "19 " in out and "more (--full-map" not in out
    assert out.count("MEMATTR: refused:") >= 1


def test_shell_completion_completes_preset_ids():
    from efihandoff.paths.presets import PRESETS

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "_EFIHANDOFF_COMPLETE": "bash_complete",
           "COMP_WORDS": "efihandoff explain --path xen-4.1", "COMP_CWORD": "3"}
    code = "import sys; from efihandoff.cli import main; sys.argv[0] = 'efihandoff'; main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    words = [line.split(",", 1)[1] for line in proc.stdout.splitlines() if "," in line]
    assert words == [p for p in PRESETS if p.startswith("xen-4.1")], proc.stdout + proc.stderr
    env["COMP_WORDS"], env["COMP_CWORD"] = "efihandoff boot x --path ", "4"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    words = [line.split(",", 1)[1] for line in proc.stdout.splitlines() if "," in line]
    assert set(PRESETS) <= set(words) and "xen=" in words and "dom0_kernel=" in words


def test_every_path_key_is_in_the_help_and_parses():
    # The completion list, the --path help and parse_path name the same keys (dom0_kernel= was
    # parsed but missing from both).
    from efihandoff.cli import _PATH_HELP
    from efihandoff.paths.presets import PATH_KEYS, parse_path

    values = {"base=": "xen-4.17", "xen=": "4.17.1", "linux=": "6.12", "boot=": "efi",
              "policy=": "relocate-known", "scrub=": "zeros", "dom0_kernel=": "0x1000-0x2000"}
    for key in PATH_KEYS:
        assert key.rstrip("=") in _PATH_HELP, key
        parse_path(key + values.get(key, ""))  # raises UsageError on an unknown key


# --- packaging: man page, licence, metadata, the README's fwupd line ------------------------


def test_man_page_is_generated_from_the_cli_and_current():
    """man/efihandoff.1 is what tools/make_man.py writes from the CLI now: every command, every
    option, the preset ids; the wheel installs it (pyproject shared-data)."""
    import importlib.util
    import tomllib

    from efihandoff import __version__
    from efihandoff.paths.presets import PRESETS

    spec = importlib.util.spec_from_file_location("make_man", ROOT / "tools" / "make_man.py")
    assert spec is not None and spec.loader is not None
    make_man = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_man)
    page = make_man.render(main, __version__)
    assert (ROOT / "man" / "efihandoff.1").read_text(encoding="utf-8") == page, (
        "man/efihandoff.1 is stale: run .venv/bin/python tools/make_man.py")
    assert page.startswith(".TH EFIHANDOFF 1 ")
    for cmd in ("explain", "boot", "esrt", "memmap", "survey", "collect"):
        assert f".SS\n\\fBefihandoff {cmd}\\fR" in page, cmd
    for opt in ("\\-\\-fail\\-on", "\\-\\-sysfs\\-out", "\\-\\-print\\-script", "\\-q", "\\-v"):
        assert opt in page, opt
    flat = page.replace("\\-", "-")
    for pid in PRESETS:
        assert pid in flat
    assert "\n130\\fR" not in page and "\\fB130\\fR" in page
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shared = meta["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared == {"man/efihandoff.1": "share/man/man1/efihandoff.1"}


def test_man_page_renders_with_man():
    import shutil

    if shutil.which("man") is None:
        pytest.skip("man not installed")
    proc = subprocess.run(["man", "-l", str(ROOT / "man" / "efihandoff.1")], capture_output=True,
                          text=True, env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat",
                                          "PAGER": "cat"}, timeout=60, check=False)
    if proc.returncode != 0 and "groff" in proc.stderr:
        pytest.skip(f"man cannot render here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    assert "EXIT STATUS" in proc.stdout and "efihandoff explain" in proc.stdout
    assert "--fail-on" in proc.stdout.replace("‐", "-")


def test_packaging_metadata():
    import re
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "MIT"
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n") and "WITHOUT WARRANTY OF ANY KIND" in licence
    assert meta["authors"] and meta["classifiers"] and meta["urls"]
    assert any(c.startswith("Topic :: System") for c in meta["classifiers"])
    for url in meta["urls"].values():
        assert url.startswith("https://")
        assert not any(h in url for h in ("pypi.org", "pythonhosted", "npmjs", "crates.io"))
    extras = meta["optional-dependencies"]
    assert not any(d.startswith("ruff") for d in extras["test"])  # the test extra stays lean
    assert any(d.startswith("ruff") for d in extras["dev"])
    assert "efihandoff[test]" in extras["dev"]
    # no test imports or runs ruff: the README's test command installs only '.[test]'
    ruff_use = re.compile(r"^\s*(import ruff|from ruff)|[\[(,]\s*[\"']ruff[\"']", re.M)
    for path in (ROOT / "tests").rglob("*.py"):
        if path == Path(__file__):
            continue  # this test names it
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not ruff_use.search(text), path


def test_readme_fwupd_line_lists_the_boot_tree_with_the_real_fwupdtool(tmp_path):
    """The README's fwupd command, run as written on a `boot --sysfs-out` tree, lists exactly
    the devices the model predicts; without FWUPD_UEFI_TEST it lists none (why the README
    names it)."""
    import re
    import shutil

    readme = (ROOT / "README.md").read_text()
    m = re.search(r"`(FWUPD_SYSFSFWDIR=DIR[^`]*fwupdtool get-devices[^`]*)`", readme)
    assert m, "README names the fwupdtool command"
    words = m.group(1).split()
    env_words = [w for w in words if "=" in w and w.split("=")[0].isupper()]
    cmd = words[len(env_words):]
    assert cmd[:2] == ["fwupdtool", "get-devices"] and "--plugins" in cmd
    assert {w.split("=")[0] for w in env_words} == {"FWUPD_SYSFSFWDIR", "FWUPD_UEFI_TEST"}
    if shutil.which("fwupdtool") is None:
        pytest.skip("fwupdtool not installed (apt-get install fwupd)")
    tree = tmp_path / "firmware"
    assert run("boot", EXAMPLE, "--path", "xen-4.17", "--sysfs-out", str(tree)).exit_code == 0
    predicted = json.loads(run("boot", EXAMPLE, "--path", "xen-4.17", "--json").stdout)
    for d in ("lock", "cache", "state"):
        (tmp_path / d).mkdir()

    def listed(with_test: bool) -> list[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FWUPD_")}
        for w in env_words:
            k, v = w.split("=", 1)
            if k == "FWUPD_UEFI_TEST" and not with_test:
                continue
            env[k] = str(tree) if v == "DIR" else v
        # isolation only (parallel runs, no root): the lock, cache and state go to tmp_path
        env.update(FWUPD_LOCKDIR=str(tmp_path / "lock"), XDG_CACHE_HOME=str(tmp_path / "cache"),
                   FWUPD_LOCALSTATEDIR=str(tmp_path / "state"), LANG="C.UTF-8")
        proc = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=env,
                              timeout=120, stdin=subprocess.DEVNULL, check=False)
        doc = json.loads(proc.stdout)
        return sorted(g for dev in doc.get("Devices", []) if dev.get("Plugin") == "uefi_capsule"
                      for g in dev["Guid"][:1])

    assert listed(True) == sorted(d["guid"] for d in predicted["fwupd_devices"]) == sorted(
        [DDC0, G671])
    assert listed(False) == []


def test_survey_progress_is_on_stderr_never_stdout():
    """stderr a terminal, stdout a file: the progress bar draws on stderr; stdout holds the
    report alone, from its first line (no blank line, no escapes)."""
    import pty

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TERM": "xterm", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "efihandoff", "survey", str(ROOT / "examples"), "--jobs", "1"],
            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env,
            timeout=300, check=False,
        )
    finally:
        os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    assert proc.returncode == 0, err[-500:]
    out = proc.stdout.decode()
    assert out.startswith("efihandoff survey"), out[:200]
    assert "\x1b" not in out
    assert b"\x1b[" in err  # the live display drew (and cleared) itself on the terminal


@pytest.mark.parametrize("columns", ["80", "120"])
def test_survey_text_fits_and_cuts_nothing(columns):
    from efihandoff.paths.presets import PRESETS

    result = run_env("survey", str(ROOT / "examples"), "--jobs", "1", COLUMNS=columns)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("efihandoff survey")
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= int(columns)
    for pid in PRESETS:
        assert any(pid in line for line in out.splitlines()), pid
