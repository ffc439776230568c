"""Catalog browsing for the gallery grid: pages of items, filtered by category and title words.

What a page needs from a catalog (ids, lower-cased titles, categories) is built once
per catalog snapshot and kept until a write publishes the next one, so a page costs
a mask and a slice rather than a copy of the table.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidArgumentError
from engine.catalog import Catalog

from .jsonable import item_fields


@dataclass(frozen=True)
class _View:
    catalog: Catalog
    ids: list[str]
    titles: pd.Series  # lower-cased
    categories: np.ndarray  # object, '' when none
    names: list[str]  # sorted distinct categories


class Browser:
    """Pages of a catalog; thread-safe, one cached view of the newest catalog it was asked about.

    Example:
        >>> Browser().page(engine.catalog, offset=0, limit=48, categories=["food"], q="apple")  # doctest: +SKIP
        {'items': [...], 'total': 5, 'categories': ['food', 'tools']}
    """

    def __init__(self) -> None:
        self._view: _View | None = None
        self._lock = threading.Lock()

    def _view_of(self, catalog: Catalog) -> _View:
        view = self._view
        if view is not None and view.catalog is catalog:
            return view
        with self._lock:
            view = self._view
            if view is None or view.catalog is not catalog:
                frame_columns = catalog.column_names
                titles = catalog.column("title") if "title" in frame_columns else pd.Series([""] * len(catalog))
                cats = catalog.column("category") if "category" in frame_columns else pd.Series([""] * len(catalog))
                cats = cats.fillna("").astype(str).to_numpy(dtype=object)
                view = _View(
                    catalog,
                    catalog.ids,
                    titles.fillna("").astype(str).str.lower().reset_index(drop=True),
                    cats,
                    sorted({c for c in cats.tolist() if c}),
                )
                self._view = view
        return view

    def page(
        self, catalog: Catalog, offset: int, limit: int, categories: Sequence[str] | None = None, q: str | None = None
    ) -> dict[str, Any]:
        """Items offset to offset + limit of those matching; an unknown category is an error naming the valid ones."""
        view = self._view_of(catalog)
        mask = np.ones(len(view.ids), dtype=bool)
        if categories:
            unknown = sorted(set(categories) - set(view.names))
            if unknown:
                raise InvalidArgumentError(f"unknown categories {unknown}; the catalog has: {', '.join(view.names)}")
            mask &= np.isin(view.categories, list(categories))
        if q is not None and q.strip():
            mask &= view.titles.str.contains(q.strip().lower(), regex=False).to_numpy(dtype=bool)
        rows = np.flatnonzero(mask)
        chosen = rows[offset : offset + limit]
        items = [
            {"item_id": view.ids[r], "score": None, "fields": item_fields(catalog.fields(int(r)), catalog.base_dir),
             "source": "catalog", "because": None}
            for r in chosen
        ]
        return {"items": items, "total": int(len(rows)), "categories": view.names}
