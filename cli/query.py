"""`shopvec query`: similar items, a text or image search, or recommendations, from a model folder."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.common import DEFAULT_MODEL_HELP, CommandError, add_command, quiet_model_loading, split_ids, warn

EXAMPLES = """\
shopvec query models/sample --similar food-red-apple
shopvec query models/sample --text "hot drink" --category drink -k 5
shopvec query models/sample --image sample_catalog/images/food-red-apple.png
shopvec query models/sample --user user-0000
shopvec query models/sample --history "food-red-apple, food-banana" --json"""


def register(subparsers: Any) -> None:
    """Add `shopvec query`."""
    p = add_command(
        subparsers,
        "query",
        "Query a model folder: similar items, a text or image search, or recommendations.",
        EXAMPLES,
        "Scores: --similar, --text and --image give the cosine similarity (-1..1); recommendations\n"
        "give the model's score (0..1); the source column says which path served each item.",
    )
    p.add_argument("model_dir", metavar="DIR", help=DEFAULT_MODEL_HELP)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--similar", metavar="ITEM_ID", help="items similar to this one")
    what.add_argument("--text", help="items matching this text")
    what.add_argument("--image", metavar="PATH", help="items matching this photo")
    what.add_argument("--user", metavar="USER_ID", help="personalised recommendations (after `shopvec fit`)")
    what.add_argument("--history", metavar="ITEM_IDS", help='recommendations for a visitor who viewed these, oldest first: "a, b"')
    p.add_argument("-k", type=int, default=10, help="number of results (default: 10)")
    p.add_argument("--category", action="append", metavar="NAME", help="only this category (repeatable)")
    p.add_argument("--strict", action="store_true", help="with --user: an unknown user is an error, not popular items")
    p.add_argument("--json", action="store_true", help='print {"items": [...]} as the HTTP API does, instead of a table')
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the folder, answer the one question asked, print a table or JSON."""
    from core.errors import UnknownUserError
    from engine.display import format_matches
    from engine.engine import Engine
    from engine.filters import ItemFilter
    from service.jsonable import item_list

    quiet_model_loading()
    filt = ItemFilter(categories=args.category) if args.category else None
    engine = Engine.load(args.model_dir)
    if args.similar is not None:
        matches = engine.similar(args.similar.strip(), k=args.k, filter=filt)
    elif args.text is not None or args.image is not None:
        matches = engine.search(text=args.text, image=args.image, k=args.k, filter=filt)
    elif args.user is not None:
        user = args.user.strip()
        try:  # strict: the engine's own rule says whether it knows the user
            matches = engine.recommend(user, k=args.k, filter=filt, strict=True)
        except UnknownUserError:
            message = f"user {user!r} is not in the training log or recorded events"
            if args.strict:
                raise CommandError(message) from None
            warn(f"{message}: showing popular items")
            matches = engine.recommend(user, k=args.k, filter=filt)
    else:
        history = split_ids(args.history)
        if not history:
            raise CommandError(f"--history needs comma-separated item ids, got {args.history!r}")
        matches = engine.recommend(history=history, k=args.k, filter=filt)
    print(json.dumps(item_list(matches, engine.catalog.base_dir), ensure_ascii=False, indent=2) if args.json else format_matches(matches))
    return 0

