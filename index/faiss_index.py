"""FAISS-backed vector index: exact Flat while small, HNSW with exact re-ranking once large.

Design:
- Raw string ids map to int64 FAISS labels through a `RowStore`: label = row of the store,
  which also keeps the float32 vectors (for `vectors()`, rebuilds, re-ranking and the exact
  fallback).
- Removal: HNSW cannot remove nodes, so a removed item becomes a tombstone: its row stays in
  the graph (still useful for navigation) and every search excludes it through the FAISS ID
  selector. Once tombstones exceed `config.rebuild_fraction` of the rows, the store is
  compacted and the structure rebuilt. Flat uses the same mechanism, so both behave alike.
- Auto switching: kind "auto" starts Flat and rebuilds as HNSW in the `add` that takes the
  index past `config.hnsw_threshold` items. While HNSW holds fewer rows than
  `config.train_rows`, it is retrained and rebuilt whenever the rows double, so the scalar
  quantiser never stays fitted to a handful of first vectors.
- HNSW search fetches `rerank_factor * k` candidates (efSearch >= that), then re-scores
  them with the float32 vectors: scores returned are exact inner products.
- Filters run inside FAISS as ID selectors (see `filtering`). The rule for restrictive
  filters on HNSW: when the allowed items number at most `config.exact_filter_rows`, or the
  beam widened by 1 / selectivity would be at least as large as the allowed set, the allowed
  rows are scored exactly instead; any query whose HNSW search still returns fewer than k
  allowed items is redone exactly. So a filtered search always returns min(k, allowed) items.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from core.errors import FormatVersionError, InvalidArgumentError
from core.persistence import INDEX_KIND, atomic_dir, write_manifest
from core.ranking import top_k

from . import structures
from .base import IdFilter, VectorIndex, check_dim
from .config import IndexConfig
from .filtering import Allowed, resolve
from .store import RowStore

_RERANK_CHUNK = 64  # queries re-ranked together: bounds the gathered (chunk, C, dim) block


class FaissIndex(VectorIndex):
    """Inner-product index on FAISS (Flat or HNSW + exact re-ranking), keyed by raw ids.

    Not safe for concurrent writers; concurrent searches are fine.

    Example:
        >>> idx = FaissIndex(2, IndexConfig(kind="flat"))
        >>> idx.add(["a", "b"], np.array([[1, 0], [0, 1]], dtype=np.float32))
        >>> idx.search(np.array([0, 1], dtype=np.float32), k=1)[1].tolist()
        [['b']]
    """

    def __init__(self, dim: int, config: IndexConfig | None = None) -> None:
        config = config or IndexConfig()
        if config.kind == "numpy":
            raise InvalidArgumentError("FaissIndex needs kind 'auto', 'flat' or 'hnsw', got 'numpy'")
        self.dim = check_dim(dim)
        self.config = config
        self._store = RowStore(dim)
        self._structure = structures.HNSW if config.kind == "hnsw" else structures.FLAT
        self._faiss: faiss.Index | None = None
        self._trained_rows = 0

    @property
    def structure(self) -> str:
        """The FAISS structure in use now: "flat" or "hnsw"."""
        return self._structure

    @property
    def ids(self) -> list[str]:
        """Ids in insertion order."""
        return self._store.alive_ids()

    def __len__(self) -> int:
        return self._store.n_alive

    def __contains__(self, id: object) -> bool:
        return id in self._store

    def _add(self, ids: list[str], vectors: np.ndarray) -> None:
        self._store.append(ids, vectors)
        if self._needs_rebuild():
            self._rebuild()
        else:
            assert self._faiss is not None
            self._faiss.add(vectors)

    def _remove(self, ids: list[str]) -> None:
        self._store.kill(ids)
        if self._store.n_dead > self.config.rebuild_fraction * self._store.n_rows:
            self._rebuild()

    def _vectors(self, ids: list[str]) -> np.ndarray:
        rows = [self._store.row_of(item) for item in ids]
        return self._store.matrix[rows].reshape(len(ids), self.dim).copy()

    def _needs_rebuild(self) -> bool:
        """Whether the structure must be (re)built after rows were appended."""
        if self._faiss is None:
            return True
        if self._structure == structures.FLAT:
            return self.config.kind == "auto" and self._store.n_alive > self.config.hnsw_threshold
        return (
            self.config.storage != "flat"
            and self._trained_rows < self.config.train_rows
            and self._store.n_rows >= 2 * self._trained_rows
        )

    def _rebuild(self) -> None:
        """Compact tombstones, pick the structure for the current size, build it."""
        self._store.compact()
        if self.config.kind == "auto":
            big = self._store.n_alive > self.config.hnsw_threshold
            self._structure = structures.HNSW if big else structures.FLAT
        if self._store.n_rows == 0:
            self._faiss, self._trained_rows = None, 0
            return
        self._faiss = structures.build(self._structure, self._store.matrix, self.config)
        self._trained_rows = self._store.n_rows

    def _search(
        self, queries: np.ndarray, k: int, filter: IdFilter, rerank_factor: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        allowed = resolve(self._store, filter)
        k = min(k, allowed.count)
        if k == 0 or self._faiss is None:
            empty = (len(queries), 0)
            return np.empty(empty, np.float32), np.empty(empty, object)
        with _threads_for(len(queries)):
            if self._structure == structures.FLAT:
                params = structures.search_params(structures.FLAT, allowed.selector(), k)
                scores, labels = self._faiss.search(queries, k, params=params)
            else:
                scores, labels = self._search_hnsw(queries, k, allowed, rerank_factor or self.config.rerank_factor)
        row_ids = self._store.row_ids
        ids = np.array([row_ids[label] for label in labels.ravel()], dtype=object).reshape(labels.shape)
        return scores.astype(np.float32, copy=False), ids

    def _search_hnsw(
        self, queries: np.ndarray, k: int, allowed: Allowed, rerank_factor: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """HNSW candidates re-ranked exactly, or an exact scan for restrictive filters."""
        n_candidates = min(allowed.count, k * rerank_factor)
        selectivity = allowed.count / self._store.n_rows
        beam = structures.hnsw_beam(n_candidates, selectivity, self.config)
        if allowed.count <= self.config.exact_filter_rows or beam >= allowed.count:
            return self._exact(queries, k, allowed.rows())
        assert self._faiss is not None
        params = structures.search_params(structures.HNSW, allowed.selector(), beam)
        _, candidates = self._faiss.search(queries, n_candidates, params=params)
        scores, labels = self._rerank(queries, candidates, k)
        short = np.flatnonzero((labels < 0).any(axis=1))
        if short.size:
            scores[short], labels[short] = self._exact(queries[short], k, allowed.rows())
        return scores, labels

    def _rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores of candidate rows (-1 = none); the best k per query, -1 where short."""
        matrix = self._store.matrix
        scores = np.empty((len(queries), k), np.float32)
        labels = np.empty((len(queries), k), np.int64)
        for start in range(0, len(queries), _RERANK_CHUNK):
            chunk = slice(start, start + _RERANK_CHUNK)
            cand = candidates[chunk]
            exact = np.einsum("qcd,qd->qc", matrix[np.maximum(cand, 0)], queries[chunk])
            exact[cand < 0] = -np.inf
            cols, best = top_k(exact, k)
            picked = np.take_along_axis(cand, cols, axis=1)
            picked[~np.isfinite(best)] = -1
            scores[chunk], labels[chunk] = best, picked
        return scores, labels

    def _exact(self, queries: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the given rows only."""
        cols, best = top_k(queries @ self._store.matrix[rows].T, k)
        return best, rows[cols]

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write manifest.json, ids.npy, vectors.npy, alive.npy and index.faiss atomically.

        Tombstoned rows are saved as they are (alive.npy marks them), so the FAISS file
        matches the rows without a rebuild.

        Example:
            >>> idx.save("models/shop/index")  # doctest: +SKIP
        """
        store = self._store
        parts = ["ids.npy", "vectors.npy", "alive.npy"]
        with atomic_dir(directory) as tmp:
            np.save(tmp / "ids.npy", np.array(store.row_ids, dtype=np.str_).reshape(-1))
            np.save(tmp / "vectors.npy", store.matrix)
            np.save(tmp / "alive.npy", store.alive)
            if self._faiss is not None:
                faiss.write_index(self._faiss, str(tmp / "index.faiss"))
                parts.append("index.faiss")
            write_manifest(
                tmp, INDEX_KIND, backend="faiss", dim=self.dim, config=asdict(self.config),
                structure=self._structure, trained_rows=self._trained_rows, parts=parts,
            )

    @classmethod
    def from_parts(cls, folder: Path, manifest: Mapping[str, Any]) -> FaissIndex:
        """Rebuild from a folder written by `save`, whose manifest `load_index` checked.

        Raises:
            FormatVersionError: ids, vectors, alive flags and index.faiss disagree in length.

        Example:
            >>> FaissIndex.from_parts(folder, read_manifest(folder, INDEX_KIND))  # doctest: +SKIP
        """
        index = cls(int(manifest["dim"]), IndexConfig(**manifest["config"]))
        ids = np.load(folder / "ids.npy", allow_pickle=False)
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        alive = np.load(folder / "alive.npy", allow_pickle=False)
        if not (len(ids) == len(vectors) == len(alive)) or vectors.shape[1:] != (index.dim,):
            raise FormatVersionError(
                f"'{folder}' is inconsistent: {len(ids)} ids, vectors of shape {vectors.shape}, "
                f"{len(alive)} alive flags for dim {index.dim}"
            )
        index._store.restore([str(i) for i in ids.tolist()], vectors, alive)
        index._structure = manifest["structure"]
        index._trained_rows = int(manifest["trained_rows"])
        if "index.faiss" in manifest["parts"]:
            index._faiss = faiss.read_index(str(folder / "index.faiss"))
            if index._faiss.ntotal != len(ids):
                raise FormatVersionError(
                    f"'{folder}' is inconsistent: index.faiss holds {index._faiss.ntotal} rows, ids.npy {len(ids)}"
                )
        return index


@contextmanager
def _threads_for(n_queries: int) -> Iterator[None]:
    """Run FAISS single-threaded for one query: splitting one scan over OpenMP threads was
    slower than one thread in our measurements, and far slower on a busy machine. The OpenMP
    setting is per calling thread, so concurrent searches in other threads are unaffected."""
    if n_queries > 1:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)
