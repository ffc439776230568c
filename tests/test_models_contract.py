"""One contract for every registered recommender: planted structure, round trip, bad input.

Planted structure (as in implicit's checkerboard test): two user groups with
disjoint tastes. Every user has seen part of their group's items; after `fit`,
the unseen items of their own group must outrank the other group's items.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidArgumentError, NotFittedError, UnknownComponentError
from recommenders import Recommender, create_model, list_models, load_model, model_class
from recommenders.data import InteractionData

N_USERS, N_ITEMS, HALF = 40, 30, 15

# Tiny configurations: each fits the toy data in a few seconds on one core.
TINY: dict[str, dict[str, object]] = {
    "popularity": {},
    "itemknn": {},
    "content": {},
    "als": {"epochs": 5, "factors": 8},
    "bprmf": {"epochs": 40, "factors": 8, "lr": 0.05, "batch_size": 64},
    "biasedmf": {"epochs": 40, "dim": 8, "lr": 0.05, "batch_size": 64},
    "neumf": {"epochs": 40, "gmf_dim": 8, "mlp_dim": 8, "mlp_layers": (16, 8), "lr": 0.01, "batch_size": 64},
    "gru4rec": {"epochs": 30, "hidden_dim": 16, "batch_size": 8, "lr": 0.01},
    "sasrec": {"epochs": 30, "dim": 16, "num_layers": 1, "max_len": 20, "batch_size": 8, "lr": 0.01},
    "multvae": {"epochs": 60, "hidden_dim": 32, "latent_dim": 8, "batch_size": 8, "anneal_steps": 50, "lr": 1e-3, "warmup_epochs": 0},
    "multdae": {"epochs": 60, "hidden_dim": 32, "latent_dim": 8, "batch_size": 8},
    "rbm": {"epochs": 60, "hidden_dim": 16, "batch_size": 8},
    "lightgcn": {"epochs": 40, "dim": 8, "layers": 2, "batch_size": 64, "lr": 0.05},
    "ease": {"l2": 10.0},
    "hybrid": {"base_config": {"l2": 10.0}, "weight": 0.3},
}
# Popularity ranks every user alike, and biased MF predicts rating values (all
# planted ratings are 4-5), so neither can separate the groups, by design.
NOT_PERSONAL = {"popularity", "biasedmf"}


def planted() -> tuple[InteractionData, InteractionData, np.ndarray]:
    """Train/validation logs where users 0-19 like items 0-14 and users 20-39 items 15-29."""
    rng = np.random.default_rng(0)
    users, items, times, ratings = [], [], [], []
    for u in range(N_USERS):
        own = np.arange(HALF) + (0 if u < N_USERS // 2 else HALF)
        seen = rng.choice(own, size=9, replace=False)
        for t, i in enumerate(seen):
            users.append(u), items.append(int(i)), times.append(t), ratings.append(float(rng.integers(4, 6)))
    data = InteractionData.from_arrays(users, items, times, ratings, n_users=N_USERS, n_items=N_ITEMS)
    last = np.zeros(len(data), dtype=bool)
    for u in range(N_USERS):
        last[np.flatnonzero(data.users == u)[-1]] = True
    features = np.zeros((N_ITEMS, 8), dtype=np.float32)
    features[:HALF, 0] = 1.0
    features[HALF:, 1] = 1.0
    features += rng.normal(0, 0.1, features.shape).astype(np.float32)
    return data.subset(~last), data.subset(last), features


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[Recommender, InteractionData]]:
    """Each model fitted once on the planted data (shared by the tests below)."""
    train, validation, features = planted()
    out = {}
    for name in list_models():
        model = create_model(name, show_progress=False, **TINY.get(name, {"epochs": 20}))
        model.fit(train, validation, item_features=features if model.uses_item_features else None)
        out[name] = (model, train)
    return out


def test_every_model_has_a_tiny_configuration() -> None:
    assert sorted(TINY) == list_models()


@pytest.mark.parametrize("name", sorted(TINY))
def test_planted_groups_rank_their_own_unseen_items_first(name: str, fitted) -> None:
    if name in NOT_PERSONAL:
        pytest.skip("not a personal ranking model")
    model, train = fitted[name]
    scores = model.score(np.arange(N_USERS))
    seen = train.csr().toarray() > 0
    wins = []
    for u in range(N_USERS):
        own = np.arange(HALF) + (0 if u < N_USERS // 2 else HALF)
        other = np.setdiff1d(np.arange(N_ITEMS), own)
        unseen_own = own[~seen[u, own]]
        wins.append(scores[u, unseen_own].mean() > scores[u, other].mean())
    assert np.mean(wins) >= 0.9, f"{name}: only {np.mean(wins):.0%} of users prefer their own group"


@pytest.mark.parametrize("name", sorted(TINY))
def test_anonymous_history_follows_its_group(name: str, fitted) -> None:
    if name in NOT_PERSONAL:
        pytest.skip("not a personal ranking model")
    model, _ = fitted[name]
    scores = model.score_history([[0, 1, 2, 3], [20, 21, 22, 23]])
    assert scores.shape == (2, N_ITEMS)
    assert scores[0, 4:HALF].mean() > scores[0, HALF:].mean()
    assert scores[1, HALF + 9 :].mean() > scores[1, :HALF].mean()


@pytest.mark.parametrize("name", sorted(TINY))
def test_candidate_scores_equal_full_scores(name: str, fitted) -> None:
    model, _ = fitted[name]
    full = model.score([3, 25])
    candidates = np.array([29, 0, 7, 15])
    np.testing.assert_allclose(model.score([3, 25], candidates), full[:, candidates], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(TINY))
def test_save_load_round_trip_is_identical(name: str, fitted, tmp_path: Path) -> None:
    model, _ = fitted[name]
    model.save(tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert type(loaded) is type(model) and loaded.config == model.config
    np.testing.assert_allclose(loaded.score(np.arange(N_USERS)), model.score(np.arange(N_USERS)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(loaded.score_history([[0, 1]]), model.score_history([[0, 1]]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(TINY))
def test_bad_input_is_named(name: str, fitted) -> None:
    model, _ = fitted[name]
    with pytest.raises(InvalidArgumentError, match=r"user rows must lie in \[0, 40\), got \[40\]"):
        model.score([40])
    with pytest.raises(InvalidArgumentError, match=r"item rows must lie in \[0, 30\), got \[-1\]"):
        model.score([0], [-1])
    with pytest.raises(InvalidArgumentError, match=r"history item rows must lie in \[0, 30\), got \[99\]"):
        model.score_history([[99]])
    with pytest.raises(NotFittedError, match=f"model '{name}' is not fitted"):
        create_model(name).score([0])


def test_fit_is_seeded() -> None:
    train, validation, _ = planted()
    a = create_model("bprmf", show_progress=False, **TINY["bprmf"]).fit(train, validation)
    b = create_model("bprmf", show_progress=False, **TINY["bprmf"]).fit(train, validation)
    np.testing.assert_array_equal(a.score([0, 1]), b.score([0, 1]))


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(UnknownComponentError, match="unknown model 'sasrek'; valid names: als, biasedmf, bprmf"):
        create_model("sasrek")


def test_loading_a_folder_as_another_model_is_refused(fitted, tmp_path: Path) -> None:
    model, _ = fitted["als"]
    model.save(tmp_path / "als")
    with pytest.raises(InvalidArgumentError, match="holds a 'als' model, not a BPRMF"):
        model_class("bprmf").from_parts(tmp_path / "als", {"model": "als"})


@pytest.mark.parametrize("name", sorted(TINY))
def test_capabilities_are_declared_on_the_class(name: str, fitted) -> None:
    model, _ = fitted[name]
    cls = model_class(name)
    assert type(model) is cls and cls.name == name
    for capability in ("uses_item_features", "scores_sessions", "predicts_ratings", "rating_only", "explains"):
        assert isinstance(getattr(cls, capability), bool), capability
    assert cls.predicts_ratings == hasattr(model, "predict_ratings")
    assert cls.tuning_grid is None or isinstance(cls.tuning_grid, dict)
    if cls.explains:
        assert model.explain([0, 1, 2]).shape == (3,)
    else:
        with pytest.raises(InvalidArgumentError, match=f"model '{name}' cannot explain its scores"):
            model.explain([0, 1, 2])


@pytest.mark.parametrize("name", sorted(TINY))
def test_the_training_log_is_declared_and_filled(name: str, fitted) -> None:
    model, _ = fitted[name]
    log = model.training
    assert len(log.records) == log.epochs_trained <= model.config.epochs
    if log.epochs_trained:  # models that train in epochs: validated on the planted validation part
        assert 0 <= log.best_epoch < log.epochs_trained and log.seconds_per_epoch >= 0
        assert len(log.records[log.best_epoch].keys() & {"ndcg@10", "rmse"}) == 1  # the epoch kept was validated


@pytest.mark.parametrize("name", sorted(TINY))
def test_top_items_are_the_best_scored_items(name: str, fitted) -> None:
    model, _ = fitted[name]
    for user in (3, 25):
        scores = model.score([user])[0]
        top = model.top_items(user=user, n=5)
        assert len(set(top.tolist())) == 5
        # The same items as sorting all scores (ties may swap places, so compare scores).
        np.testing.assert_allclose(scores[top], np.sort(scores)[::-1][:5], rtol=1e-5, atol=1e-6)
    history_scores = model.score_history([[0, 1, 2]])[0]
    top = model.top_items(history=[0, 1, 2], n=4)
    np.testing.assert_allclose(history_scores[top], np.sort(history_scores)[::-1][:4], rtol=1e-5, atol=1e-6)
    assert len(model.top_items(user=0, n=1000)) == N_ITEMS


DOT_PRODUCT = ["als", "bprmf", "gru4rec", "lightgcn", "multdae", "multvae", "sasrec"]


def test_the_dot_product_models_are_the_ones_declared() -> None:
    assert [name for name in list_models() if model_class(name).dot_product_scores] == DOT_PRODUCT


@pytest.mark.parametrize("name", DOT_PRODUCT)
def test_dot_product_models_find_their_top_items_in_the_inverted_file(name: str, fitted, monkeypatch) -> None:
    model, _ = fitted[name]
    monkeypatch.setattr(model, "ann_shortlist_items", 1)  # the inverted file from one item on
    monkeypatch.setattr(model, "_shortlist", None)
    for scores, kwargs in ((model.score([3])[0], {"user": 3}), (model.score_history([[0, 1, 2]])[0], {"history": [0, 1, 2]})):
        top = model.top_items(n=5, **kwargs)
        assert len(set(top.tolist())) == 5
        np.testing.assert_allclose(scores[top], np.sort(scores)[::-1][:5], rtol=1e-5, atol=1e-5)
    # 30 items make one list, scanned whole: exact, as the assertions above need.
    assert model._shortlist is not None and (model._shortlist.n_lists, model._shortlist.recall) == (1, 1.0)


def test_an_empty_sequence_skips_the_inverted_file(monkeypatch) -> None:
    train, _, _ = planted()
    # One more user, without a training event: an empty sequence.
    train = InteractionData.from_arrays(train.users, train.items, train.timestamps, n_users=N_USERS + 1, n_items=N_ITEMS)
    model = create_model("gru4rec", show_progress=False, **{**TINY["gru4rec"], "epochs": 2}).fit(train)
    monkeypatch.setattr(model, "ann_shortlist_items", 1)
    for scores, kwargs in ((model.score_history([[]])[0], {"history": []}), (model.score([N_USERS])[0], {"user": N_USERS})):
        # popularity: the network has nothing to read
        np.testing.assert_allclose(scores[model.top_items(n=5, **kwargs)], np.sort(scores)[::-1][:5])
    assert model._shortlist is None
    model.top_items(user=0, n=5)  # tuned on users with events only
    assert model._shortlist is not None and model._shortlist.recall == 1.0


def test_a_refit_drops_the_inverted_file(monkeypatch) -> None:
    train, validation, _ = planted()
    model = create_model("als", show_progress=False, **TINY["als"])
    monkeypatch.setattr(model, "ann_shortlist_items", 1)
    model.fit(train).top_items(user=0, n=5)
    assert model._shortlist is not None
    model.fit(train)
    assert model._shortlist is None


def test_inverted_file_over_many_lists_finds_most_of_the_exact_top(monkeypatch) -> None:
    # About 6,000 items with interactions make five lists, probed as tuned on the users' own queries.
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 300, 30_000), rng.integers(0, 6000, 30_000)
    data = InteractionData.from_arrays(users, items, np.arange(30_000), n_users=300, n_items=6000)
    model = create_model("als", show_progress=False, factors=16, epochs=3).fit(data)
    monkeypatch.setattr(model, "ann_shortlist_items", 1)
    exact = [set(np.argsort(-model.score([u])[0])[:100].tolist()) for u in range(0, 300, 15)]
    found = [set(model.top_items(user=u, n=100).tolist()) for u in range(0, 300, 15)]
    assert model._shortlist is not None and model._shortlist.n_lists == 5
    assert np.mean([len(f & e) / 100 for f, e in zip(found, exact)]) >= 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 3}, "exactly one of user= and history="),
        ({"user": 0, "history": [1], "n": 3}, "exactly one of user= and history="),
        ({"user": 0, "n": 0}, "n must be a positive integer, got 0"),
        ({"user": 40, "n": 3}, r"user rows must lie in \[0, 40\), got \[40\]"),
        ({"history": [30], "n": 3}, r"history item rows must lie in \[0, 30\), got \[30\]"),
    ],
)
def test_top_items_bad_input_is_named(kwargs: dict, message: str, fitted) -> None:
    model, _ = fitted["als"]
    with pytest.raises(InvalidArgumentError, match=message):
        model.top_items(**kwargs)


def test_neumf_shortlist_is_rescored_exactly(fitted, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = fitted["neumf"]
    monkeypatch.setattr(model, "shortlist_factor", 2)  # shortlist 2 * 5 = 10 of 30 items
    for kwargs in ({"user": 3}, {"history": [0, 1, 2]}):
        top = model.top_items(n=5, **kwargs)
        scores = model.score([3])[0] if "user" in kwargs else model.score_history([[0, 1, 2]])[0]
        assert len(set(top.tolist())) == 5
        assert np.all(np.diff(scores[top]) <= 1e-6), "shortlisted items come back in exact-score order"
        # The planted user and history like items 0-14: the shortlist finds unseen ones of them.
        assert np.mean(top < HALF) >= 0.8


def test_neumf_inverted_file_shortlist_gives_the_proxy_pass_answer(fitted, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = fitted["neumf"]
    monkeypatch.setattr(model, "shortlist_factor", 2)
    dense = {key: model.top_items(n=5, **kwargs) for key, kwargs in (("user", {"user": 3}), ("history", {"history": [0, 1]}))}
    monkeypatch.setattr(model, "ann_shortlist_items", 1)  # the inverted file from one item on
    monkeypatch.setattr(model, "_shortlist", None)
    assert np.array_equal(model.top_items(n=5, user=3), dense["user"])
    assert np.array_equal(model.top_items(n=5, history=[0, 1]), dense["history"])
    # 30 items make one list, scanned whole: the shortlist is the proxy's exact top 10.
    assert model._shortlist is not None and (model._shortlist.n_lists, model._shortlist.recall) == (1, 1.0)


def test_neumf_falls_back_to_the_proxy_pass_when_the_file_finds_too_few(fitted, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = fitted["neumf"]
    monkeypatch.setattr(model, "shortlist_factor", 2)
    dense = model.top_items(n=5, user=3)
    monkeypatch.setattr(model, "ann_shortlist_items", 1)
    monkeypatch.setattr(model, "_shortlist", None)
    shortlist = model._inner_product_shortlist()
    # Probed lists that held fewer than n items: FAISS pads with -1.
    monkeypatch.setattr(shortlist, "search", lambda queries, m: np.array([[7, 2, -1, -1, -1, -1, -1, -1, -1, -1]]))
    assert np.array_equal(model.top_items(n=5, user=3), dense)
