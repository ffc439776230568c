"""Tests specific to the next-item models, GRU4Rec and SASRec.

The planted structure: items 0-9 and 10-19 form two cycles (0 -> 1 -> ... ->
9 -> 0); every user walks one cycle from a random start, so the next item is
always the successor of the last one, which only a model of order can know.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import InvalidArgumentError
from recommenders import create_model, load_model
from recommenders.data import InteractionData
from recommenders.gru4rec import GRU4Rec
from recommenders.sasrec import SASRec
from recommenders.sequential import NextItemLoss, SequentialRecommender

N_ITEMS = 20

TINY = {
    "gru4rec": {"hidden_dim": 16, "batch_size": 8, "lr": 0.02, "epochs": 15, "dropout_hidden": 0.0},
    "sasrec": {"dim": 16, "num_heads": 2, "num_layers": 1, "max_len": 8, "batch_size": 8, "lr": 0.01,
               "epochs": 25, "dropout": 0.0},
}  # fmt: skip
# The same models trained with sampled softmax (forced on this small catalog), 8 shared negatives.
SAMPLED = {"full_softmax_below": 1, "sampled_negatives": 8}
CONFIGS = {**TINY, **{f"{name}-sampled": {**TINY[name], **SAMPLED} for name in TINY}}


def successor(item: int) -> int:
    return (item // 10) * 10 + (item % 10 + 1) % 10


def cycles(n_users: int = 40, seed: int = 0) -> tuple[InteractionData, InteractionData]:
    """Train: each user's walk but its last step; validation: that last step."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(n_users):
        item = (user % 2) * 10 + int(rng.integers(10))
        for _ in range(int(rng.integers(8, 14))):
            users.append(user)
            items.append(item)
            item = successor(item)
    u, i = np.array(users), np.array(items)
    last = np.r_[u[1:] != u[:-1], True]
    data = InteractionData.from_arrays(u, i, n_users=n_users, n_items=N_ITEMS)
    return data.subset(~last), data.subset(last)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def fitted(request: pytest.FixtureRequest) -> SequentialRecommender:
    torch.set_num_threads(1)
    # No validation: its items repeat the training walk, so full-catalogue masking would blank them.
    train, _ = cycles()
    name = request.param.removesuffix("-sampled")
    return create_model(name, show_progress=False, **CONFIGS[request.param]).fit(train)


def test_learns_the_order_of_items(fitted: SequentialRecommender) -> None:
    histories = [[2, 3, 4], [7, 8, 9], [11, 12], [18, 19, 10]]
    top = fitted.score_history(histories).argmax(axis=1)
    assert top.tolist() == [successor(h[-1]) for h in histories]


def test_user_scores_are_history_scores_of_the_training_sequence(fitted: SequentialRecommender) -> None:
    users = np.array([0, 5, 17])
    expected = fitted.score_history([fitted.user_history(u) for u in users])
    np.testing.assert_allclose(fitted.score(users), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fitted.score(users, items=[3, 1]), expected[:, [3, 1]], rtol=1e-5, atol=1e-5)


def test_scores_do_not_depend_on_the_batch(fitted: SequentialRecommender) -> None:
    short, long_ = [4], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    alone = fitted.score_history([short])
    together = fitted.score_history([long_, short])
    np.testing.assert_allclose(together[1:], alone, rtol=1e-5, atol=1e-5)


def test_empty_history_falls_back_to_popularity(fitted: SequentialRecommender) -> None:
    counts = cycles()[0].item_counts()
    scores = fitted.score_history([[]])[0]
    assert np.argmax(scores) in np.flatnonzero(counts == counts.max())
    np.testing.assert_array_equal(fitted.score_history([[], [3, 4]], items=[7, 2])[0], scores[[7, 2]])


@pytest.mark.parametrize("name", ["gru4rec", "sasrec"])
def test_training_log_records_validation(name: str) -> None:
    train, validation = cycles()
    model = create_model(name, show_progress=False, **{**TINY[name], "epochs": 3, "patience": 1}).fit(train, validation)
    log = model.training
    assert 1 <= log.epochs_trained <= 3 and len(log.records) == log.epochs_trained
    assert all("ndcg@10" in r and r["seconds"] >= 0 and np.isfinite(r["loss"]) for r in log.records)


def test_save_load_is_exact(fitted: SequentialRecommender, tmp_path: Path) -> None:
    fitted.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert type(loaded) is type(fitted) and isinstance(loaded, SequentialRecommender)
    np.testing.assert_array_equal(loaded.score(np.arange(40)), fitted.score(np.arange(40)))
    np.testing.assert_array_equal(loaded.score_history([[1, 2]]), fitted.score_history([[1, 2]]))
    np.testing.assert_array_equal(loaded.user_history(3), fitted.user_history(3))


@pytest.mark.parametrize("name", ["gru4rec", "sasrec"])
def test_fit_is_seeded(name: str) -> None:
    train, _ = cycles()
    a, b = (create_model(name, show_progress=False, **{**TINY[name], "epochs": 2}).fit(train) for _ in range(2))
    np.testing.assert_array_equal(a.score([0, 1]), b.score([0, 1]))


def test_user_history_rejects_unknown_rows(fitted: SequentialRecommender) -> None:
    with pytest.raises(InvalidArgumentError, match="40"):
        fitted.user_history(40)


def test_sasrec_explain_weights_cover_the_recent_window() -> None:
    train, validation = cycles()
    model = SASRec(show_progress=False, **{**TINY["sasrec"], "epochs": 2}).fit(train, validation)
    weights = model.explain([5, 6, 7])
    assert weights.shape == (3,) and weights.dtype == np.float32
    assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0, abs=1e-5)
    long_history = list(range(10)) * 2  # 20 items, max_len 8: only the last 8 are visible
    weights = model.explain(long_history)
    assert weights.shape == (20,)
    assert np.all(weights[:12] == 0) and weights[12:].sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("history", [[], [[1, 2]], [0, 99], [-1]])
def test_sasrec_explain_rejects_bad_history(history: list) -> None:
    train, validation = cycles()
    model = SASRec(show_progress=False, **{**TINY["sasrec"], "epochs": 1}).fit(train, validation)
    with pytest.raises(InvalidArgumentError, match="history"):
        model.explain(history)


def test_gru4rec_trains_when_slots_outnumber_sequences() -> None:
    # Length-1 sequences have no target and are skipped; 3 usable sequences, 8 slots.
    data = InteractionData.from_arrays([0, 0, 0, 1, 1, 2, 2, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8], n_items=10)
    model = GRU4Rec(show_progress=False, hidden_dim=8, batch_size=8, epochs=2).fit(data)
    assert model.training.epochs_trained == 2 and np.isfinite(model.training.records[-1]["loss"])
    assert np.isfinite(model.score([3])).all()


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("sasrec", {"dim": 10, "num_heads": 3}, "divisible by num_heads"),
        ("sasrec", {"max_len": 0}, "max_len"),
        ("sasrec", {"dropout": 1.0}, "dropout"),
        ("gru4rec", {"hidden_dim": -4}, "hidden_dim"),
        ("gru4rec", {"lr": 0.0}, "lr"),
        ("gru4rec", {"sampled_negatives": 0}, "GRU4Rec sampled_negatives must be a positive integer, got 0"),
        ("sasrec", {"full_softmax_below": -1}, "SASRec full_softmax_below must be a positive integer, got -1"),
        ("sasrec", {"sample_alpha": 1.5}, r"SASRec sample_alpha must lie in \[0, 1\], got 1.5"),
    ],
)
def test_bad_config_is_rejected(name: str, overrides: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        create_model(name, **overrides)


def test_sampled_softmax_masks_repeated_targets_but_not_labels() -> None:
    counts = np.array([50.0, 1.0, 1.0, 1.0, 1.0])
    config = GRU4Rec.config_class(full_softmax_below=1, sampled_negatives=4, sample_alpha=1.0)
    loss = NextItemLoss(counts, config, np.random.default_rng(0))
    assert loss.sampled
    states = torch.randn(3, 4, requires_grad=True)
    weight = torch.randn(5, 4, requires_grad=True)
    targets = torch.tensor([0, 0, 2])  # rows 0 and 1 share their target: neither is the other's negative
    value = loss(states, targets, weight)
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(states.grad).all() and weight.grad[0].abs().sum() > 0


def test_full_softmax_below_the_threshold_is_plain_cross_entropy() -> None:
    config = GRU4Rec.config_class()  # 20,000-item threshold
    loss = NextItemLoss(np.ones(6), config, np.random.default_rng(0))
    states, weight, targets = torch.randn(3, 4), torch.randn(6, 4), torch.tensor([1, 5, 0])
    assert not loss.sampled
    expected = torch.nn.functional.cross_entropy(states @ weight.T, targets)
    assert torch.allclose(loss(states, targets, weight), expected)
