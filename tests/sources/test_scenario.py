"""Scenario files: the builder lays out bytes, system table and map as edk2 would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from efihandoff.errors import ParseError, SourceError
from efihandoff.sources.scenario import build_machine, load_scenario
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.memmap import MemoryAttribute, MemoryDescriptor, MemoryType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WB_ALL = 0xF  # UC | WC | WT | WB, the default for RAM
RT = int(MemoryAttribute.RUNTIME)
T = MemoryType
E0 = {
    "fw_class": "ddc0ee61-e7f0-4e7d-acc5-c070a398838e",
    "fw_type": 1,
    "fw_version": 65586,
    "lowest_supported_fw_version": 65582,
    "capsule_flags": 0xFE,
    "last_attempt_version": 18472960,
    "last_attempt_status": 1,
}
# The ESRT above, field by field (F1.7; GUID byte order F1.3).
E0_ESRT = bytes.fromhex(
    "01000000" "01000000" "0100000000000000"  # count 1, max 1, version 1
    "61eec0ddf0e77d4eacc5c070a398838e"  # fw_class
    "01000000" "32000100" "2e000100" "fe000000"  # type 1, 65586, 65582, 0xfe
    "00e01901" "01000000"  # 18472960, 1
)


def _base(**extra: object) -> dict:  # type: ignore[type-arg]
    return {
        "memory_fill": "zeros",
        "region": [
            {"start": 0x100000, "end": 0x3FFFFFF, "type": "EfiConventionalMemory"},
            {"start": 0x4000000, "size": "1M", "type": "Boot Data"},  # a Linux print name
            {"start": 0x4100000, "pages": 16, "type": 6},  # a number
        ],
        **extra,
    }


def test_regions_and_default_attributes() -> None:
    m = build_machine(_base())
    assert m.memory_map is not None
    descs = list(m.memory_map)
    # The builder's RT-data pool page (system table, config array) comes from the top of
    # the conventional region: [0x100000, 0x3fff000) stays free.
    assert descs == [
        MemoryDescriptor(T.EfiConventionalMemory, 0x100000, 0x3EFF, WB_ALL),
        MemoryDescriptor(T.EfiRuntimeServicesData, 0x3FFF000, 1, WB_ALL | RT),
        MemoryDescriptor(T.EfiBootServicesData, 0x4000000, 256, WB_ALL),
        MemoryDescriptor(T.EfiRuntimeServicesData, 0x4100000, 16, WB_ALL | RT),
    ]
    assert m.memory_map.desc_size == 48
    # edk2 Pool.c: the vendor string (14 bytes + 40 = 56, bin 0 of 128) takes the fresh page's
    # head; the page is carved into free blocks 2688 at +0x80, 1024 at +0xb00, 256 at +0xf00;
    # the system table (120 + 40 = 160, bin 1 of 256) takes the 256 at +0xf00.
    assert m.system_table is not None and m.system_table_address == 0x3FFFF18
    assert m.firmware_vendor == "EDK II"


def test_esrt_bytes_at_a_given_address() -> None:
    m = build_machine(_base(table=[{"name": "ESRT", "address": 0x4000018, "entry": [E0]}]))
    assert m.read(0x4000018, len(E0_ESRT)) == E0_ESRT
    assert m.config_tables is not None
    assert [(t.guid, t.table) for t in m.config_tables] == [(ESRT_GUID, 0x4000018)]
    # The config array lives in runtime pool (F1.8): 16 entries, 384 + 40 = 424 bytes, bin 3
    # (640) is empty, so the 1024 block at +0xb00 of the system table's page serves it.
    assert m.config_table_address == 0x3FFFB18


def test_esrt_allocated_from_pool_of_its_type() -> None:
    m = build_machine(
        _base(table=[{"name": "ESRT", "memory_type": "EfiBootServicesData", "entry": [E0]}])
    )
    assert m.config_tables is not None
    (t,) = m.config_tables
    # A fresh BS-data pool page below the RT-data one; data after the 24-byte pool head.
    assert t.table == 0x3FFE018
    assert m.lookup(t.table).type == T.EfiBootServicesData  # type: ignore[union-attr]
    assert m.read(t.table, len(E0_ESRT)) == E0_ESRT


def test_header_overrides_and_entry_repeat() -> None:
    m = build_machine(
        _base(
            table=[
                {
                    "name": "ESRT",
                    "address": 0x4000018,
                    "fw_resource_count": 3,
                    "fw_resource_count_max": 2,
                    "fw_resource_version": 2,
                    "entry": [E0 | {"repeat": 3}],
                }
            ]
        )
    )
    raw = m.read(0x4000018, 16 + 120)
    assert raw is not None
    assert raw[:16] == bytes.fromhex("03000000" "02000000" "0200000000000000")
    assert raw[16:56] == raw[56:96] == raw[96:136] == E0_ESRT[16:]


def test_other_contents() -> None:
    m = build_machine(
        _base(
            table=[
                {"guid": "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9", "address": 0x4000000,
                 "size": 5, "fill": 0xA5},
                {"guid": "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7aa", "address": 0x4001000,
                 "hex": "de ad be ef"},
                {"name": "ACPI 2.0", "address": 0x4100000, "xsdt_address": 0x4100100},
            ]
        )
    )
    assert m.read(0x4000000, 6) == b"\xa5" * 5 + b"\0"
    assert m.read(0x4001000, 4) == bytes.fromhex("deadbeef")
    rsdp = m.read(0x4100000, 36)
    assert rsdp is not None and rsdp[:8] == b"RSD PTR "
    assert sum(rsdp[:20]) % 256 == 0 and sum(rsdp) % 256 == 0  # both checksums


def test_install_false_lays_out_bytes_only() -> None:
    m = build_machine(
        _base(table=[{"name": "ESRT", "address": 0x4000018, "entry": [E0], "install": False}])
    )
    assert m.config_tables == ()
    assert m.read(0x4000018, 16) == E0_ESRT[:16]


@pytest.mark.parametrize(
    "data",
    [
        {},  # no region
        {"region": [{"start": 0x1001, "pages": 1, "type": "EfiConventionalMemory"}]},  # unaligned
        {"region": [{"start": 0x1000, "pages": 1, "type": "NoSuchType"}]},
        _base(table=[{"name": "NoSuchTable"}]),
        _base(table=[{"size": 4}]),  # neither name nor guid
        _base(table=[{"name": "ESRT", "address": 0x90000000}]),  # in no region
        _base(table=[{"name": "ESRT", "address": 0x4000000, "memory_type": "EfiLoaderData"}]),
        _base(table=[{"name": "ESRT", "entry": [{"fw_class": "not-a-guid"}]}]),
        _base(table=[{"name": "ESRT", "entry": [E0 | {"repeat": -1}]}]),
        _base(table=[{"name": "ESRT", "fw_resource_count": True}]),
    ],
)
def test_bad_scenarios_raise_parse_error(data: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ParseError):
        build_machine(data)


def test_load_scenario_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [\n")
    with pytest.raises(ParseError):
        load_scenario(bad)


def test_every_bundled_example_loads() -> None:
    for p in EXAMPLES.glob("*.toml"):
        m = load_scenario(p)
        assert m.memory_map is not None and m.system_table is not None, p
        assert f"scenario {p.name}" in m.notes


# -- hostile scenarios (issue 15): every one ends in ParseError naming the key, nothing built --

HOSTILE_TOML = {
    "deep-array": "name = " + "[" * 1000 + "]" * 1000,
    "deep-inline-table": "seed = " + "{a = " * 1000 + "1" + "}" * 1000,
    "plain-table-not-array": '[table]\nname = "ESRT"\n',
    "entry-not-tables": '[[table]]\nname = "ESRT"\nentry = [1]\n',
    "size-inf": '[[table]]\nguid = "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9"\nsize = "infT"\n',
    "size-2G": '[[table]]\nguid = "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9"\nsize = "2G"\n',
    "size-1T": '[[table]]\nguid = "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9"\nsize = "1T"\n',
    "seed-inf": "seed = inf\n",
    "seed-negative": "seed = -1\n",
    "desc-size-2-64": "desc_size = 18446744073709551616\n",
    "smbios-major-256": '[[table]]\nname = "SMBIOS 3.0"\nmajor = 256\n',
    "acpi-revision-256": '[[table]]\nname = "ACPI 2.0"\nrevision = 256\n',
    "tpm-log-size": '[[table]]\nname = "TPMEventLog"\nlog_size = 4294967295\n',
    "uefi-revision": 'uefi_revision = "99999999.1"\n',
    "oem-id-unicode": '[[table]]\nname = "ACPI 2.0"\noem_id = "ÉÉ"\n',
}
REGIONS_TOML = (
    '[[region]]\nstart = 0x100000\nend = 0x3ffffff\ntype = "EfiConventionalMemory"\n'
    '[[region]]\nstart = 0x4000000\nsize = "1M"\ntype = "Boot Data"\n'
)


@pytest.mark.parametrize("name", sorted(HOSTILE_TOML))
def test_hostile_scenario_files_raise_parse_error(tmp_path: Path, name: str) -> None:
    p = tmp_path / f"{name}.toml"
    p.write_text(HOSTILE_TOML[name] + "\n" + REGIONS_TOML)
    with pytest.raises(ParseError) as info:
        load_scenario(p)
    assert "bad scenario" in str(info.value) or "not a scenario" in str(info.value)


def test_attribute_above_64_bits_on_the_esrt_region_is_refused() -> None:
    data = _base(table=[{"name": "ESRT", "entry": [E0]}])
    data["region"][1]["attribute"] = "UC|WB|0x1ffffffffffffffff"
    with pytest.raises(ParseError, match=r"region\[1\]\.attribute"):
        build_machine(data)
    data["region"][1]["attribute"] = 1 << 64
    with pytest.raises(ParseError, match="out of range"):
        build_machine(data)


def test_schema_error_names_key_path_and_line(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text(
        REGIONS_TOML
        + '[[table]]\nname = "ESRT"\n[[table.entry]]\nfw_class = "'
        + E0["fw_class"]
        + '"\n[[table.entry]]\nfw_class = "'
        + E0["fw_class"]
        + '"\nfw_version = 4294967296\n'
    )
    with pytest.raises(ParseError) as info:
        load_scenario(p)
    assert "table[0].entry[1].fw_version" in str(info.value)
    assert info.value.line == 15


def test_nesting_depth_is_reported_with_its_line(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('description = "[[[[[[[[[[[[[[[[[[[[ in a string"\n'
                 + "# [[[[[[[[[[[[[[[[[[[[[[[ in a comment\nname = " + "[" * 17 + "]" * 17 + "\n"
                 + REGIONS_TOML)
    with pytest.raises(ParseError, match="nested 17 deep") as info:
        load_scenario(p)
    assert info.value.line == 3  # the string, the comment, then this
    p.write_text('description = "[[[[[[[[[[[[[[[[[[[[[[[[["\n' + REGIONS_TOML)
    load_scenario(p)  # brackets in strings are not nesting


def test_unknown_key_is_an_error_with_the_nearest_known_key() -> None:
    with pytest.raises(ParseError, match=r"^bad scenario: bogus: unknown key \("):
        build_machine(_base(bogus=1))
    with pytest.raises(ParseError) as info:
        build_machine(_base(table=[{"name": "ESRT", "entry": [E0 | {"fw_versoin": 3}]}]))
    assert "table[0].entry[0].fw_versoin: unknown key (did you mean fw_version?)" in str(
        info.value
    )
    with pytest.raises(ParseError, match=r"memory_fil: unknown key \(did you mean memory_fill\?"):
        build_machine(_base(memory_fil="zeros"))
    # A field of another kind of table names the kinds it belongs to.
    with pytest.raises(ParseError, match=r"table\[0\]\.oem_id: .*not a field of ESRT tables"):
        build_machine(_base(table=[{"name": "ESRT", "oem_id": "X", "entry": [E0]}]))


def test_unknown_key_names_the_file_and_line_and_exits_3(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from efihandoff.cli import main

    p = tmp_path / "typo.toml"
    p.write_text('firmware_bild = "debug"\n' + REGIONS_TOML + "seed = 1\n")
    with pytest.raises(ParseError) as info:
        load_scenario(p)
    assert info.value.line == 1 and info.value.what == str(p)
    result = CliRunner().invoke(main, ["boot", str(p)])
    assert result.exit_code == 3
    assert "firmware_bild: unknown key (did you mean firmware_build?)" in result.output
    assert str(p) in result.output
    # A top-level key written after a [[region]] header belongs to that region: it says so.
    p.write_text(REGIONS_TOML + "seed = 1\n")
    with pytest.raises(ParseError) as info:
        load_scenario(p)
    assert "region[1].seed: unknown key: a top-level key, written after a [[...]] header" in str(
        info.value
    )
    assert info.value.line == 9


def test_numbers_as_strings_and_sizes_with_fractions_still_parse() -> None:
    m = build_machine(
        _base(seed="0x10", table=[{"guid": "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9", "size": "1.5K"}])
    )
    addr = m.config_tables[-1].table
    assert m.read(addr, 1536) == b"\x5a" * 1536


def test_scenario_file_over_8_mib_is_refused_unread(tmp_path: Path) -> None:
    # Issue 15 fuzz: a 36 MB mutated scenario took longer than the case's time limit.
    p = tmp_path / "big.toml"
    p.write_text(REGIONS_TOML + "# " + "x" * (8 << 20) + "\n")
    with pytest.raises(ParseError, match="more than 8 MiB") as info:
        load_scenario(p)
    assert info.value.offset == 8 << 20


def test_readme_names_every_schema_key() -> None:
    from efihandoff.sources.scenario import SCHEMA, TABLE_KINDS

    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme[readme.index("## Scenario files") : readme.index("## Layout")]
    keys = set(SCHEMA) | {k for kind in TABLE_KINDS.values() for k in kind}
    keys |= {k for kind in TABLE_KINDS.values() for key in kind.values() for k in key.keys}
    written = ("`{}`", "{} =", "[[{}]]", ".{}]]")
    missing = sorted(k for k in keys if not any(w.format(k) in section for w in written))
    assert missing == []


def test_unknown_key_with_odd_characters_is_quoted() -> None:
    data = _base(**{"evil\nkey\x1b": 1})
    with pytest.raises(ParseError) as info:
        build_machine(data)
    assert "'evil\\nkey\\x1b': unknown key" in str(info.value)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


# -- firmware_build and [[pool]] (issue 13) -------------------------------------------------

_RAW3 = {"guid": "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9", "hex": "010203"}


def test_firmware_build_defaults_to_debug_for_edk2_and_release_otherwise() -> None:
    # edk2 Pool.c CoreAllocatePoolI: DEBUG_CLEAR_MEMORY over the caller's bytes rounded up to
    # 8; the 3 table bytes overwrite the first 3, 0xAF stays in the other 5 on a DEBUG build.
    def pad(**extra: object) -> bytes | None:
        m = build_machine(_base(table=[_RAW3], **extra))
        addr = m.config_tables[-1].table
        return m.read(addr, 8)

    assert pad() == b"\x01\x02\x03" + b"\xaf" * 5  # "EDK II" by default: edk2's TARGET = DEBUG
    assert pad(firmware_vendor="American Megatrends") == b"\x01\x02\x03" + bytes(5)
    assert pad(firmware_build="release") == b"\x01\x02\x03" + bytes(5)
    assert pad(firmware_vendor="INSYDE Corp.", firmware_build="debug") == (
        b"\x01\x02\x03" + b"\xaf" * 5
    )
    with pytest.raises(ParseError, match="firmware_build: expected one of debug, release"):
        build_machine(_base(firmware_build="checked"))


def test_pool_declares_where_the_firmware_pool_serves_a_table() -> None:
    data = _base(
        pool=[
            # the RT-data region 0x4100000 (16 pages): its pages 4-7 are free room of its bin
            {"memory_type": "EfiRuntimeServicesData", "start": 0x4104000, "pages": 4},
            # and 256 bytes at the end of its page 0x4100000 one free block, used first
            {"memory_type": 6, "start": 0x4100F00, "size": 256},
        ],
        table=[
            _RAW3 | {"memory_type": "EfiRuntimeServicesData"},  # 3 -> 8 + 40: the 256 block
            {"guid": "6dadf1d1-d4cc-4910-bb6e-82b1fd80ff3d", "memory_type": 6, "size": 3000},
        ],
    )
    m = build_machine(data)
    addrs = [t.table for t in m.config_tables]
    # The 256 block serves the first (bin 128 empty, 256 non-empty: its other 128 carved);
    # the second (3000 + 40: above the 2688 bin) gets a page of its own, from the top of the
    # bin's free room (0x4104000-0x4107fff) before any free memory: 0x4107000.
    assert addrs == [0x4100F18, 0x4107018]
    # The map did not change: the room was RT data already.
    assert [d for d in m.memory_map if d.phys_addr >= 0x4100000] == [
        MemoryDescriptor(T.EfiRuntimeServicesData, 0x4100000, 16, WB_ALL | RT)
    ]


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ({"memory_type": "EfiRuntimeServicesData", "start": 0x4100000}, "needs end, size or pages"),
        ({"start": 0x4100000, "pages": 1}, "needs memory_type"),
        ({"memory_type": "EfiBootServicesData", "start": 0x4100000, "pages": 1},
         "not inside one region of that type"),
        ({"memory_type": 6, "start": 0x4100010, "size": 128}, "128-byte steps"),
        ({"memory_type": 6, "start": 0x4100000, "pages": 1, "typo": 1}, "pool[0].typo"),
    ],
)
def test_bad_pool_declarations(pool: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ParseError, match=re.escape(message)):
        build_machine(_base(pool=[pool]))


def test_pool_room_declared_twice_is_refused() -> None:
    rt = {"memory_type": 6, "start": 0x4100F00, "size": 256}
    with pytest.raises(ParseError, match="overlaps room declared before"):
        build_machine(_base(pool=[rt, rt | {"start": 0x4100F80, "size": 128}]))
    # many one-block declarations (16 pages of RT data): each checked against its neighbours
    pools = [{"memory_type": 6, "start": 0x4100000 + i * 128, "size": 128} for i in range(512)]
    m = build_machine(_base(pool=pools))
    assert m.memory_map is not None
