"""Recommender models behind one interface (`Recommender`), by name (`create_model`)."""

from __future__ import annotations

from .base import ModelConfig, Recommender, seed_everything
from .registry import create_model, list_models, register

__all__ = ["ModelConfig", "Recommender", "create_model", "list_models", "register", "seed_everything"]
