"""What each speed lever buys: training steps per second with the lever on and off (issue 16).

Each configuration fits the default estimator with a fixed number of epochs (no early stopping, no
bootstrap draws, so only training is timed) and reports minibatch steps per second; the levers are
switched off one at a time by patching the code path they replaced:

* ``float64 Gram``: per-batch Gram products formed in float64 instead of float32 (sums and solves are
  float64 either way);
* ``mode toggles``: train/eval switches around every head solve, and two feature passes per update
  (what networks with batch norm or dropout still need);
* ``wide heads`` (DFIV): the former default widths, treatment and covariate networks with 16 learned
  features each (a 342-column stage-2 head instead of 66);
* ``torch Adam``: ``torch.optim.Adam`` instead of deepcausal's (whose only purpose is to avoid
  importing ``torch._dynamo``; the start-up cost is measured separately, in a fresh process);
* ``per-tensor Adam``: the Adam update as a Python loop over parameter tensors (6 calls per tensor) instead
  of the default's flat buffers (bit-identical results); the step between the two, one ``torch._foreach_*``
  call per operation over the tensors, is timed on the optimiser steps alone (``adam_step_saving``), since
  the difference is below the noise of a fit-level rate;
* ``previous iterations`` (DFPV): the gradient steps per minibatch before they were re-chosen by held-out losses
  (5, 1, 1 instead of 1, 1, 1; ``bench_iters.py``); for DFIV, ``2, 2, 1 iterations``: the fewer steps that were
  measured and not adopted (the default stays 4, 4, 1);
* ``no Gram reuse``: every stage-1 head solve forms F₁ᵀF₁ and its Cholesky factor afresh, instead of reusing
  them for the three solves on one batch of features in a step (:class:`deepcausal.heads.GramCache`;
  bit-identical results);
* ``before issue 16's second round``: the defaults as they were (per-tensor Adam, DFPV's 5, 1, 1, no Gram
  reuse);
* batch sizes: the default and a smaller one.

``--n 1000000 --epochs 1 --configs default,before`` measures the steps per second of the default against the
former defaults at a million rows (the issue's "no lower than today's" target).

Configurations are interleaved round by round so that a busy machine slows them alike; the table
gives medians over rounds. Command: ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/bench_levers.py [--rounds 3] [--epochs 10]
[--n 5000] [--configs SUBSTRINGS]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from contextlib import ExitStack, contextmanager
from functools import partial
from unittest import mock

os.environ.setdefault("OMP_NUM_THREADS", "1")
import pandas as pd  # noqa: E402
import torch  # noqa: E402

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
from _results import machine, single_thread, write_section  # noqa: E402

import deepcausal._training as core  # noqa: E402
from deepcausal import DFIV, DFPV  # noqa: E402
from deepcausal.datasets import demand, demand_proxy  # noqa: E402
from deepcausal.heads import SufficientStats  # noqa: E402
from deepcausal.nets import SkipMLP  # noqa: E402
from deepcausal.twostage import TwoStageHeads  # noqa: E402

_from_batch = SufficientStats.from_batch.__func__


@contextmanager
def float64_gram():
    def from_batch(cls, F, Y, gram=None):
        return _from_batch(cls, F.double(), Y.double(), gram)

    with mock.patch.object(SufficientStats, "from_batch", classmethod(from_batch)):
        yield


@contextmanager
def mode_toggles():
    with mock.patch.object(core, "mode_matters", lambda module: True):
        yield


@contextmanager
def torch_adam():
    def adam(params, lr, weight_decay=0.0, decayed=()):  # decays whole groups, as the default fits never do
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=False)

    with mock.patch.object(core, "Adam", adam):
        yield


class _PerTensorAdam(core.Adam):
    """The former update: a Python loop over the parameter tensors."""

    @torch.no_grad()
    def step(self):
        g = self.param_groups[0]
        (b1, b2), lr, eps = g["betas"], g["lr"], g["eps"]
        self.t += 1
        step_size, bias2_sqrt = lr / (1.0 - b1**self.t), (1.0 - b2**self.t) ** 0.5
        for p in g["params"]:
            if p.grad is None:
                continue
            if p not in self.state:
                self.state[p] = (torch.zeros_like(p), torch.zeros_like(p))
            m, v = self.state[p]
            m.lerp_(p.grad, 1.0 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
            p.addcdiv_(m, (v.sqrt() / bias2_sqrt).add_(eps), value=-step_size)


@contextmanager
def per_tensor_adam():
    with mock.patch.object(core, "Adam", _PerTensorAdam):
        yield


@contextmanager
def no_gram_reuse():
    def plain(self, F1, target, W_prev, lam):
        return self._solve(F1, target, W_prev, lam, self.beta1)

    with mock.patch.object(TwoStageHeads, "_stage1_solve", plain):
        yield


LEVERS = {"no Gram reuse": no_gram_reuse, "float64 Gram": float64_gram, "mode toggles": mode_toggles,
          "torch Adam": torch_adam, "per-tensor Adam": per_tensor_adam}
PREVIOUS_ITERS = {"DFIV": {}, "DFPV": dict(stage1_iter=5, covariate_iter=1, stage2_iter=1)}


def configs():
    wide = dict(treatment_net=partial(SkipMLP, d_out=16), covariate_net=partial(SkipMLP, d_out=16))
    return [
        ("DFIV", "default (batch 512)", {}, []),
        ("DFIV", "batch 128", dict(batch_size=128), []),
        ("DFIV", "no Gram reuse", {}, ["no Gram reuse"]),
        ("DFIV", "float64 Gram", {}, ["float64 Gram"]),
        ("DFIV", "mode toggles, two passes", {}, ["mode toggles"]),
        ("DFIV", "wide heads (16/16)", wide, []),
        ("DFIV", "torch Adam", {}, ["torch Adam"]),
        ("DFIV", "per-tensor Adam", {}, ["per-tensor Adam"]),
        ("DFIV", "2, 2, 1 iterations (not adopted)", dict(stage1_iter=2, covariate_iter=2), []),
        ("DFIV", "before issue 16's second round", PREVIOUS_ITERS["DFIV"], ["per-tensor Adam", "no Gram reuse"]),
        ("DFIV", "all levers off", {**wide, **PREVIOUS_ITERS["DFIV"]}, [k for k in LEVERS if k != "per-tensor Adam"]),
        ("DFPV", "default (batch 256)", {}, []),
        ("DFPV", "batch 64", dict(batch_size=64), []),
        ("DFPV", "no Gram reuse", {}, ["no Gram reuse"]),
        ("DFPV", "float64 Gram", {}, ["float64 Gram"]),
        ("DFPV", "mode toggles, two passes", {}, ["mode toggles"]),
        ("DFPV", "per-tensor Adam", {}, ["per-tensor Adam"]),
        ("DFPV", "previous iterations (5, 1, 1)", PREVIOUS_ITERS["DFPV"], []),
        ("DFPV", "before issue 16's second round", PREVIOUS_ITERS["DFPV"], ["per-tensor Adam", "no Gram reuse"]),
        ("DFPV", "all levers off", PREVIOUS_ITERS["DFPV"], [k for k in LEVERS if k != "per-tensor Adam"]),
    ]


def time_fit(method, params, levers, data, epochs):
    cls, d = (DFIV, data["iv"]) if method == "DFIV" else (DFPV, data["pcl"])
    with ExitStack() as stack:
        for lever in levers:
            stack.enter_context(LEVERS[lever]())
        est = cls(n_estimators=1, n_epochs=epochs, early_stopping=False, n_bootstrap=0, refit_heads=False,
                  random_state=0, **params)
        t = time.perf_counter()
        est.fit(d.train, **d.fit_kwargs())
        seconds = time.perf_counter() - t
    return est.stopping_["steps"] / seconds


def _ms_per_call(f, reps: int, warmup: int) -> float:
    """Milliseconds per call of ``f``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        f()
    t = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t) / reps * 1e3


def _one_epoch_member(method: str, data):
    """A default member of ``method`` fitted for one epoch: its heads, networks and settings to time on."""
    cls, d = (DFIV, data["iv"]) if method == "DFIV" else (DFPV, data["pcl"])
    return cls(n_estimators=1, n_epochs=1, n_bootstrap=0, random_state=0).fit(d.train, **d.fit_kwargs()), d


def gram_reuse_saving(method: str, data) -> str:
    """What GramCache saves per step, timed on the operations themselves (a fit-level rate is too noisy
    on this machine to resolve it): two of the three stage-1 Gram products F₁ᵀF₁ and one of the three
    Cholesky factorisations, at the default batch size and stage-1 width of the estimator."""
    est, d = _one_epoch_member(method, data)
    width, batch = est.heads_.V.shape[0], est._settings(len(d.train) // 2)["batch_size"]
    F = torch.randn(batch, width)
    A = (F.T @ F).double() / batch
    A.diagonal().add_(0.11)

    gram = _ms_per_call(lambda: (F.T @ F).to(torch.float64), 300, 10)
    chol = _ms_per_call(lambda: torch.linalg.cholesky_ex(A), 300, 10)
    return (f"{method}: stage-1 width {width}, batch {batch}: Gram {gram:.3f} ms, Cholesky {chol:.3f} ms, "
            f"saved per step {2 * gram + chol:.2f} ms")


def adam_step_saving(method: str, data) -> str:
    """What the flat-buffer Adam saves per step, timed on the optimiser steps themselves: each network's Adam
    step with its parameters and moments in flat buffers, against the per-tensor ``torch._foreach_*`` path it
    replaced (the same moments, ``_flat`` switched off), times the gradient steps per minibatch pair."""
    est, d = _one_epoch_member(method, data)
    st = est._settings(len(d.train) // 2)
    iters = {"stage1": st["stage1_iter"], "covariate": st["covariate_iter"], "stage2": st["stage2_iter"]}

    def ms(opt):
        for p in opt.param_groups[0]["params"]:
            p.grad = torch.randn_like(p) * 1e-3
        return _ms_per_call(opt.step, 2000, 20)

    flat = foreach = 0.0
    for group, opt in core.optimisers(est, est.nets_).items():
        a = ms(opt)
        opt._flat = None  # the per-tensor path: one foreach call per operation over the group's tensors
        b = ms(opt)
        flat, foreach = flat + iters[group] * a, foreach + iters[group] * b
    return (f"{method}: Adam steps of one minibatch pair {foreach:.3f} ms per tensor (foreach) against "
            f"{flat:.3f} ms flat, saved per step {foreach - flat:.3f} ms")


def startup_seconds(which: str) -> float:
    """Seconds from process start to the end of a 1-epoch fit, with deepcausal's or torch's Adam."""
    code = ("import time; t = time.perf_counter(); import sys; sys.path.insert(0, %r); "
            "from unittest import mock; import torch; import deepcausal._training as core; "
            "from deepcausal import DFIV; from deepcausal.datasets import lowdim; d = lowdim(500, seed=0); "
            "p = mock.patch.object(core, 'Adam', lambda ps, lr, **kw: torch.optim.Adam(ps, lr=lr, foreach=False)) "
            "if %r == 'torch' else mock.patch.object(core, 'Adam', core.Adam); p.start(); "
            "DFIV(n_estimators=1, n_epochs=1, n_bootstrap=0, random_state=0).fit(d.train, **d.fit_kwargs()); "
            "print(time.perf_counter() - t)") % (os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                                 which)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--n", type=int, default=5000, help="rows of each design")
    ap.add_argument("--configs", help="comma-separated substrings: only configurations whose name contains one")
    ap.add_argument("--no-startup", action="store_true", help="skip the fresh-process start-up timing")
    args = ap.parse_args(argv)
    single_thread()
    warnings.simplefilter("ignore")
    data = {"iv": demand(args.n, rho=0.5, seed=0), "pcl": demand_proxy(args.n, seed=0)}
    chosen = [c for c in configs() if not args.configs or any(k in c[1] for k in args.configs.split(","))]
    rows = []
    for r in range(args.rounds):
        for method, name, params, levers in chosen:
            rows.append(dict(method=method, config=name, round=r, steps_per_s=time_fit(method, params, levers, data,
                                                                                       args.epochs)))
            print(rows[-1], flush=True)
        for which in () if args.no_startup else ("deepcausal", "torch"):
            rows.append(dict(method="start-up", config=f"{which} Adam", round=r, seconds=startup_seconds(which)))
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    fits = df[df["method"] != "start-up"].groupby(["method", "config"], sort=False)["steps_per_s"].median()
    extra = (f" --n {args.n}" if args.n != 5000 else "") + (f" --configs {args.configs}" if args.configs else "") \
        + (" --no-startup" if args.no_startup else "")
    lines = ["## Speed levers: steps per second" + (f" at n = {args.n:,}" if args.n != 5000 else ""), "",
             "Command: `OMP_NUM_THREADS=1 python benchmarks/diagnostics/bench_levers.py "
             f"--rounds {args.rounds} --epochs {args.epochs}{extra}` (from the repository root).",
             f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f} (other jobs shared the 2 cores: "
             "compare rows, not absolute rates).", "",
             f"Default estimators on demand IV / demand PCL (n = {args.n:,}), {args.epochs} epochs, no early stopping, "
             "no bootstrap, no final refit: minibatch steps per second (each step = the stage-1, covariate and stage-2 "
             "updates of one pair of minibatches), median over rounds. `vs default` = default rate / this rate. "
             "Noise: on this machine one configuration's rate moves by 15-20% between runs (DFIV default: 54-72 "
             "steps/s in three runs on 2026-11-28), so rows closer than that to the default are not resolved.", "",
             "| method | configuration | steps / s | vs default |", "|---|---|---|---|"]
    for method in ("DFIV", "DFPV"):
        base = fits[(method, [c for m, c in fits.index if m == method][0])]
        for (m, config), v in fits.items():
            if m == method:
                lines.append(f"| {m} | {config} | {v:.1f} | {base / v:.2f}× |")
    st = df[df["method"] == "start-up"].groupby("config")["seconds"].median() if not args.no_startup else {}
    lines += [] if args.no_startup else [
        "", "Fresh-process start-up to the end of a 1-epoch fit (lowdim, n 500; median over rounds): "
              + ", ".join(f"{k}: {v:.1f} s" for k, v in st.items()) + ". Every parallel ensemble member pays it once "
              "per worker process.", ""]
    if args.n == 5000:
        lines += ["Gram reuse, timed on the operations it removes (two of three stage-1 Gram products and one of three "
                  "Cholesky factorisations per step; `gram_reuse_saving`): "
                  + "; ".join(gram_reuse_saving(m, data) for m in ("DFIV", "DFPV"))
                  + ". Divide by the default's time per step (1 / steps per second) for the share it saves.", "",
                  "Flat-buffer Adam, timed on the optimiser steps (`adam_step_saving`): "
                  + "; ".join(adam_step_saving(m, data) for m in ("DFIV", "DFPV")) + ".", ""]
    write_section(lines[0], "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
