"""Does aligning image and text help? Retrieval across modalities, aligned against unaligned.

The vectors are the engine's: per-modality encoder outputs (cached, `evaluation.features`)
fused with `encoders.fusion.Fusion`, and for the aligned side completed by the engine's
own code (`engine.fitted.FittedContent.absorb`, as `Engine.build` does, and
`FittedContent.query` for queries). Retrieval is by inner product, as the index ranks;
precision@k and recall@k depend only on the set of the k best, so the score rescaling of
`Engine.search` (which reorders only within it) does not change them. Exact score ties
(the unaligned engine scores 0 for every item lacking the query's modality) are broken
in a seeded random order, so the unaligned figure there is chance.

Two data sets:

* **Sample catalog**: a seeded third of the items lose their text ("image-only"),
  another third their image ("text-only"), the rest keep both and are what the
  alignment is fitted on. Text queries are the image-only items' own removed texts
  (title + description); image queries the text-only items' own removed images.
* **Fashion-MNIST**: training images get a class-name description as text, test
  images none; queries are the ten descriptions (text -> test images) and the test
  images themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from core.errors import InvalidArgumentError
from encoders.alignment import AlignmentConfig
from encoders.fusion import Fusion, FusionConfig
from engine.fitted import FittedContent
from index import IndexConfig, create_index

from .retrieval import ModalityVectors

FASHION_DESCRIPTIONS = (
    "T-shirt or top, a short-sleeved shirt", "Trousers, long pants", "Pullover, a knitted sweater",
    "Dress, a one-piece garment", "Coat, a warm outer jacket", "Sandal, an open summer shoe",
    "Shirt, a buttoned collared shirt", "Sneaker, a sports shoe", "Bag, a handbag", "Ankle boot, a short boot",
)


@dataclass(frozen=True)
class AlignmentRow:
    """One line of the table: a query setting and a metric, unaligned and aligned (one per predicted weight)."""

    dataset: str
    setting: str
    metric: str
    n_queries: int
    n_candidates: int
    unaligned: float
    aligned: dict[float, float]


@dataclass(frozen=True)
class _Space:
    """Fused vectors of a set of items, raw and completed per predicted weight, and the fitted state."""

    fusion: Fusion
    raw: np.ndarray
    completed: dict[float, np.ndarray]
    fitted: dict[float, FittedContent]
    fit_seconds: float


def fit_space(
    image: np.ndarray, text: np.ndarray, has_image: np.ndarray, has_text: np.ndarray,
    fusion_config: FusionConfig, config: AlignmentConfig, weights: Sequence[float],
) -> _Space:
    """Fuse the items as the engine does, then complete them as `Engine.build` would at each predicted weight.

    Raises:
        InvalidArgumentError: too few items have both modalities to fit an alignment.
    """
    fusion = Fusion(image.shape[1], text.shape[1], fusion_config)
    raw = fusion.fuse(image, text, has_image, has_text)
    ids = [str(i) for i in range(len(raw))]
    completed, fitted, seconds = {}, {}, 0.0
    for w in weights:
        start = time.perf_counter()
        state = FittedContent.start(replace(config, align=True, predicted_weight=float(w)), fusion)
        state, vectors = state.absorb(create_index(fusion.dim, IndexConfig(kind="flat")), ids, raw)  # type: ignore[union-attr]
        seconds = time.perf_counter() - start
        if state.alignment is None:
            raise InvalidArgumentError(f"no alignment could be fitted: {state.note}")
        completed[float(w)], fitted[float(w)] = vectors, state
    return _Space(fusion, raw, completed, fitted, seconds)


def retrieval(
    queries: np.ndarray, candidates: np.ndarray, query_labels: np.ndarray, candidate_labels: np.ndarray,
    k: int, seed: int, own: np.ndarray | None = None, exclude_self: bool = False,
) -> tuple[float, float]:
    """Precision@k (share of the k best candidates sharing the query's label) and recall@k of `own[q]`.

    Args:
        queries: `(m, d)` query vectors; candidates `(n, d)`.
        own: `(m,)` index of each query's own item among the candidates (recall is NaN without it).
        exclude_self: drop candidate `q` from query `q`'s list (queries are the candidates).
        seed: order of exact ties.
    """
    scores = queries.astype(np.float64) @ candidates.astype(np.float64).T
    if exclude_self:
        np.fill_diagonal(scores, -np.inf)
    tiebreak = np.random.default_rng(seed).random(scores.shape)
    order = np.lexsort((tiebreak, -scores), axis=1)[:, :k]
    precision = float((candidate_labels[order] == query_labels[:, None]).mean())
    recall = float("nan") if own is None else float((order == own[:, None]).any(axis=1).mean())
    return precision, recall


def catalog_rows(
    vectors: ModalityVectors, fusion_config: FusionConfig, config: AlignmentConfig, weights: Sequence[float],
    k: int = 10, seed: int = 0, show: Callable[[AlignmentRow], None] | None = None,
) -> tuple[list[AlignmentRow], dict[str, float]]:
    """The sample catalog with a third of the texts and another third of the images removed (seeded)."""
    if vectors.image is None or vectors.text is None:
        raise InvalidArgumentError("the alignment evaluation needs image and text vectors of the catalog")
    both = np.flatnonzero(vectors.has_image & vectors.has_text)
    order = np.random.default_rng(seed).permutation(both)
    third = len(order) // 3
    image_only, text_only, complete = np.sort(order[:third]), np.sort(order[third : 2 * third]), np.sort(order[2 * third :])
    rows = np.concatenate([image_only, text_only, complete])
    labels = vectors.labels[rows]
    role = np.repeat(np.array(["image-only", "text-only", "complete"]), [len(image_only), len(text_only), len(complete)])
    image, text = vectors.image[rows], vectors.text[rows]
    space = fit_space(image, text, role != "text-only", role != "image-only", fusion_config, config, weights)
    out: list[AlignmentRow] = []

    def measure(setting: str, query_rows: np.ndarray, modality: str, among: np.ndarray, with_own: bool,
                exclude_self: bool = False) -> None:
        cand = np.flatnonzero(among)
        own = np.searchsorted(cand, query_rows) if with_own or exclude_self else None
        image_q = image[query_rows] if modality in ("image", "both") else None
        text_q = text[query_rows] if modality in ("text", "both") else None

        def metrics(vecs: np.ndarray, fitted: FittedContent | None) -> tuple[float, float]:
            q = space.fusion.query(image=image_q, text=text_q)
            if fitted is not None:
                q = np.stack([fitted.query(None if image_q is None else image_q[i], None if text_q is None else text_q[i])
                              for i in range(len(query_rows))])
            return retrieval(q, vecs[cand], labels[query_rows], labels[cand], k, seed, own if with_own else None,
                             exclude_self)

        base = metrics(space.raw, None)
        aligned = {w: metrics(space.completed[w], space.fitted[w]) for w in space.completed}
        names = [f"same-category P@{k}"] + ([f"own item recall@{k}"] if with_own else [])
        for j, name in enumerate(names):
            row = AlignmentRow("sample catalog", setting, name, len(query_rows), len(cand), base[j],
                               {w: v[j] for w, v in aligned.items()})
            out.append(row)
            if show is not None:
                show(row)

    io, to, co = (np.flatnonzero(role == r) for r in ("image-only", "text-only", "complete"))
    everything = np.ones(len(rows), bool)
    measure("text query -> image-only items", io, "text", role == "image-only", with_own=True)
    measure("image query -> text-only items", to, "image", role == "text-only", with_own=True)
    measure("text query -> whole catalog", io, "text", everything, with_own=True)
    measure("image query -> whole catalog", to, "image", everything, with_own=True)
    measure("text query -> complete items", co, "text", role == "complete", with_own=False, exclude_self=True)
    measure("image query -> complete items", co, "image", role == "complete", with_own=False, exclude_self=True)
    measure("image+text query -> complete items", co, "both", role == "complete", with_own=False, exclude_self=True)
    _similar_rows(out, "sample catalog", space, labels, k, seed, show, role)
    first = next(iter(space.fitted.values()))
    info = {"image_only": len(io), "text_only": len(to), "complete": len(co), "fit_seconds": space.fit_seconds,
            "alpha_text_to_image": first.alignment.info["text_to_image"]["alpha"],  # type: ignore[union-attr]
            "alpha_image_to_text": first.alignment.info["image_to_text"]["alpha"]}  # type: ignore[union-attr]
    return out, info


def fashion_rows(
    train_image: np.ndarray, train_labels: np.ndarray, test_image: np.ndarray, test_labels: np.ndarray,
    class_text: np.ndarray, fusion_config: FusionConfig, config: AlignmentConfig, weights: Sequence[float],
    k: int = 10, seed: int = 0, show: Callable[[AlignmentRow], None] | None = None,
) -> tuple[list[AlignmentRow], dict[str, float]]:
    """Fashion-MNIST: training images with their class description as text, test images with none."""
    n_train, n_test = len(train_labels), len(test_labels)
    image = np.concatenate([train_image, test_image])
    text = np.concatenate([class_text[train_labels], np.zeros((n_test, class_text.shape[1]), np.float32)])
    labels = np.concatenate([train_labels, test_labels])
    is_test = np.arange(n_train + n_test) >= n_train
    space = fit_space(image, text, np.ones(len(labels), bool), ~is_test, fusion_config, config, weights)
    out: list[AlignmentRow] = []

    def add(setting: str, metric: str, n_queries: int, n_candidates: int, base: float, aligned: dict[float, float]) -> None:
        out.append(AlignmentRow("fashion-mnist", setting, metric, n_queries, n_candidates, base, aligned))
        if show is not None:
            show(out[-1])

    test = np.flatnonzero(is_test)
    classes = np.arange(len(class_text))
    for kk in (k, 100):
        base = retrieval(space.fusion.query(text=class_text), space.raw[test], classes, test_labels, kk, seed)[0]
        aligned = {w: retrieval(np.stack([f.query(None, t) for t in class_text]), space.completed[w][test], classes,
                                test_labels, kk, seed)[0] for w, f in space.fitted.items()}
        add("class description -> test images (no text)", f"same-class P@{kk}", len(classes), n_test, base, aligned)
    queries = space.fusion.query(image=test_image)
    base = retrieval(queries, space.raw[test], test_labels, test_labels, k, seed, exclude_self=True)[0]
    aligned = {w: retrieval(np.stack([f.query(q, None) for q in test_image]), space.completed[w][test], test_labels,
                            test_labels, k, seed, exclude_self=True)[0] for w, f in space.fitted.items()}
    add("test image -> other test images", f"same-class P@{k}", n_test, n_test - 1, base, aligned)
    train = np.flatnonzero(~is_test)
    base = retrieval(queries, space.raw[train], test_labels, train_labels, k, seed)[0]
    aligned = {w: retrieval(np.stack([f.query(q, None) for q in test_image]), space.completed[w][train], test_labels,
                            train_labels, k, seed)[0] for w, f in space.fitted.items()}
    add("test image -> training items (image+text)", f"same-class P@{k}", n_test, n_train, base, aligned)
    first = next(iter(space.fitted.values()))
    info = {"train": n_train, "test": n_test, "fit_seconds": space.fit_seconds,
            "alpha_text_to_image": first.alignment.info["text_to_image"]["alpha"],  # type: ignore[union-attr]
            "alpha_image_to_text": first.alignment.info["image_to_text"]["alpha"]}  # type: ignore[union-attr]
    return out, info


def _similar_rows(out: list[AlignmentRow], dataset: str, space: _Space, labels: np.ndarray, k: int, seed: int,
                  show: Callable[[AlignmentRow], None] | None, role: np.ndarray) -> None:
    """`Engine.similar` over the whole catalog: the k nearest other items' same-label share, per kind of query item."""
    def precision(vectors: np.ndarray, rows: np.ndarray) -> float:
        scores = vectors[rows].astype(np.float64) @ vectors.astype(np.float64).T
        scores[np.arange(len(rows)), rows] = -np.inf  # never the item itself
        tiebreak = np.random.default_rng(seed).random(scores.shape)
        order = np.lexsort((tiebreak, -scores), axis=1)[:, :k]
        return float((labels[order] == labels[rows][:, None]).mean())

    for kind in ("every", *dict.fromkeys(role.tolist())):
        rows = np.arange(len(labels)) if kind == "every" else np.flatnonzero(role == kind)
        aligned = {w: precision(v, rows) for w, v in space.completed.items()}
        out.append(AlignmentRow(dataset, f"similar(item), {kind} item", f"same-category P@{k}", len(rows),
                                len(labels) - 1, precision(space.raw, rows), aligned))
        if show is not None:
            show(out[-1])


def format_row(row: AlignmentRow, weights: Sequence[float] | None = None) -> str:
    """One table line: setting, metric, unaligned, then aligned at each predicted weight."""
    aligned = "  ".join(f"{row.aligned[w]:>7.3f}" for w in (weights or row.aligned))
    return f"{row.dataset:<15} {row.setting:<44} {row.metric:<22} {row.n_queries:>5} {row.unaligned:>9.3f}  {aligned}"


def format_header(weights: Sequence[float]) -> str:
    """The column names of `format_row`."""
    aligned = "  ".join(f"{'p=' + format(w, 'g'):>7}" for w in weights)
    return (f"{'dataset':<15} {'setting':<44} {'metric':<22} {'n_q':>5} {'unaligned':>9}  {aligned}\n"
            f"{'':<15} {'':<44} {'':<22} {'':>5} {'':>9}  aligned, predicted_weight p")
