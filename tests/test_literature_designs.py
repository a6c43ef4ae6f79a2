"""Designs from the literature (deepcausal.datasets): truths at hand-computed points, seeding, and checks of
each data set against an independent statistic of its formula (moments, correlations, the IV and proxy
conditions)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deepcausal import datasets as ds
from deepcausal._diagnostics import first_stage_f
from deepcausal.benchmark import DESIGN_REGISTRY, design_kind, design_source, make_design, resolve_methods

NEW_IV = ["newey_powell", "chen_christensen_mild", "chen_christensen_severe", "horowitz", "kiv_linear", "kiv_sigmoid",
          "weak_iv", "demand_highdim"]
NEW_PROXY = ["mastouri_proxy", "miao_proxy"]
NEW = NEW_IV + NEW_PROXY
N_TEST = {"newey_powell": 121, "chen_christensen_mild": 101, "chen_christensen_severe": 101, "horowitz": 101,
          "kiv_linear": 1000, "kiv_sigmoid": 1000, "weak_iv": 101, "demand_highdim": 2800, "mastouri_proxy": 20,
          "miao_proxy": 21}
BIG = 20_000


def _draw(name, n, seed=0):
    return make_design(name, n=n, seed=seed)[0]


def _f_stat(resid, basis):
    """F statistic of regressing ``resid`` on [1, basis]: (R²/q)/((1 − R²)/(n − q − 1)); about 1 under the null."""
    n, q = basis.shape
    b = np.column_stack([np.ones(n), basis])
    fitted = b @ np.linalg.lstsq(b, resid, rcond=None)[0]
    r2 = 1.0 - np.sum((resid - fitted) ** 2) / np.sum((resid - resid.mean()) ** 2)
    return (r2 / q) / ((1.0 - r2) / (n - q - 1))


def _partial_corr(a, b, given):
    g = np.column_stack([np.ones(len(a)), given])
    ra = a - g @ np.linalg.lstsq(g, a, rcond=None)[0]
    rb = b - g @ np.linalg.lstsq(g, b, rcond=None)[0]
    return float(np.corrcoef(ra, rb)[0, 1])


def _centred_f(d):
    t, z = d.arrays["treatment"], d.arrays["instruments"]
    return first_stage_f(t - t.mean(0), z - z.mean(0), None)


# ----------------------------------------------------------------------- structural functions
def test_newey_powell_and_kiv_structural_at_hand_computed_points():
    np.testing.assert_allclose(ds.newey_powell_structural([1.0, 2.0, 0.0, -1.0, 4.0]),
                               [0.0, math.log(2), -math.log(2), -math.log(3), math.log(4)], atol=1e-15)
    np.testing.assert_allclose(ds.kiv_sigmoid_structural([0.5, 1.0, 0.0, 0.75]),
                               [0.0, math.log(9), -math.log(9), math.log(5)], atol=1e-15)
    np.testing.assert_allclose(ds.kiv_linear_structural([0.0, 0.25, 1.0]), [-2.0, -1.0, 2.0], atol=1e-15)
    # the sigmoid design is Newey & Powell's g₀ on x' = 16x − 7
    x = np.linspace(0, 1, 11)
    np.testing.assert_allclose(ds.kiv_sigmoid_structural(x), ds.newey_powell_structural(16 * x - 7), atol=1e-14)


def test_chen_christensen_and_miao_structural_at_hand_computed_points():
    np.testing.assert_allclose(ds.chen_christensen_structural([0.0, 0.5, -1 / 6, 1.0]), [0.0, 1.0, -0.5, 0.0],
                               atol=1e-15)
    np.testing.assert_allclose(ds.miao_proxy_structural([0.0, math.pi / 2, -2.0]),
                               [0.0, 1.5 + 0.25 * math.pi**2 / 4, 1.5 * math.sin(-2.0) + 1.0], atol=1e-15)


def test_horowitz_closed_forms_against_hand_values_and_truncated_series():
    # Σ cos(kπx)/k⁴ at x = 0, 1, 1/2 is π⁴/90, −7π⁴/720 and −7π⁴/11520.
    expected = [0.5 + math.sqrt(2) * math.pi**4 / 90, 0.5 - math.sqrt(2) * 7 * math.pi**4 / 720,
                0.5 - math.sqrt(2) * 7 * math.pi**4 / 11520]
    np.testing.assert_allclose(ds.horowitz_structural([0.0, 1.0, 0.5]), expected, atol=1e-13)
    k = np.arange(1.0, 4001.0)
    t = np.linspace(0, 1, 13)
    cos = np.cos(np.pi * np.outer(t, k))
    np.testing.assert_allclose(ds.horowitz_structural(t), 0.5 + math.sqrt(2) * cos @ k**-4.0, atol=1e-10)
    np.testing.assert_allclose(ds.horowitz_instrument_mean(t), 0.5 + math.sqrt(0.4) * cos @ k**-6.0, atol=1e-12)
    w = t[::-1]
    series = 1 + 2 * math.sqrt(0.2) * (np.cos(np.pi * np.outer(t, k)) * np.cos(np.pi * np.outer(w, k))) @ k**-2.0
    np.testing.assert_allclose(ds.horowitz_density(t, w), series, atol=1e-3)  # the k⁻² series converges as 1/K


def test_horowitz_density_is_a_density_with_uniform_marginals():
    m = 400
    g = (np.arange(m) + 0.5) / m  # midpoint rule
    f = ds.horowitz_density(g[:, None], g[None, :])
    assert f.min() > 0.26 and f.max() <= 1 + math.sqrt(0.2) * math.pi**2 / 3 + 1e-12
    np.testing.assert_allclose(f.mean(axis=0), 1.0, atol=1e-4)
    np.testing.assert_allclose(f.mean(axis=1), 1.0, atol=1e-4)
    assert ds.horowitz_density(1.0, 0.0) == pytest.approx(1 - math.sqrt(0.2) * math.pi**2 / 6, abs=1e-12)


def test_mastouri_truth_closed_form_hand_point_and_monte_carlo():
    # a = −0.2 makes the phase c = 0: f = (1/3)(1 + 0.5)·sin(0.6)/0.6.
    assert ds.mastouri_proxy_structural(-0.2) == pytest.approx(0.5 * math.sin(0.6) / 0.6, abs=1e-15)
    a = np.linspace(-1, 2, 7)
    rng = np.random.default_rng(123)
    u2 = rng.uniform(-1, 2, 400_000)
    u1 = rng.uniform(0, 1, 400_000) - ((u2 > 0) & (u2 < 1))
    mc = np.array([np.mean(u2 * np.cos(2 * (ai + 0.3 * u1 + 0.2))) for ai in a])
    np.testing.assert_allclose(ds.mastouri_proxy_structural(a), mc, atol=0.01)


def test_demand_highdim_structural_adds_only_the_confounders():
    extras = np.zeros((2, 50))
    extras[0, 0] = 1.0
    extras[1, 5:] = 7.0  # irrelevant columns: no effect
    got = ds.demand_highdim_structural([20.0, 20.0], [5.0, 5.0], [3, 3], extras)
    np.testing.assert_allclose(got, [-30.0 + 3.0, -30.0], atol=1e-12)  # f(20, 5, 3) = −30 (see demand)
    d = ds.demand_highdim(100, seed=0)
    ex = d.test_X[d.info["confounded"] + d.info["irrelevant"]].to_numpy()
    np.testing.assert_allclose(d.structural_function(d.test_X["price"], d.test_X["time"], d.test_X["customer_type"],
                                                     ex), d.test_truth, atol=0)
    np.testing.assert_allclose(ex, np.random.default_rng(20240).standard_normal((2800, 50)), atol=0)


# ----------------------------------------------------------------------- roles, shapes, seeding
@pytest.mark.parametrize("name", NEW)
def test_roles_shapes_finite_and_score(name):
    d = _draw(name, 300)
    assert d.kind == design_kind(name) == ("proxy" if name in NEW_PROXY else "iv")
    assert d.name == name and d.n == 300 and d.n_test == N_TEST[name]
    assert d.train is not None and d.arrays["outcome"].shape == (300, 1)
    cols = [c for cs in d.roles.values() for c in cs]
    assert sorted(cols) == sorted(d.train.columns)
    for role, arr in d.arrays.items():
        assert arr.ndim == 2 and arr.shape[0] == 300 and np.isfinite(arr).all()
        np.testing.assert_array_equal(arr, d.train[d.roles[role]].to_numpy())
    assert list(d.test_X.columns) == d.roles["treatment"] + d.roles["covariates"]
    assert d.test_truth.dtype == np.float64 and np.isfinite(d.test_truth).all()
    assert d.score(d.test_truth) == 0.0
    assert d.fit_kwargs()["outcome"] == d.roles["outcome"]
    if not d.roles["covariates"]:  # one-dimensional designs: the truth is the structural function on the grid
        np.testing.assert_allclose(d.structural_function(d.test_X.iloc[:, 0].to_numpy()), d.test_truth, atol=0)
    assert DESIGN_REGISTRY[name].source == design_source(name) and "(20" in design_source(name)


@pytest.mark.parametrize("name", NEW)
def test_seeding_and_fixed_test_grid(name):
    a, b, c = _draw(name, 200, 0), _draw(name, 200, 0), _draw(name, 200, 1)
    pd.testing.assert_frame_equal(a.train, b.train)
    for col in a.roles["outcome"] + a.roles["treatment"]:
        assert not np.array_equal(a.train[col], c.train[col])
    pd.testing.assert_frame_equal(a.test_X, c.test_X)
    np.testing.assert_array_equal(a.test_truth, c.test_truth)


def test_bad_arguments():
    with pytest.raises(ValueError, match="ill_posed"):
        ds.chen_christensen(10, ill_posed="moderate")
    with pytest.raises(ValueError, match="first_stage"):
        ds.weak_iv(10, first_stage=float("inf"))
    with pytest.raises(ValueError, match="n_confounded"):
        ds.demand_highdim(10, n_extra=3, n_confounded=4)
    with pytest.raises(ValueError, match="n must be"):
        ds.horowitz(0)


def test_resolve_methods_probes_every_new_design():
    plan = resolve_methods(NEW, "all")
    for name in NEW:
        assert plan[name], name
    assert "dfpv" in plan["mastouri_proxy"] and "dfiv" in plan["kiv_sigmoid"]


# ----------------------------------------------------------------------- the data follow their formulas
def test_newey_powell_moments_confounding_and_valid_instrument():
    d = ds.newey_powell(BIG, seed=0)
    x, y, z = (d.train[c].to_numpy() for c in ("x", "y", "z"))
    assert np.var(x) == pytest.approx(2.0, rel=0.03)  # x = z + v
    assert np.corrcoef(x, z)[0, 1] == pytest.approx(1 / math.sqrt(2), abs=0.015)
    resid = y - ds.newey_powell_structural(x)
    assert np.std(resid) == pytest.approx(1.0, rel=0.02)
    assert np.corrcoef(resid, x)[0, 1] == pytest.approx(0.5 / math.sqrt(2), abs=0.02)  # cov(ε, x) = 0.5
    assert _f_stat(resid, np.column_stack([z, z**2, z**3, np.sin(z), np.abs(z)])) < 5  # E[ε | z] = 0
    slope_ols = np.polyfit(x, y, 1)[0]
    slope_h = np.polyfit(x, ds.newey_powell_structural(x), 1)[0]
    assert slope_ols - slope_h > 0.15  # OLS biased upwards by cov(ε, x)/var(x) = 0.25


@pytest.mark.parametrize("ill_posed", ["mild", "severe"])
def test_chen_christensen_copula_correlation_noise_and_valid_instrument(ill_posed):
    d = ds.chen_christensen(BIG, ill_posed=ill_posed, seed=0)
    xi = d.info["xi"]
    x, y, z = (d.train[c].to_numpy() for c in ("x", "y", "z"))
    for v in (x, z):  # 2Φ(N(0, 1)) − 1 is uniform on (−1, 1)
        assert v.min() > -1 and v.max() < 1
        assert np.mean(v) == pytest.approx(0.0, abs=0.015) and np.var(v) == pytest.approx(1 / 3, rel=0.03)
    # Pearson correlation of the probit transforms = Spearman's ρ of the normals = (6/π)·asin(ξ/2)
    assert np.corrcoef(x, z)[0, 1] == pytest.approx(6 / math.pi * math.asin(xi / 2), abs=0.015)
    resid = y - ds.chen_christensen_structural(x)
    assert np.std(resid) == pytest.approx(math.sqrt(0.1), rel=0.02)
    assert np.corrcoef(resid, x)[0, 1] > 0.4  # corr(U, X*) = 0.5 survives the probit transform
    assert _f_stat(resid, np.column_stack([z, z**2, z**3, np.sin(np.pi * z)])) < 5


def test_chen_christensen_severe_has_the_weaker_first_stage():
    mild, severe = (ds.chen_christensen(5000, ill_posed=k, seed=0) for k in ("mild", "severe"))
    assert _centred_f(mild) > 4 * _centred_f(severe) > 1000


def test_horowitz_uniform_marginals_correlation_and_moment_condition():
    d = ds.horowitz(BIG, seed=0)
    x, y, w = (d.train[c].to_numpy() for c in ("x", "y", "z"))
    for v in (x, w):
        assert np.mean(v) == pytest.approx(0.5, abs=0.01) and np.var(v) == pytest.approx(1 / 12, rel=0.03)
        assert np.histogram(v, bins=10, range=(0, 1))[0].min() > 0.9 * BIG / 10
    # E[XW] − 1/4 = √0.2·Σ_{k odd} 8/(π⁴k⁶) = √0.2·(8/π⁴)·(63/64)·ζ(6), ζ(6) = π⁶/945
    cov = math.sqrt(0.2) * 8 / math.pi**4 * 63 / 64 * math.pi**6 / 945
    assert np.corrcoef(x, w)[0, 1] == pytest.approx(12 * cov, abs=0.015)
    assert np.std(y - ds.horowitz_instrument_mean(w)) == pytest.approx(0.1, rel=0.02)  # Y = E[g(X)|W] + V
    resid = y - ds.horowitz_structural(x)
    assert _f_stat(resid, np.column_stack([w, w**2, w**3, np.cos(np.pi * w), np.cos(2 * np.pi * w)])) < 5
    assert np.corrcoef(resid, x)[0, 1] > 0.8  # U = E[g(X)|W] − g(X) + V is mostly −g(X)
    assert np.polyfit(x, ds.horowitz_structural(x), 1)[0] < 2 * np.polyfit(x, y, 1)[0]  # OLS slope shrunk


@pytest.mark.parametrize("which", ["linear", "sigmoid"])
def test_kiv_uniform_treatment_instrument_and_confounding(which):
    d = getattr(ds, f"kiv_{which}")(BIG, seed=0)
    h = getattr(ds, f"kiv_{which}_structural")
    x, y, z = (d.train[c].to_numpy() for c in ("x", "y", "z"))
    for v in (x, z):  # Φ of a standard normal
        assert np.mean(v) == pytest.approx(0.5, abs=0.01) and np.var(v) == pytest.approx(1 / 12, rel=0.03)
    # corr((W + V)/√2, W) = 1/√2, so corr(x, z) = (6/π)·asin(1/(2√2))
    assert np.corrcoef(x, z)[0, 1] == pytest.approx(6 / math.pi * math.asin(1 / (2 * math.sqrt(2))), abs=0.015)
    resid = y - h(x)
    assert np.std(resid) == pytest.approx(1.0, rel=0.02)
    assert np.corrcoef(resid, x)[0, 1] > 0.25
    assert _f_stat(resid, np.column_stack([z, z**2, z**3, np.sin(np.pi * z)])) < 5
    if which == "linear":
        assert np.polyfit(x, y, 1)[0] - 4.0 > 0.8  # the OLS slope is far from the structural slope 4


def test_weak_iv_first_stage_f_is_weak_but_not_zero():
    designs = [ds.weak_iv(5000, seed=s) for s in range(8)]
    fs = [_centred_f(d) for d in designs]
    assert 10 <= np.median(fs) <= 25 and all(2 < f < 40 for f in fs)
    # the docstring's values for seeds 0–7, recomputed by a plain regression of x on [1, z]
    by_hand = [_f_stat(d.train["x"].to_numpy(), d.train[["z"]].to_numpy()) for d in designs]
    np.testing.assert_allclose(by_hand, [34.9, 5.2, 12.9, 19.4, 16.6, 13.6, 19.9, 26.8], atol=0.06)
    np.testing.assert_allclose(fs, by_hand, rtol=1e-6)
    assert ds.weak_iv(5000).info["expected_first_stage_F"] == pytest.approx(1 + 5000 * 0.053**2)
    assert _centred_f(ds.newey_powell(5000, seed=0)) > 1000  # the strong original, for contrast
    d = ds.weak_iv(BIG, seed=0)
    resid = d.train["y"] - ds.newey_powell_structural(d.train["x"])
    assert _f_stat(resid.to_numpy(), np.column_stack([d.train["z"], d.train["z"] ** 2])) < 5


def test_demand_highdim_confounders_enter_price_and_sales_instrument_stays_valid():
    d = ds.demand_highdim(BIG, seed=0)
    tr = d.train
    conf, irr = d.info["confounded"], d.info["irrelevant"]
    assert len(conf) == 5 and len(irr) == 45 and d.roles["covariates"] == ["time", "customer_type", *conf, *irr]
    shock = (tr["price"] - 25 - (tr["cost"] + 3) * ds.psi(tr["time"])).to_numpy()  # v
    assert np.var(shock) == pytest.approx(1.0, rel=0.03)
    corr = np.array([np.corrcoef(tr[c], shock)[0, 1] for c in conf + irr])
    np.testing.assert_allclose(corr[:5], math.sqrt(0.45 / 5), atol=0.02)  # a = √(0.45/k) = 0.3
    assert np.abs(corr[5:]).max() < 0.04
    extras = tr[conf + irr].to_numpy()
    h = d.structural_function(tr["price"], tr["time"], tr["customer_type"], extras)
    resid = tr["sales"].to_numpy() - h
    assert np.std(resid) == pytest.approx(1.0, rel=0.02)
    # valid given all covariates: E[e | cost, time, type, x] = 0
    basis = np.column_stack([tr["cost"], tr["cost"] ** 2, tr["time"], tr["customer_type"], extras])
    assert _f_stat(resid, basis) < 3
    assert np.corrcoef(resid, shock)[0, 1] == pytest.approx(0.5 * math.sqrt(0.55), abs=0.02)  # ρ·√(1 − ka²)
    # leaving the confounders out puts 3·Σx in the error: cov with v = ρ√0.55 + 3·5·0.3, variance 1 + 9·5
    omitted = resid + 3 * extras[:, :5].sum(axis=1)
    assert np.corrcoef(omitted, shock)[0, 1] == pytest.approx((0.5 * math.sqrt(0.55) + 4.5) / math.sqrt(46), abs=0.02)


def test_mastouri_proxy_structure():
    d = ds.mastouri_proxy(BIG, seed=0)
    tr, u1, u2 = d.train, d.info["hidden"]["u1"], d.info["hidden"]["u2"]
    assert u2.min() > -1 and u2.max() < 2 and np.mean((u2 > 0) & (u2 < 1)) == pytest.approx(1 / 3, abs=0.01)
    inside = (u2 > 0) & (u2 < 1)
    assert u1[inside].max() < 0 < u1[~inside].min()
    np.testing.assert_allclose(tr["y"], u2 * np.cos(2 * (tr["a"] + 0.3 * u1 + 0.2)), atol=1e-12)  # no Y noise
    assert np.std(tr["a"] - u2) == pytest.approx(0.05, rel=0.03)
    # proxies correlate through U only: Var U₁ = 1/12 + 2/9, Var U₂ = 3/4
    v1, v2 = 1 / 12 + 2 / 9, 0.75
    assert np.corrcoef(tr["z1"], tr["w1"])[0, 1] == pytest.approx(v1 / math.sqrt((v1 + 9) * (v1 + 1 / 3)), abs=0.02)
    assert np.corrcoef(tr["z2"], tr["w2"])[0, 1] == pytest.approx(v2 / math.sqrt((v2 + 1 / 3) * (v2 + 9)), abs=0.02)
    hidden = np.column_stack([u1, u2])
    for zc in ("z1", "z2"):
        for wc in ("w1", "w2"):
            assert abs(_partial_corr(tr[zc].to_numpy(), tr[wc].to_numpy(), hidden)) < 0.025
    # confounded: near a = 1.5 the observed mean of Y is far from f(1.5) ≈ −0.44
    near = tr["a"].between(1.4, 1.6)
    assert abs(tr.loc[near, "y"].mean() - ds.mastouri_proxy_structural(1.5)) > 0.5


def test_miao_proxy_structure_bridge_and_confounding():
    d = ds.miao_proxy(BIG, seed=0)
    tr, u = d.train, d.info["hidden"]["u"]
    a, y, z, w = (tr[c].to_numpy() for c in ("a", "y", "z", "w"))
    for v in (a, z, w):
        assert np.var(v) == pytest.approx(1.0, rel=0.03) and np.corrcoef(v, u)[0, 1] == pytest.approx(0.8, abs=0.01)
    assert np.corrcoef(z, w)[0, 1] == pytest.approx(0.64, abs=0.015)
    assert abs(_partial_corr(z, w, u)) < 0.02 and abs(_partial_corr(z, a, u)) < 0.02
    assert abs(_partial_corr(z, y - (1 + 0.5 * a) * u, a)) < 0.02  # Z acts on Y only through U
    # E[Y | A] = f(A) + 0.8A + 0.4A²: regression on [sin a, a, a²] recovers (1.5, 0.8, 0.65), not (1.5, 0, 0.25)
    coef = np.linalg.lstsq(np.column_stack([np.ones_like(a), np.sin(a), a, a**2]), y, rcond=None)[0]
    np.testing.assert_allclose(coef[1:], [1.5, 0.8, 0.65], atol=0.08)
    # the outcome bridge h(w, a) = f(a) + (1 + 0.5a)·w/0.8 solves E[Y − h(W, A) | A, Z] = 0 ...
    bridge = ds.miao_proxy_structural(a) + (1 + 0.5 * a) * w / 0.8
    assert _f_stat(y - bridge, np.column_stack([a, z, a * z, a**2, z**2, np.sin(a)])) < 5
    # ... and averages to the dose-response: E_W[h(W, a)] = f(a) since E[W] = 0
    assert abs(np.mean(w)) < 0.02
