"""Feature widths of the default vector networks, chosen by the held-out stage-2 loss (never the truth).

For each design and seed, fit the default estimator with narrower or wider default networks and report
the held-out stage-2 loss at the kept check (the selection criterion), the fit seconds, and, for
information only, the structural MSE against the known truth. The rule applied to choose the defaults:
the narrowest setting whose median held-out stage-2 loss is within 2% of the best setting's on every
design (narrow heads make every solve and the bootstrap cheaper).

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/bench_widths.py [--seeds 0,1] [--only dfiv|dfpv]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from functools import partial

os.environ.setdefault("OMP_NUM_THREADS", "1")
import pandas as pd  # noqa: E402
import torch  # noqa: E402

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
from _results import machine, write_section  # noqa: E402

from deepcausal import DFIV, DFPV  # noqa: E402
from deepcausal.datasets import demand, demand_proxy, lowdim  # noqa: E402
from deepcausal.nets import SkipMLP, mlp  # noqa: E402

DFIV_WIDTHS = {"treatment 16, covariate 16": (16, 16), "treatment 8, covariate 8": (8, 8),
               "treatment 4, covariate 8": (4, 8), "treatment 1, covariate 16": (1, 16)}
DFPV_WIDTHS = {"all 16": 16, "all 8": 8, "all 4": 4}


def dfiv_runs(seeds):
    for design in ("demand", "lowdim sin"):
        for seed in seeds:
            d = demand(5000, rho=0.5, seed=seed) if design == "demand" else lowdim(5000, g="sin", seed=seed)
            for name, (wt, wc) in DFIV_WIDTHS.items():
                est = DFIV(random_state=seed, n_estimators=1, n_bootstrap=0, treatment_net=partial(SkipMLP, d_out=wt),
                           covariate_net=partial(SkipMLP, d_out=wc))
                yield "DFIV", design, seed, name, est, d


def dfpv_runs(seeds):
    for seed in seeds:
        d = demand_proxy(5000, seed=seed)
        for name, w in DFPV_WIDTHS.items():
            net = partial(mlp, d_out=w)
            est = DFPV(random_state=seed, n_estimators=1, n_bootstrap=0, treatment_net=net, stage1_treatment_net=net,
                       treatment_proxy_net=net, outcome_proxy_net=net)
            yield "DFPV", "demand_proxy", seed, name, est, d


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--only", choices=["dfiv", "dfpv"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    if args.only != "dfpv":
        runs.append(dfiv_runs(seeds))
    if args.only != "dfiv":
        runs.append(dfpv_runs(seeds))
    rows = []
    for gen in runs:
        for method, design, seed, name, est, d in gen:
            t = time.perf_counter()
            est.fit(d.train, **d.fit_kwargs())
            seconds = time.perf_counter() - t
            kept = est.history_.loc[est.history_["kept"]].iloc[0]
            rows.append(dict(method=method, design=design, seed=seed, widths=name,
                             held_out_stage2=float(kept["val_stage2_median"]), fit_s=seconds,
                             steps=est.stopping_["steps"], mse=d.score(est.predict(d.test_X))))
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    table = (df.groupby(["method", "design", "widths"], sort=False)
               .agg(held_out_stage2=("held_out_stage2", "median"), fit_s=("fit_s", "median"),
                    steps=("steps", "median"), mse=("mse", "median"), seeds=("seed", "count")).reset_index())
    best = table.groupby(["method", "design"])["held_out_stage2"].transform("min")
    table["vs_best"] = table["held_out_stage2"] / best
    lines = [f"Command: `OMP_NUM_THREADS=1 python benchmarks/diagnostics/bench_widths.py --seeds {args.seeds}"
             + (f" --only {args.only}" if args.only else "") + "` (from the repository root).",
             f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}.", "",
             "Default estimators (n = 5,000, no bootstrap) with other default-network widths. `held-out stage-2` is "
             "the median over seeds of the kept check's held-out loss (the criterion; standardized units), "
             "`vs best` its ratio to the best width of that design. `MSE` (truth) is for information only.", "",
             "| method | design | widths | held-out stage-2 | vs best | MSE (truth, info) | fit s | steps | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.method} | {r.design} | {r.widths} | {r.held_out_stage2:.5g} | {r.vs_best:.3f} | "
                     f"{r.mse:.4g} | {r.fit_s:.1f} | {r.steps:.0f} | {r.seeds} |")
    title = "## Default network widths" + (f" ({args.only.upper()})" if args.only else "")
    write_section(title, title + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
