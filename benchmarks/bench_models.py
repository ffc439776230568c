"""Training time per epoch and single-user scoring latency of every registered recommender.

For each model in `recommenders.list_models()`:

* ML-100K: fit on all 100,000 ratings for a few epochs (no validation, so no early
  stop), report seconds per epoch; then `score(users=[u], items=200 candidates)` for
  one random user at a time, p50/p99 in milliseconds.
* A synthetic 100k-item catalogue: a tiny random log (1,000 users x 20 items each,
  Zipf-distributed items) fitted for 1 epoch, then the same 200-candidate latency and
  the latency of scoring the whole 100k catalogue for one user.

Models that need item features get random unit vectors (timings only). A model that
fails or runs past `--timeout` shows the error in its row instead of stopping the table.
"s/epoch" is the model's own `training.seconds_per_epoch` (the epoch step alone); for
models that do not train in epochs (popularity, itemknn, content) it is the whole fit
divided by the requested epochs, i.e. not meaningful.

Progress (model and stage) goes to stderr; each model's row is printed as soon as it is
measured, and the whole table again at the end.

Usage:
    .venv/bin/python benchmarks/bench_models.py            # every model, 3 epochs, 300 queries
    .venv/bin/python benchmarks/bench_models.py --quick    # 1 epoch, 50 queries, 100k catalogue too
    .venv/bin/python benchmarks/bench_models.py --models lightgcn,popularity --threads 1
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommenders import Recommender, create_model, list_models, model_class  # noqa: E402
from recommenders.data import InteractionData  # noqa: E402

FEATURE_DIM = 384
CANDIDATES = 200


@dataclass
class Row:
    """One model's measurements; None where a stage failed or was skipped."""

    model: str
    epoch_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    big_fit_s: float | None = None
    big_p50_ms: float | None = None
    big_p99_ms: float | None = None
    big_full_ms: float | None = None
    error: str = ""


class StageTimeout(Exception):
    """A stage ran past --timeout."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise StageTimeout in the main thread after `seconds` (Unix only; no limit elsewhere)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise StageTimeout(f"over {seconds}s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def movielens() -> InteractionData:
    """All of ML-100K as row indices (ratings as weights)."""
    from engine.interactions import Interactions
    from evaluation.datasets import load_movielens_100k

    ml = load_movielens_100k()
    interactions = Interactions(ml.ratings.rename(columns={"rating": "weight"}))
    return interactions.to_data(interactions.user_vocabulary(), ml.items["item_id"].tolist())


def synthetic_catalogue(
    n_items: int = 100_000, n_users: int = 1_000, per_user: int = 20, seed: int = 0
) -> InteractionData:
    """A tiny random log over a large catalogue: Zipf-popular items, increasing timestamps."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = (rng.zipf(1.3, size=len(users)) - 1) % n_items
    items = rng.permutation(n_items)[items]  # popular items spread over the id range
    weights = rng.integers(1, 6, size=len(users)).astype(np.float32)
    return InteractionData.from_arrays(users, items, np.arange(len(users)), weights, n_users=n_users, n_items=n_items)


def features(n_items: int, seed: int = 0) -> np.ndarray:
    """Random L2-normalised item vectors standing in for content embeddings."""
    x = np.random.default_rng(seed).standard_normal((n_items, FEATURE_DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(name: str, epochs: int) -> Recommender:
    """A model with `epochs` epochs (when its config has that field) and no progress bar."""
    overrides: dict[str, Any] = {"show_progress": False}
    if "epochs" in {f.name for f in fields(model_class(name).config_class)}:
        overrides["epochs"] = epochs
    return create_model(name, **overrides)


def fit(name: str, data: InteractionData, epochs: int) -> tuple[Recommender, float]:
    """Fit without validation; returns the model and the wall seconds."""
    model = build(name, epochs)
    item_features = features(data.n_items) if model.uses_item_features else None
    start = time.perf_counter()
    model.fit(data, None, item_features)
    return model, time.perf_counter() - start


def latencies(call: Callable[[], object], n: int) -> tuple[float, float]:
    """p50 and p99 milliseconds of `n` calls, after one warm-up call."""
    call()
    seconds = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        call()
        seconds[i] = time.perf_counter() - start
    return float(np.percentile(seconds, 50) * 1e3), float(np.percentile(seconds, 99) * 1e3)


def candidate_latency(model: Recommender, data: InteractionData, n: int, seed: int = 0) -> tuple[float, float]:
    """Latency of score(users=[u], items=200 random candidates), a new user and list per call."""
    rng = np.random.default_rng(seed)
    users = rng.choice(data.active_users(), n + 1)
    lists = [rng.choice(data.n_items, CANDIDATES, replace=False) for _ in range(n + 1)]
    calls = iter(range(n + 1))

    def one() -> None:
        i = next(calls)
        model.score([int(users[i])], items=lists[i])

    return latencies(one, n)


def warm_up(name: str) -> None:
    """A throw-away fit on a toy log, so one-off costs (lazy imports, allocator) stay out of the timings."""
    try:
        fit(name, synthetic_catalogue(n_items=50, n_users=20, per_user=5), 1)
    except Exception:  # noqa: BLE001 - the measured fit reports the failure
        pass


def measure(name: str, ml: InteractionData, big: InteractionData | None, args: argparse.Namespace) -> Row:
    """Every measurement for one model; the first failing stage ends the row with its error."""
    row = Row(name)
    stage = "ml-100k fit"
    try:
        progress(f"{name}: warm-up, then {stage} ({args.epochs} epoch(s))")
        with time_limit(args.timeout):
            warm_up(name)
        with time_limit(args.timeout):
            model, seconds = fit(name, ml, args.epochs)
        row.epoch_s = model.training.seconds_per_epoch if model.training.epochs_trained else seconds / args.epochs
        stage = "ml-100k score"
        progress(f"{name}: {stage} ({args.queries} queries)")
        with time_limit(args.timeout):
            row.p50_ms, row.p99_ms = candidate_latency(model, ml, args.queries)
        if big is None:
            return row
        del model
        stage = "100k fit"
        progress(f"{name}: {stage}")
        with time_limit(args.timeout):
            model, row.big_fit_s = fit(name, big, 1)
        stage = "100k score"
        progress(f"{name}: {stage}")
        with time_limit(args.timeout):
            row.big_p50_ms, row.big_p99_ms = candidate_latency(model, big, args.queries)
            user = int(big.active_users()[0])
            row.big_full_ms, _ = latencies(lambda: model.score([user]), max(args.queries // 5, 5))
    except Exception as exc:  # noqa: BLE001 - a benchmark row reports any failure and moves on
        row.error = f"{stage}: {type(exc).__name__}: {str(exc).splitlines()[0][:90] if str(exc) else ''}"
    return row


HEADER = (
    f"{'model':<12} {'s/epoch':>8} {'p50 ms':>7} {'p99 ms':>7} | {'100k fit s':>10} {'p50 ms':>7} "
    f"{'p99 ms':>7} {'full ms':>8}  error"
)


def format_row(r: Row) -> str:
    """One model's line of the table; '-' where a value is missing."""

    def cell(value: float | None, width: int, digits: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    return (
        f"{r.model:<12} {cell(r.epoch_s, 8, 2)} {cell(r.p50_ms, 7, 2)} {cell(r.p99_ms, 7, 2)} | "
        f"{cell(r.big_fit_s, 10, 2)} {cell(r.big_p50_ms, 7, 2)} {cell(r.big_p99_ms, 7, 2)} "
        f"{cell(r.big_full_ms, 8, 2)}  {r.error}"
    )


def format_table(rows: list[Row], epochs: int) -> str:
    """Fixed-width table; '-' where a value is missing."""
    lines = [f"ML-100K: {epochs} epoch(s); 200-candidate scoring for one user | synthetic 100k items: 1 epoch", HEADER]
    lines.append("-" * len(HEADER))
    lines.extend(format_row(r) for r in rows)
    return "\n".join(lines)


def progress(line: str) -> None:
    """A progress note on stderr."""
    print(f"... {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Measure every (or the chosen) model and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch and 50 queries per model")
    parser.add_argument("--models", default="", help="comma-separated names (default: every registered model)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the ML-100K fit")
    parser.add_argument("--queries", type=int, default=300, help="scoring calls per latency measurement")
    parser.add_argument("--no-big", action="store_true", help="skip the synthetic 100k-item catalogue")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per stage before it is abandoned")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.queries = 1, min(args.queries, 50)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    names = [n for n in args.models.split(",") if n] or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; valid names: {', '.join(list_models())}")
    progress("loading MovieLens-100K")
    ml = movielens()
    if not args.no_big:
        progress("building the synthetic 100k-item catalogue")
    big = None if args.no_big else synthetic_catalogue()
    print(HEADER, flush=True)
    rows = []
    for number, name in enumerate(names, 1):
        progress(f"[{number}/{len(names)}] {name}")
        rows.append(measure(name, ml, big, args))
        print(format_row(rows[-1]), flush=True)  # each row as soon as it is measured
    print()
    print(format_table(rows, args.epochs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
