"""`model="auto"`: pick the recommender on the shop's own log, by validation NDCG@10, within a time budget.

The split, per user in time order (`recommenders.splits.leave_last_out`): a user with at
least 3 events has their latest event held out to *select* and the one before it to *stop
early*; the rest, and every event of users with fewer than 3, trains. Each candidate trains
on that part and is scored on the selection events by `recommenders.metrics.rank_users`
(the evaluation's routine: full catalogue, the user's other held-out and training items
masked, mean NDCG@10; a selection event on an item the user already had, a re-order, is
masked too and so not counted, as in the evaluation). Nothing but the shop's own past is looked at.

Candidates (`CANDIDATES`, in order) first train once each with their defaults; the time
left then goes to a small search over each one's grid (`recommenders.tuning.default_grid`:
one setting changed at a time, nearest the default first, at most `points` settings per
candidate). SASRec and GRU4Rec are candidates when the log has sequences (`has_sequences`):
the median user's events fall on `SEQUENCE_MIN_EVENTS` or more distinct times, so there is an
order to learn (a log of one basket per user, or of dates only, has none). Events that share a
second are common in real logs (MovieLens users rate in bursts) and do not count against it.

The hybrid (`recommenders.hybrid`) is not trained from scratch: after the cheap strong
candidates (EASE, item-kNN, ALS: seconds, so the hybrid is tried within any budget), the best
CF model found so far (the fitted model itself) becomes its base, and its blend weight is
chosen on the same selection events from `Hybrid.tuning_grid["weight"]`, which holds 0:
weight 0 ranks exactly as the base does, so the hybrid is never worse than its base on
validation (a tie goes to the base, tried first). When a later trial beats that base, the
next round blends the new best too (at most `points` blends). Without item vectors the
hybrid is skipped.

The budget counts the final retrain, estimated as the time of the best trial so far (the
retrain trains that model once more): a candidate or setting starts only while the time
spent, its own last trial's time and that estimate fit in `budget_s` (the first always
starts), and a model that trains in epochs starts no new epoch after half the time left, or
the time left less the estimate if smaller (`Recommender.time_limit_s`; it keeps its best
epoch, and the table says it was stopped), so that its own retrain fits as well. One epoch,
one validation and the one-step models are not cut, so the total can pass the budget by
about that much. A candidate that fails with any ordinary exception is skipped, its error
shown in the table, and selection goes on.

A log where no user has 3 events cannot validate anything: `fit_model` then trains `FALLBACK`
(item-kNN: no epochs, nothing to tune, any catalogue size) on every event and says so.

The winner is retrained on the whole log (`TrainedModel.fit(..., whole_log=True)`), no event
held out; a model that trains in epochs runs as many as its trial kept (early stopping's
best), not scaled: the larger log already gives each epoch more steps.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import InteractionsError, InvalidArgumentError
from index import VectorIndex
from recommenders.data import InteractionData
from recommenders.registry import model_class
from recommenders.splits import Split, leave_last_out
from recommenders.tuning import default_grid

from .display import format_table
from .interactions import Interactions
from .trained import TrainedModel
from .trials import HYBRID, Trial, Trials, applicable

AUTO = "auto"
DEFAULT_BUDGET_S = 45.0
# What auto trains when no user has the 3 events a validation needs (a new shop's first log).
FALLBACK = "itemknn"
# (model, most settings tried, needs sequences), in the order tried: cheap and strong first.
# For the hybrid, settings = bases blended; each blend tries every weight of its grid.
CANDIDATES: tuple[tuple[str, int, bool], ...] = (
    ("ease", 5, False),
    ("itemknn", 5, False),
    ("als", 3, False),
    (HYBRID, 2, False),
    ("neumf", 2, False),
    ("lightgcn", 2, False),
    ("multvae", 2, False),
    ("sasrec", 2, True),
    ("gru4rec", 2, True),
)
# The sequence models are candidates when the median user's events fall on this many distinct times.
SEQUENCE_MIN_EVENTS = 3
SKIPPED_BUDGET = "skipped: budget spent"


@dataclass(frozen=True)
class SelectionReport:
    """What `model="auto"` tried, how each did on validation, and which model won.

    `winner_changes` are the winner's settings that differ from its defaults (config fields,
    for the hybrid its `base`, `base_config` and `weight`); `winner_epochs` the epochs its
    trial kept (None for models fitted in one step), which the retrain on the whole log runs.

    Example:
        >>> report = SelectionReport((Trial("ease", {"l2": 500.0}, 0.12, 0.3, "ok"),), "ease", {}, 60.0, 40)
        >>> print(report.table().splitlines()[0])
        model  params    val ndcg@10  seconds  status
    """

    rows: tuple[Trial, ...]
    winner: str
    winner_changes: dict[str, Any]  # what differs from the winner's defaults (retrained with these)
    budget_s: float
    validation_users: int
    winner_epochs: int | None = None

    def table(self) -> str:
        """One line per trial, the winner marked."""
        best = self.rows[_best(self.rows)] if any(r.ndcg is not None for r in self.rows) else None
        rows = [
            [r.model, " ".join(f"{k}={_shown(v)}" for k, v in r.params.items()) or "-",
             "" if r.ndcg is None else f"{r.ndcg:.4f}", f"{r.seconds:.2f}",
             r.status + ("  <- winner" if r is best else "")]
            for r in self.rows
        ]
        return format_table(rows, ["model", "params", "val ndcg@10", "seconds", "status"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (saved with the trained model)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SelectionReport:
        """Inverse of `to_dict` (a report saved before `epochs` existed reads as None)."""
        rows = tuple(Trial(**row) for row in data["rows"])
        epochs = data.get("winner_epochs")
        return cls(rows, data["winner"], dict(data["winner_changes"]), float(data["budget_s"]),
                   int(data["validation_users"]), None if epochs is None else int(epochs))


def selection_report(trained: TrainedModel | None) -> SelectionReport | None:
    """The selection a trained model came from (also after `load`), or None when it was named, not `auto`."""
    return SelectionReport.from_dict(trained.selection) if trained is not None and trained.selection else None


def fit_model(
    index: VectorIndex,
    interactions: Interactions,
    model: str,
    budget_s: float | None = None,
    on_unknown: str = "raise",
    show_progress: bool = True,
    **overrides: Any,
) -> TrainedModel:
    """`TrainedModel.fit` for a named model; for "auto", select on the log, then retrain the winner on all of it.

    Example:
        >>> trained = fit_model(index, Interactions.from_file("log.csv"), "auto", budget_s=30)  # doctest: +SKIP
        >>> print(selection_report(trained).table())                                           # doctest: +SKIP
    """
    if model != AUTO:
        if budget_s is not None:
            raise InvalidArgumentError(f"budget_s applies to model='auto' only; got model={model!r}")
        return TrainedModel.fit(index, interactions, model, on_unknown, show_progress, **overrides)
    if not isinstance(interactions, Interactions):
        raise InvalidArgumentError(f"fit needs an Interactions log, got {type(interactions).__name__}")
    item_ids = list(index.ids)
    log = interactions.validate_items(item_ids, on_unknown)  # type: ignore[arg-type]
    data = log.to_data(log.user_vocabulary(), item_ids)
    try:
        report = select_model(data, lambda: index.vectors(item_ids), budget_s, show_progress=show_progress, **overrides)
    except InteractionsError as exc:  # too small a log to validate on: the fallback, which has nothing to tune
        if not len(data):
            raise
        trained = TrainedModel.fit(index, interactions, FALLBACK, on_unknown, show_progress, whole_log=True,
                                   **applicable(FALLBACK, overrides))
        return TrainedModel(trained.model, trained.user_ids, trained.item_ids, trained.history,
                            f"auto: no user has the 3 events a validation needs ({exc}); trained {FALLBACK} on "
                            f"every event instead: {trained.fit_report}")
    settings = retrain_settings(report, overrides)
    trained = TrainedModel.fit(index, interactions, report.winner, on_unknown, show_progress, whole_log=True,
                               **settings)
    best = max(r.ndcg for r in report.rows if r.ndcg is not None)
    line = (f"auto: {report.winner} won on validation NDCG@10 {best:.4f} ({report.validation_users:,} users, "
            f"{sum(r.ndcg is not None for r in report.rows)} trials, budget {report.budget_s:g} s); retrained: "
            f"{trained.fit_report}")
    return TrainedModel(trained.model, trained.user_ids, trained.item_ids, trained.history,
                        f"{line}\n{report.table()}", report.to_dict())


def retrain_settings(report: SelectionReport, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The winner's config for the retrain on the whole log: its changes, the overrides, the epochs kept.

    Example:
        >>> report = SelectionReport((), "neumf", {"lr": 0.001}, 60.0, 40, winner_epochs=7)
        >>> retrain_settings(report)
        {'lr': 0.001, 'epochs': 7}
    """
    settings = {**report.winner_changes, **applicable(report.winner, overrides or {})}
    if report.winner_epochs is not None:
        if report.winner == HYBRID:
            settings["base_config"] = {**settings.get("base_config", {}), "epochs": report.winner_epochs}
        else:
            settings["epochs"] = report.winner_epochs
    return settings


def select_model(
    data: InteractionData,
    item_features: Any,
    budget_s: float | None = None,
    candidates: Sequence[str] | None = None,
    show_progress: bool = True,
    split: Split | None = None,
    **overrides: Any,
) -> SelectionReport:
    """Train the candidates on the log's past and pick the best by validation NDCG@10 (see the module doc).

    Args:
        data: the whole log, as model rows.
        item_features: the (n_items, dim) item vectors, or a callable returning them (called once, if a
            candidate needs them), or None (the candidates that need them are skipped).
        budget_s: seconds after which no candidate or setting starts, the retrain's estimate included
            (default `DEFAULT_BUDGET_S`).
        candidates: model names in order (default: `default_candidates(data)`).
        show_progress: draw the models' progress bars.
        split: the events to train on (`train`), to stop early on (`validation`) and to select on
            (`test`), instead of the log's own leave-last-out split; an evaluation passes its
            validation events as both, and only the training events are then masked.
        **overrides: config fields given to every candidate that has them, e.g. `epochs=5`.

    Raises:
        InteractionsError: no user has the 3 events a validation needs.
        InvalidArgumentError: an override no candidate has, or every candidate failed.

    Example:
        >>> report = select_model(log.to_data(users, items), vectors, budget_s=30)  # doctest: +SKIP
        >>> report.winner, report.winner_changes                                    # doctest: +SKIP
        ('hybrid', {'base': 'ease', 'base_config': {'l2': 200.0}, 'weight': 0.25})
    """
    budget = DEFAULT_BUDGET_S if budget_s is None else float(budget_s)
    if not budget >= 0:
        raise InvalidArgumentError(f"budget_s must be a number of seconds >= 0, got {budget_s!r}")
    names = list(candidates) if candidates is not None else default_candidates(data)
    known = candidate_fields(names)
    if set(overrides) - known:
        raise InvalidArgumentError(f"no candidate of auto has settings {sorted(set(overrides) - known)}")
    if HYBRID in names and {"base", "base_config"} & set(overrides):
        raise InvalidArgumentError("auto chooses the hybrid's base itself (the best CF candidate); do not set "
                                   f"{sorted({'base', 'base_config'} & set(overrides))}")
    split = leave_last_out(data) if split is None else split
    users = np.intersect1d(split.test.active_users(), split.train.active_users())
    if not len(users):
        raise InteractionsError("auto needs users with at least 3 events to validate on; name a model instead")
    features = functools.cache(lambda: item_features() if callable(item_features) else item_features)
    search = Trials(split, users, features, show_progress, overrides)
    points = {name: search_points(name, limits().get(name, 2), overrides) for name in names if name != HYBRID}
    rounds = max([len(p) for p in points.values()] + [1])
    start = time.perf_counter()
    # Every candidate's defaults first, then the search, while the budget lasts.
    for round_ in range(rounds):
        for name in names:
            tried = search.done.setdefault(name, [])
            if name == HYBRID:
                if not search.hybrid_due(round_) or search.blends >= limits().get(HYBRID, 2):
                    continue
            elif round_ >= len(points[name]) or (round_ and (not tried or tried[-1][0].ndcg is None)):
                continue
            spent, reserve = time.perf_counter() - start, search.best_seconds()
            last = tried[-1][0].seconds if tried and name != HYBRID else 0.0
            if (spent + reserve >= budget or spent + last + reserve > budget) and any(search.done.values()):
                if not round_:
                    tried.append((Trial(name, {}, None, 0.0, SKIPPED_BUDGET), {}))
                continue
            if name == HYBRID:
                tried.extend(search.hybrid())
            else:  # half the time left, less when the best's retrain needs more: a winner's retrain fits too
                limit = max(min((budget - spent) / 2, budget - spent - reserve), 0.0)
                tried.append((search.trial(name, points[name][round_], limit), points[name][round_]))
    ordered = [row for name in names for row in search.done.get(name, [])]
    rows = tuple(t for t, _ in ordered)
    if all(t.ndcg is None for t in rows):
        failures = "\n".join(f"{t.model}: {t.status}" for t in rows)
        raise InvalidArgumentError(f"auto: no candidate could be trained:\n{failures}")
    best, changes = ordered[_best(rows)]
    return SelectionReport(rows, best.model, dict(changes), budget, int(len(search.users)), best.epochs)


def candidate_fields(names: Sequence[str]) -> set[str]:
    """The config fields some candidate in `names` has: what an override given to `select_model` may name.

    Example:
        >>> "l2" in candidate_fields(["ease", "als"]) and "l2" not in candidate_fields(["als"])
        True
    """
    return {f.name for name in names for f in dataclasses.fields(model_class(name).config_class)}


def default_candidates(data: InteractionData) -> list[str]:
    """`CANDIDATES`' names; the sequence models only when `has_sequences(data)`.

    Example:
        >>> "sasrec" in default_candidates(InteractionData.from_arrays([0, 1], [0, 1]))
        False
    """
    sequences = has_sequences(data)
    return [name for name, _, needs in CANDIDATES if sequences or not needs]


def has_sequences(data: InteractionData) -> bool:
    """Whether the order of users' events means something: see the module doc for the rule.

    Example:
        >>> has_sequences(InteractionData.from_arrays([0, 0, 0], [0, 1, 2], [5, 6, 7]))
        True
        >>> has_sequences(InteractionData.from_arrays([0, 0, 0], [0, 1, 2], [5, 5, 5]))  # one basket
        False
    """
    if not len(data):
        return False
    pairs = np.unique(np.stack([data.users, data.timestamps]), axis=1)  # distinct (user, time) pairs
    distinct_times = np.bincount(pairs[0].astype(np.int64))
    return bool(np.median(distinct_times[distinct_times > 0]) >= SEQUENCE_MIN_EVENTS)


def limits() -> dict[str, int]:
    """Most settings tried per candidate."""
    return {name: points for name, points, _ in CANDIDATES}


def search_points(name: str, limit: int, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Settings to try: {} (the defaults), then one grid field changed at a time, nearest the default first.

    Example:
        >>> search_points("ease", 3)
        [{}, {'l2': 1000.0}, {'l2': 200.0}]
    """
    cls = model_class(name)
    defaults = cls.config_class()
    grid = {k: v for k, v in default_grid(name).items() if k not in (overrides or {})}
    ranked = {}
    for k, values in grid.items():
        default = getattr(defaults, k)
        ranked[k] = sorted((v for v in values if v != default), key=lambda v: _distance(v, default))
    out: list[dict[str, Any]] = [{}]
    for depth in range(max((len(v) for v in ranked.values()), default=0)):
        out += [{k: values[depth]} for k, values in ranked.items() if depth < len(values)]
    return out[:limit]


def _distance(value: Any, default: Any) -> float:
    """How far a grid value lies from the default: log-ratio for positive numbers."""
    if isinstance(value, (int, float)) and isinstance(default, (int, float)):
        if value > 0 and default > 0:
            return abs(math.log(value / default))
        return abs(value - default) + 1e-9
    return 0.0


def _best(rows: Sequence[Trial]) -> int:
    """The winning row: the best score; of equal ones a model before the hybrid (at weight 0 its base), the first."""
    scored = [i for i, r in enumerate(rows) if r.ndcg is not None]
    return max(scored, key=lambda i: (rows[i].ndcg, rows[i].model != HYBRID, -i))


def _shown(value: Any) -> str:
    """A parameter value for the table: dicts as k=v lists."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={v}" for k, v in value.items()) + "}"
    return str(value)
