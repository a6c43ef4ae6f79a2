"""The tutorials: percent-format sources run top to bottom (small size), and the committed notebooks are
those sources, executed at full size.

Each ``tutorials/NN_*.py`` (jupytext percent format) is the source of ``tutorials/NN_*.ipynb``, which
``tutorials/build.py`` generates and executes. The execution test reads each source with jupytext and runs
it in a fresh Jupyter kernel with ``DEEPCAUSAL_NOTEBOOK_SMALL=1`` in the environment (the kernel inherits
it), so each takes seconds; any cell error fails the test. They need the ``[notebooks]`` extra
(jupytext, nbclient, nbformat, ipykernel), which ``[dev]`` includes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
EXPECTED = [
    "01_demand_dose_response",
    "02_dsprites_images",
    "03_proxy_causal_learning",
    "04_compare_with_econml",
    "05_returns_to_schooling",
]
SOURCES = [TUTORIALS / f"{name}.py" for name in EXPECTED]


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_every_notebook_has_its_percent_source():
    assert sorted(p.stem for p in TUTORIALS.glob("[0-9][0-9]_*.py")) == EXPECTED
    assert sorted(p.stem for p in TUTORIALS.glob("[0-9][0-9]_*.ipynb")) == EXPECTED
    for source in SOURCES:
        assert "# %%" in source.read_text(), f"{source.name} is not in jupytext's percent format"


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_committed_notebook_matches_its_source(source):
    """Same cells, in the same order, with the same text: the .ipynb was generated from this .py."""
    expected = [(c.cell_type, c.source) for c in jupytext.read(source).cells]
    committed = [(c.cell_type, c.source) for c in nbformat.read(source.with_suffix(".ipynb"), as_version=4).cells]
    assert committed == expected, (
        f"{source.with_suffix('.ipynb').name} differs from {source.name}: regenerate it with "
        f"python tutorials/build.py {source.name[:2]}"
    )


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_runs_small(source, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("DEEPCAUSAL_NOTEBOOK_SMALL", "1")  # read by each notebook's first cell
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # the kernel imports this checkout's deepcausal, whatever else is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TUTORIALS.parent), os.getenv("PYTHONPATH")])))
    nb = jupytext.read(source)
    nb.cells.append(nbformat.v4.new_code_cell("import deepcausal; print(deepcausal.__file__)"))
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    where = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert where.startswith(str(TUTORIALS.parent / "deepcausal")), f"the kernel imported {where}"
    first = "".join(o.get("text", "") for o in _code_cells(nb)[0].outputs)
    assert "size: small" in first, "the notebook did not pick up DEEPCAUSAL_NOTEBOOK_SMALL=1"
    for cell in _code_cells(nb):
        assert all(o.output_type != "error" for o in cell.outputs)


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_committed_notebook_was_run_at_full_size(source):
    path = source.with_suffix(".ipynb")
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
