"""The FAISS structures a `FaissIndex` can sit on: exact Flat, approximate HNSW and IVF.

Both are built over the sealed rows 0..n-1 of a `RowStore`, so a FAISS label is a store row.
A built structure is never changed: `extend` returns a new one.

Memory layout of a large graph: a search hops between neighbours, and each hop reads a
node's codes and links. In insertion order neighbours lie anywhere in memory, so nearly
every hop misses the CPU caches and the TLB. An HNSW of at least `IndexConfig.layout_rows` rows
is therefore laid out in the order of a k-means clustering of its vectors (`memory_order`,
FAISS `permute_entries`): near vectors sit near each other. The graph itself is unchanged;
FAISS `IndexIDMap` maps each position back to its store row (8 bytes per row), so labels
stay store rows (selectors too: FAISS swaps a translating selector into the call's parameters
for the call, safe because parameters with a selector are made per search, `search_params`).
`benchmarks/bench_layout.py` times one graph in both orders (docs/evaluation.md, "Index at a
million items", table 7).
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

LAYOUT_CLUSTER_ROWS = 256  # rows per layout cluster: ~100 KB of codes and links at dim 128
LAYOUT_MAX_CLUSTERS = 4096
LAYOUT_DIMS = 32  # the layout's k-means runs on this many PCA dimensions: its cost does not grow with dim


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
    n = len(matrix) - held_out
    if structure == HNSW and 0 < config.layout_rows <= n:
        return _laid_out_graph(index, matrix[:n], config)
    if n > 0:
        index.add(matrix[:n])
    return index


def _laid_out_graph(graph: faiss.IndexHNSW, matrix: np.ndarray, config: IndexConfig) -> faiss.IndexIDMap:
    """`graph` built over `matrix` (label = row), then laid out in `memory_order`, labels kept."""
    mapped = faiss.IndexIDMap(graph)
    mapped.own_fields = True
    graph.this.disown()  # owned by the map from now on
    add_rows(mapped, matrix, 0)
    order = memory_order(matrix, config)
    graph.permute_entries(order)  # position i now holds row order[i]
    faiss.copy_array_to_vector(order, mapped.id_map)
    return mapped


def memory_order(matrix: np.ndarray, config: IndexConfig) -> np.ndarray:
    """The rows of `matrix` grouped by k-means cluster (int64, a permutation), for a graph's layout.

    About `LAYOUT_CLUSTER_ROWS` rows per cluster, at most `LAYOUT_MAX_CLUSTERS`, clustered
    on the first `LAYOUT_DIMS` principal components (seeded sample of `config`): ~3 s at 1M rows.

    Example:
        >>> memory_order(np.eye(3, dtype=np.float32), IndexConfig()).tolist()
        [0, 1, 2]
    """
    n, dim = matrix.shape
    clusters = min(LAYOUT_MAX_CLUSTERS, n // LAYOUT_CLUSTER_ROWS)
    if clusters < 2:
        return np.arange(n, dtype=np.int64)
    pca = faiss.PCAMatrix(dim, min(dim, LAYOUT_DIMS))
    pca.train(training_sample(matrix, config))
    kmeans = faiss.Kmeans(pca.d_out, clusters, niter=10, seed=config.seed, max_points_per_centroid=64)
    kmeans.train(pca.apply(training_sample(matrix, config, 64 * clusters)))
    cluster = np.empty(n, np.int64)
    for start in range(0, n, 100_000):
        chunk = np.ascontiguousarray(matrix[start : start + 100_000])
        cluster[start : start + len(chunk)] = kmeans.index.search(pca.apply(chunk), 1)[1][:, 0]
    return np.argsort(cluster, kind="stable")


def add_rows(index: faiss.Index, matrix: np.ndarray, first_row: int) -> None:
    """Add the rows of `matrix` to `index` in place as store rows first_row, first_row + 1, ...

    Only for a structure nobody else reads yet (a build in progress); see `extend`."""
    matrix = np.ascontiguousarray(matrix, np.float32)
    if isinstance(index, faiss.IndexIDMap):
        index.add_with_ids(matrix, np.arange(first_row, first_row + len(matrix), dtype=np.int64))
    else:
        index.add(matrix)


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


def extend(index: faiss.Index, matrix: np.ndarray, first_row: int) -> faiss.Index:
    """A copy of `index` with the rows of `matrix` added as store rows first_row, ...; `index` is untouched.

    Adding to a built structure in place is unsafe while others search it (Flat may move
    its codes, HNSW rewrites neighbour lists), so the rows go into a clone. Cloning copies
    the codes and the graph, O(n); rebuilding HNSW from scratch would re-insert every row.

    Example:
        >>> extend(build(FLAT, np.eye(3, dtype=np.float32), IndexConfig()), np.eye(3, dtype=np.float32), 3).ntotal
        6
    """
    copy = faiss.clone_index(index)
    add_rows(copy, matrix, first_row)
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
