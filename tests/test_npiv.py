"""The npiv baseline (moderndid's sieve estimator with the CCK 2024 dimension choice and bands)."""

import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("moderndid")

from deepcausal import NotFittedError, baselines  # noqa: E402
from deepcausal.baselines import NPIV, NotApplicableError  # noqa: E402
from deepcausal.baselines._npiv import smallest_canonical_correlation  # noqa: E402
from deepcausal.datasets import demand_proxy, linear_binary_iv, lowdim  # noqa: E402
from deepcausal.datasets._design import tabular_design  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def linear_iv():
    """lowdim with g(t) = 3t − 2 (confounded), scored on t ∈ [−2.5, 2.5], inside the training range."""
    base = lowdim(2000, g="linear", seed=0)
    t = np.linspace(-2.5, 2.5, 41)
    return tabular_design(name="linear_iv", kind="iv", roles=base.roles, train=base.train,
                          test_X=pd.DataFrame({"t": t}), test_truth=3 * t - 2, structural_function=None, info={})


@pytest.fixture(scope="module")
def fitted_linear(linear_iv):
    return baselines.get("npiv", random_state=0).fit(linear_iv)


@pytest.fixture(scope="module")
def schooling():
    d = linear_binary_iv(3000, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return d, baselines.get("npiv", random_state=0).fit(d)


def _check_bands(est, d):
    h = est.predict(d)
    bands = {}
    for band in ("pointwise", "uniform"):
        for alpha in (0.05, 0.2):
            lo, hi = est.predict_interval(d, alpha=alpha, band=band)
            assert lo.shape == hi.shape == (d.n_test,)
            assert np.all(lo <= h) and np.all(h <= hi)
            bands[band, alpha] = hi - lo
    for band in ("pointwise", "uniform"):
        assert np.all(bands[band, 0.05] >= bands[band, 0.2])  # smaller alpha, wider band
    assert np.all(bands["uniform", 0.05] >= bands["pointwise", 0.05])
    return h


def test_npiv_on_lowdim_linear(fitted_linear, linear_iv):
    h = _check_bands(fitted_linear, linear_iv)
    assert linear_iv.score(h) < 0.1  # the truth varies with sd 4.4 over the grid
    assert np.polyfit(linear_iv.test_X["t"], h, 1)[0] == pytest.approx(3.0, abs=0.1)
    lo, hi = fitted_linear.predict_interval(linear_iv, band="uniform")
    assert np.all((lo <= linear_iv.test_truth) & (linear_iv.test_truth <= hi))
    lo, hi = fitted_linear.predict_interval(linear_iv, band="pointwise")
    assert np.mean((lo <= linear_iv.test_truth) & (linear_iv.test_truth <= hi)) >= 0.8
    assert fitted_linear.basis_ == "additive" and fitted_linear.degree_ == 3
    sel = fitted_linear.selection_
    assert sel["j_x_segments"] in sel["grid_segments"] and sel["theta_star"] > 0


def test_npiv_on_linear_binary_iv(schooling):
    d, est = schooling
    h = _check_bands(est, d)
    naive = baselines.get("naive", random_state=0).fit(d).predict(d)
    assert d.score(h) < 0.03 < d.score(naive)
    lo, hi = est.predict_interval(d, band="uniform")
    assert np.all((lo <= d.test_truth) & (d.test_truth <= hi))
    # One binary instrument cannot carry a cubic sieve of schooling: the degree is lowered.
    assert est.degree_ < 3


def test_lepski_step_matches_moderndid(linear_iv):
    # On a tensor basis (where moderndid's npiv_j is correct) the selection is the same, draw for draw.
    from moderndid.didcont.npiv import npiv_j

    train = linear_iv.train[["y", "t", "z1"]]
    roles = {"outcome": ["y"], "treatment": ["t"], "instruments": ["z1"], "covariates": []}
    d = tabular_design(name="one", kind="iv", roles=roles, train=train.iloc[:1200], test_X=linear_iv.test_X,
                       test_truth=linear_iv.test_truth, structural_function=None, info={})
    est = NPIV(basis="tensor", boot_num=49, random_state=3).fit(d)
    sel = est.selection_
    segs = np.array(sel["grid_segments"])
    assert len(segs) >= 3
    k_segs = np.array([r["k_w_segments"] for r in est.candidates_ if r["j_x_segments"] in segs])
    a = d.array_kwargs()
    ref = npiv_j(a["Y"].ravel(), a["T"], a["Z"], j_x_segments_set=segs, k_w_segments_set=k_segs, basis="tensor",
                 boot_num=49, alpha=sel["alpha_hat"], seed=3)
    assert sel["theta_star"] == pytest.approx(ref["theta_star"], rel=1e-9)
    np.testing.assert_allclose(list(sel["z_sup"].values()), ref["z_sup"], rtol=1e-9)
    assert (sel["j_x_segments"], sel["j_tilde"], sel["j_hat"]) == (ref["j_x_seg"], ref["j_tilde"], ref["j_hat"])


def test_smallest_canonical_correlation():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(500, 4))
    assert smallest_canonical_correlation(B[:, :2], B) == pytest.approx(1.0)
    P = np.column_stack([B[:, 0], rng.normal(size=500)])
    assert smallest_canonical_correlation(P, B) < 0.2  # the fresh column is nearly orthogonal to span(B)
    # A duplicated (collinear) column is not an unidentified direction.
    assert smallest_canonical_correlation(np.column_stack([B[:, :2], B[:, :1]]), B) == pytest.approx(1.0)
    assert smallest_canonical_correlation(B, B[:, :3]) == 0.0  # more directions than instruments


def test_npiv_errors(fitted_linear, linear_iv):
    with pytest.raises(ValueError, match="alpha"):
        fitted_linear.predict_interval(linear_iv, alpha=1.5)
    with pytest.raises(ValueError, match="band"):
        fitted_linear.predict_interval(linear_iv, band="simultaneous")
    with pytest.raises(NotFittedError):
        NPIV().predict_interval(linear_iv)
    with pytest.raises(ValueError, match="boot_num"):
        NPIV(boot_num=0).fit(linear_iv)
    with pytest.raises(ValueError, match="basis"):
        NPIV(basis="glp").fit(linear_iv)
    with pytest.raises(NotApplicableError, match="tensor sieve.*additive"):
        NPIV(basis="tensor").fit(linear_binary_iv(500, seed=0))
    with pytest.raises(NotApplicableError, match="iv designs"):
        NPIV().fit(demand_proxy(100, seed=0))


def test_npiv_is_reproducible(linear_iv, fitted_linear):
    again = baselines.get("npiv", random_state=0).fit(linear_iv)
    np.testing.assert_array_equal(again.predict(linear_iv), fitted_linear.predict(linear_iv))
    np.testing.assert_array_equal(again.predict_interval(linear_iv, band="uniform")[1],
                                  fitted_linear.predict_interval(linear_iv, band="uniform")[1])
