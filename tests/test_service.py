"""The HTTP service: every route, its JSON, its errors, writes then reads, saving, threads, a kill -9.

Everything runs on the toy catalog with the fake encoders (tests/conftest.py), in
process through `fastapi.testclient`, except the crash tests, which start the real
server (`service.server.serve`, uvicorn) in a subprocess through tests/service_fake.py.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import fake_config, make_toy_catalog
from fastapi.testclient import TestClient
from PIL import Image
from test_personalise import toy_log

from engine import Catalog, Engine
from engine.filters import ItemFilter
from service.app import create_app, load_app
from service.config import ServiceConfig

REPO = Path(__file__).resolve().parents[1]
KEY = "s3cret-key"
JSON = {"content-type": "application/json"}


class Shop:
    """A toy catalog folder, an engine trained on it, and its saved model folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        make_toy_catalog(root)
        self.engine = Engine.build(Catalog.from_file(root / "items.csv"), fake_config(), show_progress=False)
        self.engine.fit(toy_log(), model="itemknn", show_progress=False)
        self.folder = root / "model"
        self.engine.save(self.folder)

    def client(self, **config: object) -> TestClient:
        return TestClient(create_app(self.engine, self.folder, ServiceConfig(save_every_s=0, **config)))


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


@pytest.fixture
def client(shop: Shop) -> Iterator[TestClient]:
    with shop.client() as client:
        yield client


def png(colour: tuple[int, int, int], size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "PNG")
    return buffer.getvalue()


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [m["item_id"] for m in response.json()["items"]]


def same_as_python(response: httpx.Response, matches: list) -> None:
    """The HTTP list holds the Python call's items in its order, with its scores, sources and reasons."""
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    got = [(m["item_id"], m["score"], m["source"], m["because"], m["fields"]["title"]) for m in items]
    assert got == [(m.item_id, m.score, m.source, m.because, m.fields["title"]) for m in matches]
    assert matches, "an empty list proves nothing"


# ----- reads ----------------------------------------------------------------------
def test_health(client: TestClient, shop: Shop) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["items"] == 10 and body["model"] == "itemknn" and body["events"] == 0
    assert body["version"]


def test_api_docs_work_offline(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "/openapi.json" in page and "cdn" not in page.lower()
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert f'"{asset}"' in page or f"'{asset}'" in page
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 10_000, asset
    assert "/users/{user_id}/recommendations" in client.get("/openapi.json").json()["paths"]


def test_browse_the_catalog(client: TestClient) -> None:
    page = client.get("/items", params={"limit": 4, "offset": 2}).json()
    assert page["total"] == 10 and page["categories"] == ["food", "tools"]
    assert [m["item_id"] for m in page["items"]] == ["fruit-2", "fruit-3", "fruit-4", "tool-0"]
    assert all(m["score"] is None and m["source"] == "catalog" and m["because"] is None for m in page["items"])
    tools = client.get("/items", params={"category": "tools"}).json()
    assert tools["total"] == 5 and {m["fields"]["category"] for m in tools["items"]} == {"tools"}
    assert client.get("/items", params={"q": "HAMMER 3"}).json()["total"] == 1
    bad = client.get("/items", params={"category": "toys"})
    assert bad.status_code == 422 and "unknown categories ['toys']; the catalog has: food, tools" in bad.json()["error"]


def test_one_item_and_its_image(client: TestClient, shop: Shop) -> None:
    body = client.get("/items/fruit-1").json()
    assert body["item_id"] == "fruit-1" and body["has_image"] is True
    fields = body["fields"]
    assert fields["title"] == "Red apple 1" and fields["price"] == 2.0 and isinstance(fields["price"], float)
    assert fields["image"] == "f1.png"  # relative to the catalog folder, never the server's absolute path
    image = client.get("/items/fruit-1/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == (shop.root / "f1.png").read_bytes()
    again = client.get("/items/fruit-1/image", headers={"If-None-Match": image.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    missing = client.get("/items/sku-404")
    assert missing.status_code == 404 and missing.json() == {"error": "item 'sku-404' is not in the catalog (10 items)"}
    assert client.get("/items/sku-404/image").status_code == 404


def test_an_item_without_image_has_none_to_serve(client: TestClient) -> None:
    client.put("/items", json=[{"id": "plain", "title": "Plain text item", "category": "food"}])
    assert client.get("/items/plain").json()["has_image"] is False
    answer = client.get("/items/plain/image")
    assert answer.status_code == 404 and answer.json()["error"] == "item 'plain' has no image"


def test_lists_are_the_python_api_answers(client: TestClient, shop: Shop) -> None:
    engine = shop.engine
    same_as_python(client.get("/items/fruit-1/similar", params={"k": 4}), engine.similar("fruit-1", 4))
    same_as_python(
        client.get("/items/fruit-1/similar", params=[("k", 6), ("category", "food"), ("exclude", "fruit-0")]),
        engine.similar("fruit-1", 6, filter=ItemFilter(categories=["food"], exclude=["fruit-0"])),
    )
    same_as_python(client.get("/search", params={"text": "blue hammer", "k": 3}),
                   engine.search(text="blue hammer", k=3))
    same_as_python(
        client.get("/search", params={"text": "red", "k": 3, "category": "tools"}),
        engine.search(text="red", k=3, filter=ItemFilter(categories=["tools"])),
    )
    photo = (shop.root / "t2.png").read_bytes()
    by_photo = client.post("/search", files={"image": ("t2.png", photo, "image/png")}, data={"k": "3"})
    same_as_python(by_photo, engine.search(image=photo, k=3))
    assert ids(by_photo)[0] == "tool-2" and by_photo.json()["items"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    both = client.post("/search", files={"image": ("t2.png", photo, "image/png")}, data={"text": "hammer", "k": "2"})
    same_as_python(both, engine.search(text="hammer", image=photo, k=2))
    same_as_python(client.get("/users/u1/recommendations", params={"k": 3}), engine.recommend("u1", 3))
    same_as_python(client.post("/recommendations", json={"history": ["tool-1", "tool-3"], "k": 4}),
                   engine.recommend(history=["tool-1", "tool-3"], k=4))
    same_as_python(client.post("/recommendations", json={"history": [], "k": 3, "category": ["tools"]}),
                   engine.recommend(history=[], k=3, filter=ItemFilter(categories=["tools"])))


def test_users(client: TestClient) -> None:
    everyone = client.get("/users", params={"limit": 100}).json()
    assert everyone["total"] == 60 and sorted(everyone["users"]) == sorted(f"u{u}" for u in range(60))
    page = client.get("/users", params={"limit": 5, "offset": 10}).json()
    assert page == {"users": everyone["users"][10:15], "total": 60}


def test_bad_requests_answer_422_or_404_naming_the_problem(client: TestClient) -> None:
    cases = [
        (client.get("/items/fruit-1/similar", params={"k": 0}), 422, "k (query): Input should be greater than"),
        (client.get("/items/fruit-1/similar", params={"k": 101}), 422, "less than or equal to 100"),
        (client.get("/items/fruit-1/similar", params={"k": "ten"}), 422, "k (query): Input should be a valid integer"),
        (client.get("/items/fruit-1/similar", params={"category": "toys"}), 422, "unknown categories ['toys']"),
        (client.get("/items/nope/similar"), 404, "item 'nope' is not in the catalog"),
        (client.get("/search", params={"text": "x" * 1001}), 422, "at most 1000 characters"),
        (client.get("/search"), 422, "text (query): Field required"),
        (client.get("/search", params={"text": "   "}), 422, "text query must be a non-empty string"),
        (client.post("/search", data={"k": "3"}), 422, "search needs text=..., image=... or both"),
        (client.post("/search", files={"image": ("a.png", b"not an image", "image/png")}), 422, "cannot decode"),
        (client.get("/users/nobody/recommendations"), 404, "user 'nobody' is not in the training log"),
        (client.post("/recommendations", json={"history": ["nope"]}), 404, "history item 'nope' is not in the catalog"),
        (client.post("/recommendations", json={"history": "fruit-1"}), 422, "history (body): Input should be a valid"),
        (client.post("/recommendations", json={"k": 0}), 422, "k (body): Input should be greater than or equal to 1"),
        (client.post("/recommendations", content=b"{not json", headers=JSON), 422, "JSON decode error"),
        (client.post("/events", json={"events": [{"user_id": "u1", "item_id": "nope"}]}), 404, "nope"),
        (client.post("/events", json={"events": [{"user_id": "u1", "item_id": "fruit-1", "weight": "heavy"}]}), 422,
         "weight"),
        (client.put("/items", json={"id": "x"}), 422, "takes a JSON list of item objects, got dict"),
        (client.put("/items", json=[{"id": "a"}, 7]), 422, "item 1 is a int"),
        (client.put("/items", content=b"id,title", headers={"content-type": "text/csv"}), 415, "got 'text/csv'"),
        (client.put("/items", content=b'[{"id": "s", "title": "\\ud800"}]', headers=JSON), 422, "UTF-16 surrogate"),
        (client.post("/events", content=b'{"events": [{"user_id": "\\ud800", "item_id": "fruit-1"}]}', headers=JSON),
         422, "lone UTF-16 surrogate"),
        (client.delete("/items/nope"), 404, "nope"),
        (client.get("/no/such/route"), 404, "no route GET /no/such/route"),
        (client.delete("/health"), 405, "DELETE is not allowed on /health; allowed: GET"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["content-type"] == "application/json"
        assert list(response.json()) == ["error"] and words in response.json()["error"], response.json()


def test_the_gallery_is_served_at_the_root(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/gallery.js").status_code == 200
    missing = client.get("/static/nothing.js")
    assert missing.json() == {"error": "no file /static/nothing.js among the gallery's static files"}
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_cors_is_off_unless_configured(shop: Shop) -> None:
    preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"}
    with shop.client() as client:
        assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "https://shop.example"}).headers
        assert client.options("/health", headers=preflight).status_code == 405
    with shop.client(cors_origins=("https://shop.example",)) as client:
        answer = client.options("/health", headers=preflight)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://shop.example"


# ----- auth and limits ------------------------------------------------------------
def test_writes_need_the_key_reads_do_not(shop: Shop) -> None:
    item = [{"id": "k-1", "title": "Keyed item", "category": "food"}]
    with shop.client(api_key=KEY) as client:
        writes = [
            lambda h: client.put("/items", json=item, headers=h),
            lambda h: client.post("/events", json={"events": [{"user_id": "u1", "item_id": "fruit-1"}]}, headers=h),
            lambda h: client.post("/save", headers=h),
            lambda h: client.delete("/items/tool-4", headers=h),
        ]
        for write in writes:
            missing, wrong = write({}), write({"X-API-Key": "guess"})
            assert missing.status_code == wrong.status_code == 401
            assert "needs the API key" in missing.json()["error"] and wrong.json() == {"error": "wrong API key"}
            assert missing.headers["www-authenticate"] == "Bearer"
        assert "k-1" not in shop.engine.catalog and "tool-4" in shop.engine.catalog and len(shop.engine.events) == 0
        assert client.put("/items", json=item, headers={"X-API-Key": KEY}).status_code == 200
        assert client.delete("/items/k-1", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert client.post("/save", headers={"Authorization": f"Basic {KEY}"}).status_code == 401
        for read in (client.get("/items/fruit-1/similar"), client.get("/search", params={"text": "apple"}),
                     client.post("/recommendations", json={"history": ["fruit-1"]}), client.get("/health")):
            assert read.status_code == 200
        security = client.get("/openapi.json").json()["paths"]["/items"]["put"]["security"]
        assert {"APIKeyHeader": []} in security and {"HTTPBearer": []} in security


def test_size_limits_answer_413_and_422(shop: Shop) -> None:
    big = png((10, 20, 30), size=300)  # ~1 kB compressed? make sure it is over the limit below
    limit = len(big) - 1
    with shop.client(max_upload_bytes=limit, max_put_items=2, max_request_bytes=200_000) as client:
        search = client.post("/search", files={"image": ("big.png", big, "image/png")})
        assert search.status_code == 413 and f"over the limit of {limit:,} bytes" in search.json()["error"]
        put = client.put("/items", data={"items": '[{"id": "b-1", "title": "Big"}]'},
                         files={"image:b-1": ("big.png", big, "image/png")})
        assert put.status_code == 413 and "image for item 'b-1'" in put.json()["error"]
        many = client.put("/items", json=[{"id": f"m-{i}", "title": "Many"} for i in range(3)])
        assert many.status_code == 422 and "at most 2 (ServiceConfig.max_put_items)" in many.json()["error"]
        history = client.post("/recommendations", json={"history": ["fruit-1"] * 3})
        assert history.status_code == 422 and "history (body)" in history.json()["error"]
        huge = b'[{"id": "h", "title": "' + b"x" * 300_000 + b'"}]'
        declared = client.put("/items", content=huge, headers={"content-type": "application/json"})
        assert declared.status_code == 413 and "ServiceConfig.max_request_bytes" in declared.json()["error"]
        streamed = client.put("/items", content=iter([huge[:150_000], huge[150_000:]]),
                              headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and "ServiceConfig.max_request_bytes" in streamed.json()["error"]
        assert "b-1" not in shop.engine.catalog and "h" not in shop.engine.catalog
        assert not (shop.root / "uploads").exists()


# ----- writes, then reads ---------------------------------------------------------
def test_put_then_similar_finds_it_and_an_update_keeps_the_vector(client: TestClient, shop: Shop) -> None:
    new = {"id": "apple-new", "title": "Red apple new", "description": "fresh red fruit", "category": "food",
           "price": 3.5, "image": "f0.png"}
    answer = client.put("/items", json=[new])
    assert answer.json() == {"added": ["apple-new"], "updated": [], "reencoded": [], "skipped": []}
    assert "apple-new" in ids(client.get("/items/fruit-0/similar", params={"k": 3}))
    assert client.get("/items/apple-new").json()["fields"]["price"] == 3.5
    answer = client.put("/items", json=[{**new, "price": 4.0}, {**new, "id": "fruit-1", "title": "Green apple"}])
    assert answer.json() == {"added": [], "updated": ["apple-new", "fruit-1"], "reencoded": ["fruit-1"], "skipped": []}
    assert client.get("/items/apple-new").json()["fields"]["price"] == 4.0
    assert client.get("/health").json()["items"] == 11


def test_put_with_uploaded_images(client: TestClient, shop: Shop) -> None:
    photo = png((30, 200, 40))
    name = hashlib.sha256(photo).hexdigest() + ".png"
    answer = client.put(
        "/items",
        data={"items": '[{"id": "lime", "title": "Green lime", "category": "food"}, {"id": 7, "title": "Green pear"}]'},
        files=[("image:lime", ("lime.png", photo, "image/png")), ("image:7", ("pear.png", photo, "image/png"))],
    )
    assert answer.status_code == 200 and answer.json()["added"] == ["lime", "7"], answer.text
    stored = shop.root / "uploads" / name
    assert stored.read_bytes() == photo and oct(stored.stat().st_mode & 0o777) == "0o644"
    assert list((shop.root / "uploads").iterdir()) == [stored]  # one file for the same bytes, no temporary left
    assert client.get("/items/lime").json()["fields"]["image"] == f"uploads/{name}"
    assert client.get("/items/7/image").content == photo
    found = client.post("/search", files={"image": ("q.png", photo, "image/png")}, data={"k": "2"})
    assert set(ids(found)) == {"lime", "7"}
    before = stored.stat().st_mtime_ns
    again = client.put("/items", data={"items": '[{"id": "lime2", "title": "Lime"}]'},
                       files={"image:lime2": ("l.png", photo, "image/png")})
    assert again.status_code == 200 and stored.stat().st_mtime_ns == before  # never rewritten
    for files, words in [
        ({"image:bad": ("x.png", b"GIF89a but not really", "image/png")}, "the image for item 'bad'"),
        ({"image:other": ("x.png", photo, "image/png")}, "'image:other' names no item of the list"),
    ]:
        refused = client.put("/items", data={"items": '[{"id": "bad", "title": "Bad"}]'}, files=files)
        assert refused.status_code == 422 and words in refused.json()["error"], refused.text
    assert "bad" not in shop.engine.catalog and len(list((shop.root / "uploads").iterdir())) == 1
    no_items = client.put("/items", files={"image:x": ("x.png", photo, "image/png")})
    assert no_items.status_code == 422 and "needs a text field 'items'" in no_items.json()["error"]


def test_delete_then_it_never_comes_back(client: TestClient, shop: Shop) -> None:
    assert "fruit-2" in ids(client.get("/items/fruit-1/similar", params={"k": 9}))
    assert client.delete("/items/fruit-2").json() == {"removed": "fruit-2"}
    assert client.get("/items/fruit-2").status_code == 404
    assert client.delete("/items/fruit-2").status_code == 404
    answers = [
        client.get("/items/fruit-1/similar", params={"k": 9}),
        client.get("/search", params={"text": "red apple 2", "k": 9}),
        client.get("/users/u2/recommendations", params={"k": 9}),  # u2 never saw fruit-2
        client.post("/recommendations", json={"history": ["fruit-1"], "k": 9}),
        client.get("/items", params={"limit": 100}),
    ]
    for answer in answers:
        assert "fruit-2" not in ids(answer)
    assert client.get("/items").json()["total"] == 9


def test_events_change_the_users_recommendations(client: TestClient, shop: Shop) -> None:
    assert client.get("/users/visitor/recommendations").status_code == 404
    before = ids(client.get("/users/u1/recommendations", params={"k": 3}))
    assert before[0] == "fruit-1" and {"tool-0", "tool-1", "tool-2", "tool-3"} & set(before)
    events = [{"user_id": "u1", "item_id": f"tool-{i}", "timestamp": 1_800_000_000 + i} for i in range(4)]
    events.append({"user_id": "visitor", "item_id": "tool-2", "weight": 2.0})
    assert client.post("/events", json={"events": events}).json() == {"recorded": 5}
    after = client.get("/users/u1/recommendations", params={"k": 3})
    assert ids(after) != before and not {f"tool-{i}" for i in range(4)} & set(ids(after))
    same_as_python(after, shop.engine.recommend("u1", 3))
    visitor = client.get("/users/visitor/recommendations", params={"k": 3})
    assert all(m["because"] == "tool-2" for m in visitor.json()["items"]) and "tool-2" not in ids(visitor)
    assert client.get("/health").json()["events"] == 5
    assert client.get("/users", params={"limit": 1000}).json()["users"][-1] == "visitor"


def test_the_model_is_warmed_up_before_the_first_request(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    from recommenders import Recommender

    monkeypatch.setattr(Recommender, "ann_shortlist_items", 1)  # the inverted file, as from 200k items
    shop.engine.fit(toy_log(), model="als", show_progress=False)
    model = shop.engine.trained.model
    assert model.inverted_file is None  # built lazily, by the first top_items call or by warm_up
    with shop.client():
        assert model.inverted_file is not None


# ----- saving --------------------------------------------------------------------
def test_save_then_load_and_restart_keep_the_writes(shop: Shop) -> None:
    with shop.client() as client:
        client.put("/items", json=[{"id": "kept", "title": "Red apple kept", "description": "fresh red fruit"}])
        client.delete("/items/tool-4")
        client.post("/events", json={"events": [{"user_id": "visitor", "item_id": "tool-1"}]})
        assert client.post("/save").json() == {"saved": str(shop.folder)}
    loaded = Engine.load(shop.folder)
    assert "kept" in loaded.catalog and "tool-4" not in loaded.catalog and len(loaded.events) == 1
    with TestClient(load_app(shop.folder, ServiceConfig(save_every_s=0))) as restarted:
        assert restarted.get("/items/kept").status_code == 200 and restarted.get("/items/tool-4").status_code == 404
        assert restarted.get("/users/visitor/recommendations").status_code == 200
        same_as_python(restarted.get("/items/kept/similar", params={"k": 3}), loaded.similar("kept", 3))


def test_shutdown_saves_unsaved_writes_and_a_clean_service_does_not_save(shop: Shop) -> None:
    current = (shop.folder / "CURRENT").read_text()
    with shop.client() as client:
        client.get("/health")
        assert client.post("/save").status_code == 200
    assert (shop.folder / "CURRENT").read_text() == current  # nothing written: nothing to save
    with shop.client() as client:
        client.put("/items", json=[{"id": "late", "title": "Late item"}])
    assert "late" in Engine.load(shop.folder).catalog  # saved by the lifespan's shutdown


def test_background_save(shop: Shop) -> None:
    app = create_app(shop.engine, shop.folder, ServiceConfig(save_every_s=0.2))
    with TestClient(app) as client:
        client.put("/items", json=[{"id": "auto", "title": "Autosaved item"}])
        deadline = time.monotonic() + 20
        while "auto" not in Engine.load(shop.folder).catalog:
            assert time.monotonic() < deadline, "the background save never wrote the item"
            time.sleep(0.2)
        assert app.state.persister.unsaved == 0


def test_a_service_without_folder_cannot_save(shop: Shop) -> None:
    with TestClient(create_app(shop.engine, None)) as client:
        answer = client.post("/save")
        assert answer.status_code == 422 and "without a model folder" in answer.json()["error"]


# ----- threads --------------------------------------------------------------------
def test_queries_stay_right_while_items_are_added_and_removed(client: TestClient) -> None:
    removed_at: dict[str, float] = {}
    problems: list[str] = []
    stop = threading.Event()
    reads = [
        lambda: client.get("/items/fruit-0/similar", params={"k": 10}),
        lambda: client.get("/search", params={"text": "red apple fruit", "k": 10}),
        lambda: client.post("/recommendations", json={"history": ["fruit-0"], "k": 10}),
        lambda: client.get("/users/u1/recommendations", params={"k": 10}),
    ]

    def reader(read) -> None:
        while not stop.is_set():
            started = time.monotonic()
            answer = read()
            if answer.status_code != 200:
                problems.append(f"{answer.request.url}: {answer.status_code} {answer.text}")
                continue
            for match in answer.json()["items"]:
                gone = removed_at.get(match["item_id"])
                if gone is not None and gone < started:
                    problems.append(f"{match['item_id']} came back after its removal")
                if match["item_id"].startswith("w-") and match["fields"]["title"] != f"Red apple {match['item_id']}":
                    problems.append(f"{match['item_id']} has another item's fields")

    def writer() -> None:
        n = 0
        while not stop.is_set():
            item = {"id": f"w-{n}", "title": f"Red apple w-{n}", "description": "fresh red fruit", "category": "food"}
            answer = client.put("/items", json=[item])
            if answer.status_code != 200:
                problems.append(f"PUT: {answer.text}")
            if n >= 2:
                victim = f"w-{n - 2}"
                if client.delete(f"/items/{victim}").status_code != 200:
                    problems.append(f"DELETE {victim} failed")
                removed_at[victim] = time.monotonic()
            n += 1

    threads = [threading.Thread(target=reader, args=(r,)) for r in reads] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not problems, problems[:5]
    assert len(removed_at) >= 3, "the writer barely ran"


# ----- the real server, killed ----------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, save_every_s: float, log: Path) -> tuple[subprocess.Popen, str]:
    """Start tests/service_fake.py on a free loopback port; returns once /health answers."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, str(REPO / "tests" / "service_fake.py"), str(folder), str(port),
                                    str(save_every_s)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, f"the server exited: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"the server did not start: {log.read_text()[-2000:]}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)


def test_kill_9_loses_only_the_writes_after_the_last_save(shop: Shop, tmp_path: Path) -> None:
    process, url = start_server(shop.folder, 0, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            assert client.put("/items", json=[{"id": "saved-1", "title": "Red apple saved"}]).status_code == 200
            assert client.delete("/items/tool-4").status_code == 200
            assert client.post("/events", json={"events": [{"user_id": "u1", "item_id": "tool-1"}]}).status_code == 200
            assert client.post("/save").json() == {"saved": str(shop.folder)}
            assert client.put("/items", json=[{"id": "lost-1", "title": "Red apple lost"}]).status_code == 200
            assert client.delete("/items/fruit-4").status_code == 200
            assert "lost-1" in [m["item_id"] for m in client.get("/items", params={"limit": 100}).json()["items"]]
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    loaded = Engine.load(shop.folder)
    catalog = loaded.catalog
    assert "saved-1" in catalog and "tool-4" not in catalog and len(loaded.events) == 1  # saved
    assert "lost-1" not in catalog and "fruit-4" in catalog  # after the last save: lost, as documented
    assert loaded.similar("saved-1", 3)


def test_sigterm_saves_and_the_background_save_runs(shop: Shop, tmp_path: Path) -> None:
    process, url = start_server(shop.folder, 0.3, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            assert client.put("/items", json=[{"id": "auto-1", "title": "Autosaved"}]).status_code == 200
            deadline = time.monotonic() + 30
            while "auto-1" not in Engine.load(shop.folder).catalog:
                assert time.monotonic() < deadline, "the background save never wrote the item"
                time.sleep(0.2)
            assert client.put("/items", json=[{"id": "term-1", "title": "Saved on SIGTERM"}]).status_code == 200
        process.send_signal(signal.SIGTERM)
        # uvicorn finishes the requests, runs the lifespan's shutdown, then re-raises the signal (newer versions).
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    catalog = Engine.load(shop.folder).catalog
    assert "auto-1" in catalog and "term-1" in catalog
    assert os.stat(shop.folder).st_mode & 0o755 == 0o755
