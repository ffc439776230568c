"""RBM-CF specifics: rating prediction, its range and fallbacks, implicit data, both visible layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import taste_ratings

from core.errors import InvalidArgumentError, NotFittedError
from recommenders import load_model
from recommenders.data import InteractionData
from recommenders.metrics import rmse
from recommenders.rbm import RBM, RBMConfig

TINY = {"epochs": 40, "hidden_dim": 8, "batch_size": 8, "lr": 0.1, "show_progress": False}


@pytest.fixture(scope="module")
def rated_model() -> tuple[RBM, InteractionData, InteractionData]:
    train, test = taste_ratings()
    return RBM(visible="rated", **TINY).fit(train), train, test


def test_predicted_ratings_lie_in_range_and_follow_taste(rated_model) -> None:
    model, train, test = rated_model
    predicted = model.predict_ratings(test.users, test.items)
    assert predicted.dtype == np.float32 and predicted.min() >= 1.0 and predicted.max() <= 5.0
    assert rmse(model, test) < 1.0  # the two tastes are 4 apart; the global mean is off by about 2
    high = test.weights == 5.0
    assert predicted[high].mean() > predicted[~high].mean() + 2.0


def test_unrated_item_gets_the_global_mean_and_new_user_a_rating(rated_model) -> None:
    model, train, _ = rated_model
    assert model.predict_ratings([0], [16])[0] == pytest.approx(train.weights.mean())
    new_user = model.predict_ratings([40], [3])[0]  # user 40 has no training row
    assert 1.0 <= new_user <= 5.0
    # A new user and an empty visitor history both stand for the average training user.
    np.testing.assert_allclose(model.score([40]), model.score_history([[]]), rtol=1e-6)


def test_rated_visible_layer_ranks_by_expected_rating(rated_model) -> None:
    model, _, _ = rated_model
    scores = model.score([0])
    np.testing.assert_allclose(scores[0, :16], model.predict_ratings(np.zeros(16, dtype=np.int64), np.arange(16)), rtol=1e-5)


def test_all_visible_layer_predicts_ratings_and_which_items() -> None:
    train, test = taste_ratings()
    model = RBM(visible="all", **TINY).fit(train)
    assert model.n_ratings == 5
    predicted = model.predict_ratings(test.users, test.items)
    assert predicted[test.weights == 5.0].mean() > predicted[test.weights == 1.0].mean()


@pytest.mark.parametrize("visible", ["rated", "all"])
def test_sparse_scoring_equals_the_dense_network(visible: str) -> None:
    train, _ = taste_ratings()
    model = RBM(visible=visible, **TINY).fit(train)
    users = np.arange(40)
    dense_visible, _ = model._visible(model.ratings[users])
    with torch.no_grad():
        logits = model.network.visible_logits(model.network.hidden_probs(dense_visible))
        expected = torch.logsumexp(logits, dim=2) if model.network.absent_state else model._expectation(logits)
    np.testing.assert_allclose(model.score(users), expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.score([3], items=[16, 2]), expected.numpy()[[3]][:, [16, 2]], rtol=1e-5, atol=1e-5)
    history = [0, 5, 9]
    soft = torch.zeros(1, model.n_items, model.n_ratings)
    soft[0, history] = torch.from_numpy(model._item_rating_dist[history])
    with torch.no_grad():
        logits = model.network.visible_logits(model.network.hidden_probs(soft))
        expected = torch.logsumexp(logits, dim=2) if model.network.absent_state else model._expectation(logits)
    np.testing.assert_allclose(model.score_history([history]), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_implicit_data_becomes_a_binary_rbm() -> None:
    train, _ = taste_ratings(implicit=True)
    model = RBM(**TINY).fit(train)
    assert model.n_ratings == 1
    assert np.all(model.predict_ratings([0, 1], [0, 9]) == 1.0)
    refused = RBM(visible="rated", **TINY)
    with pytest.raises(InvalidArgumentError, match="visible='rated' needs explicit ratings"):
        refused.fit(train)
    with pytest.raises(NotFittedError):
        refused.score([0])


def test_ratings_are_rounded_and_clipped_and_the_latest_repeat_counts() -> None:
    data = InteractionData.from_arrays([0, 0, 0, 1], [0, 1, 1, 0], [0, 1, 2, 3], [7.0, 0.2, 2.6, 3.0], n_users=2, n_items=2)
    model = RBM(epochs=1, hidden_dim=2, show_progress=False).fit(data)
    assert model.ratings is not None
    assert model.ratings.toarray().tolist() == [[5.0, 3.0], [3.0, 0.0]]


def test_save_load_keeps_predicted_ratings(rated_model, tmp_path: Path) -> None:
    model, _, test = rated_model
    model.save(tmp_path / "rbm")
    loaded = load_model(tmp_path / "rbm")
    assert isinstance(loaded, RBM)
    np.testing.assert_array_equal(loaded.predict_ratings(test.users, test.items), model.predict_ratings(test.users, test.items))
    np.testing.assert_array_equal(loaded.score_history([[0, 1]]), model.score_history([[0, 1]]))


def test_bad_pairs_and_config_are_named(rated_model) -> None:
    model, _, _ = rated_model
    with pytest.raises(InvalidArgumentError, match=r"item rows must lie in \[0, 17\), got \[17\]"):
        model.predict_ratings([0], [17])
    with pytest.raises(InvalidArgumentError, match="equally long"):
        model.predict_ratings([0, 1], [0])
    with pytest.raises(InvalidArgumentError, match=r"visible must be one of \('all', 'rated'\), got 'some'"):
        RBMConfig(visible="some")
