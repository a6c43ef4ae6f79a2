"""What a new user tripped on (issue 34): silent misuse and rough edges of the reports."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from deepcausal import DFIV
from deepcausal.inference import check_alpha

QUICK = dict(n_epochs=2, batch_size=128, n_bootstrap=20, random_state=0, n_jobs=1, n_estimators=2, verbose=False)
MISCOVERAGE = "alpha is the miscoverage: alpha=0.05 gives a 95% band"


def _schooling(n=600, seed=0) -> pd.DataFrame:
    """Integer years of schooling: 15% at 10, 45% at 12, 40% at 16, so that Q1 = median = 12."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    e = rng.normal(size=n)
    latent = z + 0.5 * e
    educ = np.where(latent < np.quantile(latent, 0.15), 10, np.where(latent < np.quantile(latent, 0.6), 12, 16))
    return pd.DataFrame({"wage": 0.1 * educ + e, "educ": educ.astype(float), "z": z})


@pytest.fixture(scope="module")
def fitted():
    data = _schooling()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DFIV(**QUICK).fit(data, outcome="wage", treatment="educ", instruments="z")
    return est


# ---- 12. silent misuse ---------------------------------------------------------------------------
def test_check_alpha_refuses_a_confidence_level():
    assert check_alpha(0.05) == 0.05 and check_alpha(0.5) == 0.5
    with pytest.raises(ValueError, match=MISCOVERAGE):
        check_alpha(0.95)


@pytest.mark.parametrize("method", ["predict_interval", "effect_interval", "ate_interval", "marginal_effect_interval",
                                    "marginal_ate_interval", "dose_response"])
def test_every_interval_method_refuses_alpha_above_one_half(fitted, method):
    t = np.array([12.0, 16.0])
    call = {
        "predict_interval": lambda a: fitted.predict_interval(t, alpha=a),
        "effect_interval": lambda a: fitted.effect_interval(T0=t, T1=t - 1.0, alpha=a),
        "ate_interval": lambda a: fitted.ate_interval(T0=t, T1=t - 1.0, alpha=a),
        "marginal_effect_interval": lambda a: fitted.marginal_effect_interval(t, alpha=a),
        "marginal_ate_interval": lambda a: fitted.marginal_ate_interval(t, alpha=a),
        "dose_response": lambda a: fitted.dose_response(t, alpha=a),
    }[method]
    with pytest.raises(ValueError, match=r"alpha.*" + MISCOVERAGE):
        call(0.95)
    call(0.5)  # a 50% band is allowed


def _range_warnings(fn) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [w for w in caught if "outside the training range" in str(w.message)]


@pytest.mark.parametrize("method", ["predict", "predict_interval", "effect", "effect_interval", "marginal_effect"])
def test_queries_far_outside_the_training_range_warn_as_dose_response_does(fitted, method):
    inside, far = np.array([10.0, 12.0, 16.0]), np.array([12.0, 40.0])  # 10 and 16: the training min and max
    call = {
        "predict": lambda t: fitted.predict(t),
        "predict_interval": lambda t: fitted.predict_interval(t, alpha=0.05),
        "effect": lambda t: fitted.effect(T0=np.full(len(t), 12.0), T1=t),
        "effect_interval": lambda t: fitted.effect_interval(T0=t, T1=np.full(len(t), 12.0), alpha=0.05),
        "marginal_effect": lambda t: fitted.marginal_effect(t),
    }[method]
    category = type(_range_warnings(lambda: fitted.dose_response([40.0]))[0].message)
    caught = _range_warnings(lambda: call(far))
    assert len(caught) == 1 and caught[0].category is category
    assert "'educ'" in str(caught[0].message) and "extrapolation" in str(caught[0].message)
    assert _range_warnings(lambda: call(inside)) == []  # the training range's ends included


@pytest.mark.parametrize("grid", ["15", b"15", ["12", "16"]])
def test_a_treatment_grid_of_text_is_refused(fitted, grid):
    with pytest.raises(ValueError, match="treatment_grid"):
        fitted.dose_response(grid)


def _other_files(tmp_path):
    (tmp_path / "data.csv").write_text("wage,educ,z\n1.0,12,0.3\n")
    (tmp_path / "notes.txt").write_text("my model\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "tensors.pt")
    torch.save(nn.Linear(2, 1), tmp_path / "module.pt")  # a pickled torch module: refused, and not a model file
    return ["data.csv", "notes.txt", "empty.pt", "tensors.pt", "module.pt"]


def test_loading_a_file_that_is_not_a_model_says_so(tmp_path):
    for name in _other_files(tmp_path):
        with pytest.raises(ValueError, match="is not a deepcausal model file") as info:
            DFIV.load(tmp_path / name)
        assert "pop from empty list" not in str(info.value)
    with pytest.raises(ValueError, match="CSV"):
        DFIV.load(tmp_path / "data.csv")
    with pytest.raises(ValueError, match="empty"):
        DFIV.load(tmp_path / "empty.pt")


# ---- 13. rough edges in results ------------------------------------------------------------------
def test_summary_rows_on_integer_treatment_are_distinct(fitted):
    table = fitted.summary.estimates
    assert table.index.is_unique
    at_12 = [label for label in table.index if label.startswith("h(educ = 12)")]
    assert at_12 == ["h(educ = 12) [Q1, median]"], list(table.index)
    assert "h(educ = 16) [Q3]" in table.index


SHOWN_AS = {"std_error": "std. error", "p_value": "p-value", "tsls": "2SLS", "tsls_se": "2SLS s.e.",
            "difference_se": "difference s.e.", "ame": "curve AME", "ame_lower": "AME lower", "ame_upper": "AME upper"}


def test_printed_summary_shows_every_column_of_its_tables(fitted):
    summary = fitted.summary
    with pd.option_context("display.width", 40, "display.max_columns", 3, "display.max_colwidth", 8):
        text = str(summary)
    lines = text.splitlines()
    for name in ("estimates", "first_stage", "linear_check"):
        table = getattr(summary, name)
        assert table is not None, name
        for col in table.columns:
            shown = SHOWN_AS.get(col, col)
            # the column's heading sits on the table's header line (not only in a note below it)
            assert any(shown in line and line.lstrip() != line for line in lines), (name, col, text)
