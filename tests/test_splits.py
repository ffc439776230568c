"""Splits: sizes, tie handling, and that nothing from the test's future reaches training."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InteractionsError, InvalidArgumentError
from recommenders.data import InteractionData
from recommenders.splits import leave_last_out, temporal_split


def _random_log(seed: int = 0, n: int = 2000, n_users: int = 60, n_items: int = 80) -> InteractionData:
    rng = np.random.default_rng(seed)
    # Few distinct timestamps, so ties at the cut points are common.
    return InteractionData.from_arrays(
        rng.integers(0, n_users, n), rng.integers(0, n_items, n), rng.integers(0, 300, n),
        n_users=n_users, n_items=n_items,
    )


def test_temporal_split_sizes_and_shared_vocabulary() -> None:
    data = InteractionData.from_arrays(np.zeros(10, int), np.arange(10), np.arange(10), n_users=3, n_items=12)
    s = temporal_split(data, val_fraction=0.2, test_fraction=0.3)
    assert s.train.timestamps.tolist() == [0, 1, 2, 3, 4]
    assert s.validation.timestamps.tolist() == [5, 6]
    assert s.test.timestamps.tolist() == [7, 8, 9]
    for part in (s.train, s.validation, s.test):
        assert (part.n_users, part.n_items) == (3, 12)


def test_temporal_split_ties_go_to_the_later_part() -> None:
    data = InteractionData.from_arrays([0] * 6, range(6), [1, 2, 3, 3, 3, 4])
    s = temporal_split(data, val_fraction=0.0, test_fraction=0.5)  # cut at the 4th timestamp, 3
    assert s.train.timestamps.tolist() == [1, 2]
    assert s.test.timestamps.tolist() == [3, 3, 3, 4]
    assert len(s.validation) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_temporal_split_never_trains_on_the_future(seed: int) -> None:
    data = _random_log(seed)
    s = temporal_split(data)
    assert len(s.train) + len(s.validation) + len(s.test) == len(data)
    assert s.train.timestamps.max() < s.validation.timestamps.min()
    assert s.validation.timestamps.max() < s.test.timestamps.min()
    assert s.train.timestamps.max() < s.test.timestamps.min()
    assert abs(len(s.test) / len(data) - 0.1) < 0.05


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (0.1, 0.0, "need 0 < test_fraction"),
        (0.5, 0.5, r"val_fraction \+ test_fraction < 1, got 0.5 \+ 0.5"),
        (-0.1, 0.1, r"val_fraction must lie in \[0, 1\), got -0.1"),
        (0.1, 1.0, r"test_fraction must lie in \[0, 1\), got 1.0"),
    ],
)
def test_temporal_split_rejects_bad_fractions(val: float, test: float, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        temporal_split(_random_log(), val, test)


def test_temporal_split_needs_distinct_times() -> None:
    data = InteractionData.from_arrays([0, 1, 2], [0, 1, 2], [5, 5, 5])
    with pytest.raises(InteractionsError, match="no interaction is before the validation cut point"):
        temporal_split(data)


def test_leave_last_out_takes_each_users_latest() -> None:
    #            user 0: times 5, 1, 3      user 1: two events     user 2: times 2, 9, 4, 7
    data = InteractionData.from_arrays(
        [0, 0, 0, 1, 1, 2, 2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7, 8], [5, 1, 3, 1, 2, 2, 9, 4, 7]
    )
    s = leave_last_out(data)
    assert dict(zip(s.test.users.tolist(), s.test.items.tolist())) == {0: 0, 2: 6}
    assert dict(zip(s.validation.users.tolist(), s.validation.items.tolist())) == {0: 2, 2: 8}
    assert sorted(zip(s.train.users.tolist(), s.train.items.tolist())) == [(0, 1), (1, 3), (1, 4), (2, 5), (2, 7)]


@pytest.mark.parametrize("seed", [0, 1])
def test_leave_last_out_never_trains_on_the_future(seed: int) -> None:
    data = _random_log(seed, n=600)
    s = leave_last_out(data)
    assert len(s.train) + len(s.validation) + len(s.test) == len(data)
    test_time = dict(zip(s.test.users.tolist(), s.test.timestamps.tolist()))
    val_time = dict(zip(s.validation.users.tolist(), s.validation.timestamps.tolist()))
    assert len(test_time) == len(s.test) and set(val_time) == set(test_time)  # one each per user
    for u, t in test_time.items():
        mine = data.timestamps[data.users == u]
        assert t == mine.max()  # the test item is the user's latest
        assert (s.train.timestamps[s.train.users == u] <= t).all()
        assert val_time[u] <= t
    counts = np.bincount(data.users, minlength=data.n_users)
    assert set(test_time) == set(np.flatnonzero(counts >= 3).tolist())


def test_leave_last_out_rejects_an_empty_log() -> None:
    empty = InteractionData.from_arrays([], [], n_users=1, n_items=1)
    with pytest.raises(InteractionsError, match="empty"):
        leave_last_out(empty)
