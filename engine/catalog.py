"""The product catalog: a validated table of items with text fields and image paths."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import CatalogError, ImageError, InvalidArgumentError, UnknownItemError
from encoders.config import ImageLimits
from encoders.imageio import read_image_file

from .columns import CatalogColumns
from .parquet import read_parquet, write_parquet
from .tables import (
    as_numbers,
    check_columns,
    clean_id,
    clean_ids,
    column_kinds,
    is_missing,
    number_column,
    object_array,
    plain,
    read_table,
    records_frame,
    relative_paths,
    resolved_paths,
)

# Numeric columns checked when present: name -> (negative values allowed, whole numbers come back as int).
NUMERIC_COLUMNS = {"price": (False, False), "stock": (True, True)}
TEXT_COLUMNS = ("title", "description", "category", "image")


class Catalog:
    """Items keyed by a unique string id; image paths resolved against `base_dir`.

    Columns are renamed to the engine's names (`id`, `title`, `description`,
    `category`, `image`, `price`, `stock`; see `CatalogColumns`, which the catalog keeps
    as `columns` for the items added later); other columns are kept as they are and
    come back in `Match.fields`. Ids are stripped of surrounding whitespace, and ids
    with invisible characters are rejected (see `engine.tables.clean_ids`); a lookup
    cleans an id the same way (`row(42)` finds '42'). `price` (a number >= 0) and
    `stock` (a number) are checked when present and stored as numbers: a price is a
    float, a stock an int when every stock is whole; an empty cell means "unknown" (None).

    Image paths must resolve, symlinks followed, inside `base_dir` (the catalog file's
    folder); an item whose image lies outside is skipped at build time with the reason,
    and its file is never read. `allow_outside=True` lifts that.

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
        *,
        allow_outside: bool = False,
    ) -> None:
        columns = columns or CatalogColumns()
        if not isinstance(columns, CatalogColumns):
            raise InvalidArgumentError(f"columns must be a CatalogColumns, got {type(columns).__name__} {columns!r}")
        self.columns = columns
        self.source = source
        self.base_dir = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
        self.allow_outside = bool(allow_outside)
        self._numbers: dict[str, np.ndarray] = {}
        self._frame = self._normalise(frame, columns)
        self._rows = _row_lookup(self._frame)
        self._values: dict[Any, np.ndarray] | None = None
        self._values_lock = threading.Lock()

    # ----- construction ---------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, columns: CatalogColumns | None = None, *, allow_outside: bool = False) -> Catalog:
        """Read a .csv, .jsonl or .parquet file; image paths are relative to its folder (see `engine.tables`)."""
        path = Path(path)
        frame = read_table(path, CatalogError, "catalog")
        return cls(frame, columns, base_dir=path.parent, source=str(path), allow_outside=allow_outside)

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]],
        columns: CatalogColumns | None = None,
        base_dir: str | Path | None = None,
        *,
        allow_outside: bool = False,
    ) -> Catalog:
        """Build from dicts, e.g. `[{"id": "sku-1", "title": "Red shoe", "image": "img/1.jpg"}]`."""
        return cls(_records_frame(records), columns, base_dir=base_dir, source="records", allow_outside=allow_outside)

    def _normalise(self, frame: pd.DataFrame, columns: CatalogColumns) -> pd.DataFrame:
        """Rename, validate ids and numbers, resolve image paths; returns a new frame."""
        if not isinstance(frame, pd.DataFrame):
            raise CatalogError(f"a catalog is made from a pandas DataFrame, got {type(frame).__name__}")
        check_columns(frame, CatalogError, f"catalog {self.source!r}")
        frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
        if len(frame) == 0:
            raise CatalogError(f"catalog {self.source!r} is empty: it has no items")
        if columns.id not in frame.columns:
            raise CatalogError(
                f"catalog {self.source!r} has no id column {columns.id!r}; its columns are: {', '.join(frame.columns)}"
            )
        renames = {getattr(columns, f.name): f.name for f in fields(columns) if getattr(columns, f.name) in frame.columns}
        clashes = [name for src, name in renames.items() if src != name and name in frame.columns]
        if clashes:
            raise CatalogError(f"catalog {self.source!r} maps another column onto existing column(s) {clashes}")
        out = frame.rename(columns=renames).reset_index(drop=True).copy()
        out["id"] = clean_ids(out["id"], "id", CatalogError, f"catalog {self.source!r}")
        _check_unique(out["id"], self.source)
        for name in ("title", "description", "category"):
            if name in out.columns:
                out[name] = out[name].map(_clean_text)
        for name, (signed, whole) in NUMERIC_COLUMNS.items():
            if name in out.columns:  # '', '  ' and NaN all mean "unknown": one spelling, NaN (None in `fields`)
                self._numbers[name] = _check_numbers(out, name, signed, self.source)
                out[name] = number_column(self._numbers[name], whole)
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
        try:
            return clean_id(item_id) in self._rows
        except InvalidArgumentError:
            return False

    @property
    def ids(self) -> list[str]:
        """Item ids in catalog order."""
        return self._frame["id"].tolist()

    @property
    def frame(self) -> pd.DataFrame:
        """A copy of the normalised table."""
        return self._frame.copy()

    @property
    def column_names(self) -> list[str]:
        """Names of the normalised table's columns."""
        return [str(c) for c in self._frame.columns]

    @property
    def image_root(self) -> Path | None:
        """The folder image files must lie in, or None when `allow_outside` is set."""
        return None if self.allow_outside else self.base_dir

    def row(self, item_id: str | int) -> int:
        """Row of an item, its id cleaned like the catalog's (42 -> '42'); raises UnknownItemError naming it.

        Raises:
            InvalidArgumentError: the id is neither a string nor an integer (e.g. 1.5, True).
        """
        item_id = clean_id(item_id)
        try:
            return self._rows[item_id]
        except KeyError:
            raise UnknownItemError(f"item {item_id!r} is not in the catalog ({len(self):,} items)") from None

    def text(self, row: int) -> str:
        """Title and description joined into one text; '' when the item has neither."""
        return _joined([self._frame.at[row, c] for c in ("title", "description") if c in self._frame.columns])

    def texts(self) -> list[str]:
        """Every row's `text`, read column-wise (a row at a time costs ~50 us a call)."""
        columns = [self._frame[c].tolist() for c in ("title", "description") if c in self._frame.columns]
        return [_joined(parts) for parts in zip(*columns)] if columns else [""] * len(self)

    def image_path(self, row: int) -> Path | None:
        """Resolved image path of a row, or None when the item declares no image."""
        if "image" not in self._frame.columns:
            return None
        value = self._frame.at[row, "image"]
        return Path(value) if value else None

    def image_paths(self) -> list[Path | None]:
        """Every row's `image_path`, read column-wise."""
        values = self._frame["image"].tolist() if "image" in self._frame.columns else [None] * len(self)
        return [Path(v) if v else None for v in values]

    def fields(self, row: int) -> dict[str, Any]:
        """All fields of a row as plain Python values (missing values as None); O(columns) per call."""
        return {name: plain(values[row]) for name, values in self._column_values().items()}

    def _column_values(self) -> dict[Any, np.ndarray]:
        """Column -> its values as an object array, built once under a lock (a `tolist` per column, not a
        dict per row; per-row pandas access costs ~50 us a call). Derived catalogs take them over (`_derived`)."""
        if self._values is None:
            with self._values_lock:
                if self._values is None:
                    self._values = {c: object_array(self._frame[c].tolist()) for c in self._frame.columns}
        return self._values

    def column(self, name: str) -> pd.Series:
        """One column of the normalised table; raises CatalogError naming it if absent."""
        if name not in self._frame.columns:
            raise CatalogError(f"catalog has no column {name!r}; its columns are: {', '.join(self._frame.columns)}")
        return self._frame[name]

    def numbers(self, name: str) -> np.ndarray:
        """A column as float64, NaN where a cell is empty or not a number (the rule filters use)."""
        if name not in self._numbers:
            self._numbers[name] = as_numbers(self.column(name))[0]
        return self._numbers[name]

    def content_hash(self, row: int, limits: ImageLimits | None = None, *, text: str | None = None, path: Any = True) -> str:
        """Hash of what encoding reads (text and image bytes): equal hash, equal vector.

        The image is read under the same rules as decoding (`image_root`, `limits`); one that cannot be read is
        hashed by its path, and encoding reports why. `text`, `path`: the row's `text` and `image_path`, if known.
        """
        digest = hashlib.sha1((self.text(row) if text is None else text).encode("utf-8"))
        path = self.image_path(row) if path is True else path
        if path is not None:
            digest.update(b"\0image\0")
            try:
                digest.update(read_image_file(path, limits, self.image_root))
            except ImageError:
                digest.update(str(path).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    # ----- changes ----------------------------------------------------------
    def concat(self, other: Catalog) -> Catalog:
        """A catalog with `other`'s items appended; raises CatalogError on ids present in both."""
        both = [i for i in other.ids if i in self._rows]
        if both:
            raise CatalogError(f"items already in the catalog: {', '.join(map(repr, both[:5]))}" + (
                f" and {len(both) - 5} more" if len(both) > 5 else ""))
        merged = _filled(pd.concat([self._frame, other._frame], ignore_index=True))
        return self._derived(merged, np.arange(len(merged)))

    def upserted(self, other: Catalog) -> Catalog:
        """A catalog where `other`'s items replace the rows with their ids (every field) and the rest are appended.

        A replaced item keeps its place; new items come last, in `other`'s order. A field
        the new row lacks is empty afterwards: a row is replaced, not merged.

        Example:
            >>> catalog.upserted(Catalog.from_records([{"id": "sku-1", "title": "Red shoe", "price": 40}]))  # doctest: +SKIP
        """
        old_rows = np.array([self._rows.get(i, -1) for i in other.ids], dtype=np.int64)
        replaced = old_rows >= 0
        keep = np.ones(len(self) + len(old_rows), dtype=bool)
        keep[old_rows[replaced]] = False
        place = np.concatenate([np.arange(len(self)), np.where(replaced, old_rows, len(self) + np.arange(len(old_rows)))])
        order = np.flatnonzero(keep)[np.argsort(place[keep], kind="stable")]
        merged = _filled(pd.concat([self._frame, other._frame], ignore_index=True).iloc[order])
        return self._derived(merged, order)

    def without(self, ids: Sequence[str]) -> Catalog:
        """A catalog without these ids (cleaned like `row`'s); raises UnknownItemError naming the first unknown one."""
        drop = {self.ids[self.row(item_id)] for item_id in ids}
        mask = ~self._frame["id"].isin(drop).to_numpy()
        kept = self._frame[mask].reset_index(drop=True)
        if len(kept) == 0:
            raise CatalogError("removing these ids would leave the catalog empty")
        return self._derived(kept, np.flatnonzero(mask))

    def _derived(self, frame: pd.DataFrame, sources: np.ndarray) -> Catalog:
        """Another table of this catalog's kind (same folder, source, columns and image rule).

        Row r of `frame` was row `sources[r]` of this catalog, or a new row when >= len(self).
        With the same columns and types, the column arrays (`fields`) are taken over by a gather
        each and only new rows converted; else they are built on the first read.
        """
        catalog = Catalog.from_normalised(
            frame, self.base_dir, self.source, allow_outside=self.allow_outside, columns=self.columns
        )
        old = self._values
        if old is not None and column_kinds(catalog._frame) == column_kinds(self._frame):
            fresh = np.flatnonzero(sources >= len(self))
            taken = np.minimum(sources, len(self) - 1)
            values = {}
            for name in catalog._frame.columns:
                column = old[name][taken]
                if len(fresh):
                    column[fresh] = object_array(catalog._frame[name].iloc[fresh].tolist())
                values[name] = column
            catalog._values = values
        return catalog

    @classmethod
    def from_normalised(
        cls, frame: pd.DataFrame, base_dir: Path, source: str, *, allow_outside: bool = False, columns: CatalogColumns | None = None
    ) -> Catalog:
        """Wrap a frame that is already normalised (canonical column names, absolute image paths).

        A model folder's `catalog.parquet` is such a frame (see `read_parquet`); any other
        table goes through `Catalog(...)`. `columns` is the mapping its source was read
        with, applied to items added later. Price and stock stored as text (by earlier
        releases) become numbers.

        Example:
            >>> catalog = Catalog.from_normalised(frame, Path("sample_catalog"), "models/sample")  # doctest: +SKIP
        """
        if "id" not in frame.columns:
            raise CatalogError(f"catalog {source!r} has no 'id' column; its columns are: {', '.join(map(str, frame.columns))}")
        catalog = cls.__new__(cls)
        catalog.source, catalog.base_dir, catalog.allow_outside = source, Path(base_dir), bool(allow_outside)
        catalog.columns = columns or CatalogColumns()
        catalog._frame = _typed(frame.reset_index(drop=True))
        catalog._rows = _row_lookup(catalog._frame)
        catalog._values = None
        catalog._values_lock = threading.Lock()
        catalog._numbers = {}
        return catalog

    # ----- saving -------------------------------------------------------------
    def to_parquet(self, path: str | Path) -> None:
        """Write the normalised table so `read_parquet` gives back every value with its type.

        Image paths are written relative to `base_dir` (a model folder holds no absolute
        path); see `engine.parquet.write_parquet` for how mixed-type columns keep their types.

        Example:
            >>> catalog.to_parquet("models/sample/catalog.parquet")  # doctest: +SKIP
        """
        frame = self._frame
        if "image" in frame.columns:
            frame = frame.assign(image=relative_paths(frame["image"], self.base_dir))
        write_parquet(frame, path)

    @classmethod
    def read_parquet(
        cls, path: str | Path, base_dir: Path, source: str, *, allow_outside: bool = False, columns: CatalogColumns | None = None
    ) -> Catalog:
        """Read a table written by `to_parquet`; relative image paths resolve against `base_dir`.

        Example:
            >>> Catalog.read_parquet("models/sample/catalog.parquet", Path("sample_catalog"), "models/sample")  # doctest: +SKIP
        """
        try:
            frame = read_parquet(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow's errors derive from these
            raise CatalogError(f"cannot read the catalog table '{path}': {exc}") from None
        if "image" in frame.columns:
            frame["image"] = resolved_paths(frame["image"], Path(base_dir))
        return cls.from_normalised(frame, base_dir, source, allow_outside=allow_outside, columns=columns)


def _row_lookup(frame: pd.DataFrame) -> dict[str, int]:
    """Item id -> row. Built from a plain list: iterating an Arrow-backed column costs ~1 us a value."""
    ids = frame["id"].tolist()
    return dict(zip(ids, range(len(ids))))


def as_catalog(
    items: Catalog | pd.DataFrame | Iterable[Mapping[str, Any]], base_dir: Path | None = None, *,
    allow_outside: bool = False, columns: CatalogColumns | None = None,
) -> Catalog:
    """Accept a Catalog, a DataFrame or a list of dicts; the latter two are read with `columns` (our names work too)."""
    if isinstance(items, Catalog):
        return items
    frame, source = (items, "dataframe") if isinstance(items, pd.DataFrame) else (_records_frame(items), "records")
    mapped = (columns or CatalogColumns()).for_items(map(str, frame.columns))
    return Catalog(frame, mapped, base_dir=base_dir, source=source, allow_outside=allow_outside)


def _records_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A table of dicts; anything but a list of dicts is an error naming what came."""
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise CatalogError(f"records must be a list of dicts, got {type(records).__name__}")
    rows = list(records)
    for i, record in enumerate(rows):
        if not isinstance(record, Mapping):
            raise CatalogError(f"record {i} is a {type(record).__name__} ({record!r}); expected a dict of fields")
    return records_frame(rows, CatalogError, "records")


def _check_unique(ids: pd.Series, source: str) -> None:
    """Raise naming the repeated ids and their rows (ids are compared after stripping)."""
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        groups = repeated.groupby(repeated, sort=False).groups
        shown = [f"{item_id!r} (rows {', '.join(map(str, list(rows)[:3]))})" for item_id, rows in list(groups.items())[:5]]
        more = f" and {len(groups) - 5} more" if len(groups) > 5 else ""
        raise CatalogError(f"catalog {source!r} has duplicate ids: {', '.join(shown)}{more}")


def _check_numbers(frame: pd.DataFrame, name: str, signed: bool, source: str) -> np.ndarray:
    """The column as floats (NaN when empty); raises naming the first cell that is not a (non-negative) finite number."""
    values, missing = as_numbers(frame[name])
    bad = ~missing & (~np.isfinite(values) | (False if signed else values < 0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        expected = "a finite number" if signed else "a finite number >= 0"
        raise CatalogError(
            f"catalog {source!r}: {name} in row {row} (item {frame['id'].iloc[row]!r}) is {plain(frame[name].iloc[row])!r}; "
            f"expected {expected}, or an empty cell when unknown ({int(bad.sum())} bad rows in all)"
        )
    return np.where(missing, np.nan, values)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Price and stock as number columns (see `number_column`); a column holding what is not a number stays as it is."""
    for name, (_, whole) in NUMERIC_COLUMNS.items():
        if name in frame.columns:
            values, missing = as_numbers(frame[name])
            if np.array_equal(np.isnan(values), missing):
                frame[name] = number_column(values, whole).array
    return frame


def _filled(frame: pd.DataFrame) -> pd.DataFrame:
    """After a merge, a text field one side lacked is '' (as `Catalog` writes an empty cell), not NaN."""
    for name in TEXT_COLUMNS:
        if name in frame.columns and frame[name].isna().any():
            frame[name] = frame[name].astype(object).where(frame[name].notna(), "")
    return frame


def _joined(parts: Sequence[Any]) -> str:
    """Title and description as one text: "Title. Description" (no extra stop after one), or the one present."""
    parts = [p for p in parts if p]
    if len(parts) == 2 and not parts[0].endswith((".", "!", "?")):
        return f"{parts[0]}. {parts[1]}"
    return " ".join(parts)


def _clean_text(value: Any) -> str:
    # A lone surrogate (JSON allows "\ud800") cannot be encoded as UTF-8: it becomes "?".
    return "" if is_missing(value) else str(value).strip().encode("utf-8", "replace").decode("utf-8")
