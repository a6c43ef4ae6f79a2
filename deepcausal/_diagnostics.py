"""Pre-fit diagnostics: is the instrument strong enough to identify anything?"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
from scipy import linalg

# Rule of thumb for a weak first stage (Staiger & Stock): a partial F statistic below 10.
WEAK_F = 10.0


class WeakInstrumentWarning(UserWarning):
    """The instruments explain little of the treatment beyond the covariates."""


def _rss(y: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Residual sum of squares per column of y after least squares on ``design``."""
    coef, *_ = linalg.lstsq(design, y, lapack_driver="gelsy")
    r = y - design @ coef
    return (r**2).sum(axis=0)


def first_stage_f(T: np.ndarray, Z: np.ndarray, X: Optional[np.ndarray]) -> float:
    """Partial F statistic of the excluded instruments in a linear first stage T ~ [Z, X, 1].

    F = ((RSS_r − RSS_f) / q) / (RSS_f / (n − k)) with the restricted model T ~ [X, 1], q the rank
    that Z adds and k the rank of the full design. For a multi-column treatment (images) the
    statistic of the column sums of squares (all columns pooled) is reported. Linear, so a strong
    but purely nonlinear instrument can score low: it is a warning, never an error.
    """
    n = T.shape[0]
    ones = np.ones((n, 1))
    restricted = ones if X is None else np.hstack([X, ones])
    full = np.hstack([Z, restricted])
    k_r = np.linalg.matrix_rank(restricted)
    k_f = np.linalg.matrix_rank(full)
    q = k_f - k_r
    if q == 0:
        return 0.0
    rss_r, rss_f = _rss(T, restricted).sum(), _rss(T, full).sum()
    if rss_f <= 0:
        return np.inf
    return float(((rss_r - rss_f) / q) / (rss_f / max(n - k_f, 1)))


def warn_if_weak_instrument(T, Z, X, stacklevel: int = 4) -> float:
    """Warn (naming the instrument problem and the statistic) when the first stage is weak."""
    if np.all(Z.std(axis=0) < 1e-12):
        warnings.warn("instruments: every instrument column is constant; the structural function is not "
                      "identified (weak instrument, first-stage F = 0)", WeakInstrumentWarning, stacklevel=stacklevel)
        return 0.0
    F = first_stage_f(T, Z, X)
    if F < WEAK_F:
        warnings.warn(
            f"instruments: weak instrument: the linear first-stage partial F statistic is {F:.3g} (< {WEAK_F:g}); "
            "the instruments are constant, (nearly) collinear with the covariates, or barely move the treatment",
            WeakInstrumentWarning, stacklevel=stacklevel,
        )
    return F
