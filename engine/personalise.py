"""Personalised recommendation: candidates from the index, ordered by a trained model.

A `Personaliser` is built from what it reads: the vector index, the catalog (for
item fields and membership), the `RecommendConfig`, once `Engine.fit` ran a
`TrainedModel`, and the events recorded since (`EventLog`). A user's history is
their training history, then their recorded events, then any `history=` passed in.
For a request it gathers candidates from two places, the FAISS neighbours of the
visitor's most recent items (each weighted by recency) and the model's own top
items, and the model orders them. When the model's own candidates alone decide its
top k (its k-th best scores strictly above the lowest of them), no neighbour could
enter, so the neighbour search is skipped. Which path serves a request:

* a user the model was trained on -> the model ranks (`Match.source` = model name);
* a history (anonymous, or a user known only by recorded events), with a model that
  scores sessions natively (GRU4Rec, SASRec, the autoencoders, the RBM) -> the
  model ranks the history;
* any other history, or no trained model -> content similarity to the history
  (`source="content"`);
* no history at all -> popularity in the training log (`source="popularity"`).

What `Match.score` means, by source (one scale per source):

* a model name: the share, in [0, 1], of a fixed reference sample of the model's
  items (`TrainedModel.reference_rows`, up to 1,000) that the model scores below
  this item for this user or history, ties counting half: 0.97 means the model
  prefers it to 97% of the catalogue. The raw model score decides the order; the
  share never reverses it.
* "content": the cosine similarity, in [-1, 1], of the item to the history item
  that led to it (`because`), times `recency_decay ** j` for the j-th newest
  distinct history item (1.0 for the newest).
* "popularity": `1 - rank / n`, in (0, 1], where rank 0 is the item with the most
  events in the training log and n the number of items with any.

Items added to the catalog after the fit have no row in the model: they follow
the model's items with their content score (`source="content"`).

Every candidate carries `because`: the history item whose content is nearest to it.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence

import numpy as np
import torch

from core.checks import check_k
from core.errors import InvalidArgumentError, NotFittedError, UnknownItemError, UnknownUserError
from core.ranking import top_k
from index import IdFilter, VectorIndex
from index.rerank import one_thread

from .catalog import Catalog
from .config import RecommendConfig
from .events import EventLog
from .filters import ItemFilter, as_filter
from .results import Match
from .tables import clean_id
from .trained import TrainedModel, share_below

# A candidate: (item id, score, the history item that led to it or None).
Candidate = tuple[str, float, "str | None"]


class Personaliser:
    """Answers `recommend` requests from an index, a catalog, a config and (optionally) a trained model and events.

    Cheap to build: it only keeps references, so the engine makes one for the state it serves.

    Example:
        >>> p = Personaliser(engine.index, engine.catalog, RecommendConfig(), trained, engine.events)  # doctest: +SKIP
        >>> p.recommend("user-42", k=5)                                                               # doctest: +SKIP
    """

    def __init__(
        self,
        index: VectorIndex,
        catalog: Catalog,
        config: RecommendConfig,
        trained: TrainedModel | None = None,
        events: EventLog | None = None,
    ) -> None:
        self.index = index
        self.catalog = catalog
        self.config = config
        self.trained = trained
        self.events = events if events is not None else EventLog()

    def recommend(
        self,
        user_id: str | None = None,
        k: int = 10,
        *,
        history: Sequence[str] | None = None,
        filter: ItemFilter | None = None,
        exclude_seen: bool = True,
        strict: bool = False,
    ) -> list[Match]:
        """See `Engine.recommend`; user ids and history ids are looked up by `clean_id` (42 finds "42")."""
        check_k(k)
        user = clean_id(user_id, "user id") if user_id is not None else None
        given = self.check_history(history)
        recorded = self.recorded(user)
        if self.trained is None:
            if (user is not None and not recorded) or (user is None and history is None):
                who = "" if user is None else f" and no recorded events for user {user!r}"
                raise NotFittedError(f"no personalisation model{who}: call engine.fit(interactions) first")
            hist = [i for i in recorded + given if i in self.index]
            id_filter = as_filter(filter).to_id_filter(self.catalog, also_exclude=set(hist) if exclude_seen else ())
            return self._matches(_best(self.content_candidates(hist, id_filter, k), k), "content")
        _serve_on_one_torch_thread()
        return self._recommend(self.trained, user, recorded + given, k, filter, exclude_seen, strict)

    def recorded(self, user: str | None) -> list[str]:
        """The user's recorded events (oldest first) whose items are still in the catalog; [] for none."""
        if user is None:
            return []
        return [i for i in self.events.history_of(user) if i in self.catalog]

    def _recommend(
        self,
        trained: TrainedModel,
        user: str | None,
        later: list[str],
        k: int,
        filter: ItemFilter | None,
        exclude_seen: bool,
        strict: bool,
    ) -> list[Match]:
        model, config = trained.model, self.config
        row = trained.user_row(user)
        if user is not None and row is None and strict and user not in self.events:
            raise UnknownUserError(
                f"user {user!r} is not in the training log ({len(trained.user_ids):,} users) "
                f"nor in the recorded events ({len(self.events):,} events)"
            )
        hist = (trained.history_of(user) if row is not None else []) + later
        id_filter = as_filter(filter).to_id_filter(self.catalog, also_exclude=set(hist) if exclude_seen else ())
        indexed = [i for i in hist if i in self.index]
        if not indexed and row is None:
            return self.popular(k, id_filter)
        session_ids = [i for i in hist if trained.item_row(i) is not None]
        session_rows = [trained.item_row(i) for i in session_ids]
        scorer: Callable[[np.ndarray], np.ndarray]
        if model.scores_sessions and session_rows:
            # Session models read the whole, newest history, including events after training.
            scorer = lambda cand: model.score_history([session_rows], cand)[0]  # noqa: E731
            best = lambda n: model.top_items(history=session_rows, n=n)  # noqa: E731
        elif row is not None:
            scorer = lambda rows: model.score([row], rows)[0]  # noqa: E731
            best = lambda n: model.top_items(user=row, n=n)  # noqa: E731
        else:
            return self._matches(_best(self.content_candidates(indexed, id_filter, k), k), "content")
        own = self.model_candidates(scorer, best, id_filter, config.model_candidates)
        ranked = self._decided_by_model(trained, scorer, own, k, config.model_candidates)
        content = {} if ranked is not None else self.content_candidates(indexed, id_filter)
        pool = dict(content)
        for item_id in own:
            pool.setdefault(item_id, (-np.inf, None))
        pool_rows = {i: trained.item_row(i) for i in pool}
        if ranked is None:
            ranked = _ranked(trained, scorer, [i for i, r in pool_rows.items() if r is not None], k)[0]
        # Items added after fit() have no row in the model: they follow, by content score.
        newer = sorted((i for i, r in pool_rows.items() if r is None), key=lambda i: -pool[i][0])
        chosen = [(i, s, pool[i][1]) for i, s in ranked] + [(i, pool[i][0], pool[i][1]) for i in newer]
        chosen = chosen[:k]
        n_model = len(ranked)
        if model.explains and session_rows:
            # Attention says which past items the model looked at; weigh each one's
            # content similarity to a candidate by it (SASRec).
            weights = np.asarray(model.explain(session_rows), dtype=np.float32)
            because = self.nearest_history([i for i, _, _ in chosen], session_ids, weights)
            out = [(i, s, because.get(i, b)) for i, s, b in chosen]
        else:
            because = self.nearest_history([i for i, _, b in chosen if b is None], indexed[-config.recent_items :])
            out = [(i, s, b if b is not None else because.get(i)) for i, s, b in chosen]
        return self._matches(out[:n_model], model.name) + self._matches(out[n_model:], "content")

    def _decided_by_model(
        self, trained: TrainedModel, scorer: Callable[[np.ndarray], np.ndarray], own: list[str], k: int, n: int
    ) -> list[tuple[str, float]] | None:
        """The model's top k with their shares when its own candidates alone decide them, else None.

        `own` holds the model's best allowed items (`model_candidates`): its n best, or every
        allowed item it has when fewer. Any other item then scores at most the lowest of
        them, so when the k-th best scores strictly above that lowest score (or `own` holds
        every allowed item), no content candidate can enter the top k, not even on a tie, and
        the ten content searches are skipped. Exact when `top_items` is; where it shortlists
        (NeuMF's proxy, the inverted file from `ann_shortlist_items`), a top item the
        shortlist missed is then not recovered through content neighbours either.
        """
        if len(own) < k:
            return None
        ranked, scores = _ranked(trained, scorer, own, k)
        if len(own) == n and -np.partition(-scores, k - 1)[k - 1] <= scores.min():
            return None  # a tie at the boundary: an item outside `own` could tie into the top k
        return ranked

    # ----- candidate sources --------------------------------------------------
    def content_candidates(
        self, history: Sequence[str], id_filter: IdFilter, k: int | None = None
    ) -> dict[str, tuple[float, str | None]]:
        """Neighbours of the newest history items: item -> (recency-weighted similarity, history item).

        With `k` (the caller keeps only the k best), the history items are searched one at a
        time, newest first, and the searches stop at the first one whose weight is below the
        k-th best value found so far: the engine's vectors are unit rows or shorter
        (`Fusion.fuse`), so a similarity is at most 1 and that item, and every older one,
        can add or raise no value into the top k. The k best are those of searching every
        item, with the same `because`. (History vectors longer than 1 turn the stop off.)
        """
        config = self.config
        recent = list(dict.fromkeys(reversed(history)))[: config.recent_items]  # newest first, unique
        if not recent:
            return {}
        per_item = max(10, config.n_candidates // len(recent))
        vectors = self.index.vectors(recent)
        bounded = k is not None and bool(np.all(np.linalg.norm(vectors, axis=1) <= 1.0 + 1e-6))
        batches = [[j] for j in range(len(recent))] if bounded else [list(range(len(recent)))]
        out: dict[str, tuple[float, str | None]] = {}
        # On one FAISS thread: spread over two OpenMP threads on a busy machine one batch of 10
        # took 1.7x as long (36.0 vs 21.7 ms p50 at 1M items, load 13), though on an idle one 0.55x
        # (3.8 vs 6.9 ms; `benchmarks/bench_engine.py --items` prints both); a server answers
        # concurrent requests on threads of their own. Same results either way.
        with one_thread():
            for rows in batches:
                if bounded and len(out) >= k and config.recency_decay ** rows[0] < _kth_best(out, k):
                    break
                scores, ids = self.index.search(
                    vectors[rows], per_item, id_filter, rerank_factor=config.candidate_rerank_factor
                )
                for j, srow, irow in zip(rows, scores, ids):
                    weight = config.recency_decay**j
                    for s, i in zip(srow, irow):
                        value = float(s) * weight
                        if i not in out or value > out[i][0]:
                            out[str(i)] = (value, recent[j])
        return out

    def model_candidates(
        self,
        scorer: Callable[[np.ndarray], np.ndarray],
        best: Callable[[int], np.ndarray],
        id_filter: IdFilter,
        n: int,
    ) -> list[str]:
        """The model's own `n` best items that pass the filter and are in the index.

        `best(m)` is the model's `top_items` (cheap for models with a shortlist); it is
        asked for enough items to survive the filter. A filter that allows under a
        quarter of the items, or that left fewer than `n`, has its items scored directly.
        """
        trained = self.trained
        if n <= 0 or trained is None:
            return []
        allowed = lambda i: id_filter.allows(i) and i in self.index  # noqa: E731
        item_ids = trained.item_ids
        n_items = len(item_ids)
        share = 1.0 if id_filter.include is None else len(id_filter.include) / max(n_items, 1)
        if share >= 0.25:
            fetch = min(n_items, int(np.ceil((n + len(id_filter.exclude)) / share)))
            out = [item_ids[r] for r in best(fetch) if allowed(item_ids[r])][:n]
            if len(out) == n or fetch == n_items:
                return out
        pool = item_ids if id_filter.include is None else sorted(id_filter.include)  # sorted: repeatable ties
        ids = [i for i in pool if trained.item_row(i) is not None and allowed(i)]
        if not ids:
            return []
        scores = scorer(np.array([trained.item_row(i) for i in ids], dtype=np.int64))
        return [ids[j] for j in top_k(np.asarray(scores, dtype=np.float32)[None, :], n)[0][0]]

    def popular(self, k: int, id_filter: IdFilter) -> list[Match]:
        """The training log's most popular allowed items (source "popularity")."""
        ranking = self.trained.popular if self.trained is not None else []
        picked = [i for i in ranking if id_filter.allows(i) and i in self.index][:k]
        n = max(len(ranking), 1)
        rank = {i: r for r, i in enumerate(ranking)}
        return self._matches([(i, 1.0 - rank[i] / n, None) for i in picked], "popularity")

    # ----- helpers ------------------------------------------------------------
    def nearest_history(
        self, items: list[str], recent: list[str], weights: np.ndarray | None = None
    ) -> dict[str, str]:
        """For each item, the history item with the most similar content (times its weight, if given)."""
        keep = [j for j, i in enumerate(recent) if i in self.index]
        items = [i for i in items if i in self.index]
        if not items or not keep:
            return {}
        recent = [recent[j] for j in keep]
        sims = self.index.vectors(items) @ self.index.vectors(recent).T
        if weights is not None:
            sims = (sims + 1.0) * weights[keep][None, :]  # shift cosines to >= 0 so weights rank them
        return {i: recent[int(j)] for i, j in zip(items, sims.argmax(axis=1))}

    def check_history(self, history: Sequence[str | int] | None) -> list[str]:
        """The history as a list of ids (`clean_id`: 7 -> "7"); a lone string or an unknown id is an error naming it."""
        if history is None:
            return []
        if isinstance(history, (str, bytes)):
            raise InvalidArgumentError(f"history must be a list of item ids, got the string {history!r}")
        out = [clean_id(i, "history item id") for i in history]
        for item_id in out:
            if item_id not in self.catalog:
                raise UnknownItemError(
                    f"history item {item_id!r} is not in the catalog ({len(self.catalog):,} items)"
                )
        return out

    def _matches(self, rows: list[Candidate], source: str) -> list[Match]:
        catalog = self.catalog
        return [Match(i, float(s), catalog.fields(catalog.row(i)), source, b) for i, s, b in rows]


_torch_threads_set = threading.Lock()
_torch_threads_done = False


def _serve_on_one_torch_thread() -> None:
    """Set torch to one intra-op thread, once per process, on the first personalised request.

    One request scores one user: torch's thread pool only adds hand-off cost there
    (measured 0.2 ms on one thread vs 30+ ms on two busy cores). torch's setting is
    process-wide, so it is set once, never per request: a per-request set-and-restore
    raced with every other thread using torch. Training later in the same process
    (`Engine.fit`) then runs on one thread too; call `torch.set_num_threads` to change it.
    """
    global _torch_threads_done
    if _torch_threads_done:
        return
    with _torch_threads_set:
        if not _torch_threads_done:
            torch.set_num_threads(1)
            _torch_threads_done = True


def _ranked(
    trained: TrainedModel, scorer: Callable[[np.ndarray], np.ndarray], ids: list[str], k: int
) -> tuple[list[tuple[str, float]], np.ndarray]:
    """The k best of `ids` (items of the model) by raw score, each with its share; and every raw score.

    One scoring call for the items and the reference sample that puts them on [0, 1].
    """
    if not ids:
        return [], np.empty(0, np.float32)
    rows = np.array([trained.item_row(i) for i in ids], dtype=np.int64)
    raw = np.asarray(scorer(np.concatenate([rows, trained.reference_rows])), dtype=np.float32)
    scores, reference = raw[: len(rows)], raw[len(rows) :]
    order = np.argsort(-scores, kind="stable")[:k]  # the raw score decides; ties keep the order of ids
    shares = share_below(scores[order], reference)
    return [(ids[j], float(share)) for j, share in zip(order, shares)], scores


def _kth_best(pool: dict[str, tuple[float, str | None]], k: int) -> float:
    """The k-th highest value of a pool of at least k candidates."""
    return heapq.nlargest(k, (value for value, _ in pool.values()))[-1]


def _best(pool: dict[str, tuple[float, str | None]], k: int) -> list[Candidate]:
    """The k highest-scored candidates of a pool, best first."""
    best = sorted(pool.items(), key=lambda t: -t[1][0])[:k]
    return [(i, s, b) for i, (s, b) in best]
