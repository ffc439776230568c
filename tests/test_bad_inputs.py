"""A corpus of bad inputs: each is either refused with the engine's own error, naming the problem, or accepted.

Every case says what it expects: `raises(ErrorClass, message pattern)` or `accepts(what)`
with a check of the result. No case may escape as a raw FileNotFoundError, JSONDecodeError,
ArrowInvalid, faiss RuntimeError, TypeError or ZeroDivisionError, hang, or read a file
outside the catalog's folder. Fake encoders (see conftest) keep the whole corpus fast.
"""

from __future__ import annotations

import io
import math
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import fake_config, make_toy_catalog, write_image
from PIL import Image

from core.errors import (
    CatalogError,
    EngineError,
    ImageError,
    InteractionsError,
    InvalidArgumentError,
    UnknownItemError,
)
from encoders.config import ImageLimits
from encoders.imageio import load_image
from engine import Catalog, Engine, Interactions, ItemFilter
from engine.config import EngineConfig
from engine.pipeline import encode_items

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero (POSIX)")

RED, BLUE = (220, 20, 30), (20, 30, 220)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but holds no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (16, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


# ----------------------------------------------------------------------------- shared world


@dataclass
class World:
    """Built once: a folder of good and bad files, the toy engine, and an engine built over bad images."""

    root: Path
    engine: Engine  # ten items: red fruit, blue tools (conftest.make_toy_catalog)
    skipped: dict[str, str]  # item -> reason, of the build over bad images
    bad_build: Engine
    opened: list[str]  # every path os.open saw during that build
    outside: Path  # a folder next to the catalog's, which the build must never read

    def dir(self, name: str) -> Path:
        path = self.root / "cases" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.dir(name) / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path


BAD_IMAGES = {  # item id -> how its image entry is made (relative to the catalog folder unless absolute)
    "fifo": "fifo.png",
    "directory": "folder.png",
    "dotdot": "../outside/secret.png",
    "symlink-out": "link-out.png",
    "absolute-out": None,  # filled in: an absolute path into the outside folder
    "bomb": "bomb.png",
    "too-many-pixels": "large.png",
    "zero-size": "zero.png",
    "one-pixel": "one.png",
    "truncated": "truncated.png",
    "not-an-image": "notes.png",
    "empty-file": "empty.png",
    "missing": "missing.png",
    "nul-in-path": "bad\x00name.png",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("bad-inputs")
    engine = Engine.build(Catalog.from_file(make_toy_catalog(root)), fake_config(), show_progress=False)

    shop, outside = root / "shop", root / "outside"
    shop.mkdir(), outside.mkdir()
    write_image(outside / "secret.png", (0, 255, 0))
    os.mkfifo(outside / "trap.png")  # opening it would block forever: proves nothing outside is opened
    os.mkfifo(shop / "fifo.png")
    (shop / "folder.png").mkdir()
    os.symlink(outside / "trap.png", shop / "link-out.png")
    (shop / "bomb.png").write_bytes(png_header(100_000, 100_000))
    (shop / "large.png").write_bytes(png_header(8_000, 8_000))
    (shop / "zero.png").write_bytes(png_header(0, 0))
    Image.new("RGB", (1, 1)).save(shop / "one.png")
    (shop / "truncated.png").write_bytes(png_bytes(RED, (64, 64))[:60])
    (shop / "notes.png").write_bytes(b"these are my notes, not a picture\n" * 4)
    (shop / "empty.png").write_bytes(b"")
    write_image(shop / "good.png", RED)
    os.symlink(shop / "good.png", shop / "link-in.png")
    images = {**BAD_IMAGES, "absolute-out": str(outside / "trap.png"), "good": "good.png",
              "symlink-in": "link-in.png", "absolute-in": str(shop / "good.png")}
    rows = [{"id": item, "title": "", "image": image} for item, image in images.items()]
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.path.realpath(path))
        return real_open(path, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(os, "open", spy)
    try:
        bad_build = Engine.build(Catalog.from_records(rows, base_dir=shop), fake_config(), show_progress=False)
    finally:
        mp.undo()
    skipped = {s.item_id: s.reason for s in bad_build.skipped}
    return World(root, engine, skipped, bad_build, opened, outside)


# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One bad input and what must happen to it."""

    name: str
    run: Callable[[World], Any]
    error: type[EngineError] | None = None  # raises this ...
    match: str = ""  # ... with a message matching this (re.search)
    check: Callable[[Any], bool] | None = None  # or is accepted, and the result passes this
    expect: str = ""


def raises(name: str, run: Callable[[World], Any], error: type[EngineError], match: str) -> Any:
    return pytest.param(Case(name, run, error, match), id=name)


def accepts(name: str, run: Callable[[World], Any], check: Callable[[Any], bool], expect: str) -> Any:
    return pytest.param(Case(name, run, check=check, expect=expect), id=name)


def skipped(item: str, match: str) -> Any:
    """The bad-image build succeeded and skipped `item` with a reason matching `match`."""
    return raises(f"build-skips-{item}", lambda w: _raise_reason(w, item), ImageError, match)


def _raise_reason(w: World, item: str) -> None:
    if item not in w.skipped:
        return  # the case then fails: it expected a skip reason
    raise ImageError(w.skipped[item])


def catalog(frame: dict[str, list[Any]], **kwargs: Any) -> Callable[[World], Catalog]:
    return lambda w: Catalog(pd.DataFrame(frame), base_dir=w.root, **kwargs)


def catalog_file(name: str, content: str | bytes) -> Callable[[World], Catalog]:
    return lambda w: Catalog.from_file(w.file(name, content))


def log(**columns: list[Any]) -> Callable[[World], Interactions]:
    base: dict[str, list[Any]] = {"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"], "timestamp": [3, 1, 2]}
    base.update(columns)
    return lambda w: Interactions(pd.DataFrame(base))


def log_file(name: str, content: str | bytes) -> Callable[[World], Interactions]:
    return lambda w: Interactions.from_file(w.file(name, content))


def fifo(name: str) -> Callable[[World], Path]:
    def make(w: World) -> Path:
        path = w.dir(name) / name
        if not path.exists():
            os.mkfifo(path)
        return path
    return make


def roundtrip(frame: pd.DataFrame) -> Callable[[World], tuple[list[Any], list[Any]]]:
    """Catalog -> parquet -> Catalog; returns each row's fields (with their types) before and after."""
    def run(w: World) -> tuple[list[Any], list[Any]]:
        before = Catalog(frame, base_dir=w.root)
        path = w.dir(f"roundtrip-{id(frame)}") / "catalog.parquet"
        before.to_parquet(path)
        after = Catalog.read_parquet(path, before.base_dir, "saved")
        typed = lambda c: [{k: (type(v).__name__, v) for k, v in c.fields(r).items()} for r in range(len(c))]  # noqa: E731
        return typed(before), typed(after)
    return run


def search_image(image: Any) -> Callable[[World], list[str]]:
    return lambda w: [m.item_id for m in w.engine.search(image=image, k=3)]


def top_is(prefix: str) -> Callable[[list[str]], bool]:
    return lambda ids: ids[0].startswith(prefix)


def same(pair: tuple[Any, Any]) -> bool:
    return pair[0] == pair[1]


LATIN1 = "id,title\nsku-1,Crème brûlée\n".encode("latin-1")
UTF16 = "id,title\nsku-1,Tea\n".encode("utf-16")
BOM = "\ufeffid,title\nsku-1,Tea\n".encode()
MIXED = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "size": [1, "1", 2.5, None, True],
                      "tags": [["red", "big"], {"k": 1}, [], None, "plain"], "note": ["x", None, "z", "w", "v"],
                      "count": [1, 2, 3, 4, 5], "weight": [0.5, np.nan, 1.5, 2.0, 3.0]})

CASES = [
    # ---- ids: one spelling per id, in the catalog, the log and the index
    raises("id-differs-by-whitespace", catalog({"id": [" a", "a"]}), CatalogError, r"has duplicate ids: 'a' \(rows 0, 1\)"),
    accepts("id-surrounding-whitespace-stripped", lambda w: Catalog(pd.DataFrame({"id": ["  a ", "b\t"]})).ids,
            lambda ids: ids == ["a", "b"], "ids ['a', 'b']"),
    raises("id-zero-width-space", catalog({"id": ["a", "a\u200b"]}), CatalogError,
           r"id in row 1 is 'a\\u200b', which holds the invisible character U\+200B \(ZERO WIDTH SPACE\)"),
    raises("id-only-invisible", catalog({"id": ["\u200b"]}), CatalogError, r"row 0 .*U\+200B"),
    raises("id-nul", catalog({"id": ["a\x00b"]}), CatalogError, r"U\+0000"),
    raises("id-trailing-nul-in-csv", catalog_file("nul.csv", "id,title\nsku-1\x00,Tea\n"), CatalogError,
           r"nul\.csv'.*id in row 0 is 'sku-1\\x00'.*U\+0000"),
    raises("id-byte-order-mark", catalog({"id": ["\ufeffsku"]}), CatalogError, r"U\+FEFF \(ZERO WIDTH NO-BREAK SPACE\)"),
    raises("id-no-break-space", catalog({"id": ["a\u00a0b"]}), CatalogError, r"U\+00A0 \(NO-BREAK SPACE\)"),
    raises("id-blank", catalog({"id": ["a", "   "]}), CatalogError, r"row 1 has an empty id"),
    raises("id-float", catalog({"id": [1.5, 2.5]}), CatalogError, r"id in row 0 is float 1\.5; expected a string or an integer"),
    raises("id-bool", catalog({"id": [True, "b"]}, ), CatalogError, r"id in row 0 is bool True"),
    accepts("id-integers-in-jsonl", lambda w: Catalog.from_file(w.file("ints.jsonl", '{"id": 7}\n{"id": "8"}\n')).ids,
            lambda ids: ids == ["7", "8"], "ids ['7', '8']"),
    accepts("log-id-whitespace-matches-catalog", lambda w: log(item_id=[" a", "a ", "b"])(w).frame["item_id"].tolist(),
            lambda ids: ids == ["a", "a", "b"], "item ids stripped to the catalog's spelling"),
    raises("log-id-zero-width", log(user_id=["u1", "u1\u200b", "u2"]), InteractionsError, r"user_id in row 1 .*U\+200B"),
    raises("log-id-missing", log(user_id=["u1", None, "u2"]), InteractionsError, r"row 1 has an empty user_id"),
    # ---- prices and stock: checked where the catalog comes in; filters predictable
    raises("price-nan", catalog({"id": ["a", "b"], "price": ["1", "NaN"]}), CatalogError,
           r"price in row 1 \(item 'b'\) is 'NaN'; expected a finite number >= 0, or an empty cell"),
    raises("price-inf", catalog({"id": ["a"], "price": [math.inf]}), CatalogError, r"price in row 0 \(item 'a'\) is inf"),
    raises("price-negative", catalog({"id": ["a"], "price": [-2]}), CatalogError, r"price in row 0 \(item 'a'\) is -2;"),
    raises("price-not-a-number", catalog({"id": ["a", "b"], "price": ["3", "cheap"]}), CatalogError, r"is 'cheap'; expected"),
    raises("price-boolean", catalog({"id": ["a"], "price": [True]}), CatalogError, r"price in row 0 \(item 'a'\) is True"),
    raises("stock-not-a-number", catalog({"id": ["a"], "stock": ["many"]}), CatalogError, r"stock in row 0 \(item 'a'\) is 'many'"),
    accepts("price-empty-means-unknown",
            lambda w: (lambda c: (c.fields(1)["price"], ItemFilter(max_price=5).to_id_filter(c).include))(
                Catalog(pd.DataFrame({"id": ["a", "b", "c"], "price": [" 2.50 ", "", 9]}))),
            lambda r: r == (None, frozenset({"a"})), "an item without a price passes no price bound"),
    raises("filter-min-price-nan", lambda w: ItemFilter(min_price=float("nan")), InvalidArgumentError,
           r"min_price must be a finite number >= 0 or None, got float nan"),
    raises("filter-max-price-inf", lambda w: ItemFilter(max_price=math.inf), InvalidArgumentError, r"max_price .* got float inf"),
    raises("filter-max-price-string", lambda w: ItemFilter(max_price="5"), InvalidArgumentError, r"max_price .* got str '5'"),
    raises("filter-min-price-bool", lambda w: ItemFilter(min_price=True), InvalidArgumentError, r"min_price .* got bool True"),
    raises("filter-min-above-max", lambda w: ItemFilter(min_price=5, max_price=1), InvalidArgumentError,
           r"min_price 5 is above max_price 1"),
    raises("filter-categories-int", lambda w: ItemFilter(categories=5), InvalidArgumentError,
           r"categories must be a string or a collection of strings, got int 5"),
    raises("filter-exclude-non-string", lambda w: ItemFilter(exclude=["a", 3]), InvalidArgumentError,
           r"exclude must hold strings, got int 3"),
    raises("filter-price-without-price-column", lambda w: ItemFilter(max_price=3).to_id_filter(Catalog(pd.DataFrame({"id": ["a"]}))),
           CatalogError, r"catalog has no column 'price'"),
    # ---- mixed-type columns survive saving
    accepts("mixed-column-roundtrip", roundtrip(MIXED), same, "every value and its type unchanged after parquet"),
    accepts("numeric-columns-roundtrip", roundtrip(MIXED[["id", "count", "weight"]]), same, "native columns unchanged"),
    # ---- table files
    raises("csv-duplicate-column", catalog_file("dup.csv", "id,title,title\na,x,y\n"), CatalogError,
           r"dup\.csv' has repeated column names \['title'\] in its header"),
    raises("frame-duplicate-column", lambda w: Catalog(pd.DataFrame([["a", "x", "y"]], columns=["id", "t", "t"])),
           CatalogError, r"has repeated column names \['t'\]"),
    raises("jsonl-duplicate-key", catalog_file("dup.jsonl", '{"id": "a"}\n{"id": "b", "id": "c"}\n'), CatalogError,
           r"dup\.jsonl' line 2 repeats the key 'id'"),
    raises("csv-zero-bytes", catalog_file("empty.csv", b""), CatalogError, r"empty\.csv' is empty \(0 bytes\)"),
    raises("jsonl-zero-bytes", catalog_file("empty.jsonl", b""), CatalogError, r"empty\.jsonl' is empty \(0 bytes\)"),
    raises("parquet-zero-bytes", catalog_file("empty.parquet", b""), CatalogError, r"empty\.parquet' is empty \(0 bytes\)"),
    raises("csv-header-only", catalog_file("header.csv", "id,title\n"), CatalogError, r"header\.csv' is empty: it has no items"),
    raises("jsonl-blank-lines-only", catalog_file("blank.jsonl", "\n\n"), CatalogError, r"blank\.jsonl' is empty: it has no items"),
    raises("csv-latin1", catalog_file("latin1.csv", LATIN1), CatalogError, r"latin1\.csv' is not UTF-8 text: byte 0xe8 at offset 17 \(line 2\)"),
    raises("csv-utf16", catalog_file("utf16.csv", UTF16), CatalogError, r"utf16\.csv' is not UTF-8 text: byte 0xff at offset 0 \(line 1\)"),
    accepts("csv-utf8-bom", lambda w: Catalog.from_file(w.file("bom.csv", BOM)).fields(0),
            lambda f: f == {"id": "sku-1", "title": "Tea"}, "the byte-order mark is not part of the first column's name"),
    raises("catalog-path-is-directory", lambda w: Catalog.from_file(w.dir("items.csv")), CatalogError,
           r"catalog path '.*items\.csv' is a directory; expected a \.csv file"),
    raises("catalog-path-is-fifo", lambda w: Catalog.from_file(fifo("pipe.csv")(w)), CatalogError,
           r"pipe\.csv' is not a regular file"),
    raises("catalog-missing", lambda w: Catalog.from_file(w.root / "nope.csv"), CatalogError, r"nope\.csv' does not exist"),
    raises("catalog-wrong-suffix", lambda w: Catalog.from_file(w.root / "items.xlsx"), CatalogError,
           r"has suffix '\.xlsx'; expected one of \.csv, \.jsonl, \.parquet"),
    raises("jsonl-broken-line", catalog_file("broken.jsonl", '{"id": "a"}\n{"id": "b",\n{"id": "c"}\n'), CatalogError,
           r"broken\.jsonl' line 2 is not valid JSON"),
    raises("jsonl-line-not-object", catalog_file("list.jsonl", '["a", "b"]\n'), CatalogError,
           r"list\.jsonl' line 1 is a JSON list; expected one object per line"),
    raises("parquet-garbage", catalog_file("junk.parquet", b"PAR1 this is not parquet"), CatalogError,
           r"cannot read catalog file '.*junk\.parquet' as \.parquet"),
    raises("csv-ragged-row", catalog_file("ragged.csv", "id,title\na,x\nb,y,z\n"), CatalogError,
           r"cannot read catalog file '.*ragged\.csv' as \.csv: .*line 3"),
    raises("records-not-dicts", lambda w: Catalog.from_records([{"id": "a"}, 5]), CatalogError,
           r"record 1 is a int \(5\); expected a dict"),
    raises("records-a-string", lambda w: Catalog.from_records("abc"), CatalogError, r"records must be a list of dicts, got str"),
    # ---- images met while building: skipped with a reason, never a hang or a crash
    skipped("fifo", r"image path '.*fifo\.png' is a FIFO \(named pipe\); expected a regular image file"),
    skipped("directory", r"image path '.*folder\.png' is a directory"),
    skipped("dotdot", r"image path '.*outside/secret\.png' resolves to '.*outside/secret\.png', outside the folder"),
    skipped("symlink-out", r"image path '.*link-out\.png' resolves to '.*outside/trap\.png', outside the folder"),
    skipped("absolute-out", r"trap\.png' resolves to .* outside the folder .*allow_outside=True"),
    skipped("bomb", r"bomb\.png' is a decompression bomb"),
    skipped("too-many-pixels", r"large\.png' is 8000x8000 = 64,000,000 pixels, above the limit of 40,000,000"),
    skipped("zero-size", r"zero\.png': it starts like a PNG but its header is invalid"),
    skipped("one-pixel", r"one\.png' is 1x1 pixels; expected at least 2x2"),
    skipped("truncated", r"cannot decode image file '.*truncated\.png'"),
    skipped("not-an-image", r"notes\.png': not an image format PIL reads"),
    skipped("empty-file", r"image file '.*empty\.png' is empty \(0 bytes\)"),
    skipped("missing", r"missing\.png' does not exist"),
    skipped("nul-in-path", r"name\.png' cannot be resolved: embedded null byte"),
    accepts("build-keeps-images-inside", lambda w: sorted(set(w.bad_build.catalog.ids) - set(w.skipped)),
            lambda ids: ids == ["absolute-in", "good", "symlink-in"], "absolute paths and symlinks inside the folder are read"),
    accepts("build-never-opens-outside", lambda w: [p for p in w.opened if p.startswith(str(w.outside))],
            lambda paths: paths == [], "no file outside the catalog folder was opened"),
    accepts("device-allowed-outside-still-refused",
            lambda w: [s.reason for s in Engine.build(Catalog.from_records(
                [{"id": "zero", "image": "/dev/zero"}, {"id": "ok", "title": "tea"}], base_dir=w.root, allow_outside=True),
                fake_config(), show_progress=False).skipped],
            lambda r: len(r) == 1 and "'/dev/zero' is a device; expected a regular image file" in r[0], "/dev/zero skipped"),
    accepts("file-over-size-limit",
            lambda w: encode_items(Catalog.from_records([{"id": "a", "image": "good.png"}], base_dir=w.root / "shop"),
                                   w.engine.encoders, show_progress=False, limits=ImageLimits(max_bytes=50)).skipped[0].reason,
            lambda r: "bytes, above the limit of 50 (ImageLimits.max_bytes)" in r, "skipped, naming the byte limit"),
    accepts("time-budget-exhausted",
            lambda w: encode_items(Catalog.from_records([{"id": "a", "image": "good.png"}], base_dir=w.root / "shop"),
                                   w.engine.encoders, show_progress=False, limits=ImageLimits(timeout_s=1e-9)).skipped[0].reason,
            lambda r: "took longer than 1e-09 s (ImageLimits.timeout_s)" in r, "skipped, naming the time budget"),
    raises("build-raise-mode-names-item",
           lambda w: Engine.build(Catalog.from_records([{"id": "p", "image": "fifo.png"}], base_dir=w.root / "shop"),
                                  fake_config(), on_error="raise", show_progress=False),
           ImageError, r"item 'p': image path '.*fifo\.png' is a FIFO"),
    raises("build-nothing-to-encode-raise-mode",
           lambda w: Engine.build(Catalog.from_records([{"id": "p", "title": ""}]), fake_config(), on_error="raise",
                                  show_progress=False),
           CatalogError, r"item 'p': item has neither text nor an image"),
    # ---- query images: bytes, arrays and PIL images accepted; other types refused
    accepts("query-png-bytes", search_image(png_bytes(BLUE)), top_is("tool-"), "a blue PNG's bytes find a blue tool"),
    accepts("query-bytearray", search_image(bytearray(png_bytes(RED))), top_is("fruit-"), "bytearray accepted"),
    accepts("query-array-rgb-uint8", search_image(np.full((24, 24, 3), RED, np.uint8)), top_is("fruit-"), "HxWx3 uint8"),
    accepts("query-array-rgb-float", search_image(np.full((24, 24, 3), BLUE, np.float32) / 255), top_is("tool-"), "floats in [0, 1]"),
    accepts("query-array-rgba", search_image(np.dstack([np.full((24, 24, 3), RED, np.uint8), np.full((24, 24), 255, np.uint8)])),
            top_is("fruit-"), "HxWx4, alpha composited on white"),
    accepts("query-array-grey", search_image(np.full((24, 24), 128, np.uint8)), lambda ids: len(ids) == 3, "HxW grey"),
    accepts("query-pil", search_image(Image.new("RGB", (24, 24), BLUE)), top_is("tool-"), "a PIL image"),
    raises("query-image-int", search_image(5), InvalidArgumentError, r"image must be a file path .* got int 5"),
    raises("query-image-dict", search_image({"url": "x"}), InvalidArgumentError, r"image must be .* got dict \{'url': 'x'\}"),
    raises("query-image-list", search_image([1, 2]), InvalidArgumentError, r"got list \[1, 2\]"),
    raises("query-image-empty-path", search_image(""), InvalidArgumentError, r"got str ''"),
    raises("query-array-two-channels", search_image(np.zeros((8, 8, 2), np.uint8)), InvalidArgumentError,
           r"image array has shape \(8, 8, 2\); expected \(H, W\), \(H, W, 3\) or \(H, W, 4\)"),
    raises("query-array-0-255-floats", search_image(np.full((8, 8, 3), 200.0)), InvalidArgumentError,
           r"float image array has values in \[200, 200\]; expected values in \[0, 1\]"),
    raises("query-array-nan", search_image(np.full((8, 8, 3), np.nan)), InvalidArgumentError, r"192 NaN or infinite values"),
    raises("query-array-int64", search_image(np.zeros((8, 8, 3), np.int64)), InvalidArgumentError,
           r"dtype int64; expected uint8 \(0-255\) or float in \[0, 1\]"),
    raises("query-array-empty", search_image(np.zeros((0, 5, 3), np.uint8)), ImageError, r"is 5x0 pixels; expected at least 2x2"),
    raises("query-bytes-not-image", search_image(b"GIF89a nonsense"), ImageError, r"it starts like a GIF but its header is invalid"),
    raises("query-bytes-bomb", search_image(png_header(100_000, 100_000)), ImageError, r"decompression bomb"),
    raises("query-path-fifo", lambda w: search_image(fifo("q.png")(w))(w), ImageError, r"q\.png' is a FIFO"),
    raises("query-path-device", search_image("/dev/zero"), ImageError, r"'/dev/zero' is a device"),
    raises("query-path-directory", lambda w: search_image(w.dir("q-dir.png"))(w), ImageError, r"q-dir\.png' is a directory"),
    raises("query-path-missing", lambda w: search_image(w.root / "gone.jpg")(w), ImageError, r"gone\.jpg' does not exist"),
    # ---- query arguments
    *[raises(f"k-{k!r}", (lambda k: lambda w: w.engine.similar("fruit-0", k=k))(k), InvalidArgumentError,
             f"k must be a positive integer, got {k!r}".replace("(", r"\(").replace(")", r"\)").replace(".", r"\."))
      for k in (0, -1, 1.5, True, "3", None)],
    raises("text-empty", lambda w: w.engine.search(text=""), InvalidArgumentError, r"text query must be a non-empty string, got ''"),
    raises("text-blank", lambda w: w.engine.search(text="   "), InvalidArgumentError, r"non-empty string, got '   '"),
    raises("text-none-no-image", lambda w: w.engine.search(text=None), InvalidArgumentError, r"search needs text=\.\.\., image=\.\.\. or both"),
    raises("text-int", lambda w: w.engine.search(text=123), InvalidArgumentError, r"non-empty string, got 123"),
    raises("history-a-string", lambda w: w.engine.recommend(history="fruit-0"), InvalidArgumentError,
           r"history must be a list of item ids, got the string 'fruit-0'"),
    raises("history-unknown-item", lambda w: w.engine.recommend(history=["fruit-0", "nope"]), UnknownItemError,
           r"history item 'nope' is not in the catalog"),
    raises("filter-wrong-type", lambda w: w.engine.similar("fruit-0", filter={"categories": ["food"]}), InvalidArgumentError,
           r"filter must be an ItemFilter, got dict"),
    raises("filter-unknown-category", lambda w: w.engine.similar("fruit-0", filter=ItemFilter(categories=["shoes"])),
           InvalidArgumentError, r"unknown categories \['shoes'\]; the catalog has: food, tools"),
    raises("similar-unknown-item", lambda w: w.engine.similar("sku-9"), UnknownItemError, r"item 'sku-9' is not in the catalog"),
    accepts("similar-item-with-trailing-space", lambda w: w.engine.similar(" fruit-0 ") == w.engine.similar("fruit-0"),
            lambda r: r is True, "ids are stripped at lookup as on reading"),
    raises("similar-int-id-unknown", lambda w: w.engine.similar(42), UnknownItemError, r"item '42' is not in the catalog"),
    raises("similar-float-id", lambda w: w.engine.similar(1.5), InvalidArgumentError,
           r"item id must be a string or an integer \(42 means '42'\), got float 1.5"),
    raises("similar-bool-id", lambda w: w.engine.similar(True), InvalidArgumentError, r"item id must be .*, got bool True"),
    raises("similar-many-a-string", lambda w: w.engine.similar_many("fruit-0"), InvalidArgumentError,
           r"similar_many takes a list of item ids, got str 'fruit-0'; for one item call similar\('fruit-0'\)"),
    raises("remove-float-id", lambda w: w.engine.remove([2.0]), InvalidArgumentError, r"item id must be .*, got float 2.0"),
    raises("image-text-mode-file", lambda w: w.engine.search(image=io.StringIO("not bytes")), InvalidArgumentError,
           r"image file object StringIO was opened in text mode .*; open it with 'rb'"),
    raises("log-events-unknown-item", lambda w: w.engine.log_events([{"user_id": "u", "item_id": "sku-9"}]), UnknownItemError,
           r"events name item\(s\) not in the catalog \(10 items\): 'sku-9'; no event was recorded"),
    raises("log-events-a-dict", lambda w: w.engine.log_events({"user_id": "u", "item_id": "fruit-0"}), InvalidArgumentError,
           r"events must be Interactions, a DataFrame or a list of dicts .*, got dict"),
    raises("log-events-no-item-column", lambda w: w.engine.log_events([{"user_id": "u"}]), InteractionsError,
           r"has no 'item_id' column"),
    raises("add-lone-surrogate", lambda w: w.engine.add([{"id": "s", "title": "x", "colour": "\ud800"}]), CatalogError,
           r"records: row 0, field 'colour' holds '\\ud800', which is not valid Unicode"),
    raises("log-events-lone-surrogate", lambda w: w.engine.log_events([{"user_id": "u\ud800", "item_id": "fruit-0"}]),
           InteractionsError, r"events: row 0, field 'user_id' holds 'u\\ud800', which is not valid Unicode"),
    raises("upsert-duplicate-ids", lambda w: w.engine.upsert([{"id": "a", "title": "x"}, {"id": " a", "title": "y"}]),
           CatalogError, r"duplicate ids: 'a'"),
    accepts("filter-empty-categories", lambda w: w.engine.search(text="red apple", filter=ItemFilter(categories=[])),
            lambda r: r == [], "no category allowed: no results"),
    # ---- interaction logs
    raises("timestamp-overflow", log(timestamp=[1, 1e30, 3]), InteractionsError,
           r"timestamp in row 1 is 1e\+30, outside 1970-01-01 \.\. 2100-01-01"),
    raises("timestamp-negative", log(timestamp=[1, -5, 3]), InteractionsError, r"timestamp in row 1 is -5, outside 1970-01-01"),
    raises("timestamp-year-3000", log(timestamp=["2024-05-01", "3000-01-01", "2024-05-02"]), InteractionsError,
           r"timestamp in row 1 is '3000-01-01', outside 1970-01-01 \.\. 2100-01-01"),
    raises("timestamp-milliseconds", log(timestamp=[1714521600000, 1714521600001, 1714521600002]), InteractionsError,
           r"timestamp in row 0 is 1714521600000, outside .*it looks like milliseconds: divide by 1000"),
    raises("timestamp-inf", log(timestamp=[1.0, math.inf, 3.0]), InteractionsError, r"timestamp in row 1 is inf, outside"),
    raises("timestamp-booleans", log(timestamp=[True, False, True]), InteractionsError, r"timestamp column holds booleans"),
    accepts("timestamp-mixed-unix-and-iso", lambda w: log(timestamp=[1714521600, "2024-05-01 00:00:10", "1714521620"])(w)
            .frame["timestamp"].tolist(), lambda t: t == [1714521600, 1714521610, 1714521620], "both read as unix seconds"),
    raises("weights-all-zero", log(weight=[0, 0, 0]), InteractionsError, r"every weight is 0 \(3 rows\)"),
    accepts("weights-some-zero", lambda w: log(weight=[0, 1, 0])(w).frame["weight"].tolist(),
            lambda ws: ws == [0.0, 1.0, 0.0], "kept as given"),
    raises("weight-nan", log(weight=[float("nan"), 1.0, 1.0]), InteractionsError, r"weight in row 0 is nan"),
    raises("weight-text", log(weight=["1", "lots", "1"]), InteractionsError, r"weight in row 1 is 'lots'"),
    raises("log-missing-column", lambda w: Interactions(pd.DataFrame({"user_id": ["u"], "item_id": ["a"]})), InteractionsError,
           r"no 'timestamp' column; it has \['user_id', 'item_id'\]"),
    raises("log-empty-frame", lambda w: Interactions(pd.DataFrame({"user_id": [], "item_id": [], "timestamp": []})),
           InteractionsError, r"the interaction log is empty"),
    raises("log-file-zero-bytes", log_file("log.csv", b""), InteractionsError, r"interaction log file '.*log\.csv' is empty \(0 bytes\)"),
    raises("log-file-header-only", log_file("head.csv", "user_id,item_id,timestamp\n"), InteractionsError,
           r"the interaction log is empty"),
    raises("log-file-latin1", log_file("l1.csv", "user_id,item_id,timestamp\nJosé,a,1\n".encode("latin-1")), InteractionsError,
           r"l1\.csv' is not UTF-8 text"),
    raises("log-file-directory", lambda w: Interactions.from_file(w.dir("events.parquet")), InteractionsError,
           r"events\.parquet' is a directory"),
    raises("log-file-garbage-parquet", log_file("bad.parquet", b"not parquet"), InteractionsError,
           r"cannot read interaction log file '.*bad\.parquet' as \.parquet"),
    raises("log-duplicate-columns", lambda w: Interactions(pd.DataFrame([["u", "a", 1, 2]],
           columns=["user_id", "item_id", "timestamp", "timestamp"])), InteractionsError, r"repeated column names \['timestamp'\]"),
    raises("log-columns-not-a-mapping", lambda w: Interactions(pd.DataFrame({"a": [1]}), columns=["a"]), InvalidArgumentError,
           r"columns must map your column names to ours"),
    raises("log-unknown-items", lambda w: log()(w).validate_items(["a"]), InteractionsError,
           r"1 interactions name 1 item ids that are not in the catalog \(1 items\), e\.g\. 'b'"),
    # ---- configuration
    raises("limits-zero-bytes", lambda w: ImageLimits(max_bytes=0), InvalidArgumentError, r"ImageLimits\.max_bytes must be a positive integer, got 0"),
    raises("limits-timeout-nan", lambda w: ImageLimits(timeout_s=float("nan")), InvalidArgumentError, r"ImageLimits\.timeout_s must be"),
    raises("config-unknown-section", lambda w: EngineConfig.from_dict({"bogus": {}}), InvalidArgumentError,
           r"unknown config sections \['bogus'\]"),
    raises("config-unknown-field", lambda w: EngineConfig.from_dict({"images": {"max_megabytes": 5}}), InvalidArgumentError,
           r"config section 'images' has unknown fields \['max_megabytes'\]"),
    accepts("config-images-round-trip", lambda w: EngineConfig.from_dict(EngineConfig(images=ImageLimits(max_pixels=10)).to_dict()).images,
            lambda limits: limits == ImageLimits(max_pixels=10), "image limits saved with the config"),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case: Case, world: World) -> None:
    """Each input raises its EngineError subclass with a message naming the problem, or is accepted as stated."""
    if case.error is not None:
        with pytest.raises(case.error, match=case.match):
            case.run(world)
    else:
        assert case.check is not None
        result = case.run(world)
        assert case.check(result), f"{case.name}: expected {case.expect}, got {result!r}"


def test_corpus_is_large_and_names_are_unique() -> None:
    names = [p.values[0].name for p in CASES]
    assert len(names) >= 60 and len(set(names)) == len(names)


def test_exif_orientation_is_applied_when_building_and_searching(tmp_path: Path) -> None:
    """An Orientation=6 JPEG (stored on its side) is indexed upright: an upright photo finds it."""
    sideways = Image.new("RGB", (40, 20), BLUE)
    sideways.paste(Image.new("RGB", (20, 20), RED), (0, 0))  # stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: red on top, blue below
    sideways.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    sideways.save(tmp_path / "as-stored.png")
    rows = [{"id": "rotated", "image": "rotated.jpg"}, {"id": "as-stored", "image": "as-stored.png"}]
    engine = Engine.build(Catalog.from_records(rows, base_dir=tmp_path), fake_config(), show_progress=False)
    upright = np.zeros((40, 20, 3), np.uint8)
    upright[:20], upright[20:] = RED, BLUE
    assert engine.search(image=upright, k=1)[0].item_id == "rotated"
    assert load_image(tmp_path / "rotated.jpg").size == (20, 40)


def test_image_workers_skip_bad_files_and_a_stuck_worker_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In DataLoader workers a FIFO is a reason, as inline; a worker stuck past its budget ends the build clearly."""
    import engine.pipeline as pipeline

    os.mkfifo(tmp_path / "pipe.png")
    for name in ("slow.png", "a.png", "b.png"):
        write_image(tmp_path / name, RED)
    rows = [{"id": n, "image": f"{n}.png"} for n in ("pipe", "a", "b", "slow")]
    config = EngineConfig(encoders=fake_config().encoders.__class__(image="fake-image", text=None, num_workers=1, batch_size=1))
    built = Engine.build(Catalog.from_records(rows, base_dir=tmp_path), config, show_progress=False)
    assert [(s.item_id, "is a FIFO" in s.reason) for s in built.skipped] == [("pipe", True)]

    real_load = pipeline.load_image

    def stuck(path: Any, *args: Any, **kwargs: Any) -> Image.Image:
        if Path(path).name == "slow.png":
            time.sleep(3)  # as a read blocked in the kernel: no deadline check can interrupt it
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "load_image", stuck)
    monkeypatch.setattr(pipeline, "WORKER_START_S", 1.0)
    limits = ImageLimits(timeout_s=0.1)
    catalog = Catalog.from_records([rows[3], *rows[1:3]], base_dir=tmp_path)
    with pytest.raises(ImageError, match=r"image decoding stopped in the batch of .*slow\.png: DataLoader timed out"):
        encode_items(catalog, built.encoders, batch_size=1, num_workers=1, show_progress=False, limits=limits)
