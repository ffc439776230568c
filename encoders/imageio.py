"""Decoding images: the one place a path, bytes or an array becomes an RGB `PIL.Image`.

Light on purpose (PIL and NumPy only): DataLoader workers import it to decode
images while the model runs in the main process.

What bounds the work spent on one image (see `ImageLimits`): a file is `stat`-ed
first and opened only when it is a regular file, so a FIFO (whose `open` blocks) or
a device such as /dev/zero is never opened; its size, then the pixel count its
header declares, are checked before any pixel is decoded; and reading and decoding
check a deadline between chunks.
"""

from __future__ import annotations

import io
import os
import stat
import time
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageError, InvalidArgumentError

from .config import ImageLimits

# What an image encoder accepts for one item: a decoded image, a file path, encoded bytes, a binary file or pixels.
ImageLike = Image.Image | str | Path | bytes | bytearray | memoryview | BinaryIO | np.ndarray
# Types an encoder checks a batch against; `load_image` also takes any other object with a .read() method.
IMAGE_TYPES = (Image.Image, str, Path, bytes, bytearray, memoryview, np.ndarray, io.IOBase)
EXPECTED = (
    "a file path (str or Path), encoded bytes, a binary file object (open(path, 'rb'), an upload), "
    "a NumPy array (HxW, HxWx3 or HxWx4; uint8, or float in [0, 1]) or a PIL image"
)
_CHUNK = 1 << 20  # bytes read per call while checking the deadline
_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8": "JPEG", b"GIF8": "GIF", b"BM": "BMP", b"RIFF": "RIFF (WebP)"}


def load_image(
    image: ImageLike,
    min_side: int | None = None,
    *,
    limits: ImageLimits | None = None,
    root: str | Path | None = None,
) -> Image.Image:
    """Decode `image` to an RGB PIL image, within `limits`.

    EXIF rotation is applied; transparency (RGBA, LA, palette with a transparent
    colour) is composited onto white, so a transparent product cut-out looks like
    it does on a white shop page instead of on black.

    Args:
        image: A path to an image file, the encoded bytes of one (PNG, JPEG, ...), a binary
            file object holding them (anything whose `.read()` returns bytes: `open(p, "rb")`,
            `io.BytesIO`, an upload's file; read from its current position, at most
            `limits.max_bytes` + 1 bytes), a NumPy array of pixels (HxW grey, HxWx3 RGB or
            HxWx4 RGBA; uint8, or float in [0, 1]) or a `PIL.Image.Image`.
        min_side: For a JPEG, decode at the smallest DCT scale whose sides stay >= `min_side`:
            a 12-megapixel photo then decodes several times faster, and an encoder resizes
            it to its input size anyway. None decodes full size.
        limits: Size, pixel and time bounds (default `ImageLimits()`).
        root: A path must resolve (symlinks followed) inside this folder; None allows any.

    Returns:
        An image in mode `"RGB"`.

    Raises:
        ImageError: The file is missing, outside `root`, not a regular file, too large,
            degenerate, too slow, or cannot be decoded; the message names it.
        InvalidArgumentError: `image` is of another type, a file opened in text mode, or an
            array of the wrong shape or dtype.

    Example:
        >>> load_image(Image.new("RGBA", (4, 4), (255, 0, 0, 0))).getpixel((0, 0))
        (255, 255, 255)
    """
    limits = limits or ImageLimits()
    if isinstance(image, Image.Image):
        check_size(image.size, limits, "PIL image")
        return _to_rgb(image)
    if isinstance(image, np.ndarray):
        return _from_array(image, limits)
    if isinstance(image, io.IOBase) or (not isinstance(image, IMAGE_TYPES) and callable(getattr(image, "read", None))):
        data, name = _read_file_object(image, limits)
        return _decode(data, name, limits, time.monotonic() + limits.timeout_s, min_side)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if len(data) > limits.max_bytes:
            raise ImageError(f"image bytes are {len(data):,} long, above the limit of {limits.max_bytes:,} (ImageLimits.max_bytes)")
        return _decode(data, f"image bytes ({len(data):,} bytes)", limits, time.monotonic() + limits.timeout_s, min_side)
    if isinstance(image, (str, Path)) and str(image) != "":
        deadline = time.monotonic() + limits.timeout_s
        data = read_image_file(image, limits, root, deadline)
        return _decode(data, f"image file '{image}'", limits, deadline, min_side)
    shown = repr(image) if len(repr(image)) <= 60 else repr(image)[:57] + "..."
    raise InvalidArgumentError(f"image must be {EXPECTED}; got {type(image).__name__} {shown}")


def read_image_file(
    path: str | Path, limits: ImageLimits | None = None, root: str | Path | None = None, deadline: float | None = None
) -> bytes:
    """The bytes of an image file, read only if it is a regular file inside `root` and within `limits`.

    Raises:
        ImageError: naming the path and what is wrong with it.

    Example:
        >>> read_image_file("sample_catalog/images/food-red-apple.png")[:4]  # doctest: +SKIP
        b'\\x89PNG'
    """
    limits = limits or ImageLimits()
    deadline = time.monotonic() + limits.timeout_s if deadline is None else deadline
    path = Path(path)
    if root is not None:
        check_inside(path, root)
    try:
        info = os.stat(path)  # a FIFO or device must not even be opened: open() on a FIFO blocks
    except FileNotFoundError:
        raise ImageError(f"image file '{path}' does not exist") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ImageError(f"image file '{path}' cannot be read: {_reason(exc)}") from None
    _check_regular(path, info.st_mode, info.st_size, limits)
    try:
        # O_NONBLOCK: if the path became a FIFO since the stat, opening it still returns at once.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImageError(f"image file '{path}' cannot be opened: {_reason(exc)}") from None
    try:
        opened = os.fstat(fd)
        _check_regular(path, opened.st_mode, opened.st_size, limits)
        chunks, total = [], 0
        while True:
            _check_deadline(deadline, f"image file '{path}'", limits)
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > limits.max_bytes:  # the file grew while being read
                raise ImageError(f"image file '{path}' is over {limits.max_bytes:,} bytes (ImageLimits.max_bytes)")
            chunks.append(chunk)
    except OSError as exc:
        raise ImageError(f"image file '{path}' cannot be read: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if total == 0:
        raise ImageError(f"image file '{path}' is empty (0 bytes)")
    return b"".join(chunks)


def check_inside(path: str | Path, root: str | Path) -> None:
    """Raise ImageError unless `path`, symlinks followed, lies inside the folder `root`.

    Example:
        >>> check_inside("/etc/passwd", "/srv/shop")
        Traceback (most recent call last):
        core.errors.ImageError: image path '/etc/passwd' resolves to '/etc/passwd', outside the folder '/srv/shop' that images must be in (Catalog(..., allow_outside=True) allows that)
    """
    try:
        real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    except (OSError, ValueError) as exc:
        raise ImageError(f"image path '{path}' cannot be resolved: {_reason(exc)}") from None
    if real != base and base not in real.parents:
        raise ImageError(
            f"image path '{path}' resolves to '{real}', outside the folder '{root}' that images must be in "
            "(Catalog(..., allow_outside=True) allows that)"
        )


def check_size(size: tuple[int, int], limits: ImageLimits, name: str) -> None:
    """Raise ImageError when a width x height is degenerate or above `limits.max_pixels`."""
    width, height = size
    if min(width, height) < limits.min_dimension:
        raise ImageError(
            f"{name} is {width}x{height} pixels; expected at least {limits.min_dimension}x{limits.min_dimension} "
            "(ImageLimits.min_dimension)"
        )
    if width * height > limits.max_pixels:
        raise ImageError(
            f"{name} is {width}x{height} = {width * height:,} pixels, above the limit of {limits.max_pixels:,} "
            "(ImageLimits.max_pixels): a decompression bomb, or an image too large to index"
        )


def _read_file_object(file: BinaryIO, limits: ImageLimits) -> tuple[bytes, str]:
    """The bytes of a binary file object and a name for messages; reads one byte past the limit to tell one too large."""
    name = getattr(file, "name", None)
    what = f"image file object {type(file).__name__}" + (f" ('{name}')" if isinstance(name, str) else "")
    try:
        try:
            data = file.read(limits.max_bytes + 1)
        except TypeError:  # a read() that takes no size
            data = file.read()
    except (OSError, ValueError) as exc:  # closed, or opened for writing only
        raise ImageError(f"{what} cannot be read: {_reason(exc)}") from None
    if isinstance(data, str):
        raise InvalidArgumentError(f"{what} was opened in text mode (its read() returns str); open it with 'rb'")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError(f"{what}: read() returned {type(data).__name__}, expected bytes")
    if len(data) > limits.max_bytes:
        raise ImageError(f"{what} holds over {limits.max_bytes:,} bytes, above the limit (ImageLimits.max_bytes)")
    if not data:
        raise ImageError(f"{what} is empty (0 bytes left to read)")
    return bytes(data), f"{what} ({len(data):,} bytes)"


def _check_regular(path: Path, mode: int, size: int, limits: ImageLimits) -> None:
    """Raise unless `mode` is a regular file of at most `limits.max_bytes`."""
    if not stat.S_ISREG(mode):
        kind = (
            "a directory" if stat.S_ISDIR(mode)
            else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise ImageError(f"image path '{path}' is {kind}; expected a regular image file")
    if size > limits.max_bytes:
        raise ImageError(f"image file '{path}' is {size:,} bytes, above the limit of {limits.max_bytes:,} (ImageLimits.max_bytes)")


def _check_deadline(deadline: float, name: str, limits: ImageLimits) -> None:
    if time.monotonic() > deadline:
        raise ImageError(f"reading {name} took longer than {limits.timeout_s:g} s (ImageLimits.timeout_s)")


class _DeadlineBytes(io.BytesIO):
    """In-memory image data whose reads fail once the decode's deadline has passed."""

    def __init__(self, data: bytes, deadline: float, name: str, limits: ImageLimits) -> None:
        super().__init__(data)
        self.deadline, self.name, self.limits = deadline, name, limits

    def read(self, size: int | None = -1) -> bytes:
        _check_deadline(self.deadline, self.name, self.limits)
        return super().read(size)


def _decode(data: bytes, name: str, limits: ImageLimits, deadline: float, min_side: int | None) -> Image.Image:
    """Decode encoded image bytes, checking the declared size before decoding pixels."""
    try:
        with warnings.catch_warnings():
            # PIL warns above its own pixel limit; `limits.max_pixels` decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(_DeadlineBytes(data, deadline, name, limits)) as opened:
                check_size(opened.size, limits, name)
                if min_side is not None and opened.format == "JPEG":
                    opened.draft("RGB", (min_side, min_side))
                opened.load()
                return _to_rgb(ImageOps.exif_transpose(opened))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name} is a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        kind = next((k for magic, k in _MAGIC.items() if data.startswith(magic)), None)
        if kind is not None:  # e.g. a PNG declaring a 0x0 size, which PIL refuses to open
            raise ImageError(f"cannot decode {name}: it starts like a {kind} but its header is invalid") from None
        raise ImageError(f"cannot decode {name}: not an image format PIL reads (PNG, JPEG, WebP, GIF, ...)") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, ValueError, SyntaxError, struct.error... for bad data
        raise ImageError(f"cannot decode {name}: {type(exc).__name__}: {exc}") from None


def _from_array(array: np.ndarray, limits: ImageLimits) -> Image.Image:
    """An RGB image from an HxW, HxWx3 or HxWx4 array of uint8, or of floats in [0, 1]."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidArgumentError(f"image array has shape {array.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    check_size((array.shape[1], array.shape[0]), limits, f"image array of shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            raise InvalidArgumentError(f"float image array has {int((~finite).sum())} NaN or infinite values; expected values in [0, 1]")
        if array.min() < 0.0 or array.max() > 1.0:
            raise InvalidArgumentError(
                f"float image array has values in [{array.min():g}, {array.max():g}]; expected values in [0, 1] "
                "(divide 0-255 pixels by 255, or pass uint8)"
            )
        array = (array * 255.0).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        raise InvalidArgumentError(f"image array has dtype {array.dtype}; expected uint8 (0-255) or float in [0, 1]")
    return _to_rgb(Image.fromarray(np.ascontiguousarray(array)))  # HxW -> L, HxWx3 -> RGB, HxWx4 -> RGBA


def _reason(exc: BaseException) -> str:
    """An OSError's text without the path (the message names it already)."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


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
