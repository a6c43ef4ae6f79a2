"""Pre-fit diagnostics: is the instrument strong enough to identify anything?"""

from __future__ import annotations

import warnings
from typing import Callable, Optional

import numpy as np

# Rule of thumb for a weak first stage (Staiger & Stock): a partial F statistic below 10.
WEAK_F = 10.0


class WeakInstrumentWarning(UserWarning):
    """The instruments explain little of the treatment beyond the covariates."""


def _rss_from_moments(A: np.ndarray, B: np.ndarray, tTt: float):
    """Residual sum of squares of least squares from its moments, and the design's rank.

    A = DᵀD, B = DᵀT, tTt = Σ T²: RSS = tTt − tr(Bᵀ A⁺ B). The Gram matrix is scaled to unit
    diagonal and solved in its eigenbasis, dropping directions with eigenvalue below 1e-12 of the
    largest (collinear columns), so no inverse is formed and rank deficiency is handled.
    """
    d = np.sqrt(np.diag(A))
    live = d > 0
    A, B, d = A[np.ix_(live, live)], B[live], d[live]
    if A.size == 0:
        return tTt, 0
    w, Q = np.linalg.eigh(A / np.outer(d, d))
    keep = w > w.max() * 1e-12
    proj = Q[:, keep].T @ (B / d[:, None])
    return max(tTt - float((proj**2 / w[keep, None]).sum()), 0.0), int(keep.sum())


def first_stage_f(T: np.ndarray, Z: np.ndarray, X: Optional[np.ndarray], reduce_sum: Optional[Callable] = None) -> float:
    """Partial F statistic of the excluded instruments in a linear first stage T ~ [Z, X, 1].

    F = ((RSS_r − RSS_f) / q) / (RSS_f / (n − k)) with the restricted model T ~ [X, 1], q the rank
    that Z adds and k the rank of the full design. For a multi-column treatment (images) the
    statistic of the column sums of squares (all columns pooled) is reported. Linear, so a strong
    but purely nonlinear instrument can score low: it is a warning, never an error.

    Computed from the moments DᵀD, DᵀT, ΣT² and n, which ``reduce_sum`` (a sum over the ranks of a
    distributed fit) turns into the whole data set's: every rank gets the same statistic. Centre
    the columns first for accuracy (the intercept makes the statistic invariant to it).
    """
    total = reduce_sum or (lambda a: a)
    q_z = Z.shape[1]
    D = np.hstack([Z] + ([] if X is None else [X]) + [np.ones((T.shape[0], 1))])
    A, B = total(D.T @ D), total(D.T @ T)
    tTt, n = total(np.array([(T**2).sum(), T.shape[0]], dtype=np.float64))
    rss_f, k_f = _rss_from_moments(A, B, tTt)
    rss_r, k_r = _rss_from_moments(A[q_z:, q_z:], B[q_z:], tTt)
    q = k_f - k_r
    if q == 0:
        return 0.0
    if rss_f <= 0:
        return np.inf
    return float(((rss_r - rss_f) / q) / (rss_f / max(n - k_f, 1)))


def warn_if_weak_instrument(T, Z, X, reduce_sum: Optional[Callable] = None, stacklevel: int = 5) -> float:
    """Warn (naming the instrument problem and the statistic) when the first stage is weak.

    Expects centred columns (see :func:`first_stage_f`); ``reduce_sum`` as there.
    """
    total = reduce_sum or (lambda a: a)
    n, z_sq = total(np.array([Z.shape[0]], dtype=np.float64))[0], total((Z**2).sum(axis=0))
    if np.all(np.sqrt(z_sq / n) < 1e-12):
        warnings.warn("instruments: every instrument column is constant; the structural function is not "
                      "identified (weak instrument, first-stage F = 0)", WeakInstrumentWarning, stacklevel=stacklevel)
        return 0.0
    F = first_stage_f(T, Z, X, reduce_sum)
    if F < WEAK_F:
        warnings.warn(
            f"instruments: weak instrument: the linear first-stage partial F statistic is {F:.3g} (< {WEAK_F:g}); "
            "the instruments are constant, (nearly) collinear with the covariates, or barely move the treatment",
            WeakInstrumentWarning, stacklevel=stacklevel,
        )
    return F
