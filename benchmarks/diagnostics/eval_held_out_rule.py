"""The "held_out" rule on continuous instruments: the trained head unless the line predicts unseen rows better (issue 35).

The rule as first stated (``deepcausal._complexity._held_out``, stated there and here before its run; the package
now carries the second rule's bound, below): each member's stage-2
held-out rows (the first tenth of its stage-2 half, never in a gradient step or a head solve) give the projected
residuals of the two candidates, the line in t (2SLS with the raw instruments and the covariates' learned
features as controls, fitted on every other row) and the trained head (its stage-2 ridge solved on the half's
other rows). With D the difference of their squared residuals pooled over the members' held-out rows,
z = mean(D) / se(D); the line is reported when z < -1.645 **and** the linear first stage's partial F is at least
10 (Staiger and Stock's rule of thumb); otherwise the trained head. Where the two cannot be told apart, the
trained head stays.

How the rule's form was found, so that the reader can weigh the evidence: an exploration (not committed) on our
own four designs at seeds 0-1 and on five public designs at seed 0 (newey_powell, lowdim_step, kiv_sigmoid,
weak_iv, lowdim_linear) computed this z and both candidates' MSE. It showed that on rows the networks never saw
the trained head's projected loss is worse than the line's on our own designs (z from -1.5 to -4.2), while on
the ill-posed designs it cannot be told apart (z -1.3 to +0.8), except weak_iv (z = -2.1, with a weak first
stage, where the line's MSE is 4x the trained head's): hence the F condition. The two constants are textbook
values, not tuned. The evaluation below covers seeds 0-2 of every design (seeds 1-2 of the public designs and
seed 2 of ours were not looked at before), and seeds 3-4 of our own designs as a further fresh check.

Evaluated by one fit of ``DFIV(complexity="held_out", random_state=seed)`` per design and seed (the default
otherwise), scoring the structural MSE of the rule's choice and of both candidates (the same fit: the heads are
swapped). Designs: the 13 public IV designs with continuous instruments (n = 5,000, as on the leaderboard) and
our own four of the held-out kinds (n = 3,000).

Adoption rule, stated before the run: the rule becomes ``"auto"``'s choice for continuous instruments only if,
with medians over seeds 0-2, its MSE is (a) at most the trained head's on at least two thirds of the 17 designs,
(b) at most 1.1x the trained head's on each design where DFIV is the best method today (demand, lowdim_abs,
weak_iv), and (c) at most 2x the trained head's on every design. The truth evaluates; it chose nothing.

**A second rule, stated after the first run and before its own** (2026-12-06): the same z with the first-stage
bound raised from 10 to 104.7, the F above which the usual 5% t-test of 2SLS is valid (Lee, McCrary, Moreira and
Porter 2022). Its form was read from the first run (weak_iv, where the line cost 1.8x, had F 13-35), so it is
judged only on fits no earlier run made: public designs at seeds 3-5 and our own at seeds 5-7
(``--part strict``), by the same adoption rule (a)-(c) with medians over those seeds. The choice is a function of
(z, F), so those fits are ``complexity="held_out"`` fits, and the stricter bound is applied to their z and F.

**A third rule, stated after the second's adoption and before its own run** (2026-12-06, later the same day):
the same z with the bound at 37.418, Montiel Olea and Pflueger's (2013) critical value of the effective first-stage
F for a worst-case 2SLS bias of at most 5% of the benchmark (one instrument, 5% test), carried over to the smallest
conditional F as before. Why it was stated: with the bound at 104.7, survey_covariates at n = 3,000 has F 97 and
105 at seeds 1-2, below the bound, so the trained head stays there at 8-9x the line's error (z -6.1 and -6.0);
the F of that design lies around the bound, so the second rule reports its line on some seeds only. The evidence
read before stating it: in held_out_rule.csv the only fit with z < -1.645 and F below 90 is weak_iv's seed 0 (F
34.9, the line 8x worse). The bound was chosen among the published weak-instrument bounds as the smallest above
that fit's F, so it is judged only on fits no earlier run made: public designs at seeds 6-8 and our own at seeds
8-10 (``--part mop``), by the adoption rule (a)-(c) with medians over those seeds and the second rule as the
baseline it must not lose to on any design by more than 10% (d). These fits run with the covariate screen on,
the default since (2026-12-06).

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_held_out_rule.py`` (from the repository root;
rows in ``benchmarks/diagnostics/held_out_rule.csv``, resumable; ``--summarise-only``).
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
from _continuous_iv import OWN, PUBLIC, candidate_mse, design  # noqa: E402
from _results import machine, markdown_table, single_thread, write_section  # noqa: E402

from deepcausal import DFIV  # noqa: E402

CSV = Path(__file__).resolve().parent / "held_out_rule.csv"
TITLE = "## The held-out rule on continuous instruments (issue 35)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_held_out_rule.py"
DFIV_BEST = ("demand", "lowdim_abs", "weak_iv")  # the leaderboard's designs where DFIV is best today
SEEDS, FRESH_SEEDS = (0, 1, 2), (3, 4)
STRICT_F, STRICT_PUBLIC_SEEDS, STRICT_OWN_SEEDS = 104.7, (3, 4, 5), (5, 6, 7)
MOP_F, MOP_PUBLIC_SEEDS, MOP_OWN_SEEDS = 37.418, (6, 7, 8), (8, 9, 10)


def run(jobs):
    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=["design", "seed"])
    have = set(zip(done["design"], done["seed"]))
    for name, seed in jobs:
        if (name, seed) in have:
            continue
        d = design(name, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            est = DFIV(complexity="held_out", random_state=seed, verbose=False).fit(d.train, **d.fit_kwargs())
            seconds = time.perf_counter() - start
            c = est.complexity_
            mse = dict(zip(("line", "trained"), candidate_mse(est, d)))
        row = dict(design=name, seed=seed, z=c["criterion"][0], first_stage_f=c["first_stage_f"],
                   held_out_rows=c["held_out_rows"], chosen="line" if c["chosen"] == 0 else "trained",
                   mse_rule=mse["line" if c["chosen"] == 0 else "trained"], mse_line=mse["line"],
                   mse_trained=mse["trained"], fit_s=seconds)
        print(row, flush=True)
        pd.DataFrame([row]).to_csv(CSV, mode="a", header=not CSV.exists(), index=False)


def _table(df):
    agg = df.groupby("design", sort=False).agg(seeds=("seed", "size"), z=("z", "median"),
                                               F=("first_stage_f", "median"),
                                               chosen=("chosen", lambda c: ",".join(c)), rule=("mse_rule", "median"),
                                               line=("mse_line", "median"), trained=("mse_trained", "median"))
    agg["rule / trained"] = agg["rule"] / agg["trained"]
    return agg.reset_index()


def summarise(command):
    df = pd.read_csv(CSV)
    main = _table(df[df["seed"].isin(SEEDS)])
    ratio = main["rule / trained"].to_numpy()
    ok_share, worst = float(np.mean(ratio <= 1.0)), float(ratio.max())
    worst_design = main.loc[int(np.argmax(ratio)), "design"]
    best = main[main["design"].isin(DFIV_BEST)]
    best_worst = float(best["rule / trained"].max()) if len(best) else float("nan")
    complete = len(main) == len(PUBLIC) + len(OWN) and bool((main["seeds"] == len(SEEDS)).all())
    adopted = complete and ok_share >= 2 / 3 and best_worst <= 1.1 and worst <= 2.0
    lines = [TITLE, "", f"Command: `{command}`", "", f"Machine: {machine()}", "",
             "The rule, how its form was found, and its adoption rule are stated in the script's docstring, before "
             "its run. One fit of `DFIV(complexity=\"held_out\")` per design and seed (otherwise the default; public "
             "designs n = 5,000, our own n = 3,000); `line` and `trained` are the two candidates of the same fit, "
             "`rule` the one chosen; z: the held-out comparison (below -1.645 with F >= 10: the line); F: the linear "
             "first stage's partial F. Medians over seeds 0-2.", "", markdown_table(main), ""]
    fresh = df[df["seed"].isin(FRESH_SEEDS) & df["design"].isin(OWN)]
    if len(fresh):
        lines += ["Our own designs at seeds 3-4 (a fresh check, seen by nobody before this run):", "",
                  markdown_table(_table(fresh)), ""]
    lines += [f"- At most the trained head's MSE on {ok_share:.0%} of {len(main)} designs (adoption needs 67%); "
              f"at most {best_worst:.2f}x on the designs where DFIV is best today (needs 1.1); worst ratio "
              f"{worst:.2f} ({worst_design}; needs at most 2) → "
              f"{'adopted' if adopted else 'not adopted'} by the stated rule"
              f"{'' if complete else ' (incomplete: every design needs seeds 0-2)'}."]
    lines += _post_hoc(df[df["seed"].isin(SEEDS)])
    lines += _strict(df)
    lines += _mop(df)
    return "\n".join(lines) + "\n"


def _strict(df):
    """The second rule (F >= STRICT_F) on the fits made for it alone."""
    sel = (df["design"].isin(PUBLIC) & df["seed"].isin(STRICT_PUBLIC_SEEDS)) | \
          (df["design"].isin(OWN) & df["seed"].isin(STRICT_OWN_SEEDS))
    df = df[sel]
    if not len(df):
        return []
    line = (df["z"] < -1.645) & (df["first_stage_f"] >= STRICT_F)
    df = df.assign(chosen=np.where(line, "line", "trained"), mse_rule=np.where(line, df["mse_line"], df["mse_trained"]))
    table = _table(df)
    ratio = table["rule / trained"].to_numpy()
    ok_share, worst = float(np.mean(ratio <= 1.0)), float(ratio.max())
    best = table[table["design"].isin(DFIV_BEST)]["rule / trained"]
    n_seeds = len(STRICT_PUBLIC_SEEDS)
    complete = len(table) == len(PUBLIC) + len(OWN) and bool((table["seeds"] == n_seeds).all())
    adopted = complete and ok_share >= 2 / 3 and float(best.max()) <= 1.1 and worst <= 2.0
    return ["", f"### The second rule (F >= {STRICT_F:g}) on fits made for it alone", "",
            "Public designs at seeds 3-5, our own at seeds 5-7; the choice with the stricter first-stage bound; "
            "medians over the seeds.", "", markdown_table(table), "",
            f"- At most the trained head's MSE on {ok_share:.0%} of {len(table)} designs (adoption needs 67%); at "
            f"most {float(best.max()):.2f}x on the designs where DFIV is best today (needs 1.1); worst ratio "
            f"{worst:.2f} ({table.loc[int(np.argmax(ratio)), 'design']}; needs at most 2) → "
            f"{'adopted' if adopted else 'not adopted'} by the stated rule"
            f"{'' if complete else ' (incomplete: every design needs three seeds)'}."]


def _mop(df):
    """The third rule (F >= MOP_F) on the fits made for it alone, against the second (F >= STRICT_F) on them."""
    sel = (df["design"].isin(PUBLIC) & df["seed"].isin(MOP_PUBLIC_SEEDS)) | \
          (df["design"].isin(OWN) & df["seed"].isin(MOP_OWN_SEEDS))
    df = df[sel]
    if not len(df):
        return []
    tables = {}
    for name, bound in (("third", MOP_F), ("second", STRICT_F)):
        line = (df["z"] < -1.645) & (df["first_stage_f"] >= bound)
        tables[name] = _table(df.assign(chosen=np.where(line, "line", "trained"),
                                        mse_rule=np.where(line, df["mse_line"], df["mse_trained"])))
    table = tables["third"]
    table["third / second"] = table["rule"] / tables["second"]["rule"].to_numpy()
    ratio = table["rule / trained"].to_numpy()
    ok_share, worst = float(np.mean(ratio <= 1.0)), float(ratio.max())
    best = table[table["design"].isin(DFIV_BEST)]["rule / trained"]
    vs_second = float(table["third / second"].max())
    complete = len(table) == len(PUBLIC) + len(OWN) and bool((table["seeds"] == len(MOP_PUBLIC_SEEDS)).all())
    adopted = complete and ok_share >= 2 / 3 and float(best.max()) <= 1.1 and worst <= 2.0 and vs_second <= 1.1
    return ["", f"### The third rule (F >= {MOP_F:g}) on fits made for it alone", "",
            "Public designs at seeds 6-8, our own at seeds 8-10 (with the covariate screen); the choice with the "
            "third rule's bound; `third / second`: its MSE over the second rule's on the same fits; medians over "
            "the seeds.", "", markdown_table(table), "",
            f"- At most the trained head's MSE on {ok_share:.0%} of {len(table)} designs (adoption needs 67%); at "
            f"most {float(best.max()):.2f}x on the designs where DFIV is best today (needs 1.1); worst ratio "
            f"{worst:.2f} ({table.loc[int(np.argmax(ratio)), 'design']}; needs at most 2); at most "
            f"{vs_second:.2f}x the second rule (needs 1.1) → {'adopted' if adopted else 'not adopted'} by the stated "
            f"rule{'' if complete else ' (incomplete: every design needs three seeds)'}."]


def _post_hoc(df, f_min=104.7):
    """Information, not a rule evaluated before its run: the same z with a stricter first-stage bound, F of at
    least 104.7 (the bound above which the usual 5% t-test is valid, Lee, McCrary, Moreira and Porter 2022)."""
    line = (df["z"] < -1.645) & (df["first_stage_f"] >= f_min)
    df = df.assign(mse_rule=np.where(line, df["mse_line"], df["mse_trained"]))
    agg = df.groupby("design", sort=False).agg(rule=("mse_rule", "median"), trained=("mse_trained", "median"))
    ratio = (agg["rule"] / agg["trained"]).to_numpy()
    best = (agg["rule"] / agg["trained"])[agg.index.isin(DFIV_BEST)]
    return [f"- Information only (read from the same fits after the run; it is not the stated rule and adopts "
            f"nothing): with F >= {f_min:g} instead of 10 (Lee, McCrary, Moreira and Porter 2022), at most the "
            f"trained head's MSE on {np.mean(ratio <= 1.0):.0%} of {len(ratio)} designs, at most "
            f"{best.max():.2f}x on the designs where DFIV is best today, worst ratio {ratio.max():.2f} "
            f"({agg.index[int(np.argmax(ratio))]}). A rule of that form needs its own run on designs it was not "
            "read from."]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "public", "own", "strict", "mop"), default="all")
    p.add_argument("--summarise-only", action="store_true")
    a = p.parse_args(argv)
    single_thread()
    if not a.summarise_only:
        own = [(name, s) for s in SEEDS + FRESH_SEEDS for name in OWN]
        public = [(name, s) for s in SEEDS for name in PUBLIC]
        strict = [(name, s) for s in STRICT_OWN_SEEDS for name in OWN] + \
                 [(name, s) for s in STRICT_PUBLIC_SEEDS for name in PUBLIC]
        mop = [(name, s) for s in MOP_OWN_SEEDS for name in OWN] + \
              [(name, s) for s in MOP_PUBLIC_SEEDS for name in PUBLIC]
        run({"all": own + public, "public": public, "own": own, "strict": strict, "mop": mop}[a.part])
    text = summarise(COMMAND)
    write_section(TITLE, text)
    print(text)


if __name__ == "__main__":
    main()
