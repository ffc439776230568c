"""Baseline-specific behaviour: counts, kNN similarities, fold-in, content vectors, round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from recommenders import Recommender, create_model, load_model
from recommenders.baselines import Content, ItemKNN, Popularity
from recommenders.data import InteractionData
from recommenders.mf import ALS, BPRMF

N_USERS, N_ITEMS = 40, 30
TINY = {
    "popularity": {},
    "itemknn": {"neighbours": 10, "shrinkage": 1.0},
    # Rank 2 matches the planted structure; more factors overfit 8 items per user.
    "als": {"factors": 2, "epochs": 10, "regularization": 1.0, "alpha": 5.0},
    "bprmf": {"factors": 2, "epochs": 15, "patience": 15, "lr": 0.1, "l2": 1e-3, "batch_size": 64},
    "content": {},
}


def _planted() -> tuple[InteractionData, np.ndarray, np.ndarray]:
    """Two groups with disjoint tastes (items 0-14 vs 15-29); returns data, held-out items, features."""
    rng = np.random.default_rng(0)
    users, items, held = [], [], []
    for u in range(N_USERS):
        group = np.arange(15) if u < N_USERS // 2 else np.arange(15, 30)
        chosen = rng.choice(group, size=9, replace=False)
        users += [u] * 8
        items += chosen[:8].tolist()
        held.append(chosen[8])
    feats = rng.normal(scale=0.2, size=(N_ITEMS, 4)).astype(np.float32)
    feats[:15, 0] += 1.0
    feats[15:, 1] += 1.0
    return InteractionData.from_arrays(users, items, n_users=N_USERS, n_items=N_ITEMS), np.array(held), feats


def _fit(name: str) -> tuple[Recommender, InteractionData, np.ndarray]:
    data, held, feats = _planted()
    model = create_model(name, show_progress=False, **TINY[name])
    return model.fit(data, item_features=feats), data, held


@pytest.mark.parametrize("name", ["itemknn", "als", "bprmf", "content"])
def test_held_out_items_of_the_own_group_rank_first(name: str) -> None:
    model, data, held = _fit(name)
    scores = model.score(np.arange(N_USERS))
    own = scores[np.arange(N_USERS), held]
    other = np.where(np.arange(N_USERS)[:, None] < N_USERS // 2, scores[:, 15:].max(1, keepdims=True),
                     scores[:, :15].max(1, keepdims=True)).ravel()
    assert (own > other).mean() >= 0.9


@pytest.mark.parametrize("name", list(TINY))
def test_save_load_gives_identical_scores(name: str, tmp_path: Path) -> None:
    model, _, _ = _fit(name)
    model.save(tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert type(loaded) is type(model)
    users = np.arange(5)
    np.testing.assert_array_equal(model.score(users), loaded.score(users))
    np.testing.assert_array_equal(model.score_history([[0, 1], [20]]), loaded.score_history([[0, 1], [20]]))


def test_popularity_counts_users_per_item() -> None:
    data = InteractionData.from_arrays([0, 0, 1, 2], [1, 1, 1, 0], n_items=3)
    m = Popularity(show_progress=False).fit(data)
    assert m.score([0, 2], items=[0, 1, 2]).tolist() == [[1.0, 2.0, 0.0]] * 2
    assert m.score_history([[2]]).tolist() == [[1.0, 2.0, 0.0]]


def test_itemknn_cosine_with_shrinkage_and_neighbour_limit() -> None:
    # Items 0 and 1 share 2 users out of 2 and 3; item 2 shares 1 user with item 1.
    data = InteractionData.from_arrays([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 1, 2], n_items=3)
    m = ItemKNN(show_progress=False, shrinkage=1.0, neighbours=5).fit(data)
    sim = m.similarity.toarray()
    assert sim[0, 1] == pytest.approx(2 / (np.sqrt(2 * 3) + 1.0))
    assert sim[2, 1] == pytest.approx(1 / (np.sqrt(1 * 3) + 1.0))
    assert np.diag(sim).tolist() == [0.0, 0.0, 0.0]
    one = ItemKNN(show_progress=False, neighbours=1).fit(data).similarity
    assert (np.diff(one.tocsc().indptr) <= 1).all()  # one neighbour kept per target item


def test_itemknn_rejects_bad_settings() -> None:
    with pytest.raises(InvalidArgumentError, match="ItemKNN neighbours must be a positive integer, got 0"):
        ItemKNN(neighbours=0, shrinkage=1.0).fit(_planted()[0])
    with pytest.raises(InvalidArgumentError, match="ItemKNN shrinkage must be >= 0, got -1.0"):
        ItemKNN(shrinkage=-1.0)


@pytest.mark.parametrize(
    ("model", "overrides", "message"),
    [
        (ALS, {"factors": 0}, "ALS factors must be a positive integer, got 0"),
        (ALS, {"alpha": -1.0}, "ALS alpha must be >= 0, got -1.0"),
        (ALS, {"cg_steps": 0}, "ALS cg_steps must be a positive integer, got 0"),
        (BPRMF, {"lr": 0.0}, "BPRMF lr must be > 0, got 0.0"),
        (BPRMF, {"l2": -1e-5}, "BPRMF l2 must be >= 0, got -1e-05"),
        (BPRMF, {"batch_size": 0}, "BPRMF batch_size must be a positive integer, got 0"),
    ],
)
def test_mf_rejects_bad_settings(model: type, overrides: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        model(**overrides)


def test_fold_in_of_a_training_history_matches_the_user(tmp_path: Path) -> None:
    for name in ("itemknn", "als", "content"):
        model, data, _ = _fit(name)
        history = data.items[data.users == 3]
        by_user = model.score([3])[0]
        by_history = model.score_history([history])[0]
        if name == "als":  # CG vs exact solve: same ranking at the top, not identical numbers
            assert np.corrcoef(by_user, by_history)[0, 1] > 0.95
        else:
            np.testing.assert_allclose(by_user, by_history, rtol=1e-5, atol=1e-6)


def test_bprmf_fold_in_prefers_the_historys_group() -> None:
    model, _, _ = _fit("bprmf")
    scores = model.score_history([[0, 1, 2], [20, 21]])
    assert scores[0, :15].mean() > scores[0, 15:].mean()
    assert scores[1, 15:].mean() > scores[1, :15].mean()


def test_als_and_bprmf_stop_early_on_validation() -> None:
    data, held, _ = _planted()
    validation = InteractionData.from_arrays(np.arange(N_USERS), held, n_users=N_USERS, n_items=N_ITEMS)
    als = ALS(show_progress=False, factors=8, epochs=50, patience=2).fit(data, validation)
    assert als.user_factors.shape == (N_USERS, 8)
    bpr = BPRMF(show_progress=False, factors=8, epochs=3, patience=1, lr=0.05).fit(data, validation)
    assert bpr.item_vectors.shape == (N_ITEMS, 8)


def test_content_needs_matching_features() -> None:
    data = _planted()[0]
    with pytest.raises(InvalidArgumentError, match="content needs item_features"):
        Content().fit(data)
    with pytest.raises(InvalidArgumentError, match=r"shape \(30, dim\), one row per item, got \(29, 4\)"):
        Content().fit(data, item_features=np.ones((29, 4)))
    bad = np.ones((30, 4))
    bad[3, 1] = np.nan
    with pytest.raises(InvalidArgumentError, match="NaN"):
        Content().fit(data, item_features=bad)
    assert Content.uses_item_features and not ItemKNN.uses_item_features


def test_content_scores_are_cosines() -> None:
    data = InteractionData.from_arrays([0, 0], [0, 1], n_items=3)
    feats = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    s = Content().fit(data, item_features=feats).score([0])[0]
    np.testing.assert_allclose(s, [np.sqrt(0.5), np.sqrt(0.5), 1.0], rtol=1e-6)


def test_bpr_hand_written_step_equals_autograd() -> None:
    """`bpr_step`'s loss and gradients are autograd's of the same BPR + L2 loss (repeated rows included)."""
    import torch

    from recommenders.mf import MFNet, bpr_step

    torch.manual_seed(0)
    net = MFNet(5, 7, 3)
    torch.nn.init.normal_(net.bias.weight, std=0.1)
    u, i, j = torch.tensor([0, 1, 1, 4]), torch.tensor([2, 3, 3, 6]), torch.tensor([5, 3, 0, 2])
    eu, e, b = net.users(u), net.items(torch.cat([i, j])), net.bias(torch.cat([i, j])).squeeze(-1)
    diff = (eu * (e[:4] - e[4:])).sum(-1) + b[:4] - b[4:]
    loss = -torch.nn.functional.logsigmoid(diff).mean() + 0.01 * (eu.pow(2).sum() + e.pow(2).sum()) / 4
    loss.backward()
    expected = [p.grad.clone() for p in (net.users.weight, net.items.weight, net.bias.weight)]
    for p in (net.users.weight, net.items.weight, net.bias.weight):
        p.grad.fill_(7.0)  # stale values must be overwritten, not added to
    assert bpr_step(net, u, i, j, 0.01) == pytest.approx(float(loss.detach()), rel=1e-6)
    for p, grad in zip((net.users.weight, net.items.weight, net.bias.weight), expected):
        torch.testing.assert_close(p.grad, grad)
