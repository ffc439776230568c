"""The vectorised negative sampler shared by BPR-MF, NeuMF and LightGCN."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from core.errors import InvalidArgumentError
from recommenders.sampling import NegativeSampler


def _log(seed: int = 0) -> sp.csr_matrix:
    """30 users x 40 items, 30% dense; user 0 has seen all but item 7, user 1 every item."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((30, 40)) < 0.3).astype(np.float32)
    dense[0] = 1.0
    dense[0, 7] = 0.0
    dense[1] = 1.0
    return sp.csr_matrix(dense)


def test_never_returns_a_positive() -> None:
    matrix = _log()
    sampler = NegativeSampler(matrix, np.random.default_rng(1))
    users = np.repeat(np.arange(2, 30), 50)
    negatives = sampler(users, 4)
    assert negatives.shape == (len(users), 4)
    assert not matrix[np.repeat(users, 4), negatives.ravel()].any()
    # spread over the unseen items, not stuck on a few
    assert len(np.unique(negatives)) == 40


def test_a_user_with_one_unseen_item_gets_that_item() -> None:
    sampler = NegativeSampler(_log(), np.random.default_rng(2))
    assert (sampler(np.zeros(200, dtype=np.int64), 3) == 7).all()


def test_a_user_who_saw_everything_gets_pool_items() -> None:
    sampler = NegativeSampler(_log(), np.random.default_rng(3))
    negatives = sampler(np.ones(20, dtype=np.int64), 2)
    assert ((negatives >= 0) & (negatives < 40)).all()


def test_draws_only_from_the_pool() -> None:
    matrix = _log()
    pool = np.arange(10, 30)
    negatives = NegativeSampler(matrix, np.random.default_rng(4), pool)(np.arange(2, 30), 20)
    assert np.isin(negatives, pool).all()
    assert not matrix[np.repeat(np.arange(2, 30), 20), negatives.ravel()].any()


def test_training_pairs_and_membership() -> None:
    matrix = _log()
    sampler = NegativeSampler(matrix, np.random.default_rng(0))
    assert len(sampler.users) == matrix.nnz
    assert matrix[sampler.users, sampler.items].all()
    assert sampler.seen(np.array([0, 0]), np.array([7, 8])).tolist() == [False, True]


def test_repeatable_with_the_same_seed() -> None:
    a = NegativeSampler(_log(), np.random.default_rng(5))(np.arange(30), 3)
    b = NegativeSampler(_log(), np.random.default_rng(5))(np.arange(30), 3)
    np.testing.assert_array_equal(a, b)


def test_empty_pool_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match="non-empty pool"):
        NegativeSampler(_log(), np.random.default_rng(0), np.array([], dtype=np.int64))
