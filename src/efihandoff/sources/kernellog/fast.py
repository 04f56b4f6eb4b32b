"""The fast path: most lines of a real log are chatter nothing in the reader reads.

For the prefix forms below, one compiled byte pattern per capture style takes a line's prefixes
exactly as the prefix loop (``prefixes``) would. One compiled search over the block finds the
next line that may matter (a candidate: its prefixes are not the style's, or its message may
start with one the message table lists); the chatter before it only counts kernel lines and
moves the timestamp, so it is accounted for in bulk (one ``findall`` of the prefixes' fields)
when the timestamps never fall, without Python per line. A candidate goes to
``Reader.message`` with its prefixes already off, or starts a run: Linux map lines (with the
chatter between them) and Xen's maps are read with one ``findall`` per run and their rows
handed to :class:`BulkReader`; Xen's chatter is counted with one match. Anything else
(controls, other prefixes, a pending wrapped line) goes through ``Reader.feed``. The result is
the same as line by line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from efihandoff.sources.kernellog.bulk import MAP_GAP, BulkReader
from efihandoff.sources.kernellog.messages import BODY_BYTES, FIRST_BYTES, IGNORED_BYTES
from efihandoff.sources.kernellog.model import MAX_LINE

SPAN = 1 << 16  # bytes of chatter counted at once
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
# ...nor a message recognise() could find after an unknown prefix further on.
_F_NO_BODY = rb"(?![^\n]*?" + BODY_BYTES + rb")"
# Where _split_prefix stops: an ASCII first character that is not a space, a digit, '[', '<'
# or '(', and no syslog month, dmesg -x facility or "host kernel:" (wider than the real ones).
_F_STOP = (
    rb"(?=[!-')-/:;=-Z\\-~])"
    rb"(?!(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    rb"|(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7]) {0,8}:)"
    + _F_NOT_WORD_KERNEL
)
# ...and nothing the reader reads (generated from the message table).
_F_IGNORED = IGNORED_BYTES


# Map lines read in bulk: the message (group 2) of a line the reader reads as it is, no more
# (a narrower form than its str pattern; anything else goes the ordinary way): ASCII, no '='
# or '`' where a quoted-printable or markdown paste could put one, no control but a CR before
# the newline.
_F_HEX = rb"([0-9a-fA-F]{1,16})"
_F_TEXT = rb"[ -<>-_a-~]"  # printable ASCII but '=' and '`'
# Linux efi_print_memmap through the "efi: " pr_fmt: index, type|attribute names, first, last.
_F_MEMMAP = (
    rb"(efi: {0,16}mem([0-9]{1,6}): \[([ A-Za-z0-9|]{1,96})\] range=\[0x" + _F_HEX + rb"-0x"
    + _F_HEX + rb"\] {0,4}\([0-9]{1,20}MB\) {0,16})\r?(?=\n)"
)  # fmt: skip
# What every line _F_MEMMAP or _F_E820 takes holds.
_MAP_MARKS = (b"] range=[0x", b": [mem 0x")
# From within a line, past its newline and the next MAP_GAP + 1 lines (to their newline).
_PAST_GAP = re.compile(rb"[^\n]*(?:\n[^\n]*){%d}(?=\n)" % (MAP_GAP + 1))
MAP_PIECE = 4096  # bytes of lines a map run's first findall reads
# What a map line starts with (a cheap test before a map run is tried).
_F_MAP_START = re.compile(rb"efi: {0,16}mem[0-9]|BIOS-e820: \[mem |Xen: \[mem ")
# Linux e820__print_table (and a PV dom0's "Xen: [mem ...]"): who, first, last, the type words.
_F_E820 = (
    rb"((BIOS-e820|Xen): \[mem 0x" + _F_HEX + rb"-0x" + _F_HEX + rb"\](" + _F_TEXT
    + rb"{0,200}))\r?(?=\n)"
)  # fmt: skip


@dataclass(frozen=True)
class _Style:
    """One capture style. ``bulk`` takes a line whose message nothing reads, ``parse`` any
    line whose prefixes end where _split_prefix ends them; each starts at the newline before
    the line and has one group: the timestamp field ("ts"), that or b"" for another program's
    line ("ts|other"), b"kernel" or b"" ("k|other"), or b"" for a kernel line ("k"). Another
    program's line reads as nothing after a syslog date; after an ISO date, as a message
    without kernel prefix (``other_msg``). ``quick`` is ``bulk`` without the test for a
    message of one word, blanks and "kernel:" (its costliest part, rarely needed: see
    ``Fast._chatter``); ``cand`` finds the newline before the next line ``quick`` does not
    take (a candidate: a line that may matter). ``prefixed``: the kernel prefix itself holds
    " kernel"."""

    mode: str
    bulk: re.Pattern[bytes]
    quick: re.Pattern[bytes]
    cand: re.Pattern[bytes]
    fields: re.Pattern[bytes]  # the prefixes alone, for the group of lines quick took
    parse: re.Pattern[bytes]
    prefixed: bool
    other_msg: bool
    # any line: a kernel line holding _F_MEMMAP (groups 2-6), _F_E820 (groups 7-11) or
    # chatter (group 12: its first byte), or another line (every group empty)
    rows: re.Pattern[bytes]


def _style(mode: str, head: bytes, rest: bytes, other: str | None = None) -> _Style:
    not_kernel = rb"(?!" + _F_ANY_KERNEL + rb")"

    def build(msg: bytes, other_msg: bytes) -> re.Pattern[bytes]:
        if other == "syslog":  # _HOST_TAG's tag is not "kernel": _split_prefix returns None
            return re.compile(head + rb"(?:" + rest + msg + rb"|" + not_kernel + rb")")
        if other == "iso":  # ... the loop goes on at the host, and split_line looks mid-line
            alt = not_kernel + other_msg + _F_NO_MIDLINE + _F_NO_BODY
            return re.compile(head + rb"(?:" + rest + msg + rb"|" + alt + rb")")
        return re.compile(head + rest + msg)

    chatter = _F_STOP + _F_IGNORED
    quick = build(_F_STOP.replace(_F_NOT_WORD_KERNEL, b"") + _F_IGNORED, chatter)
    if not quick.pattern.startswith(rb"\n"):
        raise ValueError(f"a style's head starts at a newline: {head!r}")
    return _Style(
        mode,
        build(chatter, chatter),
        quick,
        # the newline, then what quick takes after it, refused: sre finds each newline by its
        # literal and tries the rest there, all in C
        re.compile(rb"\n(?!" + quick.pattern[2:] + rb")"),
        # of a line quick takes, rest matches just when it is a kernel line (another
        # program's needs not_kernel, which refuses what rest takes)
        re.compile(head + (rest if other is None else rb"(?:" + rest + rb")?")),
        build(_F_STOP, _F_STOP),
        b"kernel" in rest,
        other == "iso",
        re.compile(
            rb"\n(?:" + head[2:] + rest + rb"(?:" + _F_MEMMAP + rb"|" + _F_E820 + rb"|" + chatter
            + rb"([^\n]))|[^\n]*)"
        ),
    )


def _no_groups(pattern: bytes) -> bytes:
    """``pattern`` with every capturing group made non-capturing (CPython 3.11's sre can fail
    on a capture inside a possessive repeat: "The span of capturing group is wrong")."""
    out = bytearray()
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i : i + 1]
        if c == b"\\":
            out += pattern[i : i + 2]
            i += 2
            continue
        if in_class:
            in_class = c != b"]"
        elif c == b"[":
            in_class = True
            if pattern[i + 1 : i + 2] == b"]":  # a ']' first in a class is a literal
                out += b"[]"
                i += 2
                continue
        elif c == b"(" and pattern[i + 1 : i + 2] != b"?":
            out += b"(?:"
            i += 1
            continue
        out += c
        i += 1
    return bytes(out)


def _run(line: bytes) -> re.Pattern[bytes]:
    """Consecutive lines each matching ``line`` (which starts at the newline before its line
    and stops before the one after it, so each repeat takes exactly one line)."""
    return re.compile(_no_groups(rb"(?:" + line + rb")++"))


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
# A (XEN) line whose message the reader may take in bulk while a Xen map is being read.
# (Its '=' are checked there: "=3D" is a quoted-printable one.)
_F_XEN_MAP = re.compile(_F_XEN_LINE.pattern + rb"([ -_a-~]{1,200})\r?(?=\n)")
# Lines of Xen's maps read in bulk, one row of fields each (a narrower form of XEN_EFI_DESC and
# XEN_E820_NEW on _F_XEN_MAP's message: no "=3D" where a quoted-printable paste could put one).
_F_XEN_EFI = re.compile(
    _F_XEN_LINE.pattern + rb" {0,4}" + _F_HEX + rb"-" + _F_HEX + rb" type=([0-9]{1,10})"
    rb" attr=(?!3D)" + _F_HEX + rb" {0,4}\r?(?=\n)"
)
_F_XEN_E820 = re.compile(
    _F_XEN_LINE.pattern + rb" {0,4}\[" + _F_HEX + rb", " + _F_HEX + rb"\] ([ -<>-_a-~]{1,64})"
    rb"\r?(?=\n)"
)
_F_XEN_EFI_RUN = _run(_F_XEN_EFI.pattern)
_F_XEN_E820_RUN = _run(_F_XEN_E820.pattern)
# A (XEN) line nothing reads while no Xen map is being read: none of the messages
# Reader._xen looks for (after blanks; "RAM map:" anywhere), printable ASCII but '`'.
_F_XEN_CHATTER = re.compile(
    _F_XEN_LINE.pattern
    + rb"(?![ -~]*RAM map)(?: {0,4000}(?!Xen version |Bootloader: |Command line: "
    + rb"|EFI memory map:)[!-_a-~][ -_a-~]{0,4000})?\r?(?=\n)"
)
_F_XEN_CHATTER_RUN = _run(_F_XEN_CHATTER.pattern)
# bytes a line may hold without clean changing it (everything but the ASCII controls)
_NOT_CONTROL = bytes(range(0x20, 0x7F)) + b"\n" + bytes(range(0x80, 0x100))
_TAB_TO_BLANK = bytes.maketrans(b"\t", b" ")


class Fast:
    """The fast path over one stream; ``buf`` is always b"\\n" then whole lines."""

    def __init__(self, reader: BulkReader) -> None:
        self.r = reader
        self.ln = 0
        self.style = 0

    def slow(self, buf: bytes, nl: int) -> int:
        """Feed the line after the newline at ``nl``; the index of its own newline."""
        end = buf.index(b"\n", nl + 1)
        raw = buf[nl + 1 : min(end, nl + 1 + MAX_LINE)]
        self.ln += 1
        self.r.feed(self.ln, raw.decode("utf-8", "replace").rstrip("\r"))
        return end

    def block(self, buf: bytes) -> None:
        if b"\t" in buf and b"\x1b" not in buf:
            # prefixes.clean turns a tab into a blank before anything reads the line (Linux
            # prints "rcu: \tRCU restricting CPUs ..." on every boot); with no ESC in the block
            # (its ANSI pattern takes a blank, not a tab), the lines read the same with the
            # blanks already there, and a line whose only control is a tab is no odd line
            buf = buf.translate(_TAB_TO_BLANK)
        odd = self._odd_lines(buf)
        last = len(buf) - 1
        pos = 0
        for stop in [*odd, last]:
            if pos < stop:
                self._part(buf, pos, stop)
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

    def _part(self, buf: bytes, pos: int, end: int) -> None:
        """Lines after the newlines in ``[pos, end)``, ``buf[end]`` being a newline: one
        compiled search finds the next line that may matter (a candidate); the chatter before
        it is accounted for in bulk, the candidate read on its own (with the map or Xen run it
        may start)."""
        r = self.r
        while pos < end:
            if r.pending is not None or not r.cur.linux_started:
                pos = self._line(buf, pos, end)
                continue
            style = _STYLES[self.style]
            found = style.cand.search(buf, pos, end)
            stop = end if found is None else found.start()
            while pos < stop:  # chatter, SPAN bytes at a time
                cut = stop if stop - pos <= SPAN else buf.index(b"\n", pos + SPAN)
                self._chatter(style, buf, pos, cut)
                pos = cut
            if pos < end:
                pos = self._line(buf, pos, end)

    def _chatter(self, style: _Style, buf: bytes, pos: int, end: int) -> None:
        """Lines the style's quick pattern takes, every one (``cand`` found no other): counted
        at once when its bulk pattern takes them too, unless a timestamp falls (else one at a
        time)."""
        mode = style.mode
        n = buf.count(b"\n", pos, end)
        fields = [] if mode == "k" else style.fields.findall(buf, pos, end)
        ok = mode == "k" or len(fields) == n
        # quick leaves out bulk's test for a message of one word, blanks and "kernel:" (or
        # "kernel[pid]:"): it cannot fail where no " kernel:" or " kernel[" stands but in the
        # kernel prefixes, one a line
        found = buf.count(b" kernel:", pos, end) + buf.count(b" kernel[", pos, end)
        if ok and found:
            kernel = n if mode in ("ts", "k") else n - fields.count(b"")
            if not style.prefixed or found != kernel:
                fields = style.bulk.findall(buf, pos, end)
                ok = len(fields) == n
        if not ok:
            self._lines(buf, pos, end)
        elif not self._account(mode, n, fields):
            # a timestamp falls (a new boot): each half again, down to a few lines
            mid = buf.find(b"\n", pos + (end - pos) // 2, end) if n > 8 else -1
            if mid <= pos:
                self._lines(buf, pos, end)
            else:
                self._chatter(style, buf, pos, mid)
                self._chatter(style, buf, mid, end)

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

    def _lines(self, buf: bytes, pos: int, end: int) -> None:
        """One line at a time (and the runs they start)."""
        while pos < end:
            pos = self._line(buf, pos, end)

    def _line(self, buf: bytes, pos: int, end: int) -> int:
        """The line after the newline at ``pos`` (with the map or Xen run it starts, up to
        ``end``): prefixes taken here when a style (or Xen's console prefix) takes them, the
        rest fed; the newline after what was read."""
        r = self.r
        if buf.startswith(b"(XEN)", pos + 1):
            if r.pending is None:
                if r.cur.xen_map_mode is None:
                    run = self._xen_chatter_run(buf, pos, end)
                else:
                    run = self._xen_map_run(buf, pos, end)
                if run != pos:
                    return run
            m = _F_XEN_LINE.match(buf, pos, end)
            if m is None:
                return self.slow(buf, pos)
            nxt = buf.index(b"\n", m.end())
            raw = buf[m.end() : min(nxt, pos + 1 + MAX_LINE)]
            self.ln += 1
            r.lines_read += 1
            r.message(self.ln, raw.decode("utf-8", "replace").rstrip("\r"), None, True, True)
            return nxt
        style = _STYLES[self.style]
        m = style.parse.match(buf, pos, end)
        if m is None:
            for i, other in enumerate(_STYLES):
                m = other.parse.match(buf, pos, end) if i != self.style else None
                if m is not None:
                    self.style, style = i, other
                    break
            else:
                return self.slow(buf, pos)
        if r.pending is None and _F_MAP_START.match(buf, m.end()) is not None:
            run = self._map_run(buf, pos, end, style)
            if run != pos:
                return run
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
            return nxt
        ts = float(field) if field and mode in ("ts", "ts|other") else None
        start = m.end()
        if r.pending is None and buf[start : start + 1] not in FIRST_BYTES:
            r.plain(self.ln, ts)
        else:
            raw = buf[start : min(nxt, pos + 1 + MAX_LINE)]
            r.lines_read += 1
            r.message(self.ln, raw.decode("utf-8", "replace").rstrip("\r"), ts, False, True)
        return nxt

    def _map_run(self, buf: bytes, pos: int, end: int, style: _Style) -> int:
        """Linux map lines from the one after the newline at ``pos`` on, with up to
        ``MAP_GAP`` kernel chatter lines between two of them, while the reader takes them: one
        findall gives every line's fields (+ 1: the lookahead sees the newline), in pieces that
        grow twofold from MAP_PIECE bytes, each read no further than the run can go (MAP_GAP
        + 1 lines past its last map line), so a run that ends early costs little; the newline
        after the last map line taken."""
        want = MAP_PIECE
        ts_mode = style.mode[0] == "t"
        while True:
            cut = buf.find(b"\n", pos + want, end) if pos + want < end else -1
            if cut < 0:
                cut = end
            # the run ends at the latest MAP_GAP + 1 lines after its last map line: no row
            # past that line is read (every map line holds one of _MAP_MARKS)
            last = max(buf.rfind(mark, pos, cut) for mark in _MAP_MARKS)
            after = _PAST_GAP.match(buf, last, cut) if last >= 0 else None
            if after is not None:
                cut = after.end()
            rows = style.rows.findall(buf, pos, cut + 1)  # a row per line, and one for cut's
            n, stopped = self.r.take_maps(self.ln + 1, rows, ts_mode)
            lines = buf.count(b"\n", pos, cut)
            pos = self._past(buf, pos, cut, n, lines)
            if stopped < lines or cut >= end:
                return pos  # the run ended in this piece (not at its end)
            want *= 2

    def _past(self, buf: bytes, pos: int, stop: int, n: int, rows: int) -> int:
        """The newline after the first ``n`` of the ``rows`` lines from the newline at ``pos``
        (the run ending at ``stop``), those lines counted."""
        self.ln += n
        if n == rows:
            return stop
        for _ in range(n):
            pos = buf.index(b"\n", pos + 1)
        return pos

    def _xen_map_run(self, buf: bytes, pos: int, end: int) -> int:
        """Lines of the Xen map being read, as :meth:`_map_run` does Linux's; a line of another
        form (Xen's older exclusive-end map, a '=' in the type) one match at a time."""
        r = self.r
        efi = r.cur.xen_map_mode == "efi"
        run = (_F_XEN_EFI_RUN if efi else _F_XEN_E820_RUN).match(buf, pos, end + 1)
        if run is not None:
            stop = run.end()
            rows = (_F_XEN_EFI if efi else _F_XEN_E820).findall(buf, pos, stop + 1)
            take = r.take_xen_efis if efi else r.take_xen_e820s
            n = take(self.ln + 1, rows)
            pos = self._past(buf, pos, stop, n, len(rows))
            if pos >= end:
                return pos
        for m in _F_XEN_MAP.finditer(buf, pos, end + 1):
            if m.start() != pos or not r.take_xen_map(self.ln + 1, m[1].decode("ascii")):
                break
            self.ln += 1
            pos = m.end()
            if pos >= end:
                break
        return pos

    def _xen_chatter_run(self, buf: bytes, pos: int, end: int) -> int:
        """(XEN) lines nothing reads, counted at once: one match finds the run."""
        run = _F_XEN_CHATTER_RUN.match(buf, pos, end + 1)  # + 1: the lookahead sees the newline
        if run is None:
            return pos
        at = run.end()
        n = buf.count(b"\n", pos, at)
        self.r.take_xen_chatter(self.ln + 1, n)
        self.ln += n
        return at
