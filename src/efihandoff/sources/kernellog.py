"""Kernel logs: what Linux (and Xen) printed about the EFI tables, the memory maps and the ESRT.

Reads dmesg, ``journalctl`` (short forms, verbose, JSON), syslog (BSD, RFC 5424, BusyBox,
logread), serial-console captures, ``xl dmesg`` and pasted excerpts (mail-quoted, hard-wrapped,
quoted-printable, HTML-escaped, markdown), line by line, into plain data split by boot; every
shape is listed, with where it was seen, in tests/sources/FORMATS.md. A prefix nothing here
knows is read by recognising the kernel message after it. A line cut by a wrap is held and
joined with the prefix-less line(s) after it when they complete it; a line that looks like one
read here but does not parse is kept in ``BootLog.unparsed``. The same line at the same time
(a paste repeated) is read once. Unknown lines are skipped; every per-line pattern is linear (no
nested quantifiers, bounded repeats), lines are cut at :data:`MAX_LINE` characters and every
per-boot list has a cap (``MAX_*``; what is cut is said in ``BootLog.cut``), so the whole read
is O(size) in time and O(1) in memory. Bytes are read through a fast path (see "Fast path"
below) that takes runs of chatter in bulk and gives the same result as feeding every line
(``fast=False``).

Message formats, as printed by (project, file, function):

- Linux drivers/firmware/efi/efi.c ``efi_systab_report_header`` ("EFI v2.70 by X"; from 6.2
  "EFI v2.7 by X" / "EFI v2.3.1 by X"), ``efi_config_parse_tables`` + ``match_config_table``
  ("efi: " then ``NAME=0x%lx `` per table; 6.3+ ``(NAME=0x%lx unusable) `` for a table the Xen
  allowlist refuses), ``efi_md_typeattr_format`` ("[%-12s" or "[type=%u", then
  "|RUN|HP|MR|CC|SP|NV|XP|RP|WP|RO|UCE|WB|WT|WC|UC]" or "|attr=0x%016llx]").
- Linux arch/x86/platform/efi/efi.c ``efi_print_memmap`` ("mem%02u: %s range=[0x%016llx-0x%016llx]
  (%lluMB)", inclusive end; again after "EFI runtime memory map:" in ``__efi_enter_virtual_mode``)
  and the pre-3.19 ``print_efi_memmap`` ("mem%02u: type=%u, attr=0x%llx, range=[a-b) (%lluMB)",
  exclusive end).
- Linux drivers/firmware/efi/efi-init.c ``reserve_regions`` (arm64: "Processing EFI memory map:",
  then "  0x%012llx-0x%012llx %s", older kernels with a trailing "*").
- Linux arch/x86/kernel/e820.c ``e820__print_table`` / ``e820_print_type``: "WHO: [mem %#018Lx-
  %#018Lx] usable|reserved|soft reserved|ACPI data|ACPI NVS|unusable|persistent (type %u)|type %u";
  Linux 7.0 (tip x86/boot, Dec 2025) adds a size column, "[gap ...]" lines and rewords "usable" to
  "System RAM", "reserved" to "device reserved", "persistent" to "persistent RAM".
  ``__e820__range_update`` prints "e820: update [mem %#010Lx-%#010Lx] OLD ==> NEW".
  arch/x86/xen/setup.c ``xen_memory_setup`` returns WHO = "Xen" in a PV domain.
- Linux drivers/firmware/efi/esrt.c ``efi_esrt_init`` / ``esrt_sysfs_init`` (pr_fmt "esrt: ").
- Linux arch/x86/xen/enlighten_pv.c ``xen_banner`` ("Booting paravirtualized kernel on Xen",
  "Xen version: %d.%d%s (preserve-AD)") and ``xen_arch_setup`` ("ACPI in unprivileged domain
  disabled", domU only).
- Xen xen/arch/x86/setup.c ``__start_xen`` ("Xen version %d.%d%s (...)", "Bootloader: %s",
  "Command line: %s"), xen/arch/x86/e820.c ``init_e820`` / ``print_e820_memory_map`` ("%s RAM map:",
  " [%016lx, %016lx] (usable)" inclusive; before 4.17-ish " %016Lx - %016Lx (usable)" exclusive),
  xen/common/efi/boot.c ``efi_init_memory`` ("EFI memory map:%s", " %013lx-%013lx type=%u
  attr=%016lx" inclusive).
"""

from __future__ import annotations

import gzip
import html
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from typing import IO

from efihandoff.errors import ParseError
from efihandoff.uefi.memmap import (
    LINUX_ATTR_MNEMONICS,
    PAGE_SHIFT,
    MemoryDescriptor,
    MemoryType,
)

MAX_LINE = 4096  # characters kept of one line; the rest of an overlong line is skipped
# Caps: each well above what any real machine prints, so only a hostile or corrupt log meets
# them; what is cut is said in BootLog.cut (and the log stays O(1) in memory per boot).
# - EFI memory maps: the largest real maps (multi-socket servers, efi=debug) hold a few
#   thousand descriptors; 32768 descriptors are 1.5 MiB of firmware map at edk2's 48-byte stride.
MAX_DESCRIPTORS = 32768
# - E820: Linux arch/x86/include/asm/e820/types.h E820_MAX_ENTRIES is 128 + 3 * MAX_NUMNODES
#   (3200 with the largest NODES_SHIFT, 10): no Linux prints a longer table.
MAX_E820 = 8192
MAX_TABLES = 1024  # one config-table line of a real system lists 5..40 tables
MAX_ESRT_MESSAGES = 1024
MAX_UPDATES = 8192  # "e820: update"/"remove" lines
MAX_UNPARSED = 256  # UnparsedLine records kept per boot (the rest counted)
UNPARSED_TEXT = 240  # characters of an unparsed line's message kept
MAX_BOOTS = 4096  # boots kept per log (a journal of every boot of a year has ~1000)
MAX_JOINS = 16  # continuation lines one wrapped line may take (a 30-column wrap of a long line)
_SEEN_CAP = 65536  # (timestamp, message) pairs remembered per boot to drop pasted repeats
_U64 = (1 << 64) - 1
_SNIFF_BYTES = 65536
_BLOCK = 65536

# --------------------------------------------------------------------------------------------
# Output model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoggedTable:
    """One ``NAME=0x...`` of the ``efi:`` config-table line; ``unusable`` for the Xen dom0
    ``(NAME=0x... unusable)`` form (Linux 6.3+ ``match_config_table``)."""

    label: str
    address: int
    unusable: bool
    line: int


@dataclass(frozen=True, slots=True)
class LoggedDescriptor:
    """One printed EFI memory descriptor; ``attribute`` is None when the print does not give it
    (an unknown mnemonic)."""

    type: int
    phys_addr: int
    num_pages: int
    attribute: int | None
    line: int

    @property
    def end(self) -> int:
        """Exclusive end."""
        return self.phys_addr + (self.num_pages << PAGE_SHIFT)

    def contains(self, addr: int) -> bool:
        """``phys_addr <= addr < end``."""
        return self.phys_addr <= addr < self.end

    def to_descriptor(self) -> MemoryDescriptor:
        """As a :class:`MemoryDescriptor` (an unknown attribute becomes 0)."""
        return MemoryDescriptor(self.type, self.phys_addr, self.num_pages, self.attribute or 0)


@dataclass(frozen=True, slots=True)
class E820Entry:
    """One E820 range, ``[start, end)``. ``kind`` uses the pre-7.0 Linux wording ("usable",
    "reserved", "ACPI data", "ACPI NVS", "unusable", "persistent", "soft reserved", "type 20");
    ``type_code`` is the E820 type number when the wording pins it."""

    start: int
    end: int
    kind: str
    type_code: int | None
    line: int

    def contains(self, addr: int) -> bool:
        """``start <= addr < end``."""
        return self.start <= addr < self.end


@dataclass(frozen=True, slots=True)
class E820Update:
    """``e820: update [mem a-b] OLD ==> NEW`` (``op`` "update") or ``e820: remove [mem a-b]
    [OLD]`` (``op`` "remove", ``new_kind`` None); ``end`` exclusive."""

    op: str
    start: int
    end: int
    old_kind: str | None
    new_kind: str | None
    line: int

    def covers(self, addr: int) -> bool:
        """``start <= addr < end``."""
        return self.start <= addr < self.end


@dataclass(frozen=True, slots=True)
class EsrtMessage:
    """One ``esrt:`` line. ``kind`` is stable (see :data:`ESRT_KINDS`); ``values`` are the
    numbers it carries, in printed order (hashed ``%p`` pointers that are not hex are left out)."""

    kind: str
    text: str
    line: int
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class XenInfo:
    """What the log says about Xen: from ``(XEN)`` console lines and from dom0 hints."""

    version: str | None
    boot_loader: str | None
    efi_memory_map: tuple[LoggedDescriptor, ...]
    e820: tuple[E820Entry, ...]
    lines: int
    command_line: str | None = None


@dataclass(frozen=True, slots=True)
class UnparsedLine:
    """A line that looks like one efihandoff reads but does not parse (even joined with the
    lines after it): what it would have said is unknown. ``what`` names the kind of line it
    looked like ("efi config-table line", "efi memory map", "e820", "esrt", "xen map");
    ``text`` is the message (prefixes off, cut at :data:`UNPARSED_TEXT` characters)."""

    line: int
    text: str
    what: str


@dataclass(frozen=True)
class BootLog:
    """Everything one boot printed that efihandoff uses."""

    first_line: int
    kernel_version: str | None
    efi_version: str | None
    efi_vendor: str | None
    config_tables: tuple[LoggedTable, ...]
    memory_map: tuple[LoggedDescriptor, ...]
    runtime_map: tuple[LoggedDescriptor, ...]
    e820: tuple[E820Entry, ...]
    e820_updates: tuple[E820Update, ...]
    esrt_messages: tuple[EsrtMessage, ...]
    esrt_reserved: tuple[int, int] | None
    xen: XenInfo | None
    is_xen_dom0: bool
    dmi: str | None
    dom0_unusable: tuple[str, ...]
    command_line: str | None = None
    e820_source: str | None = None  # "BIOS-e820", "Xen", ...: the WHO of the printed table
    # Lines that looked relevant but did not parse, in line order (at most MAX_UNPARSED kept;
    # ``unparsed_more`` counts the rest).
    unparsed: tuple[UnparsedLine, ...] = ()
    unparsed_more: int = 0
    # What was cut at a cap (one sentence each: what, how many printed, how many kept, why).
    cut: tuple[str, ...] = ()

    def table(self, label: str) -> LoggedTable | None:
        """The first logged table with this label."""
        for t in self.config_tables:
            if t.label == label:
                return t
        return None

    @property
    def esrt_address(self) -> int | None:
        """The ESRT address: from the ``efi:`` line, else from ``esrt: Reserving``."""
        t = self.table("ESRT")
        if t is not None:
            return t.address
        return self.esrt_reserved[0] if self.esrt_reserved else None

    @property
    def tables_unknown(self) -> bool:
        """A config-table line did not parse: a table missing from ``config_tables`` may be
        on it, so its absence is unknown, not proven."""
        return any(u.what == "efi config-table line" for u in self.unparsed)

    def esrt_kinds(self) -> tuple[str, ...]:
        """Kinds of the ``esrt:`` messages, in order."""
        return tuple(m.kind for m in self.esrt_messages)


@dataclass(frozen=True)
class KernelLog:
    """A kernel log split by boot; ``lines_used`` counts lines that went into the model."""

    boots: tuple[BootLog, ...]
    lines_read: int
    lines_used: int
    name: str = "<log>"
    boots_dropped: int = 0  # boots past MAX_BOOTS: read (their lines counted), not kept


ESRT_KINDS = (
    "reserving",
    "not-in-memmap",
    "header-does-not-fit",
    "descriptor-invalid",
    "memremap-failed",
    "unsupported-version",
    "only-header",
    "count-too-large",
    "does-not-fit",
    "sysfs-memremap-failed",
    "other",
)

# --------------------------------------------------------------------------------------------
# Line prefixes
# --------------------------------------------------------------------------------------------

_ANSI = re.compile(
    r"\x1b(?:\[[0-9;?<=>]{0,32}[ -/]{0,4}[@-~]"  # CSI (colours, cursor moves)
    r"|\][^\x07\x1b]{0,256}(?:\x07|\x1b\\)?"  # OSC (window titles)
    r"|[()][0-9A-Za-z]|[@-Z\\-_])"
)
_CTRL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TS = re.compile(r"\[ {0,12}(\d{1,10}\.\d{1,9})(?: {0,12}<[ \d.]{0,24}>)?\] ?")  # dmesg, dmesg -d
_CALLER = re.compile(r"\[ {0,12}[TC]\d{1,10}\] ?")  # CONFIG_PRINTK_CALLER
_HUMAN = re.compile(
    r"\[(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}"  # dmesg -T
    r"|[A-Z][a-z]{2}\d{1,2} \d\d:\d\d"  # dmesg -H
    r"| {0,12}[+-]\d{1,10}\.\d{1,9}"  # dmesg -H delta
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?"  # console timestamps
    r")\] ?"
)
_LEVEL = re.compile(r"<\d{1,3}>")
# RFC 5424 syslog (rsyslog RSYSLOG_SyslogProtocol23Format, syslog-ng IETF): "<PRI>1 TIMESTAMP
# HOST APP PROCID MSGID STRUCTURED-DATA MSG"; group 1 is APP.
_RFC5424 = re.compile(
    r"<\d{1,3}>\d{1,2} \S{1,64} \S{1,255} (\S{1,48}) \S{1,128} \S{1,32}"
    r" (?:-|(?:\[[^\]]{0,512}\]){1,8}) ?"
)
_KMSG = re.compile(r"\d{1,3},\d{1,20},(\d{1,20}),[^;]{0,32};")  # /dev/kmsg record
_ISO = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)? {1,4}")
_BARE_TIME = re.compile(r"\d\d:\d\d:\d\d(?:[.,]\d{1,9})? {1,4}")  # minicom/ts(1) captures
_SYSLOG = re.compile(
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d"
    r"(?:\.\d{1,9})? {1,4}"
)
# "host tag[pid]: "; BusyBox syslogd (-S off) and OpenWrt logread put "facility.level " before
# the tag.
_HOST_TAG = re.compile(
    r"([^\s:\[\]]{1,253}) {1,4}(?:[a-z0-9]{1,12}\.[a-z]{1,8} {1,4})?([^\s:\[\]]{1,64})"
    r"(?:\[\d{1,10}\])?: ?"
)
# OpenWrt logread: "Mon Nov  6 20:30:21 2023 kern.info kernel: " (ctime, facility.level, tag).
_LOGREAD = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" [ \d]\d \d\d:\d\d:\d\d \d{4} {1,4}(?:[a-z0-9]{1,12}\.[a-z]{1,8} {1,4})?"
    r"([^\s:\[\]]{1,64})(?:\[\d{1,10}\])?: ?"
)
_HOST_KERNEL = re.compile(r"[^\s:\[\]]{1,253} {1,4}kernel(?:\[\d{1,10}\])?: ?")
_FACILITY = re.compile(  # dmesg -x
    r"(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7]) {0,8}:"
    r" ?(?:emerg|alert|crit|err|warn|notice|info|debug) {0,8}: "
)
_MONTHS = frozenset(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
)
_DAYS = frozenset(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
_FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron")
_FACILITIES += ("authpriv", "ftp", "local")
_MIDLINE = re.compile(r"\(XEN\)|\[ {0,12}\d{1,10}\.\d{6}\]")
_MAX_QUOTE = 32


def _clean(text: str) -> str:
    if len(text) > MAX_LINE:
        text = text[:MAX_LINE]
    if not text.isprintable():
        if "\x1b" in text:
            text = _ANSI.sub("", text)
        text = _CTRL.sub("", text.replace("\t", " "))
    return text


def _unquote(text: str) -> tuple[str, bool]:
    """Drop mail quoting (``> ``, ``> > ``), markdown inline-code backticks and leading blanks;
    an HTML-escaped paste (``&gt; [    0.000000] ...``) is unescaped first."""
    s = text.lstrip(" ")
    if s.startswith("&") and ";" in s[:8]:
        s = html.unescape(s).lstrip(" ")
    quoted = False
    depth = 0
    while s[:1] in (">", "`") and s and depth < _MAX_QUOTE:
        s = s[1:].lstrip(" ")
        quoted = True
        depth += 1
    return s, quoted


# (message, linux timestamp, is a (XEN) line, had a kernel-log prefix)
_Split = tuple[str, float | None, bool, bool]


def _split_prefix(s: str) -> _Split | None:
    """Strip every known prefix; None for a syslog line of another program."""
    ts: float | None = None
    kernel = False
    for _ in range(12):
        if not s:
            break
        c = s[0]
        if c == "[":
            m = _TS.match(s)
            if m:
                ts = float(m[1])
                kernel = True
                s = s[m.end() :]
                continue
            m = _CALLER.match(s) or _HUMAN.match(s)
            if m:
                kernel = True
                s = s[m.end() :]
                continue
            break
        if c == "<":
            m = _RFC5424.match(s)
            if m:
                if m[1] != "kernel":
                    return None  # another program's syslog line
                kernel = True
                s = s[m.end() :]
                continue
            m = _LEVEL.match(s)
            if m:
                kernel = True
                s = s[m.end() :]
                continue
            break
        if c == "(":
            if s.startswith("(XEN)"):
                # Xen console: the rest is Xen's message, after Xen's own optional timestamp.
                s = s[5:]
                if s.startswith(" "):
                    s = s[1:]
                m = _TS.match(s) or _HUMAN.match(s)
                if m:
                    s = s[m.end() :]
                return s, ts, True, True
            break
        if c == " ":
            s = s.lstrip(" ")
            continue
        if c.isdigit():
            m = _KMSG.match(s)
            if m:
                ts = int(m[1]) / 1_000_000
                kernel = True
                s = s[m.end() :]
                continue
            m = _ISO.match(s) or _BARE_TIME.match(s)
            if m:
                s = s[m.end() :]
                t = _HOST_TAG.match(s)
                if t is not None and t[2] == "kernel":
                    kernel = True
                    s = s[t.end() :]
                continue
            break
        if c.isalpha():
            m = _SYSLOG.match(s) if s[:3] in _MONTHS else None
            if m:
                s = s[m.end() :]
                t = _HOST_TAG.match(s) or _KERNEL_TAG.match(s)  # (journalctl --no-hostname)
                if t is None or (t.re is _HOST_TAG and t[2] != "kernel"):
                    return None  # another program's syslog line
                kernel = True
                s = s[t.end() :]
                continue
            m = _LOGREAD.match(s) if s[:3] in _DAYS else None
            if m:
                if m[1] != "kernel":
                    return None  # another program's line
                kernel = True
                s = s[m.end() :]
                continue
            m = _FACILITY.match(s) if s.startswith(_FACILITIES) else None
            if m is None and "kernel" in s[:280]:
                m = _HOST_KERNEL.match(s)
            if m:
                kernel = True
                s = s[m.end() :]
                continue
            break
        break
    return s, ts, False, kernel


def _strip(line: str) -> _Split | None:
    s, _quoted = _unquote(line)
    split = _split_prefix(s)
    if split is None:
        return None
    if not split[3]:
        # A serial capture may glue firmware output in front of a kernel line.
        m = _MIDLINE.search(s)
        if m is not None and m.start() > 0:
            again = _split_prefix(s[m.start() :])
            if again is not None and again[3]:
                return again
    return split


# Known kernel message starts: a line whose prefix the loop above does not know (dmesg -T in
# another locale, journalctl -o short-full/short-unix/with-unit, localized syslog months, bare
# times, verbose MESSAGE=) is read from the first of these found after a blank, ']', '>', ':'
# or '='. Keep in step with _Reader._linux.
_BODY = re.compile(
    r"(?<=[\s\]>:=])(?:efi: |esrt: |BIOS-e820: |e820: |Xen: \[mem |Linux version |EFI v\d"
    r"|EFI: mem|Kernel command line: |Command line: |DMI: |Booting paravirtualized kernel "
    r"|Hypervisor detected: Xen|xen_mcelog: |Xen version: |ACPI in unprivileged domain)"
)
_BODY_SEARCH = 160  # characters of an unknown prefix searched
# A prefix ending in another program's "tag[pid]: " is that program's line, not the kernel's.
_TAG_END = re.compile(r"([^\s:\[\]]{1,64})(?:\[\d{1,10}\])?: ?$")
_TIMEISH = re.compile(r"\d:\d\d|\d\.\d|\d{9}")
_KERNEL_TAG = re.compile(r"kernel(?:\[\d{1,10}\])?: ?")  # journalctl --no-hostname forms


def _recognise(msg: str) -> str | None:
    """The kernel message after a prefix nothing above knows, or None."""
    m = _BODY.search(msg, 1, _BODY_SEARCH + 32)
    if m is None:
        return None
    head = msg[: m.start()]
    t = _TAG_END.search(head)
    if t is not None and t[1] != "kernel":
        return None
    # A prefix holds a time (hh:mm, seconds.fraction, a Unix time) or ends in a field name
    # ("MESSAGE=") or the kernel's tag; prose ("In 2024 I saw efi: ...") does none of that.
    if t is None and not head.rstrip().endswith("=") and _TIMEISH.search(head) is None:
        return None
    return msg[m.start() :]


def _journal_json(line: str) -> _Split | None:
    """One ``journalctl -o json`` record (systemd journal export fields): the kernel's when
    ``_TRANSPORT`` is "kernel" (or ``SYSLOG_IDENTIFIER`` "kernel"); MESSAGE may be a byte array."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    if rec.get("_TRANSPORT") != "kernel" and rec.get("SYSLOG_IDENTIFIER") != "kernel":
        return None
    msg = rec.get("MESSAGE")
    if isinstance(msg, list) and all(isinstance(x, int) and 0 <= x < 256 for x in msg):
        msg = bytes(msg).decode("utf-8", "replace")
    if not isinstance(msg, str):
        return None
    return _clean(msg), None, False, True


# --------------------------------------------------------------------------------------------
# Message patterns
# --------------------------------------------------------------------------------------------

_H = "[0-9a-fA-F]{1,16}"
_EFI_VERSION = re.compile(r"EFI v(\d{1,5}\.\d{1,5}(?:\.\d{1,5})?) by (.{0,200})$")
_MEM_NEW = re.compile(
    rf"mem(\d{{1,6}}): \[([^\]]{{1,96}})\] range=\[0x({_H})-0x({_H})\]"
    r" {0,4}\((\d{1,20})MB\) {0,4}$"
)
_MEM_OLD = re.compile(
    rf"mem(\d{{1,6}}): type=(\d{{1,10}}), attr=0x({_H}), range=\[0x({_H})-0x({_H})\)"
    r" {0,4}\((\d{1,20})MB\) {0,4}$"
)
_ARM_MAP = re.compile(rf"0x({_H})-0x({_H}) {{1,4}}\[([^\]]{{1,96}})\]\*? {{0,4}}$")
_TABLE_TOKEN = re.compile(
    rf" {{0,8}}(\()?([^=():\s][^=():]{{0,63}}?)=0x({_H})(?:( {{1,4}}unusable)\))?(?= |$)"
)
_E820 = re.compile(rf"([A-Za-z][\w -]{{0,31}}): \[(mem|gap) 0x({_H})-0x({_H})\](.{{0,200}})$")
_E820_CHANGE = re.compile(rf"(update|remove) \[mem 0x({_H})-0x({_H})\](.{{0,200}})$")
_E820_SIZE = re.compile(r"\d{1,5}(?:\.\d)? {1,4}[KMGT]B(?: {1,4}|$)")  # Linux 7.0 e820_print_size
_E820_TYPEN = re.compile(r"(?:persistent(?: RAM)? \(type (\d{1,10})\)|type (\d{1,10}))$")
# Linux e820_print_type wording (old, and the 7.0 rewording) -> stable kind, E820 type
_E820_NAMES: dict[str, tuple[str, int | None]] = {
    "usable": ("usable", 1),
    "System RAM": ("usable", 1),
    "kernel usable RAM": ("usable", 1),
    "reserved": ("reserved", 2),
    "device reserved": ("reserved", 2),
    "ACPI data": ("ACPI data", 3),
    "ACPI NVS": ("ACPI NVS", 4),
    "unusable": ("unusable", 5),
    "soft reserved": ("soft reserved", 0xEFFFFFFF),
    "application reserved": ("soft reserved", 0xEFFFFFFF),
}
_XEN_VERSION = re.compile(r"Xen version (\d{1,4}\.\d{1,4}[^\s()]{0,64})")
_DOM0_XEN_VERSION = re.compile(r"Xen version: (\d{1,4}\.\d{1,4}[^\s()]{0,64})(.{0,64})$")
_XEN_RAM_MAP = re.compile(r"(Initial )?\S{1,32} RAM map:$")
_XEN_E820_NEW = re.compile(rf" {{0,4}}\[({_H}), ({_H})\] (.{{1,64}})$")
_XEN_E820_OLD = re.compile(rf" {{0,4}}({_H}) - ({_H}) (.{{1,64}})$")
_XEN_EFI_DESC = re.compile(rf" {{0,4}}({_H})-({_H}) type=(\d{{1,10}}) attr=({_H}) {{0,4}}$")
_RESERVING = "Reserving ESRT space from"  # Linux esrt.c efi_esrt_init
_MEM_START = re.compile(r"mem\d{1,6}:")
# the start of a Xen map line (in a map, a line that starts with a number), cut anywhere
_XEN_EFI_START = re.compile(rf" {{0,4}}{_H}(?:[ \-=]|$)")
_XEN_E820_START = re.compile(rf" {{0,4}}\[?{_H}(?:[ ,\-=\]]|$)")
# A config-table line: NAME=... tokens, maybe "(NAME=... unusable)" (wider than _TABLE_TOKEN).
_TABLEISH = re.compile(r" {0,8}\(?[^=():\s][^=():]{0,63}=")
# First letters of the messages read below ("kernel: " is one _Reader.message strips).
_LINUX_FIRST = frozenset("eBmLCKDXHAxEMSUk")
# The labels of the pre-3.14 config-table line (no "efi: " prefix), as its first token.
_OLD_TABLES = re.compile(
    r"(?:MPS|ACPI 2\.0|ACPI|SMBIOS 3\.0|SMBIOS|UVsystab|HCDP|UGA|SALsystab|ESRT)="
)

# (kind, pattern, how to read each group: x = hex, p = pointer (hex or hashed), d = decimal)
_ESRT_PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("reserving", re.compile(rf"Reserving ESRT space from 0x({_H}) to 0x({_H})\.?$"), "xx"),
    ("not-in-memmap", re.compile(r"ESRT header is not in the memory map\.?$"), ""),
    (
        "header-does-not-fit",
        re.compile(
            r"ESRT header doesn't fit on single memory map entry\.?"
            r" \(size: (\d{1,20}) max: (\d{1,20})\)$"
        ),
        "dd",
    ),
    (
        "descriptor-invalid",
        re.compile(r"EFI memory descriptor is invalid\.? \(esrt: (\S{1,24}) max: (\S{1,24})\)$"),
        "pp",
    ),
    ("memremap-failed", re.compile(r"early_memremap\((\S{1,24}), (\d{1,20})\) failed\.?$"), "pd"),
    ("unsupported-version", re.compile(r"Unsupported ESRT version (-?\d{1,20})\.?$"), "d"),
    (
        "only-header",
        re.compile(
            r"ESRT memory map entry can only hold the header\.?"
            r" \(max: (\d{1,20}) size: (\d{1,20})\)$"
        ),
        "dd",
    ),
    (
        "count-too-large",
        re.compile(r"ESRT says fw_resource_count has very large value (-?\d{1,20})\.?$"),
        "d",
    ),
    (
        "does-not-fit",
        re.compile(
            r"ESRT does not fit on single memory map entry \(size: (\d{1,20}) max: (\d{1,20})\)$"
        ),
        "dd",
    ),
    ("sysfs-memremap-failed", re.compile(r"memremap\((\S{1,24}), (\d{1,20})\) failed\.?$"), "pd"),
)


def _read_values(groups: tuple[str | None, ...], how: str) -> tuple[int, ...]:
    out: list[int] = []
    for g, h in zip(groups, how, strict=False):
        if g is None:
            continue
        if h == "d":
            out.append(int(g))
            continue
        text = g[2:] if g[:2] in ("0x", "0X") else g
        try:
            out.append(int(text, 16))
        except ValueError:
            continue  # hashed or "(____ptrval____)" pointer
    return tuple(out)


# Linux drivers/firmware/efi/efi.c memory_type_name[], every set it has printed:
# - 3.18 ("efi: Introduce efi_md_typeattr_format()", Laszlo Ersek, 2014; x86 efi_print_memmap and
#   arm64 efi-init.c reserve_regions print through it): char[20] names, printed "%-19s";
# - the change that added EFI_MEMORY_CPU_CRYPTO to efi_md_typeattr_format (5.x) cut them to
#   char[13] ("%-12s"): the short names of uefi.memmap.LINUX_TYPE_NAMES;
# - 6.5 (unaccepted memory) adds "Unaccepted"; any type past the table prints "[type=%u".
# The long names that differ from the short ones:
_LONG_TYPE_NAMES: dict[str, int] = {
    "Conventional Memory": int(MemoryType.EfiConventionalMemory),
    "Unusable Memory": int(MemoryType.EfiUnusableMemory),
    "ACPI Reclaim Memory": int(MemoryType.EfiACPIReclaimMemory),
    "ACPI Memory NVS": int(MemoryType.EfiACPIMemoryNVS),
    "Memory Mapped I/O": int(MemoryType.EfiMemoryMappedIO),
    "MMIO Port Space": int(MemoryType.EfiMemoryMappedIOPortSpace),
    "Persistent Memory": int(MemoryType.EfiPersistentMemory),
}


def _type_by_name(name: str) -> int | None:
    t = MemoryType.from_linux_name(name)
    if t is not None:
        return int(t)
    return _LONG_TYPE_NAMES.get(name.strip())


def _typeattr(inner: str) -> tuple[int, int | None] | None:
    """Type and attribute from the bracket ``efi_md_typeattr_format`` prints."""
    parts = inner.split("|")
    name = parts[0]
    if name.startswith("type="):
        try:
            mtype = int(name[5:].strip())
        except ValueError:
            return None
        if mtype > 0xFFFFFFFF:
            return None
    else:
        found = _type_by_name(name)
        if found is None:
            return None
        mtype = found
    rest = [p.strip() for p in parts[1:]]
    if not rest:
        return mtype, None
    if len(rest) == 1 and rest[0].startswith("attr=0x"):
        try:
            return mtype, int(rest[0][7:], 16) & _U64
        except ValueError:
            return mtype, None
    attr = 0
    for p in rest:
        if not p:
            continue
        bit = LINUX_ATTR_MNEMONICS.get(p)
        if bit is None:
            return mtype, None
        attr |= int(bit)
    return mtype, attr


def _e820_kind(text: str) -> tuple[str, int | None]:
    t = text.strip()
    if t.endswith("; crypto-capable"):
        t = t[: -len("; crypto-capable")].rstrip()
    m = _E820_SIZE.match(t)
    if m:
        t = t[m.end() :].strip()
    named = _E820_NAMES.get(t)
    if named is not None:
        return named
    m = _E820_TYPEN.match(t)
    if m:
        if m[1] is not None:
            return "persistent", int(m[1])
        return f"type {int(m[2])}", int(m[2])
    return t, None


def _xen_e820_kind(text: str) -> tuple[str, int | None]:
    t = text.strip()
    if t.startswith("(") and t.endswith(")"):
        t = t[1:-1]
    return _e820_kind(t)


def _scan_tables(body: str) -> list[tuple[str, int, bool]] | None:
    """The ``NAME=0x...`` tokens of a config-table line; None unless the whole line is tokens."""
    pos = 0
    n = len(body)
    out: list[tuple[str, int, bool]] = []
    while pos < n:
        m = _TABLE_TOKEN.match(body, pos)
        if m is None:
            break
        paren, label, value, unusable = m.groups()
        if bool(paren) != bool(unusable):
            return None
        out.append((label.strip(), int(value, 16), bool(unusable)))
        pos = m.end()
    if not out or body[pos:].strip():
        return None
    return out


# --------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------


class _Boot:
    """Mutable state of the boot being read."""

    def __init__(self, first_line: int | None) -> None:
        self.first_line = first_line
        self.kernel_lines = 0
        self.used = 0
        self.linux_used = 0
        self.linux_started = False
        self.xen_started = False
        self.last_ts = 0.0
        self.kernel_version: str | None = None
        self.command_line: str | None = None
        self.kcommand_line: str | None = None
        self.efi_version: str | None = None
        self.efi_vendor: str | None = None
        self.tables: list[LoggedTable] = []
        self.memory_map: list[LoggedDescriptor] = []
        self.map_done = False
        self.runtime_mode = False
        self.runtime_map: list[LoggedDescriptor] = []
        self.runtime_done = False
        self.e820: list[E820Entry] = []
        self.e820_source: str | None = None
        self.e820_updates: list[E820Update] = []
        self.esrt: list[EsrtMessage] = []
        self.esrt_reserved: tuple[int, int] | None = None
        self.dmi: str | None = None
        # Xen, from the dom0 kernel
        self.on_xen_pv = False
        self.dom0_marker = False
        self.domu_marker = False
        self.acpi_rsdp = False
        self.dom0_xen_version: str | None = None
        # Xen, from (XEN) lines
        self.xen_lines = 0
        self.xen_version: str | None = None
        self.xen_loader: str | None = None
        self.xen_cmdline: str | None = None
        self.xen_map_mode: str | None = None  # "final" | "initial" | "efi"
        self.xen_e820: list[E820Entry] = []
        self.xen_e820_initial: list[E820Entry] = []
        self.xen_efi: list[LoggedDescriptor] = []
        self.xen_efi_done = False
        # lines that did not parse, what was cut at a cap, repeats dropped
        self.unparsed: list[UnparsedLine] = []
        self.unparsed_more = 0
        self.dropped: dict[str, int] = {}
        self.seen: set[tuple[float, int]] = set()  # (timestamp, hash of the message)
        self.table_heads: set[str] = set()

    def drop(self, what: str) -> None:
        self.dropped[what] = self.dropped.get(what, 0) + 1

    def keep(self) -> bool:
        return self.used > 0 or self.kernel_lines > 0

    def freeze(self) -> BootLog:
        xen: XenInfo | None = None
        if self.xen_lines or self.on_xen_pv or self.dom0_xen_version:
            xen = XenInfo(
                version=self.xen_version or self.dom0_xen_version,
                boot_loader=self.xen_loader,
                efi_memory_map=tuple(self.xen_efi),
                e820=tuple(self.xen_e820 or self.xen_e820_initial),
                lines=self.xen_lines,
                command_line=self.xen_cmdline,
            )
        efi_seen = bool(self.efi_version or self.tables)
        # A PV domain is dom0 when something only the initial domain prints is there
        # (Linux arch/x86/xen/enlighten_pv.c xen_arch_setup prints the domU line).
        dom0 = (
            self.on_xen_pv
            and not self.domu_marker
            and (self.dom0_marker or efi_seen or self.acpi_rsdp or self.xen_lines > 0)
        )
        return BootLog(
            first_line=self.first_line or 1,
            kernel_version=self.kernel_version,
            efi_version=self.efi_version,
            efi_vendor=self.efi_vendor,
            config_tables=tuple(self.tables),
            memory_map=tuple(self.memory_map),
            runtime_map=tuple(self.runtime_map),
            e820=tuple(self.e820),
            e820_updates=tuple(self.e820_updates),
            esrt_messages=tuple(self.esrt),
            esrt_reserved=self.esrt_reserved,
            xen=xen,
            is_xen_dom0=dom0,
            dmi=self.dmi,
            dom0_unusable=tuple(t.label for t in self.tables if t.unusable),
            command_line=self.command_line or self.kcommand_line,
            e820_source=self.e820_source,
            unparsed=tuple(self.unparsed),
            unparsed_more=self.unparsed_more,
            cut=tuple(
                f"{what}: {n} more printed than the cap of {globals()[_CAPS[what]]} kept"
                for what, n in self.dropped.items()
            ),
        )


_CAPS = {  # what was cut -> the name of its cap
    "EFI memory map": "MAX_DESCRIPTORS",
    "EFI runtime memory map": "MAX_DESCRIPTORS",
    "Xen's EFI memory map": "MAX_DESCRIPTORS",
    "E820 table": "MAX_E820",
    "Xen's E820 table": "MAX_E820",
    "config tables": "MAX_TABLES",
    "esrt messages": "MAX_ESRT_MESSAGES",
    "e820 updates": "MAX_UPDATES",
}


@dataclass(slots=True)
class _Pending:
    """A line that may continue on the next (hard-wrapped) line: ``text`` is what it says so
    far (a trailing quoted-printable soft break "=" removed, ``qp`` set); ``done`` when it
    already parsed (a config-table line whose tail may follow)."""

    kind: str
    ln: int
    text: str
    done: bool
    qp: bool = False
    joins: int = 0
    taken: int = 0  # config-table tokens already recorded
    dup: bool = False  # a config-table line already read in this boot: its tail is not added
    field: str = ""  # kind "field": the _Boot attribute the value goes to


# What each pending kind looked like, for UnparsedLine.what.
_WHAT = {
    "tables": "efi config-table line",
    "memmap": "efi memory map",
    "arm-map": "efi memory map",
    "e820": "e820",
    "e820-update": "e820",
    "esrt": "esrt",
    "efi-body": "efi line",
    "esrt-body": "esrt",
    "field": "text",
    "xen-efi": "xen map",
    "xen-e820": "xen map",
}
# A continuation line: what a wrapped config-table, map, e820 or esrt line carries (no ':').
_CONT = re.compile(r"[\w |\[\]()\-=.,*/;+>]{1,4096}")


class _Reader:
    def __init__(self) -> None:
        self.boots: list[BootLog] = []
        self.boots_dropped = 0
        self.cur = _Boot(None)
        self.lines_read = 0
        self.lines_used = 0
        self.kernel_lines = 0
        self.pending: _Pending | None = None
        # efi_md_typeattr_format brackets repeat within a log; this reader's own memo
        self._typeattrs: dict[str, tuple[int, int | None] | None] = {}

    # -- boots ------------------------------------------------------------------------------

    def _keep_boot(self) -> None:
        if self.cur.keep():
            if len(self.boots) < MAX_BOOTS:
                self.boots.append(self.cur.freeze())
            else:
                self.boots_dropped += 1

    def _new_boot(self, ln: int) -> _Boot:
        self._resolve()
        self._keep_boot()
        self.cur = _Boot(ln)
        return self.cur

    def finish(self) -> tuple[BootLog, ...]:
        self._resolve()
        self._keep_boot()
        self.cur = _Boot(None)
        return tuple(self.boots)

    # -- one line ---------------------------------------------------------------------------

    def feed(self, ln: int, raw: str) -> None:
        self.lines_read += 1
        text = _clean(raw)
        if not text:
            return
        p = self.pending
        # after a quoted-printable soft break the next line is text, not mail quoting
        # ("usable =3D=3D=" / "> reserved")
        if (
            p is not None
            and p.qp
            and text[:1] == ">"
            and self._continue(p, text.replace("=3D", "="))
        ):
            return
        head = text.lstrip(" >")
        if head.startswith("-- Boot ") or head.startswith("-- Reboot --"):
            # journalctl between boots
            if self.cur.keep() or self.cur.linux_started or self.cur.xen_started:
                self._new_boot(ln + 1)
            return
        if head.startswith("{") and '"MESSAGE"' in head:
            split = _journal_json(head)
        else:
            split = _strip(text)
        if split is None:
            return
        # a blank that starts a line after a quoted-printable soft break is part of the text
        self.message(ln, *split, lead=text[:1] == " ")

    def message(
        self, ln: int, msg: str, ts: float | None, is_xen: bool, kernel: bool, lead: bool = False
    ) -> None:
        """The rest of :meth:`feed` once the line's prefixes are off (``lead``: the raw line
        started with a blank)."""
        if "=3D" in msg:  # a quoted-printable mail archive (RFC 2045): '=' and a trailing blank
            msg = msg.replace("=3D", "=")
            if msg.endswith("=20"):
                msg = msg[:-3] + " "
        if msg.endswith("`"):
            msg = msg.rstrip("`")  # the end of a markdown inline-code paste
        p = self.pending
        if p is not None:
            if not kernel and not is_xen and ts is None and self._continue(p, msg, lead):
                return
            self._resolve()
        if not is_xen:
            if not kernel:
                body = _recognise(msg)
                if body is not None:
                    msg, kernel = body, True
            elif msg.startswith("kernel"):
                m = _KERNEL_TAG.match(msg)
                if m is not None:
                    msg = msg[m.end() :]
        b = self.cur
        if is_xen:
            used = self._xen(b, msg, ln)
            b = self.cur
            b.xen_lines += 1
        else:
            key: tuple[float, int] | None = None
            if ts is not None:
                b = self._timestamp(b, ln, ts)
                key = (ts, hash(msg))  # a hash: memory does not grow with line length
            # the same line at the same time again is a paste repeated
            used = False if key is not None and key in b.seen else self._linux(b, msg, ln)
            b = self.cur
            if used:
                b.linux_used += 1
                if key is not None and len(b.seen) < _SEEN_CAP:
                    b.seen.add(key)
            if used or kernel:
                b.linux_started = True
        if kernel:
            b.kernel_lines += 1
            self.kernel_lines += 1
            if b.first_line is None:
                b.first_line = ln
        if used:
            b.used += 1
            self.lines_used += 1
            if b.first_line is None:
                b.first_line = ln

    # -- wrapped lines ----------------------------------------------------------------------

    def _hold(self, kind: str, ln: int, text: str, done: bool = False, taken: int = 0) -> None:
        """Keep a line that may continue on the next one."""
        qp = text.endswith("=")  # a quoted-printable soft line break (or a wrap after '=')
        self.pending = _Pending(kind, ln, text[:-1] if qp else text, done, qp, 0, taken)

    def _hold_field(self, name: str, ln: int, value: str) -> None:
        """A value cut by a quoted-printable soft break ("BIOS N32ET75W (1.51 ) 12/=" /
        "02/2021") takes the next line; without one it stands as printed."""
        if value.endswith("=") and not value.endswith("=="):
            self._hold("field", ln, value, done=True)
            if self.pending is not None:
                self.pending.field = name
                setattr(self.cur, name, value[:-1])

    def _continue(self, p: _Pending, msg: str, lead: bool = False) -> bool:
        """Join a prefix-less line to the held one when it is plainly its continuation."""
        cont = msg.strip()
        if p.joins >= MAX_JOINS or len(p.text) + len(cont) > MAX_LINE:
            return False
        if p.kind == "field":
            if not cont or p.joins:
                return False
            setattr(self.cur, p.field, p.text + (" " if lead else "") + cont)
            p.joins = 1
            return True
        if not cont:
            if not (p.qp and lead):
                return False
            tries = [p.text]  # a soft break then only the blank it kept ("=20" undone)
        elif _CONT.fullmatch(cont) is None:
            return False
        elif not p.text:  # "efi: " / "esrt: " alone: the message is on the next line
            tries = [cont]
        elif p.qp:  # a soft line break, or a wrap right after a real '='
            tries = [p.text + (" " if lead else "") + cont, p.text + "=" + cont]
        else:  # a wrap at a blank (the usual), or inside a token
            tries = [p.text.rstrip() + " " + cont, p.text + cont]
        for joined in tries:
            if self._try(p, joined):
                self.cur.used += 1
                self.lines_used += 1
                return True
        if p.done:
            return False  # a complete line followed by something else
        text = tries[0]
        p.qp = text.endswith("=")
        p.text = text[:-1] if p.qp else text
        p.joins += 1
        return True

    def _try(self, p: _Pending, text: str) -> bool:
        """Read the held line's joined text; True when it parsed (and went into the boot)."""
        b = self.cur
        kind = p.kind
        if kind == "tables":
            tokens = _scan_tables(text)
            if tokens is None or len(tokens) <= p.taken:
                return False
            if not p.dup and p.taken and len(b.tables) >= p.taken:
                # a wrap inside the last token ("ACPI=0x48" / "ff6000 ..."): its full value
                first = len(b.tables) - p.taken
                for i, (label, addr, unusable) in enumerate(tokens[: p.taken]):
                    t = b.tables[first + i]
                    if (t.label, t.address, t.unusable) != (label, addr, unusable):
                        b.tables[first + i] = LoggedTable(label, addr, unusable, t.line)
            if not p.dup:
                self._add_tables(b, tokens[p.taken :], p.ln)
            p.text, p.taken, p.done, p.qp = text, len(tokens), True, False
            p.joins += 1
            return True  # stays held: its tail may follow too
        self.pending = None
        if kind in ("efi-body", "esrt-body"):
            read = self._efi if kind == "efi-body" else self._esrt
            if read(b, text, p.ln) or self.pending is not None:
                return True
            self.pending = p
            return False
        done: bool | None = None
        if kind == "memmap":
            done = self._memmap(b, text, p.ln)
        elif kind == "arm-map":
            done = self._arm_map(b, text, p.ln)
        elif kind == "e820":
            m = _E820.match(text)
            if m is not None and _e820_kind(m[5])[1] is not None:
                done = self._e820(b, m, p.ln)
        elif kind == "e820-update":
            m = _E820_CHANGE.match(text)
            if m is not None and (
                m[1] == "remove"
                or ("==>" in m[4] and _e820_kind(m[4].split("==>", 1)[1])[1] is not None)
            ):
                done = self._e820_change(b, text, p.ln)
        elif kind == "esrt":
            m = _ESRT_PATTERNS[0][1].match(text)
            if m is not None:
                self._esrt_record(b, "reserving", text, p.ln, _read_values(m.groups(), "xx"))
                done = True
        elif kind == "xen-efi":
            done = self._xen_efi_desc(b, text, p.ln)
        elif kind == "xen-e820":
            done = self._xen_e820_entry(b, text, p.ln, strict=True)
        if done is None:
            self.pending = p
            return False
        return True

    def _resolve(self) -> None:
        """The held line is complete: record it as unparsed unless it parsed."""
        p = self.pending
        if p is None:
            return
        self.pending = None
        if p.done or not p.text.strip():  # nothing was said ("efi: " alone, a blank line)
            return
        b = self.cur
        # What a line with an unknown type word says is kept (the word as printed), and the
        # line is recorded too.
        if p.kind == "e820":
            m = _E820.match(p.text)
            if m is not None:
                self._e820(b, m, p.ln)
        elif p.kind == "xen-e820":
            self._xen_e820_entry(b, p.text, p.ln, strict=False)
        elif p.kind == "e820-update":
            self._e820_change(b, p.text, p.ln, strict=False)
        self._unparsed(b, p.ln, p.text, _WHAT[p.kind])

    @staticmethod
    def _unparsed(b: _Boot, ln: int, text: str, what: str) -> None:
        if len(b.unparsed) < MAX_UNPARSED:
            b.unparsed.append(UnparsedLine(ln, text[:UNPARSED_TEXT], what))
        else:
            b.unparsed_more += 1

    def _typeattr(self, inner: str) -> tuple[int, int | None] | None:
        memo = self._typeattrs
        if inner not in memo:
            if len(memo) > 4096:
                memo.clear()
            memo[inner] = _typeattr(inner)
        return memo[inner]

    def _timestamp(self, b: _Boot, ln: int, ts: float) -> _Boot:
        # Linux timestamps restart at zero on a new boot.
        if b.linux_started and (ts + 1.0 < b.last_ts or (ts == 0.0 and b.last_ts > 0.0)):
            b = self._new_boot(ln)
        b.last_ts = ts
        return b

    def plain(self, ln: int, ts: float | None) -> None:
        """What :meth:`feed` does with a kernel line whose message nothing reads: line
        ``ln`` had a kernel prefix (with timestamp ``ts``) and a message ``_linux`` ignores."""
        self.lines_read += 1
        self._resolve()
        b = self.cur
        if ts is not None:
            b = self._timestamp(b, ln, ts)
        b.linux_started = True
        b.kernel_lines += 1
        self.kernel_lines += 1
        if b.first_line is None:
            b.first_line = ln

    def plain_run(self, lines: int, kernel: int, last_ts: float | None) -> None:
        """:meth:`plain` for ``lines`` lines of which ``kernel`` were kernel lines (the rest
        other programs' syslog lines), their timestamps never falling: callers check that and
        that the boot has started."""
        self.lines_read += lines
        if kernel:
            b = self.cur
            if last_ts is not None:
                b.last_ts = last_ts
            b.kernel_lines += kernel
            self.kernel_lines += kernel

    # -- Linux ------------------------------------------------------------------------------

    def _linux(self, b: _Boot, msg: str, ln: int) -> bool:
        c = msg[:1]
        if c not in _LINUX_FIRST:
            return False
        if c in "AMSUHE" and _OLD_TABLES.match(msg):
            # Linux before 3.14 (x86 arch/x86/platform/efi/efi.c efi_init, ia64, the Xen
            # pvops dom0): printk(KERN_INFO) then " NAME=0x%lx " per table, no "efi: ".
            return self._tables(b, msg, ln)
        if c == "E":
            # Linux before the "efi: " pr_fmt (2.6.x-3.x x86 efi.c): "EFI v2.00 by X",
            # "EFI: mem00: type=..." (print_efi_memmap).
            if msg.startswith("EFI v"):
                return self._efi(b, msg, ln)
            if msg.startswith("EFI: mem"):
                return self._memmap_line(b, msg[5:].strip(), ln)
            return False
        if c == "e":
            if msg.startswith("efi:"):
                return self._efi(b, msg[4:].strip(), ln)
            if msg.startswith("esrt:"):
                return self._esrt(b, msg[5:].strip(), ln)
            if msg.startswith("e820: "):
                return self._e820_change(b, msg[6:], ln)
            return False
        if c == "B":
            if msg.startswith("BIOS-"):
                return self._e820_line(b, msg, ln)
            # xen_banner: "on Xen" for a PV domain; "Xen HVM"/"Xen PVH" are other modes.
            if msg.startswith("Booting paravirtualized kernel on ") and msg[34:].strip() == "Xen":
                b.on_xen_pv = True
                return True
            return False
        if c == "m":
            return self._memmap_line(b, msg.strip(), ln)  # kernels without the "efi: " pr_fmt
        if c == "L":
            if msg.startswith("Linux version "):
                if b.kernel_version is not None or b.linux_used > 0:
                    b = self._new_boot(ln)
                b.kernel_version = msg[14:].split(" ", 1)[0] or None
                return True
            return False
        if c == "C":
            if msg.startswith("Command line: "):
                if b.command_line is not None:
                    b = self._new_boot(ln)
                b.command_line = msg[14:].strip()
                self._hold_field("command_line", ln, b.command_line)
                return True
            return False
        if c == "K":
            if msg.startswith("Kernel command line: "):
                if b.kcommand_line is not None:
                    b = self._new_boot(ln)
                b.kcommand_line = msg[21:].strip()
                self._hold_field("kcommand_line", ln, b.kcommand_line)
                return True
            return False
        if c == "D":
            if msg.startswith("DMI: "):
                rest = msg[5:].strip()
                if b.dmi is None and rest and not rest.startswith("Memory slots"):
                    b.dmi = rest
                    self._hold_field("dmi", ln, rest)
                    return True
            return False
        if c == "X":
            return self._dom0_xen(b, msg, ln) if msg.startswith("Xen") else False
        if c == "H":
            if msg.startswith("Hypervisor detected: Xen PV"):
                b.on_xen_pv = True
                return True
            return False
        if c == "A":
            if msg.startswith("ACPI in unprivileged domain disabled"):
                b.domu_marker = True
                return True
            if msg.startswith("ACPI: RSDP "):
                b.acpi_rsdp = True
            return False
        if msg.startswith("xen_mcelog: "):
            b.dom0_marker = True
            return True
        return False

    def _dom0_xen(self, b: _Boot, msg: str, ln: int) -> bool:
        if msg.startswith("Xen version: "):
            m = _DOM0_XEN_VERSION.match(msg)
            if m:
                b.dom0_xen_version = m[1]
                if "(dom0)" in m[2]:
                    b.dom0_marker = True
                return True
            return False
        if msg.startswith("Xen: [") or msg.rstrip() == "Xen:":
            return self._e820_line(b, msg, ln)
        return False

    def _efi(self, b: _Boot, body: str, ln: int) -> bool:
        if not body:
            self._hold("efi-body", ln, "")  # "efi: " and the rest wrapped
            return False
        if body.startswith("EFI v"):
            m = _EFI_VERSION.match(body)
            if m and b.efi_version is None:
                b.efi_version = m[1]
                b.efi_vendor = m[2].strip() or None
                self._hold_field("efi_vendor", ln, b.efi_vendor or "")
                return True
            return False
        if body.startswith("mem"):
            return self._memmap_line(b, body, ln)
        if body.startswith("0x"):
            done = self._arm_map(b, body, ln)
            if done is None:
                self._hold("arm-map", ln, body)
                return False
            return done
        if body == "EFI runtime memory map:":
            b.runtime_mode = True
            b.map_done = True
            return True
        if body == "Processing EFI memory map:":
            if b.memory_map:
                b.map_done = True
            return True
        if "=" in body and _TABLEISH.match(body):
            return self._tables(b, body, ln)
        return False

    def _tables(self, b: _Boot, body: str, ln: int) -> bool:
        """A config-table line (held: a mail client may have wrapped its tail)."""
        tokens = _scan_tables(body)
        if tokens is None or body.endswith("="):  # a soft line break: the last token goes on
            self._hold("tables", ln, body)
            return False
        # Linux prints the line once per boot (efi_config_parse_tables): the same line again
        # in one boot, with or without a timestamp, is a paste repeated; so is its tail.
        dup = body in b.table_heads
        if not dup:
            if len(b.table_heads) < 64:
                b.table_heads.add(body)
            self._add_tables(b, tokens, ln)
        self._hold("tables", ln, body, done=True, taken=len(tokens))
        if dup and self.pending is not None:
            self.pending.dup = True
        return True

    @staticmethod
    def _add_tables(b: _Boot, tokens: list[tuple[str, int, bool]], ln: int) -> None:
        for label, addr, unusable in tokens:
            if len(b.tables) < MAX_TABLES:
                b.tables.append(LoggedTable(label, addr, unusable, ln))
            else:
                b.drop("config tables")

    def _memmap_line(self, b: _Boot, body: str, ln: int) -> bool:
        done = self._memmap(b, body, ln)
        if done is None:
            if _MEM_START.match(body):
                self._hold("memmap", ln, body)
            return False
        return done

    def _arm_map(self, b: _Boot, body: str, ln: int) -> bool | None:
        """An arm64 ``reserve_regions`` line: None when it does not parse, else whether it
        went into the map."""
        m = _ARM_MAP.match(body)
        if m is None:
            return None
        ta = self._typeattr(m[3])
        start, last = int(m[1], 16), int(m[2], 16)
        if ta is None or last < start:
            return None
        desc = LoggedDescriptor(ta[0], start, (last + 1 - start) >> PAGE_SHIFT, ta[1], ln)
        return self._add_desc(b, None, desc)

    def _memmap(self, b: _Boot, body: str, ln: int) -> bool | None:
        """An x86 ``efi_print_memmap`` line: None when it does not parse, else whether it went
        into the map."""
        m = _MEM_NEW.match(body)
        if m:
            ta = self._typeattr(m[2])
            start, last = int(m[3], 16), int(m[4], 16)
            if ta is None or last < start:
                return None
            pages = (last + 1 - start) >> PAGE_SHIFT
            return self._add_desc(b, int(m[1]), LoggedDescriptor(ta[0], start, pages, ta[1], ln))
        m = _MEM_OLD.match(body)
        if m:
            start, end = int(m[4], 16), int(m[5], 16)
            if end < start:
                return None
            desc = LoggedDescriptor(
                int(m[2]), start, (end - start) >> PAGE_SHIFT, int(m[3], 16) & _U64, ln
            )
            return self._add_desc(b, int(m[1]), desc)
        return None

    @staticmethod
    def _add_desc(b: _Boot, index: int | None, desc: LoggedDescriptor) -> bool:
        """First printed map only; a map restarting at mem00 is a later print."""
        if b.runtime_mode:
            if b.runtime_done:
                return False
            if index == 0 and b.runtime_map:
                b.runtime_done = True
                return False
            if len(b.runtime_map) >= MAX_DESCRIPTORS:
                b.drop("EFI runtime memory map")
                return False
            b.runtime_map.append(desc)
            return True
        if b.map_done:
            return False
        if index == 0 and b.memory_map:
            b.map_done = True
            return False
        if len(b.memory_map) >= MAX_DESCRIPTORS:
            b.drop("EFI memory map")
            return False
        b.memory_map.append(desc)
        return True

    def _esrt(self, b: _Boot, body: str, ln: int) -> bool:
        if not body:
            self._hold("esrt-body", ln, "")
            return False
        if body.endswith("=") and not body.endswith("=="):
            self._hold("esrt-body", ln, body)  # a quoted-printable soft break: read it whole
            return False
        for kind, pattern, how in _ESRT_PATTERNS:
            m = pattern.match(body)
            if m:
                self._esrt_record(b, kind, body, ln, _read_values(m.groups(), how))
                return True
        if body.startswith("Reserving") and (
            body.startswith(_RESERVING) or _RESERVING.startswith(body)
        ):
            # the end address (or more) on the next, mail-wrapped line
            self._hold("esrt", ln, body)
            return False
        self._esrt_record(b, "other", body, ln, ())
        return True

    @staticmethod
    def _esrt_record(b: _Boot, kind: str, text: str, ln: int, values: tuple[int, ...]) -> None:
        if len(b.esrt) >= MAX_ESRT_MESSAGES:
            b.drop("esrt messages")
            return
        b.esrt.append(EsrtMessage(kind, text, ln, values))
        if kind == "reserving" and b.esrt_reserved is None and len(values) == 2:
            start, end = values
            if end >= start:
                b.esrt_reserved = (start, end - start)

    def _e820(self, b: _Boot, m: re.Match[str], ln: int) -> bool:
        who, what, start, last, rest = m[1], m[2], int(m[3], 16), int(m[4], 16), m[5]
        if what != "mem" or last < start:
            return False
        if who not in ("BIOS-e820", "Xen"):
            return False  # "modified", "reserve setup_data", "user": later tables
        if b.e820_source is not None and b.e820_source != who:
            return False
        kind, code = _e820_kind(rest)
        b.e820_source = who
        if len(b.e820) >= MAX_E820:
            b.drop("E820 table")
            return False
        b.e820.append(E820Entry(start, last + 1, kind, code, ln))
        if who == "Xen":
            b.on_xen_pv = True
        return True

    def _e820_line(self, b: _Boot, msg: str, ln: int) -> bool:
        """``BIOS-e820: [mem a-b] kind`` (``Xen: ...`` in a PV dom0); a line cut before its
        end or its type word is held for a wrapped continuation."""
        m = _E820.match(msg)
        if m is None:
            rest = msg.split(":", 1)[1].strip() if ":" in msg else ""
            if msg.startswith("BIOS-e820:") or (msg.startswith("Xen:") and rest[:1] in ("", "[")):
                self._hold("e820", ln, msg)
            return False
        if m[2] == "mem" and m[1] in ("BIOS-e820", "Xen") and _e820_kind(m[5])[1] is None:
            self._hold("e820", ln, msg)  # an unknown type word: the rest may be wrapped
            return False
        return self._e820(b, m, ln)

    def _e820_change(self, b: _Boot, body: str, ln: int, strict: bool = True) -> bool:
        m = _E820_CHANGE.match(body)
        if m is None:
            if strict and body.split("[", 1)[0].strip() in ("update", "remove"):
                self._hold("e820-update", ln, body)  # cut before its end
            return False
        op, start, last, rest = m[1], int(m[2], 16), int(m[3], 16), m[4].strip()
        if last < start:
            return False
        old: str | None
        new: str | None = None
        if op == "update":
            if strict and ("==>" not in rest or _e820_kind(rest.split("==>", 1)[1])[1] is None):
                # "usable ==> rese" / "rved": the new type wrapped (or cut)
                self._hold("e820-update", ln, body)
                return False
            if "==>" not in rest:
                return False
            left, right = rest.split("==>", 1)
            old = _e820_kind(left)[0]
            new = _e820_kind(right)[0]
        else:
            old = _e820_kind(rest)[0] if rest else None
        if len(b.e820_updates) >= MAX_UPDATES:
            b.drop("e820 updates")
            return False
        b.e820_updates.append(E820Update(op, start, last + 1, old, new, ln))
        return True

    # -- Xen console ------------------------------------------------------------------------

    def _xen(self, b: _Boot, msg: str, ln: int) -> bool:
        body = msg.strip()
        if body.startswith("Xen version "):
            m = _XEN_VERSION.match(body)
            if m is None:
                return False
            if b.xen_started or b.linux_started:
                b = self._new_boot(ln)
            b.xen_version = m[1]
            b.xen_started = True
            b.xen_map_mode = None
            return True
        if body.startswith("Bootloader: "):
            b.xen_loader = body[12:].strip() or None
            b.xen_started = True
            return True
        if body.startswith("Command line: "):
            b.xen_cmdline = body[14:].strip()
            b.xen_started = True
            return True
        if body.endswith("RAM map:"):
            m = _XEN_RAM_MAP.match(body)
            if m is None:
                return False
            if m[1]:
                b.xen_map_mode = "initial"
                b.xen_e820_initial = []
            else:
                b.xen_map_mode = "final"
                b.xen_e820 = []
            b.xen_started = True
            return True
        if body.startswith("EFI memory map:"):
            if b.xen_efi:
                b.xen_efi_done = True
            b.xen_map_mode = "efi"
            b.xen_started = True
            return True
        mode = b.xen_map_mode
        if not body and mode is not None:
            # "(XEN) " alone inside a map: a blank line, or one wrapped right after the prefix
            self._hold("xen-efi" if mode == "efi" else "xen-e820", ln, "")
            return False
        if mode == "efi":
            done = self._xen_efi_desc(b, msg, ln)
            if done is not None:
                return done
            if _XEN_EFI_START.match(msg):
                self._hold("xen-efi", ln, msg)  # the rest may be on a wrapped line
                return False
        elif mode in ("final", "initial"):
            done = self._xen_e820_entry(b, msg, ln, strict=True)
            if done is not None:
                return done
            if _XEN_E820_START.match(msg):
                self._hold("xen-e820", ln, msg)
                return False
        b.xen_map_mode = None
        return False

    @staticmethod
    def _xen_efi_desc(b: _Boot, text: str, ln: int) -> bool | None:
        """One line of Xen's ``EFI memory map:``: None unless it parses."""
        m = _XEN_EFI_DESC.match(text)
        if m is None:
            return None
        start, last = int(m[1], 16), int(m[2], 16)
        if last < start:
            return None
        if b.xen_efi_done:
            return False
        if len(b.xen_efi) >= MAX_DESCRIPTORS:
            b.drop("Xen's EFI memory map")
            return False
        pages = (last + 1 - start) >> PAGE_SHIFT
        b.xen_efi.append(LoggedDescriptor(int(m[3]), start, pages, int(m[4], 16) & _U64, ln))
        return True

    @staticmethod
    def _xen_e820_entry(b: _Boot, text: str, ln: int, strict: bool) -> bool | None:
        """One line of Xen's ``... RAM map:``: None unless it parses (``strict``: with a type
        word Xen prints)."""
        m = _XEN_E820_NEW.match(text)
        if m:
            start, end = int(m[1], 16), int(m[2], 16) + 1  # inclusive end
        else:
            m = _XEN_E820_OLD.match(text)
            if m is None:
                return None
            start, end = int(m[1], 16), int(m[2], 16)  # exclusive end
        if end <= start:
            return None
        kind, code = _xen_e820_kind(m[3])
        if strict and code is None:
            return None
        target = b.xen_e820 if b.xen_map_mode == "final" else b.xen_e820_initial
        if len(target) >= MAX_E820:
            b.drop("Xen's E820 table")
            return False
        target.append(E820Entry(start, end, kind, code, ln))
        return True


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def _iter_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The lines of a binary stream, read in fixed-size blocks; a line is yielded with at most
    2 x MAX_LINE bytes (the reader keeps MAX_LINE), so memory does not depend on line length."""
    carry = b""  # the start of a line that continues in the next block, at most MAX_LINE bytes
    read = getattr(stream, "read1", stream.read)  # read1: a truncated .gz yields what it has
    while True:
        block = read(_BLOCK)
        if not block:
            break
        pieces = block.split(b"\n")
        for piece in pieces[:-1]:
            if carry:
                piece = carry + piece[:MAX_LINE]
                carry = b""
            yield piece
        tail = pieces[-1]
        if len(pieces) > 1:
            carry = tail[:MAX_LINE]
        elif len(carry) < MAX_LINE:
            carry = (carry + tail[:MAX_LINE])[:MAX_LINE]
    if carry:
        yield carry


def _run(reader: _Reader, stream: IO[bytes], name: str) -> None:
    ln = 0
    try:
        for raw in _iter_lines(stream):
            ln += 1
            reader.feed(ln, raw[:MAX_LINE].decode("utf-8", "replace").rstrip("\r"))
    except EOFError:
        return  # a truncated .gz: keep what was read
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise ParseError(
            f"{name}: corrupt gzip data: {exc}", line=ln + 1, what="kernel log"
        ) from None


# --------------------------------------------------------------------------------------------
# Fast path. Most lines of a real log are chatter nothing above reads. For the prefix forms
# below, one compiled byte pattern per capture style takes a line's prefixes exactly as
# _split_prefix would: a run of lines whose messages start with nothing _Reader._linux reads
# only counts kernel lines and moves the timestamp, so it is accounted for in bulk when the
# timestamps never fall; a line whose message may matter goes to _Reader.message with its
# prefixes already off; anything else (controls, other prefixes, Xen lines, a pending wrapped
# "Reserving" line) goes through _Reader.feed. The result is the same as line by line.
# --------------------------------------------------------------------------------------------

_FAST_BLOCK = 1 << 20  # bytes read before the lines in them are looked at
_SPAN = 8192  # bytes tried in bulk at once
# _TS with six decimals and no leading zero, so equal-width fields sort like their numbers.
_F_TS = rb"\[( {0,12}(?:0|[1-9][0-9]{0,9})\.[0-9]{6})\] ?"
_F_LEVEL = rb"(?:<[0-9]{1,3}>)?"  # _LEVEL
_F_CALLER = rb"(?:\[ {0,12}[TC][0-9]{1,10}\] ?)?"  # _CALLER
# Spaces the str patterns take greedily are taken possessively (``{1,4}+``), so no alternative
# below can match by giving some back.
_F_MONTH = (  # _SYSLOG
    rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}"
    rb"(?:\.[0-9]{1,9})? {1,4}+"
)
_F_ISO = (  # _ISO
    rb"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]{1,9})?"
    rb"(?:Z|[+-][0-9]{2}:?[0-9]{2})? {1,4}+"
)
_F_HOST = rb"[!-9;-Z\\^-~]{1,253} {1,4}"  # _HOST_TAG's host, printable ASCII only
_F_PID = rb"(?:\[[0-9]{1,10}\])?: ?"
_F_HUMAN = (  # _HUMAN's dmesg -T form
    rb"\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}"
    rb" [0-9]{4}\] ?"
)
# A host and tag _HOST_TAG could read as "kernel" (wider than it is).
_F_ANY_KERNEL = (
    rb"(?:[^\s:\[\]]{1,1012} {1,4}(?:[^\s:\[\]]{1,64} {1,4})?)?kernel(?:\[[^\]\n]{0,40}\])?:"
)
# _HOST_KERNEL (wider): a word, spaces, "kernel", maybe a pid, a colon.
_F_NOT_WORD_KERNEL = rb"(?![^\s:\[\]]{1,1012} {1,4}kernel(?:\[[^\]\n]{0,40}\])?:)"
# Nothing _MIDLINE could find further on: "(XEN)", a timestamp, brackets holding non-ASCII
# (digits of other scripts are digits to it).
_F_NO_MIDLINE = (
    rb"(?![^\n]*(?:\(XEN\)|\[ {0,12}(?:[0-9]{1,10}\.[0-9]{6}\]|[^\]\n]{0,80}[\x80-\xff])))"
)
# Where _split_prefix stops: an ASCII first character that is not a space, a digit, '[', '<'
# or '(', and no syslog month, dmesg -x facility or "host kernel:" (wider than the real ones).
_F_STOP = (
    rb"(?=[!-')-/:;=-Z\\-~])"
    rb"(?!(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    rb"|(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7]) {0,8}:)"
    + _F_NOT_WORD_KERNEL
)
# ...and nothing _Reader._linux reads: keep in step with it.
_F_IGNORED = (
    rb"(?!e(?:fi:|srt:|820: )|B(?:IOS-|ooting paravirtualized)|mem|Linux version |Command line: "
    rb"|Kernel command line: |DMI: |Xen|Hypervisor detected: Xen PV"
    rb"|ACPI in unprivileged domain disabled|ACPI: RSDP |xen_mcelog: |EFI(?: v|: mem)|kernel"
    rb"|(?:MPS|ACPI 2\.0|ACPI|SMBIOS 3\.0|SMBIOS|UVsystab|HCDP|UGA|SALsystab|ESRT)=)"
)


@dataclass(frozen=True)
class _Style:
    """One capture style. ``bulk`` takes a line whose message nothing reads (``quick`` too,
    when no message starts with a word and "kernel"), ``parse`` any line whose prefixes end
    where _split_prefix ends them; each starts at the newline before the line and has one
    group: the timestamp field ("ts"), that or b"" for another program's line ("ts|other"),
    b"kernel" or b"" ("k|other"), or b"" for a kernel line ("k"). Another program's line reads
    as nothing after a syslog date; after an ISO date, as a message without kernel prefix
    (``other_msg``). ``prefixed``: the kernel prefix itself holds " kernel"."""

    mode: str
    bulk: re.Pattern[bytes]
    quick: re.Pattern[bytes]
    parse: re.Pattern[bytes]
    prefixed: bool
    other_msg: bool


def _style(mode: str, head: bytes, rest: bytes, other: str | None = None) -> _Style:
    not_kernel = rb"(?!" + _F_ANY_KERNEL + rb")"

    def build(msg: bytes, other_msg: bytes) -> re.Pattern[bytes]:
        if other == "syslog":  # _HOST_TAG's tag is not "kernel": _split_prefix returns None
            return re.compile(head + rb"(?:" + rest + msg + rb"|" + not_kernel + rb")")
        if other == "iso":  # ... the loop goes on at the host, and _strip looks mid-line
            alt = not_kernel + other_msg + _F_NO_MIDLINE
            return re.compile(head + rb"(?:" + rest + msg + rb"|" + alt + rb")")
        return re.compile(head + rest + msg)

    quick = _F_STOP.replace(_F_NOT_WORD_KERNEL, b"")
    return _Style(
        mode,
        build(_F_STOP + _F_IGNORED, _F_STOP + _F_IGNORED),
        build(quick + _F_IGNORED, _F_STOP + _F_IGNORED),
        build(_F_STOP, _F_STOP),
        b"kernel" in rest,
        other == "iso",
    )


_HOST_K = _F_HOST + rb"kernel" + _F_PID
_STYLES: tuple[_Style, ...] = (
    _style("ts", rb"\n", _F_TS),  # dmesg
    _style("ts", rb"\n", _F_TS + _F_CALLER),  # dmesg with caller ids
    _style("ts", rb"\n", _F_LEVEL + _F_TS + _F_CALLER),  # dmesg -r
    _style("ts|other", rb"\n" + _F_MONTH, _HOST_K + _F_TS + _F_CALLER, "syslog"),  # syslog
    _style("k|other", rb"\n" + _F_MONTH, _F_HOST + rb"(kernel)" + _F_PID + _F_CALLER, "syslog"),
    _style("ts|other", rb"\n" + _F_ISO, _HOST_K + _F_TS + _F_CALLER, "iso"),
    _style("k|other", rb"\n" + _F_ISO, _F_HOST + rb"(kernel)" + _F_PID + _F_CALLER, "iso"),
    _style("k", rb"\n" + _F_HUMAN, _F_CALLER + rb"()"),  # dmesg -T
)
# Xen's console prefix as _split_prefix takes it: "(XEN)", one space, then Xen's own timestamp
# if there is one (a '[' that neither ASCII form takes goes the slow way).
_F_XEN_LINE = re.compile(
    rb"\n\(XEN\) ?+(?:\[ {0,12}[0-9]{1,10}\.[0-9]{1,9}\] ?|" + _F_HUMAN + rb"|(?!\[))"
)
# bytes a line may hold without _clean changing it (everything but the ASCII controls)
_NOT_CONTROL = bytes(range(0x20, 0x7F)) + b"\n" + bytes(range(0x80, 0x100))


class _Fast:
    """The fast path over one stream; ``buf`` is always b"\\n" then whole lines."""

    def __init__(self, reader: _Reader) -> None:
        self.r = reader
        self.ln = 0
        self.style = 0
        self.mixed = False

    def slow(self, buf: bytes, nl: int) -> int:
        """Feed the line after the newline at ``nl``; the index of its own newline."""
        end = buf.index(b"\n", nl + 1)
        raw = buf[nl + 1 : min(end, nl + 1 + MAX_LINE)]
        self.ln += 1
        self.r.feed(self.ln, raw.decode("utf-8", "replace").rstrip("\r"))
        return end

    def block(self, buf: bytes) -> None:
        odd = self._odd_lines(buf)
        last = len(buf) - 1
        pos = 0
        for stop in [*odd, last]:
            if pos < stop:
                self._span(buf, pos, stop)
                pos = stop
            if pos == stop < last:
                pos = self.slow(buf, pos)

    @staticmethod
    def _odd_lines(buf: bytes) -> list[int]:
        """Newlines before lines holding an ASCII control (a CR just before the newline aside)."""
        controls = buf.translate(None, _NOT_CONTROL)
        if not controls:
            return []
        starts = set()
        for c in set(controls):
            needle = bytes((c,))
            i = buf.find(needle)
            while i >= 0:
                if not (c == 0x0D and buf[i + 1 : i + 2] == b"\n"):
                    starts.add(buf.rindex(b"\n", 0, i))
                i = buf.find(needle, i + 1)
        return sorted(starts)

    def _span(self, buf: bytes, pos: int, end: int) -> None:
        """Lines after the newlines in ``[pos, end)``, ``buf[end]`` being a newline."""
        while pos < end:
            stop = end if end - pos <= _SPAN else buf.index(b"\n", pos + _SPAN)
            self._part(buf, pos, stop)
            pos = stop

    def _part(self, buf: bytes, pos: int, end: int) -> None:
        r = self.r
        if r.pending is None and r.cur.linux_started:
            n = buf.count(b"\n", pos, end)
            fields = self._fields(buf, pos, end, n)
            if fields is not None:
                if self._account(_STYLES[self.style].mode, n, fields):
                    return
            elif self.mixed:
                self._mixed(buf, pos, end)
                return
        self._lines(buf, pos, end)

    def _fields(self, buf: bytes, pos: int, end: int, n: int) -> list[bytes] | None:
        """The bulk pattern's fields when one style takes every line as chatter; else None,
        ``mixed`` telling whether the current style takes most of them."""
        order = [self.style, *(i for i in range(len(_STYLES)) if i != self.style)]
        best, best_count = self.style, 0
        for i in order:
            style = _STYLES[i]
            fields = style.quick.findall(buf, pos, end)
            if len(fields) == n:
                self.style = i
                if self._no_word_kernel(style, buf, pos, end, n, fields):
                    return fields
                fields = style.bulk.findall(buf, pos, end)
                if len(fields) == n:
                    return fields
            if len(fields) > best_count:
                best, best_count = i, len(fields)
            if i == self.style and 2 * len(fields) > n:
                break  # mostly this style
        self.style = best
        self.mixed = 2 * best_count > n
        return None

    @staticmethod
    def _no_word_kernel(
        style: _Style, buf: bytes, pos: int, end: int, n: int, fields: list[bytes]
    ) -> bool:
        """Whether ``quick`` (which skips the _HOST_KERNEL check) was enough: no line there
        has a message of one word, spaces and "kernel:" (or "kernel[pid]:")."""
        if style.prefixed:  # in every kernel line's prefix, and nowhere else?
            kernel = n if style.mode in ("ts", "k") else n - fields.count(b"")
            found = buf.count(b" kernel:", pos, end) + buf.count(b" kernel[", pos, end)
            return found == kernel
        for needle in (b" kernel:", b" kernel["):
            k = buf.find(needle, pos, end)
            while k >= 0:
                start = buf.rfind(b"\n", pos, k)
                if style.bulk.match(buf, start, end) is None:
                    return False
                k = buf.find(b"\n", k, end)
                if k < 0:
                    break
                k = buf.find(needle, k, end)
        return True

    def _account(self, mode: str, n: int, fields: list[bytes]) -> bool:
        """Count ``n`` chatter lines with these fields (of a style of ``mode``) at once, unless
        a timestamp falls."""
        if mode in ("k", "k|other"):
            kernel = n if mode == "k" else n - fields.count(b"")
            self.r.plain_run(n, kernel, None)
            self.ln += n
            return True
        ts = fields if mode == "ts" else list(filter(None, fields))
        if ts:
            width = len(ts[0])
            if (
                min(map(len, ts)) != width
                or max(map(len, ts)) != width
                or float(ts[0]) < self.r.cur.last_ts
                or ts != sorted(ts)
            ):
                return False
        self.r.plain_run(n, len(ts), float(ts[-1]) if ts else None)
        self.ln += n
        return True

    def _mixed(self, buf: bytes, pos: int, end: int) -> None:
        """Runs of chatter lines in bulk, the lines between them one at a time."""
        style = _STYLES[self.style]  # _lines may switch self.style; these fields are style's
        bulk = style.bulk
        run_start = pos  # newline before the first line of the current run
        expected = pos  # newline before the next line
        fields: list[bytes] = []
        for m in bulk.finditer(buf, pos, end):
            start = m.start()
            if start != expected:
                self._flush(style.mode, buf, run_start, expected, fields)
                self._lines(buf, expected, start)
                run_start, fields = start, []
            fields.append(m[1] or b"")
            expected = buf.index(b"\n", m.end())
        self._flush(style.mode, buf, run_start, expected, fields)
        if expected < end:
            self._lines(buf, expected, end)

    def _flush(self, mode: str, buf: bytes, pos: int, end: int, fields: list[bytes]) -> None:
        if not fields:
            return
        r = self.r
        ready = r.pending is None and r.cur.linux_started
        if ready and self._account(mode, len(fields), fields):
            return
        self._lines(buf, pos, end)

    def _lines(self, buf: bytes, pos: int, end: int) -> None:
        """One line at a time: prefixes taken here when a style (or Xen's console prefix)
        takes them, the rest fed."""
        r = self.r
        while pos < end:
            if buf.startswith(b"(XEN)", pos + 1):
                m = _F_XEN_LINE.match(buf, pos, end)
                if m is None:
                    pos = self.slow(buf, pos)
                    continue
                nxt = buf.index(b"\n", m.end())
                raw = buf[m.end() : min(nxt, pos + 1 + MAX_LINE)]
                self.ln += 1
                r.lines_read += 1
                r.message(self.ln, raw.decode("utf-8", "replace").rstrip("\r"), None, True, True)
                pos = nxt
                continue
            style = _STYLES[self.style]
            m = style.parse.match(buf, pos, end)
            if m is None:
                for i, other in enumerate(_STYLES):
                    m = other.parse.match(buf, pos, end) if i != self.style else None
                    if m is not None:
                        self.style, style = i, other
                        break
                else:
                    pos = self.slow(buf, pos)
                    continue
            mode = style.mode
            nxt = buf.index(b"\n", m.end())
            self.ln += 1
            field = m[1]
            if not field and mode != "k":  # another program's line
                r.lines_read += 1
                if style.other_msg:
                    raw = buf[m.end() : min(nxt, pos + 1 + MAX_LINE)]
                    text = raw.decode("utf-8", "replace").rstrip("\r")
                    r.message(self.ln, text, None, False, False)
                pos = nxt
                continue
            ts = float(field) if field and mode in ("ts", "ts|other") else None
            start = m.end()
            if r.pending is None and buf[start : start + 1] not in _LINUX_FIRST_B:
                r.plain(self.ln, ts)
            else:
                raw = buf[start : min(nxt, pos + 1 + MAX_LINE)]
                r.lines_read += 1
                r.message(self.ln, raw.decode("utf-8", "replace").rstrip("\r"), ts, False, True)
            pos = nxt


_LINUX_FIRST_B = frozenset(c.encode() for c in _LINUX_FIRST)


def _run_fast(reader: _Reader, stream: IO[bytes], name: str) -> None:
    """:func:`_run` with the fast path: the same reads, the same lines."""
    fast = _Fast(reader)
    read = getattr(stream, "read1", stream.read)
    pending: list[bytes] = [b"\n"]
    size = 0
    carry = b""  # the start of an unfinished line, at most MAX_LINE bytes kept
    try:
        while True:
            chunk = read(_BLOCK)
            if not chunk:
                break
            cut = chunk.rfind(b"\n")
            if cut < 0:
                if len(carry) < MAX_LINE:
                    carry = (carry + chunk[:MAX_LINE])[:MAX_LINE]
                continue
            pending.append(carry + chunk[: cut + 1])
            size += cut + 1
            carry = chunk[cut + 1 : cut + 1 + MAX_LINE]
            if size >= _FAST_BLOCK:
                fast.block(b"".join(pending))
                pending, size = [b"\n"], 0
    except EOFError:
        if size:
            fast.block(b"".join(pending))
        return  # a truncated .gz: keep what was read
    except (gzip.BadGzipFile, zlib.error) as exc:
        if size:
            fast.block(b"".join(pending))
        raise ParseError(
            f"{name}: corrupt gzip data: {exc}", line=fast.ln + 1, what="kernel log"
        ) from None
    if size:
        fast.block(b"".join(pending))
    if carry:
        fast.ln += 1
        reader.feed(fast.ln, carry.decode("utf-8", "replace").rstrip("\r"))


def _result(reader: _Reader, name: str, strict: bool) -> KernelLog:
    boots = reader.finish()
    if strict and not boots:
        raise ParseError(f"{name}: no kernel log line found", line=1, what="kernel log")
    return KernelLog(boots, reader.lines_read, reader.lines_used, name)


def _open_bytes(data: bytes | bytearray | memoryview) -> IO[bytes]:
    raw = io.BytesIO(bytes(data))
    if bytes(data[:2]) == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def read_kernel_log(
    data: bytes | bytearray | memoryview | str,
    *,
    name: str = "<log>",
    strict: bool = False,
    fast: bool = True,
) -> KernelLog:
    """Read a kernel log from bytes (plain or gzip) or text.

    Never raises on content; with ``strict=True`` a log without a single kernel line is a
    :class:`ParseError` (without it, it reads as ``KernelLog(boots=())``). ``fast=False``
    reads bytes line by line (same result, slower).
    """
    reader = _Reader()
    if isinstance(data, str):
        for ln, raw in enumerate(io.StringIO(data), 1):
            reader.feed(ln, raw[:MAX_LINE].rstrip("\r\n"))
    else:
        (_run_fast if fast else _run)(reader, _open_bytes(data), name)
    return _result(reader, name, strict)


def read_kernel_log_stream(
    stream: IO[bytes], *, name: str = "<log>", strict: bool = False, fast: bool = True
) -> KernelLog:
    """Read a kernel log from a binary file object (``fast=False``: line by line)."""
    reader = _Reader()
    (_run_fast if fast else _run)(reader, stream, name)
    return _result(reader, name, strict)


def read_kernel_log_file(
    path: str | PathLike[str], *, strict: bool = False, fast: bool = True
) -> KernelLog:
    """Read a kernel log file (``.gz`` recognised by its magic), streaming: memory does not grow
    with the file. An unreadable file raises ``OSError``; corrupt gzip data ``ParseError``."""
    name = str(path)
    with open(path, "rb") as f:
        magic = f.read(2)
        f.seek(0)
        if magic == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                return read_kernel_log_stream(gz, name=name, strict=strict, fast=fast)  # type: ignore[arg-type]
        return read_kernel_log_stream(f, name=name, strict=strict, fast=fast)


def looks_like_kernel_log(head: bytes) -> bool:
    """Whether the first bytes of a file read as a kernel log (for source sniffing)."""
    if head[:2] == b"\x1f\x8b":
        # the head of a .gz is a truncated stream: keep what decompresses
        gz = gzip.GzipFile(fileobj=io.BytesIO(bytes(head)))
        out = bytearray()
        try:
            while len(out) < _SNIFF_BYTES:
                chunk = gz.read1(4096)
                if not chunk:
                    break
                out += chunk
        except (OSError, EOFError, zlib.error):
            pass
        head = bytes(out)
    reader = _Reader()
    for ln, raw in enumerate(_iter_lines(io.BytesIO(bytes(head[:_SNIFF_BYTES]))), 1):
        reader.feed(ln, raw[:MAX_LINE].decode("utf-8", "replace").rstrip("\r"))
        if reader.kernel_lines or reader.lines_used:
            return True  # both only grow: the answer for the whole head
    return False


# --------------------------------------------------------------------------------------------
# Memory type of an address, from what one boot printed
# --------------------------------------------------------------------------------------------

_T = MemoryType
_RAM_TYPES = (
    _T.EfiLoaderCode,
    _T.EfiLoaderData,
    _T.EfiBootServicesCode,
    _T.EfiBootServicesData,
    _T.EfiConventionalMemory,
)
# Linux drivers/firmware/efi/libstub/x86-stub.c setup_e820(): the EFI types behind each E820 kind
# (GRUB's EFI loader maps the same way). Unaccepted memory is left out of the E820 table.
_LINUX_E820_TO_EFI: dict[str, tuple[int, ...]] = {
    "usable": _RAM_TYPES,
    "soft reserved": _RAM_TYPES,  # RAM types with EFI_MEMORY_SP
    "reserved": (
        _T.EfiReservedMemoryType,
        _T.EfiRuntimeServicesCode,
        _T.EfiRuntimeServicesData,
        _T.EfiMemoryMappedIO,
        _T.EfiMemoryMappedIOPortSpace,
        _T.EfiPalCode,
    ),
    "ACPI data": (_T.EfiACPIReclaimMemory,),
    "ACPI NVS": (_T.EfiACPIMemoryNVS,),
    "unusable": (_T.EfiUnusableMemory,),
    "persistent": (_T.EfiPersistentMemory,),
}
# Xen xen/arch/x86/efi/efi-boot.h efi_arch_process_memory_map(): RAM types turn reserved with
# EFI_MEMORY_RUNTIME (4.16.3+/4.17+) or -mapbs, unusable without WB.
_XEN_E820_TO_EFI: dict[str, tuple[int, ...]] = {
    **_LINUX_E820_TO_EFI,
    "reserved": _LINUX_E820_TO_EFI["reserved"] + _RAM_TYPES + (_T.EfiPersistentMemory,),
    "unusable": (
        _T.EfiUnusableMemory,
        _T.EfiLoaderCode,
        _T.EfiLoaderData,
        _T.EfiConventionalMemory,
    ),
}


@dataclass(frozen=True, slots=True)
class TypeInference:
    """The EFI memory type behind an address as far as one boot's log tells: ``memory_type``
    when a single type remains, every type the evidence allows in ``candidates``, and
    ``evidence`` naming the lines used (``inferred`` when no EFI memory map was printed)."""

    memory_type: int | None
    candidates: tuple[int, ...]
    evidence: str

    @property
    def exact(self) -> bool:
        """A printed EFI memory map gave the type."""
        return self.memory_type is not None and "inferred" not in self.evidence


def infer_memory_type(boot: BootLog, address: int) -> TypeInference:
    """The memory type at ``address``: from the printed EFI memory map (Linux efi=debug, then
    Xen's), else inferred from the E820 table and the ``esrt:`` / ``e820: update`` lines."""
    for d in boot.memory_map:
        if d.contains(address):
            return TypeInference(d.type, (d.type,), f"EFI memory map (efi=debug), line {d.line}")
    if boot.xen is not None:
        for d in boot.xen.efi_memory_map:
            if d.contains(address):
                return TypeInference(d.type, (d.type,), f"Xen's EFI memory map, line {d.line}")
    entry = next((e for e in boot.e820 if e.contains(address)), None)
    source = "Xen's E820 for dom0" if boot.e820_source == "Xen" else "E820"
    if entry is None and boot.xen is not None:
        entry = next((e for e in boot.xen.e820 if e.contains(address)), None)
        source = "Xen's E820"
    if entry is None:
        return TypeInference(None, (), f"no memory map in the log covers {address:#x}")
    table = _XEN_E820_TO_EFI if source.startswith("Xen") else _LINUX_E820_TO_EFI
    candidates = tuple(int(t) for t in table.get(entry.kind, ()))
    evidence = f"{source} '{entry.kind}' (line {entry.line})"
    bs_data = int(_T.EfiBootServicesData)
    if entry.kind == "usable" and address == boot.esrt_address:
        reserving = next((m for m in boot.esrt_messages if m.kind == "reserving"), None)
        refused = next((m for m in boot.esrt_messages if m.kind == "not-in-memmap"), None)
        update = next(
            (
                u
                for u in boot.e820_updates
                if u.op == "update"
                and u.old_kind == "usable"
                and u.new_kind == "reserved"
                and u.covers(address)
            ),
            None,
        )
        if reserving is not None and update is not None:
            # Linux 6.3 esrt.c efi_esrt_init calls efi_mem_reserve() only for Boot Services
            # Data, and x86 efi_arch_mem_reserve() turns that page reserved in E820.
            return TypeInference(
                bs_data,
                (bs_data,),
                f"{evidence}, 'esrt: Reserving' (line {reserving.line}) and "
                f"'e820: update ... usable ==> reserved' (line {update.line}) (inferred)",
            )
        if refused is not None:
            # efi_esrt_init refuses a usable-RAM type other than Boot Services Data.
            candidates = tuple(t for t in candidates if t != bs_data)
            evidence += f", 'esrt: ESRT header is not in the memory map.' (line {refused.line})"
        elif reserving is not None:
            evidence += f", 'esrt: Reserving' (line {reserving.line}) without an e820 update"
    only = candidates[0] if len(candidates) == 1 else None
    return TypeInference(only, candidates, evidence + " (inferred)")
