"""The estimators' reports: every public query, through one linear-statistic path.

Every quantity DFIV and DFPV report — h at rows (``predict``), effects and average effects, marginal
effects, the dose-response curve — is linear in the stage-2 head u: Φ u, with Φ built from one
member's features at the query's inputs. :meth:`QueryReports._linear_statistic` evaluates Φ û for
each ensemble member and the bootstrap deviations Φ (u_b − û) (for DFPV also through the drawn
stage-2 summaries), and :meth:`QueryReports._report` combines the members into a point estimate,
a standard error and a band (:func:`deepcausal.inference.combine_draws`). A query only says how to
build Φ.

:class:`QueryReports` is mixed into :class:`~deepcausal._estimator.TwoStageEstimator`; it reads the
fitted members (``estimators_`` or the estimator itself), their ``nets_``, ``heads_``,
``summaries_``, ``head_draws_`` and ``summary_draws_``, and the input handling of
:class:`~deepcausal._inputs.RoleInputs`.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ._complexity import TSLS_LABELS
from ._data import as_2d_array
from ._diagnostics import IdentificationWarning
from ._modes import predicting
from ._warnings import warn
from .inference import NoDrawsError, check_alpha, combine_draws
from .twostage import TwoStageHeads

__all__ = ["QueryReports"]


def _jvp(f, x: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    """The Jacobian-vector product J_f(x) · tangent by two reverse passes: g(v) = Jᵀv is linear in v, so
    ∂(gᵀ tangent)/∂v = J tangent.

    Not forward-mode autograd (``torch.func.jvp``): its first use in a process imports torch's jvp
    decompositions (2.6 s, and 18 DeprecationWarnings of torch.jit.script), and its levels are
    process-global state, which two threads computing at once corrupt. Reverse mode has neither.
    """
    x = x.detach().requires_grad_(True)
    out = f(x)
    v = torch.zeros_like(out, requires_grad=True)
    (g,) = torch.autograd.grad(out, x, grad_outputs=v, create_graph=True)
    (jvp,) = torch.autograd.grad(g, v, grad_outputs=tangent)
    return jvp


def _evaluating(phi, rows: int, conditional: bool, summaries: bool = True):
    """Tag a Φ builder with what the draws of the stage-2 summaries need to know about it.

    ``rows``: the most rows it evaluates features at in one go (draws evaluated a few at a time keep
    S × rows × d₂ values at once bounded); ``conditional``: whether its inputs hold covariates (then a
    prediction is conditional on them and the summaries cannot be folded into the head); ``summaries``:
    False for a statistic that integrates over no summary (DFPV's bridge h(a, w)).
    """
    phi.rows, phi.conditional, phi.summaries = int(rows), bool(conditional), bool(summaries)
    return phi


class QueryReports:
    """Predictions, effects, dose-response and their intervals (mixed into :class:`TwoStageEstimator`)."""

    # Batch keys that ``score`` accepts but does not need (the stage-2 loss does not read them).
    _unscored_keys: Tuple[str, ...] = ()

    def _members(self) -> list:
        """The fitted members: ``estimators_`` for an ensemble, else the estimator itself."""
        return getattr(self, "estimators_", None) or [self]

    def _features_at(self, inputs: dict, summaries: Optional[dict] = None, size: int = 8192) -> torch.Tensor:
        """This member's prediction features G at standardized ``inputs``: float64 (n, d₂), or
        (S, n, d₂) for summaries with a leading dimension of S bootstrap draws."""
        n = next(iter(inputs.values())).shape[0]
        summaries = self.summaries_ if summaries is None else summaries
        with predicting(self.nets_):
            return torch.cat([
                self._predict_features(self.nets_, {k: v[lo : lo + size] for k, v in inputs.items()},
                                       summaries).double()
                for lo in range(0, n, size)
            ], dim=-2)

    def _to_outcome(self, z, level: bool = True) -> np.ndarray:
        """Standardized outcome units → the outcome's units (``level=False`` for differences)."""
        sc = self.scalers_["Y"]
        return z * sc.scale[0] + (sc.mean[0] if level else 0.0)

    def _linear_statistic(self, phi, heads: str = "fitted", spline: bool = False):
        """Each member's estimate of the statistic Φ(ŝ) û and its bootstrap deviations.

        Every quantity the estimators report (h at rows, averages over rows, effects, marginal
        effects) is linear in the stage-2 head u, with Φ built from the member's features by
        ``phi(member, summaries=None) -> (q, d₂) float64``, at the member's fitted stage-2 summaries
        ŝ, or at summaries with a leading dimension of S draws -> (S, q, d₂). A draw b deviates by
        Φ(ŝ) (u_b − û); for a member whose prediction also integrates over stage-2 summaries that
        were drawn with the heads (DFPV's mean of ψ_W, ``summary_draws_``), by Φ(s_b) u_b − Φ(ŝ) û.
        With ``spline``, a member that keeps Lepski's spline beside its reported line (``spline_band_``,
        :data:`deepcausal._complexity.LINE_BAND_WITH_SPLINE`) gives the spline's estimate and deviations instead.
        Returns (estimates (K, q), list of K (B, q) or None), in standardized outcome units.
        """
        self._check_fitted()
        ests, devs = [], []
        for m in self._members():
            alternative = getattr(m, "spline_band_", None) if spline else None
            u = m._heads(heads).u if alternative is None else alternative["head"]
            Phi = phi(m).detach()
            u = u.to(device=Phi.device, dtype=torch.float64)
            est = (Phi @ u)[:, 0]
            ests.append(est.cpu().numpy())
            d = getattr(m, "head_draws_", None) if alternative is None else alternative["draws"]
            s_draws = getattr(m, "summary_draws_", None) if getattr(phi, "summaries", True) else None
            if d is None:
                devs.append(None)
            elif not s_draws:
                devs.append((Phi @ d.to(Phi.device))[..., 0].cpu().numpy())
            elif not getattr(phi, "conditional", True):
                # The summaries fold into the head (DFPV: f(a) = [φ_A2(a), 1] c, c = U [w̄, 1]): every
                # draw is Φ_A (c_b − ĉ) on the treatment features alone, exactly and at no extra pass.
                Phi_A = phi(m, {"folded": True}).detach()
                d = d.to(Phi.device)
                folded = m._fold_summaries(s_draws, u + d) - m._fold_summaries(m.summaries_, u)
                devs.append((Phi_A @ folded)[..., 0].cpu().numpy())
            else:
                # Draws of Φ(s_b), a few at a time: S × rows × d₂ values at once stay under 32 MB.
                rows = max(getattr(phi, "rows", 0), Phi.shape[0])
                step = max(1, 2**22 // max(1, rows * Phi.shape[1]))
                parts = []
                for lo in range(0, d.shape[0], step):
                    Phi_b = phi(m, {k: v[lo : lo + step] for k, v in s_draws.items()}).detach()
                    parts.append((Phi_b @ (u + d[lo : lo + step].to(Phi.device)))[..., 0] - est)
                devs.append(torch.cat(parts).cpu().numpy())
        return np.stack(ests), devs

    def _identified(self, quiet: bool = False) -> bool:
        """Warn, in words a user can act on, when the fit found the curve weakly identified or not at
        all (``identification_``); False when nothing is identified (then no band is reported)."""
        ident = getattr(self, "identification_", None) or {"status": "identified", "reasons": []}
        if ident["status"] == "identified":
            return True
        why = "; ".join(ident["reasons"])
        if ident["status"] == "not identified":
            if not quiet:
                warn(f"the data do not identify the curve ({why}): the estimate only reflects the networks' "
                     "initialisation and the ridge, not a causal effect, so no band is reported (NaN); use "
                     "instruments that move the treatment", IdentificationWarning)
            return False
        label = str((getattr(self, "complexity_", None) or {}).get("label"))
        if not quiet and label.startswith(TSLS_LABELS):
            # the line (or Lepski's spline) is 2SLS itself: no regularisation pulls it, but its bands lean on a
            # strong first stage
            warn(f"the data identify the curve weakly ({why}): the reported curve is 2SLS's ({label}), whose bands "
                 "(like a Wald interval) can under-cover when the instruments are weak"
                 + ("; the Anderson-Rubin interval in summary stays valid" if label.startswith(TSLS_LABELS[0]) else ""),
                 IdentificationWarning)
        elif not quiet:
            warn(f"the data identify the curve weakly ({why}): the estimate is pulled towards a flat curve by the "
                 "regularisation, and the bands cover sampling noise, not that bias; read the shape with care and "
                 "compare the average marginal effect with a linear IV estimate (e.g. linearmodels' IV2SLS)",
                 IdentificationWarning)
        return True

    def _report(self, phi, level: bool, alpha=None, band: str = "pointwise", heads: str = "fitted",
                quiet: bool = False) -> dict:
        """Point estimate (the member average), and with ``alpha`` its standard error and band, in
        the outcome's units. Bands are NaN when the data do not identify the curve (with a warning,
        unless ``quiet``)."""
        if alpha is not None:
            alpha = check_alpha(alpha)  # before any work, and also when no band can be reported
        ests, devs = self._linear_statistic(phi, heads)
        if alpha is None:
            return {"estimate": self._to_outcome(ests.mean(axis=0), level)}
        if (getattr(self, "complexity_", None) or {}).get("no_spread"):
            raise NoDrawsError("the curve is 2SLS's (complexity_: the line, or Lepski's spline in t), nearly the same "
                               "curve in every member, so the members' spread is no band: refit with n_bootstrap >= 2 "
                               "to get intervals")
        if not self._identified(quiet):
            estimate = self._to_outcome(ests.mean(axis=0), level)
            nan = np.full_like(estimate, np.nan)
            return {"estimate": estimate, "std_error": nan, "lower": nan, "upper": nan, "dof": nan}
        # Complete-data degrees of freedom of one member's estimate: stage-2 rows less the head's size (the reported
        # head's: a line that keeps the spline beside it has zeros on the spline's terms, which it does not fit).
        first = self._members()[0]
        size = int(first.heads_.u.shape[0]) - int((getattr(first, "spline_band_", None) or {}).get("extra", 0))
        dof = (int(self.n_train_) - int(self.n_stage1_)) - size
        try:
            out = combine_draws(ests, devs, alpha, band, dof_complete=dof if dof > 0 else None)
        except NoDrawsError as exc:
            raise NoDrawsError(f"{exc}: refit with n_bootstrap >= 2 (or n_estimators >= 2 for pointwise bands) "
                               "to get intervals") from None
        if heads == "fitted" and any(getattr(m, "spline_band_", None) is not None for m in self._members()):
            # the line reported, Lepski's spline kept beside it: the band covers both (LINE_BAND_WITH_SPLINE)
            ests_s, devs_s = self._linear_statistic(phi, heads, spline=True)
            other = combine_draws(ests_s, devs_s, alpha, band, dof_complete=dof if dof > 0 else None)
            lower, upper = np.minimum(out["lower"], other["lower"]), np.maximum(out["upper"], other["upper"])
            # The standard error grows with the band's half-width on its wider side, so that a p-value read from
            # it agrees with the band (the same critical value, now on the wider half-width).
            half = (out["upper"] - out["lower"]) / 2
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.where(half > 0, np.maximum(upper - out["estimate"], out["estimate"] - lower) / half, 1.0)
            out = {**out, "lower": lower, "upper": upper, "std_error": out["std_error"] * np.maximum(factor, 1.0)}
        scale = self.scalers_["Y"].scale[0]
        return {"estimate": self._to_outcome(out["estimate"], level), "std_error": out["std_error"] * scale,
                "lower": self._to_outcome(out["lower"], level), "upper": self._to_outcome(out["upper"], level),
                "dof": out["dof"]}

    # Values this close outside the training range (relative to its width) are not an extrapolation:
    # predictions take the treatment through float32 standardization, which moves a value by ~1e-7.
    _RANGE_TOLERANCE = 1e-6

    def _outside_training_range(self, values: np.ndarray) -> np.ndarray:
        """Per treatment column, whether any of ``values`` ((n, d_t), original units) lies outside the
        training range ``treatment_range_`` by more than :attr:`_RANGE_TOLERANCE` of its width."""
        lo, hi = (np.asarray(v, dtype=np.float64) for v in self.treatment_range_)
        tol = self._RANGE_TOLERANCE * np.maximum(hi - lo, np.finfo(np.float64).tiny)
        values = np.asarray(values, dtype=np.float64)
        return ((values < lo - tol) | (values > hi + tol)).any(axis=0)

    def _warn_extrapolation(self, inputs: dict, what: str) -> None:
        """Warn (UserWarning, as ``dose_response`` does) when the treatment of standardized ``inputs``
        leaves the training range. Treatments of more than 32 columns (images) are not checked: a
        pixel's training range says nothing about extrapolation."""
        key = self._predict_keys[0]
        if key not in inputs or getattr(self, "treatment_range_", None) is None or self.dims_[key] > 32:
            return
        sc = self.scalers_[key]
        t = inputs[key].detach().double().cpu().numpy() * np.asarray(sc.scale) + np.asarray(sc.mean)
        outside = np.flatnonzero(self._outside_training_range(t))
        if len(outside):
            lo, hi = self.treatment_range_
            names = self._treatment_names()
            cols = ", ".join(f"{names[j]!r} [{lo[j]:.4g}, {hi[j]:.4g}]" for j in outside)
            warn(f"{what}: values outside the training range of {cols}: the estimate there is an extrapolation",
                 UserWarning)

    def _levels(self, inputs: dict):
        return _evaluating(lambda m, summaries=None: m._features_at(inputs, summaries),
                           next(iter(inputs.values())).shape[0], "X" in inputs)

    def _predict(self, first, X=None, heads: str = "fitted") -> np.ndarray:
        self._check_fitted()
        inputs = self._prediction_inputs(first, X)
        self._warn_extrapolation(inputs, self._predict_keys[0])
        return self._report(self._levels(inputs), True, heads=heads)["estimate"]

    def _heads(self, heads: str) -> TwoStageHeads:
        if heads not in ("fitted", "current"):
            raise ValueError(f"heads must be 'fitted' or 'current', got {heads!r}")
        return self.heads_ if heads == "fitted" else self.current_heads_

    def predict_interval(self, T, X=None, *, alpha=0.05, band="pointwise"):
        """A 1 − ``alpha`` confidence band for h at each row: ``(lower, upper)`` arrays.

        Takes the same inputs as ``predict`` (arrays or a DataFrame with the role columns).
        ``band="uniform"`` makes the band simultaneous over the rows (sup-t).

        The band accounts for the sampling noise of both linear stages (score bootstrap of the
        heads, first-stage noise included) and, with ``n_estimators`` > 1, for the variability of
        the split, the initialisation and the batch order (member spread). It does not account for
        bias from regularisation, network capacity or training length. See
        :mod:`deepcausal.inference`.
        """
        alpha = check_alpha(alpha)
        inputs = self._prediction_inputs(T, X)
        self._warn_extrapolation(inputs, self._predict_keys[0])
        r = self._report(self._levels(inputs), True, alpha, band)
        return r["lower"], r["upper"]

    # ---- effects ------------------------------------------------------------------------------
    def _effect_phi(self, X, T0, T1, average: bool):
        self._check_fitted()
        n = None if X is None else len(X) if isinstance(X, pd.DataFrame) else as_2d_array(X, "X (covariates)").shape[0]
        t0, t1 = (self._broadcast_treatment(t, n, name) for t, name in ((T0, "T0"), (T1, "T1")))
        if t0.shape != t1.shape:
            raise ValueError(f"T0 and T1 have different shapes {t0.shape} and {t1.shape}")
        in0, in1 = self._prediction_inputs(t0, X), self._prediction_inputs(t1, X)
        self._warn_extrapolation(in0, "T0")
        self._warn_extrapolation(in1, "T1")

        def phi(m, summaries=None):
            D = m._features_at(in1, summaries) - m._features_at(in0, summaries)
            return D.mean(dim=-2, keepdim=True) if average else D

        return _evaluating(phi, 2 * t0.shape[0], "X" in in0)

    def effect(self, X=None, *, T0, T1) -> np.ndarray:
        """h(T1, X) − h(T0, X) per row (econml's ``effect``); scalar treatments broadcast over X's rows."""
        return self._report(self._effect_phi(X, T0, T1, False), False)["estimate"]

    def effect_interval(self, X=None, *, T0, T1, alpha=0.05):
        """A 1 − ``alpha`` band for ``effect`` per row: ``(lower, upper)`` (econml's signature).

        Covers what :meth:`predict_interval` covers (not regularisation bias)."""
        alpha = check_alpha(alpha)
        r = self._report(self._effect_phi(X, T0, T1, False), False, alpha)
        return r["lower"], r["upper"]

    def ate(self, X=None, *, T0, T1) -> float:
        """Average over the rows of X of h(T1, x) − h(T0, x) (econml's ``ate``)."""
        return float(self._report(self._effect_phi(X, T0, T1, True), False)["estimate"][0])

    def ate_interval(self, X=None, *, T0, T1, alpha=0.05):
        """A 1 − ``alpha`` interval for :meth:`ate`: ``(lower, upper)``."""
        alpha = check_alpha(alpha)
        r = self._report(self._effect_phi(X, T0, T1, True), False, alpha)
        return float(r["lower"][0]), float(r["upper"][0])

    # ---- marginal effects (autograd through the treatment network) ----------------------------
    def _marginal_phi(self, T, X, average: bool):
        """Φ = ∂G/∂t at each row (forward-mode autograd), one treatment column after another;
        columns are stacked as (column, row). In outcome units per treatment unit after scaling."""
        self._check_fitted()
        inputs = self._prediction_inputs(T, X)
        self._warn_extrapolation(inputs, self._predict_keys[0])
        return self._marginal_phi_at(inputs, average)

    def _marginal_phi_at(self, inputs: dict, average: bool):
        """:meth:`_marginal_phi` at standardized inputs keyed like batches."""
        key = self._predict_keys[0]
        t_scale = torch.as_tensor(self.scalers_[key].scale, dtype=torch.float64)

        def phi(m, summaries=None):
            summaries = m.summaries_ if summaries is None else summaries
            out = []
            with predicting(m.nets_), torch.enable_grad():
                for j in range(m.dims_[key]):
                    tangent = torch.zeros_like(inputs[key])
                    tangent[:, j] = 1.0

                    def G(t):
                        return m._predict_features(m.nets_, {**inputs, key: t}, summaries)

                    dG = _jvp(G, inputs[key], tangent)
                    dG = dG.double() / t_scale[j].to(dG.device)  # per unit of the treatment, not per sd
                    out.append(dG.mean(dim=-2, keepdim=True) if average else dG)
            return torch.cat(out, dim=-2)

        n, d = inputs[key].shape[0], self.dims_[key]
        return _evaluating(phi, n * d, "X" in inputs), n, d

    def _marginal(self, T, X, average, alpha):
        alpha = None if alpha is None else check_alpha(alpha)
        phi, n, d = self._marginal_phi(T, X, average)
        r = self._report(phi, False, alpha)
        rows = 1 if average else n
        return {k: (v.reshape(d, rows).T[:, 0] if d == 1 else v.reshape(d, rows).T) for k, v in r.items()}

    def marginal_effect(self, T, X=None) -> np.ndarray:
        """∂h/∂t at each row, by autograd through the treatment network (econml's
        ``marginal_effect``): shape (n,) for a one-column treatment, else (n, d_t)."""
        return self._marginal(T, X, False, None)["estimate"]

    def marginal_effect_interval(self, T, X=None, *, alpha=0.05):
        """A 1 − ``alpha`` band for :meth:`marginal_effect`: ``(lower, upper)``."""
        r = self._marginal(T, X, False, alpha)
        return r["lower"], r["upper"]

    def marginal_ate(self, T, X=None):
        """The average marginal effect mean_i ∂h/∂t(tᵢ, xᵢ) over the given rows (econml's
        ``marginal_ate``): the number to compare with a linear 2SLS slope."""
        est = self._marginal(T, X, True, None)["estimate"]
        return float(est[0]) if np.ndim(est) == 1 else est[0]

    def marginal_ate_interval(self, T, X=None, *, alpha=0.05):
        """A 1 − ``alpha`` interval for :meth:`marginal_ate`: ``(lower, upper)``."""
        r = self._marginal(T, X, True, alpha)
        if np.ndim(r["lower"]) == 1:
            return float(r["lower"][0]), float(r["upper"][0])
        return r["lower"][0], r["upper"][0]

    def dose_response(self, treatment_grid, X=None, *, alpha=None, band="pointwise") -> pd.DataFrame:
        """Estimated structural function on a grid of treatment values, as a tidy DataFrame.

        Parameters
        ----------
        treatment_grid : array-like (m,) or (m, d_t), or DataFrame
            Treatment values. A multi-column treatment needs a 2-D grid (one row per point) or a
            DataFrame with the treatment columns.
        X : array-like or DataFrame, optional
            Covariate rows: each grid value's estimate is the average of h(t, x) over them (the
            average dose-response over that covariate distribution).
        alpha : float in (0, 0.5], optional
            With it, add ``std_error``, ``lower`` and ``upper``: a 1 − alpha confidence band (alpha is the
            miscoverage: 0.05 gives a 95% band).
        band : {"pointwise", "uniform"}, default="pointwise"
            ``"uniform"``: simultaneous over the grid (sup-t over the bootstrap and member draws).
            The band covers what :meth:`predict_interval` covers; not regularisation bias.

        Returns
        -------
        DataFrame with the treatment column(s) (named as at fit time), ``"estimate"`` and, with
        ``alpha``, ``"std_error"``, ``"lower"``, ``"upper"``.
        """
        self._check_fitted()
        if alpha is not None:
            alpha = check_alpha(alpha)
        if isinstance(treatment_grid, (str, bytes)) or (
                not isinstance(treatment_grid, pd.DataFrame) and np.asarray(treatment_grid).dtype.kind in "USO"
                and any(isinstance(v, (str, bytes)) for v in np.asarray(treatment_grid, dtype=object).ravel())):
            raise ValueError(f"treatment_grid must hold numbers, got text {treatment_grid!r}: give the treatment "
                             "values as numbers, e.g. [15] or np.linspace(10, 20, 11)")
        grid = self._grid(treatment_grid)
        names = self._treatment_names()
        lo, hi = self.treatment_range_
        outside = self._outside_training_range(grid)
        for j, name in enumerate(names):
            if outside[j]:
                warn(
                    f"treatment_grid: column {name!r} extends outside the training range [{lo[j]:.4g}, {hi[j]:.4g}]: "
                    "the estimate there is an extrapolation", UserWarning)
        if X is None:
            if self.dims_.get("X") is not None and not self._covariates_optional_in_predict:
                raise ValueError("X is required: the model was fitted with covariates; pass the rows to average over")
            base = None
        else:
            n_x = len(X) if isinstance(X, pd.DataFrame) else as_2d_array(X, "X (covariates)").shape[0]
            base = self._prediction_inputs(np.repeat(grid[:1], n_x, axis=0), X)
        if alpha is None:
            self._identified()
        r = self._report(self._dose_phi_at(grid, base), True, alpha, band)
        frame = pd.DataFrame(grid, columns=names)
        for k in ("estimate", "std_error", "lower", "upper"):
            if k in r:
                frame[k] = r[k]
        outcome = (self.columns_.get("Y") or [None])[0]
        frame.attrs.update(outcome=None if outcome is None else str(outcome),
                           **({} if alpha is None else {"confidence": 1.0 - float(alpha), "band": band}))
        return frame

    def _dose_phi_at(self, grid: np.ndarray, base: Optional[dict]):
        """Φ of the dose-response at the treatment ``grid`` (original units): h at each grid value
        or, with ``base`` (standardized inputs holding the covariate rows), its average over them."""
        key = self._predict_keys[0]
        t_std = self._to_tensor(self.scalers_[key].transform(grid))
        if base is None:
            return self._levels({key: t_std})
        n_x = base[key].shape[0]

        def phi(m, summaries=None):  # every grid value paired with every covariate row, averaged over the rows
            return torch.stack([m._features_at({**base, key: t_std[g].expand(n_x, -1)}, summaries).mean(dim=-2)
                                for g in range(grid.shape[0])], dim=-2)

        return _evaluating(phi, max(n_x, grid.shape[0]), "X" in base)

    # ---- the estimates of summary() ----------------------------------------------------------------
    _SUMMARY_ROWS = 10_000  # rows the summary's averages are taken over (a seeded subsample beyond)

    def _summary_estimates(self, data: dict, alpha: float = 0.05) -> Optional[pd.DataFrame]:
        """The estimates table of ``summary()``, from the training data (encoded arrays by role).

        Rows: the average marginal effect of each treatment column over the training rows, and the
        dose-response at each column's distinct quartiles (the other columns at their medians; a value
        that is two quartiles is one row, e.g. ``[Q1, median]``), averaged over the training rows'
        covariates. Columns: estimate, std. error, the 1 − alpha interval and the
        p-value of the estimate being 0 (Student's t on the bands' degrees of freedom). None for
        treatments of more than 32 columns (images). Beyond 10,000 rows a seeded subsample is used.
        """
        key = self._predict_keys[0]
        T = data[key]
        if T.shape[1] > 32:
            return None
        rows = np.arange(T.shape[0])
        if len(rows) > self._SUMMARY_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(len(rows), self._SUMMARY_ROWS, replace=False))
        inputs = {k: self._to_tensor(self.scalers_[k].transform(data[k][rows]))
                  for k in (key, "X") if data.get(k) is not None}
        if self._covariates_optional_in_predict:  # DFPV: the average dose-response integrates X out
            inputs.pop("X", None)
        names = self._treatment_names()
        groups = [([f"AME {name}" for name in names], self._marginal_phi_at(inputs, True)[0], False)]
        medians = np.median(T[rows], axis=0)
        for j, name in enumerate(names):
            # One row per distinct quartile: on integer-valued treatments Q1 often equals the median (both
            # h(educ = 12)); that row is labelled with every quartile it is, e.g. "[Q1, median]".
            points, labels = [], []
            for value, label in zip(np.quantile(T[rows, j], [0.25, 0.5, 0.75]), ("Q1", "median", "Q3")):
                if points and value == points[-1]:
                    labels[-1] += f", {label}"
                else:
                    points.append(value)
                    labels.append(label)
            grid = np.repeat(medians[None, :], len(points), axis=0)
            grid[:, j] = points
            groups.append(([f"h({name} = {v:.4g}) [{label}]" for v, label in zip(points, labels)],
                           self._dose_phi_at(grid, inputs if "X" in inputs else None), True))
        table = {}
        for labels, phi, level in groups:
            try:
                r = self._report(phi, level, alpha, quiet=True)
            except NoDrawsError:  # neither draws nor members: estimates without intervals
                r = self._report(phi, level)
            for i, label in enumerate(labels):
                table[label] = {k: float(np.atleast_1d(v)[i]) for k, v in r.items()}
        frame = pd.DataFrame.from_dict(table, orient="index")
        for col in ("std_error", "lower", "upper", "dof"):
            if col not in frame:
                frame[col] = np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.abs(frame["estimate"] / frame["std_error"])
            dof = frame["dof"].to_numpy()
            frame["p_value"] = np.where(np.isfinite(dof), 2 * stats.t.sf(t, np.where(np.isfinite(dof), dof, 1.0)),
                                        2 * stats.norm.sf(t))
        return frame[["estimate", "std_error", "lower", "upper", "p_value"]]

    def _projected(self, inputs: dict, size: int = 8192) -> torch.Tensor:
        """This member's stage-2 prediction G(ψ̂, ·) û at standardized inputs (float64, (n,)), with ψ̂
        the stage-1 prediction from the instruments (DFIV) / from treatment and proxy (DFPV)."""
        n = next(iter(inputs.values())).shape[0]
        out = []
        with predicting(self.nets_):
            for lo in range(0, n, size):
                b = {k: v[lo : lo + size] for k, v in inputs.items()}
                G = self._projected_features(self.nets_, self.heads_.V, b)
                out.append((G.double() @ self.heads_.u.to(device=G.device, dtype=torch.float64))[:, 0])
        return torch.cat(out)

    def _score(self, first, arrays: dict) -> float:
        """``score``: arrays by role (``arrays`` key → value) or one DataFrame ``first`` with every role."""
        self._check_fitted()
        frame_mode = isinstance(first, pd.DataFrame) and all(v is None for v in arrays.values())
        if frame_mode:
            unnamed = [self._role_name(k) for _, k, _ in self._roles
                       if self.dims_.get(k) is not None and k not in self._unscored_keys and not self.columns_.get(k)]
            if unnamed:
                raise ValueError(f"score(frame) needs the column names of every role, but the model was fitted on "
                                 f"arrays without names for {unnamed}; pass the roles as arrays")
        treatment = self._predict_keys[0]
        order = [treatment] + [k for _, k, _ in self._roles if k != treatment]  # row errors speak of the treatment
        inputs, n = {}, None
        for key in order:
            value = first if (key == "Y" or frame_mode) else arrays.get(key)
            role = self._role_name(key)
            if self.dims_.get(key) is None:
                if value is not None and not frame_mode:
                    raise ValueError(f"{key} was given but the model was fitted without {role}")
                continue
            if value is None or (frame_mode and key in self._unscored_keys and not self._frame_has(first, key)):
                if key in self._unscored_keys:
                    continue
                raise ValueError(f"{key} ({role}) is required to score")
            arr = self._role_array(value, key, n)
            n = arr.shape[0]
            if key not in self._unscored_keys:
                inputs[key] = self._to_tensor(self.scalers_[key].transform(arr))
        y = inputs.pop("Y").double()[:, 0]
        pred = torch.stack([m._projected(inputs) for m in self._members()]).mean(dim=0)
        mse = float(torch.mean((y - pred.to(y.device)) ** 2)) * float(self.scalers_["Y"].scale[0]) ** 2
        return -mse

    _SCORE_DOC = """The negative held-out-style stage-2 loss on these rows, in the outcome's units².

        score = −mean((Y − G(ψ̂, X) û)²), with ψ̂ the stage-1 prediction of the treatment features
        from the instruments (DFIV) or of the outcome-proxy features from treatment and treatment
        proxy (DFPV), and û the fitted stage-2 head; an ensemble uses the average of its members'
        predictions. This is the projected (IV) risk plus noise: the loss the held-out stage losses
        (``history_``, ``summary()``) track, computable on any rows, so it compares fits of the same
        data (higher is better), e.g. on rows kept out of ``fit``. A low loss does not imply a low
        structural error when the problem is ill-posed: it measures fit, not identification."""
