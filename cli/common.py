"""What every sub-command shares: the parser class, `error:` reporting, paths and ids as the user types them.

Heavy packages (torch, transformers, FAISS) are imported inside the commands that need
them, so `shopvec --version` and `shopvec CMD --help` answer at once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_MODEL_HELP = "model folder written by `shopvec index` (or Engine.save)"


class CommandError(Exception):
    """A mistake in how the command was called that argparse cannot see (e.g. no events to train on)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake prints `error: <message>` (and where to look) and exits 2, like every error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n(see `{self.prog} --help`)\n")


def add_command(subparsers: Any, name: str, summary: str, examples: str, details: str = "") -> argparse.ArgumentParser:
    """A sub-command's parser whose `--help` ends with examples.

    Example:
        >>> p = add_command(Parser(prog="shopvec").add_subparsers(), "query", "Query a model.", "shopvec query m --text tea")
        >>> "shopvec query m --text tea" in p.format_help()
        True
    """
    body = "\n".join("  " + line if line.strip() else line for line in examples.strip("\n").splitlines())
    return subparsers.add_parser(
        name,
        help=summary,
        description=summary + ("\n\n" + details.strip("\n") if details else ""),
        epilog=f"examples:\n{body}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def report_error(exc: BaseException | str) -> int:
    """Print `error: <message>` to stderr and return the exit code 2."""
    print(f"error: {exc}", file=sys.stderr)
    return 2


def warn(message: str) -> None:
    """A note on stderr that does not stop the command."""
    print(f"note: {message}", file=sys.stderr)


def quiet_model_loading() -> None:
    """Hide transformers' per-load progress bars (imports transformers: only for commands that encode)."""
    from engine.display import quiet_model_loading as quiet

    quiet()


def only_given(args: argparse.Namespace, fields: Mapping[str, str]) -> dict[str, Any]:
    """{config field: value} for the flags the user set (flag dest -> field); unset flags keep the config's default.

    Example:
        >>> only_given(argparse.Namespace(batch_size=8, device=None), {"batch_size": "batch_size", "device": "device"})
        {'batch_size': 8}
    """
    return {field: getattr(args, dest) for dest, field in fields.items() if getattr(args, dest) is not None}


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as the user would type it here: relative to the working directory when inside it, shell-quoted.

    Example:
        >>> shown_path(Path.cwd() / "models" / "my shop")
        "'models/my shop'"
    """
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(absolute))
    return shlex.quote(str(relative))


def shopvec_command() -> str:
    """How to run `shopvec` from here: the installed script beside this Python, else `python -m cli.main`.

    Example:
        >>> shopvec_command().endswith("shopvec") or "-m cli.main" in shopvec_command()
        True
    """
    bin_dir = Path(sys.executable).parent
    script = bin_dir / ("shopvec.exe" if os.name == "nt" else "shopvec")
    if script.exists():
        shown = shown_path(script)
        return shown if os.sep in shown else f".{os.sep}{shown}"  # a bare name would be looked up on PATH
    return f"{shown_path(sys.executable)} -m cli.main"


def split_ids(text: str) -> list[str]:
    """A comma-separated list of ids, spaces around each stripped and empty entries dropped.

    Example:
        >>> split_ids(" a, b ,,c ")
        ['a', 'b', 'c']
    """
    return [part.strip() for part in text.split(",") if part.strip()]


def bullet_list(names: Iterable[str]) -> str:
    """Names, one per line, indented."""
    return "\n".join(f"  {name}" for name in names)
