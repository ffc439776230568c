"""Multimodal product recommendation: the retrieval and personalisation API.

Example:
    >>> from engine import Catalog, Engine                     # doctest: +SKIP
    >>> engine = Engine.build(Catalog.from_file("sample_catalog/items.csv"))  # doctest: +SKIP
    >>> engine.similar("food-apple", k=5)                       # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

# Lazy exports (PEP 562): `encoders` and `index` import `engine.errors`, and an
# eager import of the facade here would import them back in a cycle.
_EXPORTS = {
    "Catalog": "engine.catalog",
    "CatalogColumns": "engine.catalog",
    "Engine": "engine.engine",
    "EngineConfig": "engine.config",
    "Match": "engine.results",
    "Interactions": "engine.interactions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
