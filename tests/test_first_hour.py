"""The first hour of a user (issue 26): a results table, linearmodels' habits, identification guidance,
progress while fitting, short docstrings, and the smaller frictions of a first session."""

import re

import numpy as np
import pandas as pd
import pytest

from deepcausal import DFIV, DFPV
from deepcausal.datasets import demand, demand_proxy
from deepcausal.results import FitResults

# Warnings these tests provoke on purpose (unidentified designs, weakly identified designs, small designs,
# batches larger than a half): silenced here so that a new one stands out.
pytestmark = [
    pytest.mark.filterwarnings("ignore:the data do not identify the curve:deepcausal.exceptions.IdentificationWarning"),
    pytest.mark.filterwarnings("ignore:the data identify the curve weakly:deepcausal.exceptions.IdentificationWarning"),
    pytest.mark.filterwarnings("ignore:a stage half has only:UserWarning"),
    pytest.mark.filterwarnings("ignore:batch_size=.* exceeds:UserWarning"),
]

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


# ---- identification guidance -----------------------------------------------------------------------
def _frame(strength, seed=0, n=600, constant=False):
    rng = np.random.default_rng(seed)
    z = np.full(n, 3.0) if constant else rng.normal(size=n)
    e = rng.normal(size=n)
    t = strength * z + e + rng.normal(size=n)
    return pd.DataFrame({"y": np.sin(t) + e, "t": t, "z": z})


def test_constant_instruments_stop_the_fit_and_unidentified_curves_give_no_band():
    from deepcausal._diagnostics import IdentificationWarning, WeakInstrumentWarning

    with pytest.raises(ValueError, match="every instrument column is constant"):
        DFIV(**QUICK).fit(_frame(0.0, constant=True), outcome="y", treatment="t", instruments="z")
    # one instrument for two treatment columns: not identified, no band
    f = _frame(1.0)
    f["t2"] = f["t"] + np.random.default_rng(1).normal(size=len(f))
    with pytest.warns(WeakInstrumentWarning):
        est = DFIV(**QUICK).fit(f, outcome="y", treatment=["t", "t2"], instruments="z")
    assert est.identification_["status"] == "not identified"
    with pytest.warns(IdentificationWarning, match="do not identify the curve.*no band is reported"):
        lo, hi = est.predict_interval(np.array([[0.5, 0.5]]))
    assert np.isnan(lo).all() and np.isnan(hi).all()
    assert est.summary.estimates["lower"].isna().all()


def test_a_weak_instrument_makes_the_curve_and_its_bands_warn_in_words():
    from deepcausal._diagnostics import IdentificationWarning, WeakInstrumentWarning

    with pytest.warns(WeakInstrumentWarning):
        est = DFIV(**QUICK).fit(_frame(0.02, seed=1), outcome="y", treatment="t", instruments="z")
    assert est.identification_["status"] == "weak"
    assert any("linear first-stage F of 't'" in r for r in est.identification_["reasons"])
    with pytest.warns(IdentificationWarning, match="weakly.*pulled towards a flat curve.*linear IV"):
        est.dose_response([0.0, 1.0])
    with pytest.warns(IdentificationWarning):
        lo, hi = est.marginal_ate_interval(np.array([[0.0], [1.0]]))
    assert np.isfinite(lo) and np.isfinite(hi)


def test_a_strong_instrument_reports_no_identification_problem():
    import warnings

    est = DFIV(**{**QUICK, "n_epochs": 20}).fit(_frame(2.0, seed=2, n=2000), outcome="y", treatment="t",
                                                   instruments="z")
    assert est.identification_ == {"status": "identified", "reasons": []}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.dose_response([0.0, 1.0], alpha=0.05)


# ---- progress and logging --------------------------------------------------------------------------
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_fit_shows_one_bar_over_every_members_steps(iv, capfd, caplog, n_jobs):
    import logging

    with caplog.at_level(logging.INFO, logger="deepcausal"):
        est = DFIV(**{**QUICK, "verbose": True, "n_jobs": n_jobs}).fit(iv.train, **iv.fit_kwargs())
    err = capfd.readouterr().err
    total = 2 * est.settings_["max_steps"]
    assert re.search(rf"DFIV: 100%.*{total}/{total}", err), err[-500:]  # members' steps reached the bar
    assert "held_out=" in err
    assert "Done" not in err  # not joblib's own lines
    assert sum("DFIV member" in r.getMessage() for r in caplog.records) == 2


def test_progress_is_automatic_for_long_fits_and_silent_for_short_ones(iv, capfd):
    from deepcausal._progress import show_progress

    assert show_progress("auto", 5 * 1000) and not show_progress("auto", 2 * 6) and not show_progress(False, 10**6)
    DFIV(**{**QUICK, "verbose": "auto"}).fit(iv.train, **iv.fit_kwargs())
    assert "step/s" not in capfd.readouterr().err
    with pytest.raises(ValueError, match="verbose"):
        DFIV(**{**QUICK, "verbose": "yes"}).fit(iv.train, **iv.fit_kwargs())


# ---- docstrings for users --------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [DFIV, DFPV])
def test_help_starts_with_a_short_class_docstring_without_routing_boilerplate(cls):
    import pydoc

    text = pydoc.render_doc(cls, renderer=pydoc.plaintext).splitlines()
    methods = next(i for i, line in enumerate(text) if "Method resolution order" in line)
    assert methods < 150
    head = "\n".join(text[:methods])
    for part in ("Parameters", "Attributes", "References", "Examples", "E["):
        assert part in head
    assert not any(name.endswith("_request") and not name.startswith("_") for name in dir(cls))
    assert "Kalman" not in head and "RESULTS.md" not in head  # research notes live in the API reference


# ---- smaller frictions -----------------------------------------------------------------------------
def test_a_dose_response_plot_names_the_outcome_and_the_confidence_level(iv_fit, iv):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepcausal import plot_dose_response

    curve = iv_fit.dose_response([14.0, 18.0, 22.0], X=iv.train[["time", "customer_type"]].iloc[:50], alpha=0.1,
                                 band="uniform")
    assert curve.attrs == {"outcome": "sales", "confidence": pytest.approx(0.9), "band": "uniform"}
    fig, ax = plt.subplots()
    plot_dose_response(curve, ax=ax, label="DFIV")
    assert ax.get_ylabel() == "sales: dose-response"
    assert "DFIV: 90% uniform band" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)


@pytest.mark.parametrize("n, hint", [(20, "a fit needs at least 60 rows"), (40, "set validation_fraction=0")])
def test_too_few_rows_get_a_fix_that_works(n, hint):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"z": rng.normal(size=n)})
    df["t"] = df["z"] + rng.normal(size=n)
    df["y"] = df["t"] + rng.normal(size=n)
    with pytest.raises(ValueError, match=hint):
        DFIV(**QUICK).fit(df, outcome="y", treatment="t", instruments="z")
    if n == 40:  # the suggested fix fits
        DFIV(**{**QUICK, "validation_fraction": 0.0, "early_stopping": False}).fit(
            df, outcome="y", treatment="t", instruments="z")


def test_a_fit_raises_no_deprecation_warning_from_torch():
    """In a fresh process (torch imports what raised them once per process): torch.func.jvp's first use
    imported torch's jvp decompositions, raising 18 DeprecationWarnings of torch.jit.script."""
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "from deepcausal import DFIV\nfrom deepcausal.datasets import demand\n"
            "d = demand(n=400, seed=0)\n"
            "est = DFIV(n_epochs=2, n_estimators=2, n_jobs=1, n_bootstrap=10, random_state=0).fit(d.train, **d.fit_kwargs())\n"
            "est.marginal_ate_interval(d.train[['price']], d.train[['time', 'customer_type']])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
