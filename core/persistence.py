"""Model folders: a JSON manifest beside the parts, published whole and checked on load.

Saving: `with atomic_dir(path) as tmp:` write the parts into `tmp`, then
`write_manifest(tmp, kind, **fields)` last. `tmp` is a new version inside `path`,
published with one atomic replace of `path/CURRENT` when the block succeeds (see
`core.folders`), so a crash at any instant leaves the old or the new model. A
part saved inside another save (an engine's `index/`) is written straight into
the outer version: one save, one publication. A path that holds anything this
library did not write is refused before anything is written.

Loading: `load_folder(path, kind, build)` finds the current version, checks its
manifest (format version, kind, every file's size and digest: `core.integrity`)
and calls `build(folder, manifest)`; a part loaded inside it is not checked
twice. While it reads a version no save removes it (a shared flock on the
version's marker); if one vanished before the lock was taken, because saves
published newer versions meanwhile, it starts over on the newest. Nothing is
ever unpickled: arrays are read with `allow_pickle=False` after their headers
were checked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from .errors import EngineError, FormatVersionError
from .folders import (
    CRASH_AT_ENV,
    CRASH_EXIT,
    CRASH_LOG_ENV,
    CURRENT,
    MARKER,
    NEW_POINTER,
    STEPS,
    WRITER,
    ModelFolderError,
    ModelNotFoundError,
    check_writable,
    crash_point,
    new_version,
    pointer_text,
    reading,
    resolve,
)
from .integrity import (
    ENGINE_KIND,
    FORMAT_VERSION,
    INDEX_KIND,
    MANIFEST,
    MODEL_KIND,
    PERSONALISER_KIND,
    DamagedModelError,
    check_parts,
    describe_files,
    parse_manifest,
    verify_files,
)

__all__ = [
    "CRASH_AT_ENV", "CRASH_EXIT", "CRASH_LOG_ENV", "CURRENT", "ENGINE_KIND", "FORMAT_VERSION", "INDEX_KIND",
    "MANIFEST", "MODEL_KIND", "PERSONALISER_KIND", "STEPS", "WRITER", "DamagedModelError", "ModelFolderError",
    "ModelNotFoundError", "atomic_dir", "check_writable", "library_versions", "load_folder", "model_folder",
    "read_manifest", "write_manifest",
]

T = TypeVar("T")
# How often a load starts over on the newer version when saves keep publishing while it reads.
LOAD_ATTEMPTS = 5
_STAGING: ContextVar[Path | None] = ContextVar("shopvec_staging", default=None)  # the version a save is writing
_VERIFIED: ContextVar[Path | None] = ContextVar("shopvec_verified", default=None)  # a folder whose digests were checked


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose formats the saved parts depend on."""
    import faiss
    import numpy
    import torch

    return {"numpy": numpy.__version__, "torch": torch.__version__, "faiss": faiss.__version__}


@contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty folder whose contents become the model at `target` when the block succeeds.

    Inside another `atomic_dir` block, and within its folder, the folder is simply
    created there: the outer save publishes everything at once.

    Raises:
        ModelFolderError: `target` is a file, or a folder holding what this library did not write.

    Example:
        >>> with atomic_dir(tmp / "model") as d:   # doctest: +SKIP
        ...     np.save(d / "part.npy", vectors)
        ...     write_manifest(d, INDEX_KIND, parts=["part.npy"])
    """
    target = Path(target)
    staging = _STAGING.get()
    if staging is not None and _within(target, staging):
        target.mkdir(parents=True, exist_ok=True)
        yield target
        crash_point("part")
        return
    with new_version(target) as version:
        token = _STAGING.set(version)
        try:
            yield version
        finally:
            _STAGING.reset(token)


def write_manifest(folder: Path, kind: str, **fields: Any) -> None:
    """Write `manifest.json`: format version, kind, writer, library versions, `fields`, and every file's size and digest.

    Call it last: files written after it are not listed, and a load refuses them unlisted.
    """
    files = describe_files(folder, skip={MANIFEST, MARKER, NEW_POINTER})
    manifest = {
        "format_version": FORMAT_VERSION, "kind": kind, "writer": WRITER, "versions": library_versions(),
        **fields, "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    crash_point("manifest")


def read_manifest(folder: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read and check the manifest of the model at `folder` (its current version).

    Checks the format version, the kind and, unless a load enclosing this one did,
    that every file has the size and digest the manifest lists.

    Raises:
        ModelNotFoundError: no model at `folder`.
        FormatVersionError: another format version, or another kind of model.
        DamagedModelError: the manifest or a file is damaged, naming it.

    Example:
        >>> read_manifest("models/shop/index", INDEX_KIND)["backend"]   # doctest: +SKIP
        'faiss'
    """
    folder, _ = resolve(Path(folder))
    manifest = parse_manifest(folder / MANIFEST)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise FormatVersionError(
            f"'{folder}' has format version {version!r}; this library reads version {FORMAT_VERSION}"
        )
    if manifest.get("kind") != kind:
        raise FormatVersionError(f"'{folder}' holds a {manifest.get('kind')!r}, expected a {kind!r}")
    if not _within(folder, _VERIFIED.get()):
        if _has_digests(manifest):
            verify_files(folder, manifest)
        else:  # written before manifests listed digests
            check_parts(folder, manifest)
    return manifest


def load_folder(path: str | os.PathLike[str], kind: str, build: Callable[[Path, dict[str, Any]], T]) -> T:
    """Load the model at `path`: `build(folder, manifest)` on its current version, once checked.

    Errors other than this library's, raised while building, become a DamagedModelError
    naming the folder. A save that publishes meanwhile makes the load start over on the
    new version (at most LOAD_ATTEMPTS times), so it returns the old or the new model.

    Example:
        >>> load_folder("models/shop", ENGINE_KIND, lambda folder, manifest: manifest["n_items"])   # doctest: +SKIP
        512
    """
    path = Path(path)
    for attempt in range(1, LOAD_ATTEMPTS + 1):
        seen = pointer_text(path)
        try:
            folder, _ = resolve(path)
            with reading(folder):
                manifest = read_manifest(folder, kind)
                token = _VERIFIED.set(folder if _has_digests(manifest) else _VERIFIED.get())
                try:
                    return build(folder, manifest)
                finally:
                    _VERIFIED.reset(token)
        except Exception as exc:
            if attempt < LOAD_ATTEMPTS and pointer_text(path) != seen:
                continue  # a newer version was published (and this one perhaps removed): read that one
            if isinstance(exc, EngineError):
                raise
            raise DamagedModelError(f"model folder '{path}' could not be read: {type(exc).__name__}: {exc}") from exc
    raise AssertionError("unreachable")


def model_folder(path: str | os.PathLike[str]) -> Path:
    """The folder holding the current version's parts: `path` itself for a part nested in a version.

    Example:
        >>> model_folder("models/shop")   # doctest: +SKIP
        PosixPath('models/shop/v-3-0c9e41aa')
    """
    return resolve(Path(path))[0]


def _has_digests(manifest: dict[str, Any]) -> bool:
    return manifest.get("writer") == WRITER or "files" in manifest


def _within(path: Path, root: Path | None) -> bool:
    """Whether `path` is `root` or lies inside it."""
    if root is None:
        return False
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    return path == root or root in path.parents
