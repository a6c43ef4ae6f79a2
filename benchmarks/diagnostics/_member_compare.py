"""Shared by the benchmarks that decide one default: fit one default member per design, seed and setting.

A *member* is ``DFIV``/``DFPV`` with ``n_estimators=1`` and no bootstrap, so the criterion read at its kept
check is the same one early stopping uses. Each row reports

* ``held_out_stage2``: the held-out stage-2 loss of the kept check (median of the last checks) - the criterion,
  no truth;
* ``stage1_r2``: the held-out stage-1 R² of the kept check;
* ``mse``: the structural MSE against the truth - for information and for the "no design gets worse" checks;
* ``fit_s``, ``steps``, ``reason``: what the fit cost and how it ended.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

# the image designs first: the slowest fits start while the cores are free
DESIGNS = ("dsprites", "dsprites_proxy", "demand", "demand_proxy", "lowdim_abs", "lowdim_linear", "lowdim_sin",
           "lowdim_step", "linear_binary_iv")
IMAGE = {"dsprites", "dsprites_proxy"}


def fit_member(design: str, n_tab: int, seed: int, params: dict) -> dict:
    """Fit one default member with ``params`` on ``design`` (dSprites at 2,000 rows, others at ``n_tab``)."""
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    from deepcausal import DFIV, DFPV
    from deepcausal.benchmark import make_design

    n = 2000 if design in IMAGE else n_tab
    d, _ = make_design(design, n=n, seed=seed)
    cls = DFPV if d.kind == "proxy" else DFIV
    est = cls(random_state=seed, n_estimators=1, n_bootstrap=0, **params)
    start = time.perf_counter()
    if d.train is not None:
        est.fit(d.train, **d.fit_kwargs())
    else:  # image designs come as arrays
        est.fit(**d.array_kwargs())
    seconds = time.perf_counter() - start
    inputs = d.test_X if d.train is not None else d.test_X["treatment"]
    kept = est.history_.loc[est.history_["kept"]].iloc[0]
    return dict(design=design, n=n, seed=seed, method=cls.__name__,
                held_out_stage2=float(kept["val_stage2_median"]), stage1_r2=float(kept["val_stage1_r2"]),
                mse=float(d.score(est.predict(inputs))), fit_s=seconds, steps=int(est.stopping_["steps"]),
                reason=est.stopping_["reason"], recoveries=len(est.stopping_.get("recoveries", [])))


def medians(df, setting: str):
    """Medians over seeds per design, size and ``setting`` (a column of ``df``)."""
    return (df.groupby(["design", "n", setting], sort=False)
              .agg(method=("method", "first"), held_out_stage2=("held_out_stage2", "median"),
                   stage1_r2=("stage1_r2", "median"), mse=("mse", "median"), fit_s=("fit_s", "median"),
                   steps=("steps", "median"), seeds=("seed", "count")).reset_index())


def ratio_table(df, setting: str, is_base):
    """:func:`medians` with each row's ratios to the baseline setting of the same design and size:
    ``loss_ratio`` (held-out stage-2 loss, the criterion) and ``mse_ratio`` (truth, information).
    ``is_base(column)`` marks the baseline values of ``setting``."""
    import pandas as pd

    t = medians(df, setting)
    base = t[is_base(t[setting])].set_index(["design", "n"])
    idx = pd.MultiIndex.from_frame(t[["design", "n"]])
    t["loss_ratio"] = t["held_out_stage2"].to_numpy() / base["held_out_stage2"].reindex(idx).to_numpy()
    t["mse_ratio"] = t["mse"].to_numpy() / base["mse"].reindex(idx).to_numpy()
    return t


RATIO_COLUMNS = ("| held-out stage-2 | stage-1 R² | MSE (truth, info) | fit s | steps | seeds | loss ratio | MSE ratio |",
                 "|---|---|---|---|---|---|---|---|")


def ratio_cells(r) -> str:
    """The :data:`RATIO_COLUMNS` cells of one :func:`ratio_table` row."""
    return (f"| {r.held_out_stage2:.5g} | {r.stage1_r2:.3f} | {r.mse:.4g} | {r.fit_s:.1f} | {r.steps:.0f} | "
            f"{r.seeds} | {r.loss_ratio:.3f} | {r.mse_ratio:.2f} |")


def finish_section(title: str, lines: list, verdict: list, decision: str, write: bool) -> None:
    """Append the rule's verdict and the decision, print the section, and write it into RESULTS.md."""
    from _results import write_section

    lines = lines + [""] + verdict + (["", decision] if decision else [])
    print("\n".join(lines))
    if write:
        write_section(title, title + "\n\n" + "\n".join(lines) + "\n")


def fit_and_merge(csv: str, key: list, fit, jobs: list, n_jobs: int, from_csv: bool):
    """Run ``fit(*job)`` for every job (``n_jobs`` processes) and merge the rows into ``csv``, a rerun of
    a ``key`` replacing its row; with ``from_csv`` only read the file. Returns every row."""
    import pandas as pd
    from joblib import Parallel, delayed

    old = pd.read_csv(csv) if os.path.exists(csv) else pd.DataFrame(columns=key)
    if from_csv:
        return old
    new = pd.DataFrame(Parallel(n_jobs=n_jobs, verbose=5)(delayed(fit)(*job) for job in jobs))
    keep = old[~old.set_index(key).index.isin(new.set_index(key).index)] if len(old) else old
    df = pd.concat([keep, new], ignore_index=True) if len(keep) else new
    df.to_csv(csv, index=False)
    return df


def command_line(script: str, argv) -> str:
    """The command that ran ``script`` with ``argv`` (default: this process's arguments), as markdown code."""
    args = " ".join(argv if argv is not None else sys.argv[1:])
    return f"`OMP_NUM_THREADS=1 python benchmarks/{script}" + (f" {args}`" if args else "`")


def header_lines(command: str, n_jobs: int, from_csv: bool) -> list:
    """The command and machine lines that open a section."""
    from _results import machine

    return [f"Command: {command} (from the repository root).",
            f"Machine: {machine()}; {n_jobs} fits at a time, one thread each; load average at the end "
            f"{os.getloadavg()[0]:.1f}" + (" (of the rewrite from the CSV, not of the fits)" if from_csv else "") + ".",
            ""]


def add_member_args(ap) -> None:
    """The options every member-comparison script takes: seeds, designs, size, processes, CSV-only rewrite."""
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--designs", default=",".join(DESIGNS))
    ap.add_argument("--n", type=int, default=5000, help="rows of the tabular designs (dSprites: 2,000)")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--from-csv", action="store_true", help="rewrite the section from the CSV only")
    ap.add_argument("--command", default=None, help="the command(s) to print in the section (default: this one)")
