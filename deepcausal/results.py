"""Reports of fitted two-stage estimators: :class:`FitResults`, what ``est.summary`` returns.

Learning is kept apart from reporting (as linearmodels' ``results`` modules do): the estimator trains
and predicts; a :class:`FitResults` reads its fitted attributes once and presents them as read-only
pandas tables — the estimates with standard errors, intervals and p-values, the first stage, the fit —
printable as text (``print(est.summary)``), as LaTeX, and as HTML in a notebook.

Also here: :func:`record_fit_warnings`, which keeps the warnings a fit raised (``fit_warnings_``) so the
summary can show them, while still letting the user see them when they happen.
"""

from __future__ import annotations

import functools
import html
import inspect
import math
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from ._warnings import recording

__all__ = ["FitResults", "FitSummary", "record_fit_warnings", "stage1_reading"]


def record_fit_warnings(fit):
    """Decorate a fitting method: keep the package warnings it raises in ``fit_warnings_``.

    Each warning is issued when it happens, at the line of the user's code that called the fit, so
    the user's warning filters apply as usual (``pytest.warns``, ``simplefilter("ignore")``, ...), and
    is recorded whatever those filters do (:mod:`deepcausal._warnings`: per thread, so fits running in
    several threads each keep their own, and no global filter is changed). On success the estimator
    gets ``fit_warnings_``: a list of ``"Category: message"`` strings, in the order raised; an
    ensemble's members' warnings are added by the fit itself.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        with recording() as caught:
            result = fit(self, *args, **kwargs)
        self.fit_warnings_ = list(caught)
        return result

    return wrapper


def _fmt(v) -> str:
    if v is None:
        return "None"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "—"
        return f"{v:.4g}"
    return str(v)


def _kept_row(history: pd.DataFrame):
    """The check whose state the member kept (``kept``), else its last check; None without checks."""
    if history is None or len(history) == 0:
        return None
    if "kept" in history and history["kept"].any():
        return history.loc[history["kept"]].iloc[-1]
    return history.iloc[-1]


def stage1_reading(r2: float, n_held_out: int, kind: str) -> str:
    """One line that says what a held-out R² of the learned stage-1 head means for the user."""
    target = "the treatment features" if kind == "iv" else "the outcome-proxy features"
    source = "instrument" if kind == "iv" else "treatment and treatment-proxy"
    few = f" ({n_held_out} held-out rows per half: a noisy figure)" if n_held_out < 100 else ""
    if not np.isfinite(r2):
        return "no held-out rows (validation_fraction=0): the learned first stage was not checked"
    if r2 <= 0:
        return (f"the learned {source} features predict {target} no better than their mean on held-out rows{few}: "
                "the deep first stage overfits or the curve is barely identified; trust the linear F above, "
                "read the curve as weakly identified and compare it with a linear IV estimate")
    if r2 < 0.1:
        return (f"the learned {source} features explain little of {target} on held-out rows{few}: the curve is "
                "weakly identified, and regularisation bias (which the bands do not cover) can be large")
    return f"the learned {source} features explain {r2:.0%} of {target} on held-out rows{few}"


def _covariate_line(est) -> dict:
    """The covariate screen's choice (``covariate_selection_``), when it ran."""
    c = getattr(est, "covariate_selection_", None) or {}
    if not c:
        return {}
    if c.get("kept") is None:
        return {"covariates": f"all {len(c['names'])} read ({c['reason']})"}
    left = [name for name in c["names"] if name not in c["kept_names"]]
    if not left:
        other = "a proxy" if "W" in getattr(est, "dims_", {}) else "an instrument"
        return {"covariates": f"all {len(c['names'])} kept (each predicts the outcome, the treatment or {other})"}
    shown = ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
    other = "a proxy" if "W" in getattr(est, "dims_", {}) else "an instrument"
    return {"covariates": f"{len(c['kept_names'])} of {len(c['names'])} kept; left out, as they predict neither the "
                          f"outcome, the treatment nor {other} (group lasso): {shown}"}


def _complexity_line(est) -> dict:
    """The complexity rule's choice (``complexity_``), when a rule chose."""
    c = getattr(est, "complexity_", None) or {}
    if c.get("rule", "trained") == "trained":
        return {}
    if c.get("chosen") is None:
        return {"complexity": f"{c['rule']}: not applied ({c.get('reason', 'no family')})"}
    if c["rule"] == "projected":
        z = (c.get("criterion") or [float("nan")])[0]
        verdict = ("not significantly better: the simplest curve" if c["chosen"] == 0
                   else "significantly better: the trained head")
        return {"complexity": f"'{c['label']}': the trained head's projected fit against the line's, z = {z:.3g} "
                              f"({verdict})"}
    if c["rule"] == "held_out":
        return {"complexity": f"'{c['label']}': {c['verdict']}"}
    if c["rule"] == "sieve":
        knots = ", ".join("line" if k is None else str(k) for k in c.get("sieve_knots") or [])
        return {"complexity": f"sieve: '{c['label']}', Lepski's knots per member: {knots}"
                              + (f" ({c['reason']})" if c.get("reason") else "")}
    if c.get("reason") and c["rule"] == "linear":  # complexity="auto" read the instruments
        return {"complexity": f"'{c['label']}', the simplest curve: {c['reason']}"}
    if c.get("reason"):  # "auto" chose Lepski's rule (discrete instruments of more than d_t + 1 values)
        return {"complexity": f"{c['rule']} chose '{c['label']}' (candidate {c['chosen']} of {len(c['candidates'])}, "
                              f"simplest first): {c['reason']}"}
    return {"complexity": f"{c['rule']} chose '{c['label']}' (candidate {c['chosen']} of {len(c['candidates'])}, "
                          "simplest first)"}


def _default_params(est) -> dict:
    sig = inspect.signature(type(est).__init__)
    return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def _same(a, b) -> bool:
    try:
        return bool(a == b) and type(a) is type(b) or (a is None and b is None)
    except Exception:
        return a is b


class FitResults:
    """A read-only report of a fitted :class:`~deepcausal.DFIV` or :class:`~deepcausal.DFPV`.

    ``est.summary`` returns it (a property, as linearmodels' ``results.summary``); calling it, as in
    econml's ``est.summary()``, returns the same object, so both habits work. Every table is a pandas
    object (a copy: changing it does not change the report); ``str(results)`` is a readable text
    table, :meth:`as_latex` LaTeX, and notebooks show HTML.

    Attributes
    ----------
    title : str
        Estimator class, mode and number of members.
    estimates : DataFrame or None
        The average marginal effect (AME) of each treatment column over the training rows, and the
        dose-response at each column's distinct quartiles (other columns at their medians; a value that
        is two quartiles, as on integer data, is one row labelled ``[Q1, median]``), averaged over the
        training rows' covariates: ``estimate``, ``std_error``, ``lower`` and ``upper`` (95%
        interval) and ``p_value`` (of the estimate being 0; Student's t on the bands' degrees of
        freedom). The same numbers as ``marginal_ate_interval`` and ``dose_response(..., alpha=0.05)``
        on those rows (beyond 10,000 rows, on a seeded subsample of 10,000). None for image treatments.
    first_stage : DataFrame or None
        DFIV, per treatment column: the classical and heteroskedasticity-robust partial F, the partial
        R² and, with several columns, the conditional (Sanderson-Windmeijer) F.
    linear_check : DataFrame or None
        DFIV, per treatment column: linear 2SLS's slope on the training rows (``tsls``, ``tsls_se``,
        heteroskedasticity-robust) and the fitted curve's 2SLS-weighted slope (``curve``), the same
        statistic of the curve, which the instruments pin down whatever its shape; their
        ``difference``, its ``p_value`` and the ``shrinkage`` 1 − curve / tsls; beside them the
        curve's average marginal effect (``ame``, ``ame_lower``, ``ame_upper``). See ``linear_check_``.
    line_intervals : DataFrame or None
        DFIV, where the curve is the line in one treatment column (``complexity_``): its slope with three
        95% intervals — the default band, the heteroskedasticity-robust (HC1) Wald interval of 2SLS with
        the members' learned covariate features as controls, and the Anderson-Rubin set, valid however
        weak the instruments (``line_inference_``).
    strength : Series
        The linear first-stage F (``first_stage_f_``, DFIV) and the held-out R² of the learned
        stage-1 head (averaged over members), with ``reading``, one line on what it means.
    fit : Series
        Rows, rows per stage half and held out, members, how training ended, fit seconds, warnings.
    settings : DataFrame
        The hyper-parameters that differ from the defaults: ``given`` and ``in force`` (as resolved).
    all_settings : DataFrame
        Every hyper-parameter, ``given`` and ``in force``.
    model : DataFrame
        One row per role: its columns (in the order given or in the formula's), the encoded width and
        the levels of categorical columns.
    data : DataFrame
        Rows per stage half: ``rows``, ``held_out`` and ``trained_on``.
    members : DataFrame
        One row per ensemble member: seed, how training ended, steps, the kept check and its held-out
        stage losses (standardized units) and stage-2 MSE (outcome units²).
    warnings : tuple of str
        The warnings raised during fit, as ``"Category: message"``.

    Examples
    --------
    >>> from deepcausal import DFIV
    >>> from deepcausal.datasets import demand
    >>> d = demand(n=1000, seed=0)
    >>> est = DFIV(n_epochs=2, n_estimators=2, n_jobs=1, random_state=0, verbose=False).fit(
    ...     d.train, **d.fit_kwargs())
    >>> list(est.summary.estimates.columns)
    ['estimate', 'std_error', 'lower', 'upper', 'p_value']
    >>> print(est.summary)  # doctest: +ELLIPSIS
    DFIV results...
    """

    _frozen = False

    def __init__(self, estimator):
        est = estimator
        members = est._members()
        self._kind = "proxy" if "W" in est.dims_ else "iv"
        k = len(members)
        self.title = f"{type(est).__name__} results (mode={est.mode!r}, {k} member{'s' if k > 1 else ''})"
        self._tables: Dict[str, object] = {}
        self._tables["model"] = self._model_table(est)
        self._tables["data"] = self._data_table(est)
        self._tables["members"] = self._members_table(est, members)
        self._tables["strength"] = self._strength(est, self._tables["members"], self._kind)
        table = getattr(est, "first_stage_", None)
        self._tables["first_stage"] = None if table is None else table.copy()
        check = getattr(est, "linear_check_", None)
        self._tables["linear_check"] = None if check is None else check.copy()
        self._tables["line_intervals"] = self._line_table(est)
        estimates = getattr(est, "summary_estimates_", None)
        self._tables["estimates"] = None if estimates is None else estimates.copy()
        self._tables["all_settings"] = self._settings_table(est)
        defaults = _default_params(est)
        given = self._tables["all_settings"]
        differs = [name for name in given.index
                   if name in defaults and not _same(getattr(est, name), defaults[name])]
        self._tables["settings"] = given.loc[differs]
        self._tables["warnings"] = tuple(getattr(est, "fit_warnings_", ()))
        self._tables["fit"] = self._fit_series(est, self._tables["members"], self._tables["warnings"])
        formula = getattr(est, "formula_", None)
        self.formula = None if formula is None else formula.formula
        self._frozen = True

    def __setattr__(self, name, value):
        if self._frozen:
            raise AttributeError("the results are read-only")
        super().__setattr__(name, value)

    def __call__(self) -> "FitResults":
        """The results themselves: ``est.summary()`` (econml's habit) is ``est.summary``."""
        return self

    # ---- tables ------------------------------------------------------------------------------
    @staticmethod
    def _line_table(est) -> Optional[pd.DataFrame]:
        """Where the curve is the line in one treatment column: its slope's three intervals (95%)."""
        line = getattr(est, "line_inference_", None)
        estimates = getattr(est, "summary_estimates_", None)
        if not line or estimates is None:
            return None
        ame = estimates.loc[[i for i in estimates.index if str(i).startswith("AME ")][0]]
        rows = {
            "band (the default: heads' bootstrap and members)": (ame["estimate"], ame["std_error"],
                                                                f"[{ame['lower']:.4g}, {ame['upper']:.4g}]"),
            "robust Wald (2SLS, HC1)": (line["estimate"], line["std_error"],
                                        f"[{line['wald'][0]:.4g}, {line['wald'][1]:.4g}]"),
            "Anderson-Rubin (robust; valid with weak instruments)": (line["estimate"], np.nan, line["anderson_rubin"]),
        }
        return pd.DataFrame.from_dict(rows, orient="index", columns=["slope", "std_error", "95% interval"])

    @staticmethod
    def _model_table(est) -> pd.DataFrame:
        rows = {}
        encoders = getattr(est, "encoders_", {}) or {}
        for role, key, _ in est._roles:
            d = est.dims_.get(key)
            if d is None:
                continue
            cols = est.columns_.get(key) or []
            levels = encoders.get(key, {})
            rows[role] = {
                "columns": ", ".join(map(str, cols)) if cols else f"({d} unnamed)",
                "encoded": d,
                "categorical": "; ".join(f"{c}: {len(v)} levels" for c, v in levels.items()),
            }
        return pd.DataFrame.from_dict(rows, orient="index")

    @staticmethod
    def _data_table(est) -> pd.DataFrame:
        n, n1 = int(est.n_train_), int(est.n_stage1_)
        n_val = int(est.settings_.get("n_val", 0))
        rows = {"stage 1": (n1, n_val), "stage 2": (n - n1, n_val), "total": (n, 2 * n_val)}
        return pd.DataFrame({name: {"rows": r, "held_out": h, "trained_on": r - h} for name, (r, h) in rows.items()}).T

    @staticmethod
    def _members_table(est, members) -> pd.DataFrame:
        seeds = list(getattr(est, "seeds_", []) or [])
        y_var = float(est.scalers_["Y"].scale[0]) ** 2
        rows = []
        for i, m in enumerate(members):
            stop = getattr(m, "stopping_", {}) or {}
            kept = _kept_row(getattr(m, "history_", None))
            row = {"seed": seeds[i] if i < len(seeds) else None, "stopped": stop.get("reason"),
                   "epochs": stop.get("epochs"), "steps": stop.get("steps"),
                   "restarts": len(stop.get("recoveries") or ()),
                   "kept_step": stop.get("kept_step") if stop.get("kept_step") is not None
                   else (None if kept is None else int(kept["step"]))}
            for col in ("val_stage1_loss", "val_stage1_r2", "val_stage2_loss"):
                row[col] = float(kept[col]) if kept is not None and col in kept else float("nan")
            row["val_stage2_mse"] = row["val_stage2_loss"] * y_var
            rows.append(row)
        return pd.DataFrame(rows, index=pd.RangeIndex(len(rows), name="member"))

    @staticmethod
    def _strength(est, members: pd.DataFrame, kind: str) -> pd.Series:
        out = {}
        if hasattr(est, "first_stage_f_"):
            out["linear first-stage F"] = float(est.first_stage_f_)
        r2 = float(members["val_stage1_r2"].mean())
        out["held-out stage-1 R² (learned)"] = r2
        series = pd.Series(out, name="value", dtype=float)
        series.attrs["reading"] = stage1_reading(r2, int(est.settings_.get("n_val", 0)), kind)
        return series

    @staticmethod
    def _settings_table(est) -> pd.DataFrame:
        s = est.settings_
        steps = s.get("max_steps")
        per_epoch = s.get("steps_per_epoch")
        epochs_cap = math.ceil(steps / per_epoch) if steps and per_epoch else None
        rows: List[Tuple[str, object, object]] = [
            ("mode", est.mode, est.mode),
            ("batch_size", est.batch_size, s.get("batch_size")),
            ("lam1", est.lam1, s.get("lam1")),
            ("lam2", est.lam2, s.get("lam2")),
            ("lam12", est.lam12, s.get("lam12")),
            ("beta1", est.beta1, est.beta1),
            ("beta2", est.beta2, est.beta2),
            ("lr", est.lr, est.lr),
            ("lr_schedule", est.lr_schedule, s.get("lr_schedule", est.lr_schedule)),
            ("treatment_weight_decay", est.treatment_weight_decay, est.treatment_weight_decay),
            ("n_epochs", est.n_epochs, epochs_cap),
            ("stage1_iter", est.stage1_iter, s.get("stage1_iter")),
            ("covariate_iter", est.covariate_iter, s.get("covariate_iter")),
            ("stage2_iter", est.stage2_iter, s.get("stage2_iter")),
            ("split_ratio", est.split_ratio, est.split_ratio),
            ("validation_fraction", est.validation_fraction, est.validation_fraction),
            ("early_stopping", est.early_stopping, s.get("early_stopping", est.early_stopping)),
            ("n_iter_no_change", est.n_iter_no_change, s.get("patience", est.n_iter_no_change)),
            ("refit_heads", est.refit_heads, est.refit_heads),
            ("complexity", est.complexity, s.get("complexity", est.complexity)),
            ("n_estimators", est.n_estimators, len(est._members())),
            ("n_bootstrap", est.n_bootstrap, est.n_bootstrap),
            ("n_jobs", est.n_jobs, est.n_jobs),
            ("random_state", est.random_state, est.random_state),
            ("device", est.device, str(getattr(est, "device_", est.device))),
            ("verbose", est.verbose, est.verbose),
        ]
        rows += [(name, est.get_params()[name], type(est.get_params()[name]).__name__)
                 for name in sorted(est.get_params()) if name.endswith("_net")]
        frame = pd.DataFrame([(g, f) for _, g, f in rows], index=[r[0] for r in rows], columns=["given", "in force"],
                             dtype=object)
        frame.loc["max_steps"] = ["—", steps]
        return frame

    @staticmethod
    def _fit_series(est, members: pd.DataFrame, warns: tuple) -> pd.Series:
        reasons = members["stopped"].value_counts()
        out = {
            "rows": int(est.n_train_),
            "rows per stage (held out)": f"{int(est.n_stage1_)} / {int(est.n_train_) - int(est.n_stage1_)} "
                                         f"({int(est.settings_.get('n_val', 0))} each)",
            "members": len(members),
            "training ended": ", ".join(f"{r} ({c} of {len(members)})" if len(members) > 1 else str(r)
                                        for r, c in reasons.items()),
            "steps per member (median)": int(members["steps"].median()) if len(members) else 0,
            "fit seconds": float(getattr(est, "fit_seconds_", float("nan"))),
            **_covariate_line(est),
            **_complexity_line(est),
            "warnings": len(warns),
        }
        return pd.Series(out, name="value", dtype=object)

    # ---- read-only access -----------------------------------------------------------------------
    def _copy(self, name):
        table = self._tables[name]
        return None if table is None else table.copy()

    estimates = property(lambda self: self._copy("estimates"))
    first_stage = property(lambda self: self._copy("first_stage"))
    linear_check = property(lambda self: self._copy("linear_check"))
    line_intervals = property(lambda self: self._copy("line_intervals"))
    model = property(lambda self: self._copy("model"))
    data = property(lambda self: self._copy("data"))
    members = property(lambda self: self._copy("members"))
    strength = property(lambda self: self._copy("strength"))
    settings = property(lambda self: self._copy("settings"))
    all_settings = property(lambda self: self._copy("all_settings"))
    fit = property(lambda self: self._copy("fit"))
    warnings = property(lambda self: self._tables["warnings"])

    def to_frame(self) -> pd.DataFrame:
        """The estimates table (a copy), as linearmodels' ``results.summary`` tables convert."""
        if self._tables["estimates"] is None:
            raise ValueError("this fit has no estimates table (image treatments have no quartiles or AME)")
        return self._copy("estimates")

    # ---- rendering ------------------------------------------------------------------------------
    def _header(self) -> List[Tuple[str, str]]:
        model, fit = self._tables["model"], self._tables["fit"]
        pairs = [(role, model.loc[role, "columns"]) for role in model.index]
        pairs += [(k, _fmt(v)) for k, v in fit.items()]
        if self.formula:
            pairs.append(("formula", self.formula))
        return pairs

    def _sections(self):
        """(heading, table or None, note) in display order."""
        est = self._tables["estimates"]
        if est is not None:
            yield ("Estimates (95% intervals)", est.rename(columns={"std_error": "std. error", "p_value": "p-value"}),
                   "AME: average marginal effect over the training rows; h(t): dose-response at the treatment's "
                   "quartiles, averaged over the training rows' covariates. p-value: of the estimate being 0. "
                   "The bands cover sampling noise, not regularisation bias.")
        strength = self._tables["strength"]
        if self._tables["first_stage"] is not None:
            fs = self._tables["first_stage"]
            yield ("First stage (linear, per treatment column)", fs,
                   "F: classical partial F; F (robust): heteroskedasticity-robust Wald / number of instruments"
                   + ("; F (conditional): Sanderson-Windmeijer, given the other treatment columns"
                      if "F (conditional)" in fs else "") + ". Below 10: weak.")
        check = self._tables["linear_check"]
        if check is not None:
            yield ("Linear check (2SLS on the training rows)",
                   check.rename(columns={"tsls": "2SLS", "tsls_se": "2SLS s.e.", "curve": "curve",
                                         "difference_se": "difference s.e.", "p_value": "p-value",
                                         "ame": "curve AME", "ame_lower": "AME lower", "ame_upper": "AME upper"}),
                   "curve: the fitted curve's 2SLS-weighted slope, which the instruments identify whatever the "
                   "curve's shape; it should match 2SLS within 2SLS's noise (p-value of the difference; "
                   "shrinkage: 1 − curve / 2SLS). The curve's AME (AME lower, AME upper: its 95% interval) weighs "
                   "its slopes differently and is identified only as far as its shape is.")
        line = self._tables["line_intervals"]
        if line is not None:
            yield ("The line's slope: three intervals", line,
                   "The band is the default (marginal_ate_interval, dose_response): the score bootstrap of the "
                   "line's two stages, combined with the members' spread by Rubin's rules (Student's t on few "
                   "degrees of freedom, so it is wider than a single 2SLS's interval). The robust Wald interval "
                   "is 2SLS's with the members' learned covariate features as controls, as linearmodels' "
                   "IV2SLS(cov_type='robust', debiased=True) reports it; both assume a strong first stage. "
                   "The Anderson-Rubin set inverts a test that does not depend on the first stage's strength: "
                   "prefer it when the first-stage F is low (it is unbounded when the instruments cannot be "
                   "told from irrelevant ones).")
        yield ("First-stage strength", strength.to_frame(), strength.attrs.get("reading", ""))
        if len(self._tables["settings"]):
            yield "Settings that differ from the defaults", self._tables["settings"], ""
        ws = self._tables["warnings"]
        yield f"Warnings during fit ({len(ws)})", None, "\n".join(f"- {w}" for w in ws) if ws else "none"

    @staticmethod
    def _as_text(table) -> str:
        # Every row and column, whatever pandas' display options say (its default width cuts wide tables).
        with pd.option_context("display.width", None, "display.max_columns", None, "display.max_rows", None,
                               "display.max_colwidth", None):
            if isinstance(table, (pd.DataFrame, pd.Series)):
                return table.map(_fmt).to_string()
            return str(table)

    def __str__(self) -> str:
        pairs = self._header()
        width = max(len(k) for k, _ in pairs)
        out = [self.title, "=" * max(len(self.title), 60)]
        out += [f"{k + ':':<{width + 1}} {v}" for k, v in pairs]
        for heading, table, note in self._sections():
            out += ["", heading, "-" * len(heading)]
            if table is not None:
                out.append(self._as_text(table))
            if note:
                out.append(note)
        return "\n".join(out)

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        parts = [f"<h3>{html.escape(self.title)}</h3>", "<table>"]
        parts += [f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                  f"{html.escape(str(v))}</td></tr>" for k, v in self._header()]
        parts.append("</table>")
        for heading, table, note in self._sections():
            parts.append(f"<h4>{html.escape(heading)}</h4>")
            if table is not None:
                parts.append(table.map(_fmt).to_html())
            if note:
                parts.append("<p>" + html.escape(note).replace("\n", "<br>") + "</p>")
        return "\n".join(parts)

    def as_latex(self) -> str:
        """The header, the estimates and the first stage as LaTeX tabulars (booktabs rules)."""
        def tabular(frame: pd.DataFrame) -> str:
            cols = "l" + "r" * frame.shape[1]
            lines = [f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
                     " & ".join([""] + [_latex(c) for c in frame.columns]) + " \\\\", "\\midrule"]
            lines += [" & ".join([_latex(i)] + [_latex(_fmt(v)) for v in row]) + " \\\\"
                      for i, row in zip(frame.index, frame.itertuples(index=False))]
            lines += ["\\bottomrule", "\\end{tabular}"]
            return "\n".join(lines)

        header = pd.DataFrame({"value": [v for _, v in self._header()]}, index=[k for k, _ in self._header()])
        parts = [f"% {self.title}", tabular(header)]
        for heading, table, _ in self._sections():
            if isinstance(table, pd.DataFrame):
                parts += [f"% {heading}", tabular(table)]
        return "\n\n".join(parts) + "\n"


def _latex(value) -> str:
    text = str(value)
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                          ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                          ("^", r"\textasciicircum{}")):
        text = text.replace(char, escaped)
    return text


FitSummary = FitResults  # the name of deepcausal 0.1's report
