"""The product catalog: a validated table of items with text fields and image paths."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import CatalogError, ImageError, InvalidArgumentError, UnknownItemError
from encoders.config import ImageLimits
from encoders.imageio import read_image_file

from .tables import check_columns, clean_ids, read_table

# Numeric columns checked when present: name -> whether negative values are allowed.
NUMERIC_COLUMNS = {"price": False, "stock": True}
# Parquet metadata key listing the columns written as JSON text (mixed-type columns).
JSON_COLUMNS_KEY = b"shopvec.json_columns"


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
    and come back in `Match.fields`. Ids are stripped of surrounding whitespace, and
    ids with invisible characters are rejected (see `engine.tables.clean_ids`).
    `price` (a number >= 0) and `stock` (a number) are checked when present; an empty
    cell means "unknown".

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
        self.source = source
        self.base_dir = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
        self.allow_outside = bool(allow_outside)
        self._numbers: dict[str, np.ndarray] = {}
        self._frame = self._normalise(frame, columns)
        self._rows = _row_lookup(self._frame)
        self._records: list[dict[str, Any]] | None = None

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
        if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
            raise CatalogError(f"records must be a list of dicts, got {type(records).__name__}")
        rows = list(records)
        for i, record in enumerate(rows):
            if not isinstance(record, Mapping):
                raise CatalogError(f"record {i} is a {type(record).__name__} ({record!r}); expected a dict of fields")
        return cls(pd.DataFrame(rows), columns, base_dir=base_dir, source="records", allow_outside=allow_outside)

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
        for name, signed in NUMERIC_COLUMNS.items():
            if name in out.columns:
                self._numbers[name], blank = _check_numbers(out, name, signed, self.source)
                if blank.any():  # '', '  ' and NaN all mean "unknown": one spelling, None
                    out[name] = out[name].astype(object).where(~blank, None)
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
        return isinstance(item_id, str) and item_id in self._rows

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

    def row(self, item_id: str) -> int:
        """Row of an item; raises UnknownItemError naming it."""
        if not isinstance(item_id, str):
            raise InvalidArgumentError(f"an item id is a string, got {type(item_id).__name__} {item_id!r}")
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
            self._records = [{k: _plain(v) for k, v in rec.items()} for rec in self._frame.to_dict("records")]
        return dict(self._records[row])

    def column(self, name: str) -> pd.Series:
        """One column of the normalised table; raises CatalogError naming it if absent."""
        if name not in self._frame.columns:
            raise CatalogError(f"catalog has no column {name!r}; its columns are: {', '.join(self._frame.columns)}")
        return self._frame[name]

    def numbers(self, name: str) -> np.ndarray:
        """A column as float64, NaN where a cell is empty or not a number (the rule filters use)."""
        if name not in self._numbers:
            self._numbers[name] = _as_numbers(self.column(name))[0]
        return self._numbers[name]

    def content_hash(self, row: int, limits: ImageLimits | None = None) -> str:
        """Hash of what encoding reads (text and image bytes): equal hash, equal vector.

        The image is read under the same rules as decoding (`image_root`, `limits`); one
        that cannot be read is hashed by its path, and encoding reports why.
        """
        digest = hashlib.sha1(self.text(row).encode("utf-8"))
        path = self.image_path(row)
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
        merged = pd.concat([self._frame, other._frame], ignore_index=True)
        return Catalog.from_normalised(merged, self.base_dir, self.source, allow_outside=self.allow_outside)

    def without(self, ids: Sequence[str]) -> Catalog:
        """A catalog without these ids; raises UnknownItemError naming the first unknown one."""
        for item_id in ids:
            self.row(item_id)
        drop = set(ids)
        kept = self._frame[~self._frame["id"].isin(drop)].reset_index(drop=True)
        if len(kept) == 0:
            raise CatalogError("removing these ids would leave the catalog empty")
        return Catalog.from_normalised(kept, self.base_dir, self.source, allow_outside=self.allow_outside)

    @classmethod
    def from_normalised(
        cls, frame: pd.DataFrame, base_dir: Path, source: str, *, allow_outside: bool = False
    ) -> Catalog:
        """Wrap a frame that is already normalised (canonical column names, absolute image paths).

        A model folder's `catalog.parquet` is such a frame (see `read_parquet`); any other
        table goes through `Catalog(...)`.

        Example:
            >>> catalog = Catalog.from_normalised(frame, Path("sample_catalog"), "models/sample")  # doctest: +SKIP
        """
        if "id" not in frame.columns:
            raise CatalogError(f"catalog {source!r} has no 'id' column; its columns are: {', '.join(map(str, frame.columns))}")
        catalog = cls.__new__(cls)
        catalog.source, catalog.base_dir, catalog.allow_outside = source, Path(base_dir), bool(allow_outside)
        catalog._frame = frame.reset_index(drop=True)
        catalog._rows = _row_lookup(catalog._frame)
        catalog._records = None
        catalog._numbers = {}
        return catalog

    # ----- saving -------------------------------------------------------------
    def to_parquet(self, path: str | Path) -> None:
        """Write the normalised table so `read_parquet` gives back every value with its type.

        Columns of one type are stored natively; an object column holding anything but
        text (ints beside strings, lists, dicts, booleans) is stored as JSON text and listed
        in the file's metadata, so `1` comes back as `1` and `"1"` as `"1"`. Values JSON
        cannot hold (dates, decimals inside such a column) are stored as their text.

        Example:
            >>> catalog.to_parquet("models/sample/catalog.parquet")  # doctest: +SKIP
        """
        frame = self._frame.copy()
        as_json = [c for c in frame.columns if frame[c].dtype == object and not _all_text(frame[c])]
        for name in as_json:
            frame[name] = [json.dumps(v, default=_jsonable) for v in frame[name]]
        table = pa.Table.from_pandas(frame, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), JSON_COLUMNS_KEY: json.dumps(as_json).encode()}
        pq.write_table(table.replace_schema_metadata(metadata), str(path))

    @classmethod
    def read_parquet(cls, path: str | Path, base_dir: Path, source: str, *, allow_outside: bool = False) -> Catalog:
        """Read a table written by `to_parquet`.

        Example:
            >>> Catalog.read_parquet("models/sample/catalog.parquet", Path("sample_catalog"), "models/sample")  # doctest: +SKIP
        """
        try:
            table = pq.read_table(str(path))
            as_json = json.loads((table.schema.metadata or {}).get(JSON_COLUMNS_KEY, b"[]"))
            frame = table.to_pandas()
            for name in as_json:
                frame[name] = pd.Series(
                    [None if v is None else json.loads(v) for v in frame[name]], index=frame.index, dtype=object
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow's errors derive from these
            raise CatalogError(f"cannot read the catalog table '{path}': {exc}") from None
        return cls.from_normalised(frame, base_dir, source, allow_outside=allow_outside)


def _row_lookup(frame: pd.DataFrame) -> dict[str, int]:
    """Item id -> row. Built from a plain list: iterating an Arrow-backed column costs ~1 us a value."""
    ids = frame["id"].tolist()
    return dict(zip(ids, range(len(ids))))


def as_catalog(
    items: Catalog | pd.DataFrame | Iterable[Mapping[str, Any]], base_dir: Path | None = None, *, allow_outside: bool = False
) -> Catalog:
    """Accept a Catalog, a DataFrame or a list of dicts."""
    if isinstance(items, Catalog):
        return items
    if isinstance(items, pd.DataFrame):
        return Catalog(items, base_dir=base_dir, source="dataframe", allow_outside=allow_outside)
    return Catalog.from_records(items, base_dir=base_dir, allow_outside=allow_outside)


def _check_unique(ids: pd.Series, source: str) -> None:
    """Raise naming the repeated ids and their rows (ids are compared after stripping)."""
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        groups = repeated.groupby(repeated, sort=False).groups
        shown = [f"{item_id!r} (rows {', '.join(map(str, list(rows)[:3]))})" for item_id, rows in list(groups.items())[:5]]
        more = f" and {len(groups) - 5} more" if len(groups) > 5 else ""
        raise CatalogError(f"catalog {source!r} has duplicate ids: {', '.join(shown)}{more}")


def _check_numbers(frame: pd.DataFrame, name: str, signed: bool, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The column as floats and its mask of empty cells; raises naming the first cell that is not a (non-negative) finite number."""
    values, missing = _as_numbers(frame[name])
    bad = ~missing & (~np.isfinite(values) | (False if signed else values < 0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        expected = "a finite number" if signed else "a finite number >= 0"
        raise CatalogError(
            f"catalog {source!r}: {name} in row {row} (item {frame['id'].iloc[row]!r}) is {_plain(frame[name].iloc[row])!r}; "
            f"expected {expected}, or an empty cell when unknown ({int(bad.sum())} bad rows in all)"
        )
    return values, missing


def _as_numbers(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, NaN where not a number; mask of empty cells). Booleans are not numbers."""
    raw = column.to_numpy(dtype=object)
    missing = np.fromiter((_is_missing(v) or (isinstance(v, str) and not v.strip()) for v in raw), bool, len(raw))
    text = pd.Series(["" if isinstance(v, (bool, np.bool_)) else str(v).strip() for v in raw], dtype=object)
    return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64), missing


def _all_text(column: pd.Series) -> bool:
    return all(isinstance(v, str) or _is_missing(v) for v in column)


def _jsonable(value: Any) -> Any:
    """A JSON stand-in for NumPy and pandas values; text for anything else."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _plain(value: Any) -> Any:
    """A table cell as a plain Python value (None when missing)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if _is_missing(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _clean_text(value: Any) -> str:
    # A lone surrogate (JSON allows "\ud800") cannot be encoded as UTF-8: it becomes "?".
    return "" if _is_missing(value) else str(value).strip().encode("utf-8", "replace").decode("utf-8")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT
