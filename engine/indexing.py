"""The catalog indexing job: read -> encode (reusing unchanged items) -> write."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import EngineError
from core.persistence import ModelNotFoundError, check_writable

from .catalog import Catalog, CatalogColumns
from .config import EngineConfig
from .engine import Engine
from .results import Skipped

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

    @property
    def items_per_second(self) -> float:
        """Encoded items per second of encoding time (reused items excluded)."""
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"catalog items : {self.catalog_items:,}",
            f"indexed       : {self.indexed:,} ({self.encoded:,} encoded, {self.reused:,} unchanged and reused)",
            f"skipped       : {len(self.skipped):,}",
        ]
        lines += [f"    {s.item_id}: {s.reason}" for s in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"    ... and {len(self.skipped) - 20} more")
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
) -> tuple[Engine, IndexReport]:
    """Index a catalog file into a model folder; items unchanged since the last run there are not re-encoded.

    A damaged model in `out` is re-encoded and replaced; a folder holding anything
    this library did not write is refused before any work (ModelFolderError).

    Example:
        >>> engine, report = index_catalog("sample_catalog/items.csv", "models/sample")  # doctest: +SKIP
        >>> print(report.summary())                                                      # doctest: +SKIP
    """
    start = time.perf_counter()
    out = Path(out)
    check_writable(out)  # before hours of encoding, not after: a folder of the user's is refused untouched
    catalog = Catalog.from_file(catalog_path, columns)
    previous = None
    try:
        previous = Engine.load(out)
    except ModelNotFoundError:
        pass
    except (EngineError, OSError) as exc:  # a damaged model of ours: re-encode everything and replace it
        log.warning("not reusing the model in %s (%s); encoding everything", out, exc)
    engine = Engine.build(catalog, config, previous=previous, show_progress=show_progress)
    if previous is not None and previous.trained is not None:
        engine.trained = previous.trained  # keep a trained model; refit to learn new items
    engine.save(out)
    encoded = engine.last_build
    report = IndexReport(
        catalog_items=len(catalog),
        indexed=len(engine.index),
        encoded=len(encoded.ids) - encoded.reused,
        reused=encoded.reused,
        skipped=tuple(encoded.skipped),
        seconds=time.perf_counter() - start,
        index_type=engine.index.describe() if hasattr(engine.index, "describe") else type(engine.index).__name__,
        out=str(out),
        alignment=engine.state.fitted.describe() if engine.state.fitted is not None else "off",
    )
    return engine, report
