"""LastLayerRegressor: the closed-form head beats a trained head, the scikit-learn contract, pooled heads."""

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.datasets import make_friedman1
from sklearn.metrics import r2_score
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from deepcausal.heads import ridge_head
from deepcausal.regression import LastLayerRegressor, pooled_rows


@pytest.fixture(scope="module")
def friedman():
    X, y = make_friedman1(n_samples=400, noise=0.5, random_state=0)
    return X, y


def _train_mse(model, X, y):
    return float(np.mean((model.predict(X, head="current") - y) ** 2))


def test_proximal_head_reaches_lower_training_loss_than_adam_head(friedman):
    # Same backbone, optimiser (Adam, lr 1e-3), batches and number of steps; only the head differs.
    X, y = friedman
    common = dict(optimizer="adam", lr=1e-3, batch_size=32, max_steps=200, refit_head=False, random_state=0)
    proximal = LastLayerRegressor(head="proximal", lam=0.1, **common).fit(X, y)
    adam = LastLayerRegressor(head="adam", **common).fit(X, y)
    mse_prox, mse_adam = _train_mse(proximal, X, y), _train_mse(adam, X, y)
    assert mse_prox < 0.8 * mse_adam, (mse_prox, mse_adam)


# Float64 backbone: with float32 the prediction of a row depends on how BLAS blocks the batch at the
# 1e-7 relative level, which fails check_methods_subset_invariance's rtol of 1e-7 (not a contract breach).
_sklearn_checks = parametrize_with_checks([LastLayerRegressor(n_epochs=10, random_state=0, dtype="float64")])


@_sklearn_checks
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_is_a_scikit_learn_regressor_and_scores_with_its_r2(friedman):
    X, y = friedman
    model = LastLayerRegressor(max_steps=20, random_state=0)
    assert isinstance(model, BaseEstimator) and isinstance(model, RegressorMixin)
    assert "LastLayerRegressor" in model._repr_html_()  # scikit-learn's HTML repr comes with the base class
    model.fit(X, y)
    w = np.linspace(0.5, 2.0, len(y))
    pred = model.predict(X)
    assert model.score(X, y) == pytest.approx(r2_score(y, pred))
    assert model.score(X, y, sample_weight=w) == pytest.approx(r2_score(y, pred, sample_weight=w))


class _PerPosition(nn.Module):
    """(n, P) → (n, P, 3) features: a small nonlinearity of the value and its neighbour at each point."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 3)

    def forward(self, u):
        pair = torch.stack([u, torch.roll(u, 1, dims=1)], dim=-1)
        return torch.tanh(self.lin(pair))


def test_position_pooled_closed_form_equals_flattened_solve():
    torch.manual_seed(0)
    n, P, k, beta = 7, 5, 2, 0.01
    feats = torch.randn(n, P, 3, dtype=torch.float64)
    Y = torch.randn(n, P, k, dtype=torch.float64)
    # Flattened by hand: one row [φ(x_i)_p, 1] per (sample, position).
    F_rows = torch.stack([torch.cat([feats[i, p], torch.ones(1, dtype=torch.float64)])
                          for i in range(n) for p in range(P)])
    Y_rows = torch.stack([Y[i, p] for i in range(n) for p in range(P)])
    F, Yp = pooled_rows(feats, Y)
    assert torch.equal(F, F_rows) and torch.equal(Yp, Y_rows)
    expected = torch.linalg.solve(F_rows.T @ F_rows / (n * P) + beta * torch.eye(4, dtype=torch.float64),
                                  F_rows.T @ Y_rows / (n * P))
    torch.testing.assert_close(ridge_head(F, Yp, beta), expected)


def test_regressor_with_position_features_refits_the_pooled_head():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(60, 16))
    y = np.roll(u, 1, axis=1) ** 2 + 0.5 * u  # (n, positions)
    model = LastLayerRegressor(backbone=_PerPosition(), head="proximal", max_steps=20, batch_size=8,
                               dtype="float64", standardize=False, random_state=0).fit(u, y)
    feats = torch.as_tensor(model.features(u))
    assert feats.shape == (60, 16, 3)
    F_rows = torch.cat([feats.reshape(-1, 3), torch.ones(60 * 16, 1, dtype=torch.float64)], dim=1)
    expected = ridge_head(F_rows, torch.as_tensor(y).reshape(-1, 1), model.beta)
    torch.testing.assert_close(model.head_, expected)
    pred = model.predict(u)
    assert pred.shape == y.shape
    np.testing.assert_allclose(pred, (F_rows @ expected).reshape(60, 16).numpy(), rtol=1e-10, atol=1e-12)
    y3 = np.stack([y, -y], axis=-1)  # (n, positions, k)
    assert LastLayerRegressor(backbone=_PerPosition(), max_steps=3, random_state=0).fit(u, y3).predict(u).shape == y3.shape


@pytest.mark.parametrize("head", ["proximal", "ridge", "full", "sgd", "adam"])
def test_head_modes_fit_multioutput_and_record_history(friedman, head):
    X, y = friedman
    Y = np.column_stack([y, np.sin(X[:, 0])])
    model = LastLayerRegressor(head=head, max_steps=30, log_every=10, batch_size=64, random_state=0)
    model.fit(X[:300], Y[:300], eval_set=(X[300:], Y[300:]), eval_metric=lambda a, b: float(np.mean((a - b) ** 2)))
    assert model.predict(X[:5]).shape == (5, 2)
    assert list(model.history_["step"]) == [10, 20, 30]
    assert {"train_loss", "val_loss", "val_metric", "time_s", "epoch"} <= set(model.history_.columns)
    assert model.history_["train_loss"].iloc[-1] < model.history_["train_loss"].iloc[0]
    assert model.head_.shape == (33, 2) and model.n_steps_ == 30


def test_refit_head_lowers_training_loss_and_current_head_is_kept(friedman):
    X, y = friedman
    model = LastLayerRegressor(max_steps=60, batch_size=16, random_state=0).fit(X, y)
    assert not torch.equal(model.head_, model.current_head_)
    assert np.mean((model.predict(X) - y) ** 2) <= _train_mse(model, X, y) + 1e-12


def test_fixed_seed_is_bit_reproducible_and_leaves_global_rng_alone(friedman):
    X, y = friedman
    state = torch.random.get_rng_state()
    a = LastLayerRegressor(max_steps=40, random_state=3).fit(X, y)
    b = LastLayerRegressor(max_steps=40, random_state=3).fit(X, y)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(a.predict(X), b.predict(X))
    c = LastLayerRegressor(max_steps=40, random_state=4).fit(X, y)
    assert not np.array_equal(a.predict(X), c.predict(X))


def test_user_backbone_is_copied_and_clone_works(friedman):
    X, y = friedman
    net = nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.ReLU())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    model = LastLayerRegressor(backbone=net, max_steps=20, random_state=0).fit(X, y)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    twin = clone(model)
    assert twin.get_params()["max_steps"] == 20 and not hasattr(twin, "head_")
    assert np.isfinite(model.score(X, y))


def test_save_load_gives_identical_predictions(friedman, tmp_path):
    X, y = friedman
    model = LastLayerRegressor(max_steps=30, random_state=0).fit(X, y)
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = LastLayerRegressor.load(path)
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert loaded.history_.equals(model.history_)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left behind
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable"):
        LastLayerRegressor.load(tmp_path / "junk.pt")


def test_bad_inputs_raise_clear_errors(friedman):
    X, y = friedman
    from deepcausal import NotFittedError

    with pytest.raises(NotFittedError):
        LastLayerRegressor().predict(X)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="^X contains NaN"):
        LastLayerRegressor(max_steps=2).fit(Xn, y)
    with pytest.raises(ValueError, match="^y has 399 rows but X has 400"):
        LastLayerRegressor(max_steps=2).fit(X, y[:-1])
    with pytest.raises(ValueError, match="y requires y to be passed|requires y to be passed"):
        LastLayerRegressor(max_steps=2).fit(X, None)
    with pytest.raises(ValueError, match="head must be one of"):
        LastLayerRegressor(head="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="lam must be finite and >= 0"):
        LastLayerRegressor(lam=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        LastLayerRegressor(batch_size=0).fit(X, y)
    model = LastLayerRegressor(max_steps=2).fit(X, y)
    with pytest.raises(ValueError, match="X has 9 features, but LastLayerRegressor is expecting 10"):
        model.predict(X[:, :9])
    with pytest.raises(ValueError, match="backbone must return"):
        LastLayerRegressor(backbone=nn.Flatten(0), max_steps=2).fit(X, y)
    with pytest.raises(ValueError, match=r"y must be \(n, 16\)"):
        LastLayerRegressor(backbone=_PerPosition(), max_steps=2).fit(np.zeros((10, 16)), np.zeros((10, 15)))
