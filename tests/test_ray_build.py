"""Indexing on a local Ray cluster equals indexing on one machine (`engine.distributed`, `shopvec index --ray`).

One local cluster (2 CPUs, no dashboard, 200 MB object store) serves the whole module and
is shut down at the end. The catalog is 20 sample items with their images, one text-only
item and one item whose image is broken, encoded with the real encoders on torch, once on
Ray through the CLI and once by `index_catalog`; the tests compare the two. Torch, not the
default runtime: OpenVINO's bfloat16 kernels give vectors that move with the batch an item
falls in (cosine ~0.999), and Ray's batches are not `index_catalog`'s, so only an fp32
runtime lets "equal to the single-machine build" be checked to 2e-5.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray  # the dev extra installs ray[data] (pyproject.toml)

from cli.main import main  # noqa: E402
from encoders.config import EncoderConfig  # noqa: E402
from engine import Engine  # noqa: E402
from engine.config import EngineConfig  # noqa: E402
from engine.distributed import ClusterConfig, ClusterError, import_ray, ray_session  # noqa: E402
from engine.indexing import index_catalog  # noqa: E402
from engine.ivf_shards import IvfPlan, build_ivf_locally, build_ivf_on_ray, shard_of  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_catalog" / "items.csv"
CONFIG = EngineConfig(encoders=EncoderConfig(num_workers=0, runtime="torch"))  # what the CLI flags below give
CLI_ENCODERS = ["--index", "flat", "--num-workers", "0", "--runtime", "torch"]


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("catalog")
    (folder / "images").mkdir()
    frame = pd.read_csv(SAMPLE).iloc[::24].head(20).reset_index(drop=True)  # 20 items across the categories
    for name in frame["image"]:
        shutil.copy(SAMPLE.parent / name, folder / name)
    (folder / "images" / "broken.png").write_bytes(b"this is not a PNG")
    extra = pd.DataFrame([
        {"id": "broken-photo", "title": "Broken", "description": "Its photo is not an image.", "image": "images/broken.png"},
        {"id": "text-only", "title": "Red apple", "description": "A crisp red apple, words only."},
    ])
    pd.concat([frame, extra], ignore_index=True).to_csv(folder / "items.csv", index=False)
    return folder / "items.csv"


@pytest.fixture(scope="module")
def cluster() -> object:
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024, logging_level="warning")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def single(catalog_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    from index.config import IndexConfig

    config = EngineConfig(encoders=CONFIG.encoders, index=IndexConfig(kind="flat"))
    out = tmp_path_factory.mktemp("single") / "model"
    index_catalog(catalog_file, out, config, show_progress=False)
    return Engine.load(out)  # as saved: skip reasons name files relative to the catalog folder


@pytest.fixture(scope="module")
def ray_built(cluster: object, catalog_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`shopvec index --ray local --index ivf` into a fresh folder: the folder and what the command printed.

    An IVF index, so the merged shards are the folder's index: with 21 items it has one list,
    so its searches are exact and compare with the single-machine Flat index.
    """
    out = tmp_path_factory.mktemp("ray") / "model"
    import io
    from contextlib import redirect_stdout

    printed = io.StringIO()
    with redirect_stdout(printed):
        code = main(["index", str(catalog_file), "--out", str(out), "--ray", "local", "--ray-actors", "2",
                     "--ray-shards", "2", "--quiet", *CLI_ENCODERS, "--index", "ivf"])
    assert code == 0, printed.getvalue()
    return out, printed.getvalue()


def test_an_unreachable_cluster_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--ray auto` with no cluster running. First in the file: before this module starts its local cluster."""
    assert not ray.is_initialized(), "this test must run before the module's cluster fixture"
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ClusterError, match=r"cannot connect to the Ray cluster at 'auto': .*ray start --head"):
        with ray_session(ClusterConfig(address="auto")):
            pass
    assert not ray.is_initialized()


def test_ray_build_has_the_single_machine_ids_vectors_and_hashes(ray_built: tuple[Path, str], single: Engine) -> None:
    engine = Engine.load(ray_built[0])
    assert engine.index.ids == single.index.ids  # same items, catalog order
    np.testing.assert_allclose(engine.index.vectors(single.index.ids), single.index.vectors(single.index.ids),
                               atol=2e-5)
    assert dict(engine.state.hashes) == dict(single.state.hashes)  # a later single-machine run reuses these vectors
    assert engine.catalog.ids == single.catalog.ids


def test_a_broken_image_is_skipped_with_its_reason_and_the_rest_indexed(ray_built: tuple[Path, str], single: Engine) -> None:
    out, printed = ray_built
    engine = Engine.load(out)
    assert [s.item_id for s in engine.skipped] == ["broken-photo"]
    assert engine.skipped == single.skipped  # the same reason, word for word
    assert "cannot decode image file" in engine.skipped[0].reason
    assert "broken-photo" not in engine.index and "text-only" in engine.index
    assert re.search(r"skipped +: 1\n +broken-photo: cannot decode image", printed)
    assert re.search(r"indexed +: 21\n", printed) and "IVF shards    : 2 merged into IVF" in printed


def test_engine_loaded_from_the_ray_folder_answers_like_the_single_machine_one(
    ray_built: tuple[Path, str], single: Engine
) -> None:
    engine = Engine.load(ray_built[0])
    assert engine.index.structure == "ivf" and single.index.structure == "flat"
    for item in single.index.ids[::3]:
        ours, theirs = engine.similar(item, k=5), single.similar(item, k=5)
        assert [m.item_id for m in ours] == [m.item_id for m in theirs]
        np.testing.assert_allclose([m.score for m in ours], [m.score for m in theirs], atol=1e-4)


def test_merged_ivf_shards_search_like_one_ivf_with_the_same_quantiser(cluster: object) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 32))
    vectors = (centres[rng.integers(0, 12, 1500)] + 0.3 * rng.normal(size=(1500, 32))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"sku-{i}" for i in range(len(vectors))]
    plan = IvfPlan(shards=3, lists=16, train_rows=600, seed=0)
    assert np.bincount(shard_of(ids, 3), minlength=3).min() > 400  # every shard holds a real part
    merged, single = build_ivf_on_ray(ids, vectors, plan), build_ivf_locally(ids, vectors, plan)
    assert merged.ntotal == single.ntotal == len(ids)
    for nprobe in (2, 16):  # few lists (approximate) and all lists (exhaustive)
        merged.nprobe = single.nprobe = nprobe
        d_merged, i_merged = merged.search(vectors[:100], 10)
        d_single, i_single = single.search(vectors[:100], 10)
        np.testing.assert_array_equal(i_merged, i_single)
        np.testing.assert_allclose(d_merged, d_single, atol=1e-6)


def test_python_api_returns_the_merged_ivf_of_every_indexed_item(
    cluster: object, catalog_file: Path, tmp_path: Path
) -> None:
    text_only = pd.read_csv(catalog_file).drop(columns=["image"]).head(8)
    text_only.to_csv(tmp_path / "text.csv", index=False)
    from engine.distributed import build_on_ray

    config = EngineConfig(encoders=EncoderConfig(image=None))
    build = build_on_ray(tmp_path / "text.csv", tmp_path / "model", config, show_progress=False,
                         cluster=ClusterConfig(num_actors=1, batch_size=3, shards=2, ivf_lists=2))
    assert build.ivf.ntotal == len(build.engine.index) == 8 and build.ivf.nlist == 2
    build.ivf.nprobe = 2
    vectors = build.engine.index.vectors(build.engine.last_build.ids)
    _, labels = build.ivf.search(vectors[:4], 1)
    assert labels[:, 0].tolist() == [0, 1, 2, 3]  # label i is last_build.ids[i]: each finds itself
    assert build.report.cluster == "the running Ray session" and build.report.actors == 1


def test_an_ivf_index_is_the_merged_shards_tuned_saved_and_equal_to_one_machines(
    cluster: object, tmp_path: Path
) -> None:
    """kind "auto" past its IVF threshold: the folder's index is the merged IVF, tuned like one machine's."""
    from engine.distributed import build_on_ray
    from index import create_index
    from index.config import IndexConfig

    pd.read_csv(SAMPLE).drop(columns=["image"]).head(200).to_csv(tmp_path / "text.csv", index=False)
    index_config = IndexConfig(kind="auto", hnsw_threshold=50, ivf_threshold=100, tune_queries=50)
    config = EngineConfig(encoders=EncoderConfig(image=None), index=index_config)
    build = build_on_ray(tmp_path / "text.csv", tmp_path / "model", config, show_progress=False,
                         cluster=ClusterConfig(num_actors=1, shards=2))  # one actor: its start-up bounds the test
    index = build.engine.index
    assert index.structure == "ivf" and index.tuning is not None and index._faiss is build.ivf  # noqa: SLF001
    assert "(the folder's index)" in build.report.ivf and build.report.index_type == index.describe()
    ids = index.ids
    assert ids == build.engine.last_build.ids and len(ids) == 200 and build.ivf.nlist == 5
    vectors = index.vectors(ids)
    single = create_index(vectors.shape[1], index_config)  # one machine: the same vectors added at once
    single.add(ids, vectors)
    assert single.structure == "ivf" and single.tuning == index.tuning  # same nprobe, same measured recall
    assert build.ivf.nlist == single._faiss.nlist  # noqa: SLF001
    queries = vectors[::7]
    loaded = Engine.load(tmp_path / "model")
    assert loaded.index.structure == "ivf" and loaded.index.describe() == index.describe()
    for searched in (index, loaded.index):
        scores, found = searched.search(queries, k=10)
        s_scores, s_found = single.search(queries, k=10)
        np.testing.assert_array_equal(found, s_found)
        np.testing.assert_allclose(scores, s_scores, atol=1e-6)
    item = ids[5]
    assert [m.item_id for m in loaded.similar(item, k=5)] == [m.item_id for m in build.engine.similar(item, k=5)]


def test_an_aligned_pq_ivf_built_on_ray_is_the_single_machine_one(cluster: object, tmp_path: Path) -> None:
    """Images and text, so the alignment is fitted before the shards are filled, and IVF with PQ codes.

    90 items with a photo and a text and 8 with text only (their image slot is predicted), kind
    "auto" past its IVF threshold with `ivf_codes="pq"`: the Ray folder's index is the merged
    IVF-PQ over the aligned vectors, tuned as one machine tunes it, and its alignment and vectors
    are the single-machine build's.
    """
    from encoders.alignment import AlignmentConfig
    from engine.distributed import build_on_ray
    from index import create_index
    from index.config import IndexConfig

    (tmp_path / "images").mkdir()
    frame = pd.read_csv(SAMPLE).iloc[::3].head(98).reset_index(drop=True)
    for name in frame["image"]:
        shutil.copy(SAMPLE.parent / name, tmp_path / name)
    frame.loc[90:, "image"] = None  # the last 8: text only
    frame.to_csv(tmp_path / "items.csv", index=False)
    index_config = IndexConfig(kind="auto", hnsw_threshold=20, ivf_threshold=40, ivf_codes="pq", tune_queries=16)
    config = EngineConfig(encoders=CONFIG.encoders, index=index_config, alignment=AlignmentConfig(min_pairs=20))
    build = build_on_ray(tmp_path / "items.csv", tmp_path / "ray", config, show_progress=False,
                         cluster=ClusterConfig(num_actors=1, shards=2))
    single, _ = index_catalog(tmp_path / "items.csv", tmp_path / "single", config, show_progress=False)

    index, fitted = build.engine.index, build.engine.state.fitted
    assert fitted is not None and fitted.alignment is not None
    assert fitted.describe() == single.state.fitted.describe() == (
        "aligned on 90 items with image and text; 8 items have a predicted slot")
    assert dict(fitted.predicted) == dict(single.state.fitted.predicted) == {i: "image" for i in frame["id"][90:]}
    assert build.report.ivf == "IVF2,PQ of 98 vectors (the folder's index)" and index._faiss is build.ivf  # noqa: SLF001
    assert index.structure == single.index.structure == "ivf" and index.tuning.value == single.index.tuning.value
    ids = index.ids
    assert ids == single.index.ids
    vectors = index.vectors(ids)
    np.testing.assert_allclose(vectors, single.index.vectors(ids), atol=1e-4)  # aligned, completed: as one machine's
    one_machine = create_index(vectors.shape[1], index_config)  # the Ray build's vectors added at once
    one_machine.add(ids, vectors)
    assert one_machine.structure == "ivf" and one_machine.tuning == index.tuning
    loaded = Engine.load(tmp_path / "ray")
    assert loaded.index.describe() == index.describe() and dict(loaded.state.fitted.predicted) == dict(fitted.predicted)
    for searched in (index, loaded.index):
        scores, found = searched.search(vectors[::5], k=10)
        s_scores, s_found = one_machine.search(vectors[::5], k=10)
        np.testing.assert_array_equal(found, s_found)
        np.testing.assert_allclose(scores, s_scores, atol=1e-6)


def test_bad_addresses_and_settings_are_refused_with_what_is_expected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"ClusterConfig.address 'not an address' is not a Ray address; expected "
                                         r"'local', 'auto', 'ray://HOST:PORT' or 'HOST:PORT'"):
        ClusterConfig(address="not an address")
    with pytest.raises(ValueError, match=r"ClusterConfig.num_actors must be an integer >= 1, got 0"):
        ClusterConfig(num_actors=0)
    with pytest.raises(ValueError, match=r"cpus_per_actor must be a number > 0, got -1"):
        ClusterConfig(cpus_per_actor=-1)
    code = main(["index", str(SAMPLE), "--out", "unused", "--ray", "nowhere"])
    assert code == 2 and "error: ClusterConfig.address 'nowhere' is not a Ray address" in capsys.readouterr().err


def test_without_ray_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ClusterError, match=r"install it with pip install 'shopvec\[cluster\]'"):
        import_ray()


def test_help_shows_the_cluster_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    defaults = ClusterConfig()
    assert f"encoder actors (default: {defaults.num_actors})" in text
    assert f"built in parallel, then merged (default: {defaults.shards})" in text


def test_bench_ray_quick_prints_each_row_then_the_table(cluster: object, capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks import bench_ray

    assert bench_ray.main(["--quick", "--actors", "1"]) == 0  # one Ray build: the test is bounded by actor start-up
    out = capsys.readouterr().out
    rows = re.findall(r"^(index_catalog|ray, \d actor\(s\)) +16 +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+)$", out, re.M)
    assert [r[0] for r in rows] == ["index_catalog", "ray, 1 actor(s)"] * 2  # as measured, then in the table
    baseline = float(rows[0][2])
    for _, total, rate, _, ratio in rows[:2]:
        assert float(rate) == pytest.approx(16 / float(total), rel=0.03, abs=0.01)
        assert float(ratio) == pytest.approx(float(rate) / baseline, rel=0.02, abs=0.01)
