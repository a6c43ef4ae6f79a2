"""The shape step's (B) read on the ensemble: does the trained curve depart from the line beyond what the members'
disagreement allows? (issue 35)

The shape step (``deepcausal._sieve.shape_step``, adopted: "The shape step") keeps the trained head wherever, on a
majority of the members, (B) its curve departs from the line (a sup-t test at 5% on that member's bootstrap draws).
Those draws hold each member's networks fixed: they measure the noise of its head, not of its curve. On our smooth
design the trained head was kept at 4-5 times the line's error (seeds 20 and 21: (B) on four and five members of
five, Lepski keeping the line; seed 22: the spline departing too, at 0.023 against the trained head's 0.94): the
members' curves bend, each significantly by its own head's noise, but not alike. The bands of the package already
account for that: they combine the members' draws with the spread between the members' estimates (Rubin's rules,
``deepcausal.inference.combine_draws``).

**The rule, stated before its run.** (B) is read once for the ensemble instead of per member: at the shape step's
200 evaluation rows, each member's difference trained − line and its bootstrap deviations (the same multipliers
for both curves) are combined as the bands combine them (``combine_draws``, 95%, ``band="uniform"``); (B) holds
when that uniform band of the difference excludes zero at some row. Then, where F >= 37.418 (one treatment
column, at least 20 draws): the held-out choice is the line: as the shape step (the spline where (A) holds on a
majority); the trained head kept: the spline where (A) holds on a majority of the members and (B) does not; the
line where (A) fails on a majority and (B) does not; otherwise the trained head. (A) is the shape step's, per
member.

**Adoption, stated before its run** (the rule of every earlier part): over the 17 designs (our own four at n =
3,000, the 13 public designs with continuous instruments at 5,000), one ``complexity="sieve"`` fit per design and
seed (its networks, family and draws are a default fit's), at seeds 38-40 (no run has made them), the rule's
median MSE is at most 1.1x the shape step's (on the same fit) on demand, lowdim_abs and weak_iv, at most 1.25x on
every other design, and lower by more than 10% on at least two designs. The truth only scores.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_ensemble_departure.py [--shard i/k]`` (from the
repository root; rows in ``benchmarks/diagnostics/ensemble_departure.csv``, resumable; ``--summarise-only``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _continuous_iv import OWN, PUBLIC, fits, standardised  # noqa: E402
from _results import append_row, markdown_table, sharded_main  # noqa: E402
from eval_shape_rule import MAJORITY, _by_design, choice_table, decide, member_phis, member_tests  # noqa: E402
from eval_sieve_rule import F_BOUND, _choices, _knots, adoption  # noqa: E402

CSV = Path(__file__).resolve().parent / "ensemble_departure.csv"
TITLE = "## The shape step's (B) read on the ensemble (issue 35)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_ensemble_departure.py"
SEEDS = (38, 39, 40)
COLUMNS = ["design", "seed", "first_stage_f", "knots", "a", "b", "b_ensemble", "held_out", "shape", "rule",
           "mse_line", "mse_trained", "mse_spline", "mse_shape", "mse_rule", "fit_s"]


def ensemble_departs(est, std, seed) -> bool:
    """(B) for the ensemble: the 95% uniform band of the members' trained − line difference at the shape step's
    200 rows (``member_phis``'s), combined by Rubin's rules, excludes zero somewhere."""
    from deepcausal.inference import combine_draws

    diffs, devs = [], []
    for m, phi, _ in member_phis(est, std, seed):
        P = phi.numpy()
        heads = m.candidates_["heads"].double().numpy()[..., 0]  # (C, d₂): the line first, trained last
        draws = m.candidates_["draws"].double().numpy()[..., 0]  # (C, B, d₂)
        diffs.append(P @ (heads[-1] - heads[0]))
        devs.append((draws[-1] - draws[0]) @ P.T)
    band = combine_draws(np.stack(diffs), devs, 0.05, band="uniform")
    return bool(np.any((band["lower"] > 0) | (band["upper"] < 0)))


def decide_ensemble(held_out: str, f: float, tests: list, b_ensemble: bool) -> str:
    """The rule of the docstring from the held-out choice, F, the members' (A, B) and the ensemble's (B)."""
    if not f >= F_BOUND:
        return held_out
    if held_out == "line":
        return decide(held_out, f, tests)[1]
    if b_ensemble:
        return "trained"
    spline = sum(a for a, _ in tests) >= MAJORITY
    return "spline" if spline else "line" if sum(not a for a, _ in tests) >= MAJORITY else "trained"


def run(shard: int, shards: int):
    pairs = [(n, s) for s in SEEDS for n in OWN + PUBLIC][shard::shards]
    for name, seed, d, est, fit_s in fits(CSV, pairs, complexity="sieve"):
        std, _ = standardised(est, d)
        tests = member_tests(est, std, seed)  # before any candidate is swapped in
        b_ens = ensemble_departs(est, std, seed)
        c, knots = _choices(est, d), _knots(est)
        f = float(est.first_stage_f_)
        _, shape = decide(c["today"], f, tests)
        rule = decide_ensemble(c["today"], f, tests, b_ens)
        row = dict(design=name, seed=seed, first_stage_f=f, knots=knots, held_out=c["today"],
                   a="".join("1" if a else "0" for a, _ in tests), b="".join("1" if b else "0" for _, b in tests),
                   b_ensemble=int(b_ens), shape=shape, rule=rule, mse_line=c["mse_line"],
                   mse_trained=c["mse_trained"], mse_spline=c["mse_spline"], mse_shape=c[f"mse_{shape}"],
                   mse_rule=c[f"mse_{rule}"], fit_s=fit_s)
        print(row, flush=True)
        append_row(CSV, row, COLUMNS)


def summarise() -> str:
    df, g, agg, order = _by_design(CSV)
    table, ratio = choice_table(g, agg, order, "shape", "shape step", b_label="B per member",
                                after_b={"B ensemble": g["b_ensemble"].agg(lambda v: ",".join(map(str, v)))})
    lines = [TITLE, "", f"Command: `{COMMAND}` (two shards, `--shard 0/2` and `--shard 1/2`, one thread each)", "",
             "The rule and its adoption were stated in the script's docstring before this run. Seeds 38-40, one "
             "`complexity=\"sieve\"` fit each (our own designs at n = 3,000, the public ones at 5,000), read as the "
             "default. A and B per member: each member's sup-t verdicts (1: departs from the line at 5%); B "
             "ensemble: the members' difference combined as the bands combine it (1: departs). Medians over the "
             "seeds.", "", markdown_table(table.reset_index()), "",
             adoption(ratio, table["seeds"], "Rule / the shape step"),
             f"- The rule chose otherwise than the shape step on {int((df['rule'] != df['shape']).sum())} of "
             f"{len(df)} fits.",
             "- Reading: on lowdim_step the members' trained curves disagree about where the step is, so the "
             "ensemble's band of their difference from the line covers zero, while their average is the best curve "
             "there; the between-member spread is noise that the average removes, and a test that counts it "
             "against the trained curve rejects a good ensemble. The smooth design's case (the trained head kept at "
             "several times the line's error) did not occur on these seeds: the held-out rows chose the line on all "
             "three and the shape step then reported the spline on two."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    sharded_main(__doc__, TITLE, run, summarise, argv)


if __name__ == "__main__":
    main()
