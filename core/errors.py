"""Exceptions raised at the engine's public boundary.

Every message names the offending value and says what would be valid.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error this library raises on purpose."""


class CatalogError(EngineError, ValueError):
    """The catalog table is malformed: missing column, duplicate ids, empty."""


class UnknownItemError(EngineError, KeyError):
    """An item id that is not in the catalog."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class UnknownUserError(EngineError, KeyError):
    """A user id the model never saw, where the caller asked for strictness."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ImageError(EngineError, ValueError):
    """An image file that is missing or cannot be decoded."""


class InvalidArgumentError(EngineError, ValueError):
    """A bad argument value, such as k <= 0 or a vector of the wrong size."""


class InteractionsError(EngineError, ValueError):
    """An interaction log that cannot be used: empty, unknown ids, bad timestamps."""


class FormatVersionError(EngineError, ValueError):
    """A saved model folder written by an incompatible format version."""


class NotFittedError(EngineError, RuntimeError):
    """A model used before `fit` was called."""


class UnknownComponentError(EngineError, KeyError):
    """A registry name (encoder, model) that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

