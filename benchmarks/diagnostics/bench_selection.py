"""Selection by the held-out stage-2 loss, measured against the truth on every benchmark design.

    python benchmarks/diagnostics/bench_selection.py                          # every design, seed 0
    python benchmarks/diagnostics/bench_selection.py --seeds 0,1 --designs lowdim_abs,demand

Per design and seed, :class:`deepcausal.selection.StageLossSearch` fits the default grid
(:func:`deepcausal.selection.default_grid`, 8 points, the first being the defaults) and the script
scores every candidate's structural MSE on the design's test set. Three numbers per design and seed:

* **defaults**: the MSE of the estimator's default settings (the grid's first point);
* **selected**: the MSE of the point with the lowest held-out stage-2 loss (no truth involved);
* **oracle**: the lowest MSE over the grid, found *with the test truth*. It is shown only to measure
  how good the criterion is, never used to choose anything.

"Within 20%" counts the fits whose selected MSE is ≤ 1.2 × the oracle MSE.

Sizes: n = 5,000 rows (dSprites: 2,000 rows and at most 50 epochs, i.e. ``n_epochs=50`` for every
candidate and for the defaults, to keep the image fits affordable on 2 cores). ``n_bootstrap=0``
everywhere: the bootstrap runs after training and does not change predictions, only bands.
Fits run one after another on one thread (``n_jobs=1``). Raw rows (one per candidate) go to
``benchmarks/diagnostics/selection.csv``, merged by (design, seed); ``## Selection`` in RESULTS.md is written
from that file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _results import machine, markdown_table, single_thread, write_section  # noqa: E402

# Order of the runs: one of each kind first, so that a run cut short still covers IV, proxy and images.
DESIGNS = ("lowdim_abs", "demand", "demand_proxy", "dsprites", "dsprites_proxy", "lowdim_sin", "lowdim_step",
           "lowdim_linear")
CSV = Path(__file__).resolve().parent / "selection.csv"
IMAGE = {"dsprites", "dsprites_proxy"}


def run_design(name: str, seed: int, n_jobs: int, command: str, n_tab: int = 5000, n_image: int = 2000):
    import pandas as pd

    from deepcausal import DFIV, DFPV
    from deepcausal.benchmark import make_design
    from deepcausal.selection import StageLossSearch

    n = n_image if name in IMAGE else n_tab
    design, params = make_design(name, n=n, seed=seed)
    cls = DFPV if design.kind == "proxy" else DFIV
    extra = {"n_epochs": 50} if name in IMAGE else {}
    est = cls(random_state=seed, n_bootstrap=0, **extra)
    search = StageLossSearch(est, n_jobs=n_jobs, keep_candidates=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if design.train is not None:
            search.fit(design.train, **design.fit_kwargs())
        else:
            search.fit(**design.array_kwargs())
    seconds = time.perf_counter() - start
    inputs = design.test_X if design.train is not None else design.test_X["treatment"]
    rows = []
    for i, (cand, res) in enumerate(zip(search.candidates_, search.cv_results_.itertuples())):
        mse = float("nan") if cand is None else design.score(cand.predict(inputs))
        rows.append({"design": name, "parameters": params + (", n_epochs=50" if extra else ""), "seed": seed,
                     "point": i, "setting": _label(res.params), "val_stage2_loss": res.val_stage2_loss,
                     "val_stage2_median": getattr(res, "val_stage2_median", float("nan")),
                     "mse": mse, "selected": i == search.best_index_, "steps": res.steps, "stopped": res.stopped,
                     "fit_seconds": res.fit_seconds, "search_seconds": seconds, "load_start": load,
                     "load_end": os.getloadavg()[0], "command": command})
    return pd.DataFrame(rows)


def _label(params: dict) -> str:
    if not params:
        return "defaults"
    if "lam1" in params:
        return f"lam={params['lam1']:g}"
    if "beta1" in params:
        return f"beta={params['beta1']:g}"
    return ", ".join(f"{k}={v!r}" if not isinstance(v, float) else f"{k}={v:g}" for k, v in params.items())


def summarise(raw):
    import numpy as np
    import pandas as pd

    out = []
    for (design, seed), g in raw.groupby(["design", "seed"], sort=False):
        g = g.sort_values("point")
        oracle = g.loc[g["mse"].idxmin()]
        sel = g[g["selected"]].iloc[0]
        out.append({"design": design, "parameters": g["parameters"].iloc[0], "seed": seed,
                    "defaults_mse": g["mse"].iloc[0], "selected_mse": sel["mse"], "selected": sel["setting"],
                    "oracle_mse": oracle["mse"], "oracle": oracle["setting"],
                    "within_20pct": bool(sel["mse"] <= 1.2 * oracle["mse"]),
                    "selected_vs_defaults": sel["mse"] / g["mse"].iloc[0],
                    "loss_spread": g["val_stage2_loss"].max() / g["val_stage2_loss"].min() - 1,
                    "mse_spread": g["mse"].max() / g["mse"].min(),
                    "search_seconds": g["search_seconds"].iloc[0]})
    table = pd.DataFrame(out)
    table["design"] = pd.Categorical(table["design"], [d for d in DESIGNS if d in set(table["design"])])
    return table.sort_values(["design", "seed"]).reset_index(drop=True), np


def section(raw, notes: str = "") -> str:
    table, np = summarise(raw)
    k, total = int(table["within_20pct"].sum()), len(table)
    better = int((table["selected_mse"] < table["defaults_mse"]).sum())
    worse = int((table["selected_mse"] > table["defaults_mse"]).sum())
    shown = table.round({"defaults_mse": 4, "selected_mse": 4, "oracle_mse": 4, "selected_vs_defaults": 2,
                         "loss_spread": 3, "mse_spread": 2, "search_seconds": 0})
    loss_corr = []
    for (design, seed), g in raw.groupby(["design", "seed"], sort=False):
        ok = g.dropna(subset=["mse", "val_stage2_loss"])
        if len(ok) > 2:
            loss_corr.append(ok["val_stage2_loss"].rank().corr(ok["mse"].rank()))
    missing = [d for d in DESIGNS if d not in set(raw["design"])]
    return (
        "## Selection\n\n"
        "Commands (from the repository root, `PYTHONPATH=.`): " + ", ".join(f"`{c}`" for c in dict.fromkeys(raw["command"])) + " (raw rows, one per grid "
        "point: `benchmarks/diagnostics/selection.csv`).\n"
        f"Machine: {machine()}; shared with other work (1-minute load average {raw['load_start'].min():.1f}–"
        f"{raw['load_end'].max():.1f} during the runs; 2 = both cores busy).\n\n"
        "`StageLossSearch(est)` with the default grid (`default_grid`: the defaults; λ₁, λ₂ × 0.3 and × 3; "
        "β₁ = β₂ ∈ {1e-3, 1e-2, 1e-1} other than the default; lr 3e-4 and 3e-3; treatment-network output "
        "width × 2), every point fitted with the design's seed as `random_state`, `n_bootstrap=0`. n = 5,000 "
        "rows unless the `parameters` column says otherwise; dSprites IV and PCL: 2,000 rows and `n_epochs=50` for every point (defaults included), to "
        "keep image fits affordable. *defaults*: the MSE of the grid's first point (the estimator's "
        "defaults); *selected*: the point with the lowest held-out stage-2 loss (no truth used); *oracle*: "
        "the lowest MSE over the grid, **found with the test truth and shown only to measure the "
        "criterion** (never used to choose).\n\n"
        f"- The criterion picked within 20% of the oracle in **{k} of {total}** design-seed fits.\n"
        f"- Selected MSE below the defaults' in {better} of {total}, above in {worse}.\n"
        f"- Median Spearman rank correlation between held-out stage-2 loss and MSE over a grid: "
        f"{np.median(loss_corr):.2f} (1 = the criterion orders the grid exactly as the truth does).\n"
        + f"- Over a grid the held-out stage-2 losses differ by {table['loss_spread'].median():.1%} (median of "
        f"max/min − 1) while the MSEs differ by a factor {table['mse_spread'].median():.2f} (median of max/min): "
        "the criterion separates settings by far less than the truth does (`loss_spread`, `mse_spread`).\n"
        + (f"- Not run (time): {', '.join(missing)}.\n" if missing else "")
        + "\n" + markdown_table(shown) + "\n" + ("\n" + notes.strip() + "\n" if notes else "")
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--n", type=int, default=5000, help="rows of the tabular designs")
    parser.add_argument("--n-image", type=int, default=2000, help="rows of the dSprites designs")
    parser.add_argument("--csv", default=str(CSV))
    parser.add_argument("--notes", help="a markdown file of observations to print in the section")
    parser.add_argument("--report-only", action="store_true", help="write the section from the CSV, fit nothing")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    import pandas as pd

    single_thread()
    command = ("python benchmarks/diagnostics/bench_selection.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    csv = Path(args.csv)
    raw = pd.read_csv(csv) if csv.exists() else None
    for seed in ([] if args.report_only else (int(s) for s in args.seeds.split(","))):
        for name in args.designs.split(","):
            rows = run_design(name, seed, args.n_jobs, command, args.n, args.n_image)
            print(rows.drop(columns=["command", "parameters"]).to_string(), flush=True)
            if raw is not None:
                raw = raw[~((raw["design"] == name) & (raw["seed"] == seed))]
            raw = pd.concat([raw, rows], ignore_index=True) if raw is not None else rows
            raw.to_csv(csv, index=False)
    text = section(raw, Path(args.notes).read_text() if args.notes else "")
    print(text)
    if not args.no_write:
        write_section("## Selection", text)


if __name__ == "__main__":
    main()
