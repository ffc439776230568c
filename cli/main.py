"""The `shopvec` command: one entry point, a sub-command per job.

    shopvec index sample_catalog/items.csv --out models/sample
    shopvec fit models/sample --events sample_catalog/interactions.csv
    shopvec query models/sample --similar food-red-apple
    shopvec serve models/sample            # then open http://127.0.0.1:8000

Installed by `pip install .` (`[project.scripts]`); `python -m cli.main` runs the same.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cli import bench, evaluate, fit, index, plot, query, serve
from cli.common import CommandError, Parser, report_error
from core.errors import EngineError

EXAMPLES = """\
quick start (the sample catalog):
  shopvec index sample_catalog/items.csv --out models/sample
  shopvec fit models/sample --events sample_catalog/interactions.csv
  shopvec query models/sample --similar food-red-apple
  shopvec query models/sample --user user-0000
  shopvec serve models/sample            # then open http://127.0.0.1:8000

`shopvec COMMAND --help` shows a command's flags and examples."""


def version() -> str:
    """The installed distribution's version, e.g. '0.1.0'."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("shopvec")
    except PackageNotFoundError:  # run from a source checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> Parser:
    """The `shopvec` parser with every sub-command registered."""
    parser = Parser(
        prog="shopvec",
        description="Multimodal product search and recommendation: index a catalog, train on a log, query, serve.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"shopvec {version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in (index, fit, query, evaluate, bench, serve, plot):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `shopvec` with `argv` (default: the process's arguments); returns the exit code.

    Any error the engine raises on purpose, a file it cannot read or write, and a bad
    flag end as `error: <message>` on stderr with exit code 2, never a traceback.

    Example:
        >>> main(["--version"])  # doctest: +SKIP
        shopvec 0.1.0
        0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version and usage errors: argparse has printed what to say
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.run(args) or 0)
    except (EngineError, CommandError, OSError) as exc:  # OSError: a file or folder cannot be read or written
        return report_error(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
