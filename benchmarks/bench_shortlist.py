"""How much of each dot-product model's exact top 100 its inverted file finds, on a real log.

Past `Recommender.ann_shortlist_items` items, `top_items` searches an inverted file
(`recommenders/shortlist.py`): one list per 1,000 items, nprobe tuned on 200 training users'
query vectors to 0.95 of their exact top 100. At 1M items (`bench_engine.py`) the simulated
log trains few items, whose vectors then sit in few lists, an easy case. Here each model
whose scores are a dot product is trained on a real log (ML-100K, the evaluation's temporal
split, validation for early stopping) and its file is built with `--items-per-list` items a
list (default 16: 105 lists over 1,682 films), so that a search probes a few lists of many,
as at scale. The probes are tuned as `top_items` tunes them (`Recommender._build_shortlist`:
the queries of 200 users and of their training items as histories), here on training users
without a test event; the rows are measured on the test users:

- nprobe tuned, of the lists;
- "user": the share of each test user's exact top 100 that the file finds (their own vector);
- "history": the same for their training items given as an anonymous history (fold-in, or
  the session read by a sequence model);
- NDCG@10 on the test split when a user's candidates are the file's top 100 + as many as the
  user has seen (then removed, as the engine asks `top_items`), against the exact top as many,
  and against every item. Training items are masked, validation items are not: a comparison
  of the three, not the evaluation's protocol (`evaluation.protocols.evaluate_full`).

`--hybrid`: after each model, the same row for the hybrid around it (`Hybrid.around`, default
weight 0.25): its blend with the films' MiniLM title vectors is one dot product too (see
`recommenders/hybrid.py`), over wider rows (the base's factors, the content vector, two more).

Usage:
    .venv/bin/python benchmarks/bench_shortlist.py
    .venv/bin/python benchmarks/bench_shortlist.py --models als,sasrec --items-per-list 8
    .venv/bin/python benchmarks/bench_shortlist.py --hybrid
    .venv/bin/python benchmarks/bench_shortlist.py --quick   # a synthetic log, two models, 2 epochs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_models import features, movielens, synthetic_catalogue  # noqa: E402
from recommenders import Recommender, create_model, list_models, model_class  # noqa: E402
from recommenders.data import InteractionData  # noqa: E402
from recommenders.hybrid import Hybrid  # noqa: E402
from recommenders.metrics import rank_users  # noqa: E402
from recommenders.splits import temporal_split  # noqa: E402

M = 100


def main(argv: list[str] | None = None) -> int:
    dot_product = [name for name in list_models() if model_class(name).dot_product_scores]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(dot_product), help=f"comma-separated, of {', '.join(dot_product)}")
    p.add_argument("--items-per-list", type=int, default=16)
    p.add_argument("--epochs", type=int, default=0, help="cap on each model's epochs (0: its default)")
    p.add_argument("--quick", action="store_true", help="a synthetic log of 3,000 items, ALS and SASRec, 2 epochs")
    p.add_argument("--hybrid", action="store_true", help="also each model's hybrid with the items' content vectors")
    args = p.parse_args(argv)
    names = ["als", "sasrec"] if args.quick else [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(dot_product))
    if unknown:
        p.error(f"--models: {', '.join(unknown)} do not score by a dot product; choose from {', '.join(dot_product)}")
    if args.quick:  # events at random times, so that the temporal split's test users have training events
        log = synthetic_catalogue(3_000, 300, 20)
        data = InteractionData.from_arrays(log.users, log.items, np.random.default_rng(0).permutation(len(log)),
                                           n_users=log.n_users, n_items=log.n_items)
    else:
        data = movielens()
    content = (film_vectors() if not args.quick else features(data.n_items)) if args.hybrid else None
    epochs = 2 if args.quick else args.epochs
    split = temporal_split(data)
    active = np.flatnonzero(np.diff(split.train.csr().indptr) > 0)
    # Test users with training events: a user without any has no query vector (nor history).
    test_users = np.intersect1d(np.flatnonzero(np.diff(split.test.csr().indptr) > 0), active)
    tuning = np.setdiff1d(active, test_users)
    if len(test_users) == 0 or len(tuning) == 0:
        p.error(f"the split leaves {len(test_users)} test users and {len(tuning)} others with training events")
    tuning = np.sort(np.random.default_rng(0).choice(tuning, min(len(tuning), 200), replace=False))
    print(f"{data.n_users:,} users x {data.n_items:,} items; {len(test_users):,} test users, probes tuned on "
          f"{len(tuning)} other training users; {args.items_per_list} items a list", flush=True)
    print(f"{'model':<16} {'fit s':>6} {'lists':>6} {'nprobe':>7} {'user':>6} {'history':>8} "
          f"{'NDCG file':>10} {'NDCG exact':>11} {'NDCG all':>9}", flush=True)
    for name in names:
        overrides = {"epochs": epochs} if epochs else {}
        start = time.perf_counter()
        model = create_model(name, show_progress=False, **overrides).fit(split.train, split.validation)
        fit_s = time.perf_counter() - start
        row(name, model, fit_s, split, test_users, tuning, args.items_per_list)
        if content is not None:
            hybrid = Hybrid.around(model, split.train, content, show_progress=False)
            row(f"hybrid({name})", hybrid, fit_s, split, test_users, tuning, args.items_per_list)
    return 0


def film_vectors() -> np.ndarray:
    """ML-100K's films as MiniLM vectors of 'Title (year). Genres: ...', in the rows of `movielens()`."""
    from evaluation.datasets import load_movielens_100k
    from evaluation.features import text_features

    ml = load_movielens_100k()
    return text_features(ml.item_texts().loc[ml.items["item_id"]].tolist())


def row(name: str, model: Recommender, fit_s: float, split, test_users: np.ndarray,  # type: ignore[no-untyped-def]
        tuning: np.ndarray, items_per_list: int) -> None:
    """Build the model's inverted file as `top_items` does, at `items_per_list`, and print its row."""
    # Benchmark-only peeks: the model builds its file as `top_items` does, at `items_per_list`.
    shortlist = model._build_shortlist(tuning, items_per_list)  # tuned for its top `inverted_file_m`, 100
    sequences = split.train.sequences()
    histories = [sequences[u] for u in test_users]  # the user's items, oldest first, as an anonymous visitor's
    found = {}
    queries = {"user": model._query_vectors(test_users, None), "history": model._query_vectors(None, histories)}
    for way, query in queries.items():
        exact = np.argsort(-model._dot_scores(query, None), axis=1, kind="stable")[:, :M]
        found[way] = np.mean([len(np.intersect1d(g, t)) / M for g, t in zip(shortlist.search(query, M), exact)])
    # NDCG@10 from each user's candidates: as the engine asks, M plus as many as the user has seen (removed after).
    scores = model._dot_scores(queries["user"], None)
    seen = split.train.csr()
    masked = {"file": np.full_like(scores, -np.inf), "exact": np.full_like(scores, -np.inf)}
    for r, user in enumerate(test_users):
        fetch = M + seen[user].nnz
        pools = {"file": shortlist.search(queries["user"][r : r + 1], fetch)[0],
                 "exact": np.argsort(-scores[r], kind="stable")[:fetch]}
        for way, pool in pools.items():
            pool = pool[pool >= 0]  # -1: the probed lists held too few items
            masked[way][r, pool] = scores[r, pool]
    ndcg = {way: ndcg_at_10(lambda batch, m=m: m[np.searchsorted(test_users, batch)], test_users, split)
            for way, m in masked.items()}
    ndcg["all"] = ndcg_at_10(lambda batch: scores[np.searchsorted(test_users, batch)], test_users, split)
    print(f"{name:<16} {fit_s:>6.0f} {shortlist.n_lists:>6} {shortlist.n_probe:>7} {found['user']:>6.3f} "
          f"{found['history']:>8.3f} {ndcg['file']:>10.4f} {ndcg['exact']:>11.4f} {ndcg['all']:>9.4f}", flush=True)


def ndcg_at_10(score, users: np.ndarray, split) -> float:  # type: ignore[no-untyped-def]
    """Mean NDCG@10 over `users` (sorted rows) of the test split, training items masked."""
    per_user, _ = rank_users(score, users, split.train.csr(), split.test.csr(), 10)
    return float(per_user["ndcg@10"].mean())


if __name__ == "__main__":
    raise SystemExit(main())
