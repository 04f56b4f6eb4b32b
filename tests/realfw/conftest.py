"""Make bench/realfw/harness.py importable as ``harness`` for these tests."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "realfw"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
