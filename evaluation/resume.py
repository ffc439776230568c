"""Resuming an interrupted model comparison: finished models read back from the partial file, not refitted.

A long `shopvec evaluate models` run keeps, after each model, everything measured so far in
`<stem>.partial.json`, with the arguments that decide the results and, per model, its
`ModelResult` encoded losslessly (`encode_result`: every per-user array the bootstrap needs,
floats written as their shortest exact repr). A re-run with the same arguments reads them
back (`load_done`) and fits only the models still missing; any other arguments are refused
(`ResumeMismatchError`, naming what differs), so results of two different runs never mix.

Example:
    >>> done = load_done(Path("runs/ml100k.partial.json"), {"dataset": "ml-100k", "k": 10})   # doctest: +SKIP
    >>> sorted(done)                                                                        # doctest: +SKIP
    ['als', 'popularity']
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InvalidArgumentError

from .comparison import ModelResult, SplitResult
from .protocols import ColdStartResult, Metrics, TuningResult
from .rating import RatingReport

RESUME_KEY = "resume"


class ResumeMismatchError(InvalidArgumentError):
    """The partial file was written by a run with other arguments."""


def encode_result(result: ModelResult) -> dict[str, Any]:
    """`result` as JSON-able data that `decode_result` turns back into an equal `ModelResult`."""
    return {
        "name": result.name,
        "config": result.config,
        "splits": {name: _encode_split(s) for name, s in result.splits.items()},
        "cold": None if result.cold is None else {
            "metrics": _encode_metrics(result.cold.metrics), "cold_items": _array(result.cold.cold_items),
            "n_test_interactions": result.cold.n_test_interactions, "train_seconds": result.cold.train_seconds},
        "tuning": None if result.tuning is None else {
            "best_config": result.tuning.best_config, "best_score": result.tuning.best_score,
            "table": result.tuning.table},
        "selection": result.selection,
    }


def decode_result(data: Mapping[str, Any]) -> ModelResult:
    """Inverse of `encode_result` (after a JSON round trip)."""
    cold = data.get("cold")
    tuning = data.get("tuning")
    return ModelResult(
        data["name"],
        dict(data["config"]),
        {name: _decode_split(s) for name, s in data["splits"].items()},
        None if cold is None else ColdStartResult(_decode_metrics(cold["metrics"]), _unarray(cold["cold_items"]),
                                                  int(cold["n_test_interactions"]), float(cold["train_seconds"])),
        None if tuning is None else TuningResult(dict(tuning["best_config"]), float(tuning["best_score"]),
                                                 list(tuning["table"])),
        data.get("selection"),
    )


def resume_block(arguments: Mapping[str, Any], models: Mapping[str, ModelResult]) -> dict[str, Any]:
    """What a partial file keeps for resuming: the arguments and each finished model, encoded."""
    return {"arguments": dict(arguments), "models": {name: encode_result(r) for name, r in models.items()}}


def load_done(partial: Path, arguments: Mapping[str, Any]) -> dict[str, ModelResult]:
    """The finished models of the interrupted run in `partial` ({} when there is none).

    Raises:
        ResumeMismatchError: the partial file was made with other `arguments`, or cannot be read.
    """
    if not partial.is_file():
        return {}
    try:
        block = json.loads(partial.read_text())[RESUME_KEY]
        saved = block["arguments"]
        models = {name: decode_result(r) for name, r in block["models"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResumeMismatchError(f"cannot resume from {partial}: it is not a readable partial file ({exc}); "
                                  "rerun with --fresh to start over") from exc
    wanted = json.loads(json.dumps(dict(arguments)))  # as it would read back (tuples become lists)
    differ = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if differ:
        what = "; ".join(f"{k}: {saved.get(k)!r} there, {wanted.get(k)!r} now" for k in differ)
        raise ResumeMismatchError(f"{partial} holds an interrupted run with other arguments ({what}); rerun with "
                                  "the same arguments to resume it, or add --fresh to discard it and start over")
    return models


def _encode_split(s: SplitResult) -> dict[str, Any]:
    return {"validation": _encode_metrics(s.validation), "test": _encode_metrics(s.test),
            "sampled": _encode_metrics(s.sampled), "train_seconds": s.train_seconds,
            "rating": None if s.rating is None else {
                "rmse": s.rating.rmse, "global_mean_rmse": s.rating.global_mean_rmse, "n_pairs": s.rating.n_pairs,
                "n_cold_users": s.rating.n_cold_users, "n_cold_items": s.rating.n_cold_items}}


def _decode_split(data: Mapping[str, Any]) -> SplitResult:
    rating = data.get("rating")
    return SplitResult(_decode_metrics(data["validation"]), _decode_metrics(data["test"]),
                       _decode_metrics(data["sampled"]), None if rating is None else RatingReport(**rating),
                       float(data["train_seconds"]))


def _encode_metrics(m: Metrics | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"protocol": m.protocol, "k": m.k, "hr": m.hr, "ndcg": m.ndcg, "recall": m.recall, "mrr": m.mrr,
            "coverage": m.coverage, "n_users": m.n_users, "users": _array(m.users), "user_ndcg": _array(m.user_ndcg),
            "user_ndcg_at": None if m.user_ndcg_at is None else [[c, _array(v)] for c, v in m.user_ndcg_at.items()]}


def _decode_metrics(data: Mapping[str, Any] | None) -> Metrics | None:
    if data is None:
        return None
    at = data.get("user_ndcg_at")
    return Metrics(data["protocol"], int(data["k"]), float(data["hr"]), float(data["ndcg"]), float(data["recall"]),
                   float(data["mrr"]), float(data["coverage"]), int(data["n_users"]), _unarray(data["users"]),
                   _unarray(data["user_ndcg"]), None if at is None else {int(c): _unarray(v) for c, v in at})


def _array(a: np.ndarray | None) -> dict[str, Any] | None:
    """An array as its dtype and values (float64 values round-trip exactly through JSON's repr)."""
    return None if a is None else {"dtype": str(a.dtype), "values": np.asarray(a).tolist()}


def _unarray(data: Mapping[str, Any] | None) -> np.ndarray | None:
    return None if data is None else np.asarray(data["values"], dtype=data["dtype"])


__all__ = ["RESUME_KEY", "ResumeMismatchError", "decode_result", "encode_result", "load_done", "resume_block"]
