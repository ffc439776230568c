"""EASE-specific behaviour: planted structure, the closed form, round trip, the memory cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from recommenders import create_model, load_model, model_class
from recommenders.data import InteractionData
from recommenders.ease import EASE, EASEConfig

N_USERS, N_ITEMS, HALF = 40, 30, 15


def _planted() -> tuple[InteractionData, np.ndarray]:
    """Two groups with disjoint tastes (items 0-14 vs 15-29); each user's 9th chosen item is held out."""
    rng = np.random.default_rng(0)
    users, items, held = [], [], []
    for u in range(N_USERS):
        group = np.arange(HALF) if u < N_USERS // 2 else np.arange(HALF, N_ITEMS)
        chosen = rng.choice(group, size=9, replace=False)
        users += [u] * 8
        items += chosen[:8].tolist()
        held.append(chosen[8])
    return InteractionData.from_arrays(users, items, n_users=N_USERS, n_items=N_ITEMS), np.array(held)


def test_registered_with_its_capabilities() -> None:
    cls = model_class("ease")
    assert cls is EASE and cls.scores_sessions and not cls.uses_item_features and not cls.predicts_ratings
    assert cls.tuning_grid == {"l2": [50.0, 200.0, 500.0, 1000.0, 3000.0]}


def test_held_out_item_of_the_own_group_ranks_first() -> None:
    data, held = _planted()
    model = create_model("ease", show_progress=False, l2=10.0).fit(data)
    seen = data.csr().toarray() > 0
    scores = np.where(seen, -np.inf, model.score(np.arange(N_USERS)))
    top = scores.argmax(axis=1)
    own_group = (top < HALF) == (np.arange(N_USERS) < N_USERS // 2)
    assert own_group.all()
    # The held-out item beats every item of the other group, for every user.
    other_best = np.where(np.arange(N_USERS) < N_USERS // 2, scores[:, HALF:].max(1), scores[:, :HALF].max(1))
    assert (scores[np.arange(N_USERS), held] > other_best).all()
    # An anonymous session of group-0 items is scored like a user of group 0.
    session = model.score_history([[0, 1, 2, 3]])[0]
    assert session[4:HALF].min() > session[HALF:].max()


def test_closed_form_equals_a_direct_numpy_computation() -> None:
    x = np.array([[1, 1, 0, 0, 1], [0, 1, 1, 0, 0], [1, 0, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=np.float64)
    users, items = np.nonzero(x)
    l2 = 2.5
    model = EASE(show_progress=False, l2=l2).fit(InteractionData.from_arrays(users, items, n_items=5))
    # Steck's constrained least squares, solved column by column: for each j,
    # b_j = argmin |x_j - X_{-j} b|^2 + l2 |b|^2 over the other items, B_jj = 0.
    expected = np.zeros((5, 5))
    for j in range(5):
        rest = np.delete(np.arange(5), j)
        a = x[:, rest]
        expected[rest, j] = np.linalg.solve(a.T @ a + l2 * np.eye(4), a.T @ x[:, j])
    np.testing.assert_allclose(model.weights, expected, rtol=1e-5, atol=1e-6)
    p = np.linalg.inv(x.T @ x + l2 * np.eye(5))
    np.testing.assert_allclose(model.weights, np.eye(5) - p / np.diag(p), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score([0, 3]), x[[0, 3]] @ expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score_history([[4, 0, 1, 4]]), (x[0] @ expected)[None], rtol=1e-5, atol=1e-6)


def test_save_load_gives_identical_scores(tmp_path: Path) -> None:
    data, _ = _planted()
    model = create_model("ease", show_progress=False, l2=10.0).fit(data)
    model.save(tmp_path / "ease")
    loaded = load_model(tmp_path / "ease")
    assert isinstance(loaded, EASE) and loaded.config == model.config
    np.testing.assert_array_equal(loaded.score(np.arange(N_USERS)), model.score(np.arange(N_USERS)))
    np.testing.assert_array_equal(loaded.score_history([[0, 5], [20]]), model.score_history([[0, 5], [20]]))
    np.testing.assert_array_equal(loaded.top_items(user=3, n=5), model.top_items(user=3, n=5))
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pickle"))


def test_a_catalogue_above_the_memory_cap_is_refused_by_name() -> None:
    data = InteractionData.from_arrays([0, 1], [0, 1], n_items=25_000)
    with pytest.raises(InvalidArgumentError, match=r"25,000 items would take about 7\.5 GB, above max_items=20,000"):
        EASE(show_progress=False).fit(data)
    small = InteractionData.from_arrays([0, 1], [0, 1], n_items=30)
    with pytest.raises(InvalidArgumentError, match=r"30 items .* above max_items=20"):
        EASE(show_progress=False, max_items=20).fit(small)


@pytest.mark.parametrize("field, value", [("l2", 0.0), ("l2", -1.0), ("max_items", 0)])
def test_bad_config_is_named(field: str, value: float) -> None:
    with pytest.raises(InvalidArgumentError, match=f"EASE {field} must"):
        EASEConfig(**{field: value})
