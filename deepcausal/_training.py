"""One member's training, from its split to its bootstrap draws (DESIGN §3, §4 and §7).

The bones follow skorch's ``net.py``, one function a stage:

    fit_member      initialise: the split into stage halves, the networks, the heads
      └ train       minibatch pairs through train_step; every ``check_every`` steps a check:
                    held_out_losses into the history, early_stopping_check keeps the best state;
                    at the end the kept state is restored
      refit         both heads re-solved on the whole halves by streaming statistics
      summaries and score_bootstrap_heads (:mod:`deepcausal.inference`) for the bands

Per pair of minibatches (b1 ⊂ S1, b2 ⊂ S2), :func:`train_step` runs the three updates:

    stage 1      step the stage-1 nets on (1/n)||target(b1) − F₁(b1) V||²   (target detached)
                 V ← prox(F₁(b1), target(b1); V, λ₁, β₁)
    covariates   step the covariate net on (1/m)||Y(b2) − G(b2) u||²        (stage-1 prediction detached)
                 u ← prox(G(b2), Y(b2); u, λ₂, β₂)
    stage 2      V(target) = prox(F₁(b1), target(b1) WITH grad; V, λ₁₂, β₁)
                 step the stage-2 nets on (1/m)||Y(b2) − G(b2; F₁(b2) V(target)) u||²
                 u ← prox(G(b2) recomputed with the stepped nets, Y(b2); u, λ₂, β₂)

After every backbone step the head it was trained against is re-solved on the stepped features. In
``mode="ridge"`` (all λ = 0, each batch a whole half) every head is also solved on the current
features right before the first step that uses it, so every step sees the exact closed-form heads: the
original full-batch algorithm. In proximal mode the first step of a stage uses the previous head, the
proximal anchor of DESIGN §3. A stage with no gradient steps still re-solves its head once per
minibatch. The estimator only says what F₁, the target and G are (its feature hooks), and how a
prediction is formed.

Networks whose output depends on the mode (batch norm, dropout): heads are always solved on eval-mode
features (running statistics, no dropout) — the features ``predict`` uses — while gradient steps see
train-mode features. "Exact head" therefore means exact for the deterministic eval-mode features; the
envelope property (DESIGN §2) then holds only approximately inside a step. For networks without such
layers the two coincide.

Every update works on a :class:`Member`, the state of one member's training; :mod:`deepcausal._stacked`
runs the same updates on a Member whose fields carry a leading member dimension (K members as one
computation). Early stopping's bookkeeping is :mod:`deepcausal._stopping`.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._complexity import family
from ._screen import net_dims
from ._stopping import check_row, early_stopping_check, ending, new_track, restore, snapshot
from ._modes import diverged, draws_random_numbers, eval_mode, mode_matters, seeded_global_rng
from ._warnings import warn
from .heads import NonFiniteError
from .inference import score_bootstrap_heads
from .nets import build_net, output_dim
from .optim import Adam, annealed_lr
from .twostage import TwoStageHeads, squared_loss

__all__ = ["Half", "Member", "fit_member", "build_nets", "train", "train_step", "held_out_losses", "refit",
           "stage2_summaries"]

_MAX_RECOVERIES = 2  # restarts from the kept check at half the learning rate before a divergence ends training


class Half:
    """One stage half: the (local) data tensors and, per global position, the local row (−1: not here).

    The first ``n_val`` positions of the half are held out (validation rows for the held-out stage
    losses); gradient steps and proximal head updates use the remaining ``n_train`` positions only.
    """

    def __init__(self, tensors: dict, rows: torch.Tensor, n_val: int = 0):
        self.tensors, self.rows = tensors, rows
        self.n_val, self.n_train = int(n_val), len(rows) - int(n_val)

    def take(self, positions: torch.Tensor) -> dict:
        """The locally held rows among these global positions of the half."""
        r = self.rows[positions.to(self.rows.device)]
        r = r[r >= 0]
        return {k: v[r] for k, v in self.tensors.items()}

    def batches(self, size: int, part: str = "all"):
        """The local rows of the half (``part``: "all", "train" or "val") in consecutive batches."""
        rows = {"all": self.rows, "train": self.rows[self.n_val:], "val": self.rows[: self.n_val]}[part]
        local = rows[rows >= 0]
        for lo in range(0, len(local), size):
            r = local[lo : lo + size]
            yield {k: v[r] for k, v in self.tensors.items()}


class Everything:
    """Both stage halves as one: every row, for heads solved without the split (``refit_heads="full"``).
    Its "val" part is the second half's held-out rows."""

    def __init__(self, halves):
        self.halves = halves
        self.n_val = halves[1].n_val

    def batches(self, size: int, part: str = "all"):
        if part == "val":
            yield from self.halves[1].batches(size, "val")
            return
        for half in self.halves:
            yield from half.batches(size, part)


@dataclass
class Member:
    """The state one member's training works on.

    ``est`` supplies the feature hooks and the parameters (``mode``, ``lr``, ...); ``settings`` are
    the resolved training settings (``TwoStageEstimator._settings``); ``comm`` the collectives of a
    distributed fit (no-ops in one process); ``gen`` the member's own generator (batch order).
    """

    est: Any
    nets: nn.ModuleDict
    heads: TwoStageHeads
    halves: Tuple[Half, Half]
    settings: dict
    comm: Any
    gen: torch.Generator
    opts: Dict[str, Adam] = field(default_factory=dict)
    progress: Optional[Callable] = None  # progress(steps since the last report, held-out loss)


# ---- initialise ---------------------------------------------------------------------------------
def fit_member(est, prepared: dict, seed: int, validation, progress: Optional[Callable] = None):
    """Train one member (all of a single fit) and set its fitted attributes on ``est``: its split,
    networks, heads (as trained and refit), stage-2 summaries and bootstrap draws. Returns ``est``.
    ``progress(steps, held_out_loss)`` hears of the steps at each check (:mod:`deepcausal._progress`)."""
    est._set_shared(prepared)
    with ExitStack() as global_rng:
        member = start_member(est, prepared, seed, global_rng, progress)
        truth_val = None
        if validation is not None:
            truth_val = (est._prediction_inputs(*validation[0]), validation[1])
        history, stop = train(member, truth_val)
    return finish_member(member, history, stop)


def start_member(est, prepared: dict, seed: int, global_rng: ExitStack, progress=None) -> Member:
    """A member ready to train: its split into stage halves, its networks and empty heads.

    The networks are initialised from torch's global generator, seeded with the member's seed (user-supplied
    factories draw from it too); the split, batches and bootstrap draw from the member's own generator
    ``gen``. The global one is shared by every thread of the process, so the seeded block (entered on
    ``global_rng``) holds a lock: members fitted in threads stay bit-identical. It is closed here unless
    training itself draws from it (dropout)."""
    comm, settings, device = prepared["comm"], prepared["settings"], est.device_
    n, n1, offset, n_local = prepared["n"], prepared["n1"], prepared["offset"], prepared["n_local"]
    global_rng.enter_context(seeded_global_rng(seed, device))
    gen = torch.Generator().manual_seed(seed)
    # local row of each global position (−1 where another rank owns the row)
    rows = torch.randperm(n, generator=gen) - offset
    rows[(rows < 0) | (rows >= n_local)] = -1
    n_val = settings["n_val"]
    halves = (Half(prepared["tensors"], rows[:n1].to(device), n_val),
              Half(prepared["tensors"], rows[n1:].to(device), n_val))
    nets = build_nets(est, net_dims(est), device)
    if not draws_random_numbers(nets):
        global_rng.close()  # training never reads the global generator: let other members build theirs
    heads = TwoStageHeads(settings["lam1"], settings["lam2"], settings["lam12"], est.beta1, est.beta2,
                          reducer=comm.reduce_stats if comm.active else None)
    return Member(est, nets, heads, halves, settings, comm, gen, progress=progress)


def finish_member(member: Member, history: List[dict], stop: dict):
    """After training: the heads refit, the summaries and bootstrap draws; sets the fitted attributes of the
    member's estimator and returns it."""
    est, nets, heads, halves, settings, comm = (member.est, member.nets, member.heads, member.halves,
                                                member.settings, member.comm)
    device = est.device_
    heads.release_features()
    bootstrap_seed = int(torch.randint(0, 2**62, (1,), generator=member.gen))
    current = TwoStageHeads(**head_coefficients(heads))
    current.load_state_dict({k: v.clone() for k, v in heads.state_dict().items()})
    full = est.refit_heads == "full"
    if est.refit_heads:
        refit(est, nets, heads, halves, settings["batch_size"], full=full)
    # A fitted model's networks stay in eval mode: predictions never switch modes, so predictions
    # in several threads at once cannot see each other's mode (see _modes.predicting).
    nets.eval()
    with torch.no_grad():
        # With full-sample heads both stages (and the stage-2 averages a prediction needs) use every row.
        stages = (Everything(halves), Everything(halves)) if full else halves
        summaries = stage2_summaries(est, nets, stages[1].batches(4096), comm)
        # The complexity family (deepcausal._complexity); without bands "linear" needs it too: 2 draws, dropped.
        found = (family(est, nets, heads, stages, max(int(est.n_bootstrap), 2), bootstrap_seed, comm, device,
                        full=full, rule=settings["complexity"]) if settings.get("complexity", "trained") != "trained"
                 else None)
        if found is not None and _full_trained_head(est, settings, full):
            # the trained head solved on every row with its draws (deepcausal._complexity.FULL_TRAINED_HEAD)
            every = Everything(halves)
            zero = torch.zeros(1, heads.u.shape[0], dtype=torch.float64, device=device)  # the trained head: no penalty
            _, _, whole = score_bootstrap_heads(est, nets, (every, every), max(int(est.n_bootstrap), 2),
                                                bootstrap_seed, comm, penalties=zero, same_rows=True)
            found[2]["trained_full"] = {"head": whole["heads"][0], "draws": whole["draws"][0], "V": whole["V"]}
        draws, summary_draws, candidates = found or (*(score_bootstrap_heads(
            est, nets, stages, int(est.n_bootstrap), bootstrap_seed, comm, same_rows=full)
            if est.n_bootstrap else (None, None)), None)
        if not est.n_bootstrap:
            draws = summary_draws = None

    est.nets_, est.heads_, est.current_heads_ = nets, heads, current
    est.summaries_, est.head_draws_, est.summary_draws_ = summaries, draws, summary_draws
    est.candidates_ = candidates
    est.history_ = pd.DataFrame(history)
    est.stopping_ = stop
    return est


def _full_trained_head(est, settings: dict, full: bool) -> bool:
    """Whether a member computes its trained head's every-row solve: the held-out rule's fits whose heads are
    re-solved on the halves (``refit_heads=True``), with :data:`deepcausal._complexity.FULL_TRAINED_HEAD` set."""
    from . import _complexity

    return (settings.get("complexity") == "held_out" and bool(_complexity.FULL_TRAINED_HEAD)
            and bool(est.refit_heads) and not full)


def head_coefficients(heads: TwoStageHeads) -> dict:
    return dict(lam1=heads.lam1, lam2=heads.lam2, lam12=heads.lam12, beta1=heads.beta1, beta2=heads.beta2)


def build_nets(est, dims: dict, device) -> nn.ModuleDict:
    """One network per entry of ``est._nets`` whose inputs are present (covariates X are optional
    inputs of the nets that also read other roles; the covariate net needs them)."""
    nets = nn.ModuleDict()
    for name, (param, keys, _) in est._nets.items():
        present = [k for k in keys if dims.get(k) is not None]
        if not present or any(k != "X" and dims.get(k) is None for k in keys):
            continue
        d_in = sum(dims[k] for k in present)
        default = partial(est._default_net, d_out=est._default_widths.get(param, 16))
        net = build_net(getattr(est, param), d_in, param, default).to(device)
        output_dim(net, d_in, param, device)  # fail early, naming the role, if it does not fit
        nets[name] = net
    sieve = getattr(est, "sieve_", None)
    if sieve is not None:  # a loaded member that reports its spline in t (deepcausal._sieve)
        from ._sieve import SplineTerms

        nets["treatment"] = SplineTerms(nets["treatment"], sieve["knots"]).to(device)
    nets._deepcausal_mode_matters = mode_matters(nets)  # cached for eval_mode and the training loop
    return nets


def optimisers(est, nets: nn.ModuleDict) -> dict:
    """One Adam per optimiser group of ``est._nets`` (stage1, covariate, stage2)."""
    groups: Dict[str, list] = {}
    for name, (_, _, group) in est._nets.items():
        if name in nets:
            groups.setdefault(group, []).extend(nets[name].parameters())
    # deepcausal.optim.Adam: PyTorch's Adam update without torch.optim's import of torch._dynamo,
    # which costs seconds in every fresh process (each parallel ensemble member).
    # treatment_weight_decay: an L2 term on the treatment network only, in whichever group trains it.
    wd = float(est.treatment_weight_decay)
    treatment = list(nets["treatment"].parameters()) if wd and "treatment" in nets else []
    ids = {id(q) for q in treatment}
    return {g: Adam(p, lr=float(est.lr), weight_decay=wd if any(id(q) in ids for q in p) else 0.0,
                    decayed=treatment) for g, p in groups.items() if p}


# ---- steps and checks ---------------------------------------------------------------------------
def train(member: Member, truth_val) -> Tuple[List[dict], dict]:
    """Minibatch epochs with a check every ``check_every`` steps: held-out stage losses into the
    history and, with early stopping, a copy of the best state, restored at the end.

    Returns the history rows and a description of how training ended (``stopping_``): its
    ``reason`` is "max_steps", "early_stopping", "interrupted" (Ctrl-C) or "diverged". A non-finite
    loss after early stopping has kept a state sends training back to that state at half the learning
    rate (``recoveries`` lists the steps, each with a ``RuntimeWarning``); a divergence after
    ``_MAX_RECOVERIES`` of those ends training with the kept state restored ("diverged").
    """
    est, nets, heads, halves, st, comm, gen = (member.est, member.nets, member.heads, member.halves,
                                               member.settings, member.comm, member.gen)
    n1, n2 = halves[0].n_train, halves[1].n_train
    steps_per_epoch, check_every = st["steps_per_epoch"], st["check_every"]
    member.opts = optimisers(est, nets)
    history: List[dict] = []
    track = new_track()
    step, reason = 0, "max_steps"
    recoveries: List[int] = []  # steps at which training diverged and went back to the kept check
    report = member.progress or (lambda steps, held_out=None: None)
    reported = 0
    try:
        while step < st["max_steps"] and reason == "max_steps":
            # a new epoch: one random order of each half's training rows (after its held-out rows)
            p1 = (torch.randperm(n1, generator=gen) + halves[0].n_val).tensor_split(steps_per_epoch)
            p2 = (torch.randperm(n2, generator=gen) + halves[1].n_val).tensor_split(steps_per_epoch)
            losses, since_check = np.zeros(2), 0
            for i1, i2 in zip(p1, p2):
                rate = set_learning_rate(member, step, halvings=len(recoveries))
                try:
                    losses += train_step(member, halves[0].take(i1), halves[1].take(i2))
                except FloatingPointError as exc:
                    # A non-finite loss after a check was kept: go back to that check with half the
                    # rate and fresh optimiser moments (the diverged ones may hold inf), and go on.
                    # Measured at 10⁶ rows: a DFIV fit diverged after 5,000 good steps, losing the
                    # remaining two thirds of its budget. Without a kept state, with several processes
                    # (the others would wait in a collective), or after _MAX_RECOVERIES, it ends below.
                    if track["state"] is None or comm.active or len(recoveries) >= _MAX_RECOVERIES:
                        raise
                    kept = history[track["row"]]
                    recoveries.append(step + 1)
                    warn(f"training diverged at step {step + 1} ({exc}); training goes on from the "
                         f"check at step {kept['step']} at {0.5 ** len(recoveries):g} times the "
                         "learning rate", RuntimeWarning)
                    restore(nets, heads, track["state"])
                    member.opts = optimisers(est, nets)
                    continue  # the failed step is not counted; the next minibatch pair takes its place
                step, since_check = step + 1, since_check + 1
                if since_check < check_every and step % steps_per_epoch and step < st["max_steps"]:
                    continue
                row = check_row(step, steps_per_epoch, rate, losses, since_check, comm)
                losses, since_check = np.zeros(2), 0
                row.update(held_out_losses(est, nets, heads, halves, comm))
                if truth_val is not None:
                    row.update(validation_mse(est, nets, heads, halves, st, comm, *truth_val))
                history.append(row)
                report(step - reported, row.get("val_stage2_loss"))
                reported = step
                if "val_stage2_loss" in row and st["early_stopping"]:
                    if early_stopping_check(track, row, len(history) - 1, partial(snapshot, nets, heads),
                                            st["patience"]):
                        reason = "early_stopping"
                        break
                if step >= st["max_steps"]:
                    break
    except KeyboardInterrupt:
        reason = "interrupted"
        warn(f"training interrupted after {step} step(s); the model is usable")
    except FloatingPointError as exc:
        # Diverged again after _MAX_RECOVERIES restarts: the kept state is the model, as if early stopping
        # had ended training there. Without a kept state, or with several processes, it is an error.
        if track["state"] is None or comm.active:
            raise
        reason = "diverged"
        kept = history[track["row"]]
        warn(f"training diverged at step {step + 1} ({exc}) after {len(recoveries)} restart(s) at a "
             f"lower learning rate; the model of the check at step {kept['step']} (held-out stage-2 "
             f"loss {kept['val_stage2_loss']:.4g}) is kept", RuntimeWarning)
    finally:
        report(st["max_steps"] - reported)  # the steps an early stop saved count as done
    return history, ending(nets, heads, history, track, reason, step, steps_per_epoch, recoveries)


@torch.no_grad()
def held_out_losses(est, nets, heads, halves, comm) -> dict:
    """Held-out stage losses with the current heads (DESIGN §7), mean over held-out rows:

    stage 1: ||target − F₁ V||², stage 2: ||Y − G(F₁ V) u||² (the projected risk plus noise).
    Floats for one member; arrays with one entry per member for a stack (:mod:`deepcausal._stacked`).
    """
    if halves[0].n_val == 0:
        return {}
    z = dict(dtype=torch.float64, device=heads.V.device)
    lead = heads.V.shape[:-2]  # () for one member, (K,) for a stack
    sums, counts = [torch.zeros(lead, **z), torch.zeros(lead, **z)], np.zeros(2)
    t_sum, t_sq = torch.zeros(*lead, heads.V.shape[-1], **z), torch.zeros(lead, **z)  # target column sums, squares
    with eval_mode(nets):
        for b in halves[0].batches(4096, "val"):
            target = est._stage1_target(nets, b)
            sums[0] += squared_loss(est._stage1_features(nets, b), target, heads.V, 1).double()
            counts[0] += b["Y"].shape[-2]
            t_sum, t_sq = t_sum + target.double().sum(-2), t_sq + (target.double() ** 2).sum((-2, -1))
        for b in halves[1].batches(4096, "val"):
            sums[1] += squared_loss(est._projected_features(nets, heads.V, b), b["Y"], heads.u, 1).double()
            counts[1] += b["Y"].shape[-2]
    sums, counts = [comm.sum(v).cpu().numpy() for v in sums], [comm.sum_float(v) for v in counts]
    # R² of the stage-1 head: 1 − SSE / Σ (target − its held-out column mean)²
    total = comm.sum(t_sq).cpu().numpy() - (comm.sum(t_sum) ** 2).sum(-1).cpu().numpy() / counts[0]
    r2 = np.where(total > 0, 1.0 - sums[0] / np.where(total > 0, total, 1.0), np.nan)
    out = {"val_stage1_loss": sums[0] / counts[0], "val_stage2_loss": sums[1] / counts[1], "val_stage1_r2": r2}
    return {k: float(v) for k, v in out.items()} if not lead else out


def set_learning_rate(member: Member, step: int, halvings: int = 0) -> float:
    """The learning rate of minibatch step ``step`` (the schedule of ``settings``, halved once per restart after a
    divergence), set in every optimiser of the member; returns it."""
    est, st = member.est, member.settings
    rate = annealed_lr(est.lr, step, st["max_steps"]) if st.get("lr_schedule") == "annealed" else float(est.lr)
    rate *= 0.5 ** halvings
    for opt in member.opts.values():
        opt.param_groups[0]["lr"] = rate
    return rate


def train_step(member: Member, b1: dict, b2: dict) -> np.ndarray:
    """One pair of minibatches through the three updates; returns (stage-1, stage-2) losses.

    Each update is :func:`run_stage`: gradient steps on the stage loss, each followed by a head
    solve on the stepped features. In ``mode="ridge"`` (exact heads) the head is also solved
    on the current features *before* the first step, because the networks changed since it
    was last solved (stage 2 moves ψ, which moves the stage-1 target). In proximal mode the
    first step uses the previous head, as DESIGN §3 prescribes. A stage with zero steps still
    solves its head once, so no head is ever left frozen.

    Losses are normalised by the global batch sizes, so that with torch.distributed the summed
    gradients of the ranks are the gradient of the whole global batch.
    """
    comm = member.comm
    m1, m2 = (int(comm.sum_float(b["Y"].shape[-2])) for b in (b1, b2))
    if member.nets._deepcausal_mode_matters:
        member.nets.train()
    loss1, F1_b1, F1_b2, hat_b2 = stage1_update(member, b1, b2, m1)
    covariate_update(member, b2, hat_b2, m2)
    loss2 = stage2_update(member, b1, b2, F1_b1, F1_b2, m2)
    return np.array(np.broadcast_arrays(loss1, loss2))  # (2,), or (2, K) for a stack


def _exact(member: Member) -> bool:
    return member.est.mode == "ridge"


def _shared_features(member: Member) -> bool:
    return not member.nets._deepcausal_mode_matters


def stage1_update(member: Member, b1: dict, b2: dict, m1: int):
    """Stage-1 steps on b1 and their head solves; returns the loss, F₁(b1) (None when the solve used
    eval-mode features that the steps did not), F₁(b2) and the stage-1 prediction F₁(b2) V."""
    est, nets, heads = member.est, member.nets, member.heads
    with diverged("stage 1"):
        with torch.no_grad():
            target1 = est._stage1_target(nets, b1)
        loss1, F1_b1 = run_stage(
            nets, member.settings["stage1_iter"], _exact(member) or heads.V is None, _shared_features(member),
            member.opts, "stage1", member.comm,
            features=lambda: est._stage1_features(nets, b1),
            loss=lambda F: squared_loss(F, target1, heads.V, m1),
            solve=lambda F: heads.stage1_update(F, target1))
        with eval_mode(nets):
            if F1_b1 is None:
                F1_b1 = est._stage1_features(nets, b1)
            F1_b2 = est._stage1_features(nets, b2)
            hat_b2 = F1_b2 @ heads.V.to(F1_b2.dtype)
    return loss1, F1_b1, F1_b2, hat_b2


def _solve_u(member: Member, b2: dict, hat: torch.Tensor) -> None:
    """u ← the stage-2 head update on eval-mode features G(b2) at the stage-1 prediction ``hat``."""
    with eval_mode(member.nets):
        member.heads.stage2_update(member.est._stage2_features(member.nets, b2, hat, False), b2["Y"])


def covariate_update(member: Member, b2: dict, hat_b2: torch.Tensor, m2: int) -> None:
    """Covariate-network steps on b2 with the stage-1 prediction held fixed, and their u solves (the
    first u is solved here when there is no covariate network)."""
    est, nets, heads = member.est, member.nets, member.heads
    with diverged("covariate stage"):
        if "covariate" in member.opts:
            run_stage(
                nets, member.settings["covariate_iter"], _exact(member) or heads.u is None, _shared_features(member),
                member.opts, "covariate", member.comm,
                features=lambda: est._stage2_features(nets, b2, hat_b2, True),
                loss=lambda G: squared_loss(G, b2["Y"], heads.u, m2),
                solve=lambda G: heads.stage2_update(G, b2["Y"]))
        elif heads.u is None:
            _solve_u(member, b2, hat_b2)


def stage2_update(member: Member, b1: dict, b2: dict, F1_b1, F1_b2, m2: int) -> float:
    """Stage-2 steps through the λ₁₂ refit of V (the gradient reaches the stage-1 target's networks),
    each followed by the refit without graph and the u solve; returns the last step's loss."""
    est, nets, heads, st = member.est, member.nets, member.heads, member.settings
    exact = _exact(member)
    with diverged("stage 2"):
        def refit_V():  # λ₁₂ refit on the current ψ, without graph; exact mode keeps it as V
            with eval_mode(nets):
                V = heads.stage1_refit(F1_b1, est._stage1_target(nets, b1))
            if exact:
                heads.V = V
            return V

        def step2():
            V = heads.stage1_refit(F1_b1, est._stage1_target(nets, b1))  # λ₁₂ refit, grad into target
            G = est._stage2_features(nets, b2, F1_b2 @ V.to(F1_b2.dtype), False)
            return descend(member.opts, "stage2", squared_loss(G, b2["Y"], heads.u, m2), member.comm)

        loss2 = 0.0
        if exact:
            _solve_u(member, b2, F1_b2 @ refit_V().to(F1_b2.dtype))
        for _ in range(st["stage2_iter"]):
            loss2 = step2()
            _solve_u(member, b2, F1_b2 @ refit_V().to(F1_b2.dtype))
        if st["stage2_iter"] == 0 and not exact:
            _solve_u(member, b2, F1_b2 @ refit_V().to(F1_b2.dtype))
    return loss2


def run_stage(nets, n_steps: int, solve_first: bool, share: bool, opts, group: str, comm, *, features, loss, solve):
    """``n_steps`` × (gradient step on ``loss(features())``, head ``solve`` on the stepped features),
    with a solve before the first step when ``solve_first``; at least one solve happens.

    With ``share`` (networks whose output does not depend on train/eval mode) one feature pass
    serves both the solve after a step and the loss of the next step (its graph is kept), so
    each update costs one forward pass instead of two. Otherwise the solve uses eval-mode
    features and the step train-mode ones. Returns the last step's loss (0 without steps) and
    the last detached features the head was solved on (None when they were eval-mode ones).
    """

    def fresh(grad: bool):
        if share:
            with torch.set_grad_enabled(grad):
                return features()
        with eval_mode(nets):
            return features()

    last_loss, F = 0.0, None
    if solve_first or n_steps == 0:
        F = fresh(n_steps > 0 and share)
        solve(F.detach())
    for i in range(n_steps):
        if F is None or not share:
            F = features()  # train mode, with graph
        last_loss = descend(opts, group, loss(F), comm)
        F = fresh(share and i < n_steps - 1)
        solve(F.detach())
    return last_loss, (F.detach() if share and F is not None else None)


def descend(opts, group, loss, comm):
    """One optimiser step of ``group`` on ``loss`` (gradients summed over the ranks); returns its value,
    an array of one loss per member for a stack (whose members' losses are summed: each member's
    parameters get their own loss's gradient)."""
    value = loss.item() if not loss.ndim else loss.detach().cpu().numpy()  # one read serves check and history
    if not np.isfinite(value).all():
        raise NonFiniteError(f"the loss became {value}")
    if group not in opts:
        return value
    opt = opts[group]
    opt.zero_grad(set_to_none=True)
    (loss.sum() if loss.ndim else loss).backward()
    comm.sum_gradients(p for g in opt.param_groups for p in g["params"])
    opt.step()
    return value


# ---- refit and summaries ------------------------------------------------------------------------
def refit(est, nets, heads, halves, batch_size, full: bool = False):
    """Both heads re-solved by streaming sufficient statistics (DESIGN §2): stage 1 on the whole first
    half and stage 2 on the whole second half or, ``full``, both on every row (2SLS on the learned
    features, without the split: measured in RESULTS.md, "Diagnosis: which term makes DFIV's error")."""
    size = max(batch_size, 1024)
    stages = (Everything(halves), Everything(halves)) if full else halves
    with eval_mode(nets):
        heads.refit_stage1(
            (est._stage1_features(nets, b), est._stage1_target(nets, b)) for b in stages[0].batches(size)
        )
        V = heads.V
        heads.refit_stage2(
            (est._projected_features(nets, V, b), b["Y"])
            for b in stages[1].batches(size)
        )


def validation_mse(est, nets, heads, halves, settings, comm, inputs, truth) -> dict:
    """Structural MSE against a known truth with the current and with refit heads (``validation``)."""
    summaries = stage2_summaries(est, nets, halves[1].batches(4096), comm)
    refitted = TwoStageHeads(**head_coefficients(heads), reducer=heads.reducer)
    refit(est, nets, refitted, halves, settings["batch_size"])
    out = {}
    for label, h in (("val_mse_current", heads), ("val_mse_refit", refitted)):
        pred = predict_std(est, nets, h, summaries, inputs)
        out[label] = float(np.mean((pred - truth) ** 2))
    return out


def predict_std(est, nets, heads, summaries, inputs: dict, size: int = 8192) -> np.ndarray:
    """Predictions in outcome units with given networks, heads and summaries (used in training)."""
    n = next(iter(inputs.values())).shape[0]
    out = []
    with eval_mode(nets):
        for lo in range(0, n, size):
            G = est._predict_features(nets, {k: v[lo : lo + size] for k, v in inputs.items()}, summaries)
            out.append((G.double() @ heads.u.to(device=G.device, dtype=torch.float64))[:, 0].cpu().numpy())
    return est._to_outcome(np.concatenate(out))


def stage2_summaries(est, nets, batches_s2, comm) -> dict:
    """The fitted summaries of the stage-2 rows a prediction needs: the means of the estimator's
    per-row ``_summary_terms``, turned into summaries by its ``_summaries_from_means``."""
    sums, n = {}, 0
    with eval_mode(nets):
        for b in batches_s2:
            for name, t in est._summary_terms(nets, b).items():
                sums[name] = sums.get(name, 0.0) + t.sum(0)
            n += b["Y"].shape[0]
    if not sums:
        return {}
    n = comm.sum_float(n)
    return est._summaries_from_means({k: comm.sum(v) / n for k, v in sums.items()})
