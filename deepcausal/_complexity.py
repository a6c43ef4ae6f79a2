"""How complex a curve the data support: a family of stage-2 heads, and the rules that choose among them.

The ill-posed direction of a two-stage fit is the nonlinear part of the treatment features. Where the
instruments (or proxies) identify the curve weakly, the trained head spreads the identified effect
over many features and the ridge shrinks it (a one-binary-instrument design: the slope shrunk
fourfold). The family here runs from the simplest curve to the trained one, all on the trained
networks, by a closed-form stage-2 solve each:

    u_c = (GᵀG/n + β₂ I + D_c)⁻¹ GᵀY/n

with D_c a diagonal penalty (:data:`GAMMAS`, :func:`penalties`) on two groups of coefficients: those of
the *nonlinear* treatment features — the default treatment network's features beyond the raw
treatment columns it keeps (:class:`~deepcausal.nets.SkipMLP` outputs [t, mlp(t)]) — and those of the
raw treatment's interactions with the covariate features. The simplest candidate is linear in the
treatment with one slope (h = a·t + c(x), as 2SLS with learned controls), the next lets the slope vary
with the covariates, then the nonlinear features enter with less and less penalty, and the last is
the trained head. The raw treatment's own slope is never penalised beyond β₂, so the simplest
candidate's slope is not shrunk. Every candidate's bootstrap draws use the same
multipliers as the bands (:func:`deepcausal.inference.score_bootstrap_heads`).

Two rules choose, for the whole ensemble at once (DESIGN §8), both stated before any run:

* **Lepski's balancing principle** (Chen, Christensen & Kankanala 2024): the simplest candidate c whose
  curve at up to 200 training rows lies within the joint 1 − α band of its difference from every more
  complex candidate — one sup-t critical value over every pair and row, from the members' bootstrap
  draws and spread (:func:`deepcausal.inference.combine_draws`); α = 0.1.
* **The discrepancy principle** (Tan & Syrgkanis 2026): the simplest candidate whose held-out projected
  loss (stage-2 rows held out of training, heads solved on the others) exceeds the most complex
  candidate's by at most τ standard errors of the paired difference; τ = 1.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .inference import combine_draws
from .nets import SkipMLP

__all__ = ["GAMMAS", "RULES", "resolve_rule", "penalties", "linear_columns", "linear_iv_candidate", "held_out_residuals", "choose"]

_OFF = 1e8  # a penalty that sets a coefficient to zero in effect
GAMMAS = ((_OFF, _OFF), (0.0, _OFF), (0.0, 1e2), (0.0, 1e1), (0.0, 1.0), (0.0, 1e-1), (0.0, 1e-2), (0.0, 1e-3),
          (0.0, 0.0))
"""The family, simplest first: (γ of the raw treatment's interactions with the covariate features, γ of the
nonlinear treatment features). First a curve linear in the treatment with one slope, then a slope that
varies with the covariates, then less and less penalised nonlinear features, last the trained head."""

RIDGE_PATH = (1e2, 1e1, 1.0, 1e-1, 1e-2, 1e-3, 0.0)
"""Without raw treatment columns in the treatment features (DFPV's default networks): a ridge path on every
treatment feature's coefficients, from a nearly flat curve to the trained head."""

RULES = ("auto", "trained", "linear", "lepski", "discrepancy")
LEPSKI_ALPHA = 0.1
DISCREPANCY_TAU = 1.0
EVAL_ROWS = 200
_NUMERICAL_RIDGE = 1e-8


def resolve_rule(rule: str, data: dict, local_max=None) -> tuple:
    """The rule a fit applies, and why: ``"auto"`` (the default) becomes ``"linear"`` when the excluded
    instruments identify no more than a slope, else ``"trained"``; any other rule stays as given.

    Identification, not tuning, decides (stated before any run): instruments taking K distinct values
    (rows of Z) give, for each value of the covariates, K − 1 moment equations E[Y − h(T, X) | Z, X] = 0
    beyond the intercept. With K ≤ d_t + 1 (one binary instrument and a scalar treatment: K = 2)
    those are at most the d_t slopes of a curve linear in the treatment; its shape, and so every
    nonlinear feature's coefficient, is left to the regularisation, which pulls the identified slope
    towards zero. The simplest candidate of the family — linear 2SLS (:func:`linear_iv_candidate`) —
    is then the curve the data support. DFPV (no instruments) keeps ``"trained"``.

    ``local_max`` (a maximum over the ranks of a distributed fit) makes every rank decide alike: the
    count is each rank's own, so the rule reads K as the largest count of any rank.
    """
    if rule != "auto":
        return rule, None
    Z, T = data.get("Z"), data.get("T")
    if Z is None or T is None or T.shape[1] > 32:
        return "trained", None
    limit = T.shape[1] + 1
    k = max(len(np.unique(Z[:, j])) for j in range(Z.shape[1]))  # cheap first: a continuous column rules it out
    k = len(np.unique(Z, axis=0)) if k <= limit else k
    if local_max is not None:
        k = int(local_max(k))
    if k > limit:
        return "trained", None
    return "linear", (f"the instruments take {k} distinct value{'s' if k != 1 else ''}: beyond the covariates they "
                      f"identify at most {max(k - 1, 0)} linear functional{'s' if k != 2 else ''} of the curve (a "
                      "slope per treatment column), not its shape")


def linear_columns(est, nets) -> Optional[int]:
    """How many raw treatment columns lead the treatment features (None: the family does not apply)."""
    key = est._predict_keys[0]
    d = est.dims_.get(key)
    if d is None or d > 32 or not isinstance(nets["treatment"], SkipMLP):
        return None
    return d


def linear_iv_applies(est, nets) -> bool:
    """Whether the linear 2SLS candidate can be written in the stage-2 head's coordinates: an IV design
    whose covariate network (if any) keeps the raw covariates first, as the treatment network does."""
    return "Z" in est.dims_ and "T" in est.dims_ and ("covariate" not in nets or isinstance(nets["covariate"], SkipMLP))


def penalties(d2: int, d_psi: int, d_lin: int, d_cov: int = 0, gammas=GAMMAS) -> torch.Tensor:
    """(C, d₂) extra diagonal penalties of the family's candidates.

    The stage-2 features are [ψ, 1] ⊗ [rest] with ψ's index slowest and, with covariates, [η(X), 1]
    the fastest factor of ``rest`` (DFIV: rest = [η, 1]; DFPV: rest = [Ŵ, 1] ⊗ [η, 1]). Coefficient
    (i, ..., j) belongs to treatment feature i and covariate feature j (j = d_cov: the covariates'
    intercept). A candidate (γ_slope, γ_nonlinear) penalises the raw treatment's coefficients with a
    covariate feature (i < d_lin, j < d_cov) by γ_slope and every coefficient of a nonlinear treatment
    feature (d_lin ≤ i < d_psi) by γ_nonlinear.
    """
    block = d2 // (d_psi + 1)
    j = torch.arange(block) % (d_cov + 1) if d_cov else torch.full((block,), -1)
    slope = torch.zeros(d_psi + 1, block, dtype=torch.float64)
    slope[:d_lin] = (j < d_cov).to(torch.float64) if d_cov else 0.0
    nonlinear = torch.zeros(d_psi + 1, block, dtype=torch.float64)
    nonlinear[d_lin:d_psi] = 1.0
    return torch.stack([g_s * slope.reshape(-1) + g_n * nonlinear.reshape(-1) for g_s, g_n in gammas])


def _multipliers(seed: int, rank: int, halves, n_draws: int, batch_size: int = 512):
    """The exponential multipliers of :func:`deepcausal.inference.score_bootstrap_heads`, drawn again in
    its order (each stage-1 batch, then each stage-2 batch) from its seed: the same draws, row by row."""
    gen = torch.Generator().manual_seed(int(seed) + 7919 * rank)
    for half in halves:
        for b in half.batches(batch_size):
            u = torch.rand(b["Y"].shape[0], n_draws, generator=gen, dtype=torch.float64)
            yield b, -torch.log1p(-u)


@torch.no_grad()
def linear_iv_candidate(est, halves, n_draws: int, seed: int, comm, d2: int, d_psi: int, d_cov: int):
    """The simplest candidate: linear two-stage least squares on the raw (standardized) variables of all
    rows, t̂ = [z, x, 1] π and y ≈ [t̂, x, 1] θ, with its score-bootstrap draws on the
    bands' multipliers. Returned in the coordinates of the stage-2 head u (the raw treatment and
    covariate columns the default networks keep lead ψ and η): ``(head (d₂, 1), draws (B, d₂, 1))``.

    Both stages use every row (full-sample 2SLS): with a weak instrument the split-sample estimator's
    noise (and its bias towards zero) is what this candidate is there to avoid. The ridge is numerical
    only (10⁻⁸, not β₁, β₂): with a weak instrument the partial variance of t̂ is of the order of a
    ridge of 10⁻³, which would shrink the very slope this candidate identifies.
    """
    rows = list(_multipliers(seed, comm.rank, halves, n_draws))
    # the stage-2 half's held-out rows (its first n_val positions), for the discrepancy principle
    s1_rows = sum(b["Y"].shape[0] for b in halves[0].batches(512))
    val = torch.zeros(sum(b["Y"].shape[0] for b, _ in rows), dtype=torch.bool)
    val[s1_rows : s1_rows + sum(b["Y"].shape[0] for b in halves[1].batches(512, "val"))] = True
    t = torch.cat([b["T"] for b, _ in rows]).double()
    x = torch.cat([b["X"] for b, _ in rows]).double() if "X" in rows[0][0] else None
    z = torch.cat([b["Z"] for b, _ in rows]).double()
    y = torch.cat([b["Y"] for b, _ in rows]).double()
    w = torch.cat([m for _, m in rows])  # (n, B), mean 1
    ones = torch.ones(len(y), 1, dtype=torch.float64)
    D1 = torch.cat([z] + ([x] if x is not None else []) + [ones], dim=1)
    n = comm.sum_float(len(y))

    def solve(D, target, beta):
        A = comm.sum(D.T @ D) / n
        A.diagonal().add_(float(beta))
        return A, torch.linalg.solve(A, comm.sum(D.T @ target) / n)

    A1, pi = solve(D1, t, _NUMERICAL_RIDGE)
    s1 = comm.sum(torch.einsum("nb,nd,nk->bdk", w - 1.0, D1, t - D1 @ pi)) / n
    pi_b = pi + torch.linalg.solve(A1, s1)  # (B, d₁, d_t)

    def design(p):
        t_hat = D1 @ p
        return torch.cat([t_hat] + ([x.expand(*t_hat.shape[:-2], *x.shape)] if x is not None else [])
                         + [ones.expand(*t_hat.shape[:-2], *ones.shape)], dim=-1)

    D2 = design(pi)
    A2, theta = solve(D2, y, _NUMERICAL_RIDGE)
    D2b = design(pi_b)  # (B, n, d)
    R = y.unsqueeze(0) - D2b @ theta
    s2 = comm.sum(torch.einsum("bn,bnd,bnk->bdk", w.T, D2b, R)) / n - _NUMERICAL_RIDGE * theta
    theta_b = theta + torch.linalg.solve(A2, s2)  # (B, d, 1)

    def embed(th):  # θ = [θ_t, θ_x, θ_1] → u at (t_c, η-intercept), (ψ-intercept, x_k), (ψ-intercept, η-intercept)
        d_t, p = t.shape[1], 0 if x is None else x.shape[1]
        u = th.new_zeros(*th.shape[:-2], d2, th.shape[-1])
        block = d_cov + 1
        for c in range(d_t):
            u[..., c * block + d_cov, :] = th[..., c, :]
        for k in range(p):
            u[..., d_psi * block + k, :] = th[..., d_t + k, :]
        u[..., d_psi * block + d_cov, :] = th[..., d_t + p, :]
        return u

    # train-only fit (every row but the held-out ones), its residuals on the held-out rows
    keep = ~val
    A1t = D1[keep].T @ D1[keep] / keep.sum()
    A1t.diagonal().add_(_NUMERICAL_RIDGE)
    pi_t = torch.linalg.solve(A1t, D1[keep].T @ t[keep] / keep.sum())
    D2t = design(pi_t)
    A2t = D2t[keep].T @ D2t[keep] / keep.sum()
    A2t.diagonal().add_(_NUMERICAL_RIDGE)
    theta_t = torch.linalg.solve(A2t, D2t[keep].T @ y[keep] / keep.sum())
    held_out = (y[val] - D2t[val] @ theta_t)[:, 0]
    return embed(theta), embed(theta_b) - embed(theta), held_out


@torch.no_grad()
def held_out_residuals(est, nets, heads, halves, pen: torch.Tensor, comm) -> torch.Tensor:
    """(C, n_val) projected residuals Y − G(F₁ V) u_c on the stage-2 held-out rows, each candidate's head
    solved on the other stage-2 rows (with the trained stage-1 head V)."""
    V = heads.V.double()
    FtF = FtY = None
    n = 0
    for b in halves[1].batches(4096, "train"):
        G = est._projected_features(nets, V, b).double()
        Y = b["Y"].double()
        FtF = G.T @ G if FtF is None else FtF + G.T @ G
        FtY = G.T @ Y if FtY is None else FtY + G.T @ Y
        n += G.shape[0]
    FtF, FtY, n = comm.sum(FtF), comm.sum(FtY), comm.sum_float(n)
    A = FtF / n
    A.diagonal().add_(float(est.beta2))
    heads_c = torch.stack([torch.linalg.solve(A + torch.diag(p), FtY / n) for p in pen])  # (C, d₂, k)
    out = []
    for b in halves[1].batches(4096, "val"):
        G = est._projected_features(nets, V, b).double()
        out.append((b["Y"].double().unsqueeze(0) - G.unsqueeze(0) @ heads_c)[..., 0])
    return torch.cat(out, dim=1) if out else torch.zeros(len(pen), 0, dtype=torch.float64)


def _lepski(est, phi) -> dict:
    members = est._members()
    C = members[0].candidates_["heads"].shape[0]
    pairs = [(k, j) for k in range(C) for j in range(k + 1, C)]
    ests, devs = [], []
    for m in members:
        Phi = phi(m).detach()
        heads, draws = m.candidates_["heads"].to(Phi), m.candidates_["draws"].to(Phi)
        h = (Phi @ heads)[..., 0]  # (C, q)
        d = (Phi @ draws)[..., 0]  # (C, B, q)
        ests.append(torch.cat([h[k] - h[j] for k, j in pairs]).cpu().numpy())
        devs.append(torch.cat([d[k] - d[j] for k, j in pairs], dim=1).cpu().numpy())
    out = combine_draws(np.stack(ests), devs, LEPSKI_ALPHA, "uniform")
    q = ests[0].shape[0] // len(pairs)
    # each pair's largest |difference| in units of its critical distance: at most 1 means within the band
    ratio = (np.abs(out["estimate"]) / np.maximum(out["critical_value"] * out["std_error"], 1e-300)).reshape(len(pairs), q)
    worst_pair = ratio.max(axis=1)
    worst = [float(max((worst_pair[i] for i, (k, _) in enumerate(pairs) if k == c), default=0.0)) for c in range(C)]
    chosen = next(c for c in range(C) if worst[c] <= 1.0)  # the most complex candidate has no pair: always accepted
    return {"chosen": chosen, "criterion": worst}


def _discrepancy(est) -> dict:
    members = est._members()
    r2 = np.concatenate([m.candidates_["held_out"].cpu().numpy() ** 2 for m in members], axis=1)  # (C, rows)
    diff = r2 - r2[-1:]
    n = diff.shape[1]
    excess = diff.mean(axis=1)
    se = diff.std(axis=1, ddof=1) / np.sqrt(max(n, 1)) if n > 1 else np.full(len(diff), np.inf)
    within = excess <= DISCREPANCY_TAU * np.where(se > 0, se, 0.0)
    chosen = int(np.flatnonzero(within)[0]) if within.any() else len(excess) - 1
    return {"chosen": chosen, "criterion": [float(e / s) if s > 0 else 0.0 for e, s in zip(excess, se)],
            "held_out_loss": [float(v) for v in r2.mean(axis=1)]}


def family(est, nets, heads, halves, n_draws: int, seed: int, comm, device, full: bool = False) -> Optional[tuple]:
    """The family's heads, draws and held-out residuals for one member, and the bands' own draws:
    ``(draws, summary_draws, candidates)`` with candidates a dict of (C, ...) tensors and their
    ``labels``; None when the family does not apply (then the caller draws the bands alone)."""
    key = est._predict_keys[0]
    d_t = est.dims_.get(key)
    if d_t is None or d_t > 32:  # images: no family
        return None
    from .inference import score_bootstrap_heads

    d_lin = linear_columns(est, nets)
    d_psi = nets["treatment"](torch.zeros(1, d_t, device=device)).shape[1]
    d_cov = nets["covariate"](torch.zeros(1, est.dims_["X"], device=device)).shape[1] if "covariate" in nets else 0
    d2 = heads.u.shape[0]
    if d_lin is not None:
        pen = penalties(d2, d_psi, d_lin, d_cov).to(device)
        labels = [f"γ slope {g_s:g}, nonlinear {g_n:g}" for g_s, g_n in GAMMAS]
    else:  # a ridge path on every treatment feature (the rows of ψ, not its intercept)
        pen = penalties(d2, d_psi, 0, 0, gammas=[(0.0, g) for g in RIDGE_PATH]).to(device)
        labels = [f"γ treatment features {g:g}" for g in RIDGE_PATH]
    stages = halves if not full else (halves[0], halves[0])  # ``halves`` given as (everything, everything) when full
    draws, summary_draws, cands = score_bootstrap_heads(est, nets, stages, n_draws, seed, comm, penalties=pen,
                                                        same_rows=full)
    cands["held_out"] = held_out_residuals(est, nets, heads, stages, pen, comm)
    if d_lin is not None and linear_iv_applies(est, nets):
        split = halves[0].halves if full else halves  # the multipliers follow the rows of the two halves in turn
        head, dev, held = linear_iv_candidate(est, split, n_draws, seed, comm, d2, d_psi, d_cov)
        cands = {"heads": torch.cat([head[None].to(cands["heads"]), cands["heads"]]),
                 "draws": torch.cat([dev[None].to(cands["draws"]), cands["draws"]]),
                 "held_out": torch.cat([held[None].to(cands["held_out"]), cands["held_out"]])}
        labels = ["linear 2SLS"] + labels
    cands["labels"] = labels
    return draws, summary_draws, cands


def choose(est, rule: str, phi) -> dict:
    """Apply ``rule`` to an ensemble whose members hold ``candidates_``; ``phi`` builds the members'
    features at the evaluation rows (Lepski). Returns {"rule", "chosen", "gamma", "criterion", ...}."""
    if rule == "linear":
        out = {"chosen": 0}
    elif rule == "lepski":
        out = _lepski(est, phi)
    elif rule == "discrepancy":
        out = _discrepancy(est)
    else:
        raise ValueError(f"complexity must be one of {RULES}, got {rule!r}")
    labels = list(est._members()[0].candidates_["labels"])
    return {"rule": rule, **out, "label": labels[out["chosen"]], "candidates": labels}
