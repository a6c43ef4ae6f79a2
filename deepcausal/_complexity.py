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
candidate's slope is not shrunk. For an IV design one more candidate comes first:
**the line in t** (:func:`linear_iv_candidate`), 2SLS on every row with the raw instruments and the
covariates' *learned* features as controls — a line in the treatment, not in the covariates. Every
candidate's bootstrap draws use the same multipliers as the bands
(:func:`deepcausal.inference.score_bootstrap_heads`).

DFIV's default, ``"auto"`` (:func:`resolve_rule`), reads how many values the instruments take: at most
d_t + 1 give the line; a few more (discrete instruments, at most 10 values) give Lepski's rule with the
line first; continuous instruments give the held-out rule (:func:`_held_out`): the trained head unless the
line predicts rows no training step saw significantly better and its first stage is strong.

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

import math
from typing import Optional

import numpy as np
import torch
from torch import nn

from ._diagnostics import DISCRETE_MAX, IdentificationWarning, distinct_rows
from ._screen import net_dims
from ._sieve import (NONLINEAR_DRAWS, SIEVE_LABEL, attach_band, departures, install, shape_step,
                     linear_iv_candidate, member_rows, sieve_candidate)
from . import _verdicts
from ._warnings import warn
from .heads import solve_spd
from .inference import combine_draws
from .nets import SkipMLP

__all__ = ["GAMMAS", "RULES", "TSLS_LABELS", "resolve_rule", "install_choice", "member_rows", "keeps_raw_treatment", "penalties",
           "linear_columns", "linear_iv_candidate", "held_out_residuals", "choose"]

_OFF = 1e8  # a penalty that sets a coefficient to zero in effect
GAMMAS = ((_OFF, _OFF), (0.0, _OFF), (0.0, 1e2), (0.0, 1e1), (0.0, 1.0), (0.0, 1e-1), (0.0, 1e-2), (0.0, 1e-3),
          (0.0, 0.0))
"""The family, simplest first: (γ of the raw treatment's interactions with the covariate features, γ of the
nonlinear treatment features). First a curve linear in the treatment with one slope, then a slope that
varies with the covariates, then less and less penalised nonlinear features, last the trained head."""

RIDGE_PATH = (1e2, 1e1, 1.0, 1e-1, 1e-2, 1e-3, 0.0)
"""Without raw treatment columns in the treatment features (DFPV's default networks): a ridge path on every
treatment feature's coefficients, from a nearly flat curve to the trained head."""

RULES = ("auto", "trained", "linear", "lepski", "discrepancy", "projected", "held_out", "sieve")
SIEVE_RULES = ("held_out", "sieve")  # the rules whose family holds Lepski's spline in t (deepcausal._sieve)
PROJECTED_FOLDS = 5  # folds of the stage-2 rows for the out-of-fold trained head (rule "projected")
PROJECTED_Z = 1.645  # one-sided 5%: the trained head replaces the line only when it is significantly better
HELD_OUT_Z = 1.645  # one-sided 5%: the line replaces the trained head only when it is significantly better
# Montiel Olea and Pflueger's (2013) critical value of the effective first-stage F for a worst-case 2SLS bias of at
# most 5% of the benchmark's (5% test), read here against the classical partial F (the two agree under homoskedastic
# errors); it replaced 104.7 (Lee, McCrary, Moreira, Porter 2022), see _held_out.
HELD_OUT_F = 37.418
FULL_TRAINED_HEAD = True
"""Where set (the default) and the heads are re-solved after training (``refit_heads=True``, the default; with
``False`` the heads as trained are kept), a member whose ensemble the held-out rule leaves on the trained head
reports that head re-solved on every row (both stages, the split's halves together) with its draws, instead of the head solved on the
halves: the split heads choose (the held-out rows must be rows they were not solved on) and the chosen head is then
solved on all the data, as a model chosen on held-out rows is refitted on every row. Stated before its run and
adopted on fresh seeds (benchmarks/RESULTS.md, "The trained head re-solved on every row once chosen"; medians
lowdim_sin 0.74x, chen_christensen_mild 0.84x, weak_iv 0.26x, demand 0.90x, demand_highdim 1.17x). Heads solved on
every row before the choice (``refit_heads="full"``) were not adopted: the held-out rows they were solved on then
favour the trained head ("Heads solved on every row where the data have covariates")."""
LINE_BAND_WITH_SPLINE = True
"""Where set (the default) and the held-out rule reports the line in t (either way: the held-out rows chose it and
Lepski's spline did not depart from it on a majority, or neither curve departed), each member whose Lepski choice is a
spline keeps it beside the line (:func:`deepcausal._sieve.attach_band`), and every band is the union of the line's
band and the band the spline would have had as the reported curve (the same level, pointwise or uniform; members that
kept the line give the line to both, so the members' disagreement enters the spline's band as spread); the standard
error grows with the band's half-width, so that p-values agree with the band. Why: the line is reported because the
tests did not show the spline departing from it, which is no evidence that the spline is wrong;
a band that stays honest after that choice covers the sampling noise of every candidate the data did not reject (as
Chen, Christensen and Kankanala's bands after Lepski's choice cover every admissible sieve dimension). Stated before
its run and adopted by its stated rule (benchmarks/RESULTS.md, "The line's band widened to cover Lepski's spline's";
``benchmarks/diagnostics/eval_line_band.py``): it acted on 27 of 118 fresh fits; on the 13 whose truth bends the
mean pointwise coverage rose from 0.66 to 0.85 (our kink design 0.55 → 0.93 on 2 fits, lowdim_step at n = 1,000
0.20 → 0.64 on 3). The price is width: on the fits where it acted the band widened 1.48x at the median and up to 4.4x
(lowdim_linear, where the line is right and its band already covered); over all of a design's fits, at most 1.21x at
the median (our linear design with five covariates)."""
LINE_LABEL = "linear 2SLS"  # the family's simplest candidate, :func:`linear_iv_candidate`
TSLS_LABELS = (LINE_LABEL, SIEVE_LABEL)  # the curves fitted by 2SLS on every row: unregularised, no network in t
LINE_CONTROLS = ", learned controls"  # ... and its label's end with covariates
TRAINED_LABEL = "trained head"  # the other candidate of the rules that choose between the line and it
LEPSKI_ALPHA = 0.1
DISCREPANCY_TAU = 1.0
EVAL_ROWS = 200


def resolve_rule(rule: str, data: dict, local_max=None, raw_treatment: bool = True, draws: bool = True,
                 held_out_rows: bool = True) -> tuple:
    """The rule a fit applies, and why (DFIV's ``"auto"``, the default, stated before any run):

    * instruments that take K ≤ :data:`~deepcausal._diagnostics.DISCRETE_MAX` distinct values (rows of Z,
      counted with a tolerance relative to each column's scale) give, for each value of the covariates,
      K − 1 moment equations E[Y − h(T, X) | Z, X] = 0 beyond the intercept. They identify at most K − 1
      functionals of the curve in t at each x, never its whole shape:

      - K ≤ d_t + 1 (one binary instrument, a scalar treatment): at most the d_t slopes of a line in t.
        ``"linear"``: the line in t, 2SLS on every row with the covariates' learned features as controls
        (:func:`linear_iv_candidate`): h(t, x) = a·t + c(x), c free;
      - d_t + 1 < K: ``"lepski"`` over the family, simplest (that line) first: a more complex curve only
        where the data tell it apart from every simpler one (with ``n_bootstrap`` < 2 there are no draws
        to compare: the line);
      - K − 1 < d_t: nothing is identified (``identification_`` says so); the trained head, no band.

    * Continuous instruments: ``"held_out"`` (:func:`_held_out`), the trained head unless the line predicts
      each member's stage-2 held-out rows significantly better and the linear first stage's F is at least
      :data:`HELD_OUT_F` (adopted by its stated rule: benchmarks/RESULTS.md, "The held-out rule on
      continuous instruments"). Without held-out rows (``validation_fraction=0``) or without the raw
      treatment among the treatment features there is nothing to compare: ``"trained"``. (``"projected"``,
      the line unless the trained head's out-of-fold projected fit on its own stage-2 rows is significantly
      better, was evaluated for this case and not adopted.)
    * Images and DFPV (no instruments): ``"trained"``.

    ``raw_treatment``: the treatment network keeps the raw treatment among its features (the default
    :class:`~deepcausal.nets.SkipMLP`); a line in t needs it, so without it ``"auto"`` keeps the trained
    head (and says so) and ``"linear"`` is refused. ``local_max`` (a maximum over the ranks of a
    distributed fit) makes every rank decide alike: the count is each rank's own, so the rule reads K as
    the largest count of any rank.

    Returns ``(rule, reason)``; the reason is None where the rule was named by the user.
    """
    Z, T = data.get("Z"), data.get("T")
    if rule in ("linear", "projected", "held_out", "sieve"):
        if Z is None or T is None:
            raise ValueError(f"complexity={rule!r} reports linear 2SLS's line, fitted with excluded instruments; "
                             "this estimator has none (DFPV): use complexity='trained', 'lepski' or 'discrepancy'")
        if T.shape[1] > 32 or not raw_treatment:
            raise ValueError(f"complexity={rule!r} reports a line in the treatment, which needs the raw treatment "
                             "among the treatment features: the default treatment network (deepcausal.nets.SkipMLP)"
                             " keeps it, a custom treatment_net or an image treatment does not. Leave treatment_net "
                             "as None, or use complexity='trained'")
    if rule == "sieve" and T.shape[1] != 1:
        raise ValueError(f"complexity='sieve' fits a spline in one treatment column; the treatment has {T.shape[1]}: "
                         "use complexity='held_out', 'linear' or 'trained'")
    if rule != "auto":
        return rule, None
    if Z is None or T is None or T.shape[1] > 32:
        return "trained", None
    k = distinct_rows(Z)
    if local_max is not None:
        k = int(local_max(k))
    d_t = T.shape[1]
    if k > DISCRETE_MAX:  # continuous instruments
        if not raw_treatment or not held_out_rows:
            return "trained", None
        return "held_out", ("continuous instruments: the trained head unless the line in t predicts the held-out "
                            f"rows significantly better with a first-stage F of at least {HELD_OUT_F:g}")
    if k - 1 < d_t:  # nothing identified (identification_)
        return "trained", None
    why = (f"the instruments take {k} distinct values: beyond the covariates they identify at most {k - 1} "
           f"functional{'s' if k != 2 else ''} of the curve in the treatment")
    if not raw_treatment:
        why += ("; the line in t they support needs the raw treatment among the treatment features, which "
                "the custom treatment_net does not keep, so the trained head is reported (it may be shrunk "
                "towards a flat curve: see linear_check_)")
        warn(f"complexity='auto': {why}", IdentificationWarning)
        return "trained", why
    if k <= d_t + 1:
        return "linear", why + " (a slope per treatment column): the line in t, with the covariates' learned features"
    if not draws:
        return "linear", why + "; without bootstrap draws (n_bootstrap < 2) nothing more complex can be tested: the line"
    return "lepski", why + "; Lepski's rule takes the simplest curve, the line first, that the data cannot tell " \
                           "apart from the more complex ones"


def keeps_raw_treatment(est, d_t: Optional[int]) -> bool:
    """Whether ``est``'s treatment network keeps the raw treatment first among its features (a
    :class:`~deepcausal.nets.SkipMLP`, DFIV's default for vectors). Builds the network once, leaving the
    caller's random generator as it was; False for estimators without a treatment network (DFPV)."""
    if "treatment" not in est._nets or d_t is None or d_t > 32:
        return False
    param = est._nets["treatment"][0]
    spec = getattr(est, param, None)
    if isinstance(spec, nn.Module):
        return isinstance(spec, SkipMLP)
    with torch.random.fork_rng(devices=[]):
        try:
            net = spec(d_t) if spec is not None else est._default_net(d_t, d_out=est._default_widths.get(param, 16))
        except Exception:  # the fit itself reports a factory that fails, naming the role
            return False
    return isinstance(net, SkipMLP)


def linear_columns(est, nets) -> Optional[int]:
    """How many raw treatment columns lead the treatment features (None: the family does not apply)."""
    key = est._predict_keys[0]
    d = est.dims_.get(key)
    if d is None or d > 32 or not isinstance(nets["treatment"], SkipMLP):
        return None
    return d


def linear_iv_applies(est, nets) -> bool:
    """Whether the line in t (:func:`linear_iv_candidate`) can be written in the stage-2 head's coordinates:
    an IV design (instruments Z, treatment T) whose treatment features lead with the raw treatment; the
    covariate network may be any (its features are the controls)."""
    return est.dims_.get("Z") is not None and est.dims_.get("T") is not None and linear_columns(est, nets) is not None


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


@torch.no_grad()
def projected_comparison(est, nets, heads, half, u_line: torch.Tensor, seed: int) -> float:
    """Is the trained head's projected fit better than the line's, on one member's stage-2 rows? A z-statistic.

    Both curves are compared where the instruments identify them, on the projected features
    G(F₁ V, X) of the stage-2 rows (V, the stage-1 head, solved on the other half): the line's
    projected residual r_L = Y − G u_line against the trained head's out-of-fold one, r_T = Y − G u₍₋f₎
    with u₍₋f₎ the stage-2 ridge (β₂) solved on the other ``PROJECTED_FOLDS`` − 1 folds (the trained head
    is fitted to these rows' outcomes; out of fold it pays for what it overfits). With Dᵢ = r_L,ᵢ² − r_T,ᵢ²,

        z = mean(D) / (sd(D) / √n₂),

    large when the trained head predicts the projected outcome better than the line. Every stage-2 row is
    used (not only the held-out tenth): the comparison needs the power.
    """
    V = heads.V.double()
    G, Y = [], []
    for b in half.batches(4096):
        G.append(est._projected_features(nets, V, b).double())
        Y.append(b["Y"].double())
    G, Y = torch.cat(G), torch.cat(Y)
    n = G.shape[0]
    fold = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))) % PROJECTED_FOLDS
    r_T = torch.empty_like(Y)
    for f in range(PROJECTED_FOLDS):
        out = fold == f
        Gi, Yi = G[~out], Y[~out]
        A = Gi.T @ Gi / Gi.shape[0]
        A.diagonal().add_(float(est.beta2))
        r_T[out] = Y[out] - G[out] @ solve_spd(A, Gi.T @ Yi / Gi.shape[0])
    r_L = Y - G @ u_line.double().to(G.device)
    D = (r_L**2 - r_T**2).sum(dim=1)
    sd = float(D.std()) if n > 1 else 0.0
    return float(D.mean()) / (sd / math.sqrt(n)) if sd > 0 else 0.0


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


def _projected(est) -> dict:
    """The line (candidate 0) unless the members' mean z of :func:`projected_comparison` exceeds
    ``PROJECTED_Z``; then the trained head (the last candidate). The members' z are correlated (their
    stage-2 halves overlap), and a mean of correlated standard normals has a standard deviation of at
    most 1: the test errs towards the line."""
    members = est._members()
    z = [m.candidates_.get("projected_z") for m in members]
    C = members[0].candidates_["heads"].shape[0]
    if any(v is None for v in z):
        return {"chosen": C - 1, "criterion": [float("nan")]}
    mean = float(np.mean(z))
    return {"chosen": C - 1 if mean > PROJECTED_Z else 0, "criterion": [mean], "member_z": [float(v) for v in z]}


def _held_out(est, comm=None, phi=None, t=None) -> dict:
    """The trained head, unless the line predicts rows that no training step saw significantly better and
    the line's first stage is strong (rule ``"held_out"``).

    Each member's stage-2 held-out rows (its first ``n_val`` positions, never in a gradient step or a head
    solve) give the two candidates' projected residuals: the line's from the 2SLS fitted on every other row
    (:func:`linear_iv_candidate`), the trained head's from the stage-2 ridge solved on the half's other rows
    (:func:`held_out_residuals`). With Dᵢ = r_line,ᵢ² − r_trained,ᵢ² pooled over the members' held-out rows
    (they are drawn apart per member and overlap little),

        z = mean(D) / (sd(D) / √n),

    the line is reported when z < −``HELD_OUT_Z`` and the linear first stage's partial F (``first_stage_f_``)
    is at least :data:`HELD_OUT_F` (37.418: above it 2SLS's worst-case bias is at most 5% of the benchmark's,
    Montiel Olea and Pflueger 2013). The bound's history, in benchmarks/RESULTS.md ("The held-out rule on
    continuous instruments"): with the rule of thumb 10, weak_iv's F of 13-35 let the line in at 1.8x the trained
    head's error; with 104.7 (Lee, McCrary, Moreira and Porter 2022's bound for the usual t-test), our survey
    design's F of 90-105 kept the trained head at 8-9x the line's error on some seeds; 37.418, stated after both
    and judged on fresh fits, made the same choices as 104.7 there and was adopted. Why this way round: the
    trained networks were fitted to the other rows, so on rows they never saw their head pays for what it overfits
    (on the stage-2 rows themselves it looked better than the line where it was 30x worse: "The projected rule on
    continuous instruments"). Why the F: with a weak first stage the projected loss cannot see the line's slope
    error (t̂ is nearly constant), so a better held-out loss does not mean a better curve. Where the two cannot be
    told apart the trained head stays: measured, falling back on the line cost 2-5x on the ill-posed designs.
    Early stopping kept the networks' check with the lowest loss on these rows, which favours the trained head:
    the test errs towards it; so does ``refit_heads="full"``, whose stage-1 head was solved on every row,
    these included. In a distributed fit (``comm``) every rank holds its own held-out rows: the sums are taken
    over all ranks, so that every rank makes the same choice. The bound is a critical value of Montiel Olea and
    Pflueger's effective F; it is compared with the classical partial F (the smallest conditional F with several
    treatment columns), which equals the effective F only under homoskedastic errors.

    Then, where F is at least the bound and the treatment has one column, a shape step: each member asks, at the
    evaluation rows (``phi``, ``t``) and on the bootstrap draws its line, trained head and Lepski spline in t share,
    whether (A) the spline departs from the line and (B) the trained curve does (sup-t tests at 5%,
    :func:`deepcausal._sieve.departures`), and :func:`deepcausal._sieve.shape_step` reads the majority: where the
    line was chosen, the spline when (A) holds; where the trained head stays, the spline when (A) holds and (B) does
    not (the data bend where the trained curve does not), the line when neither holds (no bend: the simplest curve).
    The spline is each member's Lepski choice, the line on members that kept it. Why: the held-out rows cannot tell
    a spline from the trained head (chen_christensen_severe: z near 0, the spline's error 30 times smaller, the
    trained curve nearly the line, its nonlinear part weakly identified and shrunk away), nor, there, from the line;
    and where they cannot tell the line from the trained head they cannot see that neither curve bends (kiv_linear).
    Stated before their runs and adopted on fresh seeds (benchmarks/RESULTS.md, "A Lepski sieve in t in place of the
    line", the nonlinearity rule, and "The shape step"). Skipped with fewer than
    :data:`~deepcausal._sieve.NONLINEAR_DRAWS` bootstrap draws, where z is undefined and in distributed fits (no
    spline there). A test that is not finite (a diverged member) gives no verdict and counts for no majority.
    """
    members = est._members()
    C = members[0].candidates_["heads"].shape[0]
    D = np.concatenate([(r[0] ** 2 - r[-1] ** 2) for r in (m.candidates_["held_out"].cpu().numpy() for m in members)])
    f = float(getattr(est, "first_stage_f_", float("nan")))
    active = comm is not None and comm.active

    def total(*values):  # sums over the ranks of a distributed fit
        v = torch.tensor(values, dtype=torch.float64)
        return [float(a) for a in (comm.sum(v.to(comm.device)).cpu() if active else v)]

    n, d_sum = total(len(D), D.sum())
    mean = d_sum / n if n else float("nan")
    (centred,) = total(((D - mean) ** 2).sum()) if n else (0.0,)  # centred, so no cancellation
    var = centred / (n - 1) if n > 1 else 0.0
    n = int(n)
    z = mean / math.sqrt(var / n) if var > 0 and math.isfinite(var) else float("nan")
    line = bool(z < -HELD_OUT_Z and f >= HELD_OUT_F)  # NaN (no held-out rows, no F) compares False: trained
    out = {"chosen": 0 if line else C - 1, "held_out_line": line, "criterion": [z], "held_out_rows": n,
           "first_stage_f": f}
    sieves = _sieves(members)
    if sieves is not None and f >= HELD_OUT_F and math.isfinite(z) and phi is not None and t is not None \
            and members[0].candidates_["draws"].shape[1] >= NONLINEAR_DRAWS:
        tests = [departures(m, s, phi(m).detach(), t) for m, s in zip(members, sieves)]
        departs = {"spline": [False if d["spline"] is None else _verdict(*d["spline"]) for d in tests],
                   "trained": [_verdict(*d["trained"]) for d in tests]}
        # not (z <= bound) rather than z > bound: a z that is not finite is no evidence against the trained head
        step = shape_step(line, departs["spline"], departs["trained"], not z <= HELD_OUT_Z)
        out.update(_sieve_knots(sieves), departs=departs, shape_step=step)
        if step is not None:
            out.update(chosen=0, spline=step == "spline")
    return {**out, "verdict": held_out_verdict(out)}


def _verdict(stat: float, crit: float) -> Optional[bool]:
    """A sup-t test's verdict; None (no verdict: it counts for no majority) where it is not finite (a diverged
    member's curve)."""
    return bool(stat > crit) if math.isfinite(stat) and math.isfinite(crit) else None


def held_out_verdict(c: dict) -> str:
    """Why rule ``"held_out"`` chose what it chose, in words (``complexity_["verdict"]``; :mod:`deepcausal._verdicts`)."""
    return _verdicts.held_out_verdict(c, HELD_OUT_Z, HELD_OUT_F)


def _sieves(members) -> Optional[list]:
    """Each member's Lepski sieve (deepcausal._sieve), or None where the family has none."""
    sieves = [m.candidates_.get("sieve") for m in members]
    return sieves if all(s is not None for s in sieves) else None


def _sieve_knots(sieves) -> dict:
    return {} if sieves is None else {"sieve_knots": [s["knots_count"] for s in sieves]}


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


def family(est, nets, heads, halves, n_draws: int, seed: int, comm, device, full: bool = False,
           rule: str = "lepski") -> Optional[tuple]:
    """The family's heads, draws and held-out residuals for one member, and the bands' own draws:
    ``(draws, summary_draws, candidates)`` with candidates a dict of (C, ...) tensors and their
    ``labels``; None when the family does not apply (then the caller draws the bands alone).

    The rules that only choose between the line and the trained head (``"linear"``, ``"projected"``,
    ``"held_out"``, ``"sieve"``) get those two candidates alone, which spares the penalised heads' bootstrap
    passes; ``"sieve"`` also gets ``candidates["sieve"]``, the member's Lepski spline in t
    (:func:`deepcausal._sieve.sieve_candidate`; knots None where Lepski kept the line; absent in a distributed
    fit); ``"projected"`` also
    gets ``candidates["projected_z"]`` (:func:`projected_comparison`; None with full-sample heads or in a
    distributed fit)."""
    key = est._predict_keys[0]
    d_t = est.dims_.get(key)
    if d_t is None or d_t > 32:  # images: no family
        return None
    from .inference import score_bootstrap_heads

    d_lin = linear_columns(est, nets)
    d_psi = nets["treatment"](torch.zeros(1, d_t, device=device)).shape[1]
    d_cov = nets["covariate"](torch.zeros(1, net_dims(est)["X"], device=device)).shape[1] if "covariate" in nets else 0
    d2 = heads.u.shape[0]
    if d_lin is not None and rule in ("linear", "projected", "held_out") + SIEVE_RULES:
        pen = torch.zeros(1, d2, dtype=torch.float64, device=device)
        labels = [TRAINED_LABEL]
    elif d_lin is not None:
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
        rows = member_rows(est, nets, split)
        head, dev, held = linear_iv_candidate(est, nets, split, n_draws, seed, comm, d2, d_psi, d_cov, rows)
        cands = {"heads": torch.cat([head[None].to(cands["heads"]), cands["heads"]]),
                 "draws": torch.cat([dev[None].to(cands["draws"]), cands["draws"]]),
                 "held_out": torch.cat([held[None].to(cands["held_out"]), cands["held_out"]])}
        labels = [LINE_LABEL + (LINE_CONTROLS if d_cov else "")] + labels
        if rule in SIEVE_RULES and d_lin == 1 and not comm.active:  # the sieve in t (deepcausal._sieve)
            cands["sieve"] = (sieve_candidate(est, nets, stages[0], rows, n_draws, seed, d_psi, d_cov)
                              or {"knots_count": None, "held_out": held})
        if rule == "projected":
            cands["projected_z"] = (None if full or comm.active else
                                    projected_comparison(est, nets, heads, halves[1], head, seed))
    cands["labels"] = labels
    return draws, summary_draws, cands


def choose(est, rule: str, phi, comm=None, t=None) -> dict:
    """Apply ``rule`` to an ensemble whose members hold ``candidates_``; ``phi`` builds the members'
    features at the evaluation rows (Lepski, and the held-out rule's nonlinearity step), ``t`` the
    standardized treatment there; ``comm``, a distributed fit's collectives (the held-out rule sums over
    ranks). Returns {"rule", "chosen", "gamma", "criterion", ...}."""
    labels = list(est._members()[0].candidates_["labels"])
    if rule in ("linear", "projected", "held_out") + SIEVE_RULES and not labels[0].startswith(LINE_LABEL):  # resolve_rule refuses these
        raise RuntimeError(f"complexity={rule!r} without the line in t among the candidates")
    if rule == "linear":
        out = {"chosen": 0}
    elif rule == "sieve":  # a distributed fit has no spline (its rows are spread over the ranks): the line
        sieves = _sieves(est._members())
        out = {"chosen": 0, "spline": True,
               **(_sieve_knots(sieves) if sieves else {"sieve_knots": [None] * len(est._members()),
                                                       "reason": "a distributed fit reports the line"})}
    elif rule == "lepski":
        out = _lepski(est, phi)
    elif rule == "discrepancy":
        out = _discrepancy(est)
    elif rule == "projected":
        out = _projected(est)
    elif rule == "held_out":
        out = _held_out(est, comm, phi, t)
    else:
        raise ValueError(f"complexity must be one of {RULES}, got {rule!r}")
    label = labels[out["chosen"]]
    if out.get("spline") and any(k is not None for k in out.get("sieve_knots") or []):
        label = SIEVE_LABEL + (LINE_CONTROLS if label.endswith(LINE_CONTROLS) else "")
    return {"rule": rule, **out, "label": label, "candidates": labels}


def install_choice(est, out: dict) -> None:
    """Every member reports the chosen candidate: its head and draws (the line-or-trained rules keep the head
    as trained, which ``refit_heads`` solved; the family's copy of it is a closed-form re-solve, used for its
    draws; with :data:`FULL_TRAINED_HEAD` the trained head's every-row solve, ``candidates_["trained_full"]``,
    both stages, replaces it), and where the choice is a spline in t the member's sieve
    (:func:`deepcausal._sieve.install`)."""
    keep_trained = out["label"] == TRAINED_LABEL
    knots = out.get("sieve_knots") or [None] * len(est._members())
    for m, k in zip(est._members(), knots):
        full = m.candidates_.get("trained_full") if keep_trained else None  # FULL_TRAINED_HEAD
        if not keep_trained:
            m.heads_.u = m.candidates_["heads"][out["chosen"]].clone()
        elif full is not None:  # both stages' heads of the every-row solve, so that V and u belong together
            m.heads_.u = full["head"].clone()
            m.heads_.V = full["V"].clone().to(m.heads_.V)
        draws = m.candidates_["draws"][out["chosen"]] if full is None else full["draws"]
        m.head_draws_ = draws.clone() if m.head_draws_ is not None else None
        if out.get("spline") and k is not None:
            install(m, m.candidates_["sieve"])
    if _line_band_with_spline(est, out, knots):
        for m, k in zip(est._members(), knots):
            if k is not None:
                attach_band(m, m.candidates_["sieve"])
        with_spline = sum(k is not None for k in knots)
        out["band"] = f"the union of the line's band and Lepski's spline's ({with_spline} of {len(knots)} members)"
        out["verdict"] = held_out_verdict(out)


def _line_band_with_spline(est, out: dict, knots) -> bool:
    """Whether the reported line's band also covers the spline's (:data:`LINE_BAND_WITH_SPLINE`): the held-out rule
    reported the line, some member's Lepski choice is a spline, and the members have draws."""
    return (bool(LINE_BAND_WITH_SPLINE) and out.get("rule") == "held_out" and out["chosen"] == 0
            and not out.get("spline") and any(k is not None for k in knots)
            and all(m.head_draws_ is not None for m in est._members()))
