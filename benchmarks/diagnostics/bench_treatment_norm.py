"""Row-normalised treatment features for DFIV, by held-out losses, on every design it applies to (issue 14).

DFIV's stage-2 loss is taken with the ridge-shrunk head fixed, so its gradient keeps enlarging the treatment
features ψ: they drift over long fits, and at 10⁶ rows a fit diverged (RESULTS "Diagnosis: treatment-feature
drift"). ``SkipMLP(normalize=True)`` divides each row's learned treatment features by their root mean square,
which removes the scale that drifts. For each IV design of :mod:`deepcausal.datasets` with a vector treatment
(dSprites' treatment is an image, whose network is bounded already and unchanged) and each seed, this fits one
default member with the default treatment network and with the normalised one (same width, 4) and reports the
kept check's held-out stage-2 loss (the criterion, no truth), the held-out stage-1 R², and for information the
structural MSE and the fit seconds.

Rule, stated before the run: the normalised network becomes DFIV's default if its median held-out stage-2 loss
is at most 1% above the default's on every design. No gain is asked for at n = 5,000: the change is meant to
remove a drift that shows in long fits on large data. The scale rows (``diag_treatment_decay.py`` at 10⁵ and 10⁶
with ``norm``) must then show no held-out loss more than 1% above the default's either.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/bench_treatment_norm.py [--seeds 0,1,2] [--designs a,b] [--n N]
[--n-jobs 2] [--from-csv]``; raw rows in ``benchmarks/diagnostics/treatment_norm.csv``.
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

CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "treatment_norm.csv")
KEY = ["design", "n", "seed", "normalized"]
TOLERANCE = 1.01
IV_VECTOR_DESIGNS = ("demand", "lowdim_abs", "lowdim_linear", "lowdim_sin", "lowdim_step", "linear_binary_iv")
# What the default became, and why (written with the measurements).
DECISION = (
    "Decision: **no default changes; DFIV's treatment network stays unnormalised**, as the rule says: at n = 5,000 "
    "lowdim_abs and lowdim_linear are 1.2% above the default's held-out loss. At n = 100,000 the normalised network "
    "passes (every design at or below the default, demand -1.4%), but a switch by data size was not the rule stated "
    "before the run, and the truth (information) points against it at that size: the median MSE ratio is 1.18, "
    "worse on four of six designs (lowdim_sin 1.9x). At 10⁶ rows on demand it removes the drift and the divergence "
    "(\"Diagnosis: treatment-feature drift\": MSE 5.5, 4.3, 9.0 against 25.2, 29.4 (diverged), 14.1), so it stays "
    "an option for very large DFIV fits: `DFIV(treatment_net=functools.partial(SkipMLP, d_out=4, normalize=True))`.")


def _fit(design: str, n_tab: int, seed: int, normalized: bool) -> dict:
    from functools import partial

    from deepcausal.nets import SkipMLP

    params = dict(treatment_net=partial(SkipMLP, d_out=4, normalize=True)) if normalized else {}
    return dict(fit_member(design, n_tab, seed, params), normalized=bool(normalized))


def verdict(t: pd.DataFrame) -> list[str]:
    """Apply the rule of the docstring at each training size."""
    out = []
    for n, h in t[t["normalized"].astype(bool)].groupby("n"):
        gmean = float(np.exp(np.log(h["loss_ratio"]).mean()))
        worst = h.loc[h["loss_ratio"].idxmax()]
        ok = bool((h["loss_ratio"] <= TOLERANCE).all())
        out.append(f"n = {int(n):,}: normalised / default held-out loss, geometric mean {gmean:.4f}, worst "
                   f"{worst['loss_ratio']:.4f} ({worst['design']}); MSE ratio median {h['mse_ratio'].median():.2f} "
                   f"(truth, information). **Every design within 1%: {'yes' if ok else 'no'}.**")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_member_args(ap)
    ap.set_defaults(designs=",".join(IV_VECTOR_DESIGNS))
    ap.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = ap.parse_args(argv)
    jobs = [(d, args.n, int(s), v) for d in args.designs.split(",") for s in args.seeds.split(",")
            for v in (False, True)]
    df = fit_and_merge(CSV, KEY, _fit, jobs, args.n_jobs, args.from_csv)
    df["normalized"] = df["normalized"].astype(str).str.lower().eq("true")
    t = ratio_table(df, "normalized", lambda v: ~v.astype(bool))
    command = args.command or command_line("bench_treatment_norm.py", argv)
    lines = header_lines(command, args.n_jobs, args.from_csv) + [
             "One default DFIV member (no bootstrap, default step budget) per design and seed, with the default "
             "treatment network and with its learned features normalised per row (`SkipMLP(normalize=True)`, "
             "width 4). Criterion (no truth): `held-out stage-2`, the median over seeds of the kept check's "
             "held-out loss; `loss ratio` = normalised / default on the same design. `MSE` (truth) is for "
             "information. Rule, stated before the run (script docstring): adopt if every design's loss ratio is "
             "at most 1.01.", "",
             "| design | n | normalised " + RATIO_COLUMNS[0], "|---|---|---" + RATIO_COLUMNS[1]]
    for r in t.sort_values(["design", "n", "normalized"]).itertuples():
        lines.append(f"| {r.design} | {r.n:,} | {'yes' if r.normalized else 'no'} " + ratio_cells(r))
    finish_section("## Treatment-feature normalisation (DFIV)", lines, verdict(t), DECISION, not args.no_write)


if __name__ == "__main__":
    main()
