"""The `auto` row of the model comparison: the engine's own selection, made on a split's validation events.

`select_on_validation` runs `engine.selection.select_model` (the routine `engine.fit(model="auto")`
uses) with the split's own train/validation events: every candidate trains on `split.train`,
stops early on `split.validation` and is scored on `split.validation`, the same events every
other row is stopped early and reported on. So the `auto` row's validation NDCG@10 is, by
construction, at least every single default model's whose defaults it trained (within the
budget), and the test events are never seen. The comparison then fits the picked model with the
picked settings exactly like every other row and evaluates it the same way. What `auto` costs is
then its test NDCG@10 against the oracle, the best single model chosen on test.

Inside a shop's engine the log has no split of its own, so `fit(model="auto")` makes one from
each user's latest events (`engine.selection`); here the evaluation's split takes its place.

Example:
    >>> pick = select_on_validation(split, features, budget_s=600, overrides={"seed": 0})  # doctest: +SKIP
    >>> pick.model, pick.changes                                                         # doctest: +SKIP
    ('ease', {'l2': 200.0})
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.selection import candidate_fields, default_candidates, select_model
from recommenders.splits import Split

log = logging.getLogger(__name__)

AUTO = "auto"
# Enough for every candidate's defaults on ML-100K and Instacart on 2 cores, and a small search.
DEFAULT_AUTO_BUDGET_S = 600.0


@dataclass(frozen=True)
class AutoPick:
    """What the selection on a split's validation chose.

    Attributes:
        model: the registry name of the winner.
        changes: its settings that differ from the defaults (it is fitted with these).
        report: `SelectionReport.to_dict()`: every trial with its inner-validation NDCG@10.
    """

    model: str
    changes: dict[str, Any]
    report: dict[str, Any]

    @property
    def validation_ndcg(self) -> float:
        """The winner's NDCG@10 on the selection events (the split's validation)."""
        return max(r["ndcg"] for r in self.report["rows"] if r["ndcg"] is not None)


def select_on_validation(
    split: Split, item_features: np.ndarray | None, budget_s: float, overrides: Mapping[str, Any] | None = None
) -> AutoPick:
    """`select_model` trained on `split.train`, selecting on `split.validation` (never the test), within `budget_s` s.

    Args:
        split: the evaluation split; its test part is not read.
        item_features: item vectors for the candidates that use them, or None.
        budget_s: the selection's time budget (see `engine.selection`).
        overrides: config values for every candidate that has the field (e.g. seed, epochs);
            `show_progress` is passed on as the selection's own flag.
    """
    overrides = dict(overrides or {})
    show_progress = bool(overrides.pop("show_progress", False))
    candidates = default_candidates(split.train)
    known = candidate_fields(candidates)
    applicable = {k: v for k, v in overrides.items() if k in known}
    log.info("auto: selecting on the validation part (%d training events, budget %g s)", len(split.train), budget_s)
    selection = Split(split.train, split.validation, split.validation)
    report = select_model(split.train, item_features, budget_s=budget_s, candidates=candidates,
                          show_progress=show_progress, split=selection, **applicable)
    return AutoPick(report.winner, dict(report.winner_changes), report.to_dict())


__all__ = ["AUTO", "DEFAULT_AUTO_BUDGET_S", "AutoPick", "select_on_validation"]
