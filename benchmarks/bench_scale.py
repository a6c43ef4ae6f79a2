"""Scale: DFIV on demand and DFPV on demand PCL at n = 10⁴, 10⁵, 10⁶, default settings, one CPU thread.

    python benchmarks/bench_scale.py                 # every size, writes "## Scale" in RESULTS.md
    python benchmarks/bench_scale.py --sizes 10000   # a subset

Each fit runs in its own process under ``/usr/bin/time -v`` so that its peak resident memory is the
fit's own (data generation included). Structural MSE is measured on the design's test set.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, markdown_table, single_thread, write_section  # noqa: E402

ESTIMATORS = {"dfiv": "demand", "dfpv": "demand_proxy"}


def fit_once(estimator: str, n: int, seed: int) -> dict:
    """One fit in this process; returns MSE and seconds (the parent reads the memory)."""
    single_thread()
    from deepcausal import DFIV, DFPV
    from deepcausal.datasets import demand, demand_proxy

    design = demand(n=n, rho=0.5, seed=seed) if estimator == "dfiv" else demand_proxy(n=n, seed=seed)
    cls = DFIV if estimator == "dfiv" else DFPV
    start = time.perf_counter()
    est = cls(random_state=seed).fit(design.train, **design.fit_kwargs())
    seconds = time.perf_counter() - start
    return {"mse": design.score(est.predict(design.test_X)), "fit_seconds": seconds,
            "epochs": int(est.history_["epoch"].max())}


def run_measured(estimator: str, n: int, seed: int) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", estimator, str(n), str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr).group(1)
    return {"estimator": estimator.upper(), "n": n, **result, "peak_rss_mib": rss_kb / 1024, "process_wall": wall}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=3, metavar=("ESTIMATOR", "N", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        est, n, seed = args.child
        print(json.dumps(fit_once(est, int(n), int(seed))))
        return
    import pandas as pd

    single_thread()  # for the machine line; each child process sets its own
    rows = []
    for estimator in ESTIMATORS:
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(run_measured(estimator, n, args.seed))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows).round({"mse": 2, "fit_seconds": 1, "peak_rss_mib": 0})
    text = (
        "## Scale\n\n"
        f"Command: `python benchmarks/bench_scale.py --sizes {args.sizes} --seed {args.seed}` (each fit in its "
        "own process under `/usr/bin/time -v`; peak RSS includes generating the data).\n"
        f"Machine: {machine()}.\n\n"
        "Default estimators (proximal mode). The default number of epochs is capped by a step budget, so "
        "larger data sets train for fewer epochs (column `epochs`). Targets at n = 10⁶: fit ≤ 10 minutes on "
        "2 cores, peak RSS ≤ 2 GiB.\n\n" + markdown_table(table) + "\n"
    )
    print(text)
    write_section("## Scale", text)


if __name__ == "__main__":
    main()
