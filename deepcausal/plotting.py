"""Figures: a dose-response curve with its confidence band and, when known, the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plot_dose_response"]


def plot_dose_response(curve, truth=None, ax=None, *, label=None, color=None):
    """Plot an estimated dose-response curve, its band when it has one, and optionally the truth.

    Parameters
    ----------
    curve : DataFrame
        As returned by ``dose_response``: the first column holds the treatment values (named after the
        treatment), then ``estimate``; optional ``lower`` and ``upper`` (a band, drawn shaded) and
        ``std_error`` (not drawn: the band already says what it covers). Rows need not be sorted. The
        frame's ``attrs`` (set by ``dose_response``) name the outcome, for the y label, and the band's
        confidence level and kind, for its legend entry.
    truth : array-like of shape (len(curve),) or callable, optional
        The true structural function at the curve's treatment values, in the curve's row order, or a
        function of those values (an array of them) returning it. Drawn as a dashed black line.
    ax : matplotlib Axes, optional
        Where to draw; the current Axes (``plt.gca()``) by default.
    label : str, optional
        Legend label of the estimate (default ``"estimate"``); the band is labelled after it.
    color : matplotlib color, optional
        Colour of the estimate and its band (default: the Axes' next colour), so several curves can share
        one Axes.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    Raises
    ------
    ValueError
        If ``curve`` is not a DataFrame with a treatment column and ``estimate``, has only one of
        ``lower``/``upper``, or ``truth`` does not give one value per row.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, pandas as pd
    >>> from deepcausal import plot_dose_response
    >>> t = np.linspace(0, 1, 20)
    >>> curve = pd.DataFrame({"price": t, "estimate": 2 * t, "lower": 2 * t - 0.3, "upper": 2 * t + 0.3})
    >>> ax = plot_dose_response(curve, truth=lambda p: 2 * p, label="DFIV")
    >>> ax.get_xlabel()
    'price'
    """
    import matplotlib.pyplot as plt

    if not isinstance(curve, pd.DataFrame):
        raise ValueError(f"curve must be a DataFrame as returned by dose_response, got {type(curve).__name__}")
    if "estimate" not in curve.columns:
        raise ValueError(f"curve has no 'estimate' column (columns: {list(curve.columns)}); pass the DataFrame "
                         "that dose_response returns")
    if curve.columns[0] in ("estimate", "lower", "upper", "std_error") or len(curve) == 0:
        raise ValueError("curve must start with the treatment column and have at least one row")
    has_lower, has_upper = "lower" in curve.columns, "upper" in curve.columns
    if has_lower != has_upper:
        raise ValueError(f"curve has {'lower' if has_lower else 'upper'} but not "
                         f"{'upper' if has_lower else 'lower'}: a band needs both")

    name = str(curve.columns[0])
    x = curve.iloc[:, 0].to_numpy(dtype=np.float64)
    order = np.argsort(x, kind="stable")
    xs = x[order]

    truth_values = None
    if truth is not None:
        truth_values = np.asarray(truth(x) if callable(truth) else truth, dtype=np.float64).ravel()
        if truth_values.shape[0] != len(curve):
            raise ValueError(f"truth has {truth_values.shape[0]} values but curve has {len(curve)} rows")

    if ax is None:
        ax = plt.gca()
    label = "estimate" if label is None else str(label)
    (line,) = ax.plot(xs, curve["estimate"].to_numpy(dtype=np.float64)[order], color=color, lw=2, label=label)
    if has_lower:
        # dose_response records the band's confidence level and kind in the frame's attrs
        level, kind = curve.attrs.get("confidence"), curve.attrs.get("band")
        band = (f"{level:.0%} {kind} band" if level is not None and kind else "band")
        ax.fill_between(xs, curve["lower"].to_numpy(dtype=np.float64)[order],
                        curve["upper"].to_numpy(dtype=np.float64)[order], color=line.get_color(), alpha=0.25,
                        lw=0, label=f"{label}: {band}")
    if truth_values is not None:
        ax.plot(xs, truth_values[order], color="black", ls="--", lw=1.5, label="truth")
    if not ax.get_xlabel():
        ax.set_xlabel(name)
    if not ax.get_ylabel():
        outcome = curve.attrs.get("outcome")
        ax.set_ylabel(f"{outcome}: dose-response" if outcome else "structural function")
    ax.legend()
    return ax
