"""Top-K ranking metrics over full score matrices.

All functions take a score matrix (n_users, n_items), where items that must not
be recommended (already seen in training) are already set to -inf, and the
held-out relevant item rows of each user.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best scores per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def ranking_metrics(scores: np.ndarray, relevant: Sequence[np.ndarray], k: int = 10) -> dict[str, float]:
    """HR@k, NDCG@k, Recall@k and MRR averaged over users (rows).

    Example:
        >>> s = np.array([[0.9, 0.1, 0.5]])
        >>> ranking_metrics(s, [np.array([2])], k=2)["hr@2"]
        1.0
    """
    per_user = per_user_metrics(scores, relevant, k)
    return {name: float(values.mean()) if len(values) else 0.0 for name, values in per_user.items()}


def per_user_metrics(scores: np.ndarray, relevant: Sequence[np.ndarray], k: int = 10) -> dict[str, np.ndarray]:
    """HR@k, NDCG@k, Recall@k and MRR of each user (row), as float64 arrays.

    Example:
        >>> s = np.array([[0.9, 0.1, 0.5], [0.9, 0.1, 0.5]])
        >>> per_user_metrics(s, [np.array([2]), np.array([1])], k=2)["hr@2"]
        array([1., 0.])
    """
    if scores.shape[0] != len(relevant):
        raise ValueError(f"{scores.shape[0]} score rows but {len(relevant)} relevant sets")
    top = top_k(scores, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    out = np.zeros((4, len(relevant)))
    for row, rel in enumerate(relevant):
        rel_set = set(int(x) for x in rel)
        hits = np.array([int(c) in rel_set for c in top[row]], dtype=bool)
        n_rel = len(rel_set)
        ideal = discounts[: min(n_rel, k)].sum()
        out[0, row] = float(hits.any())
        out[1, row] = float((discounts[: len(hits)][hits]).sum() / ideal) if ideal else 0.0
        out[2, row] = hits.sum() / min(n_rel, k) if n_rel else 0.0
        # MRR over the full ranking: rank of the best relevant item.
        best = scores[row, list(rel_set)].max()
        out[3, row] = 1.0 / (1 + int((scores[row] > best).sum()))
    return {f"hr@{k}": out[0], f"ndcg@{k}": out[1], f"recall@{k}": out[2], "mrr": out[3]}


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over paired users and its 95% percentile-bootstrap interval (resampling users).

    Example:
        >>> diff, low, high = paired_bootstrap(np.array([1.0, 0.5, 0.8]), np.array([0.5, 0.5, 0.3]))
        >>> round(diff, 3), low <= diff <= high
        (0.333, True)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired_bootstrap needs two equally long, non-empty 1-d arrays, got {a.shape} and {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n_resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)
