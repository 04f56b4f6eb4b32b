"""sources.scenario_schema on its own: validate() names the key at fault, the nesting guard and
the line finder work on the text (tests/sources/test_scenario.py covers whole scenario files)."""

from __future__ import annotations

import pytest

from efihandoff.sources.scenario_schema import Invalid, line_of, toml_nesting, validate

REGION = {"start": 0x1000, "size": "4K", "type": "EfiConventionalMemory"}


def test_validate_parses_numbers_and_keeps_known_keys():
    out = validate({"region": [REGION], "seed": 3})
    assert out["region"][0]["size"] == 4096 and out["seed"] == 3


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({}, ("region",), "at least one [[region]]"),
        ({"region": [{"start": 0, "type": "EfiConventionalMemory"}]}, ("region", 0), "needs end"),
        ({"region": [REGION], "sead": 1}, ("sead",), "seed"),  # the nearest known key
        ({"region": [REGION], "seed": -1}, ("seed",), ""),
        (
            {"region": [REGION], "table": [{"memory_type": "EfiBootServicesData"}]},
            ("table", 0),
            "needs a name or a guid",
        ),
    ],
)
def test_validate_names_the_key_at_fault(data, path, words):
    with pytest.raises(Invalid) as exc:
        validate(data)
    assert exc.value.path == path
    assert words in exc.value.message


def test_invalid_where_reads_like_toml():
    assert Invalid(("table", 2, "entry", 0, "fw_version"), "x").where() == (
        "table[2].entry[0].fw_version"
    )
    assert Invalid((), "x").where() == "top level"


def test_toml_nesting_counts_brackets_outside_strings_and_comments():
    text = 'a = [[1], [2]]\nb = "[[[[" # [[[[\nc = {x = [[[0]]]}\n'
    assert toml_nesting(text) == (4, 3)


def test_line_of_finds_a_key_under_array_headers():
    text = (
        '[[region]]\nstart = 0\n\n[[table]]\nname = "ESRT"\n'
        "[[table.entry]]\nfw_version = 1\n[[table.entry]]\nfw_version = 2\n"
    )
    assert line_of(text, ("table", 0, "entry", 1, "fw_version")) == 9
    assert line_of(text, ("region", 0, "start")) == 2


HUGE = int("4" * 5000, 16)  # 4 * 5,000 - 1 = 19,999 bits (0x4 is 3 bits); over 6,000 decimal digits


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"region": [{**REGION, "start": HUGE}]}, ("region", 0, "start")),
        ({"region": [{**REGION, "type": HUGE}]}, ("region", 0, "type")),
        ({"region": [{**REGION, "attribute": HUGE}]}, ("region", 0, "attribute")),
        ({"region": [REGION], "seed": -HUGE}, ("seed",)),
    ],
)
def test_a_number_too_long_for_decimal_is_named_not_raised(data, path):
    # Regression (fuzz, seed 4): a 5,000-digit hex start made the range message raise ValueError.
    with pytest.raises(Invalid) as exc:
        validate(data)
    assert exc.value.path == path
    assert "19999 bits" in exc.value.message and len(exc.value.message) < 200
