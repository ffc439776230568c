"""Uploaded product images: checked as images, then stored content-addressed beside the catalog.

An upload is decoded under the engine's `ImageLimits` before a byte is written, so
nothing that is not an image (or is a bomb) lands on disk. It is stored as
`<catalog folder>/uploads/<sha256 of the bytes><extension of its type>`: the same
bytes always get the same name, two items with the same photo share one file, and
an existing file is never overwritten (it already holds exactly these bytes). The
file is written to a temporary name, fsynced and linked into place, so a crash never
leaves a half-written image under a final name.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from PIL import Image

from core.errors import ImageError
from encoders.config import ImageLimits
from encoders.imageio import load_image

UPLOADS = "uploads"
# PIL format -> (file extension, media type); other formats are refused.
FORMATS = {
    "PNG": (".png", "image/png"),
    "JPEG": (".jpg", "image/jpeg"),
    "GIF": (".gif", "image/gif"),
    "WEBP": (".webp", "image/webp"),
    "BMP": (".bmp", "image/bmp"),
    "TIFF": (".tiff", "image/tiff"),
}
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
]


def image_format(data: bytes, limits: ImageLimits, name: str) -> str:
    """The PIL format of encoded image bytes that decode within `limits`; ImageError naming `name` otherwise.

    Example:
        >>> buffer = io.BytesIO(); Image.new("RGB", (4, 4)).save(buffer, "PNG")
        >>> image_format(buffer.getvalue(), ImageLimits(), "upload")
        'PNG'
    """
    try:
        load_image(data, limits=limits)  # the engine's one decoder: size, pixel and time limits
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from None
    with Image.open(io.BytesIO(data)) as opened:  # header only: the pixels decoded above
        kind = opened.format or "unknown"
    if kind not in FORMATS:
        raise ImageError(f"{name} is a {kind} image; accepted types: {', '.join(FORMATS)}")
    return kind


def store_upload(data: bytes, folder: Path, limits: ImageLimits, name: str) -> str:
    """Check `data` is an image and store it under `folder/uploads/`; returns its path relative to `folder`.

    Raises:
        ImageError: the bytes are not an accepted image within `limits` (nothing is written).
        OSError: the uploads folder cannot be written.

    Example:
        >>> store_upload(png_bytes, Path("shop"), ImageLimits(), "image:sku-1")  # doctest: +SKIP
        'uploads/3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b.png'
    """
    extension = FORMATS[image_format(data, limits, name)][0]
    target_dir = folder / UPLOADS
    target_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    final = target_dir / (hashlib.sha256(data).hexdigest() + extension)
    if not final.exists():
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=target_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, final)  # fails if the name exists: never overwrites
            except FileExistsError:
                pass  # another request stored the same bytes meanwhile
        finally:
            os.unlink(tmp)
    return f"{UPLOADS}/{final.name}"


def media_type(data: bytes, path: Path | None = None) -> str:
    """The media type of image bytes, from their first bytes (the file name is only a fallback)."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    by_extension = {**dict(FORMATS.values()), ".jpeg": "image/jpeg", ".tif": "image/tiff"}
    suffix = path.suffix.lower() if path is not None else ""
    return by_extension.get(suffix, "application/octet-stream")
