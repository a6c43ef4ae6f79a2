"""The demand IV design with many extra covariates: a few observed confounders among irrelevant noise."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._demand import _TEST_PRICES, _TEST_TIMES, _TEST_TYPES, demand_structural, psi
from ._design import Design, check_n, tabular_design

__all__ = ["demand_highdim", "demand_highdim_structural"]

# Seed of the fixed draw of the extra covariates at the test grid (the same for every training seed).
_TEST_SEED = 20240
# Share of the price shock's variance explained by the confounded covariates, and their outcome effect.
_SHOCK_SHARE = 0.45
_OUTCOME_EFFECT = 3.0


def demand_highdim_structural(price, time, customer_type, extras, *, n_confounded: int = 5):
    """Structural function of :func:`demand_highdim`: f(p, t, s) + 3·(x₁ + … + x_k).

    f is the demand function :func:`demand_structural`, 100 + (10 + p)·s·ψ(t) − 2p, and x₁..x_k the first
    ``n_confounded`` extra covariates (the confounded ones); the other extras have no effect.

    Parameters
    ----------
    price, time, customer_type : array-like of shape (m,)
        p, t and s.
    extras : array-like of shape (m, n_extra)
        The extra covariates in the design's column order (confounded ones first).
    n_confounded : int, default=5
        k, the number of confounded covariates.

    Returns
    -------
    ndarray of float64 of shape (m,).
    """
    x = np.asarray(extras, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"extras must be 2-D (m, n_extra), got shape {x.shape}")
    return np.asarray(demand_structural(price, time, customer_type), dtype=np.float64) + _OUTCOME_EFFECT * x[
        :, :n_confounded
    ].sum(axis=1)


def _names(n_extra: int, n_confounded: int) -> list[str]:
    width = max(2, len(str(n_extra)))
    conf = [f"x_conf_{j + 1:0{width}d}" for j in range(n_confounded)]
    irr = [f"x_irr_{j + 1:0{width}d}" for j in range(n_confounded, n_extra)]
    return conf + irr


def demand_highdim(n: int = 5000, *, n_extra: int = 50, n_confounded: int = 5, rho: float = 0.5, seed=0) -> Design:
    """Demand IV design plus ``n_extra`` covariates: ``n_confounded`` observed confounders, the rest noise.

    The first ``n_confounded`` extra covariates are demand drivers a firm sees and prices on: they make up
    part of the price shock and also move sales, so they confound price and sales (and must be controlled
    for); the fuel cost still instruments the remaining, hidden part of the shock. The other extras are
    irrelevant (independent of everything). The structural function is the demand function evaluated at the
    covariates: h(p, t, s, x) = f(p, t, s) + 3·(x₁ + … + x_k).

    Parameters
    ----------
    n : int, default=5000
        Number of training rows.
    n_extra : int, default=50
        Number of extra covariates (≥ ``n_confounded``).
    n_confounded : int, default=5
        k, how many of them are confounders (the first k columns).
    rho : float, default=0.5
        Correlation in [−1, 1] between the hidden part of the price shock and the sales noise.
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Design
        ``kind="iv"``; roles: outcome ``"sales"``, treatment ``"price"``, instrument ``"cost"``, covariates
        ``"time"``, ``"customer_type"``, then ``x_conf_01`` … ``x_conf_k`` and ``x_irr_{k+1}`` … ``x_irr_{n_extra}``.
        ``test_X`` is the 2,800-row grid of :func:`demand` (p ∈ linspace(10, 25, 20) × t ∈ linspace(0, 10, 20)
        × s ∈ {1..7}, p outermost) with the extra covariates set to one fixed draw: row i gets row i of a
        (2800, n_extra) standard-normal matrix drawn by ``default_rng(20240)`` (the same for every ``seed``).
        ``structural_function(price, time, customer_type, extras)`` is :func:`demand_highdim_structural`
        with this ``n_confounded``. ``info["confounded"]`` / ``info["irrelevant"]`` name the columns.

    Notes
    -----
    Draw order s, t, c, the extras (one (n, n_extra) standard-normal matrix), v₀, outcome noise; with
    a = √(0.45/k) (the confounders explain 45% of the price shock's variance)::

        s ~ Uniform{1..7},  t ~ U(0, 10),  c ~ N(0, 1),  x ~ N(0, I_{n_extra}),  v₀ ~ N(0, 1)
        v = a·(x₁ + … + x_k) + √(1 − k a²)·v₀          (Var v = 1, as in demand)
        e = ρ v₀ + √(1 − ρ²)·N(0, 1)
        p = 25 + (c + 3) ψ(t) + v
        y = f(p, t, s) + 3·(x₁ + … + x_k) + e

    E[e | c, t, s, x] = 0, so cost is a valid instrument given all the covariates; leaving x₁..x_k out of
    the covariates leaves them in the error, correlated with price. With k = 0 the design is
    :func:`demand` (different draws) with ``n_extra`` irrelevant columns.

    References
    ----------
    Hartford, Lewis, Leyton-Brown, Taddy (2017). Deep IV: a flexible approach for counterfactual prediction.
    ICML (the demand design; the extra covariates are this package's extension).

    Examples
    --------
    >>> from deepcausal.datasets import demand_highdim
    >>> d = demand_highdim(300, seed=0)
    >>> len(d.roles["covariates"]), d.info["confounded"][:2]
    (52, ['x_conf_01', 'x_conf_02'])
    """
    n = check_n(n)
    if isinstance(n_extra, bool) or not isinstance(n_extra, (int, np.integer)) or n_extra < 0:
        raise ValueError(f"n_extra must be a non-negative integer, got {n_extra!r}")
    if (isinstance(n_confounded, bool) or not isinstance(n_confounded, (int, np.integer))
            or not 0 <= n_confounded <= n_extra):
        raise ValueError(f"n_confounded must be an integer in [0, n_extra={n_extra}], got {n_confounded!r}")
    n_extra, k = int(n_extra), int(n_confounded)
    rho = float(rho)
    if not -1.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [-1, 1], got {rho}")
    a = math.sqrt(_SHOCK_SHARE / k) if k else 0.0

    rng = np.random.default_rng(seed)
    s = rng.integers(1, 8, size=n)
    t = rng.uniform(0.0, 10.0, size=n)
    c = rng.standard_normal(n)
    extras = rng.standard_normal((n, n_extra))
    v0 = rng.standard_normal(n)
    e = rho * v0 + math.sqrt(1.0 - rho**2) * rng.standard_normal(n)
    v = a * extras[:, :k].sum(axis=1) + math.sqrt(1.0 - k * a**2) * v0
    p = 25.0 + (c + 3.0) * psi(t) + v
    y = demand_highdim_structural(p, t, s, extras, n_confounded=k) + e

    names = _names(n_extra, k)
    train = pd.DataFrame({"sales": y, "price": p, "cost": c, "time": t, "customer_type": s.astype(np.float64)})
    train = pd.concat([train, pd.DataFrame(extras, columns=names)], axis=1)

    gp, gt, gs = np.meshgrid(_TEST_PRICES, _TEST_TIMES, _TEST_TYPES, indexing="ij")
    test_extras = np.random.default_rng(_TEST_SEED).standard_normal((gp.size, n_extra))
    test_X = pd.DataFrame({"price": gp.ravel(), "time": gt.ravel(), "customer_type": gs.ravel().astype(np.float64)})
    test_X = pd.concat([test_X, pd.DataFrame(test_extras, columns=names)], axis=1)
    truth = demand_highdim_structural(test_X["price"], test_X["time"], test_X["customer_type"], test_extras,
                                      n_confounded=k)

    def structural(price, time, customer_type, extras):
        return demand_highdim_structural(price, time, customer_type, extras, n_confounded=k)

    structural.__doc__ = demand_highdim_structural.__doc__
    return tabular_design(
        name="demand_highdim",
        kind="iv",
        roles={
            "outcome": ["sales"],
            "treatment": ["price"],
            "instruments": ["cost"],
            "covariates": ["time", "customer_type", *names],
        },
        train=train,
        test_X=test_X,
        test_truth=truth,
        structural_function=structural,
        info={
            "n": n,
            "n_extra": n_extra,
            "n_confounded": k,
            "rho": rho,
            "seed": seed,
            "confounded": names[:k],
            "irrelevant": names[k:],
            "shock_loading": a,
            "outcome_effect": _OUTCOME_EFFECT,
            "test_extras_seed": _TEST_SEED,
        },
    )
