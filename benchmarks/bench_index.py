"""Latency and recall of exact Flat vs the auto-picked index, one similar()-style query at a time.

Each query is a stored item's own vector with that item excluded (what `Engine.similar`
asks), k=10, on clustered synthetic vectors shaped like fused image+text embeddings:
256 clusters, a shared 64-dim low-rank within-cluster spread with decaying variance, plus
isotropic noise, L2-normalised. Recall@10 is measured against the exact Flat answer.

Usage:
    .venv/bin/python benchmarks/bench_index.py            # 10k and 100k items, dim 1664
    .venv/bin/python benchmarks/bench_index.py --quick    # 10k items only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index import FaissIndex, IdFilter, IndexConfig  # noqa: E402


def clustered_embeddings(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors: cluster centre + low-rank spread with decaying variance + small noise."""
    rng = np.random.default_rng(seed)
    clusters, rank = 256, 64
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = rng.standard_normal((rank, dim)).astype(np.float32) / np.sqrt(dim)
    scales = (1.0 / np.sqrt(np.arange(1, rank + 1))).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 10_000):
        end = min(n, start + 10_000)
        spread = (rng.standard_normal((end - start, rank)).astype(np.float32) * scales) @ basis
        noise = rng.standard_normal((end - start, dim)).astype(np.float32) * (0.5 / np.sqrt(dim))
        x = centres[labels[start:end]] + spread + noise
        out[start:end] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def run_queries(index: FaissIndex, query_ids: list[str], k: int) -> tuple[list[list[str]], np.ndarray]:
    """similar()-style searches one at a time; returns the ids and per-query seconds."""
    results, seconds = [], np.empty(len(query_ids))
    for i, item in enumerate(query_ids):
        start = time.perf_counter()
        vector = index.vectors([item])[0]
        _, found = index.search(vector, k, IdFilter(exclude=frozenset({item})))
        seconds[i] = time.perf_counter() - start
        results.append(found[0].tolist())
    return results, seconds


def main(argv: list[str] | None = None) -> int:
    """Print a table of build time, p50/p99 latency and recall@10 per size and index."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k items only, fewer queries")
    parser.add_argument("--dim", type=int, default=1664)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=0, help="faiss OpenMP threads (0: leave as is)")
    args = parser.parse_args(argv)
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    sizes = [10_000] if args.quick else [10_000, 100_000]
    n_queries = min(args.queries, 100) if args.quick else args.queries
    print(f"dim {args.dim}, k=10, {n_queries} single queries, faiss threads {faiss.omp_get_max_threads()}")
    print(f"{'items':>8} {'index':<12} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>10}")
    rng = np.random.default_rng(1)
    for n in sizes:
        vectors = clustered_embeddings(n, args.dim)
        ids = [f"item-{i}" for i in range(n)]
        query_ids = [ids[i] for i in rng.choice(n, n_queries, replace=False)]
        truth: list[list[str]] = []
        for name, config in (("flat", IndexConfig(kind="flat")), ("auto", IndexConfig())):
            start = time.perf_counter()
            index = FaissIndex(args.dim, config)
            index.add(ids, vectors)
            build = time.perf_counter() - start
            run_queries(index, query_ids[:10], 10)  # warm caches
            found, seconds = run_queries(index, query_ids, 10)
            truth = truth or found
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
            label = f"{name}:{index.structure}"
            p50, p99 = np.percentile(seconds, [50, 99]) * 1e3
            print(f"{n:>8,} {label:<12} {build:>8.1f} {p50:>8.3f} {p99:>8.3f} {recall:>10.3f}")
            del index
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
