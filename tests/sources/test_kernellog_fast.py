"""The kernel-log fast path reads exactly what the line-by-line reader reads: every fixture,
generated logs of every capture style, and hypothesis-built logs mixing prefixes, timestamps
that fall, control characters, wrapped lines, gzip and tiny block sizes."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.errors import ParseError
from efihandoff.sources.kernellog import (
    KernelLog,
    boots,
    read,
    read_kernel_log,
    read_kernel_log_file,
)
from efihandoff.sources.kernellog import bulk as bulk_path
from efihandoff.sources.kernellog import fast as fast_path
from efihandoff.sources.kernellog.bulk import MAP_GAP, BulkReader
from efihandoff.sources.kernellog.reader import Reader

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
BENCH = Path(__file__).resolve().parents[2] / "bench"


def _outcome(data: bytes, fast: bool) -> object:
    """The log read, or the error it raises (bytes starting like gzip may be corrupt gzip)."""
    try:
        return read_kernel_log(data, fast=fast)
    except ParseError as exc:
        return ("ParseError", str(exc), exc.line)


def same(data: bytes) -> None:
    fast = _outcome(data, True)
    assert fast == _outcome(data, False)
    if not data.startswith(b"\x1f\x8b"):  # only gzip may be refused (as corrupt)
        assert isinstance(fast, KernelLog)


@pytest.mark.parametrize("path", sorted(LOGS.glob("*.log")), ids=lambda p: p.name)
def test_fixture_same_both_ways(path: Path) -> None:
    assert read_kernel_log_file(path, fast=True) == read_kernel_log_file(path, fast=False)


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks and spans of a few lines, so every boundary case comes up in a short log."""
    monkeypatch.setattr(read, "BLOCK", 97)
    monkeypatch.setattr(read, "FAST_BLOCK", 211)
    monkeypatch.setattr(fast_path, "SPAN", 150)
    monkeypatch.setattr(fast_path, "MAP_PIECE", 97)


@pytest.mark.parametrize("path", sorted(LOGS.glob("*.log")), ids=lambda p: p.name)
def test_fixture_same_with_tiny_blocks(path: Path, tiny_blocks: None) -> None:
    data = path.read_bytes()
    same(data)
    same(gzip.compress(data, mtime=0))


def _corpus_logs(seed: int, count: int) -> list[bytes]:
    sys.path.insert(0, str(BENCH))
    try:
        import make_corpus
    finally:
        sys.path.remove(str(BENCH))
    return [make_corpus.generate_log(seed, i, 30_000)[0] for i in range(count)]


def test_generated_logs_same_both_ways() -> None:
    for data in _corpus_logs(11, 30):
        same(data)


def test_generated_logs_same_with_tiny_blocks(tiny_blocks: None) -> None:
    for data in _corpus_logs(12, 8):
        same(data)



def _read_counting(
    data: bytes, method: str, cls: type = Reader
) -> tuple[Any, list[tuple[int, Any]]]:
    """read_kernel_log(data) (the fast path), with (line number, result) of every call of
    ``cls.<method>``."""
    calls: list[tuple[int, Any]] = []
    real = getattr(cls, method)

    def counting(self: object, ln: int, *args: object) -> Any:
        out = real(self, ln, *args)
        calls.append((ln, out))
        return out

    setattr(cls, method, counting)
    try:
        return read_kernel_log(data), calls
    finally:
        setattr(cls, method, real)

def test_bulk_path_is_taken() -> None:
    """A long run of chatter is accounted for without feeding its lines one by one."""
    lines = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
    lines += [f"[{1 + i // 10:5d}.{i % 10:06d}] usb 1-1: chatter {i}" for i in range(5000)]
    data = ("\n".join(lines) + "\n").encode()
    fast, fed = _read_counting(data, "feed")
    assert fast == read_kernel_log(data, fast=False)
    assert fast.lines_read == 5001
    assert len(fed) < 10


# -- hypothesis ------------------------------------------------------------------------------

_MESSAGES = [
    "usb 1-1: new high-speed USB device number 2 using xhci_hcd",
    "ACPI: SSDT 0x000000009A2B3000 0004B2 (v02 LENOVO CB-01)",
    "ACPI: RSDP 0x00000000000F05B0 000024 (v02 ALASKA)",
    "ACPI in unprivileged domain disabled",
    "Linux version 6.1.0-18-amd64 (debian-kernel@lists.example.org) #1 SMP",
    "Linux version 6.6.13-amd64 (x) #1",
    "Command line: BOOT_IMAGE=/boot/vmlinuz root=/dev/sda2 ro quiet",
    "Kernel command line: root=/dev/sda2",
    "BIOS-provided physical RAM map:",
    "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable",
    "BIOS-e820: [mem 0x0000000000100000-0x000000009fffffff] usable",
    "BIOS-e820: [mem 0x00000000a0000000-0x00000000a00fffff] reserved",
    "Xen: [mem 0x0000000000000000-0x000000000009ffff] usable",
    "efi: EFI v2.70 by HP",
    "efi: ACPI=0x9ffbe000 ACPI 2.0=0x9ffbe014 SMBIOS=0x9f7e1000 ESRT=0x9b4a6018 ",
    "efi: ACPI=0x9ffbe000 (ESRT=0x9b4a6018 unusable) ",
    "efi: mem00: [Boot Data   |   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] "
    "range=[0x0000000000000000-0x0000000000000fff] (0MB)",
    "efi: mem01: [Conventional|   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] "
    "range=[0x0000000000001000-0x000000009b4a6fff] (2484MB)",
    "mem02: type=4, attr=0xf, range=[0x000000009b4a6000-0x000000009b4a7000) (0MB)",
    "efi: EFI runtime memory map:",
    "esrt: Reserving ESRT space from 0x000000009b4a6018 to 0x000000009b4a60c8.",
    "esrt: Reserving ESRT space from 0x000000009b4a6018 to",
    "0x000000009b4a60c8.",
    "esrt: ESRT header is not in the memory map.",
    "e820: update [mem 0x9b4a6000-0x9b4a6fff] usable ==> reserved",
    "DMI: HP HP EliteBook 840 G8 Notebook PC/880D, BIOS T37 11/14/2023",
    "Hypervisor detected: Xen PV",
    "Booting paravirtualized kernel on Xen",
    "Xen version: 4.17.4 (preserve-AD)",
    "xen_mcelog: /dev/mcelog registered by Xen",
    "Xen version 4.17.3 (mockbuild@[unknown]) debug=n",
    "Bootloader: EFI",
    "EFI memory map:",
    " 0000000000000-000000009ffff type=7 attr=000000000000000f",
    "Jun 18 10:00:00 host kernel: nested syslog",
    "Jun 18 10:00:00 host kernel: [    9.000000] nested syslog with a timestamp",
    "Dec  1 10:00:00 host kernel: efi: ESRT=0x1000 ",
    "kern  :info  : [    5.000000] facility line",
    "daemon:warn  : [    0.000000] facility line",
    "somehost kernel: [    7.000000] host-kernel line",
    "somehost kernel[3]: [    0.000000] host-kernel line",
    "<4>[    8.000000] level then timestamp",
    "(XEN) [    1.000000] nested Xen",
    "autogenerated kernel key: abc",
    "pci 0000:00:1f.3: [8086:51c8] type 00 class 0x040380",
    "[    3.000000] a second timestamp",
    "6,1234,5678901,-;kmsg record",
    "rcu: \tRCU restricting CPUs",
    "\x1b[0m coloured",
    "ef\x01i: ESRT=0x1000 ",
    "x\u0663.\u0661\u0662\u0663\u0664\u0665\u0666 digits of another script",
    "garbage (XEN) Xen version 4.19.5 (x)",
    "garbage[    1.000000] glued",
    "",
    "-- Boot 0123456789abcdef --",
    "-- Reboot --",
    "x" * 5000,
    # real-log shapes (tests/sources/FORMATS.md): wraps, quoted-printable, old labels
    "efi: ACPI=0xca39b000 ACPI 2.0=0xca39b014 ",
    "TPMFinalLog=0xcaa33000 SMBIOS=0xcb7fb000 SMBIOS 3.0=0xcb7fa000 ",
    "MEMATTR=0xc657d018 ESRT=0xc823dd18",
    "efi: ACPI=0x1000 ACPI",
    "2.0=0x1014 ESRT=0x2000",
    "efi: ESRT=3D0xdef87998 ACPI=3D0xde816000 ACPI 2.0=3D0xde816=",
    "000 SMBIOS=3D0xdef87598",
    "BIOS-e820: [mem 0x00000000fed20000-0x00000000fed7ffff] reser=",
    "ved",
    "BIOS-e820: [mem ",
    "0x0000000100000000-0x00000004b07fffff] usable",
    "efi: mem07: [Conventional Memory|   |  |  |  |  |  |  |",
    " |   |WB|WT|WC|UC] range=[0x0000000001400000-0x00000000b9855fff]",
    "(2948MB)",
    "efi:   0x000000001000-0x000000307fff [ACPI Memory NVS    |   |  |  |  |  |  |  |   "
    "|WB|  |  |  ]",
    "EFI v2.00 by Phoenix Technologies Ltd.",
    "EFI: mem00: type=3, attr=0xf, range=[0x0000000000000000-0x0000000000001000) (0MB)",
    " ACPI 2.0=0xa73fe014  ACPI=0xa73fe000  SMBIOS=0xa7310000  MPS=0xfd4c0 ",
    "kernel: efi: ESRT=0x45d39118 ",
    "kernel[1]: usb 1-1: chatter",
    " 0000000000000-000000009dfff type=3D7 attr=3D000000000000000f",
    " 0000040000000-00000403fffff type=3D0 attr=3D000000000000000=",
    "f",
    "efi: mem05: [Bogus|WB] range=[0x1000-0x1fff] (0MB)",
    "> RTPROP=0xf0ea7040 SMBIOS=0xf0ea3000",
    "ESRT=0xf0ea5040 `",
    "e820: update [mem 0x00000000-0x00000fff] usable =3D=3D> rese=",
    "rved",
    "e820: update [mem 0x00000000-0x00000fff] usable ==> rese",
    '{"_TRANSPORT":"kernel","MESSAGE":"efi: ESRT=0x1234 "}',
    '{"_TRANSPORT":"syslog","MESSAGE":"efi: ESRT=0x99 "}',
]


@st.composite
def _timestamps(draw: st.DrawFn) -> str:
    sec = draw(st.sampled_from([0, 0, 1, 2, 5, 30, 99999, 123456]))
    frac = draw(st.integers(0, 999999))
    shape = draw(st.sampled_from(["std", "std", "std", "3dec", "zero-lead", "9dec"]))
    if shape == "3dec":
        return f"[{sec:5d}.{frac % 1000:03d}]"
    if shape == "zero-lead":
        return f"[{sec:05d}.{frac:06d}]"
    if shape == "9dec":
        return f"[{sec:5d}.{frac:09d}]"
    return f"[{sec:5d}.{frac:06d}]"


@st.composite
def _line(draw: st.DrawFn) -> str:
    kind = draw(
        st.sampled_from(
            ["dmesg", "dmesg", "dmesg", "level", "caller", "human", "syslog", "syslog-ts",
             "journal", "iso", "iso-other", "other", "xen", "quoted", "bare", "kmsg",
             "syslog-spaces", "xen-stamped", "human-de", "mono-nohost", "zh", "bare-time",
             "rfc5424", "html", "backtick", "short-full", "logread", "busybox",
             "no-hostname", "iso-no-hostname"]
        )
    )
    msg = draw(st.sampled_from(_MESSAGES))
    ts = draw(_timestamps())
    if kind == "dmesg":
        return f"{ts} {msg}"
    if kind == "level":
        return f"<{draw(st.integers(0, 7))}>{ts} {msg}"
    if kind == "caller":
        return f"{ts}[{'T' + str(draw(st.integers(0, 900))):>6}] {msg}"
    if kind == "human":
        return f"[Tue Jun 18 09:58:0{draw(st.integers(0, 9))} 2024] {msg}"
    if kind == "syslog":
        return f"Jun 18 10:00:00 thinkpad kernel: {msg}"
    if kind == "syslog-spaces":
        return f"Jun 18 10:00:00  thinkpad  kernel: {msg}"
    if kind == "xen-stamped":
        stamp = draw(st.sampled_from(["[2024-06-18 10:00:00.123] ", "[    1.500000] ", " ", ""]))
        return f"(XEN) {stamp}{msg}"
    if kind == "syslog-ts":
        return f"Jun 18 10:00:00 thinkpad kernel: {ts} {msg}"
    if kind == "journal":
        return f"Jun 18 10:00:00 kernel kernel[12]: {msg}"
    if kind == "iso":
        return f"2024-06-18T10:00:00+0200 desktop kernel: {msg}"
    if kind == "iso-other":
        return f"2024-06-18T10:00:00+0200 {draw(st.sampled_from(['Command', 'dom0', 'Xen']))} " \
            f"{draw(st.sampled_from(['line', 'systemd[1]', 'prog']))}: {msg}"
    if kind == "other":
        return f"Jun 18 10:00:00 thinkpad systemd[1]: {msg}"
    if kind == "xen":
        return f"(XEN) {msg}"
    if kind == "quoted":
        return f"> {ts} {msg}"
    if kind == "human-de":
        return f"[Di Okt 15 09:12:0{draw(st.integers(0, 9))} 2024] {msg}"
    if kind == "mono-nohost":
        return f"{ts} kernel: {msg}"
    if kind == "zh":
        return f"1月 06 16:39:14 host {draw(st.sampled_from(['kernel', 'fwupd[3]']))}: {msg}"
    if kind == "bare-time":
        return f"10:00:0{draw(st.integers(0, 9))} {msg}"
    if kind == "rfc5424":
        app = draw(st.sampled_from(["kernel", "fwupd"]))
        return f"<6>1 2024-06-18T10:00:00.000001+02:00 host {app} - - - {ts} {msg}"
    if kind == "html":
        return f"&gt; {ts} {msg}"
    if kind == "backtick":
        return f"`{ts} {msg}"
    if kind == "short-full":
        return f"Tue 2024-06-18 10:00:00 CEST host kernel: {msg}"
    if kind == "no-hostname":
        tag = draw(st.sampled_from(["kernel", "kernel[0]", "app"]))
        return f"Jun 18 10:00:00.123456 {tag}: {msg}"
    if kind == "iso-no-hostname":
        return f"2024-06-18T10:00:00.123456+02:00 {draw(st.sampled_from(['kernel', 'app']))}: {msg}"
    if kind == "logread":
        tag = draw(st.sampled_from(["kern.info kernel", "daemon.info procd", "kernel"]))
        return f"Wed Jun 19 08:00:01 2024 {tag}: {ts} {msg}"
    if kind == "busybox":
        tag = draw(st.sampled_from(["kern.info kernel", "user.info app[88]", "kern.notice kernel"]))
        return f"Jan  1 00:00:03 buildroot {tag}: {ts} {msg}"
    if kind == "kmsg":
        return f"6,{draw(st.integers(0, 999))},{draw(st.integers(0, 10**8))},-;{msg}"
    return msg


@st.composite
def _log(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_line(), max_size=120))
    # runs of chatter with rising timestamps, so the bulk path has something to take
    if draw(st.booleans()):
        start = draw(st.integers(0, 50))
        at = draw(st.integers(0, len(lines)))
        count = draw(st.integers(0, 200))
        run = [f"[{start + i:5d}.{i:06d}] usb 1-1: chatter" for i in range(count)]
        lines[at:at] = run
    sep = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    text = sep.join(lines) + draw(st.sampled_from(["", sep]))
    data = text.encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        data += draw(st.binary(max_size=16))
    return data


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_hostile_bytes_same_both_ways(data: bytes) -> None:
    same(data)


def test_truncated_gzip_same_both_ways(tiny_blocks: None) -> None:
    data = "\n".join(f"[{i:5d}.000000] usb chatter {i}" for i in range(3000)).encode()
    gz = gzip.compress(data, mtime=0)
    for cut in (len(gz) // 3, len(gz) // 2, len(gz) - 9):
        same(gz[:cut])


def test_corrupt_gzip_same_error() -> None:
    data = gzip.compress(b"[    0.000000] Linux version 6.6\n" * 5000, mtime=0)
    bad = data[:200] + bytes(b ^ 0x5A for b in data[200:400]) + data[400:]
    errors = []
    for fast in (True, False):
        try:
            read_kernel_log(bad, fast=fast)
            errors.append(None)
        except Exception as exc:  # compared below
            errors.append((type(exc), str(exc)))
    assert errors[0] == errors[1]


# -- map lines in bulk -------------------------------------------------------------------------

_MAP_PREFIXES = [
    "[{ts}] ",
    "<6>[{ts}] ",
    "[{ts}][    T1] ",
    "Jun 18 10:00:00 host kernel: [{ts}] ",
    "Jun 18 10:00:00 host kernel: ",
    "2024-06-18T10:00:00+0200 host kernel: ",
    "[Tue Jun 18 09:58:01 2024] ",
    "(XEN) [{ts}] ",
    "(XEN) ",
    "> [{ts}] ",
]
_TYPEATTRS = [
    "Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC",
    "Boot Data   |   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC",
    "Runtime Data|RUN|  |  |  |  |  |  |  |  |   |WB|WT|WC|UC",
    "Reserved    |   |  |  |  |  |  |  |  |  |   |  |  |  |UC",
    "type=99|attr=0x000000000000000f",
    "Not A Type  |   |WB",
    "Conventional|   |XX|  |WB",
]
_E820_WORDS = ["usable", "reserved", "ACPI NVS", "ACPI data", "usable =3D=3D", "resrved",
               "persistent (type 12)", "type 20", "usable  ", "reserved`"]  # fmt: skip
_XEN_CHAT = [
    "HVM d3v0 save: CPU",
    "grant_table.c:1808:d0v2 Expanding d0 grant table from 5 to 6 frames",
    "",
    "   ",
    "  Xen version 4.19.1 (mockbuild@) (gcc) debug=n",
    "Bootloader: GRUB 2.06",
    "Command line: dom0_mem=4G",
    "Xen-e820 RAM map:=20",
    "Initial Xen-e820 RAM map:",
    "printk: 12 messages suppressed. RAM map",
    "tail with a backtick`",
    "x =3D y",
]
_XEN_WORDS = ["(usable)", "(reserved)", "(ACPI data)", "(bogus)", "(usable) "]


@st.composite
def _map_line(draw: st.DrawFn, kind: str, i: int) -> str:
    a = draw(st.integers(0, 1 << 40)) & ~0xFFF
    size = draw(st.sampled_from([0x1000, 0x20000, 0x9F000, 0]))
    b = a + size - 1 if size else a - 0x1000  # a last before the first, now and then
    if kind == "memmap":
        index = draw(st.sampled_from([i, i, i, 0]))
        mb = size >> 20
        sep = draw(st.sampled_from([" ", " ", "", "  "]))
        tail = draw(st.sampled_from(["", "", "  ", "`"]))
        ta = draw(st.sampled_from(_TYPEATTRS))
        return f"efi:{sep}mem{index:02d}: [{ta}] range=[0x{a:016x}-0x{b:016x}] ({mb}MB){tail}"
    if kind == "e820":
        who = draw(st.sampled_from(["BIOS-e820", "BIOS-e820", "Xen"]))
        return f"{who}: [mem 0x{a:016x}-0x{b:016x}] {draw(st.sampled_from(_E820_WORDS))}"
    if kind == "xen-efi":
        t = draw(st.integers(0, 15))
        attr = draw(st.sampled_from(["000000000000000f", "800000000000000f", "=3D0f"]))
        return f" {a:013x}-{b:013x} type={t} attr={attr}"
    return f" [{a:016x}, {b:016x}] {draw(st.sampled_from(_XEN_WORDS))}"


@st.composite
def _map_log(draw: st.DrawFn) -> bytes:
    """Runs of map lines in one capture style, with what makes a line leave the bulk path:
    a timestamp that falls (a new boot), a line repeated, a type word or bracket that does
    not parse, a quoted-printable '=3D', a markdown backtick, a trailing blank."""
    out = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
    for _ in range(draw(st.integers(1, 3))):
        prefix = draw(st.sampled_from(_MAP_PREFIXES))
        kind = draw(st.sampled_from(["memmap", "e820", "xen-efi", "xen-e820"]))
        if kind.startswith("xen") and not prefix.startswith("(XEN)"):
            prefix = "(XEN) " + prefix
        header = {"xen-efi": "EFI memory map:", "xen-e820": "Xen-e820 RAM map:"}.get(kind)
        t0 = draw(st.integers(0, 3))
        lines: list[str] = []
        if kind.startswith("xen"):  # Xen's own chatter first, some of it read after all
            for _ in range(draw(st.integers(0, 6))):
                lines.append(prefix.format(ts=f"{t0:5d}.000000") + draw(st.sampled_from(_XEN_CHAT)))
        if header:
            lines.append(prefix.format(ts=f"{t0:5d}.000000") + header)
        for i in range(draw(st.integers(1, 30))):
            t = t0 + i // 8 if draw(st.integers(0, 20)) else 0
            line = prefix.format(ts=f"{t:5d}.{i:06d}") + draw(_map_line(kind, i))
            lines.append(line)
            if not draw(st.integers(0, 15)):
                lines.append(line)  # a paste repeated
        out += lines
        out.append(f"[{t0 + 5:5d}.000000] usb 1-1: chatter")
    sep = draw(st.sampled_from(["\n", "\r\n"]))
    return (sep.join(out) + sep).encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_map_log())
def test_hypothesis_map_runs_same_both_ways(data: bytes) -> None:
    same(data)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=_map_log())
def test_hypothesis_map_runs_same_with_tiny_blocks(data: bytes, tiny_blocks: None) -> None:
    same(data)

@contextmanager
def _spy(cls: type, name: str, seen: Callable[..., object]) -> Iterator[None]:
    """Inside the block, every call of ``cls.name`` is shown to ``seen`` (its arguments but
    self) before it runs."""
    real = getattr(cls, name)

    def spying(self: object, *args: Any, **kw: Any) -> Any:
        seen(*args)
        return real(self, *args, **kw)

    setattr(cls, name, spying)
    try:
        yield
    finally:
        setattr(cls, name, real)



def test_map_runs_are_read_in_bulk() -> None:
    """An efi=debug map, an E820 table and Xen's EFI map, 600 lines each: none goes through
    Reader.message one line at a time; the result is the line-by-line one."""
    lines = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
    for i in range(600):
        a = i << 20
        lines.append(
            f"[    0.000000] efi: mem{i:02d}: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT"
            f"|WC|UC] range=[0x{a:016x}-0x{a + 0xFFFFF:016x}] (1MB)"
        )
    for i in range(600):
        a = i << 20
        lines.append(f"[    0.000000] BIOS-e820: [mem 0x{a:016x}-0x{a + 0xFFFFF:016x}] usable")
    lines.append("(XEN) EFI memory map:")
    for i in range(600):
        a = i << 20
        lines.append(f"(XEN)  {a:013x}-{a + 0xFFFFF:013x} type=7 attr=000000000000000f")
    data = ("\n".join(lines) + "\n").encode()
    calls: list[int] = []
    with _spy(Reader, "message", lambda ln, *_: calls.append(ln)):
        fast = read_kernel_log(data)
    assert fast == read_kernel_log(data, fast=False)
    (boot,) = fast.boots
    assert len(boot.memory_map) == 600 and len(boot.e820) == 600
    assert boot.xen is not None and len(boot.xen.efi_memory_map) == 600
    assert len(calls) < 20


def test_a_map_line_that_does_not_parse_inside_a_run_is_kept_unparsed() -> None:
    """A memNN line whose bracket names no type, between two that parse: the run hands it
    back, the reader keeps it as an unparsed line (nothing dropped in silence)."""
    good = (
        "[    0.000000] efi: mem{:02d}: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]"
        " range=[0x{:016x}-0x{:016x}] (0MB)"
    )
    bad = (
        "[    0.000000] efi: mem01: [Not A Type  |   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]"
        " range=[0x0000000000001000-0x0000000000001fff] (0MB)"
    )
    lines = [
        "[    0.000000] Linux version 6.6.1 (b@h) #1",
        good.format(0, 0, 0xFFF),
        bad,
        good.format(2, 0x2000, 0x2FFF),
    ]
    data = ("\n".join(lines) + "\n").encode()
    fast = read_kernel_log(data)
    assert fast == read_kernel_log(data, fast=False)
    (boot,) = fast.boots
    assert [d.phys_addr for d in boot.memory_map] == [0, 0x2000]
    assert [(u.line, u.what) for u in boot.unparsed] == [(3, "efi memory map")]


def test_another_programs_iso_line_holding_a_kernel_message_is_read_both_ways() -> None:
    """Regression: an ISO-dated line of another program whose text holds a time and then a
    kernel message ("app: 10:00:01 efi: ESRT=...") is read by recognise() line by line; the
    fast path counted it as chatter once the boot had started (it now refuses any line where
    a known message start follows a blank)."""
    pre = b"2024-06-18T10:00:00.123456+02:00 host kernel: usb 1-1: new high-speed USB device\n"
    for line in (
        b"2024-06-18T10:00:00.123456+02:00 host app: 10:00:01 efi: ESRT=0x1000 \n",
        b"2024-06-18T10:00:00.123456+02:00 app: Dec  1 10:00:00 host kernel: efi: ESRT=0x1000 \n",
    ):
        data = pre * 200 + line + pre * 10
        fast = read_kernel_log(data)
        assert fast == read_kernel_log(data, fast=False)
        (boot,) = fast.boots
        assert [(t.label, t.address, t.line) for t in boot.config_tables] == [("ESRT", 0x1000, 201)]


# -- map lines with chatter between them, and hostile lines in the runs -----------------------

_CHATTER = [
    "usb 1-1: new high-speed USB device number 2 using xhci_hcd",
    "e1000e 0000:00:1f.6: eth0: (PCI Express:2.5GT/s:Width x1)",
    "mce: CPU0: Thermal monitoring enabled",
    "Memory: 16211224K/16658552K available",
    "BTRFS info (device sda2): enabling ssd optimizations",
    "Xenial kernel: not a Xen line",  # a word, a blank and "kernel:": bulk refuses it
    "pci 0000:00:02.0: [mem 0xf0000000-0xf0ffffff 64bit]",
]
_HOSTILE = [
    "\x00\x00 NULs \x00",
    "\x01\x7f controls",
    "CR-only\rline\rends",
    "x" * 9000,  # a gigantic line, beyond MAX_LINE and the first map-run piece
    "\udcff\udcfe binary junk \udc80",
    "",
]


@st.composite
def _interleaved_log(draw: st.DrawFn) -> bytes:
    """A map (efi=debug memNN lines or an E820 table) with 0 to MAP_GAP + 3 chatter lines
    between map lines, in one capture style; now and then a falling timestamp, a repeated
    line, a map line that does not parse, or a hostile line (NULs, controls, a CR-only line
    end, a gigantic line, undecodable bytes, a blank line)."""
    prefix = draw(st.sampled_from(_MAP_PREFIXES[:7]))
    out = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
    kind = draw(st.sampled_from(["memmap", "e820", "both"]))
    t = 1
    for i in range(draw(st.integers(1, 40))):
        for _ in range(draw(st.integers(0, 19))):
            msg = draw(st.sampled_from(_CHATTER))
            if not draw(st.integers(0, 25)):
                msg = draw(st.sampled_from(_HOSTILE))
            if not draw(st.integers(0, 60)):
                t = max(0, t - draw(st.sampled_from([2, 5, t])))  # falling: a new boot
            out.append(prefix.format(ts=f"{t:5d}.{i:06d}") + msg)
        this = kind if kind != "both" else draw(st.sampled_from(["memmap", "e820"]))
        line = prefix.format(ts=f"{t:5d}.{i:06d}") + draw(_map_line(this, i))
        out.append(line)
        if not draw(st.integers(0, 20)):
            out.append(line)  # a paste repeated
        t += draw(st.integers(0, 1))
    sep = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    data = (sep.join(out) + sep).encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        data += draw(st.binary(max_size=64))
    return data


def test_map_lines_between_chatter_are_read_in_runs() -> None:
    """An E820 table and an efi=debug map with three chatter lines between every two map
    lines (as the bench corpus prints them): read in runs, not one line at a time, and the
    same as line by line."""
    lines = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
    for i in range(300):
        a = i << 20
        lines.append(f"[    1.{i:06d}] BIOS-e820: [mem 0x{a:016x}-0x{a + 0xFFFFF:016x}] usable")
        lines += [f"[    1.{i:06d}] usb 1-1: chatter {j}" for j in range(3)]
    for i in range(300):
        a = i << 20
        lines.append(
            f"[    2.{i:06d}] efi: mem{i:02d}: [Conventional|   |  |  |  |  |  |  |  |  |   |WB"
            f"|WT|WC|UC] range=[0x{a:016x}-0x{a + 0xFFFFF:016x}] (1MB)"
        )
        lines += [f"[    2.{i:06d}] usb 1-1: chatter {j}" for j in range(3)]
    data = ("\n".join(lines) + "\n").encode()
    fast, calls = _read_counting(data, "take_maps", BulkReader)
    runs = [taken for _, (taken, _stopped) in calls]
    assert fast == read_kernel_log(data, fast=False)
    (boot,) = fast.boots
    assert len(boot.e820) == 300 and len(boot.memory_map) == 300
    assert len(runs) < 20 and sum(runs) >= 2390


def test_a_new_boot_inside_a_long_run_of_chatter() -> None:
    """A timestamp that falls (a second boot) in the middle of 6,000 chatter lines: the run
    is halved until the line is found, the rest still counted in bulk; two boots, as line by
    line."""
    lines = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
    lines += [f"[{1 + i // 10:5d}.{i % 10:06d}] usb 1-1: chatter {i}" for i in range(3000)]
    lines += [f"[{i // 10:5d}.{i % 10:06d}] usb 1-1: chatter {i}" for i in range(3000)]
    data = ("\n".join(lines) + "\n").encode()
    fast, calls = _read_counting(data, "plain")
    assert fast == read_kernel_log(data, fast=False)
    assert [(b.kernel_version, b.first_line) for b in fast.boots] == [("6.6.1", 1), (None, 3002)]
    assert len(calls) < 100


def test_lines_starting_like_a_map_line_do_not_start_map_runs() -> None:
    """Regression (bench_memory's hostile lines, 3x slower): every line whose message began
    with 'e', 'B' or 'X' ("esrt: ...", "EXT4-fs", "Xenial") tried a map run, a findall over
    the next kilobyte each; only a map line's own start does now."""
    lines = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
    lines += [f"[    1.{i:06d}] esrt: something odd {i}" for i in range(500)]
    lines += [f"[    1.{i:06d}] BIOS-provided physical RAM map {i}" for i in range(500)]
    data = ("\n".join(lines) + "\n").encode()
    fast, calls = _read_counting(data, "take_maps", BulkReader)
    assert fast == read_kernel_log(data, fast=False)
    assert calls == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_log(), _interleaved_log()))
def test_hypothesis_logs_same_both_ways(data: bytes) -> None:
    same(data)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.one_of(_log(), _interleaved_log()), gz=st.booleans())
def test_hypothesis_logs_same_with_tiny_blocks(data: bytes, gz: bool, tiny_blocks: None) -> None:
    same(gzip.compress(data, mtime=0) if gz else data)


def _efi_line(ts: str, i: int, addr: int) -> str:
    return (
        f"[{ts}] efi: mem{i:02d}: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]"
        f" range=[0x{addr:016x}-0x{addr + 0xFFF:016x}] (0MB)"
    )


def test_a_map_printed_again_inside_one_run_keeps_the_first_print() -> None:
    """Descriptors a run takes are put in the map when the run ends: a second print starting
    at mem00 in the same run (and one starting mem000) still ends the first map there."""
    for width in (2, 3):
        lines = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
        for rep in range(2):
            for i in range(4):
                line = _efi_line(f"    0.{rep * 10 + i:06d}", i, (rep * 16 + i) << 12)
                lines.append(line.replace("mem00", "mem" + "0" * width))
            lines.append(f"[    0.{rep * 10 + 5:06d}] usb 1-1: chatter")
        data = ("\n".join(lines) + "\n").encode()
        fast, calls = _read_counting(data, "take_maps", BulkReader)
        assert calls  # read as runs
        assert fast == read_kernel_log(data, fast=False)
        (boot,) = fast.boots
        assert [d.phys_addr >> 12 for d in boot.memory_map] == [0, 1, 2, 3]
        assert [d.line for d in boot.memory_map] == [2, 3, 4, 5]


def test_a_tab_in_a_line_does_not_send_it_the_slow_way() -> None:
    """Linux prints "rcu: \\tRCU restricting CPUs ..." on every boot: the reader reads a tab
    as a blank (prefixes.clean), so the fast path reads such lines as it reads the others."""
    lines = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
    for i in range(50):
        lines.append(f"[    0.{i:06d}] rcu: \tRCU restricting CPUs from NR_CPUS=8192 to 52.")
        lines.append(f"[    0.{i:06d}] usb 1-1:\tchatter\t{i}")
    lines.append("[    1.000000] efi:\tESRT=0x7a5f0000  ACPI 2.0=0x7b7fe014\tSMBIOS=0xf0000")
    data = ("\n".join(lines) + "\n").encode()
    fast, calls = _read_counting(data, "feed")  # Fast.slow feeds the reader line by line
    assert fast == read_kernel_log(data, fast=False)
    assert calls == []
    (boot,) = fast.boots
    assert [t.label for t in boot.config_tables] == ["ESRT", "ACPI 2.0", "SMBIOS"]


@pytest.mark.parametrize(
    "line",
    [
        "[    0.100000] \x1b[\t1mefi:\x1b[0m ESRT=0x7a5f0000\tSMBIOS=0xf0000",  # CSI, then a tab
        "[    0.100000] \x1b[ 1mefi: ESRT=0x7a5f0000",  # CSI with a blank where a tab was
        "[    0.100000] efi: ESRT=0x7a5f0000\t\x01",
        "[    0.100000]\tefi: ESRT=0x7a5f0000",
    ],
)
def test_tabs_with_other_controls_read_the_same_both_ways(line: str) -> None:
    data = f"[    0.000000] Linux version 6.6.1 (b@h) #1\n{line}\n[    0.200000] x\n".encode()
    assert read_kernel_log(data) == read_kernel_log(data, fast=False)


def _xen_log(efi: list[str], e820: list[str]) -> bytes:
    lines = ["(XEN) Xen version 4.17.3 (x@y) (gcc) debug=n", "(XEN) EFI memory map:"]
    lines += [f"(XEN)  {x}" for x in efi]
    lines += ["(XEN) Xen-e820 RAM map:"]
    lines += [f"(XEN)  {x}" for x in e820]
    lines += ["(XEN) System RAM: 16GB"]
    return ("\n".join(lines) + "\n").encode()


_XEN_EFI = [
    f"{i << 16:013x}-{(i << 16) + 0xFFFF:013x} type=7 attr=000000000000000f" for i in range(6)
]
_XEN_E820 = [f"[{i << 16:016x}, {(i << 16) + 0xFFFF:016x}] usable" for i in range(6)]


@pytest.mark.parametrize(
    ("efi", "e820"),
    [
        (_XEN_EFI, _XEN_E820),  # taken whole, a column at a time
        # a reversed range, an empty one, a type word Xen never prints: the run stops there
        (
            [*_XEN_EFI[:2], "0000000030000-000000002ffff type=7 attr=0000000f", *_XEN_EFI[3:]],
            [*_XEN_E820[:2], "[0000000000030000, 000000000002ffff] usable", *_XEN_E820[3:]],
        ),
        (_XEN_EFI, [*_XEN_E820[:3], "[0000000000030000, 000000000003ffff] frobnicated"]),
    ],
)
def test_xen_map_runs_same_both_ways(efi: list[str], e820: list[str]) -> None:
    data = _xen_log(efi, e820)
    fast, calls = _read_counting(data, "take_xen_efis", BulkReader)
    assert calls and calls[0][1] >= 1  # read as a run
    assert fast == read_kernel_log(data, fast=False)


def test_xen_maps_past_the_cap_same_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    from efihandoff.sources.kernellog import boots

    monkeypatch.setattr(boots, "MAX_DESCRIPTORS", 4)
    monkeypatch.setattr(boots, "MAX_E820", 3)
    data = _xen_log(_XEN_EFI, _XEN_E820)
    fast = read_kernel_log(data)
    assert fast == read_kernel_log(data, fast=False)
    (boot,) = fast.boots
    assert boot.xen is not None
    assert len(boot.xen.efi_memory_map) == 4 and len(boot.xen.e820) == 3


def test_xen_e820_run_of_more_type_words_than_the_memo_holds() -> None:
    """A run of more distinct type words than the memo keeps (it is cleared past 4,096):
    each read right, the same both ways (a word known before the run survives the clear)."""
    words = ["usable", *(f"type {n}" for n in range(100, 4300))]
    e820 = [f"[{i << 16:016x}, {(i << 16) + 0xFFFF:016x}] {w}" for i, w in enumerate(words)]
    data = _xen_log(_XEN_EFI, e820)
    fast = read_kernel_log(data)
    assert fast == read_kernel_log(data, fast=False)
    (boot,) = fast.boots
    assert boot.xen is not None
    assert [e.type_code for e in boot.xen.e820[:3]] == [1, 100, 101]
    assert len(boot.xen.e820) == len(words)


# -- map runs: where a piece stops, the descriptor cap, the repeat check's hash ---------------


def _e820_line(ts: str, i: int) -> str:
    a = i << 20
    return f"[{ts}] BIOS-e820: [mem 0x{a:016x}-0x{a + 0xFFFFF:016x}] usable"


@pytest.mark.parametrize("marked", [False, True])
@pytest.mark.parametrize("between", [MAP_GAP - 1, MAP_GAP, MAP_GAP + 1, MAP_GAP + 2])
def test_a_map_run_stops_reading_past_its_last_map_line(between: int, marked: bool) -> None:
    """A map run's findall reads no further than MAP_GAP + 1 lines past the last map line
    in its piece (chatter holding "[mem 0x..." only makes it read further): a map line
    ``between`` chatter lines later is in the same run while the gap allows, and the result
    is the line-by-line one either way."""
    chatter = "pci 0000:00:02.0: reg 0x10: [mem 0x{:08x}-0x{:08x}]" if marked else "usb {} {}"
    lines = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
    lines += [_e820_line(f"    1.{i:06d}", i) for i in range(20)]
    lines += [f"[    1.{20 + i:06d}] " + chatter.format(i, i) for i in range(between)]
    lines += [_e820_line(f"    1.{40 + i:06d}", 20 + i) for i in range(5)]
    lines += [f"[    2.{i:06d}] usb 1-1: chatter {i}" for i in range(400)]
    data = ("\n".join(lines) + "\n").encode()
    rows: list[int] = []
    with _spy(BulkReader, "take_maps", lambda ln, got, *_: rows.append(len(got))):
        fast = read_kernel_log(data)
    assert fast == read_kernel_log(data, fast=False)
    (boot,) = fast.boots
    assert len(boot.e820) == 25
    # one run while the gap allows, else two; without marks in the chatter each reads up to
    # its piece's last map line, MAP_GAP + 1 lines after it and the row for the cut
    assert len(rows) == (1 if between <= MAP_GAP else 2)
    if not marked:
        assert rows[-1] <= (20 + between if len(rows) == 1 else 0) + 5 + MAP_GAP + 2


@pytest.mark.parametrize("cap", [1, 2, 3, 4, 7, 100])
@pytest.mark.parametrize("runtime", [False, True])
def test_map_runs_at_the_descriptor_cap_same_both_ways(
    cap: int, runtime: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A map printed twice in one run (the first from mem01, the second from mem00), before
    or after "EFI runtime memory map:", with the cap reached anywhere in it: what each line
    does is what Boot.desc_list says, as line by line."""
    monkeypatch.setattr(boots, "MAX_DESCRIPTORS", cap)
    lines = ["[    0.000000] Linux version 6.6.1 (b@h) #1"]
    if runtime:
        lines.append("[    0.000001] efi: EFI runtime memory map:")
    for rep in range(2):
        for i in range(5):
            ts = f"    0.{rep * 10 + i + 2:06d}"
            lines.append(_efi_line(ts, i + 1 - rep, (rep * 16 + i) << 12))
        lines.append(f"[    0.{rep * 10 + 8:06d}] usb 1-1: chatter")
    data = ("\n".join(lines) + "\n").encode()
    fast = read_kernel_log(data)
    assert fast == read_kernel_log(data, fast=False)
    (boot,) = fast.boots
    kept = boot.runtime_map if runtime else boot.memory_map
    assert [d.phys_addr >> 12 for d in kept] == list(range(min(cap, 5)))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.one_of(_map_log(), _interleaved_log()), cap=st.integers(1, 12))
def test_hypothesis_map_runs_at_a_small_cap_same_both_ways(
    data: bytes, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(boots, "MAX_DESCRIPTORS", cap)
    same(data)


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_the_repeat_checks_hash_of_a_message_is_its_texts(text: str) -> None:
    """take_maps hashes a message's bytes as the reader hashes its text (the pair of
    timestamp and hash that drops a pasted repeat must be the same both ways)."""
    assert bulk_path.message_hash(text.encode("ascii")) == hash(text)
