"""`benchmarks/bench_hybrid.py --quick`: the hybrid's top 100 from a file of reduced content."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_hybrid  # noqa: E402


def test_the_row_gives_what_the_reduced_file_finds(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_hybrid.main(["--quick"]) == 0
    out = capsys.readouterr().out
    row = re.search(r"^als +\d+ +[\d.]+ +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +IVF(\d+) inner-product", out, re.M)
    assert row, out
    found, file_ms, every_ms, ratio, lists = row.groups()
    # The proxy's best 1,000 of 5,000 items, scored exactly: the exact top 100 of the blend is among them.
    assert 0.95 <= float(found) <= 1.0
    assert float(file_ms) > 0 and float(every_ms) > 0 and int(lists) == 5
