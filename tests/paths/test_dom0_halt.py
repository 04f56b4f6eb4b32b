"""paths.<id>.booted / halt: a PV dom0 whose kernel image lies outside E820 RAM dies in
Linux arch/x86/xen/setup.c xen_memory_setup ("Xen hypervisor allocated kernel memory conflicts
with E820 map", then BUG()). Expectations worked by hand from that rule: the image
[_text, _end) must lie inside one RAM entry after neighbours merge; 6.12 (and the 6.1.y,
6.6.y, 6.11.y stable trees) first moves ACPI NVS out of the way."""

from __future__ import annotations

import json

import pytest

from efihandoff.e820 import E820Range, E820Type
from efihandoff.errors import UsageError
from efihandoff.outputs.json import path_json
from efihandoff.paths import linux
from efihandoff.paths.presets import PathSpec, parse_path
from efihandoff.paths.simulate import simulate
from efihandoff.paths.verdict import Verdict
from efihandoff.sources.scenario import build_machine

MSG = "Xen hypervisor allocated kernel memory conflicts with E820 map"
RAM, RES, NVS = E820Type.RAM, E820Type.RESERVED, E820Type.NVS
GIB = 1 << 30


def _spec(linux_v: tuple[int, int], **kw: object) -> PathSpec:
    return PathSpec("t", xen=(4, 17, 7), linux=linux_v, mapbs=True, **kw)  # type: ignore[arg-type]


# The bench's q35 under -mapbs, cut down: OVMF's BS data 0x900000-0x14fffff is reserved.
MAPBS_E820 = [
    E820Range(0, 0x9E000, RAM),
    E820Range(0x100000, 0x900000, RAM),
    E820Range(0x900000, 0x1500000, RES),
    E820Range(0x1500000, GIB, RAM),
]


@pytest.mark.parametrize("version", [(6, 1), (6, 12), (6, 3)])
def test_bs_data_over_16_mib_halts_every_kernel(version: tuple[int, int]) -> None:
    # _text = 0x1000000 lies in 0x900000-0x14fffff whatever the image's size
    halt = linux.xen_dom0_memory_setup(_spec(version), MAPBS_E820)
    assert halt is not None and halt.message == MSG
    assert "arch/x86/xen/setup.c xen_memory_setup" in halt.source


def test_default_ranges_are_debians_images() -> None:
    # what Xen printed on the bench: "paddr 0x1000000 -> 0x4a00000" (6.1), "-> 0x4200000" (6.12)
    assert linux.dom0_kernel_range(_spec((6, 1))) == (0x1000000, 0x4A00000)
    assert linux.dom0_kernel_range(_spec((6, 12))) == (0x1000000, 0x4200000)
    assert linux.dom0_kernel_range(_spec((6, 3))) == (0x1000000, 0x1200000)  # 2 MiB known


def test_adjacent_ram_entries_merge() -> None:
    split = [E820Range(0x100000, 0x2000000, RAM), E820Range(0x2000000, GIB, RAM)]
    assert linux.xen_dom0_memory_setup(_spec((6, 1)), split) is None


def test_image_end_is_exclusive() -> None:
    # 6.12's image ends at 0x4200000: RAM up to exactly there holds it; one page less does not
    fits = [E820Range(0x100000, 0x4200000, RAM), E820Range(0x4200000, GIB, RES)]
    assert linux.xen_dom0_memory_setup(_spec((6, 12)), fits) is None
    short = [E820Range(0x100000, 0x41FF000, RAM), E820Range(0x41FF000, GIB, RES)]
    assert linux.xen_dom0_memory_setup(_spec((6, 12)), short) is not None


def test_a_gap_in_the_map_is_not_a_conflict() -> None:
    # undescribed memory (a partial scenario, a log's reduced candidate machine): no halt;
    # only a range the map calls other than RAM stops the dom0
    holed = [E820Range(0x100000, 0x3000000, RAM), E820Range(0x3001000, GIB, RAM)]
    assert linux.xen_dom0_memory_setup(_spec((6, 1)), holed) is None
    only_high = [E820Range(0x3F000000, 0x3F100000, E820Type.ACPI)]  # one table's region
    assert linux.xen_dom0_memory_setup(_spec((6, 12)), only_high) is None
    unusable = [*holed, E820Range(0x3000000, 0x3001000, E820Type.UNUSABLE)]
    assert linux.xen_dom0_memory_setup(_spec((6, 1)), unusable) is not None


def test_acpi_nvs_is_moved_by_612_not_by_older_mainline() -> None:
    # ACPI NVS at 64 MiB, inside 6.1's image (to 0x4a00000): be35d91c8880 swaps it with RAM
    nvs = [E820Range(0x100000, 0x4000000, RAM), E820Range(0x4000000, 0x4010000, NVS),
           E820Range(0x4010000, GIB, RAM)]
    assert linux.xen_dom0_memory_setup(_spec((6, 12)), nvs) is None
    assert linux.xen_dom0_memory_setup(_spec((6, 1)), nvs) is None  # 6.1.y took it
    old = _spec((5, 15), dom0_kernel=(0x1000000, 0x4A00000))
    halt = linux.xen_dom0_memory_setup(old, nvs)
    assert halt is not None and "xen_is_e820_reserved" in halt.source
    # reserved (not NVS) memory is never moved
    res = [nvs[0], E820Range(0x4000000, 0x4010000, RES), nvs[2]]
    assert linux.xen_dom0_memory_setup(_spec((6, 12)), res) is not None


def test_a_map_ending_below_the_image_says_nothing_of_the_rest() -> None:
    small = [E820Range(0x100000, 0x1100000, RAM)]  # RAM to 17 MiB, nothing described above
    assert linux.xen_dom0_memory_setup(_spec((6, 12)), small) is None
    below = [E820Range(0x100000, 0x800000, RAM)]
    assert linux.xen_dom0_memory_setup(_spec((6, 12)), below) is None


def test_dom0_kernel_path_parameter() -> None:
    spec = parse_path("xen=4.17.7,mapbs,linux=6.12,dom0_kernel=0x2000000-0x3000000")
    assert spec.dom0_kernel == (0x2000000, 0x3000000)
    assert linux.dom0_kernel_range(spec) == (0x2000000, 0x3000000)
    # above OVMF's reserved BS data: this image would have fitted
    assert linux.xen_dom0_memory_setup(spec, MAPBS_E820) is None
    for bad in ("0x3000000-0x2000000", "0x1000000", "x-y"):
        with pytest.raises(UsageError):
            parse_path(f"xen=4.17.7,linux=6.12,dom0_kernel={bad}")


def _machine(bs_at_16m: bool) -> object:
    bs = "EfiBootServicesData" if bs_at_16m else "EfiConventionalMemory"
    return build_machine({
        "memory_fill": "zeros",
        "region": [
            {"start": 0x100000, "end": 0xFFFFFF, "type": "EfiConventionalMemory"},
            {"start": 0x1000000, "size": "1M", "type": bs},
            {"start": 0x1100000, "end": 0x7FFFFFF, "type": "EfiConventionalMemory"},
            {"start": 0x8000000, "size": "1M", "type": "EfiRuntimeServicesData"},
        ],
        "table": [{"name": "ESRT", "address": 0x8000018, "entry": [{"fw_class":
                   "6d4e6f39-6b4b-4d8f-9a5d-5c2b1f0e7a01"}]}],
    })


def test_simulate_mapbs_dom0_never_boots() -> None:
    m = _machine(bs_at_16m=True)
    r = simulate(m, parse_path("xen=4.17.7,mapbs,linux=6.12"))  # type: ignore[arg-type]
    assert not r.booted and r.halt is not None and r.halt.message == MSG
    assert r.log[-1] == MSG
    assert r.esrt.verdict is Verdict.UNKNOWN and r.esrt.reason.startswith("the dom0 never starts")
    assert all(v.verdict is Verdict.UNKNOWN for v in r.tables.values())
    assert r.esrt_sysfs is False and r.sysfs is None and r.fwupd_devices is None
    doc = json.loads(json.dumps(path_json(r)))
    assert doc["booted"] is False and doc["halt"]["message"] == MSG
    # without -mapbs the BS data is RAM to Xen: the same dom0 runs and reads the RT-data ESRT
    ok = simulate(m, parse_path("xen=4.17.7,linux=6.12"))  # type: ignore[arg-type]
    assert ok.booted and ok.halt is None and ok.esrt.verdict is Verdict.INTACT
    assert path_json(ok)["booted"] is True and path_json(ok)["halt"] is None
    # nothing at 16 MiB but free memory: -mapbs boots
    free = simulate(_machine(bs_at_16m=False), parse_path("xen=4.17.7,mapbs,linux=6.12"))  # type: ignore[arg-type]
    assert free.booted and free.esrt.verdict is Verdict.INTACT


def test_text_and_html_say_the_path_never_boots() -> None:
    import io

    from rich.console import Console

    from efihandoff.outputs import html, text

    r = simulate(_machine(bs_at_16m=True), parse_path("xen=4.17.7,mapbs,linux=6.12"))  # type: ignore[arg-type]
    paths = {"mapbs": path_json(r)}
    buf = io.StringIO()
    text.render_paths(paths, Console(file=buf, width=200, highlight=False, emoji=False))
    out = " ".join(buf.getvalue().split())
    assert f"mapbs never boots: {MSG} (Linux 6.12 arch/x86/xen/setup.c" in out
    page = html._paths({"paths": paths})
    assert any(f"Never boots: <code>{MSG}</code>" in line for line in page)
