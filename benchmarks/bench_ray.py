"""Indexing on Ray vs on one machine: items/s of `build_on_ray` with 1 and 2 encoder actors vs `index_catalog`.

Each row is one whole build of the same catalog into a fresh model folder: read, encode
(with the actors' start-up and model loading), IVF shards (Ray) and save, timed end to end,
plus the encoding stage alone. The baseline is `index_catalog` on this machine, measured in
the same run; the ratio is Ray items/s over the baseline's. The encoders are loaded once
before timing, so exports and weights are on disk and in the page cache for every row.

On one small machine the Ray build cannot be faster (the same cores, plus Ray's scheduling,
object transfers and one model copy per actor): what this measures is the overhead of the
path that scales out, and that adding an actor on a machine with free cores speeds it up.

Usage:
    .venv/bin/python benchmarks/bench_ray.py                     # the sample catalog (489 items, images + text)
    .venv/bin/python benchmarks/bench_ray.py --items 120 --text-only
    .venv/bin/python benchmarks/bench_ray.py --quick             # 16 text-only items: a smoke test
    .venv/bin/python benchmarks/bench_ray.py --text-only --index ivf   # the merged shards are the folder's index

With `--index ivf` (or "auto" past its IVF threshold) both builds index into an IVF, and the
Ray build's merged shards become the folder's index instead of being built again on the driver.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoders.config import EncoderConfig  # noqa: E402
from encoders.item import ItemEncoder  # noqa: E402
from engine.config import EngineConfig  # noqa: E402
from engine.display import quiet_model_loading  # noqa: E402
from engine.distributed import ClusterConfig, build_on_ray, import_ray  # noqa: E402
from engine.indexing import index_catalog  # noqa: E402
from index.config import KINDS, IndexConfig  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog" / "items.csv"
HEADER = f"{'build':<22} {'items':>6} {'total s':>8} {'items/s':>8} {'encode s':>9} {'ratio':>6}"


def make_catalog(folder: Path, items: int | None, text_only: bool) -> Path:
    """The first `items` rows of the sample catalog (its images copied beside them unless text-only)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(SAMPLE)
    if items is not None:
        frame = frame.head(items)
    if text_only:
        frame = frame.drop(columns=["image"])
    else:
        (folder / "images").mkdir(parents=True, exist_ok=True)
        for name in frame["image"].dropna():
            shutil.copy(SAMPLE.parent / name, folder / name)
    path = folder / "items.csv"
    frame.to_csv(path, index=False)
    return path


def row(name: str, items: int, total: float, encode: float, baseline: float | None) -> str:
    rate = items / total
    ratio = f"{rate / baseline:6.2f}" if baseline else f"{1.0:6.2f}"
    return f"{name:<22} {items:>6} {total:>8.2f} {rate:>8.2f} {encode:>9.2f} {ratio}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, help="first N items of the sample catalog (default: all)")
    parser.add_argument("--text-only", action="store_true", help="drop the images: MiniLM only")
    parser.add_argument("--actors", default="1,2", help="actor counts to measure, comma-separated (default: 1,2)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster (default: 2)")
    parser.add_argument("--index", default="auto", choices=KINDS, help="index kind of both builds (default: auto)")
    parser.add_argument("--quick", action="store_true", help="16 text-only items: checks that it runs")
    args = parser.parse_args(argv)
    items, text_only = (16, True) if args.quick else (args.items, args.text_only)
    actors = [int(a) for a in args.actors.split(",")]
    config = EngineConfig(encoders=EncoderConfig(image=None if text_only else "efficientnet-lite0"),
                          index=IndexConfig(kind=args.index))
    quiet_model_loading()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Ray build vs one machine; load average {load:.2f}; cores {os.cpu_count()}; local Ray CPUs {args.cpus}; "
          f"index {args.index}", flush=True)
    ray = import_ray()
    started = not ray.is_initialized()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = make_catalog(Path(tmp) / "catalog", items, text_only)
        n = len(pd.read_csv(catalog))
        print(f"catalog: {n} items ({'text only' if text_only else 'images + text'}); loading the encoders once "
              "(exports and weights cached before timing) ...", flush=True)
        ItemEncoder.from_config(config.encoders, config.fusion)
        if started:
            t0 = time.perf_counter()
            ray.init(num_cpus=args.cpus, include_dashboard=False, object_store_memory=256 * 1024 * 1024,
                     logging_level="warning")
            print(f"local Ray cluster started in {time.perf_counter() - t0:.1f} s (not counted)", flush=True)
        rows: list[str] = []
        try:
            print(f"measuring: index_catalog (one machine) on {n} items ...", flush=True)
            print(HEADER, flush=True)
            t0 = time.perf_counter()
            engine, _ = index_catalog(catalog, Path(tmp) / "single", config, show_progress=False)
            total = time.perf_counter() - t0
            baseline = n / total
            encode = engine.last_build.seconds if engine.last_build is not None else float("nan")
            rows.append(row("index_catalog", n, total, encode, None))
            print(rows[-1], flush=True)
            for count in actors:
                print(f"measuring: build_on_ray with {count} actor(s) ...", flush=True)
                t0 = time.perf_counter()
                build = build_on_ray(catalog, Path(tmp) / f"ray-{count}", config, show_progress=False,
                                     cluster=ClusterConfig(num_actors=count, batch_size=max(4, n // (4 * count))))
                total = time.perf_counter() - t0
                rows.append(row(f"ray, {count} actor(s)", n, total, build.report.encode_seconds, baseline))
                print(rows[-1], flush=True)
                print(f"  IVF shards: {build.report.ivf}; index: {build.report.index_type}", flush=True)
        finally:
            if started:
                ray.shutdown()
    print("\nratio = items/s over index_catalog's, same catalog, same run")
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
