"""What DFPV's pointwise band on demand PCL is made of, term by term (issue 24, defect 3).

For each replication of ``bench_coverage.py`` (data seed 1000 + rep, ``random_state=rep``, the default
5-member DFPV, n = 5,000), on the design's test grid:

* the pointwise coverage and width of the default band (Rubin's rules with Student's t quantiles, the
  head draws carrying the noise of the stage-2 mean of ψ_W);
* the same band without that summary noise (the members' ``summary_draws_`` set aside), and with the
  normal quantile instead of t: what each change bought;
* the variance terms, averaged over the grid: within-member (bootstrap) variance with and without the
  summary noise, and (1 + 1/K) × the between-member variance;
* the squared bias of the ensemble (its error against the truth) next to the band's variance: the term
  the band leaves out.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_dfpv_band_terms.py --reps 5`` (from the
repository root; writes the section "Diagnosis: DFPV's band on demand PCL" of RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _results import machine, single_thread, write_section  # noqa: E402

from deepcausal import DFPV  # noqa: E402
from deepcausal.datasets import demand_proxy  # noqa: E402

TITLE = "## Diagnosis: DFPV's band on demand PCL (information)"


def band_terms(est, d) -> dict:
    truth = d.test_truth
    inputs = est._prediction_inputs(d.test_X)
    phi = est._levels(inputs)
    scale = float(est.scalers_["Y"].scale[0])

    def terms():
        ests, devs = est._linear_statistic(phi)
        K = ests.shape[0]
        within = np.mean([v.var(axis=0, ddof=1) for v in devs], axis=0) * scale**2
        between = (1 + 1 / K) * ests.var(axis=0, ddof=1) * scale**2
        return within, between

    within, between = terms()
    kept = [m.summary_draws_ for m in est.estimators_]
    for m in est.estimators_:
        m.summary_draws_ = None
    try:
        within_heads, _ = terms()
        lo0, hi0 = est.predict_interval(d.test_X)
    finally:
        for m, s in zip(est.estimators_, kept):
            m.summary_draws_ = s
    pred = est.predict(d.test_X)
    lo, hi = est.predict_interval(d.test_X)
    se = np.sqrt(within + between)
    sd = float(np.std(truth))
    return {
        "mse": float(np.mean((pred - truth) ** 2)),
        "coverage": float(np.mean((lo <= truth) & (truth <= hi))),
        "width_sd": float(np.mean(hi - lo) / sd),
        "coverage_no_summary_noise": float(np.mean((lo0 <= truth) & (truth <= hi0))),
        "width_no_summary_noise_sd": float(np.mean(hi0 - lo0) / sd),
        "coverage_normal_quantile": float(np.mean(np.abs(pred - truth) <= 1.959963984540054 * se)),
        "within_var": float(np.mean(within)),
        "within_var_heads_only": float(np.mean(within_heads)),
        "between_var": float(np.mean(between)),
        "bias_sq": float(np.mean((pred - truth) ** 2)),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args(argv)
    single_thread()
    warnings.simplefilter("ignore")
    rows = []
    for rep in range(args.reps):
        d = demand_proxy(args.n, seed=1000 + rep)
        est = DFPV(random_state=rep, verbose=False).fit(d.train, **d.fit_kwargs())
        rows.append({"rep": rep, **band_terms(est, d)})
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    med = df.drop(columns="rep").mean()
    command = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_dfpv_band_terms.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    lines = [
        TITLE, "",
        f"Command: `{command}` (from the repository root). Machine: {machine()}.", "",
        f"The default DFPV ensemble (5 members) on demand PCL, n = {args.n}, the replications of `bench_coverage.py` "
        f"(data seed 1000 + rep); means over {args.reps} replications of grid averages. Variances in outcome units².",
        "",
        "| term | value |", "|---|---|",
        f"| pointwise coverage (default band) | {med['coverage']:.3f} (width {med['width_sd']:.2f} sd) |",
        f"| the same without the noise of the stage-2 mean of ψ_W | {med['coverage_no_summary_noise']:.3f} "
        f"(width {med['width_no_summary_noise_sd']:.2f} sd) |",
        f"| the default's variance with the normal quantile instead of t | {med['coverage_normal_quantile']:.3f} |",
        f"| within-member variance, with the summary noise | {med['within_var']:.3g} |",
        f"| within-member variance, heads only | {med['within_var_heads_only']:.3g} |",
        f"| (1 + 1/K) × between-member variance | {med['between_var']:.3g} |",
        f"| squared error of the ensemble (bias² + its variance) | {med['bias_sq']:.3g} |",
        "",
        "Per replication:", "",
        "| rep | MSE | coverage | without summary noise | normal quantile | within | within (heads) | between |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        lines.append(f"| {r.rep} | {r.mse:.4g} | {r.coverage:.2f} | {r.coverage_no_summary_noise:.2f} | "
                     f"{r.coverage_normal_quantile:.2f} | {r.within_var:.3g} | {r.within_var_heads_only:.3g} | "
                     f"{r.between_var:.3g} |")
    write_section(TITLE, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
