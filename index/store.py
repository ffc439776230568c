"""Row storage behind the FAISS index: raw ids <-> int64 rows, float32 vectors, tombstones.

Rows are numbered from 0 in insertion order and split in two parts:
- *sealed* rows [0, n_sealed): the rows the owner's FAISS structure was built over (row =
  FAISS label). Their vectors, ids and id -> row mapping are frozen, so every fork of the
  store shares them;
- *tail* rows [n_sealed, n_rows): added since, searched exactly by the owner. Their vectors
  and ids are shared too (see `rows.Rows`); only their small id -> row dict is per store.

Removing an item only marks its row dead in the store's alive mask, so rows never shift
under a built structure. The alive mask is copied on write: a fork shares it until either
side marks a row dead (a copy of n_rows bytes). `seal` moves the tail into the sealed part (the
owner extends its structure with the same rows); `compact` drops the dead rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .rows import Rows, grown_capacity


class RowStore:
    """Rows of (id, float32 vector) with tombstones; `fork` is cheap and fully isolated.

    Example:
        >>> store = RowStore(2)
        >>> store.append(["a"], np.ones((1, 2), np.float32))
        >>> other = store.fork(); other.kill(["a"])
        >>> store.row_of("a"), store.n_alive, other.n_alive
        (0, 1, 0)
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._sealed = Rows.empty(dim)
        self._sealed_rows: Mapping[str, int] = {}  # shared by forks: never changed once built
        self._tail = Rows.empty(dim)
        self._tail_rows: dict[str, int] = {}  # alive tail ids only; this store's own
        self._alive = np.empty(0, bool)  # has room to grow; shared with forks until a kill
        self._owns_alive = True
        self._packed_alive: np.ndarray | None = None  # cache of packed_alive(); reset by every write
        self._n_alive = 0

    def fork(self) -> RowStore:
        """An independent store with the same rows; costs a copy of the tail's id dict."""
        other = RowStore.__new__(RowStore)
        other.__dict__.update(self.__dict__)
        other._tail_rows = dict(self._tail_rows)
        self._owns_alive = other._owns_alive = False
        return other

    @property
    def n_sealed(self) -> int:
        """Rows the owner's structure covers."""
        return len(self._sealed)

    @property
    def n_rows(self) -> int:
        """Rows stored, dead ones included."""
        return len(self._sealed) + len(self._tail)

    @property
    def n_alive(self) -> int:
        """Rows not removed."""
        return self._n_alive

    @property
    def n_dead(self) -> int:
        """Tombstoned rows awaiting compaction."""
        return self.n_rows - self._n_alive

    @property
    def sealed_matrix(self) -> np.ndarray:
        """Read-only float32 (n_sealed, dim) vectors of the sealed rows."""
        return self._sealed.matrix

    @property
    def sealed_ids(self) -> np.ndarray:
        """Read-only object (n_sealed,) ids of the sealed rows."""
        return self._sealed.ids

    @property
    def tail_matrix(self) -> np.ndarray:
        """Read-only float32 (n_rows - n_sealed, dim) vectors of the tail rows."""
        return self._tail.matrix

    @property
    def alive(self) -> np.ndarray:
        """Read-only boolean (n_rows,) view: which rows are not removed."""
        view = self._alive[: self.n_rows]
        view.flags.writeable = False
        return view

    def packed_alive(self) -> np.ndarray:
        """`alive` as a little-endian bitmap (FAISS `IDSelectorBitmap`); computed once per version."""
        packed = self._packed_alive
        if packed is None:  # readers racing here compute the same array: either may be kept
            packed = self._packed_alive = np.packbits(self.alive, bitorder="little")
        return packed

    def alive_ids(self) -> list[str]:
        """Ids of alive rows in insertion order."""
        alive, n_sealed = self.alive, self.n_sealed
        return self._sealed.ids[alive[:n_sealed]].tolist() + self._tail.ids[alive[n_sealed:]].tolist()

    def row_of(self, id: str) -> int:
        """Row of an alive id; KeyError if absent."""
        row = self._tail_rows.get(id)
        if row is None:
            row = self._sealed_rows.get(id)
            if row is None or not self._alive[row]:
                raise KeyError(id)
        return row

    def __contains__(self, id: object) -> bool:
        try:
            self.row_of(id)  # type: ignore[arg-type]
        except (KeyError, TypeError):
            return False
        return True

    def rows_of(self, ids: Iterable[str]) -> np.ndarray:
        """Rows of those `ids` that are alive, as int64; unknown ids are skipped."""
        return np.fromiter((row for row in map(self._row_or_none, ids) if row is not None), np.int64)

    def _row_or_none(self, id: str) -> int | None:
        """Row of an alive id, or None."""
        try:
            return self.row_of(id)
        except KeyError:
            return None

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """Float32 vectors of int64 `rows` (any shape), shape rows.shape + (dim,)."""
        return self._take(rows, self._sealed.matrix, self._tail.matrix)

    def ids_at(self, rows: np.ndarray) -> np.ndarray:
        """Object array of the ids of int64 `rows` (any shape)."""
        return self._take(rows, self._sealed.ids, self._tail.ids)

    def _take(self, rows: np.ndarray, sealed: np.ndarray, tail: np.ndarray) -> np.ndarray:
        """Gather `rows` from the sealed and tail arrays as if they were one."""
        n_sealed = len(self._sealed)
        in_tail = rows >= n_sealed
        if not in_tail.any():
            return sealed[rows]
        if in_tail.all():
            return tail[rows - n_sealed]
        out = sealed[np.where(in_tail, 0, rows)]
        out[in_tail] = tail[rows[in_tail] - n_sealed]
        return out

    def append(self, ids: list[str], vectors: np.ndarray) -> None:
        """Append new tail rows; the caller has checked the ids are new."""
        start, end = self.n_rows, self.n_rows + len(ids)
        self._tail = self._tail.append(ids, vectors)
        # Appends write True at or past this store's n_rows, in place even in a shared array:
        # a store sharing it either lacks those rows or has them alive, since rows are marked
        # dead only by a store that owns the array alone and the stores that share it later
        # are its forks, holding at least its rows. So appends never copy it; kills do.
        if end > len(self._alive):
            alive = np.zeros(grown_capacity(end), bool)
            alive[:start] = self._alive[:start]
            self._alive, self._owns_alive = alive, True
        self._alive[start:end] = True
        self._packed_alive = None
        self._tail_rows.update(zip(ids, range(start, end)))
        self._n_alive += len(ids)

    def kill(self, ids: list[str]) -> None:
        """Tombstone alive ids."""
        rows = [self.row_of(item) for item in ids]
        if not self._owns_alive:
            self._alive, self._owns_alive = self._alive.copy(), True
        self._alive[rows] = False
        self._packed_alive = None
        for item in ids:
            self._tail_rows.pop(item, None)
        self._n_alive -= len(ids)

    def seal(self) -> None:
        """Make the tail rows (dead ones included, so rows keep their numbers) sealed rows."""
        tail = self._tail
        if not len(tail):
            return
        sealed_rows = dict(self._sealed_rows)  # a new dict: forks keep reading the old one
        sealed_rows.update(self._tail_rows)
        self._sealed = self._sealed.append(tail.ids, tail.matrix)
        self._sealed_rows, self._tail_rows = sealed_rows, {}
        self._tail = Rows.empty(self.dim)

    def compact(self) -> None:
        """Drop dead rows and seal the rest, renumbered in insertion order."""
        keep = np.flatnonzero(self.alive)
        # Built by appending, so the buffer has room for the next seals to append in place.
        sealed = Rows.empty(self.dim).append(self.ids_at(keep), self.vectors_at(keep))
        self._reset(sealed, Rows.empty(self.dim), np.ones(len(keep), bool))

    def restore(self, ids: np.ndarray, vectors: np.ndarray, alive: np.ndarray, n_sealed: int) -> None:
        """Replace the contents with these rows (taken over, not copied), the first `n_sealed` sealed."""
        ids = np.asarray(ids, object)
        vectors = np.ascontiguousarray(vectors, np.float32)
        tail = Rows.of(ids[n_sealed:].copy(), vectors[n_sealed:])
        self._reset(Rows.of(ids[:n_sealed].copy(), vectors[:n_sealed]), tail, np.array(alive, bool))

    def _reset(self, sealed: Rows, tail: Rows, alive: np.ndarray) -> None:
        """Hold these rows and alive flags, and nothing else."""
        n_sealed = len(sealed)
        sealed_ids, tail_ids = sealed.ids, tail.ids
        self._sealed, self._tail = sealed, tail
        self._sealed_rows = {sealed_ids[row]: row for row in np.flatnonzero(alive[:n_sealed]).tolist()}
        self._tail_rows = {tail_ids[row]: row + n_sealed for row in np.flatnonzero(alive[n_sealed:]).tolist()}
        self._alive, self._owns_alive, self._packed_alive = alive, True, None
        self._n_alive = int(np.count_nonzero(alive))
