"""Top-K ranking metrics over full score matrices.

All functions take a score matrix (n_users, n_items), where items that must not
be recommended (already seen in training) are already set to -inf, and the
held-out relevant item rows of each user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.errors import InteractionsError, InvalidArgumentError
from core.ranking import top_k

from .data import InteractionData


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
    top = top_k(scores, k)[0]
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


def rmse(model: Any, test: InteractionData) -> float:
    """Root mean squared error of a rating model's `predict_ratings` against `test.weights`.

    Example:
        >>> rmse(create_model("biasedmf").fit(train), test)   # doctest: +SKIP
        0.97
    """
    if not getattr(model, "predicts_ratings", False):
        raise InvalidArgumentError(f"model {type(model).__name__} has no predict_ratings; RMSE needs a rating model")
    if len(test) == 0:
        raise InteractionsError("cannot compute RMSE on an empty test log")
    if (test.n_users, test.n_items) != (model.n_users, model.n_items):
        raise InvalidArgumentError(
            f"test has {test.n_users} users x {test.n_items} items but the model was fitted on "
            f"{model.n_users} x {model.n_items}"
        )
    predicted = np.asarray(model.predict_ratings(test.users, test.items), dtype=np.float64)
    return float(np.sqrt(np.mean((predicted - test.weights.astype(np.float64)) ** 2)))
