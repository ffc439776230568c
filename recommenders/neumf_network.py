"""The network of hybrid NeuMF (`recommenders.neumf`): GMF and MLP towers over users and content-aware items."""

from __future__ import annotations

import torch
from torch import nn

# Pairs (user x item) evaluated at once by the MLP tower when scoring.
SCORE_CHUNK = 1 << 21


class NeuMFNet(nn.Module):
    """The GMF + MLP network; items are id embeddings plus a projection of their content.

    Scoring is split so that item-side work can be cached: `item_vectors` gives each
    item's (GMF, MLP) vectors, and the MLP's first layer is applied to users and items
    separately (a linear layer over a concatenation is a sum of two linear maps).
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        feature_dim: int,
        gmf_dim: int,
        mlp_dim: int,
        mlp_layers: tuple[int, ...],
        dropout: float,
        init_std: float,
    ) -> None:
        super().__init__()
        self.gmf_dim, self.mlp_dim = gmf_dim, mlp_dim
        self.user_gmf = nn.Embedding(n_users, gmf_dim)
        self.user_mlp = nn.Embedding(n_users, mlp_dim)
        self.item_gmf = nn.Embedding(n_items, gmf_dim)
        self.item_mlp = nn.Embedding(n_items, mlp_dim)
        for emb in (self.user_gmf, self.user_mlp):
            nn.init.normal_(emb.weight, std=init_std)
        if feature_dim:
            # Zero id embeddings: an item never trained on is represented by its content alone.
            nn.init.zeros_(self.item_gmf.weight)
            nn.init.zeros_(self.item_mlp.weight)
            self.content: nn.Linear | None = nn.Linear(feature_dim, gmf_dim + mlp_dim)
        else:
            nn.init.normal_(self.item_gmf.weight, std=init_std)
            nn.init.normal_(self.item_mlp.weight, std=init_std)
            self.content = None
        self.first_user = nn.Linear(mlp_dim, mlp_layers[0])
        self.first_item = nn.Linear(mlp_dim, mlp_layers[0], bias=False)
        deeper: list[nn.Module] = []
        for width_in, width_out in zip(mlp_layers[:-1], mlp_layers[1:]):
            deeper += [nn.Dropout(dropout), nn.Linear(width_in, width_out), nn.ReLU()]
        self.deeper = nn.Sequential(nn.Dropout(dropout), *deeper) if deeper else nn.Sequential(nn.Dropout(dropout))
        self.out_gmf = nn.Linear(gmf_dim, 1, bias=False)
        self.out_mlp = nn.Linear(mlp_layers[-1], 1)

    def item_vectors(
        self, items: torch.Tensor, features: torch.Tensor | None, keep_id: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(GMF, MLP) vectors of `items`; `keep_id` (0/1 per item) drops id embeddings in training."""
        gmf, mlp = self.item_gmf(items), self.item_mlp(items)
        if keep_id is not None:
            gmf, mlp = gmf * keep_id.unsqueeze(-1), mlp * keep_id.unsqueeze(-1)
        if self.content is not None and features is not None:
            # Each distinct item is projected once per call (a batch repeats popular items and negatives).
            unique, inverse = torch.unique(items, return_inverse=True)
            projected = nn.functional.embedding(inverse, self.content(features.index_select(0, unique)))
            gmf = gmf + projected[..., : self.gmf_dim]
            mlp = mlp + projected[..., self.gmf_dim :]
        return gmf, mlp

    def pair_scores(
        self, user_gmf: torch.Tensor, user_mlp: torch.Tensor, item_gmf: torch.Tensor, item_mlp: torch.Tensor
    ) -> torch.Tensor:
        """Logits of aligned (user, item) vectors; leading dimensions broadcast."""
        hidden = torch.relu(self.first_user(user_mlp) + self.first_item(item_mlp))
        return (self.out_gmf(user_gmf * item_gmf) + self.out_mlp(self.deeper(hidden))).squeeze(-1)

    def score_all(
        self, user_gmf: torch.Tensor, user_mlp: torch.Tensor, item_gmf: torch.Tensor, item_first: torch.Tensor
    ) -> torch.Tensor:
        """(n_users, n_items) logits from user vectors and cached item vectors (eval mode, no grad).

        `item_first` is the items' MLP vectors already through the first layer's item half.
        """
        # GMF: sum_k h_k p_k q_k is one matrix product.
        gmf = (user_gmf * self.out_gmf.weight[0]) @ item_gmf.T
        user_first = self.first_user(user_mlp)
        chunk = max(1, SCORE_CHUNK // max(1, item_first.shape[0] * item_first.shape[1]))
        parts = []
        for start in range(0, user_first.shape[0], chunk):
            hidden = torch.relu(user_first[start : start + chunk, None, :] + item_first[None, :, :])
            parts.append(self.out_mlp(self.deeper(hidden)).squeeze(-1))
        return gmf + torch.cat(parts, dim=0)
