"""What DFIV and DFPV share: their parameters, the parameters' validation, and the orchestration of ``fit``.

:class:`TwoStageEstimator` is the base of both estimators. A fit validates the parameters
(:meth:`TwoStageEstimator._settings`), prepares what every ensemble member shares (standardisation,
diagnostics, data tensors: :meth:`TwoStageEstimator._prepare`) and trains the members, in parallel
when there are several (:mod:`deepcausal.ensemble`). The rest lives in rooms of its own:

* :mod:`deepcausal._inputs` — roles, column names, encoders, the inputs of a prediction;
* :mod:`deepcausal._training` — one member's training loop, refit and bootstrap draws;
* :mod:`deepcausal._reporting` — predictions, effects, dose-response and their intervals;
* :mod:`deepcausal.results` and :mod:`deepcausal._persist` — the summary and the model files.

A subclass declares its roles and networks and implements the feature hooks (F₁, the stage-1 target,
G, the prediction features).
"""

from __future__ import annotations

import inspect
import math
import os
import time
from typing import Dict, Tuple

import numpy as np
import pandas as pd
import torch
from torch import nn
from sklearn.base import BaseEstimator
from sklearn.utils import metadata_routing
from sklearn.exceptions import NotFittedError

from ._complexity import EVAL_ROWS, RULES, TSLS_LABELS, choose, install_choice, keeps_raw_treatment, resolve_rule
from ._data import Standardizer
from ._inputs import RoleInputs
from ._modes import resolve_device
from ._persist import load_estimator, load_weights, register_estimator, save_estimator
from ._progress import logger, progress_bar, show_progress
from ._screen import net_dims, screen_record
from ._reporting import QueryReports
from ._stacked import fit_members_stacked
from ._training import build_nets, fit_member
from ._warnings import record, warn
from .distributed import Communicator
from .ensemble import check_n_jobs, fit_members, member_seeds
from .formula import formula_inputs
from .heads import check_coefficients
from .nets import default_net
from .results import FitResults, record_fit_warnings

__all__ = ["TwoStageEstimator", "NotFittedError"]

_LAM_AT_DEFAULT_BATCH = 0.1  # proximal λ₁, λ₂ at an estimator's default batch size
_REFERENCE_HALF = 2500  # rows of a stage half of the 5,000-row designs the defaults were set on
_REFERENCE_STEPS = 1000  # default step cap at that size; the cap grows as √n beyond it
_MAX_EPOCHS = 200  # default epoch cap (small data)
_CHECK_EVERY_STEPS = 200  # held-out losses at each epoch end, or this often within long epochs
_MIN_STAGE_ROWS = 20  # fewer training rows per stage half is an error
_MIN_VAL_ROWS = 10  # held-out rows per stage half are at least this many
_FEW_STAGE_ROWS = 250  # fewer rows per stage half warns
_MIN_R2_ROWS = 100  # held-out rows per stage half below which the learned stage 1's R² judges nothing


class TwoStageEstimator(RoleInputs, QueryReports, BaseEstimator):
    """Base class; see :class:`deepcausal.DFIV` and :class:`deepcausal.DFPV`.

    Subclasses declare ``_roles`` — (role name, key, required) with the key used in batches — the
    network parameters in ``_nets`` (key → (parameter name, input keys, optimiser group)), and
    implement the feature hooks below.
    """

    _nets: Dict[str, Tuple[str, Tuple[str, ...], str]] = {}
    _default_batch = 512  # minibatch rows per stage half for batch_size="auto"; λ defaults are 0.1 here
    # Network built for a role left as None: callable(d_in, d_out=...) -> Module, with the learned
    # output width per network parameter (16 where not listed; images always get the image MLP).
    _default_net = staticmethod(default_net)
    _default_widths: Dict[str, int] = {}
    # Members train as one stacked computation where their networks allow it (deepcausal._stacked).
    _stack_members = False
    # Whether a model fitted with covariates may predict without them (averaging over the stage-2 rows).
    _covariates_optional_in_predict = False
    # lr_schedule="auto" anneals the default proximal budget (benchmarks/RESULTS.md, "Learning-rate schedule")
    _anneal_by_default = True
    # mode → settings used where the corresponding parameter is None
    _mode_defaults = {
        # DFIV's. 2 + 2 + 1 steps per minibatch pair had the same held-out losses at 0.65x the time, but the
        # default ensemble's error on demand doubled (benchmarks/RESULTS.md, "Gradient steps per minibatch")
        "proximal": dict(n_epochs=100, stage1_iter=4, covariate_iter=4, stage2_iter=1),
        "ridge": dict(n_epochs=100, stage1_iter=20, covariate_iter=20, stage2_iter=1),
    }

    def __init_subclass__(cls, **kwargs):
        # The roles fit, predict and score take are data, not metadata for scikit-learn's routing: marking
        # them unused spares the estimators the generated set_fit_request & co (and help() their docs).
        for method in ("fit", "predict", "score"):
            params = [p for p in inspect.signature(getattr(cls, method)).parameters.values()
                      if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                      and p.name not in ("self", "X", "y", "Y", "Xt", "yt")]  # names scikit-learn never routes
            setattr(cls, f"__metadata_request__{method}", {p.name: metadata_routing.UNUSED for p in params})
        super().__init_subclass__(**kwargs)
        # Every estimator class can be read back from a model file (deepcausal._persist's registry).
        register_estimator(cls, _rebuild_nets)

    # ---- pickling ------------------------------------------------------------------------------
    def __getstate__(self):
        # Spectral-normalised networks (the default for images) are parametrized modules, which torch
        # pickles only through their state_dict: a fitted member coming back from a worker process would
        # fail. Their weights travel as a state_dict and the networks are rebuilt on the other side.
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns the instance's own __dict__
        nets = state.get("nets_")
        if isinstance(nets, nn.Module) and any(nn.utils.parametrize.is_parametrized(m) for m in nets.modules()):
            state["nets_"] = {"_deepcausal_state_dict": nets.state_dict(), "training": nets.training}
        return state

    def __setstate__(self, state):
        nets = state.get("nets_")
        if isinstance(nets, dict) and "_deepcausal_state_dict" in nets:
            self.__dict__.update(state)
            with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the caller's RNG alone
                rebuilt = build_nets(self, net_dims(self), state["device_"])
            load_weights(rebuilt, nets["_deepcausal_state_dict"], "nets_")
            state = {**state, "nets_": rebuilt.train(nets["training"])}
        super().__setstate__(state)

    # ---- hooks -----------------------------------------------------------------------------
    def _stage1_features(self, nets, b) -> torch.Tensor:  # F₁ with intercept
        raise NotImplementedError

    def _stage1_target(self, nets, b) -> torch.Tensor:
        raise NotImplementedError

    def _stage2_parts(self, nets, b, covariate_grad: bool) -> dict:
        """The per-row pieces of the stage-2 features that do not depend on the stage-1 prediction."""
        raise NotImplementedError

    def _stage2_combine(self, parts: dict, target_hat: torch.Tensor) -> torch.Tensor:
        """G from the parts and the stage-1 prediction; ``target_hat`` may carry leading draw dims."""
        raise NotImplementedError

    def _stage2_features(self, nets, b, target_hat, covariate_grad: bool) -> torch.Tensor:
        """G(b) with the stage-1 prediction ``target_hat`` (covariate graph kept when ``covariate_grad``)."""
        return self._stage2_combine(self._stage2_parts(nets, b, covariate_grad), target_hat)

    def _projected_features(self, nets, V: torch.Tensor, b) -> torch.Tensor:
        """G(b) at the stage-1 head's own prediction F₁(b) V: the features of the stage-2 loss on rows
        not used in a gradient step (refit, held-out losses, ``score``)."""
        F1 = self._stage1_features(nets, b)
        return self._stage2_features(nets, b, F1 @ V.to(F1.dtype), False)

    def _predict_features(self, nets, b, summaries) -> torch.Tensor:  # G at the prediction inputs
        raise NotImplementedError

    def _summary_terms(self, nets, b) -> dict:
        """Per-row terms (name → (n, p) float64) whose stage-2 means are the summaries a prediction
        needs (DFPV: the mean of ψ_W); none by default."""
        return {}

    def _summaries_from_means(self, means: dict) -> dict:
        """The summaries from the means of :meth:`_summary_terms` (which may carry a draw dimension)."""
        return {}


    def _diagnose(self, data: dict, reduce_sum, columns: dict) -> dict:
        """Pre-fit checks on the (centred) training data; returns fitted attributes to set.

        ``columns`` holds each role's column names (empty where none were given).

        ``reduce_sum`` (None in one process) sums an array over the ranks of a distributed fit, so
        that statistics describe the whole data set rather than one shard.
        """
        return {}

    @staticmethod
    def _covariate_features(nets, b, grad: bool):
        """η(X), or None without covariates; ``grad=False`` keeps it out of the autograd graph."""
        if "covariate" not in nets or "X" not in b:
            return None
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            return nets["covariate"](b["X"])

    # ---- settings ---------------------------------------------------------------------------
    def _settings(self, n_half: int) -> dict:
        """Resolved training settings for stage halves of ``n_half`` rows (the smaller half)."""
        if self.mode not in self._mode_defaults:
            raise ValueError(f"mode must be 'proximal' or 'ridge', got {self.mode!r}")
        if self.verbose != "auto" and not isinstance(self.verbose, (bool, np.bool_)):
            raise ValueError(f"verbose must be True, False or 'auto', got {self.verbose!r}")
        if self.refit_heads not in (True, False, "full"):
            raise ValueError(f"refit_heads must be True, False or 'full', got {self.refit_heads!r}")
        if self.complexity not in RULES:
            raise ValueError(f"complexity must be one of {list(RULES)}, got {self.complexity!r}")
        if self.complexity in ("lepski", "discrepancy") and (
                isinstance(self.n_bootstrap, (int, np.integer)) and self.n_bootstrap < 2):
            raise ValueError(f"complexity={self.complexity!r} compares candidates through their bootstrap draws: "
                             "set n_bootstrap >= 2")
        if self.complexity in ("discrepancy", "held_out") and float(self.validation_fraction) == 0.0:
            raise ValueError(f"complexity={self.complexity!r} compares the candidates' losses on held-out rows: set "
                             "validation_fraction > 0")
        s = dict(self._mode_defaults[self.mode])
        for k in s:
            v = getattr(self, k)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (1 if k == "n_epochs" else 0):
                    raise ValueError(f"{k} must be a non-negative integer (n_epochs >= 1), got {v!r}")
                s[k] = int(v)
        check_coefficients(beta1=self.beta1, beta2=self.beta2, lr=self.lr,
                           treatment_weight_decay=self.treatment_weight_decay)
        for name in ("n_estimators", "n_iter_no_change"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.n_bootstrap, bool) or not isinstance(self.n_bootstrap, (int, np.integer)) \
                or self.n_bootstrap < 0 or self.n_bootstrap == 1:
            raise ValueError(f"n_bootstrap must be 0 or an integer >= 2, got {self.n_bootstrap!r}")
        check_n_jobs(self.n_jobs)
        if not 0.0 < float(self.split_ratio) < 1.0:
            raise ValueError(f"split_ratio must be in (0, 1), got {self.split_ratio!r}")
        frac = float(self.validation_fraction)
        if not 0.0 <= frac < 0.5:
            raise ValueError(f"validation_fraction must be in [0, 0.5), got {self.validation_fraction!r}")
        if self.early_stopping and frac == 0.0:
            raise ValueError("early_stopping needs held-out rows: set validation_fraction > 0 or early_stopping=False")
        # at least _MIN_VAL_ROWS held-out rows, so that the held-out losses mean something
        n_val = max(int(round(frac * n_half)), _MIN_VAL_ROWS) if frac > 0 else 0
        n_train = n_half - n_val
        if n_train < _MIN_STAGE_ROWS:
            # Suggest holding out nothing only where that is enough; else say how many rows a fit needs.
            fix = (" or set validation_fraction=0 and early_stopping=False" if n_val and n_half >= _MIN_STAGE_ROWS
                   else f" (a fit needs at least {2 * (_MIN_STAGE_ROWS + _MIN_VAL_ROWS)} rows, or "
                        f"{2 * _MIN_STAGE_ROWS} with validation_fraction=0 and early_stopping=False)")
            raise ValueError(f"a stage half has {n_half} rows; holding out {n_val} (validation_fraction={frac:g}) leaves "
                             f"{n_train} to train on, but at least {_MIN_STAGE_ROWS} are needed per stage: use more data"
                             + fix)
        if self.lr_schedule not in ("auto", "annealed", "constant"):
            raise ValueError(f"lr_schedule must be 'auto', 'annealed' or 'constant', got {self.lr_schedule!r}")
        schedule = self.lr_schedule if self.lr_schedule != "auto" else \
            ("annealed" if self._anneal_by_default and self.mode == "proximal" and self.n_epochs is None
             else "constant")
        s.update(n_val=n_val, n_train=n_train, early_stopping=bool(self.early_stopping),
                 patience=int(self.n_iter_no_change), lr_schedule=schedule)
        if self.mode == "ridge":
            s.update(batch_size=n_train, lam1=0.0, lam2=0.0, lam12=0.0)
        else:
            default_batch = self._default_batch
            if self.batch_size == "auto":
                batch = min(default_batch, n_train)
            else:
                if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) \
                        or self.batch_size < 1:
                    raise ValueError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
                batch = int(self.batch_size)
                if batch > n_train:
                    warn(f"batch_size={batch} exceeds the {n_train} training rows of a stage half: every "
                         "step uses the whole half", UserWarning)
            # λ left as None scales as 1/batch: 0.1 at the class's default batch size (see the docstrings).
            auto = _LAM_AT_DEFAULT_BATCH * default_batch / (default_batch if self.batch_size == "auto" else batch)
            lam1, lam2 = (auto if v is None else v for v in (self.lam1, self.lam2))
            check_coefficients(lam1=lam1, lam2=lam2, lam12=self.lam12)
            s.update(batch_size=batch, lam1=float(lam1), lam2=float(lam2), lam12=float(self.lam12))
        steps_per_epoch = max(1, math.ceil(n_train / s["batch_size"]))
        if self.n_epochs is None and self.mode == "proximal":
            # A cap that grows with the data (early stopping usually ends training first).
            cap = math.ceil(_REFERENCE_STEPS * math.sqrt(n_half / _REFERENCE_HALF))
            s["max_steps"] = min(_MAX_EPOCHS * steps_per_epoch, max(cap, steps_per_epoch))
        else:
            s["max_steps"] = s["n_epochs"] * steps_per_epoch
        s["steps_per_epoch"] = steps_per_epoch
        s["check_every"] = min(steps_per_epoch, _CHECK_EVERY_STEPS)
        if n_half < _FEW_STAGE_ROWS:
            warn(f"a stage half has only {n_half} rows: deep two-stage estimates from so few rows are very "
                 "noisy; consider a linear or sieve IV estimator", UserWarning)
        return s

    @staticmethod
    def _check_full_batch_memory(n_half: int, dims: dict) -> None:
        """Refuse (or warn about) full-batch steps whose activations cannot fit in memory.

        Estimate: n_half rows × (input columns + ~1,024 activations of the default networks) × 16
        bytes (float32 values, their gradients and optimiser buffers).
        """
        need = n_half * (sum(d for d in dims.values() if d) + 1024) * 16
        try:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return
        gib = need / 2**30
        if need > 0.5 * total:
            raise MemoryError(
                f"mode='ridge' takes full-batch steps over {n_half} rows, needing about {gib:.1f} GiB of the "
                f"{total / 2**30:.1f} GiB here; use mode='proximal' (minibatches) instead"
            )
        if need > 0.25 * total:
            warn(f"mode='ridge' on {n_half} rows per half needs about {gib:.1f} GiB; mode='proximal' "
                 "trains on minibatches with memory independent of n", ResourceWarning)

    def _check_fitted(self):
        if not hasattr(self, "settings_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    # ---- fit ----------------------------------------------------------------------------------
    def _clear_fitted(self):
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)

    @record_fit_warnings
    def _fit(self, data: dict, columns: dict, images: dict, validation=None, encoders=None):
        # Fitting twice gives the same model: nothing from an earlier fit is reused; and a fit that
        # fails (bad settings, diverging loss) leaves the estimator unfitted, not half-fitted.
        self._clear_fitted()
        start = time.perf_counter()
        try:
            prepared = self._prepare(data, columns, images, encoders)
            val = self._validation(validation)
            seeds = member_seeds(prepared["seed"], self.n_estimators)
            # Members are separate processes' work unless this is already a distributed fit.
            n_jobs = 1 if prepared["comm"].active else self.n_jobs
            total = self.n_estimators * prepared["settings"]["max_steps"]
            show = show_progress(self.verbose, total, prepared["comm"].rank)
            with progress_bar(total, type(self).__name__, show) as channel:
                if self.n_estimators == 1:
                    self._fit_member(prepared, seeds[0], val, channel(0))
                    return self._finish(data, prepared, start)
                # stacks: minibatch training in one process (a ridge-mode stack would hold K whole halves)
                if self._stack_members and self.mode == "proximal" and not prepared["comm"].active:
                    members = fit_members_stacked(self, prepared, seeds, n_jobs, channel, val)
                else:
                    members = fit_members(self, prepared, seeds, val, n_jobs, channel)
            for i, m in enumerate(members):
                kept = m.history_[m.history_["kept"]] if "kept" in m.history_ and m.history_["kept"].any() \
                    else m.history_.tail(1)
                logger.info("%s member %d (seed %d): %s after %d steps, held-out stage-2 loss %.4g at the kept check",
                            type(self).__name__, i, seeds[i], m.stopping_["reason"], m.stopping_["steps"],
                            float(kept["val_stage2_loss"].iloc[-1]) if "val_stage2_loss" in kept else float("nan"))
                # The member's own warnings join this fit's record; a worker process's are not shown to
                # the user, so the divergences are issued again here, naming the member.
                for w in getattr(m, "fit_warnings_", ()):
                    category, _, message = w.partition(": ")
                    record(f"{category}: ensemble member {i}: {message}")
                if m.stopping_.get("recoveries"):
                    warn(f"ensemble member {i} (seed {seeds[i]}): training diverged at step(s) "
                         f"{', '.join(map(str, m.stopping_['recoveries']))} and went on from its kept "
                         "check at a lower learning rate", RuntimeWarning)
                if m.stopping_["reason"] == "diverged":
                    warn(f"ensemble member {i} (seed {seeds[i]}): training diverged after step "
                         f"{m.stopping_['steps']}; the model of its check at step {m.stopping_['kept_step']}"
                         " is kept", RuntimeWarning)
            self._set_shared(prepared)
            self.estimators_ = members
            self.history_ = pd.concat([m.history_.assign(member=i) for i, m in enumerate(members)], ignore_index=True)
            return self._finish(data, prepared, start)
        except BaseException:
            self._clear_fitted()
            raise

    def _finish(self, data: dict, prepared: dict, start: float) -> "TwoStageEstimator":
        """The fit's report: how well the data identify the curve, the estimates of ``summary`` on the
        training rows (not in a distributed fit, whose ranks hold different rows) and the wall time."""
        self.identification_ = self._identification()
        self.complexity_ = self._choose_complexity(data, prepared["comm"])
        self._identified()  # its warning, if any, joins the fit's warnings (summary), not only later reports
        self.summary_estimates_ = None if prepared["comm"].active else self._summary_estimates(data)
        self.linear_check_ = None if prepared["comm"].active else self._linear_check(data)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _prepare(self, data: dict, columns: dict, images: dict, encoders=None) -> dict:
        """What every member shares: settings, seed, standardisation, diagnostics, data tensors."""
        device = resolve_device(self.device)
        comm = Communicator(device)
        # With torch.distributed, each rank holds a shard; rows are numbered globally in rank order.
        sizes = comm.sizes(data["Y"].shape[0])
        n, offset, n_local = sum(sizes), sum(sizes[: comm.rank]), sizes[comm.rank]
        n1 = int(round(float(self.split_ratio) * n)) if 0.0 < float(self.split_ratio) < 1.0 else 0
        if n1 < 2 or n - n1 < 2:
            raise ValueError(f"{n} rows are too few to split into two stages (split_ratio={self.split_ratio})")
        settings = self._settings(min(n1, n - n1))
        if self.mode == "ridge":
            self._check_full_batch_memory(max(n1, n - n1), {k: (v.shape[1] if v is not None else 0) for k, v in data.items()})
        # Every rank must draw the same split, batch order and initial weights: rank 0's seed wins.
        seed = self.random_state if self.random_state is not None else int(np.random.default_rng().integers(2**62))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"random_state must be an integer or None, got {self.random_state!r}")
        seed = comm.broadcast_int(seed)

        reduce_sum = None if not comm.active else (
            lambda a: comm.sum(torch.as_tensor(a, dtype=torch.float64, device=device)).cpu().numpy())
        scalers = {k: Standardizer(v, reduce_sum, pooled=images[k]) for k, v in data.items() if v is not None}
        # Diagnostics of the whole data set, not of this rank's shard (centred data, global moments).
        diagnostics = self._diagnose({k: (v - scalers[k].mean if v is not None else None) for k, v in data.items()},
                                     reduce_sum, columns)
        if diagnostics.get("identification_", {}).get("status") == "not identified" and self.complexity == "auto":
            settings["complexity"], settings["complexity_reason"] = "trained", None  # no line to report either
        else:
            settings["complexity"], settings["complexity_reason"] = resolve_rule(
                self.complexity, data, (lambda k: comm.max(np.array([k]))[0]) if comm.active else None,
                raw_treatment=keeps_raw_treatment(self, data.get("T").shape[1] if data.get("T") is not None else None),
                draws=isinstance(self.n_bootstrap, (int, np.integer)) and self.n_bootstrap >= 2,
                held_out_rows=settings.get("n_val", 0) > 0)
        screen = screen_record(self, data, scalers, images, columns.get("X"), (encoders or {}).get("X"), reduce_sum)
        tensors = {
            k: torch.as_tensor(scalers[k].transform(v), dtype=torch.float32, device=device)
            for k, v in data.items()
            if v is not None
        }
        t = data[self._predict_keys[0]]
        shared = dict(
            device_=device, dims_={k: (v.shape[1] if v is not None else None) for k, v in data.items()},
            scalers_=scalers, columns_=columns, n_train_=n, n_stage1_=n1, settings_=settings,
            treatment_range_=(comm.min(t.min(0)), comm.max(t.max(0))), **diagnostics,
            encoders_=dict(encoders or {}), seeds_=member_seeds(seed, self.n_estimators),
            covariate_selection_=screen or None,
            **self._input_names(data, columns),
        )
        return dict(comm=comm, n=n, n1=n1, offset=offset, n_local=n_local, settings=settings, seed=seed,
                    tensors=tensors, shared=shared)

    def _set_shared(self, prepared: dict) -> None:
        for name, value in prepared["shared"].items():
            setattr(self, name, value)

    def _choose_complexity(self, data: dict, comm=None) -> dict:
        """``complexity_``: the candidate of the complexity family (:mod:`deepcausal._complexity`) the rule
        chose for the whole ensemble; every member then predicts with that candidate's head (the trained head
        as training and ``refit_heads`` left it, or, where the held-out rule keeps it, its every-row solve:
        :data:`deepcausal._complexity.FULL_TRAINED_HEAD`) and its draws."""
        rule, why = self.settings_.get("complexity", self.complexity), self.settings_.get("complexity_reason")
        if rule == "trained":
            return {"rule": "trained", "chosen": None}
        members = self._members()
        if any(getattr(m, "candidates_", None) is None for m in members):
            return {"rule": rule, "chosen": None,
                    "reason": "the treatment network does not keep the raw treatment beside its learned features "
                              "(deepcausal.nets.SkipMLP), or the treatment has more than 32 columns: no family"}
        key = self._predict_keys[0]
        T = data[key]
        rows = np.sort(np.random.default_rng(0).choice(T.shape[0], min(T.shape[0], EVAL_ROWS), replace=False))
        inputs = {k: self._to_tensor(self.scalers_[k].transform(data[k][rows]))
                  for k in (key, "X") if data.get(k) is not None}
        if self._covariates_optional_in_predict:  # DFPV: the dose-response integrates the covariates out
            inputs.pop("X", None)
        out = choose(self, rule, self._levels(inputs), comm, inputs[key])
        install_choice(self, out)
        if why:
            out["reason"] = why
        # The line (or Lepski's spline) uses every row and, beyond the covariates' features, no network: the
        # members' curves (the same curve without covariates) hardly differ, so without draws their spread is no band.
        out["no_spread"] = out["label"].startswith(TSLS_LABELS) and not self.n_bootstrap
        return out

    def _linear_check(self, data: dict):
        """``linear_check_``: does the curve reproduce what a linear estimator of the same data identifies
        (DFIV: :func:`deepcausal._diagnostics.linear_iv_check`)? None where no such check applies."""
        return None

    def _identification(self) -> dict:
        """``identification_``: the first stage's verdict (DFIV's linear first stage per column) and the
        learned stage-1 head's: its held-out R² (mean over members) at most 0 makes the curve weakly
        identified — the learned first stage predicts its target no better than a constant."""
        ident = dict(getattr(self, "identification_", None) or {"status": "identified", "reasons": []})
        ident["reasons"] = list(ident["reasons"])
        r2 = [float(m.history_.loc[m.history_["kept"], "val_stage1_r2"].iloc[-1]) if m.history_["kept"].any()
              else float(m.history_["val_stage1_r2"].iloc[-1])
              for m in self._members() if "val_stage1_r2" in getattr(m, "history_", ())]
        # An R² from a few dozen held-out rows says nothing (Mroz: −0.15 on 21 rows, with a linear F of 55):
        # judge only from enough rows.
        if self.settings_.get("n_val", 0) < _MIN_R2_ROWS:
            r2 = []
        if r2 and np.nanmean(r2) <= 0:
            ident["reasons"].append(f"the learned stage-1 head predicts its target no better than a constant on "
                                    f"held-out rows (R² {np.nanmean(r2):.2g})")
            if ident["status"] == "identified":
                ident["status"] = "weak"
        return ident

    def _fit_member(self, prepared: dict, seed: int, validation, progress=None) -> "TwoStageEstimator":
        """Train one member (all of a single fit): :func:`deepcausal._training.fit_member`."""
        return fit_member(self, prepared, seed, validation, progress)

    @property
    def summary(self) -> FitResults:
        """The results of the fit (:class:`deepcausal.results.FitResults`): estimates with standard
        errors, 95% intervals and p-values, the first stage, the fit and its warnings.

        A property, as linearmodels' ``results.summary`` (``print(est.summary)``); the object is also
        callable, so econml's ``est.summary()`` returns the same results.
        """
        self._check_fitted()
        return FitResults(self)

    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, **params):
        """An estimator bound to a formula and its data (linearmodels' habit): ``.fit()`` fits it.

        DFIV: ``"outcome ~ covariates + [treatment ~ instruments]"``; DFPV:
        ``"outcome ~ covariates + [treatment ~ treatment_proxies | outcome_proxies]"``. The formula
        is read through formulaic (linearmodels' syntax) and its role matrices built now, so a wrong
        column or formula fails here; see :mod:`deepcausal.formula` for the rules (``C(...)`` and
        string columns, ignored intercept, plain numeric treatment columns, no silent row dropping).

        Parameters
        ----------
        formula : str
        data : DataFrame
            Read only; the formula's variables are its columns.
        **params
            Constructor parameters (``n_epochs``, ``random_state``, ...).

        Returns
        -------
        An unfitted estimator; ``fit()`` without arguments fits it on the formula's data (fitting it
        on other data the usual way ignores the formula). After that fit it keeps the formula's specs
        in ``formula_``, so its predictions accept DataFrames with the original columns.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from deepcausal import DFIV
        >>> rng = np.random.default_rng(0)
        >>> n = 600
        >>> df = pd.DataFrame({"z": rng.normal(size=n), "region": rng.choice(["n", "s", "w"], n)})
        >>> u = rng.normal(size=n)
        >>> df["t"] = df["z"] + u + rng.normal(size=n)
        >>> df["y"] = np.sin(df["t"]) + (df["region"] == "s") + u + 0.1 * rng.normal(size=n)
        >>> est = DFIV.from_formula("y ~ C(region) + [t ~ z]", df, n_epochs=2, n_bootstrap=0,
        ...                         random_state=0, verbose=False).fit()
        >>> est.predict(df).shape
        (600,)
        """
        est = cls(**params)
        # Not a parameter (clone() drops it) and not a fitted attribute (a fit keeps it).
        est._formula_inputs = formula_inputs(cls, formula, data)
        return est

    def _fit_formula(self):
        """``fit()`` without data: the formula and data of :meth:`from_formula`."""
        bound = getattr(self, "_formula_inputs", None)
        if bound is None:
            raise TypeError(f"{type(self).__name__}.fit() needs data: the outcome and treatment (fit(Y, T, ...)), "
                            f"a DataFrame with role column names (fit(df, outcome=..., ...)), or an estimator from "
                            f"{type(self).__name__}.from_formula(formula, data)")
        self._fit(bound.arrays, bound.columns, {k: False for k in bound.arrays}, None, None)
        for member in {id(m): m for m in [self, *self._members()]}.values():  # members predict from frames too
            member.formula_ = bound.model
        return self

    # ---- persistence ----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the fitted estimator to ``path`` atomically (temporary file, then rename)."""
        self._check_fitted()
        if hasattr(self, "formula_"):
            # formulaic's model specs are Python objects, which the safe file format (tensors and plain data
            # only) cannot hold.
            raise ValueError("a model built with from_formula cannot be saved yet; fit it from the DataFrame with "
                             "role column names instead (categorical columns are encoded automatically), then save")
        save_estimator(self, path)

    @classmethod
    def load(cls, path, device: str = "cpu", *, nets=None, trusted: bool = False):
        """Read an estimator written by :meth:`save`, with all its networks and tensors on ``device``.

        Loading never runs code from the file: it holds only tensors and plain data (see
        :mod:`deepcausal._persist`), and the default networks are rebuilt from the saved weights.

        Parameters
        ----------
        path : str or path-like
        device : {"cpu", "cuda", "auto"}, default="cpu"
        nets : dict, optional
            For a model fitted with user-supplied networks: parameter name → the same module (or factory)
            as at fit, e.g. ``{"treatment_net": my_net}``; the saved weights are loaded into a copy.
        trusted : bool, default=False
            Also unpickle what a safe load refuses: files written by deepcausal's first format (which
            pickled the whole estimator) and user-supplied networks pickled into the file. **Unpickling
            can run arbitrary code chosen by whoever wrote the file**: use it only for files you trust,
            e.g. to re-save an old model in the safe format (``DFIV.load(p, trusted=True).save(p)``).

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            Not a model file, a model of another class, an old-format file (the message says how to
            re-save it), or user-supplied networks missing from ``nets``.
        pickle.UnpicklingError
            A file holding Python objects other than tensors and plain data (refused unless ``trusted``).
        """
        return load_estimator(cls, path, device=resolve_device(device), nets=nets, trusted=trusted)


def _rebuild_nets(est: TwoStageEstimator, states: dict, device) -> dict:
    """A loaded model's networks (``nets_``): built as at fit from ``est.dims_`` and the network
    parameters, then given the saved weights."""
    nets = build_nets(est, net_dims(est), device)
    load_weights(nets, states["nets_"], "nets_")
    return {"nets_": nets}
