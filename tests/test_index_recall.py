"""Recall of the auto-picked approximate index against exact search.

The data are 50k clustered unit vectors of dim 128 (cluster centre + a low-rank spread with
decaying variance + isotropic noise, the shape of real embedding sets). Dim 128 rather than
the production 1664: building the HNSW graph costs roughly in proportion to the dimension,
and at 128 the whole test stays within ~30 s on 2 cores while running the same code path
(auto switch, SQ8 graph, exact re-ranking, selectors). Recall at dim 1664 and 100k items is
measured by `benchmarks/bench_index.py`.
"""

from __future__ import annotations

import numpy as np
import pytest

from index import FaissIndex, IdFilter, IndexConfig, NumpyIndex

N, DIM, N_QUERIES, K = 50_000, 128, 200, 10


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around 200 centres with a shared 32-dim spread and small noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, dim)).astype(np.float32) / np.sqrt(dim)
    basis = rng.standard_normal((32, dim)).astype(np.float32) / np.sqrt(dim)
    spread = rng.standard_normal((n, 32)).astype(np.float32) / np.sqrt(np.arange(1, 33, dtype=np.float32))
    noise = rng.standard_normal((n, dim)).astype(np.float32) * (0.3 / np.sqrt(dim))
    x = centres[rng.integers(0, 200, n)] + 0.7 * spread @ basis + noise
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def built() -> tuple[FaissIndex, np.ndarray, list[str]]:
    vectors = clustered(N + N_QUERIES, DIM, seed=0)
    ids = [f"sku-{i}" for i in range(N)]
    index = FaissIndex(DIM, IndexConfig())  # kind "auto"
    index.add(ids, vectors[:N])
    return index, vectors, ids


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true top-k present in the found top-k."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())]))


def test_auto_index_recall_at_10(built: tuple[FaissIndex, np.ndarray, list[str]]) -> None:
    index, vectors, ids = built
    assert index.structure == "hnsw"
    queries = vectors[N:]
    truth = np.array(ids, dtype=object)[np.argsort(-(queries @ vectors[:N].T), axis=1)[:, :K]]
    scores, found = index.search(queries, K)
    assert recall(found, truth) >= 0.95
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_filtered_recall_at_10(built: tuple[FaissIndex, np.ndarray, list[str]]) -> None:
    index, vectors, ids = built
    reference = NumpyIndex(DIM)
    reference.add(ids, vectors[:N])
    queries = vectors[N : N + 50]
    rng = np.random.default_rng(1)
    for allowed in (25_000, 8_000, 1_000):  # selector path, wide beam, exact fallback
        flt = IdFilter(include=frozenset(rng.choice(ids, allowed, replace=False).tolist()))
        _, truth = reference.search(queries, K, flt)
        _, found = index.search(queries, K, flt)
        assert found.shape == (50, K) and set(found.ravel()) <= flt.include
        assert recall(found, truth) >= 0.95, allowed


def test_recall_with_a_tail_and_tombstones(built: tuple[FaissIndex, np.ndarray, list[str]]) -> None:
    index, vectors, ids = built
    extra = clustered(1_000, DIM, seed=5)
    extra_ids = [f"new-{i}" for i in range(1_000)]
    fork = index.fork()  # the module's index stays as built for the other tests
    fork.add(extra_ids, extra)  # below tail_rows: scored exactly beside the graph
    fork.remove(ids[::50])
    assert fork.tail_size == 1_000 and len(fork) == N + 1_000 - N // 50
    reference = NumpyIndex(DIM)
    reference.add(fork.ids, fork.vectors(fork.ids))
    queries = np.concatenate([vectors[N : N + 100], extra[:100]])
    _, truth = reference.search(queries, K)
    scores, found = fork.search(queries, K)
    assert recall(found, truth) >= 0.95
    assert not set(found.ravel()) & set(ids[::50])
    assert found[100:, 0].tolist() == extra_ids[:100]  # an item in the tail is its own nearest
    np.testing.assert_allclose(scores[100:, 0], 1.0, atol=1e-5)


def test_short_hnsw_answers_are_redone_exactly(
    built: tuple[FaissIndex, np.ndarray, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, vectors, ids = built
    real = index._faiss
    assert real is not None

    class Starved:
        """Stands in for the graph and returns no candidate for the first query."""

        def search(self, queries: np.ndarray, k: int, params: object = None) -> tuple[np.ndarray, np.ndarray]:
            scores, labels = real.search(queries, k, params=params)
            labels[0] = -1
            return scores, labels

    monkeypatch.setattr(index, "_faiss", Starved())
    flt = IdFilter(exclude=frozenset(ids[:100]))
    scores, found = index.search(vectors[N : N + 3], K, flt)
    reference = NumpyIndex(DIM)
    reference.add(ids, vectors[:N])
    ref_scores, ref_ids = reference.search(vectors[N], K, flt)
    assert found[0].tolist() == ref_ids[0].tolist()
    np.testing.assert_allclose(scores[0], ref_scores[0], atol=1e-5)
