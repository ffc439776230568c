"""Same-category precision@k of content-vector retrieval: a thin wrapper over `shopvec evaluate retrieval`.

Datasets: the sample catalog (image, text, fused at several image weights, raw
pixels, random) and the first N Fashion-MNIST test images (image, raw pixels,
random). Encoder outputs are cached under --cache-dir, so a rerun only fuses.
Logic lives in `cli.evaluate_retrieval` and `evaluation.retrieval`.

Example:
    python scripts/evaluate_retrieval.py --out runs/retrieval.json
    python scripts/evaluate_retrieval.py --datasets catalog --weights 0,0.5,1 --no-engine-check
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.evaluate_retrieval import main as retrieval_main


def main(argv: list[str] | None = None) -> int:
    """`shopvec evaluate retrieval` under this script's name."""
    return retrieval_main(argv, prog="scripts/evaluate_retrieval.py")


if __name__ == "__main__":
    sys.exit(main())
