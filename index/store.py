"""Row storage behind the FAISS index: raw ids <-> int64 row labels, float32 vectors, tombstones.

Row `r` of the store is label `r` of the FAISS structure built over it. Removing an item
only marks its row dead, so labels never shift under a built graph; `compact` drops the
dead rows (and renumbers) when the owner rebuilds its structure.
"""

from __future__ import annotations

import numpy as np

_MIN_CAPACITY = 1024
_GROWTH = 1.5


class RowStore:
    """Append-only rows of (id, float32 vector) with tombstones for removed rows.

    Example:
        >>> store = RowStore(2)
        >>> store.append(["a"], np.ones((1, 2), np.float32))
        >>> store.row_of("a"), store.n_alive
        (0, 1)
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._buffer = np.empty((0, dim), np.float32)
        self._ids: list[str] = []
        self._alive = np.empty(0, bool)
        self._rows: dict[str, int] = {}  # alive ids only

    @property
    def n_rows(self) -> int:
        """Rows stored, dead ones included: the label range of the FAISS structure."""
        return len(self._ids)

    @property
    def n_alive(self) -> int:
        """Rows not removed."""
        return len(self._rows)

    @property
    def n_dead(self) -> int:
        """Tombstoned rows awaiting compaction."""
        return self.n_rows - self.n_alive

    @property
    def matrix(self) -> np.ndarray:
        """Float32 (n_rows, dim) view of every row, dead ones included."""
        return self._buffer[: self.n_rows]

    @property
    def alive(self) -> np.ndarray:
        """Boolean (n_rows,) view: which rows are not removed."""
        return self._alive[: self.n_rows]

    @property
    def row_ids(self) -> list[str]:
        """Id of every row, dead ones included (their ids may be reused by later rows)."""
        return self._ids

    def alive_ids(self) -> list[str]:
        """Ids of alive rows in insertion order."""
        return [item for item, live in zip(self._ids, self.alive) if live]

    def row_of(self, id: str) -> int:
        """Row of an alive id; KeyError if absent."""
        return self._rows[id]

    def __contains__(self, id: object) -> bool:
        return id in self._rows

    def rows_of(self, ids: object) -> np.ndarray:
        """Rows of those `ids` that are alive, as int64; unknown ids are skipped."""
        rows = self._rows
        return np.fromiter((rows[i] for i in ids if i in rows), np.int64)  # type: ignore[attr-defined]

    def append(self, ids: list[str], vectors: np.ndarray) -> None:
        """Append new rows; the caller has checked the ids are new."""
        start, end = self.n_rows, self.n_rows + len(ids)
        if end > len(self._buffer):
            capacity = max(end, int(len(self._buffer) * _GROWTH), _MIN_CAPACITY)
            buffer = np.empty((capacity, self.dim), np.float32)
            buffer[:start] = self._buffer[:start]
            alive = np.zeros(capacity, bool)
            alive[:start] = self._alive[:start]
            self._buffer, self._alive = buffer, alive
        self._buffer[start:end] = vectors
        self._alive[start:end] = True
        for offset, item in enumerate(ids):
            self._rows[item] = start + offset
        self._ids.extend(ids)

    def kill(self, ids: list[str]) -> np.ndarray:
        """Tombstone alive ids; returns their rows."""
        rows = np.array([self._rows.pop(item) for item in ids], np.int64)
        self._alive[rows] = False
        return rows

    def compact(self) -> None:
        """Drop dead rows and renumber the rest in insertion order."""
        keep = np.flatnonzero(self.alive)
        matrix = self.matrix[keep]
        ids = [self._ids[r] for r in keep]
        self._buffer = np.empty((0, self.dim), np.float32)
        self._ids, self._alive, self._rows = [], np.empty(0, bool), {}
        self.append(ids, matrix)

    def restore(self, ids: list[str], vectors: np.ndarray, alive: np.ndarray) -> None:
        """Replace the contents with saved rows (dead rows included)."""
        self._buffer = np.ascontiguousarray(vectors, dtype=np.float32)
        self._ids = list(ids)
        self._alive = np.asarray(alive, bool).copy()
        self._rows = {item: row for row, item in enumerate(self._ids) if self._alive[row]}
