"""Mult-VAE and Mult-DAE: autoencoders over a user's whole item vector.

Liang, Krishnan, Hoffman and Jebara 2018, "Variational Autoencoders for
Collaborative Filtering" (WWW). A user is the binary vector of the items they
interacted with; it is L2-normalised, passed through input dropout, encoded
(I -> 600 -> 200) and decoded (200 -> 600 -> I) with tanh between layers, and
the decoder's logits are trained with the multinomial log-likelihood
sum_i x_i log softmax(logits)_i. Mult-VAE encodes a Gaussian q(z|x) and adds a
KL term whose weight beta is annealed linearly from 0 up to `beta_max`;
Mult-DAE is the same network with a deterministic code and no KL term, a
denoising autoencoder whose noise is the input dropout. Both follow the
paper's official notebook (xavier weights, N(0, 0.001) biases, Adam, L2 on the
weights only).

A new visitor is scored exactly like a known user: encode their binary
history, decode. Nothing is retrained (fold-in), so `score_history` is the
model's own path, not the co-occurrence default.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import InvalidArgumentError

from .autoencoder_step import StepBuffers, native_bfloat16, vae_step
from .base import Recommender
from .config import ModelConfig, check_fraction, check_non_negative, check_positive
from .data import InteractionData, history_matrix
from .training import adam, for_inference

DECODER_PRECISIONS = ("auto", "float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class MultDAEConfig(ModelConfig):
    """Mult-DAE settings; the defaults were chosen on ML-100K validation NDCG@10.

    The patience is long because validation NDCG is noisy on small data (81
    known validation users under ML-100K's global temporal split) and the
    VAE's climbs for dozens of epochs while beta is annealed.

    Attributes:
        hidden_dim: width of the encoder's and decoder's hidden layer (600 in the paper).
        latent_dim: size of the code (200 in the paper).
        dropout: input dropout probability, the denoising noise (0.5 in the paper).
        lr: Adam learning rate.
        weight_decay: L2 penalty on the weight matrices (biases are not penalised).
        batch_size: users per step.
        warmup_epochs: epochs trained before validation is consulted (as LightGCN's): with few
            steps an epoch, the first epochs' popularity-like scores make an early validation
            peak that early stopping would otherwise keep.
        decoder_precision: "float32", "bfloat16" (the output layer's products while training,
            see `recommenders.autoencoder_step`; scoring stays float32) or "auto": bfloat16
            where the CPU multiplies it natively (AVX-512 BF16, AMX), else float32.
    """

    epochs: int = 200
    patience: int = 50
    hidden_dim: int = 600
    latent_dim: int = 200
    dropout: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 100
    warmup_epochs: int = 0
    decoder_precision: str = "auto"

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if self.decoder_precision not in DECODER_PRECISIONS:
            raise InvalidArgumentError(f"{owner} decoder_precision must be one of {', '.join(DECODER_PRECISIONS)}, "
                                       f"got {self.decoder_precision!r}")
        check_non_negative(owner, self, ("warmup_epochs",))
        check_positive(owner, self, ("hidden_dim", "latent_dim", "batch_size", "epochs"), ())
        check_fraction(owner, self, ("dropout",))
        check_positive(owner, self, (), ("lr",))
        check_non_negative(owner, self, ("weight_decay",))


@dataclasses.dataclass(frozen=True)
class MultVAEConfig(MultDAEConfig):
    """Mult-VAE settings: Mult-DAE's plus the KL annealing schedule.

    Attributes:
        beta_max: the KL weight's cap (0.2 in the paper).
        anneal_steps: optimiser steps over which beta rises linearly from 0 to 1
            (then capped at `beta_max`); the paper used 200,000 on ML-20M, which
            would never get past 0.002 here. With batches of 100, beta reaches the cap after
            400 steps: epoch 40 on ML-100K's 943 users.
    """

    # Batches of 100 users, lr 1e-3, no warm-up, 200 epochs (Mult-DAE's): chosen on validation
    # NDCG@10 of both public sets' temporal split, seeds 0/1, against the whole log in one step
    # (batch 2,048, lr 3e-3, warm-up 60, 300 epochs; RecBole's lr 1e-3; batch 512):
    # ML-100K 0.1214 against 0.1125, 0.1050, 0.1126; Instacart 0.0549 against 0.0449, 0.0541, 0.0535
    # (means; `benchmarks/validate_defaults.py --model multvae`; docs/evaluation.md, "Training speed").
    weight_decay: float = 0.0
    beta_max: float = 0.2
    anneal_steps: int = 2000

    def __post_init__(self) -> None:
        super().__post_init__()
        check_non_negative("MultVAEConfig", self, ("beta_max",))
        check_positive("MultVAEConfig", self, ("anneal_steps",), ())


class MultVAENetwork(nn.Module):
    """Encoder I -> hidden -> latent (mean and log-variance when variational), decoder latent -> hidden -> I.

    Example:
        >>> net = MultVAENetwork(n_items=30, hidden_dim=8, latent_dim=4, dropout=0.5, variational=True)
        >>> logits, mu, logvar = net(torch.ones(2, 30))
        >>> tuple(logits.shape), tuple(mu.shape)
        ((2, 30), (2, 4))
    """

    def __init__(self, n_items: int, hidden_dim: int, latent_dim: int, dropout: float, variational: bool) -> None:
        super().__init__()
        self.variational = variational
        self.latent_dim = latent_dim
        self.dropout = nn.Dropout(dropout)
        self.encoder_hidden = nn.Linear(n_items, hidden_dim)
        # Stored item-major ((n_items, hidden) in memory, seen as (hidden, n_items)): the sparse first
        # layer multiplies by its transpose, which is then contiguous; a strided right-hand side made
        # `torch.sparse.mm` 13x slower (0.32 s against 0.024 s for 610 users x 9,724 items).
        self.encoder_hidden.weight = nn.Parameter(torch.empty(n_items, hidden_dim).T)
        # The VAE's last encoder layer emits the mean and the log-variance side by side.
        self.encoder_out = nn.Linear(hidden_dim, 2 * latent_dim if variational else latent_dim)
        self.decoder_hidden = nn.Linear(latent_dim, hidden_dim)
        self.decoder_out = nn.Linear(hidden_dim, n_items)
        for layer in (self.encoder_hidden, self.encoder_out, self.decoder_hidden, self.decoder_out):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Logits over items, the code (the mean for a VAE) and the log-variance (None for a DAE)."""
        h = F.normalize(x, dim=1)  # an empty row stays zero instead of dividing by zero
        z, mu, logvar = self.code(self.encoder_hidden(self.dropout(h)))
        return self.decode(z), mu, logvar

    def forward_sparse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """`forward` of a sparse COO batch (`sparse_rows`): the first layer reads only each row's items.

        The dense input's (batch, n_items) product is most of an epoch's work on a large
        catalogue; here normalisation and dropout act on the stored values, and the first
        layer is one sparse-dense product.
        """
        rows, values = x.indices()[0], x.values()
        norms = torch.zeros(x.shape[0]).index_add_(0, rows, values * values).sqrt().clamp_min(1e-12)
        dropped = torch.sparse_coo_tensor(
            x.indices(), self.dropout(values / norms[rows]), x.shape, is_coalesced=True, check_invariants=False
        )
        first = torch.sparse.mm(dropped, self.encoder_hidden.weight.T) + self.encoder_hidden.bias
        z, mu, logvar = self.code(first)
        return self.decode(z), mu, logvar

    def code(self, first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The code to decode, the mean and the log-variance, from the first encoder layer's output."""
        out = self.encoder_out(torch.tanh(first))
        logvar: torch.Tensor | None = None
        if self.variational:
            mu, logvar = out[:, : self.latent_dim], out[:, self.latent_dim :]
            # Sample only while training; scoring decodes the mean, as in the paper.
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        else:
            # In the official Mult-DAE every layer but the output has a tanh, the code included.
            mu = z = torch.tanh(out)
        return z, mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of every item."""
        return self.decoder_out(torch.tanh(self.decoder_hidden(z)))


class _AutoencoderRecommender(Recommender):
    """The training loop and scoring shared by Mult-VAE and Mult-DAE."""

    variational: ClassVar[bool]
    scores_sessions: ClassVar[bool] = True  # fold-in: encode the visitor's item set
    dot_product_scores: ClassVar[bool] = True  # the decoder's output layer
    config: MultDAEConfig

    def __init__(self, config: MultDAEConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.network: MultVAENetwork | None = None
        self._encoder_t: np.ndarray | None = None  # see _encoder_by_item
        self._buffers = StepBuffers()
        self._by_item: nn.Parameter | None = None  # the first layer's weight as Adam sees it (see _optimizer)

    # ----- training -------------------------------------------------------
    def fit(
        self,
        train: InteractionData,
        validation: InteractionData | None = None,
        item_features: np.ndarray | None = None,
    ) -> _AutoencoderRecommender:
        """Train by epochs over shuffled users; with `validation`, stop early on NDCG@10 and keep the best epoch.

        Early stopping looks only at validation users that have training
        interactions: new users are all scored from the same prior.
        """
        rng = self._start_training(train)
        self.network, self._encoder_t = self._build_network(), None
        self._buffers = StepBuffers()  # gradient buffers, reused by every step of this fit
        optimizer = self._optimizer(self.network)
        assert self.train_matrix is not None
        # Users without a training item carry no signal and would only add zero rows.
        users = np.flatnonzero(np.diff(self.train_matrix.indptr) > 0)
        steps = [0]  # optimiser steps so far: the VAE's KL weight anneals over them

        def run_epoch(epoch: int) -> float:
            loss, steps[0] = self._train_epoch(optimizer, users, rng, steps[0])
            return loss

        self._train_epochs(train, validation, run_epoch, warmup_epochs=self.config.warmup_epochs)
        self._encoder_t = None  # the best epoch's weights may have been put back
        self._buffers = StepBuffers()  # the fitted model keeps no gradients (about 2x the weights)
        self._by_item = None
        self.network.zero_grad(set_to_none=True)
        for_inference(self.network)
        return self

    def _build_network(self) -> MultVAENetwork:
        cfg = self.config
        return MultVAENetwork(self.n_items, cfg.hidden_dim, cfg.latent_dim, cfg.dropout, self.variational)

    def _optimizer(self, network: MultVAENetwork) -> torch.optim.Optimizer:
        """Adam with L2 on the weight matrices only, as the official code penalises weights, not biases."""
        # The first layer's weight goes in as its item-major memory (a Parameter over the same
        # storage, `_by_item`): fused Adam on the strided (hidden, items) view copied it in and out
        # each step, 13.5 ms against 3.1 ms for 9,724 x 600 weights.
        self._by_item = nn.Parameter(network.encoder_hidden.weight.detach().T)
        weights = [p for n, p in network.named_parameters() if n.endswith("weight") and n != "encoder_hidden.weight"]
        weights.append(self._by_item)
        biases = [p for n, p in network.named_parameters() if n.endswith("bias")]
        groups = [{"params": weights, "weight_decay": self.config.weight_decay}, {"params": biases, "weight_decay": 0.0}]
        return adam(groups, lr=self.config.lr)

    def _train_epoch(
        self, optimizer: torch.optim.Optimizer, users: np.ndarray, rng: np.random.Generator, step: int
    ) -> tuple[float, int]:
        """One pass over the shuffled users; returns the mean loss and the updated step count."""
        assert self.network is not None and self.train_matrix is not None
        self.network.train()
        self._encoder_t = None  # the weights change: scoring must re-read them
        order = rng.permutation(users)
        total = 0.0
        buffers = self._buffers
        precision = self.config.decoder_precision
        low = precision == "bfloat16" or (precision == "auto" and native_bfloat16())
        for start in range(0, len(order), self.config.batch_size):
            # `MultVAENetwork.forward_sparse` and the loss, with the gradients written out
            # (`vae_step`, checked against autograd's of forward_sparse in the tests).
            batch = self.train_matrix[order[start : start + self.config.batch_size]]
            loss = vae_step(self.network, batch, self._beta(step), buffers, low)
            assert self._by_item is not None
            self._by_item.grad = self.network.encoder_hidden.weight.grad.T  # contiguous: see _optimizer
            optimizer.step()
            step += 1
            total += loss * batch.shape[0]
        return total / max(len(order), 1), step

    def _beta(self, step: int) -> float:
        """The KL weight at an optimiser step (only the VAE has one)."""
        return 0.0

    # ----- scoring --------------------------------------------------------
    def _score_users(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        return self._dot_scores(self._query_vectors(users, None), items)

    def _score_histories(self, histories: list[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        return self._dot_scores(self._query_vectors(None, histories), items)

    def _query_vectors(self, users: np.ndarray | None, histories: list[np.ndarray] | None) -> np.ndarray:
        """The decoder's hidden layer for each user's training items, or for each history's.

        The network's forward pass in eval mode up to the output layer, computed sparsely:
        the first layer reads only each row's items. The output layer (`_item_factors`) then
        gives the logits, a monotone stand-in for the multinomial probabilities, of only the
        asked-for items (200 candidates of 100k cost a 500th of the full decode).
        """
        assert self.network is not None and self.train_matrix is not None
        for_inference(self.network)
        rows = self.train_matrix[users] if users is not None else history_matrix(histories or [], self.n_items)
        rows = sp.csr_matrix(rows, dtype=np.float32)
        norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
        normalised = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ rows  # F.normalize's eps
        first = normalised @ self._encoder_by_item() + self.network.encoder_hidden.bias.detach().numpy()
        with torch.no_grad():
            z, _, _ = self.network.code(torch.from_numpy(np.ascontiguousarray(first, dtype=np.float32)))
            return torch.tanh(self.network.decoder_hidden(z)).numpy()

    def _item_factors(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.network is not None
        out = self.network.decoder_out
        return out.weight.detach().numpy(), out.bias.detach().numpy()

    def _encoder_by_item(self) -> np.ndarray:
        """The first encoder layer's weights as a C-ordered (n_items, hidden) array, for sparse products."""
        if self._encoder_t is None:
            assert self.network is not None
            self._encoder_t = np.ascontiguousarray(self.network.encoder_hidden.weight.detach().numpy().T)
        return self._encoder_t

    # ----- persistence ----------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        assert self.network is not None
        return {k: v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.network, self._encoder_t = self._build_network(), None
        self.network.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        for_inference(self.network)


class MultDAE(_AutoencoderRecommender):
    """Mult-DAE: a denoising autoencoder (input dropout) with a multinomial likelihood.

    Example:
        >>> model = MultDAE(epochs=20, show_progress=False).fit(train, validation)  # doctest: +SKIP
        >>> model.score_history([[3, 17, 42]]).shape                                # doctest: +SKIP
        (1, 1682)
    """

    name: ClassVar[str] = "multdae"
    config_class: ClassVar[type[ModelConfig]] = MultDAEConfig
    variational: ClassVar[bool] = False


class MultVAE(_AutoencoderRecommender):
    """Mult-VAE (Mult-VAE^PR in the paper): a VAE with a multinomial likelihood and a KL weight annealed to `beta_max`.

    Example:
        >>> model = MultVAE(epochs=20, show_progress=False).fit(train, validation)  # doctest: +SKIP
        >>> model.score([0, 1]).shape                                               # doctest: +SKIP
        (2, 1682)
    """

    name: ClassVar[str] = "multvae"
    config_class: ClassVar[type[ModelConfig]] = MultVAEConfig
    variational: ClassVar[bool] = True
    config: MultVAEConfig

    def _beta(self, step: int) -> float:
        return min(self.config.beta_max, step / self.config.anneal_steps)


def sparse_rows(rows: sp.csr_matrix) -> torch.Tensor:
    """A CSR block of rows as a torch COO tensor (float32), the input of `MultVAENetwork.forward_sparse`.

    Example:
        >>> sparse_rows(sp.csr_matrix(np.eye(2, 3, dtype=np.float32))).to_dense().tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    coo = rows.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(indices, values, coo.shape, check_invariants=False).coalesce()
