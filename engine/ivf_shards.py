"""An IVF index built in shards: the coarse quantiser trained once, the shards filled in parallel, then merged.

Training is the only step that needs to see the whole collection, and only a sample of it:
k-means on `train_rows` vectors gives the inverted lists' centroids (and the 8-bit scalar
quantiser its ranges). The trained, empty index is serialised once; each shard deserialises
it and adds its own items (items are assigned to shards by a hash of their id, so an item's
shard never depends on the order of the catalog), and the filled shards are merged list by
list (`merge_from`). Because every shard uses the same trained quantiser, the merged index is
the index one machine would have built by adding every vector to it: same lists, same codes.

When the model folder's index is itself an IVF (`IndexConfig` kind "ivf", or "auto" at a
size where it picks IVF), the empty index is trained by `train_for_index` exactly as
`FaissIndex` trains one on one machine (`index.structures.build`: the same list count,
codes, sample and seed), and the merged shards become the folder's index
(`FaissIndex.from_trained_ivf`), so the shards' work is the index that is served.

The other way to serve shards, without merging, is one Ray actor per shard with a fan-out
search (each answers its top k, the caller keeps the best k of the union); see
docs/scaling.md. This module merges, because the engine serves one index per model folder.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from core.errors import InvalidArgumentError
from index import structures
from index.config import IndexConfig


@dataclass(frozen=True)
class IvfPlan:
    """How the sharded IVF is built.

    Attributes:
        shards: how many shards are filled in parallel.
        lists: inverted lists; 0 picks about 4 * sqrt(n), at most n / 39 (FAISS's k-means
            wants 39 training points per centroid).
        train_rows: vectors sampled to train the coarse quantiser.
        seed: seed of that sample and of the k-means.

    Example:
        >>> IvfPlan(shards=4).lists_for(1_000_000)
        4000
    """

    shards: int = 2
    lists: int = 0
    train_rows: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("shards", 1), ("lists", 0), ("train_rows", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidArgumentError(f"IvfPlan.{name} must be an integer >= {low}, got {value!r}")

    def lists_for(self, n: int) -> int:
        """Inverted lists for `n` vectors."""
        wanted = self.lists or int(round(4 * math.sqrt(max(n, 1))))
        return max(1, min(wanted, n // 39)) if not self.lists else max(1, min(wanted, n))


def shard_of(ids: Sequence[str], shards: int) -> np.ndarray:
    """The shard of each item: CRC-32 of its id modulo `shards` (stable across processes and runs).

    Example:
        >>> shard_of(["a", "d", "h"], 2).tolist()
        [1, 0, 1]
    """
    return np.array([zlib.crc32(str(i).encode("utf-8")) % shards for i in ids], dtype=np.int64)


def train_ivf(vectors: np.ndarray, plan: IvfPlan) -> faiss.Index:
    """An empty inner-product IVF (SQ8 codes) whose quantisers are trained on a seeded sample of `vectors`.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
        >>> index = train_ivf(x, IvfPlan(lists=4)); index.is_trained, index.ntotal
        (True, 0)
    """
    n, dim = vectors.shape
    if n == 0:
        raise InvalidArgumentError("an IVF needs at least one vector to train on, got none")
    lists = plan.lists_for(n)
    index = faiss.index_factory(dim, f"IVF{lists},SQ8", faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = plan.seed
    index.cp.min_points_per_centroid = 1  # small shops: fewer than 39 points a list is allowed, not warned about
    sample = vectors
    if n > plan.train_rows:
        rng = np.random.default_rng(plan.seed)
        sample = vectors[np.sort(rng.choice(n, plan.train_rows, replace=False))]
    index.train(np.ascontiguousarray(sample, np.float32))
    return index


def shards_make_the_index(config: IndexConfig, n: int) -> bool:
    """Whether an index of `config` over `n` items is an IVF, so the merged shards can be that index.

    Example:
        >>> shards_make_the_index(IndexConfig(kind="ivf"), 10), shards_make_the_index(IndexConfig(), 10)
        (True, False)
    """
    return config.kind in ("auto", "ivf") and structures.structure_for(n, config) == structures.IVF


def train_for_index(vectors: np.ndarray, config: IndexConfig) -> faiss.Index:
    """An empty IVF trained on `vectors` as a single-machine `FaissIndex` of `config` trains its own.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
        >>> index = train_for_index(x, IndexConfig(kind="ivf")); index.is_trained, index.ntotal, index.nlist
        (True, 0, 10)
    """
    if len(vectors) == 0:
        raise InvalidArgumentError("an IVF needs at least one vector to train on, got none")
    return structures.build(structures.IVF, np.ascontiguousarray(vectors, np.float32), config, held_out=len(vectors))


def fill_shard(trained: np.ndarray, vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One shard: the serialised trained index with `vectors` added under `labels`, serialised again.

    Example:
        >>> shard = fill_shard(faiss.serialize_index(trained), x[:10], np.arange(10))  # doctest: +SKIP
    """
    index = faiss.deserialize_index(trained)
    if len(vectors):
        index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.ascontiguousarray(labels, np.int64))
    return faiss.serialize_index(index)


def merge_shards(shards: Sequence[np.ndarray]) -> faiss.Index:
    """The serialised shards merged into one IVF, list by list; labels are kept.

    Example:
        >>> merged = merge_shards([fill_shard(t, x[:5], np.arange(5)), fill_shard(t, x[5:], np.arange(5, 10))])  # doctest: +SKIP
    """
    if not shards:
        raise InvalidArgumentError("merge_shards needs at least one shard, got none")
    merged = faiss.deserialize_index(shards[0])
    for blob in shards[1:]:
        merged.merge_from(faiss.deserialize_index(blob), 0)
    return merged


def build_ivf_on_ray(
    ids: Sequence[str], vectors: np.ndarray, plan: IvfPlan, trained: faiss.Index | None = None
) -> faiss.Index:
    """Train on the driver, fill `plan.shards` shards as parallel Ray tasks, merge; label i is `ids[i]`.

    Needs a running Ray session (`engine.distributed.ray_session`). `trained`: an empty trained
    IVF to fill instead of training one by `plan` (e.g. `train_for_index`).

    Example:
        >>> ivf = build_ivf_on_ray(ids, vectors, IvfPlan(shards=4))  # doctest: +SKIP
    """
    import ray

    blob = ray.put(faiss.serialize_index(train_ivf(vectors, plan) if trained is None else trained))
    shard = shard_of(ids, plan.shards)
    task = ray.remote(num_cpus=1)(fill_shard)
    labels = np.arange(len(ids), dtype=np.int64)
    refs = [task.remote(blob, vectors[shard == s], labels[shard == s]) for s in range(plan.shards)]
    return merge_shards(ray.get(refs))


def build_ivf_locally(ids: Sequence[str], vectors: np.ndarray, plan: IvfPlan) -> faiss.Index:
    """The same index on one machine: one trained quantiser, every vector added at once (the reference).

    Example:
        >>> build_ivf_locally(["a", "b"], np.eye(2, dtype=np.float32), IvfPlan(lists=1)).ntotal
        2
    """
    index = train_ivf(vectors, plan)
    index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.arange(len(ids), dtype=np.int64))
    return index
