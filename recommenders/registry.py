"""Recommender models by name: a plain dict from name to "module:Class", imported on first use.

Example:
    >>> list_models()[:3]
    ['als', 'biasedmf', 'bprmf']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.persistence import MODEL_KIND, load_folder
from core.registry import resolve

from .base import Recommender

MODELS: dict[str, str] = {
    "popularity": "recommenders.baselines:Popularity",
    "itemknn": "recommenders.baselines:ItemKNN",
    "content": "recommenders.baselines:Content",
    "als": "recommenders.mf:ALS",
    "bprmf": "recommenders.mf:BPRMF",
    "neumf": "recommenders.neumf:NeuMF",
    "gru4rec": "recommenders.gru4rec:GRU4Rec",
    "sasrec": "recommenders.sasrec:SASRec",
    "multdae": "recommenders.autoencoders:MultDAE",
    "multvae": "recommenders.autoencoders:MultVAE",
    "rbm": "recommenders.rbm:RBM",
    "biasedmf": "recommenders.biasedmf:BiasedMF",
    "lightgcn": "recommenders.lightgcn:LightGCN",
    "ease": "recommenders.ease:EASE",
    "hybrid": "recommenders.hybrid:Hybrid",
}


def list_models() -> list[str]:
    """Names of every model, sorted.

    Example:
        >>> "sasrec" in list_models()
        True
    """
    return sorted(MODELS)


def model_class(name: str) -> type[Recommender]:
    """The class registered as `name` (its capabilities, config class and tuning grid are class attributes).

    Raises:
        UnknownComponentError: `name` is not registered; the message lists the valid names.

    Example:
        >>> model_class("sasrec").explains
        True
    """
    cls: type[Recommender] = resolve(MODELS, name, "model")
    return cls


def create_model(name: str, **overrides: Any) -> Recommender:
    """A new, unfitted model; `overrides` replace fields of its default config.

    Example:
        >>> create_model("popularity").name
        'popularity'
    """
    return model_class(name)(**overrides)


def load_model(directory: str | Path) -> Recommender:
    """Load any model saved with `Recommender.save`: the manifest names its class.

    Example:
        >>> load_model("models/shop/model").name   # doctest: +SKIP
        'neumf'
    """
    return load_folder(
        directory, MODEL_KIND, lambda folder, manifest: model_class(manifest["model"]).from_parts(folder, manifest)
    )
