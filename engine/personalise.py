"""Personalised recommendation: candidates from the index, ordered by a trained model.

For a request the engine gathers candidates from two places: the FAISS
neighbours of the visitor's most recent items (each weighted by recency) and
the model's own top items. The model then orders them. Which path serves a
request:

* a user the model was trained on -> the model ranks (`Match.source` = model name);
* an anonymous history, with a model that scores sessions natively
  (GRU4Rec, SASRec, the autoencoders, the RBM) -> the model ranks the history;
* any other history -> content similarity to the history (`source="content"`);
* no history at all -> popularity in the training log (`source="popularity"`).

Every candidate carries `because`: the history item whose content is nearest to it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from .config import RecommendConfig
from core.errors import InvalidArgumentError, NotFittedError, UnknownItemError, UnknownUserError
from core.checks import check_k
from .filters import ItemFilter, as_filter
from .interactions import Interactions
from core.ranking import top_k
from recommenders.base import Recommender
from recommenders.registry import create_model
from core.persistence import atomic_dir, read_manifest, write_manifest
from .results import Match
from recommenders.splits import leave_last_out

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)


class Personaliser:
    """A trained model plus what serving needs: id vocabularies, histories, popularity."""

    def __init__(
        self, model: Recommender, user_ids: Sequence[str], item_ids: Sequence[str], history: pd.DataFrame
    ) -> None:
        self.model = model
        self.user_ids = list(user_ids)
        self.item_ids = list(item_ids)
        self._user_rows = {u: r for r, u in enumerate(self.user_ids)}
        self._item_rows = {i: r for r, i in enumerate(self.item_ids)}
        self.history = history.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
        self._histories = {u: g["item_id"].tolist() for u, g in self.history.groupby("user_id", sort=False)}
        counts = self.history["item_id"].value_counts()
        self._popular = [i for i in counts.index.tolist()]

    # ----- training -----------------------------------------------------------
    @classmethod
    def fit(
        cls,
        engine: Engine,
        interactions: Interactions,
        model: str,
        on_unknown: str = "raise",
        show_progress: bool = True,
        **overrides: Any,
    ) -> Personaliser:
        """Train `model` on the log; each user's last event is held out for early stopping."""
        if not isinstance(interactions, Interactions):
            raise InvalidArgumentError(f"fit needs an Interactions log, got {type(interactions).__name__}")
        item_ids = list(engine.index.ids)
        log_ = interactions.validate_items(item_ids, on_unknown)  # type: ignore[arg-type]
        user_ids = log_.user_vocabulary()
        data = log_.to_data(user_ids, item_ids)
        split = leave_last_out(data)
        recommender = create_model(model, show_progress=show_progress, **overrides)
        features = engine.index.vectors(item_ids) if recommender.uses_item_features else None
        recommender.fit(split.train, split.validation if len(split.validation) else None, item_features=features)
        history = log_.frame[["user_id", "item_id", "timestamp"]]
        return cls(recommender, user_ids, item_ids, history)

    # ----- serving ------------------------------------------------------------
    def recommend(
        self,
        engine: Engine,
        user_id: str | None = None,
        history: Sequence[str] | None = None,
        k: int = 10,
        filter: ItemFilter | None = None,
        exclude_seen: bool = True,
        strict: bool = False,
    ) -> list[Match]:
        """See `Engine.recommend`."""
        # One request scores one user: torch's thread pool only adds hand-off cost
        # there (measured 0.2 ms on one thread vs 30+ ms on two busy cores).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._recommend(engine, user_id, history, k, filter, exclude_seen, strict)
        finally:
            torch.set_num_threads(threads)

    def _recommend(
        self,
        engine: Engine,
        user_id: str | None,
        history: Sequence[str] | None,
        k: int,
        filter: ItemFilter | None,
        exclude_seen: bool,
        strict: bool,
    ) -> list[Match]:
        check_k(k)
        config: RecommendConfig = engine.config.recommend
        known = user_id is not None and user_id in self._user_rows
        if user_id is not None and not known and strict:
            raise UnknownUserError(f"user {user_id!r} is not in the training log ({len(self.user_ids):,} users)")
        hist = (self._histories.get(user_id, []) if known else []) + _check_history(engine, history)
        seen = set(hist) if exclude_seen else set()
        id_filter = as_filter(filter).to_id_filter(engine.catalog, also_exclude=seen)
        indexed = [i for i in hist if i in engine.index]
        if not indexed and not known:
            return self._popular_items(engine, k, id_filter)
        content = content_candidates(engine, indexed, config, id_filter)
        session_ids = [i for i in hist if i in self._item_rows]
        session_rows = [self._item_rows[i] for i in session_ids]
        if self.model.scores_sessions and session_rows:
            # Session models read the whole, newest history, including events after training.
            scorer = lambda cand: self.model.score_history([session_rows], cand)[0]  # noqa: E731
            best = lambda n: self.model.top_items(history=session_rows, n=n)  # noqa: E731
        elif known:
            row = self._user_rows[user_id]
            scorer = lambda rows: self.model.score([row], rows)[0]  # noqa: E731
            best = lambda n: self.model.top_items(user=row, n=n)  # noqa: E731
        else:
            return _to_matches(engine, _top(content, k), "content")
        pool = dict(content)
        for item_id in self._model_top(scorer, best, engine, id_filter, config.model_candidates):
            pool.setdefault(item_id, (-np.inf, None))
        in_model = [i for i in pool if i in self._item_rows]
        scores = scorer(np.array([self._item_rows[i] for i in in_model], dtype=np.int64)) if in_model else []
        ranked = sorted(zip(in_model, scores), key=lambda t: -t[1])[:k]
        # Items added after fit() have no row in the model: they follow, by content score.
        newer = sorted((i for i in pool if i not in self._item_rows), key=lambda i: -pool[i][0])
        chosen = [(i, float(s), pool[i][1]) for i, s in ranked] + [(i, pool[i][0], pool[i][1]) for i in newer]
        chosen = chosen[:k]
        explain = getattr(self.model, "explain", None)
        if explain is not None and session_rows:
            # Attention says which past items the model looked at; weigh each one's
            # content similarity to a candidate by it (SASRec).
            weights = np.asarray(explain(session_rows), dtype=np.float32)
            because = _nearest_history(engine, [i for i, _, _ in chosen], session_ids, weights)
            out = [(i, s, because.get(i, b)) for i, s, b in chosen]
        else:
            because = _nearest_history(engine, [i for i, _, b in chosen if b is None], indexed[-config.recent_items :])
            out = [(i, s, b if b is not None else because.get(i)) for i, s, b in chosen]
        return _to_matches(engine, out, self.model.name)

    def _model_top(self, scorer: Any, best: Any, engine: Engine, id_filter: Any, n: int) -> list[str]:
        """The model's own `n` best items that pass the filter and are in the index.

        `best(m)` is the model's `top_items` (cheap for models with a shortlist); it is
        asked for enough items to survive the filter. A filter that allows under a
        quarter of the items, or that left fewer than `n`, has its items scored directly.
        """
        if n <= 0:
            return []
        allowed = lambda i: _allowed(i, id_filter) and i in engine.index  # noqa: E731
        n_items = len(self.item_ids)
        share = 1.0 if id_filter.include is None else len(id_filter.include) / max(n_items, 1)
        if share >= 0.25:
            fetch = min(n_items, int(np.ceil((n + len(id_filter.exclude)) / share)))
            out = [self.item_ids[r] for r in best(fetch) if allowed(self.item_ids[r])][:n]
            if len(out) == n or fetch == n_items:
                return out
        pool = self.item_ids if id_filter.include is None else sorted(id_filter.include)  # sorted: repeatable ties
        ids = [i for i in pool if i in self._item_rows and allowed(i)]
        if not ids:
            return []
        scores = scorer(np.array([self._item_rows[i] for i in ids], dtype=np.int64))
        return [ids[j] for j in top_k(np.asarray(scores, dtype=np.float32)[None, :], n)[0][0]]

    def _popular_items(self, engine: Engine, k: int, id_filter: Any) -> list[Match]:
        picked = [i for i in self._popular if _allowed(i, id_filter) and i in engine.index][:k]
        n = max(len(self._popular), 1)
        rank = {i: r for r, i in enumerate(self._popular)}
        return _to_matches(engine, [(i, 1.0 - rank[i] / n, None) for i in picked], "popularity")

    # ----- persistence --------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write the model, vocabularies and histories to `folder` atomically."""
        with atomic_dir(folder) as tmp:
            self.model.save(tmp / "model")
            np.save(tmp / "users.npy", np.array(self.user_ids, dtype=str))
            np.save(tmp / "items.npy", np.array(self.item_ids, dtype=str))
            self.history.to_parquet(tmp / "history.parquet")
            write_manifest(tmp, "personaliser", model=self.model.name, parts=["model", "users.npy", "items.npy", "history.parquet"])

    @classmethod
    def load(cls, folder: str | Path) -> Personaliser:
        """Inverse of `save`."""
        folder = Path(folder)
        read_manifest(folder, "personaliser")
        model = Recommender.load(folder / "model")
        users = np.load(folder / "users.npy", allow_pickle=False).tolist()
        items = np.load(folder / "items.npy", allow_pickle=False).tolist()
        return cls(model, users, items, pd.read_parquet(folder / "history.parquet"))


def content_candidates(
    engine: Engine, history: Sequence[str], config: RecommendConfig, id_filter: Any
) -> dict[str, tuple[float, str | None]]:
    """Neighbours of the newest history items: item -> (recency-weighted similarity, history item)."""
    recent = list(dict.fromkeys(reversed(history)))[: config.recent_items]  # newest first, unique
    if not recent:
        return {}
    per_item = max(10, config.n_candidates // len(recent))
    scores, ids = engine.index.search(
        engine.index.vectors(recent), per_item, id_filter, rerank_factor=config.candidate_rerank_factor
    )
    out: dict[str, tuple[float, str | None]] = {}
    for j, (srow, irow) in enumerate(zip(scores, ids)):
        weight = config.recency_decay**j
        for s, i in zip(srow, irow):
            value = float(s) * weight
            if i not in out or value > out[i][0]:
                out[str(i)] = (value, recent[j])
    return out


def _nearest_history(
    engine: Engine, items: list[str], recent: list[str], weights: np.ndarray | None = None
) -> dict[str, str]:
    """For each item, the history item with the most similar content (times its weight, if given)."""
    keep = [j for j, i in enumerate(recent) if i in engine.index]
    items = [i for i in items if i in engine.index]
    if not items or not keep:
        return {}
    recent = [recent[j] for j in keep]
    sims = engine.index.vectors(items) @ engine.index.vectors(recent).T
    if weights is not None:
        sims = (sims + 1.0) * weights[keep][None, :]  # shift cosines to >= 0 so weights rank them
    return {i: recent[int(j)] for i, j in zip(items, sims.argmax(axis=1))}


def _check_history(engine: Engine, history: Sequence[str] | None) -> list[str]:
    if history is None:
        return []
    if isinstance(history, str):
        raise InvalidArgumentError(f"history must be a list of item ids, got the string {history!r}")
    for item_id in history:
        if item_id not in engine.catalog:
            raise UnknownItemError(f"history item {item_id!r} is not in the catalog ({len(engine.catalog):,} items)")
    return list(history)


def _allowed(item_id: str, id_filter: Any) -> bool:
    if item_id in id_filter.exclude:
        return False
    return id_filter.include is None or item_id in id_filter.include


def _top(pool: dict[str, tuple[float, str | None]], k: int) -> list[tuple[str, float, str | None]]:
    best = sorted(pool.items(), key=lambda t: -t[1][0])[:k]
    return [(i, s, b) for i, (s, b) in best]


def _to_matches(engine: Engine, rows: list[tuple[str, float, str | None]], source: str) -> list[Match]:
    catalog = engine.catalog
    return [Match(i, float(s), catalog.fields(catalog.row(i)), source, b) for i, s, b in rows]


def require(personaliser: Personaliser | None) -> Personaliser:
    """The engine's personaliser, or a NotFittedError saying what to do."""
    if personaliser is None:
        raise NotFittedError("no personalisation model: call engine.fit(interactions) first")
    return personaliser
