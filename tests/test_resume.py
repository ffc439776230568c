"""Resuming an interrupted `shopvec evaluate models`: finished models are read back, not refitted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from evaluation.comparison import Comparison, ComparisonConfig, compare_models
from evaluation.resume import ResumeMismatchError, decode_result, encode_result, load_done, resume_block
from recommenders.data import InteractionData
from recommenders.registry import model_class

QUICK = ["evaluate", "models", "--quick", "--protocol", "full", "--split", "temporal", "--no-plots"]


def small_log() -> InteractionData:
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(40), 10)
    items = np.where(users < 20, rng.integers(0, 15, len(users)), rng.integers(15, 30, len(users)))
    times = np.tile(np.arange(10), 40) * 50 + users
    return InteractionData.from_arrays(users, items, times, rng.integers(1, 6, len(users)).astype(float),
                                       n_users=40, n_items=30)


def test_a_model_result_survives_the_json_round_trip_exactly() -> None:
    config = ComparisonConfig(protocols=("full", "sampled", "cold", "rmse"))
    comparison = compare_models(small_log(), ["popularity", "biasedmf"], config,
                                overrides={"epochs": 2, "show_progress": False})
    for name, result in comparison.models.items():
        back = decode_result(json.loads(json.dumps(encode_result(result))))
        assert (back.name, back.config, back.splits, back.tuning) == (result.name, result.config, result.splits,
                                                                      result.tuning)  # arrays compared below
        assert back.cold.metrics == result.cold.metrics and back.cold.train_seconds == result.cold.train_seconds
        for split, part in result.splits.items():
            for attr in ("validation", "test", "sampled"):
                a, b = getattr(part, attr), getattr(back.splits[split], attr)
                if a is None:
                    assert b is None
                    continue
                np.testing.assert_array_equal(a.users, b.users)
                np.testing.assert_array_equal(a.user_ndcg, b.user_ndcg)
                assert a.user_ndcg is None or a.user_ndcg.dtype == b.user_ndcg.dtype
                assert sorted(a.user_ndcg_at or {}) == sorted(b.user_ndcg_at or {})
        np.testing.assert_array_equal(result.cold.cold_items, back.cold.cold_items)
    rebuilt = Comparison(config, {n: decode_result(json.loads(json.dumps(encode_result(r))))
                                  for n, r in comparison.models.items()}, comparison.global_mean_rmse)
    assert rebuilt.as_dict() == comparison.as_dict()  # bootstrap intervals included


def test_other_arguments_are_refused(tmp_path: Path) -> None:
    partial = tmp_path / "x.partial.json"
    partial.write_text(json.dumps({"resume": resume_block({"k": 10, "models": ["a"]}, {})}))
    assert load_done(partial, {"k": 10, "models": ("a",)}) == {}
    with pytest.raises(ResumeMismatchError, match=r"k: 10 there, 5 now.*--fresh"):
        load_done(partial, {"k": 5, "models": ["a"]})
    partial.write_text("{not json")
    with pytest.raises(ResumeMismatchError, match="not a readable partial file"):
        load_done(partial, {"k": 10})
    assert load_done(tmp_path / "absent.json", {"k": 10}) == {}


def rows(report: dict) -> dict:
    """The models' numbers, without the seconds (timing differs from run to run)."""
    out = {}
    for name, model in report["models"].items():
        out[name] = {k: ({kk: vv for kk, vv in v.items() if kk != "train_seconds"} if isinstance(v, dict) else v)
                     for k, v in model.items()}
    return out


def test_an_interrupted_run_resumes_without_refitting_and_equals_a_clean_run(tmp_path: Path, monkeypatch,
                                                                                capsys) -> None:
    popularity, itemknn = model_class("popularity"), model_class("itemknn")
    fits = {"popularity": 0}
    real_fit, real_knn_fit = popularity.fit, itemknn.fit

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        fits["popularity"] += 1
        return real_fit(self, *args, **kwargs)

    def interrupted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(popularity, "fit", counted)
    monkeypatch.setattr(itemknn, "fit", interrupted)
    out = tmp_path / "ml.json"
    argv = [*QUICK, "--models", "popularity,itemknn", "--out", str(out)]
    assert main(argv) == 130
    assert not out.exists() and fits["popularity"] == 1
    partial = json.loads((tmp_path / "ml.partial.json").read_text())
    assert list(partial["models"]) == ["popularity"] and list(partial["resume"]["models"]) == ["popularity"]
    capsys.readouterr()

    monkeypatch.setattr(itemknn, "fit", real_knn_fit)
    assert main([*argv, "--jobs", "1"]) == 0  # --jobs does not change the numbers: still resumes
    assert fits["popularity"] == 1  # read back, not refitted
    assert "reusing popularity (not refitted); fitting itemknn" in capsys.readouterr().err
    resumed = json.loads(out.read_text())
    assert resumed["complete"] and "resume" not in resumed and not (tmp_path / "ml.partial.json").exists()
    assert resumed["models"]["popularity"] == partial["models"]["popularity"]  # seconds included: the same row

    clean = tmp_path / "clean.json"
    assert main([*QUICK, "--models", "popularity,itemknn", "--out", str(clean)]) == 0
    fresh = json.loads(clean.read_text())
    assert rows(resumed) == rows(fresh)
    assert resumed["test_ndcg_vs_popularity"] == fresh["test_ndcg_vs_popularity"]


def test_a_partial_file_of_other_arguments_is_refused_unless_fresh(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(model_class("itemknn"), "fit", lambda self, *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    out = tmp_path / "ml.json"
    assert main([*QUICK, "--models", "popularity,itemknn", "--out", str(out)]) == 130
    capsys.readouterr()
    monkeypatch.undo()
    assert main([*QUICK, "--models", "popularity,itemknn", "--k", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds an interrupted run with other arguments (k: 10 there, 5 now)" in err and "--fresh" in err
    assert (tmp_path / "ml.partial.json").exists() and not out.exists()
    assert main([*QUICK, "--models", "popularity,itemknn", "--k", "5", "--fresh", "--out", str(out)]) == 0
    assert "--fresh: discarding" in capsys.readouterr().err
    assert json.loads(out.read_text())["k"] == 5
