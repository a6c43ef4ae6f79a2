"""Tests of deepcausal.datasets: structural functions, seeding, confounding, renderer, archive, data/."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepcausal import datasets as ds
from deepcausal.datasets import _dsprites as dsprites_module
from deepcausal.datasets._demand import _proxy_test_truth, _proxy_truth_monte_carlo, _proxy_truth_quadrature
from deepcausal.datasets.hearts import _read_npz_rows

REPO = Path(__file__).parents[1]
REFERENCE = Path(__file__).parents[2] / "shared" / "reference" / "dsprites_gif_hearts.npz"

SMALL = {
    "demand": lambda seed: ds.demand(300, rho=0.5, seed=seed),
    "lowdim": lambda seed: ds.lowdim(300, g="abs", seed=seed),
    "linear_binary_iv": lambda seed: ds.linear_binary_iv(300, seed=seed),
    "dsprites": lambda seed: ds.dsprites(60, seed=seed),
    "dsprites_area": lambda seed: ds.dsprites(60, seed=seed, structural="area"),
    "demand_proxy": lambda seed: ds.demand_proxy(300, seed=seed),
    "dsprites_proxy": lambda seed: ds.dsprites_proxy(60, seed=seed),
}
N_TEST = {
    "demand": 2800,
    "lowdim": 1000,
    "linear_binary_iv": 15,
    "dsprites": 588,
    "dsprites_area": 588,
    "demand_proxy": 10,
    "dsprites_proxy": 588,
}


# ----------------------------------------------------------------------- structural functions
def test_demand_structural_at_hand_computed_points():
    # ψ(5) = 2(0 + 1 + 0.5 − 2) = −1, so f(20, 5, 3) = 100 + 30·3·(−1) − 40 = −30.
    assert ds.demand_structural(20.0, 5.0, 3) == pytest.approx(-30.0, abs=1e-12)
    # ψ(0) = 2(625/600 + e^−100 − 2); f(10, 0, 1) = 100 + 20·ψ(0) − 20.
    psi0 = 2.0 * (625.0 / 600.0 + math.exp(-100.0) - 2.0)
    assert ds.demand_structural(10.0, 0.0, 1) == pytest.approx(100.0 + 20.0 * psi0 - 20.0, abs=1e-12)


def test_demand_test_grid_and_truth():
    d = ds.demand(100, seed=0)
    assert list(d.test_X.columns) == ["price", "time", "customer_type"]
    assert d.test_X["price"].nunique() == 20 and d.test_X["time"].nunique() == 20
    assert sorted(d.test_X["customer_type"].unique()) == list(range(1, 8))
    row = d.test_X.iloc[0]
    assert (row["price"], row["time"], row["customer_type"]) == (10.0, 0.0, 1.0)
    truth = ds.demand_structural(d.test_X["price"], d.test_X["time"], d.test_X["customer_type"])
    np.testing.assert_allclose(d.test_truth, truth, rtol=0, atol=0)
    assert np.var(d.test_truth) == pytest.approx(32644, abs=1.0)  # DESIGN §5


@pytest.mark.parametrize(
    "g, t, expected",
    [
        ("abs", [-2.0, 0.0, 1.5], [2.0, 0.0, 1.5]),
        ("linear", [-1.0, 0.0, 2.0], [-5.0, -2.0, 4.0]),
        ("sin", [0.0, math.pi / 2, -math.pi / 6], [0.0, 1.0, -0.5]),
        ("step", [-1e-9, 0.0, 3.0], [0.0, 1.0, 1.0]),
    ],
)
def test_lowdim_structural(g, t, expected):
    np.testing.assert_allclose(ds.lowdim_structural(t, g=g), expected, atol=1e-12)
    d = ds.lowdim(50, g=g, seed=0)
    np.testing.assert_allclose(d.structural_function(np.array(t)), expected, atol=1e-12)
    np.testing.assert_array_equal(d.test_truth, ds.lowdim_structural(d.test_X["t"].to_numpy(), g=g))


def test_lowdim_test_draws_fixed_and_from_training_distribution():
    a, b = ds.lowdim(2000, g="sin", seed=1), ds.lowdim(2000, g="step", seed=2)
    np.testing.assert_array_equal(a.test_X["t"], b.test_X["t"])
    # t = z₁ + e + γ has variance 3 + 1 + 0.01.
    assert np.var(a.test_X["t"]) == pytest.approx(4.01, rel=0.15)
    assert np.var(a.train["t"]) == pytest.approx(4.01, rel=0.1)


def test_dsprites_structural_at_hand_computed_images():
    f = ds.dsprites_position_structural
    zero = np.zeros((1, 4096))
    assert f(zero)[0] == pytest.approx(-6.0)  # (0 − 3000)/500
    column0 = np.zeros((64, 64))
    column0[:, 0] = 1.0  # B[i, 0] = 32/32 = 1 on 64 pixels: ((64)² − 3000)/500
    assert f(column0[None])[0] == pytest.approx((64.0**2 - 3000.0) / 500.0)
    column32 = np.zeros((64, 64))
    column32[:, 32] = 1.0  # B[i, 32] = 0
    assert f(column32.reshape(1, 4096))[0] == pytest.approx(-6.0)

    heart = ds.render_hearts(5, 0, 16, 16)[0]
    total = 0.0
    for r in range(64):
        for c in range(64):
            total += heart[r, c] * abs(32 - c) / 32.0
    assert f(heart[None])[0] == pytest.approx((total**2 - 3000.0) / 500.0, rel=1e-12)

    # Area variant with a user's matrix of ones: aᵀM_k = pixel sum for every k.
    ones = np.ones((4096, 10))
    assert ds.dsprites_area_structural(zero, ones)[0] == pytest.approx(-5.0)
    n_on = float(heart.sum())
    assert ds.dsprites_area_structural(heart[None], ones)[0] == pytest.approx((n_on**2 - 5000.0) / 1000.0)


def test_dsprites_area_matrix_choices(tmp_path):
    default = ds.dsprites(20, seed=0, structural="area")
    np.testing.assert_array_equal(default.test_truth, ds.dsprites_area_structural(default.test_X["treatment"]))
    m = np.random.default_rng(5).uniform(size=(4096, 10))
    np.save(tmp_path / "m.npy", m)
    from_array = ds.dsprites(20, seed=0, structural="area", matrix=m)
    from_file = ds.dsprites(20, seed=0, structural="area", matrix=tmp_path / "m.npy")
    np.testing.assert_array_equal(from_array.test_truth, from_file.test_truth)
    assert not np.allclose(from_array.test_truth, default.test_truth)
    with pytest.raises(ValueError, match="shape"):
        ds.dsprites(20, seed=0, structural="area", matrix=np.ones((10, 10)))
    with pytest.raises(ValueError, match="structural"):
        ds.dsprites(20, seed=0, structural="size")


def test_dsprites_train_and_test_sets():
    d = ds.dsprites(400, seed=3)
    ids = d.info["latents"]
    for j, size in enumerate((6, 40, 32, 32)):
        assert ids[:, j].min() >= 0 and ids[:, j].max() < size
    np.testing.assert_allclose(d.arrays["instruments"][:, 0], 0.5 + 0.1 * ids[:, 0])
    np.testing.assert_allclose(d.arrays["instruments"][:, 1], 2 * np.pi * ids[:, 1] / 39)
    np.testing.assert_allclose(d.arrays["instruments"][:, 2], ids[:, 2] / 31)
    clean = ds.render_hearts(*ids.T).reshape(400, 4096)
    noise = d.arrays["treatment"] - clean
    assert noise.std() == pytest.approx(0.1, rel=0.02) and abs(noise.mean()) < 1e-3
    # y − f(A) − (posY − 15.5) is the N(0, 0.5²) noise.
    resid = d.arrays["outcome"][:, 0] - d.structural_function(d.arrays["treatment"]) - (ids[:, 3] - 15.5)
    assert resid.std() == pytest.approx(0.5, rel=0.15)
    test_ids = d.info["test_latents"]
    assert test_ids.shape == (588, 4)
    assert sorted(set(test_ids[:, 0])) == [0, 3, 5] and sorted(set(test_ids[:, 1])) == [0, 10, 20, 30]
    assert sorted(set(test_ids[:, 2])) == sorted(set(test_ids[:, 3])) == list(range(0, 31, 5))
    np.testing.assert_array_equal(d.test_X["treatment"], ds.render_hearts(*test_ids.T).reshape(588, 4096))


def test_dsprites_proxy_outcome_proxy_shares_posy():
    d = ds.dsprites_proxy(300, seed=1)
    ids = d.info["latents"]
    w_clean = ds.render_hearts(3, 0, 16, ids[:, 3]).reshape(300, 4096)
    noise = d.arrays["outcome_proxy"] - w_clean
    assert noise.std() == pytest.approx(0.1, rel=0.02)
    resid = d.arrays["outcome"][:, 0] - d.structural_function(d.arrays["treatment"]) * (ids[:, 3] - 15.5) ** 2 / 85.25
    assert resid.std() == pytest.approx(0.5, rel=0.15)
    assert set(d.array_kwargs()) == {"Y", "A", "Z", "W", "X"} and d.array_kwargs()["X"] is None


# ----------------------------------------------------------------------- seeding and sizes
def _arrays_equal(a, b):
    return all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays) and a.arrays.keys() == b.arrays.keys()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_seeding_and_test_size(name):
    make = SMALL[name]
    a, b, c = make(0), make(0), make(1)
    assert _arrays_equal(a, b)
    assert not any(np.array_equal(a.arrays[k], c.arrays[k]) for k in ("outcome", "treatment"))
    np.testing.assert_array_equal(a.test_truth, c.test_truth)
    assert a.n_test == N_TEST[name] == a.test_truth.shape[0]
    assert a.test_truth.dtype == np.float64
    assert a.arrays["outcome"].shape == (a.n, 1)
    for arr in a.arrays.values():
        assert arr.ndim == 2 and arr.shape[0] == a.n
    if a.train is not None:
        pd.testing.assert_frame_equal(a.train, b.train)
        cols = [c for cols in a.roles.values() for c in cols]
        assert sorted(cols) == sorted(a.train.columns)
        for role, arr in a.arrays.items():
            np.testing.assert_array_equal(arr, a.train[a.roles[role]].to_numpy())


# ----------------------------------------------------------------------- the designs are confounded
def test_lowdim_confounding_dominates():
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.preprocessing import SplineTransformer

    d = ds.lowdim(5000, g="sin", seed=0)
    t, y, z = d.arrays["treatment"], d.arrays["outcome"][:, 0], d.arrays["instruments"]
    t_test = d.test_arrays()["treatment"]
    naive = GradientBoostingRegressor(random_state=0).fit(t, y)
    mse_naive = d.score(naive.predict(t_test))
    # 2SLS on the true basis [sin t, 1] with a spline basis of z₁ (plus z₂) as instruments.
    x = np.column_stack([np.sin(t[:, 0]), np.ones(d.n)])
    zb = np.column_stack([np.ones(d.n), SplineTransformer(n_knots=8).fit_transform(z[:, :1]), z[:, 1]])
    x_hat = zb @ np.linalg.lstsq(zb, x, rcond=None)[0]
    beta = np.linalg.lstsq(x_hat, y, rcond=None)[0]
    mse_iv = d.score(np.column_stack([np.sin(t_test[:, 0]), np.ones(len(t_test))]) @ beta)
    assert mse_naive >= 5 * mse_iv
    assert mse_naive > 0.1  # E[e | t] ≈ t/4 is not small


def test_demand_confounding_biases_ols():
    def basis(frame):
        s_psi = frame["customer_type"] * ds.psi(frame["time"])
        return np.column_stack([np.ones(len(frame)), s_psi, frame["price"] * s_psi, frame["price"]])

    mse = {}
    for rho in (0.0, 0.9):
        d = ds.demand(20000, rho=rho, seed=0)
        coef = np.linalg.lstsq(basis(d.train), d.train["sales"], rcond=None)[0]
        mse[rho] = d.score(basis(d.test_X) @ coef)
    assert mse[0.9] > 10 * mse[0.0]
    assert mse[0.9] > 0.05


def _schooling_fits(d):
    """(2SLS slope, OLS slope, first-stage F) of lwage on educ with the covariates (and exper²) as controls."""
    tr = d.train
    n = len(tr)
    controls = np.column_stack([np.ones(n), tr["exper"], tr["exper"] ** 2, tr["south"], tr["parent_educ"]])
    regs = np.column_stack([tr["educ"], controls])
    inst = np.column_stack([tr["nearc4"], controls])
    fitted = inst @ np.linalg.lstsq(inst, regs, rcond=None)[0]
    tsls = np.linalg.lstsq(fitted, tr["lwage"], rcond=None)[0][0]
    ols = np.linalg.lstsq(regs, tr["lwage"], rcond=None)[0][0]
    r_full = tr["educ"] - fitted[:, 0]
    r_restricted = tr["educ"] - controls @ np.linalg.lstsq(controls, tr["educ"], rcond=None)[0]
    f_stat = (r_restricted @ r_restricted - r_full @ r_full) / (r_full @ r_full / (n - inst.shape[1]))
    return tsls, ols, f_stat


def test_linear_binary_iv_grid_truth_and_info():
    d = ds.linear_binary_iv(200, slope=0.07, seed=3)
    assert d.roles == {"outcome": ["lwage"], "treatment": ["educ"], "instruments": ["nearc4"],
                       "covariates": ["exper", "south", "parent_educ"]}
    assert list(d.test_X.columns) == ["educ", "exper", "south", "parent_educ"]
    np.testing.assert_allclose(d.test_X["educ"], np.linspace(9, 16, 15))
    ref = d.info["reference_covariates"]
    for col, value in ref.items():
        assert (d.test_X[col] == value).all()
    # h(12, 8, 0, 10) = 5 + 12·slope + 0.64 − 0.128.
    assert d.structural_function(12.0, 8.0, 0.0, 10.0) == pytest.approx(5.0 + 0.84 + 0.64 - 0.128, abs=1e-12)
    np.testing.assert_allclose(np.diff(d.test_truth), 0.07 * 0.5, atol=1e-12)
    assert d.info["true_slope"] == 0.07
    assert set(np.unique(d.train["nearc4"])) == {0.0, 1.0} and set(np.unique(d.train["south"])) == {0.0, 1.0}
    assert d.score(d.test_truth + 0.1) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="first_stage"):
        ds.linear_binary_iv(10, first_stage=float("nan"))
    with pytest.raises(ValueError, match="slope"):
        ds.linear_binary_iv(10, slope="steep")


def test_linear_binary_iv_ols_biased_2sls_consistent_first_stage_modest():
    fits = np.array([_schooling_fits(ds.linear_binary_iv(3000, seed=s)) for s in range(12)])
    tsls, ols, f_stat = fits.T
    # Ability bias: OLS ≈ 0.18 in every draw (its sd is ~0.003); 2SLS is centred on 0.1 (sd ~0.04 per draw).
    assert (ols > 0.16).all()
    assert abs(tsls.mean() - 0.1) < 0.03
    # Weak-ish but identified: the F of single draws scatter around the expected ~21.
    assert 10 < np.median(f_stat) < 30
    assert 15 < ds.linear_binary_iv(3000).info["expected_first_stage_F"] < 30
    # At a large n 2SLS is close (se ~0.008) and OLS still is not.
    tsls_big, ols_big, f_big = _schooling_fits(ds.linear_binary_iv(100_000, seed=0))
    assert abs(tsls_big - 0.1) < 0.025 and ols_big - 0.1 > 0.06 and f_big > 300


def test_linear_binary_iv_knobs_move_what_they_say():
    # No confounding: OLS is unbiased. No first stage: F is noise (about 1).
    _, ols, _ = _schooling_fits(ds.linear_binary_iv(20_000, confounding=0.0, seed=1))
    assert abs(ols - 0.1) < 0.01
    f_null = [_schooling_fits(ds.linear_binary_iv(3000, first_stage=0.0, seed=s))[2] for s in range(8)]
    assert np.median(f_null) < 4


# ----------------------------------------------------------------------- demand PCL truth
def test_demand_proxy_truth_stable_across_integrators():
    a = np.linspace(10, 30, 10)
    truth = ds.demand_proxy(50, seed=0).test_truth
    np.testing.assert_allclose(truth, _proxy_truth_quadrature(a), atol=0)
    # The quadrature has converged ...
    np.testing.assert_allclose(_proxy_truth_quadrature(a, panels=100, order=30), truth, atol=1e-8)
    # ... and Monte Carlo with 10⁶ draws agrees with it whatever the integrator's seed.
    for seed in (0, 1, 2):
        np.testing.assert_allclose(_proxy_truth_monte_carlo(a, 10**6, seed), truth, atol=0.05)
    assert _proxy_test_truth() is _proxy_test_truth()  # computed once
    np.testing.assert_allclose(ds.demand_proxy_structural(a), truth, rtol=1e-12)
    assert 40 < truth.min() and truth.max() < 70


# ----------------------------------------------------------------------- renderer
@pytest.mark.skipif(not REFERENCE.exists(), reason=f"reference frames not found at {REFERENCE}")
def test_renderer_fidelity_against_real_frames():
    ref = np.load(REFERENCE)
    ids = ref["latents_classes_scale_orient_posX_posY"]
    real = ref["imgs"]
    rendered = ds.render_hearts(ids[:, 0], ids[:, 1], ids[:, 2], ids[:, 3])
    differ = rendered != real
    pixel_agreement = 1.0 - differ.mean()
    identical_frames = np.mean(differ.sum(axis=(1, 2)) == 0)
    assert pixel_agreement >= 0.998
    assert identical_frames >= 0.80


def test_renderer_matches_point_in_polygon_reference():
    from matplotlib.path import Path as PolyPath

    rng = np.random.default_rng(0)
    ids = np.column_stack(
        [rng.integers(0, 6, 12), rng.integers(0, 40, 12), rng.integers(0, 32, 12), rng.integers(0, 32, 12)]
    )
    imgs = ds.render_hearts(*ids.T)
    t = np.arange(720) * 2 * np.pi / 720
    u = 9.5884 * np.sin(t) ** 3
    v = -(8.6082 * np.cos(t) - 3.3171 * np.cos(2 * t) - 1.3308 * np.cos(3 * t) - 0.6544 * np.cos(4 * t)) - 1.4362
    rows, cols = np.mgrid[0:64, 0:64]
    centres = np.column_stack([cols.ravel() + 0.5, rows.ravel() + 0.5])
    for img, (s_id, o_id, x_id, y_id) in zip(imgs, ids):
        s, th = 0.5 + 0.1 * s_id, 2 * np.pi * o_id / 39
        uu = (np.cos(th) * u + np.sin(th) * v) * s + 16 + 32 * x_id / 31
        vv = (-np.sin(th) * u + np.cos(th) * v) * s + 16 + 32 * y_id / 31
        inside = PolyPath(np.column_stack([uu, vv])).contains_points(centres).reshape(64, 64)
        assert np.sum(inside != img.astype(bool)) == 0


def test_render_hearts_api():
    one = ds.render_hearts(5, 0, 16, 16)
    assert one.shape == (1, 64, 64) and one.dtype == np.uint8 and set(np.unique(one)) == {0, 1}
    by_value = ds.render_hearts(1.0, 0.0, 16 / 31, 16 / 31, latents="values")
    np.testing.assert_array_equal(one, by_value)
    assert ds.render_hearts([0, 5], 0, 16, 16).sum(axis=(1, 2)).tolist()[0] < one.sum()
    with pytest.raises(ValueError, match="scale"):
        ds.render_hearts(6, 0, 0, 0)
    with pytest.raises(ValueError, match="posY"):
        ds.render_hearts(0, 0, 0, 32)
    with pytest.raises(ValueError, match="latents"):
        ds.render_hearts(0, 0, 0, 0, latents="radians")


# ----------------------------------------------------------------------- official archive
def test_dsprites_index():
    assert ds.dsprites_index(0, 0, 0, 0, 0) == 0
    assert ds.dsprites_index(2, 0, 0, 0, 0) == 491520
    assert ds.dsprites_index(2, 5, 39, 31, 31) == 737279
    assert ds.dsprites_index(1, 2, 3, 4, 5) == 245760 + 2 * 40960 + 3 * 1024 + 4 * 32 + 5
    # Agrees with the row order of the archive's latents table (shape, scale, orientation, posX, posY).
    table = np.indices((3, 6, 40, 32, 32)).reshape(5, -1).T
    rows = np.random.default_rng(0).integers(0, len(table), 500)
    np.testing.assert_array_equal(ds.dsprites_index(*table[rows].T), rows)
    with pytest.raises(ValueError, match="orientation"):
        ds.dsprites_index(2, 0, 40, 0, 0)


def test_archive_reader_streams_requested_rows(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 2, (50, 64, 64)).astype(np.uint8)
    rows = [7, 0, 49, 7, 20]
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / f"{save.__name__}.npz"
        save(path, imgs=imgs, other=np.arange(3))
        out = _read_npz_rows(path, "imgs", rows, expected_shape=(50, 64, 64))
        np.testing.assert_array_equal(out, imgs[rows])


def test_archive_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        ds.load_archive_images(tmp_path / "missing.npz", 0, 0, 0, 0)
    not_zip = tmp_path / "not_zip.npz"
    not_zip.write_bytes(b"this is not an npz file")
    with pytest.raises(ValueError, match="not a valid .npz"):
        ds.load_archive_images(not_zip, 0, 0, 0, 0)
    no_key = tmp_path / "no_key.npz"
    np.savez(no_key, images=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="no 'imgs'"):
        ds.load_archive_images(no_key, 0, 0, 0, 0)
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez_compressed(wrong_shape, imgs=np.zeros((10, 64, 64), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(10, 64, 64\), expected \(737280, 64, 64\)"):
        ds.dsprites(10, seed=0, archive=wrong_shape)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(wrong_shape.read_bytes()[:200])
    with pytest.raises(ValueError):
        ds.load_archive_images(truncated, 0, 0, 0, 0)
    # Damage the compressed payload: the reader must fail with ValueError, not return garbage.
    damaged = tmp_path / "damaged.npz"
    noise = np.random.default_rng(1).integers(0, 255, (40, 64, 64)).astype(np.uint8)
    np.savez_compressed(damaged, imgs=noise)
    raw = bytearray(damaged.read_bytes())
    with zipfile.ZipFile(damaged) as zf:
        info = zf.getinfo("imgs.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 500, start + 2000):
        raw[i] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt"):
        _read_npz_rows(damaged, "imgs", [39], expected_shape=(40, 64, 64))


def test_designs_take_images_from_archive(tmp_path, monkeypatch):
    calls = []

    def fake_archive(archive, scale, orientation, pos_x, pos_y):
        calls.append((archive, len(scale)))
        return ds.render_hearts(scale, orientation, pos_x, pos_y)

    monkeypatch.setattr(dsprites_module, "load_archive_images", fake_archive)
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    via_archive = ds.dsprites(30, seed=4, archive=path)
    rendered = ds.dsprites(30, seed=4)
    assert _arrays_equal(via_archive, rendered)
    np.testing.assert_array_equal(via_archive.test_truth, rendered.test_truth)
    proxy = ds.dsprites_proxy(30, seed=4, archive=path)
    assert _arrays_equal(proxy, ds.dsprites_proxy(30, seed=4))
    assert calls == [(path, 30 + 588), (path, 30 + 30 + 588)]  # one archive pass per design


# ----------------------------------------------------------------------- Design object
def test_design_api():
    d = ds.demand(200, seed=0)
    assert d.fit_kwargs() == {
        "outcome": ["sales"],
        "treatment": ["price"],
        "instruments": ["cost"],
        "covariates": ["time", "customer_type"],
    }
    kw = d.array_kwargs()
    assert set(kw) == {"Y", "T", "X", "Z"} and kw["X"].shape == (200, 2) and kw["Z"].shape == (200, 1)
    assert d.score(d.test_truth) == 0.0
    assert d.score(d.test_truth.reshape(-1, 1) + 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2800"):
        d.score(np.zeros(10))
    text = repr(d)
    assert "demand" in text and "n=200" in text and "customer_type" in text

    low = ds.lowdim(100, seed=0)
    assert low.fit_kwargs()["covariates"] is None and low.array_kwargs()["X"] is None
    assert low.roles["covariates"] == []
    assert ds.demand_proxy(100, seed=0).fit_kwargs()["treatment_proxy"] == ["cost1", "cost2"]

    img = ds.dsprites(20, seed=0)
    with pytest.raises(ValueError, match="array_kwargs"):
        img.fit_kwargs()
    assert img.array_kwargs()["T"].shape == (20, 4096) and "image" in repr(img)
    with pytest.raises(ValueError, match="rho"):
        ds.demand(10, rho=1.5)
    with pytest.raises(ValueError, match="g must be"):
        ds.lowdim(10, g="cubic")
    with pytest.raises(ValueError, match="positive integer"):
        ds.demand_proxy(0)


# ----------------------------------------------------------------------- data/
def test_example_data_regenerates_bit_for_bit(tmp_path):
    from deepcausal.datasets.make_data import write_example_data

    paths = write_example_data(tmp_path)
    assert [p.name for p in paths] == ["demand_iv.csv", "demand_pcl.csv"]
    for p in paths:
        committed = REPO / "data" / p.name
        assert committed.read_bytes() == p.read_bytes(), f"{committed} differs from a fresh regeneration"
    iv = pd.read_csv(REPO / "data" / "demand_iv.csv")
    assert iv.shape == (5000, 5) and list(iv.columns) == ["sales", "price", "cost", "time", "customer_type"]
    np.testing.assert_allclose(iv.to_numpy(), ds.demand(5000, rho=0.5, seed=0).train.to_numpy(), rtol=1e-9)
