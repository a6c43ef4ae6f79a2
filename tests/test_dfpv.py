"""DFPV: beats the confounded regression, the estimator contract, both input styles, the bridge."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from deepcausal import NotFittedError
from deepcausal.datasets import demand_proxy
from deepcausal.proxy import DFPV

FAST = dict(n_estimators=1, n_epochs=3, batch_size=128, random_state=0)


@pytest.fixture(scope="module")
def small():
    return demand_proxy(n=600, seed=3)


@pytest.fixture(scope="module")
def fitted(small):
    return DFPV(**FAST).fit(small.train, **small.fit_kwargs())


def _stage2_rows(n, seed, split_ratio=0.5):
    """The stage-2 rows of a fit with ``random_state=seed`` (the base class's seeded split)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return perm[int(round(split_ratio * n)):]


@pytest.mark.parametrize("settings", [dict(), dict(mode="ridge")], ids=["proximal", "ridge"])
def test_dose_response_beats_confounded_regression(settings):
    """A short fit must remove confounding bias that a flexible regression of y on a keeps."""
    d = demand_proxy(n=2000, seed=7)
    a, y = d.train["price"].to_numpy(), d.train["sales"].to_numpy()
    naive = d.score(np.polyval(np.polyfit(a, y, 3), d.test_X["price"].to_numpy()))
    est = DFPV(n_estimators=1, n_epochs=30, random_state=0, **settings).fit(d.train, **d.fit_kwargs())
    mse = d.score(est.predict(d.test_X))
    assert mse < 0.5 * naive, (mse, naive)


def test_dataframe_and_array_modes_identical(small, fitted):
    kw = small.array_kwargs()
    est = DFPV(**FAST).fit(kw["Y"], kw["A"], Z=kw["Z"], W=kw["W"])
    price = small.test_X["price"].to_numpy()
    np.testing.assert_array_equal(est.predict(price), fitted.predict(small.test_X))
    np.testing.assert_array_equal(est.predict(price[:, None]), fitted.predict(price))


def test_fit_twice_determinism_and_seed_matters(small):
    est = DFPV(**FAST)
    a = est.fit(small.train, **small.fit_kwargs()).predict(small.test_X)
    b = est.fit(small.train, **small.fit_kwargs()).predict(small.test_X)
    c = DFPV(**FAST).fit(small.train, **small.fit_kwargs()).predict(small.test_X)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    other = DFPV(**{**FAST, "random_state": 1}).fit(small.train, **small.fit_kwargs()).predict(small.test_X)
    assert not np.allclose(a, other)


def test_clone_and_refit_identical(small, fitted):
    twin = clone(fitted)
    assert not hasattr(twin, "heads_") and twin.get_params() == fitted.get_params()
    np.testing.assert_array_equal(twin.fit(small.train, **small.fit_kwargs()).predict(small.test_X),
                                  fitted.predict(small.test_X))


def test_save_load_round_trip(tmp_path, small, fitted):
    path = tmp_path / "dfpv.pt"
    fitted.save(path)
    loaded = DFPV.load(path)
    np.testing.assert_array_equal(loaded.predict(small.test_X), fitted.predict(small.test_X))
    np.testing.assert_array_equal(loaded.predict(small.test_X, heads="current"),
                                  fitted.predict(small.test_X, heads="current"))
    w = small.train[["views"]].to_numpy()[:5]
    np.testing.assert_array_equal(loaded.predict_bridge(np.full(5, 20.0), w),
                                  fitted.predict_bridge(np.full(5, 20.0), w))


@pytest.mark.parametrize("heads", ["fitted", "current"])
def test_predict_is_bridge_averaged_over_stage2_outcome_proxy(small, fitted, heads):
    w2 = small.train[["views"]].to_numpy()[_stage2_rows(small.n, FAST["random_state"])]
    for a in (12.0, 25.0):
        bridge = fitted.predict_bridge(np.full(len(w2), a), w2, heads=heads)
        assert fitted.predict([a], heads=heads)[0] == pytest.approx(bridge.mean(), rel=1e-5, abs=1e-4)
    # and not the average over the stage-1 rows, which the features can tell apart
    assert np.ptp(fitted.predict_bridge(np.full(len(w2), 20.0), w2)) > 0


def test_dose_response_and_effect(small, fitted):
    dr = fitted.dose_response([12.0, 20.0])
    assert list(dr.columns) == ["price", "estimate"]
    np.testing.assert_allclose(dr["estimate"], fitted.predict([12.0, 20.0]))
    np.testing.assert_allclose(fitted.effect(T0=12.0, T1=20.0), np.diff(fitted.predict([12.0, 20.0])), rtol=1e-6)


def test_covariates_average_and_conditional_dose_response(small):
    """With X: predict(A) uses the joint mean of [ψ_W,1]⊗[η,1]; averaging predict(A, X) over the
    stage-2 rows' X gives the same (the conditional mean of ψ_W given η is a least-squares fit)."""
    rng = np.random.default_rng(0)
    frame = small.train.assign(region=rng.normal(size=small.n))
    est = DFPV(**FAST, beta1=1e-6, covariate_net=lambda d: torch.nn.Sequential(torch.nn.Linear(d, 3), torch.nn.Tanh()))
    est.fit(frame, **{**small.fit_kwargs(), "covariates": ["region"]})
    d_a2 = est.nets_["treatment"](torch.zeros(1, 1)).shape[1]
    d_w = est.nets_["outcome_proxy"](torch.zeros(1, 1)).shape[1]
    assert est.heads_.u.shape[0] == (d_a2 + 1) * (d_w + 1) * (3 + 1)  # three-way product features
    x2 = frame[["region"]].to_numpy()[_stage2_rows(small.n, FAST["random_state"])]
    average = est.predict([15.0, 22.0])
    conditional = [est.predict(np.full(len(x2), a), x2).mean() for a in (15.0, 22.0)]
    np.testing.assert_allclose(average, conditional, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(est.predict(frame.iloc[:4]), est.predict(frame[["price"]].iloc[:4], frame[["region"]].iloc[:4]))
    with pytest.raises(ValueError, match="X .* required"):
        est.predict_bridge([15.0], frame[["views"]].iloc[:1])


def test_unfitted_and_bad_inputs(small, fitted):
    with pytest.raises(NotFittedError):
        DFPV().predict([1.0])
    with pytest.raises(ValueError, match=r"W \(outcome_proxy\) has 2 columns"):
        fitted.predict_bridge([20.0], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="heads"):
        fitted.predict([20.0], heads="latest")
    with pytest.raises(ValueError, match="required"):
        DFPV(**FAST).fit(small.train, outcome="sales", treatment="price", treatment_proxy=["cost1", "cost2"])


def test_auto_schedule_keeps_dfpv_at_a_constant_rate():
    """DFPV's measured default is a constant rate; an explicit "annealed" still anneals."""
    assert DFPV()._settings(2500)["lr_schedule"] == "constant"
    assert DFPV(lr_schedule="annealed")._settings(2500)["lr_schedule"] == "annealed"
