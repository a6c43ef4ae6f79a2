"""The linear check: does a fitted curve reproduce what linear 2SLS identifies on the same data?"""

import warnings

import numpy as np
import pytest

from deepcausal import DFIV
from deepcausal._diagnostics import linear_iv_check, warn_if_shrunk
from deepcausal.datasets import linear_binary_iv
from deepcausal.exceptions import ShrinkageWarning


@pytest.fixture(scope="module")
def linear_data():
    rng = np.random.default_rng(3)
    n = 4000
    x = rng.normal(size=(n, 2))
    z = rng.normal(size=(n, 1))
    u = rng.normal(size=n)
    t = 0.8 * z[:, 0] + 0.3 * x[:, 0] + u
    y = 1.0 + 2.0 * t - x[:, 1] + (1 + np.abs(z[:, 0])) * (0.7 * u + rng.normal(size=n))  # heteroskedastic
    return y, t[:, None], z, x


def _tsls(y, t, z, x):
    """Textbook 2SLS with every regressor and its HC0 standard error of the treatment's slope."""
    n = len(y)
    D1 = np.c_[z, x, np.ones(n)]
    t_hat = D1 @ np.linalg.lstsq(D1, t, rcond=None)[0]
    Xh, Xo = np.c_[t_hat, x, np.ones(n)], np.c_[t, x, np.ones(n)]
    beta = np.linalg.lstsq(Xh, y, rcond=None)[0]
    e = y - Xo @ beta
    bread = np.linalg.pinv(Xh.T @ Xh)
    cov = bread @ ((Xh * e[:, None] ** 2).T @ Xh) @ bread
    return beta, np.sqrt(cov[0, 0])


def test_the_check_holds_2sls_and_its_robust_standard_error(linear_data):
    y, t, z, x = linear_data
    beta, se = _tsls(y, t, z, x)
    check = linear_iv_check(y, t, z, x, y, names=["t"])  # h = Y: the curve's residual is 0
    assert check.loc["t", "tsls"] == pytest.approx(beta[0], rel=1e-8)
    assert check.loc["t", "tsls_se"] == pytest.approx(se, rel=1e-6)
    assert check.loc["t", "curve"] == pytest.approx(beta[0], rel=1e-8)


def test_a_curve_with_2sls_slope_passes_and_a_halved_slope_warns_by_how_much(linear_data):
    y, t, z, x = linear_data
    beta, _ = _tsls(y, t, z, x)
    line = np.c_[t, x, np.ones(len(y))] @ beta
    good = linear_iv_check(y, t, z, x, line, names=["t"])
    assert abs(good.loc["t", "difference"]) < 1e-8 and good.loc["t", "p_value"] > 0.99
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_shrunk(good)  # nothing to say
    shrunk = line - 0.5 * beta[0] * t[:, 0]
    check = linear_iv_check(y, t, z, x, shrunk, names=["t"])
    assert check.loc["t", "shrinkage"] == pytest.approx(0.5, abs=1e-8)
    assert check.loc["t", "p_value"] < 1e-6
    with pytest.warns(ShrinkageWarning, match=r"shrunk towards a flat curve by 50%.*'t'"):
        warn_if_shrunk(check)
    # a significant but immaterial miss (2% of the slope, on many rows) is not worth a warning
    slight = check.copy()
    slight.loc["t", ["difference", "p_value"]] = [-0.02 * beta[0], 1e-4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_shrunk(slight)


def test_instruments_without_a_direction_of_their_own_give_no_check(linear_data):
    y, t, _, x = linear_data
    assert linear_iv_check(y, t, x[:, :1] * 2.0, x, y) is None  # the "instrument" is a covariate


def test_a_fit_reports_its_check_beside_its_average_marginal_effect():
    d = linear_binary_iv(2000, seed=1)
    est = DFIV(n_epochs=3, n_estimators=2, n_bootstrap=20, random_state=0, n_jobs=1, verbose=False,
               complexity="trained").fit(d.train, **d.fit_kwargs())
    check = est.linear_check_
    assert list(check.index) == ["educ"]
    assert check.loc["educ", "ame"] == pytest.approx(est.summary_estimates_.loc["AME educ", "estimate"])
    beta, _ = _tsls(*(d.train[c].to_numpy() for c in ("lwage",)), d.train[["educ"]].to_numpy(),
                    d.train[["nearc4"]].to_numpy(), d.train[["exper", "south", "parent_educ"]].to_numpy())
    assert check.loc["educ", "tsls"] == pytest.approx(beta[0], rel=1e-6)
    assert "Linear check" in str(est.summary)
