"""`benchmarks/bench_ann.py --quick` runs end to end: a row per library and setting, the summary, the plot."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_ann  # noqa: E402

LIBRARIES = ["faiss Flat (exact)", "auto (0.95)", "auto, loaded (mapped)", "HNSW-SQ8", "HNSW-SQ8 (bare FAISS)", "HNSW-Flat", "IVF-SQ8 + rerank", "IVF-PQ + rerank",
             "hnswlib (float32)", "usearch (f32)", "usearch (i8)"]


def test_quick_run_prints_rows_summary_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = bench_ann.main(["--quick", "--threads", "1", "--plot", str(tmp_path / "ann.png")])
    out = capsys.readouterr().out
    assert code == 0, out
    measured, table = out.split("Summary (clustered, 3,000 items)")
    rows = re.findall(r"^(.+?) +(\d+) +([\d.]+) +(\d+) +([\d.]+) +(\d+) +(\d+)$", measured, re.M)
    # auto is exact Flat at 3k items (one point, then the same index loaded back with its vectors
    # mapped); HNSW-SQ8 then gets its own build and sweep
    assert [r[0] for r in rows] == LIBRARIES[:3] + [name for name in LIBRARIES[3:] for _ in range(3)]
    by_library = {name: [r for r in rows if r[0] == name] for name in LIBRARIES}
    # the bare FAISS graph at each efSearch finds no more than FaissIndex.search (which at 3k
    # items, under exact_filter_rows, scores every row exactly)
    for ours, bare in zip(by_library["HNSW-SQ8"], by_library["HNSW-SQ8 (bare FAISS)"]):
        assert bare[1] == ours[1] and 0.5 < float(bare[2]) <= float(ours[2]) == 1.0
    assert float(by_library["faiss Flat (exact)"][0][2]) == 1.0  # exact is the reference
    for name in ("HNSW-Flat", "IVF-SQ8 + rerank", "hnswlib (float32)"):
        recalls = [float(r[2]) for r in by_library[name]]
        assert recalls[-1] >= recalls[0] and 0 <= min(recalls) and max(recalls) <= 1  # wider search, more recall
    # in-RAM bytes of index/ structures: structure + the float32 vectors (dim 32 -> 128 B)
    for name in ("HNSW-SQ8", "IVF-SQ8 + rerank", "IVF-PQ + rerank"):
        index_b, ram_b = int(by_library[name][0][5]), int(by_library[name][0][6])
        assert ram_b - index_b == pytest.approx(128, abs=1)
    # loaded back, auto answers the same and counts only its structure as in RAM (vectors mapped)
    (built,), (loaded,) = by_library["auto (0.95)"], by_library["auto, loaded (mapped)"]
    assert loaded[2] == built[2] and loaded[5] == loaded[6] == built[5] and int(built[6]) - int(built[5]) == 128
    hnswlib = re.search(r"^hnswlib \(float32\) +\d+ +[\d.]+ +(\d+) +1\.00 ", table, re.M)
    assert hnswlib, table  # the reference row: ratio 1.00 against itself
    for match in re.finditer(r"^(.+?) +\d+ +([\d.]+) +(\d+) +([\d.]+) +(\d+) +([\d.]+) +([\d.]+)$", table, re.M):
        assert float(match[2]) >= 0.95
        assert float(match[4]) == pytest.approx(int(match[3]) / int(hnswlib[1]), abs=0.006)
    assert (tmp_path / "ann.png").stat().st_size > 10_000


def test_rabitq_graphs_are_measured_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_ann.main(["--quick", "--threads", "1", "--libraries", "hnsw-rabitq,hnswlib"]) == 0
    measured = capsys.readouterr().out.split("Summary")[0]
    rows = re.findall(r"^(HNSW-RaBitQ\d) \+ rerank +(\d+) +([\d.]+) +(\d+) +([\d.]+) +(\d+) +(\d+)$", measured, re.M)
    assert [(r[0], r[1]) for r in rows] == [(f"HNSW-RaBitQ{bits}", ef) for bits in (1, 4) for ef in ("16", "48", "128")]
    for bits in ("1", "4"):
        recalls = [float(r[2]) for r in rows if r[0] == f"HNSW-RaBitQ{bits}"]
        assert 0 < recalls[0] <= recalls[-1] <= 1  # a wider beam finds at least as much
    assert all(int(r[6]) - int(r[5]) == 128 for r in rows)  # in RAM: + the float32 vectors (dim 32)
    assert int(rows[0][5]) < int(rows[3][5])  # 1-bit codes are smaller than 4-bit ones


def test_films_repeat_a_real_set_with_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    base = np.random.default_rng(0).standard_normal((50, 384)).astype(np.float32)
    monkeypatch.setattr(bench_ann, "_film_embeddings", lambda: base)
    vectors, queries, label = bench_ann.films(16, 120, 7)
    assert vectors.shape == (120, 16) and queries.shape == (7, 16) and "50 MiniLM film embeddings" in label
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    nearest = np.argmax(vectors[50:100] @ vectors[:50].T, axis=1)
    assert (nearest == np.arange(50)).mean() > 0.9  # a noisy copy stays nearest its own film
