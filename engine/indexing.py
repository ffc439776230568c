"""The catalog indexing job: read -> encode (reusing unchanged items) -> write, in checkpointed chunks.

The file is read and encoded a chunk at a time (`engine.streaming`), each finished chunk
checkpointed in the model folder's work folder (`engine.checkpoint`), so a run killed
midway continues where it stopped when started again with the same file and settings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import CatalogError, EngineError
from core.persistence import ModelNotFoundError, check_writable
from encoders.fusion import Fusion
from encoders.item import ItemEncoder
from index import VectorIndex

from .catalog import Catalog, CatalogColumns
from .checkpoint import Checkpoint, fingerprint
from .config import EngineConfig
from .engine import Engine
from .events import EventLog
from .fitted import FittedContent
from .pipeline import EncodedItems
from .results import Skipped, skipped_lines
from .state import EngineState
from .streaming import StreamingConfig, encode_file, settings
from .tables import check_table_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexReport:
    """What an indexing run did."""

    catalog_items: int
    indexed: int
    encoded: int
    reused: int
    skipped: tuple[Skipped, ...]
    seconds: float
    index_type: str
    out: str
    alignment: str = "off"
    resumed: int = 0

    @property
    def items_per_second(self) -> float:
        """Encoded items per second of encoding time (reused items excluded)."""
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"catalog items : {self.catalog_items:,}",
            f"indexed       : {self.indexed:,} ({self.encoded:,} encoded, {self.reused:,} unchanged and reused)",
            *([f"resumed       : {self.resumed:,} items were encoded by an interrupted run (its checkpoint)"]
              if self.resumed else []),
            f"skipped       : {len(self.skipped):,}",
        ]
        lines += skipped_lines(self.skipped)
        lines += [
            f"time          : {self.seconds:.1f} s ({self.items_per_second:.1f} items/s encoded)",
            f"index         : {self.index_type}",
            f"alignment     : {self.alignment}",
            f"saved to      : {self.out}",
        ]
        return "\n".join(lines)


def index_catalog(
    catalog_path: str | Path,
    out: str | Path,
    config: EngineConfig | None = None,
    columns: CatalogColumns | None = None,
    show_progress: bool = True,
    streaming: StreamingConfig | None = None,
) -> tuple[Engine, IndexReport]:
    """Index a catalog file into a model folder in chunks; unchanged items are not re-encoded, a killed run resumes.

    The file is read and encoded `streaming.chunk_rows` rows at a time, each finished chunk
    checkpointed in `out/.shopvec-work/`; run again after a crash, it continues after the
    last finished chunk (unless the file or settings changed, or `streaming.resume` is False).
    A damaged model in `out` is re-encoded and replaced; a folder holding anything
    this library did not write is refused before any work (ModelFolderError).

    Example:
        >>> engine, report = index_catalog("sample_catalog/items.csv", "models/sample")  # doctest: +SKIP
        >>> print(report.summary())                                                      # doctest: +SKIP
    """
    start = time.perf_counter()
    out, path = Path(out), Path(catalog_path)
    config, columns, streaming = config or EngineConfig(), columns or CatalogColumns(), streaming or StreamingConfig()
    check_writable(out)  # before hours of encoding, not after: a folder of the user's is refused untouched
    check_table_file(path, CatalogError, "catalog")
    previous = previous_model(out)
    encoders = ItemEncoder.from_config(config.encoders, config.fusion)
    key = fingerprint(path, settings(config, columns, streaming, allow_outside=False))
    created = not out.exists()
    with Checkpoint.open(out, key, resume=streaming.resume) as checkpoint:
        try:
            done = encode_file(path, encoders, config, checkpoint, columns=columns, chunk_rows=streaming.chunk_rows,
                               cache=_cache(previous, config), show_progress=show_progress)
        except BaseException:
            if not checkpoint.chunks:  # nothing worth resuming: leave no trace of this run
                _abandon(checkpoint, out if created else None)
            raise
        try:
            engine = built_engine(done.catalog, done.encoded, encoders.fusion, config, previous, encoders)
        except CatalogError:  # no item could be encoded: a resumed run would end the same way
            _abandon(checkpoint, out if created else None)
            raise
        engine.save(out)
        checkpoint.finish()  # the model is published: the checkpoint has served
    encoded = done.encoded
    report = IndexReport(
        catalog_items=len(done.catalog),
        indexed=len(engine.index),
        encoded=done.encoded_now,
        reused=encoded.reused,
        skipped=tuple(encoded.skipped),
        seconds=time.perf_counter() - start,
        index_type=engine.index.describe() if hasattr(engine.index, "describe") else type(engine.index).__name__,
        out=str(out),
        alignment=engine.state.fitted.describe() if engine.state.fitted is not None else "off",
        resumed=done.resumed,
    )
    return engine, report


def _cache(previous: Engine | None, config: EngineConfig) -> dict[str, np.ndarray]:
    """Content hash -> the previous model's vector, when it encodes the way `config` does."""
    return previous.reusable_vectors(config) if previous is not None else {}


def previous_model(out: Path) -> Engine | None:
    """The model already in `out`, whose vectors, events and trained model a new build keeps; None when
    there is none, or it is damaged (then everything is encoded again and the model replaced)."""
    try:
        return Engine.load(out)
    except ModelNotFoundError:
        return None
    except (EngineError, OSError) as exc:  # a damaged model of ours
        log.warning("not reusing the model in %s (%s); encoding everything", out, exc)
        return None


def built_engine(
    catalog: Catalog, encoded: EncodedItems, fusion: Fusion, config: EngineConfig, previous: Engine | None,
    encoders: ItemEncoder | None = None, *, adopted: tuple[VectorIndex, FittedContent | None] | None = None,
) -> Engine:
    """The engine of a whole encoded catalog, keeping the previous model's events and trained model.

    `adopted`: an index already holding the encoded items (their aligned vectors) and the alignment
    that completed them, used instead of building one (the Ray build's merged IVF).
    """
    encoded.check_any(catalog.source)
    events = previous.events if previous is not None else EventLog()
    if adopted is None:
        state = EngineState.built(catalog, encoded, fusion, config, events)
    else:
        state = EngineState(catalog, adopted[0], dict(zip(encoded.ids, encoded.hashes)), tuple(encoded.skipped),
                            events=events, fitted=adopted[1])
    engine = Engine(config, state, encoders)
    engine.last_build = encoded
    if previous is not None and previous.trained is not None:
        engine.trained = previous.trained  # keep a trained model; refit to learn new items
    return engine


def _abandon(checkpoint: Checkpoint, created: Path | None) -> None:
    """Remove the run's work folder, and the model folder it created if nothing else is in it."""
    checkpoint.finish()
    if created is not None:
        try:
            created.rmdir()
        except OSError:
            pass
