"""Same-category precision@k: the metric on hand-made vectors, the fusion sweep, the data set reader, the script."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ColourEncoder, HashingTextEncoder
from PIL import Image

from core.errors import InvalidArgumentError
from evaluation.features import cached_encode
from evaluation.retrieval import (
    DatasetMissingError,
    ModalityVectors,
    chance_precision,
    encode_catalog,
    fusion_sweep,
    load_fashion_mnist,
    precision_at_k,
    random_vectors,
    raw_pixel_vectors,
)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_retrieval.py"


def _load_script():  # type: ignore[no-untyped-def]
    """Import scripts/evaluate_retrieval.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("evaluate_retrieval", SCRIPT)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


main = _load_script().main


def _at(degrees: list[float]) -> np.ndarray:
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_precision_at_k_known_answer() -> None:
    # Angles 0, 10, 40, 90 degrees; labels a a b b. Nearest of 40 is 10 (an 'a'): P@1 = 3/4.
    vectors = _at([0, 10, 40, 90]) * np.array([[1.0], [3.0], [0.5], [2.0]])  # scale must not matter
    labels = ["a", "a", "b", "b"]
    assert precision_at_k(vectors, labels, k=1) == pytest.approx(0.75)
    # k=2: {10,40} 1/2, {0,40} 1/2, {10,0} 0/2, {40,10} 1/2.
    assert precision_at_k(vectors, labels, k=2) == pytest.approx(0.375)


def test_precision_excludes_the_query_itself() -> None:
    vectors = np.eye(3)  # every other item scores 0: with self included each would find itself
    assert precision_at_k(vectors, ["a", "b", "c"], k=1) == 0.0


def test_precision_rejects_bad_input() -> None:
    with pytest.raises(InvalidArgumentError, match="needs more than 10 items, got 4"):
        precision_at_k(np.ones((4, 2)), list("aabb"), k=10)
    with pytest.raises(InvalidArgumentError, match="1 rows are zero"):
        precision_at_k(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]), list("aab"), k=1)
    with pytest.raises(InvalidArgumentError, match="k must be a positive integer, got 0"):
        precision_at_k(np.eye(3), list("abc"), k=0)


def test_random_vectors_score_near_chance() -> None:
    labels = np.repeat(np.arange(5), 60)
    chance = chance_precision(labels)
    assert chance == pytest.approx(59 / 299)
    assert abs(precision_at_k(random_vectors(300, seed=0), labels, k=10) - chance) < 0.05
    np.testing.assert_array_equal(random_vectors(4, seed=3), random_vectors(4, seed=3))


def test_fusion_sweep_follows_the_informative_modality() -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    image = np.eye(2)[labels] + 0.05 * rng.standard_normal((40, 2))  # image knows the category
    text = rng.standard_normal((40, 16))  # text is noise
    vectors = ModalityVectors(labels, image, text, np.ones(40, bool), np.ones(40, bool))
    sweep = fusion_sweep(vectors, [0.0, 0.5, 1.0], k=5)
    assert list(sweep) == [0.0, 0.5, 1.0]
    assert sweep[1.0] == 1.0
    assert sweep[0.0] < 0.75
    assert sweep[0.0] <= sweep[0.5] <= sweep[1.0]


def test_fusion_sweep_drops_rows_without_a_usable_modality() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    image = np.eye(2)[labels] + 0.01 * np.arange(6)[:, None]
    text = np.eye(2)[labels]
    has_text = np.array([True, True, True, True, True, False])  # row 5 is image-only
    vectors = ModalityVectors(labels, image, text, np.ones(6, bool), has_text)
    assert fusion_sweep(vectors, [0.0], k=1) == {0.0: 1.0}  # 5 rows scored, none fails


def test_raw_pixels_composite_transparency_on_white() -> None:
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    white = Image.new("RGB", (10, 10), (255, 255, 255))
    red = Image.new("RGB", (10, 10), (255, 0, 0))
    vectors = raw_pixel_vectors([clear, white, red])
    assert vectors.shape == (3, 32 * 32 * 3)
    np.testing.assert_allclose(vectors[0], vectors[1])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


class _CountingEncoder(ColourEncoder):
    calls = 0

    def encode(self, batch):  # type: ignore[no-untyped-def]
        type(self).calls += 1
        return super().encode(batch)


def test_cached_encode_computes_once(tmp_path: Path) -> None:
    images = [Image.new("RGB", (8, 8), (i * 40, 0, 0)) for i in range(5)]
    encoder = _CountingEncoder()
    first = cached_encode(encoder, images, "key-1", tmp_path, batch_size=2)
    assert _CountingEncoder.calls == 3
    second = cached_encode(encoder, images, "key-1", tmp_path, batch_size=2)
    assert _CountingEncoder.calls == 3
    np.testing.assert_array_equal(first, second)
    cached_encode(encoder, images, "key-2", tmp_path, batch_size=2)  # other content, other file
    assert _CountingEncoder.calls == 6


def test_encode_catalog_title_only(toy_catalog_file: Path) -> None:
    from engine.catalog import Catalog

    catalog = Catalog.from_file(toy_catalog_file)
    full = encode_catalog(catalog, ColourEncoder(), HashingTextEncoder())
    title = encode_catalog(catalog, None, HashingTextEncoder(), text_source="title")
    np.testing.assert_allclose(title.text[0], HashingTextEncoder().encode(["Red apple 0"])[0])
    assert not np.allclose(full.text[0], title.text[0])
    assert title.image is None and not title.has_image.any() and title.text_name == "fake-text, title only"
    assert full.labels.tolist() == ["food"] * 5 + ["tools"] * 5
    with pytest.raises(InvalidArgumentError, match="text_source 'body' is unknown; valid: full, title"):
        encode_catalog(catalog, None, HashingTextEncoder(), text_source="body")


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fashion_mnist(tmp_path: Path) -> Path:
    """30 test images of 3 classes: a bright block in a class-specific corner."""
    folder = tmp_path / "fmnist"
    folder.mkdir()
    labels = np.arange(30) % 3
    images = np.zeros((30, 28, 28), np.uint8)
    for i, c in enumerate(labels):
        images[i, (c // 2) * 14 : (c // 2) * 14 + 14, (c % 2) * 14 : (c % 2) * 14 + 14] = 200 + i
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    return folder


def test_load_fashion_mnist_reads_idx(fake_fashion_mnist: Path) -> None:
    images, labels = load_fashion_mnist(fake_fashion_mnist, "test", n=12)
    assert images.shape == (12, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [0, 1, 2] * 4


def test_missing_fashion_mnist_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissingError) as info:
        load_fashion_mnist(tmp_path / "nowhere")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert "apt-get install -y dataset-fashion-mnist" in message
    assert "--fashion-mnist DIR" in message


def test_main_fails_clearly_without_fashion_mnist(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    code = main(["--datasets", "fashion-mnist", "--fashion-mnist", str(tmp_path), "--quiet"])
    assert code == 2
    assert "apt-get install -y dataset-fashion-mnist" in caplog.text


def test_main_on_fake_catalog_and_fashion_mnist(
    toy_catalog_file: Path, fake_fashion_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    code = main([
        "--catalog", str(toy_catalog_file), "--fashion-mnist", str(fake_fashion_mnist), "--fashion-mnist-n", "30",
        "--image-encoder", "fake-image", "--text-encoder", "fake-text", "--device", "cpu", "--k", "3",
        "--weights", "0,0.5,1", "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--quiet",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fused w_img=0.5" in printed and "best fusion image weight" in printed
    report = json.loads(out.read_text())
    rows = {(r["dataset"], r["vectors"]): r["precision"] for r in report["results"]}
    # Planted: colour and words both separate the two categories perfectly.
    assert rows[("sample_catalog", "image (fake-image)")] == 1.0
    assert rows[("sample_catalog", "text (fake-text)")] == 1.0
    assert rows[("sample_catalog", "fused w_img=0.5")] == 1.0
    assert rows[("fashion-mnist", "image (fake-image)")] == 1.0
    assert {("sample_catalog", "raw pixels 32x32"), ("fashion-mnist", "random (seed 0)")} <= set(rows)
    check = report["catalog"]["engine_check"]
    assert check["engine_precision"] == pytest.approx(check["numpy_precision"])
    assert check["max_abs_diff"] < 1e-5
    assert report["fashion-mnist"]["sample"] == "first 30 test images"
    assert list((tmp_path / "cache").glob("*.npy"))  # vectors were cached
