"""Indexing, stage two: turn catalog rows into fused item vectors.

Stage one reads the catalog (`Catalog`), stage three writes vectors and index
(`Engine`). Images are decoded and preprocessed in DataLoader workers while the
model runs on the previous batch; items whose content hash is in the cache are
not encoded again.

One bad image cannot stall or crash a build: each is read under `ImageLimits`
(regular files only, inside the catalog's folder, bounded bytes, pixels and time;
see `encoders.imageio`) and a failure becomes that item's skip reason. A worker that
hangs anyway (a read blocked in the kernel, e.g. on a dead network mount) is caught by
the DataLoader's own timeout, which ends the build with an `ImageError` naming the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from core.errors import CatalogError, ImageError, InvalidArgumentError
from encoders.base import ImageEncoder, TextEncoder
from encoders.config import ImageLimits
from encoders.imageio import load_image
from encoders.item import ItemEncoder
from encoders.runtime import decode_workers, keep_sigchld_default

from .catalog import Catalog
from .results import Skipped

log = logging.getLogger(__name__)
# Seconds a DataLoader worker may take to start, on top of the per-image time budget.
WORKER_START_S = 60.0


@dataclass(frozen=True)
class EncodedItems:
    """Output of stage two: vectors for the items that could be encoded, reasons for the rest."""

    ids: list[str]
    vectors: np.ndarray
    hashes: list[str]
    skipped: list[Skipped]
    reused: int = 0
    seconds: float = 0.0

    def check_any(self, source: str) -> None:
        """Raise CatalogError, with the first reasons, when no item of `source` could be encoded."""
        if not self.ids:
            reasons = "; ".join(f"{s.item_id}: {s.reason}" for s in self.skipped[:3])
            raise CatalogError(f"no item of {source!r} could be encoded ({reasons})")


class _ImageFiles(Dataset):
    """Decodes and preprocesses images; a failure becomes a reason, not an exception."""

    def __init__(
        self,
        paths: Sequence[Path],
        preprocess: Any,
        min_side: int | None = None,
        limits: ImageLimits | None = None,
        root: Path | None = None,
    ) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess
        self.min_side = min_side
        self.limits = limits
        self.root = root

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            image = load_image(self.paths[i], self.min_side, limits=self.limits, root=self.root)
            return i, self.preprocess(image), ""
        except ImageError as exc:
            return i, None, str(exc)
        except Exception as exc:  # a transform failing on odd data is reported, not fatal
            return i, None, f"cannot preprocess image '{self.paths[i]}': {exc}"


def _collate(batch: list[tuple[int, torch.Tensor | None, str]]) -> tuple[list[int], torch.Tensor | None, list[int], list[str]]:
    ok = [(i, t) for i, t, _ in batch if t is not None]
    failed = [(i, reason) for i, t, reason in batch if t is None]
    tensor = torch.stack([t for _, t in ok]) if ok else None
    return [i for i, _ in ok], tensor, [i for i, _ in failed], [r for _, r in failed]


def encode_items(
    catalog: Catalog,
    encoder: ItemEncoder,
    *,
    batch_size: int = 32,
    num_workers: int | None = 1,
    cache: Mapping[str, np.ndarray] | None = None,
    on_error: str = "report",
    show_progress: bool = True,
    limits: ImageLimits | None = None,
) -> EncodedItems:
    """Encode every catalog row into one fused vector.

    Args:
        catalog: the items.
        encoder: the item encoder: image and text encoders (either may be None) and their fusion.
        batch_size: items per forward pass.
        num_workers: image-decoding processes running beside the model (0: decode inline; None:
            the pool the encoders' thread budget sized from the cores, `encoders.runtime.decode_workers`).
        cache: content hash -> vector of earlier runs; matching items are not re-encoded.
        on_error: "report" lists unencodable items in `skipped`; "raise" raises on the first.
        show_progress: draw a progress bar with items/s.
        limits: bounds on each image file (default `ImageLimits()`); image paths must also lie
            inside `catalog.image_root` unless the catalog allows others.

    Raises:
        ImageError: with `on_error="raise"`, the first item whose image cannot be read; in any
            mode, image workers that stop answering (see the module docstring).
        CatalogError: with `on_error="raise"`, the first item with nothing to encode.

    Example:
        >>> out = encode_items(catalog, ItemEncoder.from_config(EncoderConfig()))  # doctest: +SKIP
        >>> out.vectors.shape, [s.reason for s in out.skipped]                    # doctest: +SKIP
    """
    if on_error not in ("report", "raise"):
        raise InvalidArgumentError(f"on_error must be 'report' or 'raise', got {on_error!r}")
    limits = limits or ImageLimits()
    start = time.perf_counter()
    n = len(catalog)
    all_texts, all_paths = catalog.texts(), catalog.image_paths()  # column-wise: per-row reads cost ~50 us each
    hashes = [catalog.content_hash(r, limits, text=all_texts[r], path=all_paths[r]) for r in range(n)]
    cache = cache or {}
    reused_rows = [r for r in range(n) if hashes[r] in cache]
    todo = [r for r in range(n) if hashes[r] not in cache]
    reasons: dict[int, str] = {}

    bar = tqdm(total=len(todo), desc="encoding", unit="item", disable=not show_progress, dynamic_ncols=True)
    texts = {r: all_texts[r] for r in todo} if encoder.text is not None else {}
    images = {r: all_paths[r] for r in todo} if encoder.image is not None else {}

    text_vecs = _encode_texts(encoder.text, texts, batch_size) if encoder.text is not None else {}
    image_vecs = (
        _encode_images(encoder.image, images, _Decoding(batch_size, num_workers, limits, catalog.image_root), reasons, bar)
        if encoder.image
        else {}
    )
    image_failed = set(reasons)
    bar.close()

    fusion = encoder.fusion
    for r in todo:
        if r in reasons:
            continue
        if r not in text_vecs and r not in image_vecs:
            reasons[r] = "item has neither text nor an image to encode"
        elif not fusion.usable(np.array([r in image_vecs]), np.array([r in text_vecs]))[0]:
            reasons[r] = (
                f"item's only modality has fusion weight 0 (image={fusion.image_weight:g}, text={fusion.text_weight:g})"
            )
    if reasons and on_error == "raise":
        r = min(reasons)
        error = ImageError if r in image_failed else CatalogError
        raise error(f"item {catalog.ids[r]!r}: {reasons[r]}")
    encoded = [r for r in todo if r not in reasons]
    dim = encoder.dim
    fused = np.zeros((len(encoded), dim), dtype=np.float32)
    if encoded:
        fused = _fuse(encoder, encoded, image_vecs, text_vecs)
    vectors_by_row = {r: cache[hashes[r]] for r in reused_rows}
    vectors_by_row.update(zip(encoded, fused))
    rows = sorted(vectors_by_row)
    vectors = np.stack([vectors_by_row[r] for r in rows]).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    ids = catalog.ids
    return EncodedItems(
        ids=[ids[r] for r in rows],
        vectors=vectors,
        hashes=[hashes[r] for r in rows],
        skipped=[Skipped(ids[r], reasons[r]) for r in sorted(reasons)],
        reused=len(reused_rows),
        seconds=time.perf_counter() - start,
    )


def _encode_texts(encoder: TextEncoder, texts: dict[int, str], batch_size: int) -> dict[int, np.ndarray]:
    rows = [r for r, t in texts.items() if t]
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(rows), max(batch_size, 64)):
        chunk = rows[start : start + max(batch_size, 64)]
        out.update(zip(chunk, encoder.encode([texts[r] for r in chunk])))
    return out


@dataclass(frozen=True)
class _Decoding:
    """How images are decoded: batch size, worker processes, limits and the folder they must be in."""

    batch_size: int
    num_workers: int | None
    limits: ImageLimits
    root: Path | None


def _encode_images(
    encoder: ImageEncoder,
    paths: dict[int, Path | None],
    decoding: _Decoding,
    reasons: dict[int, str],
    bar: Any,
) -> dict[int, np.ndarray]:
    rows = [r for r, p in paths.items() if p is not None]
    bar.update(len(paths) - len(rows))  # text-only items are done already
    if not rows:
        return {}
    batch_size = decoding.batch_size
    wanted = decoding.num_workers
    if wanted is None:  # sized from the cores (encoders.runtime.decode_workers) by the encoders' thread budget
        wanted = encoder.decode_workers if encoder.decode_workers is not None else decode_workers(None)
    workers = wanted if len(rows) > 2 * batch_size else 0  # a worker's start-up costs more than tiny jobs
    if encoder.decode_workers is not None:  # the encoders' thread budget leaves room for this many
        workers = min(workers, encoder.decode_workers)
    files = _ImageFiles(
        # The preprocessor alone (not the bound method) goes to the workers: under the
        # spawn start method a bound method would pickle the whole model.
        [paths[r] for r in rows],
        getattr(encoder, "preprocessor", encoder.preprocess),
        _input_side(encoder),
        decoding.limits,
        decoding.root,
    )
    # Each image is bounded by limits.timeout_s, so a batch that takes much longer means a stuck worker.
    timeout = batch_size * decoding.limits.timeout_s + WORKER_START_S if workers else 0
    if workers:
        keep_sigchld_default()  # torch's SIGCHLD handler made processes with OpenVINO loaded crash (exit 139)
    loader = DataLoader(
        files,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
        timeout=timeout,
    )
    out: dict[int, np.ndarray] = {}
    batches = iter(loader)
    for number in range(len(loader)):
        try:
            ok, tensor, failed, why = next(batches)
        except RuntimeError as exc:  # a worker timed out or died; which image is unknown, so name the batch
            batch = [str(paths[r]) for r in rows[number * batch_size : (number + 1) * batch_size]]
            raise ImageError(f"image decoding stopped in the batch of {', '.join(batch)}: {exc}") from exc
        for i, reason in zip(failed, why):
            reasons[rows[i]] = reason
        if tensor is not None:
            out.update(zip((rows[i] for i in ok), encoder.encode_tensors(tensor)))
        bar.update(len(ok) + len(failed))
    return out


def _input_side(encoder: ImageEncoder) -> int | None:
    """The side the encoder resizes images to, when it says (used to decode large JPEGs small)."""
    side = getattr(getattr(encoder, "preprocessor", None), "resize_size", None)
    return int(side) if isinstance(side, int) else None


def _fuse(
    encoder: ItemEncoder, rows: list[int], image_vecs: dict[int, np.ndarray], text_vecs: dict[int, np.ndarray]
) -> np.ndarray:
    """Fuse per-row modality vectors; a missing modality is a zero slot (see `encoders.fusion`)."""
    def stack(vecs: dict[int, np.ndarray], dim: int) -> tuple[np.ndarray | None, np.ndarray]:
        if dim == 0:
            return None, np.zeros(len(rows), dtype=bool)
        mask = np.array([r in vecs for r in rows])
        arr = np.zeros((len(rows), dim), dtype=np.float32)
        if mask.any():
            arr[mask] = np.stack([vecs[r] for r in rows if r in vecs])
        return arr, mask

    image, has_image = stack(image_vecs, encoder.image.dim if encoder.image else 0)
    text, has_text = stack(text_vecs, encoder.text.dim if encoder.text else 0)
    return encoder.fusion.fuse(image, text, has_image, has_text)
