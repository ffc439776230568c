"""`shopvec plot-embeddings`: a 2-D map of a model folder's item vectors, coloured by category."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from cli.common import CommandError, add_command, shown_path

log = logging.getLogger("shopvec.plot")

EXAMPLES = """\
shopvec plot-embeddings models/sample                          # t-SNE, to runs/sample-embeddings.png
shopvec plot-embeddings models/sample --method pca --out docs/img/embeddings-pca.png
shopvec plot-embeddings models/shop --color-by brand --max-items 3000"""

DETAILS = """\
t-SNE (scikit-learn, cosine distance, seeded) keeps each item's neighbourhood, which is what
`similar` reads: tight single-colour islands mean the vectors separate the categories. PCA
is linear and keeps the global layout. More than --max-items items: a seeded sample is drawn."""


def register(subparsers: Any) -> None:
    """Add `shopvec plot-embeddings`."""
    p = add_command(subparsers, "plot-embeddings", "Draw a model folder's item vectors in 2-D, coloured by "
                    "category (PNG).", EXAMPLES, DETAILS)
    p.add_argument("folder", type=Path, metavar="DIR", help="model folder written by `shopvec index`")
    p.add_argument("--out", type=Path, default=None, help="PNG to write (default runs/<DIR name>-embeddings.png)")
    p.add_argument("--method", choices=("tsne", "pca"), default="tsne", help="projection to 2-D (default tsne)")
    p.add_argument("--color-by", default="category", metavar="COLUMN", help="catalog column to colour by")
    p.add_argument("--max-items", type=int, default=5000, help="plot a seeded sample of at most this many items")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def item_vectors(engine: Any, column: str, max_items: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    """Ids, vectors and `column` values of the indexed items (a seeded sample of `max_items` when more).

    Example:
        >>> ids, vectors, labels = item_vectors(Engine.load("models/sample"), "category", 5000)   # doctest: +SKIP
    """
    catalog = engine.catalog
    if column not in catalog.column_names:
        raise CommandError(f"the catalog has no column {column!r} to colour by; its columns are: "
                           f"{', '.join(catalog.column_names)}")
    ids = list(engine.index.ids)
    if len(ids) > max_items:
        rows = np.sort(np.random.default_rng(seed).choice(len(ids), max_items, replace=False))
        ids = [ids[r] for r in rows]
    values = catalog.column(column)
    labels = [_label(values.iloc[catalog.row(i)]) for i in ids]
    return ids, np.asarray(engine.index.vectors(ids), dtype=np.float32), labels


def run(args: argparse.Namespace) -> int:
    """Load the folder, project its vectors, draw and save the PNG."""
    if args.max_items < 4:
        raise CommandError(f"--max-items must be at least 4, got {args.max_items}")
    from engine import Engine
    from evaluation.plots import draw_embedding_map, embedding_map, save_figure

    engine = Engine.load(args.folder)
    ids, vectors, labels = item_vectors(engine, args.color_by, args.max_items, args.seed)
    if len(ids) < 4:
        raise CommandError(f"{shown_path(args.folder)} has {len(ids)} indexed items; a 2-D map needs at least 4")
    log.info("projecting %d item vectors (dim %d) with %s", len(ids), vectors.shape[1], args.method)
    projected = embedding_map(vectors, labels, args.method, args.seed, ids)
    sampled = f", a sample of {len(ids):,} of {len(engine.index):,}" if len(ids) < len(engine.index) else ""
    name = {"tsne": "t-SNE", "pca": "PCA"}[args.method]
    title = (f"{args.folder.resolve().name}: {len(ids):,} item vectors{sampled} (dim {vectors.shape[1]}), "
             f"{name} to 2-D, coloured by {args.color_by}")
    out = args.out or Path("runs") / f"{args.folder.resolve().name}-embeddings.png"
    save_figure(draw_embedding_map(projected, title), out)
    print(f"Wrote {shown_path(out)} ({len(ids):,} items, {len(projected.categories())} {args.color_by} values)")
    return 0


def _label(value: Any) -> str:
    """A category cell as a legend label; empty cells are '(none)'."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return "(none)"
    return str(value)
