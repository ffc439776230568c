"""Indexing in checkpointed chunks: a run killed with SIGKILL resumes after its last chunk and ends as an uninterrupted one.

The encoder is the test suite's hashing text encoder, registered as "slow-text" with a
pause per call (so a kill lands between chunks) and a log of how many texts it encoded
(so a test sees which items a run encoded). The killed run is a real subprocess running
`shopvec index`; everything else runs in-process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, HashingTextEncoder, fake_config, make_toy_catalog

from core.errors import CatalogError, InvalidArgumentError
from core.folders import WORK, WORK_MARKER
from core.persistence import ModelFolderError
from encoders.config import EncoderConfig
from encoders.registry import ENCODERS
from engine import Catalog, Engine
from engine.config import EngineConfig
from engine.indexing import index_catalog
from engine.streaming import StreamingConfig, read_chunks

PAUSE_ENV, LOG_ENV, FAIL_ENV = "SHOPVEC_TEST_PAUSE_S", "SHOPVEC_TEST_ENCODE_LOG", "SHOPVEC_TEST_FAIL_AFTER"
ITEMS, CHUNK = 200, 20
_calls = 0


class SlowText(HashingTextEncoder):
    """The hashing text encoder, pausing PAUSE_ENV seconds a call, logging how many texts it encoded, failing on demand."""

    def encode(self, batch: list[str]) -> np.ndarray:
        global _calls
        _calls += 1
        limit = os.environ.get(FAIL_ENV)
        if limit is not None and _calls > int(limit):
            raise RuntimeError("encoder stopped (test)")
        time.sleep(float(os.environ.get(PAUSE_ENV, "0")))
        if log := os.environ.get(LOG_ENV):
            with open(log, "a") as fh:
                fh.write(f"{len(batch)}\n")
        return super().encode(batch)


ENCODERS.setdefault("slow-text", f"{__name__}:SlowText")

RUNNER = f"""
import sys
sys.path[:0] = [{str(REPO)!r}, {str(REPO / "tests")!r}]
import test_index_resume  # registers slow-text
from cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def config(**encoders: object) -> EngineConfig:
    return EngineConfig(encoders=EncoderConfig(image=None, text="slow-text", num_workers=0, **encoders))


def write_catalog(folder: Path, n: int = ITEMS) -> Path:
    rng = np.random.default_rng(0)
    words = np.array("red blue green steel wooden soft kettle lamp chair shoe shirt table pan mug".split())
    rows = [{"id": f"sku-{i}", "title": " ".join(rng.choice(words, 3)), "description": " ".join(rng.choice(words, 6)),
             "category": str(rng.choice(["home", "wear"])), "price": float(i % 50)} for i in range(n)]
    path = folder / "items.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def encoded_count(log: Path) -> int:
    return sum(int(line) for line in log.read_text().split()) if log.exists() else 0


def shopvec(catalog: Path, out: Path, *extra: str, env: dict[str, str]) -> subprocess.Popen[str]:
    args = ["index", str(catalog), "--out", str(out), "--image-encoder", "none", "--text-encoder", "slow-text",
            "--num-workers", "0", "--chunk-rows", str(CHUNK), "--quiet", *extra]
    return subprocess.Popen([sys.executable, "-c", RUNNER, *args], cwd=REPO, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def chunks_done(out: Path) -> int:
    try:
        return int(re.search(r'"chunks": (\d+)', (out / WORK / "checkpoint.json").read_text()).group(1))
    except (OSError, AttributeError):
        return 0


def test_a_run_killed_midway_resumes_after_its_last_chunk_and_equals_an_uninterrupted_build(tmp_path: Path) -> None:
    catalog, out = write_catalog(tmp_path), tmp_path / "model"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    child = shopvec(catalog, out, env={PAUSE_ENV: "0.25", LOG_ENV: str(first_log)})
    deadline = time.monotonic() + 60  # the child imports torch first: seconds, more on a loaded machine
    while chunks_done(out) < 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    _, err = child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL, f"the run ended by itself before the kill: {err[-2000:]}"
    done_before = chunks_done(out) * CHUNK
    assert 0 < done_before < ITEMS
    assert not (out / "CURRENT").exists()  # killed before publishing anything

    child = shopvec(catalog, out, env={PAUSE_ENV: "0", LOG_ENV: str(second_log)})
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr[-2000:]
    assert f"resuming: {done_before:,} of {ITEMS:,} items already encoded" in stderr
    encoded = int(re.search(r"\((\d+) encoded", stdout).group(1))
    assert encoded == ITEMS - done_before == encoded_count(second_log), stdout
    assert f"resumed       : {done_before:,} items" in stdout
    assert not (out / WORK).exists()  # the checkpoint is the engine's own: gone after success

    reference, _ = index_catalog(catalog, tmp_path / "reference", config(), show_progress=False)
    resumed = Engine.load(out)
    assert resumed.index.ids == reference.index.ids and len(resumed.index) == ITEMS
    np.testing.assert_allclose(resumed.index.vectors(resumed.index.ids), reference.index.vectors(reference.index.ids),
                               atol=1e-6)
    assert resumed.catalog.frame.equals(reference.catalog.frame)


def interrupted(catalog: Path, out: Path, monkeypatch: pytest.MonkeyPatch, after: int = 3, chunks: int = 3) -> None:
    """Leave a checkpoint of `chunks` chunks in `out`: the encoder fails after `after` calls."""
    global _calls
    _calls = 0
    monkeypatch.setenv(FAIL_ENV, str(after))
    with pytest.raises(RuntimeError, match="encoder stopped"):
        index_catalog(catalog, out, config(), show_progress=False, streaming=StreamingConfig(chunk_rows=CHUNK))
    monkeypatch.delenv(FAIL_ENV)
    assert chunks_done(out) == chunks and (out / WORK / WORK_MARKER).is_file()


def run(catalog: Path, out: Path, **kwargs: object):
    return index_catalog(catalog, out, config(**kwargs.pop("encoders", {})), show_progress=False,
                         streaming=StreamingConfig(chunk_rows=CHUNK, **kwargs))[1]


def test_a_checkpoint_resumes_only_for_the_same_file_and_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog, out = write_catalog(tmp_path), tmp_path / "model"
    interrupted(catalog, out, monkeypatch)
    report = run(catalog, out)
    assert (report.resumed, report.encoded) == (3 * CHUNK, ITEMS - 3 * CHUNK)

    changed = tmp_path / "model-changed-file"
    interrupted(catalog, changed, monkeypatch)
    frame = pd.read_csv(catalog)
    frame.loc[70, "title"] = "a new title"
    frame.to_csv(catalog, index=False)
    report = run(catalog, changed)
    assert (report.resumed, report.encoded) == (0, ITEMS)
    assert report.catalog_items == ITEMS and not (changed / WORK).exists()

    other_config = tmp_path / "model-changed-config"
    interrupted(catalog, other_config, monkeypatch)
    report = run(catalog, other_config, encoders={"batch_size": 8})
    assert (report.resumed, report.encoded) == (0, ITEMS)

    other_chunks = tmp_path / "model-changed-chunks"
    interrupted(catalog, other_chunks, monkeypatch)
    report = index_catalog(catalog, other_chunks, config(), show_progress=False, streaming=StreamingConfig(chunk_rows=30))[1]
    assert (report.resumed, report.encoded) == (0, ITEMS)

    fresh = tmp_path / "model-fresh"
    interrupted(catalog, fresh, monkeypatch)
    report = run(catalog, fresh, resume=False)
    assert (report.resumed, report.encoded) == (0, ITEMS)


def test_a_run_resumed_over_a_published_model_reuses_its_vectors_and_leaves_it_published_until_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog, out = write_catalog(tmp_path), tmp_path / "model"
    run(catalog, out)
    before = (out / "CURRENT").read_text()
    frame = pd.read_csv(catalog)
    frame.loc[150, "title"] = "a changed title"
    frame.to_csv(catalog, index=False)
    interrupted(catalog, out, monkeypatch, after=0, chunks=150 // CHUNK)  # unchanged chunks reuse, the changed one fails
    assert (out / "CURRENT").read_text() == before and len(Engine.load(out)) == ITEMS  # the old model is untouched
    report = run(catalog, out)
    assert (report.resumed, report.encoded, report.reused) == (7 * CHUNK, 1, ITEMS - 1)


def test_a_users_folder_and_a_foreign_work_folder_are_never_touched(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    catalog = write_catalog(tmp_path / "shop")
    before = sorted(p.name for p in (tmp_path / "shop").iterdir())
    with pytest.raises(ModelFolderError, match="not a model folder"):
        run(catalog, tmp_path / "shop")
    assert sorted(p.name for p in (tmp_path / "shop").iterdir()) == before

    out = tmp_path / "model"
    run(catalog, out)
    (out / WORK).mkdir()
    (out / WORK / "notes.txt").write_text("mine")
    with pytest.raises(ModelFolderError, match="not written by this library"):
        run(catalog, out)
    assert os.listdir(out / WORK) == ["notes.txt"]


def test_a_failure_before_any_chunk_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog, out = write_catalog(tmp_path), tmp_path / "model"
    global _calls
    _calls = 0
    monkeypatch.setenv(FAIL_ENV, "0")
    with pytest.raises(RuntimeError, match="encoder stopped"):
        run(catalog, out)
    assert not out.exists()


def test_duplicate_ids_across_chunks_are_refused_before_encoding_naming_both_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = write_catalog(tmp_path)
    frame = pd.read_csv(catalog)
    frame.loc[185, "id"] = " sku-7 "
    frame.to_csv(catalog, index=False)
    log = tmp_path / "encoded.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    with pytest.raises(CatalogError, match=r"duplicate id 'sku-7': rows 7 \(chunk 0\) and 185 \(chunk 9\)"):
        run(catalog, tmp_path / "model")
    assert encoded_count(log) == 0 and not (tmp_path / "model").exists()


def test_an_invalid_row_in_a_later_chunk_names_where_the_chunk_starts(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path)
    frame = pd.read_csv(catalog)
    frame["price"] = frame["price"].astype(object)
    frame.loc[45, "price"] = "free"
    frame.to_csv(catalog, index=False)
    with pytest.raises(CatalogError, match=r"price in row 5 .*'free'.*chunk 2, which starts at row 40"):
        list(read_chunks(catalog, chunk_rows=CHUNK))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_chunks_read_the_same_catalog_as_the_whole_file(tmp_path: Path, suffix: str) -> None:
    frame = pd.read_csv(write_catalog(tmp_path, 53))
    frame["stock"] = [i % 4 for i in range(53)]
    path = tmp_path / f"items{suffix}"
    {".csv": lambda: frame.to_csv(path, index=False), ".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     ".parquet": lambda: frame.to_parquet(path)}[suffix]()
    chunks = list(read_chunks(path, chunk_rows=10))
    assert [len(c) for c in chunks] == [10, 10, 10, 10, 10, 3]
    whole = Catalog.from_file(path)
    joined = Catalog.from_normalised(pd.concat([c.frame for c in chunks], ignore_index=True), whole.base_dir, str(path))
    assert joined.frame.equals(whole.frame)
    assert [joined.fields(r) for r in range(53)] == [whole.fields(r) for r in range(53)]
    assert joined.texts() == [whole.text(r) for r in range(53)] and joined.image_paths() == [None] * 53


def test_chunked_indexing_with_images_equals_engine_build(tmp_path: Path) -> None:
    catalog = make_toy_catalog(tmp_path)
    engine, report = index_catalog(catalog, tmp_path / "model", fake_config(), show_progress=False,
                                   streaming=StreamingConfig(chunk_rows=3))
    built = Engine.build(Catalog.from_file(catalog), fake_config(), show_progress=False)
    assert engine.index.ids == built.index.ids and report.encoded == 10
    np.testing.assert_allclose(engine.index.vectors(engine.index.ids), built.index.vectors(built.index.ids), atol=1e-6)
    assert engine.catalog.frame.equals(built.catalog.frame)
    assert built.catalog.image_paths() == [built.catalog.image_path(r) for r in range(10)]


def test_streaming_config_is_checked_and_the_cli_shows_its_default() -> None:
    from cli.index import SHOWN_CHUNK_ROWS

    assert StreamingConfig().chunk_rows == SHOWN_CHUNK_ROWS
    for bad in (0, -5, 2.5, True, "100"):
        with pytest.raises(InvalidArgumentError, match=f"chunk_rows must be an integer >= 1, got {bad!r}"):
            StreamingConfig(chunk_rows=bad)


def test_a_second_run_on_the_same_folder_waits_its_turn_and_a_damaged_checkpoint_is_not_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.checkpoint import Checkpoint, IndexingBusyError

    with Checkpoint.open(tmp_path / "model", "key") as first:
        with pytest.raises(IndexingBusyError, match="another indexing run is writing"):
            Checkpoint.open(tmp_path / "model", "key")
        assert first.chunks == []
    catalog, out = write_catalog(tmp_path), tmp_path / "model"
    interrupted(catalog, out, monkeypatch)
    (out / WORK / "chunk-000001.npy").write_bytes(b"not an array")
    report = run(catalog, out)
    assert (report.resumed, report.encoded) == (0, ITEMS) and not (out / WORK).exists()


def test_skipped_items_and_their_reasons_survive_a_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = make_toy_catalog(tmp_path)
    (tmp_path / "f1.png").unlink()  # fruit-1, in the first chunk
    settings = EngineConfig(encoders=EncoderConfig(image="fake-image", text="slow-text", num_workers=0, batch_size=4))
    global _calls
    _calls = 0
    monkeypatch.setenv(FAIL_ENV, "2")
    with pytest.raises(RuntimeError, match="encoder stopped"):
        index_catalog(catalog, tmp_path / "model", settings, show_progress=False, streaming=StreamingConfig(chunk_rows=3))
    monkeypatch.delenv(FAIL_ENV)
    assert chunks_done(tmp_path / "model") == 2
    engine, report = index_catalog(catalog, tmp_path / "model", settings, show_progress=False,
                                   streaming=StreamingConfig(chunk_rows=3))
    assert report.resumed == 6 and report.encoded == 4 and len(engine.index) == 9
    assert [s.item_id for s in report.skipped] == ["fruit-1"] and "f1.png" in report.skipped[0].reason
    assert engine.state.skip_reason("fruit-1") == report.skipped[0].reason


def test_an_image_changed_between_the_kill_and_the_resume_is_encoded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import write_image

    catalog, out = make_toy_catalog(tmp_path), tmp_path / "model"
    settings = EngineConfig(encoders=EncoderConfig(image="fake-image", text="slow-text", num_workers=0, batch_size=4))
    streaming = StreamingConfig(chunk_rows=3)
    global _calls
    _calls = 0
    monkeypatch.setenv(FAIL_ENV, "2")
    with pytest.raises(RuntimeError, match="encoder stopped"):
        index_catalog(catalog, out, settings, show_progress=False, streaming=streaming)
    monkeypatch.delenv(FAIL_ENV)
    assert chunks_done(out) == 2  # chunks 0 (fruit-0..2) and 1 (fruit-3, fruit-4, tool-0) are checkpointed
    image = tmp_path / "f1.png"  # fruit-1, in chunk 0: now a blue picture
    before = image.stat()
    write_image(image, (10, 10, 250))
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # a later mtime, whatever the clock
    engine, report = index_catalog(catalog, out, settings, show_progress=False, streaming=streaming)
    # chunk 1 is taken as it was; in chunk 0 only fruit-1 is encoded again; chunks 2 and 3 (4 items) are new
    assert (report.resumed, report.encoded, report.reused) == (3, 1 + 4, 2)
    fresh = Engine.build(Catalog.from_file(catalog), settings, show_progress=False)
    assert engine.index.ids == fresh.index.ids
    np.testing.assert_allclose(engine.index.vectors(fresh.index.ids), fresh.index.vectors(fresh.index.ids), atol=1e-6)
    assert dict(engine.state.hashes) == dict(fresh.state.hashes)


def test_a_streamed_run_parses_the_catalog_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.streaming as streaming_module

    reads = []
    original = streaming_module.read_table_chunks

    def counted(*args: object, **kwargs: object):
        reads.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(streaming_module, "read_table_chunks", counted)
    catalog = write_catalog(tmp_path)
    engine, report = index_catalog(catalog, tmp_path / "model", config(), show_progress=False,
                                   streaming=StreamingConfig(chunk_rows=CHUNK))
    assert len(reads) == 1 and report.encoded == ITEMS and len(engine.index) == ITEMS
