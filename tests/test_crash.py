"""Kills, concurrent saves and loads racing saves: a model folder always loads as the old or the new model.

Children are forked (cheap: the parent has already imported everything), killed at each
step of a save through the SHOPVEC_CRASH_AT hook or at random instants with SIGKILL.
`scripts/crash_check.py` holds the harness and runs it longer on demand.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

from core.persistence import STEPS, model_folder
from engine import Engine

sys.path.insert(0, str(REPO / "scripts"))
import crash_check as check  # noqa: E402  (scripts/crash_check.py: the harness)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder in memory where there is one: fsync is then nearly free, so each of the many saves is fast.

    Kills are not power losses: what they test does not depend on the disk, and the fsyncs still run (and are steps).
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path_factory.mktemp("crash")
        return
    folder = Path(tempfile.mkdtemp(prefix="shopvec-crash-", dir=shm))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def save_scenario(work: Path):
    return check.save_scenario(work / "save-models")


@pytest.fixture(scope="module")
def index_scenario(work: Path):
    return check.index_catalog_scenario(work / "index-models")


def assert_clean(tally) -> None:
    assert tally.clean, "\n".join(tally.problems[:10])
    assert tally.failed == 0 and tally.orphans == 0


def test_kill_at_every_step_of_save_loads_old_before_publishing_and_new_after(save_scenario, work: Path) -> None:
    tally = check.kill_at_every_step(save_scenario, work / "save-steps")
    assert_clean(tally)
    assert set(tally.steps) == set(STEPS)  # every kind of point was a kill point: writes, fsyncs, renames, removals
    published = tally.steps.index("publish") + 1
    assert (tally.kills, tally.old, tally.new) == (len(tally.steps), published - 1, len(tally.steps) - published + 1)


def test_kill_at_every_step_of_index_catalog_script(index_scenario, work: Path) -> None:
    tally = check.kill_at_every_step(index_scenario, work / "index-steps")
    assert_clean(tally)
    assert tally.old >= 1 and tally.new >= 1 and tally.kills == len(tally.steps)


def test_kill_at_every_step_while_converting_the_layout_before_versions(save_scenario, work: Path) -> None:
    def legacy(path: Path) -> None:
        write_legacy(save_scenario.write_old, path, work / "legacy-source")

    tally = check.kill_at_every_step(save_scenario, work / "legacy-steps", prepare=legacy)
    assert_clean(tally)
    assert tally.steps.count("cleanup") >= 5  # the old layout's parts are removed after publishing


def test_random_kills_of_save(save_scenario, work: Path) -> None:
    tally = check.kill_at_random(save_scenario, work / "save-random", kills=20, max_delay=0.12, seed=1)
    assert_clean(tally)
    assert tally.kills == 20


def test_random_kills_of_index_catalog_script(index_scenario, work: Path) -> None:
    tally = check.kill_at_random(index_scenario, work / "index-random", kills=8, max_delay=0.3, seed=2)
    assert_clean(tally)


def test_concurrent_saves_both_succeed_and_leave_one_loadable_model(save_scenario, work: Path) -> None:
    path = work / "concurrent"
    save_scenario.write_old(path)

    def saves(write) -> None:
        for _ in range(12):
            write(path)

    children = [check.fork(lambda w=w: saves(w), stderr=work / "concurrent.err")
                for w in (save_scenario.write_old, save_scenario.write_new)]
    codes = [check.wait(pid) for pid in children]
    assert codes == [0, 0], (work / "concurrent.err").read_text()[-2000:]
    assert save_scenario.which(Engine.load(path)) in ("old", "new")
    assert check.orphans(path) == []


def test_loads_while_another_process_saves_never_fail(save_scenario, work: Path) -> None:
    path, report = work / "racing", work / "loads.json"
    save_scenario.write_old(path)
    seconds = 2.5

    def saver() -> None:
        end = time.monotonic() + seconds + 0.5
        while time.monotonic() < end:
            save_scenario.write_new(path)
            save_scenario.write_old(path)

    def loader() -> None:
        counts: dict[str, object] = {"old": 0, "new": 0, "failed": 0, "errors": []}
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                counts[save_scenario.which(Engine.load(path))] += 1  # type: ignore[operator]
            except Exception as exc:  # noqa: BLE001 - counted
                counts["failed"] += 1  # type: ignore[operator]
                counts["errors"].append(f"{type(exc).__name__}: {exc}")  # type: ignore[union-attr]
        report.write_text(json.dumps(counts))

    pids = [check.fork(saver, stderr=work / "racing.err"), check.fork(loader, stderr=work / "racing.err")]
    assert [check.wait(pid) for pid in pids] == [0, 0], (work / "racing.err").read_text()[-2000:]
    counts = json.loads(report.read_text())
    assert counts["failed"] == 0, counts["errors"][:3]
    assert counts["old"] + counts["new"] >= 10, counts


def write_legacy(write, path: Path, scratch: Path) -> None:
    """The model `write(folder)` saves, in the layout before versions: manifest.json and parts at the top, no digests."""
    shutil.rmtree(scratch, ignore_errors=True)
    write(scratch)
    shutil.copytree(model_folder(scratch), path, ignore=shutil.ignore_patterns(".shopvec-version"))
    for manifest in path.rglob("manifest.json"):
        data = json.loads(manifest.read_text())
        for key in ("writer", "files"):
            data.pop(key, None)
        manifest.write_text(json.dumps(data))
