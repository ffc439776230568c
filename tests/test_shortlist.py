"""`InnerProductShortlist`: the best items by `query . vector + bias` from a tuned inverted file."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from core.errors import InvalidArgumentError
from recommenders.shortlist import InnerProductShortlist, lift_items, lift_queries


def clustered(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors around 50 centres, like learned item factors, and a bias per item."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return vectors.astype(np.float32), (0.5 * rng.standard_normal(n)).astype(np.float32)


def exact_top(queries: np.ndarray, vectors: np.ndarray, bias: np.ndarray, m: int) -> np.ndarray:
    """The reference: every item scored, the m best per query."""
    return np.argsort(-(queries @ vectors.T + bias[None, :]), axis=1, kind="stable")[:, :m]


def test_lifting_turns_l2_order_into_score_order() -> None:
    vectors, bias = clustered(500, 6, seed=1)
    queries = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32)
    lifted, lifted_q = lift_items(vectors, bias), lift_queries(queries)
    norms = np.linalg.norm(lifted, axis=1)
    np.testing.assert_allclose(norms, norms.max(), rtol=1e-5)  # every lifted item on one sphere
    l2 = ((lifted_q[:, None, :] - lifted[None, :, :]) ** 2).sum(axis=2)
    scores = queries @ vectors.T + bias[None, :]
    # |q - x|^2 = |u|^2 + 1 + R^2 - 2 score: a constant per query minus twice the score
    constant = l2 + 2 * scores
    np.testing.assert_allclose(constant, np.repeat(constant[:, :1], 500, axis=1), rtol=1e-4, atol=1e-3)


def test_tuned_probes_find_the_target_share_of_the_exact_top_on_fresh_queries() -> None:
    vectors, bias = clustered(20_000, 16, seed=3)
    rng = np.random.default_rng(4)
    sample, fresh = rng.standard_normal((100, 16)), rng.standard_normal((100, 16)).astype(np.float32)
    shortlist = InnerProductShortlist(vectors, bias, sample, m=200, target=0.95)
    assert shortlist.n_lists == 20 and 1 <= shortlist.n_probe < shortlist.n_lists  # an inverted file, not a scan
    assert shortlist.recall >= 0.95
    found = shortlist.search(fresh, 200)
    truth = exact_top(fresh, vectors, bias, 200)
    recall = np.mean([len(np.intersect1d(f, t)) / 200 for f, t in zip(found, truth)])
    assert recall >= 0.93, recall  # fresh queries: close to the tuned 0.95
    scores = np.take_along_axis(fresh @ vectors.T + bias[None, :], found, axis=1)
    assert np.all(np.diff(scores, axis=1) <= 1e-4), "best score first"
    assert "IVF20 inner-product shortlist over 20,000 items" in shortlist.describe()


def test_a_larger_search_probes_proportionally_more_lists() -> None:
    vectors, bias = clustered(20_000, 16, seed=5)
    shortlist = InnerProductShortlist(vectors, bias, np.random.default_rng(6).standard_normal((50, 16)), m=100)
    assert shortlist.probes_for(50) == shortlist.probes_for(100) == shortlist.n_probe
    assert shortlist.probes_for(1_000_000) == shortlist.n_lists  # every list: exact
    everything = shortlist.search(np.ones((1, 16)), 20_000)
    assert sorted(everything[0].tolist()) == list(range(20_000))


def test_one_list_is_exact() -> None:
    vectors, bias = clustered(800, 8, seed=7)  # under 1,000 items: one list, every item scanned
    queries = np.random.default_rng(8).standard_normal((10, 8)).astype(np.float32)
    shortlist = InnerProductShortlist(vectors, bias, queries, m=30)
    assert (shortlist.n_lists, shortlist.n_probe, shortlist.recall) == (1, 1, 1.0)
    _, truth = faiss.knn(lift_queries(queries)[:, :-1], np.hstack([vectors, bias[:, None]]), 30,
                         metric=faiss.METRIC_INNER_PRODUCT)
    assert np.array_equal(shortlist.search(queries, 30), truth)


@pytest.mark.parametrize(
    ("vectors", "bias", "sample", "target", "message"),
    [
        (np.ones((0, 4)), np.ones(0), np.ones((1, 4)), 0.9, r"vectors must be \(n_items, d\) with n_items > 0"),
        (np.ones((5, 4)), np.ones(4), np.ones((1, 4)), 0.9, r"bias \(n_items,\), got \(5, 4\) and \(4,\)"),
        (np.ones((5, 4)), np.ones(5), np.ones((1, 3)), 0.9, r"sample_queries must be \(n, 4\) with n > 0, or a list of such, got \(1, 3\)"),
        (np.ones((5, 4)), np.ones(5), np.ones((1, 4)), 1.5, r"target must be in \(0, 1\], got 1.5"),
    ],
)
def test_bad_input_is_named(vectors, bias, sample, target, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match=message):
        InnerProductShortlist(vectors, bias, sample, m=3, target=target)


@pytest.mark.parametrize("items_per_list", [0, 2.5, True])
def test_bad_list_size_is_named(items_per_list) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match=rf"items_per_list must be a positive integer, got {items_per_list!r}"):
        InnerProductShortlist(np.ones((5, 4)), np.ones(5), np.ones((1, 4)), m=3, items_per_list=items_per_list)


def test_items_per_list_sets_the_list_count() -> None:
    rng = np.random.default_rng(8)
    vectors, sample = rng.standard_normal((2000, 8)), rng.standard_normal((30, 8))
    assert InnerProductShortlist(vectors, np.zeros(2000), sample, m=20).n_lists == 2
    assert InnerProductShortlist(vectors, np.zeros(2000), sample, m=20, items_per_list=50).n_lists == 40


def test_all_zero_items_are_kept_apart_and_score_zero() -> None:
    # 9,000 items without interactions (ALS gives them zero vectors) beside 1,000 trained ones.
    rng = np.random.default_rng(9)
    vectors = np.zeros((10_000, 8), dtype=np.float32)
    trained = rng.choice(10_000, 1_000, replace=False)
    vectors[trained] = rng.standard_normal((1_000, 8))
    bias = np.zeros(10_000, dtype=np.float32)
    queries = rng.standard_normal((40, 8)).astype(np.float32)
    shortlist = InnerProductShortlist(vectors, bias, queries[:20], m=50)
    assert len(shortlist.rows) == 1_000 and shortlist.n_lists == 1 and "9,000 all-zero items kept apart" in shortlist.describe()
    scores = queries[20:] @ vectors.T
    for m in (50, 600):  # more than the items scoring > 0: zero items fill in, in row order, before negative ones
        found = shortlist.search(queries[20:], m)
        assert (found >= 0).all() and all(len(set(f.tolist())) == m for f in found)
        np.testing.assert_allclose(np.take_along_axis(scores, found, 1), -np.sort(-scores, axis=1)[:, :m], atol=1e-5)


def test_every_item_all_zero() -> None:
    shortlist = InnerProductShortlist(np.zeros((30, 4)), np.zeros(30), np.ones((2, 4)), m=5)
    assert shortlist.search(np.ones((1, 4)), 5).tolist() == [[0, 1, 2, 3, 4]] and shortlist.recall == 1.0


def test_groups_of_queries_each_meet_the_target() -> None:
    # Clustered items; queries along a cluster's centre find their top 100 in one list, random ones
    # need many. Pooled, the easy group carries the hard one below the target; grouped it cannot.
    rng = np.random.default_rng(10)
    centres = rng.standard_normal((40, 16)) * 3
    vectors = centres[rng.integers(0, 40, 20_000)] + rng.standard_normal((20_000, 16)) * 0.5
    bias = np.zeros(20_000)
    hard, easy = rng.standard_normal((50, 16)), centres[rng.integers(0, 40, 50)] * 5
    alone = InnerProductShortlist(vectors, bias, hard, m=100)
    grouped = InnerProductShortlist(vectors, bias, [hard, easy], m=100)
    pooled = InnerProductShortlist(vectors, bias, np.vstack([hard, easy]), m=100)
    assert grouped.n_probe == alone.n_probe > pooled.n_probe
    assert grouped.recall >= 0.95
