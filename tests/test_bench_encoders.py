"""`benchmarks/bench_encoders.py --quick` runs end to end: a row per runtime and stage, ratios, quality, busy table."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_encoders  # noqa: E402


def test_quick_run_prints_rows_ratios_quality_and_the_busy_table(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPVEC_CACHE_DIR", str(tmp_path))
    code = bench_encoders.main(["--quick", "--random-weights", "--runtimes", "onnx", "--busy", "1"])
    captured = capfd.readouterr()  # the busy table comes from a child process
    out = captured.out
    assert code == 0, out
    assert "... torch: loading the image encoder" in captured.err  # progress
    rows = re.findall(r"^(images|texts) +(torch|onnx) +(forward|pipeline) +([\d.]+) +([\d.]+) +([\d.]+)$", out, re.M)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (c, rt, s) for rt in ("torch", "onnx") for c in ("images", "texts") for s in ("forward", "pipeline")
    ]
    rate = {(c, rt, s): float(v) for c, rt, s, v, _, _ in rows}
    for c, rt, s, value, ratio, per_forward in rows:
        assert float(value) > 0
        assert float(ratio) == pytest.approx(float(value) / rate[(c, "torch", s)], rel=0.05, abs=0.011)
        assert float(per_forward) == pytest.approx(float(value) / rate[(c, rt, "forward")], rel=0.05, abs=0.011)
    quality = dict(re.findall(r"^(torch|onnx) +([\d.]+) +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +[+-][\d.]+$", out, re.M))
    assert float(quality["torch"]) == pytest.approx(1.0, abs=1e-5)
    assert float(quality["onnx"]) > 0.9999  # fp32 ONNX Runtime gives the torch image vectors
    busy = re.findall(r"^torch +(old|budget) +([\d.]+) +([\d.]+) +([\d.]+)$", out, re.M)
    assert [b[0] for b in busy] == ["old", "budget"]
