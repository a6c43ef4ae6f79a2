"""Adapters of econml's IV estimators (optional dependency ``pip install deepcausal[econml]``).

econml estimates *effects* τ(x; t₀, t₁) = h(t₁, x) − h(t₀, x), which fix h only up to a function of
x. Each adapter completes it into a structural function (:meth:`_EconmlIV._fit`):

    g(x) = E[Y − τ(x; t₀, T) | X = x]     (= h(t₀, x), because E[ε | X] = 0 for exogenous X)
    ĥ(t, x) = ĝ(x) + τ̂(x; t₀, t)

with t₀ the training median of T and ĝ a ``HistGradientBoostingRegressor`` of Y − τ̂(X; t₀, T) on X
fitted on the training rows only (the training mean of that residual when there are no covariates).

Every adapter standardizes T, X and Z (so polynomial/spline featurizers are well conditioned) and
uses ``HistGradientBoostingRegressor`` (default settings, ``random_state`` passed through) for every
nuisance regression, wrapped in ``MultiOutputRegressor`` where the target is a featurized
(multi-column) treatment or instrument. econml's ``cv=2`` cross-fitting is kept.
"""

from __future__ import annotations

import numpy as np

from ._base import Baseline, NotApplicableError, standardize

__all__ = ["DMLIVBaseline", "OrthoIVBaseline", "NonParamDMLIVBaseline", "DRIVBaseline", "ForestDRIVBaseline",
           "SieveTSLSBaseline", "econml_available"]


def econml_available() -> bool:
    """True when econml can be imported."""
    try:
        import econml  # noqa: F401
    except ImportError:
        return False
    return True


def _require_econml():
    if not econml_available():
        raise ImportError(
            "this baseline needs econml, which is not installed; install it with "
            "`pip install deepcausal[econml]` (or `pip install econml`)"
        )


def _hgb(seed):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(random_state=seed)


def _multi(seed):
    from sklearn.multioutput import MultiOutputRegressor

    return MultiOutputRegressor(_hgb(seed))


def _t_splines(n_knots=4):
    from sklearn.preprocessing import SplineTransformer

    return SplineTransformer(n_knots=n_knots, degree=3, include_bias=False, extrapolation="linear")


def _x_featurizer():
    """Quadratic polynomial of the (standardized) covariates, no bias column (econml adds the intercept).

    A spline-plus-pairwise-interaction basis was tried first; it made OrthoIV's final linear IV
    system singular on the demand design (discrete covariate), so one simple basis serves all.
    """
    from sklearn.preprocessing import PolynomialFeatures

    return PolynomialFeatures(degree=2, include_bias=False)


class _EconmlIV(Baseline):
    """Shared fit/predict of the econml adapters (see the module docstring for the completion step)."""

    kinds = frozenset({"iv"})
    requires = ("econml", "sklearn")
    single_treatment = True
    single_instrument = False

    def __init__(self, *, random_state=None):
        self.random_state = random_state

    @classmethod
    def check_applicable(cls, design):
        super().check_applicable(design)
        if cls.single_treatment and len(design.roles["treatment"]) != 1:
            raise NotApplicableError(f"method {cls.name!r} needs a single treatment column")
        if cls.single_instrument and len(design.roles["instruments"]) != 1:
            raise NotApplicableError(
                f"method {cls.name!r} needs a single instrument; {design.name!r} has "
                f"{len(design.roles['instruments'])}"
            )

    def _make(self, d_x: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def _treatment(self, T):
        return T  # (n, 1); DRIV-type estimators want a vector

    def _instrument(self, Z):
        return Z

    def _effect(self, X, T):
        T1 = self._treatment(T)
        T0 = np.full_like(T1, self.t0_)
        return np.asarray(self.estimator_.effect(X, T0=T0, T1=T1), dtype=np.float64).ravel()

    def _fit(self, data):
        _require_econml()
        T, X, Z, Y = data["T"], data["X"], data["Z"], data["Y"]
        self.t_scale_, self.z_scale_ = standardize(T), standardize(Z)
        self.x_scale_ = None if X is None else standardize(X)
        Ts, Zs, Xs = self._scale(T, self.t_scale_), self._scale(Z, self.z_scale_), self._scale(X, self.x_scale_)
        self.t0_ = float(np.median(Ts))
        self.estimator_ = self._make(0 if X is None else X.shape[1])
        self.estimator_.fit(Y, self._treatment(Ts), Z=self._instrument(Zs), X=Xs)
        resid = Y - self._effect(Xs, Ts)
        self.g_ = float(resid.mean()) if Xs is None else _hgb(self.random_state).fit(Xs, resid)

    @staticmethod
    def _scale(M, scale):
        return None if M is None else (M - scale[0]) / scale[1]

    def _predict(self, T, X):
        Ts, Xs = self._scale(T, self.t_scale_), self._scale(X, self.x_scale_)
        g = self.g_ if Xs is None else self.g_.predict(Xs)
        return g + self._effect(Xs, Ts)


class DMLIVBaseline(_EconmlIV):
    """econml ``DMLIV`` with a spline treatment featurizer, completed into h(t, x).

    Model τ(x; t₀, t₁) = θ(x)ᵀ(φ(t₁) − φ(t₀)), φ cubic B-splines of the treatment (4 knots, no bias
    column: 5 features), θ(x) linear in a quadratic polynomial of the covariates (none without
    covariates) with a CATE intercept. Nuisances
    E[Y|X], E[φ(T)|X], E[φ(T)|Z,X]: ``HistGradientBoostingRegressor`` (multi-output wrapped).
    Completion into h(t, x): see :mod:`deepcausal.baselines._econml`.
    """

    name = "dmliv"
    description = "econml DMLIV with a spline treatment featurizer"

    def _make(self, d_x):
        from econml.iv.dml import DMLIV

        s = self.random_state
        return DMLIV(model_y_xw=_hgb(s), model_t_xw=_multi(s), model_t_xwz=_multi(s),
                     treatment_featurizer=_t_splines(), featurizer=_x_featurizer() if d_x else None,
                     random_state=s)


class OrthoIVBaseline(_EconmlIV):
    """econml ``OrthoIV`` with a spline treatment featurizer, completed into h(t, x).

    Same effect model as :class:`DMLIVBaseline` (φ: cubic B-splines of T, 4 knots, 5 features; θ(x)
    linear in the quadratic covariate featurizer). OrthoIV needs at least as many
    instruments as featurized treatments, so each instrument column is expanded into cubic B-splines
    (6 knots, 7 features) before it is passed as Z. Nuisances E[Y|X], E[φ(T)|X], E[Z̃|X]:
    ``HistGradientBoostingRegressor`` (multi-output wrapped); projection=False.
    """

    name = "orthoiv"
    description = "econml OrthoIV with a spline treatment featurizer"

    def _make(self, d_x):
        from econml.iv.dml import OrthoIV

        s = self.random_state
        return OrthoIV(model_y_xw=_hgb(s), model_t_xw=_multi(s), model_z_xw=_multi(s),
                       treatment_featurizer=_t_splines(), featurizer=_x_featurizer() if d_x else None,
                       random_state=s)

    def _instrument(self, Z):
        from sklearn.preprocessing import SplineTransformer

        if not hasattr(self, "z_splines_"):
            self.z_splines_ = SplineTransformer(n_knots=6, degree=3, include_bias=False).fit(Z)
        return self.z_splines_.transform(Z)

    def _fit(self, data):
        if hasattr(self, "z_splines_"):
            del self.z_splines_
        super()._fit(data)


class NonParamDMLIVBaseline(_EconmlIV):
    """econml ``NonParamDMLIV`` (needs covariates), completed into h(t, x).

    Effect linear in the treatment with a nonparametric slope: τ(x; t₀, t₁) = θ(x)(t₁ − t₀), θ(x) a
    ``HistGradientBoostingRegressor`` final model (econml's weighted residual-on-residual
    formulation). Nuisances E[Y|X], E[T|X], E[T|Z,X]: ``HistGradientBoostingRegressor``.
    """

    name = "nonparam_dmliv"
    description = "econml NonParamDMLIV: an effect linear in t with a gradient-boosted slope theta(x)"
    requires_covariates = True

    def _make(self, d_x):
        from econml.iv.dml import NonParamDMLIV

        s = self.random_state
        return NonParamDMLIV(model_y_xw=_hgb(s), model_t_xw=_hgb(s), model_t_xwz=_hgb(s),
                             model_final=_hgb(s), random_state=s)

    def _treatment(self, T):
        return T[:, 0]


class DRIVBaseline(_EconmlIV):
    """econml ``LinearDRIV`` (single continuous treatment and instrument), completed into h(t, x).

    τ(x; t₀, t₁) = θ(x)(t₁ − t₀) with θ(x) linear in the quadratic covariate featurizer (constant
    without covariates). Nuisances E[Y|X], E[T|X], E[Z|X], E[TZ|X] and the preliminary
    flexible effect model: ``HistGradientBoostingRegressor``; ``prel_cate_approach="driv"``.
    """

    name = "driv"
    description = "econml LinearDRIV, doubly robust IV for one continuous treatment and one instrument"
    single_instrument = True

    def _make(self, d_x):
        from econml.iv.dr import LinearDRIV

        s = self.random_state
        return LinearDRIV(model_y_xw=_hgb(s), model_t_xw=_hgb(s), model_z_xw=_hgb(s), model_tz_xw=_hgb(s),
                          flexible_model_effect=_hgb(s), featurizer=_x_featurizer() if d_x else None,
                          random_state=s)

    def _treatment(self, T):
        return T[:, 0]

    def _instrument(self, Z):
        return Z[:, 0]


class ForestDRIVBaseline(DRIVBaseline):
    """econml ``ForestDRIV`` (needs covariates; single continuous treatment and instrument).

    τ(x; t₀, t₁) = θ(x)(t₁ − t₀) with θ(x) a causal forest (econml defaults, 100 trees). Nuisances as
    :class:`DRIVBaseline`. Completed into h(t, x) as in :mod:`deepcausal.baselines._econml`.
    """

    name = "forest_driv"
    description = "econml ForestDRIV, doubly robust IV with a causal forest final stage"
    requires_covariates = True

    def _make(self, d_x):
        from econml.iv.dr import ForestDRIV

        s = self.random_state
        return ForestDRIV(model_y_xw=_hgb(s), model_t_xw=_hgb(s), model_z_xw=_hgb(s), model_tz_xw=_hgb(s),
                          flexible_model_effect=_hgb(s), random_state=s)


class SieveTSLSBaseline(_EconmlIV):
    """econml ``SieveTSLS``: two-stage least squares on polynomial sieves, completed into h(t, x).

    Featurizers (on standardized inputs): treatment cubic polynomial (t, t², t³) with its derivative
    ``DPolynomialFeatures``; covariates quadratic polynomial with bias (a constant column without
    covariates); instruments cubic polynomial with bias. econml interacts treatment and covariate
    features (and instrument and covariate features) and fits both stages by least squares.
    """

    name = "sieve_tsls"
    description = "econml SieveTSLS, two-stage least squares on polynomial sieves"

    def _make(self, d_x):
        from econml.iv.sieve import DPolynomialFeatures, SieveTSLS
        from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures

        x_feat = PolynomialFeatures(degree=2) if d_x else FunctionTransformer(_ones_column)
        return SieveTSLS(t_featurizer=PolynomialFeatures(degree=3, include_bias=False), x_featurizer=x_feat,
                         z_featurizer=PolynomialFeatures(degree=3),
                         dt_featurizer=DPolynomialFeatures(degree=3, include_bias=False))


def _ones_column(M):
    return np.ones((M.shape[0], 1))
