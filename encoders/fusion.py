"""Weighted fusion of an item's image and text vectors into one unit vector.

With weights normalised to `w_img + w_txt = 1`, an item with both modalities becomes

    v = [sqrt(w_img) * image_vec, sqrt(w_txt) * text_vec]          (unit length)

so for two such items the inner product is exactly

    <v1, v2> = w_img * cos(image1, image2) + w_txt * cos(text1, text2),

the weighted sum of the per-modality cosines, and a FAISS inner-product index
over fused vectors ranks by it.

Missing modality: the missing slot is zero and the row is re-normalised to unit
length, i.e. an image-only item is `[image_vec, 0]` and a text-only item is
`[0, text_vec]`. Its neighbours are then ranked by the modality it has. Against a
complete item `c`, an image-only item `p` scores `sqrt(w_img) * cos(image_p, image_c)`
(the text term is absent and the scale differs), so scores of items with
different sets of modalities are comparable in rank only roughly; a row-wise
weight is the price of keeping every vector unit length. A modality whose
weight is zero, or whose dimension is zero (an engine configured without
that encoder), counts as missing. A row with no usable modality cannot be fused:
`fuse` raises, and `usable` tells the caller which rows to skip beforehand.

Queries (`Fusion.query`) follow the same rule: image-only, text-only and
image+text queries are built exactly like items with those modalities. The image
and text encoders are not aligned with each other (no CLIP weights here), so on its
own a text-only query matches only through the text slot of the items.

Alignment (`encoders.alignment`, on by default in the engine): ridge maps text -> image
and image -> text, fitted at index time on the catalog's items that have both, fill the
empty slot of a one-modality item and of a one-modality query with a predicted vector,
weighted `AlignmentConfig.predicted_weight` times its modality's weight (`fuse`'s
`image_factor` / `text_factor`). A text query then reaches image-only items through the
image slot and an image query text-only items through the text slot. `split` is the
inverse of `fuse`: the per-modality unit vectors of fused rows.

Scores of a query are put on the query's own scale (`Fusion.query_scale`): the
weighted mean, over the modalities the query has, of the cosine in that modality
(a modality the item lacks counts 0). An image-only query scores the image
cosine (an exact image match scores 1.0, not the inner product sqrt(w_img));
an image+text query against a complete item scores `w_img * cos_img + w_txt *
cos_txt`, which is the inner product itself. In general it is the inner product
times `sqrt(W_item / W_query)` (the summed weights of the item's and the query's
modalities): a constant over items with the same modalities, so among them it
ranks exactly as the index does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.errors import InvalidArgumentError


@dataclass(frozen=True)
class FusionConfig:
    """Relative weights of the image and text similarities; normalised to sum to 1.

    Example:
        >>> FusionConfig(image_weight=3, text_weight=1).normalised()
        (0.75, 0.25)
    """

    # Measured (docs/evaluation.md, scripts/evaluate_retrieval.py): best same-category
    # P@10 when texts do not name the category, within a point of the best when they do.
    image_weight: float = 0.25
    text_weight: float = 0.75

    def __post_init__(self) -> None:
        for field, value in (("image_weight", self.image_weight), ("text_weight", self.text_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InvalidArgumentError(
                    f"{field} must be a finite number >= 0, got {value!r} "
                    f"(image_weight={self.image_weight!r}, text_weight={self.text_weight!r})"
                )
        if self.image_weight + self.text_weight <= 0:
            raise InvalidArgumentError(
                f"image_weight and text_weight cannot both be zero (image_weight={self.image_weight!r}, "
                f"text_weight={self.text_weight!r}); give at least one a positive weight"
            )

    def normalised(self) -> tuple[float, float]:
        """`(w_img, w_txt)` scaled to sum to 1.

        Example:
            >>> FusionConfig(image_weight=1, text_weight=1).normalised()
            (0.5, 0.5)
        """
        total = float(self.image_weight) + float(self.text_weight)
        return float(self.image_weight) / total, float(self.text_weight) / total


class Fusion:
    """Concatenates weighted image and text vectors into `dim = image_dim + text_dim`.

    Args:
        image_dim: Length of the image vectors; 0 when there is no image encoder.
        text_dim: Length of the text vectors; 0 when there is no text encoder.
        config: The modality weights.

    Example:
        >>> fusion = Fusion(2, 2, FusionConfig(0.5, 0.5))
        >>> img = np.array([[1.0, 0.0]]); txt = np.array([[0.0, 1.0]])
        >>> fusion.fuse(img, txt, np.array([True]), np.array([True])).round(3)
        array([[0.707, 0.   , 0.   , 0.707]], dtype=float32)
    """

    def __init__(self, image_dim: int, text_dim: int, config: FusionConfig | None = None) -> None:
        for field, value in (("image_dim", image_dim), ("text_dim", text_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgumentError(f"{field} must be an integer >= 0, got {value!r}")
        if image_dim == 0 and text_dim == 0:
            raise InvalidArgumentError("image_dim and text_dim cannot both be 0; at least one encoder is needed")
        self.image_dim = image_dim
        self.text_dim = text_dim
        self.config = config if config is not None else FusionConfig()
        self.image_weight, self.text_weight = self.config.normalised()
        # A modality takes part only with a positive weight and a non-empty slot.
        self._image_on = self.image_weight > 0 and image_dim > 0
        self._text_on = self.text_weight > 0 and text_dim > 0

    @property
    def dim(self) -> int:
        """Length of a fused vector."""
        return self.image_dim + self.text_dim

    def usable(self, has_image: np.ndarray, has_text: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows that have at least one modality with a positive weight.

        Example:
            >>> Fusion(2, 2, FusionConfig(1, 0)).usable(np.array([True, False]), np.array([True, True])).tolist()
            [True, False]
        """
        has_image = _mask(has_image, "has_image")
        has_text = _mask(has_text, "has_text", len(has_image))
        return (has_image & self._image_on) | (has_text & self._text_on)

    def fuse(
        self,
        image: np.ndarray | None,
        text: np.ndarray | None,
        has_image: np.ndarray,
        has_text: np.ndarray,
        image_factor: np.ndarray | None = None,
        text_factor: np.ndarray | None = None,
    ) -> np.ndarray:
        """Fuse per-item vectors into unit rows `(n, dim)` float32.

        Args:
            image: `(n, image_dim)`; rows where `has_image` is False are ignored
                (zeros are fine). None when no row has an image.
            text: `(n, text_dim)`, likewise for `has_text`. None when no row has text.
            has_image: `(n,)` bool, which rows have an image vector.
            has_text: `(n,)` bool, which rows have a text vector.
            image_factor: `(n,)` multipliers of the image weight per row (None: 1); the
                alignment (`encoders.alignment.complete`) gives a predicted slot less weight.
            text_factor: likewise for the text weight.

        Returns:
            `(n, dim)` float32 with unit-norm rows.

        Raises:
            InvalidArgumentError: Shapes disagree, a present vector is zero or not
                finite, or some rows have no usable modality (see `usable`).

        Example:
            >>> fusion = Fusion(2, 2)
            >>> fusion.fuse(np.array([[1.0, 0.0]]), None, np.array([True]), np.array([False])).tolist()
            [[1.0, 0.0, 0.0, 0.0]]
        """
        has_image = _mask(has_image, "has_image")
        n = len(has_image)
        has_text = _mask(has_text, "has_text", n)
        use_image = has_image & self._image_on
        use_text = has_text & self._text_on
        empty = ~(use_image | use_text)
        if empty.any():
            rows = np.flatnonzero(empty)
            raise InvalidArgumentError(
                f"{len(rows)} of {n} rows have no usable modality (no image and no text with a positive weight; "
                f"weights image={self.image_weight:g}, text={self.text_weight:g}): rows {_few(rows)}; "
                "drop them first with Fusion.usable()"
            )
        # Without factors the weights stay the scalars they always were (bit-identical vectors).
        w_image = self.image_weight if image_factor is None else self.image_weight * _factor(image_factor, n, "image")
        w_text = self.text_weight if text_factor is None else self.text_weight * _factor(text_factor, n, "text")
        total = np.where(use_image, w_image, 0.0) + np.where(use_text, w_text, 0.0)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if use_image.any():
            unit = _unit_rows(image, use_image, n, self.image_dim, "image")
            out[:, : self.image_dim] = unit * np.sqrt(w_image / total)[:, None]
        if use_text.any():
            unit = _unit_rows(text, use_text, n, self.text_dim, "text")
            out[:, self.image_dim :] = unit * np.sqrt(w_text / total)[:, None]
        return out

    def split(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The per-modality unit vectors of fused rows, and which rows have each: the inverse of `fuse`.

        Returns:
            `(image, text, has_image, has_text)`: `(n, image_dim)` and `(n, text_dim)` float32
            unit rows (zero where the slot is empty) and two `(n,)` bool masks.

        Example:
            >>> fusion = Fusion(2, 2)
            >>> image, text, has_image, has_text = fusion.split(fusion.query(text=np.array([0.0, 1.0])))
            >>> has_image.tolist(), text.tolist()
            ([False], [[0.0, 1.0]])
        """
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidArgumentError(f"fused vectors must have shape (n, {self.dim}), got {vectors.shape}")
        parts = []
        for part in (vectors[:, : self.image_dim], vectors[:, self.image_dim :]):
            norms = np.linalg.norm(part, axis=1)
            present = norms > 1e-12
            parts.append(((part / np.where(present, norms, 1.0)[:, None]).astype(np.float32), present))
        (image, has_image), (text, has_text) = parts
        return image, text, has_image, has_text

    def query(self, image: np.ndarray | None = None, text: np.ndarray | None = None) -> np.ndarray:
        """Query vectors in the fused space from an image vector, a text vector, or both.

        Each argument is one vector `(d,)` or a batch `(m, d)`; a missing one is
        treated as a missing modality, exactly as in `fuse`.

        Returns:
            `(m, dim)` float32 unit rows, ready for an inner-product index.

        Raises:
            InvalidArgumentError: Both are None, their batch sizes differ, or the
                only given modality has weight zero.

        Example:
            >>> Fusion(2, 2).query(text=np.array([0.0, 1.0])).tolist()
            [[0.0, 0.0, 0.0, 1.0]]
        """
        if image is None and text is None:
            raise InvalidArgumentError("query needs an image vector, a text vector, or both; got neither")
        image_2d = None if image is None else np.atleast_2d(np.asarray(image, dtype=np.float32))
        text_2d = None if text is None else np.atleast_2d(np.asarray(text, dtype=np.float32))
        sizes = {len(a) for a in (image_2d, text_2d) if a is not None}
        if len(sizes) != 1:
            raise InvalidArgumentError(
                f"image and text queries differ in count: {len(image_2d)} vs {len(text_2d)}"  # type: ignore[arg-type]
            )
        m = sizes.pop()
        return self.fuse(image_2d, text_2d, np.full(m, image is not None), np.full(m, text is not None))


    def query_scale(self, query: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Per item, what turns its inner product with `query` into a score on the query's scale.

        The query's scale is the weighted mean, over the query's modalities, of the item's
        cosine in each (0 where the item lacks it). With `W_q` and `W_i` the summed weights
        of the query's and the item's modalities, fusion makes the inner product that mean
        times `sqrt(W_q / W_i)`, so the factor is `sqrt(W_i / W_q)`: one number for all items
        with the same modalities, so it never reorders them (see the module docstring).

        Args:
            query: one fused query `(dim,)` (`Fusion.query`).
            items: fused items `(n, dim)`.

        Returns:
            `(n,)` float64 factors.

        Example:
            >>> fusion = Fusion(2, 2)
            >>> item = fusion.fuse(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), np.array([True]), np.array([True]))
            >>> query = fusion.query(image=np.array([1.0, 0.0]))[0]
            >>> (float(item[0] @ query), float((item[0] @ query) * fusion.query_scale(query, item)[0]))
            (0.5, 1.0)
        """
        query = np.asarray(query, dtype=np.float64)
        items = np.atleast_2d(np.asarray(items, dtype=np.float64))
        w_query, w_items = 0.0, np.zeros(len(items))
        parts = ((slice(0, self.image_dim), self.image_weight), (slice(self.image_dim, self.dim), self.text_weight))
        for part, w in parts:
            if np.any(query[part]):
                w_query += w
            w_items += w * np.any(items[:, part] != 0, axis=1)
        if w_query == 0.0:
            raise InvalidArgumentError("the query vector is zero in every modality; build it with Fusion.query")
        return np.sqrt(w_items / w_query)


def _factor(values: np.ndarray, n: int, name: str) -> np.ndarray:
    """Per-row weight multipliers: `(n,)` finite numbers > 0."""
    factor = np.asarray(values, dtype=np.float64)
    if factor.shape != (n,) or not np.all(np.isfinite(factor) & (factor > 0)):
        raise InvalidArgumentError(f"{name}_factor must be {n} finite numbers > 0, got shape {factor.shape}")
    return factor


def _mask(values: np.ndarray, name: str, n: int | None = None) -> np.ndarray:
    """Validate a 1-D boolean mask, optionally of length `n`."""
    mask = np.asarray(values)
    if mask.ndim != 1 or (mask.dtype != bool and not (mask.size == 0 and mask.dtype == np.float64)):
        raise InvalidArgumentError(f"{name} must be a 1-D boolean array, got dtype {mask.dtype} and shape {mask.shape}")
    if n is not None and len(mask) != n:
        raise InvalidArgumentError(f"{name} has {len(mask)} rows but has_image has {n}")
    return mask.astype(bool, copy=False)


def _unit_rows(vectors: np.ndarray | None, present: np.ndarray, n: int, dim: int, name: str) -> np.ndarray:
    """Rows of `vectors` scaled to unit norm where `present`, zero elsewhere."""
    if vectors is None:
        raise InvalidArgumentError(f"{name} is None but {int(present.sum())} rows are marked as having a {name} vector")
    array = np.asarray(vectors, dtype=np.float32)
    if array.shape != (n, dim):
        raise InvalidArgumentError(f"{name} vectors must have shape ({n}, {dim}), got {array.shape}")
    out = np.zeros((n, dim), dtype=np.float32)
    rows = array[present]
    norms = np.linalg.norm(rows, axis=1)
    bad = ~np.isfinite(norms) | (norms <= 1e-12)
    if bad.any():
        raise InvalidArgumentError(
            f"{int(bad.sum())} {name} vectors marked present are zero or not finite: "
            f"rows {_few(np.flatnonzero(present)[bad])}"
        )
    out[present] = rows / norms[:, None]
    return out


def _few(rows: np.ndarray, limit: int = 5) -> str:
    """At most `limit` row numbers, for an error message."""
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return shown + (f" ... (+{len(rows) - limit} more)" if len(rows) > limit else "")
