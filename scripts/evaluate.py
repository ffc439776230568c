"""Evaluate registered recommender models on MovieLens-100K and print one table.

Example:
    python scripts/evaluate.py --models popularity,itemknn,als --protocol full,sampled --out results.json
    python scripts/evaluate.py --tune --budget 10          # tune every model on validation first
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.datasets import load_movielens_100k
from engine.evaluation import (
    default_grid,
    evaluate_cold_items,
    evaluate_full,
    evaluate_sampled,
    text_features,
    time_fit,
    tune,
)
from engine.interactions import Interactions
from engine.models import create_model, list_models
from engine.models.registry import MODELS
from engine.splits import Split, leave_last_out, temporal_split

log = logging.getLogger("evaluate")
PROTOCOLS = ("full", "sampled", "cold")
QUICK = {"epochs": 1, "show_progress": False}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ml-100k", choices=["ml-100k"])
    p.add_argument("--models", default=None, help="comma-separated model names (default: every registered model)")
    p.add_argument("--protocol", default="full", help="comma-separated: full, sampled, cold")
    p.add_argument(
        "--split",
        default="temporal",
        choices=["temporal", "leave-last-out"],
        help="split for the full and cold protocols (sampled always uses leave-last-out)",
    )
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--tune", action="store_true", help="grid-search each model on validation NDCG@10 first")
    p.add_argument("--budget", type=int, default=10, help="configurations tried per model with --tune")
    p.add_argument("--encoder", default="minilm-l6", help="text encoder for item content vectors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write every number to this JSON file")
    p.add_argument("--quick", action="store_true", help="one epoch per model, tiny budget (for tests)")
    args = p.parse_args(argv)
    args.protocols = [x.strip() for x in args.protocol.split(",") if x.strip()]
    bad = [x for x in args.protocols if x not in PROTOCOLS]
    if bad:
        p.error(f"unknown protocol(s) {bad}; valid: {', '.join(PROTOCOLS)}")
    names = list_models()
    args.model_names = names if args.models is None else [x.strip() for x in args.models.split(",") if x.strip()]
    unknown = [x for x in args.model_names if x not in names]
    if unknown:
        p.error(f"unknown model(s) {unknown}; valid: {', '.join(names)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ml = load_movielens_100k()
    interactions = Interactions(ml.ratings.rename(columns={"rating": "weight"}))
    item_ids = ml.items["item_id"].tolist()
    data = interactions.to_data(interactions.user_vocabulary(), item_ids)
    splits = {"temporal": temporal_split(data), "leave-last-out": leave_last_out(data)}
    main_split = splits[args.split]
    features = None
    if any(MODELS[n].uses_item_features for n in args.model_names):
        features = text_features(ml.item_texts().loc[item_ids].tolist(), encoder=args.encoder)

    fixed: dict[str, Any] = {"seed": args.seed, "show_progress": not args.quick and sys.stderr.isatty()}
    if args.quick:
        fixed.update(QUICK)
    budget = 2 if args.quick else args.budget
    results: dict[str, Any] = {}
    for name in args.model_names:
        config = dict(fixed)
        row: dict[str, Any] = {}
        if args.tune:
            tuned = tune(name, default_grid(name), main_split, budget, seed=args.seed, item_features=features,
                         overrides=fixed, k=args.k)
            config.update(tuned.best_config)
            row["tuning"] = {"best": tuned.best_config, "val_ndcg": tuned.best_score, "table": tuned.table}
        row["config"] = {k: v for k, v in config.items() if k != "show_progress"}
        row.update(run_protocols(name, config, args, splits, features))
        results[name] = row
    print(format_table(results, args.protocols, args.k))
    if args.out is not None:
        report = {"dataset": args.dataset, "split": args.split, "seed": args.seed, "k": args.k,
                  "tuned": args.tune, "quick": args.quick, "models": results}
        args.out.write_text(json.dumps(report, indent=2, default=_plain))
    return 0


def run_protocols(
    name: str, config: dict[str, Any], args: argparse.Namespace, splits: dict[str, Split], features: np.ndarray | None
) -> dict[str, Any]:
    """Fit a fresh model per protocol and evaluate it; returns each protocol's metrics and the first fit's time."""
    main_split = splits[args.split]
    row: dict[str, Any] = {}
    for protocol in args.protocols:
        log.info("%s: %s protocol", name, protocol)
        if protocol == "cold":
            cold = evaluate_cold_items(create_model(name, **config), main_split, features, k=args.k, seed=args.seed)
            row["cold"] = {**cold.metrics.as_dict(), "cold_items": len(cold.cold_items),
                           "test_interactions": cold.n_test_interactions}
            row.setdefault("train_seconds", cold.train_seconds)
            continue
        split = main_split if protocol == "full" else splits["leave-last-out"]
        model, seconds = time_fit(create_model(name, **config), split, features)
        row.setdefault("train_seconds", seconds)
        if protocol == "full":
            row[protocol] = evaluate_full(model, split, args.k).as_dict()
        else:
            row[protocol] = evaluate_sampled(model, split, args.k, seed=args.seed).as_dict()
    return row


def format_table(results: dict[str, Any], protocols: list[str], k: int) -> str:
    """One row per model: every protocol's metrics, then the training time."""
    columns: list[tuple[str, str]] = []
    for protocol in protocols:
        keys = [f"hr@{k}", f"ndcg@{k}"]
        if protocol == "full":  # the protocol to trust gets every metric
            keys += [f"recall@{k}", "mrr", "coverage"]
        columns += [(protocol, key) for key in keys]
    header = ["model"] + [f"{p}.{key}" for p, key in columns] + ["train s"]
    rows = [header]
    for name, row in results.items():
        cells = [name] + [f"{row[p][key]:.4f}" if p in row else "-" for p, key in columns]
        cells.append(f"{row['train_seconds']:.1f}" if "train_seconds" in row else "-")
        rows.append(cells)
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    """JSON for NumPy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


if __name__ == "__main__":
    raise SystemExit(main())
