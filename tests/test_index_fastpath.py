"""The one-query fast path of `FaissIndex.search` answers as the general path; a loaded index maps its vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index import FaissIndex, IdFilter, IndexConfig, load_index
from index import faiss_index as faiss_index_module

DIM, N = 16, 6_000  # past the default exact_filter_rows (4,096), so the structure is searched
VECTORS = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
QUERIES = np.random.default_rng(1).standard_normal((20, DIM)).astype(np.float32)
IDS = [f"i{n}" for n in range(N)]
GHOST = IdFilter(exclude=frozenset({"ghost"}))  # excludes nothing, but takes the general path


def built(kind: str, **settings: object) -> FaissIndex:
    index = FaissIndex(DIM, IndexConfig(kind=kind, hnsw_m=8, ef_construction=40, train_rows=2_000, **settings))  # type: ignore[arg-type]
    index.add(IDS, VECTORS)
    return index


@pytest.fixture(scope="module")
def hnsw() -> FaissIndex:
    return built("hnsw")


@pytest.fixture(scope="module")
def ivf() -> FaissIndex:
    return built("ivf", nprobe=4)


@pytest.mark.parametrize("name", ["hnsw", "ivf"])
@pytest.mark.parametrize(("k", "rerank_factor"), [(1, None), (10, None), (10, 2), (37, 3)])
def test_one_query_matches_the_general_path(
    name: str, k: int, rerank_factor: int | None, request: pytest.FixtureRequest
) -> None:
    index = request.getfixturevalue(name)
    for query in QUERIES:
        scores, ids = index.search(query, k, rerank_factor=rerank_factor)
        slow_scores, slow_ids = index.search(query, k, GHOST, rerank_factor=rerank_factor)
        assert ids.shape == (1, k) and ids.dtype == object
        assert ids.tolist() == slow_ids.tolist()
        np.testing.assert_array_equal(scores, slow_scores)
        assert scores.dtype == np.float32
        np.testing.assert_allclose(scores[0], VECTORS[[int(i[1:]) for i in ids[0]]] @ query, rtol=1e-5, atol=1e-5)


def test_tuned_auto_index_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    index = built("auto", hnsw_threshold=1_000, tune_queries=100)
    assert index.structure == "hnsw" and index.tuning is not None
    expected = [index.search(q, 10, GHOST)[1].tolist() for q in QUERIES]

    def refuse(*args: object) -> None:
        raise AssertionError("the one-query search resolved a filter")

    monkeypatch.setattr(faiss_index_module, "resolve", refuse)
    assert [index.search(q, 10)[1].tolist() for q in QUERIES] == expected


def test_tombstones_tail_and_filters_still_take_the_general_path(hnsw: FaissIndex) -> None:
    index = hnsw.fork()
    index.remove(["i0", "i1"])
    index.add(["new"], VECTORS[:1] * 2)  # a tail row, best for query VECTORS[0]
    _, ids = index.search(VECTORS[0], 5)
    assert ids[0, 0] == "new" and not {"i0", "i1"} & set(ids[0].tolist())
    _, ids = index.search(VECTORS[2], 3, IdFilter(include=frozenset({"i2", "i3"})))
    assert ids.tolist() == [sorted(["i2", "i3"], key=lambda i: -float(VECTORS[int(i[1:])] @ VECTORS[2]))]
    _, ids = hnsw.search(VECTORS[0], 5)  # the original is unchanged
    assert ids[0, 0] == "i0"


def test_a_loaded_index_maps_its_vectors_and_answers_the_same(hnsw: FaissIndex, tmp_path: Path) -> None:
    maps = Path("/proc/self/maps")
    hnsw.save(tmp_path / "index")
    loaded = load_index(tmp_path / "index")
    assert isinstance(loaded, FaissIndex)
    if maps.exists():  # Linux: the file is mapped, not read into the process's memory
        mapped = [line for line in maps.read_text().splitlines() if line.endswith("vectors.npy")]
        assert any(str(tmp_path) in line for line in mapped), mapped
    for query in QUERIES:
        assert loaded.search(query, 10)[1].tolist() == hnsw.search(query, 10)[1].tolist()
    np.testing.assert_array_equal(loaded.vectors(["i5", "i9"]), VECTORS[[5, 9]])
    # Writes after loading work (sealing the tail copies the mapped rows into memory) and
    # never write into the saved folder.
    before = (tmp_path / "index").stat().st_mtime_ns, sorted(p.name for p in (tmp_path / "index").rglob("*"))
    extra = np.random.default_rng(2).standard_normal((1_100, DIM)).astype(np.float32)
    loaded.add([f"x{n}" for n in range(1_100)], extra)
    loaded.remove(["i5"])
    assert loaded.tail_size < 1_100 and "x7" in loaded and "i5" not in loaded
    _, ids = loaded.search(extra[7] * 3, 1)
    assert ids[0, 0] == "x7"
    after = (tmp_path / "index").stat().st_mtime_ns, sorted(p.name for p in (tmp_path / "index").rglob("*"))
    assert after == before
