"""Real-log shapes (tests/sources/FORMATS.md): each fixture read both ways (fast path and line
by line, bytes) to values worked out by hand from the fixture text; prefixes, wraps, old labels,
unparsed lines and caps on message lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.sources import kernellog
from efihandoff.sources.kernellog import (
    BootLog,
    E820Entry,
    KernelLog,
    UnparsedLine,
    boots,
    looks_like_kernel_log,
    read_kernel_log,
    read_kernel_log_file,
)

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
WB_WT_WC_UC = 0xF
WB = 0x8
UC = 0x1
RUN = 0x8000_0000_0000_0000
NV = 0x8000


def read(name: str) -> KernelLog:
    """The fixture read both ways; the two results must be equal."""
    path = LOGS / name
    fast = read_kernel_log_file(path, fast=True)
    assert fast == read_kernel_log_file(path, fast=False)
    assert looks_like_kernel_log(path.read_bytes()[:4096])
    return fast


def boot(name: str) -> BootLog:
    log = read(name)
    assert len(log.boots) == 1
    return log.boots[0]


def labels(b: BootLog) -> list[tuple[str, int]]:
    return [(t.label, t.address) for t in b.config_tables]


def desc(b: BootLog) -> list[tuple[int, int, int, int | None]]:
    return [(d.type, d.phys_addr, d.num_pages, d.attribute) for d in b.memory_map]


@pytest.fixture(params=[True, False], ids=["fast", "slow"])
def fast(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def one(text: str, fast: bool) -> BootLog:
    log = read_kernel_log(text.encode(), fast=fast)
    assert log == read_kernel_log(text)  # the str reader agrees
    assert len(log.boots) == 1
    return log.boots[0]


# -- prefixes ------------------------------------------------------------------------------------


def test_journal_short_monotonic_without_host() -> None:
    b = boot("journal-monotonic-nohost.log")
    assert b.efi_version == "2.9" and b.efi_vendor == "HP"
    assert labels(b) == [
        ("ACPI", 0x48FF6000), ("ACPI 2.0", 0x48FF6014), ("SMBIOS", 0x45DA4000),
        ("SMBIOS 3.0", 0x45DA2000), ("TPMFinalLog", 0x48E9F000), ("ESRT", 0x45D39118),
        ("RTPROP", 0x45D39898), ("MEMATTR", 0x38488418), ("MOKvar", 0x45DCD000),
        ("RNG", 0x48F71F18), ("INITRD", 0x2DEECF98), ("TPMEventLog", 0x48F66018),
    ]
    assert b.e820 == (
        E820Entry(0, 0x9F000, "usable", 1, 1),
        E820Entry(0x9F000, 0x100000, "reserved", 2, 2),
        E820Entry(0x100000, 0x45D39000, "usable", 1, 3),
        E820Entry(0x45D39000, 0x48FFF000, "reserved", 2, 4),
    )
    # 0x45d391a0 - 0x45d39118 = 0x88: a 16-byte header and three 40-byte entries
    assert b.esrt_reserved == (0x45D39118, 16 + 3 * 40)
    assert b.unparsed == ()


def test_journal_short_in_a_chinese_locale() -> None:
    b = boot("journal-short-zh-locale.log")
    assert b.kernel_version == "6.12.8-2-cachyos"
    assert [t.label for t in b.config_tables] == [
        "ACPI", "ACPI 2.0", "SMBIOS", "SMBIOS 3.0", "TPMFinalLog", "MEMATTR", "INITRD", "RNG",
        "TPMEventLog",
    ]
    assert b.table("ESRT") is None  # systemd's "efi: ESRT=0x1" is not the kernel's
    assert [(e.start, e.end, e.kind) for e in b.e820] == [
        (0x9F00000, 0x9F28000, "ACPI NVS"),
        (0xB9D7E000, 0xBAD7E000, "ACPI NVS"),
        (0xBAD7E000, 0xBADFE000, "ACPI data"),
    ]


def test_dmesg_T_in_a_german_locale() -> None:
    b = boot("dmesg-T-de-locale.log")
    assert b.kernel_version == "6.8.0-45-generic"
    assert b.efi_version == "2.7" and b.efi_vendor == "INSYDE Corp."
    assert b.table("ESRT") is not None and b.table("ESRT").address == 0x37B78818  # type: ignore[union-attr]
    assert len(b.config_tables) == 9
    assert b.esrt_reserved == (0x37B78818, 0x88)
    (u,) = b.e820_updates
    assert (u.start, u.end) == (0x37B78000, 0x37B79000)
    assert (u.old_kind, u.new_kind) == ("usable", "reserved")


def test_journal_short_full_and_short_unix_with_boot_markers() -> None:
    log = read("journal-short-full.log")
    first, second = log.boots
    assert first.kernel_version == "6.9.4-200.fc40.x86_64"
    assert first.efi_vendor == "Lenovo" and first.dmi is None  # systemd's DMI line is not read
    assert second.kernel_version == "6.9.5-200.fc40.x86_64"
    assert first.table("MEMATTR").address == 0x41020018  # type: ignore[union-attr]
    assert second.table("MEMATTR").address == 0x40C1D018  # type: ignore[union-attr]
    assert first.esrt_address == second.esrt_address == 0x4105A018


def test_rfc5424_syslog() -> None:
    b = boot("syslog-rfc5424.log")
    assert b.kernel_version == "6.6.30"
    assert b.efi_vendor == "EDK II"
    assert b.esrt_address == 0x7E1B2018  # not fwupd's 0x12345678
    assert [t.label for t in b.config_tables] == ["ACPI", "ACPI 2.0", "SMBIOS", "MEMATTR", "ESRT"]
    assert b.esrt_reserved == (0x7E1B2018, 0x60)


def test_html_escaped_forum_paste() -> None:
    b = boot("forum-html-escaped.log")
    assert labels(b) == [
        ("ACPI", 0x9C7E6000), ("ACPI 2.0", 0x9C7E6014), ("SMBIOS", 0x9D0F5000),
        ("ESRT", 0x9A26B918),
    ]
    assert b.dmi is not None and b.dmi.startswith("Gigabyte Technology")  # "&lt;6&gt;" level
    assert b.esrt_reserved == (0x9A26B918, 0x88)


def test_markdown_inline_code_and_fences_qubes_dom0() -> None:
    b = boot("qubes-markdown-inline.log")
    assert b.kernel_version == "4.9.45-21.pvops.qubes.x86_64"
    assert b.e820_source == "Xen" and b.is_xen_dom0
    # the last e820 line ends with the closing backtick
    assert b.e820 == (
        E820Entry(0, 0x9D000, "usable", 1, 6),
        E820Entry(0x9D000, 0x100000, "reserved", 2, 7),
        E820Entry(0x100000, 0x10000000, "usable", 1, 8),
    )
    assert labels(b) == [
        ("ACPI", 0x9ED77000), ("ACPI 2.0", 0x9ED77000), ("SMBIOS", 0xF0000), ("MPS", 0xFD590),
    ]


def test_serial_capture_with_bare_times() -> None:
    b = boot("serial-bare-times.log")
    assert b.efi_version == "2.10" and b.efi_vendor == "Das U-Boot"
    assert labels(b) == [("RTPROP", 0x78F30040), ("SMBIOS", 0x78F2A000), ("MEMRESERVE", 0x6A1FA040)]
    assert b.esrt_reserved == (0x7AEF9040, 0x78)  # 16 + 40 * 2.6: whatever it says, as printed
    assert b.esrt_address == 0x7AEF9040


def test_tabs_and_caller_ids_in_a_quoted_arm64_log() -> None:
    b = boot("dmesg-tabs-caller-arm64.log")
    assert labels(b) == [
        ("ACPI 2.0", 0x9FF5B40000), ("SMBIOS 3.0", 0x9FF686FD98), ("ESRT", 0x9FF1D18298),
        ("MEMRESERVE", 0x9FE6DACD98),
    ]
    assert desc(b) == [(7, 0x90000000, 0x2000, WB_WT_WC_UC), (6, 0x92000000, 0x900, RUN | 0xF)]


def test_openwrt_logread() -> None:
    b = boot("openwrt-logread-x86.log")
    assert b.kernel_version == "6.6.32"
    assert labels(b) == [
        ("SMBIOS", 0x7F9A8000), ("ACPI", 0x7F77E000), ("ACPI 2.0", 0x7F77E014),
        ("MEMATTR", 0x7E1B1018), ("ESRT", 0x7E1B2018),  # not netifd's 0x1
    ]
    assert b.e820 == (
        E820Entry(0, 0xA0000, "usable", 1, 3),
        E820Entry(0x100000, 0x7E1B2000, "usable", 1, 4),
    )


def test_busybox_syslogd_with_facility_and_level() -> None:
    b = boot("busybox-syslogd.log")
    assert b.kernel_version == "6.1.44"
    assert b.efi_vendor == "Das U-Boot"
    assert labels(b) == [("RTPROP", 0xBBF0C040), ("SMBIOS", 0xBBF08000), ("MEMRESERVE", 0xB9B5A040)]


def test_journalctl_json_kernel_records_only() -> None:
    b = boot("journal-json.log")
    assert b.kernel_version == "6.10.3-arch1-2"
    assert b.efi_vendor == "Lenovo"
    assert b.esrt_address == 0x4105A018  # fwupd's record (0x1) is not the kernel's
    assert len(b.config_tables) == 7
    assert b.esrt_reserved == (0x4105A018, 0x60)  # MESSAGE as a byte array


def test_windows_utf16le_capture() -> None:
    b = boot("windows-utf16le.log")  # PowerShell "dmesg > file" through WSL/ssh: UTF-16LE, CRLF
    assert b.kernel_version == "6.5.0-41-generic"
    assert b.esrt_address == 0x43EA7E98
    assert [t.label for t in b.config_tables][-1] == "TPMEventLog"
    assert b.e820 == (
        E820Entry(0, 0x9F000, "usable", 1, 2),
        E820Entry(0x9F000, 0x100000, "reserved", 2, 3),
    )
    assert b.esrt_reserved == (0x43EA7E98, 0x60)


# -- wrapped lines ----------------------------------------------------------------------------


def test_journal_wrapped_by_a_mail_client() -> None:
    b = boot("journal-wrapped-mail.log")
    assert labels(b) == [
        ("ACPI", 0x44FFE000), ("ACPI 2.0", 0x44FFE014), ("TPMFinalLog", 0x44EC5000),
        ("SMBIOS", 0x42E5E000), ("SMBIOS 3.0", 0x42E5C000), ("ESRT", 0x3C78EA98),
        ("MOKvar", 0x3C70C000),
    ]
    assert {t.line for t in b.config_tables} == {8}  # one logical line, where it starts
    # "[mem " / "0x...-0x...] usable" is one e820 line
    assert b.e820 == (
        E820Entry(0x44FFF000, 0x45800000, "reserved", 2, 3),
        E820Entry(0x100000000, 0x4B0800000, "usable", 1, 4),
    )
    assert b.unparsed == ()


def test_quoted_printable_mail_archive() -> None:
    b = boot("lkml-quoted-printable.log")
    assert labels(b) == [
        ("ACPI", 0x93BFE000), ("ACPI 2.0", 0x93BFE014), ("SMBIOS", 0x8FCBC000),
        ("SMBIOS 3.0", 0x8FCAF000), ("TPMFinalLog", 0x93990000), ("MEMATTR", 0x8A432018),
        ("ESRT", 0x87EC1C18), ("RNG", 0x8FE2EB18),
    ]
    assert b.e820 == (
        E820Entry(0xFED20000, 0xFED80000, "reserved", 2, 1),  # "reser=" / "ved"
        E820Entry(0x100000000, 0x85F800000, "usable", 1, 3),
    )
    assert b.esrt_reserved == (0x87EC1C18, 0x60)  # "0x0000000=" / "087ec1c78."
    assert b.unparsed == ()


def test_quoted_printable_thinkpad_mail_every_wrap() -> None:
    """A whole QP mail (linux-wireless, 2022): e820 type words, the table line, the ESRT end
    address and the e820 update's new type all split by soft breaks."""
    b = boot("lkml-qp-thinkpad-x1.log")
    assert b.kernel_version == "5.17.3-arch1-1"
    assert b.dmi == "LENOVO 20XXS3HC26/20XXS3HC26, BIOS N32ET75W (1.51 ) 12/02/2021"
    assert b.command_line == (
        "root=/dev/mapper/cryptroot rootflags=subvol=/root init=/usr/lib/systemd/systemd rw quiet"
    )
    assert [(e.start, e.end, e.kind) for e in b.e820] == [
        (0x0, 0x9F000, "usable"),
        (0x9F000, 0x100000, "reserved"),
        (0x100000, 0x8DF6F000, "usable"),
        (0x8DF6F000, 0x92F2F000, "reserved"),
        (0x92F2F000, 0x93B2F000, "ACPI NVS"),
        (0x93B2F000, 0x93BFF000, "ACPI data"),
        (0x93BFF000, 0x93C00000, "usable"),
        (0x93C00000, 0x98000000, "reserved"),
        (0x99400000, 0x99600000, "reserved"),
        (0x99E00000, 0xA0800000, "reserved"),
        (0xC0000000, 0xD0000000, "reserved"),
        (0xFED20000, 0xFED80000, "reserved"),
        (0x100000000, 0x85F800000, "usable"),
    ]
    assert [t.label for t in b.config_tables] == [
        "ACPI", "ACPI 2.0", "SMBIOS", "SMBIOS 3.0", "TPMFinalLog", "MEMATTR", "ESRT", "RNG",
        "TPMEventLog",
    ]
    assert b.table("SMBIOS").address == 0x8FCBC000  # type: ignore[union-attr]
    assert b.table("TPMEventLog").address == 0x6CB68018  # type: ignore[union-attr]
    # 0x87ec1e30 - 0x87ec1c18 = 0x218: a 16-byte header and 13 entries
    assert b.esrt_reserved == (0x87EC1C18, 16 + 13 * 40)
    assert [(u.op, u.start, u.end, u.old_kind, u.new_kind) for u in b.e820_updates] == [
        ("update", 0, 0x1000, "usable", "reserved"),
        ("remove", 0xA0000, 0x100000, "usable", None),
        ("update", 0x87EC1000, 0x87EC2000, "usable", "reserved"),
    ]
    assert kernellog.infer_memory_type(b, 0x87EC1C18).memory_type == 4  # Boot Data, inferred
    assert b.unparsed == ()


def test_quoted_and_wrapped_arm64_table_line() -> None:
    b = boot("lkml-quoted-arm64-uboot.log")
    assert labels(b) == [
        ("ESRT", 0xF0EA5040), ("TPMFinalLog", 0xF0EA9040), ("RTPROP", 0xF0EA7040),
        ("SMBIOS", 0xF0EA3000), ("TPMEventLog", 0xEB3B3040), ("INITRD", 0xEB3B2040),
        ("RNG", 0xE5C0F040), ("MEMRESERVE", 0xE5C0E040),
    ]


def test_xl_dmesg_quoted_printable_and_wrapped() -> None:
    b = boot("xl-dmesg-quoted-printable.log")
    assert b.xen is not None and b.xen.version == "4.16.2"
    assert [(d.type, d.phys_addr, d.num_pages, d.attribute) for d in b.xen.efi_memory_map] == [
        (7, 0, 0x9E, 0xF),
        (0, 0x9E000, 1, 0xF),
        (3, 0x9F000, 1, 0xF),
        (7, 0x100000, 0x3FF00, 0xF),
        (0, 0x40000000, 0x400, 0xF),  # "attr=3D000000000000000=" / "f"
        (7, 0x40400000, 0x1DF5A, 0xF),
    ]


def test_xl_dmesg_double_spaced() -> None:
    b = boot("xl-dmesg-double-spaced.log")
    assert b.xen is not None
    assert [(d.type, d.phys_addr, d.num_pages) for d in b.xen.efi_memory_map] == [
        (7, 0, 0x9C), (2, 0x9C000, 2), (0, 0x9E000, 1), (4, 0x9F000, 1),
        (7, 0x100000, 0x174A7), (4, 0x175A7000, 0x40),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("efi: ACPI=0x1000 ACPI\n2.0=0x1014 ESRT=0x2000\n", [("ACPI", 0x1000), ("ACPI 2.0", 0x1014),
                                                          ("ESRT", 0x2000)]),
        ("efi: ACPI=0x1000 ESRT=\n0x2000\n", [("ACPI", 0x1000), ("ESRT", 0x2000)]),
        ("efi: ACPI=0x1000 ESRT=0x20=\n00\n", [("ACPI", 0x1000), ("ESRT", 0x2000)]),
        ("efi: ACPI=0x1000\n> ESRT=0x2000\n", [("ACPI", 0x1000), ("ESRT", 0x2000)]),
    ],
)
def test_wrapped_config_table_lines(text: str, expected: list[tuple[str, int]], fast: bool) -> None:
    b = one("[    0.000000] " + text, fast)
    assert labels(b) == expected
    assert b.unparsed == ()


@pytest.mark.parametrize(
    "lines",
    [
        ["efi: mem07: [Conventional|   |  |  |  |  |  |  |  |  |", "|   |WB|WT|WC|UC]",
         "range=[0x0000000001400000-0x00000000b9855fff] (2948MB)"],
        ["efi: mem07: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=",
         "[0x0000000001400000-0x00000000b9855fff] (2948MB)"],
        ["efi: mem07: [Conventional Memory|   |  |  |  |  |  |  |   |WB|WT|WC|UC]",
         "range=[0x0000000001400000-0x00000000b9855fff] (2948MB)"],
    ],
)
def test_wrapped_memory_map_line(lines: list[str], fast: bool) -> None:
    b = one("[    0.000000] " + "\n".join(lines) + "\n", fast)
    # 0x1400000..0xb9855fff inclusive: 0xb8456000 bytes, 0xb8456 pages
    assert desc(b) == [(7, 0x1400000, 0xB8456, WB_WT_WC_UC)]
    assert b.memory_map[0].line == 1


def test_e820_type_word_wrapped(fast: bool) -> None:
    b = one("[    0.000000] BIOS-e820: [mem 0x0000000009f00000-0x0000000009f27fff] ACPI\nNVS\n",
            fast)
    assert b.e820 == (E820Entry(0x9F00000, 0x9F28000, "ACPI NVS", 4, 1),)


def test_e820_unknown_word_kept_and_recorded(fast: bool) -> None:
    text = "[    0.000000] BIOS-e820: [mem 0x0000000009f00000-0x0000000009f27fff] ACPI\n"
    text += "[    0.000001] usb 1-1: chatter\n"
    b = one(text, fast)
    assert b.e820 == (E820Entry(0x9F00000, 0x9F28000, "ACPI", None, 1),)
    line = "BIOS-e820: [mem 0x0000000009f00000-0x0000000009f27fff] ACPI"
    assert b.unparsed == (UnparsedLine(1, line, "e820"),)


def test_complete_line_then_unrelated_prefixless_line(fast: bool) -> None:
    b = one("efi: ACPI=0x1000 ESRT=0x2000\nsomething (else)\nefi: mem00: broken\n", fast)
    assert labels(b) == [("ACPI", 0x1000), ("ESRT", 0x2000)]


# -- labels -------------------------------------------------------------------------------------


def test_long_memory_type_names_of_linux_3_18_to_5_x() -> None:
    b = boot("efi-debug-long-labels-no-timestamps.log")
    assert b.efi_vendor == "American Megatrends"
    assert desc(b) == [
        (7, 0x0, 1, WB_WT_WC_UC),
        (2, 0x1000, 5, WB_WT_WC_UC),
        (7, 0x6000, 0x98, WB_WT_WC_UC),
        (0, 0x9E000, 2, WB_WT_WC_UC),
        (4, 0x74DD6000, 1, WB_WT_WC_UC),
        (9, 0x79993000, 0x21, WB_WT_WC_UC),
        (10, 0x799B4000, 0x93, WB_WT_WC_UC),
        (6, 0x79A47000, 0xD0, RUN | WB_WT_WC_UC),
        (8, 0x79B17000, 1, WB_WT_WC_UC),
        (11, 0xF0000000, 0x8000, RUN | UC),
        (12, 0xFD000000, 0x1000, RUN | UC),
        (14, 0x480000000, 0x80000, NV | WB_WT_WC_UC),
    ]
    assert b.esrt_address == 0x74DD6F98
    assert kernellog.infer_memory_type(b, 0x74DD6F98).memory_type == 4  # Boot Data, exact
    assert b.esrt_reserved == (0x74DD6F98, 0x38)


def test_arm64_long_names_quoted_with_memblock_lines() -> None:
    b = boot("arm64-uboot-long-labels-quoted.log")
    assert labels(b) == [("SMBIOS", 0x3CB62000), ("MEMRESERVE", 0x3CB3D040)]
    assert desc(b) == [
        (0, 0, 1, WB),
        (7, 0x1000, 0x307, WB),
        (4, 0x308000, 0x2000, WB),
        (9, 0x3CB3D000, 1, WB),
        (6, 0x3CB62000, 1, RUN | WB),  # the old trailing '*'
    ]


def test_linux_3_13_syslog_with_mps_and_type_numbers() -> None:
    b = boot("syslog-linux313-mps.log")
    assert b.kernel_version == "3.13.0-170-generic"
    assert labels(b) == [
        ("ACPI", 0x8F094000), ("ACPI 2.0", 0x8F094000), ("SMBIOS", 0xF05E0), ("MPS", 0xFC470),
    ]
    # "range=[a-b)" exclusive; the CRON line between is another program's
    assert desc(b) == [
        (3, 0, 8, 0xF), (7, 0x8000, 0x50, 0xF), (0, 0x58000, 1, 0xF),
        (10, 0x8F094000, 0x31, 0xF), (11, 0xF8000000, 0x4000, RUN | UC),
    ]
    assert [d.line for d in b.memory_map] == [5, 6, 7, 9, 10]


def test_linux_2_6_38_uppercase_prefix_and_bare_table_line() -> None:
    b = boot("dmesg-linux2638-uppercase.log")
    assert b.efi_version == "2.00" and b.efi_vendor == "Phoenix Technologies Ltd."
    assert labels(b) == [("ACPI", 0xA73FE000), ("ACPI 2.0", 0xA73FE014), ("SMBIOS", 0xA7310000)]
    assert desc(b) == [
        (3, 0, 1, 0xF), (7, 0x1000, 0x53, 0xF), (4, 0x54000, 1, 0xF),
        (5, 0xA6F0B000, 0x85, RUN | 0xF), (9, 0xA739B000, 0x46, 0xF), (11, 0xFED80000, 1, RUN | UC),
    ]


# -- nothing dropped silently, repeats --------------------------------------------------------


def test_unparsed_lines_are_recorded() -> None:
    b = boot("unparsed-lines.log")
    assert b.kernel_version == "6.1.0-21-amd64"
    assert b.config_tables == ()  # the line was cut: what it says is unknown, not absent
    assert desc(b) == [(3, 0, 1, WB_WT_WC_UC)]
    assert b.e820 == (E820Entry(0, 0x9F000, "usable", 1, 2),)
    assert [(u.line, u.what) for u in b.unparsed] == [
        (3, "e820"),
        (5, "efi config-table line"),
        (7, "efi memory map"),
        (8, "esrt"),
    ]
    assert b.unparsed[1].text.endswith("SMBIOS=0x6a5d0000 ESR")
    assert b.tables_unknown  # the ESRT is not absent: the line that would say is unreadable


def test_tables_known_when_every_table_line_parsed() -> None:
    assert not boot("journal-wrapped-mail.log").tables_unknown


def test_repeated_paste_reads_once() -> None:
    b = boot("repeated-paste.log")
    assert [t.label for t in b.config_tables] == ["ACPI", "ACPI 2.0", "SMBIOS", "MEMATTR",
                                                  "ESRT", "RNG"]
    assert len(b.esrt_messages) == 1 and b.esrt_reserved == (0x5869BF98, 0x38)


def test_same_line_at_another_time_is_kept(fast: bool) -> None:
    line = "e820: update [mem 0x87ec1000-0x87ec1fff] usable ==> reserved\n"
    b = one(f"[    0.011524] {line}[    0.011600] {line}[    0.011600] {line}", fast)
    assert [u.line for u in b.e820_updates] == [1, 2]


@pytest.mark.parametrize(
    "prefix",
    [
        "[Di Okt 15 09:12:03 2024] ",
        "[lun. juin 17 10:00:00 2024] ",
        "[    0.738473] kernel: ",
        "[    0.738473] kernel[0]: ",
        "1月 06 16:39:14 host kernel: ",
        "Tue 2024-06-18 10:00:00 CEST host kernel: ",
        "1718697600.123456 host kernel: ",
        "10:00:01 ",
        "10:00:01.123 [    0.000000] ",
        "<6>1 2024-06-18T10:00:00.1+02:00 host kernel - - - ",
        "&gt; [    0.000000] ",
        "&lt;6&gt;[    0.000000] ",
        "`[    0.000000] ",
        "    MESSAGE=",
        "2024-06-18T10:00:00.123456+02:00 kernel: ",  # short-iso-precise --no-hostname
        "Jun 18 10:00:00.123456 kernel: ",  # short-precise --no-hostname
        "Tue Jun 18 10:00:00 2024 kern.info kernel: ",  # OpenWrt logread
    ],
)
def test_more_prefix_forms(prefix: str, fast: bool) -> None:
    b = one(prefix + "efi: ESRT=0x12345000 \n", fast)
    assert labels(b) == [("ESRT", 0x12345000)]
    assert looks_like_kernel_log((prefix + "efi: ESRT=0x12345000 \n").encode())


@pytest.mark.parametrize(
    "line",
    [
        "1月 06 16:39:14 host fwupd[12]: efi: ESRT=0x1 ",
        "Tue 2024-06-18 10:00:00 CEST host systemd[1]: efi: ESRT=0x1 ",
        "<30>1 2024-06-18T10:00:00+02:00 host fwupd 812 - - efi: ESRT=0x1 ",
    ],
)
def test_other_programs_in_other_formats(line: str, fast: bool) -> None:
    log = read_kernel_log((line + "\n").encode(), fast=fast)
    assert all(b.config_tables == () for b in log.boots)


def test_prose_quoting_a_message_is_not_read(fast: bool) -> None:
    for line in (
        "The log says efi: ESRT=0x1234 but fwupd shows nothing",
        "In 2024 I saw efi: ESRT=0x1234 in my log",
    ):
        log = read_kernel_log((line + "\n").encode(), fast=fast)
        assert log.boots == ()


# -- caps ---------------------------------------------------------------------------------------


def test_a_map_past_the_cap_is_cut_and_said(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    monkeypatch.setattr(boots, "MAX_DESCRIPTORS", 3)
    lines = [
        f"[    0.000000] efi: mem{i:02d}: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC"
        "|UC]"
        f" range=[0x{i << 12:016x}-0x{(i << 12) + 0xFFF:016x}] (0MB)"
        for i in range(5)
    ]
    b = one("\n".join(lines) + "\n", fast)
    assert [d.phys_addr for d in b.memory_map] == [0, 0x1000, 0x2000]
    assert b.cut == ("EFI memory map: 2 more printed than the cap of 3 kept",)


# -- one fixture per remaining shape of FORMATS.md ------------------------------------------


@pytest.mark.parametrize(
    ("name", "kernel", "esrt", "reserved", "count"),
    [
        ("dmesg-r-raw.log", "6.1.0-18-amd64", 0x5869BF98, 0x38, 6),
        ("dmesg-x-facility.log", "5.15.0-91-generic", 0xB6DDE918, 0x88, 9),
        ("dmesg-time-format-iso.log", "6.8.0-35-generic", 0x5A9F9D18, 0x60, 10),
        ("journal-monotonic-host.log", "6.7.4-2-MANJARO", 0xB9D2C018, 0x38, 4),
        ("line-numbered-paste.log", "6.6.13-200.fc39.x86_64", 0x37B78818, 0x88, 9),
    ],
)
def test_prefix_shapes_with_an_esrt(
    name: str, kernel: str, esrt: int, reserved: int, count: int
) -> None:
    b = boot(name)
    assert b.kernel_version == kernel
    assert b.esrt_address == esrt
    assert b.table("ESRT") is not None and b.table("ESRT").address == esrt  # type: ignore[union-attr]
    assert len(b.config_tables) == count
    assert b.esrt_reserved == (esrt, reserved)
    assert b.unparsed == ()


def test_dmesg_H_relative_times() -> None:
    b = boot("dmesg-H-reltime.log")
    assert b.kernel_version == "6.9.5-arch1-1"
    assert labels(b) == [("RTPROP", 0x7AEF9040), ("SMBIOS", 0x7AEF5000), ("MEMRESERVE", 0x566DF040)]


def test_journalctl_verbose_message_fields() -> None:
    b = boot("journal-verbose.log")
    assert b.efi_vendor == "Lenovo"
    assert [t.label for t in b.config_tables] == [
        "ACPI", "ACPI 2.0", "SMBIOS", "SMBIOS 3.0", "MEMATTR", "ESRT", "RNG",
    ]
    assert b.esrt_address == 0x4105A018


def test_every_kind_of_wrap_in_one_log() -> None:
    b = boot("wrapped-split-tokens.log")
    assert b.e820 == (E820Entry(0x9F00000, 0x9F28000, "ACPI NVS", 4, 2),)  # "ACPI" / "NVS"
    assert labels(b) == [  # "ACPI" / "2.0=..." and "ESRT=" / "0x9a26b918"
        ("ACPI", 0x9C7E6000), ("ACPI 2.0", 0x9C7E6014), ("SMBIOS", 0x9D0F5000),
        ("SMBIOS 3.0", 0x9D0F4000), ("ESRT", 0x9A26B918),
    ]
    assert {t.line for t in b.config_tables} == {5}
    assert desc(b) == [(7, 0x1400000, 0xB8456, WB_WT_WC_UC)]  # three lines
    assert b.memory_map[0].line == 8
    assert b.esrt_reserved == (0x9A26B918, 0x88)
    assert b.unparsed == ()


def test_a_wrapped_table_line_pasted_twice_without_timestamps(fast: bool) -> None:
    line = "Aug 03 22:44:13 host kernel: efi: ACPI=0xca39b000 ACPI 2.0=0xca39b014 \n"
    line += "MEMATTR=0xc657d018 ESRT=0xc823dd18\n"
    b = one(line + line, fast)
    assert labels(b) == [
        ("ACPI", 0xCA39B000), ("ACPI 2.0", 0xCA39B014), ("MEMATTR", 0xC657D018),
        ("ESRT", 0xC823DD18),
    ]
    assert {t.line for t in b.config_tables} == {1}


# -- wrapping at random places reads the same as the unwrapped line -----------------------------

_WRAPPABLE = [
    "efi: ACPI=0x48ff6000 ACPI 2.0=0x48ff6014 SMBIOS=0x45da4000 SMBIOS 3.0=0x45da2000 "
    "TPMFinalLog=0x48e9f000 ESRT=0x45d39118 RTPROP=0x45d39898 MEMATTR=0x38488418 ",
    "efi: mem07: [Conventional Memory|   |  |  |  |  |  |  |   |WB|WT|WC|UC] "
    "range=[0x0000000001400000-0x00000000b9855fff] (2948MB)",
    "BIOS-e820: [mem 0x0000000092f2f000-0x0000000093b2efff] ACPI NVS",
    "e820: update [mem 0x87ec1000-0x87ec1fff] usable ==> reserved",
    "esrt: Reserving ESRT space from 0x0000000087ec1c18 to 0x0000000087ec1e30.",
    "efi:   0x000000001000-0x000000307fff [Conventional Memory|   |  |  |  |  |  |  |   |WB|  "
    "|  |  ]",
    "efi: mem02: type=4, attr=0xf, range=[0x000000000005e000-0x0000000000060000) (0MB)",
    "efi: ACPI=0x9ffbe000 (ESRT=0x9b4a6018 unusable) SMBIOS=0x9f7e1000 (MEMATTR=0x9b4a7018 "
    "unusable) ",
    "Xen: [mem 0x0000000000100000-0x000000000fffffff] usable",
    "BIOS-e820: [mem 0x0000000100000000-0x000000047dffffff]  14.1 GB System RAM",
]


def _summary(log: KernelLog) -> tuple[object, ...]:
    (b,) = log.boots
    return (
        labels(b), desc(b), [(e.start, e.end, e.kind) for e in b.e820],
        [(u.start, u.end, u.new_kind) for u in b.e820_updates], b.esrt_reserved, b.unparsed,
    )


def _wrap_at_blanks(text: str, width: int) -> list[str]:
    """A mail client's hard wrap: lines of at most ``width`` characters, broken after a blank
    (the blank stays at the end of the line); a word longer than the width is not broken."""
    out: list[str] = []
    while len(text) > width:
        cut = text.rfind(" ", 0, width)
        if cut <= 0:
            cut = text.find(" ", width)
            if cut < 0:
                break
        out.append(text[: cut + 1])
        text = text[cut + 1 :]
    out.append(text)
    return out


def _quoted_printable(text: str, width: int) -> list[str]:
    """RFC 2045: '=' as =3D, lines of at most ``width`` - 1 characters and a soft break '='."""
    body = text.replace("=", "=3D")
    out: list[str] = []
    while len(body) > width - 1:
        cut = width - 1
        while body[cut - 1] == "=" or body[cut - 2 : cut] in ("=3",):
            cut -= 1  # never inside an escape
        out.append(body[:cut])
        body = body[cut:]
    out.append(body)
    return out


@settings(max_examples=200, deadline=None)
@given(
    which=st.integers(0, len(_WRAPPABLE) - 1),
    width=st.integers(30, 100),
    style=st.sampled_from(["blank", "qp", "quoted"]),
    fast=st.booleans(),
)
def test_wrapping_reads_as_the_line(which: int, width: int, style: str, fast: bool) -> None:
    """A line wrapped the way mail clients wrap (at a blank, or quoted-printable) reads as the
    line itself."""
    line = "[    0.000000] " + _WRAPPABLE[which]
    whole = read_kernel_log((line + "\n").encode(), fast=fast)
    if style == "qp":
        text = "=\n".join(_quoted_printable(line, width))
    elif style == "quoted":
        text = "> " + "\n> ".join(_wrap_at_blanks(line, width))
    else:
        text = "\n".join(_wrap_at_blanks(line, width))
    wrapped = read_kernel_log((text + "\n").encode(), fast=fast)
    assert _summary(wrapped) == _summary(whole)


_XEN_WRAPPABLE = [
    ("(XEN) EFI memory map:", "(XEN)  0000040000000-00000403fffff type=0 attr=000000000000000f"),
    ("(XEN) EFI RAM map:", "(XEN)  [0000000100000000, 000000047c7fffff] (usable)"),
    ("(XEN) Xen-e820 RAM map:", "(XEN)  0000000100000000 - 000000047c800000 (ACPI NVS)"),
]


def _xen_summary(log: KernelLog) -> tuple[object, ...]:
    (b,) = log.boots
    assert b.xen is not None
    return (
        [(d.type, d.phys_addr, d.num_pages, d.attribute) for d in b.xen.efi_memory_map],
        [(e.start, e.end, e.kind) for e in b.xen.e820],
        b.unparsed,
    )


@settings(max_examples=100, deadline=None)
@given(
    which=st.integers(0, len(_XEN_WRAPPABLE) - 1),
    width=st.integers(25, 80),
    style=st.sampled_from(["blank", "qp"]),
    fast=st.booleans(),
)
def test_wrapping_xen_map_lines(which: int, width: int, style: str, fast: bool) -> None:
    head, line = _XEN_WRAPPABLE[which]
    tail = "(XEN) Freed 1016kB unused BSS memory\n"
    whole = read_kernel_log(f"{head}\n{line}\n{tail}".encode(), fast=fast)
    if style == "qp":
        text = "=\n".join(_quoted_printable(line, width))
    else:
        text = "\n".join(_wrap_at_blanks(line, width))
    wrapped = read_kernel_log(f"{head}\n{text}\n{tail}".encode(), fast=fast)
    assert _xen_summary(wrapped) == _xen_summary(whole)
