"""The reader the fast path drives: :class:`Reader` and the entry points of its map runs.

The fast path finds runs of memory-map lines with one compiled pattern per capture style and
hands each line's fields here. Each ``take_*`` does for its line exactly what
``Reader.feed`` would, or returns False (nothing changed) when the line needs the ordinary
way: a wrapped line is held, the timestamp starts a new boot, the line repeats one of this
boot, or it does not parse as the reader reads it.
"""

from __future__ import annotations

from efihandoff.sources.kernellog.boots import Boot
from efihandoff.sources.kernellog.messages import e820_kind
from efihandoff.sources.kernellog.model import MAX_E820, E820Entry, LoggedDescriptor
from efihandoff.sources.kernellog.reader import SEEN_CAP, Reader
from efihandoff.uefi.memmap import PAGE_SHIFT


class BulkReader(Reader):
    """A :class:`Reader` whose map lines may also come in runs (same result)."""

    def __init__(self) -> None:
        super().__init__()
        self._e820_kinds: dict[str, tuple[str, int | None]] = {}  # e820_kind, memoised

    def _bulk_key(self, ts: float | None, msg: bytes) -> tuple[bool, tuple[float, int] | None]:
        """For a Linux line read in bulk: whether it may be (not when it must go the ordinary
        way), and its (timestamp, message) key (None without a timestamp)."""
        if self.pending is not None:
            return False, None
        if ts is None:
            return True, None
        b = self.cur
        if self.starts_boot(b, ts):
            return False, None
        key = (ts, hash(msg.decode("ascii")))
        return key not in b.seen, key

    def _bulk_done(self, b: Boot, ln: int, key: tuple[float, int] | None, used: bool) -> None:
        """The counters :meth:`message` moves for a kernel line (``used``: it went in)."""
        self.lines_read += 1
        if key is not None:
            b.last_ts = key[0]
        if used:
            b.linux_used += 1
            if key is not None and len(b.seen) < SEEN_CAP:
                b.seen.add(key)
            b.used += 1
            self.lines_used += 1
        b.linux_started = True
        b.kernel_lines += 1
        self.kernel_lines += 1
        if b.first_line is None:
            b.first_line = ln

    def take_memmap(
        self, ln: int, ts: float | None, msg: bytes, index: int, inner: str, start: int, last: int
    ) -> bool:
        """``efi: memNN: [type|attrs] range=[start-last] (NMB)`` (Linux efi_print_memmap)."""
        ok, key = self._bulk_key(ts, msg)
        if not ok:
            return False
        ta = self.type_attr(inner)
        if ta is None or last < start:
            return False  # held the ordinary way, for a wrapped continuation
        b = self.cur
        desc = LoggedDescriptor(ta[0], start, (last + 1 - start) >> PAGE_SHIFT, ta[1], ln)
        self._bulk_done(b, ln, key, b.add_desc(index, desc))
        return True

    def take_e820(
        self, ln: int, ts: float | None, msg: bytes, who: str, start: int, last: int, rest: str
    ) -> bool:
        """``BIOS-e820: [mem start-last] kind`` or a PV dom0's ``Xen: [mem ...] kind`` (Linux
        e820__print_table)."""
        ok, key = self._bulk_key(ts, msg)
        if not ok:
            return False
        kind, code = self._e820_kind(rest)
        if code is None:
            return False  # an unknown type word: held the ordinary way
        b = self.cur
        used = False
        if last >= start and b.e820_source in (None, who):
            b.e820_source = who
            if len(b.e820) >= MAX_E820:
                b.drop("E820 table", MAX_E820)
            else:
                b.e820.append(E820Entry(start, last + 1, kind, code, ln))
                if who == "Xen":
                    b.on_xen_pv = True
                used = True
        self._bulk_done(b, ln, key, used)
        return True

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
        b = self.cur
        self.lines_read += n
        b.xen_lines += n
        b.kernel_lines += n
        self.kernel_lines += n
        if b.first_line is None:
            b.first_line = ln
