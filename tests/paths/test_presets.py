"""Presets and the path parser: version features from facts 5.1 and 3.2."""

from __future__ import annotations

import pytest

from efihandoff.errors import UsageError
from efihandoff.machine import Fill
from efihandoff.paths.presets import PRESETS, BootMode, Policy, parse_path


def test_preset_ids_are_designs() -> None:
    assert list(PRESETS) == [
        "native",
        "xen-4.16",
        "xen-4.17",
        "xen-4.17-linux-6.1",
        "xen-fixed",
        "keep-boot-services",
        "relocate-known",
        "reserve-hypercall",
    ]


@pytest.mark.parametrize(
    ("text", "knows", "relocates", "fixed"),
    [
        ("xen=4.16.5", False, False, False),
        ("xen=4.17.0,boot=multiboot2", True, False, False),
        ("xen=4.17.0,boot=efi", True, True, False),
        ("xen=4.17.1,boot=multiboot2", True, True, False),
        ("xen=4.18.6", True, True, False),
        ("xen=4.19.5", True, True, True),
        ("xen=4.20.2", True, True, False),
        ("xen=4.20.3", True, True, True),
        ("xen=4.21.1", True, True, True),
        ("xen=4.22", True, True, True),
        ("xen=4.22.0,policy=reserve-hypercall", True, False, True),
    ],
)
def test_xen_features(text: str, knows: bool, relocates: bool, fixed: bool) -> None:
    spec = parse_path(text)
    assert (spec.xen_knows_esrt, spec.xen_relocates_esrt, spec.xen_esrt_size_fixed) == (
        knows,
        relocates,
        fixed,
    )


@pytest.mark.parametrize(
    ("version", "reserved"), [((4, 16, 2), False), ((4, 16, 3), True), ((4, 17, 0), True)]
)
def test_runtime_attribute_rule(version: tuple[int, int, int], reserved: bool) -> None:
    spec = parse_path("xen=" + ".".join(map(str, version)))
    assert spec.xen_runtime_attr_reserved is reserved


def test_parse_path_keys() -> None:
    spec = parse_path("base=xen-4.17,linux=6.1,boot=multiboot2,mapbs,prerelease,scrub=intact")
    assert spec.xen == (4, 17, 1) and spec.linux == (6, 1)
    assert spec.boot is BootMode.MULTIBOOT2 and spec.mapbs and spec.prerelease_rt_data
    assert spec.scrub is Fill.INTACT and spec.policy is Policy.RELEASED
    assert parse_path("linux=6.1").native
    assert not parse_path("linux=6.1").linux_xen_esrt


@pytest.mark.parametrize("text", ["nonsense", "xen=abc", "boot=bios", "colour=red", "base=nope"])
def test_parse_path_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_path(text)


def test_parse_path_refuses_a_repeated_key() -> None:
    import pytest

    from efihandoff.errors import UsageError
    from efihandoff.paths.presets import parse_path

    with pytest.raises(UsageError, match="twice"):
        parse_path("xen=4.17,xen=4.16")
