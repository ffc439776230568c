"""One contract for every index backend: the same assertions for NumPy, FAISS Flat, HNSW, IVF and auto."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.errors import FormatVersionError, InvalidArgumentError, UnknownItemError
from core.persistence import model_folder
from index import FaissIndex, IdFilter, IndexConfig, NumpyIndex, VectorIndex, create_index, load_index

DIM = 16
N = 300

# Small HNSW settings so building stays instant; exact_filter_rows is low so that filtered
# searches on 300 items go through the FAISS selector, not only the exact fallback.
_HNSW = dict(hnsw_m=16, ef_construction=40, ef_search=32, exact_filter_rows=8)
BACKENDS: dict[str, Callable[[], VectorIndex]] = {
    "numpy": lambda: NumpyIndex(DIM),
    "faiss-flat": lambda: FaissIndex(DIM, IndexConfig(kind="flat")),
    "faiss-hnsw": lambda: FaissIndex(DIM, IndexConfig(kind="hnsw", **_HNSW)),  # type: ignore[arg-type]
    # auto tunes efSearch on its own rows; target 1.0 so that it must answer exactly here
    "faiss-auto": lambda: FaissIndex(
        DIM, IndexConfig(kind="auto", hnsw_threshold=100, target_recall=1.0, **_HNSW)  # type: ignore[arg-type]
    ),
    "faiss-ivf-sq8": lambda: FaissIndex(DIM, IndexConfig(kind="ivf", exact_filter_rows=8)),
    "faiss-ivf-pq": lambda: FaissIndex(DIM, IndexConfig(kind="ivf", ivf_codes="pq", exact_filter_rows=8)),
    # auto past both thresholds: IVF, tuned the same way (the queries below come from other
    # clusters than the rows it tunes on, so only a scan of every list is sure to be exact)
    "faiss-auto-ivf": lambda: FaissIndex(
        DIM, IndexConfig(hnsw_threshold=50, ivf_threshold=100, ivf_lists=2, target_recall=1.0, exact_filter_rows=8)
    ),
}


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around 8 random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, dim))
    x = centres[rng.integers(0, 8, n)] + 0.5 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[list[str], np.ndarray]:
    return [f"sku-{i}" for i in range(N)], clustered(N, DIM, seed=0)


@pytest.fixture(params=list(BACKENDS))
def index(request: pytest.FixtureRequest, data: tuple[list[str], np.ndarray]) -> VectorIndex:
    ids, vectors = data
    idx = BACKENDS[request.param]()
    idx.add(ids[:150], vectors[:150])  # two batches: auto switches to HNSW in the second
    idx.add(ids[150:], vectors[150:])
    return idx


def reference(data: tuple[list[str], np.ndarray]) -> NumpyIndex:
    ref = NumpyIndex(DIM)
    ref.add(*data)
    return ref


def test_top1_is_own_vector_and_scores_sorted(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = data
    scores, found = index.search(vectors, k=10)
    assert scores.shape == found.shape == (N, 10)
    assert scores.dtype == np.float32 and found.dtype == object
    assert found[:, 0].tolist() == ids
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def near(vectors: np.ndarray, seed: int) -> np.ndarray:
    """Unseen unit queries near every 15th stored vector (the distribution an index is tuned on)."""
    x = vectors[::15] + 0.3 * np.random.default_rng(seed).standard_normal(vectors[::15].shape)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_matches_exact_reference(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    queries = near(data[1], seed=1)
    ref_scores, ref_ids = reference(data).search(queries, k=10)
    scores, found = index.search(queries, k=10)
    assert found.tolist() == ref_ids.tolist()
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_rerank_factor_per_search(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    queries = clustered(20, DIM, seed=1)
    _, ref_ids = reference(data).search(queries, k=10)
    scores, found = index.search(queries, k=10, rerank_factor=1)  # no over-fetch: fastest, least exact
    assert found.shape == (20, 10) and (np.diff(scores, axis=1) <= 1e-6).all()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), ref_ids.tolist())])
    assert recall >= 0.8
    for bad in (0, 2.5, True):
        with pytest.raises(InvalidArgumentError, match=f"rerank_factor must be a positive integer or None, got {bad!r}"):
            index.search(queries, k=3, rerank_factor=bad)  # type: ignore[arg-type]


def test_one_dimensional_query_and_k_larger_than_size(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    scores, found = index.search(data[1][0], k=10 * N)
    assert scores.shape == found.shape == (1, N)
    assert sorted(found[0].tolist()) == sorted(data[0])


def test_filters_include_and_exclude(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = data
    include = frozenset(ids[::5])  # 60 allowed: searched through the selector
    _, found = index.search(vectors[:10], k=10, filter=IdFilter(include=include))
    assert found.shape == (10, 10) and set(found.ravel()) <= include

    wide = frozenset(ids[100:])  # 200 allowed: HNSW searches them through a bitmap selector
    _, found = index.search(vectors[:10], k=10, filter=IdFilter(include=wide))
    assert found.shape == (10, 10) and set(found.ravel()) <= wide

    exclude = frozenset(ids[:10])
    _, found = index.search(vectors[:10], k=10, filter=IdFilter(exclude=exclude))
    assert found.shape == (10, 10) and not set(found.ravel()) & exclude

    both = IdFilter(include=include, exclude=frozenset(ids[:50]))
    _, found = index.search(vectors[:10], k=10, filter=both)
    assert set(found.ravel()) <= include - set(ids[:50])


def test_restrictive_include_still_returns_k(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = data
    far = [ids[i] for i in np.argsort(vectors @ vectors[0])[:12]]  # least similar to the query
    scores, found = index.search(vectors[0], k=10, filter=IdFilter(include=frozenset(far) | {"not-an-id"}))
    assert found.shape == (1, 10) and set(found[0]) <= set(far)
    assert (np.diff(scores[0]) <= 1e-6).all()

    _, found = index.search(vectors[0], k=10, filter=IdFilter(include=frozenset(far[:3])))
    assert sorted(found[0].tolist()) == sorted(far[:3])


def test_remove_then_not_returned(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = data
    index.remove(ids[:5])
    assert len(index) == N - 5 and ids[0] not in index and ids[5] in index
    _, found = index.search(vectors[:5], k=20)
    assert not set(found.ravel()) & set(ids[:5])

    index.remove(ids[5:150])  # past the rebuild fraction: compacts and rebuilds
    _, found = index.search(vectors[:150], k=N)
    assert found.shape == (150, N - 150) and set(found[0]) == set(ids[150:])
    assert index.ids == ids[150:]

    index.add([ids[0]], vectors[:1])  # a removed id can come back
    assert index.search(vectors[0], k=1)[1][0, 0] == ids[0]
    np.testing.assert_array_equal(index.vectors([ids[0], ids[200]]), vectors[[0, 200]])


def test_len_contains_ids_vectors(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = data
    assert len(index) == N and ids[7] in index and "nope" not in index and 3 not in index
    assert index.ids == ids
    assert index.describe().endswith("; 300 items")  # every backend says how it searches
    got = index.vectors([ids[3], ids[1]])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, vectors[[3, 1]])


def test_save_load_identical(index: VectorIndex, data: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    ids, vectors = data
    index.remove(ids[10:20] + ids[160:165])  # tombstones (among the FAISS rows and the tail) survive the round trip
    queries = clustered(15, DIM, seed=2)
    flt = IdFilter(include=frozenset(ids[::3]), exclude=frozenset(ids[:30]))
    before = index.search(queries, k=10), index.search(queries, k=10, filter=flt)
    index.save(tmp_path / "idx")
    manifest = json.loads((model_folder(tmp_path / "idx") / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["config"] and manifest["kind"] == "vector_index"

    loaded = load_index(tmp_path / "idx")
    assert type(loaded) is type(index)  # the manifest's backend picks the class
    after = loaded.search(queries, k=10), loaded.search(queries, k=10, filter=flt)
    for (s0, i0), (s1, i1) in zip(before, after):
        assert i0.tolist() == i1.tolist()
        np.testing.assert_array_equal(s0, s1)
    assert loaded.ids == index.ids and len(loaded) == len(index)
    loaded.add(["new"], vectors[:1])  # still writable after loading
    assert "new" in loaded


def answers(index: VectorIndex, ids: list[str]) -> tuple[object, ...]:
    """Everything the index tells a reader, in comparable form."""
    queries = clustered(8, DIM, seed=3)
    flt = IdFilter(include=frozenset(ids[::2]) | {"new-1"}, exclude=frozenset(ids[:20]))
    (s0, i0), (s1, i1) = index.search(queries, k=10), index.search(queries, k=10, filter=flt)
    known = [i for i in ids[::7] if i in index]
    contained = [i in index for i in [*ids, "new-0", "new-1"]]
    return s0.tolist(), i0.tolist(), s1.tolist(), i1.tolist(), index.ids, len(index), contained, index.vectors(known).tolist()


def test_fork_writes_never_reach_the_original(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = data
    before = answers(index, ids)
    fork = index.fork()
    assert answers(fork, ids) == before
    fork.remove(ids[:100])  # past the rebuild fraction: the fork compacts and rebuilds
    fork.add(["new-0", "new-1"], -vectors[:2])
    fork.remove(ids[100:110])
    assert answers(index, ids) == before
    assert len(fork) == N - 108 and "new-1" in fork and ids[0] not in fork

    forked = answers(fork, ids)
    grandchild = fork.fork()
    grandchild.add(["new-2"], vectors[2:3])
    index.remove(ids[150:])  # writes to the original: the forks see none of them
    index.add(["new-1"], vectors[5:6])
    assert answers(fork, ids) == forked
    assert "new-2" not in fork and "new-2" in grandchild and ids[200] in grandchild
    np.testing.assert_array_equal(grandchild.vectors(["new-1"]), -vectors[1:2])
    np.testing.assert_array_equal(index.vectors(["new-1"]), vectors[5:6])


def test_sibling_forks_do_not_share_their_additions(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = data
    left, right = index.fork(), index.fork()
    left.add(["x"], vectors[:1])
    right.add(["x"], -vectors[:1])  # same id, other vector, added after `left` extended the shared rows
    np.testing.assert_array_equal(left.vectors(["x"]), vectors[:1])
    np.testing.assert_array_equal(right.vectors(["x"]), -vectors[:1])
    assert left.search(vectors[0], k=1)[1][0, 0] in {"x", ids[0]} and "x" not in index
    assert right.search(-vectors[0], k=1)[1][0, 0] == "x"


def test_load_rejects_other_format_version(index: VectorIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "idx")
    path = model_folder(tmp_path / "idx") / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 999
    path.write_text(json.dumps(manifest))
    with pytest.raises(FormatVersionError, match="format version 999; this library reads version 1"):
        load_index(tmp_path / "idx")


def test_load_rejects_unknown_backend(index: VectorIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "idx")
    path = model_folder(tmp_path / "idx") / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "backend": "annoy"}))
    with pytest.raises(FormatVersionError, match="holds an index of backend 'annoy'; known backends: faiss, numpy"):
        load_index(tmp_path / "idx")


def test_error_messages(index: VectorIndex, data: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = data
    with pytest.raises(InvalidArgumentError, match="duplicate id 'x' in the batch"):
        index.add(["x", "x"], vectors[:2])
    with pytest.raises(InvalidArgumentError, match=r"id 'sku-3' is already in the index \(300 items\)"):
        index.add(["sku-3"], vectors[:1])
    with pytest.raises(InvalidArgumentError, match=r"vectors have shape \(1, 5\); expected \(1, 16\)"):
        index.add(["x"], np.ones((1, 5), np.float32))
    with pytest.raises(InvalidArgumentError, match=r"queries have shape \(2, 5\); expected \(n_queries, 16\)"):
        index.search(np.ones((2, 5), np.float32), k=3)
    for bad_k in (0, -1):
        with pytest.raises(InvalidArgumentError, match=f"k must be a positive integer, got {bad_k}"):
            index.search(vectors[0], k=bad_k)
    with pytest.raises(UnknownItemError, match=r"id 'ghost' is not in the index \(300 items\)"):
        index.remove(["sku-1", "ghost"])
    assert "sku-1" in index  # all or nothing
    with pytest.raises(UnknownItemError, match="id 'ghost' is not in the index"):
        index.vectors(["ghost"])
    nan = vectors[:2].copy()
    nan[1, 3] = np.nan
    with pytest.raises(InvalidArgumentError, match="vector of id 'y' contains NaN"):
        index.add(["x", "y"], nan)
    with pytest.raises(InvalidArgumentError, match="query 1 contains NaN"):
        index.search(nan, k=1)
    assert len(index) == N and "x" not in index


@pytest.mark.parametrize("kind", ["numpy", "flat", "hnsw", "ivf", "auto"])
def test_empty_index_returns_nothing(kind: str) -> None:
    idx = create_index(DIM, IndexConfig(kind=kind))
    scores, found = idx.search(np.ones(DIM, np.float32), k=5)
    assert scores.shape == found.shape == (1, 0) and len(idx) == 0


def test_auto_switches_to_hnsw_past_threshold(data: tuple[list[str], np.ndarray]) -> None:
    idx = FaissIndex(DIM, IndexConfig(kind="auto", hnsw_threshold=100))
    idx.add(data[0][:100], data[1][:100])
    assert idx.structure == "flat"
    idx.add(data[0][100:101], data[1][100:101])
    assert idx.structure == "hnsw"


def test_auto_switch_in_a_fork_leaves_the_original_flat(data: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = data
    idx = FaissIndex(DIM, IndexConfig(kind="auto", hnsw_threshold=100, **_HNSW))  # type: ignore[arg-type]
    idx.add(ids[:100], vectors[:100])
    before = answers(idx, ids)
    fork = idx.fork()
    fork.add(ids[100:], vectors[100:])
    assert (idx.structure, fork.structure) == ("flat", "hnsw")
    assert answers(idx, ids) == before


def test_config_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="index kind 'annoy' is unknown; valid kinds: auto, flat"):
        IndexConfig(kind="annoy")
    with pytest.raises(InvalidArgumentError, match="tail_rows must be a non-negative integer, got -1"):
        IndexConfig(tail_rows=-1)
    with pytest.raises(InvalidArgumentError, match="dim must be a positive integer, got 0"):
        create_index(0)
    for bad in (0, 0.0, -0.1, 1.5, float("nan"), True, "0.9"):
        with pytest.raises(InvalidArgumentError, match=r"target_recall must be in \(0, 1\], got"):
            IndexConfig(target_recall=bad)  # type: ignore[arg-type]
    assert IndexConfig(target_recall=1).target_recall == 1
    with pytest.raises(InvalidArgumentError, match="IVF codes 'opq' are unknown; valid codes: sq8, pq"):
        IndexConfig(ivf_codes="opq")
    with pytest.raises(InvalidArgumentError, match="nprobe must be a positive integer, got 0"):
        IndexConfig(nprobe=0)
