"""RBM-CF: a restricted Boltzmann machine over a user's ratings.

Salakhutdinov, Mnih and Hinton 2007, "Restricted Boltzmann Machines for
Collaborative Filtering" (ICML). Each user is one RBM whose visible units are
K-way softmaxes, one per item, over the rating values 1..K; the weights W
(item x rating x hidden), the visible biases and the hidden biases are shared
by every user. Hidden units are binary. Training is contrastive divergence
(CD-T, T growing with the epochs when `cd_max` > 1) on mini-batches of users,
with momentum and weight decay. A rating is predicted as the expectation of the
item's softmax given the hidden probabilities that the user's ratings induce
(the paper's mean-field prediction).

Two visible layers, chosen by `visible`:

- "rated" is the paper's model: only the items a user rated have visible
  units. It predicts ratings, but it says nothing about *which* items a user
  will rate, so its ranking score (the expected rating) favours obscure items
  that a few people rated highly, and it ranks worse than popularity.
- "all" (the default) gives every item a visible unit with K+1 states, state 0
  meaning "not rated" (its weights are fixed at zero, so the rest is the
  paper's parametrisation). The model then also learns which items a user
  rates; the ranking score is the log-odds that the item is rated,
  log sum_k exp(logit_k), and the predicted rating is the expectation of the
  softmax restricted to states 1..K. Implicit data, where every weight is 1,
  is the case K = 1: a binary RBM over the whole item vector.

Ratings come from `InteractionData.weights`, rounded and clipped into 1..K,
and K shrinks to the largest rating seen in training (1 for implicit data);
for a pair seen twice the latest rating counts. Items never rated in training
are predicted at the global mean. A user with no training rating (and an
empty visitor history) gets the average training user's hidden
probabilities: an all-"not rated" visible layer is far from anything the
"all" RBM was trained on, and predicting from it is worse than the global mean.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from core.errors import InvalidArgumentError, NotFittedError

from .base import Recommender
from .config import ModelConfig, check_fraction, check_non_negative, check_positive
from .data import InteractionData
from .rbm_network import RBMNetwork

VISIBLE_LAYERS = ("all", "rated")
STOP_METRICS = ("ndcg", "rmse")


@dataclasses.dataclass(frozen=True)
class RBMConfig(ModelConfig):
    """RBM-CF settings; the defaults were chosen on ML-100K validation metrics.

    Attributes:
        hidden_dim: number of binary hidden units (100 in the paper).
        n_ratings: K, the largest rating value; ratings are clipped into 1..K.
        visible: "all" (every item, with a "not rated" state; ranks well) or
            "rated" (only the rated items, as in the paper; rating prediction only).
        lr: learning rate of the weights and biases.
        momentum: momentum after `momentum_warmup` epochs.
        initial_momentum: momentum during the first `momentum_warmup` epochs.
        momentum_warmup: epochs run at `initial_momentum`.
        weight_decay: L2 penalty on W (not on the biases).
        batch_size: users per mini-batch.
        cd_max: the largest number of Gibbs steps T; 1 is CD-1.
        cd_every: epochs between increases of T (T = 1, 3, 5, ... up to `cd_max`).
        init_std: standard deviation of W's normal initialisation.
        stop_on: early-stopping metric on validation: "ndcg" (NDCG@10) or "rmse".
    """

    epochs: int = 100
    patience: int = 10
    hidden_dim: int = 100
    n_ratings: int = 5
    visible: str = "all"
    lr: float = 0.05
    momentum: float = 0.9
    initial_momentum: float = 0.5
    momentum_warmup: int = 5
    weight_decay: float = 1e-3
    batch_size: int = 100
    cd_max: int = 1
    cd_every: int = 10
    init_std: float = 0.01
    stop_on: str = "ndcg"

    def __post_init__(self) -> None:
        check_positive("RBM", self, ("hidden_dim", "n_ratings", "batch_size", "epochs", "cd_max", "cd_every"), ())
        if self.visible not in VISIBLE_LAYERS:
            raise InvalidArgumentError(f"RBM visible must be one of {VISIBLE_LAYERS}, got {self.visible!r}")
        if self.stop_on not in STOP_METRICS:
            raise InvalidArgumentError(f"RBM stop_on must be one of {STOP_METRICS}, got {self.stop_on!r}")
        check_positive("RBM", self, (), ("lr", "init_std"))
        check_fraction("RBM", self, ("momentum", "initial_momentum"))
        check_non_negative("RBM", self, ("weight_decay",))


class RBM(Recommender):
    """RBM-CF (Salakhutdinov et al. 2007) that ranks items and predicts ratings.

    `score` is the log-odds that the user rates each item (visible="all") or
    the expected rating (visible="rated"); `predict_ratings` is the expected
    rating of (user, item) pairs, for RMSE. `score_history` folds a visitor in
    without retraining: their history items, whose ratings are unknown, enter
    the hidden units as each item's training rating distribution.

    Example:
        >>> model = RBM(epochs=30, show_progress=False).fit(train, validation)  # doctest: +SKIP
        >>> model.predict_ratings(np.array([0, 0]), np.array([3, 7]))          # doctest: +SKIP
        array([3.81, 2.95], dtype=float32)
    """

    predicts_ratings: ClassVar[bool] = True
    name: ClassVar[str] = "rbm"
    config_class: ClassVar[type[ModelConfig]] = RBMConfig
    scores_sessions: ClassVar[bool] = True  # hidden activations of the visitor's items
    config: RBMConfig

    def __init__(self, config: RBMConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.network: RBMNetwork | None = None
        self.ratings: sp.csr_matrix | None = None  # latest rating state (1..K) of each training pair
        self.global_mean = 0.0
        # Derived from `ratings`, refreshed after fit and load.
        self._item_rating_dist = np.zeros((0, 0), dtype=np.float32)
        self._rated_items = np.zeros(0, dtype=bool)
        self._mean_hidden: torch.Tensor | None = None  # cache of `_average_hidden`, cleared when weights change

    @property
    def n_ratings(self) -> int:
        """K in use: the configured K, shrunk to the largest rating seen in training."""
        if self.network is None:
            raise NotFittedError("model 'rbm' is not fitted: call fit(interactions) first")
        return int(self.network.visible_bias.shape[1])

    # ----- training -------------------------------------------------------
    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> RBM:
        """Train by CD on mini-batches of users; with `validation`, stop early on `stop_on` and keep the best epoch.

        Early stopping looks only at validation users that have training
        interactions: new users are all scored from the same prior.
        """
        cfg = self.config
        # Checked before anything is kept, so a refused fit leaves the model unfitted.
        if cfg.visible == "rated" and len(train) and np.all(np.rint(train.weights) <= 1):
            raise InvalidArgumentError(
                "RBM visible='rated' needs explicit ratings, but every training weight rounds to 1 or less; "
                "use visible='all' for implicit data"
            )
        rng = self._start_training(train)
        self.ratings, self.global_mean = self._rating_matrix(train)
        k = int(self.ratings.data.max())
        self.network = RBMNetwork(self.n_items, k, cfg.hidden_dim, absent_state=cfg.visible == "all")
        self._refresh_item_statistics()
        self._initialise(rng)
        users = np.flatnonzero(np.diff(self.ratings.indptr) > 0)
        velocity = [torch.zeros_like(p) for p in self.network.parameters()]

        def run_epoch(epoch: int) -> float:
            error = self._train_epoch(users, rng, velocity, epoch)
            self._mean_hidden = None  # cached average hidden state is stale after an update
            return error

        self._train_epochs(train, validation, run_epoch, stop_on=cfg.stop_on, loss_label="recon")
        self._mean_hidden = None
        return self

    def _refresh_item_statistics(self) -> None:
        """Each item's training rating distribution (for unrated histories) and which items were rated at all."""
        assert self.ratings is not None
        k = self.config.n_ratings if self.network is None else int(self.network.visible_bias.shape[1])
        counts = np.zeros((self.n_items, k), dtype=np.float32)
        coo = self.ratings.tocoo()
        np.add.at(counts, (coo.col, coo.data.astype(np.int64) - 1), 1.0)
        totals = counts.sum(axis=1, keepdims=True)
        # Items never rated get the global distribution of rating states.
        prior = counts.sum(axis=0) / max(float(counts.sum()), 1.0)
        self._item_rating_dist = np.where(totals > 0, counts / np.maximum(totals, 1.0), prior).astype(np.float32)
        self._rated_items = totals[:, 0] > 0

    def _rating_matrix(self, train: InteractionData) -> tuple[sp.csr_matrix, float]:
        """CSR of rating states 1..K with train_matrix's structure (latest rating per pair), and the mean rating."""
        k = self.config.n_ratings
        states = np.clip(np.rint(train.weights), 1, k).astype(np.float32)
        # Keep the latest rating of a repeated pair: sort so that it comes last, then take each group's last row.
        order = np.lexsort((np.arange(len(train)), train.timestamps, train.items, train.users))
        keys = train.users[order] * train.n_items + train.items[order]
        last = np.r_[keys[1:] != keys[:-1], True]
        rows, cols = train.users[order][last], train.items[order][last]
        matrix = sp.csr_matrix((states[order][last], (rows, cols)), shape=(train.n_users, train.n_items))
        matrix.sort_indices()
        return matrix, float(np.mean(train.weights, dtype=np.float64))

    def _initialise(self, rng: np.random.Generator) -> None:
        """Small normal weights; visible biases at the log base rates of each item's states (Hinton's guide)."""
        assert self.network is not None and self.ratings is not None
        net = self.network
        k = net.visible_bias.shape[1]
        w = rng.normal(0.0, self.config.init_std, size=tuple(net.weight.shape)).astype(np.float32)
        counts = np.zeros((self.n_items, k), dtype=np.float64)
        coo = self.ratings.tocoo()
        np.add.at(counts, (coo.col, coo.data.astype(np.int64) - 1), 1.0)
        if net.absent_state:
            n_active = max(int((np.diff(self.ratings.indptr) > 0).sum()), 1)
            absent = n_active - counts.sum(axis=1, keepdims=True)
            bias = np.log(counts + 0.5) - np.log(absent + 0.5)
        else:
            bias = np.log(counts + 1.0) - np.log(counts.sum(axis=1, keepdims=True) + k)
        with torch.no_grad():
            net.weight.copy_(torch.from_numpy(w))
            net.visible_bias.copy_(torch.from_numpy(bias.astype(np.float32)))
            net.hidden_bias.zero_()

    def _train_epoch(self, users: np.ndarray, rng: np.random.Generator, velocity: list[torch.Tensor], epoch: int) -> float:
        """One pass of CD over shuffled mini-batches of users; returns the mean squared reconstruction error."""
        assert self.network is not None and self.ratings is not None
        cfg = self.config
        steps = min(cfg.cd_max, 1 + 2 * (epoch // cfg.cd_every))
        momentum = cfg.initial_momentum if epoch < cfg.momentum_warmup else cfg.momentum
        params = list(self.network.parameters())  # weight, visible_bias, hidden_bias
        order = rng.permutation(users)
        error = 0.0
        with torch.no_grad():
            for start in range(0, len(order), cfg.batch_size):
                v0, present = self._visible(self.ratings[order[start : start + cfg.batch_size]])
                d_weight, d_visible, d_hidden, batch_error = self.network.contrastive_divergence(v0, present, steps)
                grads = (d_weight - cfg.weight_decay * params[0], d_visible, d_hidden)
                for p, g, vel in zip(params, grads, velocity):
                    vel.mul_(momentum).add_(g, alpha=cfg.lr)
                    p.add_(vel)
                error += batch_error * len(v0)
        return error / max(len(order), 1)

    def _visible(self, rows: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Dense one-hot visible tensor (B, I, K) of rating-state rows, and the rated-item mask for visible="rated"."""
        assert self.network is not None
        k = self.network.visible_bias.shape[1]
        coo = rows.tocoo()
        v = torch.zeros(rows.shape[0], self.n_items, k)
        v[coo.row, coo.col, coo.data.astype(np.int64) - 1] = 1.0
        present = None if self.network.absent_state else v.sum(dim=2)
        return v, present

    # ----- scoring --------------------------------------------------------
    def _average_hidden(self) -> torch.Tensor:
        """Mean hidden probabilities over the users with training ratings."""
        assert self.network is not None and self.ratings is not None
        if self._mean_hidden is None:
            users = np.flatnonzero(np.diff(self.ratings.indptr) > 0)
            total = torch.zeros(self.network.hidden_bias.shape)
            with torch.no_grad():
                for start in range(0, len(users), 256):
                    visible = self._rating_visible(self.ratings[users[start : start + 256]])
                    total += self._hidden_sparse(visible).sum(dim=0)
            self._mean_hidden = total / max(len(users), 1)
        return self._mean_hidden

    # Scoring reads the visible units sparsely, (rows, items * K) flattened like `weight`: a
    # user's hidden units need only their rated items' weights, and candidates only theirs.
    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        assert self.ratings is not None
        return self._score_visible(self._rating_visible(self.ratings[users]), items)

    def _rating_visible(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        """Sparse one-hot visible rows of rating-state rows (1..K)."""
        coo, k = rows.tocoo(), self.n_ratings
        cols = coo.col.astype(np.int64) * k + coo.data.astype(np.int64) - 1
        return sp.csr_matrix((np.ones(len(cols), np.float32), (coo.row, cols)), shape=(rows.shape[0], self.n_items * k))

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        return self._score_visible(self._soft_visible(histories), items)

    def _score_visible(self, visible: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        """Ranking scores of sparse visible rows, for every item or the given item rows."""
        assert self.network is not None
        net = self.network
        weight = net.weight.detach() if items is None else net.weight.detach()[torch.from_numpy(items)]
        bias = net.visible_bias.detach() if items is None else net.visible_bias.detach()[torch.from_numpy(items)]
        flat = weight.reshape(-1, weight.shape[-1])
        out = np.empty((visible.shape[0], weight.shape[0]), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, visible.shape[0], 256):
                h = self._hidden_sparse(visible[start : start + 256])
                logits = (h @ flat.T).reshape(len(h), *bias.shape) + bias
                if net.absent_state:
                    # Log-odds of "rated" against the absent state, whose logit is 0.
                    scores = torch.logsumexp(logits, dim=2)
                else:
                    scores = self._expectation(logits)
                out[start : start + len(h)] = scores.numpy()
        return out

    def _hidden_sparse(self, visible: sp.csr_matrix) -> torch.Tensor:
        """p(h | v) of sparse visible rows; rows that rated nothing get the average training user's."""
        assert self.network is not None
        net = self.network
        flat = net.weight.detach().numpy().reshape(-1, net.weight.shape[-1])
        h = torch.sigmoid(torch.from_numpy(np.asarray(visible @ flat, dtype=np.float32)) + net.hidden_bias.detach())
        empty = np.asarray(visible.sum(axis=1)).ravel() == 0
        if empty.any():
            h[torch.from_numpy(empty)] = self._average_hidden()
        return h

    def _soft_visible(self, histories: Sequence[np.ndarray]) -> sp.csr_matrix:
        """Sparse visible rows of unrated histories: each item's empirical training rating distribution."""
        k = self.n_ratings
        rows, cols, values = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        for row, h in enumerate(histories):
            h = np.unique(np.asarray(h, dtype=np.int64))
            rows.append(np.full(len(h) * k, row))
            cols.append((h[:, None] * k + np.arange(k)).ravel())
            values.append(self._item_rating_dist[h].astype(np.float32).ravel())
        shape = (len(histories), self.n_items * k)
        return sp.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=shape)

    @staticmethod
    def _expectation(logits: torch.Tensor) -> torch.Tensor:
        """Expected rating sum_k k * softmax(logits)_k over the rated states 1..K."""
        values = torch.arange(1, logits.shape[-1] + 1, dtype=logits.dtype)
        return (torch.softmax(logits, dim=-1) * values).sum(dim=-1)

    def predict_ratings(self, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray) -> np.ndarray:
        """Expected rating of each (user row, item row) pair, float32 in [1, K]; unrated items get the global mean.

        Example:
            >>> model.predict_ratings([0, 1], [5, 5])   # doctest: +SKIP
            array([3.9, 2.7], dtype=float32)
        """
        self._check_fitted()
        assert self.network is not None and self.ratings is not None
        u = np.asarray(users, dtype=np.int64)
        i = np.asarray(items, dtype=np.int64)
        if u.shape != i.shape or u.ndim != 1:
            raise InvalidArgumentError(f"users and items must be 1-d and equally long, got {u.shape} and {i.shape}")
        if u.size and (u.min() < 0 or u.max() >= self.n_users):
            raise InvalidArgumentError(f"user rows must lie in [0, {self.n_users}), got {u.tolist()[:5]}")
        if i.size and (i.min() < 0 or i.max() >= self.n_items):
            raise InvalidArgumentError(f"item rows must lie in [0, {self.n_items}), got {i.tolist()[:5]}")
        out = np.empty(len(u), dtype=np.float32)
        unique, inverse = np.unique(u, return_inverse=True)
        w = self.network.weight
        with torch.no_grad():
            hidden = torch.cat(
                [self._hidden_sparse(self._rating_visible(self.ratings[unique[s : s + 256]]))
                 for s in range(0, len(unique), 256)]
            ) if len(unique) else torch.zeros(0, w.shape[-1])
            for start in range(0, len(u), 4096):
                h = hidden[torch.from_numpy(inverse[start : start + 4096])]
                it = torch.from_numpy(i[start : start + 4096])
                logits = torch.einsum("nh,nkh->nk", h, w[it]) + self.network.visible_bias[it]
                out[start : start + len(it)] = self._expectation(logits).numpy()
        out[~self._rated_items[i]] = self.global_mean
        return out

    # ----- persistence ----------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        assert self.network is not None and self.ratings is not None
        state = {k: v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
        state["ratings"] = self.ratings.data.astype(np.float32)
        state["global_mean"] = np.array([self.global_mean], dtype=np.float64)
        return state

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        assert self.train_matrix is not None
        n_items, k, hidden = arrays["weight"].shape
        self.network = RBMNetwork(n_items, k, hidden, absent_state=self.config.visible == "all")
        self.network.load_state_dict({n: torch.from_numpy(np.array(arrays[n])) for n in ("weight", "visible_bias", "hidden_bias")})
        m = self.train_matrix
        self.ratings = sp.csr_matrix((np.array(arrays["ratings"]), m.indices, m.indptr), shape=m.shape)
        self.global_mean = float(arrays["global_mean"][0])
        self._refresh_item_statistics()
        self._mean_hidden = None
