"""Every code example in README.md runs, in the environment the README's demo command builds.

How the examples are run, and the one thing the test changes:

* Each ```python block is run **verbatim**, on its own, in a fresh Python process whose working directory
  is a temporary folder (so the files a block writes, such as ``dfiv.pt``, land there). The blocks read
  ``data/demand_iv.csv`` and ``data/demand_pcl.csv`` by relative path; that folder's ``data/`` holds the
  **first 500 rows** of the repository's CSV files instead of all 5,000. Only the amount of data
  changes, not a line of the code, so the whole file runs in well under a minute. (A block that builds
  its data in code, like the ``make_friedman1`` example, runs at the README's size.)
* ``econml`` is made unimportable in those processes unless a block mentions econml: the examples must
  work with the plain install, which does not include the ``[econml]`` extra.
* The ``deepcausal bench`` command between the ``bench-command`` markers is run with ``--n`` set to 300
  (every other argument as written), as ``python -m deepcausal.cli`` (what the ``deepcausal`` console
  script calls), also without econml.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
DATA_ROWS = 500

# Runs a file as __main__ with econml unimportable (a module set to None in sys.modules cannot be imported).
_RUNNER = """
import runpy, sys
if sys.argv[2] == "no-econml":
    sys.modules["econml"] = None
path = sys.argv[1]
sys.argv = [path] + sys.argv[3:]
if path.endswith(".py"):
    runpy.run_path(path, run_name="__main__")
else:
    runpy.run_module(path, run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with ``data/`` holding the head of each of the repository's CSV files."""
    d = tmp_path_factory.mktemp("readme")
    (d / "data").mkdir()
    for csv in (ROOT / "data").glob("*.csv"):
        pd.read_csv(csv, nrows=DATA_ROWS).to_csv(d / "data" / csv.name, index=False)
    return d


def _run(args, cwd, econml: bool, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-c", _RUNNER, args[0], "econml" if econml else "no-econml", *args[1:]]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3
    assert all("import" in b for b in BLOCKS)  # each block stands alone: it imports what it uses


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(index, workdir):
    block = BLOCKS[index]
    needs_econml = "econml" in block
    if needs_econml:
        pytest.importorskip("econml")
    script = workdir / f"readme_block{index}.py"
    script.write_text(block)
    res = _run([str(script)], workdir, econml=needs_econml)
    assert res.returncode == 0, f"README block {index} failed:\n{block}\n--- stderr ---\n{res.stderr[-3000:]}"
    assert res.stdout.strip(), f"README block {index} prints nothing when run as a script"


def test_readme_bench_command_runs_without_econml(workdir):
    lines = re.findall(r"<!-- bench-command -->\n```\n(.*?)\n```\n<!-- /bench-command -->", README, flags=re.S)
    assert len(lines) == 1, "expected one command between the bench-command markers"
    argv = shlex.split(lines[0])
    assert argv[:2] == [".venv/bin/deepcausal", "bench"] and "--n" in argv  # the venv's script, as in set-up
    argv[argv.index("--n") + 1] = "300"
    res = _run(["deepcausal.cli", *argv[1:]], workdir, econml=False)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    methods = argv[argv.index("--methods") + 1].split(",")
    seeds = argv[argv.index("--seeds") + 1].split(",")
    rows = json.loads((workdir / argv[argv.index("--json") + 1]).read_text())["results"]
    assert sorted((r["method"], str(r["seed"])) for r in rows) == sorted((m, s) for m in methods for s in seeds)
    assert (workdir / argv[argv.index("--plot") + 1]).stat().st_size > 10_000
    assert all(m in res.stdout for m in methods)


def test_readme_names_every_extra_and_what_it_installs():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name, requirements in extras.items():
        row = next((ln for ln in README.splitlines() if ln.startswith(f"| `[{name}]` |")), None)
        assert row is not None, f"the README's extras table has no row for [{name}]"
        for req in requirements:
            package = re.split(r"[<>=\[ ]", req, maxsplit=1)[0]
            if package != "deepcausal":  # [dev] names the other extras by reference
                assert package in row, (name, package)
