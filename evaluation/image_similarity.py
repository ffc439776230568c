""""The same product in another photo": a test set from the emoji set, and retrieval metrics over it.

Two parts, both searched against one gallery, the whole emoji set (every emoji's
image and every skin-tone variant's image, composited on white):

- **variants**: emoji that differ only by skin tone or by gender are several photos of one
  product. The grouping is by code points (`product_key`): the skin-tone variants of an
  emoji join its base; a ZWJ + female/male sign (`200D 2640`/`200D 2642`, optional `FE0F`)
  and a ZWJ + rightwards arrow (`200D 27A1`, Unicode 15.1's "facing right", the mirror
  image of the base) are removed anywhere in the sequence, and a leading man/woman/person (`1F468`/`1F469`/
  `1F9D1`) + ZWJ becomes person when the rest names no other person (so "man farmer",
  "woman farmer" and "farmer" are one product, families and couples stay apart). Every
  image of a group with two or more images is a query; the group's other images are relevant;
  the query's own gallery row is left out of its ranking.
- **augmented**: a fixed-seed sample of gallery images that belong to no group, each
  changed four ways (`AUGMENTATIONS`); its source is the one relevant gallery image.

Metrics per query, averaged over queries: recall@k in the image-retrieval sense (Stanford
Online Products: 1 when at least one relevant image is in the top k) and AP@10 (average
precision over the top 10, divided by min(#relevant, 10)).

Example:
    >>> gallery = load_emoji_gallery(Path(".cache/npm/node_modules/emoji-datasource-google"))  # doctest: +SKIP
    >>> len(gallery.files), len(variant_queries(gallery)[0])  # doctest: +SKIP
    (3786, 2210)
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import InvalidArgumentError
from core.ranking import top_k

EMOJI_IMAGES = Path("img") / "google" / "64"
AUGMENTATIONS = ("flip", "crop", "background", "rotate")
_DROPPED_AFTER_ZWJ = {"2640", "2642", "27A1"}  # female sign, male sign, "facing right"
_ZWJ, _VS16 = "200D", "FE0F"
_LEADING_PEOPLE = {"1F468", "1F469", "1F9D1"}  # man, woman, person
_PEOPLE = _LEADING_PEOPLE | {"1F466", "1F467", "1F9D2", "1F476", "1F474", "1F475", "1F9D3"}  # + boy, girl, child, ...


@dataclass(frozen=True)
class EmojiGallery:
    """The gallery: one row per image file, with the product key its emoji maps to.

    Attributes:
        files: absolute paths of the PNGs.
        codes: the image's code point sequence (`"1F645-200D-2640-FE0F"`, skin tone included).
        names: the emoji's name (a skin-tone variant carries its base's name).
        keys: `product_key` of the base emoji; equal keys are one product.
    """

    files: tuple[Path, ...]
    codes: tuple[str, ...]
    names: tuple[str, ...]
    keys: tuple[str, ...]


def product_key(unified: str) -> str:
    """The gender-neutral code point sequence of an emoji (see the module docstring).

    Example:
        >>> product_key("1F645-200D-2640-FE0F"), product_key("1F469-200D-1F33E"), product_key("1F3C3-200D-27A1-FE0F")
        ('1F645', '1F9D1-200D-1F33E', '1F3C3')
    """
    points = unified.upper().split("-")
    kept: list[str] = []
    i = 0
    while i < len(points):
        if points[i] == _ZWJ and i + 1 < len(points) and points[i + 1] in _DROPPED_AFTER_ZWJ:
            i += 2 + (i + 2 < len(points) and points[i + 2] == _VS16)
            continue
        kept.append(points[i])
        i += 1
    if len(kept) > 2 and kept[0] in _LEADING_PEOPLE and kept[1] == _ZWJ and not _PEOPLE & set(kept[2:]):
        kept[0] = "1F9D1"
    return "-".join(kept)


def load_emoji_gallery(source: Path) -> EmojiGallery:
    """Read an installed `emoji-datasource-google` package: every emoji and skin-tone image that exists.

    Raises:
        InvalidArgumentError: `source` has no `emoji.json` or no images.

    Example:
        >>> load_emoji_gallery(Path("node_modules/emoji-datasource-google")).names[0]  # doctest: +SKIP
        'HASH KEY'
    """
    manifest = Path(source) / "emoji.json"
    if not manifest.is_file():
        raise InvalidArgumentError(f"'{source}' is not an emoji-datasource-google folder: no emoji.json in it")
    rows: list[tuple[Path, str, str, str]] = []
    for entry in sorted(json.loads(manifest.read_text(encoding="utf-8")), key=lambda e: e["sort_order"]):
        key = product_key(entry["unified"])
        name = entry.get("name") or entry["short_name"].upper()
        variants = [(entry["image"], entry["unified"])] + [
            (v["image"], v["unified"]) for _, v in sorted((entry.get("skin_variations") or {}).items())
        ]
        for image, code in variants:
            path = Path(source) / EMOJI_IMAGES / image
            if path.is_file():
                rows.append((path.resolve(), code, name, key))
    if not rows:
        raise InvalidArgumentError(f"no images under '{Path(source) / EMOJI_IMAGES}'")
    files, codes, names, keys = zip(*rows)
    return EmojiGallery(files, codes, names, keys)


def variant_queries(gallery: EmojiGallery) -> tuple[np.ndarray, list[np.ndarray]]:
    """Query rows (every image in a group of two or more) and, per query, the other rows of its group.

    Example:
        >>> rows, relevant = variant_queries(gallery)  # doctest: +SKIP
    """
    groups: dict[str, list[int]] = {}
    for row, key in enumerate(gallery.keys):
        groups.setdefault(key, []).append(row)
    rows, relevant = [], []
    for members in groups.values():
        if len(members) > 1:
            for row in members:
                rows.append(row)
                relevant.append(np.array([m for m in members if m != row], dtype=np.int64))
    return np.array(rows, dtype=np.int64), relevant


def augmentation_sources(gallery: EmojiGallery, n: int, seed: int = 0) -> np.ndarray:
    """`n` gallery rows, drawn with a fixed seed from the images that belong to no variant group.

    Example:
        >>> augmentation_sources(gallery, 300).shape  # doctest: +SKIP
        (300,)
    """
    counts: dict[str, int] = {}
    for key in gallery.keys:
        counts[key] = counts.get(key, 0) + 1
    singles = np.array([row for row, key in enumerate(gallery.keys) if counts[key] == 1], dtype=np.int64)
    if not 0 < n <= len(singles):
        raise InvalidArgumentError(f"n must be in [1, {len(singles)}] (images in no variant group), got {n}")
    return np.sort(np.random.default_rng(seed).choice(singles, size=n, replace=False))


def augment(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """One augmented RGB copy of an RGBA image (transparent pixels end up on white unless `kind` is background).

    - flip: horizontal mirror.
    - crop: a random window of 70-90% of the area (aspect 3:4 to 4:3), anywhere inside.
    - background: composited on a random colour (hue uniform, saturation 0.2-0.6, value 0.75-1).
    - rotate: rotated 5-15 degrees either way and scaled 0.8-1.1 about the centre.

    Example:
        >>> augment(Image.new("RGBA", (64, 64)), "flip", np.random.default_rng(0)).mode
        'RGB'
    """
    image = image.convert("RGBA")
    background = (255, 255, 255)
    if kind == "flip":
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    elif kind == "crop":
        area, aspect = rng.uniform(0.7, 0.9), np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w = min(image.width, round(image.width * np.sqrt(area * aspect)))
        h = min(image.height, round(image.height * np.sqrt(area / aspect)))
        left, top = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
        image = image.crop((left, top, left + w, top + h))
    elif kind == "background":
        rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.2, 0.6), rng.uniform(0.75, 1.0))
        background = tuple(round(255 * c) for c in rgb)
    elif kind == "rotate":
        angle = rng.uniform(5, 15) * rng.choice([-1, 1])
        scale = rng.uniform(0.8, 1.1)
        size = (round(image.width * scale), round(image.height * scale))
        scaled = image.resize(size, Image.Resampling.BICUBIC).rotate(angle, Image.Resampling.BICUBIC)
        image = Image.new("RGBA", image.size, (0, 0, 0, 0))
        image.alpha_composite(scaled.crop(_centred(scaled.size, image.size)), _offset(scaled.size, image.size))
    else:
        raise InvalidArgumentError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTATIONS)}")
    canvas = Image.new("RGBA", image.size, background + (255,))
    return Image.alpha_composite(canvas, image).convert("RGB")


def _centred(inner: tuple[int, int], outer: tuple[int, int]) -> tuple[int, int, int, int]:
    """Box of `inner` that fits centred in `outer` (all of it when smaller)."""
    dx, dy = max(0, (inner[0] - outer[0]) // 2), max(0, (inner[1] - outer[1]) // 2)
    return dx, dy, dx + min(inner[0], outer[0]), dy + min(inner[1], outer[1])


def _offset(inner: tuple[int, int], outer: tuple[int, int]) -> tuple[int, int]:
    """Where a centred `inner` starts in `outer` (0 when larger)."""
    return max(0, (outer[0] - inner[0]) // 2), max(0, (outer[1] - inner[1]) // 2)


def augmented_queries(
    gallery: EmojiGallery, sources: np.ndarray, seed: int = 0
) -> tuple[list[Image.Image], np.ndarray, list[str]]:
    """Every augmentation of every source: images, the source row of each and the augmentation's name.

    Example:
        >>> images, source_rows, kinds = augmented_queries(gallery, augmentation_sources(gallery, 10))  # doctest: +SKIP
    """
    rng = np.random.default_rng(seed)
    images, rows, kinds = [], [], []
    for row in sources:
        with Image.open(gallery.files[row]) as source:
            rgba = source.convert("RGBA")
        for kind in AUGMENTATIONS:
            images.append(augment(rgba, kind, rng))
            rows.append(int(row))
            kinds.append(kind)
    return images, np.array(rows, dtype=np.int64), kinds


def retrieval_metrics(
    queries: np.ndarray,
    gallery: np.ndarray,
    relevant: list[np.ndarray],
    exclude: np.ndarray | None = None,
    k: int = 10,
) -> dict[str, np.ndarray]:
    """Per-query recall@1, recall@k and AP@k of inner-product search over `gallery`.

    Args:
        queries: `(q, d)` query vectors.
        gallery: `(g, d)` gallery vectors.
        relevant: per query, the gallery rows that count as right answers (non-empty).
        exclude: per query, a gallery row left out of its ranking (the query itself), or -1.
        k: depth of recall@k and AP@k.

    Returns:
        `{"recall@1": ..., f"recall@{k}": ..., f"ap@{k}": ...}`, each a float64 array of length q.

    Example:
        >>> m = retrieval_metrics(np.eye(2), np.eye(2), [np.array([0]), np.array([0])], k=1)
        >>> m["recall@1"].tolist()
        [1.0, 0.0]
    """
    if len(queries) != len(relevant) or any(len(r) == 0 for r in relevant):
        raise InvalidArgumentError(f"need one non-empty set of relevant rows per query ({len(queries)} queries)")
    scores = np.asarray(queries, np.float32) @ np.asarray(gallery, np.float32).T
    if exclude is not None:
        hit = np.asarray(exclude) >= 0
        scores[np.flatnonzero(hit), np.asarray(exclude)[hit]] = -np.inf
    cols, _ = top_k(scores, k)
    found = np.array([np.isin(cols[i], relevant[i]) for i in range(len(cols))], dtype=np.float64).reshape(len(cols), -1)
    precision_at = np.cumsum(found, axis=1) / np.arange(1, found.shape[1] + 1)
    n_relevant = np.minimum([len(r) for r in relevant], k)
    return {
        "recall@1": found[:, 0].copy(),
        f"recall@{k}": found.max(axis=1),
        f"ap@{k}": (precision_at * found).sum(axis=1) / n_relevant,
    }


def bootstrap_interval(values: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean, resampling queries.

    Example:
        >>> low, high = bootstrap_interval(np.array([0.0, 1.0, 1.0, 1.0]))
        >>> low <= 0.75 <= high
        True
    """
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def fit_whitening(gallery: np.ndarray, dim: int, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """PCA whitening fitted on gallery vectors: their mean and a `(d, dim)` projection.

    The covariance's top `dim` eigenvalues `lam` are shrunk towards their mean,
    `(1 - shrinkage) * lam + shrinkage * mean(lam)`, before the `lam ** -0.5` scaling:
    0 is full whitening, 1 a plain PCA projection.

    Example:
        >>> mean, projection = fit_whitening(np.random.default_rng(0).normal(size=(50, 8)), 4, 0.5)
        >>> projection.shape
        (8, 4)
    """
    x = np.asarray(gallery, np.float64)
    if not 1 <= dim <= min(x.shape):
        raise InvalidArgumentError(f"whitening dim must be in [1, {min(x.shape)}], got {dim}")
    if not 0.0 <= shrinkage <= 1.0:
        raise InvalidArgumentError(f"whitening shrinkage must be in [0, 1], got {shrinkage}")
    mean = x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False))
    order = np.argsort(values)[::-1][:dim]
    lam = np.maximum(values[order], 1e-12)
    lam = (1.0 - shrinkage) * lam + shrinkage * lam.mean()
    return mean.astype(np.float32), (vectors[:, order] / np.sqrt(lam)).astype(np.float32)


def apply_whitening(vectors: np.ndarray, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Centre, project and L2-normalise rows with a `fit_whitening` result.

    Example:
        >>> apply_whitening(np.ones((2, 8)), *fit_whitening(np.random.default_rng(0).normal(size=(50, 8)), 4, 0.5)).shape
        (2, 4)
    """
    out = (np.asarray(vectors, np.float32) - mean) @ projection
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def l2_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32).

    Example:
        >>> l2_rows(np.array([[3.0, 4.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
