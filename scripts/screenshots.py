"""Screenshots of the web gallery for the docs, taken in headless Chromium.

    python scripts/demo.py                       # builds models/sample (real encoders)
    python scripts/screenshots.py                # writes docs/img/gallery-*.png
    python scripts/screenshots.py models/sample --out docs/img --user user-0003

Serves the model folder on a free loopback port (nothing is written to the folder) and
drives Debian's chromium (`/usr/bin/chromium`) through Playwright:

  gallery-desktop.png   the catalog grid under a text search's results
  gallery-similar.png   an item's similar items
  gallery-user.png      a shopper's personalised row, "because you viewed ..." under each item
  gallery-phone.png     the same page 375 px wide
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT_MS = 20_000


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", default="models/sample", help="model folder to serve (default: %(default)s)")
    p.add_argument("--out", default=str(REPO / "docs" / "img"), help="where the PNGs go (default docs/img)")
    p.add_argument("--item", default="food-red-apple", help="item whose similar items are shown")
    p.add_argument("--text", default="something warm to drink", help="text search on the desktop shot")
    p.add_argument("--user", default=None, help="shopper for the personalised row (default: the first one)")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary")
    args = p.parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"error: {args.chromium} is missing; apt-get install chromium", file=sys.stderr)
        return 2
    from core.errors import EngineError
    from service.app import load_app
    from service.config import ServiceConfig

    try:
        app = load_app(args.folder, ServiceConfig(save_every_s=0))
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with serving(app) as url:
        shots = take(url, out, args)
    for path in shots:
        print("wrote", path)
    return 0


@contextmanager
def serving(app: object) -> Iterator[str]:
    """Run `app` with uvicorn in a thread on a free 127.0.0.1 port; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start within 60 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def take(url: str, out: Path, args: argparse.Namespace) -> list[Path]:
    """Drive the gallery and write the four PNGs."""
    import httpx
    from playwright.sync_api import sync_playwright

    users = httpx.get(f"{url}/users", params={"limit": 100}, timeout=30).json().get("users", [])
    user = args.user or (users[0] if users else None)
    item = args.item
    if httpx.get(f"{url}/items/{item}", timeout=30).status_code != 200:
        item = httpx.get(f"{url}/items", params={"limit": 1}, timeout=30).json()["items"][0]["item_id"]

    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, base_url=url)
            page.set_default_timeout(WAIT_MS)
            page.goto("/")
            ready(page, "catalog-grid")

            page.get_by_test_id("search-input").fill(args.text)
            page.get_by_test_id("search-input").press("Enter")
            ready(page, "results-row")
            written.append(snap(page, out / "gallery-desktop.png"))

            page.get_by_test_id("results-close").click()
            page.get_by_test_id("search-input").fill("")
            page.goto(f"/#item={item}")
            ready(page, "similar-row")
            written.append(snap(page, out / "gallery-similar.png"))

            page.get_by_test_id("similar-close").click()
            if user is not None:
                page.get_by_test_id("user-select").select_option(user)
                ready(page, "user-row")
                written.append(snap(page, out / "gallery-user.png"))
            else:
                print("note: the model has no users (never fitted); gallery-user.png skipped", file=sys.stderr)

            phone = browser.new_page(viewport={"width": 375, "height": 812}, base_url=url)
            phone.set_default_timeout(WAIT_MS)
            phone.goto(f"/#item={item}")
            ready(phone, "catalog-grid")
            ready(phone, "similar-row")
            written.append(snap(phone, out / "gallery-phone.png"))
        finally:
            browser.close()
    return written


def ready(page: object, testid: str) -> None:
    """Wait until a list of the page has finished loading."""
    page.wait_for_function(
        "t => { const el = document.querySelector(`[data-testid=\"${t}\"]`);"
        " return el && el.dataset.state === 'ready'; }",
        arg=testid,
        timeout=WAIT_MS,
    )


def snap(page: object, path: Path) -> Path:
    """Screenshot the top of the page once the images in view have loaded."""
    page.mouse.move(1, 1)  # no hover effect from the last click
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    page.wait_for_function(
        "[...document.images].filter(i => i.getBoundingClientRect().top < innerHeight"
        " && i.getBoundingClientRect().height > 0).every(i => i.complete)",
        timeout=WAIT_MS,
    )
    page.wait_for_timeout(200)  # let the last images paint
    page.screenshot(path=str(path))
    return path


if __name__ == "__main__":
    raise SystemExit(main())
