"""One-dimensional nonparametric IV designs from the econometrics and kernel literature.

Newey & Powell (2003), Chen & Christensen (2018) as run by the ``npiv`` package, Horowitz (2011), the
linear and sigmoid designs of kernel IV (Singh, Sahani & Gretton 2019) and a weak-instrument variant of
Newey & Powell. Each generator is a pure function of ``(n, seed, ...)``; the test grid is fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ._design import Design, check_n, tabular_design

__all__ = [
    "newey_powell",
    "newey_powell_structural",
    "chen_christensen",
    "chen_christensen_structural",
    "CHEN_CHRISTENSEN_XI",
    "horowitz",
    "horowitz_structural",
    "horowitz_density",
    "horowitz_instrument_mean",
    "kiv_linear",
    "kiv_sigmoid",
    "kiv_linear_structural",
    "kiv_sigmoid_structural",
    "weak_iv",
]

_IV_ROLES = {"outcome": ["y"], "treatment": ["x"], "instruments": ["z"], "covariates": []}


def _correlated_normals(rng: np.random.Generator, n: int, cov: np.ndarray) -> np.ndarray:
    """(n, k) rows N(0, cov): one (n, k) standard-normal draw times the lower Cholesky factor's transpose."""
    g = rng.standard_normal((n, cov.shape[0]))
    return g @ np.linalg.cholesky(cov).T


def _check_real(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _iv_design(name, x, y, z, grid, func, info) -> Design:
    return tabular_design(
        name=name,
        kind="iv",
        roles={k: list(v) for k, v in _IV_ROLES.items()},
        train=pd.DataFrame({"y": y, "x": x, "z": z}),
        test_X=pd.DataFrame({"x": grid.copy()}),
        test_truth=func(grid),
        structural_function=func,
        info=info,
    )


# ------------------------------------------------------------------------------------ Newey & Powell
# (ε, V) correlated 0.5, Z independent: the covariance of (ε, V, Z).
_NP_COV = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
_NP_TEST_X = np.linspace(-3.0, 3.0, 121)


def newey_powell_structural(x):
    """g₀(x) = ln(|x − 1| + 1)·sgn(x − 1), the structural function of :func:`newey_powell`.

    Parameters
    ----------
    x : array-like
        Treatment values.

    Returns
    -------
    ndarray of float64 with the shape of ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.log(np.abs(x - 1.0) + 1.0) * np.sign(x - 1.0)


def newey_powell(n: int = 5000, *, seed=0) -> Design:
    """Newey & Powell (2003)'s Monte Carlo design: y = ln(|x − 1| + 1)·sgn(x − 1) + ε with x = z + v.

    The treatment noise v and the outcome noise ε are correlated 0.5, so E[y | x] ≠ g₀(x); the standard
    normal instrument z shifts x and is independent of (ε, v).

    Parameters
    ----------
    n : int, default=5000
        Number of training rows.
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Design
        ``kind="iv"``; roles: outcome ``"y"``, treatment ``"x"``, instrument ``"z"``, no covariates.
        ``test_X`` is x ∈ linspace(−3, 3, 121) (x ~ N(0, 2): about 97% of the mass); ``structural_function``
        is :func:`newey_powell_structural`.

    Notes
    -----
    Draw order: one (n, 3) standard-normal matrix G, turned into (ε, v, z) = G·Lᵀ with L the Cholesky factor
    of the covariance below::

        (ε, v, z) ~ N(0, [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])
        x = z + v
        y = g₀(x) + ε,   g₀(x) = ln(|x − 1| + 1)·sgn(x − 1)

    Source check: the error structure (ε, v, z) and x = z + v are those of ``sim_NP.m`` in the public code
    of Singh, Sahani & Gretton (2019), which its authors label "Newey Powell" (there x is then squashed to
    Φ(x/√2) and g₀ rescaled to [0, 1]: that version is :func:`kiv_sigmoid`). The untransformed
    g₀(x) = ln(|x − 1| + 1)·sgn(x − 1) on this scale is reconstructed from the literature's descriptions of
    Newey & Powell's design, not verified against the paper.

    References
    ----------
    Newey, W. K. and Powell, J. L. (2003). Instrumental variable estimation of nonparametric models.
    Econometrica 71(5), 1565–1578.

    Examples
    --------
    >>> from deepcausal.datasets import newey_powell
    >>> d = newey_powell(500, seed=1)
    >>> d.roles["instruments"], d.n_test
    (['z'], 121)
    """
    n = check_n(n)
    eps, v, z = _correlated_normals(np.random.default_rng(seed), n, _NP_COV).T
    x = z + v
    y = newey_powell_structural(x) + eps
    return _iv_design("newey_powell", x, y, z, _NP_TEST_X, newey_powell_structural, {"n": n, "seed": seed})


# ------------------------------------------------------------------------------------ Chen & Christensen
CHEN_CHRISTENSEN_XI = {"mild": 0.85, "severe": 0.5}
"""Correlation ξ of (X*, W*) in :func:`chen_christensen`: 0.85 (npiv's example) and 0.5."""
_CC_COV_XU = 0.5
_CC_VAR_U = 0.1
_CC_TEST_X = np.linspace(-0.95, 0.95, 101)


def chen_christensen_structural(x):
    """h₀(x) = sin(πx), the structural function of :func:`chen_christensen` (x in (−1, 1))."""
    return np.sin(np.pi * np.asarray(x, dtype=np.float64))


def chen_christensen(n: int = 5000, *, ill_posed: str = "mild", seed=0) -> Design:
    """Chen & Christensen's Gaussian-copula NPIV design as run in the ``npiv`` package: y = sin(πx) + u.

    X and W are probit transforms of jointly normal (X*, W*); X* is correlated with the outcome noise, W* is
    not. The strength ξ of the X*–W* correlation sets how ill-posed the problem is.

    Parameters
    ----------
    n : int, default=5000
        Number of training rows.
    ill_posed : {"mild", "severe"}, default="mild"
        ``"mild"``: ξ = 0.85 (the value in npiv's documented example); ``"severe"``: ξ = 0.5.
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Design
        ``kind="iv"``; roles: outcome ``"y"``, treatment ``"x"``, instrument ``"z"`` (the paper's W), no
        covariates. ``test_X`` is x ∈ linspace(−0.95, 0.95, 101); ``structural_function`` is
        :func:`chen_christensen_structural`. ``info["xi"]`` is ξ.

    Notes
    -----
    Draw order: one (n, 3) standard-normal matrix G, turned into (X*, W*, U) = G·Lᵀ with L the Cholesky
    factor of Σ::

        (X*, W*, U) ~ N(0, Σ),   Σ = [[1, ξ, 0.5], [ξ, 1, 0], [0.5, 0, 1]]
        x = 2Φ(X*) − 1,   z = 2Φ(W*) − 1          (uniform on (−1, 1))
        y = sin(πx) + √0.1·U

    Why ξ sets the ill-posedness: with a Gaussian copula E[He_k(X*) | W*] = ξᵏ He_k(W*) (Mehler), so the
    singular values of h ↦ E[h(X) | W] are ξᵏ. Both variants decay geometrically (severely ill-posed in the
    technical sense, as any Gaussian design is); ξ = 0.85 loses a factor 5 by the 10th component, ξ = 0.5 a
    factor 1,000, so "mild" and "severe" are relative. Σ is positive definite only for ξ² < 0.75.

    Source check: Σ with ξ = 0.85 and cov(X*, U) = 0.5, var(u) = 0.1, x = 2Φ(X*) − 1, w = 2Φ(W*) − 1 and
    h₀(x) = sin(πx) are verified against the public code of the ``npiv`` R package (the example of
    ``man/npiv.Rd`` and ``demo/sin.R``, github.com/JeffreyRacine/npiv). The severe value ξ = 0.5 is this
    package's choice; that these exact numbers are the Monte Carlo of Chen & Christensen (2018) itself is
    not verified against that paper.

    References
    ----------
    Chen, X. and Christensen, T. M. (2018). Optimal sup-norm rates and uniform inference on nonlinear
    functionals of nonparametric IV regression. Quantitative Economics 9(1), 39–84.
    Chen, X., Christensen, T. M. and Kankanala, S. (2024). Adaptive estimation and uniform confidence bands
    for nonparametric structural functions and elasticities. arXiv:2107.11869 (Review of Economic Studies).

    Examples
    --------
    >>> from deepcausal.datasets import chen_christensen
    >>> d = chen_christensen(500, ill_posed="severe", seed=0)
    >>> d.info["xi"]
    0.5
    """
    n = check_n(n)
    if ill_posed not in CHEN_CHRISTENSEN_XI:
        raise ValueError(f"ill_posed must be one of {sorted(CHEN_CHRISTENSEN_XI)}, got {ill_posed!r}")
    xi = CHEN_CHRISTENSEN_XI[ill_posed]
    cov = np.array([[1.0, xi, _CC_COV_XU], [xi, 1.0, 0.0], [_CC_COV_XU, 0.0, 1.0]])
    x_star, w_star, u = _correlated_normals(np.random.default_rng(seed), n, cov).T
    x = 2.0 * ndtr(x_star) - 1.0
    z = 2.0 * ndtr(w_star) - 1.0
    y = chen_christensen_structural(x) + math.sqrt(_CC_VAR_U) * u
    return _iv_design(
        f"chen_christensen_{ill_posed}", x, y, z, _CC_TEST_X, chen_christensen_structural,
        {"n": n, "seed": seed, "ill_posed": ill_posed, "xi": xi, "cov_xu": _CC_COV_XU, "var_u": _CC_VAR_U},
    )


# ------------------------------------------------------------------------------------ Horowitz
_H_LAMBDA_SCALE = 0.2  # λ_k = 0.2 k⁻⁴: the singular values of T are √0.2·k⁻²
_H_B0 = 0.5
_H_NOISE_SD = 0.1
_H_TEST_X = np.linspace(0.0, 1.0, 101)
# Largest value of the density (at x = w = 0 and x = w = 1): 1 + √0.2·(π²/6 + π²/6).
_H_DENSITY_MAX = 1.0 + math.sqrt(_H_LAMBDA_SCALE) * np.pi**2 / 3.0


def _cos_series(theta, power: int):
    """Σ_{k≥1} cos(kθ)/k^power in closed form (Bernoulli polynomials), for |θ| ≤ 2π and power 2, 4 or 6."""
    t = np.abs(np.asarray(theta, dtype=np.float64))
    p = np.pi
    if power == 2:
        return p**2 / 6 - p * t / 2 + t**2 / 4
    if power == 4:
        return p**4 / 90 - p**2 * t**2 / 12 + p * t**3 / 12 - t**4 / 48
    if power == 6:
        return p**6 / 945 - p**4 * t**2 / 180 + p**2 * t**4 / 144 - p * t**5 / 240 + t**6 / 1440
    raise ValueError(power)


def horowitz_structural(x):
    """g(x) = 0.5 + √2·Σ_{k≥1} k⁻⁴ cos(kπx) on [0, 1], the structural function of :func:`horowitz`.

    Evaluated in closed form: Σ cos(kθ)/k⁴ = π⁴/90 − π²θ²/12 + πθ³/12 − θ⁴/48 for θ = πx ∈ [0, π].
    """
    return _H_B0 + math.sqrt(2.0) * _cos_series(np.pi * np.asarray(x, dtype=np.float64), 4)


def horowitz_instrument_mean(w):
    """E[g(X) | W = w] = 0.5 + √0.4·Σ_{k≥1} k⁻⁶ cos(kπw) of :func:`horowitz` (closed form)."""
    return _H_B0 + math.sqrt(2.0 * _H_LAMBDA_SCALE) * _cos_series(np.pi * np.asarray(w, dtype=np.float64), 6)


def horowitz_density(x, w):
    """Joint density of (X, W) in :func:`horowitz` on [0, 1]²: 1 + 2√0.2·Σ_{k≥1} k⁻² cos(kπx) cos(kπw).

    Closed form with 2cos a cos b = cos(a − b) + cos(a + b) and Σ cos(kθ)/k² = π²/6 − π|θ|/2 + θ²/4.
    Both marginals are uniform; the density lies between 1 − √0.2·π²/6 ≈ 0.26 and 1 + √0.2·π²/3 ≈ 2.47.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    return 1.0 + math.sqrt(_H_LAMBDA_SCALE) * (_cos_series(np.pi * (x - w), 2) + _cos_series(np.pi * (x + w), 2))


def _horowitz_xw(rng: np.random.Generator, n: int):
    """Rejection sampling from :func:`horowitz_density` with uniform proposals (acceptance ≈ 1/2.47)."""
    xs, ws, have = [], [], 0
    batch = int(math.ceil(1.2 * _H_DENSITY_MAX * n)) + 16
    while have < n:
        x = rng.uniform(size=batch)
        w = rng.uniform(size=batch)
        u = rng.uniform(size=batch)
        keep = u * _H_DENSITY_MAX <= horowitz_density(x, w)
        xs.append(x[keep])
        ws.append(w[keep])
        have += int(keep.sum())
    return np.concatenate(xs)[:n], np.concatenate(ws)[:n]


def horowitz(n: int = 1000, *, seed=0) -> Design:
    """Horowitz's cosine-series NPIV design: (X, W) from an explicit joint density, Y = E[g(X) | W] + V.

    The operator h ↦ E[h(X) | W] is diagonal in the cosine basis with singular values √0.2·k⁻² (a mildly,
    i.e. polynomially, ill-posed problem), and the structural function g has cosine coefficients k⁻⁴. The
    error U = E[g(X) | W] − g(X) + V has E[U | W] = 0 by construction but is strongly correlated with X:
    E[Y | X] keeps only a 0.2k⁻⁴ fraction of g's k-th coefficient.

    Parameters
    ----------
    n : int, default=1000
        Number of training rows.
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Design
        ``kind="iv"``; roles: outcome ``"y"``, treatment ``"x"``, instrument ``"z"`` (the paper's W), no
        covariates. ``test_X`` is x ∈ linspace(0, 1, 101); ``structural_function`` is
        :func:`horowitz_structural`.

    Notes
    -----
    With ψ₁ = 1 and ψ_{k+1}(t) = √2 cos(kπt) (orthonormal on [0, 1]), λ₁ = 1 and λ_{k+1} = 0.2k⁻⁴::

        f_XW(x, w) = Σ_j λ_j^{1/2} ψ_j(x) ψ_j(w) = 1 + 2√0.2 Σ_{k≥1} k⁻² cos(kπx) cos(kπw)
        g(x) = 0.5 + Σ_{k≥1} k⁻⁴ ψ_{k+1}(x)
        E[g(X) | W = w] = 0.5 + Σ_{k≥1} k⁻⁴ λ_{k+1}^{1/2} ψ_{k+1}(w) = 0.5 + √0.4 Σ k⁻⁶ cos(kπw)
        Y = g(X) + U,   U = E[g(X) | W] − g(X) + V,   V ~ N(0, 0.1²)

    so Y = E[g(X) | W] + V. All three series are summed exactly (Bernoulli-polynomial closed forms; no
    truncation). Draw order: (X, W) by rejection sampling — batches of uniform proposals x, then w, then the
    acceptance uniform u, accepted when 2.47·u ≤ f_XW(x, w), until n pairs are accepted (the first n kept) —
    then V.

    Source check: reconstructed from Horowitz (2011)'s description of a design whose density and structural
    function are cosine series with polynomially decaying coefficients, and whose error is
    U = E[g(X) | W] − g(X) + V; the constants here (0.2, k⁻⁴, b₀ = 0.5, sd(V) = 0.1) are this package's and
    the design is not verified against the paper.

    References
    ----------
    Horowitz, J. L. (2011). Applied nonparametric instrumental variables estimation. Econometrica 79(2),
    347–394.

    Examples
    --------
    >>> from deepcausal.datasets import horowitz
    >>> d = horowitz(300, seed=0)
    >>> bool(d.train["x"].between(0, 1).all() and d.train["z"].between(0, 1).all())
    True
    """
    n = check_n(n)
    rng = np.random.default_rng(seed)
    x, w = _horowitz_xw(rng, n)
    y = horowitz_instrument_mean(w) + _H_NOISE_SD * rng.standard_normal(n)
    return _iv_design(
        "horowitz", x, y, w, _H_TEST_X, horowitz_structural,
        {"n": n, "seed": seed, "lambda_scale": _H_LAMBDA_SCALE, "b0": _H_B0, "noise_sd": _H_NOISE_SD},
    )


# ------------------------------------------------------------------------------------ kernel IV
_KIV_TEST_X = np.linspace(0.0, 1.0, 1000)


def kiv_linear_structural(x):
    """h(x) = 4x − 2, the structural function of :func:`kiv_linear`."""
    return 4.0 * np.asarray(x, dtype=np.float64) - 2.0


def kiv_sigmoid_structural(x):
    """h(x) = ln(|16x − 8| + 1)·sgn(x − 0.5), the structural function of :func:`kiv_sigmoid`."""
    x = np.asarray(x, dtype=np.float64)
    return np.log(np.abs(16.0 * x - 8.0) + 1.0) * np.sign(x - 0.5)


_KIV_FUNCS = {"linear": kiv_linear_structural, "sigmoid": kiv_sigmoid_structural}


def _kiv(n: int, seed, which: str) -> Design:
    n = check_n(n)
    e, v, w = _correlated_normals(np.random.default_rng(seed), n, _NP_COV).T
    x = ndtr((w + v) / math.sqrt(2.0))
    z = ndtr(w)
    func = _KIV_FUNCS[which]
    return _iv_design(f"kiv_{which}", x, func(x) + e, z, _KIV_TEST_X, func, {"n": n, "seed": seed})


_KIV_NOTES = """
    Draw order: one (n, 3) standard-normal matrix G, turned into (e, V, W) = G·Lᵀ with L the Cholesky factor
    of the covariance below::

        (e, V, W) ~ N(0, [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])
        x = Φ((W + V)/√2),   z = Φ(W)          (both uniform on (0, 1))
        y = h(x) + e

    Source check: verified against the public code of Singh, Sahani & Gretton (2019)
    (github.com/r4hu1-5in9h/KIV, ``supplement.zip``: ``code/aux/sim_NP.m`` and ``code/aux/get_design.m``),
    including the test points linspace(0, 1, 1000). The code names the linear design after Chen &
    Christensen and the sigmoid one after Newey & Powell.

    References
    ----------
    Singh, R., Sahani, M. and Gretton, A. (2019). Kernel instrumental variable regression. Advances in
    Neural Information Processing Systems 32, 4593–4605."""


def kiv_linear(n: int = 1000, *, seed=0) -> Design:
    return _kiv(n, seed, "linear")


def kiv_sigmoid(n: int = 1000, *, seed=0) -> Design:
    return _kiv(n, seed, "sigmoid")


_KIV_DOC = """The {which} design of kernel IV (Singh, Sahani & Gretton 2019): y = {formula} + e.

    The treatment x = Φ((W + V)/√2) has noise V correlated 0.5 with the outcome noise e; the instrument
    z = Φ(W) moves x.

    Parameters
    ----------
    n : int, default=1000
        Number of training rows.
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Design
        ``kind="iv"``; roles: outcome ``"y"``, treatment ``"x"``, instrument ``"z"``, no covariates.
        ``test_X`` is x ∈ linspace(0, 1, 1000); ``structural_function`` is :func:`kiv_{which}_structural`.

    Notes
    -----{notes}

    Examples
    --------
    >>> from deepcausal.datasets import kiv_{which}
    >>> kiv_{which}(200, seed=0).n_test
    1000
    """
kiv_linear.__doc__ = _KIV_DOC.format(which="linear", formula="4x − 2", notes=_KIV_NOTES)
kiv_sigmoid.__doc__ = _KIV_DOC.format(which="sigmoid", formula="ln(|16x − 8| + 1)·sgn(x − 0.5)", notes=_KIV_NOTES)


# ------------------------------------------------------------------------------------ weak instrument
_WEAK_TEST_X = np.linspace(-2.5, 2.5, 101)
WEAK_FIRST_STAGE = 0.053
"""Default first-stage slope of :func:`weak_iv`: expected linear F = 1 + n·0.053² ≈ 15 at n = 5,000."""


def weak_iv(n: int = 5000, *, first_stage: float = WEAK_FIRST_STAGE, seed=0) -> Design:
    """Weak-instrument variant of :func:`newey_powell`: x = π·z + v with a small π.

    Same outcome equation and noise as Newey & Powell; only the instrument's coefficient shrinks, so that
    the linear first-stage F statistic at n = 5,000 is about 15 (weak but not irrelevant).

    Parameters
    ----------
    n : int, default=5000
        Number of training rows.
    first_stage : float, default=0.053
        π, the slope of x on z. The expected linear first-stage F is 1 + n·π² (``info["expected_first_stage_F"]``).
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Design
        ``kind="iv"``; roles: outcome ``"y"``, treatment ``"x"``, instrument ``"z"``, no covariates.
        ``test_X`` is x ∈ linspace(−2.5, 2.5, 101); ``structural_function`` is :func:`newey_powell_structural`.

    Notes
    -----
    Draw order and noise as :func:`newey_powell`::

        (ε, v, z) ~ N(0, [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])
        x = π·z + v
        y = ln(|x − 1| + 1)·sgn(x − 1) + ε

    The single-draw F scatters around 1 + nπ² (a noncentral χ²₁ with noncentrality nπ², sd ≈ 7.6 at the
    default). Measured with ``deepcausal._diagnostics.first_stage_f`` on centred columns at n = 5,000 and
    π = 0.053: seeds 0–7 give F = 34.9, 5.2, 12.9, 19.4, 16.6, 13.6, 19.9, 26.8 (median 18.0).

    References
    ----------
    Newey, W. K. and Powell, J. L. (2003). Instrumental variable estimation of nonparametric models.
    Econometrica 71(5), 1565–1578. Staiger, D. and Stock, J. H. (1997). Instrumental variables regression
    with weak instruments. Econometrica 65(3), 557–586 (the F ≈ 10 rule of thumb).

    Examples
    --------
    >>> from deepcausal.datasets import weak_iv
    >>> round(weak_iv(5000).info["expected_first_stage_F"], 1)
    15.0
    """
    n = check_n(n)
    pi = _check_real(first_stage, "first_stage")
    eps, v, z = _correlated_normals(np.random.default_rng(seed), n, _NP_COV).T
    x = pi * z + v
    y = newey_powell_structural(x) + eps
    return _iv_design(
        "weak_iv", x, y, z, _WEAK_TEST_X, newey_powell_structural,
        {"n": n, "seed": seed, "first_stage": pi, "expected_first_stage_F": 1.0 + n * pi**2},
    )
