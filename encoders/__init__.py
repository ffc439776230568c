"""Image and text encoders producing unit vectors, their weighted fusion, and the item encoder.

The concrete encoders live in `encoders.image` (torchvision, timm) and
`encoders.text` (transformers) and are not imported here: those libraries take
seconds to import, so they load only when `create_encoder` (or the caller) needs one.

Example:
    >>> from encoders import create_encoder, list_encoders   # doctest: +SKIP
    >>> text = create_encoder("minilm-l6")                     # doctest: +SKIP
    >>> text.encode(["red running shoes"]).shape               # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

from .base import Encoder, ImageEncoder, TextEncoder
from .config import EncoderConfig
from .device import resolve_device
from .fusion import Fusion, FusionConfig
from .imageio import ImageLike, load_image
from .item import ItemEncoder
from .registry import ENCODERS, create_encoder, list_encoders

__all__ = [
    "ENCODERS",
    "Encoder",
    "EncoderConfig",
    "Fusion",
    "FusionConfig",
    "ImageEncoder",
    "ImageLike",
    "ItemEncoder",
    "TextEncoder",
    "create_encoder",
    "list_encoders",
    "load_image",
    "resolve_device",
]
