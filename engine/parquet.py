"""Tables written to a model folder as parquet, read back with every value's type (`write_parquet`, `read_parquet`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .tables import is_missing

# Parquet metadata key listing the columns written as JSON text (mixed-type columns).
JSON_COLUMNS_KEY = b"shopvec.json_columns"


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a table so `read_parquet` gives back every value with its type.

    Columns of one type are stored natively; an object column holding anything but
    text (ints beside strings, lists, dicts, booleans) is stored as JSON text and listed
    in the file's metadata, so `1` comes back as `1` and `"1"` as `"1"`. Values JSON
    cannot hold (dates, decimals inside such a column) are stored as their text.

    Example:
        >>> write_parquet(catalog.frame, "models/sample/catalog.parquet")  # doctest: +SKIP
    """
    frame = frame.copy()
    as_json = [c for c in frame.columns if frame[c].dtype == object and not _all_text(frame[c])]
    for name in as_json:
        frame[name] = [json.dumps(v, default=_jsonable) for v in frame[name]]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), JSON_COLUMNS_KEY: json.dumps(as_json).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), str(path))


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a table written by `write_parquet`; pyarrow's errors come as they are (OSError, ValueError...)."""
    table = pq.read_table(str(path))
    as_json = json.loads((table.schema.metadata or {}).get(JSON_COLUMNS_KEY, b"[]"))
    frame = table.to_pandas()
    for name in as_json:
        frame[name] = pd.Series([None if v is None else json.loads(v) for v in frame[name]], index=frame.index, dtype=object)
    return frame


def _all_text(column: pd.Series) -> bool:
    return all(isinstance(v, str) or is_missing(v) for v in column)


def _jsonable(value: Any) -> Any:
    """A JSON stand-in for NumPy and pandas values; text for anything else."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)
