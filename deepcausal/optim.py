"""Adam for the feature networks, written out so that training never imports ``torch._dynamo``.

``torch.optim.Adam.step`` imports ``torch._dynamo`` on first use, which costs seconds of start-up in
every fresh process (each ensemble member fitted by joblib pays it). The update here is PyTorch's
default Adam (no weight decay, no amsgrad), with the same arithmetic as its single-tensor path:

    m ← β₁ m + (1 − β₁) g,    v ← β₂ v + (1 − β₂) g²,
    θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

__all__ = ["Adam"]


class Adam:
    """Minimal Adam over a list of parameters: ``zero_grad``, ``step`` and ``param_groups`` (one group).

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> opt = Adam([w], lr=0.1)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> bool((w < 1).all())
    True
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.param_groups = [{"params": list(params), "lr": float(lr), "betas": betas, "eps": float(eps)}]
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
        for p in g["params"]:
            if p.grad is None:
                continue
            if p not in self.state:
                self.state[p] = (torch.zeros_like(p), torch.zeros_like(p))
            m, v = self.state[p]
            m.lerp_(p.grad, 1.0 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
            denom = (v.sqrt() / bias2_sqrt).add_(eps)
            p.addcdiv_(m, denom, value=-step_size)
