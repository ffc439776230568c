"""Negative sampling for the pairwise models (BPR-MF, NeuMF, LightGCN), vectorised over a whole batch.

A "negative" of a user is an item the user has not interacted with. Drawing them one
example at a time in Python, or testing membership with scipy's fancy indexing, cost
more than the training step itself; here a batch is drawn at once and checked against
the sorted keys `user * n_items + item` of the training pairs with one `searchsorted`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from core.errors import InvalidArgumentError


class NegativeSampler:
    """Uniform draws from `pool` (default: every item) that are never one of the user's positives.

    Clashes are redrawn for a few vectorised rounds; the few left after that (users who
    have seen most of the pool) are drawn exactly from the user's unseen pool items. A
    user who has seen every pool item gets uniform pool items: there is nothing else.

    Attributes:
        users, items: the training pairs (row-major order of `matrix`), int64.
        pool: the item rows negatives are drawn from.

    Example:
        >>> m = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32))
        >>> s = NegativeSampler(m, np.random.default_rng(0))
        >>> neg = s(np.array([0, 0, 1]), 5)
        >>> neg.shape, bool(np.isin(neg[:2], [0, 1]).any()), bool((neg[2] == 2).any())
        ((3, 5), False, False)
    """

    rounds = 4

    def __init__(self, matrix: sp.csr_matrix, rng: np.random.Generator, pool: np.ndarray | None = None) -> None:
        matrix = sp.csr_matrix(matrix)
        self.n_items = matrix.shape[1]
        self.rng = rng
        self.users = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        self.items = matrix.indices.astype(np.int64)
        self.pool = np.arange(self.n_items, dtype=np.int64) if pool is None else np.asarray(pool, dtype=np.int64)
        if len(self.pool) == 0:
            raise InvalidArgumentError("negative sampling needs a non-empty pool of items, got none")
        self.keys = np.sort(self.users * self.n_items + self.items)
        self._indptr, self._indices = matrix.indptr, matrix.indices

    def __call__(self, users: np.ndarray, n: int = 1) -> np.ndarray:
        """(len(users), n) item rows from the pool, none a positive of its row's user (where one exists)."""
        users = np.asarray(users, dtype=np.int64)
        neg = self.pool[self.rng.integers(0, len(self.pool), size=(len(users), n))]
        clash = self.seen(users[:, None], neg)
        for _ in range(self.rounds):
            if not clash.any():
                return neg
            neg[clash] = self.pool[self.rng.integers(0, len(self.pool), size=int(clash.sum()))]
            clash[clash] = self.seen(np.broadcast_to(users[:, None], neg.shape)[clash], neg[clash])
        for row, col in zip(*np.nonzero(clash)):
            user = users[row]
            unseen = np.setdiff1d(self.pool, self._indices[self._indptr[user] : self._indptr[user + 1]])
            if len(unseen):
                neg[row, col] = unseen[self.rng.integers(0, len(unseen))]
        return neg

    def seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean array (broadcast shape): whether each (user, item) is a training pair."""
        keys = users * self.n_items + items
        if len(self.keys) == 0:
            return np.zeros(keys.shape, dtype=bool)
        found = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return self.keys[found] == keys
