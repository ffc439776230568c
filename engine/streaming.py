"""Indexing in chunks: read a catalog file a chunk at a time, encode it, checkpoint it, resume after a crash.

`read_chunks` reads a .csv/.jsonl/.parquet file `chunk_rows` rows at a time (pandas'
chunked CSV reader, pyarrow's parquet batches, .jsonl line by line; see
`engine.tables.read_table_chunks`), each chunk validated as a `Catalog`, and ids checked
for duplicates across the whole file. `encode_file` encodes chunk after chunk with
`encode_items` (reusing a previous model's vectors for unchanged content). The file is
parsed once: all its chunks are validated before anything is encoded, and those validated
chunks are what is encoded. Each finished chunk is recorded in a `Checkpoint`
(`engine.checkpoint`): its vectors go to a memory-mapped `.npy` file, so the vectors of
finished chunks are never held in memory. A re-run with the same file and settings skips
the chunks already done, unless one of their images changed (size or mtime, recorded per
chunk): from the first such chunk on, chunks are recorded again, the changed ones encoded
again with their unchanged items' vectors reused.

In memory at once: one chunk's rows, texts and image batches; the catalog's metadata
table (every row's fields, normalised), which the engine keeps to answer queries; the
ids and content hashes; at the end, the index built from the memory-mapped vectors.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import ChainMap
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from core.errors import CatalogError, InvalidArgumentError
from encoders.item import ItemEncoder

from .catalog import Catalog
from .checkpoint import Checkpoint, ChunkRecord, image_stamps
from .columns import CatalogColumns
from .config import EngineConfig
from .pipeline import EncodedItems, encode_items
from .tables import read_table_chunks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamingConfig:
    """How `index_catalog` reads and checkpoints a catalog file.

    Attributes:
        chunk_rows: catalog rows read, encoded and checkpointed at a time. A chunk's
            vectors are what a crash can lose; its rows and vectors are what it holds in memory.
        resume: continue from the checkpoint an interrupted run left (same file and settings);
            False ignores it and starts over (`shopvec index --fresh`).

    Example:
        >>> StreamingConfig(chunk_rows=1000).chunk_rows
        1000
    """

    chunk_rows: int = 5_000
    resume: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.chunk_rows, bool) or not isinstance(self.chunk_rows, int) or self.chunk_rows < 1:
            raise InvalidArgumentError(f"StreamingConfig.chunk_rows must be an integer >= 1, got {self.chunk_rows!r}")
        if not isinstance(self.resume, bool):
            raise InvalidArgumentError(f"StreamingConfig.resume must be True or False, got {self.resume!r}")


@dataclass(frozen=True)
class EncodedFile:
    """What `encode_file` made: the whole catalog, the encoded items (vectors memory-mapped) and what was resumed.

    Attributes:
        catalog: every row of the file.
        encoded: ids, vectors (memory-mapped), hashes and skipped items of the whole file.
        resumed: rows in the chunks an interrupted run had finished and taken as they were from its
            checkpoint (a chunk whose images changed since is not counted: it was checked again).
        encoded_now: items this run encoded (not resumed, not reused from the cache).
    """

    catalog: Catalog
    encoded: EncodedItems
    resumed: int
    encoded_now: int


def read_chunks(
    path: str | Path, columns: CatalogColumns | None = None, chunk_rows: int = 5_000, *, allow_outside: bool = False
) -> Iterator[Catalog]:
    """Yield a catalog file as validated `Catalog`s of `chunk_rows` rows; an id repeated anywhere in the file raises.

    Each chunk is checked like `Catalog.from_file` checks a whole file (ids, prices, stock);
    image paths resolve against the file's folder.

    Raises:
        CatalogError: the file cannot be read, a chunk is invalid (naming where the chunk
            starts in the file), or an id repeats, naming both rows and chunks.

    Example:
        >>> sum(len(chunk) for chunk in read_chunks("sample_catalog/items.csv", chunk_rows=100))  # doctest: +SKIP
        512
    """
    path = Path(path)
    first_row: dict[str, int] = {}
    start = 0
    for number, frame in enumerate(read_table_chunks(path, CatalogError, "catalog", chunk_rows)):
        try:
            chunk = Catalog(frame, columns, base_dir=path.parent, source=str(path), allow_outside=allow_outside)
        except CatalogError as exc:
            if number == 0:
                raise
            raise CatalogError(f"{exc} (rows counted within chunk {number}, which starts at row {start} of the file)") from None
        for row, item_id in enumerate(chunk.ids, start):
            seen = first_row.setdefault(item_id, row)
            if seen != row:
                raise CatalogError(
                    f"catalog {str(path)!r} has duplicate id {item_id!r}: rows {seen} (chunk {seen // chunk_rows}) and "
                    f"{row} (chunk {number}); every item needs its own id"
                )
        start += len(chunk)
        yield chunk


def settings(config: EngineConfig, columns: CatalogColumns, streaming: StreamingConfig, allow_outside: bool) -> dict:
    """What a checkpoint's vectors depend on besides the file: a change means no resume."""
    return {"columns": columns.to_dict(), "encoders": asdict(config.encoders), "fusion": asdict(config.fusion),
            "images": asdict(config.images), "chunk_rows": streaming.chunk_rows, "allow_outside": allow_outside}


def encode_file(
    path: str | Path,
    encoders: ItemEncoder,
    config: EngineConfig,
    checkpoint: Checkpoint,
    *,
    columns: CatalogColumns | None = None,
    chunk_rows: int = 5_000,
    cache: Mapping[str, np.ndarray] | None = None,
    show_progress: bool = True,
) -> EncodedFile:
    """Encode a catalog file chunk by chunk, checkpointing each; chunks the checkpoint holds are read, not encoded.

    Args:
        path: the catalog file.
        encoders: the item encoder.
        config: batch size, workers, image limits (`EngineConfig.encoders`, `.images`).
        checkpoint: the run's work folder (`Checkpoint.open`), with the chunks done before.
        columns: the file's column names.
        chunk_rows: rows per chunk; must be the size the checkpoint was made with (its key says so).
        cache: content hash -> vector of a previous model; matching items are not encoded.
        show_progress: draw a progress bar (a resumed run says so on stderr either way).

    Example:
        >>> with Checkpoint.open(out, key) as checkpoint:                     # doctest: +SKIP
        ...     done = encode_file("items.csv", encoders, EngineConfig(), checkpoint)
    """
    start = time.perf_counter()
    path = Path(path)
    columns = columns or CatalogColumns()
    # The file is parsed once: every chunk is validated (ids unique across chunks, prices, paths) before any
    # encoding, so an error in its last row costs seconds of reading, not hours of encoding, and the validated
    # chunks are what is then encoded. They hold the catalog's metadata table, which the engine keeps anyway.
    chunks = list(read_chunks(path, columns, chunk_rows))
    total = sum(len(chunk) for chunk in chunks)
    redo = _recheck(checkpoint, chunks)
    whole = {c.number for c in checkpoint.chunks} | {n for n, (_, changed) in redo.items() if not changed}
    resumed = sum(len(chunks[n]) for n in whole)
    if whole or redo:
        changed = sorted(n for n, (_, c) in redo.items() if c)
        message = f"resuming: {resumed:,} of {total:,} items already encoded ({len(whole)} chunks)" + (
            f"; images changed since in chunk(s) {', '.join(map(str, changed))}: their items are checked again"
            if changed else "")
        log.info(message)
        print(message, file=sys.stderr, flush=True)  # even without a progress bar: a run that skips work says so
    bar = tqdm(total=total, desc="indexing", unit="item", disable=not show_progress, dynamic_ncols=True)
    bar.update(checkpoint.rows_done)
    enc = config.encoders
    for number in range(len(checkpoint.chunks), len(chunks)):
        chunk = chunks[number]
        before, changed = redo.get(number, (None, True))
        if before is not None and not changed:  # after a changed chunk: recorded again as it was
            checkpoint.record(before, checkpoint.vectors(number))
            bar.update(len(chunk))
            continue
        stamps = image_stamps(chunk.image_paths())  # before encoding: an image changed meanwhile is seen next time
        chunk_cache: Mapping[str, np.ndarray] = cache or {}
        if before is not None:  # its items whose content did not change keep their vectors
            kept = dict(zip(before.hashes, checkpoint.vectors(number)))
            chunk_cache = ChainMap(kept, chunk_cache)  # type: ignore[arg-type]
        done = encode_items(chunk, encoders, batch_size=enc.batch_size, num_workers=enc.num_workers, cache=chunk_cache,
                            show_progress=show_progress and encoders.image is not None,  # images: minutes a chunk
                            limits=config.images)
        checkpoint.record(ChunkRecord(number, len(chunk), tuple(done.ids), tuple(done.hashes), tuple(done.skipped),
                                      len(done.ids) - done.reused, done.reused, stamps), done.vectors)
        bar.update(len(chunk))
    bar.close()
    frame = pd.concat([chunk.frame for chunk in chunks], ignore_index=True)
    del chunks  # the chunks' frames: the joined table replaces them
    catalog = Catalog.from_normalised(frame, path.parent.resolve(), str(path), columns=columns)
    records = checkpoint.chunks
    encoded = EncodedItems(
        ids=[i for c in records for i in c.ids],
        vectors=checkpoint.gather(encoders.dim),
        hashes=[h for c in records for h in c.hashes],
        skipped=[s for c in records for s in c.skipped],
        reused=sum(c.reused for c in records),
        seconds=time.perf_counter() - start,
    )
    return EncodedFile(catalog, encoded, resumed, sum(c.encoded for c in records if c.number not in whole))


def _recheck(checkpoint: Checkpoint, chunks: list[Catalog]) -> dict[int, tuple[ChunkRecord, bool]]:
    """Compare the checkpointed chunks with the file's and their images' stamps now.

    From the first chunk whose images changed on, the checkpoint is truncated; returns those
    dropped chunks, each with whether its images changed (then it is encoded again, reusing
    the vectors of its items whose content hash is the same).
    """
    for record in checkpoint.chunks:
        if record.number >= len(chunks) or record.rows != len(chunks[record.number]):
            rows = len(chunks[record.number]) if record.number < len(chunks) else 0
            raise CatalogError(f"checkpoint chunk {record.number} has {record.rows} rows; the file's has {rows} "
                               "(rerun with a fresh start)")
    changed = [r.number for r in checkpoint.chunks if r.images != image_stamps(chunks[r.number].image_paths())]
    if not changed:
        return {}
    dropped = checkpoint.truncate(changed[0])
    return {r.number: (r, r.number in changed) for r in dropped}
