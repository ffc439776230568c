"""Argument checks shared by every package: each raises `InvalidArgumentError` naming the value."""

from __future__ import annotations

from .errors import InvalidArgumentError


def check_k(k: int) -> int:
    """Validate a result count; returns it unchanged.

    Example:
        >>> check_k(10)
        10
    """
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    return k
