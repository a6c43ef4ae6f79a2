"""Smoke run of the two-stage head solver (replaced by the DFIV demo once the estimator exists)."""

import torch

from deepcausal.heads import add_intercept
from deepcausal.twostage import TwoStageHeads


def main() -> None:
    g = torch.Generator().manual_seed(0)
    n = 10_000
    z = torch.randn(n, 1, generator=g, dtype=torch.float64)
    e = torch.randn(n, 1, generator=g, dtype=torch.float64)
    t = z + e
    y = 2.0 * t + 3.0 * e
    heads = TwoStageHeads(lam1=1.0, lam2=1.0, beta1=1e-4, beta2=1e-4)
    for lo in range(0, n, 500):
        sl = slice(lo, lo + 500)
        V = heads.stage1_update(add_intercept(z[sl]), t[sl])
        heads.stage2_update(add_intercept(add_intercept(z[sl]) @ V), y[sl])
    print(f"proximal 2SLS slope on minibatches: {heads.u[0, 0].item():.3f} (truth 2.0)")


if __name__ == "__main__":
    main()
