"""Closed-form and proximal solves for linear heads on learned features.

A model f(x) = F W with features F = [φ_θ(x), 1] (n × d, the intercept column appended by the
caller through :func:`add_intercept`) and a linear head W (d × k) has, under the mean-normalised
squared loss with ridge β,

    L(W) = (1/n) ||Y − F W||² + β ||W||²,

the closed-form optimum  W* = (FᵀF/n + β I)⁻¹ (FᵀY/n).

On a minibatch, the *proximal* head keeps the previous head W_prev close:

    W_new = argmin_W (1/n) ||Y − F W||² + λ ||W − W_prev||² + β ||W||²
          = (FᵀF/n + (λ + β) I)⁻¹ (FᵀY/n + λ W_prev).

Both depend on the data only through the sufficient statistics (FᵀF, FᵀY, n), so every solve here
goes through :class:`SufficientStats`: a minibatch gives one set, a full-data refit streams and adds
them up (memory O(d²), never O(n·d)), and a distributed run all-reduces them before the solve.

Numerics: the statistics are accumulated in float64; the d × d system is solved by Cholesky (a small
jitter is added and the factorisation retried if it fails), with ``lstsq`` as the last resort
(with a warning); no explicit inverse is ever formed. The solves are differentiable with respect to
their inputs, which the two-stage solver uses for the λ₁₂ refit (gradients into the *targets* Y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ._warnings import warn

__all__ = [
    "SufficientStats",
    "GramCache",
    "SPDSystem",
    "factor_spd",
    "NonFiniteError",
    "add_intercept",
    "outer_features",
    "solve_spd",
    "ridge_head",
    "proximal_head",
    "check_coefficients",
]

# Relative jitter ladder tried when Cholesky fails: jitter = scale · mean(diag(A)).
_JITTERS = (1e-10, 1e-8, 1e-6)


class NonFiniteError(ValueError):
    """A head solve was given NaN or infinite values (bad data, or training that diverged)."""


def _check_matrix(name: str, x: torch.Tensor, stacked: bool = False) -> None:
    """A 2-D tensor, or with ``stacked`` also a 3-D one: a stack of matrices (one per ensemble member)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 and not (stacked and x.ndim == 3):
        raise ValueError(f"{name} must be 2-D{' or 3-D' if stacked else ''}, got shape {tuple(x.shape)}")


def _diagonal(A: torch.Tensor) -> torch.Tensor:
    """The diagonal of a matrix, or of each matrix of a stack (a view)."""
    return A.diagonal(dim1=-2, dim2=-1)


def check_coefficients(**coefficients: float) -> None:
    """Raise ``ValueError`` unless every named coefficient is a finite number ≥ 0."""
    for name, value in coefficients.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def add_intercept(x: torch.Tensor) -> torch.Tensor:
    """Append a column of ones: (..., n, d) → (..., n, d + 1)."""
    return torch.cat([x, x.new_ones(*x.shape[:-1], 1)], dim=-1)


def outer_features(a: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Row-wise outer product of intercept-augmented features, flattened.

    Row i is vec([a_i, 1] ⊗ [b_i, 1]) with the index of ``a`` varying slowest:
    (n, p), (n, q) → (n, (p + 1)(q + 1)). Without ``b`` this is just [a, 1]. Leading dimensions
    broadcast, e.g. (B, n, p) draws of ``a`` with one (n, q) ``b`` give (B, n, (p + 1)(q + 1)).
    """
    a1 = add_intercept(a)
    if b is None:
        return a1
    if b.shape[-2] != a.shape[-2]:
        raise ValueError(f"outer_features: a has {a.shape[-2]} rows but b has {b.shape[-2]}")
    b1 = add_intercept(b)
    out = a1.unsqueeze(-1) * b1.unsqueeze(-2)
    return out.reshape(*out.shape[:-2], -1)


@dataclass
class SufficientStats:
    """Sufficient statistics of a least-squares head: Σ FᵀF (d × d), Σ FᵀY (d × k) and n, in float64.

    Build from one batch with :meth:`from_batch`, add batches with :meth:`update` (streaming),
    and solve with :meth:`solve`. ``FtY`` keeps the autograd graph of Y when Y requires grad.
    A batch may carry a leading member dimension, F (K, n, d) and Y (K, n, k): K independent heads
    solved at once (members trained as one stack, :mod:`deepcausal._stacked`); FtF is then (K, d, d).
    """

    FtF: torch.Tensor
    FtY: torch.Tensor
    n: int
    low_precision: bool = False  # the products were formed in float32 (a solve that needs jitter warns)

    @classmethod
    def from_batch(cls, F: torch.Tensor, Y: torch.Tensor, gram: Optional[torch.Tensor] = None) -> "SufficientStats":
        """One batch's statistics. The products FᵀF, FᵀY are formed in the inputs' precision — float32
        features give float32 products, about twice as fast — and stored in float64, so sums over
        batches and the solve are float64 (DESIGN §7). Float64 inputs keep the exact float64 path.

        ``gram``: FᵀF of these same features, formed earlier by this method (see :class:`GramCache`);
        it is used instead of forming the product again."""
        _check_matrix("F", F, stacked=True)
        _check_matrix("Y", Y, stacked=True)
        if F.shape[:-1] != Y.shape[:-1]:
            raise ValueError(f"F has {F.shape[-2]} rows but Y has {Y.shape[-2]}" if F.ndim == Y.ndim else
                             f"F has shape {tuple(F.shape)} but Y {tuple(Y.shape)}")
        low = F.dtype != torch.float64 or Y.dtype != torch.float64
        if low:
            dtype = torch.promote_types(F.dtype, Y.dtype)
            F, Y = F.to(dtype), Y.to(dtype)
            FtF = (F.mT @ F).to(torch.float64) if gram is None else gram
            FtY = (F.mT @ Y).to(torch.float64)
        else:
            FtF, FtY = (F.mT @ F if gram is None else gram), F.mT @ Y
        # Finiteness is checked on the d × d statistics, not the n × d inputs (cheaper, same verdict):
        # a NaN or ±inf in row i of F makes the diagonal of FᵀF non-finite, and then one in Y (times
        # anything, even 0) makes FᵀY non-finite. One reduction over both (a non-finite entry makes the
        # sum non-finite) costs one check per solve; which input it was is worked out only on failure.
        if not math.isfinite(float(_diagonal(FtF.detach()).sum() + FtY.detach().sum())):
            if not torch.isfinite(_diagonal(FtF.detach())).all():
                raise NonFiniteError("F contains NaN or infinite values (or its Gram matrix overflows)")
            if not torch.isfinite(FtY.detach()).all():
                raise NonFiniteError("Y contains NaN or infinite values")
            raise NonFiniteError("the sufficient statistics overflow float64")
        return cls(FtF, FtY, int(F.shape[-2]), low)

    @classmethod
    def empty(cls, d: int, k: int, device=None) -> "SufficientStats":
        z = dict(dtype=torch.float64, device=device)
        return cls(torch.zeros(d, d, **z), torch.zeros(d, k, **z), 0)

    def update(self, F: torch.Tensor, Y: torch.Tensor) -> "SufficientStats":
        """Add one batch in place (no autograd graph is kept); returns self."""
        batch = SufficientStats.from_batch(F.detach(), Y.detach())
        if batch.FtF.shape != self.FtF.shape or batch.FtY.shape != self.FtY.shape:
            raise ValueError(
                f"batch statistics of shape {tuple(batch.FtY.shape)} do not match the "
                f"accumulator's {tuple(self.FtY.shape)}"
            )
        self.FtF += batch.FtF
        self.FtY += batch.FtY
        self.n += batch.n
        self.low_precision = self.low_precision or batch.low_precision
        return self

    def reduced(self, reducer: Optional[Callable[["SufficientStats"], "SufficientStats"]]):
        """Apply a reducer (e.g. a torch.distributed all-reduce) or return self unchanged."""
        return self if reducer is None else reducer(self)

    def solve(self, beta: float, lam: float = 0.0, W_prev: Optional[torch.Tensor] = None,
              factors: Optional[dict] = None):
        """Proximal ridge head (FᵀF/n + (λ+β) I)⁻¹ (FᵀY/n + λ W_prev), in float64.

        With ``lam = 0`` (or no ``W_prev``) this is the ridge head (FᵀF/n + β I)⁻¹ FᵀY/n.
        ``factors``: a dict of factorised systems of these same FᵀF and n, keyed by λ + β; a system
        missing from it is factorised and added (see :class:`GramCache`).
        """
        check_coefficients(beta=beta, lam=lam)
        if self.n == 0:
            raise ValueError("cannot solve a head from zero rows")
        d = self.FtF.shape[-1]
        if lam > 0 and W_prev is None:
            raise ValueError("lam > 0 needs W_prev, the previous head")
        if lam + beta <= 0 and self.n < d:
            raise ValueError(
                f"the batch has {self.n} rows but {d} features: the head is not identified; "
                "use a ridge beta > 0 or a proximal lam > 0"
            )
        system = factors.get(lam + beta) if factors is not None else None
        if system is None:
            A = self.FtF / self.n
            _diagonal(A).add_(lam + beta)  # + (λ + β) I, without building I
            system = factor_spd(A, warn_on_jitter=self.low_precision)
            if factors is not None:
                factors[lam + beta] = system
        B = self.FtY / self.n
        if lam > 0:
            if W_prev.shape != B.shape:
                raise ValueError(f"W_prev has shape {tuple(W_prev.shape)}, expected {tuple(B.shape)}")
            B = B + lam * W_prev.to(torch.float64)
        return system.solve(B)


class GramCache:
    """FᵀF of one batch of features and its factorised head systems, for solves with several targets.

    Within one training step the stage-1 head is solved three times on the same features F₁ with
    different targets: the update after the stage-1 step (λ₁) and the λ₁₂ refit with and without
    graph (DESIGN §3). FᵀF/n + (λ + β) I depends on F and λ + β only, so it is formed and factorised
    once; each further solve costs FᵀY and two triangular solves. The heads are bitwise those of
    ``SufficientStats.from_batch(F, Y).solve(...)`` (the same operations on the same inputs).

    The cache holds a reference to F, so while it lives F's storage cannot be freed and reused:
    equal storage pointer, layout and version counter (bumped by every in-place write) then prove
    the features are unchanged.
    """

    def __init__(self, F: torch.Tensor):
        self.F = F
        self.key = self._key(F)
        self.gram: Optional[torch.Tensor] = None
        self.factors: dict = {}

    @staticmethod
    def _key(F: torch.Tensor) -> tuple:
        return (F.data_ptr(), tuple(F.shape), F.stride(), F.dtype, F.device, F._version)

    def holds(self, F: torch.Tensor) -> bool:
        return self._key(F) == self.key

    def solve(self, Y: torch.Tensor, beta: float, lam: float = 0.0, W_prev: Optional[torch.Tensor] = None):
        """The head of :meth:`SufficientStats.solve` on (F, Y), reusing FᵀF and the factorisations."""
        if Y.dtype != self.F.dtype:  # mixed precision promotes F: no cached product applies
            return SufficientStats.from_batch(self.F, Y).solve(beta, lam, W_prev)
        stats = SufficientStats.from_batch(self.F, Y, gram=self.gram)
        self.gram = stats.FtF
        return stats.solve(beta, lam, W_prev, factors=self.factors)


class SPDSystem:
    """A symmetric positive (semi-)definite system A, factorised once for solves with many right sides:
    its Cholesky factor ``L``, or A itself (``L`` None) when only least squares could solve it."""

    def __init__(self, A: torch.Tensor, L: Optional[torch.Tensor]):
        self.A, self.L = A, L

    def solve(self, B: torch.Tensor) -> torch.Tensor:
        """X with A X = B; differentiable in B."""
        if self.L is not None:
            return torch.cholesky_solve(B, self.L)
        return torch.linalg.lstsq(self.A, B, driver="gelsd" if self.A.device.type == "cpu" else None).solution


def factor_spd(A: torch.Tensor, warn_on_jitter: bool = False) -> SPDSystem:
    """Factorise symmetric positive (semi-)definite A without forming A⁻¹.

    Cholesky first; on failure retry with a growing diagonal jitter (relative to the mean diagonal),
    then fall back to least squares with a ``RuntimeWarning``. ``warn_on_jitter`` (set for systems
    built from float32 products) also warns when jitter was needed, so precision is never lost
    silently.
    """
    L, info = torch.linalg.cholesky_ex(A)
    if not bool(info.any()):
        return SPDSystem(A, L)
    # jitter relative to each system's mean diagonal (a stack of systems is retried as a whole)
    scale = _diagonal(A).abs().mean(-1).clamp_min(1e-300)[..., None, None]
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    for rel in _JITTERS:
        L, info = torch.linalg.cholesky_ex(A + rel * scale * eye)
        if not bool(info.any()):
            if warn_on_jitter:
                warn(f"Cholesky of a head system built from float32 products needed a jitter of {rel:g} "
                     "× its mean diagonal: the features are nearly collinear; consider a larger ridge beta",
                     RuntimeWarning)
            return SPDSystem(A, L)
    warn(
        "Cholesky failed even with jitter; falling back to least squares. "
        "The features are (nearly) collinear: consider a larger ridge beta.",
        RuntimeWarning,
    )
    return SPDSystem(A, None)


def solve_spd(A: torch.Tensor, B: torch.Tensor, warn_on_jitter: bool = False) -> torch.Tensor:
    """Solve A X = B for symmetric positive (semi-)definite A without forming A⁻¹ (:func:`factor_spd`).
    Differentiable in A and B."""
    return factor_spd(A, warn_on_jitter).solve(B)


def ridge_head(F: torch.Tensor, Y: torch.Tensor, beta: float) -> torch.Tensor:
    """Ridge head W* = (FᵀF/n + β I)⁻¹ (FᵀY/n), float64 (d × k)."""
    return SufficientStats.from_batch(F, Y).solve(beta)


def proximal_head(
    F: torch.Tensor, Y: torch.Tensor, W_prev: torch.Tensor, lam: float, beta: float
) -> torch.Tensor:
    """Proximal head (FᵀF/n + (λ+β) I)⁻¹ (FᵀY/n + λ W_prev), float64 (d × k).

    Differentiable with respect to F, Y (and W_prev) when they carry gradients.
    """
    return SufficientStats.from_batch(F, Y).solve(beta, lam, W_prev)
