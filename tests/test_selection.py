"""`model="auto"`: candidates trained on the log's past, the best on validation NDCG@10 retrained and served."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from conftest import fake_config, make_toy_catalog
from test_personalise import toy_log

from cli.main import main
from core.errors import InvalidArgumentError
from engine import Catalog, Engine, Interactions
from engine.config import EngineConfig, RecommendConfig
from engine.selection import (
    SKIPPED_BUDGET,
    default_candidates,
    has_sequences,
    retrain_settings,
    search_points,
    select_model,
    selection_report,
)
from recommenders.data import InteractionData


@pytest.fixture(scope="module")
def auto_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = tmp_path_factory.mktemp("catalog")
    engine = Engine.build(Catalog.from_file(make_toy_catalog(folder)), fake_config(), show_progress=False)
    return engine.fit(toy_log(), model="auto", show_progress=False, budget_s=60, epochs=2)


def test_the_winner_is_the_best_candidate_on_validation(auto_engine: Engine) -> None:
    report = selection_report(auto_engine.trained)
    assert report is not None
    scored = [r for r in report.rows if r.ndcg is not None]
    top = max(r.ndcg for r in scored)
    tied = [r.model for r in scored if r.ndcg == top]  # on a tie, a model beats the hybrid (at weight 0 its base)
    assert report.winner == next((m for m in tied if m != "hybrid"), "hybrid")
    assert {r.model for r in report.rows} == set(default_candidates_of_toy_log())
    assert report.validation_users == 60  # every toy user has 4 events: the latest is validation
    assert auto_engine.trained.model.name == report.winner


def default_candidates_of_toy_log() -> list[str]:
    # 4 events per user on average: the sequence models are candidates too
    return ["ease", "itemknn", "als", "hybrid", "neumf", "lightgcn", "multvae", "sasrec", "gru4rec"]


def test_the_retrained_winner_serves(auto_engine: Engine) -> None:
    winner = selection_report(auto_engine.trained).winner
    matches = auto_engine.recommend("u1", k=3)
    assert matches and matches[0].source == winner


def test_the_report_survives_save_and_load(auto_engine: Engine, tmp_path: Path) -> None:
    auto_engine.save(tmp_path / "model")
    loaded = Engine.load(tmp_path / "model").trained
    assert selection_report(loaded) == selection_report(auto_engine.trained)
    assert loaded.fit_report == auto_engine.trained.fit_report
    assert "val ndcg@10" in loaded.fit_report and "<- winner" in loaded.fit_report


def test_no_budget_trains_only_the_first_candidate(engine_and_log: tuple[Engine, object]) -> None:
    engine, log = engine_and_log
    engine.fit(log, model="auto", show_progress=False, budget_s=0)
    report = selection_report(engine.trained)
    assert [r.model for r in report.rows if r.status == "ok"] == ["ease"] and report.winner == "ease"
    assert all(r.status == SKIPPED_BUDGET for r in report.rows[1:]) and len(report.rows) == 9
    assert engine.trained.model.name == "ease" and engine.recommend("u1", k=1)[0].source == "ease"
    assert "skipped: budget spent" in report.table()


def test_a_planted_structure_picks_the_model_that_sees_it() -> None:
    log = toy_log()  # fruit lovers and tool lovers: item-kNN sees the groups, popularity cannot
    data = log.to_data(log.user_vocabulary(), sorted(set(log.frame["item_id"])))
    report = select_model(data, None, 60, candidates=["popularity", "itemknn"], show_progress=False)
    assert report.winner == "itemknn", report.table()
    popularity, knn = report.rows[0].ndcg, max(r.ndcg for r in report.rows[1:])
    assert knn > popularity + 0.1, report.table()


def test_model_errors_skip_the_candidate_with_their_reason() -> None:
    log = toy_log()
    data = log.to_data(log.user_vocabulary(), sorted(set(log.frame["item_id"])))  # 10 items
    report = select_model(data, None, 60, candidates=["ease", "itemknn"], show_progress=False, max_items=5)
    assert report.rows[0].status.startswith("skipped: EASE needs a dense item x item matrix")
    assert report.winner == "itemknn"


def test_bad_arguments_say_what_is_wrong(engine_and_log: tuple[Engine, object]) -> None:
    engine, log = engine_and_log
    with pytest.raises(InvalidArgumentError, match="budget_s applies to model='auto' only"):
        engine.fit(log, model="itemknn", budget_s=5)
    with pytest.raises(InvalidArgumentError, match=r"no candidate of auto has settings \['colour'\]"):
        engine.fit(log, model="auto", colour=3)


def test_search_points_start_from_the_defaults() -> None:
    assert search_points("ease", 5) == [{}, {"l2": 1000.0}, {"l2": 200.0}, {"l2": 3000.0}, {"l2": 50.0}]
    assert search_points("popularity", 3) == [{}]
    assert search_points("ease", 3, {"l2": 7.0}) == [{}]


def test_sequence_models_only_for_logs_with_sequences() -> None:
    sparse = InteractionData.from_arrays([0, 1, 2, 2], [0, 1, 0, 1], n_items=2)
    assert "sasrec" not in default_candidates(sparse) and "ease" in default_candidates(sparse)
    log = toy_log()  # 4 events per user, each at its own minute
    data = log.to_data(log.user_vocabulary(), sorted(set(log.frame["item_id"])))
    assert has_sequences(data) and "sasrec" in default_candidates(data)
    baskets = InteractionData(data.users, data.items, data.users * 1000, data.weights, data.n_users, data.n_items)
    assert not has_sequences(baskets)  # one time per user: the order of their events means nothing
    users = np.repeat(np.arange(13), [2] * 10 + [5] * 3)  # distinct times, but the median user has 2 events
    assert not has_sequences(InteractionData.from_arrays(users, np.arange(len(users)) % 5))
    bursts = np.arange(60) // 2  # 10 users x 6 events, rated two per second: 3 distinct times each
    assert has_sequences(InteractionData.from_arrays(np.arange(60) // 6, np.arange(60) % 7, bursts))


def test_the_cli_prints_the_table(engine_and_log: tuple[Engine, object], tmp_path: Path) -> None:
    engine, log = engine_and_log
    engine.save(tmp_path / "model")
    log.frame.to_csv(tmp_path / "log.csv", index=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["fit", str(tmp_path / "model"), "--events", str(tmp_path / "log.csv"), "--model", "auto",
                     "--budget", "0", "--quiet"])
    text = out.getvalue()
    assert code == 0, text
    assert "trained       : ease" in text and "val ndcg@10" in text and "skipped: budget spent" in text
    assert "<- winner" in text


@pytest.fixture
def engine_and_log(tmp_path: Path) -> tuple[Engine, object]:
    engine = Engine.build(Catalog.from_file(make_toy_catalog(tmp_path)), fake_config(), show_progress=False)
    return engine, toy_log()



def test_auto_is_the_default(engine_and_log: tuple[Engine, object]) -> None:
    assert RecommendConfig().model == "auto" and EngineConfig().recommend.model == "auto"
    with pytest.raises(InvalidArgumentError, match=r"RecommendConfig.model must be 'auto' or a model name \(als, "):
        RecommendConfig(model="neumff")
    engine, log = engine_and_log
    engine.fit(log, show_progress=False, budget_s=0)
    report = selection_report(engine.trained)
    assert report is not None and report.winner == engine.trained.model.name == "ease"


def test_the_hybrid_blends_the_best_cf_model_found_first(auto_engine: Engine) -> None:
    rows = selection_report(auto_engine.trained).rows
    first = next(i for i, r in enumerate(rows) if r.model == "hybrid")
    earlier = [r for r in rows[:first] if r.ndcg is not None and r.model in ("ease", "itemknn", "als")]
    base = max(earlier, key=lambda r: r.ndcg)  # max() keeps the first of equal scores, as the selection does
    blends = [r for r in rows if r.model == "hybrid" and r.params["base"] == base.model]
    assert [r.params["weight"] for r in blends[:5]] == [0.0, 0.1, 0.25, 0.5, 0.75]
    assert blends[0].ndcg == base.ndcg  # weight 0 is the base itself


def planted_cold_log() -> tuple[InteractionData, np.ndarray]:
    """The hybrid test's two groups, in time: nine clicks of one's group, then a cold item of it, latest."""
    from test_hybrid import N_USERS, planted_cold

    train, cold, features = planted_cold()
    users = np.concatenate([train.users, cold.users])
    items = np.concatenate([train.items, cold.items])
    times = np.concatenate([np.arange(len(train)), np.full(N_USERS, 10_000)])
    return InteractionData.from_arrays(users, items, times, n_users=N_USERS, n_items=train.n_items), features


def test_the_hybrid_wins_where_only_content_finds_the_items() -> None:
    data, features = planted_cold_log()
    report = select_model(data, features, 60, candidates=["ease", "itemknn", "hybrid"], show_progress=False)
    assert report.winner == "hybrid", report.table()
    best = max((r for r in report.rows if r.model == "hybrid"), key=lambda r: r.ndcg)
    base = max(r.ndcg for r in report.rows if r.model == best.params["base"])
    assert best.ndcg > base + 0.2 and best.params["weight"] > 0, report.table()
    assert report.winner_changes == {"base": best.params["base"], "base_config": {}, "weight": best.params["weight"]}
    assert retrain_settings(report) == report.winner_changes  # EASE and item-kNN train in one step: no epochs


def test_without_item_vectors_the_hybrid_is_skipped() -> None:
    data, _ = planted_cold_log()
    report = select_model(data, None, 60, candidates=["ease", "hybrid"], show_progress=False)
    assert report.rows[-1].status == "skipped: no item vectors to blend with" and report.winner == "ease"


def test_a_failing_candidate_is_skipped_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from recommenders.baselines import ItemKNN

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of disk")

    monkeypatch.setattr(ItemKNN, "fit", broken)
    log = toy_log()
    data = log.to_data(log.user_vocabulary(), sorted(set(log.frame["item_id"])))
    report = select_model(data, None, 60, candidates=["itemknn", "ease"], show_progress=False)
    assert report.rows[0].status == "skipped: RuntimeError: out of disk" and report.rows[0].ndcg is None
    assert report.winner == "ease" and "skipped: RuntimeError: out of disk" in report.table()


def test_the_winner_is_retrained_on_every_event(engine_and_log, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.selection as selection

    engine, log = engine_and_log
    latest = log.frame.sort_values("timestamp").groupby("user_id").tail(1)
    monkeypatch.setattr(selection, "CANDIDATES", (("als", 1, False),))
    engine.fit(log, show_progress=False, epochs=6, patience=2)
    trained, report = engine.trained, selection_report(engine.trained)
    assert report.winner == "als" and report.winner_epochs == report.rows[0].epochs and 1 <= report.winner_epochs <= 6
    assert trained.model.training.epochs_trained == report.winner_epochs  # the count selection kept, no early stop
    assert all("ndcg@10" not in r for r in trained.model.training.records)  # nothing was held out to validate on
    assert "every event trained, none held out" in trained.fit_report
    seen = trained.model.train_matrix.toarray()
    for user, item in zip(latest["user_id"], latest["item_id"]):
        assert seen[trained.user_row(user), trained.item_row(item)] == 1.0  # the latest event trained the model
        assert trained.history_of(user)[-1] == item
    engine.fit(log, "als", show_progress=False, epochs=6, patience=2)  # a named model keeps its early stopping
    seen = engine.trained.model.train_matrix.toarray()
    assert all(seen[engine.trained.user_row(u), engine.trained.item_row(i)] == 0.0
               for u, i in zip(latest["user_id"], latest["item_id"]))


def test_a_trial_stops_its_epochs_when_the_budget_runs_out() -> None:
    log = toy_log()
    data = log.to_data(log.user_vocabulary(), sorted(set(log.frame["item_id"])))
    report = select_model(data, None, 0, candidates=["als"], show_progress=False, epochs=50, patience=50)
    row = report.rows[0]
    assert row.status == "ok, stopped by the budget after 1 of 50 epochs" and row.ndcg is not None
    assert report.winner == "als" and report.winner_epochs == 1  # the retrain runs the one epoch it had


def test_a_log_too_small_to_validate_trains_the_fallback(engine_and_log) -> None:
    engine, log = engine_and_log
    first_two = Interactions(log.frame.sort_values("timestamp").groupby("user_id").head(2))
    engine.fit(first_two, show_progress=False)
    assert engine.trained.model.name == "itemknn" and selection_report(engine.trained) is None
    assert engine.trained.fit_report.startswith("auto: no user has the 3 events a validation needs")
    assert "trained itemknn on every event instead" in engine.trained.fit_report
    assert engine.recommend("u1", k=1)[0].source == "itemknn"


def test_reorders_are_not_counted_as_selection_events() -> None:
    from engine.trials import Trials
    from recommenders.splits import leave_last_out

    # Users 0-2 end on an item they had before (a re-order, masked in any ranking); users 3-5 on a new one.
    users = np.repeat(np.arange(6), 4)
    items = np.array([0, 1, 2, 0] * 3 + [0, 1, 2, 3] * 3)
    split = leave_last_out(InteractionData.from_arrays(users, items, np.arange(24)))
    trials = Trials(split, np.arange(6), lambda: None, False, {})
    assert trials.users.tolist() == [3, 4, 5]
    assert trials.trial("popularity", {}, limit=10.0).ndcg > 0  # only reachable events count
