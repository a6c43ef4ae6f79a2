"""Which members make the default ensemble's error at 10⁶ demand rows, and does early stopping make it? (issue 35,
information)

"The default ensemble's error against n on demand" found seed 2's ensemble at 10⁶ rows at 145 (seeds 0-1: 5.5 and
6.7; 10⁵ rows: 6.4 median), its members stopped early at a median of 9,669 of 14,143 steps; that one fit keeps the
median at 10⁶ from falling below 10⁵'s, the issue's target. Here the same fit, ``DFIV(random_state=2, n_jobs=1)``
on ``demand(10**6, rho=0.5, seed=2)``, as the default and with ``early_stopping=False`` (every member trains to its
cap), each in its own process (one thread): the ensemble's MSE, each member's MSE (a member's own prediction; the
ensemble's is their mean) and how each member's training ended (reason, steps). Measurement only; no rule.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_scale_members.py --variant {default,no_early_stopping}``
(from the repository root, one process per variant; rows in ``benchmarks/diagnostics/scale_members.csv``, resumable;
``--summarise-only``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _results import append_row, machine, markdown_table, single_thread, write_section  # noqa: E402

CSV = Path(__file__).resolve().parent / "scale_members.csv"
TITLE = "## Diagnosis: the members of the default ensemble at 10⁶ demand rows (issue 35, information)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_scale_members.py"
N, SEED = 1_000_000, 2
VARIANTS = {"default": {}, "no_early_stopping": {"early_stopping": False}}
COLUMNS = ["variant", "n", "seed", "mse", "member_mse", "stopped", "steps", "fit_s"]


def run(variant: str) -> None:
    from deepcausal import DFIV
    from deepcausal.datasets import demand

    if CSV.exists() and variant in set(pd.read_csv(CSV)["variant"]):
        return
    d = demand(n=N, rho=0.5, seed=SEED)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DFIV(random_state=SEED, n_jobs=1, verbose=False, **VARIANTS[variant]).fit(d.train, **d.fit_kwargs())
    seconds = time.perf_counter() - start
    members = est._members()
    row = dict(variant=variant, n=N, seed=SEED, mse=d.score(est.predict(d.test_X)),
               member_mse=" ".join(f"{d.score(m.predict(d.test_X)):.4g}" for m in members),
               stopped=" ".join(m.stopping_["reason"] for m in members),
               steps=" ".join(str(m.stopping_["steps"]) for m in members), fit_s=seconds)
    print(row, flush=True)
    append_row(CSV, row, COLUMNS)


READING = ("- Reading (2026-12-06): one member of five makes the default's error. Member 5 trained to its cap at "
           "4,054; the other four are at 32-89. The ensemble averages the members' curves, so member 5's error "
           "enters it divided by five: 4054/25 ≈ 162 of squared error if the others erred nowhere, about the "
           "ensemble's 145. Early stopping is not the fault: without it three members train on and get worse (891, "
           "5,483 and 258 against 89, 50 and 54), and the ensemble doubles to 323. Members 4 and 5 ended at their cap "
           "either way, with the same MSE: their held-out stage-2 loss never stopped them while member 5's curve went "
           "wrong. The known suspect is the treatment features' drift over long fits (\"Diagnosis: treatment-feature "
           "drift\"). What holds the target back is one drifting member at 10⁶ rows, not the stopping rule.")


def summarise() -> str:
    df = pd.read_csv(CSV)
    df["variant"] = pd.Categorical(df["variant"], list(VARIANTS))
    return "\n".join([TITLE, "", f"Command: `{COMMAND} --variant {{default,no_early_stopping}}` (one process each)", "",
                      f"Machine: {machine()}", "",
                      "See the script's docstring. Members in the ensemble's order; MSE on the design's test grid.", "",
                      markdown_table(df.sort_values("variant")), "", READING]) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=list(VARIANTS))
    p.add_argument("--summarise-only", action="store_true")
    a = p.parse_args(argv)
    single_thread()
    if not a.summarise_only:
        run(a.variant)
        if not CSV.exists() or len(set(pd.read_csv(CSV)["variant"])) < len(VARIANTS):
            print("this variant is done; once both are, write the RESULTS section with --summarise-only")
            return
    text = summarise()
    write_section(TITLE, text)
    print(text)


if __name__ == "__main__":
    main()
