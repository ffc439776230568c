"""The comparison as a Markdown table: one row per model, the users row, the bootstrap table, the winners;
and each model's NDCG@K curve with bootstrap intervals (the numbers `evaluation.plots` draws)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import InvalidArgumentError

from .comparison import Comparison, ModelResult
from .protocols import Metrics
from .statistics import paired_bootstrap


def format_comparison(comparison: Comparison) -> str:
    """A Markdown table, one row per model, a global-mean RMSE row and a users row; then the winners.

    Columns: primary-split validation NDCG; per split its validation NDCG (other
    splits) and test NDCG / HR (and recall on the primary split); sampled HR / NDCG;
    cold HR / NDCG; RMSE and coverage on the primary split; train seconds of the
    primary fit. The last row gives the users each column averages over (rating
    pairs for RMSE).
    """
    c = comparison.config
    k, primary = c.k, c.primary
    columns: list[tuple[str, Callable[[ModelResult], Any], str]] = [
        (f"val NDCG@{k} ({_short(primary)})", _part(primary, "validation"), "ndcg")
    ]
    for split in c.splits:
        tag = _short(split)
        if split != primary:
            columns.append((f"{tag} val NDCG@{k}", _part(split, "validation"), "ndcg"))
        if "full" in c.protocols:
            test = _part(split, "test")
            columns += [(f"{tag} NDCG@{k}", test, "ndcg"), (f"{tag} HR@{k}", test, "hr")]
            if split == primary:
                columns.append((f"{tag} Recall@{k}", _part(split, "test"), "recall"))
    if "sampled" in c.protocols:
        sampled = _part("leave-last-out", "sampled")
        columns += [(f"sampled HR@{k}", sampled, "hr"), (f"sampled NDCG@{k}", sampled, "ndcg")]
    if "cold" in c.protocols:
        columns += [(f"cold HR@{k}", _cold, "hr"), (f"cold NDCG@{k}", _cold, "ndcg")]
    if "rmse" in c.protocols:
        columns.append((f"RMSE ({_short(primary)})", _part(primary, "rating"), "rmse"))
    if "full" in c.protocols:
        columns.append((f"coverage@{k}", _part(primary, "test"), "coverage"))

    rows = [["model", *(title for title, _, _ in columns), "train s"]]
    for name, result in comparison.models.items():
        cells = [_cell(getattr(part, attr) if (part := get(result)) is not None else None) for _, get, attr in columns]
        rows.append([name, *cells, f"{result.splits[primary].train_seconds:.1f}"])
    if primary in comparison.global_mean_rmse:
        mean = _cell(comparison.global_mean_rmse[primary])
        rows.append(["global mean", *(mean if attr == "rmse" else "-" for _, _, attr in columns), "-"])
    counts = []
    for _, get, _ in columns:
        parts = [get(r) for r in comparison.models.values()]
        n = {getattr(p, "n_users", getattr(p, "n_pairs", None)) for p in parts if p is not None}
        counts.append("/".join(str(x) for x in sorted(n)) or "-")
    rows.append(["users", *counts, "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(r, widths))) + " |" for r in rows]
    lines.insert(1, "| " + " | ".join("-" * w if i == 0 else "-" * (w - 1) + ":" for i, w in enumerate(widths)) + " |")

    lines.append("")
    if "cold" in c.protocols:
        lines.append(f"Cold start: {c.cold_split} split, {c.cold_fraction:.0%} of the items held out of training "
                     f"(seed {c.seed}), ranked over the full catalogue.")
    if "sampled" in c.protocols:
        lines.append(f"Sampled: leave-last-out, {c.n_negatives} negatives; only for comparison with published numbers.")
    if "rmse" in c.protocols:
        lines.append(f"RMSE: {primary} test ratings, models with predict_ratings; 'users' counts rating pairs.")
    lines += _versus_table(comparison)
    excluded = ", ".join(sorted(comparison.excluded_from_winner)) or "none"
    for split in c.fitted_splits():
        best = comparison.winner(split)
        if best is not None:
            score = comparison.models[best].splits[split].validation.ndcg
            lines.append(f"Validation winner ({split}, excluding {excluded}): {best} (NDCG@{k} {score:.4f})")
    return "\n".join(lines)


@dataclass(frozen=True)
class NdcgCurve:
    """One model's test NDCG@K curve on one split, with 95% bootstrap intervals.

    Attributes:
        model: registry name.
        split: 'temporal' or 'leave-last-out'.
        cutoffs: the K values.
        ndcg: mean NDCG@K over the test users, per cut-off.
        low, high: 95% percentile-bootstrap interval of that mean (users resampled; the same
            resamples for every model of the split, so the bands are paired).
        baseline: the model the differences are taken against, or None.
        diff, diff_low, diff_high: NDCG@K minus the baseline's over the same users, with its 95%
            paired-bootstrap interval (`evaluation.statistics.paired_bootstrap`); None for the
            baseline itself or without one.
        n_users: test users averaged over.
    """

    model: str
    split: str
    cutoffs: tuple[int, ...]
    ndcg: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    baseline: str | None = None
    diff: tuple[float, ...] | None = None
    diff_low: tuple[float, ...] | None = None
    diff_high: tuple[float, ...] | None = None
    n_users: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NdcgCurve:
        """Rebuild from `dataclasses.asdict` output read back from JSON (lists become tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def ndcg_curves(
    comparison: Comparison, split: str | None = None, baseline: str = "popularity", n_resamples: int = 10_000
) -> list[NdcgCurve]:
    """Each model's test NDCG@K curve on `split` (default: primary) with 95% bootstrap bands.

    Needs the per-user NDCG@K that `evaluate_full` keeps (`Metrics.user_ndcg_at`); models
    without a test on `split` are left out. The bootstrap uses the comparison's seed, so the
    difference interval at K = k is the one `Comparison.versus` prints.

    Example:
        >>> [c.model for c in ndcg_curves(comparison, "temporal")]   # doctest: +SKIP
        ['itemknn', 'popularity']
    """
    split = split or comparison.config.primary
    seed = comparison.config.seed
    tests = {n: r.splits[split].test for n, r in comparison.models.items() if split in r.splits}
    tests = {n: t for n, t in tests.items() if t is not None and t.user_ndcg_at and t.n_users}
    reference = tests.get(baseline)
    curves = []
    for name, test in tests.items():
        at = test.user_ndcg_at or {}
        cutoffs = tuple(sorted(at))
        # paired_bootstrap against zeros is the plain bootstrap of the mean, with the same resamples for every model
        mean, low, high = zip(*(paired_bootstrap(at[c], np.zeros_like(at[c]), n_resamples, seed) for c in cutoffs))
        versus: dict[str, Any] = {}
        if reference is not None and name != baseline:
            if not np.array_equal(test.users, reference.users):
                raise InvalidArgumentError(f"{name} and {baseline} were evaluated on different users of {split}")
            base = reference.user_ndcg_at or {}
            diff = zip(*(paired_bootstrap(at[c], base[c], n_resamples, seed) for c in cutoffs))
            versus = dict(zip(("diff", "diff_low", "diff_high"), diff))
        curves.append(NdcgCurve(name, split, cutoffs, mean, low, high, baseline if reference is not None else None,
                                n_users=test.n_users, **versus))
    return curves


def format_ndcg_curves(curves: Sequence[NdcgCurve]) -> str:
    """A Markdown table per split: test NDCG@K per model and cut-off, with its 95% bootstrap interval.

    Example:
        >>> print(format_ndcg_curves(ndcg_curves(comparison)))   # doctest: +SKIP
    """
    lines: list[str] = []
    for split in dict.fromkeys(c.split for c in curves):
        here = [c for c in curves if c.split == split]
        cutoffs = here[0].cutoffs
        lines += [f"Test NDCG@K on {split} ({here[0].n_users} users), 95% bootstrap interval:", "",
                  "| model | " + " | ".join(f"NDCG@{k}" for k in cutoffs) + " |",
                  "| --- |" + " ---: |" * len(cutoffs)]
        for c in here:
            cells = [f"{m:.4f} [{lo:.4f}, {hi:.4f}]" for m, lo, hi in zip(c.ndcg, c.low, c.high)]
            lines.append(f"| {c.model} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _versus_table(comparison: Comparison) -> list[str]:
    """Lines of a Markdown table: test NDCG minus popularity's per split, with 95% paired-bootstrap intervals."""
    versus = {s: v for s in comparison.config.fitted_splits() if (v := comparison.versus(split=s))}
    splits = list(versus)
    if not splits:
        return []
    k = comparison.config.k
    lines = ["", f"Test NDCG@{k} minus popularity's, same users, 95% paired-bootstrap interval "
                 "(10,000 resamples of users; * = the interval excludes 0):", "",
             "| model | " + " | ".join(_short(s) for s in splits) + " |", "| --- |" + " ---: |" * len(splits)]
    for name in comparison.models:
        cells = []
        for s in splits:
            d, low, high = versus[s].get(name, (None, None, None))
            cells.append("-" if d is None else f"{d:+.4f} [{low:+.4f}, {high:+.4f}]{' *' if low > 0 or high < 0 else ''}")
        if any(cell != "-" for cell in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _short(split: str) -> str:
    return {"temporal": "temporal", "leave-last-out": "LLO"}[split]


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _part(split: str, attribute: str) -> Callable[[ModelResult], Any]:
    """Reads one part (validation, test, sampled, rating) of a model's fit on `split`, None if absent."""
    return lambda r: getattr(r.splits[split], attribute) if split in r.splits else None


def _cold(r: ModelResult) -> Metrics | None:
    return r.cold.metrics if r.cold is not None else None
