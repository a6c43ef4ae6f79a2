"""Evaluate the complexity rules of ``deepcausal._complexity`` on the leaderboard's fitted default estimators.

The rules and their constants, stated before this run (issue 28) and not changed by it:

* **Family.** On each member's trained networks, closed-form stage-2 heads from the simplest curve to the
  trained head. DFIV (default networks keep the raw treatment and covariates): linear 2SLS on the raw
  variables (every row), then a curve linear in the treatment with one slope, then a slope varying with
  the covariate features, then the nonlinear treatment features with an extra ridge
  γ = 10², 10, 1, 0.1, 0.01, 0.001, and last the trained head (γ = 0). DFPV (plain networks): a ridge path
  γ = 10², 10, 1, 0.1, 0.01, 0.001, 0 on every treatment feature's coefficients. Image treatments: none.
* **Lepski** (``complexity="lepski"``): the simplest candidate whose curve at 200 training rows lies,
  against every more complex candidate, inside the joint 90% sup-t band of the difference (α = 0.1; the
  members' bootstrap draws and spread, Rubin's rules).
* **Discrepancy** (``complexity="discrepancy"``): the simplest candidate whose held-out projected stage-2
  loss exceeds the trained head's by at most one standard error of the paired difference (τ = 1).
* **Auto** (``complexity="auto"``, added at stop 23 from identification theory, before its evaluation on the
  designs the leaderboard added): linear 2SLS (the family's first candidate) when the excluded instruments
  take at most d_t + 1 distinct values, else the trained head (``deepcausal._complexity.resolve_rule``).
* **Adoption rule.** A rule becomes the default of an estimator if, over that estimator's designs in this
  run, its median-over-seeds structural MSE is at most the trained head's on at least two thirds of the
  designs and at most 1.25 times it on every design. The truth evaluates the rules; it chooses nothing.

For each saved model ``<design>_<dfiv|dfpv>_<seed>.pt`` of ``benchmarks/leaderboard.py --save-models DIR``,
the design is drawn again (n = 5,000, the seed), each member's stage halves are rebuilt from its seed, the
family is computed (bootstrap: 100 draws, seed 0) and every rule applied; every candidate is scored too.
Also reported: per design, the Spearman correlation between each rule's criterion and the candidates' MSE.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_complexity.py --models DIR [--refit full]`` (from the
repository root; rows in ``benchmarks/diagnostics/complexity.csv``, or ``complexity_full.csv`` for the family
on full-sample heads, ``refit_heads="full"``; sections "Complexity rules" of RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from _results import machine, single_thread, write_section  # noqa: E402
from scipy import stats  # noqa: E402

from deepcausal import DFIV, DFPV  # noqa: E402
from deepcausal._complexity import family, resolve_rule  # noqa: E402
from deepcausal._training import Everything, Half, refit  # noqa: E402
from deepcausal.benchmark import make_design  # noqa: E402
from deepcausal.distributed import Communicator  # noqa: E402

CSV = Path(__file__).resolve().parent / "complexity.csv"
TITLE = "## Complexity rules (issue 28)"
ADOPT_SHARE, ADOPT_WORST = 2 / 3, 1.25


def _candidates(est, design, full: bool = False) -> dict:
    """Rebuild each member's halves and compute its family (the fit kept no candidates); ``full``: on
    full-sample heads (``refit_heads="full"``), the members' heads re-solved on every row first."""
    kw = design.fit_kwargs() if design.train is not None else None
    if kw is None:
        return {}
    data, _, _, _ = est._collect(design.train, {}, kw)
    tensors = {k: torch.as_tensor(est.scalers_[k].transform(v), dtype=torch.float32)
               for k, v in data.items() if v is not None}
    n, n1, n_val = int(est.n_train_), int(est.n_stage1_), int(est.settings_["n_val"])
    comm = Communicator(torch.device("cpu"))
    for seed, m in zip(est.seeds_, est._members()):
        rows = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        halves = (Half(tensors, rows[:n1], n_val), Half(tensors, rows[n1:], n_val))
        if full:
            refit(m, m.nets_, m.heads_, halves, 1024, full=True)
            halves = (Everything(halves), Everything(halves))
        found = family(m, m.nets_, m.heads_, halves, 100, 0, comm, torch.device("cpu"), full=full)
        if found is None:
            return {}
        m.candidates_ = found[2]
    return data


def _auto_is_linear(design) -> bool:
    """Whether ``complexity="auto"`` reports the line on this design's training data."""
    kw = design.fit_kwargs() if design.train is not None else {}
    if "instruments" not in kw:
        return False
    data = {"T": design.train[list(kw["treatment"])].to_numpy(float),
            "Z": design.train[list(kw["instruments"])].to_numpy(float)}
    return resolve_rule("auto", data)[0] == "linear"


def _mse_auto(r) -> float:
    """The structural MSE of ``complexity="auto"``: the first candidate's where it reports the line."""
    if not bool(r.get("auto_linear", False)) or not isinstance(r.get("candidate_mse"), str):
        return float(r["mse_trained"])
    return float(json.loads(r["candidate_mse"])[0])


def evaluate(path: Path, full: bool = False) -> dict:
    design_name, method, seed = path.stem.rsplit("_", 2)
    cls = DFIV if method == "dfiv" else DFPV
    est = cls.load(path)
    design, _ = make_design(design_name, n=int(est.n_train_), seed=int(seed))
    row = {"design": design_name, "method": method, "seed": int(seed), "refit": "full" if full else "split"}
    members = est._members()
    data = _candidates(est, design, full)  # with ``full``, first re-solves the members' heads on every row
    trained = [m.heads_.u.clone() for m in members]
    row["mse_trained"] = design.score(est.predict(design.test_X))
    if not data:
        return row
    C = members[0].candidates_["heads"].shape[0]
    cand_mse = []
    for c in range(C):
        for m in members:
            m.heads_.u = m.candidates_["heads"][c].clone()
        cand_mse.append(design.score(est.predict(design.test_X)))
    row["labels"] = json.dumps(list(members[0].candidates_["labels"]))
    row["candidate_mse"] = json.dumps(cand_mse)
    row["auto_linear"] = _auto_is_linear(design)
    for rule in ("lepski", "discrepancy"):
        est.complexity = rule
        out = est._choose_complexity(data)
        row[f"mse_{rule}"] = design.score(est.predict(design.test_X))
        row[f"chosen_{rule}"] = int(out["chosen"])
        row[f"criterion_{rule}"] = json.dumps([float(v) for v in out["criterion"]])
        for m, u in zip(members, trained):
            m.heads_.u = u.clone()
    return row


def summarise(df: pd.DataFrame, command: str, title: str = TITLE) -> None:
    df = df.copy()
    if "auto_linear" not in df:
        df["auto_linear"] = np.nan
    missing = df["auto_linear"].isna()  # rows of runs before the auto rule: read the design again
    df["auto_linear"] = df["auto_linear"].astype(object)
    df.loc[missing, "auto_linear"] = [_auto_is_linear(make_design(d, n=5000, seed=int(s))[0])
                                      for d, s in zip(df.loc[missing, "design"], df.loc[missing, "seed"])]
    df["mse_auto"] = [_mse_auto(r) for r in df.to_dict("records")]
    med = df.groupby(["method", "design"]).agg(
        trained=("mse_trained", "median"), auto=("mse_auto", "median"), lepski=("mse_lepski", "median"),
        discrepancy=("mse_discrepancy", "median"), seeds=("seed", "nunique")).reset_index()
    lines = [title, "", f"Command: `{command}` (from the repository root; rows in "
             f"`benchmarks/diagnostics/{CSV.name if 'full' not in title else 'complexity_full.csv'}`).",
             f"Machine: {machine()}.", "",
             "The rules, their constants and the adoption rule are stated in the script's docstring, before its run. "
             "Median structural MSE over seeds 0–2 (n = 5,000) of the leaderboard's fitted default ensembles, with "
             + ("the full-sample head at the trained complexity (`refit_heads=\"full\"`, the column `trained`) "
                if "full" in title else "the trained head (`complexity=\"trained\"`) ") + "and with each rule's choice "
             "(`auto`: the default, the line where the instruments identify only a slope); `chosen`: the candidates chosen per seed "
             "(0 = the simplest). Spearman: the correlation, over the candidates, between the rule's criterion "
             "(Lepski: the largest standardised difference from a more complex candidate; discrepancy: the held-out "
             "loss excess in standard errors) and the candidates' MSE, median over seeds.", "",
             "| estimator | design | trained | auto | Lepski | chosen | Spearman | discrepancy | chosen | Spearman |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    verdict, design_rho = {}, {"lepski": [], "discrepancy": []}
    for r in med.itertuples():
        d = df[(df["method"] == r.method) & (df["design"] == r.design)]
        cells = []
        for rule in ("lepski", "discrepancy"):
            chosen = ",".join(str(int(c)) for c in d[f"chosen_{rule}"].dropna())
            rho = []
            for cand, crit in zip(d["candidate_mse"].dropna(), d[f"criterion_{rule}"].dropna()):
                mse, cr = np.array(json.loads(cand)), np.array(json.loads(crit))
                rho.append(stats.spearmanr(cr[:-1], mse[:-1]).statistic if len(mse) > 2 else np.nan)
            cells += [f"{getattr(r, rule):.4g}", chosen or "–", f"{np.nanmedian(rho):.2f}" if rho else "–"]
            if rho and np.isfinite(rho).any():
                design_rho[rule].append(float(np.nanmedian(rho)))
        lines.append(f"| {r.method} | {r.design} | {r.trained:.4g} | {r.auto:.4g} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("- Spearman, median over the " + " and ".join(
        f"{len(v)} designs for {rule} ({np.median(v):.2f})" for rule, v in design_rho.items() if v)
        + " (issue 28's target: at least 0.5).")
    for method, d in med.groupby("method"):
        for rule in ("auto", "lepski", "discrepancy"):
            if rule == "auto" and method == "dfpv":  # DFPV's "auto" is its trained head: nothing to adopt
                continue
            ok = d[rule].notna()
            ratio = (d.loc[ok, rule] / d.loc[ok, "trained"]).to_numpy()
            share = float(np.mean(ratio <= 1.0)) if len(ratio) else float("nan")
            worst = float(np.max(ratio)) if len(ratio) else float("nan")
            adopt = len(ratio) > 0 and share >= ADOPT_SHARE and worst <= ADOPT_WORST
            verdict[(method, rule)] = adopt
            lines.append(f"- {method.upper()}, {rule}: at most the trained head's MSE on {share:.0%} of {len(ratio)} "
                         f"designs, worst ratio {worst:.2f} → {'adopted by the stated rule' if adopt else 'not adopted'}.")
    write_section(title, "\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True)
    ap.add_argument("--summarise-only", action="store_true")
    ap.add_argument("--refit", choices=("split", "full"), default="split",
                    help="the family on the heads as fitted (split) or re-solved on every row (full)")
    args = ap.parse_args(argv)
    single_thread()
    warnings.simplefilter("ignore")
    full = args.refit == "full"
    csv = CSV.with_name("complexity_full.csv") if full else CSV
    done = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=["design", "method", "seed"])
    if not args.summarise_only:
        for path in sorted(Path(args.models).glob("*.pt")):
            design_name, method, seed = path.stem.rsplit("_", 2)
            if design_name.startswith("dsprites"):  # image treatments: no family (see above)
                continue
            if ((done["design"] == design_name) & (done["method"] == method) & (done["seed"] == int(seed))).any():
                continue
            row = evaluate(path, full)
            done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
            done.to_csv(csv, index=False)
            print({k: v for k, v in row.items() if not str(k).startswith(("criterion", "candidate", "labels"))},
                  flush=True)
    command = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/eval_complexity.py --models DIR" + (
        " --refit full" if full else "")
    summarise(done, command, TITLE.replace("rules", "rules on full-sample heads") if full else TITLE)


if __name__ == "__main__":
    main()
