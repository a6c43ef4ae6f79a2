"""The complexity family and its rules (issue 28): from the simplest curve the data support to the trained one."""

import numpy as np
import pandas as pd
import pytest
import torch

from deepcausal import DFIV, DFPV
from deepcausal._complexity import GAMMAS, penalties, resolve_rule
from deepcausal.exceptions import NoDrawsError
from deepcausal.datasets import demand_proxy, linear_binary_iv

QUICK = dict(n_epochs=3, batch_size=128, n_bootstrap=40, random_state=0, n_jobs=1, n_estimators=2, verbose=False)


def test_penalties_single_out_the_slope_interactions_and_the_nonlinear_features():
    # ψ = [t, m1, m2] (d_lin 1, d_psi 3), η = [x, e] (d_cov 2): u is (4 × 3), treatment feature slowest
    pen = penalties(12, 3, 1, 2).reshape(len(GAMMAS), 4, 3)
    simplest, slopes, trained = pen[0], pen[1], pen[-1]
    assert (simplest[0, :2] > 0).all() and simplest[0, 2] == 0  # t × covariate features off, t × 1 free
    assert (simplest[1:3] > 0).all() and (simplest[3] == 0).all()  # nonlinear rows off, the intercept row free
    assert (slopes[0] == 0).all() and (slopes[1:3] > 0).all()
    assert (trained == 0).all()


@pytest.fixture(scope="module")
def lbi():
    return linear_binary_iv(3000, seed=7)


def _line_in_standard_units(member, frame, kw):
    """Full-sample 2SLS of the standardized outcome on the raw treatment, with the member's learned covariate
    features η(x) as controls and the raw instrument: (θ, η at the training rows), computed here."""
    sc = member.scalers_
    arr = {k: frame[kw[role]].to_numpy(dtype=float) for k, role in
           (("Y", "outcome"), ("T", "treatment"), ("Z", "instruments"), ("X", "covariates"))}
    s = {k: sc[k].transform(v) for k, v in arr.items()}
    with torch.no_grad():
        eta = member.nets_["covariate"](torch.as_tensor(s["X"], dtype=torch.float32)).double().numpy()
    D1 = np.c_[s["Z"], eta, np.ones(len(eta))]
    t_hat = D1 @ np.linalg.lstsq(D1, s["T"], rcond=None)[0]
    return np.linalg.lstsq(np.c_[t_hat, eta, np.ones(len(eta))], s["Y"][:, 0], rcond=None)[0]


def test_the_simplest_candidate_is_full_sample_2sls_with_learned_controls(lbi):
    d = lbi
    kw = d.fit_kwargs()
    est = DFIV(**{**QUICK, "n_estimators": 1, "complexity": "lepski"}).fit(d.train, **kw)
    assert est.complexity_["candidates"][0] == "linear 2SLS, learned controls"
    # the linear candidate's prediction at test rows, against 2SLS computed here
    est.heads_.u = est.candidates_["heads"][0].clone()
    pred = est.predict(d.test_X)
    theta = _line_in_standard_units(est, d.train, kw)
    sc = est.scalers_
    test = d.test_X
    ts = sc["T"].transform(test[kw["treatment"]].to_numpy(dtype=float))
    with torch.no_grad():
        eta = est.nets_["covariate"](torch.as_tensor(sc["X"].transform(test[kw["covariates"]].to_numpy(dtype=float)),
                                                     dtype=torch.float32)).double().numpy()
    expected = (np.c_[ts, eta, np.ones(len(test))] @ theta) * sc["Y"].scale[0] + sc["Y"].mean[0]
    np.testing.assert_allclose(pred, expected, rtol=1e-4)  # the fit's data tensors are float32


def test_lepski_falls_back_to_the_line_that_one_binary_instrument_identifies(lbi):
    d = lbi
    kw = d.fit_kwargs()
    T, X = d.train[kw["treatment"]], d.train[kw["covariates"]]
    trained = DFIV(**{**QUICK, "complexity": "trained"}).fit(d.train, **kw)
    est = DFIV(**{**QUICK, "complexity": "lepski"}).fit(d.train, **kw)
    assert est.complexity_["chosen"] == 0 and est.complexity_["label"].startswith("linear 2SLS")
    lo, hi = est.marginal_ate_interval(T, X)
    assert lo <= d.info["true_slope"] <= hi
    assert abs(est.marginal_ate(T, X) - d.info["true_slope"]) < abs(trained.marginal_ate(T, X) - d.info["true_slope"])
    assert "linear 2SLS" in str(est.summary)


def test_lepski_keeps_a_curve_the_candidates_disagree_on():
    """A strongly instrumented nonlinear curve: the line is far outside the bands of its differences."""
    rng = np.random.default_rng(0)
    n = 3000
    z = rng.normal(size=n)
    e = rng.normal(size=n)
    t = 1.5 * z + 0.5 * e
    df = pd.DataFrame({"y": 3 * np.sin(2 * t) + e, "t": t, "z": z})
    est = DFIV(**{**QUICK, "n_epochs": 40, "complexity": "lepski"}).fit(df, outcome="y", treatment="t", instruments="z")
    assert est.complexity_["chosen"] > 0
    assert est.complexity_["criterion"][0] > 1.0  # the line was rejected


@pytest.mark.parametrize("rule", ["lepski", "discrepancy"])
def test_dfpv_rules_run_over_its_ridge_path(rule):
    d = demand_proxy(n=600, seed=3)
    est = DFPV(**{**QUICK, "complexity": rule}).fit(d.train, **d.fit_kwargs())
    assert est.complexity_["rule"] == rule and 0 <= est.complexity_["chosen"] < len(est.complexity_["candidates"])
    assert est.complexity_["candidates"][0].startswith("γ treatment features")  # no raw treatment: a ridge path
    for m in est.estimators_:  # every member predicts with the chosen candidate's head and draws
        torch.testing.assert_close(m.heads_.u, m.candidates_["heads"][est.complexity_["chosen"]])
        torch.testing.assert_close(m.head_draws_, m.candidates_["draws"][est.complexity_["chosen"]])


def test_complexity_rules_need_bootstrap_draws_and_a_known_rule(lbi):
    with pytest.raises(ValueError, match="n_bootstrap"):
        DFIV(**{**QUICK, "complexity": "lepski", "n_bootstrap": 0}).fit(lbi.train, **lbi.fit_kwargs())
    with pytest.raises(ValueError, match="complexity must be one of"):
        DFIV(**{**QUICK, "complexity": "simplest"}).fit(lbi.train, **lbi.fit_kwargs())


def test_auto_reads_how_many_values_the_instruments_take():
    rng = np.random.default_rng(0)
    n = 500
    t1, t2 = rng.normal(size=(n, 1)), rng.normal(size=(n, 2))
    binary = rng.integers(0, 2, size=(n, 1)).astype(float)
    three = rng.integers(0, 3, size=(n, 1)).astype(float)
    two_binary = rng.integers(0, 2, size=(n, 2)).astype(float)  # four distinct rows
    assert resolve_rule("auto", {"T": t1, "Z": binary})[0] == "linear"
    assert "2 distinct values" in resolve_rule("auto", {"T": t1, "Z": binary})[1]
    assert resolve_rule("auto", {"T": t1, "Z": three})[0] == "lepski"  # more than a line may be identified
    assert resolve_rule("auto", {"T": t2, "Z": three})[0] == "linear"  # 3 values, 2 slopes: still a plane
    assert resolve_rule("auto", {"T": t2, "Z": two_binary})[0] == "lepski"
    assert resolve_rule("auto", {"T": t1, "Z": rng.normal(size=(n, 1))})[0] == "held_out"
    assert resolve_rule("auto", {"T": t1, "W": t1}) == ("trained", None)  # DFPV: no instruments
    assert resolve_rule("lepski", {"T": t1, "Z": binary}) == ("lepski", None)  # a named rule is kept


def test_the_default_reports_2sls_for_one_binary_instrument(lbi):
    d = lbi
    kw = d.fit_kwargs()
    T, X = d.train[kw["treatment"]], d.train[kw["covariates"]]
    est = DFIV(**QUICK).fit(d.train, **kw)
    assert est.complexity_["label"] == "linear 2SLS, learned controls"
    assert "2 distinct values" in est.complexity_["reason"]
    # the line's slope is the members' mean 2SLS slope with their own learned controls, in original units
    slopes = [_line_in_standard_units(m, d.train, kw)[0] for m in est.estimators_]
    slope = np.mean(slopes) * est.scalers_["Y"].scale[0] / est.scalers_["T"].scale[0]
    assert est.marginal_ate(T, X) == pytest.approx(slope, rel=1e-4)
    assert "the simplest curve: the instruments take 2 distinct values" in str(est.summary)
    # without bootstrap draws the members' lines hardly differ: no band from their spread
    quick = DFIV(**{**QUICK, "n_bootstrap": 0}).fit(d.train, **kw)
    assert quick.marginal_ate(T, X) == pytest.approx(slope, rel=1e-4)
    with pytest.raises(NoDrawsError, match="n_bootstrap >= 2"):
        quick.marginal_ate_interval(T, X)
    assert np.isnan(quick.summary_estimates_["lower"]).all()
