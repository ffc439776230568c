"""Top-K ranking metrics over full score matrices, and the rating error of rating models.

`ranking_metrics` and `per_user_metrics` take a score matrix (n_users, n_items),
where items that must not be recommended (already seen in training) are already
set to -inf, and the held-out relevant item rows of each user. `rank_users` is the
one routine that scores users in batches, masks what they have seen and measures
them: the evaluation protocols and the models' early stopping both call it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

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


def rank_users(
    score: Callable[[np.ndarray], np.ndarray],
    users: np.ndarray,
    seen: sp.csr_matrix,
    relevant: sp.csr_matrix,
    k: int = 10,
    batch_size: int = 512,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Rank every item for each of `users`, their `seen` items masked, against their `relevant` row.

    The one full-catalogue ranking routine: the evaluation protocols and the
    models' early stopping both rank through it.

    Args:
        score: user rows -> (len(rows), n_items) scores, higher is better.
        users: the user rows to rank for, in the order of the results.
        seen: users x items; a user's entries are never recommended (scored -inf).
        relevant: users x items; a user's entries are the items that count as hits.
        k: cut-off of hr, ndcg and recall.
        batch_size: users scored at once.

    Returns:
        Each user's hr@k, ndcg@k, recall@k and mrr (as `per_user_metrics`, aligned
        with `users`), and a boolean (n_items,) mask of the items in some user's top k.

    Example:
        >>> seen = sp.csr_matrix(np.array([[1.0, 0.0, 0.0]]))
        >>> relevant = sp.csr_matrix(np.array([[0.0, 0.0, 1.0]]))
        >>> per_user, shown = rank_users(lambda rows: np.array([[3.0, 1.0, 2.0]]), np.array([0]), seen, relevant, k=1)
        >>> per_user["hr@1"].tolist(), shown.tolist()
        ([1.0], [False, False, True])
    """
    parts: list[np.ndarray] = [np.zeros((4, 0))]
    shown = np.zeros(relevant.shape[1], dtype=bool)
    names = [f"hr@{k}", f"ndcg@{k}", f"recall@{k}", "mrr"]
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = np.array(score(batch), dtype=np.float32, copy=True)
        scores[seen[batch].nonzero()] = -np.inf
        metrics = per_user_metrics(scores, [relevant[u].indices for u in batch], k=k)
        parts.append(np.stack([metrics[name] for name in names]))
        shown[top_k(scores, k)[0].ravel()] = True
    per_user = np.concatenate(parts, axis=1)
    return dict(zip(names, per_user)), shown


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


def unseen(relevant: sp.csr_matrix, seen: sp.csr_matrix) -> sp.csr_matrix:
    """The entries of `relevant` that are not in `seen`: the hits a ranking that masks `seen` can reach.

    A held-out event on an item the user already had (a re-order) is masked by the ranking, so
    it cannot be a hit; the evaluation and `fit(model="auto")` both leave such events out.

    Example:
        >>> unseen(sp.csr_matrix(np.array([[1.0, 1.0]])), sp.csr_matrix(np.array([[1.0, 0.0]]))).toarray().tolist()
        [[0.0, 1.0]]
    """
    out = (relevant - relevant.multiply(seen > 0)).tocsr()
    out.eliminate_zeros()
    return out


def rows_with_entries(m: sp.csr_matrix) -> np.ndarray:
    """The rows of `m` that hold at least one entry."""
    return np.flatnonzero(np.diff(m.indptr) > 0)
