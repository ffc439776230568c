"""The one interface every recommender model implements.

Models see row indices only (`InteractionData`); the engine maps raw ids to
rows. A model is built from the data's shape in `fit`, and saved as a folder:
a manifest with its config, and its arrays (network weights included) as
safetensors. No pickled objects.
"""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from .data import InteractionData
from core.errors import InvalidArgumentError, NotFittedError
from core.ranking import top_k
from core.persistence import atomic_dir, read_manifest, write_manifest

WEIGHTS = "weights.safetensors"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Settings every model shares; each model subclasses this with its own."""

    seed: int = 0
    epochs: int = 30
    patience: int = 3
    show_progress: bool = True


def check_positive(owner: str, config: ModelConfig, ints: tuple[str, ...], floats: tuple[str, ...]) -> None:
    """Raise `InvalidArgumentError` unless the named config fields are positive ints / floats."""
    for field in ints:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidArgumentError(f"{owner} {field} must be a positive integer, got {value!r}")
    for field in floats:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidArgumentError(f"{owner} {field} must be > 0, got {value!r}")


def check_fraction(owner: str, config: ModelConfig, fields: tuple[str, ...]) -> None:
    """Raise `InvalidArgumentError` unless the named fields lie in [0, 1) (dropout rates)."""
    for field in fields:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise InvalidArgumentError(f"{owner} {field} must lie in [0, 1), got {value!r}")


def check_non_negative(owner: str, config: ModelConfig, fields: tuple[str, ...]) -> None:
    """Raise `InvalidArgumentError` unless the named fields are numbers >= 0 (penalties, weights)."""
    for field in fields:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise InvalidArgumentError(f"{owner} {field} must be >= 0, got {value!r}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a fit is repeatable."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Recommender(ABC):
    """Scores items for users (rows seen in training) or anonymous histories.

    Subclasses set `name` and `config_class`, implement `fit`, `_score_users`,
    `_state` and `_load_state`, and override `_score_histories` when they can
    score a history that was not in training.

    Example:
        >>> model = create_model("popularity")          # doctest: +SKIP
        >>> model.fit(train).score(np.array([0]))        # doctest: +SKIP
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    uses_item_features: ClassVar[bool] = False
    # True when the model scores an anonymous history natively (sequence models,
    # autoencoders) rather than through the generic co-occurrence fold-in; the
    # engine then lets it rank a visitor's session instead of falling back to content.
    scores_sessions: ClassVar[bool] = False
    # True when the model predicts rating values (`predict_ratings(users, items)`), judged by RMSE.
    predicts_ratings: ClassVar[bool] = False

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        base = config if config is not None else self.config_class()
        if not isinstance(base, self.config_class):
            raise InvalidArgumentError(f"{self.name} needs a {self.config_class.__name__}, got {type(base).__name__}")
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        self.n_users = 0
        self.n_items = 0
        self.train_matrix: sp.csr_matrix | None = None

    # ----- training -------------------------------------------------------
    @abstractmethod
    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> Recommender:
        """Train on `train`; stop early on `validation` when given. Returns self."""

    def _remember(self, train: InteractionData) -> None:
        """Keep the shape and the training matrix, which scoring and `exclude_seen` need."""
        if len(train) == 0:
            from core.errors import InteractionsError

            raise InteractionsError("cannot fit on an empty interaction log")
        self.n_users, self.n_items = train.n_users, train.n_items
        self.train_matrix = train.csr()

    # ----- scoring --------------------------------------------------------
    def score(self, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Scores (len(users), n_items), or (len(users), len(items)) for a candidate list; higher is better."""
        self._check_fitted()
        users = self._check_users(users)
        item_rows = self._check_items(items)
        scores = self._score_users(users, item_rows)
        return np.asarray(scores, dtype=np.float32)

    def score_history(
        self, histories: Sequence[Sequence[int]], items: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Scores for anonymous visitors given their item rows, oldest first."""
        self._check_fitted()
        hist = self._check_histories(histories)
        item_rows = self._check_items(items)
        return np.asarray(self._score_histories(hist, item_rows), dtype=np.float32)

    def top_items(self, user: int | None = None, history: Sequence[int] | None = None, n: int = 100) -> np.ndarray:
        """Rows of the `n` best-scored items for one known user row or one anonymous history, best first.

        The engine's candidate generation calls this. The default scores every item;
        a model with a cheaper way to find its best items overrides `_top_items`.

        Example:
            >>> model.top_items(user=3, n=5)  # doctest: +SKIP
            array([17,  4, 40,  2, 11])
        """
        if (user is None) == (history is None):
            raise InvalidArgumentError("top_items needs exactly one of user= and history=")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise InvalidArgumentError(f"n must be a positive integer, got {n!r}")
        self._check_fitted()
        n = min(int(n), self.n_items)
        if user is not None:
            return self._top_items(self._check_users([user]), None, n)
        return self._top_items(None, self._check_histories([history]), n)

    def _top_items(self, user: np.ndarray | None, history: list[np.ndarray] | None, n: int) -> np.ndarray:
        """`top_items` for a checked user row (1-element array) or history; scores every item."""
        scores = self._score_users(user, None) if user is not None else self._score_histories(history or [], None)
        return top_k(np.asarray(scores, dtype=np.float32), n)[0][0]

    @abstractmethod
    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """Model-specific scoring of known user rows."""

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        """Fold-in scoring of anonymous histories; the default uses the item-item co-occurrence of training."""
        assert self.train_matrix is not None
        x = _history_matrix(histories, self.n_items)
        cooc = (x @ self.train_matrix.T) @ self.train_matrix  # visitors x items
        scores = np.asarray(cooc.todense(), dtype=np.float32)
        return scores if items is None else scores[:, items]

    def _check_users(self, users: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(users, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_users):
            raise InvalidArgumentError(f"user rows must lie in [0, {self.n_users}), got {rows.tolist()[:5]}")
        return rows

    def _check_histories(self, histories: Sequence[Sequence[int]]) -> list[np.ndarray]:
        hist = [np.asarray(h, dtype=np.int64) for h in histories]
        for h in hist:
            if h.size and (h.min() < 0 or h.max() >= self.n_items):
                raise InvalidArgumentError(f"history item rows must lie in [0, {self.n_items}), got {h.tolist()[:5]}")
        return hist

    def _check_items(self, items: Sequence[int] | np.ndarray | None) -> np.ndarray | None:
        if items is None:
            return None
        rows = np.asarray(items, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_items):
            raise InvalidArgumentError(f"item rows must lie in [0, {self.n_items}), got {rows.tolist()[:5]}")
        return rows

    def _check_fitted(self) -> None:
        if self.train_matrix is None:
            raise NotFittedError(f"model {self.name!r} is not fitted: call fit(interactions) first")

    # ----- persistence ----------------------------------------------------
    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """Arrays (network weights included) that, with the config, restore the model."""

    @abstractmethod
    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the model from `_state()`'s arrays; `n_users`/`n_items` are already set."""

    def save(self, directory: str | Path) -> None:
        """Write the model to `directory` atomically (manifest + safetensors)."""
        self._check_fitted()
        assert self.train_matrix is not None
        m = self.train_matrix
        arrays = {f"model.{k}": np.ascontiguousarray(v) for k, v in self._state().items()}
        arrays.update({"train.indptr": m.indptr.astype(np.int64), "train.indices": m.indices.astype(np.int64)})
        with atomic_dir(directory) as tmp:
            save_file(arrays, str(tmp / WEIGHTS))
            write_manifest(
                tmp,
                "recommender",
                model=self.name,
                config=dataclasses.asdict(self.config),
                n_users=self.n_users,
                n_items=self.n_items,
                parts=[WEIGHTS],
            )

    @classmethod
    def load(cls, directory: str | Path) -> Recommender:
        """Load any saved model; called on a subclass, checks the saved name matches."""
        from .registry import MODELS, _import_all

        _import_all()
        manifest = read_manifest(directory, "recommender")
        model_cls = MODELS.get(manifest["model"])
        if model_cls is None:
            raise InvalidArgumentError(f"'{directory}' holds unknown model {manifest['model']!r}")
        if cls is not Recommender and model_cls is not cls:
            raise InvalidArgumentError(f"'{directory}' holds a {manifest['model']!r} model, not {cls.name!r}")
        model = model_cls(model_cls.config_class(**manifest["config"]))
        model.n_users, model.n_items = manifest["n_users"], manifest["n_items"]
        arrays = load_file(str(Path(directory) / WEIGHTS))
        data = np.ones(len(arrays["train.indices"]), dtype=np.float32)
        model.train_matrix = sp.csr_matrix(
            (data, arrays["train.indices"], arrays["train.indptr"]), shape=(model.n_users, model.n_items)
        )
        model._load_state({k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")})
        return model


def _history_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary visitors x items matrix of anonymous histories."""
    rows = np.concatenate([np.full(len(h), r) for r, h in enumerate(histories)]) if histories else np.zeros(0)
    cols = np.concatenate(histories) if histories else np.zeros(0)
    m = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(histories), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m
