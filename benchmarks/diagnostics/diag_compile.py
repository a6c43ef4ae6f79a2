"""Diagnosis (information; not built): does ``torch.compile`` pay for a stacked member's networks on this CPU?

Issue 29 lists compilation (inductor on CPU) as a speed lever. The kernel timed here is the forward and backward
pass of DFIV's default instrument network for a stack of three members (deepcausal._stacked.StackedMLP over
SkipMLP(3, d_out=16), a (3, 512, 3) minibatch), eager against ``torch.compile`` (default mode), after one
warm-up pass each, one thread. The compile time is the first compiled pass. A default fit runs about 9 such
passes per step over 1,000 steps; the training step itself is not one graph (the head solves check their
inputs on the host and pick a Cholesky jitter by data-dependent branching), so this kernel bounds what
compilation could buy.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_compile.py [--passes 300]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
from _results import machine, write_section  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=300)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import torch

    from deepcausal._stacked import StackedMLP
    from deepcausal.nets import SkipMLP

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = StackedMLP([SkipMLP(3, d_out=16) for _ in range(3)])
    x = torch.randn(3, 512, 3)

    def one_pass(f):
        f(x).pow(2).sum().backward()

    def micro_s(f):
        one_pass(f)
        t = time.perf_counter()
        for _ in range(args.passes):
            one_pass(f)
        return (time.perf_counter() - t) / args.passes * 1e6

    eager = micro_s(net)
    t = time.perf_counter()
    compiled = torch.compile(net)
    one_pass(compiled)
    compile_s = time.perf_counter() - t
    fast = micro_s(compiled)
    passes = 9 * 1000
    title = "## Diagnosis: torch.compile on the stacked networks (information; not built)"
    text = "\n".join([title, "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_compile.py --passes {args.passes}` (from the repository root).",
        f"Machine: {machine()}.", "",
        "Forward and backward pass of DFIV's default instrument network for a stack of three members (minibatch "
        "(3, 512, 3)), eager against `torch.compile` (inductor, default mode), one thread; see the script's docstring.", "",
        "| | µs per pass | seconds for a fit's 9,000 passes | compile s |", "|---|---|---|---|",
        f"| eager | {eager:.0f} | {eager * passes / 1e6:.1f} | – |",
        f"| torch.compile | {fast:.0f} | {fast * passes / 1e6:.1f} | {compile_s:.1f} |", "",
        f"Reading: compiled, a pass takes {fast / eager:.2f}× the eager time, and compiling costs {compile_s:.0f} s before "
        "the first step (in every worker process), against a whole default fit of under a minute. Not built.", ""])
    if not args.no_write:
        write_section(title, text)
    print(text)


if __name__ == "__main__":
    main()
