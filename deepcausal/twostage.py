"""The two-stage head solver shared by DFIV and DFPV.

Both estimators regress, in stage 1, a *target feature* (ψ(T) for DFIV, ψ_W(W) for DFPV) on stage-1
features F₁ with a linear head V, and in stage 2 the outcome Y on features G built from the stage-1
prediction F₁V with a linear head u. This module owns the two heads and their five coefficients:

    stage 1 head update     V ← prox(F₁, target;  V_prev, λ₁, β₁)
    stage 1 refit (λ₁₂)     V(ψ) = prox(F₁, target WITH grad; V, λ₁₂, β₁)   (for the stage-2 loss)
    stage 2 head update     u ← prox(G, Y;  u_prev, λ₂, β₂)
    full-data refit         V ← ridge over all of S1 (β₁), then u ← ridge over all of S2 (β₂)

where prox(F, Y; W_prev, λ, β) = (FᵀF/n + (λ+β) I)⁻¹ (FᵀY/n + λ W_prev) (see :mod:`deepcausal.heads`).
The first update of each head, when there is no previous head yet, is the ridge solve. With all λ = 0
and each batch the whole stage half, this is the original full-batch DFIV/DFPV algorithm.

The estimators own the networks, the optimisers and the data; this object only holds heads.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional, Tuple

import torch

from .heads import GramCache, SufficientStats, check_coefficients

__all__ = ["TwoStageHeads", "squared_loss"]

Batches = Iterable[Tuple[torch.Tensor, torch.Tensor]]
Reducer = Optional[Callable[[SufficientStats], SufficientStats]]


def squared_loss(F: torch.Tensor, Y: torch.Tensor, W: torch.Tensor, n: Optional[int] = None) -> torch.Tensor:
    """(1/n) ||Y − F W||², the data term of every stage loss (W cast to F's dtype).

    ``n`` defaults to the rows of F; a distributed fit passes the global batch size. A stack of
    members (F of shape (K, n, d), W (K, d, k)) gives one loss per member, shape (K,).
    """
    return ((Y - F @ W.to(F.dtype)) ** 2).sum((-2, -1)) / (F.shape[-2] if n is None else n)


class TwoStageHeads:
    """Stage-1 head V and stage-2 head u with proximal coefficients (λ₁, λ₂, λ₁₂) and ridges (β₁, β₂).

    Parameters
    ----------
    lam1, lam2, lam12 : float ≥ 0
        Proximal coefficients of the stage-1 head update, the stage-2 head update, and the
        differentiable stage-1 refit used inside the stage-2 loss.
    beta1, beta2 : float ≥ 0
        Ridge penalties of the stage-1 and stage-2 heads.
    reducer : callable, optional
        Applied to every :class:`SufficientStats` before a solve; a distributed run passes an
        all-reduce so every process solves the same global system.

    Attributes
    ----------
    V : torch.Tensor or None
        Stage-1 head, float64, shape (d₁, d_target).
    u : torch.Tensor or None
        Stage-2 head, float64, shape (d₂, k).

    Examples
    --------
    >>> import torch
    >>> heads = TwoStageHeads(lam1=0.1, lam2=0.1, lam12=0.1, beta1=1e-3, beta2=1e-3)
    >>> F1, psi = torch.randn(32, 5), torch.randn(32, 3)
    >>> heads.stage1_update(F1, psi).shape
    torch.Size([5, 3])
    """

    def __init__(self, lam1=0.0, lam2=0.0, lam12=0.0, beta1=0.1, beta2=0.1, reducer: Reducer = None):
        check_coefficients(lam1=lam1, lam2=lam2, lam12=lam12, beta1=beta1, beta2=beta2)
        self.lam1, self.lam2, self.lam12 = float(lam1), float(lam2), float(lam12)
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.reducer = reducer
        self.V: Optional[torch.Tensor] = None
        self.u: Optional[torch.Tensor] = None
        self._stage1_gram: Optional[GramCache] = None  # FᵀF of the last stage-1 features, see _stage1_solve

    def __getstate__(self):  # a fitted estimator is pickled (joblib, save): the cache is not part of it
        state = dict(self.__dict__)
        state["_stage1_gram"] = None
        return state

    def release_features(self) -> None:
        """Drop the cached stage-1 features and factors (training is over; the heads stay)."""
        self._stage1_gram = None

    # -- one solve, shared by every update ----------------------------------------------------
    def _solve(self, F, Y, W_prev, lam, beta):
        stats = SufficientStats.from_batch(F, Y).reduced(self.reducer)
        if W_prev is None:  # first head: plain ridge on this batch
            return stats.solve(beta)
        return stats.solve(beta, lam, W_prev)

    def _stage1_solve(self, F1, target, W_prev, lam):
        """A stage-1 solve that reuses F₁ᵀF₁ and its factorisations while F₁ is the same batch of
        features: a training step solves the stage-1 head three times on one F₁ (the update and the
        two λ₁₂ refits), and forming and factorising the d₁ × d₁ system dominated those solves. A
        distributed fit all-reduces every system instead (the reducer), so it takes the plain path."""
        if self.reducer is not None:
            return self._solve(F1, target, W_prev, lam, self.beta1)
        if self._stage1_gram is None or not self._stage1_gram.holds(F1):
            self._stage1_gram = GramCache(F1)
        if W_prev is None:
            return self._stage1_gram.solve(target, self.beta1)
        return self._stage1_gram.solve(target, self.beta1, lam, W_prev)

    # -- stage 1 ------------------------------------------------------------------------------
    def stage1_update(self, F1: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """V ← prox(F₁, target; V, λ₁, β₁), both inputs detached. Returns the new V."""
        self.V = self._stage1_solve(F1.detach(), target.detach(), self.V, self.lam1)
        return self.V

    def stage1_refit(self, F1: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Differentiable V(target) = prox(F₁, target; V, λ₁₂, β₁); V itself is not changed.

        ``target`` keeps its graph, so a loss on F₁' V(target) back-propagates into the network
        that produced the target (the treatment network in DFIV). F₁ is detached: its network is
        trained by the stage-1 loss only.
        """
        return self._stage1_solve(F1.detach(), target, self.V, self.lam12)

    # -- stage 2 ------------------------------------------------------------------------------
    def stage2_update(self, G: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """u ← prox(G, Y; u, λ₂, β₂), inputs detached. Returns the new u."""
        self.u = self._solve(G.detach(), Y.detach(), self.u, self.lam2, self.beta2)
        return self.u

    # -- full-data refit by streaming sufficient statistics ------------------------------------
    def _stream(self, batches: Batches, beta: float) -> torch.Tensor:
        stats = None
        for F, Y in batches:
            if stats is None:
                stats = SufficientStats.empty(F.shape[1], Y.shape[1], device=F.device)
            stats.update(F, Y)
        if stats is None:
            raise ValueError("refit needs at least one batch")
        return stats.reduced(self.reducer).solve(beta)

    def refit_stage1(self, batches: Batches) -> torch.Tensor:
        """V ← ridge head (β₁) over all batches of (F₁, target), streamed: memory O(d²)."""
        self.V = self._stream(batches, self.beta1)
        return self.V

    def refit_stage2(self, batches: Batches) -> torch.Tensor:
        """u ← ridge head (β₂) over all batches of (G, Y); build G with the refitted V first."""
        self.u = self._stream(batches, self.beta2)
        return self.u

    # -- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"V": self.V, "u": self.u}

    def load_state_dict(self, state: dict) -> None:
        self.V, self.u = state["V"], state["u"]
