"""The reader the fast path drives: :class:`Reader` and the entry points of its runs.

The fast path finds runs of memory-map lines (Linux's, with the kernel chatter between them,
and Xen's) with one compiled match per run and one ``findall`` for their fields, and hands
the rows here. Each ``take_*`` does for each line exactly what ``Reader.feed`` would, and
stops (that line and the rest unchanged) at the first one that needs the ordinary way: a
wrapped line is held, the timestamp starts a new boot, the line repeats one of this boot, or
it does not parse as the reader reads it.
"""

from __future__ import annotations

import operator
from itertools import compress, count, repeat

from efihandoff.sources.kernellog.boots import Boot
from efihandoff.sources.kernellog.messages import U64, e820_kind, xen_e820_kind
from efihandoff.sources.kernellog.model import MAX_E820, E820Entry, LoggedDescriptor
from efihandoff.sources.kernellog.reader import SEEN_CAP, Reader
from efihandoff.uefi.layout import from_columns
from efihandoff.uefi.memmap import PAGE_SHIFT

MAP_GAP = 16  # kernel chatter lines a map run takes between two map lines
_CODE = operator.itemgetter(1)  # of a (words, code) pair: None for a type word Xen never prints


def _text_hash(message: bytes) -> int:
    """The hash of a message as the reader has it (the patterns take ASCII only)."""
    return hash(message.decode("ascii"))


# The hash of a message's bytes as the reader hashes its text. CPython hashes an ASCII str as
# the bytes it holds (Objects/unicodeobject.c unicode_hash and Objects/bytesobject.c bytes_hash
# both call _Py_HashBytes): there the decode is skipped.
message_hash = hash if hash("efi: mem00") == hash(b"efi: mem00") else _text_hash


class BulkReader(Reader):
    """A :class:`Reader` whose map lines may also come in runs (same result)."""

    def __init__(self) -> None:
        super().__init__()
        self._e820_kinds: dict[str, tuple[str, int | None]] = {}  # e820_kind, memoised
        # the same memos keyed by the bytes a run's pattern captured
        self._e820_kinds_b: dict[bytes, tuple[str, int | None]] = {}
        self._xen_kinds_b: dict[bytes, tuple[str, int | None]] = {}
        self._typeattrs_b: dict[bytes, tuple[int, int | None]] = {}

    def take_xen_map(self, ln: int, msg: str) -> bool:
        """One line of Xen's ``EFI memory map:`` or ``... RAM map:`` (after its ``(XEN)``
        prefix), while that map is being read."""
        if self.pending is not None or "=3D" in msg:
            return False
        b = self.cur
        mode = b.xen_map_mode
        if mode == "efi":
            done = b.xen_efi_desc(msg, ln)
        elif mode in ("final", "initial"):
            done = b.xen_e820_entry(msg, ln, strict=True)
        else:
            return False
        if done is None:
            return False
        self.lines_read += 1
        b.xen_lines += 1
        b.kernel_lines += 1
        self.kernel_lines += 1
        if b.first_line is None:
            b.first_line = ln
        if done:
            b.used += 1
            self.lines_used += 1
        return True

    # -- runs: one call per run of lines, one row of pattern groups per line ------------------

    def take_maps(
        self, ln: int, rows: list[tuple[bytes, ...]], ts_mode: bool
    ) -> tuple[int, int]:
        """Consecutive lines from ``ln`` on, one row of fields each: the timestamp field, an
        ``efi: memNN`` line's message, index, bracket, first and last, an E820 line's message,
        who, first, last and type words, and a kernel chatter line's first byte (all empty
        but the field for the kinds a line is not; all empty: another line). The run is the
        map lines from the first, with up to ``MAP_GAP`` chatter lines between two of them;
        each is taken as ``Reader.feed`` would take it (a map line read, chatter only counted).
        Returns how many lines were taken (up to the last map line before the run ends, or
        before the first line the ordinary way must read: a held line, a timestamp that
        starts a new boot, a line repeated in this boot, a bracket or type word that does not
        parse) and the row where it stopped."""
        if self.pending is not None:
            return 0, 0
        b = self.cur
        seen = b.seen
        typeattrs = self._typeattrs_b
        kinds = self._e820_kinds_b
        last_ts = kept_ts = b.last_ts
        started = b.linux_started
        desc_list, e820 = b.desc_list, b.e820
        # the records made, as rows: built a column at a time once the run is read (``into``:
        # the map the descriptors go to)
        into: list[LoggedDescriptor] = []
        target, room = b.desc_room()
        descs: list[tuple[int, int, int, int | None, int]] = []
        entries: list[tuple[int, int, str, int | None, int]] = []
        taken = used = gap = i = 0
        for i, row in enumerate(rows):  # i: where it stopped
            field, msg, index, inner, first, last, emsg, who_b, efirst, elast, rest, chat = row
            if chat:
                gap += 1
                if gap > MAP_GAP:
                    break
            elif not (msg or emsg):
                break  # another line: the run ends
            key = None
            ts = 0.0
            if ts_mode:
                ts = float(field)
                if started and (ts + 1.0 < last_ts or (ts == 0.0 and last_ts > 0.0)):
                    break  # Reader.starts_boot: a new boot goes the ordinary way
                if not chat:
                    key = (ts, message_hash(msg or emsg))
                    if key in seen:
                        break  # a paste repeated
            if msg:  # Linux efi_print_memmap
                ta = typeattrs.get(inner)
                if ta is None:
                    ta = self.type_attr(inner.decode("ascii"))
                    if ta is None:
                        break  # held the ordinary way, for a wrapped continuation
                    if len(typeattrs) > 4096:
                        typeattrs.clear()
                    typeattrs[inner] = ta
                start, end = int(first, 16), int(last, 16) + 1
                if end <= start:
                    break
                pages = (end - start) >> PAGE_SHIFT
                # Boot.add_desc, this run's descriptors counted in; index 0: all zeros
                zero = not index.lstrip(b"0")
                if zero or len(descs) >= room:
                    found_list = desc_list(zero, len(descs))
                    room = 0  # Boot.desc_list answers each from here on
                else:
                    found_list = target
                ok = found_list is not None
                if found_list is not None:
                    into = found_list
                    descs.append((ta[0], start, pages, ta[1], ln + i))
            elif emsg:  # Linux e820__print_table
                found = kinds.get(rest)
                if found is None:
                    found = self._e820_kind(rest.decode("ascii"))
                    if len(kinds) > 4096:
                        kinds.clear()
                    kinds[rest] = found
                kind, code = found
                if code is None:
                    break  # an unknown type word: held the ordinary way
                start, end = int(efirst, 16), int(elast, 16) + 1
                who = "Xen" if who_b == b"Xen" else "BIOS-e820"
                ok = False
                if end > start and b.e820_source in (None, who):
                    b.e820_source = who
                    if len(e820) + len(entries) >= MAX_E820:
                        b.drop("E820 table", MAX_E820)
                    else:
                        entries.append((start, end, kind, code, ln + i))
                        if who == "Xen":
                            b.on_xen_pv = True
                        ok = True
            if ts_mode:
                last_ts = ts
            started = True
            if chat:  # Reader.plain, kept only if a map line follows
                continue
            gap = 0
            if ok:
                used += 1
                if key is not None and len(seen) < SEEN_CAP:
                    seen.add(key)
            taken = i + 1
            kept_ts = last_ts
        else:
            i = len(rows)
        if descs:
            into += from_columns(LoggedDescriptor, *zip(*descs, strict=True))
        if entries:
            e820 += from_columns(E820Entry, *zip(*entries, strict=True))
        if taken:
            b.last_ts = kept_ts
            b.linux_started = True
        self._run_done(b, ln, taken, used)
        return taken, i

    def _run_done(self, b: Boot, ln: int, taken: int, used: int, *, xen: bool = False) -> None:
        """The counters ``Reader.message`` (Linux lines) or :meth:`take_xen_map` (``xen``)
        moves for ``taken`` lines from ``ln`` on, ``used`` of them in."""
        if not taken:
            return
        self.lines_read += taken
        if xen:
            b.xen_lines += taken
        else:
            b.linux_used += used
        b.used += used
        self.lines_used += used
        b.kernel_lines += taken
        self.kernel_lines += taken
        if b.first_line is None:
            b.first_line = ln

    def take_xen_efis(self, ln: int, rows: list[tuple[bytes, ...]]) -> int:
        """Consecutive lines of Xen's ``EFI memory map:`` (one row each: first, last, type,
        attribute; no '=3D' in them), as :meth:`take_xen_map` takes them one by one."""
        b = self.cur
        if self.pending is not None or b.xen_map_mode != "efi" or not rows:
            return 0
        firsts, lasts_b, types_b, attributes_b = zip(*rows, strict=True)
        starts = list(map(int, firsts, repeat(16)))
        lasts = list(map(int, lasts_b, repeat(16)))
        # Boot.xen_efi_add reads no reversed range: the run stops at the first
        taken = next(compress(count(), map(operator.lt, lasts, starts)), len(rows))
        if taken and b.xen_efi_room(taken):  # every one kept: built a column at a time
            del starts[taken:], lasts[taken:]
            ends = map(operator.add, lasts, repeat(1))
            pages = list(map(operator.rshift, map(operator.sub, ends, starts), repeat(PAGE_SHIFT)))
            types = list(map(int, types_b[:taken]))
            raw = map(int, attributes_b[:taken], repeat(16))
            attributes = list(map(operator.and_, raw, repeat(U64)))
            lines = range(ln, ln + taken)
            b.xen_efi += from_columns(LoggedDescriptor, types, starts, pages, attributes, lines)
            self._run_done(b, ln, taken, taken, xen=True)
            return taken
        taken = used = 0
        for first, last, mtype, attr in rows:
            done = b.xen_efi_add(int(first, 16), int(last, 16), int(mtype), int(attr, 16), ln)
            if done is None:
                break
            ln += 1
            taken += 1
            used += done
        self._run_done(b, ln - taken, taken, used, xen=True)
        return taken

    def take_xen_e820s(self, ln: int, rows: list[tuple[bytes, ...]]) -> int:
        """Consecutive lines of Xen's ``... RAM map:`` in the inclusive form (one row each:
        first, last, type words; no '=' in them), as :meth:`take_xen_map` takes them."""
        b = self.cur
        if self.pending is not None or b.xen_map_mode not in ("final", "initial"):
            return 0
        kinds = self._xen_kinds_b
        if rows:
            fast = self._xen_e820s_at_once(b, ln, rows)
            if fast:
                return fast
        taken = used = 0
        for first, last, rest in rows:
            start, end = int(first, 16), int(last, 16) + 1
            if end <= start:
                break
            found = kinds.get(rest)
            if found is None:
                found = xen_e820_kind(rest.decode("ascii"))
                if len(kinds) > 4096:
                    kinds.clear()
                kinds[rest] = found
            if found[1] is None:
                break
            used += b.xen_e820_add(start, end, found[0], found[1], ln)
            ln += 1
            taken += 1
        self._run_done(b, ln - taken, taken, used, xen=True)
        return taken

    def _xen_e820s_at_once(self, b: Boot, ln: int, rows: list[tuple[bytes, ...]]) -> int:
        """:meth:`take_xen_e820s` a column at a time when it keeps every line it takes; 0
        (nothing changed) otherwise."""
        firsts, lasts, rests = zip(*rows, strict=True)
        starts = list(map(int, firsts, repeat(16)))
        ends = list(map(operator.add, map(int, lasts, repeat(16)), repeat(1)))
        kinds = self._xen_kinds_b
        run: dict[bytes, tuple[str, int | None]] = {}  # this run's (the memo may be cleared)
        for rest in set(rests):
            found_kind = kinds.get(rest)
            if found_kind is None:
                if len(kinds) > 4096:
                    kinds.clear()
                found_kind = kinds[rest] = xen_e820_kind(rest.decode("ascii"))
            run[rest] = found_kind
        found = list(map(run.__getitem__, rests))
        # the run stops at an empty or reversed range, or a type word Xen does not print
        unknown = map(operator.is_, map(_CODE, found), repeat(None))
        bad = map(operator.or_, map(operator.ge, starts, ends), unknown)
        taken = next(compress(count(), bad), len(rows))
        into = b.xen_e820_list(taken)
        if not taken or into is None:
            return 0
        words, codes = zip(*found[:taken], strict=True)
        lines = range(ln, ln + taken)
        into += from_columns(E820Entry, starts[:taken], ends[:taken], words, codes, lines)
        self._run_done(b, ln, taken, taken, xen=True)
        return taken

    def _e820_kind(self, text: str) -> tuple[str, int | None]:
        memo = self._e820_kinds
        found = memo.get(text)
        if found is None:
            if len(memo) > 4096:
                memo.clear()
            found = memo[text] = e820_kind(text)
        return found

    def take_xen_chatter(self, ln: int, n: int) -> None:
        """``n`` (XEN) lines from line ``ln`` on that no Xen message reader reads, while no Xen
        map is being read and no line is held: only counted."""
        self._run_done(self.cur, ln, n, 0, xen=True)
