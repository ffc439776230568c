"""What one engine write costs as the catalog grows: `Engine.remove` and the non-encoding part of `Engine.add`.

A write builds the next `EngineState` and publishes it: a new `Catalog` (copy of its table),
a new hashes mapping, and a fork of the index (`bench_writes.py` times the index alone). This
times, on synthetic catalogs of 10k and 1M items (dim 64, text columns like a shop's):

- remove 1: `engine.remove([id])`, the whole write as a user pays it;
- add 1 (no encoding): what `Engine.add` does besides encoding (catalog concat, then
  `EngineState.with_added`: hashes copy, index fork + add), with a precomputed vector, so the
  encoder's own time (one forward pass) is left out; the state is built, not published, so
  every call adds to the same catalog size;
- a `similar()` query at the same size, as the baseline the writes are compared with.

Usage:
    .venv/bin/python benchmarks/bench_engine_writes.py            # 10k and 1M items
    .venv/bin/python benchmarks/bench_engine_writes.py --quick    # 10k only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_index import clustered_embeddings  # noqa: E402
from engine import Catalog, Engine, EngineConfig  # noqa: E402
from engine.pipeline import EncodedItems  # noqa: E402
from engine.state import EngineState  # noqa: E402
from index import IndexConfig, create_index  # noqa: E402

DIM = 64


def synthetic(n: int) -> tuple[Engine, np.ndarray]:
    vectors = clustered_embeddings(n + 200, DIM, seed=0)
    ids = [f"sku-{i}" for i in range(n)]
    frame = pd.DataFrame({"id": ids, "title": [f"Product {i}" for i in range(n)],
                          "description": [f"a product of kind {i % 97}" for i in range(n)],
                          "category": [f"cat-{i % 20}" for i in range(n)], "price": np.round(np.linspace(1, 100, n), 2)})
    config = EngineConfig(index=IndexConfig())
    index = create_index(DIM, config.index)
    index.add(ids, vectors[:n])
    state = EngineState(Catalog(frame, source="synthetic"), index, {i: "h" for i in ids})
    return Engine(config, state), vectors[n:]


def add_without_encoding(engine: Engine, item_id: str, vector: np.ndarray) -> None:
    """`Engine.add` without its encoder: the next state from a given vector, as `add` builds it (not published)."""
    state = engine.state
    catalog = state.catalog.concat(Catalog.from_records([{"id": item_id, "title": "New", "category": "cat-0"}]))
    state.with_added(catalog, EncodedItems([item_id], vector[None, :], ["h"], []))


def p50_ms(fn, calls: int) -> float:
    times = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k items only")
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [10_000, 1_000_000]
    print(f"dim {DIM}, times in ms (p50); ratio = write / similar()")
    print(f"{'items':>10} {'similar':>8} {'remove 1':>9} {'add 1*':>8} {'remove/sim':>11} {'add/sim':>8}")
    for n in sizes:
        engine, extra = synthetic(n)
        sim = p50_ms(lambda i: engine.similar(f"sku-{i * 7 % n}", k=10), 50)
        remove = p50_ms(lambda i: engine.remove([f"sku-{i * 13 % n}"]), 20)
        add = p50_ms(lambda i: add_without_encoding(engine, f"new-{i}", extra[i]), 20)
        print(f"{n:>10,} {sim:>8.2f} {remove:>9.1f} {add:>8.1f} {remove / sim:>11.0f} {add / sim:>8.0f}")
    print("* add without the encoder's forward pass (one item: a few ms for text, ~15 ms for an image on this CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
