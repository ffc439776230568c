"""Which column of a shop's table holds each field the engine uses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from core.errors import InvalidArgumentError


@dataclass(frozen=True)
class CatalogColumns:
    """Which column of the source table holds each field the engine uses.

    Only `id` is required. A catalog without `image` is indexed from text, one
    without `title` and `description` from images. `price` and `stock` feed the
    filters (`ItemFilter(max_price=..., in_stock=True)`) and come back as numbers.

    Example:
        >>> CatalogColumns(id="sku", title="name", price="cost_eur").price
        'cost_eur'
    """

    id: str = "id"
    title: str = "title"
    description: str = "description"
    category: str = "category"
    image: str = "image"
    price: str = "price"
    stock: str = "stock"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidArgumentError(f"CatalogColumns.{f.name} must be a column name (non-empty text), got {value!r}")

    def to_dict(self) -> dict[str, str]:
        """Field -> source column name, as written to a model's manifest."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CatalogColumns:
        """The inverse of `to_dict`; unknown keys are an error naming them (fields left out keep their defaults)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgumentError(f"unknown CatalogColumns field(s) {unknown}; valid ones: {', '.join(sorted(known))}")
        return cls(**data)

    def for_items(self, names: Iterable[str]) -> CatalogColumns:
        """This mapping for new items whose table has these columns: one that uses our name for a field is fine too."""
        present = set(names)
        return CatalogColumns(**{
            f: f if source not in present and f in present else source for f, source in self.to_dict().items()
        })
