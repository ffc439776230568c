"""What `Engine.recommend(history=...)` and `similar` answer, pinned against a reference, and the
pieces that keep them cheap at a million items: catalog fields read per row, the candidate
search on one FAISS thread, and `benchmarks/bench_engine.py --items` end to end."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_engine  # noqa: E402
from engine import Catalog, Engine, EngineConfig  # noqa: E402
from engine.config import RecommendConfig  # noqa: E402
from engine.filters import ItemFilter  # noqa: E402
from engine.state import EngineState  # noqa: E402
from engine.tables import plain  # noqa: E402
from index import IndexConfig, create_index  # noqa: E402


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def engine_over(vectors: np.ndarray, index: IndexConfig, recommend: RecommendConfig | None = None) -> Engine:
    n = len(vectors)
    frame = pd.DataFrame({"id": [f"item-{i}" for i in range(n)], "title": [f"Item {i}" for i in range(n)],
                          "category": [f"cat-{i % 4}" for i in range(n)], "price": np.linspace(1, 50, n)})
    config = EngineConfig(index=index, recommend=recommend or RecommendConfig())
    idx = create_index(vectors.shape[1], config.index)
    idx.add(frame["id"].tolist(), vectors)
    return Engine(config, EngineState(Catalog(frame, source="test"), idx))


def reference_content(vectors: np.ndarray, history: list[str], k: int, config: RecommendConfig,
                      allowed: np.ndarray) -> list[tuple[str, float, str]]:
    """The content path by its definition (engine/personalise.py), with exact search: for each of the
    newest distinct history items j, its `per_item` nearest allowed items scored cosine * decay**j;
    an item keeps its best; the k best, with the history item that led to each."""
    recent = list(dict.fromkeys(reversed(history)))[: config.recent_items]
    per_item = max(10, config.n_candidates // len(recent))
    rows = {f"item-{i}": i for i in range(len(vectors))}
    best: dict[int, tuple[float, str]] = {}
    for j, item in enumerate(recent):
        sims = vectors @ vectors[rows[item]]
        sims[~allowed] = -np.inf
        for r in np.argsort(-sims, kind="stable")[:per_item]:
            value = float(sims[r]) * config.recency_decay**j
            if r not in best or value > best[r][0]:
                best[r] = (value, item)
    ranked = sorted(best.items(), key=lambda t: -t[1][0])[:k]
    return [(f"item-{r}", s, b) for r, (s, b) in ranked]


@pytest.mark.parametrize("decay", [0.8, 1.0])
def test_content_recommendations_follow_their_definition(decay: float) -> None:
    vectors = unit_vectors(600, 16)
    config = RecommendConfig(recency_decay=decay, n_candidates=60, recent_items=4)
    engine = engine_over(vectors, IndexConfig(kind="flat"), config)
    rng = np.random.default_rng(1)
    for _ in range(5):
        history = [f"item-{i}" for i in rng.choice(600, 6, replace=False)]
        history.append(history[1])  # a repeat counts once, at its newest place
        allowed = np.ones(600, bool)
        allowed[[int(h.split("-")[1]) for h in history]] = False  # exclude_seen
        got = engine.recommend(history=history, k=10)
        want = reference_content(vectors, history, 10, config, allowed)
        assert [(m.item_id, m.because) for m in got] == [(i, b) for i, _, b in want]
        np.testing.assert_allclose([m.score for m in got], [s for _, s, _ in want], rtol=1e-5)
        assert {m.source for m in got} == {"content"}
        assert all(m.fields == engine.catalog.fields(engine.catalog.row(m.item_id)) for m in got)


def test_filtered_content_recommendations_follow_their_definition() -> None:
    vectors = unit_vectors(400, 12, seed=3)
    config = RecommendConfig(n_candidates=40, recent_items=3)
    engine = engine_over(vectors, IndexConfig(kind="flat"), config)
    history = ["item-5", "item-17", "item-230"]
    allowed = (np.arange(400) % 4 == 2) & (np.linspace(1, 50, 400) <= 30)
    allowed[[5, 17, 230]] = False
    got = engine.recommend(history=history, k=8, filter=ItemFilter(categories=["cat-2"], max_price=30))
    want = reference_content(vectors, history, 8, config, allowed)
    assert [(m.item_id, m.because) for m in got] == [(i, b) for i, _, b in want]
    assert all(m.fields["category"] == "cat-2" and m.fields["price"] <= 30 for m in got)


def test_hnsw_answers_do_not_depend_on_faiss_threads() -> None:
    vectors = unit_vectors(3000, 16, seed=2)
    engine = engine_over(vectors, IndexConfig(kind="hnsw", hnsw_m=8, ef_construction=40))
    rng = np.random.default_rng(4)
    histories = [[f"item-{i}" for i in rng.choice(3000, 10, replace=False)] for _ in range(8)]
    previous = faiss.omp_get_max_threads()
    try:
        answers = {}
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            answers[threads] = [[(m.item_id, m.score, m.because) for m in engine.recommend(history=h, k=10)]
                                for h in histories]
            assert faiss.omp_get_max_threads() == threads  # the engine's one-thread search restores the setting
        assert answers[1] == answers[2]
    finally:
        faiss.omp_set_num_threads(previous)
    flat = engine_over(vectors, IndexConfig(kind="flat"))
    overlap = [len({i for i, _, _ in a} & {m.item_id for m in flat.recommend(history=h, k=10)}) / 10
               for a, h in zip(answers[1], histories)]
    assert np.mean(overlap) >= 0.9  # HNSW candidates, close to the exact answer


def records(catalog: Catalog) -> list[dict]:
    """Every row's fields by the former rule: the table's records, each value made plain."""
    return [{k: plain(v) for k, v in r.items()} for r in catalog.frame.to_dict("records")]


def test_fields_read_like_the_table(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "title": ["Red shoe", "", None, "Kettle"], "price": [1.5, None, "", 3],
        "stock": [2, None, 0, 7], "tags": [["x"], None, [], ["y", "z"]], "score": [np.int64(3), 2.5, None, "n/a"],
    })
    catalog = Catalog(frame, source="test")
    assert [catalog.fields(r) for r in range(4)] == records(catalog)
    assert catalog.fields(1)["price"] is None and catalog.fields(0)["stock"] == 2 and catalog.fields(0)["tags"] == ["x"]
    catalog.fields(0)["title"] = "changed"  # a copy: the catalog is not changed
    assert catalog.fields(0)["title"] == "Red shoe"
    # Each derived catalog is read before the next is derived from it, so its arrays are taken over.
    chain, taken = [catalog], []
    for change in (lambda c: c.concat(Catalog.from_records([{"id": "e", "title": "New", "price": 4, "stock": 1,
                                                             "tags": ["n"], "score": 1}])),
                   lambda c: c.upserted(Catalog.from_records([{"id": "b", "title": "Blue", "price": 2, "stock": 1,
                                                               "tags": [], "score": "x"}])),
                   lambda c: c.without(["a", "d"]),
                   lambda c: c.upserted(Catalog.from_records([{"id": "f", "title": "New column", "colour": "red"}]))):
        chain.append(change(chain[-1]))
        taken.append(chain[-1]._values is not None)  # taken over, before any read of its own
        assert [chain[-1].fields(r) for r in range(len(chain[-1]))] == records(chain[-1])
    assert taken == [True, True, True, False]  # the last adds a column: built anew on its first read
    assert chain[2].fields(chain[2].row("b"))["title"] == "Blue"
    assert chain[3].ids == ["b", "c", "e"] and chain[4].fields(chain[4].row("f"))["stock"] is None
    assert chain[4].fields(chain[4].row("f"))["colour"] == "red" and chain[4].fields(0)["colour"] is None
    catalog.to_parquet(tmp_path / "c.parquet")
    loaded = Catalog.read_parquet(tmp_path / "c.parquet", tmp_path, "saved")
    assert [loaded.fields(r) for r in range(4)] == records(loaded)


@pytest.mark.parametrize("model", ["neumf", "sasrec"])  # a proxy's shortlist rescored, and an exact dot product
def test_large_benchmark_prints_each_row(
    model: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommenders import Recommender

    monkeypatch.setattr(Recommender, "ann_shortlist_items", 5000)  # the inverted-file shortlist, as at 1M items
    code = bench_engine.main(["--items", "6000", "--dim", "16", "--queries", "20", "--model", model])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"built in \d+ s \(catalog [\d.]+ s \+ index [\d.]+ s\): HNSW", out), out
    rows = re.findall(r"^(.+?) +6,000 +([\d.]+) +([\d.]+) +([\d.]+) *([\d.]*)$", out, re.M)
    assert [r[0] for r in rows][:3] == ["similar()", "recommend(history=10 items)",
                                        "  the same, every history item searched"]
    stop = re.search(r"^\(recommend\(history\): ([\d.]+) of the answers equal to searching every history item "
                     r"\(items and because\); ([\d.]+) of 10 history items searched", out, re.M)
    assert stop and float(stop[1]) >= 0.9 and 1 <= float(stop[2]) <= 10, out
    assert len(rows) >= 6 and all(float(p95) >= float(p50) > 0 and float(cpu) > 0 for _, p50, p95, cpu, _ in rows)
    assert 0.5 <= float(rows[0][4]) <= 1.0  # recall@10 of similar() against exact search
    assert re.search(r"one thread / default threads, p50: [\d.]+; load average", out)
    beams = [r for r in rows if r[0].startswith("candidate search, efSearch")]
    assert len(beams) >= 2 and all(0.5 <= float(r[4]) <= 1.0 for r in beams)  # recall of the exact neighbours
    known = re.findall(rf"^recommend +6,000 +{model}, \+(\d+) model(, content searched)? +([\d.]+) +([\d.]+)$",
                       out, re.M)  # a known user: the default, the default searching content too, no model candidates
    assert [(n, also) for n, also, _, _ in known] == [("100", ""), ("100", ", content searched"), ("0", "")], out
    assert all(float(p99) >= float(p50) > 0 for _, _, p50, p99 in known), out
    same = re.findall(rf"^\(recommend, {model}, \+100 model: ([\d.]+) of the model's exact top 10", out, re.M)
    assert len(same) == 1 and float(same[0]) >= 0.9, out  # the inverted file's top 100 hold the exact top 10
    shortlists = re.findall(r"^\(model top 100 items: top_items \((.+?)\) finds ([\d.]+) of the exact top 100", out, re.M)
    assert [name for name, _ in shortlists] == ["inverted file", "pass over every item"], out
    assert all(0.8 <= float(recall) <= 1.0 for _, recall in shortlists), out
    assert re.search(rf"^\({model}: IVF6 inner-product shortlist over 6,000 items: nprobe \d+", out, re.M), out


def near_copies(n_groups: int, copies: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors in tight groups (a copy is ~0.99 cosine to its group's others), shuffled."""
    rng = np.random.default_rng(seed)
    x = np.repeat(unit_vectors(n_groups, dim, seed), copies, axis=0)
    x = x + 0.03 * rng.standard_normal(x.shape).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True))[rng.permutation(len(x))]


@pytest.mark.parametrize(("scale", "exclude_seen"), [(1.0, True), (1.0, False), (2.0, True)])
def test_content_searches_stop_once_no_older_item_can_place(
    scale: float, exclude_seen: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.personalise import Personaliser

    engine = engine_over(scale * near_copies(200, 20, 16), IndexConfig(kind="hnsw", hnsw_m=8, ef_construction=40))
    rng = np.random.default_rng(6)
    histories = [[f"item-{i}" for i in rng.choice(4000, 8, replace=False)] for _ in range(6)]
    searched: list[int] = []
    search = type(engine.index).search

    def counted(self, queries, *args, **kwargs):  # type: ignore[no-untyped-def]
        searched.append(len(np.atleast_2d(queries)))
        return search(self, queries, *args, **kwargs)

    monkeypatch.setattr(type(engine.index), "search", counted)

    def answers() -> list[list[tuple[str, float, str | None]]]:
        return [[(m.item_id, m.score, m.because) for m in engine.recommend(history=h, k=10, exclude_seen=exclude_seen)]
                for h in histories]

    stopped = answers()
    n_stopped = sum(searched)
    # Every history item searched, in one batch: the pool without a k.
    full_pool = Personaliser.content_candidates
    monkeypatch.setattr(Personaliser, "content_candidates", lambda self, history, id_filter, k=None:
                        full_pool(self, history, id_filter))
    searched.clear()
    full = answers()
    # Same items, order and `because`; the scores agree to float rounding (one query's exact
    # re-rank is a matrix-vector product, a batch's an einsum).
    assert [[(i, b) for i, _, b in row] for row in full] == [[(i, b) for i, _, b in row] for row in stopped]
    assert [s for row in full for _, s, _ in row] == pytest.approx([s for row in stopped for _, s, _ in row], rel=1e-6)
    assert sum(searched) == 8 * len(histories)
    if scale == 1.0:  # a copy's 19 others score ~0.99, above 0.8: the newest item's search decides
        assert n_stopped == len(histories), n_stopped
    else:  # vectors longer than 1: a similarity is not bounded by 1, so every item is searched
        assert n_stopped == 8 * len(histories)
