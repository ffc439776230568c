"""The trials of `model="auto"` (`engine.selection`): settings of models trained and scored, the hybrid blended.

`Trials` trains a candidate on the selection split's past with a time limit, scores it on the
selection events (NDCG@10 by `recommenders.metrics.rank_users`), keeps the best CF model it
trained, still fitted, and blends the hybrid over that model without training it again. Any
ordinary exception of one trial becomes a "skipped: <error>" row; the selection goes on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import EngineError
from recommenders import Recommender, create_model
from recommenders.hybrid import Hybrid
from recommenders.metrics import rank_users, rows_with_entries, unseen
from recommenders.registry import model_class
from recommenders.splits import Split
from recommenders.tuning import default_grid

HYBRID = "hybrid"


@dataclass(frozen=True)
class Trial:
    """One row of the selection: a model with some settings, its validation NDCG@10 and seconds.

    `status`: "ok" (", stopped by the budget after n of m epochs" when its time ran out),
    "skipped: budget spent" or "skipped: <its error>"; `ndcg` is None unless ok. `params`: the
    model's tuning-grid fields (hybrid: base, the base's changes, weight). `epochs`: the epochs
    early stopping kept, for models that train in epochs (for the hybrid, its base's).
    """

    model: str
    params: dict[str, Any]
    ndcg: float | None
    seconds: float
    status: str
    epochs: int | None = None


class Trials:
    """The trials of one selection: trains settings, keeps the best CF model fitted, blends the hybrid over it.

    Example:
        >>> trials = Trials(leave_last_out(data), users, lambda: vectors, False, {})  # doctest: +SKIP
        >>> trials.trial("ease", {"l2": 200.0}, limit=10.0).ndcg                   # doctest: +SKIP
        0.0892
    """

    def __init__(self, split: Split, users: np.ndarray, features: Callable[[], Any], show_progress: bool,
                 overrides: Mapping[str, Any]) -> None:
        self.split, self.features = split, features
        # Selecting on the early-stopping events themselves (an evaluation's validation): mask only training.
        self.seen = (split.train if split.validation is split.test else split.seen()).csr()
        # An event on an item the user already had is masked in the ranking, so it cannot count (as in the
        # evaluation); when every selection event is such a re-order, they all count and every score is 0.
        reachable = unseen(split.test.csr(), self.seen)
        kept = np.intersect1d(users, rows_with_entries(reachable))
        self.relevant, self.users = (reachable, kept) if len(kept) else (split.test.csr(), users)
        self.show_progress, self.overrides = show_progress, overrides
        self.done: dict[str, list[tuple[Trial, dict[str, Any]]]] = {}
        grid = model_class(HYBRID).tuning_grid or {}
        self.weights = [overrides["weight"]] if "weight" in overrides else list(grid.get("weight", [0.0]))
        # The best CF trial so far: (trial, changes, the fitted model); and the one the hybrid blended last.
        self.best: tuple[Trial, dict[str, Any], Recommender] | None = None
        self.blended, self.blends = None, 0  # the best CF trial last blended, and how many blends

    def best_seconds(self) -> float:  # the best CF trial's time: the estimate of the final retrain
        return self.best[0].seconds if self.best is not None else 0.0

    def hybrid_due(self, round_: int) -> bool:  # in the first round, then when a better CF trial came
        return round_ == 0 or (self.blends > 0 and self.best is not None and self.best[0] is not self.blended)

    def trial(self, name: str, changes: dict[str, Any], limit: float) -> Trial:
        """Train one setting on the split's past (no new epoch after `limit` s) and score it on the selection events."""
        began = time.perf_counter()
        try:
            model = create_model(name, show_progress=self.show_progress, **applicable(name, self.overrides),
                                 **changes)
            model.time_limit_s = limit
            vectors = self.features() if model.uses_item_features else None
            validation = self.split.validation if len(self.split.validation) else None
            model.fit(self.split.train, validation, item_features=vectors)
            fitted = time.perf_counter() - began
            ndcg = self._ndcg(model)
        except Exception as exc:  # noqa: BLE001 - any failure of one candidate skips it, not the selection
            return Trial(name, changes, None, time.perf_counter() - began, f"skipped: {reason(exc)}")
        params = {k: getattr(model.config, k) for k in default_grid(name)}
        log = model.training
        epochs = (log.best_epoch + 1 if log.best_epoch >= 0 else log.epochs_trained) if log.epochs_trained else None
        cut = log.epochs_trained < log.epochs_planned and fitted >= limit
        status = f"ok, stopped by the budget after {log.epochs_trained} of {log.epochs_planned} epochs" if cut else "ok"
        trial = Trial(name, params, ndcg, time.perf_counter() - began, status, epochs)
        if self.best is None or ndcg > (self.best[0].ndcg or 0.0):
            self.best = (trial, changes, model)
        return trial

    def hybrid(self) -> list[tuple[Trial, dict[str, Any]]]:
        """The best CF model so far blended with content, one trial per weight of the grid."""
        began = time.perf_counter()
        if self.best is None:
            return [(Trial(HYBRID, {}, None, 0.0, "skipped: no CF candidate was trained to blend"), {})]
        base_trial, base_changes, base = self.best
        self.blended, self.blends = base_trial, self.blends + 1
        try:
            vectors = self.features()
            if vectors is None:
                return [(Trial(HYBRID, {}, None, 0.0, "skipped: no item vectors to blend with"), {})]
            own = {k: v for k, v in applicable(HYBRID, self.overrides).items() if k != "weight"}
            hybrid = Hybrid.around(base, self.split.train, vectors, **{**own, "show_progress": self.show_progress})
        except Exception as exc:  # noqa: BLE001
            return [(Trial(HYBRID, {}, None, time.perf_counter() - began, f"skipped: {reason(exc)}"), {})]
        base_config = {**base_changes, **applicable(base.name, self.overrides)}
        out = []
        for weight in self.weights:
            params = {"base": base.name, "base_config": dict(base_changes), "weight": weight}
            changes = {"base": base.name, "base_config": base_config, "weight": weight}
            try:
                hybrid.config = dataclasses.replace(hybrid.config, weight=weight)
                ndcg, status = self._ndcg(hybrid), "ok"
            except Exception as exc:  # noqa: BLE001
                ndcg, status = None, f"skipped: {reason(exc)}"
            out.append((Trial(HYBRID, params, ndcg, time.perf_counter() - began, status, base_trial.epochs), changes))
            began = time.perf_counter()
        return out

    def _ndcg(self, model: Recommender) -> float:
        per_user, _ = rank_users(model.score, self.users, self.seen, self.relevant, 10)
        return float(per_user["ndcg@10"].mean())


def applicable(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides that are fields of the model's config.

    Example:
        >>> applicable("ease", {"l2": 1.0, "epochs": 3, "lr": 0.1})
        {'l2': 1.0, 'epochs': 3}
    """
    fields = {f.name for f in dataclasses.fields(model_class(name).config_class)}
    return {k: v for k, v in overrides.items() if k in fields}


def reason(exc: Exception) -> str:
    """An error for the table: the engine's own messages as they are, others with their type."""
    return str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
