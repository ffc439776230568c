"""Keeping a served model up to date: column mapping, typed fields, id lookups, upsert, events, portable folders.

Planted answers on the toy catalog (five red fruit, five blue tools; fake encoders), and
save -> load round trips for everything that is kept in the model folder.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import fake_config, make_toy_catalog, write_image

from core.errors import ImageError, InvalidArgumentError, UnknownItemError
from core.integrity import describe_files
from core.persistence import model_folder
from encoders.config import ImageLimits
from encoders.imageio import load_image
from engine import Catalog, CatalogColumns, Engine, Interactions, ItemFilter
from engine.results import Upserted

RED, BLUE = (220, 20, 30), (20, 30, 220)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine.build(Catalog.from_file(make_toy_catalog(tmp_path)), fake_config(), show_progress=False)


def count_encodings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """[texts encoded, images encoded] from now on."""
    counts = [0, 0]
    text, image = engine.encoders.text, engine.encoders.image
    text_encode, image_encode = text.encode, image.encode_tensors

    def count_text(batch):
        counts[0] += len(batch)
        return text_encode(batch)

    def count_image(tensors):
        counts[1] += len(tensors)
        return image_encode(tensors)

    monkeypatch.setattr(text, "encode", count_text)
    monkeypatch.setattr(image, "encode_tensors", count_image)
    return counts


# ----- the catalog's columns and typed fields ----------------------------------------------
def shop_table(folder: Path) -> pd.DataFrame:
    """Three items in a shop's own column names; prices and stock as a spreadsheet writes them."""
    return pd.DataFrame({
        "sku": ["a-1", "a-2", "b-1"],
        "name": ["Red apple", "Green apple", "Blue hammer"],
        "cost": ["46.37", "", "12"],
        "qty": ["3", "0", ""],
        "image": [write_image(folder / f"{c}.png", rgb) for c, rgb in (("a1", RED), ("a2", (30, 200, 30)), ("b1", BLUE))],
    })


SHOP_COLUMNS = CatalogColumns(id="sku", title="name", price="cost", stock="qty")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_price_and_stock_come_back_as_numbers_from_every_format_and_after_save_load(tmp_path: Path, suffix: str) -> None:
    table = shop_table(tmp_path)
    path = tmp_path / f"items{suffix}"
    if suffix == ".csv":
        table.to_csv(path, index=False)
    elif suffix == ".jsonl":  # JSON has numbers and null: write them as such
        table = table.assign(cost=[46.37, None, 12], qty=[3, 0, None])
        path.write_text("\n".join(json.dumps(r) for r in table.to_dict("records")))
    else:
        table.to_parquet(path)
    engine = Engine.build(Catalog.from_file(path, SHOP_COLUMNS), fake_config(), show_progress=False)
    expected = {"a-1": (46.37, 3), "a-2": (None, 0), "b-1": (12.0, None)}
    for current in (engine, save_and_load(engine, tmp_path / "model")):
        catalog = current.catalog
        got = {i: (catalog.fields(catalog.row(i))["price"], catalog.fields(catalog.row(i))["stock"]) for i in expected}
        assert got == expected
        assert all(type(p) is float for p, _ in got.values() if p is not None)
        assert all(type(s) is int for _, s in got.values() if s is not None)
        match = current.similar("a-2", k=1, filter=ItemFilter(max_price=50, in_stock=True))[0]
        assert (match.item_id, match.fields["price"], match.fields["stock"]) == ("a-1", 46.37, 3)


def save_and_load(engine: Engine, folder: Path) -> Engine:
    engine.save(folder)
    return Engine.load(folder)


def test_add_and_upsert_read_new_items_with_the_catalogs_columns_also_after_load(tmp_path: Path) -> None:
    shop_table(tmp_path).to_csv(tmp_path / "items.csv", index=False)
    engine = Engine.build(Catalog.from_file(tmp_path / "items.csv", SHOP_COLUMNS), fake_config(), show_progress=False)
    engine = save_and_load(engine, tmp_path / "model")
    assert engine.catalog.columns == SHOP_COLUMNS
    image = write_image(tmp_path / "new.png", RED)
    assert engine.add([{"sku": " c-1 ", "name": "Red cherry", "cost": "2.5", "qty": "7", "image": image}]) == []
    assert {k: engine.catalog.fields(engine.catalog.row("c-1"))[k] for k in ("title", "price", "stock")} == {
        "title": "Red cherry", "price": 2.5, "stock": 7}
    done = engine.upsert(pd.DataFrame({"sku": ["c-1"], "name": ["Red cherry"], "cost": [3.0], "qty": [6], "image": [image]}))
    assert done == Upserted(updated=("c-1",))
    assert engine.catalog.fields(engine.catalog.row("c-1"))["price"] == 3.0
    engine.add([{"id": "c-2", "title": "Our own names work too", "price": 1}])  # the engine's names are accepted
    assert engine.catalog.fields(engine.catalog.row("c-2"))["price"] == 1.0


def test_a_folder_of_an_earlier_release_loads_absolute_paths_text_prices_and_no_columns(engine: Engine, tmp_path: Path) -> None:
    saved = tmp_path / "model"
    engine.save(saved)
    version = model_folder(saved)
    frame = pd.read_parquet(version / "catalog.parquet")
    frame["image"] = [str(tmp_path / p) for p in frame["image"]]
    frame["price"] = [f"{p:g}" for p in frame["price"]]
    frame.to_parquet(version / "catalog.parquet")
    manifest = json.loads((version / "manifest.json").read_text())
    del manifest["catalog_columns"]
    manifest["catalog_base_dir"] = str(tmp_path)
    manifest["files"] = describe_files(version, skip={"manifest.json", ".shopvec-version"})
    (version / "manifest.json").write_text(json.dumps(manifest))
    old = Engine.load(saved)
    assert old.catalog.columns == CatalogColumns()
    assert old.catalog.fields(0) == engine.catalog.fields(0) and old.catalog.fields(0)["price"] == 1.0
    assert old.similar("fruit-0", k=4) == engine.similar("fruit-0", k=4)


# ----- ids at lookup ----------------------------------------------------------------------------
def test_ids_are_cleaned_at_lookup_as_on_reading(tmp_path: Path) -> None:
    rows = [{"id": i, "title": f"Red apple {i}", "image": write_image(tmp_path / f"{i}.png", RED)} for i in (42, 7, 8)]
    engine = Engine.build(Catalog.from_records(rows, base_dir=tmp_path), fake_config(), show_progress=False)
    assert engine.catalog.ids == ["42", "7", "8"]
    assert engine.catalog.row(42) == engine.catalog.row(" 42 ") == 0 and 42 in engine.catalog
    assert engine.similar(42, k=2) == engine.similar("42", k=2) == engine.similar(np.int64(42), k=2)
    assert engine.similar_many([42, "7"], k=1) == [engine.similar("42", k=1), engine.similar("7", k=1)]
    assert np.array_equal(engine.item_vector(7), engine.item_vector("7"))
    for bad in (1.5, True, None):
        with pytest.raises(InvalidArgumentError, match=f"item id must be a string or an integer .*got {type(bad).__name__} {bad!r}"):
            engine.similar(bad)
    with pytest.raises(InvalidArgumentError, match="similar_many takes a list of item ids, got str 'abc'"):
        engine.similar_many("abc")
    with pytest.raises(UnknownItemError, match="item '99' is not in the catalog"):
        engine.similar(99)
    engine.remove([42])
    assert engine.catalog.ids == ["7", "8"] and "42" not in engine.index


# ----- upsert ----------------------------------------------------------------------------------
def test_upsert_a_price_change_replaces_fields_without_encoding(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    before, neighbours = engine.state, engine.similar("fruit-1", k=9)
    counts = count_encodings(engine, monkeypatch)
    row = engine.catalog.fields(engine.catalog.row("fruit-0"))
    done = engine.upsert([{**row, "price": 0.5, "image": Path(row["image"]).name}])
    assert done == Upserted(updated=("fruit-0",))
    assert counts == [0, 0]
    assert engine.index is before.index  # nothing to change: the published index is kept
    assert engine.catalog.fields(engine.catalog.row("fruit-0"))["price"] == 0.5
    assert before.catalog.fields(before.catalog.row("fruit-0"))["price"] == 1.0  # the old snapshot is untouched
    after = engine.similar("fruit-1", k=9)
    assert [(m.item_id, m.score) for m in after] == [(m.item_id, m.score) for m in neighbours]
    assert [m.fields["price"] for m in after if m.item_id == "fruit-0"] == [0.5]
    assert engine.upsert([{**row, "price": 0.5, "image": Path(row["image"]).name}]) == Upserted()  # no change at all


def test_upsert_re_encodes_changed_content_and_adds_new_items(engine: Engine, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    counts = count_encodings(engine, monkeypatch)
    red = write_image(tmp_path / "now-red.png", RED)
    done = engine.upsert([
        {"id": "tool-0", "title": "Red apple 9", "description": "fresh red fruit", "category": "food", "image": red},
        {"id": "fruit-new", "title": "Red apple 10", "description": "fresh red fruit", "category": "food", "image": red},
    ])
    assert done == Upserted(added=("fruit-new",), updated=("tool-0",), reencoded=("tool-0",))
    assert counts == [2, 2]  # the two new contents; the other eight items are not encoded
    assert {m.item_id for m in engine.similar("fruit-0", k=6)} >= {"tool-0", "fruit-new"}
    assert "tool-0" not in {m.item_id for m in engine.similar("tool-1", k=3)}
    assert engine.catalog.ids[5] == "tool-0" and engine.catalog.ids[-1] == "fruit-new"  # replaced in place
    assert engine.catalog.fields(engine.catalog.row("tool-0"))["price"] is None  # a row is replaced, not merged


def test_upsert_notices_new_image_bytes_under_the_same_path(engine: Engine, tmp_path: Path) -> None:
    row = engine.catalog.fields(engine.catalog.row("tool-2"))
    before = engine.item_vector("tool-2") @ engine.item_vector("fruit-0")
    write_image(tmp_path / "t2.png", RED)  # the file the catalog names, repainted
    done = engine.upsert([{**row, "image": "t2.png"}])
    assert done == Upserted(updated=("tool-2",), reencoded=("tool-2",))
    assert engine.item_vector("tool-2") @ engine.item_vector("fruit-0") > before + 0.1


def test_upsert_an_item_whose_new_image_is_unreadable_loses_its_vector_and_says_why(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not a png")
    done = engine.upsert([{"id": "fruit-3", "title": "Red apple 3", "image": "broken.png"}])
    assert done.updated == ("fruit-3",) and done.reencoded == ()
    assert [s.item_id for s in done.skipped] == ["fruit-3"] and "cannot decode" in done.skipped[0].reason
    assert "fruit-3" in engine.catalog and "fruit-3" not in engine.index
    with pytest.raises(UnknownItemError, match="item 'fruit-3' is in the catalog but has no vector: cannot decode"):
        engine.similar("fruit-3")
    (tmp_path / "mended.png").write_bytes((tmp_path / "f3.png").read_bytes())
    assert engine.upsert([{"id": "fruit-3", "title": "Red apple 3", "image": "mended.png"}]).reencoded == ("fruit-3",)
    assert engine.skipped == [] and "fruit-3" in engine.index


def test_upsert_round_trip_and_to_dict(engine: Engine, tmp_path: Path) -> None:
    done = engine.upsert([{"id": "tool-4", "title": "Blue hammer 4", "description": "now with a red handle", "price": 9}])
    assert done.to_dict() == {"added": [], "updated": ["tool-4"], "reencoded": ["tool-4"], "skipped": []}
    loaded = save_and_load(engine, tmp_path / "model")
    assert loaded.similar("tool-4", k=5) == engine.similar("tool-4", k=5)
    assert loaded.upsert([{"id": "tool-4", "title": "Blue hammer 4", "description": "now with a red handle", "price": 8}]) \
        == Upserted(updated=("tool-4",))  # the hashes came back: unchanged content is not encoded again


def test_readers_never_see_half_an_upsert(engine: Engine) -> None:
    """Two items change together, fields and vectors: every snapshot a reader takes has both or neither."""
    stop, seen, errors = threading.Event(), set(), []

    def read() -> None:
        while not stop.is_set():
            state = engine.state
            try:
                prices = {state.catalog.fields(state.catalog.row(i))["price"] for i in ("fruit-0", "tool-0")}
                titles = {state.catalog.fields(state.catalog.row(i))["title"] for i in ("fruit-0", "tool-0")}
                assert len(prices) == 1 and len(titles) == 1, (prices, titles)
                assert set(state.index.ids) == set(state.hashes) == set(state.catalog.ids)
                seen.add(prices.pop())
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    engine.upsert([{"id": i, "title": "Thing", "price": 0.0} for i in ("fruit-0", "tool-0")])
    readers = [threading.Thread(target=read) for _ in range(2)]
    for r in readers:
        r.start()
    for n in range(20):
        title = f"Thing {n % 3}"  # every few rounds the text changes too: vectors are replaced
        engine.upsert([{"id": i, "title": title, "price": float(n)} for i in ("fruit-0", "tool-0")])
    stop.set()
    for r in readers:
        r.join()
    assert errors == [] and len(seen) > 1


# ----- events -------------------------------------------------------------------------------------
def test_log_events_records_now_when_no_time_is_given_and_round_trips(engine: Engine, tmp_path: Path) -> None:
    assert engine.log_events([]) == 0 and len(engine.events) == 0
    start = int(time.time())
    assert engine.log_events([{"user_id": 42, "item_id": "fruit-0"}, {"user_id": "42", "item_id": " tool-1 ", "weight": 2}]) == 2
    frame = engine.events.frame
    assert frame["user_id"].tolist() == ["42", "42"] and frame["item_id"].tolist() == ["fruit-0", "tool-1"]
    assert start <= frame["timestamp"].min() <= time.time() and frame["weight"].tolist() == [1.0, 2.0]
    assert engine.log_events(pd.DataFrame({"user_id": ["u2"], "item_id": ["tool-0"], "timestamp": ["2024-05-01"]})) == 1
    log = Interactions(pd.DataFrame({"user_id": ["u3"], "item_id": ["fruit-2"], "timestamp": [1714521600]}))
    assert engine.log_events(log) == 1
    assert engine.events.history_of("42") == ["fruit-0", "tool-1"] and len(engine.events) == 4
    assert engine.personaliser.events is engine.events
    loaded = save_and_load(engine, tmp_path / "model")
    assert (model_folder(tmp_path / "model") / "events.parquet").is_file()
    pd.testing.assert_frame_equal(loaded.events.frame, engine.events.frame)
    assert len(loaded.events.to_interactions()) == 4  # what `shopvec fit` trains on


def test_log_events_with_an_unknown_item_records_nothing(engine: Engine, tmp_path: Path) -> None:
    engine.log_events([{"user_id": "u1", "item_id": "fruit-0"}])
    before = engine.state
    with pytest.raises(UnknownItemError, match=r"events name item\(s\) not in the catalog \(10 items\): 'sku-9', 'sku-8'"):
        engine.log_events([{"user_id": "u1", "item_id": "fruit-1"}, {"user_id": "u1", "item_id": "sku-9"},
                           {"user_id": "u2", "item_id": "sku-8"}])
    assert engine.state is before and len(engine.events) == 1
    fresh = Engine.build(engine.catalog, fake_config(), show_progress=False)
    fresh.save(tmp_path / "no-events")
    assert not (model_folder(tmp_path / "no-events") / "events.parquet").exists()
    assert len(Engine.load(tmp_path / "no-events").events) == 0


def test_re_indexing_a_model_folder_keeps_its_recorded_events(tmp_path: Path) -> None:
    from engine.indexing import index_catalog

    catalog = make_toy_catalog(tmp_path)
    engine, _ = index_catalog(catalog, tmp_path / "model", fake_config(), show_progress=False)
    engine.log_events([{"user_id": "u1", "item_id": "fruit-0", "timestamp": 1714521600}])
    engine.save(tmp_path / "model")
    again, report = index_catalog(catalog, tmp_path / "model", fake_config(), show_progress=False)
    assert report.reused == 10 and again.events.history_of("u1") == ["fruit-0"]
    assert Engine.load(tmp_path / "model").events.history_of("u1") == ["fruit-0"]


# ----- model folders: portable and readable ------------------------------------------------------
def test_a_saved_folder_holds_no_absolute_path_and_moves_with_its_catalog(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "outside.png").write_bytes(b"broken")  # a skip reason that names a path
    engine.upsert([{"id": "odd", "title": "Odd one", "image": "outside.png"}])
    engine.log_events([{"user_id": "u1", "item_id": "fruit-0"}])
    engine.fit(engine.events.to_interactions(), "popularity", show_progress=False)
    engine.save(tmp_path / "model")
    for path in (tmp_path / "model").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert str(tmp_path).encode() not in data and os.path.realpath(tmp_path).encode() not in data, path
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    shutil.copytree(tmp_path, moved)
    try:
        loaded = Engine.load(moved / "model")
        assert loaded.catalog.base_dir == Path(os.path.realpath(moved))
        assert loaded.catalog.image_path(0) == Path(os.path.realpath(moved)) / "f0.png"
        assert loaded.similar("fruit-0", k=3) == [type(m)(m.item_id, m.score, {**m.fields, "image": m.fields["image"].replace(
            str(tmp_path), os.path.realpath(moved))}, m.source) for m in engine.similar("fruit-0", k=3)]
        # The moved image files are found and hash the same: nothing to re-encode.
        assert loaded.upsert([{**loaded.catalog.fields(0), "image": "f0.png"}]) == Upserted()
    finally:
        shutil.rmtree(moved)


@pytest.mark.parametrize("umask, dirs, files", [(0o002, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_model_folders_are_readable_by_other_users_within_the_umask(engine: Engine, tmp_path: Path,
                                                                    umask: int, dirs: int, files: int) -> None:
    engine.log_events([{"user_id": "u1", "item_id": "fruit-0"}])
    engine.fit(engine.events.to_interactions(), "popularity", show_progress=False)
    old = os.umask(umask)
    try:
        engine.save(tmp_path / "model")
    finally:
        os.umask(old)
    entries = [tmp_path / "model", *(tmp_path / "model").rglob("*")]
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in entries}
    assert {m for p, m in modes.items() if (tmp_path / p).is_dir()} == {dirs}
    assert {m for p, m in modes.items() if (tmp_path / p).is_file()} == {files}, modes


# ----- images as file objects ---------------------------------------------------------------------
def test_search_takes_a_binary_file_object_and_refuses_a_text_one(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "t3.png"
    by_path = engine.search(image=path, k=3)
    with open(path, "rb") as fh:
        assert engine.search(image=fh, k=3) == by_path
    assert engine.search(image=io.BytesIO(path.read_bytes()), k=3) == by_path
    with open(path, encoding="latin-1") as fh, pytest.raises(InvalidArgumentError, match=r"opened in text mode .*open it with 'rb'"):
        engine.search(image=fh)
    with pytest.raises(ImageError, match=r"image file object BytesIO holds over 10 bytes"):
        load_image(io.BytesIO(path.read_bytes()), limits=ImageLimits(max_bytes=10))
    with pytest.raises(ImageError, match=r"cannot decode image file object BytesIO \(3 bytes\)"):
        load_image(io.BytesIO(b"abc"))


def test_update_changes_only_the_named_fields_without_encoding(tmp_path: Path) -> None:
    engine = Engine.build(Catalog.from_file(make_toy_catalog(tmp_path)), fake_config(), show_progress=False)
    before = engine.catalog.fields(engine.catalog.row("fruit-0"))
    vector = engine.item_vector("fruit-0")
    done = engine.update([{"id": "fruit-0", "price": 9.5}])
    after = engine.catalog.fields(engine.catalog.row("fruit-0"))
    assert done.updated == ("fruit-0",) and done.reencoded == () and done.added == ()
    assert after == {**before, "price": 9.5}
    np.testing.assert_array_equal(engine.item_vector("fruit-0"), vector)
    assert engine.update([{"id": "fruit-0", "title": "A new title"}]).reencoded == ("fruit-0",)
    with pytest.raises(UnknownItemError, match="'sku-9' is not in the catalog"):
        engine.update([{"id": "sku-9", "price": 1.0}])
    with pytest.raises(InvalidArgumentError, match="has no id field"):
        engine.update([{"price": 1.0}])


def test_derived_catalogs_carry_their_records_and_they_equal_fresh_ones(tmp_path: Path) -> None:
    catalog = Catalog.from_file(make_toy_catalog(tmp_path))
    [catalog.fields(r) for r in range(len(catalog))]  # built, so the derived catalogs take them over
    new = Catalog.from_records([{"id": "new-1", "title": "Green pear", "price": 2}], base_dir=tmp_path)
    changed = Catalog.from_records([{"id": "tool-2", "title": "Red hammer", "price": 11.5}], base_dir=tmp_path)
    derived = {
        "concat": catalog.concat(new),
        "without": catalog.without(["fruit-1", "tool-3"]),
        "upserted": catalog.upserted(changed),
        "chain": catalog.concat(new).without(["fruit-0"]).upserted(changed),
    }
    for name, got in derived.items():
        fresh = Catalog.from_normalised(got.frame, got.base_dir, got.source)
        rows = range(len(got))
        assert [got.fields(r) for r in rows] == [fresh.fields(r) for r in rows], name
    assert derived["upserted"].fields(derived["upserted"].row("tool-2"))["title"] == "Red hammer"
