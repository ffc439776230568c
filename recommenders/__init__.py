"""Recommender models behind one interface (`Recommender`), by name (`create_model`, `load_model`)."""

from __future__ import annotations

from .base import Recommender
from .config import ModelConfig
from .registry import create_model, list_models, load_model, model_class
from .training import TrainingLog, seed_everything

__all__ = [
    "ModelConfig",
    "Recommender",
    "TrainingLog",
    "create_model",
    "list_models",
    "load_model",
    "model_class",
    "seed_everything",
]
