"""Selection of hyper-parameters by the held-out stage-2 loss, shared by DFIV and DFPV (DESIGN §7).

A fit of :class:`~deepcausal.DFIV` or :class:`~deepcausal.DFPV` holds out ``validation_fraction`` of
each stage half and records the held-out stage losses in ``history_``. The held-out stage-2 loss

    (1/#H₂) Σ_{i ∈ H₂} (Yᵢ − G(ψ̂(Zᵢ, Xᵢ), Xᵢ) u)²,   ψ̂ = [φ(Z, X), 1] V

(DFPV: its analogue with the stage-1 prediction of the outcome-proxy features) is the projected risk
of the fitted structural function plus the noise variance. It needs no truth, so it can compare
settings on any data set. :class:`StageLossSearch` fits one estimator per grid point, in parallel,
and keeps the one whose held-out stage-2 loss, at the check whose state the fit kept, is lowest.

Why no cross-validation and no refit: every candidate is fitted with the same ``random_state``. The
first thing a fit draws from its seed is the permutation that makes the S1/S2 split and the held-out
rows (``validation_fraction`` of each half), before anything that depends on the hyper-parameters;
``split_ratio`` and ``validation_fraction`` may therefore not vary in the grid, and then every
candidate is scored on exactly the same held-out rows, which none of them trained on. The winner as
fitted is already the selected model: refitting it would reproduce it bit for bit. (For an
ensemble candidate the score is the mean over its members; all candidates share the members'
seeds, hence their splits.)

What the criterion cannot see: a low projected risk does not imply a low structural error when
the problem is ill-posed (a weak instrument, a flat treatment-instrument relation), so bias must
still be checked on designs with a known structural function (``benchmarks/diagnostics/bench_selection.py``).
"""

from __future__ import annotations

import inspect
import numbers
import time
import warnings
from typing import List

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import ParameterGrid
from sklearn.exceptions import NotFittedError
from sklearn.utils.metaestimators import available_if

from ._estimator import TwoStageEstimator
from ._training import build_nets
from .ensemble import check_n_jobs, one_torch_thread
from .nets import SkipMLP, image_mlp, mlp

__all__ = ["StageLossSearch", "default_grid", "ScaledWidth"]

# Parameters that decide which rows are held out: varying them would score candidates on different rows.
_FIXED_ROWS = ("random_state", "split_ratio", "validation_fraction", "n_estimators")

# Methods of the fitted estimator that the search answers with its best estimator.
_DELEGATED = ("predict", "predict_interval", "predict_bridge", "dose_response", "effect", "effect_interval",
              "ate", "ate_interval", "marginal_effect", "marginal_effect_interval", "marginal_ate",
              "marginal_ate_interval", "score", "summary", "save")


class ScaledWidth:
    """Network factory: the estimator's default network with ``factor`` × its output width.

    Vectors get :class:`~deepcausal.nets.SkipMLP` (``skip=True``, DFIV's default) or
    :func:`~deepcausal.nets.mlp` (``skip=False``, DFPV's) with ``d_out = round(16 · factor)``; images
    (≥ 1024 columns) the spectral-normalised :func:`~deepcausal.nets.image_mlp` with
    ``d_out = round(32 · factor)``. Picklable, so it travels to joblib workers, and printed as
    ``ScaledWidth(2)`` in ``cv_results_``.

    Parameters
    ----------
    factor : float
        Multiplier of the default output width (``base`` for vectors, 32 for images).
    skip : bool, default=True
        Keep the raw input beside the learned features (vectors only).
    base : int, default=16
        The default output width being scaled (DFIV's treatment network: 4; see ``_default_widths``).

    Examples
    --------
    >>> from deepcausal.selection import ScaledWidth
    >>> ScaledWidth(2)(3)(__import__("torch").zeros(5, 3)).shape  # [x, MLP(x) with 32 outputs]
    torch.Size([5, 35])
    """

    def __init__(self, factor: float, skip: bool = True, base: int = 16):
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not factor > 0:
            raise ValueError(f"factor must be a positive number, got {factor!r}")
        self.factor, self.skip, self.base = factor, bool(skip), int(base)

    def __call__(self, d_in: int) -> torch.nn.Module:
        from .nets import IMAGE_MIN_DIM

        if d_in >= IMAGE_MIN_DIM:
            return image_mlp(d_in, d_out=max(1, round(_default_width(image_mlp) * self.factor)))
        d_out = max(1, round(self.base * self.factor))
        return SkipMLP(d_in, d_out=d_out) if self.skip else mlp(d_in, d_out=d_out)

    def __repr__(self) -> str:
        return (f"ScaledWidth({self.factor:g}{'' if self.skip else ', skip=False'}"
                f"{'' if self.base == 16 else f', base={self.base}'})")

    def __eq__(self, other) -> bool:
        return isinstance(other, ScaledWidth) and (self.factor, self.skip, self.base) == (
            other.factor, other.skip, other.base)

    def __hash__(self) -> int:
        return hash((self.factor, self.skip, self.base))


def _default_width(fn) -> int:
    return int(inspect.signature(fn).parameters["d_out"].default)


def _default_lams(estimator) -> tuple:
    """λ₁, λ₂ as the estimator resolves them (None → its batch-size rule), without data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = clone(estimator)._settings(10**6)
    return s["lam1"], s["lam2"]


def _skips_input(estimator) -> bool:
    """Whether the estimator's default vector network keeps its input beside the features."""
    return isinstance(type(estimator)._default_net(3), SkipMLP)


def default_grid(estimator, *, lam_scales=(0.3, 3.0), betas=(1e-3, 1e-2, 1e-1), lrs=(3e-4, 3e-3),
                 widths=(2.0,)) -> List[dict]:
    """A small grid around ``estimator``'s own settings: one setting changed at a time.

    The first point is the estimator as given (an empty dict); then one point per value that differs
    from it: λ₁ and λ₂ both multiplied by each of ``lam_scales`` (proximal mode only), β₁ = β₂ = each
    of ``betas``, each learning rate in ``lrs``, and the treatment network's output width multiplied
    by each of ``widths`` (:class:`ScaledWidth`; only when ``treatment_net`` is left to the default).
    With the defaults this is 8 points for DFIV (β 1e-3 is its default) and for DFPV (β 1e-2).

    Changing one setting at a time keeps the grid small enough to fit in the time of a few fits
    while covering the settings the issue names (λ scale, β, learning rate, width); a full product
    of 3 × 3 × 3 × 2 values would take 54 fits.

    Parameters
    ----------
    estimator : DFIV or DFPV
        The estimator whose settings are the centre of the grid.
    lam_scales, betas, lrs, widths : sequences of float
        The alternative values (see above); pass ``()`` to leave a setting alone.

    Returns
    -------
    list of dict
        A ``param_grid`` for :class:`StageLossSearch` (a list of one-point grids).

    Examples
    --------
    >>> from deepcausal import DFIV
    >>> from deepcausal.selection import default_grid
    >>> [sorted(p) for p in default_grid(DFIV())][:4]
    [[], ['lam1', 'lam2'], ['lam1', 'lam2'], ['beta1', 'beta2']]
    >>> len(default_grid(DFIV()))
    8
    """
    params = estimator.get_params(deep=False)
    grid: List[dict] = [{}]
    if params.get("mode", "proximal") == "proximal":
        lam1, lam2 = _default_lams(estimator)
        grid += [{"lam1": _tidy(lam1 * s), "lam2": _tidy(lam2 * s)} for s in lam_scales if s != 1]
    grid += [{"beta1": b, "beta2": b} for b in betas if (b, b) != (params["beta1"], params["beta2"])]
    grid += [{"lr": lr} for lr in lrs if lr != params["lr"]]
    if params.get("treatment_net") is None:
        skip = _skips_input(estimator)
        base = type(estimator)._default_widths.get("treatment_net", 16)
        grid += [{"treatment_net": ScaledWidth(w, skip, base)} for w in widths if w != 1]
    return grid


def _tidy(x: float) -> float:
    """``x`` to 6 significant digits (0.1 × 3 prints as 0.3, not 0.30000000000000004)."""
    return float(f"{x:.6g}")


def _as_list_grid(param_grid) -> List[dict]:
    """Validate the grid's shape and expand it into a list of parameter dicts (grid order)."""
    if isinstance(param_grid, dict):
        param_grid = [param_grid]
    if not isinstance(param_grid, (list, tuple)) or not param_grid:
        raise ValueError(f"param_grid must be a dict or a non-empty list of dicts, got {param_grid!r}")
    for g in param_grid:
        if not isinstance(g, dict):
            raise ValueError(f"param_grid entries must be dicts, got {g!r}")
        for k, v in g.items():
            if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") or len(list(v)) == 0:
                raise ValueError(f"param_grid: the values of {k!r} must be a non-empty list, got {v!r}")
    return list(ParameterGrid(param_grid))


def _kept_check_losses(est) -> dict:
    """Held-out losses at the kept check (the last check without early stopping), mean over members."""
    rows = []
    for m in getattr(est, "estimators_", None) or [est]:
        h = m.history_
        if "val_stage2_loss" not in h:
            raise ValueError("the fit recorded no held-out loss (validation_fraction=0?)")
        kept = h[h["kept"]] if "kept" in h and h["kept"].any() else h.iloc[[-1]]
        median = kept["val_stage2_median"].iloc[0] if "val_stage2_median" in kept else np.nan
        rows.append((float(kept["val_stage2_loss"].iloc[0]), float(kept["val_stage1_loss"].iloc[0]), float(median),
                     int(m.stopping_["steps"]), m.stopping_["reason"]))
    s2, s1, med, steps, reasons = zip(*rows)
    return {"val_stage2_loss": float(np.mean(s2)), "val_stage1_loss": float(np.mean(s1)),
            "val_stage2_median": float(np.mean(med)),
            "steps": float(np.mean(steps)), "stopped": ",".join(sorted(set(reasons)))}


def _fit_candidate(candidate, index: int, args, kwargs):
    """Fit one candidate on one torch thread (results do not depend on n_jobs); a diverging
    candidate is reported, not raised."""
    start = time.perf_counter()
    with one_torch_thread():
        try:
            candidate.fit(*args, **kwargs)
        except FloatingPointError as exc:
            return None, {"fit_seconds": time.perf_counter() - start, "error": f"candidate {index}: {exc}"}
    return candidate, {"fit_seconds": time.perf_counter() - start, "error": "", **_kept_check_losses(candidate)}


def _delegated(name):
    def check(self):
        return hasattr(self.estimator, name)

    def method(self, *args, **kwargs):
        if not hasattr(self, "best_estimator_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")
        return getattr(self.best_estimator_, name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"``best_estimator_.{name}(...)``: see the estimator's ``{name}``."
    return available_if(check)(method)


class StageLossSearch(BaseEstimator):
    """Choose an estimator's hyper-parameters by the held-out stage-2 loss, over a grid, in parallel.

    .. deprecated:: 0.1.0
        The criterion does not rank settings by their structural error: over the default grid it moved by
        3.6% while the structural MSE moved 3.3-fold, with a rank correlation of −0.02
        (``benchmarks/RESULTS.md``, "Selection"). ``fit`` warns (``FutureWarning``), and the class will be
        removed. How complex a curve to report is chosen by the estimators' ``complexity`` instead.

    Every point of ``param_grid`` is a clone of ``estimator`` with those parameters set; each is
    fitted (joblib, one torch thread per fit) on the same data with the same ``random_state``, hence
    the same split and the same held-out rows, and scored by its held-out stage-2 loss at the check
    whose state it kept (:mod:`deepcausal.selection`). The lowest loss wins; ties go to the earlier
    grid point. Works for :class:`~deepcausal.DFIV` and :class:`~deepcausal.DFPV` alike.

    Parameters
    ----------
    estimator : DFIV or DFPV
        The estimator to tune. Its ``random_state`` fixes the split shared by all candidates; when
        it is None, one seed is drawn at ``fit`` and recorded in ``random_state_``.
    param_grid : dict, list of dicts or None, default=None
        Parameter name → list of values (all combinations), or a list of such dicts (their union),
        as in scikit-learn's ``GridSearchCV``. None: :func:`default_grid` of ``estimator`` (8 points).
        ``random_state``, ``split_ratio``, ``validation_fraction`` and ``n_estimators`` may not vary:
        they decide which rows are held out. Every value is checked before any training: an invalid
        one raises a ``ValueError`` naming the parameter, the value and the grid point.
    n_jobs : int or None, default=None
        Candidates fitted in parallel (joblib: None means 1 unless inside a
        ``joblib.parallel_config`` context, −1 all cores). The result does not depend on it. With
        more than one job, an ensemble candidate fits its members one after another.
    keep_candidates : bool, default=False
        Keep every fitted candidate in ``candidates_`` (memory: one fitted estimator per grid point).

    Attributes
    ----------
    best_estimator_ : DFIV or DFPV
        The winning candidate as fitted (no refit: it already is the selected model).
    best_params_ : dict
        The winner's grid point (an empty dict: the estimator's own settings).
    best_score_ : float
        Minus the winner's held-out stage-2 loss (standardized outcome units; higher is better).
    best_index_ : int
        The winner's row in ``cv_results_``.
    cv_results_ : pandas.DataFrame
        One row per grid point: ``params``, one ``param_<name>`` column per grid parameter,
        ``val_stage2_loss``, ``val_stage1_loss`` (mean over members for an ensemble),
        ``val_stage2_median`` (the running median of the held-out stage-2 loss that early stopping
        compares, at the kept check; NaN without early stopping; recorded, not used), ``score``
        (= −val_stage2_loss), ``rank`` (1 = best), ``fit_seconds``, ``steps`` (training steps, mean
        over members), ``stopped`` (how training ended) and ``error`` (a diverged fit: its message;
        its loss is NaN and it ranks last).
    random_state_ : int
        The seed every candidate was fitted with.
    candidates_ : list
        With ``keep_candidates``: every fitted candidate in grid order (None where it diverged).

    Notes
    -----
    The score of candidate k is the held-out stage-2 loss of DESIGN §7,

        L₂(k) = (1/#H₂) Σ_{i ∈ H₂} (Yᵢ − G_k(ψ̂_k(Zᵢ, Xᵢ), Xᵢ) u_k)²,

    computed with the networks and proximal heads of the kept check, over the held-out rows H₂ of
    the stage-2 half, which all candidates share. With ``refit_heads`` the heads that ``predict``
    uses are re-estimated afterwards on the whole halves (held-out rows included); the score is of
    the trained model, before that refit.

    The fitted search answers ``predict``, ``dose_response``, ``predict_interval``, ``effect``,
    ``ate``, ``marginal_effect`` and the other queries of the estimator (and their intervals) by
    delegating explicitly to ``best_estimator_`` (no ``__getattr__`` forwarding, so the search
    pickles and clones like any scikit-learn estimator and its methods are listed by ``dir``).

    Examples
    --------
    >>> from deepcausal import DFIV
    >>> from deepcausal.datasets import lowdim
    >>> from deepcausal.selection import StageLossSearch
    >>> d = lowdim(n=600, g="abs", seed=0)
    >>> search = StageLossSearch(DFIV(n_epochs=5, n_bootstrap=0, random_state=0),
    ...                          {"lr": [1e-6, 1e-3]}).fit(d.train, **d.fit_kwargs())
    >>> sorted(search.best_params_)
    ['lr']
    >>> search.predict(d.test_X).shape
    (1000,)
    """

    def __init__(self, estimator, param_grid=None, *, n_jobs=None, keep_candidates=False):
        self.estimator = estimator
        self.param_grid = param_grid
        self.n_jobs = n_jobs
        self.keep_candidates = keep_candidates

    # ---- checks before any training -----------------------------------------------------------
    def _candidates(self, args, kwargs, seed: int) -> List[tuple]:
        """Each grid point as (params, unfitted clone), every value checked against the data."""
        est = self.estimator
        check_n_jobs(self.n_jobs)
        grid = default_grid(est) if self.param_grid is None else _as_list_grid(self.param_grid)
        valid = est.get_params(deep=False)
        for params in grid:
            for name in params:
                if name not in valid:
                    raise ValueError(f"param_grid: {name!r} is not a parameter of {type(est).__name__}; "
                                     f"valid parameters: {sorted(valid)}")
                if name in _FIXED_ROWS:
                    raise ValueError(f"param_grid may not vary {name!r}: it decides which rows are held out, and "
                                     "candidates must be scored on the same held-out rows; set it on the estimator")
        try:
            bound = inspect.signature(est.fit).bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"fit takes what {type(est).__name__}.fit takes: {exc}") from None
        data, dims = self._data_shapes(bound)
        n = data["Y"].shape[0]
        out = []
        for params in grid:
            candidate = clone(est).set_params(**params, random_state=seed)
            try:
                self._check_candidate(candidate, n, dims)
            except ValueError as exc:
                raise ValueError(f"param_grid point {_show(params)}: {exc}") from None
            out.append((params, candidate))
        return out

    def _data_shapes(self, bound):
        """The roles' arrays and column counts, parsed as the estimator's ``fit`` will parse them."""
        est = self.estimator
        a = bound.arguments
        first = a[next(iter(inspect.signature(est.fit).parameters))]
        arrays = {key: a.get(key) for _, key, _ in est._roles if key != "Y"}
        role_columns = {role: a.get(role) for role, _, _ in est._roles}
        data = est._collect(first, arrays, role_columns)[0]
        return data, {k: (v.shape[1] if v is not None else None) for k, v in data.items()}

    @staticmethod
    def _check_candidate(candidate, n: int, dims: dict) -> None:
        """The estimator's own parameter checks and network construction, without training."""
        if not float(candidate.validation_fraction) > 0:
            raise ValueError("validation_fraction must be > 0: selection scores the held-out stage-2 loss")
        n1 = int(round(float(candidate.split_ratio) * n)) if 0 < float(candidate.split_ratio) < 1 else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            candidate._settings(max(min(n1, n - n1), 1))
        with torch.random.fork_rng(devices=[]):  # building nets draws weights; leave the caller's RNG alone
            build_nets(candidate, dims, torch.device("cpu"))

    # ---- fit ------------------------------------------------------------------------------------
    def fit(self, *args, **kwargs):
        """Fit every grid point on the data and keep the one with the lowest held-out stage-2 loss.

        Parameters
        ----------
        *args, **kwargs
            Exactly what the estimator's ``fit`` takes (arrays, or a DataFrame and role names).

        Returns
        -------
        self
        """
        warnings.warn("StageLossSearch is deprecated and will be removed: the held-out stage-2 loss it ranks "
                      "settings by did not track the structural error (rank correlation -0.02 over the default grid, "
                      "benchmarks/RESULTS.md 'Selection'); the estimators' complexity= chooses how complex a curve "
                      "to report instead", FutureWarning, stacklevel=2)
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)
        if not isinstance(self.estimator, TwoStageEstimator):
            raise ValueError(f"estimator must be a DFIV or DFPV estimator, got {type(self.estimator).__name__}")
        seed = self.estimator.random_state
        if seed is None:
            seed = int(np.random.default_rng().integers(2**62))
        candidates = self._candidates(args, kwargs, seed)
        parallel = self.n_jobs not in (None, 1)
        if parallel:
            candidates = [(p, c.set_params(n_jobs=1)) for p, c in candidates]
        results = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_candidate)(c, i, args, kwargs) for i, (_, c) in enumerate(candidates))

        rows = []
        for (params, _), (_, info) in zip(candidates, results):
            rows.append({"params": params, **{f"param_{k}": v for k, v in params.items()}, **info})
        table = pd.DataFrame(rows)
        for col, empty in (("val_stage2_loss", np.nan), ("val_stage1_loss", np.nan), ("val_stage2_median", np.nan),
                           ("steps", np.nan),
                           ("stopped", "")):
            table[col] = table[col].fillna(empty) if col in table else empty
        failed = table["error"] != ""
        for msg in table.loc[failed, "error"]:
            warnings.warn(f"StageLossSearch: {msg}", UserWarning, stacklevel=2)
        if failed.all():
            raise FloatingPointError("every grid point diverged: " + "; ".join(table["error"]))
        table["score"] = -table["val_stage2_loss"]
        table["rank"] = table["val_stage2_loss"].rank(method="min", na_option="bottom").astype(int)
        param_cols = [c for c in table.columns if c.startswith("param_")]
        self.cv_results_ = table[["params", *param_cols, "val_stage2_loss", "val_stage1_loss", "val_stage2_median",
                                  "score", "rank", "fit_seconds", "steps", "stopped", "error"]]
        best = int(np.nanargmin(table["val_stage2_loss"].to_numpy()))
        self.best_index_ = best
        self.best_params_ = dict(candidates[best][0])
        self.best_score_ = float(table["score"].iloc[best])
        self.best_estimator_ = results[best][0]
        self.random_state_ = int(seed)
        if self.keep_candidates:
            self.candidates_ = [est for est, _ in results]
        return self


def _show(params: dict) -> str:
    return "{" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + "}"


for _name in _DELEGATED:
    setattr(StageLossSearch, _name, _delegated(_name))
del _name
