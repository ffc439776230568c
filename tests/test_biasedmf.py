"""Biased MF and RMSE evaluation: fallbacks for unseen users and items, the global-mean baseline."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import taste_ratings

from core.errors import InvalidArgumentError
from evaluation.rating import global_mean_rmse, rating_report
from recommenders import create_model
from recommenders.biasedmf import BiasedMF, BiasedMFConfig
from recommenders.data import InteractionData
from recommenders.metrics import rmse

TINY = {"epochs": 30, "dim": 4, "lr": 0.05, "batch_size": 32, "show_progress": False}


@pytest.fixture(scope="module")
def rating_model() -> tuple[BiasedMF, InteractionData, InteractionData]:
    train, test = taste_ratings()
    return BiasedMF(**TINY).fit(train), train, test


def test_rating_model_beats_the_global_mean(rating_model) -> None:
    model, train, test = rating_model
    report = rating_report(model, train, test)
    assert report.rmse < 1.0 < report.global_mean_rmse
    assert (report.n_pairs, report.n_cold_users, report.n_cold_items) == (40, 0, 0)


def test_unseen_users_and_items_fall_back_to_biases(rating_model) -> None:
    model, train, _ = rating_model
    net = model.network
    assert net is not None
    mu = float(net.global_mean[0])
    assert mu == pytest.approx(train.weights.mean())
    assert model.predict_ratings([40], [16])[0] == pytest.approx(mu)
    assert model.predict_ratings([40], [3])[0] == pytest.approx(mu + float(net.item_bias.weight[3, 0].detach()))
    assert model.predict_ratings([5], [16])[0] == pytest.approx(mu + float(net.user_bias.weight[5, 0].detach()))


def test_imputed_missing_entries_make_it_rank_what_users_rate() -> None:
    train, _ = taste_ratings()
    model = create_model("biasedmf", missing_weight=1.0, stop_on="ndcg", **TINY).fit(train)
    scores = model.score(np.arange(40))
    rated = train.csr().toarray()[:40, :16] > 0
    assert scores[:, :16][rated].mean() > scores[:, :16][~rated].mean()


def test_rmse_and_global_mean_rmse_by_hand() -> None:
    train = InteractionData.from_arrays([0, 1], [0, 1], None, [2.0, 4.0], n_users=2, n_items=2)
    test = InteractionData.from_arrays([0, 1], [1, 0], None, [1.0, 5.0], n_users=2, n_items=2)
    assert global_mean_rmse(train, test) == pytest.approx(2.0)

    class Constant:
        n_users, n_items = 2, 2
        predicts_ratings = True

        def predict_ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
            return np.full(len(users), 4.0, dtype=np.float32)

    assert rmse(Constant(), test) == pytest.approx(np.sqrt((9 + 1) / 2))


def test_rmse_needs_a_rating_model() -> None:
    train, test = taste_ratings()
    with pytest.raises(InvalidArgumentError, match="model object has no predict_ratings"):
        rmse(object(), test)  # type: ignore[arg-type]


def test_bad_config_is_named() -> None:
    with pytest.raises(InvalidArgumentError, match="stop_on must be one of \\('rmse', 'ndcg'\\), got 'mae'"):
        BiasedMFConfig(stop_on="mae")
    with pytest.raises(InvalidArgumentError, match="missing_weight must be >= 0, got -1.0"):
        BiasedMFConfig(missing_weight=-1.0)
