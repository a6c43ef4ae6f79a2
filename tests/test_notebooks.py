"""The tutorial notebooks: they run top to bottom (small size), and the committed versions were run (full size).

The execution test runs each notebook in a fresh Jupyter kernel with ``DEEPCAUSAL_NOTEBOOK_SMALL=1`` in
the environment (the kernel inherits it), so each takes seconds; any cell error fails the test. It needs
the ``[notebooks]`` extra (nbclient, nbformat, ipykernel), which ``[dev]`` includes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
EXPECTED = [
    "01_demand_dose_response.ipynb",
    "02_dsprites_images.ipynb",
    "03_proxy_causal_learning.ipynb",
    "04_compare_with_econml.ipynb",
]
NOTEBOOKS = [TUTORIALS / name for name in EXPECTED]


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_all_tutorials_present():
    found = sorted(p.name for p in TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
    assert found == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_small(path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("DEEPCAUSAL_NOTEBOOK_SMALL", "1")  # read by each notebook's first cell
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    first = "".join(o.get("text", "") for o in _code_cells(nb)[0].outputs)
    assert "size: small" in first, "the notebook did not pick up DEEPCAUSAL_NOTEBOOK_SMALL=1"
    for cell in _code_cells(nb):
        assert all(o.output_type != "error" for o in cell.outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_was_run_at_full_size(path):
    nb = nbformat.read(path, as_version=4)
    cells = _code_cells(nb)
    assert cells, f"{path.name} has no code cells"
    counts = [c.execution_count for c in cells]
    assert all(c is not None for c in counts), f"{path.name}: some code cells were not executed"
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: not run once top to bottom ({counts})"
    first = "".join(o.get("text", "") for o in cells[0].outputs)
    assert "size: full" in first, f"{path.name}: the committed outputs are not from a full-size run"
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: error outputs {[e.get('ename') for e in errors]}"
    images = sum("image/png" in o.get("data", {}) for c in cells for o in c.outputs)
    assert images >= 1, f"{path.name}: no plots in the committed outputs"
