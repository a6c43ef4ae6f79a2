"""The progress bar (issue 34, part B): a fit that shows it works in an unguarded script under the spawn and
forkserver start methods, and its ETA counts from the members' first report.

Each test failed on the code before the fix.
"""

import multiprocessing
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from deepcausal._progress import progress_bar

ROOT = Path(__file__).resolve().parents[1]

# No `if __name__ == "__main__":` guard: a process started under spawn or forkserver that imports this
# script again (a multiprocessing manager did) runs the fit again, inside its bootstrapping phase.
SCRIPT = """
import multiprocessing
multiprocessing.set_start_method({method!r}, force=True)

from deepcausal import DFIV
from deepcausal.datasets import demand

d = demand(n=600, seed=0)
# four members: two stacks, in two worker processes that report to the bar
est = DFIV(n_epochs=2, n_estimators=4, n_jobs=2, n_bootstrap=0, verbose=True, random_state=0)
est.fit(d.train, **d.fit_kwargs())
print("fitted", est.predict(d.test_X.iloc[:3]).shape)
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_fit_with_its_bar_works_in_an_unguarded_script(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    script = tmp_path / "fit_unguarded.py"
    script.write_text(textwrap.dedent(SCRIPT.format(method=method)))
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "fitted (3,)" in run.stdout
    assert "DFIV: 100%" in run.stderr  # the bar was shown, and the workers' steps reached it


def test_the_eta_counts_from_the_first_report():
    """Workers report first after seconds of start-up (importing torch): an ETA from the start of the fit
    promised 1:36:45 for a 50 s fit."""
    with progress_bar(1000, "fit", True) as channels:
        bar, now = channels.bar, [100.0]
        bar._time, bar.start_t = (lambda: now[0]), 0.0  # the fit began 100 s ago
        channel = channels(0)

        def report(steps, n):
            channel(steps, 0.5)
            deadline = time.monotonic() + 10
            while bar.n < n and time.monotonic() < deadline:
                time.sleep(0.01)
            assert bar.n == n

        report(10, 10)
        assert "<?" in str(bar)  # one report: no ETA yet (tqdm's would be 990 / (10 / 100 s) = 2:45:00)
        now[0] = 101.0
        report(10, 20)
        # 10 steps in the second since the first report: the 980 left take 98 s
        assert bar.format_dict["rate"] == pytest.approx(10.0)
        assert "<01:38" in str(bar)
