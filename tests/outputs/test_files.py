"""efihandoff.outputs.files: one output file, atomically; wrong kinds of target refused."""

from __future__ import annotations

import os

import pytest

from efihandoff.errors import OutputError
from efihandoff.outputs.files import write_text


def test_writes_and_replaces(tmp_path):
    p = write_text(tmp_path / "a.html", "one")
    write_text(p, "two")
    assert p.read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["a.html"]


def test_directory_or_missing_parent_is_one_output_error(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        write_text(tmp_path, "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="not a directory"):
        write_text(tmp_path / "file" / "a.svg", "x")


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_interrupted_write_leaves_no_temporary(tmp_path, monkeypatch, exc):
    # Issue 15: killed writes left hidden temporary files beside the output.
    def boom(src, dst):  # type: ignore[no-untyped-def]
        raise exc

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises((KeyboardInterrupt, OutputError)):
        write_text(tmp_path / "a.html", "x" * 100)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args",
    [
        ["boot", "examples/laptop.toml", "--sysfs-out", "{file}"],  # a file as --sysfs-out
        ["explain", "examples/laptop.toml", "--html", "{dir}"],  # a directory as --html
        ["memmap", "examples/laptop.toml", "--svg", "{dir}"],
    ],
)
def test_wrong_kind_of_target_is_one_line_exit_1(tmp_path, monkeypatch, args):
    from pathlib import Path

    from click.testing import CliRunner

    from efihandoff.cli import main

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    (tmp_path / "f").write_text("keep")
    argv = [a.format(file=tmp_path / "f", dir=tmp_path) for a in args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1, result.output
    err = result.stderr if hasattr(result, "stderr") else result.output
    lines = [ln for ln in err.splitlines() if ln.startswith("efihandoff:")]
    assert len(lines) == 1 and "Usage" not in err, err
    assert (tmp_path / "f").read_text() == "keep"
