"""Search grids for hyperparameters: the model's own `tuning_grid`, else one centred on its defaults.

Both the evaluation's `tune` and the engine's `fit(model="auto")` search these grids.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .registry import model_class

_SIZES = ("dim", "factors", "embedding_dim", "hidden", "hidden_dim", "latent_dim", "gmf_dim", "mlp_dim")
_PENALTIES = ("weight_decay", "l2", "reg", "regularization")


def default_grid(model_name: str) -> dict[str, list[Any]]:
    """The search grid for a model.

    The model class's own `tuning_grid` when it declares one, else a grid centred on
    the model's defaults over the fields it has among learning rate (/3, x1, x3),
    sizes (/2, x1, x2), dropout (-0.2, +0.2) and L2 penalties (0, x1, x10).

    Example:
        >>> default_grid("itemknn")["shrinkage"]
        [0.0, 5.0, 20.0, 100.0]
    """
    cls = model_class(model_name)  # raises with the valid names when unknown
    if cls.tuning_grid is not None:
        return dict(cls.tuning_grid)
    grid: dict[str, list[Any]] = {}
    for f in dataclasses.fields(cls.config_class):
        d = f.default
        if isinstance(d, bool) or not isinstance(d, (int, float)):
            continue
        if f.name == "lr" and d > 0:
            grid[f.name] = [_round(d / 3), d, _round(d * 3)]
        elif f.name in _SIZES and isinstance(d, int) and d > 1:
            grid[f.name] = [d // 2, d, d * 2]
        elif f.name == "dropout":
            grid[f.name] = sorted({round(max(0.0, d - 0.2), 3), d, round(min(0.8, d + 0.2), 3)})
        elif f.name in _PENALTIES:
            grid[f.name] = [0.0, d, _round(d * 10)] if d > 0 else [0.0, 1e-5, 1e-4]
    return grid


def _round(x: float) -> float:
    """Three significant digits, so grids read 0.00167, not 0.0016666666666666668."""
    return float(f"{x:.3g}")
