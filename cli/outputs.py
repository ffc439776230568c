"""What both `shopvec evaluate` commands share: JSON written whole or not at all, PNGs beside it, partial
results apart, progress lines shown."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np


def write_json(report: dict[str, Any], path: Path) -> None:
    """Write `report` whole or not at all (a temporary file renamed into place).

    Example:
        >>> write_json({"k": 10}, Path("runs/x.json"))   # doctest: +SKIP
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=plain) + "\n")
    tmp.replace(path)


def plain(value: Any) -> Any:
    """JSON for NumPy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def partial_path(out: Path) -> Path:
    """Where results so far are kept while a run goes: `<stem>.partial.json` beside `out`.

    Example:
        >>> partial_path(Path("runs/ml100k.json")).as_posix()
        'runs/ml100k.partial.json'
    """
    return out.with_name(f"{out.stem}.partial.json")


def sibling(out: Path, what: str) -> Path:
    """A PNG beside `out`.

    Example:
        >>> sibling(Path("runs/ml100k.json"), "ndcg-at-k").as_posix()
        'runs/ml100k-ndcg-at-k.png'
    """
    return out.with_name(f"{out.stem}-{what}.png")


def show_progress_log() -> None:
    """Log lines of the evaluation (which model fits now) at INFO, whatever the root logger's level: a run is long."""
    for name in ("evaluation", "shopvec.evaluate"):
        logging.getLogger(name).setLevel(logging.INFO)
    if not logging.getLogger().handlers:  # called as a library function: give the lines somewhere to go
        logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
