"""What a query reads, as one immutable snapshot.

An `EngineState` bundles the catalog, the vector index, the content hashes, the
skipped items and the trained model. The engine holds one; a query takes it once
and answers from it alone. `add`, `remove` and `fit` build the next state (the
index through `VectorIndex.fork`, so the published one is never changed) and
publish it with one reference swap, so a reader never sees half a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from index import VectorIndex

from .catalog import Catalog
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

    def skip_reason(self, item_id: str) -> str | None:
        """Why an item of the catalog has no vector, or None when it has one or is unknown."""
        return next((s.reason for s in self.skipped if s.item_id == item_id), None)
