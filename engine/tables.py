"""The shop's tables at the boundary: one safe reader for .csv/.jsonl/.parquet, and the id rule.

The catalog and the interaction log both come through here, so a file that is a
folder, a FIFO, empty, not UTF-8, or has a repeated column or a broken line fails
the same way (the caller's `EngineError` subclass, naming the file and the line),
and an id is cleaned the same way in both: the catalog and the index never hold
two spellings of one id.
"""

from __future__ import annotations

import codecs
import json
import os
import stat
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import EngineError

SUFFIXES = (".csv", ".jsonl", ".parquet")


def read_table(path: str | Path, error: type[EngineError], what: str) -> pd.DataFrame:
    """Read a .csv (every value a string, empty cells missing), .jsonl or .parquet file.

    Raises:
        error: the path is missing, not a regular file, empty, not UTF-8, or cannot be
            parsed; a header or a JSON object repeats a column; a .jsonl line is not a
            JSON object. The message names the file (and the line, for .jsonl).

    Example:
        >>> frame = read_table("sample_catalog/items.csv", CatalogError, "catalog")  # doctest: +SKIP
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
    try:
        frame = _READERS[suffix](path)
    except _TableError as exc:
        raise error(f"{what} file '{path}' {exc}") from None
    except UnicodeDecodeError:  # its offsets are into the parser's buffer: find the byte in the file
        raise error(f"{what} file '{path}' is not UTF-8 text: {_first_non_utf8(path)}; save it as UTF-8") from None
    except (ValueError, OSError, pd.errors.ParserError, ImportError) as exc:  # pyarrow's errors derive from ValueError
        raise error(f"cannot read {what} file '{path}' as {suffix}: {exc}") from None
    check_columns(frame, error, f"{what} '{path}'")
    return frame


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
    # pandas renames a repeated header ('title', 'title.1'): read the header as written first.
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False, encoding="utf-8")
    names = [str(v) for v in header.iloc[0].tolist()] if len(header) else []
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _TableError(f"has repeated column names {repeated} in its header; every column needs its own name")
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")


def _read_jsonl(path: Path) -> pd.DataFrame:
    records = []
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
    # object dtype keeps each value as written: 7 stays an int, not 7.0 beside a missing value.
    return pd.DataFrame(records, dtype=object) if records else pd.DataFrame()


class _RepeatedKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {".csv": _read_csv, ".jsonl": _read_jsonl, ".parquet": pd.read_parquet}
