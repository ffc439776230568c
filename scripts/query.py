"""Query a model folder: `shopvec query`, kept under its old name.

    python scripts/query.py models/sample --similar food-red-apple
    python scripts/query.py models/sample --text "hot drink" --category drink
    python scripts/query.py models/sample --user user-0000

Same flags as `shopvec query --help`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cli.main import main as shopvec


def main(argv: Sequence[str] | None = None) -> int:
    return shopvec(["query", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
