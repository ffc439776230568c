"""The facade a shop's code imports: build, query, update, save and load."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from core.checks import check_k
from core.errors import CatalogError, EngineError, InvalidArgumentError, UnknownItemError
from core.persistence import ENGINE_KIND, atomic_dir, read_manifest, write_manifest
from encoders.imageio import load_image
from encoders.item import ItemEncoder
from index import IdFilter, VectorIndex, create_index, load_index

from .catalog import Catalog, as_catalog
from .config import EngineConfig
from .filters import ItemFilter, as_filter
from .personalise import Personaliser
from .pipeline import EncodedItems, encode_items
from .results import Match, Skipped
from .trained import TrainedModel

log = logging.getLogger(__name__)


class Engine:
    """Content-based retrieval over a catalog, with personalisation on top.

    Example:
        >>> from engine import Catalog, Engine
        >>> engine = Engine.build(Catalog.from_file("sample_catalog/items.csv"))  # doctest: +SKIP
        >>> [m.item_id for m in engine.similar("food-red-apple", k=3)]             # doctest: +SKIP
    """

    def __init__(
        self,
        config: EngineConfig,
        catalog: Catalog,
        index: VectorIndex,
        hashes: Mapping[str, str],
        skipped: Sequence[Skipped] = (),
        encoders: ItemEncoder | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.index = index
        self._hashes = dict(hashes)
        self.skipped: list[Skipped] = list(skipped)
        self._encoders = encoders
        self.trained: TrainedModel | None = None  # set by fit() / load()

    # ----- building ---------------------------------------------------------
    @classmethod
    def build(
        cls,
        catalog: Catalog,
        config: EngineConfig | None = None,
        *,
        previous: Engine | None = None,
        on_error: str = "report",
        show_progress: bool = True,
    ) -> Engine:
        """Encode every item and index the vectors.

        Args:
            catalog: the items (see `Catalog.from_file`).
            config: encoders, fusion weights, index; defaults suit a small shop on a CPU.
            previous: an engine built earlier with the same encoders; items whose
                content is unchanged reuse its vectors instead of being encoded again.
            on_error: "report" skips items that cannot be encoded and lists them in
                `engine.skipped`; "raise" stops at the first with its reason.
            show_progress: draw a progress bar.

        Example:
            >>> engine = Engine.build(Catalog.from_file("sample_catalog/items.csv"))  # doctest: +SKIP
            >>> engine.skipped   # items that could not be encoded, with reasons   # doctest: +SKIP
            []
        """
        config = config or EngineConfig()
        encoders = ItemEncoder.from_config(config.encoders, config.fusion)
        cache = previous._vector_cache(config) if previous is not None else None
        encoded = encode_items(
            catalog,
            encoders,
            batch_size=config.encoders.batch_size,
            num_workers=config.encoders.num_workers,
            cache=cache,
            on_error=on_error,
            show_progress=show_progress,
        )
        if not encoded.ids:
            reasons = "; ".join(f"{s.item_id}: {s.reason}" for s in encoded.skipped[:3])
            raise CatalogError(f"no item of {catalog.source!r} could be encoded ({reasons})")
        index = create_index(encoders.fusion.dim, config.index)
        index.add(encoded.ids, encoded.vectors)
        engine = cls(config, catalog, index, dict(zip(encoded.ids, encoded.hashes)), encoded.skipped, encoders)
        engine.last_build = encoded
        return engine

    def _vector_cache(self, config: EngineConfig) -> dict[str, np.ndarray]:
        """Content hash -> stored vector, when `config` encodes the same way as this engine."""
        same = (self.config.encoders, self.config.fusion) == (config.encoders, config.fusion)
        if not same or not len(self.index):
            return {}
        ids = [i for i in self.index.ids if i in self._hashes]
        return dict(zip((self._hashes[i] for i in ids), self.index.vectors(ids)))

    @property
    def encoders(self) -> ItemEncoder:
        """The encoders, loaded on first use (a loaded engine needs them only for queries and `add`)."""
        if self._encoders is None:
            self._encoders = ItemEncoder.from_config(self.config.encoders, self.config.fusion)
        return self._encoders

    # ----- queries ----------------------------------------------------------
    def similar(self, item_id: str, k: int = 10, filter: ItemFilter | None = None) -> list[Match]:
        """The k items nearest to `item_id`, best first, the item itself excluded.

        Example:
            >>> engine.similar("food-red-apple", k=5, filter=ItemFilter(categories=["food"]))  # doctest: +SKIP
        """
        check_k(k)
        vector = self.item_vector(item_id)
        id_filter = as_filter(filter).to_id_filter(self.catalog, also_exclude=[item_id])
        return self._search(vector[None, :], k, id_filter, source="similar")[0]

    def similar_many(self, item_ids: Sequence[str], k: int = 10, filter: ItemFilter | None = None) -> list[list[Match]]:
        """`similar` for several items in one index call (each list excludes only its own item)."""
        check_k(k)
        vectors = np.stack([self.item_vector(i) for i in item_ids])
        id_filter = as_filter(filter).to_id_filter(self.catalog)
        rows = self._search(vectors, k + 1, id_filter, source="similar")
        return [[m for m in row if m.item_id != item][:k] for item, row in zip(item_ids, rows)]

    def search(
        self,
        text: str | None = None,
        image: str | Path | Image.Image | None = None,
        k: int = 10,
        filter: ItemFilter | None = None,
    ) -> list[Match]:
        """Items matching a text, a photo (path or PIL image), or both.

        Example:
            >>> engine.search(text="red running shoes", k=5)   # doctest: +SKIP
            >>> engine.search(image="photo.jpg", k=5)           # doctest: +SKIP
        """
        check_k(k)
        query = self.query_vector(text=text, image=image)
        id_filter = as_filter(filter).to_id_filter(self.catalog)
        return self._search(query[None, :], k, id_filter, source="search")[0]

    def query_vector(self, text: str | None = None, image: str | Path | Image.Image | None = None) -> np.ndarray:
        """The vector a text and/or image query is searched with, in the items' space."""
        if text is None and image is None:
            raise InvalidArgumentError("search needs text=..., image=... or both; got neither")
        enc = self.encoders
        text_vec = image_vec = None
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise InvalidArgumentError(f"text query must be a non-empty string, got {text!r}")
            if enc.text is None:
                raise InvalidArgumentError("this engine was built without a text encoder; search by image instead")
            text_vec = enc.text.encode([text])[0]
        if image is not None:
            if enc.image is None:
                raise InvalidArgumentError("this engine was built without an image encoder; search by text instead")
            if not isinstance(image, Image.Image):
                image = load_image(image)
            image_vec = enc.image.encode([image])[0]
        return enc.fusion.query(image=image_vec, text=text_vec)[0]

    def item_vector(self, item_id: str) -> np.ndarray:
        """The stored vector of an indexed item."""
        if item_id not in self.index:
            if item_id in self.catalog:
                why = next((s.reason for s in self.skipped if s.item_id == item_id), "not indexed")
                raise UnknownItemError(f"item {item_id!r} is in the catalog but has no vector: {why}")
            raise UnknownItemError(f"item {item_id!r} is not in the catalog ({len(self.index):,} items indexed)")
        return self.index.vectors([item_id])[0]

    def _search(self, queries: np.ndarray, k: int, id_filter: IdFilter, source: str) -> list[list[Match]]:
        scores, ids = self.index.search(queries.astype(np.float32), k, id_filter)
        return [
            [Match(str(i), float(s), self.catalog.fields(self.catalog.row(str(i))), source) for s, i in zip(srow, irow)]
            for srow, irow in zip(scores, ids)
        ]

    # ----- updates ----------------------------------------------------------
    def add(self, items: Catalog | pd.DataFrame | Iterable[Mapping[str, Any]], show_progress: bool = False) -> list[Skipped]:
        """Add new products without rebuilding; returns the ones that could not be encoded.

        Relative image paths of a DataFrame or dicts resolve against the catalog's folder.

        Example:
            >>> engine.add([{"id": "sku-9", "title": "Blue kettle", "image": "images/kettle.png"}])  # doctest: +SKIP
            []
        """
        new = as_catalog(items, base_dir=self.catalog.base_dir)
        merged = self.catalog.concat(new)  # raises on ids already present
        encoded = encode_items(
            new,
            self.encoders,
            batch_size=self.config.encoders.batch_size,
            num_workers=self.config.encoders.num_workers,
            show_progress=show_progress,
        )
        if encoded.ids:
            self.index.add(encoded.ids, encoded.vectors)
        self.catalog = merged
        self._hashes.update(zip(encoded.ids, encoded.hashes))
        self.skipped.extend(encoded.skipped)
        return list(encoded.skipped)

    def remove(self, item_ids: Sequence[str]) -> None:
        """Remove items (sold out, discontinued); unknown ids are an error naming them."""
        if isinstance(item_ids, str):
            item_ids = [item_ids]
        catalog = self.catalog.without(item_ids)
        indexed = [i for i in item_ids if i in self.index]
        if indexed:
            self.index.remove(indexed)
        self.catalog = catalog
        gone = set(item_ids)
        for item_id in gone:
            self._hashes.pop(item_id, None)
        self.skipped = [s for s in self.skipped if s.item_id not in gone]

    # ----- personalisation --------------------------------------------------
    def fit(
        self,
        interactions: Any,
        model: str | None = None,
        *,
        on_unknown: str = "raise",
        show_progress: bool = True,
        **overrides: Any,
    ) -> Engine:
        """Train the personalisation model on an interaction log; `save()` keeps it.

        Args:
            interactions: an `Interactions` log whose item ids are catalog ids.
            model: registry name (`recommenders.list_models()`); default `config.recommend.model`.
            on_unknown: "raise" on log items missing from the index, or "drop" them.
            show_progress: draw progress bars.
            **overrides: fields of the model's config, e.g. `epochs=5`.

        Example:
            >>> engine.fit(Interactions.from_file("sample_catalog/interactions.csv"))  # doctest: +SKIP
        """
        name = model or self.config.recommend.model
        self.trained = TrainedModel.fit(
            self.index, interactions, name, on_unknown=on_unknown, show_progress=show_progress, **overrides
        )
        return self

    @property
    def personaliser(self) -> Personaliser:
        """What answers `recommend`: the index, catalog and trained model as they are now."""
        return Personaliser(self.index, self.catalog, self.config.recommend, self.trained)

    def recommend(
        self,
        user_id: str | None = None,
        k: int = 10,
        *,
        history: Sequence[str] | None = None,
        filter: ItemFilter | None = None,
        exclude_seen: bool = True,
        strict: bool = False,
    ) -> list[Match]:
        """Personalised items for a user, or for an anonymous visitor's `history` (oldest first).

        A user the model never saw falls back to content similarity of `history`, and a
        visitor with no history to popularity, unless `strict=True` (then an unknown user
        raises). `Match.source` says which path served the item, `Match.because` which
        history item led to it.

        Example:
            >>> engine.recommend("user-42", k=10)                        # doctest: +SKIP
            >>> engine.recommend(history=["sku-1", "sku-7"], k=10)        # doctest: +SKIP
        """
        return self.personaliser.recommend(
            user_id, k, history=history, filter=filter, exclude_seen=exclude_seen, strict=strict
        )

    # ----- persistence ------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the engine to a folder, atomically: a crash mid-save keeps the previous model.

        Example:
            >>> engine.save("models/sample"); engine = Engine.load("models/sample")  # doctest: +SKIP
        """
        with atomic_dir(path) as tmp:
            _write_catalog(self.catalog.frame, tmp / "catalog.parquet")
            pd.DataFrame({"id": list(self._hashes), "hash": list(self._hashes.values())}).to_parquet(
                tmp / "hashes.parquet"
            )
            (tmp / "skipped.json").write_text(json.dumps([[s.item_id, s.reason] for s in self.skipped]))
            self.index.save(tmp / "index")
            parts = ["catalog.parquet", "hashes.parquet", "skipped.json", "index"]
            if self.trained is not None:
                self.trained.save(tmp / "personaliser")
                parts.append("personaliser")
            write_manifest(
                tmp,
                ENGINE_KIND,
                config=self.config.to_dict(),
                catalog_base_dir=str(self.catalog.base_dir),
                n_items=len(self.catalog),
                n_indexed=len(self.index),
                parts=parts,
            )

    @classmethod
    def load(cls, path: str | Path) -> Engine:
        """Load a folder written by `save`; checks the format version."""
        path = Path(path)
        manifest = read_manifest(path, ENGINE_KIND)
        config = EngineConfig.from_dict(manifest["config"])
        frame = pd.read_parquet(path / "catalog.parquet")
        catalog = Catalog.from_normalised(frame, Path(manifest["catalog_base_dir"]), str(path))
        hashes = pd.read_parquet(path / "hashes.parquet")
        skipped = [Skipped(i, r) for i, r in json.loads((path / "skipped.json").read_text())]
        engine = cls(config, catalog, load_index(path / "index"), dict(zip(hashes["id"], hashes["hash"])), skipped)
        if "personaliser" in manifest["parts"]:
            engine.trained = TrainedModel.load(path / "personaliser")
        return engine

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"Engine({len(self.index):,} items indexed, index={type(self.index).__name__}, dim={self.index.dim})"


def _write_catalog(frame: pd.DataFrame, path: Path) -> None:
    """Parquet, with mixed-type object columns stored as text rather than failing."""
    try:
        frame.to_parquet(path)
    except (TypeError, ValueError, ImportError):
        mixed = {c: frame[c].map(lambda v: None if v is None else str(v)) for c in frame.columns if frame[c].dtype == object}
        frame.assign(**mixed).to_parquet(path)


__all__ = ["Engine", "EngineError", "ItemFilter", "Match", "EncodedItems"]
