"""Model settings: the config every model's own config extends, and the checks they share."""

from __future__ import annotations

import dataclasses

from core.errors import InvalidArgumentError


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Settings every model shares; each model subclasses this with its own.

    Attributes:
        seed: seeds Python, NumPy and torch at the start of a fit.
        epochs: most epochs a model that trains in epochs runs.
        patience: epochs without a better validation score before training stops.
        show_progress: draw a progress bar over the epochs.
    """

    seed: int = 0
    epochs: int = 30
    patience: int = 3
    show_progress: bool = True


def check_positive(owner: str, config: ModelConfig, ints: tuple[str, ...], floats: tuple[str, ...]) -> None:
    """Raise `InvalidArgumentError` unless the named config fields are positive ints / floats.

    Example:
        >>> check_positive("ALS", ALSConfig(factors=0), ("factors",), ())   # doctest: +SKIP
        InvalidArgumentError: ALS factors must be a positive integer, got 0
    """
    for field in ints:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidArgumentError(f"{owner} {field} must be a positive integer, got {value!r}")
    for field in floats:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidArgumentError(f"{owner} {field} must be > 0, got {value!r}")


def check_fraction(owner: str, config: ModelConfig, fields: tuple[str, ...]) -> None:
    """Raise `InvalidArgumentError` unless the named fields lie in [0, 1) (dropout rates)."""
    for field in fields:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise InvalidArgumentError(f"{owner} {field} must lie in [0, 1), got {value!r}")


def check_non_negative(owner: str, config: ModelConfig, fields: tuple[str, ...]) -> None:
    """Raise `InvalidArgumentError` unless the named fields are numbers >= 0 (penalties, weights)."""
    for field in fields:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise InvalidArgumentError(f"{owner} {field} must be >= 0, got {value!r}")
