"""Does the default ensemble's error fall with n on demand? (issue 35's target: 10⁴ > 10⁵ > 10⁶ rows)

"Scale" (``benchmarks/bench_scale.py``) measures one member; the issue's target is about the default fit, the
five-member ensemble with every other setting at its default (the held-out rule, the covariate screen, bands).
Here: ``DFIV(random_state=seed, n_jobs=1)`` (the members as stacks in one process, one thread, so the fit seconds
are one core's) on ``demand(n, rho=0.5, seed=seed)``, structural MSE on the design's test grid; ``peak_rss_mib``: the
process's peak resident memory so far (every fit run before it in the same process included: seed 0 ran alone,
seeds 1-2 in one process; blank where not recorded); ``member_mse``: each member's own MSE, in the ensemble's
order; ``member_held_out``: each member's mean squared projected residual of its trained head on its stage-2 held-out
rows (standardised outcome units; what the held-out rule reads), to see whether a member the truth finds far off
is visible without the truth. Measurement only.

The first run at 10⁶ rows was killed by the kernel for memory (20 GB resident on the 24 GB machine), after
training, in the line candidate's bootstrap, which held every row's draws at once (rows × draws × columns); it
streams over rows since (``deepcausal._complexity.linear_iv_candidate``), and 10⁶ was run again.

Read from the first runs (2026-12-06, before the trained head was re-solved on every row): at 10⁶ rows seed 2's
ensemble scored 145, against 5.5 and 6.7 for seeds 0-1; its members stopped early at a median of 9,669 of 14,143
steps, and a member of seed 1 diverged and went back to its kept check. One bad ensemble of three is enough to keep
the median at 10⁶ (6.7) from falling below 10⁵'s (6.4). What makes that fit bad is diagnosed in
``diag_scale_members.py`` ("Diagnosis: the members of the default ensemble at 10⁶ demand rows"): one member of five,
trained to its cap, at 4,054; early stopping rescued three others.

Every row was fitted again later that day at the default with the trained head re-solved on every row (the CSV
moved aside; seed 0 in one process, seeds 1 and 2 in others, at most two at a time and beside other benchmarks, so
the fit seconds are a busy machine's). See the section's reading.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_ensemble_scale.py --seeds 0`` (from the repository
root; rows in ``benchmarks/diagnostics/ensemble_scale.csv``, resumable; ``--summarise-only``).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _results import machine, markdown_table, single_thread, write_section  # noqa: E402

from deepcausal import DFIV  # noqa: E402
from deepcausal.datasets import demand  # noqa: E402

CSV = Path(__file__).resolve().parent / "ensemble_scale.csv"
TITLE = "## The default ensemble's error against n on demand (issue 35)"
SIZES = (10_000, 100_000, 1_000_000)


def held_out_loss(member) -> float:
    """The mean squared projected residual of the member's trained head on its stage-2 held-out rows (standardised
    outcome units; the head solved on the half's other rows), NaN without the held-out rule's candidates."""
    cands = getattr(member, "candidates_", None)
    if not cands or "held_out" not in cands or cands["held_out"].shape[1] == 0:
        return float("nan")
    return float((cands["held_out"][-1] ** 2).mean())


def run(seeds):
    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=["n", "seed"])
    have = set(zip(done["n"], done["seed"]))
    for seed in seeds:
        for n in SIZES:
            if (n, seed) in have:
                continue
            d = demand(n=n, rho=0.5, seed=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                est = DFIV(random_state=seed, n_jobs=1, verbose=False).fit(d.train, **d.fit_kwargs())
                seconds = time.perf_counter() - start
            members = est._members()
            steps = [m.stopping_["steps"] for m in members]
            row = dict(n=n, seed=seed, mse=d.score(est.predict(d.test_X)), fit_s=seconds,
                       member_mse=" ".join(f"{d.score(m.predict(d.test_X)):.4g}" for m in members),
                       member_held_out=" ".join(f"{held_out_loss(m):.4g}" for m in members),
                       steps_median=float(pd.Series(steps).median()), max_steps=int(est.settings_["max_steps"]),
                       stopped=",".join(sorted({m.stopping_["reason"] for m in est._members()})),
                       curve=est.complexity_.get("label") or "trained head",
                       peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            print(row, flush=True)
            done = pd.concat([pd.read_csv(CSV), pd.DataFrame([row])]) if CSV.exists() else pd.DataFrame([row])
            done.to_csv(CSV, index=False)  # rewritten whole: rows from before a column was added keep a blank


READING = ("- Reading (2026-12-06, the every-row trained head): the every-row solve lowered every fit at 10⁴ and 10⁵ "
           "rows but seed 2's at 10⁴ (median 10⁴: 22.2 -> 24.3; 10⁵: 6.44 -> 5.45) and left 10⁶ where it was (6.68 -> "
           "6.71), so 10⁶ is still above 10⁵ on the median and on every seed. At 10⁶ the members' errors spread "
           "(seed 0: 8-117, seed 1: 4.7-53) and seed 2's fifth member drifts again, to 3,656 (4,054 before), which "
           "makes that ensemble's 131. The members' held-out losses do not see it: seed 2's fifth member has the "
           "lowest of the five (0.00662), and seed 0's two worst members (64 and 117) rank third and fourth of five. The "
           "projected loss is blind to what drifts; a rule that drops members by it would not have removed this one.")


def summarise(command):
    df = pd.read_csv(CSV).sort_values(["seed", "n"])
    med = df.groupby("n").agg(seeds=("seed", "size"), median_mse=("mse", "median"), median_fit_s=("fit_s", "median"))
    falls = bool(med["median_mse"].is_monotonic_decreasing and len(med) == len(SIZES))
    per_seed = {s: g.set_index("n")["mse"] for s, g in df.groupby("seed")}
    steady = [s for s, v in per_seed.items() if len(v) == len(SIZES) and v.is_monotonic_decreasing]
    lines = [TITLE, "", f"Command: `{command}`", "", f"Machine: {machine()}", "",
             "See the script's docstring: the default five-member DFIV (members stacked in one process, one thread) on "
             "demand (rho 0.5) at each n; structural MSE on the test grid. Measurement only.", "",
             markdown_table(df), "", "Medians over the seeds run:", "", markdown_table(med.reset_index()), "",
             f"- Median MSE by n {[round(v, 3) for v in med['median_mse']]}: "
             f"{'falls with n' if falls else '**does not fall steadily with n**'} (the target: 10⁴ > 10⁵ > 10⁶); "
             f"seeds whose own error falls steadily: {steady or 'none'} of {sorted(per_seed)}.", READING]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0")
    p.add_argument("--summarise-only", action="store_true")
    a = p.parse_args(argv)
    single_thread()
    if not a.summarise_only:
        run([int(s) for s in a.seeds.split(",")])
    text = summarise(f"OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_ensemble_scale.py --seeds {a.seeds}")
    write_section(TITLE, text)
    print(text)


if __name__ == "__main__":
    main()
