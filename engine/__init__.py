"""Multimodal product recommendation: the retrieval and personalisation API.

Example:
    >>> from engine import Catalog, Engine                     # doctest: +SKIP
    >>> engine = Engine.build(Catalog.from_file("sample_catalog/items.csv"))  # doctest: +SKIP
    >>> engine.similar("food-apple", k=5)                       # doctest: +SKIP
"""

from __future__ import annotations

from .catalog import Catalog, CatalogColumns
from .config import EngineConfig
from .engine import Engine
from .events import EventLog
from .filters import ItemFilter
from .interactions import Interactions
from .results import Match, Upserted

__all__ = [
    "Catalog", "CatalogColumns", "Engine", "EngineConfig", "EventLog", "Interactions", "ItemFilter", "Match", "Upserted",
]
