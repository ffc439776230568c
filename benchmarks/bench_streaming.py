"""Indexing in checkpointed chunks vs in memory: peak memory and items/s on a synthetic text catalog.

Two paths index the same synthetic catalog file (ids, titles, descriptions, categories,
prices, stock) into a model folder, each in its own forked process:

* in-memory (the path before chunks): `Catalog.from_file` + `Engine.build` + `save`;
* chunked: `index_catalog` (reads, encodes and checkpoints `--chunk-rows` rows at a time,
  vectors in memory-mapped files, then builds the index and saves).

For each it prints, as soon as measured: seconds, items/s, and the growth of the process's
peak resident memory over what it held before starting (imports and the encoder are shared
by both, so they are left out; `/proc/self/clear_refs` resets the peak). Then the table with
the chunked path's ratios to the in-memory path measured in the same run.

The default encoder hashes words into 384 dimensions (MiniLM's size) so that memory, not the
forward pass, is what differs; `--text-encoder minilm-l6` uses the real model.

Usage:
    .venv/bin/python benchmarks/bench_streaming.py                       # 100,000 items
    .venv/bin/python benchmarks/bench_streaming.py --items 20000 --text-encoder minilm-l6
    .venv/bin/python benchmarks/bench_streaming.py --quick               # 2,000 items, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoders.base import TextEncoder  # noqa: E402
from encoders.config import EncoderConfig  # noqa: E402
from encoders.registry import ENCODERS  # noqa: E402
from engine import Catalog, Engine  # noqa: E402
from engine.config import EngineConfig  # noqa: E402
from engine.indexing import index_catalog  # noqa: E402
from engine.streaming import StreamingConfig  # noqa: E402

WORDS = ("red blue green black white steel wooden soft warm light heavy small large kettle lamp chair shoe shirt "
         "table pan mug sofa bag coat hat rug desk bowl knife towel pillow clock frame vase").split()


class HashText(TextEncoder):
    """A 384-d hashed bag of words: MiniLM's output size at almost no compute."""

    def __init__(self, **_: object) -> None:
        self.name, self.dim = "bench-hash-text", 384

    def encode(self, batch: list[str]) -> np.ndarray:
        out = np.full((len(batch), self.dim), 1e-6, dtype=np.float32)
        for row, text in enumerate(batch):
            for word in text.lower().replace(".", " ").split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


ENCODERS.setdefault("bench-hash-text", "benchmarks.bench_streaming:HashText")


def synthetic_catalog(path: Path, items: int, seed: int = 0) -> Path:
    """A catalog file of `items` text-only rows (format from the suffix)."""
    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    titles = [" ".join(w) for w in rng.choice(words, (items, 4))]
    descriptions = [" ".join(w) for w in rng.choice(words, (items, 24))]
    frame = pd.DataFrame({"id": [f"sku-{i:07d}" for i in range(items)], "title": titles, "description": descriptions,
                          "category": rng.choice(["home", "wear", "kitchen", "garden"], items),
                          "price": np.round(rng.uniform(1, 200, items), 2), "stock": rng.integers(0, 50, items)})
    {".csv": lambda: frame.to_csv(path, index=False), ".parquet": lambda: frame.to_parquet(path),
     ".jsonl": lambda: frame.to_json(path, orient="records", lines=True)}[path.suffix]()
    return path


def _memory_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def measure(path_name: str, catalog: Path, out: Path, config: EngineConfig, chunk_rows: int, progress: bool) -> dict:
    """Index in a forked child; returns its seconds, items and peak memory growth (MB)."""
    result = out.with_suffix(".json")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import faiss
            import torch

            torch.set_num_threads(1)
            faiss.omp_set_num_threads(1)
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # reset the peak resident size to the current one
            before = _memory_kb("VmRSS")
            start = time.perf_counter()
            if path_name == "in-memory":
                engine = Engine.build(Catalog.from_file(catalog), config, show_progress=progress)
                engine.save(out)
            else:
                engine, _ = index_catalog(catalog, out, config, show_progress=progress,
                                          streaming=StreamingConfig(chunk_rows=chunk_rows))
            seconds = time.perf_counter() - start
            peak = _memory_kb("VmHWM")
            result.write_text(json.dumps({"seconds": seconds, "items": len(engine.index),
                                          "peak_growth_mb": (peak - before) / 1024, "before_mb": before / 1024}))
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the {path_name} child failed (exit {os.waitstatus_to_exitcode(status)})")
    return json.loads(result.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=100_000, help="catalog rows (default 100,000)")
    p.add_argument("--chunk-rows", type=int, default=StreamingConfig().chunk_rows, help="rows per chunk (default: the default)")
    p.add_argument("--format", choices=["csv", "jsonl", "parquet"], default="csv", help="catalog file format")
    p.add_argument("--text-encoder", default="bench-hash-text", help="text encoder (default: 384-d word hashing)")
    p.add_argument("--quick", action="store_true", help="2,000 items in chunks of 500, no progress bars (for the tests)")
    args = p.parse_args(argv)
    items, chunk_rows = (2_000, 500) if args.quick else (args.items, args.chunk_rows)
    config = EngineConfig(encoders=EncoderConfig(image=None, text=args.text_encoder, num_workers=0))
    print(f"synthetic text catalog: {items:,} items, .{args.format}, encoder {args.text_encoder}, "
          f"chunks of {chunk_rows:,} rows; load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        catalog = synthetic_catalog(Path(tmp) / f"items.{args.format}", items)
        print(f"catalog file: {catalog.stat().st_size / 1e6:.1f} MB", flush=True)
        header = f"{'path':<12}{'items':>9}{'seconds':>9}{'items/s':>10}{'peak RSS growth MB':>20}"
        print(header, flush=True)
        for name in ("in-memory", "chunked"):
            got = measure(name, catalog, Path(tmp) / f"model-{name}", config, chunk_rows, progress=not args.quick)
            got["name"] = name
            rows.append(got)
            print(f"{name:<12}{got['items']:>9,}{got['seconds']:>9.2f}{got['items'] / got['seconds']:>10,.0f}"
                  f"{got['peak_growth_mb']:>20.1f}", flush=True)
    base = rows[0]
    print(f"\n{header}{'items/s ratio':>15}{'peak ratio':>12}")
    for got in rows:
        speed = (got["items"] / got["seconds"]) / (base["items"] / base["seconds"])
        peak = got["peak_growth_mb"] / base["peak_growth_mb"] if base["peak_growth_mb"] > 0 else float("nan")
        print(f"{got['name']:<12}{got['items']:>9,}{got['seconds']:>9.2f}{got['items'] / got['seconds']:>10,.0f}"
              f"{got['peak_growth_mb']:>20.1f}{speed:>15.2f}{peak:>12.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
