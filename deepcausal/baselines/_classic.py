"""Classic baselines: naive regressions that ignore the confounding, linear 2SLS and sieve 2SLS."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from ._base import Baseline, NotApplicableError, hstack

__all__ = ["Naive", "NaiveProxy", "Sieve2SLS", "TSLS"]


def _hgb(random_state):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(random_state=random_state)


class Naive(Baseline):
    """Naive IV baseline: a flexible regression of y on (t, x) that ignores the instruments.

    It estimates E[Y | T, X], not the structural function: the gap between the two is what
    confounding costs. Model: scikit-learn ``HistGradientBoostingRegressor`` with default settings
    (max_iter=100, learning_rate=0.1, early stopping on for n > 10,000).

    Parameters
    ----------
    random_state : int or None
    """

    name = "naive"
    description = "gradient boosting of y on (t, x); ignores the instruments, so it is biased under confounding"
    requires = ("sklearn",)
    kinds = frozenset({"iv"})
    tabular_only = False  # gradient boosting on the pixels: slow on images, but a reference all the same

    def __init__(self, *, random_state=None):
        self.random_state = random_state

    def _fit(self, data):
        self.model_ = _hgb(self.random_state).fit(hstack(data["T"], data["X"]), data["Y"])

    def _predict(self, T, X):
        return self.model_.predict(hstack(T, X))


class NaiveProxy(Baseline):
    """Naive proxy baseline: ``HistGradientBoostingRegressor`` of y on (a, x), proxies ignored.

    Predicts E[Y | A = a] (with covariates in the test inputs, E[Y | A, X]; without them but with
    covariates at fit, the regression averaged over the training covariates).

    Parameters
    ----------
    random_state : int or None
    """

    name = "naive_proxy"
    description = "gradient boosting of y on (a, x); ignores the proxies, so it is biased under confounding"
    requires = ("sklearn",)
    kinds = frozenset({"proxy"})
    tabular_only = False

    def __init__(self, *, random_state=None):
        self.random_state = random_state

    def _fit(self, data):
        self.model_ = _hgb(self.random_state).fit(hstack(data["A"], data["X"]), data["Y"])
        self.X_train_ = data["X"]

    def _predict(self, T, X):
        if X is not None or self.X_train_ is None:
            return self.model_.predict(hstack(T, X))
        Xt = self.X_train_[:1000]
        return np.array([self.model_.predict(hstack(np.repeat(t[None], len(Xt), 0), Xt)).mean() for t in T])


# ---- linear 2SLS -------------------------------------------------------------------------------
class TSLS(Baseline):
    """Linear two-stage least squares: h(t, x) = tᵀa + xᵀb + c.

    The textbook estimator: the regressors D = [T, X, 1] are projected on the instruments W = [Z, X, 1]
    (the covariates instrument themselves), D̂ = W(WᵀW)⁻¹WᵀD, and the coefficients are the least squares
    of Y on D̂: β = (D̂ᵀD)⁻¹D̂ᵀY. It is consistent when the structural function is linear in t and x and
    the instruments are valid and relevant (at least as many instrument columns as treatment columns);
    otherwise it reports the best line in the 2SLS sense. No tuning, no randomness.

    Attributes
    ----------
    coef_ : ndarray of shape (d_t,)
        Slopes of the treatment columns.
    covariate_coef_ : ndarray of shape (d_x,)
        Coefficients of the covariates (empty without covariates).
    intercept_ : float
    """

    name = "tsls"
    description = "linear two-stage least squares: y on (t, x, 1) with instruments (z, x, 1)"
    requires = ("scipy",)
    kinds = frozenset({"iv"})

    def __init__(self, *, random_state=None):
        self.random_state = random_state  # unused: the estimator is deterministic; kept for the common interface

    @classmethod
    def check_applicable(cls, design) -> None:
        super().check_applicable(design)
        d_t, d_z = design.arrays["treatment"].shape[1], design.arrays["instruments"].shape[1]
        if d_z < d_t:
            raise NotApplicableError(f"method 'tsls' needs at least as many instruments as treatment columns; "
                                     f"{design.name!r} has {d_z} for {d_t}")

    def _fit(self, data):
        T, X, Z, Y = data["T"], data["X"], data["Z"], data["Y"]
        ones = np.ones((Y.shape[0], 1))
        D, W = hstack(T, X, ones), hstack(Z, X, ones)
        D_hat = W @ scipy.linalg.lstsq(W, D)[0]
        beta = scipy.linalg.solve(D_hat.T @ D, D_hat.T @ Y)
        d_t = T.shape[1]
        self.coef_, self.covariate_coef_, self.intercept_ = beta[:d_t], beta[d_t:-1], float(beta[-1])

    def _predict(self, T, X):
        out = T @ self.coef_ + self.intercept_
        return out if X is None or not self.covariate_coef_.size else out + X @ self.covariate_coef_


# ---- sieve 2SLS --------------------------------------------------------------------------------
def _tensor_basis(splines, M: np.ndarray) -> np.ndarray:
    """Row-wise tensor product of per-column spline bases: (n, Π_j k_j)."""
    out = np.ones((M.shape[0], 1))
    for j, sp in enumerate(splines):
        B = sp.transform(M[:, j : j + 1])
        out = (out[:, :, None] * B[:, None, :]).reshape(M.shape[0], -1)
    return out


def _fit_splines(M: np.ndarray, n_knots: list):
    from sklearn.preprocessing import SplineTransformer

    return [
        SplineTransformer(n_knots=k, degree=3, knots="uniform", extrapolation="linear").fit(M[:, j : j + 1])
        for j, k in enumerate(n_knots)
    ]


def _ridge(F: np.ndarray, Y: np.ndarray, alpha: float) -> np.ndarray:
    # (FᵀF + αI)⁻¹ FᵀY by Cholesky; lstsq if the Gram matrix is not numerically positive definite.
    G = F.T @ F
    G[np.diag_indices_from(G)] += alpha
    try:
        return scipy.linalg.solve(G, F.T @ Y, assume_a="pos")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        return scipy.linalg.lstsq(F, Y)[0]


class Sieve2SLS(Baseline):
    """Two-stage least squares on a tensor-product cubic B-spline sieve.

    The structural function is h(t, x) = B(t, x) β with B the row-wise tensor product of one cubic
    B-spline basis (``sklearn.preprocessing.SplineTransformer``, uniform knots, linear
    extrapolation) per column of (T, X); the instruments are the tensor product of bases of (Z, X),
    with one more knot per instrument column than per treatment column so the model is
    over-identified. Stage 1: Π = ridge(B_Z → B_T); stage 2: β = ridge(B_Z Π → Y); both ridges
    tiny (``alpha``·n) and only for numerical stability.

    The number of knots (the same for every column) is chosen from ``n_knots_grid`` by an 80/20
    split of the *training* rows: the held-out 2SLS stage-2 loss mean((Y_v − B_Z,v Π β)²), with Π and
    β fitted on the 80 %. The basis is then refitted on all rows. Grids whose basis would exceed
    ``max_features`` columns (or n/4) are skipped.

    Parameters
    ----------
    n_knots_grid : tuple of int, default=(3, 4, 5, 6, 8, 10)
    alpha : float, default=1e-6
        Ridge of both stages, times the number of rows.
    max_features : int, default=1000
    random_state : int or None
        Seeds the validation split.

    Attributes
    ----------
    n_knots_ : int
        The selected number of knots.
    validation_ : dict
        Held-out stage-2 loss per candidate.
    """

    name = "sieve2sls"
    description = "two-stage least squares on tensor-product cubic splines, knots chosen on a validation split"
    requires = ("sklearn", "scipy")
    kinds = frozenset({"iv"})

    def __init__(self, *, n_knots_grid=(3, 4, 5, 6, 8, 10), alpha=1e-6, max_features=1000, random_state=None):
        self.n_knots_grid = n_knots_grid
        self.alpha = alpha
        self.max_features = max_features
        self.random_state = random_state

    def _sizes(self, k, d_t, d_z, d_x):
        n_t = (k + 2) ** (d_t + d_x)
        n_z = (k + 3) ** d_z * (k + 2) ** d_x
        return n_t, n_z

    def _fit_k(self, k, V, U, Y):
        d_v = V.shape[1]
        d_x = self.d_x_
        sp_v = _fit_splines(V, [k] * d_v)
        sp_u = _fit_splines(U, [k + 1] * (U.shape[1] - d_x) + [k] * d_x)
        BT, BZ = _tensor_basis(sp_v, V), _tensor_basis(sp_u, U)
        n = V.shape[0]
        Pi = _ridge(BZ, BT, self.alpha * n)
        beta = _ridge(BZ @ Pi, Y, self.alpha * n)
        return sp_v, sp_u, Pi, beta

    def _fit(self, data):
        T, X, Z, Y = data["T"], data["X"], data["Z"], data["Y"]
        self.d_x_ = 0 if X is None else X.shape[1]
        V, U = hstack(T, X), hstack(Z, X)
        n = Y.shape[0]
        grid = []
        for k in self.n_knots_grid:
            n_t, n_z = self._sizes(int(k), T.shape[1], Z.shape[1], self.d_x_)
            if max(n_t, n_z) <= min(self.max_features, n // 4):
                grid.append(int(k))
        if not grid:
            grid = [min(int(k) for k in self.n_knots_grid)]
            warnings.warn(f"sieve2sls: every basis in n_knots_grid is large for n={n}; using {grid[0]} knots",
                          UserWarning, stacklevel=3)
        rng = np.random.default_rng(self.random_state)
        perm = rng.permutation(n)
        tr, va = perm[: int(0.8 * n)], perm[int(0.8 * n):]
        self.validation_ = {}
        for k in grid:
            sp_v, sp_u, Pi, beta = self._fit_k(k, V[tr], U[tr], Y[tr])
            BZ_va = _tensor_basis(sp_u, U[va])
            self.validation_[k] = float(np.mean((Y[va] - BZ_va @ Pi @ beta) ** 2))
        self.n_knots_ = min(self.validation_, key=self.validation_.get)
        self.splines_, _, _, self.coef_ = self._fit_k(self.n_knots_, V, U, Y)

    def _predict(self, T, X):
        return _tensor_basis(self.splines_, hstack(T, X)) @ self.coef_
