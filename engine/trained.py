"""A recommender trained on a shop's log, with what serving needs beside it.

`TrainedModel` holds the fitted model, the raw-id vocabularies that map user and
item ids to the model's rows, each user's history (oldest first), the items by
popularity, and a fixed reference sample of the model's items that puts the
model's raw scores on one scale (see `share_below`). It is immutable once built;
`engine.personalise.Personaliser` reads it to answer requests.

Ids are looked up by the catalog's rule (`engine.tables.clean_id`): `user_row(42)`
finds user "42" of the log, and " u1 " finds "u1".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidArgumentError
from core.persistence import PERSONALISER_KIND, DamagedModelError, atomic_dir, load_folder, write_manifest
from index import VectorIndex
from recommenders import Recommender, create_model, load_model
from recommenders.splits import leave_last_out

from .interactions import Interactions
from .tables import clean_id

_PARTS = ["model", "users.npy", "items.npy", "history.parquet"]
# Model scores are mapped to [0, 1] against this many of the model's items (fewer when it has fewer):
# enough for a resolution of 0.001, and one extra scoring of 1,000 items per request (~0.1 ms, see the note).
REFERENCE_ITEMS = 1000
REFERENCE_SEED = 0


class TrainedModel:
    """A fitted model plus its id vocabularies, the users' histories and popularity.

    Attributes:
        fit_report: one line on how the fit went, e.g. "neumf: kept epoch 8 of 12
            (validation NDCG@10 0.1530); 60 users x 10 items"; saved with the model. After
            `model="auto"`, that line is followed by the selection table.
        selection: what `model="auto"` tried (`engine.selection.SelectionReport.to_dict()`),
            saved with the model; None for a named model.
        reference_rows: the fixed sample of item rows whose scores `share_below` compares with
            (up to `REFERENCE_ITEMS`, drawn with a fixed seed, so a loaded model has the same).

    Example:
        >>> trained = TrainedModel.fit(index, Interactions.from_file("log.csv"), "neumf")  # doctest: +SKIP
        >>> trained.history_of("user-1")                                                   # doctest: +SKIP
        ['sku-3', 'sku-9']
    """

    def __init__(
        self,
        model: Recommender,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        history: pd.DataFrame,
        fit_report: str = "",
        selection: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.fit_report = fit_report
        self.selection = dict(selection) if selection else None
        self.user_ids = list(user_ids)
        self.item_ids = list(item_ids)
        self._user_rows = {u: r for r, u in enumerate(self.user_ids)}
        self._item_rows = {i: r for r, i in enumerate(self.item_ids)}
        self.history = history.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
        self._histories = {u: g["item_id"].tolist() for u, g in self.history.groupby("user_id", sort=False)}
        self.popular: list[str] = self.history["item_id"].value_counts().index.tolist()
        n_items = len(self.item_ids)
        sample = np.random.default_rng(REFERENCE_SEED).choice(n_items, min(n_items, REFERENCE_ITEMS), replace=False)
        self.reference_rows = np.sort(sample).astype(np.int64)

    @classmethod
    def fit(
        cls,
        index: VectorIndex,
        interactions: Interactions,
        model: str,
        on_unknown: str = "raise",
        show_progress: bool = True,
        *,
        whole_log: bool = False,
        **overrides: Any,
    ) -> TrainedModel:
        """Train `model` on the log over the index's items.

        By default each user with 3 or more events has their latest event held out, for early
        stopping (`recommenders.splits.leave_last_out`: the latest event validates, all the
        others train). With `whole_log=True` every event trains and nothing validates: a model
        that trains in epochs runs `epochs` of them (`fit(model="auto")` passes the count its
        selection kept).
        """
        if not isinstance(interactions, Interactions):
            raise InvalidArgumentError(f"fit needs an Interactions log, got {type(interactions).__name__}")
        item_ids = list(index.ids)
        log = interactions.validate_items(item_ids, on_unknown)  # type: ignore[arg-type]
        user_ids = log.user_vocabulary()
        data = log.to_data(user_ids, item_ids)
        recommender = create_model(model, show_progress=show_progress, **overrides)
        features = index.vectors(item_ids) if recommender.uses_item_features else None
        if whole_log:
            recommender.fit(data, None, item_features=features)
        else:
            split = leave_last_out(data)  # its `test` is each user's latest event: here the early-stopping one
            recommender.fit(split.seen(), split.test if len(split.test) else None, item_features=features)
        shape = f"{len(user_ids):,} users x {len(item_ids):,} items"
        how = "; every event trained, none held out" if whole_log else ""
        report = f"{recommender.name}: {recommender.training.summary()}{how}; {shape}"
        return cls(recommender, user_ids, item_ids, log.frame[["user_id", "item_id", "timestamp"]], report)

    # ----- lookups ------------------------------------------------------------
    def user_row(self, user_id: str | int | None) -> int | None:
        """The model's row of a user it was trained on (id looked up by `clean_id`), else None."""
        return self._user_rows.get(clean_id(user_id, "user id")) if user_id is not None else None

    def item_row(self, item_id: str) -> int | None:
        """The model's row of an item it was trained with, else None (items added later have none)."""
        return self._item_rows.get(item_id)

    def history_of(self, user_id: str | int) -> list[str]:
        """A known user's items in the training log, oldest first; [] for anyone else."""
        return list(self._histories.get(clean_id(user_id, "user id"), []))

    # ----- persistence --------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write the model, vocabularies and histories to `folder` atomically."""
        with atomic_dir(folder) as tmp:
            self.model.save(tmp / "model")
            np.save(tmp / "users.npy", np.array(self.user_ids, dtype=str))
            np.save(tmp / "items.npy", np.array(self.item_ids, dtype=str))
            self.history.to_parquet(tmp / "history.parquet")
            write_manifest(
                tmp, PERSONALISER_KIND, model=self.model.name, fit_report=self.fit_report, selection=self.selection,
                parts=_PARTS,
            )

    @classmethod
    def load(cls, folder: str | Path) -> TrainedModel:
        """Inverse of `save`: reads the current version, checked (see `core.persistence.load_folder`).

        Raises:
            DamagedModelError: a part is damaged or the parts disagree, naming it.
        """
        return load_folder(folder, PERSONALISER_KIND, cls._from_parts)

    @classmethod
    def _from_parts(cls, folder: Path, manifest: Mapping[str, Any]) -> TrainedModel:
        model = load_model(folder / "model")
        users = _vocabulary(folder / "users.npy", model.n_users)
        items = _vocabulary(folder / "items.npy", model.n_items)
        history = pd.read_parquet(folder / "history.parquet")
        columns = {"user_id", "item_id", "timestamp"}
        if not columns <= set(history.columns):
            raise DamagedModelError(
                f"'{folder / 'history.parquet'}' needs columns {sorted(columns)}; it has {list(history.columns)}"
            )
        for column, vocabulary in (("user_id", users), ("item_id", items)):
            unknown = set(history[column]) - set(vocabulary)
            if unknown:
                raise DamagedModelError(
                    f"'{folder / 'history.parquet'}' names {column} {sorted(map(str, unknown))[0]!r}, "
                    f"which the model's vocabulary does not hold"
                )
        selection = manifest.get("selection")
        return cls(model, users, items, history, str(manifest.get("fit_report", "")), selection or None)


def share_below(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Raw model scores as the share of the reference scores below each (ties count half), in [0, 1].

    `reference` holds the same model's scores, for the same user or history, of a
    `TrainedModel.reference_rows` sample. The map never reverses an order: a score
    above every reference score gives 1.0, one below all gives 0.0.

    Example:
        >>> share_below(np.array([0.5, 3.0, -1.0]), np.array([0.0, 0.5, 1.0, 2.0])).tolist()
        [0.375, 1.0, 0.0]
    """
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    values = np.asarray(scores, dtype=np.float64)
    if not len(ref):
        return np.full(values.shape, 0.5)
    below = np.searchsorted(ref, values, "left") + np.searchsorted(ref, values, "right")
    return below / (2.0 * len(ref))


def _vocabulary(path: Path, size: int) -> list[str]:
    """A saved id vocabulary: unique strings, as many as the model has rows."""
    ids = np.load(path, allow_pickle=False)
    if ids.ndim != 1 or ids.dtype.kind != "U" or len(ids) != size:
        raise DamagedModelError(f"'{path}' holds {ids.dtype} of shape {ids.shape}; expected {size:,} ids (text)")
    vocabulary = ids.tolist()
    if len(set(vocabulary)) != len(vocabulary):
        raise DamagedModelError(f"'{path}' holds an id more than once")
    return vocabulary
