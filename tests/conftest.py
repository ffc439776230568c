"""Shared fixtures: deterministic fake encoders and tiny catalogs with planted structure."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from encoders.base import ImageEncoder, TextEncoder, l2_normalise
from encoders.registry import ENCODERS
from recommenders.data import InteractionData

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CATALOG = REPO / "sample_catalog" / "items.csv"


def _to_tensor(image: Image.Image | str | Path) -> torch.Tensor:
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    rgb = np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1)


class _Centre(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1) - 0.5


class ColourEncoder(ImageEncoder):
    """Fake image encoder: the mean colour of each image quadrant (12-d)."""

    def __init__(self, **_: object) -> None:
        self.name, self.dim, self.batch_size = "fake-image", 12, 8
        self.device = torch.device("cpu")
        self.model = _Centre()
        self.preprocessor = _to_tensor


class HashingTextEncoder(TextEncoder):
    """Fake text encoder: hashed bag of lower-cased words (64-d)."""

    def __init__(self, **_: object) -> None:
        self.name, self.dim = "fake-text", 64

    def encode(self, batch: list[str]) -> np.ndarray:
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        for row, text in enumerate(batch):
            for word in text.lower().replace(".", " ").split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return l2_normalise(torch.from_numpy(out) + 1e-6)


# Registered like every encoder, as "module:attribute"; `__name__` is whatever name pytest imported this file under.
ENCODERS.setdefault("fake-image", f"{__name__}:ColourEncoder")
ENCODERS.setdefault("fake-text", f"{__name__}:HashingTextEncoder")


def fake_config(**index: object):
    """An EngineConfig with the fake encoders and no worker processes."""
    from engine.config import EncoderConfig, EngineConfig
    from index.config import IndexConfig

    return EngineConfig(
        encoders=EncoderConfig(image="fake-image", text="fake-text", num_workers=0, batch_size=4),
        index=IndexConfig(**index),
    )


def write_image(path: Path, colour: tuple[int, int, int]) -> str:
    Image.new("RGB", (16, 16), colour).save(path)
    return path.name


@pytest.fixture
def toy_catalog_file(tmp_path: Path) -> Path:
    """Ten items: five red fruit and five blue tools, each with an image and a description."""
    return make_toy_catalog(tmp_path)


def make_toy_catalog(tmp_path: Path) -> Path:
    """Write the toy catalog (see `toy_catalog_file`) into a folder; returns the CSV path."""
    rows = []
    for i in range(5):
        rows.append({"id": f"fruit-{i}", "title": f"Red apple {i}", "description": "fresh red fruit",
                     "category": "food", "price": 1.0 + i, "image": write_image(tmp_path / f"f{i}.png", (220, 20 + i, 30))})
    for i in range(5):
        rows.append({"id": f"tool-{i}", "title": f"Blue hammer {i}", "description": "steel hand tool",
                     "category": "tools", "price": 10.0 + i, "image": write_image(tmp_path / f"t{i}.png", (20, 30 + i, 220))})
    path = tmp_path / "items.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def taste_ratings(implicit: bool = False) -> tuple[InteractionData, InteractionData]:
    """Users 0-19 rate items 0-7 high (5) and 8-15 low (1); users 20-39 the reverse; user 40 and item 16 unseen.

    Each user rates 12 of the 16 items; the last rating of each user is held out (train, held-out).
    `implicit`: every rating is 1 instead.
    """
    rng = np.random.default_rng(0)
    users, items, ratings = [], [], []
    for u in range(40):
        for i in rng.choice(16, size=12, replace=False):
            likes = (i < 8) == (u < 20)
            users.append(u), items.append(int(i)), ratings.append(1.0 if implicit else (5.0 if likes else 1.0))
    data = InteractionData.from_arrays(users, items, None, ratings, n_users=41, n_items=17)
    last = np.zeros(len(data), dtype=bool)
    for u in range(40):
        last[np.flatnonzero(data.users == u)[-1]] = True
    return data.subset(~last), data.subset(last)
