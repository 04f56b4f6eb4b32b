"""The live-reader stacks (bench/realfw/realfw_live.py and their part of harness.py) without
booting: the guest's console protocol, the initramfs pieces, the cases, and the judging of
what the guest's `efihandoff explain --json` and `collect` gave back."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import harness
import pytest
import realfw_live

ESRT = "b122a263-3661-4f68-9929-78f8b0d62180"


def _emit(name: str, data: bytes, width: int = 96) -> list[str]:
    """What the guest's /init prints for one file (gzip, base64 in 96-column lines, sha256)."""
    z = gzip.compress(data)
    b64 = base64.b64encode(z).decode()
    lines = [f"EHLIVE {name} {b64[i:i + width]}" for i in range(0, len(b64), width)]
    return [*lines, f"EHLIVESUM {name} {hashlib.sha256(z).hexdigest()}"]


def test_parse_live_round_trip_and_damage():
    body = json.dumps({"k": "v" * 500}).encode()
    lines = ["EHMARK live-begin", "EHLIVERC explain 0", *_emit("explain.json", body),
             "EHLIVERC collect 3", "EHMARK live-end"]
    got = realfw_live.parse_live(lines)
    assert got["files"] == {"explain.json": body}
    assert got["rc"] == {"explain": 0, "collect": 3}
    assert got["ended"] and got["bad"] == []
    # one character lost on the console: the checksum catches it
    bad = [line[:-1] if line.startswith("EHLIVE ") and i == 2 else line
           for i, line in enumerate(lines)]
    got = realfw_live.parse_live(bad)
    assert got["bad"] == ["explain.json"] and "explain.json" not in got["files"]
    assert not realfw_live.parse_live(lines[:-1])["ended"]


def test_live_init_runs_both_commands_before_poweroff():
    init = realfw_live.live_init(harness.INIT_SCRIPT)
    assert init.startswith(harness.INIT_SCRIPT.rpartition("poweroff -f")[0])
    assert init.rstrip().endswith("poweroff -f")
    live = init[init.index('echo "EHMARK end"'):]
    assert live.index("efihandoff explain --json") < live.index("efihandoff collect")
    assert live.index("efihandoff collect") < live.index("EHMARK live-end")
    with pytest.raises(ValueError):
        realfw_live.live_init("#!/bin/sh\necho no\n")


def test_cases_of_the_live_stacks():
    live = [c for c in harness.matrix() if c.live]
    assert [c.id for c in live] == [
        "bsdata-valid2-live+linux-6.12", "rtdata-valid2-live+linux-6.12",
        "acpireclaim-valid5-live+linux-6.12", "bsdata-valid2-xen-4.17-live+linux-6.12",
        "rtdata-valid2-xen-4.17-live+linux-6.12", "acpireclaim-valid5-xen-4.17-live+linux-6.12"]
    dom0 = harness.Case.make("bsdata", "valid2", "xen-4.17-live+linux-6.12")
    assert (dom0.xen, dom0.boot, dom0.kernel, dom0.mapbs, dom0.fixed) == (
        True, "efi", "linux-6.12", False, False)
    native = harness.Case.make("bsdata", "valid2", "live+linux-6.12")
    assert (native.xen, native.live, native.kernel) == (False, True, "linux-6.12")
    assert not harness.Case.make("bsdata", "valid2", "xen-4.17+linux-6.12").live
    smoke = {c.stack for c in harness.smoke() if c.live}
    assert smoke == set(harness.LIVE_STACKS)
    assert harness.PATH_FOR_STACK["xen-4.17-live+linux-6.12"] == "xen=4.17.7,boot=efi,linux=6.12"
    # the live cases' key follows the checkout (a new wheel is a new boot)
    k1 = harness.case_key(native)
    assert k1 == harness.case_key(native)
    assert k1 != harness.case_key(harness.Case.make("bsdata", "valid2", "linux-6.12"))


def test_wheel_and_root_entries(tmp_path: Path):
    whl = tmp_path / "efihandoff-0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("efihandoff/__init__.py", "X = 1\n")
        zf.writestr("efihandoff/sub/m.py", "")
        zf.writestr("efihandoff-0.dist-info/METADATA", "Name: efihandoff\n")
    ents = {name: (mode, data) for name, mode, data, _, _ in realfw_live._wheel_entries(whl)}
    site = "usr/lib/python3/dist-packages"
    assert ents[f"{site}/efihandoff/__init__.py"] == (0o100644, b"X = 1\n")
    assert ents[f"{site}/efihandoff/sub"][0] == 0o040755
    mode, script = ents["usr/local/bin/efihandoff"]
    assert mode == 0o100755 and b"from efihandoff.cli import main" in script
    root = tmp_path / "root.tar"
    with tarfile.open(root, "w") as tf:
        for name, kind, payload in (("./usr", tarfile.DIRTYPE, b""),
                                    ("./usr/bin/python3.11", tarfile.REGTYPE, b"ELF"),
                                    ("./usr/bin/python3", tarfile.SYMTYPE, b"python3.11"),
                                    ("./usr/bin/py", tarfile.LNKTYPE, b"./usr/bin/python3.11"),
                                    ("./dev/null", tarfile.CHRTYPE, b"")):
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.mode = 0o755
            if kind == tarfile.REGTYPE:
                ti.size = len(payload)
                tf.addfile(ti, io.BytesIO(payload))
                continue
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                ti.linkname = payload.decode()
            tf.addfile(ti)
    got = {n: (m, d) for n, m, d, _, _ in realfw_live._root_entries(root)}
    assert got == {"usr": (0o040755, b""), "usr/bin/python3.11": (0o100755, b"ELF"),
                   "usr/bin/python3": (0o120777, b"python3.11"),
                   "usr/bin/py": (0o100755, b"ELF")}  # hard link copied, device left out


def _doc(verdict: str, role: str, xen: str | None) -> dict[str, object]:
    return {"machine": {"role": role, "xen_version": xen, "linux_version": "6.12.118"},
            "paths": {"observed": {"label": "Linux 6.12", "tables": {
                ESRT: {"verdict": verdict, "reason": "r"}}}},
            "findings": []}


def test_live_sets_judge_the_guests_explain(tmp_path: Path):
    case = harness.Case.make("rtdata", "valid2", "live+linux-6.12")
    body = json.dumps(_doc("intact", "bare-metal", None)).encode()
    lines = ["EHLIVERC explain 0", *_emit("explain.json", body), "EHLIVERC collect 0"]
    sets = harness.live_sets(case, lines, "intact", tmp_path)
    assert [(s["set"], s["status"], s["cell"]) for s in sets] == [
        ("live", "ok", "ok"), ("live-tgz", "error", "err")]  # no archive came back
    assert sets[1]["error"] == "collect.tar.gz did not come back"
    wrong = json.dumps(_doc("corrupt", "bare-metal", None)).encode()
    (s, _) = harness.live_sets(case, ["EHLIVERC explain 0", *_emit("explain.json", wrong)],
                               "intact", tmp_path)
    assert (s["status"], s["cell"]) == ("disagree", "corrupt")
    dom0 = harness.Case.make("rtdata", "valid2", "xen-4.17-live+linux-6.12")
    (s, _) = harness.live_sets(dom0, ["EHLIVERC explain 0", *_emit("explain.json", body)],
                               "intact", tmp_path)
    assert (s["status"], s["cell"]) == ("disagree", "role:bare-metal")
    (s, _) = harness.live_sets(case, ["EHLIVERC explain 2",
                                      *_emit("explain.err", b"Error: boom\n")],
                               "intact", tmp_path)
    assert s["status"] == "error" and s["error"] == "efihandoff explain exited 2: Error: boom"


def test_cached_only_takes_an_earlier_checkouts_live_boot(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(harness, "CACHE", tmp_path)
    case = harness.Case.make("bsdata", "valid2", "live+linux-6.12")
    other = harness.Case.make("bsdata", "valid2", "linux-6.12")
    (tmp_path / "results").mkdir()
    for c in (case, other):  # booted with another wheel (or other versions): another key
        (tmp_path / "results" / f"{c.id}.0123456789abcdef0123.json").write_text(
            json.dumps({"case": c.id, "booted": True, "live": {"rc": {}}}))
    monkeypatch.setattr(harness, "LIVE_ANY_CHECKOUT", False)
    assert harness.cached_outcome(case) is None  # a run boots the checkout's wheel
    monkeypatch.setattr(harness, "LIVE_ANY_CHECKOUT", True)
    got = harness.cached_outcome(case)
    assert got is not None and got["case"] == case.id and got["cached"]
    assert harness.cached_outcome(other) is None  # only the live stacks: keys stay exact
