"""Run benchmark designs × methods × seeds under the same process conditions; one tidy DataFrame out.

>>> from deepcausal.benchmark import run
>>> df = run(["lowdim"], ["naive", "sieve2sls"], seeds=[0], n=500, progress=False)
>>> sorted(df["method"])
['naive', 'sieve2sls']
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from . import baselines
from .baselines import NotApplicableError

__all__ = ["DESIGNS", "DESIGN_REGISTRY", "DesignSpec", "all_designs", "make_design", "design_kind", "design_source", "run",
           "resolve_methods", "single_thread", "summary", "plot", "method_styles"]


@dataclass(frozen=True)
class DesignSpec:
    """One benchmark design: its kind, the source it follows, and how to draw it.

    ``make(n, rho, seed)`` returns ``(design, parameters)`` with parameters a short text such as
    ``"n=5000, rho=0.5"``.
    """

    kind: str
    source: str
    make: Callable[[int, float, int], tuple]


def _datasets():
    from . import datasets

    return datasets


_BKS = ("Bennett, Kallus & Schnabel (2019), Deep generalized method of moments for instrumental variable analysis, "
        "NeurIPS")


def _lowdim(g: str) -> DesignSpec:
    return DesignSpec("iv", _BKS, lambda n, rho, seed: (_datasets().lowdim(n, g=g, seed=seed), f"n={n}, g={g}"))


def _plain(kind: str, source: str, factory: str, **kwargs) -> DesignSpec:
    """A design drawn as ``datasets.<factory>(n, seed=seed, **kwargs)``, parameters ``"n=…"``."""

    def make(n, rho, seed):
        return getattr(_datasets(), factory)(n, seed=seed, **kwargs), f"n={n}"

    return DesignSpec(kind, source, make)


_HARTFORD = ("Hartford, Lewis, Leyton-Brown & Taddy (2017), Deep IV: a flexible approach for counterfactual "
             "prediction, ICML")
_DFIV = ("Xu, Chen, Srinivasan, de Freitas, Doucet & Gretton (2021), Learning deep features in instrumental variable "
         "regression, ICLR")
_DFPV = ("Xu, Kanagawa & Gretton (2021), Deep proxy causal learning and its application to confounded bandit policy "
         "evaluation, NeurIPS")
_CC = ("Chen & Christensen (2018), Optimal sup-norm rates and uniform inference on nonlinear functionals of "
       "nonparametric IV regression, Quantitative Economics; as run in the npiv R package "
       "(Chen, Christensen & Kankanala 2024)")
_KIV = "Singh, Sahani & Gretton (2019), Kernel instrumental variable regression, NeurIPS"
_NP = "Newey & Powell (2003), Instrumental variable estimation of nonparametric models, Econometrica"

DESIGN_REGISTRY: dict[str, DesignSpec] = {
    "demand": DesignSpec("iv", _HARTFORD,
                         lambda n, rho, seed: (_datasets().demand(n, rho=rho, seed=seed), f"n={n}, rho={rho:g}")),
    "lowdim": _lowdim("sin"),
    "lowdim_abs": _lowdim("abs"),
    "lowdim_linear": _lowdim("linear"),
    "lowdim_sin": _lowdim("sin"),
    "lowdim_step": _lowdim("step"),
    "linear_binary_iv": _plain("iv", "modelled on Card (1995), Using geographic variation in college proximity to "
                               "estimate the return to schooling", "linear_binary_iv"),
    "demand_proxy": _plain("proxy", _DFPV, "demand_proxy"),
    "dsprites": _plain("iv", _DFIV, "dsprites"),
    "dsprites_proxy": _plain("proxy", _DFPV, "dsprites_proxy"),
    "newey_powell": _plain("iv", _NP, "newey_powell"),
    "chen_christensen_mild": _plain("iv", _CC, "chen_christensen", ill_posed="mild"),
    "chen_christensen_severe": _plain("iv", _CC, "chen_christensen", ill_posed="severe"),
    "horowitz": _plain("iv", "Horowitz (2011), Applied nonparametric instrumental variables estimation, Econometrica "
                       "(reconstructed, not verified)", "horowitz"),
    "kiv_linear": _plain("iv", _KIV, "kiv_linear"),
    "kiv_sigmoid": _plain("iv", _KIV, "kiv_sigmoid"),
    "weak_iv": _plain("iv", _NP + "; weak first stage (F about 15 at n = 5,000)", "weak_iv"),
    "demand_highdim": DesignSpec("iv", _HARTFORD + "; plus 50 covariates, 5 of them observed confounders",
                                 lambda n, rho, seed: (_datasets().demand_highdim(n, rho=rho, seed=seed),
                                                       f"n={n}, rho={rho:g}")),
    "mastouri_proxy": _plain("proxy", "Mastouri, Zhu, Gultchin, Korba, Silva, Kusner, Gretton & Muandet (2021), "
                             "Proximal causal learning with kernels: two-stage estimation and moment restriction, ICML",
                             "mastouri_proxy"),
    "miao_proxy": _plain("proxy", "Miao, Geng & Tchetgen Tchetgen (2018), Identifying causal effects with proxy "
                         "variables of an unmeasured confounder, Biometrika (a design in their setting)", "miao_proxy"),
}
"""Design name → :class:`DesignSpec` (kind, source citation, generator)."""

DESIGNS = tuple(DESIGN_REGISTRY)
"""Design names :func:`make_design` knows (``lowdim`` is ``lowdim_sin``)."""


def all_designs() -> list:
    """Every design once: the names of :data:`DESIGNS` without the alias ``lowdim`` (``lowdim_sin``)."""
    return [d for d in DESIGNS if d != "lowdim"]

COLUMNS = ["design", "parameters", "method", "seed", "mse", "fit_seconds", "peak_rss_mb", "error"]


def _lookup_design(name: str) -> DesignSpec:
    try:
        return DESIGN_REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown design {name!r}; known designs: {', '.join(DESIGNS)}") from None


def make_design(name: str, *, n: int = 5000, rho: float = 0.5, seed: int = 0):
    """The benchmark design ``name`` drawn with ``n`` rows and ``seed`` (``rho`` for ``demand`` and
    ``demand_highdim`` only).

    Returns (design, parameters) with parameters a short text such as ``"n=5000, rho=0.5"``.
    """
    return _lookup_design(name).make(n, rho, seed)


def design_kind(name: str) -> str:
    """"iv" or "proxy" for a design name (without drawing data)."""
    return _lookup_design(name).kind


def design_source(name: str) -> str:
    """The citation a design follows (without drawing data)."""
    return _lookup_design(name).source


def resolve_methods(design_names: Iterable[str], methods) -> dict:
    """design name → list of method names, checked before any fit.

    ``methods`` is a list of names or ``"all"`` (every installed method applicable to each design).
    Raises ValueError for an unknown design or method, or a method that does not apply to a design;
    ImportError (one line naming what to install) for a method whose dependencies are missing.
    """
    out = {}
    for dname in design_names:
        kind = design_kind(dname)
        probe, _ = make_design(dname, n=50, seed=0) if not dname.startswith("dsprites") else (None, None)
        if methods == "all" or methods == ["all"]:
            out[dname] = baselines.available(kind, design=probe) if probe is not None else baselines.available(kind)
            if probe is None:
                out[dname] = [m for m in out[dname] if not baselines.REGISTRY[m].tabular_only]
            continue
        chosen = []
        for m in methods:
            cls = baselines._lookup(m)  # unknown name → ValueError listing the known ones
            if probe is not None:
                cls.check_applicable(probe)
            elif kind not in cls.kinds:
                raise NotApplicableError(f"method {m!r} applies to {'/'.join(sorted(cls.kinds))} designs, "
                                         f"but {dname!r} is {'an IV' if kind == 'iv' else 'a proxy'} design")
            elif cls.tabular_only:
                raise NotApplicableError(f"method {m!r} needs tabular data; {dname!r} has an image treatment")
            missing = baselines.dependency_error(m)
            if missing is not None:
                raise ImportError(missing)
            chosen.append(m)
        out[dname] = chosen
    return out


def single_thread() -> None:
    """One thread for torch, OpenMP and BLAS (2-core machines slow down badly when oversubscribed).

    Sets OMP/MKL/OPENBLAS_NUM_THREADS (effective for libraries loaded later), torch's intra-op
    threads, and, when ``threadpoolctl`` is installed, limits the already-loaded BLAS/OpenMP pools.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return -1


class _PeakRSS:
    """Peak resident set size above the level at entry, sampled every ``interval`` s (Linux /proc)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval

    def __enter__(self):
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def megabytes(self) -> float:
        return float("nan") if self.start < 0 else (self.peak - self.start) / 2**20


def run(
    designs,
    methods,
    seeds=(0,),
    *,
    n: int = 5000,
    rho: float = 0.5,
    progress: bool = True,
    on_result: Callable[[dict, np.ndarray, object], None] | None = None,
    on_fitted: Callable[[dict, object], None] | None = None,
) -> pd.DataFrame:
    """Fit every method on every design for every seed; score the structural function.

    For each (design, seed) the data are drawn once (``make_design(design, n=n, rho=rho, seed=seed)``)
    and every method is fitted on that same data with ``random_state=seed``, in this process, with
    one thread for torch and OpenMP/BLAS (:func:`single_thread`). Methods and designs are all
    checked before the first fit.

    Parameters
    ----------
    designs : str or list of str
        Design names (see :data:`DESIGNS`).
    methods : list of str or "all"
        Method names (see ``deepcausal.baselines.REGISTRY``); ``"all"`` = every installed method
        that applies to each design.
    seeds : iterable of int
    n : int, default=5000
        Training rows.
    rho : float, default=0.5
        Confounding strength of ``demand``.
    progress : bool, default=True
        A tqdm bar advancing once per fit (the method, seed and last MSE shown beside it).
    on_result : callable, optional
        Called after each fit as ``on_result(row, prediction, design)``: the row's dict (the
        columns below), the predictions at ``design.test_X``, and the design. Use it to save results
        as they come (the CLI rewrites its JSON/markdown there).
    on_fitted : callable, optional
        Called after each fit as ``on_fitted(row, method)`` with the fitted method (a
        ``deepcausal.baselines`` object; ours hold their estimator in ``estimator_``), e.g. to save it.

    Returns
    -------
    DataFrame
        One row per (design, method, seed): ``design``, ``parameters`` (text), ``method``, ``seed``,
        ``mse`` (structural MSE at the design's test points; NaN when the method failed, with the
        exception in ``error``), ``fit_seconds`` (wall time of fit and predict), ``peak_rss_mb`` (peak resident set size of the process during the fit *above its
        level at the start of the fit*, sampled every 20 ms from /proc/self/statm; NaN where /proc is
        missing — it covers numpy, torch and econml allocations alike, but misses spikes shorter
        than the sampling interval).
    """
    from tqdm.auto import tqdm

    single_thread()
    designs = [designs] if isinstance(designs, str) else list(designs)
    plan = resolve_methods(designs, methods)
    seeds = [int(s) for s in seeds]
    total = sum(len(m) for m in plan.values()) * len(seeds)
    rows = []
    bar = tqdm(total=total, disable=not progress, desc="fits", unit="fit")
    try:
        for dname in designs:
            for seed in seeds:
                design, params = make_design(dname, n=n, rho=rho, seed=seed)
                for mname in plan[dname]:
                    bar.set_postfix_str(f"{dname} {mname} seed={seed}")
                    est = baselines.get(mname, random_state=seed)
                    error = ""
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        with _PeakRSS() as mem:
                            start = time.perf_counter()
                            try:
                                pred = est.fit(design).predict(design)
                            except ImportError:  # a broken installation is the caller's to report
                                raise
                            except Exception as exc:  # one method failing on one design stops nothing else
                                pred, error = np.full(design.n_test, np.nan), f"{type(exc).__name__}: {exc}"[:300]
                            seconds = time.perf_counter() - start
                    row = {"design": dname, "parameters": params, "method": mname, "seed": seed,
                           "mse": design.score(pred) if not error else float("nan"), "fit_seconds": seconds,
                           "peak_rss_mb": mem.megabytes, "error": error}
                    rows.append(row)
                    bar.update(1)
                    bar.set_postfix_str(f"{dname} {mname} seed={seed} mse={row['mse']:.4g}")
                    if on_result is not None:
                        on_result(row, pred, design)
                    if on_fitted is not None:
                        on_fitted(row, est)
    finally:
        bar.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (design, method): mean and standard deviation of the MSE, median fit seconds, peak memory.

    ``mse_std`` (over seeds, ddof=1) is left out when no method was run with more than one seed: one
    fit has no spread to show. In a mixed table a one-seed row's ``mse_std`` is NaN.
    """
    g = df.groupby(["design", "method"], sort=False)
    out = pd.DataFrame({
        "mse_mean": g["mse"].mean(), "mse_std": g["mse"].std(ddof=1), "mse_median": g["mse"].median(),
        "fit_seconds": g["fit_seconds"].median(), "peak_rss_mb": g["peak_rss_mb"].max(), "seeds": g["seed"].count(),
    }).reset_index()
    if (out["seeds"] < 2).all():
        out = out.drop(columns="mse_std")
    return out.sort_values(["design", "mse_mean"], kind="stable").reset_index(drop=True)


# Okabe & Ito's colour-blind-safe palette without its black (the truth is drawn in black), the colours
# that stand apart most first. Past seven methods the colours repeat with another line style.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
_LINESTYLES = ("-", "--", ":", "-.")


def method_styles(methods) -> dict:
    """Method name → matplotlib style (``color``, ``linestyle``), one per method, in the given order.

    Colours come from the Okabe–Ito palette; the eighth method onwards reuses them with dashed, then
    dotted, lines. :func:`plot` draws every panel with the same mapping, so a method keeps its colour.
    """
    names = list(dict.fromkeys(methods))
    return {m: {"color": OKABE_ITO[i % len(OKABE_ITO)],
                "linestyle": _LINESTYLES[(i // len(OKABE_ITO)) % len(_LINESTYLES)]}
            for i, m in enumerate(names)}


def plot(df: pd.DataFrame, predictions: dict, designs: dict, path):
    """Save a figure: per design, estimates against the truth, and an MSE strip/box plot per method.

    Parameters
    ----------
    df : DataFrame from :func:`run`.
    predictions : dict (design name, method, seed) → prediction at ``design.test_X``.
    designs : dict (design name, seed) → Design.
    path : where to save (PNG).

    Returns
    -------
    matplotlib.figure.Figure
        The saved figure (already closed in pyplot).

    For ``demand`` the dose-response panel is h(p, t, s) against p at the test grid's t nearest 5 and
    s = 4; for one-dimensional treatments it is the estimate against the treatment; for image designs a
    predicted-vs-true scatter. Curves are from the first seed. Each method has one colour in every panel
    (:func:`method_styles`, colour-blind-safe).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(df["design"]))
    styles = method_styles(df["method"])
    fig, axes = plt.subplots(len(names), 2, figsize=(12, 4.2 * len(names)), squeeze=False)
    for row, dname in enumerate(names):
        sub = df[df["design"] == dname]
        methods = list(dict.fromkeys(sub["method"]))
        seed0 = int(sub["seed"].min())
        design = designs[(dname, seed0)]
        ax = axes[row, 0]
        if design.is_image:
            for m in methods:
                p = predictions.get((dname, m, seed0))
                if p is not None:
                    ax.scatter(design.test_truth, p, s=6, alpha=0.5, label=m, color=styles[m]["color"])
            lim = [design.test_truth.min(), design.test_truth.max()]
            ax.plot(lim, lim, "k--", lw=1)
            ax.set_xlabel("true f")
            ax.set_ylabel("estimate")
        else:
            tx = design.test_X
            tcol = design.roles["treatment"][0]
            mask = np.ones(len(tx), dtype=bool)
            title = ""
            if dname == "demand":
                times = np.unique(tx["time"])
                t_fix = times[np.argmin(np.abs(times - 5.0))]
                mask = np.isclose(tx["time"], t_fix) & np.isclose(tx["customer_type"], 4.0)
                title = f" (time={t_fix:.2f}, customer_type=4)"
            elif design.roles["covariates"]:
                # One curve when the covariates are fixed over the test set (linear_binary_iv); else none.
                fixed = all(tx[c].nunique() == 1 for c in design.roles["covariates"])
                mask = np.full(len(tx), fixed)
            order = np.argsort(tx[tcol].to_numpy()[mask])
            xs = tx[tcol].to_numpy()[mask][order]
            ax.plot(xs, design.test_truth[mask][order], "k-", lw=2.5, label="truth")
            for m in methods:
                p = predictions.get((dname, m, seed0))
                if p is not None:
                    ax.plot(xs, np.asarray(p)[mask][order], lw=1.5, label=m, **styles[m])
            ax.set_xlabel(tcol)
            ax.set_ylabel("structural function")
            ax.set_title(f"{dname}: estimates vs truth, seed {seed0}{title}")
        ax.legend(fontsize=7, ncol=2)
        ax = axes[row, 1]
        data = [sub.loc[sub["method"] == m, "mse"].to_numpy() for m in methods]
        boxes = ax.boxplot(data, showfliers=False)
        for i, (m, d) in enumerate(zip(methods, data)):
            colour = styles[m]["color"]
            for part in ("boxes", "medians"):
                boxes[part][i].set_color(colour)
            for part in ("whiskers", "caps"):
                for artist in boxes[part][2 * i : 2 * i + 2]:
                    artist.set_color(colour)
            ax.scatter(np.full(len(d), i + 1) + np.linspace(-0.08, 0.08, len(d)), d, s=14, zorder=3,
                       color=colour, label=m)
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=35, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("structural MSE (log)")
        k = sub["seed"].nunique()
        ax.set_title(f"{dname}: MSE per method ({sub['parameters'].iloc[0]}, {k} seed{'s' if k > 1 else ''})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig
