"""The web gallery end to end: the real service on loopback, driven in headless Chromium.

The test starts the app itself (uvicorn in a thread on a free 127.0.0.1 port, over an engine
built with the fake encoders and fitted with item-kNN so that users exist) and Debian's
`/usr/bin/chromium` through Playwright. Every row the page shows is checked against the
API's own answer for the same request. Without Chromium the tests skip, unless `CI` is set.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import fake_config, write_image
from PIL import Image

from engine import Catalog, Engine, Interactions

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT_MS = 10_000  # the longest any single wait may take
K = 8  # what the page asks for in every row
TRICKY = "Mug <b>bold</b> & \"quoted\" <script>x</script>"  # must show verbatim, never as markup
TRICKY_ID = "home/mug #1"  # must survive URLs and the page's #item= links
KINDS = {  # category -> (title word, colour)
    "food": ("Red apple", (220, 30, 30)),
    "tools": ("Blue hammer", (30, 40, 220)),
    "garden": ("Green fern", (30, 200, 60)),
}


# ----- the service under test -----------------------------------------------------
def _catalog(folder: Path) -> Path:
    rows = []
    for category, (word, (r, g, b)) in KINDS.items():
        for i in range(8):
            rows.append({
                "id": f"{category}-{i}", "title": f"{word} {i}", "description": f"{word.lower()} number {i}",
                "category": category, "price": round(2.5 + 3 * i + len(category) * 0.25, 2),
                "image": write_image(folder / f"{category}-{i}.png", (r, min(255, g + 4 * i), b)),
            })
    rows.append({"id": TRICKY_ID, "title": TRICKY, "description": "a mug", "category": "home", "price": 7.0,
                 "image": write_image(folder / "home-0.png", (120, 120, 120))})
    path = folder / "items.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _log() -> Interactions:
    """Food lovers (u0-u19) and tool lovers (u20-u39), five views each."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        kind = "food" if u < 20 else "tools"
        for t, i in enumerate(rng.choice(8, size=5, replace=False)):
            rows.append({"user_id": f"u{u}", "item_id": f"{kind}-{i}", "timestamp": 1_700_000_000 + 60 * (10 * u + t)})
    return Interactions(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    from service.app import create_app
    from service.config import ServiceConfig

    root = tmp_path_factory.mktemp("gallery")
    (root / "catalog").mkdir()
    engine = Engine.build(Catalog.from_file(_catalog(root / "catalog")), fake_config(), show_progress=False)
    engine.fit(_log(), model="itemknn", show_progress=False)
    folder = root / "model"
    engine.save(folder)
    app = create_app(engine, folder, ServiceConfig())

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # a free port, held open so nobody else takes it
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


# ----- the browser ----------------------------------------------------------------
def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; in CI (env CI set) a missing browser is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        _unavailable(f"Debian's chromium is not installed ({CHROMIUM} is missing): apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is not installed: pip install playwright")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            headless=True, args=CHROMIUM_ARGS, timeout=30_000,
        )
        try:
            yield browser
        finally:
            browser.close()


class Console:
    """Console errors and uncaught exceptions of one page; `allow` names expected ones."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allow: list[str] = []

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allow)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser, base_url: str, console: Console) -> Iterator[object]:
    """A fresh 1280 px page; the test fails if it logs an error `console.allow` does not name."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("console", lambda m: m.type == "error" and console.errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: console.errors.append(f"pageerror: {e}"))
    try:
        yield page
        assert console.unexpected() == [], "the page logged errors"
    finally:
        context.close()


def _open(page, path: str = "/") -> None:
    page.goto(path, wait_until="domcontentloaded")
    _wait_ready(page, "catalog-grid")
    page.wait_for_function("document.querySelector('[data-testid=user-select]').options.length > 1",
                           timeout=WAIT_MS)


def _wait_ready(page, testid: str, key: str | None = None) -> None:
    """Wait until a list has finished loading (and, with `key`, loading what the key names)."""
    page.wait_for_function(
        """([testid, key]) => {
            const el = document.querySelector(`[data-testid="${testid}"]`);
            return el && el.dataset.state === "ready" && (key === null || el.dataset.for === key);
        }""",
        arg=[testid, key],
        timeout=WAIT_MS,
    )


def _ids(page, testid: str) -> list[str]:
    return page.locator(f'[data-testid="{testid}"] [data-testid="card"]').evaluate_all(
        "cards => cards.map(c => c.dataset.itemId)")


def _card(page, testid: str, item_id: str):
    card = f'[data-testid="card"][data-item-id="{item_id}"]'
    return page.locator(f'[data-testid="{testid}"] {card} [data-testid="card-button"]')


def _answer_ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    ids = [item["item_id"] for item in answer.json()["items"]]
    assert ids, f"the API answered no items to {answer.request.url}: the check would be empty"
    return ids


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(out, format="PNG")
    return out.getvalue()


# ----- the tests --------------------------------------------------------------------
def test_grid_shows_titles_prices_and_pages(page, api: httpx.Client) -> None:
    _open(page, "/?limit=10")
    first = api.get("/items", params={"offset": 0, "limit": 10}).json()
    assert _ids(page, "catalog-grid") == [i["item_id"] for i in first["items"]]
    titles = page.locator('[data-testid="catalog-grid"] [data-testid="card-title"]').all_inner_texts()
    assert titles == [i["fields"]["title"] for i in first["items"]]
    prices = page.locator('[data-testid="catalog-grid"] [data-testid="card-price"]').all_inner_texts()
    assert prices == [f"{i['fields']['price']:.2f}" for i in first["items"]]
    alts = page.locator('[data-testid="catalog-grid"] img').evaluate_all("imgs => imgs.map(i => i.alt)")
    assert alts == titles
    assert page.get_by_test_id("catalog-count").inner_text() == f"10 of {first['total']} items"

    # "Show more" appends the next pages until the catalog is exhausted.
    more = page.get_by_test_id("more-button")
    while more.is_visible():
        before = len(_ids(page, "catalog-grid"))
        more.click()
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=catalog-grid] [data-testid=card]').length > {before}",
            timeout=WAIT_MS)
        _wait_ready(page, "catalog-grid")
    everything = api.get("/items", params={"offset": 0, "limit": 100}).json()
    assert _ids(page, "catalog-grid") == [i["item_id"] for i in everything["items"]]

    # Catalog text is shown verbatim, never parsed as markup.
    tricky = page.locator(f'[data-testid="card"][data-item-id="{TRICKY_ID}"] [data-testid="card-title"]')
    assert tricky.inner_text() == TRICKY
    assert page.locator('[data-testid="catalog-grid"] b, [data-testid="catalog-grid"] script').count() == 0

    # The category dropdown lists the API's categories and filters the grid.
    options = page.get_by_test_id("category-select").locator("option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["", *everything["categories"]]
    page.get_by_test_id("category-select").select_option("tools")
    page.wait_for_function("[...document.querySelectorAll('[data-testid=catalog-grid] [data-testid=card]')]"
                           ".every(c => c.dataset.itemId.startsWith('tools-'))", timeout=WAIT_MS)
    _wait_ready(page, "catalog-grid")
    tools = api.get("/items", params={"offset": 0, "limit": 10, "category": "tools"}).json()
    assert _ids(page, "catalog-grid") == [i["item_id"] for i in tools["items"]]


def test_click_item_shows_similar_and_navigates(page, api: httpx.Client) -> None:
    _open(page)
    _card(page, "catalog-grid", "food-2").click()
    _wait_ready(page, "similar-row", "food-2")
    assert _ids(page, "similar-row") == _answer_ids(api.get("/items/food-2/similar", params={"k": K}))
    assert page.get_by_test_id("similar-title").inner_text() == "Similar to Red apple 2"
    meta = page.locator('[data-testid="similar-row"] [data-testid="card-meta"]').all_inner_texts()
    answer = api.get("/items/food-2/similar", params={"k": K}).json()["items"]
    assert meta == [f"{i['source']} · {i['score']:.2f}" for i in answer]

    # Clicking a similar item walks on; the browser's back button walks back.
    nxt = _ids(page, "similar-row")[0]
    _card(page, "similar-row", nxt).click()
    _wait_ready(page, "similar-row", nxt)
    assert _ids(page, "similar-row") == _answer_ids(api.get(f"/items/{nxt}/similar", params={"k": K}))
    page.go_back()
    _wait_ready(page, "similar-row", "food-2")

    # An id with a slash, a space and a hash travels through the link and the URL intact.
    _card(page, "catalog-grid", TRICKY_ID).click()
    _wait_ready(page, "similar-row", TRICKY_ID)
    assert page.get_by_test_id("similar-title").inner_text() == f"Similar to {TRICKY}"
    assert _ids(page, "similar-row") == _answer_ids(api.get(f"/items/{quote(TRICKY_ID, safe='')}/similar",
                                                            params={"k": K}))

    # Keyboard: a card is a button, Enter opens its similar items.
    _card(page, "catalog-grid", "tools-1").focus()
    page.keyboard.press("Enter")
    _wait_ready(page, "similar-row", "tools-1")
    assert _ids(page, "similar-row") == _answer_ids(api.get("/items/tools-1/similar", params={"k": K}))


def test_text_search_and_image_upload(page, api: httpx.Client, console: Console) -> None:
    _open(page)
    page.get_by_test_id("search-input").fill("green fern")
    page.get_by_test_id("search-input").press("Enter")
    _wait_ready(page, "results-row", "text:green fern")
    assert _ids(page, "results-row") == _answer_ids(api.get("/search", params={"text": "green fern", "k": K}))

    photo = _png((225, 35, 30))
    page.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "photo.png", "mimeType": "image/png", "buffer": photo}])
    _wait_ready(page, "results-row", "image:photo.png")
    shown = _ids(page, "results-row")
    assert shown and shown == _answer_ids(
        api.post("/search", files={"image": ("photo.png", photo, "image/png")}, data={"k": str(K)}))
    assert shown[0].startswith("food-")  # a red photo finds the red apples

    # A file that is no image: the service's own error message, readable on the page.
    console.allow.append("Failed to load resource")  # Chromium logs every 4xx answer
    page.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    error = page.get_by_test_id("error")
    error.wait_for(state="visible", timeout=WAIT_MS)
    expected = api.post("/search", files={"image": ("notes.txt", b"not an image", "text/plain")}, data={"k": str(K)})
    assert 400 <= expected.status_code < 500, expected.text
    assert page.get_by_test_id("error-text").inner_text() == expected.json()["error"]
    page.get_by_test_id("error-close").click()
    assert not error.is_visible()


def test_user_picker_shows_personal_row_with_because(page, api: httpx.Client) -> None:
    _open(page)
    users = api.get("/users", params={"limit": 100}).json()["users"]
    options = page.get_by_test_id("user-select").locator("option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["", *users]
    user = "u3"
    assert user in users
    page.get_by_test_id("user-select").select_option(user)
    _wait_ready(page, "user-row", user)
    answer = api.get(f"/users/{user}/recommendations", params={"k": K})
    assert _ids(page, "user-row") == _answer_ids(answer)
    expected = []
    for item in answer.json()["items"]:
        if item["because"] is not None:
            title = api.get(f"/items/{item['because']}").json()["fields"]["title"]
            expected.append(f"because you viewed {title}")
    assert expected, "the model explains nothing: the test catalog no longer exercises 'because'"
    assert page.locator('[data-testid="user-row"] [data-testid="card-because"]').all_inner_texts() == expected


def test_session_mode_builds_a_history(page, api: httpx.Client) -> None:
    _open(page)
    page.get_by_test_id("session-toggle").check()
    assert page.get_by_test_id("session-panel").is_visible()
    history = ["garden-1", "tools-4"]
    for item_id in history:
        _card(page, "catalog-grid", item_id).click()
    chips = page.locator('[data-testid="session-chip"]')
    assert chips.evaluate_all("cs => cs.map(c => c.dataset.itemId)") == history
    _wait_ready(page, "session-row", "\n".join(history))
    answer = api.post("/recommendations", json={"history": history, "k": K})
    assert _ids(page, "session-row") == _answer_ids(answer)
    assert page.locator('[data-testid="session-row"] [data-testid="card-meta"]').first.inner_text().startswith(
        answer.json()["items"][0]["source"])

    # Removing one chip re-asks for the shorter history; "Clear history" empties the row.
    page.get_by_role("button", name="Remove Green fern 1 from the history").click()
    _wait_ready(page, "session-row", "tools-4")
    assert _ids(page, "session-row") == _answer_ids(api.post("/recommendations", json={"history": ["tools-4"], "k": K}))
    page.get_by_test_id("session-clear").click()
    assert chips.count() == 0 and _ids(page, "session-row") == []


def test_phone_width_has_no_horizontal_scroll(page) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    _open(page)
    _card(page, "catalog-grid", "food-1").click()
    _wait_ready(page, "similar-row", "food-1")
    page.get_by_test_id("user-select").select_option("u25")
    _wait_ready(page, "user-row", "u25")
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1] == 375, f"the page scrolls sideways at 375 px: {widths}"
    columns = page.get_by_test_id("catalog-grid").evaluate(
        "g => getComputedStyle(g).gridTemplateColumns.split(' ').length")
    assert columns == 2


def test_api_docs_render_offline(page, base_url: str) -> None:
    # Swagger UI's files come from the service itself: this machine has no internet.
    page.goto(base_url + "/docs", timeout=10_000)
    page.locator(".opblock-summary-path", has_text="/users/{user_id}/recommendations").first.wait_for(timeout=10_000)
    assert page.locator(".opblock").count() >= 10
