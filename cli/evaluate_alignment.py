"""Aligned against unaligned image and text vectors: cross-modal retrieval on the sample catalog and Fashion-MNIST.

Run as `python scripts/evaluate_alignment.py`. Encoder outputs are cached under
--cache-dir (shared with `shopvec evaluate retrieval`), so a rerun only fits and ranks.
Prints the table as rows are measured and writes --out (JSON). The protocol is in
`evaluation.alignment`.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from cli.common import CommandError, Parser, report_error
from cli.outputs import write_json
from core.errors import EngineError

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("catalog", "fashion-mnist")
DEFAULT_OUT = Path("runs") / "alignment.json"


def build_parser(prog: str = "scripts/evaluate_alignment.py") -> Parser:
    """The flags; each maps to a field of `AlignmentConfig` or of the evaluation."""
    p = Parser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {', '.join(DATASETS)}")
    p.add_argument("--catalog", type=Path, default=REPO / "sample_catalog" / "items.csv")
    p.add_argument("--fashion-mnist", type=Path, default=None, metavar="DIR",
                   help="folder of the Fashion-MNIST idx files (default /usr/share/datasets/fashion-mnist)")
    p.add_argument("--train", type=int, default=5000, help="first N Fashion-MNIST training images (they get text)")
    p.add_argument("--test", type=int, default=1000, help="first N Fashion-MNIST test images (no text)")
    p.add_argument("--weights", default="0.25,0.5,1", help="AlignmentConfig.predicted_weight values to compare")
    p.add_argument("--min-pairs", type=int, default=50, help="AlignmentConfig.min_pairs")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="which third of the catalog loses text / image, and tie order")
    p.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "retrieval_eval")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON of the results (default {DEFAULT_OUT})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None, prog: str = "scripts/evaluate_alignment.py") -> int:
    """Parse `argv`, measure, print the table; returns the exit code (2 with `error: ...` on bad input)."""
    try:
        args = build_parser(prog).parse_args(argv)
        return run(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    except (EngineError, CommandError, OSError) as exc:  # OSError: a data set or cache file cannot be read
        return report_error(exc)


def run(args: argparse.Namespace) -> int:
    """Measure both data sets, print the rows as they come, write the JSON."""
    from encoders.alignment import AlignmentConfig
    from encoders.fusion import FusionConfig
    from evaluation.alignment import format_header, format_row

    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not names or set(names) - set(DATASETS):
        raise CommandError(f"--datasets must name some of {', '.join(DATASETS)}, got {args.datasets!r}")
    try:
        weights = [float(w) for w in args.weights.split(",")]
    except ValueError:
        raise CommandError(f"--weights must be comma-separated numbers in (0, 1], got {args.weights!r}") from None
    config = AlignmentConfig(min_pairs=args.min_pairs, seed=args.seed)
    for w in weights:
        AlignmentConfig(predicted_weight=w)  # validates each, naming the bad one
    start = time.perf_counter()
    print(format_header(weights), flush=True)
    rows: list[Any] = []
    report: dict[str, Any] = {"k": args.k, "weights": weights, "fusion": asdict(FusionConfig()),
                              "alignment": asdict(config), "command": shlex.join(["python", *sys.argv])}

    def show(row: Any) -> None:
        rows.append(row)
        print(format_row(row, weights), flush=True)

    if "catalog" in names:
        report["sample catalog"] = _catalog(args, config, weights, show)
    if "fashion-mnist" in names:
        report["fashion-mnist"] = _fashion(args, config, weights, show)
    report["rows"] = [{**asdict(r), "aligned": {str(w): v for w, v in r.aligned.items()}} for r in rows]
    report["seconds"] = time.perf_counter() - start
    write_json(report, args.out)
    for name in ("sample catalog", "fashion-mnist"):
        if name in report:
            info = report[name]
            print(f"{name}: {', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in info.items())}")
    print(f"wrote {args.out} ({report['seconds']:.0f} s)")
    return 0


def _catalog(args: argparse.Namespace, config: Any, weights: list[float], show: Any) -> dict[str, Any]:
    from encoders.config import EncoderConfig
    from encoders.fusion import FusionConfig
    from encoders.registry import create_encoder
    from engine.catalog import Catalog
    from evaluation.alignment import catalog_rows
    from evaluation.retrieval import encode_catalog

    defaults = EncoderConfig()
    catalog = Catalog.from_file(args.catalog)
    vectors = encode_catalog(catalog, create_encoder(defaults.image, device="cpu"), create_encoder(defaults.text, device="cpu"),
                             args.cache_dir)
    _, info = catalog_rows(vectors, FusionConfig(), config, weights, args.k, args.seed, show)
    return {"items": len(catalog), **info}


def _fashion(args: argparse.Namespace, config: Any, weights: list[float], show: Any) -> dict[str, Any]:
    from PIL import Image
    from tqdm.auto import tqdm

    from encoders.config import EncoderConfig
    from encoders.fusion import FusionConfig
    from encoders.registry import create_encoder
    from evaluation.alignment import FASHION_DESCRIPTIONS, fashion_rows
    from evaluation.features import cached_encode
    from evaluation.retrieval import FASHION_MNIST_DIR, load_fashion_mnist

    folder = args.fashion_mnist or FASHION_MNIST_DIR
    defaults = EncoderConfig()
    encoder = create_encoder(defaults.image, device="cpu", batch_size=defaults.batch_size)
    vectors, labels = {}, {}
    for split, n in (("train", args.train), ("test", args.test)):
        images, labels[split] = load_fashion_mnist(folder, split, n)
        pil = [Image.fromarray(im, mode="L").convert("RGB") for im in images]
        key = f"fashion-mnist-{split}-first-{len(images)}-{hashlib.sha1(images.tobytes()).hexdigest()}"
        with tqdm(total=len(pil), desc=f"fashion-mnist {split}", unit="img", disable=args.quiet) as bar:
            vectors[split] = cached_encode(encoder, pil, key, args.cache_dir, 32, bar.update)
    class_text = create_encoder(defaults.text, device="cpu").encode(list(FASHION_DESCRIPTIONS)).astype(np.float32)
    _, info = fashion_rows(vectors["train"], labels["train"], vectors["test"], labels["test"], class_text,
                           FusionConfig(), config, weights, args.k, args.seed, show)
    return info


if __name__ == "__main__":
    sys.exit(main())
