"""`shopvec evaluate retrieval`: same-category precision@k of the content vectors (the `Engine.similar` protocol).

Datasets: the sample catalog (image, text, fused at several image weights, raw pixels,
random) and the first N Fashion-MNIST test images (image, raw pixels, random). Encoder
outputs are cached under --cache-dir, so a rerun only fuses. Writes --out (JSON) and,
beside it, <stem>-index-tradeoff.png: recall@10 against queries/s of the index settings on
the catalog's fused vectors at the default weight (Fashion-MNIST's image vectors when the
catalog is not evaluated).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from cli.common import CommandError, Parser, add_command, split_ids
from cli.outputs import show_progress_log, sibling, write_json
from core.errors import EngineError

log = logging.getLogger("shopvec.evaluate")
REPO = Path(__file__).resolve().parents[1]
DATASETS = ("catalog", "fashion-mnist")
DEFAULT_OUT = Path("runs") / "retrieval.json"

EXAMPLES = """\
shopvec evaluate retrieval                                   # both data sets, ~15 min the first time
shopvec evaluate retrieval --datasets catalog --weights 0,0.5,1 --no-engine-check
shopvec evaluate retrieval --datasets catalog --text title --out runs/retrieval-title.json"""


def register(subparsers: Any) -> None:
    """Add `retrieval` under `shopvec evaluate`."""
    p = add_command(subparsers, "retrieval", "Same-category precision@k of the content vectors "
                    "(sample catalog, Fashion-MNIST); JSON plus the index trade-off PNG.", EXAMPLES,
                    __doc__.split("\n\n", 1)[1])
    add_arguments(p)
    p.set_defaults(run=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `shopvec evaluate retrieval` (and of scripts/evaluate_retrieval.py).

    Defaults that live in modules importing torch (the encoders', the data set folder) are
    None here and filled in by `run`, so `--help` answers at once.
    """
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {', '.join(DATASETS)}")
    p.add_argument("--catalog", type=Path, default=REPO / "sample_catalog" / "items.csv")
    p.add_argument("--fashion-mnist", type=Path, default=None, metavar="DIR",
                   help="folder with the Fashion-MNIST idx .gz files (default: where the Debian package "
                        "dataset-fashion-mnist puts them, /usr/share/datasets/fashion-mnist)")
    p.add_argument("--fashion-mnist-n", type=int, default=1000, help="first N test images")
    p.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="image weights w to fuse at (text weight 1-w)")
    p.add_argument("--text", choices=("full", "title"), default="full",
                   help="catalog text to encode: full (title + description, as the engine does) or title only")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="seed of the random-vector baseline and the trade-off queries")
    p.add_argument("--image-encoder", default=None, help="EncoderConfig.image (default: the engine's)")
    p.add_argument("--text-encoder", default=None, help="EncoderConfig.text (default: the engine's)")
    p.add_argument("--device", default=None, help="EncoderConfig.device (default: the engine's)")
    p.add_argument("--batch-size", type=int, default=None, help="EncoderConfig.batch_size (default: the engine's)")
    p.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "retrieval_eval")
    p.add_argument("--engine-check", action=argparse.BooleanOptionalAction, default=True,
                   help="also build an Engine with the default fusion and compare its similar() precision")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON of the results (default {DEFAULT_OUT})")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                   help="measure the index trade-off and write its PNG beside --out")
    p.add_argument("--tradeoff-queries", type=int, default=1000, help="queries per index setting in the trade-off")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv: list[str] | None = None, prog: str = "shopvec evaluate retrieval") -> int:
    """`shopvec evaluate retrieval` as a stand-alone program (scripts/evaluate_retrieval.py is this)."""
    parser = Parser(prog=prog, description=__doc__.splitlines()[0], epilog="examples:\n  " + EXAMPLES.replace(
        "\n", "\n  ").replace("shopvec evaluate retrieval", prog), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        check_arguments(args)
    except CommandError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return run(args)
    except (EngineError, OSError) as exc:  # OSError: a data set or cache file cannot be read
        log.error("error: %s", exc)
        return 2


def check_arguments(args: argparse.Namespace) -> None:
    """Parse the comma-separated flags onto `args`; CommandError names a bad value and the valid ones."""
    args.dataset_names = split_ids(args.datasets)
    unknown = [d for d in args.dataset_names if d not in DATASETS]
    if unknown or not args.dataset_names:
        raise CommandError(f"unknown datasets {unknown}; valid: {', '.join(DATASETS)}")
    try:
        args.weight_values = [float(w) for w in split_ids(args.weights)]
    except ValueError:
        raise CommandError(f"--weights must be comma-separated numbers in [0, 1], got {args.weights!r}") from None
    if any(not 0.0 <= w <= 1.0 for w in args.weight_values):
        raise CommandError(f"--weights must lie in [0, 1], got {args.weight_values}")
    if args.tradeoff_queries < 1:
        raise CommandError(f"--tradeoff-queries must be a positive integer, got {args.tradeoff_queries}")


def run(args: argparse.Namespace) -> int:
    """Measure, print the table, write the JSON and the trade-off PNG."""
    if not hasattr(args, "dataset_names"):
        check_arguments(args)
    from encoders.config import EncoderConfig
    from encoders.registry import create_encoder
    from evaluation.retrieval import FASHION_MNIST_DIR, load_fashion_mnist

    defaults = EncoderConfig()
    args.image_encoder = args.image_encoder or defaults.image
    args.text_encoder = args.text_encoder or defaults.text
    args.device = args.device or defaults.device
    args.batch_size = args.batch_size or defaults.batch_size
    args.fashion_mnist = args.fashion_mnist or FASHION_MNIST_DIR

    show_progress_log()
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
    report: dict[str, Any] = {"k": args.k, "machine": f"{platform.system()} {platform.machine()}, "
                              f"{os.cpu_count()} CPU cores", "command": shlex.join(["shopvec", *sys.argv[1:]])}
    rows: list[Any] = []
    tradeoff_vectors: dict[str, np.ndarray] = {}
    if "fashion-mnist" in args.dataset_names:  # fail on a missing data set before any slow encoding
        load_fashion_mnist(args.fashion_mnist, "test", 1)
    if "catalog" in args.dataset_names:
        rows += run_catalog(args, encoders, report, tradeoff_vectors)
    if "fashion-mnist" in args.dataset_names:
        rows += run_fashion_mnist(args, encoders, report, tradeoff_vectors)
    report["results"] = [r.__dict__ for r in rows]
    print(format_table(rows))
    print_summary(report, args.k)
    if args.plots and tradeoff_vectors:
        from evaluation.index_tradeoff import format_tradeoff, index_tradeoff
        from evaluation.plots import draw_index_tradeoff, save_figure

        what, vectors = next(iter(tradeoff_vectors.items()))
        points = index_tradeoff(vectors, k=min(10, len(vectors) - 1), n_queries=args.tradeoff_queries, seed=args.seed)
        print(format_tradeoff(points))
        report["index_tradeoff"] = {"vectors": what, "items": len(vectors), "points": [asdict(p) for p in points]}
        title = f"Index settings on {what} ({len(vectors):,} items):\nrecall@10 against speed"
        report["plots"] = [str(save_figure(draw_index_tradeoff(points, title), sibling(args.out, "index-tradeoff")))]
    report["seconds"] = round(time.perf_counter() - start, 1)
    print(f"took {report['seconds']:.0f} s")
    write_json(report, args.out)
    print(f"Wrote {args.out}" + "".join(f", {p}" for p in report.get("plots", [])))
    return 0


def run_catalog(args: argparse.Namespace, encoders: dict[str, Any], report: dict[str, Any],
                tradeoff_vectors: dict[str, np.ndarray]) -> list[Any]:
    """The catalog's rows of the table; its fused vectors at the default weight go to `tradeoff_vectors`."""
    from tqdm.auto import tqdm

    from encoders.config import EncoderConfig
    from encoders.fusion import FusionConfig
    from engine.catalog import Catalog
    from engine.config import EngineConfig
    from evaluation.retrieval import catalog_results, chance_precision, encode_catalog, engine_check

    catalog = Catalog.from_file(args.catalog)
    with tqdm(total=2 * len(catalog), desc="catalog vectors", unit="item", disable=args.quiet) as bar:
        vectors = encode_catalog(
            catalog, encoders["image"](), encoders["text"](), args.cache_dir, args.batch_size, bar.update, args.text
        )
    rows = catalog_results(catalog, vectors, args.weight_values, args.k, args.seed)
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
    tradeoff_vectors[f"the catalog's fused vectors (image weight {default_w:g})"] = fused_default(vectors)
    return rows


def fused_default(vectors: Any) -> np.ndarray:
    """The catalog's vectors fused as the engine fuses them by default (items with no usable modality left out)."""
    from encoders.fusion import Fusion, FusionConfig

    image_dim = vectors.image.shape[1] if vectors.image is not None else 1
    text_dim = vectors.text.shape[1] if vectors.text is not None else 1
    fusion = Fusion(image_dim, text_dim, FusionConfig())
    keep = fusion.usable(vectors.has_image, vectors.has_text)
    return fusion.fuse(None if vectors.image is None else vectors.image[keep],
                       None if vectors.text is None else vectors.text[keep],
                       vectors.has_image[keep], vectors.has_text[keep])


def run_fashion_mnist(args: argparse.Namespace, encoders: dict[str, Any], report: dict[str, Any],
                      tradeoff_vectors: dict[str, np.ndarray]) -> list[Any]:
    """The Fashion-MNIST rows of the table; its image vectors go to `tradeoff_vectors`."""
    from PIL import Image
    from tqdm.auto import tqdm

    from evaluation.features import cached_encode
    from evaluation.retrieval import FASHION_MNIST_CLASSES, chance_precision, image_results, load_fashion_mnist

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
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    tradeoff_vectors[f"Fashion-MNIST's image vectors ({encoder.name})"] = vectors / np.maximum(norms, 1e-12)
    return image_results(pil, labels, vectors, encoder.name, args.k, args.seed)


def format_table(rows: list[Any]) -> str:
    """The results as one fixed-width text table."""
    metric = f"P@{rows[0].k}" if rows else "P@k"
    head = f"{'dataset':<16} {'vectors':<28} {'items':>6} {metric:>7}"
    lines = [head, "-" * len(head)]
    lines += [f"{r.dataset:<16} {r.vectors:<28} {r.n_items:>6} {r.precision:>7.3f}" for r in rows]
    return "\n".join(lines)


def print_summary(report: dict[str, Any], k: int) -> None:
    """Chance levels, the best fusion weight against the default, the engine check."""
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
        print(f"engine check: Engine.similar P@{k} = {check['engine_precision']:.4f}, NumPy path = "
              f"{check['numpy_precision']:.4f}, max |vector difference| = {check['max_abs_diff']:.2e}")


if __name__ == "__main__":
    raise SystemExit(main())
