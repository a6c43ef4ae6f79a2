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
O(B·n·d) per stage, never a d × d solve per draw. Averages over the stage-2 rows that a prediction
integrates with (DFPV's f(a) = E_W h(a, W) uses the mean of ψ_W(W) over them) are drawn with the same
multipliers, so a draw of f(a) carries their sampling noise too. What it does not see: the
variability of the learned features themselves.

**Between members: an ensemble of fits with their own seeds and splits.** Its spread measures the
split, initialisation and batch-order variability and, through the splits, part of the
feature-learning variability. The two are combined like multiple imputations (Rubin's rules):

    se² = mean_k Var_b(draws of member k) + (1 + 1/K) Var_k(estimate of member k)

with Student's t quantiles on Barnard-Rubin degrees of freedom (the between-member part has only
K − 1), and a simultaneous (sup-t) band from multiplier draws of that combined covariance
(:func:`combine_draws`).

What no band here accounts for: bias from regularisation, network capacity and training length.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
from scipy import stats

from .heads import solve_spd

__all__ = ["score_bootstrap_heads", "combine_draws", "barnard_rubin_dof", "check_alpha", "NoDrawsError"]


class NoDrawsError(ValueError):
    """The fit kept neither bootstrap draws nor several members, so it cannot give an interval."""


# Rows per batch of the score bootstrap's passes. The multipliers are drawn batch by batch, so anything
# that draws them again row by row (the complexity family's linear candidate) must use the same batches.
BOOTSTRAP_BATCH = 512


def check_alpha(alpha) -> float:
    """``alpha`` as a float in (0, 0.5], or a ValueError naming it.

    ``alpha`` is the miscoverage (econml's and statsmodels' convention): a 1 − alpha band. A value above
    0.5 (``alpha=0.95`` meant as a confidence level) would silently give a band narrower than its
    estimate's standard error, so it is refused.
    """
    hint = "alpha is the miscoverage: alpha=0.05 gives a 95% band"
    if isinstance(alpha, (bool, np.bool_)):
        raise ValueError(f"alpha must be a number in (0, 0.5], got {alpha!r} ({hint})")
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in (0, 0.5], got {alpha!r} ({hint})") from None
    if not 0.0 < a <= 0.5:
        raise ValueError(f"alpha must be in (0, 0.5], got {alpha!r}: {hint}")
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
def score_bootstrap_heads(est, nets, halves, n_draws: int, seed: int, comm, batch_size: Optional[int] = None,
                          penalties: Optional[torch.Tensor] = None, same_rows: bool = False):
    """Deviations u_b − û of ``n_draws`` score-bootstrap draws of the stage-2 head (module docstring),
    and the same draws of the stage-2 summaries a prediction integrates with.

    ``est`` supplies the feature hooks (``_stage1_features``, ``_stage1_target``,
    ``_stage2_parts``, ``_stage2_combine``, ``_summary_terms``, ``_summaries_from_means``); ``nets``
    are in eval mode; ``halves`` are the two stage halves (all their rows are used).

    Summaries (DFPV's mean of ψ_W over the stage-2 rows) are means over the same rows as stage 2, so
    draw b reweights them with the same multipliers w_bj: s_b = Σⱼ w_bj tⱼ / Σⱼ w_bj for each per-row
    term tⱼ. A prediction f(a) = Φ(a; s) u then varies with both u_b and s_b, jointly.

    Returns the head deviations, float64 (n_draws, d₂, k), and the summary draws (a dict of tensors
    with a leading dimension n_draws, see ``_summaries_from_means``), or None for an estimator
    without summaries.

    ``same_rows``: both stages were solved on the same rows (full-sample heads; ``halves`` then names
    the same rows twice), so a row keeps one multiplier in both stages: the stage-2 pass draws the
    stage-1 pass's multipliers again, row by row. (Between two halves the two passes' draws follow one
    another from one generator, so a row's multiplier is the same in either case.)

    ``penalties`` (C, d₂), optional: C further heads of the same stage 2, each with extra ridge
    penalties on the diagonal, u_c = (A₂ + diag(p_c))⁻¹ FᵀY/n (the complexity family of
    :mod:`deepcausal._complexity`), drawn with the same multipliers. Then a third value is returned:
    ``{"heads": (C, d₂, k), "draws": (C, n_draws, d₂, k), "V": the stage-1 head they share}`` (draws as
    deviations from each head).
    """
    batch_size = batch_size or BOOTSTRAP_BATCH
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
            yield F1, parts, b["Y"].double(), b

    A2, u_hat, n2 = _ridge_system(
        *_stream_stats((est._stage2_combine(p, F1 @ V_hat), Y) for F1, p, Y, _ in stage2_rows()), est.beta2, comm)
    if same_rows:
        gen.manual_seed(int(seed) + 7919 * comm.rank)
    b2 = None
    if penalties is not None:
        b2 = A2 @ u_hat  # FᵀY/n, without a second pass
        systems = [A2 + torch.diag(p.to(A2)) for p in penalties]
        u_cands = [solve_spd(S, b2) for S in systems]
        s2_cands = [0.0 for _ in systems]
    s2, term_sums, weight_sum = 0.0, {}, 0.0
    for F1, parts, Y, b in stage2_rows():
        G = est._stage2_combine(parts, torch.einsum("nd,bdk->bnk", F1, V_draws))  # (B, n, d₂)
        R = Y.unsqueeze(0) - G @ u_hat  # (B, n, k)
        w = 1.0 + weights(F1.shape[0], F1.device).T  # (B, n)
        s2 = s2 + torch.bmm(G.transpose(1, 2), w.unsqueeze(2) * R)  # Σⱼ w_bj G_bj R_bjᵀ, (B, d₂, k)
        if b2 is not None:
            for c, u_c in enumerate(u_cands):
                s2_cands[c] = s2_cands[c] + torch.bmm(G.transpose(1, 2), w.unsqueeze(2) * (Y.unsqueeze(0) - G @ u_c))
        for name, t in est._summary_terms(nets, b).items():  # Σⱼ w_bj tⱼ, (B, p)
            term_sums[name] = term_sums.get(name, 0.0) + w @ t.double()
        weight_sum = weight_sum + w.sum(1, keepdim=True)
    s2 = comm.sum(s2) / n2 - est.beta2 * u_hat
    candidates = None
    if b2 is not None:
        draws = [_solve_batched(S, comm.sum(sc) / n2 - (est.beta2 + p.to(u_c).unsqueeze(1)) * u_c)
                 for S, sc, p, u_c in zip(systems, s2_cands, penalties, u_cands)]
        candidates = {"heads": torch.stack(u_cands), "draws": torch.stack(draws), "V": V_hat}
    summary_draws = None
    if term_sums:
        total = comm.sum(weight_sum)
        summary_draws = est._summaries_from_means({k: comm.sum(v) / total for k, v in term_sums.items()})
    if penalties is not None:
        return _solve_batched(A2, s2), summary_draws, candidates
    return _solve_batched(A2, s2), summary_draws


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


def barnard_rubin_dof(within: np.ndarray, between: np.ndarray, n_members: int,
                      dof_complete: Optional[float] = None) -> np.ndarray:
    """Degrees of freedom of Rubin's combined variance, per quantity (Barnard & Rubin 1999).

    With K members, within-member variance W̄ and between-member variance B, the total is
    T = W̄ + (1 + 1/K) B and λ = (1 + 1/K) B / T the share of it that is estimated from only K − 1
    degrees of freedom:

        ν_old = (K − 1) / λ²                                  (Rubin 1987)
        ν_obs = (ν_com + 1) / (ν_com + 3) · ν_com · (1 − λ)      (the complete-data df ν_com, shrunk)
        ν     = 1 / (1 / ν_old + 1 / ν_obs)

    Without ``dof_complete`` (ν_com = ∞) ν = ν_old. With one member, or no between-member
    variance, ν = ∞ (the normal quantile). Without within-member variance (λ = 1) ν = K − 1.
    """
    within = np.broadcast_to(np.asarray(within, dtype=np.float64), np.shape(between)).astype(np.float64)
    between = np.asarray(between, dtype=np.float64)
    if n_members < 2:
        return np.full(np.shape(between), np.inf)
    total = within + (1.0 + 1.0 / n_members) * between
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(total > 0, (1.0 + 1.0 / n_members) * between / total, 0.0)
        nu_old = np.where(lam > 0, (n_members - 1.0) / lam**2, np.inf)
        if dof_complete is None or not np.isfinite(dof_complete):
            return nu_old
        v = float(dof_complete)
        nu_obs = (v + 1.0) / (v + 3.0) * v * (1.0 - lam)
        return np.where(nu_obs > 0, 1.0 / (1.0 / nu_old + 1.0 / np.where(nu_obs > 0, nu_obs, 1.0)), nu_old)


def _two_sided_quantile(alpha: float, dof: np.ndarray) -> np.ndarray:
    """The 1 − alpha/2 quantile of Student's t with ``dof`` degrees of freedom (normal where ∞)."""
    dof = np.asarray(dof, dtype=np.float64)
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    return np.where(np.isfinite(dof), stats.t.ppf(1.0 - alpha / 2.0, np.where(np.isfinite(dof), dof, 1.0)), z)


def _simultaneous_level(factors: np.ndarray, se: np.ndarray, dof: float, alpha: float, n_sim: int,
                        seed: int) -> float:
    """The per-quantity two-sided level a at which the quantities are covered simultaneously at 1 − alpha.

    ``factors`` F (r, m) is a square root of the combined covariance (FᵀF = Σ), so gᵀF with
    g ~ N(0, I) is a Gaussian multiplier draw with that covariance; scaled by √(ν / χ²_ν) it is a
    multivariate t draw D, whose coordinates share the one χ² — as the quantities share the one
    estimate of the between-member spread, which makes them err together when there are few
    members. Each coordinate's two-sided p-value is pⱼ = 2 P(t_ν > |Dⱼ| / seⱼ), and a is the alpha
    quantile of minⱼ pⱼ (at most alpha): covering every quantity at level a covers all of them at
    1 − alpha under this dependence.
    """
    rng = np.random.default_rng(seed)
    live = se > 0
    F, s = factors[:, live], se[live]
    smallest = []
    for lo in range(0, n_sim, 500):
        g = rng.standard_normal((min(500, n_sim - lo), F.shape[0])) @ F
        sup = np.max(np.abs(g) / s, axis=1)
        if np.isfinite(dof):
            sup *= np.sqrt(dof / rng.chisquare(dof, size=sup.shape[0]))
            smallest.append(2.0 * stats.t.sf(sup, dof))
        else:
            smallest.append(2.0 * stats.norm.sf(sup))
    return min(float(np.quantile(np.concatenate(smallest), alpha)), alpha)


def combine_draws(estimates: np.ndarray, deviations: List[Optional[np.ndarray]], alpha: float,
                  band: str = "pointwise", *, dof_complete: Optional[float] = None, n_sim: int = 2000,
                  seed: int = 0) -> dict:
    """Point estimate, standard error and a 1 − alpha band from members' estimates and draws.

    The variance follows Rubin's rules for K members (multiple imputations):

        se² = W̄ + (1 + 1/K) B,   W̄ = mean_k Var_b(draws of member k),   B = Var_k(estimate of member k)

    and the quantile is Student's t with Barnard–Rubin degrees of freedom
    (:func:`barnard_rubin_dof`): the between-member part is estimated from K − 1 degrees of freedom,
    which a normal quantile ignores (at K = 2 the t quantile with one degree of freedom is 12.7).

    Parameters
    ----------
    estimates : ndarray (K, m)
        Each member's estimate of m quantities (grid points, rows, effects).
    deviations : list of K ndarrays (B, m) or None
        Each member's bootstrap deviations (draw − point estimate), or None for none.
    alpha : float in (0, 1)
    band : {"pointwise", "uniform"}
        ``"pointwise"``: estimate ± t_{ν_j, 1−α/2} · se_j per quantity. ``"uniform"``: simultaneous
        over the m quantities (sup-t): estimate ± cⱼ · seⱼ with cⱼ = max(t_{ν̄, 1−a/2}, t_{νⱼ, 1−α/2}).
        ν̄ is the Barnard-Rubin degrees of freedom of the quantities' summed variances, and a ≤ alpha
        the level at which multivariate-t multiplier draws with the combined covariance (the members'
        draw covariance plus (1 + 1/K) × the between-member covariance) and ν̄ degrees of freedom are
        covered jointly at 1 − alpha (:func:`_simultaneous_level`). So no quantity's uniform critical
        value is below its pointwise one, and for one quantity the two bands are the same. Under
        Rubin's model of an ensemble, simulated in ``tests/test_bands_and_threads.py``, the band
        covers all 10 correlated quantities in 95-97% of replications at K = 2, 3 and 5.
    dof_complete : float, optional
        Complete-data degrees of freedom of one member's estimate (ν_com of Barnard & Rubin); None
        for infinitely many.
    n_sim : int, default=2000
        Multiplier draws for the uniform critical value.
    seed : int, default=0
        Seed of those draws, so that a band is the same each time it is asked for.

    Returns
    -------
    dict with ``estimate``, ``std_error``, ``lower``, ``upper``, ``dof`` (ν per quantity) and
    ``critical_value`` (per quantity), each (m,).
    """
    alpha = check_alpha(alpha)
    if band not in ("pointwise", "uniform"):
        raise ValueError(f"band must be 'pointwise' or 'uniform', got {band!r}")
    K = estimates.shape[0]
    est = estimates.mean(axis=0)
    have_within = [d for d in deviations if d is not None and d.shape[0] > 1]
    if not have_within and K < 2:
        raise NoDrawsError("intervals need bootstrap draws (n_bootstrap > 0) or several members (n_estimators > 1)")
    within = np.mean([d.var(axis=0, ddof=1) for d in have_within], axis=0) if have_within else np.zeros_like(est)
    between = estimates.var(axis=0, ddof=1) if K > 1 else np.zeros_like(est)
    se = np.sqrt(np.maximum(within + (1.0 + 1.0 / K) * between, 0.0))
    dof = barnard_rubin_dof(within, between, K, dof_complete)
    crit = _two_sided_quantile(alpha, dof)
    if band == "uniform" and est.shape[0] > 1 and np.any(se > 0):
        # A square root of the combined covariance: rows whose Gram matrix is W̄ + (1 + 1/K) B
        # (each member's centred draws, then the centred member estimates).
        rows = [(d - d.mean(axis=0)) / np.sqrt(len(have_within) * (d.shape[0] - 1.0)) for d in have_within]
        if K > 1:
            rows.append((estimates - est) * np.sqrt((1.0 + 1.0 / K) / (K - 1.0)))
        # the shared degrees of freedom: Barnard-Rubin's for the sum of the quantities' variances
        shared = float(barnard_rubin_dof(within.sum(), between.sum(), K, dof_complete))
        level = _simultaneous_level(np.concatenate(rows), se, shared, alpha, n_sim, seed)
        crit = np.maximum(_two_sided_quantile(level, np.full_like(dof, shared)), crit)
    return {"estimate": est, "std_error": se, "lower": est - crit * se, "upper": est + crit * se,
            "dof": dof, "critical_value": crit}
