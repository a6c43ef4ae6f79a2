"""Data-parallel training on torch.distributed: the few collectives the two-stage loop needs.

When a process group is initialised (e.g. the script was launched with ``torchrun``), each rank calls
``fit`` with its own shard of rows. The ranks then agree on one global split and one global sequence
of minibatches (same seed; a global row is owned by the rank whose shard holds it), and

* the head sufficient statistics (FᵀF, FᵀY, n) are all-reduced before every solve, so every rank
  holds the identical head — the one a single process would get on the same global minibatch;
* each local loss is normalised by the *global* batch size and the backbone gradients are summed
  across ranks, which gives exactly the single-process gradient of the global batch;
* standardisation moments and the other statistics of the data are all-reduced too.

Without an initialised group every method is a no-op, so the single-process path is unchanged.
Works with the ``gloo`` backend on CPU and ``nccl`` on GPUs (tensors live on the model's device).
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch
import torch.distributed as dist

from .heads import SufficientStats


class Communicator:
    """Collectives of the current process group, or no-ops in a single process."""

    def __init__(self, device: torch.device):
        self.active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.active else 0
        self.world_size = dist.get_world_size() if self.active else 1
        self.device = device

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (a new tensor; no autograd)."""
        if not self.active:
            return t
        t = t.detach().clone()
        dist.all_reduce(t)
        return t

    def sum_differentiable(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks whose backward sums the incoming gradients (for the λ₁₂ refit)."""
        if not self.active:
            return t
        if t.requires_grad:
            import warnings

            from torch.distributed.nn.functional import all_reduce

            with warnings.catch_warnings():  # deprecated in favour of a private module; still the public API
                warnings.simplefilter("ignore", FutureWarning)
                return all_reduce(t)
        return self.sum(t)

    def sum_float(self, x: float) -> float:
        if not self.active:
            return float(x)
        return float(self.sum(torch.tensor([float(x)], dtype=torch.float64, device=self.device))[0])

    def broadcast_int(self, x: int) -> int:
        """Rank 0's value of ``x`` on every rank (e.g. the seed a fit draws when none is given)."""
        if not self.active:
            return int(x)
        t = torch.tensor([int(x)], dtype=torch.int64, device=self.device)
        dist.broadcast(t, src=0)
        return int(t[0])

    def _extreme(self, a: np.ndarray, op) -> np.ndarray:
        if not self.active:
            return a
        t = torch.as_tensor(np.asarray(a, dtype=np.float64), device=self.device).clone()
        dist.all_reduce(t, op=op)
        return t.cpu().numpy()

    def min(self, a: np.ndarray) -> np.ndarray:
        """Elementwise minimum over ranks (e.g. the global training range)."""
        return self._extreme(a, dist.ReduceOp.MIN)

    def max(self, a: np.ndarray) -> np.ndarray:
        """Elementwise maximum over ranks."""
        return self._extreme(a, dist.ReduceOp.MAX)

    def sizes(self, n_local: int) -> List[int]:
        """Every rank's row count, in rank order."""
        if not self.active:
            return [n_local]
        t = torch.zeros(self.world_size, dtype=torch.int64, device=self.device)
        t[self.rank] = n_local
        return [int(v) for v in self.sum(t)]

    def reduce_stats(self, stats: SufficientStats) -> SufficientStats:
        """All-reduce (FᵀF, FᵀY, n): every rank then solves the global system."""
        if not self.active:
            return stats
        n = int(self.sum(torch.tensor([stats.n], dtype=torch.int64, device=self.device))[0])
        return SufficientStats(self.sum(stats.FtF), self.sum_differentiable(stats.FtY), n)

    def sum_gradients(self, params) -> None:
        """Sum each parameter's gradient over ranks (local losses carry the global normalisation)."""
        if not self.active:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
