"""`shopvec evaluate` and `shopvec plot-embeddings`: JSON and PNGs beside it, never a partial file in place of a whole one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import fake_config
from PIL import Image

import cli.evaluate
from cli.main import main
from cli.plot import item_vectors
from engine import Catalog, Engine
from evaluation.protocols import CUTOFFS

QUICK = ["evaluate", "models", "--quick", "--protocol", "full", "--split", "temporal"]
FAKE = ["--image-encoder", "fake-image", "--text-encoder", "fake-text", "--device", "cpu", "--batch-size", "4",
        "--quiet"]


def check_png(path: Path, min_size: tuple[int, int]) -> None:
    """A whole PNG image of at least `min_size` pixels."""
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= min_size[0] and image.height >= min_size[1]


def fake_text_features(texts: list[str], encoder: str) -> np.ndarray:
    """Clustered unit vectors, one per film, instead of the real text encoder."""
    rng = np.random.default_rng(len(texts))
    x = rng.standard_normal((12, 16))[rng.integers(0, 12, len(texts))] + 0.3 * rng.standard_normal((len(texts), 16))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_models_writes_json_and_ndcg_plot_with_the_same_numbers(tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs" / "ml.json"
    assert main([*QUICK, "--models", "popularity,itemknn", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Test NDCG@K on temporal" in printed and f"Wrote {out}" in printed
    report = json.loads(out.read_text())
    assert report["complete"] and report["command"].startswith("shopvec ")
    assert not (tmp_path / "runs" / "ml.partial.json").exists()
    curves = {c["model"]: c for c in report["ndcg_curves"]}
    assert set(curves) == {"popularity", "itemknn"}
    for name, curve in curves.items():
        test = report["models"][name]["temporal"]["test"]
        assert curve["cutoffs"] == list(CUTOFFS)
        assert curve["ndcg"] == pytest.approx([test[f"ndcg@{c}"] for c in CUTOFFS])
        assert all(lo <= m <= hi for lo, m, hi in zip(curve["low"], curve["ndcg"], curve["high"]))
    diff = report["test_ndcg_vs_popularity"]["temporal"]["itemknn"]
    assert curves["itemknn"]["diff"][CUTOFFS.index(10)] == pytest.approx(diff["difference"])
    assert report["plots"] == [str(tmp_path / "runs" / "ml-ndcg-at-k.png")]  # no model used item vectors
    check_png(tmp_path / "runs" / "ml-ndcg-at-k.png", (1000, 400))


def test_models_measures_the_index_tradeoff_on_the_item_vectors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cli.evaluate, "text_features", fake_text_features)
    out = tmp_path / "ml.json"
    assert main([*QUICK, "--models", "popularity,content", "--tradeoff-queries", "50", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    tradeoff = report["index_tradeoff"]
    assert tradeoff["items"] == 1682 and tradeoff["queries"] == 50
    points = tradeoff["points"]
    assert points[0]["setting"] == "exact (flat)" and points[0]["recall"] == 1.0
    assert sum(p["default"] for p in points) == 1 and all(0 <= p["recall"] <= 1 for p in points)
    assert report["plots"] == [str(tmp_path / "ml-ndcg-at-k.png"), str(tmp_path / "ml-index-tradeoff.png")]
    check_png(tmp_path / "ml-index-tradeoff.png", (700, 450))


def test_an_interrupted_run_leaves_the_previous_results_alone(tmp_path: Path, monkeypatch) -> None:
    import evaluation.comparison

    real = evaluation.comparison.compare_models

    def interrupted(data, names, config, features, overrides, on_model, done):  # type: ignore[no-untyped-def]
        real(data, names[:1], config, features, overrides, on_model, done)  # the first model completes, then ^C
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation.comparison, "compare_models", interrupted)
    out = tmp_path / "ml100k.json"
    out.write_text('{"complete": true, "kept": 1}\n')
    assert main([*QUICK, "--models", "popularity,itemknn", "--out", str(out), "--no-plots"]) == 130
    assert json.loads(out.read_text()) == {"complete": True, "kept": 1}
    partial = json.loads((tmp_path / "ml100k.partial.json").read_text())
    assert partial["complete"] is False and list(partial["models"]) == ["popularity"]
    assert not list(tmp_path.glob("*.png"))


def test_bad_flags_say_what_is_valid(tmp_path: Path, capsys) -> None:
    assert main([*QUICK, "--models", "popularity,nope", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model(s) ['nope']; valid:") and "itemknn" in err
    assert main(["evaluate", "models", "--protocol", "fast"]) == 2
    assert "unknown protocol(s) ['fast']; valid: full, sampled, cold, rmse" in capsys.readouterr().err
    assert main(["evaluate"]) == 2  # which evaluation is required
    assert not list(tmp_path.iterdir())


def test_the_parser_constants_agree_with_evaluation() -> None:
    from evaluation.auto import DEFAULT_AUTO_BUDGET_S
    from evaluation.datasets import DATASETS

    assert cli.evaluate.DATASET_NAMES == tuple(DATASETS) and cli.evaluate.AUTO_BUDGET_S == DEFAULT_AUTO_BUDGET_S


def test_default_out_is_not_the_tracked_results(tmp_path: Path, monkeypatch) -> None:
    assert cli.evaluate.DEFAULT_OUT.parts[0] == "runs"
    monkeypatch.chdir(tmp_path)
    assert main([*QUICK, "--dataset", "instacart", "--models", "popularity", "--no-plots"]) == 0
    report = json.loads((tmp_path / "runs" / "instacart.json").read_text())
    assert report["dataset"] == "instacart" and report["dataset_title"] == "Instacart (groceries)"
    assert list(report["models"]) == ["popularity"] and not (tmp_path / "results").exists()


@pytest.mark.parametrize("command", [["evaluate"], ["evaluate", "models"], ["evaluate", "retrieval"],
                                     ["plot-embeddings"]])
def test_help_shows_an_example(command: list[str], capsys) -> None:
    assert main([*command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "shopvec " + command[0] in text.split("examples:")[1]


def test_retrieval_writes_json_and_tradeoff_plot(toy_catalog_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "retrieval.json"
    assert main(["evaluate", "retrieval", "--datasets", "catalog", "--catalog", str(toy_catalog_file), *FAKE,
                 "--k", "3", "--weights", "0,0.5,1", "--no-engine-check", "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fused w_img=0.5" in printed and "| exact (flat) | 1.0000 |" in printed
    report = json.loads(out.read_text())
    assert {r["vectors"]: r["precision"] for r in report["results"]}["text (fake-text)"] == 1.0
    assert report["index_tradeoff"]["items"] == 10 and report["index_tradeoff"]["points"][0]["recall"] == 1.0
    check_png(tmp_path / "retrieval-index-tradeoff.png", (700, 450))


@pytest.fixture
def toy_model(toy_catalog_file: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    Engine.build(Catalog.from_file(toy_catalog_file), fake_config(), show_progress=False).save(folder)
    return folder


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_plot_embeddings_draws_the_folders_vectors_by_category(toy_model: Path, tmp_path: Path, method: str,
                                                               capsys) -> None:
    out = tmp_path / "map.png"
    assert main(["plot-embeddings", str(toy_model), "--out", str(out), "--method", method]) == 0
    assert "(10 items, 2 category values)" in capsys.readouterr().out
    check_png(out, (800, 600))


def test_plot_embeddings_reads_the_indexed_vectors_and_categories(toy_model: Path) -> None:
    engine = Engine.load(toy_model)
    ids, vectors, labels = item_vectors(engine, "category", max_items=100)
    assert sorted(ids) == sorted(engine.index.ids)
    np.testing.assert_array_equal(vectors, engine.index.vectors(ids))
    assert labels == ["food" if i.startswith("fruit") else "tools" for i in ids]
    sample, _, _ = item_vectors(engine, "category", max_items=4, seed=1)
    assert len(sample) == 4 and set(sample) <= set(ids)


def test_plot_embeddings_errors(toy_model: Path, tmp_path: Path, capsys) -> None:
    assert main(["plot-embeddings", str(toy_model), "--color-by", "brand", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the catalog has no column 'brand' to colour by; its columns are: id, title")
    assert main(["plot-embeddings", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "x.png").exists()
