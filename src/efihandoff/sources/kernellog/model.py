"""What a kernel log says, as values: the caps on what one boot keeps and the records the
reader makes of each line it reads (config tables, memory-map descriptors, E820 entries and
updates, ``esrt:`` messages, what Xen's console said), per boot and per log."""

from __future__ import annotations

from dataclasses import dataclass

from efihandoff.uefi.memmap import PAGE_SHIFT, MemoryDescriptor

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
