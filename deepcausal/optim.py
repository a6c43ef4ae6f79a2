"""Adam for the feature networks, written out so that training never imports ``torch._dynamo``.

``torch.optim.Adam.step`` imports ``torch._dynamo`` on first use, which costs seconds of start-up in
every fresh process (each ensemble member fitted by joblib pays it). The update here is PyTorch's
Adam (no amsgrad), with the same arithmetic as its single-tensor path, including its coupled L2
``weight_decay`` (added to the gradient, as torch.optim.Adam does, not decoupled as in AdamW):

    g ← g + wd · θ   (for the decayed parameters only),
    m ← β₁ m + (1 − β₁) g,    v ← β₂ v + (1 − β₂) g²,
    θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch

__all__ = ["Adam", "ANNEAL_START", "ANNEAL_FLOOR", "annealed_lr"]

# The annealed schedule: constant for the first half of the step budget, then linear down to lr/50.
ANNEAL_START = 0.5
ANNEAL_FLOOR = 0.02


class Adam:
    """Minimal Adam over a list of parameters: ``zero_grad``, ``step`` and ``param_groups`` (one group).

    One step count for the group (torch counts per parameter): the two differ only for a parameter
    that had no gradient in some steps, which the two-stage training loop never produces.

    The parameters are made views into one contiguous buffer (their values unchanged), and the moments
    are two buffers of the same layout, so a step in which every parameter has a gradient is one
    concatenation of the gradients and six operations on whole buffers, whatever the number of
    parameter tensors: for the small networks of the two-stage estimators, per-operation overhead, not
    arithmetic, is what a step costs (against one ``torch._foreach_*`` call per operation over the
    tensors, this saves about 0.4 ms of a 15 ms DFIV minibatch step; benchmarks/RESULTS.md, "Speed
    levers", ``adam_step_saving``). Element by element the arithmetic is that of
    ``torch.optim.Adam(foreach=False)``, so the parameters are bit-identical to it. A step in which some
    parameter has no gradient, or after some parameter's storage was replaced, updates the parameters one
    by one through views of the same moment buffers; parameters of several dtypes or devices keep
    per-parameter moments and are always updated that way.

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> opt = Adam([w], lr=0.1)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> bool((w < 1).all())
    True
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decayed: Optional[Iterable[torch.nn.Parameter]] = None):
        params = list(params)
        self.param_groups = [{"params": params, "lr": float(lr), "betas": betas, "eps": float(eps),
                              "weight_decay": float(weight_decay)}]
        # which parameters the L2 term applies to (all by default); held by identity, not value
        self._decayed = {id(p) for p in (params if decayed is None else decayed)}
        self.t = 0
        # Buffer order: the decayed parameters first, so the L2 term is one operation on a leading slice.
        order = sorted(params, key=lambda p: id(p) not in self._decayed) if weight_decay else list(params)
        self._order = list({id(p): p for p in order}.values())  # a parameter listed twice is stored once
        self._n_decayed = sum(p.numel() for p in self._order if id(p) in self._decayed) if weight_decay else 0
        self._flat = self._flatten(self._order)
        if self._flat is not None:
            self._m, self._v = torch.zeros_like(self._flat), torch.zeros_like(self._flat)
            self.state = dict(zip(self._order, zip(self._views(self._m), self._views(self._v))))
        else:  # parameters of several dtypes or devices: moments per parameter, updated one by one
            self.state = {p: (torch.zeros_like(p), torch.zeros_like(p)) for p in self._order}
        self._ptrs = [p.data_ptr() for p in self._order]

    def _views(self, buffer: torch.Tensor) -> list:
        """Views of a flat buffer shaped like each parameter, in buffer order."""
        views, offset = [], 0
        for p in self._order:
            views.append(buffer[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        return views

    @torch.no_grad()
    def _flatten(self, params: list) -> Optional[torch.Tensor]:
        """Copy the parameters into one buffer and make each a view of its slice; None when they cannot
        share one (different dtypes or devices, or sparse, or none at all)."""
        if not params or len({(p.dtype, p.device) for p in params}) != 1 or any(p.layout != torch.strided
                                                                                 for p in params):
            return None
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        for p, view in zip(params, self._views(flat)):
            p.data = view
        return flat

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        g = self.param_groups[0]
        (b1, b2), lr, eps = g["betas"], g["lr"], g["eps"]
        wd = g.get("weight_decay", 0.0)
        if not self._order:
            return
        self.t += 1
        step_size = lr / (1.0 - b1**self.t)
        bias2_sqrt = math.sqrt(1.0 - b2**self.t)
        grads = [p.grad for p in self._order]
        if (self._flat is not None and all(gr is not None for gr in grads)
                and all(p.data_ptr() == ptr for p, ptr in zip(self._order, self._ptrs))):
            grad = torch.cat([gr.reshape(-1) for gr in grads])  # a new tensor: p.grad stays as backward wrote it
            if wd:
                grad[:self._n_decayed].add_(self._flat[:self._n_decayed], alpha=wd)
            self._update([self._flat], [self._m], [self._v], [grad], step_size, bias2_sqrt, eps, b1, b2)
            return
        params = [p for p in self._order if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        if wd:  # out of place, as torch does: p.grad itself is left as backward wrote it
            grads = [gr.add(p, alpha=wd) if id(p) in self._decayed else gr for gr, p in zip(grads, params)]
        self._update(params, [self.state[p][0] for p in params], [self.state[p][1] for p in params], grads,
                     step_size, bias2_sqrt, eps, b1, b2)

    @staticmethod
    def _update(params, m, v, grads, step_size, bias2_sqrt, eps, b1, b2) -> None:
        # The single-tensor arithmetic of the module docstring, one call per operation for all tensors
        # (torch._foreach_*). Element by element the operations are the same, so the result is
        # bit-identical to torch.optim.Adam(foreach=False).
        torch._foreach_lerp_(m, grads, 1.0 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - b2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, m, denom, value=-step_size)


def annealed_lr(lr: float, step: int, max_steps: int, start: float = ANNEAL_START, floor: float = ANNEAL_FLOOR) -> float:
    """Learning rate of minibatch step ``step`` (0-based) out of ``max_steps``: ``lr`` until the fraction
    ``start`` of the budget, then falling linearly to ``floor · lr`` at the last step.

    Why: at a constant rate, minibatch noise keeps the networks wandering around the optimum, and a
    single fit's structural error jumps between checks however much data there is; lowering the rate
    at the end lets the last iterates settle (measured in benchmarks/RESULTS.md, "Learning-rate schedule").

        factor(f) = 1                                        for f = step / max_steps < start
                  = max(floor, 1 − (f − start) / (1 − start))   after

    Examples
    --------
    >>> [round(annealed_lr(1.0, s, 10), 2) for s in (0, 4, 5, 6, 9)]
    [1.0, 1.0, 1.0, 0.8, 0.2]
    """
    f = step / max_steps
    if f < start:
        return float(lr)
    return float(lr) * max(floor, 1.0 - (f - start) / (1.0 - start))
