"""Tune an approximate structure's search parameter to a recall target, and describe the result.

The queries are the index's own newest rows (`held_out_rows`: `IndexConfig.tune_queries`, at
most a quarter of the rows), held out of the new structure while it is tuned and added to it
afterwards, so they are unseen points, as a text or user query is. (Stored rows searched with
themselves left out looked ~0.09 better than unseen queries in our measurements: the query's
own graph node leads straight to its neighbours.) Recall@k is measured against the exact top k
of the other rows. The grid is walked from the cheapest setting up, and
the first that meets the target (with 95% confidence over the sampled queries) is kept: the search parameter's cost grows with its value
(efSearch is the graph's beam width, nprobe the number of inverted lists scanned).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from .config import IndexConfig

K = 10
# Steps of at most 1.25x from 16 on: with 1.5x steps a graph that needed a beam of 140 got 192,
# 20% slower per query than it had to be (1M clustered vectors, docs/evaluation.md).
HNSW_GRID = (10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 72, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
             288, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048)
IVF_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 4096)


@dataclass(frozen=True)
class Tuning:
    """The search parameter an index chose, and the recall measured with it.

    Attributes:
        parameter: "efSearch" (HNSW) or "nprobe" (IVF).
        value: the chosen setting.
        target_recall: the recall@k asked for.
        measured_recall: recall@k on the held-out queries with `value`.
        queries: held-out queries measured.
        k: results per query the recall is measured at.

    Example:
        >>> Tuning("efSearch", 96, 0.95, 0.962, 500).met
        True
    """

    parameter: str
    value: int
    target_recall: float
    measured_recall: float
    queries: int
    k: int = K

    @property
    def met(self) -> bool:
        """Whether the measured recall reaches the target."""
        return self.measured_recall >= self.target_recall

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Tuning | None:
        """The tuning a manifest stored, or None (folders saved before tuning existed hold none).

        Example:
            >>> Tuning.from_dict(None) is None
            True
        """
        return None if not data else cls(**dict(data))


def grid(structure: str, n_lists: int = 0) -> tuple[int, ...]:
    """Settings tried for `structure`, cheapest first; IVF stops at its list count (exhaustive).

    Example:
        >>> grid("ivf", n_lists=5)
        (1, 2, 3, 4, 5)
    """
    if structure == "ivf":
        return tuple(v for v in IVF_GRID if v < n_lists) + (n_lists,)
    return HNSW_GRID


def held_out_rows(n: int, config: IndexConfig) -> int:
    """Rows kept out of a new structure to tune it with: `config.tune_queries`, at most a quarter of n.

    Example:
        >>> held_out_rows(1_000_000, IndexConfig()), held_out_rows(300, IndexConfig())
        (1000, 75)
    """
    return min(config.tune_queries, n // 4)


def tune(
    search: Callable[[np.ndarray, int, int], np.ndarray],
    base: np.ndarray,
    queries: np.ndarray,
    settings: tuple[int, ...],
    parameter: str,
    config: IndexConfig,
) -> Tuning:
    """The cheapest of `settings` whose recall@10 on `queries` meets `config.target_recall`.

    Args:
        search: (queries, k, setting) -> int64 labels (n, k), -1 where short, from a structure
            holding the rows of `base` (label = row of `base`) and none of `queries`.
        base: the float32 rows the structure holds.
        queries: held-out float32 rows, not in the structure.
        settings: candidate values, cheapest first.
        parameter: the parameter's name, for `Tuning.parameter`.
        config: gives `target_recall`.

    Returns:
        The first setting whose one-sided 95% lower confidence bound on recall@10 (over the
        queries; at most 1 - 3 / (queries * k)) meets the target, or the last (most exact) one, with the recall it reached,
        when none does.

    Example:
        >>> tune(lambda q, k, v: exact_labels(q, k), base, queries, (16, 32), "efSearch", IndexConfig())  # doctest: +SKIP
    """
    k = min(K, len(base))
    if k <= 0 or not len(queries):
        return Tuning(parameter, settings[0], config.target_recall, 1.0, len(queries), k)
    _, truth = faiss.knn(np.ascontiguousarray(queries), np.ascontiguousarray(base), k, metric=faiss.METRIC_INNER_PRODUCT)
    recall = 0.0
    for value in settings:
        per_query = _per_query_recall(search(queries, k, value), truth)
        recall = float(per_query.mean())
        # The sample's recall is an estimate: keep the first setting whose lower bound meets
        # the target, so that unseen queries meet it too. The bound is never above
        # 1 - 3 / (queries * k) (the "rule of three" when no neighbour was missed), so a
        # target of 1.0 takes the last, most exact setting.
        margin = max(1.645 * float(per_query.std()) / np.sqrt(len(per_query)), 3 / (len(per_query) * k))
        if recall - margin >= config.target_recall:
            break
    return Tuning(parameter, int(value), config.target_recall, round(recall, 4), len(queries), k)


def _per_query_recall(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Fraction of each query's true labels (-1 ignored) that were found."""
    hits = [len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) for f, t in zip(found, truth)]
    return np.array(hits, float) / np.maximum(1, np.count_nonzero(truth >= 0, axis=1))


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of `truth` (int labels, -1 ignored) present in `found`.

    Example:
        >>> recall_at_k(np.array([[1, 2]]), np.array([[2, 3]]))
        0.5
    """
    return float(_per_query_recall(found, truth).mean())


def describe(structure: str, config: IndexConfig, index: faiss.Index | None, n: int, tuning: Tuning | None) -> str:
    """One line saying which structure an index uses, with which settings, and why.

    Example:
        >>> describe("hnsw", IndexConfig(), None, 10_000, Tuning("efSearch", 96, 0.95, 0.962, 500))
        'HNSW-SQ8 M=32, efSearch 96 tuned for recall@10 0.95 (measured 0.962 on 500 held-out queries); 10,000 items'
    """
    if structure == "flat":
        return f"exact Flat (inner product); {n:,} items"
    if structure == "ivf":
        lists = index.nlist if index is not None else "?"
        codes = "SQ8" if config.ivf_codes == "sq8" else f"PQ{getattr(getattr(index, 'pq', None), 'M', '?')}"
        name, parameter, value = f"IVF{lists}-{codes} + exact re-rank", "nprobe", config.nprobe
    else:
        storage = {"sq8": "SQ8", "fp16": "FP16", "flat": "Flat"}[config.storage]
        name, parameter, value = f"HNSW-{storage} M={config.hnsw_m}", "efSearch", config.ef_search
    if tuning is None:
        return f"{name}, {parameter} {value} (set, not tuned); {n:,} items"
    if tuning.queries == 0:
        return f"{name}, {tuning.parameter} {tuning.value} (set by hand); {n:,} items"
    verdict = "" if tuning.met else ", target not reached"
    return (
        f"{name}, {tuning.parameter} {tuning.value} tuned for recall@{tuning.k} {tuning.target_recall:g} "
        f"(measured {tuning.measured_recall:.3f} on {tuning.queries} held-out queries{verdict}); {n:,} items"
    )
