"""bench/make_corpus.py: deterministic from a seed, any size, consistent firmware, logs that say
what the truth says was planted."""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import make_corpus as mc  # noqa: E402


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = [mc.generate_log(5, i, 20_000)[0] for i in range(6)]
    b = [mc.generate_log(5, i, 20_000)[0] for i in range(6)]
    c = [mc.generate_log(6, i, 20_000)[0] for i in range(6)]
    assert a == b
    assert a != c


def test_corpus_on_disk_is_deterministic(tmp_path: Path) -> None:
    one = mc.make_corpus(tmp_path / "a", logs=12, seed=9)
    two = mc.make_corpus(tmp_path / "b", logs=12, seed=9, jobs=2)
    assert one == two
    for p in one:
        assert (tmp_path / "a" / p.path).read_bytes() == (tmp_path / "b" / p.path).read_bytes()


def test_size_target_is_met(tmp_path: Path) -> None:
    planted = mc.make_corpus(tmp_path, logs=20, seed=4, size_mb=4, mix={"e820": 1})
    total = sum((tmp_path / p.path).stat().st_size for p in planted)
    assert 4 << 20 <= total < (4 << 20) * 1.2
    sizes = [p.size for p in planted]
    assert max(sizes) > 2 * min(sizes)  # varied, not all alike


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_firmware_map_is_sorted_and_disjoint(seed: int) -> None:
    rng = random.Random(seed)
    for n in (50, 300, 2000):
        fw = mc.make_firmware(rng, n, mc.BS_DATA)
        assert n - 10 <= len(fw.descs) <= n
        for d, e in zip(fw.descs, fw.descs[1:], strict=False):
            assert d.pages > 0 and d.end <= e.start
        esrt = fw.esrt_address
        assert esrt is not None
        d = fw.type_at(esrt)
        assert d is not None and d.type == mc.BS_DATA
        assert esrt + 16 + 40 * fw.esrt_count <= d.end
        for _label, addr in fw.tables:
            assert fw.type_at(addr) is not None


def test_every_memory_type_is_planted_somewhere() -> None:
    types = Counter()
    for i in range(400):
        _, p = mc.generate_log(1, i, 1000, mix={"efi-debug": 1}, descriptors=(50, 60))
        types.update(b.esrt_type for b in p.boots)
    assert set(mc.TYPES) <= set(types)
    assert types[None] > 0  # and machines without an ESRT


def test_logs_print_what_the_truth_says() -> None:
    mix = {"efi-debug": 3, "e820": 3, "dom0": 2, "dom0-serial": 2, "xl": 1}
    for i in range(60):
        data, p = mc.generate_log(2, i, 5000, mix=mix, descriptors=(50, 80))
        text = (gzip.decompress(data) if p.gzip else data).decode()
        boots = p.boots
        assert text.count("Linux version") == sum(1 for b in boots if b.kind != "xl")
        for b in boots:
            if b.seen_address is not None:
                token = f"ESRT=0x{b.seen_address:x}"
                assert token in text
                assert (f"({token} unusable)" in text) == b.unusable
            if b.reserving:
                assert f"Reserving ESRT space from 0x{b.seen_address:016x}" in text
            if b.relocated:
                assert b.esrt_type == "EfiBootServicesData"
                if b.kind != "xl":  # xl dmesg shows no configuration table
                    assert b.seen_type == "EfiACPIReclaimMemory"
                    assert b.seen_address != b.esrt_address
            if b.kind == "efi-debug":
                assert "efi=debug" in text and re.search(r"efi: mem\d\d: \[", text)
            if b.kind == "e820":
                assert not re.search(r"efi: mem\d\d: \[", text)
            if b.kind in ("dom0", "dom0-serial"):
                assert "Hypervisor detected: Xen PV" in text
            if b.kind == "xl":
                assert all(line.startswith("(XEN)") for line in text.splitlines())


def test_garbage_is_garbage() -> None:
    seen = set()
    for i in range(300):
        data, p = mc.generate_log(3, i, 3000, mix={"garbage": 1})
        seen.add(p.garbage)
        assert p.boots == ()
        if p.garbage == "empty":
            assert data == b""
        if p.garbage in ("text", "no-efi"):
            assert b"efi:" not in data and b"e820" not in data
    assert seen == set(mc.GARBAGE)


def test_cli_writes_the_corpus_and_truth(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    assert mc.main([str(tmp_path / "out"), "--logs", "5", "--seed", "1", "--jobs", "1",
                    "--truth", str(truth)]) == 0
    rows = [json.loads(line) for line in truth.read_text().splitlines()]
    assert len(rows) == 5
    for r in rows:
        assert (tmp_path / "out" / r["path"]).is_file()
