"""Index a catalog file into a model folder.

    python scripts/index_catalog.py sample_catalog/items.csv --out models/sample

Re-running on the same folder re-encodes only the items whose text or image changed.
"""

from __future__ import annotations

import argparse
import logging
import sys

from core.errors import EngineError
from encoders.config import EncoderConfig
from encoders.fusion import FusionConfig
from engine.catalog import CatalogColumns
from engine.config import EngineConfig
from engine.display import quiet_model_loading
from engine.indexing import index_catalog
from index.config import IndexConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags; each maps to a config field."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("catalog", help="items file: .csv, .jsonl or .parquet")
    p.add_argument("--out", required=True, help="model folder to write (reused as a cache when it exists)")
    cols = p.add_argument_group("columns")
    for name in ("id", "title", "description", "category", "image"):
        cols.add_argument(f"--{name}-column", default=name, help=f"column holding the item's {name} (default: {name})")
    enc = p.add_argument_group("encoders")
    d = EncoderConfig()
    enc.add_argument("--image-encoder", default=d.image, help="image encoder name, or 'none'")
    enc.add_argument("--text-encoder", default=d.text, help="text encoder name, or 'none'")
    enc.add_argument("--image-weights", default=None, help="weights file for a torchvision backbone")
    enc.add_argument("--batch-size", type=int, default=d.batch_size)
    enc.add_argument("--num-workers", type=int, default=d.num_workers, help="image-decoding processes")
    enc.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    f = FusionConfig()
    enc.add_argument("--image-weight", type=float, default=f.image_weight, help="fusion weight of the image vector")
    enc.add_argument("--text-weight", type=float, default=f.text_weight, help="fusion weight of the text vector")
    idx = p.add_argument_group("index")
    idx.add_argument("--index", default=IndexConfig().kind, help="auto, flat, hnsw or numpy")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    quiet_model_loading()
    try:
        config = EngineConfig(
            encoders=EncoderConfig(
                image=None if args.image_encoder == "none" else args.image_encoder,
                text=None if args.text_encoder == "none" else args.text_encoder,
                image_weights=args.image_weights,
                device=args.device,
                batch_size=args.batch_size,
                num_workers=args.num_workers,
            ),
            fusion=FusionConfig(image_weight=args.image_weight, text_weight=args.text_weight),
            index=IndexConfig(kind=args.index),
        )
        columns = CatalogColumns(
            id=args.id_column,
            title=args.title_column,
            description=args.description_column,
            category=args.category_column,
            image=args.image_column,
        )
        _, report = index_catalog(args.catalog, args.out, config, columns, show_progress=not args.quiet)
    except (EngineError, OSError) as exc:  # OSError: the output folder cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
