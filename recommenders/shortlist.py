"""The items with the largest `query . vector + bias`, found without scoring every item.

A model whose score has a dot-product part (NeuMF's GMF tower, matrix factorisation)
can shortlist its best items by that part alone. Over a million items one such pass
is a million dot products and a top-m over a million scores for every request; this
module answers it from a FAISS inverted file instead, which scans a few hundred
items per probed list.

Inner product is not a distance, so the items are lifted one dimension first
(Bachrach et al. 2014, "Speeding up the Xbox recommender system using a Euclidean
transformation for inner-product spaces"): item `x = [v, b]` becomes
`[v, b, sqrt(R^2 - |x|^2)]` with `R` the largest `|x|`, a query `u` becomes `[u, 1, 0]`,
and then `|q - x|^2 = |u|^2 + 1 + R^2 - 2 (u . v + b)`: the nearest items by L2 are the
best by score. The number of lists probed is tuned, when the shortlist is built, on
sample queries so that the top `m` found matches the exact top `m` to `target` recall.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from core.errors import InvalidArgumentError


class InnerProductShortlist:
    """Approximate top-m of `queries @ vectors.T + bias` from a tuned FAISS IVF-Flat.

    Args:
        vectors: (n_items, d) item vectors.
        bias: (n_items,) per-item score added to the dot product, or None for none.
        sample_queries: (n_sample, d) queries like those to come (e.g. a sample of user
            vectors), or a list of such groups (user vectors, fold-in vectors of histories);
            the probe count is tuned on them, until each group's mean recall meets `target`.
        m: how many items a search is tuned to return.
        target: the recall of the exact top `m` the tuned probe count reaches on the sample.
        seed: k-means seed, so a build is repeatable.
        items_per_list: about how many items share a list (at most 4,096 lists).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> items, users = rng.standard_normal((5000, 8)), rng.standard_normal((20, 8))
        >>> shortlist = InnerProductShortlist(items, np.zeros(5000), users, m=50)
        >>> shortlist.search(users[:2], 50).shape
        (2, 50)
    """

    def __init__(
        self,
        vectors: np.ndarray,
        bias: np.ndarray | None,
        sample_queries: np.ndarray | list[np.ndarray],
        m: int,
        target: float = 0.95,
        seed: int = 0,
        items_per_list: int = 1000,
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        bias = np.zeros(len(vectors), np.float32) if bias is None else np.asarray(bias, dtype=np.float32).reshape(-1)
        groups = [np.asarray(q, dtype=np.float32) for q in (sample_queries if isinstance(sample_queries, list)
                                                             else [sample_queries])]
        if vectors.ndim != 2 or len(vectors) == 0 or bias.shape != (len(vectors),):
            raise InvalidArgumentError(
                f"vectors must be (n_items, d) with n_items > 0 and bias (n_items,), got {vectors.shape} and {bias.shape}"
            )
        for sample in groups:
            if sample.ndim != 2 or sample.shape[1] != vectors.shape[1] or len(sample) == 0:
                want = f"(n, {vectors.shape[1]}) with n > 0"
                raise InvalidArgumentError(f"sample_queries must be {want}, or a list of such, got {sample.shape}")
        if not 0.0 < target <= 1.0:
            raise InvalidArgumentError(f"target must be in (0, 1], got {target!r}")
        if isinstance(items_per_list, bool) or not isinstance(items_per_list, int) or items_per_list < 1:
            raise InvalidArgumentError(f"items_per_list must be a positive integer, got {items_per_list!r}")
        self.n_items, self.dim, self.m, self.target = len(vectors), vectors.shape[1], int(m), float(target)
        # Items whose vector and bias are all zero (an item without interactions, for ALS or LightGCN)
        # score exactly 0 for every query: they stay out of the file, and fill in after it (`_merge`).
        # Hundreds of thousands of identical rows would otherwise crowd the lists that a search probes.
        nonzero = np.any(vectors != 0, axis=1) | (bias != 0)
        self.rows, self.zero_rows = np.flatnonzero(nonzero), np.flatnonzero(~nonzero)
        lifted = lift_items(vectors[self.rows], bias[self.rows])
        self.n_lists = int(np.clip(len(self.rows) // items_per_list, 1, 4096))
        quantizer = faiss.IndexFlatL2(lifted.shape[1])
        self.index = faiss.IndexIVFFlat(quantizer, lifted.shape[1], self.n_lists)
        self.index.cp.seed = seed
        rng = np.random.default_rng(seed)
        if len(lifted):
            self.index.train(lifted[rng.choice(len(lifted), min(len(lifted), 64 * self.n_lists), replace=False)])
            self.index.add(lifted)
        self.radius2 = float(np.einsum("ij,ij->i", lifted[:1], lifted[:1]).sum())  # every lifted row has norm R
        self.n_probe, self.recall = self._tune(groups, lifted)

    def search(self, queries: np.ndarray, m: int) -> np.ndarray:
        """(n_queries, m) item rows, best score first among those found; -1 where too few were found.

        A search for more than the tuned `m` probes proportionally more lists.
        """
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        m = min(int(m), self.n_items)
        return self._search(queries, m, self.probes_for(m))

    def probes_for(self, m: int) -> int:
        """The lists probed for a search of `m` items: the tuned count, scaled up for a larger `m`."""
        return min(self.n_lists, math.ceil(self.n_probe * max(1.0, m / self.m)))

    def describe(self) -> str:
        """One line: size, lists, tuned probes and the recall measured when tuning."""
        zero = f" ({len(self.zero_rows):,} all-zero items kept apart)" if len(self.zero_rows) else ""
        return (f"IVF{self.n_lists} inner-product shortlist over {self.n_items:,} items{zero}: nprobe {self.n_probe} "
                f"finds {self.recall:.3f} of the exact top {self.m} on the tuning sample (its least group)")

    def _search(self, queries: np.ndarray, m: int, n_probe: int) -> np.ndarray:
        """Rows found by probing `n_probe` lists, best score first, the all-zero items merged in."""
        lifted = lift_queries(queries)
        if len(self.rows) == 0:
            return self._merge(np.full((len(queries), 0), -1), np.zeros((len(queries), 0), np.float32), m)
        params = faiss.SearchParametersIVF(nprobe=n_probe)
        distances, found = self.index.search(lifted, min(m, len(self.rows)), params=params)
        rows = np.where(found >= 0, self.rows[np.maximum(found, 0)], -1)
        if len(self.zero_rows) == 0:  # nothing to merge: the scores are not needed
            return rows
        # |q - x|^2 = |q|^2 + R^2 - 2 score, for a lifted query q and a lifted item x.
        return self._merge(rows, (np.einsum("ij,ij->i", lifted, lifted)[:, None] + self.radius2 - distances) / 2, m)

    def _merge(self, rows: np.ndarray, scores: np.ndarray, m: int) -> np.ndarray:
        """The top m of found rows (best first) and the all-zero items, which score 0: the found
        rows scoring >= 0, then the zero items in row order, then the found rows scoring < 0."""
        if len(self.zero_rows) == 0:
            return rows
        out = np.full((len(rows), m), -1, dtype=np.int64)
        for i, (r, s) in enumerate(zip(rows, scores)):
            r, s = r[r >= 0], s[r >= 0]
            merged = np.concatenate([r[s >= 0], self.zero_rows[:m], r[s < 0]])[:m]
            out[i, : len(merged)] = merged
        return out

    def _tune(self, groups: list[np.ndarray], lifted: np.ndarray) -> tuple[int, float]:
        """The fewest probes (doubling) at which each group's mean recall of the exact top m meets the
        target; returns them and the least group's recall."""
        m, sample = min(self.m, self.n_items), np.vstack(groups)
        group = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
        if len(lifted):
            # A lifted query . a lifted item is exactly u . v + b (its last coordinate is 0): the scores, no copy.
            k = min(m, len(lifted))
            scores, found = faiss.knn(lift_queries(sample), lifted, k, metric=faiss.METRIC_INNER_PRODUCT)
            exact = self._merge(self.rows[found], scores, m)
        else:
            exact = self._search(sample, m, 1)  # every item all-zero: the search is exact, in row order
        n_probe = 1
        while True:
            found = self._search(sample, m, n_probe)
            hits = np.array([len(np.intersect1d(f[f >= 0], e)) / m for f, e in zip(found, exact)])
            recall = float(min(hits[group == g].mean() for g in range(len(groups))))
            if recall >= self.target or n_probe >= self.n_lists:
                return n_probe, recall
            n_probe = min(self.n_lists, 2 * n_probe)


def lift_items(vectors: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[v, b, sqrt(R^2 - |[v, b]|^2)] per item: equal norms R, so L2 order is score order."""
    x = np.hstack([vectors, bias[:, None]]).astype(np.float32)
    norms = np.einsum("ij,ij->i", x, x)
    return np.ascontiguousarray(np.hstack([x, np.sqrt(np.maximum(norms.max(initial=0.0) - norms, 0.0))[:, None]]))


def lift_queries(queries: np.ndarray) -> np.ndarray:
    """[u, 1, 0] per query: its L2 distance to a lifted item falls as u . v + b rises."""
    n = len(queries)
    return np.ascontiguousarray(np.hstack([queries, np.ones((n, 1)), np.zeros((n, 1))]), dtype=np.float32)
