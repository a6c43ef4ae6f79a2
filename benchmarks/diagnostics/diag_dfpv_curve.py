"""Where DFPV's shared error on demand_proxy lies along the curve (issue 35, information; no rule is stated and no
default changes).

"Diagnosis: which term makes DFPV's error on demand_proxy" found the default ensemble's error (15.3, PMMR's 6.65) to
be one its members share: no term of the split, the ridges, the members, the training length or the head refit
lowers it by more than about a tenth. This looks at the curve itself, on the leaderboard's data (n = 5,000, seeds 0-2, one
default fit each, ``DFPV(random_state=seed, n_bootstrap=0, n_jobs=1)``):

* per test price: the truth, the ensemble's estimate, its error and the members' standard deviation there, and how
  many training prices lie within 1.1 of it;
* the integration point: DFPV predicts f(a) = ([φ_A2(a), 1] ⊗ [mean ψ_W(W), 1]) u, the mean over the stage-2 rows
  (DESIGN §4). The stage-2 head was fitted on the stage-1 predictions Ŵ; ``mean Ŵ`` integrates at their mean
  over every training row instead, to see whether a mismatch between the two sets the level;
* single members (``n_estimators=1``, seeds 0-8, on seed 0's data): how widely one member's error spreads with its
  seed (an early side-by-side with the original code scored single members with seeds 0-2 at 5-12).

The truth only scores.

Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_dfpv_curve.py`` (from the repository root; rows in
``benchmarks/diagnostics/dfpv_curve.csv``, resumable; ``--summarise-only``).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _results import append_row, diagnostic_main, machine, markdown_table  # noqa: E402

CSV = Path(__file__).resolve().parent / "dfpv_curve.csv"
TITLE = "## Diagnosis: where DFPV's error lies on demand_proxy (issue 35, information)"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/diagnostics/diag_dfpv_curve.py"
N, SEEDS, MEMBER_SEEDS = 5000, (0, 1, 2), tuple(range(9))
COLUMNS = ["part", "seed", "price", "truth", "estimate", "members_sd", "near", "mse", "mse_mean_what"]


def _fit(d, **params):
    from deepcausal import DFPV

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DFPV(n_bootstrap=0, n_jobs=1, verbose=False, **params).fit(d.train, **d.fit_kwargs())


def _mean_what(est, d) -> np.ndarray:
    """The ensemble's curve integrated at the mean of each member's stage-1 predictions Ŵ over every training row."""
    import torch

    data, _, _, _ = est._collect(d.train, {}, d.fit_kwargs())
    std = {k: torch.as_tensor(est.scalers_[k].transform(v), dtype=torch.float32) for k, v in data.items()
           if v is not None}
    a = torch.as_tensor(est.scalers_["A"].transform(d.test_X[["price"]].to_numpy()), dtype=torch.float32)
    preds = []
    for m in est.estimators_:
        with torch.no_grad():
            w_hat = m._stage1_features(m.nets_, std).double() @ m.heads_.V.double()
        G = m._features_at({"A": a}, {"w_mean": w_hat.mean(0)})
        preds.append(m._to_outcome((G @ m.heads_.u.double()).numpy().ravel()))
    return np.mean(preds, axis=0)


def run():
    from deepcausal.datasets import demand_proxy

    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=COLUMNS)
    have = set(zip(done["part"], done["seed"]))
    for seed in SEEDS:
        if ("curve", seed) in have:
            continue
        d = demand_proxy(N, seed=seed)
        est = _fit(d, random_state=seed)
        price = d.test_X["price"].to_numpy()
        est_curve = np.asarray(est.predict(d.test_X), dtype=np.float64).ravel()
        members = np.stack([np.asarray(m.predict(d.test_X), dtype=np.float64).ravel() for m in est.estimators_])
        train_price = d.train["price"].to_numpy()
        mse, mse_w = d.score(est_curve), d.score(_mean_what(est, d))
        rows_out = pd.DataFrame([dict(part="curve", seed=seed, price=price[i], truth=d.test_truth[i],
                                      estimate=est_curve[i], members_sd=members[:, i].std(),
                                      near=int(np.sum(np.abs(train_price - price[i]) < 1.1)), mse=mse,
                                      mse_mean_what=mse_w) for i in range(len(price))])
        # a seed's ten rows at once, so that an interrupted run never leaves a seed half written
        rows_out[COLUMNS].to_csv(CSV, mode="a", header=not CSV.exists(), index=False)
        print(seed, mse, mse_w, flush=True)
    d = demand_proxy(N, seed=0)
    for s in MEMBER_SEEDS:
        if ("member", s) in have:
            continue
        est = _fit(d, random_state=s, n_estimators=1)
        row = dict.fromkeys(COLUMNS, np.nan)
        row.update(part="member", seed=s, mse=d.score(np.asarray(est.predict(d.test_X)).ravel()))
        append_row(CSV, row, COLUMNS)


def summarise() -> str:
    df = pd.read_csv(CSV)
    curve = df[df["part"] == "curve"].copy()
    curve["error"] = curve["estimate"] - curve["truth"]
    by_price = curve.groupby("price").agg(truth=("truth", "first"), error_median=("error", "median"),
                                          error_min=("error", "min"), error_max=("error", "max"),
                                          members_sd=("members_sd", "median"), near=("near", "median"))
    fits = curve.groupby("seed")[["mse", "mse_mean_what"]].first()
    member = df[df["part"] == "member"].set_index("seed")["mse"]
    sq = by_price["error_median"] ** 2
    low = by_price.index[:2]  # the two lowest test prices, where the training prices are fewest
    mid = by_price[(by_price.index > 13) & (by_price.index < 24)]
    falling = sum(bool(np.all(np.diff(g.sort_values("price")["estimate"]) < 0)) for _, g in curve.groupby("seed"))
    return "\n".join([
        TITLE, "", f"Command: `{COMMAND}`", "", f"Machine: {machine()}.", "",
        f"See the script's docstring. demand_proxy, n = {N:,}; per test price, over seeds 0-2: the ensemble's error "
        "(estimate − truth; median, min, max), the members' standard deviation there (median) and the training prices "
        "within 1.1 (median).", "",
        markdown_table(by_price.reset_index()), "",
        "| seed | MSE | MSE, integrated at mean Ŵ |", "|---|---|---|",
        *[f"| {s} | {r['mse']:.3g} | {r['mse_mean_what']:.3g} |" for s, r in fits.iterrows()], "",
        f"Single members on seed 0's data, seeds {MEMBER_SEEDS[0]}-{MEMBER_SEEDS[-1]}: "
        + ", ".join(f"{v:.3g}" for v in member) + f" (median {member.median():.3g}).", "",
        f"- Most of the error is at the low end of the prices, where the data are thin: at {low[0]:.3g} and "
        f"{low[1]:.3g} (median {by_price.loc[low, 'near'].iloc[0]:.0f} and {by_price.loc[low, 'near'].iloc[1]:.0f} "
        f"training prices within 1.1, against {by_price['near'].max():.0f} at the top) the ensemble lies "
        f"{by_price.loc[low, 'error_median'].iloc[0]:.2g} and {by_price.loc[low, 'error_median'].iloc[1]:.2g} above "
        f"the truth (medians over the seeds), {sq.loc[low].sum() / sq.sum():.0%} of the squared median error. Between "
        f"14 and 24 it lies up to {-mid['error_median'].min():.2g} below ({sq.loc[mid.index].sum() / sq.sum():.0%}). "
        f"The truth rises to a peak near 16 and falls after it; the estimate falls from the lowest price on in "
        f"{falling} of {len(fits)} fits: too flat, and high where it extrapolates.",
        "- Integrating at the mean of the stage-1 predictions instead of the mean of ψ_W changes the MSE by "
        + ", ".join(f"{r['mse_mean_what'] / r['mse']:.2f}x" for _, r in fits.iterrows())
        + ": the integration point does not set the level.",
        f"- One member's error spreads widely with its seed ({member.min():.3g}-{member.max():.3g} on seed 0's data, "
        f"where the ensemble scores {fits.loc[0, 'mse']:.3g}). The side-by-side with the original code scored "
        "single members with seeds 0-2 at 5-12, on the original repository's data; on this design's data the package "
        "of 2026-11-28 (e671fe5) and today's give the same single-member fits to the digit (demand_proxy seeds 0-2, "
        "each with random_state equal to its seed: 9.34, 6.51, 12.95; checked by hand with a worktree of that commit, "
        "not by this script), at the low end of the spread above: a single member fits as it did then.",
    ]) + "\n"


if __name__ == "__main__":
    diagnostic_main(__doc__, TITLE, run, summarise)
