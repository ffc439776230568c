"""Which image features find "the same product in another photo"? Measure the options on the emoji set.

The test set and the metrics are defined in `evaluation.image_similarity`, the options
(EfficientNet-Lite0/Lite2, input size and crop, avg/GeM/max pooling, test-time flip,
gallery-fitted PCA whitening) in `evaluation.image_options`. Rows are printed as they are
measured, then a Markdown table; pooled features are cached under --cache-dir, so a rerun
only scores and times. Run it on one thread, as the encode rates are per core:

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python scripts/evaluate_image_similarity.py \\
        --out .cache/image_similarity.json

The emoji data (npm package emoji-datasource-google 16.0.0) is npm-installed into
.cache/npm as `scripts/build_sample_catalog.py` does, unless --source names an install.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import datasets
from evaluation.image_options import AUGMENTATIONS, DEFAULT_SETTINGS, DEFAULT_WHITENING, PARTS, measure

COLUMNS = ("recall@1", "recall@10", "ap@10")


def _ci(value: tuple[float, float]) -> str:
    return f"[{value[0]:.3f}, {value[1]:.3f}]"


def one_line(row: dict[str, Any]) -> str:
    """A measured row, printed at once."""
    parts = []
    for part in PARTS:
        diff = row.get(f"{part} recall@1 diff")
        delta = "" if diff is None else f" (diff {diff[0]:+.3f} {_ci(diff[1:])})"
        parts.append(f"{part} R@1 {row[f'{part} recall@1']:.3f}{delta} R@10 {row[f'{part} recall@10']:.3f} "
                     f"AP@10 {row[f'{part} ap@10']:.3f}")
    cost = f" | {row['images/s']:.1f} img/s, time x{row['time ratio']:.2f}" if "images/s" in row else ""
    return f"{row['option']:<40} | " + " | ".join(parts) + cost


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results table; rows without their own timing take their avg-pooling sibling's (pooling costs nothing)."""
    timed = {(r["setting"], r["flip"]): r for r in rows if "images/s" in r}
    head = ["option"] + [f"{p} {c}" for p in PARTS for c in COLUMNS] + ["var R@1 diff [95%]", "aug R@1 diff [95%]",
                                                                         "img/s", "time x"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" + " ---: |" * (len(head) - 1)]
    for r in rows:
        t = timed.get((r["setting"], r["flip"]))
        cost = ["-", "-"] if r["whitening"] is not None or t is None else [f"{t['images/s']:.1f}", f"{t['time ratio']:.2f}"]
        diffs = [f"{r[f'{p} recall@1 diff'][0]:+.3f} {_ci(r[f'{p} recall@1 diff'][1:])}" if f"{p} recall@1 diff" in r
                 else "-" for p in PARTS]
        values = [f"{r[f'{p} {c}']:.3f}" for p in PARTS for c in COLUMNS]
        lines.append("| " + " | ".join([r["option"], *values, *diffs, *cost]) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/evaluate_image_similarity.py", description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=None,
                        help="an installed node_modules/emoji-datasource-google; default: npm-install into .cache/npm")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="pooled features cache; default $SHOPVEC_CACHE/image_similarity (~/.cache/shopvec/...)")
    parser.add_argument("--sources", type=int, default=300, help="gallery images augmented (x%d queries)" % len(AUGMENTATIONS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", type=int, default=len(DEFAULT_SETTINGS),
                        help=f"measure only the first N of the {len(DEFAULT_SETTINGS)} network/input settings")
    parser.add_argument("--no-whitening", action="store_true", help="skip the whitening rows")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure, print rows as they come and the table at the end."""
    args = parse_args(argv)
    source = args.source
    if source is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from build_sample_catalog import NPM_PREFIX, npm_install  # the catalog builder's pinned, cached install

        source = npm_install(NPM_PREFIX)
    cache = args.cache_dir if args.cache_dir is not None else datasets.cache_dir() / "image_similarity"
    rows = measure(
        source,
        cache,
        settings=DEFAULT_SETTINGS[: args.settings],
        whitening=() if args.no_whitening else DEFAULT_WHITENING,
        n_sources=args.sources,
        seed=args.seed,
        report=lambda row: print(one_line(row), flush=True),
        log=lambda line: print(line, flush=True),
    )
    print()
    print(markdown(rows))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
