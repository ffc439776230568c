"""`benchmarks/bench_training.py --quick` runs end to end: both trees, a row per model, the table."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_training  # noqa: E402


def test_synthetic_log_has_the_shape_of_ml_latest_small() -> None:
    log = bench_training.synthetic_log(610, 9_724, 100_836)
    assert (log["n_users"], log["n_items"], len(log["users"])) == (610, 9_724, 100_836)
    pairs = log["users"] * 9_724 + log["items"]
    assert len(np.unique(pairs)) == len(pairs)  # no repeated (user, item)
    assert np.bincount(log["users"]).min() >= 20
    counts = np.sort(np.bincount(log["items"], minlength=9_724))[::-1]
    assert counts[0] > 20 * max(counts[len(counts) // 2], 1)  # long-tailed popularity


def test_quick_run_prints_a_row_per_model_and_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_training.main(["--quick", "--models", "bprmf,neumf,popularity", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "torch threads: 1; epochs per fit: 1; before = c0045c1" in out
    assert "models that train in epochs: bprmf, neumf" in out  # popularity fits in one step
    rows = re.findall(r"^(bprmf|neumf) +synth-1k +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) \|", out, re.M)
    assert [r[0] for r in rows] == ["bprmf", "neumf"] * 2  # as measured, then in the table
    for _, before, after, ratio, recbole, recbole_ratio in rows:
        assert float(after) > 0 and float(before) > 0
        assert float(ratio) == pytest.approx(float(before) / float(after), abs=0.051 + 0.05 * float(ratio))
        assert float(recbole_ratio) == pytest.approx(float(recbole) / float(after), rel=0.05, abs=0.051)


def test_set_gives_every_measured_fit_the_same_settings(capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_training.main(["--quick", "--models", "multvae", "--threads", "1", "--set", "batch_size=2048"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "settings {'batch_size': 2048}" in out
    assert len(re.findall(r"^multvae +synth-1k +[\d.]+ +[\d.]+ ", out, re.M)) == 2


def test_set_without_a_value_is_named() -> None:
    with pytest.raises(SystemExit):
        bench_training.main(["--quick", "--set", "batch_size"])
