"""Ensemble members trained as one stacked computation (deepcausal._stacked, issue 29)."""

import numpy as np
import pytest
import torch
from torch import nn

from deepcausal import DFIV, DFPV, _stacked, _training
from deepcausal.datasets import demand, demand_proxy
from deepcausal.heads import SufficientStats

# Warnings these tests provoke on purpose (short fits the linear check finds shrunk): silenced here so that a
# new one stands out.
pytestmark = [
    pytest.mark.filterwarnings("ignore::deepcausal.exceptions.ShrinkageWarning"),
]

FAST = dict(n_epochs=3, batch_size=128, n_bootstrap=0, random_state=0, verbose=False)


@pytest.fixture(scope="module")
def data():
    return demand(1000, seed=0)


def _member_predictions(est, d):
    return np.stack([m.predict(d.test_X) for m in est.estimators_])


def test_batched_head_solves_equal_one_solve_per_member():
    gen = torch.Generator().manual_seed(0)
    F, Y = torch.randn(3, 200, 7, generator=gen), torch.randn(3, 200, 2, generator=gen)
    W_prev = torch.randn(3, 7, 2, dtype=torch.float64, generator=gen)
    stacked = SufficientStats.from_batch(F, Y).solve(1e-3, 0.1, W_prev)
    for k in range(3):
        alone = SufficientStats.from_batch(F[k], Y[k]).solve(1e-3, 0.1, W_prev[k])
        assert torch.allclose(stacked[k], alone, rtol=1e-5, atol=1e-8)  # float32 products: batched rounding


def test_a_stacked_fit_does_not_depend_on_n_jobs(data):
    # five members in one stack (n_jobs=1) or in stacks of 3 and 2 (n_jobs=2): bit-identical members
    one = DFIV(n_estimators=5, n_jobs=1, **FAST).fit(data.train, **data.fit_kwargs())
    two = DFIV(n_estimators=5, n_jobs=2, **FAST).fit(data.train, **data.fit_kwargs())
    assert np.array_equal(_member_predictions(one, data), _member_predictions(two, data))


@pytest.mark.parametrize("cls, design", [(DFIV, demand), (DFPV, demand_proxy)])
def test_stacked_members_train_as_they_would_alone(cls, design, monkeypatch):
    # Not bit-identical (deepcausal._stacked: batched float32 products round differently, and training
    # amplifies it; after tens of steps stop steps and bootstrap draws can differ). After one epoch, a few
    # steps, the difference has not had time to grow.
    d = design(1000, seed=1)
    params = dict(FAST, n_epochs=1, n_estimators=3, n_jobs=1)
    stacked = cls(**params).fit(d.train, **d.fit_kwargs())
    monkeypatch.setattr(cls, "_stack_members", False)
    alone = cls(**params).fit(d.train, **d.fit_kwargs())
    a, b = _member_predictions(stacked, d), _member_predictions(alone, d)
    assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()
    for m, n in zip(stacked.estimators_, alone.estimators_):
        assert m.stopping_ == n.stopping_
        assert m.history_["step"].tolist() == n.history_["step"].tolist()


def test_each_member_of_a_stack_stops_and_restores_on_its_own(data, monkeypatch):
    """Member 0's held-out loss is scripted to fall, then rise; member 1's to fall forever. Member 0 must stop
    and keep its best check while member 1 trains on; its kept model must be the model a fit ending at that
    check gives."""
    script = iter([1.0, 0.8, 0.6, 0.5, 0.9, 1.2, 1.5, 1.9, 2.4, 3.0] + [4.0] * 100)
    falling = iter(np.linspace(1.0, 0.1, 200))
    original = _training.held_out_losses

    def scripted(*args):
        out = original(*args)
        out["val_stage2_loss"] = np.array([next(script), next(falling)])
        return out

    monkeypatch.setattr(_training, "held_out_losses", scripted)
    params = dict(FAST, n_estimators=2, n_jobs=1, batch_size=64, n_epochs=8, n_iter_no_change=2, refit_heads=False)
    est = DFIV(**params).fit(data.train, **data.fit_kwargs())
    first, second = est.estimators_
    assert first.stopping_["reason"] == "early_stopping" and second.stopping_["reason"] == "max_steps"
    kept = first.history_.loc[first.history_["kept"]].iloc[0]
    assert kept.name == 3 and first.stopping_["steps"] < second.stopping_["steps"]
    monkeypatch.setattr(_training, "held_out_losses", original)
    # the same members, trained with a constant rate to exactly that check without early stopping
    epochs = int(kept["epoch"])
    assert kept["step"] == epochs * first.settings_["steps_per_epoch"]
    short = DFIV(**{**params, "n_epochs": epochs, "early_stopping": False}).fit(data.train, **data.fit_kwargs())
    assert np.array_equal(first.predict(data.test_X, heads="current"),
                          short.estimators_[0].predict(data.test_X, heads="current"))


def test_networks_that_cannot_stack_train_alone(data, monkeypatch):
    def tanh_net(d_in):
        return nn.Sequential(nn.Linear(d_in, 8), nn.Tanh())

    params = dict(FAST, n_estimators=2, n_jobs=1, instrument_net=tanh_net)
    assert not _stacked.stackable([nn.ModuleDict({"instrument": tanh_net(3)})])
    no_bias = nn.Sequential(nn.Linear(3, 8, bias=False), nn.ReLU())
    assert not _stacked.stackable([nn.ModuleDict({"instrument": no_bias})])
    assert _stacked.stackable([nn.ModuleDict({"instrument": nn.Sequential(nn.Linear(3, 8), nn.ReLU())})] * 2)
    est = DFIV(**params).fit(data.train, **data.fit_kwargs())
    monkeypatch.setattr(DFIV, "_stack_members", False)
    alone = DFIV(**params).fit(data.train, **data.fit_kwargs())
    assert np.array_equal(_member_predictions(est, data), _member_predictions(alone, data))


def test_a_stack_that_diverges_trains_its_members_alone(data, monkeypatch):
    def diverging(members, caught, truth_val=None):
        raise FloatingPointError("stage 2: the loss became nan")

    monkeypatch.setattr(_stacked, "train_stacked", diverging)
    params = dict(FAST, n_estimators=2, n_jobs=1)
    est = DFIV(**params).fit(data.train, **data.fit_kwargs())
    monkeypatch.setattr(DFIV, "_stack_members", False)
    alone = DFIV(**params).fit(data.train, **data.fit_kwargs())
    assert np.array_equal(_member_predictions(est, data), _member_predictions(alone, data))


def test_a_validation_design_records_the_mse_without_changing_the_model(data):
    # issue 34, item 8: with validation= the members trained alone, not as a stack: another model
    params = dict(FAST, n_estimators=2, n_jobs=1)
    plain = DFIV(**params).fit(data.train, **data.fit_kwargs())
    tracked = DFIV(**params).fit(data.train, **data.fit_kwargs(), validation=(data.test_X, data.test_truth))
    np.testing.assert_array_equal(_member_predictions(tracked, data), _member_predictions(plain, data))
    np.testing.assert_array_equal(tracked.predict(data.test_X), plain.predict(data.test_X))
    columns = ["val_mse_current", "val_mse_refit"]
    assert not set(columns) & set(plain.history_.columns)
    assert tracked.history_[columns].notna().all().all()
    for m in tracked.estimators_:  # each member's own structural MSE: its kept check's is its model's
        h = m.history_
        kept = h[h["kept"]].iloc[-1] if h["kept"].any() else h.iloc[-1]
        mse = np.mean((m.predict(data.test_X, heads="current") - data.test_truth) ** 2)
        assert kept["val_mse_current"] == pytest.approx(mse, rel=1e-6)
