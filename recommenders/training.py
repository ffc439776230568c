"""What training shares: seeding, the record of a fit's epochs, progress bars.

The epoch loop itself, with early stopping, is `Recommender._train_epochs`: a
service of the base class, so that each model writes only its own epoch step.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
from tqdm.auto import tqdm


@dataclasses.dataclass
class TrainingLog:
    """What the last fit's epoch loop did; every model has one (`Recommender.training`).

    Attributes:
        epochs_trained: epochs run (early stopping may end training before `config.epochs`).
        best_epoch: the epoch (from 0) whose weights were kept for the best validation score;
            -1 when nothing was validated (the last epoch's weights are kept).
        seconds_per_epoch: mean time of an epoch's training step, validation excluded.
        records: per epoch: "seconds", "loss" (when the model reports one) and, when
            validated, "ndcg@10" or "rmse".
        epochs_planned: `config.epochs`; more than `epochs_trained` when training stopped early.

    Example:
        >>> log = TrainingLog(epochs_trained=3, best_epoch=1, records=[{}, {"ndcg@10": 0.25}, {"ndcg@10": 0.2}])
        >>> log.summary()
        'kept epoch 2 of 3 (validation NDCG@10 0.2500)'
    """

    epochs_trained: int = 0
    best_epoch: int = -1
    seconds_per_epoch: float = 0.0
    records: list[dict[str, float]] = dataclasses.field(default_factory=list)
    epochs_planned: int = 0

    def summary(self) -> str:
        """Which epoch's weights the model kept, in words (epochs counted from 1).

        Example:
            >>> TrainingLog().summary()
            'fitted in one step (no epochs)'
        """
        if self.epochs_trained == 0:
            return "fitted in one step (no epochs)"
        early = (
            f"; stopped early, {self.epochs_planned} planned" if self.epochs_trained < self.epochs_planned else ""
        )
        if self.best_epoch < 0 or self.best_epoch >= len(self.records):
            return f"kept the last epoch, {self.epochs_trained} of {self.epochs_trained} (nothing validated){early}"
        record = self.records[self.best_epoch]
        metric = next((m for m in ("ndcg@10", "rmse") if m in record), None)
        value = f" (validation {metric.upper()} {record[metric]:.4f})" if metric is not None else ""
        return f"kept epoch {self.best_epoch + 1} of {self.epochs_trained}{value}{early}"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a fit is repeatable.

    Example:
        >>> seed_everything(0)
    """
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def adam(params: Any, lr: float, weight_decay: float = 0.0) -> Any:
    """Adam with the fused kernel: the same update as `torch.optim.Adam`, in one pass over each tensor.

    The default (per-tensor, op by op) Adam costs more than the forward and backward
    passes of the small networks here (a step over 700k embedding weights took 5 ms
    of an 18 ms NeuMF step); the fused kernel does the same arithmetic about 7x faster.
    `params` is what `torch.optim.Adam` takes: parameters or parameter groups.

    Example:
        >>> import torch
        >>> adam([torch.nn.Parameter(torch.zeros(3))], lr=0.1).defaults["fused"]
        True
    """
    import torch

    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)


def progress(iterable: Any, desc: str, enabled: bool) -> Any:
    """A tqdm progress bar, or the bare iterable when disabled."""
    return tqdm(iterable, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


def for_inference(network: Any) -> None:
    """Put a torch `network` in eval mode unless it already is (a fitted model's network is).

    `Module.eval()` walks every submodule and sets an attribute on each: ~70 us a call for
    SASRec's network (~45 us NeuMF's), and a request scores SASRec three times (its top items,
    its candidates, `explain`), against ~0.1 us for checking the root's flag. `train()` and
    `eval()` set the flags of the whole tree, so the root's stands for them all.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Dropout(0.5))
        >>> for_inference(net); net.training, net[0].training
        (False, False)
    """
    if network.training:
        network.eval()
