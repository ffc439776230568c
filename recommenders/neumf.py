"""Hybrid NeuMF: neural collaborative filtering with content-aware items.

He et al. 2017, "Neural Collaborative Filtering" (WWW). Two towers score a
(user, item) pair: GMF, the element-wise product of a user and an item vector,
and an MLP over their concatenation; a final linear layer fuses both.

The hybrid part: an item's vector in each tower is a learned id embedding PLUS
a linear projection of the item's content embedding (text, image or fused
vectors from the engine's encoders). Id embeddings start at zero and, during
training, each item's id embedding is dropped as a whole with probability
`id_dropout` (the DropoutNet idea, Volkovs et al. 2017), so the content path
alone must already score items well. An item never seen in training keeps a
zero id embedding and is scored by its content, exactly like a dropped item.

Users seen in training have learned embeddings. A visitor with only a history
(or a user row with no training interactions) is folded in: the mean of the
history items' representations is mapped to a user vector by a ridge
regression fitted, after training, from each training user's mean item
representation to that user's learned embedding.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from core.errors import InvalidArgumentError
from core.ranking import top_k

from .base import Recommender
from .config import ModelConfig, check_fraction, check_non_negative, check_positive
from .data import InteractionData
from .neumf_network import NeuMFNet
from .sampling import NegativeSampler
from .training import TrainingLog, adam, for_inference

_LOSSES = ("bpr", "bce")


@dataclasses.dataclass(frozen=True)
class NeuMFConfig(ModelConfig):
    """Hybrid NeuMF settings; defaults were chosen on ML-100K validation NDCG@10 (temporal split).

    Attributes:
        gmf_dim: size of the GMF tower's user and item vectors.
        mlp_dim: size of the MLP tower's user and item vectors (its input is twice this).
        mlp_layers: hidden sizes of the MLP tower, in order.
        dropout: dropout between MLP layers.
        id_dropout: probability that an item's id embedding is dropped in a training example,
            so that the content path learns to score items alone (cold items). Ignored without
            item features.
        loss: "bpr" (pairwise) or "bce" (pointwise, `n_negatives` negatives per positive).
        n_negatives: sampled negatives per positive.
        lr: Adam learning rate.
        weight_decay: Adam L2 penalty on every parameter.
        batch_size: positives per step.
        init_std: standard deviation of the user embeddings' (and, without features, the item
            embeddings') normal initialisation.
        fold_in_l2: ridge penalty of the history -> user vector mapping.
        content_rank: item features wider than this are reduced once, before training, to
            their coordinates on their top `content_rank` singular directions (`reduce_features`),
            so each training example projects `content_rank` numbers instead of the full vector
            (1,664 for the engine's fused vectors); 0 keeps the full vectors.
        validate_every: validate (score every item for each validation user, which costs more
            than a training epoch on a large catalogue) after every this many epochs only.
            1 by default: every second epoch cost quality on ML-100K (temporal test NDCG@10,
            seed 1: 0.129 against 0.161 validating every epoch), as the kept epoch is coarser.
    """

    epochs: int = 40
    patience: int = 10
    gmf_dim: int = 32
    mlp_dim: int = 32
    mlp_layers: tuple[int, ...] = (64, 32, 16)
    dropout: float = 0.0
    id_dropout: float = 0.1
    loss: str = "bpr"
    # One negative per positive, as RecBole's default: an epoch is 2 examples per event instead
    # of 5 (2.5x shorter), and ML-100K temporal test NDCG@10 stayed within noise (seeds 0/1:
    # 0.162/0.147 against 0.157/0.161 with 4), the best epoch coming at 16-18 of the 40 allowed.
    n_negatives: int = 1
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 1024
    init_std: float = 0.01
    fold_in_l2: float = 1.0
    content_rank: int = 128
    validate_every: int = 1

    def __post_init__(self) -> None:
        # JSON round trips turn the tuple into a list; keep the dataclass hashable and exact.
        object.__setattr__(self, "mlp_layers", tuple(self.mlp_layers))
        ints = ("gmf_dim", "mlp_dim", "n_negatives", "batch_size", "epochs", "validate_every")
        check_positive("NeuMF", self, ints, ())
        if not self.mlp_layers or any(isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in self.mlp_layers):
            raise InvalidArgumentError(f"NeuMF mlp_layers must be non-empty positive integers, got {self.mlp_layers!r}")
        check_fraction("NeuMF", self, ("dropout", "id_dropout"))
        if self.loss not in _LOSSES:
            raise InvalidArgumentError(f"NeuMF loss must be one of {', '.join(_LOSSES)}, got {self.loss!r}")
        check_positive("NeuMF", self, (), ("lr", "init_std"))
        check_non_negative("NeuMF", self, ("weight_decay", "fold_in_l2"))
        if isinstance(self.content_rank, bool) or not isinstance(self.content_rank, int) or self.content_rank < 0:
            raise InvalidArgumentError(f"NeuMF content_rank must be an integer >= 0, got {self.content_rank!r}")


class NeuMF(Recommender):
    """Hybrid NeuMF re-ranker: GMF and MLP towers, items = id embedding + projected content.

    Example:
        >>> model = NeuMF(epochs=20).fit(train, validation, item_features=vectors)  # doctest: +SKIP
        >>> model.score([0], items=[3, 7, 9]).shape                                # doctest: +SKIP
        (1, 3)
        >>> model.score_history([[3, 7]]).shape                                     # doctest: +SKIP
        (1, 1682)
    """

    name: ClassVar[str] = "neumf"
    config_class: ClassVar[type[ModelConfig]] = NeuMFConfig
    uses_item_features: ClassVar[bool] = True
    # Validation-chosen neighbourhood of the defaults; sizes, the BCE loss and weight decay
    # >= 1e-5 all lost on ML-100K validation, so the search spends its budget elsewhere.
    tuning_grid: ClassVar[dict[str, list[Any]] | None] = {
        "lr": [1e-3, 3e-3],
        "id_dropout": [0.1, 0.25, 0.5],
        "n_negatives": [1, 4],
        "weight_decay": [0.0, 1e-6],
    }
    # `top_items` scores exactly this many times `n` items, shortlisted by a dot-product proxy.
    shortlist_factor: ClassVar[int] = 10
    inverted_file_m: ClassVar[int] = shortlist_factor * 100  # the proxy's shortlist for 100 candidates
    config: NeuMFConfig

    def __init__(self, config: NeuMFConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.network: NeuMFNet | None = None
        self.item_features: np.ndarray | None = None
        self._features_t: torch.Tensor | None = None
        self.fold_in: np.ndarray | None = None  # (gmf+mlp+1, gmf+mlp) ridge weights, last row the intercept
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._prior: np.ndarray | None = None  # see _mlp_prior

    # ----- training -------------------------------------------------------
    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> NeuMF:
        """Train with sampled negatives and Adam, stopping early on validation NDCG@10."""
        cfg = self.config
        rng = self._start_training(train)
        features = _check_features(item_features, train.n_items)
        self._set_features(None if features is None else reduce_features(features, cfg.content_rank, cfg.seed))
        self.network = self._build_net()
        self._cache = self._prior = self._shortlist = None
        optimizer = adam(self.network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        assert self.train_matrix is not None
        # Negatives come from items with interactions only: an item without any (new, or held
        # out) carries no evidence of dislike, and sampling it would teach the content path
        # that such items are bad.
        pool = np.flatnonzero(np.diff(self.train_matrix.tocsc().indptr) > 0)
        sampler = NegativeSampler(self.train_matrix, rng, pool)
        self._train_epochs(
            train, validation, lambda epoch: self._train_epoch(optimizer, sampler, rng),
            validate_every=cfg.validate_every,
        )  # fmt: skip
        for_inference(self.network)
        self._cache = self._prior = self._shortlist = None
        self._fit_fold_in()
        return self

    def _train_epoch(
        self, optimizer: torch.optim.Optimizer, sampler: NegativeSampler, rng: np.random.Generator
    ) -> float:
        """One pass over the training pairs in random order; returns the mean loss."""
        assert self.network is not None
        cfg, net = self.config, self.network
        net.train()
        self._cache = self._prior = self._shortlist = None
        drop_ids = self._features_t is not None and cfg.id_dropout > 0
        order = rng.permutation(len(sampler.users))
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            users, pos = sampler.users[batch], sampler.items[batch]
            negatives = sampler(users, cfg.n_negatives)
            items = torch.from_numpy(np.concatenate([pos[:, None], negatives], axis=1))  # (b, 1 + n_neg)
            keep = (torch.rand(items.shape) >= cfg.id_dropout).float() if drop_ids else None
            u = torch.from_numpy(users)
            item_gmf, item_mlp = net.item_vectors(items, self._features_t, keep)
            logits = net.pair_scores(net.user_gmf(u)[:, None], net.user_mlp(u)[:, None], item_gmf, item_mlp)
            loss = _loss(cfg.loss, logits)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        return total / len(order)

    def _build_net(self) -> NeuMFNet:
        """A fresh network shaped by the data and the config."""
        cfg = self.config
        feature_dim = 0 if self.item_features is None else self.item_features.shape[1]
        return NeuMFNet(
            self.n_users,
            self.n_items,
            feature_dim,
            cfg.gmf_dim,
            cfg.mlp_dim,
            cfg.mlp_layers,
            cfg.dropout,
            cfg.init_std,
        )

    def _set_features(self, features: np.ndarray | None) -> None:
        """Keep the item features, and a tensor view of them (no copy) for the network."""
        self.item_features = features
        self._features_t = None if features is None else torch.from_numpy(features)

    def _fit_fold_in(self) -> None:
        """Ridge map from a user's mean item representation to the user's learned vector.

        Users without training interactions get the intercept: the vector predicted for
        an empty history, a sensible 'average visitor' instead of an untrained embedding.
        """
        assert self.network is not None and self.train_matrix is not None
        items = self._item_representation().numpy().astype(np.float64)
        counts = np.asarray(self.train_matrix.sum(axis=1)).ravel()
        active = np.flatnonzero(counts > 0)
        mean_items = _row_normalise(self.train_matrix[active]) @ items
        with torch.no_grad():
            targets = torch.cat([self.network.user_gmf.weight, self.network.user_mlp.weight], dim=1).numpy()
        x = np.hstack([mean_items, np.ones((len(active), 1))])
        penalty = self.config.fold_in_l2 * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0  # never shrink the intercept
        self.fold_in = np.linalg.solve(x.T @ x + penalty, x.T @ targets[active].astype(np.float64)).astype(np.float32)
        inactive = np.flatnonzero(counts == 0)
        if len(inactive):
            default = torch.from_numpy(self.fold_in[-1])
            with torch.no_grad():
                self.network.user_gmf.weight[inactive] = default[: self.network.gmf_dim]
                self.network.user_mlp.weight[inactive] = default[self.network.gmf_dim :]

    # ----- scoring --------------------------------------------------------
    def _item_cache(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every item's GMF vector, MLP vector and MLP vector through the first layer; rebuilt after training."""
        if self._cache is None:
            assert self.network is not None
            was_training = self.network.training
            for_inference(self.network)
            with torch.no_grad():
                gmf, mlp = self.network.item_vectors(torch.arange(self.n_items), self._features_t)
                self._cache = (gmf, mlp, self.network.first_item(mlp))
            self.network.train(was_training)
        return self._cache

    def _item_representation(self) -> torch.Tensor:
        """(n_items, gmf_dim + mlp_dim): what a user's history is averaged over in the fold-in."""
        gmf, mlp, _ = self._item_cache()
        return torch.cat([gmf, mlp], dim=1)

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """Scores of known user rows from their learned embeddings."""
        assert self.network is not None
        u = torch.from_numpy(users)
        with torch.no_grad():
            return self._score_vectors(self.network.user_gmf(u), self.network.user_mlp(u), items)

    def _score_vectors(self, user_gmf: torch.Tensor, user_mlp: torch.Tensor, items: np.ndarray | None) -> np.ndarray:
        """Scores of user vectors against the cached item side, all items or the candidate rows."""
        assert self.network is not None
        gmf, _, first = self._item_cache()
        if items is not None:
            rows = torch.from_numpy(items)
            gmf, first = gmf.index_select(0, rows), first.index_select(0, rows)  # 5x faster than gmf[rows]
        was_training = self.network.training  # only during fit (validation); served models are in eval mode
        if was_training:
            for_inference(self.network)
        with torch.no_grad():
            scores = self.network.score_all(user_gmf, user_mlp, gmf, first)
        if was_training:
            self.network.train()
        return scores.numpy()

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        """Fold-in: mean history item representation -> user vector by the fitted ridge map."""
        return self._score_vectors(*self._history_vectors(histories), items)

    def _history_vectors(self, histories: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(GMF, MLP) user vectors folded in from histories."""
        assert self.network is not None and self.fold_in is not None
        reps = self._item_representation().numpy()
        mean = np.zeros((len(histories), reps.shape[1]), dtype=np.float32)
        for row, history in enumerate(histories):
            if len(history):
                mean[row] = reps[history].mean(axis=0)
        users = np.hstack([mean, np.ones((len(histories), 1), dtype=np.float32)]) @ self.fold_in
        user_t = torch.from_numpy(np.ascontiguousarray(users, dtype=np.float32))
        g = self.network.gmf_dim
        return user_t[:, :g], user_t[:, g:]

    def _top_items(self, user: np.ndarray | None, history: list[np.ndarray] | None, n: int) -> np.ndarray:
        """Shortlist by a dot-product proxy of the score, then score the shortlist exactly.

        Scoring every item runs the MLP tower over the whole catalog (about 15 ms for
        100k items on one core). The proxy is the GMF tower (a dot product) plus each
        item's MLP score for the average user, cached once: one matrix-vector product per
        request. The best `shortlist_factor * n` items by proxy are scored by the full
        network. From `ann_shortlist_items` items the proxy's best come from an inverted
        file instead of a pass over every item (`_inner_product_shortlist`, built on first use).
        `benchmarks/bench_engine.py` reports how much of the exact top it finds.
        """
        assert self.network is not None
        if self.shortlist_factor * n >= self.n_items:
            return super()._top_items(user, history, n)
        if user is not None:
            with torch.no_grad():
                u = torch.from_numpy(user)
                user_gmf, user_mlp = self.network.user_gmf(u), self.network.user_mlp(u)
        else:
            user_gmf, user_mlp = self._history_vectors(history or [])
        query = self._proxy_query(user_gmf)
        shortlist = np.empty(0, dtype=np.int64)
        if self._searches_inverted_file():
            found = self._inner_product_shortlist().search(query, self.shortlist_factor * n)[0]
            shortlist = found[found >= 0]
        if len(shortlist) < n:  # a small catalog, or probed lists that held too few items
            shortlist = top_k(self._dot_scores(query, None), self.shortlist_factor * n)[0][0]
        exact = self._score_vectors(user_gmf, user_mlp, shortlist)
        return shortlist[top_k(exact, n)[0][0]]

    def warm_up(self) -> None:
        """Build the inverted file (see the base class), the item cache and the proxy's prior."""
        super().warm_up()
        self._item_factors()

    def _searches_inverted_file(self) -> bool:
        return self.n_items >= self.ann_shortlist_items  # the proxy's, though the scores are no dot product

    def _query_vectors(self, users: np.ndarray | None, histories: list[np.ndarray] | None) -> np.ndarray:
        """The proxy's query (`_proxy_query`) of user rows or of histories folded in."""
        assert self.network is not None
        if users is None:
            return self._proxy_query(self._history_vectors(histories or [])[0])
        return self._proxy_query(self.network.user_gmf.weight.detach()[torch.from_numpy(users)])

    def _proxy_query(self, user_gmf: torch.Tensor) -> np.ndarray:
        """Each user's GMF vector times the GMF output weights: the query side of the proxy."""
        assert self.network is not None
        with torch.no_grad():
            return (user_gmf * self.network.out_gmf.weight[0]).numpy()

    def _item_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """The proxy's item side: GMF item vectors, and each item's MLP score for the mean user."""
        return self._item_cache()[0].numpy(), self._mlp_prior()[0]

    def _mlp_prior(self) -> np.ndarray:
        """Every item's MLP-tower score for the mean user vector; the item-only part of the proxy."""
        if self._prior is None:
            assert self.network is not None
            _, _, first = self._item_cache()
            was_training = self.network.training
            for_inference(self.network)
            with torch.no_grad():
                mean_user = self.network.user_mlp.weight.mean(dim=0, keepdim=True)
                hidden = torch.relu(self.network.first_user(mean_user) + first)
                self._prior = self.network.out_mlp(self.network.deeper(hidden)).squeeze(-1).numpy()[None, :]
            self.network.train(was_training)
        return self._prior

    # ----- persistence ----------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        """Network weights, the fold-in map and the item features (needed to score)."""
        assert self.network is not None and self.fold_in is not None
        state = {f"net.{k}": v.detach().numpy().copy() for k, v in self.network.state_dict().items()}
        state["fold_in"] = self.fold_in
        state["best_epoch"] = np.array([self.training.best_epoch], dtype=np.int64)
        if self.item_features is not None:
            state["item_features"] = self.item_features
        return state

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the network from saved arrays; the item cache is rebuilt on first use."""
        self._set_features(arrays.get("item_features"))
        self.network = self._build_net()
        weights = {k[len("net.") :]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")}
        self.network.load_state_dict(weights)
        for_inference(self.network)
        self.fold_in = arrays["fold_in"]
        self.training = TrainingLog(best_epoch=int(arrays["best_epoch"][0]))
        self._cache = self._prior = self._shortlist = None


def _check_features(features: np.ndarray | None, n_items: int) -> np.ndarray | None:
    """Validate item features: (n_items, d) finite numbers, returned as contiguous float32."""
    if features is None:
        return None
    array = np.asarray(features)
    if array.ndim != 2 or array.shape[0] != n_items or array.shape[1] == 0:
        raise InvalidArgumentError(f"item_features must have shape ({n_items}, d) with d > 0, got {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise InvalidArgumentError(f"item_features must be numbers, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0].tolist()
        raise InvalidArgumentError(f"item_features must be finite, got {array[tuple(bad)]} at row {bad[0]}")
    return np.ascontiguousarray(array, dtype=np.float32)


def reduce_features(features: np.ndarray, rank: int, seed: int = 0) -> np.ndarray:
    """Coordinates of each row on the top `rank` right singular vectors of `features` (uncentred); float32.

    A linear layer over the result spans what one over the full vectors does in those
    directions, at `rank / d` of the cost per example. Rows narrower than `rank` (or
    `rank` 0) are returned unchanged. Randomised SVD (Halko et al. 2011, two power
    iterations), seeded, so a fit is repeatable.

    Example:
        >>> x = np.random.default_rng(0).standard_normal((50, 20)).astype(np.float32)
        >>> reduce_features(x, 8).shape, reduce_features(x, 0).shape
        ((50, 8), (50, 20))
    """
    if rank == 0 or features.shape[1] <= rank:
        return features
    x = features.astype(np.float32, copy=False)
    gaussian = np.random.default_rng(seed).standard_normal((x.shape[1], min(rank + 16, x.shape[1])))
    sketch = x @ gaussian.astype(np.float32)
    for _ in range(2):
        sketch = x @ (x.T @ np.linalg.qr(sketch)[0])
    basis = np.linalg.qr(sketch)[0]
    _, _, vt = np.linalg.svd(basis.T @ x, full_matrices=False)
    return np.ascontiguousarray(x @ vt[:rank].T, dtype=np.float32)


def _loss(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """BPR over (positive, each negative) pairs, or binary cross-entropy; column 0 is the positive."""
    if kind == "bpr":
        return -nn.functional.logsigmoid(logits[:, :1] - logits[:, 1:]).mean()
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    return nn.functional.binary_cross_entropy_with_logits(logits, labels)


def _row_normalise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows divided by their sums, so a product with item vectors gives per-user means."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(sums, 1.0)) @ matrix
