"""Early stopping of one member's training: the checks' history rows, the kept state, how training ended.

Every ``check_every`` steps the training loop (:func:`deepcausal._training.train`, or the stacked members'
loop of :mod:`deepcausal._stacked`) adds a history row and asks :func:`early_stopping_check` whether to go
on; at the end :func:`ending` restores the kept check's state and describes the stop (``stopping_``).
"""

from __future__ import annotations

import math
from typing import Callable, List

import numpy as np

from ._warnings import warn

__all__ = ["check_row", "new_track", "ending", "early_stopping_check", "snapshot", "restore"]

_PLATEAU_TOL = 0.10  # early stopping: a held-out loss median within 10% of its best counts as the best


def check_row(step: int, steps_per_epoch: int, rate: float, losses, since_check: int, comm) -> dict:
    """A history row's training columns: the mean stage losses since the last check."""
    return {"epoch": math.ceil(step / steps_per_epoch), "step": step, "lr": rate,
            "stage1_loss": comm.sum_float(losses[0]) / since_check,
            "stage2_loss": comm.sum_float(losses[1]) / since_check}


def new_track() -> dict:
    """The early-stopping state of one member (see :func:`early_stopping_check`)."""
    return {"recent": [], "best": math.inf, "row": None, "state": None, "worse": 0}


def ending(nets, heads, history: List[dict], track: dict, reason: str, step: int, steps_per_epoch: int,
           recoveries: List[int]) -> dict:
    """How training ended (``stopping_``): the kept check's state restored into ``nets`` and ``heads`` and
    marked in the history."""
    stop = {"reason": reason, "steps": step, "epochs": math.ceil(step / steps_per_epoch),
            "kept_step": None, "restored": False, "recoveries": recoveries}
    if track["state"] is not None:
        restore(nets, heads, track["state"])
        stop.update(kept_step=history[track["row"]]["step"], restored=True)
        if reason == "early_stopping" and track["row"] == 0:
            warn("early stopping: the held-out stage-2 loss never improved on its first check (step "
                 f"{history[0]['step']}); the model of that check is kept. Try a smaller lr or larger "
                 "beta/lam, or early_stopping=False", UserWarning)
    for i, row in enumerate(history):
        row["kept"] = track["row"] == i
    return stop


def early_stopping_check(track: dict, row: dict, index: int, save: Callable[[], dict], patience: int) -> bool:
    """Update the early-stopping state with a new check; True when training should stop.

    Minibatch noise moves the held-out stage-2 loss by 5-10% from check to check, while the
    structural error often keeps falling while the projected risk is flat or drifts up by a few
    per cent (measured on demand IV and demand PCL, n = 5,000: the structural MSE fell from 270 to 64
    and from 20 to 11 over steps where the held-out loss moved less than its noise). So the
    criterion is the median of the last ``patience`` held-out losses, and a state within 10% of
    the best median counts as best: the latest such check whose own loss is also within 10% is
    kept (on a plateau, the latest state; never a check where the loss spiked). Training stops once
    the median has been more than 10% above its best for ``patience`` checks in a row: the held-out
    loss clearly rises, the networks overfit.
    """
    track["recent"].append(row["val_stage2_loss"])
    del track["recent"][:-patience]
    median = float(np.median(track["recent"]))
    row["val_stage2_median"] = median
    track["best"] = min(track["best"], median)
    near_best = median <= track["best"] * (1.0 + _PLATEAU_TOL)
    # the kept state's own loss must be near the best too: a single spike (a check where training
    # briefly blew up) leaves the median unmoved but must never be the state that is kept
    if near_best and row["val_stage2_loss"] <= track["best"] * (1.0 + _PLATEAU_TOL):
        track.update(row=index, state=save(), worse=0)  # save(): the state to keep (snapshot)
        return False
    if near_best:
        return False
    track["worse"] += 1
    return track["worse"] >= patience


def snapshot(nets, heads) -> dict:
    return {"nets": {k: v.detach().clone() for k, v in nets.state_dict().items()},
            "heads": {k: (v.clone() if v is not None else None) for k, v in heads.state_dict().items()}}


def restore(nets, heads, state) -> None:
    nets.load_state_dict(state["nets"])
    heads.load_state_dict(state["heads"])
