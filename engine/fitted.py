"""What the engine fits on its own catalog's vectors at index time: the image-text alignment.

`FittedContent` is part of the `EngineState` (swapped whole with it, so a query sees one
alignment and vectors predicted by that one). It holds the fusion the vectors were made
with, the fitted `ModalityAlignment` (or None while too few items have both an image and
a text: the engine then runs unaligned and `note` says why), and which indexed items lack
a modality (`missing`: item id -> "image" or "text"). Once an alignment is fitted every
such item's empty slot holds its predicted vector (`predicted`); its own real vector is
never replaced. `raw` recovers the vectors as the encoders made them (the vector cache
reuses those), and `query` completes a one-modality query the same way.

It is fitted when the engine is built, and refitted when items are added or upserted and
the items with both modalities have grown by `AlignmentConfig.refit_growth` since the
last fit (then every predicted slot is predicted again). Removing items never refits.

Saved as `fitted/` in the model folder: `fitted.json`, `missing.parquet`, and once
fitted `alignment/` (arrays as `.npy`). A second transform fitted on the catalog (e.g. a
whitening of the image vectors) plugs in here: a field of `FittedContent`, fitted in
`absorb`, applied before the alignment, saved beside it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from core.errors import InvalidArgumentError
from encoders.alignment import (
    IMAGE_PREDICTED,
    MODALITY_OF_CODE,
    NOT_PREDICTED,
    TEXT_PREDICTED,
    AlignmentConfig,
    AlignmentError,
    ModalityAlignment,
    complete,
    without_predicted,
)
from encoders.fusion import Fusion, FusionConfig
from index import VectorIndex

log = logging.getLogger(__name__)
_CODE_OF_MODALITY = {"image": IMAGE_PREDICTED, "text": TEXT_PREDICTED}


@dataclass(frozen=True)
class FittedContent:
    """The alignment fitted on the catalog, and which items have a predicted slot. Never changed once made.

    Attributes:
        config: the alignment settings.
        fusion: the fusion of the engine's vectors (dims and weights).
        alignment: the fitted maps, or None (unaligned: see `note`).
        missing: indexed item id -> the modality it lacks; predicted once `alignment` is set.
        fitted_pairs: items with both modalities when the alignment was last fitted.
        note: why the engine is unaligned, empty once aligned.

    Example:
        >>> engine.state.fitted.describe()     # doctest: +SKIP
        'aligned on 326 items with image and text; 163 items have a predicted slot'
    """

    config: AlignmentConfig
    fusion: Fusion
    alignment: ModalityAlignment | None = None
    missing: Mapping[str, str] = field(default_factory=dict)
    fitted_pairs: int = 0
    note: str = "not fitted yet"

    def __post_init__(self) -> None:
        missing = self.missing if type(self.missing) is dict else dict(self.missing)
        object.__setattr__(self, "missing", MappingProxyType(missing))

    @classmethod
    def start(cls, config: AlignmentConfig, fusion: Fusion) -> FittedContent | None:
        """Nothing fitted yet, or None when the engine cannot align (switched off, or an encoder or weight missing)."""
        if not config.align:
            return None
        if min(fusion.image_dim, fusion.text_dim) == 0 or min(fusion.image_weight, fusion.text_weight) == 0:
            log.info("not aligning image and text: the engine needs both encoders with a positive weight")
            return None
        return cls(config, fusion)

    @property
    def predicted(self) -> Mapping[str, str]:
        """Item id -> the modality whose slot holds a predicted vector (empty while unaligned)."""
        return self.missing if self.alignment is not None else MappingProxyType({})

    def describe(self) -> str:
        """One line: aligned on how many pairs and how many items were completed, or why not."""
        if self.alignment is None:
            return f"unaligned: {self.note}"
        return (f"aligned on {self.fitted_pairs:,} items with image and text; "
                f"{len(self.missing):,} items have a predicted slot")

    # ----- changes --------------------------------------------------------------
    def absorb(self, index: VectorIndex, ids: Sequence[str], vectors: np.ndarray) -> tuple[FittedContent, np.ndarray]:
        """Take items about to join `index`: the next `FittedContent` and their vectors, completed, to add.

        `index` is the writer's fork (the items are not in it yet) and may be changed: a
        refit predicts the slots of the items already in it again. `vectors` are the new
        items' fused vectors as the encoders made them.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        _, _, has_image, has_text = self.fusion.split(vectors) if len(ids) else (None, None, np.zeros(0, bool),
                                                                                 np.zeros(0, bool))
        missing = dict(self.missing)
        for item_id, image, text in zip(ids, has_image, has_text):
            if not (image and text):
                missing[item_id] = "image" if not image else "text"
        nxt = replace(self, missing=missing)
        n_complete = len(index) + len(ids) - len(missing)
        due = (n_complete >= self.config.min_pairs if self.alignment is None
               else n_complete >= self.fitted_pairs * (1 + self.config.refit_growth))
        if due:
            nxt = nxt._refit(index, [i for i, a, b in zip(ids, has_image, has_text) if a and b],
                             vectors[has_image & has_text], n_complete)
        elif self.alignment is None:
            note = (f"{n_complete:,} items have both an image and a text; the alignment needs at least "
                    f"{self.config.min_pairs} (AlignmentConfig.min_pairs)")
            (log.warning if self.note == "not fitted yet" else log.info)("image and text stay unaligned: %s", note)
            nxt = replace(nxt, note=note)
        return nxt, nxt.fill(ids, vectors)

    def forget(self, item_ids: Sequence[str]) -> FittedContent:
        """The next `FittedContent` once these items left the index (no refit)."""
        gone = [i for i in item_ids if i in self.missing]
        if not gone:
            return self
        missing = dict(self.missing)
        for item_id in gone:
            del missing[item_id]
        return replace(self, missing=missing)

    def _refit(self, index: VectorIndex, new_ids: list[str], new_vectors: np.ndarray, n_complete: int) -> FittedContent:
        """Fit on the complete items of `index` and the new ones; re-predict the indexed items' slots."""
        old = [i for i in index.ids if i not in self.missing]
        rng = np.random.default_rng(self.config.seed)
        if len(old) + len(new_ids) > self.config.max_pairs:  # read only the sample's vectors
            keep = np.sort(rng.choice(len(old) + len(new_ids), size=self.config.max_pairs, replace=False))
            old_rows, new_rows = keep[keep < len(old)], keep[keep >= len(old)] - len(old)
        else:
            old_rows, new_rows = np.arange(len(old)), np.arange(len(new_ids))
        pairs = np.concatenate([index.vectors([old[r] for r in old_rows]) if len(old_rows) else
                                np.zeros((0, self.fusion.dim), np.float32), new_vectors[new_rows]])
        image, text, _, _ = self.fusion.split(pairs) if len(pairs) else (pairs, pairs, None, None)
        try:
            alignment = ModalityAlignment.fit(image, text, self.config)
        except AlignmentError as exc:
            log.warning("image and text stay unaligned: %s", exc)
            return replace(self, note=str(exc))
        nxt = replace(self, alignment=alignment, fitted_pairs=n_complete, note="")
        indexed = [i for i in self.missing if i in index]
        if indexed:  # every predicted slot comes from the new fit
            raw = self.raw(indexed, index.vectors(indexed))
            index.remove(indexed)
            index.add(indexed, nxt.fill(indexed, raw))
        log.info("%s", nxt.describe())
        return nxt

    # ----- vectors ----------------------------------------------------------------
    def fill(self, ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """Encoder-made vectors of these items with their empty slot predicted (unchanged while unaligned)."""
        if self.alignment is None or not len(ids):
            return vectors
        return complete(self.fusion, self.alignment, vectors, self.config.predicted_weight)[0]

    def raw(self, ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """Stored vectors of these items with any predicted slot emptied: the vectors the encoders made."""
        predicted = self.predicted
        codes = np.array([_CODE_OF_MODALITY.get(predicted.get(i, ""), NOT_PREDICTED) for i in ids], dtype=np.int8)
        return without_predicted(self.fusion, vectors, codes) if len(ids) else vectors

    def query(self, image: np.ndarray | None, text: np.ndarray | None) -> np.ndarray:
        """A query vector: `Fusion.query`, with the missing modality predicted once aligned."""
        query = self.fusion.query(image=image, text=text)
        if self.alignment is not None:
            query = complete(self.fusion, self.alignment, query, self.config.predicted_weight)[0]
        return query[0]

    # ----- persistence ------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write `fitted.json`, `missing.parquet` and, once fitted, `alignment/` into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        info = {"image_dim": self.fusion.image_dim, "text_dim": self.fusion.text_dim, "aligned": self.alignment is not None,
                "fitted_pairs": self.fitted_pairs, "note": self.note}
        (folder / "fitted.json").write_text(json.dumps(info, indent=1, sort_keys=True))
        pd.DataFrame({"id": list(self.missing), "modality": list(self.missing.values())}).to_parquet(folder / "missing.parquet")
        if self.alignment is not None:
            self.alignment.save(folder / "alignment")

    @classmethod
    def load(cls, folder: Path, config: AlignmentConfig, fusion: FusionConfig) -> FittedContent:
        """Read what `save` wrote; raises InvalidArgumentError naming what is wrong."""
        info = json.loads((folder / "fitted.json").read_text())
        if not isinstance(info, dict) or not all(isinstance(info.get(k), int) for k in ("image_dim", "text_dim", "fitted_pairs")):
            raise InvalidArgumentError(f"'{folder / 'fitted.json'}' needs integer image_dim, text_dim and fitted_pairs")
        frame = pd.read_parquet(folder / "missing.parquet")
        if list(frame.columns) != ["id", "modality"] or not frame["modality"].isin(list(_CODE_OF_MODALITY)).all():
            raise InvalidArgumentError(f"'{folder / 'missing.parquet'}' needs columns id and modality (image or text)")
        alignment = ModalityAlignment.load(folder / "alignment") if info.get("aligned") is True else None
        made = cls(config, Fusion(info["image_dim"], info["text_dim"], fusion), alignment,
                   dict(zip(frame["id"].astype(str), frame["modality"].astype(str))), info["fitted_pairs"],
                   str(info.get("note", "")))
        if alignment is not None and (alignment.image_dim, alignment.text_dim) != (info["image_dim"], info["text_dim"]):
            raise InvalidArgumentError(f"'{folder}' holds an alignment of other dims than fitted.json says")
        return made


__all__ = ["FittedContent", "MODALITY_OF_CODE"]
