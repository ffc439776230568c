"""A learned alignment between the image and the text vectors, fitted on the catalog's own items.

No CLIP-style weights are available here, so the image space (EfficientNet) and the
text space (MiniLM) are unrelated: a text query cannot reach an item that has only a
photo. `ModalityAlignment` learns, from the items that have both, two linear maps
by ridge regression (closed form, least squares):

    text -> image:  predict_image(t) = unit((t - mean_t) W_ti + mean_i)
    image -> text:  predict_text(i)  = unit((i - mean_i) W_it + mean_t)

Each ridge strength is chosen on a held-out share of the pairs (`AlignmentConfig.holdout`,
fixed seed) from a grid relative to the data's scale (`lambda = alpha * trace(X'X) / rank`):
the alpha whose predictions rank each held-out item's true partner highest among the
held-out targets (mean percentile rank; 0.5 is chance), then refitted on all pairs. Fewer
pairs than `min_pairs` is refused (`AlignmentError`): the engine then runs unaligned.

`complete` uses it on fused vectors (`encoders.fusion`): a row with one modality gets the
other slot predicted, weighted `predicted_weight` times the fusion weight of that modality
(an item's own vector always wins: only an empty slot is filled). Queries go through the
same function, so a text query gets a predicted image slot and an image query a predicted
text slot. Saved as `.npy` arrays and a JSON file; read back with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InvalidArgumentError

from .fusion import Fusion

# Codes of `complete`'s second result: which slot of a row was predicted.
NOT_PREDICTED, IMAGE_PREDICTED, TEXT_PREDICTED = 0, 1, 2
MODALITY_OF_CODE = {IMAGE_PREDICTED: "image", TEXT_PREDICTED: "text"}
_ARRAYS = ("text_mean", "image_mean", "text_to_image", "image_to_text")


class AlignmentError(InvalidArgumentError):
    """The alignment cannot be fitted (too few items with both an image and a text); the engine runs unaligned."""


@dataclass(frozen=True)
class AlignmentConfig:
    """Whether and how the engine aligns image and text vectors at index time.

    Attributes:
        align: fit the alignment when the engine has both encoders; False keeps the
            unaligned vectors (results exactly as without this feature).
        predicted_weight: weight of a predicted slot relative to the fusion weight of its
            modality, in (0, 1]; measured in docs/evaluation.md (`scripts/evaluate_alignment.py`).
        min_pairs: fewest items with both modalities to fit on; below it the engine runs unaligned.
        max_pairs: at most this many pairs (a seeded sample) are fitted on, bounding the fit's time.
        ridge: grid of ridge strengths, relative to the mean eigenvalue of the inputs' covariance.
        holdout: share of the pairs held out to choose the ridge strength.
        refit_growth: refit when the items with both modalities grew by this share since the last fit.
        seed: seed of the holdout split and of the sample.

    Example:
        >>> AlignmentConfig(predicted_weight=0.5).min_pairs
        50
    """

    align: bool = True
    # Measured (docs/evaluation.md, scripts/evaluate_alignment.py): the best same-category P@10 of text
    # queries over the whole sample catalog and the smallest loss on similar(); 0.5-1 surface more
    # image-only items in mixed results but rank complete items' neighbours worse.
    predicted_weight: float = 0.25
    min_pairs: int = 50
    max_pairs: int = 5000
    ridge: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    holdout: float = 0.2
    refit_growth: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.align, (bool, np.bool_)):
            raise InvalidArgumentError(f"AlignmentConfig.align must be True or False, got {self.align!r}")
        for name, low, high in (("predicted_weight", 0.0, 1.0), ("holdout", 0.0, 0.5)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
                raise InvalidArgumentError(f"AlignmentConfig.{name} must be a number in ({low:g}, {high:g}], got {value!r}")
        for name, low in (("min_pairs", 10), ("max_pairs", 10), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidArgumentError(f"AlignmentConfig.{name} must be an integer >= {low}, got {value!r}")
        if self.max_pairs < self.min_pairs:
            raise InvalidArgumentError(f"AlignmentConfig.max_pairs ({self.max_pairs}) is below min_pairs ({self.min_pairs})")
        growth = self.refit_growth
        if isinstance(growth, bool) or not isinstance(growth, (int, float)) or not (math.isfinite(growth) and growth > 0):
            raise InvalidArgumentError(f"AlignmentConfig.refit_growth must be a finite number > 0, got {growth!r}")
        ridge = self.ridge
        if isinstance(ridge, (str, bytes)) or not hasattr(ridge, "__iter__"):
            raise InvalidArgumentError(f"AlignmentConfig.ridge must be a list of numbers > 0, got {ridge!r}")
        values = tuple(ridge)
        if not values or not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) and a > 0
                                 for a in values):
            raise InvalidArgumentError(f"AlignmentConfig.ridge must be a non-empty list of finite numbers > 0, got {ridge!r}")
        object.__setattr__(self, "ridge", tuple(float(a) for a in values))  # a JSON list comes back a tuple


@dataclass(frozen=True)
class ModalityAlignment:
    """Two ridge maps, text -> image and image -> text, fitted on items that have both.

    Attributes:
        text_mean / image_mean: the pairs' mean unit vectors (the maps work on centred inputs).
        text_to_image: `(text_dim, image_dim)` float32.
        image_to_text: `(image_dim, text_dim)` float32.
        info: how it was fitted: pairs, chosen ridge strengths, held-out percentile ranks.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> image = rng.normal(size=(200, 8)); text = image @ rng.normal(size=(8, 6))
        >>> alignment = ModalityAlignment.fit(image, text)
        >>> alignment.predict_image(text[:2]).shape
        (2, 8)
    """

    text_mean: np.ndarray
    image_mean: np.ndarray
    text_to_image: np.ndarray
    image_to_text: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def image_dim(self) -> int:
        """Length of the image vectors."""
        return int(self.image_mean.shape[0])

    @property
    def text_dim(self) -> int:
        """Length of the text vectors."""
        return int(self.text_mean.shape[0])

    @classmethod
    def fit(cls, image: np.ndarray, text: np.ndarray, config: AlignmentConfig | None = None) -> ModalityAlignment:
        """Fit both maps on row-aligned pairs (each row one item's image and text vector; normalised here).

        Raises:
            AlignmentError: fewer than `config.min_pairs` pairs.
            InvalidArgumentError: shapes disagree or a row is zero or not finite.
        """
        config = config or AlignmentConfig()
        image, text = _unit(image, "image"), _unit(text, "text")
        if len(image) != len(text):
            raise InvalidArgumentError(f"image ({len(image)} rows) and text ({len(text)} rows) must pair row by row")
        n = len(image)
        if n < config.min_pairs:
            raise AlignmentError(
                f"{n} items have both an image and a text; the alignment needs at least {config.min_pairs} "
                "(AlignmentConfig.min_pairs)"
            )
        rng = np.random.default_rng(config.seed)
        if n > config.max_pairs:
            keep = np.sort(rng.choice(n, size=config.max_pairs, replace=False))
            image, text = image[keep], text[keep]
        order = rng.permutation(len(image))
        n_val = max(2, int(round(config.holdout * len(image))))
        val, train = order[:n_val], order[n_val:]
        maps, info = {}, {"pairs": n, "fitted_on": len(image), "holdout": n_val}
        for name, x, y in (("text_to_image", text, image), ("image_to_text", image, text)):
            path = _ridge(x[train], y[train], config.ridge)
            scores = {a: _percentile_rank(path[a].predict(x[val]), y[val]) for a in config.ridge}
            best = max(scores, key=lambda a: (scores[a], a))  # ties: the stronger ridge
            maps[name] = _ridge(x, y, (best,))[best]
            info[name] = {"alpha": best, "holdout_percentile_rank": scores[best],
                          "grid": {str(a): s for a, s in scores.items()}}
        t2i, i2t = maps["text_to_image"], maps["image_to_text"]
        return cls(text_mean=t2i.x_mean, image_mean=t2i.y_mean, text_to_image=t2i.weights,
                   image_to_text=i2t.weights, info=info)

    def predict_image(self, text: np.ndarray) -> np.ndarray:
        """Predicted unit image vectors `(n, image_dim)` for text vectors `(n, text_dim)`."""
        return _RidgeMap(self.text_mean, self.image_mean, self.text_to_image).predict(text)

    def predict_text(self, image: np.ndarray) -> np.ndarray:
        """Predicted unit text vectors `(n, text_dim)` for image vectors `(n, image_dim)`."""
        return _RidgeMap(self.image_mean, self.text_mean, self.image_to_text).predict(image)

    def save(self, folder: str | Path) -> None:
        """Write the arrays as `.npy` and `info` as `alignment.json` into `folder` (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            np.save(folder / f"{name}.npy", np.ascontiguousarray(getattr(self, name), dtype=np.float32), allow_pickle=False)
        (folder / "alignment.json").write_text(json.dumps(self.info, indent=1, sort_keys=True))

    @classmethod
    def load(cls, folder: str | Path) -> ModalityAlignment:
        """Read what `save` wrote (no pickles); shapes are checked against each other.

        Raises:
            InvalidArgumentError: a file is missing, or the arrays' shapes disagree, naming them.
        """
        folder = Path(folder)
        try:
            arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in _ARRAYS}
            info = json.loads((folder / "alignment.json").read_text())
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(f"alignment in '{folder}' cannot be read: {exc}") from None
        text_dim, image_dim = arrays["text_mean"].shape[0], arrays["image_mean"].shape[0]
        expected = {"text_mean": (text_dim,), "image_mean": (image_dim,), "text_to_image": (text_dim, image_dim),
                    "image_to_text": (image_dim, text_dim)}
        for name, shape in expected.items():
            if arrays[name].shape != shape or arrays[name].dtype != np.float32 or not np.isfinite(arrays[name]).all():
                raise InvalidArgumentError(
                    f"alignment part '{folder / (name + '.npy')}' has shape {arrays[name].shape} and dtype "
                    f"{arrays[name].dtype}; expected finite float32 of shape {shape}"
                )
        if not isinstance(info, dict):
            raise InvalidArgumentError(f"'{folder / 'alignment.json'}' should hold a JSON object")
        return cls(**arrays, info=info)


def complete(
    fusion: Fusion, alignment: ModalityAlignment, vectors: np.ndarray, predicted_weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fused rows with their empty slot filled by the alignment's prediction.

    Args:
        fusion: the fusion that made `vectors` (its dims must match the alignment's).
        alignment: the fitted maps.
        vectors: `(n, fusion.dim)` fused unit rows, as `Fusion.fuse` or `Fusion.query` made them.
        predicted_weight: a predicted slot's weight relative to its modality's fusion weight.

    Returns:
        The completed `(n, dim)` float32 unit rows (rows with both slots unchanged) and an
        `(n,)` int8 array: `IMAGE_PREDICTED`, `TEXT_PREDICTED` or `NOT_PREDICTED`.

    Example:
        >>> out, predicted = complete(fusion, alignment, fusion.query(text=text_vec), 0.5)  # doctest: +SKIP
        >>> predicted.tolist()                                                              # doctest: +SKIP
        [1]
    """
    if (fusion.image_dim, fusion.text_dim) != (alignment.image_dim, alignment.text_dim):
        raise InvalidArgumentError(
            f"fusion dims (image {fusion.image_dim}, text {fusion.text_dim}) differ from the alignment's "
            f"(image {alignment.image_dim}, text {alignment.text_dim})"
        )
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    image, text, has_image, has_text = fusion.split(vectors)
    codes = np.zeros(len(vectors), dtype=np.int8)
    fill_image = has_text & ~has_image & (fusion.image_weight > 0)
    fill_text = has_image & ~has_text & (fusion.text_weight > 0)
    if not (fill_image.any() or fill_text.any()):
        return vectors.copy(), codes
    if fill_image.any():
        image[fill_image] = alignment.predict_image(text[fill_image])
    if fill_text.any():
        text[fill_text] = alignment.predict_text(image[fill_text])
    codes[fill_image], codes[fill_text] = IMAGE_PREDICTED, TEXT_PREDICTED
    rows = fill_image | fill_text
    out = vectors.copy()  # rows with both modalities are left bit for bit as they were
    out[rows] = fusion.fuse(image[rows], text[rows], (has_image | fill_image)[rows], (has_text | fill_text)[rows],
                            image_factor=np.where(fill_image, predicted_weight, 1.0)[rows],
                            text_factor=np.where(fill_text, predicted_weight, 1.0)[rows])
    return out, codes


def without_predicted(fusion: Fusion, vectors: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Inverse of `complete`: rows with their predicted slot emptied again, as the encoders made them.

    Example:
        >>> raw = without_predicted(fusion, *complete(fusion, alignment, fused, 0.5))  # doctest: +SKIP
    """
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    codes = np.asarray(codes)
    if not (codes != NOT_PREDICTED).any():
        return vectors.copy()
    rows = codes != NOT_PREDICTED
    image, text, has_image, has_text = fusion.split(vectors[rows])
    out = vectors.copy()
    out[rows] = fusion.fuse(image, text, has_image & (codes[rows] != IMAGE_PREDICTED), has_text & (codes[rows] != TEXT_PREDICTED))
    return out


@dataclass(frozen=True)
class _RidgeMap:
    """`unit((x - x_mean) @ weights + y_mean)`."""

    x_mean: np.ndarray
    y_mean: np.ndarray
    weights: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        if x.shape[1] != self.x_mean.shape[0]:
            raise InvalidArgumentError(f"inputs have {x.shape[1]} columns; this map takes {self.x_mean.shape[0]}")
        y = (x - self.x_mean) @ self.weights + self.y_mean
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return (y / np.maximum(norms, 1e-12)).astype(np.float32)


def _ridge(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]) -> dict[float, _RidgeMap]:
    """Ridge regressions of centred y on centred x, one per strength, from one eigendecomposition.

    Primal form (`d x d`) or dual form (`n x n`, when there are fewer pairs than
    dimensions), whichever is smaller; each strength then costs two matrix products.
    """
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    x_mean, y_mean = x64.mean(axis=0), y64.mean(axis=0)
    xc, yc = x64 - x_mean, y64 - y_mean
    n, d = xc.shape
    primal = n >= d
    values, vectors = np.linalg.eigh(xc.T @ xc if primal else xc @ xc.T)
    values = np.maximum(values, 0.0)
    scale = values.sum() / min(n, d)  # the mean eigenvalue: strengths are relative to it
    # Primal: W = V diag(1/(s+lam)) V' X'Y.  Dual: W = X' U diag(1/(s+lam)) U' Y.
    right = vectors.T @ (xc.T @ yc if primal else yc)
    out = {}
    for alpha in alphas:
        inner = right / (values + alpha * scale)[:, None]
        weights = vectors @ inner if primal else xc.T @ (vectors @ inner)
        out[alpha] = _RidgeMap(x_mean.astype(np.float32), y_mean.astype(np.float32), weights.astype(np.float32))
    return out


def _percentile_rank(predicted: np.ndarray, targets: np.ndarray) -> float:
    """Mean share of the other targets that score below each row's own target (0.5 = chance, 1 = always first)."""
    scores = predicted.astype(np.float64) @ targets.astype(np.float64).T
    own = np.diag(scores)
    below = (scores < own[:, None]).sum(axis=1)
    return float(below.mean() / max(len(targets) - 1, 1))


def _unit(vectors: np.ndarray, name: str) -> np.ndarray:
    """Rows scaled to unit length; a 2-D finite array without zero rows is required."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise InvalidArgumentError(f"{name} vectors must be a 2-D array (items, dim), got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms) & (norms > 1e-12)):
        raise InvalidArgumentError(f"{name} vectors hold zero or non-finite rows; pass only items that have a {name}")
    return array / norms
