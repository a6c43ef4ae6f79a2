"""Wall time and accuracy of one whole default fit: all ensemble members, default ``n_jobs`` (issues 13, 16, 29).

DFIV on demand IV (rho 0.5) and DFPV on demand PCL, n = 5,000, default settings, one process per seed (so
every seed pays the worker start-up a user pays), structural MSE on the designs' test inputs.

The section also reports how much two one-thread processes slow each other down on this machine (the
*parallel probe*: one fixed-length DFIV member fit alone, then two of them at once, rounds interleaved). The
default ensemble splits 5 members 3 + 2 over the two cores, so its wall time is about the worker start-up
plus 3 × (that slowdown) × (one member's fit time); the probe turns the 15 s target into a budget per member.

Command: ``OMP_NUM_THREADS=1 python benchmarks/bench_default_fit.py [--seeds 0,1,2] [--only dfiv|dfpv]
[--lr-schedule constant|annealed] [--probe-rounds 3] [--n-estimators 5] [--compare] [--no-write]``; ``--compare``
also fits every seed with the members trained one by one (the default before issue 29) and the kernel peer
(KIV, KPV), interleaved in the same run, for the issue's ratios; ``--lr-schedule``
overrides the default ("auto") to compare schedules on the whole fit; ``--probe-rounds 0`` skips the probe;
``--n-estimators`` times another member count (its own section: the defaults keep 5).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, time, warnings, sys, threading
warnings.simplefilter("ignore")
import psutil, torch; torch.set_num_threads(1)
from deepcausal import DFIV, DFPV
from deepcausal.baselines import KIV, KPV
from deepcausal.datasets import demand, demand_proxy
method, seed, schedule, members, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
d = demand(5000, rho=0.5, seed=seed) if method == "dfiv" else demand_proxy(5000, seed=seed)
cls = DFIV if method == "dfiv" else DFPV
peak = [0]
def sample():  # peak resident memory of this process and its workers, sampled every 0.1 s
    me = psutil.Process()
    while True:
        try:
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in [me] + me.children(recursive=True)))
        except psutil.Error:
            pass
        time.sleep(0.1)
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
if variant == "peer":  # the kernel peer of the same design: KIV for DFIV, KPV for DFPV
    peer = (KIV if method == "dfiv" else KPV)(random_state=seed).fit(d)
    seconds = time.perf_counter() - t
    print(json.dumps(dict(method=method, variant=variant, seed=seed, fit_s=seconds, mse=d.score(peer.predict(d)),
                          member_mse=[], steps=[], peak_mb=peak[0] / 2**20, load=__import__("os").getloadavg()[0])))
    sys.exit()
cls._stack_members = variant == "stacked"  # "alone": every member trains by itself (before issue 29)
est = cls(random_state=seed, lr_schedule=schedule, n_estimators=members).fit(d.train, **d.fit_kwargs())
seconds = time.perf_counter() - t
members = est.estimators_
print(json.dumps(dict(method=method, variant=variant, seed=seed, fit_s=seconds, mse=d.score(est.predict(d.test_X)),
      member_mse=[d.score(m.predict(d.test_X)) for m in members], steps=[m.stopping_["steps"] for m in members],
      peak_mb=peak[0] / 2**20, load=__import__("os").getloadavg()[0])))
"""

# One DFIV member for a fixed number of steps (no early stopping, no bootstrap): the same work in every run.
PROBE = """
import time, warnings
warnings.simplefilter("ignore")
import torch; torch.set_num_threads(1)
from deepcausal import DFIV
from deepcausal.datasets import demand
d = demand(5000, rho=0.5, seed=0)
start, t = time.time(), time.perf_counter()
DFIV(n_estimators=1, n_epochs=60, early_stopping=False, n_bootstrap=0, random_state=0).fit(d.train, **d.fit_kwargs())
print(start, time.perf_counter() - t)
"""


def parallel_probe(rounds: int, env) -> dict:
    """Seconds of the probe fit alone and with a second copy running at the same time, and of a fresh process's
    start-up (launch to the start of the fit: interpreter, imports, data), medians over rounds."""
    def launch():
        return time.time(), subprocess.Popen([sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE, text=True)

    def seconds(procs, startups):
        outs = [(t0, p.communicate()[0], p.returncode) for t0, p in procs]
        if any(rc for _, _, rc in outs):
            raise RuntimeError("the parallel probe's fit failed")
        fits = []
        for t0, out, _ in outs:
            start, fit = map(float, out.strip().splitlines()[-1].split())
            startups.append(start - t0)
            fits.append(fit)
        return fits

    alone, paired, startups = [], [], []
    for _ in range(rounds):
        alone += seconds([launch()], startups)
        paired += seconds([launch(), launch()], [])
    import numpy as np

    return {"alone_s": float(np.median(alone)), "paired_s": float(np.median(paired)),
            "startup_s": float(np.median(startups)), "rounds": rounds}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--only", choices=["dfiv", "dfpv"])
    ap.add_argument("--lr-schedule", default="auto", choices=["auto", "constant", "annealed"])
    ap.add_argument("--probe-rounds", type=int, default=3, help="rounds of the parallel probe (0: skip it)")
    ap.add_argument("--n-estimators", type=int, default=5,
                    help="members per fit (5, the default, writes the main section; another count its own section)")
    ap.add_argument("--compare", action="store_true",
                    help="also fit each seed with every member trained alone (before issue 29) and the kernel peer "
                         "(KIV / KPV), timed in the same run")
    ap.add_argument("--no-write", action="store_true", help="print the section, do not write RESULTS.md")
    args = ap.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    probe = parallel_probe(args.probe_rounds, env) if args.probe_rounds > 0 else None
    if probe:
        print(probe, flush=True)
    rows = []
    variants = ["stacked", "alone", "peer"] if args.compare else ["stacked"]
    for method in [m for m in ("dfiv", "dfpv") if args.only in (None, m)]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for variant in variants:  # interleaved, so that the machine's drift touches every variant alike
                out = subprocess.run([sys.executable, "-c", CHILD, method, str(seed), args.lr_schedule,
                                      str(args.n_estimators), variant], env=env, capture_output=True,
                                     text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    import numpy as np

    lines = ["## Whole default fit: wall time and accuracy", "",
             f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_default_fit.py --seeds {args.seeds}"
             + (f" --only {args.only}" if args.only else "")
             + (f" --lr-schedule {args.lr_schedule}" if args.lr_schedule != "auto" else "")
             + (f" --probe-rounds {args.probe_rounds}" if args.probe_rounds != 3 else "")
             + (f" --n-estimators {args.n_estimators}" if args.n_estimators != 5 else "")
             + (" --compare" if args.compare else "") + "` (from the repository root).",
             f"Machine: {machine()}; 1-minute load average after each fit "
             f"{min(r['load'] for r in rows):.1f}–{max(r['load'] for r in rows):.1f} (2 = both cores busy).", "",
             f"Default estimators ({args.n_estimators} members, n_jobs=-1: both cores), n = 5,000, a fresh process "
             "per fit (worker "
             "start-up included). Variants: `stacked`, the default (members trained as stacks of up to three, "
             "deepcausal._stacked); `alone`, every member trained by itself (the default before issue 29); `peer`, "
             "KIV for DFIV and KPV for DFPV (deepcausal.baselines) on the same data. `vs peer` = median over seeds of "
             "(fit s / the peer's fit s of the same seed). Peak memory: resident memory of the fit's process and its "
             "workers, sampled every 0.1 s. Targets (issue 29): DFIV ≤ 15 s and ≤ 3× KIV, DFPV ≤ 20 s and ≤ 4× KPV; "
             "ensemble MSE within 10% of `alone`; peak memory ≤ 1.5× `alone`.", "",
             "| method | variant | seeds | median fit s | vs peer | median MSE (ensemble) | median MSE (single members) "
             "| steps per member (median) | peak memory MB |", "|---|---|---|---|---|---|---|---|---|"]
    peer_s = {(r["method"], r["seed"]): r["fit_s"] for r in rows if r.get("variant") == "peer"}
    for method in dict.fromkeys(r["method"] for r in rows):
        for variant in dict.fromkeys(r.get("variant", "stacked") for r in rows if r["method"] == method):
            rs = [r for r in rows if r["method"] == method and r.get("variant", "stacked") == variant]
            ratios = [r["fit_s"] / peer_s[(method, r["seed"])] for r in rs if (method, r["seed"]) in peer_s]
            members = [m for r in rs for m in r["member_mse"]]
            steps = [s for r in rs for s in r["steps"]]
            name = method.upper() if variant != "peer" else ("KIV" if method == "dfiv" else "KPV")
            lines.append(f"| {name} | {variant} | {len(rs)} | {np.median([r['fit_s'] for r in rs]):.1f} | "
                         f"{f'{np.median(ratios):.1f}×' if ratios else '–'} | "
                         f"{np.median([r['mse'] for r in rs]):.4g} | "
                         f"{f'{np.median(members):.4g}' if members else '–'} | "
                         f"{f'{np.median(steps):.0f}' if steps else '–'} | "
                         f"{np.median([r.get('peak_mb', float('nan')) for r in rs]):.0f} |")
    lines += ["", "Per seed: " + "; ".join(f"{r['method']} {r.get('variant', 'stacked')} s{r['seed']}: "
                                          f"{r['fit_s']:.1f} s, MSE {r['mse']:.4g}" for r in rows), ""]
    if probe:
        slowdown = probe["paired_s"] / probe["alone_s"]
        lines += [f"Parallel probe ({probe['rounds']} rounds; one DFIV member, 60 epochs without early stopping or "
                  f"bootstrap): {probe['alone_s']:.1f} s alone, {probe['paired_s']:.1f} s each with a second copy "
                  f"running, a slowdown of {slowdown:.2f}× (1.00 would be two independent cores), so the two cores "
                  f"do {2 / slowdown:.2f}× the work of one. With 5 members split 3 + 2, a whole fit takes about "
                  f"start-up + 3 × {slowdown:.2f} × (one member's fit alone); with the probe's start-up of a fresh "
                  f"process alone ({probe['startup_s']:.1f} s: interpreter, torch and deepcausal imports, data), 15 s "
                  f"leaves (15 − {probe['startup_s']:.1f}) / {3 * slowdown:.2f} = "
                  f"{(15 - probe['startup_s']) / (3 * slowdown):.1f} s per member.", ""]
    title = lines[0] + (f" ({args.only.upper()})" if args.only else "") + (
        f" ({args.n_estimators} members, not the default)" if args.n_estimators != 5 else "")
    if not args.no_write:
        write_section(title, "\n".join([title] + lines[1:]))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
