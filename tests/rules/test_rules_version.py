"""Tests for efihandoff.rules.version."""

from __future__ import annotations

import pytest

from efihandoff.rules.version import exact_version, format_version, parse_version, version_text


def test_parse_version_of_printed_versions() -> None:
    assert parse_version("6.1.112-1.qubes.fc37.x86_64", 2) == (6, 1)
    assert parse_version("4.17.7", 3) == (4, 17, 7)
    assert parse_version("6.3", 3) == (6, 3, 0)
    assert parse_version("rc1", 2) is None
    assert parse_version(None, 2) is None
    assert version_text("6.1.112-1.qubes") == "6.1.112"
    assert version_text("x") is None and version_text(None) is None


def test_exact_version() -> None:
    assert exact_version("4.17", 3) == (4, 17, 0)
    assert exact_version("6.3", 2) == (6, 3)
    for bad in ("", "4.x", "4..1", "-1.2"):
        with pytest.raises(ValueError):
            exact_version(bad, 3)
    assert format_version((4, 17, 1)) == "4.17.1"
