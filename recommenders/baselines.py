"""Baselines every neural model must beat: popularity, item-kNN, content.

Well-tuned simple baselines are hard to beat (Dacrema et al. 2019; Rendle et
al. 2020, "Neural Collaborative Filtering vs. Matrix Factorization Revisited"),
so they are implemented with care and tuned with the same budget as the rest.
The matrix-factorisation baselines (ALS, BPR-MF) are in `recommenders.mf`.

* `popularity`: training item counts, the same list for everyone.
* `itemknn`: cosine item-item similarity on the binary matrix, top-k neighbours, shrinkage.
* `content`: cosine between an item's content vector and the mean content vector of a history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from core.errors import InvalidArgumentError

from .base import Recommender
from .config import ModelConfig, check_non_negative, check_positive
from .data import InteractionData, history_matrix


def _columns(scores: np.ndarray, items: np.ndarray | None) -> np.ndarray:
    """Restrict a full score matrix to the candidate item rows, when given."""
    return scores if items is None else scores[:, items]


# ----- popularity -----------------------------------------------------------
class Popularity(Recommender):
    """Ranks items by how often they occur in training; the same for every user.

    Example:
        >>> d = InteractionData.from_arrays([0, 1, 1], [2, 2, 0], n_items=3)
        >>> Popularity(show_progress=False).fit(d).score([0]).tolist()
        [[1.0, 0.0, 2.0]]
    """

    name = "popularity"
    tuning_grid: ClassVar[dict[str, list[Any]] | None] = {}  # nothing to tune

    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> Popularity:
        self._remember(train)
        assert self.train_matrix is not None
        # Count users, not events, so a user repeating an item does not inflate it.
        self.counts = np.asarray(self.train_matrix.sum(axis=0), dtype=np.float32).ravel()
        return self

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        return _columns(np.tile(self.counts, (len(users), 1)), items)

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        return _columns(np.tile(self.counts, (len(histories), 1)), items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts = arrays["counts"]


# ----- item-kNN ---------------------------------------------------------------
@dataclass(frozen=True)
class ItemKNNConfig(ModelConfig):
    """Item-kNN settings.

    Attributes:
        neighbours: similarities kept per item (the k most similar items).
        shrinkage: added to the cosine denominator, damping similarities backed by few users.
    """

    # Best on ML-100K validation (both splits); large k and little shrinkage suit dense data.
    neighbours: int = 400
    shrinkage: float = 5.0

    def __post_init__(self) -> None:
        check_positive("ItemKNN", self, ("neighbours",), ())
        check_non_negative("ItemKNN", self, ("shrinkage",))


class ItemKNN(Recommender):
    """Item-based collaborative filtering with cosine similarity (Sarwar et al. 2001).

    score(u, j) = sum over the items i in u's history of sim(i, j), where sim keeps
    only j's `neighbours` most similar items.

    Example:
        >>> d = InteractionData.from_arrays([0, 0, 1, 1, 2], [0, 1, 0, 1, 0], n_items=3)
        >>> m = ItemKNN(show_progress=False, shrinkage=0.0).fit(d)
        >>> bool(m.score_history([[0]])[0, 1] > m.score_history([[0]])[0, 2])
        True
    """

    name = "itemknn"
    config_class = ItemKNNConfig
    tuning_grid: ClassVar[dict[str, list[Any]] | None] = {
        "neighbours": [50, 100, 200, 400, 800],
        "shrinkage": [0.0, 5.0, 20.0, 100.0],
    }
    config: ItemKNNConfig

    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> ItemKNN:
        cfg = self.config
        self._remember(train)
        assert self.train_matrix is not None
        x = self.train_matrix.astype(np.float32)
        co = (x.T @ x).tocoo()
        norms = np.sqrt(co.diagonal()).astype(np.float32)  # |users of item i|^(1/2) on a binary matrix
        keep = co.row != co.col  # an item is not its own neighbour
        rows, cols, vals = co.row[keep], co.col[keep], co.data[keep]
        vals = vals / (norms[rows] * norms[cols] + cfg.shrinkage + 1e-12)
        self.similarity = _top_k_per_column(rows, cols, vals.astype(np.float32), self.n_items, cfg.neighbours)
        return self

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        assert self.train_matrix is not None
        return _columns((self.train_matrix[users] @ self.similarity).toarray(), items)

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        return _columns((history_matrix(histories, self.n_items) @ self.similarity).toarray(), items)

    def _state(self) -> dict[str, np.ndarray]:
        s = self.similarity
        return {"indptr": s.indptr.astype(np.int64), "indices": s.indices.astype(np.int64), "data": s.data}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.similarity = sp.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(self.n_items, self.n_items)
        )


def _top_k_per_column(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int, k: int) -> sp.csr_matrix:
    """An n x n CSR matrix keeping, in each column, the k largest of the given entries."""
    # Rank entries within each column by descending value, in one sort.
    order = np.lexsort((-vals, cols))
    cols_sorted = cols[order]
    starts = np.searchsorted(cols_sorted, np.arange(n))
    rank = np.arange(len(order)) - starts[cols_sorted]
    kept = order[rank < k]
    return sp.csr_matrix((vals[kept], (rows[kept], cols[kept])), shape=(n, n))


# ----- content ------------------------------------------------------------------
class Content(Recommender):
    """Content-based: cosine between each item's vector and the mean vector of a user's history.

    Needs `item_features` (n_items, dim), e.g. text embeddings of the catalog; rows
    are L2-normalised first. Scores new items as well as old, so it handles item cold start.

    Example:
        >>> d = InteractionData.from_arrays([0], [0], n_items=3)
        >>> f = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], dtype=np.float32)
        >>> s = Content(show_progress=False).fit(d, item_features=f).score([0])
        >>> bool(s[0, 1] > s[0, 2])
        True
    """

    name = "content"
    uses_item_features = True
    tuning_grid: ClassVar[dict[str, list[Any]] | None] = {}  # nothing to tune

    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> Content:
        if item_features is None:
            raise InvalidArgumentError("content needs item_features, an (n_items, dim) array of item vectors")
        feats = np.asarray(item_features, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[0] != train.n_items:
            raise InvalidArgumentError(
                f"item_features must have shape ({train.n_items}, dim), one row per item, got {feats.shape}"
            )
        if not np.isfinite(feats).all():
            raise InvalidArgumentError("item_features contain NaN or infinite values")
        self._remember(train)
        self.features = _normalise(feats)
        return self

    def _profiles(self, x: sp.csr_matrix) -> np.ndarray:
        """L2-normalised mean content vector of each row's items (zero for an empty row)."""
        counts = np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1.0)
        return _normalise(np.asarray(x @ self.features) / counts[:, None])

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        assert self.train_matrix is not None
        f = self.features if items is None else self.features[items]
        return self._profiles(self.train_matrix[users]) @ f.T

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        f = self.features if items is None else self.features[items]
        return self._profiles(history_matrix(histories, self.n_items)) @ f.T

    def _state(self) -> dict[str, np.ndarray]:
        return {"features": self.features}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.features = arrays["features"]


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norms > 0, norms, 1.0)).astype(np.float32)

