"""`shopvec serve`: the HTTP API and the web gallery over a model folder."""

from __future__ import annotations

import argparse
import os
from typing import Any

from cli.common import DEFAULT_MODEL_HELP, CommandError, add_command, only_given

API_KEY_ENV = "SHOPVEC_API_KEY"

EXAMPLES = f"""\
shopvec serve models/sample                        # then open http://127.0.0.1:8000 (API docs at /docs)
{API_KEY_ENV}=s3cret shopvec serve models/shop --host 0.0.0.0 --port 8080
shopvec serve models/shop --cors-origin https://shop.example.com --save-every 300"""

CONFIG_FLAGS = {"save_every": "save_every_s"}


def register(subparsers: Any) -> None:
    """Add `shopvec serve`."""
    p = add_command(
        subparsers,
        "serve",
        "Serve a model folder over HTTP: the JSON API, its docs at /docs and the gallery at /.",
        EXAMPLES,
        f"Writes (PUT /items, DELETE /items/ID, POST /events, POST /save) need the API key when one\n"
        f"is set (header `X-API-Key: KEY` or `Authorization: Bearer KEY`); prefer {API_KEY_ENV} to\n"
        f"--api-key, which other users of the machine can read in the process list. Changes are\n"
        f"saved to the folder every --save-every seconds, on POST /save and on shutdown.",
    )
    p.add_argument("model_dir", metavar="DIR", help=DEFAULT_MODEL_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for every interface (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--api-key", metavar="KEY", help=f"key that writes must carry (default: ${API_KEY_ENV}; none: writes are open)")
    p.add_argument("--save-every", type=float, metavar="S", help="seconds between saves of changes (default: 60; 0: only on POST /save and shutdown)")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="a web origin allowed to call the API from a browser (repeatable; default: none)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the service config from the flags and hand over to `service.server.serve` until stopped."""
    from service.config import ServiceConfig
    from service.server import serve

    if not 0 < args.port < 65536:
        raise CommandError(f"--port must be 1..65535, got {args.port}")
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV)
    config = ServiceConfig(
        api_key=api_key or None,
        cors_origins=tuple(args.cors_origin or ()),
        **only_given(args, CONFIG_FLAGS),
    )
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    shown_host = f"[{shown_host}]" if ":" in shown_host else shown_host  # an IPv6 address in a URL
    print(f"starting the service on {args.model_dir}: gallery at http://{shown_host}:{args.port}, "
          f"API docs at /docs (Ctrl+C stops)", flush=True)
    serve(args.model_dir, host=args.host, port=args.port, config=config)
    return 0
