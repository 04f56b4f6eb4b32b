"""Boots: the state of the boot being read, what one boot keeps, and a line held because it
may continue on the next (a hard wrap, a quoted-printable soft break)."""

from __future__ import annotations

from dataclasses import dataclass

from efihandoff.sources.kernellog.messages import (
    U64,
    XEN_E820_NEW,
    XEN_E820_OLD,
    XEN_EFI_DESC,
    xen_e820_kind,
)
from efihandoff.sources.kernellog.model import (
    MAX_DESCRIPTORS,
    MAX_E820,
    MAX_ESRT_MESSAGES,
    MAX_TABLES,
    MAX_UNPARSED,
    UNPARSED_TEXT,
    BootLog,
    E820Entry,
    E820Update,
    EsrtMessage,
    LoggedDescriptor,
    LoggedTable,
    UnparsedLine,
    XenInfo,
)
from efihandoff.uefi.memmap import PAGE_SHIFT


class Boot:
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
        self.dropped: dict[str, tuple[int, int]] = {}  # what -> (how many cut, the cap)
        self.seen: set[tuple[float, int]] = set()  # (timestamp, hash of the message)
        self.table_heads: set[str] = set()

    def drop(self, what: str, cap: int) -> None:
        """One more ``what`` printed past its cap."""
        n = self.dropped.get(what, (0, cap))[0]
        self.dropped[what] = (n + 1, cap)

    def keep(self) -> bool:
        return self.used > 0 or self.kernel_lines > 0

    def add_tables(self, tokens: list[tuple[str, int, bool]], ln: int) -> None:
        for label, addr, unusable in tokens:
            if len(self.tables) < MAX_TABLES:
                self.tables.append(LoggedTable(label, addr, unusable, ln))
            else:
                self.drop("config tables", MAX_TABLES)

    def add_desc(self, index: int | None, desc: LoggedDescriptor) -> bool:
        """First printed map only; a map restarting at mem00 is a later print."""
        into = self.desc_list(index == 0)
        if into is None:
            return False
        into.append(desc)
        return True

    def desc_list(self, zero: bool, pending: int = 0) -> list[LoggedDescriptor] | None:
        """The list :meth:`add_desc` puts a printed descriptor in (the runtime map while one is
        printed, else the memory map), or None when it keeps none (a later print, the cap
        reached). ``zero``: the descriptor's index is 0; ``pending``: descriptors a run took
        for that list and has not put in it yet."""
        if self.runtime_mode:
            if self.runtime_done:
                return None
            if zero and (self.runtime_map or pending):
                self.runtime_done = True
                return None
            if len(self.runtime_map) + pending >= MAX_DESCRIPTORS:
                self.drop("EFI runtime memory map", MAX_DESCRIPTORS)
                return None
            return self.runtime_map
        if self.map_done:
            return None
        if zero and (self.memory_map or pending):
            self.map_done = True
            return None
        if len(self.memory_map) + pending >= MAX_DESCRIPTORS:
            self.drop("EFI memory map", MAX_DESCRIPTORS)
            return None
        return self.memory_map

    def desc_room(self) -> tuple[list[LoggedDescriptor], int]:
        """The list :meth:`desc_list` gives a descriptor whose index is not 0, and while
        fewer than how many are pending (0: ask it each time: that map is done)."""
        into = self.runtime_map if self.runtime_mode else self.memory_map
        done = self.runtime_done if self.runtime_mode else self.map_done
        return into, 0 if done else MAX_DESCRIPTORS - len(into)

    def esrt_record(self, kind: str, text: str, ln: int, values: tuple[int, ...]) -> None:
        if len(self.esrt) >= MAX_ESRT_MESSAGES:
            self.drop("esrt messages", MAX_ESRT_MESSAGES)
            return
        self.esrt.append(EsrtMessage(kind, text, ln, values))
        if kind == "reserving" and self.esrt_reserved is None and len(values) == 2:
            start, end = values
            if end >= start:
                self.esrt_reserved = (start, end - start)

    def unparsed_line(self, ln: int, text: str, what: str) -> None:
        if len(self.unparsed) < MAX_UNPARSED:
            self.unparsed.append(UnparsedLine(ln, text[:UNPARSED_TEXT], what))
        else:
            self.unparsed_more += 1

    def xen_efi_desc(self, text: str, ln: int) -> bool | None:
        """One line of Xen's ``EFI memory map:``: None unless it parses."""
        m = XEN_EFI_DESC.match(text)
        if m is None:
            return None
        return self.xen_efi_add(int(m[1], 16), int(m[2], 16), int(m[3]), int(m[4], 16), ln)

    def xen_efi_add(self, start: int, last: int, mtype: int, attr: int, ln: int) -> bool | None:
        """What :meth:`xen_efi_desc` does with a line's fields (``last`` inclusive)."""
        if last < start:
            return None
        if self.xen_efi_done:
            return False
        if len(self.xen_efi) >= MAX_DESCRIPTORS:
            self.drop("Xen's EFI memory map", MAX_DESCRIPTORS)
            return False
        pages = (last + 1 - start) >> PAGE_SHIFT
        self.xen_efi.append(LoggedDescriptor(mtype, start, pages, attr & U64, ln))
        return True

    def xen_efi_room(self, n: int) -> bool:
        """Whether :meth:`xen_efi_add` keeps each of ``n`` more descriptors (the map not done,
        the cap not reached)."""
        return not self.xen_efi_done and len(self.xen_efi) + n <= MAX_DESCRIPTORS

    def xen_e820_list(self, n: int) -> list[E820Entry] | None:
        """The table :meth:`xen_e820_add` adds to, when it keeps each of ``n`` more entries."""
        target = self.xen_e820 if self.xen_map_mode == "final" else self.xen_e820_initial
        return target if len(target) + n <= MAX_E820 else None

    def xen_e820_entry(self, text: str, ln: int, strict: bool) -> bool | None:
        """One line of Xen's ``... RAM map:``: None unless it parses (``strict``: with a type
        word Xen prints)."""
        m = XEN_E820_NEW.match(text)
        if m:
            start, end = int(m[1], 16), int(m[2], 16) + 1  # inclusive end
        else:
            m = XEN_E820_OLD.match(text)
            if m is None:
                return None
            start, end = int(m[1], 16), int(m[2], 16)  # exclusive end
        if end <= start:
            return None
        kind, code = xen_e820_kind(m[3])
        if strict and code is None:
            return None
        return self.xen_e820_add(start, end, kind, code, ln)

    def xen_e820_add(self, start: int, end: int, kind: str, code: int | None, ln: int) -> bool:
        """What :meth:`xen_e820_entry` does with a line's fields (``end`` exclusive)."""
        target = self.xen_e820 if self.xen_map_mode == "final" else self.xen_e820_initial
        if len(target) >= MAX_E820:
            self.drop("Xen's E820 table", MAX_E820)
            return False
        target.append(E820Entry(start, end, kind, code, ln))
        return True

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
                f"{what}: {n} more printed than the cap of {cap} kept"
                for what, (n, cap) in self.dropped.items()
            ),
        )


@dataclass(slots=True)
class Pending:
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
    field: str = ""  # kind "field": the Boot attribute the value goes to


# What each pending kind looked like, for UnparsedLine.what.
WHAT = {
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
