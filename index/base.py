"""The `VectorIndex` contract every backend meets, and the checks at its boundary.

Backends implement the `_add`, `_remove`, `_search`, ... hooks; the public methods here
validate arguments once, so every backend raises the same errors with the same messages.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.checks import check_k
from core.errors import InvalidArgumentError, UnknownItemError


@dataclass(frozen=True)
class IdFilter:
    """Which raw ids a search may return.

    Ids that are not in the index are ignored: an include set naming only unknown ids
    allows nothing.

    Attributes:
        include: only these ids (None allows every id).
        exclude: never these ids; applied after `include`.

    Example:
        >>> IdFilter(exclude=frozenset({"sku-1"})).exclude
        frozenset({'sku-1'})
    """

    include: frozenset[str] | None = None
    exclude: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # Accept any iterable of ids but store frozensets, so the filter stays hashable.
        if self.include is not None and not isinstance(self.include, frozenset):
            object.__setattr__(self, "include", frozenset(self.include))
        if not isinstance(self.exclude, frozenset):
            object.__setattr__(self, "exclude", frozenset(self.exclude))

    def allows(self, id: str) -> bool:
        """Whether a search may return `id` (membership only: an allowed id need not be stored).

        Example:
            >>> IdFilter(include=frozenset({"a", "b"}), exclude=frozenset({"b"})).allows("b")
            False
        """
        if id in self.exclude:
            return False
        return self.include is None or id in self.include


class VectorIndex(ABC):
    """Inner-product search over float32 vectors keyed by raw string ids.

    Concurrency: an index object is either read concurrently or written by one thread.
    Reads (`search`, `vectors`, `ids`, `len`, `in`) change nothing, so any number of
    threads may run them on one object at once. To change an index that others read,
    `fork` it, change the fork, and publish the fork (swap the reference the readers
    take); readers of the old object keep seeing exactly what it held.

    Example:
        >>> from index import create_index
        >>> idx = create_index(2)
        >>> idx.add(["a", "b"], np.array([[1, 0], [0, 1]], dtype=np.float32))
        >>> scores, ids = idx.search(np.array([1, 0], dtype=np.float32), k=1)
        >>> ids[0, 0]
        'a'
    """

    dim: int

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add items; all or nothing.

        Args:
            ids: new, distinct, non-empty string ids.
            vectors: float32-convertible array of shape (len(ids), dim), finite values.

        Raises:
            InvalidArgumentError: duplicate or non-string id, wrong shape, NaN or infinity.

        Example:
            >>> idx.add(["c"], np.ones((1, idx.dim), dtype=np.float32))  # doctest: +SKIP
        """
        id_list = check_new_ids(ids, self)
        array = check_vectors(vectors, len(id_list), self.dim, id_list)
        if id_list:
            self._add(id_list, array)

    def remove(self, ids: Sequence[str]) -> None:
        """Remove items; all or nothing.

        Raises:
            UnknownItemError: an id is not in the index.

        Example:
            >>> idx.remove(["c"])  # doctest: +SKIP
        """
        id_list = list(dict.fromkeys(ids))
        self._check_known(id_list)
        if id_list:
            self._remove(id_list)

    def search(
        self, queries: np.ndarray, k: int, filter: IdFilter | None = None, rerank_factor: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the `k` items of highest inner product with each query, best first.

        Args:
            queries: (n_queries, dim), or (dim,) for one query.
            k: results per query; fewer come back when the filter allows fewer items.
            filter: ids to restrict to or leave out.
            rerank_factor: for this search, the HNSW over-fetch (`IndexConfig.rerank_factor`);
                lower is faster and less exact. None keeps the config's; exact indexes ignore it.

        Returns:
            scores: float32 (n_queries, k'), descending along each row.
            ids: object array of str (n_queries, k'), where k' = min(k, items allowed).

        Raises:
            InvalidArgumentError: k <= 0, wrong query shape, NaN or infinity.

        Example:
            >>> scores, ids = idx.search(query, k=10, filter=IdFilter(exclude=frozenset({"a"})))  # doctest: +SKIP
        """
        check_k(k)
        if rerank_factor is not None and (
            isinstance(rerank_factor, bool) or not isinstance(rerank_factor, int) or rerank_factor < 1
        ):
            raise InvalidArgumentError(f"rerank_factor must be a positive integer or None, got {rerank_factor!r}")
        matrix = check_queries(queries, self.dim)
        return self._search(matrix, k, filter or IdFilter(), rerank_factor)

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Return the stored float32 vectors of `ids`, shape (len(ids), dim).

        Raises:
            UnknownItemError: an id is not in the index.

        Example:
            >>> idx.vectors(["a"]).shape  # doctest: +SKIP
            (1, 2)
        """
        id_list = list(ids)
        self._check_known(id_list)
        return self._vectors(id_list)

    def describe(self) -> str:
        """One line saying how this index searches (backends with settings say which, and why).

        Example:
            >>> create_index(2, IndexConfig(kind="numpy")).describe()  # doctest: +SKIP
            'exact NumpyIndex; 0 items'
        """
        return f"exact {type(self).__name__}; {len(self):,} items"

    @abstractmethod
    def fork(self) -> VectorIndex:
        """A new index with the same contents, sharing what neither side will change.

        Writes to the fork (add, remove, and any rebuild, compaction or change of structure
        they trigger) never change what this object returns from any method, and writes to
        this object never change the fork, even while other threads search either one.
        Forking copies only small mutable parts (FAISS: the id map of the items added since
        the structure was built; the alive flags at the first removal), never the stored
        vectors or the FAISS structure.

        Example:
            >>> nxt = idx.fork()  # doctest: +SKIP
            >>> nxt.add(["c"], vector)  # doctest: +SKIP
            >>> published = nxt  # readers switch to the new version in one assignment  # doctest: +SKIP
        """

    @property
    @abstractmethod
    def ids(self) -> list[str]:
        """Ids of the stored items in insertion order."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of stored items."""

    @abstractmethod
    def __contains__(self, id: object) -> bool:
        """Whether `id` is stored."""

    @abstractmethod
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the index to a folder atomically; `index.load_index` reads it back.

        The manifest's kind is `core.persistence.INDEX_KIND` and its "backend" names
        the class that reads the folder back (`index.factory.BACKENDS`).
        """

    @classmethod
    @abstractmethod
    def from_parts(cls, folder: Path, manifest: Mapping[str, Any]) -> VectorIndex:
        """Rebuild this backend from a folder written by its `save`, whose manifest `load_index` checked.

        Raises:
            FormatVersionError: the parts disagree with each other or with the manifest.

        Example:
            >>> FaissIndex.from_parts(folder, read_manifest(folder, INDEX_KIND))  # doctest: +SKIP
        """

    @abstractmethod
    def _add(self, ids: list[str], vectors: np.ndarray) -> None:
        """Store validated, new items."""

    @abstractmethod
    def _remove(self, ids: list[str]) -> None:
        """Drop known, distinct items."""

    @abstractmethod
    def _search(
        self, queries: np.ndarray, k: int, filter: IdFilter, rerank_factor: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search with validated float32 (n, dim) queries."""

    @abstractmethod
    def _vectors(self, ids: list[str]) -> np.ndarray:
        """Stored vectors of known ids."""

    def _check_known(self, ids: list[str]) -> None:
        """Raise UnknownItemError naming the first id that is not stored."""
        for item in ids:
            if item not in self:
                raise UnknownItemError(f"id {item!r} is not in the index ({len(self):,} items)")


def check_dim(dim: int) -> int:
    """Validate an index dimension; returns it unchanged."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise InvalidArgumentError(f"dim must be a positive integer, got {dim!r}")
    return dim


def check_new_ids(ids: Sequence[str], index: VectorIndex) -> list[str]:
    """Validate ids for `add`: strings, non-empty, distinct, not yet stored."""
    if isinstance(ids, (str, bytes)):
        raise InvalidArgumentError(f"ids must be a sequence of strings, got the single string {ids!r}")
    id_list = list(ids)
    seen: set[str] = set()
    for item in id_list:
        if not isinstance(item, str) or not item:
            raise InvalidArgumentError(f"ids must be non-empty strings, got {item!r}")
        if item in seen:
            raise InvalidArgumentError(f"duplicate id {item!r} in the batch being added")
        if item in index:
            raise InvalidArgumentError(
                f"id {item!r} is already in the index ({len(index):,} items); remove it first"
            )
        seen.add(item)
    return id_list


def check_vectors(vectors: np.ndarray, n: int, dim: int, ids: list[str]) -> np.ndarray:
    """Validate vectors for `add` and return them as C-contiguous float32 (n, dim)."""
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape != (n, dim):
        raise InvalidArgumentError(
            f"vectors have shape {array.shape}; expected ({n}, {dim}): one row per id, dim {dim}"
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InvalidArgumentError(f"vector of id {ids[bad]!r} contains NaN or infinite values")
    return array


def check_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    """Validate queries and return them as C-contiguous float32 (n, dim)."""
    array = np.asarray(queries)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise InvalidArgumentError(
            f"queries have shape {np.shape(queries)}; expected (n_queries, {dim}) or ({dim},)"
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        raise InvalidArgumentError(f"query {int(np.flatnonzero(~finite)[0])} contains NaN or infinite values")
    return array

