"""The API reference builds without a warning (Sphinx with numpydoc, autosummary and myst-nb)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")
pytest.importorskip("myst_nb")

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"), str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-4000:]
    api = (tmp_path / "generated" / "deepcausal.DFIV.html").read_text()
    assert "dose_response" in api and "set_fit_request" not in api  # the API, not sklearn's routing boilerplate
    method = (tmp_path / "method.html").read_text()
    assert "proximal" in method and "lam12" in method
    assert (tmp_path / "tutorials" / "01_demand_dose_response.html").exists()
