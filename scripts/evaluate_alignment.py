"""Aligned against unaligned image and text vectors: a thin wrapper over `cli.evaluate_alignment`.

Sample catalog: a seeded third of the items lose their text, another third their image;
text queries (the removed texts) -> image-only items, image queries -> text-only items,
and the settings where alignment does not help. Fashion-MNIST: training images get a
class description, test images none; each description -> test images. Logic lives in
`cli.evaluate_alignment` and `evaluation.alignment`.

Example:
    OMP_NUM_THREADS=1 python scripts/evaluate_alignment.py --out runs/alignment.json
    python scripts/evaluate_alignment.py --datasets catalog --weights 0.5
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.evaluate_alignment import main as alignment_main


def main(argv: list[str] | None = None) -> int:
    """`cli.evaluate_alignment.main` under this script's name."""
    return alignment_main(argv, prog="scripts/evaluate_alignment.py")


if __name__ == "__main__":
    sys.exit(main())
