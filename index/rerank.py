"""Exact re-ranking of a structure's candidates, the one-query fast path, and thread control.

`FaissIndex.search` with one query, no filter, no tombstones and no tail (the usual call
behind `recommend()` and `similar()`) spends most of its time outside FAISS when the graph
search is short: building a `SearchParameters` object per call, FAISS's Python wrapper,
the thread-count switch, allocations, and the re-rank's batch code. `search_one` does the
same work with the least Python: cached parameters, FAISS's C entry point, a gather of the
few candidate rows, and a sort of them. Results equal the general path's (tested).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np

from core.ranking import top_k

from . import structures

_RERANK_CHUNK = 64  # queries re-ranked together: bounds the gathered (chunk, C, dim) block


class ParamCache:
    """Search parameters (no selector) per beam, built once and shared by every search.

    FAISS only reads a `SearchParameters` object during a search, so one object may serve
    any number of concurrent searches.

    Example:
        >>> ParamCache().get(structures.HNSW, 64).efSearch
        64
    """

    def __init__(self) -> None:
        self._params: dict[tuple[str, int], faiss.SearchParameters] = {}
        self._lock = threading.Lock()

    def get(self, structure: str, beam: int) -> faiss.SearchParameters:
        """The parameters for `structure` (HNSW or IVF) with efSearch / nprobe = `beam`."""
        key = (structure, beam)
        params = self._params.get(key)
        if params is None:
            with self._lock:
                params = self._params.setdefault(key, structures.search_params(structure, None, beam))
        return params


def search_one(
    index: faiss.Index, params: faiss.SearchParameters, query: np.ndarray, n_candidates: int, k: int,
    matrix: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Top k of one float32 query: `n_candidates` from `index`, re-ranked with `matrix` (row = label).

    Returns (scores (1, k) float32, labels (1, k) int64), best first, or None when the
    structure returned fewer than k candidates (the caller then takes the general path).

    Example:
        >>> search_one(built, params, query, 100, 10, vectors)  # doctest: +SKIP
    """
    distances = np.empty(n_candidates, np.float32)
    labels = np.empty(n_candidates, np.int64)
    # FAISS's C entry point: its Python wrapper checks and allocates what is already done here.
    index.search_c(1, faiss.swig_ptr(query), n_candidates, faiss.swig_ptr(distances), faiss.swig_ptr(labels), params)
    if labels[-1] < 0:  # FAISS pads short result lists with -1 at the end
        labels = labels[labels >= 0]
        if len(labels) < k:
            return None
    scores, best = best_of(matrix, query, labels, k)  # k or more candidates: no padding needed
    return scores[None, :], best[None, :]


def best_of(matrix: np.ndarray, query: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores and rows of the best min(k, len(rows)) of `rows` (all >= 0) for one query, best first.

    Example:
        >>> best_of(np.eye(3, dtype=np.float32), np.array([0, 1, 0], np.float32), np.array([2, 1]), 1)[1]
        array([1])
    """
    exact = matrix[rows] @ query
    top = np.argsort(-exact, kind="stable")[:k]
    return exact[top], rows[top]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run this thread's FAISS calls on one OpenMP thread, and restore the setting afterwards.

    The OpenMP setting is per calling thread, so concurrent searches in other threads are
    unaffected.

    Example:
        >>> with one_thread():
        ...     faiss.omp_get_max_threads()
        1
    """
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


@contextmanager
def threads_for(n_queries: int) -> Iterator[None]:
    """Run FAISS single-threaded for one query: splitting one scan over OpenMP threads was
    slower than one thread in our measurements, and far slower on a busy machine.

    Example:
        >>> with threads_for(1):
        ...     faiss.omp_get_max_threads()
        1
    """
    if n_queries > 1:
        yield
        return
    with one_thread():
        yield


def rerank(matrix: np.ndarray, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores of candidate rows of `matrix` (-1 = none); the best k per query, -1 where short.

    Example:
        >>> rerank(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32)[:1], np.array([[2, 0, -1]]), 1)[1]
        array([[0]])
    """
    if len(queries) == 1:  # one query: a plain product and sort, without the batch machinery
        best, rows = best_of(matrix, queries[0], candidates[0][candidates[0] >= 0], k)
        scores, labels = np.full((1, k), -np.inf, np.float32), np.full((1, k), -1, np.int64)
        scores[0, : len(rows)], labels[0, : len(rows)] = best, rows
        return scores, labels
    scores = np.empty((len(queries), k), np.float32)
    labels = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), _RERANK_CHUNK):
        chunk = slice(start, start + _RERANK_CHUNK)
        cand = candidates[chunk]
        exact = np.einsum("qcd,qd->qc", matrix[np.maximum(cand, 0)], queries[chunk])
        exact[cand < 0] = -np.inf
        cols, best = top_k(exact, k)
        picked = np.take_along_axis(cand, cols, axis=1)
        picked[~np.isfinite(best)] = -1
        scores[chunk], labels[chunk] = best, picked
    return scores, labels


def merge(
    scores: np.ndarray, labels: np.ndarray, more_scores: np.ndarray, more_labels: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best k of two result lists per query; label -1 marks an empty slot.

    Example:
        >>> merge(np.array([[1.0]]), np.array([[4]]), np.array([[2.0]]), np.array([[7]]), 1)[1]
        array([[7]])
    """
    labels = np.concatenate([labels, more_labels], axis=1)
    cols, best = top_k(np.where(labels < 0, -np.inf, np.concatenate([scores, more_scores], axis=1)), k)
    return best, np.take_along_axis(labels, cols, axis=1)
