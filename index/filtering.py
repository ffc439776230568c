"""Turn an `IdFilter` plus tombstones into the rows a search may return and a FAISS ID selector.

The selector runs inside FAISS, so filtered-out rows never enter a result list:
- nothing to hide: no selector at all;
- only a few excluded ids and no tombstones: `IDSelectorNot(IDSelectorBatch(excluded rows))`,
  which costs O(excluded) to build;
- otherwise (an include set, or tombstones): an `IDSelectorBitmap` over every row, built
  with one vectorised O(rows / 8) pass.
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
        mask: boolean (n_rows,) of allowed rows, or None when it is cheaper to describe the
            allowed rows as "alive minus `blocked`".
        blocked: alive rows the filter excludes (used when `mask` is None).
        store: the row store the rows index into.
    """

    count: int
    mask: np.ndarray | None
    blocked: np.ndarray
    store: RowStore

    def rows(self) -> np.ndarray:
        """Allowed rows, ascending, as int64."""
        if self.mask is not None:
            return np.flatnonzero(self.mask)
        mask = self.store.alive.copy()
        mask[self.blocked] = False
        return np.flatnonzero(mask)

    def selector(self) -> faiss.IDSelector | None:
        """A FAISS selector admitting exactly the allowed rows; None when all rows are allowed."""
        if self.mask is not None:
            return faiss.IDSelectorBitmap(np.packbits(self.mask, bitorder="little"))
        if self.blocked.size == 0:
            return None
        return faiss.IDSelectorNot(faiss.IDSelectorBatch(self.blocked))


def resolve(store: RowStore, filter: IdFilter) -> Allowed:
    """Work out which rows `filter` allows, tombstones excluded.

    Example:
        >>> store = RowStore(1); store.append(["a", "b"], np.zeros((2, 1), np.float32))
        >>> resolve(store, IdFilter(exclude=frozenset({"a"}))).rows().tolist()
        [1]
    """
    blocked = np.unique(store.rows_of(filter.exclude)) if filter.exclude else np.empty(0, np.int64)
    if filter.include is None:
        count = store.n_alive - blocked.size
        if store.n_dead == 0:
            return Allowed(count, None, blocked, store)
        mask = store.alive.copy()
    else:
        mask = np.zeros(store.n_rows, bool)
        mask[store.rows_of(filter.include)] = True
    mask[blocked] = False
    return Allowed(int(mask.sum()), mask, blocked, store)
