"""Recall@k against queries per second for the index settings, on a data set's own item vectors.

Each query is a stored item's own vector (what `Engine.similar` asks, without excluding the
item itself, so no filter changes the search path); k results; one query at a time, as a
service answers them. The reference is exact search (FAISS Flat): its answer defines
recall@k = 1. The HNSW settings swept are the two knobs `IndexConfig` has for search:
`ef_search` (the graph's beam width) and `rerank_factor` (candidates fetched per result and
re-scored exactly; the beam is never narrower than `k * rerank_factor`, so settings with the
same effective beam are one point). IVF's nprobe, and the tuned settings kind "auto" picks,
are swept by `benchmarks/bench_ann.py`. One HNSW graph is built; every setting searches a fork of it with its own config.
The graph is searched even on a small catalog: the index's shortcut of scoring a small
allowed set exactly (`IndexConfig.exact_filter_rows`) is switched off here, so what is
measured is the graph (a beam at least as wide as the catalog is still exact).

Example:
    >>> points = index_tradeoff(vectors, k=10, n_queries=300)           # doctest: +SKIP
    >>> [(p.setting, round(p.recall, 3)) for p in points][:2]           # doctest: +SKIP
    [('exact (flat)', 1.0), ('hnsw ef=16 x1', 0.912)]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from core.checks import check_k
from core.errors import InvalidArgumentError
from index import IndexConfig, VectorIndex, create_index

EF_SEARCH = (16, 32, 64, 128, 256, 512)
RERANK_FACTORS = (1, IndexConfig().rerank_factor)


@dataclass(frozen=True)
class TradeoffPoint:
    """One index setting measured.

    Attributes:
        setting: a label, e.g. 'exact (flat)' or 'hnsw ef=128 x10'.
        structure: 'flat' or 'hnsw'.
        ef_search: the effective HNSW beam (max(ef_search, k * rerank_factor)); None for flat.
        rerank_factor: candidates fetched per result and re-scored exactly; None for flat.
        recall: mean overlap of the top k with the exact top k.
        qps: queries per second, one query at a time: 1 / the median latency (the median, because on a
            shared machine a few queries stalled by other processes would dominate the mean).
        p50_ms: median latency of one query in milliseconds.
        p99_ms: 99th percentile latency in milliseconds.
        default: whether these are the engine's default HNSW settings (`IndexConfig()`).
    """

    setting: str
    structure: str
    ef_search: int | None
    rerank_factor: int | None
    recall: float
    qps: float
    p50_ms: float
    p99_ms: float
    default: bool = False


def index_tradeoff(
    vectors: np.ndarray,
    k: int = 10,
    n_queries: int = 500,
    ef_search: Sequence[int] = EF_SEARCH,
    rerank_factors: Sequence[int] = RERANK_FACTORS,
    seed: int = 0,
    config: IndexConfig | None = None,
) -> list[TradeoffPoint]:
    """Measure exact search and every HNSW (ef_search, rerank_factor) setting on `vectors`.

    Args:
        vectors: (n_items, dim) item vectors, L2-normalised (as the engine stores them).
        k: results per query.
        n_queries: items used as queries (a seeded sample; all items when fewer).
        ef_search: HNSW beam widths to try.
        rerank_factors: over-fetch factors to try (1: the graph's own top k, no re-ranking slack).
        seed: seeds the query sample.
        config: the other index settings (graph degree, storage, ...); default `IndexConfig()`.

    Returns:
        The exact point first, then one point per distinct (effective beam, rerank factor).

    Example:
        >>> pts = index_tradeoff(np.eye(20, dtype=np.float32), k=3, n_queries=5)
        >>> pts[0].setting, pts[0].recall
        ('exact (flat)', 1.0)
    """
    check_k(k)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) <= k:
        raise InvalidArgumentError(f"index_tradeoff needs a 2-d array of more than k={k} vectors, got {vectors.shape}")
    if n_queries <= 0:
        raise InvalidArgumentError(f"n_queries must be a positive integer, got {n_queries!r}")
    config = config or IndexConfig()
    n, dim = vectors.shape
    ids = [str(i) for i in range(n)]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, min(n_queries, n), replace=False))
    queries = vectors[rows]

    exact = create_index(dim, replace(config, kind="flat"))
    exact.add(ids, vectors)
    truth, seconds = _run(exact, queries, k, None)
    points = [_point("exact (flat)", "flat", None, None, truth, truth, seconds, k)]

    graph = create_index(dim, replace(config, kind="hnsw", exact_filter_rows=0))
    graph.add(ids, vectors)
    default = IndexConfig()
    for factor in rerank_factors:
        done: set[int] = set()
        for ef in ef_search:
            beam = max(int(ef), k * int(factor))
            if beam in done:  # a narrower ef_search is widened to k * rerank_factor: the same search
                continue
            done.add(beam)
            fork = graph.fork()
            fork.config = replace(graph.config, ef_search=beam)  # a search-time setting: the graph is shared
            found, seconds = _run(fork, queries, k, factor)
            is_default = beam == max(default.ef_search, k * default.rerank_factor) and factor == default.rerank_factor
            points.append(_point(f"hnsw ef={beam} x{factor}", "hnsw", beam, int(factor), found, truth, seconds, k,
                                 is_default))
    return points


def format_tradeoff(points: Sequence[TradeoffPoint]) -> str:
    """The points as a Markdown table, the default settings marked.

    Example:
        >>> print(format_tradeoff(index_tradeoff(np.eye(20, dtype=np.float32), k=3, n_queries=5)))  # doctest: +SKIP
    """
    lines = ["| setting | recall@k | queries/s | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {p.setting}{' (default)' if p.default else ''} | {p.recall:.4f} | {p.qps:,.0f} | "
              f"{p.p50_ms:.3f} | {p.p99_ms:.3f} |" for p in points]
    return "\n".join(lines)


def _run(index: VectorIndex, queries: np.ndarray, k: int, rerank_factor: int | None) -> tuple[list[set[str]], np.ndarray]:
    """Each query searched alone (after a short warm-up); the ids found and the seconds per query."""
    for q in queries[:10]:
        index.search(q, k, rerank_factor=rerank_factor)
    found, seconds = [], np.empty(len(queries))
    for i, q in enumerate(queries):
        start = time.perf_counter()
        _, got = index.search(q, k, rerank_factor=rerank_factor)
        seconds[i] = time.perf_counter() - start
        found.append(set(got[0].tolist()))
    return found, seconds


def _point(setting: str, structure: str, ef: int | None, factor: int | None, found: list[set[str]],
           truth: list[set[str]], seconds: np.ndarray, k: int, default: bool = False) -> TradeoffPoint:
    recall = float(np.mean([len(a & b) / k for a, b in zip(found, truth)]))
    p50, p99 = np.percentile(seconds, [50, 99]) * 1e3
    return TradeoffPoint(setting, structure, ef, factor, recall, float(1e3 / p50), float(p50), float(p99), default)


__all__ = ["EF_SEARCH", "RERANK_FACTORS", "TradeoffPoint", "format_tradeoff", "index_tradeoff"]
