"""What DFIV and DFPV share: parameters, input handling, the two-stage training loop, refit, outputs.

The loop follows DESIGN §3 for both estimators. Per pair of minibatches (b1 ⊂ S1, b2 ⊂ S2):

    stage 1      step the stage-1 nets on (1/n)||target(b1) − F₁(b1) V||²   (target detached)
                 V ← prox(F₁(b1), target(b1); V, λ₁, β₁)
    covariates   step the covariate net on (1/m)||Y(b2) − G(b2) u||²        (stage-1 prediction detached)
                 u ← prox(G(b2), Y(b2); u, λ₂, β₂)
    stage 2      V(target) = prox(F₁(b1), target(b1) WITH grad; V, λ₁₂, β₁)
                 step the stage-2 nets on (1/m)||Y(b2) − G(b2; F₁(b2) V(target)) u||²
                 u ← prox(G(b2) recomputed with the stepped nets, Y(b2); u, λ₂, β₂)

After every backbone step the head it was trained against is re-solved on the stepped features. In
``mode="ridge"`` (all λ = 0, each batch a whole half) every head is also solved on the current
features right before the first step that uses it, so every step sees the exact closed-form heads: the
original full-batch algorithm. In proximal mode the first step of a stage uses the previous head, the
proximal anchor of DESIGN §3. A stage with no gradient steps still re-solves its head once per
minibatch. A subclass only says what F₁, the target and G are, and how a prediction is formed.

Networks whose output depends on the mode (batch norm, dropout): heads are always solved on eval-mode
features (running statistics, no dropout) — the features ``predict`` uses — while gradient steps see
train-mode features. "Exact head" therefore means exact for the deterministic eval-mode features; the
envelope property (DESIGN §2) then holds only approximately inside a step. For networks without such
layers the two coincide.
"""

from __future__ import annotations

import inspect
import math
import os
import threading
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import torch
from torch import nn
from sklearn.base import BaseEstimator
from tqdm.auto import tqdm

from ._data import Standardizer, as_2d_array, encode_frame, is_image_like, role_input, roles_from_frame
from ._persist import load_estimator, save_estimator
from ._warnings import record, warn
from .distributed import Communicator
from .ensemble import check_n_jobs, fit_members, member_seeds
from .inference import NoDrawsError, check_alpha, combine_draws, score_bootstrap_heads
from .results import FitSummary, record_fit_warnings
from .heads import NonFiniteError, check_coefficients
from .nets import build_net, default_net, output_dim
from .optim import Adam, annealed_lr
from .twostage import TwoStageHeads, squared_loss

_LAM_AT_DEFAULT_BATCH = 0.1  # proximal λ₁, λ₂ at an estimator's default batch size
_REFERENCE_HALF = 2500  # rows of a stage half of the 5,000-row designs the defaults were set on
_REFERENCE_STEPS = 1000  # default step cap at that size; the cap grows as √n beyond it
_MAX_EPOCHS = 200  # default epoch cap (small data)
_CHECK_EVERY_STEPS = 200  # held-out losses at each epoch end, or this often within long epochs
_MAX_RECOVERIES = 2  # restarts from the kept check at half the learning rate before a divergence ends training
_PLATEAU_TOL = 0.10  # early stopping: a held-out loss median within 10% of its best counts as the best
_MIN_STAGE_ROWS = 20  # fewer training rows per stage half is an error
_MIN_VAL_ROWS = 10  # held-out rows per stage half are at least this many
_FEW_STAGE_ROWS = 250  # fewer rows per stage half warns


class _Half:
    """One stage half: the (local) data tensors and, per global position, the local row (−1: not here).

    The first ``n_val`` positions of the half are held out (validation rows for the held-out stage
    losses); gradient steps and proximal head updates use the remaining ``n_train`` positions only.
    """

    def __init__(self, tensors: dict, rows: torch.Tensor, n_val: int = 0):
        self.tensors, self.rows = tensors, rows
        self.n_val, self.n_train = int(n_val), len(rows) - int(n_val)

    def take(self, positions: torch.Tensor) -> dict:
        """The locally held rows among these global positions of the half."""
        r = self.rows[positions.to(self.rows.device)]
        r = r[r >= 0]
        return {k: v[r] for k, v in self.tensors.items()}

    def batches(self, size: int, part: str = "all"):
        """The local rows of the half (``part``: "all", "train" or "val") in consecutive batches."""
        rows = {"all": self.rows, "train": self.rows[self.n_val:], "val": self.rows[: self.n_val]}[part]
        local = rows[rows >= 0]
        for lo in range(0, len(local), size):
            r = local[lo : lo + size]
            yield {k: v[r] for k, v in self.tensors.items()}


def concat_inputs(b: dict, keys) -> torch.Tensor:
    """Concatenate the batch entries named in ``keys`` that are present (covariates are optional)."""
    return torch.cat([b[k] for k in keys if k in b], dim=1)


# Parameter documentation DFIV and DFPV share, written once (numpydoc, 4-space indented).
_SHARED_DOCS = {
    "n_epochs_parameter": """n_epochs : int, optional
        The most passes over the data. Default: 100 in ridge mode; in proximal mode at most 200
        epochs and at most 1,000·√(n_half / 2,500) minibatch steps, a cap that grows with the data
        (about 7,000 steps, 15 epochs, at a million rows). With ``early_stopping`` training usually
        ends before the cap, when the held-out stage-2 loss stops improving.""",
    "training_parameters": """lr : float, default=1e-3
        Adam learning rate of every network.
    lr_schedule : {"auto", "annealed", "constant"}, default="auto"
        How the learning rate moves over the step budget (the cap of ``n_epochs``). "annealed": ``lr``
        for the first half of the budget, then falling linearly to ``lr / 50`` at the cap, so that
        the last iterates settle instead of wandering with the minibatch noise (measured in
        benchmarks/RESULTS.md, "Learning-rate schedule"). "constant": ``lr`` throughout. "auto":
        DFIV anneals in proximal mode with the default budget (``n_epochs=None``, a cap sized for the
        data) and is constant otherwise: an ``n_epochs`` you chose may be too short to spend half of
        it annealing, and ridge mode's full-batch steps have no minibatch noise (it stays the
        original algorithm). DFPV is constant: annealing did not lower its held-out stage-2 loss
        and its default ensemble was less accurate with it. Early stopping can end training
        before the annealing starts. ``history_`` records the rate at each check.
    treatment_weight_decay : float, default=0.0
        L2 penalty on the treatment network's weights, added to their gradients as
        ``torch.optim.Adam``'s ``weight_decay`` does (the original DFIV/DFPV code's knob of the same
        name). Without it DFIV's treatment features grow steadily over long fits (the stage-2 loss
        takes the ridge-shrunk head as fixed and the gradient makes up for the shrinkage); 0.001–0.01
        stopped that and a divergence at 10⁶ rows in benchmarks/RESULTS.md, "Diagnosis: treatment-
        feature drift". Not a default: on the held-out losses of every design it did not pay
        (RESULTS.md, "Treatment-network weight decay"); consider it for very large DFIV fits. The
        other remedy measured there removes the scale instead of penalising it:
        ``treatment_net=partial(deepcausal.nets.SkipMLP, d_out=4, normalize=True)`` (DFIV at 10⁶ rows:
        MSE 4–9 against 14–29; not a default either, see "Treatment-feature normalisation (DFIV)").
    split_ratio : float, default=0.5
        Fraction of rows in the stage-1 half.
    validation_fraction : float, default=0.1
        Fraction of each stage half held out of training to compute the held-out stage losses
        (recorded in ``history_``, used by ``early_stopping``). 0 holds out nothing (then
        ``early_stopping`` must be False). The held-out rows rejoin the halves for the final
        re-estimation of the heads (``refit_heads``).
    early_stopping : bool, default=True
        Stop when the held-out stage-2 loss has not improved for ``n_iter_no_change`` checks and
        restore the networks and heads of the best check. Checks happen at the end of each epoch, or
        every 200 minibatch steps when an epoch is longer. If training diverges (a non-finite loss)
        after a check was kept, training goes back to that check at half the learning rate, with a
        ``RuntimeWarning`` (``stopping_["recoveries"]`` lists the steps); after two such restarts a
        third divergence ends training with that check's model (``stopping_["reason"] == "diverged"``).
        Before any check a divergence is an error, as without early stopping.
    n_iter_no_change : int, default=10
        Patience of early stopping, in checks.
    refit_heads : bool, default=True
        After training, re-estimate both heads on the full stage halves by streaming statistics.
    n_estimators : int, default=5
        Members of the ensemble. Each member is a full fit with its own seed, hence its own random
        S1/S2 split, initialisation and batch order; predictions are the member average, and the
        members' spread enters the confidence bands. Fitted members are kept in ``estimators_``.
        Why 5: on the lowdim designs (n = 1,000, 20 replications; benchmarks/RESULTS.md, "Confidence
        bands") single fits' 95% bands covered 50-65% of the truth and 3 members 88-99%, 5 members
        93-100%, and the ensemble's error was lower than a single fit's. It costs 5 fits, run in
        parallel processes (``n_jobs``). Use 1 for a single fit (then bands come from the bootstrap
        of the heads alone and are too narrow).
    n_bootstrap : int, default=100
        Score-bootstrap draws of the heads per member, for the confidence bands
        (:mod:`deepcausal.inference`); 0 skips them (then intervals need ``n_estimators`` > 1).
    n_jobs : int or None, default=-1
        Processes that fit ensemble members in parallel (joblib: −1 all cores, None or 1 one after
        another, also respecting a ``joblib.parallel_config`` context). Results do not depend on
        it, nor on joblib's backend (processes or threads): every member fits on one torch thread
        with its own seed.
    random_state : int or None
        Seeds the split, the batches, the network initialisation, the bootstrap draws and the
        members' seeds; fits are bit-reproducible on CPU. None draws a seed from the operating
        system (one shared by all ranks of a distributed fit).
    device : {"cpu", "cuda", "auto"}, default="cpu"
    verbose : bool, default=False
        Show a progress bar over epochs (over members, for an ensemble).""",
}


def fill_shared_docs(doc: str) -> str:
    """Insert the shared parameter documentation at its ``%(name)s`` placeholders."""
    for name, text in _SHARED_DOCS.items():
        doc = doc.replace(f"%({name})s", text)
    return doc


from sklearn.exceptions import NotFittedError  # noqa: E402  (re-exported: deepcausal.NotFittedError)


@contextmanager
def _diverged(stage: str):
    """Turn non-finite losses or features during training into an error naming the stage."""
    try:
        yield
    except NonFiniteError as exc:
        raise FloatingPointError(
            f"{stage}: training diverged ({exc}). Try a smaller lr, or larger ridge (beta1/beta2) or "
            "proximal (lam1/lam2) coefficients."
        ) from exc


def mode_matters(module: nn.Module) -> bool:
    """Whether ``module``'s output may depend on train/eval mode (batch norm, dropout, spectral
    norm's power iteration, or any module from outside torch.nn and deepcausal, which might read
    ``self.training``). Without such layers the mode switches of training are skipped: they cost
    about a tenth of a small network's fit."""
    for m in module.modules():
        cls = type(m)
        if isinstance(m, (nn.modules.batchnorm._NormBase, nn.modules.dropout._DropoutNd)) \
                or nn.utils.parametrize.is_parametrized(m) or cls.train is not nn.Module.train \
                or not cls.__module__.startswith(("torch.nn", "deepcausal")):
            return True
    return False


@contextmanager
def _eval_mode(module: nn.Module):
    """Eval mode (batch-norm running statistics) and no autograd, for head solves and prediction.

    Modules without mode-dependent layers (:func:`mode_matters`, cached on the module) are left in
    their mode."""
    toggle = getattr(module, "_deepcausal_mode_matters", None)
    if toggle is None:
        toggle = mode_matters(module)
    was = module.training
    if toggle:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if toggle:
            module.train(was)


@contextmanager
def _predicting(module: nn.Module):
    """No autograd, with a fitted model's networks in eval mode — where they stay.

    Unlike :func:`_eval_mode`, the mode is not restored afterwards: a fitted model's networks are
    always in eval mode (fit leaves them so; a loaded model, or one a user switched, is switched once
    here), so two threads predicting at once never see the other switch to train mode.
    """
    if module.training:
        module.eval()
    with torch.no_grad():
        yield


_GLOBAL_RNG_LOCK = threading.RLock()


@contextmanager
def _seeded_global_rng(seed: int, device: torch.device):
    """torch's global generator (and the CUDA device's) seeded with ``seed`` inside the block, the
    caller's state restored after it, one thread at a time.

    Only the generators this fit uses are seeded, inside ``fork_rng``: torch.manual_seed would also
    (lazily) reseed every CUDA device, which fork_rng(devices=[]) does not restore."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for i in cuda:
            torch.cuda.default_generators[i].manual_seed(seed)
        yield


def _draws_random_numbers(module: nn.Module) -> bool:
    """Whether a forward pass may draw from torch's global generator: dropout, or a module from outside
    torch.nn and deepcausal, which might."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) or not type(m).__module__.startswith(("torch.nn", "deepcausal"))
               for m in module.modules())


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available on this machine")
    return torch.device(device)


class TwoStageEstimator(BaseEstimator):
    """Base class; see :class:`deepcausal.DFIV` and :class:`deepcausal.DFPV`.

    Subclasses declare ``_roles`` — (role name, key, required) with the key used in batches — the
    network parameters in ``_nets`` (key → (parameter name, input keys, optimiser group)), and
    implement the feature hooks below.
    """

    _roles: Tuple[Tuple[str, str, bool], ...] = ()
    _nets: Dict[str, Tuple[str, Tuple[str, ...], str]] = {}
    _predict_keys: Tuple[str, ...] = ()  # batch keys a prediction needs (treatment first)
    _default_batch = 512  # minibatch rows per stage half for batch_size="auto"; λ defaults are 0.1 here
    # Network built for a role left as None: callable(d_in, d_out=...) -> Module, with the learned
    # output width per network parameter (16 where not listed; images always get the image MLP).
    _default_net = staticmethod(default_net)
    _default_widths: Dict[str, int] = {}
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

    def _summaries(self, nets, batches_s2, comm) -> dict:
        """The fitted summaries of the stage-2 rows a prediction needs: the means of the terms."""
        sums, n = {}, 0
        with _eval_mode(nets):
            for b in batches_s2:
                for name, t in self._summary_terms(nets, b).items():
                    sums[name] = sums.get(name, 0.0) + t.sum(0)
                n += b["Y"].shape[0]
        if not sums:
            return {}
        n = comm.sum_float(n)
        return self._summaries_from_means({k: comm.sum(v) / n for k, v in sums.items()})

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
            raise ValueError(f"a stage half has {n_half} rows; holding out {n_val} (validation_fraction={frac:g}) leaves "
                             f"{n_train} to train on, but at least {_MIN_STAGE_ROWS} are needed per stage: use more data"
                             + (" or set validation_fraction=0 and early_stopping=False" if n_val else ""))
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

    # ---- input handling ---------------------------------------------------------------------
    def _collect(self, first, arrays: dict, role_columns: dict) -> Tuple[dict, dict, dict, dict]:
        """Arrays (econml style) or a DataFrame with role column names → key → float64 array.

        Also returns each role's column names (kept exactly as given, so integer labels stay
        integers and predict matches by name), whether the role is an image batch (pooled
        standardisation, see :func:`deepcausal._data.is_image_like`) and, per role with
        categorical columns, their levels (one-hot encoded, see :func:`deepcausal._data.encode_frame`).
        """
        names = {role: key for role, key, _ in self._roles}
        encoders = {}
        if role_columns.get(self._roles[0][0]) is not None:  # DataFrame mode: fit(df, outcome=...)
            required = [role for role, _, req in self._roles if req]
            parsed = roles_from_frame(first, role_columns, required,
                                      [r for r, k, _ in self._roles if k in self._categorical_keys()])
            data = {names[r]: arr for r, (arr, _, _) in parsed.items()}
            columns = {names[r]: cols for r, (_, cols, _) in parsed.items()}
            encoders = {names[r]: levels for r, (_, _, levels) in parsed.items() if levels}
            images = {k: v is not None and is_image_like(v) for k, v in data.items()}
        else:
            data, columns, images = {}, {}, {}
            n = None
            for role, key, req in self._roles:
                value = first if key == "Y" else arrays.get(key)
                if value is None:
                    if req:
                        raise ValueError(f"{key} ({role}) is required")
                    data[key], columns[key], images[key] = None, [], False
                    continue
                arr, levels = role_input(value, f"{key} ({role})", n, "the outcome", key in self._categorical_keys())
                if levels:
                    encoders[key] = levels
                n = arr.shape[0] if n is None else n
                data[key] = arr
                images[key] = is_image_like(value)
                columns[key] = (
                    list(value.columns) if isinstance(value, pd.DataFrame) else
                    [value.name] if isinstance(value, pd.Series) and value.name is not None else []
                )
        if data["Y"].shape[1] != 1:
            raise ValueError(f"outcome must be a single column, got {data['Y'].shape[1]}")
        return data, columns, images, encoders

    def _role_array(self, value, key: str, n: Optional[int]) -> np.ndarray:
        """One role's prediction input: DataFrame columns by their fitted names (any order), else by
        position. Errors name the role and the missing columns."""
        role = self._role_name(key)
        cols = self.columns_.get(key)
        if isinstance(value, pd.DataFrame) and cols:
            missing = [c for c in cols if c not in value.columns]
            if missing:
                raise ValueError(f"{key} ({role}): column(s) {missing} not found; the model was fitted with "
                                 f"{list(cols)} and the DataFrame has {list(value.columns)}")
            arr = self._frame_array(value, key)
        else:
            arr = self._array_input(value, key)
        if n is not None and arr.shape[0] != n:
            raise ValueError(f"{key} ({role}) has {arr.shape[0]} rows but the treatment has {n}")
        if arr.shape[1] != self.dims_[key]:
            raise ValueError(f"{key} ({role}) has {arr.shape[1]} columns, the model was fitted with {self.dims_[key]}"
                             + (f" {list(cols)}" if cols and len(cols) == self.dims_[key] else ""))
        return arr

    def _prediction_inputs(self, first, X=None, extra: Optional[dict] = None) -> dict:
        """Inputs of predict/effect as standardized tensors keyed like batches.

        ``first`` is the treatment (array or DataFrame); in DataFrame mode it may also hold the
        covariate (and ``extra`` role) columns. ``extra`` maps further keys (e.g. DFPV's outcome
        proxy ``"W"``) to their values, None meaning "take the columns from ``first``".
        """
        given = {self._predict_keys[0]: first, "X": X, **(extra or {})}
        out, n = {}, None
        for k, value in given.items():
            if value is None and k != self._predict_keys[0] and self._frame_has(first, k):
                value = first  # DataFrame mode: the role's columns beside the treatment's
            if self.dims_.get(k) is None:
                if value is not None:
                    raise ValueError(f"{k} was given but the model was fitted without {self._role_name(k)}")
                continue
            if value is None:
                if k == "X" and self._covariates_optional_in_predict:
                    continue
                raise ValueError(f"{k} ({self._role_name(k)}) is required: the model was fitted with it"
                                 + self._missing_columns_note(first, k))
            arr = self._role_array(value, k, n)
            n = arr.shape[0]
            out[k] = self._to_tensor(self.scalers_[k].transform(arr))
        return out

    def _frame_has(self, value, key: str) -> bool:
        cols = self.columns_.get(key)
        return isinstance(value, pd.DataFrame) and bool(cols) and all(c in value.columns for c in cols)

    def _role_name(self, key: str) -> str:
        return next(role for role, k, _ in self._roles if k == key)

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device_)

    def _check_fitted(self):
        if not hasattr(self, "settings_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _validation(self, validation):
        if validation is None:
            return None
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
            raise ValueError("validation must be (inputs_frame, truth) or (treatment, covariates, truth)")
        *inputs, truth = validation
        truth = as_2d_array(truth, "validation truth").ravel()
        return inputs, truth

    # ---- fit ----------------------------------------------------------------------------------
    def _clear_fitted(self):
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)

    @record_fit_warnings
    def _fit(self, data: dict, columns: dict, images: dict, validation=None, encoders=None):
        # Fitting twice gives the same model: nothing from an earlier fit is reused; and a fit that
        # fails (bad settings, diverging loss) leaves the estimator unfitted, not half-fitted.
        self._clear_fitted()
        try:
            prepared = self._prepare(data, columns, images, encoders)
            val = self._validation(validation)
            seeds = member_seeds(prepared["seed"], self.n_estimators)
            if self.n_estimators == 1:
                return self._fit_member(prepared, seeds[0], val)
            # Members are separate processes' work unless this is already a distributed fit.
            n_jobs = 1 if prepared["comm"].active else self.n_jobs
            members = fit_members(self, prepared, seeds, val, n_jobs, self.verbose)
            for i, m in enumerate(members):
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
            return self
        except BaseException:
            self._clear_fitted()
            raise

    def _prepare(self, data: dict, columns: dict, images: dict, encoders=None) -> dict:
        """What every member shares: settings, seed, standardisation, diagnostics, data tensors."""
        device = _resolve_device(self.device)
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
            **self._input_names(data, columns),
        )
        return dict(comm=comm, n=n, n1=n1, offset=offset, n_local=n_local, settings=settings, seed=seed,
                    tensors=tensors, shared=shared)

    def _set_shared(self, prepared: dict) -> None:
        for name, value in prepared["shared"].items():
            setattr(self, name, value)

    def _fit_member(self, prepared: dict, seed: int, validation) -> "TwoStageEstimator":
        """Train one member (all of a single fit): its split, networks, heads and bootstrap draws."""
        self._set_shared(prepared)
        comm, settings, device = prepared["comm"], prepared["settings"], self.device_
        n, n1, offset, n_local = prepared["n"], prepared["n1"], prepared["offset"], prepared["n_local"]
        with ExitStack() as global_rng:
            # The networks are initialised from torch's global generator, seeded with the member's seed
            # (user-supplied factories draw from it too); the split, batches and bootstrap draw from the
            # member's own generator ``gen``. The global one is shared by every thread of the process,
            # so the seeded block holds a lock: members fitted in threads stay bit-identical.
            global_rng.enter_context(_seeded_global_rng(seed, device))
            gen = torch.Generator().manual_seed(seed)
            # local row of each global position (−1 where another rank owns the row)
            rows = torch.randperm(n, generator=gen) - offset
            rows[(rows < 0) | (rows >= n_local)] = -1
            n_val = settings["n_val"]
            halves = (_Half(prepared["tensors"], rows[:n1].to(device), n_val),
                      _Half(prepared["tensors"], rows[n1:].to(device), n_val))
            nets = self._build_nets(self.dims_, device)
            if not _draws_random_numbers(nets):
                global_rng.close()  # training never reads the global generator: let other members build theirs
            heads = TwoStageHeads(settings["lam1"], settings["lam2"], settings["lam12"], self.beta1, self.beta2,
                                  reducer=comm.reduce_stats if comm.active else None)
            truth_val = None
            if validation is not None:
                truth_val = (self._prediction_inputs(*validation[0]), validation[1])
            history, stop = self._train(nets, heads, halves, settings, gen, comm, truth_val)
            heads.release_features()
            bootstrap_seed = int(torch.randint(0, 2**62, (1,), generator=gen))

        current = TwoStageHeads(**self._coefs(heads))
        current.load_state_dict({k: v.clone() for k, v in heads.state_dict().items()})
        if self.refit_heads:
            self._refit(nets, heads, halves, settings["batch_size"])
        # A fitted model's networks stay in eval mode: predictions never switch modes, so predictions
        # in several threads at once cannot see each other's mode (see _predicting).
        nets.eval()
        with torch.no_grad():
            summaries = self._summaries(nets, halves[1].batches(4096), comm)
            draws, summary_draws = (score_bootstrap_heads(self, nets, halves, int(self.n_bootstrap), bootstrap_seed,
                                                          comm) if self.n_bootstrap else (None, None))

        self.nets_, self.heads_, self.current_heads_ = nets, heads, current
        self.summaries_, self.head_draws_, self.summary_draws_ = summaries, draws, summary_draws
        self.history_ = pd.DataFrame(history)
        self.stopping_ = stop
        return self

    def _coefs(self, heads: TwoStageHeads) -> dict:
        return dict(lam1=heads.lam1, lam2=heads.lam2, lam12=heads.lam12, beta1=heads.beta1, beta2=heads.beta2)

    def _build_nets(self, dims: dict, device) -> nn.ModuleDict:
        """One network per entry of ``_nets`` whose inputs are present (covariates X are optional
        inputs of the nets that also read other roles; the covariate net needs them)."""
        nets = nn.ModuleDict()
        for name, (param, keys, _) in self._nets.items():
            present = [k for k in keys if dims.get(k) is not None]
            if not present or any(k != "X" and dims.get(k) is None for k in keys):
                continue
            d_in = sum(dims[k] for k in present)
            default = partial(self._default_net, d_out=self._default_widths.get(param, 16))
            net = build_net(getattr(self, param), d_in, param, default).to(device)
            output_dim(net, d_in, param, device)  # fail early, naming the role, if it does not fit
            nets[name] = net
        nets._deepcausal_mode_matters = mode_matters(nets)  # cached for _eval_mode and the training loop
        return nets

    def _optimisers(self, nets: nn.ModuleDict) -> dict:
        groups: Dict[str, list] = {}
        for name, (_, _, group) in self._nets.items():
            if name in nets:
                groups.setdefault(group, []).extend(nets[name].parameters())
        # deepcausal.optim.Adam: PyTorch's Adam update without torch.optim's import of torch._dynamo,
        # which costs seconds in every fresh process (each parallel ensemble member).
        # treatment_weight_decay: an L2 term on the treatment network only, in whichever group trains it.
        wd = float(self.treatment_weight_decay)
        treatment = list(nets["treatment"].parameters()) if wd and "treatment" in nets else []
        ids = {id(q) for q in treatment}
        return {g: Adam(p, lr=float(self.lr), weight_decay=wd if any(id(q) in ids for q in p) else 0.0,
                        decayed=treatment) for g, p in groups.items() if p}

    def _train(self, nets, heads, halves, st, gen, comm, truth_val) -> Tuple[List[dict], dict]:
        """Minibatch epochs with a check every ``check_every`` steps: held-out stage losses into the
        history and, with early stopping, a copy of the best state, restored at the end.

        Returns the history rows and a description of how training ended (``stopping_``): its
        ``reason`` is "max_steps", "early_stopping", "interrupted" (Ctrl-C) or "diverged". A non-finite
        loss after early stopping has kept a state sends training back to that state at half the learning
        rate (``recoveries`` lists the steps, each with a ``RuntimeWarning``); a divergence after
        ``_MAX_RECOVERIES`` of those ends training with the kept state restored ("diverged").
        """
        n1, n2 = halves[0].n_train, halves[1].n_train
        steps_per_epoch, check_every = st["steps_per_epoch"], st["check_every"]
        opts = self._optimisers(nets)
        annealed = st.get("lr_schedule") == "annealed"
        history: List[dict] = []
        track = {"recent": [], "best": math.inf, "row": None, "state": None, "worse": 0}
        step, reason = 0, "max_steps"
        recoveries: List[int] = []  # steps at which training diverged and went back to the kept check
        bar = tqdm(total=st["max_steps"], disable=not self.verbose or comm.rank != 0, desc=type(self).__name__)
        try:
            while step < st["max_steps"] and reason == "max_steps":
                # a new epoch: one random order of each half's training rows (after its held-out rows)
                p1 = (torch.randperm(n1, generator=gen) + halves[0].n_val).tensor_split(steps_per_epoch)
                p2 = (torch.randperm(n2, generator=gen) + halves[1].n_val).tensor_split(steps_per_epoch)
                losses, since_check = np.zeros(2), 0
                for i1, i2 in zip(p1, p2):
                    rate = annealed_lr(self.lr, step, st["max_steps"]) if annealed else float(self.lr)
                    rate *= 0.5 ** len(recoveries)
                    for opt in opts.values():
                        opt.param_groups[0]["lr"] = rate
                    try:
                        losses += self._step(nets, heads, opts, halves[0].take(i1), halves[1].take(i2), st, comm)
                    except FloatingPointError as exc:
                        # A non-finite loss after a check was kept: go back to that check with half the
                        # rate and fresh optimiser moments (the diverged ones may hold inf), and go on.
                        # Measured at 10⁶ rows: a DFIV fit diverged after 5,000 good steps, losing the
                        # remaining two thirds of its budget. Without a kept state, with several processes
                        # (the others would wait in a collective), or after _MAX_RECOVERIES, it ends below.
                        if track["state"] is None or comm.active or len(recoveries) >= _MAX_RECOVERIES:
                            raise
                        kept = history[track["row"]]
                        recoveries.append(step + 1)
                        warn(f"training diverged at step {step + 1} ({exc}); training goes on from the "
                             f"check at step {kept['step']} at {0.5 ** len(recoveries):g} times the "
                             "learning rate", RuntimeWarning)
                        self._restore(nets, heads, track["state"])
                        opts = self._optimisers(nets)
                        continue  # the failed step is not counted; the next minibatch pair takes its place
                    step, since_check = step + 1, since_check + 1
                    bar.update(1)
                    if since_check < check_every and step % steps_per_epoch and step < st["max_steps"]:
                        continue
                    row = {"epoch": math.ceil(step / steps_per_epoch), "step": step,
                           "lr": rate,
                           "stage1_loss": comm.sum_float(losses[0]) / since_check,
                           "stage2_loss": comm.sum_float(losses[1]) / since_check}
                    losses, since_check = np.zeros(2), 0
                    row.update(self._held_out_losses(nets, heads, halves, comm))
                    if truth_val is not None:
                        row.update(self._validation_mse(nets, heads, halves, st, comm, *truth_val))
                    history.append(row)
                    bar.set_postfix(stage2=f"{row['stage2_loss']:.4f}",
                                    held_out=f"{row.get('val_stage2_loss', float('nan')):.4f}")
                    if "val_stage2_loss" in row and st["early_stopping"]:
                        if self._early_stopping_check(track, row, len(history) - 1, nets, heads, st["patience"]):
                            reason = "early_stopping"
                            break
                    if step >= st["max_steps"]:
                        break
        except KeyboardInterrupt:
            reason = "interrupted"
            warn(f"training interrupted after {step} step(s); the model is usable")
        except FloatingPointError as exc:
            # Diverged again after _MAX_RECOVERIES restarts: the kept state is the model, as if early stopping
            # had ended training there. Without a kept state, or with several processes, it is an error.
            if track["state"] is None or comm.active:
                raise
            reason = "diverged"
            kept = history[track["row"]]
            warn(f"training diverged at step {step + 1} ({exc}) after {len(recoveries)} restart(s) at a "
                 f"lower learning rate; the model of the check at step {kept['step']} (held-out stage-2 "
                 f"loss {kept['val_stage2_loss']:.4g}) is kept", RuntimeWarning)
        finally:
            bar.close()
        stop = {"reason": reason, "steps": step, "epochs": math.ceil(step / steps_per_epoch),
                "kept_step": None, "restored": False, "recoveries": recoveries}
        if track["state"] is not None:
            self._restore(nets, heads, track["state"])
            stop.update(kept_step=history[track["row"]]["step"], restored=True)
            if reason == "early_stopping" and track["row"] == 0:
                warn(
                    "early stopping: the held-out stage-2 loss never improved on its first check (step "
                    f"{history[0]['step']}); the model of that check is kept. Try a smaller lr or larger "
                    "beta/lam, or early_stopping=False", UserWarning)
        for i, row in enumerate(history):
            row["kept"] = track["row"] == i
        return history, stop

    def _early_stopping_check(self, track: dict, row: dict, index: int, nets, heads, patience: int) -> bool:
        """Update the early-stopping state with a new check; True when training should stop.

        Minibatch noise moves the held-out stage-2 loss by 5-10% from check to check, while the
        structural error often keeps falling while the projected risk is flat or drifts up by a few
        per cent (measured on demand IV and demand PCL, n = 5,000: the structural MSE fell from 270 to 64
        and from 20 to 11 over steps where the held-out loss moved less than its noise). So the
        criterion is the median of the last ``patience`` held-out losses, and a state within 10% of
        the best median counts as best: the latest such check whose own loss is also within 10% is
        kept (on a plateau, the latest state; never a check where the loss spiked). Training stops once the median has been more than 10% above its best for
        ``patience`` checks in a row: the held-out loss clearly rises, the networks overfit.
        """
        track["recent"].append(row["val_stage2_loss"])
        del track["recent"][:-patience]
        median = float(np.median(track["recent"]))
        row["val_stage2_median"] = median
        track["best"] = min(track["best"], median)
        near_best = median <= track["best"] * (1.0 + _PLATEAU_TOL)
        # the kept state's own loss must be near the best too: a single spike (a check where training
        # briefly blew up) leaves the median unmoved but must never be the state that is kept
        if near_best and row["val_stage2_loss"] <= track["best"] * (1.0 + _PLATEAU_TOL):
            track.update(row=index, state=self._snapshot(nets, heads), worse=0)
            return False
        if near_best:
            return False
        track["worse"] += 1
        return track["worse"] >= patience

    @staticmethod
    def _snapshot(nets, heads) -> dict:
        return {"nets": {k: v.detach().clone() for k, v in nets.state_dict().items()},
                "heads": {k: (v.clone() if v is not None else None) for k, v in heads.state_dict().items()}}

    @staticmethod
    def _restore(nets, heads, state) -> None:
        nets.load_state_dict(state["nets"])
        heads.load_state_dict(state["heads"])

    @torch.no_grad()
    def _held_out_losses(self, nets, heads, halves, comm) -> dict:
        """Held-out stage losses with the current heads (DESIGN §7), mean over held-out rows:

        stage 1: ||target − F₁ V||², stage 2: ||Y − G(F₁ V) u||² (the projected risk plus noise).
        """
        if halves[0].n_val == 0:
            return {}
        sums, counts, t_sq = np.zeros(2), np.zeros(2), 0.0
        t_sum = torch.zeros(heads.V.shape[1], dtype=torch.float64, device=heads.V.device)  # target column sums
        with _eval_mode(nets):
            for b in halves[0].batches(4096, "val"):
                target = self._stage1_target(nets, b)
                sums[0] += float(squared_loss(self._stage1_features(nets, b), target, heads.V, 1))
                counts[0] += b["Y"].shape[0]
                t_sum, t_sq = t_sum + target.double().sum(0), t_sq + float((target.double() ** 2).sum())
            for b in halves[1].batches(4096, "val"):
                sums[1] += float(squared_loss(self._projected_features(nets, heads.V, b), b["Y"], heads.u, 1))
                counts[1] += b["Y"].shape[0]
        sums, counts = [comm.sum_float(v) for v in sums], [comm.sum_float(v) for v in counts]
        # R² of the stage-1 head: 1 − SSE / Σ (target − its held-out column mean)²
        total = comm.sum_float(t_sq) - float((comm.sum(t_sum) ** 2).sum()) / counts[0]
        return {"val_stage1_loss": sums[0] / counts[0], "val_stage2_loss": sums[1] / counts[1],
                "val_stage1_r2": 1.0 - sums[0] / total if total > 0 else float("nan")}

    def _step(self, nets, heads, opts, b1, b2, st, comm) -> np.ndarray:
        """One pair of minibatches through the three updates; returns (stage-1, stage-2) losses.

        Each stage is :meth:`_stage`: gradient steps on the stage loss, each followed by a head
        solve on the stepped features. In ``mode="ridge"`` (exact heads) the head is also solved
        on the current features *before* the first step, because the networks changed since it
        was last solved (stage 2 moves ψ, which moves the stage-1 target). In proximal mode the
        first step uses the previous head, as DESIGN §3 prescribes. A stage with zero steps still
        solves its head once, so no head is ever left frozen.

        Losses are normalised by the global batch sizes, so that with torch.distributed the summed
        gradients of the ranks are the gradient of the whole global batch.
        """
        m1, m2 = (int(comm.sum_float(b["Y"].shape[0])) for b in (b1, b2))
        exact = self.mode == "ridge"
        share = not nets._deepcausal_mode_matters
        if not share:
            nets.train()
        with _diverged("stage 1"):
            with torch.no_grad():
                target1 = self._stage1_target(nets, b1)
            loss1, F1_b1 = self._stage(
                nets, st["stage1_iter"], exact or heads.V is None, share, opts, "stage1", comm,
                features=lambda: self._stage1_features(nets, b1),
                loss=lambda F: squared_loss(F, target1, heads.V, m1),
                solve=lambda F: heads.stage1_update(F, target1))
            with _eval_mode(nets):
                if F1_b1 is None:
                    F1_b1 = self._stage1_features(nets, b1)
                F1_b2 = self._stage1_features(nets, b2)
                hat_b2 = F1_b2 @ heads.V.to(F1_b2.dtype)

        def solve_u(hat):
            with _eval_mode(nets):
                heads.stage2_update(self._stage2_features(nets, b2, hat, False), b2["Y"])

        with _diverged("covariate stage"):
            if "covariate" in opts:
                self._stage(
                    nets, st["covariate_iter"], exact or heads.u is None, share, opts, "covariate", comm,
                    features=lambda: self._stage2_features(nets, b2, hat_b2, True),
                    loss=lambda G: squared_loss(G, b2["Y"], heads.u, m2),
                    solve=lambda G: heads.stage2_update(G, b2["Y"]))
            elif heads.u is None:
                solve_u(hat_b2)

        with _diverged("stage 2"):
            def refit_V():  # λ₁₂ refit on the current ψ, without graph; exact mode keeps it as V
                with _eval_mode(nets):
                    V = heads.stage1_refit(F1_b1, self._stage1_target(nets, b1))
                if exact:
                    heads.V = V
                return V

            def step2():
                V = heads.stage1_refit(F1_b1, self._stage1_target(nets, b1))  # λ₁₂ refit, grad into target
                G = self._stage2_features(nets, b2, F1_b2 @ V.to(F1_b2.dtype), False)
                return self._descend(opts, "stage2", squared_loss(G, b2["Y"], heads.u, m2), comm)

            loss2 = 0.0
            if exact:
                solve_u(F1_b2 @ refit_V().to(F1_b2.dtype))
            for _ in range(st["stage2_iter"]):
                loss2 = step2()
                solve_u(F1_b2 @ refit_V().to(F1_b2.dtype))
            if st["stage2_iter"] == 0 and not exact:
                solve_u(F1_b2 @ refit_V().to(F1_b2.dtype))
        return np.array([loss1, loss2])

    @staticmethod
    def _stage(nets, n_steps: int, solve_first: bool, share: bool, opts, group: str, comm, *, features, loss, solve):
        """``n_steps`` × (gradient step on ``loss(features())``, head ``solve`` on the stepped features),
        with a solve before the first step when ``solve_first``; at least one solve happens.

        With ``share`` (networks whose output does not depend on train/eval mode) one feature pass
        serves both the solve after a step and the loss of the next step (its graph is kept), so
        each update costs one forward pass instead of two. Otherwise the solve uses eval-mode
        features and the step train-mode ones. Returns the last step's loss (0 without steps) and
        the last detached features the head was solved on (None when they were eval-mode ones).
        """

        def fresh(grad: bool):
            if share:
                with torch.set_grad_enabled(grad):
                    return features()
            with _eval_mode(nets):
                return features()

        last_loss, F = 0.0, None
        if solve_first or n_steps == 0:
            F = fresh(n_steps > 0 and share)
            solve(F.detach())
        for i in range(n_steps):
            if F is None or not share:
                F = features()  # train mode, with graph
            last_loss = TwoStageEstimator._descend(opts, group, loss(F), comm)
            F = fresh(share and i < n_steps - 1)
            solve(F.detach())
        return last_loss, (F.detach() if share and F is not None else None)

    @staticmethod
    def _descend(opts, group, loss, comm):
        value = loss.item()  # one read of the scalar serves the check and the history
        if not math.isfinite(value):
            raise NonFiniteError(f"the loss became {value}")
        if group not in opts:
            return value
        opt = opts[group]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        comm.sum_gradients(p for g in opt.param_groups for p in g["params"])
        opt.step()
        return value

    # ---- full-data refit by streaming (DESIGN §2) -----------------------------------------------
    def _refit(self, nets, heads, halves, batch_size):
        size = max(batch_size, 1024)
        with _eval_mode(nets):
            heads.refit_stage1(
                (self._stage1_features(nets, b), self._stage1_target(nets, b)) for b in halves[0].batches(size)
            )
            V = heads.V
            heads.refit_stage2(
                (self._projected_features(nets, V, b), b["Y"])
                for b in halves[1].batches(size)
            )

    def _validation_mse(self, nets, heads, halves, settings, comm, inputs, truth) -> dict:
        summaries = self._summaries(nets, halves[1].batches(4096), comm)
        refit = TwoStageHeads(**self._coefs(heads), reducer=heads.reducer)
        self._refit(nets, refit, halves, settings["batch_size"])
        out = {}
        for label, h in (("val_mse_current", heads), ("val_mse_refit", refit)):
            pred = self._predict_std(nets, h, summaries, inputs)
            out[label] = float(np.mean((pred - truth) ** 2))
        return out

    # ---- prediction ---------------------------------------------------------------------------
    def _members(self) -> list:
        """The fitted members: ``estimators_`` for an ensemble, else the estimator itself."""
        return getattr(self, "estimators_", None) or [self]

    def _features_at(self, inputs: dict, summaries: Optional[dict] = None, size: int = 8192) -> torch.Tensor:
        """This member's prediction features G at standardized ``inputs``: float64 (n, d₂), or
        (S, n, d₂) for summaries with a leading dimension of S bootstrap draws."""
        n = next(iter(inputs.values())).shape[0]
        summaries = self.summaries_ if summaries is None else summaries
        with _predicting(self.nets_):
            return torch.cat([
                self._predict_features(self.nets_, {k: v[lo : lo + size] for k, v in inputs.items()},
                                       summaries).double()
                for lo in range(0, n, size)
            ], dim=-2)

    def _predict_std(self, nets, heads, summaries, inputs: dict, size: int = 8192) -> np.ndarray:
        """Predictions in outcome units with given networks, heads and summaries (used in training)."""
        n = next(iter(inputs.values())).shape[0]
        out = []
        with _eval_mode(nets):
            for lo in range(0, n, size):
                G = self._predict_features(nets, {k: v[lo : lo + size] for k, v in inputs.items()}, summaries)
                out.append((G.double() @ heads.u.to(device=G.device, dtype=torch.float64))[:, 0].cpu().numpy())
        return self._to_outcome(np.concatenate(out))

    def _to_outcome(self, z, level: bool = True) -> np.ndarray:
        """Standardized outcome units → the outcome's units (``level=False`` for differences)."""
        sc = self.scalers_["Y"]
        return z * sc.scale[0] + (sc.mean[0] if level else 0.0)

    def _linear_statistic(self, phi, heads: str = "fitted"):
        """Each member's estimate of the statistic Φ(ŝ) û and its bootstrap deviations.

        Every quantity the estimators report (h at rows, averages over rows, effects, marginal
        effects) is linear in the stage-2 head u, with Φ built from the member's features by
        ``phi(member, summaries=None) -> (q, d₂) float64``, at the member's fitted stage-2 summaries
        ŝ, or at summaries with a leading dimension of S draws -> (S, q, d₂). A draw b deviates by
        Φ(ŝ) (u_b − û); for a member whose prediction also integrates over stage-2 summaries that
        were drawn with the heads (DFPV's mean of ψ_W, ``summary_draws_``), by Φ(s_b) u_b − Φ(ŝ) û.
        Returns (estimates (K, q), list of K (B, q) or None), in standardized outcome units.
        """
        self._check_fitted()
        ests, devs = [], []
        for m in self._members():
            u = m._heads(heads).u
            Phi = phi(m).detach()
            u = u.to(device=Phi.device, dtype=torch.float64)
            est = (Phi @ u)[:, 0]
            ests.append(est.cpu().numpy())
            d = getattr(m, "head_draws_", None)
            s_draws = getattr(m, "summary_draws_", None)
            if d is None:
                devs.append(None)
            elif not s_draws:
                devs.append((Phi @ d.to(Phi.device))[..., 0].cpu().numpy())
            else:
                # Draws of Φ(s_b), a few at a time: S × q × d₂ values at once stay under 32 MB.
                step = max(1, 2**22 // max(1, Phi.shape[0] * Phi.shape[1]))
                parts = []
                for lo in range(0, d.shape[0], step):
                    Phi_b = phi(m, {k: v[lo : lo + step] for k, v in s_draws.items()}).detach()
                    parts.append((Phi_b @ (u + d[lo : lo + step].to(Phi.device)))[..., 0] - est)
                devs.append(torch.cat(parts).cpu().numpy())
        return np.stack(ests), devs

    def _report(self, phi, level: bool, alpha=None, band: str = "pointwise", heads: str = "fitted") -> dict:
        """Point estimate (the member average), and with ``alpha`` its standard error and band, in
        the outcome's units."""
        ests, devs = self._linear_statistic(phi, heads)
        if alpha is None:
            return {"estimate": self._to_outcome(ests.mean(axis=0), level)}
        # Complete-data degrees of freedom of one member's estimate: stage-2 rows less the head's size.
        dof = (int(self.n_train_) - int(self.n_stage1_)) - int(self._members()[0].heads_.u.shape[0])
        try:
            out = combine_draws(ests, devs, check_alpha(alpha), band, dof_complete=dof if dof > 0 else None)
        except NoDrawsError as exc:
            raise NoDrawsError(f"{exc}: refit with n_bootstrap >= 2 (or n_estimators >= 2 for pointwise bands) "
                               "to get intervals") from None
        scale = self.scalers_["Y"].scale[0]
        return {"estimate": self._to_outcome(out["estimate"], level), "std_error": out["std_error"] * scale,
                "lower": self._to_outcome(out["lower"], level), "upper": self._to_outcome(out["upper"], level)}

    def _levels(self, inputs: dict):
        return lambda m, summaries=None: m._features_at(inputs, summaries)

    def _predict(self, first, X=None, heads: str = "fitted") -> np.ndarray:
        self._check_fitted()
        return self._report(self._levels(self._prediction_inputs(first, X)), True, heads=heads)["estimate"]

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
        r = self._report(self._levels(self._prediction_inputs(T, X)), True, alpha, band)
        return r["lower"], r["upper"]

    # ---- effects ------------------------------------------------------------------------------
    def _effect_phi(self, X, T0, T1, average: bool):
        self._check_fitted()
        n = None if X is None else len(X) if isinstance(X, pd.DataFrame) else as_2d_array(X, "X (covariates)").shape[0]
        t0, t1 = (self._broadcast_treatment(t, n, name) for t, name in ((T0, "T0"), (T1, "T1")))
        if t0.shape != t1.shape:
            raise ValueError(f"T0 and T1 have different shapes {t0.shape} and {t1.shape}")
        in0, in1 = self._prediction_inputs(t0, X), self._prediction_inputs(t1, X)

        def phi(m, summaries=None):
            D = m._features_at(in1, summaries) - m._features_at(in0, summaries)
            return D.mean(dim=-2, keepdim=True) if average else D

        return phi

    def effect(self, X=None, *, T0, T1) -> np.ndarray:
        """h(T1, X) − h(T0, X) per row (econml's ``effect``); scalar treatments broadcast over X's rows."""
        return self._report(self._effect_phi(X, T0, T1, False), False)["estimate"]

    def effect_interval(self, X=None, *, T0, T1, alpha=0.05):
        """A 1 − ``alpha`` band for ``effect`` per row: ``(lower, upper)`` (econml's signature).

        Covers what :meth:`predict_interval` covers (not regularisation bias)."""
        r = self._report(self._effect_phi(X, T0, T1, False), False, alpha)
        return r["lower"], r["upper"]

    def ate(self, X=None, *, T0, T1) -> float:
        """Average over the rows of X of h(T1, x) − h(T0, x) (econml's ``ate``)."""
        return float(self._report(self._effect_phi(X, T0, T1, True), False)["estimate"][0])

    def ate_interval(self, X=None, *, T0, T1, alpha=0.05):
        """A 1 − ``alpha`` interval for :meth:`ate`: ``(lower, upper)``."""
        r = self._report(self._effect_phi(X, T0, T1, True), False, alpha)
        return float(r["lower"][0]), float(r["upper"][0])

    def _broadcast_treatment(self, t, n, name) -> np.ndarray:
        if isinstance(t, pd.DataFrame):
            return t
        arr = as_2d_array(np.atleast_1d(np.asarray(t, dtype=np.float64)), name)
        d = self.dims_[self._predict_keys[0]]
        if arr.size == d and n is not None:
            arr = np.repeat(arr.reshape(1, d), n, axis=0)
        return arr

    # ---- marginal effects (autograd through the treatment network) ----------------------------
    def _marginal_phi(self, T, X, average: bool):
        """Φ = ∂G/∂t at each row (forward-mode autograd), one treatment column after another;
        columns are stacked as (column, row). In outcome units per treatment unit after scaling."""
        self._check_fitted()
        inputs = self._prediction_inputs(T, X)
        key = self._predict_keys[0]
        t_scale = torch.as_tensor(self.scalers_[key].scale, dtype=torch.float64)

        def phi(m, summaries=None):
            summaries = m.summaries_ if summaries is None else summaries
            out = []
            with _predicting(m.nets_), torch.enable_grad():
                for j in range(m.dims_[key]):
                    tangent = torch.zeros_like(inputs[key])
                    tangent[:, j] = 1.0

                    def G(t):
                        return m._predict_features(m.nets_, {**inputs, key: t}, summaries)

                    _, dG = torch.func.jvp(G, (inputs[key],), (tangent,))
                    dG = dG.double() / t_scale[j].to(dG.device)  # per unit of the treatment, not per sd
                    out.append(dG.mean(dim=-2, keepdim=True) if average else dG)
            return torch.cat(out, dim=-2)

        return phi, inputs[key].shape[0], self.dims_[key]

    def _marginal(self, T, X, average, alpha):
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

    # ---- dose-response --------------------------------------------------------------------------
    def _treatment_names(self) -> list:
        key = self._predict_keys[0]
        d = self.dims_[key]
        cols = self.columns_.get(key) or []
        if len(cols) == d:
            return list(cols)
        return ["treatment"] if d == 1 else [f"treatment_{j}" for j in range(d)]

    def _grid(self, treatment_grid) -> np.ndarray:
        key = self._predict_keys[0]
        d = self.dims_[key]
        names = self._treatment_names()
        if isinstance(treatment_grid, pd.DataFrame):
            return self._role_array(treatment_grid, key, None)
        grid = np.asarray(treatment_grid, dtype=np.float64)
        if d > 1 and grid.ndim != 2:
            raise ValueError(f"treatment_grid: the treatment has {d} columns {names}; give a 2-D grid with one row "
                             f"per point and {d} columns, or a DataFrame with those columns")
        grid = as_2d_array(grid.reshape(-1, 1) if grid.ndim <= 1 else grid, "treatment_grid")
        if grid.shape[1] != d:
            raise ValueError(f"treatment_grid has {grid.shape[1]} columns, the treatment has {d} {names}")
        return grid

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
        alpha : float in (0, 1), optional
            With it, add ``std_error``, ``lower`` and ``upper``: a 1 − alpha confidence band.
        band : {"pointwise", "uniform"}, default="pointwise"
            ``"uniform"``: simultaneous over the grid (sup-t over the bootstrap and member draws).
            The band covers what :meth:`predict_interval` covers; not regularisation bias.

        Returns
        -------
        DataFrame with the treatment column(s) (named as at fit time), ``"estimate"`` and, with
        ``alpha``, ``"std_error"``, ``"lower"``, ``"upper"``.
        """
        self._check_fitted()
        key = self._predict_keys[0]
        grid = self._grid(treatment_grid)
        names = self._treatment_names()
        lo, hi = self.treatment_range_
        for j, name in enumerate(names):
            if (grid[:, j] < lo[j]).any() or (grid[:, j] > hi[j]).any():
                warn(
                    f"treatment_grid: column {name!r} extends outside the training range [{lo[j]:.4g}, {hi[j]:.4g}]: "
                    "the estimate there is an extrapolation", UserWarning)
        if X is None:
            if self.dims_.get("X") is not None and not self._covariates_optional_in_predict:
                raise ValueError("X is required: the model was fitted with covariates; pass the rows to average over")
            r = self._report(self._levels(self._prediction_inputs(grid)), True, alpha, band)
        else:
            n_x = len(X) if isinstance(X, pd.DataFrame) else as_2d_array(X, "X (covariates)").shape[0]
            base = self._prediction_inputs(np.repeat(grid[:1], n_x, axis=0), X)
            t_std = self._to_tensor(self.scalers_[key].transform(grid))

            def phi(m, summaries=None):  # every grid value paired with every covariate row, averaged over the rows
                return torch.stack([m._features_at({**base, key: t_std[g].expand(n_x, -1)}, summaries).mean(dim=-2)
                                    for g in range(grid.shape[0])], dim=-2)

            r = self._report(phi, True, alpha, band)
        frame = pd.DataFrame(grid, columns=names)
        for k, v in r.items():
            frame[k] = v
        return frame

    # ---- conventions: summary, score, input names, categorical inputs, formulas -----------------
    # Batch keys that ``score`` accepts but does not need (the stage-2 loss does not read them).
    _unscored_keys: Tuple[str, ...] = ()

    def _categorical_keys(self) -> Tuple[str, ...]:
        """Roles whose categorical columns are one-hot encoded: all but the outcome and the treatment."""
        return tuple(k for _, k, _ in self._roles if k not in ("Y", self._predict_keys[0]))

    def _input_names(self, data: dict, columns: dict) -> dict:
        """``n_features_in_`` and, when every input role has column names, ``feature_names_in_``.

        For a multi-role estimator the "features" are the columns ``fit`` reads besides the outcome,
        role after role in the order of ``fit``'s signature (DFIV: treatment, instruments,
        covariates; DFPV: treatment, treatment proxy, outcome proxy, covariates), counted before
        encoding: a categorical column is one feature however many levels it has (``dims_`` counts
        the encoded columns). Names are kept as given (integer labels stay integers).
        """
        names, count, named = [], 0, True
        for _, key, _ in self._roles:
            if key == "Y" or data.get(key) is None:
                continue
            cols = list(columns.get(key) or [])
            named = named and bool(cols)
            names += cols
            count += len(cols) if cols else data[key].shape[1]
        out = {"n_features_in_": count}
        if named:
            out["feature_names_in_"] = np.asarray(names, dtype=object)
        return out

    def _frame_array(self, value: pd.DataFrame, key: str) -> np.ndarray:
        """A role's columns of a DataFrame at predict: through the formula when the model was built
        by :meth:`from_formula`, else one-hot encoded with the levels seen at fit."""
        role = self._role_name(key)
        formula = getattr(self, "formula_", None)
        if formula is not None:
            return formula.transform(value, key, role)
        levels = (getattr(self, "encoders_", None) or {}).get(key, {})
        return encode_frame(value, self.columns_[key], role, levels=levels)[0]

    def _missing_columns_note(self, frame, key: str) -> str:
        """For a "role is required" error: which of the role's fitted columns a DataFrame lacks."""
        cols = self.columns_.get(key) or []
        if not isinstance(frame, pd.DataFrame) or not cols:
            return ""
        missing = [c for c in cols if c not in frame.columns]
        return f"; the DataFrame lacks its column(s) {missing} (fitted with {list(cols)})" if missing else ""

    def _array_input(self, value, key: str) -> np.ndarray:
        """A role given as an array at predict: its columns must be the encoded columns."""
        role = self._role_name(key)
        levels = (getattr(self, "encoders_", None) or {}).get(key)
        if levels:
            raise ValueError(f"{key} ({role}): the model one-hot encoded the categorical column(s) {list(levels)} "
                             f"at fit; pass a DataFrame with the columns {list(self.columns_[key])}")
        return as_2d_array(value, f"{key} ({role})")

    def summary(self) -> FitSummary:
        """A read-only report of the fit (:class:`deepcausal.results.FitSummary`).

        It shows the rows per stage and held out, the ensemble members and their seeds, the
        first-stage strength (linear F for DFIV, and the held-out R² of the learned stage-1 head), the
        held-out stage losses, the hyper-parameters in force (defaults as resolved: λ at the batch
        size used, the step cap), how training ended, and the warnings raised during fit.
        ``print(est.summary())`` gives text; a notebook shows HTML.

        Returns
        -------
        FitSummary
        """
        self._check_fitted()
        return FitSummary(self)

    def _projected(self, inputs: dict, size: int = 8192) -> torch.Tensor:
        """This member's stage-2 prediction G(ψ̂, ·) û at standardized inputs (float64, (n,)), with ψ̂
        the stage-1 prediction from the instruments (DFIV) / from treatment and proxy (DFPV)."""
        n = next(iter(inputs.values())).shape[0]
        out = []
        with _predicting(self.nets_):
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

    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, **params):
        """Fit from a formula through formulaic (linearmodels' syntax); returns the fitted estimator.

        DFIV: ``"outcome ~ covariates + [treatment ~ instruments]"``; DFPV:
        ``"outcome ~ covariates + [treatment ~ treatment_proxies | outcome_proxies]"``. See
        :mod:`deepcausal.formula` for the rules (``C(...)`` and string columns, ignored intercept,
        plain numeric treatment columns, no silent row dropping).

        Parameters
        ----------
        formula : str
        data : DataFrame
            Read only; the formula's variables are its columns.
        **params
            Constructor parameters (``n_epochs``, ``random_state``, ...).

        Returns
        -------
        The fitted estimator. It keeps the formula's specs in ``formula_``, so its predictions
        accept DataFrames with the original columns (e.g. the training frame).

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
        ...                         random_state=0)
        >>> est.predict(df).shape
        (600,)
        """
        from .formula import fit_formula

        return fit_formula(cls, formula, data, params)

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
        return load_estimator(cls, path, device=_resolve_device(device), nets=nets, trusted=trusted)
