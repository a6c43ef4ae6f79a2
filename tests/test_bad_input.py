"""Bad input fails loudly and early, naming the argument or column; the user's data is never modified."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from deepcausal import DFIV, DFPV
from deepcausal._diagnostics import WeakInstrumentWarning

# Warnings these tests provoke on purpose (small designs, short fits the linear check finds shrunk, weakly
# identified designs): silenced here so that a new one stands out.
pytestmark = [
    pytest.mark.filterwarnings("ignore:a stage half has only:UserWarning"),
    pytest.mark.filterwarnings("ignore::deepcausal.exceptions.ShrinkageWarning"),
    pytest.mark.filterwarnings("ignore:the data identify the curve weakly:deepcausal.exceptions.IdentificationWarning"),
]

TINY = dict(n_estimators=1, n_epochs=1, batch_size=64, random_state=0)
rng = np.random.default_rng(0)
N = 200


def _iv_frame():
    z = rng.normal(size=N)
    x = rng.normal(size=N)
    t = z + 0.5 * x + rng.normal(size=N)
    return pd.DataFrame({"y": t + rng.normal(size=N), "t": t, "z": z, "x": x})


def _pv_frame():
    u = rng.normal(size=N)
    a = u + rng.normal(size=N)
    return pd.DataFrame({"y": a + u, "a": a, "zp": u + rng.normal(size=N), "wp": u + rng.normal(size=N)})


IV_ROLES = dict(outcome="y", treatment="t", instruments="z", covariates="x")
PV_ROLES = dict(outcome="y", treatment="a", treatment_proxy="zp", outcome_proxy="wp")
CASES = {
    "DFIV": (DFIV, _iv_frame, IV_ROLES, "z"),
    "DFPV": (DFPV, _pv_frame, PV_ROLES, "zp"),
}


def _fit(name, frame, **overrides):
    cls, _, roles, _ = CASES[name]
    return cls(**TINY).fit(frame, **{**roles, **overrides})


@pytest.fixture(params=list(CASES))
def case(request):
    cls, make, roles, other = CASES[request.param]
    return request.param, make(), other


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_value_names_the_column(case, bad):
    name, frame, col = case
    frame.loc[7, col] = bad
    original = frame.copy()
    with pytest.raises(ValueError, match=f"'{col}'"):
        _fit(name, frame)
    pd.testing.assert_frame_equal(frame, original)  # never modified, even on failure


def test_non_finite_in_arrays_names_the_argument():
    f = _iv_frame()
    T = f["t"].to_numpy().copy()
    T[3] = np.nan
    with pytest.raises(ValueError, match=r"T \(treatment\) contains NaN"):
        DFIV(**TINY).fit(f["y"].to_numpy(), T, Z=f["z"].to_numpy())


def test_mismatched_rows_name_the_argument():
    f = _iv_frame()
    with pytest.raises(ValueError, match=r"Z \(instruments\) has 199 rows but the outcome has 200"):
        DFIV(**TINY).fit(f["y"].to_numpy(), f["t"].to_numpy(), Z=f["z"].to_numpy()[:-1])
    g = _pv_frame()
    with pytest.raises(ValueError, match=r"W \(outcome_proxy\) has 10 rows"):
        DFPV(**TINY).fit(g["y"], g["a"], Z=g["zp"], W=g["wp"].iloc[:10])


def test_missing_column_is_named(case):
    name, frame, col = case
    with pytest.raises(ValueError, match=f"'{col}'.*not found"):
        _fit(name, frame.drop(columns=col))


def test_duplicated_column_names(case):
    name, frame, col = case
    dup = pd.concat([frame, frame[[col]]], axis=1)
    with pytest.raises(ValueError, match="duplicated column names"):
        _fit(name, dup)
    cls, _, roles, _ = CASES[name]
    with pytest.raises(ValueError, match="more than once"):
        cls(**TINY).fit(frame, **{**roles, "outcome": ["y", "y"]})


def test_same_column_in_two_roles(case):
    name, frame, col = case
    treatment = "t" if name == "DFIV" else "a"
    with pytest.raises(ValueError, match=f"'{treatment}' is given both"):
        _fit(name, frame, outcome=treatment)


def test_non_numeric_treatment_says_encode(case):
    # (strings among instruments and proxies are categorical and one-hot encoded: test_conventions.py)
    name, frame, _ = case
    col = CASES[name][2]["treatment"]
    frame[col] = ["a", "b"] * (N // 2)
    with pytest.raises(ValueError, match=f"'{col}' has non-numeric dtype.*encode"):
        _fit(name, frame)


def test_nullable_dtype_with_missing_values(case):
    name, frame, col = case
    frame[col] = pd.array(np.round(frame[col] * 10).astype(int), dtype="Int64")
    _fit(name, frame)  # a nullable dtype without missing values is fine
    frame.loc[3, col] = pd.NA
    with pytest.raises(ValueError, match=f"'{col}' has 1 missing value"):
        _fit(name, frame)


def test_one_and_two_dimensional_arrays_give_the_same_fit():
    f = _iv_frame()
    one = DFIV(**TINY).fit(f["y"].to_numpy(), f["t"].to_numpy(), Z=f["z"].to_numpy())
    two = DFIV(**TINY).fit(f[["y"]].to_numpy(), f[["t"]].to_numpy(), Z=f[["z"]].to_numpy())
    np.testing.assert_array_equal(one.predict([0.0, 1.0]), two.predict([[0.0], [1.0]]))


def test_fewer_rows_than_one_batch_warns_and_fits(case):
    name, frame, _ = case
    cls, _, roles, _ = CASES[name]
    with pytest.warns(UserWarning, match="batch_size=512 exceeds the 40 training rows"):
        est = cls(n_estimators=1, n_epochs=1, batch_size=512, random_state=0).fit(frame.iloc[:100], **roles)
    assert np.isfinite(est.predict(frame.iloc[:5])).all()


def test_weak_instrument_warns_with_first_stage_statistic():
    f = _iv_frame()
    f["z"] = 2.0 * f["x"] + 1e-9 * rng.normal(size=N)  # collinear with the covariates
    with pytest.warns(WeakInstrumentWarning, match=r"instruments: .*weak instrument.*F"):
        est = DFIV(**TINY).fit(f, **IV_ROLES)
    assert est.first_stage_f_ < 10


def test_a_constant_instrument_is_an_error_naming_the_instruments():
    f = _iv_frame()
    f["z"] = 3.0
    with pytest.raises(ValueError, match="instruments: every instrument column is constant"):
        DFIV(**TINY).fit(f, **IV_ROLES)


def test_strong_instrument_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeakInstrumentWarning)
        est = DFIV(**TINY).fit(_iv_frame(), **IV_ROLES)
    assert est.first_stage_f_ > 10


def test_extrapolating_dose_response_warns(case):
    name, frame, _ = case
    est = _fit(name, frame.drop(columns="x") if name == "DFIV" else frame,
               **({"covariates": None} if name == "DFIV" else {}))
    with pytest.warns(UserWarning, match="outside the training range"):
        est.dose_response([100.0])


def test_diverging_training_stops_with_stage_and_remedy_and_leaves_estimator_unfitted(case):
    name, frame, _ = case
    cls, _, roles, _ = CASES[name]
    est = cls(n_estimators=1, n_epochs=3, batch_size=64, random_state=0, lr=1e30)
    with pytest.raises(FloatingPointError, match=r"stage.*training diverged.*smaller lr"):
        est.fit(frame, **roles)
    assert not hasattr(est, "heads_") and not hasattr(est, "nets_")


def test_load_rejects_foreign_and_corrupt_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a deepcausal model file"):
        DFIV.load(tmp_path / "foreign.pt")
    est = DFIV(**TINY).fit(_iv_frame(), **IV_ROLES)
    est.save(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable deepcausal model"):
        DFIV.load(tmp_path / "cut.pt")
    with pytest.raises(ValueError, match="holds a DFIV, not a DFPV"):
        DFPV.load(tmp_path / "m.pt")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".deepcausal-")] == []  # no temp left


def test_full_batch_mode_refuses_what_cannot_fit_in_memory():
    with pytest.raises(MemoryError, match="mode='proximal'"):
        DFIV._check_full_batch_memory(10**12, {"T": 1})
