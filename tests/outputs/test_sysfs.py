"""efihandoff.outputs.sysfs: exact bytes, atomic replacement, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.errors import OutputError
from efihandoff.outputs import sysfs
from efihandoff.outputs.sysfs import write_tree

TREE: dict[str, str | None] = {
    "efi": None,
    "efi/esrt": None,
    "efi/esrt/fw_resource_count": "1\n",
    "efi/esrt/entries": None,
    "efi/esrt/entries/entry0": None,
    "efi/esrt/entries/entry0/fw_class": "ddc0ee61-e7f0-4e7d-acc5-c070a398838e\n",
    "efi/esrt/entries/entry0/capsule_flags": "0xfe\n",
    "efi/efivars": None,  # an empty directory
}


def listing(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root``: file bytes, or None for a directory."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            out[os.path.relpath(os.path.join(dirpath, f), root)] = Path(dirpath, f).read_bytes()
    return out


def leftovers(parent: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name not in keep)


def test_writes_exact_bytes_and_directories(tmp_path):
    out = write_tree(TREE, tmp_path / "fw")
    assert out == tmp_path / "fw"
    assert listing(out) == {
        "efi": None,
        "efi/esrt": None,
        "efi/esrt/fw_resource_count": b"1\n",
        "efi/esrt/entries": None,
        "efi/esrt/entries/entry0": None,
        "efi/esrt/entries/entry0/fw_class": b"ddc0ee61-e7f0-4e7d-acc5-c070a398838e\n",
        "efi/esrt/entries/entry0/capsule_flags": b"0xfe\n",
        "efi/efivars": None,
    }
    assert leftovers(tmp_path, {"fw"}) == []  # no temporary directory left behind


def test_parents_are_created_and_newlines_kept_as_given(tmp_path):
    tree = {"a/b/c": "x\n\n", "d": "", "e": "no newline", "f": b"\x00\xff"}
    assert listing(write_tree(tree, tmp_path / "o")) == {
        "a": None, "a/b": None, "a/b/c": b"x\n\n", "d": b"", "e": b"no newline", "f": b"\x00\xff",
    }


def test_tree_readable_by_others(tmp_path):
    out = write_tree(TREE, tmp_path / "fw")
    assert out.stat().st_mode & 0o755 == 0o755


def test_relative_out_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = write_tree({"x": "1\n"}, "rel")
    assert out.is_absolute() and (tmp_path / "rel" / "x").read_bytes() == b"1\n"


def test_missing_parents_of_out_are_created(tmp_path):
    write_tree({"x": "1\n"}, tmp_path / "p" / "q" / "fw")
    assert (tmp_path / "p" / "q" / "fw" / "x").read_text() == "1\n"


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("out", ["/sys", "/sys/firmware", "/sys/x/y", "/dev", "/dev/shm/fw",
                                 "/proc", "/proc/self/fw", "/sys/../sys/firmware"])
def test_refuses_sys_dev_proc(out):
    with pytest.raises(OutputError, match="refusing"):
        write_tree({"x": "1\n"}, out)


def test_refuses_symlink_resolving_under_sys(tmp_path):
    (tmp_path / "link").symlink_to("/sys/firmware")
    with pytest.raises(OutputError, match="refusing"):
        write_tree({"x": "1\n"}, tmp_path / "link")
    with pytest.raises(OutputError, match="refusing"):
        write_tree({"x": "1\n"}, tmp_path / "link" / "sub")  # a parent that resolves there


def test_refuses_symlink_parent_resolving_under_dev(tmp_path):
    (tmp_path / "d").symlink_to("/dev")
    with pytest.raises(OutputError, match="refusing"):
        write_tree({"x": "1\n"}, tmp_path / "d" / "newdir")


def test_refuses_a_symlink_as_target(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OutputError):
        write_tree({"x": "1\n"}, tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and list((tmp_path / "real").iterdir()) == []


def test_similar_names_are_not_refused(tmp_path, monkeypatch):
    # "/system" is not under "/sys": compare path components, not prefixes
    monkeypatch.setattr(sysfs, "FORBIDDEN", (tmp_path / "sys",))
    write_tree({"x": "1\n"}, tmp_path / "system")
    with pytest.raises(OutputError):
        write_tree({"x": "1\n"}, tmp_path / "sys" / "fw")


def test_refuses_non_empty_dir_without_force(tmp_path):
    out = tmp_path / "fw"
    out.mkdir()
    (out / "precious").write_text("keep me")
    with pytest.raises(OutputError, match="not empty"):
        write_tree(TREE, out)
    assert listing(out) == {"precious": b"keep me"}
    assert leftovers(tmp_path, {"fw"}) == []


def test_force_replaces_non_empty_dir(tmp_path):
    out = tmp_path / "fw"
    out.mkdir()
    (out / "precious").write_text("old")
    write_tree({"new": "1\n"}, out, force=True)
    assert listing(out) == {"new": b"1\n"}
    assert leftovers(tmp_path, {"fw"}) == []


def test_empty_dir_is_reused_without_force(tmp_path):
    (tmp_path / "fw").mkdir()
    write_tree({"x": "1\n"}, tmp_path / "fw")
    assert listing(tmp_path / "fw") == {"x": b"1\n"}


def test_refuses_a_file_as_target(tmp_path):
    (tmp_path / "fw").write_text("a file")
    with pytest.raises(OutputError, match="not a directory"):
        write_tree(TREE, tmp_path / "fw", force=True)
    assert (tmp_path / "fw").read_text() == "a file"


@pytest.mark.parametrize("rel", ["", ".", "/etc/passwd", "../escape", "a/../../escape",
                                 "a/..", "nul\0byte"])
def test_refuses_bad_relative_paths_before_writing(tmp_path, rel):
    with pytest.raises(OutputError, match="bad path"):
        write_tree({"ok": "1\n", rel: "x\n"}, tmp_path / "fw")
    assert leftovers(tmp_path, set()) == []  # nothing created, not even the target


# --- failures midway: no partial tree, no temp dir, the old tree kept ---------------------


def test_conflicting_paths_fail_cleanly(tmp_path):
    # "a" is a file, so "a/b" cannot be created: the failure comes after some files exist
    with pytest.raises(OutputError, match="cannot write"):
        write_tree({"0first": "1\n", "a": "file\n", "a/b": "x\n"}, tmp_path / "fw")
    assert leftovers(tmp_path, set()) == []


def test_injected_write_failure_keeps_old_tree(tmp_path, monkeypatch):
    out = tmp_path / "fw"
    write_tree({"old": "1\n"}, out)
    real_open = open
    calls = []

    def failing_open(path, mode="r", *a, **kw):
        if "x" in mode:
            calls.append(path)
            if len(calls) == 3:
                raise OSError(28, "No space left on device")
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(OutputError, match="No space left"):
        write_tree(TREE, out, force=True)
    monkeypatch.undo()
    assert len(calls) == 3
    assert listing(out) == {"old": b"1\n"}
    assert leftovers(tmp_path, {"fw"}) == []


def test_injected_rename_failure_restores_old_tree(tmp_path, monkeypatch):
    out = tmp_path / "fw"
    write_tree({"old": "1\n"}, out)
    real_rename = Path.rename

    def rename(self, target):
        if Path(target) == out and self.name.startswith(".fw.") and ".old." not in self.name:
            raise OSError(5, "Input/output error")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    monkeypatch.setattr(sysfs, "_exchange", lambda a, b: False)  # the two-rename fallback
    with pytest.raises(OutputError, match="Input/output error"):
        write_tree(TREE, out, force=True)
    monkeypatch.undo()
    assert listing(out) == {"old": b"1\n"}
    assert leftovers(tmp_path, {"fw"}) == []


def test_force_swaps_in_one_step(tmp_path, monkeypatch):
    # Issue 15: killed between the two renames, --force left no output directory. Now the old
    # and new trees are exchanged by one renameat2(RENAME_EXCHANGE): never a moment without it.
    if sysfs._renameat2() is None:
        pytest.skip("no renameat2 in this C library")
    out = tmp_path / "fw"
    write_tree({"old": "1\n"}, out)
    seen: list[bool] = []
    real = sysfs._exchange

    def exchange(a, b):  # type: ignore[no-untyped-def]
        done = real(a, b)
        seen.append(done)
        assert out.is_dir() and (a / "old").exists()  # a now holds the old tree
        return done

    def no_rename(self, target):  # type: ignore[no-untyped-def]
        raise AssertionError(f"renamed {self} -> {target}: not a single-step swap")

    monkeypatch.setattr(sysfs, "_exchange", exchange)
    monkeypatch.setattr(Path, "rename", no_rename)
    write_tree(TREE, out, force=True)
    monkeypatch.undo()
    assert seen == [True]
    assert "efi" in listing(out) and "old" not in listing(out)
    assert leftovers(tmp_path, {"fw"}) == []


def test_failed_swap_keeps_old_tree_and_removes_temporary(tmp_path, monkeypatch):
    out = tmp_path / "fw"
    write_tree({"old": "1\n"}, out)

    def exchange(a, b):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sysfs, "_exchange", exchange)
    with pytest.raises(OutputError, match="No space left"):
        write_tree(TREE, out, force=True)
    assert listing(out) == {"old": b"1\n"}
    assert leftovers(tmp_path, {"fw"}) == []


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_while_writing_leaves_no_temporary(tmp_path, sig):
    # A child writes a big tree and is interrupted in the middle; nothing hidden is left.
    import signal
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from efihandoff.outputs import sysfs\n"
        "real = sysfs._fill\n"
        "def slow(tmp, entries):\n"
        "    real(tmp, entries[:5]); print('writing', flush=True); time.sleep(30)\n"
        "sysfs._fill = slow\n"
        "sysfs.write_tree({f'd/f{i}': 'x' for i in range(50)}, sys.argv[1], force=True)\n"
    )
    out = tmp_path / "fw"
    write_tree({"old": "1\n"}, out)
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    proc.send_signal(getattr(signal, sig))
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert listing(out) == {"old": b"1\n"}
    assert leftovers(tmp_path, {"fw"}) == []


def test_unencodable_text_is_an_output_error(tmp_path):
    with pytest.raises(OutputError):
        write_tree({"x": "\ud800"}, tmp_path / "fw")
    assert leftovers(tmp_path, set()) == []


_seg = st.text(st.characters(codec="ascii", exclude_characters="/\0"), min_size=1, max_size=8)


_rel = st.lists(_seg, min_size=1, max_size=3).map("/".join)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(_rel, st.one_of(st.none(), st.text(max_size=20)), max_size=10))
def test_random_trees_written_exactly_or_refused(tmp_path_factory, tree):
    parent = tmp_path_factory.mktemp("w")
    try:
        out = write_tree(tree, parent / "fw")
    except OutputError:
        assert leftovers(parent, set()) == []  # refused or failed: nothing left at all
        return
    got = listing(out)
    for rel, content in tree.items():
        norm = os.path.normpath(rel)
        want = None if content is None else content.encode("utf-8", "surrogateescape")
        assert got[norm] == want
    assert leftovers(parent, {"fw"}) == []


# -- boot --sysfs-out when memory is unknown (issue 13, point 2) ------------------------------

_UNKNOWN_FILL = """\
memory_fill = "unknown"
firmware_build = "release"
[[region]]
start = 0x100000
end = 0x3FFFFFF
type = "EfiConventionalMemory"
[[region]]
start = 0x4000000
size = "1M"
type = "EfiBootServicesData"
[[table]]
name = "ESRT"
address = 0x4000018
[[table.entry]]
fw_class = "ddc0ee61-e7f0-4e7d-acc5-c070a398838e"
"""


def test_boot_writes_the_tree_when_memory_is_unknown(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from efihandoff.cli import main

    scenario = tmp_path / "s.toml"
    scenario.write_text(_UNKNOWN_FILL)
    out = tmp_path / "firmware"
    result = CliRunner().invoke(
        main, ["boot", str(scenario), "--path", "xen-4.17", "--sysfs-out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["esrt_sysfs"] is True
    got = listing(out)
    # Xen 4.17 copies 40 of the 56 bytes into ACPI-reclaim pool: Linux maps the entry's last
    # 16 bytes from the POOL_TAIL, "ptal" and the size 24 + 40 + 16 = 80 known, Reserved not.
    e = "efi/esrt/entries/entry0/"
    assert got["efi/esrt/fw_resource_count"] == b"1\n"
    assert got[e + "fw_class"] == b"ddc0ee61-e7f0-4e7d-acc5-c070a398838e\n"
    assert got[e + "lowest_supported_fw_version"] == b"1818326128\n"
    assert got[e + "last_attempt_version"] == b"80\n"
    assert got[e + "capsule_flags"] == b"0x0\n"  # a stand-in ...
    assert got[".unknown"] == f"{e}capsule_flags\n".encode()  # ... listed as one
    assert got["efi/efivars"] is None
    # the log and the verdicts, as before: exit 0
    again = CliRunner().invoke(
        main, ["boot", str(scenario), "--path", "xen-4.17", "--sysfs-out", str(out), "--force"]
    )
    assert again.exit_code == 0, again.output
    assert listing(out) == got
