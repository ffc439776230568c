"""Rating-prediction error (RMSE) for models that predict explicit ratings.

Ranking models are judged by `recommenders.metrics`; the few that predict a rating
value (`rbm`, `biasedmf`: `predicts_ratings = True`) expose `predict_ratings(users, items)` and are also
judged by RMSE against the held-out ratings, which are the `weights` of the
interaction log. The global mean of the training ratings is the baseline every
rating model must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InteractionsError, InvalidArgumentError
from recommenders.base import Recommender
from recommenders.data import InteractionData
from recommenders.metrics import rmse


@dataclass(frozen=True)
class RatingReport:
    """RMSE of a model and of the global-mean baseline on one held-out set.

    Attributes:
        rmse: the model's root mean squared error.
        global_mean_rmse: the error of always predicting the training mean.
        n_pairs: held-out ratings scored.
        n_cold_users: of those, ratings by users with no training interaction.
        n_cold_items: of those, ratings of items with no training interaction.
    """

    rmse: float
    global_mean_rmse: float
    n_pairs: int
    n_cold_users: int
    n_cold_items: int


def global_mean_rmse(train: InteractionData, test: InteractionData) -> float:
    """RMSE of predicting the mean training rating for every test pair.

    Example:
        >>> global_mean_rmse(train, test)   # doctest: +SKIP
        1.15
    """
    if len(train) == 0 or len(test) == 0:
        raise InteractionsError(f"need ratings on both sides, got {len(train)} train and {len(test)} test")
    mean = float(np.mean(train.weights, dtype=np.float64))
    return float(np.sqrt(np.mean((test.weights.astype(np.float64) - mean) ** 2)))


def rating_report(model: Recommender, train: InteractionData, test: InteractionData) -> RatingReport:
    """The model's RMSE beside the global-mean baseline, with counts of cold users and items.

    `train` is the log the model was fitted on: it gives the baseline's mean
    and says which test pairs are cold (scored by the model's fallback).

    Example:
        >>> rating_report(model, train, test).rmse < rating_report(model, train, test).global_mean_rmse  # doctest: +SKIP
        True
    """
    if (train.n_users, train.n_items) != (test.n_users, test.n_items):
        raise InvalidArgumentError(
            f"train ({train.n_users} users x {train.n_items} items) and test "
            f"({test.n_users} x {test.n_items}) must share one vocabulary"
        )
    return RatingReport(
        rmse=rmse(model, test),
        global_mean_rmse=global_mean_rmse(train, test),
        n_pairs=len(test),
        n_cold_users=int((~np.isin(test.users, train.active_users())).sum()),
        n_cold_items=int((~np.isin(test.items, np.unique(train.items))).sum()),
    )

