"""Plain-text tables for scripts and notebooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .results import Match


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Left-aligned text table; floats get 3 decimals.

    Example:
        >>> print(format_table([["a", 0.5]], ["id", "score"]))
        id  score
        --  -----
        a   0.500
    """
    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in text]
    return "\n".join(lines)


def format_matches(matches: Sequence[Match], fields: Sequence[str] = ("title", "category", "price")) -> str:
    """A table of matches: rank, id, score, the given fields, and why (for recommendations)."""
    show_why = any(m.because or m.source not in ("similar", "search") for m in matches)
    headers = ["#", "item_id", "score", *fields] + (["source", "because"] if show_why else [])
    rows = []
    for rank, m in enumerate(matches, 1):
        row = [rank, m.item_id, m.score, *[m.fields.get(f, "") for f in fields]]
        if show_why:
            row += [m.source, m.because or ""]
        rows.append(row)
    return format_table(rows, headers)


def quiet_model_loading() -> None:
    """Hide transformers' per-load 'Loading weights' bars (scripts call this; it is global)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
