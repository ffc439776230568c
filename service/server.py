"""Run the service: one uvicorn process, requests answered by a pool of threads.

Why one process and threads, not several worker processes:

* The engine's state (catalog, vectors, FAISS index, trained model, recorded events)
  lives in memory. Each worker process would load its own copy: N times the memory,
  and a write (PUT/DELETE /items, POST /events) would reach only the process that
  received it, so the copies would diverge and each would save a different model
  over the others.
* Threads share the one engine safely. A query takes the current immutable
  `EngineState` once and answers from it alone; a write builds the next state and
  publishes it with one reference swap, and writes take turns on the engine's lock.
  Readers never wait for a writer and never see half a write.
* The heavy work releases the GIL: FAISS searches, NumPy and torch run in C++ without
  it, so threads use several cores for queries. FastAPI runs the `def` endpoints in
  its thread pool (anyio's default limiter: 40 at once; more requests wait in the
  event loop), and torch is set to one intra-op thread per request
  (`engine.personalise`), so concurrent requests do not fight over cores.

To use more machines, run one service per machine on a copy of the model folder
with writes sent to one of them (and `shopvec fit`/reload on the others).

Persistence (see `service.persistence`): writes are saved to the folder on
`POST /save`, on shutdown (SIGTERM or Ctrl-C: uvicorn finishes the requests in
flight, then the lifespan saves) and every `save_every_s` seconds when there were
writes. A `kill -9` loses the writes made after the last completed save: at most
`save_every_s` seconds of them (all of them with `save_every_s=0`). The folder itself
is never left half-written: each save publishes a whole new version atomically.
"""

from __future__ import annotations

from pathlib import Path

import uvicorn

from .app import load_app
from .config import ServiceConfig


def serve(folder: str | Path, host: str = "127.0.0.1", port: int = 8000, config: ServiceConfig | None = None) -> None:
    """Load the model folder and serve it over HTTP until stopped (SIGTERM or Ctrl-C saves unsaved writes).

    Args:
        folder: a model folder written by `shopvec index` / `Engine.save`; writes are saved back to it.
        host: the address to listen on; 127.0.0.1 serves this machine only. Set an API key
            (`ServiceConfig.api_key`) before listening on other addresses: writes are open without one.
        port: the TCP port.
        config: key, limits, CORS and save interval (default `ServiceConfig()`).

    Raises:
        ModelNotFoundError, FormatVersionError, DamagedModelError: the folder cannot be loaded
            (before anything listens).

    Example:
        >>> serve("models/sample", port=8000, config=ServiceConfig(api_key="s3cret"))  # doctest: +SKIP
    """
    app = load_app(folder, config or ServiceConfig())
    # One process (workers=1): see the module docstring. Uvicorn's SIGTERM/SIGINT handling
    # runs the app's lifespan shutdown, which saves unsaved writes.
    uvicorn.run(app, host=host, port=port, workers=1, log_level="info", timeout_graceful_shutdown=30)
