"""benchmarks/bench_layout.py --quick: one graph in two memory orders answers alike."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_layout


def test_quick_run_times_one_graph_in_both_orders(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_layout.main(["--quick", "--ef", "16,64"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^ +(\d+) +(\d+) +(\d+) +([\d.]+) +([\d.]+) +([\d.]+)$", out, re.M)
    assert [int(r[0]) for r in rows] == [16, 64]
    for _, laid, inserted, ratio, recall_laid, recall_inserted in rows:
        assert recall_laid == recall_inserted and 0.5 < float(recall_laid) <= 1.0  # the same graph
        assert float(ratio) == pytest.approx(int(laid) / int(inserted), abs=0.006)
    assert float(rows[1][4]) >= float(rows[0][4])  # a wider beam finds at least as much
