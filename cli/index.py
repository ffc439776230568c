"""`shopvec index`: read a catalog file, encode its items, write a model folder."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import add_command, only_given, quiet_model_loading

EXAMPLES = """\
shopvec index sample_catalog/items.csv --out models/sample
shopvec index shop.csv --out models/shop --id-column sku --title-column name \\
    --image-column photo --price-column price_eur --stock-column qty
shopvec index shop.jsonl --out models/shop --image-encoder none     # text only"""

# Defaults as shown in --help; tests/test_cli.py checks them against the config classes.
SHOWN_DEFAULTS = {
    "image_encoder": "efficientnet-lite0",
    "text_encoder": "minilm-l6",
    "batch_size": 4,
    "num_workers": 1,
    "device": "auto",
    "image_weight": 0.25,
    "text_weight": 0.75,
    "index": "auto",
}
COLUMNS = ("id", "title", "description", "category", "image", "price", "stock")
ENCODER_FLAGS = {
    "image_encoder": "image",
    "text_encoder": "text",
    "image_weights": "image_weights",
    "device": "device",
    "batch_size": "batch_size",
    "num_workers": "num_workers",
}
FUSION_FLAGS = {"image_weight": "image_weight", "text_weight": "text_weight"}


def register(subparsers: Any) -> None:
    """Add `shopvec index`."""
    p = add_command(
        subparsers,
        "index",
        "Index a catalog file (.csv, .jsonl, .parquet) into a model folder.",
        EXAMPLES,
        "Re-running on the same folder re-encodes only the items whose text or image changed,\n"
        "and keeps a model trained there by `shopvec fit`.",
    )
    p.add_argument("catalog", help="items file: .csv, .jsonl or .parquet (image paths relative to its folder)")
    p.add_argument("--out", required=True, help="model folder to write (reused as a cache when it exists)")
    cols = p.add_argument_group("columns (your column names; the default is the field's own name)")
    for name in COLUMNS:
        cols.add_argument(f"--{name}-column", metavar="NAME", help=f"column holding the item's {name}")
    d = SHOWN_DEFAULTS
    enc = p.add_argument_group("encoders")
    enc.add_argument("--image-encoder", metavar="NAME", help=f"image encoder, or 'none' (default: {d['image_encoder']})")
    enc.add_argument("--text-encoder", metavar="NAME", help=f"text encoder, or 'none' (default: {d['text_encoder']})")
    enc.add_argument("--image-weights", metavar="FILE", help="weights file for a torchvision backbone")
    enc.add_argument("--batch-size", type=int, metavar="N", help=f"items per batch (default: {d['batch_size']})")
    enc.add_argument("--num-workers", type=int, metavar="N", help=f"image-decoding processes (default: {d['num_workers']})")
    enc.add_argument("--device", help=f"auto, cpu or cuda (default: {d['device']})")
    enc.add_argument("--image-weight", type=float, metavar="W", help=f"fusion weight of the image (default: {d['image_weight']})")
    enc.add_argument("--text-weight", type=float, metavar="W", help=f"fusion weight of the text (default: {d['text_weight']})")
    idx = p.add_argument_group("index")
    idx.add_argument("--index", metavar="KIND", help=f"auto, flat, hnsw or numpy (default: {d['index']})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Index the catalog and print the summary."""
    from encoders.config import EncoderConfig
    from encoders.fusion import FusionConfig
    from engine.catalog import CatalogColumns
    from engine.config import EngineConfig
    from engine.indexing import index_catalog
    from index.config import IndexConfig

    quiet_model_loading()
    encoders = only_given(args, ENCODER_FLAGS)
    for field in ("image", "text"):
        if encoders.get(field) == "none":
            encoders[field] = None
    config = EngineConfig(
        encoders=EncoderConfig(**encoders),
        fusion=FusionConfig(**only_given(args, FUSION_FLAGS)),
        index=IndexConfig(**only_given(args, {"index": "kind"})),
    )
    columns = CatalogColumns(**only_given(args, {f"{name}_column": name for name in COLUMNS}))
    _, report = index_catalog(args.catalog, args.out, config, columns, show_progress=not args.quiet)
    print(report.summary())
    return 0
