"""Build an index from a config, or load one from its folder whatever its backend.

Backends are a plain registry of `"module:Class"` (see `core.registry`); each class
rebuilds itself from its saved parts with `from_parts`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.errors import FormatVersionError
from core.persistence import INDEX_KIND, load_folder
from core.registry import resolve

from .base import VectorIndex, check_dim
from .config import IndexConfig

BACKENDS: dict[str, str] = {"faiss": "index.faiss_index:FaissIndex", "numpy": "index.numpy_index:NumpyIndex"}


def create_index(dim: int, config: IndexConfig | None = None) -> VectorIndex:
    """Create an empty index of dimension `dim` as `config.kind` asks.

    Args:
        dim: vector dimension.
        config: index settings; the default is kind "auto" (Flat, then HNSW when large).

    Returns:
        A `NumpyIndex` for kind "numpy", a `FaissIndex` otherwise.

    Raises:
        InvalidArgumentError: dim is not a positive integer.

    Example:
        >>> create_index(8, IndexConfig(kind="numpy")).dim
        8
    """
    check_dim(dim)
    config = config or IndexConfig()
    backend = "numpy" if config.kind == "numpy" else "faiss"
    return resolve(BACKENDS, backend, "index backend")(dim, config)


def load_index(directory: str | os.PathLike[str]) -> VectorIndex:
    """Load an index saved by `VectorIndex.save`, checking its format version.

    Raises:
        FileNotFoundError: no index at `directory` (`core.persistence.ModelNotFoundError`).
        FormatVersionError: another format version, not a vector index, or an unknown backend.

    Example:
        >>> index = load_index("models/shop/index")  # doctest: +SKIP
    """

    def build(folder: Path, manifest: dict[str, Any]) -> VectorIndex:
        backend = manifest.get("backend")
        if backend not in BACKENDS:
            raise FormatVersionError(
                f"'{directory}' holds an index of backend {backend!r}; known backends: {', '.join(BACKENDS)}"
            )
        return resolve(BACKENDS, backend, "index backend").from_parts(folder, manifest)

    return load_folder(directory, INDEX_KIND, build)
