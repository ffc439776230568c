"""What a query reads, as one immutable snapshot.

An `EngineState` bundles the catalog, the vector index, the content hashes, the
skipped items and the trained model. The engine holds one; a query takes it once
and answers from it alone. `add`, `remove` and `fit` build the next state (the
index through `VectorIndex.fork`, so the published one is never changed) and
publish it with one reference swap, so a reader never sees half a change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from index import VectorIndex

from .catalog import Catalog
from .pipeline import EncodedItems
from .results import Skipped
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
        if encoded.ids:
            index.add(encoded.ids, encoded.vectors)
        hashes = self.hashes.copy()  # the mapping's own dict, copied in C
        hashes.update(zip(encoded.ids, encoded.hashes))
        return EngineState(catalog, index, hashes, self.skipped + tuple(encoded.skipped), self.trained)

    def without(self, item_ids: Sequence[str]) -> EngineState:
        """The next state without these items; unknown ids are an error naming them. This state is left as it is."""
        catalog = self.catalog.without(item_ids)
        gone = set(item_ids)
        index = self.index.fork()
        indexed = [i for i in dict.fromkeys(item_ids) if i in index]
        if indexed:
            index.remove(indexed)
        hashes = self.hashes.copy()
        for item_id in gone:
            hashes.pop(item_id, None)
        skipped = tuple(s for s in self.skipped if s.item_id not in gone)
        return EngineState(catalog, index, hashes, skipped, self.trained)

    def skip_reason(self, item_id: str) -> str | None:
        """Why an item of the catalog has no vector, or None when it has one or is unknown."""
        return next((s.reason for s in self.skipped if s.item_id == item_id), None)
