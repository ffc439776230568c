"""The FAISS structures a `FaissIndex` can sit on: exact Flat, approximate HNSW and IVF.

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
IVF = "ivf"

_QUANTIZERS = {"sq8": faiss.ScalarQuantizer.QT_8bit, "fp16": faiss.ScalarQuantizer.QT_fp16}


def build(structure: str, matrix: np.ndarray, config: IndexConfig, held_out: int = 0) -> faiss.Index:
    """Build `structure` over the rows of `matrix` but its last `held_out`, training on a seeded
    sample of every row if needed (the caller adds the held-out rows after tuning).

    Example:
        >>> build(FLAT, np.eye(3, dtype=np.float32), IndexConfig()).ntotal
        3
    """
    dim = matrix.shape[1]
    if structure == FLAT:
        index: faiss.Index = faiss.IndexFlatIP(dim)
    elif structure == IVF:
        index = _ivf(matrix, config)
    elif config.storage == "flat":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexHNSWSQ(dim, _QUANTIZERS[config.storage], config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    if structure == HNSW:
        index.hnsw.efConstruction = config.ef_construction
    if not index.is_trained:
        rows = max(config.train_rows, 39 * index.nlist) if structure == IVF else config.train_rows
        sample = training_sample(matrix, config, rows)
        index.train(sample if len(sample) > 1 else np.repeat(sample, 2, axis=0))  # PQ needs 2 rows for 1 bit
    if len(matrix) > held_out:
        index.add(matrix[: len(matrix) - held_out])
    return index


def structure_for(n: int, config: IndexConfig) -> str:
    """The structure kind "auto" uses for `n` items (explicit kinds always use their own).

    Example:
        >>> structure_for(10, IndexConfig()), structure_for(10, IndexConfig(kind="ivf"))
        ('flat', 'ivf')
    """
    if config.kind != "auto":
        return {"flat": FLAT, "hnsw": HNSW, "ivf": IVF}[config.kind]
    if n > config.ivf_threshold:
        return IVF
    return HNSW if n > config.hnsw_threshold else FLAT


def ivf_lists(n: int, config: IndexConfig) -> int:
    """Inverted lists for `n` rows: `config.ivf_lists`, else ~4 sqrt(n); at most n / 39, so that
    each list has the 39 training rows FAISS's k-means asks for (IVF trains on that many rows).

    Example:
        >>> ivf_lists(1_000_000, IndexConfig()), ivf_lists(150, IndexConfig())
        (4000, 3)
    """
    wanted = config.ivf_lists or int(round(4 * math.sqrt(max(n, 1))))
    return max(1, min(wanted, n // 39))


def pq_bytes(dim: int, config: IndexConfig) -> int:
    """PQ sub-quantisers: `config.pq_bytes` (or dim / 4) lowered to a divisor of dim.

    Example:
        >>> pq_bytes(128, IndexConfig()), pq_bytes(10, IndexConfig())
        (32, 2)
    """
    wanted = max(1, min(dim, config.pq_bytes or dim // 4))
    return next(m for m in range(wanted, 0, -1) if dim % m == 0)


def _ivf(matrix: np.ndarray, config: IndexConfig) -> faiss.Index:
    """An untrained IVF index with SQ8 or PQ codes sized for `matrix`."""
    n, dim = matrix.shape
    lists = ivf_lists(n, config)
    coarse = faiss.IndexFlatIP(dim)
    if config.ivf_codes == "sq8":
        index = faiss.IndexIVFScalarQuantizer(
            coarse, dim, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
    else:  # 8-bit PQ centroids need 256 training rows; fewer rows get fewer bits
        bits = int(min(8, max(1, math.floor(math.log2(max(2, n))))))
        index = faiss.IndexIVFPQ(coarse, dim, lists, pq_bytes(dim, config), bits, faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True
    coarse.this.disown()  # owned by the IVF index from now on
    index.cp.seed = config.seed
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


def training_sample(matrix: np.ndarray, config: IndexConfig, rows: int | None = None) -> np.ndarray:
    """At most `rows` (default `config.train_rows`) rows of `matrix`, drawn with `config.seed`."""
    rows = config.train_rows if rows is None else rows
    if len(matrix) <= rows:
        return matrix
    rng = np.random.default_rng(config.seed)
    return matrix[np.sort(rng.choice(len(matrix), rows, replace=False))]


def hnsw_beam(n_wanted: int, selectivity: float, ef_search: int) -> int:
    """HNSW efSearch for one search: at least `n_wanted` (FAISS returns at most efSearch
    results), widened by 1 / selectivity because filtered-out nodes still occupy the beam."""
    ef = max(ef_search, n_wanted)
    return int(math.ceil(ef / max(selectivity, 1e-9)))


def search_params(
    structure: str, selector: faiss.IDSelector | None, beam: int
) -> faiss.SearchParameters | None:
    """Search parameters carrying the selector and the beam (HNSW efSearch, IVF nprobe)."""
    if structure == FLAT:
        return None if selector is None else faiss.SearchParameters(sel=selector)
    if structure == IVF:
        params: faiss.SearchParameters = faiss.SearchParametersIVF(nprobe=beam)
    else:
        params = faiss.SearchParametersHNSW(efSearch=beam)
    if selector is not None:
        params.sel = selector
    return params
