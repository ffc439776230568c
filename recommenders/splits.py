"""Train / validation / test splits that never let the future leak into training.

Two protocols:

* `temporal_split`: one global clock. Train on the past, validate on the period
  just before the test period, test on the future. This is what a deployed
  recommender faces, and what the full-catalogue evaluation uses.
* `leave_last_out`: per user, the latest interaction is the test, the one
  before it the validation (the setting of the sequential-recommendation and
  sampled-metric papers).

All parts keep the full `n_users` / `n_items`, so a row means the same user or
item in every part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InteractionsError, InvalidArgumentError

from .data import InteractionData


@dataclass(frozen=True)
class Split:
    """Three disjoint parts of one interaction log.

    Example:
        >>> d = InteractionData.from_arrays([0, 0, 0, 1], [0, 1, 2, 0], [1, 2, 3, 4])
        >>> s = leave_last_out(d)
        >>> len(s.train), s.validation.items.tolist(), s.test.items.tolist()
        (2, [1], [2])
    """

    train: InteractionData
    validation: InteractionData
    test: InteractionData

    def seen(self) -> InteractionData:
        """Train and validation together: what is masked when ranking for the test."""
        return _concat(self.train, self.validation)


def temporal_split(data: InteractionData, val_fraction: float = 0.1, test_fraction: float = 0.1) -> Split:
    """Split by two global time cut points: train < validation < test in time.

    The last `test_fraction` of the interactions (by timestamp) are the test, the
    `val_fraction` before them the validation. Interactions tied with a cut point's
    timestamp go to the later part, so every train timestamp is strictly before
    every validation and test timestamp (the later parts may be slightly larger
    than asked).

    Raises:
        InvalidArgumentError: fractions outside [0, 1), a zero test fraction, or summing to 1 or more.
        InteractionsError: too few distinct timestamps to leave anything for training.

    Example:
        >>> d = InteractionData.from_arrays([0, 1, 0, 1, 0], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5])
        >>> s = temporal_split(d, val_fraction=0.2, test_fraction=0.2)
        >>> s.train.timestamps.tolist(), s.validation.timestamps.tolist(), s.test.timestamps.tolist()
        ([1, 2, 3], [4], [5])
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise InvalidArgumentError(f"{name} must lie in [0, 1), got {value!r}")
    if test_fraction == 0.0 or val_fraction + test_fraction >= 1.0:
        raise InvalidArgumentError(
            f"need 0 < test_fraction and val_fraction + test_fraction < 1, got {val_fraction} + {test_fraction}"
        )
    n = len(data)
    if n == 0:
        raise InteractionsError("cannot split an empty interaction log")
    ts = np.sort(data.timestamps)
    n_test = max(1, int(round(n * test_fraction)))
    n_val = int(round(n * val_fraction))
    test_cut = ts[n - n_test]
    val_cut = ts[max(n - n_test - n_val, 0)] if n_val else test_cut
    train_mask = data.timestamps < val_cut
    if not train_mask.any():
        raise InteractionsError(
            f"no interaction is before the validation cut point (timestamp {int(val_cut)}): "
            "the log has too few distinct timestamps to split in time"
        )
    test_mask = data.timestamps >= test_cut
    return Split(data.subset(train_mask), data.subset(~train_mask & ~test_mask), data.subset(test_mask))


def leave_last_out(data: InteractionData) -> Split:
    """Per user: the latest interaction is the test, the one before it the validation.

    Users with fewer than 3 interactions stay in train only, so every evaluated
    user has some history. Ties in time keep log order (the later row counts as later).

    Example:
        >>> d = InteractionData.from_arrays([0, 0, 0, 1, 1], [0, 1, 2, 0, 1], [3, 1, 2, 1, 2])
        >>> s = leave_last_out(d)
        >>> s.test.items.tolist(), s.validation.items.tolist(), sorted(s.train.items.tolist())
        ([0], [2], [0, 1, 1])
    """
    if len(data) == 0:
        raise InteractionsError("cannot split an empty interaction log")
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
    users = data.users[order]
    counts = np.bincount(users, minlength=data.n_users)
    # Position of each interaction counted from its user's latest (0 = latest).
    ends = np.cumsum(counts)[users]
    from_end = ends - 1 - np.arange(len(users))
    long_enough = counts[users] >= 3
    part = np.zeros(len(data), dtype=np.int8)  # 0 train, 1 validation, 2 test
    part[order[long_enough & (from_end == 0)]] = 2
    part[order[long_enough & (from_end == 1)]] = 1
    return Split(data.subset(part == 0), data.subset(part == 1), data.subset(part == 2))


def _concat(a: InteractionData, b: InteractionData) -> InteractionData:
    return InteractionData(
        np.concatenate([a.users, b.users]),
        np.concatenate([a.items, b.items]),
        np.concatenate([a.timestamps, b.timestamps]),
        np.concatenate([a.weights, b.weights]),
        a.n_users,
        a.n_items,
    )
