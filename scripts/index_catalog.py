"""Index a catalog file into a model folder: `shopvec index`, kept under its old name.

    python scripts/index_catalog.py sample_catalog/items.csv --out models/sample

Same flags as `shopvec index --help`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cli.main import main as shopvec


def main(argv: Sequence[str] | None = None) -> int:
    return shopvec(["index", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
