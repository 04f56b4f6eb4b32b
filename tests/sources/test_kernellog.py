"""Kernel log reader: every fixture parsed to values worked out by hand from the fixture text,
every prefix form, boot splitting, hostile input and a 100 MB log."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.errors import ParseError
from efihandoff.sources.kernellog import (
    ESRT_KINDS,
    MAX_LINE,
    BootLog,
    E820Entry,
    E820Update,
    KernelLog,
    LoggedDescriptor,
    LoggedTable,
    infer_memory_type,
    looks_like_kernel_log,
    read_kernel_log,
    read_kernel_log_file,
)
from efihandoff.uefi.memmap import MemoryDescriptor

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"

WB_WT_WC_UC = 0xF
RUN = 0x8000_0000_0000_0000
ESRT_HEADER = 16  # EFI_SYSTEM_RESOURCE_TABLE header
ESRT_ENTRY = 40  # EFI_SYSTEM_RESOURCE_ENTRY (version 1)

# EFI memory types (UEFI 2.10 table 7-5)
RESERVED, LOADER_CODE, LOADER_DATA, BS_CODE, BS_DATA = 0, 1, 2, 3, 4
RT_CODE, RT_DATA, CONVENTIONAL, ACPI_RECLAIM, ACPI_NVS, MMIO = 5, 6, 7, 9, 10, 11


def read_both(data: str | bytes) -> KernelLog:
    """Read ``data`` every way there is (text; bytes through the fast path and line by line)
    and check the results agree, so every message test covers both readers."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fast = read_kernel_log(raw, fast=True)
    assert fast == read_kernel_log(raw, fast=False)
    if isinstance(data, str):
        assert read_kernel_log(data) == fast
    return fast


def only_boot(name: str) -> BootLog:
    log = read_kernel_log_file(LOGS / name)
    assert len(log.boots) == 1
    return log.boots[0]


def one(text: str) -> BootLog:
    log = read_both(text)
    assert len(log.boots) == 1
    return log.boots[0]


# -- fixtures ----------------------------------------------------------------------------------


def test_x86_laptop_efi_debug() -> None:
    b = only_boot("x86-laptop-efi-debug.log")
    assert b.first_line == 1
    assert b.kernel_version == "6.15.2-arch1-1"
    assert b.efi_version == "2.8"
    assert b.efi_vendor == "Lenovo"
    assert b.dmi == "LENOVO 21CBCTO1WW/21CBCTO1WW, BIOS N3AET72W (1.37 ) 03/13/2023"
    assert b.command_line is not None and b.command_line.endswith("efi=debug")
    assert [(t.label, t.address, t.unusable) for t in b.config_tables] == [
        ("ACPI", 0x4171F000, False),
        ("ACPI 2.0", 0x4171F014, False),
        ("SMBIOS", 0x41540000, False),
        ("SMBIOS 3.0", 0x4153F000, False),
        ("MEMATTR", 0x41020018, False),
        ("ESRT", 0x4105A018, False),
        ("TPMEventLog", 0x41030018, False),
        ("RNG", 0x40FFF018, False),
    ]
    assert {t.line for t in b.config_tables} == {22}
    types = [d.type for d in b.memory_map]
    assert types == [3, 7, 0, 7, 2, 4, 3, 6, 5, 9, 10, 7, 11, 0, 7]
    assert b.memory_map[0] == LoggedDescriptor(BS_CODE, 0, 1, WB_WT_WC_UC, 23)
    assert b.memory_map[2] == LoggedDescriptor(RESERVED, 0x9F000, 0x61, 0, 25)
    assert b.memory_map[3].num_pages == 0x3FF00  # 0x100000..0x3fffffff
    assert b.memory_map[5] == LoggedDescriptor(BS_DATA, 0x41000000, 0x140, WB_WT_WC_UC, 28)
    assert b.memory_map[7].attribute == RUN | 0x4000 | WB_WT_WC_UC  # RUN|XP|WB|WT|WC|UC
    assert b.memory_map[12] == LoggedDescriptor(MMIO, 0xFE000000, 17, RUN | 0x1, 35)
    isa_uc = 0x4000000000000001  # printed as attr=0x...: bit 62 has no mnemonic
    assert b.memory_map[13] == LoggedDescriptor(RESERVED, 0xFF000000, 0x1000, isa_uc, 36)
    assert b.memory_map[14].num_pages == 0x380000  # 14 GiB from 4 GiB
    # The runtime map printed later: the carved ESRT page carries EFI_MEMORY_RUNTIME.
    assert [d.type for d in b.runtime_map] == [BS_DATA, RT_DATA, RT_CODE, MMIO]
    assert b.runtime_map[0] == LoggedDescriptor(BS_DATA, 0x4105A000, 1, RUN | WB_WT_WC_UC, 57)
    assert b.e820_source == "BIOS-e820"
    assert len(b.e820) == 10
    assert b.e820[0] == E820Entry(0, 0x9F000, "usable", 1, 9)
    assert b.e820[4] == E820Entry(0x41700000, 0x41720000, "ACPI data", 3, 13)
    assert b.e820[5] == E820Entry(0x41720000, 0x41800000, "ACPI NVS", 4, 14)
    assert b.e820[9] == E820Entry(0x100000000, 0x480000000, "usable", 1, 18)
    assert b.e820_updates == (
        E820Update("update", 0, 0x1000, "usable", "reserved", 45),
        E820Update("remove", 0xA0000, 0x100000, "usable", None, 46),
        E820Update("update", 0x4105A000, 0x4105B000, "usable", "reserved", 51),
    )
    assert b.esrt_kinds() == ("reserving",)
    assert b.esrt_messages[0].line == 50
    assert b.esrt_messages[0].values == (0x4105A018, 0x4105A078)
    assert b.esrt_reserved == (0x4105A018, ESRT_HEADER + 2 * ESRT_ENTRY)
    assert b.xen is None and not b.is_xen_dom0 and b.dom0_unusable == ()


def test_arm64_server_efi_debug() -> None:
    b = only_boot("arm64-server-efi-debug.log")
    assert b.kernel_version == "6.6.30-arm64"
    assert b.efi_version == "2.7" and b.efi_vendor == "EDK II"
    assert b.command_line == "BOOT_IMAGE=/vmlinuz-6.6.30-arm64 root=/dev/nvme0n1p2 ro efi=debug"
    assert [t.label for t in b.config_tables] == [
        "ACPI 2.0",
        "SMBIOS 3.0",
        "MEMATTR",
        "ESRT",
        "RNG",
        "MEMRESERVE",
    ]
    assert b.table("ESRT") == LoggedTable("ESRT", 0xBD9F5E18, False, 5)
    assert len(b.memory_map) == 16
    assert b.memory_map[0] == LoggedDescriptor(MMIO, 0x10000000, 16, RUN | 0x1, 7)
    assert b.memory_map[3].num_pages == 241561  # 0x80810000..0xbb7a8fff
    assert b.memory_map[6] == LoggedDescriptor(BS_DATA, 0xBD9F5000, 1, WB_WT_WC_UC, 13)
    # the older arm64 print with a trailing "*"
    assert b.memory_map[10] == LoggedDescriptor(RT_DATA, 0xBFD40000, 16, RUN | WB_WT_WC_UC, 17)
    # a type past EFI_MAX_MEMORY_TYPE prints as "[type=%u"
    assert b.memory_map[11] == LoggedDescriptor(0x70000001, 0xBFD50000, 16, RUN | 0x1, 18)
    assert b.memory_map[15].num_pages == 0xF80000
    assert b.runtime_map == () and b.e820 == ()
    assert b.esrt_reserved == (0xBD9F5E18, ESRT_HEADER + 4 * ESRT_ENTRY)
    assert b.dmi is not None and b.dmi.startswith("GIGABYTE R272-P30-JG")


def test_e820_only_linux_7_wording() -> None:
    b = only_boot("x86-e820-only-linux7.log")
    assert b.kernel_version == "7.0.0-rc3"
    assert b.memory_map == ()
    assert [(e.kind, e.type_code) for e in b.e820] == [
        ("usable", 1),
        ("usable", 1),
        ("reserved", 2),
        ("ACPI data", 3),
        ("ACPI NVS", 4),
        ("usable", 1),
        ("reserved", 2),
        ("reserved", 2),
        ("usable", 1),
        ("persistent", 12),
        ("soft reserved", 0xEFFFFFFF),
        ("type 20", 20),
    ]  # the three [gap ...] lines are not ranges
    assert b.e820[1] == E820Entry(0x100000, 0x6A600000, "usable", 1, 6)
    assert b.e820[5] == E820Entry(0x6A800000, 0x80000000, "usable", 1, 10)
    assert b.e820[11] == E820Entry(0x2A0000000, 0x2A0100000, "type 20", 20, 18)
    update = E820Update("update", 0x5F3E6000, 0x5F3E7000, "usable", "reserved", 30)
    assert b.e820_updates[2] == update
    assert b.e820_updates[1] == E820Update("remove", 0xA0000, 0x100000, "usable", None, 27)
    assert b.esrt_reserved == (0x5F3E6018, ESRT_HEADER + 3 * ESRT_ENTRY)
    assert b.dmi == "ASUSTeK COMPUTER INC. PRIME B550-PLUS/PRIME B550-PLUS, BIOS 3607 03/18/2024"
    inferred = infer_memory_type(b, 0x5F3E6018)
    assert inferred.memory_type == BS_DATA and inferred.candidates == (BS_DATA,)
    assert not inferred.exact and "inferred" in inferred.evidence
    assert "line 29" in inferred.evidence and "line 30" in inferred.evidence


def test_xen_dom0_log_with_unusable_tables() -> None:
    b = only_boot("xen-dom0-linux66.log")
    assert b.is_xen_dom0
    assert b.kernel_version == "6.6.48-1.qubes.fc37.x86_64"
    assert b.xen is not None and b.xen.version == "4.17.4"
    assert b.xen.lines == 0 and b.xen.efi_memory_map == ()
    assert b.dom0_unusable == ("MEMATTR", "ESRT")
    assert [(t.label, t.address, t.unusable) for t in b.config_tables] == [
        ("ACPI", 0x6B2E0000, False),
        ("ACPI 2.0", 0x6B2E0014, False),
        ("SMBIOS", 0x6B280000, False),
        ("SMBIOS 3.0", 0x6B27F000, False),
        ("MEMATTR", 0x64B7B018, True),
        ("ESRT", 0x6554F018, True),
        ("TPMFinalLog", 0x6B3F0000, False),
    ]
    assert b.esrt_messages == () and b.esrt_reserved is None
    assert b.esrt_address == 0x6554F018
    assert b.e820_source == "Xen" and len(b.e820) == 9
    assert b.e820[4] == E820Entry(0x6B2E0000, 0x6B300000, "ACPI data", 3, 11)
    inferred = infer_memory_type(b, 0x6554F018)
    assert BS_DATA in inferred.candidates and inferred.memory_type is None
    assert inferred.evidence.startswith("Xen's E820 for dom0 'usable'")


def test_xl_dmesg_console() -> None:
    b = only_boot("xl-dmesg-xen417.log")
    assert b.kernel_version is None and not b.is_xen_dom0
    x = b.xen
    assert x is not None
    assert x.version == "4.17.3"
    assert x.boot_loader == "EFI"
    assert x.command_line is not None and x.command_line.startswith("console=none dom0_mem=")
    assert x.lines == 50  # every line but the " Xen 4.17.3" banner
    assert [d.type for d in x.efi_memory_map] == [7, 0, 7, 4, 3, 6, 5, 9, 10, 7, 11, 7]
    assert x.efi_memory_map[0] == LoggedDescriptor(CONVENTIONAL, 0, 0xA0, 0xF, 32)
    assert x.efi_memory_map[3] == LoggedDescriptor(BS_DATA, 0x60000000, 0x5550, 0xF, 35)
    assert x.efi_memory_map[5].attribute == RUN | WB_WT_WC_UC
    assert x.efi_memory_map[10] == LoggedDescriptor(MMIO, 0xFE000000, 17, RUN | 0x1, 42)
    assert len(x.e820) == 9
    assert x.e820[0] == E820Entry(0, 0xA0000, "usable", 1, 17)  # inclusive end in the print
    assert x.e820[4] == E820Entry(0x6B2E0000, 0x6B300000, "ACPI data", 3, 21)
    inferred = infer_memory_type(b, 0x6554F018)
    assert inferred.memory_type == BS_DATA and inferred.exact
    assert "Xen's EFI memory map" in inferred.evidence


def test_journalctl_short() -> None:
    log = read_kernel_log_file(LOGS / "journal-short.log")
    (b,) = log.boots
    assert b.first_line == 2  # the "-- Logs begin at" header is not a kernel line
    assert b.kernel_version == "6.1.0-13-amd64"
    assert b.efi_version == "2.70"
    assert len(b.config_tables) == 9 and b.config_tables[2].label == "TPMFinalLog"
    assert b.esrt_reserved == (0xB7E2F018, ESRT_HEADER + 1 * ESRT_ENTRY)
    assert len(b.e820) == 8 and len(b.e820_updates) == 3
    assert infer_memory_type(b, 0xB7E2F018).memory_type == BS_DATA


def test_journalctl_iso_and_refused_esrt() -> None:
    b = only_boot("journal-iso.log")
    assert b.kernel_version == "6.9.7-200.fc40.x86_64"
    assert b.efi_vendor == "INSYDE Corp."
    assert b.esrt_kinds() == ("not-in-memmap",)
    assert b.esrt_messages[0].line == 9
    assert b.esrt_reserved is None and b.esrt_address == 0x8A1C0000
    inferred = infer_memory_type(b, 0x8A1C0000)
    # usable RAM, and Linux refused it: not Boot Services Data
    assert inferred.candidates == (LOADER_CODE, LOADER_DATA, BS_CODE, CONVENTIONAL)
    assert inferred.memory_type is None


def test_syslog_skips_other_programs() -> None:
    b = only_boot("syslog-kern.log")
    assert b.kernel_version == "5.15.0-105-generic"
    assert [t.address for t in b.config_tables if t.label == "ESRT"] == [0x7A3FFFD8]
    assert len(b.config_tables) == 6  # systemd-udevd's "efi: ESRT=0xdeadbeef" is not the kernel
    assert b.esrt_kinds() == ("only-header",)
    assert b.esrt_messages[0].values == (24, 40)
    inferred = infer_memory_type(b, 0x7A3FFFD8)
    assert inferred.candidates == (RESERVED, RT_CODE, RT_DATA, MMIO, 12, 13)


def test_serial_capture_with_firmware_noise_and_xen() -> None:
    log = read_kernel_log_file(LOGS / "serial-xen-dom0.log")
    (b,) = log.boots
    assert b.first_line == 9  # "(XEN) [    0.000000] Xen version ..."
    assert b.kernel_version == "6.1.112-1.qubes.fc37.x86_64"  # glued behind decompressor output
    assert b.is_xen_dom0
    assert b.xen is not None
    assert (b.xen.version, b.xen.boot_loader) == ("4.19.5", "GRUB 2.06")
    assert b.xen.lines == 11
    assert [(e.start, e.end, e.kind) for e in b.xen.e820] == [
        (0, 0xA0000, "usable"),
        (0x100000, 0x40000000, "usable"),
        (0x40000000, 0x40400000, "reserved"),
        (0x40400000, 0x40420000, "ACPI data"),
        (0x100000000, 0x280000000, "usable"),
    ]
    assert b.e820_source == "Xen" and len(b.e820) == 5
    assert b.dmi == "QEMU Standard PC (Q35 + ICH9, 2009), BIOS \u00e9dk2-stable202402 02/14/2024"
    # a 6.1 dom0 prints every table and never parses the ESRT
    assert b.table("ESRT") == LoggedTable("ESRT", 0x3E8C1018, False, 28)
    assert b.esrt_messages == () and b.dom0_unusable == ()


def test_two_boots_in_one_file() -> None:
    log = read_kernel_log_file(LOGS / "two-boots.log")
    assert [b.first_line for b in log.boots] == [1, 13]
    first, second = log.boots
    assert (first.kernel_version, second.kernel_version) == ("6.1.0-18-amd64", "6.6.13-amd64")
    assert (first.efi_version, second.efi_version) == ("2.70", "2.7")
    assert first.esrt_reserved == (0x9B4A6018, ESRT_HEADER + 4 * ESRT_ENTRY)
    assert second.esrt_reserved == (0x9B4A2018, ESRT_HEADER + 5 * ESRT_ENTRY)
    assert first.table("ESRT") is not None and first.table("ESRT").line == 7  # type: ignore[union-attr]
    assert second.e820_updates[0].line == 22
    assert log.lines_read == 22


def test_mail_quoted_excerpt_with_wrapped_line() -> None:
    b = only_boot("mail-quoted.log")
    assert b.first_line == 4
    assert b.kernel_version is None
    labels = ["ACPI", "ACPI 2.0", "SMBIOS", "SMBIOS 3.0", "ESRT"]
    assert [t.label for t in b.config_tables] == labels
    assert b.dmi is not None and b.dmi.startswith("Gigabyte Technology")  # "> > " quoted
    assert b.esrt_reserved == (0x9A26B918, ESRT_HEADER + 4 * ESRT_ENTRY)
    assert b.esrt_messages[0].line == 7
    update = E820Update("update", 0x9A26B000, 0x9A26C000, "usable", "reserved", 9)
    assert b.e820_updates == (update,)


def test_old_memmap_format() -> None:
    b = only_boot("old-memmap-linux313.log")
    assert b.efi_version == "2.31"
    assert [t.label for t in b.config_tables] == ["ACPI", "ACPI 2.0", "SMBIOS", "MPS"]
    # "range=[a-b)" has an exclusive end
    assert [(d.type, d.phys_addr, d.num_pages) for d in b.memory_map] == [
        (3, 0, 8),
        (7, 0x8000, 86),
        (4, 0x5E000, 2),
        (7, 0x60000, 63),
        (0, 0x9F000, 1),
        (7, 0x100000, 130816),
        (6, 0xBD6DD000, 284),
        (9, 0xBD7F9000, 7),
        (11, 0xF8000000, 16384),
    ]
    assert b.memory_map[6].attribute == RUN | WB_WT_WC_UC
    assert b.memory_map[8].attribute == RUN | 0x1
    assert len(b.e820) == 6


@pytest.mark.parametrize("name", sorted(p.name for p in LOGS.iterdir()))
def test_every_fixture_sniffs_as_a_kernel_log(name: str) -> None:
    data = (LOGS / name).read_bytes()
    assert looks_like_kernel_log(data[:4096])
    assert looks_like_kernel_log(gzip.compress(data)[:400])  # the head of a .gz file


# -- prefixes ----------------------------------------------------------------------------------

ESRT_LINE = "efi: ESRT=0x12345000 "


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "[    1.234567] ",
        "[    1.234567] [    T1] ",
        "[    1.234567][    T1] ",
        "[    1.234567] [   C12] ",
        "[    1.234567 <    0.000012>] ",
        "<6>[    1.234567] ",
        "<6>",
        "6,1234,1234567,-;",
        "kern  :info  : [    1.234567] ",
        "[Tue Jun 18 10:00:00 2024] ",
        "[Jun18 10:00] ",
        "[  +0.000012] ",
        "Jun 18 10:00:00 host kernel: ",
        "Jun  8 10:00:00.123456 host kernel: [    1.234567] ",
        "2024-06-18T10:00:00+0200 host kernel: ",
        "2024-06-18T10:00:00.123456+02:00 host kernel: [    1.234567] ",
        "2024-06-18T10:00:00,123456+02:00 ",
        "[    1.234567] host kernel: ",
        "> ",
        "> > [    1.234567] ",
        ">>> ",
        "   [    1.234567] ",
        "\x1b[32m[    1.234567]\x1b[0m ",
        "\x00\x00[    1.234567] ",
        "UEFI Interactive Shell v2.2\x1b[0m[    1.234567] ",
    ],
)
def test_prefix_forms(prefix: str) -> None:
    for end in ("\n", "\r\n"):
        b = one(prefix + ESRT_LINE + end)
        assert b.config_tables == (LoggedTable("ESRT", 0x12345000, False, 1),)
        raw = read_both((prefix + ESRT_LINE + end).encode())
        assert raw.boots[0].config_tables == b.config_tables


@pytest.mark.parametrize(
    "line",
    [
        "Jun 18 10:00:00 host fwupd[12]: efi: ESRT=0x1 ",
        "Jun 18 10:00:00 host systemd[1]: DMI: not me",
        "2024-06-18T10:00:00+0200 host fwupd[12]: efi: ESRT=0x1 ",
    ],
)
def test_other_programs_lines_are_not_kernel_lines(line: str) -> None:
    assert read_both(line + "\n").boots == ()


def test_non_utf8_and_xen_timestamps() -> None:
    data = (
        b"(XEN) [2024-06-18 10:00:00.123] Xen version 4.20.3 (user@host) (gcc) debug=n\n"
        b"(XEN) [2024-06-18 10:00:00.124] Bootloader: GRUB \xff\xfe2.12\n"
    )
    (b,) = read_both(data).boots
    assert b.xen is not None and b.xen.version == "4.20.3"
    assert b.xen.boot_loader == "GRUB \ufffd\ufffd2.12"


# -- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "values"),
    [
        (
            "Reserving ESRT space from 0x0000000012345018 to 0x0000000012345050.",
            "reserving",
            (0x12345018, 0x12345050),
        ),
        ("ESRT header is not in the memory map.", "not-in-memmap", ()),
        (
            "ESRT header doesn't fit on single memory map entry. (size: 16 max: 8)",
            "header-does-not-fit",
            (16, 8),
        ),
        (
            "EFI memory descriptor is invalid. (esrt: 0000000012345018 max: 0000000012345000)",
            "descriptor-invalid",
            (0x12345018, 0x12345000),
        ),
        (
            "EFI memory descriptor is invalid. (esrt: (____ptrval____) max: (____ptrval____))",
            "descriptor-invalid",
            (),
        ),
        ("early_memremap(0000000012345018, 16) failed.", "memremap-failed", (0x12345018, 16)),
        ("Unsupported ESRT version 2.", "unsupported-version", (2,)),
        (
            "ESRT memory map entry can only hold the header. (max: 24 size: 40)",
            "only-header",
            (24, 40),
        ),
        ("ESRT says fw_resource_count has very large value 4096.", "count-too-large", (4096,)),
        (
            "ESRT does not fit on single memory map entry (size: 16 max: 136)",
            "does-not-fit",
            (16, 136),
        ),
        ("memremap(0x0000000012345018, 56) failed.", "sysfs-memremap-failed", (0x12345018, 56)),
        ("Firmware table registration failed.", "other", ()),
        ("ESRT entry creation failed with error -12.", "other", ()),
    ],
)
def test_esrt_messages(text: str, kind: str, values: tuple[int, ...]) -> None:
    assert kind in ESRT_KINDS
    b = one(f"[    0.004000] esrt: {text}\n")
    (msg,) = b.esrt_messages
    assert (msg.kind, msg.values, msg.text, msg.line) == (kind, values, text, 1)
    if kind == "reserving":
        assert b.esrt_reserved == (0x12345018, ESRT_HEADER + ESRT_ENTRY)


@pytest.mark.parametrize(
    ("printed", "kind", "code"),
    [
        ("usable", "usable", 1),
        ("reserved", "reserved", 2),
        ("ACPI data", "ACPI data", 3),
        ("ACPI NVS", "ACPI NVS", 4),
        ("unusable", "unusable", 5),
        ("persistent (type 7)", "persistent", 7),
        ("persistent (type 12)", "persistent", 12),
        ("soft reserved", "soft reserved", 0xEFFFFFFF),
        ("type 20", "type 20", 20),
        ("type 128", "type 128", 128),
        ("usable; crypto-capable", "usable", 1),
        # Linux 7.0: size column and new words
        ("    1.9 GB System RAM", "usable", 1),
        ("  639   KB System RAM", "usable", 1),
        ("   16   MB device reserved", "reserved", 2),
        ("  256   MB persistent RAM (type 7)", "persistent", 7),
        ("    1   TB type 20", "type 20", 20),
        ("strange words", "strange words", None),
    ],
)
def test_e820_wordings(printed: str, kind: str, code: int | None) -> None:
    b = one(f"[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000001fffff] {printed}\n")
    assert b.e820 == (E820Entry(0x100000, 0x200000, kind, code, 1),)


def test_e820_other_tables_and_gaps_are_not_the_firmware_map() -> None:
    text = (
        "[    0.000000] BIOS-e820: [gap 0x00000000000a0000-0x00000000000fffff]  384   KB ...\n"
        "[    0.000000] reserve setup_data: [mem 0x0000000000000000-0x000000000009ffff] usable\n"
        "[    0.000000] modified: [mem 0x0000000000000000-0x0000000000000fff] reserved\n"
        "[    0.000000] user: [mem 0x0000000000000000-0x0000000000000fff] reserved\n"
        "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable\n"
    )
    (b,) = read_both(text).boots
    assert b.e820 == (E820Entry(0, 0xA0000, "usable", 1, 5),)


def test_config_table_line_forms() -> None:
    b = one(
        "efi:  ACPI 2.0=0x7f9fa014  (ESRT=0x7e1b2018 unusable)  SMBIOS 3.0=0x7f9c0000"
        "  NEWTABLE=0xabc  (MEMATTR=0x7d000018 unusable)\n"
    )
    assert [(t.label, t.address, t.unusable) for t in b.config_tables] == [
        ("ACPI 2.0", 0x7F9FA014, False),
        ("ESRT", 0x7E1B2018, True),
        ("SMBIOS 3.0", 0x7F9C0000, False),
        ("NEWTABLE", 0xABC, False),
        ("MEMATTR", 0x7D000018, True),
    ]
    assert b.dom0_unusable == ("ESRT", "MEMATTR")


@pytest.mark.parametrize(
    "line",
    [
        "efi: Remove mem42: MMIO range=[0xfe000000-0xfe7fffff] (8MB) from e820 map",
        "efi: Getting EFI parameters from FDT:",
        "efi: ESRT=0x1234 trailing words",
        "efi: (ESRT=0x1234)",
        "efi: ESRT=0x1234 unusable)",
        "efi: ESRT=0x12345678901234567",
        "efi: mem07: [Boot Data   |   |WB|WT|WC|UC] range=[0x2000-0x1000] (0MB)",
        "efi: mem07: [No Such Type|   |WB] range=[0x0000000000001000-0x0000000000001fff] (0MB)",
        "efi: mem07: [Boot Data   |RUN] range=[0x0000000000001000-0x0000000000001fff] (invalid)",
    ],
)
def test_lines_that_look_close_but_are_not_read(line: str) -> None:
    log = read_both(f"[    0.000000] {line}\n")
    (b,) = log.boots
    assert b.config_tables == () and b.memory_map == ()
    assert log.lines_used == 0


def test_unknown_mnemonic_leaves_attribute_unknown() -> None:
    b = one(
        "efi: mem00: [Boot Data   |RUN|ZZ|WB] range=[0x0000000000001000-0x0000000000002fff] (0MB)\n"
    )
    assert b.memory_map == (LoggedDescriptor(BS_DATA, 0x1000, 2, None, 1),)
    assert b.memory_map[0].to_descriptor() == MemoryDescriptor(BS_DATA, 0x1000, 2, 0)
    assert b.memory_map[0].end == 0x3000


def test_second_memory_map_print_is_ignored_and_runtime_map_kept_apart() -> None:
    d0 = "efi: mem00: [Conventional|   |WB] range=[0x0000000000000000-0x0000000000000fff] (0MB)"
    d1 = "efi: mem01: [Boot Data   |   |WB] range=[0x0000000000001000-0x0000000000001fff] (0MB)"
    rt = "efi: mem00: [Runtime Data|RUN|WB] range=[0x0000000000002000-0x0000000000002fff] (0MB)"
    b = one("\n".join([d0, d1, d0, d1, "efi: EFI runtime memory map:", rt, rt]) + "\n")
    assert [d.phys_addr for d in b.memory_map] == [0, 0x1000]
    assert [d.line for d in b.runtime_map] == [6]


def test_xen_old_e820_format_and_initial_map() -> None:
    text = (
        "(XEN) Xen version 4.11.4 (root@host) (gcc) debug=n\n"
        "(XEN) Initial Xen-e820 RAM map:\n"
        "(XEN)  0000000000000000 - 000000000009fc00 (usable)\n"
        "(XEN)  00000000fed1c000 - 00000000fed20000 type 20\n"
        "(XEN) System RAM: 4095MB (4193280kB)\n"
        "(XEN)  0000000000001000 - 0000000000002000 (usable)\n"
    )
    (b,) = read_both(text).boots
    assert b.xen is not None
    assert b.xen.e820 == (
        E820Entry(0, 0x9FC00, "usable", 1, 3),
        E820Entry(0xFED1C000, 0xFED20000, "type 20", 20, 4),
    )


@pytest.mark.parametrize(
    ("lines", "dom0"),
    [
        (["Booting paravirtualized kernel on Xen", "efi: EFI v2.70 by EDK II"], True),
        (["Xen: [mem 0x0000000000000000-0x0000000000000fff] usable", "ACPI: RSDP 0x0 24"], True),
        (["Booting paravirtualized kernel on Xen", "Xen version: 4.4.1 (dom0)"], True),
        (["Booting paravirtualized kernel on Xen", "ACPI in unprivileged domain disabled"], False),
        (["Booting paravirtualized kernel on Xen HVM", "efi: EFI v2.70 by EDK II"], False),
        (["Hypervisor detected: Xen PV"], False),
        (["efi: EFI v2.70 by EDK II"], False),
    ],
)
def test_dom0_detection(lines: list[str], dom0: bool) -> None:
    b = one("".join(f"[    0.000000] {line}\n" for line in lines))
    assert b.is_xen_dom0 is dom0


# -- boots -------------------------------------------------------------------------------------


def test_timestamp_reset_starts_a_boot_without_linux_version() -> None:
    text = (
        "[    5.000000] efi: ESRT=0x1000 \n"
        "[    9.000000] something else\n"
        "[    0.000000] efi: ESRT=0x2000 \n"
        "[    0.000000] efi: ESRT=0x3000 \n"
    )
    log = read_both(text)
    assert [[t.address for t in b.config_tables] for b in log.boots] == [[0x1000], [0x2000, 0x3000]]
    assert [b.first_line for b in log.boots] == [1, 3]


def test_journal_boot_markers_and_command_line_repeat() -> None:
    text = (
        "-- Boot 3c5d1a2b4e6f7081 --\n"
        "Jun 18 10:00:00 host kernel: Command line: a\n"
        "Jun 18 10:00:00 host kernel: efi: ESRT=0x1000 \n"
        "-- Boot 9f8e7d6c5b4a3921 --\n"
        "Jun 18 11:00:00 host kernel: efi: ESRT=0x2000 \n"
        "Jun 18 12:00:00 host kernel: Command line: b\n"
        "Jun 18 12:00:00 host kernel: Command line: c\n"
    )
    log = read_both(text)
    assert [b.command_line for b in log.boots] == ["a", "b", "c"]
    assert [b.first_line for b in log.boots] == [2, 5, 7]


def test_xen_console_then_dom0_is_one_boot_and_next_xen_starts_another() -> None:
    text = (
        "(XEN) Xen version 4.17.3 (u@h) (gcc) debug=n\n"
        "[    0.000000] Linux version 6.6.1 (u@h)\n"
        "[    1.000000] Booting paravirtualized kernel on Xen\n"
        "(XEN) Xen version 4.19.5 (u@h) (gcc) debug=n\n"
        "[    0.000000] Linux version 6.6.2 (u@h)\n"
    )
    log = read_both(text)
    assert [(b.xen.version if b.xen else None, b.kernel_version) for b in log.boots] == [
        ("4.17.3", "6.6.1"),
        ("4.19.5", "6.6.2"),
    ]


# -- inference ---------------------------------------------------------------------------------


def test_inference_from_the_printed_memory_map_is_exact() -> None:
    b = only_boot("x86-laptop-efi-debug.log")
    inferred = infer_memory_type(b, 0x4105A018)
    assert (inferred.memory_type, inferred.candidates) == (BS_DATA, (BS_DATA,))
    assert inferred.exact
    assert inferred.evidence == "EFI memory map (efi=debug), line 28"
    assert infer_memory_type(b, 0x90000000).memory_type is None  # a hole in the map


def test_inference_reserving_without_update() -> None:
    b = one(
        "BIOS-e820: [mem 0x0000000000100000-0x000000007fffffff] usable\n"
        "efi: ESRT=0x5f3e6018 \n"
        "esrt: Reserving ESRT space from 0x000000005f3e6018 to 0x000000005f3e6050.\n"
    )
    inferred = infer_memory_type(b, 0x5F3E6018)
    assert inferred.memory_type is None
    assert inferred.candidates == (LOADER_CODE, LOADER_DATA, BS_CODE, BS_DATA, CONVENTIONAL)
    assert "without an e820 update" in inferred.evidence


def test_inference_single_candidate_from_e820() -> None:
    b = one("BIOS-e820: [mem 0x0000000000100000-0x00000000001fffff] ACPI data\n")
    inferred = infer_memory_type(b, 0x100018)
    assert (inferred.memory_type, inferred.exact) == (ACPI_RECLAIM, False)
    assert infer_memory_type(b, 0x300000).candidates == ()


# -- hostile input -----------------------------------------------------------------------------


def test_nothing_recognisable() -> None:
    assert read_kernel_log(b"").boots == ()
    assert read_both("hello world\nsecond line\n").boots == ()
    with pytest.raises(ParseError):
        read_kernel_log(b"hello world\n", strict=True)
    assert read_kernel_log(b"[    0.000000] efi: ESRT=0x1 \n", strict=True).boots
    assert not looks_like_kernel_log(b"")
    assert not looks_like_kernel_log(b"\x7fELF\x02\x01\x01" + bytes(200))
    assert not looks_like_kernel_log(b"[machine]\nname = 'laptop'\n")
    assert not looks_like_kernel_log(b"\x1f\x8b\x08garbage")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes_never_crash(data: bytes) -> None:
    log = read_both(data)
    assert log.lines_read >= 0
    looks_like_kernel_log(data)


TOKENS = [
    "[", "]", "(", ")", " ", "  ", "=", "0x", "ff", "12", "efi:", "esrt:", "mem01:", "|", "RUN",
    "WB", "type=", "range=[", "unusable", "BIOS-e820:", "[mem ", "Xen:", "(XEN)", "\n", ">",
    "Linux version ", "Command line: ", "e820: update ", "==>", "-", ".", " to ",
    "Reserving ESRT space from ", "[    0.000000] ", "\x1b[", "\x00", "\r", "EFI memory map:",
    "RAM map:", "attr=",
]  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=300))
def test_random_log_like_text_never_crashes(tokens: list[str]) -> None:
    text = "".join(tokens)
    log = read_both(text)
    assert log == read_kernel_log(text.encode("utf-8"))


@pytest.mark.parametrize(
    "line",
    [
        "efi: " + "A" * 10000,
        "efi: " + "(A=0x1 " * 3000,
        "efi: " + "A=0x1 " * 3000 + "!",
        "[" + " " * 10000 + "]",
        "esrt: Reserving ESRT space from 0x" + "0" * 10000,
        "> " * 5000 + "efi: ESRT=0x1 ",
        "BIOS-e820: [mem 0x" + "f" * 10000,
        "(XEN) " + " 0" * 5000,
        "Jun 18 10:00:00 " + "h" * 10000 + " kernel: x",
        "\x1b[" + "1;" * 5000 + "m",
        "[ 1." + "1" * 10000 + "]",
    ],
)
def test_pathological_lines_complete(line: str) -> None:
    log = read_both((line + "\n[    0.000000] efi: ESRT=0x1 \n").encode())
    assert log.lines_read == 2
    assert log.boots[-1].config_tables[-1] == LoggedTable("ESRT", 1, False, 2)


def test_overlong_line_is_cut_and_numbering_kept(tmp_path: Path) -> None:
    path = tmp_path / "long.log"
    with path.open("wb") as f:
        f.write(b"[    0.000000] efi: ESRT=0x1 " + b"x" * (3 * 1024 * 1024) + b"\n")
        f.write(b"[    0.000000] efi: ESRT=0x2 \n")
    (b,) = read_kernel_log_file(path).boots
    assert b.config_tables == (LoggedTable("ESRT", 2, False, 2),)
    assert MAX_LINE >= 4096


def test_gzip_file_corrupt_and_truncated(tmp_path: Path) -> None:
    plain = (LOGS / "x86-laptop-efi-debug.log").read_bytes()
    packed = gzip.compress(plain)
    gz = tmp_path / "dmesg.gz"
    gz.write_bytes(packed)
    assert read_kernel_log_file(gz).boots == read_kernel_log(plain).boots
    assert read_kernel_log(packed).boots == read_kernel_log(plain).boots
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    cut = read_kernel_log_file(tmp_path / "cut.gz")
    assert cut.boots and cut.boots[0].kernel_version == "6.15.2-arch1-1"
    bad = packed[:10] + bytes(b ^ 0x5A for b in packed[10:])
    (tmp_path / "bad.gz").write_bytes(bad)
    with pytest.raises(ParseError):
        read_kernel_log_file(tmp_path / "bad.gz")


def test_hundred_megabyte_log(tmp_path: Path) -> None:
    """Streams a generated 100 MB log; checks only that it finishes and finds what was planted."""
    path = tmp_path / "big.log"
    noise = b"[   12.345678] usb 3-6: new full-speed USB device number 3 using xhci_hcd\n" * 1000
    head = (LOGS / "x86-laptop-efi-debug.log").read_bytes()
    lines = head.count(b"\n")
    with path.open("wb") as f:
        f.write(head)
        while f.tell() < 100 * 1024 * 1024:
            f.write(noise)
            lines += 1000
        f.write(b"[   12.400000] esrt: ESRT says fw_resource_count has very large value 129.\n")
        lines += 1
    log = read_kernel_log_file(path)
    (b,) = log.boots
    assert log.lines_read == lines
    assert b.esrt_reserved == (0x4105A018, ESRT_HEADER + 2 * ESRT_ENTRY)
    assert b.esrt_messages[-1].kind == "count-too-large"
    assert b.esrt_messages[-1].values == (129,)
    assert b.esrt_messages[-1].line == lines
