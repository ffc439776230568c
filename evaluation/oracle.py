"""What the model selection costs: the `auto` row against the oracle, the best single model chosen on test.

The oracle is not a method anyone can use (it looks at the test), only the ceiling of what
picking one model could have given. `auto_vs_oracle` puts the `auto` row's test NDCG@k
beside the oracle's, with the difference over the same users and its 95% paired-bootstrap
interval (`Comparison.versus`), and beside the best single model on validation (the
comparison's winner, what the selection tries to find).

Example:
    >>> print(format_auto_vs_oracle(comparison))   # doctest: +SKIP
    auto picked ease (validation NDCG@10 0.1021); test NDCG@10 0.1503 vs the oracle lightgcn ...
"""

from __future__ import annotations

from typing import Any

from .auto import AUTO
from .comparison import Comparison


def oracle(comparison: Comparison, split: str | None = None) -> str | None:
    """The single model (not `auto`, not rating-only) with the best test NDCG@k on `split` (default: primary)."""
    return comparison.best_single("test", split)


def auto_vs_oracle(comparison: Comparison, split: str | None = None) -> dict[str, Any] | None:
    """The `auto` row against the oracle and the validation winner on `split`; None without an `auto` test.

    Keys: picked, picked_settings, selection_validation_ndcg (the pick's score on the selection's own
    inner validation), validation_ndcg / test_ndcg (the auto row on the split's validation and test),
    oracle, oracle_test_ndcg, difference, low, high (auto minus oracle, 95% paired bootstrap),
    best_single_on_validation and its validation_ndcg, validation_margin (auto's validation NDCG minus it).
    """
    split = split or comparison.config.primary
    auto = comparison.models.get(AUTO)
    if auto is None or split not in auto.splits or auto.splits[split].test is None:
        return None
    best = oracle(comparison, split)
    winner = comparison.winner(split)
    if best is None or winner is None:
        return None
    report = (auto.selection or {}).get(split, {})
    rows = [r for r in report.get("rows", []) if r.get("ndcg") is not None]
    picked = report.get("winner", auto.config.get("picked"))
    inner = max((r["ndcg"] for r in rows), default=None)
    settings = report.get("winner_changes", {})
    difference, low, high = comparison.versus(best, split)[AUTO] if best != AUTO else (0.0, 0.0, 0.0)
    result = auto.splits[split]
    winner_val = comparison.models[winner].splits[split].validation.ndcg
    return {
        "split": split, "picked": picked, "picked_settings": settings, "selection_validation_ndcg": inner,
        "validation_ndcg": result.validation.ndcg, "test_ndcg": result.test.ndcg,
        "oracle": best, "oracle_test_ndcg": comparison.models[best].splits[split].test.ndcg,
        "difference": difference, "low": low, "high": high,
        "best_single_on_validation": winner, "best_single_validation_ndcg": winner_val,
        "validation_margin": result.validation.ndcg - winner_val,
    }


def format_auto_vs_oracle(comparison: Comparison) -> str:
    """One line per split: what auto picked, its test NDCG@k against the oracle's, the difference and interval."""
    k = comparison.config.k
    kind = "tuned" if comparison.config.tune_budget else "default"
    lines = []
    for split in comparison.config.fitted_splits():
        r = auto_vs_oracle(comparison, split)
        if r is None:
            continue
        settings = ", ".join(f"{key}={v}" for key, v in r["picked_settings"].items()) or "its defaults"
        inner = "" if r["selection_validation_ndcg"] is None else f"{r['selection_validation_ndcg']:.4f} on the "\
            "selection's own validation, "
        lines.append(
            f"{split}: auto picked {r['picked']} ({settings}; validation NDCG@{k} {inner}{r['validation_ndcg']:.4f} "
            f"on the split's validation vs {r['best_single_validation_ndcg']:.4f} for the best single model on "
            f"validation, {r['best_single_on_validation']}); test NDCG@{k} {r['test_ndcg']:.4f} vs the oracle "
            f"{r['oracle']} (best single {kind} model on test) {r['oracle_test_ndcg']:.4f}: difference "
            f"{r['difference']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}] (95% paired bootstrap over users)")
    return "\n".join(lines)


__all__ = ["auto_vs_oracle", "format_auto_vs_oracle", "oracle"]
