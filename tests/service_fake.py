"""Run the real service (`service.server.serve`, uvicorn) with the tests' fake encoders, as a subprocess.

The model folder the tests build names the encoders "fake-image" and "fake-text";
importing `conftest` registers them in `encoders.registry.ENCODERS` the same way the
test process does, and nothing else differs from `shopvec serve`.

Usage: python tests/service_fake.py FOLDER PORT SAVE_EVERY_S
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # conftest, then the repository's packages

import conftest  # noqa: E402,F401 - registers the fake encoders

from service.config import ServiceConfig  # noqa: E402
from service.server import serve  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    folder, port, save_every_s = argv if argv is not None else sys.argv[1:]
    serve(folder, host="127.0.0.1", port=int(port), config=ServiceConfig(save_every_s=float(save_every_s)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
