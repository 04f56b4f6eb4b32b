"""Several sources of one machine: a dump's virtual pointers translated through a sysfs copy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from efihandoff.sources import SourceKind, read_source, read_sources
from efihandoff.sources.dump import write_raw_image
from efihandoff.sources.scenario import load_scenario
from efihandoff.uefi.memmap import MemoryType
from efihandoff.uefi.systab import SystemTable

EXAMPLE = Path(__file__).parents[2] / "examples" / "laptop.toml"
VIRT_BASE = 0xFFFFFFFE00000000  # where x86 Linux maps EFI runtime regions (efi_map_region)


def _native_boot_copy(tmp_path: Path) -> tuple[Path, Path, list[tuple[str, int]]]:
    """A dump whose system table points at its config array by a virtual address, as after
    SetVirtualAddressMap, and a /sys/firmware copy whose runtime map says how to translate it."""
    machine = load_scenario(EXAMPLE)
    st = machine.system_table
    rt = machine.memory_map.lookup(st.tables)
    assert rt.type == MemoryType.EfiRuntimeServicesData
    virt = VIRT_BASE + rt.phys_addr
    memory = machine.memory.copy()
    moved = replace(st, tables=virt + (st.tables - rt.phys_addr))
    memory.write(machine.system_table_address, moved.build(fix_crc=True))
    image = tmp_path / "native.raw"
    write_raw_image(memory, image, size=0x480000000)
    sysfs = tmp_path / "firmware"
    entry = sysfs / "efi" / "runtime-map" / "0"
    entry.mkdir(parents=True)
    # drivers/firmware/efi/runtime-map.c: type "0x%x", the others "0x%llx".
    for name, value in (
        ("type", rt.type),
        ("phys_addr", rt.phys_addr),
        ("virt_addr", virt),
        ("num_pages", rt.num_pages),
        ("attribute", rt.attribute),
    ):
        (entry / name).write_text(f"{value:#x}\n")
    want = [(str(t.guid), t.table) for t in machine.config_tables]
    assert SystemTable.crc_ok(moved.build(fix_crc=True))
    return image, sysfs, want


def test_dump_pointers_translate_through_the_sysfs_runtime_map(tmp_path: Path) -> None:
    image, sysfs, want = _native_boot_copy(tmp_path)
    alone = read_source(image)[0]
    assert any("heuristic" in n for n in alone.machine.notes)  # found only by content
    views = read_sources([image, sysfs])
    dump = next(v for v in views if v.source.kind is SourceKind.DUMP)
    assert not any("heuristic" in n for n in dump.machine.notes)
    assert [(str(t.guid), t.table) for t in dump.machine.config_tables] == want
