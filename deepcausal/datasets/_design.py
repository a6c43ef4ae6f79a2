"""The object every benchmark design returns: training data with named roles, a test set, the truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

IV_ROLES = ("outcome", "treatment", "instruments", "covariates")
PROXY_ROLES = ("outcome", "treatment", "treatment_proxy", "outcome_proxy", "covariates")

# econml-style argument names for each role.
_IV_ARRAY_NAMES = {"outcome": "Y", "treatment": "T", "covariates": "X", "instruments": "Z"}
_PROXY_ARRAY_NAMES = {
    "outcome": "Y",
    "treatment": "A",
    "treatment_proxy": "Z",
    "outcome_proxy": "W",
    "covariates": "X",
}


@dataclass(frozen=True, eq=False, repr=False)
class Design:
    """A benchmark data set: training data by causal role, test inputs and the true structural function.

    Returned by :func:`demand`, :func:`lowdim`, :func:`dsprites`, :func:`demand_proxy` and
    :func:`dsprites_proxy`; not meant to be built by hand.

    Parameters
    ----------
    name : str
        Short name of the design, e.g. ``"demand"``.
    kind : {"iv", "proxy"}
        ``"iv"``: roles outcome, treatment, instruments, covariates. ``"proxy"``: roles outcome, treatment,
        treatment_proxy, outcome_proxy, covariates.
    roles : dict of str to list of str
        Role name to column names. Absent roles map to an empty list. For image designs the names are
        labels (``"image"``), not DataFrame columns.
    arrays : dict of str to ndarray
        Role name to a 2-D array ``(n_samples, k)``; the outcome is ``(n_samples, 1)``. Absent roles have
        no key. Tabular designs hold float64; image treatments are float32 ``(n_samples, 4096)``.
    test_X : DataFrame or dict of str to ndarray
        Test inputs. Tabular designs: a DataFrame with the treatment and covariate columns. Image designs:
        ``{"treatment": (n_test, 4096) array}``.
    test_truth : ndarray of shape (n_test,)
        The structural (dose-response) function at the test inputs, float64.
    train : DataFrame or None
        The training data as one DataFrame with the columns named in ``roles`` (None for image designs).
    structural_function : callable or None
        The true structural function, for evaluating the truth at other inputs. Its signature depends on
        the design and is given in the design's docstring.
    info : dict
        Generation parameters and design-specific extras (e.g. the dSprites latent ids).
    """

    name: str
    kind: str
    roles: dict[str, list[str]]
    arrays: dict[str, np.ndarray]
    test_X: Any
    test_truth: np.ndarray
    train: pd.DataFrame | None = None
    structural_function: Callable[..., np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("iv", "proxy"):
            raise ValueError(f"kind must be 'iv' or 'proxy', got {self.kind!r}")
        allowed = IV_ROLES if self.kind == "iv" else PROXY_ROLES
        unknown = set(self.roles) - set(allowed)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)} for a {self.kind} design")
        # Roles must be disjoint (a column plays one part only).
        seen: dict[str, str] = {}
        for role, cols in self.roles.items():
            for col in cols:
                if col in seen:
                    raise ValueError(f"column {col!r} is in both {seen[col]!r} and {role!r}")
                seen[col] = role
        # Every role listed in full, absent ones as [].
        object.__setattr__(self, "roles", {r: list(self.roles.get(r, [])) for r in allowed})

    # ----------------------------------------------------------------------------------- sizes
    @property
    def n(self) -> int:
        """Number of training rows."""
        return int(self.arrays["outcome"].shape[0])

    @property
    def n_test(self) -> int:
        """Number of test points."""
        return int(self.test_truth.shape[0])

    @property
    def is_image(self) -> bool:
        """True for the dSprites designs (no training DataFrame)."""
        return self.train is None

    # ----------------------------------------------------------------------------------- scoring
    def score(self, pred) -> float:
        """Out-of-sample mean squared error of ``pred`` against the true structural function.

        Parameters
        ----------
        pred : array-like with n_test elements
            Predictions at ``test_X``, in the same order; any shape that flattens to ``(n_test,)``
            (e.g. ``(n_test, 1)``, a Series, a tensor moved to numpy).

        Returns
        -------
        float
            ``mean((pred - test_truth)²)``.
        """
        p = np.asarray(pred, dtype=np.float64).ravel()
        if p.shape[0] != self.n_test:
            raise ValueError(
                f"pred has {p.shape[0]} values but the {self.name!r} test set has {self.n_test} points"
            )
        return float(np.mean((p - self.test_truth) ** 2))

    # ----------------------------------------------------------------------------------- plumbing
    def _present(self, role: str) -> bool:
        return bool(self.roles.get(role))

    def fit_kwargs(self) -> dict[str, list[str] | None]:
        """Column-name keyword arguments for DataFrame-mode ``fit``.

        Use as ``est.fit(design.train, **design.fit_kwargs())``. Each role maps to its list of column
        names; an absent covariate role maps to None.
        """
        if self.train is None:
            raise ValueError(
                f"{self.name!r} is an image design without a DataFrame; use design.array_kwargs() instead"
            )
        allowed = IV_ROLES if self.kind == "iv" else PROXY_ROLES
        return {r: (list(self.roles[r]) if self.roles[r] else None) for r in allowed}

    def array_kwargs(self) -> dict[str, np.ndarray | None]:
        """econml-style keyword arguments with the training arrays.

        IV: ``dict(Y=, T=, X=, Z=)``; proxy: ``dict(Y=, A=, Z=, W=, X=)`` (Z the treatment proxy, W the
        outcome proxy). ``X`` is None when the design has no covariates.
        """
        names = _IV_ARRAY_NAMES if self.kind == "iv" else _PROXY_ARRAY_NAMES
        return {key: self.arrays.get(role) for role, key in names.items()}

    def test_arrays(self) -> dict[str, np.ndarray | None]:
        """The test inputs as arrays: ``{"treatment": ..., "covariates": ... or None}``."""
        if isinstance(self.test_X, pd.DataFrame):
            out = {}
            for role in ("treatment", "covariates"):
                cols = self.roles[role]
                out[role] = self.test_X[cols].to_numpy(dtype=np.float64) if cols else None
            return out
        return {"treatment": self.test_X["treatment"], "covariates": self.test_X.get("covariates")}

    def __repr__(self) -> str:
        lines = [f"Design({self.name!r}, kind={self.kind!r}, n={self.n}, n_test={self.n_test})"]
        width = max(len(r) for r in self.roles)
        for role, cols in self.roles.items():
            if not cols:
                text = "-"
            elif self.train is None and role in self.arrays:
                text = f"{', '.join(cols)}  (array {self.arrays[role].shape})"
            else:
                text = ", ".join(cols)
            lines.append(f"  {role:<{width}} : {text}")
        return "\n".join(lines)


def tabular_design(
    *,
    name: str,
    kind: str,
    roles: dict[str, list[str]],
    train: pd.DataFrame,
    test_X: pd.DataFrame,
    test_truth: np.ndarray,
    structural_function: Callable[..., np.ndarray] | None,
    info: dict[str, Any],
) -> Design:
    """Build a :class:`Design` for a tabular design: the arrays are the DataFrame's role columns."""
    arrays = {
        role: train[cols].to_numpy(dtype=np.float64) for role, cols in roles.items() if cols
    }
    return Design(
        name=name,
        kind=kind,
        roles=roles,
        arrays=arrays,
        test_X=test_X,
        test_truth=np.asarray(test_truth, dtype=np.float64).ravel(),
        train=train,
        structural_function=structural_function,
        info=info,
    )


def check_n(n) -> int:
    """Validate a sample size."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)
