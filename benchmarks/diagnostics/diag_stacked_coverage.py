"""Do stacked members keep the bands' coverage? (issue 29: coverage within 0.02 of members trained alone)

For each design and replication (a fresh seed) this fits the default DFIV ensemble (5 members, n_jobs=-1) twice
on the same data: as the default does, members trained as stacks (deepcausal._stacked), and with every member
trained alone (``DFIV._stack_members = False``, the default before issue 29). Each pair is scored as
bench_coverage.py scores a fit: structural MSE, the share of test points inside the 95% pointwise band, and
whether the 95% uniform band covers the whole curve. The members of the two fits start from the same weights and
see the same batches, and differ only by the rounding of batched products, which training carries to a
different final state.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_stacked_coverage.py [--designs lowdim_sin,lowdim_abs]
[--reps 20]``; raw rows in ``benchmarks/diagnostics/stacked_coverage.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
import pandas as pd  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
from _results import machine, write_section  # noqa: E402
from bench_coverage import DESIGNS, _band_scores  # noqa: E402

from deepcausal import DFIV  # noqa: E402

CSV = os.path.join(HERE, "stacked_coverage.csv")
TITLE = "## Stacked members: coverage against members trained alone (issue 29)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--designs", default="lowdim_sin,lowdim_abs")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for design in args.designs.split(","):
        make, n, _ = DESIGNS[design]
        for rep in range(args.reps):
            d = make(n, rep)
            for variant in ("stacked", "alone"):
                DFIV._stack_members = variant == "stacked"
                t = time.perf_counter()
                est = DFIV(random_state=rep, verbose=False).fit(d.train, **d.fit_kwargs())
                seconds = time.perf_counter() - t
                lo, hi = est.predict_interval(d.test_X, alpha=0.05)
                ulo, uhi = est.predict_interval(d.test_X, alpha=0.05, band="uniform")
                pointwise, _, width = _band_scores(lo, hi, d.test_truth)
                _, uniform, _ = _band_scores(ulo, uhi, d.test_truth)
                rows.append(dict(design=design, rep=rep, variant=variant, mse=d.score(est.predict(d.test_X)),
                                 pointwise=pointwise, uniform=uniform, width=width, fit_s=seconds))
                print(rows[-1], flush=True)
    DFIV._stack_members = True
    df = pd.DataFrame(rows)
    df.to_csv(CSV, index=False)
    lines = [TITLE, "", f"Command: `OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_stacked_coverage.py --designs "
             f"{args.designs} --reps {args.reps}` (from the repository root).", f"Machine: {machine()}.", "",
             "Default DFIV ensembles (5 members) fitted twice per replication on the same data: members stacked (the "
             "default) and every member alone (before issue 29); see the script's docstring. Means over replications; "
             "median MSE. Target: pointwise coverage within 0.02 of `alone`.", "",
             "| design | variant | reps | pointwise coverage | uniform coverage | band width / sd(truth) | median MSE | "
             "median fit s |", "|---|---|---|---|---|---|---|---|"]
    for (design, variant), g in df.groupby(["design", "variant"], sort=False):
        lines.append(f"| {design} | {variant} | {len(g)} | {g['pointwise'].mean():.3f} | {g['uniform'].mean():.2f} | "
                     f"{g['width'].mean():.3f} | {g['mse'].median():.4g} | {g['fit_s'].median():.1f} |")
    text = "\n".join(lines) + "\n"
    write_section(TITLE, text)
    print(text)


if __name__ == "__main__":
    main()
