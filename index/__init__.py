"""Vector indexes: inner-product search over item vectors keyed by raw string ids.

`FaissIndex` is the engine (exact Flat while small, HNSW then IVF with exact re-ranking when
large; kind "auto" tunes their search parameter to a recall target, see `tuning`);
`NumpyIndex` is the brute-force reference it is tested against. Any number of threads may
search one index object; to change an index others read, `fork()` it (cheap: the vectors and
the FAISS structure are shared), change the fork and publish it.

Example:
    >>> import numpy as np
    >>> from index import IdFilter, create_index
    >>> idx = create_index(2)
    >>> idx.add(["a", "b", "c"], np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32))
    >>> idx.search(np.array([1, 0], dtype=np.float32), k=2, filter=IdFilter(exclude=frozenset({"a"})))[1].tolist()
    [['b', 'c']]
"""

from __future__ import annotations

from .base import IdFilter, VectorIndex
from .config import IndexConfig
from .factory import create_index, load_index
from .faiss_index import FaissIndex
from .numpy_index import NumpyIndex

__all__ = ["FaissIndex", "IdFilter", "IndexConfig", "NumpyIndex", "VectorIndex", "create_index", "load_index"]
