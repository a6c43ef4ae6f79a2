"""Bit-identity of seeded fits across a refactoring: predictions, bands and the saved model file.

``--write`` fits a small seeded DFIV and DFPV ensemble (explicit settings, so that a change of a default
does not move them), and writes into ``tests/data/``:

* ``identity_<class>.pt``: the model file ``save`` writes;
* ``identity_<class>.npz``: its predictions, pointwise and uniform bands, effect and average marginal
  effect intervals and dose-response band on fixed inputs.

``--check`` fits the same models with the code as it is now and compares every array bit for bit, and
the bytes of the model file, against those written before; it also loads the old model files and
checks that their predictions equal the new fit's. Exit status 0 when all are identical.

Command (from the repository root): ``OMP_NUM_THREADS=1 python benchmarks/diagnostics/check_bit_identity.py
--write`` at the commit before a refactoring, then ``... --check`` after it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepcausal import DFIV, DFPV  # noqa: E402
from deepcausal.datasets import demand, demand_proxy  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
SETTINGS = dict(n_estimators=2, n_epochs=3, batch_size=128, n_bootstrap=20, n_jobs=1, random_state=0,
                lr_schedule="constant")


def fit(name: str):
    """The seeded model of class ``name`` and its design."""
    if name == "DFIV":
        d = demand(600, rho=0.5, seed=3)
        return DFIV(**SETTINGS).fit(d.train, **d.fit_kwargs()), d
    d = demand_proxy(600, seed=3)
    return DFPV(**SETTINGS).fit(d.train, **d.fit_kwargs()), d


def outputs(est, d) -> dict:
    """Every reported quantity on fixed inputs, as float64 arrays."""
    test = d.test_X.iloc[:40]
    treatment = d.fit_kwargs()["treatment"][0]
    X = d.train[d.fit_kwargs()["covariates"]].iloc[:30] if d.fit_kwargs()["covariates"] else None
    out = {"predict": est.predict(test)}
    out["pointwise"] = np.stack(est.predict_interval(test, alpha=0.1))
    out["uniform"] = np.stack(est.predict_interval(test, alpha=0.1, band="uniform"))
    out["effect"] = np.stack(est.effect_interval(X, T0=15.0, T1=20.0))
    T = d.train[[treatment]].iloc[:30]
    out["marginal_ate"] = np.array(est.marginal_ate_interval(T, X))
    curve = est.dose_response([14.0, 18.0, 22.0], X, alpha=0.05, band="uniform")
    out["dose_response"] = curve.drop(columns=treatment).to_numpy(dtype=np.float64)
    return out


def _archive(path: Path) -> dict:
    """A model file's entries by name without the archive's top folder, which torch names after the
    (temporary) file that ``save`` writes before renaming it, and their bytes."""
    with zipfile.ZipFile(path) as z:
        return {n.split("/", 1)[1]: z.read(n) for n in z.namelist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    DATA.mkdir(parents=True, exist_ok=True)
    same = True
    for name in ("DFIV", "DFPV"):
        est, d = fit(name)
        got = outputs(est, d)
        model, arrays = DATA / f"identity_{name.lower()}.pt", DATA / f"identity_{name.lower()}.npz"
        if args.write:
            est.save(model)
            np.savez(arrays, **got)
            print(f"{name}: wrote {model.name} and {arrays.name}")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            est.save(Path(tmp) / "m.pt")
            file_same = _archive(Path(tmp) / "m.pt") == _archive(model)
        ref = np.load(arrays)
        for key, value in got.items():
            equal = np.array_equal(value, ref[key])
            same &= equal
            print(f"{name} {key:<14} {'bit-identical' if equal else 'DIFFERS (max |diff| %.3g)' % np.max(np.abs(value - ref[key]))}")
        old = type(est).load(model)
        loaded_same = np.array_equal(old.predict(d.test_X.iloc[:40]), got["predict"])
        print(f"{name} saved file     {'bit-identical' if file_same else 'DIFFERS'}")
        print(f"{name} old file loads {'and predicts bit-identically' if loaded_same else 'but predicts differently'}")
        same &= file_same and loaded_same
    if args.check:
        print("all bit-identical" if same else "NOT bit-identical")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
