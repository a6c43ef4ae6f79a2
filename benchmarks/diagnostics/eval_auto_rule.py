"""DFIV's default complexity rule on discrete instruments, over data replications (issue 34).

The rule evaluated (``deepcausal._complexity.resolve_rule``, stated in its docstring and on the method
page before this run): instruments taking K distinct values (rows, counted with a tolerance of 1e-6 of each
column's sd) give the line in t — 2SLS on every row with the raw instruments and the covariates' learned
features as controls — when K <= d_t + 1; Lepski's rule with that line first when d_t + 1 < K <= 10; the
trained head for continuous instruments. The truth only scores the rule; it chose nothing.

For each replication (a fresh data seed, ``random_state`` = the seed) the default ``DFIV`` and
``DFIV(complexity="trained")`` are fitted on the same data and scored:

* the average marginal effect over the training rows, whether its 95% interval covers the true slope and
  the interval's width;
* the MSE of h(T, X) on the training rows (``mse_rows``) and of the test grid (``mse_test``);
* pointwise coverage of the 95% band on the test grid and full coverage of its uniform (sup-t) band;
* the candidate chosen and the fit seconds.

Targets (issue 34, "Done when"): on ``nonlinear_controls_iv`` the default's AME interval covers 1.0 in at
least 90% of 20 replications and its MSE of h(T, X) is within 1.5x the trained head's; on
``linear_binary_iv`` the default's uniform band covers in at least 85% of 20 replications.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_auto_rule.py --reps 20`` (from the repository
root); rows go to ``benchmarks/diagnostics/auto_rule.csv`` as they finish (``--summarise-only`` rewrites the
RESULTS section from it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _results import machine, markdown_table, single_thread, write_section  # noqa: E402

from deepcausal import DFIV  # noqa: E402
from deepcausal import datasets  # noqa: E402

CSV = Path(__file__).resolve().parent / "auto_rule.csv"
N = 2000
DESIGNS = {
    "nonlinear_controls_iv": lambda s: datasets.nonlinear_controls_iv(N, seed=s),
    "nonlinear_controls_iv (3 values)": lambda s: datasets.nonlinear_controls_iv(N, values=3, seed=s),
    "linear_binary_iv": lambda s: datasets.linear_binary_iv(N, seed=s),
}
TITLE = "## The complexity rule on discrete instruments (issue 34)"


def score(est, d, rep, design, seconds) -> dict:
    kw = d.fit_kwargs()
    T, X = d.train[kw["treatment"]], d.train[kw["covariates"]]
    lo, hi = est.marginal_ate_interval(T, X, alpha=0.05)
    slope = d.info["true_slope"]
    truth_rows = d.structural_function(*(d.train[c] for c in kw["treatment"] + kw["covariates"]))
    plo, phi = est.predict_interval(d.test_X, alpha=0.05)
    ulo, uhi = est.predict_interval(d.test_X, alpha=0.05, band="uniform")
    inside = (plo <= d.test_truth) & (d.test_truth <= phi)
    return dict(design=design, rule=est.complexity, rep=rep, chosen=(est.complexity_ or {}).get("label") or "trained",
                ame=est.marginal_ate(T, X), ame_covers=bool(lo <= slope <= hi), ame_width=hi - lo,
                mse_rows=float(np.mean((est.predict(d.train) - np.asarray(truth_rows)) ** 2)),
                mse_test=d.score(est.predict(d.test_X)), pointwise_coverage=float(inside.mean()),
                uniform_covers=bool(((ulo <= d.test_truth) & (d.test_truth <= uhi)).all()), fit_s=seconds)


def run(reps, designs):
    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=["design", "rule", "rep"])
    have = set(zip(done["design"], done["rule"], done["rep"]))
    for rep in range(reps):
        for name in designs:
            d = DESIGNS[name](rep)
            for rule in ("auto", "trained"):
                if (name, rule, rep) in have:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    est = DFIV(complexity=rule, random_state=rep, verbose=False).fit(d.train, **d.fit_kwargs())
                    row = score(est, d, rep, name, time.perf_counter() - start)
                print(row, flush=True)
                pd.DataFrame([row]).to_csv(CSV, mode="a", header=not CSV.exists(), index=False)


def summarise(command: str) -> str:
    df = pd.read_csv(CSV)
    agg = df.groupby(["design", "rule"], sort=False).agg(
        reps=("rep", "size"), ame_mean=("ame", "mean"), ame_coverage=("ame_covers", "mean"),
        ame_width=("ame_width", "median"), mse_rows=("mse_rows", "median"), mse_test=("mse_test", "median"),
        pointwise_coverage=("pointwise_coverage", "mean"), uniform_coverage=("uniform_covers", "mean"),
        fit_s=("fit_s", "median")).reset_index()
    chosen = df[df["rule"] == "auto"].groupby("design")["chosen"].agg(lambda c: ", ".join(
        f"{k} ×{v}" for k, v in c.value_counts().items()))
    lines = [TITLE, "", f"Command: `{command}`", "", f"Machine: {machine()}", "",
             f"n = {N}; medians over replications for MSE, width and seconds; means for AME and coverage. "
             "`auto` is the default, `trained` the trained head on the same data and seeds.", "",
             markdown_table(agg), "", "What `auto` chose:", ""]
    lines += [f"- {k}: {v}" for k, v in chosen.items()]
    lines += ["", "Issue 34's targets:", ""]
    lines += _targets(agg)
    return "\n".join(lines) + "\n"


def _targets(agg: pd.DataFrame) -> list:
    def get(design, rule, col):
        row = agg[(agg["design"] == design) & (agg["rule"] == rule)]
        return float(row[col].iloc[0]) if len(row) else float("nan")

    cov = get("nonlinear_controls_iv", "auto", "ame_coverage")
    ratio = get("nonlinear_controls_iv", "auto", "mse_rows") / get("nonlinear_controls_iv", "trained", "mse_rows")
    uni = get("linear_binary_iv", "auto", "uniform_coverage")

    def verdict(ok):
        return "met" if ok else "missed"

    return [f"- nonlinear_controls_iv, AME interval covers 1.0: {cov:.2f} of replications (target >= 0.90): "
            f"{verdict(cov >= 0.90)}.",
            f"- nonlinear_controls_iv, MSE of h(T, X), default / trained head: {ratio:.2f} (target <= 1.5): "
            f"{verdict(ratio <= 1.5)}.",
            f"- linear_binary_iv, uniform band covers the test curve: {uni:.2f} of replications (target >= 0.85): "
            f"{verdict(uni >= 0.85)}."]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--designs", default=",".join(DESIGNS))
    p.add_argument("--summarise-only", action="store_true")
    a = p.parse_args(argv)
    single_thread()
    if not a.summarise_only:
        run(a.reps, [s for s in a.designs.split(",") if s])
    text = summarise(f"OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_auto_rule.py --reps {a.reps}")
    write_section(TITLE, text)
    print(text)


if __name__ == "__main__":
    main()
