"""End to end with the real pretrained encoders on the sample catalog (slower; runs in CI)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLE_CATALOG

from engine import Catalog, Engine, EngineConfig
from engine.config import EncoderConfig

pytestmark = pytest.mark.pretrained

CATEGORIES = ("food", "music", "vehicles")


@pytest.fixture(scope="module")
def engine() -> Engine:
    frame = pd.read_csv(SAMPLE_CATALOG)
    frame = frame[frame["category"].isin(CATEGORIES)]
    catalog = Catalog(frame, base_dir=SAMPLE_CATALOG.parent)
    return Engine.build(catalog, EngineConfig(encoders=EncoderConfig(num_workers=1)), show_progress=False)


def test_text_query_finds_the_item_it_names(engine: Engine) -> None:
    assert engine.search(text="violin", k=1)[0].item_id == "music-violin"
    assert engine.search(text="a red apple", k=3)[0].item_id == "food-red-apple"


def test_image_query_with_a_product_photo_finds_the_product(engine: Engine) -> None:
    photo = SAMPLE_CATALOG.parent / "images" / "vehicles-bicycle.png"
    assert engine.search(image=photo, k=1)[0].item_id == "vehicles-bicycle"


def test_similar_items_share_the_category(engine: Engine) -> None:
    for item in ("food-red-apple", "music-guitar", "vehicles-bicycle"):
        category = item.split("-")[0]
        same = [m.fields["category"] == category for m in engine.similar(item, k=10)]
        assert sum(same) >= 8, (item, [m.item_id for m in engine.similar(item, k=10)])


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo", Path(__file__).parents[1] / "scripts" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)  # type: ignore[union-attr]
    assert demo.main(["--out", str(tmp_path / "model")]) == 0
    out = capsys.readouterr().out
    assert "indexed       : 489" in out and "similar to food-red-apple" in out
    assert out.count("== 3. recommendations for user-") == 2 and "because" in out
    assert Engine.load(tmp_path / "model").trained is not None
