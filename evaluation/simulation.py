"""A simulated interaction log for a catalog, for demos and tests (not real behaviour).

Each simulated user has a taste profile: a Dirichlet draw over the catalog's
categories that puts most mass on two or three of them. Users come back in
sessions over several weeks; within a session they browse one category at a
time, tend to stay in the same subcategory, and favour each category's popular
items (a Zipf law over a fixed random order). Some views become carts and
purchases, which weigh more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.catalog import Catalog

EVENTS = (("view", 1.0), ("cart", 2.0), ("purchase", 4.0))


@dataclass(frozen=True)
class SimulationConfig:
    """Size and shape of the simulated log."""

    n_users: int = 300
    sessions_per_user: tuple[int, int] = (2, 6)
    events_per_session: tuple[int, int] = (3, 9)
    concentration: float = 0.15  # Dirichlet alpha: small -> few favourite categories
    stay_in_subcategory: float = 0.6
    zipf: float = 1.1
    start: int = 1_735_689_600  # 2025-01-01 UTC
    days: int = 90
    seed: int = 0


def simulate_interactions(catalog: Catalog, config: SimulationConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate a log over `catalog`; returns (events, tastes).

    `events` has user_id, item_id, timestamp, event, weight; `tastes` has one row
    per user and one column per category with the user's taste weights.

    Example:
        >>> events, tastes = simulate_interactions(Catalog.from_file("sample_catalog/items.csv"))  # doctest: +SKIP
    """
    config = config or SimulationConfig()
    rng = np.random.default_rng(config.seed)
    frame = catalog.frame
    categories = sorted(frame["category"].unique())
    by_cat = {c: frame.index[frame["category"] == c].to_numpy() for c in categories}
    popularity = {c: _zipf_weights(rng.permutation(len(rows)), config.zipf) for c, rows in by_cat.items()}
    subcats = frame["subcategory"].to_numpy() if "subcategory" in frame.columns else np.zeros(len(frame))
    ids = frame["id"].to_numpy()
    rows_out: list[tuple[str, str, int, str, float]] = []
    tastes = rng.dirichlet(np.full(len(categories), config.concentration), size=config.n_users)
    for u in range(config.n_users):
        user = f"user-{u:04d}"
        n_sessions = rng.integers(config.sessions_per_user[0], config.sessions_per_user[1] + 1)
        starts = np.sort(rng.uniform(0, config.days * 86_400, n_sessions)).astype(np.int64) + config.start
        for t0 in starts:
            t = int(t0)
            item = None
            for _ in range(rng.integers(config.events_per_session[0], config.events_per_session[1] + 1)):
                item = _next_item(rng, item, tastes[u], categories, by_cat, popularity, subcats, config)
                kind = rng.choice(len(EVENTS), p=[0.8, 0.13, 0.07])
                rows_out.append((user, str(ids[item]), t, EVENTS[kind][0], EVENTS[kind][1]))
                t += int(rng.integers(20, 300))
    events = pd.DataFrame(rows_out, columns=["user_id", "item_id", "timestamp", "event", "weight"])
    taste_frame = pd.DataFrame(tastes.round(3), columns=categories)
    taste_frame.insert(0, "user_id", [f"user-{u:04d}" for u in range(config.n_users)])
    return events.sort_values(["timestamp", "user_id"], kind="stable").reset_index(drop=True), taste_frame


def _zipf_weights(order: np.ndarray, exponent: float) -> np.ndarray:
    weights = 1.0 / (order + 1.0) ** exponent
    return weights / weights.sum()


def _next_item(
    rng: np.random.Generator,
    previous: int | None,
    taste: np.ndarray,
    categories: list[str],
    by_cat: dict[str, np.ndarray],
    popularity: dict[str, np.ndarray],
    subcats: np.ndarray,
    config: SimulationConfig,
) -> int:
    if previous is not None and rng.random() < config.stay_in_subcategory:
        same = [c for c in categories if previous in by_cat[c]][0]
        rows = by_cat[same]
        mask = subcats[rows] == subcats[previous]
        p = popularity[same] * mask
        if p.sum() > 0:
            return int(rng.choice(rows, p=p / p.sum()))
    cat = categories[rng.choice(len(categories), p=taste)]
    return int(rng.choice(by_cat[cat], p=popularity[cat]))
