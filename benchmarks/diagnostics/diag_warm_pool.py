"""Diagnosis (information): what does a warm worker pool save a default fit?

Issue 29 lists "a process pool that stays warm across fits" as a lever. joblib's loky backend already keeps its
worker processes alive between ``Parallel`` calls of one Python process (for 300 s of idleness), so the
first default fit of a session pays the workers' start-up (interpreter, torch and deepcausal imports) and later
fits reuse them. This script times, in one fresh process, ``--fits`` default DFIV fits on demand (n = 5,000, seeds
0, 1, ...) one after another, and reports each fit's wall time: the first against the later ones prices the
start-up a warm pool saves.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_warm_pool.py [--fits 3]``
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

TITLE = "## Diagnosis: a warm worker pool (information)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fits", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import torch

    from deepcausal import DFIV
    from deepcausal.datasets import demand

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    seconds = []
    for seed in range(args.fits):
        d = demand(5000, rho=0.5, seed=seed)
        t = time.perf_counter()
        DFIV(random_state=seed, verbose=False).fit(d.train, **d.fit_kwargs())
        seconds.append(time.perf_counter() - t)
        print(seed, round(seconds[-1], 1), flush=True)
    later = sorted(seconds[1:])[len(seconds[1:]) // 2]
    text = "\n".join([
        TITLE, "", f"Command: `OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_warm_pool.py --fits {args.fits}` "
        "(from the repository root).", f"Machine: {machine()}.", "",
        "Default DFIV fits on demand (n = 5,000, seeds 0, 1, ...) one after another in one process; loky keeps the "
        "worker processes of the first fit for the later ones (script docstring).", "",
        "| fit | seed | seconds |", "|---|---|---|",
        *[f"| {'first (cold workers)' if i == 0 else 'later (warm workers)'} | {i} | {s:.1f} |" for i, s in enumerate(seconds)],
        "", f"Reading: the first fit took {seconds[0]:.1f} s and the later ones a median {later:.1f} s; seeds differ too, "
        "so the difference bounds the start-up a warm pool saves rather than measuring it exactly. joblib already "
        "provides the warm pool within a session; nothing was built.", ""])
    if not args.no_write:
        write_section(TITLE, text)
    print(text)


if __name__ == "__main__":
    main()
