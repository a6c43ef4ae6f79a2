"""The spline's instrument basis at the ratio Chen, Christensen and Kankanala use: more instrument terms per term
of t (issue 35).

Lepski's spline in t (``deepcausal._sieve``) is fitted by 2SLS with instruments additive in the instrument columns:
per column a cubic B-spline with 2k − 1 quantile knots (2(k − 1) segments) for a spline in t with k knots (k − 1
segments), then z ⊗ η, η and 1. So each instrument column brings about as many terms as the spline in t has.
CCK's estimator (and our ``npiv`` baseline, ``deepcausal.baselines.NPIV``: ``k_w_degree=4``, ``k_w_smooth=2``)
gives the instruments a degree-4 B-spline with 2² = 4 times as many segments as t's: an instrument sieve that grows
faster than the regressors' (K ≫ J), so that the projection of the spline's terms on the instruments loses less.
On our smooth design the default reports the line at 2.1x npiv's error (its t part 2.4x); on our kink design its t
part is 1.7x npiv's ("Our own designs against the peers at six seeds").

**Diagnosis** (information, no rule; written first, by shard 0): 2SLS at each fixed spline of the package's family
(2, 3, 5, 9 knots) on every row of our smooth and kink designs, seeds 0-5, n = 3,000 (no network: the raw covariates
as additive controls, or additive cubic B-splines of each covariate with 6 quantile knots, in both stages), with the
package's instrument basis and with CCK's ratio, both with the products z ⊗ x. MSE on the design's test grid. Rows in
``benchmarks/diagnostics/sieve_instrument_basis_diagnosis.csv``.

**The change, stated before its run.** For a spline in t with k knots, each instrument column's basis is a B-spline
of degree 4 with 4(k − 1) + 1 quantile knots (4 times t's segments; at k = 2, 4 segments) instead of a cubic with
2k − 1 knots; a column with fewer than twice as many distinct values as its basis has terms enters raw (today: fewer
than 4k). Nothing else changes: the line keeps its raw instruments, the products z ⊗ η, the ill-posedness bound, the
Lepski constants and the shape step stay. The run replaced ``deepcausal._sieve._instrument_basis`` for the new arm.
**Adopted** (RESULTS): the package's ``_instrument_basis`` is CCK's ratio since, and this script holds the previous
basis (``previous_basis``) for the arm "today"; the package's default made the same choices with the same MSE as
the arm "cck" on the fits re-run to check it (RESULTS). Two things the statement did not say, found in review after
the run: the package first counted one basis term too many for the raw-column threshold (8k rather than 8k − 2
distinct values), fixed after the run and the refits: no column of these designs has between 8k − 2 and 8k
distinct values (their instruments are continuous), so no row changes; and the wider instruments reach the family's
width cut (a basis with n/10 columns ends it) at smaller n: with one instrument and no covariates the 17-knot
spline is cut below 690 rows instead of 370 (not reached here: n ≥ 3,000).

**Adoption, stated before its run** (the rule of the earlier parts): the default, ``DFIV(random_state=seed,
n_jobs=1)``, with today's and with CCK's instrument basis (the same networks: training does not read the sieve), on
the 17 designs with continuous instruments (our own four at n = 3,000, the 13 public ones at 5,000) at seeds 41-43 (no
run has made them). Adopted when the median MSE with CCK's basis is at most 1.1x today's on demand, lowdim_abs and
weak_iv (where DFIV is best on the leaderboard), at most 1.25x on every other design, and lower by more than 10% on
at least two designs. The truth only scores. Rows in ``benchmarks/diagnostics/sieve_instrument_basis.csv``.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_sieve_instrument_basis.py [--shard i/k]`` (from the
repository root; resumable; ``--summarise-only``).
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
from _continuous_iv import OWN, PUBLIC, design, fit_with, knots_text  # noqa: E402
from _results import append_row, markdown_table, sharded_main  # noqa: E402
from eval_sieve_instruments import _choice, _flags  # noqa: E402
from eval_sieve_rule import adoption  # noqa: E402

import deepcausal._sieve as sieve  # noqa: E402

HERE = Path(__file__).resolve().parent
CSV, DIAG_CSV = HERE / "sieve_instrument_basis.csv", HERE / "sieve_instrument_basis_diagnosis.csv"
TITLE = "## The spline's instrument basis at CCK's ratio (issue 35)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_sieve_instrument_basis.py"
SEEDS, DIAG_SEEDS = (41, 42, 43), tuple(range(6))
COLUMNS = ["design", "seed", "first_stage_f"] + [f"{c}_{arm}" for arm in ("today", "cck")
                                                 for c in ("choice", "knots", "a", "mse", "fit_s")]
DIAG_COLUMNS = ["design", "seed", "knots", "controls", "basis", "mse"]
PACKAGE_BASIS = sieve._instrument_basis  # CCK's ratio since its adoption


def previous_basis(z: np.ndarray, k, fit_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The package's instrument basis before this change: per column a cubic B-spline with 2k − 1 quantile knots (a
    column with fewer than 4k distinct values raw), the package's function at ratio 2 and degree 3."""
    saved = sieve.INSTRUMENT_RATIO, sieve.INSTRUMENT_DEGREE
    sieve.INSTRUMENT_RATIO, sieve.INSTRUMENT_DEGREE = 2, 3
    try:
        return PACKAGE_BASIS(z, k, fit_rows, rows)
    finally:
        sieve.INSTRUMENT_RATIO, sieve.INSTRUMENT_DEGREE = saved


BASES = {"today": previous_basis, "cck": PACKAGE_BASIS}


def _additive_splines(x: np.ndarray, x_at: np.ndarray) -> np.ndarray:
    from sklearn.preprocessing import SplineTransformer

    return np.concatenate([SplineTransformer(n_knots=6, degree=3, knots="quantile", include_bias=False,
                                             extrapolation="linear").fit(x[:, [j]]).transform(x_at[:, [j]])
                           for j in range(x.shape[1])], axis=1)


def fixed_sieve_mse(d, k: int, controls: str, basis: str) -> float:
    """2SLS of the spline in t with ``k`` knots on every row of ``d``: the instruments' basis ``basis`` with z ⊗ x,
    the covariates as additive ``controls`` ("raw" or "splines") in both stages; MSE on the test grid."""
    import torch

    tr, roles = d.train, d.roles
    t, z, x = (tr[roles[r]].to_numpy(float) for r in ("treatment", "instruments", "covariates"))
    y = tr[roles["outcome"]].to_numpy(float).ravel()
    t_at, x_at = d.test_X[roles["treatment"]].to_numpy(float), d.test_X[roles["covariates"]].to_numpy(float)
    rows = np.arange(len(y))
    knots = torch.as_tensor(sieve.spline_knots(t[:, 0], k))
    c, c_at = (x, x_at) if controls == "raw" else (_additive_splines(x, x), _additive_splines(x, x_at))
    products = (z[:, :, None] * x[:, None, :]).reshape(len(y), -1)
    W = np.c_[t, sieve.cubic_terms(torch.as_tensor(t), knots).numpy(), c, np.ones(len(y))]
    Q = np.c_[BASES[basis](z, k, rows, rows), products, c, np.ones(len(y))]
    beta, _, _ = sieve._tsls(W, Q, y)
    pred = np.c_[t_at, sieve.cubic_terms(torch.as_tensor(t_at), knots).numpy(), c_at, np.ones(len(t_at))] @ beta
    return float(np.mean((pred - np.asarray(d.test_truth, float)) ** 2))


def run_diagnosis():
    if DIAG_CSV.exists():
        return
    for name in ("smooth_two_instruments", "kink_covariates"):
        for seed in DIAG_SEEDS:
            d = design(name, seed)
            for k in sieve.KNOT_COUNTS[:4]:
                for controls in ("raw", "splines"):
                    for basis in BASES:
                        append_row(DIAG_CSV, dict(design=name, seed=seed, knots=k, controls=controls, basis=basis,
                                                  mse=fixed_sieve_mse(d, k, controls, basis)), DIAG_COLUMNS)


def run(shard: int, shards: int):
    if shard == 0:
        run_diagnosis()
    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=["design", "seed"])
    have = set(zip(done["design"], done["seed"]))
    for name, seed in [(n, s) for s in SEEDS for n in OWN + PUBLIC][shard::shards]:
        if (name, seed) in have:
            continue
        d, row = design(name, seed), dict(design=name, seed=seed)
        for arm, basis in BASES.items():
            est, mse, fit_s = fit_with(d, seed, sieve, "_instrument_basis", basis)
            row.update({"first_stage_f": float(getattr(est, "first_stage_f_", np.nan)), f"choice_{arm}": _choice(est),
                        f"knots_{arm}": knots_text(est), f"a_{arm}": _flags(est.complexity_, "spline"),
                        f"mse_{arm}": mse, f"fit_s_{arm}": fit_s})
        print(row, flush=True)
        append_row(CSV, row, COLUMNS)


def _diagnosis_table() -> list:
    df = pd.read_csv(DIAG_CSV)
    table = df.pivot_table(index=["design", "knots", "controls"], columns="basis", values="mse", aggfunc="median")
    table = table[list(BASES)].rename(columns={"today": "today's basis", "cck": "CCK's ratio"})
    table["CCK / today"] = table["CCK's ratio"] / table["today's basis"]
    better = int((table["CCK / today"] < 1).sum())
    return ["### Diagnosis: 2SLS at each fixed spline (information)", "",
            "Every row of our smooth and kink designs, seeds 0-5, n = 3,000, no network: the covariates raw or as "
            "additive cubic B-splines (6 quantile knots) in both stages, the products z ⊗ x in the instruments. Median "
            "MSE over the seeds.", "", markdown_table(table.reset_index()), "",
            f"- CCK's ratio is better in {better} of {len(table)} rows."]


def summarise() -> str:
    lines = [TITLE, "", f"Command: `{COMMAND}` (two shards, `--shard 0/2` and `--shard 1/2`, one thread each)", "",
             "The change and its adoption were stated in the script's docstring before the run.", ""]
    if DIAG_CSV.exists():
        lines += _diagnosis_table() + [""]
    text = {f"{c}_{arm}": str for c in ("a", "knots") for arm in BASES}
    df = pd.read_csv(CSV, dtype=text).fillna({c: "" for c in text})  # no shape step (no knots, no verdicts): blank
    order = [n for n in OWN + PUBLIC if n in set(df["design"])]
    g = df.groupby("design", sort=False)
    agg = g.median(numeric_only=True).loc[order]
    table = pd.DataFrame({"seeds": g.size(), "knots today": g["knots_today"].agg("; ".join),
                          "knots CCK": g["knots_cck"].agg("; ".join),
                          "chose today": g["choice_today"].agg(",".join), "chose CCK": g["choice_cck"].agg(",".join),
                          "today": agg["mse_today"], "CCK": agg["mse_cck"]}).loc[order]
    table["CCK / today"] = ratio = agg["mse_cck"] / agg["mse_today"]
    changed = int((df["choice_today"] != df["choice_cck"]).sum() + (df["knots_today"] != df["knots_cck"]).sum())
    lines += ["### The default with today's and with CCK's instrument basis", "",
              "Seeds 41-43, `DFIV(random_state=seed, n_jobs=1)` with each basis (our own designs at n = 3,000, the "
              "public ones at 5,000). Knots: each member's Lepski choice per seed (line: the line; blank: no shape "
              "step, where the first stage's F is below the bound, weak_iv). Medians over the seeds.", "", markdown_table(table.reset_index()), "",
              adoption(ratio, table["seeds"], "CCK / today"),
              f"- Fits where the choice or a member's knots differ: {changed} of {len(df)} (a fit can count twice).",
              "- Adopted: the package's `deepcausal._sieve._instrument_basis` has been CCK's ratio since. Checked: the "
              "package's default, re-run on four fits of the arm \"cck\" (smooth_two_instruments 43, horowitz 42, "
              "chen_christensen_severe 41, kiv_sigmoid 42), gave the same MSE to the last digit; this script's "
              "`previous_basis` reproduced the arm \"today\" on smooth_two_instruments 43.",
              "- Reading: the finer basis changes the fit only through the spline. Lepski keeps larger splines on some "
              "designs (lowdim_step's third seed: 9 and 17 knots) but the trained head stays there; where the spline "
              "is reported it is better on four designs. On our smooth design the spline departs from the line on "
              "more members (seed 43: on 5 of 5 against 1 of 5, so the spline, 0.076, in place of the line, 0.25; "
              "seed 42 the other way, 0.081 against 0.038); on horowitz seed 42 the spline departs on 1 member of 5 "
              "instead of 4, and the line (0.018) replaces a spline 10x worse. kiv_sigmoid's 1.10 comes from its "
              "spline's coefficients (2 knots on every member, reported both ways), not from a different choice."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    sharded_main(__doc__, TITLE, run, summarise, argv)


if __name__ == "__main__":
    main()
