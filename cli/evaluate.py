"""`shopvec evaluate`: measure quality, write every number as JSON and the plots as PNGs beside it.

`shopvec evaluate models` fits every recommender model, and the `auto` selection, on a
public log (`--dataset`: MovieLens-100K or the Instacart groceries sample) under every
protocol (the tables of docs/evaluation.md); `shopvec evaluate retrieval` measures the
same-category precision of the content vectors (`cli.evaluate_retrieval`).

Results go to `--out` (default `runs/<dataset>.json`, never the tracked `results/` unless
asked): while a run is going, the results so far are kept in `<out stem>.partial.json`;
`--out` itself is written once, whole, when the run completes, so an interrupted run never
replaces a complete file with a partial one. Re-running the same command resumes: the
models in the partial file are read back, not refitted (`evaluation.resume`); other
arguments are refused unless `--fresh` discards the partial file.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cli import evaluate_retrieval
from cli.common import CommandError, Parser, add_command, report_error, split_ids
from cli.outputs import partial_path, show_progress_log, sibling, write_json
from core.errors import EngineError

log = logging.getLogger("shopvec.evaluate")

EXAMPLES = """\
shopvec evaluate models --quick --models popularity,itemknn     # a check in seconds
shopvec evaluate models --jobs 2                                 # the full table, ~10 min on 2 cores
shopvec evaluate models --jobs 2 --out results/ml100k.json       # replace the tracked results
shopvec evaluate models --dataset instacart --jobs 1             # the groceries log (runs/instacart.json)
shopvec evaluate retrieval --datasets catalog --no-engine-check"""

MODELS_EXAMPLES = """\
shopvec evaluate models --quick --models popularity,itemknn --split temporal
shopvec evaluate models --dataset instacart --split temporal --auto-budget 60 --jobs 1
shopvec evaluate models --jobs 2 --out runs/ml100k.json
shopvec evaluate models --tune --budget 10 --jobs 2 --out runs/ml100k-tuned.json"""

MODELS_DETAILS = """\
Writes --out (JSON, every number), and beside it <stem>-ndcg-at-k.png (test NDCG@K per
model with 95% bootstrap bands, and minus popularity's with paired-bootstrap bands) and
<stem>-index-tradeoff.png (recall@10 against queries/s of the index settings on the films'
own text vectors). Until the run completes, results so far are in <stem>.partial.json; the
same command run again resumes from it (finished models are not refitted). The 'auto' row
selects a model on each split's validation (the engine's fit(model='auto') selection, never
the test) and is compared with the oracle, the best single model on test."""

DEFAULT_OUT = Path("runs") / "ml100k.json"
# evaluation.datasets.DATASETS' names and evaluation.auto's default budget, spelled out so that building the
# parser imports neither pandas nor torch (tests check they agree).
DATASET_NAMES = ("ml-100k", "instacart")
AUTO_BUDGET_S = 600.0


def register(subparsers: Any) -> None:
    """Add `shopvec evaluate` with its two sub-commands, `models` and `retrieval`."""
    p = add_command(subparsers, "evaluate", "Measure quality: the recommender models on MovieLens-100K, or "
                    "the content vectors' retrieval; JSON plus PNG plots.", EXAMPLES)
    what = p.add_subparsers(title="what to evaluate", metavar="WHAT", required=True)
    models = add_command(what, "models", "Every recommender model and auto under every protocol on a public log.",
                         MODELS_EXAMPLES, MODELS_DETAILS)
    add_model_arguments(models)
    models.set_defaults(run=run_models)
    evaluate_retrieval.register(what)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `shopvec evaluate models` (and of scripts/evaluate.py)."""
    p.add_argument("--dataset", default="ml-100k", choices=DATASET_NAMES,
                   help="the public log: ml-100k (films) or instacart (groceries); read out of a package")
    p.add_argument("--models", default=None,
                   help="comma-separated model names, 'auto' for the selection row (default: every model and auto)")
    p.add_argument("--auto-budget", type=float, default=AUTO_BUDGET_S,
                   help="seconds of the auto row's selection on each split's validation")
    p.add_argument("--fresh", action="store_true", help="discard an interrupted run's partial file, do not resume")
    p.add_argument("--protocol", default="full,sampled,cold,rmse", help="comma-separated: full, sampled, cold, rmse")
    p.add_argument("--splits", default="temporal,leave-last-out",
                   help="comma-separated splits to fit on; the first is primary (tuning, winner, train time)")
    p.add_argument("--split", default=None, choices=["temporal", "leave-last-out"],
                   help="a single split (same as --splits SPLIT)")
    p.add_argument("--cold-split", default="leave-last-out", choices=["temporal", "leave-last-out"],
                   help="split of the item cold-start fit")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--tune", action="store_true", help="grid-search each model on validation NDCG@10 first")
    p.add_argument("--budget", type=int, default=10, help="configurations tried per model with --tune")
    p.add_argument("--encoder", default="minilm-l6", help="text encoder for item content vectors")
    p.add_argument("--train-history-only", action="store_true",
                   help="score test users from training alone, not as served (see ComparisonConfig.served_history)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="worker processes, one thread each (fits run in parallel)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"JSON of every number; the PNGs go beside it (default runs/<dataset>.json, "
                        f"e.g. {DEFAULT_OUT})")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True, help="write the PNG plots")
    p.add_argument("--index-tradeoff", action=argparse.BooleanOptionalAction, default=None,
                   help="measure the index trade-off on the items' text vectors (default: on ml-100k when the run "
                        "encodes them anyway, i.e. some model uses item features)")
    p.add_argument("--tradeoff-queries", type=int, default=1000, help="queries per index setting in the trade-off")
    p.add_argument("--quick", action="store_true", help="one epoch per model, tiny budget (for tests)")


def models_main(argv: list[str] | None = None, prog: str = "shopvec evaluate models") -> int:
    """`shopvec evaluate models` as a stand-alone program (scripts/evaluate.py is this with its own name).

    Example:
        >>> models_main(["--quick", "--models", "popularity", "--split", "temporal"])   # doctest: +SKIP
        0
    """
    parser = Parser(prog=prog, description=MODELS_DETAILS, epilog="examples:\n  " + MODELS_EXAMPLES.replace(
        "\n", "\n  ").replace("shopvec evaluate models", prog), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join([prog, *argv])
    try:
        check_model_arguments(args)
    except CommandError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        return run_models(args)
    except (EngineError, CommandError, OSError, RuntimeError) as exc:  # RuntimeError: the data set cannot be fetched
        return report_error(exc)


def check_model_arguments(args: argparse.Namespace) -> None:
    """Turn the comma-separated flags into tuples on `args`; CommandError names a bad value and the valid ones."""
    from evaluation.auto import AUTO
    from evaluation.comparison import PROTOCOLS, SPLITS
    from evaluation.datasets import DATASETS
    from recommenders.registry import list_models

    if args.out is None:
        args.out = Path("runs") / f"{DATASETS[args.dataset].stem}.json"

    args.protocols = tuple(split_ids(args.protocol))
    bad = [x for x in args.protocols if x not in PROTOCOLS]
    if bad or not args.protocols:
        raise CommandError(f"unknown protocol(s) {bad}; valid: {', '.join(PROTOCOLS)}")
    args.split_names = (args.split,) if args.split else tuple(split_ids(args.splits))
    bad = [x for x in args.split_names if x not in SPLITS]
    if bad or not args.split_names:
        raise CommandError(f"unknown split(s) {bad}; valid: {', '.join(SPLITS)}")
    for flag in ("jobs", "k", "budget", "tradeoff_queries"):
        if getattr(args, flag) < 1:
            raise CommandError(f"--{flag.replace('_', '-')} must be a positive integer, got {getattr(args, flag)}")
    if not args.auto_budget >= 0:
        raise CommandError(f"--auto-budget must be seconds >= 0, got {args.auto_budget}")
    names = [*list_models(), AUTO]
    args.model_names = names if args.models is None else split_ids(args.models)
    unknown = [x for x in args.model_names if x not in names]
    if unknown or not args.model_names:
        raise CommandError(f"unknown model(s) {unknown}; valid: {', '.join(names)}")


def run_models(args: argparse.Namespace) -> int:
    """Fit and evaluate the models, print the tables, write the JSON and the plots."""
    if not hasattr(args, "model_names"):
        check_model_arguments(args)
    from engine import Interactions
    from evaluation.auto import AUTO
    from evaluation.comparison import ComparisonConfig, compare_models
    from evaluation.datasets import DATASETS
    from evaluation.oracle import auto_vs_oracle, format_auto_vs_oracle
    from evaluation.report import format_comparison, format_ndcg_curves, ndcg_curves
    from evaluation.resume import RESUME_KEY, load_done, resume_block
    from recommenders.registry import model_class

    show_progress_log()
    started = time.perf_counter()
    out: Path = args.out
    partial = partial_path(out)
    arguments = result_arguments(args)
    if args.fresh and partial.exists():
        print(f"--fresh: discarding the interrupted run in {partial}", file=sys.stderr)
        partial.unlink()
    done = load_done(partial, arguments)  # raises when the partial file was made with other arguments
    if done:
        print(f"resuming from {partial}: reusing {', '.join(done)} (not refitted); fitting "
              f"{', '.join(n for n in args.model_names if n not in done) or 'nothing'}", file=sys.stderr)
    info = DATASETS[args.dataset]
    dataset = info.load()
    interactions = Interactions(dataset.ratings.rename(columns={"rating": "weight"}))
    item_ids = dataset.items["item_id"].tolist()
    data = interactions.to_data(interactions.user_vocabulary(), item_ids)
    uses_features = any(n == AUTO or model_class(n).uses_item_features for n in args.model_names)
    # Instacart's texts are mostly one of 21 departments: exact duplicates make recall@10 meaningless there.
    tradeoff = (uses_features and args.dataset == "ml-100k") if args.index_tradeoff is None else args.index_tradeoff
    features = None
    if uses_features or tradeoff:
        features = text_features(dataset.item_texts().loc[item_ids].tolist(), encoder=args.encoder)

    config = ComparisonConfig(
        splits=args.split_names, protocols=args.protocols, k=args.k, cold_split=args.cold_split,
        tune_budget=(2 if args.quick else args.budget) if args.tune else 0,
        served_history=not args.train_history_only, seed=args.seed, jobs=args.jobs, auto_budget_s=args.auto_budget,
    )
    # Bars from several workers would overwrite each other: the log lines say what runs.
    overrides: dict[str, Any] = {"show_progress": not args.quick and args.jobs == 1 and sys.stderr.isatty()}
    if args.quick:
        overrides.update({"epochs": 1, "show_progress": False})
    head = {"dataset": args.dataset, "command": command_line(args), "seed": args.seed, "k": args.k,
            "tuned": args.tune, "quick": args.quick}

    def save(comparison: Any, path: Path = partial, **extra: Any) -> None:
        report = {**head, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "complete": path == out, "total_seconds": time.perf_counter() - started,
                  **comparison.as_dict(), **extra}
        if path == partial:
            report[RESUME_KEY] = resume_block(arguments, comparison.models)
        write_json(report, path)

    try:
        comparison = compare_models(data, args.model_names, config, features if uses_features else None, overrides,
                                    on_model=save, done=done)
    except KeyboardInterrupt:
        kept = f"the models done so far are in {partial} (run the same command again to resume); " \
            if partial.exists() else ""
        print(f"interrupted: {kept}{out} was left as it was", file=sys.stderr)
        raise
    print(format_comparison(comparison))
    oracle_lines = format_auto_vs_oracle(comparison)
    if oracle_lines:
        print(f"\nauto vs the oracle:\n{oracle_lines}")
    curves = [c for split in config.fitted_splits() for c in ndcg_curves(comparison, split)]
    print(format_ndcg_curves(curves))
    extra: dict[str, Any] = {"dataset_title": info.title, "ndcg_curves": [asdict(c) for c in curves],
                             "auto_vs_oracle": {s: r for s in config.fitted_splits()
                                                if (r := auto_vs_oracle(comparison, s)) is not None}}
    points = []
    if tradeoff and features is not None:
        from evaluation.index_tradeoff import format_tradeoff, index_tradeoff

        log.info("index trade-off on %d %s text vectors (%s)", len(features), info.item_kind, args.encoder)
        points = index_tradeoff(features, k=10, n_queries=args.tradeoff_queries, seed=args.seed)
        print(format_tradeoff(points))
        extra["index_tradeoff"] = {"vectors": f"{info.title} {info.item_kind} texts, {args.encoder}",
                                   "items": len(features),
                                   "queries": min(args.tradeoff_queries, len(features)),
                                   "points": [asdict(p) for p in points]}
    if args.plots:
        n_items = 0 if features is None else len(features)
        extra["plots"] = [str(p) for p in write_model_plots(out, curves, points, n_items, info.title,
                                                            info.item_kind)]
    save(comparison, out, **extra)
    partial.unlink(missing_ok=True)
    print(f"Wrote {out}" + "".join(f", {p}" for p in extra.get("plots", [])))
    print(f"Total time: {time.perf_counter() - started:.0f} s.")
    return 0


def text_features(texts: list[str], encoder: str) -> np.ndarray:
    """The films' text vectors (`evaluation.features.text_features`, cached); tests replace this."""
    from evaluation.features import text_features as cached

    return cached(texts, encoder=encoder)


def write_model_plots(out: Path, curves: list[Any], points: list[Any], n_items: int = 0,
                      title: str = "MovieLens-100K", item_kind: str = "film") -> list[Path]:
    """The NDCG@K figure and, when measured, the index trade-off figure, beside `out`; returns their paths."""
    dataset = title
    from evaluation.plots import draw_index_tradeoff, draw_ndcg_curves, save_figure
    from index import IndexConfig

    written = []
    if curves:
        title = f"{dataset}: test NDCG@K of every model"
        written.append(save_figure(draw_ndcg_curves(curves, title), sibling(out, "ndcg-at-k")))
    if points:
        title = (f"Index settings on {dataset}'s {n_items:,} {item_kind} text vectors: recall@10 against speed\n"
                 f"(the engine's 'auto' index is exact Flat up to {IndexConfig().hnsw_threshold:,} items, HNSW above)")
        written.append(save_figure(draw_index_tradeoff(points, title), sibling(out, "index-tradeoff")))
    return written


def result_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments that decide the numbers (not --out, --jobs or the plots): a partial file resumes only
    a run with the same ones."""
    return {"dataset": args.dataset, "models": list(args.model_names), "protocols": list(args.protocols),
            "splits": list(args.split_names), "cold_split": args.cold_split, "k": args.k, "tune": args.tune,
            "budget": args.budget, "encoder": args.encoder, "train_history_only": args.train_history_only,
            "seed": args.seed, "quick": args.quick, "auto_budget": args.auto_budget}


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (scripts pass theirs), else `shopvec` and this process's arguments."""
    return getattr(args, "command_line", None) or shlex.join(["shopvec", *sys.argv[1:]])
