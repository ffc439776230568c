"""The image-text alignment: fitted at index time, persisted, used by queries and for items missing a modality."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import fake_config, write_image

from core.errors import InvalidArgumentError
from core.persistence import model_folder
from encoders.alignment import AlignmentConfig, AlignmentError, ModalityAlignment, complete, without_predicted
from encoders.fusion import Fusion
from engine import Catalog, Engine, ItemFilter
from engine.indexing import index_catalog
from engine.pipeline import encode_items

RED, BLUE = (220, 20, 30), (20, 30, 220)


def _config(align: bool = True, **alignment: object):
    config = fake_config()
    return dataclasses.replace(config, alignment=AlignmentConfig(align=align, **{"min_pairs": 10, **alignment}))


def _planted(tmp_path: Path, per_category: int = 12) -> Path:
    """Red fruit and blue tools with image and text, plus per category one image-only and one text-only item."""
    rows = []
    for kind, colour, text, category in (("fruit", RED, "fresh red fruit apple", "food"),
                                         ("tool", BLUE, "steel hand tool hammer", "tools")):
        for i in range(per_category):
            shade = (colour[0], colour[1] + 3 * i, colour[2])
            rows.append({"id": f"{kind}-{i}", "title": f"{kind} {i}", "description": text, "category": category,
                         "image": write_image(tmp_path / f"{kind}{i}.png", shade)})
        rows.append({"id": f"{kind}-photo", "title": "", "description": "", "category": category,
                     "image": write_image(tmp_path / f"{kind}-photo.png", (colour[0], colour[1] + 1, colour[2]))})
        rows.append({"id": f"{kind}-words", "title": f"{kind} words", "description": text, "category": category,
                     "image": ""})
    path = tmp_path / "items.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _only(*ids: str) -> ItemFilter:
    """A filter that lets only these items of the planted catalog through."""
    everything = [f"{k}-{s}" for k in ("fruit", "tool") for s in [*map(str, range(12)), "photo", "words"]]
    return ItemFilter(exclude=[i for i in everything if i not in ids])


def test_ridge_alignment_recovers_a_linear_relation() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(300, 10))
    text = image @ rng.normal(size=(10, 6)) + 0.01 * rng.normal(size=(300, 6))
    alignment = ModalityAlignment.fit(image, text, AlignmentConfig())
    unit = text / np.linalg.norm(text, axis=1, keepdims=True)
    cosine = (alignment.predict_text(image) * unit).sum(axis=1)
    assert cosine.mean() > 0.95
    assert alignment.info["image_to_text"]["holdout_percentile_rank"] > 0.9
    assert np.allclose(np.linalg.norm(alignment.predict_image(text), axis=1), 1.0, atol=1e-5)


def test_too_few_pairs_refuses_to_fit() -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(AlignmentError, match="12 items have both an image and a text; the alignment needs at least 50"):
        ModalityAlignment.fit(rng.normal(size=(12, 4)), rng.normal(size=(12, 3)), AlignmentConfig(min_pairs=50))


def test_config_is_validated() -> None:
    with pytest.raises(InvalidArgumentError, match=r"predicted_weight must be a number in \(0, 1\], got 1.5"):
        AlignmentConfig(predicted_weight=1.5)
    with pytest.raises(InvalidArgumentError, match="ridge must be a non-empty list"):
        AlignmentConfig(ridge=())
    assert AlignmentConfig(ridge=[1, 2]).ridge == (1.0, 2.0)


def test_complete_fills_only_empty_slots_and_inverts() -> None:
    rng = np.random.default_rng(2)
    fusion = Fusion(4, 3)
    alignment = ModalityAlignment.fit(rng.normal(size=(60, 4)), rng.normal(size=(60, 3)), AlignmentConfig(min_pairs=10))
    image, text = rng.normal(size=(3, 4)), rng.normal(size=(3, 3))
    raw = fusion.fuse(image, text, np.array([True, True, False]), np.array([True, False, True]))
    out, codes = complete(fusion, alignment, raw, 0.5)
    assert codes.tolist() == [0, 2, 1]
    assert np.array_equal(out[0], raw[0])  # an item's own vectors always win
    assert np.all(np.linalg.norm(out[:, :4], axis=1) > 0) and np.all(np.linalg.norm(out[:, 4:], axis=1) > 0)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert np.allclose(without_predicted(fusion, out, codes), raw, atol=1e-6)


def test_text_query_finds_an_image_only_item_only_when_aligned(tmp_path: Path) -> None:
    catalog = Catalog.from_file(_planted(tmp_path))
    aligned = Engine.build(catalog, _config(align=True), show_progress=False)
    unaligned = Engine.build(catalog, _config(align=False), show_progress=False)
    assert aligned.state.fitted.alignment is not None and unaligned.state.fitted is None
    assert dict(aligned.state.fitted.predicted) == {"fruit-photo": "text", "tool-photo": "text",
                                                  "fruit-words": "image", "tool-words": "image"}
    photos = _only("fruit-photo", "tool-photo")
    for text, want in (("steel hand tool", "tool-photo"), ("fresh red fruit", "fruit-photo")):
        hits = aligned.search(text=text, k=2, filter=photos)
        assert hits[0].item_id == want and hits[0].score > hits[1].score
        assert [m.score for m in unaligned.search(text=text, k=2, filter=photos)] == [0.0, 0.0]  # cannot tell them apart
    words = _only("fruit-words", "tool-words")
    hits = aligned.search(image=str(tmp_path / "tool0.png"), k=2, filter=words)
    assert hits[0].item_id == "tool-words" and hits[0].score > hits[1].score
    assert [m.score for m in unaligned.search(image=str(tmp_path / "tool0.png"), k=2, filter=words)] == [0.0, 0.0]
    # An image-only item's neighbours now come from its predicted text too: its category's text-only item comes first.
    assert aligned.similar("tool-photo", k=1, filter=words)[0].item_id == "tool-words"


def test_align_false_gives_the_unaligned_vectors_and_results(tmp_path: Path) -> None:
    catalog = Catalog.from_file(_planted(tmp_path))
    engine = Engine.build(catalog, _config(align=False), show_progress=False)
    encoders = engine.encoders
    raw = encode_items(catalog, encoders, batch_size=4, num_workers=0, show_progress=False)
    assert np.array_equal(engine.index.vectors(raw.ids), raw.vectors)
    query = encoders.fusion.query(text=encoders.text.encode(["steel hand tool"])[0])[0]
    assert np.array_equal(engine.query_vector(text="steel hand tool"), query)
    scores, ids = engine.index.search(query[None, :], 5)
    scaled = scores[0] * encoders.fusion.query_scale(query, engine.index.vectors(list(ids[0])))
    expected = [ids[0][r] for r in sorted(range(5), key=lambda r: -scaled[r])]  # the index's order, on the query's scale
    assert [m.item_id for m in engine.search(text="steel hand tool", k=5)] == expected
    # Complete items keep their own vectors when aligned.
    aligned = Engine.build(catalog, _config(align=True), show_progress=False)
    complete_ids = [i for i in raw.ids if i not in aligned.state.fitted.missing]
    assert np.array_equal(aligned.index.vectors(complete_ids), engine.index.vectors(complete_ids))


def test_too_few_pairs_runs_unaligned_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    catalog = Catalog.from_file(_planted(tmp_path, per_category=3))
    with caplog.at_level(logging.WARNING):
        engine = Engine.build(catalog, _config(align=True, min_pairs=50), show_progress=False)
    fitted = engine.state.fitted
    assert fitted.alignment is None and not fitted.predicted
    assert fitted.describe() == ("unaligned: 6 items have both an image and a text; the alignment needs at least 50 "
                                 "(AlignmentConfig.min_pairs)")
    assert "image and text stay unaligned: 6 items have both" in caplog.text
    assert [m.score for m in engine.search(text="steel hand tool", k=2, filter=_only("fruit-photo", "tool-photo"))] == [
        0.0, 0.0]
    _, report = index_catalog(_planted(tmp_path, per_category=3), tmp_path / "model", _config(min_pairs=50),
                              show_progress=False)
    assert "alignment     : unaligned: 6 items have both" in report.summary()


def test_save_load_round_trip_keeps_vectors_and_results(tmp_path: Path) -> None:
    engine = Engine.build(Catalog.from_file(_planted(tmp_path)), _config(), show_progress=False)
    engine.save(tmp_path / "model")
    loaded = Engine.load(tmp_path / "model")
    ids = engine.index.ids
    assert np.array_equal(loaded.index.vectors(ids), engine.index.vectors(ids))
    assert dict(loaded.state.fitted.predicted) == dict(engine.state.fitted.predicted)
    for name in ("text_to_image", "image_to_text", "text_mean", "image_mean"):
        assert np.array_equal(getattr(loaded.state.fitted.alignment, name), getattr(engine.state.fitted.alignment, name))
    assert np.array_equal(loaded.query_vector(text="steel hand tool"), engine.query_vector(text="steel hand tool"))
    assert loaded.search(text="steel hand tool", k=8) == engine.search(text="steel hand tool", k=8)
    assert (model_folder(tmp_path / "model") / "fitted" / "alignment" / "text_to_image.npy").is_file()


def test_folder_without_alignment_loads_unaligned(tmp_path: Path) -> None:
    engine = Engine.build(Catalog.from_file(_planted(tmp_path)), _config(align=False), show_progress=False)
    engine.save(tmp_path / "model")
    manifest_path = model_folder(tmp_path / "model") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["config"]["alignment"]  # as written before the alignment existed
    manifest_path.write_text(json.dumps(manifest))
    loaded = Engine.load(tmp_path / "model")
    assert loaded.state.fitted is None and loaded.config.alignment == AlignmentConfig()
    assert loaded.search(text="steel hand tool", k=8) == engine.search(text="steel hand tool", k=8)
    loaded.add([{"id": "new-photo", "image": "tool-photo.png", "category": "tools"}])
    assert loaded.state.fitted is None and not np.any(loaded.item_vector("new-photo")[12:])


def test_added_items_are_completed_and_growth_refits(tmp_path: Path) -> None:
    engine = Engine.build(Catalog.from_file(_planted(tmp_path)), _config(refit_growth=0.25), show_progress=False)
    first = engine.state.fitted
    assert first.fitted_pairs == 24
    engine.add([{"id": "new-photo", "image": "tool-photo.png", "category": "tools"}])
    fitted = engine.state.fitted
    assert fitted.alignment is first.alignment and fitted.predicted["new-photo"] == "text"
    assert np.any(engine.item_vector("new-photo")[12:])  # a predicted text slot
    cached = engine.state.vector_cache(["new-photo"])
    assert not np.any(next(iter(cached.values()))[12:])  # the cache holds what the encoders made
    before = engine.item_vector("tool-photo")
    engine.add([{"id": f"more-{i}", "title": f"tool more {i}", "description": "steel hand tool hammer",
                 "image": f"tool{i}.png", "category": "tools"} for i in range(6)])
    refit = engine.state.fitted
    assert refit.fitted_pairs == 30 and refit.alignment is not first.alignment
    assert not np.array_equal(engine.item_vector("tool-photo"), before)  # predicted again by the new fit
    after = engine.item_vector("tool-photo")
    assert np.allclose(after[:12] / np.linalg.norm(after[:12]), before[:12] / np.linalg.norm(before[:12]), atol=1e-6)
    done = engine.upsert([{"id": "tool-photo", "title": "tool photo", "description": "steel hand tool hammer",
                           "image": "tool-photo.png", "category": "tools"}])
    assert done.reencoded == ("tool-photo",) and "tool-photo" not in engine.state.fitted.predicted
    engine.remove(["fruit-photo"])
    assert "fruit-photo" not in engine.state.fitted.missing


def test_evaluation_measures_aligned_against_unaligned_on_planted_vectors() -> None:
    from encoders.fusion import FusionConfig
    from evaluation.alignment import catalog_rows, format_row
    from evaluation.retrieval import ModalityVectors

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 60)
    image = rng.normal(size=(4, 16))[labels] + 0.3 * rng.normal(size=(240, 16))
    text = rng.normal(size=(4, 8))[labels] + 0.3 * rng.normal(size=(240, 8))
    vectors = ModalityVectors(labels.astype(str), image.astype(np.float32), text.astype(np.float32),
                              np.ones(240, bool), np.ones(240, bool))
    rows, info = catalog_rows(vectors, FusionConfig(), AlignmentConfig(), [0.25, 1.0], k=10, seed=0)
    by = {(r.setting, r.metric): r for r in rows}
    cross = by[("text query -> image-only items", "same-category P@10")]
    assert cross.unaligned < 0.45 and cross.aligned[0.25] > 0.9 and cross.aligned[1.0] == cross.aligned[0.25]
    both = by[("image+text query -> complete items", "same-category P@10")]
    assert both.aligned[0.25] == both.unaligned  # nothing to predict, nothing changes
    assert info["image_only"] == info["text_only"] == info["complete"] == 80
    assert "text query -> image-only items" in format_row(cross)
