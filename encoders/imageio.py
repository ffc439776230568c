"""Decoding image files: the one place a path becomes an RGB `PIL.Image`.

Light on purpose (PIL and NumPy only): DataLoader workers import it to decode
images while the model runs in the main process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageError

# What an image encoder accepts for one item: a decoded image or a file path.
ImageLike = Image.Image | str | Path


def load_image(image: ImageLike, min_side: int | None = None) -> Image.Image:
    """Decode `image` (a path or a PIL image) to an RGB PIL image.

    EXIF rotation is applied; transparency (RGBA, LA, palette with a transparent
    colour) is composited onto white, so a transparent product cut-out looks like
    it does on a white shop page instead of on black.

    Args:
        image: A `PIL.Image.Image`, or a `str`/`Path` to an image file.
        min_side: For a JPEG file, decode at the smallest DCT scale whose sides stay
            >= `min_side`: a 12-megapixel photo then decodes several times faster, and
            an encoder resizes it to its input size anyway. None decodes full size.

    Returns:
        An image in mode `"RGB"`.

    Raises:
        ImageError: The file does not exist or cannot be decoded.

    Example:
        >>> load_image(Image.new("RGBA", (4, 4), (255, 0, 0, 0))).getpixel((0, 0))
        (255, 255, 255)
    """
    if isinstance(image, Image.Image):
        return _to_rgb(image)
    path = Path(image)
    if not path.is_file():
        raise ImageError(f"image file '{path}' does not exist")
    try:
        with Image.open(path) as opened:
            if min_side is not None and opened.format == "JPEG":
                opened.draft("RGB", (min_side, min_side))
            opened.load()
            return _to_rgb(ImageOps.exif_transpose(opened))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode image file '{path}': {exc}") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB, compositing transparency onto white."""
    if image.mode.startswith("I;16"):  # 16-bit greyscale: PIL would clip it to white
        grey = (np.asarray(image, dtype=np.float32) / 257.0).round().astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")
