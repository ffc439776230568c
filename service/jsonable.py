"""Engine values as JSON: NaN and infinity become null, NumPy and pandas values plain Python."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.results import Match


def jsonable(value: Any) -> Any:
    """A value JSON can hold without loss of meaning: strict JSON has no NaN, so a missing number is null.

    Example:
        >>> jsonable({"price": float("nan"), "stock": np.int64(3), "tags": np.array(["a"])})
        {'price': None, 'stock': 3, 'tags': ['a']}
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):  # pd.Timestamp is a datetime
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return jsonable(float(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def score(value: float | None) -> float | None:
    """A score as JSON: a finite float, else null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def item_fields(fields: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """An item's fields as JSON, its image path relative to the catalog folder.

    The engine keeps image paths absolute; a client has no use for the server's
    directory layout, and the relative path is what PUT /items takes back.

    Example:
        >>> item_fields({"image": "/srv/shop/img/a.png", "price": float("nan")}, Path("/srv/shop"))
        {'image': 'img/a.png', 'price': None}
    """
    out = jsonable(fields)
    image = out.get("image")
    if isinstance(image, str) and image and Path(image).is_absolute():
        try:
            out["image"] = Path(image).relative_to(base_dir).as_posix()
        except ValueError:
            pass  # outside the folder (a catalog with allow_outside): the path is all there is
    return out


def match_json(match: Match, base_dir: Path) -> dict[str, Any]:
    """One entry of an ItemList: item_id, score, fields, source, because."""
    return {
        "item_id": match.item_id,
        "score": score(match.score),
        "fields": item_fields(match.fields, base_dir),
        "source": match.source,
        "because": match.because,
    }


def item_list(matches: list[Match], base_dir: Path) -> dict[str, Any]:
    """An ItemList answer: the matches in the engine's order (`base_dir`: the catalog's folder)."""
    return {"items": [match_json(m, base_dir) for m in matches]}
