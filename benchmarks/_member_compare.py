"""Shared by the benchmarks that decide one default: fit one default member per design, seed and setting.

A *member* is ``DFIV``/``DFPV`` with ``n_estimators=1`` and no bootstrap, so the criterion read at its kept
check is the same one early stopping uses. Each row reports

* ``held_out_stage2``: the held-out stage-2 loss of the kept check (median of the last checks) - the criterion,
  no truth;
* ``stage1_r2``: the held-out stage-1 R² of the kept check;
* ``mse``: the structural MSE against the truth - for information and for the "no design gets worse" checks;
* ``fit_s``, ``steps``, ``reason``: what the fit cost and how it ended.
"""

from __future__ import annotations

import time
import warnings

# the image designs first: the slowest fits start while the cores are free
DESIGNS = ("dsprites", "dsprites_proxy", "demand", "demand_proxy", "lowdim_abs", "lowdim_linear", "lowdim_sin",
           "lowdim_step", "linear_binary_iv")
IMAGE = {"dsprites", "dsprites_proxy"}


def fit_member(design: str, n_tab: int, seed: int, params: dict) -> dict:
    """Fit one default member with ``params`` on ``design`` (dSprites at 2,000 rows, others at ``n_tab``)."""
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    from deepcausal import DFIV, DFPV
    from deepcausal.benchmark import make_design

    n = 2000 if design in IMAGE else n_tab
    d, _ = make_design(design, n=n, seed=seed)
    cls = DFPV if d.kind == "proxy" else DFIV
    est = cls(random_state=seed, n_estimators=1, n_bootstrap=0, **params)
    start = time.perf_counter()
    if d.train is not None:
        est.fit(d.train, **d.fit_kwargs())
    else:  # image designs come as arrays
        est.fit(**d.array_kwargs())
    seconds = time.perf_counter() - start
    inputs = d.test_X if d.train is not None else d.test_X["treatment"]
    kept = est.history_.loc[est.history_["kept"]].iloc[0]
    return dict(design=design, n=n, seed=seed, method=cls.__name__,
                held_out_stage2=float(kept["val_stage2_median"]), stage1_r2=float(kept["val_stage1_r2"]),
                mse=float(d.score(est.predict(inputs))), fit_s=seconds, steps=int(est.stopping_["steps"]),
                reason=est.stopping_["reason"], recoveries=len(est.stopping_.get("recoveries", [])))


def medians(df, setting: str):
    """Medians over seeds per design, size and ``setting`` (a column of ``df``)."""
    return (df.groupby(["design", "n", setting], sort=False)
              .agg(method=("method", "first"), held_out_stage2=("held_out_stage2", "median"),
                   stage1_r2=("stage1_r2", "median"), mse=("mse", "median"), fit_s=("fit_s", "median"),
                   steps=("steps", "median"), seeds=("seed", "count")).reset_index())
