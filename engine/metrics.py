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
    if scores.shape[0] != len(relevant):
        raise ValueError(f"{scores.shape[0]} score rows but {len(relevant)} relevant sets")
    top = top_k(scores, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hr = ndcg = recall = mrr = 0.0
    for row, rel in enumerate(relevant):
        rel_set = set(int(x) for x in rel)
        hits = np.array([int(c) in rel_set for c in top[row]], dtype=bool)
        n_rel = len(rel_set)
        hr += float(hits.any())
        ideal = discounts[: min(n_rel, k)].sum()
        ndcg += float((discounts[: len(hits)][hits]).sum() / ideal) if ideal else 0.0
        recall += hits.sum() / min(n_rel, k) if n_rel else 0.0
        # MRR over the full ranking: rank of the best relevant item.
        rel_scores = scores[row, list(rel_set)]
        best = rel_scores.max()
        rank = 1 + int((scores[row] > best).sum())
        mrr += 1.0 / rank
    n = max(len(relevant), 1)
    return {f"hr@{k}": hr / n, f"ndcg@{k}": ndcg / n, f"recall@{k}": recall / n, "mrr": mrr / n}
