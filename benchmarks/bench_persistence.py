"""What checking a model folder costs: digests of a 1 GB file, and saving and loading a 1 GB index.

Every file of a model folder is hashed once on save (its manifest lists the digest) and
once on load (`core.integrity.verify_files`). This prints the hashing speed of the digest
used (SHA-256) against BLAKE2b and a plain read (best of three, the file in the page
cache), then the save and load time of a NumPy index of about the same size, with the
share spent verifying.

Usage:
    .venv/bin/python benchmarks/bench_persistence.py              # 1024 MB
    .venv/bin/python benchmarks/bench_persistence.py --size-mb 256
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.integrity import file_digest, parse_manifest, verify_files  # noqa: E402
from core.persistence import model_folder  # noqa: E402
from index import IndexConfig, NumpyIndex, load_index  # noqa: E402

DIM = 768


def seconds(task) -> float:
    start = time.perf_counter()
    task()
    return time.perf_counter() - start


def blake2b(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "blake2b").hexdigest()


def read(path: Path) -> None:
    with open(path, "rb", buffering=0) as fh:
        while fh.read(1 << 20):
            pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mb", type=int, default=1024)
    args = p.parse_args(argv)
    rows = args.size_mb * (1 << 20) // (4 * DIM)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        vectors = np.random.default_rng(0).standard_normal((rows, DIM), dtype=np.float32)
        blob = folder / "blob.npy"
        np.save(blob, vectors)
        read(blob)  # warm the page cache, as a load right after a save finds it
        gb = blob.stat().st_size / 1e9
        print(f"{'what':<40}{'seconds':>9}{'s per GB':>10}")
        for name, task in (("read", lambda: read(blob)), ("sha256 (the manifest's digest)", lambda: file_digest(blob)),
                           ("blake2b", lambda: blake2b(blob))):
            took = min(seconds(task) for _ in range(3))
            print(f"{name:<40}{took:>9.2f}{took / gb:>10.2f}")
        blob.unlink()

        index = NumpyIndex(DIM, IndexConfig(kind="numpy"))
        index.add([f"i{n}" for n in range(rows)], vectors)
        del vectors
        save = seconds(lambda: index.save(folder / "idx"))
        version = model_folder(folder / "idx")
        verify = seconds(lambda: verify_files(version, parse_manifest(version / "manifest.json")))
        load = seconds(lambda: load_index(version))
        print(f"{f'index save, {gb:.2f} GB (hashing included)':<40}{save:>9.2f}{save / gb:>10.2f}")
        print(f"{'index load (verification included)':<40}{load:>9.2f}{load / gb:>10.2f}")
        print(f"{'  of which verification':<40}{verify:>9.2f}{verify / gb:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
