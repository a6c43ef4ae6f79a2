"""The curves in the treatment that two-stage least squares fits beside the networks: the line, and a cubic spline
whose knots Lepski's method chooses, both with the members' learned covariate features as controls.

The line (:func:`linear_iv_candidate`) is the simpler candidate of DFIV's default held-out rule. The spline is
what ``complexity="sieve"`` reports, and the default where its shape step says so: a sieve built as npiv builds
one (Chen, Christensen and Kankanala 2024), additive in the members' learned covariate features η(x),

    h_J(t, x) = b_J(t)ᵀ β_t + η(x)ᵀ β_η + β_1,

* b_J: a nested family that starts at the line, b = t, then cubic splines with quantile knots: [t, t², t³,
  (t − κ_j)³₊] with 0, 1, 3, 7, 15 interior knots κ (:data:`KNOT_COUNTS` counts the two boundary knots too),
  each function extended linearly beyond the boundary knots (the span of scikit-learn's ``SplineTransformer``
  with ``extrapolation="linear"``);
* instruments: the raw instruments for the line, otherwise per instrument column a B-spline basis of degree 4 with
  4 times the spline's segments (4(k − 1) + 1 quantile knots: CCK's and npiv's ratio, K ≫ J), additive over the
  columns, and every product z_j η_k(x) of a raw instrument and a learned covariate feature, with [η(x), 1];
* the family stops at the first J whose ill-posedness exceeds Chen and Christensen's bound, J √(log J) / ŝ_J ≤
  10 √n (ŝ_J: :func:`smallest_canonical_correlation` of the spline and its instruments) (a further cut on the
  spline's first-stage strength, :data:`FIRST_STAGE_BOUND`, is off: measured, not adopted);
* Lepski: Ĵ is the smallest J whose curve at 200 rows lies within 1.1 θ studentised units of every larger J's,
  θ the 1 − α quantile of the largest bootstrap difference over every pair and row (Gaussian multipliers,
  200 draws, the same for every J), α = min(0.5, √(log J_max / J_max)).

Each member chooses on its own rows. A member whose Ĵ is the line reports the line; one whose Ĵ is a spline gets
:class:`SplineTerms` around its treatment network, so that the spline is one more stage-2 head in the same
coordinates as every other (predictions, effects, bands and saved models work unchanged).

How the default uses it: the held-out rule's shape step (:func:`shape_step`, :func:`departures`) reports the
spline where it departs from the line and the trained curve does not, or where the held-out rows chose the line
and the spline departs from it (benchmarks/RESULTS.md, "A Lepski sieve in t in place of the line", "The shape
step"). In the line's place on its own it chose a cubic on our smooth design that was worse than the line, and
asked to beat the chosen curve on the held-out rows it replaced good trained heads on the lowdim designs.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import nn

from .heads import solve_spd
from .inference import BOOTSTRAP_BATCH, _solve_batched

KNOT_COUNTS = (2, 3, 5, 9, 17)
"""Knots of the cubic splines after the line, boundary knots included (k − 2 interior knots), nested (dyadic)."""
LEPSKI_DRAWS = 200
EVAL_ROWS = 200
THETA_FACTOR = 1.1
ILL_POSED_BOUND = 10.0
FIRST_STAGE_BOUND: Optional[float] = None
"""Where set, a spline enters Lepski's family only where its Cragg-Donald statistic (:func:`first_stage_strength`)
is at least this; None (the default): no such cut. Why it was tried: with weak instruments for its higher terms
2SLS is biased towards OLS and its bootstrap spreads around the biased curve; on horowitz (seed 44) a cubic the
ill-posedness bound admitted departed "significantly" from the line at 50 times its error. Why it is off: at the
line's bound (37.418) and at 10 it also cut the cubics that are the default's best curves (chen_christensen_severe,
our kink design) (benchmarks/RESULTS.md, "The spline in t only where its first stage is strong";
``benchmarks/diagnostics/eval_spline_strength.py`` sets it)."""
NONLINEAR_LEVEL = 0.95  # the sup-t tests of the held-out rule's shape step
HELD_OUT_EVIDENCE = False
"""Where set, the shape step's trained-kept branch also reports the line where Lepski's spline does not depart from
the line on a majority of the members and the held-out rows do not favour the trained head (the held-out rule's z
at most its 1.645), whatever test (B) says: (B) reads the trained head's bootstrap draws, which hold its
networks fixed, so it measures the noise of the head, not of the curve the networks learned. Stated before its runs
and not adopted: it acted on none of 51 fits ("The evidence rule" in ``benchmarks/diagnostics/eval_shape_rule.py``),
then on 3 of 75 fresh ones, all on our smooth design and each for the better (3.4-4.5x), too rarely for its adoption
rule (``benchmarks/diagnostics/eval_held_out_evidence.py``)."""
INSTRUMENT_DEGREE = 4  # the spline's instruments: B-splines of this degree (CCK's and npiv's k_w_degree)
INSTRUMENT_RATIO = 4  # ... with this many segments per segment of the spline in t (npiv's 2 ** k_w_smooth)
INSTRUMENT_PRODUCTS = True  # the spline's instruments gain z ⊗ η (:func:`_instrument_products`); off: as before
NONLINEAR_DRAWS = 20  # with fewer bootstrap draws than this the shape step is skipped (its quantiles need them)
MAX_ROWS = 100_000  # the sieve reads at most this many rows (a random subset beyond)
_LINE_RIDGE = 1e-8  # the line's 2SLS: numerical only (see linear_iv_candidate)
_RIDGE = 1e-8  # relative to the Gram matrix's mean diagonal: numerical only
SIEVE_LABEL = "cubic spline in t (2SLS, Lepski's knots)"


def _orthonormalizer(M: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """C with M @ C an orthonormal basis of M's column space (via the Gram matrix; drops null directions)."""
    ev, vec = np.linalg.eigh(M.T @ M)
    keep = ev > rtol * max(ev.max(), 1e-300)
    return vec[:, keep] / np.sqrt(ev[keep])


def smallest_canonical_correlation(P: np.ndarray, B: np.ndarray) -> float:
    """Sieve measure of ill-posedness s_J: the smallest cosine between span(P) and span(B).

    The smallest singular value of (P'P)^{-1/2} P'B (B'B)^{-1/2} over the directions that span(P) really
    has: collinear columns of P (a binary regressor in a cubic spline basis) are dropped instead of
    counting as unidentified. 0 when span(P) has a direction orthogonal to span(B) (or more dimensions).
    """
    cp, cb = _orthonormalizer(P), _orthonormalizer(B)
    if cp.shape[1] > cb.shape[1]:
        return 0.0
    s = np.linalg.svd(cp.T @ (P.T @ B) @ cb, compute_uv=False)
    return float(s.min()) if s.size else 0.0


def first_stage_strength(s: float, n: int, k: int, p: int) -> float:
    """The Cragg-Donald minimum-eigenvalue statistic g = (n − k) / (k − p) · s² / (1 − s²) of endogenous terms whose
    smallest canonical correlation with ``k`` instrument columns (``p`` of them exogenous, shared with the
    regressors) is ``s``, at ``n`` rows (Cragg and Donald 1993; Stock and Yogo 2005). With one endogenous column it
    is the first stage's partial F. 0 without excluded instruments or degrees of freedom. ``k`` and ``p`` count
    columns: where some are collinear (a binary covariate's terms) the statistic comes out low."""
    if k <= p or n <= k:
        return 0.0
    return math.inf if s >= 1.0 else (n - k) / (k - p) * s * s / (1.0 - s * s)


def spline_knots(t: np.ndarray, k: int) -> np.ndarray:
    """k knots at the quantiles 0, 1/(k − 1), ..., 1 of the values t (the first and last: the boundary)."""
    return np.quantile(np.asarray(t, dtype=np.float64), np.linspace(0.0, 1.0, k))


def cubic_terms(t: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """(n, 1) → (n, k): [t², t³, (t − κ_j)³₊ for the interior knots], each extended linearly outside the
    boundary knots [κ_0, κ_last] (f(c) + f'(c)(t − c), c = t clamped): with t itself, a cubic spline's span."""
    knots = knots.to(t)
    c = t.clamp(knots[0], knots[-1])
    inner = (c - knots[1:-1]).clamp(min=0.0)
    f = torch.cat([c**2, c**3, inner**3], dim=1)
    df = torch.cat([2.0 * c, 3.0 * c**2, 3.0 * inner**2], dim=1)
    return f + df * (t - c)


class SplineTerms(nn.Module):
    """A treatment network with a cubic spline's terms in its first column after its own features.

    ``forward(t)``: (n, d_t) → (n, d_ψ + k), [net(t), :func:`cubic_terms`(t[:, :1])]. The wrapped network's
    features (a :class:`~deepcausal.nets.SkipMLP`: [t, mlp(t)]) keep their place, so every head of the
    unwrapped network extends to this one with zeros.
    """

    def __init__(self, net: nn.Module, knots):
        super().__init__()
        self.net = net
        # a loaded model's knots may arrive on any device: the buffer starts on the CPU and moves with the module
        self.register_buffer("knots", torch.as_tensor(knots, dtype=torch.float64).detach().cpu().clone())

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        psi = self.net(t)
        return torch.cat([psi, cubic_terms(t[:, :1].to(torch.float64), self.knots).to(psi.dtype)], dim=1)


def _spd_solve(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    from scipy.linalg import cho_factor, cho_solve

    A = A + _RIDGE * max(float(np.trace(A)) / len(A), 1e-300) * np.eye(len(A))
    return cho_solve(cho_factor(A), B)


def _tsls(W: np.ndarray, Q: np.ndarray, y: np.ndarray):
    """Two-stage least squares of y on W with instruments Q: (β, Π, A⁻¹Ŵᵀ), Ŵ = QΠ, A = ŴᵀŴ."""
    Pi = _spd_solve(Q.T @ Q, Q.T @ W)
    What = Q @ Pi
    AinvWt = _spd_solve(What.T @ What, What.T)
    return AinvWt @ y, Pi, AinvWt


def _multipliers(seed: int, rank: int, halves, n_draws: int, batch_size: int = BOOTSTRAP_BATCH):
    """The exponential multipliers of :func:`deepcausal.inference.score_bootstrap_heads`, drawn again in
    its order (each stage-1 batch, then each stage-2 batch) from its seed: the same draws, row by row."""
    gen = torch.Generator().manual_seed(int(seed) + 7919 * rank)
    for half in halves:
        for b in half.batches(batch_size):
            u = torch.rand(b["Y"].shape[0], n_draws, generator=gen, dtype=torch.float64)
            yield b, -torch.log1p(-u)


@torch.no_grad()
def member_rows(est, nets, halves) -> dict:
    """A member's rows in the order of its bootstrap multipliers (each stage-1 batch, then each stage-2 batch):
    float64 ``t``, ``z``, ``y`` and ``eta`` (the learned controls η(x), None without covariates), ``val`` (a
    mask of the stage-2 half's held-out rows, its first n_val positions), ``blocks`` (the batches' slices) and
    ``halves``."""
    parts = {k: [] for k in ("T", "eta", "Z", "Y")}
    for half in halves:
        for b in half.batches(BOOTSTRAP_BATCH):
            parts["T"].append(b["T"])
            parts["eta"].append(est._covariate_features(nets, b, False))
            parts["Z"].append(b["Z"])
            parts["Y"].append(b["Y"])
    ends = np.cumsum([0] + [len(v) for v in parts["Y"]])
    s1_rows = sum(b["Y"].shape[0] for b in halves[0].batches(BOOTSTRAP_BATCH))
    val = torch.zeros(int(ends[-1]), dtype=torch.bool)
    val[s1_rows : s1_rows + sum(b["Y"].shape[0] for b in halves[1].batches(BOOTSTRAP_BATCH, "val"))] = True
    t, z, y = (torch.cat(parts[k]).double() for k in ("T", "Z", "Y"))
    return dict(t=t, z=z, y=y, eta=torch.cat(parts["eta"]).double() if parts["eta"][0] is not None else None,
                val=val, blocks=[slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])], halves=halves)


@torch.no_grad()
def linear_iv_candidate(est, nets, halves, n_draws: int, seed: int, comm, d2: int, d_psi: int, d_cov: int,
                        rows: Optional[dict] = None):
    """The line in t: two-stage least squares on every row with the covariates' *learned* features as
    controls, with its score-bootstrap draws on the bands' multipliers,

        t̂ = [z, η(x), 1] π,    y ≈ [t̂, η(x), 1] θ,    h(t, x) = θ_t·t + θ_η·η(x) + θ_1,

    where z and t are the raw (standardized) instruments and treatment, and η the member's trained
    covariate network (without covariates: [z, 1] and [t̂, 1], plain 2SLS). A discrete instrument
    identifies a(x)·t + c(x) at most, never a curve in x that linear controls would impose: with the
    learned η the controls c(x) keep their shape (with linear controls a nonlinear c(x) that the
    instrument's propensity depends on biased the slope 2.8-fold, issue 34).

    Returned in the coordinates of the stage-2 head u, whose treatment features lead with the raw
    treatment (:class:`~deepcausal.nets.SkipMLP`): θ_t at (t_c, η-intercept), θ_η at (ψ-intercept, η_k),
    θ_1 at (ψ-intercept, η-intercept). Returns ``(head (d₂, 1), draws (B, d₂, 1), held-out residuals)``.

    Both stages use every row (full-sample 2SLS): with a weak instrument the split-sample estimator's
    noise (and its bias towards zero) is what this candidate is there to avoid. The ridge is numerical
    only (10⁻⁸, not β₁, β₂): with a weak instrument the partial variance of t̂ is of the order of a
    ridge of 10⁻³, which would shrink the very slope this candidate identifies.
    """
    # The bootstrap's sums are taken batch by batch, with the multipliers drawn again in the same order for each
    # pass: holding every row's draws at once (rows × draws × columns) took over 20 GB at 10⁶ rows.
    def draws():
        return _multipliers(seed, comm.rank, halves, n_draws)

    rows = rows or member_rows(est, nets, halves)
    t, z, y, x, val, blocks = (rows[k] for k in ("t", "z", "y", "eta", "val", "blocks"))
    ones = torch.ones(len(y), 1, dtype=torch.float64)
    D1 = torch.cat([z] + ([x] if x is not None else []) + [ones], dim=1)
    n = comm.sum_float(len(y))

    def solve(D, target, beta, rows=n):
        A = comm.sum(D.T @ D) / rows
        A.diagonal().add_(float(beta))
        return A, solve_spd(A, comm.sum(D.T @ target) / rows)

    A1, pi = solve(D1, t, _LINE_RIDGE)
    r1 = t - D1 @ pi
    s1 = sum(torch.einsum("nb,nd,nk->bdk", w - 1.0, D1[r], r1[r]) for r, (_, w) in zip(blocks, draws()))
    pi_b = pi + _solve_batched(A1, comm.sum(s1) / n)  # (B, d₁, d_t)

    def design(p, r=slice(None)):
        t_hat = D1[r] @ p
        return torch.cat([t_hat] + ([x[r].expand(*t_hat.shape[:-2], *x[r].shape)] if x is not None else [])
                         + [ones[r].expand(*t_hat.shape[:-2], *ones[r].shape)], dim=-1)

    D2 = design(pi)
    A2, theta = solve(D2, y, _LINE_RIDGE)

    def score(r, w):  # Σ over the rows r of w · D2b · (y − D2b θ), per draw
        D2b = design(pi_b, r)  # (B, rows, d)
        return torch.einsum("bn,bnd,bnk->bdk", w.T, D2b, y[r].unsqueeze(0) - D2b @ theta)

    s2 = comm.sum(sum(score(r, w) for r, (_, w) in zip(blocks, draws()))) / n - _LINE_RIDGE * theta
    theta_b = theta + _solve_batched(A2, s2)  # (B, d, 1)

    def embed(th):  # θ = [θ_t, θ_η, θ_1] → u at (t_c, η-intercept), (ψ-intercept, η_k), (ψ-intercept, η-intercept)
        d_t, p = t.shape[1], 0 if x is None else x.shape[1]
        u = th.new_zeros(*th.shape[:-2], d2, th.shape[-1])
        block = d_cov + 1
        for c in range(d_t):
            u[..., c * block + d_cov, :] = th[..., c, :]
        for k in range(p):
            u[..., d_psi * block + k, :] = th[..., d_t + k, :]
        u[..., d_psi * block + d_cov, :] = th[..., d_t + p, :]
        return u

    # train-only fit (every row but the held-out ones, of every rank), its residuals on the held-out rows
    keep = ~val
    n_keep = comm.sum_float(float(keep.sum()))
    _, pi_t = solve(D1[keep], t[keep], _LINE_RIDGE, n_keep)
    D2t = design(pi_t)
    _, theta_t = solve(D2t[keep], y[keep], _LINE_RIDGE, n_keep)
    held_out = (y[val] - D2t[val] @ theta_t)[:, 0]
    return embed(theta), embed(theta_b) - embed(theta), held_out


def _instrument_basis(z: np.ndarray, k: Optional[int], fit_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """At ``rows``: the raw instruments (k None) or, per column, a B-spline basis of degree :data:`INSTRUMENT_DEGREE`
    with :data:`INSTRUMENT_RATIO` (k − 1) + 1 quantile knots fitted on ``fit_rows`` (a column with fewer than twice
    as many distinct values as the basis has terms enters raw).

    Why this many: the instruments must predict each of the spline's terms given x, and a basis that grows faster
    than the spline's (Chen, Christensen and Kankanala's K ≫ J; npiv's degree 4 and 2² times the segments, here
    with quantile knots where npiv's default is uniform) loses less of them in the first stage. It replaced a cubic with 2k − 1 knots, stated before its run and adopted on
    fresh seeds (benchmarks/RESULTS.md, "The spline's instrument basis at CCK's ratio"): the default's error 0.32x
    on our smooth design, 0.71x on horowitz, 0.76x on chen_christensen_severe, 0.83x on our survey design, at most
    1.10x on any of the 17 designs with continuous instruments (kiv_sigmoid)."""
    if k is None:
        return z[rows]
    from sklearn.preprocessing import SplineTransformer

    n_knots = INSTRUMENT_RATIO * (k - 1) + 1
    terms = n_knots + INSTRUMENT_DEGREE - 2  # SplineTransformer's columns without the constant (include_bias=False)
    parts = []
    for j in range(z.shape[1]):
        col = z[:, j : j + 1]
        if len(np.unique(col[fit_rows])) < 2 * terms:
            parts.append(col[rows])
            continue
        tr = SplineTransformer(n_knots=n_knots, degree=INSTRUMENT_DEGREE, knots="quantile", include_bias=False,
                               extrapolation="linear").fit(col[fit_rows])
        parts.append(tr.transform(col[rows]))
    return np.concatenate(parts, axis=1)


def _instrument_products(z: np.ndarray, eta: Optional[np.ndarray], rows: np.ndarray) -> Optional[np.ndarray]:
    """Each raw instrument times each learned covariate feature, z_j η_k, at ``rows`` (None without covariates, or
    with :data:`INSTRUMENT_PRODUCTS` off). Why: the spline's terms need instruments that predict them given x, and a
    treatment that moves with both z and x has E[t² | z, x] with a z · x term, which a basis additive in z and η(x)
    cannot reach. Stated before its run and adopted on fresh seeds (benchmarks/RESULTS.md, "The sieve's instruments
    with covariates"): the default's error 0.35x on our kink design and 0.51x on our smooth one, the same on every
    other design with covariates. Without them (and with the earlier instrument basis, a cubic with 2k − 1 knots) the
    spline did not depart from the line on any member on that kink design (seeds 20-25); with them it departs on most
    members, at 3-8 times less error than the line."""
    if eta is None or not INSTRUMENT_PRODUCTS:
        return None
    return (z[rows][:, :, None] * eta[rows][:, None, :]).reshape(len(rows), -1)


def _matrices(t, z, eta, k, fit_rows, rows):
    """The sieve with ``k`` knots (None: the line), its knots from ``fit_rows``: (W, Q, knots) at ``rows``,
    W = [t, cubic terms, η, 1] and Q = [instrument basis, z ⊗ η (a spline's only), η, 1]."""
    knots = None if k is None else spline_knots(t[fit_rows, 0], k)
    tail = ([eta[rows]] if eta is not None else []) + [np.ones((len(rows), 1))]
    W = [t[rows]] + ([] if knots is None else [cubic_terms(torch.as_tensor(t[rows]), torch.as_tensor(knots)).numpy()])
    Q = [_instrument_basis(z, k, fit_rows, rows)]
    products = None if k is None else _instrument_products(z, eta, rows)
    Q += [] if products is None else [products]
    return np.concatenate(W + tail, axis=1), np.concatenate(Q + tail, axis=1), knots


def lepski_knots(t: np.ndarray, z: np.ndarray, y: np.ndarray, eta: Optional[np.ndarray], rows: np.ndarray,
                 rng: np.random.Generator) -> dict:
    """Lepski's choice over the nested family on ``rows``: {"knots": the chosen count (None: the line),
    "kept": the counts the bounds kept (width, ill-posedness, first stage), "J": the chosen dimension, "theta": θ*,
    the bootstrap quantile whose 1.1 multiple is the threshold below (None for both where the bounds kept the line
    alone)}.

    With G_J = A_J⁻¹ Ŵ_Jᵀ diag(û_J) (each row's influence on β_J), the difference of two curves at an evaluation
    row e has variance w_a(e)ᵀ G_a G_aᵀ w_a(e) + w_b(e)ᵀ G_b G_bᵀ w_b(e) − 2 w_a(e)ᵀ G_a G_bᵀ w_b(e), and a
    bootstrap draw of it is w_a(e)ᵀ G_a ω − w_b(e)ᵀ G_b ω: only (d × d) and (d × draws) products are held."""
    n = len(rows)
    ev = rng.choice(n, size=min(EVAL_ROWS, n), replace=False)
    omega = rng.standard_normal((n, LEPSKI_DRAWS))
    y = y[rows]
    fits = []
    for k in (None,) + KNOT_COUNTS:
        W, Q, _ = _matrices(t, z, eta, k, rows, rows)
        if k is not None:
            J = W.shape[1] - (eta.shape[1] if eta is not None else 0)  # the spline's dimension with its intercept
            s = smallest_canonical_correlation(W, Q)
            too_wide = max(W.shape[1], Q.shape[1]) >= n // 10  # the spline or its instruments (z ⊗ η can be wide)
            p = (eta.shape[1] if eta is not None else 0) + 1  # the exogenous columns [η, 1], in both W and Q
            weak = FIRST_STAGE_BOUND is not None and first_stage_strength(s, n, Q.shape[1], p) < FIRST_STAGE_BOUND
            if too_wide or weak or not (s > 0 and J * math.sqrt(math.log(J)) / s <= ILL_POSED_BOUND * math.sqrt(n)):
                break  # the family is nested: the first dimension past a bound ends it
        else:
            J = 2
        beta, _, AinvWt = _tsls(W, Q, y)
        G = AinvWt * (y - W @ beta)[None, :]
        fits.append(dict(k=k, J=J, w=W[ev], h=W[ev] @ beta, G=G, S=G @ G.T, draw=W[ev] @ (G @ omega)))
    C = len(fits)
    if C == 1:
        return {"knots": None, "kept": [None], "J": None, "theta": None}
    obs, boot = {}, []
    for a in range(C):
        for b in range(a + 1, C):
            fa, fb = fits[a], fits[b]
            aa = np.einsum("ei,ij,ej->e", fa["w"], fa["S"], fa["w"])
            bb = np.einsum("ei,ij,ej->e", fb["w"], fb["S"], fb["w"])
            var = aa + bb - 2 * np.einsum("ei,ij,ej->e", fa["w"], fa["G"] @ fb["G"].T, fb["w"])
            # below 1e-10 of the two variances' sum the difference is rounding (aa + bb − 2ab cancels)
            sd = np.sqrt(np.maximum(var, 1e-10 * (aa + bb) + 1e-300))
            obs[a, b] = float(np.max(np.abs(fa["h"] - fb["h"]) / sd))
            boot.append(np.max(np.abs(fa["draw"] - fb["draw"]) / sd[:, None], axis=0))
    j_max = fits[-1]["J"]
    alpha = min(0.5, math.sqrt(math.log(j_max) / j_max))
    theta_star = float(np.quantile(np.max(boot, axis=0), 1 - alpha))
    chosen = next(c for c in range(C) if all(obs[c, b] <= THETA_FACTOR * theta_star for b in range(c + 1, C)))
    return {"knots": fits[chosen]["k"], "kept": [f["k"] for f in fits], "J": fits[chosen]["J"], "theta": theta_star}


def sieve_candidate(est, nets, stage1, rows: dict, n_draws: int, seed: int, d_psi: int, d_cov: int):
    """One member's sieve: None where Lepski keeps the line, else a dict with the knots (Lepski's ``J`` and
    ``theta`` beside them, :func:`lepski_knots`), the stage-2 head and
    its bootstrap deviations in the coordinates of the treatment network wrapped by :class:`SplineTerms`
    (``head`` (d₂′, 1), ``draws`` (B, d₂′, 1)), the stage-1 head's extra columns ``V_extra`` (the spline terms
    regressed on the stage-1 features of the rows ``stage1`` that the stage-1 head was solved on, ridge β₁), and ``held_out``: the projected residuals
    y − Q Π β on the member's stage-2 held-out rows, of the sieve fitted on every other row.

    ``rows``: the member's rows as :func:`member_rows` gathers them (t, z, y, η, the
    held-out mask, the bootstrap multipliers' row blocks). Above :data:`MAX_ROWS` rows the sieve is fitted on
    a random subset of that many (its choice, its curve and its draws; the held-out rows are all used)."""
    t, z, y = (rows[k].cpu().numpy() for k in ("t", "z", "y"))
    eta = None if rows["eta"] is None else rows["eta"].cpu().numpy()
    y = y[:, 0]
    val = rows["val"].cpu().numpy()
    rng = np.random.default_rng(int(seed) % 2**63)
    use = np.arange(len(y)) if len(y) <= MAX_ROWS else np.sort(rng.choice(len(y), MAX_ROWS, replace=False))
    fit = use[~val[use]]
    choice = lepski_knots(t, z, y, eta, fit, rng)
    k = choice["knots"]
    if k is None:
        return None
    out = {"knots_count": k, "kept": choice["kept"], "J": choice["J"], "theta": choice["theta"], "d_psi": d_psi,
           "d_cov": d_cov}
    # held-out residuals of the sieve fitted on every row but the held-out ones (its knots from those rows)
    W, Q, _ = _matrices(t, z, eta, k, fit, fit)
    beta, Pi, _ = _tsls(W, Q, y[fit])
    held = np.flatnonzero(val)
    if held.size:
        _, Qv, _ = _matrices(t, z, eta, k, fit, held)
        out["held_out"] = torch.as_tensor(y[held] - Qv @ Pi @ beta)
    else:  # validation_fraction=0: no held-out rows
        out["held_out"] = torch.zeros(0, dtype=torch.float64)
    # the reported curve: every row (at most MAX_ROWS), knots from those rows, and its multiplier bootstrap
    W, Q, knots = _matrices(t, z, eta, k, use, use)
    beta, _, AinvWt = _tsls(W, Q, y[use])
    infl = AinvWt * (y[use] - W @ beta)[None, :]  # (d, rows): β* − β̂ = Σᵢ (wᵢ − 1) infl[:, i]
    where = np.full(len(y), -1)
    where[use] = np.arange(len(use))
    dev = np.zeros((W.shape[1], n_draws))
    for r, (_, w) in zip(rows["blocks"], _multipliers(seed, 0, rows["halves"], n_draws)):
        pos = where[r]
        sel = pos >= 0
        dev += infl[:, pos[sel]] @ (w.numpy()[sel] - 1.0)
    m = W.shape[1] - 2 - (0 if eta is None else eta.shape[1])  # the cubic terms
    out["knots"] = torch.as_tensor(knots)
    out["head"] = embed(torch.as_tensor(beta)[:, None], d_psi, m, d_cov)
    out["draws"] = embed(torch.as_tensor(dev.T)[..., None], d_psi, m, d_cov)
    # the stage-1 head's columns for the new terms: ridge (β₁) of the terms on the stage-1 features
    F1, target = [], []
    with torch.no_grad():
        for b in stage1.batches(4096):
            F1.append(est._stage1_features(nets, b).double().cpu())
            target.append(cubic_terms(b["T"][:, :1].double().cpu(), out["knots"]))
    F1, target = torch.cat(F1), torch.cat(target)
    A = F1.T @ F1 / len(F1)
    A.diagonal().add_(float(est.beta1))
    out["V_extra"] = torch.as_tensor(_spd_solve(A.numpy(), (F1.T @ target / len(F1)).numpy()))
    return out


def sup_t(diff: np.ndarray, draws: np.ndarray, level: float = NONLINEAR_LEVEL) -> tuple:
    """A sup-t comparison of two curves at some rows: (max |difference| / sd, the ``level`` quantile of the same
    maximum over the draws); ``draws`` (B, rows): the draws' deviations of the difference."""
    sd = draws.std(axis=0, ddof=1)
    sd = np.maximum(sd, 1e-12 * max(float(sd.max()), 1e-300))
    return float(np.max(np.abs(diff) / sd)), float(np.quantile(np.max(np.abs(draws) / sd, axis=1), level))


@torch.no_grad()
def departures(member, sieve: dict, phi: torch.Tensor, t: torch.Tensor) -> dict:
    """Sup-t tests of one member at some rows, on the bootstrap draws its line, trained head and spline share (the
    same multipliers): ``spline`` ((A) Lepski's spline departs from the line) and ``trained`` ((B) the trained curve
    departs from the line), each as (statistic, 95% critical value); ``spline`` is None where the member's Lepski
    choice is the line. ``phi``: the member's stage-2 features [ψ, 1] ⊗ [η, 1] at the rows, ``t`` the
    (standardized) treatment there."""
    from .heads import outer_features

    Phi = phi.double().cpu()
    heads = member.candidates_["heads"].double().cpu().numpy()[..., 0]  # (C, d₂): the line first, trained last
    draws = member.candidates_["draws"].double().cpu().numpy()[..., 0]  # (C, B, d₂)
    P = Phi.numpy()
    h_l, d_l = P @ heads[0], draws[0] @ P.T
    out = {"trained": sup_t(P @ heads[-1] - h_l, draws[-1] @ P.T - d_l), "spline": None}
    if sieve["knots_count"] is not None:
        d_psi, d_cov = sieve["d_psi"], sieve["d_cov"]
        grid = Phi.reshape(len(Phi), d_psi + 1, d_cov + 1)  # ψ_i · η_k at [i, k]; η's 1 is k = d_cov, ψ's 1 is i = d_psi
        terms = cubic_terms(t[:, :1].double().cpu(), sieve["knots"].double().cpu())
        Phi_s = outer_features(torch.cat([grid[:, :d_psi, d_cov], terms], dim=1),
                               grid[:, d_psi, :d_cov] if d_cov else None).numpy()  # the wrapped network's features
        h_s = Phi_s @ sieve["head"].double().cpu().numpy()[:, 0]
        d_s = sieve["draws"].double().cpu().numpy()[..., 0] @ Phi_s.T
        out["spline"] = sup_t(h_s - h_l, d_s - d_l)
    return out


def shape_step(line: bool, spline_departs, trained_departs, held_out_favours_trained: bool = True) -> Optional[str]:
    """The held-out rule's last step (:func:`deepcausal._complexity._held_out`), from each member's two sup-t
    verdicts (:func:`departures`; True, False, or None where a test is not finite, which counts for nothing):
    ``"spline"``, ``"line"`` or None (the held-out choice stands). ``line``: the held-out rows chose the line;
    ``held_out_favours_trained``: they predict the trained head significantly better, or cannot be read (no rows).

    * the line chosen: the spline where it departs from the line on a majority of the members;
    * the trained head kept: the spline where on a majority it departs from the line and the trained curve does not
      (the data bend where the trained curve does not); else the line where on a majority neither departs (the data
      show no bend: the simplest curve); with :data:`HELD_OUT_EVIDENCE` set, also the line where on a majority the
      spline does not depart and the held-out rows do not favour the trained head (the trained curve bends where
      the data's spline does not, and no row that training did not see bears the bend out).
    """
    majority = len(spline_departs) / 2
    pairs = list(zip(spline_departs, trained_departs))  # a verdict may be None (not finite): it counts for neither
    if line:
        return "spline" if sum(a is True for a in spline_departs) > majority else None
    if sum(a is True and b is False for a, b in pairs) > majority:
        return "spline"
    if sum(a is False and b is False for a, b in pairs) > majority:
        return "line"
    if HELD_OUT_EVIDENCE and sum(a is False for a in spline_departs) > majority and not held_out_favours_trained:
        return "line"
    return None


def embed(theta: torch.Tensor, d_psi: int, m: int, d_cov: int) -> torch.Tensor:
    """θ = [θ_t, θ_terms (m), θ_η (d_cov), θ_1] (..., p, k) → the stage-2 head over [ψ, terms, 1] ⊗ [η, 1]:
    θ_t at (raw t, η-intercept), θ_terms at (term j, η-intercept), θ_η at (ψ-intercept, η_k), θ_1 at
    (ψ-intercept, η-intercept). Without covariates [η, 1] is just [1]."""
    block = d_cov + 1
    rows = d_psi + m + 1
    u = theta.new_zeros(*theta.shape[:-2], rows * block, theta.shape[-1])
    u[..., 0 * block + d_cov, :] = theta[..., 0, :]
    for j in range(m):
        u[..., (d_psi + j) * block + d_cov, :] = theta[..., 1 + j, :]
    for c in range(d_cov):
        u[..., (d_psi + m) * block + c, :] = theta[..., 1 + m + c, :]
    u[..., (d_psi + m) * block + d_cov, :] = theta[..., 1 + m + d_cov, :]
    return u


def widen(u: torch.Tensor, d_psi: int, m: int, d_cov: int) -> torch.Tensor:
    """A head over [ψ, 1] ⊗ [η, 1] (..., d₂, k) → over [ψ, terms, 1] ⊗ [η, 1], zero on the m new terms."""
    block = d_cov + 1
    v = u.reshape(*u.shape[:-2], d_psi + 1, block, u.shape[-1])
    zeros = v.new_zeros(*v.shape[:-3], m, block, v.shape[-1])
    return torch.cat([v[..., :d_psi, :, :], zeros, v[..., d_psi:, :, :]], dim=-3).reshape(
        *u.shape[:-2], (d_psi + m + 1) * block, u.shape[-1])


def _wrap(member, sieve: dict) -> int:
    """Give a fitted member the spline's terms (:func:`sieve_candidate`) as extra treatment features: wrap its
    treatment network and widen its heads with zeros on the new terms (every head keeps its predictions; the
    stage-1 head gains the terms' columns). ``sieve_`` records the knots, so a loaded model wraps its network
    again. Returns the number of new terms."""
    d_psi, d_cov = sieve["d_psi"], sieve["d_cov"]
    m = sieve["head"].shape[-2] // (d_cov + 1) - d_psi - 1
    member.sieve_ = {"knots": sieve["knots"].clone()}
    dev = member.heads_.u.device
    member.nets_["treatment"] = SplineTerms(member.nets_["treatment"], sieve["knots"]).to(dev)
    for heads in (member.heads_, member.current_heads_):
        heads.V = torch.cat([heads.V, sieve["V_extra"].to(heads.V)], dim=1)
        heads.u = widen(heads.u, d_psi, m, d_cov)
    return m


def install(member, sieve: dict) -> None:
    """Make a fitted member report its sieve (:func:`sieve_candidate`): wrap its treatment network, widen its
    heads (the trained ones keep their predictions) and set the sieve's head and draws."""
    _wrap(member, sieve)
    member.heads_.u = sieve["head"].to(member.heads_.u)
    if member.head_draws_ is not None:
        member.head_draws_ = sieve["draws"].to(device=member.heads_.u.device, dtype=member.head_draws_.dtype)


def attach_band(member, sieve: dict) -> None:
    """Keep a fitted member's reported curve (the line) and give it its sieve's head and draws beside it, in the
    same wrapped coordinates (``spline_band_``: ``head`` (d₂′, 1), ``draws`` (B, d₂′, 1), ``extra`` the number of
    coefficients the widening added), for a band that covers the spline's too
    (:data:`deepcausal._complexity.LINE_BAND_WITH_SPLINE`). Needs the member's draws."""
    m = _wrap(member, sieve)
    u = member.heads_.u
    member.head_draws_ = widen(member.head_draws_, sieve["d_psi"], m, sieve["d_cov"])
    # ``extra``: the coefficients the widening added (zeros in the line's head), which the line does not fit
    member.spline_band_ = {"head": sieve["head"].to(u), "draws": sieve["draws"].to(member.head_draws_),
                           "extra": m * (sieve["d_cov"] + 1)}
