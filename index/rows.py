"""Persistent append-only rows of (id, float32 vector): the part of an index forks share.

A `Rows` value sees rows [0, n) of a buffer that has room for more. Rows below `n` are
never written again, so any number of `Rows` values (held by an index and all its forks)
may share one buffer. `append` returns a new value: it writes in place when this value
ends where the buffer's written part ends (the usual case: each write extends the newest
version) and copies its own rows into a fresh buffer otherwise, so two versions that
branch from one value never write over each other's rows.
"""

from __future__ import annotations

import threading

import numpy as np

_MIN_CAPACITY = 1024
_GROWTH = 1.5


def grown_capacity(needed: int) -> int:
    """Rows to allocate when `needed` do not fit: room to spare, so appends are amortised O(1).

    The spare rows cost address space, not memory, until written (the OS maps pages on use).
    """
    return max(int(needed * _GROWTH), _MIN_CAPACITY)


class _Buffer:
    """Storage shared by `Rows` values, and how far it has been claimed by appends."""

    __slots__ = ("claimed", "ids", "lock", "vectors")

    def __init__(self, vectors: np.ndarray, ids: np.ndarray, claimed: int) -> None:
        self.vectors, self.ids, self.claimed = vectors, ids, claimed
        self.lock = threading.Lock()


class Rows:
    """Rows [0, n) of (id, vector); immutable, cheap to share, cheap to extend.

    Example:
        >>> a = Rows.empty(2)
        >>> b = a.append(["x"], np.ones((1, 2), np.float32))
        >>> len(a), len(b), b.ids.tolist()
        (0, 1, ['x'])
    """

    __slots__ = ("_buffer", "_n")

    def __init__(self, buffer: _Buffer, n: int) -> None:
        self._buffer, self._n = buffer, n

    @classmethod
    def empty(cls, dim: int) -> Rows:
        """No rows."""
        return cls(_Buffer(np.empty((0, dim), np.float32), np.empty(0, object), 0), 0)

    @classmethod
    def of(cls, ids: np.ndarray, vectors: np.ndarray) -> Rows:
        """Rows owning these arrays (the caller hands them over and keeps no reference)."""
        return cls(_Buffer(vectors, ids, len(ids)), len(ids))

    def __len__(self) -> int:
        return self._n

    @property
    def matrix(self) -> np.ndarray:
        """Read-only float32 (n, dim) view."""
        view = self._buffer.vectors[: self._n]
        view.flags.writeable = False
        return view

    @property
    def ids(self) -> np.ndarray:
        """Read-only object (n,) view of the row ids."""
        view = self._buffer.ids[: self._n]
        view.flags.writeable = False
        return view

    def append(self, ids: list[str] | np.ndarray, vectors: np.ndarray) -> Rows:
        """These rows followed by new ones; `self` and every other holder see no change."""
        buffer, start, end = self._buffer, self._n, self._n + len(ids)
        with buffer.lock:  # two forks of one version may append from two threads
            in_place = buffer.claimed == start and end <= len(buffer.vectors)
            if in_place:
                buffer.claimed = end
        if not in_place:
            capacity = grown_capacity(end)
            vectors_copy = np.empty((capacity, buffer.vectors.shape[1]), np.float32)
            vectors_copy[:start] = buffer.vectors[:start]
            ids_copy = np.empty(capacity, object)
            ids_copy[:start] = buffer.ids[:start]
            buffer = _Buffer(vectors_copy, ids_copy, end)
        buffer.vectors[start:end] = vectors
        buffer.ids[start:end] = ids
        return Rows(buffer, end)
