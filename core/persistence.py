"""Model folders: a JSON manifest beside the parts, written atomically.

A crash while saving never leaves half a model: everything is written to a
temporary sibling folder, which then replaces the target with renames.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import FormatVersionError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# What a folder holds, written as the manifest's "kind": one constant each.
ENGINE_KIND = "engine"
INDEX_KIND = "vector_index"
MODEL_KIND = "recommender"
PERSONALISER_KIND = "personaliser"


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose formats the saved parts depend on."""
    import faiss
    import numpy
    import torch

    return {"numpy": numpy.__version__, "torch": torch.__version__, "faiss": faiss.__version__}


@contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `target` when the block succeeds.

    Example:
        >>> with atomic_dir(tmp / "model") as d:   # doctest: +SKIP
        ...     (d / "part.npy").write_bytes(b"...")
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            old.rmdir()
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(folder: Path) -> None:
    """Flush every file so a rename never publishes unwritten data."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def write_manifest(folder: Path, kind: str, **fields: Any) -> None:
    """Write `manifest.json` with the format version, kind and library versions."""
    manifest = {"format_version": FORMAT_VERSION, "kind": kind, "versions": library_versions(), **fields}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))


def read_manifest(folder: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read and check a manifest; raises if missing, of another kind or version."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no model at '{folder}': {MANIFEST} is missing")
    manifest = json.loads(path.read_text())
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise FormatVersionError(
            f"'{folder}' has format version {version!r}; this library reads version {FORMAT_VERSION}"
        )
    if manifest.get("kind") != kind:
        raise FormatVersionError(f"'{folder}' holds a {manifest.get('kind')!r}, expected a {kind!r}")
    return manifest
