"""One Mult-VAE / Mult-DAE training step with its gradients written out, instead of autograd's.

The network is four linear layers with tanh between them, so each gradient has a closed
form. Writing them out (checked against autograd in `tests/test_autoencoders.py`) saves,
per step at 9.7k items:

* the sparse first layer: its forward as an embedding bag (FBGEMM's kernel) and its weight
  gradient as one CSR-by-dense product (the batch sorted by item) written into a reused
  buffer. Autograd's backward of `torch.sparse.mm` also made a dense (items x users) @
  (users x hidden) product, as costly as the decoder's, and `torch.sparse.mm` itself was
  10-30x slower than the bag on a 610-user, 9.7k-item batch (one-off timings on a loaded
  machine). An embedding bag for the gradient too was 1.7 ms against the CSR product's 3.0,
  but its fresh 23 MB output now and then cost ~4k page faults, about 15 ms a step;
* the gradient buffers, reused from step to step (`StepBuffers`) and written in place by
  `torch.mm(..., out=)`: no fresh 23 MB tensors to page in, zero, accumulate and copy into
  the transposed first-layer layout every step;
* the logits' buffer, reused too, which becomes their softmax and then their gradient in place;
* with `low_precision`, the output layer's three (batch x hidden x items) products (its
  logits, its weight gradient and the gradient flowing back from it), most of a step's work,
  in bfloat16 on CPUs that multiply it natively (`native_bfloat16`): 30 -> 9 ms for the three
  at 100 users x 600 x 9.7k items on 2 cores (AVX-512 BF16). The products accumulate in
  float32 and round their results to bfloat16 (3 significant digits); the softmax, the loss,
  the other layers and Adam stay float32. Validation NDCG is unchanged within the seeds'
  spread (docs/evaluation.md, "Training speed", fifth round).

The float32 arithmetic is the same as the autograd step's, up to float rounding.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass
class StepBuffers:
    """Gradient tensors kept between steps, laid out like their parameters (see `vae_step`)."""

    grads: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)

    def grad_for(self, name: str, param: torch.Tensor) -> torch.Tensor:
        """The buffer for `param`'s gradient (same shape and strides), attached as `param.grad`."""
        buf = self.grads.get(name)
        if buf is None:
            buf = torch.empty_strided(param.shape, param.stride(), dtype=param.dtype)
            self.grads[name] = buf
        param.grad = buf
        return buf

    def work(self, name: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A scratch tensor of `shape` and `dtype`, reused while the shape stays the same."""
        buf = self.grads.get(name)
        if buf is None or tuple(buf.shape) != shape or buf.dtype != dtype:
            buf = self.grads[name] = torch.empty(shape, dtype=dtype)
        return buf


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX); elsewhere torch emulates it, slower than float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def vae_step(
    network: nn.Module, batch: sp.csr_matrix, beta: float, buffers: StepBuffers, low_precision: bool = False
) -> float:
    """Forward pass and gradients of one batch; fills every parameter's `.grad`; returns the loss.

    The loss is `multinomial NLL / batch + beta * mean KL` for a variational network (the
    KL term is dropped when it is not variational), as the autograd step computes it from
    `MultVAENetwork.forward_sparse` (exactly in float32; to bfloat16's precision with
    `low_precision`). Random draws (input dropout over the stored
    values in row-major order, then the reparameterisation noise) are made in the same order.

    Args:
        network: a `MultVAENetwork` in training mode.
        batch: the users' rows (float32 CSR with sorted indices).
        beta: the KL weight for this step.
        buffers: gradient buffers reused between steps.
        low_precision: the output layer's products in bfloat16 (see the module's notes).

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> from recommenders.autoencoders import MultVAENetwork
        >>> net = MultVAENetwork(n_items=5, hidden_dim=4, latent_dim=2, dropout=0.5, variational=True).train()
        >>> loss = vae_step(net, sp.csr_matrix(np.eye(3, 5, dtype=np.float32)), beta=0.1, buffers=StepBuffers())
        >>> net.decoder_out.weight.grad.shape
        torch.Size([5, 4])
    """
    enc1, enc2 = network.encoder_hidden, network.encoder_out
    dec1, dec2 = network.decoder_hidden, network.decoder_out
    if not batch.has_canonical_format:  # sorted items, no duplicates: the row-major order of `sparse_rows`
        batch = batch.copy()
        batch.sum_duplicates()
    n, n_items = batch.shape
    indptr = torch.from_numpy(batch.indptr.astype(np.int64))
    cols = torch.from_numpy(batch.indices.astype(np.int64))
    values = torch.from_numpy(batch.data.astype(np.float32, copy=False))
    rows = torch.repeat_interleave(torch.arange(n), indptr.diff())
    with torch.no_grad():
        # ----- forward (as forward_sparse) -----
        norms = torch.zeros(n).index_add_(0, rows, values * values).sqrt().clamp_min(1e-12)
        dropped = network.dropout(values / norms[rows])
        # The sparse first layer as an embedding bag over each user's items (FBGEMM's kernel, much
        # faster than `torch.sparse.mm`), and its weight gradient as one over each item's users.
        first = F.embedding_bag(cols, enc1.weight.T, indptr[:-1], mode="sum", per_sample_weights=dropped)
        h1 = torch.tanh(first.add_(enc1.bias))
        out = torch.addmm(enc2.bias, h1, enc2.weight.T)
        latent = network.latent_dim
        if network.variational:
            mu, logvar = out[:, :latent], out[:, latent:]
            std = torch.exp(0.5 * logvar)
            eps = torch.randn_like(mu)
            z = mu + eps * std
        else:
            z = torch.tanh(out)
        h3 = torch.tanh(torch.addmm(dec1.bias, z, dec1.weight.T))
        logits = buffers.work("logits", (n, n_items))
        if low_precision:  # the output layer's three products in bfloat16, everything around them in float32
            h3_low, w_low = h3.to(torch.bfloat16), dec2.weight.to(torch.bfloat16)
            logits_low = torch.mm(h3_low, w_low.T, out=buffers.work("logits/bf16", (n, n_items), torch.bfloat16))
            logits.copy_(logits_low).add_(dec2.bias)
        else:
            torch.addmm(dec2.bias, h3, dec2.weight.T, out=logits)
        # ----- multinomial NLL; its gradient n_u softmax - x_u, in the logits' buffer -----
        picked = (logits[rows, cols] * values).sum()
        top = logits.amax(dim=1)
        exps = logits.sub_(top[:, None]).exp_()
        sums = exps.sum(dim=1)
        counts = torch.zeros(n).index_add_(0, rows, values)
        loss = float(((counts * (sums.log() + top)).sum() - picked) / n)
        g_logits = exps.mul_((counts / (sums * n))[:, None])
        g_logits.index_put_((rows, cols), -values / n, accumulate=True)
        # ----- decoder -----
        torch.sum(g_logits, dim=0, out=buffers.grad_for("decoder_out.bias", dec2.bias))
        if low_precision:
            g_low = logits_low.copy_(g_logits)  # the bfloat16 logits are spent: their buffer takes the gradient
            g_weight = buffers.work("decoder_out.weight/bf16", tuple(dec2.weight.shape), torch.bfloat16)
            torch.mm(g_low.T, h3_low, out=g_weight)
            buffers.grad_for("decoder_out.weight", dec2.weight).copy_(g_weight)
            g_a3 = torch.mm(g_low, w_low).float().mul_(1.0 - h3 * h3)
        else:
            torch.mm(g_logits.T, h3, out=buffers.grad_for("decoder_out.weight", dec2.weight))
            g_a3 = torch.mm(g_logits, dec2.weight).mul_(1.0 - h3 * h3)
        torch.mm(g_a3.T, z, out=buffers.grad_for("decoder_hidden.weight", dec1.weight))
        torch.sum(g_a3, dim=0, out=buffers.grad_for("decoder_hidden.bias", dec1.bias))
        g_z = torch.mm(g_a3, dec1.weight)
        # ----- code and KL -----
        if network.variational:
            loss += beta * float((0.5 * (-logvar + std * std + mu * mu - 1.0)).sum() / n)
            g_mu = g_z + (beta / n) * mu
            g_logvar = g_z * eps * (0.5 * std) + (0.5 * beta / n) * (std * std - 1.0)
            g_out = torch.cat([g_mu, g_logvar], dim=1)
        else:
            g_out = g_z * (1.0 - z * z)
        # ----- encoder -----
        torch.mm(g_out.T, h1, out=buffers.grad_for("encoder_out.weight", enc2.weight))
        torch.sum(g_out, dim=0, out=buffers.grad_for("encoder_out.bias", enc2.bias))
        g_a1 = torch.mm(g_out, enc2.weight).mul_(1.0 - h1 * h1)
        torch.sum(g_a1, dim=0, out=buffers.grad_for("encoder_hidden.bias", enc1.bias))
        # dropped^T @ g_a1 into the (items, hidden) memory under the (hidden, items) weight view,
        # a reused buffer: the batch's entries sorted by item are the rows of dropped^T (CSR).
        by_item = torch.sort(cols, stable=True).indices
        item_ptr = torch.zeros(n_items + 1, dtype=torch.int64)
        torch.cumsum(torch.bincount(cols, minlength=n_items), 0, out=item_ptr[1:])
        with warnings.catch_warnings():  # torch's once-per-process note that CSR support is in beta
            warnings.simplefilter("ignore", UserWarning)
            by_item_matrix = torch.sparse_csr_tensor(
                item_ptr, rows[by_item], dropped[by_item], (n_items, n), check_invariants=False
            )
        torch.mm(by_item_matrix, g_a1, out=buffers.grad_for("encoder_hidden.weight", enc1.weight).T)
    return loss
