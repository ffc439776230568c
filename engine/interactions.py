"""The interaction log at the public boundary: raw user and item ids, validated.

`Interactions` reads a log (a DataFrame, a .csv or a .parquet file), checks it
once and normalises it: ids become strings, timestamps int64 unix seconds,
weights float32. `to_data` then maps the raw ids to the dense rows the models
train on (`recommenders.data.InteractionData`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from core.errors import InteractionsError, InvalidArgumentError, UnknownUserError
from recommenders.data import InteractionData

from .tables import check_columns, clean_ids, read_table

REQUIRED = ("user_id", "item_id", "timestamp")
OPTIONAL = ("event", "weight")
_SHOWN = 5  # how many offending values an error message lists
# Accepted event times, in unix seconds: 1970-01-01 up to (not including) 2100-01-01.
# Anything else is a unit mistake (milliseconds) or a placeholder such as 0001-01-01 or 9999-12-31.
TIME_RANGE = (0, 4_102_444_800)


@dataclass(frozen=True)
class ValidationReport:
    """What validation did to the log.

    Attributes:
        n_input: rows read.
        n_duplicates: rows dropped because the same (user, item, timestamp) came earlier.
        n_unknown_items: rows dropped because their item is not in the catalog.
        n_kept: rows left.
    """

    n_input: int
    n_duplicates: int = 0
    n_unknown_items: int = 0

    @property
    def n_kept(self) -> int:
        return self.n_input - self.n_duplicates - self.n_unknown_items


class Interactions:
    """A validated log of (user, item, timestamp[, event, weight]) rows with raw ids.

    Args:
        df: the log. Needs `user_id`, `item_id` and `timestamp` columns; `event` (a label such
            as 'view' or 'purchase') and `weight` (a non-negative strength, default 1) are optional.
            Timestamps are unix seconds or date/time strings (both may appear in one column),
            between 1970-01-01 and 2100-01-01. Ids follow the catalog's rule
            (`engine.tables.clean_ids`): surrounding whitespace is stripped, invisible
            characters are an error.
        columns: renames applied first, from your column names to the ones above,
            e.g. `{"customer": "user_id", "sku": "item_id"}`.

    Raises:
        InteractionsError: an empty log, a missing or repeated column, a missing, invisible or
            ill-typed id, a missing, unparseable or out-of-range timestamp, a negative, missing
            or non-finite weight, or weights that are all 0.

    Example:
        >>> log = Interactions(pd.DataFrame({"user_id": ["u1", "u1", "u2"],
        ...                                  "item_id": ["a", "b", "a"],
        ...                                  "timestamp": ["2024-05-01", "2024-05-02", 1714600000]}))
        >>> data = log.to_data(log.user_vocabulary(), ["a", "b", "c"])
        >>> data.items.tolist(), data.n_items
        ([0, 1, 0], 3)
    """

    def __init__(self, df: pd.DataFrame, columns: Mapping[str, str] | None = None) -> None:
        frame, report = _validate(df, columns)
        self.frame = frame
        self.report = report

    @classmethod
    def from_file(cls, path: str | Path, columns: Mapping[str, str] | None = None) -> Interactions:
        """Read a .csv, .jsonl or .parquet log (see `engine.tables.read_table`).

        Example:
            >>> log = Interactions.from_file("events.csv", columns={"sku": "item_id"})  # doctest: +SKIP
        """
        # A .csv is read as text, so ids stay exactly as written ('007' is not 7); other columns are parsed later.
        return cls(read_table(path, InteractionsError, "interaction log"), columns=columns)

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return (
            f"Interactions({len(self)} rows, {self.frame['user_id'].nunique()} users, "
            f"{self.frame['item_id'].nunique()} items)"
        )

    # ----- vocabularies ----------------------------------------------------
    def user_vocabulary(self, existing: Sequence[str] = ()) -> list[str]:
        """`existing` user ids followed by the log's other users, sorted; row r of the data is entry r."""
        known = list(existing)
        new = sorted(set(self.frame["user_id"].unique()) - set(known))
        return known + new

    def validate_items(
        self, known_ids: Sequence[str], on_unknown: Literal["raise", "drop"] = "raise"
    ) -> Interactions:
        """Check every item id against the catalog's ids.

        Returns self when all are known, else (with `on_unknown="drop"`) a copy without
        the unknown rows, counted in `report.n_unknown_items`.

        Raises:
            InteractionsError: some ids are unknown and `on_unknown="raise"`; lists a few and the count.
        """
        if on_unknown not in ("raise", "drop"):
            raise InvalidArgumentError(f"on_unknown must be 'raise' or 'drop', got {on_unknown!r}")
        known = pd.Index(pd.Series(list(known_ids), dtype=object).astype(str))
        unknown = ~self.frame["item_id"].isin(known)
        if not unknown.any():
            return self
        if on_unknown == "raise":
            bad = self.frame.loc[unknown, "item_id"].unique()
            shown = ", ".join(repr(x) for x in bad[:_SHOWN])
            raise InteractionsError(
                f"{int(unknown.sum())} interactions name {len(bad)} item ids that are not in the catalog "
                f"({len(known)} items), e.g. {shown}; fix the ids or pass on_unknown='drop'"
            )
        out = object.__new__(Interactions)
        out.frame = self.frame.loc[~unknown].reset_index(drop=True)
        out.report = replace(self.report, n_unknown_items=self.report.n_unknown_items + int(unknown.sum()))
        return out

    # ----- mapping to rows -------------------------------------------------
    def to_data(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        *,
        on_unknown: Literal["raise", "drop"] = "raise",
        extend_users: bool = False,
    ) -> InteractionData:
        """Map raw ids to rows: user r is `user_ids[r]`, item r is `item_ids[r]`.

        Args:
            user_ids: the user vocabulary (build one with `user_vocabulary()`).
            item_ids: the catalog's item ids, in row order.
            on_unknown: what to do with items that are not in `item_ids` (see `validate_items`).
            extend_users: append users missing from `user_ids` as new rows, in the order
                `user_vocabulary(user_ids)` gives; otherwise they raise.

        Raises:
            UnknownUserError: a user is not in `user_ids` and `extend_users` is false.
            InteractionsError: an unknown item, with `on_unknown="raise"`.
        """
        log = self.validate_items(item_ids, on_unknown)
        users = log.user_vocabulary(user_ids) if extend_users else list(user_ids)
        user_index = _index(users, "user")
        item_index = _index(item_ids, "item")
        u = user_index.get_indexer(log.frame["user_id"])
        if (u < 0).any():
            bad = log.frame.loc[u < 0, "user_id"].unique()
            shown = ", ".join(repr(x) for x in bad[:_SHOWN])
            raise UnknownUserError(
                f"{len(bad)} user ids are not in the vocabulary ({len(users)} users), e.g. {shown}; "
                "pass extend_users=True or user_ids=log.user_vocabulary(known_ids)"
            )
        i = item_index.get_indexer(log.frame["item_id"])
        return InteractionData(
            users=u.astype(np.int64),
            items=i.astype(np.int64),
            timestamps=log.frame["timestamp"].to_numpy(np.int64),
            weights=log.frame["weight"].to_numpy(np.float32),
            n_users=len(users),
            n_items=len(item_ids),
        )


def _index(ids: Sequence[str], what: str) -> pd.Index:
    """A lookup index over a vocabulary, which must not repeat an id."""
    index = pd.Index(pd.Series(list(ids), dtype=object).astype(str))
    if not index.is_unique:
        dup = index[index.duplicated()].unique()
        shown = ", ".join(repr(x) for x in dup[:_SHOWN])
        raise InvalidArgumentError(f"the {what} vocabulary repeats ids, e.g. {shown}")
    return index


def _validate(df: pd.DataFrame, columns: Mapping[str, str] | None) -> tuple[pd.DataFrame, ValidationReport]:
    """Check and normalise a raw log; returns it with duplicates dropped and the report."""
    if not isinstance(df, pd.DataFrame):
        raise InteractionsError(f"interactions must be a pandas DataFrame, got {type(df).__name__}")
    if columns is not None and not isinstance(columns, Mapping):
        raise InvalidArgumentError(f"columns must map your column names to ours, e.g. {{'sku': 'item_id'}}; got {columns!r}")
    check_columns(df, InteractionsError, "the interaction log")
    if columns:
        missing_src = [c for c in columns if c not in df.columns]
        if missing_src:
            raise InteractionsError(
                f"columns= renames {missing_src} but the log has only {list(df.columns)}"
            )
        df = df.rename(columns=dict(columns))
        check_columns(df, InteractionsError, "the interaction log (after columns= renames)")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InteractionsError(
            f"the interaction log has no {', '.join(repr(c) for c in missing)} column; it has {list(df.columns)} "
            "(map yours with columns={'your_name': 'user_id', ...})"
        )
    if len(df) == 0:
        raise InteractionsError("the interaction log is empty: expected at least one (user_id, item_id, timestamp) row")
    out = pd.DataFrame(
        {
            "user_id": clean_ids(df["user_id"], "user_id", InteractionsError, "the interaction log"),
            "item_id": clean_ids(df["item_id"], "item_id", InteractionsError, "the interaction log"),
            "timestamp": _timestamps(df["timestamp"]),
        }
    )
    if "event" in df.columns:
        out["event"] = df["event"].fillna("").astype(str).to_numpy()
    out["weight"] = _weights(df["weight"]) if "weight" in df.columns else np.ones(len(df), dtype=np.float32)
    dup = out.duplicated(["user_id", "item_id", "timestamp"], keep="first").to_numpy()
    report = ValidationReport(n_input=len(out), n_duplicates=int(dup.sum()))
    return out.loc[~dup].reset_index(drop=True), report


def _timestamps(col: pd.Series) -> np.ndarray:
    """int64 unix seconds from numbers, datetimes or date/time strings, each within TIME_RANGE."""
    if pd.api.types.is_bool_dtype(col):
        raise InteractionsError(f"timestamp column holds booleans ({_plain(col.iloc[0])!r} in row 0): {_EXPECTED_TIME}")
    seconds = pd.Series(np.nan, index=col.index)
    is_number = np.zeros(len(col), dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(col):
        dates = col if col.dt.tz is not None else col.dt.tz_localize("UTC")
    else:
        numeric = pd.to_numeric(col, errors="coerce")
        is_number = numeric.notna().to_numpy()
        seconds[is_number] = numeric[is_number].astype(np.float64)
        # What is not a number is parsed as a date/time; one inferred format is fast,
        # and only rows it did not fit are parsed one by one.
        text = col.where(~is_number)
        with warnings.catch_warnings():  # pandas warns when it infers one format for the column
            warnings.simplefilter("ignore", UserWarning)
            dates = pd.to_datetime(text, errors="coerce", utc=True)
            retry = dates.isna() & text.notna()
            if retry.any():
                dates[retry] = pd.to_datetime(text[retry], errors="coerce", utc=True, format="mixed")
    ok = dates.notna().to_numpy()
    if ok.any():
        seconds[ok] = _epoch_seconds(dates[ok]).astype(np.float64)
    values = seconds.to_numpy(np.float64)
    _first_bad(col, np.isnan(values))
    low, high = TIME_RANGE
    outside = ~((values >= low) & (values < high))  # also catches inf and overflowing numbers such as 1e30
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        millis = is_number[row] and low <= values[row] / 1000 < high
        raise InteractionsError(
            f"timestamp in row {row} is {_plain(col.iloc[row])!r}, outside 1970-01-01 .. 2100-01-01 "
            f"({int(outside.sum())} bad rows in all)" + ("; it looks like milliseconds: divide by 1000" if millis else "")
            + f": {_EXPECTED_TIME}"
        )
    return np.floor(values).astype(np.int64)


_EXPECTED_TIME = "expected unix seconds or a date/time such as '2024-05-01 12:30:00'"


def _epoch_seconds(dates: pd.Series) -> pd.Series:
    """Whole seconds since 1970 (floored) of tz-aware datetimes, whatever their resolution (pandas 3 varies it)."""
    # Through microseconds, not a subtraction: Timestamp(0) is in ns, which overflows past 2262.
    return dates.dt.as_unit("us").astype("int64") // 1_000_000


def _first_bad(col: pd.Series, bad: np.ndarray) -> None:
    """Raise naming the first row whose timestamp is missing or unparseable."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = col.iloc[row]
        what = "missing" if pd.isna(value) else f"{_plain(value)!r}, which is not a time"
        raise InteractionsError(f"timestamp in row {row} is {what} ({int(bad.sum())} bad rows in all): {_EXPECTED_TIME}")


def _weights(col: pd.Series) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InteractionsError(
            f"weight in row {row} is {_plain(col.iloc[row])!r} ({int(bad.sum())} bad rows in all): "
            "expected a finite number >= 0"
        )
    if not (values > 0).any():
        raise InteractionsError(
            f"every weight is 0 ({len(values)} rows): a model cannot learn from that; expected at least one "
            "weight > 0 (rows of weight 0 are kept, but carry no preference)"
        )
    return values.astype(np.float32)


def _plain(value: object) -> object:
    """A NumPy scalar as the Python value, so messages read 'nan', not 'np.float64(nan)'."""
    return value.item() if isinstance(value, np.generic) else value
