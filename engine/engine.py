"""The facade a shop's code imports: build, query, update, save and load."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from core.checks import check_k
from core.errors import EngineError, InvalidArgumentError, UnknownItemError
from encoders.imageio import ImageLike, load_image
from encoders.item import ItemEncoder
from index import IdFilter, VectorIndex

from .catalog import Catalog, as_catalog
from .changes import merged_rows
from .config import EngineConfig
from .events import EventLog, as_events, check_items
from .filters import ItemFilter, as_filter
from .interactions import Interactions
from .personalise import Personaliser
from .pipeline import EncodedItems, encode_items
from .results import Match, Skipped, Upserted
from .selection import fit_model
from .state import EngineState
from .storage import load_engine, save_engine
from .tables import clean_id
from .trained import TrainedModel

log = logging.getLogger(__name__)


class Engine:
    """Content-based retrieval over a catalog, with personalisation on top.

    Safe to share between threads: every query reads one immutable `EngineState`
    (`engine.state`), taken once per call; `add`, `upsert`, `remove`, `log_events`
    and `fit` build the next state and publish it with one reference swap (writers
    take turns on a lock), so a reader never sees half a change and never waits for a writer.

    Item ids are looked up as the catalog reads them: `similar(42)` is `similar("42")`.

    Example:
        >>> from engine import Catalog, Engine
        >>> engine = Engine.build(Catalog.from_file("sample_catalog/items.csv"))  # doctest: +SKIP
        >>> [m.item_id for m in engine.similar("food-red-apple", k=3)]             # doctest: +SKIP
    """

    def __init__(self, config: EngineConfig, state: EngineState, encoders: ItemEncoder | None = None) -> None:
        self.config = config
        self._state = state
        self._encoders = encoders
        self._write_lock = threading.RLock()  # writers take turns (update calls upsert); readers never take it
        self._encoders_lock = threading.Lock()
        self.last_build: EncodedItems | None = None

    # ----- the current state --------------------------------------------------
    @property
    def state(self) -> EngineState:
        """The snapshot queries read now; later writes publish a new one and never change it."""
        return self._state

    @property
    def catalog(self) -> Catalog:
        """The catalog of the current state."""
        return self._state.catalog

    @property
    def index(self) -> VectorIndex:
        """The vector index of the current state (never changed once published: see `VectorIndex.fork`)."""
        return self._state.index

    @property
    def skipped(self) -> list[Skipped]:
        """Catalog items without a vector, and why."""
        return list(self._state.skipped)

    @property
    def events(self) -> EventLog:
        """The interactions recorded by `log_events` (saved with the model; `events.to_interactions()` trains on them)."""
        return self._state.events

    @property
    def trained(self) -> TrainedModel | None:
        """The personalisation model of the current state, once `fit` ran."""
        return self._state.trained

    @trained.setter
    def trained(self, trained: TrainedModel | None) -> None:
        with self._write_lock:
            self._state = replace(self._state, trained=trained)

    # ----- building ---------------------------------------------------------
    @classmethod
    def build(
        cls,
        catalog: Catalog,
        config: EngineConfig | None = None,
        *,
        previous: Engine | None = None,
        on_error: str = "report",
        show_progress: bool = True,
    ) -> Engine:
        """Encode every item and index the vectors.

        Args:
            catalog: the items (see `Catalog.from_file`).
            config: encoders, fusion weights, index; defaults suit a small shop on a CPU.
            previous: an engine built earlier with the same encoders; items whose
                content is unchanged reuse its vectors instead of being encoded again,
                and the events it recorded (`log_events`) are kept.
            on_error: "report" skips items that cannot be encoded and lists them in
                `engine.skipped`; "raise" stops at the first with its reason.
            show_progress: draw a progress bar.

        Example:
            >>> engine = Engine.build(Catalog.from_file("sample_catalog/items.csv"))  # doctest: +SKIP
            >>> engine.skipped   # items that could not be encoded, with reasons   # doctest: +SKIP
            []
        """
        config = config or EngineConfig()
        encoders = ItemEncoder.from_config(config.encoders, config.fusion)
        cache = previous.reusable_vectors(config) if previous is not None else None
        encoded = encode_items(
            catalog,
            encoders,
            batch_size=config.encoders.batch_size,
            num_workers=config.encoders.num_workers,
            cache=cache,
            on_error=on_error,
            show_progress=show_progress,
            limits=config.images,
        )
        encoded.check_any(catalog.source)
        state = EngineState.built(catalog, encoded, encoders.fusion, config,  # aligned per config.alignment
                                  previous.events if previous is not None else EventLog())
        engine = cls(config, state, encoders)
        engine.last_build = encoded
        return engine

    def reusable_vectors(self, config: EngineConfig) -> dict[str, np.ndarray]:
        """Content hash -> stored vector, when `config` encodes the same way as this engine."""
        state = self._state
        # Threads and decode workers change how fast vectors are made, not what they are: a new budget reuses them.
        same = (replace(self.config.encoders, threads=None, num_workers=None), self.config.fusion) == (
            replace(config.encoders, threads=None, num_workers=None), config.fusion)
        return state.vector_cache(state.index.ids) if same else {}

    @property
    def encoders(self) -> ItemEncoder:
        """The encoders, loaded on first use (a loaded engine needs them only for queries and `add`)."""
        if self._encoders is None:
            with self._encoders_lock:  # two first queries at once load them once
                if self._encoders is None:
                    self._encoders = ItemEncoder.from_config(self.config.encoders, self.config.fusion)
        return self._encoders

    # ----- queries ----------------------------------------------------------
    def similar(self, item_id: str, k: int = 10, filter: ItemFilter | None = None) -> list[Match]:
        """The k items nearest to `item_id`, best first, the item itself excluded.

        Example:
            >>> engine.similar("food-red-apple", k=5, filter=ItemFilter(categories=["food"]))  # doctest: +SKIP
        """
        check_k(k)
        state, item_id = self._state, clean_id(item_id)
        vector = _item_vector(state, item_id)
        id_filter = as_filter(filter).to_id_filter(state.catalog, also_exclude=[item_id])
        return _search(state, vector[None, :], k, id_filter, source="similar")[0]

    def similar_many(self, item_ids: Sequence[str], k: int = 10, filter: ItemFilter | None = None) -> list[list[Match]]:
        """`similar` for several items in one index call (each list excludes only its own item); a string is an error."""
        check_k(k)
        if isinstance(item_ids, (str, bytes)) or not isinstance(item_ids, Iterable):
            raise InvalidArgumentError(
                f"similar_many takes a list of item ids, got {type(item_ids).__name__} {item_ids!r}"
                + (f"; for one item call similar({item_ids!r})" if isinstance(item_ids, str) else "")
            )
        item_ids = [clean_id(i) for i in item_ids]
        state = self._state
        vectors = np.stack([_item_vector(state, i) for i in item_ids])
        id_filter = as_filter(filter).to_id_filter(state.catalog)
        rows = _search(state, vectors, k + 1, id_filter, source="similar")
        return [[m for m in row if m.item_id != item][:k] for item, row in zip(item_ids, rows)]

    def search(
        self,
        text: str | None = None,
        image: ImageLike | None = None,
        k: int = 10,
        filter: ItemFilter | None = None,
    ) -> list[Match]:
        """Items matching a text, a photo (a path, PIL image, encoded bytes or NumPy array), or both.

        `Match.score` is in [-1, 1]: unaligned, the cosine in the query's own modalities
        (text query: text cosine; photo: image cosine, an exact match 1.0; both: their
        weighted sum, see `Fusion.query_scale`); aligned (the default), a one-modality query
        is completed with the predicted other modality and scores on that completed vector.

        Example:
            >>> engine.search(text="red running shoes", k=5)   # doctest: +SKIP
            >>> engine.search(image="photo.jpg", k=5)           # doctest: +SKIP
        """
        check_k(k)
        query = self.query_vector(text=text, image=image)
        state = self._state
        id_filter = as_filter(filter).to_id_filter(state.catalog)
        hits = _search(state, query[None, :], k, id_filter, source="search")[0]
        if not hits:
            return hits
        scale = self.encoders.fusion.query_scale(query, state.index.vectors([m.item_id for m in hits]))
        # One factor per set of modalities: the index's order stands among items with the same set
        # (a stable sort); an item with another set moves to its own cosine's place.
        rescored = [replace(m, score=float(np.clip(m.score * f, -1.0, 1.0))) for m, f in zip(hits, scale)]
        return sorted(rescored, key=lambda m: -m.score)

    def query_vector(self, text: str | None = None, image: ImageLike | None = None) -> np.ndarray:
        """The vector a text and/or image query is searched with, in the items' space."""
        if text is None and image is None:
            raise InvalidArgumentError("search needs text=..., image=... or both; got neither")
        enc = self.encoders
        text_vec = image_vec = None
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise InvalidArgumentError(f"text query must be a non-empty string, got {text!r}")
            if enc.text is None:
                raise InvalidArgumentError("this engine was built without a text encoder; search by image instead")
            text_vec = enc.text.encode([text])[0]
        if image is not None:
            if enc.image is None:
                raise InvalidArgumentError("this engine was built without an image encoder; search by text instead")
            if not isinstance(image, Image.Image):
                image = load_image(image, limits=self.config.images)
            image_vec = enc.image.encode([image])[0]
        return self._state.query_vector(enc.fusion, image_vec, text_vec)  # the missing modality predicted once aligned

    def item_vector(self, item_id: str) -> np.ndarray:
        """The stored vector of an indexed item."""
        return _item_vector(self._state, item_id)

    # ----- updates ----------------------------------------------------------
    def add(self, items: Catalog | pd.DataFrame | Iterable[Mapping[str, Any]], show_progress: bool = False) -> list[Skipped]:
        """Add new products without rebuilding; returns the ones that could not be encoded.

        Relative image paths of a DataFrame or dicts resolve against the catalog's folder, and
        their columns are read with the catalog's `CatalogColumns` (our own names work too).

        Example:
            >>> engine.add([{"id": "sku-9", "title": "Blue kettle", "image": "images/kettle.png"}])  # doctest: +SKIP
            []
        """
        with self._write_lock:
            state = self._state
            new = self._new_items(state, items)
            merged = state.catalog.concat(new)  # raises on ids already present
            encoded = self._encode(new, {}, show_progress)
            self._state = state.with_added(merged, encoded)
        return list(encoded.skipped)

    def upsert(self, items: Catalog | pd.DataFrame | Iterable[Mapping[str, Any]], show_progress: bool = False) -> Upserted:
        """Add new items and replace existing ones (same id), published as one change.

        An existing item's row is replaced (a field the new row lacks becomes empty); it is
        encoded again only when its text or image bytes changed (a new price costs no
        encoding). Items are read like `add`'s; queries see all of the upsert or none of it.
        An item that could not be encoded is in `Upserted.skipped` and has no vector after.

        Example:
            >>> engine.upsert([{"id": "sku-1", "title": "Red shoe", "price": 39.0}]).updated  # doctest: +SKIP
            ('sku-1',)
        """
        with self._write_lock:
            state = self._state
            new = self._new_items(state, items)
            encoded = self._encode(new, state.vector_cache(new.ids), show_progress)  # unchanged content: vector reused
            self._state, done = state.with_upserted(new, encoded)
        return done

    def update(self, changes: Iterable[Mapping[str, Any]], show_progress: bool = False) -> Upserted:
        """Change some fields of existing items (`upsert` of each row with the changes merged in).

        Example:
            >>> engine.update([{"id": "sku-1", "price": 35.0}]).reencoded   # a new price: no encoding  # doctest: +SKIP
            ()
        """
        with self._write_lock:  # held across read-merge-publish: two updates never lose each other's fields
            return self.upsert(merged_rows(self._state.catalog, changes), show_progress)

    def _new_items(self, state: EngineState, items: Any) -> Catalog:
        """Items to add or upsert, read like the catalog: its folder, columns and image rule."""
        catalog = state.catalog
        return as_catalog(items, base_dir=catalog.base_dir, allow_outside=catalog.allow_outside, columns=catalog.columns)

    def _encode(self, items: Catalog, cache: dict[str, np.ndarray], show_progress: bool) -> EncodedItems:
        """`encode_items` with this engine's encoders, batch size, workers and image limits."""
        enc = self.config.encoders
        return encode_items(items, self.encoders, batch_size=enc.batch_size, num_workers=enc.num_workers, cache=cache,
                            show_progress=show_progress, limits=self.config.images)

    def remove(self, item_ids: Sequence[str]) -> None:
        """Remove items (sold out, discontinued); unknown ids are an error naming them.

        Once this returns, no query returns them (queries already running finish on the
        state they started with).
        """
        if isinstance(item_ids, (str, int)):
            item_ids = [item_ids]
        with self._write_lock:
            self._state = self._state.without(item_ids)

    # ----- personalisation --------------------------------------------------
    def fit(
        self,
        interactions: Any,
        model: str | None = None,
        *,
        on_unknown: str = "raise",
        show_progress: bool = True,
        budget_s: float | None = None,
        **overrides: Any,
    ) -> Engine:
        """Train the personalisation model on an interaction log; `save()` keeps it.

        Args:
            interactions: an `Interactions` log whose item ids are catalog ids.
            model: registry name (`recommenders.list_models()`), or "auto": candidates tried on the log's
                own validation, the best retrained on every event (`engine.selection`); default
                `config.recommend.model`, "auto" unless configured.
            on_unknown: "raise" on log items missing from the index, or "drop" them.
            show_progress: draw progress bars.
            budget_s: seconds `auto` may spend, the winner's retrain included (default 45).
            **overrides: fields of the model's config, e.g. `epochs=5`.

        Example:
            >>> engine.fit(Interactions.from_file("sample_catalog/interactions.csv"))  # doctest: +SKIP
        """
        name = model or self.config.recommend.model
        # Trained outside the write lock (minutes, while add/remove go on); items added
        # meanwhile are unknown to the model and served by content, as after any fit.
        self.trained = fit_model(self._state.index, interactions, name, budget_s, on_unknown, show_progress, **overrides)
        return self

    def log_events(self, events: Interactions | pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Record interactions (user_id, item_id, optional timestamp and weight); returns how many were recorded.

        Each user's events join their history for `recommend` at once (no retraining);
        `save` keeps them. A missing timestamp is now (unix seconds), a missing weight 1.
        Items not in the catalog raise UnknownItemError naming them, and nothing is recorded.

        Example:
            >>> engine.log_events([{"user_id": "u1", "item_id": "sku-1"}])  # doctest: +SKIP
            1
        """
        new = as_events(events)
        if new is None:
            return 0
        with self._write_lock:  # checked against the catalog of the state it joins
            state = self._state
            check_items(new, state.catalog, len(state.catalog))
            self._state = state.with_events(state.events.appended(new))
        return len(new)

    @property
    def personaliser(self) -> Personaliser:
        """What answers `recommend`: the index, catalog, trained model and recorded events of the current state."""
        state = self._state
        return Personaliser(state.index, state.catalog, self.config.recommend, state.trained, events=state.events)

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
        """Personalised items for a user, or for an anonymous visitor's `history` (oldest first).

        A user the model never saw falls back to content similarity of `history`, and a
        visitor with no history to popularity, unless `strict=True` (then an unknown user
        raises). `Match.source` says which path served the item, `Match.because` which
        history item led to it.

        Example:
            >>> engine.recommend("user-42", k=10)                        # doctest: +SKIP
            >>> engine.recommend(history=["sku-1", "sku-7"], k=10)        # doctest: +SKIP
        """
        return self.personaliser.recommend(
            user_id, k, history=history, filter=filter, exclude_seen=exclude_seen, strict=strict
        )

    # ----- persistence ------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the engine to a folder, atomically: a crash mid-save keeps the previous model.

        Example:
            >>> engine.save("models/sample"); engine = Engine.load("models/sample")  # doctest: +SKIP
        """
        save_engine(path, self.config, self._state)

    @classmethod
    def load(cls, path: str | Path) -> Engine:
        """Load a folder written by `save`; checks the format version."""
        config, state = load_engine(path)
        return cls(config, state)

    def __len__(self) -> int:
        return len(self._state.index)

    def __repr__(self) -> str:
        index = self._state.index
        return f"Engine({len(index):,} items indexed, index={type(index).__name__}, dim={index.dim})"


def _item_vector(state: EngineState, item_id: str) -> np.ndarray:
    """The stored vector of an item of `state` (its id cleaned); UnknownItemError says why it has none."""
    item_id = clean_id(item_id)
    if item_id not in state.index:
        if item_id in state.catalog:
            why = state.skip_reason(item_id) or "not indexed"
            raise UnknownItemError(f"item {item_id!r} is in the catalog but has no vector: {why}")
        raise UnknownItemError(f"item {item_id!r} is not in the catalog ({len(state.index):,} items indexed)")
    return state.index.vectors([item_id])[0]


def _search(state: EngineState, queries: np.ndarray, k: int, id_filter: IdFilter, source: str) -> list[list[Match]]:
    """Search `state`'s index and dress the hits with `state`'s catalog fields."""
    scores, ids = state.index.search(queries.astype(np.float32), k, id_filter)
    catalog = state.catalog
    return [
        # Clipped: float rounding makes an identical item score 1.0000001.
        [Match(str(i), min(max(float(s), -1.0), 1.0), catalog.fields(catalog.row(str(i))), source) for s, i in zip(srow, irow)]
        for srow, irow in zip(scores, ids)
    ]


__all__ = ["Engine", "EngineError", "ItemFilter", "Match", "EncodedItems"]
