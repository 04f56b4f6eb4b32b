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
