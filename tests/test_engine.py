"""The retrieval facade: build, similar, search, filters, add/remove, save/load, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import fake_config, write_image
from PIL import Image

from core.errors import CatalogError, FormatVersionError, ImageError, InvalidArgumentError, UnknownItemError
from core.persistence import model_folder
from engine import Catalog, CatalogColumns, Engine, Match
from engine.filters import ItemFilter


@pytest.fixture
def engine(toy_catalog_file: Path) -> Engine:
    return Engine.build(Catalog.from_file(toy_catalog_file), fake_config(), show_progress=False)


def test_similar_finds_same_kind_and_excludes_itself(engine: Engine) -> None:
    matches = engine.similar("fruit-0", k=4)
    assert [m.item_id.split("-")[0] for m in matches] == ["fruit"] * 4
    assert "fruit-0" not in [m.item_id for m in matches]
    assert all(isinstance(m, Match) for m in matches)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    assert matches[0].fields["category"] == "food" and matches[0].title.startswith("Red apple")


def test_similar_with_k_above_catalog_returns_everything_else(engine: Engine) -> None:
    assert len(engine.similar("fruit-0", k=50)) == 9


def test_text_and_image_search(engine: Engine, tmp_path: Path) -> None:
    assert engine.search(text="blue hammer", k=3)[0].item_id.startswith("tool-")
    photo = Image.new("RGB", (40, 40), (210, 25, 40))
    assert engine.search(image=photo, k=3)[0].item_id.startswith("fruit-")
    path = tmp_path / "query.png"
    photo.save(path)
    assert engine.search(image=str(path), k=1)[0].item_id.startswith("fruit-")
    both = engine.search(text="steel tool", image=photo, k=10)
    assert len(both) == 10


def test_filters_by_category_price_and_exclusion(engine: Engine) -> None:
    tools = engine.similar("fruit-0", k=5, filter=ItemFilter(categories=["tools"]))
    assert len(tools) == 5 and all(m.fields["category"] == "tools" for m in tools)
    cheap = engine.search(text="red apple", k=10, filter=ItemFilter(max_price=2.5))
    assert {m.item_id for m in cheap} == {"fruit-0", "fruit-1"}
    excluded = engine.similar("fruit-0", k=3, filter=ItemFilter(exclude=["fruit-1", "fruit-2"]))
    assert {"fruit-1", "fruit-2"}.isdisjoint(m.item_id for m in excluded)


def test_unknown_category_lists_valid_ones(engine: Engine) -> None:
    with pytest.raises(InvalidArgumentError, match=r"unknown categories \['shoes'\]; the catalog has: food, tools"):
        engine.similar("fruit-0", filter=ItemFilter(categories=["shoes"]))


def test_add_and_remove_without_rebuild(engine: Engine, tmp_path: Path) -> None:
    new = [{"id": "fruit-new", "title": "Red apple new", "description": "fresh red fruit", "category": "food",
            "price": 2.0, "image": write_image(tmp_path / "new.png", (225, 22, 28))}]
    assert engine.add(new) == []
    assert "fruit-new" in [m.item_id for m in engine.similar("fruit-0", k=5)]
    engine.remove(["fruit-new", "fruit-1"])
    assert {"fruit-new", "fruit-1"}.isdisjoint(m.item_id for m in engine.similar("fruit-0", k=9))
    with pytest.raises(UnknownItemError, match="item 'fruit-new' is not in the catalog"):
        engine.similar("fruit-new")
    with pytest.raises(CatalogError, match="items already in the catalog: 'fruit-0'"):
        engine.add([{"id": "fruit-0", "title": "dup"}])


def test_save_load_round_trip_gives_identical_results(engine: Engine, tmp_path: Path) -> None:
    engine.save(tmp_path / "model")
    loaded = Engine.load(tmp_path / "model")
    for item in ("fruit-0", "tool-3"):
        assert engine.similar(item, k=5) == loaded.similar(item, k=5)
    assert engine.search(text="red fruit", k=4) == loaded.search(text="red fruit", k=4)


def test_save_is_atomic_a_failed_save_keeps_the_previous_model(engine: Engine, tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "model"
    engine.save(target)
    before = sorted(p.name for p in target.iterdir())

    def boom(*_: object, **__: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(engine.index, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        engine.save(target)
    assert sorted(p.name for p in target.iterdir()) == before
    assert Engine.load(target).similar("fruit-0", k=2)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".model")]  # no temporary folder left


def test_load_checks_format_version(engine: Engine, tmp_path: Path) -> None:
    engine.save(tmp_path / "model")
    manifest = model_folder(tmp_path / "model") / "manifest.json"  # the published version's
    data = json.loads(manifest.read_text())
    data["format_version"] = 999
    manifest.write_text(json.dumps(data))
    with pytest.raises(FormatVersionError, match="has format version 999; this library reads version 1"):
        Engine.load(tmp_path / "model")


def test_k_must_be_positive(engine: Engine) -> None:
    for bad in (0, -3, 2.5):
        with pytest.raises(InvalidArgumentError, match=f"k must be a positive integer, got {bad!r}"):
            engine.similar("fruit-0", k=bad)
    with pytest.raises(InvalidArgumentError, match="k must be a positive integer, got 0"):
        engine.search(text="apple", k=0)


def test_unknown_item_names_it(engine: Engine) -> None:
    with pytest.raises(UnknownItemError, match=r"item 'sku-9' is not in the catalog \(10 items indexed\)"):
        engine.similar("sku-9")


def test_search_needs_a_query(engine: Engine) -> None:
    with pytest.raises(InvalidArgumentError, match="search needs text=..., image=... or both"):
        engine.search()
    with pytest.raises(InvalidArgumentError, match="text query must be a non-empty string, got '  '"):
        engine.search(text="  ")


def test_search_with_missing_image_file_names_it(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"image file '.*nope\.jpg' does not exist"):
        engine.search(image=tmp_path / "nope.jpg")


def test_catalog_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="has duplicate ids: 'a'"):
        Catalog(pd.DataFrame({"id": ["a", "b", "a"], "title": ["x", "y", "z"]}))
    with pytest.raises(CatalogError, match="has no id column 'id'; its columns are: sku, name"):
        Catalog(pd.DataFrame({"sku": ["a"], "name": ["x"]}))
    with pytest.raises(CatalogError, match="is empty: it has no items"):
        Catalog(pd.DataFrame({"id": []}))
    with pytest.raises(CatalogError, match=r"has suffix '\.xlsx'; expected one of \.csv, \.jsonl, \.parquet"):
        Catalog.from_file(tmp_path / "items.xlsx")
    with pytest.raises(CatalogError, match="row 1 has an empty id"):
        Catalog(pd.DataFrame({"id": ["a", None]}))


def test_renamed_columns_and_other_formats(tmp_path: Path) -> None:
    frame = pd.DataFrame({"sku": ["s1", "s2"], "name": ["Red apple", "Blue hammer"],
                          "image_path": [write_image(tmp_path / "a.png", (250, 0, 0)), ""]})
    columns = CatalogColumns(id="sku", title="name", image="image_path")
    for suffix in ("jsonl", "parquet"):
        path = tmp_path / f"items.{suffix}"
        frame.to_json(path, orient="records", lines=True) if suffix == "jsonl" else frame.to_parquet(path)
        engine = Engine.build(Catalog.from_file(path, columns), fake_config(), show_progress=False)
        assert engine.similar("s1", k=1)[0].item_id == "s2"
        assert engine.similar("s1", k=1)[0].fields["title"] == "Blue hammer"


def test_unreadable_images_are_reported_not_dropped(tmp_path: Path, toy_catalog_file: Path) -> None:
    frame = pd.read_csv(toy_catalog_file)
    frame.loc[0, "image"] = "missing.png"
    (tmp_path / "broken.png").write_bytes(b"not a png")
    frame.loc[1, "image"] = "broken.png"
    frame.to_csv(toy_catalog_file, index=False)
    engine = Engine.build(Catalog.from_file(toy_catalog_file), fake_config(), show_progress=False)
    reasons = {s.item_id: s.reason for s in engine.skipped}
    assert set(reasons) == {"fruit-0", "fruit-1"}
    assert "missing.png' does not exist" in reasons["fruit-0"]
    assert "cannot decode image" in reasons["fruit-1"] and "broken.png" in reasons["fruit-1"]
    assert len(engine) == 8
    with pytest.raises(UnknownItemError, match="item 'fruit-0' is in the catalog but has no vector: image file"):
        engine.similar("fruit-0")
    with pytest.raises(ImageError, match=r"item 'fruit-0': image file '.*missing\.png' does not exist"):
        Engine.build(Catalog.from_file(toy_catalog_file), fake_config(), on_error="raise", show_progress=False)


def test_items_without_image_or_text_use_what_they_have(tmp_path: Path) -> None:
    rows = [
        {"id": "img-only", "title": "", "image": write_image(tmp_path / "a.png", (200, 0, 0))},
        {"id": "txt-only", "title": "red apple", "image": ""},
        {"id": "both", "title": "red apple", "image": write_image(tmp_path / "b.png", (205, 0, 0))},
        {"id": "nothing", "title": "", "image": ""},
    ]
    engine = Engine.build(Catalog.from_records(rows, base_dir=tmp_path), fake_config(), show_progress=False)
    assert [s.item_id for s in engine.skipped] == ["nothing"]
    assert engine.similar("img-only", k=1)[0].item_id == "both"
    assert engine.similar("txt-only", k=1)[0].item_id == "both"


def test_rebuild_reuses_unchanged_items(toy_catalog_file: Path) -> None:
    first = Engine.build(Catalog.from_file(toy_catalog_file), fake_config(), show_progress=False)
    frame = pd.read_csv(toy_catalog_file)
    frame.loc[3, "title"] = "Changed title"
    frame.to_csv(toy_catalog_file, index=False)
    second = Engine.build(Catalog.from_file(toy_catalog_file), fake_config(), previous=first, show_progress=False)
    assert second.last_build.reused == 9
    assert len(second.last_build.ids) == 10
