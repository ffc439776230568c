"""Image and text encoders producing unit vectors, and their weighted fusion.

Example:
    >>> from encoders import create_encoder, list_encoders   # doctest: +SKIP
    >>> text = create_encoder("minilm-l6")                     # doctest: +SKIP
    >>> text.encode(["red running shoes"]).shape               # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

from typing import Any

# Lazy exports (PEP 562): importing `encoders` must not pull in timm or transformers
# (seconds each) when the caller only needs, say, the fusion maths.
_EXPORTS = {
    "Encoder": "encoders.base",
    "ImageEncoder": "encoders.base",
    "TextEncoder": "encoders.base",
    "ImagePreprocessor": "encoders.image",
    "load_image": "encoders.image",
    "EfficientNetLiteEncoder": "encoders.image",
    "EfficientNetLite0Encoder": "encoders.image",
    "TorchvisionEncoder": "encoders.image",
    "MiniLMEncoder": "encoders.text",
    "Fusion": "encoders.fusion",
    "FusionConfig": "encoders.fusion",
    "ENCODERS": "encoders.registry",
    "create_encoder": "encoders.registry",
    "list_encoders": "encoders.registry",
    "resolve_device": "encoders.device",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'encoders' has no attribute {name!r}")
