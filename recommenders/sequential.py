"""What the next-item models (GRU4Rec, SASRec) share: sequences, training loop, persistence.

A sequential model reads a user's items in time order and scores the item
that comes next. Known users are scored from their training sequence, kept
with the model; anonymous visitors from the history they bring. Both paths run
the same network code, so `score(users)` equals `score_history` of the user's
training sequence.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from core.errors import InvalidArgumentError

from .base import Recommender
from .config import ModelConfig, check_positive
from .data import InteractionData
from .training import adam, for_inference


@dataclasses.dataclass(frozen=True)
class SequentialConfig(ModelConfig):
    """Optimiser and loss settings every sequential model shares (Adam, next-item cross-entropy).

    Attributes:
        batch_size: sequences (SASRec) or parallel session slots (GRU4Rec) per step.
        lr: Adam step size.
        weight_decay: Adam L2 penalty.
        full_softmax_below: catalogs with fewer items train with cross-entropy over every
            item; larger ones with sampled softmax, since the exact loss costs a
            (positions x items) score block per step.
        sampled_negatives: shared negatives per step in sampled softmax, drawn with
            probability proportional to count ** `sample_alpha`; the other targets of the
            batch are negatives too, as in GRU4Rec (Hidasi & Karatzoglou 2018).
        sample_alpha: popularity exponent of the negative sampler (0: uniform, 1: by count).
    """

    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    full_softmax_below: int = 20_000
    sampled_negatives: int = 2048
    sample_alpha: float = 0.75

    def __post_init__(self) -> None:
        owner = type(self).__name__.removesuffix("Config")
        check_positive(owner, self, ("full_softmax_below", "sampled_negatives"), ())
        if isinstance(self.sample_alpha, bool) or not 0.0 <= self.sample_alpha <= 1.0:
            raise InvalidArgumentError(f"{owner} sample_alpha must lie in [0, 1], got {self.sample_alpha!r}")


class NextItemLoss:
    """Cross-entropy of each true next item: over every item, or sampled softmax for big catalogs.

    Sampled softmax (Jean et al. 2015) scores each state against the batch's targets plus
    `sampled_negatives` popularity-sampled items, and subtracts the log sampling
    probability from every column (the "logQ" correction of GRU4Rec's official code), so
    that popular items are not over-penalised for being drawn often. A column holding a
    row's own target item, other than its label, is masked out.
    """

    def __init__(self, counts: np.ndarray, config: SequentialConfig, rng: np.random.Generator) -> None:
        self.n_items = len(counts)
        self.sampled = self.n_items >= config.full_softmax_below
        self.n_negatives = config.sampled_negatives
        self.rng = rng
        weights = np.maximum(counts.astype(np.float64), 1.0) ** config.sample_alpha
        self.cdf = np.cumsum(weights / weights.sum())
        self.log_q = torch.from_numpy(np.log(weights / weights.sum()).astype(np.float32))

    def __call__(
        self, states: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:  # fmt: skip
        """Loss of `states` (n, dim) predicting item rows `targets` (n,) with output embeddings `weight`."""
        if not self.sampled:
            logits = states @ weight.T + (bias if bias is not None else 0.0)
            return nn.functional.cross_entropy(logits, targets, reduction=reduction)
        drawn = np.searchsorted(self.cdf, self.rng.random(self.n_negatives), side="right")
        columns = torch.cat([targets, torch.from_numpy(np.minimum(drawn, self.n_items - 1))])
        logits = states @ weight[columns].T - self.log_q[columns]
        if bias is not None:
            logits = logits + bias[columns]
        rows = torch.arange(len(targets))
        clash = columns.unsqueeze(0) == targets.unsqueeze(1)
        clash[rows, rows] = False
        logits = logits.masked_fill(clash, float("-inf"))
        return nn.functional.cross_entropy(logits, rows, reduction=reduction)


class SequentialRecommender(Recommender):
    """Base of models that predict the next item from the items before it, oldest first.

    Subclasses set `network` in `_build_network`, train one epoch in
    `_train_epoch`, read non-empty histories in `_sequence_states` and give the output
    embeddings in `_item_factors`; this
    class keeps the training sequences, runs the base class's epoch loop and saves both.
    An empty history (a user with no training events) gets item popularity.

    Example:
        >>> model = create_model("sasrec", epochs=5).fit(train, validation)  # doctest: +SKIP
        >>> model.score_history([[3, 17, 5]]).shape                          # doctest: +SKIP
        (1, 1682)
    """

    scores_sessions: ClassVar[bool] = True  # a session is exactly what it reads
    dot_product_scores: ClassVar[bool] = True  # the state after the history . the output embeddings

    # Histories scored in one forward pass; bounds the (batch, n_items) score block.
    score_batch_size = 256

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.network: nn.Module | None = None
        self.sequences: list[np.ndarray] = []
        self._popularity = np.zeros(0, dtype=np.float32)
        self.loss: NextItemLoss | None = None  # set by fit

    # ----- hooks for subclasses -----------------------------------------------
    @abstractmethod
    def _build_network(self) -> nn.Module:
        """A freshly initialised network for `n_items` items and this config."""

    @abstractmethod
    def _train_epoch(self, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> float:
        """One pass over `self.sequences` with `self.loss`; returns the mean training loss."""

    @abstractmethod
    def _sequence_states(self, histories: list[np.ndarray]) -> torch.Tensor:
        """The network's state after reading each non-empty history, (len(histories), d): the query
        whose dot product with the output embeddings (`_item_factors`) scores the next item;
        network in eval mode, no gradients."""

    # ----- training ------------------------------------------------------------
    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> SequentialRecommender:
        """Train on each user's training sequence; with `validation`, stop early on NDCG@10.

        The validation targets are the items each user consumed after the training
        sequence, so the validation score is next-item prediction, as in use.
        """
        if validation is not None and (validation.n_users, validation.n_items) != (train.n_users, train.n_items):
            raise InvalidArgumentError(
                f"validation has {validation.n_users} users x {validation.n_items} items; "
                f"train has {train.n_users} x {train.n_items}"
            )
        cfg = self.config
        assert isinstance(cfg, SequentialConfig)
        rng = self._start_training(train)
        self.sequences = train.sequences()
        self._popularity = train.item_counts().astype(np.float32)
        self.loss = NextItemLoss(self._popularity, cfg, rng)
        self.network = self._build_network()
        optimizer = adam(self.network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

        def run_epoch(epoch: int) -> float:
            assert self.network is not None
            self.network.train()
            return self._train_epoch(optimizer, rng)

        self._train_epochs(train, validation, run_epoch)
        for_inference(self.network)
        return self

    # ----- scoring -------------------------------------------------------------
    def user_history(self, user: int) -> np.ndarray:
        """The item rows of `user`'s training sequence, oldest first (for `explain`, display)."""
        self._check_fitted()
        if isinstance(user, bool) or not isinstance(user, (int, np.integer)) or not 0 <= user < self.n_users:
            raise InvalidArgumentError(f"user row must be an integer in [0, {self.n_users}), got {user!r}")
        return self.sequences[int(user)].copy()

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        return self._score_histories([self.sequences[u] for u in users], items)

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        assert self.network is not None
        scores = np.empty((len(histories), self.n_items if items is None else len(items)), dtype=np.float32)
        filled = np.array([len(h) > 0 for h in histories], dtype=bool)
        # Nothing to condition on: popularity is the best guess, and a network fed no input has none.
        scores[~filled] = self._popularity if items is None else self._popularity[items]
        rows = np.flatnonzero(filled)
        for start in range(0, len(rows), self.score_batch_size):
            batch = rows[start : start + self.score_batch_size]
            scores[batch] = self._dot_scores(self._query_vectors(None, [histories[r] for r in batch]), items)
        return scores

    def _training_histories(self, users: np.ndarray) -> list[np.ndarray]:
        return [self.sequences[u] for u in users]

    def _query_vectors(self, users: np.ndarray | None, histories: list[np.ndarray] | None) -> np.ndarray | None:
        """The network's state after each user's training sequence or each history; None if one is empty."""
        assert self.network is not None
        histories = [self.sequences[u] for u in users] if users is not None else histories or []
        if not all(len(h) for h in histories):
            return None  # popularity scores an empty history (`_score_histories`)
        for_inference(self.network)
        with torch.no_grad():
            return self._sequence_states(histories).numpy()

    # ----- persistence ---------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        assert self.network is not None
        lengths = np.array([len(s) for s in self.sequences], dtype=np.int64)
        state = {
            "sequence_items": np.concatenate(self.sequences).astype(np.int64),
            "sequence_offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "popularity": self._popularity,
        }
        state.update({f"network.{k}": v.detach().cpu().numpy() for k, v in self.network.state_dict().items()})
        return state

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        items, offsets = arrays["sequence_items"], arrays["sequence_offsets"]
        self.sequences = [items[offsets[r] : offsets[r + 1]] for r in range(len(offsets) - 1)]
        self._popularity = arrays["popularity"]
        self.network = self._build_network()
        prefix = "network."
        weights = {k[len(prefix) :]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith(prefix)}
        self.network.load_state_dict(weights)
        for_inference(self.network)
