"""Cost of a copy-on-write index write (fork + change + publish) against the cost of a search.

A serving engine answers queries from one published index object and changes it by forking
it, changing the fork and publishing the fork. This measures, per catalog size:

- search: one similar()-style query (k=10, its own item excluded), single-threaded FAISS as
  in serving, p50 over queries, with an empty tail, with a full one (`IndexConfig.tail_rows`
  items added since the structure was built, which every query scans exactly) and after the
  removals below (their tombstones are hidden from FAISS by a selector);
- fork + add 1 + publish: p50 of the writes that only extend the tail, the cost of the writes
  that seal it (clone the structure, add the tail), and the mean over all writes (amortised);
- fork + remove 1 + publish: p50 and mean, plus the amortised cost of the compaction that
  removals trigger once `rebuild_fraction` of the rows are dead: a full build, which the
  benchmark times at the start (building the index) and spreads over `rebuild_fraction * n`
  removals.

Vectors are the clustered synthetic embeddings of `bench_index.py`.

Usage:
    .venv/bin/python benchmarks/bench_writes.py             # 10k and 1M items, dim 64
    .venv/bin/python benchmarks/bench_writes.py --quick     # 10k items only
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_index import clustered_embeddings
from index import FaissIndex, IdFilter, IndexConfig


def search_p50(index: FaissIndex, queries: np.ndarray, query_ids: list[str]) -> float:
    """Median seconds of one similar()-style search."""
    seconds = np.empty(len(queries))
    for i, (vector, item) in enumerate(zip(queries, query_ids)):
        start = time.perf_counter()
        index.search(vector, 10, IdFilter(exclude=frozenset({item})))
        seconds[i] = time.perf_counter() - start
    return float(np.median(seconds))


def timed_writes(
    index: FaissIndex, n_writes: int, write: Callable[[FaissIndex, int], None]
) -> tuple[FaissIndex, np.ndarray, np.ndarray]:
    """Fork, write, publish `n_writes` times; the last version, per-write seconds, which writes sealed."""
    published = index
    seconds, sealed = np.empty(n_writes), np.zeros(n_writes, bool)
    for i in range(n_writes):
        start = time.perf_counter()
        nxt = published.fork()
        write(nxt, i)
        published = nxt  # publishing is one reference swap
        seconds[i] = time.perf_counter() - start
        sealed[i] = published.tail_size == 0  # the tail was folded into a new structure
    return published, seconds, sealed


def main(argv: list[str] | None = None) -> int:
    """Print one table row per catalog size and index structure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k items only")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--adds", type=int, default=5000, help="fork + add writes per size")
    parser.add_argument("--removes", type=int, default=1000, help="fork + remove writes per size")
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [10_000, 1_000_000]
    config = IndexConfig()
    print(
        f"dim {args.dim}, k=10, tail_rows {config.tail_rows}, rebuild_fraction {config.rebuild_fraction}, "
        f"faiss threads {faiss.omp_get_max_threads()} (1 per query); times in ms"
    )
    header = (
        f"{'items':>9} {'index':<6} {'build s':>8} {'search':>7} {'+tail':>7} {'+dead':>7} "
        f"{'add p50':>8} {'seal':>8} {'add mean':>9} {'rm p50':>7} {'rm mean':>8} {'compact':>8} "
        f"{'add/search':>10} {'rm/search':>9}"
    )
    print(header)
    rng = np.random.default_rng(1)
    for n in sizes:
        for kind in ("flat", "auto") if n <= 10_000 else ("auto",):
            vectors = clustered_embeddings(n + args.adds, args.dim)
            ids = [f"item-{i}" for i in range(n + args.adds)]
            start = time.perf_counter()
            index = FaissIndex(args.dim, IndexConfig(kind=kind))
            index.add(ids[:n], vectors[:n])
            build = time.perf_counter() - start
            picks = rng.choice(n, args.queries, replace=False)
            queries, query_ids = vectors[picks], [ids[i] for i in picks]
            search_p50(index, queries[:20], query_ids[:20])  # warm caches
            search = search_p50(index, queries, query_ids)

            new_ids, new_vectors = ids[n:], vectors[n:]
            grown, add_s, sealed = timed_writes(
                index, args.adds, lambda nxt, i, new=new_ids, vecs=new_vectors: nxt.add([new[i]], vecs[i : i + 1])
            )
            while grown.tail_size < config.tail_rows:  # a full tail: the slowest search between seals
                extra = grown.tail_size
                grown.add([f"pad-{extra}"], vectors[extra : extra + 1])
            with_tail = search_p50(grown, queries, query_ids)
            del grown

            doomed = [ids[i] for i in rng.choice(n, args.removes, replace=False)]
            shrunk, rm_s, _ = timed_writes(index, args.removes, lambda nxt, i, gone=doomed: nxt.remove([gone[i]]))
            with_dead = search_p50(shrunk, queries, query_ids)  # tombstones: every search needs a selector
            del shrunk
            compact = build / (config.rebuild_fraction * n)  # one full build per rebuild_fraction * n removals

            adds_only = add_s[~sealed]
            seal = add_s[sealed].mean() if sealed.any() else float("nan")
            print(
                f"{n:>9,} {index.structure:<6} {build:>8.1f} {search * 1e3:>7.3f} {with_tail * 1e3:>7.3f} "
                f"{with_dead * 1e3:>7.3f} "
                f"{np.median(adds_only) * 1e3:>8.3f} {seal * 1e3:>8.1f} {add_s.mean() * 1e3:>9.3f} "
                f"{np.median(rm_s) * 1e3:>7.3f} {rm_s.mean() * 1e3:>8.3f} {compact * 1e3:>8.3f} "
                f"{add_s.mean() / search:>10.2f} {(rm_s.mean() + compact) / search:>9.2f}"
            )
            del index
    print("search: p50 with an empty tail; +tail: with a full one; +dead: after the removes (tombstones).")
    print("add p50: fork + add 1 + publish, writes that only extend the tail; seal: mean of the writes that")
    print("folded the tail into a new structure (clone + add); add mean / rm mean: over all writes;")
    print("compact: full build / (rebuild_fraction * n), the compaction's share of each removal;")
    print("add/search: add mean / search; rm/search: (rm mean + compact) / search.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
