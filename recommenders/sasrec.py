"""SASRec: causal self-attention over a user's recent items to score the next one.

Kang & McAuley 2018, "Self-Attentive Sequential Recommendation" (ICDM): item
plus learned position embeddings, pre-norm Transformer blocks with a causal
mask, and the item embedding reused as the output layer. Trained with
cross-entropy over the full catalogue at every position (sampled softmax above
`full_softmax_below` items, see `sequential.NextItemLoss`), which Klenitskiy &
Vasilev 2023 ("Turning Dross Into Gold Loss: is BERT4Rec really better than
SASRec?", RecSys) show beats the original one-negative binary loss.

Sequences are left-padded, so the latest item always sits at the last
position and the position embeddings count back from the present; a batch is
padded only to its longest sequence.
Training cuts a long sequence into consecutive windows of `max_len` targets,
so every training event is a target once per epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from core.errors import InvalidArgumentError

from .config import ModelConfig, check_fraction, check_positive
from .sequential import SequentialConfig, SequentialRecommender
from .training import for_inference

PAD = 0  # token 0 is padding; item row r is token r + 1


@dataclasses.dataclass(frozen=True)
class SASRecConfig(SequentialConfig):
    """SASRec settings; the defaults were chosen on ML-100K validation NDCG@10.

    Attributes:
        dim: embedding and hidden size.
        num_heads: attention heads (must divide `dim`).
        num_layers: Transformer blocks.
        max_len: most recent items the model attends to (on ML-100K, 50 beat 200 on
            validation NDCG@10, 0.114 vs 0.101, at half the cost).
        dropout: dropout on embeddings, attention and feed-forward layers.
        batch_size: training windows per step.
    """

    epochs: int = 100
    patience: int = 6
    dim: int = 64
    num_heads: int = 2
    num_layers: int = 2
    max_len: int = 50
    dropout: float = 0.4
    batch_size: int = 32
    lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(
            "SASRec", self, ("epochs", "dim", "num_heads", "num_layers", "max_len", "batch_size"), ("lr",)
        )
        check_fraction("SASRec", self, ("dropout",))
        if self.dim % self.num_heads:
            raise InvalidArgumentError(f"SASRec dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")


class SASRecNetwork(nn.Module):
    """Embeddings, pre-norm causal Transformer blocks and the tied output layer."""

    def __init__(self, n_items: int, dim: int, num_heads: int, num_layers: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.max_len = num_heads, max_len
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=PAD)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, num_heads, dim_feedforward=4 * dim, dropout=dropout, activation="gelu", batch_first=True,
                norm_first=True,
            )  # fmt: skip
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(dim)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()

    def attention_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """Additive (batch * heads, L, L) mask: causal, padding keys hidden.

        Every position may attend to itself, so padding rows are never all -inf
        (which would give NaN); their outputs are never used.
        """
        length = tokens.shape[1]
        future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        blocked = future.unsqueeze(0) | (tokens == PAD).unsqueeze(1)
        blocked &= ~torch.eye(length, dtype=torch.bool).unsqueeze(0)
        mask = torch.zeros(blocked.shape).masked_fill(blocked, float("-inf"))
        return mask.repeat_interleave(self.num_heads, dim=0)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Scaled item embeddings plus position embeddings, with dropout.

        A window shorter than max_len takes the last positions: position max_len - 1
        is always the latest item, whatever the padding.
        """
        positions = torch.arange(self.max_len - tokens.shape[1], self.max_len).unsqueeze(0)
        scale = self.item_embedding.embedding_dim**0.5
        return self.dropout(self.item_embedding(tokens) * scale + self.position_embedding(positions))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states (batch, L, dim) of left-padded token windows (batch, L), L <= max_len."""
        x, mask = self.embed(tokens), self.attention_mask(tokens)
        for block in self.blocks:
            x = block(x, src_mask=mask)
        return self.final_norm(x)

    def last_attention(self, tokens: torch.Tensor) -> torch.Tensor:
        """The last block's attention of the last position over the window: (batch, L), head-averaged."""
        x, mask = self.embed(tokens), self.attention_mask(tokens)
        for block in self.blocks[:-1]:
            x = block(x, src_mask=mask)
        last = self.blocks[-1]
        # Pre-norm block: attention reads norm1(x); this recomputes its weights, which the block discards.
        q = last.norm1(x)
        _, weights = last.self_attn(q, q, q, attn_mask=mask, need_weights=True, average_attn_weights=True)
        return weights[:, -1, :]


class SASRec(SequentialRecommender):
    """SASRec trained with full-catalogue cross-entropy at every position.

    `score(users)` attends over each user's last `max_len` training items;
    `score_history` over an anonymous visitor's. `explain(history)` says how
    much each history item drew the last block's attention.

    Example:
        >>> model = SASRec(epochs=20, show_progress=False).fit(train, validation)  # doctest: +SKIP
        >>> model.explain([12, 40, 7]).round(2)                                    # doctest: +SKIP
        array([0.1 , 0.25, 0.65], dtype=float32)
    """

    name: ClassVar[str] = "sasrec"
    config_class: ClassVar[type[ModelConfig]] = SASRecConfig
    explains: ClassVar[bool] = True  # the last block's attention over the history
    # What `evaluation.protocols.tune` searches: the settings that moved validation NDCG on ML-100K.
    tuning_grid: ClassVar[dict[str, list[Any]] | None] = {
        "dim": [32, 64, 128],
        "dropout": [0.2, 0.4, 0.6],
        "lr": [5e-4, 1e-3, 2e-3],
        "max_len": [50, 200],
    }
    config: SASRecConfig
    network: SASRecNetwork | None

    def _build_network(self) -> SASRecNetwork:
        cfg = self.config
        return SASRecNetwork(self.n_items, cfg.dim, cfg.num_heads, cfg.num_layers, cfg.max_len, cfg.dropout)

    def _windows(self) -> list[np.ndarray]:
        """Every training sequence cut, from its end, into token windows of up to max_len + 1 items."""
        size = self.config.max_len + 1
        windows = []
        for seq in self.sequences:
            # Windows step back by max_len targets; a window's first item (an input only) is the next
            # older window's last target, so every item after the first is a target exactly once.
            for end in range(len(seq), 1, -self.config.max_len):
                windows.append(seq[max(0, end - size) : end] + 1)
        return windows

    def _train_epoch(self, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> float:
        assert self.network is not None
        windows = self._windows()
        size = self.config.batch_size
        # Batches of similar lengths waste little on padding; their order, and ties, are shuffled.
        order = rng.permutation(len(windows))
        order = order[np.argsort([len(windows[i]) for i in order], kind="stable")]
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        total, count = 0.0, 0
        for b in rng.permutation(len(batches)):
            batch = _left_pad([windows[i] for i in batches[b]])
            inputs, targets = batch[:, :-1], batch[:, 1:]
            hidden = self.network(inputs)
            # Only positions with a real target count; padding positions would teach nothing.
            real = targets != PAD
            assert self.loss is not None
            loss = self.loss(hidden[real], targets[real] - 1, self.network.item_embedding.weight[1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n = int(real.sum())
            total += loss.item() * n
            count += n
        return total / max(count, 1)

    def _tokens(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Left-padded tokens of each history's most recent max_len items."""
        return _left_pad([np.asarray(h, dtype=np.int64)[-self.config.max_len :] + 1 for h in histories])

    def _sequence_states(self, histories: list[np.ndarray]) -> torch.Tensor:
        assert self.network is not None
        return self.network(self._tokens(histories))[:, -1]

    def _item_factors(self) -> tuple[np.ndarray, None]:
        assert self.network is not None
        return self.network.item_embedding.weight[1:].detach().numpy(), None  # row 0 is padding

    def explain(self, history: Sequence[int] | np.ndarray) -> np.ndarray:
        """How much the next-item prediction attended to each item of `history` (oldest first).

        The weights are the last block's attention from the latest position,
        averaged over heads: float32 of len(history), summing to 1 over the
        most recent `max_len` items (older items, never seen, get 0).

        Example:
            >>> weights = model.explain(model.user_history(0))   # doctest: +SKIP
            >>> model.user_history(0)[weights.argmax()]           # the most influential past item  # doctest: +SKIP
        """
        self._check_fitted()
        assert self.network is not None
        rows = np.asarray(history, dtype=np.int64)
        if rows.ndim != 1 or rows.size == 0:
            raise InvalidArgumentError(f"explain needs a non-empty 1-d history of item rows, got shape {rows.shape}")
        if rows.min() < 0 or rows.max() >= self.n_items:
            raise InvalidArgumentError(f"history item rows must lie in [0, {self.n_items}), got {rows.tolist()[:5]}")
        for_inference(self.network)
        with torch.no_grad():
            attention = self.network.last_attention(self._tokens([rows]))[0].numpy()
        weights = np.zeros(len(rows), dtype=np.float32)
        visible = min(len(rows), self.config.max_len)
        weights[len(rows) - visible :] = attention[len(attention) - visible :]
        return weights


def _left_pad(token_rows: Sequence[np.ndarray]) -> torch.Tensor:
    """(n, longest) int64 tokens, each row right-aligned so the latest item is last."""
    length = max((len(r) for r in token_rows), default=0)
    tokens = np.zeros((len(token_rows), length), dtype=np.int64)
    for row, values in enumerate(token_rows):
        if len(values):
            tokens[row, length - len(values) :] = values
    return torch.from_numpy(tokens)
