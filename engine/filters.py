"""Filters on catalog fields, turned into the id filters the vector index runs."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import CatalogError, InvalidArgumentError
from index.base import IdFilter

from .catalog import Catalog


@dataclass(frozen=True)
class ItemFilter:
    """Which items may be returned.

    Attributes:
        categories: only items of these categories (None: any).
        exclude: never these item ids.
        min_price / max_price: bounds on the `price` column, inclusive.
        in_stock: only items whose `stock` column is > 0.

    Example:
        >>> ItemFilter(categories=["food", "drink"], max_price=5).categories == {"food", "drink"}
        True
    """

    categories: Collection[str] | None = None
    exclude: Collection[str] = ()
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.categories, str):
            object.__setattr__(self, "categories", frozenset([self.categories]))
        elif self.categories is not None:
            object.__setattr__(self, "categories", frozenset(self.categories))
        if isinstance(self.exclude, str):
            object.__setattr__(self, "exclude", frozenset([self.exclude]))
        else:
            object.__setattr__(self, "exclude", frozenset(self.exclude))
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise InvalidArgumentError(f"min_price {self.min_price} is above max_price {self.max_price}")

    def restricts_rows(self) -> bool:
        """True when the filter needs a row mask (anything beyond excluding ids)."""
        return self.categories is not None or self.min_price is not None or self.max_price is not None or self.in_stock

    def to_id_filter(self, catalog: Catalog, also_exclude: Collection[str] = ()) -> IdFilter:
        """The index-level filter for this catalog; unknown categories are an error listing the valid ones."""
        exclude = frozenset(self.exclude) | frozenset(also_exclude)
        if not self.restricts_rows():
            return IdFilter(include=None, exclude=exclude)
        mask = np.ones(len(catalog), dtype=bool)
        if self.categories is not None:
            column = catalog.column("category")
            valid = set(column.unique())
            unknown = sorted(set(self.categories) - valid)
            if unknown:
                raise InvalidArgumentError(
                    f"unknown categories {unknown}; the catalog has: {', '.join(sorted(map(str, valid)))}"
                )
            mask &= column.isin(list(self.categories)).to_numpy()
        if self.min_price is not None or self.max_price is not None:
            price = pd.to_numeric(catalog.column("price"), errors="coerce").to_numpy(dtype=float)
            if self.min_price is not None:
                mask &= price >= self.min_price
            if self.max_price is not None:
                mask &= price <= self.max_price
        if self.in_stock:
            if "stock" not in catalog.frame.columns:
                raise CatalogError("in_stock=True needs a 'stock' column in the catalog")
            stock = pd.to_numeric(catalog.column("stock"), errors="coerce").fillna(0).to_numpy(dtype=float)
            mask &= stock > 0
        ids = np.asarray(catalog.ids, dtype=object)[mask]
        return IdFilter(include=frozenset(ids.tolist()), exclude=exclude)


def as_filter(value: ItemFilter | None) -> ItemFilter:
    """None -> a filter that allows everything; anything but an ItemFilter is an error."""
    if value is None:
        return ItemFilter()
    if not isinstance(value, ItemFilter):
        raise InvalidArgumentError(f"filter must be an ItemFilter, got {type(value).__name__}: {value!r}")
    return value
