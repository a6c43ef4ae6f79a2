"""DFPV benchmarks: demand PCL and dSprites PCL (DESIGN §5); writes "## DFPV" in benchmarks/RESULTS.md.

Run from the repository root on one thread:

    OMP_NUM_THREADS=1 python benchmarks/diagnostics/bench_dfpv.py [--demand-seeds 0 1 2 3 4] [--dsprites-seeds 0 1 2]
        [--dsprites-epochs N] [--no-write]

Only the "## DFPV" section of RESULTS.md is replaced; the other sections are kept.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _results import machine, single_thread, write_section  # noqa: E402

single_thread()

from deepcausal.datasets import demand_proxy, dsprites_proxy  # noqa: E402
from deepcausal.proxy import DFPV  # noqa: E402


def run_demand(seeds, n=5000):
    rows = []
    for label, settings in (("default (proximal)", {}), ('mode="ridge"', {"mode": "ridge"})):
        for seed in seeds:
            d = demand_proxy(n, seed=seed)
            t = time.perf_counter()
            est = DFPV(random_state=seed, **settings).fit(d.train, **d.fit_kwargs())
            sec = time.perf_counter() - t
            rows.append(dict(setting=label, seed=seed, mse=d.score(est.predict(d.test_X)),
                             mse_current=d.score(est.predict(d.test_X, heads="current")), seconds=sec))
            print(rows[-1], flush=True)
    return rows


def run_dsprites(seeds, n=5000, n_epochs=None):
    rows = []
    for seed in seeds:
        d = dsprites_proxy(n, seed=seed)
        kw = d.array_kwargs()
        t = time.perf_counter()
        est = DFPV(random_state=seed, n_epochs=n_epochs).fit(kw["Y"], kw["A"], Z=kw["Z"], W=kw["W"])
        sec = time.perf_counter() - t
        test = d.test_X["treatment"]
        rows.append(dict(seed=seed, mse_refit=d.score(est.predict(test)),
                         mse_current=d.score(est.predict(test, heads="current")), seconds=sec,
                         var_truth=float(np.var(d.test_truth))))
        print(rows[-1], flush=True)
    return rows


def _summary(values):
    v = np.asarray(values, dtype=float)
    return f"{np.median(v):.2f} ({v.min():.2f}–{v.max():.2f})"


def markdown(demand_rows, dsprites_rows, command, n_epochs) -> str:
    lines = ["## DFPV", "", f"Command: `{command}` (from the repository root).",
             f"Machine: {machine()}; {datetime.date.today()}.", ""]
    if demand_rows:
        seeds = sorted({r["seed"] for r in demand_rows})
        lines += [f"**Demand PCL**, n = 5,000, seeds {seeds}: structural MSE on the 10 test prices "
                  "(a constant at the true mean scores ≈ 47; the original DFPV code ≈ 52–61).", "",
                  "| setting | MSE median (min–max) | MSE, current heads | median fit s | target |",
                  "|---|---|---|---|---|"]
        for label in dict.fromkeys(r["setting"] for r in demand_rows):
            rs = [r for r in demand_rows if r["setting"] == label]
            lines.append(f"| {label} | {_summary([r['mse'] for r in rs])} | "
                         f"{_summary([r['mse_current'] for r in rs])} | "
                         f"{np.median([r['seconds'] for r in rs]):.1f} | "
                         f"{'≤ 10' if label.startswith('default') else '–'} |")
        lines += ["", "Per seed (refit heads): " + "; ".join(
            f"{r['setting']} s{r['seed']}: {r['mse']:.2f}" for r in demand_rows), ""]
    if dsprites_rows:
        seeds = [r["seed"] for r in dsprites_rows]
        ep = "default (100)" if n_epochs is None else str(n_epochs)
        lines += [f"**dSprites PCL**, n = 5,000, seeds {seeds}, epochs {ep}: structural MSE on the 588 "
                  f"test images; Var(f) on the test grid = {dsprites_rows[0]['var_truth']:.2f}.", "",
                  "| seed | MSE refit heads | MSE current heads | fit s |", "|---|---|---|---|"]
        for r in dsprites_rows:
            lines.append(f"| {r['seed']} | {r['mse_refit']:.3f} | {r['mse_current']:.3f} | {r['seconds']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demand-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    p.add_argument("--dsprites-seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--dsprites-epochs", type=int, default=None)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--notes", default="", help="free text appended to the section")
    args = p.parse_args(argv)
    demand_rows = run_demand(args.demand_seeds) if args.demand_seeds else []
    dsprites_rows = run_dsprites(args.dsprites_seeds, n_epochs=args.dsprites_epochs) if args.dsprites_seeds else []
    command = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/bench_dfpv.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(demand_rows, dsprites_rows, command.strip(), args.dsprites_epochs)
    if args.notes:
        text += "\n" + args.notes + "\n"
    print(text)
    if not args.no_write:
        write_section("## DFPV", text)


if __name__ == "__main__":
    main()
