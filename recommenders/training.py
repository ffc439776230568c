"""Shared training helpers: validation metric, early stopping, progress bars."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .data import InteractionData
from .metrics import ranking_metrics, rmse


def validation_ndcg(
    score_users: Callable[[np.ndarray], np.ndarray],
    train: InteractionData,
    validation: InteractionData,
    k: int = 10,
    max_users: int | None = 2000,
    seed: int = 0,
) -> float:
    """Full-catalogue NDCG@k on `validation`, with each user's training items masked.

    Args:
        score_users: maps user rows to a (n, n_items) score matrix.
        train: the interactions to mask (never recommended again).
        validation: held-out interactions; users without any, or without training
            interactions, are skipped.
        k: cut-off.
        max_users: evaluate a fixed random sample of this many users, for speed.
        seed: seed of that sample.
    """
    # Only users with training history: a model scores users it never saw all
    # alike, and under a temporal split they can outnumber the rest (ML-100K: 116 of 197).
    users = np.intersect1d(validation.active_users(), train.active_users())
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    seen = train.csr()
    relevant_matrix = validation.csr()
    scores_all: list[float] = []
    for start in range(0, len(users), 512):
        batch = users[start : start + 512]
        scores = np.array(score_users(batch), dtype=np.float32, copy=True)
        scores[seen[batch].nonzero()] = -np.inf
        relevant = [relevant_matrix[u].indices for u in batch]
        metrics = ranking_metrics(scores, relevant, k=k)
        scores_all.append(metrics[f"ndcg@{k}"] * len(batch))
    return float(sum(scores_all) / max(len(users), 1))


class EarlyStopping:
    """Keeps the best state seen so far and says when to stop.

    Example:
        >>> stop = EarlyStopping(patience=2)
        >>> [stop.step(m, lambda: {"m": m}) for m in (0.1, 0.3, 0.2, 0.25)]
        [False, False, False, True]
        >>> stop.best_state
        {'m': 0.3}
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = -np.inf
        self.best_epoch = -1
        self.best_state: Any = None
        self._epoch = -1
        self._bad = 0

    def step(self, metric: float, snapshot: Callable[[], Any]) -> bool:
        """Record one epoch's validation metric; returns True when training should stop."""
        self._epoch += 1
        if metric > self.best:
            self.best, self.best_epoch, self._bad = metric, self._epoch, 0
            self.best_state = copy.deepcopy(snapshot())
            return False
        self._bad += 1
        return self._bad >= self.patience


def progress(iterable: Any, desc: str, enabled: bool, total: int | None = None) -> Any:
    """A tqdm progress bar, or the bare iterable when disabled."""
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False, dynamic_ncols=True)


def known_users_only(validation: InteractionData, train: InteractionData) -> InteractionData:
    """The validation interactions of users that have training interactions.

    Under a global temporal split most validation users are new (ML-100K: 116
    of 197), and a model scores them all alike from its prior, so their NDCG
    would swamp the signal early stopping needs from the users it personalises.
    """
    return validation.subset(np.isin(validation.users, train.active_users()))


def fit_epochs(
    model: Any,
    train: InteractionData,
    validation: InteractionData | None,
    run_epoch: Callable[[int], float],
    loss_label: str = "loss",
) -> None:
    """Run `run_epoch` up to `config.epochs` times, early-stopping on `config.stop_on` and keeping the best weights.

    For models with a torch `network` and a config with `epochs`, `patience`,
    `show_progress`, and optionally `stop_on` ("ndcg", the default: validation NDCG@10, or
    "rmse") and `warmup_epochs` (epochs trained before validation is consulted; default 0).
    Sets `model.epochs_trained`, `model.seconds_per_epoch` and `model.training_log` (per
    epoch: "loss", "seconds", and "ndcg@10" or "rmse" when validated). Early stopping
    reads only the validation users that have training interactions (`known_users_only`).
    """
    import time

    cfg = model.config
    if validation is not None:
        validation = known_users_only(validation, train)
    stopper = EarlyStopping(cfg.patience)
    bar = progress(range(cfg.epochs), desc=model.name, enabled=cfg.show_progress)
    stop_on = getattr(cfg, "stop_on", "ndcg")
    model.epochs_trained, model.training_log, train_seconds = 0, [], 0.0
    for epoch in bar:
        start = time.perf_counter()
        loss = run_epoch(epoch)
        seconds = time.perf_counter() - start
        train_seconds += seconds
        model.epochs_trained += 1
        record = {"loss": loss, "seconds": seconds}
        model.training_log.append(record)
        if validation is None or len(validation) == 0 or epoch < getattr(cfg, "warmup_epochs", 0):
            if cfg.show_progress:
                bar.set_postfix(**{loss_label: f"{loss:.4f}"})
            continue
        if stop_on == "rmse":
            metric = -rmse(model, validation)
            record["rmse"] = -metric
        else:
            metric = validation_ndcg(lambda rows: model._score_users(rows, None), train, validation)
            record["ndcg@10"] = metric
        if cfg.show_progress:
            bar.set_postfix(**{loss_label: f"{loss:.4f}", stop_on: f"{abs(metric):.4f}"})
        if stopper.step(metric, model.network.state_dict):
            break
    model.seconds_per_epoch = train_seconds / max(model.epochs_trained, 1)
    if stopper.best_state is not None:
        model.network.load_state_dict(stopper.best_state)
