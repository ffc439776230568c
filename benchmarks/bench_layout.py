"""What laying an HNSW out in memory by cluster gains: the same graph, laid out and in insertion order.

`IndexConfig.layout_rows` lays a graph of that many rows or more out by k-means cluster
(`index.structures.memory_order`). This builds one HNSW-SQ8 `FaissIndex` with the default and
one with `layout_rows=0` over the same vectors, then times `FaissIndex.search` one query at a
time on one thread, at each efSearch, the two indexes back to back in alternating rounds (the
fastest round counts for each): machine drift between separate runs was larger than the gain.
Both graphs come from the same build procedure, so they are one graph in two memory orders:
their recall must be equal, and the table shows it.

Usage:
    .venv/bin/python benchmarks/bench_layout.py --n 1000000 --data films
    .venv/bin/python benchmarks/bench_layout.py --quick        # 60k clustered rows, dim 32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_ann import EF_CONSTRUCTION, HNSW_M, K, data_set, log, recall  # noqa: E402
from index import FaissIndex, IndexConfig  # noqa: E402

ROUNDS = 5  # alternating timed rounds per efSearch; the fastest of each index counts


def main(argv: list[str] | None = None) -> int:
    """Print one row per efSearch: q/s laid out, q/s in insertion order, their ratio, and both recalls."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--data", choices=("films", "clustered"), default="films")
    parser.add_argument("--ef", default="16,24,32,64,128", help="comma-separated efSearch values")
    parser.add_argument("--quick", action="store_true", help="60k clustered rows of dim 32, 100 queries")
    args = parser.parse_args(argv)
    n, dim, n_queries, data = (60_000, 32, 100, "clustered") if args.quick else (args.n, args.dim, args.queries, args.data)
    efs = [int(value) for value in args.ef.split(",")]
    log(f"bench_layout: {data}, n={n:,} dim={dim} queries={n_queries}; HNSW-SQ8 M={HNSW_M} "
        f"efConstruction={EF_CONSTRUCTION}; search: 1 thread, 1 query at a time, best of {ROUNDS} alternating rounds")
    vectors, queries, _ = data_set(data, n, dim, n_queries)
    truth = faiss.knn(queries, vectors, K, metric=faiss.METRIC_INNER_PRODUCT)[1]
    ids = np.arange(n).astype(str).tolist()
    indexes = {}
    for name, layout_rows in (("laid out", min(IndexConfig().layout_rows, n)), ("insertion order", 0)):
        log(f"  building {name} ...")
        start = time.perf_counter()
        index = FaissIndex(dim, IndexConfig(kind="hnsw", hnsw_m=HNSW_M, ef_construction=EF_CONSTRUCTION,
                                            train_rows=100_000, layout_rows=layout_rows))
        index.add(ids, vectors)
        log(f"  built {name} in {time.perf_counter() - start:.1f} s")
        indexes[name] = index
    log(f"{'efSearch':>8} {'laid out q/s':>13} {'insertion q/s':>14} {'ratio':>6} {'recall laid':>12} {'recall ins.':>12}")
    for ef in efs:
        variants = {name: index.with_search_setting(ef) for name, index in indexes.items()}
        best = dict.fromkeys(variants, np.inf)
        for _ in range(ROUNDS):
            for name, variant in variants.items():
                start = time.perf_counter()
                for query in queries:
                    variant.search(query, K)
                best[name] = min(best[name], time.perf_counter() - start)
        qps = {name: n_queries / seconds for name, seconds in best.items()}
        recalls = {name: recall(np.array([v.search(q, K)[1][0].astype(np.int64) for q in queries]), truth)
                   for name, v in variants.items()}
        log(f"{ef:>8} {qps['laid out']:>13.0f} {qps['insertion order']:>14.0f} "
            f"{qps['laid out'] / qps['insertion order']:>6.2f} {recalls['laid out']:>12.4f} {recalls['insertion order']:>12.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
