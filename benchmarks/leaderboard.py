"""The leaderboard: every applicable method on every benchmark design (issue 27), and the summaries built on it.

Runs ``deepcausal.benchmark.run`` design by design — every installed method that applies, ``--seeds`` (0, 1, 2),
``--n`` rows (5,000, dSprites included), one thread per process (our ensembles fit their members on both
cores) — and appends each fit's row to ``benchmarks/leaderboard.csv`` as it finishes, so an interrupted run
resumes where it stopped. Then it writes, from the CSV:

* RESULTS.md "## Leaderboard": for each design every method's median structural MSE over the seeds with its
  range, its median fit seconds, our rank among the methods and the ratio of our MSE to the best peer's;
  and the wall time of the whole run;
* RESULTS.md "## Summary" (the section that opens the file): one line per design, our default against the
  best peer, with the default ensemble's band coverage where ``bench_coverage.py`` measured it;
* the README's short leaderboard, between the ``<!-- leaderboard -->`` markers.

Command (from the repository root): ``OMP_NUM_THREADS=1 python benchmarks/leaderboard.py [--designs a,b]
[--seeds 0,1,2] [--n 5000] [--summarise-only] [--save-models DIR]``. The same fits, without the tables:
``deepcausal bench --design all --methods all --seeds 0,1,2 --n 5000``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _results import RESULTS, ROOT, machine, write_section  # noqa: E402

from deepcausal.benchmark import all_designs, design_kind, design_source, resolve_methods, run  # noqa: E402

CSV = Path(__file__).resolve().parent / "leaderboard.csv"
TIMES = Path(__file__).resolve().parent / "leaderboard_times.csv"
OURS = {"dfiv", "dfpv"}
NAIVE = {"naive", "naive_proxy"}
# Our rows are fitted again when our default changes; the peers' rows stay as they were fitted.
OURS_RERUN = ("DFIV's rows on the 13 designs with continuous instruments were fitted again on 2026-12-06, when "
              "the held-out rule became the default (issue 35). Where the rule kept the trained head on every seed, "
              "the change from the earlier rows comes from code changed since they were fitted (stacked members, "
              "issue 29), not from the rule. DFIV's rows on demand_highdim were fitted again later that day, when the "
              "covariate screen became the default (beside another benchmark on the second core). DFPV's rows were "
              "fitted again on 2026-12-06 too: they predated the stacked members, which moved the medians on its vector "
              "designs by at most 2% (single seeds by up to 16%; dsprites_proxy: the same). DFIV's rows on the 13 "
              "designs with continuous instruments were fitted again once more, when the spline's instruments took "
              "CCK's ratio (\"The spline's instrument basis at CCK's ratio\"): 31 of the 39 rows came out identical; "
              "chen_christensen_severe, kiv_linear, kiv_sigmoid and newey_powell moved. The same run fitted the "
              "peers' rows a run cut short had left out on demand_highdim (dmliv seed 2, driv seeds 1-2, forest_driv "
              "seeds 1-2, orthoiv seed 2): forest_driv became the best peer there. DFIV's demand_highdim seed 2 and "
              "some of those peers' fits ran beside another benchmark on the second core. The same 39 rows were "
              "fitted again on 2026-12-06, when the trained head the held-out rule keeps came to be re-solved on "
              "every row (\"The trained head re-solved on every row once chosen\"): 16 came out identical (the line "
              "or the spline reported), 23 moved; two of them (demand seeds 0-1) were first fitted beside a second "
              "leaderboard process and fitted again alone, and their fit seconds are the second run's.")
COVERAGE_DESIGNS = {"demand", "demand_proxy", "lowdim_abs", "lowdim_linear", "lowdim_sin", "lowdim_step",
                    "linear_binary_iv"}


def fit_designs(designs, seeds, n, models=None) -> None:
    """Fit what the CSV does not hold yet, one design and seed at a time, saving each row as it comes
    (and, with ``models``, our fitted estimators there as ``<design>_<method>_<seed>.pt``)."""
    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=["design", "method", "seed"])
    for design in designs:
        methods = resolve_methods([design], "all")[design]
        start, fitted = time.perf_counter(), 0
        for seed in seeds:
            have = set(done.loc[(done["design"] == design) & (done["seed"] == seed), "method"])
            missing = [m for m in methods if m not in have]
            if not missing:
                continue

            def save(row, pred, drawn):
                nonlocal done
                done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
                done.to_csv(CSV, index=False)
                print(f"{row['design']} {row['method']} seed {row['seed']}: MSE {row['mse']:.4g} in "
                      f"{row['fit_seconds']:.1f} s", flush=True)

            def keep(row, fitted):
                if models is not None and row["method"] in OURS:
                    Path(models).mkdir(parents=True, exist_ok=True)
                    fitted.estimator_.save(Path(models) / f"{row['design']}_{row['method']}_{row['seed']}.pt")

            run([design], missing, [seed], n=n, progress=False, on_result=save, on_fitted=keep)
            fitted += len(missing)
        if fitted:
            times = pd.read_csv(TIMES) if TIMES.exists() else pd.DataFrame(columns=["design", "fits", "wall_seconds"])
            times = pd.concat([times, pd.DataFrame([{"design": design, "fits": fitted,
                                                     "wall_seconds": time.perf_counter() - start}])], ignore_index=True)
            times.to_csv(TIMES, index=False)


def _table(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["design", "method"])
    t = g.agg(mse=("mse", "median"), lo=("mse", "min"), hi=("mse", "max"), seconds=("fit_seconds", "median"),
              seeds=("seed", "nunique")).reset_index()
    t["rank"] = t.groupby("design")["mse"].rank(method="min").astype(int)
    return t.sort_values(["design", "mse"])


def _ours_vs_best(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for design, d in t.groupby("design", sort=False):
        ours = d[d["method"].isin(OURS)]
        peers = d[~d["method"].isin(OURS | NAIVE)]
        if ours.empty:
            continue
        o = ours.iloc[0]
        best = peers.iloc[0] if len(peers) else None
        rows.append({"design": design, "kind": design_kind(design), "ours": o["method"], "ours_mse": o["mse"],
                     "ours_s": o["seconds"], "rank": int(o["rank"]), "methods": len(d),
                     "best_peer": None if best is None else best["method"],
                     "best_mse": np.nan if best is None else best["mse"],
                     "best_s": np.nan if best is None else best["seconds"],
                     "ratio": np.nan if best is None else o["mse"] / best["mse"]})
    return pd.DataFrame(rows)


def _fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3g}"


def write(command: str) -> None:
    df = pd.read_csv(CSV).drop_duplicates(["design", "method", "seed"], keep="last")
    failed = df[df["mse"].isna()]
    df = df[df["mse"].notna()]
    t = _table(df)
    summary = _ours_vs_best(t)
    times = pd.read_csv(TIMES) if TIMES.exists() else pd.DataFrame()
    total = float(times["wall_seconds"].sum()) if len(times) else float("nan")
    wins = int((summary["ratio"] <= 1.0).sum())
    lines = [
        "## Leaderboard", "",
        f"Command: `{command}` (from the repository root; raw rows in `benchmarks/leaderboard.csv`, one per fit).",
        f"Machine: {machine()}. The runs took {total / 3600:.1f} h of wall time in all, the refits below included "
        f"(`benchmarks/leaderboard_times.csv`, per design and run). {OURS_RERUN}", "",
        "Every installed method that applies to the design, n = 5,000 rows, seeds 0, 1, 2, each fit in this process on "
        "one thread (our ensembles fit their 5 members in 2 worker processes, one per core). MSE: structural mean "
        "squared error at the design's test points, median over seeds (min–max); `s`: median fit seconds; "
        "`rank`: among all methods on the design (1 = lowest MSE). econml's estimators give effects only; they are "
        "completed into structural functions as the `deepcausal.baselines` docstrings describe. Sources of the "
        "designs: `deepcausal bench --list-designs`.", "",
        f"**Our default against the best peer** (naive regressions excluded from 'peer'): best or tied on {wins} of "
        f"{len(summary)} designs.", "",
        "| design | kind | ours | MSE | rank | best peer | its MSE | ours / best | our s | peer's s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.itertuples():
        lines.append(f"| {r.design} | {r.kind} | {r.ours} | {_fmt(r.ours_mse)} | {r.rank} of {r.methods} | "
                     f"{r.best_peer or '–'} | {_fmt(r.best_mse)} | {_fmt(r.ratio)} | {r.ours_s:.0f} | "
                     f"{_fmt(r.best_s)} |")
    lines += ["", "Every method on every design (median MSE (min–max), median fit seconds):", ""]
    for design, d in t.groupby("design", sort=False):
        lines += [f"**{design}** ({design_kind(design)}; {design_source(design)})", "",
                  "| rank | method | MSE | min–max | s |", "|---|---|---|---|---|"]
        for r in d.itertuples():
            name = f"**{r.method}**" if r.method in OURS else r.method
            lines.append(f"| {r.rank} | {name} | {_fmt(r.mse)} | {_fmt(r.lo)}–{_fmt(r.hi)} | {r.seconds:.1f} |")
        lines.append("")
    seeds = df.groupby(["design", "method"])["seed"].nunique()
    most = df.groupby("design")["seed"].nunique()
    short = [(design, method, k) for (design, method), k in seeds.items() if k < most[design]]
    if short:  # e.g. a run cut short, or a method too slow for every seed
        lines += ["Methods fitted on fewer seeds than the others on their design (medians over those seeds):", ""]
        lines += [f"- {design}, {method}: {k} of {most[design]} seeds" for design, method, k in short] + [""]
    if len(failed):
        lines += ["Fits that failed (no MSE; not ranked):", ""]
        for (design, method, error), g in failed.groupby(["design", "method", "error"]):
            lines.append(f"- {design}, {method}, seeds {', '.join(map(str, sorted(g['seed'])))}: {error}")
        lines.append("")
    write_section("## Leaderboard", "\n".join(lines))
    _write_summary(summary)
    _write_readme(summary, total)


def _write_summary(summary: pd.DataFrame) -> None:
    coverage_csv = RESULTS.parent / "coverage.csv"
    cov = pd.read_csv(coverage_csv) if coverage_csv.exists() else pd.DataFrame()
    if len(cov):
        cov = cov[(cov["method"] != "npiv") & (cov["members"] == cov.loc[cov["method"] != "npiv", "members"].max())]
    lines = [
        "## Summary", "",
        "Our default estimator on each design against the best other method (structural MSE, median over seeds "
        "0–2 at n = 5,000; \"Leaderboard\"), the default ensemble's 95% band coverage where it was measured "
        "(pointwise: share of test points inside; uniform: share of replications covering the whole curve; "
        "\"Confidence bands\", lowdim at n = 1,000), and the median fit seconds on the 2-core machine. Ratio below "
        "1: we are better. Written by `python benchmarks/leaderboard.py --summarise-only`.", "",
        "| design | ours (MSE) | best peer (MSE) | ratio | pointwise coverage | uniform coverage | our fit | peer's fit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.itertuples():
        c = cov[cov["design"] == r.design] if len(cov) else cov
        pw = f"{c['pointwise_coverage'].mean():.2f}" if len(c) else "–"
        un = f"{c['uniform_full_coverage'].mean():.2f}" if len(c) else "–"
        lines.append(f"| {r.design} | {r.ours.upper()} {_fmt(r.ours_mse)} | {r.best_peer or '–'} {_fmt(r.best_mse)} | "
                     f"{_fmt(r.ratio)} | {pw} | {un} | {r.ours_s:.0f} s | {_fmt(r.best_s)} s |")
    write_section("## Summary", "\n".join(lines) + "\n", first=True)


def _write_readme(summary: pd.DataFrame, total: float) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    rows = ["| design | ours | MSE | best other method | its MSE | ours / best |", "|---|---|---|---|---|---|"]
    rows += [f"| {r.design} | {r.ours.upper()} | {_fmt(r.ours_mse)} | {r.best_peer or '–'} | {_fmt(r.best_mse)} | "
             f"{_fmt(r.ratio)} |" for r in summary.itertuples()]
    block = ("<!-- leaderboard -->\n" + "\n".join(rows) + "\n\n"
             f"Median structural MSE over seeds 0–2 at n = 5,000 (`benchmarks/RESULTS.md`, \"Leaderboard\", with every "
             f"method, the spreads and the fit times; its runs took {total / 3600:.1f} h on 2 cores in all).\n"
             "<!-- /leaderboard -->")
    new, count = re.subn(r"<!-- leaderboard -->.*?<!-- /leaderboard -->", block, text, flags=re.S)
    if count:
        readme.write_text(new)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", default="all")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--summarise-only", action="store_true")
    ap.add_argument("--save-models", default=None, help="a folder to keep our fitted estimators in (not versioned)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    designs = all_designs() if args.designs == "all" else args.designs.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if not args.summarise_only:
        fit_designs(designs, seeds, args.n, args.save_models)
    write(f"OMP_NUM_THREADS=1 python benchmarks/leaderboard.py --seeds {args.seeds} --n {args.n}")


if __name__ == "__main__":
    main()
