"""Row-indexed interaction arrays: what the recommender models train on.

The public API speaks raw user and item ids (`engine.interactions.Interactions`);
models see only dense row indices, so every split of one log shares the same
`n_users` and `n_items` and a row means the same user or item everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class InteractionData:
    """Interactions as parallel arrays of row indices.

    Attributes:
        users: int64 user rows, shape (n,).
        items: int64 item rows, shape (n,).
        timestamps: int64 seconds, shape (n,).
        weights: float32 strength of each event (a rating, a purchase weight), shape (n,).
        n_users: number of user rows in the shared vocabulary.
        n_items: number of item rows in the shared vocabulary.

    Example:
        >>> d = InteractionData.from_arrays([0, 0, 1], [2, 0, 1], n_users=2, n_items=3)
        >>> d.csr().toarray().tolist()
        [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    weights: np.ndarray
    n_users: int
    n_items: int

    @classmethod
    def from_arrays(
        cls,
        users: object,
        items: object,
        timestamps: object | None = None,
        weights: object | None = None,
        *,
        n_users: int | None = None,
        n_items: int | None = None,
    ) -> InteractionData:
        """Build from array-likes; missing timestamps count up, missing weights are 1."""
        u = np.asarray(users, dtype=np.int64)
        i = np.asarray(items, dtype=np.int64)
        if u.shape != i.shape or u.ndim != 1:
            raise ValueError(f"users and items must be 1-d and equally long, got {u.shape} and {i.shape}")
        t = np.arange(len(u), dtype=np.int64) if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        w = np.ones(len(u), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
        nu = int(u.max()) + 1 if n_users is None else int(n_users)
        ni = int(i.max()) + 1 if n_items is None else int(n_items)
        if len(u) and (u.min() < 0 or u.max() >= nu):
            raise ValueError(f"user rows must lie in [0, {nu}), got range [{u.min()}, {u.max()}]")
        if len(i) and (i.min() < 0 or i.max() >= ni):
            raise ValueError(f"item rows must lie in [0, {ni}), got range [{i.min()}, {i.max()}]")
        return cls(u, i, t, w, nu, ni)

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, mask: np.ndarray) -> InteractionData:
        """The interactions where `mask` is true, keeping the vocabulary sizes."""
        return InteractionData(
            self.users[mask], self.items[mask], self.timestamps[mask], self.weights[mask], self.n_users, self.n_items
        )

    def csr(self, binary: bool = True) -> sp.csr_matrix:
        """User x item matrix; repeated pairs are summed, or set to 1 when `binary`."""
        m = sp.csr_matrix(
            (self.weights.astype(np.float32), (self.users, self.items)), shape=(self.n_users, self.n_items)
        )
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    def sequences(self) -> list[np.ndarray]:
        """Each user's item rows in time order (ties keep log order); empty arrays for absent users."""
        order = np.lexsort((np.arange(len(self.users)), self.timestamps, self.users))
        users, items = self.users[order], self.items[order]
        bounds = np.searchsorted(users, np.arange(self.n_users + 1))
        return [items[bounds[r] : bounds[r + 1]] for r in range(self.n_users)]

    def active_users(self) -> np.ndarray:
        """Sorted rows of the users that have at least one interaction."""
        return np.unique(self.users)

    def item_counts(self) -> np.ndarray:
        """Number of interactions per item row, shape (n_items,)."""
        return np.bincount(self.items, minlength=self.n_items)


def history_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary visitors x items matrix of anonymous histories (item rows; repeats count once).

    Example:
        >>> history_matrix([np.array([2, 0, 2]), np.array([], dtype=np.int64)], n_items=3).toarray().tolist()
        [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    rows = np.concatenate([np.full(len(h), r) for r, h in enumerate(histories)]) if histories else np.zeros(0)
    cols = np.concatenate(histories) if histories else np.zeros(0)
    m = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(histories), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m
