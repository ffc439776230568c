"""The evaluation's figures: the numbers each data step computes, and that the drawing draws exactly those."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import InvalidArgumentError
from evaluation.comparison import Comparison, ComparisonConfig, ModelResult, SplitResult, compare_models
from evaluation.index_tradeoff import TradeoffPoint, format_tradeoff, index_tradeoff
from evaluation.plots import draw_embedding_map, draw_index_tradeoff, draw_ndcg_curves, embedding_map, save_figure
from evaluation.protocols import CUTOFFS, Metrics
from evaluation.report import NdcgCurve, format_ndcg_curves, ndcg_curves
from evaluation.statistics import paired_bootstrap
from recommenders.data import InteractionData


def check_png(path: Path, min_size: tuple[int, int] = (400, 300)) -> None:
    """A whole PNG image of at least `min_size` pixels."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= min_size[0] and image.height >= min_size[1]
    assert not list(path.parent.glob(".*.tmp"))  # written whole, then renamed


def metrics(per_user: dict[int, np.ndarray], k: int = 10) -> Metrics:
    """A test part whose per-user NDCG@K are given (user rows 0..n-1)."""
    n = len(per_user[k])
    return Metrics("full", k, 0.0, float(per_user[k].mean()), 0.0, 0.0, 0.0, n, users=np.arange(n),
                   user_ndcg=per_user[k], user_ndcg_at=per_user)


def hand_made_comparison() -> Comparison:
    """Two models on one split, 40 users: 'good' beats 'popularity' by 0.2 at every K."""
    rng = np.random.default_rng(0)
    base = {c: rng.uniform(0, 0.5, 40) for c in CUTOFFS}
    good = {c: v + 0.2 for c, v in base.items()}
    config = ComparisonConfig(splits=("temporal",), protocols=("full",), seed=3)

    def result(name: str, per_user: dict[int, np.ndarray]) -> ModelResult:
        m = metrics(per_user)
        return ModelResult(name, {}, {"temporal": SplitResult(m, m, None, None, 0.0)})

    return Comparison(config, {"popularity": result("popularity", base), "good": result("good", good)})


def planted_log() -> InteractionData:
    """60 users in two taste groups over 40 items, 12 events each spread over time."""
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for u in range(60):
        group = np.arange(20) if u < 30 else np.arange(20, 40)
        for t, i in enumerate(rng.choice(group, size=12, replace=False)):
            users.append(u), items.append(int(i)), times.append(t * 100 + u)
    return InteractionData.from_arrays(users, items, times, None, n_users=60, n_items=40)


# ----- NDCG@K curves ------------------------------------------------------------------
def test_curves_are_the_means_with_bootstrap_bands_and_paired_differences() -> None:
    comparison = hand_made_comparison()
    curves = {c.model: c for c in ndcg_curves(comparison, "temporal")}
    assert list(curves) == ["popularity", "good"]
    good, base = curves["good"], curves["popularity"]
    per_user = comparison.models["good"].splits["temporal"].test.user_ndcg_at
    reference = comparison.models["popularity"].splits["temporal"].test.user_ndcg_at
    assert good.cutoffs == CUTOFFS and good.n_users == 40 and good.baseline == "popularity"
    for i, c in enumerate(CUTOFFS):
        assert good.ndcg[i] == pytest.approx(per_user[c].mean())
        _, low, high = paired_bootstrap(per_user[c], np.zeros(40), seed=3)
        assert (good.low[i], good.high[i]) == (low, high) and low < good.ndcg[i] < high
        assert (good.diff[i], good.diff_low[i], good.diff_high[i]) == paired_bootstrap(per_user[c], reference[c], seed=3)
        assert good.diff[i] == pytest.approx(0.2)
    assert base.diff is None  # the baseline has no difference to itself
    # At K = k the paired interval is the one the comparison prints.
    assert comparison.versus()["good"] == (good.diff[2], good.diff_low[2], good.diff_high[2])
    # Through JSON and back.
    assert NdcgCurve.from_dict(json.loads(json.dumps(dataclasses.asdict(good)))) == good
    table = format_ndcg_curves(list(curves.values()))
    assert "| model | NDCG@1 | NDCG@5 | NDCG@10 | NDCG@20 | NDCG@50 |" in table
    assert f"| good | {good.ndcg[0]:.4f} [{good.low[0]:.4f}, {good.high[0]:.4f}]" in table


def test_the_protocol_keeps_per_user_ndcg_at_every_cutoff() -> None:
    config = ComparisonConfig(splits=("temporal",), protocols=("full",))
    comparison = compare_models(planted_log(), ["popularity", "itemknn"], config)
    for result in comparison.models.values():
        test = result.splits["temporal"].test
        assert sorted(test.user_ndcg_at) == list(CUTOFFS)
        np.testing.assert_array_equal(test.user_ndcg_at[10], test.user_ndcg)  # same scores, same ranking
        assert test.as_dict()["ndcg@50"] == pytest.approx(test.user_ndcg_at[50].mean())
        assert all(len(v) == test.n_users for v in test.user_ndcg_at.values())
        assert all(((v >= 0) & (v <= 1)).all() for v in test.user_ndcg_at.values())
    curves = ndcg_curves(comparison)
    assert [c.model for c in curves] == ["popularity", "itemknn"]
    assert curves[1].ndcg[2] == pytest.approx(comparison.models["itemknn"].splits["temporal"].test.ndcg)


def test_the_drawn_curves_are_the_computed_ones(tmp_path: Path) -> None:
    curves = ndcg_curves(hand_made_comparison())
    fig = draw_ndcg_curves(curves, "planted")
    left, right = fig.axes[:2]
    for line, curve in zip(left.get_lines(), curves):
        assert line.get_label() == curve.model
        np.testing.assert_array_equal(line.get_xdata(), curve.cutoffs)
        np.testing.assert_array_equal(line.get_ydata(), curve.ndcg)
    # The band of each curve spans its interval at every cut-off.
    for band, curve in zip(left.collections, curves):
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(min(curve.low)) and ys.max() == pytest.approx(max(curve.high))
    drawn = [line for line in right.get_lines() if line.get_label() == "good"]
    np.testing.assert_array_equal(drawn[0].get_ydata(), curves[1].diff)
    path = save_figure(fig, tmp_path / "out" / "ndcg.png")
    check_png(path, (1000, 400))
    # With more models than max_bands, only the baseline's band is drawn on the left.
    crowded = draw_ndcg_curves(curves, max_bands=1).axes[0]
    assert len(crowded.collections) == 1
    assert crowded.collections[0].get_paths()[0].vertices[:, 1].max() == pytest.approx(max(curves[0].high))


def test_no_curves_is_a_clear_error() -> None:
    with pytest.raises(InvalidArgumentError, match="no NDCG@K curves to draw"):
        draw_ndcg_curves([])


# ----- index trade-off --------------------------------------------------------------
def clustered(n: int = 400, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, dim))[rng.integers(0, 8, n)] + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_tradeoff_measures_exact_and_each_distinct_hnsw_setting() -> None:
    points = index_tradeoff(clustered(), k=10, n_queries=60, ef_search=(8, 16, 64, 128), rerank_factors=(1, 10))
    assert points[0].setting == "exact (flat)" and points[0].recall == 1.0 and points[0].ef_search is None
    settings = [(p.ef_search, p.rerank_factor) for p in points[1:]]
    # x1: each ef (8 is widened to k=10); x10: ef below 100 all search with a beam of 100, measured once.
    assert settings == [(10, 1), (16, 1), (64, 1), (128, 1), (100, 10), (128, 10)]
    assert [p.setting for p in points if p.default] == ["hnsw ef=128 x10"]
    for p in points:
        assert 0.0 <= p.recall <= 1.0 and p.qps > 0 and 0 < p.p50_ms <= p.p99_ms
        assert p.qps == pytest.approx(1e3 / p.p50_ms)
    assert points[-1].recall >= 0.95  # a wide beam with re-ranking is close to exact
    table = format_tradeoff(points)
    assert "| hnsw ef=128 x10 (default) |" in table and len(table.splitlines()) == len(points) + 2


def test_tradeoff_rejects_too_few_vectors() -> None:
    with pytest.raises(InvalidArgumentError, match="more than k=10 vectors"):
        index_tradeoff(clustered(10), k=10)


def test_the_drawn_tradeoff_is_the_measured_one(tmp_path: Path) -> None:
    points = [
        TradeoffPoint("exact (flat)", "flat", None, None, 1.0, 900.0, 1.1, 1.5),
        TradeoffPoint("hnsw ef=16 x1", "hnsw", 16, 1, 0.8, 5000.0, 0.2, 0.3),
        TradeoffPoint("hnsw ef=64 x1", "hnsw", 64, 1, 0.9, 3000.0, 0.3, 0.4),
        TradeoffPoint("hnsw ef=128 x10", "hnsw", 128, 10, 0.99, 2000.0, 0.5, 0.6, default=True),
    ]
    fig = draw_index_tradeoff(points, "planted")
    lines = fig.axes[0].get_lines()
    assert list(lines[0].get_xdata()) == [1.0] and list(lines[0].get_ydata()) == [900.0]
    assert list(lines[1].get_xdata()) == [0.8, 0.9] and list(lines[1].get_ydata()) == [5000.0, 3000.0]
    assert list(lines[2].get_xdata()) == [0.99] and list(lines[2].get_ydata()) == [2000.0]
    assert list(lines[3].get_xdata()) == [0.99]  # the default, circled
    check_png(save_figure(fig, tmp_path / "tradeoff.png"), (700, 450))


# ----- 2-D map of item vectors ------------------------------------------------------
def two_groups() -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(1)
    a = rng.normal([4, 0, 0, 0, 0, 0], 0.3, (15, 6))
    b = rng.normal([-4, 0, 0, 0, 0, 0], 0.3, (25, 6))
    return np.vstack([a, b]).astype(np.float32), ["red"] * 15 + ["blue"] * 25


def test_pca_map_is_sklearns_projection_and_separates_planted_groups() -> None:
    from sklearn.decomposition import PCA

    vectors, labels = two_groups()
    m = embedding_map(vectors, labels, method="pca", ids=[f"i{n}" for n in range(40)])
    np.testing.assert_allclose(m.xy, PCA(n_components=2, random_state=0).fit_transform(vectors), rtol=1e-5, atol=1e-5)
    assert m.categories() == ["blue", "red"]  # largest first
    assert np.sign(m.xy[:15, 0]).tolist() == [np.sign(m.xy[0, 0])] * 15
    assert (np.sign(m.xy[15:, 0]) == -np.sign(m.xy[0, 0])).all()


def test_tsne_map_keeps_planted_groups_apart() -> None:
    vectors, labels = two_groups()
    one = embedding_map(vectors, labels, method="tsne", seed=0)
    assert one.xy.shape == (40, 2) and one.method == "tsne" and np.isfinite(one.xy).all()
    red, blue = one.xy[:15].mean(axis=0), one.xy[15:].mean(axis=0)
    spread = max(one.xy[:15].std(axis=0).max(), one.xy[15:].std(axis=0).max())
    assert np.linalg.norm(red - blue) > 2 * spread


def test_embedding_map_rejects_bad_input() -> None:
    vectors, labels = two_groups()
    with pytest.raises(InvalidArgumentError, match="unknown projection 'umap'; valid: tsne, pca"):
        embedding_map(vectors, labels, method="umap")
    with pytest.raises(InvalidArgumentError, match="at least 4 item vectors"):
        embedding_map(vectors[:3], labels[:3])
    with pytest.raises(InvalidArgumentError, match="39 labels for 40 vectors"):
        embedding_map(vectors, labels[:-1])


def test_the_drawn_map_is_the_projection_with_a_legend(tmp_path: Path) -> None:
    vectors, labels = two_groups()
    m = embedding_map(vectors, labels, method="pca")
    fig = draw_embedding_map(m)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), m.xy[15:])  # blue, the larger group, first
    np.testing.assert_allclose(ax.collections[1].get_offsets(), m.xy[:15])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["blue (25)", "red (15)"]
    check_png(save_figure(fig, tmp_path / "map.png"), (800, 600))


def test_many_categories_keep_a_readable_legend() -> None:
    rng = np.random.default_rng(0)
    labels = [f"c{i % 30:02d}" for i in range(120)]
    fig = draw_embedding_map(embedding_map(rng.normal(size=(120, 5)), labels, method="pca"))
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(texts) == 20 and texts[-1] == "other (44)"
