"""Figures for the evaluation: NDCG@K curves with bootstrap bands, the index trade-off, a 2-D map of item vectors.

Each figure has a data step that returns plain numbers (`evaluation.report.ndcg_curves`,
`evaluation.index_tradeoff.index_tradeoff`, `embedding_map`) and a drawing step (`draw_*`) that only
draws them, so the tests can check that what is drawn is what was computed. Drawing uses
matplotlib's object API on its Agg canvas (`matplotlib.figure.Figure`): no display, no
pyplot, no global backend switched for whoever imports this module.

Example:
    >>> curves = evaluation.report.ndcg_curves(comparison, "temporal")        # doctest: +SKIP
    >>> save_figure(draw_ndcg_curves(curves), "runs/ndcg-at-k.png")            # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from core.errors import InvalidArgumentError

from .index_tradeoff import TradeoffPoint
from .report import NdcgCurve

METHODS = ("tsne", "pca")
MAX_LEGEND = 20  # categories beyond the 19 largest are drawn grey, as "other"


# ----- NDCG@K curves ----------------------------------------------------------------
def draw_ndcg_curves(curves: Sequence[NdcgCurve], title: str = "", max_bands: int = 4) -> Figure:
    """One row per split: NDCG@K per model (left); NDCG@K minus the baseline's with its paired band (right).

    Left, each model's 95% bootstrap band is drawn when there are at most `max_bands` models;
    with more, only the baseline's (a dozen overlapping bands hide the lines; the paired bands
    on the right are the ones that say whether a model beats the baseline). Line i of an axes
    is the i-th curve drawn on it (in `curves` order), its x the cut-offs.
    """
    splits = list(dict.fromkeys(c.split for c in curves))
    if not splits:
        raise InvalidArgumentError("no NDCG@K curves to draw (the comparison kept no per-user NDCG@K)")
    models = list(dict.fromkeys(c.model for c in curves))
    colours = _colours(len(models))
    fig = Figure(figsize=(13.5, 4.4 * len(splits)), dpi=110, layout="constrained")
    axes = fig.subplots(len(splits), 2, squeeze=False)
    for row, split in enumerate(splits):
        left, right = axes[row]
        here = [c for c in curves if c.split == split]
        all_bands = len(here) <= max_bands
        for c in here:
            colour = colours[models.index(c.model)]
            style = dict(color=colour, marker="o", markersize=3.5, linewidth=1.4, label=c.model)
            if c.model == c.baseline:
                style.update(color="black", linestyle="--")
            left.plot(c.cutoffs, c.ndcg, **style)
            if all_bands or c.model == c.baseline:
                left.fill_between(c.cutoffs, c.low, c.high, color=style["color"], alpha=0.10, linewidth=0)
            if c.diff is not None:
                right.plot(c.cutoffs, c.diff, **style)
                right.fill_between(c.cutoffs, c.diff_low, c.diff_high, color=colour, alpha=0.08, linewidth=0)
        baseline = next((c.baseline for c in here if c.baseline), None)
        band = "95% bootstrap bands" if all_bands else f"band: {baseline}'s 95% bootstrap interval"
        left.set_title(f"{split}: test NDCG@K, {here[0].n_users} users ({band})", fontsize=10)
        right.axhline(0.0, color="black", linewidth=0.8, linestyle="--")
        right.set_title(f"{split}: minus {baseline or 'the baseline'}, same users (95% paired bootstrap)",
                        fontsize=10)
        for ax in (left, right):
            ax.set_xscale("log")
            ax.set_xticks(list(here[0].cutoffs), [str(k) for k in here[0].cutoffs])
            ax.minorticks_off()
            ax.set_xlabel("K")
            ax.grid(True, alpha=0.3)
        left.set_ylabel("NDCG@K")
        right.set_ylabel("NDCG@K difference")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


# ----- index trade-off ------------------------------------------------------------
def draw_index_tradeoff(points: Sequence[TradeoffPoint], title: str = "") -> Figure:
    """Recall@k (x) against queries per second (y, log): exact search as the reference, one line per HNSW
    over-fetch factor through its ef_search values, the engine's default circled.

    Line 0 is exact search (one point); then one line per rerank factor, in order of first appearance.
    """
    if not points:
        raise InvalidArgumentError("no trade-off points to draw")
    fig = Figure(figsize=(9, 5.6), dpi=110, layout="constrained")
    ax = fig.subplots()
    exact = [p for p in points if p.structure == "flat"]
    ax.plot([p.recall for p in exact], [p.qps for p in exact], linestyle="none", marker="*", markersize=14,
            color="black", label="exact (FAISS Flat): the reference")
    for p in exact:
        ax.annotate(f"{p.qps:,.0f} q/s", (p.recall, p.qps), textcoords="offset points", xytext=(-8, -14),
                    fontsize=7, ha="right")
    factors = list(dict.fromkeys(p.rerank_factor for p in points if p.structure == "hnsw"))
    colours = _colours(max(len(factors), 1))
    for factor, colour in zip(factors, colours):
        line = [p for p in points if p.structure == "hnsw" and p.rerank_factor == factor]
        what = "graph's own top k" if factor == 1 else f"{factor}x over-fetch + exact re-rank"
        ax.plot([p.recall for p in line], [p.qps for p in line], marker="o", color=colour,
                label=f"HNSW, {what}")
        for p in line:
            ax.annotate(f"ef {p.ef_search}", (p.recall, p.qps), textcoords="offset points", xytext=(5, 4),
                        fontsize=7, color=colour)
    for p in points:
        if p.default:
            ax.plot([p.recall], [p.qps], marker="o", markersize=16, markerfacecolor="none", color="crimson",
                    linestyle="none", label="engine default (HNSW)")
    ax.set_yscale("log")
    ax.set_xlabel("recall@10 against exact search")
    ax.set_ylabel("queries / s (1 / median latency, one query at a time)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or "Index settings: recall against speed", fontsize=10)
    return fig


# ----- 2-D map of item vectors ------------------------------------------------------
@dataclass(frozen=True)
class EmbeddingMap:
    """Item vectors projected to 2-D.

    Attributes:
        xy: (n_items, 2) coordinates.
        labels: each item's category, aligned with `xy`.
        method: 'tsne' or 'pca'.
        ids: item ids aligned with `xy` (empty when not given).
    """

    xy: np.ndarray
    labels: tuple[str, ...]
    method: str
    ids: tuple[str, ...] = ()

    def categories(self) -> list[str]:
        """Categories by size, largest first (ties by name): the legend's order."""
        names, counts = np.unique(np.asarray(self.labels, dtype=object).astype(str), return_counts=True)
        return [str(n) for _, n in sorted(zip(-counts, names))]


def embedding_map(
    vectors: np.ndarray, labels: Sequence[str], method: str = "tsne", seed: int = 0, ids: Sequence[str] = ()
) -> EmbeddingMap:
    """Project item vectors to 2-D with scikit-learn's t-SNE or PCA, seeded.

    t-SNE (cosine distance, PCA initialisation, perplexity min(30, (n - 1) / 3)) keeps
    neighbourhoods; PCA keeps the two directions of largest variance (global layout, linear).

    Example:
        >>> m = embedding_map(np.eye(6, dtype=np.float32), list("aabbcc"), method="pca")
        >>> m.xy.shape, m.categories()
        ((6, 2), ['a', 'b', 'c'])
    """
    if method not in METHODS:
        raise InvalidArgumentError(f"unknown projection {method!r}; valid: {', '.join(METHODS)}")
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) < 4:
        raise InvalidArgumentError(f"a 2-D map needs at least 4 item vectors, got shape {vectors.shape}")
    if len(labels) != len(vectors):
        raise InvalidArgumentError(f"{len(labels)} labels for {len(vectors)} vectors")
    if ids and len(ids) != len(vectors):
        raise InvalidArgumentError(f"{len(ids)} ids for {len(vectors)} vectors")
    if method == "pca":
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (len(vectors) - 1) / 3))
        xy = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed).fit_transform(
            vectors)
    return EmbeddingMap(np.asarray(xy, dtype=np.float64), tuple(str(x) for x in labels), method, tuple(map(str, ids)))


def draw_embedding_map(m: EmbeddingMap, title: str = "") -> Figure:
    """A scatter of `m.xy`, one colour and legend entry per category (largest first).

    Collection i of the axes holds the points of `m.categories()[i]` (the 19 largest; one grey
    'other' collection for the rest when there are more than 20).
    """
    fig = Figure(figsize=(9.5, 7.5), dpi=110, layout="constrained")
    ax = fig.subplots()
    categories = m.categories()
    shown = categories if len(categories) <= MAX_LEGEND else categories[: MAX_LEGEND - 1]
    labels = np.asarray(m.labels, dtype=object).astype(str)
    colours = _colours(len(shown))
    for name, colour in zip(shown, colours):
        mask = labels == name
        ax.scatter(m.xy[mask, 0], m.xy[mask, 1], s=16, color=colour, alpha=0.85, linewidths=0,
                   label=f"{name} ({int(mask.sum())})")
    rest = ~np.isin(labels, shown)
    if rest.any():
        ax.scatter(m.xy[rest, 0], m.xy[rest, 1], s=10, color="0.6", alpha=0.6, linewidths=0,
                   label=f"other ({int(rest.sum())})")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="category (items)", fontsize=8,
              markerscale=1.5)
    ax.set_xticks([])
    ax.set_yticks([])
    name = {"tsne": "t-SNE", "pca": "PCA"}[m.method]
    ax.set_title(title or f"Item vectors, {name} to 2-D, coloured by category ({len(m.xy)} items)")
    return fig


# ----- output -------------------------------------------------------------------
def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write `fig` as a PNG, whole or not at all (a temporary file renamed into place); returns the path.

    Example:
        >>> save_figure(draw_embedding_map(m), "runs/embeddings.png")   # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def _colours(n: int) -> list[tuple[float, ...]]:
    """`n` distinct colours: tab10 up to 10; beyond, tab20's ten strong shades first, then its ten light ones."""
    from matplotlib import colormaps

    if n <= 10:
        return [tuple(colormaps["tab10"](i)) for i in range(n)]
    tab20 = colormaps["tab20"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    return [tuple(tab20(order[i % 20])) for i in range(n)]


__all__ = [
    "METHODS",
    "EmbeddingMap",
    "draw_embedding_map",
    "draw_index_tradeoff",
    "draw_ndcg_curves",
    "embedding_map",
    "save_figure",
]
