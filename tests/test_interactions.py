"""Interaction log validation and the mapping from raw ids to rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import InteractionsError, InvalidArgumentError, UnknownUserError
from engine.interactions import Interactions, ValidationReport

ITEMS = ["a", "b", "c", "d"]


def _log(**columns: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"], "timestamp": [3, 1, 2]}
    base.update(columns)
    return pd.DataFrame(base)


def test_maps_raw_ids_to_rows_in_vocabulary_order() -> None:
    log = Interactions(_log())
    data = log.to_data(["u2", "u1"], ITEMS)
    assert data.users.tolist() == [1, 1, 0]
    assert data.items.tolist() == [0, 1, 0]
    assert data.timestamps.tolist() == [3, 1, 2]
    assert data.weights.tolist() == [1.0, 1.0, 1.0]
    assert (data.n_users, data.n_items) == (2, 4)


def test_timestamps_accept_unix_seconds_strings_and_datetimes() -> None:
    log = Interactions(_log(timestamp=["2024-05-01", "2024-05-01 00:00:10", 1714521600]))
    assert log.frame["timestamp"].tolist() == [1714521600, 1714521610, 1714521600]
    assert log.frame["timestamp"].dtype == np.int64
    dated = Interactions(_log(timestamp=pd.to_datetime(["1970-01-01 00:00:05"] * 3)))
    assert dated.frame["timestamp"].tolist() == [5, 5, 5]
    numeric_text = Interactions(_log(timestamp=["10", "20", "30"]))
    assert numeric_text.frame["timestamp"].tolist() == [10, 20, 30]


def test_column_renames_event_and_weight() -> None:
    df = pd.DataFrame({"customer": ["x"], "sku": ["a"], "when": [5], "event": ["buy"], "weight": [2.5]})
    log = Interactions(df, columns={"customer": "user_id", "sku": "item_id", "when": "timestamp"})
    assert log.frame.to_dict("records") == [
        {"user_id": "x", "item_id": "a", "timestamp": 5, "event": "buy", "weight": 2.5}
    ]


def test_duplicates_are_dropped_and_reported() -> None:
    log = Interactions(_log(user_id=["u1", "u1", "u1"], item_id=["a", "a", "a"], timestamp=[1, 1, 2]))
    assert len(log) == 2
    assert log.report == ValidationReport(n_input=3, n_duplicates=1)
    assert log.report.n_kept == 2


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_from_file_keeps_ids_as_written(tmp_path: Path, suffix: str) -> None:
    df = pd.DataFrame({"user_id": ["007", "8"], "item_id": ["0042", "a"], "timestamp": [1, 2]})
    path = tmp_path / f"log{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path)
    log = Interactions.from_file(path)
    assert log.frame["user_id"].tolist() == ["007", "8"]
    assert log.frame["item_id"].tolist() == ["0042", "a"]


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InteractionsError, match="'.*nope.csv' does not exist"):
        Interactions.from_file(tmp_path / "nope.csv")
    bad = tmp_path / "log.json"
    bad.write_text("{}")
    with pytest.raises(InteractionsError, match=r"has suffix '\.json'; expected one of \.csv, \.jsonl, \.parquet"):
        Interactions.from_file(bad)


@pytest.mark.parametrize(
    ("df", "message"),
    [
        (pd.DataFrame({"user_id": [], "item_id": [], "timestamp": []}), "the interaction log is empty"),
        (pd.DataFrame({"user_id": ["u"], "item_id": ["a"]}), r"no 'timestamp' column; it has \['user_id', 'item_id'\]"),
        (_log(timestamp=[1, "yesterday", 3]), r"timestamp in row 1 is 'yesterday', which is not a time"),
        (_log(timestamp=[1, 2, None]), r"timestamp in row 2 is missing \(1 bad rows in all\)"),
        (_log(timestamp=[1.0, float("nan"), 3.0]), r"timestamp in row 1 is missing"),
        (_log(weight=[1.0, -2.0, 1.0]), r"weight in row 1 is -2.0 .*expected a finite number >= 0"),
        (_log(weight=[float("nan"), 1.0, 1.0]), r"weight in row 0 is nan"),
        (_log(item_id=["a", None, "b"]), r"row 1 has an empty item_id"),
    ],
)
def test_bad_logs_raise_naming_the_problem(df: pd.DataFrame, message: str) -> None:
    with pytest.raises(InteractionsError, match=message):
        Interactions(df)


def test_bad_rename_names_the_missing_column() -> None:
    with pytest.raises(InteractionsError, match=r"renames \['sku'\]"):
        Interactions(_log(), columns={"sku": "item_id"})


def test_unknown_items_raise_with_examples_and_count() -> None:
    log = Interactions(_log(item_id=["zz", "b", "yy"]))
    expected = r"2 interactions name 2 item ids that are not in the catalog \(4 items\), e\.g\. 'zz', 'yy'"
    with pytest.raises(InteractionsError, match=expected):
        log.validate_items(ITEMS)
    with pytest.raises(InteractionsError, match="on_unknown='drop'"):
        log.to_data(["u1", "u2"], ITEMS)


def test_unknown_items_can_be_dropped_and_reported() -> None:
    log = Interactions(_log(item_id=["zz", "b", "a"]))
    kept = log.validate_items(ITEMS, on_unknown="drop")
    assert kept.frame["item_id"].tolist() == ["b", "a"]
    assert kept.report.n_unknown_items == 1 and kept.report.n_kept == 2
    assert log.report.n_unknown_items == 0  # the original is untouched
    data = log.to_data(["u1", "u2"], ITEMS, on_unknown="drop")
    assert data.items.tolist() == [1, 0]


def test_unknown_users_raise_unless_extended() -> None:
    log = Interactions(_log())
    with pytest.raises(UnknownUserError, match=r"1 user ids are not in the vocabulary \(1 users\), e\.g\. 'u2'"):
        log.to_data(["u1"], ITEMS)
    data = log.to_data(["u0", "u1"], ITEMS, extend_users=True)
    assert data.n_users == 3
    assert log.user_vocabulary(["u0", "u1"]) == ["u0", "u1", "u2"]
    assert data.users.tolist() == [1, 1, 2]


def test_user_vocabulary_is_sorted_and_deterministic() -> None:
    log = Interactions(_log(user_id=["b", "c", "a"]))
    assert log.user_vocabulary() == ["a", "b", "c"]


def test_a_vocabulary_with_repeated_ids_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match=r"the item vocabulary repeats ids, e\.g\. 'a'"):
        Interactions(_log()).to_data(["u1", "u2"], ["a", "b", "a"])
