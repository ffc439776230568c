"""Result types returned by the public API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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


def skipped_lines(skipped: tuple[Skipped, ...], shown: int = 20) -> list[str]:
    """The indented "id: reason" lines of a report, the first `shown` of them and a count of the rest.

    Example:
        >>> skipped_lines((Skipped("a", "unreadable"),))
        ['    a: unreadable']
    """
    lines = [f"    {s.item_id}: {s.reason}" for s in skipped[:shown]]
    if len(skipped) > shown:
        lines.append(f"    ... and {len(skipped) - shown} more")
    return lines


@dataclass(frozen=True)
class Upserted:
    """What `Engine.upsert` did, ids in the order the items were given.

    Attributes:
        added: ids that were new to the catalog.
        updated: ids already in the catalog whose row changed (fields or content); their
            fields were replaced.
        reencoded: the updated ids whose content (text, image bytes) changed and that got a
            new vector; an update of other fields (price, stock, ...) keeps the vector.
        skipped: upserted items that could not be encoded, and why (they have no vector now).

    Example:
        >>> Upserted(added=("sku-9",), updated=("sku-1",)).to_dict()["updated"]
        ['sku-1']
    """

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    reencoded: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    def to_dict(self) -> dict[str, list]:
        """Plain lists, JSON-ready: skipped items as {"item_id", "reason"}."""
        return {
            "added": list(self.added),
            "updated": list(self.updated),
            "reencoded": list(self.reencoded),
            "skipped": [asdict(s) for s in self.skipped],
        }
