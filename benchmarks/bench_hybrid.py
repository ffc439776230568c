"""The hybrid's top 100 from its inverted file against scoring every item, with wide content vectors.

A hybrid over a dot-product base searches an inverted file (`recommenders/hybrid.py`). Its
content vectors up to `FILE_MAX_CONTENT_DIM` dims go into the file whole. Wider ones (the
engine's fused image + text vectors are 1,664-d) go in as their projection on the content's
`REDUCED_CONTENT_DIM` main directions, a proxy whose best 10 n items are then scored exactly.
This measures the second case without an engine (an HNSW over 1,664-d vectors takes long to
build): synthetic clustered content vectors (`bench_index.clustered_embeddings`), a simulated
log (Zipf items, 2,000 users x 20 events), the base fitted for 2 epochs, weight 0.25. For 50
users it prints the share of the exact top 100 (the blend over every item) that `top_items`
finds, and both times, p50, in the same run (the ratio is the comparison).

Usage:
    .venv/bin/python benchmarks/bench_hybrid.py             # 200k items, 1,664-d, ALS and SASRec
    .venv/bin/python benchmarks/bench_hybrid.py --items 1000000 --bases als
    .venv/bin/python benchmarks/bench_hybrid.py --quick     # 5,000 items, 600-d, ALS
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_index import clustered_embeddings  # noqa: E402
from recommenders import create_model  # noqa: E402
from recommenders.data import InteractionData  # noqa: E402
from recommenders.hybrid import Hybrid  # noqa: E402

N = 100


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=1664)
    p.add_argument("--bases", default="als,sasrec", help="comma-separated dot-product models to blend")
    p.add_argument("--quick", action="store_true", help="5,000 items of 600 dims, ALS only")
    args = p.parse_args(argv)
    n_items, dim, bases = (5_000, 600, ["als"]) if args.quick else (args.items, args.dim, args.bases.split(","))
    print(f"generating {n_items:,} content vectors of dim {dim} and a log of 2,000 users x 20 events ...", flush=True)
    features = clustered_embeddings(n_items, dim)
    rng = np.random.default_rng(0)
    users, per_user = 2000, 20
    items = np.minimum(rng.zipf(1.3, users * per_user) - 1, n_items - 1)
    log = InteractionData.from_arrays(np.repeat(np.arange(users), per_user), items, np.arange(users * per_user),
                                      n_users=users, n_items=n_items)
    who = rng.choice(users, 50, replace=False)
    header = f"{'base':<8} {'fit s':>6} {'file s':>7} {'found':>6} {'file ms':>8} {'every item ms':>14} {'ratio':>6}"
    print(header + "  file", flush=True)
    for name in bases:
        start = time.perf_counter()
        base = create_model(name.strip(), show_progress=False, epochs=2).fit(log)
        fit_s = time.perf_counter() - start
        hybrid = Hybrid.around(base, log, features, show_progress=False)
        hybrid.ann_shortlist_items = 1  # the file at any size; from 200k items it is the default anyway
        start = time.perf_counter()
        hybrid.warm_up()
        file_s = time.perf_counter() - start
        found, t_file, t_every = [], [], []
        for user in who.tolist():
            start = time.perf_counter()
            top = hybrid.top_items(user=user, n=N)
            t_file.append(time.perf_counter() - start)
            start = time.perf_counter()
            exact = np.argsort(-hybrid.score([user])[0], kind="stable")[:N]
            t_every.append(time.perf_counter() - start)
            found.append(len(np.intersect1d(top, exact)) / N)
        shortlist = hybrid.inverted_file
        assert shortlist is not None
        p_file, p_every = np.median(t_file) * 1e3, np.median(t_every) * 1e3
        print(f"{name:<8} {fit_s:>6.0f} {file_s:>7.1f} {np.mean(found):>6.3f} {p_file:>8.2f} {p_every:>14.2f} "
              f"{p_file / p_every:>6.3f}  {shortlist.describe()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
