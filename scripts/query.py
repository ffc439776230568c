"""Query a model folder: similar items, a text search, an image search, or recommendations.

    python scripts/query.py models/sample --similar food-red-apple
    python scripts/query.py models/sample --text "hot drink" --category drink
    python scripts/query.py models/sample --image sample_catalog/images/food-red-apple.png
    python scripts/query.py models/sample --user user-001
"""

from __future__ import annotations

import argparse
import sys

from core.errors import EngineError
from engine.display import format_matches, quiet_model_loading
from engine.engine import Engine
from engine.filters import ItemFilter


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="folder written by scripts/index_catalog.py or Engine.save")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--similar", metavar="ITEM_ID", help="items similar to this one")
    what.add_argument("--text", help="items matching this text")
    what.add_argument("--image", metavar="PATH", help="items matching this photo")
    what.add_argument("--user", metavar="USER_ID", help="personalised recommendations (needs a fitted model)")
    what.add_argument("--history", metavar="ITEM_IDS", help="recommendations for a comma-separated item history")
    p.add_argument("-k", type=int, default=10, help="number of results")
    p.add_argument("--category", action="append", help="only this category (repeatable)")
    args = p.parse_args(argv)
    quiet_model_loading()
    try:
        filt = ItemFilter(categories=args.category) if args.category else None
        engine = Engine.load(args.model)
        if args.similar:
            matches = engine.similar(args.similar, k=args.k, filter=filt)
        elif args.text or args.image:
            matches = engine.search(text=args.text, image=args.image, k=args.k, filter=filt)
        elif args.user:
            matches = engine.recommend(args.user, k=args.k, filter=filt)
        else:
            matches = engine.recommend(history=args.history.split(","), k=args.k, filter=filt)
    except (EngineError, OSError) as exc:  # OSError: the model folder cannot be read
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_matches(matches))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
