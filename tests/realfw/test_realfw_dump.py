"""Issue 5 item 5: `efihandoff explain` on a real memory dump (QEMU dump-guest-memory of an OVMF
boot, taken by the harness in dump mode) lists the configuration tables the real kernel named
in its "efi:" line, GUID and address. Uses the cached dumps; skips when there are none (take
them with: bench/realfw/run --cases 'bsdata-valid2-linux-6.12,bsdata-valid2-xen-4.17+linux-6.12'
--dump)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import harness
import pytest

from efihandoff.rules import tables as known_tables
from efihandoff.sources.dump import read_dump
from efihandoff.sources.scenario import build_machine
from efihandoff.uefi.memmap import MemoryDescriptor

DUMPED = ("bsdata-valid2-linux-6.12", "bsdata-valid2-xen-4.17+linux-6.12")
_LABEL_GUID = {kt.linux_label: str(g) for g, kt in known_tables.REGISTRY.items()
               if kt.linux_label and kt.linux_parses}


def _dumped(case_id: str) -> tuple[harness.Case, dict]:
    placement, content, stack = case_id.split("-", 2)
    case = harness.Case.make(placement, content, stack)
    real = harness.cached_outcome(case, dump=True)
    if real is None:
        pytest.skip(f"no cached dump of {case_id} (bench/realfw/run --cases {case_id} --dump)")
    return case, real


def _explain(dump: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(harness.REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "efihandoff", "explain", dump, "--json"],
                          capture_output=True, text=True, env=env, check=True, timeout=300)
    return json.loads(proc.stdout)


def _kernel_tables(real: dict) -> list[tuple[str, int]]:
    """(GUID, address) of every table the kernel named, unusable ones included."""
    return [(_LABEL_GUID[label], addr) for label, addr, _ in harness.config_tokens(
        real["efi_lines"])]


@pytest.mark.parametrize("case_id", DUMPED)
def test_explain_lists_the_kernels_tables(case_id):
    case, real = _dumped(case_id)
    doc = _explain(real["dump"])
    found = [(t["guid"], t["address"]) for t in doc["tables"]]
    kernel = _kernel_tables(real)
    assert len(kernel) >= 5
    assert [t for t in kernel if t not in found] == []
    # and conversely: every table of the dump that Linux names is in the kernel's line, in the
    # array's order
    named = [t for t in found if t[0] in _LABEL_GUID.values()]
    assert named == kernel
    if case.xen:
        # Xen's copy: the ESRT pointer in the firmware's array is the ACPI-reclaim copy
        esrt = next(a for g, a in kernel if g == str(harness.ESRT_GUID))
        assert esrt != real["injected"][0]["address"]


def test_native_dump_with_the_runtime_map():
    """After a native boot SetVirtualAddressMap made the system table's ConfigurationTable and
    FirmwareVendor pointers virtual. Given the kernel's runtime map they translate; the
    tables themselves stay physical (edk2 RuntimeDxe leaves the array's entries alone)."""
    _, real = _dumped("bsdata-valid2-linux-6.12")
    assert real["runtime_map"], "dump mode prints /sys/firmware/efi/runtime-map"
    rt = [MemoryDescriptor(d["type"], d["phys_addr"], d["num_pages"], d["attribute"],
                           d["virt_addr"]) for d in real["runtime_map"]]
    with read_dump(real["dump"]) as plain, read_dump(real["dump"], runtime_map=rt) as ev:
        assert ev.system_table.tables >= 1 << 63  # a kernel-half virtual address
        assert ev.firmware_vendor == "EDK II"
        assert not any("heuristic" in p for p in ev.problems)
        # without the map the array is found by content only, and said to be
        assert any("heuristic" in p for p in plain.problems)
        assert plain.config_table_address == ev.config_table_address
        tables = [(str(t.guid), t.address) for t in ev.config_tables]
    assert [t for t in _kernel_tables(real) if t not in tables] == []


def test_xen_dump_pointers_stay_physical():
    # Xen does not call SetVirtualAddressMap for dom0: no translation needed.
    _, real = _dumped("bsdata-valid2-xen-4.17+linux-6.12")
    with read_dump(real["dump"]) as ev:
        assert ev.system_table.tables < 1 << 32
        assert ev.firmware_vendor == "EDK II"
        assert not ev.problems


def test_native_dump_memory_types_match_the_bench_scenario():
    """The map the EFI stub left in boot_params (read from the dump) puts OVMF's tables in the
    memory types ovmf-q35.toml gives them, at the same addresses."""
    case, real = _dumped("bsdata-valid2-linux-6.12")
    doc = _explain(real["dump"])
    dump_types = {t["guid"]: (t["address"], t["memory_type"]) for t in doc["tables"]}
    m = build_machine(harness.scenario_for(case))
    for t in m.config_tables:
        guid = str(t.guid)
        if guid in (str(harness.ESRT_GUID), _LABEL_GUID["INITRD"]):
            # allocated by the model itself: same type, its own address
            assert dump_types[guid][1] == m.lookup(t.table).type_name
            continue
        assert dump_types[guid] == (t.table, m.lookup(t.table).type_name), guid
