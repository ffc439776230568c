"""GRU4Rec: a recurrent network that reads a session and scores the next item.

Hidasi et al. 2016, "Session-based Recommendations with Recurrent Neural
Networks" (ICLR), with the improvements of Hidasi & Karatzoglou 2018,
"Recurrent Neural Networks with Top-k Gains for Session-based
Recommendations" (CIKM). Training uses session-parallel mini-batches: each of
`batch_size` slots walks through one sequence an item at a time (input item
t, target item t+1); when a sequence ends, the next one takes its slot and the
slot's hidden state is reset to zero. The loss is cross-entropy over the full
catalogue below `full_softmax_below` items (20k by default), where the exact
softmax is cheap; above it, sampled softmax over the batch's targets plus
popularity-sampled shared negatives, as in the 2018 paper. As in the official code's `constrained_embedding`, the
input embedding of an item is its output embedding by default.

Here a "session" is one user's items in time order.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from .config import ModelConfig, check_fraction, check_positive
from .sequential import SequentialConfig, SequentialRecommender


@dataclasses.dataclass(frozen=True)
class GRU4RecConfig(SequentialConfig):
    """GRU4Rec settings; the defaults were chosen on ML-100K validation NDCG@10.

    Attributes:
        hidden_dim: GRU state size (and item embedding size).
        num_layers: stacked GRU layers.
        dropout_embedding: dropout on the input item embedding.
        dropout_hidden: dropout on the GRU output before the item scores.
        tie_embeddings: score items with their input embeddings (the 2018 "constrained
            embedding"); False gives separate output embeddings.
        batch_size: parallel session slots.
    """

    epochs: int = 30
    patience: int = 3
    hidden_dim: int = 100
    num_layers: int = 1
    dropout_embedding: float = 0.0
    dropout_hidden: float = 0.2
    tie_embeddings: bool = True
    batch_size: int = 32
    lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("GRU4Rec", self, ("epochs", "hidden_dim", "num_layers", "batch_size"), ("lr",))
        check_fraction("GRU4Rec", self, ("dropout_embedding", "dropout_hidden"))


class GRU4RecNetwork(nn.Module):
    """Item embedding -> GRU -> dot product with every item's output embedding plus a bias."""

    def __init__(
        self, n_items: int, hidden_dim: int, num_layers: int, dropout_embedding: float, dropout_hidden: float,
        tie_embeddings: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.item_embedding = nn.Embedding(n_items, hidden_dim)
        self.output_embedding = None if tie_embeddings else nn.Embedding(n_items, hidden_dim)
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        self.gru = nn.GRU(hidden_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.dropout_embedding = nn.Dropout(dropout_embedding)
        self.dropout_hidden = nn.Dropout(dropout_hidden)
        nn.init.normal_(self.item_embedding.weight, std=0.05)
        if self.output_embedding is not None:
            nn.init.normal_(self.output_embedding.weight, std=0.05)

    def initial_state(self, batch: int) -> torch.Tensor:
        """The zero hidden state a new session starts from: (num_layers, batch, hidden_dim)."""
        return torch.zeros(self.gru.num_layers, batch, self.gru.hidden_size)

    def step(self, items: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Read one item per slot; returns the top layer's output (batch, hidden_dim) and the new state."""
        x = self.dropout_embedding(self.item_embedding(items)).unsqueeze(1)
        out, hidden = self.gru(x, hidden)
        return out[:, 0], hidden

    def encode(self, histories: list[torch.Tensor]) -> torch.Tensor:
        """The top layer's state after reading each (non-empty) history: (n, hidden_dim)."""
        lengths = torch.tensor([len(h) for h in histories])
        x = self.dropout_embedding(self.item_embedding(pad_sequence(histories, batch_first=True)))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, hidden = self.gru(packed)
        return hidden[-1]

    def output_weights(self) -> torch.Tensor:
        """(n_items, hidden_dim) output embeddings: the input ones when tied."""
        out = self.output_embedding if self.output_embedding is not None else self.item_embedding
        return out.weight


class GRU4Rec(SequentialRecommender):
    """GRU4Rec with session-parallel mini-batches and full-catalogue cross-entropy.

    `score(users)` reads each user's training sequence and scores the next item;
    `score_history` does the same for an anonymous session. Scores are logits.

    Example:
        >>> model = GRU4Rec(epochs=10, show_progress=False).fit(train, validation)  # doctest: +SKIP
        >>> model.score_history([[12, 40, 7]], items=[3, 9]).shape                  # doctest: +SKIP
        (1, 2)
    """

    name: ClassVar[str] = "gru4rec"
    config_class: ClassVar[type[ModelConfig]] = GRU4RecConfig
    # What `evaluation.protocols.tune` searches: the settings that moved validation NDCG on ML-100K.
    tuning_grid: ClassVar[dict[str, list[Any]] | None] = {
        "hidden_dim": [64, 100, 200],
        "dropout_hidden": [0.0, 0.2, 0.4],
        "lr": [5e-4, 1e-3, 2e-3],
    }
    config: GRU4RecConfig
    network: GRU4RecNetwork | None

    def _build_network(self) -> GRU4RecNetwork:
        cfg = self.config
        return GRU4RecNetwork(
            self.n_items, cfg.hidden_dim, cfg.num_layers, cfg.dropout_embedding, cfg.dropout_hidden,
            cfg.tie_embeddings,
        )  # fmt: skip

    def _train_epoch(self, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> float:
        """Session-parallel pass over every sequence with at least one (input, target) pair."""
        assert self.network is not None
        net = self.network
        usable = [s for s in self.sequences if len(s) >= 2]
        if not usable:
            return 0.0
        order = rng.permutation(len(usable))
        data = torch.from_numpy(np.concatenate([usable[i] for i in order]))
        ends = np.cumsum([len(usable[i]) for i in order])
        starts = ends - np.array([len(usable[i]) for i in order])
        n_slots = min(self.config.batch_size, len(usable))
        # Each slot: index into `data` of its current input item, and the end of its sequence.
        position, end = starts[:n_slots].copy(), ends[:n_slots].copy()
        next_sequence = n_slots
        hidden = net.initial_state(n_slots)
        total, count = 0.0, 0
        while len(position):
            state, hidden = net.step(data[position], hidden)
            targets = data[position + 1]
            # Divided by the full slot count, not the active one: once the batch shrinks at the end
            # of an epoch, a few long sequences would otherwise get full-size steps to themselves.
            states = net.dropout_hidden(state)
            assert self.loss is not None
            loss = self.loss(states, targets, net.output_weights(), net.output_bias, reduction="sum") / n_slots
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * n_slots
            count += len(position)
            # Truncated backpropagation through one step, as in GRU4Rec: the state carries on, its graph not.
            hidden = hidden.detach()
            position += 1
            finished = np.flatnonzero(position + 1 >= end)
            if len(finished) == 0:
                continue
            refill = finished[: max(0, len(starts) - next_sequence)]
            if len(refill):
                new = np.arange(next_sequence, next_sequence + len(refill))
                position[refill], end[refill] = starts[new], ends[new]
                hidden[:, torch.from_numpy(refill)] = 0.0
                next_sequence += len(refill)
            # No sequence left to take these slots: the batch shrinks until every sequence is done.
            drop = finished[len(refill) :]
            if len(drop):
                keep = np.setdiff1d(np.arange(len(position)), drop)
                position, end = position[keep], end[keep]
                hidden = hidden[:, torch.from_numpy(keep)]
        return total / max(count, 1)

    def _sequence_states(self, histories: list[np.ndarray]) -> torch.Tensor:
        assert self.network is not None
        return self.network.encode([torch.from_numpy(np.asarray(h, dtype=np.int64)) for h in histories])

    def _item_factors(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.network is not None
        return self.network.output_weights().detach().numpy(), self.network.output_bias.detach().numpy()
