"""The two-stage head solver: known answers (2SLS) and the role of each coefficient."""

import numpy as np
import pytest
import torch

from deepcausal.heads import add_intercept, proximal_head, ridge_head
from deepcausal.twostage import TwoStageHeads, squared_loss

# Warnings these tests provoke on purpose (short fits the linear check finds shrunk): silenced here so that a
# new one stands out.
pytestmark = [
    pytest.mark.filterwarnings("ignore::deepcausal.exceptions.ShrinkageWarning"),
]


def _iv_data(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    e = torch.randn(n, 1, generator=g, dtype=torch.float64)
    t = z @ torch.tensor([[1.0], [-0.5]], dtype=torch.float64) + e
    y = 2.0 * t + 1.0 + 3.0 * e  # confounded: e enters both
    return z, t, y


def test_identity_features_and_zero_coefficients_give_two_stage_least_squares():
    z, t, y = _iv_data()
    Z1 = add_intercept(z)
    heads = TwoStageHeads(beta1=0.0, beta2=0.0)
    V = heads.stage1_update(Z1, t)
    u = heads.stage2_update(add_intercept(Z1 @ V), y)
    # independent 2SLS: first stage OLS of t on [z, 1], second stage OLS of y on [t̂, 1]
    Zn, tn, yn = Z1.numpy(), t.numpy(), y.numpy()
    t_hat = Zn @ np.linalg.lstsq(Zn, tn, rcond=None)[0]
    u_ref = np.linalg.lstsq(np.hstack([t_hat, np.ones_like(t_hat)]), yn, rcond=None)[0]
    np.testing.assert_allclose(u.numpy(), u_ref, atol=1e-10)
    assert abs(u[0, 0].item() - 2.0) < 0.3  # 2SLS is consistent; OLS of y on t would be biased


def test_updates_follow_the_proximal_formula_and_first_update_is_ridge():
    z, t, y = _iv_data(n=64)
    F = add_intercept(z)
    heads = TwoStageHeads(lam1=0.7, lam2=0.2, lam12=0.3, beta1=0.01, beta2=0.02)
    V0 = heads.stage1_update(F[:32], t[:32])
    np.testing.assert_allclose(V0.numpy(), ridge_head(F[:32], t[:32], 0.01).numpy(), atol=1e-12)
    V1 = heads.stage1_update(F[32:], t[32:])
    np.testing.assert_allclose(V1.numpy(), proximal_head(F[32:], t[32:], V0, 0.7, 0.01).numpy(), atol=1e-12)
    refit = heads.stage1_refit(F[:32], t[:32])
    np.testing.assert_allclose(refit.numpy(), proximal_head(F[:32], t[:32], V1, 0.3, 0.01).numpy(), atol=1e-12)
    assert torch.equal(heads.V, V1)  # the refit does not move the stored head
    G = add_intercept(F @ V1.to(F.dtype))
    u0 = heads.stage2_update(G, y)
    u1 = heads.stage2_update(G[:10], y[:10])
    np.testing.assert_allclose(u1.numpy(), proximal_head(G[:10], y[:10], u0, 0.2, 0.02).numpy(), atol=1e-12)


def test_stage1_refit_carries_gradient_into_the_target_network():
    z, t, y = _iv_data(n=50)
    F = add_intercept(z).float()
    net = torch.nn.Linear(1, 3)
    heads = TwoStageHeads(lam12=0.5, beta1=0.1)
    heads.stage1_update(F, net(t.float()))
    V = heads.stage1_refit(F, net(t.float()))
    loss = squared_loss(add_intercept(F @ V.float()), y.float(), torch.ones(4, 1))
    loss.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


def test_streamed_refit_equals_ridge_on_all_rows():
    z, t, y = _iv_data(n=101)
    F = add_intercept(z)
    heads = TwoStageHeads(lam1=5.0, beta1=0.3, beta2=0.4)
    V = heads.refit_stage1((F[i : i + 17], t[i : i + 17]) for i in range(0, 101, 17))
    np.testing.assert_allclose(V.numpy(), ridge_head(F, t, 0.3).numpy(), atol=1e-10)
    G = add_intercept(F @ V)
    u = heads.refit_stage2((G[i : i + 30], y[i : i + 30]) for i in range(0, 101, 30))
    np.testing.assert_allclose(u.numpy(), ridge_head(G, y, 0.4).numpy(), atol=1e-10)


def test_reducer_sees_every_solve():
    seen = []

    def reducer(stats):
        seen.append(stats.n)
        return stats

    z, t, _ = _iv_data(n=20)
    heads = TwoStageHeads(beta1=0.1, reducer=reducer)
    heads.stage1_update(add_intercept(z), t)
    heads.refit_stage1([(add_intercept(z), t)])
    assert seen == [20, 20]


@pytest.mark.parametrize("name", ["lam1", "lam2", "lam12", "beta1", "beta2"])
def test_negative_coefficient_is_refused_by_name(name):
    with pytest.raises(ValueError, match=name):
        TwoStageHeads(**{name: -0.1})


def test_stage1_solves_on_the_same_features_reuse_the_gram_and_match_fresh_solves_bitwise():
    # One training step solves the stage-1 head three times on one F₁ (update, refit with graph,
    # refit without): the cached Gram and factors must give exactly the heads of fresh solves.
    g = torch.Generator().manual_seed(3)
    F = add_intercept(torch.randn(48, 5, generator=g)).float()
    targets = [torch.randn(48, 2, generator=g).float() for _ in range(3)]
    heads = TwoStageHeads(lam1=0.4, lam12=0.1, beta1=0.05)
    heads.stage1_update(F[:24], targets[0][:24])  # a previous head
    V_prev = heads.V.clone()
    V = heads.stage1_update(F, targets[1])
    cache = heads._stage1_gram
    refit = heads.stage1_refit(F.detach(), targets[2])  # a new view of the same storage
    again = heads.stage1_refit(F, targets[1])
    assert heads._stage1_gram is cache and set(cache.factors) == {0.4 + 0.05, 0.1 + 0.05}
    assert torch.equal(V, proximal_head(F, targets[1], V_prev, 0.4, 0.05))
    assert torch.equal(refit, proximal_head(F, targets[2], V, 0.1, 0.05))
    assert torch.equal(again, proximal_head(F, targets[1], V, 0.1, 0.05))


def test_features_written_in_place_are_not_served_from_the_cache():
    g = torch.Generator().manual_seed(4)
    F = add_intercept(torch.randn(40, 3, generator=g))
    t = torch.randn(40, 1, generator=g)
    heads = TwoStageHeads(lam12=0.2, beta1=0.1)
    heads.stage1_update(F, t)
    F[:, 0].mul_(3.0)  # same storage and shape, new values: the version counter tells them apart
    refit = heads.stage1_refit(F, t)
    np.testing.assert_allclose(refit.numpy(), proximal_head(F, t, heads.V, 0.2, 0.1).numpy(), atol=1e-12)


def test_cached_refit_passes_the_same_gradient_to_the_target_network():
    g = torch.Generator().manual_seed(5)
    F = add_intercept(torch.randn(30, 4, generator=g)).float()
    t, y = torch.randn(30, 1, generator=g).float(), torch.randn(30, 1, generator=g).float()
    grads = []
    for cached in (True, False):
        net = torch.nn.Linear(1, 2)
        net.load_state_dict({"weight": torch.full((2, 1), 0.3), "bias": torch.tensor([0.1, -0.2])})
        heads = TwoStageHeads(lam1=0.3, lam12=0.3, beta1=0.1)
        heads.stage1_update(F, net(t).detach())
        V = heads.stage1_refit(F if cached else F.clone(), net(t))  # a clone is other storage: no cache
        squared_loss(add_intercept(F @ V.float()), y, torch.ones(3, 1)).backward()
        grads.append(net.weight.grad.clone())
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0


def test_pickled_heads_leave_the_gram_cache_behind():
    import pickle

    z, t, _ = _iv_data(n=30)
    heads = TwoStageHeads(beta1=0.1)
    heads.stage1_update(add_intercept(z), t)
    assert heads._stage1_gram is not None
    copy = pickle.loads(pickle.dumps(heads))
    assert copy._stage1_gram is None and torch.equal(copy.V, heads.V)


def test_a_fitted_member_keeps_no_training_features():
    from deepcausal import DFIV
    from deepcausal.datasets import lowdim

    d = lowdim(600, seed=0)
    est = DFIV(n_estimators=1, n_epochs=2, n_bootstrap=0, random_state=0).fit(d.train, **d.fit_kwargs())
    assert est.heads_._stage1_gram is None and est.heads_.V is not None
