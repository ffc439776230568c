"""The FAISS structures a `FaissIndex` can sit on: exact Flat and approximate HNSW.

Both are built over the sealed rows 0..n-1 of a `RowStore`, so a FAISS label is a store row.
A built structure is never changed: `extend` returns a new one.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from .config import IndexConfig

FLAT = "flat"
HNSW = "hnsw"

_QUANTIZERS = {"sq8": faiss.ScalarQuantizer.QT_8bit, "fp16": faiss.ScalarQuantizer.QT_fp16}


def build(structure: str, matrix: np.ndarray, config: IndexConfig) -> faiss.Index:
    """Build `structure` over every row of `matrix`, training on a seeded sample if needed.

    Example:
        >>> build(FLAT, np.eye(3, dtype=np.float32), IndexConfig()).ntotal
        3
    """
    dim = matrix.shape[1]
    if structure == FLAT:
        index: faiss.Index = faiss.IndexFlatIP(dim)
    elif config.storage == "flat":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexHNSWSQ(dim, _QUANTIZERS[config.storage], config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    if structure == HNSW:
        index.hnsw.efConstruction = config.ef_construction
        if not index.is_trained:
            index.train(training_sample(matrix, config))
    if len(matrix):
        index.add(matrix)
    return index


def extend(index: faiss.Index, matrix: np.ndarray) -> faiss.Index:
    """A copy of `index` with the rows of `matrix` added after its own; `index` is untouched.

    Adding to a built structure in place is unsafe while others search it (Flat may move
    its codes, HNSW rewrites neighbour lists), so the rows go into a clone. Cloning copies
    the codes and the graph, O(n); rebuilding HNSW from scratch would re-insert every row.

    Example:
        >>> extend(build(FLAT, np.eye(3, dtype=np.float32), IndexConfig()), np.eye(3, dtype=np.float32)).ntotal
        6
    """
    copy = faiss.clone_index(index)
    copy.add(np.ascontiguousarray(matrix, np.float32))
    return copy


def training_sample(matrix: np.ndarray, config: IndexConfig) -> np.ndarray:
    """At most `config.train_rows` rows of `matrix`, drawn with `config.seed`."""
    if len(matrix) <= config.train_rows:
        return matrix
    rng = np.random.default_rng(config.seed)
    return matrix[np.sort(rng.choice(len(matrix), config.train_rows, replace=False))]


def hnsw_beam(n_wanted: int, selectivity: float, config: IndexConfig) -> int:
    """HNSW efSearch for one search: at least `n_wanted` (FAISS returns at most efSearch
    results), widened by 1 / selectivity because filtered-out nodes still occupy the beam."""
    ef = max(config.ef_search, n_wanted)
    return int(math.ceil(ef / max(selectivity, 1e-9)))


def search_params(structure: str, selector: faiss.IDSelector | None, beam: int) -> faiss.SearchParameters | None:
    """Search parameters carrying the selector and, for HNSW, the beam width."""
    if structure == FLAT:
        return None if selector is None else faiss.SearchParameters(sel=selector)
    params = faiss.SearchParametersHNSW(efSearch=beam)
    if selector is not None:
        params.sel = selector
    return params
