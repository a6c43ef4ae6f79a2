"""Inference on the slope of one endogenous regressor in a linear IV model, robust to weak instruments.

Model: ``y = β·t + Wγ + e`` with excluded instruments ``Z`` (n × q) and included exogenous
controls ``W`` (n × p; include a constant column if one is wanted). Everything is pure numpy/scipy
in float64.

Numerical approach
------------------
All three functions start from the Frisch–Waugh–Lovell (FWL) reduction: W is partialled out of
y, t and Z, which leaves the slope, its sandwich variance, and every Wald test on Z's coefficients
unchanged (the HC0 sandwich block of a subset of coefficients equals the sandwich of the
partialled regression). The projections never form an inverse of a Gram matrix:

* ``W`` (columns scaled to unit norm, so the tolerance does not depend on units) goes through a
  thin SVD; left singular vectors with singular value above ``_RTOL`` (1e-10) × the largest form an
  orthonormal basis ``Q_W`` of its numerical column space. Duplicated or collinear columns (several
  sets of learned features concatenated) simply drop out; ``rank(W)`` is the number kept.
* ``Z̃ = M_W Z`` is formed with two passes of the projection ("twice is enough" re-orthogonalisation)
  and its columns are scaled by the norms of the *original* Z columns before its SVD, so an
  instrument that lies (numerically) in the span of W is dropped rather than amplified. This gives
  an orthonormal basis ``Q_Z ⟂ Q_W`` of the instruments' partialled space, with ``q`` = its rank.

Wald statistics are invariant to an invertible reparametrisation of the tested coefficients, so
tests on Z's coefficients are computed on the coefficients of ``Q_Z`` (``Q_Zᵀ Q_Z = I``: the bread
of every sandwich is the identity, and only a q × q meat matrix is ever solved, by Cholesky with an
eigen-decomposition fallback).

References: Anderson & Rubin (1949); Staiger & Stock (1997); Dufour (1997) on why any valid set
under weak identification must be unbounded with positive probability; Andrews, Stock & Sun (2019,
"Weak instruments in IV regression: theory and practice") for the robust AR test.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import optimize, stats

__all__ = ["tsls_robust", "wald_interval", "anderson_rubin_set", "format_set"]

# Singular values below this fraction of the reference scale count as rank deficiency.
_RTOL = 1e-10


# --------------------------------------------------------------------------------------------
# Linear-algebra helpers
# --------------------------------------------------------------------------------------------

def _as_vector(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must be a vector (n,) or (n, 1); got shape {a.shape}")
    return a


def _as_matrix(a, n: int, name: str) -> np.ndarray:
    if a is None:
        return np.empty((n, 0))
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows; got shape {a.shape}")
    return a


def _check_inputs(y, t, Z, W):
    y = _as_vector(y, "y")
    n = y.shape[0]
    t = _as_vector(t, "t")
    if t.shape[0] != n:
        raise ValueError(f"t must have {n} rows; got {t.shape[0]}")
    Z = _as_matrix(Z, n, "Z")
    W = _as_matrix(W, n, "W")
    if Z.shape[1] < 1:
        raise ValueError("at least one excluded instrument is needed")
    for name, a in (("y", y), ("t", t), ("Z", Z), ("W", W)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains non-finite values")
    return y, t, Z, W


def _orthonormal_basis(X: np.ndarray, ref_norms: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the numerical column space of X.

    Columns are divided by ``ref_norms`` (their own norms for W; the original, un-partialled
    norms for Z̃), then a thin SVD ``X D⁻¹ = U S Vᵀ`` keeps the columns of U with
    ``s > _RTOL · max(s_max, 1)``. The ``max(·, 1)`` makes the threshold relative to the reference
    scale (unit columns) even when every partialled column has become tiny, so an instrument
    that W already spans is dropped instead of its rounding noise being kept as a direction.
    """
    n = X.shape[0]
    live = ref_norms > 0
    if not np.any(live):
        return np.empty((n, 0))
    Xs = X[:, live] / ref_norms[live]
    U, s, _ = np.linalg.svd(Xs, full_matrices=False)
    keep = s > _RTOL * max(s[0] if s.size else 0.0, 1.0)
    return U[:, keep]


def _annihilate(Q: np.ndarray, X: np.ndarray) -> np.ndarray:
    """M_Q X = X − Q (Qᵀ X) for an orthonormal Q (a no-op if Q has no columns)."""
    if Q.shape[1] == 0:
        return X
    return X - Q @ (Q.T @ X)


def _quad_form_inv(S: np.ndarray, a: np.ndarray) -> np.ndarray:
    """aᵀ S⁻¹ a for symmetric positive (semi-)definite S, batched over leading axes.

    Cholesky solve when S is numerically positive definite; otherwise (a singular meat matrix,
    e.g. fewer observations with non-zero residual than instruments) the eigen-decomposition
    with eigenvalues below ``_RTOL`` × the largest treated as zero (pseudo-inverse).
    """
    S = np.asarray(S, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    try:
        L = np.linalg.cholesky(S)
        # Cholesky succeeds on some numerically singular matrices: check the conditioning.
        d = np.diagonal(L, axis1=-2, axis2=-1)
        if np.all(d.min(axis=-1) > np.sqrt(_RTOL) * d.max(axis=-1)):
            x = np.linalg.solve(L, a[..., None])[..., 0]
            return np.sum(x * x, axis=-1)
    except np.linalg.LinAlgError:
        pass
    w, V = np.linalg.eigh(S)
    thresh = _RTOL * np.max(w, axis=-1, keepdims=True)
    proj = np.einsum("...ji,...j->...i", V, a)
    inv_w = np.where(w > thresh, 1.0 / np.where(w > thresh, w, 1.0), 0.0)
    return np.sum(proj * proj * inv_w, axis=-1)


class _Partialled:
    """The FWL reduction shared by the functions below.

    Attributes: ``n``; ``rank_W``; ``q`` (rank of M_W Z); ``QZ`` (n × q orthonormal basis of M_W Z);
    ``yt``, ``tt`` (M_W y, M_W t); ``a_y = Q_Zᵀ ỹ``, ``a_t = Q_Zᵀ t̃`` (the coefficients of the
    partialled regressions on Q_Z); ``r_y = ỹ − Q_Z a_y``, ``r_t = t̃ − Q_Z a_t`` (residuals of the
    regressions of y and t on [Z, W]).
    """

    def __init__(self, y, t, Z, W):
        y, t, Z, W = _check_inputs(y, t, Z, W)
        n = y.shape[0]
        self.n = n
        QW = _orthonormal_basis(W, np.linalg.norm(W, axis=0))
        self.rank_W = QW.shape[1]
        # Two passes of the projection: the second removes what rounding left of span(W) in Z̃.
        Zt = _annihilate(QW, _annihilate(QW, Z))
        QZ = _orthonormal_basis(Zt, np.linalg.norm(Z, axis=0))
        # Q_Z is orthogonal to Q_W up to rounding; one more projection + QR restores orthogonality
        # to working precision (cheap: Q_Z has q columns).
        if QW.shape[1] and QZ.shape[1]:
            QZ, _ = np.linalg.qr(_annihilate(QW, QZ))
        self.q = QZ.shape[1]
        if self.q == 0:
            raise ValueError("the excluded instruments are (numerically) in the span of the controls W")
        self.QZ = QZ
        self.yt = _annihilate(QW, y)
        self.tt = _annihilate(QW, t)
        tnorm = np.linalg.norm(t)
        if tnorm == 0 or np.linalg.norm(self.tt) <= _RTOL * tnorm:
            raise ValueError("the regressor t is (numerically) in the span of the controls W")
        self.a_y = QZ.T @ self.yt
        self.a_t = QZ.T @ self.tt
        self.r_y = self.yt - QZ @ self.a_y
        self.r_t = self.tt - QZ @ self.a_t


# --------------------------------------------------------------------------------------------
# 2SLS with heteroskedasticity-robust standard errors
# --------------------------------------------------------------------------------------------

def tsls_robust(y, t, Z, W=None) -> dict:
    """2SLS slope of one endogenous regressor, its robust standard errors and first-stage strength.

    Parameters
    ----------
    y, t : array_like, shape (n,)
        Outcome and endogenous regressor.
    Z : array_like, shape (n, q)
        Excluded instruments, q ≥ 1.
    W : array_like, shape (n, p), optional
        Included exogenous controls (add a column of ones for an intercept). May be rank
        deficient: collinear directions are dropped (see the module docstring).

    Returns
    -------
    dict
        ``estimate``
            β̂ = t̂ᵀỹ / t̂ᵀt̂, where ỹ = M_W y, t̃ = M_W t and t̂ = P_Z̃ t̃ is the first-stage fit (FWL:
            identical to the coefficient on t in 2SLS of y on [t, W] with instruments [Z, W]).
        ``se_hc0``
            √(Σᵢ t̂ᵢ² êᵢ²) / t̂ᵀt̂ with ê = ỹ − β̂ t̃ (the structural residual with the *actual* t,
            equal to the full model's residual). This is the t-block of the sandwich
            (X̂ᵀX̂)⁻¹ X̂ᵀ diag(ê²) X̂ (X̂ᵀX̂)⁻¹, X̂ = P_[Z,W] [t, W]; by FWL the block only needs
            the partialled t̂. It equals linearmodels' ``IV2SLS(...).fit(cov_type="robust")``
            standard error (its default ``debiased=False`` is HC0, no degrees-of-freedom factor).
        ``se``
            HC1: ``se_hc0 · √(n / (n − k))``, k = rank[t, W]; equals linearmodels'
            ``fit(cov_type="robust", debiased=True)`` (and Stata's ``ivregress 2sls, vce(robust)``
            small-sample convention) when W has full column rank.
        ``n``, ``k``
            Observations and rank of [t, W].
        ``q``
            Rank of the excluded instruments given W (collinear ones dropped).
        ``rank_W``
            Numerical rank of W.
        ``first_stage_wald``
            HC0 Wald statistic of π = 0 in the first stage t = Zπ + Wδ + v:
            π̂ᵀ V̂₀(π̂)⁻¹ π̂ ~ χ²_q under π = 0; equal to linearmodels'
            ``fit(cov_type="robust").first_stage.diagnostics["f.stat"]``. It is also the limit of the
            robust Anderson–Rubin statistic as β₀ → ±∞ (see :func:`anderson_rubin_set`).
        ``first_stage_F``
            Robust first-stage F: the HC1 Wald statistic / q, with HC1 factor n / (n − k_fs),
            k_fs = rank[Z, W] (Stata ``regress …, vce(robust)`` followed by ``test``); the usual
            number compared with 10 (Staiger–Stock) or the Olea–Pflueger thresholds.
        ``first_stage_F_classical``
            Homoskedastic partial F: (‖P_Z̃ t̃‖² / q) / (‖v̂‖² / (n − k_fs)).
    """
    P = _Partialled(y, t, Z, W)
    n, q = P.n, P.q
    tt_hat = P.QZ @ P.a_t                     # t̂ = P_Z̃ t̃ = Q_Z Q_Zᵀ t̃
    denom = float(P.a_t @ P.a_t)              # t̂ᵀt̂ = ‖a_t‖² (Q_Z orthonormal); also t̂ᵀt̃
    if denom <= 0:
        raise ValueError("the instruments have no (numerical) correlation with t given W")
    beta = float(P.a_t @ P.a_y) / denom       # t̂ᵀỹ / t̂ᵀt̃
    resid = P.yt - beta * P.tt                # structural residual with actual t
    se_hc0 = float(np.sqrt(np.sum((tt_hat * resid) ** 2))) / denom
    k = P.rank_W + 1
    if n <= k:
        raise ValueError(f"need more observations (n = {n}) than the rank of [t, W] (k = {k})")
    se_hc1 = se_hc0 * np.sqrt(n / (n - k))

    # First stage on Q_Z: coefficients a_t, residual r_t; HC0 meat Q_Zᵀ diag(r_t²) Q_Z, bread I.
    k_fs = P.rank_W + q
    meat = (P.QZ * P.r_t[:, None] ** 2).T @ P.QZ
    wald0 = float(_quad_form_inv(meat, P.a_t))
    rss_fs = float(P.r_t @ P.r_t)
    if n > k_fs:
        f_robust = wald0 * (n - k_fs) / n / q   # HC1 covariance = HC0 · n/(n − k_fs)
        f_classical = (denom / q) / (rss_fs / (n - k_fs)) if rss_fs > 0 else np.inf
    else:
        f_robust = f_classical = np.nan
    return {
        "estimate": beta,
        "se": float(se_hc1),
        "se_hc0": se_hc0,
        "n": n,
        "k": k,
        "q": q,
        "rank_W": P.rank_W,
        "first_stage_wald": wald0,
        "first_stage_F": float(f_robust),
        "first_stage_F_classical": float(f_classical),
    }


def wald_interval(result: dict, alpha: float = 0.05, se: str = "se") -> tuple:
    """Wald interval β̂ ± z_{1−α/2} · se from a :func:`tsls_robust` result.

    ``se="se"`` (HC1, default) or ``"se_hc0"``. Normal quantiles: the interval is only valid with
    strong instruments; under weak ones use :func:`anderson_rubin_set`.
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    z = stats.norm.ppf(1 - alpha / 2)
    b, s = result["estimate"], result[se]
    return (b - z * s, b + z * s)


# --------------------------------------------------------------------------------------------
# Anderson–Rubin confidence set
# --------------------------------------------------------------------------------------------

def _quadratic_set(A: float, B: float, C: float, scale_A: float) -> tuple:
    """The set {x : A x² + B x + C ≤ 0} as (kind, intervals).

    ``scale_A`` is the size of the terms whose difference is A: |A| ≤ 1e-12 · scale_A counts as
    A = 0 (the knife edge where the first-stage statistic equals the critical value exactly), and
    the set is then a single ray or everything/nothing. Roots by the cancellation-free form
    r₁ = s / A, r₂ = C / s with s = −(B + sign(B) √disc) / 2.
    """
    inf = np.inf
    if abs(A) <= 1e-12 * scale_A:
        if B > 0:
            return "ray", [(-inf, -C / B)]
        if B < 0:
            return "ray", [(-C / B, inf)]
        return ("real line", [(-inf, inf)]) if C <= 0 else ("empty", [])
    disc = B * B - 4.0 * A * C
    if disc < 0:
        # No real root: the quadratic has the sign of A everywhere.
        return ("empty", []) if A > 0 else ("real line", [(-inf, inf)])
    s = -0.5 * (B + np.copysign(np.sqrt(disc), B))
    r1 = s / A
    r2 = C / s if s != 0 else r1              # s = 0 only if B = 0 and disc = 0, i.e. C = 0
    lo, hi = min(r1, r2), max(r1, r2)
    if A > 0:
        return "interval", [(lo, hi)]
    return "two rays", [(-inf, lo), (hi, inf)]


def _kind(intervals: list) -> str:
    if not intervals:
        return "empty"
    if len(intervals) == 1:
        lo, hi = intervals[0]
        if np.isinf(lo) and np.isinf(hi):
            return "real line"
        if np.isinf(lo) or np.isinf(hi):
            return "ray"
        return "interval"
    if len(intervals) == 2 and np.isinf(intervals[0][0]) and np.isinf(intervals[1][1]):
        return "two rays"
    return "union"


def anderson_rubin_set(y, t, Z, W=None, alpha: float = 0.05, robust: bool = True) -> dict:
    """Anderson–Rubin (AR) confidence set for β, valid whatever the strength of the instruments.

    For each β₀, regress u(β₀) = y − β₀ t on [Z, W] and test that Z's coefficients are zero; the
    set collects the β₀ that are not rejected at level ``alpha``. Under H₀: β = β₀, u = Wγ + e
    does not depend on t, so the test's size does not involve the first stage at all (hence the
    validity under weak instruments), and the set is the inversion of an exact / asymptotically
    exact family of tests.

    After partialling out W (FWL) and writing the instruments' space with an orthonormal basis
    Q_Z (module docstring), the regression of u(β₀) has coefficients and residuals that are
    *linear* in β₀:

        a(β₀) = a_y − β₀ a_t,         a_· = Q_Zᵀ M_W (y or t),
        r(β₀) = r_y − β₀ r_t,         r_· = residual of y or t on [Z, W].

    Statistics and critical values
    ------------------------------
    ``robust=False`` (classical, homoskedastic):
        F(β₀) = (‖a‖² / q) / (‖r‖² / (n − k)),  k = rank[Z, W], compared with F_{q, n−k}(1 − α).
        F ≤ c  ⇔  (n − k)/q · ‖a_y − β₀ a_t‖² − c · ‖r_y − β₀ r_t‖² ≤ 0, a quadratic inequality
        a β₀² + b β₀ + c₀ ≤ 0 for every q, solved exactly.
    ``robust=True`` (heteroskedasticity-robust, HC0, compared with χ²_q(1 − α)):
        AR(β₀) = aᵀ Ω(β₀)⁻¹ a, with the HC0 meat Ω(β₀) = Σᵢ qᵢqᵢᵀ rᵢ(β₀)² = Ω_yy − 2β₀ Ω_yt + β₀² Ω_tt
        (bread = I since Q_ZᵀQ_Z = I). For q = 1 the set {N(β₀) − c · D(β₀) ≤ 0},
        N = (a_y − β₀a_t)², D = Ω(β₀), is again a quadratic inequality, solved exactly. For q > 1 it
        is a ratio of polynomials of degree 2q, evaluated on a grid and refined by
        :func:`scipy.optimize.brentq` (see below).

    Shape of the set
    ----------------
    Both statistics are homogeneous of degree 0 in (1, β₀), so with β₀ = tan θ they are smooth,
    π-periodic functions of θ ∈ [−π/2, π/2] and the limit as β₀ → ±∞ (θ = ±π/2) is the same at
    both ends: it is the first-stage statistic of π = 0 (the robust first-stage Wald for
    ``robust=True``; the classical first-stage F for ``robust=False``). Hence the set is
    unbounded exactly when the first stage does not reject π = 0 at level α, as any valid set
    must be with positive probability under weak identification (Dufour 1997). Possible shapes:
    a bounded ``"interval"``, ``"two rays"`` (−∞, l] ∪ [h, ∞), the ``"real line"``, ``"empty"``
    (only when over-identified: the statistic at the best β₀ is then an over-identification test
    that rejects), a single ``"ray"`` on the knife edge where the first-stage statistic equals the
    critical value, and — robust, q > 1 only — a ``"union"`` of several pieces.

    Grid for robust q > 1: θ on 4097 equispaced points of [−π/2, π/2] (which covers β₀ = ±∞),
    plus the images of β̂ ± s·se_hc0 for s in ±[10⁻³, 10⁴] (log-spaced) and a linear ±50 se
    grid, so sets much narrower than the uniform θ spacing are resolved. Sign changes of
    AR − c are refined by brentq in θ; every local minimum of the grid values above c (and
    maximum below c) is checked by a bounded scalar minimisation, so a dip below (or peak above)
    the critical value between grid points is not missed.

    Parameters
    ----------
    y, t, Z, W : array_like
        As in :func:`tsls_robust`.
    alpha : float
        Level of the test; the set has coverage 1 − α.
    robust : bool
        Heteroskedasticity-robust (default) or classical AR statistic.

    Returns
    -------
    dict
        ``kind``: one of the shapes above; ``intervals``: sorted list of closed (lo, hi) pairs with
        ±inf for unbounded ends; ``statistic_at``: callable β₀ (scalar or array, ±inf allowed) ↦
        the AR statistic (F for the classical version, χ² Wald for the robust one);
        ``statistic_at_estimate``: its value at the 2SLS estimate (0 when just identified);
        ``critical_value``; ``limit_at_infinity``: the statistic as β₀ → ±∞; ``estimate`` (2SLS);
        ``alpha``; ``robust``; ``n``; ``k`` (rank[Z, W]); ``q``; ``method``
        (``"quadratic"`` or ``"grid"``).
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    P = _Partialled(y, t, Z, W)
    n, q = P.n, P.q
    k = P.rank_W + q
    if n <= k:
        raise ValueError(f"need more observations (n = {n}) than the rank of [Z, W] (k = {k})")
    a_y, a_t, r_y, r_t = P.a_y, P.a_t, P.r_y, P.r_t
    beta_hat = float(a_t @ a_y) / float(a_t @ a_t) if float(a_t @ a_t) > 0 else np.nan

    if robust:
        crit = float(stats.chi2.ppf(1 - alpha, q))
        Qy, Qt = P.QZ * r_y[:, None], P.QZ * r_t[:, None]
        O_yy, O_tt = Qy.T @ Qy, Qt.T @ Qt
        O_yt = 0.5 * (Qy.T @ Qt + Qt.T @ Qy)

        def stat_cs(c, s):
            # (c, s) = (cos θ, sin θ): a = c a_y − s a_t, Ω = c² Ω_yy − 2cs Ω_yt + s² Ω_tt.
            c, s = np.asarray(c, float)[..., None], np.asarray(s, float)[..., None]
            a = c * a_y - s * a_t
            c2, s2 = c[..., None], s[..., None]
            Om = c2 * c2 * O_yy - 2 * c2 * s2 * O_yt + s2 * s2 * O_tt
            return _quad_form_inv(Om, a)
    else:
        crit = float(stats.f.ppf(1 - alpha, q, n - k))
        Ayy, Ayt, Att = float(a_y @ a_y), float(a_y @ a_t), float(a_t @ a_t)
        Ryy, Ryt, Rtt = float(r_y @ r_y), float(r_y @ r_t), float(r_t @ r_t)

        def stat_cs(c, s):
            c, s = np.asarray(c, float), np.asarray(s, float)
            num = c * c * Ayy - 2 * c * s * Ayt + s * s * Att
            den = c * c * Ryy - 2 * c * s * Ryt + s * s * Rtt
            with np.errstate(divide="ignore", invalid="ignore"):
                return (num / q) / (den / (n - k))

    def statistic_at(beta0):
        """AR statistic at β₀ (scalar or array; ±inf gives the limit)."""
        b = np.asarray(beta0, dtype=np.float64)
        th = np.arctan(b)
        c = np.where(np.isinf(b), 0.0, np.cos(th))
        s = np.where(np.isinf(b), np.sign(b), np.sin(th))
        out = stat_cs(c, s)
        return float(out) if np.ndim(out) == 0 else out

    limit_inf = float(stat_cs(0.0, 1.0))

    if not robust:
        # (n−k)/q ‖a_y − β a_t‖² − c ‖r_y − β r_t‖² ≤ 0.
        m = (n - k) / q
        A = m * Att - crit * Rtt
        B = -2.0 * (m * Ayt - crit * Ryt)
        C = m * Ayy - crit * Ryy
        kind, intervals = _quadratic_set(A, B, C, m * Att + crit * Rtt)
        method = "quadratic"
    elif q == 1:
        # (a_y − β a_t)² − c (ω_yy − 2β ω_yt + β² ω_tt) ≤ 0.
        ay, at = float(a_y[0]), float(a_t[0])
        wyy, wyt, wtt = float(O_yy[0, 0]), float(O_yt[0, 0]), float(O_tt[0, 0])
        A = at * at - crit * wtt
        B = -2.0 * (ay * at - crit * wyt)
        C = ay * ay - crit * wyy
        kind, intervals = _quadratic_set(A, B, C, at * at + crit * wtt)
        method = "quadratic"
    else:
        # HC0 se of 2SLS (as in tsls_robust) sets the scale of the fine grid around β̂.
        se0 = 1.0
        if np.isfinite(beta_hat):
            e = P.yt - beta_hat * P.tt
            se0 = float(np.sqrt(np.sum((P.QZ @ a_t * e) ** 2))) / float(a_t @ a_t)
        intervals = _grid_inversion(stat_cs, crit, beta_hat, se0)
        kind = _kind(intervals)
        method = "grid"

    return {
        "kind": kind,
        "intervals": [(float(lo), float(hi)) for lo, hi in intervals],
        "statistic_at": statistic_at,
        "statistic_at_estimate": statistic_at(beta_hat) if np.isfinite(beta_hat) else np.nan,
        "critical_value": crit,
        "limit_at_infinity": limit_inf,
        "estimate": beta_hat,
        "alpha": alpha,
        "robust": robust,
        "n": n,
        "k": k,
        "q": q,
        "method": method,
    }


def _grid_inversion(stat_cs: Callable, crit: float, beta_hat: float, se: float) -> list:
    """{β : stat(β) ≤ crit} for a smooth statistic of θ = arctan β (see anderson_rubin_set)."""
    half = np.pi / 2

    def g(th):
        return stat_cs(np.cos(th), np.sin(th)) - crit

    thetas = [np.linspace(-half, half, 4097)]
    if np.isfinite(beta_hat) and np.isfinite(se) and se > 0:
        steps = np.logspace(-3, 4, 400)
        thetas.append(np.arctan(beta_hat + se * np.concatenate([-steps, steps, np.linspace(-50, 50, 1001)])))
        thetas.append(np.array([np.arctan(beta_hat)]))
    th = np.unique(np.concatenate(thetas))
    th = th[(th > -half) & (th < half)]
    th = np.concatenate([[-half], th, [half]])
    gv = g(th)
    # θ = ±π/2 is the same point (β = ±∞): use the exact limit (cos = 0) at both ends.
    gv[0] = gv[-1] = float(stat_cs(0.0, 1.0)) - crit
    gv = np.where(np.isnan(gv), np.inf, gv)

    def root(lo, hi):
        return optimize.brentq(g, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200)

    roots = []
    # Sign changes between neighbouring grid points.
    inside = gv <= 0
    for i in np.flatnonzero(inside[:-1] != inside[1:]):
        roots.append(root(th[i], th[i + 1]))
    # Dips below (peaks above) the critical value hidden between grid points: every local
    # extremum of the grid values on the "wrong" side of the critical value is checked by a
    # bounded minimisation over its two neighbouring cells; its neighbours are then on the other
    # side, so brentq brackets the two crossings.
    mid, left, right = gv[1:-1], gv[:-2], gv[2:]
    is_min = (mid <= left) & (mid <= right) & (mid > 0)
    is_max = (mid >= left) & (mid >= right) & (mid <= 0)
    for i in np.flatnonzero(is_min | is_max) + 1:
        sign = 1.0 if gv[i] > 0 else -1.0
        res = optimize.minimize_scalar(lambda x: sign * g(x), bounds=(th[i - 1], th[i + 1]),
                                       method="bounded", options={"xatol": 1e-14})
        g_x = sign * res.fun
        if (g_x <= 0) if sign > 0 else (g_x > 0):
            roots.append(root(th[i - 1], res.x))
            roots.append(root(res.x, th[i + 1]))
    roots = np.sort(np.asarray(roots, dtype=float))

    # Assemble the pieces between consecutive crossings (and ±π/2); each piece is in the set or
    # not as a whole, decided at its midpoint.
    edges = np.concatenate([[-half], roots, [half]])
    pieces = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo and g(0.5 * (lo + hi)) <= 0:
            pieces.append([lo, hi])
    # Merge touching pieces (a tangency counted as two roots).
    merged = []
    for lo, hi in pieces:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])

    def to_beta(x):
        if x <= -half:
            return -np.inf
        if x >= half:
            return np.inf
        return float(np.tan(x))

    return [(to_beta(lo), to_beta(hi)) for lo, hi in merged]


# --------------------------------------------------------------------------------------------
# Display
# --------------------------------------------------------------------------------------------

def _fmt(x: float, digits: int) -> str:
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) >= 10 ** 6 or abs(x) < 10 ** -4):
        return f"{x:.{digits}g}"
    return np.format_float_positional(x, precision=digits, unique=True, fractional=False, trim="-")


def format_set(res: dict, digits: int = 3) -> str:
    """A confidence set for display, numbers to ``digits`` significant digits.

    Closed ends in brackets, unbounded ends as ``(-inf`` / ``inf)``, pieces joined by ``∪``:
    ``"[0.021, 0.244]"``, ``"(-inf, -1.2] ∪ [3.4, inf)"``, ``"(-inf, inf)"``; the empty set is
    ``"∅"``. Accepts an :func:`anderson_rubin_set` result (or any dict with ``intervals``).
    """
    intervals = res["intervals"]
    if not intervals:
        return "∅"
    parts = []
    for lo, hi in intervals:
        left = "(" if np.isinf(lo) else "["
        right = ")" if np.isinf(hi) else "]"
        parts.append(f"{left}{_fmt(lo, digits)}, {_fmt(hi, digits)}{right}")
    return " ∪ ".join(parts)
