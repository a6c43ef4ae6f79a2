"""Does a member's held-out loss tell which member of the default ensemble errs? (issue 35, information)

"Diagnosis: the members of the default ensemble at 10⁶ demand rows" found one member of five making the ensemble's
error (MSE 4,054 against 32-89), and the ensemble averages its members' curves. A rule that weighs or leaves out
members needs a statistic that sees such a member without the truth. The held-out rule already computes one: each
member's trained head, solved on its stage-2 half's other rows, predicts the half's held-out rows (never in a
gradient step or a head solve) through the member's first stage, and the mean squared projected residual there is
the member's held-out loss. Members draw their held-out rows apart, so two members' losses differ by the noise of
their rows as well as by their fit.

Here: one default fit, ``DFIV(random_state=seed, n_jobs=1)``, per design of ``_continuous_iv.PUBLIC`` (n = 5,000) and
``OWN`` (n = 3,000), at seeds 80-82 (fresh: no earlier run drew them). For each fit: the ensemble's MSE, each
member's own MSE (its prediction with the ensemble's chosen candidate installed) and each member's held-out loss
of the trained head (:func:`diag_ensemble_scale.held_out_loss`, standardised outcome units). Read where the reported
curve is the trained head (elsewhere the members share the line or the spline, nearly one curve). Reported per
design: Spearman's correlation between the members' held-out losses and their MSEs (median over the fits), how
often the member with the largest held-out loss is the member with the largest MSE (1 in 5 by chance), and the
largest member MSE over the median member's. Measurement only; no rule.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_member_held_out.py`` (from the repository root;
``--shard i/k`` to split the fits between processes, then ``--summarise-only``; rows in
``benchmarks/diagnostics/member_held_out.csv``, resumable).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _continuous_iv import OWN, PUBLIC, design, fit_default  # noqa: E402
from _results import append_row, machine, markdown_table, sharded_main  # noqa: E402
from diag_ensemble_scale import held_out_loss  # noqa: E402

CSV = Path(__file__).resolve().parent / "member_held_out.csv"
TITLE = "## Diagnosis: a member's held-out loss against its error (issue 35, information)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_member_held_out.py"
SEEDS = (80, 81, 82)
COLUMNS = ["design", "seed", "curve", "mse", "member_mse", "member_held_out", "fit_s"]


def run(shard: int, shards: int) -> None:
    items = [(name, seed) for seed in SEEDS for name in OWN + PUBLIC]
    done = set(zip(*[pd.read_csv(CSV)[c] for c in ("design", "seed")])) if CSV.exists() else set()
    for name, seed in items[shard::shards]:
        if (name, seed) in done:
            continue
        d = design(name, seed)
        est, mse, seconds = fit_default(d, seed)
        members = est._members()
        row = dict(design=name, seed=seed, curve=est.complexity_.get("label") or "trained head", mse=mse,
                   member_mse=" ".join(f"{d.score(m.predict(d.test_X)):.6g}" for m in members),
                   member_held_out=" ".join(f"{held_out_loss(m):.6g}" for m in members), fit_s=seconds)
        print(row, flush=True)
        append_row(CSV, row, COLUMNS)


def _numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in str(text).split()])


def summarise() -> str:
    from scipy.stats import spearmanr

    df = pd.read_csv(CSV)
    order = [n for n in OWN + PUBLIC if n in set(df["design"])]
    rows, agree, fits = [], 0, 0
    for name in order:
        g = df[df["design"] == name].sort_values("seed")
        trained = g[g["curve"] == "trained head"]
        rho, top, spread = [], [], []
        for r in trained.itertuples():
            mse, held = _numbers(r.member_mse), _numbers(r.member_held_out)
            if len(mse) < 3 or not np.isfinite(held).all():
                continue
            rho.append(spearmanr(held, mse).statistic)
            top.append(int(np.argmax(held) == np.argmax(mse)))
            spread.append(mse.max() / np.median(mse))
        agree, fits = agree + sum(top), fits + len(top)
        rows.append(dict(design=name, fits=len(g), trained_head=len(trained),
                         spearman_median=np.median(rho) if rho else np.nan,
                         largest_held_out_is_largest_mse=f"{sum(top)} of {len(top)}" if top else "–",
                         largest_member_mse_over_median=np.median(spread) if spread else np.nan,
                         ensemble_mse_median=g["mse"].median()))
    table = pd.DataFrame(rows)
    rhos = table["spearman_median"].dropna()
    lines = [TITLE, "", f"Command: `{COMMAND}` (two shards, `--shard 0/2` and `--shard 1/2`, then `--summarise-only`)",
             "", f"Machine: {machine()}.", "",
             "See the script's docstring. Seeds 80-82, one default fit each; the columns after `trained_head` read only "
             "the fits whose reported curve is the trained head. `spearman_median`: the members' held-out losses "
             "against their MSEs; `largest_member_mse_over_median`: the worst member's MSE over the median member's.",
             "", markdown_table(table), "",
             f"- Where the trained head is reported, the member with the largest held-out loss is the member with the "
             f"largest MSE in {agree} of {fits} fits (by chance about {fits / 5:.0f}); the design medians of "
             f"Spearman's correlation range from {rhos.min():.2f} to {rhos.max():.2f} (median {rhos.median():.2f})."
             if fits else "- No fit reported the trained head."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sharded_main(__doc__, TITLE, run, summarise)
