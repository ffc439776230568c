"""Brute-force NumPy index: exact, simple, the reference the FAISS backend is tested against."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from core.persistence import INDEX_KIND, atomic_dir, write_manifest
from core.ranking import top_k

from .base import IdFilter, VectorIndex, check_dim
from .config import IndexConfig


class NumpyIndex(VectorIndex):
    """Exact inner-product search by one matrix product over every stored vector.

    Removal deletes rows at once (O(n * dim)): fine for a reference, slow for big catalogs.
    Writes replace the matrix instead of changing it, so a fork may share it.

    Example:
        >>> idx = NumpyIndex(2)
        >>> idx.add(["a", "b"], np.array([[1, 0], [0, 1]], dtype=np.float32))
        >>> idx.search(np.array([0, 1], dtype=np.float32), k=1)[1].tolist()
        [['b']]
    """

    def __init__(self, dim: int, config: IndexConfig | None = None) -> None:
        self.dim = check_dim(dim)
        self.config = config or IndexConfig(kind="numpy")
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._matrix = np.empty((0, dim), np.float32)

    def fork(self) -> NumpyIndex:
        """An independent copy (the matrix is shared: writes replace it, never change it).

        Example:
            >>> NumpyIndex(2).fork().dim
            2
        """
        other = copy.copy(self)
        other._ids, other._rows = list(self._ids), dict(self._rows)
        return other

    @property
    def ids(self) -> list[str]:
        """Ids in insertion order."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: object) -> bool:
        return id in self._rows

    def _add(self, ids: list[str], vectors: np.ndarray) -> None:
        self._matrix = np.concatenate([self._matrix, vectors])
        for item in ids:
            self._rows[item] = len(self._ids)
            self._ids.append(item)

    def _remove(self, ids: list[str]) -> None:
        drop = np.array([self._rows[item] for item in ids], np.int64)
        self._matrix = np.delete(self._matrix, drop, axis=0)
        gone = set(ids)
        self._ids = [item for item in self._ids if item not in gone]
        self._rows = {item: row for row, item in enumerate(self._ids)}

    def _search(
        self, queries: np.ndarray, k: int, filter: IdFilter, rerank_factor: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        allowed = self._allowed_rows(filter)
        scores = queries @ self._matrix[allowed].T
        cols, best = top_k(scores, k)
        ids = np.array(self._ids, dtype=object)[allowed][cols] if cols.size else np.empty(cols.shape, object)
        return best, ids.reshape(cols.shape)

    def _allowed_rows(self, filter: IdFilter) -> np.ndarray:
        """Rows the filter lets through, ascending."""
        if filter.include is None:
            mask = np.ones(len(self._ids), bool)
        else:
            mask = np.zeros(len(self._ids), bool)
            mask[[self._rows[i] for i in filter.include if i in self._rows]] = True
        mask[[self._rows[i] for i in filter.exclude if i in self._rows]] = False
        return np.flatnonzero(mask)

    def _vectors(self, ids: list[str]) -> np.ndarray:
        return self._matrix[[self._rows[item] for item in ids]].reshape(len(ids), self.dim).copy()

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write manifest.json, ids.npy and vectors.npy to `directory` atomically.

        Example:
            >>> idx.save("models/shop/index")  # doctest: +SKIP
        """
        with atomic_dir(directory) as tmp:
            np.save(tmp / "ids.npy", np.array(self._ids, dtype=np.str_).reshape(-1))
            np.save(tmp / "vectors.npy", self._matrix)
            write_manifest(
                tmp, INDEX_KIND, backend="numpy", dim=self.dim, config=asdict(self.config),
                parts=["ids.npy", "vectors.npy"],
            )

    @classmethod
    def from_parts(cls, folder: Path, manifest: Mapping[str, Any]) -> NumpyIndex:
        """Rebuild from a folder written by `save`, whose manifest `load_index` checked.

        Example:
            >>> NumpyIndex.from_parts(folder, read_manifest(folder, INDEX_KIND))  # doctest: +SKIP
        """
        index = cls(int(manifest["dim"]), IndexConfig(**manifest["config"]))
        ids = np.load(folder / "ids.npy", allow_pickle=False).tolist()
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        if ids:
            index._add([str(i) for i in ids], np.ascontiguousarray(vectors, dtype=np.float32))
        return index
