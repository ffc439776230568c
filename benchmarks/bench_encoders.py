"""Encoder runtimes: torch fp32 vs ONNX Runtime vs OpenVINO, speed and quality, in one run.

For an image catalog (the sample catalog's photos, image encoder only) and a text-only
catalog (the sample catalog's texts), and for each runtime:

* forward  - items/s of the encoder alone on pre-made inputs (preprocessed image tensors in
             batches of `EncoderConfig.batch_size`; texts in batches of 64, tokenising included);
* pipeline - items/s of `engine.pipeline.encode_items` (decoding in the worker pool the thread
             budget allows, batching, fusion);

as ratios to torch fp32 measured in the same run, and pipeline / forward. Quality: mean and
min cosine of each runtime's vectors to torch fp32's on the same items, and the retrieval
evaluation's same-category P@10 (image, text, and fused at the default weight; see
`evaluation.retrieval`) with its difference to torch fp32 (the target: within 0.01).

`--busy N` first measures the image pipeline with N competing CPU-bound processes (in a child process), for torch and
for the default ("auto") runtime, with the old thread use ("old": forward threads = all cores
plus the decode worker) and with the thread budget ("budget": `EncoderConfig.threads` default),
to show whether throughput falls in proportion to the load or collapses.

Usage:
    .venv/bin/python benchmarks/bench_encoders.py                 # 489 items, all runtimes
    .venv/bin/python benchmarks/bench_encoders.py --busy 1        # plus the oversubscription table
    .venv/bin/python benchmarks/bench_encoders.py --quick         # 12 items, for the test
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoders.config import EncoderConfig, ImageFeatureConfig  # noqa: E402
from encoders.fusion import Fusion, FusionConfig  # noqa: E402
from encoders.image import EfficientNetLite0Encoder  # noqa: E402
from encoders.imageio import load_image  # noqa: E402
from encoders.item import ItemEncoder  # noqa: E402
from encoders.runtime import available_cores, runtime_installed, split_budget  # noqa: E402
from encoders.text import MiniLMEncoder  # noqa: E402
from engine import Catalog  # noqa: E402
from engine.pipeline import encode_items  # noqa: E402
from evaluation.retrieval import ModalityVectors, fusion_sweep, precision_at_k  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUNTIMES = ("torch", "onnx", "openvino", "auto")
RANDOM_SIZE = 64  # image input side of the random-weight models: they only test the benchmark's mechanics


@dataclass
class Quality:
    """One runtime's vectors and how close they are to torch fp32's."""

    runtime: str
    image: np.ndarray
    text: np.ndarray
    cos: dict[str, tuple[float, float]] = field(default_factory=dict)
    p10: dict[str, float] = field(default_factory=dict)


def say(line: str) -> None:
    """Print one line at once (rows appear as they are measured, even through a pipe)."""
    print(line, flush=True)


def progress(line: str) -> None:
    """A progress note on stderr."""
    print(f"... {line}", file=sys.stderr, flush=True)


def item_encoder(runtime: str, image: bool, text: bool, threads: int | None = None, pretrained: bool = True,
                 num_workers: int | None = None) -> ItemEncoder:
    """The default encoders on `runtime`, with only the modalities asked for (random weights: for the test)."""
    config = EncoderConfig(image="efficientnet-lite0" if image else None, text="minilm-l6" if text else None,
                           device="cpu", runtime=runtime, threads=threads, num_workers=num_workers)
    if pretrained:
        return ItemEncoder.from_config(config, FusionConfig())
    image_threads, workers = split_budget(threads, config.num_workers)
    img = EfficientNetLite0Encoder(pretrained=False, device="cpu", runtime=runtime, threads=image_threads,
                                   features=ImageFeatureConfig(image_size=RANDOM_SIZE)) if image else None
    if img is not None:
        img.decode_workers = workers
    txt = MiniLMEncoder(pretrained=False, device="cpu", runtime=runtime, threads=threads) if text else None
    return ItemEncoder(img, txt, Fusion(img.dim if img else 0, txt.dim if txt else 0, FusionConfig()))


def forward_images(enc: ItemEncoder, stacks: list[torch.Tensor]) -> tuple[float, np.ndarray]:
    """Items/s and vectors of the image encoder on pre-made tensors (one warm-up batch first)."""
    assert enc.image is not None
    enc.image.encode_tensors(stacks[0])
    start = time.perf_counter()
    out = [enc.image.encode_tensors(x) for x in stacks]
    return sum(len(x) for x in stacks) / (time.perf_counter() - start), np.concatenate(out)


def forward_texts(enc: ItemEncoder, texts: list[str]) -> tuple[float, np.ndarray]:
    """Items/s and vectors of the text encoder in batches of 64 (one warm-up batch first)."""
    assert enc.text is not None
    enc.text.encode(texts[:64])
    start = time.perf_counter()
    out = [enc.text.encode(texts[s : s + 64]) for s in range(0, len(texts), 64)]
    return len(texts) / (time.perf_counter() - start), np.concatenate(out)


def pipeline(catalog: Catalog, enc: ItemEncoder, config: EncoderConfig) -> float:
    """Items/s of the whole encoding stage."""
    start = time.perf_counter()
    out = encode_items(catalog, enc, batch_size=config.batch_size, num_workers=config.num_workers, show_progress=False)
    assert not out.skipped, out.skipped[:3]
    return len(catalog) / (time.perf_counter() - start)


def cosines(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and min row-wise cosine of two arrays of unit rows."""
    c = (a * b).sum(axis=1)
    return float(c.mean()), float(c.min())


def retrieval(labels: np.ndarray, image: np.ndarray, text: np.ndarray) -> dict[str, float]:
    """P@10 of image, text and fused vectors, as `shopvec evaluate retrieval` computes them."""
    n = len(labels)
    vectors = ModalityVectors(labels, image, text, np.ones(n, bool), np.ones(n, bool))
    w = FusionConfig().normalised()[0]
    k = min(10, n - 1)
    return {"image": precision_at_k(image, labels, k), "text": precision_at_k(text, labels, k),
            "fused": fusion_sweep(vectors, [w], k)[w]}


def busy(n: int) -> list[int]:
    """Start n CPU-bound processes (each spins one core), paused until `resume`; returns their pids.

    They are not this process's children (a shell starts them and exits), so stopping them sends
    this process no SIGCHLD. With a Python-level SIGCHLD handler installed (torch's DataLoader
    installed one before `encoders.runtime.keep_sigchld_default`), a child's SIGCHLD crashed a
    process with OpenVINO loaded (exit 139; tests/test_encoder_sigchld.py).
    """
    spin = f"{sys.executable} -c 'while True: pass'"
    script = f"for i in $(seq {n}); do {spin} </dev/null >/dev/null 2>&1 & echo $!; done"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    pids = [int(pid) for pid in out.split()]
    pause(pids)
    return pids


def pause(pids: list[int]) -> None:
    """Stop the busy processes from running."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)


def resume(pids: list[int]) -> None:
    """Let the busy processes run again."""
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


def stop(pids: list[int]) -> None:
    """End the processes `busy` started."""
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def oversubscription(catalog: Catalog, workers: list[int], runtimes: list[str],
                     pretrained: bool = True) -> list[tuple[str, str, int, float]]:
    """Image pipeline items/s for each runtime and thread use, without and with the (paused) busy processes."""
    n_busy = len(workers)
    cores = available_cores()
    config = EncoderConfig()
    rows = []
    for runtime in runtimes:
        # "old": what ran before the budget, forward threads = all cores beside one decode worker;
        # "budget": the defaults, the pool sized from the cores and the model on the rest.
        for label, threads, pool in (("old", cores + 1, 1), ("budget", None, None)):
            enc = item_encoder(runtime, True, False, threads, pretrained, pool)
            pipeline(Catalog(catalog.frame.head(8), base_dir=catalog.base_dir), enc, config)  # warm-up
            for load in (0, n_busy):
                progress(f"pipeline {runtime} {label} threads, {load} busy process(es)")
                if load:
                    resume(workers)
                    time.sleep(0.5)
                try:
                    rate = pipeline(catalog, enc, config)
                finally:
                    pause(workers)
                rows.append((runtime, label, load, rate))
                say(f"{'images':<8} {runtime:<9} {label:<7} {enc.image.threads:>7} {enc.image.decode_workers:>7} "
                    f"{load:>5} {rate:>9.1f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure every runtime and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="12 items, for the test")
    p.add_argument("--items", type=int, default=0, help="items of the sample catalog to use (0: all)")
    p.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated; torch is always measured")
    p.add_argument("--random-weights", action="store_true", help=f"random-weight models, images at {RANDOM_SIZE} px (for the test)")
    p.add_argument("--busy", type=int, default=0, help="competing CPU-bound processes for the oversubscription table")
    p.add_argument("--busy-items", type=int, default=96, help="items of the oversubscription runs")
    p.add_argument("--busy-only", action="store_true", help="only the oversubscription table (run in a fresh process)")
    args = p.parse_args(argv)
    if args.quick:
        args.busy_items = min(args.busy_items, 4)
    runtimes = ["torch"] + [r for r in args.runtimes.split(",") if r and r != "torch"]
    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad:
        p.error(f"unknown runtime(s) {', '.join(bad)}; valid: {', '.join(RUNTIMES)}")
    missing = [r for r in runtimes if r != "auto" and not runtime_installed(r)]
    runtimes = [r for r in runtimes if r not in missing]
    catalog = Catalog.from_file(REPO / "sample_catalog" / "items.csv")
    n = 12 if args.quick else (args.items or len(catalog))
    frame = catalog.frame.head(n)
    frame = frame[[catalog.image_path(r) is not None and bool(catalog.text(r)) for r in range(len(frame))]]
    images = Catalog(frame, base_dir=catalog.base_dir)
    texts_only = Catalog(frame.drop(columns=["image"]), base_dir=catalog.base_dir)
    config = EncoderConfig()
    if args.busy_only:
        busy_table(images, args, runtimes)
        return 0
    if args.busy:
        # First, in a fresh process with only torch and the default runtime loaded, as in an indexing
        # run (and before this one loads any runtime: see `busy`).
        child = [sys.executable, __file__, "--busy-only", "--busy", str(args.busy), "--busy-items", str(args.busy_items),
                 "--items", str(n), "--runtimes", ",".join(r for r in runtimes if r == "auto")]
        subprocess.run(child + (["--random-weights"] if args.random_weights else []), check=True)
        say("")
    texts = [images.text(r) for r in range(len(images))]
    progress(f"decoding and preprocessing {len(images)} images for the forward runs")
    preprocess = item_encoder("torch", True, False, pretrained=not args.random_weights).image.preprocess
    tensors = [preprocess(load_image(images.image_path(r))) for r in range(len(images))]
    stacks = [torch.stack(tensors[s : s + config.batch_size]) for s in range(0, len(tensors), config.batch_size)]
    labels = np.asarray(images.column("category").tolist())
    load = os.getloadavg()[0]
    say(f"{len(images)} items; cores {available_cores()}; load average {load:.2f} at the start"
        + (f"; not installed: {', '.join(missing)}" if missing else ""))
    say(f"{'catalog':<8} {'runtime':<9} {'stage':<9} {'items/s':>9} {'vs torch':>9} {'/forward':>9}")
    speed: dict[tuple[str, str, str], float] = {}
    qualities: list[Quality] = []
    for runtime in runtimes:
        for catalog_name, modality in (("images", "image"), ("texts", "text")):
            progress(f"{runtime}: loading the {modality} encoder")
            enc = item_encoder(runtime, modality == "image", modality == "text", pretrained=not args.random_weights)
            used = (enc.image or enc.text).runtime
            progress(f"{runtime} ({used}): {modality} forward and pipeline")
            rate, vectors = forward_images(enc, stacks) if modality == "image" else forward_texts(enc, texts)
            piped = pipeline(images if modality == "image" else texts_only, enc, config)
            for stage, value in (("forward", rate), ("pipeline", piped)):
                speed[(catalog_name, runtime, stage)] = value
                ratio = value / speed[(catalog_name, "torch", stage)]
                say(f"{catalog_name:<8} {runtime if runtime != 'auto' else 'auto=' + used:<9} {stage:<9} "
                    f"{value:>9.1f} {ratio:>9.2f} {value / rate:>9.2f}")
            if modality == "image":
                image_vectors = vectors
            else:
                qualities.append(Quality(runtime, image_vectors, vectors))
    say("")
    say(f"{'runtime':<9} {'img fwd':>8} {'img pipe':>8} {'txt fwd':>8} {'txt pipe':>8}   (items/s ratio to torch fp32)")
    for runtime in runtimes:
        cells = [speed[(c, runtime, s)] / speed[(c, "torch", s)] for c in ("images", "texts") for s in ("forward", "pipeline")]
        say(f"{runtime:<9} " + " ".join(f"{v:>8.2f}" for v in cells))
    reference = qualities[0]
    say("")
    say(f"{'runtime':<9} {'cos img mean':>12} {'min':>7} {'cos txt mean':>12} {'min':>7} "
        f"{'P@10 img':>8} {'txt':>6} {'fused':>6} {'fused-torch':>11}")
    for q in qualities:
        q.cos = {"image": cosines(q.image, reference.image), "text": cosines(q.text, reference.text)}
        q.p10 = retrieval(labels, q.image, q.text)
        say(f"{q.runtime:<9} {q.cos['image'][0]:>12.5f} {q.cos['image'][1]:>7.4f} {q.cos['text'][0]:>12.5f} "
            f"{q.cos['text'][1]:>7.4f} {q.p10['image']:>8.3f} {q.p10['text']:>6.3f} {q.p10['fused']:>6.3f} "
            f"{q.p10['fused'] - qualities[0].p10['fused']:>+11.3f}")
    say(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


def busy_table(images: Catalog, args: argparse.Namespace, runtimes: list[str]) -> None:
    """The oversubscription rows, then their busy/idle ratios."""
    say("")
    say(f"oversubscription: image pipeline on {min(args.busy_items, len(images))} items with {args.busy} competing process(es)")
    say(f"{'catalog':<8} {'runtime':<9} {'threads':<7} {'forward':>7} {'decode':>7} {'busy':>5} {'items/s':>9}")
    few = Catalog(images.frame.head(args.busy_items), base_dir=images.base_dir)
    workers = busy(args.busy)
    try:
        rows = oversubscription(few, workers, ["torch", *[r for r in runtimes if r == "auto"]], not args.random_weights)
    finally:
        stop(workers)
    say("")
    say(f"{'runtime':<9} {'threads':<7} {'idle':>8} {'busy':>8} {'busy/idle':>9}")
    for i in range(0, len(rows), 2):
        (runtime, label, _, idle), (_, _, _, loaded) = rows[i], rows[i + 1]
        say(f"{runtime:<9} {label:<7} {idle:>8.1f} {loaded:>8.1f} {loaded / idle:>9.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
