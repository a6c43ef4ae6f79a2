"""The code base passes ruff with the configuration in pyproject.toml ([tool.ruff]).

ruff is in the ``[dev]`` extra, which the test command installs, so a missing ruff fails here rather than
skipping: the check would otherwise go silently unrun.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["deepcausal", "tests", "benchmarks", "tutorials"]


def test_ruff_finds_nothing():
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", *PATHS], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (
        f"`{sys.executable} -m ruff check {' '.join(PATHS)}` exited with {res.returncode} (ruff is in the [dev] "
        f"extra: .venv/bin/pip install -c constraints.txt -e \".[dev]\"):\n{res.stdout}\n{res.stderr}"
    )
