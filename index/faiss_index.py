"""FAISS-backed vector index: exact Flat while small, HNSW or IVF with exact re-ranking once large.

Design:
- Raw string ids map to int64 rows through a `RowStore`, which also keeps the float32
  vectors (for `vectors()`, rebuilds, re-ranking and exact scoring). Row = FAISS label.
- Copy on write: a built FAISS structure is never changed. Items added since it was built
  form the store's *tail*, scored exactly with NumPy and merged with the structure's
  results; once the tail passes `config.tail_rows`, a clone of the structure extended with
  it replaces the structure (`structures.extend`). So `fork()` shares the structure and
  every big array, and a fork's writes never reach what other holders read.
- Removal: HNSW cannot remove nodes, so a removed item becomes a tombstone: its row stays in
  the graph (still useful for navigation) and every search excludes it through the FAISS ID
  selector. Once tombstones exceed `config.rebuild_fraction` of the rows, the store is
  compacted and a new structure built. Flat uses the same mechanism, so both behave alike.
- Auto switching: kind "auto" starts Flat, builds HNSW in the `add` that takes the index
  past `config.hnsw_threshold` items and IVF past `config.ivf_threshold`. While HNSW holds
  fewer rows than `config.train_rows`, it is retrained and rebuilt whenever the rows double,
  so the scalar quantiser never stays fitted to a handful of first vectors; IVF is retrained
  whenever its rows double (its list count grows with sqrt(n)).
- Tuning: every build of an "auto" HNSW or IVF structure (first build, retraining,
  compaction) tunes its search parameter (efSearch, nprobe) to `config.target_recall`
  (see `tuning`); extending a clone with the tail keeps the setting. Tuned HNSW re-ranks
  min(k * rerank_factor, efSearch) candidates, so a small beam is also a cheap re-rank.
- HNSW and IVF searches fetch `rerank_factor * k` candidates (efSearch >= that), then
  re-score them with the float32 vectors: scores returned are exact inner products.
- Filters run inside FAISS as ID selectors (see `filtering`). The rule for restrictive
  filters on HNSW: when the allowed items number at most `config.exact_filter_rows`, or the
  beam widened by 1 / selectivity would be at least as large as the allowed set, the allowed
  rows are scored exactly instead; any query whose HNSW search still returns fewer than k
  allowed items is redone exactly. So a filtered search always returns min(k, allowed) items.
- The usual call (one query, no filter, no tombstones, no tail) skips the filter machinery
  and FAISS's Python wrapper (`rerank.search_one`); it answers exactly as the general path.
- A loaded index memory-maps its float32 vectors (see `save`): the structure is what it
  holds in RAM, and a search reads only the rows it re-ranks.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from core.errors import FormatVersionError, InvalidArgumentError
from core.persistence import INDEX_KIND, atomic_dir, write_manifest
from core.ranking import top_k

from . import structures, tuning
from .base import IdFilter, VectorIndex, check_dim
from .config import IndexConfig
from .filtering import Allowed, resolve
from .rerank import ParamCache, merge, rerank, search_one, threads_for
from .store import RowStore
from .tuning import Tuning


class FaissIndex(VectorIndex):
    """Inner-product index on FAISS (Flat, or HNSW / IVF + exact re-ranking), keyed by raw ids.

    Reads (search, vectors, ids, len, in) are safe from any number of threads; writes are
    not. To change an index that others read, `fork` it, change the fork, publish the fork.

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
        self._structure = structures.structure_for(0, config)
        self._faiss: faiss.Index | None = None  # over the store's sealed rows; never changed
        self._trained_rows = 0
        self._tuning: Tuning | None = None
        self._params = ParamCache()  # shared by forks: keyed by structure and beam only

    @property
    def structure(self) -> str:
        """The FAISS structure in use now: "flat", "hnsw" or "ivf"."""
        return self._structure

    @property
    def tuning(self) -> Tuning | None:
        """The tuned search parameter and its measured recall (kind "auto", HNSW or IVF), else None."""
        return self._tuning

    def with_search_setting(self, value: int) -> FaissIndex:
        """A fork that searches with efSearch (HNSW) or nprobe (IVF) = `value`, as if tuned to it.

        For sweeping the recall / speed curve over one built structure (benchmarks); the
        fork's `tuning` records the value with no measured recall (0 queries).

        Raises:
            InvalidArgumentError: `value` is not a positive integer, or the structure is exact.

        Example:
            >>> fast = idx.with_search_setting(32)  # doctest: +SKIP
        """
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"a search setting must be a positive integer, got {value!r}")
        if self._structure == structures.FLAT:
            raise InvalidArgumentError("an exact Flat index has no search setting to change")
        other = self.fork()
        parameter = "nprobe" if self._structure == structures.IVF else "efSearch"
        other._tuning = Tuning(parameter, value, self.config.target_recall, 0.0, 0)
        return other

    def describe(self) -> str:
        """One line naming the structure, its search setting and the recall it was tuned to.

        Example:
            >>> FaissIndex(4).describe()
            'exact Flat (inner product); 0 items'
        """
        return tuning.describe(self._structure, self.config, self._faiss, len(self), self._tuning)

    @property
    def tail_size(self) -> int:
        """Rows added since the structure was built, scored exactly (dead ones included)."""
        return self._store.n_rows - self._store.n_sealed

    @property
    def ids(self) -> list[str]:
        """Ids in insertion order."""
        return self._store.alive_ids()

    def __len__(self) -> int:
        return self._store.n_alive

    def __contains__(self, id: object) -> bool:
        return id in self._store

    def fork(self) -> FaissIndex:
        """A copy sharing the FAISS structure and the vectors; see `VectorIndex.fork`.

        Example:
            >>> nxt = idx.fork(); nxt.add(["c"], vector)  # doctest: +SKIP
        """
        other = copy.copy(self)
        other._store = self._store.fork()
        return other

    def _add(self, ids: list[str], vectors: np.ndarray) -> None:
        self._store.append(ids, vectors)
        if self._needs_rebuild():
            self._rebuild()
        elif self.tail_size > self.config.tail_rows:
            assert self._faiss is not None
            self._faiss = structures.extend(self._faiss, self._store.tail_matrix, self._store.n_sealed)
            self._store.seal()

    def _remove(self, ids: list[str]) -> None:
        self._store.kill(ids)
        if self._store.n_dead > self.config.rebuild_fraction * self._store.n_rows:
            self._rebuild()

    def _vectors(self, ids: list[str]) -> np.ndarray:
        rows = np.array([self._store.row_of(item) for item in ids], np.int64)
        return self._store.vectors_at(rows).reshape(len(ids), self.dim)

    def _needs_rebuild(self) -> bool:
        """Whether a new structure must be built from scratch after rows were appended."""
        if self._faiss is None:
            return True
        if structures.structure_for(self._store.n_alive, self.config) != self._structure:
            return self.config.kind == "auto"
        if self._structure == structures.FLAT:
            return False
        if self._structure == structures.IVF:
            return self._store.n_rows >= 2 * self._trained_rows
        return (
            self.config.storage != "flat"
            and self._trained_rows < self.config.train_rows
            and self._store.n_rows >= 2 * self._trained_rows
        )

    def _rebuild(self) -> None:
        """Compact tombstones, pick the structure for the current size, build a new one.

        Built aside and swapped in at the end, so a failure (out of memory) leaves this
        index as it was before the rebuild.
        """
        store = self._store.fork()
        store.compact()
        structure = structures.structure_for(store.n_alive, self.config)
        tuned = self.config.kind == "auto" and structure != structures.FLAT
        held = tuning.held_out_rows(store.n_rows, self.config) if tuned else 0
        built, fitted = None, None
        if store.n_rows:
            built = structures.build(structure, store.sealed_matrix, self.config, held)
            if tuned:
                fitted = self._tune(store, structure, built, held)
            if held:
                structures.add_rows(built, store.sealed_matrix[store.n_rows - held :], store.n_rows - held)
        self._store, self._structure, self._faiss, self._trained_rows = store, structure, built, store.n_rows
        self._tuning = fitted

    def _tune(self, store: RowStore, structure: str, built: faiss.Index, held: int) -> Tuning:
        """Tune `built` (all of `store`'s rows but the last `held`) on those held-out rows."""
        trial = copy.copy(self)
        trial._store, trial._structure, trial._faiss, trial._tuning = store, structure, built, None
        everything, n_base = resolve(store, IdFilter()), store.n_rows - held

        def search(queries: np.ndarray, k: int, effort: int) -> np.ndarray:
            return trial._search_sealed(queries, k, everything, store.n_sealed, None, effort)[1]

        base, queries = store.sealed_matrix[:n_base], store.sealed_matrix[n_base:]
        if structure == structures.IVF:
            return tuning.tune(search, base, queries, tuning.grid("ivf", built.nlist), "nprobe", self.config)
        return tuning.tune(search, base, queries, tuning.grid("hnsw"), "efSearch", self.config)

    def _search(
        self, queries: np.ndarray, k: int, filter: IdFilter, rerank_factor: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if len(queries) == 1 and filter.include is None and not filter.exclude:
            found = self._search_plain(queries[0], k, rerank_factor)
            if found is not None:
                return found
        allowed = resolve(self._store, filter)
        k = min(k, allowed.count)
        if k == 0:
            empty = (len(queries), 0)
            return np.empty(empty, np.float32), np.empty(empty, object)
        with threads_for(len(queries)):
            if self._structure != structures.FLAT and self._too_wide(k, allowed, rerank_factor):
                scores, labels = self._exact(queries, k, allowed.rows())
            else:
                tail = allowed.in_range(self._store.n_sealed)
                n_tail = int(np.count_nonzero(tail))
                scores, labels = self._search_sealed(queries, k, allowed, allowed.count - n_tail, rerank_factor)
                if n_tail:
                    scores, labels = merge(scores, labels, *self._scan_tail(queries, k, tail), k)
        return scores.astype(np.float32, copy=False), self._store.ids_at(labels)

    def _search_plain(
        self, query: np.ndarray, k: int, rerank_factor: int | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """One unfiltered query on a graph or IVF with no tombstones and no tail (`rerank.search_one`), else None."""
        store, built = self._store, self._faiss
        n = store.n_rows
        if self._structure == structures.FLAT or built is None or store.n_dead or store.n_sealed != n or k > n:
            return None
        if n <= self.config.exact_filter_rows:
            return None  # the general path scores this few rows exactly
        n_candidates, beam = self._plan(k, n, 1.0, rerank_factor)
        if beam >= n and self._structure == structures.HNSW:
            return None
        found = search_one(built, self._params.get(self._structure, beam), query, n_candidates, k, store.sealed_matrix)
        if found is None:
            return None
        return found[0], store.sealed_ids[found[1]]

    def _too_wide(self, k: int, allowed: Allowed, rerank_factor: int | None) -> bool:
        """Whether the filter is so restrictive that scoring the allowed rows beats the structure."""
        if allowed.count <= self.config.exact_filter_rows:
            return True
        if self._structure == structures.IVF:
            return False  # nprobe is capped at the list count; short answers are redone exactly
        _, beam = self._plan(k, allowed.count, allowed.count / self._store.n_rows, rerank_factor)
        return beam >= allowed.count

    def _effort(self) -> int:
        """efSearch (HNSW) or nprobe (IVF): the tuned value, else the config's."""
        if self._tuning is not None:
            return self._tuning.value
        return self.config.nprobe if self._structure == structures.IVF else self.config.ef_search

    def _plan(
        self, k: int, n_allowed: int, selectivity: float, rerank_factor: int | None, effort: int | None = None
    ) -> tuple[int, int]:
        """Candidates to fetch and the beam (efSearch, or nprobe for IVF) for one search."""
        tuned = effort is not None or self._tuning is not None
        effort = self._effort() if effort is None else effort
        n_candidates = min(n_allowed, k * (rerank_factor or self.config.rerank_factor))
        if self._structure == structures.IVF:
            assert self._faiss is not None
            return n_candidates, min(self._faiss.nlist, int(np.ceil(effort / max(selectivity, 1e-9))))
        if tuned:  # the tuned beam also bounds the re-rank: a small beam is a cheap search
            n_candidates = min(n_candidates, max(effort, k))
        return n_candidates, structures.hnsw_beam(n_candidates, selectivity, effort)

    def _search_sealed(
        self, queries: np.ndarray, k: int, allowed: Allowed, n_allowed: int, rerank_factor: int | None,
        effort: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top k of the `n_allowed` allowed sealed rows through the structure; -1 pads short rows."""
        if n_allowed == 0:
            return np.full((len(queries), 0), -np.inf, np.float32), np.full((len(queries), 0), -1, np.int64)
        assert self._faiss is not None
        if self._structure == structures.FLAT:
            params = structures.search_params(structures.FLAT, allowed.selector(), k)
            return self._faiss.search(queries, k, params=params)
        k = min(k, n_allowed)
        n_candidates, beam = self._plan(k, n_allowed, n_allowed / self._store.n_sealed, rerank_factor, effort)
        params = structures.search_params(self._structure, allowed.selector(), beam)
        _, candidates = self._faiss.search(queries, n_candidates, params=params)
        scores, labels = rerank(self._store.sealed_matrix, queries, candidates, k)
        short = np.flatnonzero((labels < 0).any(axis=1))
        if short.size:
            scores[short], labels[short] = self._exact(queries[short], k, allowed.rows(0, self._store.n_sealed))
        return scores, labels

    def _scan_tail(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the tail rows where `allowed`; -1 pads short rows. No gather: one product."""
        scores = queries @ self._store.tail_matrix.T
        if not allowed.all():
            scores[:, ~allowed] = -np.inf
        cols, best = top_k(scores, k)
        labels = cols + self._store.n_sealed
        labels[~np.isfinite(best)] = -1
        return best, labels

    def _exact(self, queries: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the given rows only."""
        cols, best = top_k(queries @ self._store.vectors_at(rows).T, k)
        return best, rows[cols]

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write manifest.json, ids.npy, vectors.npy, alive.npy and index.faiss atomically.

        Rows are saved as they are: tombstones (alive.npy marks them) and the tail (rows
        past the manifest's "sealed_rows", which index.faiss does not hold), so loading
        gives the same structure and the same search results without a rebuild.

        Memory: `load_index` maps vectors.npy read-only instead of reading it, so a loaded
        index holds its FAISS structure (and ids) in RAM and each search reads from the
        mapped file (page cache, or disk when evicted) only the rows it re-ranks. Writes
        that seal the tail or rebuild the structure copy the vectors into RAM again.

        Example:
            >>> idx.save("models/shop/index")  # doctest: +SKIP
        """
        store = self._store
        parts = ["ids.npy", "vectors.npy", "alive.npy"]
        with atomic_dir(directory) as tmp:
            np.save(tmp / "ids.npy", store.ids_at(np.arange(store.n_rows)).astype(np.str_).reshape(-1))
            vectors = np.lib.format.open_memmap(tmp / "vectors.npy", "w+", np.float32, (store.n_rows, self.dim))
            vectors[: store.n_sealed], vectors[store.n_sealed :] = store.sealed_matrix, store.tail_matrix
            vectors.flush()
            del vectors
            np.save(tmp / "alive.npy", store.alive)
            if self._faiss is not None:
                faiss.write_index(self._faiss, str(tmp / "index.faiss"))
                parts.append("index.faiss")
            write_manifest(
                tmp, INDEX_KIND, backend="faiss", dim=self.dim, config=asdict(self.config),
                structure=self._structure, trained_rows=self._trained_rows, sealed_rows=store.n_sealed,
                tuning=None if self._tuning is None else asdict(self._tuning), description=self.describe(),
                parts=parts,
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
        # Mapped, not read: the search reads only the few rows it re-ranks (see `save`).
        vectors = np.load(folder / "vectors.npy", mmap_mode="r", allow_pickle=False)
        alive = np.load(folder / "alive.npy", allow_pickle=False)
        if not (len(ids) == len(vectors) == len(alive)) or vectors.shape[1:] != (index.dim,):
            raise FormatVersionError(
                f"'{folder}' is inconsistent: {len(ids)} ids, vectors of shape {vectors.shape}, "
                f"{len(alive)} alive flags for dim {index.dim}"
            )
        if "index.faiss" in manifest["parts"]:
            index._faiss = faiss.read_index(str(folder / "index.faiss"))
        in_faiss = 0 if index._faiss is None else index._faiss.ntotal
        sealed = int(manifest.get("sealed_rows", len(ids)))  # saves made before the tail sealed every row
        if in_faiss != sealed or sealed > len(ids):
            raise FormatVersionError(
                f"'{folder}' is inconsistent: index.faiss holds {in_faiss} rows, the manifest says "
                f"{sealed} of the {len(ids)} rows in ids.npy"
            )
        index._store.restore(np.array(ids.tolist(), dtype=object), vectors, alive, sealed)
        index._structure = manifest["structure"]
        index._trained_rows = int(manifest["trained_rows"])
        index._tuning = Tuning.from_dict(manifest.get("tuning"))  # None in folders saved before tuning
        return index

    @classmethod
    def from_trained_ivf(
        cls, ids: list[str], vectors: np.ndarray, ivf: faiss.Index, config: IndexConfig
    ) -> FaissIndex:
        """An IVF index (kind "auto" or "ivf") adopting a FAISS IVF that holds `vectors`, label i = `ids[i]`.

        Trained as `structures.build` trains one, it answers like a single-machine build. Kind
        "auto" tunes nprobe on the last `tuning.held_out_rows` rows, held out of a clone of `ivf`
        as a single-machine build holds them out; `ivf` itself is never changed.

        Raises:
            InvalidArgumentError: another kind, not an inner-product IVF, or ids/vectors/IVF disagree.

        Example:
            >>> index = FaissIndex.from_trained_ivf(ids, vectors, merged, IndexConfig(kind="ivf"))  # doctest: +SKIP
        """
        vectors, n = np.ascontiguousarray(vectors, np.float32), len(ids)
        inner_product = isinstance(ivf, faiss.IndexIVF) and ivf.metric_type == faiss.METRIC_INNER_PRODUCT
        if config.kind not in ("auto", "ivf") or not inner_product:
            raise InvalidArgumentError(f"expected kind 'auto' or 'ivf' and an inner-product FAISS IVF, got "
                                       f"{config.kind!r} and {type(ivf).__name__}")
        if vectors.shape != (n, ivf.d) or ivf.ntotal != n or len(set(ids)) != n:
            raise InvalidArgumentError(f"the IVF holds {ivf.ntotal} vectors of dim {ivf.d}; expected one per id "
                                       f"({n} ids, {len(set(ids))} distinct, vectors of shape {vectors.shape})")
        index = cls(ivf.d, config)
        index._store.restore(np.array(ids, dtype=object), vectors, np.ones(n, bool), n)
        if config.kind == "auto":
            held, trial = tuning.held_out_rows(n, config), faiss.clone_index(ivf)
            trial.remove_ids(faiss.IDSelectorRange(n - held, n))
            index._tuning = index._tune(index._store, structures.IVF, trial, held)
        index._structure, index._faiss, index._trained_rows = structures.IVF, ivf, n
        return index

