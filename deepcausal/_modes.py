"""Network modes, devices and torch's global generator, for fitting and predicting.

Small context managers the training loop and the predictions share: eval mode for head solves
(:func:`eval_mode`, restored afterwards) and for a fitted model's predictions (:func:`predicting`,
kept), the seeded global generator of one member's initialisation (:func:`seeded_global_rng`), and
the divergence error of a stage (:func:`diverged`).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
from torch import nn

from .heads import NonFiniteError

__all__ = ["diverged", "mode_matters", "eval_mode", "predicting", "seeded_global_rng", "draws_random_numbers",
           "resolve_device"]


@contextmanager
def diverged(stage: str):
    """Turn non-finite losses or features during training into an error naming the stage."""
    try:
        yield
    except NonFiniteError as exc:
        raise FloatingPointError(
            f"{stage}: training diverged ({exc}). Try a smaller lr, or larger ridge (beta1/beta2) or "
            "proximal (lam1/lam2) coefficients."
        ) from exc


def mode_matters(module: nn.Module) -> bool:
    """Whether ``module``'s output may depend on train/eval mode (batch norm, dropout, spectral
    norm's power iteration, or any module from outside torch.nn and deepcausal, which might read
    ``self.training``). Without such layers the mode switches of training are skipped: they cost
    about a tenth of a small network's fit."""
    for m in module.modules():
        cls = type(m)
        if isinstance(m, (nn.modules.batchnorm._NormBase, nn.modules.dropout._DropoutNd)) \
                or nn.utils.parametrize.is_parametrized(m) or cls.train is not nn.Module.train \
                or not cls.__module__.startswith(("torch.nn", "deepcausal")):
            return True
    return False


@contextmanager
def eval_mode(module: nn.Module):
    """Eval mode (batch-norm running statistics) and no autograd, for head solves and prediction.

    Modules without mode-dependent layers (:func:`mode_matters`, cached on the module) are left in
    their mode."""
    toggle = getattr(module, "_deepcausal_mode_matters", None)
    if toggle is None:
        toggle = mode_matters(module)
    was = module.training
    if toggle:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if toggle:
            module.train(was)


@contextmanager
def predicting(module: nn.Module):
    """No autograd, with a fitted model's networks in eval mode — where they stay.

    Unlike :func:`eval_mode`, the mode is not restored afterwards: a fitted model's networks are
    always in eval mode (fit leaves them so; a loaded model, or one a user switched, is switched once
    here), so two threads predicting at once never see the other switch to train mode.
    """
    if module.training:
        module.eval()
    with torch.no_grad():
        yield


_GLOBAL_RNG_LOCK = threading.RLock()


@contextmanager
def seeded_global_rng(seed: int, device: torch.device):
    """torch's global generator (and the CUDA device's) seeded with ``seed`` inside the block, the
    caller's state restored after it, one thread at a time.

    Only the generators this fit uses are seeded, inside ``fork_rng``: torch.manual_seed would also
    (lazily) reseed every CUDA device, which fork_rng(devices=[]) does not restore."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for i in cuda:
            torch.cuda.default_generators[i].manual_seed(seed)
        yield


def draws_random_numbers(module: nn.Module) -> bool:
    """Whether a forward pass may draw from torch's global generator: dropout, or a module from outside
    torch.nn and deepcausal, which might."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) or not type(m).__module__.startswith(("torch.nn", "deepcausal"))
               for m in module.modules())


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available on this machine")
    return torch.device(device)
