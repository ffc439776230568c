"""Evaluation protocols on hand-computed examples, cold start, tuning on validation, the script."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from evaluation.features import text_features
from evaluation.protocols import (
    default_grid,
    evaluate_cold_items,
    evaluate_full,
    evaluate_sampled,
    tune,
)
from recommenders.base import ModelConfig, Recommender
from recommenders.baselines import Content, ItemKNN, Popularity
from recommenders.data import InteractionData
from recommenders.registry import MODELS
from recommenders.splits import Split

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"


class Fixed(Recommender):
    """Returns a given score matrix; records what it was trained on."""

    name = "fixed"

    def __init__(self, scores: np.ndarray) -> None:
        super().__init__()
        self.table = np.asarray(scores, dtype=np.float32)

    def fit(self, train, validation=None, item_features=None):  # type: ignore[no-untyped-def]
        self._remember(train)
        self.seen_items = np.union1d(train.items, validation.items if validation is not None else [])
        return self

    def _score_users(self, users, items):  # type: ignore[no-untyped-def]
        s = self.table[users]
        return s if items is None else s[:, items]

    def _state(self):  # type: ignore[no-untyped-def]
        return {}

    def _load_state(self, arrays):  # type: ignore[no-untyped-def]
        pass


def _data(users: list[int], items: list[int], n_users: int = 3, n_items: int = 5) -> InteractionData:
    return InteractionData.from_arrays(users, items, n_users=n_users, n_items=n_items)


def _hand_split() -> Split:
    # user 0: train {0}, validation {4}, test {2}; user 1: train {1}, test {3, 2};
    # user 2: test only (no history: skipped).
    return Split(_data([0, 1], [0, 1]), _data([0], [4]), _data([0, 1, 1, 2], [2, 3, 2, 0]))


def test_full_protocol_on_a_hand_computed_example() -> None:
    split = _hand_split()
    scores = np.array([[5, 4, 3, 2, 1], [1, 2, 3, 4, 5], [9, 9, 9, 9, 9]], dtype=np.float32)
    model = Fixed(scores).fit(split.train)
    m = evaluate_full(model, split, k=2)
    # user 0: items 0 and 4 masked -> ranking 1, 2, 3; relevant 2 at rank 2.
    # user 1: item 1 masked -> ranking 4, 3, 2, 0; relevant {3, 2} at ranks 2 and 3.
    d1 = 1 / np.log2(3)
    assert m.n_users == 2
    assert m.hr == pytest.approx(1.0)
    assert m.ndcg == pytest.approx((d1 + d1 / (1 + d1)) / 2)
    assert m.recall == pytest.approx((1 + 0.5) / 2)
    assert m.mrr == pytest.approx(0.5)
    assert m.coverage == pytest.approx(4 / 5)  # top-2 lists {1, 2} and {4, 3}
    assert evaluate_full(model, split, k=1).hr == pytest.approx(0.0)
    assert m.as_dict()["ndcg@2"] == m.ndcg


def test_full_protocol_skips_test_items_already_seen() -> None:
    # user 0 re-consumes item 0 in test: masked, so nothing is left to hit and the user is skipped.
    split = Split(_data([0, 1], [0, 1]), _data([], []), _data([0, 1], [0, 2]))
    m = evaluate_full(Fixed(np.ones((3, 5))).fit(split.train), split, k=2)
    assert m.n_users == 1


class NextOfLast(Fixed):
    """A session model: scores item (last + 1) % n highest, then the items after it in turn."""

    name = "next-of-last"
    scores_sessions = True

    def fit(self, train, validation=None, item_features=None):  # type: ignore[no-untyped-def]
        self.sequences = train.sequences()
        return super().fit(train, validation, item_features)

    def _score_users(self, users, items):  # type: ignore[no-untyped-def]
        return self._score_histories([self.sequences[u] for u in users], items)

    def _score_histories(self, histories, items):  # type: ignore[no-untyped-def]
        n = self.n_items
        scores = np.array([[-((j - h[-1] - 1) % n) for j in range(n)] for h in histories], dtype=np.float32)
        return scores if items is None else scores[:, items]


@pytest.mark.parametrize("served", [True, False])
def test_served_history_gives_session_models_the_validation_events(served: bool) -> None:
    # user 0 watched 0 (train), then 2 (validation), then 3 (test).
    split = Split(*(InteractionData.from_arrays([0], [i], [t], n_users=1, n_items=5) for t, i in enumerate([0, 2, 3])))
    model = NextOfLast(np.zeros((1, 5))).fit(split.train, split.validation)
    # Served, the model reads [0, 2] and predicts 3; from training alone it reads [0] and predicts 1.
    assert evaluate_full(model, split, k=1, served=served).hr == (1.0 if served else 0.0)
    assert evaluate_sampled(model, split, k=1, n_negatives=3, served=served).hr == (1.0 if served else 0.0)
    # Validation is scored from training alone either way: the split has no events between.
    empty = split.train.subset(np.zeros(1, dtype=bool))
    assert evaluate_full(model, Split(split.train, empty, split.validation), k=1, served=served).hr == 0.0


def test_bad_k_is_rejected() -> None:
    split = _hand_split()
    model = Fixed(np.ones((3, 5))).fit(split.train)
    with pytest.raises(InvalidArgumentError, match="k must be a positive integer, got 0"):
        evaluate_full(model, split, k=0)
    with pytest.raises(InvalidArgumentError, match="n_negatives must be a positive integer, got 0"):
        evaluate_sampled(model, split, n_negatives=0)


def test_sampled_negatives_exclude_every_item_the_user_touched() -> None:
    n_items = 60
    train_items = np.arange(1, 31)
    split = Split(_data([0] * 30, train_items.tolist(), 1, n_items), _data([0], [31], 1, n_items),
                  _data([0], [0], 1, n_items))
    # Train items score highest, the test item next: it is first among the candidates only if no
    # train (or validation) item was drawn as a negative.
    scores = np.zeros((1, n_items), dtype=np.float32)
    scores[0, train_items] = 10.0
    scores[0, 31] = 10.0
    scores[0, 0] = 5.0
    model = Fixed(scores).fit(split.train)
    for seed in range(3):
        m = evaluate_sampled(model, split, k=1, n_negatives=100, seed=seed)  # more than the 28 free items
        assert (m.hr, m.ndcg, m.mrr, m.n_users) == (1.0, 1.0, 1.0, 1)


def test_sampled_ranks_the_latest_test_item_among_negatives() -> None:
    split = Split(_data([0, 0], [1, 2], 1, 200), _data([], [], 1, 200),
                  InteractionData.from_arrays([0, 0], [3, 4], [1, 2], n_users=1, n_items=200))
    scores = -np.arange(200, dtype=np.float32)[None, :]  # item 4 beats every item > 4 ...
    scores[0, :3] = -1000.0  # ... and items 0-2
    m = evaluate_sampled(Fixed(scores).fit(split.train), split, k=10, n_negatives=100, seed=0)
    # item 3 (the only other better item) is excluded from negatives, so item 4 ranks first.
    assert m.hr == 1.0 and m.mrr == 1.0


def _planted_split() -> tuple[Split, np.ndarray]:
    """Two groups with disjoint tastes, items 0-19 vs 20-39; features say the group."""
    rng = np.random.default_rng(0)
    train_u, train_i, test_u, test_i = [], [], [], []
    for u in range(40):
        group = np.arange(20) if u < 20 else np.arange(20, 40)
        chosen = rng.choice(group, size=10, replace=False)
        train_u += [u] * 8
        train_i += chosen[:8].tolist()
        test_u += [u] * 2
        test_i += chosen[8:].tolist()
    feats = rng.normal(scale=0.1, size=(40, 3)).astype(np.float32)
    feats[:20, 0] += 1.0
    feats[20:, 1] += 1.0
    tr, te = _data(train_u, train_i, 40, 40), _data(test_u, test_i, 40, 40)
    return Split(tr, _data([], [], 40, 40), te), feats


def test_cold_items_never_reach_training() -> None:
    split, feats = _planted_split()
    model = Fixed(np.zeros((40, 40)))
    result = evaluate_cold_items(model, split, k=10, cold_fraction=0.2, seed=1)
    assert len(result.cold_items) == 8
    assert not set(result.cold_items.tolist()) & set(model.seen_items.tolist())
    assert result.n_test_interactions == int(np.isin(split.test.items, result.cold_items).sum())
    again = evaluate_cold_items(Fixed(np.zeros((40, 40))), split, cold_fraction=0.2, seed=1)
    np.testing.assert_array_equal(result.cold_items, again.cold_items)  # seeded


def test_content_handles_cold_items_and_popularity_cannot() -> None:
    split, feats = _planted_split()
    content = evaluate_cold_items(Content(), split, feats, k=10, seed=0).metrics
    popular = evaluate_cold_items(Popularity(), split, feats, k=10, seed=0).metrics
    assert content.protocol == "cold" and content.n_users > 0
    # Cold items compete with the user's unseen warm items of the same group, hence not 1.
    assert content.hr > 0.5
    assert popular.hr == 0.0  # a cold item has no count


@dataclasses.dataclass(frozen=True)
class ProbeConfig(ModelConfig):
    favourite: int = 0
    strength: float = 1.0


class Probe(Recommender):
    """Scores its favourite item highest: the config tune has to pick."""

    name = "_probe"
    config_class = ProbeConfig

    def fit(self, train, validation=None, item_features=None):  # type: ignore[no-untyped-def]
        self._remember(train)
        return self

    def _score_users(self, users, items):  # type: ignore[no-untyped-def]
        s = np.zeros((len(users), self.n_items), dtype=np.float32)
        s[:, self.config.favourite] = self.config.strength  # type: ignore[attr-defined]
        return s if items is None else s[:, items]

    def _state(self):  # type: ignore[no-untyped-def]
        return {}

    def _load_state(self, arrays):  # type: ignore[no-untyped-def]
        pass


@dataclasses.dataclass(frozen=True)
class NetConfig(ModelConfig):
    lr: float = 0.003
    dim: int = 64
    dropout: float = 0.1
    weight_decay: float = 0.0


class Net(Probe):
    """A probe whose config has the fields the generic tuning grid varies."""

    name = "_net"
    config_class = NetConfig  # type: ignore[assignment]


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> str:
    # The registry maps names to "module:Class"; the test classes are registered by their import path.
    for cls in (Probe, Net):
        monkeypatch.setitem(MODELS, cls.name, f"{cls.__module__}:{cls.__qualname__}")
    return Probe.name


def test_tune_selects_on_validation_never_test(probe: str) -> None:
    # Validation wants item 3, test wants item 4: tuning must pick 3.
    split = Split(_data([0, 1], [0, 1], 2, 6), _data([0, 1], [3, 3], 2, 6), _data([0, 1], [4, 4], 2, 6))
    result = tune(probe, {"favourite": [4, 3, 2]}, split, budget=10, overrides={"show_progress": False})
    assert result.best_config == {"favourite": 3}
    assert result.best_score == pytest.approx(1.0)
    assert [row["favourite"] for row in result.table] == [4, 3, 2]
    assert set(result.table[0]) == {"favourite", "val_ndcg@10", "seconds"}


def test_tune_respects_the_budget_with_a_seeded_sample(probe: str) -> None:
    split = Split(_data([0], [0], 1, 6), _data([0], [3], 1, 6), _data([0], [4], 1, 6))
    grid = {"favourite": [1, 2, 3, 4, 5], "strength": [1.0, 2.0]}
    first = tune(probe, grid, split, budget=3, seed=7)
    assert len(first.table) == 3
    assert [(r["favourite"], r["strength"]) for r in tune(probe, grid, split, budget=3, seed=7).table] == [
        (r["favourite"], r["strength"]) for r in first.table
    ]


def test_tune_names_bad_grids(probe: str) -> None:
    split = Split(_data([0], [0], 1, 6), _data([0], [3], 1, 6), _data([0], [4], 1, 6))
    with pytest.raises(InvalidArgumentError, match=r"_probe has no hyperparameters \['lr'\]; its config fields are"):
        tune(probe, {"lr": [0.1]}, split)
    with pytest.raises(InvalidArgumentError, match="budget must be a positive integer, got 0"):
        tune(probe, {"favourite": [1]}, split, budget=0)
    with pytest.raises(InvalidArgumentError, match="non-empty validation"):
        tune(probe, {}, Split(split.train, _data([], [], 1, 6), split.test))


def test_text_features_are_cached_by_content(tmp_path: Path) -> None:
    calls: list[int] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.random.default_rng(len(texts)).normal(size=(len(texts), 4)).astype(np.float32)

    a = text_features(["x", "y"], encoder="fake", cache=tmp_path, encode=encode)
    b = text_features(["x", "y"], encoder="fake", cache=tmp_path, encode=encode)
    np.testing.assert_array_equal(a, b)
    assert calls == [2]
    text_features(["x", "z"], encoder="fake", cache=tmp_path, encode=encode)
    assert calls == [2, 2] and len(list(tmp_path.glob("fake-*.npy"))) == 2


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_script_runs_on_movielens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    rc = _script().main(["--quick", "--models", "popularity,itemknn", "--protocol", "full,sampled",
                         "--split", "temporal", "--out", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "temporal NDCG@10" in table and "itemknn" in table and "train s" in table
    report = json.loads(out.read_text())
    full = report["models"]["itemknn"]["temporal"]["test"]
    assert 0.0 < full["ndcg@10"] <= 1.0 and full["users"] > 0
    # Item-kNN beats popularity on the full ranking of ML-100K.
    assert full["ndcg@10"] > report["models"]["popularity"]["temporal"]["test"]["ndcg@10"]
    # The sampled protocol needs leave-last-out, which is fitted for it.
    assert report["models"]["itemknn"]["leave-last-out"]["sampled"]["users"] == 943


def test_evaluate_script_prints_one_table_of_every_protocol(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "all.json"
    assert _script().main(["--quick", "--models", "popularity,itemknn,als", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    header = table.splitlines()[0]
    for column in ("val NDCG@10 (temporal)", "temporal NDCG@10", "temporal HR@10", "temporal Recall@10",
                   "LLO NDCG@10", "LLO HR@10", "sampled HR@10", "sampled NDCG@10", "cold HR@10",
                   "cold NDCG@10", "RMSE (temporal)", "coverage@10", "train s"):
        assert column in header
    assert "| global mean" in table and "Validation winner (temporal" in table
    report = json.loads(out.read_text())
    assert report["complete"] and report["command"].startswith("scripts/evaluate.py --quick")
    assert report["primary_split"] == "temporal"
    assert set(report["winner"]) == {"temporal", "leave-last-out"}
    assert report["winner"]["temporal"] in {"popularity", "itemknn", "als"}
    users = report["users"]
    assert users["leave-last-out test"] == users["sampled"] == 943
    assert 0 < users["temporal test"] < 943 and users["cold"] > 0
    assert report["global_mean_rmse"]["temporal"] > 0.5
    itemknn = report["models"]["itemknn"]
    assert set(itemknn) >= {"temporal", "leave-last-out", "cold", "config"}
    assert itemknn["cold"]["cold_items"] == round(0.2 * 1682)
    assert "rating" not in itemknn["temporal"]  # no predict_ratings, no RMSE


def test_evaluate_script_rejects_unknown_names() -> None:
    with pytest.raises(SystemExit):
        _script().main(["--models", "nope"])
    with pytest.raises(SystemExit):
        _script().main(["--protocol", "fast"])
    with pytest.raises(SystemExit):
        _script().main(["--splits", "random"])


def test_default_grid_centres_on_the_models_defaults(probe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_grid("itemknn") == ItemKNN.tuning_grid
    assert default_grid(probe) == {}  # no field it knows how to vary
    assert default_grid("_net") == {
        "lr": [0.001, 0.003, 0.009], "dim": [32, 64, 128], "dropout": [0.0, 0.1, 0.3],
        "weight_decay": [0.0, 1e-5, 1e-4],
    }
    monkeypatch.setattr(Net, "tuning_grid", {"dim": [8]})
    assert default_grid("_net") == {"dim": [8]}


def test_evaluate_script_tunes_on_validation_with_the_budget(tmp_path: Path) -> None:
    out = tmp_path / "tuned.json"
    assert _script().main(["--quick", "--tune", "--models", "itemknn", "--protocol", "full", "--split", "temporal",
                           "--out", str(out)]) == 0
    itemknn = json.loads(out.read_text())["models"]["itemknn"]
    tuning = itemknn["tuning"]
    assert len(tuning["table"]) == 2  # --quick caps the budget at 2
    assert set(tuning["best"]) == {"neighbours", "shrinkage"}
    assert itemknn["config"].items() >= tuning["best"].items()  # the tuned values are the ones evaluated
    assert itemknn["temporal"]["validation"]["ndcg@10"] == pytest.approx(tuning["val_ndcg"])
