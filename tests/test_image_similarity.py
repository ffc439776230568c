"""The "same product, another photo" test set, its metrics, and the image-feature options of the encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import InvalidArgumentError
from encoders.config import ImageFeatureConfig
from encoders.image import EfficientNetLiteEncoder, pool_feature_map
from evaluation.image_options import BASELINE, Option, Setting, make_encoder, measure, option_vectors, setting_features
from evaluation.image_similarity import (
    AUGMENTATIONS,
    apply_whitening,
    augment,
    augmentation_sources,
    bootstrap_interval,
    fit_whitening,
    load_emoji_gallery,
    product_key,
    retrieval_metrics,
    variant_queries,
)

SEED = 0


# ----------------------------------------------------------------------------- grouping


@pytest.mark.parametrize(
    ("unified", "key"),
    [
        ("1F645", "1F645"),  # person gesturing no
        ("1F645-200D-2640-FE0F", "1F645"),  # woman gesturing no
        ("1F645-200D-2642-FE0F", "1F645"),  # man gesturing no
        ("1F645-1F3FD-200D-2642-FE0F", "1F645-1F3FD"),  # skin tone kept in the code (the gallery groups by base)
        ("1F468-200D-1F33E", "1F9D1-200D-1F33E"),  # man farmer -> farmer
        ("1F469-200D-1F33E", "1F9D1-200D-1F33E"),  # woman farmer -> farmer
        ("1F3C3-200D-2640-FE0F-200D-27A1-FE0F", "1F3C3"),  # woman running facing right: a mirror image
        ("1F468-200D-1F9AF-200D-27A1-FE0F", "1F9D1-200D-1F9AF"),  # man with white cane facing right
        ("27A1-FE0F", "27A1-FE0F"),  # the arrow itself
        ("1F468-200D-1F469-200D-1F467", "1F468-200D-1F469-200D-1F467"),  # a family stays itself
        ("2640-FE0F", "2640-FE0F"),  # the female sign alone is its own emoji
    ],
)
def test_product_key(unified: str, key: str) -> None:
    assert product_key(unified) == key


def _png(path: Path, colour: tuple[int, int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    image.paste(colour, (4, 4, 12, 12))
    image.save(path)


@pytest.fixture()
def tiny_package(tmp_path: Path) -> Path:
    """An emoji-datasource-like folder: a gesture in three genders (one with two skin tones), a farmer pair, two singles."""
    entries = [
        ("1F645", "FACE WITH NO GOOD GESTURE", {"1F3FB": "1F645-1F3FB", "1F3FF": "1F645-1F3FF"}),
        ("1F645-200D-2640-FE0F", "WOMAN GESTURING NO", {}),
        ("1F645-200D-2642-FE0F", "MAN GESTURING NO", {}),
        ("1F468-200D-1F33E", "MAN FARMER", {}),
        ("1F469-200D-1F33E", "WOMAN FARMER", {}),
        ("1F34E", "RED APPLE", {}),
        ("1F34F", "GREEN APPLE", {}),
    ]
    rows = []
    for order, (code, name, skins) in enumerate(entries):
        variations = {tone: {"unified": c, "image": c.lower() + ".png"} for tone, c in skins.items()}
        rows.append({"unified": code, "name": name, "short_name": name.lower(), "image": code.lower() + ".png",
                     "sort_order": order, "skin_variations": variations or None})
        for c in [code, *skins.values()]:
            _png(tmp_path / "img" / "google" / "64" / f"{c.lower()}.png", (30 * order, 200, 90, 255))
    (tmp_path / "emoji.json").write_text(json.dumps(rows))
    return tmp_path


def test_gallery_groups_skin_tones_and_genders(tiny_package: Path) -> None:
    gallery = load_emoji_gallery(tiny_package)
    assert len(gallery.files) == 9 and gallery.names[1] == "FACE WITH NO GOOD GESTURE"  # a skin variant keeps the name
    rows, relevant = variant_queries(gallery)
    groups = {int(q): sorted(int(r) for r in rel) for q, rel in zip(rows, relevant)}
    assert groups == {0: [1, 2, 3, 4], 1: [0, 2, 3, 4], 2: [0, 1, 3, 4], 3: [0, 1, 2, 4], 4: [0, 1, 2, 3], 5: [6], 6: [5]}
    sources = augmentation_sources(gallery, 2, seed=SEED)
    assert sorted(sources.tolist()) == [7, 8]  # only the apples belong to no group
    with pytest.raises(InvalidArgumentError, match=r"n must be in \[1, 2\] \(images in no variant group\), got 3"):
        augmentation_sources(gallery, 3)


def test_gallery_needs_emoji_json(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="no emoji.json"):
        load_emoji_gallery(tmp_path)


def test_augmentations() -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (0, 0, 16, 64))  # a red bar on the left, transparent elsewhere
    rng = np.random.default_rng(SEED)
    out = {kind: np.asarray(augment(image, kind, rng)) for kind in AUGMENTATIONS}
    assert all(a.ndim == 3 and a.shape[2] == 3 for a in out.values())
    assert (out["flip"][:, -1] == (200, 0, 0)).all() and (out["flip"][:, 0] == 255).all()  # mirrored, on white
    assert 0.7 * 64 * 64 - 200 <= out["crop"].shape[0] * out["crop"].shape[1] <= 0.9 * 64 * 64 + 200
    assert tuple(out["background"][0, -1]) != (255, 255, 255)  # transparent pixels take the colour
    assert not np.array_equal(out["rotate"], np.asarray(augment(image, "flip", rng))) and out["rotate"].shape == (64, 64, 3)
    with pytest.raises(InvalidArgumentError, match="unknown augmentation 'blur'; valid: flip, crop"):
        augment(image, "blur", rng)


# ----------------------------------------------------------------------------- metrics


def test_metrics_on_planted_ranking() -> None:
    # gallery rows are axes; query i scores row j as its j-th coordinate, so the ranking is known.
    gallery = np.eye(4, dtype=np.float32)
    queries = np.array([[0.9, 0.8, 0.1, 0.0], [0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    relevant = [np.array([0]), np.array([1, 2]), np.array([0])]
    m = retrieval_metrics(queries, gallery, relevant, k=3)
    assert m["recall@1"].tolist() == [1.0, 0.0, 0.0]
    assert m["recall@3"].tolist() == [1.0, 1.0, 0.0]  # query 2 finds row 0 at rank 4 only
    np.testing.assert_allclose(m["ap@3"], [1.0, (1 / 2 + 2 / 3) / 2, 0.0])
    excluded = retrieval_metrics(queries, gallery, relevant, exclude=np.array([0, -1, -1]), k=3)
    assert excluded["recall@1"].tolist() == [0.0, 0.0, 0.0] and excluded["recall@3"][0] == 0.0  # own row removed
    with pytest.raises(InvalidArgumentError, match="non-empty set of relevant rows"):
        retrieval_metrics(queries, gallery, [np.array([0])] * 2)


def test_bootstrap_interval_brackets_the_mean() -> None:
    values = np.random.default_rng(SEED).integers(0, 2, 400).astype(float)
    low, high = bootstrap_interval(values)
    assert low < values.mean() < high and high - low < 0.15


def test_whitening_is_fitted_on_the_gallery() -> None:
    rng = np.random.default_rng(SEED)
    gallery = rng.normal(size=(500, 6)) * np.array([10.0, 5.0, 1.0, 1.0, 0.5, 0.1]) + 3.0
    mean, projection = fit_whitening(gallery, 6, 0.0)
    white = (gallery - mean) @ projection
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(6), atol=1e-3)  # full whitening: identity covariance
    _, pca = fit_whitening(gallery, 2, 1.0)
    assert np.allclose(np.linalg.norm(pca, axis=0), np.linalg.norm(pca[:, 0]))  # shrinkage 1: one scale for all axes
    assert np.allclose(np.linalg.norm(apply_whitening(gallery[:3], mean, projection), axis=1), 1.0)
    with pytest.raises(InvalidArgumentError, match=r"whitening dim must be in \[1, 6\], got 7"):
        fit_whitening(gallery, 7, 0.1)
    with pytest.raises(InvalidArgumentError, match=r"shrinkage must be in \[0, 1\], got 2"):
        fit_whitening(gallery, 2, 2)


# ----------------------------------------------------------------------------- encoder options


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 16}, r"image_size must be None or an integer in \[32, 1024\], got 16"),
        ({"image_size": 224.0}, r"image_size must be None or an integer in \[32, 1024\], got 224.0"),
        ({"crop_pct": 0.0}, r"crop_pct must be None or a number in \[0.25, 1\], got 0.0"),
        ({"crop_pct": 1.5}, r"crop_pct must be None or a number in \[0.25, 1\], got 1.5"),
        ({"pooling": "mean"}, r"pooling must be one of avg, gem, max, got 'mean'"),
        ({"gem_p": 0.5}, r"gem_p must be a number in \[1, 16\], got 0.5"),
        ({"flip": 1}, r"flip must be True or False, got 1"),
    ],
)
def test_image_feature_config_refuses_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        ImageFeatureConfig(**kwargs)


def test_pooling_on_a_planted_map() -> None:
    fmap = torch.zeros(1, 2, 2, 2)
    fmap[0, 0] = torch.tensor([[4.0, 0.0], [0.0, 0.0]])
    fmap[0, 1] = 1.0
    assert pool_feature_map(fmap, "avg").tolist() == [[1.0, 1.0]]
    assert pool_feature_map(fmap, "max").tolist() == [[4.0, 1.0]]
    np.testing.assert_allclose(pool_feature_map(fmap, "gem", 3.0), [[(64 / 4) ** (1 / 3), 1.0]], rtol=1e-5)
    with pytest.raises(InvalidArgumentError, match="unknown pooling 'sum'"):
        pool_feature_map(fmap, "sum")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    rng = np.random.default_rng(SEED)
    return [Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)) for _ in range(3)]


def _lite0(**features: object) -> EfficientNetLiteEncoder:
    return EfficientNetLiteEncoder(features=ImageFeatureConfig(**features), pretrained=False, device="cpu", seed=SEED)


def test_default_is_max_pooling_and_avg_is_the_networks_own_head(photos: list[Image.Image]) -> None:
    encoder, avg = _lite0(), _lite0(pooling="avg")
    default = EfficientNetLiteEncoder(pretrained=False, device="cpu", seed=SEED)
    assert encoder.features == default.features and default.features.pooling == "max" and not default.features.flip
    assert (encoder.preprocessor.image_size, encoder.preprocessor.resize_size) == (224, 256)
    x = torch.stack([encoder.preprocess(p) for p in photos])
    with torch.inference_mode():
        backbone = encoder.model.backbone
        fmap = backbone.forward_features(x)
        reference = backbone.forward_head(fmap, pre_logits=True)
    np.testing.assert_allclose(avg.encode(photos), torch.nn.functional.normalize(reference).numpy(), atol=1e-5)
    np.testing.assert_allclose(default.encode(photos), torch.nn.functional.normalize(fmap.amax(dim=(2, 3))).numpy(), atol=1e-5)


def test_feature_options_change_the_output_as_documented(photos: list[Image.Image]) -> None:
    base = _lite0().encode(photos)
    for options in ({"pooling": "gem"}, {"pooling": "avg"}, {"crop_pct": 1.0}, {"image_size": 256, "crop_pct": 1.0}):
        assert not np.allclose(_lite0(**options).encode(photos), base, atol=1e-3), options
    whole = _lite0(image_size=256, crop_pct=1.0)
    assert (whole.preprocessor.image_size, whole.preprocessor.resize_size) == (256, 256)
    assert whole.preprocess(photos[0]).shape == (3, 256, 256)
    flip = _lite0(flip=True)
    squares = [p.resize((80, 80)) for p in photos]  # square: the centre crop of a mirror is the mirror of the crop
    mirrored = [p.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for p in squares]
    np.testing.assert_allclose(flip.encode(mirrored), flip.encode(squares), atol=1e-5)  # mirror-invariant
    assert not np.allclose(_lite0().encode(mirrored), _lite0().encode(squares), atol=1e-3)  # without flip it is not
    assert not np.allclose(flip.encode(photos), base, atol=1e-3)
    with pytest.raises(InvalidArgumentError, match="features must be an ImageFeatureConfig, got dict"):
        EfficientNetLiteEncoder(features={"pooling": "gem"}, pretrained=False, device="cpu")  # type: ignore[arg-type]


def test_evaluation_features_match_the_encoder(photos: list[Image.Image], tmp_path: Path) -> None:
    setting = Setting(crop_pct=1.0)
    feats = setting_features(make_encoder(setting, pretrained=False), photos, tmp_path / "f.npz")
    assert (tmp_path / "f.npz").is_file()
    cached = setting_features(make_encoder(setting, pretrained=False), photos, tmp_path / "f.npz")
    assert all(np.array_equal(cached[key], feats[key]) for key in feats)
    for pooling, flip in (("avg", False), ("gem", True), ("max", False)):
        encoder = make_encoder(setting, pooling, flip, pretrained=False)
        np.testing.assert_allclose(option_vectors(Option(setting, pooling, flip), feats), encoder.encode(photos), atol=1e-5)


def test_measure_end_to_end_on_a_tiny_package(tiny_package: Path, tmp_path: Path) -> None:
    reported: list[dict] = []
    rows = measure(tiny_package, tmp_path / "cache", settings=(Setting(), Setting(crop_pct=1.0)), whitening=((4, 0.5),),
                   n_sources=2, timing_images=4, report=reported.append, pretrained=False)
    assert rows == reported and rows[0]["option"] == BASELINE.label and "variants recall@1 diff" not in rows[0]
    labels = [r["option"] for r in rows]
    assert len(labels) == len(set(labels)) and len([r for r in rows if r["whitening"] is None]) == 6 + 3  # 3 poolings
    whitened = {r["option"] for r in rows if r["whitening"] is not None}  # x flip on today's input, 3 on the other
    assert {"lite0 224 crop, avg, whiten 4/0.5", "lite0 224 crop, max, whiten 4/0.5"} <= whitened and len(whitened) <= 3
    assert all(0.0 <= r[f"{p} {m}"] <= 1.0 for r in rows for p in ("variants", "augmented") for m in ("recall@1", "ap@10"))
    assert rows[0]["time ratio"] == 1.0 and rows[3]["flip"] and rows[3]["time ratio"] > 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4  # gallery and queries per setting
