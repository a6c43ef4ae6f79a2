"""Reports of fitted two-stage estimators: :class:`FitSummary`, what ``summary()`` returns.

Learning is kept apart from reporting (as linearmodels' ``results`` modules do): the estimator trains
and predicts; a :class:`FitSummary` reads its fitted attributes once and presents them as read-only
pandas tables, printable as text (``print(est.summary())``) and as HTML in a notebook.

Also here: :func:`record_fit_warnings`, which keeps the warnings a fit raised (``fit_warnings_``) so the
summary can show them, while still letting the user see them when they happen.
"""

from __future__ import annotations

import functools
import html
import math
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from ._warnings import recording

__all__ = ["FitSummary", "record_fit_warnings"]


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


class FitSummary:
    """A read-only report of a fitted :class:`~deepcausal.DFIV` or :class:`~deepcausal.DFPV`.

    Returned by ``estimator.summary()``. Every table is a pandas object (a copy: changing it does
    not change the summary); ``str(summary)`` renders them as text, and notebooks show them as HTML.

    Attributes
    ----------
    title : str
        Estimator class, mode and number of members.
    model : DataFrame
        One row per role: the columns as given at fit (or the formula's variables), the number of
        columns the networks see after encoding (``encoded``), and the levels of categorical columns.
    data : DataFrame
        Rows per stage half (``"stage 1"``, ``"stage 2"``, ``"total"``): ``rows``, ``held_out``
        (rows kept out of training to compute the held-out losses, the same number in both halves)
        and ``trained_on``. With ``refit_heads`` the held-out rows rejoin the final head estimation.
    members : DataFrame
        One row per ensemble member: its ``seed``, how training ended (``stopped``: "early_stopping",
        "max_steps", "interrupted" or "diverged"), ``epochs`` and ``steps`` trained, ``restarts`` (times a
        divergence sent training back to the kept check at half the learning rate), the step of the check whose
        state was kept (``kept_step``), and at that check the held-out stage losses
        (``val_stage1_loss``, ``val_stage2_loss``, standardized units), the held-out stage-1 R²
        (``val_stage1_r2``) and the held-out stage-2 mean squared error in the outcome's units²
        (``val_stage2_mse``; ``score`` reports the same quantity, negated, on new rows).
    first_stage : DataFrame or None
        DFIV, per treatment column: the classical and heteroskedasticity-robust partial F, the partial
        R² and, with several columns, the conditional (Sanderson-Windmeijer) F.
    strength : Series
        First-stage strength: the linear first-stage F statistic (DFIV: ``first_stage_f_``; below
        10 the fit warned of a weak instrument) and the learned one, the held-out R² of the stage-1 head (the
        share of the stage-1 target features' variance the stage-1 features explain on held-out rows,
        averaged over members).
    settings : DataFrame
        Hyper-parameters: ``given`` (the constructor's value, e.g. ``None`` or ``"auto"``) and
        ``in force`` (the value the fit resolved and used, e.g. λ at the batch size in force).
    warnings : tuple of str
        The warnings raised during fit, as ``"Category: message"``.

    Examples
    --------
    >>> from deepcausal import DFIV
    >>> from deepcausal.datasets import demand
    >>> d = demand(n=1000, seed=0)
    >>> est = DFIV(n_epochs=2, n_bootstrap=0, random_state=0).fit(d.train, **d.fit_kwargs())
    >>> s = est.summary()
    >>> int(s.data.loc["total", "rows"])
    1000
    >>> print(s)  # doctest: +ELLIPSIS
    DFIV summary...
    """

    _frozen = False

    def __init__(self, estimator):
        est = estimator
        members = est._members()
        self._tables: Dict[str, object] = {}
        k = len(members)
        self.title = (f"{type(est).__name__} summary (mode={est.mode!r}, {k} member{'s' if k > 1 else ''})")
        self._tables["model"] = self._model_table(est)
        self._tables["data"] = self._data_table(est)
        self._tables["members"] = self._members_table(est, members)
        self._tables["strength"] = self._strength(est, self._tables["members"])
        table = getattr(est, "first_stage_", None)
        self._tables["first_stage"] = None if table is None else table.copy()
        self._tables["settings"] = self._settings_table(est)
        self._tables["warnings"] = tuple(getattr(est, "fit_warnings_", ()))
        formula = getattr(est, "formula_", None)
        self.formula = None if formula is None else formula.formula
        self._frozen = True

    def __setattr__(self, name, value):
        if self._frozen:
            raise AttributeError("a FitSummary is read-only")
        super().__setattr__(name, value)

    # ---- tables ------------------------------------------------------------------------------
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
    def _strength(est, members: pd.DataFrame) -> pd.Series:
        out = {}
        if hasattr(est, "first_stage_f_"):
            out["linear first-stage F"] = float(est.first_stage_f_)
        out["held-out stage-1 R² (learned)"] = float(members["val_stage1_r2"].mean())
        return pd.Series(out, name="value", dtype=float)

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
            ("max_steps", "—", steps),
            ("stage1_iter", est.stage1_iter, s.get("stage1_iter")),
            ("covariate_iter", est.covariate_iter, s.get("covariate_iter")),
            ("stage2_iter", est.stage2_iter, s.get("stage2_iter")),
            ("split_ratio", est.split_ratio, est.split_ratio),
            ("validation_fraction", est.validation_fraction, est.validation_fraction),
            ("early_stopping", est.early_stopping, s.get("early_stopping", est.early_stopping)),
            ("n_iter_no_change", est.n_iter_no_change, s.get("patience", est.n_iter_no_change)),
            ("refit_heads", est.refit_heads, est.refit_heads),
            ("n_estimators", est.n_estimators, len(est._members())),
            ("n_bootstrap", est.n_bootstrap, est.n_bootstrap),
            ("random_state", est.random_state, est.random_state),
        ]
        return pd.DataFrame([(g, f) for _, g, f in rows], index=[r[0] for r in rows], columns=["given", "in force"],
                            dtype=object)

    # ---- read-only access -----------------------------------------------------------------------
    @property
    def model(self) -> pd.DataFrame:
        return self._tables["model"].copy()

    @property
    def data(self) -> pd.DataFrame:
        return self._tables["data"].copy()

    @property
    def members(self) -> pd.DataFrame:
        return self._tables["members"].copy()

    @property
    def strength(self) -> pd.Series:
        return self._tables["strength"].copy()

    @property
    def first_stage(self):
        """Per treatment column (DFIV): classical and robust partial F, partial R² and, with several
        columns, the conditional F (``first_stage_``); None when not computed."""
        table = self._tables["first_stage"]
        return None if table is None else table.copy()

    @property
    def settings(self) -> pd.DataFrame:
        return self._tables["settings"].copy()

    @property
    def warnings(self) -> tuple:
        return self._tables["warnings"]

    # ---- rendering ------------------------------------------------------------------------------
    def _sections(self):
        """(heading, table or None, note) in display order."""
        members = self._tables["members"]
        note = ("held-out losses at the kept check (heads as trained); stage losses in standardized units, "
                "val_stage2_mse in outcome units²")
        if members["val_stage2_loss"].isna().all():
            note = "no held-out rows (validation_fraction=0): no held-out losses"
        yield "Model", self._tables["model"], (f"formula: {self.formula}" if self.formula else "")
        yield "Data (rows)", self._tables["data"], ""
        yield "First-stage strength", self._tables["strength"].to_frame(), ""
        if self._tables["first_stage"] is not None:
            yield "Linear first stage per treatment column", self._tables["first_stage"], (
                "F: classical partial F; F (robust): heteroskedasticity-robust Wald / number of instruments"
                + ("; F (conditional): Sanderson-Windmeijer, given the other treatment columns"
                   if "F (conditional)" in self._tables["first_stage"] else ""))
        yield "Training and held-out losses per member", members, note
        yield "Hyper-parameters", self._tables["settings"], ""
        ws = self._tables["warnings"]
        yield f"Warnings during fit ({len(ws)})", None, "\n".join(f"- {w}" for w in ws) if ws else "none"

    @staticmethod
    def _as_text(table) -> str:
        return table.map(_fmt).to_string() if isinstance(table, pd.DataFrame) else str(table)

    def __str__(self) -> str:
        out = [self.title, "=" * len(self.title)]
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
        parts = [f"<h3>{html.escape(self.title)}</h3>"]
        for heading, table, note in self._sections():
            parts.append(f"<h4>{html.escape(heading)}</h4>")
            if table is not None:
                parts.append(table.map(_fmt).to_html())
            if note:
                parts.append("<p>" + html.escape(note).replace("\n", "<br>") + "</p>")
        return "\n".join(parts)
