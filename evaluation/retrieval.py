"""Quality of the content vectors: same-category precision@k of nearest-neighbour retrieval.

The protocol is the one `Engine.similar` serves: every item is a query, its k
nearest *other* items by inner product on L2-normalised vectors are retrieved,
and precision is the fraction of them that share the query's category, averaged
over all items. Chance level is what a random ranking scores (`chance_precision`).

Per-modality vectors are encoded once (and cached on disk keyed by a hash of the
encoder and the content), then fused in NumPy with `encoders.fusion.Fusion` for
each weight, so a weight sweep costs no encoding. Baselines: raw pixels (the image
composited on white, resized to 32x32 RGB, flattened, mean-centred) and seeded
random vectors.

Fashion-MNIST is read from the Debian package `dataset-fashion-mnist`
(`/usr/share/datasets/fashion-mnist/*.gz`, idx format).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.errors import EngineError, InvalidArgumentError
from core.ranking import top_k
from encoders.base import Encoder
from encoders.fusion import Fusion, FusionConfig
from encoders.imageio import load_image
from engine.catalog import Catalog

from .features import cached_encode

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
TEXT_SOURCES = ("full", "title")
_FASHION_FILES = {"test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
                  "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")}


class DatasetMissingError(EngineError, FileNotFoundError):
    """An evaluation data set is not installed; the message says how to install it."""


@dataclass(frozen=True)
class RetrievalResult:
    """One row of the results table."""

    dataset: str
    vectors: str
    precision: float
    n_items: int
    k: int
    image_weight: float | None = None  # set on fused rows


@dataclass(frozen=True)
class ModalityVectors:
    """Per-modality unit vectors of a catalog, row-aligned with `labels`; absent rows are zero."""

    labels: np.ndarray
    image: np.ndarray | None
    text: np.ndarray | None
    has_image: np.ndarray
    has_text: np.ndarray
    image_name: str = "image"
    text_name: str = "text"


# ----- metric ---------------------------------------------------------------
def precision_at_k(vectors: np.ndarray, labels: Sequence[Any] | np.ndarray, k: int = 10) -> float:
    """Mean fraction of each item's k nearest other items (inner product, unit rows) sharing its label.

    Rows are L2-normalised here, so any non-zero vectors can be passed.

    Raises:
        InvalidArgumentError: Shapes disagree, k < 1, fewer than k + 1 items, or a zero row.

    Example:
        >>> v = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> precision_at_k(v, ["a", "a", "b", "b"], k=1)
        1.0
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    labels = np.asarray(labels)
    if vectors.ndim != 2 or len(vectors) != len(labels):
        raise InvalidArgumentError(f"vectors {vectors.shape} and labels ({len(labels)},) must have one row per item")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    if len(vectors) <= k:
        raise InvalidArgumentError(f"precision@{k} needs more than {k} items, got {len(vectors)}")
    norms = np.linalg.norm(vectors, axis=1)
    if not np.all(np.isfinite(norms) & (norms > 1e-12)):
        raise InvalidArgumentError(f"{int((~(norms > 1e-12)).sum())} rows are zero or not finite; drop them first")
    unit = vectors / norms[:, None]
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)  # an item is not its own neighbour, as in Engine.similar
    neighbours = top_k(scores, k)[0]
    return float((labels[neighbours] == labels[:, None]).mean())


def chance_precision(labels: Sequence[Any] | np.ndarray) -> float:
    """Expected precision@k of a random ranking: P(another item shares the query's label).

    Example:
        >>> chance_precision(["a", "a", "b", "b"])
        0.3333333333333333
    """
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    n = counts.sum()
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def fusion_sweep(vectors: ModalityVectors, weights: Sequence[float], k: int = 10) -> dict[float, float]:
    """Precision@k of fused vectors for each image weight `w` (text weight `1 - w`).

    Rows with no usable modality at a weight (e.g. text-only items at `w = 1`) are left out.

    Example:
        >>> mv = ModalityVectors(np.array([0, 0, 1, 1]), np.eye(4), np.eye(4)[[0, 0, 1, 1]] + 0.1,
        ...                      np.ones(4, bool), np.ones(4, bool))
        >>> fusion_sweep(mv, [0.0], k=1)
        {0.0: 1.0}
    """
    image_dim = vectors.image.shape[1] if vectors.image is not None else 1
    text_dim = vectors.text.shape[1] if vectors.text is not None else 1
    out: dict[float, float] = {}
    for w in weights:
        fusion = Fusion(image_dim, text_dim, FusionConfig(image_weight=float(w), text_weight=1.0 - float(w)))
        keep = fusion.usable(vectors.has_image, vectors.has_text)
        fused = fusion.fuse(
            None if vectors.image is None else vectors.image[keep],
            None if vectors.text is None else vectors.text[keep],
            vectors.has_image[keep],
            vectors.has_text[keep],
        )
        out[float(w)] = precision_at_k(fused, vectors.labels[keep], k)
    return out


# ----- baselines ------------------------------------------------------------
def raw_pixel_vectors(images: Sequence[Image.Image | str | Path], size: int = 32) -> np.ndarray:
    """Images composited on white, resized to `size`x`size` RGB, flattened, mean-centred, unit rows.

    Example:
        >>> raw_pixel_vectors([Image.new("RGB", (8, 8), c) for c in ("red", "blue")]).shape
        (2, 3072)
    """
    flat = np.stack(
        [np.asarray(load_image(im).resize((size, size), Image.BILINEAR), dtype=np.float32).ravel() for im in images]
    )
    flat -= flat.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return (flat / np.maximum(norms, 1e-12)).astype(np.float32)


def random_vectors(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    """Seeded Gaussian unit vectors: the chance-level baseline.

    Example:
        >>> random_vectors(3, 4, seed=0).shape
        (3, 4)
    """
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# ----- per-modality vectors of a catalog ----------------------------------------
def encode_catalog(
    catalog: Catalog,
    image_encoder: Encoder | None,
    text_encoder: Encoder | None,
    cache_dir: Path | None = None,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    text_source: str = "full",
) -> ModalityVectors:
    """Per-modality vectors of every catalog row (image = `Catalog.image_path`).

    `text_source` "full" encodes `Catalog.text` (title and description), as the
    engine does; "title" encodes the title alone, to see how much of the text
    signal comes from descriptions.
    """
    if text_source not in TEXT_SOURCES:
        raise InvalidArgumentError(f"text_source {text_source!r} is unknown; valid: {', '.join(TEXT_SOURCES)}")
    n = len(catalog)
    labels = np.asarray(catalog.column("category").tolist())
    if text_source == "title":
        texts = [str(catalog.fields(r).get("title") or "") for r in range(n)]
    else:
        texts = [catalog.text(r) for r in range(n)]
    paths = [catalog.image_path(r) for r in range(n)]
    has_text = np.array([bool(t) for t in texts]) if text_encoder is not None else np.zeros(n, bool)
    has_image = np.array([p is not None for p in paths]) if image_encoder is not None else np.zeros(n, bool)

    def encode(encoder: Encoder | None, rows: np.ndarray, items: list[Any], key: str) -> np.ndarray | None:
        if encoder is None:
            return None
        out = np.zeros((n, encoder.dim), dtype=np.float32)
        idx = np.flatnonzero(rows)
        out[idx] = cached_encode(encoder, [items[i] for i in idx], key, cache_dir, batch_size, progress)
        return out

    text_key = _sha1(texts[i] for i in np.flatnonzero(has_text))
    image_key = _sha1(_file_digest(paths[i]) for i in np.flatnonzero(has_image))  # type: ignore[arg-type]
    return ModalityVectors(
        labels=labels,
        image=encode(image_encoder, has_image, paths, image_key),
        text=encode(text_encoder, has_text, texts, text_key),
        has_image=has_image,
        has_text=has_text,
        image_name=image_encoder.name if image_encoder is not None else "image",
        text_name=(text_encoder.name if text_encoder is not None else "text")
        + (", title only" if text_source == "title" else ""),
    )


# ----- Fashion-MNIST ----------------------------------------------------------
def load_fashion_mnist(
    folder: str | Path = FASHION_MNIST_DIR, split: str = "test", n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` images `(n, 28, 28)` uint8 and labels `(n,)` of a Fashion-MNIST split.

    Raises:
        DatasetMissingError: The idx files are absent; the message says how to install them.

    Example:
        >>> images, labels = load_fashion_mnist(n=1000)   # doctest: +SKIP
        >>> images.shape, FASHION_MNIST_CLASSES[labels[0]]  # doctest: +SKIP
        ((1000, 28, 28), 'Ankle boot')
    """
    if split not in _FASHION_FILES:
        raise InvalidArgumentError(f"Fashion-MNIST split {split!r} is unknown; valid: {', '.join(_FASHION_FILES)}")
    folder = Path(folder)
    files = [folder / name for name in _FASHION_FILES[split]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DatasetMissingError(
            f"Fashion-MNIST files not found: {', '.join(missing)}. Install the Debian package with "
            "`apt-get update && apt-get install -y dataset-fashion-mnist` (it puts them in "
            f"{FASHION_MNIST_DIR}), or pass the folder holding them with --fashion-mnist DIR"
        )
    images = _read_idx(files[0], expected_dims=3)
    labels = _read_idx(files[1], expected_dims=1)
    if len(images) != len(labels):
        raise InvalidArgumentError(f"{files[0]} has {len(images)} images but {files[1]} has {len(labels)} labels")
    if n is not None:
        if n < 1 or n > len(images):
            raise InvalidArgumentError(f"n must be in 1..{len(images)} for the {split} split, got {n}")
        images, labels = images[:n], labels[:n]
    return images, labels.astype(np.int64)


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    """Read a gzipped idx file of unsigned bytes (magic 0x0000 08 <ndim>, big-endian sizes)."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0:2] != b"\0\0" or data[2] != 0x08 or data[3] != expected_dims:
        raise InvalidArgumentError(f"{path} is not an idx file of {expected_dims}-d unsigned bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * expected_dims)
    if body.size != int(np.prod(shape)):
        raise InvalidArgumentError(f"{path} declares shape {shape} but holds {body.size} values")
    return body.reshape(shape)


def _sha1(parts: Any) -> str:
    digest = hashlib.sha1()
    for part in parts:
        digest.update(part.encode("utf-8") if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def _file_digest(path: Path) -> bytes:
    return hashlib.sha1(Path(path).read_bytes()).digest()


# ----- whole evaluations ------------------------------------------------------
def catalog_results(
    catalog: Catalog,
    vectors: ModalityVectors,
    weights: Sequence[float],
    k: int = 10,
    seed: int = 0,
    dataset: str = "sample_catalog",
) -> list[RetrievalResult]:
    """Rows for image only, text only, fused at each image weight, raw pixels and random vectors."""
    rows: list[RetrievalResult] = []

    def add(name: str, vecs: np.ndarray, labels: np.ndarray) -> None:
        rows.append(RetrievalResult(dataset, name, precision_at_k(vecs, labels, k), len(labels), k))

    if vectors.image is not None and vectors.has_image.any():
        add(f"image ({vectors.image_name})", vectors.image[vectors.has_image], vectors.labels[vectors.has_image])
    if vectors.text is not None and vectors.has_text.any():
        add(f"text ({vectors.text_name})", vectors.text[vectors.has_text], vectors.labels[vectors.has_text])
    if vectors.image is not None and vectors.text is not None:
        for w, p in fusion_sweep(vectors, weights, k).items():
            n = int(Fusion(1, 1, FusionConfig(w, 1 - w)).usable(vectors.has_image, vectors.has_text).sum())
            rows.append(RetrievalResult(dataset, f"fused w_img={w:g}", p, n, k, image_weight=w))
    paths = [catalog.image_path(r) for r in range(len(catalog))]
    with_image = np.array([p is not None for p in paths])
    if with_image.any():
        add("raw pixels 32x32", raw_pixel_vectors([p for p in paths if p is not None]), vectors.labels[with_image])
    add(f"random (seed {seed})", random_vectors(len(catalog), seed=seed), vectors.labels)
    return rows


def image_results(
    images: Sequence[Image.Image],
    labels: np.ndarray,
    image_vectors: np.ndarray,
    encoder_name: str,
    k: int = 10,
    seed: int = 0,
    dataset: str = "fashion-mnist",
) -> list[RetrievalResult]:
    """Rows for an image encoder, raw pixels and random vectors on a labelled image set."""
    n = len(labels)
    return [
        RetrievalResult(dataset, f"image ({encoder_name})", precision_at_k(image_vectors, labels, k), n, k),
        RetrievalResult(dataset, "raw pixels 32x32", precision_at_k(raw_pixel_vectors(images), labels, k), n, k),
        RetrievalResult(dataset, f"random (seed {seed})", precision_at_k(random_vectors(n, seed=seed), labels, k), n, k),
    ]


def engine_check(catalog: Catalog, vectors: ModalityVectors, config: Any, k: int = 10) -> dict[str, float]:
    """Build an `Engine` with `config` and compare its `similar` precision and vectors to the NumPy path.

    Returns `engine_precision`, `numpy_precision` (fused at `config.fusion`) and
    `max_abs_diff` between the engine's stored vectors and the NumPy-fused ones.
    """
    from engine.engine import Engine  # deferred: the facade pulls in the index and models

    engine = Engine.build(catalog, config, show_progress=False)
    ids = [i for i in catalog.ids if i in engine.index]
    matches = engine.similar_many(ids, k=k)
    label = dict(zip(catalog.ids, vectors.labels.tolist()))
    engine_p = float(np.mean([[label[m.item_id] == label[q] for m in row] for q, row in zip(ids, matches)]))
    fusion = Fusion(vectors.image.shape[1], vectors.text.shape[1], config.fusion)  # type: ignore[union-attr]
    keep = fusion.usable(vectors.has_image, vectors.has_text)
    image, text = vectors.image[keep], vectors.text[keep]  # type: ignore[index]
    fused = fusion.fuse(image, text, vectors.has_image[keep], vectors.has_text[keep])
    kept_ids = [i for i, ok in zip(catalog.ids, keep) if ok]
    diff = float(np.abs(engine.index.vectors(kept_ids) - fused).max()) if kept_ids == ids else float("nan")
    return {
        "engine_precision": engine_p,
        "numpy_precision": precision_at_k(fused, vectors.labels[keep], k),
        "max_abs_diff": diff,
        "n_items": float(len(ids)),
    }
