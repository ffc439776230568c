"""A large HNSW is laid out in memory by k-means cluster (`structures.memory_order`): same graph, same answers."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from benchmarks.bench_index import clustered_embeddings
from index import FaissIndex, IdFilter, IndexConfig, load_index, structures

DIM, N = 16, 6_000  # past exact_filter_rows (4,096), so searches go through the graph
VECTORS = clustered_embeddings(N + 1_100, DIM, seed=3)
QUERIES = clustered_embeddings(30, DIM, seed=4)
IDS = [f"i{n}" for n in range(N)]
MORE = [f"m{n}" for n in range(1_100)]  # more than tail_rows: the structure is extended with them


def built(laid_out: bool, monkeypatch: pytest.MonkeyPatch, **settings: object) -> FaissIndex:
    """An HNSW over VECTORS[:N], laid out (small clusters, so the test stays small) or in insertion order."""
    monkeypatch.setattr(structures, "LAYOUT_CLUSTER_ROWS", 32)
    config = IndexConfig(**{"kind": "hnsw", "hnsw_m": 8, "ef_construction": 40, "train_rows": 2_000,  # type: ignore[arg-type]
                            "layout_rows": 1_000 if laid_out else 0, **settings})
    index = FaissIndex(DIM, config)
    index.add(IDS, VECTORS[:N])
    return index


def answers(index: FaissIndex, filter: IdFilter | None = None) -> list[list[str]]:
    return [index.search(q, 10, filter)[1][0].tolist() for q in QUERIES] + index.search(QUERIES, 10, filter)[1].tolist()


def test_memory_order_is_a_permutation_that_puts_near_rows_together() -> None:
    order = structures.memory_order(VECTORS, IndexConfig())
    assert sorted(order.tolist()) == list(range(len(VECTORS)))
    nearest = faiss.knn(VECTORS, VECTORS, 2, metric=faiss.METRIC_INNER_PRODUCT)[1][:, 1]
    position = np.argsort(order)  # where each row lies in the layout

    def close_in_memory(at: np.ndarray) -> float:
        """Fraction of rows whose nearest neighbour lies within one cluster's span of them."""
        return float(np.mean(np.abs(at - at[nearest]) < structures.LAYOUT_CLUSTER_ROWS))

    assert close_in_memory(position) > 0.4 and close_in_memory(np.arange(len(VECTORS))) < 0.1


def test_small_graphs_keep_insertion_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(built(False, monkeypatch)._faiss, faiss.IndexHNSW)  # noqa: SLF001
    few = 2 * structures.LAYOUT_CLUSTER_ROWS - 1  # fewer rows than two clusters
    assert structures.memory_order(VECTORS[:few], IndexConfig()).tolist() == list(range(few))


def test_a_laid_out_graph_answers_as_the_same_graph_in_insertion_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plain, laid = built(False, monkeypatch), built(True, monkeypatch)
    graph = laid._faiss  # noqa: SLF001
    assert isinstance(graph, faiss.IndexIDMap)
    order = faiss.vector_to_array(graph.id_map)
    assert sorted(order.tolist()) == list(range(N)) and order.tolist() != list(range(N))
    assert answers(laid) == answers(plain)
    some = IdFilter(include=frozenset(IDS[::2]))  # a selector over store rows, translated by FAISS
    assert answers(laid, some) == answers(plain, some)
    for index in (plain, laid):
        index.remove(IDS[:700])  # tombstones
        index.add(MORE, VECTORS[N:])  # past tail_rows: a clone extended with the new rows
    assert laid.tail_size == 0 and laid._faiss.ntotal == N + len(MORE)  # noqa: SLF001
    assert answers(laid) == answers(plain)
    assert not {i for row in answers(laid) for i in row} & set(IDS[:700])
    laid.save(tmp_path / "index")
    assert answers(load_index(tmp_path / "index")) == answers(laid)


def test_auto_tunes_a_laid_out_graph_as_the_graph_in_insertion_order(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"kind": "auto", "hnsw_threshold": 1_000, "tune_queries": 200}
    plain, laid = built(False, monkeypatch, **settings), built(True, monkeypatch, **settings)
    assert isinstance(laid._faiss, faiss.IndexIDMap) and laid._faiss.ntotal == N  # noqa: SLF001 (held-out rows added back)
    assert laid.tuning == plain.tuning and laid.tuning is not None and laid.tuning.queries == 200
    assert answers(laid) == answers(plain)
