"""Every reproducer the fuzzer saved (fuzz/reproducers/<target>/<file>) is a regression test:
the target it was found on now ends in a result or the project's own error. Escapes run here;
hangs and memory blow-ups run in a child under the harness's limits (python -m fuzz --replay).
Reproducers of known open defects in code owned elsewhere (fuzz/known.toml) are expected to
fail until that code is fixed."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the fuzz package lives at the repository root

import fuzz.run as fuzz_run  # noqa: E402
from fuzz.run import is_known, load, signature_of  # noqa: E402
from fuzz.targets import TARGETS, Rejected  # noqa: E402

from efihandoff.errors import EfiHandoffError  # noqa: E402

REPRODUCERS = sorted(
    p for p in (ROOT / "fuzz" / "reproducers").glob("*/*") if p.is_file() and p.suffix != ".txt"
)


def _case(p: Path) -> object:
    sig = signature_of(p)
    marks = []
    if is_known(sig):
        marks = [pytest.mark.xfail(reason=f"known open defect: {sig}", strict=False)]
    return pytest.param(p, id=f"{p.parent.name}/{p.name}", marks=marks)


def test_every_reproducer_names_a_target() -> None:
    assert {p.parent.name for p in REPRODUCERS} <= set(TARGETS)


@pytest.mark.parametrize("path", [_case(p) for p in REPRODUCERS if p.name.startswith("escape-")])
def test_escape_reproducer_ends_in_project_error(path: Path, tmp_path: Path) -> None:
    with contextlib.suppress(EfiHandoffError, Rejected):  # anything else fails the test
        TARGETS[path.parent.name].run(load(path), tmp_path)


@pytest.mark.parametrize(
    "path", [_case(p) for p in REPRODUCERS if not p.name.startswith("escape-")]
)
def test_hang_or_memory_reproducer_within_limits(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz", "--replay", str(path), "--cpu", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_harness_classifies_escapes_memory_and_project_errors(tmp_path: Path, monkeypatch) -> None:
    from fuzz.run import classify
    from fuzz.targets import Target

    def run(data: bytes, work: Path) -> None:
        if data == b"key":
            raise KeyError("x")
        if data == b"mem":
            raise MemoryError
        if data == b"spin":
            while True:
                pass
        raise EfiHandoffError("fine")

    monkeypatch.setitem(TARGETS, "probe", Target("probe", "bin", lambda: [b""], None, run, ""))  # type: ignore[arg-type]
    assert classify("probe", b"ok", tmp_path, 10)[0] == "ok"  # the project's own error
    outcome, sig, _ = classify("probe", b"key", tmp_path, 10)
    assert (outcome, sig.split("|")[:2]) == ("escape", ["probe", "KeyError"])
    assert classify("probe", b"mem", tmp_path, 10)[0] == "memory"
    import signal

    previous = signal.signal(signal.SIGPROF, fuzz_run._on_prof)
    try:
        assert classify("probe", b"spin", tmp_path, 0.5)[:2] == ("hang", "probe|hang")
        assert classify("probe", b"ok", tmp_path, 0.5)[0] == "ok"  # the timer was disarmed
    finally:
        signal.signal(signal.SIGPROF, previous)

    # The peak-RSS check, in a fresh process (this one's high-water mark may be anything).
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, '.')\n"
        "from fuzz.run import classify; from fuzz.targets import TARGETS, Target\n"
        "def run(data, work):\n"
        "    blob = b\"\\x01\" * (64 << 20)  # written, so resident\n"
        "TARGETS['probe'] = Target('probe', 'bin', lambda: [b''], None, run, '')\n"
        "print(classify('probe', b'big', Path(sys.argv[1]), 10, rss_slack_mib=16)[:2])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert proc.stdout.strip() == "('memory', 'probe|rss')"
    assert classify("scenario", b"x" * 10, tmp_path, 10)[0] == "ok"  # the reader's own error
