"""The covariate screen (deepcausal._screen): which covariates enter DFIV's networks."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from deepcausal import DFIV
from deepcausal._screen import group_lasso, screen_covariates


def _std(a):
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    return (a - a.mean(0)) / a.std(0)


def _design(n=3000, p=20, seed=0):
    """Covariates 0-3 matter, each through one equation only; 4.. are noise.

    x0: the outcome, only through x0² (a linear screen would miss it: corr(x0, x0²) = 0);
    x1: the outcome, only through its product with the centred treatment (no main effect);
    x2: the treatment only;  x3: the instrument only (it must stay: the instrument is valid given x3).
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    z = rng.normal(size=n) + 0.8 * X[:, 3]
    u = rng.normal(size=n)
    t = z + 0.8 * X[:, 2] + 0.5 * u + 0.3 * rng.normal(size=n)
    y = 0.5 * t + 0.6 * X[:, 0] ** 2 + 0.5 * t * X[:, 1] + 0.3 * X[:, 3] + u + 0.5 * rng.normal(size=n)
    return X, t, z, y


def test_the_screen_keeps_each_kind_of_relevant_covariate_and_drops_noise():
    X, t, z, y = _design()
    found = screen_covariates(_std(X), _std(t), _std(z), _std(y))
    assert list(found["kept"]) == [0, 1, 2, 3]
    assert {0, 1} <= set(found["outcome"])
    assert 2 in found["treatment"] and 3 in found["instrument"]


def test_the_screen_keeps_nothing_of_pure_noise():
    rng = np.random.default_rng(1)
    X, z = rng.normal(size=(2000, 30)), rng.normal(size=2000)
    t = z + rng.normal(size=2000)
    found = screen_covariates(_std(X), _std(t), _std(z), _std(t + rng.normal(size=2000)))
    assert len(found["kept"]) == 0


def test_group_lasso_meets_its_optimality_conditions():
    """KKT of ½bᵀCb − cᵀb + Σλ‖b_j‖: g_j = c_j − (Cb)_j equals λ_j b_j/‖b_j‖ where b_j ≠ 0, ‖g_j‖ ≤ λ_j where 0."""
    rng = np.random.default_rng(2)
    G = rng.normal(size=(500, 12))
    groups = [np.arange(3 * j, 3 * j + 3) for j in range(4)]
    for idx in groups:  # orthonormal blocks, as the screen makes them
        q, _ = np.linalg.qr(G[:, idx])
        G[:, idx] = q * np.sqrt(len(G))
    r = G[:, :3] @ np.array([1.0, -0.5, 0.2]) + rng.normal(size=500)
    C, c = G.T @ G / len(G), G.T @ r / len(G)
    lam = np.full(4, 0.1)
    b = group_lasso(C, c, lam, groups, tol=1e-12)
    g = c - C @ b
    nonzero = [j for j, idx in enumerate(groups) if np.any(b[idx])]
    assert 0 in nonzero and len(nonzero) < 4
    for j, idx in enumerate(groups):
        if j in nonzero:
            np.testing.assert_allclose(g[idx], lam[j] * b[idx] / np.linalg.norm(b[idx]), atol=1e-8)
        else:
            assert np.linalg.norm(g[idx]) <= lam[j] + 1e-10


@pytest.fixture(scope="module")
def screened():
    X, t, z, y = _design(n=1500, p=10, seed=3)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])]).assign(t=t, z=z, y=y)
    kw = dict(outcome="y", treatment="t", instruments="z", covariates=[f"x{j}" for j in range(X.shape[1])])
    original = frame.copy()
    est = DFIV(covariate_selection="group_lasso", n_epochs=3, n_estimators=2, n_bootstrap=10, n_jobs=1,
               random_state=0, verbose=False).fit(frame, **kw)
    pd.testing.assert_frame_equal(frame, original)  # the user's data is never modified
    return est, frame


def test_the_networks_read_only_the_kept_covariates(screened):
    est, frame = screened
    sel = est.covariate_selection_
    assert sel["kept_names"] == ["x0", "x1", "x2", "x3"]
    m = est.estimators_[0]
    width = m.nets_["covariate"](torch.zeros(1, 4)).shape  # the covariate net takes the four kept columns
    assert width[0] == 1
    with pytest.raises(RuntimeError):
        m.nets_["covariate"](torch.zeros(1, 10))
    # predict takes every covariate, and the ones left out cannot move it
    X = frame[[f"x{j}" for j in range(10)]].iloc[:50]
    moved = X.copy()
    moved.loc[:, ["x4", "x7", "x9"]] = 100.0
    base = est.predict(frame["t"].iloc[:50].to_numpy(), X)
    np.testing.assert_array_equal(base, est.predict(frame["t"].iloc[:50].to_numpy(), moved))
    changed = X.copy()
    changed.loc[:, "x0"] += 1.0
    assert not np.allclose(base, est.predict(frame["t"].iloc[:50].to_numpy(), changed))


def test_summary_names_the_covariates_left_out(screened):
    est, _ = screened
    line = est.summary.fit["covariates"]
    assert line.startswith("4 of 10 kept") and "x4" in line and "x0" not in line


def test_a_saved_model_keeps_its_screen(screened, tmp_path):
    est, frame = screened
    est.save(tmp_path / "m.pt")
    loaded = DFIV.load(tmp_path / "m.pt")
    X = frame[[f"x{j}" for j in range(10)]].iloc[:20]
    np.testing.assert_array_equal(est.predict(frame["t"].iloc[:20].to_numpy(), X),
                                  loaded.predict(frame["t"].iloc[:20].to_numpy(), X))
    assert loaded.covariate_selection_["kept_names"] == est.covariate_selection_["kept_names"]


def test_custom_networks_read_every_covariate():
    X, t, z, y = _design(n=400, p=6, seed=4)
    est = DFIV(covariate_selection="group_lasso", covariate_net=lambda d: torch.nn.Linear(d, 3), n_epochs=1,
               n_estimators=1, n_bootstrap=0, random_state=0, verbose=False).fit(y, t, X=X, Z=z)
    assert est.covariate_selection_["kept"] is None and "custom" in est.covariate_selection_["reason"]
    assert est.summary.fit["covariates"].startswith("all 6 read")


def test_no_covariate_kept_leaves_the_covariate_network_out():
    rng = np.random.default_rng(5)
    X, z = rng.normal(size=(600, 4)), rng.normal(size=600)
    t = z + rng.normal(size=600)
    y = 2 * t + rng.normal(size=600)
    est = DFIV(covariate_selection="group_lasso", n_epochs=2, n_estimators=1, n_bootstrap=5, random_state=0,
               verbose=False).fit(y, t, X=X, Z=z)
    assert len(est.covariate_selection_["kept"]) == 0
    assert "covariate" not in est.nets_
    assert np.isfinite(est.predict(t[:5], X[:5])).all()


def test_a_bad_covariate_selection_is_named():
    X, t, z, y = _design(n=200, p=5, seed=6)
    with pytest.raises(ValueError, match="covariate_selection"):
        DFIV(covariate_selection="lasso", n_epochs=1, n_estimators=1, verbose=False).fit(y, t, X=X, Z=z)


def test_a_categorical_covariate_is_kept_or_left_out_whole():
    """Its indicator columns are one group: a region that moves the outcome keeps every level's column, a noise
    category loses every one, and both are named once."""
    rng = np.random.default_rng(8)
    n = 2000
    region = rng.choice(["north", "south", "east", "west"], size=n)
    noise = rng.choice(["a", "b", "c"], size=n)
    z = rng.normal(size=n)
    t = z + rng.normal(size=n)
    effect = pd.Series(region).map({"north": 0.0, "south": 0.8, "east": -0.5, "west": 0.3}).to_numpy()
    frame = pd.DataFrame({"y": t + effect + rng.normal(size=n), "t": t, "z": z, "x": rng.normal(size=n),
                          "region": pd.Categorical(region), "noise": pd.Categorical(noise)})
    est = DFIV(n_epochs=1, n_estimators=1, n_bootstrap=0, random_state=0, verbose=False).fit(
        frame, outcome="y", treatment="t", instruments="z", covariates=["x", "region", "noise"])
    sel = est.covariate_selection_
    assert sel["names"] == ["x", "region", "noise"]
    assert sel["kept_names"] == ["region"]
    assert list(sel["kept"]) == [1, 2, 3, 4]  # x is column 0, region's four levels 1-4, noise's three 5-7
    assert est.summary.fit["covariates"].startswith("1 of 3 kept") and "noise" in est.summary.fit["covariates"]
    assert np.isfinite(est.predict(frame[["t"]].iloc[:5].to_numpy(), frame[["x", "region", "noise"]].iloc[:5])).all()


def test_the_line_is_reported_when_no_covariate_is_kept():
    """A binary instrument makes the default report the line; with every covariate screened out its controls are
    the intercept alone (this crashed: the line's inference asked the missing covariate network for features)."""
    rng = np.random.default_rng(9)
    n = 800
    X, z = rng.normal(size=(n, 4)), rng.integers(0, 2, size=n).astype(float)
    t = z + rng.normal(size=n)
    y = 2 * t + rng.normal(size=n)
    est = DFIV(n_epochs=1, n_estimators=1, n_bootstrap=5, random_state=0, verbose=False).fit(y, t, X=X, Z=z)
    assert len(est.covariate_selection_["kept"]) == 0
    assert est.line_inference_["controls"] == "none"
    assert abs(est.line_inference_["estimate"] - 2.0) < 0.3


def test_more_than_two_treatment_columns_read_every_covariate():
    rng = np.random.default_rng(10)
    n = 400
    X, Z = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    T = Z + rng.normal(size=(n, 3))
    y = T.sum(axis=1) + X[:, 0] * T[:, 2] + rng.normal(size=n)
    est = DFIV(n_epochs=1, n_estimators=1, n_bootstrap=0, random_state=0, verbose=False).fit(y, T, X=X, Z=Z)
    assert est.covariate_selection_["kept"] is None and "treatment columns" in est.covariate_selection_["reason"]


def test_a_formula_screens_its_terms():
    rng = np.random.default_rng(11)
    n = 1500
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "g": rng.choice(list("xyz"), size=n),
                       "z": rng.normal(size=n)})
    df["t"] = df["z"] + rng.normal(size=n)
    df["y"] = df["t"] + 2 * df["a"] * df["b"] + rng.normal(size=n)
    est = DFIV.from_formula("y ~ a + a:b + C(g) + [t ~ z]", df, n_epochs=1, n_estimators=1, n_bootstrap=0,
                            random_state=0, verbose=False).fit()
    sel = est.covariate_selection_
    assert sel["names"] == ["a", "C(g)", "a:b"] and "a:b" in sel["kept_names"] and "C(g)" not in sel["kept_names"]


def test_a_model_from_before_the_screen_reads_every_covariate(screened, tmp_path):
    """A model file or pickle without the parameter describes what it did: no screen."""
    est, _ = screened
    est.save(tmp_path / "m.pt")
    record = torch.load(tmp_path / "m.pt", weights_only=True)
    del record["estimator"]["params"]["covariate_selection"]
    torch.save(record, tmp_path / "old.pt")
    assert DFIV.load(tmp_path / "old.pt").get_params()["covariate_selection"] is None
    twin = pickle.loads(pickle.dumps(est))
    del twin.__dict__["covariate_selection"]
    assert twin.get_params()["covariate_selection"] is None


def test_dfpv_screens_against_its_proxies():
    from deepcausal import DFPV
    from deepcausal.datasets import demand_proxy

    d = demand_proxy(n=1000, seed=0)
    rng = np.random.default_rng(12)
    frame = d.train.assign(noise1=rng.normal(size=len(d.train)), noise2=rng.normal(size=len(d.train)))
    est = DFPV(covariate_selection="group_lasso", n_epochs=1, n_estimators=1, n_bootstrap=0, random_state=0,
               verbose=False).fit(frame, **{**d.fit_kwargs(), "covariates": ["noise1", "noise2"]})
    assert est.covariate_selection_["kept_names"] == []
    assert "a proxy" in est.summary.fit["covariates"]
    assert np.isfinite(est.predict(d.test_X)).all()
