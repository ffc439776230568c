"""Turn an `IdFilter` plus tombstones into the rows a search may return and a FAISS ID selector.

The selector runs inside FAISS, so filtered-out rows never enter a result list:
- nothing to hide: no selector at all;
- excluded ids: `IDSelectorNot(IDSelectorBatch(excluded rows))`, O(excluded) to build;
- tombstones: the store's packed alive bitmap (built once per version of the store, then
  shared by every search), combined with the excluded ids by `IDSelectorAnd`;
- an include set: an `IDSelectorBitmap` over every row, built with one vectorised pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from .base import IdFilter
from .store import RowStore


@dataclass(frozen=True)
class Allowed:
    """The rows one filtered search may return.

    Attributes:
        count: number of allowed (alive, filter-passing) rows.
        mask: boolean (n_rows,) of allowed rows (an include filter), or None: the allowed
            rows are "alive minus `blocked`".
        blocked: alive rows the filter excludes (used when `mask` is None).
        store: the row store the rows index into.
    """

    count: int
    mask: np.ndarray | None
    blocked: np.ndarray
    store: RowStore

    def rows(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Allowed rows in [start, stop), ascending, as int64."""
        return np.flatnonzero(self.in_range(start, stop)) + start

    def in_range(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Boolean (stop - start,): which rows of [start, stop) are allowed."""
        stop = self.store.n_rows if stop is None else stop
        if self.mask is not None:
            return self.mask[start:stop]
        mask = self.store.alive[start:stop].copy()
        blocked = self.blocked[(self.blocked >= start) & (self.blocked < stop)]
        mask[blocked - start] = False
        return mask

    def selector(self) -> faiss.IDSelector | None:
        """A FAISS selector admitting exactly the allowed rows; None when all rows are allowed."""
        if self.mask is not None:
            return faiss.IDSelectorBitmap(np.packbits(self.mask, bitorder="little"))
        alive = faiss.IDSelectorBitmap(self.store.packed_alive()) if self.store.n_dead else None
        hide = faiss.IDSelectorNot(faiss.IDSelectorBatch(self.blocked)) if self.blocked.size else None
        if alive is not None and hide is not None:
            return faiss.IDSelectorAnd(alive, hide)
        return alive if hide is None else hide


def resolve(store: RowStore, filter: IdFilter) -> Allowed:
    """Work out which rows `filter` allows, tombstones excluded.

    Example:
        >>> store = RowStore(1); store.append(["a", "b"], np.zeros((2, 1), np.float32))
        >>> resolve(store, IdFilter(exclude=frozenset({"a"}))).rows().tolist()
        [1]
    """
    blocked = np.unique(store.rows_of(filter.exclude)) if filter.exclude else np.empty(0, np.int64)
    if filter.include is None:
        return Allowed(store.n_alive - blocked.size, None, blocked, store)
    mask = np.zeros(store.n_rows, bool)
    mask[store.rows_of(filter.include)] = True
    mask[blocked] = False
    return Allowed(int(np.count_nonzero(mask)), mask, blocked, store)
