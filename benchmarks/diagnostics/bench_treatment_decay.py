"""An L2 penalty on the treatment network, by held-out losses, on every design (issue 14).

DFIV's stage-2 loss is taken with the ridge-shrunk head fixed, so its gradient keeps enlarging the treatment
features; Adam turns that small steady gradient into full-size steps, the features drift, and at 10⁶ rows one
fit diverged (RESULTS "Diagnosis: treatment-feature drift"). ``treatment_weight_decay=WD`` adds ``WD · θ`` to
the gradients of the treatment network. For each design of :mod:`deepcausal.datasets` and seed this fits one
default member with each WD and reports the kept check's held-out stage-2 loss (the criterion, no truth),
the held-out stage-1 R², and for information the structural MSE and the fit seconds.

Rule, stated before the run, per estimator (DFIV on the IV designs, DFPV on the proxy designs): among the
nonzero WD whose median held-out stage-2 loss is at most 1% above WD = 0's on every design of the estimator,
the one with the lowest geometric-mean loss ratio becomes the default, provided that mean is below 1. The
whole default fit (``bench_default_fit.py``) and the scale rows (``bench_scale.py``) are then checked before
the default changes.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/bench_treatment_decay.py [--seeds 0,1,2] [--designs a,b]
[--decays 0,0.001,0.01] [--n N] [--n-jobs 2] [--from-csv]``; raw rows in ``benchmarks/diagnostics/treatment_decay.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
from _member_compare import (RATIO_COLUMNS, add_member_args, command_line, finish_section,  # noqa: E402
                             fit_and_merge, fit_member, header_lines, ratio_cells, ratio_table)

CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "treatment_decay.csv")
KEY = ["design", "n", "seed", "decay"]
TOLERANCE = 1.01
# What the default became, and why (written with the measurements).
DECISION = (
    "Decision: **no default changes; `treatment_weight_decay` stays 0 for both estimators**, as the rule says. "
    "For DFIV neither value stays within 1% on every design (WD 0.001: linear_binary_iv +2.4%, lowdim_linear "
    "+1.3%; WD 0.01: dSprites +3.3%, lowdim_sin +2.7%); the held-out loss falls only on demand (-6% and -3%), "
    "the design where the drift was diagnosed. For DFPV, WD 0.001 passes the tolerance but its geometric-mean "
    "ratio is above 1 (1.005): no gain. The truth agrees for information: at n = 5,000 the demand MSE rose "
    "(51.7 -> 83.2 and 114.7) and lowdim_sin's rose 20x with WD 0.01. Lowdim_linear's MSE fell 10x with either "
    "value, and at 10⁶ rows the penalty prevented seed 1's divergence on demand (MSE 29.4 -> 10.8; \"Diagnosis: "
    "treatment-feature drift\"), so the option stays available for users who fit DFIV to very large data; the scale rows (\"Scale\") keep the "
    "default, whose divergences the restart-from-the-kept-check rule handles.")


def _fit(design: str, n_tab: int, seed: int, decay: float) -> dict:
    return dict(fit_member(design, n_tab, seed, dict(treatment_weight_decay=decay)), decay=decay)


def verdict(t: pd.DataFrame) -> list[str]:
    """Apply the rule of the docstring per estimator."""
    out = []
    for method, g in t[t["decay"] > 0].groupby("method"):
        rows = []
        for decay, h in g.groupby("decay"):
            gmean = float(np.exp(np.log(h["loss_ratio"]).mean()))
            ok = bool((h["loss_ratio"] <= TOLERANCE).all())
            rows.append((decay, gmean, ok, float(h["loss_ratio"].max()), h.loc[h["loss_ratio"].idxmax(), "design"]))
            out.append(f"{method}, WD {decay:g}: held-out loss ratio geometric mean {gmean:.4f}, worst "
                       f"{rows[-1][3]:.4f} ({rows[-1][4]}) -> {'within' if ok else 'outside'} the 1% tolerance "
                       f"on every design; MSE ratio median {h['mse_ratio'].median():.2f}.")
        good = [r for r in rows if r[2] and r[1] < 1]
        pick = min(good, key=lambda r: r[1])[0] if good else 0.0
        out.append(f"**Rule's choice for {method}: WD = {pick:g}.**")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_member_args(ap)
    ap.add_argument("--decays", default="0,0.001,0.01")
    ap.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = ap.parse_args(argv)
    jobs = [(d, args.n, int(s), float(w)) for d in args.designs.split(",") for s in args.seeds.split(",")
            for w in args.decays.split(",")]
    df = fit_and_merge(CSV, KEY, _fit, jobs, args.n_jobs, args.from_csv)
    t = ratio_table(df, "decay", lambda v: v == 0)
    command = args.command or command_line("bench_treatment_decay.py", argv)
    lines = header_lines(command, args.n_jobs, args.from_csv) + [
             "One default member (no bootstrap, default step budget) per design, seed and `treatment_weight_decay` "
             "(WD). Criterion (no truth): `held-out stage-2`, the median over seeds of the kept check's held-out "
             "loss; `loss ratio` = this WD / WD 0 on the same design. `MSE` (truth) is for information and for the "
             "issue's check that no design gets worse. Rule, stated before the run (script docstring): among the "
             "nonzero WD within 1% of WD 0's held-out loss on every design of an estimator, the one with the "
             "lowest geometric-mean loss ratio, if below 1.", "",
             "| design | n | method | WD " + RATIO_COLUMNS[0], "|---|---|---|---" + RATIO_COLUMNS[1]]
    for r in t.sort_values(["method", "design", "n", "decay"]).itertuples():
        lines.append(f"| {r.design} | {r.n:,} | {r.method} | {r.decay:g} " + ratio_cells(r))
    finish_section("## Treatment-network weight decay", lines, verdict(t), DECISION, not args.no_write)


if __name__ == "__main__":
    main()
