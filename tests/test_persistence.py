"""Model folders: versions, refusing what is not ours, and loads that check every part.

Damage is planted in a saved folder; where a test is about a check behind the digests
(a pickle, NaN vectors, ids that disagree), the manifests are re-sealed with the damage
so that only that check can catch it.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import fake_config, make_toy_catalog
from test_scripts import FAKE, load_script

from core.errors import EngineError, FormatVersionError, UnknownComponentError
from core.integrity import check_npy, describe_files
from core.persistence import (
    CURRENT,
    DamagedModelError,
    ModelFolderError,
    ModelNotFoundError,
    model_folder,
    read_manifest,
)
from engine import Catalog, Engine
from engine.interactions import Interactions
from index import IndexConfig, create_index, load_index
from recommenders import load_model

LOCK, MARKER = ".shopvec.lock", ".shopvec-version"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The toy catalog, indexed, with a trained popularity model (so the folder has nested parts two deep)."""
    folder = tmp_path_factory.mktemp("catalog")
    engine = Engine.build(Catalog.from_file(make_toy_catalog(folder)), fake_config(), show_progress=False)
    log = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["fruit-0", "fruit-1", "tool-0", "fruit-2"],
                        "timestamp": [1, 2, 3, 4]})
    return engine.fit(Interactions(log), "popularity", show_progress=False)


@pytest.fixture
def saved(engine: Engine, tmp_path: Path) -> Path:
    engine.save(tmp_path / "model")
    return tmp_path / "model"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def reseal(path: Path) -> None:
    """Rewrite every manifest's file list (deepest first), as if the damage had been saved."""
    for manifest in sorted(model_folder(path).rglob("manifest.json"), key=lambda p: -len(p.parts)):
        data = json.loads(manifest.read_text())
        data["files"] = describe_files(manifest.parent, skip={"manifest.json", MARKER})
        manifest.write_text(json.dumps(data))


class Bomb:
    """Creates the file `canary` when unpickled."""

    def __init__(self, canary: Path) -> None:
        self.canary = str(canary)

    def __reduce__(self):
        return (open, (self.canary, "w"))


# ----- layout --------------------------------------------------------------------------
def test_a_save_publishes_one_version_and_nested_parts_get_no_pointer(saved: Path) -> None:
    version = model_folder(saved)
    assert sorted(p.name for p in saved.iterdir()) == sorted([CURRENT, LOCK, version.name])
    assert json.loads((saved / CURRENT).read_text()) == {"writer": "shopvec", "version": version.name, "previous": None}
    for part in ("index", "personaliser", "personaliser/model"):
        assert (version / part / "manifest.json").is_file() and not (version / part / CURRENT).exists()
    manifest = read_manifest(saved, "engine")
    assert manifest["writer"] == "shopvec" and "index/manifest.json" in manifest["files"]
    assert "index/vectors.npy" not in manifest["files"]  # listed, with its digest, by index/manifest.json


def test_saves_keep_the_current_and_the_previous_version(engine: Engine, saved: Path) -> None:
    first = model_folder(saved).name
    engine.save(saved)
    second = model_folder(saved).name
    engine.save(saved)
    third = model_folder(saved).name
    assert sorted(p.name for p in saved.iterdir()) == sorted([CURRENT, LOCK, second, third])
    assert json.loads((saved / CURRENT).read_text())["previous"] == second and not (saved / first).exists()
    assert Engine.load(saved).similar("fruit-0", k=3) == engine.similar("fruit-0", k=3)


def test_standalone_index_and_model_saves_are_versioned_too(engine: Engine, tmp_path: Path) -> None:
    index = create_index(4, IndexConfig(kind="numpy"))
    index.add(["a", "b"], np.eye(2, 4, dtype=np.float32))
    for _ in range(3):
        index.save(tmp_path / "idx")
        engine.trained.model.save(tmp_path / "model")
    for folder in (tmp_path / "idx", tmp_path / "model"):
        assert len([p for p in folder.iterdir() if p.name.startswith("v-")]) == 2 and (folder / CURRENT).is_file()
    assert load_index(model_folder(tmp_path / "idx")).ids == ["a", "b"]
    assert load_model(tmp_path / "model").score([0]).shape == engine.trained.model.score([0]).shape


def test_leftovers_of_interrupted_saves_go_but_unmarked_folders_and_user_files_stay(engine: Engine, saved: Path) -> None:
    abandoned, empty, unmarked = saved / "v-7-deadbeef", saved / "v-8-00000000", saved / "v-9-11111111"
    abandoned.mkdir()
    (abandoned / MARKER).write_text("shopvec model version\n")
    (abandoned / "catalog.parquet").write_bytes(b"half written")
    empty.mkdir()
    unmarked.mkdir()
    (unmarked / "keep.txt").write_text("not ours")
    (saved / "notes.txt").write_text("the user's")
    engine.save(saved)
    names = {p.name for p in saved.iterdir()}
    assert not {abandoned.name, empty.name} & names
    assert {unmarked.name, "notes.txt"} <= names and (unmarked / "keep.txt").read_text() == "not ours"


def test_the_layout_before_versions_loads_and_the_next_save_converts_it(engine: Engine, saved: Path, tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    model_folder(saved).rename(legacy)
    (legacy / MARKER).unlink()
    for manifest in legacy.rglob("manifest.json"):
        data = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({k: v for k, v in data.items() if k not in ("writer", "files")}))
    assert Engine.load(legacy).similar("tool-1", k=2) == engine.similar("tool-1", k=2)
    engine.save(legacy)
    assert sorted(p.name for p in legacy.iterdir()) == sorted([CURRENT, LOCK, model_folder(legacy).name])
    assert Engine.load(legacy).trained is not None


# ----- never touching what is not ours ---------------------------------------------
def test_save_onto_a_file_refuses_and_keeps_it(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.write_bytes(b"my notes")
    with pytest.raises(ModelFolderError, match=r"refusing to save to '.*model': it is a file, not a model folder"):
        engine.save(target)
    assert target.read_bytes() == b"my notes" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_save_onto_a_catalog_folder_refuses_and_deletes_nothing(engine: Engine, tmp_path: Path, capsys) -> None:
    shop = tmp_path / "shop"
    shop.mkdir()
    make_toy_catalog(shop)
    before = snapshot(shop)
    with pytest.raises(ModelFolderError, match=r"'.*shop': it is not a model folder of shopvec \(it holds f0\.png"):
        engine.save(shop)
    assert load_script("index_catalog").main([str(shop / "items.csv"), "--out", str(shop), *FAKE]) == 2
    err = capsys.readouterr().err
    assert "refusing to save to" in err and "nothing was changed" in err
    assert snapshot(shop) == before and sorted(p.name for p in tmp_path.iterdir()) == ["shop"]


def test_save_onto_a_folder_with_a_foreign_manifest_refuses(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "app"
    target.mkdir()
    (target / "manifest.json").write_text('{"name": "my web app", "icons": []}')
    with pytest.raises(ModelFolderError, match=r"it holds manifest\.json\); nothing was changed"):
        engine.save(target)
    assert snapshot(target) == {"manifest.json": b'{"name": "my web app", "icons": []}'}


def test_save_into_an_empty_folder_works(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    engine.save(tmp_path / "empty")
    assert Engine.load(tmp_path / "empty").trained is not None


def test_index_catalog_re_encodes_onto_a_damaged_model_folder(engine: Engine, tmp_path: Path, capsys) -> None:
    catalog = make_toy_catalog(tmp_path)
    out = tmp_path / "model"
    script = load_script("index_catalog")
    assert script.main([str(catalog), "--out", str(out), *FAKE]) == 0
    (model_folder(out) / "index" / "vectors.npy").unlink()
    capsys.readouterr()
    assert script.main([str(catalog), "--out", str(out), *FAKE]) == 0
    assert "indexed       : 10 (10 encoded, 0 unchanged and reused)" in capsys.readouterr().out
    assert len(Engine.load(out).similar("fruit-0", k=3)) == 3


# ----- loads check what they read ------------------------------------------------------
def test_loading_nothing_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no model at '.*nope': it does not exist"):
        Engine.load(tmp_path / "nope")
    aside = tmp_path / ".nope.old-k2_9x0ab"  # where saves of earlier releases left a model when killed mid-rename
    aside.mkdir()
    (aside / "manifest.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"left model\(s\) in .*\.nope\.old-k2_9x0ab: rename one to '.*nope'"):
        Engine.load(tmp_path / "nope")
    (tmp_path / "v-1-0000abcd").mkdir()
    with pytest.raises(FileNotFoundError, match=r"it has no CURRENT and no manifest\.json \(the save that left v-1-0000abcd"):
        Engine.load(tmp_path)


@pytest.mark.parametrize(
    ("part", "damage", "message"),
    [
        ("catalog.parquet", lambda p: p.unlink(), r"catalog\.parquet' is missing; the manifest lists it"),
        ("index/vectors.npy", lambda p: p.write_bytes(p.read_bytes()[:-8]), r"vectors\.npy' has [\d,]+ bytes; the manifest says [\d,]+ \(truncated or overwritten\)"),
        ("index/index.faiss", lambda p: p.write_bytes(np.random.default_rng(0).bytes(p.stat().st_size)),
         r"index\.faiss' has other contents than were saved"),
        ("personaliser/model/weights.safetensors", lambda p: p.write_bytes(p.read_bytes() + b"\0"),
         r"weights\.safetensors' has \d+ bytes; the manifest says"),
        ("skipped.json", lambda p: p.write_text("{}"), r"skipped\.json' has other contents"),
    ],
)
def test_a_damaged_part_is_named(saved: Path, part: str, damage, message: str) -> None:
    damage(model_folder(saved) / part)
    with pytest.raises(DamagedModelError, match=message):
        Engine.load(saved)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("{not json", DamagedModelError, r"manifest\.json' is not valid JSON"),
        ("[1, 2]", DamagedModelError, r"manifest\.json' holds a JSON list; expected an object"),
        ('{"format_version": 1, "kind": "vector_index"}', FormatVersionError, r"holds a 'vector_index', expected a 'engine'"),
        ('{"format_version": 2, "kind": "engine"}', FormatVersionError, r"has format version 2; this library reads version 1"),
    ],
)
def test_a_bad_manifest_is_refused(saved: Path, text: str, error: type, message: str) -> None:
    (model_folder(saved) / "manifest.json").write_text(text)
    with pytest.raises(error, match=message):
        Engine.load(saved)


def test_unknown_config_fields_and_a_damaged_pointer_are_refused(saved: Path) -> None:
    manifest = model_folder(saved) / "manifest.json"
    data = json.loads(manifest.read_text())
    data["config"]["index"]["colour"] = "red"
    manifest.write_text(json.dumps(data))
    with pytest.raises(DamagedModelError, match=r"manifest\.json' holds a config this library cannot use: .*colour"):
        Engine.load(saved)
    (saved / CURRENT).write_text("v-1-../../etc")
    with pytest.raises(DamagedModelError, match=r"CURRENT' is damaged: expected"):
        Engine.load(saved)


def test_a_npy_header_claiming_a_terabyte_is_refused_before_allocating(saved: Path) -> None:
    vectors = model_folder(saved) / "index" / "vectors.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**12, 76)}
    with open(vectors, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\0" * 64)
    reseal(saved)
    start = time.perf_counter()
    with pytest.raises(DamagedModelError, match=r"vectors\.npy' has 192 bytes, but its header claims a float32 array "
                                                 r"of shape \(1000000000000, 76\) \(304,000,000,000,128 bytes\)"):
        Engine.load(saved)
    assert time.perf_counter() - start < 5
    with pytest.raises(DamagedModelError, match="not a readable .npy array"):
        vectors.write_bytes(b"\x93NUMPY garbage")
        check_npy(vectors)


def _rewrite_npy(path: Path, change) -> None:
    array = np.load(path, allow_pickle=False)
    np.save(path, change(array.copy()))


def _set(array: np.ndarray, index, value) -> np.ndarray:
    array[index] = value
    return array


def _rewrite_parquet(path: Path, column: str, row: int, value: object) -> None:
    frame = pd.read_parquet(path)
    frame.loc[row, column] = value
    frame.to_parquet(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda v: _rewrite_npy(v / "index/vectors.npy", lambda a: _set(a, (3, 0), np.nan)),
         r"index' holds a vector with NaN or infinity, for item 'fruit-3'"),
        (lambda v: _rewrite_npy(v / "index/ids.npy", lambda a: _set(a, 1, a[0])), r"'fruit-0'"),
        (lambda v: _rewrite_npy(v / "index/ids.npy", lambda a: _set(a, 0, "ghost")),
         r"index' names 1 item\(s\) missing from catalog\.parquet, e\.g\. 'ghost'"),
        (lambda v: _rewrite_parquet(v / "catalog.parquet", "id", 1, "fruit-0"), r"catalog\.parquet' holds item id 'fruit-0' more than once"),
        (lambda v: _rewrite_parquet(v / "hashes.parquet", "id", 0, "ghost"), r"hashes\.parquet' names 1 item\(s\) missing"),
        (lambda v: (v / "skipped.json").write_text('[["ghost", "no image"]]'), r"skipped\.json' names 1 item\(s\) missing"),
        (lambda v: _rewrite_parquet(v / "personaliser/history.parquet", "item_id", 0, "ghost"),
         r"history\.parquet' names item_id 'ghost', which the model's vocabulary does not hold"),
        (lambda v: _rewrite_npy(v / "personaliser/users.npy", lambda a: a[:-1]), r"users\.npy' holds .*expected 3 ids"),
    ],
)
def test_parts_that_disagree_are_refused(saved: Path, damage, message: str) -> None:
    damage(model_folder(saved))
    reseal(saved)
    with pytest.raises(DamagedModelError, match=message):
        Engine.load(saved)


# ----- nothing is ever unpickled or imported from a folder -------------------------------
@pytest.mark.parametrize(
    "part", ["index/ids.npy", "index/vectors.npy", "personaliser/items.npy", "personaliser/model/weights.safetensors",
             "catalog.parquet", "index/index.faiss", "skipped.json"],
)
def test_a_pickle_in_any_part_is_never_unpickled(saved: Path, tmp_path: Path, part: str) -> None:
    canary = tmp_path / "canary"
    path = model_folder(saved) / part
    if path.suffix == ".npy":  # a real .npy of Python objects, as np.save(allow_pickle=True) writes it
        with open(path, "wb") as fh:
            np.save(fh, np.array([Bomb(canary)], dtype=object), allow_pickle=True)
        assert np.load(path, allow_pickle=True) is not None and canary.exists()  # the bomb works...
        canary.unlink()
    else:  # a .pkl renamed
        path.write_bytes(pickle.dumps(Bomb(canary)))
    reseal(saved)
    with pytest.raises(EngineError):
        Engine.load(saved)
    assert not canary.exists()  # ...and loading never set it off


def test_names_in_manifests_only_pick_from_the_registries(saved: Path) -> None:
    version = model_folder(saved)
    for part, key, error, message in (
        ("index", "backend", FormatVersionError, r"holds an index of backend 'os:system'; known backends: faiss, numpy"),
        ("personaliser/model", "model", UnknownComponentError, r"unknown model 'os:system'; valid names: als"),
    ):
        manifest = version / part / "manifest.json"
        original = manifest.read_text()
        manifest.write_text(json.dumps({**json.loads(original), key: "os:system"}))
        reseal(saved)
        with pytest.raises(error, match=message):
            Engine.load(saved)
        manifest.write_text(original)
        reseal(saved)
