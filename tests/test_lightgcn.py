"""LightGCN-specific tests: graph normalisation, propagation, fold-in, config checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from core.errors import InvalidArgumentError
from recommenders import create_model, load_model
from recommenders.data import InteractionData
from recommenders.lightgcn import LightGCN, LightGCNConfig, LightGCNNetwork, normalized_adjacency

TINY = {"dim": 8, "layers": 2, "epochs": 15, "lr": 0.05, "batch_size": 64, "show_progress": False}


def planted(n_users: int = 40, n_items: int = 30, seed: int = 0) -> InteractionData:
    """Two groups: even users like items < n_items/2, odd users like the rest; 6 items each."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    half = n_items // 2
    for u in range(n_users):
        pool = np.arange(half) if u % 2 == 0 else np.arange(half, n_items)
        for i in rng.choice(pool, 6, replace=False):
            users.append(u)
            items.append(int(i))
    return InteractionData.from_arrays(users, items, n_users=n_users, n_items=n_items)


@pytest.fixture(scope="module")
def fitted() -> LightGCN:
    torch.set_num_threads(1)
    return LightGCN(**TINY).fit(planted())


def test_registered() -> None:
    assert isinstance(create_model("lightgcn", **TINY), LightGCN)


def test_adjacency_is_symmetric_normalised() -> None:
    r = planted(10, 16).csr()
    a = normalized_adjacency(r).to_dense().numpy()
    n_users = r.shape[0]
    assert a.shape == (26, 26)
    np.testing.assert_allclose(a, a.T, atol=1e-7)
    assert not a[:n_users, :n_users].any() and not a[n_users:, n_users:].any()
    du, di = np.asarray(r.sum(1)).ravel(), np.asarray(r.sum(0)).ravel()
    u, i = r.nonzero()
    np.testing.assert_allclose(a[u, n_users + i], 1 / np.sqrt(du[u] * di[i]), rtol=1e-6)


def test_isolated_nodes_get_zero_rows() -> None:
    data = InteractionData.from_arrays([0, 1], [0, 1], n_users=3, n_items=3)
    a = normalized_adjacency(data.csr()).to_dense().numpy()
    assert np.isfinite(a).all()
    assert not a[2].any() and not a[5].any()  # user 2 and item 2 have no edges


def test_final_embedding_is_layer_mean(fitted: LightGCN) -> None:
    assert fitted.network is not None
    with torch.no_grad():
        layers = fitted.network.layer_embeddings()
        users, items = fitted.network()
    assert len(layers) == TINY["layers"] + 1
    np.testing.assert_allclose(users.numpy(), torch.stack(layers).mean(0)[: fitted.n_users].numpy(), rtol=1e-6)
    # The cached scores are the dot products of those final embeddings.
    np.testing.assert_allclose(fitted.score([3]), (users[3:4] @ items.T).numpy(), rtol=1e-5, atol=1e-6)


def test_candidate_scores_match_full_scores(fitted: LightGCN) -> None:
    full = fitted.score([0, 1])
    np.testing.assert_array_equal(fitted.score([0, 1], items=[5, 20, 2]), full[:, [5, 20, 2]])


def test_fold_in_follows_the_history(fitted: LightGCN) -> None:
    scores = fitted.score_history([[0, 1, 2], [15, 16, 17], []])
    assert scores.shape == (3, 30)
    assert scores[0, :15].mean() > scores[0, 15:].mean()
    assert scores[1, 15:].mean() > scores[1, :15].mean()
    assert not scores[2].any()  # an empty history has no edges: every item scores 0


def test_fold_in_of_a_training_user_resembles_its_own_scores(fitted: LightGCN) -> None:
    assert fitted.train_matrix is not None
    history = fitted.train_matrix[4].indices
    folded, own = fitted.score_history([history])[0], fitted.score([4])[0]
    assert np.corrcoef(folded, own)[0, 1] > 0.8


def test_fold_in_ignores_repeats_and_order(fitted: LightGCN) -> None:
    a, b = fitted.score_history([[3, 1, 2], [1, 2, 3, 3, 1]])
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_save_load_keeps_scores_and_fold_in(fitted: LightGCN, tmp_path) -> None:
    fitted.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, LightGCN)
    np.testing.assert_array_equal(loaded.score([0, 7]), fitted.score([0, 7]))
    np.testing.assert_array_equal(loaded.score_history([[1, 2, 20]]), fitted.score_history([[1, 2, 20]]))
    # The network is rebuilt too, so its propagation reproduces the saved caches.
    assert loaded.network is not None
    with torch.no_grad():
        users, _ = loaded.network()
    np.testing.assert_allclose(users[:3].numpy(), fitted._user_final[:3], rtol=1e-5, atol=1e-6)


def test_seeded_fit_is_repeatable() -> None:
    a = LightGCN(**{**TINY, "epochs": 3}).fit(planted()).score([0, 1])
    b = LightGCN(**{**TINY, "epochs": 3}).fit(planted()).score([0, 1])
    np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_best_epoch_after_warmup(monkeypatch: pytest.MonkeyPatch) -> None:
    data = planted()
    held = np.random.default_rng(1).random(len(data)) < 0.2
    train, valid = data.subset(~held), data.subset(held)
    # A scripted validation curve from epoch 2 (after the warm-up): the best at epoch 4, then worse.
    curve = iter([0.1, 0.2, 0.5, 0.3, 0.3, 0.3, 0.3])
    snapshots: dict[int, np.ndarray] = {}

    def fake_monitor(self, tr, va, stop_on):  # noqa: ANN001, ANN202
        assert set(va.users.tolist()) <= set(tr.users.tolist())  # only known users are scored
        snapshots[len(snapshots) + 2] = self.score([0]).copy()
        value = next(curve)
        return "ndcg@10", value, value

    # The base class's epoch loop asks `_monitor` for the validation score.
    monkeypatch.setattr(LightGCN, "_monitor", fake_monitor)
    model = LightGCN(**{**TINY, "epochs": 30, "patience": 3, "warmup_epochs": 2}).fit(train, valid)
    assert model.training.epochs_trained == 8  # epochs 0-1 unvalidated, 2-7 validated, stop after 3 without gain
    assert model.training.best_epoch == 4
    assert [r.get("ndcg@10") for r in model.training.records] == [None, None, 0.1, 0.2, 0.5, 0.3, 0.3, 0.3]
    assert sorted(snapshots) == [2, 3, 4, 5, 6, 7]
    np.testing.assert_allclose(model.score([0]), snapshots[4], rtol=1e-6)


def test_layers_zero_is_matrix_factorisation() -> None:
    model = LightGCN(**{**TINY, "layers": 0}).fit(planted())
    assert model.network is not None
    np.testing.assert_allclose(
        model.score([2]), (model.network.user_embedding.weight[2:3] @ model.network.item_embedding.weight.T).detach(),
        rtol=1e-5,
    )
    assert model.score_history([[0, 1]]).shape == (1, 30)


@pytest.mark.parametrize(
    ("field", "value"),
    [("dim", 0), ("layers", -1), ("lr", 0.0), ("reg", -1.0), ("batch_size", 0), ("epochs", 1.5), ("warmup_epochs", -2)],
)
def test_bad_config_names_the_value(field: str, value: object) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"{field} must be .*{value}"):
        LightGCNConfig(**{field: value})


def test_propagation_gradient_equals_torchs_own() -> None:
    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((12, 9)) < 0.3).astype(np.float32))
    torch.manual_seed(0)
    net = LightGCNNetwork(12, 9, 4, 3, normalized_adjacency(train))
    net.reset_parameters(0.1)
    weights = torch.randn(21, 4)
    users, items = net()
    (torch.cat([users, items]) * weights).sum().backward()
    ours = net.user_embedding.weight.grad.clone(), net.item_embedding.weight.grad.clone()
    dense = net.adjacency.to_dense()
    x = torch.cat([net.user_embedding.weight, net.item_embedding.weight]).detach().requires_grad_(True)
    layers = [x]
    for _ in range(3):
        layers.append(dense @ layers[-1])
    (sum(layers) / 4 * weights).sum().backward()
    torch.testing.assert_close(torch.cat(ours), x.grad)


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_hand_written_step_equals_autograd(layers: int) -> None:
    """`train_step`'s loss and gradients are those of `loss_for_batch` through autograd (duplicates included)."""
    torch.manual_seed(0)
    matrix = planted(12, 14).csr()
    net = LightGCNNetwork(12, 14, 4, layers, normalized_adjacency(matrix))
    net.reset_parameters(0.1)
    u, i, j = torch.tensor([0, 1, 1, 5, 0]), torch.tensor([2, 3, 3, 9, 2]), torch.tensor([4, 3, 7, 0, 0])
    loss = net.loss_for_batch(u, i, j, 0.1)
    loss.backward()
    expected = [net.user_embedding.weight.grad.clone(), net.item_embedding.weight.grad.clone()]
    net.user_embedding.weight.grad.fill_(7.0)  # stale values must be overwritten, not added to
    net.item_embedding.weight.grad.fill_(7.0)
    value = net.train_step(u, i, j, 0.1)
    assert value == pytest.approx(float(loss.detach()), rel=1e-6)
    torch.testing.assert_close(net.user_embedding.weight.grad, expected[0])
    torch.testing.assert_close(net.item_embedding.weight.grad, expected[1])


def test_embedding_bag_propagation_equals_the_sparse_product() -> None:
    adjacency = normalized_adjacency(planted(12, 14).csr())
    net = LightGCNNetwork(12, 14, 4, 2, adjacency)
    x = torch.randn(26, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(net.propagate(x), torch.sparse.mm(adjacency, x))
    with torch.no_grad():
        fast = net.layer_embeddings()
    slow = net.layer_embeddings()  # grad enabled: the autograd path
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b.detach())
