"""Interactions recorded while serving, kept with the model until the next fit.

A shop's site posts what visitors do (`POST /events`, `Engine.log_events`). The
trained model does not change per event (training takes minutes); instead each
user's recorded events join their history at once, so `recommend(user)` reads
them (content candidates, session models), and a user the model never saw gets
recommendations from their own clicks rather than popularity. The log is saved
in the model folder (`events.parquet`) and `shopvec fit DIR` trains on it.
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import pandas as pd

from core.errors import InteractionsError, InvalidArgumentError, UnknownItemError

from .interactions import Interactions
from .tables import records_frame

COLUMNS = ("user_id", "item_id", "timestamp", "weight")


class EventLog:
    """An append-only log of (user_id, item_id, timestamp, weight); never changed once built.

    `appended` returns a new log, so an `EngineState` holding one stays a snapshot.

    Example:
        >>> log = EventLog().appended(Interactions(pd.DataFrame(
        ...     {"user_id": ["u1", "u1"], "item_id": ["a", "b"], "timestamp": [2, 1]})))
        >>> log.history_of("u1"), len(log)
        (['b', 'a'], 2)
    """

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        if frame is None:
            frame = pd.DataFrame({c: pd.Series(dtype=object if c.endswith("_id") else float) for c in COLUMNS})
        self._frame = frame.loc[:, list(COLUMNS)].reset_index(drop=True)
        self._histories = MappingProxyType(_histories(self._frame))

    def appended(self, events: Interactions) -> EventLog:
        """A new log with `events` after this one's (each batch in time order)."""
        new = events.frame.sort_values("timestamp", kind="stable").loc[:, list(COLUMNS)]
        log = EventLog.__new__(EventLog)
        log._frame = pd.concat([self._frame, new], ignore_index=True) if len(self._frame) else new.reset_index(drop=True)
        histories = dict(self._histories)
        for user, items in _histories(new).items():
            histories[user] = histories.get(user, ()) + items
        log._histories = MappingProxyType(histories)
        return log

    def history_of(self, user_id: str) -> list[str]:
        """The items a user's recorded events name, oldest first; [] for a user with none."""
        return list(self._histories.get(user_id, ()))

    @property
    def users(self) -> list[str]:
        """The users with recorded events, in the order they first appear."""
        return list(self._histories)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._histories

    def __len__(self) -> int:
        return len(self._frame)

    @property
    def frame(self) -> pd.DataFrame:
        """A copy of the log as a table with columns user_id, item_id, timestamp (unix seconds), weight."""
        return self._frame.copy()

    def to_interactions(self) -> Interactions:
        """The log as `Interactions`, to train on; raises InteractionsError when it is empty."""
        return Interactions(self._frame)


def _histories(frame: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """user -> items in the frame's row order."""
    if not len(frame):
        return {}
    groups = frame.groupby("user_id", sort=False)["item_id"]
    return {str(user): tuple(map(str, items)) for user, items in groups}


def as_events(events: Interactions | pd.DataFrame | Iterable[Mapping[str, Any]], now: int | None = None) -> Interactions | None:
    """Events as `Interactions`: a missing timestamp is `now` (default: the current unix second), a missing weight 1.

    Returns None when there are no events.

    Raises:
        InvalidArgumentError: `events` is not Interactions, a DataFrame or a list of dicts.
        InteractionsError: a missing user_id or item_id, a bad id, time or weight, naming the row.

    Example:
        >>> log = as_events([{"user_id": 42, "item_id": "sku-1"}], now=1714600000)
        >>> log.frame["user_id"].tolist(), int(log.frame["timestamp"][0]), float(log.frame["weight"][0])
        (['42'], 1714600000, 1.0)
    """
    if isinstance(events, Interactions):
        return events
    if isinstance(events, pd.DataFrame):
        frame = events.copy()
    elif isinstance(events, Iterable) and not isinstance(events, (str, bytes, Mapping)):
        rows = list(events)
        wrong = next((r for r in rows if not isinstance(r, Mapping)), None)
        if wrong is not None:
            raise InvalidArgumentError(f"each event is a dict with user_id and item_id, got {type(wrong).__name__} {wrong!r}")
        frame = records_frame(rows, InteractionsError, "events")
    else:
        raise InvalidArgumentError(
            f"events must be Interactions, a DataFrame or a list of dicts with user_id and item_id, got {type(events).__name__}"
        )
    if len(frame) == 0:
        return None
    stamp = int(time.time()) if now is None else now
    for name, default in (("timestamp", stamp), ("weight", 1.0)):
        if name in frame.columns:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), default)
        elif name == "timestamp":
            frame[name] = default
    return Interactions(frame)


def check_items(events: Interactions, catalog: Container[str], size: int) -> None:
    """Raise UnknownItemError naming the events' items that are not in the catalog (of `size` items)."""
    unknown = [i for i in pd.unique(events.frame["item_id"]) if i not in catalog]
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise UnknownItemError(f"events name item(s) not in the catalog ({size:,} items): {shown}; no event was recorded")
