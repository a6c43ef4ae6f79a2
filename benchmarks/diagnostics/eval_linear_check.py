"""The linear check (``DFIV.linear_check_``) on the leaderboard's fitted DFIV ensembles: when does it warn?

The check and its warning rule, fixed in ``deepcausal._diagnostics`` before this run: the fitted curve's
2SLS-weighted slope against linear 2SLS on the training rows (heteroskedasticity-robust), a
``ShrinkageWarning`` when the difference has p < 0.05 *and* is at least a tenth of the 2SLS slope.

For each saved model ``<design>_dfiv_<seed>.pt`` of ``benchmarks/leaderboard.py --save-models DIR`` (fitted
with ``complexity="trained"``: the heads as trained), the design's training rows are drawn again from the
seed and the check is computed on them. Reported per design: the median over seeds of the 2SLS slope, the
curve's 2SLS-weighted slope, the shrinkage 1 − curve / 2SLS and the curve's average marginal effect; how
many seeds warned; and the structural MSE. Information only: no default depends on it.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_linear_check.py --models DIR`` (from the
repository root; rows in ``benchmarks/diagnostics/linear_check.csv``; section "Linear check" of RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import pandas as pd  # noqa: E402
from _results import machine, single_thread, write_section  # noqa: E402

from deepcausal import DFIV  # noqa: E402
from deepcausal.benchmark import make_design  # noqa: E402
from deepcausal.exceptions import ShrinkageWarning  # noqa: E402

CSV = Path(__file__).resolve().parent / "linear_check.csv"
TITLE = "## Linear check on the leaderboard's fits (issue 28)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_linear_check.py --models DIR"


def evaluate(path: Path) -> dict:
    design_name, _, seed = path.stem.rsplit("_", 2)
    est = DFIV.load(path)
    design, _ = make_design(design_name, n=int(est.n_train_), seed=int(seed))
    frame = design.train
    data = {key: (frame[list(cols)].to_numpy(float) if cols else None) for key, cols in est.columns_.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check = est._linear_check(data)
    row = {"design": design_name, "seed": int(seed), "mse": design.score(est.predict(design.test_X))}
    if check is None:
        return row
    first = check.iloc[0]  # the designs' treatments are one column
    row.update({k: float(first[k]) for k in ("tsls", "tsls_se", "curve", "p_value", "shrinkage", "ame")
                if k in first})
    row["warned"] = any(issubclass(w.category, ShrinkageWarning) for w in caught)
    return row


def summarise(df: pd.DataFrame) -> None:
    med = df.groupby("design").agg(seeds=("seed", "nunique"), tsls=("tsls", "median"), curve=("curve", "median"),
                                   shrinkage=("shrinkage", "median"), p_value=("p_value", "median"),
                                   ame=("ame", "median"), warned=("warned", "sum"), mse=("mse", "median"))
    lines = [TITLE, "", f"Command: `{COMMAND}` (from the repository root; rows in "
             "`benchmarks/diagnostics/linear_check.csv`).", f"Machine: {machine()}.", "",
             "The leaderboard's default DFIV ensembles with their heads as trained (n = 5,000, seeds 0–2); the rule "
             "is in the script's docstring. Medians over seeds; `warned`: seeds whose check raised a "
             "`ShrinkageWarning` (p < 0.05 and a difference of at least a tenth of the 2SLS slope).", "",
             "| design | seeds | 2SLS | curve | shrinkage | p-value | curve AME | warned | MSE |",
             "|---|---|---|---|---|---|---|---|---|"]
    for design, r in med.iterrows():
        lines.append(f"| {design} | {r.seeds} | {r.tsls:.4g} | {r.curve:.4g} | {r.shrinkage:.1%} | {r.p_value:.2g} | "
                     f"{r.ame:.4g} | {int(r.warned)} | {r.mse:.4g} |")
    write_section(TITLE, "\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True)
    args = ap.parse_args(argv)
    single_thread()
    rows = []
    for path in sorted(Path(args.models).glob("*_dfiv_*.pt")):
        if path.stem.startswith("dsprites"):  # an image treatment has no 2SLS slope to check
            continue
        rows.append(evaluate(path))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(CSV, index=False)
    summarise(df)


if __name__ == "__main__":
    main()
