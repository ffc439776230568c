"""Engine folders: writing an `EngineState` and its config, and reading them back, checked.

Layout of a version (see `core.folders` for the versions and `core.persistence`
for how they are published): `manifest.json` (format version, library versions,
config, parts, every file's size and digest), `catalog.parquet`, `hashes.parquet`,
`skipped.json`, `index/`, once trained `personaliser/`, once events were
recorded `events.parquet`, and when the engine aligns image and text `fitted/`
(`engine.fitted`; a folder without it loads unaligned). Nothing is ever unpickled. Loading checks what must hold
across the parts: unique ids, every indexed, hashed or skipped item in the catalog,
finite vectors.

A folder holds no absolute path, so it can be moved with its catalog and served by
another user: the catalog's folder is stored relative to the model folder and
resolved against the model folder's real location on load, image paths relative to
the catalog's folder (folders of earlier releases, with absolute paths, still load).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import EngineError
from core.persistence import ENGINE_KIND, DamagedModelError, atomic_dir, load_folder, write_manifest
from index import VectorIndex, load_index

from .catalog import Catalog, CatalogColumns
from .config import EngineConfig
from .events import COLUMNS as EVENT_COLUMNS
from .events import EventLog
from .fitted import FittedContent
from .results import Skipped
from .state import EngineState
from .trained import TrainedModel

# Vectors are checked for NaN and infinity this many rows at a time (bounded memory).
_FINITE_CHUNK = 65_536


def save_engine(path: str | Path, config: EngineConfig, state: EngineState) -> None:
    """Write `state` and `config` to the model folder `path` as a new version, published atomically.

    Raises:
        ModelFolderError: `path` is a file or a folder holding what this library did not write.
    """
    catalog = state.catalog
    with atomic_dir(path) as tmp:
        catalog.to_parquet(tmp / "catalog.parquet")  # mixed-type columns keep their types; image paths relative
        hashes = state.hashes
        pd.DataFrame({"id": list(hashes), "hash": list(hashes.values())}).to_parquet(tmp / "hashes.parquet")
        base = str(catalog.base_dir)
        reasons = [[s.item_id, s.reason.replace(os.path.join(base, ""), "").replace(base, ".")] for s in state.skipped]
        (tmp / "skipped.json").write_text(json.dumps(reasons))
        state.index.save(tmp / "index")
        parts = ["catalog.parquet", "hashes.parquet", "skipped.json", "index"]
        if state.trained is not None:
            state.trained.save(tmp / "personaliser")
            parts.append("personaliser")
        if len(state.events):
            state.events.frame.to_parquet(tmp / "events.parquet", index=False)
            parts.append("events.parquet")
        if state.fitted is not None:
            state.fitted.save(tmp / "fitted")
            parts.append("fitted")
        write_manifest(
            tmp,
            ENGINE_KIND,
            config=config.to_dict(),
            catalog_base_dir=os.path.relpath(catalog.base_dir, os.path.realpath(path)),  # no absolute path inside
            catalog_columns=catalog.columns.to_dict(),
            catalog_allow_outside=catalog.allow_outside,
            n_items=len(state.catalog),
            n_indexed=len(state.index),
            parts=parts,
        )


def load_engine(path: str | Path) -> tuple[EngineConfig, EngineState]:
    """Read the model folder `path` written by `save_engine`, checking every part and how they agree.

    Raises:
        ModelNotFoundError: no model at `path`.
        FormatVersionError: another format version or kind of folder.
        DamagedModelError: a part is missing, damaged or disagrees with another, naming it.
    """
    return load_folder(path, ENGINE_KIND, lambda folder, manifest: _read_engine(folder, manifest, str(path)))


def _read_engine(folder: Path, manifest: Mapping[str, Any], source: str) -> tuple[EngineConfig, EngineState]:
    """Build the config and state from a checked version folder of the model at `source`."""
    where = folder / "manifest.json"
    try:
        config = EngineConfig.from_dict(legacy_defaults(manifest["config"]))
    except KeyError:
        raise DamagedModelError(f"'{where}' has no 'config'") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise DamagedModelError(f"'{where}' holds a config this library cannot use: {exc}") from None
    base_dir, parts = manifest.get("catalog_base_dir"), manifest.get("parts")
    if not isinstance(base_dir, str) or not isinstance(parts, list):
        raise DamagedModelError(f"'{where}' needs 'catalog_base_dir' (text) and 'parts' (a list); got {base_dir!r}, {parts!r}")
    try:
        columns = CatalogColumns.from_dict(manifest.get("catalog_columns") or {})  # absent before columns were kept
    except (TypeError, EngineError) as exc:
        raise DamagedModelError(f"'{where}' holds catalog_columns this library cannot use: {exc}") from None
    # Relative to the model folder's real location; an absolute one was written by an earlier release.
    base = Path(os.path.normpath(os.path.join(os.path.realpath(source), base_dir)))
    catalog = Catalog.read_parquet(
        folder / "catalog.parquet", base, source, allow_outside=manifest.get("catalog_allow_outside") is True, columns=columns
    )
    hashes = pd.read_parquet(folder / "hashes.parquet")
    if not {"id", "hash"} <= set(hashes.columns):
        raise DamagedModelError(f"'{folder / 'hashes.parquet'}' needs columns id and hash; it has {', '.join(map(str, hashes.columns))}")
    skipped = [Skipped(str(i), str(r)) for i, r in _pairs(folder / "skipped.json")]
    trained = TrainedModel.load(folder / "personaliser") if "personaliser" in parts else None
    index = load_index(folder / "index")
    events = _events(folder / "events.parquet") if "events.parquet" in parts else EventLog()
    fitted = _fitted(folder / "fitted", config) if "fitted" in parts else None
    state = EngineState(catalog, index, dict(zip(hashes["id"], hashes["hash"])), skipped, trained, events, fitted)
    _check_state(folder, manifest, state, list(hashes["id"]))
    return config, state


def _fitted(folder: Path, config: EngineConfig) -> FittedContent:
    """fitted/: the image-text alignment and which items have a predicted slot."""
    try:
        return FittedContent.load(folder, config.alignment, config.fusion)
    except EngineError as exc:
        raise DamagedModelError(f"'{folder}' holds an alignment this library cannot use: {exc}") from None


def _events(path: Path) -> EventLog:
    """events.parquet: the recorded events, with the columns `EventLog` keeps."""
    frame = pd.read_parquet(path)
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise DamagedModelError(f"'{path}' lacks column(s) {missing}; it has {', '.join(map(str, frame.columns))}")
    return EventLog(frame.astype({"user_id": str, "item_id": str}))


def _pairs(path: Path) -> list[list[Any]]:
    """skipped.json: a list of [item_id, reason] pairs."""
    pairs = json.loads(path.read_text())
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise DamagedModelError(f"'{path}' should hold a list of [item_id, reason] pairs")
    return pairs


def _check_state(folder: Path, manifest: Mapping[str, Any], state: EngineState, hash_ids: list[str]) -> None:
    """Refuse parts that disagree, checking only what holds whatever was added, removed or trained since."""
    catalog_ids = state.catalog.frame["id"].tolist()
    _unique(catalog_ids, folder / "catalog.parquet")
    _unique(state.index.ids, folder / "index")
    _unique(hash_ids, folder / "hashes.parquet")
    known = set(catalog_ids)
    for part, ids in (("index", state.index.ids), ("hashes.parquet", hash_ids),
                      ("skipped.json", [s.item_id for s in state.skipped])):
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise DamagedModelError(
                f"'{folder / part}' names {len(unknown):,} item(s) missing from catalog.parquet, e.g. {unknown[0]!r}"
            )
    for name, actual in (("n_items", len(catalog_ids)), ("n_indexed", len(state.index))):
        if manifest.get(name) != actual:
            raise DamagedModelError(f"'{folder / 'manifest.json'}' says {name}={manifest.get(name)!r}; the parts hold {actual:,}")
    _check_finite(state.index, folder / "index")
    fitted = state.fitted
    if fitted is not None:
        if fitted.fusion.dim != state.index.dim:
            raise DamagedModelError(f"'{folder / 'fitted'}' is for vectors of {fitted.fusion.dim} dims; the index holds "
                                    f"{state.index.dim}")
        stray = [i for i in fitted.missing if i not in state.index]
        if stray:
            raise DamagedModelError(f"'{folder / 'fitted'}' names {len(stray):,} item(s) missing from the index, "
                                    f"e.g. {stray[0]!r}")


def _unique(ids: list[str], part: Path) -> None:
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        duplicate = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise DamagedModelError(f"'{part}' holds item id {duplicate!r} more than once")


def _check_finite(index: VectorIndex, part: Path) -> None:
    ids = index.ids
    for start in range(0, len(ids), _FINITE_CHUNK):
        chunk = ids[start : start + _FINITE_CHUNK]
        finite = np.isfinite(index.vectors(chunk)).all(axis=1)
        if not finite.all():
            raise DamagedModelError(f"'{part}' holds a vector with NaN or infinity, for item {chunk[int(np.argmin(finite))]!r}")


def legacy_defaults(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """A stored config with the values its folder was written with where a newer field's default differs.

    Folders saved before `EncoderConfig.image_pooling` existed hold average-pooled EfficientNet-Lite
    vectors (the encoders whose default became max pooling); other encoders had no such option.
    Folders saved before `EncoderConfig.runtime` existed were encoded by torch, so they keep it.

    Example:
        >>> legacy_defaults({"encoders": {"image": "efficientnet-lite0"}})["encoders"]["image_pooling"]
        'avg'
        >>> legacy_defaults({"encoders": {"image": None}})["encoders"]["runtime"]
        'torch'
    """
    encoders = config.get("encoders") if isinstance(config, Mapping) else None
    if not isinstance(encoders, dict):
        return config
    image = encoders.get("image")
    if isinstance(image, str) and image.startswith("efficientnet-lite") and "image_pooling" not in encoders:
        encoders = {**encoders, "image_pooling": "avg"}
    if "runtime" not in encoders:
        encoders = {**encoders, "runtime": "torch"}
    return {**config, "encoders": encoders}
