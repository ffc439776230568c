"""Statistics over per-user metrics: how sure a difference between two models is."""

from __future__ import annotations

import numpy as np


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over paired users and its 95% percentile-bootstrap interval (resampling users).

    Example:
        >>> diff, low, high = paired_bootstrap(np.array([1.0, 0.5, 0.8]), np.array([0.5, 0.5, 0.3]))
        >>> round(diff, 3), low <= diff <= high
        (0.333, True)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired_bootstrap needs two equally long, non-empty 1-d arrays, got {a.shape} and {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n_resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)
