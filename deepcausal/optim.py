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
        self.state = {}
        self.t = 0

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
        self.t += 1
        step_size = lr / (1.0 - b1**self.t)
        bias2_sqrt = math.sqrt(1.0 - b2**self.t)
        params = [p for p in g["params"] if p.grad is not None]
        if not params:
            return
        for p in params:
            if p not in self.state:
                self.state[p] = (torch.zeros_like(p), torch.zeros_like(p))
        grads = [p.grad for p in params]
        wd = g.get("weight_decay", 0.0)
        if wd:  # out of place, as torch does: p.grad itself is left as backward wrote it
            grads = [gr.add(p, alpha=wd) if id(p) in self._decayed else gr for gr, p in zip(grads, params)]
        m = [self.state[p][0] for p in params]
        v = [self.state[p][1] for p in params]
        # The single-tensor arithmetic above, one call per operation for all tensors (torch._foreach_*):
        # a small network has a dozen parameter tensors, and per-call overhead, not arithmetic, is what
        # a step of a small network costs. Element by element the operations are the same, so the result
        # is bit-identical to torch.optim.Adam(foreach=False).
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
