"""The default against the peers on our own designs of the held-out kinds, at six seeds (issue 35, information).

Issue 35 asks that the default be at most 2x the best peer on each held-out kind, and the maintainers judge it on
their own designs of those kinds. Our four (``deepcausal.datasets``: smooth_two_instruments, survey_covariates,
linear_many_covariates, kink_covariates) were measured against npiv, linear 2SLS and DeepIV at two seeds
("Diagnosis: our own designs of the held-out kinds"; "The sieve's instruments with covariates", ``--part own``).
Two seeds are few: npiv's MSE on the smooth design is 0.0078 at seed 0 and 0.14 at seed 1. This script fits the
default as it ships, ``DFIV(random_state=seed, n_jobs=1)``, and the three peers (``deepcausal.baselines``: npiv,
tsls, deepiv; ``random_state`` = the seed) at seeds 0-5, n = 3,000, and reports:

* each method's median MSE, and the default's ratio to the best peer's median (the issue's measure), over seeds
  0-1 and over seeds 0-5; the median over seeds of the per-seed ratio to that seed's best peer;
* where the errors sit: each fit's squared error on the test grid split into the part that the covariates average
  out (the error of the curve in t averaged over the grid's covariate values, ``t part``) and the rest (``x
  part``), medians over the seeds.

No rule is chosen here; the truth only scores. Rows in ``benchmarks/diagnostics/own_designs_peers.csv``
(resumable). After the spline's instruments took CCK's ratio ("The spline's instrument basis at CCK's ratio"), the
default's 24 rows were dropped and fitted again (one process, ``--shard 0/1``); the peers' rows are unchanged. They
were dropped and fitted again once more on 2026-12-06, after the trained head the held-out rule keeps came to be
re-solved on every row (one process, beside two single-thread benchmarks: fit seconds of a busy core).

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_own_designs.py [--shard i/k]`` (from the repository
root; shards split the fits between processes, one thread each; ``--summarise-only``).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _continuous_iv import OWN, design  # noqa: E402
from _results import append_row, machine, markdown_table, sharded_main  # noqa: E402

CSV = Path(__file__).resolve().parent / "own_designs_peers.csv"
TITLE = "## Our own designs against the peers at six seeds (issue 35, information)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_own_designs.py"
SEEDS = tuple(range(6))
METHODS = {"default": ("dfiv", dict(n_jobs=1, verbose=False)), "npiv": ("npiv", {}), "tsls": ("tsls", {}),
           "deepiv": ("deepiv", {})}
PEERS = ("npiv", "tsls", "deepiv")
COLUMNS = ["design", "seed", "method", "mse", "t_part", "x_part", "fit_s", "error"]


def error_parts(d, pred) -> tuple:
    """(t part, x part) of the mean squared error on ``d``'s test grid: the error averaged over the grid's covariate
    values at each treatment value, and what is left; the two add up to the MSE. Where no treatment value occurs
    twice (a grid that holds the covariates fixed) there is nothing to split: the x part is NaN."""
    e = np.asarray(pred, dtype=np.float64).ravel() - np.asarray(d.test_truth, dtype=np.float64).ravel()
    t = np.asarray(d.test_X[d.roles["treatment"][0]])
    t_mean = pd.Series(e).groupby(t).transform("mean").to_numpy()
    x_part = float(np.mean((e - t_mean) ** 2)) if len(np.unique(t)) < len(t) else float("nan")
    return float(np.mean(t_mean**2)), x_part


def run(shard: int, shards: int):
    from deepcausal import baselines

    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=COLUMNS)
    have = set(zip(done["design"], done["seed"], done["method"]))
    pairs = [(n, s) for s in SEEDS for n in OWN][shard::shards]
    for name, seed, method in ((n, s, m) for n, s in pairs for m in METHODS):
        if (name, seed, method) in have:
            continue
        d = design(name, seed)
        key, params = METHODS[method]
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred = baselines.get(key, random_state=seed, **params).fit(d).predict(d)
            row = dict(mse=d.score(pred), error="")
            row["t_part"], row["x_part"] = error_parts(d, pred)
        except ImportError:
            raise
        except Exception as exc:  # one method failing on one design stops nothing else
            row = dict(mse=np.nan, t_part=np.nan, x_part=np.nan, error=f"{type(exc).__name__}: {exc}"[:300])
        row.update(design=name, seed=seed, method=method, fit_s=time.perf_counter() - start)
        print(row, flush=True)
        append_row(CSV, row, COLUMNS)


def _ratios(df: pd.DataFrame, seeds) -> tuple:
    """(the default's median over ``seeds`` / the best peer's median, that peer, the median per-seed ratio)."""
    sub = df[df["seed"].isin(seeds)]
    med = sub.groupby(["design", "method"])["mse"].median().unstack()
    best = med[list(PEERS)].idxmin(axis=1)
    per_seed = sub.pivot_table(index=["design", "seed"], columns="method", values="mse")
    seed_ratio = (per_seed["default"] / per_seed[list(PEERS)].min(axis=1)).groupby("design").median()
    return med["default"] / med[list(PEERS)].min(axis=1), best, seed_ratio


def summarise() -> str:
    df = pd.read_csv(CSV)
    order = [n for n in OWN if n in set(df["design"])]
    med = df.groupby(["design", "method"])["mse"].median().unstack().loc[order, list(METHODS)]
    two, best_two, _ = _ratios(df, SEEDS[:2])
    six, best_six, per_seed = _ratios(df, SEEDS)
    table = med.copy()
    table["best peer (0-5)"] = best_six
    table["default / best, seeds 0-1"] = two
    table["default / best, seeds 0-5"] = six
    table["median per-seed ratio"] = per_seed
    parts = df.groupby(["design", "method"])[["t_part", "x_part"]].median().unstack()
    where = pd.DataFrame({f"{m}: t part, x part": parts["t_part"][m].map("{:.3g}".format) + ", "
                          + parts["x_part"][m].map("{:.3g}".format) for m in METHODS}).loc[order]
    n_seeds = df.groupby("design")["seed"].nunique().loc[order]
    over = [n for n in order if six[n] > 2]
    failed = df[df["error"].notna() & (df["error"].astype(object) != "")]
    lines = [TITLE, "", f"Command: `{COMMAND}` (two shards, `--shard 0/2` and `--shard 1/2`)", "",
             f"Machine: {machine()}.", "",
             "See the script's docstring. n = 3,000; seeds per design: "
             + ", ".join(f"{n} {k}" for n, k in n_seeds.items()) + ". Median MSE over seeds 0-5; the ratios as "
             "the issue measures them (the default's median over the seeds against the best peer's).", "",
             markdown_table(table.reset_index()), "",
             "Where the error sits (medians over the seeds; t part + x part = MSE of that fit):", "",
             markdown_table(where.reset_index()), "",
             f"- At most 2x the best peer over seeds 0-5: {'every design' if not over else 'not on ' + ', '.join(over)}"
             f" (seeds 0-1 alone: {', '.join(f'{n} {two[n]:.2f}' for n in order)}).",
             "- The default's t part and x part against the best peer's (medians): "
             + "; ".join(f"{n} {parts['t_part']['default'][n] / parts['t_part'][best_six[n]][n]:.2g}x and "
                         f"{parts['x_part']['default'][n] / parts['x_part'][best_six[n]][n]:.2g}x" for n in order)
             + ". The t part is the curve in t (the line, the spline or the trained head); the x part is what the "
             "learned covariate features η(x) leave, where npiv's controls are additive B-splines of each covariate "
             "and 2SLS's the raw covariates."]
    if len(failed):
        lines += ["", "Failures: " + "; ".join(f"{r.design} seed {r.seed} {r.method}: {r.error}"
                                              for r in failed.itertuples())]
    return "\n".join(lines) + "\n"


def main(argv=None):
    sharded_main(__doc__, TITLE, run, summarise, argv)


if __name__ == "__main__":
    main()
