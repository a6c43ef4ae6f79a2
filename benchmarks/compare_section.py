"""Collect the comparison-suite reports (benchmarks/compare/*.md, made by run_compare.sh) into RESULTS.md,
and write the one-screen summary that opens RESULTS.md from them and from the coverage rows
(benchmarks/coverage.csv, made by bench_coverage.py).

Command: ``python benchmarks/compare_section.py`` (run by ``run_compare.sh``; ``--summary-only`` rewrites the
summary alone, e.g. after a coverage run).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pandas as pd  # noqa: E402
from _results import RESULTS, machine, single_thread, write_section  # noqa: E402

TITLE = "## Comparison suite"
SUMMARY = "## Summary"
DESIGNS = ("lowdim", "demand", "demand_proxy")
OURS = {"dfiv", "dfpv"}
COVERAGE_DESIGN = {"lowdim": "lowdim_sin", "demand": "demand", "demand_proxy": "demand_proxy"}


def summary_lines() -> list:
    """For each design: our default against the best peer (median MSE and fit seconds over the comparison
    suite's seeds), and the default ensemble's band coverage (bench_coverage.py)."""
    coverage = pd.read_csv(RESULTS.parent / "coverage.csv")
    coverage = coverage[coverage["members"] == coverage.loc[coverage["method"] != "npiv", "members"].max()]
    rows = []
    for design in DESIGNS:
        fits = pd.DataFrame(pd.read_json(RESULTS.parent / "compare" / f"{design}.json", typ="series")["results"])
        med = fits.groupby("method").agg(mse=("mse", "median"), seconds=("fit_seconds", "median"))
        ours = med[med.index.isin(OURS)].iloc[0]
        peers = med[~med.index.isin(OURS | {"naive", "naive_proxy"})].sort_values("mse")
        best = peers.iloc[0]
        cov = coverage[coverage["design"] == COVERAGE_DESIGN[design]]
        rows.append(f"| {design} | {ours.name.upper()} {ours.mse:.4g} | {best.name} {best.mse:.4g} | "
                    f"{ours.mse / best.mse:.2f} | {cov['pointwise_coverage'].mean():.2f} | "
                    f"{cov['uniform_full_coverage'].mean():.2f} | {ours.seconds:.0f} s | {best.seconds:.1f} s |")
    return [
        SUMMARY,
        "",
        "Our default estimator on each design against the best other method (structural MSE, median over seeds "
        "0-2 at n = 5,000; \"Comparison suite\"), the 95% bands' coverage of the default ensemble (pointwise: "
        "share of test points inside; uniform: share of replications covering the whole curve; \"Confidence "
        "bands\", lowdim at n = 1,000), and the median fit seconds on the 2-core machine (our ensemble fits its "
        "members on both cores; the others use one). Ratio below 1: we are better. Written by "
        "`python benchmarks/compare_section.py`.",
        "",
        "| design | ours (MSE) | best peer (MSE) | ratio | pointwise coverage | uniform coverage | our fit | peer's fit |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def main() -> None:
    single_thread()
    write_section(SUMMARY, "\n".join(summary_lines()) + "\n", first=True)
    if "--summary-only" in sys.argv[1:]:
        return
    parts = [
        TITLE,
        "",
        "Made by `bash benchmarks/run_compare.sh` (every applicable method, n = 5,000, seeds 0, 1, 2, one thread; "
        f"full per-fit tables in `benchmarks/compare/`). Machine: {machine()}. `lowdim` is the sin variant. "
        "econml's estimators give effects only; they are completed into structural functions as the "
        "`deepcausal.baselines` docstrings describe.",
        "",
    ]
    for design in DESIGNS:
        text = (RESULTS.parent / "compare" / f"{design}.md").read_text()
        summary = text.split("Every fit:")[0].strip()
        parts += [f"### {design}", "", summary, "", f"![{design}](compare/{design}.png)", ""]
    write_section(TITLE, "\n".join(parts))


if __name__ == "__main__":
    main()
