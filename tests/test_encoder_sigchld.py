"""A process that runs the OpenVINO encoder and decode workers survives its own child processes.

With a Python-level SIGCHLD handler installed (torch's DataLoader installs one the first time it
starts workers), a process that had run the OpenVINO image encoder died with a segmentation fault
(exit 139) soon after a child process of its own stopped, continued or ended. The pipeline now
keeps SIGCHLD at its default (`encoders.runtime.keep_sigchld_default`).

This file is also the reproducer. `python tests/test_encoder_sigchld.py --rounds 3` runs a small
pattern (decode workers, OpenVINO and torch on two threads, a child stopped, continued and killed
each round; the test runs one round) and exits 0. `--bench` runs the pattern of the benchmark that
crashed instead (`bench_pattern`), and `--handler` first installs a no-op Python SIGCHLD handler,
the state of the process before the fix: `--bench --handler --rounds 2` is the run that crashes
(docs/evaluation.md "Encoder runtimes" gives the counts); the small pattern did not crash even with
`--handler`, so the test checks that SIGCHLD stays at its default after decoding with workers.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pattern(rounds: int, handler: bool, pretrained: bool, folder: Path) -> int:
    """Run the crashing pattern `rounds` times; 0 when it survived, 3 when torch's SIGCHLD handler got installed."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    os.environ.setdefault("SHOPVEC_CACHE_DIR", str(folder / "cache"))
    import faulthandler

    from conftest import make_toy_catalog

    from encoders.config import ImageFeatureConfig
    from encoders.fusion import Fusion, FusionConfig
    from encoders.image import EfficientNetLite0Encoder
    from encoders.item import ItemEncoder
    from engine import Catalog
    from engine.pipeline import encode_items

    faulthandler.enable()
    if handler:
        signal.signal(signal.SIGCHLD, lambda *_: None)
    catalog = Catalog.from_file(make_toy_catalog(folder))  # 10 images: 1 decode worker at batch size 2
    features = None if pretrained else ImageFeatureConfig(image_size=64)
    encoders = []
    for runtime in ("torch", "openvino"):
        image = EfficientNetLite0Encoder(pretrained=pretrained, features=features, device="cpu", runtime=runtime,
                                         threads=2)
        image.decode_workers = 1
        encoders.append(ItemEncoder(image, None, Fusion(image.dim, 0, FusionConfig())))
    for number in range(rounds):
        for encoder in encoders:
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            try:
                for sent in (signal.SIGSTOP, signal.SIGCONT):  # each one sends this process a SIGCHLD
                    os.kill(child.pid, sent)
                    out = encode_items(catalog, encoder, batch_size=2, num_workers=1, show_progress=False)
                    assert len(out.ids) == len(catalog), out.skipped
            finally:
                child.kill()
                child.wait()
            if not handler and signal.getsignal(signal.SIGCHLD) != signal.SIG_DFL:
                print(f"SIGCHLD handler installed: {signal.getsignal(signal.SIGCHLD)!r}", flush=True)
                return 3
        print(f"round {number + 1} of {rounds} survived", flush=True)
    return 0


def bench_pattern(rounds: int, handler: bool) -> int:
    """The pattern of the crashing benchmark: the sample catalog's first 48 items through the image pipeline with
    torch and then the default runtime, forward threads 3 (2 on two cores) and then the budget, while a CPU-bound
    child is started, stopped, continued and killed around each; packaged weights. Returns 0 when it survived."""
    sys.path.insert(0, str(ROOT))
    import faulthandler
    import time

    from benchmarks.bench_encoders import item_encoder, pipeline
    from encoders.config import EncoderConfig
    from engine import Catalog

    faulthandler.enable()
    if handler:
        signal.signal(signal.SIGCHLD, lambda *_: None)
    catalog = Catalog.from_file(ROOT / "sample_catalog" / "items.csv")
    frame = catalog.frame.head(48)
    few = Catalog(frame[[catalog.image_path(r) is not None for r in range(len(frame))]], base_dir=catalog.base_dir)
    config = EncoderConfig()
    for number in range(rounds):
        for runtime in ("torch", "auto"):
            for threads, pool in ((3, 1), (None, None)):
                encoder = item_encoder(runtime, True, False, threads, True, pool)
                child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                try:
                    os.kill(child.pid, signal.SIGSTOP)
                    pipeline(Catalog(few.frame.head(8), base_dir=few.base_dir), encoder, config)
                    for busy in (False, True):
                        if busy:
                            os.kill(child.pid, signal.SIGCONT)
                            time.sleep(0.2)
                        rate = pipeline(few, encoder, config)
                        os.kill(child.pid, signal.SIGSTOP)
                        print(number, runtime, threads, busy, encoder.image.runtime, f"{rate:.1f} images/s", flush=True)
                finally:
                    child.kill()
                    child.wait()
        print(f"round {number + 1} of {rounds} survived", flush=True)
    return 0


def test_decode_workers_and_child_processes_beside_openvino_do_not_crash(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, __file__, "--rounds", "1", "--folder", str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    said = (done.stdout + done.stderr)[-3000:]
    assert done.returncode >= 0, f"killed by signal {signal.Signals(-done.returncode).name}: {said}"
    assert done.returncode == 0, said
    assert "round 1 of 1 survived" in done.stdout


def test_torchs_sigchld_handler_is_removed_and_kept_out() -> None:
    from torch.utils.data._utils import signal_handling

    from encoders.runtime import keep_sigchld_default

    flag, before = signal_handling._SIGCHLD_handler_set, signal.getsignal(signal.SIGCHLD)
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal_handling._SIGCHLD_handler_set = False
        signal_handling._set_SIGCHLD_handler()  # what a DataLoader starting workers calls
        assert signal.getsignal(signal.SIGCHLD) != signal.SIG_DFL
        keep_sigchld_default()  # e.g. a runtime loading after a DataLoader ran
        assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
        signal_handling._set_SIGCHLD_handler()
        assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGCHLD, before)
        signal_handling._SIGCHLD_handler_set = flag


def main(argv: list[str] | None = None) -> int:
    """Run the pattern from the command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds of the pattern")
    p.add_argument("--handler", action="store_true", help="install a no-op SIGCHLD handler first (the state before the fix)")
    p.add_argument("--pretrained", action="store_true", help="the packaged weights at 224 px instead of random ones at 64 px")
    p.add_argument("--folder", type=Path, help="work folder (default: a temporary one)")
    p.add_argument("--bench", action="store_true", help="the crashing benchmark's pattern instead (bench_pattern)")
    args = p.parse_args(argv)
    if args.bench:
        return bench_pattern(args.rounds, args.handler)
    if args.folder is not None:
        return pattern(args.rounds, args.handler, args.pretrained, args.folder)
    with tempfile.TemporaryDirectory() as folder:
        return pattern(args.rounds, args.handler, args.pretrained, Path(folder))


if __name__ == "__main__":
    raise SystemExit(main())
