"""Checkpoints of an indexing run: the chunks encoded so far, kept in a work folder the engine owns.

The work folder is `<model folder>/.shopvec-work/` (`core.folders.WORK`), created with a
marker file (`WORK_MARKER`) and used only while it carries it; a folder of that name without
the marker is refused, never written to or removed. It holds, per finished chunk:

    chunk-000003.npy    the chunk's fused vectors, float32 (n, dim); read back memory-mapped
    chunk-000003.json   the chunk's ids, content hashes, skipped items, counts and image stamps
    checkpoint.json     the fingerprint of the run and how many chunks are done

Each file is written to a temporary name, flushed (fsync) and moved into place with
`os.replace`; `checkpoint.json` is replaced last, after the chunk's files and the folder
were flushed. So a kill at any instant leaves the previous checkpoint valid: a chunk's
files without a checkpoint naming them are written again by the next run. A checkpoint
whose fingerprint (the catalog file's bytes, the columns, the encoder, fusion and image
settings, the chunk size) differs from the run's is never resumed. A run holds an
exclusive lock on the marker, so two runs never write one folder. On success the engine
removes its own files, the marker last, and the folder.

Images are not part of the fingerprint (hashing every image's bytes at each resume would read
the whole image set again); each chunk records its images' size and modification time
(`image_stamps`: one `stat` per image, no data read), and a resumed run re-checks the chunks
whose stamps differ (`Checkpoint.truncate`, then `engine.streaming` re-encodes only the items
whose content hash changed). A rewrite that keeps both size and mtime is not seen: `--fresh`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from core.errors import EngineError
from core.folders import WORK, WORK_MARKER, ModelFolderError, fsync_dir

from .results import Skipped

log = logging.getLogger(__name__)

FORMAT = 2  # 2: chunks record their images' stamps
CHECKPOINT = "checkpoint.json"
GATHERED = "vectors.npy"  # every chunk's vectors in one memory-mapped file, written at the end of a run
_OURS = re.compile(r"(chunk-\d{6}\.(npy|json)|checkpoint\.json|vectors\.npy)(\.tmp)?")


class IndexingBusyError(EngineError, RuntimeError):
    """Another indexing run is writing to the same model folder."""


@dataclass(frozen=True)
class ChunkRecord:
    """What one finished chunk left: its rows, the ids with a vector and their hashes, the skipped items."""

    number: int
    rows: int
    ids: tuple[str, ...]
    hashes: tuple[str, ...]
    skipped: tuple[Skipped, ...]
    encoded: int
    reused: int
    images: tuple[tuple[int, int] | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"number": self.number, "rows": self.rows, "ids": list(self.ids), "hashes": list(self.hashes),
                "skipped": [[s.item_id, s.reason] for s in self.skipped], "encoded": self.encoded,
                "reused": self.reused,
                "images": [None if s is None else list(s) for s in self.images]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChunkRecord:
        """The inverse of `to_dict`."""
        return cls(int(data["number"]), int(data["rows"]), tuple(map(str, data["ids"])), tuple(map(str, data["hashes"])),
                   tuple(Skipped(str(i), str(r)) for i, r in data["skipped"]), int(data["encoded"]),
                   int(data["reused"]),
                   tuple(None if s is None else (int(s[0]), int(s[1])) for s in data["images"]))


def image_stamps(paths: Sequence[Path | None]) -> tuple[tuple[int, int] | None, ...]:
    """Each image's (size, mtime in ns): (-1, -1) when it cannot be stat'ed, None for a row without one.

    One `stat` per image and no bytes read, so re-checking every finished chunk on resume stays
    cheap at millions of images (hashing them would read the whole image set again).

    Example:
        >>> image_stamps([None, Path("no/such/file.png")])
        (None, (-1, -1))
    """
    stamps: list[tuple[int, int] | None] = []
    for path in paths:
        if path is None:
            stamps.append(None)
            continue
        try:
            info = os.stat(path)
            stamps.append((int(info.st_size), int(info.st_mtime_ns)))
        except (OSError, ValueError):
            stamps.append((-1, -1))
    return tuple(stamps)


def fingerprint(catalog_path: Path, settings: Mapping[str, Any]) -> str:
    """SHA-256 of the catalog file's bytes and of `settings` (JSON): a checkpoint resumes only under the same.

    Example:
        >>> fingerprint(Path("sample_catalog/items.csv"), {"chunk_rows": 5000})[:8]  # doctest: +SKIP
        '3f1c09aa'
    """
    digest = hashlib.sha256()
    with open(catalog_path, "rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    digest.update(b"\0settings\0" + json.dumps({"format": FORMAT, **settings}, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class Checkpoint:
    """The work folder of one indexing run into a model folder: the chunks done, and writing the next.

    Example:
        >>> with Checkpoint.open(Path("models/shop"), fingerprint(path, settings)) as checkpoint:  # doctest: +SKIP
        ...     checkpoint.record(chunk, vectors)
    """

    def __init__(self, folder: Path, key: str, lock: int, chunks: list[ChunkRecord]) -> None:
        self.folder = folder
        self.key = key
        self._lock = lock
        self.chunks = chunks

    @classmethod
    def open(cls, out: Path, key: str, *, resume: bool = True) -> Checkpoint:
        """Take the work folder of `out` (created with its marker when absent) and read a checkpoint made under `key`.

        A checkpoint made under another key, a damaged one, or any when `resume` is False is
        discarded (only files this engine writes there are removed).

        Raises:
            ModelFolderError: `out/.shopvec-work` exists without the engine's marker; nothing was changed.
            IndexingBusyError: another run holds the folder.
        """
        folder = Path(out) / WORK
        if os.path.lexists(folder) and (folder.is_symlink() or not folder.is_dir()
                                        or (any(folder.iterdir()) and not (folder / WORK_MARKER).is_file())):
            raise ModelFolderError(f"refusing to use '{folder}': it was not written by this library (no "
                                   f"{WORK_MARKER}); nothing was changed (move it away to index into '{out}')")
        folder.mkdir(parents=True, exist_ok=True)
        lock = os.open(folder / WORK_MARKER, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(lock)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise IndexingBusyError(f"another indexing run is writing to '{out}'; wait for it to end") from None
            raise
        os.write(lock, b"shopvec indexing checkpoints\n")
        checkpoint = cls(folder, key, lock, [])
        chunks = checkpoint._read() if resume else None
        if chunks is None:
            checkpoint._discard()
        checkpoint.chunks = chunks or []
        return checkpoint

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def rows_done(self) -> int:
        """Catalog rows in the finished chunks."""
        return sum(c.rows for c in self.chunks)

    def vectors(self, number: int) -> np.ndarray:
        """The vectors of finished chunk `number`, memory-mapped (read-only)."""
        return np.load(self.folder / f"chunk-{number:06d}.npy", mmap_mode="r", allow_pickle=False)

    def record(self, chunk: ChunkRecord, vectors: np.ndarray) -> None:
        """Write a finished chunk, then the checkpoint naming it: a kill at any instant leaves the last valid one."""
        if chunk.number != len(self.chunks):
            raise ValueError(f"chunk {chunk.number} recorded after {len(self.chunks)} chunks; chunks come in order")
        stem = self.folder / f"chunk-{chunk.number:06d}"
        _write(stem.with_suffix(".npy"), lambda fh: np.save(fh, np.ascontiguousarray(vectors, dtype=np.float32)))
        _write(stem.with_suffix(".json"), lambda fh: fh.write(json.dumps(chunk.to_dict()).encode()))
        fsync_dir(self.folder)
        self._commit([*self.chunks, chunk])

    def truncate(self, n: int) -> list[ChunkRecord]:
        """Keep only the first `n` finished chunks (the checkpoint file is replaced first); returns the others.

        Their files stay until the next `record` of their number replaces them, so their vectors
        can still be read (`vectors`) to reuse what did not change.
        """
        dropped = self.chunks[n:]
        if dropped:
            self._commit(self.chunks[:n])
        return dropped

    def _commit(self, chunks: list[ChunkRecord]) -> None:
        """Replace the checkpoint file so that it names `chunks` (whose files are written), then adopt them."""
        state = {"format": FORMAT, "fingerprint": self.key, "chunks": len(chunks), "rows": sum(c.rows for c in chunks)}
        _write(self.folder / CHECKPOINT, lambda fh: fh.write(json.dumps(state).encode()))
        fsync_dir(self.folder)
        self.chunks = chunks

    def gather(self, dim: int) -> np.ndarray:
        """Every finished chunk's vectors in order, in one memory-mapped float32 file of the work folder."""
        n = sum(len(c.ids) for c in self.chunks)
        if n == 0:  # an empty file cannot be memory-mapped
            return np.zeros((0, dim), dtype=np.float32)
        out = open_memmap(self.folder / GATHERED, mode="w+", dtype=np.float32, shape=(n, dim))
        start = 0
        for chunk in self.chunks:
            if chunk.ids:
                part = self.vectors(chunk.number)
                out[start : start + len(part)] = part
                start += len(part)
        out.flush()
        return out

    def finish(self) -> None:
        """Remove the work folder after a successful run: this engine's files, the marker last, then the folder."""
        self._discard()
        try:
            os.unlink(self.folder / WORK_MARKER)
            self.folder.rmdir()  # fails, harmlessly, if someone else's file is in it
        except OSError as exc:
            log.warning("left the work folder '%s' in place: %s", self.folder, exc)
        self.close()

    def close(self) -> None:
        """Release the folder (a checkpoint stays for the next run)."""
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    # ----- private -----------------------------------------------------------------
    def _read(self) -> list[ChunkRecord] | None:
        """The finished chunks of a checkpoint made under this key, or None (no checkpoint, another key, damaged)."""
        try:
            state = json.loads((self.folder / CHECKPOINT).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring the damaged checkpoint in '%s': %s", self.folder, exc)
            return None
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("fingerprint") != self.key:
            log.info("not resuming: the checkpoint in '%s' was made for another catalog file or settings", self.folder)
            return None
        try:
            chunks = [ChunkRecord.from_dict(json.loads((self.folder / f"chunk-{n:06d}.json").read_text()))
                      for n in range(int(state["chunks"]))]
            for number, chunk in enumerate(chunks):
                shape = self.vectors(number).shape
                if chunk.number != number or shape[0] != len(chunk.ids) or len(chunk.hashes) != len(chunk.ids):
                    raise ValueError(f"chunk {number} holds {shape[0]} vectors for {len(chunk.ids)} ids")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the damaged checkpoint in '%s': %s", self.folder, exc)
            return None
        return chunks

    def _discard(self) -> None:
        """Remove this engine's files from the work folder (never another name)."""
        for entry in os.scandir(self.folder):
            if _OURS.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def _write(path: Path, fill: Any) -> None:
    """Write a file under a temporary name, flush it to disk, and move it into place."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fill(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


__all__: Sequence[str] = ["Checkpoint", "ChunkRecord", "IndexingBusyError", "fingerprint", "image_stamps"]
