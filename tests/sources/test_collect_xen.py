"""``collect`` in a Xen dom0: ``xl dmesg`` saved as ``xl-dmesg.txt`` (a fake ``xl`` stands in for
the real one), what ran or why it did not in MANIFEST.txt, /sys/hypervisor's small files (never
the uuid), and ``explain`` reading ``xl-dmesg.txt`` of an archive like a separate log."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

from efihandoff.explain import explain
from efihandoff.sources import collect as collect_mod
from efihandoff.sources import read_sources
from efihandoff.sources.collect import collect, read_xen_log
from efihandoff.sources.sysfs import read_sysfs
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.memmap import MemoryType

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DOM0 = FIXTURES / "sysfs" / "xen-dom0"
NATIVE = FIXTURES / "sysfs" / "native-laptop"

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="the fake xl is an sh script")

# What `xl dmesg` prints on the fixture's machine (tests/fixtures/sysfs/xen-dom0: ESRT at
# 0x71fff000 and MEMATTR at 0x71ffe018 in boot-services data, SMBIOS 3.0 and ACPI in runtime
# data), in Xen 4.17's console format: "(XEN) " and, for the EFI map, start-end (inclusive),
# type and attribute.
XL_DMESG = b"""\
(XEN) Xen version 4.17.3 (mockbuild@[unknown]) (gcc (GCC) 12.3.1) debug=n Tue Feb 13 2024
(XEN) Bootloader: EFI
(XEN) Command line: console=none dom0_mem=min:1024M
(XEN) EFI RAM map:
(XEN)  [0000000000000000, 000000000009ffff] (usable)
(XEN)  [0000000000100000, 0000000071ffdfff] (usable)
(XEN)  [0000000071ffe000, 0000000071ffffff] (usable)
(XEN)  [0000000072000000, 000000007a3fefff] (usable)
(XEN)  [000000007a3ff000, 000000007a4fffff] (reserved)
(XEN)  [000000007a500000, 000000007fffffff] (usable)
(XEN) EFI memory map:
(XEN)  0000000000000-000000009ffff type=7 attr=000000000000000f
(XEN)  0000000100000-0000071ffdfff type=7 attr=000000000000000f
(XEN)  0000071ffe000-0000071ffffff type=4 attr=000000000000000f
(XEN)  0000072000000-000007a3fefff type=3 attr=000000000000000f
(XEN)  000007a3ff000-000007a4fffff type=6 attr=800000000000000f
(XEN)  000007a500000-000007fffffff type=7 attr=000000000000000f
(XEN) Dom0 has maximum 1 VCPUs
"""
UUID = "3f1e5c52-9d0a-4b7e-8c11-0123456789ab"


def _dom0_root(tmp: Path, *, caps: str | None = "control_d\n") -> Path:
    """A PV dom0 as the fixture shows it, with the rest of /sys/hypervisor Linux exposes."""
    root = tmp / "root"
    shutil.copytree(DOM0 / "sys", root / "sys")
    efi = root / "sys/firmware/efi"
    (efi / "efivars").mkdir()
    (efi / "efivars/Boot0000-8be4df61-93ca-11d2-aa0d-00e098032b8c").write_bytes(b"\7\0\0\0x")
    hv = root / "sys/hypervisor"
    (hv / "guest_type").write_text("PV\n")
    (hv / "uuid").write_text(UUID + "\n")
    for name, value in {
        "properties/capabilities": "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_64\n",
        "properties/changeset": "unavailable\n",
        "properties/features": "00000000000029f1\n",
        "properties/pagesize": "1000\n",
        "properties/virtual_start": "ffff800000000000\n",
        "compilation/compiler": "gcc (GCC) 12.3.1\n",
        "compilation/compiled_by": "alice\n",
        "compilation/compile_date": "Tue Feb 13 00:00:00 UTC 2024\n",
        "start_flags/privileged": "1\n",
        "start_flags/initdomain": "1\n",
        "pmu/pmu_mode": "off\n",
    }.items():
        (hv / name).parent.mkdir(parents=True, exist_ok=True)
        (hv / name).write_text(value)
    if caps is not None:
        (root / "proc/xen").mkdir(parents=True)
        (root / "proc/xen/capabilities").write_text(caps)
    return root


def _fake_xl(tmp: Path, body: str) -> Path:
    """An executable ``xl``; ``body`` is sh. It records each run in ``ran``."""
    xl = tmp / "bin" / "xl"
    xl.parent.mkdir(exist_ok=True)
    xl.write_text(f'#!/bin/sh\necho "$@" >> "{tmp}/ran"\n{body}\n')
    xl.chmod(0o755)
    return xl


def _printing_xl(tmp: Path, data: bytes = XL_DMESG) -> Path:
    (tmp / "xl.out").write_bytes(data)
    return _fake_xl(tmp, f'[ "$1" = dmesg ] || exit 64\ncat "{tmp}/xl.out"')


def _members(path: Path) -> dict[str, bytes | None]:
    with tarfile.open(path) as tf:
        return {
            m.name: (tf.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
            for m in tf.getmembers()
        }


def test_dom0_xl_dmesg_is_saved_and_read_back(tmp_path):
    root = _dom0_root(tmp_path)
    xl = _printing_xl(tmp_path)
    report = collect(tmp_path / "r.tar.gz", root, xl=str(xl))
    assert (tmp_path / "ran").read_text() == "dmesg\n"  # only `xl dmesg`, never -c
    assert "xl-dmesg.txt" in report.files
    assert report.xen_log.command == f"{xl} dmesg"
    assert report.xen_log.note == f"read, {len(XL_DMESG)} bytes"
    assert not [p for p, _ in report.skipped if p == "xl dmesg"]
    members = _members(tmp_path / "r.tar.gz")
    assert members["xl-dmesg.txt"] == XL_DMESG
    back = read_sysfs(tmp_path / "r.tar.gz")
    assert back.xen_log == XL_DMESG and back.kernel_log is None
    assert f"xl dmesg: {xl} dmesg: read, {len(XL_DMESG)} bytes" in back.manifest.splitlines()


def test_hypervisor_files_without_the_uuid(tmp_path):
    root = _dom0_root(tmp_path)
    collect(tmp_path / "r.tar.gz", root, xl=str(_printing_xl(tmp_path)))
    members = _members(tmp_path / "r.tar.gz")
    hv = {
        n.removeprefix("sys/hypervisor/"): d
        for n, d in members.items()
        if n.startswith("sys/hypervisor/") and d is not None
    }
    assert set(hv) == {
        "type",
        "guest_type",
        "version/major",
        "version/minor",
        "version/extra",
        "properties/capabilities",
        "properties/changeset",
        "properties/features",
        "properties/pagesize",
        "properties/virtual_start",
        "compilation/compiler",
        "compilation/compile_date",
        "start_flags/privileged",
        "start_flags/initdomain",
    }
    assert hv["guest_type"] == b"PV\n" and hv["version/minor"] == b"17\n"
    names = set(members)
    assert "sys/hypervisor/uuid" not in names
    assert "sys/hypervisor/compilation/compiled_by" not in names
    assert not [n for n in names if n.startswith("sys/hypervisor/pmu")]
    assert not [n for n in names if "efivars" in n]
    assert not [d for d in members.values() if d is not None and UUID.encode() in d]
    back = read_sysfs(tmp_path / "r.tar.gz")
    assert back.hypervisor_type == "xen" and back.hypervisor_version == "4.17.3"


def test_xl_missing_is_recorded(tmp_path, monkeypatch):
    root = _dom0_root(tmp_path)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    report = collect(tmp_path / "r.tar.gz", root, xl="xl")
    assert "xl-dmesg.txt" not in report.files
    assert ("xl dmesg", "not run: xl not found on PATH") in report.skipped
    manifest = read_sysfs(tmp_path / "r.tar.gz").manifest
    assert "xl dmesg: not run: xl not found on PATH" in manifest.splitlines()
    assert "  xl dmesg: not run: xl not found on PATH" in manifest.splitlines()  # under skipped


def test_xl_not_run_on_a_fake_tree_by_default(tmp_path):
    root = _dom0_root(tmp_path)
    report = collect(tmp_path / "r.tar.gz", root)
    assert report.xen_log.command is None
    assert report.xen_log.note == "not run (root is not /)"


@pytest.mark.parametrize(
    ("caps", "why"),
    [
        ("\n", "not run: not a Xen dom0 (/proc/xen/capabilities lacks control_d (a domU))"),
        (None, None),  # no /proc/xen: sys/hypervisor/type says xen, so a dom0
    ],
)
def test_dom0_detection(tmp_path, caps, why):
    root = _dom0_root(tmp_path, caps=caps)
    xl = _printing_xl(tmp_path)
    report = collect(tmp_path / "r.tar.gz", root, xl=str(xl))
    if why is None:
        assert "xl-dmesg.txt" in report.files and report.xen_log.dom0
    else:
        assert report.xen_log.note == why and not report.xen_log.dom0
        assert not (tmp_path / "ran").exists()
        assert not [p for p, _ in report.skipped if p == "xl dmesg"]  # nothing to report


def test_not_xen_never_runs_xl(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(NATIVE, root / "sys/firmware")
    report = collect(tmp_path / "r.tar.gz", root, xl=str(_printing_xl(tmp_path)))
    assert not (tmp_path / "ran").exists()
    assert report.xen_log.note == "not run: not a Xen dom0 (not on Xen)"
    assert (
        "xl dmesg: not run: not a Xen dom0 (not on Xen)"
        in read_sysfs(tmp_path / "r.tar.gz").manifest.splitlines()
    )


def test_xl_failure_is_recorded(tmp_path):
    root = _dom0_root(tmp_path)
    xl = _fake_xl(tmp_path, 'echo "xl: cannot init xl context" >&2\nexit 1')
    report = collect(tmp_path / "r.tar.gz", root, xl=str(xl))
    assert "xl-dmesg.txt" not in report.files
    note = dict(report.skipped)["xl dmesg"]
    assert note.startswith("exit status 1: xl: cannot init xl context")
    if os.geteuid() != 0:
        assert note.endswith("(xl dmesg needs root)")
    assert f"xl dmesg: {xl} dmesg: {note}" in read_sysfs(tmp_path / "r.tar.gz").manifest


def test_xl_time_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(collect_mod, "XL_TIMEOUT", 0.5)
    root = _dom0_root(tmp_path)
    xl = _fake_xl(tmp_path, 'echo "(XEN) Xen version 4.17.3"\nexec sleep 60')
    report = collect(tmp_path / "r.tar.gz", root, xl=str(xl))
    assert report.xen_log.note == "read, 25 bytes (timed out after 0.5 s: incomplete)"
    assert _members(tmp_path / "r.tar.gz")["xl-dmesg.txt"] == b"(XEN) Xen version 4.17.3\n"
    silent = _fake_xl(tmp_path, "exec sleep 60")
    assert read_xen_log(root, str(silent), timeout=0.3).note == "timed out after 0.3 s"


def test_xl_output_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(collect_mod, "MAX_XL_BYTES", 1000)
    root = _dom0_root(tmp_path)
    xl = _printing_xl(tmp_path, XL_DMESG * 2000)  # ~2 MB
    report = collect(tmp_path / "r.tar.gz", root, xl=str(xl))
    assert report.xen_log.note == "read, 1000 bytes (output cut at 1000 bytes: incomplete)"
    assert _members(tmp_path / "r.tar.gz")["xl-dmesg.txt"] == (XL_DMESG * 2)[:1000]


def test_xl_printing_nothing(tmp_path):
    root = _dom0_root(tmp_path)
    report = collect(tmp_path / "r.tar.gz", root, xl=str(_fake_xl(tmp_path, "exit 0")))
    assert ("xl dmesg", "printed nothing") in report.skipped


def test_explain_reads_xl_dmesg_of_an_archive_like_a_separate_log(tmp_path):
    root = _dom0_root(tmp_path)
    (root / "dev").mkdir()
    # /dev/kmsg records of the fixture's dom0 log, so collect saves it as dmesg.txt
    kmsg = b"".join(
        b"6,%d,0,-;%s\n" % (i, line.split(b"] ", 1)[1])
        for i, line in enumerate((DOM0 / "dmesg.txt").read_bytes().splitlines())
    )
    (root / "dev/kmsg").write_bytes(kmsg)
    out = tmp_path / "r.tar.gz"
    collect(out, root, xl=str(_printing_xl(tmp_path)))
    views = read_sources([out])
    assert [v.source.path for v in views] == [str(out), f"{out}:dmesg.txt", f"{out}:xl-dmesg.txt"]
    (tmp_path / "xl.log").write_bytes(XL_DMESG)
    apart = read_sources([DOM0, tmp_path / "xl.log"])
    whole, separate = explain(views), explain(apart)
    assert whole.machine.memory_map == separate.machine.memory_map
    assert whole.machine.memory_map is not None
    # The ESRT's memory type comes from Xen's EFI map, which only xl-dmesg.txt holds.
    esrt = whole.machine.table(ESRT_GUID)
    assert esrt is not None and esrt.table == 0x71FFF000
    assert whole.machine.memory_map.lookup(0x71FFF000).type == MemoryType.EfiBootServicesData
    assert {p: r.tables[ESRT_GUID].verdict for p, r in whole.results.items()} == {
        p: r.tables[ESRT_GUID].verdict for p, r in separate.results.items()
    }


def test_default_xl_is_also_looked_for_in_sbin(tmp_path, monkeypatch):
    # A user's PATH often lacks /usr/sbin, where xl lives; the real-root default looks there too.
    root = _dom0_root(tmp_path)
    xl = _printing_xl(tmp_path)
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    os.symlink(xl, sbin / "xl")
    no_xl = tmp_path / "no-xl-bin"  # what the fake xl runs, and no xl
    no_xl.mkdir()
    os.symlink(shutil.which("cat"), no_xl / "cat")
    monkeypatch.setenv("PATH", str(no_xl))
    monkeypatch.setattr(collect_mod, "is_real_root", lambda _root: True)
    monkeypatch.setattr(collect_mod, "SBIN", (str(sbin),))
    read = read_xen_log(root)
    assert read.command == f"{sbin / 'xl'} dmesg" and read.data == XL_DMESG
    # a command named explicitly is looked for on PATH only
    assert read_xen_log(root, "xl").note == "not run: xl not found on PATH"
