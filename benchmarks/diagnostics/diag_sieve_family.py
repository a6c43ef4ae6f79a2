"""What holds the spline back on chen_christensen_mild, and would another family of sieves do better? (issue 35,
information; no rule is stated and no default changes)

On the leaderboard chen_christensen_mild is the public design furthest from its best peer: the default (the
trained head: its spline and its trained curve both depart from the line, so the shape step keeps the trained head)
at 4.8x econml's OrthoIV with a spline featurizer, and npiv at 5.9x. OrthoIV there is two-stage least squares of y
on a fixed cubic B-spline of the treatment with 2 interior knots (scikit-learn ``SplineTransformer(n_knots=4)``,
uniform knots), instrumented by a cubic B-spline of z with 4 interior knots (``n_knots=6``): the design has no
covariates, so its nuisances are means. This diagnosis splits that gap into its terms. Each part solves sieves on
the design's rows only (no network), exactly as ``deepcausal._sieve`` does on a member's rows, but on every
training row:

* ``--part bias`` (no data): the best least-squares fit of h₀(t) = sin(πt) under t ~ U(−1, 1) (the design's
  treatment law; 200,000 draws) in each basis, scored on the design's test grid: the sieve's approximation error,
  the floor under its MSE at any n;
* ``--part fixed``: seeds 0-2 at n = 5,000 (the leaderboard's data): the MSE of 2SLS at each fixed member of
  the package's family (the line, then cubic splines with 0, 1, 3, 7 and 15 interior quantile knots, instruments
  as the package builds them) and of OrthoIV's fixed pair of bases;
* ``--part families``: Lepski's choice (``deepcausal._sieve.lepski_knots``, the package's constants) and its MSE,
  on the 11 public designs with continuous instruments and no covariates, seeds 0-2, under three families: the
  package's (dyadic knot counts, the line first); a finer one (2, 3, 4, 5, 7, 9, 13 and 17 knots: 0-3, 5, 7, 11 and
  15 interior knots); and the package's splines without the line (npiv's family starts at a cubic). The line's MSE
  beside them.

The truth only scores. Rows in ``benchmarks/diagnostics/sieve_family.csv``, written at the end of the run (it
takes a few minutes; delete the file to run it again).

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_sieve_family.py`` (from the repository root; every
part, then the RESULTS section; ``--summarise-only``).
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
from _continuous_iv import PUBLIC, design  # noqa: E402
from _results import diagnostic_main, markdown_table  # noqa: E402

import deepcausal._sieve as sieve  # noqa: E402

CSV = Path(__file__).resolve().parent / "sieve_family.csv"
TITLE = "## Diagnosis: the sieve's family on chen_christensen_mild (issue 35, information)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_sieve_family.py"
SEEDS = (0, 1, 2)
DESIGN = "chen_christensen_mild"
FAMILIES = {"package": (None,) + sieve.KNOT_COUNTS, "finer": (None, 2, 3, 4, 5, 7, 9, 13, 17),
            "no line": sieve.KNOT_COUNTS}
NO_COVARIATES = [n for n in PUBLIC if n not in ("demand", "demand_highdim")]
ORTHOIV_BASES = (4, 6)  # SplineTransformer n_knots of the treatment and of the instrument (deepcausal.baselines)


def _knots_label(k) -> str:
    return "line" if k is None else f"{k - 2} interior"


def _basis_label(k) -> str:
    return "line" if k is None else f"cubic spline, {_knots_label(k)}"


def sieve_curve(t, z, y, k, t_test, controls=None, controls_test=None) -> np.ndarray:
    """The package's 2SLS sieve with ``k`` knots (None: the line) on every row, at ``t_test``; with ``controls``
    (and their values at the test rows) as its additive controls, as the package takes the learned η(x)."""
    import torch

    rows = np.arange(len(y))
    W, Q, knots = sieve._matrices(t, z, controls, k, rows, rows)
    beta, _, _ = sieve._tsls(W, Q, y)
    parts = [t_test] + ([] if knots is None else
                        [sieve.cubic_terms(torch.as_tensor(t_test), torch.as_tensor(knots)).numpy()])
    parts += [] if controls is None else [controls_test]
    return np.concatenate(parts + [np.ones((len(t_test), 1))], axis=1) @ beta


def _spline(n_knots, fit_on):
    from sklearn.preprocessing import SplineTransformer

    return SplineTransformer(n_knots=n_knots, degree=3, extrapolation="linear").fit(fit_on)


def _arrays(d):
    a = d.arrays
    t_test = np.asarray(d.test_X[d.roles["treatment"]] if hasattr(d.test_X, "columns") else d.test_X, float)
    return (a["treatment"].astype(float), a["instruments"].astype(float), a["outcome"].astype(float).ravel(),
            t_test.reshape(len(t_test), -1))


def part_bias() -> list:
    """The approximation error of each basis: least squares on draws of t, no noise, scored on the test grid."""
    t = np.random.default_rng(0).uniform(-1.0, 1.0, (200_000, 1))
    grid = np.asarray(design(DESIGN, 0).test_X, float).reshape(-1, 1)
    truth = np.sin(np.pi * grid[:, 0])
    # z = t: the instruments span the basis itself, so 2SLS is least squares of h₀ on it
    out = [dict(part="bias", design=DESIGN, seed=-1, family="package" if k != 4 else "finer",
                basis=_basis_label(k), mse=float(np.mean((sieve_curve(t, t, np.sin(np.pi * t[:, 0]), k, grid)
                                                           - truth) ** 2)))
           for k in FAMILIES["package"] + (4,)]
    b = _spline(ORTHOIV_BASES[0], t)
    coef = np.linalg.lstsq(b.transform(t), np.sin(np.pi * t[:, 0]), rcond=None)[0]
    out.append(dict(part="bias", design=DESIGN, seed=-1, family="orthoiv", basis="B-spline, 2 interior (uniform)",
                    mse=float(np.mean((b.transform(grid) @ coef - truth) ** 2))))
    return out


def part_fixed() -> list:
    out = []
    for seed in SEEDS:
        d = design(DESIGN, seed)
        t, z, y, t_test = _arrays(d)
        for k in FAMILIES["package"]:
            out.append(dict(part="fixed", design=DESIGN, seed=seed, family="package",
                            basis=_basis_label(k),
                            mse=d.score(sieve_curve(t, z, y, k, t_test))))
        bt, bz = _spline(ORTHOIV_BASES[0], t), _spline(ORTHOIV_BASES[1], z)
        beta, _, _ = sieve._tsls(bt.transform(t), bz.transform(z), y)
        out.append(dict(part="fixed", design=DESIGN, seed=seed, family="orthoiv",
                        basis="B-spline, 2 interior (uniform)", mse=d.score(bt.transform(t_test) @ beta)))
    return out


def part_families() -> list:
    out = []
    saved = sieve.KNOT_COUNTS
    for name in NO_COVARIATES:
        for seed in SEEDS:
            d = design(name, seed)
            t, z, y, t_test = _arrays(d)
            rows = np.arange(len(y))
            for fam, counts in FAMILIES.items():
                # lepski_knots puts the line first and then sieve.KNOT_COUNTS; "no line" drops the line's fit
                sieve.KNOT_COUNTS = tuple(k for k in counts if k is not None)
                try:
                    choice = _lepski(t, z, y, rows, seed, with_line=None in counts)
                finally:
                    sieve.KNOT_COUNTS = saved
                out.append(dict(part="families", design=name, seed=seed, family=fam, basis=_knots_label(choice),
                                mse=d.score(sieve_curve(t, z, y, choice, t_test))))
            out.append(dict(part="families", design=name, seed=seed, family="line", basis="line",
                            mse=d.score(sieve_curve(t, z, y, None, t_test))))
            print(out[-4:], flush=True)
    return out


def _lepski(t, z, y, rows, seed, with_line: bool):
    """The package's Lepski choice over the line (if ``with_line``) and ``sieve.KNOT_COUNTS``."""
    if with_line:
        return sieve.lepski_knots(t, z, y, None, rows, np.random.default_rng(seed))["knots"]
    # Without the line the package's function is run with the cubic in the line's place (its first candidate);
    # its ill-posedness bound, which the function checks for splines only, is checked here for that cubic: where
    # the cubic fails it the family is empty and the package would report the line.
    cubic, rest = sieve.KNOT_COUNTS[0], sieve.KNOT_COUNTS[1:]
    W, Q, _ = sieve._matrices(t, z, None, cubic, rows, rows)
    s_j, n, dim = sieve.smallest_canonical_correlation(W, Q), len(rows), W.shape[1]
    if not (s_j > 0 and dim * np.sqrt(np.log(dim)) / s_j <= sieve.ILL_POSED_BOUND * np.sqrt(n)):
        return None
    original, counts = sieve._matrices, sieve.KNOT_COUNTS
    sieve._matrices = lambda t_, z_, eta, k, f, r: original(t_, z_, eta, cubic if k is None else k, f, r)
    sieve.KNOT_COUNTS = rest
    try:
        k = sieve.lepski_knots(t, z, y, None, rows, np.random.default_rng(seed))["knots"]
    finally:
        sieve._matrices, sieve.KNOT_COUNTS = original, counts
    return cubic if k is None else k


def run():
    if CSV.exists():
        return
    rows = part_bias() + part_fixed() + part_families()
    pd.DataFrame(rows).to_csv(CSV, index=False)


def summarise() -> str:
    df = pd.read_csv(CSV)
    bias = df[df["part"] == "bias"][["family", "basis", "mse"]].rename(columns={"mse": "approximation error"})
    fixed = (df[df["part"] == "fixed"].groupby(["family", "basis"], sort=False)["mse"]
             .agg(lambda v: f"{np.median(v):.3g} ({', '.join(f'{x:.2g}' for x in v)})").reset_index()
             .rename(columns={"mse": "MSE median (seeds 0, 1, 2)"}))
    fam = df[df["part"] == "families"]
    med = fam.pivot_table(index="design", columns="family", values="mse", aggfunc="median").loc[NO_COVARIATES]
    chosen = fam.groupby(["design", "family"])["basis"].agg(", ".join).unstack().loc[NO_COVARIATES]
    table = pd.DataFrame({"line": med["line"]})
    for f in FAMILIES:
        table[f"{f}: chose"] = chosen[f]
        table[f"{f}: MSE"] = med[f]
    for f in ("finer", "no line"):
        table[f"{f} / package"] = med[f] / med["package"]
    better = {f: int(((med[f] / med["package"]) < 0.9).sum()) for f in ("finer", "no line")}
    worse = {f: int(((med[f] / med["package"]) > 1.1).sum()) for f in ("finer", "no line")}
    approx = bias.set_index("basis")["approximation error"]
    fixed_med = df[df["part"] == "fixed"].groupby("basis")["mse"].median()
    orthoiv = "B-spline, 2 interior (uniform)"
    lb = pd.read_csv(Path(__file__).resolve().parents[1] / "leaderboard.csv")
    board = lb[(lb["design"] == DESIGN) & lb["seed"].isin(SEEDS)].groupby("method")["mse"].median()
    reading = (
        f"- Reading: on {DESIGN} OrthoIV's margin is its basis. Two interior knots approximate sin(πt) to "
        f"{approx[orthoiv]:.2g}; the package's cubic and its spline with one knot (at the median, where an odd "
        f"function gains nothing from it) to {approx[_basis_label(2)]:.2g}, more than OrthoIV's whole MSE "
        f"({fixed_med[orthoiv]:.2g}). The family's next spline, three knots, approximates it well but has "
        f"more coefficients to instrument: {fixed_med[_basis_label(5)]:.2g} at that fixed basis. The default reports "
        f"its trained head there (its spline and its trained curve both depart from the line): {board['dfiv']:.2g} on "
        f"the leaderboard (median, seeds 0-2); npiv, whose family is the package's splines without the line, "
        f"{board['npiv']:.2g}. No data-driven choice among these sieves reaches OrthoIV's fixed basis on all three "
        "seeds.")
    return "\n".join([
        TITLE, "", f"Command: `{COMMAND}`", "",
        "See the script's docstring. The sieves on the design's rows alone (no network): every training row, the "
        "package's instruments and Lepski constants. MSE on each design's test grid; the truth only scores.", "",
        "**Approximation error** of h₀(t) = sin(πt) in each basis (least squares under t ~ U(−1, 1), no noise):", "",
        markdown_table(bias), "",
        f"**2SLS at each fixed basis** on {DESIGN}, n = 5,000 (the leaderboard's data):", "",
        markdown_table(fixed), "",
        "**Lepski's choice under three families**, the 11 public designs without covariates, seeds 0-2 (medians; "
        "chose: per seed):", "",
        markdown_table(table.reset_index()), "",
        f"- A finer family is more than 10% better than the package's on {better['finer']} designs and more than 10% "
        f"worse on {worse['finer']}; the family without the line: better on {better['no line']}, worse on "
        f"{worse['no line']}. The finer family's loss is on lowdim_abs, where DFIV is best on the leaderboard; the "
        "family without the line loses on every linear design (it cannot report a line). Neither is stated as a "
        "rule: where the default reports a spline today (kiv_sigmoid, chen_christensen_severe: the cubic) all "
        "three families choose alike, and on the four designs where the finer family chooses otherwise (lowdim_abs, "
        "lowdim_sin, lowdim_step, chen_christensen_mild) the default keeps its trained head (RESULTS, \"The shape "
        "step\").",
        reading,
    ]) + "\n"


if __name__ == "__main__":
    diagnostic_main(__doc__, TITLE, run, summarise)
