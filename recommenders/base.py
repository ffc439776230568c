"""The one interface every recommender model implements.

Models see row indices only (`InteractionData`); the engine maps raw ids to
rows. A model is built from the data's shape in `fit`, and saved as a folder:
a manifest with its config, and its arrays (network weights included) as
safetensors. No pickled objects.

What a model can do is declared once, on its class, as `ClassVar`s
(`uses_item_features`, `scores_sessions`, `predicts_ratings`, `rating_only`,
`explains`, `tuning_grid`). Training in epochs is a service of the base class
(`_start_training`, `_train_epochs`): it seeds, times, validates, stops early and
keeps the best weights, so that a model writes only its own epoch step.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from core.errors import InteractionsError, InvalidArgumentError, NotFittedError
from core.persistence import MODEL_KIND, DamagedModelError, atomic_dir, model_folder, write_manifest
from core.ranking import top_k

from .config import ModelConfig
from .data import InteractionData, history_matrix
from .metrics import rank_users, rmse
from .shortlist import InnerProductShortlist
from .training import TrainingLog, progress, seed_everything

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

WEIGHTS = "weights.safetensors"
# Early stopping ranks at most this many validation users (a fixed sample), for speed, and at
# most VALIDATION_SCORES user-item scores, but never fewer than MIN_VALIDATION_USERS users:
# with 2,000 users a 1M-item catalogue cost 2e9 scores per validation (a NeuMF fit of 2
# epochs on 40k events had not finished after 12 minutes); up to 25k items nothing changes.
VALIDATION_USERS = 2000
VALIDATION_SCORES = 50_000_000
MIN_VALIDATION_USERS = 100


def validation_users(n_items: int) -> int:
    """How many validation users early stopping ranks over `n_items` items (see VALIDATION_SCORES).

    Example:
        >>> validation_users(1_682), validation_users(100_000), validation_users(1_000_000)
        (2000, 500, 100)
    """
    return max(MIN_VALIDATION_USERS, min(VALIDATION_USERS, VALIDATION_SCORES // max(n_items, 1)))


class Recommender(ABC):
    """Scores items for users (rows seen in training) or anonymous histories.

    Subclasses set `name` and `config_class`, implement `fit`, `_score_users`,
    `_state` and `_load_state`, and override `_score_histories` when they can
    score a history that was not in training. A model that trains in epochs
    starts `fit` with `_start_training` and hands its epoch step to `_train_epochs`.

    Example:
        >>> model = create_model("popularity")          # doctest: +SKIP
        >>> model.fit(train).score(np.array([0]))        # doctest: +SKIP
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    # ----- capabilities: declared here, once, and set by the models that have them -----
    # True when `fit` needs `item_features` (content vectors, one row per item).
    uses_item_features: ClassVar[bool] = False
    # True when the model scores an anonymous history natively (sequence models,
    # autoencoders) rather than through the generic co-occurrence fold-in; the
    # engine then lets it rank a visitor's session instead of falling back to content.
    scores_sessions: ClassVar[bool] = False
    # True when the model predicts rating values (`predict_ratings(users, items)`), judged by RMSE.
    predicts_ratings: ClassVar[bool] = False
    # True when the model cannot be the engine's personalisation model: it is fitted to
    # rating values only, and its ranking favours obscure items rated highly by a few users.
    rating_only: ClassVar[bool] = False
    # True when `explain(history)` says how much each history item drew the prediction.
    explains: ClassVar[bool] = False
    # True when every score is a dot product `q . v_i + b_i` of a user's or history's query vector
    # (`_query_vectors`) and each item's vector and bias (`_item_factors`): see `ann_shortlist_items`.
    dot_product_scores: ClassVar[bool] = False
    # What `evaluation.protocols.tune` searches (config field -> values, in this order);
    # None: a generic grid around the config's defaults; {}: nothing to tune.
    tuning_grid: ClassVar[dict[str, list[Any]] | None] = None

    # From this many items a model with `dot_product_scores` (and NeuMF, by its proxy) finds its top items in an
    # inverted file (recommenders/shortlist.py), tuned for top-`inverted_file_m` searches (the engine's default).
    ann_shortlist_items: ClassVar[int] = 200_000
    inverted_file_m: ClassVar[int] = 100

    # Seconds after which `_train_epochs` starts no new epoch (None: no limit). `fit(model="auto")`
    # sets it on the models it tries, to keep to its time budget; a training constraint, not saved.
    time_limit_s: float | None = None

    # The torch network of a model that trains one; `_snapshot` and `_restore` read it.
    network: nn.Module | None

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        base = config if config is not None else self.config_class()
        if not isinstance(base, self.config_class):
            raise InvalidArgumentError(f"{self.name} needs a {self.config_class.__name__}, got {type(base).__name__}")
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        self.n_users = 0
        self.n_items = 0
        self.train_matrix: sp.csr_matrix | None = None
        self.training = TrainingLog()
        self._shortlist: InnerProductShortlist | None = None  # see _inner_product_shortlist

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
            raise InteractionsError("cannot fit on an empty interaction log")
        self.n_users, self.n_items = train.n_users, train.n_items
        self.train_matrix = train.csr()
        self._shortlist = None

    def _start_training(self, train: InteractionData) -> np.random.Generator:
        """Keep `train` (`_remember`), seed Python, NumPy and torch, and return a NumPy generator seeded alike."""
        self._remember(train)
        seed_everything(self.config.seed)
        return np.random.default_rng(self.config.seed)

    def _train_epochs(
        self,
        train: InteractionData,
        validation: InteractionData | None,
        run_epoch: Callable[[int], float | None],
        *,
        stop_on: str = "ndcg",
        warmup_epochs: int = 0,
        loss_label: str = "loss",
        validate_every: int = 1,
    ) -> None:
        """Run `run_epoch(epoch)` up to `config.epochs` times, stopping early on validation; keeps the best epoch.

        `run_epoch` trains one epoch and returns its mean loss (None when the model has
        no cheap loss). After each epoch from `warmup_epochs` on, `_monitor` scores the
        validation users that have training interactions (users the model never saw
        are all scored alike from its prior, and would blur the signal); after
        `config.patience` epochs without a better score training stops, and the best
        epoch's state (`_snapshot`) is put back (`_restore`). With `validate_every` n > 1,
        only every n-th epoch (and the last planned one) is validated, for models whose
        full-catalogue scoring costs more than an epoch; patience still counts epochs, and
        the kept epoch is the best validated one. Fills `self.training` and
        logs (INFO) which epoch was kept, e.g. "neumf: kept epoch 8 of 12 (validation NDCG@10 0.1530)".
        """
        cfg = self.config
        if isinstance(validate_every, bool) or not isinstance(validate_every, int) or validate_every < 1:
            raise InvalidArgumentError(f"validate_every must be a positive integer, got {validate_every!r}")
        if validation is not None:
            validation = validation.subset(np.isin(validation.users, train.active_users()))
        validated = validation is not None and len(validation) > 0
        log = self.training = TrainingLog(epochs_planned=cfg.epochs)
        best, best_state, bad = -np.inf, None, 0
        bar = progress(range(cfg.epochs), desc=self.name, enabled=cfg.show_progress)
        began = time.perf_counter()
        for epoch in bar:
            if self.time_limit_s is not None and epoch and time.perf_counter() - began >= self.time_limit_s:
                break  # out of time (`fit(model="auto")`'s budget): the best validated epoch so far is kept
            start = time.perf_counter()
            loss = run_epoch(epoch)
            seconds = time.perf_counter() - start
            record = {"seconds": seconds} if loss is None else {"loss": loss, "seconds": seconds}
            log.records.append(record)
            log.epochs_trained += 1
            shown = {} if loss is None else {loss_label: f"{loss:.4f}"}
            scheduled = (epoch + 1) % validate_every == 0 or epoch == cfg.epochs - 1
            if not validated or epoch < warmup_epochs or not scheduled:
                if cfg.show_progress:
                    bar.set_postfix(**shown)
                continue
            assert validation is not None
            metric, value, score = self._monitor(train, validation, stop_on)
            record[metric] = value
            if cfg.show_progress:
                bar.set_postfix(**shown, **{stop_on: f"{value:.4f}"})
            if score > best:
                best, log.best_epoch, bad = score, epoch, 0
                best_state = copy.deepcopy(self._snapshot())
                continue
            bad += validate_every
            if bad >= cfg.patience:
                break
        log.seconds_per_epoch = sum(r["seconds"] for r in log.records) / max(log.epochs_trained, 1)
        if best_state is not None:
            self._restore(best_state)
        logger.info("%s: %s", self.name, log.summary())

    def _monitor(self, train: InteractionData, validation: InteractionData, stop_on: str) -> tuple[str, float, float]:
        """The validation metric early stopping reads: (its name, its value, a score where higher is better).

        "ndcg": NDCG@10 over the full catalogue, each user's training items masked, ranked by
        the routine the evaluation uses (`metrics.rank_users`), for a fixed sample of at most
        `validation_users(n_items)` validation users; "rmse": `predict_ratings`' RMSE.
        """
        if stop_on == "rmse":
            error = rmse(self, validation)
            return "rmse", error, -error
        users = np.intersect1d(validation.active_users(), train.active_users())
        cap = validation_users(train.n_items)
        if len(users) > cap:
            users = np.sort(np.random.default_rng(0).choice(users, cap, replace=False))
        per_user, _ = rank_users(lambda rows: self._score_users(rows, None), users, train.csr(), validation.csr(), 10)
        ndcg = float(per_user["ndcg@10"].sum() / max(len(users), 1))
        return "ndcg@10", ndcg, ndcg

    def _snapshot(self) -> Any:
        """What early stopping keeps of the best epoch (it copies it); by default the network's weights."""
        assert self.network is not None
        return self.network.state_dict()

    def _restore(self, state: Any) -> None:
        """Put back what `_snapshot` returned."""
        assert self.network is not None
        self.network.load_state_dict(state)

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
        """`top_items` for a checked user row (1-element array) or history: scores every item, or searches
        the inverted file (`_searches_inverted_file`) unless the query has no vector or it finds < `n` items."""
        query = self._query_vectors(user, history) if self._searches_inverted_file() else None
        found = None if query is None else self._inner_product_shortlist().search(query, n)[0]
        if found is not None and found.min() >= 0:
            return found
        scores = self._score_users(user, None) if user is not None else self._score_histories(history or [], None)
        return top_k(np.asarray(scores, dtype=np.float32), n)[0][0]

    def warm_up(self) -> None:
        """Build now what the first `top_items` call would (the inverted file: about 5 s at 1M items);
        the service calls it before it answers, so that its first known user does not wait."""
        self._check_fitted()
        if self._searches_inverted_file():
            self._inner_product_shortlist()

    def _searches_inverted_file(self) -> bool:
        return self.dot_product_scores and self.n_items >= self.ann_shortlist_items

    @property
    def inverted_file(self) -> InnerProductShortlist | None:
        """The inverted file `top_items` searches (see `ann_shortlist_items`), once its first call built it."""
        return self._shortlist

    def _query_vectors(self, users: np.ndarray | None, histories: list[np.ndarray] | None) -> np.ndarray | None:
        """(b, d) float32 queries of known user rows or of histories, for the dot product that the scores
        are (`dot_product_scores`) or that the model shortlists by; None if a history gives none."""
        raise NotImplementedError(f"{type(self).__name__} does not score by a dot product")

    def _item_factors(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(item vectors (n_items, d), item biases (n_items,) or None): the item side of that dot product."""
        raise NotImplementedError(f"{type(self).__name__} does not score by a dot product")

    def _dot_scores(self, queries: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """`queries @ vectors.T + bias` over every item or the given rows (`_item_factors`)."""
        vectors, bias = self._item_factors()
        if items is not None:
            vectors, bias = vectors[items], None if bias is None else bias[items]
        scores = queries @ vectors.T
        return scores if bias is None else scores + bias

    def _inner_product_shortlist(self) -> InnerProductShortlist:
        """The inverted file of `_build_shortlist` on 200 users with training events; built once, dropped at `fit`."""
        if self._shortlist is None:
            assert self.train_matrix is not None
            active = np.flatnonzero(np.diff(self.train_matrix.indptr) > 0)
            users = np.random.default_rng(self.config.seed).choice(active, min(len(active), 200), replace=False)
            self._shortlist = self._build_shortlist(np.sort(users))
        return self._shortlist

    def _build_shortlist(self, users: np.ndarray, items_per_list: int = 1000) -> InnerProductShortlist:
        """`_item_factors` in an inverted file, tuned on two groups of queries: `users`' (with training events)
        and their training items' as histories, since fold-in queries can lie elsewhere (BPR-MF's found
        0.80 of their exact top 100 on ML-100K with probes tuned on users alone)."""
        vectors, bias = self._item_factors()
        queries = [self._query_vectors(users, None), self._query_vectors(None, self._training_histories(users))]
        m, seed = self.inverted_file_m, self.config.seed
        return InnerProductShortlist(vectors, bias, queries, m=m, seed=seed, items_per_list=items_per_list)

    def _training_histories(self, users: np.ndarray) -> list[np.ndarray]:
        """Each user's training items as a history, in the order the model reads one."""
        assert self.train_matrix is not None
        return [self.train_matrix[u].indices for u in users]

    def explain(self, history: Sequence[int] | np.ndarray) -> np.ndarray:
        """How much each item of `history` (oldest first) drew the next prediction: float32, len(history).

        Only models whose class sets `explains` can; the others raise.

        Example:
            >>> if model.explains:                    # doctest: +SKIP
            ...     weights = model.explain([12, 40, 7])
        """
        raise InvalidArgumentError(f"model {self.name!r} cannot explain its scores (its class sets explains = False)")

    @abstractmethod
    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """Model-specific scoring of known user rows."""

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        """Fold-in scoring of anonymous histories; the default uses the item-item co-occurrence of training."""
        assert self.train_matrix is not None
        x = history_matrix(histories, self.n_items)
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
                MODEL_KIND,
                model=self.name,
                config=dataclasses.asdict(self.config),
                n_users=self.n_users,
                n_items=self.n_items,
                parts=[WEIGHTS],
            )

    @classmethod
    def from_parts(cls, directory: str | Path, manifest: Mapping[str, Any]) -> Recommender:
        """Build a model of this class from a folder written by `save`, whose manifest has been read.

        `recommenders.load_model(directory)` reads the manifest, finds the class and calls this.

        Example:
            >>> LightGCN.from_parts(folder, read_manifest(folder, MODEL_KIND))   # doctest: +SKIP
        """
        if manifest.get("model") != getattr(cls, "name", None):
            raise InvalidArgumentError(f"'{directory}' holds a {manifest.get('model')!r} model, not a {cls.__name__}")
        folder = model_folder(directory)  # the current version when given the model folder itself
        try:
            model = cls(cls.config_class(**manifest["config"]))
            model.n_users, model.n_items = int(manifest["n_users"]), int(manifest["n_items"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DamagedModelError(f"'{folder}/manifest.json' does not describe a {cls.__name__}: {exc!r}") from None
        arrays = load_file(str(folder / WEIGHTS))
        indptr, indices = arrays.get("train.indptr"), arrays.get("train.indices")
        if (
            indptr is None or indices is None or indptr.shape != (model.n_users + 1,)
            or indptr[-1] != len(indices) or (len(indices) and not 0 <= indices.min() <= indices.max() < model.n_items)
        ):
            raise DamagedModelError(
                f"'{folder / WEIGHTS}' holds no training matrix of {model.n_users:,} users x {model.n_items:,} items"
            )
        data = np.ones(len(indices), dtype=np.float32)
        model.train_matrix = sp.csr_matrix((data, indices, indptr), shape=(model.n_users, model.n_items))
        model._load_state({k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")})
        return model
