"""The `shopvec` command, run in-process through `cli.main.main(argv)` with the fake encoders."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_toy_catalog

from cli.main import main

FAKE = ["--image-encoder", "fake-image", "--text-encoder", "fake-text", "--num-workers", "0", "--quiet"]
COMMANDS = ["index", "fit", "query", "evaluate", "bench", "serve", "plot-embeddings"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A shop's own files: catalog columns sku/name/cost/qty/photo, a log with customer/product/ordered_at.

    Users fan-* (and user 42, an integer id in the file) buy fruit; builder-* buy tools.
    """
    root = tmp_path_factory.mktemp("shop")
    items = pd.read_csv(make_toy_catalog(root))
    items = items.rename(columns={"id": "sku", "title": "name", "price": "cost", "image": "photo"})
    items["qty"] = [3, 0, 7, 1, 2, 5, 4, 0, 9, 6]
    items.to_csv(root / "shop.csv", index=False)
    rows, t = [], 1_700_000_000
    for u, (user, kind) in enumerate([(f"fan-{i}", "fruit") for i in range(5)] + [(f"builder-{i}", "tool") for i in range(5)]
                                     + [("42", "fruit")]):
        for j in range(4):
            rows.append({"customer": user, "product": f"{kind}-{(u + j) % 5}", "ordered_at": t})
            t += 60
    pd.DataFrame(rows).to_csv(root / "orders.csv", index=False)
    return {"root": root, "catalog": root / "shop.csv", "log": root / "orders.csv", "model": root / "model"}


@pytest.fixture(scope="module")
def fitted(shop: dict[str, Path]) -> dict[str, object]:
    """The shop indexed with its column names, then fitted on its log with its column names."""
    out = io.StringIO()  # module-scoped: capsys is per test
    with contextlib.redirect_stdout(out):
        indexed = main(["index", str(shop["catalog"]), "--out", str(shop["model"]), "--id-column", "sku",
                        "--title-column", "name", "--image-column", "photo", "--price-column", "cost",
                        "--stock-column", "qty", *FAKE])
        index_out = out.getvalue()
        out.truncate(0)
        fit = main(["fit", str(shop["model"]), "--events", str(shop["log"]), "--user-column", "customer",
                    "--item-column", "product", "--time-column", "ordered_at", "--model", "bprmf", "--epochs", "20",
                    "--quiet"])
    return {"index": (indexed, index_out), "fit": (fit, out.getvalue()), **shop}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert run(["--version"], capsys)[:2] == (0, f"shopvec {version('shopvec')}\n")


def test_installed_entry_point_runs() -> None:
    """`pip install .` puts `shopvec` beside the interpreter; it starts and answers --version."""
    script = Path(sys.executable).parent / "shopvec"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("shopvec ")


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and all(re.search(rf"^\s+{c}\s", out, re.M) for c in COMMANDS), out
    assert run([], capsys)[0] == 0


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    # an example line, not the usage line ("usage: shopvec CMD ...")
    assert re.search(rf"^\s*shopvec {command} \S", out, re.M), out


def test_index_help_states_the_config_defaults() -> None:
    from cli.index import SHOWN_DEFAULTS
    from encoders.config import EncoderConfig
    from encoders.fusion import FusionConfig
    from index.config import IndexConfig

    e, f = EncoderConfig(), FusionConfig()
    actual = {"image_encoder": e.image, "text_encoder": e.text, "batch_size": e.batch_size,
              "num_workers": e.num_workers, "device": e.device, "runtime": e.runtime, "image_weight": f.image_weight,
              "text_weight": f.text_weight, "index": IndexConfig().kind}
    assert SHOWN_DEFAULTS == actual


def test_index_and_fit_read_the_shops_own_column_names(fitted: dict[str, object]) -> None:
    code, out = fitted["index"]
    assert code == 0 and "indexed       : 10 (10 encoded" in out
    code, out = fitted["fit"]
    assert code == 0, out
    assert "bprmf" in out and "11 users, 10 items, 44 events" in out
    assert re.search(r"kept", out, re.I) and "epoch" in out.lower(), out


def test_query_a_known_user_with_typed_fields_as_json(fitted: dict[str, object], capsys) -> None:
    code, out, err = run(["query", fitted["model"], "--user", "42", "-k", "3", "--json"], capsys)
    assert code == 0 and "not in the training log" not in err, err
    items = json.loads(out)["items"]
    assert len(items) == 3 and {i["source"] for i in items} <= {"bprmf", "content"}
    for item in items:
        assert set(item) == {"item_id", "score", "fields", "source", "because"}
        assert isinstance(item["fields"]["price"], float) and isinstance(item["fields"]["stock"], int)
        assert item["fields"]["title"].split()[0] in ("Red", "Blue")
    # the catalog's cost and qty columns came through as price and stock
    apple = pd.read_csv(fitted["catalog"]).set_index("sku").loc[items[0]["item_id"]]
    assert items[0]["fields"]["price"] == pytest.approx(apple["cost"])
    assert items[0]["fields"]["stock"] == apple["qty"]


def test_query_an_unknown_user_says_so(fitted: dict[str, object], capsys) -> None:
    code, out, err = run(["query", fitted["model"], "--user", "nobody", "-k", "2"], capsys)
    assert code == 0
    assert "user 'nobody' is not in the training log or recorded events: showing popular items" in err
    assert "popularity" in out
    code, _, err = run(["query", fitted["model"], "--user", "nobody", "--strict"], capsys)
    assert code == 2 and "error: user 'nobody' is not in the training log or recorded events" in err


def test_query_strips_spaces_around_ids(fitted: dict[str, object], capsys) -> None:
    code, out, err = run(["query", fitted["model"], "--history", " fruit-0 ,  fruit-1 ", "-k", "3", "--json"], capsys)
    assert code == 0, err
    ids = [i["item_id"] for i in json.loads(out)["items"]]
    assert len(ids) == 3 and not {"fruit-0", "fruit-1"} & set(ids)
    code, out, err = run(["query", fitted["model"], "--similar", " fruit-0 ", "-k", "2"], capsys)
    assert code == 0 and "fruit-" in out.splitlines()[2], err


def test_fit_without_a_log_trains_on_the_recorded_events(fitted: dict[str, object], tmp_path: Path, capsys) -> None:
    from engine.engine import Engine

    folder = tmp_path / "model"
    shutil.copytree(fitted["model"], folder)
    engine = Engine.load(folder)
    engine.log_events([{"user_id": "newcomer", "item_id": "tool-1"}, {"user_id": "newcomer", "item_id": "tool-2"}]
                      + [{"user_id": f"fan-{i}", "item_id": f"fruit-{i}"} for i in range(5)])
    engine.save(folder)
    # a user known only by recorded events is not "unknown": served from their own events
    code, out, err = run(["query", folder, "--user", "newcomer", "-k", "2", "--strict"], capsys)
    assert code == 0 and "not in the training log" not in err and "popularity" not in out, (out, err)
    code, out, err = run(["fit", folder, "--model", "bprmf", "--epochs", "2", "--quiet"], capsys)
    assert code == 0, err
    assert "trained       : bprmf on the 7 events recorded in" in out and "6 users, 10 items, 7 events" in out


def test_query_text_with_category(fitted: dict[str, object], capsys) -> None:
    code, out, _ = run(["query", fitted["model"], "--text", "blue hammer", "-k", "2", "--category", "tools"], capsys)
    assert code == 0 and out.count("tool-") == 2


ERRORS = [
    (["query", "{model}", "--similar", "nope"], r"item 'nope' is not in the catalog"),
    (["query", "{model}"], r"one of the arguments --similar --text --image --user --history is required"),
    (["query", "{model}", "--history", " , "], r"--history needs comma-separated item ids, got ' , '"),
    (["query", "{root}/no-model", "--text", "apple"], r"no-model"),
    (["fit", "{model}"], r"nothing to train on: give an interaction log with --events LOG"),
    (["fit", "{model}", "--user-column", "customer"], r"--user-column name columns of an --events LOG file"),
    (["fit", "{model}", "--events", "{log}", "--user-column", "buyer"], r"renames \['buyer'\] but the log has only"),
    (["fit", "{model}", "--events", "{log}", "--epochs", "0"], r"--epochs must be a positive integer, got 0"),
    (["fit", "{model}", "--events", "{root}/none.csv"], r"none\.csv"),
    (["index", "{catalog}", "--out", "{root}/m2", "--id-column", "id", *FAKE], r"has no id column 'id'"),
    (["index", "{catalog}", "--out", "{root}/m2", "--batch-size", "two", *FAKE], r"argument --batch-size: invalid int"),
    (["bench", "nope"], r"no benchmark named 'nope'; available:"),
    (["serve", "{model}", "--port", "70000"], r"--port must be 1\.\.65535, got 70000"),
    (["shop"], r"invalid choice: 'shop'"),
]


@pytest.mark.parametrize(("argv", "message"), ERRORS, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(ERRORS)])
def test_errors_exit_2_with_the_message(fitted: dict[str, object], argv: list[str], message: str, capsys) -> None:
    code, out, err = run([a.format(**fitted) for a in argv], capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    assert re.search(message, err) and err.startswith("error: "), err


def test_bench_lists_and_runs_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["bench"], capsys)
    assert code == 0
    listed = re.findall(r"^  (\w+)  ", out, re.M)
    assert {"index", "engine", "models", "writes"} <= set(listed), out
    _, _, err = run(["bench", "nope"], capsys)
    assert all(name in err for name in listed)
    # arguments after -- reach the benchmark's own parser (here: its --help, which runs nothing)
    code, out, _ = run(["bench", "index", "--", "--help"], capsys)
    assert code == 0 and "--quick" in out


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Replaces `service.server.serve`: records its arguments instead of starting a server."""
    import service.server

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(service.server, "serve", lambda folder, host, port, config: calls.append(
        {"folder": folder, "host": host, "port": port, "config": config}))
    monkeypatch.delenv("SHOPVEC_API_KEY", raising=False)
    return calls


def test_serve_maps_its_flags_to_the_service_config(served, monkeypatch, capsys) -> None:
    argv = ["serve", "models/x", "--host", "0.0.0.0", "--port", "8080", "--save-every", "5",
            "--cors-origin", "https://a.example", "--cors-origin", "https://b.example"]
    code, out, _ = run(argv, capsys)
    assert code == 0 and "gallery at http://127.0.0.1:8080" in out
    (call,) = served
    assert (call["folder"], call["host"], call["port"]) == ("models/x", "0.0.0.0", 8080)
    config = call["config"]
    assert config.api_key is None and config.save_every_s == 5
    assert config.cors_origins == ("https://a.example", "https://b.example")
    defaults = type(config)()
    assert {f.name for f in fields(config) if getattr(config, f.name) != getattr(defaults, f.name)} == {
        "save_every_s", "cors_origins"}


def test_serve_takes_the_api_key_from_the_flag_or_the_environment(served, monkeypatch, capsys) -> None:
    assert run(["serve", "models/x"], capsys)[0] == 0
    assert (served[-1]["host"], served[-1]["port"]) == ("127.0.0.1", 8000)
    monkeypatch.setenv("SHOPVEC_API_KEY", "from-env")
    assert run(["serve", "models/x"], capsys)[0] == 0
    assert served[-1]["config"].api_key == "from-env"
    assert run(["serve", "models/x", "--api-key", "from-flag"], capsys)[0] == 0
    assert served[-1]["config"].api_key == "from-flag"
