"""The main job on the sample catalog, as the `shopvec` commands you would type: index, query, personalise.

    python scripts/demo.py                  # writes models/sample; the model is picked on the log (auto)
    python scripts/demo.py --model sasrec   # a named personalisation model instead

1. `shopvec index` sample_catalog/items.csv (re-runs reuse unchanged items),
2. `shopvec query` for similar items, a text query and an image query,
3. `shopvec fit` on the simulated log sample_catalog/interactions.csv (by default `auto`: the
   candidates are tried on the log's own validation within about 45 s, the selection table is
   printed, the best is retrained on every event), then recommendations for two users with
   contrasting tastes and for an anonymous visitor,
4. prints how to query the model and start the service on it, runnable as pasted.

Each step prints the command it runs, then runs it in this process.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cli.common import report_error, shopvec_command, shown_path
from cli.main import main as shopvec
from core.errors import EngineError

HERE = Path(__file__).resolve().parents[1] / "sample_catalog"
SIMILAR_EXAMPLES = ("food-red-apple", "clothing-t-shirt", "vehicles-bicycle")
TEXT_EXAMPLE = "something warm to drink"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalog", type=Path, default=HERE / "items.csv")
    p.add_argument("--interactions", type=Path, default=HERE / "interactions.csv")
    p.add_argument("--out", type=Path, default=Path("models/sample"))
    p.add_argument("--model", default=None, help="personalisation model (default: the engine's default, auto)")
    p.add_argument("-k", type=int, default=5)
    args = p.parse_args(argv)
    k = ["-k", str(args.k)]

    if code := step("1. indexing the catalog", ["index", args.catalog, "--out", args.out]):
        return code
    try:
        from engine.engine import Engine

        catalog = Engine.load(args.out).catalog
        users = contrasting_users(args.interactions)
    except (EngineError, OSError, ValueError, KeyError) as exc:  # the model, or the log read by pandas
        return report_error(exc)
    examples = [i for i in SIMILAR_EXAMPLES if i in catalog] or list(catalog.ids[:1])
    queries = [(f"2. items similar to {i}", ["query", args.out, "--similar", i, *k]) for i in examples]
    queries.append(("2. a text query", ["query", args.out, "--text", TEXT_EXAMPLE, *k]))
    photo = catalog.image_path(catalog.row(examples[0]))
    if photo is not None:
        photo = Path(catalog.base_dir) / photo  # a relative path is relative to the catalog's folder
        queries.append((f"2. an image query (the photo of {examples[0]})", ["query", args.out, "--image", photo, *k]))
    fit = ["fit", args.out, "--events", args.interactions] + (["--model", args.model] if args.model else [])
    queries.append(("3. personalisation: training on the SIMULATED log", fit))
    for user, tastes in users:
        queries.append((f"3. recommendations for {user}, who {tastes}", ["query", args.out, "--user", user, *k]))
    history = ", ".join(examples[:2])
    queries.append(("3. an anonymous visitor who viewed " + history, ["query", args.out, "--history", history, *k]))
    for title, command in queries:
        if code := step(title, command):
            return code

    print(next_steps(args.out, users[0][0] if users else "USER_ID"))
    return 0


def next_steps(out: Path, user: str) -> str:
    """How to query the model and start the service on it: commands runnable as pasted here."""
    run, model = shopvec_command(), shown_path(out)
    return "\n".join([
        "\n== next: try it yourself (from this folder)",
        "Query the model:",
        f"  {run} query {model} --user {shlex.quote(user)}",
        f"  {run} query {model} --text {shlex.quote('red shoes')}",
        "Start the service (the web gallery, the HTTP API and its docs at /docs):",
        f"  {run} serve {model}",
        "  then open http://127.0.0.1:8000",
    ])


def step(title: str, command: list[str | Path]) -> int:
    """Print a step's title and its `shopvec` command line, as typed here, then run it in this process."""
    shown = " ".join(shown_path(a) if isinstance(a, Path) else shlex.quote(a) for a in command)
    print(f"\n== {title}\n$ {shopvec_command()} {shown}", flush=True)
    return shopvec([str(a) for a in command])


def contrasting_users(log_path: Path) -> list[tuple[str, str]]:
    """Two simulated users whose favourite categories differ most, with a line on their tastes.

    Reads the simulator's `<log>_tastes.csv` beside the log; without it, the log's first user alone.
    """
    tastes_path = log_path.with_name(log_path.stem + "_tastes.csv")
    if not tastes_path.exists():
        first = pd.read_csv(log_path, usecols=["user_id"], dtype=str, nrows=1)["user_id"]
        return [(str(first.iloc[0]), "is the log's first user")] if len(first) else []
    tastes = pd.read_csv(tastes_path, dtype={"user_id": str}).set_index("user_id")
    first = tastes.index[0]
    overlap = (tastes * tastes.loc[first]).sum(axis=1)
    return [(str(user), taste_line(tastes.loc[user])) for user in (first, str(overlap.idxmin()))]


def taste_line(weights: pd.Series) -> str:
    top = weights.sort_values(ascending=False).head(3)
    return "likes " + ", ".join(f"{c} ({w:.0%})" for c, w in top.items() if w > 0.05)


if __name__ == "__main__":
    raise SystemExit(main())
