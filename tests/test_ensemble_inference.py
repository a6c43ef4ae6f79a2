"""Ensembles, held-out stage losses, early stopping and confidence bands (issues 13 and 14)."""

import re

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from deepcausal import DFIV, DFPV
from deepcausal import _training
from deepcausal.datasets import demand, demand_proxy, lowdim
from deepcausal.ensemble import member_seeds
from deepcausal.inference import combine_draws

# Warnings these tests provoke on purpose (short fits the linear check finds shrunk, test grids beyond the
# training data, divergences provoked on purpose): silenced here so that a new one stands out.
pytestmark = [
    pytest.mark.filterwarnings("ignore::deepcausal.exceptions.ShrinkageWarning"),
    pytest.mark.filterwarnings("ignore:.*(values outside|extends outside) the training range:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*training diverged:RuntimeWarning"),
]

QUICK = dict(n_epochs=3, batch_size=128, n_bootstrap=50, random_state=0, n_jobs=1, n_estimators=1)


@pytest.fixture(scope="module")
def small():
    return demand(n=500, rho=0.5, seed=5)


@pytest.fixture(scope="module")
def ensemble(small):
    return DFIV(**{**QUICK, "n_estimators": 3}).fit(small.train, **small.fit_kwargs())


def _linear_iv(n, seed, slope=1.5):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    e = rng.normal(size=n)
    t = z @ [1.0, -0.7] + e
    return 2.0 * e + slope * t - 2.0, t, z


# ---- ensembles ------------------------------------------------------------------------------------
def test_ensemble_is_the_average_of_its_members_fitted_one_by_one(ensemble, small):
    seeds = member_seeds(0, 3)
    singles = [DFIV(**{**QUICK, "random_state": s}).fit(small.train, **small.fit_kwargs()) for s in seeds]
    test = small.test_X.iloc[:40]
    own = np.mean([m.predict(test) for m in ensemble.estimators_], axis=0)
    np.testing.assert_allclose(ensemble.predict(test), own, rtol=1e-12, atol=1e-12)
    # the members train as one stack (deepcausal._stacked): each as it would alone, up to the rounding of
    # batched products, which a few epochs of training carry to about 1e-4 of the outcome's scale
    expected = np.mean([m.predict(test) for m in singles], axis=0)
    np.testing.assert_allclose(ensemble.predict(test), expected, rtol=0, atol=1e-3 * np.abs(expected).max())
    assert len(ensemble.estimators_) == 3
    assert len({round(float(m.predict(test)[0]), 8) for m in ensemble.estimators_}) == 3  # members differ
    assert set(ensemble.history_["member"]) == {0, 1, 2}


def test_parallel_members_give_bit_identical_results(ensemble, small):
    par = DFIV(**{**QUICK, "n_estimators": 3, "n_jobs": 2}).fit(small.train, **small.fit_kwargs())
    test = small.test_X.iloc[:40]
    np.testing.assert_array_equal(par.predict(test), ensemble.predict(test))
    lo1, hi1 = par.predict_interval(test)
    lo2, hi2 = ensemble.predict_interval(test)
    np.testing.assert_array_equal(lo1, lo2)
    np.testing.assert_array_equal(hi1, hi2)


@pytest.mark.parametrize("bad", [dict(n_estimators=0), dict(n_estimators=2.5), dict(n_jobs=0),
                                 dict(n_bootstrap=1), dict(validation_fraction=0.7)])
def test_bad_ensemble_settings_name_the_parameter(bad, small):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        DFIV(**{**QUICK, **bad}).fit(small.train, **small.fit_kwargs())


# ---- intervals ------------------------------------------------------------------------------------
def test_bands_contain_the_estimate_and_widen_with_confidence(ensemble, small):
    X = small.train[["time", "customer_type"]].iloc[:30]
    grid = [14.0, 18.0, 22.0]
    narrow = ensemble.dose_response(grid, X, alpha=0.2)
    wide = ensemble.dose_response(grid, X, alpha=0.01)
    uniform = ensemble.dose_response(grid, X, alpha=0.2, band="uniform")
    for f in (narrow, wide, uniform):
        assert list(f.columns) == ["price", "estimate", "std_error", "lower", "upper"]
        assert (f["lower"] <= f["estimate"]).all() and (f["estimate"] <= f["upper"]).all()
    assert (wide["upper"] - wide["lower"] >= narrow["upper"] - narrow["lower"]).all()
    assert (uniform["upper"] - uniform["lower"] >= narrow["upper"] - narrow["lower"] - 1e-12).all()
    np.testing.assert_allclose(narrow["estimate"], ensemble.dose_response(grid, X)["estimate"])
    lo, hi = ensemble.predict_interval(small.test_X.iloc[:10], alpha=0.1)
    pred = ensemble.predict(small.test_X.iloc[:10])
    assert (lo <= pred).all() and (pred <= hi).all()
    lo, hi = ensemble.effect_interval(X, T0=15.0, T1=20.0)
    eff = ensemble.effect(X, T0=15.0, T1=20.0)
    assert (lo <= eff).all() and (eff <= hi).all()


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, "x"])
def test_alpha_outside_the_unit_interval_is_rejected(ensemble, small, alpha):
    with pytest.raises(ValueError, match="alpha"):
        ensemble.predict_interval(small.test_X.iloc[:5], alpha=alpha)


def test_intervals_of_a_model_without_draws_say_how_to_get_them(small):
    est = DFIV(**{**QUICK, "n_bootstrap": 0}).fit(small.train, **small.fit_kwargs())
    with pytest.raises(ValueError, match="n_bootstrap"):
        est.predict_interval(small.test_X.iloc[:5])
    est.predict(small.test_X.iloc[:5])  # point predictions still work


def test_combine_draws_follows_rubins_rules():
    rng = np.random.default_rng(0)
    ests = rng.normal(size=(4, 3))
    devs = [rng.normal(scale=2.0, size=(500, 3)) for _ in range(4)]
    out = combine_draws(ests, devs, 0.05)
    within = np.mean([d.var(axis=0, ddof=1) for d in devs], axis=0)
    expected = np.sqrt(within + 1.25 * ests.var(axis=0, ddof=1))
    np.testing.assert_allclose(out["std_error"], expected)
    # Student's t with Rubin's degrees of freedom (K − 1) / λ², λ the between-member share of se²
    lam = 1.25 * ests.var(axis=0, ddof=1) / expected**2
    t = stats.t.ppf(0.975, 3.0 / lam**2)
    np.testing.assert_allclose(out["upper"] - out["estimate"], t * expected)
    assert np.all(t > 1.959963984540054)


def test_slope_interval_covers_the_truth_of_a_linear_iv_design_in_most_replications():
    """Linear features (identity networks): the model is split-sample 2SLS, whose slope the
    average marginal effect's interval should cover in about 95% of replications."""
    covered, reps = 0, 12
    for r in range(reps):
        y, t, z = _linear_iv(1000, seed=100 + r)
        est = DFIV(n_estimators=1, treatment_net=torch.nn.Identity(), instrument_net=torch.nn.Identity(), n_epochs=1,
                   n_bootstrap=200, random_state=r, early_stopping=False).fit(y, t, Z=z)
        lo, hi = est.marginal_ate_interval(t)
        covered += lo <= 1.5 <= hi
    assert covered >= 9


def test_marginal_effect_matches_finite_differences(ensemble, small):
    X = small.train[["time", "customer_type"]].iloc[:15]
    T = small.train["price"].to_numpy()[:15]
    h = 1e-3
    fd = (ensemble.predict(T + h, X) - ensemble.predict(T - h, X)) / (2 * h)
    me = ensemble.marginal_effect(T, X)
    np.testing.assert_allclose(me, fd, rtol=1e-3, atol=1e-3 * np.abs(fd).max())
    assert ensemble.marginal_ate(T, X) == pytest.approx(me.mean(), rel=1e-9)
    lo, hi = ensemble.marginal_ate_interval(T, X)
    assert lo <= me.mean() <= hi


def test_dfpv_ensemble_intervals():
    d = demand_proxy(n=500, seed=2)
    est = DFPV(n_epochs=3, batch_size=128, n_bootstrap=30, n_estimators=2, n_jobs=1, random_state=0).fit(
        d.train, **d.fit_kwargs())
    curve = est.dose_response(d.test_X["price"], alpha=0.1)
    assert (curve["lower"] <= curve["estimate"]).all() and (curve["estimate"] <= curve["upper"]).all()
    np.testing.assert_allclose(curve["estimate"], est.predict(d.test_X))


# ---- held-out stage losses and early stopping -----------------------------------------------------
def test_held_out_losses_equal_an_independent_computation_from_the_saved_state(small):
    d = small
    est = DFIV(**{**QUICK, "n_bootstrap": 0, "refit_heads": False, "early_stopping": False,
                  "complexity": "trained"}).fit(d.train, **d.fit_kwargs())  # heads_ as trained, not the line
    # rebuild the split: the first validation rows of each half are held out
    n = len(d.train)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)).numpy()
    n1 = n // 2
    n_val = est.settings_["n_val"]
    val1, val2 = perm[:n_val], perm[n1 : n1 + n_val]
    std = {k: est.scalers_[k].transform(d.train[c].to_numpy(dtype=float))
           for k, c in (("Y", ["sales"]), ("T", ["price"]), ("Z", ["cost"]), ("X", ["time", "customer_type"]))}
    V, u = est.heads_.V.numpy(), est.heads_.u.numpy()
    with torch.no_grad():
        nets = est.nets_.eval()

        def F1(rows):
            zx = torch.tensor(np.hstack([std["Z"][rows], std["X"][rows]]), dtype=torch.float32)
            return np.hstack([nets["instrument"](zx).double().numpy(), np.ones((len(rows), 1))])

        psi = nets["treatment"](torch.tensor(std["T"][val1], dtype=torch.float32)).double().numpy()
        s1 = ((psi - F1(val1) @ V) ** 2).sum(axis=1).mean()
        hat = np.hstack([F1(val2) @ V, np.ones((n_val, 1))])
        eta = np.hstack([nets["covariate"](torch.tensor(std["X"][val2], dtype=torch.float32)).double().numpy(),
                         np.ones((n_val, 1))])
        G = (hat[:, :, None] * eta[:, None, :]).reshape(n_val, -1)
        s2 = ((std["Y"][val2] - G @ u) ** 2).mean()
    last = est.history_.iloc[-1]
    assert last["val_stage1_loss"] == pytest.approx(s1, rel=1e-5)
    assert last["val_stage2_loss"] == pytest.approx(s2, rel=1e-5)


def _script_held_out_loss(monkeypatch, values):
    """Replace the held-out stage-2 loss of successive checks by ``values`` (the rest is computed)."""
    script = iter(values)
    original = _training.held_out_losses

    def scripted(est, *args):
        out = original(est, *args)
        out["val_stage2_loss"] = next(script)
        return out

    monkeypatch.setattr(_training, "held_out_losses", scripted)


def test_early_stopping_restores_exactly_the_kept_checks_predictions(monkeypatch):
    """The held-out loss is scripted to fall, then rise: training must stop and keep the minimum."""
    _script_held_out_loss(monkeypatch, [1.0, 0.8, 0.6, 0.5, 0.9, 1.2, 1.5, 1.9, 2.4, 3.0] + [4.0] * 100)
    d = lowdim(600, g="sin", seed=3)
    est = DFIV(n_estimators=1, batch_size=64, n_epochs=40, n_iter_no_change=2, n_bootstrap=0, refit_heads=False,
               random_state=0).fit(d.train, **d.fit_kwargs(), validation=(d.test_X, d.test_truth))
    h = est.history_
    assert est.stopping_["reason"] == "early_stopping"
    assert len(h) < 40
    kept = h.loc[h["kept"]].iloc[0]
    assert kept["step"] == est.stopping_["kept_step"] < h["step"].iloc[-1]
    # running medians of the last 2 losses: 1.0, 0.9, 0.7, 0.55 (best), 0.7, 1.05 → stop (both > 10% above
    # 0.55); keep check 3, the last within 10% of the best
    assert kept.name == 3
    mse = np.mean((est.predict(d.test_X, heads="current") - d.test_truth) ** 2)
    assert mse == pytest.approx(kept["val_mse_current"], rel=1e-9)
    assert h["val_mse_current"].iloc[-1] != pytest.approx(mse, rel=1e-6)  # training did move on


def test_a_spike_in_the_held_out_loss_is_never_the_kept_state(monkeypatch):
    """Measured at n = 10⁵: one check's held-out loss jumped 5,000-fold while the running median stayed
    low; that check must not be kept."""
    _script_held_out_loss(monkeypatch, [1.0, 0.9, 0.8, 0.8, 45.0, 0.8] + [0.8] * 100)
    d = lowdim(600, g="sin", seed=3)
    est = DFIV(n_estimators=1, batch_size=256, n_epochs=6, n_iter_no_change=3, n_bootstrap=0,
               random_state=0).fit(d.train, **d.fit_kwargs())
    h = est.history_
    assert h["val_stage2_loss"].iloc[4] == 45.0 and not h["kept"].iloc[4]
    assert h["kept"].iloc[5]  # the latest check near the best


def _diverge_at_step(monkeypatch, step_number, times=1):
    """Make ``times`` minibatch-step calls of a fit, from the ``step_number``-th on, raise the training loop's
    divergence error (calls are counted across members fitted one after another)."""
    original, calls = _training.train_step, {"n": 0}

    def step(member, *args):
        calls["n"] += 1
        if step_number <= calls["n"] < step_number + times:
            with torch.no_grad():  # as a real divergence leaves them: only a restore can bring training back
                for p in member.nets.parameters():
                    p.fill_(float("nan"))
            raise FloatingPointError("stage 2: training diverged (the loss became inf). Try a smaller lr")
        return original(member, *args)

    monkeypatch.setattr(_training, "train_step", step)


def test_divergence_after_a_kept_check_goes_back_to_it_at_half_the_rate(monkeypatch):
    """Measured at n = 10⁶: a default DFIV fit diverged after 5,000 good steps of 14,000. Training must go on
    from the kept check at half the learning rate, with a warning, instead of losing the rest of the budget."""
    _diverge_at_step(monkeypatch, 13)  # 5 steps per epoch: checks at steps 5 and 10 come first
    d = lowdim(600, g="sin", seed=3)
    with pytest.warns(RuntimeWarning, match=r"training diverged at step 13 \(stage 2.*goes on from the check at "
                                            r"step (5|10) at 0.5 times the learning rate"):
        est = DFIV(n_estimators=1, batch_size=64, n_epochs=6, n_bootstrap=0, random_state=0).fit(
            d.train, **d.fit_kwargs())
    h = est.history_
    assert est.stopping_["recoveries"] == [13] and est.stopping_["reason"] in ("max_steps", "early_stopping")
    assert list(h["step"]) == [5, 10, 15, 20, 25, 30]  # the failed call is not a step; training went on
    np.testing.assert_allclose(h["lr"], [1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 5e-4])
    # the step wrote NaN into every network: finite losses after it mean training went on from the restored check
    assert np.isfinite(h[["stage1_loss", "stage2_loss", "val_stage2_loss"]].to_numpy()).all()
    assert np.isfinite(est.predict(d.test_X)).all()
    assert est.summary().members["restarts"].iloc[0] == 1


def test_divergence_after_two_restarts_ends_training_with_the_kept_check(monkeypatch):
    _diverge_at_step(monkeypatch, 13, times=3)  # the step after each restart diverges again
    d = lowdim(600, g="sin", seed=3)
    with pytest.warns(RuntimeWarning, match=r"training diverged at step 13 \(stage 2.*after 2 restart\(s\).*the "
                                            r"check at step (5|10)"):
        est = DFIV(n_estimators=1, batch_size=64, n_epochs=40, n_bootstrap=0, random_state=0).fit(
            d.train, **d.fit_kwargs(), validation=(d.test_X, d.test_truth))
    h = est.history_
    assert est.settings_["steps_per_epoch"] == 5 and list(h["step"]) == [5, 10]
    assert est.stopping_["reason"] == "diverged" and est.stopping_["steps"] == 12
    assert est.stopping_["recoveries"] == [13, 13]
    kept = h.loc[h["kept"]].iloc[0]
    assert kept["step"] == est.stopping_["kept_step"]
    mse = np.mean((est.predict(d.test_X, heads="current") - d.test_truth) ** 2)
    assert mse == pytest.approx(kept["val_mse_current"], rel=1e-9)
    assert np.isfinite(est.predict(d.test_X)).all()  # the refit heads come from the restored networks


def test_a_diverged_member_is_reported_by_the_ensemble(monkeypatch):
    """Members fitted in worker processes lose their warnings; the ensemble names the diverged member."""
    # members trained one by one (a stack that diverges falls back to that: tests/test_stacked.py)
    monkeypatch.setattr(DFIV, "_stack_members", False)
    _diverge_at_step(monkeypatch, 13, times=3)  # the first member's 13th step (members run one after another)
    d = lowdim(600, g="sin", seed=3)
    with pytest.warns(RuntimeWarning) as record:
        est = DFIV(n_estimators=2, n_jobs=1, batch_size=64, n_epochs=4, n_bootstrap=0, random_state=0).fit(
            d.train, **d.fit_kwargs())
    messages = [str(w.message) for w in record]
    assert any(re.match(r"ensemble member 0 \(seed \d+\): training diverged at step\(s\) 13, 13 and went on", m)
               for m in messages)
    assert any(re.match(r"ensemble member 0 \(seed \d+\): training diverged after step 12", m) for m in messages)
    assert [m.stopping_["reason"] for m in est.estimators_] == ["diverged", "max_steps"]


def test_divergence_without_a_kept_check_is_still_an_error(monkeypatch):
    _diverge_at_step(monkeypatch, 13)
    d = lowdim(600, g="sin", seed=3)
    est = DFIV(n_estimators=1, batch_size=64, n_epochs=40, n_bootstrap=0, early_stopping=False, random_state=0)
    with pytest.raises(FloatingPointError, match="training diverged"):
        est.fit(d.train, **d.fit_kwargs())
    assert not hasattr(est, "nets_")


def test_too_few_held_out_rows_is_a_clear_error():
    d = lowdim(150, g="sin", seed=0)
    with pytest.raises(ValueError, match=r"holding out 14 \(validation_fraction=0.45\) leaves 16 to train on"):
        DFIV(n_estimators=1, validation_fraction=0.45).fit(d.train.iloc[:60], **d.fit_kwargs())
    with pytest.raises(ValueError, match="at least 20"):
        DFIV(n_estimators=1).fit(d.train.iloc[:40], **d.fit_kwargs())


def test_saved_ensemble_predicts_and_bands_identically(ensemble, small, tmp_path):
    path = tmp_path / "ens.pt"
    ensemble.save(path)
    loaded = DFIV.load(path)
    X = small.train[["time", "customer_type"]].iloc[:20]
    a = ensemble.dose_response([15.0, 20.0], X, alpha=0.1, band="uniform")
    b = loaded.dose_response([15.0, 20.0], X, alpha=0.1, band="uniform")
    pd.testing.assert_frame_equal(a, b)
    assert len(loaded.estimators_) == 3
    pd.testing.assert_frame_equal(loaded.history_, ensemble.history_)


def test_a_diverging_member_is_named(small):
    with pytest.raises(FloatingPointError, match=r"ensemble member 0 \(seed \d+\): stage"):
        DFIV(**{**QUICK, "lr": 1e30, "n_estimators": 2}).fit(small.train, **small.fit_kwargs())


def test_score_bootstrap_draws_equal_the_docstring_formulas_computed_draw_by_draw():
    # deepcausal.inference's module docstring: V_b = V̂ + A₁⁻¹ s₁(V̂; w_b), u_b = û + A₂⁻¹ s₂(û; w'_b, V_b),
    # recomputed here one draw at a time in numpy, with stage-2 features G = [F₁V, a] built from the
    # drawn stage-1 head, and the multipliers drawn from the same generator in the same order.
    from deepcausal.distributed import Communicator
    from deepcausal.inference import score_bootstrap_heads

    g = torch.Generator().manual_seed(0)
    n1, n2, d1, k1, B, seed = 60, 50, 5, 3, 7, 11
    s1_rows = {"F1": torch.randn(n1, d1, generator=g, dtype=torch.float64),
               "T": torch.randn(n1, k1, generator=g, dtype=torch.float64)}
    s2_rows = {"F1": torch.randn(n2, d1, generator=g, dtype=torch.float64),
               "a": torch.randn(n2, 2, generator=g, dtype=torch.float64),
               "Y": torch.randn(n2, 1, generator=g, dtype=torch.float64)}

    class Half:
        def __init__(self, rows):
            self.rows = rows

        def batches(self, size):
            yield self.rows  # one batch: the multipliers are then one draw of (n, B) per stage

    class Hooks:
        beta1, beta2 = 0.05, 0.02
        _stage1_features = staticmethod(lambda nets, b: b["F1"])
        _stage1_target = staticmethod(lambda nets, b: b["T"])
        _stage2_parts = staticmethod(lambda nets, b, grad: {"a": b["a"]})
        _stage2_combine = staticmethod(
            lambda parts, hat: torch.cat([hat, parts["a"].expand(*hat.shape[:-1], 2)], dim=-1))
        _summary_terms = staticmethod(lambda nets, b: {"a": b["a"]})  # a summary: the stage-2 mean of a
        _summaries_from_means = staticmethod(lambda means: {"a_mean": means["a"]})

    dev, summary_draws = score_bootstrap_heads(Hooks(), None, (Half(s1_rows), Half(s2_rows)), B, seed,
                                               Communicator(torch.device("cpu")), batch_size=10**6)
    dev = dev.numpy()

    gen = torch.Generator().manual_seed(seed)
    w1 = (-torch.log1p(-torch.rand(n1, B, generator=gen, dtype=torch.float64)) - 1.0).numpy()
    w2 = (-torch.log1p(-torch.rand(n2, B, generator=gen, dtype=torch.float64))).numpy()  # 1 + (w − 1)
    F, T = s1_rows["F1"].numpy(), s1_rows["T"].numpy()
    F2, a, Y = (s2_rows[k].numpy() for k in ("F1", "a", "Y"))
    A1 = F.T @ F / n1 + 0.05 * np.eye(d1)
    V = np.linalg.solve(A1, F.T @ T / n1)
    G_hat = np.hstack([F2 @ V, a])
    A2 = G_hat.T @ G_hat / n2 + 0.02 * np.eye(k1 + 2)
    u = np.linalg.solve(A2, G_hat.T @ Y / n2)
    for b in range(B):
        s1 = sum(w1[i, b] * np.outer(F[i], T[i] - F[i] @ V) for i in range(n1)) / n1
        V_b = V + np.linalg.solve(A1, s1)
        G = np.hstack([F2 @ V_b, a])
        s2 = sum(w2[j, b] * np.outer(G[j], Y[j] - G[j] @ u) for j in range(n2)) / n2 - 0.02 * u
        np.testing.assert_allclose(dev[b], np.linalg.solve(A2, s2), rtol=1e-9, atol=1e-12)
        # the summary of draw b: the stage-2 mean reweighted by the same multipliers as s₂
        np.testing.assert_allclose(summary_draws["a_mean"][b].numpy(), w2[:, b] @ a / w2[:, b].sum(), rtol=1e-12)


def test_score_bootstrap_of_full_sample_heads_gives_each_row_one_multiplier_in_both_stages():
    """refit_heads="full": both stages on the same rows, so stage 2 reuses each row's stage-1 multiplier."""
    from deepcausal.distributed import Communicator
    from deepcausal.inference import score_bootstrap_heads

    g = torch.Generator().manual_seed(1)
    n, d1, k1, B, seed = 70, 4, 2, 6, 5
    rows = {"F1": torch.randn(n, d1, generator=g, dtype=torch.float64),
            "T": torch.randn(n, k1, generator=g, dtype=torch.float64),
            "a": torch.randn(n, 1, generator=g, dtype=torch.float64),
            "Y": torch.randn(n, 1, generator=g, dtype=torch.float64)}

    class Half:
        def batches(self, size):
            yield rows

    class Hooks:
        beta1, beta2 = 0.05, 0.02
        _stage1_features = staticmethod(lambda nets, b: b["F1"])
        _stage1_target = staticmethod(lambda nets, b: b["T"])
        _stage2_parts = staticmethod(lambda nets, b, grad: {"a": b["a"]})
        _stage2_combine = staticmethod(lambda parts, hat: torch.cat([hat, parts["a"].expand(*hat.shape[:-1], 1)], -1))
        _summary_terms = staticmethod(lambda nets, b: {})
        _summaries_from_means = staticmethod(lambda means: {})

    half = Half()
    dev, _ = score_bootstrap_heads(Hooks(), None, (half, half), B, seed, Communicator(torch.device("cpu")),
                                   batch_size=10**6, same_rows=True)
    w = (-torch.log1p(-torch.rand(n, B, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))).numpy()
    F, T, a, Y = (rows[k].numpy() for k in ("F1", "T", "a", "Y"))
    A1 = F.T @ F / n + 0.05 * np.eye(d1)
    V = np.linalg.solve(A1, F.T @ T / n)
    G_hat = np.hstack([F @ V, a])
    A2 = G_hat.T @ G_hat / n + 0.02 * np.eye(k1 + 1)
    u = np.linalg.solve(A2, G_hat.T @ Y / n)
    for b in range(B):
        V_b = V + np.linalg.solve(A1, sum((w[i, b] - 1) * np.outer(F[i], T[i] - F[i] @ V) for i in range(n)) / n)
        G = np.hstack([F @ V_b, a])
        s2 = sum(w[j, b] * np.outer(G[j], Y[j] - G[j] @ u) for j in range(n)) / n - 0.02 * u
        np.testing.assert_allclose(dev[b].numpy(), np.linalg.solve(A2, s2), rtol=1e-9, atol=1e-12)


def test_full_sample_heads_of_identity_networks_are_2sls_on_every_row():
    y, t, z = _linear_iv(800, seed=3)
    est = DFIV(n_estimators=1, treatment_net=torch.nn.Identity(), instrument_net=torch.nn.Identity(), n_epochs=1,
               n_bootstrap=0, random_state=0, early_stopping=False, refit_heads="full", beta1=1e-12, beta2=1e-12,
               verbose=False).fit(y, t, Z=z)
    D1 = np.c_[z, np.ones(len(y))]
    t_hat = D1 @ np.linalg.lstsq(D1, t, rcond=None)[0]
    slope = np.linalg.lstsq(np.c_[t_hat, np.ones(len(y))], y, rcond=None)[0][0]
    assert est.marginal_ate(t) == pytest.approx(slope, rel=1e-6)
    with pytest.raises(ValueError, match="refit_heads"):
        DFIV(refit_heads="both", n_estimators=1, n_epochs=1).fit(y, t, Z=z)
