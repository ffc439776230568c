"""Personalised recommendation through the engine: paths, filters, persistence, errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import fake_config

from core.errors import InteractionsError, InvalidArgumentError, NotFittedError, UnknownItemError, UnknownUserError
from engine import Catalog, Engine, Interactions
from engine.config import RecommendConfig
from engine.filters import ItemFilter
from engine.personalise import Personaliser
from index.base import IdFilter

TINY = {
    "itemknn": {},
    "neumf": {"epochs": 30, "gmf_dim": 8, "mlp_dim": 8, "mlp_layers": (16, 8), "lr": 0.01, "batch_size": 32},
    "sasrec": {"epochs": 30, "dim": 16, "num_layers": 1, "max_len": 10, "batch_size": 8, "lr": 0.01},
}


def toy_log() -> Interactions:
    """Thirty fruit lovers and thirty tool lovers; user u saw every item of their kind but number u % 5."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):
        kind = "fruit" if u < 30 else "tool"
        items = [i for i in rng.permutation(5) if i != u % 5]
        for t, i in enumerate(items):
            rows.append({"user_id": f"u{u}", "item_id": f"{kind}-{i}", "timestamp": 1_700_000_000 + 60 * (u * 10 + t)})
    return Interactions(pd.DataFrame(rows))


@pytest.fixture
def engine(toy_catalog_file: Path) -> Engine:
    return Engine.build(Catalog.from_file(toy_catalog_file), fake_config(), show_progress=False)


@pytest.mark.parametrize("model", sorted(TINY))
def test_known_users_get_their_groups_unseen_item_first(engine: Engine, model: str) -> None:
    engine.fit(toy_log(), model=model, show_progress=False, **TINY[model])
    fruit_fan = engine.recommend("u1", k=3)
    tool_fan = engine.recommend("u35", k=3)
    assert fruit_fan[0].item_id == "fruit-1" and tool_fan[0].item_id == "tool-0"
    assert all(m.source == model for m in fruit_fan)
    seen = {f"fruit-{i}" for i in (0, 2, 3, 4)}
    assert seen.isdisjoint(m.item_id for m in fruit_fan)  # exclude_seen is the default
    assert fruit_fan[0].because in seen  # the history item that led to it


def test_exclude_seen_false_keeps_history_items(engine: Engine) -> None:
    engine.fit(toy_log(), model="itemknn", show_progress=False)
    items = {m.item_id for m in engine.recommend("u1", k=10, exclude_seen=False)}
    assert {"fruit-0", "fruit-2"} <= items


def test_filters_apply_to_recommendations(engine: Engine) -> None:
    engine.fit(toy_log(), model="itemknn", show_progress=False)
    tools = engine.recommend("u1", k=3, filter=ItemFilter(categories=["tools"]))
    assert len(tools) == 3 and all(m.fields["category"] == "tools" for m in tools)


def test_unknown_user_falls_back_to_content_then_popularity(engine: Engine) -> None:
    engine.fit(toy_log(), model="itemknn", show_progress=False)
    by_history = engine.recommend("new-user", history=["tool-0"], k=3)
    assert by_history[0].source == "content" and by_history[0].item_id.startswith("tool-")
    assert all(m.because == "tool-0" for m in by_history)
    cold = engine.recommend("new-user", k=3)
    assert [m.source for m in cold] == ["popularity"] * 3
    with pytest.raises(UnknownUserError, match=r"user 'new-user' is not in the training log \(60 users\)"):
        engine.recommend("new-user", k=3, strict=True)


def test_session_model_ranks_anonymous_histories(engine: Engine) -> None:
    engine.fit(toy_log(), model="sasrec", show_progress=False, **TINY["sasrec"])
    session = engine.recommend(history=["tool-1", "tool-2", "tool-3"], k=2)
    assert session[0].source == "sasrec" and session[0].item_id.startswith("tool-")


def test_recommend_without_fit(engine: Engine) -> None:
    assert engine.recommend(history=["fruit-0"], k=2)[0].item_id.startswith("fruit-")
    with pytest.raises(NotFittedError, match=r"call engine.fit\(interactions\) first"):
        engine.recommend("u1")


def test_save_load_gives_identical_recommendations(engine: Engine, tmp_path: Path) -> None:
    engine.fit(toy_log(), model="neumf", show_progress=False, **TINY["neumf"])
    engine.save(tmp_path / "model")
    loaded = Engine.load(tmp_path / "model")
    for user in ("u1", "u35"):
        assert loaded.recommend(user, k=5) == engine.recommend(user, k=5)
    assert loaded.recommend(history=["fruit-2"], k=3) == engine.recommend(history=["fruit-2"], k=3)


def test_bad_input_is_named(engine: Engine) -> None:
    frame = toy_log().frame.copy()
    frame.loc[0, "item_id"] = "sku-404"
    with pytest.raises(InteractionsError, match="sku-404"):
        engine.fit(Interactions(frame), model="itemknn", show_progress=False)
    engine.fit(Interactions(frame), model="itemknn", on_unknown="drop", show_progress=False)
    with pytest.raises(UnknownItemError, match=r"history item 'sku-9' is not in the catalog \(10 items\)"):
        engine.recommend(history=["sku-9"])


@pytest.mark.parametrize(
    "id_filter",
    [
        IdFilter(),
        IdFilter(exclude=frozenset({"fruit-1", "tool-0"})),
        IdFilter(include=frozenset(f"tool-{i}" for i in range(5)), exclude=frozenset({"tool-2"})),  # half the items
        IdFilter(include=frozenset({"fruit-3"})),  # a tenth: scored directly
        IdFilter(include=frozenset()),
    ],
)
def test_model_candidates_are_the_models_best_allowed_items(engine: Engine, id_filter: IdFilter) -> None:
    engine.fit(toy_log(), model="itemknn", show_progress=False)
    p = engine.personaliser
    trained = p.trained
    assert trained is not None
    row = trained.user_row("u1")
    scorer = lambda rows: trained.model.score([row], rows)[0]  # noqa: E731
    best = lambda n: trained.model.top_items(user=row, n=n)  # noqa: E731
    picked = p.model_candidates(scorer, best, id_filter, 3)
    allowed = [i for i in trained.item_ids if (id_filter.include is None or i in id_filter.include) and i not in id_filter.exclude]
    scores = dict(zip(trained.item_ids, trained.model.score([row])[0]))
    expected = sorted(allowed, key=lambda i: -scores[i])[:3]
    assert len(picked) == len(expected)
    assert [scores[i] for i in picked] == pytest.approx([scores[i] for i in expected])
    assert set(picked) <= set(allowed)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_candidates", 0, "RecommendConfig.n_candidates must be an integer >= 1, got 0"),
        ("model_candidates", -1, "RecommendConfig.model_candidates must be an integer >= 0, got -1"),
        ("candidate_rerank_factor", 1.5, "RecommendConfig.candidate_rerank_factor must be an integer >= 1, got 1.5"),
        ("recency_decay", 0.0, r"RecommendConfig.recency_decay must lie in \(0, 1\], got 0.0"),
    ],
)
def test_recommend_config_errors(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        RecommendConfig(**{field: value})


def spy_content_searches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts `Personaliser.content_candidates` calls (one per request that searches content)."""
    calls: list[int] = []
    search = Personaliser.content_candidates

    def counted(self: Personaliser, history: list[str], id_filter: IdFilter) -> dict:
        calls.append(len(history))
        return search(self, history, id_filter)

    monkeypatch.setattr(Personaliser, "content_candidates", counted)
    return calls


@pytest.mark.parametrize("model", ["neumf", "sasrec"])
def test_model_decided_top_skips_content_search_and_keeps_the_answer(
    engine: Engine, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.fit(toy_log(), model=model, show_progress=False, **TINY[model])
    requests: list[dict] = [dict(user_id=u) for u in ("u1", "u7", "u35", "u52")]
    if model == "sasrec":  # a session model ranks an anonymous history itself (NeuMF serves it from content)
        requests += [dict(history=["tool-1", "tool-2", "tool-3"]), dict(user_id="u3", history=["tool-4"])]
    calls = spy_content_searches(monkeypatch)
    fast = [engine.recommend(**r, k=3) for r in requests]
    assert calls == []  # the model's own 100 candidates decided every top 3
    # The path that also searches content, as every request did before: same items, order and shares.
    monkeypatch.setattr(Personaliser, "_decided_by_model", lambda *args: None)
    full = [engine.recommend(**r, k=3) for r in requests]
    assert len(calls) == len(requests)
    for a, b in zip(fast, full):
        assert [m.item_id for m in a] == [m.item_id for m in b]
        assert [m.score for m in a] == pytest.approx([m.score for m in b], abs=1e-6)
        assert {m.source for m in a} == {model}


def test_content_is_searched_when_the_model_cannot_decide(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.fit(toy_log(), model="neumf", show_progress=False, **TINY["neumf"])
    calls = spy_content_searches(monkeypatch)
    engine.recommend("u1", k=3)
    assert calls == []
    engine.config = replace(engine.config, recommend=RecommendConfig(model_candidates=0))
    engine.recommend("u1", k=3)  # no model candidates: content alone feeds the pool
    assert len(calls) == 1
    engine.config = replace(engine.config, recommend=RecommendConfig(model_candidates=3))
    engine.recommend("u1", k=3)  # n == k: the 3rd best is the lowest of them, an outside item could tie it
    assert len(calls) == 2
    engine.config = replace(engine.config, recommend=RecommendConfig())
    engine.recommend("u1", k=3, filter=ItemFilter(categories=["tools"]))  # 5 tools, 3 asked: decided
    assert len(calls) == 2
    engine.recommend("u1", k=6, filter=ItemFilter(categories=["tools"]))  # fewer allowed items than k
    assert len(calls) == 3
    # Item-kNN scores every tool 0 for a fruit lover: its 4 candidates tie from the 2nd on, so content is searched.
    engine.fit(toy_log(), model="itemknn", show_progress=False)
    engine.config = replace(engine.config, recommend=RecommendConfig(model_candidates=4))
    engine.recommend("u1", k=3)
    assert len(calls) == 4
