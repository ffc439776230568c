"""Result types returned by the public API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Match:
    """One recommended or retrieved item.

    Attributes:
        item_id: the catalog's raw id.
        score: higher is better; comparable only within one result list.
        fields: the item's catalog fields (title, category, price, ...), read-only.
        source: which path produced it: "similar", "search", a model name
            (e.g. "neumf"), "content" (fallback on the history's content) or "popularity".
        because: the history item that led to this candidate, when there is one.

    Example:
        >>> Match("sku-1", 0.9, {"title": "Red shoe"}).fields["title"]
        'Red shoe'
    """

    item_id: str
    score: float
    fields: Mapping[str, Any] = field(default_factory=dict)
    source: str = "similar"
    because: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    @property
    def title(self) -> str:
        """The item's title field, or '' when the catalog has none."""
        return str(self.fields.get("title", ""))


@dataclass(frozen=True)
class Skipped:
    """An item that could not be encoded, and why."""

    item_id: str
    reason: str
