"""Diagnosis, not a default: does an L2 penalty on DFIV's treatment network stop its features from drifting?

DFIV's stage-2 loss is taken with the ridge-shrunk head u fixed, so its gradient keeps enlarging the
treatment features ψ to make up for the shrinkage, and Adam turns that small, steady gradient into steps of
full size: over a default fit the stage-1 training loss ||ψ(T) − F₁V||² grows (ψ grows), and at 10⁶ rows one
fit diverged (RESULTS "Scale"). This script fits one default DFIV member on demand with
``treatment_weight_decay=WD``, a coupled L2 term ``WD · θ`` added to the gradients of the treatment network
(the original DFIV code's knob of the same name), and prints the held-out stage-2 loss of the kept check,
the structural MSE (information), how training ended, and the first and last stage-1 training losses.

Command: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/diagnostics/diag_treatment_decay.py N SEEDS WD [norm]``, e.g.
``... 1000000 1 0.01``; ``WD = 0`` is today's default. Results: RESULTS.md, "Diagnosis: treatment-feature drift".

With ``norm`` the treatment network's learned features are divided by their root mean square per row
(``[t, h(t) / rms(h(t))]``, ``SkipMLP(normalize=True)``), which removes the scale that drifts instead of
penalising it: the other fix the diagnosis named.
"""

import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(1)
warnings.simplefilter("ignore")
from deepcausal import DFIV  # noqa: E402
from deepcausal.datasets import demand  # noqa: E402
from deepcausal.nets import SkipMLP  # noqa: E402


def normalised_treatment(d_in):
    return SkipMLP(d_in, d_out=4, normalize=True)  # DFIV's default treatment width


def run(n, seed, wd, norm=False):
    d = demand(n, rho=0.5, seed=seed)
    est = DFIV(n_estimators=1, n_bootstrap=0, random_state=seed, treatment_weight_decay=wd,
               **(dict(treatment_net=normalised_treatment) if norm else {}))
    t = time.perf_counter()
    est.fit(d.train, **d.fit_kwargs())
    h = est.history_
    kept = h.loc[h["kept"]].iloc[0]
    print(dict(n=n, seed=seed, wd=wd, norm=norm, mse=round(d.score(est.predict(d.test_X)), 2), s=round(time.perf_counter() - t),
               stop=est.stopping_["reason"], steps=est.stopping_["steps"], rec=est.stopping_["recoveries"],
               ho2=round(float(kept["val_stage2_median"]), 6), s1_first=round(float(h["stage1_loss"].iloc[0]), 3),
               s1_last=round(float(h["stage1_loss"].iloc[-1]), 3), r2=round(float(kept["val_stage1_r2"]), 3)), flush=True)


if __name__ == "__main__":
    n, wd = int(sys.argv[1]), float(sys.argv[3])
    norm = len(sys.argv) > 4 and sys.argv[4] == "norm"
    for s in sys.argv[2].split(","):
        run(n, int(s), wd, norm)
