"""Synthetic kernel logs for the survey benchmark and tests: deterministic from a seed, any size.

    python bench/make_corpus.py OUT --logs N --seed S [--size-mb M] [--truth FILE] [--jobs J]

Each log is one machine's firmware (a consistent, sorted EFI memory map of 50 to 2,000
descriptors and its configuration tables, the ESRT in any of the 16 memory types or absent) seen
through one of the ways people capture kernel logs: ``dmesg`` (plain, ``-r`` levels, caller ids,
``-T``), syslog, ``journalctl -k`` (short and ISO, with ``-- Boot`` markers), serial consoles
with ``(XEN)`` lines, and ``xl dmesg``; as an ``efi=debug`` log with ``memNN`` lines, an
E820-only log, a Xen PV dom0 log (``(NAME=0x... unusable)`` on 6.3+), Xen's own console; some
with two boots, some gzip-compressed, a few garbage files. Real-looking kernel chatter fills each
log to its size.

What each log prints about the ESRT is what the planted stack prints for the planted firmware,
written from reference/efi-xen-facts.md (not from efihandoff):

- Linux drivers/firmware/efi/esrt.c ``efi_esrt_init`` (6.3+: BS data, RT data, ACPI reclaim,
  ACPI NVS or EFI_MEMORY_RUNTIME pass; 6.1: BS data, RT data or RUNTIME), "esrt: Reserving ESRT
  space from %pa to %pa."; arch/x86/platform/efi/quirks.c ``efi_arch_mem_reserve`` for BS data
  ("e820: update [mem ...] usable ==> reserved", native only).
- Linux drivers/xen/efi.c ``xen_efi_config_table_is_usable`` (6.3+ dom0: RT code/data, ACPI
  reclaim, ACPI NVS, reserved), drivers/firmware/efi/efi.c ``match_config_table`` printing
  ``(NAME=0x%lx unusable)``; a 6.1 dom0 never parses the ESRT (no EFI_MEMMAP).
- Xen xen/common/efi/boot.c ``efi_relocate_esrt`` (4.17.0 from xen.efi, 4.17.1+ also from
  multiboot2): a BS-data ESRT is copied into a fresh EfiACPIReclaimMemory pool; the dom0 sees the
  copy's address. xen/arch/x86/efi/efi-boot.h ``efi_arch_process_memory_map`` for Xen's E820.

:func:`make_corpus` returns the ground truth (what was planted) so tests can work out expected
counts by hand; ``--truth FILE`` writes it as JSON lines.
"""

# ruff: noqa: E501  (kernel messages and templates are kept on one line, as the kernel prints them)
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

PAGE = 4096
RUNTIME = 1 << 63

# UEFI 2.10 table 7-5 EFI_MEMORY_TYPE, by value.
TYPES = (
    "EfiReservedMemoryType",
    "EfiLoaderCode",
    "EfiLoaderData",
    "EfiBootServicesCode",
    "EfiBootServicesData",
    "EfiRuntimeServicesCode",
    "EfiRuntimeServicesData",
    "EfiConventionalMemory",
    "EfiUnusableMemory",
    "EfiACPIReclaimMemory",
    "EfiACPIMemoryNVS",
    "EfiMemoryMappedIO",
    "EfiMemoryMappedIOPortSpace",
    "EfiPalCode",
    "EfiPersistentMemory",
    "EfiUnacceptedMemoryType",
)
(RESERVED, LOADER_CODE, LOADER_DATA, BS_CODE, BS_DATA, RT_CODE, RT_DATA, CONVENTIONAL,
 UNUSABLE, ACPI_RECLAIM, ACPI_NVS, MMIO, MMIO_PORT, PAL_CODE, PERSISTENT, UNACCEPTED) = range(16)
# Linux drivers/firmware/efi/efi.c memory_type_name[] (the names efi=debug prints).
LINUX_NAMES = (
    "Reserved", "Loader Code", "Loader Data", "Boot Code", "Boot Data", "Runtime Code",
    "Runtime Data", "Conventional", "Unusable", "ACPI Reclaim", "ACPI Mem NVS", "MMIO",
    "MMIO Port", "PAL Code", "Persistent", "Unaccepted",
)
# efi_md_typeattr_format: "|%3s|%2s|...|%3s|%2s|%2s|%2s|%2s]" in this order.
_ATTR_COLUMNS = (
    ("RUN", RUNTIME, 3), ("HP", 0x100000, 2), ("MR", 0x10000, 2), ("CC", 0x80000, 2),
    ("SP", 0x40000, 2), ("NV", 0x8000, 2), ("XP", 0x4000, 2), ("RP", 0x2000, 2),
    ("WP", 0x1000, 2), ("RO", 0x20000, 2), ("UCE", 0x10, 3), ("WB", 0x8, 2), ("WT", 0x4, 2),
    ("WC", 0x2, 2), ("UC", 0x1, 2),
)
RAM_ATTR = 0xF  # UC|WC|WT|WB
_KNOWN_ATTR = sum(bit for _, bit, _ in _ATTR_COLUMNS)
_RAM_TYPES = frozenset({LOADER_CODE, LOADER_DATA, BS_CODE, BS_DATA, CONVENTIONAL})
# Linux 6.3 esrt.c efi_esrt_init (01de145dc7fb added the ACPI types); 6.1 had BS/RT data only.
ESRT_OK_63 = frozenset({BS_DATA, RT_DATA, ACPI_RECLAIM, ACPI_NVS})
ESRT_OK_61 = frozenset({BS_DATA, RT_DATA})
# drivers/xen/efi.c xen_efi_config_table_is_usable (6.3).
XEN_USABLE = frozenset({RT_CODE, RT_DATA, ACPI_RECLAIM, ACPI_NVS, RESERVED})

ESRT_GUID = "b122a263-3661-4f68-9929-78f8b0d62180"

# Weights of the ESRT's memory type: BS data as the spec says, RT data as older edk2 did, the
# rest rarer (every type appears in a large corpus).
_ESRT_TYPE_WEIGHTS = (
    (BS_DATA, 40), (RT_DATA, 20), (ACPI_RECLAIM, 8), (ACPI_NVS, 4), (RESERVED, 5),
    (CONVENTIONAL, 3), (LOADER_DATA, 3), (BS_CODE, 3), (RT_CODE, 3), (LOADER_CODE, 2),
    (MMIO, 2), (UNUSABLE, 2), (MMIO_PORT, 1), (PAL_CODE, 1), (PERSISTENT, 1), (UNACCEPTED, 1),
)

KINDS = ("efi-debug", "e820", "dom0", "dom0-serial", "xl", "garbage")
DEFAULT_MIX = {"efi-debug": 30, "e820": 28, "dom0": 16, "dom0-serial": 10, "xl": 5, "garbage": 5}
STYLES = ("dmesg", "level", "caller", "human", "syslog", "journal", "iso")
GARBAGE = ("binary", "empty", "text", "no-efi", "corrupt-gz")


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantedBoot:
    """One boot in a log: the firmware planted and the stack that printed the log."""

    kind: str  # "efi-debug" | "e820" | "dom0" | "dom0-serial" | "xl"
    linux: str | None  # kernel release that printed it (None: xl dmesg)
    xen: str | None  # Xen version (dom0 and xl logs)
    bootloader: str | None  # Xen's "Bootloader:" ("EFI" for xen.efi, "GRUB 2.06" multiboot2)
    descriptors: int  # firmware memory-map size
    esrt_type: str | None  # where firmware put the ESRT (None: no ESRT)
    esrt_runtime: bool  # its descriptor carries EFI_MEMORY_RUNTIME
    esrt_address: int | None
    esrt_count: int
    relocated: bool  # Xen copied it into EfiACPIReclaimMemory (dom0 logs)
    seen_type: str | None  # the type at the address the log prints (after any relocation)
    seen_address: int | None  # the ESRT address the log prints (None: not printed)
    reserving: bool  # the log prints "esrt: Reserving ESRT space"
    unusable: bool  # the log prints "(ESRT=0x... unusable)"
    efi_map_printed: bool  # an EFI memory map is in the log (Linux efi=debug or Xen's)


@dataclass(frozen=True)
class Planted:
    """One file of the corpus."""

    path: str  # relative to the corpus root, "/" separated
    kind: str
    style: str
    gzip: bool
    size: int
    boots: tuple[PlantedBoot, ...] = ()
    garbage: str | None = None  # what kind of garbage

    def to_json(self) -> dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Firmware: a consistent memory map with its tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Desc:
    type: int
    start: int
    pages: int
    attr: int

    @property
    def end(self) -> int:
        return self.start + self.pages * PAGE


@dataclass
class Firmware:
    descs: list[Desc]
    tables: list[tuple[str, int]]  # (Linux label, address) in config-array order
    esrt_index: int | None  # descriptor holding the ESRT
    esrt_count: int
    vendor: str
    dmi: str
    efi_revision: tuple[int, int]

    @property
    def esrt_address(self) -> int | None:
        return next((a for lab, a in self.tables if lab == "ESRT"), None)

    def type_at(self, addr: int) -> Desc | None:
        for d in self.descs:
            if d.start <= addr < d.end:
                return d
        return None


_VENDORS = (
    ("American Megatrends", "ASUSTeK COMPUTER INC. PRIME B550-PLUS/PRIME B550-PLUS, BIOS 3607"),
    ("Lenovo", "LENOVO 21CBCTO1WW/21CBCTO1WW, BIOS N3AET72W (1.37 )"),
    ("HP", "HP HP EliteBook 840 G8 Notebook PC/880D, BIOS T37 Ver. 01.15.00"),
    ("INSYDE Corp.", "Framework Laptop 13 (AMD Ryzen 7040Series)/FRANMDCP07, BIOS 03.05"),
    ("Dell Inc.", "Dell Inc. Latitude 7440/0R4KXN, BIOS 1.12.1"),
    ("EDK II", "QEMU Standard PC (Q35 + ICH9, 2009), BIOS edk2-stable202402"),
    ("Apple", "Apple Inc. MacBookPro14,1/Mac-B4831CEBD52A0C4C, BIOS 529.0.0.0.0"),
    ("Phoenix Technologies Ltd.", "Supermicro Super Server/X12SPi-TF, BIOS 1.4b"),
    ("HPE", "HPE ProLiant DL360 Gen10/ProLiant DL360 Gen10, BIOS U32"),
    ("Micro-Star International", "Micro-Star International Co., Ltd. MS-7C56/B550-A PRO (MS-7C56), BIOS A.F0"),
)

# Typical middle-of-map types and the weights real firmware maps show.
_MID_TYPES = (
    (CONVENTIONAL, 24), (BS_DATA, 26), (BS_CODE, 16), (LOADER_DATA, 4), (LOADER_CODE, 2),
    (RT_DATA, 7), (RT_CODE, 6), (ACPI_RECLAIM, 2), (ACPI_NVS, 3), (RESERVED, 10),
)


def _attr_for(t: int, rng: random.Random) -> int:
    if t in (RT_CODE, RT_DATA):
        return RUNTIME | RAM_ATTR | (0x4000 if t == RT_DATA and rng.random() < 0.5 else 0)
    if t == MMIO:
        return RUNTIME | 0x1
    if t == MMIO_PORT:
        return RUNTIME | 0x1
    if t == RESERVED:
        return 0 if rng.random() < 0.5 else RAM_ATTR
    if t in (UNUSABLE, PAL_CODE):
        return RAM_ATTR
    return RAM_ATTR


def _weighted(rng: random.Random, pairs: Sequence[tuple[int, int]]) -> int:
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for v, w in pairs:
        x -= w
        if x < 0:
            return v
    return pairs[-1][0]


def make_firmware(rng: random.Random, n: int, esrt_type: int | None) -> Firmware:
    """A sorted, non-overlapping map of ``n`` descriptors with tables placed in it."""
    descs: list[Desc] = [
        Desc(BS_CODE, 0, 1, RAM_ATTR),
        Desc(CONVENTIONAL, 0x1000, 0x9E, RAM_ATTR),
        Desc(RESERVED, 0x9F000, 0x61, 0),
    ]
    top_low = rng.choice((0x7F000000, 0x8F000000, 0xBF000000, 0xCF000000))
    n_mid = max(8, n - 3 - 4 - 1)
    addr = 0x100000
    # Sizes in pages: mostly small fragments, the remainder of low RAM spread over the
    # conventional ranges.
    sizes = [rng.choice((1, 1, 2, 3, 4, 8, 16, 32, 64, 128, 256, 512)) for _ in range(n_mid)]
    types = [_weighted(rng, _MID_TYPES) for _ in range(n_mid)]
    for i in range(1, n_mid):  # real maps rarely list two neighbours of one type
        if types[i] == types[i - 1] and rng.random() < 0.7:
            types[i] = CONVENTIONAL if types[i] != CONVENTIONAL else BS_DATA
    budget = (top_low - addr) // PAGE - sum(sizes)
    conv = [i for i, t in enumerate(types) if t == CONVENTIONAL] or [0]
    extra = max(0, budget) // len(conv)
    for i in conv:
        sizes[i] += extra if budget > 0 else 0
    for t, p in zip(types, sizes, strict=True):
        if addr + p * PAGE > top_low:
            p = max(1, (top_low - addr) // PAGE)
            if addr + p * PAGE > top_low:
                break
        descs.append(Desc(t, addr, p, _attr_for(t, rng)))
        addr += p * PAGE
    descs.append(Desc(MMIO, 0xE0000000, 0x10000, RUNTIME | 0x1))
    descs.append(Desc(MMIO, 0xFE000000, 0x11, RUNTIME | 0x1))
    descs.append(Desc(MMIO_PORT, 0xFEC00000, 0x1, RUNTIME | 0x1))
    descs.append(Desc(RESERVED, 0xFF000000, 0x1000, 0x4000000000000001 if rng.random() < 0.3 else 0))
    high_gib = rng.choice((4, 8, 12, 28, 60, 124))
    descs.append(Desc(CONVENTIONAL, 0x100000000, high_gib << 18, RAM_ATTR))
    while len(descs) < n:  # top up: small boot-services fragments at the start of high RAM
        last = descs[-1]
        p = min(rng.choice((1, 2, 4, 16, 64)), last.pages - 1)
        if p < 1:
            break
        t = rng.choice((BS_DATA, BS_CODE, LOADER_DATA))
        descs[-1] = Desc(t, last.start, p, RAM_ATTR)
        descs.append(replace(last, start=last.start + p * PAGE, pages=last.pages - p))
    vendor, dmi = rng.choice(_VENDORS)
    fw = Firmware(descs, [], None, rng.randint(1, 8), vendor,
                  f"{dmi} {rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(2019, 2025)}",
                  rng.choice(((2, 70), (2, 80), (2, 90), (2, 31))))
    _place_tables(rng, fw, esrt_type)
    return fw


def _host(rng: random.Random, fw: Firmware, t: int, used: set[int], *, below_4g: bool = True) -> int:
    """Index of a descriptor of type ``t`` (made if none) not already hosting a table."""
    cands = [
        i for i, d in enumerate(fw.descs)
        if d.type == t and i not in used and i >= 3 and (not below_4g or d.end <= 1 << 32)
    ]
    if not cands:
        pool = [
            i for i, d in enumerate(fw.descs)
            if i >= 3 and i not in used and d.end <= 1 << 32 and d.type not in (MMIO, MMIO_PORT)
            and d.pages <= 4096
        ]
        i = rng.choice(pool)
        fw.descs[i] = replace(fw.descs[i], type=t, attr=_attr_for(t, rng))
        return i
    return rng.choice(cands)


def _place_tables(rng: random.Random, fw: Firmware, esrt_type: int | None) -> None:
    used: set[int] = set()
    out: list[tuple[str, int]] = []

    def at(i: int, offset: int) -> int:
        d = fw.descs[i]
        page = rng.randrange(d.pages) if d.pages > 1 else 0
        return d.start + page * PAGE + offset

    acpi = _host(rng, fw, ACPI_RECLAIM, used)
    used.add(acpi)
    rsdp = fw.descs[acpi].end - PAGE
    out += [("ACPI", rsdp), ("ACPI 2.0", rsdp + 0x14)]
    smbios_i = _host(rng, fw, rng.choice((RT_DATA, RT_DATA, RESERVED)), used)
    used.add(smbios_i)
    smbios = fw.descs[smbios_i].start
    if rng.random() < 0.8:
        out.append(("SMBIOS", smbios))
    if rng.random() < 0.7:
        out.append(("SMBIOS 3.0", smbios + PAGE if fw.descs[smbios_i].pages > 1 else smbios + 0x20))
    if rng.random() < 0.75:
        i = _host(rng, fw, rng.choice((BS_DATA, BS_DATA, RT_DATA)), used)
        used.add(i)
        out.append(("MEMATTR", at(i, 0x18)))
    if esrt_type is not None:
        i = _host(rng, fw, esrt_type, used)
        used.add(i)
        fw.esrt_index = i
        out.append(("ESRT", at(i, 0x18)))
    if rng.random() < 0.6:
        i = _host(rng, fw, LOADER_DATA, used)
        used.add(i)
        out.append(("RNG", at(i, 0x18)))
    if rng.random() < 0.5:
        i = _host(rng, fw, BS_DATA, used)
        used.add(i)
        out.append(("TPMEventLog", at(i, 0x18)))
    if rng.random() < 0.3:
        i = _host(rng, fw, ACPI_NVS, used)
        used.add(i)
        out.append(("TPMFinalLog", fw.descs[i].start))
    if rng.random() < 0.15:
        i = _host(rng, fw, BS_DATA, used)
        used.add(i)
        out.append(("RTPROP", at(i, 0x18)))
    if rng.random() < 0.3:  # firmware installs tables in varied orders
        head, tail = out[:2], out[2:]
        rng.shuffle(tail)
        out = head + tail
    fw.tables = out


def relocate_for_xen(fw: Firmware) -> tuple[list[Desc], int]:
    """Xen's efi_relocate_esrt: AllocatePool(EfiACPIReclaimMemory) carves a page off the top of
    the highest conventional range below 4 GiB; returns the final map and the copy's address."""
    descs = list(fw.descs)
    i = max(
        (k for k, d in enumerate(descs) if d.type == CONVENTIONAL and d.end <= 1 << 32 and d.pages > 2),
        key=lambda k: descs[k].start,
    )
    d = descs[i]
    descs[i] = replace(d, pages=d.pages - 1)
    page = d.end - PAGE
    descs.insert(i + 1, Desc(ACPI_RECLAIM, page, 1, RAM_ATTR))
    return descs, page + 0x18


# --------------------------------------------------------------------------------------------
# Printing what Linux and Xen print
# --------------------------------------------------------------------------------------------


def typeattr(d: Desc) -> str:
    """Linux drivers/firmware/efi/efi.c efi_md_typeattr_format: fixed columns, or the raw value
    when a bit has no mnemonic."""
    if d.attr & ~_KNOWN_ATTR:
        return f"[{LINUX_NAMES[d.type]:<12}|attr=0x{d.attr:016x}]"
    cols = "|".join(f"{name if d.attr & bit else '':>{width}}" for name, bit, width in _ATTR_COLUMNS)
    return f"[{LINUX_NAMES[d.type]:<12}|{cols}]"


def mem_line(i: int, d: Desc) -> str:
    """arch/x86/platform/efi/efi.c efi_print_memmap."""
    return (
        f"efi: mem{i:02d}: {typeattr(d)} range=[0x{d.start:016x}-0x{d.end - 1:016x}] "
        f"({(d.pages * PAGE) >> 20}MB)"
    )


def _e820_kind(d: Desc) -> str:
    # drivers/firmware/efi/libstub/x86-stub.c setup_e820
    if d.type in _RAM_TYPES:
        return "usable"
    if d.type == ACPI_RECLAIM:
        return "ACPI data"
    if d.type == ACPI_NVS:
        return "ACPI NVS"
    if d.type == UNUSABLE:
        return "unusable"
    if d.type == PERSISTENT:
        return "persistent (type 7)"
    return "reserved"


def _xen_e820_kind(d: Desc, mapbs: bool = False) -> str:
    # xen/arch/x86/efi/efi-boot.h efi_arch_process_memory_map (4.17+: RUNTIME RAM reserved)
    if d.type in (BS_CODE, BS_DATA) and mapbs:
        return "reserved"
    if d.type in _RAM_TYPES:
        if d.attr & RUNTIME:
            return "reserved"
        return "usable" if d.attr & 0x8 else "unusable"
    if d.type == UNUSABLE:
        return "unusable"
    if d.type == ACPI_RECLAIM:
        return "ACPI data"
    if d.type == ACPI_NVS:
        return "ACPI NVS"
    return "reserved"


def _merged(descs: Sequence[Desc], kind: Callable[[Desc], str]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    for d in descs:
        k = kind(d)
        if out and out[-1][2] == k and out[-1][1] == d.start:
            out[-1] = (out[-1][0], d.end, k)
        else:
            out.append((d.start, d.end, k))
    return out


def e820_lines(descs: Sequence[Desc], who: str, kind: Callable[[Desc], str] = _e820_kind) -> list[str]:
    """arch/x86/kernel/e820.c e820__print_table (inclusive end, pre-7.0 wording)."""
    return [f"{who}: [mem 0x{s:016x}-0x{e - 1:016x}] {k}" for s, e, k in _merged(descs, kind)]


def xen_ram_map(descs: Sequence[Desc]) -> list[str]:
    """Xen xen/arch/x86/e820.c print_e820_memory_map (4.17 style, inclusive end)."""
    return [f" [{s:016x}, {e - 1:016x}] ({k})" for s, e, k in _merged(descs, _xen_e820_kind)]


def xen_efi_map(descs: Sequence[Desc]) -> list[str]:
    """Xen xen/common/efi/boot.c efi_init_memory (RT code/data get RUNTIME)."""
    out = []
    for d in descs:
        attr = d.attr | (RUNTIME if d.type in (RT_CODE, RT_DATA) else 0)
        out.append(f" {d.start:013x}-{d.end - 1:013x} type={d.type} attr={attr:016x}")
    return out


def table_tokens(tables: Sequence[tuple[str, int]], unusable: set[str]) -> str:
    """match_config_table: "NAME=0x%lx " or, refused by the Xen allowlist, "(NAME=0x%lx unusable) "."""
    return "".join(
        f"({lab}=0x{a:x} unusable) " if lab in unusable else f"{lab}=0x{a:x} " for lab, a in tables
    )


def _efi_header(fw: Firmware, linux: tuple[int, int]) -> str:
    # efi.c efi_systab_report_header: "2.70" before 6.2, "2.7" after.
    major, minor = fw.efi_revision
    if linux < (6, 2):
        return f"efi: EFI v{major}.{minor:02d} by {fw.vendor}"
    text = f"{minor // 10}" + (f".{minor % 10}" if minor % 10 else "")
    return f"efi: EFI v{major}.{text} by {fw.vendor}"


# --------------------------------------------------------------------------------------------
# Noise: kernel chatter
# --------------------------------------------------------------------------------------------


def _noise_pool(rng: random.Random, n: int) -> list[str]:
    r = rng
    hexs = lambda k: f"{r.getrandbits(4 * k):0{k}x}"  # noqa: E731
    devs = ("nvme0n1", "sda", "sdb", "mmcblk0", "dm-0", "vda")
    ifs = ("wlp0s20f3", "enp3s0", "eno1", "wlan0", "eth0", "vif3.0")
    t: list[Callable[[], str]] = [
        lambda: f"usb {r.randint(1, 4)}-{r.randint(1, 8)}: new high-speed USB device number {r.randint(2, 40)} using xhci_hcd",
        lambda: f"usb {r.randint(1, 4)}-{r.randint(1, 8)}: New USB device found, idVendor={hexs(4)}, idProduct={hexs(4)}, bcdDevice= {r.randint(0, 9)}.{r.randint(0, 99):02d}",
        lambda: f"usb {r.randint(1, 4)}-{r.randint(1, 8)}: Product: {r.choice(('USB Receiver', 'Integrated Camera', 'Bluetooth Radio', 'USB2.0 Hub'))}",
        lambda: f"pci 0000:{r.randint(0, 9):02x}:{r.randint(0, 31):02x}.{r.randint(0, 7)}: [{hexs(4)}:{hexs(4)}] type 00 class 0x{r.choice(('060400', '0c0330', '028000', '010802', '030000'))} PCIe Endpoint",
        lambda: f"pci 0000:{r.randint(0, 9):02x}:{r.randint(0, 31):02x}.{r.randint(0, 7)}: BAR {r.randint(0, 5)} [mem 0x{hexs(8)}-0x{hexs(8)} 64bit pref]",
        lambda: f"pci_bus 0000:{r.randint(0, 9):02x}: resource {r.randint(4, 7)} [mem 0x{hexs(8)}-0x{hexs(8)} window]",
        lambda: f"ACPI: {r.choice(('SSDT', 'FACP', 'DSDT', 'APIC', 'HPET', 'MCFG', 'BGRT', 'TPM2'))} 0x{hexs(16).upper()} {hexs(6).upper()} (v{r.randint(1, 6):02d} {r.choice(('LENOVO', 'ALASKA', 'DELL  ', 'HPQOEM', 'INSYDE'))} {r.choice(('CB-01   ', 'A M I   ', 'TP-N3A  '))} {hexs(8).upper()} ACPI {hexs(8).upper()})",
        lambda: f"ACPI: Reserving {r.choice(('FACP', 'DSDT', 'SSDT', 'APIC'))} table memory at [mem 0x{hexs(8)}-0x{hexs(8)}]",
        lambda: f"smpboot: CPU {r.randint(1, 31)} is now offline",
        lambda: "x86: Booting SMP configuration:",
        lambda: f"audit: type=1400 audit({r.randint(1700000000, 1760000000)}.{r.randint(0, 999):03d}:{r.randint(2, 999)}): apparmor=\"STATUS\" operation=\"profile_load\" profile=\"unconfined\" name=\"{r.choice(('nvidia_modprobe', 'lsb_release', 'man_groff', 'snap-update-ns'))}\" pid={r.randint(300, 9999)} comm=\"apparmor_parser\"",
        lambda: f"EXT4-fs ({r.choice(devs)}p{r.randint(1, 4)}): mounted filesystem {hexs(8)}-{hexs(4)}-{hexs(4)}-{hexs(4)}-{hexs(12)} r/w with ordered data mode. Quota mode: none.",
        lambda: f"{r.choice(ifs)}: Limiting TX power to {r.randint(20, 30)} ({r.randint(20, 33)} - {r.randint(0, 3)}) dBm as advertised by {hexs(2)}:{hexs(2)}:{hexs(2)}:{hexs(2)}:{hexs(2)}:{hexs(2)}",
        lambda: f"{r.choice(ifs)}: authenticate with {hexs(2)}:{hexs(2)}:{hexs(2)}:{hexs(2)}:{hexs(2)}:{hexs(2)} (local address={hexs(2)}:{hexs(2)}:{hexs(2)}:{hexs(2)}:{hexs(2)}:{hexs(2)})",
        lambda: f"IPv6: ADDRCONF(NETDEV_CHANGE): {r.choice(ifs)}: link becomes ready",
        lambda: f"nvme nvme0: {r.randint(4, 16)}/0/0 default/read/poll queues",
        lambda: f"Memory: {r.randint(4000000, 64000000)}K/{r.randint(4000000, 64000000)}K available ({r.randint(12000, 20000)}K kernel code, {r.randint(2000, 9000)}K rwdata, {r.randint(5000, 9000)}K rodata, {r.randint(2000, 5000)}K init, {r.randint(2000, 9000)}K bss, {r.randint(100000, 900000)}K reserved, 0K cma-reserved)",
        lambda: f"clocksource: tsc: mask: 0xffffffffffffffff max_cycles: 0x{hexs(11)}, max_idle_ns: {r.randint(10 ** 11, 10 ** 12)} ns",
        lambda: f"tsc: Refined TSC clocksource calibration: {r.randint(1000, 4000)}.{r.randint(0, 999):03d} MHz",
        lambda: f"input: {r.choice(('AT Translated Set 2 keyboard', 'Power Button', 'Lid Switch', 'ThinkPad Extra Buttons', 'ELAN0670:00 04F3:3150 Touchpad'))} as /devices/{r.choice(('platform/i8042/serio0', 'LNXSYSTM:00/LNXPWRBN:00', 'pci0000:00/0000:00:15.3'))}/input/input{r.randint(0, 40)}",
        lambda: f"systemd[1]: {r.choice(('Started', 'Finished', 'Reached target', 'Mounting', 'Starting'))} {r.choice(('Journal Service', 'Load Kernel Modules', 'Local File Systems', 'Network Manager', 'udev Kernel Device Manager', 'Apply Kernel Variables'))}.",
        lambda: f"Bluetooth: hci0: {r.choice(('Firmware revision 0.0 build 14 week 44 2021', 'Waiting for firmware download to complete', 'Bootloader revision 0.4 build 0 week 30 2018'))}",
        lambda: f"iwlwifi 0000:00:14.3: {r.choice(('loaded firmware version 83.e8f84e98.0', 'Detected RF GF, rfid=0x2010d000', 'base HW address ' + hexs(2) + ':' + hexs(2) + ':' + hexs(2) + ':' + hexs(2) + ':' + hexs(2) + ':' + hexs(2)))}",
        lambda: f"i915 0000:00:02.0: [drm] {r.choice(('GT0: GuC firmware i915/tgl_guc_70.bin version 70.20.0', 'Finished loading DMC firmware i915/adlp_dmc.bin (v2.20)', 'fb0: i915drmfb frame buffer device'))}",
        lambda: f"amdgpu 0000:{r.randint(3, 9):02x}:00.0: amdgpu: {r.choice(('SMU is initialized successfully!', 'VRAM: 512M 0x000000F400000000 - 0x000000F41FFFFFFF (512M used)', 'Will use PSP to load VCN firmware'))}",
        lambda: f"xhci_hcd 0000:00:{r.randint(13, 20):02x}.0: xHCI Host Controller",
        lambda: "random: crng init done",
        lambda: f"NET: Registered PF_{r.choice(('INET6', 'PACKET', 'NETLINK', 'BLUETOOTH', 'ALG', 'VSOCK'))} protocol family",
        lambda: f"zram: Added device: zram{r.randint(0, 3)}",
        lambda: f"Adding {r.randint(1000000, 9000000)}k swap on /dev/zram0.  Priority:100 extents:1 across:{r.randint(1000000, 9000000)}k SSDsc",
        lambda: f"perf: interrupt took too long ({r.randint(2500, 9000)} > {r.randint(2500, 9000)}), lowering kernel.perf_event_max_sample_rate to {r.randint(20000, 90000)}",
        lambda: f"{r.choice(('sd 0:0:0:0', 'sd 1:0:0:0'))}: [{r.choice(('sda', 'sdb'))}] {r.randint(10 ** 8, 10 ** 10)} 512-byte logical blocks: ({r.randint(100, 2000)} GB/{r.randint(100, 1900)} GiB)",
        lambda: f"PM: suspend {r.choice(('entry (s2idle)', 'entry (deep)', 'exit'))}",
        lambda: f"thinkpad_acpi: {r.choice(('ThinkPad BIOS N3AET72W (1.37 ), EC N3AHT24W', 'radio switch found; radios are enabled', 'battery 1 registered (start 0, stop 100, behaviours: 0x7)'))}",
        lambda: f"intel_rapl_common: Found RAPL domain {r.choice(('package', 'core', 'uncore', 'psys'))}",
        lambda: "cfg80211: Loading compiled-in X.509 certificates for regulatory database",
        lambda: f"Loaded X.509 cert '{r.choice(('Build time autogenerated kernel key', 'Debian Secure Boot CA', 'Fedora kernel signing key'))}: {hexs(40)}'",
        lambda: f"rcu: \tRCU restricting CPUs from NR_CPUS=8192 to nr_cpu_ids={r.randint(2, 64)}.",
        lambda: "kvm_amd: TSC scaling supported",
        lambda: "wireguard: WireGuard 1.0.0 loaded. See www.wireguard.com for information.",
        lambda: f"{r.choice(('docker0', 'br-' + hexs(12), 'virbr0'))}: port {r.randint(1, 4)}(veth{hexs(7)}) entered {r.choice(('blocking', 'forwarding', 'disabled'))} state",
        lambda: f"TCP: request_sock_TCP: Possible SYN flooding on port {r.randint(1, 65535)}. Sending cookies.  Check SNMP counters.",
        lambda: f"hrtimer: interrupt took {r.randint(10000, 999999)} ns",
        lambda: "mce: [Hardware Error]: Machine check events logged",
        lambda: "xen:balloon: Initialising balloon driver",
        lambda: "xen_netfront: Initialising Xen virtual ethernet driver",
        lambda: "efivars: Registered efivars operations",
        lambda: f"ucsi_acpi USBC000:00: {r.choice(('error -ETIMEDOUT: PPM init failed', 'con1: failed to get status'))}",
        lambda: f"ata{r.randint(1, 6)}: SATA link {r.choice(('up 6.0 Gbps (SStatus 133 SControl 300)', 'down (SStatus 0 SControl 300)'))}",
        lambda: f"BTRFS info (device {r.choice(devs)}p{r.randint(1, 3)}): {r.choice(('enabling ssd optimizations', 'using free space tree', 'disk space caching is enabled'))}",
        lambda: f"snd_hda_intel 0000:00:1f.3: {r.choice(('DSP detected with PCI class/subclass/prog-if info 0x040100', 'bound 0000:00:02.0 (ops i915_audio_component_bind_ops [i915])'))}",
        lambda: "fbcon: Taking over console",
        lambda: f"Console: switching to colour frame buffer device {r.choice(('240x67', '320x90', '160x50'))}",
        lambda: f"NVRM: loading NVIDIA UNIX x86_64 Kernel Module  {r.randint(470, 560)}.{r.randint(10, 99)}.{r.randint(1, 20):02d}",
        lambda: f"workqueue: {r.choice(('drm_fb_helper_damage_work', 'flush_to_ldisc', 'vmstat_shepherd'))} hogged CPU for >{r.randint(10000, 99999)}us {r.randint(4, 32)} times, consider switching to WQ_UNBOUND",
    ]
    return [r.choice(t)() for _ in range(n)]


# --------------------------------------------------------------------------------------------
# Prefixes and timestamps
# --------------------------------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HOSTS = ("thinkpad", "desktop", "dom0", "buildbox", "srv-db-04", "node17", "fw13", "pve")


class _Clock:
    """Kernel timestamps of one boot and the wall clock they map to."""

    def __init__(self, rng: random.Random, epoch: int) -> None:
        self.rng = rng
        self.usec = 0
        self.epoch = epoch  # seconds since 2000-01-01 of the boot

    def tick(self, early: bool) -> None:
        if early:
            if self.rng.random() < 0.3:
                self.usec += self.rng.randint(0, 40)
        else:
            self.usec += int(self.rng.expovariate(1 / 200_000)) + 1

    def wall(self) -> tuple[int, int, int, int, int, int, int]:
        s = self.epoch + self.usec // 1_000_000
        days, rem = divmod(s, 86400)
        # days since 2000-01-01 to y/m/d (civil calendar)
        y, m, d = _civil(days + 10957)
        return y, m, d, rem // 3600, rem // 60 % 60, rem % 60, (days + 5) % 7  # 2000-01-01: Sat


def _civil(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (m <= 2), m, d


class _Printer:
    """Formats lines in one capture style."""

    def __init__(self, style: str, rng: random.Random, host: str) -> None:
        self.style = style
        self.rng = rng
        self.host = host
        self.caller = 0

    def kernel(self, clock: _Clock, msg: str) -> str:
        sec, us = divmod(clock.usec, 1_000_000)
        st = self.style
        if st == "dmesg":
            return f"[{sec:5d}.{us:06d}] {msg}"
        if st == "level":
            return f"<{self.rng.choice((6, 6, 6, 4, 3, 7))}>[{sec:5d}.{us:06d}] {msg}"
        if st == "caller":
            if self.rng.random() < 0.05:
                self.caller = self.rng.randint(1, 900)
            return f"[{sec:5d}.{us:06d}][{'T' + str(self.caller):>6}] {msg}"
        y, mo, d, h, mi, s, wd = clock.wall()
        if st == "human":
            return f"[{_DAYS[wd]} {_MONTHS[mo - 1]} {d:2d} {h:02d}:{mi:02d}:{s:02d} {y}] {msg}"
        if st == "syslog":
            return f"{_MONTHS[mo - 1]} {d:2d} {h:02d}:{mi:02d}:{s:02d} {self.host} kernel: [{sec:5d}.{us:06d}] {msg}"
        if st == "journal":
            return f"{_MONTHS[mo - 1]} {d:02d} {h:02d}:{mi:02d}:{s:02d} {self.host} kernel: {msg}"
        return f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}+0100 {self.host} kernel: {msg}"

    def other(self, clock: _Clock, msg: str) -> str | None:
        """Another program's line, where the style carries them (syslog, journal)."""
        if self.style not in ("syslog", "journal", "iso"):
            return None
        y, mo, d, h, mi, s, _ = clock.wall()
        prog = self.rng.choice(("systemd[1]", "NetworkManager[812]", "sshd[2211]", "CRON[3310]"))
        if self.style == "iso":
            return f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}+0100 {self.host} {prog}: {msg}"
        return f"{_MONTHS[mo - 1]} {d:2d} {h:02d}:{mi:02d}:{s:02d} {self.host} {prog}: {msg}"


# --------------------------------------------------------------------------------------------
# One boot
# --------------------------------------------------------------------------------------------

_NATIVE_KERNELS = (
    "6.1.0-18-amd64", "6.1.0-13-amd64", "5.15.0-91-generic", "6.5.0-35-generic",
    "6.6.13-amd64", "6.8.0-45-generic", "6.9.7-200.fc40.x86_64", "6.11.5-300.fc41.x86_64",
    "6.12.10-arch1-1", "6.15.2-arch1-1",
)
_DOM0_KERNELS = (
    "6.1.112-1.qubes.fc37.x86_64", "6.1.75-1.qubes.fc37.x86_64", "6.6.48-1.qubes.fc37.x86_64",
    "6.6.63-1.qubes.fc37.x86_64", "6.12.9-1.qubes.fc41.x86_64", "5.15.94-1.qubes.fc32.x86_64",
)
_XENS = ("4.16.5", "4.17.0", "4.17.3", "4.17.4", "4.18.2", "4.19.1", "4.19.5", "4.20.0")


def _kv(release: str) -> tuple[int, int]:
    a, b = release.split(".")[:2]
    return int(a), int(b)


def _xv(version: str) -> tuple[int, int, int]:
    a, b, c = version.split(".")[:3]
    return int(a), int(b), int(c)


@dataclass
class _Boot:
    """Lines of one boot: early (timestamp 0), then chatter to the size wanted."""

    lines: list[str] = field(default_factory=list)


def _linux_version_line(release: str, rng: random.Random) -> str:
    cc = rng.choice((
        "gcc (GCC) 14.1.1 20240620 (Red Hat 14.1.1-6), GNU ld version 2.41-37.fc40",
        "gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40",
        "x86_64-linux-gnu-gcc-13 (Ubuntu 13.2.0-23ubuntu4) 13.2.0, GNU ld (GNU Binutils for Ubuntu) 2.42",
    ))
    return f"Linux version {release} (builder@buildhost) ({cc}) #1 SMP PREEMPT_DYNAMIC Thu Jun 27 18:11:45 UTC 2024"


def _esrt_native_lines(fw: Firmware, linux: tuple[int, int]) -> tuple[list[str], bool]:
    """What native efi_esrt_init (and efi_arch_mem_reserve) print; whether it reserved."""
    addr = fw.esrt_address
    if addr is None or fw.esrt_index is None:
        return [], False
    d = fw.descs[fw.esrt_index]
    ok = ESRT_OK_63 if linux >= (6, 3) else ESRT_OK_61
    if d.type not in ok and not d.attr & RUNTIME:
        return ["esrt: ESRT header is not in the memory map."], False
    size = 16 + 40 * fw.esrt_count
    out = [f"esrt: Reserving ESRT space from 0x{addr:016x} to 0x{addr + size:016x}."]
    if d.type == BS_DATA:
        page = addr & ~(PAGE - 1)
        end = ((addr + size + PAGE - 1) & ~(PAGE - 1)) - 1
        out.append(f"e820: update [mem 0x{page:08x}-0x{end:08x}] usable ==> reserved")
    return out, True


def _render_boot(
    rng: random.Random, kind: str, fw: Firmware, pr: _Printer, clock: _Clock,
    target: int, pool: list[str], release: str | None, xen: str | None, loader: str | None,
) -> tuple[list[str], PlantedBoot]:
    """Lines of one boot and what it planted."""
    early: list[str] = []  # Linux messages at timestamp 0
    late: list[str] = []  # Linux messages after
    xen_lines: list[str] = []
    linux = _kv(release) if release else (0, 0)
    esrt_addr = fw.esrt_address
    esrt_desc = fw.descs[fw.esrt_index] if fw.esrt_index is not None else None
    relocated = False
    seen_addr = esrt_addr
    seen_type = esrt_desc.type if esrt_desc else None
    reserving = False
    unusable_esrt = False
    final = fw.descs
    tables = list(fw.tables)
    map_printed = False
    cmdline = f"BOOT_IMAGE=/boot/vmlinuz-{release} root=UUID=2f0c8a61-5d4e-4b3a-9e1f-7c6d5b4a3921 ro quiet"

    if kind in ("dom0", "dom0-serial", "xl"):
        assert xen is not None and loader is not None
        xv = _xv(xen)
        # efi_relocate_esrt: 4.17.0 from efi_start only, 4.17.1+ from multiboot2 as well.
        relocates = xv >= (4, 17, 0) and (loader == "EFI" or xv >= (4, 17, 1))
        if relocates and esrt_desc is not None and esrt_desc.type == BS_DATA:
            final, seen_addr = relocate_for_xen(fw)
            relocated = True
            seen_type = ACPI_RECLAIM
            tables = [(lab, seen_addr if lab == "ESRT" else a) for lab, a in tables]
        if kind in ("dom0-serial", "xl"):
            xen_lines += [
                f"Xen version {xen} (mockbuild@[unknown]) (gcc (GCC) 12.3.1 20230508 (Red Hat 12.3.1-1)) debug=n Tue Feb 13 00:00:00 UTC 2024",
                f"Bootloader: {loader}",
                "Command line: placeholder console=com1 com1=115200,8n1 dom0_mem=min:1024M dom0_mem=max:4096M ucode=scan",
                "Xen image load base address: 0x5e400000",
                "EFI RAM map:",
                *xen_ram_map(final),
                "ACPI: RSDP 6B2E0014, 0024 (r2 ALASKA)",
                "System RAM: 16045MB (16430216kB)",
            ]
            if kind == "dom0-serial" or rng.random() < 0.7:
                xen_lines += ["EFI memory map:", *xen_efi_map(final)]
                map_printed = True
            xen_lines += ["Dom0 has maximum 4 VCPUs", "Scrubbing Free RAM in background"]

    if kind in ("efi-debug", "e820"):
        early += [
            _linux_version_line(release, rng),  # type: ignore[arg-type]
            f"Command line: {cmdline}" + (" efi=debug" if kind == "efi-debug" else ""),
            "x86/fpu: Supporting XSAVE feature 0x001: 'x87 floating point registers'",
            "BIOS-provided physical RAM map:",
            *e820_lines(fw.descs, "BIOS-e820"),
            "NX (Execute Disable) protection: active",
            "APIC: Static calls initialized",
            _efi_header(fw, linux),
            "efi: " + table_tokens(fw.tables, set()),
        ]
        if kind == "efi-debug":
            early += [mem_line(i, d) for i, d in enumerate(fw.descs)]
            map_printed = True
        early += [
            "secureboot: Secure boot disabled",
            "SMBIOS 3.3.0 present.",
            f"DMI: {fw.dmi}",
            "tsc: Detected 2800.000 MHz processor",
            "e820: update [mem 0x00000000-0x00000fff] usable ==> reserved",
            "e820: remove [mem 0x000a0000-0x000fffff] usable",
            "last_pfn = 0x480000 max_arch_pfn = 0x400000000",
            "ACPI: RSDP 0x000000006B2E0014 000024 (v02 ALASKA)",
        ]
        lines, reserving = _esrt_native_lines(fw, linux)
        early += lines
        if kind == "efi-debug" and linux >= (6, 3) and rng.random() < 0.5:
            late.append("efi: EFI runtime memory map:")
            rt = [d for d in fw.descs if d.attr & RUNTIME]
            if reserving and esrt_desc is not None and esrt_desc.type == BS_DATA:
                rt.append(Desc(BS_DATA, esrt_addr & ~(PAGE - 1), 1, esrt_desc.attr | RUNTIME))  # type: ignore[operator]
                rt.sort(key=lambda d: d.start)
            late += [mem_line(i, d) for i, d in enumerate(rt)]
    elif kind in ("dom0", "dom0-serial"):
        # Xen's MEM_INFO answers from the final map (RT code/data gain RUNTIME).
        def xen_desc(a: int) -> Desc | None:
            for d in final:
                if d.start <= a < d.end:
                    return replace(d, attr=d.attr | (RUNTIME if d.type in (RT_CODE, RT_DATA) else 0))
            return None

        unusable: set[str] = set()
        if linux >= (6, 3):
            for lab, a in tables:
                d = xen_desc(a)
                if d is not None and d.type not in XEN_USABLE:
                    unusable.add(lab)
        unusable_esrt = "ESRT" in unusable
        early += [
            _linux_version_line(release, rng),  # type: ignore[arg-type]
            "Command line: placeholder root=/dev/mapper/qubes_dom0-root ro rd.luks.uuid=luks-6a1f2c3d rhgb quiet",
            "x86/fpu: Supporting XSAVE feature 0x001: 'x87 floating point registers'",
            "Released 0 page(s)",
            "BIOS-provided physical RAM map:",
            *e820_lines(final, "Xen", _xen_e820_kind),
            "NX (Execute Disable) protection: active",
            _efi_header(fw, linux),
            "efi: " + table_tokens(tables, unusable),
            "secureboot: Secure boot disabled",
            "SMBIOS 3.3.0 present.",
            f"DMI: {fw.dmi}",
            "Hypervisor detected: Xen PV",
            "e820: remove [mem 0x000a0000-0x000fffff] usable",
            "ACPI: RSDP 0x000000006B2E0014 000024 (v02 ALASKA)",
        ]
        if linux >= (6, 3) and seen_addr is not None and not unusable_esrt:
            d = xen_desc(seen_addr)
            if d is not None and (d.type in ESRT_OK_63 or d.attr & RUNTIME):
                size = 16 + 40 * fw.esrt_count
                early.append(
                    f"esrt: Reserving ESRT space from 0x{seen_addr:016x} to 0x{seen_addr + size:016x}."
                )
                reserving = True
            else:
                early.append("esrt: ESRT header is not in the memory map.")
        late += [
            "Booting paravirtualized kernel on Xen",
            f"Xen version: {xen} (preserve-AD)",
            "xen:balloon: Initialising balloon driver",
            "xen_mcelog: /dev/mcelog registered by Xen",
        ]
    if kind == "xl":
        seen_addr = None
        seen_type = None

    out: list[str] = []
    xen_ts = rng.random() < 0.5
    for x in xen_lines:
        sec, us = divmod(clock.usec, 1_000_000)
        out.append(f"(XEN) [{sec:5d}.{us:06d}] {x}" if xen_ts and kind != "xl" else f"(XEN) {x}")
        clock.tick(True)
    if kind != "xl":
        clock.usec = 0
        npool = len(pool)
        for msg in early:
            out.append(pr.kernel(clock, msg))
            clock.tick(True)
            if rng.random() < 0.15:
                out.append(pr.kernel(clock, pool[rng.randrange(npool)]))
        late_start = rng.randrange(1, 40)  # the later messages, in order, from here on
        size = sum(len(x) + 1 for x in out)
        k = 0
        while size < target or late:
            clock.tick(False)
            k += 1
            msg = late.pop(0) if late and k >= late_start else pool[rng.randrange(npool)]
            line = pr.kernel(clock, msg)
            if rng.random() < 0.02:
                other = pr.other(clock, "Started Session of User root.")
                if other is not None:
                    out.append(other)
                    size += len(other) + 1
            out.append(line)
            size += len(line) + 1
    else:
        size = sum(len(x) + 1 for x in out)
        while size < target:
            line = "(XEN) " + rng.choice((
                "d0v1 Unhandled: vec 200, #DB[0000]",
                "HVM d3v0 save: CPU",
                "printk: 12 messages suppressed.",
                "grant_table.c:1789:d0v2 Expanding d5 grant table from 6 to 7 frames",
            ))
            out.append(line)
            size += len(line) + 1
    planted = PlantedBoot(
        kind=kind,
        linux=release,
        xen=xen,
        bootloader=loader,
        descriptors=len(fw.descs),
        esrt_type=TYPES[esrt_desc.type] if esrt_desc is not None else None,
        esrt_runtime=bool(esrt_desc.attr & RUNTIME) if esrt_desc is not None else False,
        esrt_address=esrt_addr,
        esrt_count=fw.esrt_count if esrt_desc is not None else 0,
        relocated=relocated,
        seen_type=TYPES[seen_type] if seen_type is not None else None,
        seen_address=seen_addr,
        reserving=reserving,
        unusable=unusable_esrt,
        efi_map_printed=map_printed,
    )
    return out, planted


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------


def _descriptor_count(rng: random.Random, low: int = 50, high: int = 2000) -> int:
    # low to high, most maps small (median about 125 for 50..2000, as laptops print)
    return round(low * (high / low) ** (rng.random() ** 2))


def _pick(rng: random.Random, mix: dict[str, int]) -> str:
    pairs = [(k, w) for k, w in mix.items() if w > 0]
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for k, w in pairs:
        x -= w
        if x < 0:
            return k
    return pairs[-1][0]


def _garbage(rng: random.Random, what: str, target: int) -> bytes:
    if what == "binary":
        return rng.randbytes(max(64, min(target, 1 << 16)))
    if what == "empty":
        return b""
    if what == "text":
        words = ("the", "firmware", "update", "notes", "for", "release", "version", "fixed")
        return (" ".join(rng.choice(words) for _ in range(max(20, target // 8))) + "\n").encode()
    if what == "no-efi":
        pool = _noise_pool(rng, 50)
        return "".join(
            f"[{1000 + i:5d}.{rng.randrange(10 ** 6):06d}] {pool[rng.randrange(50)]}\n"
            for i in range(max(10, target // 90))
        ).encode()
    # corrupt-gz: a gzip header then deflate garbage
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + rng.randbytes(max(64, min(target, 4096)))


def generate_log(
    seed: int,
    index: int,
    target: int,
    mix: dict[str, int] | None = None,
    descriptors: tuple[int, int] = (50, 2000),
) -> tuple[bytes, Planted]:
    """The bytes of log ``index`` of the corpus of ``seed`` (about ``target`` bytes) and what
    it planted: ``mix`` weighs the kinds (default :data:`DEFAULT_MIX`), ``descriptors`` bounds
    the memory maps. Depends only on its arguments."""
    rng = random.Random(f"efihandoff-corpus/{seed}/{index}")
    kind = _pick(rng, mix or DEFAULT_MIX)
    style = rng.choice(STYLES)
    if kind == "garbage":
        what = rng.choice(GARBAGE)
        data = _garbage(rng, what, target)
        ext = {"binary": "bin", "empty": "log", "text": "txt", "no-efi": "log", "corrupt-gz": "log.gz"}[what]
        return data, Planted(f"{index // 100:04d}/{index:06d}-garbage.{ext}", kind, "none", what == "corrupt-gz", len(data), (), what)
    if kind in ("dom0-serial", "xl"):
        style = "dmesg"
    esrt_type = None if rng.random() < 0.1 else _weighted(rng, _ESRT_TYPE_WEIGHTS)
    fw = make_firmware(rng, _descriptor_count(rng, *descriptors), esrt_type)
    pool = _noise_pool(rng, 200)
    pr = _Printer(style, rng, rng.choice(_HOSTS))
    nboots = 2 if rng.random() < 0.12 and kind != "xl" else 1
    out: list[str] = []
    boots: list[PlantedBoot] = []
    epoch = rng.randint(24 * 365 * 86400, 25 * 365 * 86400)
    if style in ("journal", "iso") and rng.random() < 0.5:
        out.append("-- Logs begin at Mon 2024-06-17 09:12:01 CEST, end at Tue 2024-06-18 10:05:12 CEST. --")
    for b in range(nboots):
        dom0ish = kind in ("dom0", "dom0-serial", "xl")
        release = rng.choice(_DOM0_KERNELS if dom0ish else _NATIVE_KERNELS) if kind != "xl" else None
        xen = rng.choice(_XENS) if dom0ish else None
        loader = (rng.choice(("EFI", "GRUB 2.06")) if dom0ish else None)
        clock = _Clock(rng, epoch + b * 86400 * rng.randint(1, 30))
        if b and style in ("journal", "iso"):
            out.append(f"-- Boot {rng.getrandbits(128):032x} --")
        lines, planted = _render_boot(
            rng, kind, fw, pr, clock, target // nboots, pool, release, xen, loader
        )
        out += lines
        boots.append(planted)
    text = "\n".join(out) + "\n"
    data = text.encode()
    gz = rng.random() < 0.05
    if gz:
        data = gzip.compress(data, compresslevel=1, mtime=0)
    name = f"{index // 100:04d}/{index:06d}-{kind}-{style}.log" + (".gz" if gz else "")
    return data, Planted(name, kind, style, gz, len(data), tuple(boots))


def _targets(seed: int, logs: int, size_mb: float | None) -> list[int]:
    rng = random.Random(f"efihandoff-corpus/{seed}/sizes")
    weights = [rng.lognormvariate(0, 0.8) for _ in range(logs)]
    if size_mb is None:
        return [int(40_000 * w) for w in weights]
    total = size_mb * (1 << 20)
    s = sum(weights)
    return [int(total * w / s) for w in weights]


def _write_one(
    args: tuple[str, int, int, int, dict[str, int] | None, tuple[int, int]],
) -> Planted:
    out, seed, index, target, mix, descriptors = args
    data, planted = generate_log(seed, index, target, mix, descriptors)
    path = Path(out) / planted.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return planted


def make_corpus(
    out: str | os.PathLike[str],
    *,
    logs: int,
    seed: int,
    size_mb: float | None = None,
    mix: dict[str, int] | None = None,
    descriptors: tuple[int, int] = (50, 2000),
    jobs: int = 1,
) -> list[Planted]:
    """Write ``logs`` files under ``out`` and return what each planted (in index order).
    ``size_mb`` spreads that many MiB over the logs (default: about 40 kB each, varied)."""
    targets = _targets(seed, logs, size_mb)
    work = [(str(out), seed, i, targets[i], mix, descriptors) for i in range(logs)]
    if jobs > 1 and logs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            return list(ex.map(_write_one, work, chunksize=max(1, logs // (jobs * 8))))
    return [_write_one(w) for w in work]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="directory to write the corpus into")
    ap.add_argument("--logs", type=int, required=True, help="how many files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size-mb", type=float, default=None, help="total size wanted (MiB)")
    ap.add_argument("--truth", help="write the ground truth here (JSON lines)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args(argv)
    planted = make_corpus(a.out, logs=a.logs, seed=a.seed, size_mb=a.size_mb, jobs=a.jobs)
    if a.truth:
        with open(a.truth, "w", encoding="utf-8") as f:
            for p in planted:
                f.write(json.dumps(p.to_json(), sort_keys=True) + "\n")
    total = sum(p.size for p in planted)
    print(f"{len(planted)} files, {total / (1 << 20):.1f} MiB in {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
