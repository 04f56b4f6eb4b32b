"""Whole paths: kexec after each proposal, costs, verdict precedence, missing evidence."""

from __future__ import annotations

from pathlib import Path

from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.paths.presets import PRESETS, parse_path
from efihandoff.paths.simulate import simulate, stub_e820
from efihandoff.paths.verdict import PRECEDENCE, Verdict
from efihandoff.sources.scenario import load_scenario
from efihandoff.uefi.memmap import MemoryAttribute, MemoryDescriptor, MemoryMap, MemoryType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
T = MemoryType


def _load(name: str) -> Machine:
    return load_scenario(EXAMPLES / f"{name}.toml")


def _kexec(name: str, preset: str) -> dict[str, str]:
    r = simulate(_load(name), PRESETS[preset])
    return {tv.name: tv.verdict.value for tv in r.kexec.values()}


def test_verdict_precedence_is_designs() -> None:
    assert [v.value for v in PRECEDENCE] == [
        "absent",
        "refused",
        "corrupt",
        "clobbered",
        "relocated",
        "intact",
    ]


# -- kexec after each proposal (issue 3 item 5) -----------------------------------------------


def test_kexec_native_keeps_what_efi_mem_reserve_tagged() -> None:
    # x86 kexec hands over efi.memmap, where the ESRT's page carries RUNTIME.
    assert _kexec("esrt-bsdata-1", "native") == {"ESRT": "intact"}


def test_kexec_xen_copy_in_acpi_reclaim_survives() -> None:
    assert _kexec("esrt-bsdata-1", "xen-fixed") == {"ESRT": "relocated"}
    assert _kexec("esrt-bsdata-1", "xen-4.16") == {"ESRT": "clobbered"}


def test_kexec_reserve_hypercall_loses_the_reservation() -> None:
    r = simulate(_load("esrt-bsdata-1"), PRESETS["reserve-hypercall"])
    assert r.esrt.verdict is Verdict.INTACT  # at boot
    (after,) = r.kexec.values()
    assert after.verdict is Verdict.CLOBBERED
    assert "does not persist across kexec" in after.reason


def test_kexec_relocate_known_keeps_the_copies_not_the_unknown_guid() -> None:
    assert _kexec("memattr-tpm-bsdata", "relocate-known") == {
        "MEMATTR": "relocated",
        "TPMEventLog": "relocated",
    }
    vendor = "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9"
    assert _kexec("vendor-table-bsdata", "relocate-known") == {
        vendor: "clobbered",
        "ESRT": "intact",
    }


def test_kexec_keep_boot_services_keeps_everything() -> None:
    assert _kexec("vendor-table-bsdata", "keep-boot-services") == {
        "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9": "intact",
        "ESRT": "intact",
    }


# -- costs ----------------------------------------------------------------------------------


def test_costs_of_the_designs_on_the_5_entry_esrt() -> None:
    m = _load("esrt-bsdata-5")
    cost = {pid: simulate(m, spec).cost for pid, spec in PRESETS.items()}
    bs = 0x1000 + (8 << 20) + (4 << 20)  # page 0, the 8 MiB of BS code, the 4 MiB of BS data
    # Native: page 0 (memblock_reserve(0, SZ_64K)) and the ESRT's carved page stay.
    assert (cost["native"].reserved_bytes, cost["native"].held_during_boot_bytes) == (0x2000, 0)
    assert cost["xen-4.16"].reserved_bytes == 0
    for pid in ("xen-4.17", "xen-4.17-linux-6.1", "xen-fixed", "relocate-known"):
        assert cost[pid].reserved_bytes == 0x1000, pid  # one ACPI-reclaim pool page
    assert cost["keep-boot-services"].reserved_bytes == bs
    # The proposal keeps the ESRT's page and holds all BS memory until dom0 is done.
    assert (
        cost["reserve-hypercall"].reserved_bytes,
        cost["reserve-hypercall"].held_during_boot_bytes,
    ) == (0x1000, bs)


def test_reclaimed_ranges_are_reported() -> None:
    r = simulate(_load("esrt-bsdata-1"), PRESETS["xen-4.16"])
    # Every E820 RAM range is Xen's heap (F5.6): page 0 (BS code) and the conventional memory
    # up to the reserved page at 0x9f000; from 1 MiB conventional, loader, BS code, BS data
    # and conventional up to the builder's RT-data page at 0x7efff000; the 2 GiB above 4 GiB.
    assert r.reclaimed == [(0x0, 0x9F000), (0x100000, 0x7EFFF000), (0x100000000, 0x180000000)]
    native = simulate(_load("esrt-bsdata-1"), PRESETS["native"])
    assert native.reclaimed == [(0x40800000, 0x41000000), (0x41001000, 0x41400000)]


# -- evidence without bytes ----------------------------------------------------------------


def test_esrt_bytes_unknown_gives_unknown_where_the_checks_need_them() -> None:
    m = _load("esrt-bsdata-1")
    assert isinstance(m.memory, PhysicalMemory)
    blank = PhysicalMemory(Fill.UNKNOWN)
    # Keep only the system table and config array (the RT-data pool page), not the ESRT.
    page = m.memory.read(0x7EFFF000, 0x1000)
    assert page is not None
    blank.write(0x7EFFF000, page)
    m = m.with_(memory=blank)
    r = simulate(m, PRESETS["native"])
    assert r.esrt.verdict is Verdict.UNKNOWN
    assert r.esrt_sysfs is None
    # The allowlist needs no bytes: Xen 4.16 + 6.3 refuses it whatever they are.
    assert simulate(m, PRESETS["xen-4.16"]).esrt.verdict is Verdict.REFUSED


# -- the stub's E820 ----------------------------------------------------------------------


def test_stub_e820_types_and_merging() -> None:
    wb = int(MemoryAttribute.WB)
    sp = int(MemoryAttribute.SP)
    mm = MemoryMap(
        (
            MemoryDescriptor(T.EfiBootServicesCode, 0x0, 1, wb),
            MemoryDescriptor(T.EfiConventionalMemory, 0x1000, 1, wb),
            MemoryDescriptor(T.EfiRuntimeServicesData, 0x2000, 1, wb),
            MemoryDescriptor(T.EfiACPIReclaimMemory, 0x3000, 1, wb),
            MemoryDescriptor(T.EfiACPIMemoryNVS, 0x4000, 1, wb),
            MemoryDescriptor(T.EfiUnusableMemory, 0x5000, 1, wb),
            MemoryDescriptor(T.EfiPersistentMemory, 0x6000, 1, wb),
            MemoryDescriptor(0x70000000, 0x7000, 1, wb),  # unknown: left out
            MemoryDescriptor(T.EfiConventionalMemory, 0x8000, 1, wb | sp),
        )
    )
    got = [(r.start, r.end, int(r.type)) for r in stub_e820(mm)]
    assert got == [
        (0x0, 0x2000, 1),
        (0x2000, 0x3000, 2),
        (0x3000, 0x4000, 3),
        (0x4000, 0x5000, 4),
        (0x5000, 0x6000, 5),
        (0x6000, 0x7000, 7),
        (0x8000, 0x9000, 0xEFFFFFFF),
    ]


def test_parse_path_combination_runs() -> None:
    r = simulate(_load("esrt-bsdata-1"), parse_path("base=xen-4.17,scrub=random"))
    assert r.esrt.verdict is Verdict.CORRUPT
