"""Model folders published in versions, so that a crash at any instant leaves the old or the new model.

A folder that `core.persistence.atomic_dir` saved to:

    path/
      CURRENT            {"writer": "shopvec", "version": "v-7-0c9e41aa", "previous": "v-6-..."}
      .shopvec.lock      flock'd while a save creates, publishes or removes versions
      v-6-.../           the previous version, kept for a reader that has just read CURRENT
      v-7-0c9e41aa/      the current one: the .shopvec-version marker, manifest.json, the parts

A save writes a new version folder beside the others, fsyncs its files and folders,
and publishes it by replacing CURRENT (`os.replace`, one atomic step). Then it removes
the versions older than the previous one and what interrupted saves left behind: only
entries with this library's names that carry its marker (or are empty), and never a
version another save is still writing or a load is reading (they hold a flock on its
marker). A folder holding anything else is refused before anything is written.

Everything a save writes is readable by other users, so a service running as its own
user can load it: folders 0755 and files 0644, less what the process umask removes
(whatever modes the libraries writing the parts chose; a umask of 077 keeps it private).

A folder with manifest.json and no CURRENT is the layout written before versions
existed: it still loads, and the next save publishes a version and removes its parts.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import EngineError
from .integrity import KINDS, MANIFEST, DamagedModelError, parse_manifest

WRITER = "shopvec"
CURRENT = "CURRENT"
LOCK = ".shopvec.lock"
MARKER = ".shopvec-version"
NEW_POINTER = ".CURRENT.new"  # written inside the new version, then moved onto CURRENT
# An indexing run's checkpoints (engine.checkpoint): a folder inside the model folder, holding WORK_MARKER.
WORK, WORK_MARKER = ".shopvec-work", ".shopvec-work-marker"
VERSION = re.compile(r"v-(\d+)-([0-9a-f]{8})")
DIR_MODE, FILE_MODE = 0o755, 0o644  # before the umask: readable by a service running as another user

# Crash testing: with SHOPVEC_CRASH_AT=n set, the n-th step a process takes (counted from 1)
# ends it at once with os._exit(CRASH_EXIT), as a kill at that instant would; with
# SHOPVEC_CRASH_LOG=file, each step is appended to the file ("n name"), so a test learns them.
CRASH_AT_ENV = "SHOPVEC_CRASH_AT"
CRASH_LOG_ENV = "SHOPVEC_CRASH_LOG"
CRASH_EXIT = 86
STEPS = (
    "lock",  # took the folder lock (the folder and its lock file exist)
    "stage",  # created the new version folder and its marker
    "part",  # a nested part (index/, personaliser/model/) finished writing
    "manifest",  # wrote a manifest.json
    "fsync-file",  # flushed one file of the new version
    "fsync-dir",  # flushed one folder of the new version, or the model folder
    "pointer",  # wrote and flushed the new CURRENT inside the new version
    "publish",  # replaced CURRENT: the new version is the model now
    "publish-fsync",  # flushed the model folder after the replace
    "cleanup",  # removed one entry of an old version, a leftover, or the old layout
)
_steps_taken = 0


class ModelFolderError(EngineError, FileExistsError):
    """A save refused because the path holds something this library did not write."""


class ModelNotFoundError(EngineError, FileNotFoundError):
    """No saved model at a path."""


def crash_point(step: str) -> None:
    """Count a step of a save; the test hook (see CRASH_AT_ENV) may end the process here."""
    at = os.environ.get(CRASH_AT_ENV)
    if not at:
        return
    global _steps_taken
    _steps_taken += 1
    if log := os.environ.get(CRASH_LOG_ENV):
        with open(log, "a") as fh:
            fh.write(f"{_steps_taken} {step}\n")
    if _steps_taken == int(at):
        os._exit(CRASH_EXIT)


# ----- reading ---------------------------------------------------------------
def read_pointer(path: Path) -> dict[str, Any] | None:
    """CURRENT's contents, or None when the folder has none.

    Raises:
        DamagedModelError: CURRENT exists but is not a pointer this library wrote.
    """
    try:
        raw = (path / CURRENT).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        pointer = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        pointer = None
    if not isinstance(pointer, dict) or pointer.get("writer") != WRITER or not VERSION.fullmatch(str(pointer.get("version"))):
        raise DamagedModelError(
            f"'{path / CURRENT}' is damaged: expected {{\"writer\": \"{WRITER}\", \"version\": \"v-<n>-<id>\"}}, got {raw[:80]!r}"
        )
    return pointer


def pointer_text(path: Path) -> bytes | None:
    """CURRENT's raw bytes (None when absent): a load compares them to notice a save publishing meanwhile."""
    try:
        return (path / CURRENT).read_bytes()
    except OSError:
        return None


def resolve(path: Path) -> tuple[Path, str | None]:
    """The folder holding the current manifest and parts, and its version name (None: no CURRENT).

    A folder with manifest.json and no CURRENT (the earlier layout, or a part nested in
    a version) is its own current folder.

    Raises:
        ModelNotFoundError: nothing, a file, or a folder without a model at `path`.
        DamagedModelError: CURRENT is damaged or names a version that is missing.

    Example:
        >>> resolve(Path("models/shop"))   # doctest: +SKIP
        (PosixPath('models/shop/v-3-0c9e41aa'), 'v-3-0c9e41aa')
    """
    if not path.is_dir():
        what = "it is a file, not a model folder" if os.path.lexists(path) else "it does not exist" + _aside_hint(path)
        raise ModelNotFoundError(f"no model at '{path}': {what}")
    pointer = read_pointer(path)
    if pointer is not None:
        folder = path / pointer["version"]
        if not (folder / MANIFEST).is_file():
            raise DamagedModelError(f"'{path / CURRENT}' names version {pointer['version']!r}, but '{folder / MANIFEST}' is missing")
        return folder, pointer["version"]
    if (path / MANIFEST).is_file():
        return path, None
    leftovers = [e.name for e in _scan(path) if VERSION.fullmatch(e.name)]
    hint = f" (the save that left {', '.join(leftovers)} did not finish)" if leftovers else ""
    raise ModelNotFoundError(f"no model at '{path}': it has no {CURRENT} and no {MANIFEST}{hint}")


@contextmanager
def reading(folder: Path) -> Iterator[None]:
    """Hold a shared lock on a version's marker while it is read: no save's cleanup removes it meanwhile.

    A folder without a marker (the layout before versions, a nested part) is read without one.
    """
    try:
        fd = os.open(folder / MARKER, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_nlink == 0:  # removed between reading CURRENT and locking: the load starts over
            raise DamagedModelError(f"version '{folder}' was removed by a save while it was being opened")
        yield
    finally:
        os.close(fd)


def _aside_hint(path: Path) -> str:
    """Where the saves of earlier releases (rename aside, then rename into place) left a model when killed between."""
    named = re.compile(rf"\.{re.escape(path.name)}\.(old|tmp)-\w+")
    aside = sorted(p for p in path.parent.glob(f".{glob.escape(path.name)}.*") if named.fullmatch(p.name) and (p / MANIFEST).is_file())
    if not aside:
        return ""
    return f" (an interrupted save of an earlier release left model(s) in {', '.join(map(str, aside))}: rename one to '{path}')"


# ----- whose folder is it -------------------------------------------------------
def check_writable(path: Path) -> None:
    """Refuse, before anything is written, a path that is not absent, empty or a model folder of this library.

    Raises:
        ModelFolderError: naming the path and what it holds; nothing was changed.

    Example:
        >>> check_writable(Path("shop"))   # doctest: +SKIP
        ModelFolderError: refusing to save to 'shop': it is not a model folder of shopvec (it holds items.csv, images/); ...
    """
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise ModelFolderError(
            f"refusing to save to '{path}': it is a file, not a model folder; nothing was changed "
            "(save to a new or empty folder)"
        )
    entries = _scan(path)
    if _has_pointer(path) or legacy_parts(path) is not None or any(_is_marked_version(e) for e in entries):
        return  # a model folder of this library: a save touches only its own entries
    foreign = [e.name + ("/" if e.is_dir() else "") for e in entries if not _is_leftover(e)]
    if not foreign:
        return
    listing = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    raise ModelFolderError(
        f"refusing to save to '{path}': it is not a model folder of {WRITER} (it holds {listing}); "
        "nothing was changed (save to a new or empty folder)"
    )


def legacy_parts(path: Path) -> list[str] | None:
    """The parts of a model folder in the layout before versions (manifest.json at the top), else None."""
    try:
        manifest = parse_manifest(path / MANIFEST)
    except (OSError, DamagedModelError):
        return None
    parts = manifest.get("parts")
    if manifest.get("kind") not in KINDS or not isinstance(manifest.get("format_version"), int) or not isinstance(parts, list):
        return None
    return [p for p in parts if isinstance(p, str) and p not in ("", ".", "..", MANIFEST, CURRENT, LOCK) and "/" not in p]


def _is_marked_version(entry: os.DirEntry[str]) -> bool:
    return bool(VERSION.fullmatch(entry.name)) and entry.is_dir(follow_symlinks=False) and (Path(entry.path) / MARKER).is_file()


def _is_leftover(entry: os.DirEntry[str]) -> bool:
    """The lock file, a version folder emptied or never filled, or an indexing run's marked work folder."""
    if entry.name == LOCK:
        return True
    if entry.name == WORK and entry.is_dir(follow_symlinks=False):
        return not os.listdir(entry.path) or (Path(entry.path) / WORK_MARKER).is_file()
    return bool(VERSION.fullmatch(entry.name)) and entry.is_dir(follow_symlinks=False) and not os.listdir(entry.path)


def _has_pointer(path: Path) -> bool:
    try:
        return read_pointer(path) is not None
    except DamagedModelError:
        return False


def _scan(path: Path) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


# ----- writing -----------------------------------------------------------------
@contextmanager
def new_version(path: Path) -> Iterator[Path]:
    """Yield a new, empty version folder inside `path`; publish it when the block succeeds.

    On an error inside the block the version is removed and the published model is untouched.

    Raises:
        ModelFolderError: `path` holds something this library did not write.

    Example:
        >>> with new_version(Path("models/shop")) as version:   # doctest: +SKIP
        ...     (version / "manifest.json").write_text(...)
    """
    check_writable(path)
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE & ~_umask())
    with _folder_lock(path):  # cleanups never see a version between its mkdir and its marker
        crash_point("lock")
        version = path / _next_name(path)
        version.mkdir()
        marker = os.open(version / MARKER, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(marker, f"{WRITER} model version\n".encode())
        fcntl.flock(marker, fcntl.LOCK_EX)  # held until published: other saves' cleanups keep it
        crash_point("stage")
    published = False
    try:
        yield version
        if not (version / MANIFEST).is_file():
            raise RuntimeError(f"nothing was published to '{path}': the save wrote no {MANIFEST} (call write_manifest last)")
        _set_modes(version)
        _fsync_tree(version)
        fsync_dir(path)
        crash_point("fsync-dir")
        with _folder_lock(path):
            previous = _publish(path, version)
            published = True
            _clean(path, keep={version.name, previous})
    finally:
        if not published:
            _empty_and_remove(version)
        os.close(marker)


def _next_name(path: Path) -> str:
    numbers = [int(m.group(1)) for e in _scan(path) if (m := VERSION.fullmatch(e.name))]
    return f"v-{max(numbers, default=0) + 1}-{secrets.token_hex(4)}"


@contextmanager
def _folder_lock(path: Path) -> Iterator[None]:
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (os.umask alone would, for every thread)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _set_modes(folder: Path) -> None:
    """Folders DIR_MODE and files FILE_MODE, less the umask: a library writing a part may have chosen 0700 or 0600."""
    mask = _umask()
    os.chmod(folder, DIR_MODE & ~mask)
    for here, dirs, files in os.walk(folder):
        for name, mode in [(d, DIR_MODE) for d in dirs] + [(f, FILE_MODE) for f in files]:
            entry = os.path.join(here, name)
            if not os.path.islink(entry):  # chmod would follow it out of the version
                os.chmod(entry, mode & ~mask)


def _fsync_tree(folder: Path) -> None:
    """Flush every file, then every folder bottom-up, so that publishing never exposes unwritten data."""
    for here, _, files in os.walk(folder, topdown=False):
        for name in files:
            fd = os.open(os.path.join(here, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            crash_point("fsync-file")
        fsync_dir(Path(here))
        crash_point("fsync-dir")


def fsync_dir(folder: Path) -> None:
    """Make the entries of `folder` (created, renamed, removed) durable, as `fsync` does a file's bytes."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(path: Path, version: Path) -> str | None:
    """Point CURRENT at `version` with one atomic replace; returns the version it pointed at before."""
    try:
        before = read_pointer(path)
    except DamagedModelError:
        before = None
    previous = before["version"] if before else None
    pointer = json.dumps({"writer": WRITER, "version": version.name, "previous": previous}).encode()
    staged = version / NEW_POINTER
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, pointer)
        os.fsync(fd)
    finally:
        os.close(fd)
    crash_point("pointer")
    os.replace(staged, path / CURRENT)
    crash_point("publish")
    fsync_dir(path)
    crash_point("publish-fsync")
    return previous


def _clean(path: Path, keep: set[str | None]) -> None:
    """Remove old versions, leftovers of interrupted saves, and the parts of the layout before versions."""
    for entry in _scan(path):
        if VERSION.fullmatch(entry.name) and entry.name not in keep and entry.is_dir(follow_symlinks=False):
            _remove_version(Path(entry.path))
    parts = legacy_parts(path)
    if parts is not None:
        for name in parts:  # the manifest goes last, so an interrupted cleanup still knows the parts
            _remove(path / name)
        _remove(path / MANIFEST)


def _remove_version(folder: Path) -> None:
    """Remove an old or abandoned version: only an empty folder or one with an unlocked marker."""
    marker = folder / MARKER
    try:
        fd = os.open(marker, os.O_RDONLY)
    except FileNotFoundError:
        if not any(folder.iterdir()):
            folder.rmdir()
            crash_point("cleanup")
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a save is still writing this version, or a load reading it
        _empty_and_remove(folder)
    finally:
        os.close(fd)


def _empty_and_remove(folder: Path) -> None:
    """Remove a version's contents, its marker last, so that an interrupted removal stays recognisably ours."""
    for child in sorted(folder.iterdir()):
        if child.name != MARKER:
            _remove(child)
    _remove(folder / MARKER)
    _remove(folder)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            return
    else:
        try:
            path.unlink()
        except OSError:  # gone already, or not ours to remove: the next save tries again
            return
    crash_point("cleanup")
