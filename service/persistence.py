"""When the service writes its engine back to the model folder.

The engine's state lives in memory; the folder on disk is the copy that survives a
restart. The service saves it (`Engine.save`: a new version published atomically, so
a crash during a save leaves the previous one whole):

* on `POST /save`,
* on shutdown (SIGTERM, SIGINT, the end of the ASGI lifespan),
* every `ServiceConfig.save_every_s` seconds in a background thread,

each time only when there were writes (PUT/DELETE /items, POST /events) since the
last save. What a `kill -9` (or a power cut) loses is therefore exactly the writes
made after the last completed save: at most `save_every_s` seconds of them, all of
them when the background save is off. Uploaded image files are written before the
item that uses them, so a crash can leave an unused upload behind, never an item
whose image is missing.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from core.errors import InvalidArgumentError
from engine import Engine

log = logging.getLogger(__name__)


class Persister:
    """Counts the writes to an engine and saves it to its folder when some are unsaved.

    Example:
        >>> persister = Persister(engine, "models/sample", save_every_s=60)   # doctest: +SKIP
        >>> engine.remove(["sku-1"]); persister.wrote(); persister.save()     # doctest: +SKIP
        True
    """

    def __init__(self, engine: Engine, folder: str | Path | None, save_every_s: float = 60.0) -> None:
        self.engine = engine
        self.folder = Path(folder) if folder is not None else None
        self.save_every_s = float(save_every_s)
        self._writes = 0  # writes published so far
        self._saved = 0  # of which the last completed save holds at least this many
        self._count_lock = threading.Lock()
        self._save_lock = threading.Lock()  # one save at a time (the engine's file lock covers other processes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        """Record one write; call it after the write was published to the engine."""
        with self._count_lock:
            self._writes += 1

    @property
    def unsaved(self) -> int:
        """Writes made since the last completed save."""
        return self._writes - self._saved

    def save(self, force: bool = False) -> bool:
        """Save the engine to the folder if there were writes since the last save (or `force`); True if it saved.

        Raises:
            InvalidArgumentError: the service runs without a model folder.
            ModelFolderError: the folder holds something this library did not write.
        """
        if self.folder is None:
            raise InvalidArgumentError("this service was started without a model folder, so there is nowhere to save")
        with self._save_lock:
            # Read the count before the engine takes its snapshot: a write that lands in
            # between is in the snapshot yet still counted unsaved, so it is saved again
            # next time (never the other way round).
            target = self._writes
            if target == self._saved and not force:
                return False
            self.engine.save(self.folder)
            self._saved = target
            log.info("saved %s (%d write(s))", self.folder, target)
            return True

    # ----- the background save ------------------------------------------------
    def start(self) -> None:
        """Start saving every `save_every_s` seconds in a daemon thread (nothing when 0 or without a folder)."""
        if self.save_every_s <= 0 or self.folder is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="shopvec-autosave", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.save_every_s):
            try:
                self.save()
            except Exception:  # noqa: BLE001 - keep serving; the next tick or the shutdown save tries again
                log.exception("background save of %s failed; the writes stay in memory", self.folder)

    def close(self) -> None:
        """Stop the background save and save what is unsaved (the shutdown path)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.folder is not None:
            self.save()
