"""Indexing past one machine: embed a catalog with Ray Data, build IVF shards in parallel, write a model folder.

The job has the three stages of `index_catalog`, spread over a Ray cluster:

1. **Read** on the driver: `Catalog.from_file` validates the file (ids, columns, image
   paths), and the columns the encoders read go to Ray Data as a dataset of row blocks.
2. **Encode** on an actor pool (`map_batches` with a callable class): each actor loads the
   encoders once (`ItemEncoder.from_config`) and runs the single-machine `encode_items` on
   each batch, so an item that fails (a missing or unreadable image) is skipped with the
   same reason as on one machine, never crashing the job. The driver gathers ids, vectors,
   content hashes and skip reasons in catalog order and shows one progress bar.
3. **Write**: the IVF coarse quantiser is trained ONCE, on the driver, on a seeded sample of
   the vectors (`engine.ivf_shards`); items are sharded by a hash of their id and each shard
   is filled in parallel as a Ray task from the serialised trained index, then the shards are
   merged (`merge_from`) into one IVF (`RayBuild.ivf`). When `EngineConfig.index` asks for an
   IVF (kind "ivf", or "auto" at a size where it picks IVF), the quantiser is trained as a
   single-machine `FaissIndex` trains it and the merged IVF IS the folder's index (tuned as
   one machine tunes it, `FaissIndex.from_trained_ivf`); for the other kinds the folder's index
   is built on the driver from the gathered vectors and the merged IVF comes back beside it.
   The folder is written like any other (`Engine.save`, published atomically), so
   `Engine.load` reads it.

Ray is imported only here, lazily: the rest of the product runs without it
(`pip install 'shopvec[cluster]'` adds it). See docs/scaling.md for running on a real cluster
and for the design at 10M-100M items.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from core.errors import EngineError, InvalidArgumentError
from core.persistence import check_writable
from encoders.fusion import Fusion
from index import create_index
from index.faiss_index import FaissIndex

from .catalog import Catalog, CatalogColumns
from .config import EngineConfig
from .engine import Engine
from .fitted import FittedContent
from .indexing import built_engine, previous_model
from .ivf_shards import IvfPlan, build_ivf_on_ray, shards_make_the_index, train_for_index
from .pipeline import EncodedItems
from .results import Skipped, skipped_lines

log = logging.getLogger(__name__)

# The catalog columns the encoders read; the others stay on the driver.
_ENCODED_COLUMNS = ("id", "title", "description", "image")
INSTALL_HINT = "pip install 'shopvec[cluster]'"


class ClusterError(EngineError, RuntimeError):
    """Ray is missing, the cluster cannot be reached, or a job on it failed."""


@dataclass(frozen=True)
class ClusterConfig:
    """Where and how wide a Ray build runs.

    Attributes:
        address: the Ray cluster, as `ray.init` takes it: "auto" (the cluster this machine
            belongs to, started with `ray start`), "ray://HOST:10001" (Ray Client, needs
            `ray[client]`), "HOST:6379", or "local"/None: a local cluster started for this
            run and shut down after it. A process that already called `ray.init` uses that
            session whatever the address.
        num_actors: encoder actors (each loads the encoders once).
        cpus_per_actor: CPUs Ray reserves for each actor; also its torch thread budget.
        batch_size: most items an actor encodes per call (one Ray Data batch; smaller when the
            catalog would otherwise leave an actor idle).
        shards: IVF shards filled in parallel and then merged.
        ivf_lists: IVF inverted lists; 0 picks about 4 * sqrt(n), at most n / 39.
        train_rows: vectors sampled, on the driver, to train the coarse quantiser once.
        seed: seed of that sample and of the k-means.
        local_cpus: CPUs of a local cluster (None: all of this machine's).
        object_store_mb: object store of a local cluster in MB (None: Ray's default, 30% of RAM).

    Example:
        >>> ClusterConfig(address="auto", num_actors=8).num_actors
        8
    """

    address: str | None = None
    num_actors: int = 2
    cpus_per_actor: float = 1.0
    batch_size: int = 64
    shards: int = 2
    ivf_lists: int = 0
    train_rows: int = 20_000
    seed: int = 0
    local_cpus: int | None = None
    object_store_mb: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_actors", "batch_size", "shards", "train_rows"):
            _check_int(name, getattr(self, name), 1)
        for name in ("ivf_lists", "seed"):
            _check_int(name, getattr(self, name), 0)
        for name in ("local_cpus", "object_store_mb"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        c = self.cpus_per_actor
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
            raise InvalidArgumentError(f"ClusterConfig.cpus_per_actor must be a number > 0, got {c!r}")
        a = self.address
        if a is not None and (not isinstance(a, str) or not _valid_address(a)):
            raise InvalidArgumentError(
                f"ClusterConfig.address {a!r} is not a Ray address; expected 'local', 'auto', "
                "'ray://HOST:PORT' or 'HOST:PORT'"
            )


@dataclass(frozen=True)
class RayReport:
    """What a Ray build did; `summary()` gives the lines `shopvec index --ray` prints."""

    catalog_items: int
    indexed: int
    skipped: tuple[Skipped, ...]
    seconds: float
    encode_seconds: float
    actors: int
    shards: int
    ivf: str
    index_type: str
    out: str
    cluster: str

    @property
    def items_per_second(self) -> float:
        """Catalog items per second of the encoding stage."""
        return self.catalog_items / self.encode_seconds if self.encode_seconds > 0 else 0.0

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"cluster       : {self.cluster} ({self.actors} encoder actors)",
            f"catalog items : {self.catalog_items:,}",
            f"indexed       : {self.indexed:,}",
            f"skipped       : {len(self.skipped):,}",
        ]
        lines += skipped_lines(self.skipped)
        lines += [
            f"time          : {self.seconds:.1f} s (encoding {self.encode_seconds:.1f} s, "
            f"{self.items_per_second:.1f} items/s)",
            f"IVF shards    : {self.shards} merged into {self.ivf}",
            f"index         : {self.index_type}",
            f"saved to      : {self.out}",
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class RayBuild:
    """The result of `build_on_ray`: the engine (as saved), the merged IVF and the report.

    `ivf` is a FAISS IVF whose label i is `engine.last_build.ids[i]` (catalog order). When the
    engine's index is an IVF, it is the structure inside `engine.index` (search through the engine).
    """

    engine: Engine
    ivf: Any
    report: RayReport


def build_on_ray(
    catalog_path: str | Path,
    out: str | Path,
    config: EngineConfig | None = None,
    columns: CatalogColumns | None = None,
    *,
    cluster: ClusterConfig | None = None,
    show_progress: bool = True,
) -> RayBuild:
    """Index a catalog file into a model folder on a Ray cluster (the Python side of `shopvec index --ray`).

    The catalog file and its images must be readable at the same path from the driver and
    from every Ray node (shared storage); the model folder is written by the driver.
    Every item is encoded (the single-machine build's reuse of unchanged vectors is not
    used here); a model trained in `out` and its recorded events are kept, as `index_catalog` does.

    Args:
        catalog_path: .csv, .jsonl or .parquet file (see `Catalog.from_file`).
        out: model folder to write; a folder holding anything this library did not write is
            refused before any work.
        config: encoders, fusion, index (default `EngineConfig()`).
        columns: your column names (default: the fields' own names).
        cluster: where and how wide (default `ClusterConfig()`: a local cluster, 2 actors, 2 shards).
        show_progress: one progress bar over the items as the actors finish them.

    Returns:
        A `RayBuild`: the engine, the merged IVF of every vector and the report.

    Raises:
        ClusterError: Ray is not installed, the cluster cannot be reached, or the job failed.
        CatalogError: the catalog is invalid, or no item could be encoded.
        ModelFolderError: `out` holds something this library did not write.

    Example:
        >>> build = build_on_ray("sample_catalog/items.csv", "models/sample",       # doctest: +SKIP
        ...                      cluster=ClusterConfig(address="auto", num_actors=8))
        >>> print(build.report.summary())                                          # doctest: +SKIP
    """
    start = time.perf_counter()
    config = config or EngineConfig()
    cluster = cluster or ClusterConfig()
    out = Path(out)
    check_writable(out)
    catalog = Catalog.from_file(catalog_path, columns)
    previous = previous_model(out)
    with ray_session(cluster) as where:
        encoded, dims, encode_seconds = _encode_on_ray(catalog, config, cluster, show_progress)
        encoded.check_any(catalog.source)
        fusion = Fusion(*dims, config=config.fusion)  # the fusion alone: the driver never loads the encoders
        # The vectors the index will hold: aligned first when the engine aligns, as `EngineState.built` does.
        fitted = FittedContent.start(config.alignment, fusion)
        vectors = encoded.vectors
        if fitted is not None:
            fitted, vectors = fitted.absorb(create_index(fusion.dim, config.index), encoded.ids, vectors)
        adopt = shards_make_the_index(config.index, len(encoded.ids))
        plan = IvfPlan(shards=cluster.shards, lists=cluster.ivf_lists, train_rows=cluster.train_rows, seed=cluster.seed)
        trained = train_for_index(vectors, config.index) if adopt else None
        ivf = build_ivf_on_ray(encoded.ids, vectors, plan, trained)
    merged = FaissIndex.from_trained_ivf(encoded.ids, vectors, ivf, config.index) if adopt else None
    adopted = None if merged is None else (merged, fitted)
    engine = built_engine(catalog, encoded, fusion, config, previous, adopted=adopted)
    engine.save(out)
    index = engine.index
    codes = "SQ8" if isinstance(ivf, faiss.IndexIVFScalarQuantizer) else "PQ"
    report = RayReport(
        catalog_items=len(catalog), indexed=len(index), skipped=tuple(encoded.skipped),
        seconds=time.perf_counter() - start, encode_seconds=encode_seconds, actors=cluster.num_actors,
        shards=cluster.shards, ivf=f"IVF{ivf.nlist},{codes} of {ivf.ntotal:,} vectors"
        + (" (the folder's index)" if adopt else ""),
        index_type=index.describe() if hasattr(index, "describe") else type(index).__name__,
        out=str(out), cluster=where,
    )
    return RayBuild(engine, ivf, report)


@contextmanager
def ray_session(cluster: ClusterConfig) -> Iterator[str]:
    """Connect to the cluster (or start a local one) for the `with` block; yields a description of it.

    A session this process started earlier (`ray.init`) is used as it is and left running;
    one started here is shut down at the end, also on error.

    Raises:
        ClusterError: Ray is not installed, or the address cannot be reached (the message
            names the address and how to start a cluster).

    Example:
        >>> with ray_session(ClusterConfig(address="local", local_cpus=2)) as where:  # doctest: +SKIP
        ...     print(where)
    """
    ray = import_ray()
    if ray.is_initialized():
        yield "the running Ray session"
        return
    address = None if cluster.address in (None, "local") else cluster.address
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is None:
        options["num_cpus"] = cluster.local_cpus
        if cluster.object_store_mb is not None:
            options["object_store_memory"] = cluster.object_store_mb * 1024 * 1024
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        hint = ("start one with `ray start --head` on this machine, or use --ray local for a cluster of this "
                "machine alone") if address == "auto" else "check the address (`ray status` on the head prints it)"
        if address is not None and address.startswith("ray://") and "ray[client]" in str(exc):
            hint = "Ray Client addresses need `pip install 'ray[client]'`; or run on the head node with --ray auto"
        raise ClusterError(f"cannot connect to the Ray cluster at {cluster.address!r}: {exc}; {hint}") from exc
    try:
        yield "a local Ray cluster" if address is None else f"the Ray cluster at {address!r}"
    finally:
        ray.shutdown()


def import_ray() -> Any:
    """The `ray` module with Ray Data, or ClusterError saying how to install it.

    Example:
        >>> ray = import_ray()  # doctest: +SKIP
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ClusterError(f"building on a Ray cluster needs Ray Data ({exc}); install it with {INSTALL_HINT}") from exc
    return ray


class EncodeActor:
    """A Ray Data actor: loads the encoders once, then encodes batches of catalog rows.

    Each batch is rebuilt as a small `Catalog` (same folder, same image rules) and goes
    through the single-machine `encode_items`, so vectors, hashes and skip reasons are those
    of a build on one machine.
    """

    def __init__(self, config: EngineConfig, base_dir: str, source: str, allow_outside: bool, threads: int) -> None:
        import torch

        from encoders.item import ItemEncoder

        from .display import quiet_model_loading

        quiet_model_loading()  # one progress bar, the driver's; not one per actor and model
        torch.set_num_threads(threads)
        encoders = config.encoders
        if any(f.name == "threads" for f in dataclasses.fields(encoders)):
            encoders = dataclasses.replace(encoders, threads=threads)
        self.encoder = ItemEncoder.from_config(encoders, config.fusion)
        self.config = config
        self.where = (base_dir, source, allow_outside)

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        from .pipeline import encode_items

        base_dir, source, allow_outside = self.where
        rows = batch["row"].to_numpy(np.int64)
        frame = batch.drop(columns=["row"]).reset_index(drop=True)
        part = Catalog(frame, base_dir=base_dir, source=source, allow_outside=allow_outside)
        encoded = encode_items(part, self.encoder, batch_size=self.config.encoders.batch_size, num_workers=0,
                               show_progress=False, limits=self.config.images)
        position = {item: i for i, item in enumerate(part.ids)}
        n, dim = len(frame), self.encoder.dim
        vectors = np.zeros((n, dim), np.float32)
        hashes, reasons = [""] * n, [""] * n
        for item, vector, digest in zip(encoded.ids, encoded.vectors, encoded.hashes):
            vectors[position[item]], hashes[position[item]] = vector, digest
        for skipped in encoded.skipped:
            reasons[position[skipped.item_id]] = skipped.reason or "not encoded"
        fusion = self.encoder.fusion
        return {"row": rows, "id": np.array(part.ids, dtype=object), "vector": vectors,
                "hash": np.array(hashes, dtype=object), "reason": np.array(reasons, dtype=object),
                "dims": np.tile(np.array([fusion.image_dim, fusion.text_dim], np.int64), (n, 1))}


def _encode_on_ray(
    catalog: Catalog, config: EngineConfig, cluster: ClusterConfig, show_progress: bool
) -> tuple[EncodedItems, tuple[int, int], float]:
    """Stage two on the actor pool: the results in catalog order, the encoders' (image, text) widths, the seconds."""
    import ray.data

    start = time.perf_counter()
    frame = catalog.frame
    frame = frame[[c for c in _ENCODED_COLUMNS if c in frame.columns]].copy()
    frame.insert(0, "row", np.arange(len(frame), dtype=np.int64))
    # One block per batch, small enough that every actor gets work from the first batch on.
    size = max(1, min(cluster.batch_size, -(-len(frame) // cluster.num_actors)))
    blocks = [frame.iloc[i : i + size] for i in range(0, len(frame), size)]
    threads = max(1, int(cluster.cpus_per_actor))
    with warnings.catch_warnings():
        # Ray 2.60 marks ray_remote_args_fn as deprecated but has no named parameter for max_restarts yet.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        dataset = ray.data.from_pandas(blocks).map_batches(
            EncodeActor,
            batch_size=size,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=cluster.num_actors),
            num_cpus=cluster.cpus_per_actor,
            ray_remote_args_fn=_actor_options,
            fn_constructor_kwargs={"config": config, "base_dir": str(catalog.base_dir), "source": catalog.source,
                                   "allow_outside": catalog.allow_outside, "threads": threads},
        )
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars
    context.enable_progress_bars = False  # ours is one bar over items; Ray's would draw one per operator
    ray_log = logging.getLogger("ray.data")
    level = ray_log.level
    ray_log.setLevel(logging.ERROR)  # Ray Data logs its progress (and that its bars are off) as warnings
    parts: list[dict[str, np.ndarray]] = []
    bar = tqdm(total=len(frame), desc=f"encoding on {cluster.num_actors} Ray actors", unit="item",
               disable=not show_progress, dynamic_ncols=True)
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            parts.append(batch)
            bar.update(len(batch["row"]))
    except Exception as exc:
        if isinstance(exc, EngineError):
            raise
        raise ClusterError(f"the Ray encoding job on {catalog.source!r} failed: {exc}") from exc
    finally:
        bar.close()
        context.enable_progress_bars = saved
        ray_log.setLevel(level)
    dims = parts[0]["dims"][0]
    return _gathered(parts, catalog), (int(dims[0]), int(dims[1])), time.perf_counter() - start


def _actor_options() -> dict[str, Any]:
    """An actor that dies fails the job with its error, rather than restarting from arguments Ray may have freed."""
    return {"max_restarts": 0}


def _gathered(parts: list[dict[str, np.ndarray]], catalog: Catalog) -> EncodedItems:
    """The actors' batches joined into one `EncodedItems` in catalog order, as `encode_items` returns it."""
    rows = np.concatenate([p["row"] for p in parts])
    if len(rows) != len(catalog) or len(np.unique(rows)) != len(catalog):
        raise ClusterError(f"the Ray job returned {len(rows):,} rows for the {len(catalog):,} catalog items")
    order = np.argsort(rows, kind="stable")
    ids = np.concatenate([p["id"] for p in parts])[order].tolist()
    vectors = np.concatenate([p["vector"] for p in parts])[order].astype(np.float32, copy=False)
    hashes = np.concatenate([p["hash"] for p in parts])[order].tolist()
    reasons = np.concatenate([p["reason"] for p in parts])[order].tolist()
    ok = np.array([not r for r in reasons], dtype=bool)
    return EncodedItems(
        ids=[i for i, good in zip(ids, ok) if good],
        vectors=np.ascontiguousarray(vectors[ok]),
        hashes=[h for h, good in zip(hashes, ok) if good],
        skipped=[Skipped(i, r) for i, r in zip(ids, reasons) if r],
    )


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgumentError(f"ClusterConfig.{name} must be an integer >= {low}, got {value!r}")


def _valid_address(address: str) -> bool:
    """'local', 'auto', 'ray://HOST:PORT' or 'HOST:PORT'."""
    if address in ("local", "auto"):
        return True
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":")
    return bool(host) and port.isdigit() and " " not in rest
