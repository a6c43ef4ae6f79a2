"""Scale: DFIV on demand and DFPV on demand PCL at n = 10⁴, 10⁵, 10⁶, one default member, one CPU thread.

    python benchmarks/bench_scale.py                                  # every size, seeds 0,1,2 (0 at 10⁶)
    python benchmarks/bench_scale.py --sizes 10000 --seeds 0,1,2      # a subset; rows are merged
    python benchmarks/bench_scale.py --sizes 1000000 --only dfiv --time-limit 900

Each fit runs in its own process, one after another, so that its peak resident memory (``ru_maxrss`` of
that process, from ``os.wait4``) is the fit's own; data generation is included in it. Structural MSE is
measured on the design's test set. Every setting is the estimator's default (early stopping on the
held-out stage-2 loss, a step cap growing as √n, ``n_bootstrap=100``) except ``n_estimators=1``: one
member on one thread, as the issue's targets are stated (the default 5-member ensemble is five such fits,
run in parallel processes, each with its own split and seed).

A fit still running after ``--time-limit`` seconds is sent SIGINT: training ends cleanly at the current
step (``stopping_["reason"] == "interrupted"``), the model is finished as usual and scored, and the row
says so. Raw rows go to ``benchmarks/scale.csv`` (a rerun of an (estimator, n, seed) replaces its row);
the ``## Scale`` section of RESULTS.md is written from that file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, markdown_table, single_thread, write_section  # noqa: E402

DESIGNS = {"dfiv": "demand (IV, rho 0.5)", "dfpv": "demand PCL"}
CSV = Path(__file__).resolve().parent / "scale.csv"
TARGET_MSE = {"dfiv": 30.0, "dfpv": 3.0}  # at n = 10⁶ (issue 14)


def fit_once(estimator: str, n: int, seed: int) -> dict:
    """One default fit in this process; returns MSE, seconds and how training ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only training itself may be interrupted
    single_thread()
    from deepcausal import DFIV, DFPV
    from deepcausal.datasets import demand, demand_proxy

    design = demand(n=n, rho=0.5, seed=seed) if estimator == "dfiv" else demand_proxy(n=n, seed=seed)
    est = (DFIV if estimator == "dfiv" else DFPV)(random_state=seed, n_estimators=1)
    # SIGINT (the time limit) ends training only: inside the training loop it is a KeyboardInterrupt,
    # which the loop turns into a clean stop; before or after it (data, refit, bootstrap) it is ignored.
    training = [False]

    def on_sigint(signum, frame):
        if training[0]:
            raise KeyboardInterrupt

    def train(*args, _original=est._train):
        training[0] = True
        try:
            return _original(*args)
        finally:
            training[0] = False

    est._train = train
    start, cpu = time.perf_counter(), time.process_time()
    signal.signal(signal.SIGINT, on_sigint)
    est.fit(design.train, **design.fit_kwargs())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    del est._train
    stop = est.stopping_
    return {"mse": design.score(est.predict(design.test_X)), "fit_seconds": seconds, "fit_cpu_seconds": cpu,
            "steps": int(stop["steps"]), "max_steps": int(est.settings_["max_steps"]),
            "epochs": int(stop["epochs"]), "stopped": stop["reason"], "kept_step": stop["kept_step"]}


def run_measured(estimator: str, n: int, seed: int, time_limit: float, command: str = "") -> dict:
    """Fit in a child process; its peak RSS from ``wait4``; SIGINT after ``time_limit`` seconds."""
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, __file__, "--child", estimator, str(n), str(seed)],
                                stdout=out, stderr=err)
        timer = threading.Timer(time_limit, proc.send_signal, [signal.SIGINT])
        timer.start()
        start = time.perf_counter()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
        out.seek(0)
        lines = out.read().strip().splitlines()
        err.seek(0)
        errors = [line for line in err.read().strip().splitlines() if line.strip()]
    if proc.returncode == 0 and lines:
        result = json.loads(lines[-1])
    else:  # e.g. SIGINT outside training (imports, data, the bootstrap after training), or an exception
        why = f": {errors[-1].strip()}" if errors else ""
        result = {"mse": float("nan"), "fit_seconds": float("nan"), "stopped": f"failed (exit {proc.returncode}){why}"}
        print(f"{estimator} n={n} seed={seed} failed{why}", file=sys.stderr, flush=True)
    return {"estimator": estimator.upper(), "n": n, "seed": seed, **result,
            "peak_rss_mib": usage.ru_maxrss / 1024, "process_seconds": wall,
            "load_start": load_start, "load_end": os.getloadavg()[0], "command": command}


def section(table, notes: str = "") -> str:
    for col in ("fit_cpu_seconds",):  # absent from rows measured before it was recorded
        if col not in table:
            table = table.assign(**{col: float("nan")})
    per_fit = table.sort_values(["estimator", "n", "seed"]).round(
        {"mse": 2, "fit_seconds": 0, "fit_cpu_seconds": 0, "peak_rss_mib": 0, "load_start": 1, "load_end": 1})
    per_fit = per_fit[["estimator", "n", "seed", "mse", "steps", "max_steps", "epochs", "stopped", "kept_step",
                       "fit_seconds", "fit_cpu_seconds", "peak_rss_mib", "load_start", "load_end"]]
    med = table.groupby(["estimator", "n"]).agg(
        seeds=("seed", "size"), median_mse=("mse", "median"), min_mse=("mse", "min"), max_mse=("mse", "max"),
        median_steps=("steps", "median"), median_fit_seconds=("fit_seconds", "median"),
        median_fit_cpu_seconds=("fit_cpu_seconds", "median"),
        max_peak_rss_mib=("peak_rss_mib", "max")).reset_index()
    med = med.round({"median_mse": 2, "min_mse": 2, "max_mse": 2, "median_fit_seconds": 0,
                     "median_fit_cpu_seconds": 0, "max_peak_rss_mib": 0})
    lines = []
    for est, target in TARGET_MSE.items():
        rows = med[(med.estimator == est.upper()) & (med.n == 1_000_000)]
        if rows.empty:
            lines.append(f"- {est.upper()} at n = 10⁶: not measured.")
            continue
        r = rows.iloc[0]
        ok = lambda c: "met" if c else "**missed**"  # noqa: E731
        lines.append(f"- {est.upper()} at n = 10⁶ ({r.seeds} seed(s)): MSE {r.median_mse} (target ≤ {target:g}: "
                     f"{ok(r.median_mse <= target)}), fit {r.median_fit_seconds:.0f} s (≤ 600 s: "
                     f"{ok(r.median_fit_seconds <= 600)}), peak RSS {r.max_peak_rss_mib:.0f} MiB (≤ 2048 MiB: "
                     f"{ok(r.max_peak_rss_mib <= 2048)}).")
        mses = med[med.estimator == est.upper()].sort_values("n").median_mse.tolist()
        falls = all(b < a for a, b in zip(mses, mses[1:]))
        lines.append(f"- {est.upper()} median MSE by n {mses}: falls with n: {ok(falls)}.")
    return (
        "## Scale\n\n"
        "Commands (from the repository root, `PYTHONPATH=.`): " + ", ".join(f"`{c}`" for c in dict.fromkeys(table.command)) + " (each fit in its own process, one at a time; peak RSS is that process's "
        "`ru_maxrss` from `os.wait4`, data generation included; raw rows in `benchmarks/scale.csv`).\n"
        f"Machine: {machine()}; shared with other work, so fit seconds vary with the load (1-minute load "
        "average at the start and end of each fit in the table; 2 = both cores busy). `fit_seconds` is wall "
        "time, `fit_cpu_seconds` the fit's CPU time (one thread): on an idle core the two would agree.\n\n"
        "One default member (`n_estimators=1`; proximal mode, early stopping on the held-out stage-2 loss with a step cap "
        "growing as √n, DFIV's learning rate annealed over the second half of the cap and DFPV's constant, "
        "`n_bootstrap=100`); `stopped` is "
        "`stopping_['reason']`: `early_stopping`, `max_steps` (the cap), `diverged` (a non-finite loss after two "
        "restarts from the kept check at a lower rate) or `interrupted` (the script's time limit sent SIGINT; the "
        "model at that step was finished and scored). `kept_step` is the check whose state was restored. Targets "
        "(issue 14): at n = 10⁶ DFIV MSE ≤ 30, DFPV MSE ≤ 3, fit ≤ 10 min on one thread, peak RSS ≤ 2 GiB; "
        "MSE falling from 10⁴ to 10⁵ to 10⁶.\n\n"
        + "\n".join(lines) + "\n\n" + (notes.strip() + "\n\n" if notes else "") + "Medians over seeds:\n\n" + markdown_table(med)
        + "\n\nEvery fit:\n\n" + markdown_table(per_fit) + "\n"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--seeds", default="0,1,2", help="seeds below n = 10⁶")
    parser.add_argument("--seeds-1e6", default="0", help="seeds at n ≥ 10⁶")
    parser.add_argument("--only", choices=sorted(DESIGNS), help="one estimator")
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds before SIGINT ends training")
    parser.add_argument("--notes", help="a markdown file of observations to print in the section")
    parser.add_argument("--report-only", action="store_true", help="write the section from the CSV, fit nothing")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--child", nargs=3, metavar=("ESTIMATOR", "N", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        est, n, seed = args.child
        print(json.dumps(fit_once(est, int(n), int(seed))), flush=True)
        return
    import pandas as pd

    single_thread()  # for the machine line; each child process sets its own
    old = pd.read_csv(CSV) if CSV.exists() else None
    command = "python benchmarks/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for n in ([] if args.report_only else (int(s) for s in args.sizes.split(","))):
        seeds = args.seeds_1e6 if n >= 1_000_000 else args.seeds
        for seed in (int(s) for s in seeds.split(",")):
            for estimator in ([args.only] if args.only else DESIGNS):
                row = run_measured(estimator, n, seed, args.time_limit, command.strip())
                print(row, flush=True)
                new = pd.DataFrame([row])
                if old is not None:
                    keep = ~((old.estimator == row["estimator"]) & (old.n == n) & (old.seed == seed))
                    new = pd.concat([old[keep], new], ignore_index=True)
                new.to_csv(CSV, index=False)
                old = new
    text = section(old, Path(args.notes).read_text() if args.notes else "")
    print(text)
    if not args.no_write:
        write_section("## Scale", text)


if __name__ == "__main__":
    main()
