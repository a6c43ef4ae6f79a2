"""A discrete instrument whose propensity depends on the covariates, which act nonlinearly (issue 34)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ._design import Design, check_n, tabular_design

_TEST_T = np.linspace(-2.0, 3.0, 11)
_TEST_X = np.array([-1.5, -0.5, 0.5, 1.5])


def nonlinear_controls_structural(t, x, *, slope: float = 1.0):
    """h(t, x) = slope·t + 2 sin(2x) + x²: linear in t, nonlinear in x."""
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    return slope * t + 2.0 * np.sin(2.0 * x) + x**2


def nonlinear_controls_iv(n: int = 2000, *, values: int = 2, seed=0) -> Design:
    """A K-valued instrument (binary by default) whose propensity depends on x², and covariate effects that
    no line in x captures: the design on which a line in t *and* x (2SLS with linear controls) reported an
    average marginal effect of 2.80 for a true 1.0 (issue 34).

    Notes
    -----
    Draw order x, instrument, u, treatment noise, outcome noise::

        x ~ U(−2, 2),  p(x) = logistic(2x² − 3),  z ~ Binomial(values − 1, p(x))   (Bernoulli for values=2)
        u ~ N(0, 1),   t = z + 0.5x + u + 0.5·N(0, 1)
        y = h(t, x) + u + 0.3·N(0, 1),   h(t, x) = t + 2 sin(2x) + x²

    The instrument identifies a(x)·t + c(x) for each x (values = 2), here with a(x) = 1.

    Returns
    -------
    Design
        ``kind="iv"``; roles outcome ``"y"``, treatment ``"t"``, instrument ``"z"``, covariate ``"x"``.
        ``test_X`` is t ∈ linspace(−2, 3, 11) × x ∈ {−1.5, −0.5, 0.5, 1.5}; ``info["true_slope"]`` = 1.

    Examples
    --------
    >>> from deepcausal.datasets import nonlinear_controls_iv
    >>> d = nonlinear_controls_iv(500, seed=0)
    >>> sorted(d.train["z"].unique())
    [0.0, 1.0]
    """
    n = check_n(n)
    if isinstance(values, bool) or not isinstance(values, (int, np.integer)) or values < 2:
        raise ValueError(f"values must be an integer >= 2, got {values!r}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, n)
    p = 1.0 / (1.0 + np.exp(-(2.0 * x**2 - 3.0)))
    z = (rng.uniform(size=n) < p).astype(np.float64) if values == 2 else rng.binomial(values - 1, p).astype(np.float64)
    u = rng.standard_normal(n)
    t = z + 0.5 * x + u + 0.5 * rng.standard_normal(n)
    y = nonlinear_controls_structural(t, x) + u + 0.3 * rng.standard_normal(n)
    tt, xx = np.meshgrid(_TEST_T, _TEST_X, indexing="ij")
    test_X = pd.DataFrame({"t": tt.ravel(), "x": xx.ravel()})
    return tabular_design(
        name="nonlinear_controls_iv",
        kind="iv",
        roles={"outcome": ["y"], "treatment": ["t"], "instruments": ["z"], "covariates": ["x"]},
        train=pd.DataFrame({"y": y, "t": t, "z": z, "x": x}),
        test_X=test_X,
        test_truth=nonlinear_controls_structural(test_X["t"], test_X["x"]),
        structural_function=functools.partial(nonlinear_controls_structural, slope=1.0),
        info={"n": n, "values": int(values), "seed": seed, "true_slope": 1.0},
    )
