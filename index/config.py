"""Configuration of a vector index: which structure, and how it trades speed for recall."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidArgumentError

KINDS = ("auto", "flat", "hnsw", "numpy")
STORAGES = ("sq8", "fp16", "flat")


@dataclass(frozen=True)
class IndexConfig:
    """How a vector index is built and searched; JSON-able with `dataclasses.asdict`.

    Attributes:
        kind: "auto" (exact FAISS Flat while small, HNSW once the index holds more than
            `hnsw_threshold` items), "flat" (always exact FAISS), "hnsw" (always HNSW) or
            "numpy" (the brute-force reference).
        hnsw_threshold: item count above which "auto" switches from Flat to HNSW. The default
            keeps an exact scan near 1 ms per single query at dim 1664 (5k rows are ~33 MB).
        hnsw_m: HNSW graph degree (FAISS `M`).
        ef_construction: HNSW beam width while building.
        ef_search: HNSW beam width while searching; raised to the candidate count when lower.
        storage: what the HNSW graph scores candidates with: "sq8" (8-bit scalar quantiser,
            a quarter of the memory traffic of float32), "fp16" or "flat" (float32). Candidates
            are always re-ranked with the exact float32 vectors.
        rerank_factor: HNSW fetches `rerank_factor * k` candidates that are then re-scored
            exactly, which absorbs quantisation error and graph misses.
        exact_filter_rows: a filtered search that allows at most this many items skips the
            graph and scores the allowed rows exactly.
        rebuild_fraction: removed items stay as tombstones until they exceed this fraction of
            the stored rows; the structure is then compacted and rebuilt.
        tail_rows: items added since the structure was last built are scored exactly (a
            "tail" beside it) until more than this many, then folded into a new structure (a
            clone extended with them; the old one is never changed, so forks share it). Higher
            makes writes cheaper on average and every search slower: each query scans the tail
            (a full tail of 1,024 rows adds ~0.35 ms to a query at dim 1664, ~0.04 ms at dim 64).
        train_rows: rows sampled to train the scalar quantiser.
        seed: seed of the training sample.

    Example:
        >>> IndexConfig(kind="hnsw", ef_search=256).ef_search
        256
    """

    kind: str = "auto"
    hnsw_threshold: int = 5_000
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    storage: str = "sq8"
    rerank_factor: int = 10
    exact_filter_rows: int = 4096
    rebuild_fraction: float = 0.25
    tail_rows: int = 1024
    train_rows: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgumentError(f"index kind {self.kind!r} is unknown; valid kinds: {', '.join(KINDS)}")
        if self.storage not in STORAGES:
            raise InvalidArgumentError(
                f"HNSW storage {self.storage!r} is unknown; valid storages: {', '.join(STORAGES)}"
            )
        for name in ("hnsw_m", "ef_construction", "ef_search", "rerank_factor", "train_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
        for name in ("hnsw_threshold", "exact_filter_rows", "tail_rows", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgumentError(f"{name} must be a non-negative integer, got {value!r}")
        if not 0.0 < self.rebuild_fraction <= 1.0:
            raise InvalidArgumentError(f"rebuild_fraction must be in (0, 1], got {self.rebuild_fraction!r}")
