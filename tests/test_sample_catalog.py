"""Checks on the committed sample catalog and, on a tiny fake package, on the script that builds it."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
CATALOG = REPO_ROOT / "sample_catalog"
SCRIPT = REPO_ROOT / "scripts" / "build_sample_catalog.py"
COLUMNS = ["id", "title", "description", "category", "subcategory", "price", "image"]


def read_rows(path: Path) -> list[dict[str, str]]:
    """items.csv as a list of dicts, checking the header first."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return read_rows(CATALOG / "items.csv")


def test_rows_and_ids(rows: list[dict[str, str]]) -> None:
    assert len(rows) >= 300
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == len(ids)
    for row in rows:
        assert all(row[column].strip() for column in COLUMNS), row
        assert row["id"].startswith(row["category"] + "-")
        assert float(row["price"]) > 0 and row["price"] == f"{float(row['price']):.2f}"


def test_categories_are_balanced_enough(rows: list[dict[str, str]]) -> None:
    counts = Counter(row["category"] for row in rows)
    assert len(counts) >= 8
    assert min(counts.values()) >= 15, counts


def test_every_image_exists_and_opens(rows: list[dict[str, str]]) -> None:
    for row in rows:
        path = CATALOG / row["image"]
        assert path.is_file(), path
        with Image.open(path) as image:
            image.load()
            assert image.size == (64, 64)


def test_catalog_is_small_and_has_notice() -> None:
    total = sum(p.stat().st_size for p in CATALOG.rglob("*") if p.is_file())
    assert total < 10 * 1024 * 1024
    notice = (CATALOG / "NOTICE.md").read_text(encoding="utf-8")
    assert "emoji-datasource-google" in notice and "Apache" in notice and "MIT" in notice


def load_script():
    """Import scripts/build_sample_catalog.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("build_sample_catalog", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def fake_package(root: Path) -> Path:
    """A minimal emoji-datasource-google folder: two products, one smiley, one excluded sign."""
    entries = [
        ("RED APPLE", ["apple"], "Food & Drink", "food-fruit", "1f34e.png", 2),
        ("GRINNING FACE", ["grinning"], "Smileys & Emotion", "face-smiling", "1f600.png", 1),
        ("T-SHIRT", ["shirt", "tshirt"], "Objects", "clothing", "1f455.png", 3),
        ("OCTAGONAL SIGN", ["octagonal_sign"], "Travel & Places", "transport-ground", "1f6d1.png", 4),
    ]
    images = root / "img" / "google" / "64"
    images.mkdir(parents=True)
    emoji = []
    for name, short_names, category, subcategory, image, order in entries:
        Image.new("RGBA", (64, 64), (200, 30, 30, 255)).save(images / image)
        emoji.append(
            {"name": name, "short_names": short_names, "category": category, "subcategory": subcategory,
             "image": image, "sort_order": order, "has_img_google": True}
        )
    (root / "emoji.json").write_text(json.dumps(emoji))
    (root / "package.json").write_text(json.dumps({"name": "emoji-datasource-google", "version": "16.0.0"}))
    (root / "LICENSE").write_text("MIT fake licence")
    return root


def test_script_builds_catalog_from_package(tmp_path: Path) -> None:
    script = load_script()
    out = tmp_path / "catalog"
    assert script.main(["--source", str(fake_package(tmp_path / "pkg")), "--out", str(out)]) == 0
    rows = read_rows(out / "items.csv")
    assert [row["id"] for row in rows] == ["food-red-apple", "clothing-t-shirt"]
    assert rows[0]["title"] == "Red Apple"
    assert rows[0]["description"] == "Red apple. A fresh fruit from our food range. Also known as: apple."
    assert all((out / row["image"]).is_file() for row in rows)
    first = (out / "items.csv").read_bytes()
    script.main(["--source", str(tmp_path / "pkg"), "--out", str(out)])
    assert (out / "items.csv").read_bytes() == first


def test_script_rejects_folder_without_package(tmp_path: Path) -> None:
    script = load_script()
    with pytest.raises(FileNotFoundError, match="is not an installed emoji-datasource-google package"):
        script.main(["--source", str(tmp_path), "--out", str(tmp_path / "out")])
