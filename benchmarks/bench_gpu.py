"""device="cuda" end to end, and training steps per second on the GPU against the CPU (issue 16).

Fits one default-configured DFIV (demand IV) and one DFPV (demand PCL) on each available device with
a fixed number of epochs (no early stopping, so both devices take the same steps), then checks on
the GPU model: predictions match the CPU model's to float tolerance given the same seed is not
expected (different kernels), so instead it checks that predictions, intervals, marginal effects and
a save/load round trip (onto the CPU and back onto the GPU) run and agree with themselves. Also times
DFIV on dSprites images (n 2,000), where the GPU should matter most.

Command (on a machine with a GPU): ``python benchmarks/bench_gpu.py --out gpu.md``; the lead copies
the section into RESULTS.md with ``python benchmarks/bench_gpu.py --merge gpu.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import write_section  # noqa: E402

from deepcausal import DFIV, DFPV  # noqa: E402
from deepcausal.datasets import demand, demand_proxy, dsprites  # noqa: E402

TITLE = "## GPU: device=\"cuda\" and steps per second"


def _arrays(d):
    """Training arrays as positional/keyword arguments of ``fit`` and the test inputs of ``predict``."""
    kw = {k: v for k, v in d.array_kwargs().items() if v is not None}
    first = kw.pop("Y")
    second = kw.pop("T" if d.kind == "iv" else "A")
    test = d.test_arrays()
    return (first, second), kw, (test["treatment"], test["covariates"])


def _fit(cls, d, device, epochs, **kw):
    args, fit_kw, _ = _arrays(d)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    est = cls(device=device, n_estimators=1, n_epochs=epochs, early_stopping=False, random_state=0, **kw).fit(
        *args, **fit_kw)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    return est, seconds, est.stopping_["steps"] / seconds


def _predict(est, d):
    _, _, (t, x) = _arrays(d)
    return est.predict(t, x)


def checks(est, d, cls):
    """Everything a user calls, on the GPU model; a save/load round trip keeps predictions."""
    _, _, (t, x) = _arrays(d)
    pred = est.predict(t, x)
    lo, hi = est.predict_interval(t, x, alpha=0.1)
    assert np.all(lo <= pred + 1e-9) and np.all(pred <= hi + 1e-9), "band does not contain the estimate"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.pt")
        est.save(path)
        back = cls.load(path, device="cuda")
        np.testing.assert_allclose(back.predict(t, x), pred, rtol=1e-5, atol=1e-5 * np.abs(pred).max())
        cpu = cls.load(path, device="cpu")
        np.testing.assert_allclose(cpu.predict(t, x), pred, rtol=1e-4, atol=1e-4 * np.abs(pred).max())
    if t.shape[1] == 1:
        me = est.marginal_effect(t[:20], None if x is None else x[:20])
        assert np.isfinite(me).all()
    return "predict, predict_interval, marginal_effect, save/load cuda→cuda and cuda→cpu: ok"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="write the section to this file instead of RESULTS.md")
    ap.add_argument("--merge", default=None, help="copy a section written with --out into RESULTS.md")
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args(argv)
    if args.merge:
        text = open(args.merge).read()
        write_section(TITLE, text)
        return
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows, notes = [], []
    cases = [("DFIV", DFIV, demand(5000, rho=0.5, seed=0), {}),
             ("DFPV", DFPV, demand_proxy(5000, seed=0), {}),
             ("DFIV dSprites (n 2,000, batch 256)", DFIV, dsprites(2000, seed=0), dict(batch_size=256))]
    for name, cls, d, kw in cases:
        per = {}
        for device in devices:
            est, seconds, sps = _fit(cls, d, device, args.epochs, **kw)
            per[device] = (seconds, sps, est.stopping_["steps"], d.score(_predict(est, d)))
            if device == "cuda":
                notes.append(f"{name}: {checks(est, d, cls)}")
        for device, (seconds, sps, steps, mse) in per.items():
            rows.append(f"| {name} | {device} | {steps} | {seconds:.1f} | {sps:.1f} | {mse:.4g} |")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    text = "\n".join([
        TITLE, "",
        f"Command: `python benchmarks/bench_gpu.py --epochs {args.epochs}` on a lent GPU machine ({gpu}, torch "
        f"{torch.__version__}, one CPU thread for the CPU rows), then `--merge` here. Fixed epochs, no early stopping; "
        "default bootstrap draws included in the fit time. MSE for information (one seed).", "",
        "| fit | device | steps | fit s | steps / s | MSE |", "|---|---|---|---|---|---|", *rows, "",
        *[f"- {n}" for n in notes], ""])
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    else:
        write_section(TITLE, text)
    print(text)


if __name__ == "__main__":
    main()
