"""Components by name: one idiom for encoders, index backends and recommender models.

A registry is a plain dict from a name to `"package.module:attribute"`, the class
or factory function that builds the component. Nothing is imported until a name
is resolved, so listing names is free and a heavy module (timm, transformers,
torch) loads only when its component is used.

Example:
    >>> resolve({"dict": "builtins:dict"}, "dict", "container")()
    {}
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .errors import UnknownComponentError


def resolve(registry: Mapping[str, str], name: str, what: str) -> Any:
    """The class or factory registered as `name`, imported now.

    Raises:
        UnknownComponentError: `name` is not registered; the message lists the valid names.
    """
    if not isinstance(name, str) or name not in registry:
        raise UnknownComponentError(f"unknown {what} {name!r}; valid names: {', '.join(sorted(registry))}")
    module, _, attribute = registry[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
