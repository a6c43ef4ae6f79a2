"""What the held-out rule costs in wall time: the whole default DFIV fit on demand with and without it (issue 35).

The default (``complexity="auto"``) applies the held-out rule to continuous instruments: after training it solves
the line in t with its bootstrap draws and both candidates' residuals on the held-out rows, and (since the
nonlinearity step, now the shape step: "A Lepski sieve in t in place of the line", "The shape step") each
member's Lepski spline in t with its draws. Run again after the spline's instruments took CCK's ratio (a wider
instrument basis per spline: "The spline's instrument basis at CCK's ratio"), and again after the trained head it
keeps came to be re-solved on every row with its own bootstrap draws ("The trained head re-solved on every row once
chosen"; the arm without the rule also took longer that time, 23.9 s against 20.8 s before: the machine's speed
varies between runs).
``"trained"`` skips all of that. Per seed (0-2), one fresh process per fit (worker start-up included, as a user pays it), the two settings
alternated, n = 5,000 demand rows (rho 0.5), everything else default; the median over seeds. Issue 35's bound:
the default fit takes at most 1.25x the 21.7 s it took before.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/time_held_out_rule.py`` (from the repository root).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pandas as pd  # noqa: E402
from _results import machine, markdown_table, write_section  # noqa: E402

TITLE = "## The held-out rule's cost in wall time (issue 35)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/time_held_out_rule.py"
ONE_FIT = """
import json, sys, time, warnings
import torch
torch.set_num_threads(1)
warnings.simplefilter("ignore")
from deepcausal import DFIV
from deepcausal.benchmark import make_design
d = make_design("demand", n=5000, seed={seed})[0]
start = time.perf_counter()
est = DFIV(complexity="{rule}", random_state={seed}, verbose=False).fit(d.train, **d.fit_kwargs())
print(json.dumps(dict(seconds=time.perf_counter() - start, mse=d.score(est.predict(d.test_X)),
                      chosen=est.complexity_.get("label") or "trained head (no rule)")))
"""


def main():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows = []
    for seed in (0, 1, 2):
        for rule in ("trained", "auto"):
            out = subprocess.run([sys.executable, "-c", ONE_FIT.format(seed=seed, rule=rule)], env=env, check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
            rows.append(dict(seed=seed, complexity=rule, **json.loads(out)))
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    agg = df.groupby("complexity", sort=False).agg(seeds=("seed", "size"), median_seconds=("seconds", "median"),
                                                   median_mse=("mse", "median"),
                                                   chosen=("chosen", lambda c: ", ".join(map(str, c)))).reset_index()
    t = agg.set_index("complexity")["median_seconds"]
    ratio = float(t["auto"] / t["trained"])
    text = "\n".join([TITLE, "", f"Command: `{COMMAND}`", "", f"Machine: {machine()}; nothing else running.", "",
                      "See the script's docstring. Medians over seeds 0-2 of one default fit each (5 members, "
                      "both cores).", "", markdown_table(agg), "",
                      f"- With the rule the fit takes {ratio:.2f}x the time without it ({t['auto']:.1f} s against "
                      f"{t['trained']:.1f} s; the seeds' spread is of the same order); issue 35's bound is "
                      f"1.25 x 21.7 s = 27.1 s: "
                      f"{'met' if t['auto'] <= 27.1 else 'missed'}."]) + "\n"
    write_section(TITLE, text)
    print(text)


if __name__ == "__main__":
    main()
