"""The one-table comparison: every split and protocol per model, the validation winner."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from evaluation.comparison import ComparisonConfig, compare_models
from evaluation.report import format_comparison
from evaluation.statistics import paired_bootstrap
from recommenders.data import InteractionData

QUICK = {"epochs": 2, "show_progress": False}


def planted_log() -> InteractionData:
    """60 users in two taste groups over 40 items, rated 1-5, 12 events each spread over time."""
    rng = np.random.default_rng(0)
    users, items, times, ratings = [], [], [], []
    for u in range(60):
        group = np.arange(20) if u < 30 else np.arange(20, 40)
        for t, i in enumerate(rng.choice(group, size=12, replace=False)):
            users.append(u), items.append(int(i)), times.append(t * 100 + u), ratings.append(float(rng.integers(3, 6)))
    return InteractionData.from_arrays(users, items, times, ratings, n_users=60, n_items=40)


@pytest.fixture(scope="module")
def comparison():  # type: ignore[no-untyped-def]
    return compare_models(planted_log(), ["popularity", "itemknn", "biasedmf"], overrides=QUICK)


def test_every_model_gets_every_split_and_protocol(comparison) -> None:  # type: ignore[no-untyped-def]
    assert list(comparison.models) == ["popularity", "itemknn", "biasedmf"]
    for result in comparison.models.values():
        assert set(result.splits) == {"temporal", "leave-last-out"}
        assert result.splits["temporal"].test is not None and result.cold is not None
        assert result.splits["leave-last-out"].sampled is not None
        assert result.splits["temporal"].sampled is None  # sampled is a leave-last-out protocol
        assert result.config["seed"] == 0 and "show_progress" not in result.config
    # Only the rating model has RMSE; the global mean is its baseline on each split.
    assert comparison.models["biasedmf"].splits["temporal"].rating is not None
    assert comparison.models["itemknn"].splits["temporal"].rating is None
    assert set(comparison.global_mean_rmse) == {"temporal", "leave-last-out"}


def test_the_winner_is_the_best_serving_model_on_validation(comparison) -> None:  # type: ignore[no-untyped-def]
    assert comparison.excluded_from_winner == {"biasedmf"}  # the model classes that are rating_only
    for split in ("temporal", "leave-last-out"):
        val = {n: r.splits[split].validation.ndcg for n, r in comparison.models.items() if n != "biasedmf"}
        assert comparison.winner(split) == max(val, key=val.get)
    # Planted tastes: item-kNN must beat popularity when it picks next items within the user's group.
    assert comparison.winner("leave-last-out") == "itemknn"


def test_table_and_json(comparison) -> None:  # type: ignore[no-untyped-def]
    table = format_comparison(comparison)
    lines = table.splitlines()
    assert lines[0].startswith("| model") and "val NDCG@10 (temporal)" in lines[0]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[2:7]]
    assert [row[0] for row in cells] == ["popularity", "itemknn", "biasedmf", "global mean", "users"]
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    users = dict(zip(header, cells[-1]))
    rating = comparison.models["biasedmf"].splits["temporal"].rating
    assert users["LLO NDCG@10"] == "60" and users["RMSE (temporal)"] == str(rating.n_pairs)
    assert "Validation winner (temporal, excluding biasedmf)" in table
    report = json.loads(json.dumps(comparison.as_dict()))
    assert report["winner"]["leave-last-out"] == "itemknn"
    assert report["users"]["leave-last-out test"] == 60
    assert report["models"]["biasedmf"]["temporal"]["rating"]["rmse"] > 0


def test_versus_popularity_is_a_paired_bootstrap_over_the_same_users(comparison) -> None:  # type: ignore[no-untyped-def]
    versus = comparison.versus("popularity", "leave-last-out")
    assert set(versus) == {"itemknn", "biasedmf"}
    knn = comparison.models["itemknn"].splits["leave-last-out"].test
    pop = comparison.models["popularity"].splits["leave-last-out"].test
    np.testing.assert_array_equal(knn.users, pop.users)
    assert knn.user_ndcg.mean() == pytest.approx(knn.ndcg)
    difference, low, high = versus["itemknn"]
    assert difference == pytest.approx(knn.ndcg - pop.ndcg)
    assert low <= difference <= high
    assert low > 0  # planted tastes: item-kNN beats popularity beyond resampling noise
    table = format_comparison(comparison)
    assert "Test NDCG@10 minus popularity's" in table and "| itemknn |" in table
    report = json.loads(json.dumps(comparison.as_dict()))
    assert report["test_ndcg_vs_popularity"]["leave-last-out"]["itemknn"]["difference"] == pytest.approx(difference)
    assert comparison.versus("no-such-model") == {}


def test_paired_bootstrap_rejects_unpaired_input() -> None:
    with pytest.raises(ValueError, match=r"two equally long, non-empty 1-d arrays, got \(2,\) and \(3,\)"):
        paired_bootstrap(np.ones(2), np.ones(3))


def test_protocols_can_be_left_out() -> None:
    config = ComparisonConfig(splits=("temporal",), protocols=("full",))
    seen: list[list[str]] = []
    c = compare_models(planted_log(), ["popularity", "itemknn"], config, on_model=lambda p: seen.append(list(p.models)))
    assert seen == [["popularity"], ["popularity", "itemknn"]]  # partial results after each model
    result = c.models["popularity"]
    assert set(result.splits) == {"temporal"} and result.cold is None and not c.global_mean_rmse
    assert "sampled" not in format_comparison(c) and "cold" not in format_comparison(c)


def test_bad_configs_name_the_valid_values() -> None:
    with pytest.raises(InvalidArgumentError, match=r"unknown or no split\(s\) \['random'\]; valid: temporal"):
        ComparisonConfig(splits=("random",))
    with pytest.raises(InvalidArgumentError, match=r"unknown or no protocol\(s\) \['fast'\]"):
        ComparisonConfig(protocols=("fast",))
    with pytest.raises(InvalidArgumentError, match="unknown cold_split 'x'"):
        ComparisonConfig(cold_split="x")


def test_worker_processes_give_the_same_results() -> None:
    config = ComparisonConfig(splits=("temporal", "leave-last-out"), protocols=("full", "cold"))
    one = compare_models(planted_log(), ["popularity", "itemknn"], config)
    two = compare_models(planted_log(), ["popularity", "itemknn"], dataclasses.replace(config, jobs=2))
    assert list(two.models) == ["popularity", "itemknn"]
    for name in one.models:
        for split in ("temporal", "leave-last-out"):
            assert two.models[name].splits[split].test == one.models[name].splits[split].test
        assert two.models[name].cold.metrics == one.models[name].cold.metrics  # type: ignore[union-attr]
    with pytest.raises(InvalidArgumentError, match="jobs must be a positive integer, got 0"):
        ComparisonConfig(jobs=0)


def test_auto_selects_on_the_validation_and_never_sees_the_test(monkeypatch) -> None:
    import evaluation.auto

    seen = []
    real = evaluation.auto.select_model

    def spy(data, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((data, kwargs["split"]))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(evaluation.auto, "select_model", spy)
    log = planted_log()
    config = ComparisonConfig(splits=("temporal",), protocols=("full",), auto_budget_s=0.0)
    c = compare_models(log, ["popularity", "ease", "auto"], config, overrides=QUICK)
    from recommenders.splits import temporal_split

    split = temporal_split(log)
    assert len(seen) == 1
    data, selection = seen[0]
    assert len(data) == len(split.train) and len(selection.train) == len(split.train)  # trains on the training part
    assert len(selection.test) == len(split.validation)  # selects on the validation events
    assert max(data.timestamps.max(), selection.test.timestamps.max()) < split.test.timestamps.min()  # no test
    auto = c.models["auto"]
    # Budget 0: only the first candidate (EASE, defaults) trains, so auto is the EASE row, fitted the same way.
    assert auto.config["picked"] == "ease" and auto.selection["temporal"]["winner"] == "ease"
    assert auto.cold is None and c.winner() != "auto"
    assert auto.splits["temporal"].test.ndcg == c.models["ease"].splits["temporal"].test.ndcg
    np.testing.assert_array_equal(auto.splits["temporal"].test.user_ndcg,
                                  c.models["ease"].splits["temporal"].test.user_ndcg)
    assert "| auto " in format_comparison(c)
    assert json.loads(json.dumps(c.as_dict()))["models"]["auto"]["selection"]["temporal"]["winner"] == "ease"


def test_auto_against_the_oracle_uses_the_paired_bootstrap() -> None:
    from evaluation.oracle import auto_vs_oracle, format_auto_vs_oracle, oracle

    config = ComparisonConfig(splits=("temporal",), protocols=("full",), auto_budget_s=0.0)
    c = compare_models(planted_log(), ["popularity", "itemknn", "auto"], config, overrides=QUICK)
    tests = {n: c.models[n].splits["temporal"].test for n in ("popularity", "itemknn")}
    best = max(tests, key=lambda n: tests[n].ndcg)
    assert oracle(c) == best
    r = auto_vs_oracle(c)
    auto_test = c.models["auto"].splits["temporal"].test
    expected = paired_bootstrap(auto_test.user_ndcg, tests[best].user_ndcg, seed=0)
    assert (r["difference"], r["low"], r["high"]) == expected
    assert r["difference"] == pytest.approx(auto_test.ndcg - tests[best].ndcg)
    assert r["picked"] == "ease" and r["oracle"] == best
    assert r["validation_margin"] == pytest.approx(r["validation_ndcg"] - c.models[c.winner()].splits["temporal"]
                                                   .validation.ndcg)
    line = format_auto_vs_oracle(c)
    assert line.startswith("temporal: auto picked ease") and f"the oracle {best} (best single default model" in line
    assert auto_vs_oracle(compare_models(planted_log(), ["popularity"], config, overrides=QUICK)) is None


def test_auto_wins_or_ties_every_single_model_on_validation() -> None:
    names = ["popularity", "itemknn", "ease", "als"]
    config = ComparisonConfig(splits=("temporal",), protocols=("full",), auto_budget_s=600.0)
    c = compare_models(planted_log(), [*names, "auto"], config, overrides=QUICK)
    auto = c.models["auto"].splits["temporal"].validation.ndcg
    singles = {n: c.models[n].splits["temporal"].validation.ndcg for n in names}
    # Every single model above is a candidate with its defaults, scored on the same validation events.
    assert auto >= max(singles.values()) - 1e-9, (auto, singles)
    picked = c.models["auto"].selection["temporal"]
    chosen = max(r["ndcg"] for r in picked["rows"] if r["ndcg"] is not None)
    assert chosen == pytest.approx(auto)  # the selection's score is the row's validation NDCG
