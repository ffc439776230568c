"""The shop's tables at the boundary: one safe reader for .csv/.jsonl/.parquet, the id rule, the number rule.

The catalog and the interaction log both come through here, so a file that is a
folder, a FIFO, empty, not UTF-8, or has a repeated column or a broken line fails
the same way (the caller's `EngineError` subclass, naming the file and the line),
and an id is cleaned the same way in both, and at every lookup (`clean_id`): the
catalog and the index never hold two spellings of one id, and `42` finds '42'.
Number columns (price, stock) are stored as numbers whatever the file's format
(`as_numbers`, `number_column`); `engine.parquet` writes and reads tables keeping every
value's type.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import stat
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import EngineError, InvalidArgumentError

SUFFIXES = (".csv", ".jsonl", ".parquet")
# Whole numbers up to this size are exact in a float64, so a float column can become an int one.
_EXACT_INT = 2.0**53


def read_table(path: str | Path, error: type[EngineError], what: str) -> pd.DataFrame:
    """Read a .csv (every value a string, empty cells missing), .jsonl or .parquet file.

    Raises:
        error: the path is missing, not a regular file, empty, not UTF-8, or cannot be
            parsed; a header or a JSON object repeats a column; a .jsonl line is not a
            JSON object. The message names the file (and the line, for .jsonl).

    Example:
        >>> frame = read_table("sample_catalog/items.csv", CatalogError, "catalog")  # doctest: +SKIP
    """
    path, suffix = check_table_file(path, error, what)
    with _parse_errors(path, suffix, error, what):
        frame = _READERS[suffix](path)
    check_columns(frame, error, f"{what} '{path}'")
    return frame


def read_table_chunks(path: str | Path, error: type[EngineError], what: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Read a file like `read_table`, `chunk_rows` rows at a time: the same values, checks and errors.

    A .csv goes through pandas' chunked reader (the same parser and options as
    `read_table`), a .parquet through pyarrow's batch reader, a .jsonl line by line.
    Only one chunk is in memory at a time. A file without rows yields one empty frame.

    Raises:
        error: as `read_table`, when the chunk holding the problem is read (a .jsonl
            line number counts from the start of the file).

    Example:
        >>> from core.errors import CatalogError
        >>> [len(f) for f in read_table_chunks("sample_catalog/items.csv", CatalogError, "catalog", 200)]  # doctest: +SKIP
        [200, 200, 112]
    """
    path, suffix = check_table_file(path, error, what)
    with _parse_errors(path, suffix, error, what):
        chunks = _CHUNK_READERS[suffix](path, chunk_rows)
    while True:
        with _parse_errors(path, suffix, error, what):
            frame = next(chunks, None)
        if frame is None:
            return
        check_columns(frame, error, f"{what} '{path}'")
        yield frame


def check_table_file(path: str | Path, error: type[EngineError], what: str) -> tuple[Path, str]:
    """The path and its suffix, once it is known to be a non-empty regular file with a readable suffix.

    Raises:
        error: naming the path and what it is instead.

    Example:
        >>> from core.errors import CatalogError
        >>> check_table_file("sample_catalog/items.csv", CatalogError, "catalog")[1]  # doctest: +SKIP
        '.csv'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise error(f"{what} '{path}' has suffix {path.suffix!r}; expected one of {', '.join(SUFFIXES)}")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} file '{path}' does not exist") from None
    except (OSError, ValueError) as exc:
        raise error(f"{what} file '{path}' cannot be read: {exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{what} path '{path}' is a directory; expected a {suffix} file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the reader forever
        raise error(f"{what} path '{path}' is not a regular file (a FIFO, device or socket); expected a {suffix} file")
    if info.st_size == 0:
        raise error(f"{what} file '{path}' is empty (0 bytes); expected a header row and at least one row")
    return path, suffix


@contextmanager
def _parse_errors(path: Path, suffix: str, error: type[EngineError], what: str) -> Iterator[None]:
    """Parser errors as `error`, naming the file."""
    try:
        yield
    except _TableError as exc:
        raise error(f"{what} file '{path}' {exc}") from None
    except UnicodeDecodeError:  # its offsets are into the parser's buffer: find the byte in the file
        raise error(f"{what} file '{path}' is not UTF-8 text: {_first_non_utf8(path)}; save it as UTF-8") from None
    except (ValueError, OSError, pd.errors.ParserError, ImportError) as exc:  # pyarrow's errors derive from ValueError
        raise error(f"cannot read {what} file '{path}' as {suffix}: {exc}") from None


def records_frame(rows: list[Mapping[str, Any]], error: type[EngineError], what: str) -> pd.DataFrame:
    """A table of dicts; a string that is not valid Unicode (a lone surrogate such as JSON's "\\ud800") is `error` naming it.

    Example:
        >>> from core.errors import CatalogError
        >>> records_frame([{"id": "a"}], CatalogError, "catalog").columns.tolist()
        ['id']
    """
    try:
        return pd.DataFrame(rows)
    except UnicodeEncodeError:
        for i, row in enumerate(rows):
            for key, value in row.items():
                for text in (key, value):
                    if isinstance(text, str) and not _is_utf8(text):
                        raise error(
                            f"{what}: row {i}, field {str(key)!r} holds {text!r}, which is not valid Unicode "
                            "(a lone surrogate); send UTF-8 text"
                        ) from None
        raise


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_columns(frame: pd.DataFrame, error: type[EngineError], source: str) -> None:
    """Raise `error` when a column name repeats (after conversion to text)."""
    names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise error(f"{source} has repeated column names {repeated}; every column needs its own name")


def clean_ids(column: pd.Series, name: str, error: type[EngineError], source: str) -> np.ndarray:
    """Ids as strings without surrounding whitespace; raises `error` naming the first bad row.

    An id is a string or an integer (written in decimal). Missing, empty or blank ids,
    other types (floats, booleans, lists) and ids holding invisible characters (control
    characters such as NUL, zero-width spaces, byte-order marks, non-ASCII spaces) are
    rejected: two ids that print alike must be one id.

    Example:
        >>> clean_ids(pd.Series([" a ", 7]), "id", CatalogError, "catalog").tolist()
        ['a', '7']
    """
    values = column.to_numpy(dtype=object)
    missing = pd.isna(column).to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise error(f"{source}: row {row} has an empty {name} (missing; {int(missing.sum())} rows in all); every row needs one")
    if not (pd.api.types.is_integer_dtype(column) or pd.api.types.is_string_dtype(column)) or column.dtype == object:
        wrong = np.fromiter((not _id_type(v) for v in values), dtype=bool, count=len(values))
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            value = values[row]
            raise error(
                f"{source}: {name} in row {row} is {type(value).__name__} {value!r}; expected a string or an integer"
            )
    text = pd.Series(values, dtype=object).astype(str).str.strip()
    blank = (text == "").to_numpy()
    if blank.any():
        row = int(np.flatnonzero(blank)[0])
        raise error(f"{source}: row {row} has an empty {name} ({values[row]!r}); every row needs one")
    hidden = ~text.str.fullmatch(r"[ -~]*").to_numpy(dtype=bool)  # plain ASCII is visible: checked at C speed
    if hidden.any():
        hidden[hidden] = ~np.fromiter((t.isprintable() for t in text[hidden]), dtype=bool, count=int(hidden.sum()))
    if hidden.any():
        row = int(np.flatnonzero(hidden)[0])
        char = next(c for c in text.iloc[row] if not c.isprintable())
        raise error(
            f"{source}: {name} in row {row} is {text.iloc[row]!r}, which holds the invisible character "
            f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')}); ids must be visible text "
            f"({int(hidden.sum())} such rows in all)"
        )
    return text.to_numpy(dtype=object)


def clean_id(value: Any, what: str = "item id") -> str:
    """One id given at lookup, cleaned by the rule `clean_ids` applies on reading: 42 -> '42', ' a ' -> 'a'.

    Raises:
        InvalidArgumentError: `value` is not a string or an integer (a float, a boolean, None, a list...).

    Example:
        >>> clean_id(42), clean_id(" sku-1 ")
        ('42', 'sku-1')
    """
    if isinstance(value, str):
        return value.strip()
    if _id_type(value):
        return str(int(value))
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise InvalidArgumentError(f"{what} must be a string or an integer (42 means '42'), got {type(value).__name__} {shown}")


def _id_type(value: Any) -> bool:
    return isinstance(value, (str, int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _first_non_utf8(path: Path) -> str:
    """Where the first byte that is not UTF-8 lies, read in chunks so a large file is not loaded whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed, lines = 0, 1
    with open(path, "rb") as raw:
        while chunk := raw.read(1 << 20):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                data = exc.object
                lines += data[: exc.start].count(b"\n")
                return f"byte 0x{data[exc.start]:02x} at offset {consumed - pending + exc.start} (line {lines})"
            consumed += len(chunk)
            lines += chunk.count(b"\n")
    return "the file ends inside a character"


class _TableError(Exception):
    """A problem found while parsing, worded to follow "<what> file '<path>' "."""


def _read_csv(path: Path) -> pd.DataFrame:
    _check_csv_header(path)
    return pd.read_csv(path, **_CSV_OPTIONS)


def _csv_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    names = _check_csv_header(path)
    empty = True
    for frame in pd.read_csv(path, chunksize=chunk_rows, **_CSV_OPTIONS):
        empty = False
        yield frame
    if empty:
        yield pd.DataFrame(columns=names)


def _check_csv_header(path: Path) -> list[str]:
    """The header's names; pandas renames a repeated header ('title', 'title.1'), so it is read as written first."""
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False, encoding="utf-8")
    names = [str(v) for v in header.iloc[0].tolist()] if len(header) else []
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _TableError(f"has repeated column names {repeated} in its header; every column needs its own name")
    return names


_CSV_OPTIONS: dict[str, Any] = {"dtype": str, "keep_default_na": False, "na_values": [""], "encoding": "utf-8"}


def _read_jsonl(path: Path) -> pd.DataFrame:
    return next(_jsonl_chunks(path, None))


def _jsonl_chunks(path: Path, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    """Frames of `chunk_rows` records (all of them when None); at least one frame, empty when the file has none."""
    records: list[dict[str, Any]] = []
    sent = False
    with open(path, encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as exc:
                raise _TableError(f"line {number} is not valid JSON: {exc.msg} (column {exc.colno})") from None
            except _RepeatedKey as exc:
                raise _TableError(f"line {number} repeats the key {exc.args[0]!r}") from None
            if not isinstance(record, dict):
                raise _TableError(f"line {number} is a JSON {type(record).__name__}; expected one object per line")
            records.append(record)
            if chunk_rows is not None and len(records) == chunk_rows:
                yield pd.DataFrame(records, dtype=object)
                records, sent = [], True
    if records or not sent:
        # object dtype keeps each value as written: 7 stays an int, not 7.0 beside a missing value.
        yield pd.DataFrame(records, dtype=object) if records else pd.DataFrame()


class _RepeatedKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    source = pq.ParquetFile(str(path))
    empty = True
    for batch in source.iter_batches(batch_size=chunk_rows):
        empty = False
        yield pa.Table.from_batches([batch]).to_pandas()
    if empty:
        yield source.schema_arrow.empty_table().to_pandas()


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {".csv": _read_csv, ".jsonl": _read_jsonl, ".parquet": pd.read_parquet}
_CHUNK_READERS: dict[str, Callable[[Path, int], Iterator[pd.DataFrame]]] = {
    ".csv": _csv_chunks, ".jsonl": _jsonl_chunks, ".parquet": _parquet_chunks,
}


# ----- numbers -------------------------------------------------------------------
def as_numbers(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, NaN where not a number; mask of empty cells). Booleans are not numbers.

    Example:
        >>> values, empty = as_numbers(pd.Series([" 2.50 ", "", 9, "x"]))
        >>> values.tolist()[0], empty.tolist()
        (2.5, [False, True, False, False])
    """
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        return values, np.isnan(values)
    raw = column.to_numpy(dtype=object)
    missing = np.fromiter((is_missing(v) or (isinstance(v, str) and not v.strip()) for v in raw), bool, len(raw))
    text = pd.Series(["" if isinstance(v, (bool, np.bool_)) else str(v).strip() for v in raw], dtype=object)
    return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64), missing


def number_column(values: np.ndarray, whole: bool) -> pd.Series:
    """Checked numbers as a column: float64 (NaN when unknown), or nullable Int64 when `whole` and all are whole.

    Example:
        >>> number_column(np.array([3.0, np.nan]), whole=True).tolist()
        [3, <NA>]
    """
    known = values[~np.isnan(values)]
    if whole and np.all((known == np.floor(known)) & (np.abs(known) < _EXACT_INT)):
        unknown = np.isnan(values)
        return pd.Series(pd.arrays.IntegerArray(np.where(unknown, 0, values).astype(np.int64), unknown))
    return pd.Series(values.astype(np.float64))


def is_missing(value: Any) -> bool:
    """None, NaN, pd.NA or pd.NaT: an empty cell."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT


def plain(value: Any) -> Any:
    """A table cell as a plain Python value (None when missing)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if is_missing(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def column_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Column -> its type, text columns alike whether object or string dtype (their values read the same).

    Example:
        >>> column_kinds(pd.DataFrame({"id": ["a"], "price": [1.5]}))
        {'id': 'text', 'price': 'float64'}
    """
    return {str(c): "text" if pd.api.types.is_string_dtype(t) else str(t) for c, t in frame.dtypes.items()}


def object_array(values: list[Any]) -> np.ndarray:
    """A list as a 1-d object array, element for element (a list cell stays one cell).

    Example:
        >>> object_array([[1, 2], None, "a"]).shape
        (3,)
    """
    return np.fromiter(values, dtype=object, count=len(values))


# ----- image paths in a model folder -----------------------------------------------
def relative_paths(paths: pd.Series, base: Path) -> list[Any]:
    """Absolute image paths written relative to `base` ('' and relative ones as they are)."""
    prefix = os.path.join(str(base), "")
    return [
        (v[len(prefix):] if v.startswith(prefix) else os.path.relpath(v, base)) if isinstance(v, str) and os.path.isabs(v) else v
        for v in paths.tolist()
    ]


def resolved_paths(paths: pd.Series, base: Path) -> list[Any]:
    """Image paths read from a model folder, resolved against the catalog's folder (absolute ones, from older folders, kept)."""
    root = str(base)
    return [
        os.path.normpath(os.path.join(root, v)) if isinstance(v, str) and v and not os.path.isabs(v) else v
        for v in paths.tolist()
    ]
