# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4 · DFIV next to econml's IV estimators
#
# [econml](https://econml.azurewebsites.net/) is the standard Python library for heterogeneous treatment
# effects, with several instrumental-variable estimators. This notebook runs them and DFIV on the same
# data, with `deepcausal.benchmark.run`: for each design and seed the data are drawn once, every method
# is fitted on the same rows (one thread each) and scored by the **structural MSE** at the design's test
# points (the true h is known).
#
# econml estimates *effects* τ(x; t₀, t₁) = h(t₁, x) − h(t₀, x). The adapters in
# `deepcausal.baselines` give each a spline featurization of the treatment (so the effect can be
# nonlinear in t), gradient-boosting nuisance models, and complete τ into a structural function
# ĥ(t, x) = ĝ(x) + τ̂(x; t₀, t) (see the docstring of `deepcausal/baselines/_econml.py`). The methods:
#
# | name | estimator |
# |---|---|
# | `dfiv` | `deepcausal.DFIV`, default settings |
# | `dmliv` | econml `DMLIV` (double ML IV), θ(x) linear in quadratic features of x |
# | `orthoiv` | econml `OrthoIV` |
# | `nonparam_dmliv` | econml `NonParamDMLIV` (needs covariates) |
# | `driv` | econml `LinearDRIV` (one instrument only) |
# | `forest_driv` | econml `ForestDRIV` (needs covariates, one instrument) |
# | `sieve_tsls` | econml `SieveTSLS`, polynomial sieve 2SLS |
# | `naive` | gradient boosting of y on (t, x), instruments ignored |
#
# Two designs: **demand** (price with covariates time and customer type, one instrument) and **lowdim**
# (y = sin t + e with strong confounding, no covariates, two instruments).

# %%
# Size switch: the tests set DEEPCAUSAL_NOTEBOOK_SMALL=1 to run this notebook in seconds on tiny data.
import os
SMALL = os.environ.get("DEEPCAUSAL_NOTEBOOK_SMALL") == "1"
print("size:", "small (smoke test)" if SMALL else "full")

import warnings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notice when ipywidgets is absent

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

torch.set_num_threads(1)

from deepcausal import benchmark

# %matplotlib inline
plt.rcParams["figure.dpi"] = 90

N_DEMAND = 500 if SMALL else 5000
N_LOWDIM = 500 if SMALL else 2000
SEEDS = [0] if SMALL else [0, 1]
DEMAND_METHODS = ["dfiv", "dmliv", "orthoiv", "nonparam_dmliv", "driv", "forest_driv", "sieve_tsls", "naive"]
LOWDIM_METHODS = ["dfiv", "dmliv", "orthoiv", "sieve_tsls", "naive"]   # no covariates, two instruments

# %% [markdown]
# ## 1. Run the benchmark
#
# `on_result` receives every fit's predictions, which we keep for the plots.

# %%
predictions, designs = {}, {}


def keep(row, pred, design):
    predictions[(row["design"], row["method"], row["seed"])] = pred
    designs[(row["design"], row["seed"])] = design


results = pd.concat([
    benchmark.run("demand", DEMAND_METHODS, seeds=SEEDS, n=N_DEMAND, progress=False, on_result=keep),
    benchmark.run("lowdim", LOWDIM_METHODS, seeds=SEEDS, n=N_LOWDIM, progress=False, on_result=keep),
], ignore_index=True)
print(f"{len(results)} fits, {results['fit_seconds'].sum():.0f} s in total")
results.round(3)

# %% [markdown]
# ## 2. Summary table
#
# Mean and spread of the structural MSE over the seeds, median fit time and peak extra memory. For
# scale, a constant prediction at the mean of the truth would score the variance of the truth:

# %%
for name in ("demand", "lowdim"):
    print(f"{name}: variance of the true structural function at the test points = {designs[(name, SEEDS[0])].test_truth.var():.3g}")
summary = benchmark.summary(results)
summary.round(3)


# %% [markdown]
# ## 3. Plots
#
# Left: the estimated curves of the first seed against the truth (demand: h(p, t, s) along the price at
# time ≈ 5 and customer type 4; lowdim: h(t)). Right: the structural MSE of every fit, on a log scale.

# %%
def curve_panel(ax, name, methods, seed=SEEDS[0]):
    design = designs[(name, seed)]
    tx = design.test_X
    if name == "demand":
        times = np.unique(tx["time"])
        t_mid = times[np.argmin(np.abs(times - 5.0))]
        mask = np.isclose(tx["time"], t_mid) & np.isclose(tx["customer_type"], 4.0)
        x = tx["price"].to_numpy()[mask]
        title = f"demand: h(p, time={t_mid:.2f}, customer_type=4)"
        xlabel = "price"
    else:
        mask = np.ones(len(tx), dtype=bool)
        x = tx["t"].to_numpy()
        title, xlabel = "lowdim: h(t) = sin t", "t"
    order = np.argsort(x)
    ax.plot(x[order], design.test_truth[mask][order], "k-", lw=3.5, label="truth")
    for m in methods:
        ax.plot(x[order], predictions[(name, m, seed)][mask][order], lw=1.4,
                ls="-" if m == "dfiv" else "--", label=m)
    ax.set(xlabel=xlabel, ylabel="structural function", title=title)
    ax.legend(fontsize=7, ncol=2)


def mse_panel(ax, name):
    sub = results[results["design"] == name]
    order = sub.groupby("method")["mse"].mean().sort_values().index
    for i, m in enumerate(order):
        vals = sub.loc[sub["method"] == m, "mse"]
        ax.scatter(np.full(len(vals), i), vals, s=30, color="tab:blue" if m == "dfiv" else "tab:grey")
    ax.set_xticks(range(len(order)), order, rotation=35, ha="right")
    ax.set(yscale="log", ylabel="structural MSE (log)", title=f"{name}: MSE per fit ({len(SEEDS)} seed(s))")


fig, axes = plt.subplots(2, 2, figsize=(14, 9))
curve_panel(axes[0, 0], "demand", DEMAND_METHODS)
mse_panel(axes[0, 1], "demand")
curve_panel(axes[1, 0], "lowdim", LOWDIM_METHODS)
axes[1, 0].set_ylim(-3, 3)
mse_panel(axes[1, 1], "lowdim")
fig.tight_layout()

# %%
fig, ax = plt.subplots(figsize=(9, 3.8))
pivot = summary.pivot(index="method", columns="design", values="fit_seconds")
pivot.sort_values("demand").plot.bar(ax=ax, rot=30)
ax.set(ylabel="median fit + predict seconds", yscale="log", title="cost of each method (one thread)");

# %% [markdown]
# ## 4. Where each method wins
#
# These remarks are about the numbers printed above (two seeds each, every method with its default
# settings; re-running on another machine or with other seeds moves them somewhat).
#
# **Demand** (n = 5,000; a constant prediction would score about 32,600).
#
# * `dfiv` (mean MSE ≈ 35: 30 and 39 on the two seeds) is the best by a wide margin, about a third of the
#   error of the next best, `nonparam_dmliv` (≈ 107: 96 and 119).
# * The naive regression (≈ 192) beats most IV estimators. The confounding shock in this design is small
#   next to the variation of sales with season and customer type, so removing its bias gains little, while
#   IV estimation costs variance. An IV method has to be flexible *and* stable to beat it.
# * `orthoiv` (≈ 290), `dmliv` (≈ 345) and `driv` (≈ 575) model the effect as θ(x)ᵀφ(t) with θ linear in
#   quadratic features of (time, customer type). The truth contains s·ψ(t), a quartic-plus-bump curve in
#   time: the final stage cannot represent it, and the curves in the top-left panel are off by tens of
#   units at low prices. That is a limit of the chosen basis, not of the IV approach.
# * `forest_driv` (≈ 5,800) and `sieve_tsls` (≈ 38,800, worse than a constant) fail on this design with
#   these settings; they were not tuned per design.
# * Cost: the econml fits take 1–9 s, the naive regression 0.2 s, DFIV about 50 s: its default is an
#   ensemble of 5 fits, here run in two worker processes (`n_jobs=-1` on this 2-core machine) of one
#   thread each.
#
# **lowdim** (n = 2,000, strong confounding; a constant would score about 0.52).
#
# * `dfiv` has the lowest error on both seeds (0.042 and 0.020). `dmliv` follows (≈ 0.11); `orthoiv`
#   matches DFIV on seed 0 (0.047) but not on seed 1 (0.28), so it is the least stable.
# * Here the confounding dominates and the naive regression is worst (≈ 0.35), as in notebook 1;
#   `sieve_tsls` is barely better (≈ 0.33).
# * Everyone extrapolates in the sparse tails (|t| > 4), where the spline and polynomial fits bend away
#   fastest.
#
# **When to use which.**
#
# * **DFIV** learns the treatment and covariate features itself, so it wins when h is nonlinear in the
#   treatment and interacts with the covariates in ways a fixed basis misses, and it is the only option
#   here for high-dimensional treatments such as images (notebook 2; the econml adapters are
#   tabular-only). It is the slowest on small tabular data (its default is an ensemble of 5 fits). Its
#   bands (`dose_response(..., alpha=0.05)`, `effect_interval`, `marginal_ate_interval`; tutorial 05) cover
#   sampling noise and the spread of the ensemble, not the bias of its regularisation.
# * **econml** estimators are fast, well documented, and come with confidence intervals for effects
#   (`effect_interval`) under their own model assumptions. When the effect's form matches their final stage, or
#   with a well-chosen featurizer, `nonparam_dmliv` or `dmliv` are strong, cheap choices; their accuracy
#   depends a lot on that featurization.
# * Always run the **naive regression** as a reference: if an IV estimate is not clearly better than it
#   on a design with a known truth, confounding may be weak relative to the estimator's variance.
