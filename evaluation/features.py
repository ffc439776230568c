"""Encoder outputs cached on disk, so a rerun of an evaluation does not encode again.

One routine: the vectors are stored as `.npy` under a name derived from a hash of
the encoder and the content, written to a temporary file and renamed into place,
so a crash never leaves a truncated entry under the final name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InvalidArgumentError
from encoders.base import Encoder
from encoders.registry import create_encoder

from . import datasets


def cached_encode(
    encoder: Encoder,
    items: Sequence[Any],
    content_key: str,
    cache_dir: Path | None,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """`encoder.encode(items)` in batches, stored as `.npy` under `cache_dir` keyed by encoder and content.

    Args:
        encoder: any `Encoder`; its name, dim and `pretrained` flag are part of the key.
        items: what `encoder.encode` takes (images, paths or texts).
        content_key: identifies the items' content (e.g. a hash of their bytes).
        cache_dir: folder of the cache; None encodes without caching.
        batch_size: items per `encode` call.
        progress: called with the number of items done after each batch (all at once on a hit).

    Example:
        >>> vectors = cached_encode(encoder, texts, content_key="titles-v1", cache_dir=Path(".cache"))  # doctest: +SKIP
    """
    identity = f"{encoder.name}|{encoder.dim}|{getattr(encoder, 'pretrained', '')}|{content_key}"
    if getattr(encoder, "features", None) is not None:  # image-feature options (pooling, size, ...) change the vectors
        identity += f"|{encoder.features!r}"
    key = hashlib.sha1(identity.encode("utf-8")).hexdigest()[:16]
    path = None if cache_dir is None else Path(cache_dir) / f"{encoder.modality}-{encoder.name}-{key}.npy"

    def encode() -> np.ndarray:
        parts = []
        for start in range(0, len(items), batch_size):
            parts.append(encoder.encode(list(items[start : start + batch_size])))
            if progress is not None:
                progress(len(parts[-1]))
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, encoder.dim), np.float32)

    vectors, hit = _cached(path, encode, (len(items), encoder.dim))
    if hit and progress is not None:
        progress(len(items))
    return vectors


def text_features(
    texts: Sequence[str],
    encoder: str = "minilm-l6",
    cache: str | Path | None = None,
    encode: Callable[[list[str]], np.ndarray] | None = None,
) -> np.ndarray:
    """Item vectors from the engine's text encoder, cached as .npy keyed by a hash of the encoder and texts.

    The encoder is created only when the texts are not cached yet.

    Args:
        texts: one text per item row.
        encoder: the `encoders` registry name (part of the cache key).
        cache: folder of the cache; default `evaluation.datasets.cache_dir() / "features"`.
        encode: encoding function to use instead of the registry's (tests pass a fake).

    Raises:
        InvalidArgumentError: the encoder returned other than one row per text.

    Example:
        >>> text_features(["Toy Story (1995). Genres: Animation."]).shape  # doctest: +SKIP
        (1, 384)
    """
    texts = [str(t) for t in texts]
    digest = hashlib.sha256("\x1f".join([encoder, *texts]).encode("utf-8")).hexdigest()[:16]
    folder = Path(cache) if cache is not None else datasets.cache_dir() / "features"

    def compute() -> np.ndarray:
        vectors = np.asarray((encode or create_encoder(encoder).encode)(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise InvalidArgumentError(f"encoder {encoder!r} returned shape {vectors.shape} for {len(texts)} texts")
        return vectors

    return _cached(folder / f"{encoder}-{digest}.npy", compute, (len(texts), None))[0]


def _cached(
    path: Path | None, compute: Callable[[], np.ndarray], shape: tuple[int, int | None]
) -> tuple[np.ndarray, bool]:
    """The array at `path` if it has `shape` (None: any width), else `compute()` written there; and whether it was a hit."""
    if path is not None and path.is_file():
        cached = np.load(path, allow_pickle=False)
        if cached.ndim == 2 and cached.shape[0] == shape[0] and shape[1] in (None, cached.shape[1]):
            return cached, True
    vectors = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors, allow_pickle=False)
        tmp.replace(path)  # atomic: never half a file under the final name
    return vectors, False
