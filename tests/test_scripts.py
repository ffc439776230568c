"""The command-line scripts, run in-process through their `main(argv)`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


FAKE = ["--image-encoder", "fake-image", "--text-encoder", "fake-text", "--num-workers", "0", "--quiet"]


def test_index_then_query(toy_catalog_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    index_catalog, query = load_script("index_catalog"), load_script("query")
    assert index_catalog.main([str(toy_catalog_file), "--out", str(out), *FAKE]) == 0
    summary = capsys.readouterr().out
    assert "indexed       : 10 (10 encoded, 0 unchanged and reused)" in summary
    assert "skipped       : 0" in summary and "index         : " in summary

    assert query.main([str(out), "--similar", "fruit-0", "-k", "3"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["#", "item_id", "score", "title", "category", "price"]
    assert len(table.splitlines()) == 5 and "fruit-" in table.splitlines()[2]

    assert query.main([str(out), "--text", "blue hammer", "-k", "2", "--category", "tools"]) == 0
    assert "tool-" in capsys.readouterr().out


def test_reindex_encodes_only_changed_items(toy_catalog_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "model"
    index_catalog = load_script("index_catalog")
    index_catalog.main([str(toy_catalog_file), "--out", str(out), *FAKE])
    frame = pd.read_csv(toy_catalog_file)
    frame.loc[2, "description"] = "now with a new description"
    frame.to_csv(toy_catalog_file, index=False)
    capsys.readouterr()
    assert index_catalog.main([str(toy_catalog_file), "--out", str(out), *FAKE]) == 0
    assert "indexed       : 10 (1 encoded, 9 unchanged and reused)" in capsys.readouterr().out


def test_scripts_report_errors_with_exit_code_2(toy_catalog_file: Path, tmp_path: Path, capsys) -> None:
    index_catalog, query = load_script("index_catalog"), load_script("query")
    assert index_catalog.main([str(toy_catalog_file), "--out", str(tmp_path / "m"), "--id-column", "sku", *FAKE]) == 2
    assert "has no id column 'sku'" in capsys.readouterr().err
    index_catalog.main([str(toy_catalog_file), "--out", str(tmp_path / "m"), *FAKE])
    assert query.main([str(tmp_path / "m"), "--similar", "nope"]) == 2
    assert "item 'nope' is not in the catalog" in capsys.readouterr().err


def test_simulated_log_has_users_with_tastes(tmp_path: Path) -> None:
    simulate = load_script("simulate_interactions")
    out = tmp_path / "events.csv"
    assert simulate.main([str(REPO / "sample_catalog" / "items.csv"), "--out", str(out), "--users", "20"]) == 0
    events = pd.read_csv(out)
    tastes = pd.read_csv(tmp_path / "events_tastes.csv")
    assert events.user_id.nunique() == 20 and len(tastes) == 20
    # Each simulated user's events concentrate on the categories they like.
    catalog = pd.read_csv(REPO / "sample_catalog" / "items.csv").set_index("id")
    events["category"] = catalog.loc[events.item_id, "category"].to_numpy()
    top_event_cat = events.groupby("user_id")["category"].agg(lambda c: c.value_counts().index[0])
    top_taste_cat = tastes.set_index("user_id").idxmax(axis=1)
    assert (top_event_cat == top_taste_cat.loc[top_event_cat.index]).mean() >= 0.7
