"""Kind "auto" picks its structure by size and tunes efSearch / nprobe to `target_recall`.

Clustered unit vectors of dim 32 (20k rows): small enough to build in a couple of seconds,
clustered enough that the tuned beam is far below the exhaustive one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from core.persistence import model_folder
from index import FaissIndex, IdFilter, IndexConfig, NumpyIndex, load_index
from index.tuning import Tuning, grid, held_out_rows, recall_at_k, tune

DIM, N, K = 32, 20_000, 10


def clustered(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 100 fixed centres (seed 0) with per-call noise."""
    centres = np.random.default_rng(0).standard_normal((100, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, 100, n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data() -> tuple[list[str], np.ndarray, np.ndarray]:
    return [f"sku-{i}" for i in range(N)], clustered(N, seed=1), clustered(300, seed=2)


def held_out_recall(index: FaissIndex, ids: list[str], vectors: np.ndarray, queries: np.ndarray) -> float:
    """recall@10 of `index` on unseen queries against exact search."""
    reference = NumpyIndex(DIM)
    reference.add(ids, vectors)
    _, truth = reference.search(queries, K)
    _, found = index.search(queries, K)
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found.tolist(), truth.tolist())]))


@pytest.mark.parametrize("target", [0.9, 0.99])
def test_auto_hnsw_meets_the_target_on_unseen_queries(target: float, data: tuple[list[str], np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    index = FaissIndex(DIM, IndexConfig(hnsw_threshold=1_000, hnsw_m=16, target_recall=target))
    index.add(ids, vectors)
    assert index.structure == "hnsw" and index.tuning is not None
    assert index.tuning.parameter == "efSearch" and index.tuning.queries == 1_000  # rows held out of the build
    assert index.tuning.measured_recall >= target
    assert held_out_recall(index, ids, vectors, queries) >= target - 0.02


def test_higher_target_costs_a_wider_beam(data: tuple[list[str], np.ndarray, np.ndarray]) -> None:
    ids, vectors, _ = data
    values = []
    for target in (0.8, 0.999):
        index = FaissIndex(DIM, IndexConfig(hnsw_threshold=1_000, hnsw_m=16, target_recall=target))
        index.add(ids, vectors)
        assert index.tuning is not None
        values.append(index.tuning.value)
    assert values[0] < values[1]


def test_auto_switches_to_ivf_and_tunes_nprobe(data: tuple[list[str], np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    for codes in ("sq8", "pq"):
        index = FaissIndex(DIM, IndexConfig(hnsw_threshold=100, ivf_threshold=1_000, ivf_codes=codes))
        index.add(ids[:500], vectors[:500])
        assert index.structure == "hnsw"
        index.add(ids[500:], vectors[500:])
        assert index.structure == "ivf" and index.tuning is not None and index.tuning.parameter == "nprobe"
        assert 1 <= index.tuning.value < index._faiss.nlist  # cheaper than scanning every list
        assert held_out_recall(index, ids, vectors, queries) >= 0.93
        allowed = frozenset(ids[::3])  # filtered search through the IVF selector
        _, found = index.search(queries[:20], K, IdFilter(include=allowed))
        assert found.shape == (20, K) and set(found.ravel()) <= allowed
        assert index.describe().startswith(f"IVF{index._faiss.nlist}-{'SQ8' if codes == 'sq8' else 'PQ8'} + exact re-rank")


def test_tuning_is_saved_shown_and_loaded(data: tuple[list[str], np.ndarray, np.ndarray], tmp_path: Path) -> None:
    ids, vectors, queries = data
    index = FaissIndex(DIM, IndexConfig(hnsw_threshold=1_000, hnsw_m=16))
    index.add(ids[:5_000], vectors[:5_000])
    tuned = index.tuning
    assert tuned is not None
    text = index.describe()
    assert text == (
        f"HNSW-SQ8 M=16, efSearch {tuned.value} tuned for recall@10 0.95 "
        f"(measured {tuned.measured_recall:.3f} on 1000 held-out queries); 5,000 items"
    )
    index.save(tmp_path / "idx")
    manifest = json.loads((model_folder(tmp_path / "idx") / "manifest.json").read_text())
    assert manifest["tuning"]["value"] == tuned.value and manifest["description"] == text
    loaded = load_index(tmp_path / "idx")
    assert isinstance(loaded, FaissIndex) and loaded.tuning == tuned and loaded.describe() == text
    before, after = index.search(queries, K), loaded.search(queries, K)
    assert before[1].tolist() == after[1].tolist()


def test_folder_saved_before_tuning_still_loads(data: tuple[list[str], np.ndarray, np.ndarray], tmp_path: Path) -> None:
    ids, vectors, queries = data
    index = FaissIndex(DIM, IndexConfig(hnsw_threshold=1_000, hnsw_m=16))
    index.add(ids[:5_000], vectors[:5_000])
    index.save(tmp_path / "idx")
    path = model_folder(tmp_path / "idx") / "manifest.json"
    manifest = json.loads(path.read_text())
    for key in ("tuning", "description"):  # what a folder written before this change lacks
        del manifest[key]
    for key in ("ivf_threshold", "ivf_codes", "ivf_lists", "nprobe", "pq_bytes", "target_recall", "tune_queries"):
        del manifest["config"][key]
    path.write_text(json.dumps(manifest))
    loaded = load_index(tmp_path / "idx")
    assert isinstance(loaded, FaissIndex) and loaded.structure == "hnsw" and loaded.tuning is None
    assert loaded.describe() == "HNSW-SQ8 M=16, efSearch 128 (set, not tuned); 5,000 items"
    assert held_out_recall(loaded, ids[:5_000], vectors[:5_000], queries) >= 0.95  # today's fixed beam


def test_retuned_on_rebuild_kept_on_extend(data: tuple[list[str], np.ndarray, np.ndarray]) -> None:
    ids, vectors, _ = data
    index = FaissIndex(DIM, IndexConfig(hnsw_threshold=1_000, hnsw_m=16, train_rows=2_000, tail_rows=100))
    index.add(ids[:4_000], vectors[:4_000])
    first = index.tuning
    index.add(ids[4_000:4_200], vectors[4_000:4_200])  # past tail_rows: a clone extended, no retune
    assert index.tail_size == 0 and index.tuning is first
    fork = index.fork()
    fork.remove(ids[:2_000])  # past rebuild_fraction: compacted, rebuilt and retuned
    assert fork.tuning is not first and fork.tuning is not None and fork.tuning.queries == len(fork) // 4
    assert index.tuning is first  # the original keeps its own


def test_explicit_kinds_are_not_tuned(data: tuple[list[str], np.ndarray, np.ndarray]) -> None:
    ids, vectors, _ = data
    for kind in ("flat", "hnsw", "ivf"):
        index = FaissIndex(DIM, IndexConfig(kind=kind, hnsw_m=16))
        index.add(ids[:3_000], vectors[:3_000])
        assert index.structure == kind and index.tuning is None


def test_tune_picks_the_cheapest_setting_that_meets_the_target() -> None:
    base, queries = clustered(400, seed=3), clustered(100, seed=4)
    exact = np.argsort(-(queries @ base.T), axis=1)

    def search(batch: np.ndarray, k: int, value: int) -> np.ndarray:
        rows = np.argsort(-(batch @ base.T), axis=1)[:, :k]
        if value >= 3:
            return rows
        return np.where(np.arange(k) < k - value, rows, -1)  # drops the last `value` of each answer

    tuned = tune(search, base, queries, (1, 2, 3, 4), "efSearch", IndexConfig(target_recall=0.99))
    assert (tuned.value, tuned.measured_recall, tuned.queries) == (3, 1.0, 100)
    perfect = tune(search, base, queries, (1, 2, 3, 4), "efSearch", IndexConfig(target_recall=1.0))
    assert (perfect.value, perfect.measured_recall) == (4, 1.0)  # 100 perfect queries cannot prove recall 1.0
    loose = tune(search, base, queries, (1, 2, 3, 4), "efSearch", IndexConfig(target_recall=0.85))
    assert (loose.value, loose.measured_recall) == (1, 0.9)
    hopeless = tune(lambda q, k, v: np.full((len(q), k), -1), base, queries, (1, 2), "nprobe", IndexConfig())
    assert hopeless.value == 2 and hopeless.measured_recall == 0.0 and not hopeless.met
    assert recall_at_k(exact[:5, :10], exact[:5, :10]) == 1.0
    assert grid("ivf", 10) == (1, 2, 3, 4, 6, 8, 10)
    assert held_out_rows(1_000_000, IndexConfig()) == 1_000 and held_out_rows(300, IndexConfig()) == 75
    assert Tuning.from_dict({"parameter": "nprobe", "value": 3, "target_recall": 0.9, "measured_recall": 0.91,
                             "queries": 50, "k": 10}) == Tuning("nprobe", 3, 0.9, 0.91, 50)


def test_with_search_setting_sweeps_one_structure(data: tuple[list[str], np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    index = FaissIndex(DIM, IndexConfig(kind="hnsw", hnsw_m=16))
    index.add(ids[:5_000], vectors[:5_000])
    narrow, wide = index.with_search_setting(10), index.with_search_setting(256)
    assert narrow.describe() == "HNSW-SQ8 M=16, efSearch 10 (set by hand); 5,000 items"
    assert index.tuning is None  # the original keeps its own setting
    low, high = (held_out_recall(v, ids[:5_000], vectors[:5_000], queries) for v in (narrow, wide))
    assert low < high and high >= 0.99
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InvalidArgumentError, match=f"a search setting must be a positive integer, got {bad!r}"):
            index.with_search_setting(bad)  # type: ignore[arg-type]
    flat = FaissIndex(DIM, IndexConfig(kind="flat"))
    with pytest.raises(InvalidArgumentError, match="an exact Flat index has no search setting to change"):
        flat.with_search_setting(8)
