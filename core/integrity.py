"""What a model folder's manifest promises about its files, and checking that promise on load.

A manifest lists every file of its folder with its size and SHA-256 digest. A
subfolder that has a manifest of its own (a part saved by its own `save`, such
as an engine's `index/`) is listed by that manifest alone, which lists its
files: one tree of digests, so every byte is hashed once on save and once on
load. `.npy` headers are checked against the file size before anything is
read, and arrays of Python objects (which would need unpickling) are refused.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .errors import EngineError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# What a folder holds, written as the manifest's "kind": one constant each.
ENGINE_KIND = "engine"
INDEX_KIND = "vector_index"
MODEL_KIND = "recommender"
PERSONALISER_KIND = "personaliser"
KINDS = (ENGINE_KIND, INDEX_KIND, MODEL_KIND, PERSONALISER_KIND)
# SHA-256: hardware-accelerated on current x86 (SHA-NI) and ARM CPUs, 0.75 s per GB on one core here
# against 1.1 s for BLAKE2b (benchmarks/bench_persistence.py); `sha256sum` checks a part by hand.
DIGEST = "sha256"


class DamagedModelError(EngineError, ValueError):
    """A model folder whose files disagree with its manifest, or that cannot be read."""


def file_digest(path: Path) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest, buffer = hashlib.new(DIGEST), bytearray(1 << 20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def describe_files(folder: Path, skip: Collection[str] = ()) -> dict[str, dict[str, Any]]:
    """Relative path -> {"size", digest} of the files under `folder`, except the names in `skip` at its top.

    Example:
        >>> describe_files(Path("models/shop/v-3-k2j4h1x0"))   # doctest: +SKIP
        {'catalog.parquet': {'size': 5120, 'sha256': '9f...'}, 'index/manifest.json': {...}, ...}
    """
    files: dict[str, dict[str, Any]] = {}
    pending = [(folder, "")]
    while pending:
        here, prefix = pending.pop()
        for entry in sorted(here.iterdir()):
            rel = prefix + entry.name
            if not prefix and entry.name in skip:
                continue
            if entry.is_dir():
                nested = entry / MANIFEST
                if nested.is_file():  # covered by its own manifest
                    files[f"{rel}/{MANIFEST}"] = _describe(nested)
                else:
                    pending.append((entry, rel + "/"))
            elif entry.is_file():
                files[rel] = _describe(entry)
    return dict(sorted(files.items()))


def _describe(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, DIGEST: file_digest(path)}


def parse_manifest(path: Path) -> dict[str, Any]:
    """The JSON object in a manifest file; DamagedModelError when it is not one."""
    try:
        manifest = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedModelError(f"'{path}' is not valid JSON ({exc}); expected the manifest this library writes") from None
    if not isinstance(manifest, dict):
        raise DamagedModelError(f"'{path}' holds a JSON {type(manifest).__name__}; expected an object (the manifest)")
    return manifest


def verify_files(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Check every file the manifest lists: present, of its size and digest; nested manifests recursively.

    Raises:
        DamagedModelError: naming the file and what was expected of it.

    Example:
        >>> verify_files(folder, parse_manifest(folder / MANIFEST))   # doctest: +SKIP
    """
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise DamagedModelError(f"'{folder / MANIFEST}' has no list of files (a mapping 'files'); got {files!r:.80}")
    for rel, expected in files.items():
        path = _inside(folder, rel)
        if not isinstance(expected, dict) or not isinstance(expected.get("size"), int) or DIGEST not in expected:
            raise DamagedModelError(f"'{folder / MANIFEST}' describes '{rel}' as {expected!r:.80}; expected size and {DIGEST}")
        if not path.is_file():
            raise DamagedModelError(f"model part '{path}' is missing; the manifest lists it ({expected['size']:,} bytes)")
        size = path.stat().st_size
        if size != expected["size"]:
            raise DamagedModelError(
                f"model part '{path}' has {size:,} bytes; the manifest says {expected['size']:,} (truncated or overwritten)"
            )
        if path.suffix == ".npy":
            check_npy(path)
        if file_digest(path) != expected[DIGEST]:
            raise DamagedModelError(
                f"model part '{path}' has other contents than were saved: its {DIGEST} digest differs from the manifest's"
            )
        if path.name == MANIFEST:
            verify_files(path.parent, parse_manifest(path))


def check_parts(folder: Path, manifest: Mapping[str, Any]) -> None:
    """The checks a manifest without digests (written before they existed) allows: parts present, .npy headers sane."""
    parts = manifest.get("parts", [])
    if not isinstance(parts, list):
        raise DamagedModelError(f"'{folder / MANIFEST}' lists parts as {parts!r:.80}; expected a list of names")
    for part in parts:
        path = _inside(folder, str(part))
        if not path.exists():
            raise DamagedModelError(f"model part '{path}' is missing; the manifest lists it")
    for path in folder.glob("*.npy"):
        check_npy(path)


def _inside(folder: Path, rel: str) -> Path:
    """`folder / rel`, refusing names that would leave the folder."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise DamagedModelError(f"'{folder / MANIFEST}' lists {rel!r}, which is not a path inside the folder")
    return folder.joinpath(*pure.parts)


def check_npy(path: Path) -> None:
    """Refuse a `.npy` file whose header is unreadable, asks for Python objects, or disagrees with the file size.

    Reads the header only, so a header claiming a terabyte array allocates nothing.

    Example:
        >>> check_npy(Path("models/shop/v-3-k2j4h1x0/index/vectors.npy"))   # doctest: +SKIP
    """
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, OSError, SyntaxError, TypeError) as exc:
            raise DamagedModelError(f"model part '{path}' is not a readable .npy array: {exc}") from None
        offset = fh.tell()
    if dtype.hasobject:
        raise DamagedModelError(
            f"model part '{path}' holds Python objects (dtype {dtype}), which would need unpickling; refused"
        )
    expected = offset + math.prod(int(n) for n in shape) * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        raise DamagedModelError(
            f"model part '{path}' has {size:,} bytes, but its header claims a {dtype} array of shape "
            f"{tuple(shape)} ({expected:,} bytes); truncated or damaged"
        )
