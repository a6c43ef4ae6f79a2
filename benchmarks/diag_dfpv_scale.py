"""Diagnosis, not a default: is DFPV's error at large n a matter of training length or of the ridge?

DFPV's structural MSE on demand PCL does not fall from 10⁴ to 10⁶ rows (RESULTS "Scale"), every fit runs to
its step cap, and annealing did not help. Two explanations fit that: the step cap is too short for the data
(a budget problem), or the heads' ridge β, fixed whatever n is, shrinks the heads by the same amount at any
size (a bias that more data cannot remove). One default member on demand PCL at ``--n`` rows per setting:

* ``default``: the defaults (step cap 1,000·√(n_half/2,500), β₁ = β₂ = 0.01);
* ``2x steps``: ``n_epochs`` set to twice the epochs of the default cap (constant rate, as DFPV's default);
* ``beta 1e-3``: β₁ = β₂ = 0.001, ten times less ridge.

Reported per seed: the kept check's held-out stage-2 loss (the criterion, no truth), the held-out stage-1
R², and for information the structural MSE and the fit seconds.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diag_dfpv_scale.py [--n 100000] [--seeds 0,1,2] [--n-jobs 2]``;
rows in ``benchmarks/dfpv_scale_diag.csv``; results in RESULTS.md, "Diagnosis: DFPV at scale".
"""

from __future__ import annotations

import argparse
import math
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _member_compare import fit_and_merge, fit_member, medians  # noqa: E402

CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dfpv_scale_diag.csv")
KEY = ["design", "n", "seed", "setting"]


def settings(n: int) -> dict:
    from deepcausal import DFPV

    n_half = n // 2  # split_ratio 0.5
    est = DFPV()
    s = est._settings(n_half)  # the default cap, in epochs of this size
    epochs = math.ceil(s["max_steps"] / s["steps_per_epoch"])
    return {"default": {}, "2x steps": dict(n_epochs=2 * epochs), "beta 1e-3": dict(beta1=1e-3, beta2=1e-3)}


def _fit(design, n, seed, setting):
    return dict(fit_member(design, n, seed, settings(n)[setting]), setting=setting)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--from-csv", action="store_true")
    args = ap.parse_args(argv)
    jobs = [("demand_proxy", args.n, int(s), name) for s in args.seeds.split(",") for name in settings(args.n)]
    df = fit_and_merge(CSV, KEY, _fit, jobs, args.n_jobs, args.from_csv)
    print(df[["n", "seed", "setting", "held_out_stage2", "stage1_r2", "mse", "fit_s", "steps", "reason"]]
          .sort_values(["n", "setting", "seed"]).to_string(index=False))
    print(medians(df, "setting").to_string(index=False))


if __name__ == "__main__":
    main()
