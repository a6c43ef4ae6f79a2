"""Diagnosis (information; no default changed): what would stopping at the held-out loss's plateau cost?

Issue 29 lists "fewer wasted steps" as a speed lever: most default fits train to the step cap, and the held-out
stage-2 loss is flat long before it. Before any fit, the rule priced here is stated:

    W = 20 checks. At each check c ≥ 2W: m_now = median of the held-out stage-2 losses of the last W checks,
    m_prev = median of the W checks before them, noise = 1.4826 · MAD(last W) / √W. Stop at the first check
    where m_prev − m_now < noise: the loss's improvement has fallen below its own noise.

For each design and seed this fits one default member (``n_estimators=1``, no bootstrap) with the design's
truth tracked at every check (``validation=``: information only, it chooses nothing) and reports the step
the rule stops at, the share of the step cap that saves, and the structural MSE at that check against the
MSE at the end of the budget (the fit's default outcome, heads refit on the whole halves in both). A fit
stopped by the rule would have followed the same trajectory up to its stop (the learning-rate schedule is
fixed by the step cap), so the truncated history prices it exactly.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_plateau.py [--seeds 0,1,2] [--designs a,b]``;
raw rows in ``benchmarks/diagnostics/plateau.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
from _results import machine, write_section  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CSV = os.path.join(HERE, "plateau.csv")
WINDOW = 20
DESIGNS = {"demand": "dfiv", "lowdim_sin": "dfiv", "kiv_sigmoid": "dfiv", "chen_christensen_mild": "dfiv",
           "demand_proxy": "dfpv"}


def plateau_stop(losses: np.ndarray, window: int = WINDOW):
    """Index of the first check where the median loss of the last ``window`` checks improved on the median of the
    ``window`` before by less than its own noise; None when that never happens."""
    for c in range(2 * window - 1, len(losses)):
        now, prev = losses[c - window + 1: c + 1], losses[c - 2 * window + 1: c - window + 1]
        noise = 1.4826 * np.median(np.abs(now - np.median(now))) / np.sqrt(window)
        if np.median(prev) - np.median(now) < noise:
            return c
    return None


def fit_one(design: str, seed: int) -> dict:
    import torch

    from deepcausal import DFIV, DFPV
    from deepcausal.benchmark import make_design

    torch.set_num_threads(1)
    d, _ = make_design(design, n=5000, seed=seed)
    cls = DFIV if DESIGNS[design] == "dfiv" else DFPV
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        est = cls(n_estimators=1, n_bootstrap=0, random_state=seed, verbose=False).fit(
            d.train, **d.fit_kwargs(), validation=(d.test_X, d.test_truth))
        seconds = time.perf_counter() - t
    h = est.history_
    stop = plateau_stop(h["val_stage2_loss"].to_numpy())
    at = h.iloc[stop] if stop is not None else h.iloc[-1]
    return dict(design=design, seed=seed, max_steps=int(h["step"].iloc[-1]), rule_step=int(at["step"]),
                mse_end=float(h["val_mse_refit"].iloc[-1]), mse_rule=float(at["val_mse_refit"]), fit_s=seconds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--designs", default=",".join(DESIGNS))
    args = ap.parse_args()
    rows = [fit_one(design, int(s)) for design in args.designs.split(",") for s in args.seeds.split(",")]
    df = pd.DataFrame(rows)
    df.to_csv(CSV, index=False)
    lines = ["| design | method | seeds | step cap | rule's stop (median) | steps saved | MSE at the stop | MSE at the cap | ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for design, g in df.groupby("design", sort=False):
        ratio = float(np.median(g["mse_rule"] / g["mse_end"]))
        lines.append(f"| {design} | {DESIGNS[design].upper()} | {len(g)} | {int(g['max_steps'].median())} | "
                     f"{int(g['rule_step'].median())} | {1 - g['rule_step'].median() / g['max_steps'].median():.0%} | "
                     f"{g['mse_rule'].median():.4g} | {g['mse_end'].median():.4g} | {ratio:.2f}× |")
    per_seed = "; ".join(f"{r.design} s{r.seed}: stop {r.rule_step}, MSE {r.mse_rule:.3g} vs {r.mse_end:.3g}"
                         for r in df.itertuples())
    title = "## Diagnosis: stopping at the held-out loss's plateau (information; not adopted)"
    text = "\n".join([title, "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_plateau.py --seeds {args.seeds}` (from the repository root).",
        f"Machine: {machine()}.", "",
        f"One default member per design and seed (n = 5,000, no bootstrap); the rule (script docstring, stated before "
        f"the run): stop at the first check where the median held-out stage-2 loss of the last {WINDOW} checks improved "
        f"on the {WINDOW} before by less than its own noise. `ratio` = median over seeds of MSE at the rule's stop / "
        "MSE at the step cap (the default), truth used to price the rule only.", "", *lines, "",
        f"Per seed: {per_seed}.", ""])
    write_section(title, text)
    print(text)


if __name__ == "__main__":
    main()
