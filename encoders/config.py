"""Configuration of the item encoders and of the images they may read."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import InvalidArgumentError


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoders turn items into vectors, and how they run.

    Attributes:
        image: image encoder name (see `encoders.list_encoders()`), or None for text only.
        text: text encoder name, or None for images only.
        image_weights: weights file for encoders that need one (torchvision backbones).
        device: "auto" (GPU when present), "cpu" or "cuda".
        batch_size: items per forward pass.
        num_workers: processes decoding images while the model runs (0 = in the main process).

    Example:
        >>> EncoderConfig(image=None).text
        'minilm-l6'
    """

    image: str | None = "efficientnet-lite0"
    text: str | None = "minilm-l6"
    image_weights: str | None = None
    device: str = "auto"
    # On a 2-core CPU EfficientNet-Lite0 runs 66 images/s at batch 4 and 43 at batch 32
    # (depthwise convolutions fall out of cache); raise it on a GPU.
    batch_size: int = 4
    num_workers: int = 1


@dataclass(frozen=True)
class ImageLimits:
    """What one image may be before it is decoded: the bounds that keep a bad file from stalling a build.

    Each image is checked in this order, before a byte of pixel data is decoded: it is a
    regular file (not a FIFO, device or folder: those are never opened), at most
    `max_bytes` long, its header declares at most `max_pixels` pixels and sides of at
    least `min_dimension`. Reading and decoding then check a clock between chunks (every
    64 KiB of compressed input) and give up after `timeout_s` seconds. The same limits
    apply to query images given as bytes, arrays or PIL images (size and pixels only).

    Attributes:
        max_bytes: largest accepted file (or bytes object), in bytes.
        max_pixels: largest accepted width x height; larger is treated as a decompression bomb.
        min_dimension: smallest accepted width and height (a 1x1 spacer is no product photo).
        timeout_s: time budget to read and decode one image, in seconds.

    Example:
        >>> ImageLimits(max_pixels=10_000_000).max_bytes
        50000000
    """

    max_bytes: int = 50_000_000
    max_pixels: int = 40_000_000
    min_dimension: int = 2
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "min_dimension"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"ImageLimits.{name} must be a positive integer, got {value!r}")
        timeout = self.timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (math.isfinite(timeout) and timeout > 0):
            raise InvalidArgumentError(f"ImageLimits.timeout_s must be a finite number of seconds > 0, got {timeout!r}")
