"""Closed-form last-layer regression: a neural backbone trained by gradient steps, its linear head solved.

Model f(x) = [φ_θ(x), 1] W with a backbone φ_θ (any ``torch.nn.Module``) and a linear head W, under the
mean-normalised squared loss with ridge β (DESIGN §2):

    L(W, θ) = (1/n) ||Y − F W||² + β ||W||²,        F = [φ_θ(X), 1].

Per minibatch B (the proximal mode, the default):

    1. backbone step on (1/n_B) ||Y_B − F_B W_prev||² with the head W_prev frozen (envelope property:
       no gradient through the solve is needed);
    2. recompute F_B with the stepped backbone (eval mode, no grad) and take the proximal head
       W ← (F_BᵀF_B/n_B + (λ + β) I)⁻¹ (F_BᵀY_B/n_B + λ W_prev).

The first head is the ridge head on the first batch. λ = 0 is the per-batch ridge head (``head="ridge"``);
``head="full"`` solves the head on the whole training set before every backbone step (streamed
sufficient statistics, memory O(d²)); ``head="sgd"``/``"adam"`` train an ordinary linear head by
gradient steps, for comparison.

Backbones whose features come out as (batch, positions, d) — neural operators, whose last layer is a
1×1 projection applied at every grid point — share one head across positions: the closed form pools all
(sample, position) rows, so y is then (n, positions) or (n, positions, k).
"""

from __future__ import annotations

import copy
import math
import numbers
import time
import warnings
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score
from torch import nn

from ._data import Standardizer, as_2d_array
from ._modes import eval_mode as _eval_mode
from ._modes import resolve_device as _resolve_device
from ._persist import load_estimator, register_estimator, save_estimator
from .heads import SufficientStats, add_intercept, check_coefficients, proximal_head, ridge_head
from .nets import mlp

__all__ = ["LastLayerRegressor", "pooled_rows"]

_HEADS = ("proximal", "ridge", "full", "sgd", "adam")
_OPTIMIZERS = ("sgd", "adam")
_DTYPES = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32,
           torch.float64: torch.float64}
_CHUNK = 4096  # rows per forward pass in prediction and streamed refits


def pooled_rows(features: torch.Tensor, Y: Optional[torch.Tensor] = None):
    """Pool (sample, position) rows and append the intercept: (n, d) or (n, P, d) → (n·P, d + 1).

    ``Y`` of shape (n, k) or (n, P, k) is reshaped alike to (n·P, k). One head W then serves every
    position: F W on the pooled rows is the 1×1 projection applied at each grid point.
    """
    if features.ndim not in (2, 3):
        raise ValueError(f"the backbone must return (n, d) or (n, positions, d) features, got {tuple(features.shape)}")
    F = add_intercept(features.reshape(-1, features.shape[-1]))
    if Y is None:
        return F
    return F, Y.reshape(F.shape[0], -1)


def _as_array(x, name: str, min_ndim: int = 1) -> np.ndarray:
    """Validated float64 copy that keeps the trailing shape of arrays with more than two dimensions."""
    if x is None:
        raise ValueError(f"{name} is required")
    if hasattr(x, "toarray") or type(x).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is a sparse matrix; LastLayerRegressor needs dense input ({name}.toarray())")
    if not isinstance(x, (pd.DataFrame, pd.Series)) and not hasattr(x, "detach"):
        try:
            raw = np.asarray(x)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular numeric array: {exc}") from None
        if raw.dtype.kind == "c":
            raise ValueError(f"{name}: Complex data not supported")
        try:
            x = raw.astype(np.float64)
        except TypeError as exc:  # e.g. a dict inside an object array
            raise TypeError(f"{name} must be numeric: {exc}") from None
        except ValueError as exc:  # e.g. strings
            raise ValueError(f"{name} must be numeric; encode non-numeric values as numbers first ({exc})") from None
    shape = np.shape(x) if not isinstance(x, (pd.DataFrame, pd.Series)) else x.shape
    if len(shape) < min_ndim:
        raise ValueError(
            f"{name} must be at least {min_ndim}-D, got shape {tuple(shape)}. Reshape your data, e.g. with "
            f"{name}.reshape(-1, 1) for a single feature or {name}.reshape(1, -1) for a single sample"
        )
    arr = as_2d_array(x, name)
    if len(shape) > 2:
        arr = arr.reshape(shape)
    if len(shape) >= 2 and int(np.prod(shape[1:])) == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is required.")
    return arr


def _ndim(y) -> int:
    if isinstance(y, (pd.DataFrame, pd.Series)):
        return y.ndim
    return np.asarray(y.detach().cpu() if hasattr(y, "detach") else y).ndim


class LastLayerRegressor(RegressorMixin, BaseEstimator):
    """Neural regression whose last (linear) layer is solved in closed form.

    Parameters
    ----------
    backbone : torch.nn.Module, callable or None, default=None
        Feature network mapping a batch of inputs to (batch, d) features, or to (batch, positions, d)
        for a head shared across positions. A module is deep-copied at ``fit`` (the user's stays
        untouched); a callable ``f(n_features_in) -> Module`` is called at ``fit``. ``None``: a ReLU MLP
        ``hidden`` → ``n_features`` on the flattened input.
    head : {"proximal", "ridge", "full", "sgd", "adam"}, default="proximal"
        How the head W is trained: proximal closed form per batch (λ, β); per-batch ridge closed form;
        full-data closed form before every backbone step (streamed statistics, deterministic given the
        batches); or an ordinary trainable linear head updated by SGD or Adam with ``head_lr``.
    lam : float, default=0.1
        Proximal coefficient λ ≥ 0 (weight of the previous head against the current batch).
    beta : float, default=1e-3
        Ridge coefficient β ≥ 0 of the head, on standardized targets.
    optimizer : {"sgd", "adam"}, default="sgd"
        Optimiser of the backbone (SGD with ``momentum``, or Adam).
    lr : float, default=0.01
        Backbone learning rate.
    momentum : float, default=0.9
        Momentum of the SGD optimisers (backbone and, with ``head="sgd"``, head).
    head_lr : float or None, default=None
        Learning rate of the ``"sgd"``/``"adam"`` head; ``None`` uses ``lr``.
    batch_size : int or None, default=64
        Minibatch size; ``None`` uses all rows (full-batch gradient steps).
    n_epochs : int, default=50
        Passes over the training rows (ignored when ``max_steps`` is given).
    max_steps : int or None, default=None
        Total number of backbone steps; overrides ``n_epochs``.
    log_every : int or None, default=None
        Record ``history_`` every this many steps; ``None`` records once per epoch.
    refit_head : bool, default=True
        After training, re-solve the head on all training rows (streamed sufficient statistics,
        β only). The head as trained is kept in ``current_head_``.
    hidden : tuple of int, default=(64, 64)
        Hidden widths of the default MLP backbone.
    n_features : int, default=32
        Feature dimension d of the default MLP backbone.
    standardize : bool, default=True
        Centre and scale X (per column; one global scale for inputs with over 256 columns) and y (per
        output, pooled over positions); predictions are returned in the original units.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the backbone. Head statistics and solves are always float64.
    device : {"cpu", "cuda", "auto"}, default="cpu"
    random_state : int or None, default=None
        Seed of the default backbone's initialisation, the head initialisation and the batch order.
        On CPU a fixed seed gives bit-identical fits; the global torch RNG is left untouched.
    verbose : bool, default=False
        Print a line per history record.

    Attributes
    ----------
    backbone_ : torch.nn.Module
    head_ : torch.Tensor of shape (d + 1, k), float64
        Head used by ``predict`` (the full-data refit when ``refit_head``); last row is the intercept.
    current_head_ : torch.Tensor of shape (d + 1, k)
        Head as trained, before any refit.
    history_ : pandas.DataFrame
        Columns ``step``, ``epoch``, ``time_s`` (training seconds, evaluation excluded), ``train_loss``
        (mean of the minibatch losses since the last record, squared error on standardized targets),
        and with ``fit(eval_set=...)`` ``val_loss`` (same quantity on the evaluation set, current head)
        and ``val_metric`` (when ``eval_metric`` is given, in original units).
    n_features_in_ : int
        Number of input columns (product of the trailing dimensions for > 2-D inputs).
    n_steps_ : int

    Notes
    -----
    Loss (mean-normalised, ridge β):  L(W, θ) = (1/n)||Y − [φ_θ(X), 1] W||² + β||W||².
    Closed form:  W* = (FᵀF/n + β I)⁻¹ FᵀY/n.  Proximal:  (F_BᵀF_B/n_B + (λ+β) I)⁻¹ (F_BᵀY_B/n_B + λ W_prev).
    The backbone's gradient at the closed-form head equals its gradient with the head frozen (envelope
    property), so backbone steps never differentiate through a solve. λ is the Kalman-filter ratio
    σ²/(n_B s²) of a random-walk head, so a good λ shrinks roughly like 1/batch size.

    Examples
    --------
    >>> import numpy as np
    >>> from deepcausal.regression import LastLayerRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3)); y = np.sin(X[:, 0]) + X[:, 1] ** 2
    >>> model = LastLayerRegressor(n_epochs=20, random_state=0).fit(X, y)
    >>> model.predict(X[:2]).shape
    (2,)
    """

    def __init__(
        self,
        *,
        backbone=None,
        head="proximal",
        lam=0.1,
        beta=1e-3,
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        head_lr=None,
        batch_size=64,
        n_epochs=50,
        max_steps=None,
        log_every=None,
        refit_head=True,
        hidden=(64, 64),
        n_features=32,
        standardize=True,
        dtype="float32",
        device="cpu",
        random_state=None,
        verbose=False,
    ):
        self.backbone = backbone
        self.head = head
        self.lam = lam
        self.beta = beta
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.head_lr = head_lr
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.max_steps = max_steps
        self.log_every = log_every
        self.refit_head = refit_head
        self.hidden = hidden
        self.n_features = n_features
        self.standardize = standardize
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ---- parameters ---------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.head not in _HEADS:
            raise ValueError(f"head must be one of {_HEADS}, got {self.head!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        check_coefficients(lam=self.lam, beta=self.beta, lr=self.lr, momentum=self.momentum)
        if self.head_lr is not None:
            check_coefficients(head_lr=self.head_lr)
        for name, allow_none in (("batch_size", True), ("n_epochs", False), ("max_steps", True),
                                 ("log_every", True), ("n_features", False)):
            v = getattr(self, name)
            if v is None and allow_none:
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {v!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not (self.backbone is None or isinstance(self.backbone, nn.Module) or callable(self.backbone)):
            raise ValueError(f"backbone must be None, a torch.nn.Module or a callable, got {type(self.backbone).__name__}")

    # ---- input handling -------------------------------------------------------------------------
    def _validate_X(self, X, name="X") -> np.ndarray:
        arr = _as_array(X, name, min_ndim=2)
        if hasattr(self, "input_shape_"):
            if arr.ndim == 2 and len(self.input_shape_) > 1 and arr.shape[1] == self.n_features_in_:
                arr = arr.reshape((arr.shape[0], *self.input_shape_))
            if tuple(arr.shape[1:]) != tuple(self.input_shape_):
                n_in = int(np.prod(arr.shape[1:]))
                raise ValueError(
                    f"{name} has {n_in} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input (shape {tuple(arr.shape[1:])}, fitted on "
                    f"{tuple(self.input_shape_)})"
                )
        return arr

    def _validate_y(self, y, n: int, pooled: Optional[int], name="y") -> np.ndarray:
        """y → (n, P, k) for position features or (n, k) otherwise; errors name ``name``."""
        if y is None:
            raise ValueError(f"{name} is None: {type(self).__name__} requires y to be passed, but the target y is None")
        arr = _as_array(y, name)
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n}")
        if pooled is None:
            if arr.ndim != 2:
                raise ValueError(f"{name} must be (n,) or (n, k) for (n, d) features, got shape {arr.shape}")
            return arr
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[1] != pooled:
            raise ValueError(
                f"{name} must be (n, {pooled}) or (n, {pooled}, k): the backbone returns features at "
                f"{pooled} positions, got shape {arr.shape}"
            )
        return arr

    def _X_tensor(self, X: np.ndarray) -> torch.Tensor:
        flat = X.reshape(X.shape[0], -1)
        if self.x_scaler_ is not None:
            flat = self.x_scaler_.transform(flat)
        shape = (X.shape[0], *self.input_shape_) if self.backbone is not None else flat.shape
        return torch.as_tensor(flat.reshape(shape), dtype=self.dtype_, device=self.device_)

    # ---- fit --------------------------------------------------------------------------------------
    def fit(self, X, y, *, eval_set=None, eval_metric: Optional[Callable] = None):
        """Train the backbone and head on (X, y); returns self.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...) for a user backbone
        y : array-like of shape (n_samples,) or (n_samples, k); (n_samples, positions[, k]) when the
            backbone returns per-position features
        eval_set : (X_val, y_val), optional
            Recorded in ``history_`` as ``val_loss`` (and ``val_metric``) at every history record.
        eval_metric : callable(y_true, y_pred) -> float, optional
            Metric on ``eval_set`` in original units (e.g. relative L2 error).
        """
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)  # refitting never reuses an earlier fit
        try:
            return self._fit(X, y, eval_set, eval_metric)
        except BaseException:
            for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
                delattr(self, name)
            raise

    def _fit(self, X, y, eval_set, eval_metric):
        self._check_params()
        X = _as_array(X, "X", min_ndim=2)
        n = X.shape[0]
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        self.device_ = _resolve_device(self.device)
        self.dtype_ = _DTYPES[self.dtype]
        self.input_shape_ = tuple(X.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.x_scaler_ = Standardizer(X.reshape(n, -1)) if self.standardize else None
        seed = self.random_state if self.random_state is not None else int(np.random.randint(0, 2**31 - 1))

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            backbone = self._build_backbone().to(device=self.device_, dtype=self.dtype_)
            Xt = self._X_tensor(X)
            with _eval_mode(backbone):
                try:
                    probe = backbone(Xt[:2])
                except Exception as exc:
                    raise ValueError(f"the backbone fails on X of shape (n, *{self.input_shape_}): {exc}") from exc
            if not isinstance(probe, torch.Tensor) or probe.ndim not in (2, 3):
                shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
                raise ValueError(f"the backbone must return (n, d) or (n, positions, d) features, got {shape}")
            self.positions_ = int(probe.shape[1]) if probe.ndim == 3 else None
            Y = self._validate_y(y, n, self.positions_)
            self.y_ndim_ = _ndim(y)
            axes = tuple(range(Y.ndim - 1))
            self.y_mean_ = Y.mean(axis=axes) if self.standardize else np.zeros(Y.shape[-1])
            scale = Y.std(axis=axes) if self.standardize else np.ones(Y.shape[-1])
            self.y_scale_ = np.where(scale > 1e-12, scale, 1.0)
            Yt = torch.as_tensor((Y - self.y_mean_) / self.y_scale_, dtype=self.dtype_, device=self.device_)
            self.n_outputs_ = Y.shape[-1]
            val = None
            if eval_set is not None:
                if not isinstance(eval_set, (tuple, list)) or len(eval_set) != 2:
                    raise ValueError("eval_set must be a pair (X_val, y_val)")
                Xv = self._validate_X(eval_set[0], "eval_set X")
                Yv = self._validate_y(eval_set[1], Xv.shape[0], self.positions_, "eval_set y")
                val = (self._X_tensor(Xv), Yv, eval_set[1])
            history, W, steps = self._train(backbone, Xt, Yt, gen, val, eval_metric)

        self.backbone_ = backbone
        self.current_head_ = W.detach().to(torch.float64).clone()
        self.head_ = self._full_head(backbone, Xt, Yt) if self.refit_head else self.current_head_
        self.history_ = pd.DataFrame(history)
        self.n_steps_ = steps
        return self

    def _build_backbone(self) -> nn.Module:
        if self.backbone is None:
            return mlp(self.n_features_in_, tuple(self.hidden), int(self.n_features))
        if isinstance(self.backbone, nn.Module):
            return copy.deepcopy(self.backbone)
        net = self.backbone(self.n_features_in_)
        if not isinstance(net, nn.Module):
            raise ValueError(f"backbone: the factory must return a torch.nn.Module, got {type(net).__name__}")
        return net

    def _optimiser(self, params, kind: str, lr: float):
        if kind == "adam":
            return torch.optim.Adam(params, lr=lr)
        return torch.optim.SGD(params, lr=lr, momentum=float(self.momentum))

    def _full_head(self, backbone, Xt, Yt) -> torch.Tensor:
        """Closed-form head on all rows by streaming the sufficient statistics (memory O(d²))."""
        stats = None
        with _eval_mode(backbone):
            for xb, yb in zip(Xt.split(_CHUNK), Yt.split(_CHUNK)):
                F, Yb = pooled_rows(backbone(xb), yb)
                if stats is None:
                    stats = SufficientStats.empty(F.shape[1], Yb.shape[1], F.device)
                stats.update(F, Yb)
        return stats.solve(float(self.beta))

    def _train(self, backbone, Xt, Yt, gen, val, eval_metric):
        n = Xt.shape[0]
        B = n if self.batch_size is None else min(int(self.batch_size), n)
        per_epoch = math.ceil(n / B)
        total = int(self.max_steps) if self.max_steps is not None else int(self.n_epochs) * per_epoch
        log_every = int(self.log_every) if self.log_every is not None else per_epoch
        k = Yt.shape[-1]
        beta = float(self.beta)
        opt = self._optimiser(backbone.parameters(), self.optimizer, float(self.lr))
        trainable = self.head in ("sgd", "adam")
        W = None
        if trainable:  # nn.Linear's initialisation: U(−1/√d, 1/√d)
            with _eval_mode(backbone):
                d = pooled_rows(backbone(Xt[:1])).shape[1]
            bound = 1.0 / math.sqrt(d - 1)
            W = ((torch.rand(d, k, generator=gen, dtype=torch.float64) * 2 - 1) * bound).to(self.device_, self.dtype_)
            W.requires_grad_(True)
            head_lr = float(self.lr if self.head_lr is None else self.head_lr)
            head_opt = self._optimiser([W], self.head, head_lr)

        history, window, step, epoch, clock = [], [], 0, 0, 0.0
        try:
            while step < total:
                epoch += 1
                for idx in torch.randperm(n, generator=gen).to(self.device_).split(B):
                    t0 = time.perf_counter()
                    xb, yb = Xt[idx], Yt[idx]
                    if W is None:  # first head: ridge on the first batch, or on all rows
                        W = self._full_head(backbone, Xt, Yt) if self.head == "full" else self._batch_head(backbone, xb, yb, None)
                    backbone.train()
                    F, Yb = pooled_rows(backbone(xb), yb)
                    Wd = W if trainable else W.to(F.dtype)
                    loss = ((F @ Wd - Yb) ** 2).mean()
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"the training loss became {float(loss)} at step {step + 1}: training diverged. "
                            "Try a smaller lr or a larger beta/lam."
                        )
                    objective = loss + beta * (W**2).sum() / k if trainable else loss
                    opt.zero_grad()
                    if trainable:
                        head_opt.zero_grad()
                    objective.backward()
                    opt.step()
                    if trainable:
                        head_opt.step()
                    elif self.head == "full":
                        W = self._full_head(backbone, Xt, Yt)
                    else:
                        W = self._batch_head(backbone, xb, yb, W)
                    clock += time.perf_counter() - t0
                    window.append(loss.item())
                    step += 1
                    if step % log_every == 0 or step == total:
                        row = {"step": step, "epoch": epoch, "time_s": clock, "train_loss": float(np.mean(window))}
                        window = []
                        if val is not None:
                            row.update(self._evaluate(backbone, W.detach().to(torch.float64), val, eval_metric))
                        history.append(row)
                        if self.verbose:
                            print(", ".join(f"{k_}={v:.5g}" if isinstance(v, float) else f"{k_}={v}"
                                            for k_, v in row.items()))
                    if step >= total:
                        break
        except KeyboardInterrupt:
            if W is None:
                raise
            warnings.warn(f"training interrupted after {step} step(s); the model is usable", stacklevel=3)
        return history, W, step

    def _batch_head(self, backbone, xb, yb, W_prev):
        """Proximal head on the batch (ridge when there is no previous head or λ = 0), eval-mode features."""
        with _eval_mode(backbone):
            F, Yb = pooled_rows(backbone(xb), yb)
        if W_prev is None or self.head == "ridge" or float(self.lam) == 0:
            return ridge_head(F, Yb, float(self.beta))
        return proximal_head(F, Yb, W_prev, float(self.lam), float(self.beta))

    def _evaluate(self, backbone, W, val, eval_metric) -> dict:
        Xv, Yv, y_raw = val
        pred = self._predict_std(backbone, W, Xv)  # standardized units, shape like Yv
        Yv_std = (Yv - self.y_mean_) / self.y_scale_
        row = {"val_loss": float(((pred - Yv_std) ** 2).mean())}
        if eval_metric is not None:
            out = self._to_output(pred, like_ndim=_ndim(y_raw))
            row["val_metric"] = float(eval_metric(np.asarray(y_raw, dtype=np.float64), out))
        return row

    # ---- prediction ---------------------------------------------------------------------------
    def _predict_std(self, backbone, W, Xt) -> np.ndarray:
        outs = []
        with _eval_mode(backbone):
            for xb in Xt.split(_CHUNK):
                feats = backbone(xb)
                F = pooled_rows(feats)
                pred = F.to(torch.float64) @ W
                shape = (xb.shape[0], feats.shape[1], -1) if feats.ndim == 3 else (xb.shape[0], -1)
                outs.append(pred.reshape(shape).cpu().numpy())
        return np.concatenate(outs, axis=0)

    def _to_output(self, pred_std: np.ndarray, like_ndim: int) -> np.ndarray:
        out = pred_std * self.y_scale_ + self.y_mean_
        if out.shape[-1] == 1 and like_ndim == out.ndim - 1:
            out = out[..., 0]
        return out

    def _check_fitted(self):
        if not hasattr(self, "head_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "head_")

    def predict(self, X, *, head: str = "refit") -> np.ndarray:
        """Predictions in the units of y, shaped like y: (n,), (n, k), (n, P) or (n, P, k).

        ``head="current"`` uses the head as trained instead of the full-data refit.
        """
        self._check_fitted()
        if head not in ("refit", "current"):
            raise ValueError(f"head must be 'refit' or 'current', got {head!r}")
        Xt = self._X_tensor(self._validate_X(X))
        W = self.head_ if head == "refit" else self.current_head_
        return self._to_output(self._predict_std(self.backbone_, W, Xt), like_ndim=self.y_ndim_)

    def features(self, X) -> np.ndarray:
        """Backbone features φ(X) (without the intercept): (n, d) or (n, positions, d)."""
        self._check_fitted()
        Xt = self._X_tensor(self._validate_X(X))
        with _eval_mode(self.backbone_):
            return np.concatenate([self.backbone_(xb).to(torch.float64).cpu().numpy() for xb in Xt.split(_CHUNK)])

    def score(self, X, y, sample_weight=None) -> float:
        """R² of the predictions (:func:`sklearn.metrics.r2_score`), averaged uniformly over output columns.

        Multi-output and per-position targets are flattened to (n_samples, positions × outputs) columns;
        ``sample_weight`` of shape (n_samples,) weights the rows.
        """
        pred = self.predict(X)
        Y = _as_array(y, "y")
        if Y.shape[0] != pred.shape[0]:
            raise ValueError(f"y has {Y.shape[0]} rows but X has {pred.shape[0]}")
        n = Y.shape[0]
        return float(r2_score(Y.reshape(n, -1), pred.reshape(n, -1), sample_weight=sample_weight,
                              multioutput="uniform_average"))

    # ---- scikit-learn tags ------------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.non_deterministic = self.random_state is None
        return tags

    # ---- persistence ------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the fitted regressor to ``path`` atomically (temporary file, then rename)."""
        self._check_fitted()
        save_estimator(self, path)

    @classmethod
    def load(cls, path, device: str = "cpu", *, nets=None, trusted: bool = False) -> "LastLayerRegressor":
        """Read a regressor written by :meth:`save`, onto ``device`` (CPU by default).

        Loading never runs code from the file: the default backbone is rebuilt and given the saved
        weights. A user-supplied ``backbone`` must be passed again as ``nets={"backbone": module}``;
        ``trusted=True`` instead unpickles what the file holds (the backbone object, or a file of the
        first format), **which can run arbitrary code**: only for files you trust. See
        :meth:`deepcausal.DFIV.load`.
        """
        return load_estimator(cls, path, device=_resolve_device(device), nets=nets, trusted=trusted)

    def _rebuild_modules(self, states: dict, device) -> dict:
        """The backbone, built as at fit (from the parameters and ``n_features_in_``), with the saved weights."""
        backbone = self._build_backbone().to(device=device, dtype=self.dtype_)
        backbone.load_state_dict(states["backbone_"])
        return {"backbone_": backbone}


register_estimator(LastLayerRegressor, lambda est, states, device: est._rebuild_modules(states, device))
