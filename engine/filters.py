"""Filters on catalog fields, turned into the id filters the vector index runs."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import CatalogError, InvalidArgumentError
from index.base import IdFilter

from .catalog import Catalog


@dataclass(frozen=True)
class ItemFilter:
    """Which items may be returned.

    Attributes:
        categories: only items of these categories (None: any; an empty collection: none).
        exclude: never these item ids.
        min_price / max_price: bounds on the `price` column, inclusive; finite numbers >= 0.
            An item with no price never passes a price bound.
        in_stock: only items whose `stock` column is > 0 (an empty stock cell counts as 0).

    Raises:
        InvalidArgumentError: a bound that is not a finite number >= 0 (NaN, inf, a string,
            a boolean), min_price above max_price, categories or exclude that are not strings.

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
        object.__setattr__(self, "categories", None if self.categories is None else _strings(self.categories, "categories"))
        object.__setattr__(self, "exclude", _strings(self.exclude, "exclude"))
        for name in ("min_price", "max_price"):
            _check_bound(name, getattr(self, name))
        if not isinstance(self.in_stock, (bool, np.bool_)):
            raise InvalidArgumentError(f"in_stock must be True or False, got {self.in_stock!r}")
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
            price = catalog.numbers("price")  # NaN (no price) fails both comparisons
            if self.min_price is not None:
                mask &= price >= self.min_price
            if self.max_price is not None:
                mask &= price <= self.max_price
        if self.in_stock:
            if "stock" not in catalog.column_names:
                raise CatalogError("in_stock=True needs a 'stock' column in the catalog")
            mask &= np.nan_to_num(catalog.numbers("stock"), nan=0.0) > 0
        ids = np.asarray(catalog.ids, dtype=object)[mask]
        return IdFilter(include=frozenset(ids.tolist()), exclude=exclude)


def as_filter(value: ItemFilter | None) -> ItemFilter:
    """None -> a filter that allows everything; anything but an ItemFilter is an error."""
    if value is None:
        return ItemFilter()
    if not isinstance(value, ItemFilter):
        raise InvalidArgumentError(f"filter must be an ItemFilter, got {type(value).__name__}: {value!r}")
    return value


def _strings(value: Any, name: str) -> frozenset[str]:
    """One string or a collection of strings, as a frozenset; anything else is an error naming it."""
    if isinstance(value, str):
        return frozenset([value])
    if not isinstance(value, Iterable) or isinstance(value, (bytes, dict)):
        raise InvalidArgumentError(f"{name} must be a string or a collection of strings, got {type(value).__name__} {value!r}")
    values = list(value)  # once: a generator can be read only once
    wrong = [v for v in values if not isinstance(v, str)]
    if wrong:
        raise InvalidArgumentError(f"{name} must hold strings, got {type(wrong[0]).__name__} {wrong[0]!r}")
    return frozenset(values)


def _check_bound(name: str, value: Any) -> None:
    """A price bound is None or a finite number >= 0."""
    if value is None:
        return
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not number or not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(f"{name} must be a finite number >= 0 or None, got {type(value).__name__} {value!r}")
