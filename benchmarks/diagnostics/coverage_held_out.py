"""Bands after the default's choices: coverage, width and the bias share of the error (issue 35, item 4).

Two choices of the default are made from the data before the band is drawn: which covariates the networks read
(the covariate screen, ``covariate_selection="group_lasso"``, ``deepcausal._screen``) and which curve is reported.
Rows of survey_covariates, linear_many_covariates and demand_highdim (where the screen leaves covariates out) were
fitted with the screen (2026-12-06); the other designs' fits are the same with or without it (it keeps their every
covariate, or they have none). After the held-out rule's first-stage bound fell from 104.7 to 37.418, the one fit
whose choice it changes (smooth_two_instruments, replication 6: F 97.9, z -3.0) was fitted again. After the held-out
rule gained its nonlinearity step (Lepski's spline in t where it bends and the trained curve does not), every row
was fitted again, and chen_christensen_severe and kiv_sigmoid (where the step reports the spline) joined the designs.
After that step became the shape step (the spline also in the line's place, the line where neither curve departs
from it), every row was fitted again. After the spline's instruments gained the products z ⊗ η(x) ("The sieve's
instruments with covariates"), the rows of the designs with covariates were fitted again. After the spline's
instruments took CCK's ratio ("The spline's instrument basis at CCK's ratio"), every row was fitted again. After the
trained head the rule keeps came to be re-solved on every row with its own draws ("The trained head re-solved on every
row once chosen"), the rows whose choice is the trained head were fitted again (the choice itself is unchanged). After
the line's band came to cover Lepski's spline's where some member's Lepski choice is a spline ("The line's band widened
to cover Lepski's spline's", adopted on other seeds), the 26 rows whose choice is the line were fitted again: the same
choices and MSE to the last digit, wider bands on 15 of them (2026-12-07).

The held-out rule (``complexity="held_out"``, the default's rule for continuous instruments, with the first-stage
bound F >= 37.418; ``deepcausal._complexity._held_out``) chooses between the line in t
and the trained head on each member's stage-2 held-out rows; the reported curve and its band are then those of
the chosen candidate (the line's from its own two-stage score bootstrap on every row, the trained head's from the
heads' bootstrap), combined over the members as always. Does the band stay honest after the choice?

Per design and replication (data seed 10 + r, so no seed of the rule's evaluation), one default-size fit of
``DFIV(complexity="held_out", random_state=seed)`` at n = 3,000, scored on one fixed test set per design (that of
data seed 10): the structural MSE, the share of test points inside the 95% pointwise band, whether the 95% uniform
band covers every test point, the mean pointwise width over the sd of the truth, and, over the replications, the
share of the mean squared error that is squared bias (the mean over test points of the squared mean error less its
own variance s²/R, at least 0, divided by the MSE; before 2026-12-07 without that correction). Designs: our own four of the held-out kinds, lowdim_linear, demand_highdim,
chen_christensen_severe and kiv_sigmoid. Coverage below 0.85 is to be
read with its bias share: a band covers sampling noise, not the bias of a line fitted to a curve.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/coverage_held_out.py [--reps 10]`` (from the repository
root; rows in ``benchmarks/diagnostics/coverage_held_out.csv``, resumable; ``--summarise-only``).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _continuous_iv import design as _design  # noqa: E402
from _results import bias_share, machine, markdown_table, single_thread, write_section  # noqa: E402

from deepcausal import DFIV  # noqa: E402

HERE = Path(__file__).resolve().parent
CSV, PRED = HERE / "coverage_held_out.csv", HERE / "coverage_held_out_errors.npz"
TITLE = "## Bands after the default's choices (issue 35)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/coverage_held_out.py"
DESIGNS = ["smooth_two_instruments", "survey_covariates", "linear_many_covariates", "kink_covariates",
           "lowdim_linear", "demand_highdim", "chen_christensen_severe", "kiv_sigmoid"]
N, FIRST_SEED = 3000, 10


def design(name, seed):
    return _design(name, seed, n_public=N, n_own=N)


def run(reps):
    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=["design", "rep"])
    have = set(zip(done["design"], done["rep"]))
    errors = dict(np.load(PRED)) if PRED.exists() else {}
    for rep in range(reps):
        for name in DESIGNS:
            if (name, rep) in have:
                continue
            test = design(name, FIRST_SEED)  # the fixed test set
            d = design(name, FIRST_SEED + rep)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = DFIV(complexity="held_out", random_state=FIRST_SEED + rep, verbose=False)
                est.fit(d.train, **d.fit_kwargs())
                pred = est.predict(test.test_X)
                lo, hi = est.predict_interval(test.test_X, alpha=0.05)
                ulo, uhi = est.predict_interval(test.test_X, alpha=0.05, band="uniform")
            truth = test.test_truth
            err = pred - truth
            errors[f"{name}/{rep}"] = err
            c = est.complexity_
            row = dict(design=name, rep=rep, z=c["criterion"][0], first_stage_f=c["first_stage_f"],
                       chosen="spline" if c.get("spline") else "line" if c["chosen"] == 0 else "trained",
                       mse=float(np.mean(err**2)), pointwise=float(np.mean((lo <= truth) & (truth <= hi))),
                       uniform=bool(np.all((ulo <= truth) & (truth <= uhi))),
                       width=float(np.mean(hi - lo) / np.std(truth)))
            print(row, flush=True)
            np.savez(PRED, **errors)
            pd.DataFrame([row]).to_csv(CSV, mode="a", header=not CSV.exists(), index=False)


def summarise(command):
    df = pd.read_csv(CSV)
    errors = dict(np.load(PRED))
    rows = []
    for name, g in df.groupby("design", sort=False):
        e = np.stack([errors[f"{name}/{r}"] for r in g["rep"]])
        share = bias_share(e)
        rows.append(dict(design=name, reps=len(g), chosen=", ".join(f"{k} x{v}" for k, v in g["chosen"].value_counts().items()),
                         mse=float(g["mse"].median()), pointwise=float(g["pointwise"].mean()),
                         uniform=float(g["uniform"].mean()), width=float(g["width"].median()), bias_share=share))
    table = pd.DataFrame(rows)
    low = table[table["pointwise"] < 0.85]
    lines = [TITLE, "", f"Command: `{command}`", "", f"Machine: {machine()}", "",
             "See the script's docstring. n = 3,000, replications at data seeds 10, 11, ...; MSE and width (over the "
             "sd of the truth): medians over replications; pointwise: mean share of test points inside the 95% band; "
             "uniform: share of replications whose 95% uniform band covers every test point; bias share: the share "
             "of the mean squared error that is squared bias, over the replications (the squared mean error less its "
             "own variance, s²/R, as in \"Confidence bands: coverage and width\").", "", markdown_table(table), ""]
    for _, r in low.iterrows():
        head = f"- {r['design']}: pointwise coverage {r['pointwise']:.2f} (< 0.85); {r['bias_share']:.0%} of its squared error is bias"
        lines.append(head + (", which no band of sampling noise covers." if r["bias_share"] >= 0.5 else
                             ": most of it is sampling noise, which the band is meant to cover, so the band is too "
                             "narrow here."))
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--summarise-only", action="store_true")
    a = p.parse_args(argv)
    single_thread()
    if not a.summarise_only:
        run(a.reps)
    text = summarise(COMMAND)
    write_section(TITLE, text)
    print(text)


if __name__ == "__main__":
    main()
