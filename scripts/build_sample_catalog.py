"""Build ``sample_catalog/``: a small product catalog made from emoji data.

Source: the npm package ``emoji-datasource-google`` 16.0.0 (``emoji.json`` plus
64x64 Noto Emoji PNGs). Only product-like emoji are kept (food, drink,
clothing, household goods, office supplies, tools, instruments, sport, toys,
vehicles); each becomes one catalog row with a title, a description generated
from its name and aliases, a product category, a fictional price and an image.

Usage:
    python scripts/build_sample_catalog.py                 # npm-installs into .cache/npm
    python scripts/build_sample_catalog.py --source node_modules/emoji-datasource-google

The output is deterministic: the same package version gives byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("build_sample_catalog")

PACKAGE = "emoji-datasource-google"
VERSION = "16.0.0"
REPO_ROOT = Path(__file__).resolve().parents[1]
NPM_PREFIX = REPO_ROOT / ".cache" / "npm"
IMAGE_DIR = Path("img") / "google" / "64"
SYSTEM_APACHE_LICENSE = Path("/usr/share/common-licenses/Apache-2.0")


@dataclass(frozen=True)
class Shelf:
    """Where an emoji subcategory goes in the catalog, and how its items are described and priced."""

    category: str
    phrase: str
    price_range: tuple[float, float]


# emoji subcategory -> catalog shelf. Prices (EUR) are log-uniform inside price_range.
SHELVES: dict[str, Shelf] = {
    "food-fruit": Shelf("food", "a fresh fruit", (0.39, 6.0)),
    "food-vegetable": Shelf("food", "a fresh vegetable", (0.39, 5.0)),
    "food-prepared": Shelf("food", "a ready meal or bakery product", (0.99, 15.0)),
    "food-asian": Shelf("food", "an Asian speciality", (1.49, 18.0)),
    "food-sweet": Shelf("food", "a sweet treat or dessert", (0.79, 25.0)),
    "drink": Shelf("drink", "a drink", (0.99, 40.0)),
    "clothing": Shelf("clothing", "a clothing or accessory item", (7.0, 180.0)),
    "household": Shelf("home", "a household item", (1.99, 250.0)),
    "dishware": Shelf("home", "a piece of kitchenware", (2.99, 60.0)),
    "medical": Shelf("home", "a health-care item", (2.49, 90.0)),
    "plant-flower": Shelf("home", "a flower for home and garden", (2.99, 35.0)),
    "plant-other": Shelf("home", "a plant for home and garden", (3.99, 80.0)),
    "office": Shelf("office", "an office supply", (0.99, 150.0)),
    "book-paper": Shelf("office", "a book or paper product", (1.49, 35.0)),
    "writing": Shelf("office", "a writing instrument", (0.79, 60.0)),
    "mail": Shelf("office", "a mail and shipping product", (0.99, 120.0)),
    "computer": Shelf("electronics", "a piece of computer equipment", (4.99, 1500.0)),
    "phone": Shelf("electronics", "a telephone product", (19.0, 900.0)),
    "light & video": Shelf("electronics", "a light, photo or video product", (4.99, 1200.0)),
    "tool": Shelf("tools", "a hand tool or piece of hardware", (2.99, 120.0)),
    "lock": Shelf("tools", "a lock or key", (3.99, 60.0)),
    "science": Shelf("tools", "a piece of lab equipment", (6.0, 600.0)),
    "musical-instrument": Shelf("music", "a musical instrument", (19.0, 2500.0)),
    "music": Shelf("music", "a piece of audio or studio equipment", (9.0, 600.0)),
    "sound": Shelf("music", "a piece of sound equipment", (9.0, 400.0)),
    "sport": Shelf("sport", "a piece of sports equipment", (6.0, 300.0)),
    "game": Shelf("toys", "a toy or game", (2.99, 80.0)),
    "arts & crafts": Shelf("toys", "an arts and crafts supply", (1.99, 45.0)),
    "event": Shelf("toys", "a party and gift item", (1.99, 60.0)),
    "transport-ground": Shelf("vehicles", "a road or rail vehicle", (900.0, 60000.0)),
    "transport-water": Shelf("vehicles", "a boat or piece of water equipment", (400.0, 90000.0)),
    "transport-air": Shelf("vehicles", "an aircraft", (20000.0, 900000.0)),
}

# Items priced far from the rest of their shelf (a skateboard is not a bus), by first short name.
PRICE_OVERRIDES: dict[str, tuple[float, float]] = {
    name: (15.0, 900.0)
    for name in (
        "bike", "scooter", "skateboard", "roller_skate", "manual_wheelchair", "wheel",
        "oil_drum", "anchor", "ring_buoy", "canoe", "parachute", "seat",
    )
} | {"ice_cube": (0.99, 4.0), "baby_bottle": (3.99, 15.0), "seedling": (1.49, 6.0)}

# Emoji (by first short name) inside kept subcategories that are not products:
# signs, symbols, places, weapons, duplicates facing another way, abstract ideas.
EXCLUDED_SHORT_NAMES: frozenset[str] = frozenset(
    {
        # transport: places, signs, duplicate "oncoming" views
        "station", "busstop", "motorway", "railway_track", "fuelpump", "rotating_light",
        "traffic_light", "vertical_traffic_light", "octagonal_sign", "construction",
        "oncoming_bus", "oncoming_police_car", "oncoming_taxi", "oncoming_automobile",
        "bullettrain_front", "airplane_departure", "airplane_arriving",
        "suspension_railway", "mountain_cableway", "aerial_tramway", "flying_saucer",
        # games: card-suit symbols
        "spades", "hearts", "diamonds", "clubs",
        # events: abstract
        "sparkles", "rice_scene", "reminder_ribbon",
        # tools: weapons and symbols
        "dagger_knife", "crossed_swords", "bomb", "link", "broken_chain",
        # sound and music: state symbols
        "mute", "sound", "loud_sound", "no_bell", "musical_note", "notes",
        # mail and office: symbols and charts
        "e-mail", "incoming_envelope", "envelope_with_arrow", "ballot_box_with_ballot",
        "mailbox_closed", "mailbox_with_no_mail", "chart_with_upwards_trend",
        "chart_with_downwards_trend", "bar_chart",
        # electronics, medical, science, household: symbols, body, duplicates
        "calling", "low_battery", "mag_right", "drop_of_blood", "x-ray", "dna", "elevator",
        # plants that are not sold as plants
        "wilted_flower", "rosette", "shamrock", "maple_leaf", "fallen_leaf", "leaves",
        "empty_nest", "nest_with_eggs", "leafless_tree", "white_flower", "mushroom",
        "ear_of_rice",
    }
)

# Unicode names that read badly as product titles.
TITLE_OVERRIDES: dict[str, str] = {
    "hocho": "Kitchen Knife",
    "scissors": "Scissors",
    "black_nib": "Pen Nib",
    "phone": "Telephone",
    "corn": "Corn on the Cob",
    "ramen": "Ramen Bowl",
    "cooking": "Frying Pan with Egg",
    "coffee": "Hot Coffee",
    "tea": "Teacup",
    "champagne": "Champagne Bottle",
    "gun": "Water Pistol",
    "dart": "Dartboard",
    "womans_clothes": "Women's Blouse",
    "womans_hat": "Women's Hat",
    "womans_flat_shoe": "Flat Shoe",
    "sandal": "Women's Sandal",
    "boot": "Women's Boots",
    "mans_shoe": "Men's Shoe",
    "iphone": "Mobile Phone",
    "mag": "Magnifying Glass",
    "memo": "Memo Pad",
    "flags": "Carp Streamer",
    "bamboo": "Pine Decoration",
    "blue_car": "Recreational Vehicle",
    "racing_motorcycle": "Motorcycle",
}

SMALL_WORDS = frozenset({"a", "an", "and", "as", "at", "for", "in", "of", "on", "or", "the", "to", "with"})
ACRONYMS = frozenset({"dvd"})
CSV_COLUMNS = ("id", "title", "description", "category", "subcategory", "price", "image")


@dataclass(frozen=True)
class CatalogItem:
    """One row of items.csv plus the source image it is copied from."""

    id: str
    title: str
    description: str
    category: str
    subcategory: str
    price: str
    image: str
    source_image: Path


def title_case(name: str) -> str:
    """Title-case an upper-case Unicode name, keeping small words and apostrophes right."""
    words = name.lower().split()
    out = []
    for i, word in enumerate(words):
        if i > 0 and word in SMALL_WORDS:
            out.append(word)
        elif word in ACRONYMS:
            out.append(word.upper())
        else:
            out.append("-".join(part[:1].upper() + part[1:] for part in word.split("-")))
    return " ".join(out)


def sentence_case(title: str) -> str:
    """'Bar of Soap' -> 'Bar of soap', keeping acronyms such as DVD upper-case."""
    first, *rest = title.split(" ")
    return " ".join([first, *(w if w.lower() in ACRONYMS else w.lower() for w in rest)])


def slugify(text: str) -> str:
    """Lower-case ASCII slug with single hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("'", "").replace("\u2019", "")).strip("-")


def aliases(entry: dict, title: str) -> list[str]:
    """Readable other names: the Unicode name if the title differs, then short_names; no code-like names."""
    unicode_title = title_case(entry["name"])
    seen = {slugify(title)}
    out = []
    if slugify(unicode_title) not in seen:
        seen.add(slugify(unicode_title))
        out.append(unicode_title.lower())
    for short in entry["short_names"]:
        alias = short.replace("_", " ").replace("-", " ").strip()
        if re.search(r"\d", alias) or alias.startswith("lower left") or slugify(alias) in seen:
            continue
        seen.add(slugify(alias))
        out.append(alias)
    return out


def describe(title: str, shelf: Shelf, names: list[str]) -> str:
    """One or two sentences built from the emoji's name, other names and subcategory's shelf."""
    phrase = shelf.phrase[:1].upper() + shelf.phrase[1:]
    text = f"{sentence_case(title)}. {phrase} from our {shelf.category} range."
    if names:
        text += f" Also known as: {', '.join(names)}."
    return text


def price_for(item_id: str, price_range: tuple[float, float]) -> str:
    """Deterministic fictional price, log-uniform in ``price_range``, from a hash of the id."""
    low, high = price_range
    digest = hashlib.sha256(item_id.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    value = math.exp(math.log(low) + fraction * (math.log(high) - math.log(low)))
    return f"{value:.2f}"


def is_product(entry: dict) -> bool:
    """True for a current emoji with a Google image on one of the catalog's shelves."""
    return (
        entry["subcategory"] in SHELVES
        and entry["short_names"][0] not in EXCLUDED_SHORT_NAMES
        and entry.get("has_img_google", False)
        and not entry.get("obsoleted_by")
    )


def make_item(entry: dict, source: Path) -> CatalogItem:
    """Turn one emoji.json entry into a catalog item."""
    shelf = SHELVES[entry["subcategory"]]
    short_name = entry["short_names"][0]
    title = TITLE_OVERRIDES.get(short_name) or title_case(entry["name"])
    item_id = f"{shelf.category}-{slugify(title)}"
    return CatalogItem(
        id=item_id,
        title=title,
        description=describe(title, shelf, aliases(entry, title)),
        category=shelf.category,
        subcategory=entry["subcategory"],
        price=price_for(item_id, PRICE_OVERRIDES.get(short_name, shelf.price_range)),
        image=f"images/{item_id}.png",
        source_image=source / IMAGE_DIR / entry["image"],
    )


def select_items(emoji: list[dict], source: Path) -> list[CatalogItem]:
    """Product-like items in emoji sort order; fails on duplicate ids or missing images.

    Skin-tone variants live in each entry's nested ``skin_variations`` and
    non-qualified code points in its ``non_qualified`` field, so iterating the
    top-level entries already yields one fully-qualified emoji each.
    """
    items = [make_item(e, source) for e in sorted(emoji, key=lambda e: e["sort_order"]) if is_product(e)]
    ids = [item.id for item in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate item ids: {duplicates}")
    missing = [str(item.source_image) for item in items if not item.source_image.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images missing from {source}, e.g. {missing[0]}")
    return items


def npm_install(prefix: Path) -> Path:
    """Install the pinned package under ``prefix`` (skipped when already there) and return its folder."""
    folder = prefix / "node_modules" / PACKAGE
    if _installed_version(folder) != VERSION:
        prefix.mkdir(parents=True, exist_ok=True)
        cmd = ["npm", "install", "--no-save", "--prefix", str(prefix), f"{PACKAGE}@{VERSION}"]
        log.info("running %s", " ".join(cmd))
        subprocess.run(cmd, check=True)
    return folder


def _installed_version(folder: Path) -> str | None:
    """Version in the package's package.json, or None when absent."""
    manifest = folder / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else None


def check_source(folder: Path) -> None:
    """Fail clearly unless ``folder`` is an emoji-datasource-google install of the pinned version."""
    version = _installed_version(folder)
    if version is None or not (folder / "emoji.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not an installed {PACKAGE} package (no package.json/emoji.json)"
        )
    if version != VERSION:
        log.warning("%s is version %s; the catalog is defined against %s", folder, version, VERSION)


def write_csv(items: list[CatalogItem], path: Path) -> None:
    """Write items.csv with a fixed column order and Unix line endings."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for item in items:
            writer.writerow([getattr(item, column) for column in CSV_COLUMNS])


def copy_images(items: list[CatalogItem], out: Path) -> None:
    """Copy the PNGs byte for byte (re-encoding with PIL made them larger)."""
    images = out / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    for item in items:
        shutil.copyfile(item.source_image, out / item.image)


def write_licences(source: Path, out: Path) -> None:
    """Ship the package's MIT licence and, where the system has it, the Apache-2.0 text."""
    shutil.copyfile(source / "LICENSE", out / "LICENSE-emoji-data-MIT.txt")
    if SYSTEM_APACHE_LICENSE.is_file():
        shutil.copyfile(SYSTEM_APACHE_LICENSE, out / "LICENSE-noto-emoji-Apache-2.0.txt")
    else:
        log.warning("%s not found; NOTICE.md links the Apache-2.0 text instead", SYSTEM_APACHE_LICENSE)


def notice_text(items: list[CatalogItem]) -> str:
    """NOTICE.md: provenance, licences and how the generated fields were made."""
    categories = dict.fromkeys(shelf.category for shelf in SHELVES.values())
    counts = {c: sum(item.category == c for item in items) for c in categories}
    table = "\n".join(f"| {c} | {n} |" for c, n in counts.items())
    return f"""# Sample catalog: provenance and licences

{len(items)} product-like items, one per emoji, built by `scripts/build_sample_catalog.py`
from the npm package [`{PACKAGE}`](https://www.npmjs.com/package/{PACKAGE}) version {VERSION}
(`emoji.json` and `img/google/64/*.png`), https://github.com/iamcal/emoji-data.

## Licences

- **Emoji data** (`emoji.json`: names, short names, categories): MIT licence,
  Copyright (c) 2013 Cal Henderson. The full text is in `LICENSE-emoji-data-MIT.txt`
  (copied from the package's `LICENSE`).
- **Images** (`images/*.png`): Google's Noto Emoji artwork
  (https://github.com/googlefonts/noto-emoji), which the package's README states is
  available under the Apache License 2.0. The package's `LICENSE` names no copyright
  holder for the images; the Noto Emoji project is by Google. Apache-2.0 text:
  `LICENSE-noto-emoji-Apache-2.0.txt`, or https://www.apache.org/licenses/LICENSE-2.0.
  The PNGs are copied unmodified; only the file names are changed.

## Generated fields

`id`, `title`, `description`, `category` and `price` are generated by
`scripts/build_sample_catalog.py` from each emoji's name, short names, category and
subcategory. **Prices are fictional** (a hash of the id mapped into a price range per emoji subcategory,
in EUR) and describe no real product or offer.

| category | items |
|---|---|
{table}
"""


def build(source: Path, out: Path) -> list[CatalogItem]:
    """Build the whole catalog folder from an installed package folder."""
    check_source(source)
    emoji = json.loads((source / "emoji.json").read_text(encoding="utf-8"))
    items = select_items(emoji, source)
    out.mkdir(parents=True, exist_ok=True)
    copy_images(items, out)
    write_csv(items, out / "items.csv")
    write_licences(source, out)
    (out / "NOTICE.md").write_text(notice_text(items), encoding="utf-8")
    return items


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        help=f"an installed node_modules/{PACKAGE} folder; default: npm-install {VERSION} into .cache/npm",
    )
    parser.add_argument("--out", type=Path, default=Path("sample_catalog"), help="output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the sample catalog; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = parse_args(argv)
    source = args.source if args.source is not None else npm_install(NPM_PREFIX)
    items = build(source, args.out)
    log.info("wrote %d items to %s", len(items), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
