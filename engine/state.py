"""What a query reads, as one immutable snapshot.

An `EngineState` bundles the catalog, the vector index, the content hashes, the
skipped items, the trained model and the events recorded since. The engine holds
one; a query takes it once and answers from it alone. `add`, `upsert`, `remove`,
`log_events` and `fit` build the next state (the index through `VectorIndex.fork`,
so the published one is never changed) and publish it with one reference swap, so
a reader never sees half a change.

The alignment of image and text (`FittedContent`, `engine.fitted`) is part of the state:
the index holds the items' vectors with predicted slots filled by it, so both are
swapped together. `vector_cache` hands out the vectors as the encoders made them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from encoders.fusion import Fusion
from index import VectorIndex, create_index

from .catalog import Catalog
from .config import EngineConfig
from .events import EventLog
from .fitted import FittedContent
from .pipeline import EncodedItems
from .results import Skipped, Upserted
from .trained import TrainedModel


@dataclass(frozen=True)
class EngineState:
    """One consistent version of everything a query reads. Never changed once published.

    Attributes:
        catalog: the items and their fields.
        index: their vectors (items that could not be encoded are in the catalog only).
        hashes: item id -> content hash of what was encoded (reuses vectors on re-indexing).
        skipped: items of the catalog that could not be encoded, with the reason.
        trained: the personalisation model, once `Engine.fit` ran.
        events: interactions recorded by `Engine.log_events` (saved with the model).
        fitted: the image-text alignment fitted on the catalog and which items have a
            predicted slot; None when the engine does not align (see `engine.fitted`).

    Example:
        >>> state = engine.state                      # doctest: +SKIP
        >>> len(state.index) <= len(state.catalog)    # doctest: +SKIP
        True
    """

    catalog: Catalog
    index: VectorIndex
    hashes: Mapping[str, str] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()
    trained: TrainedModel | None = None
    events: EventLog = field(default_factory=EventLog)
    fitted: FittedContent | None = None

    @classmethod
    def built(cls, catalog: Catalog, encoded: EncodedItems, fusion: Fusion, config: EngineConfig,
              events: EventLog) -> EngineState:
        """The first state of `Engine.build`: a new index of the encoded items, aligned when `config.alignment` says so."""
        index = create_index(fusion.dim, config.index)
        fitted, vectors = FittedContent.start(config.alignment, fusion), encoded.vectors
        if fitted is not None:
            fitted, vectors = fitted.absorb(index, encoded.ids, vectors)
        index.add(encoded.ids, vectors)
        return cls(catalog, index, dict(zip(encoded.ids, encoded.hashes)), tuple(encoded.skipped), events=events,
                   fitted=fitted)

    def query_vector(self, fusion: Fusion, image: np.ndarray | None, text: np.ndarray | None) -> np.ndarray:
        """A query from an image and/or text vector (`Fusion.query`), its missing modality predicted once aligned."""
        if self.fitted is not None:
            return self.fitted.query(image, text)
        return fusion.query(image=image, text=text)[0]

    def __post_init__(self) -> None:
        # A dict is taken over, not copied (writers build a fresh one per state): at 1M items a copy costs ~50 ms.
        hashes = self.hashes if type(self.hashes) is dict else dict(self.hashes)
        object.__setattr__(self, "hashes", MappingProxyType(hashes))
        object.__setattr__(self, "skipped", tuple(self.skipped))

    def with_added(self, catalog: Catalog, encoded: EncodedItems) -> EngineState:
        """The next state: `catalog` (this one's items plus the new ones) and the new vectors in a fork of the index.

        This state is left as it is; `Engine.add` encodes the new items and publishes the result.
        """
        index = self.index.fork()
        fitted = self.fitted
        if encoded.ids:
            vectors = encoded.vectors
            if fitted is not None:
                fitted, vectors = fitted.absorb(index, encoded.ids, vectors)
            index.add(encoded.ids, vectors)
        hashes = self.hashes.copy()  # the mapping's own dict, copied in C
        hashes.update(zip(encoded.ids, encoded.hashes))
        return replace(self, catalog=catalog, index=index, hashes=hashes, skipped=self.skipped + tuple(encoded.skipped),
                       fitted=fitted)

    def vector_cache(self, item_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """Content hash -> vector as the encoders made it (no predicted slot), for these items where they have one.

        `encode_items` reuses them for unchanged content.
        """
        ids = [i for i in item_ids if i in self.index and i in self.hashes]
        if not ids:
            return {}
        vectors = self.index.vectors(ids)
        if self.fitted is not None:
            vectors = self.fitted.raw(ids, vectors)
        return dict(zip((self.hashes[i] for i in ids), vectors))

    def with_upserted(self, new: Catalog, encoded: EncodedItems) -> tuple[EngineState, Upserted]:
        """The next state with `new`'s items replacing those of the same ids or added, and what changed.

        `encoded` holds the vectors of every item of `new` that has one (an unchanged item
        reuses its old vector, see `vector_cache`) and the ones that could not be encoded.
        Vectors that differ from the indexed ones replace them in a fork of the index; an
        item that could not be encoded loses its vector. This state is left as it is;
        `Engine.upsert` encodes and publishes the result.
        """
        ids, before = new.ids, self.catalog
        catalog = before.upserted(new)
        hashes_now = dict(zip(encoded.ids, encoded.hashes))
        stale = [i for i in ids if i in self.index and hashes_now.get(i) != self.hashes.get(i)]
        fresh = [r for r, i in enumerate(encoded.ids) if i not in self.index or i in stale]
        index, fitted = self.index, self.fitted
        if stale or fresh:  # a fields-only change keeps the published index as it is
            index = index.fork()
            if stale:
                index.remove(stale)
                fitted = fitted.forget(stale) if fitted is not None else None
            if fresh:
                fresh_ids, vectors = [encoded.ids[r] for r in fresh], encoded.vectors[fresh]
                if fitted is not None:
                    fitted, vectors = fitted.absorb(index, fresh_ids, vectors)
                index.add(fresh_ids, vectors)
        hashes = self.hashes.copy()
        for item_id in ids:
            hashes.pop(item_id, None)
        hashes.update(hashes_now)
        done = set(ids)
        skipped = tuple(s for s in self.skipped if s.item_id not in done) + tuple(encoded.skipped)
        old = [i for i in ids if i in before]
        reencoded = tuple(i for i in old if i in hashes_now and hashes_now[i] != self.hashes.get(i))
        updated = tuple(i for i in old if hashes_now.get(i) != self.hashes.get(i) or (  # `new` is small: read its rows
            _filled(new.fields(new.row(i))) != _filled(before.fields(before.row(i)))))
        state = replace(self, catalog=catalog, index=index, hashes=hashes, skipped=skipped, fitted=fitted)
        return state, Upserted(tuple(i for i in ids if i not in before), updated, reencoded, tuple(encoded.skipped))

    def without(self, item_ids: Sequence[str]) -> EngineState:
        """The next state without these items (ids cleaned like `Catalog.row`'s); unknown ids are an error naming them.

        This state is left as it is.
        """
        catalog = self.catalog.without(item_ids)
        item_ids = [self.catalog.ids[self.catalog.row(i)] for i in item_ids]
        gone = set(item_ids)
        index = self.index.fork()
        indexed = [i for i in dict.fromkeys(item_ids) if i in index]
        fitted = self.fitted
        if indexed:
            index.remove(indexed)
            fitted = fitted.forget(indexed) if fitted is not None else None
        hashes = self.hashes.copy()
        for item_id in gone:
            hashes.pop(item_id, None)
        skipped = tuple(s for s in self.skipped if s.item_id not in gone)
        return replace(self, catalog=catalog, index=index, hashes=hashes, skipped=skipped, fitted=fitted)

    def with_events(self, events: EventLog) -> EngineState:
        """The next state with `events` as its event log (see `Engine.log_events`)."""
        return replace(self, events=events)

    def skip_reason(self, item_id: str) -> str | None:
        """Why an item of the catalog has no vector, or None when it has one or is unknown."""
        return next((s.reason for s in self.skipped if s.item_id == item_id), None)


def _filled(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields without the empty ones: a column an upsert adds to the catalog changes no row that lacks it."""
    return {k: v for k, v in fields.items() if v is not None and v != ""}
