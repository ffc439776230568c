"""The base class's epoch loop: validating every n-th epoch still keeps the best validated epoch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from recommenders.base import Recommender
from recommenders.data import InteractionData


class _Scripted(Recommender):
    """Each epoch sets its state to the epoch number; validation reads a scripted score per epoch."""

    name = "scripted"

    def __init__(self, scores: list[float], **overrides: Any) -> None:
        super().__init__(**overrides)
        self.scores, self.state, self.validated = scores, -1, []

    def fit(self, train: InteractionData, validation: InteractionData | None = None, item_features: Any = None,
            validate_every: int = 1) -> _Scripted:  # fmt: skip
        self._start_training(train)

        def run_epoch(epoch: int) -> float:
            self.state = epoch
            return 0.0

        self._train_epochs(train, validation, run_epoch, validate_every=validate_every)
        return self

    def _monitor(self, train: InteractionData, validation: InteractionData, stop_on: str) -> tuple[str, float, float]:
        self.validated.append(self.state)
        return "ndcg@10", self.scores[self.state], self.scores[self.state]

    def _snapshot(self) -> Any:
        return self.state

    def _restore(self, state: Any) -> None:
        self.state = state

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        return np.zeros((len(users), self.n_items))

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        pass


TRAIN = InteractionData.from_arrays([0, 0, 1, 1], [0, 1, 1, 2], n_users=2, n_items=3)
VALIDATION = InteractionData.from_arrays([0, 1], [2, 0], n_users=2, n_items=3)
# best at epoch 3 (0-based); epoch 2 is better still but never validated with validate_every=2
SCORES = [0.1, 0.3, 0.95, 0.5, 0.2, 0.4, 0.1, 0.1, 0.1, 0.1]


def test_every_second_epoch_keeps_the_best_validated_epoch() -> None:
    model = _Scripted(SCORES, epochs=10, patience=10, show_progress=False).fit(TRAIN, VALIDATION, validate_every=2)
    assert model.validated == [1, 3, 5, 7, 9]
    assert model.training.best_epoch == 3 and model.state == 3
    assert [("ndcg@10" in r) for r in model.training.records] == [False, True] * 5


def test_patience_counts_epochs_not_validations() -> None:
    model = _Scripted(SCORES, epochs=10, patience=4, show_progress=False).fit(TRAIN, VALIDATION, validate_every=2)
    # validated at 1, 3 (best), 5, 7: four epochs without a better score after 3 -> stop after epoch 7
    assert model.training.epochs_trained == 8
    assert model.state == 3


def test_the_last_planned_epoch_is_validated() -> None:
    model = _Scripted([0.1, 0.2, 0.9], epochs=3, patience=10, show_progress=False).fit(TRAIN, VALIDATION,
                                                                                       validate_every=2)
    assert model.validated == [1, 2]
    assert model.state == 2


def test_every_epoch_by_default() -> None:
    model = _Scripted(SCORES, epochs=10, patience=3, show_progress=False).fit(TRAIN, VALIDATION)
    assert model.validated == [0, 1, 2, 3, 4, 5]
    assert model.state == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_validate_every_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match=f"validate_every must be a positive integer, got {bad!r}"):
        model = _Scripted(SCORES, epochs=2, show_progress=False)
        model.fit(TRAIN, VALIDATION, validate_every=bad)  # type: ignore[arg-type]


class _Counting(_Scripted):
    """The base class's own `_monitor`, counting the users it scores."""

    def _monitor(self, train: InteractionData, validation: InteractionData, stop_on: str) -> tuple[str, float, float]:
        return Recommender._monitor(self, train, validation, stop_on)

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        self.validated.extend(users.tolist())
        return np.zeros((len(users), self.n_items))


@pytest.mark.parametrize(("n_items", "ranked"), [(100, 300), (250, 200), (10_000, 100)])
def test_early_stopping_ranks_at_most_a_budget_of_scores(monkeypatch: pytest.MonkeyPatch, n_items: int,
                                                         ranked: int) -> None:
    """At most VALIDATION_USERS users, and users x items within VALIDATION_SCORES, but at least MIN_VALIDATION_USERS."""
    import recommenders.base as base

    monkeypatch.setattr(base, "VALIDATION_USERS", 300)
    monkeypatch.setattr(base, "VALIDATION_SCORES", 50_000)
    monkeypatch.setattr(base, "MIN_VALIDATION_USERS", 100)
    users = np.arange(400)
    train = InteractionData.from_arrays(users, users % n_items, n_users=400, n_items=n_items)
    validation = InteractionData.from_arrays(users, (users + 1) % n_items, n_users=400, n_items=n_items)
    model = _Counting([0.0], epochs=1, show_progress=False).fit(train, validation)
    assert len(model.validated) == len(set(model.validated)) == ranked
