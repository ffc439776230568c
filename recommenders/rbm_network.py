"""The network of RBM-CF (`recommenders.rbm`): shared weights, the conditionals and contrastive divergence."""

from __future__ import annotations

import torch
from torch import nn


class RBMNetwork(nn.Module):
    """Shared RBM parameters and its conditionals; trained by `contrastive_divergence`, not by autograd.

    Visible data is a dense one-hot tensor (users, items, K) of the rated
    states; an all-zero item row is "not rated" (visible="all") or absent
    (visible="rated").

    Example:
        >>> net = RBMNetwork(n_items=30, n_ratings=5, hidden_dim=8, absent_state=True)
        >>> net.hidden_probs(torch.zeros(2, 30, 5)).shape
        torch.Size([2, 8])
    """

    def __init__(self, n_items: int, n_ratings: int, hidden_dim: int, absent_state: bool) -> None:
        super().__init__()
        self.absent_state = absent_state
        self.weight = nn.Parameter(torch.zeros(n_items, n_ratings, hidden_dim), requires_grad=False)
        self.visible_bias = nn.Parameter(torch.zeros(n_items, n_ratings), requires_grad=False)
        self.hidden_bias = nn.Parameter(torch.zeros(hidden_dim), requires_grad=False)

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """p(h_j = 1 | v) for a batch of visible tensors (B, I, K)."""
        w = self.weight.reshape(-1, self.weight.shape[-1])
        return torch.sigmoid(v.reshape(len(v), -1) @ w + self.hidden_bias)

    def visible_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits of the rated states 1..K, (B, I, K); the "not rated" state's logit is 0."""
        w = self.weight.reshape(-1, self.weight.shape[-1])
        return (h @ w.T).reshape(len(h), *self.visible_bias.shape) + self.visible_bias

    def visible_probs(self, logits: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        """Probabilities of the rated states (B, I, K); `present` (B, I) masks the items of a "rated" RBM."""
        if self.absent_state:
            # Softmax over K+1 states with the absent state's logit fixed at 0.
            top = torch.clamp(logits.max(dim=2, keepdim=True).values, min=0.0)
            e = torch.exp(logits - top)
            return e / (e.sum(dim=2, keepdim=True) + torch.exp(-top))
        assert present is not None
        return torch.softmax(logits, dim=2) * present.unsqueeze(2)

    def sample_visible(self, probs: torch.Tensor) -> torch.Tensor:
        """One-hot samples of the rated states (all-zero rows where "not rated" or absent was drawn)."""
        cumulative = probs.cumsum(dim=2)
        u = torch.rand(probs.shape[:2] + (1,), dtype=probs.dtype)
        # The first state whose cumulative probability passes u; none passes when the absent state was drawn.
        passed = (cumulative > u).to(probs.dtype)
        first = passed - torch.nn.functional.pad(passed[:, :, :-1], (1, 0))
        return first

    def contrastive_divergence(
        self, v0: torch.Tensor, present: torch.Tensor | None, steps: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """CD-`steps` gradient estimates (dW, d visible bias, d hidden bias), averaged over the batch, and the
        squared reconstruction error per user.

        Hidden and intermediate visible states are sampled; the last
        reconstruction and its hidden units use probabilities, which lowers the
        variance without biasing the statistics CD follows.
        """
        ph0 = self.hidden_probs(v0)
        h = torch.bernoulli(ph0)
        v, ph = v0, ph0
        for step in range(steps):
            probs = self.visible_probs(self.visible_logits(h), present)
            last = step == steps - 1
            v = probs if last else self.sample_visible(probs)
            ph = self.hidden_probs(v)
            if not last:
                h = torch.bernoulli(ph)
        n = len(v0)
        flat0, flat = v0.reshape(n, -1), v.reshape(n, -1)
        d_weight = ((flat0.T @ ph0 - flat.T @ ph) / n).reshape(self.weight.shape)
        error = float(((v0 - v) ** 2).sum()) / n
        return d_weight, (v0 - v).sum(dim=0) / n, (ph0 - ph).sum(dim=0) / n, error
