"""`shopvec fit`: train the personalisation model of a model folder on an interaction log."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import DEFAULT_MODEL_HELP, CommandError, add_command

EXAMPLES = """\
shopvec fit models/sample --events sample_catalog/interactions.csv   # picks the model on the log (auto)
shopvec fit models/shop --events orders.csv --user-column customer --item-column sku --time-column ordered_at
shopvec fit models/shop --events views.parquet --model sasrec --epochs 30
shopvec fit models/shop --events orders.csv --model auto --budget 120   # more time for the candidates
shopvec fit models/shop          # the events the service recorded (POST /events) in the folder"""

LOG_COLUMNS = {"user_column": "user_id", "item_column": "item_id", "time_column": "timestamp", "weight_column": "weight"}


def register(subparsers: Any) -> None:
    """Add `shopvec fit`."""
    p = add_command(
        subparsers,
        "fit",
        "Train the personalisation model on an interaction log and save it into the model folder.",
        EXAMPLES,
        "The log is a .csv, .jsonl or .parquet file with one row per event: a user id, an item id of\n"
        "the catalog and a time (unix seconds or a date). Without --events, trains on the events\n"
        "recorded in the folder (`POST /events` while serving, or Engine.log_events). By default (auto)\n"
        "candidates train on the log's past, the best on each user's latest event is retrained on every\n"
        "event, and the selection table is printed. A named model holds each user's latest event out\n"
        "to pick the epoch; the report says which epoch was kept.",
    )
    p.add_argument("model_dir", metavar="DIR", help=DEFAULT_MODEL_HELP)
    p.add_argument("--events", metavar="LOG", help="interaction log file (default: the events recorded in DIR)")
    p.add_argument("--model", metavar="NAME", help="recommender (default: the folder's config, auto: picked on the "
                   "log's own validation); `--model list` lists them")
    p.add_argument("--budget", type=float, metavar="S",
                   help="with auto: seconds for the candidates and the retrain (default 45); the table is printed")
    p.add_argument("--epochs", type=int, metavar="N", help="most epochs to train (early stopping may stop sooner)")
    cols = p.add_argument_group("log columns (your column names)")
    cols.add_argument("--user-column", metavar="NAME", help="column holding the user id (default: user_id)")
    cols.add_argument("--item-column", metavar="NAME", help="column holding the catalog's item id (default: item_id)")
    cols.add_argument("--time-column", metavar="NAME", help="column holding the event's time (default: timestamp)")
    cols.add_argument("--weight-column", metavar="NAME", help="optional column holding a weight per event (default: weight)")
    p.add_argument("--drop-unknown-items", action="store_true", help="skip events naming items not in the catalog, instead of failing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the folder, train, save, print what was trained and which epoch was kept."""
    from engine.engine import Engine
    from engine.interactions import Interactions
    from recommenders import list_models

    if args.model == "list":
        print("\n".join(list_models()))
        return 0
    if args.epochs is not None and args.epochs < 1:
        raise CommandError(f"--epochs must be a positive integer, got {args.epochs}")
    if args.budget is not None and not args.budget >= 0:
        raise CommandError(f"--budget S must be seconds >= 0, got {args.budget}")
    engine = Engine.load(args.model_dir)
    model = args.model or engine.config.recommend.model
    if args.budget is not None and model != "auto":
        raise CommandError(f"--budget S goes with model auto; got --budget {args.budget} --model {model}")
    if args.events is not None:
        columns = {getattr(args, flag): ours for flag, ours in LOG_COLUMNS.items() if getattr(args, flag)}
        log = Interactions.from_file(args.events, columns=columns or None)
        source = args.events
    else:
        used = [f"--{flag.replace('_', '-')}" for flag in LOG_COLUMNS if getattr(args, flag)]
        if used:
            raise CommandError(f"{', '.join(used)} name columns of an --events LOG file; none was given")
        recorded = getattr(engine, "events", None)
        if recorded is None or len(recorded) == 0:
            raise CommandError(
                f"nothing to train on: give an interaction log with --events LOG; the model folder "
                f"'{args.model_dir}' holds no recorded events (the service records them on POST /events)"
            )
        log, source = recorded.to_interactions(), f"the {len(recorded):,} events recorded in {args.model_dir}"
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    on_unknown = "drop" if args.drop_unknown_items else "raise"
    engine.fit(log, model=args.model, on_unknown=on_unknown, show_progress=not args.quiet, budget_s=args.budget,
               **overrides)
    engine.save(args.model_dir)
    trained = engine.trained
    print(f"trained       : {trained.model.name} on {source}")
    print(f"users, items  : {len(trained.user_ids):,} users, {len(trained.item_ids):,} items, {len(trained.history):,} events")
    print(fit_summary(trained))
    print(f"saved to      : {args.model_dir}")
    return 0


def fit_summary(trained: Any) -> str:
    """How the fit went: the engine's one-line fit report (which epoch was kept), then the epochs as a table."""
    log = getattr(trained.model, "training", None)  # this process's fit; a loaded model keeps only the report
    records = list(getattr(log, "records", None) or [])
    report = getattr(trained, "fit_report", "")
    if not report and records:
        kept = log.best_epoch + 1 if log.best_epoch >= 0 else len(records)
        report = f"{trained.model.name}: kept epoch {kept} of {len(records)}"
    lines = [f"fit           : {report or 'fitted in one pass (no epochs)'}"]
    if records:
        lines.append(epoch_table(records, log.best_epoch if log.best_epoch >= 0 else len(records) - 1))
    return "\n".join(lines)


def epoch_table(records: list[dict[str, float]], kept: int, edge: int = 3) -> str:
    """One line per epoch: its loss, validation score and seconds; the kept one marked; long runs shortened."""
    from engine.display import format_table

    shown = sorted({*range(edge), *range(kept - 2, kept + 3), *range(len(records) - edge, len(records))})
    shown = [e for e in shown if 0 <= e < len(records)]
    keys = [k for k in ("loss", "ndcg@10", "rmse") if any(k in r for r in records)]
    rows: list[list[Any]] = []
    for before, epoch in zip([-1, *shown], shown):
        if epoch - before > 1:
            rows.append(["...", *[""] * (len(keys) + 2)])
        r = records[epoch]
        rows.append([epoch + 1, *[r.get(k, "") for k in keys], r.get("seconds", 0.0), "<- kept" if epoch == kept else ""])
    return format_table(rows, ["epoch", *keys, "seconds", ""])
