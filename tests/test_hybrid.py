"""The hybrid: a CF model's scores blended with content similarity, both z-scored per user."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from recommenders import create_model, load_model
from recommenders.data import InteractionData
from recommenders.hybrid import Hybrid, HybridConfig
from recommenders.metrics import rank_users

N_USERS, WARM, COLD = 40, 30, 6  # items 0-14 and 15-29 warm, 30-35 cold (30-32 like the first group)
N_ITEMS = WARM + COLD


def group_of_item(item: int) -> int:
    return int(item < 15) if item < WARM else int(item < WARM + COLD // 2)


def planted_cold() -> tuple[InteractionData, InteractionData, np.ndarray]:
    """Two groups with disjoint tastes; each user's held-out item is a cold item of their group.

    The cold items have no training interactions, so no CF model can tell them from any other
    unclicked item; only their content (close to their group's items) can find them.
    """
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(N_USERS):
        own = np.arange(15) + (0 if u < N_USERS // 2 else 15)
        for i in rng.choice(own, size=9, replace=False):
            users.append(u), items.append(int(i))
    train = InteractionData.from_arrays(users, items, n_users=N_USERS, n_items=N_ITEMS)
    cold = [WARM + (u % 3) + (0 if u < N_USERS // 2 else 3) for u in range(N_USERS)]
    test = InteractionData.from_arrays(np.arange(N_USERS), cold, n_users=N_USERS, n_items=N_ITEMS)
    features = np.zeros((N_ITEMS, 8), dtype=np.float32)
    features[np.arange(N_ITEMS), [1 - group_of_item(i) for i in range(N_ITEMS)]] = 1.0
    features += rng.normal(0, 0.1, features.shape).astype(np.float32)
    return train, test, features


def ndcg(model, train: InteractionData, test: InteractionData) -> float:
    per_user, _ = rank_users(model.score, np.arange(N_USERS), train.csr(), test.csr(), 10)
    return float(per_user["ndcg@10"].mean())


@pytest.fixture(scope="module")
def planted():
    train, test, features = planted_cold()
    base = create_model("ease", show_progress=False, l2=10.0).fit(train)
    return train, test, features, base


def test_content_finds_cold_items_the_cf_base_cannot(planted) -> None:
    train, test, features, base = planted
    hybrid = Hybrid(show_progress=False, base_config={"l2": 10.0}, weight=0.5).fit(train, item_features=features)
    base_ndcg, hybrid_ndcg = ndcg(base, train, test), ndcg(hybrid, train, test)
    assert hybrid_ndcg > base_ndcg + 0.2, (base_ndcg, hybrid_ndcg)
    # the cold item of a user's own group outranks every item of the other group
    scores = hybrid.score(np.arange(N_USERS))
    for u in range(N_USERS):
        other = [i for i in range(N_ITEMS) if group_of_item(i) != (u < N_USERS // 2)]
        assert scores[u, test.items[u]] > scores[u, other].max()


def test_weight_zero_is_the_base(planted) -> None:
    train, test, features, base = planted
    hybrid = Hybrid.around(base, train, features, weight=0.0, show_progress=False)
    np.testing.assert_allclose(hybrid.score(np.arange(N_USERS)), base.score(np.arange(N_USERS)), rtol=1e-6)
    assert ndcg(hybrid, train, test) == ndcg(base, train, test)


def test_around_a_fitted_base_equals_fitting_it(planted) -> None:
    train, _, features, base = planted
    wrapped = Hybrid.around(base, train, features, weight=0.3, base_config={"l2": 10.0}, show_progress=False)
    fitted = Hybrid(show_progress=False, base_config={"l2": 10.0}, weight=0.3).fit(train, item_features=features)
    np.testing.assert_allclose(wrapped.score(np.arange(N_USERS)), fitted.score(np.arange(N_USERS)), rtol=1e-5)


def test_parts_are_z_scored_per_user_over_the_reference_items(planted) -> None:
    train, _, features, base = planted
    content_only = Hybrid.around(base, train, features, weight=1.0, show_progress=False)
    scores = content_only.score(np.arange(N_USERS))  # 36 items: every item is a reference item
    np.testing.assert_allclose(scores.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(scores.std(axis=1), 1.0, atol=1e-4)


def test_recent_items_weigh_more_in_a_visitors_profile(planted) -> None:
    train, _, features, base = planted
    hybrid = Hybrid.around(base, train, features, weight=1.0, recency_decay=0.1, show_progress=False)
    first_group_last = hybrid.score_history([[20, 21, 2]])[0]  # two of the second group, then one of the first
    assert first_group_last[:15].mean() > first_group_last[15:WARM].mean()
    plain = Hybrid.around(base, train, features, weight=1.0, recency_decay=1.0, show_progress=False)
    assert plain.score_history([[20, 21, 2]])[0][15:WARM].mean() > plain.score_history([[20, 21, 2]])[0][:15].mean()


def test_a_feature_using_base_round_trips(planted, tmp_path: Path) -> None:
    train, _, features, _ = planted
    tiny = {"epochs": 3, "gmf_dim": 4, "mlp_dim": 4, "mlp_layers": [8], "batch_size": 64}
    model = Hybrid(show_progress=False, base="neumf", base_config=tiny).fit(train, item_features=features)
    model.save(tmp_path / "hybrid")
    loaded = load_model(tmp_path / "hybrid")
    assert loaded.config == model.config and loaded.base.name == "neumf"
    np.testing.assert_allclose(loaded.score(np.arange(N_USERS)), model.score(np.arange(N_USERS)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"base": "hybrid"}, r"Hybrid base must be a model other than 'hybrid' \(als, .*\), got 'hybrid'"),
        ({"base": "nope"}, r"Hybrid base must be a model other than 'hybrid' .* got 'nope'"),
        ({"base_config": {"colour": 1}}, r"Hybrid base_config has fields \['colour'\] that 'ease' does not have"),
        ({"weight": 1.5}, r"Hybrid weight must lie in \[0, 1\], got 1.5"),
        ({"recency_decay": 0.0}, r"Hybrid recency_decay must lie in \(0, 1\], got 0.0"),
    ],
)
def test_bad_settings_are_named(settings: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        HybridConfig(**settings)


def test_it_needs_item_features(planted) -> None:
    train, _, _, _ = planted
    with pytest.raises(InvalidArgumentError, match="hybrid needs item_features"):
        Hybrid(show_progress=False).fit(train)
    with pytest.raises(InvalidArgumentError, match=r"item_features must have shape \(36, dim\)"):
        Hybrid(show_progress=False).fit(train, item_features=np.ones((3, 2)))


def test_it_scores_sessions_when_its_base_does() -> None:
    assert Hybrid(base="ease").scores_sessions and Hybrid(base="sasrec").scores_sessions
    assert not Hybrid(base="als").scores_sessions  # ALS would fold a history in by co-occurrence: serve users by ALS


def test_the_engine_serves_it_by_name(tmp_path: Path) -> None:
    from conftest import fake_config, make_toy_catalog
    from test_personalise import toy_log

    from engine import Catalog, Engine

    engine = Engine.build(Catalog.from_file(make_toy_catalog(tmp_path)), fake_config(), show_progress=False)
    engine.fit(toy_log(), "hybrid", show_progress=False, base_config={"l2": 10.0}, weight=0.3)
    fruit_fan, tool_fan = engine.recommend("u1", k=3), engine.recommend("u35", k=3)
    assert fruit_fan[0].item_id == "fruit-1" and tool_fan[0].item_id == "tool-0"
    assert {m.source for m in fruit_fan} == {"hybrid"}
    engine.save(tmp_path / "model")
    assert [m.item_id for m in Engine.load(tmp_path / "model").recommend("u1", k=3)] == [m.item_id for m in fruit_fan]


def test_a_base_that_scores_some_items_minus_infinity_keeps_the_others_ranked(planted, monkeypatch) -> None:
    train, _, features, base = planted
    hybrid = Hybrid.around(base, train, features, weight=0.5, show_progress=False)
    full = base.score(np.arange(N_USERS))
    masked = full.copy()
    masked[:, 0] = -np.inf
    columns = slice(None)
    monkeypatch.setattr(base, "score", lambda users, items=None: masked[users][:, columns if items is None else items])
    scores = hybrid.score(np.arange(N_USERS))
    assert np.isneginf(scores[:, 0]).all() and np.isfinite(scores[:, 1:]).all()


# Tiny dot-product bases: each fits the planted data in about a second.
DOT_BASES = {
    "als": {"epochs": 5, "factors": 8},
    "sasrec": {"epochs": 5, "dim": 16, "num_layers": 1, "max_len": 20, "batch_size": 8},
    "multvae": {"epochs": 5, "hidden_dim": 32, "latent_dim": 8, "batch_size": 8, "warmup_epochs": 0},
}


@pytest.mark.parametrize("weight", [0.0, 0.5])
@pytest.mark.parametrize("base", sorted(DOT_BASES))
def test_over_a_dot_product_base_the_inverted_file_gives_the_blends_top_items(
    base: str, weight: float, planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _, features, _ = planted
    hybrid = Hybrid(show_progress=False, base=base, base_config=DOT_BASES[base], weight=weight)
    hybrid.fit(train, item_features=features)
    assert hybrid.dot_product_scores and not Hybrid.dot_product_scores  # the base's, per instance
    monkeypatch.setattr(hybrid, "ann_shortlist_items", 1)  # the inverted file from one item on
    for scores, kwargs in (
        (hybrid.score([3])[0], {"user": 3}),
        (hybrid.score([25])[0], {"user": 25}),
        (hybrid.score_history([[0, 1, 2]])[0], {"history": [0, 1, 2]}),
    ):
        top = hybrid.top_items(n=8, **kwargs)
        assert len(set(top.tolist())) == 8
        np.testing.assert_allclose(scores[top], np.sort(scores)[::-1][:8], rtol=1e-5, atol=1e-5)
    shortlist = hybrid.inverted_file
    # 36 items make one list, scanned whole: exact, as the assertions above need.
    assert shortlist is not None and (shortlist.n_lists, shortlist.recall) == (1, 1.0)
    # The file itself (peeked at: top_items would also be right by scoring every item) orders all
    # 36 items, cold ones (no CF evidence: their content and the user's mean place them) included.
    found = shortlist.search(hybrid._query_vectors(np.array([3]), None), N_ITEMS)[0]
    scores = hybrid.score([3])[0]
    np.testing.assert_allclose(scores[found], np.sort(scores)[::-1], rtol=1e-5, atol=1e-5)


def test_a_hybrid_over_a_base_without_a_dot_product_scores_every_item(planted, monkeypatch) -> None:
    train, _, features, _ = planted
    hybrid = Hybrid(show_progress=False, base_config={"l2": 10.0}, weight=0.5).fit(train, item_features=features)
    monkeypatch.setattr(hybrid, "ann_shortlist_items", 1)
    scores = hybrid.score([3])[0]
    np.testing.assert_allclose(scores[hybrid.top_items(user=3, n=5)], np.sort(scores)[::-1][:5], rtol=1e-6)
    assert not hybrid.dot_product_scores and hybrid.inverted_file is None


@pytest.mark.parametrize("base", ["als", "sasrec"])
def test_content_wider_than_the_file_allows_is_reduced_and_the_shortlist_scored_exactly(
    base: str, planted, monkeypatch
) -> None:
    train, _, features, _ = planted
    monkeypatch.setattr("recommenders.hybrid.FILE_MAX_CONTENT_DIM", 4)  # the planted content is 8-d
    monkeypatch.setattr("recommenders.hybrid.REDUCED_CONTENT_DIM", 2)
    hybrid = Hybrid(show_progress=False, base=base, base_config=DOT_BASES[base], weight=0.5)
    hybrid.fit(train, item_features=features)
    monkeypatch.setattr(hybrid, "ann_shortlist_items", 1)
    monkeypatch.setattr(hybrid, "shortlist_factor", 3)  # 9 of the 36 items scored exactly for n = 3
    queries = ((hybrid.score([3])[0], {"user": 3}), (hybrid.score_history([[20, 21]])[0], {"history": [20, 21]}))
    for scores, kwargs in queries:
        top = hybrid.top_items(n=3, **kwargs)
        np.testing.assert_allclose(scores[top], np.sort(scores)[::-1][:3], rtol=1e-5, atol=1e-5)
    shortlist = hybrid.inverted_file
    # Rows: the base's factors (ALS 8, SASRec 16) and bias, the content's 2 main directions, the cold flag;
    # tuned, at fit, for the proxy's top 10 x 100 (the class's shortlist_factor).
    factors = {"als": 8, "sasrec": 16}[base]
    assert shortlist is not None and (shortlist.dim, shortlist.m) == (factors + 1 + 2 + 1, 1000)
    basis = hybrid._content_basis()  # peeked: orthonormal directions of the content
    np.testing.assert_allclose(basis.T @ basis, np.eye(2), atol=1e-5)


def test_at_weight_0_wide_content_leaves_the_base_s_own_file(planted, monkeypatch) -> None:
    train, _, features, _ = planted
    monkeypatch.setattr("recommenders.hybrid.FILE_MAX_CONTENT_DIM", 4)
    hybrid = Hybrid(show_progress=False, base="als", base_config=DOT_BASES["als"], weight=0.0)
    hybrid.fit(train, item_features=features)
    monkeypatch.setattr(hybrid, "ann_shortlist_items", 1)
    scores = hybrid.score([3])[0]  # the base's own scores, cold items included
    np.testing.assert_allclose(scores[hybrid.top_items(user=3, n=5)], np.sort(scores)[::-1][:5], rtol=1e-5, atol=1e-5)
    assert hybrid.inverted_file is not None and hybrid.inverted_file.dim == 8  # queries: ALS's 8 factors


def test_below_the_file_size_wide_content_computes_no_projection(planted, monkeypatch) -> None:
    train, _, features, _ = planted
    monkeypatch.setattr("recommenders.hybrid.FILE_MAX_CONTENT_DIM", 4)
    hybrid = Hybrid(show_progress=False, base="als", base_config=DOT_BASES["als"], weight=0.5)
    hybrid.fit(train, item_features=features)  # 36 items: far below ann_shortlist_items, no file
    scores = hybrid.score([3])[0]
    np.testing.assert_allclose(scores[hybrid.top_items(user=3, n=5)], np.sort(scores)[::-1][:5], rtol=1e-6)
    assert hybrid._basis is None and hybrid.inverted_file is None  # peeked: no eigen-decomposition was run
