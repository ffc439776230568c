"""The product catalog: a validated table of items with text fields and image paths."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import CatalogError, UnknownItemError

READERS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class CatalogColumns:
    """Which column of the source table holds each field the engine uses.

    Only `id` is required. A catalog without `image` is indexed from text, one
    without `title` and `description` from images.

    Example:
        >>> CatalogColumns(id="sku", title="name", image="image_path").id
        'sku'
    """

    id: str = "id"
    title: str = "title"
    description: str = "description"
    category: str = "category"
    image: str = "image"


class Catalog:
    """Items keyed by a unique string id; image paths resolved against `base_dir`.

    Columns are renamed to the engine's names (`id`, `title`, `description`,
    `category`, `image`); other columns (price, stock, ...) are kept as they are
    and come back in `Match.fields`.

    Example:
        >>> catalog = Catalog.from_file("sample_catalog/items.csv")   # doctest: +SKIP
        >>> len(catalog), catalog.ids[0]                                # doctest: +SKIP
        (512, 'food-grapes')
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        columns: CatalogColumns | None = None,
        base_dir: str | Path | None = None,
        source: str = "catalog",
    ) -> None:
        columns = columns or CatalogColumns()
        self.source = source
        self.base_dir = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
        self._frame = self._normalise(frame, columns)
        self._rows = {item_id: row for row, item_id in enumerate(self._frame["id"])}
        self._records: list[dict[str, Any]] | None = None

    # ----- construction ---------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, columns: CatalogColumns | None = None) -> Catalog:
        """Read a .csv, .jsonl or .parquet file; image paths are relative to its folder."""
        path = Path(path)
        kind = READERS.get(path.suffix.lower())
        if kind is None:
            raise CatalogError(f"catalog '{path}' has suffix {path.suffix!r}; expected one of {', '.join(READERS)}")
        if not path.is_file():
            raise CatalogError(f"catalog file '{path}' does not exist")
        try:
            if kind == "csv":
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
            elif kind == "jsonl":
                frame = pd.read_json(path, lines=True, dtype=False)
            else:
                frame = pd.read_parquet(path)
        except (ValueError, pd.errors.ParserError, OSError) as exc:
            raise CatalogError(f"cannot read catalog '{path}' as {kind}: {exc}") from exc
        return cls(frame, columns, base_dir=path.parent, source=str(path))

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any]], columns: CatalogColumns | None = None, base_dir: str | Path | None = None
    ) -> Catalog:
        """Build from dicts, e.g. `[{"id": "sku-1", "title": "Red shoe", "image": "img/1.jpg"}]`."""
        return cls(pd.DataFrame(list(records)), columns, base_dir=base_dir, source="records")

    def _normalise(self, frame: pd.DataFrame, columns: CatalogColumns) -> pd.DataFrame:
        """Rename, validate ids, resolve image paths; returns a new frame."""
        if len(frame) == 0:
            raise CatalogError(f"catalog {self.source!r} is empty: it has no items")
        if columns.id not in frame.columns:
            raise CatalogError(
                f"catalog {self.source!r} has no id column {columns.id!r}; its columns are: {', '.join(map(str, frame.columns))}"
            )
        renames = {getattr(columns, f.name): f.name for f in fields(columns) if getattr(columns, f.name) in frame.columns}
        clashes = [name for src, name in renames.items() if src != name and name in frame.columns]
        if clashes:
            raise CatalogError(f"catalog {self.source!r} maps another column onto existing column(s) {clashes}")
        out = frame.rename(columns=renames).reset_index(drop=True).copy()
        missing = out["id"].isna() | (out["id"].astype(str).str.strip() == "")
        if missing.any():
            row = int(missing.to_numpy().nonzero()[0][0])
            raise CatalogError(f"catalog {self.source!r} row {row} has an empty id; every item needs one")
        out["id"] = out["id"].astype(str)
        dupes = out["id"][out["id"].duplicated()].unique().tolist()
        if dupes:
            raise CatalogError(
                f"catalog {self.source!r} has duplicate ids: {', '.join(map(repr, dupes[:5]))}"
                + (f" and {len(dupes) - 5} more" if len(dupes) > 5 else "")
            )
        for name in ("title", "description", "category"):
            if name in out.columns:
                out[name] = out[name].map(_clean_text)
        if "image" in out.columns:
            out["image"] = out["image"].map(self._resolve_image)
        return out

    def _resolve_image(self, value: Any) -> str:
        text = _clean_text(value)
        if not text:
            return ""
        path = Path(text)
        return str(path if path.is_absolute() else (self.base_dir / path))

    # ----- access -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._frame)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    @property
    def ids(self) -> list[str]:
        """Item ids in catalog order."""
        return self._frame["id"].tolist()

    @property
    def frame(self) -> pd.DataFrame:
        """A copy of the normalised table."""
        return self._frame.copy()

    def row(self, item_id: str) -> int:
        """Row of an item; raises UnknownItemError naming it."""
        try:
            return self._rows[item_id]
        except KeyError:
            raise UnknownItemError(f"item {item_id!r} is not in the catalog ({len(self):,} items)") from None

    def text(self, row: int) -> str:
        """Title and description joined into one text; '' when the item has neither."""
        parts = [self._frame.at[row, c] for c in ("title", "description") if c in self._frame.columns]
        parts = [p for p in parts if p]
        if len(parts) == 2 and not parts[0].endswith((".", "!", "?")):
            return f"{parts[0]}. {parts[1]}"
        return " ".join(parts)

    def image_path(self, row: int) -> Path | None:
        """Resolved image path of a row, or None when the item declares no image."""
        if "image" not in self._frame.columns:
            return None
        value = self._frame.at[row, "image"]
        return Path(value) if value else None

    def fields(self, row: int) -> dict[str, Any]:
        """All fields of a row as plain Python values (missing values as None)."""
        if self._records is None:  # built once: per-row pandas access costs ~50 us a call
            self._records = [
                {k: (None if _is_missing(v) else v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
                for rec in self._frame.to_dict("records")
            ]
        return dict(self._records[row])

    def column(self, name: str) -> pd.Series:
        """One column of the normalised table; raises CatalogError naming it if absent."""
        if name not in self._frame.columns:
            raise CatalogError(f"catalog has no column {name!r}; its columns are: {', '.join(self._frame.columns)}")
        return self._frame[name]

    def content_hash(self, row: int) -> str:
        """Hash of what encoding reads (text and image bytes): equal hash, equal vector."""
        digest = hashlib.sha1(self.text(row).encode("utf-8"))
        path = self.image_path(row)
        if path is not None:
            digest.update(b"\0image\0")
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(str(path).encode("utf-8"))  # unreadable: encoding will report it
        return digest.hexdigest()

    # ----- changes ----------------------------------------------------------
    def concat(self, other: Catalog) -> Catalog:
        """A catalog with `other`'s items appended; raises CatalogError on ids present in both."""
        both = [i for i in other.ids if i in self._rows]
        if both:
            raise CatalogError(f"items already in the catalog: {', '.join(map(repr, both[:5]))}" + (
                f" and {len(both) - 5} more" if len(both) > 5 else ""))
        merged = pd.concat([self._frame, other._frame], ignore_index=True)
        return Catalog.from_normalised(merged, self.base_dir, self.source)

    def without(self, ids: Sequence[str]) -> Catalog:
        """A catalog without these ids; raises UnknownItemError naming the first unknown one."""
        for item_id in ids:
            self.row(item_id)
        drop = set(ids)
        kept = self._frame[~self._frame["id"].isin(drop)].reset_index(drop=True)
        if len(kept) == 0:
            raise CatalogError("removing these ids would leave the catalog empty")
        return Catalog.from_normalised(kept, self.base_dir, self.source)

    @classmethod
    def from_normalised(cls, frame: pd.DataFrame, base_dir: Path, source: str) -> Catalog:
        """Wrap a frame that is already normalised (canonical column names, absolute image paths).

        A model folder's `catalog.parquet` is such a frame; any other table goes through `Catalog(...)`.

        Example:
            >>> catalog = Catalog.from_normalised(pd.read_parquet("models/sample/catalog.parquet"), Path("sample_catalog"), "models/sample")  # doctest: +SKIP
        """
        catalog = cls.__new__(cls)
        catalog.source, catalog.base_dir = source, base_dir
        catalog._frame = frame.reset_index(drop=True)
        catalog._rows = {item_id: row for row, item_id in enumerate(catalog._frame["id"])}
        catalog._records = None
        return catalog


def as_catalog(items: Catalog | pd.DataFrame | Iterable[Mapping[str, Any]], base_dir: Path | None = None) -> Catalog:
    """Accept a Catalog, a DataFrame or a list of dicts."""
    if isinstance(items, Catalog):
        return items
    if isinstance(items, pd.DataFrame):
        return Catalog(items, base_dir=base_dir, source="dataframe")
    return Catalog.from_records(items, base_dir=base_dir)


def _clean_text(value: Any) -> str:
    return "" if _is_missing(value) else str(value).strip()


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
