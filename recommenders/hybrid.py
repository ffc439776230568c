"""Hybrid: a collaborative-filtering model's scores blended with content similarity to the user's history.

Two parts score every (user, item) pair:

* the CF part: the scores of a base model from the registry (`base`; EASE by default, strong,
  closed form and fast; `fit(model="auto")` uses the best CF model it found instead),
  trained on the interactions like any model;
* the content part: the cosine between the item's content vector and the user's
  profile, the recency-weighted mean of their history items' vectors (the i-th newest
  item weighs `recency_decay ** i`; 1.0 gives the plain mean).

The two are on different scales (EASE's weights, ALS's dot products, cosines in
[-1, 1]), so each is first z-scored per user: minus its mean, over its standard
deviation, both taken over a fixed reference sample of the catalogue (up to
`REFERENCE_ITEMS` item rows drawn with a fixed seed). The statistics do not depend on
which items a call asks for, so scoring a candidate list gives exactly the full scores
of those items. A z-score rather than a rank-based map: a rank (or share of items below)
saturates at the top, where a handful of items all sit near 1.0, and the blend would lose
the CF part's order exactly where the top 10 is decided. The blend is then

    score = (1 - weight) * z_cf + weight * z_content,

and with `weight=0` the model returns the base's own scores (the same ranking), so a
weight chosen on validation from a grid holding 0 is never worse there than the base.

What the content part buys: an item with no training interactions (a cold item, which
has a content vector only) has no CF evidence, so its z_cf is set to 0, the user's mean,
and its content similarity alone lifts or sinks it; a user with a short history gets
the items near what they did see. A user or visitor with no history has a zero profile:
their content part is 0 and the CF part alone ranks.

Over a large catalogue (`ann_shortlist_items`) a hybrid whose base scores by a dot product
finds its top items in the inverted file, as the base would: for one user the blend is a
positive multiple of one dot product, plus a constant that does not change the order.
With `a = (1 - weight) / sd_cf` and `c = weight / sd_content` (the user's z-score scales),

    query  [a q, a, c p, a mean_cf]  .  item [warm v, warm b, f, cold]

where `q . v + b` is the base's score, `p . f` the content cosine and warm / cold say
whether the item had training events: a warm item gets `a (q . v + b) + c p . f`, a cold one
`c p . f + a mean_cf`, and both equal the blend plus `a mean_cf + c mean_content`.
The file copies the content vectors. Wider than `FILE_MAX_CONTENT_DIM` (fused image + text
vectors are 1,664-d: ~7 GB at 1M items), it holds their projection on the content's
`REDUCED_CONTENT_DIM` main directions instead (p . f ~ (P p) . (P f)): a proxy of the blend,
whose best `shortlist_factor * n` items are then scored exactly, as NeuMF's proxy shortlist is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from core.errors import InvalidArgumentError
from core.ranking import top_k

from .base import Recommender
from .config import ModelConfig
from .data import InteractionData
from .registry import MODELS, model_class

# z-score statistics are taken over this many item rows (all of them when the catalogue is smaller).
REFERENCE_ITEMS = 1000
REFERENCE_SEED = 0
# The inverted file's rows hold the content vectors up to this width, else their projection on the
# content's main directions (wider rows would make it several GB at 1M items).
FILE_MAX_CONTENT_DIM = 512
REDUCED_CONTENT_DIM = 128
BASIS_SAMPLE_ROWS = 20_000  # feature rows the main directions are found from
_BASE_STATE = "base."


@dataclass(frozen=True)
class HybridConfig(ModelConfig):
    """Hybrid settings.

    Attributes:
        base: registry name of the CF model whose scores are blended (not "hybrid" itself).
        base_config: fields of the base model's config that differ from its defaults, e.g. {"l2": 200.0}.
            The hybrid's own `seed` and `show_progress` are passed on unless named here.
        weight: share of the content part in the blend, in [0, 1]; 0 is the base alone.
        recency_decay: the i-th newest history item weighs decay**i in the user's profile, in (0, 1].
    """

    base: str = "ease"
    base_config: dict[str, Any] = field(default_factory=dict)
    weight: float = 0.25
    recency_decay: float = 0.9

    def __post_init__(self) -> None:
        if not isinstance(self.base, str) or self.base not in MODELS or self.base == "hybrid":
            valid = ", ".join(sorted(set(MODELS) - {"hybrid"}))
            raise InvalidArgumentError(f"Hybrid base must be a model other than 'hybrid' ({valid}), got {self.base!r}")
        if not isinstance(self.base_config, dict):
            raise InvalidArgumentError(f"Hybrid base_config must be a dict of config fields, got {self.base_config!r}")
        fields = {f.name for f in dataclasses.fields(model_class(self.base).config_class)}
        unknown = sorted(set(self.base_config) - fields)
        if unknown:
            raise InvalidArgumentError(f"Hybrid base_config has fields {unknown} that {self.base!r} does not have")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not 0.0 <= self.weight <= 1.0:
            raise InvalidArgumentError(f"Hybrid weight must lie in [0, 1], got {self.weight!r}")
        decay = self.recency_decay
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay <= 1.0:
            raise InvalidArgumentError(f"Hybrid recency_decay must lie in (0, 1], got {decay!r}")


class Hybrid(Recommender):
    """A CF model's scores blended with content similarity to the user's history, both z-scored per user.

    Example:
        >>> d = InteractionData.from_arrays([0, 0, 1, 1], [0, 1, 0, 1], n_items=3)
        >>> f = np.array([[1.0, 0.0], [0.9, 0.1], [0.95, 0.05]], dtype=np.float32)  # item 2: no clicks, like 0 and 1
        >>> m = Hybrid(show_progress=False, weight=0.5, base_config={"l2": 1.0}).fit(d, item_features=f)
        >>> m.score([0]).shape
        (1, 3)
    """

    name = "hybrid"
    config_class = HybridConfig
    uses_item_features: ClassVar[bool] = True
    # Declared False here; each hybrid takes its base's value (`__init__`): with a base that scores
    # sessions natively (EASE, the sequence models) the engine ranks a visitor's history with it.
    scores_sessions: ClassVar[bool] = False
    # `fit(model="auto")` chooses the weight on validation around the best CF model it found;
    # `evaluation`'s tune searches it around the configured base.
    tuning_grid: ClassVar[dict[str, list[Any]] | None] = {"weight": [0.0, 0.1, 0.25, 0.5, 0.75]}
    shortlist_factor: ClassVar[int] = 10  # with reduced content: the proxy's best 10 n are scored exactly
    config: HybridConfig

    def __init__(self, config: HybridConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        base_class = model_class(self.config.base)
        self.scores_sessions = base_class.scores_sessions  # type: ignore[misc]
        self.dot_product_scores = base_class.dot_product_scores  # type: ignore[misc]
        self.base: Recommender | None = None
        self.features = np.zeros((0, 0), dtype=np.float32)
        self.profiles = np.zeros((0, 0), dtype=np.float32)
        self.cold = np.zeros(0, dtype=bool)  # items without training events
        self._basis: np.ndarray | None = None  # the content's main directions (`_content_basis`)
        self._reference = np.zeros(0, dtype=np.int64)  # `reference_rows`, and their content vectors:
        self._reference_content = np.zeros((0, 0), dtype=np.float32)  # both fixed from a fit or load on

    # ----- training -------------------------------------------------------
    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> Hybrid:
        """Train the base model on `train` (early stopping on `validation` as it does), then build the profiles."""
        features = _check_features(item_features, train.n_items)
        base = self._new_base()
        base.fit(train, validation, item_features=features if base.uses_item_features else None)
        return self._attach(base, train, features)

    @classmethod
    def around(
        cls, base: Recommender, train: InteractionData, item_features: np.ndarray, **overrides: Any
    ) -> Hybrid:
        """A hybrid over a base model already fitted on `train`, without training it again.

        `fit(model="auto")` uses this to choose the weight for the best CF model it trained.

        Example:
            >>> hybrid = Hybrid.around(ease, train, vectors, weight=0.5, show_progress=False)  # doctest: +SKIP
        """
        model = cls(base=base.name, **overrides)
        return model._attach(base, train, _check_features(item_features, train.n_items))

    def _new_base(self) -> Recommender:
        cfg = self.config
        settings = {"seed": cfg.seed, "show_progress": cfg.show_progress, **cfg.base_config}
        return model_class(cfg.base)(**settings)

    def _attach(self, base: Recommender, train: InteractionData, features: np.ndarray) -> Hybrid:
        """Keep the fitted base, the normalised features and each user's recency-weighted profile."""
        if (base.n_users, base.n_items) != (train.n_users, train.n_items):
            raise InvalidArgumentError(
                f"the base {base.name!r} was fitted on {base.n_users} x {base.n_items}, "
                f"not on this log's {train.n_users} x {train.n_items}"
            )
        self._remember(train)
        self.base, self.training = base, base.training
        self.features = _normalise(features)
        self.profiles = self._profiles(train.sequences())
        self._content_changed()
        return self

    def _profiles(self, histories: list[np.ndarray]) -> np.ndarray:
        """L2-normalised recency-weighted mean content vector of each history (oldest first); zero when empty."""
        out = np.zeros((len(histories), self.features.shape[1]), dtype=np.float32)
        decay = float(self.config.recency_decay)
        for row, items in enumerate(histories):
            if len(items):
                weights = decay ** np.arange(len(items) - 1, -1, -1, dtype=np.float64)
                out[row] = (weights[:, None] * self.features[np.asarray(items)]).sum(axis=0)
        return _normalise(out)

    # ----- scoring --------------------------------------------------------
    def reference_rows(self) -> np.ndarray:
        """The fixed item rows whose scores give each user's z-score statistics."""
        return self._reference

    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        assert self.base is not None
        base = self.base
        return self._blend(lambda rows: base.score(users, rows), self.profiles[users], items)

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        assert self.base is not None
        base = self.base
        return self._blend(lambda rows: base.score_history(histories, rows), self._profiles(histories), items)

    def _blend(self, cf: Any, profiles: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """(1 - weight) z_cf + weight z_content for `items` (all when None); the base's scores when weight is 0."""
        weight = float(self.config.weight)
        if weight == 0.0:
            return np.asarray(cf(items), dtype=np.float64)
        columns = np.arange(self.n_items) if items is None else items
        ref = self.reference_rows()
        if items is None:
            cf_scores = np.asarray(cf(None), dtype=np.float64)
            cf_ref = cf_scores[:, ref]
        else:  # one call of the base for both (a sequence model reads the history once)
            both = np.asarray(cf(np.concatenate([items, ref])), dtype=np.float64)
            cf_scores, cf_ref = both[:, : len(items)], both[:, len(items) :]
        z_cf = _zscore(cf_scores, cf_ref)
        z_cf[:, self.cold[columns]] = 0.0  # no CF evidence: neutral, the content part decides
        content = profiles @ self.features[columns].T
        z_content = _zscore(content, profiles @ self._reference_content.T)
        return (1.0 - weight) * z_cf + weight * z_content

    # ----- the blend as one dot product (see the module docstring) ----------
    def _top_items(self, user: np.ndarray | None, history: list[np.ndarray] | None, n: int) -> np.ndarray:
        """The base class's search, or with reduced content: the proxy's best `shortlist_factor * n`
        from the file, scored exactly (every item when the file finds too few)."""
        if not self._searches_inverted_file() or not self._content_reduced() or float(self.config.weight) == 0.0:
            return super()._top_items(user, history, n)  # the file (or the pass) gives the exact top itself
        parts = self._blend_parts(user, history)
        query = None if parts is None else self._proxy(*parts)
        found = None if query is None else self._inner_product_shortlist().search(query, self.shortlist_factor * n)[0]
        rows = None if found is None else found[found >= 0]
        if parts is None or rows is None or len(rows) < n:  # no query, or too few found: score every item
            scores = self._score_users(user, None) if user is not None else self._score_histories(history or [], None)
            return top_k(np.asarray(scores, dtype=np.float32), n)[0][0]
        # The blend's exact order on the shortlist, from the same parts (no second call of the base).
        exact = np.hstack(parts) @ self._blend_items(rows, self.features[rows]).T
        return rows[top_k(np.asarray(exact, dtype=np.float32), n)[0][0]]

    def _content_reduced(self) -> bool:
        """Whether the file holds the content vectors' projection (`_content_basis`) instead of them."""
        return self.features.shape[1] > FILE_MAX_CONTENT_DIM

    def _content_basis(self) -> np.ndarray | None:
        """(dim, REDUCED_CONTENT_DIM): the main directions of the content vectors (their uncentred second
        moment, on a seeded sample), or None when the file holds them whole. Computed when first needed."""
        if not self._content_reduced():
            return None
        if self._basis is None:
            rng = np.random.default_rng(self.config.seed)
            rows = rng.choice(self.n_items, min(self.n_items, BASIS_SAMPLE_ROWS), replace=False)
            sample = self.features[np.sort(rows)]
            _, directions = np.linalg.eigh(sample.T.astype(np.float64) @ sample)  # ascending eigenvalues
            self._basis = np.ascontiguousarray(directions[:, ::-1][:, :REDUCED_CONTENT_DIM], dtype=np.float32)
        return self._basis

    def _query_vectors(self, users: np.ndarray | None, histories: list[np.ndarray] | None) -> np.ndarray | None:
        assert self.base is not None
        if float(self.config.weight) == 0.0:
            return self.base._query_vectors(users, histories)
        parts = self._blend_parts(users, histories)
        return None if parts is None else self._proxy(*parts)

    def _blend_parts(
        self, users: np.ndarray | None, histories: list[np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Per query: `[a q, a]` (against `[v, b]`), `c p` (against the content) and `a mean_cf` (against
        the cold flag), the blend's dot product up to a constant; None where the base has no query."""
        assert self.base is not None
        base, weight = self.base, float(self.config.weight)
        queries = base._query_vectors(users, histories)
        if queries is None:
            return None
        profiles = self.profiles[users] if users is not None else self._profiles(histories or [])
        mean_cf, sd_cf = _stats(np.asarray(base._dot_scores(queries, self.reference_rows()), dtype=np.float64))
        _, sd_content = _stats(np.asarray(profiles @ self._reference_content.T, dtype=np.float64))
        a, c = (1.0 - weight) / sd_cf, weight / sd_content
        f32 = np.float32
        return np.hstack([a * queries, a]).astype(f32), (c * profiles).astype(f32), (a * mean_cf).astype(f32)

    def _proxy(self, cf_query: np.ndarray, content_query: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """The file's query from `_blend_parts`: the content part projected when the file holds it reduced."""
        basis = self._content_basis()
        content = content_query if basis is None else content_query @ basis
        return np.hstack([cf_query, content, offset]).astype(np.float32)

    def _item_factors(self) -> tuple[np.ndarray, np.ndarray | None]:
        assert self.base is not None
        if float(self.config.weight) == 0.0:
            return self.base._item_factors()
        basis = self._content_basis()
        return self._blend_items(None, self.features if basis is None else self.features @ basis), None

    def _blend_items(self, rows: np.ndarray | None, content: np.ndarray) -> np.ndarray:
        """`[warm v, warm b, content, cold]` for every item (`rows` None) or the given rows: the item side of
        the blend's dot product (see the module docstring), with `content` the rows' content part."""
        assert self.base is not None
        vectors, bias = self.base._item_factors()
        picked = slice(None) if rows is None else rows
        cold = self.cold[picked]
        warm = (~cold).astype(np.float32)[:, None]
        bias = np.zeros(len(cold), np.float32) if bias is None else np.asarray(bias)[picked]
        return np.hstack([warm * vectors[picked], warm * bias[:, None], content, cold[:, None]]).astype(np.float32)

    def _training_histories(self, users: np.ndarray) -> list[np.ndarray]:
        assert self.base is not None
        return self.base._training_histories(users)

    # ----- persistence ----------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        assert self.base is not None
        state = {_BASE_STATE + k: v for k, v in self.base._state().items()}
        return {**state, "features": self.features, "profiles": self.profiles}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        features, profiles = arrays.get("features"), arrays.get("profiles")
        if features is None or profiles is None or features.ndim != 2 or features.shape[0] != self.n_items:
            raise InvalidArgumentError(f"hybrid state needs features of {self.n_items} rows and profiles")
        if profiles.shape != (self.n_users, features.shape[1]):
            raise InvalidArgumentError(
                f"hybrid profiles must have shape ({self.n_users}, {features.shape[1]}), got {profiles.shape}"
            )
        base = self._new_base()
        base.n_users, base.n_items, base.train_matrix = self.n_users, self.n_items, self.train_matrix
        base._load_state({k[len(_BASE_STATE):]: v for k, v in arrays.items() if k.startswith(_BASE_STATE)})
        self.base, self.features, self.profiles = base, features, profiles
        self._content_changed()

    def _content_changed(self) -> None:
        """After a fit or a load: what follows from the items (cold flags, the reference rows and their
        content, which every request reads) and the file's size (its proxy's shortlist if reduced)."""
        self.cold = _without_events(self.train_matrix)
        self._basis = None
        if self.n_items <= REFERENCE_ITEMS:
            self._reference = np.arange(self.n_items)
        else:
            rng = np.random.default_rng(REFERENCE_SEED)
            self._reference = np.sort(rng.choice(self.n_items, REFERENCE_ITEMS, replace=False))
        self._reference_content = np.ascontiguousarray(self.features[self._reference])
        self.inverted_file_m = self.shortlist_factor * 100 if self._content_reduced() else 100  # type: ignore[misc]


def _zscore(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each row minus its reference mean, over its reference standard deviation (1 when that is 0).

    Only finite reference scores count (a base may score masked items -inf), so one such item
    cannot turn a user's whole row into NaN.
    """
    mean, std = _stats(reference)
    return (scores - mean) / std


def _without_events(train_matrix: Any) -> np.ndarray:
    """Whether each item (column) had no training events."""
    return np.asarray(train_matrix.sum(axis=0)).ravel() == 0


def _stats(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's mean and standard deviation (1 when that is 0) over its finite scores, as (b, 1) columns."""
    finite = np.isfinite(reference)
    counts = np.maximum(finite.sum(axis=1, keepdims=True), 1)
    mean = np.where(finite, reference, 0.0).sum(axis=1, keepdims=True) / counts
    std = np.sqrt((np.where(finite, reference - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / counts)
    return mean, np.where(std > 0, std, 1.0)


def _check_features(item_features: np.ndarray | None, n_items: int) -> np.ndarray:
    if item_features is None:
        raise InvalidArgumentError("hybrid needs item_features, an (n_items, dim) array of item content vectors")
    feats = np.asarray(item_features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] != n_items:
        shape = feats.shape
        raise InvalidArgumentError(f"item_features must have shape ({n_items}, dim), one row per item, got {shape}")
    if not np.isfinite(feats).all():
        raise InvalidArgumentError("item_features contain NaN or infinite values")
    return feats


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norms > 0, norms, 1.0)).astype(np.float32)
