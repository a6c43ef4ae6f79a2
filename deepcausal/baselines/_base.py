"""The one interface every baseline follows: ``fit(design)`` on training roles, ``predict(design)`` at test inputs."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator

from sklearn.exceptions import NotFittedError

__all__ = ["Baseline", "NotApplicableError", "median_bandwidths", "subsample", "standardize"]


class NotApplicableError(ValueError):
    """Raised when a baseline cannot be used on a design (wrong kind, images, missing roles)."""


class Baseline(BaseEstimator):
    """Base class of the comparison baselines (scikit-learn estimators: ``get_params``, ``clone``, repr).

    A baseline is fitted on a benchmark :class:`~deepcausal.datasets.Design`'s training data, by the
    design's causal roles, and predicts the structural function at the design's test inputs. It never
    reads ``design.test_truth``.

    Subclasses set the class attributes below and implement ``_fit(data)`` and ``_predict(T, X)``:
    ``data`` holds float64 arrays keyed like econml's arguments (IV: ``Y`` (n,), ``T``, ``Z``, ``X``;
    proxy: ``Y`` (n,), ``A``, ``Z`` (treatment proxy), ``W`` (outcome proxy), ``X``), 2-D except ``Y``,
    with ``X`` None when the design has no covariates. ``_predict`` gets the test treatment (2-D) and
    covariates (2-D or None) and returns ``(n_test,)``.

    Attributes (class level)
    ------------------------
    name : str
        Registry name (``deepcausal.baselines.get(name)``).
    kinds : frozenset of {"iv", "proxy"}
        Design kinds the method applies to.
    description : str
        One line of plain text saying what the method is (``deepcausal bench --list`` prints it).
    requires : tuple of str
        Modules the method imports when it runs; a method whose modules are missing is marked as
        such by ``--list``, left out of ``available()``, and refused by ``get`` with a one-line error.
    tabular_only : bool
        True when the method cannot take image treatments.
    requires_covariates : bool
        True when the method needs at least one covariate column.
    """

    name = ""
    description = ""
    requires: tuple = ()
    kinds: frozenset = frozenset()
    tabular_only = True
    requires_covariates = False

    # ---- applicability -----------------------------------------------------------------------
    @classmethod
    def check_applicable(cls, design) -> None:
        """Raise :class:`NotApplicableError` with a clear message if the method cannot run on ``design``."""
        if design.kind not in cls.kinds:
            raise NotApplicableError(
                f"method {cls.name!r} applies to {'/'.join(sorted(cls.kinds))} designs, but {design.name!r} "
                f"is {'an IV' if design.kind == 'iv' else 'a proxy'} design"
            )
        if cls.tabular_only and design.is_image:
            raise NotApplicableError(
                f"method {cls.name!r} needs tabular data; {design.name!r} has an image treatment"
            )
        if cls.requires_covariates and not design.roles.get("covariates"):
            raise NotApplicableError(f"method {cls.name!r} needs covariates; {design.name!r} has none")

    @classmethod
    def applicable(cls, design) -> bool:
        """True when :meth:`check_applicable` passes."""
        try:
            cls.check_applicable(design)
        except NotApplicableError:
            return False
        return True

    # ---- the interface -----------------------------------------------------------------------
    def fit(self, design):
        """Fit on ``design``'s training data and roles (never its test truth). Returns self."""
        self.check_applicable(design)
        data = {k: (None if v is None else np.asarray(v, dtype=np.float64)) for k, v in design.array_kwargs().items()}
        data["Y"] = data["Y"].ravel()
        self._fit(data)
        self.fitted_ = True
        return self

    def predict(self, design) -> np.ndarray:
        """Structural function at ``design.test_X``: ndarray ``(n_test,)``."""
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(design) first")
        arrays = design.test_arrays()
        T = np.asarray(arrays["treatment"], dtype=np.float64)
        T = T.reshape(-1, 1) if T.ndim == 1 else T
        X = arrays.get("covariates")
        X = None if X is None else np.asarray(X, dtype=np.float64)
        return np.asarray(self._predict(T, X), dtype=np.float64).ravel()

    def _fit(self, data: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, T: np.ndarray, X) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


# ---- small shared numerics -----------------------------------------------------------------
def hstack(*blocks) -> np.ndarray:
    """Column-stack the blocks that are not None."""
    return np.hstack([b for b in blocks if b is not None])


def standardize(M: np.ndarray):
    """Column means and scales (scale 1 for constant columns)."""
    mu = M.mean(axis=0)
    sd = M.std(axis=0)
    sd[sd < 1e-12] = 1.0
    return mu, sd


def median_bandwidths(M: np.ndarray, rng: np.random.Generator, max_rows: int = 1000) -> np.ndarray:
    """Median heuristic per column: the median absolute pairwise difference (on ≤ ``max_rows`` rows).

    A product of per-column Gaussian kernels exp(−Σ_j (u_j − v_j)² / (2σ_j²)) equals sklearn's
    ``rbf_kernel(u/σ, v/σ, gamma=0.5)``, so the columns are divided by these σ_j before the kernel.
    """
    if M.shape[0] > max_rows:
        M = M[rng.choice(M.shape[0], max_rows, replace=False)]
    iu = np.triu_indices(M.shape[0], k=1)
    sig = np.array([np.median(np.abs(c[:, None] - c[None, :])[iu]) for c in M.T])
    # Discrete columns can have a zero median difference: fall back to the standard deviation.
    sd = M.std(axis=0)
    sig = np.where(sig > 1e-12, sig, np.where(sd > 1e-12, sd, 1.0))
    return sig


def subsample(n: int, cap: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """Row indices: all rows, or a random ``cap`` of them with a warning saying so."""
    if n <= cap:
        return np.arange(n)
    warnings.warn(f"{what}: using a random subsample of {cap} of {n} rows (closed-form O(n³) solve)",
                  UserWarning, stacklevel=3)
    return np.sort(rng.choice(n, cap, replace=False))
