"""Model files hold tensors and plain data only: loading never runs code from the file (issue 15, item 8)."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from deepcausal import DFIV, DFPV, LastLayerRegressor
from deepcausal._data import Standardizer
from deepcausal._persist import _FORMAT
from deepcausal.datasets import demand, demand_proxy
from deepcausal.nets import mlp
from deepcausal.twostage import TwoStageHeads

FAST = dict(n_estimators=1, n_epochs=2, batch_size=128, random_state=0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def iv():
    d = demand(n=400, seed=0)
    return d, DFIV(**FAST).fit(d.train, **d.fit_kwargs())


@pytest.fixture(scope="module")
def proxy():
    d = demand_proxy(n=400, seed=0)
    return d, DFPV(**FAST).fit(d.train, **d.fit_kwargs())


def _assert_only_plain_data(path):
    """The file loads with torch's restricted unpickler: tensors and plain containers, nothing else."""
    blob = torch.load(path, weights_only=True)
    assert blob["format"] == _FORMAT and blob["version"] == 2


def _evil_class(marker):
    class Evil:
        def __reduce__(self):  # what a crafted file does: unpickling calls os.system
            return (os.system, (f"touch {marker}",))

    return Evil


@pytest.mark.parametrize("which", ["iv", "proxy"])
def test_round_trip_gives_identical_predictions(which, request, tmp_path):
    d, est = request.getfixturevalue(which)
    cls = type(est)
    path = tmp_path / "model.pt"
    est.save(path)
    _assert_only_plain_data(path)
    rng = torch.random.get_rng_state()
    loaded = cls.load(path)
    assert torch.equal(torch.random.get_rng_state(), rng)  # rebuilding the networks leaves the caller's RNG alone
    for heads in ("fitted", "current"):
        np.testing.assert_array_equal(loaded.predict(d.test_X, heads=heads), est.predict(d.test_X, heads=heads))
    assert loaded.get_params() == est.get_params()
    pd.testing.assert_frame_equal(loaded.history_, est.history_)
    assert isinstance(loaded.heads_, TwoStageHeads) and loaded.heads_.lam1 == est.heads_.lam1
    assert all(isinstance(s, Standardizer) for s in loaded.scalers_.values())
    assert isinstance(loaded.treatment_range_, tuple) and loaded.columns_ == est.columns_
    assert loaded.device_ == torch.device("cpu")


def test_image_networks_with_spectral_norm_round_trip(tmp_path):
    from deepcausal.datasets import dsprites

    d = dsprites(120, seed=0)
    est = DFIV(n_estimators=1, n_epochs=1, batch_size=32, random_state=0).fit(**d.array_kwargs())
    est.save(tmp_path / "img.pt")
    loaded = DFIV.load(tmp_path / "img.pt")
    T = d.test_X["treatment"][:20]
    np.testing.assert_array_equal(loaded.predict(T), est.predict(T))


def test_a_file_that_would_run_code_is_refused(tmp_path, iv):
    marker = tmp_path / "pwned_marker"
    Evil = _evil_class(marker)
    crafted = {
        "plain.pt": {"weights": torch.zeros(3), "payload": Evil()},
        # dressed up as a model file of either format
        "v2.pt": {"format": _FORMAT, "version": 2, "class": "DFIV", "estimator": Evil()},
        "v1.pt": {"format": _FORMAT, "version": 1, "class": "DFIV", "estimator": Evil()},
    }
    for name, blob in crafted.items():
        torch.save(blob, tmp_path / name)
        with pytest.raises((pickle.UnpicklingError, ValueError)) as info:
            DFIV.load(tmp_path / name)
        assert not marker.exists(), f"loading {name} ran code from the file"
        assert "refused" in str(info.value) and "trusted=True" in str(info.value)
    with pytest.raises(pickle.UnpicklingError, match=r"refused: .*system"):
        DFIV.load(tmp_path / "plain.pt")


def test_old_format_file_gets_a_clear_error_and_can_be_resaved_when_trusted(tmp_path, iv):
    d, est = iv
    path = tmp_path / "old.pt"
    torch.save({"format": _FORMAT, "version": 1, "class": "DFIV", "estimator": est}, path)  # what 0.1 wrote
    with pytest.raises(ValueError, match=r"format 1 .* est = DFIV.load\(path, trusted=True\); est.save\(path\)"):
        DFIV.load(path)
    old = DFIV.load(path, trusted=True)
    np.testing.assert_array_equal(old.predict(d.test_X), est.predict(d.test_X))
    old.save(path)
    _assert_only_plain_data(path)
    np.testing.assert_array_equal(DFIV.load(path).predict(d.test_X), est.predict(d.test_X))


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no deepcausal model file"):
        DFIV.load(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError):
        LastLayerRegressor.load(tmp_path / "nope.pt")


def test_user_supplied_network_must_be_passed_at_load(tmp_path, iv):
    d, _ = iv
    torch.manual_seed(0)
    user_net = nn.Sequential(nn.Linear(1, 8), nn.Tanh())
    est = DFIV(treatment_net=user_net, **FAST).fit(d.train, **d.fit_kwargs())
    path = tmp_path / "user.pt"
    est.save(path)
    _assert_only_plain_data(path)
    with pytest.raises(ValueError, match=r"user-supplied network\(s\) \['treatment_net'\].*nets=.*trusted=True"):
        DFIV.load(path)
    loaded = DFIV.load(path, nets={"treatment_net": user_net})
    np.testing.assert_array_equal(loaded.predict(d.test_X), est.predict(d.test_X))
    assert loaded.treatment_net is user_net and loaded.nets_["treatment"] is not user_net
    trusted = DFIV.load(path, trusted=True)  # unpickles the module stored beside the weights
    np.testing.assert_array_equal(trusted.predict(d.test_X), est.predict(d.test_X))
    with pytest.raises(ValueError, match=r"nets: \['instrument_net'\] did not hold user-supplied networks"):
        DFIV.load(path, nets={"treatment_net": user_net, "instrument_net": user_net})
    with pytest.raises(ValueError, match=r"nets: \['nope'\] are not parameters of DFIV"):
        DFIV.load(path, nets={"nope": user_net})
    with pytest.raises(ValueError, match="do not fit the network"):
        DFIV.load(path, nets={"treatment_net": nn.Sequential(nn.Linear(1, 3), nn.Tanh())})


def test_network_factory_cannot_be_stored_and_must_be_passed(tmp_path, proxy):
    d, _ = proxy
    factory = lambda d_in: mlp(d_in, d_out=4)  # noqa: E731 - a lambda cannot be pickled
    est = DFPV(outcome_proxy_net=factory, **FAST).fit(d.train, **d.fit_kwargs())
    est.save(tmp_path / "f.pt")
    with pytest.raises(ValueError, match="outcome_proxy_net"):
        DFPV.load(tmp_path / "f.pt", trusted=True)  # nothing pickled to fall back on
    loaded = DFPV.load(tmp_path / "f.pt", nets={"outcome_proxy_net": factory})
    np.testing.assert_array_equal(loaded.predict(d.test_X), est.predict(d.test_X))


def test_regressor_with_user_backbone(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 3)), rng.normal(size=200)
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU())
    model = LastLayerRegressor(backbone=net, max_steps=5, random_state=0).fit(X, y)
    model.save(tmp_path / "r.pt")
    _assert_only_plain_data(tmp_path / "r.pt")
    with pytest.raises(ValueError, match="backbone"):
        LastLayerRegressor.load(tmp_path / "r.pt")
    loaded = LastLayerRegressor.load(tmp_path / "r.pt", nets={"backbone": net})
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_new_fitted_attributes_and_member_estimators_are_saved_generically(tmp_path, iv):
    """What later fitted attributes will hold (summaries, category levels, ensemble members) round-trips
    without touching the persistence code; a type without an encoder is refused at save, naming it."""
    d, est = iv
    twin = DFIV(**{**FAST, "random_state": 1}).fit(d.train, **d.fit_kwargs())
    levels = pd.DataFrame({0: [1, 2, 3], "kind": pd.Categorical(["a", "b", "a"], categories=["b", "a"]),
                           "name": ["x", "y", "z"], "flag": [True, False, True]}, index=[10, 20, 30])
    extra = {
        "levels": levels,
        7: (np.float32(1.5), np.int64(3), None, float("nan")),
        "names": np.array(["price", "time"], dtype=object),
        "ints": np.arange(4, dtype=np.int32).reshape(2, 2),
        "dtype": torch.float64,
        "tags": frozenset({"a"}),
        "series": pd.Series([1.0, 2.0], name="s"),
    }
    est.extra_ = extra
    est.estimators_ = [twin]  # ensemble members: fitted estimators of the same class
    try:
        path = tmp_path / "gen.pt"
        est.save(path)
        _assert_only_plain_data(path)
        loaded = DFIV.load(path)
    finally:
        del est.extra_, est.estimators_
    got = loaded.extra_
    pd.testing.assert_frame_equal(got["levels"], levels)
    assert list(got["levels"]["kind"].cat.categories) == ["b", "a"]
    a, b, c, nan = got[7]
    assert type(a) is np.float32 and a == 1.5 and type(b) is np.int64 and c is None and np.isnan(nan)
    assert got["names"].dtype == object and list(got["names"]) == ["price", "time"]
    np.testing.assert_array_equal(got["ints"], extra["ints"])
    assert got["ints"].dtype == np.int32
    assert got["dtype"] is torch.float64 and got["tags"] == frozenset({"a"})
    pd.testing.assert_series_equal(got["series"], extra["series"])
    [member] = loaded.estimators_
    assert isinstance(member, DFIV) and member is not loaded
    np.testing.assert_array_equal(member.predict(d.test_X), twin.predict(d.test_X))

    est.bad_ = object()
    try:
        with pytest.raises(TypeError, match="cannot save DFIV attribute bad_"):
            est.save(tmp_path / "bad.pt")
    finally:
        del est.bad_
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_onto_cuda_moves_networks_heads_and_summaries(tmp_path, proxy):
    d, est = proxy
    est.save(tmp_path / "m.pt")
    loaded = DFPV.load(tmp_path / "m.pt", device="cuda")
    assert loaded.device_.type == "cuda"
    assert all(p.is_cuda for p in loaded.nets_.parameters())
    assert loaded.heads_.V.is_cuda and loaded.heads_.u.is_cuda and loaded.current_heads_.u.is_cuda
    assert all(v.is_cuda for v in loaded.summaries_.values() if isinstance(v, torch.Tensor))
    np.testing.assert_allclose(loaded.predict(d.test_X), est.predict(d.test_X), rtol=1e-4, atol=1e-4)
