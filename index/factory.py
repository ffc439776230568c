"""Build an index from a config, or load one from its folder whatever its backend."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import FormatVersionError
from core.persistence import read_manifest

from .base import VectorIndex, check_dim
from .config import IndexConfig
from .faiss_index import FaissIndex
from .numpy_index import NumpyIndex

MANIFEST_KIND = "vector_index"
BACKENDS: dict[str, type[FaissIndex] | type[NumpyIndex]] = {"faiss": FaissIndex, "numpy": NumpyIndex}


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
    if config.kind == "numpy":
        return NumpyIndex(dim, config)
    return FaissIndex(dim, config)


def load_index(directory: str | os.PathLike[str]) -> VectorIndex:
    """Load an index saved by `VectorIndex.save`, checking its format version.

    Raises:
        FileNotFoundError: no manifest in `directory`.
        FormatVersionError: another format version, or not a vector index.

    Example:
        >>> index = load_index("models/shop/index")  # doctest: +SKIP
    """
    folder = Path(directory)
    manifest = read_manifest(folder, MANIFEST_KIND)
    backend = manifest.get("backend")
    if backend not in BACKENDS:
        raise FormatVersionError(
            f"'{folder}' holds an index of backend {backend!r}; known backends: {', '.join(BACKENDS)}"
        )
    return BACKENDS[backend]._from_parts(folder, manifest)
