"""The main job on the sample catalog: index it, query it, personalise it.

    python scripts/demo.py                  # writes models/sample
    python scripts/demo.py --model sasrec   # another personalisation model

1. indexes sample_catalog/items.csv (re-runs reuse unchanged items),
2. prints similar items for a few products, a text query and an image query,
3. trains the re-ranker on the simulated log sample_catalog/interactions.csv and
   prints recommendations for two users with contrasting tastes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd
from PIL import Image, ImageOps

from core.errors import EngineError
from encoders.imageio import load_image
from engine import Interactions
from engine.display import format_matches, quiet_model_loading
from engine.indexing import index_catalog

HERE = Path(__file__).resolve().parents[1] / "sample_catalog"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalog", default=str(HERE / "items.csv"))
    p.add_argument("--interactions", default=str(HERE / "interactions.csv"))
    p.add_argument("--out", default="models/sample")
    p.add_argument("--model", default=None, help="personalisation model (default: the engine's default)")
    p.add_argument("-k", type=int, default=5)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    quiet_model_loading()
    try:
        return _run(args)
    except (EngineError, OSError) as exc:  # OSError: a file cannot be read or the model written
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    print("== 1. indexing", args.catalog)
    engine, report = index_catalog(args.catalog, args.out)
    print(report.summary())

    print("\n== 2. similar items")
    for item_id in ("food-red-apple", "clothing-t-shirt", "vehicles-bicycle"):
        if item_id in engine.catalog:
            print(f"\nsimilar to {item_id}:")
            print(format_matches(engine.similar(item_id, k=args.k)))
    print('\ntext query "something warm to drink":')
    print(format_matches(engine.search(text="something warm to drink", k=args.k)))
    photo = engine.catalog.image_path(engine.catalog.row(engine.catalog.ids[0]))
    if photo is not None:
        # A customer's photo: the product image mirrored and on a grey background.
        img = ImageOps.mirror(load_image(photo, root=engine.catalog.image_root).convert("RGBA"))
        customer = Image.new("RGBA", img.size, (200, 200, 200, 255))
        customer.alpha_composite(img)
        print(f"\nimage query (a mirrored photo of {engine.catalog.ids[0]}):")
        print(format_matches(engine.search(image=customer.convert("RGB"), k=args.k)))

    print("\n== 3. personalisation on the SIMULATED log", args.interactions)
    log = Interactions.from_file(args.interactions)
    engine.fit(log, model=args.model)
    engine.save(args.out)
    tastes_path = Path(args.interactions).with_name(Path(args.interactions).stem + "_tastes.csv")
    for user in _contrasting_users(tastes_path):
        print(f"\nuser {user}: {_taste_line(tastes_path, user)}")
        print(format_matches(engine.recommend(user, k=args.k)))
    print(f"\nsaved to {args.out}; try: python scripts/query.py {args.out} --user user-0000")
    return 0


def _contrasting_users(tastes_path: Path) -> list[str]:
    """Two simulated users whose favourite categories differ most."""
    tastes = pd.read_csv(tastes_path).set_index("user_id")
    first = tastes.index[0]
    overlap = (tastes * tastes.loc[first]).sum(axis=1)
    return [first, str(overlap.idxmin())]


def _taste_line(tastes_path: Path, user: str) -> str:
    row = pd.read_csv(tastes_path).set_index("user_id").loc[user].sort_values(ascending=False)
    return "likes " + ", ".join(f"{c} ({w:.0%})" for c, w in row.head(3).items() if w > 0.05)


if __name__ == "__main__":
    raise SystemExit(main())
