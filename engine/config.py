"""Engine configuration: one frozen dataclass per component, nested, saved as JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidArgumentError
from encoders.alignment import AlignmentConfig
from encoders.config import EncoderConfig, ImageLimits
from encoders.fusion import FusionConfig
from index.config import IndexConfig
from recommenders import list_models


@dataclass(frozen=True)
class RecommendConfig:
    """How `Engine.recommend` gathers and orders candidates.

    Attributes:
        model: registry name of the personalisation model (see `recommenders.list_models()`), or
            "auto" (the default): `Engine.fit` picks it on the log's own validation (`engine.selection`).
        n_candidates: candidates gathered per request before re-ranking.
        recent_items: how many of the newest history items seed content candidates.
        recency_decay: weight of the i-th newest history item is decay**i.
        model_candidates: how many of the model's own top items join the candidate pool.
        candidate_rerank_factor: the index's HNSW over-fetch for content candidates. They are
            re-ordered by the model anyway, so this trades a little recall for speed: at 100k
            items, 3 finds 0.96 of the exact 20 neighbours (10 finds 0.98) in 60% of the time.
    """

    model: str = "auto"
    n_candidates: int = 200
    recent_items: int = 10
    recency_decay: float = 0.8
    model_candidates: int = 100
    candidate_rerank_factor: int = 3

    def __post_init__(self) -> None:
        if self.model != "auto" and self.model not in list_models():
            raise InvalidArgumentError(
                f"RecommendConfig.model must be 'auto' or a model name ({', '.join(list_models())}), got {self.model!r}"
            )
        minimum = {"n_candidates": 1, "recent_items": 1, "model_candidates": 0, "candidate_rerank_factor": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidArgumentError(f"RecommendConfig.{name} must be an integer >= {low}, got {value!r}")
        if isinstance(self.recency_decay, bool) or not 0.0 < self.recency_decay <= 1.0:
            raise InvalidArgumentError(f"RecommendConfig.recency_decay must lie in (0, 1], got {self.recency_decay!r}")


@dataclass(frozen=True)
class EngineConfig:
    """Everything `Engine.build` needs besides the catalog.

    `images` bounds every image read while building and querying (see `ImageLimits`);
    it does not change vectors, so a model built under other limits is reused as a cache.
    `alignment` says whether image and text vectors are aligned at index time (see
    `encoders.alignment`); a folder saved before it existed loads unaligned.

    Example:
        >>> EngineConfig(encoders=EncoderConfig(image=None)).encoders.text
        'minilm-l6'
    """

    encoders: EncoderConfig = field(default_factory=EncoderConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    images: ImageLimits = field(default_factory=ImageLimits)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineConfig:
        """Inverse of `to_dict`; unknown sections or fields are an error naming them (a missing one takes its default)."""
        parts = {
            "encoders": EncoderConfig, "fusion": FusionConfig, "index": IndexConfig,
            "recommend": RecommendConfig, "images": ImageLimits, "alignment": AlignmentConfig,
        }
        if not isinstance(data, dict):
            raise InvalidArgumentError(f"an engine config is a dict of sections, got {type(data).__name__}")
        unknown = set(data) - set(parts)
        if unknown:
            raise InvalidArgumentError(f"unknown config sections {sorted(unknown)}; expected {sorted(parts)}")
        sections = {}
        for name, kind in parts.items():
            values = data.get(name, {})
            names = {f.name for f in dataclasses.fields(kind)}
            if not isinstance(values, dict) or set(values) - names:
                extra = sorted(set(values) - names) if isinstance(values, dict) else values
                raise InvalidArgumentError(f"config section {name!r} has unknown fields {extra!r}; expected {sorted(names)}")
            sections[name] = kind(**values)
        return cls(**sections)
