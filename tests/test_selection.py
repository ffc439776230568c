"""`model="auto"`: candidates trained on the log's past, the best on validation NDCG@10 retrained and served."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from conftest import fake_config, make_toy_catalog
from test_personalise import toy_log

from cli.main import main
from core.errors import InvalidArgumentError
from engine import Catalog, Engine
from engine.selection import SKIPPED_BUDGET, default_candidates, search_points, select_model, selection_report


@pytest.fixture(scope="module")
def auto_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = tmp_path_factory.mktemp("catalog")
    engine = Engine.build(Catalog.from_file(make_toy_catalog(folder)), fake_config(), show_progress=False)
    return engine.fit(toy_log(), model="auto", show_progress=False, budget_s=60, epochs=2)


def test_the_winner_is_the_best_candidate_on_validation(auto_engine: Engine) -> None:
    report = selection_report(auto_engine.trained)
    assert report is not None
    scored = [r for r in report.rows if r.ndcg is not None]
    assert report.winner == max(scored, key=lambda r: r.ndcg).model
    assert {r.model for r in report.rows} == set(default_candidates_of_toy_log())
    assert report.validation_users == 60  # every toy user has 4 events: the latest is validation
    assert auto_engine.trained.model.name == report.winner


def default_candidates_of_toy_log() -> list[str]:
    # 4 events per user on average: the sequence models are candidates too
    return ["ease", "itemknn", "als", "neumf", "lightgcn", "multvae", "sasrec", "gru4rec"]


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
    assert all(r.status == SKIPPED_BUDGET for r in report.rows[1:]) and len(report.rows) == 8
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
    from recommenders.data import InteractionData

    sparse = InteractionData.from_arrays([0, 1, 2, 2], [0, 1, 0, 1], n_items=2)
    assert "sasrec" not in default_candidates(sparse) and "ease" in default_candidates(sparse)


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

