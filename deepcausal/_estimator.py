"""What DFIV and DFPV share: parameters, input handling, the two-stage training loop, refit, outputs.

The loop follows DESIGN §3 for both estimators. Per pair of minibatches (b1 ⊂ S1, b2 ⊂ S2):

    stage 1      step the stage-1 nets on (1/n)||target(b1) − F₁(b1) V||²   (target detached)
                 V ← prox(F₁(b1), target(b1); V, λ₁, β₁)
    covariates   step the covariate net on (1/m)||Y(b2) − G(b2) u||²        (stage-1 prediction detached)
                 u ← prox(G(b2), Y(b2); u, λ₂, β₂)
    stage 2      V(target) = prox(F₁(b1), target(b1) WITH grad; V, λ₁₂, β₁)
                 step the stage-2 nets on (1/m)||Y(b2) − G(b2; F₁(b2) V(target)) u||²
                 u ← prox(G(b2) recomputed with the stepped nets, Y(b2); u, λ₂, β₂)

After every backbone step the head it was trained against is re-solved (so with λ = 0 and full
batches each step sees the exact closed-form head: the original full-batch algorithm). A subclass
only says what F₁, the target and G are, and how a prediction is formed from them.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from contextlib import contextmanager
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ._data import Standardizer, as_2d_array, frame_to_array, roles_from_frame
from ._persist import load_estimator, save_estimator
from .distributed import Communicator
from .heads import NonFiniteError, check_coefficients
from .nets import build_net, default_net, output_dim
from .twostage import TwoStageHeads, squared_loss

_LAM_AT_DEFAULT_BATCH = 0.1  # proximal λ₁, λ₂ at an estimator's default batch size
_REFERENCE_HALF = 2500  # rows of a stage half on which the default number of epochs (100) was set


class _Half:
    """One stage half: the (local) data tensors and, per global position, the local row (−1: not here)."""

    def __init__(self, tensors: dict, rows: torch.Tensor):
        self.tensors, self.rows = tensors, rows
        self.local_rows = rows[rows >= 0]

    def take(self, positions: torch.Tensor) -> dict:
        """The locally held rows among these global positions of the half."""
        r = self.rows[positions.to(self.rows.device)]
        r = r[r >= 0]
        return {k: v[r] for k, v in self.tensors.items()}

    def batches(self, size: int):
        """The local rows of the half in consecutive batches (for streaming statistics)."""
        for lo in range(0, len(self.local_rows), size):
            r = self.local_rows[lo : lo + size]
            yield {k: v[r] for k, v in self.tensors.items()}


def concat_inputs(b: dict, keys) -> torch.Tensor:
    """Concatenate the batch entries named in ``keys`` that are present (covariates are optional)."""
    return torch.cat([b[k] for k in keys if k in b], dim=1)


# Parameter documentation DFIV and DFPV share, written once (numpydoc, 4-space indented).
_SHARED_DOCS = {
    "n_epochs_parameter": """n_epochs : int, optional
        Passes over the data. Default: 100 in ridge mode; in proximal mode 100, capped so that no
        more minibatch steps are taken than 100 epochs of a 5,000-row data set would take (large
        data sets train for fewer epochs, about one at a million rows).""",
    "training_parameters": """lr : float, default=1e-3
        Adam learning rate of every network.
    split_ratio : float, default=0.5
        Fraction of rows in the stage-1 half.
    refit_heads : bool, default=True
        After training, re-estimate both heads on the full stage halves by streaming statistics.
    random_state : int or None
        Seeds the split, the batches and the network initialisation; fits are bit-reproducible on CPU.
    device : {"cpu", "cuda", "auto"}, default="cpu"
    verbose : bool, default=False
        Show a progress bar over epochs.""",
}


def fill_shared_docs(doc: str) -> str:
    """Insert the shared parameter documentation at its ``%(name)s`` placeholders."""
    for name, text in _SHARED_DOCS.items():
        doc = doc.replace(f"%({name})s", text)
    return doc


class NotFittedError(ValueError, AttributeError):
    """Raised when a fitted-only method is called before ``fit`` (as in scikit-learn)."""


class ParamsMixin:
    """``get_params`` / ``set_params`` read from ``__init__``'s signature, so ``sklearn.clone`` works."""

    @classmethod
    def _param_names(cls) -> List[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items() if k != "self"
        }
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults.get(k))]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return a is b




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


@contextmanager
def _eval_mode(module: nn.Module):
    """Eval mode (batch-norm running statistics) and no autograd, for head solves and prediction."""
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available on this machine")
    return torch.device(device)


class TwoStageEstimator(ParamsMixin):
    """Base class; see :class:`deepcausal.DFIV` and :class:`deepcausal.DFPV`.

    Subclasses declare ``_roles`` — (role name, key, required) with the key used in batches — the
    network parameters in ``_nets`` (key → (parameter name, input keys, optimiser group)), and
    implement the feature hooks below.
    """

    _roles: Tuple[Tuple[str, str, bool], ...] = ()
    _nets: Dict[str, Tuple[str, Tuple[str, ...], str]] = {}
    _predict_keys: Tuple[str, ...] = ()  # batch keys a prediction needs (treatment first)
    # Network built for a role left as None: callable(d_in) -> Module.
    _default_net = staticmethod(default_net)
    # Whether a model fitted with covariates may predict without them (averaging over the stage-2 rows).
    _covariates_optional_in_predict = False
    # mode → settings used where the corresponding parameter is None
    _mode_defaults = {
        "proximal": dict(n_epochs=100, stage1_iter=4, covariate_iter=4, stage2_iter=1),
        "ridge": dict(n_epochs=100, stage1_iter=20, covariate_iter=20, stage2_iter=1),
    }

    # ---- hooks -----------------------------------------------------------------------------
    def _stage1_features(self, nets, b) -> torch.Tensor:  # F₁ with intercept
        raise NotImplementedError

    def _stage1_target(self, nets, b) -> torch.Tensor:
        raise NotImplementedError

    def _stage2_features(self, nets, b, target_hat, covariate_grad: bool) -> torch.Tensor:
        raise NotImplementedError

    def _predict_features(self, nets, b, summaries) -> torch.Tensor:  # G at the prediction inputs
        raise NotImplementedError

    def _summaries(self, nets, batches_s2, comm) -> dict:  # fitted summaries of S2 a prediction needs
        return {}

    def _diagnose(self, data: dict) -> dict:  # pre-fit checks; returns fitted attributes to set
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
        if self.mode not in self._mode_defaults:
            raise ValueError(f"mode must be 'proximal' or 'ridge', got {self.mode!r}")
        s = dict(self._mode_defaults[self.mode])
        for k in s:
            v = getattr(self, k)
            if v is not None:
                if not isinstance(v, (int, np.integer)) or v < (1 if k == "n_epochs" else 0):
                    raise ValueError(f"{k} must be a non-negative integer (n_epochs >= 1), got {v!r}")
                s[k] = int(v)
        check_coefficients(beta1=self.beta1, beta2=self.beta2, lr=self.lr)
        if self.mode == "ridge":
            s.update(batch_size=n_half, lam1=0.0, lam2=0.0, lam12=0.0)
        else:
            if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
                raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
            # λ left as None scales as 1/batch: 0.1 at the class's default batch size (see the docstrings).
            default_batch = inspect.signature(type(self).__init__).parameters["batch_size"].default
            auto = _LAM_AT_DEFAULT_BATCH * default_batch / int(self.batch_size)
            lam1, lam2 = (auto if v is None else v for v in (self.lam1, self.lam2))
            check_coefficients(lam1=lam1, lam2=lam2, lam12=self.lam12)
            s.update(batch_size=int(self.batch_size), lam1=float(lam1), lam2=float(lam2), lam12=self.lam12)
            if self.n_epochs is None:
                # Default: 100 epochs on small data, but never more minibatch steps than 100 epochs of
                # 2,500-row halves would take — so a million rows train for ~1 epoch, not 100.
                per_epoch = math.ceil(n_half / s["batch_size"])
                budget = 100 * math.ceil(_REFERENCE_HALF / s["batch_size"])
                s["n_epochs"] = max(1, min(100, math.ceil(budget / per_epoch)))
        if not 0.0 < float(self.split_ratio) < 1.0:
            raise ValueError(f"split_ratio must be in (0, 1), got {self.split_ratio!r}")
        if self.mode == "proximal" and s["batch_size"] > n_half:
            warnings.warn(f"batch_size={s['batch_size']} exceeds the {n_half} rows of a stage half: every step "
                          "uses the whole half", UserWarning, stacklevel=4)
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
            warnings.warn(f"mode='ridge' on {n_half} rows per half needs about {gib:.1f} GiB; mode='proximal' "
                          "trains on minibatches with memory independent of n", ResourceWarning, stacklevel=4)

    # ---- input handling ---------------------------------------------------------------------
    def _collect(self, first, arrays: dict, role_columns: dict) -> Tuple[dict, dict]:
        """Arrays (econml style) or a DataFrame with role column names → key → float64 array."""
        names = {role: key for role, key, _ in self._roles}
        if role_columns.get(self._roles[0][0]) is not None:  # DataFrame mode: fit(df, outcome=...)
            required = [role for role, _, req in self._roles if req]
            parsed = roles_from_frame(first, role_columns, required)
            data = {names[r]: arr for r, (arr, _) in parsed.items()}
            columns = {names[r]: cols for r, (_, cols) in parsed.items()}
        else:
            data, columns = {}, {}
            n = None
            for role, key, req in self._roles:
                value = first if key == "Y" else arrays.get(key)
                if value is None:
                    if req:
                        raise ValueError(f"{key} ({role}) is required")
                    data[key], columns[key] = None, []
                    continue
                arr = as_2d_array(value, f"{key} ({role})", n)
                n = arr.shape[0] if n is None else n
                data[key] = arr
                columns[key] = (
                    [str(c) for c in value.columns] if isinstance(value, pd.DataFrame) else
                    [value.name] if isinstance(value, pd.Series) and value.name is not None else []
                )
        if data["Y"].shape[1] != 1:
            raise ValueError(f"outcome must be a single column, got {data['Y'].shape[1]}")
        return data, columns

    def _prediction_inputs(self, first, X=None) -> dict:
        """Inputs of predict/effect as standardized tensors keyed like batches."""
        keys = self._predict_keys
        n = None
        raw = {}
        for i, k in enumerate(keys):
            value = first if i == 0 else X
            if value is None and i > 0 and self._frame_has(first, k):
                value = first  # DataFrame mode: covariate columns beside the treatment's
            if value is None:
                raw[k] = None
            elif self._frame_has(value, k):
                raw[k] = frame_to_array(value, self.columns_[k], self._role_name(k))
            else:
                raw[k] = as_2d_array(value, f"{k} ({self._role_name(k)})", n)
            if raw[k] is not None:
                if n is not None and raw[k].shape[0] != n:
                    raise ValueError(f"{k} has {raw[k].shape[0]} rows but the treatment has {n}")
                n = raw[k].shape[0]
        out = {}
        for k in keys:
            if self.dims_.get(k) is None:
                if raw.get(k) is not None:
                    raise ValueError(f"{k} was given but the model was fitted without {self._role_name(k)}")
                continue
            if raw.get(k) is None:
                if k == "X" and self._covariates_optional_in_predict:
                    continue
                raise ValueError(f"{k} ({self._role_name(k)}) is required: the model was fitted with it")
            if raw[k].shape[1] != self.dims_[k]:
                raise ValueError(f"{k} has {raw[k].shape[1]} columns, the model was fitted with {self.dims_[k]}")
            out[k] = self._to_tensor(self.scalers_[k].transform(raw[k]))
        return out

    def _frame_has(self, value, key: str) -> bool:
        cols = self.columns_.get(key)
        return isinstance(value, pd.DataFrame) and bool(cols) and set(cols) <= set(value.columns)

    def _role_name(self, key: str) -> str:
        return next(role for role, k, _ in self._roles if k == key)

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device_)

    def _check_fitted(self):
        if not hasattr(self, "heads_"):
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

    def _fit(self, data: dict, columns: dict, validation=None):
        # Fitting twice gives the same model: nothing from an earlier fit is reused; and a fit that
        # fails (bad settings, diverging loss) leaves the estimator unfitted, not half-fitted.
        self._clear_fitted()
        try:
            return self._fit_unchecked(data, columns, validation)
        except BaseException:
            self._clear_fitted()
            raise

    def _fit_unchecked(self, data: dict, columns: dict, validation):
        device = _resolve_device(self.device)
        comm = Communicator(device)
        # With torch.distributed, each rank holds a shard; rows are numbered globally in rank order.
        sizes = comm.sizes(data["Y"].shape[0])
        n, offset, n_local = sum(sizes), sum(sizes[: comm.rank]), sizes[comm.rank]
        n1 = int(round(float(self.split_ratio) * n))
        if n1 < 2 or n - n1 < 2:
            raise ValueError(f"{n} rows are too few to split into two stages (split_ratio={self.split_ratio})")
        settings = self._settings(min(n1, n - n1))
        if self.mode == "ridge":
            self._check_full_batch_memory(max(n1, n - n1), {k: (v.shape[1] if v is not None else 0) for k, v in data.items()})
        diagnostics = self._diagnose(data)
        seed = self.random_state if self.random_state is not None else int(torch.randint(0, 2**62, (1,)))

        reduce_sum = None if not comm.active else (
            lambda a: comm.sum(torch.as_tensor(a, dtype=torch.float64, device=device)).cpu().numpy())
        scalers = {k: Standardizer(v, reduce_sum) for k, v in data.items() if v is not None}
        tensors = {
            k: torch.as_tensor(scalers[k].transform(v), dtype=torch.float32, device=device)
            for k, v in data.items()
            if v is not None
        }
        dims = {k: (v.shape[1] if v is not None else None) for k, v in data.items()}

        self.device_, self.dims_, self.scalers_, self.columns_ = device, dims, scalers, columns
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            # local row of each global position (−1 where another rank owns the row)
            rows = torch.randperm(n, generator=gen) - offset
            rows[(rows < 0) | (rows >= n_local)] = -1
            halves = (_Half(tensors, rows[:n1].to(device)), _Half(tensors, rows[n1:].to(device)))
            nets = self._build_nets(dims, device)
            heads = TwoStageHeads(settings["lam1"], settings["lam2"], settings["lam12"], self.beta1, self.beta2,
                                  reducer=comm.reduce_stats if comm.active else None)
            val = self._validation(validation)
            if val is not None:
                val_inputs = self._prediction_inputs(*val[0])
            history = self._train(nets, heads, halves, settings, gen, comm, val and (val_inputs, val[1]))

        current = TwoStageHeads(**self._coefs(heads))
        current.load_state_dict({k: v.clone() for k, v in heads.state_dict().items()})
        if self.refit_heads:
            self._refit(nets, heads, halves, settings["batch_size"])
        summaries = self._summaries(nets, halves[1].batches(4096), comm)

        self.nets_, self.heads_, self.current_heads_ = nets, heads, current
        self.summaries_ = summaries
        self.history_ = pd.DataFrame(history)
        self.n_train_, self.n_stage1_ = n, n1
        for name, value in diagnostics.items():
            setattr(self, name, value)
        self.treatment_range_ = (data[self._predict_keys[0]].min(0), data[self._predict_keys[0]].max(0))
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
            net = build_net(getattr(self, param), d_in, param, self._default_net).to(device)
            output_dim(net, d_in, param, device)  # fail early, naming the role, if it does not fit
            nets[name] = net
        return nets

    def _optimisers(self, nets: nn.ModuleDict) -> dict:
        groups: Dict[str, list] = {}
        for name, (_, _, group) in self._nets.items():
            if name in nets:
                groups.setdefault(group, []).extend(nets[name].parameters())
        return {g: torch.optim.Adam(p, lr=float(self.lr)) for g, p in groups.items() if p}

    def _train(self, nets, heads, halves, settings, gen, comm, validation) -> List[dict]:
        n1, n2 = (len(h.rows) for h in halves)
        steps = max(1, math.ceil(min(n1, n2) / settings["batch_size"]))
        opts = self._optimisers(nets)
        history = []
        bar = tqdm(range(settings["n_epochs"]), disable=not self.verbose or comm.rank != 0, desc=type(self).__name__)
        try:
            for epoch in bar:
                p1 = torch.randperm(n1, generator=gen).tensor_split(steps)
                p2 = torch.randperm(n2, generator=gen).tensor_split(steps)
                losses = np.zeros(2)
                for i1, i2 in zip(p1, p2):
                    b1, b2 = halves[0].take(i1), halves[1].take(i2)
                    losses += self._step(nets, heads, opts, b1, b2, settings, comm)
                losses = [comm.sum_float(v) / steps for v in losses]
                row = {"epoch": epoch + 1, "stage1_loss": losses[0], "stage2_loss": losses[1]}
                if validation is not None:
                    row.update(self._validation_mse(nets, heads, halves, settings, comm, *validation))
                history.append(row)
                bar.set_postfix(stage1=f"{row['stage1_loss']:.4f}", stage2=f"{row['stage2_loss']:.4f}")
        except KeyboardInterrupt:
            warnings.warn(f"training interrupted after {len(history)} epoch(s); the model is usable", stacklevel=3)
        return history

    def _step(self, nets, heads, opts, b1, b2, st, comm) -> np.ndarray:
        """One pair of minibatches through the three updates; returns (stage-1, stage-2) losses.

        Losses are normalised by the global batch sizes, so that with torch.distributed the summed
        gradients of the ranks are the gradient of the whole global batch.
        """
        m1, m2 = (int(comm.sum_float(b["Y"].shape[0])) for b in (b1, b2))
        nets.train()
        with _diverged("stage 1"):
            with torch.no_grad():
                target1 = self._stage1_target(nets, b1)
            if heads.V is None:
                with _eval_mode(nets):
                    heads.stage1_update(self._stage1_features(nets, b1), target1)
            loss1 = torch.zeros(())
            for _ in range(st["stage1_iter"]):
                loss1 = squared_loss(self._stage1_features(nets, b1), target1, heads.V, m1)
                self._descend(opts, "stage1", loss1, comm)
                with _eval_mode(nets):
                    heads.stage1_update(self._stage1_features(nets, b1), target1)
            with _eval_mode(nets):
                F1_b1 = self._stage1_features(nets, b1)
                F1_b2 = self._stage1_features(nets, b2)
                hat_b2 = F1_b2 @ heads.V.to(F1_b2.dtype)
                if heads.u is None:
                    heads.stage2_update(self._stage2_features(nets, b2, hat_b2, False), b2["Y"])

        with _diverged("covariate stage"):
            for _ in range(st["covariate_iter"] if "covariate" in opts else 0):
                loss = squared_loss(self._stage2_features(nets, b2, hat_b2, True), b2["Y"], heads.u, m2)
                self._descend(opts, "covariate", loss, comm)
                with _eval_mode(nets):
                    heads.stage2_update(self._stage2_features(nets, b2, hat_b2, False), b2["Y"])

        loss2 = torch.zeros(())
        with _diverged("stage 2"):
            for _ in range(st["stage2_iter"]):
                V = heads.stage1_refit(F1_b1, self._stage1_target(nets, b1))  # λ₁₂ refit, grad into target
                G = self._stage2_features(nets, b2, F1_b2 @ V.to(F1_b2.dtype), False)
                loss2 = squared_loss(G, b2["Y"], heads.u, m2)
                self._descend(opts, "stage2", loss2, comm)
                with _eval_mode(nets):
                    V = heads.stage1_refit(F1_b1, self._stage1_target(nets, b1))
                    heads.stage2_update(self._stage2_features(nets, b2, F1_b2 @ V.to(F1_b2.dtype), False), b2["Y"])
        return np.array([loss1.item(), loss2.item()])

    @staticmethod
    def _descend(opts, group, loss, comm):
        if not torch.isfinite(loss):
            raise NonFiniteError(f"the loss became {loss.item()}")
        if group not in opts:
            return
        opt = opts[group]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        comm.sum_gradients(p for g in opt.param_groups for p in g["params"])
        opt.step()

    # ---- full-data refit by streaming (DESIGN §2) -----------------------------------------------
    def _refit(self, nets, heads, halves, batch_size):
        size = max(batch_size, 1024)
        with _eval_mode(nets):
            heads.refit_stage1(
                (self._stage1_features(nets, b), self._stage1_target(nets, b)) for b in halves[0].batches(size)
            )
            V = heads.V
            heads.refit_stage2(
                (self._stage2_features(nets, b, self._stage1_features(nets, b) @ V.float(), False), b["Y"])
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
    def _predict_std(self, nets, heads, summaries, inputs: dict, size: int = 8192) -> np.ndarray:
        n = next(iter(inputs.values())).shape[0]
        out = []
        with _eval_mode(nets):
            for lo in range(0, n, size):
                b = {k: v[lo : lo + size] for k, v in inputs.items()}
                G = self._predict_features(nets, b, summaries)
                out.append((G @ heads.u.to(G.dtype)).cpu().numpy().astype(np.float64))
        pred = np.concatenate(out)[:, 0]
        return self.scalers_["Y"].inverse(pred[:, None])[:, 0]

    def _predict(self, first, X=None, heads: str = "fitted") -> np.ndarray:
        self._check_fitted()
        inputs = self._prediction_inputs(first, X)
        return self._predict_std(self.nets_, self._heads(heads), self.summaries_, inputs)

    def _heads(self, heads: str) -> TwoStageHeads:
        if heads not in ("fitted", "current"):
            raise ValueError(f"heads must be 'fitted' or 'current', got {heads!r}")
        return self.heads_ if heads == "fitted" else self.current_heads_

    def effect(self, X=None, *, T0, T1) -> np.ndarray:
        """h(T1, X) − h(T0, X) per row (econml's ``effect``); scalar treatments broadcast over X's rows."""
        self._check_fitted()
        n = None if X is None else as_2d_array(X, "X (covariates)").shape[0]
        t0, t1 = (self._broadcast_treatment(t, n, name) for t, name in ((T0, "T0"), (T1, "T1")))
        if t0.shape != t1.shape:
            raise ValueError(f"T0 and T1 have different shapes {t0.shape} and {t1.shape}")
        return self._predict(t1, X) - self._predict(t0, X)

    def _broadcast_treatment(self, t, n, name) -> np.ndarray:
        arr = as_2d_array(np.atleast_1d(np.asarray(t, dtype=np.float64)), name)
        d = self.dims_[self._predict_keys[0]]
        if arr.size == d and n is not None:
            arr = np.repeat(arr.reshape(1, d), n, axis=0)
        return arr

    def dose_response(self, treatment_grid, X=None) -> pd.DataFrame:
        """Estimated structural function on a grid of treatment values, as a tidy DataFrame.

        With ``X`` (covariate rows), each grid value's estimate is the average of h(t, x) over the
        rows of X: the average dose-response over that covariate distribution.

        Returns
        -------
        DataFrame with the treatment column (named as at fit time, else ``"treatment"``; for a
        multi-column treatment ``"grid_index"``) and ``"estimate"``.
        """
        self._check_fitted()
        key = self._predict_keys[0]
        d = self.dims_[key]
        grid = np.asarray(treatment_grid, dtype=np.float64)
        grid = grid.reshape(-1, d) if d > 1 or grid.ndim <= 1 else grid
        grid = as_2d_array(grid, "treatment_grid")
        if grid.shape[1] != d:
            raise ValueError(f"treatment_grid has {grid.shape[1]} columns, the treatment has {d}")
        lo, hi = self.treatment_range_
        if d == 1 and ((grid < lo).any() or (grid > hi).any()):
            warnings.warn(
                f"treatment_grid extends outside the training range [{lo[0]:.4g}, {hi[0]:.4g}]: "
                "the estimate there is an extrapolation",
                UserWarning,
                stacklevel=2,
            )
        m = grid.shape[0]
        if X is None:
            if self.dims_.get("X") is not None and not self._covariates_optional_in_predict:
                raise ValueError("X is required: the model was fitted with covariates; pass the rows to average over")
            est = self._predict(grid)
        else:
            # every grid value paired with every covariate row, then averaged over the rows
            n_x = len(X)
            X_rep = (pd.concat([X] * m, ignore_index=True) if isinstance(X, pd.DataFrame)
                     else np.tile(as_2d_array(X, "X (covariates)"), (m, 1)))
            est = self._predict(np.repeat(grid, n_x, axis=0), X_rep).reshape(m, n_x).mean(axis=1)
        name = self.columns_[key][0] if d == 1 and self.columns_[key] else ("treatment" if d == 1 else "grid_index")
        values = grid[:, 0] if d == 1 else np.arange(m)
        return pd.DataFrame({name: values, "estimate": est})

    # ---- persistence ----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the fitted estimator to ``path`` atomically (temporary file, then rename)."""
        self._check_fitted()
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
