"""The one top-k routine: the best columns of each row of a score matrix."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of the k largest scores per row, best first.

    Ties keep column order when every column is returned; `k` above the column
    count returns every column.

    Example:
        >>> cols, values = top_k(np.array([[0.25, 1.0, 0.5]]), 2)
        >>> cols.tolist(), values.tolist()
        ([[1, 2]], [[1.0, 0.5]])
    """
    n_cols = scores.shape[1]
    k = min(k, n_cols)
    if k == 0:
        return np.empty((scores.shape[0], 0), np.int64), np.empty((scores.shape[0], 0), np.float32)
    if k < n_cols:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n_cols), scores.shape).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    cols = np.take_along_axis(part, order, axis=1)
    return cols, np.take_along_axis(part_scores, order, axis=1).astype(np.float32, copy=False)
