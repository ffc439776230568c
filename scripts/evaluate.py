"""Evaluate registered recommender models on MovieLens-100K and print one table.

Every model is fitted with its default config on each split (temporal, the primary
protocol, and leave-last-out), plus once more for item cold start; the table gives
validation NDCG@10 (what picks the engine's model), full-catalogue test metrics,
sampled metrics, cold start, RMSE for rating models, coverage and train time, then
the validation winner. Logic lives in `evaluation.comparison`.

Example:
    python scripts/evaluate.py --out results/ml100k.json
    python scripts/evaluate.py --models popularity,itemknn,als --protocol full,sampled --splits temporal
    python scripts/evaluate.py --tune --budget 10          # tune every model on validation first
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.errors import EngineError
from engine.interactions import Interactions
from evaluation.comparison import PROTOCOLS, SPLITS, Comparison, ComparisonConfig, compare_models
from evaluation.datasets import load_movielens_100k
from evaluation.features import text_features
from evaluation.report import format_comparison
from recommenders import list_models, model_class

log = logging.getLogger("evaluate")
QUICK = {"epochs": 1, "show_progress": False}


def _names(value: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in value.split(",") if x.strip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ml-100k", choices=["ml-100k"])
    p.add_argument("--models", default=None, help="comma-separated model names (default: every registered model)")
    p.add_argument("--protocol", default=",".join(PROTOCOLS), help=f"comma-separated: {', '.join(PROTOCOLS)}")
    p.add_argument("--splits", default=",".join(SPLITS),
                   help="comma-separated splits to fit on; the first is primary (tuning, winner, train time)")
    p.add_argument("--split", default=None, choices=list(SPLITS), help="a single split (same as --splits SPLIT)")
    p.add_argument("--cold-split", default=ComparisonConfig.cold_split, choices=list(SPLITS),
                   help="split of the item cold-start fit")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--tune", action="store_true", help="grid-search each model on validation NDCG@10 first")
    p.add_argument("--budget", type=int, default=10, help="configurations tried per model with --tune")
    p.add_argument("--encoder", default="minilm-l6", help="text encoder for item content vectors")
    p.add_argument("--train-history-only", action="store_true",
                   help="score test users from training alone, not as served (see ComparisonConfig.served_history)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="worker processes, one thread each (fits run in parallel)")
    p.add_argument("--out", type=Path, default=None, help="write every number to this JSON file")
    p.add_argument("--quick", action="store_true", help="one epoch per model, tiny budget (for tests)")
    args = p.parse_args(argv)
    args.protocols = _names(args.protocol)
    bad = [x for x in args.protocols if x not in PROTOCOLS]
    if bad:
        p.error(f"unknown protocol(s) {bad}; valid: {', '.join(PROTOCOLS)}")
    args.split_names = (args.split,) if args.split else _names(args.splits)
    bad = [x for x in args.split_names if x not in SPLITS]
    if bad or not args.split_names:
        p.error(f"unknown split(s) {bad}; valid: {', '.join(SPLITS)}")
    if args.jobs < 1:
        p.error(f"--jobs must be a positive integer, got {args.jobs}")
    names = list_models()
    args.model_names = names if args.models is None else list(_names(args.models))
    unknown = [x for x in args.model_names if x not in names]
    if unknown:
        p.error(f"unknown model(s) {unknown}; valid: {', '.join(names)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        return _run(args, argv)
    except (EngineError, OSError) as exc:  # OSError: the data set or --out cannot be read or written
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    started = time.perf_counter()
    ml = load_movielens_100k()
    interactions = Interactions(ml.ratings.rename(columns={"rating": "weight"}))
    item_ids = ml.items["item_id"].tolist()
    data = interactions.to_data(interactions.user_vocabulary(), item_ids)
    features = None
    if any(model_class(n).uses_item_features for n in args.model_names):
        features = text_features(ml.item_texts().loc[item_ids].tolist(), encoder=args.encoder)

    config = ComparisonConfig(
        splits=args.split_names,
        protocols=args.protocols,
        k=args.k,
        cold_split=args.cold_split,
        tune_budget=(2 if args.quick else args.budget) if args.tune else 0,
        served_history=not args.train_history_only,
        seed=args.seed,
        jobs=args.jobs,
    )
    # Bars from several workers would overwrite each other: the log lines say what runs.
    overrides: dict[str, Any] = {"show_progress": not args.quick and args.jobs == 1 and sys.stderr.isatty()}
    if args.quick:
        overrides.update(QUICK)
    command = " ".join(["scripts/evaluate.py", *(argv if argv is not None else sys.argv[1:])])

    def save(comparison: Comparison, complete: bool = False) -> None:
        if args.out is None:
            return
        report = {"dataset": args.dataset, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "command": command, "complete": complete, "seed": args.seed, "k": args.k, "tuned": args.tune,
                  "quick": args.quick, "total_seconds": time.perf_counter() - started, **comparison.as_dict()}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2, default=_plain))
        tmp.replace(args.out)  # a partial file is always whole JSON

    comparison = compare_models(data, args.model_names, config, features, overrides, on_model=save)
    save(comparison, complete=True)
    print(format_comparison(comparison))
    print(f"Total time: {time.perf_counter() - started:.0f} s.")
    return 0


def _plain(value: Any) -> Any:
    """JSON for NumPy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


if __name__ == "__main__":
    raise SystemExit(main())
