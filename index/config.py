"""Configuration of a vector index: which structure, and how it trades speed for recall."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidArgumentError

KINDS = ("auto", "flat", "hnsw", "ivf", "numpy")
STORAGES = ("sq8", "fp16", "flat")
IVF_CODES = ("sq8", "pq")


@dataclass(frozen=True)
class IndexConfig:
    """How a vector index is built and searched; JSON-able with `dataclasses.asdict`.

    Attributes:
        kind: "auto" (exact FAISS Flat while small, HNSW once the index holds more than
            `hnsw_threshold` items, IVF past `ivf_threshold`; the search parameter is tuned
            to `target_recall` whenever the structure is built), "flat" (always exact
            FAISS), "hnsw" (always HNSW, `ef_search` as given), "ivf" (always IVF,
            `nprobe` as given) or "numpy" (the brute-force reference).
        hnsw_threshold: item count above which "auto" switches from Flat to HNSW. The default
            keeps an exact scan near 1 ms per single query at dim 1664 (5k rows are ~33 MB).
        ivf_threshold: item count above which "auto" switches from HNSW to IVF: past it the
            graph's build time and its links (`hnsw_m` * 8 bytes per item) cost more than
            IVF's coarser search (see docs/evaluation.md, "Index at a million items").
        target_recall: recall@10 against exact search that "auto" tunes efSearch / nprobe
            for, in (0, 1]: the cheapest setting whose recall on `tune_queries` of the
            index's own rows (each searched with itself left out) meets it.
        tune_queries: held-out rows to tune on. More narrow the 95% confidence margin the tuner
            adds (1M clustered vectors: efSearch 176 with 500, 160 with 1,000 or 2,000, which
            still met 0.95 on fresh queries), at little build time (docs/evaluation.md, table 10).
        hnsw_m: HNSW graph degree (FAISS `M`).
        ef_construction: HNSW beam width while building.
        ef_search: HNSW beam width while searching; raised to the candidate count when lower.
        layout_rows: an HNSW graph of at least this many rows is laid out in memory by k-means
            cluster, so a search's hops read near memory (`structures.memory_order`); 0 never.
            Smaller graphs (codes and links ~20 MB at dim 128) stay in the CPU caches anyway.
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
        ivf_codes: what IVF stores per item: "sq8" (one byte a dimension) or "pq" (product
            quantiser, `pq_bytes` bytes an item); candidates are re-ranked exactly.
        ivf_lists: IVF inverted lists (0: about 4 * sqrt(n), capped so each list gets 39
            training rows, FAISS's minimum for a stable k-means).
        nprobe: IVF lists scanned per query (kind "ivf"; "auto" tunes its own).
        pq_bytes: PQ sub-quantisers (bytes per item); 0 picks dim / 4, rounded down to a
            divisor of dim.
        train_rows: rows sampled to train the scalar quantiser and the IVF lists.
        seed: seed of the training sample.

    Example:
        >>> IndexConfig(kind="hnsw", ef_search=256).ef_search
        256
        >>> IndexConfig(kind="auto", target_recall=0.9).target_recall
        0.9
    """

    kind: str = "auto"
    hnsw_threshold: int = 5_000
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    layout_rows: int = 50_000
    storage: str = "sq8"
    ivf_threshold: int = 2_000_000
    ivf_codes: str = "sq8"
    ivf_lists: int = 0
    nprobe: int = 16
    pq_bytes: int = 0
    target_recall: float = 0.95
    tune_queries: int = 1_000
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
        if self.ivf_codes not in IVF_CODES:
            raise InvalidArgumentError(
                f"IVF codes {self.ivf_codes!r} are unknown; valid codes: {', '.join(IVF_CODES)}"
            )
        if (
            isinstance(self.target_recall, bool)
            or not isinstance(self.target_recall, (int, float))
            or not 0.0 < self.target_recall <= 1.0
        ):
            raise InvalidArgumentError(f"target_recall must be in (0, 1], got {self.target_recall!r}")
        for name in ("hnsw_m", "ef_construction", "ef_search", "rerank_factor", "train_rows", "nprobe", "tune_queries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
        for name in ("hnsw_threshold", "layout_rows", "ivf_threshold", "ivf_lists", "pq_bytes", "exact_filter_rows", "tail_rows", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgumentError(f"{name} must be a non-negative integer, got {value!r}")
        if not 0.0 < self.rebuild_fraction <= 1.0:
            raise InvalidArgumentError(f"rebuild_fraction must be in (0, 1], got {self.rebuild_fraction!r}")
