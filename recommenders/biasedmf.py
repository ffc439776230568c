"""Biased matrix factorisation for explicit ratings.

Koren, Bell and Volinsky 2009, "Matrix Factorization Techniques for
Recommender Systems" (IEEE Computer): r_ui ~ mu + b_u + b_i + p_u . q_i,
fitted to the observed ratings by mini-batch stochastic gradient (Adam) on the
squared error plus an L2 penalty on the biases and factors of each rating's
user and item. It is the rating-prediction baseline the RBM is compared with
(`evaluation.rating`).

Fitted to the observed ratings alone, the model learns how a user rates an
item but never which items they choose, so it ranks worse than popularity on
top-N tasks (Cremonesi, Koren and Turrin 2010). For ranking, the missing
entries are imputed as in Steck's AllRank (2010, "Training and testing of
recommender systems on data missing not at random"): each epoch draws
`missing_per_rating` unrated (user, item) pairs per rating, uniformly, and
pulls them towards `missing_rating` with weight `missing_weight`. That ruins
RMSE on observed ratings, so the default, `missing_weight=0`, is the plain
rating model.

Ratings are `InteractionData.weights`. A user or item absent from training
keeps zero bias and zero factors, so it falls back to mu + b_i (new user),
mu + b_u (new item) or mu (both). Ranking uses the predicted rating.
Anonymous visitors come with no ratings, so `score_history` keeps the base
class's co-occurrence fold-in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from core.errors import InvalidArgumentError

from .base import Recommender
from .config import ModelConfig, check_non_negative, check_positive
from .data import InteractionData
from .training import adam

STOP_METRICS = ("rmse", "ndcg")


@dataclasses.dataclass(frozen=True)
class BiasedMFConfig(ModelConfig):
    """Biased MF settings; the defaults (a rating model) were chosen on ML-100K validation RMSE (random split).

    For ranking set `missing_weight=1.0` and `stop_on="ndcg"` (with the other
    defaults): ML-100K validation NDCG@10 0.25 instead of 0.04 (popularity
    0.13), but RMSE 1.87 instead of 0.91, as the imputed entries pull every
    prediction down.

    Attributes:
        dim: number of latent factors.
        lr: Adam learning rate.
        reg: L2 weight on the biases and factors of each rating's user and item.
        batch_size: ratings per step.
        init_std: standard deviation of the factors' normal initialisation.
        missing_weight: weight of the imputed missing entries (0: ratings only).
        missing_rating: the value missing entries are pulled towards.
        missing_per_rating: unrated pairs drawn per observed rating each epoch.
        stop_on: early-stopping metric on validation: "rmse" or "ndcg" (NDCG@10).
    """

    epochs: int = 100
    patience: int = 5
    dim: int = 32
    lr: float = 5e-3
    reg: float = 0.1
    batch_size: int = 512
    init_std: float = 0.1
    missing_weight: float = 0.0
    missing_rating: float = 0.0
    missing_per_rating: int = 3
    stop_on: str = "rmse"

    def __post_init__(self) -> None:
        check_positive("BiasedMF", self, ("dim", "batch_size", "epochs", "missing_per_rating"), ("lr", "init_std"))
        check_non_negative("BiasedMF", self, ("reg", "missing_weight"))
        if self.stop_on not in STOP_METRICS:
            raise InvalidArgumentError(f"BiasedMF stop_on must be one of {STOP_METRICS}, got {self.stop_on!r}")


class BiasedMFNetwork(nn.Module):
    """mu + b_u + b_i + p_u . q_i for (user, item) pairs.

    Example:
        >>> net = BiasedMFNetwork(n_users=3, n_items=4, dim=2, global_mean=3.5)
        >>> net(torch.tensor([0]), torch.tensor([1])).shape
        torch.Size([1])
    """

    def __init__(self, n_users: int, n_items: int, dim: int, global_mean: float) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, dim)
        self.item_factors = nn.Embedding(n_items, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.register_buffer("global_mean", torch.tensor([global_mean], dtype=torch.float32))
        for bias in (self.user_bias, self.item_bias):
            nn.init.zeros_(bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Predicted ratings, shape (n,)."""
        dot = (self.user_factors(users) * self.item_factors(items)).sum(dim=1)
        return self.global_mean + self.user_bias(users)[:, 0] + self.item_bias(items)[:, 0] + dot

    def all_items(self, users: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of every item for each user, (n, n_items)."""
        return (
            self.global_mean
            + self.user_bias(users)
            + self.item_bias.weight[:, 0]
            + self.user_factors(users) @ self.item_factors.weight.T
        )


class BiasedMF(Recommender):
    """Biased matrix factorisation of explicit ratings, with `predict_ratings` for RMSE.

    Example:
        >>> model = BiasedMF(show_progress=False).fit(train, validation)   # doctest: +SKIP
        >>> model.predict_ratings([0, 1], [10, 10])                        # doctest: +SKIP
        array([3.6, 4.1], dtype=float32)
    """

    predicts_ratings: ClassVar[bool] = True
    # Fitted to the observed ratings only (the default config), it ranks obscure items rated
    # highly by a few users first: never the engine's personalisation model.
    rating_only: ClassVar[bool] = True
    name: ClassVar[str] = "biasedmf"
    config_class: ClassVar[type[ModelConfig]] = BiasedMFConfig
    config: BiasedMFConfig

    def __init__(self, config: BiasedMFConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.network: BiasedMFNetwork | None = None
        self._rated_items = np.zeros(0, dtype=np.int64)

    # ----- training -------------------------------------------------------
    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> BiasedMF:
        """Train on the ratings in `train.weights`; with `validation`, stop early on `stop_on` and keep the best epoch.

        Early stopping looks only at validation users that have training interactions.
        """
        cfg = self.config
        rng = self._start_training(train)
        global_mean = float(np.mean(train.weights, dtype=np.float64))
        self.network = BiasedMFNetwork(self.n_users, self.n_items, cfg.dim, global_mean)
        with torch.no_grad():
            for emb in (self.network.user_factors, self.network.item_factors):
                emb.weight.normal_(0.0, cfg.init_std)
        self._zero_unseen(train)
        optimizer = adam(self.network.parameters(), lr=cfg.lr)
        users = torch.from_numpy(train.users)
        items = torch.from_numpy(train.items)
        ratings = torch.from_numpy(train.weights.astype(np.float32))
        assert self.train_matrix is not None
        # Sorted user*n_items+item keys: a vectorised test that a drawn pair is really unrated.
        rated_keys = np.unique(train.users * self.n_items + train.items)
        # Only items with ratings are imputed, so an item unseen in training keeps its global-mean fallback.
        self._rated_items = np.unique(train.items)
        self._train_epochs(
            train,
            validation,
            lambda epoch: self._train_epoch(optimizer, users, items, ratings, rated_keys, rng),
            stop_on=cfg.stop_on,
        )
        return self

    def _train_epoch(
        self,
        optimizer: torch.optim.Optimizer,
        users: torch.Tensor,
        items: torch.Tensor,
        ratings: torch.Tensor,
        rated_keys: np.ndarray,
        rng: np.random.Generator,
    ) -> float:
        """One pass over the shuffled ratings (and drawn missing pairs); returns the ratings' mean squared error."""
        assert self.network is not None
        net, cfg = self.network, self.config
        order = torch.from_numpy(rng.permutation(len(users)))
        missing_users, missing_items = self._draw_missing(users.numpy(), rated_keys, rng)
        per_batch = cfg.missing_per_rating * cfg.batch_size
        total = 0.0
        for b, start in enumerate(range(0, len(order), cfg.batch_size)):
            batch = order[start : start + cfg.batch_size]
            u, i, r = users[batch], items[batch], ratings[batch]
            error = ((net(u, i) - r) ** 2).mean()
            loss = error
            if cfg.missing_weight > 0:
                mu_ = missing_users[b * per_batch : (b + 1) * per_batch]
                mi_ = missing_items[b * per_batch : (b + 1) * per_batch]
                imputed = ((net(mu_, mi_) - cfg.missing_rating) ** 2).sum() / len(batch)
                loss = loss + cfg.missing_weight * imputed
                u, i = torch.cat([u, mu_]), torch.cat([i, mi_])
            # Per-rating L2 (Koren's SGD): an active user or item is penalised once per rating.
            penalty = (
                net.user_factors(u).pow(2).sum(dim=1)
                + net.item_factors(i).pow(2).sum(dim=1)
                + net.user_bias(u)[:, 0] ** 2
                + net.item_bias(i)[:, 0] ** 2
            ).sum() / len(batch)
            optimizer.zero_grad()
            (loss + cfg.reg * penalty).backward()
            optimizer.step()
            total += float(error.detach()) * len(batch)
        return total / max(len(order), 1)

    def _draw_missing(
        self, users: np.ndarray, rated_keys: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`missing_per_rating` unrated pairs per rating: the rating's user with uniform items, redrawn while rated.

        Drawing users in proportion to their ratings keeps each user's
        imputed entries proportional to their activity, as in sampled AllRank.
        """
        cfg = self.config
        if cfg.missing_weight == 0:
            return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
        u = rng.permutation(np.repeat(users, cfg.missing_per_rating))
        pool = self._rated_items
        i = pool[rng.integers(0, len(pool), size=len(u))]
        for _ in range(20):  # a user who rated nearly everything may keep drawing rated items; give up after 20 tries
            pos = np.searchsorted(rated_keys, u * self.n_items + i)
            clash = (pos < len(rated_keys)) & (rated_keys[np.minimum(pos, len(rated_keys) - 1)] == u * self.n_items + i)
            if not clash.any():
                break
            i[clash] = pool[rng.integers(0, len(pool), size=int(clash.sum()))]
        return torch.from_numpy(u), torch.from_numpy(i)

    def _zero_unseen(self, train: InteractionData) -> None:
        """Users and items without training ratings get zero factors and biases: the global-mean fallback."""
        assert self.network is not None
        seen_users = np.zeros(self.n_users, dtype=bool)
        seen_users[train.users] = True
        seen_items = np.zeros(self.n_items, dtype=bool)
        seen_items[train.items] = True
        with torch.no_grad():
            self.network.user_factors.weight[torch.from_numpy(~seen_users)] = 0.0
            self.network.item_factors.weight[torch.from_numpy(~seen_items)] = 0.0
        # Adam never moves them afterwards: their gradients stay exactly zero.

    # ----- scoring --------------------------------------------------------
    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        assert self.network is not None
        with torch.no_grad():
            scores = self.network.all_items(torch.from_numpy(users)).numpy()
        return scores if items is None else scores[:, items]

    def predict_ratings(self, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray) -> np.ndarray:
        """Predicted rating of each (user row, item row) pair, float32 (not clipped).

        Example:
            >>> model.predict_ratings([0], [5])   # doctest: +SKIP
            array([3.9], dtype=float32)
        """
        self._check_fitted()
        assert self.network is not None
        u = np.asarray(users, dtype=np.int64)
        i = np.asarray(items, dtype=np.int64)
        if u.shape != i.shape or u.ndim != 1:
            raise InvalidArgumentError(f"users and items must be 1-d and equally long, got {u.shape} and {i.shape}")
        if u.size and (u.min() < 0 or u.max() >= self.n_users):
            raise InvalidArgumentError(f"user rows must lie in [0, {self.n_users}), got {u.tolist()[:5]}")
        if i.size and (i.min() < 0 or i.max() >= self.n_items):
            raise InvalidArgumentError(f"item rows must lie in [0, {self.n_items}), got {i.tolist()[:5]}")
        with torch.no_grad():
            return self.network(torch.from_numpy(u), torch.from_numpy(i)).numpy().astype(np.float32)

    # ----- persistence ----------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        assert self.network is not None
        return {k: v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        dim = arrays["user_factors.weight"].shape[1]
        self.network = BiasedMFNetwork(self.n_users, self.n_items, dim, float(arrays["global_mean"][0]))
        self.network.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
