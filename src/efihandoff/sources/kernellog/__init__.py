"""Kernel logs: what Linux (and Xen) printed about the EFI tables, the memory maps and the ESRT.

Reads dmesg, ``journalctl`` (short forms, verbose, JSON), syslog (BSD, RFC 5424, BusyBox,
logread), serial-console captures, ``xl dmesg`` and pasted excerpts (mail-quoted, hard-wrapped,
quoted-printable, HTML-escaped, markdown), line by line, into plain data split by boot; every
shape is listed, with where it was seen, in tests/sources/FORMATS.md. A prefix nothing here
knows is read by recognising the kernel message after it. A line cut by a wrap is held and
joined with the prefix-less line(s) after it when they complete it; a line that looks like one
read here but does not parse is kept in ``BootLog.unparsed``. The same line at the same time
(a paste repeated) is read once. Unknown lines are skipped; every per-line pattern is linear (no
nested quantifiers, bounded repeats), lines are cut at :data:`MAX_LINE` characters and every
per-boot list has a cap (``MAX_*``; what is cut is said in ``BootLog.cut``), so the whole read
is O(size) in time and O(1) in memory. Bytes are read through a fast path (module ``fast``)
that finds the lines that may matter with one compiled search, counts the chatter between them
in bulk and reads map lines in runs, giving the same result as feeding every line
(``fast=False``).

Message formats, as printed by (project, file, function):

- Linux drivers/firmware/efi/efi.c ``efi_systab_report_header`` ("EFI v2.70 by X"; from 6.2
  "EFI v2.7 by X" / "EFI v2.3.1 by X"), ``efi_config_parse_tables`` + ``match_config_table``
  ("efi: " then ``NAME=0x%lx `` per table; 6.3+ ``(NAME=0x%lx unusable) `` for a table the Xen
  allowlist refuses), ``efi_md_typeattr_format`` ("[%-12s" or "[type=%u", then
  "|RUN|HP|MR|CC|SP|NV|XP|RP|WP|RO|UCE|WB|WT|WC|UC]" or "|attr=0x%016llx]").
- Linux arch/x86/platform/efi/efi.c ``efi_print_memmap`` ("mem%02u: %s range=[0x%016llx-0x%016llx]
  (%lluMB)", inclusive end; again after "EFI runtime memory map:" in ``__efi_enter_virtual_mode``)
  and the pre-3.19 ``print_efi_memmap`` ("mem%02u: type=%u, attr=0x%llx, range=[a-b) (%lluMB)",
  exclusive end).
- Linux drivers/firmware/efi/efi-init.c ``reserve_regions`` (arm64: "Processing EFI memory map:",
  then "  0x%012llx-0x%012llx %s", older kernels with a trailing "*").
- Linux arch/x86/kernel/e820.c ``e820__print_table`` / ``e820_print_type``: "WHO: [mem %#018Lx-
  %#018Lx] usable|reserved|soft reserved|ACPI data|ACPI NVS|unusable|persistent (type %u)|type %u";
  Linux 7.0 (tip x86/boot, Dec 2025) adds a size column, "[gap ...]" lines and rewords "usable" to
  "System RAM", "reserved" to "device reserved", "persistent" to "persistent RAM".
  ``__e820__range_update`` prints "e820: update [mem %#010Lx-%#010Lx] OLD ==> NEW".
  arch/x86/xen/setup.c ``xen_memory_setup`` returns WHO = "Xen" in a PV domain.
- Linux drivers/firmware/efi/esrt.c ``efi_esrt_init`` / ``esrt_sysfs_init`` (pr_fmt "esrt: ").
- Linux arch/x86/xen/enlighten_pv.c ``xen_banner`` ("Booting paravirtualized kernel on Xen",
  "Xen version: %d.%d%s (preserve-AD)") and ``xen_arch_setup`` ("ACPI in unprivileged domain
  disabled", domU only).
- Xen xen/arch/x86/setup.c ``__start_xen`` ("Xen version %d.%d%s (...)", "Bootloader: %s",
  "Command line: %s"), xen/arch/x86/e820.c ``init_e820`` / ``print_e820_memory_map`` ("%s RAM map:",
  " [%016lx, %016lx] (usable)" inclusive; before 4.17-ish " %016Lx - %016Lx (usable)" exclusive),
  xen/common/efi/boot.c ``efi_init_memory`` ("EFI memory map:%s", " %013lx-%013lx type=%u
  attr=%016lx" inclusive).

The package, by concern: ``model`` (the values and caps), ``prefixes`` (what comes before a
message), ``messages`` (the one table of message starts and each message's pattern),
``boots`` (one boot's state), ``reader`` (line by line), ``fast`` (the fast path: a search
for the lines that may matter, chatter and map runs in bulk) with ``bulk`` (the reader's entry
points for runs), ``read`` (entry points). Memory-type inference lives with the model that asks it,
:mod:`efihandoff.sources.logmachine`.
"""

from __future__ import annotations

from typing import Any

from efihandoff.sources.kernellog.model import (
    ESRT_KINDS,
    MAX_BOOTS,
    MAX_DESCRIPTORS,
    MAX_E820,
    MAX_ESRT_MESSAGES,
    MAX_JOINS,
    MAX_LINE,
    MAX_TABLES,
    MAX_UNPARSED,
    MAX_UPDATES,
    UNPARSED_TEXT,
    BootLog,
    E820Entry,
    E820Update,
    EsrtMessage,
    KernelLog,
    LoggedDescriptor,
    LoggedTable,
    UnparsedLine,
    XenInfo,
)
from efihandoff.sources.kernellog.read import (
    looks_like_kernel_log,
    read_kernel_log,
    read_kernel_log_file,
    read_kernel_log_stream,
)

__all__ = [
    "ESRT_KINDS",
    "MAX_BOOTS",
    "MAX_DESCRIPTORS",
    "MAX_E820",
    "MAX_ESRT_MESSAGES",
    "MAX_JOINS",
    "MAX_LINE",
    "MAX_TABLES",
    "MAX_UNPARSED",
    "MAX_UPDATES",
    "UNPARSED_TEXT",
    "BootLog",
    "E820Entry",
    "E820Update",
    "EsrtMessage",
    "KernelLog",
    "LoggedDescriptor",
    "LoggedTable",
    "TypeInference",
    "UnparsedLine",
    "XenInfo",
    "infer_memory_type",
    "looks_like_kernel_log",
    "read_kernel_log",
    "read_kernel_log_file",
    "read_kernel_log_stream",
]

# Memory-type inference is model logic and lives with the model that asks it
# (efihandoff.sources.logmachine); these names stay importable from here, loaded on first use
# (logmachine imports this package).
_MOVED = {"infer_memory_type", "TypeInference"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from efihandoff.sources import logmachine

        return getattr(logmachine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
