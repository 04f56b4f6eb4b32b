"""The live-machine reader and ``collect`` on fake roots: the kernel log from /dev/kmsg records
or its fallbacks, Xen dom0 detection, what cannot be read and why, and an archive that reads back
the same, written atomically and never under /sys, /dev or /proc."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from efihandoff.errors import OutputError, SourceError
from efihandoff.sources import collect as collect_mod
from efihandoff.sources import sysfs_tree
from efihandoff.sources.collect import collect
from efihandoff.sources.live import _read_kmsg, read_live, read_live_kernel_log
from efihandoff.sources.sysfs import read_sysfs

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sysfs"
NATIVE = FIXTURES / "native-laptop"
DOM0 = FIXTURES / "xen-dom0"

# /dev/kmsg records (Documentation/ABI/testing/dev-kmsg: "prio,seq,usec,flags;text", dictionary
# lines start with a space) and the dmesg lines they stand for.
KMSG = (
    b"6,0,0,-;Linux version 6.6.30 (builder@host) #1 SMP\n"
    b" SUBSYSTEM=cpu\n"
    b"6,1,1500,-;efi: EFI v2.7 by EDK II\n"
    b"6,2,2000100,-;efi: ACPI=0x7a4ff000 ACPI 2.0=0x7a4ff000 ESRT=0x71fff000\n"
)
DMESG = (
    b"[    0.000000] Linux version 6.6.30 (builder@host) #1 SMP\n"
    b"[    0.001500] efi: EFI v2.7 by EDK II\n"
    b"[    2.000100] efi: ACPI=0x7a4ff000 ACPI 2.0=0x7a4ff000 ESRT=0x71fff000\n"
)
EFIVAR = "Boot0000-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def _root(tmp: Path, *, dom0: bool = False, kmsg: bytes | None = KMSG) -> Path:
    root = tmp / "root"
    if dom0:
        shutil.copytree(DOM0 / "sys", root / "sys")
        shutil.copytree(DOM0 / "proc", root / "proc")
    else:
        shutil.copytree(NATIVE, root / "sys/firmware")
    efivars = root / "sys/firmware/efi/efivars"
    efivars.mkdir(parents=True, exist_ok=True)
    (efivars / EFIVAR).write_bytes(b"\x07\x00\x00\x00secret")
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.6.30\n")
    if kmsg is not None:
        (root / "dev").mkdir()
        (root / "dev/kmsg").write_bytes(kmsg)
    return root


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _summary(ev):
    return (
        ev.systab,
        ev.config_table.value,
        ev.runtime_map,
        ev.firmware_memmap,
        ev.esrt.to_esrt() if ev.esrt else None,
        ev.esrt_tree(),
        ev.hypervisor_version,
        ev.xen_dom0_evidence,
    )


def _deny_entries(monkeypatch):
    """Make the ESRT entry files unreadable, as they are without CAP_SYS_ADMIN."""
    real = sysfs_tree.DirTree.read

    def read(self, rel, cap):
        if "/esrt/entries/" in rel and rel.count("/") >= 6:
            raise sysfs_tree.Unreadable("Permission denied")
        return real(self, rel, cap)

    monkeypatch.setattr(sysfs_tree.DirTree, "read", read)


# --------------------------------------------------------------------------------------------
# kernel log


def test_kmsg_records_become_dmesg_lines(tmp_path):
    log = read_live_kernel_log(_root(tmp_path))
    assert (log.source, log.data, log.complete) == ("/dev/kmsg", DMESG, True)


def test_wrapped_kmsg_prefers_kern_log(tmp_path):
    root = _root(tmp_path, kmsg=b"6,7,9000000,-;usb 1-1: new device\n")
    (root / "var/log").mkdir(parents=True)
    (root / "var/log/kern.log").write_bytes(b"Jun 18 10:00:00 host kernel: efi: EFI v2.7 by X\n")
    log = read_live_kernel_log(root)
    assert log.source == "/var/log/kern.log" and log.data.startswith(b"Jun 18")
    assert any("wrapped (first record is number 7)" in n for n in log.notes)
    assert any("not run (root is not /)" in n for n in log.notes)
    (root / "var/log/kern.log").unlink()
    log = read_live_kernel_log(root)
    assert (log.source, log.complete) == ("/dev/kmsg", False)
    assert log.data == b"[    9.000000] usb 1-1: new device\n"


def test_kern_log_tail_when_large(tmp_path):
    root = _root(tmp_path, kmsg=None)
    (root / "var/log").mkdir(parents=True)
    (root / "var/log/kern.log").write_bytes(b"old line\n" * 100 + b"new line\n")
    log = read_live_kernel_log(root, cap=50)
    assert log.data.endswith(b"new line\n") and len(log.data) <= 50
    assert not log.data.startswith(b"ld")  # the cut line is dropped


def test_no_kernel_log(tmp_path):
    root = _root(tmp_path, kmsg=None)
    log = read_live_kernel_log(root)
    assert log.source is None and log.data is None
    assert "/dev/kmsg: missing" in log.notes and "/var/log/kern.log: missing" in log.notes


@pytest.mark.skipif(not Path("/dev/null").is_char_device(), reason="needs /dev/null")
def test_kmsg_character_device_branch():
    assert _read_kmsg(Path("/dev/null"), 100) == b""


# --------------------------------------------------------------------------------------------
# read_live


def test_read_live_native(tmp_path):
    root = _root(tmp_path)
    before = _snapshot(root)
    live = read_live(root)
    assert _snapshot(root) == before  # read-only
    assert live.efi_booted and not live.is_xen_dom0
    assert _summary(live.sysfs) == _summary(read_sysfs(NATIVE))
    assert live.sysfs.kernel_log is None  # no dmesg.txt read on a live machine
    assert live.kernel_log.data == DMESG
    assert live.unreadable == ()
    m = live.to_machine(esrt_address=0x71FFF000)
    assert m.name == "live" and "kernel log: /dev/kmsg" in m.notes
    assert m.read(0x71FFF000, 4) == b"\x02\x00\x00\x00"


def test_read_live_dom0(tmp_path):
    live = read_live(_root(tmp_path, dom0=True))
    assert live.is_xen_dom0 and live.xen_evidence == "proc/xen/capabilities contains control_d"
    assert live.sysfs.hypervisor_version == "4.17.3" and live.sysfs.runtime_map is None
    assert "Xen dom0: proc/xen/capabilities contains control_d" in live.to_machine().notes


def test_read_live_without_root_privileges(tmp_path, monkeypatch):
    _deny_entries(monkeypatch)
    live = read_live(_root(tmp_path))
    paths = dict(live.unreadable)
    assert paths["/sys/firmware/efi/esrt/entries/entry0/fw_class"] == "Permission denied"
    assert "CAP_SYS_ADMIN" in paths["/sys/firmware/efi/esrt/entries"]
    assert live.sysfs.esrt.fw_resource_count.value == 2  # the header files are still read
    assert live.sysfs.esrt.to_esrt() is None


def test_read_live_no_sys_firmware(tmp_path):
    root = tmp_path / "empty"
    (root / "proc/xen").mkdir(parents=True)
    (root / "proc/xen/capabilities").write_text("control_d\n")
    live = read_live(root)
    assert live.sysfs is None and not live.efi_booted and live.is_xen_dom0
    assert ("/sys/firmware", "missing") in live.unreadable
    assert any(path == "kernel log" for path, _ in live.unreadable)
    assert live.to_machine().config_tables is None


def test_read_live_root_must_be_a_directory(tmp_path):
    with pytest.raises(SourceError):
        read_live(tmp_path / "nope")


# --------------------------------------------------------------------------------------------
# collect


@pytest.mark.parametrize("dom0", [False, True])
def test_collect_reads_back_the_same(tmp_path, dom0):
    root = _root(tmp_path, dom0=dom0)
    before = _snapshot(root)
    out = tmp_path / "out" / "report.tar.gz"
    out.parent.mkdir()
    report = collect(out, root)
    assert _snapshot(root) == before
    assert report.path == str(out) and report.size == out.stat().st_size
    assert report.kernel_log_source == "/dev/kmsg"
    assert os.listdir(out.parent) == ["report.tar.gz"]  # no temporary file left
    with tarfile.open(out) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert not [n for n in names if "efivars" in n]
    assert all(n.split("/")[0] in ("sys", "proc", "dmesg.txt", "MANIFEST.txt") for n in names)
    assert set(report.files) == {m.name for m in members if m.isfile()}
    assert all(m.mode == 0o444 for m in members if m.isfile())
    back = read_sysfs(out)
    assert _summary(back) == _summary(read_sysfs(root / "sys/firmware"))
    assert back.kernel_log == DMESG
    assert "kernel: 6.6.30" in back.manifest and "kernel log: /dev/kmsg" in back.manifest
    assert back.is_xen_dom0 == dom0


def test_collect_refuses_forbidden_targets(tmp_path):
    root = _root(tmp_path)
    for target in (
        "/sys/x.tar.gz",
        "/proc/x.tar.gz",
        "/dev/x.tar.gz",
        str(root / "sys/firmware/x.tar.gz"),
        str(root / "proc/x.tar.gz"),
    ):
        with pytest.raises(OutputError, match="refusing to write under"):
            collect(target, root)
    with pytest.raises(OutputError, match="is a directory"):
        collect(tmp_path, root)
    with pytest.raises(OutputError, match="does not exist"):
        collect(tmp_path / "no" / "x.tar.gz", root)
    assert not (root / "sys/firmware/x.tar.gz").exists()


def test_collect_refuses_through_a_symlinked_directory(tmp_path):
    root = _root(tmp_path)
    os.symlink(root / "sys", tmp_path / "innocent")
    with pytest.raises(OutputError, match="refusing"):
        collect(tmp_path / "innocent" / "x.tar.gz", root)


def test_collect_is_atomic(tmp_path, monkeypatch):
    root = _root(tmp_path)
    out = tmp_path / "o" / "r.tar.gz"
    out.parent.mkdir()
    out.write_bytes(b"old")
    calls = []
    real_addfile = tarfile.TarFile.addfile

    def failing(self, info, fileobj=None):
        calls.append(info.name)
        if len(calls) > 3:
            raise OSError(28, "No space left on device")
        return real_addfile(self, info, fileobj)

    monkeypatch.setattr(tarfile.TarFile, "addfile", failing)
    with pytest.raises(OutputError, match="No space left"):
        collect(out, root)
    assert out.read_bytes() == b"old" and os.listdir(out.parent) == ["r.tar.gz"]
    monkeypatch.setattr(tarfile.TarFile, "addfile", real_addfile)
    collect(out, root)
    assert out.read_bytes()[:2] == b"\x1f\x8b" and os.listdir(out.parent) == ["r.tar.gz"]


def test_collect_notes_what_it_could_not_read(tmp_path, monkeypatch):
    _deny_entries(monkeypatch)
    root = _root(tmp_path)
    os.mkfifo(root / "sys/firmware/memmap/0/fifo")
    report = collect(tmp_path / "r.tar.gz", root)
    skipped = dict(report.skipped)
    assert skipped["/sys/firmware/efi/esrt/entries/entry1/fw_version"] == "Permission denied"
    assert skipped["/sys/firmware/memmap/0/fifo"] == "not a regular file"
    back = read_sysfs(tmp_path / "r.tar.gz")
    assert "need root (CAP_SYS_ADMIN)" in back.manifest
    assert "/sys/firmware/memmap/0/fifo: not a regular file" in back.manifest
    assert [e.name for e in back.esrt.entries] == ["entry0", "entry1"]  # directories kept
    assert back.esrt.entries[0].fw_class.value is None


def test_collect_symlink_loops_are_bounded(tmp_path):
    root = _root(tmp_path)
    entries = root / "sys/firmware/efi/esrt/entries"
    os.symlink(".", entries / "loop")
    os.symlink("self", entries / "entry0/self")
    os.symlink("../../../../../../../../etc/hostname", entries / "entry0/escape")
    report = collect(tmp_path / "r.tar.gz", root)
    skipped = dict(report.skipped)
    assert skipped["/sys/firmware/efi/esrt/entries/loop"] == "symlink to a directory: not followed"
    assert "loop" in skipped["/sys/firmware/efi/esrt/entries/entry0/self"]
    assert "outside" in skipped["/sys/firmware/efi/esrt/entries/entry0/escape"]
    assert read_sysfs(tmp_path / "r.tar.gz").esrt.to_esrt() is not None


def test_collect_without_efi(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(NATIVE / "memmap", root / "sys/firmware/memmap")
    report = collect(tmp_path / "r.tar.gz", root)
    assert (
        "/sys/firmware/efi",
        "missing: this kernel was not booted through EFI",
    ) in report.skipped
    assert report.kernel_log_source is None
    back = read_sysfs(tmp_path / "r.tar.gz")
    assert not back.efi and len(back.firmware_memmap) == 10


def test_collect_file_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(collect_mod, "MAX_FILES", 4)
    report = collect(tmp_path / "r.tar.gz", _root(tmp_path))
    assert any("more than 4 files" in why for _, why in report.skipped)


def test_live_dom0_reads_xl_dmesg(tmp_path, monkeypatch):
    # On a live dom0, explain with no source also takes `xl dmesg` (collect's read_xen_log):
    # its (XEN) lines join the views as the hypervisor's, and the Xen version comes from them.
    from efihandoff.explain import explain
    from efihandoff.sources import Role, live_views

    xl = b"(XEN) Xen version 4.17.5 (x@example.org) debug=n\n(XEN) Bootloader: GRUB 2.06\n"
    calls = []

    def fake(root, xl_cmd=None, **kw):
        calls.append(root)
        return collect_mod.XenLogRead("xl dmesg", xl, "ran", True)

    monkeypatch.setattr(collect_mod, "read_xen_log", fake)
    views = live_views(_root(tmp_path, dom0=True))
    assert calls and views is not None
    assert Role.XEN_HYPERVISOR in [v.role for v in views]
    who = explain(views).who
    assert (who.role, who.xen_text, str(who.xen_boot)) == (Role.XEN_DOM0, "4.17.5", "multiboot2")


def test_collect_to_a_tar_name_writes_a_plain_tar(tmp_path):
    # The name says what the file is: ".tar" is a plain tar (ustar magic, no gzip), read back
    # like the gzip one.
    root = _root(tmp_path)
    out = tmp_path / "report.tar"
    collect(out, root)
    head = out.read_bytes()[:512]
    assert head[:2] != b"\x1f\x8b" and head[257:262] == b"ustar"
    assert _summary(read_sysfs(out)) == _summary(read_sysfs(root / "sys/firmware"))


def test_collect_refuses_a_symlink_name_into_the_source_tree(tmp_path):
    # `collect link` where link -> <root>/sys/firmware/x.tar.gz must refuse, like --html does,
    # not replace the link and exit 0.
    root = _root(tmp_path)
    link = tmp_path / "report.tar.gz"
    link.symlink_to(root / "sys" / "firmware" / "x.tar.gz")
    with pytest.raises(OutputError, match="refusing to write under"):
        collect(link, root)
    assert link.is_symlink()
