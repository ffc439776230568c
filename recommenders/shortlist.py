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
        bias: (n_items,) per-item score added to the dot product.
        sample_queries: (n_sample, d) queries like those to come (e.g. a sample of user
            vectors); the probe count is tuned on them. At least one row.
        m: how many items a search is tuned to return.
        target: the recall of the exact top `m` the tuned probe count reaches on the sample.
        seed: k-means seed, so a build is repeatable.

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
        bias: np.ndarray,
        sample_queries: np.ndarray,
        m: int,
        target: float = 0.95,
        seed: int = 0,
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        bias = np.asarray(bias, dtype=np.float32).reshape(-1)
        sample = np.asarray(sample_queries, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0 or bias.shape != (len(vectors),):
            raise InvalidArgumentError(
                f"vectors must be (n_items, d) with n_items > 0 and bias (n_items,), got {vectors.shape} and {bias.shape}"
            )
        if sample.ndim != 2 or sample.shape[1] != vectors.shape[1] or len(sample) == 0:
            raise InvalidArgumentError(f"sample_queries must be (n, {vectors.shape[1]}) with n > 0, got {sample.shape}")
        if not 0.0 < target <= 1.0:
            raise InvalidArgumentError(f"target must be in (0, 1], got {target!r}")
        self.n_items, self.dim, self.m, self.target = len(vectors), vectors.shape[1], int(m), float(target)
        lifted = lift_items(vectors, bias)
        self.n_lists = int(np.clip(self.n_items // 1000, 1, 4096))
        quantizer = faiss.IndexFlatL2(lifted.shape[1])
        self.index = faiss.IndexIVFFlat(quantizer, lifted.shape[1], self.n_lists)
        self.index.cp.seed = seed
        rng = np.random.default_rng(seed)
        train = lifted[rng.choice(self.n_items, min(self.n_items, 64 * self.n_lists), replace=False)]
        self.index.train(train)
        self.index.add(lifted)
        self.n_probe, self.recall = self._tune(sample, lifted)

    def search(self, queries: np.ndarray, m: int) -> np.ndarray:
        """(n_queries, m) item rows, best score first among those found; -1 where the probed lists hold fewer.

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
        return (f"IVF{self.n_lists} inner-product shortlist over {self.n_items:,} items: nprobe {self.n_probe} "
                f"finds {self.recall:.3f} of the exact top {self.m} on the tuning sample")

    def _search(self, queries: np.ndarray, m: int, n_probe: int) -> np.ndarray:
        """Rows found by probing `n_probe` lists, nearest first (which is best score first)."""
        params = faiss.SearchParametersIVF(nprobe=n_probe)
        _, rows = self.index.search(lift_queries(queries), m, params=params)
        return rows

    def _tune(self, sample: np.ndarray, lifted: np.ndarray) -> tuple[int, float]:
        """The fewest probes (doubling) whose mean recall of the exact top m meets the target."""
        m = min(self.m, self.n_items)
        # A lifted query . a lifted item is exactly u . v + b (its last coordinate is 0): the scores, no copy.
        _, exact = faiss.knn(lift_queries(sample), lifted, m, metric=faiss.METRIC_INNER_PRODUCT)
        n_probe = 1
        while True:
            found = self._search(sample, m, n_probe)
            recall = float(np.mean([len(np.intersect1d(f, e)) / m for f, e in zip(found, exact)]))
            if recall >= self.target or n_probe >= self.n_lists:
                return n_probe, recall
            n_probe = min(self.n_lists, 2 * n_probe)


def lift_items(vectors: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[v, b, sqrt(R^2 - |[v, b]|^2)] per item: equal norms R, so L2 order is score order."""
    x = np.hstack([vectors, bias[:, None]]).astype(np.float32)
    norms = np.einsum("ij,ij->i", x, x)
    return np.ascontiguousarray(np.hstack([x, np.sqrt(np.maximum(norms.max() - norms, 0.0))[:, None]]))


def lift_queries(queries: np.ndarray) -> np.ndarray:
    """[u, 1, 0] per query: its L2 distance to a lifted item falls as u . v + b rises."""
    n = len(queries)
    return np.ascontiguousarray(np.hstack([queries, np.ones((n, 1)), np.zeros((n, 1))]), dtype=np.float32)
