"""Offline evaluation of recommender models: protocols, cold start, tuning on validation.

Protocols:

* `evaluate_full`: rank the whole catalogue for each test user, with the items
  the user already saw (train and validation) masked. The protocol to trust.
* `evaluate_sampled`: rank one held-out item among 100 sampled negatives. Only
  for comparison with papers that report it: sampled metrics are inconsistent
  with the full ranking and can even reverse the order of models (Krichene &
  Rendle, "On Sampled Metrics for Item Recommendation", KDD 2020).
* `evaluate_cold_items`: hold a random 20% of the items out of training entirely
  and measure how well their test interactions are ranked.

Hyperparameters are chosen by `tune` on the validation part only, never on test.

Example:
    >>> from recommenders import create_model                       # doctest: +SKIP
    >>> split = temporal_split(data)                                 # doctest: +SKIP
    >>> model = create_model("itemknn").fit(split.train, split.validation)  # doctest: +SKIP
    >>> evaluate_full(model, split, k=10).ndcg                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.checks import check_k
from core.errors import InvalidArgumentError
from core.ranking import top_k
from recommenders.base import Recommender
from recommenders.metrics import per_user_metrics, rank_users, ranking_metrics, rows_with_entries, unseen
from recommenders.registry import create_model, model_class
from recommenders.splits import Split
from recommenders.tuning import default_grid

_BATCH = 512  # users scored at once by the sampled protocol
CUTOFFS = (1, 5, 10, 20, 50)  # the NDCG@K curve the full-ranking protocols also keep, per user


@dataclass(frozen=True)
class Metrics:
    """Ranking quality averaged over the evaluated users.

    Attributes:
        protocol: 'full', 'sampled' or 'cold'.
        k: the cut-off of hr, ndcg and recall.
        hr: share of users with at least one relevant item in their top k.
        ndcg: normalised discounted cumulative gain at k.
        recall: relevant items in the top k over min(k, relevant items).
        mrr: mean reciprocal rank of each user's best-ranked relevant item (whole ranking).
        coverage: share of the ranked items that appear in at least one top-k list.
        n_users: users evaluated.
        users: the evaluated user rows, ascending (same for every model on a split).
        user_ndcg: each evaluated user's NDCG@k, aligned with `users` (for paired tests).
        user_ndcg_at: cut-off K -> each evaluated user's NDCG@K, aligned with `users` (the NDCG@K
            curve; full-ranking protocols only). Its entry at `k` equals `user_ndcg`.
    """

    protocol: str
    k: int
    hr: float
    ndcg: float
    recall: float
    mrr: float
    coverage: float
    n_users: int
    users: np.ndarray | None = field(default=None, repr=False, compare=False)
    user_ndcg: np.ndarray | None = field(default=None, repr=False, compare=False)
    user_ndcg_at: dict[int, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def ndcg_at(self) -> dict[int, float]:
        """The NDCG@K curve: cut-off -> NDCG averaged over the users ({} when not kept).

        Example:
            >>> evaluate_full(model, split).ndcg_at()   # doctest: +SKIP
            {1: 0.14, 5: 0.13, 10: 0.15, 20: 0.19, 50: 0.26}
        """
        return {c: float(v.mean()) if len(v) else 0.0 for c, v in (self.user_ndcg_at or {}).items()}

    def as_dict(self) -> dict[str, float]:
        """Metric names ('hr@10', 'ndcg@10', ...) to values; then NDCG at the curve's other cut-offs."""
        k = self.k
        return {
            f"hr@{k}": self.hr,
            f"ndcg@{k}": self.ndcg,
            f"recall@{k}": self.recall,
            "mrr": self.mrr,
            "coverage": self.coverage,
            "users": float(self.n_users),
            **{f"ndcg@{c}": v for c, v in self.ndcg_at().items() if c != k},
        }


def evaluate_full(
    model: Recommender, split: Split, k: int = 10, served: bool = True, cutoffs: Sequence[int] = CUTOFFS
) -> Metrics:
    """Full-catalogue ranking of each test user's held-out items.

    Users need at least one train and one test interaction. Each user's train and
    validation items are masked (never recommended again); the relevant items are
    the user's test items, less any already masked (a re-consumed item cannot be
    hit once seen items are masked; users left with none are skipped). `served`:
    score users as the engine serves them (see `scorer_for`). `cutoffs`: the K of
    the per-user NDCG@K curve kept in `Metrics.user_ndcg_at` (from the same scores).

    Example:
        >>> evaluate_full(model, split, k=10).as_dict()["ndcg@10"]   # doctest: +SKIP
    """
    check_k(k)
    seen = split.seen().csr()
    relevant = unseen(split.test.csr(), seen)
    users = np.intersect1d(split.train.active_users(), rows_with_entries(relevant))
    return _rank_full(scorer_for(model, split, served), users, seen, relevant, k, "full", cutoffs)


def scorer_for(model: Recommender, split: Split, served: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """How test users are scored: a function of user rows -> (len(users), n_items) scores.

    Served (the default) is how `Engine.recommend` serves a known user: a model that
    reads a visitor's history (`scores_sessions`: the sequence models, the autoencoders,
    the RBM, LightGCN) gets each user's train + validation events, oldest first, as SASRec's and
    most next-item evaluations do; any other model scores from its trained user state,
    which cannot take in events after training. Not served: every model scores from
    training alone (sequence models then predict the test one step further ahead).
    """
    if not (served and model.scores_sessions and len(split.validation)):
        return model.score
    histories = split.seen().sequences()
    return lambda users: model.score_history([histories[u] for u in users])


def evaluate_sampled(
    model: Recommender, split: Split, k: int = 10, n_negatives: int = 100, seed: int = 0, served: bool = True
) -> Metrics:
    """Leave-one-out with sampled negatives: rank each user's test item among `n_negatives` others.

    For comparison with published numbers only. Krichene & Rendle (KDD 2020) show
    that sampled metrics mislead: they are inconsistent with the full ranking and
    can reverse the order of two models. Prefer `evaluate_full`.

    Each user with a train and a test interaction contributes their latest test item;
    the negatives are drawn uniformly, without replacement, from the items the user
    never interacted with (in any part of the split), seeded. Coverage counts the
    items that appear in some top-k candidate list, over the whole catalogue.
    """
    check_k(k)
    if n_negatives <= 0:
        raise InvalidArgumentError(f"n_negatives must be a positive integer, got {n_negatives!r}")
    test = split.test
    order = np.lexsort((np.arange(len(test)), test.timestamps, test.users))
    last = np.r_[test.users[order][1:] != test.users[order][:-1], True] if len(order) else np.zeros(0, bool)
    positives = dict(zip(test.users[order][last].tolist(), test.items[order][last].tolist()))
    users = np.intersect1d(split.train.active_users(), np.fromiter(positives, dtype=np.int64))
    everything = split.seen().csr() + test.csr()
    rng = np.random.default_rng(seed)
    n_items = test.n_items
    candidates = np.full((len(users), n_negatives + 1), -1, dtype=np.int64)
    for r, u in enumerate(users):
        pool = np.setdiff1d(np.arange(n_items), everything[u].indices, assume_unique=True)
        chosen = rng.choice(pool, min(n_negatives, len(pool)), replace=False)
        candidates[r, 0] = positives[int(u)]
        candidates[r, 1 : 1 + len(chosen)] = chosen
    totals = np.zeros(4)
    shown: set[int] = set()
    score = scorer_for(model, split, served)
    for start in range(0, len(users), _BATCH):
        batch = slice(start, start + _BATCH)
        full = score(users[batch])
        cand = candidates[batch]
        scores = np.take_along_axis(full, np.maximum(cand, 0), axis=1)
        scores[cand < 0] = -np.inf  # a user with fewer free items than n_negatives
        metrics = ranking_metrics(scores, [np.array([0])] * len(cand), k=k)
        totals += np.array(list(metrics.values())) * len(cand)
        tops = np.take_along_axis(cand, top_k(scores, k)[0], axis=1)
        shown.update(tops[tops >= 0].tolist())
    return _metrics("sampled", k, totals, len(users), len(shown) / max(n_items, 1))


@dataclass(frozen=True)
class ColdStartResult:
    """Item cold start: metrics over the test interactions of items unseen in training.

    Attributes:
        metrics: full-catalogue ranking metrics, relevant = the user's cold test items.
        cold_items: item rows held out of training.
        n_test_interactions: test interactions with those items (before dropping users without history).
        train_seconds: time to fit the model on the reduced training data.
    """

    metrics: Metrics
    cold_items: np.ndarray
    n_test_interactions: int
    train_seconds: float


def evaluate_cold_items(
    model: Recommender,
    split: Split,
    item_features: np.ndarray | None = None,
    k: int = 10,
    cold_fraction: float = 0.2,
    seed: int = 0,
    served: bool = True,
) -> ColdStartResult:
    """Fit `model` without a random `cold_fraction` of the items, then rank those items' test interactions.

    All train and validation interactions with the cold items are removed before
    fitting, so the model never sees them (item features, when the model uses them,
    still cover every item: that is what lets a content model score new items).
    Ranking is over the FULL catalogue, not among cold items only: a cold item has to
    beat the warm items a model already knows, as a new product must in a shop.
    Each user's remaining train and validation items are masked; relevant = the
    user's test items that are cold. Users without remaining training history are skipped.
    """
    check_k(k)
    if not 0.0 < cold_fraction < 1.0:
        raise InvalidArgumentError(f"cold_fraction must lie in (0, 1), got {cold_fraction!r}")
    n_items = split.train.n_items
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(n_items, max(1, int(round(cold_fraction * n_items))), replace=False))
    is_cold = np.zeros(n_items, dtype=bool)
    is_cold[cold] = True
    train = split.train.subset(~is_cold[split.train.items])
    validation = split.validation.subset(~is_cold[split.validation.items])
    cold_test = split.test.subset(is_cold[split.test.items])
    start = time.perf_counter()
    model.fit(train, validation, item_features if model.uses_item_features else None)
    seconds = time.perf_counter() - start
    reduced = Split(train, validation, cold_test)
    seen = reduced.seen().csr()
    relevant = cold_test.csr()
    users = np.intersect1d(train.active_users(), rows_with_entries(relevant))
    metrics = _rank_full(scorer_for(model, reduced, served), users, seen, relevant, k, "cold")
    return ColdStartResult(metrics, cold, len(cold_test), seconds)


# ----- tuning ----------------------------------------------------------------
@dataclass(frozen=True)
class TuningResult:
    """Outcome of `tune`.

    Attributes:
        best_config: the hyperparameters (grid keys only) with the best validation NDCG@k.
        best_score: that validation NDCG@k.
        table: one row per configuration tried: its values, 'val_ndcg@k' and 'seconds'.
    """

    best_config: dict[str, Any]
    best_score: float
    table: list[dict[str, Any]]


def tune(
    model_name: str,
    grid: dict[str, list[Any]],
    split: Split,
    budget: int = 10,
    *,
    seed: int = 0,
    item_features: np.ndarray | None = None,
    overrides: dict[str, Any] | None = None,
    k: int = 10,
) -> TuningResult:
    """Pick hyperparameters by validation NDCG@k, trying at most `budget` configurations.

    The grid's full product is tried when it has at most `budget` points, else a
    seeded random sample of `budget` of them (random search, Bergstra & Bengio 2012).
    Every model is fitted on `split.train` with `split.validation` (early stopping)
    and scored on `split.validation` exactly as `evaluate_full` scores the test (users
    with training history, train items masked). The test part is never read.

    Args:
        model_name: a registered model.
        grid: config field -> values to try.
        split: the data; only `train` and `validation` are used.
        budget: most configurations to fit; give every model the same budget.
        seed: seeds the sample of configurations.
        item_features: passed to models that use them.
        overrides: fixed config values for every fit (e.g. epochs, show_progress).
        k: cut-off of the selection metric.

    Example:
        >>> r = tune("itemknn", {"neighbours": [10, 50]}, split, budget=2)   # doctest: +SKIP
        >>> r.best_config                                                    # doctest: +SKIP
        {'neighbours': 50}
    """
    check_k(k)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise InvalidArgumentError(f"budget must be a positive integer, got {budget!r}")
    if len(split.validation) == 0:
        raise InvalidArgumentError("tuning needs a non-empty validation part; use val_fraction > 0")
    fields = {f.name for f in dataclasses.fields(model_class(model_name).config_class)}  # raises when unknown
    unknown = sorted(set(grid) - fields)
    if unknown:
        raise InvalidArgumentError(
            f"{model_name} has no hyperparameters {unknown}; its config fields are {sorted(fields)}"
        )
    empty = [name for name, values in grid.items() if len(values) == 0]
    if empty:
        raise InvalidArgumentError(f"grid values for {empty} are empty lists")
    names = list(grid)
    points = list(itertools.product(*(grid[n] for n in names)))
    if len(points) > budget:
        pick = np.random.default_rng(seed).choice(len(points), budget, replace=False)
        points = [points[i] for i in sorted(pick)]
    # Validation plays the test's part, with the same protocol as `evaluate_full`.
    selection = Split(split.train, split.train.subset(np.zeros(len(split.train), dtype=bool)), split.validation)
    table: list[dict[str, Any]] = []
    for values in points:
        config = dict(zip(names, values))
        model = create_model(model_name, **{**(overrides or {}), **config})
        start = time.perf_counter()
        model.fit(split.train, split.validation, item_features if model.uses_item_features else None)
        seconds = time.perf_counter() - start
        score = evaluate_full(model, selection, k, cutoffs=()).ndcg
        table.append({**config, f"val_ndcg@{k}": score, "seconds": seconds})
    best = max(range(len(table)), key=lambda r: table[r][f"val_ndcg@{k}"])
    return TuningResult({n: table[best][n] for n in names}, table[best][f"val_ndcg@{k}"], table)


# ----- helpers --------------------------------------------------------------------
def _rank_full(
    score: Callable[[np.ndarray], np.ndarray],
    users: np.ndarray,
    seen: sp.csr_matrix,
    relevant: sp.csr_matrix,
    k: int,
    protocol: str,
    cutoffs: Sequence[int] = CUTOFFS,
) -> Metrics:
    """Rank all items for `users` by `score`, `seen` masked, against each user's `relevant` row.

    The NDCG@K curve is measured on the very scores `rank_users` ranks (masked the same
    way), so its value at `k` is the user's NDCG@k to the last bit.
    """
    for c in cutoffs:
        check_k(c)
    curve: list[np.ndarray] = [np.zeros((len(cutoffs), 0))]

    def observed(batch: np.ndarray) -> np.ndarray:
        scores = score(batch)
        masked = np.array(scores, dtype=np.float32, copy=True)
        masked[seen[batch].nonzero()] = -np.inf
        rel = [relevant[u].indices for u in batch]
        curve.append(np.stack([per_user_metrics(masked, rel, c)[f"ndcg@{c}"] for c in cutoffs]))
        return scores

    per_user, shown = rank_users(observed if cutoffs else score, users, seen, relevant, k)
    totals = np.stack(list(per_user.values())).sum(axis=1)
    summary = _metrics(protocol, k, totals, len(users), float(shown.mean()) if shown.size else 0.0)
    at = dict(zip(cutoffs, np.concatenate(curve, axis=1))) if cutoffs else None
    return dataclasses.replace(summary, users=np.asarray(users), user_ndcg=per_user[f"ndcg@{k}"], user_ndcg_at=at)


def _metrics(protocol: str, k: int, totals: np.ndarray, n_users: int, coverage: float) -> Metrics:
    hr, ndcg, recall, mrr = (totals / max(n_users, 1)).tolist()
    return Metrics(protocol, k, hr, ndcg, recall, mrr, coverage, n_users)


def time_fit(
    model: Recommender, split: Split, item_features: np.ndarray | None = None
) -> tuple[Recommender, float]:
    """Fit on train (validation for early stopping); returns the model and the seconds it took."""
    start = time.perf_counter()
    model.fit(split.train, split.validation, item_features if model.uses_item_features else None)
    return model, time.perf_counter() - start


__all__ = [
    "CUTOFFS",
    "ColdStartResult",
    "Metrics",
    "TuningResult",
    "default_grid",
    "evaluate_cold_items",
    "evaluate_full",
    "evaluate_sampled",
    "scorer_for",
    "time_fit",
    "tune",
]
