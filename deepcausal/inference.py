"""Uncertainty of a fitted two-stage model: bootstrap draws of the heads, and bands from draws.

Two sources of sampling variability are measured (DESIGN §7):

**Within a member: a score (multiplier) bootstrap of the closed-form heads.** With the networks held
fixed, the heads are ridge solutions of the per-row least-squares scores. Reweighting the rows by
independent multipliers wᵢ (mean 1, variance 1; exponential, i.e. the Bayesian bootstrap) and taking
one Newton step from the fitted heads gives a bootstrap draw at the cost of one pass over the data:

    stage 1   V_b = V̂ + A₁⁻¹ s₁(V̂; w_b),   s₁(V; w) = (1/n₁) Σᵢ wᵢ F₁ᵢ (targetᵢ − F₁ᵢᵀ V)ᵀ − β₁ V
    stage 2   u_b = û + A₂⁻¹ s₂(û; w'_b, V_b),
              s₂(u; w, V) = (1/n₂) Σⱼ wⱼ Gⱼ(V) (Yⱼ − Gⱼ(V)ᵀ u) − β₂ u

with A = FᵀF/n + βI the Hessian of each ridge loss and V̂, û the ridge heads on all rows of each half
(so s(·; 1) = 0). Stage 2 is evaluated at the *drawn* stage-1 head, so the draws carry the
first-stage (generated-regressor) noise into u, as a 2SLS standard error does. The cost is
O(B·n·d) per stage, never a d × d solve per draw. What it does not see: the variability of the
learned features themselves.

**Between members: an ensemble of fits with their own seeds and splits.** Its spread measures the
split, initialisation and batch-order variability and, through the splits, part of the
feature-learning variability. The two are combined like multiple imputations (Rubin's rules):

    se² = mean_k Var_b(draws of member k) + (1 + 1/K) Var_k(estimate of member k)

What no band here accounts for: bias from regularisation, network capacity and training length.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
from scipy import stats

from .heads import solve_spd

__all__ = ["score_bootstrap_heads", "combine_draws", "check_alpha", "NoDrawsError"]


class NoDrawsError(ValueError):
    """The fit kept neither bootstrap draws nor several members, so it cannot give an interval."""


def check_alpha(alpha) -> float:
    """``alpha`` as a float in (0, 1), or a ValueError naming it."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}") from None
    if not 0.0 < a < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return a


def _stream_stats(pairs):
    """Σ FᵀF, Σ FᵀY, n in float64 over (F, Y) batches."""
    FtF = FtY = None
    n = 0
    for F, Y in pairs:
        F, Y = F.double(), Y.double()
        FtF = F.T @ F if FtF is None else FtF + F.T @ F
        FtY = F.T @ Y if FtY is None else FtY + F.T @ Y
        n += F.shape[0]
    return FtF, FtY, n


def _ridge_system(FtF, FtY, n, beta, comm):
    FtF, FtY, n = comm.sum(FtF), comm.sum(FtY), comm.sum_float(n)
    A = FtF / n
    A.diagonal().add_(beta)
    return A, solve_spd(A, FtY / n), n


@torch.no_grad()
def score_bootstrap_heads(est, nets, halves, n_draws: int, seed: int, comm, batch_size: int = 512) -> torch.Tensor:
    """Deviations u_b − û of ``n_draws`` score-bootstrap draws of the stage-2 head (module docstring).

    ``est`` supplies the feature hooks (``_stage1_features``, ``_stage1_target``,
    ``_stage2_parts``, ``_stage2_combine``); ``nets`` are in eval mode; ``halves`` are the two stage
    halves (all their rows are used). Returns a float64 tensor of shape (n_draws, d₂, k).
    """
    gen = torch.Generator().manual_seed(int(seed) + 7919 * comm.rank)

    def weights(m, device):  # exponential multipliers minus one (mean 0, variance 1), a column per draw
        u = torch.rand(m, n_draws, generator=gen, dtype=torch.float64)
        return (-torch.log1p(-u) - 1.0).to(device)

    # Two passes over each half (the statistics, then the scores), with the features computed again in the
    # second pass rather than kept: at a million rows DFPV's 289-column stage-1 features alone take 0.6 GB.
    def stage1_pairs():
        for b in halves[0].batches(batch_size):
            yield est._stage1_features(nets, b), est._stage1_target(nets, b)

    A1, V_hat, n1 = _ridge_system(*_stream_stats(stage1_pairs()), est.beta1, comm)
    s1 = 0.0
    for F, T in stage1_pairs():
        F, T = F.double(), T.double()
        R = T - F @ V_hat
        s1 = s1 + _weighted_scores_shared(F, R, weights(F.shape[0], F.device))
    s1 = comm.sum(s1) / n1  # (B, d₁, k₁): the β₁ term cancels against w ≡ 1
    V_draws = V_hat + _solve_batched(A1, s1)

    def stage2_rows():
        for b in halves[1].batches(batch_size):
            F1 = est._stage1_features(nets, b).double()
            parts = {k: (v.double() if v is not None else None) for k, v in est._stage2_parts(nets, b, False).items()}
            yield F1, parts, b["Y"].double()

    A2, u_hat, n2 = _ridge_system(
        *_stream_stats((est._stage2_combine(p, F1 @ V_hat), Y) for F1, p, Y in stage2_rows()), est.beta2, comm)
    s2 = 0.0
    for F1, parts, Y in stage2_rows():
        G = est._stage2_combine(parts, torch.einsum("nd,bdk->bnk", F1, V_draws))  # (B, n, d₂)
        R = Y.unsqueeze(0) - G @ u_hat  # (B, n, k)
        w = 1.0 + weights(F1.shape[0], F1.device).T  # (B, n)
        s2 = s2 + torch.bmm(G.transpose(1, 2), w.unsqueeze(2) * R)  # Σⱼ w_bj G_bj R_bjᵀ, (B, d₂, k)
    s2 = comm.sum(s2) / n2 - est.beta2 * u_hat
    return _solve_batched(A2, s2)


def _weighted_scores_shared(F: torch.Tensor, R: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Σᵢ w_ib Fᵢ Rᵢᵀ for every draw b: (B, d, k) from F (n, d), R (n, k) and multipliers w (n, B).

    One (d × n) · (n × B·k) matrix product. ``einsum("nb,nd,nk->bdk")`` gives the same numbers but
    took 12× longer on DFPV's 289-column stage-1 features (a third of a 10⁶-row fit went to it).
    """
    n, k = R.shape
    B = w.shape[1]
    weighted = (w.unsqueeze(2) * R.unsqueeze(1)).reshape(n, B * k)  # row i: w_ib R_i for every b
    return (F.T @ weighted).reshape(F.shape[1], B, k).permute(1, 0, 2)


def _solve_batched(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """A⁻¹ B_b for a batch of right-hand sides (b, d, k), through one Cholesky factor of A."""
    b, d, k = B.shape
    X = solve_spd(A, B.permute(1, 0, 2).reshape(d, b * k))
    return X.reshape(d, b, k).permute(1, 0, 2)


def combine_draws(estimates: np.ndarray, deviations: List[Optional[np.ndarray]], alpha: float,
                  band: str = "pointwise") -> dict:
    """Point estimate, standard error and a 1 − alpha band from members' estimates and draws.

    Parameters
    ----------
    estimates : ndarray (K, m)
        Each member's estimate of m quantities (grid points, rows, effects).
    deviations : list of K ndarrays (B, m) or None
        Each member's bootstrap deviations (draw − point estimate), or None for none.
    alpha : float in (0, 1)
    band : {"pointwise", "uniform"}
        ``"pointwise"``: estimate ± z₁₋α/₂ · se per quantity. ``"uniform"``: simultaneous over the m
        quantities by the sup-t construction: the 1 − alpha quantile c of maxⱼ |Dⱼ| / seⱼ over pooled
        draws D whose spread is the total variance, then estimate ± c · se.

    Returns
    -------
    dict with ``estimate``, ``std_error``, ``lower``, ``upper`` (each (m,)), and ``critical_value``.
    """
    alpha = check_alpha(alpha)
    if band not in ("pointwise", "uniform"):
        raise ValueError(f"band must be 'pointwise' or 'uniform', got {band!r}")
    K = estimates.shape[0]
    est = estimates.mean(axis=0)
    have_within = [d for d in deviations if d is not None and d.shape[0] > 1]
    if not have_within and K < 2:
        raise NoDrawsError("intervals need bootstrap draws (n_bootstrap > 0) or several members (n_estimators > 1)")
    within = np.mean([d.var(axis=0, ddof=1) for d in have_within], axis=0) if have_within else 0.0
    between = estimates.var(axis=0, ddof=1) if K > 1 else 0.0
    var = within + (1.0 + 1.0 / K) * between
    se = np.sqrt(np.maximum(var, 0.0))
    if band == "pointwise":
        crit = float(stats.norm.ppf(1.0 - alpha / 2.0))
    else:
        if not have_within:
            raise NoDrawsError("a uniform band needs bootstrap draws (n_bootstrap > 0)")
        # Pooled draws: each member's centred draws plus its scaled offset from the ensemble mean, so
        # that the mixture's variance is within + (1 + 1/K) between (the offsets' variance over k is
        # (K−1)/K × between, hence the factor (K+1)/(K−1)).
        c = np.sqrt((K + 1.0) / (K - 1.0)) if K > 1 else 0.0
        pooled = np.concatenate([
            (d - d.mean(axis=0)) + c * (estimates[k] - est)
            for k, d in enumerate(deviations) if d is not None and d.shape[0] > 1
        ])
        safe = np.where(se > 0, se, np.inf)
        crit = float(np.quantile(np.max(np.abs(pooled) / safe, axis=1), 1.0 - alpha))
    return {"estimate": est, "std_error": se, "lower": est - crit * se, "upper": est + crit * se,
            "critical_value": crit}
