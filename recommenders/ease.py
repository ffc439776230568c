"""EASE: an item-item linear model with a closed-form solution.

Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data" (WWW). The
model is an item x item weight matrix B that reconstructs each user's binary row
from the user's other items: minimise |X - X B|^2 + l2 |B|^2 subject to diag(B) = 0.
Its solution is closed form,

    P = (X'X + l2 I)^-1,    B = I - P / diag(P)    (column j divided by P_jj),

so fitting is one dense n_items x n_items inversion and no epochs. A user, or an
anonymous visitor, is scored by the same product: their binary item row times B,
which is why `score_history` is the model's own path, not the co-occurrence default.

The Gram matrix is dense: n_items^2 float64 values, inverted in place, then kept
as float32 B (about 12 bytes per item pair at the peak), so the model refuses
catalogues above `max_items` (20,000 items: about 4.8 GB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.linalg

from core.errors import InvalidArgumentError

from .base import Recommender
from .config import ModelConfig, check_positive
from .data import InteractionData, history_matrix


@dataclass(frozen=True)
class EASEConfig(ModelConfig):
    """EASE settings.

    Attributes:
        l2: L2 penalty on B, added to the diagonal of the Gram matrix X'X. Larger
            values shrink item-item weights backed by few users.
        max_items: the largest catalogue EASE accepts. The dense Gram matrix takes
            about 12 * n_items^2 bytes at its peak (20,000 items: about 4.8 GB).
    """

    # Best on ML-100K temporal validation NDCG@10 (200 and 500 tie at 0.1260; 50: 0.1196, 3000: 0.1110).
    l2: float = 500.0
    max_items: int = 20_000

    def __post_init__(self) -> None:
        check_positive("EASE", self, ("max_items",), ("l2",))


class EASE(Recommender):
    """Embarrassingly shallow autoencoder: score = (the user's binary item row) @ B, with diag(B) = 0.

    Example:
        >>> d = InteractionData.from_arrays([0, 0, 1, 1, 2], [0, 1, 0, 1, 2], n_items=3)
        >>> m = EASE(show_progress=False, l2=1.0).fit(d)
        >>> bool(m.score_history([[0]])[0, 1] > m.score_history([[0]])[0, 2])
        True
    """

    name = "ease"
    config_class = EASEConfig
    # A visitor's history is a row vector like any user's: scoring it is exact, not a fold-in.
    scores_sessions: ClassVar[bool] = True
    tuning_grid: ClassVar[dict[str, list[Any]] | None] = {"l2": [50.0, 200.0, 500.0, 1000.0, 3000.0]}
    config: EASEConfig

    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> EASE:
        cfg = self.config
        if train.n_items > cfg.max_items:
            gigabytes = 12 * train.n_items**2 / 1e9  # float64 Gram/inverse + float32 B
            raise InvalidArgumentError(
                f"EASE needs a dense item x item matrix: {train.n_items:,} items would take about "
                f"{gigabytes:.1f} GB, above max_items={cfg.max_items:,}; raise max_items if the machine "
                "has the memory, or use itemknn or als"
            )
        self._remember(train)
        assert self.train_matrix is not None
        self.weights = ease_weights(self.train_matrix, cfg.l2)
        return self

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        assert self.train_matrix is not None
        b = self.weights if items is None else self.weights[:, items]
        return np.asarray(self.train_matrix[users] @ b)

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        b = self.weights if items is None else self.weights[:, items]
        return np.asarray(history_matrix(histories, self.n_items) @ b)

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        weights = arrays["weights"]
        if weights.shape != (self.n_items, self.n_items):
            raise InvalidArgumentError(
                f"EASE weights must have shape ({self.n_items}, {self.n_items}), got {weights.shape}"
            )
        self.weights = weights


def ease_weights(x: Any, l2: float) -> np.ndarray:
    """EASE's B for the (sparse or dense) user x item matrix `x`: float32 (n_items, n_items), zero diagonal.

    Example:
        >>> b = ease_weights(np.array([[1.0, 1.0], [1.0, 0.0]]), l2=1.0)  # P = [[2, -1], [-1, 3]] / 5
        >>> float(b[1, 0]), float(b[0, 0])
        (0.5, 0.0)
    """
    gram = x.T @ x
    gram = np.array(gram.toarray() if hasattr(gram, "toarray") else gram, dtype=np.float64)
    gram[np.diag_indices_from(gram)] += l2
    # X'X + l2 I is symmetric positive definite; inverting in place keeps one n^2 copy.
    p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    p /= -p.diagonal().copy()  # column j divided by -P_jj: B = I - P / diag(P) off the diagonal
    np.fill_diagonal(p, 0.0)
    return p.astype(np.float32)
