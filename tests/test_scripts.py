"""The command-line scripts, run in-process through their `main(argv)`."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import sys
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


@pytest.fixture(scope="module")
def scripts_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A toy catalog, a model indexed from it, an empty file, a plain file and a FIFO."""
    from conftest import make_toy_catalog

    root = tmp_path_factory.mktemp("scripts")
    catalog = make_toy_catalog(root)
    assert load_script("index_catalog").main([str(catalog), "--out", str(root / "model"), *FAKE]) == 0
    (root / "empty.csv").write_bytes(b"")
    (root / "plain.txt").write_text("not a folder")
    os.mkfifo(root / "pipe.png")
    return {"tmp": str(root), "catalog": str(catalog), "model": str(root / "model"), "empty": str(root / "empty.csv"),
            "file": str(root / "plain.txt"), "fifo": str(root / "pipe.png")}


BAD_RUNS = [
    ("index_catalog", ["{tmp}/nope.csv", "--out", "{tmp}/m", *FAKE], r"catalog file '.*nope\.csv' does not exist"),
    ("index_catalog", ["{empty}", "--out", "{tmp}/m", *FAKE], r"empty\.csv' is empty \(0 bytes\)"),
    ("index_catalog", ["{tmp}", "--out", "{tmp}/m", *FAKE], r"has suffix ''; expected one of \.csv"),
    ("index_catalog", ["{catalog}", "--out", "{tmp}/m", "--id-column", "sku", *FAKE], r"has no id column 'sku'"),
    ("index_catalog", ["{catalog}", "--out", "{tmp}/m", "--image-weight", "-1", *FAKE], r"image_weight must be a finite number >= 0"),
    ("index_catalog", ["{catalog}", "--out", "{tmp}/m", "--index", "bogus", *FAKE], r"index kind 'bogus' is unknown"),
    ("index_catalog", ["{catalog}", "--out", "{file}/m", *FAKE], r"plain\.txt"),
    ("query", ["{tmp}/no-model", "--similar", "fruit-0"], r"no-model"),
    ("query", ["{file}", "--text", "apple"], r"plain\.txt"),
    ("query", ["{model}", "--text", "apple", "-k", "0"], r"k must be a positive integer, got 0"),
    ("query", ["{model}", "--text", "apple", "--category", "shoes"], r"unknown categories \['shoes'\]"),
    ("query", ["{model}", "--image", "{fifo}"], r"pipe\.png' is a FIFO"),
    ("query", ["{model}", "--image", "{catalog}"], r"items\.csv': not an image format PIL reads"),
    ("query", ["{model}", "--history", "fruit-0,nope"], r"history item 'nope' is not in the catalog"),
    ("simulate_interactions", ["{tmp}/nope.csv", "--out", "{tmp}/e.csv"], r"nope\.csv' does not exist"),
    ("demo", ["--catalog", "{tmp}/nope.csv", "--out", "{tmp}/m"], r"nope\.csv' does not exist"),
]


@pytest.mark.parametrize(("script", "argv", "message"), BAD_RUNS, ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(BAD_RUNS)])
def test_scripts_turn_engine_errors_into_exit_code_2(
    scripts_world: dict[str, str], script: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad input: `error: <message>` on stderr, exit code 2, and never a traceback."""
    code = load_script(script).main([a.format(**scripts_world) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert lines and re.search(message, lines[-1]), err


@pytest.mark.parametrize("where", ["repo", "elsewhere"])
def test_demo_ends_with_commands_that_run_as_pasted(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's closing hint: the installed `shopvec`, as typed from the working directory, then the model folder."""
    import service.server
    from cli.main import build_parser, main

    cwd = REPO if where == "repo" else tmp_path
    monkeypatch.chdir(cwd)
    text = load_script("demo").next_steps(REPO / "models" / "sample", "user-0000")
    pasted = [argv for argv in map(shlex.split, text.splitlines()) if argv and argv[0].endswith("shopvec")]
    commands = {argv[1]: argv for argv in pasted}
    assert set(commands) == {"query", "serve"} and "open http://127.0.0.1:8000" in text
    installed = Path(sys.executable).parent / "shopvec"
    for argv in pasted:
        assert Path(argv[0]).exists() and os.path.samefile(argv[0], installed), argv
        assert (cwd / argv[2]).resolve() == REPO / "models" / "sample"
    if where == "repo":  # relative to the repo root, as the README shows
        assert commands["serve"][1:] == ["serve", "models/sample"]
        assert commands["serve"][0] == os.path.relpath(installed, REPO)
    queries = [build_parser().parse_args(argv[1:]) for argv in pasted if argv[1] == "query"]
    assert [(q.user, q.text) for q in queries] == [("user-0000", None), (None, "red shoes")]
    served: list[str] = []
    monkeypatch.setattr(service.server, "serve", lambda folder, host, port, config: served.append(folder))
    assert main(commands["serve"][1:]) == 0 and served == [commands["serve"][2]]
