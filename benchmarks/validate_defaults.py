"""Validation NDCG@10 of a model's candidate default settings, over seeds, on ML-100K and Instacart (not a speed test).

How a default is chosen here: each named variant of a model's settings is fitted on the
temporal split's training part of each public log (early stopping on its validation part, as
`scripts/evaluate.py` does) with several seeds, and scored on that validation part exactly as
the evaluation scores its "val NDCG@10" column (`evaluation.protocols.evaluate_full` with the
validation as the held-out part). The test part is never read. Each row is printed as soon as
it is measured, then a table of the mean and spread per variant and log.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/validate_defaults.py --model multvae --seeds 0,1,2 --jobs 2
    .venv/bin/python benchmarks/validate_defaults.py --model neumf --variants n_neg_1,n_neg_4 --datasets ml-100k
    .venv/bin/python benchmarks/validate_defaults.py --quick      # tiny synthetic log, one epoch (for tests)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name -> settings that differ from the current defaults ({} is the current default).
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "multvae": {
        "current": {},
        # Before the second speed round: batches of 100 users, lr 1e-3, no warm-up, 200 epochs.
        "b100_lr1e-3": {"batch_size": 100, "lr": 1e-3, "warmup_epochs": 0, "epochs": 200},
        # RecBole's defaults: batches of 2,048 users, lr 1e-3.
        "b2048_lr1e-3": {"lr": 1e-3},
        "b512_lr1e-3": {"batch_size": 512, "lr": 1e-3, "warmup_epochs": 20, "epochs": 200},
        "b2048_anneal300": {"anneal_steps": 300},
        # The output layer's products in float32 on every CPU (before "auto" chose bfloat16).
        "float32": {"decoder_precision": "float32"},
    },
    "multdae": {
        "current": {},
        "float32": {"decoder_precision": "float32"},
        "b2048_lr3e-3": {"batch_size": 2048, "lr": 3e-3, "warmup_epochs": 60, "epochs": 300},
    },
    "neumf": {
        "current": {},
        "n_neg_1": {"n_negatives": 1},
        "n_neg_2": {"n_negatives": 2},
        "n_neg_4": {"n_negatives": 4},
    },
}


def load_log(name: str) -> tuple[Any, np.ndarray | None]:
    """The public log `name` as `InteractionData` (as `scripts/evaluate.py` reads it) and its items' text vectors."""
    from engine import Interactions
    from evaluation.datasets import DATASETS
    from evaluation.features import text_features

    dataset = DATASETS[name].load()
    interactions = Interactions(dataset.ratings.rename(columns={"rating": "weight"}))
    item_ids = dataset.items["item_id"].tolist()
    data = interactions.to_data(interactions.user_vocabulary(), item_ids)
    return data, text_features(dataset.item_texts().loc[item_ids].tolist(), encoder="minilm-l6")


def quick_log() -> tuple[Any, np.ndarray]:
    """A small synthetic log (200 users, 300 items) and random item vectors."""
    from recommenders.data import InteractionData

    rng = np.random.default_rng(0)
    users = rng.integers(0, 200, 4000)
    items = np.minimum(rng.zipf(1.5, 4000) - 1, 299)
    data = InteractionData.from_arrays(users, items, n_users=200, n_items=300)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    return data, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def measure(log_name: str, model: str, settings: dict[str, Any], seed: int, quick: bool) -> dict[str, Any]:
    """Fit one variant with one seed on the temporal split; its validation NDCG@10, epochs and seconds."""
    import torch

    from evaluation.protocols import evaluate_full, time_fit
    from recommenders.registry import create_model
    from recommenders.splits import Split, temporal_split

    torch.set_num_threads(1)
    data, features = quick_log() if quick else load_log(log_name)
    split = temporal_split(data)
    settings = {**settings, "epochs": 1} if quick else settings
    fitted, seconds = time_fit(create_model(model, seed=seed, show_progress=False, **settings), split,
                               features)
    empty = split.train.subset(np.zeros(len(split.train), dtype=bool))
    ndcg = evaluate_full(fitted, Split(split.train, empty, split.validation), 10, cutoffs=()).ndcg
    return {"ndcg": ndcg, "epochs": fitted.training.epochs_trained, "best": fitted.training.best_epoch + 1,
            "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    """Measure, print each row, then the table of means."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="multvae", choices=sorted(VARIANTS))
    p.add_argument("--variants", default=None, help="comma-separated variant names (default: all of the model's)")
    p.add_argument("--datasets", default="ml-100k,instacart")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--jobs", type=int, default=1, help="worker processes, one thread each")
    p.add_argument("--quick", action="store_true", help="a tiny synthetic log, one epoch, two variants, one seed")
    args = p.parse_args(argv)
    variants = VARIANTS[args.model]
    names = args.variants.split(",") if args.variants else list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        p.error(f"unknown variants {unknown} for {args.model}; known: {sorted(variants)}")
    datasets = ["synthetic"] if args.quick else args.datasets.split(",")
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    if args.quick:
        names = names[:2]
    tasks = [(d, v, s) for d in datasets for v in names for s in seeds]
    print(f"{args.model}: {len(tasks)} fits ({len(datasets)} logs x {len(names)} variants x {len(seeds)} seeds), "
          f"{args.jobs} worker(s); validation NDCG@10 of the temporal split", flush=True)
    from evaluation.workers import run_tasks

    started = time.perf_counter()
    results: dict[tuple[str, str], list[float]] = {}
    jobs = [(measure, d, args.model, variants[v], s, args.quick) for d, v, s in tasks]
    for i, ((d, v, s), r) in enumerate(zip(tasks, run_tasks(jobs, args.jobs)), 1):
        results.setdefault((d, v), []).append(r["ndcg"])
        print(f"[{i}/{len(tasks)}] {d:10s} {v:18s} seed {s}: val NDCG@10 {r['ndcg']:.4f} "
              f"(kept epoch {r['best']} of {r['epochs']}, {r['seconds']:.1f} s)", flush=True)
    print(f"\n{'log':10s} {'variant':18s} {'mean':>7s} {'min':>7s} {'max':>7s}  settings")
    for d in datasets:
        for v in names:
            xs = results[(d, v)]
            print(f"{d:10s} {v:18s} {statistics.mean(xs):7.4f} {min(xs):7.4f} {max(xs):7.4f}  {variants[v] or '(defaults)'}")
    print(f"Total time: {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
