"""Partial updates: the fields a shop changes (a price, a stock count) merged into the catalog's rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.errors import InvalidArgumentError

from .catalog import Catalog
from .tables import clean_id


def merged_rows(catalog: Catalog, changes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each change (an id and the fields to change) applied to that item's current row.

    Field names may be the shop's own (the catalog's `CatalogColumns`) or the engine's.
    Fields a change does not name keep their values; `None` empties a field.

    Raises:
        InvalidArgumentError: a change that is not a dict, or has no id.
        UnknownItemError: an id not in the catalog (use `upsert` to add items).

    Example:
        >>> merged_rows(catalog, [{"id": "sku-1", "price": 9.5}])[0]["price"]   # doctest: +SKIP
        9.5
    """
    if isinstance(changes, Mapping) or not isinstance(changes, Iterable):
        raise InvalidArgumentError(f"changes must be a list of dicts, got {type(changes).__name__}")
    ours = {source: name for name, source in catalog.columns.to_dict().items()}
    rows = []
    for i, change in enumerate(changes):
        if not isinstance(change, Mapping):
            raise InvalidArgumentError(f"change {i} is a {type(change).__name__} ({change!r}); expected a dict of fields")
        renamed = {ours.get(str(k), str(k)): v for k, v in change.items()}
        if "id" not in renamed:
            raise InvalidArgumentError(f"change {i} ({dict(change)!r}) has no id field ({catalog.columns.id!r})")
        row = catalog.fields(catalog.row(clean_id(renamed["id"])))
        row.update({k: v for k, v in renamed.items() if k != "id"})
        rows.append(row)
    return rows
