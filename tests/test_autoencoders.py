"""Mult-VAE / Mult-DAE specifics: fold-in, the KL schedule, config checks (the shared contract covers the rest)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import InvalidArgumentError
from recommenders.autoencoder_step import StepBuffers, vae_step
from recommenders.autoencoders import MultDAE, MultVAE, MultVAEConfig, MultVAENetwork, sparse_rows
from recommenders.data import InteractionData

TINY = {"epochs": 15, "hidden_dim": 16, "latent_dim": 4, "batch_size": 8, "show_progress": False}


def two_groups() -> InteractionData:
    """Users 0-9 took items 0-5, users 10-19 items 6-11, each missing one item of their group."""
    users, items = [], []
    for u in range(20):
        group = np.arange(6) + (0 if u < 10 else 6)
        for i in np.delete(group, u % 6):
            users.append(u), items.append(int(i))
    return InteractionData.from_arrays(users, items, n_users=20, n_items=12)


@pytest.mark.parametrize("cls", [MultVAE, MultDAE])
def test_fold_in_of_a_training_row_equals_the_users_scores(cls: type) -> None:
    data = two_groups()
    model = cls(**TINY).fit(data)
    history = data.sequences()[3]
    np.testing.assert_allclose(model.score_history([history]), model.score([3]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", [MultVAE, MultDAE])
def test_unseen_visitor_gets_their_groups_missing_items(cls: type) -> None:
    model = cls(**{**TINY, "epochs": 60}).fit(two_groups())
    scores = model.score_history([[0, 1, 2], [6, 7, 8], []])
    assert scores[0, 3:6].min() > scores[0, 6:].max()
    assert scores[1, 9:12].min() > scores[1, :6].max()
    assert np.isfinite(scores[2]).all()  # an empty history decodes the prior, not a division by zero


@pytest.mark.parametrize("cls", [MultVAE, MultDAE])
def test_sparse_scoring_equals_the_networks_forward_pass(cls: type) -> None:
    data = two_groups()
    validation = InteractionData.from_arrays([0, 10], [5, 11], n_users=20, n_items=12)
    model = cls(**TINY).fit(data, validation)  # validation scoring mid-training must not leave stale weights
    dense = torch.from_numpy(data.csr().toarray().astype(np.float32))
    with torch.no_grad():
        expected = model.network(dense)[0].numpy()
    np.testing.assert_allclose(model.score(np.arange(20)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.score([4], items=[11, 0, 3]), expected[[4]][:, [11, 0, 3]], rtol=1e-5, atol=1e-5)


def test_scoring_is_deterministic_in_eval_mode() -> None:
    model = MultVAE(**TINY).fit(two_groups())
    np.testing.assert_array_equal(model.score([0, 1]), model.score([0, 1]))


def test_kl_weight_rises_linearly_then_caps_at_beta_max() -> None:
    model = MultVAE(anneal_steps=100, beta_max=0.2)
    assert [model._beta(s) for s in (0, 10, 20, 1000)] == [0.0, 0.1, 0.2, 0.2]
    assert MultDAE()._beta(1000) == 0.0


def test_dae_code_is_deterministic_and_vae_has_a_variance() -> None:
    x = torch.ones(3, 12)
    dae = MultVAENetwork(12, 8, 4, dropout=0.0, variational=False)
    vae = MultVAENetwork(12, 8, 4, dropout=0.0, variational=True)
    assert dae(x)[2] is None
    logits, mu, logvar = vae(x)
    assert logits.shape == (3, 12) and mu.shape == (3, 4) and logvar is not None and logvar.shape == (3, 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dropout": 1.0}, r"dropout must lie in \[0, 1\), got 1.0"),
        ({"latent_dim": 0}, "latent_dim must be a positive integer, got 0"),
        ({"beta_max": -1.0}, "beta_max must be >= 0, got -1.0"),
        ({"anneal_steps": 0}, "anneal_steps must be a positive integer, got 0"),
        ({"decoder_precision": "half"}, "decoder_precision must be one of auto, float32, bfloat16, got 'half'"),
    ],
)
def test_bad_config_is_named(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        MultVAEConfig(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("variational", [True, False])
def test_sparse_forward_equals_the_dense_forward(variational: bool) -> None:
    torch.manual_seed(0)
    net = MultVAENetwork(n_items=12, hidden_dim=8, latent_dim=4, dropout=0.5, variational=variational).eval()
    rows = two_groups().csr()[[0, 3, 15]]
    rows[1, 0] = 3.0  # a weight other than 1 is normalised alike
    with torch.no_grad():
        dense = net(torch.from_numpy(rows.toarray()))
        sparse = net.forward_sparse(sparse_rows(rows))
    for a, b in zip(dense, sparse):
        if a is not None:
            torch.testing.assert_close(a, b)


def test_encoder_weights_are_item_major_and_old_layouts_load() -> None:
    """The first layer's weight is a (hidden, n_items) view of (n_items, hidden) memory; a saved
    (hidden, n_items) contiguous tensor (the layout before) loads into it and gives the same scores."""
    torch.manual_seed(0)
    net = MultVAENetwork(n_items=12, hidden_dim=8, latent_dim=4, dropout=0.5, variational=True).eval()
    assert net.encoder_hidden.weight.shape == (8, 12) and net.encoder_hidden.weight.T.is_contiguous()
    state = {k: v.clone().contiguous() for k, v in net.state_dict().items()}
    other = MultVAENetwork(n_items=12, hidden_dim=8, latent_dim=4, dropout=0.5, variational=True).eval()
    other.load_state_dict(state)
    assert other.encoder_hidden.weight.T.is_contiguous()
    x = torch.from_numpy(two_groups().csr()[:4].toarray())
    with torch.no_grad():
        torch.testing.assert_close(other(x)[0], net(x)[0])


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_full_batch_vae_still_learns_the_groups(precision: str) -> None:
    """One step an epoch (every user in one batch, as RecBole's default does) still separates the groups."""
    data = two_groups()
    model = MultVAE(**{**TINY, "batch_size": 2048, "epochs": 150, "lr": 1e-2, "decoder_precision": precision}).fit(data)
    scores = model.score(np.arange(20))
    own = np.array([scores[u, (0 if u < 10 else 6) + u % 6] for u in range(20)])  # each user's missing item
    other = np.array([scores[u, (6 if u < 10 else 0) : (12 if u < 10 else 6)].max() for u in range(20)])
    assert (own > other).mean() >= 0.9


@pytest.mark.parametrize("low_precision", [False, True])
@pytest.mark.parametrize("variational", [True, False])
def test_written_out_step_equals_autograd(variational: bool, low_precision: bool) -> None:
    """`vae_step`'s loss and every parameter's gradient equal autograd's of the network's own forward pass;
    with the output layer's products in bfloat16, to bfloat16's precision (3 significant digits)."""
    torch.manual_seed(0)
    net = MultVAENetwork(n_items=12, hidden_dim=8, latent_dim=4, dropout=0.5, variational=variational).train()
    rows = two_groups().csr()[[0, 3, 15, 19]]
    rows[1, 0] = 3.0  # a weight other than 1
    x = sparse_rows(rows)
    beta = 0.3
    torch.manual_seed(1)
    logits, mu, logvar = net.forward_sparse(x)
    loss = -(torch.log_softmax(logits, dim=1) * x.to_dense()).sum() / x.shape[0]
    if logvar is not None:
        loss = loss + beta * (0.5 * (-logvar + logvar.exp() + mu.pow(2) - 1.0)).sum(dim=1).mean()
    net.zero_grad()
    loss.backward()
    expected = {name: p.grad.clone() for name, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    buffers = StepBuffers()
    for _ in range(2):  # the second step reuses the buffers: nothing may accumulate
        torch.manual_seed(1)  # the same dropout mask and noise
        got = vae_step(net, rows.astype(np.float32), beta, buffers, low_precision)
    assert got == pytest.approx(float(loss.detach()), rel=1e-3 if low_precision else 1e-5)
    for name, p in net.named_parameters():
        want = expected[name]
        if low_precision:
            torch.testing.assert_close(p.grad, want, rtol=2e-2, atol=2e-2 * float(want.abs().max()), msg=name)
        else:
            torch.testing.assert_close(p.grad, want, rtol=1e-5, atol=1e-6, msg=name)
        assert p.grad.stride() == p.stride(), name  # laid out like the parameter (fused Adam reads both alike)
    if low_precision:  # the output layer's weight gradient really went through bfloat16
        assert not torch.equal(net.decoder_out.weight.grad, expected["decoder_out.weight"])


def test_adam_over_the_item_major_first_layer_equals_adam_over_the_network() -> None:
    """The optimiser steps the first layer through its item-major memory: the weights move as plain Adam's."""
    import copy

    torch.manual_seed(0)
    model = MultVAE(lr=0.01, weight_decay=0.1)
    net = MultVAENetwork(n_items=12, hidden_dim=8, latent_dim=4, dropout=0.5, variational=True)
    reference = copy.deepcopy(net)
    ours = model._optimizer(net)
    decayed = [p for n, p in reference.named_parameters() if n.endswith("weight")]
    others = [p for n, p in reference.named_parameters() if n.endswith("bias")]
    plain = torch.optim.Adam([{"params": decayed, "weight_decay": 0.1}, {"params": others}], lr=0.01)
    for _ in range(3):
        for p, q in zip(net.parameters(), reference.parameters()):
            q.grad = torch.randn_like(q)
            p.grad = q.grad.clone()
        model._by_item.grad = net.encoder_hidden.weight.grad.T  # as _train_epoch hands it over
        ours.step()
        plain.step()
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
