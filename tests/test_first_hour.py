"""The first hour of a user (issue 26): a results table, linearmodels' habits, identification guidance,
progress while fitting, short docstrings, and the smaller frictions of a first session."""

import re

import numpy as np
import pandas as pd
import pytest

from deepcausal import DFIV, DFPV
from deepcausal.datasets import demand, demand_proxy
from deepcausal.results import FitResults

QUICK = dict(n_epochs=3, batch_size=128, n_bootstrap=30, random_state=0, n_jobs=1, n_estimators=2, verbose=False)


@pytest.fixture(scope="module")
def iv():
    return demand(n=800, rho=0.5, seed=11)


@pytest.fixture(scope="module")
def iv_fit(iv):
    return DFIV(**QUICK).fit(iv.train, **iv.fit_kwargs())


# ---- the results table -----------------------------------------------------------------------------
def test_summary_is_a_results_table_whose_numbers_are_the_methods(iv, iv_fit):
    est = iv_fit
    res = est.summary
    assert isinstance(res, FitResults) and est.summary() is not None  # linearmodels' and econml's habits
    table = res.estimates
    assert list(table.columns) == ["estimate", "std_error", "lower", "upper", "p_value"]
    X, T = iv.train[["time", "customer_type"]], iv.train[["price"]]
    ame = table.loc["AME price"]
    assert ame["estimate"] == pytest.approx(est.marginal_ate(T, X), rel=1e-9)
    assert (ame["lower"], ame["upper"]) == pytest.approx(est.marginal_ate_interval(T, X), rel=1e-9)
    quartiles = np.quantile(iv.train["price"], [0.25, 0.5, 0.75])
    curve = est.dose_response(quartiles, X, alpha=0.05)
    rows = [i for i in table.index if i.startswith("h(price")]
    np.testing.assert_allclose(table.loc[rows, "estimate"], curve["estimate"], rtol=1e-9)
    np.testing.assert_allclose(table.loc[rows, "std_error"], curve["std_error"], rtol=1e-9)
    np.testing.assert_allclose(table.loc[rows, "lower"], curve["lower"], rtol=1e-9)
    assert ((table["p_value"] >= 0) & (table["p_value"] <= 1)).all()
    text = str(res)
    for part in ("Estimates (95% intervals)", "std. error", "p-value", "First stage", "F (robust)",
                 "held-out stage-1 R²"):
        assert part in text
    pd.testing.assert_frame_equal(res.to_frame(), table)
    assert "\\begin{tabular}" in res.as_latex() and "AME price" in res.as_latex()
    assert "<table" in res._repr_html_()
    with pytest.raises(AttributeError, match="read-only"):
        res.title = "x"


def test_p_value_is_the_t_test_of_the_estimate_on_the_bands_degrees_of_freedom(iv_fit):
    from scipy import stats

    table = iv_fit.summary.estimates
    row = table.loc["AME price"]
    se, est = row["std_error"], row["estimate"]
    # the interval's half-width over the standard error is the t quantile; its dof gives the p-value
    q = (row["upper"] - est) / se
    dof = next(v for v in np.logspace(-0.5, 7, 20000) if stats.t.ppf(0.975, v) <= q)
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(est / se), dof), rel=1e-2)


def test_summary_settings_are_those_that_differ_from_the_defaults(iv, iv_fit):
    s = iv_fit.summary
    assert set(s.settings.index) == {"n_epochs", "batch_size", "n_bootstrap", "random_state", "n_jobs",
                                     "n_estimators", "verbose"}
    assert "lam1" in s.all_settings.index and "lam1" not in s.settings.index


def test_dfpv_summary_has_estimates_and_no_first_stage_table():
    d = demand_proxy(n=600, seed=3)
    est = DFPV(**QUICK).fit(d.train, **d.fit_kwargs())
    s = est.summary
    assert s.first_stage is None and "AME price" in s.estimates.index
    assert s.estimates.loc["AME price", "estimate"] == pytest.approx(est.marginal_ate(d.train[["price"]]), rel=1e-9)
    assert "outcome-proxy features" in str(s)


def test_a_negative_held_out_stage1_r2_comes_with_a_reading():
    from deepcausal.results import stage1_reading

    line = stage1_reading(-0.72, 21, "iv")
    assert "no better than their mean" in line and "21 held-out rows" in line and "linear F" in line


# ---- linearmodels' habits --------------------------------------------------------------------------
def test_from_formula_returns_an_unfitted_estimator_that_fit_fits(iv):
    est = DFIV.from_formula("sales ~ time + customer_type + [price ~ cost]", iv.train, **QUICK)
    assert not hasattr(est, "nets_")
    fitted = est.fit()
    assert fitted is est and est.predict(iv.test_X.iloc[:5]).shape == (5,)
    by_frame = DFIV(**QUICK).fit(iv.train, **iv.fit_kwargs())
    np.testing.assert_array_equal(est.predict(iv.test_X), by_frame.predict(iv.test_X))
    # fitting on other data the usual way still works, and ignores the formula
    other = demand(n=600, rho=0.5, seed=12)
    est.fit(other.train, **other.fit_kwargs())
    assert est.n_train_ == 600 and not hasattr(est, "formula_")


def test_a_formula_lists_the_instruments_in_the_formulas_order():
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame({"z_a": rng.normal(size=n), "z_b": rng.normal(size=n)})
    df["t"] = df["z_a"] + df["z_b"] + rng.normal(size=n)
    df["y"] = df["t"] + rng.normal(size=n)
    est = DFIV.from_formula("y ~ [t ~ z_b + z_a]", df, **QUICK).fit()
    assert est.columns_["Z"] == ["z_b", "z_a"]
    assert est.summary.model.loc["instruments", "columns"] == "z_b, z_a"


def test_fit_without_data_or_with_a_positional_instrument_says_what_to_do(iv):
    with pytest.raises(TypeError, match="from_formula"):
        DFIV(**QUICK).fit()
    with pytest.raises(TypeError, match="Z, the instruments, is keyword-only"):
        DFIV(**QUICK).fit(iv.train["sales"], iv.train["price"], None, iv.train["cost"])
    d = demand_proxy(n=300, seed=0)
    with pytest.raises(TypeError, match="proxies are keyword-only"):
        DFPV(**QUICK).fit(d.train["sales"], d.train["price"], d.train[["cost1", "cost2"]])
