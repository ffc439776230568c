"""The item encoder: an image encoder and a text encoder whose vectors one `Fusion` joins.

Either encoder may be absent (a text-only or image-only shop); the fusion then
gives the missing modality a zero-width slot.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TypeVar

from core.errors import InvalidArgumentError
from core.registry import resolve

from .base import Encoder, ImageEncoder, TextEncoder
from .config import EncoderConfig, ImageFeatureConfig
from .fusion import Fusion, FusionConfig
from .registry import ENCODERS, create_encoder
from .runtime import split_budget

E = TypeVar("E", ImageEncoder, TextEncoder)


@dataclass(frozen=True)
class ItemEncoder:
    """An item encoder that fuses: image and text encoders (either may be None) and their fusion.

    Example:
        >>> item = ItemEncoder.from_config(EncoderConfig(image=None, device="cpu"))  # doctest: +SKIP
        >>> item.fusion.dim == item.text.dim                                       # doctest: +SKIP
        True
    """

    image: ImageEncoder | None
    text: TextEncoder | None
    fusion: Fusion

    @classmethod
    def from_config(cls, encoders: EncoderConfig, fusion: FusionConfig | None = None) -> ItemEncoder:
        """Create the configured encoders (from the `encoders` registry) and their fusion.

        Raises:
            InvalidArgumentError: neither an image nor a text encoder is configured, or a
                configured name is an encoder of the other modality.
            UnknownComponentError: a name is not registered; the message lists the valid names.

        Example:
            >>> ItemEncoder.from_config(EncoderConfig(), FusionConfig()).fusion.dim  # doctest: +SKIP
            1664
        """
        if encoders.image is None and encoders.text is None:
            raise InvalidArgumentError("at least one of encoders.image and encoders.text must be set")
        image = text = None
        image_threads, decode_workers = split_budget(encoders.threads, encoders.num_workers)
        if encoders.image is not None:
            options: dict = {} if encoders.image_weights is None else {"weights_path": encoders.image_weights}
            options |= _runtime_options(encoders.image, encoders.runtime, image_threads)
            if encoders.image_pooling is not None:
                if "features" not in inspect.signature(resolve(ENCODERS, encoders.image, "encoder")).parameters:
                    raise InvalidArgumentError(f"encoders.image_pooling is set ({encoders.image_pooling!r}) but the "
                                               f"image encoder {encoders.image!r} has no pooling option; leave it None")
                options["features"] = ImageFeatureConfig(pooling=encoders.image_pooling)
            image = _of_modality(create_encoder(encoders.image, device=encoders.device, **options), ImageEncoder)
            image.decode_workers = decode_workers
        if encoders.text is not None:
            options = _runtime_options(encoders.text, encoders.runtime, split_budget(encoders.threads, 0)[0])
            text = _of_modality(create_encoder(encoders.text, device=encoders.device, **options), TextEncoder)
        dims = {"image_dim": image.dim if image else 0, "text_dim": text.dim if text else 0}
        return cls(image=image, text=text, fusion=Fusion(**dims, config=fusion))

    @property
    def dim(self) -> int:
        """Length of a fused item vector."""
        return self.fusion.dim


def _runtime_options(name: str, runtime: str, threads: int) -> dict[str, object]:
    """`runtime` and `threads` for the encoder `name`, when its constructor takes them."""
    parameters = inspect.signature(resolve(ENCODERS, name, "encoder")).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not takes_all and "runtime" not in parameters:
        if runtime not in ("auto", "torch"):
            raise InvalidArgumentError(f"encoders.runtime is {runtime!r} but the encoder {name!r} runs only on torch; "
                                       "use runtime='auto' or 'torch'")
        return {}
    return {"runtime": runtime, "threads": threads}


def _of_modality(encoder: Encoder, kind: type[E]) -> E:
    """`encoder`, checked to be of the modality its config slot names."""
    if not isinstance(encoder, kind):
        raise InvalidArgumentError(
            f"encoders.{kind.modality} must name an encoder of modality {kind.modality!r}; "
            f"{encoder.name!r} is a {encoder.modality} encoder (see encoders.list_encoders())"
        )
    return encoder
