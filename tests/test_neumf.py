"""NeuMF-specific behaviour: the content path for cold items, fold-in, the item cache, saving features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from recommenders import load_model
from recommenders.data import InteractionData
from recommenders.neumf import NeuMF, NeuMFConfig, reduce_features

N_USERS, N_ITEMS = 40, 30
GROUP_A_ITEMS, GROUP_B_ITEMS = np.arange(0, 15), np.arange(15, 30)
COLD_ITEMS = np.array([12, 13, 14, 27, 28, 29])  # never in training
TINY = {"epochs": 40, "patience": 40, "gmf_dim": 8, "mlp_dim": 8, "mlp_layers": (16, 8), "lr": 0.01,
        "batch_size": 64, "show_progress": False}


def _group(user: int) -> np.ndarray:
    return GROUP_A_ITEMS if user < N_USERS // 2 else GROUP_B_ITEMS


def _planted() -> tuple[InteractionData, np.ndarray]:
    """Two user groups with disjoint tastes; features say which group an item belongs to."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(N_USERS):
        warm = np.setdiff1d(_group(u), COLD_ITEMS)
        chosen = rng.choice(warm, size=8, replace=False)
        users += [u] * len(chosen)
        items += chosen.tolist()
    features = rng.normal(scale=0.3, size=(N_ITEMS, 6)).astype(np.float32)
    features[GROUP_A_ITEMS, 0] += 1.0
    features[GROUP_B_ITEMS, 1] += 1.0
    return InteractionData.from_arrays(users, items, n_users=N_USERS, n_items=N_ITEMS), features


@pytest.fixture(scope="module")
def fitted() -> tuple[NeuMF, InteractionData, np.ndarray]:
    train, features = _planted()
    return NeuMF(**TINY).fit(train, item_features=features), train, features


def test_cold_items_are_scored_by_content(fitted: tuple[NeuMF, InteractionData, np.ndarray]) -> None:
    model, _, _ = fitted
    cold_a, cold_b = COLD_ITEMS[:3], COLD_ITEMS[3:]
    scores = model.score(np.arange(N_USERS), items=COLD_ITEMS)
    group_a = scores[: N_USERS // 2]
    group_b = scores[N_USERS // 2 :]
    # Every user prefers the cold items of their own group, known only through content.
    assert (group_a[:, :3].min(axis=1) > group_a[:, 3:].max(axis=1)).all(), (cold_a, group_a)
    assert (group_b[:, 3:].min(axis=1) > group_b[:, :3].max(axis=1)).all(), (cold_b, group_b)


def test_cold_items_have_zero_id_embeddings(fitted: tuple[NeuMF, InteractionData, np.ndarray]) -> None:
    model, _, _ = fitted
    assert model.network is not None
    assert np.abs(model.network.item_gmf.weight.detach().numpy()[COLD_ITEMS]).max() < 1e-6


def test_fold_in_follows_the_history(fitted: tuple[NeuMF, InteractionData, np.ndarray]) -> None:
    model, _, _ = fitted
    scores = model.score_history([[0, 1, 2], [15, 16, 17]])
    assert scores.shape == (2, N_ITEMS)
    assert scores[0, GROUP_A_ITEMS].mean() > scores[0, GROUP_B_ITEMS].mean()
    assert scores[1, GROUP_B_ITEMS].mean() > scores[1, GROUP_A_ITEMS].mean()
    # A visitor whose history is only cold items is folded in through content.
    cold = model.score_history([COLD_ITEMS[:3]])[0]
    assert cold[GROUP_A_ITEMS].mean() > cold[GROUP_B_ITEMS].mean()


def test_user_without_training_data_is_the_average_visitor() -> None:
    train, features = _planted()
    grown = InteractionData.from_arrays(train.users, train.items, n_users=N_USERS + 1, n_items=N_ITEMS)
    model = NeuMF(**TINY).fit(grown, item_features=features)
    np.testing.assert_allclose(model.score([N_USERS]), model.score_history([[]]), rtol=1e-5, atol=1e-6)


def test_candidate_scores_match_full_scores(fitted: tuple[NeuMF, InteractionData, np.ndarray]) -> None:
    model, _, _ = fitted
    candidates = np.array([29, 3, 17, 3])
    full = model.score([5, 25])
    np.testing.assert_allclose(model.score([5, 25], items=candidates), full[:, candidates], rtol=1e-5, atol=1e-6)


def test_refit_invalidates_the_item_cache() -> None:
    train, features = _planted()
    model = NeuMF(**TINY).fit(train, item_features=features)
    before = model.score([0])
    model.fit(train, item_features=-features)
    assert not np.allclose(before, model.score([0]))
    np.testing.assert_allclose(model.score([0]), NeuMF(**TINY).fit(train, item_features=-features).score([0]))


def test_save_load_keeps_features_and_fold_in(
    fitted: tuple[NeuMF, InteractionData, np.ndarray], tmp_path: Path
) -> None:
    model, _, features = fitted
    model.save(tmp_path / "neumf")
    loaded = load_model(tmp_path / "neumf")
    assert isinstance(loaded, NeuMF)
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.item_features, features)
    np.testing.assert_array_equal(loaded.score_history([[0, 27]]), model.score_history([[0, 27]]))
    np.testing.assert_array_equal(loaded.score([1, 30], items=[4, 2]), model.score([1, 30], items=[4, 2]))


@pytest.mark.parametrize("loss", ["bpr", "bce"])
def test_ids_only_learns_the_groups(loss: str) -> None:
    train, _ = _planted()
    model = NeuMF(**{**TINY, "loss": loss}).fit(train)
    assert model.item_features is None
    warm_a = np.setdiff1d(GROUP_A_ITEMS, COLD_ITEMS)
    warm_b = np.setdiff1d(GROUP_B_ITEMS, COLD_ITEMS)
    scores = model.score(np.arange(N_USERS))
    assert scores[:20, warm_a].mean() > scores[:20, warm_b].mean()
    assert scores[20:, warm_b].mean() > scores[20:, warm_a].mean()


def test_bad_features_name_the_shape() -> None:
    train, features = _planted()
    with pytest.raises(InvalidArgumentError, match=r"\(30, d\).*\(29, 6\)"):
        NeuMF(**TINY).fit(train, item_features=features[:-1])
    bad = features.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InvalidArgumentError, match=r"finite, got nan at row 3"):
        NeuMF(**TINY).fit(train, item_features=bad)


def test_config_checks_and_json_round_trip() -> None:
    with pytest.raises(InvalidArgumentError, match="'hinge'"):
        NeuMFConfig(loss="hinge")
    with pytest.raises(InvalidArgumentError, match="id_dropout"):
        NeuMFConfig(id_dropout=1.0)
    with pytest.raises(InvalidArgumentError, match="mlp_layers"):
        NeuMFConfig(mlp_layers=())
    assert NeuMFConfig(mlp_layers=[8, 4]) == NeuMFConfig(mlp_layers=(8, 4))


def test_content_rank_and_validate_every_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="content_rank must be an integer >= 0, got -1"):
        NeuMFConfig(content_rank=-1)
    with pytest.raises(InvalidArgumentError, match="validate_every must be a positive integer, got 0"):
        NeuMFConfig(validate_every=0)


def test_reduced_features_keep_the_inner_products_of_low_rank_features() -> None:
    rng = np.random.default_rng(0)
    features = (rng.normal(size=(60, 5)) @ rng.normal(size=(5, 200))).astype(np.float32)  # rank 5, 200 wide
    reduced = reduce_features(features, 8)
    assert reduced.shape == (60, 8) and reduced.dtype == np.float32
    np.testing.assert_allclose(reduced @ reduced.T, features @ features.T, rtol=1e-3, atol=1e-2)
    np.testing.assert_array_equal(reduce_features(features, 8), reduced)  # seeded: repeatable
    assert reduce_features(features, 0) is features and reduce_features(features, 500) is features


def test_wide_features_are_reduced_once_and_still_score_cold_items() -> None:
    train, features = _planted()
    rng = np.random.default_rng(1)
    wide = np.hstack([features, 0.01 * rng.normal(size=(N_ITEMS, 94))]).astype(np.float32)  # 100 wide
    model = NeuMF(**TINY, content_rank=8).fit(train, item_features=wide)
    assert model.item_features is not None and model.item_features.shape == (N_ITEMS, 8)
    scores = model.score(np.arange(N_USERS), items=COLD_ITEMS)
    assert scores[: N_USERS // 2, :3].mean() > scores[: N_USERS // 2, 3:].mean()
    assert scores[N_USERS // 2 :, 3:].mean() > scores[N_USERS // 2 :, :3].mean()
