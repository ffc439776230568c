"""Every model under every protocol, in one table: the personalisation benchmark.

For each model, `compare_models` fits one fresh model per split (temporal and
leave-last-out) and reads from that fit everything the split can tell:

* validation NDCG@k: the validation part ranked over the full catalogue with
  the training items masked (as `tune` scores it). This is the number that
  picks a model; it is also what the models early-stop on, so it flatters them
  a little, alike.
* test metrics over the full catalogue (`evaluate_full`), the protocol to trust;
* on leave-last-out, the sampled protocol (`evaluate_sampled`, 100 negatives),
  only for comparison with published numbers;
* for models that predict ratings (`predict_ratings`), RMSE on the split's test
  ratings with `evaluation.rating`, beside the global-mean baseline.

One more fit per model, on `cold_split` with a seeded 20% of the items removed
from training, gives item cold start (`evaluate_cold_items`). Every fit is
independent, so `ComparisonConfig.jobs` can spread them over worker processes.

The name `auto` (`evaluation.auto`) is a row too: on each split the engine's selection
trains on the training part and selects on the validation, and its pick is fitted and
evaluated like any other row (no cold-start fit). Models already done (`done`, e.g. read back from an
interrupted run's partial file) are not fitted again.

Example:
    >>> comparison = compare_models(data, ["popularity", "itemknn"])   # doctest: +SKIP
    >>> print(evaluation.report.format_comparison(comparison))          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.checks import check_k
from core.errors import InvalidArgumentError
from recommenders.data import InteractionData
from recommenders.registry import create_model, list_models, model_class
from recommenders.splits import Split, leave_last_out, temporal_split

from .auto import AUTO, DEFAULT_AUTO_BUDGET_S, AutoPick, select_on_validation
from .protocols import (
    ColdStartResult,
    Metrics,
    TuningResult,
    default_grid,
    evaluate_cold_items,
    evaluate_full,
    evaluate_sampled,
    time_fit,
    tune,
)
from .rating import RatingReport, global_mean_rmse, rating_report
from .statistics import paired_bootstrap
from .workers import run_tasks

log = logging.getLogger(__name__)

SPLITS = ("temporal", "leave-last-out")
PROTOCOLS = ("full", "sampled", "cold", "rmse")


def rating_only_models() -> frozenset[str]:
    """Names of the models that cannot be the engine's personalisation model (`Recommender.rating_only`).

    Example:
        >>> sorted(rating_only_models())
        ['biasedmf']
    """
    return frozenset(name for name in list_models() if model_class(name).rating_only)


@dataclass(frozen=True)
class ComparisonConfig:
    """What `compare_models` runs.

    Attributes:
        splits: splits to fit on; the first is the primary one (tuning, train time, coverage, the winner).
        protocols: any of 'full', 'sampled' (on leave-last-out), 'cold', 'rmse'.
        k: cut-off of every ranking metric.
        n_negatives: sampled negatives per user in the sampled protocol.
        cold_fraction: share of the items held out of training for cold start.
        cold_split: split the cold-start fit is made on.
        tune_budget: configurations tried per model on the primary split's validation (0: no tuning).
        served_history: score test users as the engine serves them: models that read a
            history get the train + validation events (`evaluation.scorer_for`). False: every
            model scores from training alone. Validation scores are the same either way.
        seed: seeds the models, the negatives, the cold items and the tuning sample.
        jobs: worker processes, one torch thread each (1: everything in this process, torch's
            default threads). Same seeds either way; torch's float sums depend on the thread
            count, so neural models may differ in the last digits.
        auto_budget_s: time budget of the `auto` row's selection on each split's validation.
    """

    splits: tuple[str, ...] = SPLITS
    protocols: tuple[str, ...] = PROTOCOLS
    k: int = 10
    n_negatives: int = 100
    cold_fraction: float = 0.2
    cold_split: str = "leave-last-out"
    tune_budget: int = 0
    served_history: bool = True
    seed: int = 0
    jobs: int = 1
    auto_budget_s: float = DEFAULT_AUTO_BUDGET_S

    def __post_init__(self) -> None:
        check_k(self.k)
        if isinstance(self.auto_budget_s, bool) or not isinstance(self.auto_budget_s, (int, float)) \
                or not self.auto_budget_s >= 0:
            raise InvalidArgumentError(f"auto_budget_s must be a number of seconds >= 0, got {self.auto_budget_s!r}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise InvalidArgumentError(f"jobs must be a positive integer, got {self.jobs!r}")
        for kind, names, valid in (("split", self.splits, SPLITS), ("protocol", self.protocols, PROTOCOLS)):
            bad = [n for n in names if n not in valid]
            if bad or not names:
                raise InvalidArgumentError(f"unknown or no {kind}(s) {bad or list(names)}; valid: {', '.join(valid)}")
        if self.cold_split not in SPLITS:
            raise InvalidArgumentError(f"unknown cold_split {self.cold_split!r}; valid: {', '.join(SPLITS)}")

    @property
    def primary(self) -> str:
        """The split that tunes, picks the winner and gives coverage and train time."""
        return self.splits[0]

    def fitted_splits(self) -> tuple[str, ...]:
        """The requested splits, plus leave-last-out when the sampled protocol needs it."""
        extra = ("leave-last-out",) if "sampled" in self.protocols and "leave-last-out" not in self.splits else ()
        return self.splits + extra


@dataclass(frozen=True)
class SplitResult:
    """One model fitted on one split.

    Attributes:
        validation: full-catalogue ranking of the validation part, training items masked.
        test: full-catalogue ranking of the test part ('full' protocol), or None.
        sampled: the sampled protocol (leave-last-out only), or None.
        rating: RMSE report for rating models ('rmse' protocol), or None.
        train_seconds: time of the fit.
    """

    validation: Metrics
    test: Metrics | None
    sampled: Metrics | None
    rating: RatingReport | None
    train_seconds: float


@dataclass(frozen=True)
class ModelResult:
    """Everything measured for one model.

    Attributes:
        name: registry name.
        config: the config overrides it was fitted with (tuned values included).
        splits: split name -> its fit's results.
        cold: the item cold-start result, or None.
        tuning: the validation search, when tuned.
        selection: for the `auto` row, split name -> its selection report (`SelectionReport.to_dict()`).
    """

    name: str
    config: dict[str, Any]
    splits: dict[str, SplitResult]
    cold: ColdStartResult | None = None
    tuning: TuningResult | None = None
    selection: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class Comparison:
    """The results of `compare_models`.

    Attributes:
        config: what was run.
        models: model name -> its results, in the order asked.
        global_mean_rmse: split name -> RMSE of predicting the training mean ('rmse' protocol).
        excluded_from_winner: models that cannot serve the engine (their class is `rating_only`),
            never picked by `winner`.
    """

    config: ComparisonConfig
    models: dict[str, ModelResult]
    global_mean_rmse: dict[str, float] = field(default_factory=dict)
    excluded_from_winner: frozenset[str] = field(default_factory=rating_only_models)

    def winner(self, split: str | None = None) -> str | None:
        """The single model with the best validation NDCG@k on `split` (default: primary) that can serve the
        engine (`auto` is not a single model)."""
        return self.best_single("validation", split)

    def best_single(self, part: str, split: str | None = None) -> str | None:
        """The single model (not `auto`, not rating-only) with the best NDCG@k on `part` ("validation" or
        "test") of `split` (default: primary); None when no model has that part."""
        split = split or self.config.primary
        scores = {n: getattr(r.splits[split], part).ndcg for n, r in self.models.items()
                  if n != AUTO and n not in self.excluded_from_winner and split in r.splits
                  and getattr(r.splits[split], part) is not None}
        return max(scores, key=lambda n: scores[n]) if scores else None

    def versus(self, baseline: str = "popularity", split: str | None = None) -> dict[str, tuple[float, float, float]]:
        """Each model's test NDCG@k minus `baseline`'s on `split` (default: primary), over the same users,
        with a 95% paired-bootstrap interval: model -> (difference, low, high). Empty without the baseline.

        Example:
            >>> diff, low, high = comparison.versus("popularity")["neumf"]   # doctest: +SKIP
            >>> low > 0   # neumf beats popularity beyond resampling noise  # doctest: +SKIP
        """
        split = split or self.config.primary
        base = self.models.get(baseline)
        reference = base.splits[split].test if base is not None and split in base.splits else None
        if reference is None or reference.user_ndcg is None:
            return {}
        out = {}
        for name, result in self.models.items():
            test = result.splits[split].test if split in result.splits else None
            if name == baseline or test is None or test.user_ndcg is None:
                continue
            if not np.array_equal(test.users, reference.users):
                raise InvalidArgumentError(f"{name} and {baseline} were evaluated on different users of {split}")
            out[name] = paired_bootstrap(test.user_ndcg, reference.user_ndcg, seed=self.config.seed)
        return out

    def n_users(self) -> dict[str, int]:
        """Users evaluated per protocol (the same for every model)."""
        out: dict[str, int] = {}
        for result in self.models.values():
            for split, s in result.splits.items():
                out[f"{split} validation"] = s.validation.n_users
                if s.test is not None:
                    out[f"{split} test"] = s.test.n_users
                if s.sampled is not None:
                    out["sampled"] = s.sampled.n_users
                if s.rating is not None:
                    out[f"{split} rmse ratings"] = s.rating.n_pairs
            if result.cold is not None:
                out["cold"] = result.cold.metrics.n_users
        return out

    def as_dict(self) -> dict[str, Any]:
        """Every number, JSON-able."""
        splits = self.config.fitted_splits()
        return {
            "config": dataclasses.asdict(self.config),
            "primary_split": self.config.primary,
            "winner": {s: self.winner(s) for s in splits},
            "winner_excludes": sorted(self.excluded_from_winner),
            "users": self.n_users(),
            "global_mean_rmse": dict(self.global_mean_rmse),
            "models": {name: _model_dict(r) for name, r in self.models.items()},
            "test_ndcg_vs_popularity": {
                split: {name: dict(zip(("difference", "low", "high"), v)) for name, v in self.versus(split=split).items()}
                for split in splits
            },
        }


def compare_models(
    data: InteractionData,
    names: Sequence[str],
    config: ComparisonConfig | None = None,
    item_features: np.ndarray | None = None,
    overrides: Mapping[str, Any] | None = None,
    on_model: Callable[[Comparison], None] | None = None,
    done: Mapping[str, ModelResult] | None = None,
) -> Comparison:
    """Fit and evaluate each named model on every split and protocol of `config`.

    Args:
        data: the whole interaction log (weights are the ratings RMSE is computed on).
        names: registered model names.
        config: splits, protocols and seeds; default `ComparisonConfig()`.
        item_features: item vectors for models that use them.
        overrides: config values for every model (e.g. epochs, show_progress); tuned values win.
        on_model: called with the results so far after each model (to save partial results of a long run).
        done: results of models already evaluated with this config (resuming a run): reused, not refitted.

    Example:
        >>> c = compare_models(data, ["popularity", "itemknn"], ComparisonConfig(protocols=("full",)))  # doctest: +SKIP
        >>> c.winner()                                                                                  # doctest: +SKIP
        'itemknn'
    """
    config = config or ComparisonConfig()
    done = dict(done or {})
    for name in names:
        if name != AUTO:
            model_class(name)  # raises with the valid names when unknown
    todo = [name for name in names if name not in done]
    builders = {"temporal": temporal_split, "leave-last-out": leave_last_out}
    splits = {s: builders[s](data) for s in dict.fromkeys(config.fitted_splits() + (config.cold_split,))}
    fixed = {"seed": config.seed, **(overrides or {})}
    baseline = {}
    if "rmse" in config.protocols:
        baseline = {s: global_mean_rmse(splits[s].train, splits[s].test) for s in config.fitted_splits()}
    model_configs = {name: dict(fixed) for name in todo}
    tunings: dict[str, TuningResult] = {}
    tuned_names = [name for name in todo if name != AUTO]
    if config.tune_budget > 0:
        tasks = [(_tune, name, splits[config.primary], config, item_features, fixed) for name in tuned_names]
        for name, tuned in zip(tuned_names, run_tasks(tasks, config.jobs)):
            tunings[name] = tuned
            model_configs[name].update(tuned.best_config)
    all_fits = [*config.fitted_splits(), *(["cold"] if "cold" in config.protocols else [])]
    fits = {name: [f for f in all_fits if not (name == AUTO and f == "cold")] for name in todo}
    tasks = [(_fit_auto, fit, splits[fit], config, item_features, fixed) if name == AUTO else
             (_fit, name, model_configs[name], fit, splits[config.cold_split if fit == "cold" else fit], config,
              item_features) for name in todo for fit in fits[name]]
    results = run_tasks(tasks, config.jobs)
    models: dict[str, ModelResult] = {}
    for name in names:
        if name in done:
            models[name] = done[name]
            continue
        parts = {fit: next(results) for fit in fits[name]}
        cold = parts.pop("cold", None)
        shown = {k: v for k, v in model_configs[name].items() if k != "show_progress"}
        if name == AUTO:
            picks: dict[str, AutoPick] = {fit: pick for fit, (_, pick) in parts.items()}
            parts = {fit: result for fit, (result, _) in parts.items()}
            first = picks[config.primary]
            shown = {"picked": first.model, **first.changes, "budget_s": config.auto_budget_s}
            models[name] = ModelResult(name, shown, parts, None, None, {f: p.report for f, p in picks.items()})
        else:
            models[name] = ModelResult(name, shown, parts, cold, tunings.get(name))
        if on_model is not None:
            on_model(Comparison(config, dict(models), baseline))
    return Comparison(config, models, baseline)


def _tune(
    name: str, split: Split, config: ComparisonConfig, item_features: np.ndarray | None, fixed: dict[str, Any]
) -> TuningResult:
    """The model's default grid searched on `split`'s validation part."""
    log.info("%s: tuning on %s validation (%d configurations)", name, config.primary, config.tune_budget)
    return tune(name, default_grid(name), split, config.tune_budget, seed=config.seed, item_features=item_features,
                overrides=fixed, k=config.k)


def _fit(
    name: str,
    model_config: dict[str, Any],
    fit: str,
    split: Split,
    config: ComparisonConfig,
    item_features: np.ndarray | None,
) -> SplitResult | ColdStartResult:
    """One fit: on a split ('temporal', 'leave-last-out') or for item cold start ('cold')."""
    if fit == "cold":
        log.info("%s: item cold start on the %s split", name, config.cold_split)
        return evaluate_cold_items(create_model(name, **model_config), split, item_features, k=config.k,
                                   cold_fraction=config.cold_fraction, seed=config.seed,
                                   served=config.served_history)
    log.info("%s: fitting on the %s split", name, fit)
    return _evaluate_split(name, model_config, fit, split, config, item_features)


def _fit_auto(
    fit: str, split: Split, config: ComparisonConfig, item_features: np.ndarray | None, fixed: dict[str, Any]
) -> tuple[SplitResult, AutoPick]:
    """The `auto` row on one split: select on its validation, then fit and evaluate the pick like any row."""
    pick = select_on_validation(split, item_features, config.auto_budget_s, fixed)
    log.info("auto: picked %s %s on the %s split's validation", pick.model, pick.changes or "(defaults)", fit)
    settings = {k: v for k, v in {**fixed, **pick.changes}.items()
                if k in {f.name for f in dataclasses.fields(model_class(pick.model).config_class)}}
    return _evaluate_split(pick.model, settings, fit, split, config, item_features), pick


def _evaluate_split(
    name: str,
    model_config: dict[str, Any],
    split_name: str,
    split: Split,
    config: ComparisonConfig,
    item_features: np.ndarray | None,
) -> SplitResult:
    """One fit on `split`, then every protocol that reads it."""
    model, seconds = time_fit(create_model(name, **model_config), split, item_features)
    # Validation plays the test's part, exactly as `tune` scores it.
    empty = split.train.subset(np.zeros(len(split.train), dtype=bool))
    validation = evaluate_full(model, Split(split.train, empty, split.validation), config.k)
    served = config.served_history
    test = evaluate_full(model, split, config.k, served=served) if "full" in config.protocols else None
    sampled = None
    if split_name == "leave-last-out" and "sampled" in config.protocols:
        sampled = evaluate_sampled(model, split, config.k, n_negatives=config.n_negatives, seed=config.seed,
                                   served=served)
    rating = None
    if "rmse" in config.protocols and model.predicts_ratings:
        rating = rating_report(model, split.train, split.test)
    return SplitResult(validation, test, sampled, rating, seconds)


def _model_dict(r: ModelResult) -> dict[str, Any]:
    out: dict[str, Any] = {"config": r.config}
    for split, s in r.splits.items():
        part: dict[str, Any] = {"validation": s.validation.as_dict(), "train_seconds": s.train_seconds}
        if s.test is not None:
            part["test"] = s.test.as_dict()
        if s.sampled is not None:
            part["sampled"] = s.sampled.as_dict()
        if s.rating is not None:
            part["rating"] = dataclasses.asdict(s.rating)
        out[split] = part
    if r.cold is not None:
        out["cold"] = {**r.cold.metrics.as_dict(), "cold_items": len(r.cold.cold_items),
                       "test_interactions": r.cold.n_test_interactions, "train_seconds": r.cold.train_seconds}
    if r.tuning is not None:
        out["tuning"] = {"best": r.tuning.best_config, "val_ndcg": r.tuning.best_score, "table": r.tuning.table}
    if r.selection is not None:
        out["selection"] = r.selection
    return out


__all__ = [
    "Comparison",
    "ComparisonConfig",
    "ModelResult",
    "PROTOCOLS",
    "SPLITS",
    "SplitResult",
    "compare_models",
    "rating_only_models",
]
