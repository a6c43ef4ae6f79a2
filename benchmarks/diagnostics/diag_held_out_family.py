"""Which other heads the held-out rows could choose: full-sample and additive heads beside the line (issue 35, information).

The default (``complexity="auto"``) chooses, on continuous instruments, between two candidates on each member's
stage-2 held-out rows: the trained head and the line in t. Issue 35 asks for a wider family: the split (heads
solved on every row), and the structure in x (additive learned covariate features instead of the Kronecker
product). This diagnosis asks, before any rule is stated for them, whether the held-out rows can see what those
candidates gain or lose. It chooses nothing and changes no default.

For each design and seed, one default DFIV fit (``random_state`` = seed); with each member's trained networks held
fixed, heads are re-solved in closed form (float64; ridge 1e-3 as the defaults' β₁, β₂, and 1e-8 for the line as
in ``deepcausal._complexity.linear_iv_candidate``) for five candidates:

* ``trained``: the Kronecker head [ψ̂, 1] ⊗ [η, 1], stage 1 on S1 and stage 2 on S2 (the default's head);
* ``line``: 2SLS of y on [t̂, η, 1] with t̂ from [z, η, 1], every row (the default's other candidate);
* ``kron full``: the Kronecker head with both stages on every row (``refit_heads="full"``);
* ``add split`` / ``add full``: the additive head [ψ̂, η, 1], split or on every row.

Held-out z, as the package computes it for the line and the trained head: every candidate is solved again without
S2's held-out rows (split heads: stage 1 on S1, stage 2 on S2's other rows; the line and full-sample heads: every
other row), and its projected residual on S2's held-out rows compared with the trained head's: z = mean(D)/se(D), D = r_candidate² − r_trained², pooled
over the members (negative: the candidate predicts unseen rows better). MSE (truth, information only): each
candidate solved as it would be reported, the members' predictions averaged. Designs: our own four (n = 3,000)
and the 13 public designs with continuous instruments (n = 5,000); seeds 0 and 1.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_held_out_family.py`` (from the repository root;
rows in ``benchmarks/diagnostics/held_out_family.csv``, resumable; ``--summarise-only``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _continuous_iv import (OWN, PUBLIC, fits, kron, member_features, member_splits, paired_z, ridge,  # noqa: E402
                            standardised)
from _results import diagnostic_main, machine, markdown_table  # noqa: E402


CSV = Path(__file__).resolve().parent / "held_out_family.csv"
TITLE = "## Diagnosis: full-sample and additive heads on held-out rows (issue 35, information)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_held_out_family.py"
CANDIDATES = ("trained", "line", "kron full", "add split", "add full")
BETA, LINE_RIDGE, SEEDS = 1e-3, 1e-8, (0, 1)  # the heads' ridges; the line's is numerical only, as the package's


def _add(a, b):
    return np.c_[a, np.ones(len(a))] if b is None else np.c_[a, b, np.ones(len(a))]


def _member(m, std, test, rows, n1, n_val):
    """Each candidate's test prediction (standardised units) and held-out residuals on S2's held-out rows."""
    phi, psi, psi_t, eta, eta_t = member_features(m, std, test)
    y = std["Y"]
    s1, s2 = rows[:n1], rows[n1:]
    val = s2[:n_val]
    train = np.setdiff1d(np.arange(len(y)), val)  # every row but S2's held-out ones, as the package's line
    sub = lambda a, r: None if a is None else a[r]  # noqa: E731
    raw = np.c_[std["Z"], eta, np.ones(len(y))] if eta is not None else np.c_[std["Z"], np.ones(len(y))]

    def two_stage(F1, target, target_t, struct, a, b, beta):
        V = ridge(F1[a], target[a], beta)
        u = ridge(struct(F1[b] @ V, sub(eta, b)), y[b], beta)
        return (struct(target_t, eta_t) @ u)[:, 0], (y[val] - struct(F1[val] @ V, sub(eta, val)) @ u)[:, 0]

    every = np.arange(len(y))
    spec = {"trained": (phi, psi, psi_t, kron, "split", BETA),
            "line": (raw, std["T"], test["T"], _add, "full", LINE_RIDGE),
            "kron full": (phi, psi, psi_t, kron, "full", BETA), "add split": (phi, psi, psi_t, _add, "split", BETA),
            "add full": (phi, psi, psi_t, _add, "full", BETA)}
    out = {}
    for name, (F1, tg, tg_t, struct, how, beta) in spec.items():
        a, b = (s1, s2) if how == "split" else (every, every)
        pred, _ = two_stage(F1, tg, tg_t, struct, a, b, beta)
        a, b = (s1, s2[n_val:]) if how == "split" else (train, train)
        _, resid = two_stage(F1, tg, tg_t, struct, a, b, beta)
        out[name] = (pred, resid)
    return out


def run():
    for name, seed, d, est, _ in fits(CSV, [(n, s) for s in SEEDS for n in OWN + PUBLIC]):
        std, test = standardised(est, d)
        preds, resid = {c: [] for c in CANDIDATES}, {c: [] for c in CANDIDATES}
        for m, rows, n1, n_val in member_splits(est):
            for c, (p, r) in _member(m, std, test, rows, n1, n_val).items():
                preds[c].append(p)
                resid[c].append(r)
        sc = est.scalers_["Y"]
        base = np.concatenate(resid["trained"]) ** 2
        row = dict(design=name, seed=seed, first_stage_f=float(est.first_stage_f_))
        for c in CANDIDATES:
            row[f"mse {c}"] = d.score(np.mean(preds[c], axis=0) * sc.scale[0] + sc.mean[0])
            if c != "trained":
                D = np.concatenate(resid[c]) ** 2 - base
                row[f"z {c}"] = paired_z(D)
        print(row, flush=True)
        pd.DataFrame([row]).to_csv(CSV, mode="a", header=not CSV.exists(), index=False)


def summarise():
    df = pd.read_csv(CSV)
    g = df.groupby("design", sort=False).median(numeric_only=True)
    rows = []
    for name, r in g.iterrows():
        row = {"design": name, "F": r["first_stage_f"], "trained MSE": r["mse trained"]}
        for c in CANDIDATES[1:]:
            row[c] = f"{r[f'mse {c}'] / r['mse trained']:.2f} (z {r[f'z {c}']:.1f})"
        rows.append(row)
    table = pd.DataFrame(rows)
    # Does the held-out z track the truth? Over designs, the rank correlation of z with the log MSE ratio
    # (positive: where the candidate predicts unseen rows better, its curve is better too).
    tracks = []
    for c in CANDIDATES[1:]:
        ok = g[f"z {c}"].notna()
        rho = g.loc[ok, f"z {c}"].rank().corr(np.log(g.loc[ok, f"mse {c}"] / g.loc[ok, "mse trained"]).rank())
        wrong = g.loc[ok & (g[f"z {c}"] < -1.645) & (g[f"mse {c}"] > g["mse trained"])].index.tolist()
        tracks.append(f"- `{c}`: rank correlation of z with the log MSE ratio over {int(ok.sum())} designs "
                      f"{rho:.2f}; designs where z < -1.645 but the MSE is worse than the trained head's: "
                      f"{', '.join(wrong) or 'none'}.")
    lines = [TITLE, "", f"Command: `{COMMAND}`", "", f"Machine: {machine()}", "",
             "See the script's docstring: information, no rule and no default. Medians over seeds 0-1 of one default "
             "fit each; for each candidate, its MSE over the trained head's (below 1: better) and, in brackets, the "
             "held-out z against the trained head (negative: it predicts unseen rows better).", "",
             markdown_table(table), ""] + tracks + [
             "", "A held-out projected loss is low where the curve is right, but also where the first stage projects "
             "better, and a full-sample head solves its first stage on twice the rows. Where z does not track the MSE, "
             "these rows cannot choose the candidate: the split and the additive structure need another criterion "
             "before they join the default's family."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    diagnostic_main(__doc__, TITLE, run, summarise, argv)


if __name__ == "__main__":
    main()
