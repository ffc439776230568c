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
    "num_workers": None,
    "device": "auto",
    "runtime": "auto",
    "image_weight": 0.25,
    "text_weight": 0.75,
    "index": "auto",
}
SHOWN_CHUNK_ROWS = 5_000  # StreamingConfig().chunk_rows, checked by tests/test_index_resume.py
COLUMNS = ("id", "title", "description", "category", "image", "price", "stock")
ENCODER_FLAGS = {
    "image_encoder": "image",
    "text_encoder": "text",
    "image_weights": "image_weights",
    "device": "device",
    "batch_size": "batch_size",
    "num_workers": "num_workers",
    "runtime": "runtime",
    "threads": "threads",
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
        "and keeps a model trained there by `shopvec fit`. The file is encoded in chunks, each\n"
        "checkpointed: a run that was killed continues after its last finished chunk (--fresh: start over).",
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
    enc.add_argument("--num-workers", type=int, metavar="N", help="image-decoding processes (default: sized from the cores)")
    enc.add_argument("--device", help=f"auto, cpu or cuda (default: {d['device']})")
    enc.add_argument("--runtime", help=f"auto, torch, onnx or openvino (default: {d['runtime']}, the measured fastest)")
    enc.add_argument("--threads", type=int, metavar="N", help="CPU threads for encoding, decode workers included "
                     "(default: the cores this process may use)")
    enc.add_argument("--image-weight", type=float, metavar="W", help=f"fusion weight of the image (default: {d['image_weight']})")
    enc.add_argument("--text-weight", type=float, metavar="W", help=f"fusion weight of the text (default: {d['text_weight']})")
    idx = p.add_argument_group("index")
    idx.add_argument("--index", metavar="KIND", help=f"auto, flat, hnsw, ivf or numpy (default: {d['index']})")
    run_group = p.add_argument_group("chunks and resuming")
    run_group.add_argument("--chunk-rows", type=int, metavar="N",
                           help=f"rows read, encoded and checkpointed at a time (default: {SHOWN_CHUNK_ROWS:,})")
    run_group.add_argument("--fresh", action="store_true",
                           help="ignore the checkpoint an interrupted run left in --out and start over")
    ray = p.add_argument_group("cluster (Ray; see docs/scaling.md)")
    ray.add_argument("--ray", metavar="ADDRESS", help="encode on a Ray cluster: 'auto', 'ray://HOST:10001', "
                     "'HOST:PORT', or 'local' (a local cluster for this run); needs shopvec[cluster]")
    ray.add_argument("--ray-actors", type=int, metavar="N", help="encoder actors (default: 2)")
    ray.add_argument("--ray-shards", type=int, metavar="N", help="IVF shards built in parallel, then merged (default: 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Index the catalog and print the summary."""
    from encoders.config import EncoderConfig
    from encoders.fusion import FusionConfig
    from engine.catalog import CatalogColumns
    from engine.config import EngineConfig
    from engine.indexing import index_catalog
    from engine.streaming import StreamingConfig
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
    if args.ray is not None:  # a cluster build: no chunks or checkpoints, every item encoded
        from engine.distributed import ClusterConfig, build_on_ray

        cluster = ClusterConfig(address=args.ray, **only_given(args, {"ray_actors": "num_actors", "ray_shards": "shards"}))
        print(build_on_ray(args.catalog, args.out, config, columns, cluster=cluster,
                           show_progress=not args.quiet).report.summary())
        return 0
    streaming = StreamingConfig(**only_given(args, {"chunk_rows": "chunk_rows"}), resume=not args.fresh)
    _, report = index_catalog(args.catalog, args.out, config, columns, show_progress=not args.quiet, streaming=streaming)
    print(report.summary())
    return 0
