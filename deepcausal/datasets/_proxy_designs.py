"""Low-dimensional proxy (PCL) designs: Mastouri et al. (2021) and a continuous Miao et al. (2018) design."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._design import Design, check_n, tabular_design

__all__ = ["mastouri_proxy", "mastouri_proxy_structural", "miao_proxy", "miao_proxy_structural"]


# ------------------------------------------------------------------------------------ Mastouri et al.
_MASTOURI_TEST_A = np.linspace(-1.0, 2.0, 20)
_MASTOURI_A_NOISE = 0.05


def mastouri_proxy_structural(a):
    """f(a) = E[U₂ cos(2(a + 0.3U₁ + 0.2))] of :func:`mastouri_proxy`, in closed form.

    U₂ ~ U(−1, 2) falls in (−1, 0), (0, 1), (1, 2) with probability 1/3 each, with conditional means
    −0.5, 0.5, 1.5; given the interval, U₁ is uniform on (0, 1) outside (0, 1) and on (−1, 0) inside it,
    independent of U₂. With c = 2a + 0.4 and E_{U~U(l, l+1)} cos(c + 0.6U) = (sin(c + 0.6(l + 1)) −
    sin(c + 0.6l))/0.6::

        f(a) = (1/3)·[(−0.5 + 1.5)·C₀(a) + 0.5·C₋₁(a)],
        C₀(a) = (sin(c + 0.6) − sin c)/0.6,   C₋₁(a) = (sin c − sin(c − 0.6))/0.6

    Parameters
    ----------
    a : array-like
        Treatment values.

    Returns
    -------
    ndarray of float64 with the shape of ``a``.
    """
    c = 2.0 * np.asarray(a, dtype=np.float64) + 0.4
    c0 = (np.sin(c + 0.6) - np.sin(c)) / 0.6
    c_minus = (np.sin(c) - np.sin(c - 0.6)) / 0.6
    return (c0 + 0.5 * c_minus) / 3.0


def mastouri_proxy(n: int = 2000, *, seed=0) -> Design:
    """The synthetic low-dimensional PCL design of Mastouri et al. (2021): two hidden confounders U₁, U₂.

    U₂ drives the treatment almost deterministically and scales the outcome; U₁ (whose distribution shifts
    with U₂) enters the outcome's phase. Z = (z1, z2) and W = (w1, w2) are noisy copies of (U₁, U₂), each
    with one strongly and one weakly informative coordinate.

    Parameters
    ----------
    n : int, default=2000
        Number of training rows.
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Design
        ``kind="proxy"``; roles: outcome ``"y"``, treatment ``"a"``, treatment_proxy ``["z1", "z2"]``,
        outcome_proxy ``["w1", "w2"]``, no covariates. ``test_X`` holds a ∈ linspace(−1, 2, 20);
        ``structural_function(a)`` is :func:`mastouri_proxy_structural` (closed form).
        ``info["hidden"]`` holds the confounders ``{"u1": ..., "u2": ...}`` (for diagnostics only).

    Notes
    -----
    Draw order U₂, U₁'s uniform, the w1, w2, z1, z2 noises, the A noise (the outcome has no noise)::

        U₂ ~ U(−1, 2),   U₁ = U(0, 1) − 1{0 < U₂ < 1}
        w1 = U₁ + U(−1, 1),   w2 = U₂ + 3·N(0, 1)
        z1 = U₁ + 3·N(0, 1),  z2 = U₂ + U(−1, 1)
        A  = U₂ + 0.05·N(0, 1)
        Y  = U₂·cos(2(A + 0.3U₁ + 0.2))

    The dose-response f(a) = E[U₂ cos(2(a + 0.3U₁ + 0.2))] is exact (see :func:`mastouri_proxy_structural`);
    the public implementations average over 100 or 10,000 Monte Carlo draws of U instead.

    Source check: verified against the public code of Mastouri et al.
    (github.com/Afsaneh-Mastouri/KPV, ``Experiments/SyntheticExperiment/GenerativeFunction.py``: the U, Z, W,
    A and Y equations, A's noise scale 0.05) and its re-implementation by Xu, Kanagawa & Gretton (2021)
    (github.com/liyuan9988/DeepFeatureProxyVariable, ``src/data/ate/kpv_experiment_sim.py``, whose draw
    order and test points linspace(−1, 2, 20) are used here). Mastouri et al.'s own runs standardise the
    data and use 50 test points; this design keeps the raw scale.

    References
    ----------
    Mastouri, A., Zhu, Y., Gultchin, L., Korba, A., Silva, R., Kusner, M. J., Gretton, A. and Muandet, K.
    (2021). Proximal causal learning with kernels: two-stage estimation and moment restriction. ICML
    (PMLR 139). Xu, L., Kanagawa, H. and Gretton, A. (2021). Deep proxy causal learning and its application
    to confounded bandit policy evaluation. NeurIPS.

    Examples
    --------
    >>> from deepcausal.datasets import mastouri_proxy
    >>> d = mastouri_proxy(500, seed=0)
    >>> d.fit_kwargs()["treatment_proxy"], d.n_test
    (['z1', 'z2'], 20)
    """
    n = check_n(n)
    rng = np.random.default_rng(seed)
    u2 = rng.uniform(-1.0, 2.0, n)
    u1 = rng.uniform(0.0, 1.0, n) - ((u2 > 0.0) & (u2 < 1.0))
    w1 = u1 + rng.uniform(-1.0, 1.0, n)
    w2 = u2 + 3.0 * rng.standard_normal(n)
    z1 = u1 + 3.0 * rng.standard_normal(n)
    z2 = u2 + rng.uniform(-1.0, 1.0, n)
    a = u2 + _MASTOURI_A_NOISE * rng.standard_normal(n)
    y = u2 * np.cos(2.0 * (a + 0.3 * u1 + 0.2))
    return tabular_design(
        name="mastouri_proxy",
        kind="proxy",
        roles={
            "outcome": ["y"],
            "treatment": ["a"],
            "treatment_proxy": ["z1", "z2"],
            "outcome_proxy": ["w1", "w2"],
            "covariates": [],
        },
        train=pd.DataFrame({"y": y, "a": a, "z1": z1, "z2": z2, "w1": w1, "w2": w2}),
        test_X=pd.DataFrame({"a": _MASTOURI_TEST_A.copy()}),
        test_truth=mastouri_proxy_structural(_MASTOURI_TEST_A),
        structural_function=mastouri_proxy_structural,
        info={"n": n, "seed": seed, "hidden": {"u1": u1, "u2": u2}},
    )


# ------------------------------------------------------------------------------------ Miao et al.
_MIAO_TEST_A = np.linspace(-2.0, 2.0, 21)
_MIAO_LOADING = 0.8  # each of Z, W, A is 0.8·U + 0.6·noise (unit variance, correlation 0.8 with U)
_MIAO_NOISE = 0.6
_MIAO_Y_NOISE = 0.5


def miao_proxy_structural(a):
    """f(a) = 1.5 sin(a) + 0.25a², the dose-response E[Y | do(A = a)] of :func:`miao_proxy`."""
    a = np.asarray(a, dtype=np.float64)
    return 1.5 * np.sin(a) + 0.25 * a**2


def miao_proxy(n: int = 2000, *, seed=0) -> Design:
    """Continuous proxy design in the setting of Miao, Geng & Tchetgen Tchetgen (2018): one hidden U, two proxies.

    A standard normal confounder U drives the treatment A and the outcome Y (with an effect on Y that grows
    with A). Z (a treatment-side proxy, or negative-control exposure) and W (an outcome-side proxy, or
    negative-control outcome) are independent noisy measurements of U: Z and W are dependent only through
    U, Z does not affect Y, and A does not affect W — the conditions of Miao et al.'s identification result.
    In this Gaussian location model their completeness condition holds, and the outcome bridge is linear in
    W: h(w, a) = f(a) + (1 + 0.5a)·w/0.8 solves E[Y − h(W, A) | A, Z] = 0.

    Parameters
    ----------
    n : int, default=2000
        Number of training rows.
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Design
        ``kind="proxy"``; roles: outcome ``"y"``, treatment ``"a"``, treatment_proxy ``["z"]``,
        outcome_proxy ``["w"]``, no covariates. ``test_X`` holds a ∈ linspace(−2, 2, 21);
        ``structural_function(a)`` is :func:`miao_proxy_structural`. ``info["hidden"]`` holds ``{"u": U}``.

    Notes
    -----
    Draw order U, the Z, W, A noises, the outcome noise::

        U ~ N(0, 1)
        Z = 0.8U + 0.6·N(0, 1),   W = 0.8U + 0.6·N(0, 1),   A = 0.8U + 0.6·N(0, 1)
        Y = f(A) + (1 + 0.5A)·U + 0.5·N(0, 1),   f(a) = 1.5 sin(a) + 0.25a²

    E[Y | do(A = a)] = f(a) + (1 + 0.5a)·E[U] = f(a) exactly. The observational regression is confounded:
    E[Y | A = a] = f(a) + 0.8a(1 + 0.5a).

    Source check: Miao et al. (2018) give the identification theory (two proxies, conditionally independent
    given U, with a completeness/rank condition that exponential-family models such as this Gaussian one
    satisfy). This specific data-generating process — the coefficients, f and the heterogeneous U effect — is
    this package's construction in their setting, not a simulation taken from the paper.

    References
    ----------
    Miao, W., Geng, Z. and Tchetgen Tchetgen, E. J. (2018). Identifying causal effects with proxy variables
    of an unmeasured confounder. Biometrika 105(4), 987–993.

    Examples
    --------
    >>> from deepcausal.datasets import miao_proxy
    >>> d = miao_proxy(500, seed=0)
    >>> d.roles["treatment_proxy"], d.roles["outcome_proxy"]
    (['z'], ['w'])
    """
    n = check_n(n)
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(n)
    z = _MIAO_LOADING * u + _MIAO_NOISE * rng.standard_normal(n)
    w = _MIAO_LOADING * u + _MIAO_NOISE * rng.standard_normal(n)
    a = _MIAO_LOADING * u + _MIAO_NOISE * rng.standard_normal(n)
    y = miao_proxy_structural(a) + (1.0 + 0.5 * a) * u + _MIAO_Y_NOISE * rng.standard_normal(n)
    return tabular_design(
        name="miao_proxy",
        kind="proxy",
        roles={"outcome": ["y"], "treatment": ["a"], "treatment_proxy": ["z"], "outcome_proxy": ["w"],
               "covariates": []},
        train=pd.DataFrame({"y": y, "a": a, "z": z, "w": w}),
        test_X=pd.DataFrame({"a": _MIAO_TEST_A.copy()}),
        test_truth=miao_proxy_structural(_MIAO_TEST_A),
        structural_function=miao_proxy_structural,
        info={"n": n, "seed": seed, "hidden": {"u": u}},
    )
