"""The encoder interface: turn a batch of images or texts into unit vectors.

Every encoder returns a float32 array of shape `(n, dim)` whose rows have unit
L2 norm, so an inner product between two rows is their cosine similarity.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core.errors import InvalidArgumentError

from .imageio import EXPECTED, IMAGE_TYPES, ImageLike
from .runtime import CompiledGraph, torch_threads


class Encoder(ABC):
    """Maps a batch of inputs of one modality to L2-normalised float32 vectors.

    Attributes:
        name: Registry name of the encoder, such as `"efficientnet-lite0"`.
        dim: Length of each output vector.
        modality: `"image"` or `"text"`.
    """

    name: str
    dim: int
    modality: ClassVar[str]

    @abstractmethod
    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Encode `batch` into a float32 `(len(batch), dim)` array with unit-norm rows.

        Example:
            >>> vectors = encoder.encode(items)  # doctest: +SKIP
            >>> vectors.shape == (len(items), encoder.dim)  # doctest: +SKIP
            True
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, modality={self.modality!r})"


class ImageEncoder(Encoder):
    """A CNN (or any `nn.Module`) whose output is one pooled feature vector per image.

    Subclasses set `name`, `dim`, `model` (in eval mode, on `device`),
    `preprocessor` (a picklable callable: image or path -> `(3, H, W)` tensor),
    `device` and `batch_size`; those that run elsewhere than torch set `graph` (the same
    network exported to ONNX, see `encoders.runtime`), `runtime` and `threads`.

    Decoding and preprocessing are kept apart from the forward pass so a
    pipeline can run `preprocessor` in `torch.utils.data.DataLoader` workers and
    feed the stacked tensors to `encode_tensors`.
    """

    modality: ClassVar[str] = "image"
    model: torch.nn.Module
    preprocessor: Callable[[ImageLike], torch.Tensor]
    device: torch.device
    batch_size: int
    runtime: str = "torch"
    graph: CompiledGraph | None = None
    threads: int | None = None  # forward-pass threads; None leaves torch's setting alone
    decode_workers: int | None = None  # image-decoding processes the thread budget leaves room for

    def preprocess(self, image: ImageLike) -> torch.Tensor:
        """Decode (a path, bytes or an array), convert to RGB and transform one image to a `(3, H, W)` tensor.

        Transparent pixels are composited onto white, as product photos are
        usually shown on a white page.

        Raises:
            ImageError: A path or bytes that cannot be read or decoded (see `encoders.imageio.load_image`).

        Example:
            >>> encoder.preprocess(Image.new("RGB", (300, 200))).shape  # doctest: +SKIP
            torch.Size([3, 224, 224])
        """
        return self.preprocessor(image)

    def encode(self, batch: Sequence[ImageLike]) -> np.ndarray:
        """Encode images (PIL images, paths, encoded bytes or pixel arrays), `batch_size` at a time.

        Raises:
            ImageError: An item is a path or bytes that cannot be read as an image.
            InvalidArgumentError: An item is of another type (see `encoders.imageio.load_image`).

        Example:
            >>> encoder.encode(["a.jpg", Image.open("b.png")]).shape  # doctest: +SKIP
            (2, 1280)
        """
        if isinstance(batch, np.ndarray) and batch.ndim in (2, 3):
            raise InvalidArgumentError(
                f"encode() takes a sequence of images, got a single array of shape {batch.shape}; wrap it in a list"
            )
        items = as_batch_list(batch, "images")
        for i, item in enumerate(items):
            if not isinstance(item, IMAGE_TYPES):
                raise InvalidArgumentError(f"image item {i} has type {type(item).__name__}; expected {EXPECTED}")
        parts = [
            self.encode_tensors(torch.stack([self.preprocess(item) for item in items[start : start + self.batch_size]]))
            for start in range(0, len(items), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray:
        """Run preprocessed images `(n, 3, H, W)` through the model in one forward pass.

        Example:
            >>> x = torch.stack([encoder.preprocess(img) for img in images])  # doctest: +SKIP
            >>> encoder.encode_tensors(x).shape  # doctest: +SKIP
            (8, 1280)
        """
        if not isinstance(batch, torch.Tensor) or batch.ndim != 4 or batch.shape[1] != 3:
            shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise InvalidArgumentError(f"expected a float tensor of shape (n, 3, H, W), got {shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.graph is not None:
            pixels = batch.detach().to("cpu", dtype=torch.float32).contiguous().numpy()
            return l2_normalise(torch.from_numpy(self.graph.run({"pixels": pixels})))
        with torch.inference_mode(), torch_threads(self.threads):
            features = self.model(batch.to(self.device, dtype=torch.float32)).flatten(1)
            return l2_normalise(features)


class TextEncoder(Encoder):
    """A text model producing one vector per string."""

    modality: ClassVar[str] = "text"


def l2_normalise(features: torch.Tensor) -> np.ndarray:
    """Unit-normalise rows of a `(n, dim)` tensor and return them as float32 NumPy."""
    return F.normalize(features.float(), p=2.0, dim=1).cpu().numpy().astype(np.float32, copy=False)


def check_batch_size(batch_size: int) -> int:
    """Validate a batch size; returns it unchanged."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def as_batch_list(batch: Sequence[Any], what: str) -> list[Any]:
    """Accept any sequence of items but reject a lone string or image passed as a batch."""
    if isinstance(batch, (str, bytes, bytearray, Path, Image.Image)):
        raise InvalidArgumentError(f"encode() takes a sequence of {what}, got a single {type(batch).__name__}; wrap it in a list")
    return list(batch)
