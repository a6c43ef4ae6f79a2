"""deepcausal.plot_dose_response on the Agg backend."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from deepcausal import plot_dose_response  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _curve(band=True, n=15):
    t = np.linspace(10, 25, n)[::-1]  # unsorted on purpose: the plot sorts
    frame = pd.DataFrame({"price": t, "estimate": 0.5 * t})
    if band:
        frame["std_error"] = 0.2
        frame["lower"] = frame["estimate"] - 0.4
        frame["upper"] = frame["estimate"] + 0.4
    return frame


def _bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_band_estimate_and_truth_are_drawn():
    _, ax = plt.subplots()
    curve = _curve()
    out = plot_dose_response(curve, truth=0.5 * curve["price"].to_numpy() + 1.0, ax=ax, label="DFIV")
    assert out is ax and isinstance(out, Axes)
    assert len(_bands(ax)) == 1
    est_line, truth_line = ax.get_lines()
    xs, ys = est_line.get_data()
    assert np.all(np.diff(xs) > 0) and np.allclose(ys, 0.5 * xs)
    # The band spans lower..upper: its vertices reach estimate ± 0.4.
    verts = _bands(ax)[0].get_paths()[0].vertices
    assert verts[:, 1].min() == pytest.approx(0.5 * 10 - 0.4) and verts[:, 1].max() == pytest.approx(0.5 * 25 + 0.4)
    tx, ty = truth_line.get_data()
    assert np.allclose(ty, 0.5 * tx + 1.0)  # truth reordered with the grid
    assert ax.get_xlabel() == "price"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["DFIV", "DFIV: band", "truth"]
    assert _bands(ax)[0].get_facecolor()[0][:3] == pytest.approx(matplotlib.colors.to_rgb(est_line.get_color()))


def test_no_band_without_lower_upper_and_callable_truth_and_current_axes():
    plt.figure()
    ax = plot_dose_response(_curve(band=False), truth=lambda p: 0.5 * p, color="tab:red")
    assert ax is plt.gca()
    assert _bands(ax) == [] and len(ax.get_lines()) == 2
    assert matplotlib.colors.to_rgb(ax.get_lines()[0].get_color()) == matplotlib.colors.to_rgb("tab:red")


def test_two_curves_share_an_axes():
    _, ax = plt.subplots()
    plot_dose_response(_curve(), ax=ax, label="a")
    plot_dose_response(_curve(), ax=ax, label="b")
    assert len(_bands(ax)) == 2 and ax.get_lines()[0].get_color() != ax.get_lines()[1].get_color()


def test_bad_curves_are_refused():
    with pytest.raises(ValueError, match="no 'estimate' column"):
        plot_dose_response(pd.DataFrame({"price": [1.0, 2.0], "value": [0.0, 1.0]}))
    with pytest.raises(ValueError, match="DataFrame"):
        plot_dose_response(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="lower but not upper"):
        plot_dose_response(_curve(band=False).assign(lower=0.0))
    with pytest.raises(ValueError, match="truth has 3 values but curve has 15 rows"):
        plot_dose_response(_curve(), truth=[1.0, 2.0, 3.0])
