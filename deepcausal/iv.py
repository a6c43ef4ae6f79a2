"""DFIV: deep feature instrumental-variable regression (DESIGN §3)."""

from __future__ import annotations

import numpy as np

from ._complexity import LINE_LABEL
from ._diagnostics import linear_iv_check, warn_if_shrunk, warn_if_weak_instrument
from ._docstrings import fill_shared_docs
from ._estimator import TwoStageEstimator
from ._inputs import concat_inputs
from ._modes import predicting
from ._weak_iv import anderson_rubin_set, format_set, tsls_robust, wald_interval
from .heads import add_intercept, outer_features

__all__ = ["DFIV"]


class DFIV(TwoStageEstimator):
    """Deep feature instrumental-variable regression of a structural function h(t, x).

    Estimates h(t, x) = E[Y | do(T = t), X = x] when the treatment T is confounded, from instruments
    Z that move T but reach the outcome Y only through it: E[Y − h(T, X) | Z, X] = 0, with covariates
    X exogenous. With learned features ψ(t), φ(z, x) and η(x)::

        stage 1 (half S1)   ψ(T) ≈ Vᵀ [φ(Z, X), 1]
        stage 2 (half S2)   Y ≈ uᵀ ([ψ̂, 1] ⊗ [η(X), 1]),   ψ̂ = Vᵀ [φ(Z, X), 1]
        estimate            ĥ(t, x) = uᵀ ([ψ(t), 1] ⊗ [η(x), 1])

    The heads V, u are solved in closed form (on minibatches by the proximal solver) while the
    networks take gradient steps; an ensemble of members, each with its own split, is averaged, and
    its bands combine a bootstrap of the heads with the members' spread. The API reference's method
    page gives the equations and what the defaults rest on.

    Parameters
    ----------
    mode : {"proximal", "ridge"}, default="proximal"
        Minibatches with proximal heads, or the original full-batch algorithm (λ taken as 0).
    treatment_net, instrument_net, covariate_net : nn.Module or callable, optional
        Feature networks of T, (Z, X) and X (a module, or a factory called with the input width).
    %(n_epochs_parameter)s
    batch_size : int or "auto", default="auto"
        Rows of each stage half per minibatch (512, or the whole half when smaller).
    lam1, lam2 : float, optional
        Proximal coefficients of the stage-1 and stage-2 heads; default 0.1 × 512 / batch_size.
    lam12 : float, default=0.0
        Proximal coefficient of the stage-1 refit inside the stage-2 loss.
    beta1, beta2 : float, default=1e-3
        Ridge penalties of the stage-1 and stage-2 heads, on standardized data.
    stage1_iter, covariate_iter, stage2_iter : int, optional
        Gradient steps per minibatch pair and stage; default 4, 4, 1 (ridge mode: 20, 20, 1).
    %(training_parameters)s
    covariate_selection : {"group_lasso", None}, default="group_lasso"
        %(covariate_selection_parameter)s

    Attributes
    ----------
    %(results_attributes)s
    %(covariate_selection_attribute)s
    first_stage_f_ : float
        Linear first-stage F of the weakest treatment column (conditional F with several columns).
    first_stage_ : DataFrame or None
        Per treatment column: classical and robust partial F, partial R², conditional F.
    linear_check_ : DataFrame or None
        Per treatment column: linear 2SLS's slope and the curve's 2SLS-weighted slope, their difference
        and p-value, the shrinkage and the curve's AME; a ``ShrinkageWarning`` when they differ by
        p < 0.05 and at least a tenth (see ``deepcausal.results.FitResults.linear_check``).
    line_inference_ : dict or None
        Where the curve is the line in one treatment column: 2SLS's slope with the members' learned
        covariate features as controls, its robust (HC1) standard error and Wald interval (``wald``), the
        robust first-stage F and the Anderson-Rubin 95% set (``anderson_rubin``, as text; valid with weak
        instruments). ``summary.line_intervals`` shows them beside the default band.

    References
    ----------
    Xu, Chen, Srinivasan, de Freitas, Doucet, Gretton. Learning Deep Features in Instrumental
    Variable Regression. ICLR 2021.

    Examples
    --------
    >>> from deepcausal import DFIV
    >>> from deepcausal.datasets import demand
    >>> d = demand(n=1000, seed=0)
    >>> est = DFIV(n_epochs=5, n_estimators=2, random_state=0).fit(d.train, **d.fit_kwargs())
    >>> est.dose_response([15.0, 20.0], X=d.train[["time", "customer_type"]]).shape
    (2, 2)
    """

    _roles = (("outcome", "Y", True), ("treatment", "T", True), ("instruments", "Z", True), ("covariates", "X", False))
    _nets = {
        "instrument": ("instrument_net", ("Z", "X"), "stage1"),
        "treatment": ("treatment_net", ("T",), "stage2"),
        "covariate": ("covariate_net", ("X",), "covariate"),
    }
    _predict_keys = ("T", "X")
    _default_batch = 512
    # Learned widths of the default treatment and covariate networks (the raw input is kept beside them):
    # 4 and 8 instead of 16 and 16 shrink the stage-2 head from 18 × 19 = 342 to 6 × 11 = 66 columns at a
    # held-out stage-2 loss within 1% on demand and lowdim (benchmarks/RESULTS.md, "Default network widths").
    _default_widths = {"treatment_net": 4, "covariate_net": 8}
    _stack_members = True  # members as one stacked computation (RESULTS.md, "Whole default fit")
    covariate_selection = None  # what an estimator pickled before the parameter existed did: read every covariate

    def __init__(
        self,
        *,
        mode="proximal",
        treatment_net=None,
        instrument_net=None,
        covariate_net=None,
        n_epochs=None,
        batch_size="auto",
        lam1=None,
        lam2=None,
        lam12=0.0,
        beta1=1e-3,
        beta2=1e-3,
        stage1_iter=None,
        covariate_iter=None,
        stage2_iter=None,
        lr=1e-3,
        lr_schedule="auto",
        treatment_weight_decay=0.0,
        split_ratio=0.5,
        validation_fraction=0.1,
        early_stopping=True,
        n_iter_no_change=10,
        refit_heads=True,
        complexity="auto",
        covariate_selection="group_lasso",
        n_estimators=5,
        n_bootstrap=100,
        n_jobs=-1,
        random_state=None,
        device="cpu",
        verbose="auto",
    ):
        self.mode = mode
        self.treatment_net = treatment_net
        self.instrument_net = instrument_net
        self.covariate_net = covariate_net
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lam1 = lam1
        self.lam2 = lam2
        self.lam12 = lam12
        self.beta1 = beta1
        self.beta2 = beta2
        self.stage1_iter = stage1_iter
        self.covariate_iter = covariate_iter
        self.stage2_iter = stage2_iter
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.treatment_weight_decay = treatment_weight_decay
        self.split_ratio = split_ratio
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.refit_heads = refit_heads
        self.complexity = complexity
        self.covariate_selection = covariate_selection
        self.n_estimators = n_estimators
        self.n_bootstrap = n_bootstrap
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def fit(self, Y=None, T=None, *positional, X=None, Z=None, outcome=None, treatment=None, instruments=None,
            covariates=None, validation=None):
        """Fit from arrays ``fit(Y, T, X=..., Z=...)``, a DataFrame ``fit(df, outcome=..., ...)``, or, for an
        estimator made by :meth:`from_formula`, its formula's data: ``fit()``.

        Parameters
        ----------
        Y : array-like (n,) or (n, 1), or a DataFrame in DataFrame mode
            Outcome; in DataFrame mode, the frame holding every role's columns. Omitted: the data
            bound by :meth:`from_formula`.
        T : array-like (n, d_t)
            Treatment (array mode).
        X : array-like (n, d_x), optional
            Covariates (array mode).
        Z : array-like (n, d_z)
            Excluded instruments (array mode).
        outcome, treatment, instruments, covariates : str or list of str
            Column names of each role (DataFrame mode).
        validation : tuple, optional
            A design with a known structural function, to record the structural MSE per epoch in
            ``history_``: ``(frame, truth)`` with the treatment/covariate columns, or ``(T, X, truth)``.

        Returns
        -------
        self
        """
        if positional:
            raise TypeError("DFIV.fit() takes the outcome and the treatment by position and the other roles by name: "
                            f"fit(Y, T, X=..., Z=...) (Z, the instruments, is keyword-only); {2 + len(positional)} "
                            "positional arguments were given")
        if Y is None and T is None:
            return self._fit_formula()
        data, columns, images, encoders = self._collect(
            Y, {"T": T, "X": X, "Z": Z},
            {"outcome": outcome, "treatment": treatment, "instruments": instruments, "covariates": covariates},
        )
        return self._fit(data, columns, images, validation, encoders)

    def predict(self, T, X=None, *, heads="fitted"):
        """Structural function h(t, x) per row.

        Parameters
        ----------
        T : array-like (n, d_t) or DataFrame
            Treatment values, or a DataFrame holding the treatment (and covariate) columns named at fit.
        X : array-like (n, d_x), optional
            Covariates (array mode), required when the model was fitted with covariates.
        heads : {"fitted", "current"}
            ``"fitted"`` uses the heads ``predict`` normally uses (refit when ``refit_heads``);
            ``"current"`` the heads as trained.

        Returns
        -------
        ndarray (n,)
        """
        return self._predict(T, X, heads)

    def score(self, Y, T=None, *, X=None, Z=None) -> float:
        """%(score)s

        Parameters
        ----------
        Y : array-like (n,), or a DataFrame holding every role's columns (named as at fit)
            Outcome; ``score(frame)`` takes all roles from the frame.
        T, X, Z : array-like or DataFrame
            Treatment, covariates (when fitted with them) and instruments of the same rows.

        Returns
        -------
        float
            Higher is better; 0 is a perfect projected fit.

        Examples
        --------
        >>> from deepcausal import DFIV
        >>> from deepcausal.datasets import demand
        >>> d = demand(n=1200, seed=0)
        >>> train, new = d.train.iloc[:1000], d.train.iloc[1000:]
        >>> est = DFIV(n_epochs=2, n_bootstrap=0, random_state=0).fit(train, **d.fit_kwargs())
        >>> est.score(new) < 0
        True
        """
        return self._score(Y, {"T": T, "X": X, "Z": Z})

    def _diagnose(self, data, reduce_sum, columns):
        return warn_if_weak_instrument(data["T"], data["Z"], data.get("X"), reduce_sum, columns.get("T"))

    _CHECK_ROWS = 100_000  # rows the linear check uses (a seeded subsample beyond)

    def _linear_check(self, data):
        """``linear_check_``: the curve's 2SLS-weighted slopes against linear 2SLS's on the training rows
        (:func:`deepcausal._diagnostics.linear_iv_check`), with a :class:`ShrinkageWarning` where they
        differ; None for treatments of more than 32 columns or a curve the data do not identify."""
        T, X = data["T"], data.get("X")
        self.line_inference_ = None
        if T.shape[1] > 32 or (self.identification_ or {}).get("status") == "not identified":
            return None
        rows = np.arange(T.shape[0])
        if len(rows) > self._CHECK_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(len(rows), self._CHECK_ROWS, replace=False))
        inputs = {k: self._to_tensor(self.scalers_[k].transform(data[k][rows])) for k in ("T", "X")
                  if data.get(k) is not None}
        h = self._report(self._levels(inputs), True)["estimate"]
        check = linear_iv_check(data["Y"][rows], T[rows], data["Z"][rows], None if X is None else X[rows], h,
                                self._treatment_names())
        table = getattr(self, "summary_estimates_", None)
        if check is not None and table is not None:  # the curve's own average marginal effect beside
            for col, src in (("ame", "estimate"), ("ame_lower", "lower"), ("ame_upper", "upper")):
                check[col] = [float(table.loc[f"AME {name}", src]) for name in check.index]
        warn_if_shrunk(check)
        self.line_inference_ = self._line_inference(data, rows)
        return check

    def _line_inference(self, data, rows):
        """``line_inference_``: where the curve is the line in one treatment column (``complexity_``), what
        an econometrician reports beside the bootstrap band: the 2SLS slope with its heteroskedasticity-
        robust (HC1) Wald interval, and the Anderson-Rubin set, which stays valid however weak the
        instruments are (:mod:`deepcausal._weak_iv`). The controls are every member's learned covariate
        features with an intercept (just an intercept without covariates); in the original units."""
        label = str((self.complexity_ or {}).get("label"))
        T, X = data["T"], data.get("X")
        if not label.startswith(LINE_LABEL) or T.shape[1] != 1:
            return None
        W = [np.ones((len(rows), 1))]
        learned = X is not None and all("covariate" in m.nets_ for m in self._members())  # none: all screened out
        if learned:
            x = self._to_tensor(self.scalers_["X"].transform(X[rows]))
            for m in self._members():
                with predicting(m.nets_):
                    W.append(m._covariate_features(m.nets_, {"X": x}, False).double().cpu().numpy())
        y, t, z = data["Y"][rows, 0], T[rows, 0], data["Z"][rows]
        try:
            line = tsls_robust(y, t, z, np.hstack(W))
            ar = anderson_rubin_set(y, t, z, np.hstack(W), alpha=0.05, robust=True)
        except ValueError:  # the instruments lie in the span of the controls: nothing to report
            return None
        lo, hi = wald_interval(line, 0.05)
        return {"estimate": float(line["estimate"]), "std_error": float(line["se"]), "wald": [float(lo), float(hi)],
                "anderson_rubin": format_set(ar), "anderson_rubin_kind": ar["kind"],
                "first_stage_F": float(line["first_stage_F"]), "controls": "learned" if learned else "none"}

    # ---- the feature maps of DESIGN §3 --------------------------------------------------------
    def _stage1_features(self, nets, b):
        return add_intercept(nets["instrument"](concat_inputs(b, ("Z", "X"))))  # [φ(Z, X), 1]

    def _stage1_target(self, nets, b):
        return nets["treatment"](b["T"])  # ψ(T)

    def _stage2_parts(self, nets, b, covariate_grad):
        return {"eta": self._covariate_features(nets, b, covariate_grad)}

    def _stage2_combine(self, parts, target_hat):
        return outer_features(target_hat, parts["eta"])  # [ψ̂, 1] ⊗ [η, 1]

    def _predict_features(self, nets, b, summaries):
        return outer_features(nets["treatment"](b["T"]), self._covariate_features(nets, b, False))


DFIV.__doc__ = fill_shared_docs(DFIV.__doc__)
DFIV.score.__doc__ = DFIV.score.__doc__.replace("%(score)s", TwoStageEstimator._SCORE_DOC)
