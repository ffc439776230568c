"""Scores on one documented scale per source; user ids looked up like catalog ids; recorded events; the kept epoch."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import fake_config
from test_personalise import TINY, toy_log

from core.errors import InvalidArgumentError, NotFittedError, UnknownUserError
from encoders.fusion import Fusion, FusionConfig
from engine import Catalog, Engine, Interactions
from engine.config import RecommendConfig
from engine.events import EventLog
from engine.personalise import Personaliser
from engine.trained import REFERENCE_ITEMS, TrainedModel, share_below
from recommenders.training import TrainingLog


@pytest.fixture
def engine(toy_catalog_file: Path) -> Engine:
    return Engine.build(Catalog.from_file(toy_catalog_file), fake_config(), show_progress=False)


def events(rows: list[tuple[object, str]]) -> EventLog:
    frame = pd.DataFrame({"user_id": [u for u, _ in rows], "item_id": [i for _, i in rows],
                          "timestamp": [1_800_000_000 + t for t in range(len(rows))]})
    return EventLog().appended(Interactions(frame))


def personaliser(engine: Engine, log: EventLog) -> Personaliser:
    return Personaliser(engine.index, engine.catalog, RecommendConfig(), engine.trained, events=log)


# ----- search: the cosine in the query's own modalities ------------------------------------------
def test_an_exact_image_match_scores_one_and_text_scores_its_cosine(engine: Engine, toy_catalog_file: Path) -> None:
    hits = engine.search(image=toy_catalog_file.parent / "f0.png", k=10)
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)  # was sqrt(w_img) = 0.5
    text = engine.catalog.text(engine.catalog.row("tool-3"))
    by_text = engine.search(text=text, k=10)
    assert by_text[0].item_id == "tool-3" and by_text[0].score == pytest.approx(1.0, abs=1e-5)
    texts = [engine.catalog.text(engine.catalog.row(m.item_id)) for m in by_text]
    vectors = engine.encoders.text.encode([text] + texts)
    assert [m.score for m in by_text] == pytest.approx((vectors[1:] @ vectors[0]).tolist(), abs=1e-5)
    for matches in (hits, by_text, engine.search(text="red fruit", image=toy_catalog_file.parent / "t1.png", k=10)):
        scores = [m.score for m in matches]
        assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)


def test_search_keeps_the_index_ranking(engine: Engine, toy_catalog_file: Path) -> None:
    for query in ({"text": "steel hand tool"}, {"image": toy_catalog_file.parent / "t2.png"},
                  {"text": "red apple", "image": toy_catalog_file.parent / "t2.png"}):
        vector = engine.query_vector(**query)
        _, ids = engine.index.search(vector[None, :], 10)
        assert [m.item_id for m in engine.search(k=10, **query)] == [str(i) for i in ids[0]]


def test_query_scale_gives_the_weighted_mean_cosine_over_the_querys_modalities() -> None:
    fusion = Fusion(2, 2, FusionConfig(image_weight=1, text_weight=3))
    img, txt = np.array([[1.0, 0.0], [0.6, 0.8]]), np.array([[0.0, 1.0], [0.0, 1.0]])
    items = np.vstack([
        fusion.fuse(img, txt, np.array([True, True]), np.array([True, True])),  # complete items
        fusion.fuse(img[:1], None, np.array([True]), np.array([False])),          # image only
        fusion.fuse(None, txt[:1], np.array([False]), np.array([True])),          # text only
    ])
    image_query = fusion.query(image=img[1])[0]
    assert items @ image_query * fusion.query_scale(image_query, items) == pytest.approx([0.6, 1.0, 0.6, 0.0])
    both = fusion.query(image=img[0], text=txt[0])[0]
    assert items @ both * fusion.query_scale(both, items) == pytest.approx([1.0, 0.25 * 0.6 + 0.75, 0.25, 0.75])
    assert fusion.query_scale(both, items[:2]).tolist() == [1.0, 1.0]  # complete items: the inner product


def test_search_orders_items_with_other_modalities_by_their_cosine(tmp_path: Path) -> None:
    from conftest import write_image

    red = write_image(tmp_path / "red.png", (220, 20, 30))
    records = [{"id": "complete", "title": "Red apple", "image": red},
               {"id": "image-only", "image": write_image(tmp_path / "pink.png", (220, 120, 130))},
               {"id": "text-only", "title": "Red apple"}]
    engine = Engine.build(Catalog.from_records(records, base_dir=tmp_path), fake_config(), show_progress=False)
    hits = engine.search(image=tmp_path / "red.png", k=3)
    # The index put image-only first (inner products: complete 0.5 = sqrt(w_img), image-only its cosine 0.57).
    assert [m.item_id for m in hits][:2] == ["complete", "image-only"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5) and hits[-1].score == pytest.approx(0.0, abs=1e-5)


# ----- recommendations ------------------------------------------------------------------------
def test_share_below_counts_ties_half_and_keeps_order() -> None:
    assert share_below(np.array([0.5, 3.0, -1.0]), np.array([0.0, 0.5, 1.0, 2.0])).tolist() == [0.375, 1.0, 0.0]
    raw = np.random.default_rng(0).normal(size=50)
    mapped = share_below(np.sort(raw), raw[:20])
    assert np.all(np.diff(mapped) >= 0) and mapped.min() >= 0 and mapped.max() <= 1


@pytest.mark.parametrize("model", ["itemknn", "neumf"])
def test_model_scores_are_the_share_of_reference_items_scored_below(engine: Engine, model: str, tmp_path: Path) -> None:
    engine.fit(toy_log(), model=model, show_progress=False, **TINY[model])
    trained = engine.trained
    assert trained is not None and len(trained.reference_rows) == min(REFERENCE_ITEMS, len(trained.item_ids))
    for user in ("u1", "u35"):
        matches = engine.recommend(user, k=4)
        raw = trained.model.score([trained.user_row(user)])[0]
        rows = [trained.item_row(m.item_id) for m in matches]
        assert all(m.source == model for m in matches)
        assert raw[rows].tolist() == sorted(raw[rows].tolist(), reverse=True)  # the raw score decides the order
        expected = share_below(raw[rows], raw[trained.reference_rows])
        assert [m.score for m in matches] == pytest.approx(expected.tolist(), abs=1e-6)
    engine.save(tmp_path / "model")
    loaded = Engine.load(tmp_path / "model")
    assert loaded.trained is not None
    assert loaded.trained.reference_rows.tolist() == trained.reference_rows.tolist()
    assert loaded.recommend("u1", k=4) == engine.recommend("u1", k=4)


def test_reference_sample_is_fixed_and_capped(engine: Engine) -> None:
    engine.fit(toy_log(), model="itemknn", show_progress=False)
    trained = engine.trained
    assert trained is not None
    items = [f"i{j}" for j in range(3000)]
    history = pd.DataFrame({"user_id": ["u"], "item_id": ["i0"], "timestamp": [0]})
    big = [TrainedModel(trained.model, ["u"], items, history).reference_rows for _ in range(2)]
    assert len(big[0]) == REFERENCE_ITEMS and big[0].tolist() == big[1].tolist() and len(set(big[0])) == REFERENCE_ITEMS


def test_popularity_and_content_scores(engine: Engine) -> None:
    engine.fit(toy_log(), model="itemknn", show_progress=False)
    cold = engine.recommend("nobody", k=10)
    assert all(m.source == "popularity" and 0 < m.score <= 1 for m in cold) and cold[0].score == 1.0
    content = engine.recommend(history=["tool-0"], k=3, filter=None)
    assert all(m.source == "content" for m in content)
    vectors = engine.index.vectors(["tool-0"] + [m.item_id for m in content])
    # The one history item is the newest: recency weight 1, so the score is the cosine.
    assert [m.score for m in content] == pytest.approx((vectors[1:] @ vectors[0]).tolist(), abs=1e-5)


def test_items_added_after_the_fit_are_marked_content(engine: Engine, toy_catalog_file: Path) -> None:
    engine.fit(toy_log(), model="itemknn", show_progress=False)
    engine.add([{"id": "fruit-new", "title": "Red apple new", "description": "fresh red fruit", "category": "food",
                 "image": str(toy_catalog_file.parent / "f1.png")}])
    matches = engine.recommend("u1", k=10)
    new = [m for m in matches if m.item_id == "fruit-new"]
    assert new and new[0].source == "content"
    assert all(m.source == "itemknn" for m in matches[: matches.index(new[0])])


# ----- user ids --------------------------------------------------------------------------------
def integer_user_log() -> pd.DataFrame:
    frame = toy_log().frame[["user_id", "item_id", "timestamp"]].copy()
    frame["user_id"] = frame["user_id"].str[1:].astype(int)  # u42 -> 42
    return frame


def test_integer_user_ids_find_the_model_from_a_dataframe_and_a_csv(engine: Engine, tmp_path: Path) -> None:
    engine.fit(Interactions(integer_user_log()), model="itemknn", show_progress=False)
    served = engine.recommend(42, k=3)
    assert [m.source for m in served] == ["itemknn"] * 3
    assert engine.recommend("42", k=3) == served == engine.recommend(" 42 ", k=3) == engine.recommend(np.int64(42), k=3)
    path = tmp_path / "log.csv"
    integer_user_log().to_csv(path, index=False)
    engine.fit(Interactions.from_file(path), model="itemknn", show_progress=False)
    assert [m.source for m in engine.recommend(42, k=3)] == ["itemknn"] * 3
    with pytest.raises(UnknownUserError, match="user '4242' is not in the training log"):
        engine.recommend(4242, strict=True)
    with pytest.raises(InvalidArgumentError, match="user id must be a string or an integer .* got float 4.2"):
        engine.recommend(4.2)


def test_integer_history_ids_are_catalog_ids(tmp_path: Path) -> None:
    records = [{"id": n, "title": f"{'red apple' if n < 5 else 'blue hammer'} {n}"} for n in range(10)]
    engine = Engine.build(Catalog.from_records(records), fake_config(), show_progress=False)
    assert engine.recommend(history=[7, 8], k=3) == engine.recommend(history=["7", " 8"], k=3)


# ----- recorded events -------------------------------------------------------------------------
def test_recorded_events_serve_a_user_the_model_never_saw(engine: Engine) -> None:
    engine.fit(toy_log(), model="itemknn", show_progress=False)
    p = personaliser(engine, events([("walk-in", "tool-1"), ("walk-in", "tool-2"), (7, "fruit-0")]))
    served = p.recommend("walk-in", k=3, strict=True)
    assert [m.source for m in served] == ["content"] * 3
    assert all(m.item_id.startswith("tool-") and m.item_id not in {"tool-1", "tool-2"} for m in served)
    assert p.recommend(7, k=2)[0].item_id.startswith("fruit-")  # an integer user id in the events
    with pytest.raises(UnknownUserError, match=r"user 'nobody' is not in the training log \(60 users\) "
                                               r"nor in the recorded events \(3 events\)"):
        p.recommend("nobody", strict=True)


def test_recorded_events_join_a_known_users_history(engine: Engine) -> None:
    engine.fit(toy_log(), model="itemknn", show_progress=False)
    assert engine.recommend("u1", k=1)[0].item_id == "fruit-1"  # the one fruit u1 has not seen
    p = personaliser(engine, events([("u1", "fruit-1")]))
    assert "fruit-1" not in [m.item_id for m in p.recommend("u1", k=10)]  # now seen: excluded


def test_session_model_ranks_a_users_recorded_events(engine: Engine) -> None:
    engine.fit(toy_log(), model="sasrec", show_progress=False, **TINY["sasrec"])
    p = personaliser(engine, events([("walk-in", "tool-1"), ("walk-in", "tool-2"), ("walk-in", "tool-3")]))
    served = p.recommend("walk-in", k=2)
    assert served[0].source == "sasrec" and served[0].item_id.startswith("tool-")


def test_without_a_model_a_user_with_events_gets_content(engine: Engine) -> None:
    p = personaliser(engine, events([("walk-in", "fruit-0")]))
    served = p.recommend("walk-in", k=2)
    assert [m.source for m in served] == ["content"] * 2 and served[0].item_id.startswith("fruit-")
    with pytest.raises(NotFittedError, match="no recorded events for user 'nobody'"):
        p.recommend("nobody")


# ----- the fit says which epoch it kept --------------------------------------------------------
def test_fit_reports_the_kept_epoch(engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="recommenders.base"):
        engine.fit(toy_log(), model="neumf", show_progress=False, **TINY["neumf"])
    trained = engine.trained
    assert trained is not None
    log = trained.model.training
    value = log.records[log.best_epoch]["ndcg@10"]
    kept = f"kept epoch {log.best_epoch + 1} of {log.epochs_trained} (validation NDCG@10 {value:.4f})"
    assert trained.fit_report.startswith(f"neumf: {kept}") and trained.fit_report.endswith("60 users x 10 items")
    assert any(kept in r.getMessage() for r in caplog.records)
    engine.save(tmp_path / "model")
    assert Engine.load(tmp_path / "model").trained.fit_report == trained.fit_report  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("log", "summary"),
    [
        (TrainingLog(), "fitted in one step (no epochs)"),
        (TrainingLog(epochs_trained=3, records=[{}, {}, {}], epochs_planned=3),
         "kept the last epoch, 3 of 3 (nothing validated)"),
        (TrainingLog(epochs_trained=4, best_epoch=0, records=[{"rmse": 0.9}, {"rmse": 1.0}, {}, {}], epochs_planned=20),
         "kept epoch 1 of 4 (validation RMSE 0.9000); stopped early, 20 planned"),
    ],
)
def test_training_log_summary(log: TrainingLog, summary: str) -> None:
    assert log.summary() == summary
