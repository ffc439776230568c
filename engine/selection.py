"""`model="auto"`: pick the recommender on the shop's own log, by validation NDCG@10, within a time budget.

The rule, in time order per user (`recommenders.splits.leave_last_out`): a user with at
least 3 events has their latest event held out as the *selection* event and the one before
it as the *early-stopping* event; everything earlier, and every event of users with fewer
than 3 events, is training data. Each candidate trains on the training part (models that
train in epochs stop early on the early-stopping events, as `TrainedModel.fit` does) and
is scored on the selection events by `recommenders.metrics.rank_users`, the routine the
evaluation uses: the full catalogue ranked, the user's training and early-stopping items
masked, NDCG@10 averaged over those users. This is the split `TrainedModel.fit` makes,
one event earlier, so what is selected is what is then served. No test data is involved:
the log holds none, and nothing here looks at anything but the shop's own past.

Candidates (`CANDIDATES`, in order) first train once each with their defaults; the time
left then goes to a small search over each one's grid (`recommenders.tuning.default_grid`: one setting changed at a
time, nearest the default first, at most `points` settings per candidate). A candidate
that would start after `budget_s` seconds is skipped and listed as skipped; the first one
always trains. The winner is retrained on the whole log through `TrainedModel.fit`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import InteractionsError, InvalidArgumentError
from index import VectorIndex
from recommenders import create_model
from recommenders.data import InteractionData
from recommenders.metrics import rank_users
from recommenders.registry import model_class
from recommenders.splits import Split, leave_last_out
from recommenders.tuning import default_grid

from .display import format_table
from .interactions import Interactions
from .trained import TrainedModel

AUTO = "auto"
DEFAULT_BUDGET_S = 60.0
# (model, most settings tried, needs sequences), in the order they are tried: cheap and strong first.
CANDIDATES: tuple[tuple[str, int, bool], ...] = (
    ("ease", 5, False),
    ("itemknn", 5, False),
    ("als", 3, False),
    ("neumf", 2, False),
    ("lightgcn", 2, False),
    ("multvae", 2, False),
    ("sasrec", 2, True),
    ("gru4rec", 2, True),
)
# Sequence models are candidates only when users have at least this many events on average.
SEQUENCE_MIN_EVENTS = 3.0
SKIPPED_BUDGET = "skipped: budget spent"


@dataclass(frozen=True)
class Trial:
    """One row of the selection: a model with some settings, its validation NDCG@10 and seconds.

    `status` is "ok", "skipped: budget spent" or "skipped: <the model's own error>"; `ndcg`
    is None unless "ok". `params` holds the values of the model's tuning-grid fields.
    """

    model: str
    params: dict[str, Any]
    ndcg: float | None
    seconds: float
    status: str


@dataclass(frozen=True)
class SelectionReport:
    """What `model="auto"` tried, how each did on validation, and which model won.

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

    def table(self) -> str:
        """One line per trial, the winner marked."""
        best = max((r for r in self.rows if r.ndcg is not None), key=lambda r: r.ndcg or 0.0, default=None)
        rows = [
            [r.model, " ".join(f"{k}={v}" for k, v in r.params.items()) or "-",
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
        """Inverse of `to_dict`."""
        rows = tuple(Trial(**row) for row in data["rows"])
        return cls(rows, data["winner"], dict(data["winner_changes"]), float(data["budget_s"]),
                   int(data["validation_users"]))


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
    """`TrainedModel.fit` for a named model; for "auto", select on the log first (see the module doc).

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
    report = select_model(data, lambda: index.vectors(item_ids), budget_s, show_progress=show_progress, **overrides)
    settings = {**report.winner_changes, **_applicable(report.winner, overrides)}
    trained = TrainedModel.fit(index, interactions, report.winner, on_unknown, show_progress, **settings)
    best = max(r.ndcg for r in report.rows if r.ndcg is not None)
    line = (f"auto: {report.winner} won on validation NDCG@10 {best:.4f} ({report.validation_users:,} users, "
            f"{sum(r.status == 'ok' for r in report.rows)} trials, budget {report.budget_s:g} s); retrained: "
            f"{trained.fit_report}")
    return TrainedModel(trained.model, trained.user_ids, trained.item_ids, trained.history,
                        f"{line}\n{report.table()}", report.to_dict())


def select_model(
    data: InteractionData,
    item_features: Any,
    budget_s: float | None = None,
    candidates: Sequence[str] | None = None,
    show_progress: bool = True,
    **overrides: Any,
) -> SelectionReport:
    """Train the candidates on the log's past and pick the best by validation NDCG@10 (see the module doc).

    Args:
        data: the whole log, as model rows.
        item_features: a callable returning the (n_items, dim) item vectors, called once if a candidate needs them.
        budget_s: seconds after which no candidate or setting starts (default `DEFAULT_BUDGET_S`).
        candidates: model names in order (default: `CANDIDATES`, the sequence models only for sequence logs).
        show_progress: draw the models' progress bars.
        **overrides: config fields given to every candidate that has them, e.g. `epochs=5`.

    Raises:
        InteractionsError: no user has the 3 events a validation needs.
        InvalidArgumentError: an override no candidate has, or every candidate failed.
    """
    budget = DEFAULT_BUDGET_S if budget_s is None else float(budget_s)
    if not budget >= 0:
        raise InvalidArgumentError(f"budget_s must be a number of seconds >= 0, got {budget_s!r}")
    names = list(candidates) if candidates is not None else default_candidates(data)
    known = {f.name for name in names for f in dataclasses.fields(model_class(name).config_class)}
    if set(overrides) - known:
        raise InvalidArgumentError(f"no candidate of auto has settings {sorted(set(overrides) - known)}")
    split = leave_last_out(data)
    users = np.intersect1d(split.test.active_users(), split.train.active_users())
    if not len(users):
        raise InteractionsError("auto needs users with at least 3 events to validate on; name a model instead")
    points = {name: search_points(name, limits().get(name, 2), overrides) for name in names}
    done: dict[str, list[tuple[Trial, dict[str, Any]]]] = {name: [] for name in names}
    start, features = time.perf_counter(), _Lazy(item_features)
    # Every candidate's defaults first, then the search, while the budget lasts.
    for round_ in range(max(len(p) for p in points.values())):
        for name in names:
            tried = done[name]
            if round_ >= len(points[name]) or (round_ and (not tried or tried[-1][0].status != "ok")):
                continue
            spent = time.perf_counter() - start
            last = tried[-1][0].seconds if tried else 0.0
            if (spent >= budget or spent + last > budget) and any(done.values()):
                if not round_:
                    tried.append((Trial(name, {}, None, 0.0, SKIPPED_BUDGET), {}))
                continue
            changes = points[name][round_]
            tried.append((_trial(name, changes, split, users, features, show_progress, overrides), changes))
    ordered = [row for name in names for row in done[name]]
    scored = [(t.ndcg, -i, t, changes) for i, (t, changes) in enumerate(ordered) if t.ndcg is not None]
    rows = tuple(t for t, _ in ordered)
    if not scored:
        failures = "\n".join(f"{t.model}: {t.status}" for t in rows)
        raise InvalidArgumentError(f"auto: no candidate could be trained:\n{failures}")
    _, _, best, changes = max(scored, key=lambda s: (s[0], s[1]))
    return SelectionReport(rows, best.model, dict(changes), budget, int(len(users)))


def default_candidates(data: InteractionData) -> list[str]:
    """`CANDIDATES`' names, the sequence models only when users have `SEQUENCE_MIN_EVENTS` events on average."""
    n_users = max(len(data.active_users()), 1)
    sequences = len(data) / n_users >= SEQUENCE_MIN_EVENTS
    return [name for name, _, needs in CANDIDATES if sequences or not needs]


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


class _Lazy:
    """A value computed on first use."""

    def __init__(self, make: Any) -> None:
        self.make, self.value = make, None

    def get(self) -> Any:
        if self.value is None:
            self.value = self.make() if callable(self.make) else self.make
        return self.value


def _trial(name: str, changes: dict[str, Any], split: Split, users: np.ndarray, features: _Lazy,
           show_progress: bool, overrides: Mapping[str, Any]) -> Trial:
    """Train one setting on the split's past and score it on the selection events."""
    began = time.perf_counter()
    try:
        model = create_model(name, show_progress=show_progress, **_applicable(name, overrides), **changes)
        vectors = features.get() if model.uses_item_features else None
        validation = split.validation if len(split.validation) else None
        model.fit(split.train, validation, item_features=vectors)
    except (InvalidArgumentError, InteractionsError) as exc:  # e.g. EASE over its max_items
        return Trial(name, changes, None, time.perf_counter() - began, f"skipped: {exc}")
    per_user, _ = rank_users(model.score, users, split.seen().csr(), split.test.csr(), 10)
    params = {k: getattr(model.config, k) for k in default_grid(name)}
    return Trial(name, params, float(per_user["ndcg@10"].mean()), time.perf_counter() - began, "ok")


def _applicable(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides that are fields of the model's config."""
    fields = {f.name for f in dataclasses.fields(model_class(name).config_class)}
    return {k: v for k, v in overrides.items() if k in fields}


def _distance(value: Any, default: Any) -> float:
    """How far a grid value lies from the default: log-ratio for positive numbers."""
    if isinstance(value, (int, float)) and isinstance(default, (int, float)):
        if value > 0 and default > 0:
            return abs(math.log(value / default))
        return abs(value - default) + 1e-9
    return 0.0
