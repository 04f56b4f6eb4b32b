"""The POSIX sh collector (``efihandoff collect --print-script``), run by a real ``sh`` (dash
and BusyBox when installed) on fake trees, with PATH holding only the tools it may use and fakes
for ``dmesg``, ``journalctl`` and ``xl``: its archive must read exactly like ``collect``'s."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from efihandoff.cli import main
from efihandoff.explain import explain
from efihandoff.sources import collect as collect_mod
from efihandoff.sources import read_sources
from efihandoff.sources.collect import collect, collector_script
from efihandoff.sources.sysfs import MAX_VALUE_BYTES, read_sysfs
from efihandoff.uefi.esrt import ESRT_GUID

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NATIVE = FIXTURES / "sysfs" / "native-laptop"
DOM0 = FIXTURES / "sysfs" / "xen-dom0"
XL_LOG = FIXTURES / "logs" / "xl-dmesg-xen417.log"
EFIVAR = "Boot0000-8be4df61-93ca-11d2-aa0d-00e098032b8c"
UUID = "3f1e5c52-9d0a-4b7e-8c11-0123456789ab"
# The native machine's boot log; the dom0's is the fixture's dmesg.txt.
NATIVE_DMESG = (
    b"[    0.000000] Linux version 6.6.30 (builder@host) #1 SMP\n"
    b"[    0.001500] efi: EFI v2.7 by EDK II\n"
    b"[    2.000100] efi: ACPI=0x7a4ff000 ACPI 2.0=0x7a4ff000 ESRT=0x71fff000\n"
)
TOOLS = ("cat", "tar", "gzip", "head", "tail", "wc", "mkdir", "mv", "rm", "timeout", "id", "date")
MINIMAL = ("cat", "tar", "mkdir", "mv", "rm")  # what the script needs, nothing more


def _shells() -> list[pytest.param]:
    out = []
    dash = shutil.which("dash")
    if dash:
        out.append(pytest.param(((dash,), "system"), id="dash"))
    busybox = shutil.which("busybox")
    if busybox:
        out.append(pytest.param(((busybox, "sh"), "busybox"), id="busybox"))
    sh = shutil.which("sh")
    if not out and sh:
        out.append(pytest.param(((sh,), "system"), id="sh"))
    if not out:
        out.append(pytest.param(((), "system"), marks=pytest.mark.skip(reason="no sh")))
    return out


@pytest.fixture(params=_shells())
def shell(request) -> tuple[tuple[str, ...], str]:
    return request.param


def _busybox_applets() -> set[str]:
    busybox = shutil.which("busybox")
    if busybox is None:
        return set()
    done = subprocess.run([busybox, "--list"], capture_output=True, check=False, text=True)
    return set(done.stdout.split())


def _bin(tmp: Path, tools: str, fakes: dict[str, str], names: tuple[str, ...] = TOOLS) -> Path:
    """A PATH directory: ``names`` (the system's tools or BusyBox applets) and ``fakes`` (sh
    bodies; each run is recorded in ``tmp/ran``)."""
    d = tmp / "bin"
    d.mkdir()
    applets = _busybox_applets() if tools == "busybox" else set()
    for name in names:
        real = shutil.which("busybox") if name in applets else shutil.which(name)
        if real is not None:
            os.symlink(real, d / name)
    sh = shutil.which("sh") or "/bin/sh"
    for name, body in fakes.items():
        (d / name).write_text(f'#!{sh}\necho "{name} $*" >> "{tmp}/ran"\n{body}\n')
        (d / name).chmod(0o755)
    return d


def _printing(tmp: Path, name: str, data: bytes) -> str:
    (tmp / f"{name}.out").write_bytes(data)
    return f'cat "{tmp}/{name}.out"'


def _tree(tmp: Path, kind: str) -> Path:
    """A fake root as a real machine shows it (efivars and the hypervisor uuid included, which
    must never be copied); ``dev/kmsg`` gives ``collect`` the same log the fake dmesg prints."""
    root = tmp / "root"
    if kind == "dom0":
        shutil.copytree(DOM0 / "sys", root / "sys")
        shutil.copytree(DOM0 / "proc", root / "proc")
        hv = root / "sys/hypervisor"
        (hv / "guest_type").write_text("PV\n")
        (hv / "uuid").write_text(UUID + "\n")
        (hv / "properties").mkdir()
        (hv / "properties/changeset").write_text("unavailable\n")
        (hv / "start_flags").mkdir()
        (hv / "start_flags/initdomain").write_text("1\n")
        log = (DOM0 / "dmesg.txt").read_bytes()
    else:
        shutil.copytree(NATIVE, root / "sys/firmware")
        log = NATIVE_DMESG
    efivars = root / "sys/firmware/efi/efivars"
    efivars.mkdir(parents=True, exist_ok=True)
    (efivars / EFIVAR).write_bytes(b"\x07\x00\x00\x00secret")
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.6.30\n")
    (root / "dev").mkdir()
    (root / "dev/kmsg").write_bytes(
        b"".join(
            b"6,%d,%d,-;%s\n" % (i, _usec(line), line.split(b"] ", 1)[1])
            for i, line in enumerate(log.splitlines())
        )
    )
    return root


def _usec(line: bytes) -> int:
    secs, micros = line[1:].split(b"]", 1)[0].strip().split(b".")
    return int(secs) * 1_000_000 + int(micros)


def _dmesg_of(kind: str) -> bytes:
    return (DOM0 / "dmesg.txt").read_bytes() if kind == "dom0" else NATIVE_DMESG


def _run(
    tmp: Path,
    shell: tuple[str, ...],
    out: str | Path | None,
    root: Path,
    bindir: Path,
    *args: str,
) -> subprocess.CompletedProcess[str]:
    script = tmp / "efihandoff-collect.sh"
    if not script.exists():
        script.write_bytes(collector_script())
    env = {"PATH": str(bindir), "EFIHANDOFF_ROOT": str(root), "HOME": str(tmp)}
    argv = [*shell, str(script), *((str(out),) if out is not None else ()), *args]
    return subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True, timeout=300)


def _members(path: Path) -> dict[str, bytes | None]:
    with tarfile.open(path) as tf:
        return {
            m.name.removeprefix("./"): (tf.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
            for m in tf.getmembers()
        }


def _manifest_section(manifest: str, head: str) -> set[str]:
    lines = manifest.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(head))
    out = set()
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        out.add(line.strip())
    return out


def _summary(ev):
    return (
        ev.systab,
        ev.config_table.value,
        ev.fw_vendor.value,
        ev.runtime.value,
        ev.fw_platform_size.value,
        ev.runtime_map,
        ev.firmware_memmap,
        ev.esrt.to_esrt() if ev.esrt else None,
        ev.esrt_tree(),
        ev.efi_files,
        ev.hypervisor_type,
        ev.hypervisor_version,
        ev.xen_capabilities,
        ev.xen_dom0_evidence,
        ev.kernel_log,
        ev.xen_log,
    )


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["native", "dom0"])
def test_sh_archive_reads_like_collects(tmp_path, shell, kind):
    argv, tools = shell
    root = _tree(tmp_path, kind)
    fakes = {"dmesg": _printing(tmp_path, "dmesg", _dmesg_of(kind))}
    fakes["xl"] = '[ "$1" = dmesg ] || exit 64\n' + _printing(tmp_path, "xl", XL_LOG.read_bytes())
    bindir = _bin(tmp_path, tools, fakes)
    (tmp_path / "out").mkdir()
    py = tmp_path / "py.tar.gz"
    report = collect(py, root, xl=str(bindir / "xl"))
    (tmp_path / "ran").unlink(missing_ok=True)
    done = _run(tmp_path, argv, "out/sh.tar.gz", root, bindir)
    assert done.returncode == 0, done.stderr
    sh = tmp_path / "out/sh.tar.gz"
    assert os.listdir(tmp_path / "out") == ["sh.tar.gz"]  # the work directory is gone
    assert sh.read_bytes()[:2] == b"\x1f\x8b"

    # The same members with the same bytes; MANIFEST.txt aside, which says who wrote it.
    a, b = _members(py), _members(sh)
    assert set(a) == set(b)
    assert {n: d for n, d in a.items() if n != "MANIFEST.txt"} == {
        n: d for n, d in b.items() if n != "MANIFEST.txt"
    }
    assert not [n for n in b if "efivars" in n or n.endswith(("/uuid", "kmsg"))]
    assert not [d for d in b.values() if d and (b"secret" in d or UUID.encode() in d)]
    assert ("xl-dmesg.txt" in b) == (kind == "dom0")
    ran = (tmp_path / "ran").read_text().splitlines()
    assert ran == (["dmesg ", "xl dmesg"] if kind == "dom0" else ["dmesg "])

    back_py, back_sh = read_sysfs(py), read_sysfs(sh)
    assert _summary(back_sh) == _summary(back_py)
    assert back_sh.kernel_log == _dmesg_of(kind)
    manifest = back_sh.manifest
    assert manifest.startswith("efihandoff-collect.sh")
    assert "kernel: 6.6.30" in manifest and "kernel log: dmesg" in manifest
    assert _manifest_section(manifest, "files (") == set(report.files) - {"MANIFEST.txt"}
    if kind == "dom0":
        assert f"xl dmesg: {bindir / 'xl'} dmesg: read, {XL_LOG.stat().st_size} bytes" in manifest
    else:
        assert "xl dmesg: not run: not a Xen dom0 (not on Xen)" in manifest

    # explain reads both alike: same views, machine, verdicts.
    va, vb = read_sources([py]), read_sources([sh])
    assert [v.source.path.replace(str(py), "X") for v in va] == [
        v.source.path.replace(str(sh), "X") for v in vb
    ]
    for x, y in zip(va, vb, strict=True):
        assert x.machine.config_tables == y.machine.config_tables
        assert x.machine.memory_map == y.machine.memory_map
    ea, eb = explain(va), explain(vb)
    assert ea.machine.table(ESRT_GUID) == eb.machine.table(ESRT_GUID) is not None
    assert {p: r.tables[ESRT_GUID].verdict for p, r in ea.results.items()} == {
        p: r.tables[ESRT_GUID].verdict for p, r in eb.results.items()
    }

    # What it prints at the end: what it wrote and how to read it.
    assert f"wrote {sh}: {len(report.files)} files" in done.stdout
    assert "efihandoff explain sh.tar.gz" in done.stdout


def test_sh_hostile_tree_is_bounded(tmp_path, shell):
    argv, tools = shell
    root = _tree(tmp_path, "native")
    entries = root / "sys/firmware/efi/esrt/entries"
    with open(entries / "entry0/huge", "wb") as f:
        f.truncate(256 << 20)  # sparse: reads as 256 MiB of zeros
    os.symlink(".", entries / "loop")
    os.symlink("self", entries / "entry0/self")
    os.symlink("../../../../../../../../../etc/hostname", entries / "entry0/escape")
    os.mkfifo(root / "sys/firmware/memmap/0/fifo")  # opening it would block
    deep = root / "sys/firmware/efi/runtime-map/0"
    for _ in range(12):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "x").write_text("1\n")
    bindir = _bin(tmp_path, tools, {"dmesg": _printing(tmp_path, "dmesg", NATIVE_DMESG)})
    done = _run(tmp_path, argv, "r.tar.gz", root, bindir)
    assert done.returncode == 0, done.stderr
    members = _members(tmp_path / "r.tar.gz")
    assert not [n for n in members if n.rsplit("/", 1)[-1] in ("huge", "self", "escape", "fifo")]
    assert not [n for n in members if "/loop" in n or n.endswith("/x")]
    assert max(len(d) for d in members.values() if d is not None) <= MAX_VALUE_BYTES
    back = read_sysfs(tmp_path / "r.tar.gz")
    skipped = _manifest_section(back.manifest, "skipped (")
    e = "/sys/firmware/efi/esrt/entries"
    assert f"{e}/entry0/huge: larger than {MAX_VALUE_BYTES} bytes" in skipped
    assert f"{e}/loop: symlink to a directory: not followed" in skipped
    assert f"{e}/entry0/self: symlink: not followed" in skipped
    assert f"{e}/entry0/escape: symlink: not followed" in skipped
    assert "/sys/firmware/memmap/0/fifo: not a regular file" in skipped
    assert any(s.endswith("more than 8 directory levels: left out") for s in skipped)
    assert back.esrt.to_esrt() == read_sysfs(NATIVE).esrt.to_esrt()
    assert f"skipped {e}/entry0/huge: larger than {MAX_VALUE_BYTES} bytes" in done.stdout
    # collect is bounded on the same tree too
    report = collect(tmp_path / "py.tar.gz", root)
    assert dict(report.skipped)[f"{e}/entry0/huge"] == f"larger than {MAX_VALUE_BYTES} bytes"


def test_sh_with_only_the_tools_it_needs(tmp_path, shell):
    # No gzip, head, wc, timeout, dmesg, journalctl, xl: a plain tar, the log from
    # /var/log/dmesg, and the dom0's missing xl said in MANIFEST.txt.
    argv, tools = shell
    if tools == "busybox":
        pytest.skip("BusyBox sh runs its own gzip, head, ... whatever PATH holds")
    root = _tree(tmp_path, "dom0")
    (root / "var/log").mkdir(parents=True)
    (root / "var/log/dmesg").write_bytes((DOM0 / "dmesg.txt").read_bytes())
    bindir = _bin(tmp_path, tools, {}, MINIMAL)
    done = _run(tmp_path, argv, "r.tar.gz", root, bindir)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "r.tar.gz"
    assert out.read_bytes()[:2] != b"\x1f\x8b" and tarfile.is_tarfile(out)
    assert "gzip not found" in done.stdout
    back = read_sysfs(out)
    assert back.kernel_log == (DOM0 / "dmesg.txt").read_bytes() and back.xen_log is None
    lines = back.manifest.splitlines()
    assert "kernel log: /var/log/dmesg" in lines
    assert "  dmesg: not found" in lines and "  journalctl: not found" in lines
    assert "xl dmesg: not run: xl not found on PATH" in lines
    assert "  xl dmesg: not run: xl not found on PATH" in lines  # under skipped
    assert "created: unknown" in lines
    got, tree = _summary(back), _summary(read_sysfs(root))
    assert got[:9] + got[10:14] == tree[:9] + tree[10:14]  # efi_files: efivars not copied
    assert [v.source.path for v in read_sources([out])] == [str(out), f"{out}:dmesg.txt"]


@pytest.mark.parametrize(
    ("fakes", "files", "source", "notes"),
    [
        (  # dmesg refused (kernel.dmesg_restrict): journalctl has the boot
            {
                "dmesg": 'echo "dmesg: read kernel buffer failed: Operation not permitted" >&2'
                "\nexit 1",
                "journalctl": "echo 'Dec 07 10:00:00 host kernel: efi: EFI v2.7 by EDK II'",
            },
            {},
            "journalctl -k -b 0",
            ["dmesg: Operation not permitted", "journalctl -k -b 0: read"],
        ),
        (  # no journal: /var/log/dmesg
            {"dmesg": "exit 1", "journalctl": "echo 'No journal files were found.' >&2; exit 1"},
            {"var/log/dmesg": b"[    0.000000] Linux version 6.6.30\n"},
            "/var/log/dmesg",
            ["journalctl -k -b 0: No journal files were found.", "/var/log/dmesg: read"],
        ),
        (  # a wrapped ring buffer, and nothing better: kept, said so
            {"dmesg": "echo '[    9.000000] usb 1-1: new device'"},
            {},
            "dmesg",
            ["dmesg: ring buffer wrapped", "/var/log/kern.log: missing"],
        ),
        (  # a wrapped ring buffer loses to kern.log
            {"dmesg": "echo '[    9.000000] usb 1-1: new device'"},
            {"var/log/kern.log": b"Dec  7 10:00:00 host kernel: efi: EFI v2.7 by EDK II\n"},
            "/var/log/kern.log",
            ["/var/log/dmesg: missing", "/var/log/kern.log: read"],
        ),
    ],
)
def test_sh_kernel_log_sources(tmp_path, shell, fakes, files, source, notes):
    argv, tools = shell
    root = _tree(tmp_path, "native")
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    bindir = _bin(tmp_path, tools, fakes)
    done = _run(tmp_path, argv, "r.tar.gz", root, bindir)
    assert done.returncode == 0, done.stderr
    back = read_sysfs(tmp_path / "r.tar.gz")
    assert f"kernel log: {source}" in back.manifest.splitlines()
    for note in notes:
        assert any(line.strip().startswith(note) for line in back.manifest.splitlines()), note
    assert back.kernel_log
    if "journalctl" in fakes:
        assert "journalctl -k -b 0 --no-pager -q" in (tmp_path / "ran").read_text()


def test_sh_xl_failure_is_recorded(tmp_path, shell):
    argv, tools = shell
    root = _tree(tmp_path, "dom0")
    fakes = {
        "dmesg": _printing(tmp_path, "dmesg", _dmesg_of("dom0")),
        "xl": 'echo "xl: cannot init xl context" >&2; exit 1',
    }
    bindir = _bin(tmp_path, tools, fakes)
    done = _run(tmp_path, argv, "r.tar.gz", root, bindir)
    assert done.returncode == 0, done.stderr
    back = read_sysfs(tmp_path / "r.tar.gz")
    assert back.xen_log is None and "xl-dmesg.txt" not in _members(tmp_path / "r.tar.gz")
    line = next(x for x in back.manifest.splitlines() if x.startswith("xl dmesg: "))
    assert line.startswith(f"xl dmesg: {bindir / 'xl'} dmesg: exit status 1: cannot init xl")
    assert "  xl dmesg: exit status 1: cannot init xl context" in back.manifest


def test_sh_refuses_bad_targets_and_prints_usage(tmp_path, shell):
    argv, tools = shell
    root = _tree(tmp_path, "native")
    bindir = _bin(tmp_path, tools, {"dmesg": "exit 1"})
    done = _run(tmp_path, argv, None, root, bindir)
    assert done.returncode == 2 and "usage: sh efihandoff-collect.sh OUT.tar.gz" in done.stderr
    assert "efihandoff explain OUT.tar.gz" in done.stderr
    os.symlink(root / "sys", tmp_path / "innocent")
    for target in (
        "/sys/x.tar.gz",
        "/proc/x.tar.gz",
        "/dev/x.tar.gz",
        str(root / "sys/firmware/x.tar.gz"),
        str(root / "proc/x.tar.gz"),
        str(tmp_path / "innocent/x.tar.gz"),
    ):
        done = _run(tmp_path, argv, target, root, bindir)
        assert done.returncode == 1 and "refusing to write under" in done.stderr, target
        assert not os.path.lexists(target)
    assert _run(tmp_path, argv, tmp_path, root, bindir).stderr.endswith("is a directory\n")
    done = _run(tmp_path, argv, "no/x.tar.gz", root, bindir)
    assert done.returncode == 1 and "does not exist" in done.stderr
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".efihandoff-collect")]


def test_sh_script_lists_what_collect_takes():
    """The script's file lists and bounds are collect's (a drift would make the archives
    differ on trees the comparison test does not build)."""
    text = collector_script().decode()

    def words(var: str) -> tuple[str, ...]:
        m = re.search(rf'^{var}="([^"]*)"', text, re.M)
        assert m is not None, var
        return tuple(m.group(1).split())

    def number(var: str) -> int:
        m = re.search(rf"^{var}=(\d+)", text, re.M)
        assert m is not None, var
        return int(m.group(1))

    assert words("SINGLE_FILES") == collect_mod.SINGLE_FILES
    assert words("SUBTREES") == collect_mod.SUBTREES
    assert number("MAX_VALUE") == MAX_VALUE_BYTES
    assert number("MAX_FILES") == collect_mod.MAX_FILES
    assert number("MAX_XL") == collect_mod.MAX_XL_BYTES
    assert number("XL_TIMEOUT") == collect_mod.XL_TIMEOUT
    assert "efivars" not in " ".join(words("SINGLE_FILES") + words("SUBTREES"))


def test_print_script():
    result = CliRunner().invoke(main, ["collect", "--print-script"])
    assert result.exit_code == 0
    assert result.stdout_bytes == collector_script()
    assert result.stdout_bytes.startswith(b"#!/bin/sh\n")
    assert b"usage: sh $PROG OUT.tar.gz" in result.stdout_bytes
    missing = CliRunner().invoke(main, ["collect"])
    assert missing.exit_code == 2 and "--print-script" in missing.output
