"""Recommender models by name: a plain dict, filled as model modules are imported."""

from __future__ import annotations

import importlib
from typing import Any

from core.errors import UnknownComponentError
from .base import Recommender

MODELS: dict[str, type[Recommender]] = {}

# Every module that defines models; importing one registers its classes.
_MODULES = (
    "baselines",
    "neumf",
    "gru4rec",
    "sasrec",
    "autoencoders",
    "rbm",
    "biasedmf",
    "lightgcn",
)


def register(cls: type[Recommender]) -> type[Recommender]:
    """Add a model class under its `name`."""
    MODELS[cls.name] = cls
    return cls


def list_models() -> list[str]:
    """Names of every model, sorted."""
    _import_all()
    return sorted(MODELS)


def create_model(name: str, **overrides: Any) -> Recommender:
    """A new, unfitted model; `overrides` replace fields of its default config.

    Example:
        >>> create_model("popularity").name
        'popularity'
    """
    _import_all()
    if name not in MODELS:
        raise UnknownComponentError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")
    return MODELS[name](**overrides)


def _import_all() -> None:
    """Import every model module so each registers itself."""
    for module in _MODULES:
        importlib.import_module(f"{__package__}.{module}")
