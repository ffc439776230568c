"""Image-feature options measured on the "same product, another photo" test set (`evaluation.image_similarity`).

An option is an EfficientNet-Lite variant, an input size and crop (a `Setting`: one
forward pass per image), a pooling of the last feature map, test-time flip averaging
and, optionally, PCA whitening fitted on the gallery. One forward pass per setting
gives every pooling, for the image and for its mirror (the mirror of the preprocessed
tensor, as `encoders.image.PooledFeatures` does), so the whole grid costs one pass per
setting and image; the pooled features are cached on disk as `.npz`.

Example:
    >>> rows = measure(gallery_dir, cache_dir=Path(".cache/image_similarity"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders.config import IMAGE_POOLINGS, ImageFeatureConfig
from encoders.image import EfficientNetLiteEncoder, pool_feature_map
from encoders.imageio import load_image

from .image_similarity import (
    AUGMENTATIONS,
    apply_whitening,
    augmentation_sources,
    augmented_queries,
    bootstrap_interval,
    fit_whitening,
    l2_rows,
    load_emoji_gallery,
    retrieval_metrics,
    variant_queries,
)
from .statistics import paired_bootstrap

PARTS = ("variants", "augmented")
METRICS = ("recall@1", "recall@10", "ap@10")


@dataclass(frozen=True)
class Setting:
    """What needs its own forward pass: the network and its input (size None / crop None = the variant's own)."""

    variant: str = "efficientnet-lite0"
    image_size: int | None = None
    crop_pct: float | None = None

    @property
    def label(self) -> str:
        """Short name, e.g. `lite0 224 crop` or `lite2 260 whole`."""
        native = {"efficientnet-lite0": 224, "efficientnet-lite2": 260}.get(self.variant, 0)
        crop = "crop" if self.crop_pct is None else ("whole" if self.crop_pct == 1.0 else f"crop{self.crop_pct:g}")
        return f"{self.variant.removeprefix('efficientnet-')} {self.image_size or native} {crop}"


@dataclass(frozen=True)
class Option:
    """One row of the table: a setting, a pooling, flip averaging and an optional (dim, shrinkage) whitening."""

    setting: Setting = field(default_factory=Setting)
    pooling: str = "avg"
    flip: bool = False
    whitening: tuple[int, float] | None = None

    @property
    def label(self) -> str:
        """E.g. `lite0 224 crop, gem, flip, whiten 512/0.5`."""
        parts = [self.setting.label, self.pooling] + (["flip"] if self.flip else [])
        if self.whitening is not None:
            parts.append(f"whiten {self.whitening[0]}/{self.whitening[1]:g}")
        return ", ".join(parts)

    def features(self) -> ImageFeatureConfig:
        """The encoder configuration that produces this option's vectors (whitening aside)."""
        s = self.setting
        return ImageFeatureConfig(image_size=s.image_size, crop_pct=s.crop_pct, pooling=self.pooling, flip=self.flip)


BASELINE = Option()  # the features before issue 11: today's input, average pooling
CURRENT = Option(pooling=ImageFeatureConfig().pooling)  # the encoder's default now
DEFAULT_SETTINGS = (
    Setting(),
    Setting(crop_pct=1.0),
    Setting(image_size=256, crop_pct=1.0),
    Setting("efficientnet-lite2"),
    Setting(image_size=288, crop_pct=1.0),
    Setting("efficientnet-lite2", crop_pct=1.0),
)
# Flip averaging doubles the network time, so it is measured where it is cheapest: today's setting.
DEFAULT_FLIP_SETTINGS = (Setting(),)
DEFAULT_WHITENING = ((256, 0.1), (256, 0.5), (512, 0.1), (512, 0.5))


def make_encoder(setting: Setting, pooling: str = "avg", flip: bool = False, pretrained: bool = True) -> EfficientNetLiteEncoder:
    """The product encoder for a setting, on the CPU."""
    features = ImageFeatureConfig(image_size=setting.image_size, crop_pct=setting.crop_pct, pooling=pooling, flip=flip)
    return EfficientNetLiteEncoder(setting.variant, features=features, pretrained=pretrained, device="cpu", batch_size=4)


def setting_features(
    encoder: EfficientNetLiteEncoder,
    images: Sequence[Any],
    cache_path: Path | None = None,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
    mirror: bool = True,
) -> dict[str, np.ndarray]:
    """Un-normalised pooled features per pooling, of each image (`"avg"`) and, with `mirror`, of its mirror (`"avg-mirror"`).

    Example:
        >>> feats = setting_features(make_encoder(Setting(), pretrained=False), [img])  # doctest: +SKIP
        >>> sorted(feats)[:2]  # doctest: +SKIP
        ['avg', 'avg-mirror']
    """
    if cache_path is not None and cache_path.is_file():
        with np.load(cache_path, allow_pickle=False) as stored:
            complete = not mirror or "avg-mirror" in stored.files
            if complete and all(len(stored[key]) == len(images) for key in stored.files):
                return {key: stored[key] for key in stored.files}
    backbone = encoder.model.backbone
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch_size):
        x = torch.stack([encoder.preprocess(image) for image in images[start : start + batch_size]])
        with torch.inference_mode():
            maps = {"": backbone.forward_features(x)}
            if mirror:
                maps["-mirror"] = backbone.forward_features(x.flip(-1))
            for suffix, fmap in maps.items():
                for pooling in IMAGE_POOLINGS:
                    pooled = pool_feature_map(fmap, pooling, encoder.features.gem_p)
                    out.setdefault(pooling + suffix, []).append(pooled.numpy().astype(np.float32))
        if progress is not None:
            progress(len(x))
    result = {key: np.concatenate(parts) for key, parts in out.items()}
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp.npz")
        np.savez(tmp, **result)
        tmp.replace(cache_path)  # atomic: never half a file under the final name
    return result


def option_vectors(option: Option, feats: dict[str, np.ndarray]) -> np.ndarray:
    """Unit vectors of an option from a setting's pooled features (whitening not applied here).

    Example:
        >>> option_vectors(Option(flip=True), {"avg": a, "avg-mirror": b})  # doctest: +SKIP
    """
    vectors = feats[option.pooling]
    if option.flip:
        vectors = (vectors + feats[option.pooling + "-mirror"]) / 2
    return l2_rows(vectors)


def encode_rate(encoder: EfficientNetLiteEncoder, files: Sequence[Path], repeats: int = 2) -> float:
    """Images per second of `encoder.encode(files)` (decoding included), best of `repeats`, after a warm-up batch."""
    encoder.encode(list(files[:4]))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode(list(files))
        best = min(best, time.perf_counter() - start)
    return len(files) / best


@dataclass
class TestSet:
    """Everything the options are scored on: gallery files, the two parts' queries and their answers."""

    files: list[Path]
    variant_rows: np.ndarray
    variant_relevant: list[np.ndarray]
    augmented: list[Any]
    augmented_source: np.ndarray
    augmented_kind: list[str]
    key: str

    @classmethod
    def build(cls, source: Path, n_sources: int = 300, seed: int = 0) -> TestSet:
        """Gallery and queries from an installed emoji-datasource-google folder."""
        gallery = load_emoji_gallery(source)
        rows, relevant = variant_queries(gallery)
        sources = augmentation_sources(gallery, n_sources, seed)
        images, source_rows, kinds = augmented_queries(gallery, sources, seed)
        names = "\n".join(f"{f.name}" for f in gallery.files)
        key = hashlib.sha1(f"{names}|{sources.tolist()}|{seed}|{AUGMENTATIONS}".encode()).hexdigest()[:12]
        return cls(list(gallery.files), rows, relevant, images, source_rows, kinds, key)

    def score(self, option: Option, gallery_feats: dict[str, np.ndarray], query_feats: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """Per-query metrics of both parts; whitening (if any) is fitted on the gallery vectors only."""
        gallery = option_vectors(option, gallery_feats)
        queries = option_vectors(option, query_feats)
        if option.whitening is not None:
            mean, projection = fit_whitening(gallery, *option.whitening)
            gallery, queries = apply_whitening(gallery, mean, projection), apply_whitening(queries, mean, projection)
        return {
            "variants": retrieval_metrics(gallery[self.variant_rows], gallery, self.variant_relevant, self.variant_rows),
            "augmented": retrieval_metrics(queries, gallery, [np.array([r]) for r in self.augmented_source]),
        }


def summarise(option: Option, metrics: dict[str, dict[str, np.ndarray]], baseline: dict[str, dict[str, np.ndarray]] | None) -> dict[str, Any]:
    """A table row: means, a bootstrap interval of recall@1 and the paired difference to the baseline."""
    row: dict[str, Any] = {"option": option.label, "pooling": option.pooling, "flip": option.flip,
                           "setting": option.setting.label, "whitening": option.whitening}
    for part in PARTS:
        for metric in METRICS:
            row[f"{part} {metric}"] = float(metrics[part][metric].mean())
        row[f"{part} recall@1 ci"] = bootstrap_interval(metrics[part]["recall@1"])
        if baseline is not None:
            diff, low, high = paired_bootstrap(metrics[part]["recall@1"], baseline[part]["recall@1"], n_resamples=2000)
            row[f"{part} recall@1 diff"] = (diff, low, high)
    return row


def measure(
    source: Path,
    cache_dir: Path | None,
    settings: Sequence[Setting] = DEFAULT_SETTINGS,
    flip_settings: Sequence[Setting] = DEFAULT_FLIP_SETTINGS,
    whitening: Sequence[tuple[int, float]] = DEFAULT_WHITENING,
    n_sources: int = 300,
    seed: int = 0,
    timing_images: int = 48,
    report: Callable[[dict[str, Any]], None] = lambda row: None,
    log: Callable[[str], None] = lambda line: None,
    pretrained: bool = True,
) -> list[dict[str, Any]]:
    """Score every setting x pooling option (x flip on `flip_settings`), time them, then whitening rows.

    Settings are measured one after the other, each row going to `report` as soon as
    it is scored. Whitening is applied to the features before issue 11 (`BASELINE`),
    to the encoder's default (`CURRENT`) and to the best encoder option (by the sum of
    the two parts' recall@1). The encode rate is images/s of the
    product encoder on `timing_images` gallery files at batch 4 in this process (run
    it with `OMP_NUM_THREADS=1`), timed right after today's encoder each time; its
    ratio is time per image relative to today's. `pretrained=False` uses random
    weights (for tests).
    """
    if settings[0] != BASELINE.setting:
        raise ValueError(f"the first setting must be today's, {BASELINE.setting}, got {settings[0]}")
    test = TestSet.build(source, n_sources, seed)
    gallery_images = [load_image(path) for path in test.files]
    log(f"gallery {len(test.files)} images; variant queries {len(test.variant_rows)} "
        f"in {len({tuple(sorted(np.append(r, q))) for q, r in zip(test.variant_rows, test.variant_relevant)})} groups; "
        f"augmented queries {len(test.augmented)} ({n_sources} sources x {len(AUGMENTATIONS)})")
    timing_files = test.files[:: max(1, len(test.files) // timing_images)][:timing_images]
    feats: dict[Setting, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    rows: list[dict[str, Any]] = []
    baseline_metrics: dict[str, dict[str, np.ndarray]] = {}

    def add(option: Option, timed: bool) -> None:
        metrics = test.score(option, *feats[option.setting])
        if option == BASELINE:
            baseline_metrics.update(metrics)
        row = summarise(option, metrics, None if option == BASELINE else baseline_metrics)
        for kind in AUGMENTATIONS:
            mask = np.array([k == kind for k in test.augmented_kind])
            row[f"augmented {kind} recall@1"] = float(metrics["augmented"]["recall@1"][mask].mean())
        if timed:
            base = encode_rate(make_encoder(BASELINE.setting, pretrained=pretrained), timing_files)
            if option != BASELINE:
                encoder = make_encoder(option.setting, flip=option.flip, pretrained=pretrained)
            this = base if option == BASELINE else encode_rate(encoder, timing_files)
            row["images/s"], row["time ratio"] = this, base / this
        rows.append(row)
        report(row)

    for setting in settings:
        mirror = setting in flip_settings
        encoder = make_encoder(setting, pretrained=pretrained)
        name = f"{setting.variant}-{setting.image_size}-{setting.crop_pct}-{test.key}" + ("" if pretrained else "-random")
        paths = [None if cache_dir is None else Path(cache_dir) / f"{name}-{part}.npz" for part in ("gallery", "queries")]
        start = time.perf_counter()
        feats[setting] = (
            setting_features(encoder, gallery_images, paths[0], mirror=mirror),
            setting_features(encoder, test.augmented, paths[1], mirror=mirror),
        )
        log(f"features {setting.label}{' (+ mirror)' if mirror else ''}: {time.perf_counter() - start:.0f} s")
        for flip in (False, True) if mirror else (False,):
            for pooling in IMAGE_POOLINGS:
                add(Option(setting, pooling, flip), timed=pooling == "avg")
    best = max(rows, key=lambda r: r["variants recall@1"] + r["augmented recall@1"])
    best_option = next(Option(s, best["pooling"], best["flip"]) for s in settings if s.label == best["setting"])
    for dim, shrinkage in whitening:
        for base in dict.fromkeys([BASELINE, CURRENT, best_option]):
            add(replace(base, whitening=(dim, shrinkage)), timed=False)
    return rows
