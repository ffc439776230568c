"""Load test of the HTTP service on loopback: p50/p99 and requests/s at 1, 8 and 32 clients while items are written.

The service (`service.app.create_app`, one uvicorn process, as `shopvec serve` runs it)
is started in a subprocess on a free 127.0.0.1 port, for two catalogs:

* sample: the model folder `--folder` (default models/sample: real encoders, the
  trained model), loaded with `Engine.load` and served without saving (the folder is
  never changed);
* synthetic: `--items` items (default 100,000) whose vectors are generated (clustered
  like fused embeddings, see bench_index.py) in the real encoders' fused space, built
  straight into an `EngineState` as bench_engine.py does, titles borrowed from the
  sample catalog; the real text encoder answers `search?text=`; the default model is
  fitted for one epoch on a simulated log (2,000 users x 20 Zipf events).

For each catalog, each request kind (GET /items/{id}/similar, GET /search?text=,
GET /users/{u}/recommendations; k=10) and each client count, that many clients send
requests back to back for `--duration` seconds (a closed loop: a bounded asyncio httpx
client, one connection per client). Meanwhile a writer PUTs a new item (title,
description, category, price and an image of the sample catalog: encoded by the real
encoders) every `--write-every` seconds and DELETEs every third item it added. Reads
ask for items of the original catalog, so every read must succeed: an error is any
answer other than 200 with k items, or a failed connection; writes must succeed too.
Each row is printed as soon as it is measured, then the table. The exit code is 1 when
any request failed.

The client shares the machine with the service: on a 2-core machine the load generator
itself takes a good part of one core at 32 clients, so requests/s is a lower bound.

Usage:
    .venv/bin/python benchmarks/bench_service.py --quick     # 20k synthetic items, 2 s per cell
    .venv/bin/python benchmarks/bench_service.py             # sample + 100k synthetic, 10 s per cell
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

KINDS = ("similar", "search", "recommendations")
SEARCH_TEXTS = ("red apple", "running shoes", "a warm winter coat", "tools for the garden", "coffee cup",
                "toy car for kids", "green vegetables", "office chair", "headphones", "birthday cake")


# ----- the service, in a subprocess ------------------------------------------------------
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(kind: str, port: int, folder: Path, items: int) -> None:
    """Run the service on `port` until SIGTERM (the subprocess's whole job)."""
    import uvicorn

    from service.app import create_app
    from service.config import ServiceConfig

    engine = load_sample(folder) if kind == "sample" else synthetic_engine(items)
    app = create_app(engine, None, ServiceConfig(save_every_s=0))  # no folder: nothing is ever saved
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning")


def load_sample(folder: Path):  # type: ignore[no-untyped-def]
    from engine import Engine

    return Engine.load(folder)


def synthetic_engine(n: int):  # type: ignore[no-untyped-def]
    """`n` items with generated vectors in the real encoders' fused space, and a fitted default model."""
    import pandas as pd
    from bench_index import clustered_embeddings

    from encoders.item import ItemEncoder
    from engine import Catalog, Engine, EngineConfig, Interactions
    from engine.state import EngineState
    from index import create_index

    config = EngineConfig()
    encoders = ItemEncoder.from_config(config.encoders, config.fusion)
    dim = encoders.fusion.dim
    sample = pd.read_csv(REPO / "sample_catalog" / "items.csv")
    ids = [f"item-{i}" for i in range(n)]
    pick = np.arange(n) % len(sample)
    frame = pd.DataFrame({"id": ids, "title": [f"{t} {i}" for i, t in enumerate(sample["title"].to_numpy()[pick])],
                          "category": sample["category"].to_numpy()[pick],
                          "price": np.round(np.linspace(1, 100, n), 2)})
    index = create_index(dim, config.index)
    index.add(ids, clustered_embeddings(n, dim))
    catalog = Catalog(frame, base_dir=REPO / "sample_catalog", source="synthetic")
    engine = Engine(config, EngineState(catalog, index), encoders)
    rng = np.random.default_rng(0)
    users, per_user = 2000, 20
    items = np.minimum(rng.zipf(1.3, users * per_user) - 1, n - 1)
    log = pd.DataFrame({"user_id": np.repeat([f"u{i}" for i in range(users)], per_user),
                        "item_id": [f"item-{i}" for i in items], "timestamp": np.arange(users * per_user)})
    engine.fit(Interactions(log), "neumf", epochs=1, show_progress=False)
    return engine


class Service:
    """The service subprocess: started on a free port, stopped with SIGTERM (its own pid only)."""

    def __init__(self, kind: str, folder: Path, items: int, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"service-{kind}.log"
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--port", str(self.port),
                   "--folder", str(folder), "--items", str(items)]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

    def wait_ready(self, timeout_s: float) -> dict:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}:\n{self.tail()}")
            try:
                answer = httpx.get(f"{self.url}/health", timeout=2.0)
                if answer.status_code == 200:
                    return answer.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the service did not answer /health within {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ----- the load ---------------------------------------------------------------------------
@dataclass
class Cell:
    """One measured cell of the table."""

    catalog: str
    items: int
    kind: str
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    puts: int = 0
    deletes: int = 0
    write_errors: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1e3) if self.latencies else float("nan")

    def row(self) -> str:
        return (f"| {self.catalog} | {self.items:,} | {self.kind} | {self.clients} | {len(self.latencies):,} | "
                f"{self.rate:,.1f} | {self.percentile(50):.1f} | {self.percentile(99):.1f} | {self.errors} | "
                f"{self.puts}/{self.deletes} ({self.write_errors} failed) |")


HEADER = ("| catalog | items | request | clients | requests | req/s | p50 ms | p99 ms | errors | "
          "writes PUT/DELETE |\n| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")


class Workload:
    """What the clients ask for: original item ids, users, search texts."""

    def __init__(self, url: str, seed: int) -> None:
        import httpx

        self.rng = random.Random(seed)
        first = httpx.get(f"{url}/items", params={"limit": 1}, timeout=30).json()
        total = int(first["total"])
        offsets = sorted({0, *(self.rng.randrange(0, max(total - 200, 1)) for _ in range(4))})
        self.item_ids = sorted({i["item_id"] for o in offsets
                                for i in httpx.get(f"{url}/items", params={"offset": o, "limit": 200},
                                                   timeout=30).json()["items"]})
        self.users = httpx.get(f"{url}/users", params={"limit": 200}, timeout=30).json()["users"]
        self.texts = list(SEARCH_TEXTS)

    def request(self, kind: str) -> tuple[str, dict]:
        if kind == "similar":
            return f"/items/{self.rng.choice(self.item_ids)}/similar", {"k": 10}
        if kind == "search":
            return "/search", {"text": self.rng.choice(self.texts), "k": 10}
        return f"/users/{self.rng.choice(self.users)}/recommendations", {"k": 10}


async def measure(url: str, workload: Workload, cell: Cell, duration: float) -> None:
    """`cell.clients` clients sending `cell.kind` requests back to back for `duration` seconds."""
    import httpx

    limits = httpx.Limits(max_connections=cell.clients, max_keepalive_connections=cell.clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:
        stop_at = time.perf_counter() + duration

        async def one_client() -> None:
            while time.perf_counter() < stop_at:
                path, params = workload.request(cell.kind)
                start = time.perf_counter()
                try:
                    answer = await client.get(path, params=params)
                    ok = answer.status_code == 200 and len(answer.json().get("items", [])) == 10
                    why = f"{answer.status_code} {answer.text[:200]}"
                except (httpx.HTTPError, ValueError) as exc:
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                if ok:
                    cell.latencies.append(time.perf_counter() - start)
                else:
                    cell.errors += 1
                    if len(cell.examples) < 3:
                        cell.examples.append(f"GET {path} {params} -> {why}")

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(cell.clients)))
        cell.seconds = time.perf_counter() - began


@dataclass
class Writes:
    puts: int = 0
    deletes: int = 0
    errors: int = 0
    examples: list[str] = field(default_factory=list)


async def writer(url: str, every: float, stop: asyncio.Event, writes: Writes, tag: str) -> None:
    """PUT a new item every `every` seconds and DELETE every third item it added, until `stop`."""
    import httpx

    images = sorted(p.name for p in (REPO / "sample_catalog" / "images").glob("*.png"))
    added: list[str] = []
    rng = random.Random(1)
    async with httpx.AsyncClient(base_url=url, timeout=120.0) as client:
        n = 0
        while not stop.is_set():
            n += 1
            item_id = f"bench-{tag}-{n}"
            image = rng.choice(images)
            item = {"id": item_id, "title": f"New {image[:-4].replace('-', ' ')} {n}",
                    "description": "Added while the load test runs.", "category": image.split("-")[0],
                    "price": round(rng.uniform(1, 100), 2), "image": f"images/{image}"}
            try:
                answer = await client.put("/items", json=[item])
                ok = answer.status_code == 200 and item_id in answer.json().get("added", [])
                why = f"{answer.status_code} {answer.text[:200]}"
            except (httpx.HTTPError, ValueError) as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"
            writes.puts += 1
            if ok:
                added.append(item_id)
            else:
                writes.errors += 1
                writes.examples.append(f"PUT {item_id} -> {why}")
            if n % 3 == 0 and added:
                gone = added.pop(0)
                try:
                    answer = await client.delete(f"/items/{gone}")
                    ok, why = answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                writes.deletes += 1
                if not ok:
                    writes.errors += 1
                    writes.examples.append(f"DELETE {gone} -> {why}")
            try:
                await asyncio.wait_for(stop.wait(), timeout=every)
            except asyncio.TimeoutError:
                pass


async def run_catalog(name: str, url: str, items: int, args: argparse.Namespace, cells: list[Cell]) -> None:
    """Every (request kind, clients) cell on one running service, the writer going throughout."""
    import httpx

    workload = Workload(url, args.seed)
    async with httpx.AsyncClient(base_url=url, timeout=120.0) as client:  # warm-up: the first search loads the encoder
        for kind in KINDS:
            for _ in range(3):
                path, params = workload.request(kind)
                await client.get(path, params=params)
    writes, stop = Writes(), asyncio.Event()
    task = asyncio.create_task(writer(url, args.write_every, stop, writes, name)) if args.write_every > 0 else None
    try:
        for kind in args.kinds:
            for clients in args.client_counts:
                cell = Cell(name, items, kind, clients)
                before = (writes.puts, writes.deletes, writes.errors)
                await measure(url, workload, cell, args.duration)
                cell.puts, cell.deletes, cell.write_errors = (a - b for a, b in zip(
                    (writes.puts, writes.deletes, writes.errors), before))
                cells.append(cell)
                print(cell.row(), flush=True)
                for example in cell.examples:
                    print(f"    error: {example}", flush=True)
    finally:
        stop.set()
        if task is not None:
            await task
    for example in writes.examples[:3]:
        print(f"    write error: {example}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the load test; print each row as measured, then the table; 1 when any request failed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 s per cell, 20k synthetic items (unless --items)")
    p.add_argument("--catalogs", default="sample,synthetic", help="comma-separated: sample, synthetic")
    p.add_argument("--folder", type=Path, default=REPO / "models" / "sample", help="model folder of the sample row")
    p.add_argument("--items", type=int, default=None, help="synthetic catalog size (default 100,000; 20,000 --quick)")
    p.add_argument("--clients", default="1,8,32", help="comma-separated concurrent client counts")
    p.add_argument("--requests", default=",".join(KINDS), help=f"comma-separated subset of {', '.join(KINDS)}")
    p.add_argument("--duration", type=float, default=None, help="seconds per cell (default 10; 2 with --quick)")
    p.add_argument("--write-every", type=float, default=0.25, help="seconds between the writer's PUTs (0: no writer)")
    p.add_argument("--ready-timeout", type=float, default=900.0, help="seconds to wait for a service to start")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serve", choices=("sample", "synthetic"), help=argparse.SUPPRESS)  # the subprocess's mode
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.items = args.items or (20_000 if args.quick else 100_000)
    if args.serve:
        sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_index
        serve(args.serve, args.port, args.folder, args.items)
        return 0
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    catalogs = [c.strip() for c in args.catalogs.split(",") if c.strip()]
    args.kinds = [k.strip() for k in args.requests.split(",") if k.strip()]
    unknown = [c for c in catalogs if c not in ("sample", "synthetic")] + [k for k in args.kinds if k not in KINDS]
    if unknown or not catalogs or not args.kinds or not args.client_counts or min(args.client_counts) < 1:
        p.error(f"unknown or no --catalogs/--requests {unknown}: catalogs are sample, synthetic; requests "
                f"{', '.join(KINDS)}; --clients takes positive counts")
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; {args.duration:g} s per cell; "
          f"writer: a PUT every {args.write_every:g} s, a DELETE every third", flush=True)
    print(HEADER, flush=True)
    cells: list[Cell] = []
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM still stops the service it started
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        for name in catalogs:
            service = Service(name, args.folder, args.items, Path(tmp))
            started = time.perf_counter()
            try:
                health = service.wait_ready(args.ready_timeout)
                print(f"    ({name}: service ready in {time.perf_counter() - started:.0f} s on {service.url}: "
                      f"{health['items']:,} items, model {health['model']}, load average "
                      f"{os.getloadavg()[0]:.1f})", flush=True)
                asyncio.run(run_catalog(name, service.url, int(health["items"]), args, cells))
            finally:
                service.stop()
    signal.signal(signal.SIGTERM, previous)
    print()
    print(HEADER)
    for cell in cells:
        print(cell.row())
    failed = sum(c.errors + c.write_errors for c in cells)
    print(f"\n{sum(len(c.latencies) for c in cells):,} requests answered, {failed} failed "
          f"({sum(c.puts for c in cells)} PUT and {sum(c.deletes for c in cells)} DELETE during the run)")
    return 1 if failed else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
