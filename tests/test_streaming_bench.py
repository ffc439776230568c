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
    base = rows[2]
    for name, items, seconds, per_s, peak, ratios in rows[2:]:
        assert items == "2,000" and float(seconds) > 0 and float(peak) > 0
        speed, peak_ratio = map(float, ratios.split())
        # The ratios are computed before rounding: check them against the printed columns' rounding intervals.
        assert ratio_within_rounding(speed, per_s, base[3], half_step=0.5)
        assert ratio_within_rounding(peak_ratio, peak, base[4], half_step=0.05)


def ratio_within_rounding(printed: float, top: str, bottom: str, half_step: float) -> bool:
    """Whether `printed` (2 decimals) can be top / bottom for the true values behind two columns printed to `half_step`."""
    top_value, bottom_value = float(top.replace(",", "")), float(bottom.replace(",", ""))
    low = (top_value - half_step) / (bottom_value + half_step)
    high = (top_value + half_step) / max(bottom_value - half_step, 1e-9)
    return low - 0.005 <= printed <= high + 0.005


def test_ratio_within_rounding_rejects_a_ratio_the_columns_cannot_give() -> None:
    assert ratio_within_rounding(0.82, "15,385", "18,762", half_step=0.5)
    assert not ratio_within_rounding(0.77, "15,385", "18,762", half_step=0.5)
    assert ratio_within_rounding(1.50, "3.0", "2.0", half_step=0.05)
    assert not ratio_within_rounding(1.70, "3.0", "2.0", half_step=0.05)
