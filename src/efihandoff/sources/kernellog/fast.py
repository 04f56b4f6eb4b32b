"""The fast path: most lines of a real log are chatter nothing in the reader reads.

For the prefix forms below, one compiled byte pattern per capture style takes a line's prefixes
exactly as the prefix loop (``prefixes``) would: a run of lines whose messages start with
nothing the message table lists only counts kernel lines and moves the timestamp, so it is
accounted for in bulk when the timestamps never fall; a line whose message may matter goes to
``Reader.message`` with its prefixes already off; anything else (controls, other prefixes, a
pending wrapped line) goes through ``Reader.feed``. The result is the same as line by line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from efihandoff.sources.kernellog.bulk import BulkReader
from efihandoff.sources.kernellog.messages import FIRST_BYTES, IGNORED_BYTES
from efihandoff.sources.kernellog.model import MAX_LINE

SPAN = 8192  # bytes tried in bulk at once
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
# Linux e820__print_table (and a PV dom0's "Xen: [mem ...]"): who, first, last, the type words.
_F_E820 = (
    rb"((BIOS-e820|Xen): \[mem 0x" + _F_HEX + rb"-0x" + _F_HEX + rb"\](" + _F_TEXT
    + rb"{0,200}))\r?(?=\n)"
)  # fmt: skip


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
    memmap: re.Pattern[bytes]  # a kernel line holding _F_MEMMAP (groups from 2 on)
    e820: re.Pattern[bytes]  # a kernel line holding _F_E820


def _style(mode: str, head: bytes, rest: bytes, other: str | None = None) -> _Style:
    not_kernel = rb"(?!" + _F_ANY_KERNEL + rb")"

    def build(msg: bytes, other_msg: bytes) -> re.Pattern[bytes]:
        if other == "syslog":  # _HOST_TAG's tag is not "kernel": _split_prefix returns None
            return re.compile(head + rb"(?:" + rest + msg + rb"|" + not_kernel + rb")")
        if other == "iso":  # ... the loop goes on at the host, and split_line looks mid-line
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
        re.compile(head + rest + _F_MEMMAP),
        re.compile(head + rest + _F_E820),
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
# A (XEN) line whose message the reader may take in bulk while a Xen map is being read.
# (Its '=' are checked there: "=3D" is a quoted-printable one.)
_F_XEN_MAP = re.compile(_F_XEN_LINE.pattern + rb"([ -_a-~]{1,200})\r?(?=\n)")
# A (XEN) line nothing reads while no Xen map is being read: none of the messages
# Reader._xen looks for (after blanks; "RAM map:" anywhere), printable ASCII but '`'.
_F_XEN_CHATTER = re.compile(
    _F_XEN_LINE.pattern
    + rb"(?![ -~]*RAM map)(?: {0,4000}(?!Xen version |Bootloader: |Command line: "
    + rb"|EFI memory map:)[!-_a-~][ -_a-~]{0,4000})?\r?(?=\n)"
)
# bytes a line may hold without clean changing it (everything but the ASCII controls)
_NOT_CONTROL = bytes(range(0x20, 0x7F)) + b"\n" + bytes(range(0x80, 0x100))


class Fast:
    """The fast path over one stream; ``buf`` is always b"\\n" then whole lines."""

    def __init__(self, reader: BulkReader) -> None:
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
            stop = end if end - pos <= SPAN else buf.index(b"\n", pos + SPAN)
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
            if i == self.style and (2 * len(fields) > n or style.parse.match(buf, pos)):
                break  # mostly this style, or lines of this style that are not chatter
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
                if r.pending is None:
                    if r.cur.xen_map_mode is None:
                        run = self._xen_chatter_run(buf, pos, end)
                    else:
                        run = self._xen_map_run(buf, pos, end)
                    if run != pos:
                        pos = run
                        continue
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
            c = buf[m.end() : m.end() + 1]
            if (c == b"e" or c == b"B" or c == b"X") and r.pending is None:
                run = self._map_run(buf, pos, end, style, c == b"e")
                if run != pos:
                    pos = run
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
            if r.pending is None and buf[start : start + 1] not in FIRST_BYTES:
                r.plain(self.ln, ts)
            else:
                raw = buf[start : min(nxt, pos + 1 + MAX_LINE)]
                r.lines_read += 1
                r.message(self.ln, raw.decode("utf-8", "replace").rstrip("\r"), ts, False, True)
            pos = nxt

    def _map_run(self, buf: bytes, pos: int, end: int, style: _Style, efi: bool) -> int:
        """Linux map lines from the one after the newline at ``pos`` on, while the style's map
        pattern matches and the reader takes them: one compiled match per line and no other
        work on its text; the newline after the last line taken."""
        r = self.r
        ts_mode = style.mode[0] == "t"
        pattern = style.memmap if efi else style.e820
        # one scan over the span; a match that does not start where the last one ended (or
        # none at all) ends the run
        for m in pattern.finditer(buf, pos, end + 1):  # + 1: the lookahead sees the newline
            if m.start() != pos:
                break
            ts = float(m[1]) if ts_mode else None
            if efi:
                inner = m[4].decode("ascii")
                took = r.take_memmap(
                    self.ln + 1, ts, m[2], int(m[3]), inner, int(m[5], 16), int(m[6], 16)
                )
            else:
                who, rest = m[3].decode("ascii"), m[6].decode("ascii")
                took = r.take_e820(self.ln + 1, ts, m[2], who, int(m[4], 16), int(m[5], 16), rest)
            if not took:
                break
            self.ln += 1
            pos = m.end()
            if pos >= end:
                break
        return pos

    def _xen_map_run(self, buf: bytes, pos: int, end: int) -> int:
        """Lines of the Xen map being read, as :meth:`_map_run` does Linux's."""
        r = self.r
        for m in _F_XEN_MAP.finditer(buf, pos, end + 1):
            if m.start() != pos or not r.take_xen_map(self.ln + 1, m[1].decode("ascii")):
                break
            self.ln += 1
            pos = m.end()
            if pos >= end:
                break
        return pos

    def _xen_chatter_run(self, buf: bytes, pos: int, end: int) -> int:
        """(XEN) lines nothing reads, counted at once."""
        n = 0
        at = pos
        for m in _F_XEN_CHATTER.finditer(buf, pos, end + 1):
            if m.start() != at:
                break
            n += 1
            at = m.end()
            if at >= end:
                break
        if n:
            self.r.take_xen_chatter(self.ln + 1, n)
            self.ln += n
        return at
