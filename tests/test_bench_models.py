"""`benchmarks/bench_models.py --quick` shows progress and prints each model's row before the final table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_models  # noqa: E402


def test_each_row_is_printed_as_measured_then_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_models.main(["--quick", "--models", "popularity,itemknn", "--no-big", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.out
    assert "... [1/2] popularity" in captured.err and "... [2/2] itemknn" in captured.err  # progress
    lines = captured.out.splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith(("popularity ", "itemknn "))]
    table = lines.index("-" * len(bench_models.HEADER))
    assert len(rows) == 4 and rows[0] < rows[1] < table < rows[2] < rows[3]  # as measured, then in the table
    assert lines[rows[0]] == lines[rows[2]] and lines[rows[1]] == lines[rows[3]]
