"""`benchmarks/bench_streaming.py --quick` runs end to end: a row per path as measured, then the table with ratios."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_streaming  # noqa: E402


def test_synthetic_catalog_has_the_rows_and_columns_asked_for(tmp_path: Path) -> None:
    frame = pd.read_parquet(bench_streaming.synthetic_catalog(tmp_path / "items.parquet", 300, seed=1))
    assert len(frame) == 300 and frame["id"].is_unique
    assert {"id", "title", "description", "category", "price", "stock"} == set(frame.columns)


def test_quick_run_prints_each_path_then_the_table_with_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_streaming.main(["--quick"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^(in-memory|chunked) +([\d,]+) +([\d.]+) +([\d,]+) +([\d.]+)(.*)$", out, re.M)
    assert [r[0] for r in rows] == ["in-memory", "chunked"] * 2, out  # as measured, then in the table
    for name, items, seconds, per_s, peak, ratios in rows[2:]:
        assert items == "2,000" and float(seconds) > 0 and float(peak) > 0
        speed, peak_ratio = map(float, ratios.split())
        base = rows[2]
        expected = (2000 / float(seconds)) / (2000 / float(base[2]))
        assert speed == pytest.approx(expected, rel=0.05, abs=0.011)
        assert peak_ratio == pytest.approx(float(peak) / float(base[4]), rel=0.05, abs=0.011)
