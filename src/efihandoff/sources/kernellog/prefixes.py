"""Line prefixes: what dmesg, journalctl, syslog, serial consoles and pastes put before a
kernel (or Xen) message, taken off so the message can be read.

Every pattern is linear (no nested quantifiers, bounded repeats); a line is cut at
``MAX_LINE`` characters before any of them runs. The shapes are listed in
tests/sources/FORMATS.md.
"""

from __future__ import annotations

import html
import json
import re

from efihandoff.sources.kernellog.messages import BODY
from efihandoff.sources.kernellog.model import MAX_LINE

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
_FACILITIES: tuple[str, ...] = (
    *("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron"),
    *("authpriv", "ftp", "local"),
)
_MIDLINE = re.compile(r"\(XEN\)|\[ {0,12}\d{1,10}\.\d{6}\]")
_MAX_QUOTE = 32


def clean(text: str) -> str:
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
Split = tuple[str, float | None, bool, bool]


def _split_prefix(s: str) -> Split | None:
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
                t = _HOST_TAG.match(s) or KERNEL_TAG.match(s)  # (journalctl --no-hostname)
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


def split_line(line: str) -> Split | None:
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


# A line whose prefix the loop above does not know is read from the first message start of
# messages.BODY found after a blank, ']', '>', ':' or '='.
_BODY_SEARCH = 160  # characters of an unknown prefix searched
# A prefix ending in another program's "tag[pid]: " is that program's line, not the kernel's.
_TAG_END = re.compile(r"([^\s:\[\]]{1,64})(?:\[\d{1,10}\])?: ?$")
_TIMEISH = re.compile(r"\d:\d\d|\d\.\d|\d{9}")
KERNEL_TAG = re.compile(r"kernel(?:\[\d{1,10}\])?: ?")  # journalctl --no-hostname forms


def recognise(msg: str) -> str | None:
    """The kernel message after a prefix nothing above knows, or None."""
    m = BODY.search(msg, 1, _BODY_SEARCH + 32)
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


def journal_json(line: str) -> Split | None:
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
    return clean(msg), None, False, True
