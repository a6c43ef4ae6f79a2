"""Tests of deepcausal._weak_iv: 2SLS with robust standard errors and Anderson–Rubin sets.

Reference values come from independent computations (linearmodels' IV2SLS; plain least squares
on the full design [Z, W] with numpy.linalg.lstsq / pinv; brute-force grids), never from a
previous run of the module.
"""

import numpy as np
import pytest
from scipy import stats

from deepcausal._weak_iv import anderson_rubin_set, format_set, tsls_robust, wald_interval


def simulate(rng, n=300, q=1, pi=0.5, beta=1.5, hetero=True):
    """y = β t + W γ + e, t = Z π + W δ + v, with corr(e, v) ≠ 0 (endogeneity) and, optionally,
    heteroskedastic e. W has a constant column."""
    Z = rng.normal(size=(n, q))
    X = rng.normal(size=(n, 2))
    W = np.column_stack([np.ones(n), X])
    v = rng.normal(size=n)
    t = 0.4 + Z @ np.full(q, pi) + X @ [0.3, -0.2] + v
    scale = (0.5 + np.abs(Z[:, 0])) if hetero else 1.0
    e = 0.7 * v + rng.normal(size=n) * scale
    y = 2.0 + beta * t + X @ [1.0, -2.0] + e
    return y, t, Z, W


def ar_stat_direct(y, t, Z, W, beta0, robust):
    """AR statistic at beta0 by regressing y − beta0 t on the full design [Z, W] (no partialling).

    Robust: HC0 Wald of Z's coefficients, V = X⁺ diag(e²) X⁺ᵀ. Classical: F from the restricted
    (W only) and unrestricted residual sums of squares."""
    X = np.column_stack([Z, W])
    n, k = X.shape
    q = Z.shape[1]
    u = y - beta0 * t
    coef, *_ = np.linalg.lstsq(X, u, rcond=None)
    e = u - X @ coef
    if robust:
        Xp = np.linalg.pinv(X)
        V = (Xp * e**2) @ Xp.T
        bz = coef[:q]
        return float(bz @ np.linalg.solve(V[:q, :q], bz))
    coef_r, *_ = np.linalg.lstsq(W, u, rcond=None)
    er = u - W @ coef_r
    return float(((er @ er - e @ e) / q) / ((e @ e) / (n - k)))


def ar_stat_grid(y, t, Z, W, betas, robust):
    """ar_stat_direct vectorised over a grid of beta0 (same independent formulas)."""
    X = np.column_stack([Z, W])
    n, k = X.shape
    q = Z.shape[1]
    U = y[:, None] - t[:, None] * betas[None, :]
    Xp = np.linalg.pinv(X)
    coef = Xp @ U
    E = U - X @ coef
    if robust:
        V = np.einsum("in,nm,jn->mij", Xp[:q], E**2, Xp[:q])
        bz = coef[:q].T
        return np.einsum("mi,mi->m", bz, np.linalg.solve(V, bz[..., None])[..., 0])
    Er = U - W @ (np.linalg.pinv(W) @ U)
    rss, rss_r = (E**2).sum(0), (Er**2).sum(0)
    return ((rss_r - rss) / q) / (rss / (n - k))


def away_from(betas, points):
    """Mask of grid points not within rounding distance of a boundary (where the test statistic
    equals the critical value and either answer is right)."""
    scale = np.ptp(betas)
    return np.all(np.abs(betas[:, None] - np.asarray(points, float)[None, :]) > 1e-9 * scale, axis=1)


def in_set(res, b):
    return np.array([any(lo <= x <= hi for lo, hi in res["intervals"]) for x in np.atleast_1d(b)])


# ------------------------------------------------------------------------------------------------
# 2SLS against linearmodels
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("q", [1, 2])
def test_tsls_matches_linearmodels(q):
    from linearmodels.iv import IV2SLS

    y, t, Z, W = simulate(np.random.default_rng(10 + q), q=q)
    r = tsls_robust(y, t, Z, W)
    model = IV2SLS(y, W, t[:, None], Z)
    hc0 = model.fit(cov_type="robust")                  # linearmodels default: debiased=False
    hc1 = model.fit(cov_type="robust", debiased=True)   # × n / (n − k)
    est = hc0.params.iloc[-1]  # the endogenous regressor comes after the exog columns
    assert r["estimate"] == pytest.approx(est, rel=1e-8)
    assert r["se_hc0"] == pytest.approx(hc0.std_errors.iloc[-1], rel=1e-8)
    assert r["se"] == pytest.approx(hc1.std_errors.iloc[-1], rel=1e-8)
    assert r["se"] > r["se_hc0"]
    assert (r["n"], r["k"], r["q"]) == (len(y), W.shape[1] + 1, q)
    # First stage: HC0 Wald = linearmodels' robust f.stat; robust F = HC1 Wald / q.
    assert r["first_stage_wald"] == pytest.approx(hc0.first_stage.diagnostics["f.stat"].iloc[0], rel=1e-8)
    assert r["first_stage_F"] * q == pytest.approx(hc1.first_stage.diagnostics["f.stat"].iloc[0], rel=1e-8)
    # Classical partial F from the restricted / unrestricted first-stage regressions.
    X = np.column_stack([Z, W])
    rss_u = np.sum((t - X @ np.linalg.lstsq(X, t, rcond=None)[0]) ** 2)
    rss_r = np.sum((t - W @ np.linalg.lstsq(W, t, rcond=None)[0]) ** 2)
    f_cl = ((rss_r - rss_u) / q) / (rss_u / (len(y) - X.shape[1]))
    assert r["first_stage_F_classical"] == pytest.approx(f_cl, rel=1e-8)

    lo, hi = wald_interval(r, alpha=0.1)
    z = stats.norm.ppf(0.95)
    assert (lo, hi) == pytest.approx((est - z * r["se"], est + z * r["se"]), rel=1e-12)
    lo0, hi0 = wald_interval(r, alpha=0.1, se="se_hc0")
    assert hi0 - lo0 < hi - lo


# ------------------------------------------------------------------------------------------------
# AR set: estimate inside, boundaries at the critical value
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("robust", [True, False])
def test_ar_just_identified_contains_estimate_and_boundaries_hit_critical_value(robust):
    y, t, Z, W = simulate(np.random.default_rng(3), q=1, pi=0.4)
    res = anderson_rubin_set(y, t, Z, W, alpha=0.05, robust=robust)
    b = tsls_robust(y, t, Z, W)["estimate"]
    assert res["estimate"] == pytest.approx(b, rel=1e-12)
    assert res["method"] == "quadratic"
    assert res["kind"] == "interval"
    # Just identified: the AR regression's Z coefficient vanishes at the 2SLS estimate.
    assert res["statistic_at_estimate"] < 1e-12
    assert ar_stat_direct(y, t, Z, W, b, robust) < 1e-12
    assert in_set(res, b).all()
    crit = stats.chi2.ppf(0.95, 1) if robust else stats.f.ppf(0.95, 1, len(y) - 1 - W.shape[1])
    assert res["critical_value"] == pytest.approx(crit, rel=1e-12)
    (lo, hi), = res["intervals"]
    for x in (lo, hi):
        assert ar_stat_direct(y, t, Z, W, x, robust) == pytest.approx(crit, rel=1e-7)
        assert res["statistic_at"](x) == pytest.approx(crit, rel=1e-7)
    # Just outside the set the test rejects, just inside it does not.
    w = hi - lo
    assert ar_stat_direct(y, t, Z, W, lo - 1e-3 * w, robust) > crit
    assert ar_stat_direct(y, t, Z, W, hi + 1e-3 * w, robust) > crit
    assert ar_stat_direct(y, t, Z, W, lo + 1e-3 * w, robust) < crit
    # The limit at ±∞ is the first-stage statistic.
    fs = tsls_robust(y, t, Z, W)
    limit = fs["first_stage_wald"] if robust else fs["first_stage_F_classical"]
    assert res["limit_at_infinity"] == pytest.approx(limit, rel=1e-8)
    assert res["statistic_at"](np.inf) == pytest.approx(limit, rel=1e-8)


def test_ar_robust_overidentified_grid_boundaries_hit_critical_value():
    y, t, Z, W = simulate(np.random.default_rng(4), q=2, pi=0.3)
    res = anderson_rubin_set(y, t, Z, W, alpha=0.05, robust=True)
    assert res["method"] == "grid"
    assert res["kind"] == "interval"
    crit = stats.chi2.ppf(0.95, 2)
    (lo, hi), = res["intervals"]
    for x in (lo, hi):
        assert ar_stat_direct(y, t, Z, W, x, True) == pytest.approx(crit, rel=1e-7)
    # Agrees with a brute-force inversion on a fine grid (independent statistic).
    betas = np.linspace(lo - (hi - lo), hi + (hi - lo), 3001)
    betas = betas[away_from(betas, [lo, hi])]
    accept = ar_stat_grid(y, t, Z, W, betas, robust=True) <= crit
    assert np.array_equal(accept, in_set(res, betas))


# ------------------------------------------------------------------------------------------------
# Classical AR by the quadratic = brute-force grid inversion
# ------------------------------------------------------------------------------------------------

# pi = 0: irrelevant instruments, where the set is unbounded with probability 0.95 (checked below, so
# these cases do exercise the "two rays" / "real line" branches of the quadratic).
@pytest.mark.parametrize("q, pi, seed", [(1, 0.4, 5), (2, 0.3, 6), (1, 0.0, 7), (3, 0.0, 8)])
def test_classical_ar_quadratic_equals_grid_inversion(q, pi, seed):
    y, t, Z, W = simulate(np.random.default_rng(seed), q=q, pi=pi, hetero=False)
    res = anderson_rubin_set(y, t, Z, W, alpha=0.05, robust=False)
    crit = stats.f.ppf(0.95, q, len(y) - q - W.shape[1])
    finite = [x for iv in res["intervals"] for x in iv if np.isfinite(x)]
    b = tsls_robust(y, t, Z, W)["estimate"]
    centre = np.mean(finite) if finite else b
    half = 3 * (np.ptp(finite) if len(finite) > 1 else 1.0) + 10
    betas = np.linspace(centre - half, centre + half, 4001)
    betas = betas[away_from(betas, finite)]
    accept = ar_stat_grid(y, t, Z, W, betas, robust=False) <= crit
    assert np.array_equal(accept, in_set(res, betas))
    # Boundaries found by the quadratic are where the grid's acceptance switches.
    switches = betas[1:][accept[1:] != accept[:-1]]
    assert len(switches) == len(finite)
    assert np.allclose(np.sort(finite), switches, atol=betas[1] - betas[0])
    if pi == 0:
        # The weak designs exercise the unbounded shapes: acceptance at the grid's edges.
        assert res["kind"] in ("two rays", "real line")
        assert accept[0] and accept[-1]


@pytest.mark.parametrize("q, robust", [(1, False), (2, False), (1, True), (2, True)])
def test_ar_set_equals_brute_force_inversion_over_many_samples(q, robust):
    # Moderately weak first stage: intervals, two rays and the real line all occur among the
    # samples (asserted at the end, so every branch of the quadratic / grid code is exercised).
    kinds = set()
    for seed in range(25):
        y, t, Z, W = simulate(np.random.default_rng(2000 + seed), q=q, pi=0.1)
        res = anderson_rubin_set(y, t, Z, W, robust=robust)
        assert res["method"] == ("grid" if robust and q > 1 else "quadratic")
        kinds.add(res["kind"])
        n, k = len(y), q + W.shape[1]
        crit = stats.chi2.ppf(0.95, q) if robust else stats.f.ppf(0.95, q, n - k)
        assert res["critical_value"] == pytest.approx(crit, rel=1e-12)
        finite = [x for iv in res["intervals"] for x in iv if np.isfinite(x)]
        for x in finite:
            assert ar_stat_direct(y, t, Z, W, x, robust) == pytest.approx(crit, rel=1e-6)
        centre = np.median(finite) if finite else 0.0
        span = np.ptp(finite) if len(finite) > 1 else 1.0
        betas = np.concatenate([np.linspace(centre - 2 * span - 5, centre + 2 * span + 5, 1501),
                                np.linspace(-1e3, 1e3, 1501), [-1e7, 1e7]])
        betas = betas[away_from(betas, finite)]
        accept = ar_stat_grid(y, t, Z, W, betas, robust) <= crit
        assert np.array_equal(accept, in_set(res, betas)), (seed, res["kind"], res["intervals"])
    assert {"interval", "two rays", "real line"} <= kinds


def test_overidentified_set_can_be_empty():
    # Second instrument violates the exclusion restriction badly: no β₀ makes y − β₀ t
    # uncorrelated with both instruments, and the AR sets (classical and robust) are empty.
    rng = np.random.default_rng(9)
    y, t, Z, W = simulate(rng, q=2, pi=1.0, hetero=False)
    y = y + 3.0 * Z[:, 1] - 3.0 * Z[:, 0]
    for robust in (False, True):
        res = anderson_rubin_set(y, t, Z, W, robust=robust)
        betas = np.linspace(-50, 50, 20001)
        assert ar_stat_grid(y, t, Z, W, betas, robust).min() > res["critical_value"]
        assert res["kind"] == "empty" and res["intervals"] == []
        assert format_set(res) == "∅"


# ------------------------------------------------------------------------------------------------
# Weak vs strong instruments
# ------------------------------------------------------------------------------------------------

def test_weak_instrument_gives_unbounded_sets():
    rng = np.random.default_rng(11)
    unbounded = {True: 0, False: 0}
    wald_bounded = 0
    for _ in range(20):
        y, t, Z, W = simulate(rng, n=500, q=1, pi=0.02)
        for robust in (True, False):
            res = anderson_rubin_set(y, t, Z, W, robust=robust)
            if res["kind"] in ("two rays", "real line"):
                unbounded[robust] += 1
                assert any(np.isinf(x) for iv in res["intervals"] for x in iv)
                # Unbounded exactly when the first stage does not reject π = 0.
                assert res["limit_at_infinity"] <= res["critical_value"]
            else:
                assert res["limit_at_infinity"] > res["critical_value"]
        lo, hi = wald_interval(tsls_robust(y, t, Z, W))
        wald_bounded += np.isfinite(hi - lo)
    assert unbounded[True] >= 15 and unbounded[False] >= 15
    assert wald_bounded == 20  # the Wald interval never reveals the problem


def test_strong_instrument_bounded_with_nominal_coverage():
    rng = np.random.default_rng(12)
    beta = 1.5
    covered = 0
    for _ in range(200):
        y, t, Z, W = simulate(rng, n=200, q=1, pi=1.0, beta=beta)
        res = anderson_rubin_set(y, t, Z, W, alpha=0.05, robust=True)
        assert res["kind"] == "interval"
        covered += bool(in_set(res, beta)[0])
    assert 0.91 <= covered / 200 <= 0.99


# ------------------------------------------------------------------------------------------------
# Collinear controls / instruments
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("q", [1, 2])
def test_collinear_controls_give_same_answers(q):
    y, t, Z, W = simulate(np.random.default_rng(13), q=q, pi=0.3)
    # Duplicates, a linear combination and a rescaled copy of W's columns (as with several
    # concatenated feature sets).
    W_dup = np.column_stack([W, W[:, 1], 2.0 * W[:, 0] - 3.0 * W[:, 2], 1e4 * W[:, 1], W])
    a, b = tsls_robust(y, t, Z, W), tsls_robust(y, t, Z, W_dup)
    for key in ("estimate", "se", "se_hc0", "first_stage_wald", "first_stage_F", "first_stage_F_classical"):
        assert b[key] == pytest.approx(a[key], rel=1e-8), key
    assert (b["k"], b["q"], b["rank_W"]) == (a["k"], a["q"], a["rank_W"]) == (W.shape[1] + 1, q, W.shape[1])
    for robust in (True, False):
        ra = anderson_rubin_set(y, t, Z, W, robust=robust)
        rb = anderson_rubin_set(y, t, Z, W_dup, robust=robust)
        assert rb["kind"] == ra["kind"]
        assert np.allclose(rb["intervals"], ra["intervals"], rtol=1e-7)
        assert rb["critical_value"] == pytest.approx(ra["critical_value"], rel=1e-12)
    # An "instrument" that is a control adds nothing: same q and same answers.
    c = tsls_robust(y, t, np.column_stack([Z, W[:, 2]]), W_dup)
    assert c["q"] == q and c["estimate"] == pytest.approx(a["estimate"], rel=1e-8)


def test_degenerate_inputs_raise():
    y, t, Z, W = simulate(np.random.default_rng(14))
    with pytest.raises(ValueError, match="span of the controls"):
        tsls_robust(y, t, W[:, 1], W)
    with pytest.raises(ValueError, match="span of the controls"):
        anderson_rubin_set(y, W[:, 1] * 2.0, Z, W)
    with pytest.raises(ValueError, match="non-finite"):
        tsls_robust(np.where(np.arange(len(y)) == 0, np.nan, y), t, Z, W)


# ------------------------------------------------------------------------------------------------
# Display
# ------------------------------------------------------------------------------------------------

def test_format_set():
    inf = np.inf
    assert format_set({"intervals": [(0.021, 0.2441)]}) == "[0.021, 0.244]"
    assert format_set({"intervals": [(-inf, -1.2), (3.4, inf)]}) == "(-inf, -1.2] ∪ [3.4, inf)"
    assert format_set({"intervals": [(-inf, inf)]}) == "(-inf, inf)"
    assert format_set({"intervals": []}) == "∅"
    assert format_set({"intervals": [(1.23456, 2.5)]}, digits=5) == "[1.2346, 2.5]"
    assert format_set({"intervals": [(-3e7, 2e-6)]}, digits=2) == "[-3e+07, 2e-06]"


# ------------------------------------------------------------------------------------------------
# Internals: the quadratic solver's degenerate cases and the grid inversion's harder shapes
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("A, B, C", [(1.0, -3.0, 2.0), (1.0, 0.0, 1.0), (-1.0, 3.0, -2.0), (-1.0, 0.0, -1.0),
                                     (0.0, 2.0, -4.0), (0.0, -2.0, -4.0), (0.0, 0.0, -1.0), (0.0, 0.0, 1.0),
                                     (1e-8, -1.0, 1.0), (1.0, -2.0, 1.0)])
def test_quadratic_set_against_sign_evaluation(A, B, C):
    from deepcausal._weak_iv import _quadratic_set

    kind, intervals = _quadratic_set(A, B, C, scale_A=1.0)
    x = np.linspace(-10, 10, 2001)
    x = x[away_from(x, [v for iv in intervals for v in iv if np.isfinite(v)])]
    res = {"intervals": intervals}
    assert np.array_equal(A * x**2 + B * x + C <= 0, in_set(res, x))
    for lo, hi in intervals:
        for v in (lo, hi):
            if np.isfinite(v) and abs(A) > 1e-12:
                assert A * v * v + B * v + C == pytest.approx(0, abs=1e-9 * max(1, v * v))


def test_grid_inversion_finds_several_pieces_and_narrow_dips():
    from deepcausal._weak_iv import _grid_inversion

    # Two separate pieces around β = 1 and β = 6 (homogeneous of degree 0 in (c, s) = (1, β)/‖·‖).
    def two_dips(c, s):
        return (s - c) ** 2 * (s - 6 * c) ** 2 / (c * c + s * s) ** 2

    pieces = _grid_inversion(two_dips, 0.05, beta_hat=3.0, se=1.0)
    assert len(pieces) == 2 and all(np.isfinite(pieces).ravel())
    x = np.linspace(-5, 15, 4001)
    x = x[away_from(x, np.ravel(pieces))]
    assert np.array_equal(two_dips(1.0, x) <= 0.05, in_set({"intervals": pieces}, x))
    for v in np.ravel(pieces):
        assert two_dips(1.0, v) == pytest.approx(0.05, rel=1e-9)

    # A minimum just below the critical value, far narrower than any grid spacing, between grid
    # points: found by the local-extremum check (the set is b0 ± 1e-7).
    b0 = 3.0123456

    def narrow(c, s):
        return 1.0 + 1e6 * (s - b0 * c) ** 2 / (c * c + s * s)

    found = _grid_inversion(narrow, 1.0 + 1e-8 * (1 + b0 * b0) ** -1, beta_hat=0.0, se=1.0)
    assert len(found) == 1
    lo, hi = found[0]
    assert lo < b0 < hi and hi - lo == pytest.approx(2e-7, rel=1e-3)
