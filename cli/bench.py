"""`shopvec bench`: run one of the benchmarks in `benchmarks/` (each prints a table)."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import pkgutil
import sys
from typing import Any

from cli.common import CommandError, add_command, bullet_list

EXAMPLES = """\
shopvec bench                       # lists the benchmarks
shopvec bench index -- --quick      # flags after -- go to the benchmark
shopvec bench models -- --models lightgcn,popularity --threads 1
shopvec bench engine -- --help      # a benchmark's own flags"""


def register(subparsers: Any) -> None:
    """Add `shopvec bench`."""
    p = add_command(
        subparsers,
        "bench",
        "Run a benchmark (speed, recall); without NAME, list them.",
        EXAMPLES,
        "Each benchmark is benchmarks/bench_NAME.py, also runnable as `python benchmarks/bench_NAME.py`.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="which benchmark (omit to list them)")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="-- ARGS", help="the benchmark's own flags")
    p.set_defaults(run=run)


def available() -> dict[str, str]:
    """{name: first line of its docstring} for every `benchmarks/bench_NAME.py`, read without importing it."""
    import benchmarks

    out = {}
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        spec = importlib.util.find_spec(f"benchmarks.{info.name}")
        doc = ""
        if spec is not None and spec.origin:
            with open(spec.origin, encoding="utf-8") as source:
                doc = ast.get_docstring(ast.parse(source.read())) or ""
        out[info.name.removeprefix("bench_")] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out


def listing(names: dict[str, str]) -> str:
    """The benchmarks as an aligned list with their one-line descriptions."""
    width = max(map(len, names), default=0)
    return bullet_list(f"{name.ljust(width)}  {doc}" for name, doc in names.items())


def run(args: argparse.Namespace) -> int:
    """List the benchmarks, or run one's `main(argv)` with the arguments after `--`."""
    names = available()
    if args.name is None:
        print("benchmarks (shopvec bench NAME [-- ARGS]):")
        print(listing(names))
        return 0
    name = args.name.removeprefix("bench_").removesuffix(".py")
    if name not in names:
        raise CommandError(f"no benchmark named {args.name!r}; available:\n{listing(names)}")
    bench_args = list(args.bench_args)
    if bench_args[:1] == ["--"]:
        bench_args = bench_args[1:]
    module = importlib.import_module(f"benchmarks.bench_{name}")
    program, sys.argv[0] = sys.argv[0], f"shopvec bench {name}"  # what the benchmark's --help calls itself
    try:
        code = module.main(bench_args)
    except SystemExit as exc:  # the benchmark's argparse: --help or a bad flag
        code = exc.code if isinstance(exc.code, int) or exc.code is None else 2
    finally:
        sys.argv[0] = program
    return int(code or 0)
