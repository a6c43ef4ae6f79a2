"""The spline in t with Lepski's knots (deepcausal._sieve): its basis, its choice, and a fit that reports it."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.preprocessing import SplineTransformer

from deepcausal import DFIV
from deepcausal._sieve import SIEVE_LABEL, SplineTerms, cubic_terms, embed, lepski_knots, spline_knots, widen
from deepcausal.heads import outer_features

pytestmark = [pytest.mark.filterwarnings("ignore:a stage half has only:UserWarning"),
              pytest.mark.filterwarnings("ignore::deepcausal.exceptions.ShrinkageWarning")]


def test_cubic_terms_span_scikit_learns_spline_with_linear_extrapolation():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(400, 1))
    knots = spline_knots(t[:, 0], 5)
    st = SplineTransformer(n_knots=5, degree=3, knots="quantile", include_bias=False, extrapolation="linear").fit(t)
    grid = np.linspace(-6, 6, 301)[:, None]  # beyond both boundary knots too
    ours = np.c_[grid, cubic_terms(torch.as_tensor(grid), torch.as_tensor(knots)).numpy(), np.ones(len(grid))]
    theirs = np.c_[st.transform(grid), np.ones(len(grid))]
    assert ours.shape[1] == theirs.shape[1]  # the same dimension ...
    coef, *_ = np.linalg.lstsq(ours, theirs, rcond=None)
    np.testing.assert_allclose(ours @ coef, theirs, atol=1e-8)  # ... and the same space


def test_embed_and_widen_put_coefficients_where_the_wrapped_features_read_them():
    rng = np.random.default_rng(1)
    n, d_psi, m, d_cov = 50, 4, 3, 2
    psi, terms, eta = (torch.as_tensor(rng.normal(size=(n, k))) for k in (d_psi, m, d_cov))
    theta = torch.as_tensor(rng.normal(size=(1 + m + d_cov + 1, 1)))
    direct = torch.cat([psi[:, :1], terms, eta, torch.ones(n, 1, dtype=torch.float64)], dim=1) @ theta
    wrapped = outer_features(torch.cat([psi, terms], dim=1), eta)
    torch.testing.assert_close(wrapped @ embed(theta, d_psi, m, d_cov), direct)
    u = torch.as_tensor(rng.normal(size=((d_psi + 1) * (d_cov + 1), 1)))
    torch.testing.assert_close(wrapped @ widen(u, d_psi, m, d_cov), outer_features(psi, eta) @ u)
    torch.testing.assert_close(torch.cat([psi, torch.ones(n, 1, dtype=torch.float64)], 1) @ u[: d_psi + 1],
                               outer_features(torch.cat([psi, terms], 1)) @ widen(u[: d_psi + 1], d_psi, m, 0))


def _iv(h, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    e = rng.normal(size=n)
    t = z + 0.5 * e[:, None] + 0.3 * rng.normal(size=(n, 1))
    return t, z, h(t[:, 0]) + e  # confounded: e enters both


def test_lepski_keeps_the_line_for_a_line_and_a_spline_for_a_bend():
    rows = np.arange(4000)
    t, z, y = _iv(lambda s: 1.0 + 2.0 * s)
    line = lepski_knots(t, z, y, None, rows, np.random.default_rng(0))
    assert line["knots"] is None and line["J"] == 2 and line["theta"] > 0
    t, z, y = _iv(lambda s: 2.0 * np.abs(s))
    chosen = lepski_knots(t, z, y, None, rows, np.random.default_rng(0))
    assert chosen["knots"] is not None and chosen["knots"] in chosen["kept"]
    # the spline's dimension: t, t², t³, a term per interior knot and the intercept
    assert chosen["J"] == chosen["knots"] + 2 and chosen["theta"] > 0


@pytest.fixture(scope="module")
def sieve_fit():
    t, z, y = _iv(lambda s: 2.0 * np.abs(s), n=3000, seed=2)
    est = DFIV(complexity="sieve", n_epochs=5, n_estimators=2, n_bootstrap=30, n_jobs=1, random_state=0,
               verbose=False).fit(y, t, Z=z)
    return est, t, z, y


def test_a_fit_reports_the_sieve_through_every_prediction(sieve_fit):
    est, t, z, y = sieve_fit
    c = est.complexity_
    assert c["label"] == SIEVE_LABEL and all(k is not None for k in c["sieve_knots"])
    grid = np.linspace(-2, 2, 41)[:, None]
    pred = est.predict(grid)
    assert np.mean((pred - 2.0 * np.abs(grid[:, 0])) ** 2) < 0.05  # a bend that a line (error 0.6) misses
    lo, hi = est.predict_interval(grid)
    assert np.all(np.isfinite(lo)) and np.all(lo < hi) and np.all((lo <= pred) & (pred <= hi))
    step = 1e-2  # the curve is a cubic spline here: central differences are exact up to O(step²)
    fd = (est.predict(grid + step) - est.predict(grid - step)) / (2 * step)
    np.testing.assert_allclose(est.marginal_effect(grid), fd, atol=5e-3)  # autograd through the spline terms
    for m in est.estimators_:  # the trained head still reads the widened features as it read the old ones
        assert m.heads_.u.shape[0] == m.nets_["treatment"](torch.zeros(1, 1)).shape[1] + 1
        assert m.heads_.V.shape[1] == m.nets_["treatment"](torch.zeros(1, 1)).shape[1]
    assert np.isfinite(est.score(y, t, Z=z))
    assert "cubic spline in t" in str(est.summary())


def test_a_fit_with_the_sieve_survives_save_load_and_pickle(sieve_fit, tmp_path):
    est = sieve_fit[0]
    grid = np.linspace(-3, 3, 13)[:, None]
    path = tmp_path / "sieve.pt"
    est.save(path)
    np.testing.assert_array_equal(DFIV.load(path).predict(grid), est.predict(grid))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(grid), est.predict(grid))


def test_the_sieve_without_bootstrap_draws():
    t, z, y = _iv(lambda s: 2.0 * np.abs(s), n=2000, seed=3)
    est = DFIV(complexity="sieve", n_epochs=3, n_estimators=1, n_bootstrap=0, n_jobs=1, random_state=0,
               verbose=False).fit(y, t, Z=z)
    assert est.complexity_["label"] == SIEVE_LABEL
    assert np.all(np.isfinite(est.predict(np.linspace(-2, 2, 5)[:, None])))


def test_the_sieve_needs_instruments():
    from deepcausal import DFPV

    rng = np.random.default_rng(0)
    a, z, w, y = (rng.normal(size=(200, 1)) for _ in range(4))
    with pytest.raises(ValueError, match="complexity='sieve'"):
        DFPV(complexity="sieve", n_epochs=1, verbose=False).fit(y[:, 0], a, Z=z, W=w)


def test_the_sieve_needs_one_treatment_column():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 2))
    t = z + rng.normal(size=(300, 2))
    with pytest.raises(ValueError, match="one treatment column"):
        DFIV(complexity="sieve", n_epochs=1, verbose=False).fit(t.sum(1), t, Z=z)


def test_without_draws_the_spline_gives_no_band_rather_than_a_zero_width_one():
    from deepcausal.exceptions import NoDrawsError

    t, z, y = _iv(lambda s: 2.0 * np.abs(s), n=2000, seed=4)
    est = DFIV(complexity="sieve", n_epochs=3, n_estimators=2, n_bootstrap=0, n_jobs=1, random_state=0,
               verbose=False).fit(y, t, Z=z)
    assert est.complexity_["label"] == SIEVE_LABEL
    with pytest.raises(NoDrawsError, match="n_bootstrap"):
        est.predict_interval(np.zeros((3, 1)))


def test_the_spline_without_held_out_rows():
    t, z, y = _iv(lambda s: 2.0 * np.abs(s), n=2000, seed=5)
    est = DFIV(complexity="sieve", n_epochs=3, n_estimators=1, n_bootstrap=10, n_jobs=1, random_state=0,
               validation_fraction=0, early_stopping=False, verbose=False).fit(y, t, Z=z)
    assert est.complexity_["label"] == SIEVE_LABEL
    assert np.all(np.isfinite(est.predict(np.zeros((3, 1)))))


def test_spline_terms_take_knots_from_any_tensor():
    # a loaded model hands over its knots as a tensor on the device it was loaded to (numpy cannot read a CUDA
    # tensor, nor one that requires grad): the buffer is built by torch, in float64, on the CPU
    knots = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float32, requires_grad=True)
    terms = SplineTerms(torch.nn.Identity(), knots)
    assert terms.knots.dtype == torch.float64 and terms.knots.device.type == "cpu" and not terms.knots.requires_grad
    t = torch.linspace(-2, 2, 9)[:, None]
    torch.testing.assert_close(terms(t)[:, 1:].double(), cubic_terms(t.double(), knots.detach().double()))


def test_sup_t_separates_a_difference_from_the_noise_of_its_draws():
    from deepcausal._sieve import sup_t

    rng = np.random.default_rng(0)
    draws = rng.normal(size=(200, 50))
    stat, crit = sup_t(np.zeros(50), draws)
    assert stat == 0.0 and crit > 2.0  # a sup over 50 rows: well above the pointwise 1.96
    stat, crit = sup_t(np.full(50, 5.0), draws)
    assert stat > crit


def test_the_default_reports_the_spline_where_the_trained_curve_stays_a_line_the_data_reject():
    from deepcausal.datasets import chen_christensen

    d = chen_christensen(3000, ill_posed="severe", seed=0)  # sin(πx), its bend weakly identified (ξ = 0.5)
    est = DFIV(n_estimators=3, n_jobs=1, random_state=0, verbose=False).fit(d.train, **d.fit_kwargs())
    c = est.complexity_
    assert c["rule"] == "held_out" and c["spline"] and c["shape_step"] == "spline" and c["label"] == SIEVE_LABEL
    assert sum(c["departs"]["spline"]) >= 2 and "the spline is reported" in c["verdict"]
    spline = d.score(est.predict(d.test_X))
    for m in est.estimators_:  # the trained head put back, on the networks as trained
        m.nets_["treatment"] = getattr(m.nets_["treatment"], "net", m.nets_["treatment"])
        m.heads_.u, m.head_draws_ = m.candidates_["heads"][-1].clone(), m.candidates_["draws"][-1].clone()
    assert spline < 0.25 * d.score(est.predict(d.test_X))


@pytest.mark.parametrize("line, spline, trained, expected", [
    (True, [1, 1, 0], [1, 1, 1], "spline"),  # the line chosen: (A) alone decides; (B) has nothing to add there
    (True, [1, 0, 0], [0, 0, 0], None),
    (False, [1, 1, 0], [0, 0, 1], "spline"),  # the data bend where the trained curve does not
    (False, [1, 1, 1], [1, 1, 0], None),  # both bend: the trained head stays
    (False, [0, 0, 1], [0, 0, 1], "line"),  # neither bends on a majority: the simplest curve
    (False, [0, 1, 0], [1, 0, 0], None),  # one member for each case: no majority for any
])
def test_shape_step_follows_the_majority_of_the_members_verdicts(line, spline, trained, expected):
    from deepcausal._sieve import shape_step

    assert shape_step(line, [bool(v) for v in spline], [bool(v) for v in trained]) == expected


@pytest.mark.parametrize("evidence, favours_trained, expected", [
    (False, False, None),  # off: the trained curve's bend keeps the trained head
    (True, False, "line"),  # on: a bend the data's spline does not show and no held-out row bears out
    (True, True, None),  # on, but the held-out rows favour the trained head: it stays
])
def test_the_evidence_rule_reports_the_line_where_only_the_trained_curve_bends(monkeypatch, evidence, favours_trained,
                                                                             expected):
    import deepcausal._sieve as sieve

    monkeypatch.setattr(sieve, "HELD_OUT_EVIDENCE", evidence)
    # (A) does not hold on 2 of 3 members, (B) holds on all three: neither of the step's earlier cases applies
    assert sieve.shape_step(False, [False, False, True], [True, True, True], favours_trained) == expected
    # the line chosen by the held-out rows, or the spline's case: the rule changes nothing there
    assert sieve.shape_step(True, [False, False, True], [True, True, True], favours_trained) is None
    assert sieve.shape_step(False, [True, True, False], [False, False, True], favours_trained) == "spline"


def test_the_evidence_rule_is_told_apart_from_no_bend_in_the_verdict(monkeypatch):
    import deepcausal._sieve as sieve
    from deepcausal._complexity import held_out_verdict

    monkeypatch.setattr(sieve, "HELD_OUT_EVIDENCE", True)
    base = {"chosen": 0, "held_out_line": False, "spline": False, "shape_step": "line", "criterion": [0.3],
            "held_out_rows": 900, "first_stage_f": 120.0, "sieve_knots": [None, None, 2]}
    evidence = held_out_verdict({**base, "departs": {"spline": [False, False, True], "trained": [True, True, True]}})
    assert "does not depart from the line on 2 of 3 members" in evidence and "held-out rows" in evidence
    assert "neither" not in evidence
    flat = held_out_verdict({**base, "departs": {"spline": [False, False, True], "trained": [False, False, True]}})
    assert "neither Lepski's spline" in flat
    # the line reported for want of a bend says what its band does not cover; the evidence case does not
    assert "not a bend too weak for these tests to see" in flat
    assert "not a bend too weak" not in evidence


@pytest.mark.filterwarnings("ignore:T. values outside the training range:UserWarning")
def test_the_default_reports_the_line_where_neither_curve_departs_from_it():
    from deepcausal.benchmark import make_design

    d = make_design("kiv_linear", n=3000, seed=3)[0]  # a line in t; the held-out rows cannot tell it from the trained curve
    est = DFIV(n_estimators=3, n_jobs=1, random_state=3, verbose=False).fit(d.train, **d.fit_kwargs())
    c = est.complexity_
    assert not c["held_out_line"] and c["shape_step"] == "line" and c["chosen"] == 0 and not c["spline"]
    assert "the line, is reported" in c["verdict"] and c["label"].startswith("linear 2SLS")
    line = est.predict(d.test_X)
    for m in est.estimators_:  # what each member reports is its line candidate
        torch.testing.assert_close(m.heads_.u, m.candidates_["heads"][0])
        m.heads_.u = m.candidates_["heads"][-1].clone()
    assert d.score(line) < d.score(est.predict(d.test_X))


def _kink_with_a_covariate(seed=0, n=3000):
    """t moves with z and x, h has a kink in t: E[t² | z, x] has a z · x term."""
    rng = np.random.default_rng(seed)
    x, z, u = rng.uniform(-1.5, 1.5, n), rng.standard_normal(n), rng.standard_normal(n)
    t = 0.3 * z + 0.4 * x + 0.8 * u + 0.6 * rng.standard_normal(n)
    y = -0.5 * t + 1.5 * np.maximum(t - 0.25, 0) + np.sin(x) + 0.8 * u + 0.5 * rng.standard_normal(n)
    return t[:, None], z[:, None], y, np.c_[x, x**2]  # the last: covariate features, as a member's η(x)


def test_the_splines_instruments_hold_each_instrument_times_each_covariate_feature(monkeypatch):
    import deepcausal._sieve as sieve

    t, z, y, eta = _kink_with_a_covariate(n=200)
    rows = np.arange(200)
    monkeypatch.setattr(sieve, "INSTRUMENT_PRODUCTS", True)
    _, Q_line, _ = sieve._matrices(t, z, eta, None, rows, rows)
    W, Q, _ = sieve._matrices(t, z, eta, 3, rows, rows)
    assert Q_line.shape[1] == 1 + 2 + 1  # the line's instruments stay [z, η, 1]
    np.testing.assert_allclose(Q[:, -5:-3], z * eta)  # z ⊗ η before [η, 1]
    monkeypatch.setattr(sieve, "INSTRUMENT_PRODUCTS", False)
    assert sieve._matrices(t, z, eta, 3, rows, rows)[1].shape[1] == Q.shape[1] - 2
    assert sieve._instrument_products(z, None, rows) is None  # no covariates: nothing to multiply


def test_lepski_sees_a_kink_through_the_products_or_the_finer_instrument_basis(monkeypatch):
    import deepcausal._sieve as sieve

    t, z, y, eta = _kink_with_a_covariate(seed=0)
    rows = np.arange(len(y))
    package = sieve.INSTRUMENT_RATIO, sieve.INSTRUMENT_DEGREE

    def knots(ratio, degree, products):
        monkeypatch.setattr(sieve, "INSTRUMENT_RATIO", ratio)
        monkeypatch.setattr(sieve, "INSTRUMENT_DEGREE", degree)
        monkeypatch.setattr(sieve, "INSTRUMENT_PRODUCTS", products)
        return sieve.lepski_knots(t, z, y, eta, rows, np.random.default_rng(0))["knots"]

    # the earlier basis (a cubic, two segments per segment of t's spline) without products: the line
    assert knots(2, 3, False) is None
    assert knots(2, 3, True) is not None  # the products alone see the kink
    assert knots(*package, False) is not None  # so does the package's finer basis
    assert knots(*package, True) is not None  # and the package's default, which has both


def test_the_instrument_basis_has_ccks_ratio_of_segments_and_leaves_coarse_columns_raw():
    from sklearn.preprocessing import SplineTransformer

    import deepcausal._sieve as sieve

    rng = np.random.default_rng(0)
    z = np.c_[rng.standard_normal(500), rng.integers(0, 5, 500)]  # a continuous column and one with 5 values
    rows = np.arange(500)
    # a spline in t with k knots has k − 1 segments; the instruments get 4(k − 1) segments of degree 4
    for k, n_knots in ((2, 5), (3, 9), (5, 17)):
        Q = sieve._instrument_basis(z, k, rows, rows[:7])
        expected = SplineTransformer(n_knots=n_knots, degree=4, knots="quantile", include_bias=False,
                                     extrapolation="linear").fit(z[:, :1]).transform(z[:7, :1])
        assert Q.shape[1] == n_knots + 2 + 1  # the basis without its constant, then the 5-valued column raw
        np.testing.assert_allclose(Q[:, :-1], expected)
        np.testing.assert_array_equal(Q[:, -1], z[:7, 1])  # too few values for the basis: raw
    np.testing.assert_array_equal(sieve._instrument_basis(z, None, rows, rows), z)  # the line: raw instruments
    # the threshold: at k = 2 the basis has 7 terms, so a column needs 14 distinct values to be expanded
    for values, width in ((13, 1), (14, 7)):
        col = np.arange(500, dtype=np.float64)[:, None] % values
        assert sieve._instrument_basis(col, 2, rows, rows).shape[1] == width


@pytest.mark.parametrize("held_out_line, spline, step, departs, words", [
    (True, True, "spline", ([True, True, False], [True, True, True]), "departs from the line on 2 of 3 members"),
    (True, False, None, ([True, False, False], [True, True, True]), "not a majority, so the line stays"),
    (False, True, "spline", ([True, True, True], [False, False, True]), "trained curve does not on 2 of 3"),
    (False, False, "line", ([False, False, None], [False, False, True]), "neither Lepski's spline"),
    (False, False, None, ([True, None, False], [True, None, True]), "no majority for either"),
])
def test_held_out_verdict_says_what_the_shape_step_did(held_out_line, spline, step, departs, words):
    from deepcausal._complexity import held_out_verdict
    from deepcausal._sieve import shape_step

    assert shape_step(held_out_line, *departs) == step  # the dict below is one the rule can produce
    c = {"chosen": 0 if (held_out_line or step) else 2, "held_out_line": held_out_line, "spline": spline,
         "shape_step": step, "criterion": [-2.0 if held_out_line else 0.3], "held_out_rows": 900,
         "first_stage_f": 120.0, "sieve_knots": [2, 2, None], "departs": dict(zip(("spline", "trained"), departs))}
    assert words in held_out_verdict(c)


def test_a_test_that_is_not_finite_gives_no_verdict():
    from deepcausal._complexity import _verdict
    from deepcausal._sieve import shape_step

    assert _verdict(float("nan"), 2.0) is None and _verdict(3.0, 2.0) is True and _verdict(1.0, 2.0) is False
    # two members whose tests are NaN vote for nothing: one member without a bend is no majority for the line
    assert shape_step(False, [False, None, None], [False, None, None]) is None


def test_first_stage_strength_is_the_partial_f_with_one_endogenous_column():
    from deepcausal._sieve import first_stage_strength, smallest_canonical_correlation

    rng = np.random.default_rng(3)
    n = 2000
    z = rng.standard_normal((n, 3))
    x = rng.standard_normal((n, 1))  # an exogenous control, in both the regressors and the instruments
    t = z @ np.array([[0.1], [0.05], [0.0]]) + 0.5 * x + rng.standard_normal((n, 1))
    ones = np.ones((n, 1))
    s = smallest_canonical_correlation(np.c_[t, x, ones], np.c_[z, x, ones])
    # the partial F of the excluded instruments in the first stage, from the two residual sums of squares
    def rss(D):
        return float(np.sum((t - D @ np.linalg.lstsq(D, t, rcond=None)[0]) ** 2))
    f = ((rss(np.c_[x, ones]) - rss(np.c_[z, x, ones])) / 3) / (rss(np.c_[z, x, ones]) / (n - 5))
    assert first_stage_strength(s, n, 5, 2) == pytest.approx(f, rel=1e-8)
    assert first_stage_strength(s, n, 2, 2) == 0.0  # no excluded instrument


def test_the_first_stage_cut_admits_no_spline_weaker_than_its_bound(monkeypatch):
    import deepcausal._sieve as sieve

    assert sieve.FIRST_STAGE_BOUND is None  # off by default: measured, not adopted (eval_spline_strength)

    # a treatment that moves with the instrument only a little: its line is identified (F in the hundreds) but the
    # instrument basis barely moves t² and t³, so the cubic's Cragg-Donald statistic is small
    rng = np.random.default_rng(4)
    n = 5000
    z, u = rng.standard_normal((n, 1)), rng.standard_normal((n, 1))
    t = 0.3 * z + u + 0.5 * rng.standard_normal((n, 1))
    y = (np.sin(2.0 * t) + u + 0.3 * rng.standard_normal((n, 1)))[:, 0]
    rows = np.arange(n)
    monkeypatch.setattr(sieve, "FIRST_STAGE_BOUND", None)
    free = sieve.lepski_knots(t, z, y, None, rows, np.random.default_rng(0))
    assert len(free["kept"]) > 1  # Chen and Christensen's ill-posedness bound alone admits splines here
    monkeypatch.setattr(sieve, "FIRST_STAGE_BOUND", 37.418)
    cut = sieve.lepski_knots(t, z, y, None, rows, np.random.default_rng(0))
    assert cut["kept"] == [None] and cut["knots"] is None
    # a treatment the instrument moves strongly: the same cut keeps the splines, and Lepski still sees the bend
    t, z, y = _iv(lambda s: 2.0 * np.abs(s))
    strong = sieve.lepski_knots(t, z, y, None, np.arange(len(y)), np.random.default_rng(0))
    assert len(strong["kept"]) > 1 and strong["knots"] is not None


def test_a_band_with_the_spline_beside_the_line_is_the_union_of_both_bands(sieve_fit):
    import copy

    est = sieve_fit[0]
    grid = np.linspace(-2, 2, 21)[:, None]
    gen = torch.Generator().manual_seed(0)
    widened, other = copy.deepcopy(est), copy.deepcopy(est)
    for w, o in zip(widened.estimators_, other.estimators_):
        head = w.heads_.u + 0.3 * torch.randn(w.heads_.u.shape, generator=gen, dtype=w.heads_.u.dtype)
        w.spline_band_ = {"head": head, "draws": 1.5 * w.head_draws_}
        o.heads_.u, o.head_draws_ = head.clone(), 1.5 * o.head_draws_
    np.testing.assert_array_equal(widened.predict(grid), est.predict(grid))  # the point estimate stays the line's
    for band in ("pointwise", "uniform"):
        lo, hi = widened.predict_interval(grid, band=band)
        lo1, hi1 = est.predict_interval(grid, band=band)
        lo2, hi2 = other.predict_interval(grid, band=band)
        np.testing.assert_allclose(lo, np.minimum(lo1, lo2))
        np.testing.assert_allclose(hi, np.maximum(hi1, hi2))
        assert np.any(lo < lo1) or np.any(hi > hi1)  # the other band reaches beyond the first somewhere
    r = widened.effect_interval(T0=np.array([[-1.0]]), T1=np.array([[1.0]]))
    r1 = est.effect_interval(T0=np.array([[-1.0]]), T1=np.array([[1.0]]))
    r2 = other.effect_interval(T0=np.array([[-1.0]]), T1=np.array([[1.0]]))
    np.testing.assert_allclose(r[0], np.minimum(r1[0], r2[0]))
    np.testing.assert_allclose(r[1], np.maximum(r1[1], r2[1]))


@pytest.mark.filterwarnings("ignore:T. values outside the training range:UserWarning")
def test_the_line_keeps_the_splines_band_beside_it_where_the_flag_is_set(monkeypatch, tmp_path):
    import copy

    import deepcausal._complexity as complexity
    from deepcausal.benchmark import make_design

    monkeypatch.setattr(complexity, "LINE_BAND_WITH_SPLINE", True)
    # a step in t at 1,000 rows: the line reported, each member's Lepski choice a spline that did not depart from it
    d = make_design("lowdim_step", n=1000, seed=207)[0]
    est = DFIV(n_estimators=3, n_bootstrap=30, n_jobs=1, random_state=207, verbose=False).fit(d.train, **d.fit_kwargs())
    c = est.complexity_
    assert c["label"].startswith("linear 2SLS") and not c["spline"]
    with_spline = [k is not None for k in c["sieve_knots"]]
    assert any(with_spline) and c["band"].endswith(f"({sum(with_spline)} of {len(with_spline)} members)")
    assert "the union of the line's band and Lepski's spline's" in c["verdict"]
    assert "not a bend too weak" not in c["verdict"]
    grid = d.test_X
    for m, k in zip(est.estimators_, with_spline):
        assert (getattr(m, "spline_band_", None) is not None) == k
        if k:  # the line's head and draws, widened with zeros: the member predicts and draws as the line candidate
            assert isinstance(m.nets_["treatment"], SplineTerms)
            line = copy.deepcopy(m)
            del line.spline_band_
            line.nets_["treatment"] = line.nets_["treatment"].net
            line.heads_.u, line.head_draws_ = m.candidates_["heads"][0].clone(), m.candidates_["draws"][0].clone()
            np.testing.assert_allclose(m.predict(grid), line.predict(grid), rtol=1e-12, atol=1e-12)
            own = copy.deepcopy(m)
            del own.spline_band_
            for a, b in zip(own.predict_interval(grid), line.predict_interval(grid)):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    pred, (lo, hi) = est.predict(grid), est.predict_interval(grid)
    kept = [m.__dict__.pop("spline_band_", None) for m in est.estimators_]
    lo1, hi1 = est.predict_interval(grid)
    np.testing.assert_array_equal(est.predict(grid), pred)
    for m, s in zip(est.estimators_, kept):
        if s is not None:
            m.spline_band_ = s
    assert np.all(lo <= lo1) and np.all(hi >= hi1) and np.any(hi - lo > hi1 - lo1)
    # the summary's standard errors grow with its widened intervals: no p-value below 5% where the interval holds 0
    table = est.summary_estimates_
    inside = (table["lower"] <= 0) & (0 <= table["upper"])
    assert inside.any() and (table.loc[inside, "p_value"] >= 0.05 - 1e-9).all()
    path = tmp_path / "line_band.pt"
    est.save(path)
    loaded = DFIV.load(path)
    np.testing.assert_array_equal(loaded.predict(grid), pred)
    np.testing.assert_allclose(loaded.predict_interval(grid)[1], hi)
