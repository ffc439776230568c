"""Same-category precision@k of content-vector retrieval (the `Engine.similar` protocol); prints one table.

Datasets: the sample catalog (image, text, fused at several image weights, raw
pixels, random) and the first N Fashion-MNIST test images (image, raw pixels,
random). Encoder outputs are cached under --cache-dir, so a rerun only fuses.

Example:
    python scripts/evaluate_retrieval.py --out results.json
    python scripts/evaluate_retrieval.py --datasets catalog --weights 0,0.5,1 --no-engine-check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image
from tqdm.auto import tqdm

from core.errors import EngineError
from encoders.config import EncoderConfig
from encoders.fusion import FusionConfig
from encoders.registry import create_encoder
from engine.catalog import Catalog
from engine.config import EngineConfig
from evaluation.features import cached_encode
from evaluation.retrieval import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    TEXT_SOURCES,
    RetrievalResult,
    catalog_results,
    chance_precision,
    encode_catalog,
    engine_check,
    image_results,
    load_fashion_mnist,
)

log = logging.getLogger("evaluate_retrieval")
REPO = Path(__file__).resolve().parents[1]
DATASETS = ("catalog", "fashion-mnist")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {', '.join(DATASETS)}")
    parser.add_argument("--catalog", type=Path, default=REPO / "sample_catalog" / "items.csv")
    parser.add_argument("--fashion-mnist", type=Path, default=FASHION_MNIST_DIR, metavar="DIR",
                        help="folder with the Fashion-MNIST idx .gz files (Debian package dataset-fashion-mnist)")
    parser.add_argument("--fashion-mnist-n", type=int, default=1000, help="first N test images")
    parser.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="image weights w to fuse at (text weight 1-w)")
    parser.add_argument("--text", choices=TEXT_SOURCES, default="full",
                        help="catalog text to encode: full (title + description, as the engine does) or title only")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-vector baseline")
    parser.add_argument("--image-encoder", default=EncoderConfig.image, help="EncoderConfig.image")
    parser.add_argument("--text-encoder", default=EncoderConfig.text, help="EncoderConfig.text")
    parser.add_argument("--device", default=EncoderConfig.device, help="EncoderConfig.device")
    parser.add_argument("--batch-size", type=int, default=EncoderConfig.batch_size, help="EncoderConfig.batch_size")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "retrieval_eval")
    parser.add_argument("--engine-check", action=argparse.BooleanOptionalAction, default=True,
                        help="also build an Engine with the default fusion and compare its similar() precision")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown or not args.datasets:
        parser.error(f"unknown datasets {unknown}; valid: {', '.join(DATASETS)}")
    try:
        args.weights = [float(w) for w in args.weights.split(",")]
    except ValueError:
        parser.error(f"--weights must be comma-separated numbers in [0, 1], got {args.weights!r}")
    if any(not 0.0 <= w <= 1.0 for w in args.weights):
        parser.error(f"--weights must lie in [0, 1], got {args.weights}")
    return args


def run_catalog(args: argparse.Namespace, encoders: dict[str, Any], report: dict[str, Any]) -> list[RetrievalResult]:
    catalog = Catalog.from_file(args.catalog)
    with tqdm(total=2 * len(catalog), desc="catalog vectors", unit="item", disable=args.quiet) as bar:
        vectors = encode_catalog(
            catalog, encoders["image"](), encoders["text"](), args.cache_dir, args.batch_size, bar.update, args.text
        )
    rows = catalog_results(catalog, vectors, args.weights, args.k, args.seed)
    fused = {r.image_weight: r.precision for r in rows if r.image_weight is not None}
    best = max(fused, key=lambda w: (fused[w], -abs(w - 0.5))) if fused else None
    default_w = FusionConfig().normalised()[0]
    report["catalog"] = {
        "source": str(args.catalog), "text": args.text,
        "n_items": len(catalog), "n_categories": int(len(set(vectors.labels))),
        "chance": chance_precision(vectors.labels), "best_image_weight": best, "default_image_weight": default_w,
    }
    if args.engine_check and args.text == "full":  # the engine always encodes the full text
        config = EngineConfig(encoders=EncoderConfig(image=args.image_encoder, text=args.text_encoder, device=args.device))
        report["catalog"]["engine_check"] = engine_check(catalog, vectors, config, args.k)
    return rows


def run_fashion_mnist(args: argparse.Namespace, encoders: dict[str, Any], report: dict[str, Any]) -> list[RetrievalResult]:
    images, labels = load_fashion_mnist(args.fashion_mnist, "test", args.fashion_mnist_n)
    pil = [Image.fromarray(im, mode="L").convert("RGB") for im in images]
    encoder = encoders["image"]()
    with tqdm(total=len(pil), desc="fashion-mnist vectors", unit="img", disable=args.quiet) as bar:
        key = f"fashion-mnist-test-first-{len(images)}-{hashlib.sha1(images.tobytes()).hexdigest()}"
        vectors = cached_encode(encoder, pil, key, args.cache_dir, args.batch_size, bar.update)
    report["fashion-mnist"] = {
        "source": str(args.fashion_mnist), "sample": f"first {len(images)} test images",
        "n_items": len(images), "chance": chance_precision(labels),
        "class_counts": {FASHION_MNIST_CLASSES[c]: int((labels == c).sum()) for c in range(len(FASHION_MNIST_CLASSES))},
    }
    return image_results(pil, labels, vectors, encoder.name, args.k, args.seed)


def format_table(rows: list[RetrievalResult]) -> str:
    """The results as one fixed-width text table."""
    metric = f"P@{rows[0].k}" if rows else "P@k"
    head = f"{'dataset':<16} {'vectors':<28} {'items':>6} {metric:>7}"
    lines = [head, "-" * len(head)]
    lines += [f"{r.dataset:<16} {r.vectors:<28} {r.n_items:>6} {r.precision:>7.3f}" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    start = time.perf_counter()
    loaded: dict[str, Any] = {}

    def lazy(modality: str, name: str | None) -> Any:
        def make() -> Any:
            if name is None:
                return None
            if modality not in loaded:
                loaded[modality] = create_encoder(name, device=args.device, batch_size=args.batch_size)
            return loaded[modality]
        return make

    encoders = {"image": lazy("image", args.image_encoder), "text": lazy("text", args.text_encoder)}
    report: dict[str, Any] = {"k": args.k, "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores"}
    rows: list[RetrievalResult] = []
    try:
        if "fashion-mnist" in args.datasets:  # fail on a missing data set before any slow encoding
            load_fashion_mnist(args.fashion_mnist, "test", 1)
        if "catalog" in args.datasets:
            rows += run_catalog(args, encoders, report)
        if "fashion-mnist" in args.datasets:
            rows += run_fashion_mnist(args, encoders, report)
    except (EngineError, OSError) as exc:  # OSError: a data set or cache file cannot be read
        log.error("error: %s", exc)  # logging prints "error: ..." on stderr (format "%(message)s")
        return 2
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["results"] = [r.__dict__ for r in rows]

    print(format_table(rows))
    for name in ("catalog", "fashion-mnist"):
        if name in report:
            print(f"chance level ({name}): {report[name]['chance']:.3f}")
    summary = report.get("catalog", {})
    if summary.get("best_image_weight") is not None:
        verdict = "matches" if summary["best_image_weight"] == summary["default_image_weight"] else "differs from"
        print(f"best fusion image weight: {summary['best_image_weight']:g} ({verdict} the default "
              f"FusionConfig image weight {summary['default_image_weight']:g})")
    if "engine_check" in summary:
        check = summary["engine_check"]
        print(f"engine check: Engine.similar P@{args.k} = {check['engine_precision']:.4f}, NumPy path = "
              f"{check['numpy_precision']:.4f}, max |vector difference| = {check['max_abs_diff']:.2e}")
    print(f"took {report['seconds']:.0f} s")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
