"""explain on a dump built from a bundled scenario says what explain on the scenario says."""

from __future__ import annotations

from pathlib import Path

from efihandoff.explain import explain
from efihandoff.sources import read_source
from efihandoff.sources.dump import read_dump, write_raw_image
from efihandoff.sources.scenario import load_scenario

EXAMPLE = Path(__file__).parents[2] / "examples" / "laptop.toml"


def _summary(ex):
    tables = [(str(t.guid), t.table) for t in ex.machine.config_tables]
    verdicts = {
        pid: {str(g): tv.verdict.value for g, tv in r.tables.items()}
        for pid, r in ex.results.items()
    }
    return tables, verdicts


def test_dump_with_boot_params_gives_the_scenarios_verdicts(tmp_path: Path) -> None:
    machine = load_scenario(EXAMPLE)
    image = tmp_path / "laptop.raw"
    # efi_info of a boot_params page at 0x9e1c0 and the map at 0x9a000, both in conventional
    # memory below 1 MiB of the example, as an x86 EFI stub leaves them.
    write_raw_image(
        machine.memory,
        image,
        size=0x480000000,
        boot_params=(0x9E1C0, machine.memory_map, 0x9A000, machine.system_table_address),
    )
    with read_dump(image) as ev:
        found = ev.boot_memory_map()
        assert found is not None and found[1] == 0x9E1C0
        assert found[0].descriptors == machine.memory_map.descriptors
    from_dump = explain(read_source(image))
    from_scenario = explain(read_source(EXAMPLE))
    assert _summary(from_dump) == _summary(from_scenario)
    assert from_dump.results["xen-4.17"].esrt.verdict.value == "corrupt"


def test_dump_without_a_map_is_read_but_not_simulated(tmp_path: Path) -> None:
    machine = load_scenario(EXAMPLE)
    image = tmp_path / "bare.raw"
    write_raw_image(machine.memory, image, size=0x480000000)
    ex = explain(read_source(image))
    assert [str(t.guid) for t in ex.machine.config_tables] == [
        str(t.guid) for t in machine.config_tables
    ]
    assert ex.results == {}
    assert any("memory map" in a for a in ex.advice)
