"""Kernel messages: the one table of message starts the reader reads, the patterns of each
message, and what their fields mean.

:data:`MESSAGES` names every message start the reader reads and which of its readers reads it;
the slow path's dispatch (``Reader._linux``), the search for a message after an unknown prefix
(:data:`BODY`) and the fast path's test for chatter (:data:`IGNORED_BYTES`, :data:`FIRST_BYTES`)
are all generated from it, so they cannot drift apart. The fast path's map-run patterns are
narrower forms of :data:`MEM_NEW` and :data:`E820_LINE` whose lines the reader still reads by
its own rules (a line they take that the reader would not is handed back). Message formats, as
printed by (project, file, function), are listed in the package docstring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from efihandoff.uefi.memmap import LINUX_ATTR_MNEMONICS, MemoryType

U64 = (1 << 64) - 1

# --------------------------------------------------------------------------------------------
# The message table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One kernel message start: ``start`` as it opens the message, ``read`` the name of the
    ``Reader`` method that reads it (``read_<read>``), ``body`` the regex fragments that find
    it after a prefix nothing knows (none: it is not looked for there)."""

    start: str
    read: str
    body: tuple[str, ...] = ()


# Linux before 3.14 (x86 arch/x86/platform/efi/efi.c efi_init, ia64, the Xen pvops dom0):
# printk(KERN_INFO) then " NAME=0x%lx " per table, no "efi: " pr_fmt; these labels first.
OLD_TABLE_LABELS = (
    "MPS", "ACPI 2.0", "ACPI", "SMBIOS 3.0", "SMBIOS", "UVsystab", "HCDP", "UGA", "SALsystab",
    "ESRT",
)  # fmt: skip
MESSAGES: tuple[Message, ...] = (
    *(Message(f"{label}=", "old_tables") for label in OLD_TABLE_LABELS),
    # Linux before the "efi: " pr_fmt (2.6.x-3.x x86 efi.c): "EFI v2.00 by X", "EFI: mem00: ..."
    Message("EFI v", "old_efi", (r"EFI v\d",)),
    Message("EFI: mem", "old_memmap", ("EFI: mem",)),
    Message("efi:", "efi", ("efi: ",)),
    Message("esrt:", "esrt", ("esrt: ",)),
    Message("e820: ", "e820_change", ("e820: ",)),
    Message("BIOS-", "bios", ("BIOS-e820: ",)),
    # Linux arch/x86/xen/enlighten_pv.c xen_banner
    Message("Booting paravirtualized kernel on ", "banner", ("Booting paravirtualized kernel ",)),
    Message("mem", "memmap"),  # kernels without the "efi: " pr_fmt
    Message("Linux version ", "linux_version", ("Linux version ",)),
    Message("Command line: ", "command_line", ("Command line: ",)),
    Message("Kernel command line: ", "kernel_command_line", ("Kernel command line: ",)),
    Message("DMI: ", "dmi", ("DMI: ",)),
    Message("Xen", "dom0_xen", (r"Xen: \[mem ", "Xen version: ")),
    Message("Hypervisor detected: Xen PV", "xen_pv", ("Hypervisor detected: Xen",)),
    Message("ACPI in unprivileged domain disabled", "domu", ("ACPI in unprivileged domain",)),
    Message("ACPI: RSDP ", "rsdp"),
    Message("xen_mcelog: ", "mcelog", ("xen_mcelog: ",)),
)
# The kernel's own syslog tag, which Reader.message strips from a message that starts with it.
KERNEL_TAG_WORD = "kernel"

# Generated from MESSAGES:
# - the start of a message, longest first (a message starts with at most one of them);
STARTS = re.compile(
    "|".join(re.escape(m.start) for m in sorted(MESSAGES, key=lambda m: -len(m.start)))
)
# - the first letters of every start (a cheap test before STARTS);
LINUX_FIRST = frozenset(m.start[0] for m in MESSAGES)
# - known message starts after a prefix nothing knows (dmesg -T in another locale,
#   journalctl -o short-full/short-unix/with-unit, localized syslog months, bare times,
#   verbose MESSAGE=), after a blank, ']', '>', ':' or '=';
BODY = re.compile(r"(?<=[\s\]>:=])(?:" + "|".join(b for m in MESSAGES for b in m.body) + ")")
# - for the fast path (bytes): the first byte of a message that may matter, and a lookahead
#   that holds at the start of a message nothing reads.
FIRST_BYTES = frozenset(c.encode() for c in LINUX_FIRST | {KERNEL_TAG_WORD[0]})
IGNORED_BYTES = (
    rb"(?!"
    + b"|".join(re.escape(s.encode()) for s in sorted({m.start for m in MESSAGES}, key=len)[::-1])
    + b"|"
    + KERNEL_TAG_WORD.encode()
    + rb")"
)

# - for the fast path (bytes): a known message start anywhere after a blank or ']>:=' (wider
#   than BODY: a non-ASCII byte may be a blank or a digit to the str pattern).
BODY_BYTES = (
    rb"[\s\]>:=\x80-\xff](?:"
    + b"|".join(b.encode().replace(rb"\d", rb"[0-9\x80-\xff]") for m in MESSAGES for b in m.body)
    + rb")"
)

# --------------------------------------------------------------------------------------------
# Message patterns
# --------------------------------------------------------------------------------------------

HEX = "[0-9a-fA-F]{1,16}"
EFI_VERSION = re.compile(r"EFI v(\d{1,5}\.\d{1,5}(?:\.\d{1,5})?) by (.{0,200})$")
MEM_NEW = re.compile(
    rf"mem(\d{{1,6}}): \[([^\]]{{1,96}})\] range=\[0x({HEX})-0x({HEX})\]"
    r" {0,4}\((\d{1,20})MB\) {0,4}$"
)
MEM_OLD = re.compile(
    rf"mem(\d{{1,6}}): type=(\d{{1,10}}), attr=0x({HEX}), range=\[0x({HEX})-0x({HEX})\)"
    r" {0,4}\((\d{1,20})MB\) {0,4}$"
)
ARM_MAP = re.compile(rf"0x({HEX})-0x({HEX}) {{1,4}}\[([^\]]{{1,96}})\]\*? {{0,4}}$")
_TABLE_TOKEN = re.compile(
    rf" {{0,8}}(\()?([^=():\s][^=():]{{0,63}}?)=0x({HEX})(?:( {{1,4}}unusable)\))?(?= |$)"
)
E820_LINE = re.compile(rf"([A-Za-z][\w -]{{0,31}}): \[(mem|gap) 0x({HEX})-0x({HEX})\](.{{0,200}})$")
E820_CHANGE = re.compile(rf"(update|remove) \[mem 0x({HEX})-0x({HEX})\](.{{0,200}})$")
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
XEN_VERSION = re.compile(r"Xen version (\d{1,4}\.\d{1,4}[^\s()]{0,64})")
DOM0_XEN_VERSION = re.compile(r"Xen version: (\d{1,4}\.\d{1,4}[^\s()]{0,64})(.{0,64})$")
XEN_RAM_MAP = re.compile(r"(Initial )?\S{1,32} RAM map:$")
XEN_E820_NEW = re.compile(rf" {{0,4}}\[({HEX}), ({HEX})\] (.{{1,64}})$")
XEN_E820_OLD = re.compile(rf" {{0,4}}({HEX}) - ({HEX}) (.{{1,64}})$")
XEN_EFI_DESC = re.compile(rf" {{0,4}}({HEX})-({HEX}) type=(\d{{1,10}}) attr=({HEX}) {{0,4}}$")
RESERVING = "Reserving ESRT space from"  # Linux esrt.c efi_esrt_init
MEM_START = re.compile(r"mem\d{1,6}:")
# the start of a Xen map line (in a map, a line that starts with a number), cut anywhere
XEN_EFI_START = re.compile(rf" {{0,4}}{HEX}(?:[ \-=]|$)")
XEN_E820_START = re.compile(rf" {{0,4}}\[?{HEX}(?:[ ,\-=\]]|$)")
# A config-table line: NAME=... tokens, maybe "(NAME=... unusable)" (wider than _TABLE_TOKEN).
TABLEISH = re.compile(r" {0,8}\(?[^=():\s][^=():]{0,63}=")
# (kind, pattern, how to read each group: x = hex, p = pointer (hex or hashed), d = decimal)
ESRT_PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("reserving", re.compile(rf"Reserving ESRT space from 0x({HEX}) to 0x({HEX})\.?$"), "xx"),
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


def read_values(groups: tuple[str | None, ...], how: str) -> tuple[int, ...]:
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


def typeattr(inner: str) -> tuple[int, int | None] | None:
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
            return mtype, int(rest[0][7:], 16) & U64
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


def e820_kind(text: str) -> tuple[str, int | None]:
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


def xen_e820_kind(text: str) -> tuple[str, int | None]:
    t = text.strip()
    if t.startswith("(") and t.endswith(")"):
        t = t[1:-1]
    return e820_kind(t)


def scan_tables(body: str) -> list[tuple[str, int, bool]] | None:
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
