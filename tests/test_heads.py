"""Known-answer tests of the closed-form and proximal head solves (DESIGN §2)."""

import numpy as np
import pytest
import torch

from deepcausal.heads import (
    SufficientStats,
    add_intercept,
    outer_features,
    proximal_head,
    ridge_head,
    solve_spd,
)


@pytest.fixture(autouse=True)
def _float64_default():
    # Known answers are checked to 1e-8..1e-12: build every tensor in float64, then restore.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _data(n=40, d=6, k=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    F = add_intercept(torch.randn(n, d - 1, generator=g))
    Y = torch.randn(n, k, generator=g)
    return F, Y


def _lstsq_reference(F, Y, beta, lam=0.0, W_prev=None):
    """Independent solution: stack the penalties as extra rows and call numpy's lstsq.

    (1/n)||Y − FW||² + λ||W − W_prev||² + β||W||² is the plain least squares of
    [F/√n; √λ I; √β I] W ≈ [Y/√n; √λ W_prev; 0].
    """
    F, Y = F.numpy(), Y.numpy()
    n, d = F.shape
    k = Y.shape[1]
    W_prev = np.zeros((d, k)) if W_prev is None else W_prev.numpy()
    A = np.vstack([F / np.sqrt(n), np.sqrt(lam) * np.eye(d), np.sqrt(beta) * np.eye(d)])
    B = np.vstack([Y / np.sqrt(n), np.sqrt(lam) * W_prev, np.zeros((d, k))])
    return np.linalg.lstsq(A, B, rcond=None)[0]


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("beta", [0.0, 0.1, 5.0])
def test_ridge_matches_lstsq(k, beta):
    F, Y = _data(k=k)
    W = ridge_head(F, Y, beta)
    assert W.dtype == torch.float64 and W.shape == (F.shape[1], k)
    np.testing.assert_allclose(W.numpy(), _lstsq_reference(F, Y, beta), atol=1e-8, rtol=0)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("lam,beta", [(0.5, 0.0), (0.1, 0.1), (3.0, 1e-3)])
def test_proximal_matches_lstsq(k, lam, beta):
    F, Y = _data(k=k, seed=1)
    W_prev = torch.randn(F.shape[1], k)
    W = proximal_head(F, Y, W_prev, lam, beta)
    np.testing.assert_allclose(W.numpy(), _lstsq_reference(F, Y, beta, lam, W_prev), atol=1e-8, rtol=0)


def test_float32_products_stay_close_to_the_float64_path_on_a_well_conditioned_problem():
    """Float32 features form float32 Gram products (the fast path), summed and solved in float64: on a
    well-conditioned system the head differs from the float64 path by float32 rounding only."""
    F, Y = _data(n=2000)
    W32 = ridge_head(F.float(), Y.float(), 0.1)
    W64 = ridge_head(F.float().double(), Y.float().double(), 0.1)
    assert W32.dtype == torch.float64
    err = np.abs(W32.numpy() - W64.numpy()).max() / np.abs(W64.numpy()).max()
    assert 0 < err < 1e-5  # not bit-equal (the products were float32), but close
    stats = SufficientStats.from_batch(F.float(), Y.float())
    assert stats.low_precision and not SufficientStats.from_batch(F, Y).low_precision


def test_float32_system_that_needs_jitter_warns():
    F = torch.ones(50, 3, dtype=torch.float32)  # three identical columns: singular Gram
    with pytest.warns(RuntimeWarning, match="float32 products needed a jitter"):
        SufficientStats.from_batch(F, torch.ones(50, 1)).solve(beta=0.0, lam=0.0)


def test_lambda_zero_is_ridge_and_huge_lambda_freezes_head():
    F, Y = _data(k=2)
    W_prev = torch.randn(F.shape[1], 2)
    np.testing.assert_allclose(proximal_head(F, Y, W_prev, 0.0, 0.2).numpy(), ridge_head(F, Y, 0.2).numpy(), atol=1e-12)
    frozen = proximal_head(F, Y, W_prev, 1e12, 0.2)
    np.testing.assert_allclose(frozen.numpy(), W_prev.numpy(), atol=1e-8, rtol=0)


def test_streaming_statistics_over_unequal_batches_equal_full_batch():
    F, Y = _data(n=103, k=2, seed=3)
    stats = SufficientStats.empty(F.shape[1], 2)
    for lo, hi in [(0, 7), (7, 50), (50, 51), (51, 103)]:
        stats.update(F[lo:hi], Y[lo:hi])
    assert stats.n == 103
    np.testing.assert_allclose(stats.solve(0.05).numpy(), ridge_head(F, Y, 0.05).numpy(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("case", ["duplicate_columns", "fewer_rows_than_features"])
def test_rank_deficient_features_give_finite_heads(case):
    F, Y = _data(n=30, d=8)
    if case == "duplicate_columns":
        F = torch.cat([F, F[:, :3]], dim=1)
    else:
        F = F[:4]
        Y = Y[:4]
    W_prev = torch.zeros(F.shape[1], 1)
    for lam, beta in [(0.0, 1e-3), (1e-3, 0.0)]:
        W = proximal_head(F, Y, W_prev, lam, beta)
        assert torch.isfinite(W).all()
        np.testing.assert_allclose(W.numpy(), _lstsq_reference(F, Y, beta, lam, W_prev), atol=1e-6)


def test_unidentified_head_is_refused():
    F, Y = _data(n=3, d=8)
    with pytest.raises(ValueError, match="beta > 0 or a proximal lam > 0"):
        ridge_head(F, Y, 0.0)


def test_singular_system_uses_jitter_then_lstsq():
    A = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    B = torch.tensor([[2.0], [2.0]])
    X = solve_spd(A, B)  # jitter makes it PD: minimum-norm-like answer, consistent system
    assert torch.isfinite(X).all()
    np.testing.assert_allclose((A @ X).numpy(), B.numpy(), atol=1e-5)
    with pytest.warns(RuntimeWarning, match="least squares"):
        X = solve_spd(-torch.eye(2), B)  # not PSD: Cholesky never succeeds
    np.testing.assert_allclose(X.numpy(), -B.numpy(), atol=1e-12)


def _backbone_loss(theta, X, Y, beta, lam=0.0, W_prev=None, through_solve=True):
    """L(W*(θ), θ) with features F = [tanh(X θ), 1]."""
    F = add_intercept(torch.tanh(X @ theta))
    W = proximal_head(F, Y, W_prev, lam, beta) if lam > 0 else ridge_head(F, Y, beta)
    if not through_solve:
        W = W.detach()
    loss = ((Y - F @ W) ** 2).sum() / F.shape[0] + beta * (W**2).sum()
    if lam > 0:
        loss = loss + lam * ((W - W_prev) ** 2).sum()
    return loss


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_envelope_property(lam):
    g = torch.Generator().manual_seed(7)
    X, Y = torch.randn(50, 3, generator=g), torch.randn(50, 2, generator=g)
    W_prev = torch.randn(5, 2, generator=g)
    grads = []
    for through in (True, False):
        theta = torch.randn(3, 4, generator=torch.Generator().manual_seed(8)).requires_grad_()
        _backbone_loss(theta, X, Y, 0.1, lam, W_prev, through_solve=through).backward()
        grads.append(theta.grad.clone())
    assert grads[0].abs().max() > 1e-3  # a real gradient, not a trivially zero one
    np.testing.assert_allclose(grads[0].numpy(), grads[1].numpy(), atol=1e-6)


def test_differentiable_proximal_refit_matches_finite_differences():
    F, _ = _data(n=12, d=4, k=2)
    W_prev = torch.randn(4, 2)
    Y = torch.randn(12, 2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: proximal_head(F, y, W_prev, 0.2, 0.05), (Y,), eps=1e-6, atol=1e-7)


def test_outer_features_layout():
    a, b = torch.randn(5, 2), torch.randn(5, 3)
    G = outer_features(a, b)
    assert G.shape == (5, 12)
    for i in range(5):
        expected = torch.kron(torch.cat([a[i], torch.ones(1)]), torch.cat([b[i], torch.ones(1)]))
        np.testing.assert_allclose(G[i].numpy(), expected.numpy(), atol=1e-15)
    assert torch.equal(outer_features(a), add_intercept(a))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda F, Y: ridge_head(F, Y, -1.0), "beta"),
        (lambda F, Y: proximal_head(F, Y, torch.zeros(6, 1), float("nan"), 0.1), "lam"),
        (lambda F, Y: ridge_head(F.clone().fill_(float("nan")), Y, 0.1), "F contains NaN"),
        (lambda F, Y: ridge_head(F, Y[:-1], 0.1), "rows"),
        (lambda F, Y: ridge_head(F[:, 0], Y, 0.1), "F must be 2-D"),
        (lambda F, Y: proximal_head(F, Y, torch.zeros(3, 1), 0.1, 0.1), "W_prev has shape"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    F, Y = _data()
    with pytest.raises(ValueError, match=match):
        call(F, Y)
