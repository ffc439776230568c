"""Latency of the public API: `Engine.similar` and `Engine.recommend`, one request at a time.

similar(): synthetic catalogs of 10k and 100k items whose 1,664-d vectors are
clustered like fused image+text embeddings (see bench_index.py); the engine picks
its index by size (Flat below `hnsw_threshold`, HNSW above) and an exact Flat
engine over the same vectors is the baseline, in the same run. recall@10 is the
picked index's overlap with the exact answer.

recommend(): the 100k-item catalog, a simulated log (Zipf items, 2,000 users x 20
events), the default model fitted for a couple of epochs (a latency test, not a
quality one), 200 candidates per request, for a known user.

--items N: one synthetic catalog of N items (e.g. 1,000,000, at --dim 128 so that the
vectors fit beside everything else on a 24 GiB machine; --data films: the real MiniLM film
embeddings of bench_ann.py repeated with noise instead), the default index config (auto:
structure by size, tuned to recall@10 0.95); p50/p95 of similar() (recall@10 against the
exact answer) and of recommend(history=10 items) (an anonymous visitor: the content path,
whose searches stop once no older history item can place; beside it, request by request, the
same requests searching every history item, and whether the answers agree), plus the time to
build the engine (catalog, then index) and the first (cold) call of each.
Each row also gives the process's CPU time per request (what an idle core would take), and
the baseline in the same run: recommend()'s candidate search on one FAISS thread, as the
engine runs it, against FAISS's default threads, then at narrower HNSW beams with its
recall of the exact neighbours (not a default: the speed a beam would buy). Last, the
recommend() rows of the 100k run at this size: a known user, with the model fitted on the
simulated log (2,000 users x 20 events): the default (no content search when the model's own
top 100 decide the top 10), the same with the content search always run (the old path, as
the baseline), and content candidates alone; each with the share of the model's exact top 10.

Usage:
    .venv/bin/python benchmarks/bench_engine.py            # 10k and 100k
    .venv/bin/python benchmarks/bench_engine.py --quick    # 10k, fewer queries, no recommend
    .venv/bin/python benchmarks/bench_engine.py --items 1000000 --dim 128
    .venv/bin/python benchmarks/bench_engine.py --items 1000000 --dim 128 --data films
    .venv/bin/python benchmarks/bench_engine.py --items 1000000 --dim 128 --data films --model sasrec
    .venv/bin/python benchmarks/bench_engine.py --items 1000000 --dim 128 --data films --model hybrid --base sasrec
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_ann import data_set  # noqa: E402
from benchmarks.bench_index import clustered_embeddings  # noqa: E402
from engine import Catalog, Engine, EngineConfig, Interactions  # noqa: E402
from engine.personalise import Personaliser  # noqa: E402
from engine.state import EngineState  # noqa: E402
from index import IdFilter, IndexConfig, VectorIndex, create_index  # noqa: E402
from recommenders import list_models  # noqa: E402


def synthetic_engine(vectors: np.ndarray, config: EngineConfig, catalog: Catalog | None = None) -> Engine:
    """An engine over given vectors (no encoders needed for similar/recommend); item i is "item-i"."""
    catalog = catalog if catalog is not None else synthetic_catalog(len(vectors))
    index = create_index(vectors.shape[1], config.index)
    index.add([f"item-{i}" for i in range(len(vectors))], vectors)
    return Engine(config, EngineState(catalog, index))


def timed(calls: list, fn, cpu: bool = False):  # type: ignore[no-untyped-def]
    """Results and wall seconds per call; with `cpu`, (wall, process CPU) seconds per call."""
    out, seconds, cpu_s = [], np.empty(len(calls)), np.empty(len(calls))
    for i, arg in enumerate(calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        out.append(fn(arg))
        seconds[i], cpu_s[i] = time.perf_counter() - start, time.process_time() - start_cpu
    return out, ((seconds, cpu_s) if cpu else seconds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--dim", type=int, default=1664)
    p.add_argument("--items", type=int, default=0, help="one catalog of this many items; see the docstring")
    p.add_argument("--data", choices=("clustered", "films"), default="clustered",
                   help="with --items: synthetic clustered vectors, or real film embeddings repeated with noise")
    p.add_argument("--model", choices=list_models(), default="neumf", help="the model of the known-user rows")
    p.add_argument("--base", choices=sorted(set(list_models()) - {"hybrid"}), default="als",
                   help="with --model hybrid: the CF model it blends with the item vectors")
    args = p.parse_args(argv)
    # Two epochs: these rows measure serving, not quality. A hybrid trains its base for them.
    fit = {"base": args.base, "base_config": {"epochs": 2}} if args.model == "hybrid" else {"epochs": 2}
    if args.items:
        return bench_large(args.items, args.dim, args.queries, args.data, args.model, fit)
    sizes = [10_000] if args.quick else [10_000, 100_000]
    n_q = 100 if args.quick else args.queries
    rng = np.random.default_rng(0)
    print(f"{'request':<10} {'items':>8} {'index':<22} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>10} {'p50 vs exact':>13}")
    for n in sizes:
        vectors = clustered_embeddings(n, args.dim)
        exact = synthetic_engine(vectors, EngineConfig(index=IndexConfig(kind="flat")))
        picked = synthetic_engine(vectors, EngineConfig())
        queries = [f"item-{i}" for i in rng.choice(n, n_q, replace=False)]
        truth, t_exact = timed(queries, lambda q: [m.item_id for m in exact.similar(q, k=10)])
        found, t_auto = timed(queries, lambda q: [m.item_id for m in picked.similar(q, k=10)])
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)])
        kind = getattr(picked.index, "structure", type(picked.index).__name__)
        print(f"{'similar':<10} {n:>8,} {'exact flat':<22} {np.median(t_exact)*1e3:>8.2f} {np.percentile(t_exact, 99)*1e3:>8.2f} {1.0:>10.3f} {1.0:>13.2f}")
        print(f"{'similar':<10} {n:>8,} {'auto: ' + str(kind):<22} {np.median(t_auto)*1e3:>8.2f} {np.percentile(t_auto, 99)*1e3:>8.2f} {recall:>10.3f} {np.median(t_auto)/np.median(t_exact):>13.2f}")
        if n == sizes[-1] and not args.quick:
            bench_recommend(picked, vectors, rng, n_q, args.model, fit)
    return 0


def bench_large(n: int, dim: int, n_q: int, data: str = "clustered", model: str = "neumf",
                fit: dict | None = None) -> int:
    """similar() and recommend(history=...) latency on one synthetic catalog of `n` items.

    Prints, as each is measured: the build split into catalog and index, the first call of
    each request (it builds the catalog's field lists), the latency rows, and the baseline:
    the candidate search of recommend() (10 history items x 20 neighbours, over-fetch 3) on
    one FAISS thread, as the engine runs it, against FAISS's default thread count.
    """
    import faiss

    print(f"generating {n:,} {data} vectors of dim {dim} ...", flush=True)
    vectors, _, label = data_set(data, n, dim, 0)
    print(label, flush=True)
    print(f"building the catalog of {n:,} items ...", flush=True)
    start = time.perf_counter()
    catalog = synthetic_catalog(n)
    catalog_s = time.perf_counter() - start
    print(f"catalog built in {catalog_s:.1f} s; building the index (default config) ...", flush=True)
    start = time.perf_counter()
    engine = synthetic_engine(vectors, EngineConfig(), catalog)
    index_s = time.perf_counter() - start
    describe = getattr(engine.index, "describe", lambda: type(engine.index).__name__)()
    print(f"engine over {n:,} items built in {catalog_s + index_s:.0f} s (catalog {catalog_s:.1f} s + index "
          f"{index_s:.1f} s): {describe}", flush=True)
    rng = np.random.default_rng(0)
    rows = rng.choice(n, n_q, replace=False)
    queries = [f"item-{i}" for i in rows]
    histories = [[f"item-{i}" for i in rng.choice(n, 10, replace=False)] for _ in range(n_q)]
    _, first_similar = timed(queries[:1], lambda q: engine.similar(q, k=10))
    _, first_recommend = timed(histories[:1], lambda h: engine.recommend(history=h, k=10))
    print(f"first calls (cold): similar() {first_similar[0]*1e3:.1f} ms, recommend() {first_recommend[0]*1e3:.1f} ms",
          flush=True)
    print(f"{'request':<44} {'items':>10} {'p50 ms':>8} {'p95 ms':>8} {'p50 CPU ms':>10} {'recall':>7}", flush=True)
    found, t_similar = timed(queries, lambda q: [m.item_id for m in engine.similar(q, k=10)], cpu=True)
    _, exact = faiss.knn(vectors[rows], vectors, 11, metric=faiss.METRIC_INNER_PRODUCT)
    truth = [[f"item-{j}" for j in row if j != own][:10] for row, own in zip(exact.tolist(), rows.tolist())]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
    large_row("similar()", n, t_similar, f"{recall:.3f}")
    recommend_history(engine, histories, n)
    searches = {}
    for label, threads in (("candidate search, 1 FAISS thread (engine)", 1),
                           (f"candidate search, {faiss.omp_get_max_threads()} FAISS threads", 0)):
        searches[threads] = candidate_search_times(engine, histories, threads)[1]
        large_row(label, n, searches[threads])
    ratio = np.median(searches[1][0]) / np.median(searches[0][0])
    print(f"(one thread / default threads, p50: {ratio:.2f}; load average {os.getloadavg()[0]:.1f})", flush=True)
    candidate_beams(engine, vectors, histories[:100])
    print("recommend(user) with a trained model (the rows of the 100k run, at this size):", flush=True)
    bench_recommend(engine, vectors, rng, n_q, model, fit)
    return 0


def recommend_history(engine: Engine, histories: list[list[str]], n: int) -> None:
    """recommend(history=10 items) as the engine answers it (its searches stop once no older history item
    can place in the top 10), beside the same requests searching every history item (the baseline), request
    by request; then whether the answers agree, and how many history items were searched."""
    answers: dict[bool, list] = {True: [], False: []}
    seconds: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for history in histories:
        for stop in (True, False):
            with every_history_item_searched(not stop):
                got, (wall, cpu) = timed([history], lambda h: engine.recommend(history=h, k=10), cpu=True)
            answers[stop].append([(m.item_id, m.because) for m in got[0]])
            seconds[stop].append((wall[0], cpu[0]))
    for stop, label in ((True, "recommend(history=10 items)"), (False, "  the same, every history item searched")):
        large_row(label, n, tuple(np.array(seconds[stop]).T))
    same = np.mean([a == b for a, b in zip(answers[True], answers[False])])
    searched: list[int] = []
    search = type(engine.index).search

    def counted(index: VectorIndex, queries: np.ndarray, *args, **kwargs):  # type: ignore[no-untyped-def]
        searched.append(len(np.atleast_2d(queries)))
        return search(index, queries, *args, **kwargs)

    with patch.object(type(engine.index), "search", counted):  # benchmark-only: counts the searched items
        for history in histories[:100]:
            engine.recommend(history=history, k=10)
    print(f"(recommend(history): {same:.3f} of the answers equal to searching every history item (items and "
          f"because); {sum(searched) / min(len(histories), 100):.2f} of 10 history items searched on average)",
          flush=True)


def every_history_item_searched(on: bool) -> AbstractContextManager:
    """With `on`, content candidates search every history item even for a top-k answer (benchmark-only:
    the method patched on the class for the `with` block)."""
    if not on:
        return nullcontext()
    method = Personaliser.content_candidates
    return patch.object(Personaliser, "content_candidates",
                        lambda self, history, id_filter, k=None: method(self, history, id_filter))


def candidate_beams(engine: Engine, vectors: np.ndarray, histories: list[list[str]]) -> None:
    """Not a default: the candidate search at narrower HNSW beams, with its recall of the exact 20 neighbours."""
    import faiss

    index, config = engine.index, engine.config.recommend
    if getattr(index, "structure", "") != "hnsw":
        return
    per_item = max(10, config.n_candidates // 10)
    rows = [np.array([int(i.split("-")[1]) for i in h]) for h in histories]
    _, exact = faiss.knn(vectors[np.concatenate(rows)], vectors, per_item + 10, metric=faiss.METRIC_INNER_PRODUCT)
    truth = []  # per history, per item: its exact `per_item` neighbours outside the history
    for i, r in enumerate(rows):
        seen = set(r.tolist())
        truth.append([[j for j in row if j not in seen][:per_item] for row in exact[i * 10:(i + 1) * 10].tolist()])
    tuned = index.tuning.value if index.tuning is not None else index.config.ef_search
    for beam in sorted({tuned, 64, 32}, reverse=True):
        fork = index.with_search_setting(beam)
        found, seconds = candidate_search_times(engine, histories, 1, fork)
        hits = [len({int(i.split("-")[1]) for i in got} & set(want)) / per_item
                for f, t in zip(found, truth) for got, want in zip(f, t)]
        large_row(f"candidate search, efSearch {beam}" + (" (tuned)" if beam == tuned else ""), len(index), seconds,
                  f"{np.mean(hits):.3f}")


def synthetic_catalog(n: int) -> Catalog:
    """A catalog of `n` items: id, title, one of 20 categories, a price."""
    ids = [f"item-{i}" for i in range(n)]
    frame = pd.DataFrame({"id": ids, "title": [f"Item {i}" for i in range(n)],
                          "category": [f"cat-{i % 20}" for i in range(n)], "price": np.round(np.linspace(1, 100, n), 2)})
    return Catalog(frame, source="synthetic")


def large_row(label: str, n: int, seconds: tuple[np.ndarray, np.ndarray], recall: str = "") -> None:
    """One row: wall p50/p95 and the p50 of CPU time spent by the process (what an idle machine would take)."""
    p50, p95 = np.percentile(seconds[0], [50, 95]) * 1e3
    print(f"{label:<44} {n:>10,} {p50:>8.2f} {p95:>8.2f} {np.median(seconds[1])*1e3:>10.2f} {recall:>7}", flush=True)


def candidate_search_times(engine: Engine, histories: list[list[str]], threads: int,
                           index: VectorIndex | None = None) -> tuple[list, tuple[np.ndarray, np.ndarray]]:
    """recommend()'s index search per history (ids found; wall and CPU seconds), on `threads` FAISS threads
    (0: FAISS's default), with the engine's index or `index`."""
    import faiss

    index, config = index or engine.index, engine.config.recommend
    per_item = max(10, config.n_candidates // 10)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads or previous)
    try:
        found, seconds = timed(histories, lambda h: index.search(
            index.vectors(h), per_item, IdFilter(exclude=frozenset(h)), rerank_factor=config.candidate_rerank_factor)[1],
            cpu=True)
    finally:
        faiss.omp_set_num_threads(previous)
    return [f.tolist() for f in found], seconds


def bench_recommend(engine: Engine, vectors: np.ndarray, rng: np.random.Generator, n_q: int, model: str,
                    fit: dict | None = None) -> None:
    """recommend(user) with `model` fitted on a simulated log (`fit`: its config fields; default 2 epochs)."""
    n = len(engine.index)
    users, per_user = 2000, 20
    items = np.minimum(rng.zipf(1.3, users * per_user) - 1, n - 1)
    log = pd.DataFrame({"user_id": np.repeat([f"u{i}" for i in range(users)], per_user),
                        "item_id": [f"item-{i}" for i in items],
                        "timestamp": np.arange(users * per_user)})
    # A named model, not the default "auto": the rows measure serving with one known model.
    start = time.perf_counter()
    engine.fit(Interactions(log), model, show_progress=False, **(fit or {"epochs": 2}))
    fit_s = time.perf_counter() - start
    who = [f"u{i}" for i in rng.choice(users, n_q)]
    shortlist_recall(engine, who)
    candidate_searches(engine, vectors, rng)
    default = engine.config
    n_model = default.recommend.model_candidates
    no_model = replace(default, recommend=replace(default.recommend, model_candidates=0))
    # (label, config, whether the content search runs even when the model's own candidates decide the top 10:
    # the path of every request before that check, as the baseline). The settings alternate request by
    # request, so that a slower spell of the machine hits them alike.
    settings = [(f"{model}, +{n_model} model", default, False),
                (f"{model}, +{n_model} model, content searched", default, True),
                (f"{model}, +0 model", no_model, False)]
    seconds: dict[str, list[float]] = {label: [] for label, _, _ in settings}
    answers: dict[str, list[list[str]]] = {label: [] for label, _, _ in settings}
    for user in who:
        for label, config, search_content in settings:
            engine.config = config
            with content_always_searched(search_content):
                got, t = timed([user], lambda u: engine.recommend(u, k=10))
            seconds[label] += t.tolist()
            answers[label].append([m.item_id for m in got[0]])
    engine.config = default
    for label, t in seconds.items():
        print(f"{'recommend':<10} {n:>8,} {label:<36} {np.median(t)*1e3:>8.2f} {np.percentile(t, 99)*1e3:>8.2f}")
    exact = exact_top(engine, who, 10)
    for label, got in answers.items():
        same = np.mean([len(set(g) & set(e)) / len(e) for g, e in zip(got, exact)])
        print(f"(recommend, {label}: {same:.3f} of the model's exact top 10, seen items excluded)")
    print(f"(recommend: {default.recommend.n_candidates} content candidates; fit ({fit or 'epochs 2'}) took "
          f"{fit_s:.0f} s)")


def content_always_searched(on: bool) -> AbstractContextManager:
    """With `on`, every known-user request also searches content neighbours, as before the model's own
    candidates could decide its top k (benchmark-only: the private check patched for the `with` block)."""
    return patch.object(Personaliser, "_decided_by_model", lambda *args: None) if on else nullcontext()


def exact_top(engine: Engine, who: list[str], k: int) -> list[list[str]]:
    """Each user's k best items by the model's score over every item (as `recommend` scores them: a session
    model from the history), the training history excluded."""
    trained = engine.trained
    assert trained is not None
    model, out = trained.model, []
    for user in who:
        seen = [trained.item_row(i) for i in trained.history_of(user)]
        raw = model.score_history([seen])[0] if model.scores_sessions else model.score([trained.user_row(user)])[0]
        scores = np.asarray(raw, dtype=np.float64)
        scores[seen] = -np.inf
        out.append([trained.item_ids[r] for r in np.argsort(-scores, kind="stable")[:k]])
    return out


def candidate_searches(engine: Engine, vectors: np.ndarray, rng: np.random.Generator, n_requests: int = 100) -> None:
    """Content-candidate search (10 history items x 20 neighbours) by HNSW over-fetch factor."""
    per_item = 20
    requests = [rng.choice(len(vectors), 10, replace=False) for _ in range(n_requests)]
    for factor in (engine.config.recommend.candidate_rerank_factor, engine.config.index.rerank_factor):
        engine.index.search(vectors[requests[0]], per_item, rerank_factor=factor)  # warm-up
        answers, seconds = timed(requests, lambda rows: engine.index.search(vectors[rows], per_item, rerank_factor=factor)[1])
        # Exact answers afterwards: BLAS threads left spinning by a matmul would slow the timed searches.
        found = []
        for rows, got in zip(requests, answers):
            exact = np.argsort(-(vectors[rows] @ vectors.T), axis=1)[:, :per_item]
            found += [len(set(a) & {f"item-{j}" for j in b}) / per_item for a, b in zip(got.tolist(), exact)]
        print(f"(content candidates, over-fetch {factor}x: {np.median(seconds)*1e3:.2f} ms p50 for 10 searches, "
              f"{np.mean(found):.3f} of the exact {per_item} neighbours)")


def shortlist_recall(engine: Engine, who: list[str]) -> None:
    """How many of the model's exact top items (scoring every item) its `top_items` finds, and how fast.

    For a model that shortlists from an inverted file past a size (`ann_shortlist_items`), the
    same requests are also answered by its pass over every item (NeuMF's: its proxy's), as the baseline.
    """
    trained = engine.trained
    assert trained is not None
    model, n = trained.model, engine.config.recommend.model_candidates
    if n <= 0:
        return
    start = time.perf_counter()
    model.top_items(user=trained.user_row(who[0]), n=n)
    print(f"(model top {n} items, first call: {time.perf_counter() - start:.2f} s; it builds any shortlist index)",
          flush=True)
    rows = [trained.user_row(user) for user in who[:50]]
    every, t_exact = timed(rows, lambda row: model.score([row])[0])
    exact = [np.argsort(-scores, kind="stable")[:n] for scores in every]
    ways = {"top_items": None}
    if model.inverted_file is not None:
        print(f"({model.name}: {model.inverted_file.describe()})", flush=True)
        ways = {"top_items (inverted file)": model.ann_shortlist_items,
                "top_items (pass over every item)": model.n_items + 1}
    for label, items_from in ways.items():
        if items_from is not None:
            model.ann_shortlist_items = items_from
        found, t_short = timed(rows, lambda row: model.top_items(user=row, n=n))
        recall = np.mean([len(set(f.tolist()) & set(e.tolist())) / n for f, e in zip(found, exact)])
        print(f"(model top {n} items: {label} finds {recall:.3f} of the exact top {n} in "
              f"{np.median(t_short)*1e3:.2f} ms p50, against {np.median(t_exact)*1e3:.2f} ms for scoring every item)")
    vars(model).pop("ann_shortlist_items", None)  # back to the class's threshold


if __name__ == "__main__":
    raise SystemExit(main())
