"""The line-by-line reader: one line at a time into the boot being read, split by boot,
wrapped lines joined, each message read by the reader the message table names."""

from __future__ import annotations

import re
from collections.abc import Callable

from efihandoff.sources.kernellog.boots import WHAT, Boot, Pending
from efihandoff.sources.kernellog.messages import (
    ARM_MAP,
    DOM0_XEN_VERSION,
    E820_CHANGE,
    E820_LINE,
    EFI_VERSION,
    ESRT_PATTERNS,
    LINUX_FIRST,
    MEM_NEW,
    MEM_OLD,
    MEM_START,
    MESSAGES,
    RESERVING,
    STARTS,
    TABLEISH,
    U64,
    XEN_E820_START,
    XEN_EFI_START,
    XEN_RAM_MAP,
    XEN_VERSION,
    e820_kind,
    read_values,
    scan_tables,
    typeattr,
)
from efihandoff.sources.kernellog.model import (
    MAX_BOOTS,
    MAX_E820,
    MAX_JOINS,
    MAX_LINE,
    MAX_UPDATES,
    BootLog,
    E820Entry,
    E820Update,
    LoggedDescriptor,
    LoggedTable,
)
from efihandoff.sources.kernellog.prefixes import (
    KERNEL_TAG,
    clean,
    journal_json,
    recognise,
    split_line,
)
from efihandoff.uefi.memmap import PAGE_SHIFT

SEEN_CAP = 65536  # (timestamp, message) pairs remembered per boot to drop pasted repeats
# A continuation line: what a wrapped config-table, map, e820 or esrt line carries (no ':').
CONT = re.compile(r"[\w |\[\]()\-=.,*/;+>]{1,4096}")


class Reader:
    def __init__(self) -> None:
        self.boots: list[BootLog] = []
        self.boots_dropped = 0
        self.cur = Boot(None)
        self.lines_read = 0
        self.lines_used = 0
        self.kernel_lines = 0
        self.pending: Pending | None = None
        # efi_md_typeattr_format brackets repeat within a log; this reader's own memo
        self._typeattrs: dict[str, tuple[int, int | None] | None] = {}

    # -- boots ------------------------------------------------------------------------------

    def _keep_boot(self) -> None:
        if self.cur.keep():
            if len(self.boots) < MAX_BOOTS:
                self.boots.append(self.cur.freeze())
            else:
                self.boots_dropped += 1

    def _new_boot(self, ln: int) -> Boot:
        self._resolve()
        self._keep_boot()
        self.cur = Boot(ln)
        return self.cur

    def finish(self) -> tuple[BootLog, ...]:
        self._resolve()
        self._keep_boot()
        self.cur = Boot(None)
        return tuple(self.boots)

    # -- one line ---------------------------------------------------------------------------

    def feed(self, ln: int, raw: str) -> None:
        self.lines_read += 1
        text = clean(raw)
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
            split = journal_json(head)
        else:
            split = split_line(text)
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
                body = recognise(msg)
                if body is not None:
                    msg, kernel = body, True
            elif msg.startswith("kernel"):
                m = KERNEL_TAG.match(msg)
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
                if key is not None and len(b.seen) < SEEN_CAP:
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
        self.pending = Pending(kind, ln, text[:-1] if qp else text, done, qp, 0, taken)

    def _hold_field(self, name: str, ln: int, value: str) -> None:
        """A value cut by a quoted-printable soft break ("BIOS N32ET75W (1.51 ) 12/=" /
        "02/2021") takes the next line; without one it stands as printed."""
        if value.endswith("=") and not value.endswith("=="):
            self._hold("field", ln, value, done=True)
            if self.pending is not None:
                self.pending.field = name
                setattr(self.cur, name, value[:-1])

    def _continue(self, p: Pending, msg: str, lead: bool = False) -> bool:
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
        elif CONT.fullmatch(cont) is None:
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

    def _try(self, p: Pending, text: str) -> bool:
        """Read the held line's joined text; True when it parsed (and went into the boot)."""
        b = self.cur
        kind = p.kind
        if kind == "tables":
            tokens = scan_tables(text)
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
                b.add_tables(tokens[p.taken :], p.ln)
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
            m = E820_LINE.match(text)
            if m is not None and e820_kind(m[5])[1] is not None:
                done = self._e820(b, m, p.ln)
        elif kind == "e820-update":
            m = E820_CHANGE.match(text)
            if m is not None and (
                m[1] == "remove"
                or ("==>" in m[4] and e820_kind(m[4].split("==>", 1)[1])[1] is not None)
            ):
                done = self._e820_change(b, text, p.ln)
        elif kind == "esrt":
            m = ESRT_PATTERNS[0][1].match(text)
            if m is not None:
                b.esrt_record("reserving", text, p.ln, read_values(m.groups(), "xx"))
                done = True
        elif kind == "xen-efi":
            done = b.xen_efi_desc(text, p.ln)
        elif kind == "xen-e820":
            done = b.xen_e820_entry(text, p.ln, strict=True)
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
            m = E820_LINE.match(p.text)
            if m is not None:
                self._e820(b, m, p.ln)
        elif p.kind == "xen-e820":
            b.xen_e820_entry(p.text, p.ln, strict=False)
        elif p.kind == "e820-update":
            self._e820_change(b, p.text, p.ln, strict=False)
        b.unparsed_line(p.ln, p.text, WHAT[p.kind])

    def type_attr(self, inner: str) -> tuple[int, int | None] | None:
        memo = self._typeattrs
        if inner not in memo:
            if len(memo) > 4096:
                memo.clear()
            memo[inner] = typeattr(inner)
        return memo[inner]

    @staticmethod
    def starts_boot(b: Boot, ts: float) -> bool:
        """Whether a Linux line with timestamp ``ts`` begins a new boot after ``b``: Linux
        timestamps restart at zero on a new boot."""
        return b.linux_started and (ts + 1.0 < b.last_ts or (ts == 0.0 and b.last_ts > 0.0))

    def _timestamp(self, b: Boot, ln: int, ts: float) -> Boot:
        if self.starts_boot(b, ts):
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

    def _linux(self, b: Boot, msg: str, ln: int) -> bool:
        """A Linux message: read by the reader :data:`messages.MESSAGES` names for its start."""
        if msg[:1] not in LINUX_FIRST:
            return False
        m = STARTS.match(msg)
        if m is None:
            return False
        return _READERS[m[0]](self, b, msg, ln)

    # The readers of MESSAGES: (boot, message, line) -> whether the line went into the boot.

    def read_old_tables(self, b: Boot, msg: str, ln: int) -> bool:
        return self._tables(b, msg, ln)

    def read_old_efi(self, b: Boot, msg: str, ln: int) -> bool:
        return self._efi(b, msg, ln)

    def read_old_memmap(self, b: Boot, msg: str, ln: int) -> bool:
        return self._memmap_line(b, msg[5:].strip(), ln)  # Linux 2.6-3.x print_efi_memmap

    def read_efi(self, b: Boot, msg: str, ln: int) -> bool:
        return self._efi(b, msg[4:].strip(), ln)

    def read_esrt(self, b: Boot, msg: str, ln: int) -> bool:
        return self._esrt(b, msg[5:].strip(), ln)

    def read_e820_change(self, b: Boot, msg: str, ln: int) -> bool:
        return self._e820_change(b, msg[6:], ln)

    def read_bios(self, b: Boot, msg: str, ln: int) -> bool:
        return self._e820_line(b, msg, ln)

    def read_banner(self, b: Boot, msg: str, ln: int) -> bool:
        # xen_banner: "on Xen" for a PV domain; "Xen HVM"/"Xen PVH" are other modes.
        if msg[34:].strip() == "Xen":
            b.on_xen_pv = True
            return True
        return False

    def read_memmap(self, b: Boot, msg: str, ln: int) -> bool:
        return self._memmap_line(b, msg.strip(), ln)

    def read_linux_version(self, b: Boot, msg: str, ln: int) -> bool:
        if b.kernel_version is not None or b.linux_used > 0:
            b = self._new_boot(ln)
        b.kernel_version = msg[14:].split(" ", 1)[0] or None
        return True

    def read_command_line(self, b: Boot, msg: str, ln: int) -> bool:
        if b.command_line is not None:
            b = self._new_boot(ln)
        b.command_line = msg[14:].strip()
        self._hold_field("command_line", ln, b.command_line)
        return True

    def read_kernel_command_line(self, b: Boot, msg: str, ln: int) -> bool:
        if b.kcommand_line is not None:
            b = self._new_boot(ln)
        b.kcommand_line = msg[21:].strip()
        self._hold_field("kcommand_line", ln, b.kcommand_line)
        return True

    def read_dmi(self, b: Boot, msg: str, ln: int) -> bool:
        rest = msg[5:].strip()
        if b.dmi is None and rest and not rest.startswith("Memory slots"):
            b.dmi = rest
            self._hold_field("dmi", ln, rest)
            return True
        return False

    def read_dom0_xen(self, b: Boot, msg: str, ln: int) -> bool:
        return self._dom0_xen(b, msg, ln)

    def read_xen_pv(self, b: Boot, msg: str, ln: int) -> bool:
        b.on_xen_pv = True
        return True

    def read_domu(self, b: Boot, msg: str, ln: int) -> bool:
        b.domu_marker = True
        return True

    def read_rsdp(self, b: Boot, msg: str, ln: int) -> bool:
        b.acpi_rsdp = True  # a hint, not a line the model uses
        return False

    def read_mcelog(self, b: Boot, msg: str, ln: int) -> bool:
        b.dom0_marker = True
        return True

    def _dom0_xen(self, b: Boot, msg: str, ln: int) -> bool:
        if msg.startswith("Xen version: "):
            m = DOM0_XEN_VERSION.match(msg)
            if m:
                b.dom0_xen_version = m[1]
                if "(dom0)" in m[2]:
                    b.dom0_marker = True
                return True
            return False
        if msg.startswith("Xen: [") or msg.rstrip() == "Xen:":
            return self._e820_line(b, msg, ln)
        return False

    def _efi(self, b: Boot, body: str, ln: int) -> bool:
        if not body:
            self._hold("efi-body", ln, "")  # "efi: " and the rest wrapped
            return False
        if body.startswith("EFI v"):
            m = EFI_VERSION.match(body)
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
        if "=" in body and TABLEISH.match(body):
            return self._tables(b, body, ln)
        return False

    def _tables(self, b: Boot, body: str, ln: int) -> bool:
        """A config-table line (held: a mail client may have wrapped its tail)."""
        tokens = scan_tables(body)
        if tokens is None or body.endswith("="):  # a soft line break: the last token goes on
            self._hold("tables", ln, body)
            return False
        # Linux prints the line once per boot (efi_config_parse_tables): the same line again
        # in one boot, with or without a timestamp, is a paste repeated; so is its tail.
        dup = body in b.table_heads
        if not dup:
            if len(b.table_heads) < 64:
                b.table_heads.add(body)
            b.add_tables(tokens, ln)
        self._hold("tables", ln, body, done=True, taken=len(tokens))
        if dup and self.pending is not None:
            self.pending.dup = True
        return True

    def _memmap_line(self, b: Boot, body: str, ln: int) -> bool:
        done = self._memmap(b, body, ln)
        if done is None:
            if MEM_START.match(body):
                self._hold("memmap", ln, body)
            return False
        return done

    def _arm_map(self, b: Boot, body: str, ln: int) -> bool | None:
        """An arm64 ``reserve_regions`` line: None when it does not parse, else whether it
        went into the map."""
        m = ARM_MAP.match(body)
        if m is None:
            return None
        ta = self.type_attr(m[3])
        start, last = int(m[1], 16), int(m[2], 16)
        if ta is None or last < start:
            return None
        desc = LoggedDescriptor(ta[0], start, (last + 1 - start) >> PAGE_SHIFT, ta[1], ln)
        return b.add_desc(None, desc)

    def _memmap(self, b: Boot, body: str, ln: int) -> bool | None:
        """An x86 ``efi_print_memmap`` line: None when it does not parse, else whether it went
        into the map."""
        m = MEM_NEW.match(body)
        if m:
            ta = self.type_attr(m[2])
            start, last = int(m[3], 16), int(m[4], 16)
            if ta is None or last < start:
                return None
            pages = (last + 1 - start) >> PAGE_SHIFT
            return b.add_desc(int(m[1]), LoggedDescriptor(ta[0], start, pages, ta[1], ln))
        m = MEM_OLD.match(body)
        if m:
            start, end = int(m[4], 16), int(m[5], 16)
            if end < start:
                return None
            desc = LoggedDescriptor(
                int(m[2]), start, (end - start) >> PAGE_SHIFT, int(m[3], 16) & U64, ln
            )
            return b.add_desc(int(m[1]), desc)
        return None

    def _esrt(self, b: Boot, body: str, ln: int) -> bool:
        if not body:
            self._hold("esrt-body", ln, "")
            return False
        if body.endswith("=") and not body.endswith("=="):
            self._hold("esrt-body", ln, body)  # a quoted-printable soft break: read it whole
            return False
        for kind, pattern, how in ESRT_PATTERNS:
            m = pattern.match(body)
            if m:
                b.esrt_record(kind, body, ln, read_values(m.groups(), how))
                return True
        if body.startswith("Reserving") and (
            body.startswith(RESERVING) or RESERVING.startswith(body)
        ):
            # the end address (or more) on the next, mail-wrapped line
            self._hold("esrt", ln, body)
            return False
        b.esrt_record("other", body, ln, ())
        return True

    def _e820(self, b: Boot, m: re.Match[str], ln: int) -> bool:
        who, what, start, last, rest = m[1], m[2], int(m[3], 16), int(m[4], 16), m[5]
        if what != "mem" or last < start:
            return False
        if who not in ("BIOS-e820", "Xen"):
            return False  # "modified", "reserve setup_data", "user": later tables
        if b.e820_source is not None and b.e820_source != who:
            return False
        kind, code = e820_kind(rest)
        b.e820_source = who
        if len(b.e820) >= MAX_E820:
            b.drop("E820 table", MAX_E820)
            return False
        b.e820.append(E820Entry(start, last + 1, kind, code, ln))
        if who == "Xen":
            b.on_xen_pv = True
        return True

    def _e820_line(self, b: Boot, msg: str, ln: int) -> bool:
        """``BIOS-e820: [mem a-b] kind`` (``Xen: ...`` in a PV dom0); a line cut before its
        end or its type word is held for a wrapped continuation."""
        m = E820_LINE.match(msg)
        if m is None:
            rest = msg.split(":", 1)[1].strip() if ":" in msg else ""
            if msg.startswith("BIOS-e820:") or (msg.startswith("Xen:") and rest[:1] in ("", "[")):
                self._hold("e820", ln, msg)
            return False
        if m[2] == "mem" and m[1] in ("BIOS-e820", "Xen") and e820_kind(m[5])[1] is None:
            self._hold("e820", ln, msg)  # an unknown type word: the rest may be wrapped
            return False
        return self._e820(b, m, ln)

    def _e820_change(self, b: Boot, body: str, ln: int, strict: bool = True) -> bool:
        m = E820_CHANGE.match(body)
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
            if strict and ("==>" not in rest or e820_kind(rest.split("==>", 1)[1])[1] is None):
                # "usable ==> rese" / "rved": the new type wrapped (or cut)
                self._hold("e820-update", ln, body)
                return False
            if "==>" not in rest:
                return False
            left, right = rest.split("==>", 1)
            old = e820_kind(left)[0]
            new = e820_kind(right)[0]
        else:
            old = e820_kind(rest)[0] if rest else None
        if len(b.e820_updates) >= MAX_UPDATES:
            b.drop("e820 updates", MAX_UPDATES)
            return False
        b.e820_updates.append(E820Update(op, start, last + 1, old, new, ln))
        return True

    # -- Xen console ------------------------------------------------------------------------

    def _xen(self, b: Boot, msg: str, ln: int) -> bool:
        body = msg.strip()
        if body.startswith("Xen version "):
            m = XEN_VERSION.match(body)
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
            m = XEN_RAM_MAP.match(body)
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
            done = b.xen_efi_desc(msg, ln)
            if done is not None:
                return done
            if XEN_EFI_START.match(msg):
                self._hold("xen-efi", ln, msg)  # the rest may be on a wrapped line
                return False
        elif mode in ("final", "initial"):
            done = b.xen_e820_entry(msg, ln, strict=True)
            if done is not None:
                return done
            if XEN_E820_START.match(msg):
                self._hold("xen-e820", ln, msg)
                return False
        b.xen_map_mode = None
        return False


# Message start -> its reader, from the one table.
_READERS: dict[str, Callable[[Reader, Boot, str, int], bool]] = {
    m.start: getattr(Reader, f"read_{m.read}") for m in MESSAGES
}
