"""Baselines every neural model must beat: popularity, item-kNN, matrix factorisation, content.

Well-tuned simple baselines are hard to beat (Dacrema et al. 2019; Rendle et
al. 2020, "Neural Collaborative Filtering vs. Matrix Factorization Revisited"),
so they are implemented with care and tuned with the same budget as the rest.

* `popularity`: training item counts, the same list for everyone.
* `itemknn`: cosine item-item similarity on the binary matrix, top-k neighbours, shrinkage.
* `als`: implicit-feedback ALS (Hu, Koren & Volinsky 2008) solved with conjugate gradient
  (Takács, Pilászy & Tikk 2011), vectorised in NumPy/SciPy.
* `bprmf`: matrix factorisation trained with the BPR loss (Rendle et al. 2009) in torch.
* `content`: cosine between an item's content vector and the mean content vector of a history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .data import InteractionData
from core.errors import InvalidArgumentError
from .base import ModelConfig, Recommender, _history_matrix, seed_everything
from .registry import register
from .training import EarlyStopping, progress, validation_ndcg


def _columns(scores: np.ndarray, items: np.ndarray | None) -> np.ndarray:
    """Restrict a full score matrix to the candidate item rows, when given."""
    return scores if items is None else scores[:, items]


# ----- popularity -----------------------------------------------------------
@register
class Popularity(Recommender):
    """Ranks items by how often they occur in training; the same for every user.

    Example:
        >>> d = InteractionData.from_arrays([0, 1, 1], [2, 2, 0], n_items=3)
        >>> Popularity(show_progress=False).fit(d).score([0]).tolist()
        [[1.0, 0.0, 2.0]]
    """

    name = "popularity"

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


@register
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
    config: ItemKNNConfig

    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> ItemKNN:
        cfg = self.config
        if cfg.neighbours <= 0 or cfg.shrinkage < 0:
            raise InvalidArgumentError(
                f"itemknn needs neighbours > 0 and shrinkage >= 0, got {cfg.neighbours} and {cfg.shrinkage}"
            )
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
        return _columns((_history_matrix(histories, self.n_items) @ self.similarity).toarray(), items)

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


# ----- ALS --------------------------------------------------------------------
@dataclass(frozen=True)
class ALSConfig(ModelConfig):
    """Implicit ALS settings.

    Attributes:
        factors: dimension of the user and item vectors.
        regularization: L2 penalty on the vectors.
        alpha: confidence of an observed interaction is 1 + alpha (unobserved: 1, preference 0).
        cg_steps: conjugate-gradient steps per half-epoch (3 is the usual choice).
    """

    # Best region on ML-100K validation: strong regularisation, low confidence weight.
    epochs: int = 15
    factors: int = 128
    regularization: float = 10.0
    alpha: float = 1.0
    cg_steps: int = 3


@register
class ALS(Recommender):
    """Matrix factorisation for implicit feedback by alternating least squares.

    Minimises sum_ui c_ui (p_ui - x_u.y_i)^2 + reg (|x_u|^2 + |y_i|^2) over all
    user-item pairs (Hu et al. 2008); each half-epoch solves the user (or item)
    vectors with a few warm-started conjugate-gradient steps, vectorised over all
    users at once.

    Example:
        >>> d = InteractionData.from_arrays([0, 0, 1, 1, 2], [0, 1, 0, 1, 2], n_items=3)
        >>> ALS(show_progress=False, factors=4, epochs=5).fit(d).score([0]).shape
        (1, 3)
    """

    name = "als"
    config_class = ALSConfig
    config: ALSConfig

    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> ALS:
        cfg = self.config
        if cfg.factors <= 0 or cfg.regularization < 0 or cfg.alpha < 0 or cfg.cg_steps <= 0:
            raise InvalidArgumentError(
                "als needs factors > 0, regularization >= 0, alpha >= 0 and cg_steps > 0, got "
                f"{cfg.factors}, {cfg.regularization}, {cfg.alpha}, {cfg.cg_steps}"
            )
        seed_everything(cfg.seed)
        self._remember(train)
        assert self.train_matrix is not None
        rng = np.random.default_rng(cfg.seed)
        x = self.train_matrix.astype(np.float32).tocsr()
        xt = x.T.tocsr()
        self.user_factors = (rng.standard_normal((self.n_users, cfg.factors)) * 0.01).astype(np.float32)
        self.item_factors = (rng.standard_normal((self.n_items, cfg.factors)) * 0.01).astype(np.float32)
        stop = EarlyStopping(cfg.patience) if validation is not None and len(validation) else None
        for _ in progress(range(cfg.epochs), "als", cfg.show_progress):
            self.user_factors = _cg_solve(x, self.item_factors, self.user_factors, cfg)
            self.item_factors = _cg_solve(xt, self.user_factors, self.item_factors, cfg)
            if stop is not None and stop.step(
                validation_ndcg(lambda u: self._score_users(u, None), train, validation),
                lambda: (self.user_factors, self.item_factors),
            ):
                break
        if stop is not None:
            self.user_factors, self.item_factors = stop.best_state
        return self

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        y = self.item_factors if items is None else self.item_factors[items]
        return self.user_factors[users] @ y.T

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        # Fold-in: the exact least-squares user vector for each history, items held fixed.
        cfg = self.config
        y = self.item_factors.astype(np.float64)
        gram = y.T @ y + cfg.regularization * np.eye(cfg.factors)
        vectors = np.zeros((len(histories), cfg.factors), dtype=np.float32)
        for r, h in enumerate(histories):
            h = np.unique(h)
            if h.size:
                yh = y[h]
                vectors[r] = np.linalg.solve(gram + cfg.alpha * yh.T @ yh, (1 + cfg.alpha) * yh.sum(axis=0))
        y32 = self.item_factors if items is None else self.item_factors[items]
        return vectors @ y32.T

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors, self.item_factors = arrays["user_factors"], arrays["item_factors"]


def _cg_solve(x: sp.csr_matrix, y: np.ndarray, start: np.ndarray, cfg: ALSConfig) -> np.ndarray:
    """New row vectors for the rows of binary `x`, given the fixed column vectors `y`, by CG."""
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    cols = x.indices
    gram = (y.T @ y).astype(np.float32) + cfg.regularization * np.eye(y.shape[1], dtype=np.float32)

    def apply(v: np.ndarray) -> np.ndarray:
        # (Y'Y + reg I + alpha Y_u' Y_u) v_u for every row u at once.
        dots = np.einsum("nf,nf->n", v[rows], y[cols])
        return v @ gram + cfg.alpha * (sp.csr_matrix((dots, (rows, cols)), shape=x.shape) @ y)

    b = (1.0 + cfg.alpha) * (x @ y)
    v = start.copy()
    r = b - apply(v)
    p = r.copy()
    rs = np.einsum("nf,nf->n", r, r)
    for _ in range(cfg.cg_steps):
        ap = apply(p)
        denom = np.einsum("nf,nf->n", p, ap)
        step = np.divide(rs, denom, out=np.zeros_like(rs), where=denom > 0)
        v += step[:, None] * p
        r -= step[:, None] * ap
        rs_new = np.einsum("nf,nf->n", r, r)
        p = r + np.divide(rs_new, rs, out=np.zeros_like(rs), where=rs > 0)[:, None] * p
        rs = rs_new
    return v.astype(np.float32)


# ----- BPR-MF -----------------------------------------------------------------
@dataclass(frozen=True)
class BPRConfig(ModelConfig):
    """BPR matrix factorisation settings.

    Attributes:
        factors: embedding dimension.
        lr: Adam learning rate.
        l2: L2 penalty on the embeddings used in each triple, per triple.
        batch_size: (user, positive, negative) triples per step.
    """

    # Best region on ML-100K validation (leave-last-out); early stopping picks the epoch.
    epochs: int = 100
    patience: int = 5
    factors: int = 128
    lr: float = 0.005
    l2: float = 1e-5
    batch_size: int = 1024


class MFNet(nn.Module):
    """User and item embeddings with an item bias; score = u.i + b_i."""

    def __init__(self, n_users: int, n_items: int, factors: int) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, factors)
        self.items = nn.Embedding(n_items, factors)
        self.bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.users.weight, std=0.01)
        nn.init.normal_(self.items.weight, std=0.01)
        nn.init.zeros_(self.bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.users(users) * self.items(items)).sum(-1) + self.bias(items).squeeze(-1)


@register
class BPRMF(Recommender):
    """Matrix factorisation trained to rank each seen item above a sampled unseen one (BPR).

    Example:
        >>> d = InteractionData.from_arrays([0, 0, 1, 1, 2], [0, 1, 0, 1, 2], n_items=3)
        >>> BPRMF(show_progress=False, factors=4, epochs=2).fit(d).score([0]).shape
        (1, 3)
    """

    name = "bprmf"
    config_class = BPRConfig
    config: BPRConfig

    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> BPRMF:
        cfg = self.config
        if cfg.factors <= 0 or cfg.lr <= 0 or cfg.l2 < 0 or cfg.batch_size <= 0:
            raise InvalidArgumentError(
                "bprmf needs factors > 0, lr > 0, l2 >= 0 and batch_size > 0, got "
                f"{cfg.factors}, {cfg.lr}, {cfg.l2}, {cfg.batch_size}"
            )
        seed_everything(cfg.seed)
        self._remember(train)
        assert self.train_matrix is not None
        seen = self.train_matrix
        pos_u = np.repeat(np.arange(self.n_users), np.diff(seen.indptr))
        pos_i = seen.indices.astype(np.int64)
        rng = np.random.default_rng(cfg.seed)
        self.net = MFNet(self.n_users, self.n_items, cfg.factors)
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        stop = EarlyStopping(cfg.patience) if validation is not None and len(validation) else None
        for _ in progress(range(cfg.epochs), "bprmf", cfg.show_progress):
            self.net.train()
            order = rng.permutation(len(pos_u))
            neg = _sample_negatives(seen, pos_u[order], rng)
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                u = torch.from_numpy(pos_u[idx])
                i = torch.from_numpy(pos_i[idx])
                j = torch.from_numpy(neg[start : start + cfg.batch_size])
                diff = self.net(u, i) - self.net(u, j)
                reg = (
                    self.net.users(u).pow(2).sum() + self.net.items(i).pow(2).sum() + self.net.items(j).pow(2).sum()
                ) / len(idx)
                loss = -nn.functional.logsigmoid(diff).mean() + cfg.l2 * reg
                opt.zero_grad()
                loss.backward()
                opt.step()
            self._export()
            if stop is not None and stop.step(
                validation_ndcg(lambda u: self._score_users(u, None), train, validation),
                lambda: self.net.state_dict(),
            ):
                break
        if stop is not None:
            self.net.load_state_dict(stop.best_state)
        self._export()
        return self

    def _export(self) -> None:
        """NumPy copies of the weights, which scoring uses (and save writes)."""
        self.user_vectors = self.net.users.weight.detach().numpy().copy()
        self.item_vectors = self.net.items.weight.detach().numpy().copy()
        self.item_bias = self.net.bias.weight.detach().numpy().ravel().copy()

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        return self._score_vectors(self.user_vectors[users], items)

    def _score_vectors(self, vectors: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        if items is None:
            return vectors @ self.item_vectors.T + self.item_bias
        return vectors @ self.item_vectors[items].T + self.item_bias[items]

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        # Fold-in: fit a user vector per history by BPR with the item side frozen.
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed)
        q = torch.from_numpy(self.item_vectors)
        b = torch.from_numpy(self.item_bias)
        rows = np.concatenate([np.full(len(h), r) for r, h in enumerate(histories)]) if histories else np.zeros(0)
        cols = np.concatenate(histories) if histories else np.zeros(0)
        vec = torch.zeros(len(histories), cfg.factors, requires_grad=True)
        if len(cols):
            r_t, c_t = torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(cols.astype(np.int64))
            opt = torch.optim.Adam([vec], lr=0.05)
            for _ in range(100):
                j = torch.randint(0, self.n_items, (len(c_t),), generator=gen)
                diff = (vec[r_t] * (q[c_t] - q[j])).sum(-1) + b[c_t] - b[j]
                loss = -nn.functional.logsigmoid(diff).mean() + cfg.l2 * vec.pow(2).sum() / len(c_t)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return self._score_vectors(vec.detach().numpy(), items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"users": self.user_vectors, "items": self.item_vectors, "bias": self.item_bias}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.net = MFNet(self.n_users, self.n_items, self.config.factors)
        self.net.load_state_dict(
            {
                "users.weight": torch.from_numpy(arrays["users"]),
                "items.weight": torch.from_numpy(arrays["items"]),
                "bias.weight": torch.from_numpy(arrays["bias"]).unsqueeze(1),
            }
        )
        self._export()


def _sample_negatives(seen: sp.csr_matrix, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly drawn item per user that the user has not seen (a few redraws, then accept)."""
    n_items = seen.shape[1]
    neg = rng.integers(0, n_items, len(users))
    for _ in range(5):
        hit = np.asarray(seen[users, neg]).ravel() > 0
        if not hit.any():
            break
        neg[hit] = rng.integers(0, n_items, int(hit.sum()))
    return neg.astype(np.int64)


# ----- content ------------------------------------------------------------------
@register
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
        return self._profiles(_history_matrix(histories, self.n_items)) @ f.T

    def _state(self) -> dict[str, np.ndarray]:
        return {"features": self.features}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.features = arrays["features"]


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norms > 0, norms, 1.0)).astype(np.float32)
