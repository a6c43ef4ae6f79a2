"""Baselines (deepcausal.baselines): each recovers a known structural function on an easy case."""

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from deepcausal import NotFittedError, baselines
from deepcausal.baselines import NotApplicableError
from deepcausal.datasets import demand, demand_proxy, lowdim
from deepcausal.datasets._design import tabular_design


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def linear_iv():
    """lowdim with g(t) = 3t − 2 (confounded: t = z₁ + e + γ), scored on t ∈ [−2.5, 2.5]."""
    base = lowdim(2000, g="linear", seed=0)
    t = np.linspace(-2.5, 2.5, 41)
    return tabular_design(name="linear_iv", kind="iv", roles=base.roles, train=base.train,
                          test_X=pd.DataFrame({"t": t}), test_truth=3 * t - 2, structural_function=None, info={})


@pytest.fixture(scope="module")
def sin_iv():
    return lowdim(2000, g="sin", seed=0)


@pytest.fixture(scope="module")
def easy_proxy():
    """Proxies equal to the hidden confounder U: the bridge is E[Y | A, U], and f(a) = 2a."""
    rng = np.random.default_rng(0)
    n = 1000
    u = rng.normal(size=n)
    a = u + rng.normal(size=n)
    y = 2 * a + 3 * np.sin(2 * u) + 0.3 * rng.normal(size=n)
    ta = np.linspace(-2, 2, 20)
    return tabular_design(
        name="proxy_easy", kind="proxy",
        roles={"outcome": ["y"], "treatment": ["a"], "treatment_proxy": ["z"], "outcome_proxy": ["w"],
               "covariates": []},
        train=pd.DataFrame({"y": y, "a": a, "z": u, "w": u}), test_X=pd.DataFrame({"a": ta}),
        test_truth=2 * ta, structural_function=None, info={},
    )


def _mse(name, design, **params):
    est = baselines.get(name, random_state=0, **params).fit(design)
    pred = est.predict(design)
    assert pred.shape == (design.n_test,)
    return design.score(pred)


def test_naive_is_biased_on_the_linear_case(linear_iv):
    # The bar the IV methods below clear; the naive regression must not (confounding bias).
    assert _mse("naive", linear_iv) > 0.05


def test_sieve2sls_recovers_linear(linear_iv):
    assert _mse("sieve2sls", linear_iv) < 0.05


def test_sieve2sls_chooses_basis_on_training_data(linear_iv):
    est = baselines.get("sieve2sls", random_state=0).fit(linear_iv)
    assert est.n_knots_ in est.validation_ and est.n_knots_ == min(est.validation_, key=est.validation_.get)


def test_kiv_beats_naive_on_lowdim_sin(sin_iv):
    kiv, naive = _mse("kiv", sin_iv), _mse("naive", sin_iv)
    assert kiv < 0.15 < 0.25 < naive


def test_kiv_subsamples_with_a_warning(sin_iv):
    with pytest.warns(UserWarning, match="subsample of 300"):
        baselines.get("kiv", random_state=0, max_rows=300).fit(sin_iv)


def test_deepiv_recovers_linear(linear_iv):
    assert _mse("deepiv", linear_iv, epochs1=10, epochs2=10) < 0.2


@pytest.mark.parametrize("name", ["kpv", "pmmr"])
def test_proxy_methods_recover_truth_when_proxies_are_the_confounder(easy_proxy, name):
    assert _mse(name, easy_proxy) < 0.1
    assert _mse("naive_proxy", easy_proxy) > 0.5  # the bar is meaningful


def test_fit_never_reads_the_test_truth(sin_iv):
    blind = dataclasses.replace(sin_iv, test_truth=np.full(sin_iv.n_test, np.nan))
    for name in ("sieve2sls", "naive"):
        a = baselines.get(name, random_state=0).fit(sin_iv).predict(sin_iv)
        b = baselines.get(name, random_state=0).fit(blind).predict(blind)
        np.testing.assert_array_equal(a, b)


def test_registry_and_errors():
    assert {"naive", "sieve2sls", "kiv", "deepiv", "dfiv"} <= set(baselines.available("iv"))
    assert set(baselines.available("proxy")) >= {"kpv", "pmmr", "naive_proxy", "dfpv"}
    assert not set(baselines.available("proxy")) & set(baselines.available("iv"))
    with pytest.raises(ValueError, match="unknown method 'nope'.*known methods"):
        baselines.get("nope")
    with pytest.raises(NotApplicableError, match="applies to iv designs.*proxy design"):
        baselines.get("kiv").fit(demand_proxy(100, seed=0))
    with pytest.raises(NotFittedError):
        baselines.get("naive").predict(lowdim(50))


def test_baselines_are_scikit_learn_estimators():
    from sklearn.base import BaseEstimator, clone

    naive = baselines.get("sieve2sls", random_state=3, alpha=1e-4)
    assert isinstance(naive, BaseEstimator)
    assert "alpha=0.0001" in repr(naive)
    twin = clone(naive)
    assert twin.get_params() == naive.get_params() and twin is not naive
    dfiv = baselines.get("dfiv", random_state=1, n_epochs=3)
    assert isinstance(dfiv, BaseEstimator)
    assert dfiv.get_params() == {"random_state": 1, "n_epochs": 3}
    twin = clone(dfiv).set_params(batch_size=64)
    assert twin.get_params() == {"random_state": 1, "n_epochs": 3, "batch_size": 64}
    assert dfiv.get_params() == {"random_state": 1, "n_epochs": 3}  # the clone does not share its dict
    assert twin._estimator().batch_size == 64 and twin._estimator().n_epochs == 3
    with pytest.raises(ValueError, match="invalid parameter 'n_epoch' for DFIVMethod"):
        dfiv.set_params(n_epoch=2)


def test_image_design_is_refused_by_tabular_methods_only():
    from deepcausal.datasets import dsprites

    d = dsprites(20, seed=0)
    with pytest.raises(NotApplicableError, match="tabular"):
        baselines.get("sieve2sls").fit(d)
    available = baselines.available(design=d)
    assert "sieve2sls" not in available and "npiv" not in available
    assert {"dfiv", "naive", "kiv", "deepiv"} <= set(available)  # the peers of the image designs


def test_npiv_without_moderndid_names_the_extra(monkeypatch, linear_iv):
    import sys

    from deepcausal.baselines import _npiv

    monkeypatch.setitem(sys.modules, "moderndid", None)  # as if not installed: find_spec refuses it
    assert "npiv" not in baselines.available("iv")
    with pytest.raises(ImportError, match=r"pip install \"?deepcausal\[npiv\]"):
        baselines.get("npiv")
    monkeypatch.delitem(sys.modules, "moderndid")
    # Built directly, the fit says the same thing when the import fails.
    monkeypatch.setitem(sys.modules, "moderndid.didcont.npiv", None)
    with pytest.raises(ImportError, match=r"pip install deepcausal\[npiv\]"):
        _npiv.NPIV().fit(linear_iv)


# ---- econml adapters (skipped without econml) -----------------------------------------------
def test_econml_adapters_recover_linear(linear_iv):
    pytest.importorskip("econml")
    assert _mse("orthoiv", linear_iv) < 0.05
    assert _mse("sieve_tsls", linear_iv) < 0.05
    assert _mse("dmliv", linear_iv) < 0.1


@pytest.mark.parametrize("name", ["dmliv", "orthoiv", "nonparam_dmliv", "driv", "forest_driv", "sieve_tsls"])
def test_econml_adapters_on_demand(name):
    pytest.importorskip("econml")
    d = demand(1000, seed=0)
    mse = _mse(name, d)
    assert np.isfinite(mse) and mse < 2 * d.test_truth.var()


def test_econml_roles_checked():
    pytest.importorskip("econml")
    d = lowdim(100, seed=0)  # two instruments, no covariates
    assert "driv" not in baselines.available(design=d)
    assert "nonparam_dmliv" not in baselines.available(design=d)
    with pytest.raises(NotApplicableError, match="single instrument"):
        baselines.get("driv").fit(d)


# ---- linear 2SLS (issue 35) -----------------------------------------------------------------------
def test_tsls_coefficients_match_linearmodels():
    linearmodels = pytest.importorskip("linearmodels")
    from deepcausal.datasets import linear_many_covariates

    d = linear_many_covariates(2000, seed=0)
    est = baselines.get("tsls").fit(d)
    f = d.train
    cov = d.roles["covariates"]
    ref = linearmodels.iv.IV2SLS(f["y"], f[cov].assign(const=1.0), f[["t"]], f[["z"]]).fit().params
    np.testing.assert_allclose(est.coef_, [ref["t"]], rtol=1e-8)
    np.testing.assert_allclose(est.covariate_coef_, ref[cov].to_numpy(), rtol=1e-8, atol=1e-10)
    assert est.intercept_ == pytest.approx(ref["const"], rel=1e-8)
    pred = est.predict(d)
    np.testing.assert_allclose(pred, d.test_X["t"] * ref["t"] + d.test_X[cov] @ ref[cov] + ref["const"], rtol=1e-8)
    assert d.score(pred) < 0.05


def test_tsls_without_covariates_and_refusing_too_few_instruments(linear_iv):
    assert _mse("tsls", linear_iv) < 0.05
    d = demand(300, seed=0)
    two = tabular_design(name="two_t", kind="iv",
                         roles={**d.roles, "treatment": ["price", "time"], "covariates": ["customer_type"]},
                         train=d.train, test_X=d.test_X, test_truth=d.test_truth, structural_function=None, info={})
    with pytest.raises(NotApplicableError, match="at least as many instruments"):
        baselines.get("tsls").fit(two)
