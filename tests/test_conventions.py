"""Library conventions (issue 15): feature names, categorical inputs, messages.

Each test failed on the code before issue 15 (no ``feature_names_in_``,
categorical columns refused, messages without the column names), or pins a fix already on main that had no
test of its own (tiny data, the treatment in row-count messages).
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from deepcausal import DFIV, DFPV
from deepcausal.datasets import demand, demand_proxy

QUICK = dict(n_epochs=2, n_bootstrap=0, random_state=0)


@pytest.fixture(scope="module")
def iv():
    return demand(n=600, seed=0)


@pytest.fixture(scope="module")
def pv():
    return demand_proxy(n=600, seed=0)


@pytest.fixture(scope="module")
def iv_fit(iv):
    return DFIV(**QUICK).fit(iv.train, **iv.fit_kwargs())


def card_like(n=800, seed=0):
    """Returns to schooling in the shape of Card (1995): a categorical region, two binary instruments."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "exper": rng.uniform(0, 20, n),
        "region": pd.Categorical(rng.choice(["northeast", "south", "west", "midwest"], n)),
        "nearc4": rng.integers(0, 2, n),
        "nearc2": rng.integers(0, 2, n),
    })
    ability = rng.normal(size=n)  # the confounder
    df["educ"] = 12 + 1.5 * df["nearc4"] + 0.5 * df["nearc2"] + ability + rng.normal(size=n)
    df["lwage"] = (5 + 0.08 * df["educ"] + 0.03 * df["exper"] + 0.2 * (df["region"] == "south").astype(float)
                   + 0.3 * ability + 0.2 * rng.normal(size=n))
    return df


# ---- feature_names_in_ / n_features_in_ ------------------------------------------------------------------
def test_feature_names_are_the_input_columns_in_role_order(iv, pv, iv_fit):
    assert list(iv_fit.feature_names_in_) == ["price", "cost", "time", "customer_type"]
    assert iv_fit.n_features_in_ == 4
    est = DFPV(**QUICK).fit(pv.train, **pv.fit_kwargs())
    assert list(est.feature_names_in_) == ["price", "cost1", "cost2", "views"] and est.n_features_in_ == 4
    # arrays without names: a count, no names (scikit-learn's convention)
    plain = DFIV(**QUICK).fit(iv.train["sales"].to_numpy(), iv.train["price"].to_numpy(),
                              X=iv.train[["time", "customer_type"]].to_numpy(), Z=iv.train["cost"].to_numpy())
    assert plain.n_features_in_ == 4 and not hasattr(plain, "feature_names_in_")
    # a categorical column counts once, however many levels it has
    card = card_like()
    cat = DFIV(**QUICK).fit(card, outcome="lwage", treatment="educ", instruments=["nearc4", "nearc2"],
                            covariates=["exper", "region"])
    assert list(cat.feature_names_in_) == ["educ", "nearc4", "nearc2", "exper", "region"]
    assert cat.n_features_in_ == 5 and cat.dims_["X"] == 1 + 4


# ---- categorical inputs --------------------------------------------------------------------------------
def test_categorical_covariate_is_one_hot_encoded_with_the_levels_kept():
    card = card_like()
    original = card.copy()
    roles = dict(outcome="lwage", treatment="educ", instruments=["nearc4", "nearc2"], covariates=["exper", "region"])
    est = DFIV(**QUICK).fit(card, **roles)
    pd.testing.assert_frame_equal(card, original)  # never modified
    assert est.encoders_ == {"X": {"region": ["midwest", "northeast", "south", "west"]}}  # categories' order
    assert est.columns_["X"] == ["exper", "region"] and est.dims_["X"] == 5
    # the same fit as the user's own one-hot encoding (all levels, in the same order)
    dummies = pd.get_dummies(card["region"], dtype=float)
    manual = pd.concat([card.drop(columns="region"), dummies], axis=1)
    ref = DFIV(**QUICK).fit(manual, **{**roles, "covariates": ["exper", *dummies.columns]})
    np.testing.assert_array_equal(est.predict(card), ref.predict(manual))
    # the level set is applied at predict: strings or a category dtype with other categories work alike
    as_text = card.assign(region=card["region"].astype(str))
    np.testing.assert_array_equal(est.predict(as_text), est.predict(card))
    assert est.effect(card.iloc[:10], T0=12, T1=14).shape == (10,)


def test_unseen_level_at_predict_names_the_column_and_the_level():
    card = card_like()
    est = DFIV(**QUICK).fit(card, outcome="lwage", treatment="educ", instruments="nearc4",
                            covariates=["region", "exper"])
    new = card.iloc[:5].assign(region=["south", "atlantis", "west", "south", "north pole"])
    with pytest.raises(ValueError, match=r"column 'region' has level\(s\) 'atlantis', 'north pole' not seen at fit"):
        est.predict(new)
    with pytest.raises(ValueError, match=r"one-hot encoded the categorical column\(s\) \['region'\].*DataFrame"):
        est.predict(card["educ"].to_numpy(), card[["exper"]].to_numpy())


@pytest.mark.parametrize("kind", ["object", "str", "bool", "category"])
def test_object_string_bool_and_category_columns_among_instruments_and_proxies(kind):
    rng = np.random.default_rng(1)
    n = 500
    group = rng.choice(["lo", "mid", "hi"], n)
    shift = pd.Series(group).map({"lo": -1.0, "mid": 0.0, "hi": 1.0}).to_numpy()
    u = rng.normal(size=n)
    frame = pd.DataFrame({"t": 2 * shift + u + rng.normal(size=n), "w": u + rng.normal(size=n)})
    frame["y"] = np.sin(frame["t"]) + u
    col = {"object": pd.Series(group, dtype=object), "str": pd.Series(group, dtype="str"),
           "bool": pd.Series(group == "hi"), "category": pd.Series(pd.Categorical(group))}[kind]
    frame["g"] = col.to_numpy() if kind != "category" else col
    levels = 1 if kind == "bool" else 3
    est = DFIV(**QUICK).fit(frame, outcome="y", treatment="t", instruments="g")
    assert est.dims_["Z"] == levels and ("Z" in est.encoders_) == (kind != "bool")
    proxy = DFPV(**QUICK).fit(frame, outcome="y", treatment="t", treatment_proxy="g", outcome_proxy="w")
    assert proxy.dims_["Z"] == levels
    assert np.isfinite(proxy.predict(frame)).all()


def test_categorical_covariates_in_array_mode():
    card = card_like()
    X = card[["exper", "region"]]
    est = DFIV(**QUICK).fit(card["lwage"], card["educ"], X=X, Z=card[["nearc4", "nearc2"]])
    assert est.encoders_ == {"X": {"region": ["midwest", "northeast", "south", "west"]}}
    assert est.predict(card["educ"].to_numpy()[:7], X.iloc[:7]).shape == (7,)


@pytest.mark.parametrize("role", ["treatment", "outcome"])
def test_non_numeric_treatment_or_outcome_is_an_error_naming_the_column(role):
    card = card_like().assign(level=lambda f: np.where(f["educ"] > 12, "high", "low"))
    roles = dict(outcome="lwage", treatment="educ", instruments="nearc4")
    roles[role] = "level"
    with pytest.raises(ValueError, match=f"{role}: column 'level' has non-numeric dtype.*this role must be numeric"):
        DFIV(**QUICK).fit(card, **roles)
    with pytest.raises(ValueError, match=r"T \(treatment\): column 'educ' has non-numeric dtype"):
        DFIV(**QUICK).fit(card["lwage"], card[["educ"]].astype(str), Z=card["nearc4"])


# ---- messages and tiny data ----------------------------------------------------------------------------
def test_predict_row_mismatch_speaks_of_the_treatment(iv, iv_fit):
    T = iv.test_X[["price"]].to_numpy()
    X = iv.test_X[["time", "customer_type"]].to_numpy()
    with pytest.raises(ValueError, match=r"X \(covariates\) has 6 rows but the treatment has 5"):
        iv_fit.predict(T[:5], X[:6])


def test_missing_covariate_columns_are_named(iv, iv_fit):
    with pytest.raises(ValueError, match=r"lacks its column\(s\) \['customer_type'\]"):
        iv_fit.predict(iv.test_X.drop(columns="customer_type"))
    with pytest.raises(ValueError, match=r"has 1 columns, the model was fitted with 2 \['time', 'customer_type'\]"):
        iv_fit.predict(iv.test_X[["price"]].to_numpy(), iv.test_X[["time"]].to_numpy())


def test_integer_column_names_work_end_to_end(iv):
    frame = iv.train[["sales", "price", "cost", "time", "customer_type"]].copy()
    frame.columns = range(5)
    est = DFIV(**QUICK).fit(frame, outcome=0, treatment=1, instruments=2, covariates=[3, 4])
    assert list(est.feature_names_in_) == [1, 2, 3, 4]
    assert np.isfinite(est.predict(frame)).all()
    assert list(est.dose_response([15.0], X=frame[[3, 4]]).columns) == [1, "estimate"]


@pytest.mark.parametrize("n", [5, 20])
def test_tiny_data_is_refused(n, iv):
    with pytest.raises(ValueError, match="too few|at least 20"):
        DFIV(**QUICK).fit(iv.train.iloc[:n], **iv.fit_kwargs())


def test_default_batch_is_capped_at_the_half_without_a_batch_warning(iv):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = DFIV(**QUICK).fit(iv.train.iloc[:300], **iv.fit_kwargs())
    messages = [str(w.message) for w in caught]
    assert not any("batch_size" in m for m in messages)
    assert any("only 150 rows" in m for m in messages)  # few rows per stage: warned
    assert est.settings_["batch_size"] == est.settings_["n_train"] == 150 - est.settings_["n_val"]
