"""What the issue-35 diagnostics of DFIV on continuous instruments share: their designs, the candidates' MSE of a
fitted ensemble, its data in standardised units, and the closed-form solves they re-read heads with."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from deepcausal import datasets
from deepcausal.benchmark import make_design

# The public IV designs with continuous instruments, and our own four of the held-out kinds (deepcausal.datasets).
PUBLIC = ["demand", "lowdim_abs", "lowdim_linear", "lowdim_sin", "lowdim_step", "newey_powell",
          "chen_christensen_mild", "chen_christensen_severe", "horowitz", "kiv_linear", "kiv_sigmoid", "weak_iv",
          "demand_highdim"]
OWN = ["smooth_two_instruments", "survey_covariates", "linear_many_covariates", "kink_covariates"]


def design(name: str, seed: int, n_public: int = 5000, n_own: int = 3000):
    """Our own designs at ``n_own`` rows, the public ones at ``n_public`` (as on the leaderboard)."""
    if name in OWN:
        return getattr(datasets, name)(n_own, seed=seed)
    return make_design(name, n=n_public, seed=seed)[0]


def fits(csv: Path, pairs, **params):
    """One ``DFIV(random_state=seed, **params)`` fit (the default without ``params``; warnings silenced) for each
    (design, seed) of ``pairs`` that the resumable ``csv`` has no row for: yields (name, seed, the design, the
    fitted estimator, its fit seconds)."""
    from deepcausal import DFIV

    done = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=["design", "seed"])
    have = set(zip(done["design"], done["seed"]))
    for name, seed in pairs:
        if (name, seed) in have:
            continue
        d = design(name, seed)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = DFIV(random_state=seed, verbose=False, **params).fit(d.train, **d.fit_kwargs())
        yield name, seed, d, est, time.perf_counter() - t0


def fit_default(d, seed: int, **params) -> tuple:
    """``DFIV(random_state=seed, n_jobs=1, **params)`` fitted on ``d`` (warnings silenced): ``(est, mse, seconds)``."""
    from deepcausal import DFIV

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DFIV(random_state=seed, n_jobs=1, verbose=False, **params).fit(d.train, **d.fit_kwargs())
        mse = d.score(est.predict(d.test_X))
    return est, mse, time.perf_counter() - t0


def fit_with(d, seed: int, module, name: str, value) -> tuple:
    """The default ``DFIV(random_state=seed, n_jobs=1)`` fitted on ``d`` with ``module.name`` set to ``value`` for
    the fit (an evaluation's arm; the attribute is restored afterwards, warnings silenced): ``(est, mse, seconds)``."""
    before = getattr(module, name)
    setattr(module, name, value)
    try:
        return fit_default(d, seed)
    finally:
        setattr(module, name, before)


def departs_text(est) -> str:
    """The shape step's verdicts per member, (A) then (B), as y/n (? where a test is not finite; - without a step)."""
    dep = est.complexity_.get("departs")
    if not dep:
        return "-"
    mark = {True: "y", False: "n", None: "?"}
    return f"A {''.join(mark[v] for v in dep['spline'])}, B {''.join(mark[v] for v in dep['trained'])}"


def run_flag_arms(csv: Path, columns, items, module, name: str, shard: int, shards: int) -> None:
    """An evaluation of a rule behind a module flag: for each (design, seed) of ``items`` in this shard that the
    resumable ``csv`` lacks, the default fitted with ``module.name`` False ("today") and True ("rule"), one row
    each (the held-out rule's z, the shape step's verdicts, both arms' choices, MSE and seconds)."""
    from _results import append_row
    from eval_sieve_instruments import _choice

    done = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=columns)
    have = set(zip(done["design"], done["seed"]))
    for design_name, seed in items[shard::shards]:
        if (design_name, seed) in have:
            continue
        d = design(design_name, seed)
        est, mse, fit_s = fit_with(d, seed, module, name, False)
        row = dict(design=design_name, seed=seed, z=(est.complexity_.get("criterion") or [float("nan")])[0],
                   departs=departs_text(est), choice_today=_choice(est), knots_today=knots_text(est) or "-",
                   mse_today=mse, fit_s_today=fit_s)
        est, mse, fit_s = fit_with(d, seed, module, name, True)
        row.update(choice_rule=_choice(est), mse_rule=mse, fit_s_rule=fit_s)
        print(row, flush=True)
        append_row(csv, row, columns)


def bounds(order, best_today) -> pd.Series:
    """Each design's bound on the median ratio in issue 35's adoption rule: 1.1 on ``best_today``, 1.25 elsewhere."""
    return pd.Series([1.1 if n in best_today else 1.25 for n in order], index=order)


def adoption(df: pd.DataFrame, order, best_today, arm: str = "rule", knots: bool = False) -> tuple:
    """The adoption rule of issue 35's evaluations on rows with ``choice_``, ``mse_`` (and with ``knots``,
    ``knots_``) columns for the arms "today" and ``arm``: (the per-design table, its verdict line). Adopted when the
    median ratio is at most its :func:`bounds`, and lower by more than 10% on two designs, or the worst seed (each
    arm's worst, compared) is more than 10% better on one design and more than 10% worse on none."""
    g = df.groupby("design", sort=False)
    today, new = "mse_today", f"mse_{arm}"
    med, worst = g[[today, new]].median().loc[order], g[[today, new]].max().loc[order]
    columns = {"seeds": g.size().loc[order], "today chose": g["choice_today"].agg(",".join).loc[order],
               f"{arm} chose": g[f"choice_{arm}"].agg(",".join).loc[order]}
    if knots:
        columns.update({"knots today": g["knots_today"].agg("; ".join).loc[order],
                        f"knots {arm}": g[f"knots_{arm}"].agg("; ".join).loc[order]})
    table = pd.DataFrame({**columns, "today": med[today], arm: med[new], f"{arm} / today": med[new] / med[today],
                          f"worst seed {arm} / today": worst[new] / worst[today]})
    ratio, wratio = table[f"{arm} / today"], table[f"worst seed {arm} / today"]
    bounds_ = bounds(order, best_today)
    within = bool((ratio <= bounds_).all())
    better = [n for n in order if ratio[n] < 0.9]
    w_better, w_worse = [n for n in order if wratio[n] < 0.9], [n for n in order if wratio[n] > 1.1]
    adopted = within and (len(better) >= 2 or (bool(w_better) and not w_worse))
    verdict = (f"- Median ratio within its bound on every design: {'yes' if within else 'no'}; lower by more than 10% "
               f"on {len(better)} design(s) ({', '.join(better) or 'none'}); worst seed more than 10% better on "
               f"{', '.join(w_better) or 'none'}, more than 10% worse on {', '.join(w_worse) or 'none'} → "
               f"**{'adopted' if adopted else 'not adopted'}** by the stated rule.")
    return table, verdict


def knots_text(est) -> str:
    """Each member's Lepski choice (``complexity_["sieve_knots"]``) as text: "line" for the line, else the knots."""
    return " ".join("line" if k is None else str(k) for k in est.complexity_.get("sieve_knots") or [])


def candidate_mse(est, d) -> list:
    """The structural MSE of each candidate of ``est.complexity_`` on ``d``'s test set, in the candidates' order:
    every member's head is swapped for the candidate's (the estimator keeps the last one)."""
    out = []
    for k in range(len(est.complexity_["candidates"])):
        for m in est.estimators_:
            net = m.nets_["treatment"]
            m.nets_["treatment"] = getattr(net, "net", net)  # a member that reports the spline: its network unwrapped
            m.heads_.u = m.candidates_["heads"][k].clone()
        out.append(d.score(est.predict(d.test_X)))
    return out


def standardised(est, d) -> tuple:
    """``d``'s training data by role and its test inputs (T, and X where there are covariates), both in the fitted
    estimator's standardised units: ``(std, test)``."""
    data, _, _, _ = est._collect(d.train, {}, d.fit_kwargs())
    std = {k: est.scalers_[k].transform(v) for k, v in data.items() if v is not None}
    arrays = d.test_arrays()
    test = {"T": est.scalers_["T"].transform(np.asarray(arrays["treatment"], dtype=np.float64).reshape(d.n_test, -1))}
    if arrays.get("covariates") is not None:
        test["X"] = est.scalers_["X"].transform(np.asarray(arrays["covariates"], dtype=np.float64))
    return std, test


def ridge(F, Y, beta):
    """(FᵀF/n + β I)⁻¹ FᵀY/n, float64."""
    A = F.T @ F / len(F) + beta * np.eye(F.shape[1])
    return np.linalg.solve(A, F.T @ Y / len(F))


def kron(a, b):
    """Row-wise [a, 1] ⊗ [b, 1] (just [a, 1] without b): the stage-2 features of DFIV's head."""
    a1 = np.c_[a, np.ones(len(a))]
    return a1 if b is None else (a1[:, :, None] * np.c_[b, np.ones(len(b))][:, None, :]).reshape(len(a), -1)


def member_features(m, std, test):
    """A fitted member's features in float64 numpy: ``(phi, psi, psi_test, eta, eta_test)`` with phi = [φ(z, x), 1]
    on the training rows, ψ(t) on the training rows and the test inputs, η(x) likewise (None without a covariate
    network)."""
    import torch

    nets = m.nets_.eval()
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        zx = np.c_[std["Z"], std["X"]] if "X" in std and std["X"].shape[1] else std["Z"]
        phi = np.c_[nets["instrument"](t(zx)).double().numpy(), np.ones(len(zx))]
        psi, psi_t = (nets["treatment"](t(a)).double().numpy() for a in (std["T"], test["T"]))
        eta = nets["covariate"](t(std["X"])).double().numpy() if "covariate" in nets else None
        eta_t = nets["covariate"](t(test["X"])).double().numpy() if "covariate" in nets else None
    return phi, psi, psi_t, eta, eta_t


def member_splits(est):
    """Each member of a fitted ensemble with its split as its fit drew it: ``(member, rows, n1, n_val)``, ``rows``
    the training rows in the member's order (S1 = rows[:n1]; S2's held-out tenth = rows[n1:n1 + n_val])."""
    import torch

    n, n1, n_val = int(est.n_train_), int(est.n_stage1_), int(est.settings_["n_val"])
    for s, m in zip(est.seeds_, est._members()):
        yield m, torch.randperm(n, generator=torch.Generator().manual_seed(int(s))).numpy(), n1, n_val


def paired_z(D) -> float:
    """mean(D) / se(D) of paired differences D (negative: the first of the pair has the smaller values)."""
    return float(D.mean() / (D.std(ddof=1) / np.sqrt(len(D))))
