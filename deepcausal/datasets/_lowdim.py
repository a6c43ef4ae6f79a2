"""The classic one-dimensional IV design where confounding dominates (Bennett, Kallus, Schnabel 2019)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._design import Design, check_n, tabular_design

__all__ = ["lowdim", "lowdim_structural", "LOWDIM_FUNCTIONS"]

# Seed of the test draws: the same 1,000 test points whatever the training seed or g.
_TEST_SEED = 20190
_N_TEST = 1000


def _abs(t):
    return np.abs(t)


def _linear(t):
    return 3.0 * t - 2.0


def _sin(t):
    return np.sin(t)


def _step(t):
    return (t >= 0).astype(np.float64)


LOWDIM_FUNCTIONS = {"abs": _abs, "linear": _linear, "sin": _sin, "step": _step}
"""The structural functions g of :func:`lowdim`: abs(t), 3t − 2, sin t and 1{t ≥ 0}."""


def lowdim_structural(t, g: str = "sin"):
    """Structural function g(t) of the :func:`lowdim` design.

    Parameters
    ----------
    t : array-like
        Treatment values.
    g : {"abs", "linear", "sin", "step"}, default="sin"
        abs(t), 3t − 2, sin t or 1{t ≥ 0}.

    Returns
    -------
    ndarray of float64 with the shape of ``t``.
    """
    return LOWDIM_FUNCTIONS[_check_g(g)](np.asarray(t, dtype=np.float64))


def _check_g(g) -> str:
    if g not in LOWDIM_FUNCTIONS:
        raise ValueError(f"g must be one of {sorted(LOWDIM_FUNCTIONS)}, got {g!r}")
    return g


def _draw(rng: np.random.Generator, n: int):
    # Draw order z (n × 2), e, γ, δ.
    z = rng.uniform(-3.0, 3.0, size=(n, 2))
    e = rng.standard_normal(n)
    gamma = rng.normal(0.0, 0.1, size=n)
    delta = rng.normal(0.0, 0.1, size=n)
    return z, e, gamma, delta


def lowdim(n: int = 5000, *, g: str = "sin", seed=0) -> Design:
    """One-dimensional IV design with strong confounding: y = g(t) + e where t = z₁ + e + γ.

    The noise e enters both the treatment and the outcome, so E[y | t] is far from g(t); the instrument
    z₁ shifts t independently of e (z₂ is an irrelevant second instrument).

    Parameters
    ----------
    n : int, default=5000
        Number of training rows.
    g : {"abs", "linear", "sin", "step"}, default="sin"
        Structural function: abs(t), 3t − 2, sin t or 1{t ≥ 0}.
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Design
        ``kind="iv"``; roles: outcome ``"y"``, treatment ``"t"``, instruments ``["z1", "z2"]``, no
        covariates. ``test_X`` holds 1,000 fresh draws of t from the training distribution with a fixed
        seed (sorted, identical for every ``seed`` and ``g``); ``structural_function(t)`` is g.

    Notes
    -----
    Draw order z, e, γ, δ::

        z ~ U(−3, 3)²,  e ~ N(0, 1),  γ, δ ~ N(0, 0.1²)
        t = z₁ + e + γ
        y = g(t) + e + δ

    References
    ----------
    Bennett, Kallus, Schnabel (2019). Deep generalized method of moments for instrumental variable
    analysis. NeurIPS.

    Examples
    --------
    >>> from deepcausal.datasets import lowdim
    >>> d = lowdim(500, g="abs", seed=1)
    >>> d.roles["instruments"]
    ['z1', 'z2']
    """
    n = check_n(n)
    g = _check_g(g)
    func = LOWDIM_FUNCTIONS[g]
    z, e, gamma, delta = _draw(np.random.default_rng(seed), n)
    t = z[:, 0] + e + gamma
    y = func(t) + e + delta
    train = pd.DataFrame({"y": y, "t": t, "z1": z[:, 0], "z2": z[:, 1]})

    z_te, e_te, gamma_te, _ = _draw(np.random.default_rng(_TEST_SEED), _N_TEST)
    t_test = np.sort(z_te[:, 0] + e_te + gamma_te)
    return tabular_design(
        name=f"lowdim_{g}",
        kind="iv",
        roles={"outcome": ["y"], "treatment": ["t"], "instruments": ["z1", "z2"], "covariates": []},
        train=train,
        test_X=pd.DataFrame({"t": t_test}),
        test_truth=func(t_test),
        structural_function=func,
        info={"n": n, "g": g, "seed": seed},
    )
