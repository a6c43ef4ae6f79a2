"""Diagnostics: is the instrument strong enough to identify anything (before the fit), and does the fitted
curve reproduce what linear 2SLS identifies (after it)?"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pandas as pd
from scipy import stats

from ._warnings import warn

# Rule of thumb for a weak first stage (Staiger & Stock): a partial F statistic below 10.
WEAK_F = 10.0


class WeakInstrumentWarning(UserWarning):
    """The instruments explain little of the treatment beyond the covariates."""


class IdentificationWarning(UserWarning):
    """The data identify the curve weakly or not at all: a reported curve or band needs care."""


def _rss_from_moments(A: np.ndarray, B: np.ndarray, tTt: float):
    """Residual sum of squares of least squares from its moments, and the design's rank.

    A = DᵀD, B = DᵀT, tTt = Σ T²: RSS = tTt − tr(Bᵀ A⁺ B). The Gram matrix is scaled to unit
    diagonal and solved in its eigenbasis, dropping directions with eigenvalue below 1e-12 of the
    largest (collinear columns), so no inverse is formed and rank deficiency is handled.
    """
    d = np.sqrt(np.diag(A))
    live = d > 0
    A, B, d = A[np.ix_(live, live)], B[live], d[live]
    if A.size == 0:
        return tTt, 0
    w, Q = np.linalg.eigh(A / np.outer(d, d))
    keep = w > w.max() * 1e-12
    proj = Q[:, keep].T @ (B / d[:, None])
    return max(tTt - float((proj**2 / w[keep, None]).sum()), 0.0), int(keep.sum())


def first_stage_f(T: np.ndarray, Z: np.ndarray, X: Optional[np.ndarray], reduce_sum: Optional[Callable] = None) -> float:
    """Partial F statistic of the excluded instruments in a linear first stage T ~ [Z, X, 1].

    F = ((RSS_r − RSS_f) / q) / (RSS_f / (n − k)) with the restricted model T ~ [X, 1], q the rank
    that Z adds and k the rank of the full design. For a multi-column treatment (images) the
    statistic of the column sums of squares (all columns pooled) is reported. Linear, so a strong
    but purely nonlinear instrument can score low: it is a warning, never an error.

    Computed from the moments DᵀD, DᵀT, ΣT² and n, which ``reduce_sum`` (a sum over the ranks of a
    distributed fit) turns into the whole data set's: every rank gets the same statistic. Centre
    the columns first for accuracy (the intercept makes the statistic invariant to it).
    """
    total = reduce_sum or (lambda a: a)
    q_z = Z.shape[1]
    D = np.hstack([Z] + ([] if X is None else [X]) + [np.ones((T.shape[0], 1))])
    A, B = total(D.T @ D), total(D.T @ T)
    tTt, n = total(np.array([(T**2).sum(), T.shape[0]], dtype=np.float64))
    rss_f, k_f = _rss_from_moments(A, B, tTt)
    rss_r, k_r = _rss_from_moments(A[q_z:, q_z:], B[q_z:], tTt)
    q = k_f - k_r
    if q == 0:
        return 0.0
    if rss_f <= 0:
        return np.inf
    return float(((rss_r - rss_f) / q) / (rss_f / max(n - k_f, 1)))


# Treatments with more columns than this (images) get the pooled statistic of first_stage_f only.
_MAX_PER_COLUMN = 32
# Singular values below this fraction of the largest count as rank deficiency in the linear check.
_RANK_RTOL = 1e-8


def _coefficients_from_moments(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Least-squares coefficients A⁺ B from the moments A = DᵀD, B = DᵀT, in the eigenbasis of the
    unit-diagonal A (directions below 1e-12 of the largest dropped; zero columns get 0)."""
    d = np.sqrt(np.diag(A))
    live = d > 0
    out = np.zeros((A.shape[0], B.shape[1]))
    if not live.any():
        return out
    w, Q = np.linalg.eigh(A[np.ix_(live, live)] / np.outer(d[live], d[live]))
    keep = w > w.max() * 1e-12
    Qk = Q[:, keep]
    out[live] = (Qk @ ((Qk.T @ (B[live] / d[live, None])) / w[keep, None])) / d[live, None]
    return out


def first_stage_table(T: np.ndarray, Z: np.ndarray, X: Optional[np.ndarray], names=None,
                      reduce_sum: Optional[Callable] = None) -> pd.DataFrame:
    """Linear first-stage strength of the instruments for each treatment column.

    For column j, with everything partialled out on the included exogenous regressors [X, 1]
    (tildes), the excluded instruments whitened to Z̃ᵀZ̃ = I (r = their rank), γⱼ = Z̃ᵀ T̃ⱼ and
    eⱼ = T̃ⱼ − Z̃ γⱼ:

        F            = (‖γⱼ‖² / r) / (eⱼᵀeⱼ / (n − k))                    classical partial F, k = r + rank[X, 1]
        F (robust)   = γⱼᵀ (Σᵢ eᵢⱼ² z̃ᵢ z̃ᵢᵀ)⁻¹ γⱼ / r                        heteroskedasticity-robust (HC0) Wald / r
        partial R²   = ‖γⱼ‖² / T̃ⱼᵀT̃ⱼ
        F (conditional), with p > 1 treatment columns (Sanderson & Windmeijer 2016): the classical
                       F of Z in the regression of the residual of column j's 2SLS regression on the
                       other columns, T̃ⱼ − T̃₋ⱼ δⱼ with δⱼ = (γ₋ⱼᵀγ₋ⱼ)⁻¹ γ₋ⱼᵀ γⱼ, on r − p + 1 degrees of
                       freedom: it is small when column j is not moved by the instruments *apart from*
                       the other columns, which a pooled or per-column F misses.

    The robust statistic is the Wald statistic divided by r, as R's ``ivreg`` and ivreg2 report it;
    linearmodels' ``first_stage.diagnostics["f.stat"]`` under a robust covariance is the Wald
    statistic itself (r times ours). Columns are centred or not: the intercept makes every
    statistic invariant to it, and to the scale of each column. ``reduce_sum`` sums over the ranks of
    a distributed fit, so every rank gets the whole data set's statistics.

    Returns
    -------
    DataFrame, one row per treatment column (``names``), columns ``F``, ``F (robust)``,
    ``partial R²`` and, with several columns, ``F (conditional)``.
    """
    total = reduce_sum or (lambda a: a)
    n = float(total(np.array([T.shape[0]], dtype=np.float64))[0])
    W = np.hstack(([] if X is None else [X]) + [np.ones((T.shape[0], 1))])  # included exogenous
    # partial out [X, 1]: coefficients from the whole data set's moments
    Wt = np.hstack([W, T, Z])
    M = total(W.T @ Wt)
    coef = _coefficients_from_moments(M[:, : W.shape[1]], M[:, W.shape[1]:])
    Tt = T - W @ coef[:, : T.shape[1]]
    Zt = Z - W @ coef[:, T.shape[1]:]
    k_w = np.linalg.matrix_rank(M[:, : W.shape[1]] / n)
    # whiten the partialled instruments: Z̃ M with (Z̃ M)ᵀ(Z̃ M) = I
    G = total(Zt.T @ Zt)
    d = np.sqrt(np.clip(np.diag(G), 0.0, None))
    live = d > 1e-12 * max(float(d.max(initial=0.0)), 1e-300)
    p = T.shape[1]
    names = list(names) if names is not None and len(names) == p else [f"treatment_{j}" for j in range(p)]
    r = 0
    if live.any():
        w, Q = np.linalg.eigh(G[np.ix_(live, live)] / np.outer(d[live], d[live]))
        keep = w > w.max() * 1e-12
        r = int(keep.sum())
        Zw = (Zt[:, live] / d[live]) @ (Q[:, keep] / np.sqrt(w[keep]))
    if r == 0:
        out = {"F": np.zeros(p), "F (robust)": np.zeros(p), "partial R²": np.zeros(p)}
        if p > 1:
            out["F (conditional)"] = np.zeros(p)
        return pd.DataFrame(out, index=names)
    gamma = total(Zw.T @ Tt)  # (r, p)
    S = total(Tt.T @ Tt)  # (p, p): partialled treatment cross-products
    E = Tt - Zw @ gamma
    rss_f = total(np.einsum("ij,ij->j", E, E))
    dof = max(n - r - k_w, 1.0)
    explained = (gamma**2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        F = np.where(rss_f > 0, (explained / r) / (rss_f / dof), np.inf)
        r2 = np.where(np.diag(S) > 0, explained / np.diag(S), 0.0)
    robust = np.empty(p)
    for j in range(p):
        meat = total((Zw * E[:, [j]] ** 2).T @ Zw)
        sol = np.linalg.lstsq(meat, gamma[:, j], rcond=None)[0]
        robust[j] = float(gamma[:, j] @ sol) / r
    out = {"F": F, "F (robust)": robust, "partial R²": r2}
    if p > 1:
        cond = np.full(p, np.nan)
        df_num = r - p + 1
        if df_num > 0:
            for j in range(p):
                o = [i for i in range(p) if i != j]
                g_o = gamma[:, o]
                delta = np.linalg.lstsq(g_o.T @ g_o, g_o.T @ gamma[:, j], rcond=None)[0]
                g = gamma[:, j] - g_o @ delta  # the residual's coefficients on the whitened instruments
                ss = S[j, j] - 2.0 * delta @ S[o, j] + delta @ S[np.ix_(o, o)] @ delta  # its sum of squares
                rss = ss - float(g @ g)
                cond[j] = (float(g @ g) / df_num) / (rss / dof) if rss > 0 else np.inf
        out["F (conditional)"] = cond
    return pd.DataFrame(out, index=names)


def warn_if_weak_instrument(T, Z, X, reduce_sum: Optional[Callable] = None, names=None,
                            reduce_max: Optional[Callable] = None) -> dict:
    """Warn (naming the treatment column, the instrument problem and the statistic) when the first
    stage is weak; returns the fitted attributes ``first_stage_f_``, ``first_stage_`` and
    ``identification_`` (``{"status": "identified" | "weak" | "not identified", "reasons": [...]}``).

    ``first_stage_`` is :func:`first_stage_table` (None for treatments of more than 32 columns, e.g.
    images). ``first_stage_f_`` is the statistic whose weakness matters: a single column's F, the
    smallest conditional F of several columns, or for a treatment of more columns the pooled
    statistic of :func:`first_stage_f`. Expects centred columns; ``reduce_sum`` as there, ``reduce_max``
    the largest of a count over the ranks (:func:`under_identified`).

    Raises ``ValueError`` when every instrument column is constant. Fewer instrument columns than
    treatment columns, or discrete instruments with too few values (:func:`under_identified`), make the
    status "not identified".
    """
    total = reduce_sum or (lambda a: a)
    n, z_sq = total(np.array([Z.shape[0]], dtype=np.float64))[0], total((Z**2).sum(axis=0))
    if np.all(np.sqrt(z_sq / n) < 1e-12):
        # Nothing to learn from: training would take its full time and report a curve made of the
        # initialisation and the ridge. Stop before it.
        raise ValueError("instruments: every instrument column is constant, so the instruments cannot move the "
                         "treatment and the structural function is not identified; pass instruments that vary")
    why = "the instruments are constant, (nearly) collinear with the covariates, or barely move the treatment"
    if T.shape[1] > _MAX_PER_COLUMN:
        F = first_stage_f(T, Z, X, reduce_sum)
        weak = F < WEAK_F
        if weak:
            warn(f"instruments: weak instrument: the linear first-stage partial F statistic (all {T.shape[1]} "
                 f"treatment columns pooled) is {F:.3g} (< {WEAK_F:g}); {why}", WeakInstrumentWarning)
        reasons = [f"the linear first-stage F of the pooled treatment columns is {F:.3g}"] if weak else []
        return {"first_stage_f_": F, "first_stage_": None,
                "identification_": {"status": "weak" if weak else "identified", "reasons": reasons}}
    table = first_stage_table(T, Z, X, names, reduce_sum)
    column = "F (conditional)" if "F (conditional)" in table else "F"
    what = ("the linear first-stage partial F statistic is" if column == "F" else
            "its conditional (Sanderson-Windmeijer) first-stage F, given the other treatment columns, is")
    reasons = []
    for name, F in table[column].items():
        if np.isnan(F):
            reasons.append(f"treatment column {name!r} has no linear first stage of its own (fewer instruments than "
                           "treatment columns)")
            warn(f"instruments: treatment column {name!r} is not identified by a linear first stage: there are fewer "
                 "instruments than treatment columns (conditional first-stage F undefined)", WeakInstrumentWarning)
        elif F < WEAK_F:
            reasons.append(f"the linear first-stage {'conditional ' if column != 'F' else ''}F of {name!r} is {F:.3g}")
            own = table.loc[name, "F"]
            because = (f"the instruments move it (its own F is {own:.3g}) but not apart from the other treatment "
                       "columns, so the effects of the columns cannot be told apart" if column != "F" and own >= WEAK_F
                       else why)
            warn(f"instruments: weak instrument for treatment column {name!r}: {what} {F:.3g} (< {WEAK_F:g}); "
                 f"{because}", WeakInstrumentWarning)
    values = table[column].to_numpy(dtype=float)
    weakest = 0.0 if np.isnan(values).any() else float(values.min())
    missing = under_identified(T.shape[1], Z, reduce_max)
    if missing:
        warn(f"instruments: the structural function is not identified: {missing}", WeakInstrumentWarning)
    # No first stage of a column's own (NaN conditional F) or too few instruments: nothing identifies the
    # column's effect apart from the others', so no curve is identified, however strong the F of the rest.
    status = "not identified" if missing or np.isnan(values).any() else ("weak" if reasons else "identified")
    return {"first_stage_f_": weakest, "first_stage_": table,
            "identification_": {"status": status, "reasons": ([missing] if missing else []) + reasons}}


# Instruments whose rows take at most this many distinct values are read as discrete (DFIV's complexity rule,
# deepcausal._complexity.resolve_rule); values closer than DISTINCT_RTOL times a column's spread are one value.
DISCRETE_MAX = 10
DISTINCT_RTOL = 1e-6


def distinct_rows(Z: np.ndarray, limit: int = DISCRETE_MAX, rtol: float = DISTINCT_RTOL) -> int:
    """How many distinct rows ``Z`` holds, with a tolerance relative to each column's scale; any count
    above ``limit`` is returned as ``limit + 1`` (only small counts matter, and a continuous column is
    ruled out after one sort).

    Sorted values of a column whose gap is at most ``rtol`` × the column's standard deviation (its
    largest |value|, or 1, for a constant column) are one value: a binary instrument with rounding
    noise of 1e-9 still takes two values. Rows are then counted on the columns' value codes.
    """
    Z = np.asarray(Z, dtype=np.float64).reshape(len(Z), -1)
    if Z.shape[0] == 0:
        return 0
    codes = np.empty(Z.shape, dtype=np.int64)
    for j, col in enumerate(Z.T):
        scale = float(col.std()) or max(float(np.abs(col).max()), 1.0)
        order = np.argsort(col, kind="stable")
        ids = np.concatenate([[0], np.cumsum(np.diff(col[order]) > rtol * scale)])
        if ids[-1] + 1 > limit:
            return limit + 1
        codes[order, j] = ids
    return min(len(np.unique(codes, axis=0)), limit + 1)


def under_identified(d_t: int, Z: np.ndarray, reduce_max: Optional[Callable] = None) -> str:
    """Why instruments cannot identify a curve in ``d_t`` treatment columns ('' when they can).

    Two counts, both necessary conditions (stated before any fit): the order condition (at least as many
    instrument columns as treatment columns), and, for instruments that take K ≤ ``DISCRETE_MAX``
    distinct values (rows of Z), K − 1 ≥ d_t: K values give K − 1 moment equations per value of the
    covariates beyond the intercept, too few for d_t slopes otherwise. ``reduce_max`` takes the largest
    count over the ranks of a distributed fit.
    """
    if Z.shape[1] < d_t:
        return (f"{Z.shape[1]} instrument column{'s' if Z.shape[1] != 1 else ''} for {d_t} treatment columns "
                "(the order condition needs at least one instrument per treatment column)")
    if d_t > _MAX_PER_COLUMN:
        return ""
    k = distinct_rows(Z)
    if reduce_max is not None:
        k = int(reduce_max(k))
    if k - 1 < d_t:
        return (f"the instruments take {k} distinct value{'s' if k != 1 else ''}, which identify at most {k - 1} "
                f"slope{'s' if k != 2 else ''} for {d_t} treatment columns")
    return ""


class ShrinkageWarning(IdentificationWarning):
    """The fitted curve does not reproduce what linear 2SLS identifies on the same data (most often: it
    is shrunk towards a flat curve where the instruments identify little more than a slope)."""


# The check warns when the difference is both significant (two-sided p-value below CHECK_LEVEL) and
# material (at least CHECK_RELATIVE of linear 2SLS's slope): a curve fitted with a percent's bias on a
# large sample fails the first test alone, and a user cannot act on that.
CHECK_LEVEL = 0.05
CHECK_RELATIVE = 0.10


def linear_iv_check(Y: np.ndarray, T: np.ndarray, Z: np.ndarray, X: Optional[np.ndarray], h: np.ndarray,
                    names=None) -> Optional[pd.DataFrame]:
    """Does the fitted curve reproduce what linear 2SLS identifies?

    With tildes for columns partialled out on [X, 1] and T̂ = Z̃ Π the linear first-stage fit of T̃,
    linear 2SLS estimates θ = A⁻¹ T̂ᵀỸ with A = T̂ᵀT̃. The IV model, E[Y − h(T, X) | Z, X] = 0, makes
    T̂ᵀ(Y − h) / n vanish in the limit for the true h whether h is linear or not, so the same
    statistic of a fitted curve, θ_h = A⁻¹ T̂ᵀh̃, estimates the same weighted average of slopes:

        θ_h − θ = −A⁻¹ T̂ᵀ r̃,    r = Y − ĥ(T, X),
        Var     = A⁻¹ (Σᵢ r̃ᵢ² t̂ᵢ t̂ᵢᵀ) A⁻ᵀ      (HC0, the curve and Π held fixed).

    A difference far from 0 means the curve misses a moment the data pin down; when |θ_h| < |θ| with
    the same sign the curve is shrunk by 1 − θ_h/θ in that direction. θ's own standard error is
    HC0 with the 2SLS residual Ỹ − T̃θ. The curve is fitted on these rows, which pulls the
    difference towards 0: the check is conservative.

    Returns
    -------
    DataFrame, one row per treatment column (``names``): ``tsls`` and ``tsls_se`` (linear 2SLS),
    ``curve`` (θ_h), ``difference`` (θ_h − θ), ``difference_se``, ``p_value`` (two-sided, normal) and
    ``shrinkage`` (1 − θ_h/θ). None when the instruments have fewer linear directions beyond the
    covariates than the treatment has columns (no 2SLS).
    """
    n, p = T.shape
    W = np.hstack(([] if X is None else [X]) + [np.ones((n, 1))])
    cols = np.hstack([T, Z, Y.reshape(n, 1), h.reshape(n, 1)])
    coef = _coefficients_from_moments(W.T @ W, W.T @ cols)
    Tt, Zt, Yt, ht = np.split(cols - W @ coef, np.cumsum([p, Z.shape[1], 1]), axis=1)
    # an instrument column the covariates explain is left with rounding noise only: no direction of its own
    spread = np.linalg.norm(Z - Z.mean(axis=0), axis=0)
    Zt = np.where(np.linalg.norm(Zt, axis=0) > 1e-8 * np.maximum(spread, 1e-300), Zt, 0.0)
    Pi = _coefficients_from_moments(Zt.T @ Zt, Zt.T @ Tt)
    That = Zt @ Pi
    A = That.T @ Tt
    scale = np.sqrt(np.clip(np.diag(That.T @ That) * np.diag(Tt.T @ Tt), 0.0, None))
    # Rank at a tolerance relative to the largest singular value: numpy's default (machine epsilon times the
    # size) called a direction of singular value 2.8e-16 against 0.61 a rank of its own, and the check then
    # reported a 2SLS of an under-identified model with a standard error of 0.
    sv = np.linalg.svd(A / np.where(scale > 0, np.sqrt(scale[:, None] * scale[None, :]), 1.0), compute_uv=False)
    if not sv.size or int((sv > _RANK_RTOL * sv.max()).sum()) < p:
        return None
    theta = np.linalg.solve(A, That.T @ Yt)[:, 0]
    curve = np.linalg.solve(A, That.T @ ht)[:, 0]

    def sandwich(resid):
        meat = (That * resid**2).T @ That
        return np.sqrt(np.clip(np.diag(np.linalg.solve(A, np.linalg.solve(A, meat).T)), 0.0, None))

    tsls_se = sandwich(Yt - Tt @ theta[:, None])
    diff_se = sandwich(Yt - ht)
    diff = curve - theta
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = 2 * stats.norm.sf(np.abs(diff) / diff_se)
        shrinkage = 1.0 - curve / theta
    names = list(names) if names is not None and len(names) == p else [f"treatment_{j}" for j in range(p)]
    return pd.DataFrame({"tsls": theta, "tsls_se": tsls_se, "curve": curve, "difference": diff,
                         "difference_se": diff_se, "p_value": p_value, "shrinkage": shrinkage}, index=names)


def warn_if_shrunk(check: Optional[pd.DataFrame]) -> None:
    """Warn, per treatment column, when :func:`linear_iv_check` finds the curve off the 2SLS moment: a
    difference with p < 0.05 of at least a tenth of linear 2SLS's slope."""
    if check is None:
        return
    for name, r in check.iterrows():
        if not (r["p_value"] < CHECK_LEVEL and abs(r["difference"]) >= CHECK_RELATIVE * abs(r["tsls"])):
            continue
        compared = (f"its 2SLS-weighted slope of {name!r} is {r['curve']:.3g}, linear 2SLS on the same data gives "
                    f"{r['tsls']:.3g} (se {r['tsls_se']:.2g}; difference p = {r['p_value']:.2g})")
        if np.sign(r["curve"]) == np.sign(r["tsls"]) and abs(r["curve"]) < abs(r["tsls"]):
            warn(f"the fitted curve is shrunk towards a flat curve by {r['shrinkage']:.0%} in the direction the "
                 f"instruments identify: {compared}. Its bands cover the shrunk curve, not the effect; "
                 "complexity='linear' (with the default treatment network) reports linear 2SLS's line in the treatment "
                 "instead, the simplest curve the data support (the default, 'auto', does so when the instruments "
                 "take at most d_t + 1 values)", ShrinkageWarning)
        else:
            warn(f"the fitted curve does not reproduce what linear 2SLS identifies: {compared}; the curve misses a "
                 "moment the data pin down, so read its shape and bands with care", ShrinkageWarning)
