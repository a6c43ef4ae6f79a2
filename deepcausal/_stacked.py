"""Ensemble members trained as one stacked computation (issue 29).

A default member's step is a few dozen small matrix products, each paying a fixed cost (Python, dispatch,
autograd) beside its arithmetic. K members of the same shapes are trained here as one computation, which
pays the fixed costs once for all K:
every network weight carries a leading member dimension (``StackedMLP``: (K, a, b) weights, batched
products), every minibatch is (K, B, d) — member k's rows of its own split, in its own batch order —
and the heads are K independent systems solved by one batched Cholesky (:mod:`deepcausal.heads` accepts a
leading member dimension). The stage losses are summed over the members, so each member's parameters get
exactly the gradient of their own loss, and Adam works element by element: in exact arithmetic a stack
trains each member as it would be trained alone.

What is and is not invariant, in float32:

* A fit is bit-identical for a given ``random_state`` whatever ``n_jobs`` is: the stacks depend on the
  number of members only (:func:`fit_members_stacked`; tests/test_stacked.py).
* A member trained in a stack is **not** bit-identical to the same member (same seed, split, initial
  weights and batch order) trained alone: batched products and reductions round differently from single
  ones, and so does a member's place in its stack. The first differences are float32 rounding; training
  is chaotic, so they grow (to about 1% by step 30 in the measurement of issue 34), and after tens of steps
  the early-stopping step, the kept check and, through the member's generator, the bootstrap draws can
  differ too. Stacked and lone members are equivalent statistically, not numerically: benchmarks/RESULTS.md,
  "Stacked members: coverage against members trained alone (issue 29)" measures the coverage, band width
  and error of both.

The training step itself is :func:`deepcausal._training.train_step`, run on a :class:`~deepcausal._training.Member`
whose fields carry the member dimension; only the loop differs from :func:`deepcausal._training.train`:
each member keeps its own history and early-stopping state, and a member that stops is frozen (its
gradients are zeroed) while the others go on. Afterwards each member's slice goes back into its own
networks and heads, and the rest of the fit (refit, summaries, bootstrap) is the one-member code.

Stacking applies to networks it can stack — deepcausal's default vector networks (ReLU MLPs, with or
without the input kept beside them) — in proximal (minibatch) mode, in one process. A validation design
(``fit(validation=...)``) only adds each member's structural MSE to its history (:func:`_validation_mse`):
it does not change which code trains the members, so it does not change the model. Anything else, or a
divergence inside a stack (which the one-member loop can recover from), trains each member alone. On the
2-core project machine the arithmetic is a large share of a step, so a stack of three trains in about 1.65×
one member's time, not 1×; the whole default fit's gain is measured in benchmarks/RESULTS.md, "Whole
default fit".
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from typing import List, Sequence

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs
from torch import nn

from ._stopping import check_row, early_stopping_check, ending, new_track
from . import _training
from ._training import (Member, finish_member, head_coefficients, optimisers, set_learning_rate, start_member,
                        train_step)
from ._warnings import recording, warn
from .ensemble import _fit_one, one_torch_thread
from .nets import _RMS_EPS, SkipMLP
from .twostage import TwoStageHeads

__all__ = ["StackedMLP", "StackedHalf", "stackable", "train_stacked", "fit_members_stacked"]

_STACK = 3  # members per stack at most (see fit_members_stacked)


def _layers(net: nn.Module):
    """The Linear/ReLU layers of a default vector network, or None when it is anything else."""
    seq = net.mlp if type(net) is SkipMLP else net
    if type(seq) is not nn.Sequential or nn.utils.parametrize.is_parametrized(seq):
        return None
    layers = list(seq)
    if not layers or any(type(m) not in (nn.Linear, nn.ReLU) or (type(m) is nn.Linear and m.bias is None)
                         for m in layers):
        return None
    return layers


def stackable(nets_of_members: Sequence[nn.ModuleDict]) -> bool:
    """Whether these members' networks can train as one stack: the same roles, each a default vector
    network (:func:`deepcausal.nets.mlp` or :class:`deepcausal.nets.SkipMLP`) of the same shapes."""
    first = nets_of_members[0]
    for nets in nets_of_members:
        if list(nets) != list(first):
            return False
        for name in first:
            a, b = _layers(first[name]), _layers(nets[name])
            if a is None or b is None or type(first[name]) is not type(nets[name]):
                return False
            if [tuple(p.shape) for p in first[name].parameters()] != [tuple(p.shape) for p in nets[name].parameters()]:
                return False
            if type(first[name]) is SkipMLP and first[name].normalize != nets[name].normalize:
                return False
    return True


class StackedMLP(nn.Module):
    """K networks of one default shape as one module. Shapes: (K, n, d_in) → (K, n, d_out).

    Built from K networks of the same shape (:func:`stackable`), whose weights are copied, so each member
    starts from the weights it would have alone; :meth:`unstack_into` writes member k's weights back.
    """

    def __init__(self, nets: Sequence[nn.Module]):
        super().__init__()
        self.skip = type(nets[0]) is SkipMLP
        self.normalize = self.skip and nets[0].normalize
        per_member = [_layers(n) for n in nets]
        self.kinds = [type(m).__name__ for m in per_member[0]]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        with torch.no_grad():
            for j, kind in enumerate(self.kinds):
                if kind == "Linear":  # x Wᵀ + b, stored as (K, d_in, d_out) for baddbmm
                    self.weights.append(nn.Parameter(torch.stack([m[j].weight.T for m in per_member]).contiguous()))
                    self.biases.append(nn.Parameter(torch.stack([m[j].bias[None] for m in per_member]).contiguous()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, i = x, 0
        for kind in self.kinds:
            if kind == "Linear":
                h = torch.baddbmm(self.biases[i], h, self.weights[i])
                i += 1
            else:
                h = torch.relu(h)
        if self.normalize:  # SkipMLP's row normalisation (deepcausal.nets)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + _RMS_EPS)
        return torch.cat([x, h], dim=-1) if self.skip else h

    @torch.no_grad()
    def unstack_into(self, k: int, net: nn.Module) -> None:
        """Copy member k's weights into ``net``, a network of the shape the stack was built from."""
        linears = [m for m in _layers(net) if type(m) is nn.Linear]
        for m, W, b in zip(linears, self.weights, self.biases):
            m.weight.copy_(W[k].T)
            m.bias.copy_(b[k, 0])


class StackedHalf:
    """One stage half of K members: each member's rows of its own split, taken together as (K, B, d)."""

    def __init__(self, halves):
        self.tensors = halves[0].tensors
        self.rows = torch.stack([h.rows for h in halves])  # (K, n_half), local rows (one process: all ≥ 0)
        self.n_val, self.n_train = halves[0].n_val, halves[0].n_train

    def take(self, positions: torch.Tensor) -> dict:
        """Member k's rows at its positions ``positions[k]``: (K, B) → tensors of (K, B, d)."""
        r = torch.gather(self.rows, 1, positions)
        return {k: v[r] for k, v in self.tensors.items()}

    def batches(self, size: int, part: str = "all"):
        rows = {"all": self.rows, "train": self.rows[:, self.n_val:], "val": self.rows[:, : self.n_val]}[part]
        for lo in range(0, rows.shape[1], size):
            r = rows[:, lo : lo + size]
            yield {k: v[r] for k, v in self.tensors.items()}


def _member_state(nets: nn.ModuleDict, heads: TwoStageHeads, k: int) -> dict:
    """Member k's slice of the stack: what early stopping keeps (a copy)."""
    return {"nets": {name: [p[k].detach().clone() for p in net.parameters()] for name, net in nets.items()},
            "heads": {"V": heads.V[k].clone(), "u": heads.u[k].clone()}}


def train_stacked(members: List[Member], caught: List[List[str]], truth_val=None):
    """Train K members as one stack; returns each member's (history, stop), as :func:`deepcausal._training.train`
    does for one, with the kept state of each written into its own networks and heads. ``caught[k]`` receives
    member k's warnings. ``truth_val`` (prediction inputs, truth) adds each member's structural MSE to its history
    at every check, as :func:`deepcausal._training.train` does (it does not change the training). A divergence
    raises ``FloatingPointError`` (the caller trains the members alone)."""
    K, first = len(members), members[0]
    est, st, comm = first.est, first.settings, first.comm
    nets = nn.ModuleDict({name: StackedMLP([m.nets[name] for m in members]) for name in first.nets})
    nets._deepcausal_mode_matters = False
    heads = TwoStageHeads(**head_coefficients(first.heads))
    halves = tuple(StackedHalf([m.halves[i] for m in members]) for i in range(2))
    stack = Member(est, nets, heads, halves, st, comm, gen=None)
    stack.opts = optimisers(est, nets)
    # A member that stopped is frozen: its gradients are zeroed (once one has stopped; a multiplication per
    # parameter and backward pass costs nothing worth saving before that).
    active, frozen = torch.ones(K, 1, 1, device=est.device_), [False]
    for p in nets.parameters():
        p.register_hook(lambda g: g * active.to(g.dtype) if frozen[0] else g)
    n1, n2 = halves[0].n_train, halves[1].n_train
    steps_per_epoch, check_every, max_steps = st["steps_per_epoch"], st["check_every"], st["max_steps"]
    histories, tracks = [[] for _ in members], [new_track() for _ in members]
    reasons, steps, reported = ["max_steps"] * K, [0] * K, [0] * K
    report = [m.progress or (lambda steps, held_out=None: None) for m in members]
    step = 0

    def orders(n, offset):
        # a new epoch for each member still training, from its own generator (a stopped one draws nothing,
        # so its generator, and with it its bootstrap seed, is what it would be after training alone)
        return torch.stack([torch.randperm(n, generator=m.gen) if reasons[k] == "max_steps" else torch.arange(n)
                            for k, m in enumerate(members)]) + offset

    try:
        while step < max_steps and "max_steps" in reasons:
            p1 = orders(n1, halves[0].n_val).tensor_split(steps_per_epoch, dim=1)
            p2 = orders(n2, halves[1].n_val).tensor_split(steps_per_epoch, dim=1)
            losses, since_check = np.zeros((2, K)), 0
            for i1, i2 in zip(p1, p2):
                rate = set_learning_rate(stack, step)
                losses += train_step(stack, halves[0].take(i1), halves[1].take(i2))
                step, since_check = step + 1, since_check + 1
                if since_check < check_every and step % steps_per_epoch and step < max_steps:
                    continue
                held = _training.held_out_losses(est, nets, heads, halves, comm)
                for k in range(K):
                    if reasons[k] != "max_steps":
                        continue
                    row = check_row(step, steps_per_epoch, rate, losses[:, k], since_check, comm)
                    row.update({name: float(np.broadcast_to(v, (K,))[k]) for name, v in held.items()})
                    if truth_val is not None:
                        row.update(_validation_mse(members[k], nets, heads, k, truth_val))
                    histories[k].append(row)
                    report[k](step - reported[k], row.get("val_stage2_loss"))
                    steps[k] = reported[k] = step
                    if "val_stage2_loss" in row and st["early_stopping"] and early_stopping_check(
                            tracks[k], row, len(histories[k]) - 1, lambda k=k: _member_state(nets, heads, k),
                            st["patience"]):
                        reasons[k], frozen[0] = "early_stopping", True
                        active[k] = 0.0
                losses, since_check = np.zeros((2, K)), 0
                if step >= max_steps or "max_steps" not in reasons:
                    break
    except KeyboardInterrupt:
        for k in range(K):
            if reasons[k] == "max_steps":
                reasons[k], steps[k] = "interrupted", step
                with recording() as w:
                    warn(f"training interrupted after {step} step(s); the model is usable")
                caught[k].extend(w)
    finally:
        for k in range(K):
            report[k](max_steps - reported[k])  # the steps an early stop saved count as done

    out = []
    for k, m in enumerate(members):
        for name, net in nets.items():
            net.unstack_into(k, m.nets[name])
        m.heads.load_state_dict({"V": heads.V[k].clone(), "u": heads.u[k].clone()})
        track = tracks[k]
        if track["state"] is not None:  # ending() restores the kept state: give it the member's own form
            track["state"] = _own_state(m, track["state"])
        with recording() as w:
            stop = ending(m.nets, m.heads, histories[k], track, reasons[k], steps[k], steps_per_epoch, [])
        caught[k].extend(w)
        out.append((histories[k], stop))
    return out


@torch.no_grad()
def _validation_mse(member: Member, nets: nn.ModuleDict, heads: TwoStageHeads, k: int, truth_val) -> dict:
    """Member k's structural MSE against the validation truth (:func:`deepcausal._training.validation_mse`),
    computed on the member's own networks and heads with the stack's current slice copied into them: only
    read, so recording it does not change the training (the end of training copies the kept slice again)."""
    for name, net in nets.items():
        net.unstack_into(k, member.nets[name])
    own = TwoStageHeads(**head_coefficients(member.heads))
    own.load_state_dict({"V": heads.V[k].clone(), "u": heads.u[k].clone()})
    return _training.validation_mse(member.est, member.nets, own, member.halves, member.settings, member.comm,
                                    *truth_val)


def _own_state(member: Member, state: dict) -> dict:
    """A stack slice (:func:`_member_state`) as the state_dicts of the member's own networks and heads."""
    own = {}
    for name, params in state["nets"].items():
        linears = [(f"{name}.{prefix}{j}", m) for prefix, layers in
                   [("mlp." if type(member.nets[name]) is SkipMLP else "", _layers(member.nets[name]))]
                   for j, m in enumerate(layers) if type(m) is nn.Linear]
        Ws, bs = params[: len(params) // 2], params[len(params) // 2:]
        for (key, _), W, b in zip(linears, Ws, bs):
            own[f"{key}.weight"], own[f"{key}.bias"] = W.T.contiguous(), b[0].clone()
    full = member.nets.state_dict()
    full.update(own)
    return {"nets": full, "heads": state["heads"]}


def fit_stack(ests, prepared: dict, seeds: List[int], indices: List[int], progress: list, validation=None):
    """Fit the members of one stack in this process; returns the fitted member estimators, each with its
    ``fit_warnings_``. Members whose networks cannot stack, or a stack that diverged, train one by one.
    ``validation`` (inputs, truth), as ``fit`` takes it: each member's history records its structural MSE."""
    with one_torch_thread():
        caught: List[List[str]] = [[] for _ in ests]
        members = []
        for est, seed, prog, c in zip(ests, seeds, progress, caught):
            est._set_shared(prepared)
            with recording() as w, ExitStack() as global_rng:
                members.append(start_member(est, prepared, seed, global_rng, prog))
            c.extend(w)
        results = None
        truth_val = None if validation is None else (ests[0]._prediction_inputs(*validation[0]), validation[1])
        if stackable([m.nets for m in members]):  # also a stack of one: results do not depend on n_jobs
            try:
                results = train_stacked(members, caught, truth_val)
            except FloatingPointError:
                results = None  # alone, a member can restart from its kept check at a lower rate
        if results is None:
            return [_fit_one(est, prepared, seed, i, validation, prog)
                    for est, seed, i, prog in zip(ests, seeds, indices, progress)]
        for est, member, (history, stop), c in zip(ests, members, results, caught):
            with recording() as w:
                finish_member(member, history, stop)
            est.fit_warnings_ = c + list(w)
    return ests


def fit_members_stacked(estimator, prepared: dict, seeds: List[int], n_jobs, channel=None, validation=None):
    """The members in stacks of two or three consecutive members, each stack in one process (up to ``n_jobs``
    at a time); the fitted members in seed order.

    The stacks depend on the number of members only, never on ``n_jobs``: a member's arithmetic depends on
    its place in its stack (batched products round by their memory layout), so a fit is bit-identical
    whatever ``n_jobs`` is. Three members per stack: on this project's 2-core machine the default 5 members
    train as 3 + 2 on the two cores, the most a stack saves there (RESULTS.md, "Whole default fit")."""
    from sklearn.base import clone

    template = clone(estimator).set_params(n_estimators=1, n_jobs=None, verbose=False)
    groups = [list(g) for g in np.array_split(np.arange(len(seeds)), math.ceil(len(seeds) / _STACK))]
    jobs = (delayed(fit_stack)([clone(template) for _ in g], prepared, [seeds[i] for i in g], g,
                               [channel(i) if channel else None for i in g], validation) for g in groups)
    return [m for stack in Parallel(n_jobs=min(len(groups), effective_n_jobs(n_jobs)))(jobs) for m in stack]
