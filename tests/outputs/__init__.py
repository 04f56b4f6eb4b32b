"""Tests of efihandoff.outputs (a package so its module names do not clash with tests/sources)."""
