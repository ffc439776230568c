"""Kill saves at every step and at random instants, and count what a load finds afterwards.

    .venv/bin/python scripts/crash_check.py --random 100

Two scenarios: `Engine.save` (an engine with a trained model written over one without)
and `scripts/index_catalog.py` run in-process (a catalog with one changed item indexed
over the model of the previous catalog). For each, a forked child writes the new model
over the old one and dies: once at every step of the save in turn (the SHOPVEC_CRASH_AT
hook, see `core.folders.STEPS`), then at random instants (SIGKILL while it saves old and
new in a loop). After every kill the folder is loaded: it must hold the old or the new
model. Then it is saved once more, after which nothing but CURRENT, the lock file and
two versions may remain, and an interrupted index run's marked checkpoint folder (anything
else is an orphan). Prints one row per run; exits 1
when a load failed or an orphan remained.

Uses the test suite's fake encoders (tests/conftest.py), so it needs no weights; the
tests (tests/test_crash.py) run the same checks with fewer random kills.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "scripts")]

import faiss  # noqa: E402
import index_catalog  # noqa: E402  (scripts/index_catalog.py)
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from conftest import fake_config, make_toy_catalog  # noqa: E402
from tqdm import tqdm  # noqa: E402

from core.folders import WORK, WORK_MARKER  # noqa: E402
from core.persistence import CRASH_AT_ENV, CRASH_EXIT, CRASH_LOG_ENV, CURRENT  # noqa: E402
from engine import Catalog, Engine  # noqa: E402
from engine.interactions import Interactions  # noqa: E402

LOCK = ".shopvec.lock"
FAKE = ["--image-encoder", "fake-image", "--text-encoder", "fake-text", "--num-workers", "0", "--quiet"]
CHILD_TIMEOUT = 120.0


@dataclass(frozen=True)
class Scenario:
    """An old and a new model, how to write each to a folder, and which of the two a loaded engine is."""

    name: str
    write_old: Callable[[Path], object]
    write_new: Callable[[Path], object]
    which: Callable[[Engine], str]


@dataclass
class Tally:
    """What the loads found after the kills of one run."""

    kills: int = 0
    old: int = 0
    new: int = 0
    failed: int = 0
    orphans: int = 0
    problems: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)  # the save's steps, for a kill at every step

    HEADER = f"{'run':<28}{'kills':>6}{'old':>6}{'new':>6}{'failed':>8}{'orphans':>9}"

    def row(self, name: str) -> str:
        return f"{name:<28}{self.kills:>6}{self.old:>6}{self.new:>6}{self.failed:>8}{self.orphans:>9}"

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.orphans == 0 and not self.problems


# ----- the scenarios ---------------------------------------------------------------
def save_scenario(work: Path) -> Scenario:
    """`Engine.save`: old = a built engine, new = the same engine with a trained model (nested parts)."""
    folder = work / "catalog"
    folder.mkdir(parents=True, exist_ok=True)
    old = Engine.build(Catalog.from_file(make_toy_catalog(folder)), fake_config(), show_progress=False)
    new = Engine.build(Catalog.from_file(folder / "items.csv"), fake_config(), show_progress=False)
    log = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3"], "timestamp": [1, 2, 3, 4, 5],
                        "item_id": ["fruit-0", "fruit-1", "tool-0", "tool-1", "fruit-2"]})
    new.fit(Interactions(log), "popularity", show_progress=False)
    return Scenario("save", old.save, new.save, lambda e: "new" if e.trained is not None else "old")


def index_catalog_scenario(work: Path) -> Scenario:
    """`scripts/index_catalog.py`: old = items.csv indexed, new = items-b.csv (one description changed) indexed."""
    folder = work / "catalog"
    folder.mkdir(parents=True, exist_ok=True)
    first = make_toy_catalog(folder)
    frame = pd.read_csv(first)
    frame.loc[2, "description"] = "now with a new description"
    second = folder / "items-b.csv"
    frame.to_csv(second, index=False)
    def writer(catalog: Path) -> Callable[[Path], object]:
        def write(out: Path) -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                code = index_catalog.main([str(catalog), "--out", str(out), *FAKE])
            if code != 0:
                raise RuntimeError(f"index_catalog.py failed on {out} (exit {code})")
        return write

    def which(engine: Engine) -> str:
        description = engine.catalog.fields(engine.catalog.row("fruit-2"))["description"]
        return "new" if description == "now with a new description" else "old"

    return Scenario("index_catalog.py", writer(first), writer(second), which)


# ----- children ----------------------------------------------------------------------
def fork(task: Callable[[], object], env: dict[str, str] | None = None, stderr: Path | None = None) -> int:
    """Run `task` in a forked child; returns its pid. The child exits 0 when the task returns, 1 when it raises."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        if stderr is not None:
            os.dup2(os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), 2)
        # GNU OpenMP is not fork-safe: a parallel region on the parent's thread pool would hang the child.
        torch.set_num_threads(1)
        faiss.omp_set_num_threads(1)
        # tqdm's default lock is a multiprocessing semaphore shared with the parent: a child
        # killed while holding it (drawing a progress bar) would leave the parent's bars locked.
        tqdm.set_lock(threading.RLock())
        os.environ.update(env or {})
        task()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def wait(pid: int, timeout: float = CHILD_TIMEOUT) -> int:
    """The child's exit code (-9 when killed); kills it after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -999
        time.sleep(0.002)


# ----- checks --------------------------------------------------------------------------
def orphans(path: Path) -> list[str]:
    """Entries of a model folder other than CURRENT, the lock file, and the current and previous versions."""
    pointer = json.loads((path / CURRENT).read_text())
    keep = {CURRENT, LOCK, pointer["version"], pointer["previous"]}
    if (path / WORK / WORK_MARKER).is_file():  # an interrupted index run's checkpoint, for its next run to resume
        keep.add(WORK)
    return sorted(name for name in os.listdir(path) if name not in keep)


def record(tally: Tally, scenario: Scenario, path: Path, expected: str | None = None) -> None:
    """Load after a kill (old or new, else a failure), then save once more and count what is left over."""
    tally.kills += 1
    try:
        engine = Engine.load(path)
        got = scenario.which(engine)
    except Exception as exc:  # noqa: BLE001 - any error is what this counts
        tally.failed += 1
        tally.problems.append(f"load failed: {type(exc).__name__}: {exc}")
        return
    setattr(tally, got, getattr(tally, got) + 1)
    if expected is not None and got != expected:
        tally.problems.append(f"{path.name}: loaded the {got} model, expected the {expected} one")
    engine.save(path)
    left = orphans(path)
    tally.orphans += len(left)
    if left:
        tally.problems.append(f"{path.name}: left over after the next save: {', '.join(left)}")


def write_old_twice(scenario: Scenario, path: Path) -> None:
    """The old model, saved twice: the version before it is then removed by the next save (its cleanup steps)."""
    scenario.write_old(path)
    scenario.write_old(path)


def save_steps(scenario: Scenario, work: Path, prepare: Callable[[Path], object]) -> list[str]:
    """The steps (see core.folders.STEPS) writing the new model over the prepared old one takes, in order."""
    path, log = work / "counting", work / "steps.log"
    prepare(path)
    code = wait(fork(lambda: scenario.write_new(path), {CRASH_AT_ENV: "0", CRASH_LOG_ENV: str(log)}, work / "child.err"))
    if code != 0:
        raise RuntimeError(f"writing the new model failed (exit {code}); see {work / 'child.err'}")
    shutil.rmtree(path)
    return [line.split()[1] for line in log.read_text().splitlines()]


def kill_at_every_step(scenario: Scenario, work: Path, prepare: Callable[[Path], object] | None = None) -> Tally:
    """Kill the child at each step in turn; steps before the publishing replace must give the old model, later ones the new.

    `prepare(path)` writes the old model (default: `write_old_twice`).
    """
    prepare = prepare or (lambda path: write_old_twice(scenario, path))
    work.mkdir(parents=True, exist_ok=True)
    steps = save_steps(scenario, work, prepare)
    published = steps.index("publish") + 1
    pristine = work / "pristine"
    prepare(pristine)
    tally = Tally(steps=steps)
    for n in range(1, len(steps) + 1):
        path = work / f"step-{n}-{steps[n - 1]}"
        shutil.copytree(pristine, path)
        code = wait(fork(lambda: scenario.write_new(path), {CRASH_AT_ENV: str(n)}, work / "child.err"))
        if code != CRASH_EXIT:
            tally.problems.append(f"step {n} ({steps[n - 1]}): the child exited {code}, not at the step")
        record(tally, scenario, path, expected="new" if n >= published else "old")
        shutil.rmtree(path)
    return tally


def kill_at_random(scenario: Scenario, work: Path, kills: int, max_delay: float, seed: int = 0) -> Tally:
    """SIGKILL a child that writes the new and the old model in a loop, after a random delay, `kills` times."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "random"
    scenario.write_old(path)
    rng = random.Random(seed)
    tally = Tally()

    def forever() -> None:
        while True:
            scenario.write_new(path)
            scenario.write_old(path)

    for _ in range(kills):
        pid = fork(forever, stderr=work / "child.err")
        time.sleep(rng.uniform(0.0, max_delay))
        os.kill(pid, signal.SIGKILL)
        if (code := wait(pid)) != -signal.SIGKILL:
            tally.problems.append(f"the saving child ended by itself (exit {code}); see {work / 'child.err'}")
        record(tally, scenario, path)
    return tally


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--random", type=int, default=100, help="random-instant kills per scenario (default 100)")
    p.add_argument("--max-delay", type=float, default=0.3, help="longest wait before a random kill, seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=None, help="folder for the models (default: a temporary one, removed)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="crash-check-"))
    print(Tally.HEADER)
    clean = True
    try:
        for make in (save_scenario, index_catalog_scenario):
            scenario = make(work / make.__name__)
            runs = {
                "every step": lambda s=scenario: kill_at_every_step(s, work / s.name / "steps"),
                f"random x{args.random}": lambda s=scenario: kill_at_random(
                    s, work / s.name / "random", args.random, args.max_delay, args.seed),
            }
            for label, run in runs.items():
                tally = run()
                print(tally.row(f"{scenario.name}: {label}"), flush=True)
                for problem in tally.problems[:10]:
                    print(f"    {problem}")
                clean &= tally.clean
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
