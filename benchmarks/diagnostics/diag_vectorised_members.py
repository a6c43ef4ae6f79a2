"""Diagnosis (information; nothing in the package uses it): what would training ensemble members as one
vectorised model buy on this machine?

Issue 16 lists "members trained as one vectorised model" as a lever for the whole default fit (5 members,
target ≤ 15 s on 2 cores). Before building it into the training loop, this script times the kernel of one
training update for M members stacked along a leading dimension (batched matrix products, batched Cholesky)
against the same code for one member. The kernel is a stage-1 update of each estimator's default shapes:

* forward pass of the stage-1 network(s) for a minibatch, features F with an intercept column;
* loss (1/n) ||target − F V||², backward, one Adam step (deepcausal.optim.Adam on the stacked parameters);
* head re-solve V = (FᵀF/n + c I)⁻¹ FᵀY/n on the stepped features: float32 products, float64 Cholesky.

DFIV: the instrument network [x, MLP(x)] with x of 3 columns, widths (64, 32), 16 outputs (20 features with the
intercept), a 5-column target, batch 512. DFPV: the Kronecker features [φ_A, 1] ⊗ [φ_Z, 1] of two plain ReLU MLPs
(DFPV's default networks keep no skip; 1 and 2 inputs, 16 outputs: 289 features), a 17-column target, batch 256.

After one untimed warm-up run, each M is timed ``--repeats`` times, the Ms interleaved (the minimum is reported:
the machine's noise only slows a run down) over ``--updates`` updates after 20 warm-up updates, one thread. ``per member`` = (time for M) / (M × time for one):
1 means stacking saves nothing, 1/M that M members cost what one does.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_vectorised_members.py [--members 1,2,3,5] [--updates 300]
[--repeats 3] [--no-write]``
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
from _results import machine, single_thread, write_section  # noqa: E402

SHAPES = {  # name: (inputs of each stage-1 network, target columns, batch size, input kept beside the features)
    "DFIV": ((3,), 5, 512, True),
    "DFPV": ((1, 2), 17, 256, False),
}


def stacked_mlp(M: int, d_in: int, widths=(64, 32), d_out: int = 16) -> list:
    """Weights (M, a, b) and biases (M, 1, b) of M independent ReLU MLPs."""
    import torch

    dims, params = [d_in, *widths, d_out], []
    for a, b in zip(dims[:-1], dims[1:]):
        params += [torch.nn.Parameter(torch.randn(M, a, b) / math.sqrt(a)), torch.nn.Parameter(torch.zeros(M, 1, b))]
    return params


def net_features(params: list, x, skip: bool):
    """MLP(x) per member, with x kept beside it when ``skip``: (M, n, d_in) → (M, n, [d_in +] d_out)."""
    import torch

    h = x
    for i in range(0, len(params), 2):
        h = torch.baddbmm(params[i + 1], h, params[i])
        if i < len(params) - 2:
            h = torch.relu(h)
    return torch.cat([x, h], -1) if skip else h


def with_intercept(f):
    import torch

    return torch.cat([f, f.new_ones(*f.shape[:-1], 1)], -1)


def stage1_features(nets: list, xs: list, skip: bool):
    """DFIV: [φ(x), 1]; DFPV: the row-wise Kronecker product [φ_A, 1] ⊗ [φ_Z, 1]."""
    fs = [with_intercept(net_features(p, x, skip)) for p, x in zip(nets, xs)]
    if len(fs) == 1:
        return fs[0]
    out = fs[0].unsqueeze(-1) * fs[1].unsqueeze(-2)
    return out.reshape(*out.shape[:-2], -1)


def head(F, Y, c: float = 0.1):
    """Ridge head per member: float32 products, float64 Cholesky solve. The ridge is relative to the mean
    diagonal (c · (1 + mean diag)): the timing must not depend on how far random targets push the features."""
    import torch

    n = F.shape[-2]
    A = (F.transpose(-1, -2) @ F).double() / n
    diag = A.diagonal(dim1=-2, dim2=-1)
    diag.add_(c * (1.0 + diag.mean(-1, keepdim=True)))
    L, info = torch.linalg.cholesky_ex(A)
    if int(info.max()) != 0:
        raise RuntimeError("a head system is not positive definite")
    return torch.cholesky_solve((F.transpose(-1, -2) @ Y).double() / n, L)


def time_updates(name: str, M: int, updates: int, seed: int = 0) -> float:
    """Milliseconds per update of M stacked members."""
    import torch

    from deepcausal.optim import Adam

    torch.manual_seed(seed)
    d_ins, k, batch, skip = SHAPES[name]
    nets = [stacked_mlp(M, d) for d in d_ins]
    opt = Adam([p for net in nets for p in net], lr=1e-3)
    xs = [torch.randn(M, batch, d) for d in d_ins]
    Y = torch.randn(M, batch, k)
    with torch.no_grad():
        V = head(stage1_features(nets, xs, skip), Y)

    def update():
        nonlocal V
        F = stage1_features(nets, xs, skip)
        loss = ((Y - F @ V.float()) ** 2).sum() / batch
        if not math.isfinite(loss.item()):
            raise FloatingPointError("the loss became non-finite")
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            V = head(stage1_features(nets, xs, skip), Y)

    for _ in range(20):
        update()
    start = time.perf_counter()
    for _ in range(updates):
        update()
    return (time.perf_counter() - start) / updates * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", default="1,2,3,5")
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print the section, do not write RESULTS.md")
    args = ap.parse_args(argv)
    single_thread()
    members = [int(m) for m in args.members.split(",")]
    if 1 not in members:
        members = [1] + members
    rows = []
    for name in SHAPES:
        time_updates(name, 1, args.updates)  # warm-up: the process's first updates pay one-off allocations
        runs = {M: [] for M in members}
        for r in range(args.repeats):  # interleaved, so that a slow spell of the machine hits every M alike
            for M in members:
                runs[M].append(time_updates(name, M, args.updates, seed=r))
        ms = {M: min(t) for M, t in runs.items()}
        for M in members:
            rows.append((name, M, ms[M], ms[M] / ms[1], ms[M] / (M * ms[1])))
            print(rows[-1], flush=True)

    command = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_vectorised_members.py" + (
        f" --members {args.members}" if args.members != "1,2,3,5" else "") + (
        f" --updates {args.updates}" if args.updates != 300 else "") + (
        f" --repeats {args.repeats}" if args.repeats != 3 else "")
    lines = ["## Diagnosis: vectorised ensemble members (information; measured before deepcausal._stacked was built)", "",
             f"Command: `{command}` (from the repository root).",
             f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}.", "",
             "The kernel of one stage-1 training update (forward, loss, backward, Adam step, head re-solve) at each "
             "estimator's default shapes, for M members stacked along a leading dimension against one member with "
             "the same code (see the script's docstring). Minimum over repeats. `per member` = time for M / (M × "
             "time for one): 1 = stacking saves nothing.", "",
             "| estimator | members M | ms per update | vs one member | per member |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {M} | {ms:.3f} | {r:.2f}× | {pm:.2f} |" for n, M, ms, r, pm in rows]
    lines.append("")
    ratio = {(n, M): r for n, M, _, r, _ in rows}
    if 3 in members:  # today 5 members on 2 cores run as 3 rounds; stacked, one process would hold 3 of them
        lines += [f"- {n}: with 5 members split 3 + 2 over the two cores, the longer process would train for "
                  f"{ratio[(n, 3)]:.2f} member-fits of wall time instead of 3 today (a projection from this kernel "
                  "only: the step's other updates, the held-out checks and the worker start-up are not in it)." for n in SHAPES]
        lines.append("")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(lines[0], text)


if __name__ == "__main__":
    main()
